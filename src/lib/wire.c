/*
 * wire: message bytes to POP3 wire format (see wire.h).
 *
 * RFC 1939 section 3: lines end in CRLF, a line that begins with '.' is
 * byte-stuffed, and a multi-line response ends with ".CRLF". Section 7:
 * TOP sends the headers, the blank line and n body lines.
 *
 * The encoder works on runs: it looks for the next LF with memchr() and
 * copies everything up to it with one memcpy(). It only steps in at a bare
 * LF (a CR is inserted) and at a '.' that begins a line (a '.' is
 * inserted). RETR on x86-64 takes a faster path for most of a feed
 * (wire_fast(): 32 octets a step with SSE2); TOP, counting and the last
 * octets of a feed take this one. Output goes straight into space reserved in the evbuffer:
 * len + len/8 + 64 octets per feed (text gains a CR per line), in up to
 * two extents, and more when a feed of very short lines needs it, so an
 * LF-only message costs no evbuffer call per line. Reserving the worst
 * case (2 * len + 1) in one extent made libevent allocate a 64 KiB chain
 * for every 16 KiB read: 64 KiB of queued text held 128 KiB of heap.
 * The price of the smaller reservation is a test of the room before each
 * copy; it is kept to a compare of two registers, once per line (4c9ce43
 * first indexed v[] and used[] in memory twice a line: +22,000
 * instructions per `full` session of 10 messages of 4 KiB, +7 %).
 *
 * A CR is emitted as soon as it is seen: whether or not an LF follows, the
 * output byte is the same. pending_cr only remembers that the last byte
 * was a CR, so that an LF at the start of the next feed is not treated as
 * bare and a CR is not doubled.
 */
#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/wire.h"

/*
 * Where a feed's output goes: reserved extents of out, or nowhere. Only
 * the slow path touches this; the extent being filled is a wire_pos that
 * the feed keeps in local variables and passes by value, so that the fast
 * path (an LF-only message takes it twice a line) compares two registers
 * instead of loading v[i] and used[i] after every memcpy().
 */
struct wire_out {
	struct evbuffer		*out;		/* NULL: count only */
	struct evbuffer_iovec	 v[2];
	size_t			 used[2];	/* of the extents before i */
	int			 n;		/* extents reserved */
	int			 i;		/* the one being filled */
};

/* The free part of the extent being filled: [cur, lim). */
struct wire_pos {
	char			*cur;
	char			*lim;
};

/* Make v[i] the extent being filled. */
static struct wire_pos
wire_enter(struct wire_out *o, int i)
{
	struct wire_pos w;

	o->i = i;
	w.cur = o->v[i].iov_base;
	w.lim = w.cur + o->v[i].iov_len;
	return w;
}

/* Commit what was written into the extents reserved so far. */
static void
wire_commit(struct wire_out *o, struct wire_pos w)
{
	int i, k = 0;

	if (o->n == 0)
		return;
	o->used[o->i] = (size_t)(w.cur - (char *)o->v[o->i].iov_base);
	for (i = 0; i < o->n; i++)
		if ((o->v[i].iov_len = i <= o->i ? o->used[i] : 0) > 0)
			k = i + 1;
	/* only the extents written to, in order */
	(void)evbuffer_commit_space(o->out, o->v, k > 0 ? k : 1);
	o->n = o->i = 0;
	o->used[0] = o->used[1] = 0;
}

/*
 * Reserve room for size octets in up to two extents (the free tail of
 * out's last chain, then a new chain), so that chains fill up. On failure
 * the rest of the feed is lost (o->out becomes NULL: count only): an
 * allocation failure shows up as a short message, and the session's
 * output path cannot do better.
 */
static struct wire_pos
wire_reserve(struct wire_out *o, size_t size)
{
	struct wire_pos none = { NULL, NULL };

	if ((o->n = evbuffer_reserve_space(o->out, (ev_ssize_t)size, o->v,
	    2)) > 0)
		return wire_enter(o, 0);
	o->n = 0;
	o->out = NULL;
	return none;
}

/*
 * wire_put() past the current extent: the next one, or more room. Not
 * inlined: inlined twice a line, it made the compiler spill the feed's
 * registers around every memchr() call (+1 % instructions per `full`
 * session).
 */
static __attribute__((noinline)) struct wire_pos
wire_put_slow(struct wire_out *o, struct wire_pos w, const char *p,
    size_t n)
{
	size_t k;

	while (n > 0 && o->out != NULL) {
		if (w.cur == w.lim) {
			if (o->i + 1 < o->n) {
				o->used[o->i] = o->v[o->i].iov_len;
				w = wire_enter(o, o->i + 1);
			} else {
				wire_commit(o, w);
				w = wire_reserve(o, n + 4096);
			}
			continue;
		}
		if ((k = (size_t)(w.lim - w.cur)) > n)
			k = n;
		memcpy(w.cur, p, k);
		w.cur += k;
		p += k;
		n -= k;
	}
	return w;
}

/*
 * Append n octets. The test is strict so that an empty extent (count
 * only: NULL, NULL) never reaches memcpy().
 */
static inline void
wire_put(struct wire_out *o, struct wire_pos *w, const char *p, size_t n)
{
	if (n < (size_t)(w->lim - w->cur)) {
		memcpy(w->cur, p, n);
		w->cur += n;
	} else if (o->out != NULL)
		*w = wire_put_slow(o, *w, p, n);
}

/*
 * The encoder's state while a feed runs: copied out of struct wire_enc
 * into locals, and back at the end. In the struct, every memcpy() into
 * the output (char stores, which may alias anything) made the compiler
 * reload and store the bit-fields and the count again, twice a line.
 */
struct wire_st {
	uint64_t	 octets;
	bool		 at_bol;
	bool		 line_empty;
	bool		 pending_cr;
};

/* Append n counted octets. */
static inline void
wire_emit(struct wire_st *st, struct wire_out *o, struct wire_pos *w,
    const char *p, size_t n)
{
	wire_put(o, w, p, n);
	st->octets += n;
}

/*
 * Append n counted octets and a CRLF: the bare-LF line of an LF-only
 * message, so one test of the room per line.
 */
static inline void
wire_emit_crlf(struct wire_st *st, struct wire_out *o, struct wire_pos *w,
    const char *p, size_t n)
{
	if (n + 2 < (size_t)(w->lim - w->cur)) {
		memcpy(w->cur, p, n);
		w->cur[n] = '\r';
		w->cur[n + 1] = '\n';
		w->cur += n + 2;
		st->octets += n + 2;
	} else {
		wire_emit(st, o, w, p, n);
		wire_emit(st, o, w, "\r\n", 2);
	}
}

#ifdef __SSE2__
/*
 * RETR's fast path (SSE2, which every x86-64 has): 32 input octets at a
 * time, stored to the output whole before they are looked at, so that a
 * line costs a compare per 32 octets and a fix-up at its LF instead of a
 * memchr() and a memcpy() call (those were 45 of the 91 instructions a
 * line of ~60 octets cost). Past an LF the next block is loaded from the
 * octet after it: what was stored beyond the LF is written again, shifted
 * by the CR the LF may have gained.
 *
 * Runs while a block of input is left and the extent has room for a
 * block, a CR and a stuffed '.'; the rest is the scalar loop's. Starts
 * and stops with everything before p emitted (what was stored past
 * w->cur is scratch). Returns the new p.
 */
#include <emmintrin.h>

#define WIRE_BLOCK	32
#define WIRE_ROOM	(WIRE_BLOCK + 2)

static const char *
wire_fast(struct wire_st *st, struct wire_pos *w, const char *buf,
    const char *p, const char *end)
{
	const __m128i	 lf = _mm_set1_epi8('\n');
	__m128i		 a, b;
	char		*d = w->cur, *start = w->cur, *lim = w->lim;
	uint64_t	 dots = 0;
	unsigned	 m, j;
	bool		 bol = st->at_bol, cr;

	/* RFC 1939 section 3: byte-stuff a leading '.' (bol: p starts a
	 * line that was not looked at yet). */
	if (bol && p < end && lim - d >= WIRE_ROOM + 1) {
		if (*p == '.') {
			*d++ = '.';
			dots++;
		}
		bol = false;
	}
	while (!bol && end - p >= WIRE_BLOCK && lim - d >= WIRE_ROOM) {
		a = _mm_loadu_si128((const __m128i *)(const void *)p);
		b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
		_mm_storeu_si128((__m128i *)(void *)d, a);
		_mm_storeu_si128((__m128i *)(void *)(d + 16), b);
		m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, lf)) |
		    (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, lf)) << 16;
		if (m == 0) {
			p += WIRE_BLOCK;
			d += WIRE_BLOCK;
			continue;
		}
		/* The block's octets before its first LF are in place. */
		j = (unsigned)__builtin_ctz(m);
		if (j > 0)
			cr = p[j - 1] == '\r';
		else
			cr = p > buf ? p[-1] == '\r' : st->pending_cr;
		if (!cr)
			d[j++] = '\r';		/* bare LF: CRLF */
		d[j] = '\n';
		d += j + 1;
		p += (size_t)j + (cr ? 1 : 0);
		/* The next line: the block had room for one more octet. */
		if (p == end) {
			bol = true;
			break;
		}
		if (*p == '.') {
			*d++ = '.';
			dots++;
		}
	}
	if (d != start) {
		st->octets += (uint64_t)(d - start) - dots;
		/* A CR that ended the last block may pair with an LF next
		 * (p == buf: only a '.' was stuffed, the state stands). */
		if (p > buf)
			st->pending_cr = !bol && p[-1] == '\r';
		st->line_empty = bol;
		st->at_bol = bol;
		w->cur = d;
	}
	return p;
}
#endif

/*
 * TOP (RFC 1939 section 7): a line has just ended; empty says it had no
 * bytes before its terminator. Returns 1 if TOP has sent all it should.
 */
static int
wire_top_line_end(struct wire_enc *e, bool empty)
{
	if (!e->in_body) {
		/* The first empty line ends the headers and is sent. */
		if (empty) {
			e->in_body = 1;
			if (e->body_lines == 0)
				return 1;
		}
		return 0;
	}
	if (e->body_lines > 0 && --e->body_lines == 0)
		return 1;
	return 0;
}

void
wire_enc_init(struct wire_enc *e, long top_lines)
{
	memset(e, 0, sizeof(*e));
	e->body_lines = top_lines < 0 ? -1 : top_lines;
	e->at_bol = 1;
	e->line_empty = 1;
}

int
wire_enc_feed(struct wire_enc *e, const char *buf, size_t len,
    struct evbuffer *out)
{
	struct wire_out	 o;
	struct wire_pos	 w = { NULL, NULL };
	struct wire_st	 st;
	const char	*p, *end, *run, *nl;
	size_t		 n;
	bool		 cr, top = e->body_lines >= 0;
	int		 rv = 0;

	if (e->done)
		return 1;
	if (len == 0)
		return 0;
	memset(&o, 0, sizeof(o));
	if ((o.out = out) != NULL)	/* text: a CR per line, a few % */
		w = wire_reserve(&o, len + len / 8 + 64);
	st.octets = e->octets;
	st.at_bol = e->at_bol;
	st.line_empty = e->line_empty;
	st.pending_cr = e->pending_cr;

	p = buf;
	end = buf + len;
	run = p;		/* start of the bytes not yet emitted */

	/* A CR that ended the previous feed and is not followed by LF was an
	 * ordinary byte of the line. */
	if (st.pending_cr && *p != '\n') {
		st.pending_cr = false;
		st.line_empty = false;
	}

	while (p < end) {
#ifdef __SSE2__
		if (!top && o.out != NULL && end - p >= WIRE_BLOCK &&
		    w.lim - w.cur >= WIRE_ROOM) {
			/* what the scalar loop left unemitted (CRLF lines) */
			wire_emit(&st, &o, &w, run, (size_t)(p - run));
			run = p = wire_fast(&st, &w, buf, p, end);
			if (p == end)
				break;
		}
#endif
		/* RFC 1939 section 3: byte-stuff a leading '.'. */
		if (st.at_bol && *p == '.') {
			wire_emit(&st, &o, &w, run, (size_t)(p - run));
			run = p;
			wire_put(&o, &w, ".", 1);		/* not counted */
		}

		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			/* The rest is part of an unterminated line. */
			n = (size_t)(end - p);
			cr = end[-1] == '\r';
			if (n > (size_t)cr)
				st.line_empty = false;
			st.pending_cr = cr;
			st.at_bol = false;
			break;
		}

		/* The line's bytes in this feed, less a CR that belongs to
		 * the terminator. */
		n = (size_t)(nl - p);
		cr = n > 0 ? nl[-1] == '\r' : st.pending_cr;
		if (n > 0 && cr)
			n--;

		if (!cr) {
			/* Bare LF: emit the line, then CRLF for the LF. */
			wire_emit_crlf(&st, &o, &w, run, (size_t)(nl - run));
			run = nl + 1;
		}
		p = nl + 1;
		if (top && wire_top_line_end(e, st.line_empty && n == 0)) {
			end = p;	/* TOP is complete: the rest is not sent */
			e->done = 1;
			rv = 1;
		}
		st.at_bol = true;
		st.line_empty = true;
		st.pending_cr = false;
		if (rv)
			break;
	}
	wire_emit(&st, &o, &w, run, (size_t)(end - run));
	if (o.out != NULL)
		wire_commit(&o, w);
	e->octets = st.octets;
	e->at_bol = st.at_bol;
	e->line_empty = st.line_empty;
	e->pending_cr = st.pending_cr;
	return rv;
}

void
wire_enc_finish(struct wire_enc *e, struct evbuffer *out)
{
	/* A last line without terminator gets one; a CR that ended the
	 * message is an ordinary byte, so "abc\r" becomes "abc\r\r\n". */
	if (!e->at_bol) {
		e->octets += 2;
		if (out != NULL)
			(void)evbuffer_add(out, "\r\n", 2);
	}
	e->at_bol = 1;
	e->line_empty = 1;
	e->pending_cr = 0;
	e->done = 1;
	if (out != NULL)
		(void)evbuffer_add(out, ".\r\n", 3);	/* not counted */
}

uint64_t
wire_size(const char *buf, size_t len)
{
	struct wire_enc	 e;

	wire_enc_init(&e, -1);
	wire_enc_feed(&e, buf, len, NULL);
	wire_enc_finish(&e, NULL);
	return e.octets;
}
