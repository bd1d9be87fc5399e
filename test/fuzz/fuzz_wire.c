/*
 * fuzz_wire: the RETR/TOP wire encoder (lib/wire.h) against a reference.
 *
 * Input: byte 0 picks RETR (bit 7 set) or TOP with its line count (the
 * low 7 bits), bytes 1-2 seed the chunk splits, the rest is the message.
 * The message is encoded whole and in chunks of random length (empty
 * ones too), with a count-only twin beside each; every way must give
 * the same bytes and octets. The output is then un-stuffed by a
 * reference written here from RFC 1939 sections 3 and 7, independently
 * of wire.c: it must be CRLF lines (never a bare LF) ending in ".CRLF",
 * every line that starts with '.' stuffed, and un-stuffed it must be the
 * message with CRLF line ends (RETR) or its headers, the blank line and
 * the first n body lines (TOP). The octets counted must be the output
 * less the stuffed dots and the final ".CRLF", and wire_size() for RETR.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/wire.h"
#include "fuzz.h"

/* Deterministic split lengths from the input's seed (xorshift32). */
static uint32_t
rng(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/*
 * Encode msg in chunks (seed 0: whole), a count-only twin beside.
 * Returns the output in b and the octets counted.
 */
static uint64_t
encode(const char *msg, size_t len, long top, uint32_t seed, struct buf *b)
{
	struct wire_enc	 e, c;
	struct evbuffer	*out = evbuffer_new();
	size_t		 off = 0, n;
	int		 r, rc, done = 0;

	FUZZ_CHECK(out != NULL);
	wire_enc_init(&e, top);
	wire_enc_init(&c, top);
	do {
		n = len - off;
		if (seed != 0)
			n = rng(&seed) % (n < 64 ? n + 1 : 64);
		r = wire_enc_feed(&e, msg + off, n, out);
		rc = wire_enc_feed(&c, msg + off, n, NULL);
		FUZZ_CHECK(r == rc);
		FUZZ_CHECK(!done || r == 1);	/* done stays done */
		FUZZ_CHECK(top >= 0 || r == 0);	/* RETR is never done */
		done = r;
		off += n;
	} while (off < len);
	wire_enc_finish(&e, out);
	wire_enc_finish(&c, NULL);
	FUZZ_CHECK(e.octets == c.octets);
	n = evbuffer_get_length(out);
	b->len = 0;
	buf_add(b, evbuffer_pullup(out, -1), n);
	evbuffer_free(out);
	return e.octets;
}

/* The reference: CRLF line ends, a terminated last line, then TOP. */
static void
reference(const char *msg, size_t len, long top, struct buf *ref)
{
	struct buf	 norm = { 0 };
	const char	*p, *end, *eol;
	bool		 in_body = false;
	long		 body = 0;
	size_t		 i;

	for (i = 0; i < len; i++) {
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			buf_add(&norm, "\r", 1);
		buf_add(&norm, &msg[i], 1);
	}
	if (len > 0 && msg[len - 1] != '\n')
		buf_add(&norm, "\r\n", 2);
	if (norm.len == 0)
		return;
	p = norm.p;
	end = norm.p + norm.len;
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(eol != NULL);
		if (in_body) {
			if (top >= 0 && body >= top)
				break;
			body++;
		}
		buf_add(ref, p, (size_t)(eol + 1 - p));
		if (!in_body && eol - p == 1)
			in_body = true;
		p = eol + 1;
	}
	free(norm.p);
}

/* Un-stuff out into dec; returns the number of stuffed dots. */
static size_t
unstuff(const char *s, size_t len, struct buf *dec)
{
	const char	*p = s, *end = s + len, *eol;
	size_t		 dots = 0;

	FUZZ_CHECK(len >= 3 && memcmp(s + len - 3, ".\r\n", 3) == 0);
	for (;;) {
		eol = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(eol != NULL);
		FUZZ_CHECK(eol > p && eol[-1] == '\r');
		if (eol + 1 == end) {
			FUZZ_CHECK(eol - p == 2 && p[0] == '.');
			return dots;
		}
		if (p[0] == '.') {
			FUZZ_CHECK(p[1] == '.');
			dots++;
			p++;
		}
		buf_add(dec, p, (size_t)(eol + 1 - p));
		p = eol + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	 whole = { 0 }, split = { 0 }, ref = { 0 }, dec = { 0 };
	const char	*msg;
	size_t		 len, dots;
	uint64_t	 oct, oct2;
	uint32_t	 seed;
	long		 top;
	int		 k;

	if (size < 3)
		return 0;
	top = (data[0] & 0x80) ? -1 : (long)(data[0] & 0x7f);
	seed = ((uint32_t)data[1] << 8 | data[2]) | 0x10000;
	msg = (const char *)data + 3;
	len = size - 3;

	oct = encode(msg, len, top, 0, &whole);
	for (k = 0; k < 4; k++) {
		oct2 = encode(msg, len, top, seed + (uint32_t)k * 0x9e37, &split);
		FUZZ_CHECK(oct2 == oct);
		FUZZ_CHECK(split.len == whole.len &&
		    memcmp(split.p, whole.p, whole.len) == 0);
	}
	reference(msg, len, top, &ref);
	dots = unstuff(whole.p, whole.len, &dec);
	FUZZ_CHECK(dec.len == ref.len);
	FUZZ_CHECK(ref.len == 0 || memcmp(dec.p, ref.p, ref.len) == 0);
	FUZZ_CHECK(oct == whole.len - dots - 3);
	if (top < 0)
		FUZZ_CHECK(wire_size(msg, len) == oct);
	free(whole.p);
	free(split.p);
	free(ref.p);
	free(dec.p);
	return 0;
}
