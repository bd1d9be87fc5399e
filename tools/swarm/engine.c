/*
 * engine: the swarm's client engine (see engine.h).
 *
 * Sessions live in a fixed array of `concurrency` slots that are reused;
 * a session is a socket, one read event (EV_WRITE is added only while a
 * connect is pending or output did not fit the socket), one timer and
 * the interpreter state of scenario.h.  Everything a session allocates
 * (the command queue, a stash for partial input, LIST sizes) stays with
 * its slot, so a long run settles into zero allocations per session.
 *
 * Input path: read() into one engine-wide 256 KiB buffer, then parse in
 * place.  Status and listing lines are found with memchr(); a body is
 * counted by mlcount_feed() and dropped.  Bytes are only copied when a
 * line is split across reads or when input arrives while the script is
 * not reading (pause, or a server that talks out of turn).
 *
 * Latency: each sent command is queued with its verb and send time; a
 * complete reply pops the oldest (RFC 2449 section 6.6: replies come in
 * order) and its latency goes into that verb's histogram.  The first
 * reply on a connection is the greeting.
 *
 * TLS (--tls, --stls): the same socket carries an SSL object in connect
 * state, driven here with SSL_connect/SSL_read/SSL_write and their
 * WANT_READ/WANT_WRITE answers; the parser above it is unchanged, it
 * is fed the decrypted bytes.  --tls handshakes once connected, before
 * the script's first expect (the greeting); --stls lets the greeting
 * expect complete, sends STLS, and handshakes on its +OK; either way the
 * script goes on once the handshake is done, as if the connection had
 * been plain.  SSL_read is called until it wants more from the socket:
 * a record OpenSSL has buffered would otherwise wait for a readable
 * event that never comes.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>	/* events embedded in the slots */

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "engine.h"
#include "grow.h"
#include "reply.h"
#include "tls.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT	24
#endif

#define RBUF_SIZE	(256 * 1024)	/* one read() */
#define LINE_MAX_IN	1024		/* longest listing line we accept */
#define STASH_MAX	(1024 * 1024)	/* input nobody is reading yet */
#define REFILL_BATCH	256		/* sessions started per callback */
#define SHOW_VIOLATIONS	10		/* detailed on stderr, then quiet */
#define SAMPLE_MS	100
#define TIMELINE_MS	1000
#define PROGRESS_MS	250

enum sess_state {
	SS_FREE,
	SS_CONNECTING,
	SS_ACTIVE,	/* connected (or not yet): script running */
};

enum reply_phase {
	RP_NONE,	/* not reading: input is stashed */
	RP_STATUS,	/* waiting for the status line */
	RP_COUNT,	/* multi-line body, counted */
	RP_LINES,	/* multi-line listing, parsed line by line */
	RP_DRAIN,	/* close: discard until EOF */
	RP_DONE,	/* the reply is complete */
};

enum tmr_use {
	TM_NONE,
	TM_CONNECT,
	TM_REPLY,
	TM_PAUSE,
	TM_CLOSE,
	TM_HANDSHAKE,
};

/* Where a session is on its way to TLS (--tls, --stls). */
enum tls_step {
	TS_PLAIN,	/* no TLS (yet) */
	TS_STLS,	/* STLS sent, its reply awaited */
	TS_HANDSHAKE,	/* SSL_connect() in progress */
	TS_ON,		/* application data over TLS */
};

enum adv {
	ADV_WAIT,	/* waiting for I/O or a timer */
	ADV_ENDED,	/* the session is over (slot free) */
};

struct sess {
	struct engine		*e;
	struct event		 ev_io;
	struct event		 ev_tmr;
	int			 fd;
	uint32_t		 user;
	uint8_t			 state;		/* enum sess_state */
	uint8_t			 rp;		/* enum reply_phase */
	uint8_t			 tmr;		/* enum tmr_use */
	unsigned		 io_added:1;
	unsigned		 io_write:1;	/* ev_io also waits for EV_WRITE */
	unsigned		 eof:1;
	unsigned		 greeted:1;
	unsigned		 ready:1;	/* passed `mark ready` */
	unsigned		 stat_seen:1;
	unsigned		 list_seen:1;
	unsigned		 open:1;	/* counted in e->open */
	unsigned		 pumping:1;	/* inside sess_pump() */
	unsigned		 phased:1;	/* first pause in a loop done */
	unsigned		 tls_wantw:1;	/* SSL_read() wants EV_WRITE */
	uint8_t			 tls;		/* enum tls_step */
	SSL			*ssl;
	struct swarm_tls_slot	 tslot;		/* session to resume */
	uint64_t		 t_hs;		/* handshake start */
	uint16_t		 last_verb;	/* of the last answered command */
	const struct sc_insn	*exp;		/* the expect being read */
	struct sc_run		 run;
	int64_t			*ints;		/* prog->nints slots */
	uint64_t		 seq;
	uint64_t		 t_start;
	uint64_t		 t_connected;

	/* Sent, unanswered commands: (time << 8) | verb, FIFO ring. */
	uint64_t		*q;
	uint32_t		 qcap, qhead, qlen, qunsent;

	/* Input not consumed yet (partial line, or nobody reading). */
	char			*in;
	uint32_t		 inlen, incap;

	/* Output the socket did not take. */
	char			*out;
	uint32_t		 outoff, outlen, outcap;

	/* The reply being read. */
	struct mlcount		 ml;
	uint64_t		 acc_n, acc_sum;

	/* Last STAT and LIST. */
	uint64_t		 stat_count, stat_size;
	uint64_t		 list_count;
	uint64_t		*sizes;		/* [n] = size + 1, 0: absent */
	uint32_t		 nsizes, capsizes;
	uint64_t		*uids;		/* UIDL hashes of one listing */
	uint32_t		 nuids, capuids;
};

struct engine {
	const struct swarm_opts	*o;
	const struct sc_prog	*prog;
	struct event_base	*base;
	SSL_CTX			*ctx;		/* NULL: plain */
	struct sess		*sess;
	int64_t			*ints;
	uint32_t		*freelist;
	uint32_t		 nfree;
	uint8_t			*ubusy;		/* users in use */
	uint32_t		 unext;
	uint16_t		 verb_quit;

	struct event		*ev_refill, *ev_rate, *ev_stop, *ev_grace;
	struct event		*ev_sample, *ev_timeline, *ev_progress;
	struct event		*ev_sigint, *ev_sigterm;
	const struct timeval	*tv_connect, *tv_reply;

	uint64_t		 t0;		/* monotonic µs at run start */
	uint64_t		 now;		/* µs since t0, per callback */
	uint64_t		 seq;
	uint64_t		 active;	/* slots in use */
	uint64_t		 open;		/* connected sockets */
	uint64_t		 ready_now;
	int			 stopping;
	int			 sigints;
	unsigned		 shown;		/* violations printed */
	int			 progress_shown;

	char			*rbuf;
	char			*ob;		/* commands gathered for a write */
	size_t			 oblen, obcap;
	char			 line[SC_LINE_MAX + 1];

	/* server sampling */
	struct procstat		 ps_start, ps_last;
	uint64_t		 ready_best;	/* max of ready_now */
	uint64_t		 ready_since;	/* when it was reached */
	int			 ready_done;	/* sampled at ready_best */
	uint64_t		 cand_rss, cand_pss, cand_open;
	unsigned		 ticks;
	struct rusage		 ru_start;

	struct swarm_stats	 st;
};

static const char *const kind_names[VK_NKINDS] = {
	[VK_STATUS] = "status",
	[VK_SYNTAX] = "syntax",
	[VK_TERMINATOR] = "terminator",
	[VK_STAT_LIST] = "stat_list",
	[VK_RETR_SIZE] = "retr_size",
	[VK_UIDL] = "uidl",
	[VK_TIMEOUT] = "timeout",
	[VK_CONNECT] = "connect",
	[VK_CLOSED] = "closed",
	[VK_BARE_LF] = "bare_lf",
	[VK_UNSOLICITED] = "unsolicited",
	[VK_SCRIPT] = "script",
	[VK_TLS] = "tls",
};

/* The expect of the STLS reply the engine sends under --stls. */
static const struct sc_insn stls_insn = {
	.op = SC_EXPECT,
	.status = SC_ST_OK,
	.check = SC_CHK_NONE,
};

static enum adv	sess_advance(struct sess *);
static void	sess_pump(struct sess *, const char *, size_t, int);
static void	sess_io_cb(evutil_socket_t, short, void *);
static void	sess_tls_begin(struct sess *);
static int	sess_stls(struct sess *);
static void	sess_expect(struct sess *, const struct sc_insn *);
static void	refill_kick(struct engine *);
static void	engine_stop(struct engine *, const char *);
static void	violation(struct sess *, enum swarm_kind, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

const char *
engine_kind_name(enum swarm_kind k)
{
	return k < VK_NKINDS ? kind_names[k] : "?";
}

static uint64_t
mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
tick(struct engine *e)
{
	e->now = mono_us() - e->t0;
}

static struct timeval
ms_tv(uint64_t ms)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return tv;
}

/* ------------------------------------------------------------ ending */

static void
sess_release(struct sess *s)
{
	struct engine	*e = s->e;

	if (s->io_added)
		event_del(&s->ev_io);
	event_del(&s->ev_tmr);
	s->io_added = 0;
	s->tmr = TM_NONE;
	if (s->ssl != NULL) {
		/*
		 * OpenSSL makes the session of a connection freed without a
		 * shutdown unresumable; the server closed after QUIT, which
		 * is as clean as a POP3 session ends.
		 */
		if (s->tls == TS_ON)
			SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN |
			    SSL_RECEIVED_SHUTDOWN);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	s->tls = TS_PLAIN;
	s->tls_wantw = 0;
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->open) {
		e->open--;
		s->open = 0;
	}
	if (s->ready) {
		e->ready_now--;
		s->ready = 0;
	}
	e->ubusy[s->user] = 0;
	/* Per-session buffers stay with the slot, emptied; big ones go. */
	s->inlen = s->outlen = s->outoff = 0;
	s->qlen = s->qhead = s->qunsent = 0;
	if (s->incap > 65536) {
		free(s->in);
		s->in = NULL;
		s->incap = 0;
	}
	s->nsizes = s->nuids = 0;
	if (s->capsizes > 64) {
		free(s->sizes);
		s->sizes = NULL;
		s->capsizes = 0;
	}
	if (s->capuids > 64) {
		free(s->uids);
		s->uids = NULL;
		s->capuids = 0;
	}
	s->state = SS_FREE;
	s->rp = RP_NONE;
	s->exp = NULL;
	s->pumping = 0;
	e->freelist[e->nfree++] = (uint32_t)(s - e->sess);
	e->active--;
	refill_kick(e);
}

enum outcome { OUT_COMPLETED, OUT_FAILED, OUT_ABORTED };

static void
sess_end(struct sess *s, enum outcome how)
{
	struct engine	*e = s->e;

	switch (how) {
	case OUT_COMPLETED:
		e->st.completed++;
		hist_add(&e->st.session, e->now - s->t_start);
		break;
	case OUT_FAILED:
		e->st.failed++;
		break;
	case OUT_ABORTED:
		e->st.aborted++;
		break;
	}
	sess_release(s);
	if (e->o->sessions != 0 && !e->stopping &&
	    e->st.completed + e->st.failed + e->st.aborted >= e->o->sessions)
		engine_stop(e, "sessions");
	if (e->stopping && e->active == 0)
		event_base_loopbreak(e->base);
}

/* A printable excerpt of a reply line for messages. */
static void
excerpt(char *dst, size_t size, const char *s, size_t len)
{
	size_t	 i, j = 0;

	for (i = 0; i < len && j + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			dst[j++] = (char)c;
		else
			j += (size_t)snprintf(dst + j, size - j, "\\x%02x", c);
	}
	dst[j < size ? j : size - 1] = '\0';
}

/*
 * Count a violation and fail the session (the caller must not touch it
 * afterwards).  The first few are described on stderr.
 */
static void
violation(struct sess *s, enum swarm_kind k, const char *fmt, ...)
{
	struct engine		*e = s->e;
	const struct swarm_user	*u = &e->o->users[s->user];
	va_list			 ap;
	char			 msg[512];

	e->st.violations[k]++;
	e->st.violations_total++;
	if (e->shown < SHOW_VIOLATIONS) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		if (e->progress_shown) {
			fputc('\n', stderr);
			e->progress_shown = 0;
		}
		fprintf(stderr, "evpop3d-swarm: violation %s: session %llu "
		    "user %s, %s line %u: %s\n", kind_names[k],
		    (unsigned long long)s->seq, u->name, e->prog->name,
		    e->prog->insns[s->run.pc].line, msg);
		if (++e->shown == SHOW_VIOLATIONS)
			fprintf(stderr, "evpop3d-swarm: further violations "
			    "are only counted\n");
	}
	if (s->state != SS_FREE)
		sess_end(s, OUT_FAILED);
}

/* ------------------------------------------------------------ output */

static int
io_set(struct sess *s, short what)
{
	if (s->io_added)
		event_del(&s->ev_io);
	event_assign(&s->ev_io, s->e->base, s->fd, what, sess_io_cb, s);
	if (event_add(&s->ev_io, NULL) == -1)
		return -1;
	s->io_added = 1;
	s->io_write = (what & EV_WRITE) != 0;
	return 0;
}

/*
 * Send p[0..len) on the connection, plain or TLS.  Returns the octets
 * taken (0 if the socket is full), or -1 once the session has ended.
 */
static ssize_t
sess_out(struct sess *s, const char *p, size_t len)
{
	char	 buf[256];
	ssize_t	 n;
	int	 r;

	if (s->ssl == NULL) {
		n = send(s->fd, p, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			violation(s, VK_CLOSED, "send: %s", strerror(errno));
			return -1;
		}
		return n;
	}
	ERR_clear_error();
	if ((r = SSL_write(s->ssl, p, (int)(len > INT32_MAX ? INT32_MAX :
	    len))) > 0)
		return r;
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:	/* the next readable event retries */
		return 0;
	case SSL_ERROR_SYSCALL:
		violation(s, VK_CLOSED, "SSL_write: %s", errno != 0 ?
		    strerror(errno) : "EOF");
		return -1;
	default:
		violation(s, VK_TLS, "SSL_write: %s",
		    swarm_tls_error(s->ssl, buf, sizeof(buf)));
		return -1;
	}
}

/* Write e->ob (the gathered commands); the rest waits for EV_WRITE. */
static int
sess_flush(struct sess *s)
{
	struct engine	*e = s->e;
	const char	*p = e->ob;
	size_t		 len = e->oblen;
	ssize_t		 n = 0;
	uint32_t	 i, idx;

	e->oblen = 0;
	/* Stamp the commands of this write. */
	for (i = s->qlen - s->qunsent; i < s->qlen; i++) {
		idx = (s->qhead + i) & (s->qcap - 1);
		s->q[idx] |= e->now << 8;
	}
	s->qunsent = 0;
	if (len == 0)
		return 0;
	if (s->outlen == 0) {
		if ((n = sess_out(s, p, len)) == -1)
			return -1;
		e->st.bytes_out += (uint64_t)n;
		if ((size_t)n == len)
			return 0;
	}
	if (s->outoff > 0 && s->outlen == 0)
		s->outoff = 0;
	if (swarm_grow((void **)&s->out, &s->outcap,
	    (size_t)s->outoff + s->outlen + len - (size_t)n, 1) == -1) {
		violation(s, VK_SCRIPT, "out of memory");
		return -1;
	}
	memcpy(s->out + s->outoff + s->outlen, p + n, len - (size_t)n);
	s->outlen += (uint32_t)(len - (size_t)n);
	if (!s->io_write && io_set(s, EV_READ | EV_WRITE | EV_PERSIST) == -1) {
		violation(s, VK_SCRIPT, "event_add failed");
		return -1;
	}
	return 0;
}

static int
sess_write_pending(struct sess *s)
{
	ssize_t	 n;

	if ((n = sess_out(s, s->out + s->outoff, s->outlen)) <= 0)
		return (int)n;
	s->e->st.bytes_out += (uint64_t)n;
	s->outoff += (uint32_t)n;
	s->outlen -= (uint32_t)n;
	if (s->outlen == 0) {
		s->outoff = 0;
		if (io_set(s, EV_READ | EV_PERSIST) == -1) {
			violation(s, VK_SCRIPT, "event_add failed");
			return -1;
		}
	}
	return 0;
}

/* Room for n more octets in e->ob.  0, or -1 when out of memory. */
static int
ob_reserve(struct engine *e, size_t n)
{
	size_t	 cap;
	char	*p;

	if (e->oblen + n <= e->obcap)
		return 0;
	cap = e->obcap ? e->obcap * 2 : 65536;
	while (cap < e->oblen + n)
		cap *= 2;
	if ((p = realloc(e->ob, cap)) == NULL)
		return -1;
	e->ob = p;
	e->obcap = cap;
	return 0;
}

/* Queue one command (expanded) into e->ob. */
static int
sess_send(struct sess *s, const struct sc_insn *in)
{
	struct engine		*e = s->e;
	const struct swarm_user	*u = &e->o->users[s->user];
	struct sc_ctx		 ctx;
	size_t			 len;
	uint16_t		 verb;
	uint32_t		 idx;

	ctx.user = u->name;
	ctx.user_len = u->name_len;
	ctx.password = u->password;
	ctx.password_len = u->password_len;
	ctx.ints = s->ints;
	len = sc_expand(e->prog, &in->text, &ctx, e->line, sizeof(e->line));
	verb = in->verb;
	if (verb == SC_VERB_DYNAMIC)
		verb = sc_verb_lookup(e->prog, e->line, len);

	if (ob_reserve(e, len + 2) == -1) {
		violation(s, VK_SCRIPT, "out of memory");
		return -1;
	}
	memcpy(e->ob + e->oblen, e->line, len);
	e->ob[e->oblen + len] = '\r';
	e->ob[e->oblen + len + 1] = '\n';
	e->oblen += len + 2;

	if (s->qlen == s->qcap) {
		/* Grow the ring (power of two), unwrapping it. */
		uint32_t	 ncap = s->qcap ? s->qcap * 2 : 8, i;
		uint64_t	*nq = malloc(sizeof(*nq) * ncap);

		if (nq == NULL) {
			violation(s, VK_SCRIPT, "out of memory");
			return -1;
		}
		for (i = 0; i < s->qlen; i++)
			nq[i] = s->q[(s->qhead + i) & (s->qcap - 1)];
		free(s->q);
		s->q = nq;
		s->qcap = ncap;
		s->qhead = 0;
	}
	idx = (s->qhead + s->qlen) & (s->qcap - 1);
	s->q[idx] = verb;
	s->qlen++;
	s->qunsent++;
	return 0;
}

/* ------------------------------------------------------------ replies */

/* A reply is complete: its latency goes to the command it answers. */
static void
reply_latency(struct sess *s)
{
	struct engine	*e = s->e;
	uint64_t	 ent, t;
	uint16_t	 verb;

	if (!s->greeted) {
		s->greeted = 1;
		hist_add(&e->st.greeting, e->now - s->t_connected);
		return;
	}
	if (s->qlen == 0 || s->qlen == s->qunsent)
		return;
	ent = s->q[s->qhead];
	s->qhead = (s->qhead + 1) & (s->qcap - 1);
	s->qlen--;
	verb = (uint16_t)(ent & 0xff);
	t = ent >> 8;
	hist_add(&e->st.verbs[verb], e->now >= t ? e->now - t : 0);
	e->st.commands++;
	s->last_verb = verb;
}

static int
sizes_reserve(struct sess *s, uint64_t n)
{
	uint32_t	 old = s->capsizes;

	if (n + 1 > (1u << 24))
		return -1;
	if (swarm_grow((void **)&s->sizes, &s->capsizes, (size_t)n + 1,
	    sizeof(*s->sizes)) == -1)
		return -1;
	memset(s->sizes + old, 0, sizeof(*s->sizes) * (s->capsizes - old));
	return 0;
}

/* Start reading the body of a multi-line reply. */
static int
body_begin(struct sess *s)
{
	switch (s->exp->check) {
	case SC_CHK_LIST:
		s->rp = RP_LINES;
		s->acc_n = s->acc_sum = 0;
		s->list_seen = 0;
		if (s->sizes != NULL)
			memset(s->sizes, 0, sizeof(*s->sizes) * s->capsizes);
		s->nsizes = 0;
		if (s->stat_seen && sizes_reserve(s, s->stat_count) == -1) {
			violation(s, VK_SYNTAX, "STAT count %llu too large",
			    (unsigned long long)s->stat_count);
			return -1;
		}
		break;
	case SC_CHK_UIDL:
		s->rp = RP_LINES;
		s->acc_n = 0;
		s->nuids = 0;
		break;
	default:
		s->rp = RP_COUNT;
		mlcount_init(&s->ml);
		break;
	}
	return 0;
}

/* The status line of the reply, without its terminator. */
static int
status_line(struct sess *s, const char *line, size_t len, int bare_lf)
{
	const struct sc_insn	*in = s->exp;
	enum reply_status	 st;
	uint64_t		 count, size;
	char			 ex[128];

	if (bare_lf) {
		violation(s, VK_BARE_LF, "status line ends in a bare LF");
		return -1;
	}
	if (len + 2 > REPLY_STATUS_MAX) {
		violation(s, VK_SYNTAX, "status line of %zu octets", len + 2);
		return -1;
	}
	st = reply_status(line, len);
	if (st == REPLY_BAD) {
		excerpt(ex, sizeof(ex), line, len);
		violation(s, VK_SYNTAX, "bad status line \"%s\"", ex);
		return -1;
	}
	if (st == REPLY_ERR)
		s->e->st.err_replies++;
	if ((in->status == SC_ST_OK && st != REPLY_OK) ||
	    (in->status == SC_ST_ERR && st != REPLY_ERR)) {
		excerpt(ex, sizeof(ex), line, len);
		violation(s, VK_STATUS, "expected %s, got \"%s\"",
		    in->status == SC_ST_OK ? "+OK" : "-ERR", ex);
		return -1;
	}
	if (in->check == SC_CHK_STAT && st == REPLY_OK) {
		if (reply_parse_stat(line, len, &count, &size) == -1 ||
		    count > INT64_MAX || size > INT64_MAX) {
			excerpt(ex, sizeof(ex), line, len);
			violation(s, VK_SYNTAX, "bad STAT reply \"%s\"", ex);
			return -1;
		}
		s->stat_seen = 1;
		s->stat_count = count;
		s->stat_size = size;
		sc_set_stat(&s->run, s->ints, (int64_t)count, (int64_t)size);
	}
	/* RFC 1939 section 3: -ERR is always a single line. */
	if (in->multiline && st == REPLY_OK)
		return body_begin(s);
	s->rp = RP_DONE;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	 x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One line of a LIST or UIDL listing (un-stuffed, no terminator). */
static int
listing_line(struct sess *s, const char *line, size_t len)
{
	const char	*uid;
	size_t		 uidlen;
	uint64_t	 n, size;
	char		 ex[128];

	if (s->exp->check == SC_CHK_LIST) {
		if (reply_parse_list(line, len, &n, &size) == -1 || n == 0) {
			excerpt(ex, sizeof(ex), line, len);
			violation(s, VK_SYNTAX, "bad LIST line \"%s\"", ex);
			return -1;
		}
		if (sizes_reserve(s, n) == -1) {
			violation(s, VK_SYNTAX, "LIST message number %llu",
			    (unsigned long long)n);
			return -1;
		}
		if (s->sizes[n] != 0) {
			violation(s, VK_STAT_LIST, "message %llu listed twice",
			    (unsigned long long)n);
			return -1;
		}
		s->sizes[n] = size + 1;
		if (n + 1 > s->nsizes)
			s->nsizes = (uint32_t)(n + 1);
		s->acc_n++;
		s->acc_sum += size;
		return 0;
	}
	/* RFC 1939 section 7: "n uid", uid 1..70 chars 0x21..0x7E. */
	if (reply_parse_uidl(line, len, &n, &uid, &uidlen) == -1) {
		excerpt(ex, sizeof(ex), line, len);
		violation(s, VK_UIDL, "bad UIDL line \"%s\"", ex);
		return -1;
	}
	if (s->list_seen && (n >= s->nsizes || s->sizes[n] == 0)) {
		violation(s, VK_UIDL, "UIDL message %llu is not in LIST",
		    (unsigned long long)n);
		return -1;
	}
	if (s->nuids == s->capuids && swarm_grow((void **)&s->uids, &s->capuids,
	    (size_t)s->nuids + 1, sizeof(*s->uids)) == -1) {
		violation(s, VK_SCRIPT, "out of memory");
		return -1;
	}
	s->uids[s->nuids++] = reply_hash(uid, uidlen);
	s->acc_n++;
	return 0;
}

/* The listing's ".": cross-checks against STAT and LIST. */
static int
listing_end(struct sess *s)
{
	uint32_t	 i;

	if (s->exp->check == SC_CHK_LIST) {
		s->list_seen = 1;
		s->list_count = s->acc_n;
		/* RFC 1939 section 5: the same messages STAT counted. */
		if (s->stat_seen && (s->acc_n != s->stat_count ||
		    s->acc_sum != s->stat_size)) {
			violation(s, VK_STAT_LIST, "LIST %llu messages %llu "
			    "octets, STAT said %llu %llu",
			    (unsigned long long)s->acc_n,
			    (unsigned long long)s->acc_sum,
			    (unsigned long long)s->stat_count,
			    (unsigned long long)s->stat_size);
			return -1;
		}
		return 0;
	}
	if (s->list_seen && s->acc_n != s->list_count) {
		violation(s, VK_UIDL, "UIDL lists %llu messages, LIST %llu",
		    (unsigned long long)s->acc_n,
		    (unsigned long long)s->list_count);
		return -1;
	}
	qsort(s->uids, s->nuids, sizeof(*s->uids), cmp_u64);
	for (i = 1; i < s->nuids; i++)
		if (s->uids[i] == s->uids[i - 1]) {
			violation(s, VK_UIDL, "duplicate unique-id");
			return -1;
		}
	return 0;
}

/* A counted body ended. */
static int
body_end(struct sess *s)
{
	const struct sc_insn	*in = s->exp;
	int64_t			 n;
	uint64_t		 want;

	if (s->ml.flags & ML_BARE_LF) {
		violation(s, VK_BARE_LF, "multi-line reply has a bare LF");
		return -1;
	}
	if (in->check != SC_CHK_RETR || !s->list_seen)
		return 0;
	n = sc_eval(&in->x, s->ints);
	if (n < 1 || (uint64_t)n >= s->nsizes || s->sizes[n] == 0)
		return 0;
	want = s->sizes[n] - 1;
	if (s->ml.octets != want) {
		violation(s, VK_RETR_SIZE, "RETR %lld: %llu octets, LIST "
		    "said %llu", (long long)n,
		    (unsigned long long)s->ml.octets,
		    (unsigned long long)want);
		return -1;
	}
	return 0;
}

/*
 * Consume what the current reply phase can from p[0..len).  Returns the
 * bytes used (s->rp is RP_DONE once the reply is complete), or -1 if the
 * session ended.
 */
static ssize_t
reply_consume(struct sess *s, const char *p, size_t len)
{
	const char	*lf, *line;
	size_t		 used = 0, n;
	int		 bare;

	switch (s->rp) {
	case RP_DRAIN:
		return (ssize_t)len;
	case RP_COUNT:
		n = mlcount_feed(&s->ml, p, len);
		if (s->ml.flags & ML_DONE) {
			if (body_end(s) == -1)
				return -1;
			s->rp = RP_DONE;
		}
		return (ssize_t)n;
	case RP_STATUS:
		if ((lf = memchr(p, '\n', len)) == NULL) {
			if (len > LINE_MAX_IN) {
				violation(s, VK_SYNTAX, "status line over "
				    "%d octets", LINE_MAX_IN);
				return -1;
			}
			return 0;
		}
		n = (size_t)(lf - p);
		bare = n == 0 || p[n - 1] != '\r';
		if (status_line(s, p, bare ? n : n - 1, bare) == -1)
			return -1;
		return (ssize_t)(n + 1);
	case RP_LINES:
		while (used < len) {
			lf = memchr(p + used, '\n', len - used);
			if (lf == NULL) {
				if (len - used > LINE_MAX_IN) {
					violation(s, VK_SYNTAX, "listing line "
					    "over %d octets", LINE_MAX_IN);
					return -1;
				}
				break;
			}
			line = p + used;
			n = (size_t)(lf - line);
			used += n + 1;
			if (n == 0 || line[n - 1] != '\r') {
				violation(s, VK_BARE_LF, "listing line ends "
				    "in a bare LF");
				return -1;
			}
			n--;
			if (n == 1 && line[0] == '.') {
				if (listing_end(s) == -1)
					return -1;
				s->rp = RP_DONE;
				break;
			}
			if (n > 0 && line[0] == '.') {	/* un-stuff */
				line++;
				n--;
			}
			if (listing_line(s, line, n) == -1)
				return -1;
		}
		return (ssize_t)used;
	default:
		return 0;
	}
}

/*
 * Feed input to the session: data is either e->rbuf (owned = 0) or the
 * session's own stash (owned = 1).  Runs the script forward whenever a
 * reply completes; keeps whatever is left over in the stash.
 */
static void
sess_pump(struct sess *s, const char *data, size_t len, int owned)
{
	size_t	 off = 0, left;
	ssize_t	 k;
	uint8_t	 prev;
	enum adv a;
	int	 greeting;

	s->pumping = 1;
	while (off < len) {
		if (s->rp == RP_NONE)
			break;
		prev = s->rp;
		k = reply_consume(s, data + off, len - off);
		if (k == -1)
			return;			/* ended */
		off += (size_t)k;
		if (s->rp == RP_DONE) {
			greeting = !s->greeted;
			reply_latency(s);
			s->rp = RP_NONE;
			s->exp = NULL;
			if (s->tls == TS_STLS) {
				/*
				 * RFC 2595 section 4: the handshake begins
				 * right after the +OK; the server has nothing
				 * more to say in clear.
				 */
				if (off < len) {
					violation(s, VK_TLS, "%zu octets in "
					    "clear after the STLS reply",
					    len - off);
					return;
				}
				s->pumping = 0;
				if (owned)
					s->inlen = 0;
				sess_tls_begin(s);
				return;
			}
			sc_done(s->e->prog, &s->run, s->ints);
			if (greeting && s->e->o->tls == SWARM_TLS_STLS &&
			    s->tls == TS_PLAIN) {
				if (sess_stls(s) == -1)
					return;
				continue;
			}
			a = sess_advance(s);
			if (a == ADV_ENDED)
				return;
			continue;
		}
		/* Same phase and not done: it took all it could. */
		if (s->rp == prev)
			break;
	}
	s->pumping = 0;
	left = len - off;
	if (owned) {
		if (left > 0 && off > 0)
			memmove(s->in, s->in + off, left);
		s->inlen = (uint32_t)left;
	} else if (left > 0) {
		if (left > STASH_MAX) {
			violation(s, VK_UNSOLICITED, "%zu octets nobody "
			    "asked for", left);
			return;
		}
		if (swarm_grow((void **)&s->in, &s->incap, left, 1) == -1) {
			violation(s, VK_SCRIPT, "out of memory");
			return;
		}
		memcpy(s->in, data + off, left);
		s->inlen = (uint32_t)left;
	}
	/* A reply cut short by EOF. */
	if (s->eof && s->rp != RP_NONE && s->rp != RP_DRAIN)
		violation(s, s->rp == RP_COUNT || s->rp == RP_LINES ?
		    VK_TERMINATOR : VK_CLOSED, "connection closed by the "
		    "server during a reply");
}

/* The socket reached EOF (or was reset). */
static void
sess_eof(struct sess *s)
{
	s->eof = 1;
	if (s->io_added) {
		event_del(&s->ev_io);
		s->io_added = 0;
	}
	if (s->rp == RP_DRAIN) {
		/* `close` saw the server's EOF. */
		s->rp = RP_NONE;
		sc_done(s->e->prog, &s->run, s->ints);
		(void)sess_advance(s);
		return;
	}
	if (s->rp != RP_NONE)
		violation(s, s->rp == RP_COUNT || s->rp == RP_LINES ?
		    VK_TERMINATOR : VK_CLOSED, "connection closed by the "
		    "server during a reply");
	/* Otherwise the next expect reports it. */
}

/* Input of n octets in e->rbuf: after the stash, or parsed in place. */
static void
sess_feed(struct sess *s, size_t n)
{
	struct engine	*e = s->e;

	e->st.bytes_in += (uint64_t)n;
	if (s->inlen > 0) {
		if (s->inlen + (size_t)n > STASH_MAX) {
			violation(s, VK_UNSOLICITED, "%zu octets nobody "
			    "asked for", s->inlen + (size_t)n);
			return;
		}
		if (swarm_grow((void **)&s->in, &s->incap, s->inlen + (size_t)n,
		    1) == -1) {
			violation(s, VK_SCRIPT, "out of memory");
			return;
		}
		memcpy(s->in + s->inlen, e->rbuf, (size_t)n);
		s->inlen += (uint32_t)n;
		sess_pump(s, s->in, s->inlen, 1);
	} else
		sess_pump(s, e->rbuf, (size_t)n, 0);
}

/* Read what TLS has, until it wants the socket again. */
static void
sess_tls_read(struct sess *s)
{
	struct engine	*e = s->e;
	char		 buf[256];
	int		 n;

	for (;;) {
		ERR_clear_error();
		if ((n = SSL_read(s->ssl, e->rbuf, RBUF_SIZE)) > 0) {
			sess_feed(s, (size_t)n);
			if (s->state == SS_FREE || s->ssl == NULL ||
			    s->eof)
				return;
			continue;
		}
		switch (SSL_get_error(s->ssl, n)) {
		case SSL_ERROR_WANT_READ:
			if (s->tls_wantw) {
				s->tls_wantw = 0;
				if (s->outlen == 0 &&
				    io_set(s, EV_READ | EV_PERSIST) == -1)
					violation(s, VK_SCRIPT, "event_add "
					    "failed");
			}
			return;
		case SSL_ERROR_WANT_WRITE:
			s->tls_wantw = 1;
			if (!s->io_write && io_set(s, EV_READ | EV_WRITE |
			    EV_PERSIST) == -1)
				violation(s, VK_SCRIPT, "event_add failed");
			return;
		case SSL_ERROR_ZERO_RETURN:
			sess_eof(s);
			return;
		case SSL_ERROR_SYSCALL:
			if (errno == 0 || errno == ECONNRESET) {
				sess_eof(s);
				return;
			}
			violation(s, VK_CLOSED, "SSL_read: %s",
			    strerror(errno));
			return;
		default:
			violation(s, VK_TLS, "SSL_read: %s",
			    swarm_tls_error(s->ssl, buf, sizeof(buf)));
			return;
		}
	}
}

static void
sess_read(struct sess *s)
{
	struct engine	*e = s->e;
	ssize_t		 n;

	if (s->ssl != NULL) {
		sess_tls_read(s);
		return;
	}
	n = read(s->fd, e->rbuf, RBUF_SIZE);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno != ECONNRESET) {
			violation(s, VK_CLOSED, "read: %s", strerror(errno));
			return;
		}
		n = 0;
	}
	if (n == 0) {
		sess_eof(s);
		return;
	}
	sess_feed(s, (size_t)n);
}

/* ------------------------------------------------------------ TLS */

/* The handshake is done: the script goes on over TLS. */
static void
sess_tls_done(struct sess *s)
{
	struct engine	*e = s->e;
	const char	*v, *c;

	hist_add(&e->st.handshake, e->now - s->t_hs);
	if (SSL_session_reused(s->ssl))
		e->st.tls_resumed++;
	else
		e->st.tls_full++;
	if (e->st.tls_proto[0] == '\0') {
		v = SSL_get_version(s->ssl);
		c = SSL_get_cipher_name(s->ssl);
		snprintf(e->st.tls_proto, sizeof(e->st.tls_proto), "%s",
		    v != NULL ? v : "?");
		snprintf(e->st.tls_cipher, sizeof(e->st.tls_cipher), "%s",
		    c != NULL ? c : "?");
	}
	s->tls = TS_ON;
	event_del(&s->ev_tmr);
	s->tmr = TM_NONE;
	if (s->io_write && io_set(s, EV_READ | EV_PERSIST) == -1) {
		violation(s, VK_SCRIPT, "event_add failed");
		return;
	}
	/* --tls: the handshake stood in for the end of `connect`. */
	if (e->o->tls == SWARM_TLS_IMPLICIT)
		sc_done(e->prog, &s->run, s->ints);
	if (sess_advance(s) == ADV_ENDED)
		return;
	/* A record OpenSSL already holds raises no readable event. */
	sess_tls_read(s);
}

/* Drive SSL_connect() one step. */
static void
sess_tls_step(struct sess *s)
{
	char	 buf[256];
	short	 want;
	int	 r;

	ERR_clear_error();
	if ((r = SSL_connect(s->ssl)) == 1) {
		sess_tls_done(s);
		return;
	}
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		want = EV_READ;
		break;
	case SSL_ERROR_WANT_WRITE:
		want = EV_READ | EV_WRITE;
		break;
	case SSL_ERROR_SYSCALL:
		violation(s, VK_TLS, "handshake: %s", errno != 0 ?
		    strerror(errno) : "the server closed the connection");
		return;
	default:
		violation(s, VK_TLS, "handshake: %s",
		    swarm_tls_error(s->ssl, buf, sizeof(buf)));
		return;
	}
	if ((!s->io_added || s->io_write != ((want & EV_WRITE) != 0)) &&
	    io_set(s, want | EV_PERSIST) == -1)
		violation(s, VK_SCRIPT, "event_add failed");
}

/* Start the handshake on the connected socket (--tls, or STLS's +OK). */
static void
sess_tls_begin(struct sess *s)
{
	struct engine	*e = s->e;
	char		 err[256];

	s->ssl = swarm_tls_attach(e->ctx, s->fd, e->o->tls_name,
	    e->o->tls_resume ? &s->tslot : NULL, err, sizeof(err));
	if (s->ssl == NULL) {
		violation(s, VK_TLS, "%s", err);
		return;
	}
	s->tls = TS_HANDSHAKE;
	s->t_hs = e->now;
	s->tmr = TM_HANDSHAKE;
	event_add(&s->ev_tmr, e->tv_reply);
	sess_tls_step(s);
}

/*
 * --stls: send STLS right after the greeting (RFC 2595 section 4; no CAPA
 * first: the bench measures the upgrade, not discovery) and read its
 * reply as an expect of its own.  Returns 0, or -1 if the session ended.
 */
static int
sess_stls(struct sess *s)
{
	struct engine	*e = s->e;

	if (ob_reserve(e, 6) == -1) {
		violation(s, VK_SCRIPT, "out of memory");
		return -1;
	}
	memcpy(e->ob + e->oblen, "STLS\r\n", 6);
	e->oblen += 6;
	if (sess_flush(s) == -1)
		return -1;
	s->tls = TS_STLS;
	sess_expect(s, &stls_insn);
	return 0;
}

static void
sess_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess	*s = arg;

	(void)fd;
	tick(s->e);
	if (s->tls == TS_HANDSHAKE) {
		sess_tls_step(s);
		return;
	}
	if ((what & EV_WRITE) && s->outlen > 0 && sess_write_pending(s) == -1)
		return;
	if ((what & EV_READ) || (s->tls_wantw && (what & EV_WRITE)))
		sess_read(s);
}

/* ------------------------------------------------------------ connect */

static void
sess_connected(struct sess *s)
{
	struct engine	*e = s->e;

	s->t_connected = e->now;
	hist_add(&e->st.connect, e->now - s->t_start);
	s->state = SS_ACTIVE;
	s->open = 1;
	if (++e->open > e->st.peak_open)
		e->st.peak_open = e->open;
	if (io_set(s, EV_READ | EV_PERSIST) == -1) {
		violation(s, VK_SCRIPT, "event_add failed");
		return;
	}
	event_del(&s->ev_tmr);
	s->tmr = TM_NONE;
	if (e->o->tls == SWARM_TLS_IMPLICIT) {
		sess_tls_begin(s);
		return;
	}
	sc_done(e->prog, &s->run, s->ints);
	(void)sess_advance(s);
}

static void
sess_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess	*s = arg;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	(void)what;
	tick(s->e);
	s->io_added = 0;		/* one-shot EV_WRITE has fired */
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		violation(s, VK_CONNECT, "connect: %s", strerror(err));
		return;
	}
	sess_connected(s);
}

/* Returns ADV_WAIT (connecting or connected) or ADV_ENDED. */
static enum adv
sess_connect(struct sess *s)
{
	struct engine		*e = s->e;
	const struct swarm_opts	*o = e->o;
	const struct sockaddr	*src;
	int			 one = 1, fd;

	fd = socket(o->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		violation(s, VK_CONNECT, "socket: %s", strerror(errno));
		return ADV_ENDED;
	}
	s->fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->nsrc > 0) {
		src = (const struct sockaddr *)&o->src[s->seq % o->nsrc];
		/* Pick the port at connect() time, per 4-tuple. */
		if (src->sa_family == AF_INET)
			(void)setsockopt(fd, IPPROTO_IP,
			    IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, src, src->sa_family == AF_INET ?
		    sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6)) == -1) {
			violation(s, VK_CONNECT, "bind: %s", strerror(errno));
			return ADV_ENDED;
		}
	}
	s->state = SS_CONNECTING;
	if (connect(fd, (const struct sockaddr *)&o->dst, o->dstlen) == 0) {
		sess_connected(s);
		return s->state == SS_FREE ? ADV_ENDED : ADV_WAIT;
	}
	if (errno != EINPROGRESS) {
		violation(s, VK_CONNECT, "connect: %s", strerror(errno));
		return ADV_ENDED;
	}
	event_assign(&s->ev_io, e->base, fd, EV_WRITE, sess_connect_cb, s);
	if (event_add(&s->ev_io, NULL) == -1) {
		violation(s, VK_SCRIPT, "event_add failed");
		return ADV_ENDED;
	}
	s->io_added = 1;
	s->tmr = TM_CONNECT;
	event_add(&s->ev_tmr, e->tv_connect);
	return ADV_WAIT;
}

/* ------------------------------------------------------------ script */

static void
sess_mark(struct sess *s, const struct sc_insn *in)
{
	struct engine	*e = s->e;

	e->st.marks[in->mark]++;
	if ((int)in->mark == e->prog->ready_mark && !s->ready) {
		s->ready = 1;
		e->ready_now++;
	}
}

/* Begin an expect; the reply may already be in the stash. */
static void
sess_expect(struct sess *s, const struct sc_insn *in)
{
	s->exp = in;
	s->rp = RP_STATUS;
	s->tmr = TM_REPLY;
	event_add(&s->ev_tmr, s->e->tv_reply);
}

/* `close`: wait for the server's EOF (after QUIT it closes by itself). */
static void
sess_close(struct sess *s)
{
	if (s->last_verb != s->e->verb_quit) {
		if (s->ssl != NULL) {
			/* close_notify first; whatever it says, no retry. */
			(void)SSL_shutdown(s->ssl);
			ERR_clear_error();
		}
		(void)shutdown(s->fd, SHUT_WR);
	}
	s->rp = RP_DRAIN;
	s->tmr = TM_CLOSE;
	event_add(&s->ev_tmr, s->e->tv_reply);
}

/*
 * Run the script until it waits.  Returns ADV_WAIT (the session waits for
 * a reply, a timer, a connect or EOF) or ADV_ENDED.  Stashed input is fed
 * to a new expect here, so callers need not care.
 */
static enum adv
sess_advance(struct sess *s)
{
	struct engine		*e = s->e;
	const struct sc_insn	*in;
	struct timeval		 tv;
	int64_t			 ms;

	for (;;) {
		in = sc_step(e->prog, &s->run, s->ints, e->stopping);
		if (in == NULL) {
			violation(s, VK_SCRIPT, "%d steps without I/O",
			    SC_MAX_STEPS);
			return ADV_ENDED;
		}
		switch (in->op) {
		case SC_CONNECT:
			return sess_connect(s);
		case SC_SEND:
			if (sess_send(s, in) == -1)
				return ADV_ENDED;
			if (s->run.pipe == SC_PIPE_NONE &&
			    sess_flush(s) == -1)
				return ADV_ENDED;
			break;
		case SC_PIPE_END:
			if (sess_flush(s) == -1)
				return ADV_ENDED;
			break;
		case SC_EXPECT:
			sess_expect(s, in);
			if (s->pumping)
				return ADV_WAIT;	/* the pump goes on */
			if (s->inlen > 0) {
				/* sess_pump() continues the script. */
				sess_pump(s, s->in, s->inlen, 1);
				return s->state == SS_FREE ? ADV_ENDED :
				    ADV_WAIT;
			}
			if (s->eof) {
				violation(s, VK_CLOSED, "connection closed "
				    "by the server");
				return ADV_ENDED;
			}
			return ADV_WAIT;
		case SC_PAUSE:
			ms = sc_eval(&in->x, s->ints);
			/*
			 * Sessions start in batches; without a random phase
			 * for the first pause of a loop, their periodic
			 * commands would all go out in the same loop pass
			 * and measure the swarm's own burst.
			 */
			if (in->in_loop && !s->phased && ms > 1) {
				s->phased = 1;
				ms = 1 + (int64_t)(random() % ms);
			}
			if (ms > 0) {
				tv = ms_tv((uint64_t)ms);
				s->tmr = TM_PAUSE;
				event_add(&s->ev_tmr, &tv);
				return ADV_WAIT;
			}
			break;
		case SC_MARK:
			sess_mark(s, in);
			break;
		case SC_CLOSE:
			if (!s->eof) {
				sess_close(s);
				return ADV_WAIT;
			}
			break;
		case SC_HALT:
			sess_end(s, OUT_COMPLETED);
			return ADV_ENDED;
		}
		sc_done(e->prog, &s->run, s->ints);
	}
}

static void
sess_tmr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess	*s = arg;
	struct engine	*e = s->e;
	uint8_t		 use = s->tmr;

	(void)fd;
	(void)what;
	tick(e);
	s->tmr = TM_NONE;
	switch (use) {
	case TM_CONNECT:
		violation(s, VK_CONNECT, "connect timed out");
		break;
	case TM_REPLY:
		if (s->rp == RP_COUNT && mlcount_at_dot_cr(&s->ml))
			violation(s, VK_TERMINATOR, "terminator \".\\r\" "
			    "without LF");
		else
			violation(s, VK_TIMEOUT, "no complete reply within "
			    "%u ms", e->o->reply_timeout_ms);
		break;
	case TM_CLOSE:
		violation(s, VK_TIMEOUT, "server did not close within %u ms",
		    e->o->reply_timeout_ms);
		break;
	case TM_HANDSHAKE:
		violation(s, VK_TLS, "handshake not done within %u ms",
		    e->o->reply_timeout_ms);
		break;
	case TM_PAUSE:
		/*
		 * Stopping wakes every pausing session at once: back to the
		 * loop head, which leaves the loop, instead of all of them
		 * sending the loop's next command in one burst.
		 */
		if (e->stopping && e->prog->insns[s->run.pc].in_loop)
			s->run.pc = e->prog->insns[s->run.pc].jump;
		else
			sc_done(e->prog, &s->run, s->ints);
		(void)sess_advance(s);
		break;
	default:
		break;
	}
}

static void
sess_start(struct engine *e, struct sess *s)
{
	const struct swarm_opts	*o = e->o;
	uint32_t		 i, u;

	/* Round-robin over users, skipping those in use when possible
	 * (a POP3 maildrop lock would refuse a second session). */
	u = e->unext;
	for (i = 0; i < o->nusers && e->ubusy[u]; i++)
		u = (u + 1) % o->nusers;
	if (i == o->nusers)
		u = e->unext;
	e->unext = (u + 1) % o->nusers;
	e->ubusy[u] = 1;

	s->user = u;
	s->seq = ++e->seq;
	s->state = SS_ACTIVE;
	s->fd = -1;
	s->rp = RP_NONE;
	s->tmr = TM_NONE;
	s->eof = s->greeted = s->ready = s->stat_seen = s->list_seen = 0;
	s->phased = s->io_write = 0;
	s->last_verb = SC_VERB_OTHER;
	s->exp = NULL;
	s->t_start = e->now;
	s->t_connected = e->now;
	s->list_count = 0;
	sc_run_init(e->prog, &s->run, s->ints, (int64_t)s->seq);
	e->active++;
	e->st.started++;
	(void)sess_advance(s);
}

/* ------------------------------------------------------------ run control */

static void
refill_kick(struct engine *e)
{
	if (!e->stopping)
		event_active(e->ev_refill, EV_TIMEOUT, 0);
}

static void
refill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine		*e = arg;
	const struct swarm_opts	*o = e->o;
	unsigned		 batch = 0;
	uint64_t		 allowed;

	(void)fd;
	(void)what;
	tick(e);
	while (!e->stopping && e->nfree > 0) {
		if (o->sessions != 0 && e->st.started >= o->sessions)
			return;
		if (o->rate > 0) {
			allowed = (uint64_t)(o->rate * (double)e->now / 1e6) + 1;
			if (e->st.started >= allowed)
				return;		/* the rate timer calls again */
		}
		if (batch++ == REFILL_BATCH) {
			/* Let replies in between a big ramp-up. */
			event_active(e->ev_refill, EV_TIMEOUT, 0);
			return;
		}
		sess_start(e, &e->sess[e->freelist[--e->nfree]]);
	}
}

static void
abort_all(struct engine *e)
{
	unsigned	 i;

	for (i = 0; i < e->o->concurrency; i++)
		if (e->sess[i].state != SS_FREE)
			sess_end(&e->sess[i], OUT_ABORTED);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine	*e = arg;

	(void)fd;
	(void)what;
	tick(e);
	abort_all(e);
	event_base_loopbreak(e->base);
}

/* Stop starting sessions; loops exit; stragglers are aborted in 5 s. */
static void
engine_stop(struct engine *e, const char *why)
{
	struct timeval	 tv = ms_tv(SWARM_STOP_GRACE_MS);
	struct sess	*s;
	unsigned	 i;

	(void)why;
	if (e->stopping)
		return;
	e->stopping = 1;
	if (e->ev_rate != NULL)
		event_del(e->ev_rate);
	event_add(e->ev_grace, &tv);
	if (e->active == 0) {
		event_base_loopbreak(e->base);
		return;
	}
	/* Sessions pausing inside a `loop` wake up now and leave it. */
	for (i = 0; i < e->o->concurrency; i++) {
		s = &e->sess[i];
		if (s->state != SS_FREE && s->tmr == TM_PAUSE &&
		    e->prog->insns[s->run.pc].in_loop)
			event_active(&s->ev_tmr, EV_TIMEOUT, 0);
	}
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine	*e = arg;

	(void)fd;
	(void)what;
	tick(e);
	engine_stop(e, "duration");
}

static void
sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine	*e = arg;

	(void)fd;
	(void)what;
	tick(e);
	if (e->sigints++ == 0 && !e->stopping) {
		engine_stop(e, "signal");
		return;
	}
	e->st.interrupted = true;
	abort_all(e);
	event_base_loopbreak(e->base);
}

/* ------------------------------------------------------------ sampling */

static void
server_note(struct engine *e, const struct procstat *p)
{
	struct swarm_server	*sv = &e->st.server;

	e->ps_last = *p;
	if (p->rss_bytes > sv->rss_peak)
		sv->rss_peak = p->rss_bytes;
	if (p->pss_bytes > sv->pss_peak)
		sv->pss_peak = p->pss_bytes;
	if (p->nprocs > sv->nprocs_peak)
		sv->nprocs_peak = p->nprocs;
}

static int
server_sample(struct engine *e, bool with_pss, struct procstat *p)
{
	if (procstat_sample(e->o->server_pid, e->o->server_children,
	    with_pss, p) == -1)
		return -1;
	server_note(e, p);
	return 0;
}

/*
 * The memory point (JSON mem_per_session).  With `mark ready`: once the
 * number of ready sessions is at its maximum and unchanged for 1 s.
 * Without: whenever the open sessions reach a new peak.
 */
static void
mem_point(struct engine *e, const struct procstat *p)
{
	struct swarm_server	*sv = &e->st.server;
	struct procstat		 q;

	if (e->prog->ready_mark >= 0) {
		if (e->ready_now > e->ready_best) {
			/* A candidate, used if the count never settles. */
			if (!p->pss_bytes && server_sample(e, true, &q) == 0)
				p = &q;
			e->ready_best = e->ready_now;
			e->ready_since = e->now;
			e->ready_done = 0;
			e->cand_rss = p->rss_bytes;
			e->cand_pss = p->pss_bytes;
			e->cand_open = e->ready_now;
		} else if (e->ready_now == e->ready_best && !e->ready_done &&
		    e->ready_best > 0 && e->now - e->ready_since >= 1000000) {
			if (!p->pss_bytes && server_sample(e, true, &q) == 0)
				p = &q;
			e->ready_done = 1;
			sv->mem_rss = p->rss_bytes;
			sv->mem_pss = p->pss_bytes;
			sv->mem_open = e->ready_best;
		} else if (e->ready_now < e->ready_best)
			e->ready_since = e->now;
		return;
	}
	if (e->open > sv->mem_open) {
		if (!p->pss_bytes && server_sample(e, true, &q) == 0)
			p = &q;
		sv->mem_rss = p->rss_bytes;
		sv->mem_pss = p->pss_bytes;
		sv->mem_open = e->open;
	}
}

static void
sample_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine	*e = arg;
	struct procstat	 p;

	(void)fd;
	(void)what;
	tick(e);
	/* PSS (smaps_rollup) is slow to read: once a second. */
	if (server_sample(e, ++e->ticks % 10 == 0, &p) == -1)
		return;
	mem_point(e, &p);
}

static void
timeline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine		*e = arg;
	struct swarm_stats	*st = &e->st;
	struct swarm_tick	*t;

	(void)fd;
	(void)what;
	tick(e);
	if (swarm_grow((void **)&st->timeline, &st->captimeline,
	    (size_t)st->ntimeline + 1, sizeof(*st->timeline)) == -1)
		return;
	t = &st->timeline[st->ntimeline++];
	t->t = (double)e->now / 1e6;
	t->open = e->open;
	t->completed = st->completed;
	t->rss = e->o->server_pid ? e->ps_last.rss_bytes : 0;
}

static void
progress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine	*e = arg;
	double		 t;

	(void)fd;
	(void)what;
	tick(e);
	t = (double)e->now / 1e6;
	fprintf(stderr, "\r%6.1fs  open %-6llu done %-9llu %8.0f/s  "
	    "cmds %-10llu viol %llu   ", t,
	    (unsigned long long)e->open,
	    (unsigned long long)e->st.completed,
	    t > 0 ? (double)e->st.completed / t : 0.0,
	    (unsigned long long)e->st.commands,
	    (unsigned long long)e->st.violations_total);
	e->progress_shown = 1;
}

/* ------------------------------------------------------------ setup */

static struct event *
timer_new(struct engine *e, event_callback_fn cb, short flags, uint64_t ms)
{
	struct event	*ev;
	struct timeval	 tv = ms_tv(ms);

	if ((ev = event_new(e->base, -1, flags, cb, e)) == NULL)
		return NULL;
	if (ms > 0 && event_add(ev, &tv) == -1) {
		event_free(ev);
		return NULL;
	}
	return ev;
}

struct engine *
engine_new(const struct swarm_opts *o)
{
	struct engine		*e;
	struct event_config	*cfg;
	struct timeval		 tv;
	unsigned		 i;
	uint16_t		 v;
	char			 msg[512];

	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto oom;
	e->o = o;
	e->prog = o->prog;
	e->verb_quit = 0xffff;
	for (v = 1; v < e->prog->nverbs; v++)
		if (strcmp(e->prog->verbs[v], "QUIT") == 0)
			e->verb_quit = v;

	if ((cfg = event_config_new()) == NULL)
		goto oom;
	/* Merge the per-callback epoll changes (connect -> read). */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	e->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (e->base == NULL) {
		fprintf(stderr, "evpop3d-swarm: event_base_new failed\n");
		free(e);
		return NULL;
	}
	tv = ms_tv(o->connect_timeout_ms);
	e->tv_connect = event_base_init_common_timeout(e->base, &tv);
	tv = ms_tv(o->reply_timeout_ms);
	e->tv_reply = event_base_init_common_timeout(e->base, &tv);

	e->sess = calloc(o->concurrency, sizeof(*e->sess));
	e->ints = calloc((size_t)o->concurrency * e->prog->nints,
	    sizeof(*e->ints));
	e->freelist = calloc(o->concurrency, sizeof(*e->freelist));
	e->ubusy = calloc(o->nusers, 1);
	e->rbuf = malloc(RBUF_SIZE);
	e->st.verbs = calloc(e->prog->nverbs, sizeof(*e->st.verbs));
	e->st.marks = calloc(e->prog->nmarks + 1, sizeof(*e->st.marks));
	if (o->tls != SWARM_TLS_OFF && (e->ctx = swarm_tls_ctx_new(o->cacert,
	    o->tls_resume, msg, sizeof(msg))) == NULL) {
		fprintf(stderr, "evpop3d-swarm: TLS: %s\n", msg);
		engine_free(e);
		return NULL;
	}
	if (e->sess == NULL || e->ints == NULL || e->freelist == NULL ||
	    e->ubusy == NULL || e->rbuf == NULL || e->st.verbs == NULL ||
	    e->st.marks == NULL)
		goto oom;
	for (i = 0; i < o->concurrency; i++) {
		struct sess *s = &e->sess[i];

		s->e = e;
		s->fd = -1;
		s->ints = e->ints + (size_t)i * e->prog->nints;
		evtimer_assign(&s->ev_tmr, e->base, sess_tmr_cb, s);
		e->freelist[i] = o->concurrency - 1 - i;
	}
	e->nfree = o->concurrency;
	hist_init(&e->st.session);
	hist_init(&e->st.connect);
	hist_init(&e->st.greeting);
	hist_init(&e->st.handshake);
	for (v = 0; v < e->prog->nverbs; v++)
		hist_init(&e->st.verbs[v]);
	return e;
oom:
	fprintf(stderr, "evpop3d-swarm: out of memory\n");
	engine_free(e);
	return NULL;
}

int
engine_run(struct engine *e)
{
	const struct swarm_opts	*o = e->o;
	struct swarm_server	*sv = &e->st.server;
	struct procstat		 p;
	struct rusage		 ru;
	uint64_t		 t_end;

	e->t0 = mono_us();
	e->now = 0;
	getrusage(RUSAGE_SELF, &e->ru_start);
	if (o->server_pid > 0) {
		sv->pid = o->server_pid;
		sv->children = o->server_children;
		if (procstat_sample(o->server_pid, o->server_children, true,
		    &e->ps_start) == -1) {
			fprintf(stderr, "evpop3d-swarm: --server-pid %d: "
			    "%s\n", (int)o->server_pid, strerror(errno));
			return -1;
		}
		sv->sampled = true;
		sv->rss_start = e->ps_start.rss_bytes;
		sv->pss_start = e->ps_start.pss_bytes;
		server_note(e, &e->ps_start);
	}

	e->ev_refill = event_new(e->base, -1, 0, refill_cb, e);
	e->ev_grace = evtimer_new(e->base, grace_cb, e);
	e->ev_stop = timer_new(e, stop_cb, 0,
	    (uint64_t)llround(o->duration * 1000.0));
	e->ev_timeline = timer_new(e, timeline_cb, EV_PERSIST, TIMELINE_MS);
	e->ev_sigint = evsignal_new(e->base, SIGINT, sigint_cb, e);
	e->ev_sigterm = evsignal_new(e->base, SIGTERM, sigint_cb, e);
	if (e->ev_refill == NULL || e->ev_grace == NULL || e->ev_stop == NULL ||
	    e->ev_timeline == NULL || e->ev_sigint == NULL ||
	    e->ev_sigterm == NULL || event_add(e->ev_sigint, NULL) == -1 ||
	    event_add(e->ev_sigterm, NULL) == -1)
		goto fail;
	if (o->rate > 0) {
		double	 ms = 1000.0 / o->rate;

		e->ev_rate = timer_new(e, refill_cb, EV_PERSIST,
		    ms < 1 ? 1 : (uint64_t)ms);
		if (e->ev_rate == NULL)
			goto fail;
	}
	if (o->server_pid > 0 &&
	    (e->ev_sample = timer_new(e, sample_cb, EV_PERSIST,
	    SAMPLE_MS)) == NULL)
		goto fail;
	if (o->progress &&
	    (e->ev_progress = timer_new(e, progress_cb, EV_PERSIST,
	    PROGRESS_MS)) == NULL)
		goto fail;

	event_active(e->ev_refill, EV_TIMEOUT, 0);
	if (event_base_dispatch(e->base) == -1)
		goto fail;

	t_end = mono_us() - e->t0;
	e->now = t_end;
	if (e->progress_shown)
		fputc('\n', stderr);
	/* Whatever is left (a second SIGINT, the grace timer). */
	abort_all(e);
	e->st.elapsed_s = (double)t_end / 1e6;
	getrusage(RUSAGE_SELF, &ru);
	e->st.client_cpu_us =
	    (uint64_t)(ru.ru_utime.tv_sec - e->ru_start.ru_utime.tv_sec) *
	    1000000u + (uint64_t)(ru.ru_stime.tv_sec -
	    e->ru_start.ru_stime.tv_sec) * 1000000u +
	    (uint64_t)(ru.ru_utime.tv_usec - e->ru_start.ru_utime.tv_usec) +
	    (uint64_t)(ru.ru_stime.tv_usec - e->ru_start.ru_stime.tv_usec);
	if (o->server_pid > 0) {
		if (server_sample(e, true, &p) == -1)
			p = e->ps_last;
		sv->rss_end = p.rss_bytes;
		sv->cpu_us = p.cpu_us >= e->ps_start.cpu_us ?
		    p.cpu_us - e->ps_start.cpu_us : 0;
		if (e->prog->ready_mark >= 0 && !e->ready_done &&
		    e->cand_open > 0) {
			sv->mem_rss = e->cand_rss;
			sv->mem_pss = e->cand_pss;
			sv->mem_open = e->cand_open;
		}
	}
	return 0;
fail:
	fprintf(stderr, "evpop3d-swarm: libevent setup failed\n");
	return -1;
}

const struct swarm_stats *
engine_stats(const struct engine *e)
{
	return &e->st;
}

void
engine_free(struct engine *e)
{
	unsigned	 i;

	if (e == NULL)
		return;
	if (e->sess != NULL) {
		for (i = 0; i < e->o->concurrency; i++) {
			struct sess *s = &e->sess[i];

			if (s->e == NULL)
				continue;
			if (s->io_added)
				event_del(&s->ev_io);
			event_del(&s->ev_tmr);
			if (s->ssl != NULL)
				SSL_free(s->ssl);
			swarm_tls_slot_clear(&s->tslot);
			if (s->fd != -1)
				close(s->fd);
			free(s->q);
			free(s->in);
			free(s->out);
			free(s->sizes);
			free(s->uids);
		}
	}
	if (e->ev_refill)
		event_free(e->ev_refill);
	if (e->ev_rate)
		event_free(e->ev_rate);
	if (e->ev_stop)
		event_free(e->ev_stop);
	if (e->ev_grace)
		event_free(e->ev_grace);
	if (e->ev_sample)
		event_free(e->ev_sample);
	if (e->ev_timeline)
		event_free(e->ev_timeline);
	if (e->ev_progress)
		event_free(e->ev_progress);
	if (e->ev_sigint)
		event_free(e->ev_sigint);
	if (e->ev_sigterm)
		event_free(e->ev_sigterm);
	free(e->sess);
	free(e->ints);
	free(e->freelist);
	free(e->ubusy);
	free(e->rbuf);
	free(e->ob);
	free(e->st.verbs);
	free(e->st.marks);
	free(e->st.timeline);
	if (e->base != NULL)
		event_base_free(e->base);
	if (e->ctx != NULL)
		swarm_tls_ctx_free(e->ctx);
	free(e);
}
