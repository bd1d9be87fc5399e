/*
 * mbox_parse: separator lines, the entry scanner, the entry checksum and
 * the client-view filter (see mbox_parse.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/evpop3d.h"
#include "store/mbox/mbox_parse.h"

static const char *const mbox_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static bool
mbox_digit(const char *p, const char *e)
{
	return p < e && *p >= '0' && *p <= '9';
}

static bool
mbox_alpha(const char *p, const char *e)
{
	return p < e && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'));
}

/* A month name at p (3 letters, any case). */
static bool
mbox_month(const char *p, const char *e)
{
	size_t	 i;

	if (e - p < 3)
		return false;
	for (i = 0; i < 12; i++)
		if (strncasecmp(p, mbox_months[i], 3) == 0)
			return true;
	return false;
}

/* n digits at *pp; advances. */
static bool
mbox_digits(const char **pp, const char *e, int n)
{
	const char	*p = *pp;

	while (n-- > 0)
		if (!mbox_digit(p++, e))
			return false;
	*pp = p;
	return true;
}

/* "hh:mm[:ss]" at *pp; advances. */
static bool
mbox_time(const char **pp, const char *e)
{
	const char	*p = *pp;

	if (!mbox_digits(&p, e, 2) || p >= e || *p++ != ':' ||
	    !mbox_digits(&p, e, 2))
		return false;
	if (p < e && *p == ':') {
		p++;
		if (!mbox_digits(&p, e, 2))
			return false;
	}
	*pp = p;
	return true;
}

/* The end of the date (or the line): end, or a space before the rest. */
static bool
mbox_date_end(const char *p, const char *e)
{
	return p == e || *p == ' ' || *p == '\t';
}

/*
 * A time zone before the year: "+hhmm", "-hhmm" or a name (letters);
 * advances past it and one space.
 */
static bool
mbox_zone(const char **pp, const char *e)
{
	const char	*p = *pp;

	if (p < e && (*p == '+' || *p == '-')) {
		p++;
		if (!mbox_digits(&p, e, 4))
			return false;
	} else {
		if (!mbox_alpha(p, e))
			return false;
		while (mbox_alpha(p, e) && p - *pp < 16)
			p++;
	}
	if (p >= e || *p != ' ')
		return false;
	*pp = p + 1;
	return true;
}

bool
mbox_from_valid(const char *line, size_t len)
{
	const char	*p = line + 5, *e = line + len;
	bool		 esc = false;

	if (len < 5 || memcmp(line, "From ", 5) != 0)
		return false;
	if (e > p && e[-1] == '\r')
		e--;

	/* The envelope sender: a word, maybe empty, maybe "quoted". */
	if (p < e && *p == '"') {
		for (p++; p < e && (*p != '"' || esc); p++)
			esc = !esc && *p == '\\';
		if (p >= e)
			return false;
		p++;
	}
	while (p < e && *p != ' ')
		p++;
	while (p < e && *p == ' ')
		p++;

	/* The weekday, not checked further (Dovecot neither). */
	if (e - p < 16 || !mbox_alpha(p, e) || !mbox_alpha(p + 1, e) ||
	    !mbox_alpha(p + 2, e))
		return false;
	p += 3;

	if (*p == ',') {
		/* "Www, d[d] Mmm yyyy hh:mm[:ss]" */
		p++;
		if (p < e && *p == ' ')
			p++;
		if (!mbox_digit(p, e))
			return false;
		p++;
		if (mbox_digit(p, e))
			p++;
		if (p >= e || *p++ != ' ' || !mbox_month(p, e))
			return false;
		p += 3;
		if (p >= e || *p++ != ' ' || !mbox_digits(&p, e, 4) ||
		    p >= e || *p++ != ' ' || !mbox_time(&p, e))
			return false;
		return mbox_date_end(p, e);
	}

	/* "Www Mmm dd hh:mm[:ss] [zone] yyyy", dd maybe " d" or "d" */
	if (*p++ != ' ' || !mbox_month(p, e))
		return false;
	p += 3;
	if (p >= e || *p++ != ' ')
		return false;
	if (p < e && *p == ' ')
		p++;
	if (!mbox_digit(p, e))
		return false;
	p++;
	if (mbox_digit(p, e))
		p++;
	if (p >= e || *p++ != ' ' || !mbox_time(&p, e) || p >= e ||
	    *p++ != ' ')
		return false;
	if (!(mbox_digits(&(const char *){ p }, e, 4) &&
	    mbox_date_end(p + 4, e)) && !mbox_zone(&p, e))
		return false;
	if (!mbox_digits(&p, e, 4))
		return false;
	/* After the year: a zone, "remote from HOST", anything: ignored. */
	return mbox_date_end(p, e);
}

/* ------------------------------------------------------------ scanner */

enum mbox_line {
	MBOX_LINE_SEP,		/* a separator line, *end_r past its '\n' */
	MBOX_LINE_NOT,
	MBOX_LINE_MORE,		/* cannot tell without more bytes */
};

/* Does a separator line start at buf[s]? */
static enum mbox_line
mbox_line_at(const char *buf, size_t len, size_t s, bool eof, size_t *end_r)
{
	const char	*nl;
	size_t		 avail = len - s, n;

	n = avail < 5 ? avail : 5;
	if (memcmp(buf + s, "From ", n) != 0)
		return MBOX_LINE_NOT;
	if (avail < 5)
		return eof ? MBOX_LINE_NOT : MBOX_LINE_MORE;
	n = avail < MBOX_FROM_MAX ? avail : MBOX_FROM_MAX;
	if ((nl = memchr(buf + s, '\n', n)) != NULL) {
		*end_r = (size_t)(nl - buf) + 1;
		return mbox_from_valid(buf + s, (size_t)(nl - buf) - s) ?
		    MBOX_LINE_SEP : MBOX_LINE_NOT;
	}
	if (avail >= MBOX_FROM_MAX)
		return MBOX_LINE_NOT;		/* too long for one */
	if (!eof)
		return MBOX_LINE_MORE;
	*end_r = len;				/* the last line, no '\n' */
	return mbox_from_valid(buf + s, avail) ? MBOX_LINE_SEP : MBOX_LINE_NOT;
}

void
mbox_scan_init(struct mbox_scan *sc, const struct mbox_scan_cb *cb)
{
	memset(sc, 0, sizeof(*sc));
	sc->cb = *cb;
}

/* Message bytes buf[a, b). */
static int
mbox_scan_data(struct mbox_scan *sc, const char *buf, size_t a, size_t b)
{
	if (b <= a)
		return 0;
	return sc->cb.data(sc->cb.arg, buf + a, b - a);
}

/* The separator buf[s, e) ends the current message (if any) whose data
 * ran up to ts (the dropped terminator is buf[ts, s)). */
static int
mbox_scan_sep(struct mbox_scan *sc, const char *buf, size_t p, size_t ts,
    size_t s, size_t e)
{
	if (sc->started) {
		if (mbox_scan_data(sc, buf, p, ts) == -1 ||
		    sc->cb.end(sc->cb.arg, buf + ts, s - ts) == -1)
			return -1;
	}
	sc->started = 1;
	sc->at_sep = 1;
	return sc->cb.sep(sc->cb.arg, sc->off + s, buf + s, e - s);
}

/*
 * The first "\nFrom " in [p, end). memchr() for the 'F' (rare in mail
 * text) is faster than memmem() here.
 */
static const char *
mbox_find_from(const char *p, const char *end)
{
	const char	*q;

	for (p++; p + 5 <= end && (q = memchr(p, 'F',
	    (size_t)(end - p) - 4)) != NULL; p = q + 1)
		if (q[-1] == '\n' && memcmp(q + 1, "rom ", 4) == 0)
			return q - 1;
	return NULL;
}

enum mbox_scan_res
mbox_scan_feed(struct mbox_scan *sc, const char *buf, size_t len, bool eof,
    size_t *used_r)
{
	const char	*hit;
	size_t		 p = 0, from, q, s, e = 0, ts, t;
	enum mbox_line	 l;
	enum mbox_scan_res rv = MBOX_SCAN_OK;

	*used_r = 0;
	if (!sc->started) {
		if (len == 0)
			return MBOX_SCAN_OK;	/* empty so far */
		switch (mbox_line_at(buf, len, 0, eof, &e)) {
		case MBOX_LINE_MORE:
			return MBOX_SCAN_OK;
		case MBOX_LINE_NOT:
			return MBOX_SCAN_NOTMBOX;
		case MBOX_LINE_SEP:
			break;
		}
		if (mbox_scan_sep(sc, buf, 0, 0, 0, e) == -1)
			return MBOX_SCAN_STOPPED;
		p = e;
	}

	for (from = p;;) {
		/* Right after a separator: another one (an empty message)? */
		if (sc->at_sep && from == p) {
			l = p < len ? mbox_line_at(buf, len, p, eof, &e) :
			    (eof ? MBOX_LINE_NOT : MBOX_LINE_MORE);
			if (l == MBOX_LINE_MORE)
				goto keep;
			if (l == MBOX_LINE_SEP) {
				if (mbox_scan_sep(sc, buf, p, p, p, e) == -1)
					goto stopped;
				from = p = e;
				continue;
			}
			sc->at_sep = 0;
		}

		hit = from < len ? mbox_find_from(buf + from, buf + len) : NULL;
		if (hit == NULL)
			break;
		q = (size_t)(hit - buf);
		s = q + 1;
		l = mbox_line_at(buf, len, s, eof, &e);
		if (l == MBOX_LINE_NOT) {
			from = s;
			continue;
		}
		/* The terminator before it: "\r\n" or "\n". */
		ts = q > p && buf[q - 1] == '\r' ? q - 1 : q;
		if (l == MBOX_LINE_MORE) {
			if (mbox_scan_data(sc, buf, p, ts) == -1)
				goto stopped;
			p = ts;
			goto keep;
		}
		if (mbox_scan_sep(sc, buf, p, ts, s, e) == -1)
			goto stopped;
		from = p = e;
	}

	if (eof) {
		/* The last message: drop one terminator at the end. */
		t = 0;
		if (len - p >= 1 && buf[len - 1] == '\n')
			t = (len - p >= 2 && buf[len - 2] == '\r') ? 2 : 1;
		if (mbox_scan_data(sc, buf, p, len - t) == -1 ||
		    sc->cb.end(sc->cb.arg, buf + len - t, t) == -1)
			goto stopped;
		sc->at_sep = 0;
		p = len;
		goto keep;
	}
	/*
	 * Keep the last 6 bytes: a "\nFrom " (with its '\r') that the next
	 * bytes may complete starts there.
	 */
	t = len - p > 6 ? len - 6 : p;
	if (mbox_scan_data(sc, buf, p, t) == -1)
		goto stopped;
	p = t;
	goto keep;

stopped:
	rv = MBOX_SCAN_STOPPED;
keep:
	sc->off += p;
	*used_r = p;
	return rv;
}

/* ------------------------------------------------------------ checksum */

#define MBOX_K1		0x9e3779b97f4a7c15ULL
#define MBOX_K2		0xc2b2ae3d27d4eb4fULL

static inline uint64_t
mbox_rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t
mbox_mix(uint64_t h, uint64_t w)
{
	return mbox_rotl((h ^ w) * MBOX_K1, 29) * MBOX_K2;
}

uint64_t
mbox_hash_buf(const void *p, size_t len)
{
	struct mbox_hash h;

	mbox_hash_init(&h);
	mbox_hash_update(&h, p, len);
	return mbox_hash_final(&h);
}

void
mbox_hash_init(struct mbox_hash *h)
{
	memset(h, 0, sizeof(*h));
	h->h[0] = 0x6a09e667f3bcc908ULL;
	h->h[1] = 0xbb67ae8584caa73bULL;
	h->h[2] = 0x3c6ef372fe94f82bULL;
	h->h[3] = 0xa54ff53a5f1d36f1ULL;
}

/* One 32-byte block: four independent lanes (for speed), 8 bytes each. */
static inline void
mbox_hash_block(uint64_t *h, const unsigned char *p)
{
	uint64_t	 w[4];

	memcpy(w, p, sizeof(w));
	h[0] = mbox_mix(h[0], w[0]);
	h[1] = mbox_mix(h[1], w[1]);
	h[2] = mbox_mix(h[2], w[2]);
	h[3] = mbox_mix(h[3], w[3]);
}

void
mbox_hash_update(struct mbox_hash *h, const void *vp, size_t len)
{
	const unsigned char	*p = vp;
	uint64_t		 acc[4];
	size_t			 n;

	h->len += len;
	if (h->npart > 0) {
		n = sizeof(h->part) - h->npart < len ?
		    sizeof(h->part) - h->npart : len;
		memcpy(h->part + h->npart, p, n);
		h->npart += (unsigned)n;
		p += n;
		len -= n;
		if (h->npart < sizeof(h->part))
			return;
		mbox_hash_block(h->h, h->part);
		h->npart = 0;
	}
	memcpy(acc, h->h, sizeof(acc));
	for (; len >= 32; p += 32, len -= 32)
		mbox_hash_block(acc, p);
	memcpy(h->h, acc, sizeof(acc));
	memcpy(h->part, p, len);
	h->npart = (unsigned)len;
}

uint64_t
mbox_hash_final(const struct mbox_hash *h)
{
	uint64_t	 w[4] = { 0, 0, 0, 0 }, x;

	memcpy(w, h->part, h->npart);
	x = mbox_mix(h->h[0], w[0]);
	x = mbox_mix(x ^ h->h[1], w[1]);
	x = mbox_mix(x ^ h->h[2], w[2]);
	x = mbox_mix(x ^ h->h[3], w[3]);
	x = mbox_mix(x, h->len);
	/* A finaliser that spreads every bit (MurmurHash3's). */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* ------------------------------------------------------------ filter */

enum {
	MF_HB = 0,	/* header block, at the start of a line */
	MF_HL,		/* header block, inside a line */
	MF_BB,		/* body, at the start of a line */
	MF_BL,		/* body, inside a line */
	MF_DONE,	/* eof seen and handled */
};

/* What a header name means here. */
enum {
	MH_DROP = 1,	/* internal: not sent */
};

enum {
	MC_NONE = 0,
	MC_XUIDL,
	MC_XUID,
	MC_BASE,	/* X-IMAPbase, X-IMAP */
	MC_SUBJECT,
};

static const struct {
	const char	*name;
	unsigned	 flags;
	unsigned	 cap;
} mbox_hdrs[] = {
	{ "Status",	MH_DROP,	MC_NONE },
	{ "X-Status",	MH_DROP,	MC_NONE },
	{ "X-UID",	MH_DROP,	MC_XUID },
	{ "X-IMAPbase",	MH_DROP,	MC_BASE },
	{ "X-IMAP",	MH_DROP,	MC_BASE },
	{ "X-Keywords",	MH_DROP,	MC_NONE },
	{ "X-UIDL",	0,		MC_XUIDL },
	{ "Subject",	0,		MC_SUBJECT },
};

void
mbox_filter_init(struct mbox_filter *f, struct mbox_hdr_info *info)
{
	memset(f, 0, sizeof(*f));
	f->state = MF_HB;
	f->in_hdr = 1;
	f->info = info;
	if (info != NULL)
		memset(info, 0, sizeof(*info));
}

/* Queue n bytes (pending output is empty when this is called). */
static void
mf_pend(struct mbox_filter *f, const char *p, size_t n)
{
	memcpy(f->pend + f->pend_len, p, n);
	f->pend_len += (unsigned)n;
}

/* The header whose name (ending in ':') is f->name: index or -1. */
static int
mf_lookup(const struct mbox_filter *f)
{
	size_t	 n = f->nlen - 1, i;

	while (n > 0 && (f->name[n - 1] == ' ' || f->name[n - 1] == '\t'))
		n--;
	for (i = 0; i < sizeof(mbox_hdrs) / sizeof(mbox_hdrs[0]); i++)
		if (strlen(mbox_hdrs[i].name) == n &&
		    strncasecmp(f->name, mbox_hdrs[i].name, n) == 0)
			return (int)i;
	return -1;
}

/* A decimal number that fits 32 bits, the whole of s[0, n). */
static bool
mf_u32(const char *s, size_t n, uint32_t *v_r)
{
	uint64_t	 v = 0;
	size_t		 i;

	if (n == 0 || n > 10)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* The collected header value is complete. */
static void
mf_cap_end(struct mbox_filter *f)
{
	struct mbox_hdr_info	*in = f->info;
	const char		*v = f->cap_buf;
	size_t			 n = f->cap_len, i;

	if (f->cap == MC_NONE || in == NULL) {
		f->cap = MC_NONE;
		return;
	}
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	switch (f->cap) {
	case MC_XUIDL:
		if (in->has_xuidl)
			break;
		in->has_xuidl = 1;
		if (f->cap_over || !pop3_uidl_valid(v, n))
			break;
		memcpy(in->xuidl, v, n);
		in->xuidl[n] = '\0';
		in->xuidl_valid = 1;
		break;
	case MC_XUID:
		/* The first one counts, as for X-UIDL. */
		if (!f->xuid_seen && !f->cap_over && mf_u32(v, n, &in->xuid))
			in->has_xuid = 1;
		f->xuid_seen = 1;
		break;
	case MC_BASE:
		for (i = 0; i < n && v[i] != ' ' && v[i] != '\t'; i++)
			;
		if (!in->has_ximap && mf_u32(v, i, &in->uidvalidity))
			in->has_base = 1;
		in->has_ximap = 1;
		break;
	case MC_SUBJECT:
		if (!f->cap_over && n == strlen(MBOX_PSEUDO_SUBJECT) &&
		    memcmp(v, MBOX_PSEUDO_SUBJECT, n) == 0)
			f->subject_seen = 1;
		break;
	}
	f->cap = MC_NONE;
}

/* Collect value bytes of the current header (line ends left out). */
static void
mf_cap_add(struct mbox_filter *f, const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\r' || p[i] == '\n')
			continue;
		if (f->cap_len == MBOX_HDR_VALUE_MAX) {
			f->cap_over = 1;
			return;
		}
		f->cap_buf[f->cap_len++] = p[i];
	}
}

/* The header block is over. */
static void
mf_hdr_end(struct mbox_filter *f)
{
	mf_cap_end(f);
	if (f->info != NULL)
		f->info->pseudo = f->info->has_ximap && f->subject_seen;
}

/* Write pending bytes; false if out filled up first. */
static bool
mf_drain(struct mbox_filter *f, char *out, size_t outcap, size_t *op)
{
	size_t	 n;

	if (f->pend_gt > 0) {
		n = outcap - *op;
		if (n > f->pend_gt)
			n = (size_t)f->pend_gt;
		memset(out + *op, '>', n);
		*op += n;
		f->pend_gt -= n;
		if (f->pend_gt > 0)
			return false;
	}
	n = f->pend_len - f->pend_off;
	if (n > outcap - *op)
		n = outcap - *op;
	memcpy(out + *op, f->pend + f->pend_off, n);
	*op += n;
	f->pend_off += (unsigned)n;
	if (f->pend_off < f->pend_len)
		return false;
	f->pend_off = f->pend_len = 0;
	return true;
}

/*
 * The start of a body line held back, f->gt '>'s and f->fidx bytes of
 * "From ", is queued: less one '>' with unquote (it was ^>+From ).
 */
static void
mf_quote_out(struct mbox_filter *f, bool unquote)
{
	f->pend_gt = f->gt - (unquote ? 1 : 0);
	mf_pend(f, "From ", f->fidx);
	f->gt = 0;
	f->fidx = 0;
}

/* At the end of the message: whatever is held goes out as it was. */
static void
mf_eof(struct mbox_filter *f)
{
	switch (f->state) {
	case MF_HB:
		mf_pend(f, f->name, f->nlen);
		f->nlen = 0;
		mf_hdr_end(f);
		break;
	case MF_HL:
		mf_hdr_end(f);
		break;
	case MF_BB:
		mf_quote_out(f, false);
		break;
	}
	f->state = MF_DONE;
}

/* Can c be the next byte of a header name in f->name[] ("Name  :")? */
static bool
mf_name_char(const struct mbox_filter *f, char c)
{
	bool	 ws = c == ' ' || c == '\t';

	if (f->nlen + 2 > sizeof(f->name))	/* room for ':' */
		return false;
	if (f->nlen > 0 && (f->name[f->nlen - 1] == ' ' ||
	    f->name[f->nlen - 1] == '\t'))
		return ws;			/* only more space, or ':' */
	if (ws)
		return f->nlen > 0;
	return (unsigned char)c >= 0x21 && (unsigned char)c <= 0x7e && c != ':';
}

/*
 * The first line in [p, end) that starts with '>', p being right after a
 * '\n'; NULL if none. memchr() for the rare '>' beats a look at every
 * line start.
 */
static const char *
mf_quoted_line(const char *p, const char *end)
{
	const char	*q;

	while (p < end && (q = memchr(p, '>', (size_t)(end - p))) != NULL) {
		if (q[-1] == '\n')
			return q;
		p = q + 1;
	}
	return NULL;
}

/*
 * The steps of mbox_filter_run(), one per state. Each is given the input
 * left (len > 0 bytes at p) and, if it writes, the room left in out; it
 * returns the input bytes it used and may change f->state.
 */

/*
 * MF_HB, at the start of a header line, byte c: a continuation, the empty
 * line that ends the header block, or a header name collected byte by
 * byte into f->name until its ':' says whether the header is sent,
 * dropped (internal) or collected into f->info. Uses 0 or 1 byte.
 */
static size_t
mf_hdr_name(struct mbox_filter *f, char c)
{
	bool	 cr;
	int	 k;

	if (f->nlen == 0) {
		if (c == ' ' || c == '\t') {
			/* A continuation: as its header. */
			f->state = MF_HL;
			return 0;
		}
		mf_cap_end(f);
		f->drop = 0;
	}
	if (c == '\n') {
		f->name[f->nlen++] = c;
		mf_pend(f, f->name, f->nlen);
		if (f->nlen == 1 || (f->nlen == 2 && f->name[0] == '\r')) {
			/* The empty line ends the headers. */
			f->hdr_last = 1;
			f->state = MF_BB;
			mf_hdr_end(f);
		}
		f->nlen = 0;
		return 1;
	}
	if (f->nlen == 0 && c == '\r') {
		f->name[f->nlen++] = c;
		return 1;
	}
	/* A line that starts with CR is no header. */
	cr = f->nlen > 0 && f->name[0] == '\r';
	if (c == ':' && f->nlen > 0 && !cr) {
		f->name[f->nlen++] = c;
		k = mf_lookup(f);
		f->drop = k >= 0 && (mbox_hdrs[k].flags & MH_DROP);
		f->cap = k >= 0 && f->info != NULL ? mbox_hdrs[k].cap : MC_NONE;
		f->cap_len = 0;
		f->cap_over = 0;
		if (!f->drop)
			mf_pend(f, f->name, f->nlen);
		f->nlen = 0;
		f->state = MF_HL;
		return 1;
	}
	if (!cr && mf_name_char(f, c)) {
		f->name[f->nlen++] = c;
		return 1;
	}
	/* Not a header name we care about: pass the line. */
	mf_pend(f, f->name, f->nlen);
	f->nlen = 0;
	f->state = MF_HL;
	return 0;
}

/*
 * MF_HL, inside a header line: the rest of the line in one copy into out
 * (none for a dropped header; *sent_r bytes), collected if f->cap says
 * so. Returns 0 only when out is full.
 */
static size_t
mf_hdr_line(struct mbox_filter *f, const char *p, size_t len, char *out,
    size_t room, size_t *sent_r)
{
	const char	*nl;
	size_t		 n;

	nl = memchr(p, '\n', len);
	n = nl != NULL ? (size_t)(nl - p) + 1 : len;
	*sent_r = 0;
	if (!f->drop) {
		if (n > room)
			n = room;
		memcpy(out, p, n);
		*sent_r = n;
	}
	if (f->cap != MC_NONE)
		mf_cap_add(f, p, n);
	if (nl != NULL && p + n == nl + 1)
		f->state = MF_HB;
	return n;
}

/*
 * MF_BB, at the start of a body line: count its '>'s and match "From "
 * after them (mboxrd quoting: ^>+From  loses one '>'); anything else
 * queues what was held back and goes on as a body line.
 */
static size_t
mf_body_start(struct mbox_filter *f, const char *p, size_t len)
{
	size_t	 n;

	if (p[0] == '>' && f->fidx == 0) {
		/* mboxrd: count the quoting, however long. */
		for (n = 0; n < len && p[n] == '>'; n++)
			;
		f->gt += n;
		return n;
	}
	if (f->gt > 0 && p[0] == "From "[f->fidx]) {
		if (++f->fidx == 5) {
			/* ^>+From : one '>' less. */
			mf_quote_out(f, true);
			f->state = MF_BL;
		}
		return 1;
	}
	if (f->gt > 0)
		mf_quote_out(f, false);
	f->state = MF_BL;
	return 0;
}

/*
 * MF_BL, inside a body line: this line, and the lines after it up to one
 * that starts with '>' (mboxrd quoting), in one copy into out. Returns 0
 * only when out is full.
 */
static size_t
mf_body_lines(struct mbox_filter *f, const char *p, size_t len, char *out,
    size_t room)
{
	const char	*nl, *q;
	size_t		 n;

	nl = memchr(p, '\n', len);
	if (nl != NULL && (q = mf_quoted_line(nl + 1, p + len)) != NULL)
		n = (size_t)(q - p);
	else
		n = len;
	if (n > room)
		n = room;
	if (n == 0)
		return 0;
	memcpy(out, p, n);
	if (p[n - 1] == '\n')
		f->state = MF_BB;
	return n;
}

size_t
mbox_filter_run(struct mbox_filter *f, const char *in, size_t inlen,
    bool eof, char *out, size_t outcap, size_t *outlen_r, size_t *hdrlen_r)
{
	size_t		 ip = 0, op = 0, n, sent, hdrlen = 0;
	bool		 was_hdr = f->in_hdr;

	for (;;) {
		if (f->pend_gt > 0 || f->pend_off < f->pend_len) {
			if (!mf_drain(f, out, outcap, &op))
				break;			/* out is full */
			if (f->hdr_last) {
				f->hdr_last = 0;
				f->in_hdr = 0;
				hdrlen = op;
			}
		}
		if (ip == inlen) {
			if (!eof || f->state == MF_DONE)
				break;
			mf_eof(f);
			continue;
		}

		switch (f->state) {
		case MF_HB:
			ip += mf_hdr_name(f, in[ip]);
			break;
		case MF_HL:
			n = mf_hdr_line(f, in + ip, inlen - ip, out + op,
			    outcap - op, &sent);
			ip += n;
			op += sent;
			if (n == 0)
				goto full;
			break;
		case MF_BB:
			ip += mf_body_start(f, in + ip, inlen - ip);
			break;
		case MF_BL:
			if ((n = mf_body_lines(f, in + ip, inlen - ip, out + op,
			    outcap - op)) == 0)
				goto full;
			ip += n;
			op += n;
			break;
		case MF_DONE:
			/* Bytes after eof: not part of the message. */
			ip = inlen;
			break;
		}
	}
full:
	*outlen_r = op;
	if (hdrlen_r != NULL)
		*hdrlen_r = f->in_hdr ? op : (was_hdr ? hdrlen : 0);
	return ip;
}

bool
mbox_filter_done(const struct mbox_filter *f)
{
	return f->state == MF_DONE && f->pend_gt == 0 &&
	    f->pend_off == f->pend_len;
}
