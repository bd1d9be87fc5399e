/*
 * test_mbox_parse: separator lines, the entry scanner, the checksum and
 * the client-view filter, on buffers, fed whole, byte by byte and at
 * random split points, and checked against a plain line-by-line
 * reference written here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <setjmp.h>

#include <cmocka.h>

#include "store/mbox/mbox_parse.h"
#include "lib/wire.h"
#include "teststr.h"

/* ------------------------------------------------------------ From_ */

static void
test_from_valid(void **state)
{
	static const char *const good[] = {
		"From MAILER-DAEMON Mon Jan  1 10:00:00 2024",
		"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\r",
		"From alice@example.com Tue Feb 13 22:19:59 2003",
		"From alice@example.com Tue Feb 3 22:19:59 2003",
		"From a@b Tue Feb 13 22:19 2003",
		"From a@b Thu Nov 29 22:33:52 2001 +0300",
		"From a@b Thu Nov 29 22:33:52 +0300 2001",
		"From a@b Thu Nov 29 22:33:52 EST 2001",
		"From a@b Thu Nov 29 22:33:52 2001 EST",
		"From a@b Mon Jan  1 12:00:00 2024 remote from gateway",
		"From a@b Thu, 9 Nov 2002 22:33:52",
		"From a@b Thu, 19 Nov 2002 22:33",
		"From  Mon Jan  1 10:00:00 2024",	/* empty sender */
		"From \"a b\"@example.com Mon Jan  1 10:00:00 2024",
		"From a@b  Mon Jan  1 10:00:00 2024",	/* Dovecot's 2 spaces */
		"From a@b mon jan  1 10:00:00 2024",
	};
	static const char *const bad[] = {
		"From here on, a body line without a date: no separator",
		"From ",
		"From a@b",
		"From a@b Mon Jan  1 2024",
		"From a@b Mon Foo  1 10:00:00 2024",
		"From a@b Mon Jan  1 10:00:00",
		"From a@b Mon Jan  1 10:00:00 24",
		"From a@b Mon Jan  1 1:00:00 2024",
		"From a@b Mon Jan 1 10:00:00 20245",
		"From a@b Mon Jan  1 10:00:0 2024",
		"From a@b Mon Jan xx 10:00:00 2024",
		"From \"unterminated Mon Jan  1 10:00:00 2024",
		"From a@b Thu, 9 Nov 02 22:33:52",
		"Fromage Mon Jan  1 10:00:00 2024",
		">From a@b Mon Jan  1 10:00:00 2024",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!mbox_from_valid(good[i], strlen(good[i])))
			fail_msg("should be a separator: %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mbox_from_valid(bad[i], strlen(bad[i])))
			fail_msg("should not be a separator: %s", bad[i]);
}

/* ------------------------------------------------------------ scanner */

#define MAXENT	256

/* What the scanner reported. */
struct ents {
	size_t		 n;
	uint64_t	 off[MAXENT];
	struct str	 line[MAXENT];
	struct str	 data[MAXENT];
	struct str	 term[MAXENT];
	int		 ended[MAXENT];
	struct str	 all;		/* every byte, in callback order */
	int		 stop_at;	/* sep callback number to fail, -1 */
};

static int
cb_sep(void *arg, uint64_t off, const char *line, size_t len)
{
	struct ents	*e = arg;

	if (e->n > 0)
		assert_true(e->ended[e->n - 1]);
	if ((int)e->n == e->stop_at)
		return -1;
	assert_true(e->n < MAXENT);
	e->off[e->n] = off;
	assert_int_equal(off, e->all.len);
	str_add(&e->line[e->n], line, len);
	str_add(&e->all, line, len);
	e->n++;
	return 0;
}

static int
cb_data(void *arg, const char *p, size_t len)
{
	struct ents	*e = arg;

	assert_true(len > 0);
	assert_true(e->n > 0 && !e->ended[e->n - 1]);
	str_add(&e->data[e->n - 1], p, len);
	str_add(&e->all, p, len);
	return 0;
}

static int
cb_end(void *arg, const char *term, size_t len)
{
	struct ents	*e = arg;

	assert_true(e->n > 0 && !e->ended[e->n - 1]);
	assert_true(len <= 2);
	e->ended[e->n - 1] = 1;
	str_add(&e->term[e->n - 1], term, len);
	str_add(&e->all, term, len);
	return 0;
}

static void
ents_free(struct ents *e)
{
	size_t	 i;

	for (i = 0; i < MAXENT; i++) {
		str_free(&e->line[i]);
		str_free(&e->data[i]);
		str_free(&e->term[i]);
	}
	str_free(&e->all);
	free(e);
}

/*
 * Scan buf as the driver does: a buffer of keep + chunk bytes, the unused
 * rest moved to the front. chunk 0: random chunk sizes (1..max).
 */
static enum mbox_scan_res
scan(const char *buf, size_t len, size_t chunk, size_t max, struct ents **e_r)
{
	struct mbox_scan_cb	 cb = { .sep = cb_sep, .data = cb_data,
				    .end = cb_end };
	struct mbox_scan	 sc;
	struct ents		*e;
	enum mbox_scan_res	 r;
	char			*b;
	size_t			 have = 0, pos = 0, n, used;

	e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->stop_at = -1;
	cb.arg = e;
	b = malloc(MBOX_SCAN_KEEP + (chunk != 0 ? chunk : max));
	assert_non_null(b);
	mbox_scan_init(&sc, &cb);
	for (;;) {
		n = chunk != 0 ? chunk : 1 + rnd((unsigned)max);
		if (n > len - pos)
			n = len - pos;
		memcpy(b + have, buf + pos, n);
		have += n;
		pos += n;
		r = mbox_scan_feed(&sc, b, have, pos == len && n == 0, &used);
		if (r != MBOX_SCAN_OK)
			break;
		assert_true(used <= have);
		if (pos == len && n == 0) {
			assert_int_equal(used, have);
			break;
		}
		assert_true(have - used <= MBOX_SCAN_KEEP);
		memmove(b, b + used, have - used);
		have -= used;
	}
	free(b);
	*e_r = e;
	if (r == MBOX_SCAN_OK) {
		/* Every byte came back once, in order. */
		assert_int_equal(e->all.len, len);
		assert_memory_equal(e->all.p == NULL ? "" : e->all.p, buf, len);
		assert_int_equal(sc.off, len);
	}
	return r;
}

/*
 * The reference: lines, a separator where a line that starts with
 * "From " has a valid date; one terminator dropped before it.
 */
struct refent {
	size_t	 from, from_len, data, data_len, term_len;
};

static size_t
ref_scan(const char *buf, size_t len, struct refent *out, size_t max)
{
	size_t	 pos = 0, n = 0, eol, ll, t;
	bool	 sep;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);

		eol = nl != NULL ? (size_t)(nl - buf) + 1 : len;
		ll = eol - pos;
		sep = ll >= 5 && memcmp(buf + pos, "From ", 5) == 0 &&
		    (nl != NULL ? ll <= MBOX_FROM_MAX : ll < MBOX_FROM_MAX) &&
		    mbox_from_valid(buf + pos, nl != NULL ? ll - 1 : ll);
		if (pos == 0 && !sep)
			return SIZE_MAX;
		if (sep) {
			if (n > 0) {
				/* end the previous one at pos */
				out[n - 1].data_len = pos - out[n - 1].data;
			}
			assert_true(n < max);
			out[n].from = pos;
			out[n].from_len = ll;
			out[n].data = eol;
			n++;
		}
		pos = eol;
	}
	if (n > 0)
		out[n - 1].data_len = len - out[n - 1].data;
	for (size_t i = 0; i < n; i++) {
		const char *d = buf + out[i].data;

		t = 0;
		if (out[i].data_len >= 1 && d[out[i].data_len - 1] == '\n')
			t = out[i].data_len >= 2 &&
			    d[out[i].data_len - 2] == '\r' ? 2 : 1;
		out[i].data_len -= t;
		out[i].term_len = t;
	}
	return n;
}

static void
check_scan_against_ref(const char *buf, size_t len)
{
	struct refent	 ref[MAXENT];
	struct ents	*e;
	size_t		 nref, i, mode;
	enum mbox_scan_res r;

	nref = ref_scan(buf, len, ref, MAXENT);
	for (mode = 0; mode < 6; mode++) {
		static const size_t chunks[] = { 1, 2, 7, 4096, 0, 0 };
		static const size_t maxes[] = { 0, 0, 0, 0, 5, 300 };

		r = scan(buf, len, chunks[mode], maxes[mode], &e);
		if (nref == SIZE_MAX) {
			assert_int_equal(r, MBOX_SCAN_NOTMBOX);
			ents_free(e);
			continue;
		}
		assert_int_equal(r, MBOX_SCAN_OK);
		assert_int_equal(e->n, nref);
		for (i = 0; i < nref; i++) {
			assert_int_equal(e->off[i], ref[i].from);
			assert_int_equal(e->line[i].len, ref[i].from_len);
			assert_int_equal(e->data[i].len, ref[i].data_len);
			if (ref[i].data_len > 0)
				assert_memory_equal(e->data[i].p,
				    buf + ref[i].data, ref[i].data_len);
			assert_int_equal(e->term[i].len, ref[i].term_len);
			assert_true(e->ended[i]);
		}
		ents_free(e);
	}
}

#define SEP	"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n"
#define SEPCR	"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\r\n"

static void
expect_msgs(const char *buf, size_t n, ...)
{
	struct ents	*e;
	va_list		 ap;
	size_t		 i;
	const char	*want;

	assert_int_equal(scan(buf, strlen(buf), 0, 64, &e), MBOX_SCAN_OK);
	assert_int_equal(e->n, n);
	va_start(ap, n);
	for (i = 0; i < n; i++) {
		want = va_arg(ap, const char *);
		assert_int_equal(e->data[i].len, strlen(want));
		if (e->data[i].len > 0)
			assert_memory_equal(e->data[i].p, want, strlen(want));
	}
	va_end(ap);
	ents_free(e);
	check_scan_against_ref(buf, strlen(buf));
}

static void
test_scan_cases(void **state)
{
	struct ents	*e;

	(void)state;
	/* Empty file: no messages. */
	assert_int_equal(scan("", 0, 0, 10, &e), MBOX_SCAN_OK);
	assert_int_equal(e->n, 0);
	ents_free(e);
	/* Not an mbox. */
	assert_int_equal(scan("Subject: x\n\nbody\n", 17, 3, 0, &e),
	    MBOX_SCAN_NOTMBOX);
	ents_free(e);
	assert_int_equal(scan("From nobody\nx\n", 14, 0, 4, &e),
	    MBOX_SCAN_NOTMBOX);
	ents_free(e);
	assert_int_equal(scan("\n" SEP "a\n", strlen("\n" SEP "a\n"), 0, 4,
	    &e), MBOX_SCAN_NOTMBOX);
	ents_free(e);

	/* One terminator dropped: the blank line. */
	expect_msgs(SEP "a\nb\n\n", 1, "a\nb\n");
	expect_msgs(SEP "a\nb\n\n" SEP "c\n\n", 2, "a\nb\n", "c\n");
	/* No blank line before the next separator. */
	expect_msgs(SEP "a\nb\n" SEP "c\n", 2, "a\nb", "c");
	/* Missing final newline. */
	expect_msgs(SEP "a\n\n" SEP "last", 2, "a\n", "last");
	/* A separator line alone, and at the very end without '\n'. */
	expect_msgs(SEP, 1, "");
	expect_msgs("From a@b Mon Jan  1 10:00:00 2024", 1, "");
	expect_msgs(SEP SEP "x\n", 2, "", "x");
	/* Empty messages. */
	expect_msgs(SEP "\n" SEP "\n" SEP, 3, "", "", "");
	expect_msgs(SEP SEP SEP, 3, "", "", "");
	/* CRLF mbox. */
	expect_msgs(SEPCR "a\r\nb\r\n\r\n" SEPCR "c\r\n\r\n", 2, "a\r\nb\r\n",
	    "c\r\n");
	/* A CR that is not part of a terminator stays. */
	expect_msgs(SEP "a\r\r\n" SEP "b\r", 2, "a\r", "b\r");
	/* From_ lines in bodies that are no separators. */
	expect_msgs(SEP "x\nFrom here on\n>From a\nFrom  \nFrom x\n\n", 1,
	    "x\nFrom here on\n>From a\nFrom  \nFrom x\n");
	expect_msgs(SEP "x\n From a@b Mon Jan  1 10:00:00 2024\n", 1,
	    "x\n From a@b Mon Jan  1 10:00:00 2024");
	/* A valid unquoted one splits (that is the format). */
	expect_msgs(SEP "x\nFrom a@b Mon Jan  1 10:00:00 2024\ny\n", 2, "x",
	    "y");
}

/* A long "From " line is never a separator; a long line is fine. */
static void
test_scan_long_lines(void **state)
{
	struct str	 s = { 0 };
	struct ents	*e;
	size_t		 i;

	(void)state;
	str_adds(&s, SEP "Subject: x\n\nFrom a@b Mon Jan  1 10:00:00 2024 ");
	for (i = 0; i < MBOX_FROM_MAX; i++)
		str_adds(&s, "x");
	str_adds(&s, "\nbody\n\n" SEP);
	for (i = 0; i < 300000; i++)
		str_adds(&s, "From ");
	str_adds(&s, "\n");
	assert_int_equal(scan(s.p, s.len, 0, 70000, &e), MBOX_SCAN_OK);
	assert_int_equal(e->n, 2);
	ents_free(e);
	check_scan_against_ref(s.p, s.len);
	str_free(&s);
}

/* A callback that fails stops the scan. */
static void
test_scan_stop(void **state)
{
	struct mbox_scan_cb	 cb = { .sep = cb_sep, .data = cb_data,
				    .end = cb_end };
	struct mbox_scan	 sc;
	struct ents		*e;
	const char		*buf = SEP "a\n\n" SEP "b\n";
	size_t			 used;

	(void)state;
	e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->stop_at = 1;
	cb.arg = e;
	mbox_scan_init(&sc, &cb);
	assert_int_equal(mbox_scan_feed(&sc, buf, strlen(buf), true, &used),
	    MBOX_SCAN_STOPPED);
	assert_int_equal(e->n, 1);
	ents_free(e);
}

/* Lines the random mboxes are made of. */
static const char *const vocab[] = {
	SEP, SEP, SEPCR, "From here on\n", "From x\n", ">From a\n",
	">>From b\n", ">>>From c\r\n", ">From\n", ">Fro\n", ">", ">>F", "From",
	"\n", "\n", "\r\n", "\r", "Subject: s\n", "Status: RO\n",
	"X-Keywords: $Forwarded\n", " cont\n", "\tcont\r\n", "x-uid: 7\n",
	"X-IMAPbase: 1 2\n", "X-UIDL: abc\n", "Status : O\n", "X-Status:",
	"body line\n", ".dot\n", "From a@b Mon Jan  1 10:00:00 2024 remote "
	"from x\n", "plain", "Content-Length: 3\n", "STATUS: X\n",
	"Status-Report: keep\n", ":colon\n", "\rX: y\n", ">>\n",
};

static void
random_mbox(struct str *s, size_t nlines)
{
	size_t	 i;

	str_adds(s, SEP);
	for (i = 0; i < nlines; i++)
		str_adds(s, vocab[rnd(sizeof(vocab) / sizeof(vocab[0]))]);
}

static void
test_scan_random(void **state)
{
	struct str	 s = { 0 };
	int		 round;

	(void)state;
	for (round = 0; round < 300; round++) {
		s.len = 0;
		random_mbox(&s, rnd(60));
		check_scan_against_ref(s.p, s.len);
	}
	str_free(&s);
}

/* ------------------------------------------------------------ checksum */

static void
test_hash(void **state)
{
	struct mbox_hash h;
	char		 buf[1000];
	uint64_t	 whole, v;
	size_t		 i, pos, n;
	int		 round;

	(void)state;
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)rnd(256);
	mbox_hash_init(&h);
	mbox_hash_update(&h, buf, sizeof(buf));
	whole = mbox_hash_final(&h);
	for (round = 0; round < 200; round++) {
		mbox_hash_init(&h);
		for (pos = 0; pos < sizeof(buf); pos += n) {
			n = rnd(20);
			if (n > sizeof(buf) - pos)
				n = sizeof(buf) - pos;
			mbox_hash_update(&h, buf + pos, n);
		}
		assert_true(mbox_hash_final(&h) == whole);
	}
	/* Any one changed byte, or length, changes it. */
	for (i = 0; i < sizeof(buf); i += 37) {
		buf[i] ^= 1;
		mbox_hash_init(&h);
		mbox_hash_update(&h, buf, sizeof(buf));
		assert_true(mbox_hash_final(&h) != whole);
		buf[i] ^= 1;
	}
	mbox_hash_init(&h);
	mbox_hash_update(&h, buf, sizeof(buf) - 1);
	assert_true(mbox_hash_final(&h) != whole);
	/* Different lengths of zeros differ. */
	memset(buf, 0, sizeof(buf));
	mbox_hash_init(&h);
	mbox_hash_update(&h, buf, 8);
	v = mbox_hash_final(&h);
	mbox_hash_init(&h);
	mbox_hash_update(&h, buf, 9);
	assert_true(mbox_hash_final(&h) != v);
}

/* ------------------------------------------------------------ filter */

/* Filter msg at random input splits and output sizes. */
static void
filter(const char *msg, size_t len, size_t inmax, size_t outmax,
    struct str *out, size_t *hdr_r, struct mbox_hdr_info *info)
{
	struct mbox_filter f;
	char		 obuf[512];
	size_t		 pos = 0, n, used, olen, hlen, hdr = 0, cap;
	bool		 eof, hdr_open = true;
	int		 idle = 0;

	assert_true(outmax <= sizeof(obuf));
	mbox_filter_init(&f, info);
	out->len = 0;
	for (;;) {
		n = inmax == 0 ? len - pos : 1 + rnd((unsigned)inmax);
		if (n > len - pos)
			n = len - pos;
		eof = pos + n == len;
		cap = 1 + rnd((unsigned)outmax);
		used = mbox_filter_run(&f, msg + pos, n, eof, obuf, cap, &olen,
		    &hlen);
		assert_true(used <= n);
		assert_true(olen <= cap);
		assert_true(hlen <= olen);
		/* The header part is a prefix: once it stops, it stays. */
		if (!hdr_open)
			assert_int_equal(hlen, 0);
		if (hlen < olen)
			hdr_open = false;
		hdr += hlen;
		str_add(out, obuf, olen);
		pos += used;
		if (eof && used == n && mbox_filter_done(&f))
			break;
		/* Progress, unless the output was full. */
		if (used == 0 && olen == 0)
			assert_true(++idle < 3);
		else
			idle = 0;
	}
	*hdr_r = hdr;
}

/* The reference filter: the rules of mbox_parse.h, line by line. */
static bool
ref_internal(const char *line, size_t len)
{
	static const char *const names[] = { "Status", "X-Status", "X-UID",
	    "X-IMAPbase", "X-IMAP", "X-Keywords" };
	const char	*colon = memchr(line, ':', len);
	size_t		 n, i, k;

	if (colon == NULL)
		return false;
	n = (size_t)(colon - line);
	for (i = 0; i < n && line[i] >= 0x21 && line[i] <= 0x7e; i++)
		;
	if (i == 0)
		return false;
	for (k = i; k < n && (line[k] == ' ' || line[k] == '\t'); k++)
		;
	if (k != n || n > 31)
		return false;
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strlen(names[k]) == i &&
		    strncasecmp(line, names[k], i) == 0)
			return true;
	return false;
}

static void
ref_filter(const char *msg, size_t len, struct str *out, size_t *hdr_r)
{
	size_t	 pos = 0, eol, ll, g;
	bool	 body = false, drop = false;

	out->len = 0;
	*hdr_r = SIZE_MAX;
	while (pos < len) {
		const char *nl = memchr(msg + pos, '\n', len - pos);
		const char *l = msg + pos;

		eol = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		ll = eol - pos;
		if (!body) {
			if ((ll == 1 && l[0] == '\n') ||
			    (ll == 2 && l[0] == '\r' && l[1] == '\n')) {
				str_add(out, l, ll);
				*hdr_r = out->len;
				body = true;
			} else if (l[0] == ' ' || l[0] == '\t') {
				if (!drop)
					str_add(out, l, ll);
			} else {
				drop = ref_internal(l, ll);
				if (!drop)
					str_add(out, l, ll);
			}
		} else {
			for (g = 0; g < ll && l[g] == '>'; g++)
				;
			if (g > 0 && ll - g >= 5 &&
			    memcmp(l + g, "From ", 5) == 0)
				str_add(out, l + 1, ll - 1);
			else
				str_add(out, l, ll);
		}
		pos = eol;
	}
	if (*hdr_r == SIZE_MAX)
		*hdr_r = out->len;
}

static void
check_filter(const char *msg, size_t len)
{
	struct str	 want = { 0 }, got = { 0 };
	size_t		 whdr, ghdr;
	static const size_t ins[] = { 0, 1, 3, 50, 1000 };
	static const size_t outs[] = { 1, 2, 7, 512 };
	size_t		 a, b;

	ref_filter(msg, len, &want, &whdr);
	for (a = 0; a < sizeof(ins) / sizeof(ins[0]); a++) {
		for (b = 0; b < sizeof(outs) / sizeof(outs[0]); b++) {
			filter(msg, len, ins[a], outs[b], &got, &ghdr, NULL);
			if (got.len != want.len || ghdr != whdr ||
			    (want.len > 0 &&
			    memcmp(got.p, want.p, want.len) != 0))
				print_error("input %zu bytes: \"%.*s\"\n"
				    "want: \"%.*s\"\ngot:  \"%.*s\"\n", len,
				    (int)len, msg, (int)want.len, want.p,
				    (int)got.len, got.p);
			assert_int_equal(got.len, want.len);
			if (want.len > 0)
				assert_memory_equal(got.p, want.p, want.len);
			assert_int_equal(ghdr, whdr);
		}
	}
	str_free(&want);
	str_free(&got);
}

static void
expect_view(const char *msg, const char *view)
{
	struct str	 got = { 0 };
	size_t		 hdr;

	filter(msg, strlen(msg), 5, 16, &got, &hdr, NULL);
	assert_int_equal(got.len, strlen(view));
	if (got.len > 0)
		assert_memory_equal(got.p, view, got.len);
	str_free(&got);
	check_filter(msg, strlen(msg));
}

static void
test_filter_cases(void **state)
{
	(void)state;
	expect_view("", "");
	expect_view("\n", "\n");
	expect_view("Subject: x\n\nbody\n", "Subject: x\n\nbody\n");
	/* Internal headers, any case, with continuation lines. */
	expect_view("Return-Path: <a@b>\nStatus: RO\nX-Status: A\n"
	    "From: a@b\nX-Keywords: $Forwarded\n\tJunk\n NonJunk\n"
	    "X-UID: 17\nx-status: lower\nX-IMAPbase: 1 7\nX-IMAP: 1 7\n"
	    "X-Mailer-Status: keep\nStatus-Report: keep\nStatus : RO\n"
	    "Subject: s\n folded\n\n"
	    "Status: in the body stays\n",
	    "Return-Path: <a@b>\nFrom: a@b\nX-Mailer-Status: keep\n"
	    "Status-Report: keep\nSubject: s\n folded\n\n"
	    "Status: in the body stays\n");
	/* Content-Length is kept (and never trusted). */
	expect_view("Content-Length: 3\n\nmore than three\n",
	    "Content-Length: 3\n\nmore than three\n");
	/* mboxrd: one '>' less on ^>+From , nothing else. */
	expect_view("S: x\n\n>From a\n>>From b\n>>>From c\nFrom d\n>From\n"
	    ">Fro\n> From e\nx>From f\n>>\n>\n",
	    "S: x\n\nFrom a\n>From b\n>>From c\nFrom d\n>From\n"
	    ">Fro\n> From e\nx>From f\n>>\n>\n");
	/* ... and not in the headers. */
	expect_view(">From a\n\nb\n", ">From a\n\nb\n");
	/* CRLF. */
	expect_view("A: b\r\nStatus: O\r\n cont\r\n\r\n>From x\r\n",
	    "A: b\r\n\r\nFrom x\r\n");
	/* Unterminated last lines: held bytes are flushed. */
	expect_view("S: x\n\n>>Fro", "S: x\n\n>>Fro");
	expect_view("S: x\n\n>>From ", "S: x\n\n>From ");
	expect_view("S: x\n\n>>>", "S: x\n\n>>>");
	expect_view("Subj", "Subj");
	expect_view("Status: RO", "");
	expect_view("Status", "Status");
	expect_view("\r", "\r");
	/* Headers only, no body. */
	expect_view("A: b\nStatus: O\n", "A: b\n");
	/* A header name too long to be ours passes. */
	expect_view("X-A-Very-Long-Header-Name-Indeed-And-More: v\n\nb\n",
	    "X-A-Very-Long-Header-Name-Indeed-And-More: v\n\nb\n");
}

static void
test_filter_random(void **state)
{
	struct str	 s = { 0 };
	size_t		 i, n;
	int		 round;

	(void)state;
	for (round = 0; round < 400; round++) {
		s.len = 0;
		n = rnd(40);
		for (i = 0; i < n; i++) {
			const char *v = vocab[rnd(sizeof(vocab) /
			    sizeof(vocab[0]))];

			if (strncmp(v, "From ", 5) == 0 && v[5] != 'h' &&
			    v[5] != 'x')
				continue;	/* no separators in a message */
			str_adds(&s, v);
		}
		check_filter(s.p == NULL ? "" : s.p, s.len);
	}
	str_free(&s);
}

/* A 1 MiB header line, kept or dropped, streams in bounded memory. */
static void
test_filter_huge(void **state)
{
	struct str	 msg = { 0 }, got = { 0 };
	size_t		 i, hdr;

	(void)state;
	str_adds(&msg, "Subject: huge\nX-Long: ");
	for (i = 0; i < 1024 * 1024 / 64; i++)
		str_adds(&msg, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	str_adds(&msg, "\nStatus: ");
	for (i = 0; i < 1024 * 1024 / 64; i++)
		str_adds(&msg, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	str_adds(&msg, "\n cont\n\nbody\n");
	filter(msg.p, msg.len, 70000, 512, &got, &hdr, NULL);
	/* Kept: everything up to "Status"; then the blank line and body. */
	assert_int_equal(got.len, (size_t)(strstr(msg.p, "Status: ") - msg.p) +
	    strlen("\nbody\n"));
	assert_memory_equal(got.p + got.len - 6, "\nbody\n", 6);
	assert_int_equal(hdr, got.len - 5);
	str_free(&msg);
	str_free(&got);
}

/* The filtered size is the wire size of the filtered bytes. */
static void
test_filter_wire(void **state)
{
	struct str	 s = { 0 }, want = { 0 };
	struct mbox_filter f;
	struct wire_enc	 we;
	char		 out[7];
	size_t		 pos, n, used, olen, whdr;
	int		 round;

	(void)state;
	for (round = 0; round < 200; round++) {
		s.len = 0;
		for (n = rnd(30); n > 0; n--)
			str_adds(&s, vocab[3 + rnd(sizeof(vocab) /
			    sizeof(vocab[0]) - 3)]);
		if (s.p == NULL)
			str_adds(&s, "");
		ref_filter(s.p, s.len, &want, &whdr);
		mbox_filter_init(&f, NULL);
		wire_enc_init(&we, -1);
		for (pos = 0;;) {
			n = rnd(9);
			if (n > s.len - pos)
				n = s.len - pos;
			used = mbox_filter_run(&f, s.p + pos, n,
			    pos + n == s.len, out, 1 + rnd(sizeof(out)), &olen,
			    NULL);
			wire_enc_feed(&we, out, olen, NULL);
			pos += used;
			if (pos == s.len && mbox_filter_done(&f))
				break;
		}
		wire_enc_finish(&we, NULL);
		assert_int_equal(we.octets, wire_size(want.p == NULL ? "" :
		    want.p, want.len));
	}
	str_free(&s);
	str_free(&want);
}

static void
info_of(const char *msg, struct mbox_hdr_info *info)
{
	struct str	 got = { 0 };
	size_t		 hdr;

	filter(msg, strlen(msg), 3, 5, &got, &hdr, info);
	str_free(&got);
}

static void
test_filter_info(void **state)
{
	struct mbox_hdr_info in;
	char		 longv[200];

	(void)state;
	info_of("X-UIDL:  legacy.uidl-0001 \nSubject: x\n\nX-UIDL: b\n", &in);
	assert_true(in.has_xuidl && in.xuidl_valid);
	assert_string_equal(in.xuidl, "legacy.uidl-0001");
	assert_false(in.pseudo || in.has_xuid || in.has_base);

	/* The first X-UIDL counts; a bad one is no id. */
	info_of("x-uidl: a b\nX-UIDL: good\n\n", &in);
	assert_true(in.has_xuidl);
	assert_false(in.xuidl_valid);
	info_of("X-UIDL: a\n b\n\n", &in);		/* folded */
	assert_false(in.xuidl_valid);
	info_of("X-UIDL:\n\n", &in);
	assert_true(in.has_xuidl);
	assert_false(in.xuidl_valid);
	memset(longv, 'u', sizeof(longv));
	longv[71] = '\0';
	{
		char	 m[300];

		snprintf(m, sizeof(m), "X-UIDL: %s\n\n", longv);
		info_of(m, &in);
		assert_false(in.xuidl_valid);
		longv[70] = '\0';
		snprintf(m, sizeof(m), "X-UIDL: %s\r\n\r\n", longv);
		info_of(m, &in);
		assert_true(in.xuidl_valid);
		assert_string_equal(in.xuidl, longv);
		longv[70] = longv[71] = 'u';
		longv[150] = '\0';
		snprintf(m, sizeof(m), "X-UIDL: %s\n\n", longv + 1);
		info_of(m, &in);
		assert_false(in.xuidl_valid);
	}

	/* X-UID and X-IMAPbase (Dovecot), dropped but read. */
	info_of("X-IMAPbase: 1704099600 0000000007 $Junk\nX-UID: 17\n\n", &in);
	assert_true(in.has_xuid && in.has_base && in.has_ximap);
	assert_int_equal(in.xuid, 17);
	assert_int_equal(in.uidvalidity, 1704099600U);
	assert_false(in.pseudo);
	info_of("X-UID: 4294967296\nX-UID: 3\n\n", &in);	/* too big */
	assert_false(in.has_xuid);
	info_of("X-UID: x\n\n", &in);
	assert_false(in.has_xuid);

	/* The pseudo message: both parts needed, headers only. */
	info_of("Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	    "X-IMAP: 1704099600 0000000007\nStatus: RO\n\nThis text\n", &in);
	assert_true(in.pseudo);
	assert_int_equal(in.uidvalidity, 1704099600U);
	info_of("Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	    "\nX-IMAP: 1 2\n", &in);
	assert_false(in.pseudo);
	info_of("X-IMAPbase: 1 2\nSubject: hello\n\n", &in);
	assert_false(in.pseudo);
	info_of("X-IMAPbase: 1 2\nSubject: DON'T DELETE THIS MESSAGE -- "
	    "FOLDER INTERNAL DATA!\n\n", &in);
	assert_false(in.pseudo);
	/* Unfolded (RFC 5322 section 2.2.3), it is that Subject. */
	info_of("X-IMAPbase: 1 2\nSubject: DON'T DELETE THIS MESSAGE --\n"
	    " FOLDER INTERNAL DATA\n\n", &in);
	assert_true(in.pseudo);
	info_of("X-IMAPbase: 1 2\r\nSubject:  DON'T DELETE THIS MESSAGE -- "
	    "FOLDER INTERNAL DATA \r\n", &in);		/* no body */
	assert_true(in.pseudo);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_valid),
		cmocka_unit_test(test_scan_cases),
		cmocka_unit_test(test_scan_long_lines),
		cmocka_unit_test(test_scan_stop),
		cmocka_unit_test(test_scan_random),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_filter_cases),
		cmocka_unit_test(test_filter_random),
		cmocka_unit_test(test_filter_huge),
		cmocka_unit_test(test_filter_wire),
		cmocka_unit_test(test_filter_info),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
