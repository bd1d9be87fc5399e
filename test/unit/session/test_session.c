/*
 * The session on its own: a real event base and four transports (a
 * socketpair as a plain socket, session_new_socket(), and as a socket
 * bufferevent; a bufferevent pair; a pass-through filter over a socket)
 * under a fake protocol that records every call the session makes and
 * is scripted by the lines its peer sends (fake_input()). Every wait
 * turns the loop until a condition holds, with a deadline; none sleeps.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/monotime.h"
#include "session/session.h"
#include "session/session_int.h"	/* s->reason, s->eof */

#define WAIT_MS		10000		/* the deadline of one wait */
#define TICK_MS		100		/* WAIT_FOR() looks this often */
#define SLACK_MS	5		/* timer vs. mono_ms() rounding */
/*
 * A deadline is a libevent timer on its coarse clock: early by a jiffy
 * at most (4 ms at HZ=250, 10 ms at HZ=100). Pauses are precise
 * (lib/ptimer.h), and an idle limit checks mono_ms() before it closes.
 */
#define COARSE_MS	12
#define OUT_HIWAT	(64 * 1024)	/* session.c: input waits over it */
#define MAX_CONNS	32
#define MAX_REC		16		/* inputs recorded in detail */
#define BIG		(4 * 1024 * 1024) /* more than any socket buffer */
#define PEER_ADDR	"127.0.0.1:4242"
/* Its per-address limits key, as net makes it (iptable_addr_key()). */
static const unsigned char peer_key[] = { 4, 127, 0, 0, 1 };

enum transport {
	TR_DIRECT,	/* socketpair, session_new_socket(): the daemon's path */
	TR_SOCKET,	/* socketpair, the bufferevent's own write path */
	TR_PAIR,	/* bufferevent_pair: no socket at all */
	TR_FILTER,	/* a pass-through filter over a socket (as TLS) */
	TR_COUNT
};

static const char *const tr_name[TR_COUNT] = { "socket+direct", "socket",
    "pair", "filter" };

struct tenv;

/* The client's end of one session. */
struct peer {
	struct tenv		*env;
	enum transport		 tr;
	struct bufferevent	*bev;		/* NULL once closed by the test */
	struct bufferevent	*srv;		/* the session's (freed with it) */
	struct bufferevent	*under;		/* TR_FILTER: srv's socket */
	int			 srv_fd;	/* sockets: the session's end */
	struct evbuffer		*rx;		/* every octet received */
	size_t			 slow;		/* > 0: take this much a turn */
	bool			 reading;	/* the test has it read */
	bool			 eof, error;
	struct session		*s;		/* valid while the session lives */
	struct fconn		*fc;
};

/* The fake protocol's state for one session; kept after gone(). */
struct fconn {
	struct tenv	*env;
	struct peer	*peer;
	uint64_t	 id;
	unsigned	 inputs, overlongs, gones;
	struct evbuffer	*events;	/* "L<line>\n" a line, "O\n" an overlong */
	struct {
		size_t		out_len;	/* session_output_len() */
		unsigned	cont_frees;
		bool		in_cont;
	}		 at[MAX_REC];	/* when input i was delivered */
	char		 reason[32];	/* s->reason at gone() */
	bool		 closing_at_gone;
	uint64_t	 start_ms, touch_ms, gone_ms;

	/* the continuation (BIG, BIGCLOSE) */
	unsigned	 cont_runs, cont_frees;
	bool		 cont_active, cont_free_closing;

	/* PAUSE */
	uint64_t	 pause_at_ms, paused_ms;
	unsigned	 pause_inputs;

	/* DROP: what the session still answers right after session_close() */
	size_t		 count_after_close;
	unsigned	 gones_after_close;
	bool		 closing_after_close, ident_after_close;
	size_t		 out_before_close, out_after_close;
};

struct tenv {
	struct event_base	*base;
	struct session_set	*set;
	struct event		*tick, *alarm;	/* WAIT_FOR()'s, wait_ms()'s */
	uint64_t		 deadline_at;	/* WAIT_FOR()'s, mono_ms() */
	bool			 deadline_hit, alarm_hit;
	struct fconn		*conns[MAX_CONNS];
	size_t			 n_conns;
	struct peer		*peers[MAX_CONNS];
	size_t			 n_peers;
	struct peer		*starting;	/* whose session_new() runs */
	unsigned		 stray;		/* calls after gone() */

	/* What start() and gone() do. */
	const char		*greeting;
	uint64_t		 deadline_ms;	/* "login-timeout" */
	uint64_t		 idle_ms;
	const struct session_summary *summary;
};

static struct tenv	*cur;		/* the test's, for teardown */

/* --------------------------------------------------------- the pattern */

/* The octet at offset i of every generated reply body. */
static char
pat(size_t i)
{
	static const char a[] = "abcdefghijklmnopqrstuvwxyz0123456789";

	return a[(i * 7 + i / 4093) % 36];
}

/* Append the pattern's octets [off, off + n) to out. */
static void
pat_add(struct evbuffer *out, size_t off, size_t n)
{
	char	buf[8192];
	size_t	k, i;

	while (n > 0) {
		k = n < sizeof(buf) ? n : sizeof(buf);
		for (i = 0; i < k; i++)
			buf[i] = pat(off + i);
		evbuffer_add(out, buf, k);
		off += k;
		n -= k;
	}
}

/* Is the n octets at p the pattern from off? */
static bool
pat_is(const char *p, size_t off, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pat(off + i))
			return false;
	return true;
}

/* ------------------------------------------------- the fake protocol */

/* A reply of total pattern octets, chunk per run(). */
struct fcont {
	struct session_cont	 base;		/* first: cast back */
	struct fconn		*fc;
	size_t			 total, sent, chunk;
	enum session_cont_status end;
};

static enum session_cont_status
fcont_run(struct session *s, struct session_cont *sc)
{
	struct fcont	*c = (struct fcont *)sc;
	size_t		 n = c->total - c->sent;

	if (n > c->chunk)
		n = c->chunk;
	pat_add(session_output(s), c->sent, n);
	c->sent += n;
	c->fc->cont_runs++;
	if (c->sent < c->total)
		return SESSION_CONT_MORE;
	if (c->end == SESSION_CONT_CLOSE)
		c->base.close_reason = "cont-close";
	return c->end;
}

static void
fcont_free(struct session *s, struct session_cont *sc)
{
	struct fcont *c = (struct fcont *)sc;

	c->fc->cont_frees++;
	c->fc->cont_active = false;
	c->fc->cont_free_closing = session_closing(s);
	free(c);
}

static void
fake_cont(struct session *s, struct fconn *fc, size_t total, size_t chunk,
    enum session_cont_status end)
{
	struct fcont *c = calloc(1, sizeof(*c));

	if (c == NULL || chunk == 0) {
		free(c);
		fc->env->stray++;
		return;
	}
	c->base.run = fcont_run;
	c->base.free = fcont_free;
	c->fc = fc;
	c->total = total;
	c->chunk = chunk;
	c->end = end;
	fc->cont_active = true;
	session_start_cont(s, &c->base);
}

/* n pattern octets with session_write(), as one reply would be. */
static void
fake_fill(struct session *s, size_t n)
{
	struct evbuffer	*b = evbuffer_new();
	char		 buf[16384];
	int		 k;

	pat_add(b, 0, n);
	while ((k = evbuffer_remove(b, buf, sizeof(buf))) > 0)
		session_write(s, buf, (size_t)k);
	evbuffer_free(b);
}

static int
fake_start(struct session *s, void *arg)
{
	struct tenv	*e = arg;
	struct fconn	*fc;

	if (e->n_conns == MAX_CONNS || (fc = calloc(1, sizeof(*fc))) == NULL)
		return -1;
	fc->env = e;
	fc->peer = e->starting;
	fc->id = session_id(s);
	fc->events = evbuffer_new();
	fc->start_ms = fc->touch_ms = mono_ms();
	e->conns[e->n_conns++] = fc;
	session_set_ctx(s, fc);
	if (e->greeting != NULL)
		session_reply(s, "%s", e->greeting);
	if (e->deadline_ms > 0)
		session_set_deadline(s, e->deadline_ms, "login-timeout");
	if (e->idle_ms > 0)
		session_set_idle(s, e->idle_ms);
	return 0;
}

/* s's state, or NULL (and counted) when the session should not call. */
static struct fconn *
fake_conn(struct session *s)
{
	struct fconn *fc = session_ctx(s);

	if (fc == NULL || fc->gones > 0) {
		cur->stray++;
		return NULL;
	}
	return fc;
}

static void
fake_paused(struct session *s)
{
	struct fconn *fc;

	if ((fc = fake_conn(s)) == NULL)
		return;
	fc->paused_ms = mono_ms();
	fc->pause_inputs = fc->inputs;
	session_reply(s, "paused");
	session_resume(s);
}

/* The session gives back the key net gave session_new(). */
static bool
peer_key_kept(const struct session *s)
{
	const unsigned char	*key;
	size_t			 len;

	key = session_peer_key(s, &len);
	return len == sizeof(peer_key) && memcmp(key, peer_key, len) == 0;
}

/* DROP: close without flushing, then use the session some more. */
static void
fake_drop(struct session *s, struct fconn *fc)
{
	fc->out_before_close = session_output_len(s);
	session_close(s, "drop", false);
	/* Freed later: all of this must still work (and be ASan-clean). */
	fc->count_after_close = session_set_count(fc->env->set);
	fc->gones_after_close = fc->gones;
	fc->closing_after_close = session_closing(s);
	fc->ident_after_close = session_id(s) == fc->id &&
	    strcmp(session_peer(s), PEER_ADDR) == 0 && session_ctx(s) == NULL &&
	    peer_key_kept(s);
	session_reply(s, "after-close");
	session_write(s, "x", 1);
	session_close(s, "drop-again", true);
	fc->out_after_close = session_output_len(s);
}

/*
 * The script, one command a line:
 *	BIG n chunk	a continuation of n pattern octets, chunk a run
 *	BIGCLOSE n chunk	the same, ending with SESSION_CONT_CLOSE
 *	FILL n		n pattern octets with session_write()
 *	FILLQUIT n	FILL, "bye", and session_close() with flush
 *	QUIT		"bye", session_close() with flush, then more replies
 *	DROP		session_close() without flush (fake_drop())
 *	HOLD		session_hold()
 *	PAUSE ms	session_pause(), then "paused"
 *	LOGIN ms	session_set_idle(ms), "ok ..."
 *	anything else	session_touch(), "ok <line>"
 */
static void
fake_input(struct session *s, char *line, size_t len)
{
	struct fconn	*fc;
	unsigned	 i;
	size_t		 n, chunk;

	if ((fc = fake_conn(s)) == NULL)
		return;
	i = fc->inputs++;
	if (i < MAX_REC) {
		fc->at[i].out_len = session_output_len(s);
		fc->at[i].cont_frees = fc->cont_frees;
		fc->at[i].in_cont = fc->cont_active;
	}
	evbuffer_add(fc->events, "L", 1);
	evbuffer_add(fc->events, line, len);
	evbuffer_add(fc->events, "\n", 1);

	if (sscanf(line, "BIGCLOSE %zu %zu", &n, &chunk) == 2)
		fake_cont(s, fc, n, chunk, SESSION_CONT_CLOSE);
	else if (sscanf(line, "BIG %zu %zu", &n, &chunk) == 2)
		fake_cont(s, fc, n, chunk, SESSION_CONT_DONE);
	else if (sscanf(line, "FILLQUIT %zu", &n) == 1) {
		fake_fill(s, n);
		session_reply(s, "bye");
		session_close(s, "quit", true);
	} else if (sscanf(line, "FILL %zu", &n) == 1)
		fake_fill(s, n);
	else if (strcmp(line, "QUIT") == 0) {
		session_reply(s, "bye");
		session_close(s, "quit", true);
		/* gone() was called: nothing more is said. */
		session_reply(s, "after-close");
		session_write(s, "x", 1);
	} else if (strcmp(line, "DROP") == 0)
		fake_drop(s, fc);
	else if (strcmp(line, "HOLD") == 0)
		session_hold(s);
	else if (sscanf(line, "PAUSE %zu", &n) == 1) {
		fc->pause_at_ms = mono_ms();
		session_pause(s, (uint64_t)n * 1000, fake_paused);
	} else if (sscanf(line, "LOGIN %zu", &n) == 1) {
		session_set_idle(s, n);
		session_reply(s, "ok %s", line);
	} else {
		session_touch(s);
		fc->touch_ms = mono_ms();
		session_reply(s, "ok %s", line);
	}
}

static void
fake_overlong(struct session *s)
{
	struct fconn *fc;

	if ((fc = fake_conn(s)) == NULL)
		return;
	fc->overlongs++;
	evbuffer_add(fc->events, "O\n", 2);
}

static void
fake_gone(struct session *s)
{
	struct fconn *fc;

	if ((fc = fake_conn(s)) == NULL)
		return;
	fc->gones++;
	fc->gone_ms = mono_ms();
	fc->closing_at_gone = session_closing(s);
	snprintf(fc->reason, sizeof(fc->reason), "%s", s->reason);
	if (fc->env->summary != NULL)
		session_set_summary(s, fc->env->summary);
	if (fc->peer != NULL)
		fc->peer->s = NULL;
}

static const struct session_proto fake_proto = {
	.start = fake_start,
	.input = fake_input,
	.overlong = fake_overlong,
	.gone = fake_gone,
	.bye = "-ERR bye",
};

/* ------------------------------------------------------ the harness */

static void
flag_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/*
 * WAIT_FOR()'s tick: the condition is looked at again at least every
 * TICK_MS, even if a callback that keeps being run never lets the turn
 * end (then this breaks it); past the deadline, the wait fails.
 */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tenv *e = arg;

	(void)fd;
	(void)what;
	if (mono_ms() >= e->deadline_at)
		e->deadline_hit = true;
	event_base_loopbreak(e->base);
}

static void
timer_arm(struct event *ev, bool *flag, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
	    .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	*flag = false;
	evtimer_add(ev, &tv);
}

static struct tenv *
env_new(size_t line_max, unsigned write_timeout)
{
	struct tenv		*e = calloc(1, sizeof(*e));

	assert_true(e != NULL);
	/* As main() has it: libevent's coarse clock, pauses on a timerfd. */
	e->base = event_base_new();
	assert_non_null(e->base);
	e->set = session_set_new(e->base, &(struct session_params){
	    .proto = &fake_proto, .arg = e, .line_max = line_max,
	    .write_timeout = write_timeout });
	assert_non_null(e->set);
	e->tick = event_new(e->base, -1, EV_PERSIST, tick_cb, e);
	e->alarm = evtimer_new(e->base, flag_cb, &e->alarm_hit);
	assert_true(e->tick != NULL && e->alarm != NULL);
	cur = e;
	return e;
}

static void
env_free(struct tenv *e)
{
	size_t i;

	if (e == NULL)
		return;
	session_set_free(e->set);
	for (i = 0; i < e->n_peers; i++) {
		if (e->peers[i]->bev != NULL)
			bufferevent_free(e->peers[i]->bev);
		evbuffer_free(e->peers[i]->rx);
		free(e->peers[i]);
	}
	for (i = 0; i < e->n_conns; i++) {
		evbuffer_free(e->conns[i]->events);
		free(e->conns[i]);
	}
	event_free(e->tick);
	event_free(e->alarm);
	event_base_free(e->base);
	free(e);
	if (cur == e)
		cur = NULL;
}

/* Every session has gone, gone() was called once each, nothing after. */
static void
env_check(struct tenv *e)
{
	size_t i;

	assert_int_equal(session_set_count(e->set), 0);
	for (i = 0; i < e->n_conns; i++)
		assert_int_equal(e->conns[i]->gones, 1);
	assert_int_equal(e->stray, 0);
}

/* Move what the peer has read to its transcript (a slow one: some). */
static void
peer_pump(struct peer *p)
{
	struct evbuffer	*in;
	size_t		 n;

	if (p->bev == NULL)
		return;
	in = bufferevent_get_input(p->bev);
	n = evbuffer_get_length(in);
	if (p->slow > 0 && n > p->slow)
		n = p->slow;
	if (n > 0)
		evbuffer_remove_buffer(in, p->rx, n);
	/* peer_read_cb() stopped a slow one: it has room again. */
	if (p->slow > 0 && p->reading && evbuffer_get_length(in) < p->slow &&
	    !(bufferevent_get_enabled(p->bev) & EV_READ))
		bufferevent_enable(p->bev, EV_READ);
}

static void
pump(struct tenv *e)
{
	size_t i;

	for (i = 0; i < e->n_peers; i++)
		peer_pump(e->peers[i]);
}

/*
 * Turn the loop until cond holds, the peers taking what they read
 * before each turn. Fails after WAIT_MS (a deadline timer ends the turn
 * that would otherwise block).
 */
#define WAIT_FOR(e, cond) do {						\
	wait_start(e);							\
	for (;;) {							\
		pump(e);						\
		if (cond)						\
			break;						\
		if ((e)->deadline_hit)					\
			fail_msg("%s:%d: no \"%s\" within %d ms",	\
			    __FILE__, __LINE__, #cond, WAIT_MS);	\
		event_base_loop((e)->base, EVLOOP_ONCE);		\
	}								\
	evtimer_del((e)->tick);						\
} while (0)

static void
wait_start(struct tenv *e)
{
	struct timeval tv = { .tv_usec = TICK_MS * 1000 };

	e->deadline_at = mono_ms() + WAIT_MS;
	e->deadline_hit = false;
	evtimer_add(e->tick, &tv);
}

/* Wait ms by a timer on the loop (nothing may happen meanwhile). */
static void
wait_ms(struct tenv *e, uint64_t ms)
{
	timer_arm(e->alarm, &e->alarm_hit, ms);
	WAIT_FOR(e, e->alarm_hit);
}

/*
 * Nothing is due for ms, and the loop sleeps meanwhile: a callback that
 * libevent ran again on every turn would spend the time on the CPU.
 */
static void
assert_quiet(struct tenv *e, uint64_t ms)
{
	struct timespec	a, b;
	uint64_t	cpu_ms;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	wait_ms(e, ms);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	cpu_ms = (uint64_t)((b.tv_sec - a.tv_sec) * 1000 +
	    (b.tv_nsec - a.tv_nsec) / 1000000);
	if (cpu_ms > ms / 4)
		fail_msg("the loop spent %llu ms on the CPU in %llu ms with "
		    "nothing to do", (unsigned long long)cpu_ms,
		    (unsigned long long)ms);
}

/* Run what is due now (deferred callbacks included), without blocking. */
static void
settle(struct tenv *e)
{
	int i;

	for (i = 0; i < 4; i++) {
		pump(e);
		event_base_loop(e->base, EVLOOP_NONBLOCK);
	}
	pump(e);
}

static void
peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;

	(void)bev;
	if (p->slow == 0)
		peer_pump(p);
	else if (evbuffer_get_length(bufferevent_get_input(p->bev)) >= p->slow)
		/*
		 * Full: stop reading until peer_pump() makes room. (At its
		 * high watermark libevent 2.1.11+ would run this callback
		 * again on every turn of the loop, issue #891.)
		 */
		bufferevent_disable(p->bev, EV_READ);
}

static void
peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		p->eof = true;
	if (what & BEV_EVENT_ERROR)
		p->error = true;
}

/* Pass-through, in records of at most 16 KiB, as TLS would. */
static enum bufferevent_filter_result
passthrough(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *ctx)
{
	size_t n = evbuffer_get_length(src);

	(void)mode;
	(void)ctx;
	if (n > 16384)
		n = 16384;
	if (limit >= 0 && n > (size_t)limit)
		n = (size_t)limit;
	if (n == 0)
		return BEV_NEED_MORE;
	if (evbuffer_remove_buffer(src, dst, n) != (int)n)
		return BEV_ERROR;
	return BEV_OK;
}

/*
 * A session on transport tr and its peer, which reads if reading (a
 * peer that does not leaves the session's output where it is).
 */
static struct peer *
peer_new(struct tenv *e, enum transport tr, bool reading)
{
	struct sockaddr_in	 sin = { .sin_family = AF_INET,
				    .sin_port = htons(4242) };
	struct bufferevent	*pair[2];
	struct peer		*p = calloc(1, sizeof(*p));
	int			 sv[2];

	assert_non_null(p);
	assert_true(e->n_peers < MAX_CONNS);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	p->env = e;
	p->tr = tr;
	p->srv_fd = -1;
	p->rx = evbuffer_new();
	if (tr == TR_PAIR) {
		assert_int_equal(bufferevent_pair_new(e->base,
		    BEV_OPT_CLOSE_ON_FREE, pair), 0);
		p->srv = pair[0];
		p->bev = pair[1];
	} else {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
		assert_int_equal(evutil_make_socket_nonblocking(sv[1]), 0);
		if (tr != TR_DIRECT)
			p->srv = bufferevent_socket_new(e->base, sv[0],
			    BEV_OPT_CLOSE_ON_FREE);
		p->bev = bufferevent_socket_new(e->base, sv[1],
		    BEV_OPT_CLOSE_ON_FREE);
		assert_true((p->srv != NULL || tr == TR_DIRECT) &&
		    p->bev != NULL);
		p->srv_fd = sv[0];
		if (tr == TR_FILTER) {
			p->under = p->srv;
			p->srv = bufferevent_filter_new(p->under, passthrough,
			    passthrough, BEV_OPT_CLOSE_ON_FREE, NULL, NULL);
			assert_non_null(p->srv);
		}
	}
	bufferevent_setcb(p->bev, peer_read_cb, NULL, peer_event_cb, p);
	bufferevent_enable(p->bev, EV_WRITE);
	p->reading = reading;
	if (reading)
		bufferevent_enable(p->bev, EV_READ);
	e->peers[e->n_peers++] = p;
	e->starting = p;
	p->s = tr == TR_DIRECT ? session_new_socket(e->set, p->srv_fd,
	    (struct sockaddr *)&sin, sizeof(sin), peer_key, sizeof(peer_key)) :
	    session_new(e->set, p->srv, (struct sockaddr *)&sin, sizeof(sin),
	    peer_key, sizeof(peer_key), 0);
	e->starting = NULL;
	assert_non_null(p->s);
	assert_true(e->n_conns > 0);
	p->fc = e->conns[e->n_conns - 1];
	assert_ptr_equal(p->fc->peer, p);
	return p;
}

static void
peer_reading(struct peer *p, bool on)
{
	p->reading = on;
	if (on)
		bufferevent_enable(p->bev, EV_READ);
	else
		bufferevent_disable(p->bev, EV_READ);
}

/* Read at most n octets a turn. */
static void
peer_slow(struct peer *p, size_t n)
{
	p->slow = n;
	bufferevent_setwatermark(p->bev, EV_READ, 0, n);
}

static void
peer_send_buf(struct peer *p, const void *buf, size_t len)
{
	assert_int_equal(bufferevent_write(p->bev, buf, len), 0);
}

static void
peer_send(struct peer *p, const char *text)
{
	peer_send_buf(p, text, strlen(text));
}

/* Everything sent has reached the session's input buffer. */
static bool
peer_flushed(struct peer *p)
{
	int n = 0;

	if (evbuffer_get_length(bufferevent_get_output(p->bev)) > 0)
		return false;
	if (p->tr == TR_PAIR || p->s == NULL)
		return true;
	if (p->under != NULL &&
	    evbuffer_get_length(bufferevent_get_input(p->under)) > 0)
		return false;		/* not through the filter yet */
	return ioctl(p->srv_fd, FIONREAD, &n) == 0 && n == 0;
}

/* The session's end is gone: EOF on a socket, the partner on a pair. */
static bool
peer_closed(struct peer *p)
{
	if (p->bev == NULL || p->eof || p->error)
		return true;
	return p->tr == TR_PAIR && bufferevent_pair_get_partner(p->bev) ==
	    NULL;
}

/* Half-close: send what is queued, then EOF. */
static void
peer_shutdown(struct tenv *e, struct peer *p)
{
	WAIT_FOR(e, evbuffer_get_length(bufferevent_get_output(p->bev)) == 0);
	if (p->tr == TR_PAIR)
		assert_int_equal(bufferevent_flush(p->bev, EV_WRITE,
		    BEV_FINISHED), 0);
	else
		assert_int_equal(shutdown(bufferevent_getfd(p->bev), SHUT_WR),
		    0);
}

/*
 * The session has output that its transport will not take until the
 * peer reads: a pair moves nothing to a peer that does not read; a
 * socket that polls not writable is not written to.
 */
static bool
stalled(struct peer *p)
{
	struct pollfd pfd = { .fd = p->srv_fd, .events = POLLOUT };

	if (p->s == NULL || session_output_len(p->s) == 0)
		return false;
	if (p->tr == TR_PAIR)
		return true;
	return poll(&pfd, 1, 0) == 0;
}

/* The peer's transcript as a string (it may hold NULs; len tells). */
static const char *
rx_str(struct peer *p, size_t *len_r)
{
	if ((*len_r = evbuffer_get_length(p->rx)) == 0)
		return "";
	return (const char *)evbuffer_pullup(p->rx, -1);
}

static void
assert_rx(struct peer *p, const char *want)
{
	size_t		 len;
	const char	*got = rx_str(p, &len);

	if (len != strlen(want) || memcmp(got, want, len) != 0)
		fail_msg("%s: got %zu octets \"%.*s\", want \"%s\"",
		    tr_name[p->tr], len, (int)(len > 200 ? 200 : len), got,
		    want);
}

/* The transcript is: head, n pattern octets, tail. */
static void
assert_rx_pat(struct peer *p, const char *head, size_t n, const char *tail)
{
	size_t		 len, hl = strlen(head), tl = strlen(tail);
	const char	*got = rx_str(p, &len);

	if (len != hl + n + tl)
		fail_msg("%s: got %zu octets, want %zu", tr_name[p->tr], len,
		    hl + n + tl);
	if (len == 0)
		return;
	assert_true(memcmp(got, head, hl) == 0);
	assert_true(pat_is(got + hl, 0, n));
	assert_true(memcmp(got + hl + n, tail, tl) == 0);
}

static void
assert_events_len(struct fconn *fc, const char *want, size_t want_len)
{
	size_t		 len = evbuffer_get_length(fc->events);
	const char	*got = (const char *)evbuffer_pullup(fc->events, -1);

	if (len != want_len || memcmp(got, want, len) != 0)
		fail_msg("%s: events \"%.*s\", want \"%.*s\"",
		    tr_name[fc->peer->tr], (int)len, got != NULL ? got : "",
		    (int)want_len, want);
}

static void
assert_events(struct fconn *fc, const char *want)
{
	assert_events_len(fc, want, strlen(want));
}

/* Close a session that is still up the ordinary way, and wait. */
static void
quit(struct tenv *e, struct peer *p)
{
	peer_reading(p, true);
	peer_send(p, "QUIT\r\n");
	WAIT_FOR(e, p->fc->gones == 1 && peer_closed(p));
	assert_string_equal(p->fc->reason, "quit");
}

/* ------------------------------------------------------ log capture */

static struct {
	bool	on;
	int	saved;
	int	fd;
}	cap;

/* Send stderr (the log) to a temporary file. */
static void
capture_start(void)
{
	char path[] = "/tmp/evpop3d-test-session-XXXXXX";

	assert_false(cap.on);
	cap.fd = mkstemp(path);
	assert_true(cap.fd != -1);
	unlink(path);
	cap.saved = dup(STDERR_FILENO);
	assert_true(cap.saved != -1);
	assert_true(dup2(cap.fd, STDERR_FILENO) != -1);
	cap.on = true;
}

/* Back to stderr, which gets a copy; the lines logged meanwhile. */
static char *
capture_end(void)
{
	char	*buf;
	off_t	 n;

	if (!cap.on)
		return NULL;
	cap.on = false;
	dup2(cap.saved, STDERR_FILENO);
	close(cap.saved);
	n = lseek(cap.fd, 0, SEEK_END);
	buf = calloc(1, (size_t)n + 1);
	if (buf != NULL && n > 0 && pread(cap.fd, buf, (size_t)n, 0) == n)
		(void)!write(STDERR_FILENO, buf, (size_t)n);
	close(cap.fd);
	return buf;
}

/* The disconnect line of session id in log. */
static const char *
disconnect_line(const char *log, uint64_t id, char *out, size_t outlen)
{
	char		 key[64];
	const char	*p, *eol;

	snprintf(key, sizeof(key), "sess=%016llx event=disconnect ",
	    (unsigned long long)id);
	if ((p = strstr(log, key)) == NULL)
		fail_msg("no \"%s\" in the log", key);
	eol = strchr(p, '\n');
	snprintf(out, outlen, "%.*s", (int)(eol != NULL ? eol - p :
	    (ptrdiff_t)strlen(p)), p);
	return out;
}

static int
teardown(void **state)
{
	(void)state;
	free(capture_end());
	env_free(cur);
	return 0;
}

/* ------------------------------------------------------------ tests */

static uint32_t
rng_next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/*
 * Lines end in CRLF or a bare LF, arrive split at any point, may be
 * empty or hold a CR or a NUL; a line over line_max is reported once
 * and the next one is delivered. A last line without its end is not.
 */
static void
test_lines(void **state)
{
	struct evbuffer	*stream = evbuffer_new(), *want = evbuffer_new();
	char		 l64[64], l65[65], l200[200];
	const char	*data;
	size_t		 len, off, n;
	uint32_t	 rng;
	int		 tr, iter;

	(void)state;
	memset(l64, 'M', sizeof(l64));
	memset(l65, 'N', sizeof(l65));
	memset(l200, 'L', sizeof(l200));
#define LINE(wire, wlen, ev, elen) do {					\
	evbuffer_add(stream, (wire), (wlen));				\
	evbuffer_add(want, (ev), (elen));				\
} while (0)
	LINE("USER a\r\n", 8, "LUSER a\n", 8);
	LINE("bare\n", 5, "Lbare\n", 6);
	LINE("\r\n", 2, "L\n", 2);
	LINE("\n", 1, "L\n", 2);
	LINE("x\ry\r\n", 5, "Lx\ry\n", 5);
	LINE("a\0b\r\n", 5, "La\0b\n", 5);
	LINE(l200, sizeof(l200), "O\n", 2);
	LINE("\r\n", 2, "", 0);
	LINE("after\r\n", 7, "Lafter\n", 7);
	evbuffer_add(stream, l64, sizeof(l64));		/* exactly line_max */
	evbuffer_add(stream, "\r\n", 2);
	evbuffer_add(want, "L", 1);
	evbuffer_add(want, l64, sizeof(l64));
	evbuffer_add(want, "\n", 1);
	LINE(l65, sizeof(l65), "O\n", 2);			/* one over */
	LINE("\n", 1, "", 0);
	evbuffer_add(stream, l64, sizeof(l64));		/* at the limit, LF */
	evbuffer_add(stream, "\n", 1);
	evbuffer_add(want, "L", 1);
	evbuffer_add(want, l64, sizeof(l64));
	evbuffer_add(want, "\n", 1);
	LINE(l200, sizeof(l200), "O\n", 2);
	LINE(l200, sizeof(l200), "", 0);		/* still the same line */
	LINE("\n", 1, "", 0);
	LINE("last\n", 5, "Llast\n", 6);
	LINE("tail without its end", 20, "", 0);
#undef LINE
	data = (const char *)evbuffer_pullup(stream, -1);
	len = evbuffer_get_length(stream);

	for (tr = 0; tr < TR_COUNT; tr++) {
		for (iter = 0; iter < 6; iter++) {
			struct tenv	*e = env_new(64, 60);
			struct peer	*p = peer_new(e, tr, true);

			rng = 2463534242u + (uint32_t)(tr * 100 + iter);
			/* Byte by byte, then random splits. */
			for (off = 0; off < len; off += n) {
				n = iter == 0 ? 1 : 1 + rng_next(&rng) %
				    (uint32_t)(iter * 40);
				if (n > len - off)
					n = len - off;
				peer_send_buf(p, data + off, n);
				WAIT_FOR(e, peer_flushed(p));
				settle(e);
			}
			assert_int_equal(p->fc->gones, 0);
			peer_shutdown(e, p);
			WAIT_FOR(e, p->fc->gones == 1 &&
			    session_set_count(e->set) == 0);
			assert_events_len(p->fc, (const char *)
			    evbuffer_pullup(want, -1),
			    evbuffer_get_length(want));
			assert_int_equal(p->fc->overlongs, 3);
			assert_string_equal(p->fc->reason, "disconnected");
			env_check(e);
			env_free(e);
		}
	}
	evbuffer_free(stream);
	evbuffer_free(want);
}

/*
 * RFC 2449 section 6.6: while a continuation runs, the lines pipelined
 * after its command wait, however long the peer does not read; they
 * are taken in order once it is done.
 */
static void
test_backpressure_cont(void **state)
{
	static const char	 lines[] = "A\r\nB\r\nC\r\n";
	int			 tr;
	unsigned		 i;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, false);

		peer_send(p, "BIG 4194304 32768\r\n");
		peer_send(p, lines);
		WAIT_FOR(e, p->fc->cont_runs > 0 && peer_flushed(p) &&
		    stalled(p));
		settle(e);
		assert_true(stalled(p));
		assert_int_equal(p->fc->inputs, 1);
		assert_int_equal(p->fc->cont_frees, 0);
		assert_true(p->fc->cont_runs < BIG / 32768);
		assert_int_equal(session_input_len(p->s), strlen(lines));

		peer_reading(p, true);
		WAIT_FOR(e, p->fc->inputs == 4 && evbuffer_get_length(p->rx) ==
		    BIG + strlen("ok A\r\nok B\r\nok C\r\n"));
		assert_rx_pat(p, "", BIG, "ok A\r\nok B\r\nok C\r\n");
		assert_events(p->fc, "LBIG 4194304 32768\nLA\nLB\nLC\n");
		for (i = 1; i < 4; i++) {
			assert_int_equal(p->fc->at[i].cont_frees, 1);
			assert_false(p->fc->at[i].in_cont);
		}
		assert_int_equal(p->fc->cont_runs, BIG / 32768);
		assert_int_equal(p->fc->cont_frees, 1);
		assert_false(p->fc->cont_free_closing);
		quit(e, p);
		env_check(e);
		env_free(e);
	}
}

/* Lines wait while more than OUT_HIWAT octets of output are queued. */
static void
test_backpressure_hiwat(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, false);

		peer_send(p, "FILL 4194304\r\nA\r\nB\r\n");
		WAIT_FOR(e, p->fc->inputs > 0 && peer_flushed(p) &&
		    stalled(p));
		settle(e);
		assert_int_equal(p->fc->inputs, 1);
		assert_true(session_output_len(p->s) >= OUT_HIWAT);

		peer_reading(p, true);
		WAIT_FOR(e, p->fc->inputs == 3 && evbuffer_get_length(p->rx) ==
		    BIG + strlen("ok A\r\nok B\r\n"));
		assert_rx_pat(p, "", BIG, "ok A\r\nok B\r\n");
		assert_events(p->fc, "LFILL 4194304\nLA\nLB\n");
		assert_true(p->fc->at[1].out_len < OUT_HIWAT);
		assert_true(p->fc->at[2].out_len < OUT_HIWAT);
		quit(e, p);
		env_check(e);
		env_free(e);
	}
}

/*
 * More pipelined input than the session buffers (IN_HIWAT, 16 KiB)
 * while a continuation streams to a peer that does not read: the
 * session stops reading, without spinning, and answers every line, in
 * order, once the peer reads.
 */
static void
test_pipelined_over_input_limit(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, false);
		struct evbuffer	*lines = evbuffer_new();
		struct evbuffer	*want = evbuffer_new();
		int		 i;

		for (i = 0; i < 3000; i++) {
			evbuffer_add_printf(lines, "N%04d\r\n", i);
			evbuffer_add_printf(want, "ok N%04d\r\n", i);
		}
		peer_send(p, "BIG 4194304 32768\r\n");
		WAIT_FOR(e, p->fc->cont_runs > 0 && stalled(p));
		peer_send_buf(p, evbuffer_pullup(lines, -1),
		    evbuffer_get_length(lines));
		WAIT_FOR(e, session_input_len(p->s) >= 16 * 1024);
		assert_quiet(e, 600);
		assert_int_equal(p->fc->inputs, 1);

		peer_reading(p, true);
		WAIT_FOR(e, p->fc->inputs == 3001 &&
		    evbuffer_get_length(p->rx) == BIG +
		    evbuffer_get_length(want));
		assert_true(pat_is((const char *)evbuffer_pullup(p->rx, -1), 0,
		    BIG));
		assert_memory_equal((const char *)evbuffer_pullup(p->rx, -1) +
		    BIG, evbuffer_pullup(want, -1), evbuffer_get_length(want));
		evbuffer_free(lines);
		evbuffer_free(want);
		quit(e, p);
		env_check(e);
		env_free(e);
	}
}

/*
 * A continuation that ends with SESSION_CONT_CLOSE: its output is sent,
 * then the session closes with its reason; what was pipelined after
 * it is never taken.
 */
static void
test_cont_close(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, true);

		peer_send(p, "BIGCLOSE 300000 20000\r\nX\r\n");
		WAIT_FOR(e, peer_closed(p) && session_set_count(e->set) == 0);
		assert_rx_pat(p, "", 300000, "");
		assert_int_equal(p->fc->inputs, 1);
		assert_int_equal(p->fc->cont_frees, 1);
		assert_false(p->fc->cont_free_closing);	/* it was done */
		assert_string_equal(p->fc->reason, "cont-close");
		env_check(e);
		env_free(e);
	}
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_resume(arg);
}

/* Resume s from an event, as a worker's done() or a timer would. */
static void
resume_later(struct tenv *e, struct session *s)
{
	assert_int_equal(event_base_once(e->base, -1, EV_TIMEOUT, resume_cb,
	    s, NULL), 0);
}

/*
 * session_hold(): lines wait, however many come, until session_resume()
 * takes them in order. A peer's EOF while held closes the session only
 * after those lines are answered.
 */
static void
test_hold_resume(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, true);

		peer_send(p, "HOLD\r\nA\r\nB\r\n");
		WAIT_FOR(e, p->fc->inputs == 1 && peer_flushed(p));
		settle(e);
		peer_send(p, "C\r\n");
		WAIT_FOR(e, peer_flushed(p));
		settle(e);
		assert_int_equal(p->fc->inputs, 1);
		assert_int_equal(evbuffer_get_length(p->rx), 0);

		resume_later(e, p->s);
		WAIT_FOR(e, p->fc->inputs == 4 && evbuffer_get_length(p->rx) ==
		    strlen("ok A\r\nok B\r\nok C\r\n"));
		assert_rx(p, "ok A\r\nok B\r\nok C\r\n");
		assert_events(p->fc, "LHOLD\nLA\nLB\nLC\n");

		/* Held again; D waits; then EOF. */
		peer_send(p, "HOLD\r\nD\r\n");
		WAIT_FOR(e, p->fc->inputs == 5 && peer_flushed(p));
		peer_shutdown(e, p);
		WAIT_FOR(e, p->s != NULL && p->s->eof);
		settle(e);
		assert_int_equal(p->fc->inputs, 5);
		assert_int_equal(p->fc->gones, 0);
		resume_later(e, p->s);
		WAIT_FOR(e, peer_closed(p) && session_set_count(e->set) == 0);
		assert_rx(p, "ok A\r\nok B\r\nok C\r\nok D\r\n");
		assert_string_equal(p->fc->reason, "disconnected");
		env_check(e);
		env_free(e);
	}
}

/* session_pause(): fn runs after the delay; input waits until then. */
static void
test_pause(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, true);

		peer_send(p, "PAUSE 200\r\nA\r\n");
		WAIT_FOR(e, p->fc->paused_ms != 0);
		assert_true(p->fc->paused_ms - p->fc->pause_at_ms >=
		    200 - SLACK_MS);
		assert_int_equal(p->fc->pause_inputs, 1);	/* A waited */
		WAIT_FOR(e, p->fc->inputs == 2 && evbuffer_get_length(p->rx) ==
		    strlen("paused\r\nok A\r\n"));
		assert_rx(p, "paused\r\nok A\r\n");
		quit(e, p);
		env_check(e);
		env_free(e);
	}
}

/*
 * session_close() with flush from input(): the queued output (more than
 * a socket buffer) is delivered, then EOF; replies after it are dropped,
 * and pipelined lines are never taken.
 */
static void
test_close_flush(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, true);

		peer_send(p, "FILL 1000000\r\nQUIT\r\nMORE\r\n");
		WAIT_FOR(e, peer_closed(p) && session_set_count(e->set) == 0);
		assert_rx_pat(p, "", 1000000, "bye\r\n");
		assert_int_equal(p->fc->inputs, 2);
		assert_string_equal(p->fc->reason, "quit");
		assert_true(p->fc->closing_at_gone);
		env_check(e);
		env_free(e);
	}
}

/*
 * session_close() without flush from input(): gone() at once, the
 * session usable (and counted) until the callback returns, freed from
 * a deferred event; the queued output need not be sent.
 */
static void
test_close_deferred_free(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, true);
		size_t		 len;
		const char	*rx;

		peer_send(p, "FILL 30000\r\nDROP\r\nX\r\n");
		WAIT_FOR(e, p->fc->gones == 1);
		assert_int_equal(p->fc->count_after_close, 1);
		assert_int_equal(p->fc->gones_after_close, 1);
		assert_true(p->fc->closing_after_close);
		assert_true(p->fc->ident_after_close);
		assert_int_equal(p->fc->out_after_close,
		    p->fc->out_before_close);
		WAIT_FOR(e, peer_closed(p) && session_set_count(e->set) == 0);
		assert_int_equal(p->fc->inputs, 2);
		assert_string_equal(p->fc->reason, "drop");
		rx = rx_str(p, &len);
		assert_true(len <= 30000 && pat_is(rx, 0, len));
		env_check(e);
		env_free(e);
	}
}

/*
 * The peer sends commands and its EOF at once, and reads slowly: every
 * line before the EOF is answered, a continuation included, then the
 * session closes ("disconnected").
 */
static void
test_eof_pipelined(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p = peer_new(e, tr, true);

		peer_slow(p, 4096);
		peer_send(p, "A\r\nB\r\nBIG 300000 20000\r\nC\r\n");
		peer_shutdown(e, p);
		WAIT_FOR(e, peer_closed(p) && session_set_count(e->set) == 0);
		WAIT_FOR(e, evbuffer_get_length(bufferevent_get_input(p->bev))
		    == 0);
		assert_rx_pat(p, "ok A\r\nok B\r\n", 300000, "ok C\r\n");
		assert_int_equal(p->fc->inputs, 4);
		assert_int_equal(p->fc->cont_frees, 1);
		assert_string_equal(p->fc->reason, "disconnected");
		env_check(e);
		env_free(e);
	}
}

/*
 * A peer that closes its socket while a reply is streaming to it: the
 * session ends at once, the continuation freed once.
 */
static void
test_peer_close_pending(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e;
		struct peer	*p;

		if (tr == TR_PAIR)
			continue;	/* a pair has no close */
		e = env_new(255, 60);
		p = peer_new(e, tr, false);

		peer_send(p, "BIG 4194304 32768\r\n");
		WAIT_FOR(e, p->fc->cont_runs > 0 && stalled(p));
		bufferevent_free(p->bev);
		p->bev = NULL;
		WAIT_FOR(e, session_set_count(e->set) == 0);
		assert_int_equal(p->fc->cont_frees, 1);
		assert_true(p->fc->cont_free_closing);
		assert_string_equal(p->fc->reason, "connection-error");
		env_check(e);
		env_free(e);
	}
}

/*
 * A peer that never reads: write_timeout (1 s) without progress closes
 * the session ("write-timeout"), whether the output was queued by
 * session_write(), by a continuation, or before a flushing close.
 */
static void
test_write_timeout(void **state)
{
	static const char *const cmds[] = { "FILL 4194304\r\n",
	    "BIG 4194304 32768\r\n", "FILLQUIT 4194304\r\n" };
	char	*log, line[512];
	int	 tr;
	size_t	 k;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		for (k = 0; k < 3; k++) {
			struct tenv	*e = env_new(255, 1);
			struct peer	*p = peer_new(e, tr, false);
			uint64_t	 t0 = mono_ms();

			capture_start();
			peer_send(p, cmds[k]);
			WAIT_FOR(e, p->fc->gones == 1 &&
			    session_set_count(e->set) == 0);
			log = capture_end();
			assert_true(p->fc->gone_ms - t0 >= 900 || k == 2);
			assert_true(mono_ms() - t0 >= 900);
			assert_string_equal(p->fc->reason, k == 2 ? "quit" :
			    "write-timeout");
			assert_non_null(strstr(disconnect_line(log, p->fc->id,
			    line, sizeof(line)), " reason=write-timeout "));
			free(log);
			if (k == 1) {
				assert_int_equal(p->fc->cont_frees, 1);
				assert_true(p->fc->cont_free_closing);
			}
			env_check(e);
			env_free(e);
		}
	}
}

/* session_set_deadline(): closed with its reason, whatever it does. */
static void
test_deadline(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p;

		e->deadline_ms = 500;
		p = peer_new(e, tr, true);
		peer_send(p, "NOOP\r\n");
		WAIT_FOR(e, p->fc->gones == 1 && peer_closed(p));
		assert_string_equal(p->fc->reason, "login-timeout");
		assert_true(p->fc->gone_ms - p->fc->start_ms >=
		    500 - COARSE_MS);
		assert_rx(p, "ok NOOP\r\n");
		env_check(e);
		env_free(e);
	}
}

/* An idle limit replaces the deadline (a login), and then applies. */
static void
test_deadline_then_idle(void **state)
{
	struct tenv	*e = env_new(255, 60);
	struct peer	*p;

	(void)state;
	e->deadline_ms = 500;
	p = peer_new(e, TR_DIRECT, true);
	peer_send(p, "LOGIN 2000\r\n");
	WAIT_FOR(e, p->fc->inputs == 1);
	wait_ms(e, 1000);
	assert_int_equal(p->fc->gones, 0);
	WAIT_FOR(e, p->fc->gones == 1 && peer_closed(p));
	assert_string_equal(p->fc->reason, "idle-timeout");
	assert_true(p->fc->gone_ms - p->fc->touch_ms >= 2000 - SLACK_MS);
	env_check(e);
	env_free(e);
}

/*
 * The set's timer heap: sessions armed in a shuffled order close each at
 * its own idle limit, in the order of the limits, and one that leaves
 * early takes its timer out of the middle of the heap.
 */
static void
test_timer_heap(void **state)
{
	enum { N = 20 };
	struct tenv	*e = env_new(255, 60);
	struct peer	*p[N];
	unsigned	 ms[N];
	char		 line[32];
	int		 i, j, done;

	(void)state;
	for (i = 0; i < N; i++) {
		ms[i] = 300 + 100 * (unsigned)((i * 7) % N);	/* a shuffle */
		p[i] = peer_new(e, TR_DIRECT, true);
		snprintf(line, sizeof(line), "LOGIN %u\r\n", ms[i]);
		peer_send(p[i], line);
	}
	for (i = 0, done = 0; i < N; i++)
		WAIT_FOR(e, p[i]->fc->inputs == 1);
	peer_shutdown(e, p[5]);		/* ms 1,800: mid-heap */
	peer_shutdown(e, p[12]);	/* ms 700 */
	for (i = 0; i < N; i++)
		WAIT_FOR(e, p[i]->fc->gones == 1 && peer_closed(p[i]));
	for (i = 0; i < N; i++) {
		if (i == 5 || i == 12) {
			assert_string_equal(p[i]->fc->reason, "disconnected");
			continue;
		}
		assert_string_equal(p[i]->fc->reason, "idle-timeout");
		assert_true(p[i]->fc->gone_ms - p[i]->fc->start_ms >=
		    ms[i] - SLACK_MS);
		for (j = 0; j < N; j++)
			if (j != 5 && j != 12 && ms[i] < ms[j])
				assert_true(p[i]->fc->gone_ms <=
				    p[j]->fc->gone_ms);
		done++;
	}
	assert_int_equal(done, N - 2);
	env_check(e);
	env_free(e);
}

struct ticker {
	struct event	*ev;
	struct peer	*p;
	int		 left;
	bool		 died;		/* the session went meanwhile */
};

static void
ticker_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ticker *t = arg;

	(void)fd;
	(void)what;
	if (t->p->fc->gones > 0)
		t->died = true;
	if (t->left-- > 0)
		peer_send(t->p, "NOOP\r\n");
	else
		event_del(t->ev);
}

/* session_set_idle(): commands keep a session; silence closes it. */
static void
test_idle(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p;
		struct ticker	 t = { .left = 6 };
		struct timeval	 tv = { .tv_usec = 200000 };

		e->idle_ms = 1000;
		p = peer_new(e, tr, true);
		t.p = p;
		t.ev = event_new(e->base, -1, EV_PERSIST, ticker_cb, &t);
		evtimer_add(t.ev, &tv);
		WAIT_FOR(e, t.left < 0 && p->fc->inputs == 6);
		assert_false(t.died);
		assert_int_equal(p->fc->gones, 0);
		WAIT_FOR(e, p->fc->gones == 1 && peer_closed(p));
		assert_false(t.died);
		assert_string_equal(p->fc->reason, "idle-timeout");
		assert_true(p->fc->gone_ms - p->fc->touch_ms >=
		    1000 - SLACK_MS);
		/* Closed without a word (RFC 1939 section 3). */
		assert_int_equal(evbuffer_get_length(p->rx),
		    6 * strlen("ok NOOP\r\n"));
		event_free(t.ev);
		env_check(e);
		env_free(e);
	}
}

/* A continuation still streaming to a slow peer is activity. */
static void
test_idle_cont_activity(void **state)
{
	int tr;

	(void)state;
	for (tr = 0; tr < TR_COUNT; tr++) {
		struct tenv	*e = env_new(255, 60);
		struct peer	*p;

		e->idle_ms = 800;
		p = peer_new(e, tr, false);
		peer_send(p, "BIG 4194304 32768\r\n");
		WAIT_FOR(e, p->fc->cont_runs > 0 && stalled(p));
		wait_ms(e, 2000);
		assert_int_equal(p->fc->gones, 0);
		peer_reading(p, true);
		WAIT_FOR(e, p->fc->cont_frees == 1);
		WAIT_FOR(e, p->fc->gones == 1 && peer_closed(p));
		assert_string_equal(p->fc->reason, "idle-timeout");
		assert_rx_pat(p, "", BIG, "");
		env_check(e);
		env_free(e);
	}
}

static void
break_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tenv *e = arg;

	(void)fd;
	(void)what;
	e->alarm_hit = true;
	event_base_loopbreak(e->base);
}

/*
 * Run the loop as main() does after session_set_drain(); true if it
 * ended by itself (the safety timer did not have to break it).
 */
static bool
dispatch_drain(struct tenv *e)
{
	struct event	*safety = evtimer_new(e->base, break_cb, e);
	struct timeval	 tv = { .tv_sec = WAIT_MS / 1000 };

	e->alarm_hit = false;
	evtimer_add(safety, &tv);
	event_base_dispatch(e->base);
	event_free(safety);
	return !e->alarm_hit;
}

/*
 * session_set_drain(): an idle session is told proto->bye and closed at
 * once; a busy one finishes what it does (a continuation sends its whole
 * reply, a hold waits for its resume), and its next command gets the bye
 * instead of an answer. The loop exits once the last session is gone.
 */
static void
test_drain(void **state)
{
	struct tenv	*e = env_new(255, 60);
	struct peer	*idle, *idle_pair, *streaming, *held;
	size_t		 len;
	const char	*rx;

	(void)state;
	idle = peer_new(e, TR_DIRECT, true);
	idle_pair = peer_new(e, TR_PAIR, true);
	streaming = peer_new(e, TR_SOCKET, false);
	held = peer_new(e, TR_PAIR, true);
	peer_send(streaming, "BIG 4194304 32768\r\nNEXT\r\n");
	peer_send(held, "HOLD\r\nAFTER\r\n");
	WAIT_FOR(e, streaming->fc->cont_runs > 0 && stalled(streaming) &&
	    held->fc->inputs == 1);

	session_set_drain(e->set, 10);
	WAIT_FOR(e, peer_closed(idle) && peer_closed(idle_pair));
	assert_rx(idle, "-ERR bye\r\n");
	assert_rx(idle_pair, "-ERR bye\r\n");
	assert_int_equal(session_set_count(e->set), 2);

	peer_reading(streaming, true);
	resume_later(e, held->s);
	assert_true(dispatch_drain(e));
	assert_true(event_base_got_exit(e->base));
	assert_int_equal(session_set_count(e->set), 0);
	WAIT_FOR(e, peer_closed(streaming) && peer_closed(held));
	rx = rx_str(streaming, &len);
	assert_int_equal(len, BIG + strlen("-ERR bye\r\n"));
	assert_true(pat_is(rx, 0, BIG));
	assert_memory_equal(rx + BIG, "-ERR bye\r\n", strlen("-ERR bye\r\n"));
	assert_int_equal(streaming->fc->inputs, 1);	/* NEXT: the bye */
	assert_rx(held, "-ERR bye\r\n");
	assert_int_equal(held->fc->inputs, 1);		/* AFTER: the bye */
	assert_string_equal(idle->fc->reason, "shutdown");
	assert_string_equal(streaming->fc->reason, "shutdown");
	assert_string_equal(held->fc->reason, "shutdown");
	env_check(e);
	env_free(e);
}

/*
 * The drain's grace: a session whose bye cannot be sent (its peer does
 * not read) is destroyed at the deadline, which breaks the loop.
 */
static void
test_drain_grace(void **state)
{
	struct tenv	*e = env_new(255, 60);
	struct peer	*idle, *stuck;
	uint64_t	 t0;

	(void)state;
	idle = peer_new(e, TR_PAIR, true);
	stuck = peer_new(e, TR_DIRECT, false);
	peer_send(stuck, "FILL 4194304\r\n");
	WAIT_FOR(e, stuck->fc->inputs == 1 && stalled(stuck));

	t0 = mono_ms();
	session_set_drain(e->set, 1);
	assert_true(dispatch_drain(e));
	assert_true(event_base_got_break(e->base));
	assert_true(mono_ms() - t0 >= 900);
	assert_int_equal(session_set_count(e->set), 0);
	WAIT_FOR(e, peer_closed(idle));
	assert_rx(idle, "-ERR bye\r\n");
	assert_string_equal(stuck->fc->reason, "shutdown");
	env_check(e);
	env_free(e);
}

/* The disconnect line carries what gone() left, and the close reason. */
static void
test_summary(void **state)
{
	static const struct session_summary sum = { .user = "bob",
	    .state = "TRANSACTION", .retr_count = 1, .retr_bytes = 42 };
	struct tenv	*e = env_new(255, 60);
	struct peer	*p;
	char		*log, line[512];

	(void)state;
	e->summary = &sum;
	capture_start();
	p = peer_new(e, TR_DIRECT, true);
	quit(e, p);
	WAIT_FOR(e, session_set_count(e->set) == 0);
	log = capture_end();
	disconnect_line(log, p->fc->id, line, sizeof(line));
	free(log);
	assert_non_null(strstr(line, " rip=" PEER_ADDR " reason=quit "
	    "user=\"bob\" state=TRANSACTION retr=1/42 top=0/0 deleted=0 "
	    "duration_ms="));
	env_check(e);
	env_free(e);
}

/*
 * The same script gives the same bytes on every transport, whether
 * the peer reads at once or slowly.
 */
static void
test_transports_same_bytes(void **state)
{
	static const char	 script[] = "A\r\nFILL 100000\r\nB\r\n"
	    "BIG 300000 20000\r\nC\r\nQUIT\r\nD\r\n";
	struct evbuffer		*want = evbuffer_new();
	int			 tr, slow;

	(void)state;
	evbuffer_add_printf(want, "+OK hello\r\nok A\r\n");
	pat_add(want, 0, 100000);
	evbuffer_add_printf(want, "ok B\r\n");
	pat_add(want, 0, 300000);
	evbuffer_add_printf(want, "ok C\r\nbye\r\n");
	for (slow = 0; slow < 2; slow++) {
		for (tr = 0; tr < TR_COUNT; tr++) {
			struct tenv	*e = env_new(255, 60);
			struct peer	*p;

			e->greeting = "+OK hello";
			p = peer_new(e, tr, true);
			if (slow)
				peer_slow(p, 3000);
			peer_send(p, script);
			WAIT_FOR(e, peer_closed(p) &&
			    session_set_count(e->set) == 0 &&
			    evbuffer_get_length(bufferevent_get_input(p->bev))
			    == 0);
			assert_int_equal(evbuffer_get_length(p->rx),
			    evbuffer_get_length(want));
			assert_memory_equal(evbuffer_pullup(p->rx, -1),
			    evbuffer_pullup(want, -1),
			    evbuffer_get_length(want));
			env_check(e);
			env_free(e);
		}
	}
	evbuffer_free(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_lines, teardown),
		cmocka_unit_test_teardown(test_backpressure_cont, teardown),
		cmocka_unit_test_teardown(test_backpressure_hiwat, teardown),
		cmocka_unit_test_teardown(test_pipelined_over_input_limit,
		    teardown),
		cmocka_unit_test_teardown(test_cont_close, teardown),
		cmocka_unit_test_teardown(test_hold_resume, teardown),
		cmocka_unit_test_teardown(test_pause, teardown),
		cmocka_unit_test_teardown(test_close_flush, teardown),
		cmocka_unit_test_teardown(test_close_deferred_free, teardown),
		cmocka_unit_test_teardown(test_eof_pipelined, teardown),
		cmocka_unit_test_teardown(test_peer_close_pending, teardown),
		cmocka_unit_test_teardown(test_write_timeout, teardown),
		cmocka_unit_test_teardown(test_deadline, teardown),
		cmocka_unit_test_teardown(test_deadline_then_idle, teardown),
		cmocka_unit_test_teardown(test_idle, teardown),
		cmocka_unit_test_teardown(test_timer_heap, teardown),
		cmocka_unit_test_teardown(test_idle_cont_activity, teardown),
		cmocka_unit_test_teardown(test_drain, teardown),
		cmocka_unit_test_teardown(test_drain_grace, teardown),
		cmocka_unit_test_teardown(test_summary, teardown),
		cmocka_unit_test_teardown(test_transports_same_bytes, teardown),
	};

	const char *filter;

	/* A peer that closes must not kill us (main.c does the same). */
	signal(SIGPIPE, SIG_IGN);
	if ((filter = getenv("TEST_FILTER")) != NULL)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
