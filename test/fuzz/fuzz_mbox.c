/*
 * fuzz_mbox: the mbox parser (store/mbox/mbox_parse.h): the From_ line
 * check, the separator scanner and the client-view filter.
 *
 * Input: byte 0 seeds the splits, the rest is an mbox file. It is
 * scanned as the driver scans it (a buffer of MBOX_SCAN_KEEP + chunk
 * bytes, the unused rest moved to the front) once in chunks of 4096 and
 * once in random chunks: both must give the same entries, every byte
 * must come back exactly once and in order, at most MBOX_SCAN_KEEP bytes
 * may stay unused, and every separator must start a line and pass
 * mbox_from_valid(). Each message is then filtered whole (one call, a
 * big enough output) and at random input splits and output sizes: same
 * bytes, same header length, same header info, never longer than the
 * input, and progress at every call unless the output was full. The
 * checksum must not depend on the splits either.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/mbox/mbox_parse.h"
#include "fuzz.h"

#define MAX_ENTS	64

/* What a scan gave: every byte, and where each message lies. */
struct scanned {
	struct buf	 all;		/* every byte, as handed back */
	size_t		 n;		/* messages */
	size_t		 start[MAX_ENTS], len[MAX_ENTS];	/* in all */
	uint64_t	 sep_off[MAX_ENTS];
	bool		 open;		/* a message is in progress */
	const char	*file;
	size_t		 file_len;
};

static int
cb_sep(void *arg, uint64_t off, const char *line, size_t len)
{
	struct scanned	*s = arg;
	size_t		 l = len;

	FUZZ_CHECK(!s->open);
	FUZZ_CHECK(off == s->all.len);
	FUZZ_CHECK(off == 0 || s->file[off - 1] == '\n');
	FUZZ_CHECK(len >= 5 && memcmp(line, "From ", 5) == 0);
	if (l > 0 && line[l - 1] == '\n')
		l--;
	FUZZ_CHECK(mbox_from_valid(line, l));
	buf_add(&s->all, line, len);
	if (s->n < MAX_ENTS) {
		s->sep_off[s->n] = off;
		s->start[s->n] = s->all.len;
		s->len[s->n] = 0;
	}
	s->open = true;
	return 0;
}

static int
cb_data(void *arg, const char *p, size_t len)
{
	struct scanned *s = arg;

	FUZZ_CHECK(s->open);
	buf_add(&s->all, p, len);
	if (s->n < MAX_ENTS)
		s->len[s->n] += len;
	return 0;
}

static int
cb_end(void *arg, const char *term, size_t len)
{
	struct scanned *s = arg;

	FUZZ_CHECK(s->open);
	FUZZ_CHECK(len <= 2);
	FUZZ_CHECK(len == 0 || term[len - 1] == '\n');
	buf_add(&s->all, term, len);
	s->n++;
	s->open = false;
	return 0;
}

/* Two header infos say the same (the bytes past a NUL may differ). */
static bool
info_eq(const struct mbox_hdr_info *a, const struct mbox_hdr_info *b)
{
	return a->has_xuidl == b->has_xuidl &&
	    a->xuidl_valid == b->xuidl_valid && a->has_xuid == b->has_xuid &&
	    a->has_base == b->has_base && a->has_ximap == b->has_ximap &&
	    a->pseudo == b->pseudo && a->xuid == b->xuid &&
	    a->uidvalidity == b->uidvalidity &&
	    (!a->has_xuidl || strcmp(a->xuidl, b->xuidl) == 0);
}

static uint32_t
rng(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Scan file in chunks of chunk bytes (0: random, from seed). */
static enum mbox_scan_res
scan(const char *file, size_t len, size_t chunk, uint32_t seed,
    struct scanned *s)
{
	struct mbox_scan_cb	 cb = { .arg = s, .sep = cb_sep,
				    .data = cb_data, .end = cb_end };
	struct mbox_scan	 sc;
	enum mbox_scan_res	 r;
	size_t			 have = 0, pos = 0, n, used, max = 4096;
	char			*b;
	bool			 eof;

	memset(s, 0, sizeof(*s));
	s->file = file;
	s->file_len = len;
	b = malloc(MBOX_SCAN_KEEP + max);
	FUZZ_CHECK(b != NULL);
	mbox_scan_init(&sc, &cb);
	for (;;) {
		n = chunk != 0 ? chunk : 1 + rng(&seed) % 300;
		if (n > len - pos)
			n = len - pos;
		memcpy(b + have, file + pos, n);
		have += n;
		pos += n;
		eof = pos == len && n == 0;
		r = mbox_scan_feed(&sc, b, have, eof, &used);
		if (r != MBOX_SCAN_OK)
			break;
		FUZZ_CHECK(used <= have);
		if (eof) {
			FUZZ_CHECK(used == have);
			break;
		}
		FUZZ_CHECK(have - used <= MBOX_SCAN_KEEP);
		memmove(b, b + used, have - used);
		have -= used;
	}
	free(b);
	if (r == MBOX_SCAN_OK) {
		FUZZ_CHECK(!s->open);
		FUZZ_CHECK(s->all.len == len);
		FUZZ_CHECK(len == 0 || memcmp(s->all.p, file, len) == 0);
		FUZZ_CHECK(sc.off == len);
	} else
		FUZZ_CHECK(r == MBOX_SCAN_NOTMBOX && s->n == 0);
	return r;
}

/* Filter msg: in one call (seed 0), or at random splits and sizes. */
static void
filter(const char *msg, size_t len, uint32_t seed, struct buf *out,
    size_t *hdr_r, struct mbox_hdr_info *info)
{
	struct mbox_filter	 f;
	char			 obuf[512], *big = NULL;
	size_t			 pos = 0, n, used, olen, hlen, cap;
	bool			 eof, hdr_open = true;
	int			 idle = 0, calls = 0;

	mbox_filter_init(&f, info);
	out->len = 0;
	*hdr_r = 0;
	if (seed == 0) {
		big = malloc(len + 1);
		FUZZ_CHECK(big != NULL);
	}
	for (;;) {
		n = seed == 0 ? len - pos : rng(&seed) % 200;
		if (n > len - pos)
			n = len - pos;
		eof = pos + n == len;
		cap = seed == 0 ? len + 1 : 1 + rng(&seed) % sizeof(obuf);
		used = mbox_filter_run(&f, msg + pos, n, eof,
		    seed == 0 ? big : obuf, cap, &olen, &hlen);
		FUZZ_CHECK(used <= n && olen <= cap && hlen <= olen);
		if (!hdr_open)
			FUZZ_CHECK(hlen == 0);
		if (hlen < olen)
			hdr_open = false;
		*hdr_r += hlen;
		buf_add(out, seed == 0 ? big : obuf, olen);
		pos += used;
		if (eof && used == n && mbox_filter_done(&f))
			break;
		if (used == 0 && olen == 0 && n > 0)
			FUZZ_CHECK(++idle < 3);
		else if (n > 0)
			idle = 0;
		FUZZ_CHECK(++calls < 1000000);
	}
	FUZZ_CHECK(out->len <= len);
	free(big);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scanned		 a, b;
	struct buf		 w = { 0 }, s = { 0 };
	struct mbox_hdr_info	 iw, is;
	struct mbox_hash	 h;
	const char		*file;
	size_t			 len, i, hw, hs, off, n;
	uint32_t		 seed;
	enum mbox_scan_res	 ra, rb;

	if (size < 1)
		return 0;
	seed = data[0] | 0x100;
	file = (const char *)data + 1;
	len = size - 1;

	ra = scan(file, len, 4096, 0, &a);
	rb = scan(file, len, 0, seed, &b);
	FUZZ_CHECK(ra == rb && a.n == b.n);
	for (i = 0; i < a.n && i < MAX_ENTS; i++) {
		FUZZ_CHECK(a.sep_off[i] == b.sep_off[i]);
		FUZZ_CHECK(a.start[i] == b.start[i] && a.len[i] == b.len[i]);
		filter(file + a.start[i], a.len[i], 0, &w, &hw, &iw);
		filter(file + a.start[i], a.len[i], seed + (uint32_t)i, &s, &hs,
		    &is);
		FUZZ_CHECK(w.len == s.len);
		FUZZ_CHECK(w.len == 0 || memcmp(w.p, s.p, w.len) == 0);
		FUZZ_CHECK(hw == hs);
		FUZZ_CHECK(info_eq(&iw, &is));
		if (iw.has_xuidl)
			FUZZ_CHECK(strlen(iw.xuidl) <= MBOX_HDR_VALUE_MAX);
	}
	/* The whole input as one message too: not every input has a From_. */
	filter(file, len, 0, &w, &hw, &iw);
	filter(file, len, seed, &s, &hs, &is);
	FUZZ_CHECK(w.len == s.len && hw == hs);
	FUZZ_CHECK(w.len == 0 || memcmp(w.p, s.p, w.len) == 0);
	FUZZ_CHECK(info_eq(&iw, &is));

	mbox_hash_init(&h);
	for (off = 0; off < len; off += n) {
		n = rng(&seed) % 70;
		if (n > len - off)
			n = len - off;
		mbox_hash_update(&h, file + off, n);
	}
	FUZZ_CHECK(mbox_hash_final(&h) == mbox_hash_buf(file, len));

	free(a.all.p);
	free(b.all.p);
	free(w.p);
	free(s.p);
	return 0;
}
