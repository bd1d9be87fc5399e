/*
 * test_wire: the RETR/TOP wire encoder (wire.h).
 *
 * Every case is fed whole, byte by byte and at hundreds of random split
 * points; all must give the same bytes. Random messages are also checked
 * against a naive reference: un-stuffing the output must give the input
 * with CRLF line ends (RETR) or the TOP selection of it, and the counted
 * octets must match wire_size().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "lib/wire.h"

#define RANDOM_SPLITS	300

struct buf {
	char	*p;
	size_t	 len, cap;
};

static void
buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/*
 * Encode in chunks: splits[] are the chunk lengths (nsplits of them, the
 * rest goes in one last chunk). Checks that feed() returns 1 forever once
 * it has returned 1. Returns the output in a malloc'd string.
 */
static char *
encode(const char *in, size_t len, long top, const size_t *splits,
    size_t nsplits, size_t *outlen, uint64_t *octets)
{
	struct wire_enc	 e, c;
	struct evbuffer	*out;
	size_t		 off = 0, n, i = 0;
	int		 done = 0, r, rc;
	char		*s;

	out = evbuffer_new();
	assert_non_null(out);
	wire_enc_init(&e, top);
	wire_enc_init(&c, top);		/* count-only twin */
	while (off < len) {
		n = i < nsplits ? splits[i++] : len - off;
		if (n > len - off)
			n = len - off;
		r = wire_enc_feed(&e, in + off, n, out);
		rc = wire_enc_feed(&c, in + off, n, NULL);
		assert_int_equal(r, rc);
		if (done)
			assert_int_equal(r, 1);
		if (r == 1)
			done = 1;
		if (top < 0)
			assert_int_equal(r, 0);
		off += n;
	}
	wire_enc_finish(&e, out);
	wire_enc_finish(&c, NULL);
	assert_true(e.octets == c.octets);
	*octets = e.octets;

	*outlen = evbuffer_get_length(out);
	s = malloc(*outlen + 1);
	assert_non_null(s);
	assert_int_equal(evbuffer_remove(out, s, *outlen), (int)*outlen);
	s[*outlen] = '\0';
	evbuffer_free(out);
	return s;
}

/*
 * Un-stuff wire output into dec: it must be CRLF lines ending in ".CRLF",
 * with every line that begins with '.' stuffed. Returns the number of
 * stuffed dots.
 */
static size_t
unstuff(const char *s, size_t len, struct buf *dec)
{
	const char	*p = s, *end = s + len, *eol;
	size_t		 dots = 0;

	assert_true(len >= 3);
	assert_memory_equal(s + len - 3, ".\r\n", 3);
	for (;;) {
		eol = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(eol);
		assert_true(eol > p && eol[-1] == '\r');	/* never bare LF */
		if (eol + 1 == end) {
			assert_int_equal(eol - p, 2);		/* ".\r\n" */
			assert_int_equal(p[0], '.');
			break;
		}
		if (p[0] == '.') {
			assert_int_equal(p[1], '.');		/* stuffed */
			dots++;
			p++;
		}
		buf_add(dec, p, (size_t)(eol + 1 - p));
		p = eol + 1;
	}
	return dots;
}

/*
 * The reference: the message with CRLF line ends and a terminated last
 * line, as a list of lines (each with its CRLF). Written byte by byte and
 * independently of wire.c.
 */
static void
normalize(const char *in, size_t len, struct buf *norm)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			buf_addc(norm, '\r');
		buf_addc(norm, in[i]);
	}
	if (len > 0 && in[len - 1] != '\n')
		buf_add(norm, "\r\n", 2);
}

/* RFC 1939 section 7 on normalized text: headers, blank, top body lines. */
static void
select_top(const char *norm, size_t len, long top, struct buf *sel)
{
	const char	*p = norm, *end = norm + len, *eol;
	int		 in_body = 0;
	long		 body = 0;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(eol);
		if (in_body) {
			if (top >= 0 && body >= top)
				break;
			body++;
		}
		buf_add(sel, p, (size_t)(eol + 1 - p));
		if (!in_body && eol - p == 1)	/* just CRLF */
			in_body = 1;
		p = eol + 1;
	}
}

/*
 * Encode in all three ways and check them against each other and the
 * reference. Returns the (whole-feed) output; caller frees.
 */
static char *
check_all_ways(const char *in, size_t len, long top, size_t *outlen)
{
	size_t		*splits, n, i, k, olen2;
	uint64_t	 oct, oct2;
	char		*whole, *other;
	struct buf	 norm = { 0 }, sel = { 0 }, dec = { 0 };
	size_t		 dots;

	whole = encode(in, len, top, NULL, 0, outlen, &oct);

	/* Byte by byte. */
	splits = calloc(len + 1, sizeof(*splits));
	assert_non_null(splits);
	for (i = 0; i < len; i++)
		splits[i] = 1;
	other = encode(in, len, top, splits, len, &olen2, &oct2);
	assert_int_equal(olen2, *outlen);
	assert_memory_equal(other, whole, *outlen);
	assert_true(oct2 == oct);
	free(other);

	/* Random split points, including empty chunks. */
	for (k = 0; k < RANDOM_SPLITS; k++) {
		for (n = 0, i = 0; i < len; n++) {
			splits[n] = rng() % (len - i + 1);
			i += splits[n];
			if (n == len)
				break;
		}
		other = encode(in, len, top, splits, n, &olen2, &oct2);
		assert_int_equal(olen2, *outlen);
		assert_memory_equal(other, whole, *outlen);
		assert_true(oct2 == oct);
		free(other);
	}
	free(splits);

	/* Decode and compare with the reference. */
	normalize(in, len, &norm);
	select_top(norm.p != NULL ? norm.p : "", norm.len, top, &sel);
	dots = unstuff(whole, *outlen, &dec);
	assert_int_equal(dec.len, sel.len);
	if (sel.len > 0)
		assert_memory_equal(dec.p, sel.p, sel.len);
	/* Octets: the output without stuffed dots and the final ".\r\n". */
	assert_true(oct == *outlen - dots - 3);
	if (top < 0)
		assert_true(wire_size(in, len) == oct);
	free(norm.p);
	free(sel.p);
	free(dec.p);
	return whole;
}

struct wcase {
	const char	*in;
	long		 top;
	const char	*out;
};

static const struct wcase cases[] = {
	{ "",			-1, ".\r\n" },
	{ "a",			-1, "a\r\n.\r\n" },
	{ "a\n",		-1, "a\r\n.\r\n" },
	{ "a\r\n",		-1, "a\r\n.\r\n" },
	{ ".",			-1, "..\r\n.\r\n" },
	{ ".\n",		-1, "..\r\n.\r\n" },
	{ ".\r\n",		-1, "..\r\n.\r\n" },
	{ "..x\n",		-1, "...x\r\n.\r\n" },
	{ "x\n.\n",		-1, "x\r\n..\r\n.\r\n" },
	{ "\n.\n",		-1, "\r\n..\r\n.\r\n" },
	{ "\n",			-1, "\r\n.\r\n" },
	{ "\n\n",		-1, "\r\n\r\n.\r\n" },
	{ "\r\n.\r\n",		-1, "\r\n..\r\n.\r\n" },
	{ ".\r\n.\n..\n",	-1, "..\r\n..\r\n...\r\n.\r\n" },
	{ "x.\ny.z\n",		-1, "x.\r\ny.z\r\n.\r\n" },
	/* A lone CR is an ordinary byte. */
	{ "\r",			-1, "\r\r\n.\r\n" },
	{ "abc\r",		-1, "abc\r\r\n.\r\n" },
	{ "a\rb\n",		-1, "a\rb\r\n.\r\n" },
	{ "a\r\r\n",		-1, "a\r\r\n.\r\n" },
	{ "\r.\n",		-1, "\r.\r\n.\r\n" },	/* '.' is not first */
	{ "\r\r\n.\n",		-1, "\r\r\n..\r\n.\r\n" },
	{ "a\n\r",		-1, "a\r\n\r\r\n.\r\n" },
	/* Mixed line ends, no final newline. */
	{ "a\nb\r\nc\n",	-1, "a\r\nb\r\nc\r\n.\r\n" },
	{ "a\nb",		-1, "a\r\nb\r\n.\r\n" },
	{ "a\r\nb",		-1, "a\r\nb\r\n.\r\n" },
	{ "a\n.b",		-1, "a\r\n..b\r\n.\r\n" },
	/* TOP: headers, the blank line, at most n body lines. */
	{ "H: 1\nH: 2\n\nb1\nb2\nb3\n", 0, "H: 1\r\nH: 2\r\n\r\n.\r\n" },
	{ "H: 1\nH: 2\n\nb1\nb2\nb3\n", 1,
	    "H: 1\r\nH: 2\r\n\r\nb1\r\n.\r\n" },
	{ "H: 1\nH: 2\n\nb1\nb2\nb3\n", 2,
	    "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n.\r\n" },
	{ "H: 1\nH: 2\n\nb1\nb2\nb3\n", 3,
	    "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n.\r\n" },
	{ "H: 1\nH: 2\n\nb1\nb2\nb3\n", 1000,
	    "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n.\r\n" },
	{ "H: 1\nH: 2\n\nb1\nb2\nb3\n", -1,
	    "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n.\r\n" },
	/* No blank line: all headers, sent whole. */
	{ "H: 1\nH: 2\n",	0, "H: 1\r\nH: 2\r\n.\r\n" },
	{ "H: 1\nH: 2",		0, "H: 1\r\nH: 2\r\n.\r\n" },
	{ "H: 1\nH: 2",		5, "H: 1\r\nH: 2\r\n.\r\n" },
	{ "",			0, ".\r\n" },
	{ "",			3, ".\r\n" },
	/* The header block ends with CRLF or with LF. */
	{ "H: 1\r\n\r\nb1\r\nb2\r\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n" },
	{ "H: 1\r\n\r\nb1\r\nb2\r\n", 0, "H: 1\r\n\r\n.\r\n" },
	{ "H: 1\n\nb1\nb2\n",	1, "H: 1\r\n\r\nb1\r\n.\r\n" },
	{ "H: 1\n\r\nb1\nb2\n",	1, "H: 1\r\n\r\nb1\r\n.\r\n" },
	{ "H: 1\r\n\nb1\nb2\n",	1, "H: 1\r\n\r\nb1\r\n.\r\n" },
	/* A line of just CR is not the blank line. */
	{ "H: 1\n\r\r\nH: 2\n\nb\n", 0,
	    "H: 1\r\n\r\r\nH: 2\r\n\r\n.\r\n" },
	/* No headers at all: the first line is the blank line. */
	{ "\nb1\nb2\n",		0, "\r\n.\r\n" },
	{ "\nb1\nb2\n",		1, "\r\nb1\r\n.\r\n" },
	/* Body lines that start with '.' count once and are stuffed. */
	{ ".H\n\n.b1\n..b2\nb3\n", 2, "..H\r\n\r\n..b1\r\n...b2\r\n.\r\n" },
	{ "H\n\n.\n.\n.\n",	2, "H\r\n\r\n..\r\n..\r\n.\r\n" },
	/* Fewer body lines than asked; an unterminated last one. */
	{ "H\n\nb1\nb2",	5, "H\r\n\r\nb1\r\nb2\r\n.\r\n" },
	{ "H\n\nb1",		0, "H\r\n\r\n.\r\n" },
	{ "H\n\nb1\r",		1, "H\r\n\r\nb1\r\r\n.\r\n" },
	{ "H\n\nb1\r",		0, "H\r\n\r\n.\r\n" },
};

static void
test_cases(void **state)
{
	const struct wcase	*c;
	size_t			 i, outlen;
	char			*out;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		out = check_all_ways(c->in, strlen(c->in), c->top, &outlen);
		if (outlen != strlen(c->out) ||
		    memcmp(out, c->out, outlen) != 0)
			fail_msg("case %zu (top %ld): got \"%s\"", i, c->top, out);
		free(out);
	}
}

/* feed() returns 1 at the TOP limit and then ignores input. */
static void
test_top_done(void **state)
{
	struct wire_enc	 e;
	struct evbuffer	*out;
	const char	*m = "H\n\nb1\nb2\n";

	(void)state;
	out = evbuffer_new();
	assert_non_null(out);
	wire_enc_init(&e, 1);
	assert_int_equal(wire_enc_feed(&e, m, 3, out), 0);
	assert_int_equal(wire_enc_feed(&e, m + 3, 3, out), 1);	/* "b1\n" */
	assert_int_equal(wire_enc_feed(&e, m + 6, 3, out), 1);
	assert_int_equal(wire_enc_feed(&e, "x\n", 2, out), 1);
	wire_enc_finish(&e, out);
	assert_int_equal(evbuffer_get_length(out), 12);
	assert_memory_equal(evbuffer_pullup(out, -1), "H\r\n\r\nb1\r\n.\r\n", 12);
	assert_true(e.octets == 9);
	evbuffer_free(out);

	/* TOP 0 stops right after the blank line. */
	wire_enc_init(&e, 0);
	assert_int_equal(wire_enc_feed(&e, "H\r\n\r", 4, NULL), 0);
	assert_int_equal(wire_enc_feed(&e, "\nbody", 5, NULL), 1);
	wire_enc_finish(&e, NULL);
	assert_true(e.octets == 5);
}

/* Random messages over an alphabet rich in the special bytes. */
static void
test_random(void **state)
{
	static const char	 alpha[] = "..\r\r\n\n\nab :";
	static const long	 tops[] = { -1, 0, 1, 2, 5 };
	char			 in[300], *out;
	size_t			 i, j, len, outlen;

	(void)state;
	for (i = 0; i < 400; i++) {
		len = rng() % sizeof(in);
		for (j = 0; j < len; j++)
			in[j] = alpha[rng() % (sizeof(alpha) - 1)];
		out = check_all_ways(in, len, tops[i % 5], &outlen);
		free(out);
	}
}

/*
 * Random messages of mail-like lines (0 to 99 octets, LF or CRLF ends,
 * some leading dots, the odd lone CR): RETR's 32-octet block path meets
 * line ends at every place in a block, blocks that end in a CR, and
 * feed ends in the middle of a block.
 */
static void
test_long_lines(void **state)
{
	char		 in[3000], *out;
	size_t		 i, j, len, n, outlen;

	(void)state;
	for (i = 0; i < 150; i++) {
		len = 1 + rng() % sizeof(in);
		for (j = 0; j < len;) {
			n = rng() % 100;
			if (j < len && rng() % 6 == 0)
				in[j++] = '.';
			for (; n > 0 && j < len; n--)
				in[j++] = rng() % 40 == 0 ? '\r' :
				    (char)('a' + rng() % 26);
			if (j < len && rng() % 2 == 0)
				in[j++] = '\r';
			if (j < len)
				in[j++] = '\n';
		}
		out = check_all_ways(in, len, i % 3 == 0 ? 3 : -1, &outlen);
		free(out);
	}
}

/* wire_size() agrees with what a RETR encode sends, for random input. */
static void
test_wire_size(void **state)
{
	struct wire_enc	 e;
	struct evbuffer	*out;
	char		 in[2000], *s;
	size_t		 i, j, len, olen, dots;
	struct buf	 dec = { 0 };

	(void)state;
	for (i = 0; i < 200; i++) {
		len = rng() % sizeof(in);
		for (j = 0; j < len; j++)
			in[j] = (char)(rng() & 0xff);
		/* Plenty of line starts with dots. */
		for (j = 0; j + 1 < len; j += 1 + rng() % 40) {
			in[j] = '\n';
			in[j + 1] = '.';
		}
		out = evbuffer_new();
		assert_non_null(out);
		wire_enc_init(&e, -1);
		wire_enc_feed(&e, in, len, out);
		wire_enc_finish(&e, out);
		olen = evbuffer_get_length(out);
		s = (char *)evbuffer_pullup(out, -1);
		dec.len = 0;
		dots = unstuff(s, olen, &dec);
		assert_true(dots > 0 || len < 2);
		assert_true(wire_size(in, len) == olen - dots - 3);
		assert_true(wire_size(in, len) == e.octets);
		evbuffer_free(out);
	}
	free(dec.p);
}

/* A large CRLF message is copied through and sized like an LF one. */
static void
test_large(void **state)
{
	struct evbuffer	*out;
	struct wire_enc	 e;
	char		*lf, *crlf;
	size_t		 i, nlines = 100000, lflen, crlflen;

	(void)state;
	lf = malloc(nlines * 11);
	crlf = malloc(nlines * 12);
	assert_non_null(lf);
	assert_non_null(crlf);
	for (i = 0, lflen = crlflen = 0; i < nlines; i++) {
		memcpy(lf + lflen, i % 7 ? "0123456789\n" : ".123456789\n", 11);
		memcpy(crlf + crlflen, i % 7 ? "0123456789\r\n" :
		    ".123456789\r\n", 12);
		lflen += 11;
		crlflen += 12;
	}
	assert_true(wire_size(lf, lflen) == crlflen);
	assert_true(wire_size(crlf, crlflen) == crlflen);

	out = evbuffer_new();
	assert_non_null(out);
	wire_enc_init(&e, -1);
	for (i = 0; i < lflen; i += 65536)
		wire_enc_feed(&e, lf + i, lflen - i < 65536 ? lflen - i : 65536,
		    out);
	wire_enc_finish(&e, out);
	/* One stuffed dot per seventh line. */
	assert_int_equal(evbuffer_get_length(out),
	    crlflen + (nlines + 6) / 7 + 3);
	assert_true(e.octets == crlflen);
	evbuffer_free(out);
	free(lf);
	free(crlf);
}

/*
 * Feeds that grow past the room reserved for text (a CR per line): a
 * buffer of empty lines doubles, one of "." lines triples. The encoder
 * reserves more as it goes; every octet arrives, in order.
 */
static void
test_short_lines(void **state)
{
	static const char *const units[] = { "\n", ".\n", "\r\n", ".\r\n" };
	static const char *const wire[] = { "\r\n", "..\r\n", "\r\n",
	    "..\r\n" };
	struct evbuffer	*out;
	struct wire_enc	 e;
	char		*in, *got;
	size_t		 u, i, n = 20000, ulen, wlen, len;

	(void)state;
	for (u = 0; u < 4; u++) {
		ulen = strlen(units[u]);
		wlen = strlen(wire[u]);
		in = malloc(n * ulen);
		assert_non_null(in);
		for (i = 0; i < n; i++)
			memcpy(in + i * ulen, units[u], ulen);
		out = evbuffer_new();
		assert_non_null(out);
		/* Something queued first: the tail of a chain is used too. */
		evbuffer_add(out, "+OK\r\n", 5);
		wire_enc_init(&e, -1);
		assert_int_equal(wire_enc_feed(&e, in, n * ulen, out), 0);
		wire_enc_finish(&e, out);
		len = evbuffer_get_length(out);
		assert_int_equal(len, 5 + n * wlen + 3);
		got = (char *)evbuffer_pullup(out, -1);
		for (i = 0; i < n; i++)
			assert_memory_equal(got + 5 + i * wlen, wire[u], wlen);
		assert_memory_equal(got + len - 3, ".\r\n", 3);
		evbuffer_free(out);
		free(in);
	}
}

/*
 * Output that starts in the free tail of a chain already queued, for every
 * tail length around libevent's chain sizes: the feed's reservation is then
 * two extents, and a run or a CRLF often meets the end of the first one
 * exactly (the boundary the encoder's fast path must not cross).
 */
static void
test_chain_tails(void **state)
{
	static const char	 alpha[] = "....\r\n\n\n\nabcdefgh :";
	char			 in[3000], pre[5000], *ref, *got;
	size_t			 i, j, k, len, reflen, got_len, off, n;
	uint64_t		 oct;
	struct evbuffer		*out;
	struct wire_enc		 e;

	(void)state;
	memset(pre, 'x', sizeof(pre));
	for (i = 0; i < 40; i++) {
		len = 1 + rng() % sizeof(in);
		for (j = 0; j < len; j++)
			in[j] = alpha[rng() % (sizeof(alpha) - 1)];
		ref = encode(in, len, -1, NULL, 0, &reflen, &oct);
		for (k = 0; k < sizeof(pre); k += 1 + rng() % 13) {
			out = evbuffer_new();
			assert_non_null(out);
			assert_int_equal(evbuffer_add(out, pre, k), 0);
			wire_enc_init(&e, -1);
			for (off = 0; off < len; off += n) {
				n = 1 + rng() % (len - off);
				assert_int_equal(wire_enc_feed(&e, in + off, n,
				    out), 0);
			}
			wire_enc_finish(&e, out);
			assert_true(e.octets == oct);
			got_len = evbuffer_get_length(out);
			assert_int_equal(got_len, k + reflen);
			got = (char *)evbuffer_pullup(out, -1);
			assert_memory_equal(got, pre, k);
			assert_memory_equal(got + k, ref, reflen);
			evbuffer_free(out);
		}
		free(ref);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_top_done),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_wire_size),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_short_lines),
		cmocka_unit_test(test_chain_tails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
