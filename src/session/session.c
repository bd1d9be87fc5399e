/*
 * session: connection lifecycle, input loop, output backpressure, timers.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/fileio.h"
#include "lib/fmt.h"
#include "lib/log.h"
#include "lib/logfmt.h"
#include "lib/monotime.h"
#include "lib/netaddr.h"
#include "session/session_int.h"

/*
 * Output throttle (Dovecot's, le-proxy.c's): stop taking commands while
 * more than OUT_HIWAT octets wait to be sent; long replies are refilled
 * when the output drains to OUT_LOWAT. Input waits in at most IN_HIWAT
 * octets, then the connection is not read until we catch up.
 */
#define OUT_LOWAT	(16 * 1024)
#define OUT_HIWAT	(64 * 1024)
#define IN_HIWAT	(16 * 1024)
/*
 * A TLS bufferevent reserves its read watermark's room in the input
 * before each SSL_read() (libevent's bytes_to_read()): with IN_HIWAT, a
 * 32 KiB chunk to read a 20-octet command, allocated and freed between
 * the login's long-lived allocations, which left the heap 4.6 KiB per
 * idle TLS session emptier than it was big (19,000 sessions). Without a
 * read watermark it reads 4 KiB at a time; session_throttle_read() still
 * stops reading at IN_HIWAT.
 */
#define TLS_IN_HIWAT	0
/* A plain socket's read in place fills at most the input's limit. */
_Static_assert(sizeof(((struct session_set *)0)->rbuf) == IN_HIWAT,
    "the set's read buffer is IN_HIWAT");

/* The longest line a protocol may ask for (session_params.line_max). */
#define LINE_MAX_CAP	8192

static void	session_read_cb(struct bufferevent *, void *);
static void	session_write_cb(struct bufferevent *, void *);
static void	session_sock_read_cb(evutil_socket_t, short, void *);
static void	session_sock_write_cb(evutil_socket_t, short, void *);
static void	session_drained(struct session *);
static void	session_eof(struct session *);
static struct evbuffer *session_evbuffer_get(struct session_set *);
static void	session_evbuffer_put(struct session_set *, struct evbuffer *);
static void	session_event_cb(struct bufferevent *, short, void *);
static void	session_pause_cb(struct ptimer *);
static void	session_unpause(struct session *);
static void	session_timer_fire(struct ptimer *);
static void	session_process(struct session *);
static void	session_free(struct session *);
static void	session_free_later(struct session *);
static void	session_sent_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);
static void	session_tls_swap(struct session *);
static void	session_tls_ready(struct session *);
static void	session_tls_failed(struct session *);
static void	session_count_in(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);
static void	session_count_out(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);

static void
session_arm_timer(struct session *s, uint64_t ms)
{
	/* Room was made for every session: only a failing timerfd fails. */
	if (ptimer_add(s->set->timers, &s->timer, ms * 1000) == -1)
		log_warn("event=timer-failed");
}

/* The bottom layer of a bufferevent: the socket's, under a filter. */
static struct bufferevent *
session_bottom(struct bufferevent *bev)
{
	while (bufferevent_get_underlying(bev) != NULL)
		bev = bufferevent_get_underlying(bev);
	return bev;
}

/*
 * The bufferevent of s (s->bev) takes the session's callbacks, read
 * watermark, the write watermarks on every layer, the write timeout on
 * the top and the bottom layer (what a filter passed down is then covered
 * too), and the bottom layer's sent callback. -1 if out of memory.
 */
static int
session_setup_bev(struct session *s)
{
	struct bufferevent	*bev = s->bev, *b = session_bottom(s->bev);
	struct timeval		 tv;

	/* Under a filter: see the bottom layer send (session_unsent()). */
	if (b != bev && evbuffer_add_cb(bufferevent_get_output(b),
	    session_sent_cb, s) == NULL)
		return -1;
	/*
	 * Octets in and out: %i/%o of the logout line (whose format a
	 * reload may change while s runs), and the metric of octets sent.
	 */
	if (evbuffer_add_cb(bufferevent_get_input(bev), session_count_in,
	    s) == NULL || evbuffer_add_cb(bufferevent_get_output(bev),
	    session_count_out, s) == NULL)
		return -1;
	bufferevent_setcb(bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	/* Bufferevents start with EV_WRITE on; session_flush() arms it. */
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_setwatermark(bev, EV_READ, 0, s->handshake ?
	    TLS_IN_HIWAT : IN_HIWAT);
	bufferevent_setwatermark(bev, EV_WRITE, OUT_LOWAT, 0);
	/*
	 * A filter passes its output down until the layer under it holds
	 * that layer's high watermark, and is called to pass more when it
	 * drains to its low one: without them, a whole long reply would
	 * go down at once, whatever the peer reads.
	 */
	for (b = bev; bufferevent_get_underlying(b) != NULL;
	    b = bufferevent_get_underlying(b))
		bufferevent_setwatermark(bufferevent_get_underlying(b),
		    EV_WRITE, OUT_LOWAT, OUT_HIWAT);
	tv = (struct timeval){ .tv_sec = (time_t)s->set->params.write_timeout };
	bufferevent_set_timeouts(bev, NULL, &tv);
	if (b != bev)
		bufferevent_set_timeouts(b, NULL, &tv);
	return 0;
}

/*
 * A plain socket's read event is in the session's allocation, after the
 * struct (one allocation less per session; its size is libevent's, asked
 * at run time, so no struct event layout is compiled in).
 */
#define SESSION_REV_OFF	((sizeof(struct session) + 15) & ~(size_t)15)

/*
 * A new session of set, not started: its timers, peer and key, with no
 * transport yet (plain: room for its read event). NULL if out of memory.
 */
static struct session *
session_alloc(struct session_set *set, const struct sockaddr *sa,
    socklen_t salen, const unsigned char *key, size_t keylen, bool plain)
{
	const struct session_params	*p = &set->params;
	struct session			*s;

	if ((s = calloc(1, plain ? SESSION_REV_OFF +
	    event_get_struct_event_size() : sizeof(*s))) == NULL)
		return NULL;
	s->set = set;
	s->fd = -1;
	ptimer_init(&s->timer, session_timer_fire);
	/* a timer and a pause for each session */
	if (ptimer_reserve(set->timers, 2 * (set->n_sessions + 1)) == -1) {
		free(s);
		return NULL;
	}
	s->started_ms = mono_ms();
	s->reason = "unknown";
	(void)netaddr_text(sa, salen, s->peer, sizeof(s->peer));
	if (sa != NULL && salen <= sizeof(s->peer_sa))
		memcpy(&s->peer_sa, sa, salen);
	if (keylen > 0 && keylen <= sizeof(s->peer_key)) {
		memcpy(s->peer_key, key, keylen);
		s->peer_keylen = (uint8_t)keylen;
	}
	linebuf_init(&s->lb, p->line_max < LINE_MAX_CAP ? p->line_max :
	    LINE_MAX_CAP);
	return s;
}

/* s joins its set and starts: the greeting, or the TLS handshake. */
static void
session_start(struct session *s)
{
	const struct session_params *p = &s->set->params;

	session_set_add(s->set, s);
	/* The disconnect line names the peer too: one line per session. */
	if (log_debug_enabled())
		session_debug(s, "event=connect rip=%s", s->peer);

	if (s->handshake) {
		/* The protocol starts once the handshake is done. */
		session_set_deadline(s, (uint64_t)p->handshake_timeout * 1000,
		    "tls-handshake-timeout");
	} else {
		s->started = 1;
		if (p->proto->start(s, p->arg) == -1)
			session_close(s, "out-of-memory", false);
	}
	/* start() may have closed it (a refusal): then nothing is read. */
	if (s->closing)
		return;
	if (s->bev != NULL)
		bufferevent_enable(s->bev, EV_READ); /* EV_WRITE: session_flush() */
	else
		event_add(s->rev, NULL);
}

struct session *
session_new_socket(struct session_set *set, int fd, const struct sockaddr *sa,
    socklen_t salen, const unsigned char *key, size_t keylen)
{
	struct session *s;

	if ((s = session_alloc(set, sa, salen, key, keylen, true)) == NULL)
		return NULL;
	s->rev = (struct event *)(void *)((char *)s + SESSION_REV_OFF);
	if (event_assign(s->rev, set->base, fd, EV_READ | EV_PERSIST,
	    session_sock_read_cb, s) == -1) {
		free(s);	/* the transport is the caller's */
		return NULL;
	}
	s->fd = fd;
	session_start(s);
	return s;
}

struct session *
session_new(struct session_set *set, struct bufferevent *bev,
    const struct sockaddr *sa, socklen_t salen, const unsigned char *key,
    size_t keylen, unsigned flags)
{
	struct session *s;

	if ((s = session_alloc(set, sa, salen, key, keylen, false)) == NULL)
		return NULL;
	s->bev = bev;
	s->fd = bufferevent_getfd(bev);
	s->handshake = (flags & SESSION_TLS) != 0;
	if (session_setup_bev(s) == -1) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		free(s);	/* the transport is the caller's */
		return NULL;
	}
	session_start(s);
	return s;
}

void
session_set_ctx(struct session *s, void *ctx)
{
	s->ctx = ctx;
}

void *
session_ctx(const struct session *s)
{
	return s->ctx;
}

uint64_t
session_id(const struct session *s)
{
	return s->id;
}

const struct sockaddr *
session_peer_addr(const struct session *s)
{
	return (const struct sockaddr *)&s->peer_sa;
}

const unsigned char *
session_peer_key(const struct session *s, size_t *len)
{
	*len = s->peer_keylen;
	return s->peer_key;
}

uint64_t
session_set_bytes_out(const struct session_set *set)
{
	return set->bytes_out;
}

const char *
session_reason(const struct session *s)
{
	return s->reason;
}

void
session_on_free(struct session *s, void (*fn)(struct session *, void *),
    void *arg)
{
	s->free_fn = fn;
	s->free_arg = arg;
}

const char *
session_peer(const struct session *s)
{
	return s->peer;
}

void
session_local(const struct session *s, char *buf, size_t len)
{
	(void)netaddr_local(s->fd, buf, len);
}

uint64_t
session_age_ms(const struct session *s)
{
	return mono_ms() - s->started_ms;
}

bool
session_closing(const struct session *s)
{
	return s->closing;
}

void
session_set_deadline(struct session *s, uint64_t ms, const char *reason)
{
	s->idle_timer = 0;
	s->deadline_reason = reason;
	session_arm_timer(s, ms);
}

void
session_set_idle(struct session *s, uint64_t ms)
{
	s->idle_timer = 1;
	s->idle_ms = ms;
	s->active_ms = mono_ms();
	session_arm_timer(s, ms);
}

/*
 * RFC 1939 section 3: any command resets the inactivity timer. Commands
 * only record the time; the timer, armed once, checks it when it fires
 * and re-arms for the rest (no timer heap work per command).
 */
void
session_touch(struct session *s)
{
	s->active_ms = mono_ms();
}

void
session_log(const struct session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vsession(s->id, fmt, ap);
	va_end(ap);
}

void
session_debug(const struct session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vsession_debug(s->id, fmt, ap);
	va_end(ap);
}

void
session_warnx(const struct session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vsession_warn(s->id, fmt, ap);
	va_end(ap);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	else if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;	/* RFC 1939 section 3: 512 with CRLF */
	buf[n++] = '\r';
	buf[n++] = '\n';
	session_write(s, buf, (size_t)n);
}

void
session_write(struct session *s, const void *buf, size_t len)
{
	struct evbuffer *out;

	if (s->closing)
		return;		/* gone(): nothing more is said */
	if ((out = session_output(s)) == NULL ||
	    evbuffer_add(out, buf, len) == -1) {
		session_close(s, "out-of-memory", false);
		return;
	}
	session_set_queue_flush(s->set, s);
}

struct evbuffer *
session_output(struct session *s)
{
	if (s->bev != NULL)
		return bufferevent_get_output(s->bev);
	if (s->out == NULL)
		s->out = session_evbuffer_get(s->set);
	return s->out;
}

size_t
session_output_len(const struct session *s)
{
	if (s->bev != NULL)
		return evbuffer_get_length(bufferevent_get_output(s->bev));
	return s->out != NULL ? evbuffer_get_length(s->out) : 0;
}

/*
 * An empty evbuffer for a plain socket's input or output: one the set
 * kept, or a new one. A session holds one only while it is not empty,
 * so most replies would otherwise cost an evbuffer_new() (a calloc(),
 * which glibc serves without its per-thread cache) and an
 * evbuffer_free().
 */
static struct evbuffer *
session_evbuffer_get(struct session_set *set)
{
	if (set->n_spare > 0)
		return set->spare[--set->n_spare];
	return evbuffer_new();
}

static void
session_evbuffer_put(struct session_set *set, struct evbuffer *b)
{
	if (set->n_spare < SESSION_SPARE_MAX)
		set->spare[set->n_spare++] = b;
	else
		evbuffer_free(b);
}

/* The input received and not taken yet (none: NULL). */
static struct evbuffer *
session_input(const struct session *s)
{
	return s->bev != NULL ? bufferevent_get_input(s->bev) : s->in;
}

size_t
session_input_len(const struct session *s)
{
	return session_input(s) != NULL ?
	    evbuffer_get_length(session_input(s)) : 0;
}

/*
 * Octets not sent yet: the output, and what a filter has passed to the
 * bufferevents under it, which freeing the session would drop.
 */
static size_t
session_unsent(const struct session *s)
{
	struct bufferevent	*b;
	size_t			 n = session_output_len(s);

	for (b = s->bev != NULL ? bufferevent_get_underlying(s->bev) : NULL;
	    b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

/* Free s from the set's flush event, outside any callback using it. */
static void
session_free_later(struct session *s)
{
	if (!s->freeing) {
		s->freeing = 1;
		session_set_queue_free(s->set, s);
	}
}

/*
 * Wait for the socket to take more output. A plain socket's write event
 * is made the first time (most sessions never need it) and carries the
 * write timeout, which restarts whenever the socket takes some. -1 if
 * out of memory.
 */
static int
session_arm_write(struct session *s)
{
	struct timeval tv = { .tv_sec = (time_t)s->set->params.write_timeout };

	if (s->write_armed)
		return 0;
	if (s->bev != NULL) {
		s->write_armed = 1;
		bufferevent_enable(s->bev, EV_WRITE);
		/*
		 * A socket or a pair starts writing when EV_WRITE is
		 * enabled; a filter (bufferevent_filter_new()) leaves what
		 * was queued meanwhile until more is added: have it now.
		 */
		bufferevent_flush(s->bev, EV_WRITE, BEV_NORMAL);
		return 0;
	}
	if (s->wev == NULL && (s->wev = event_new(s->set->base, s->fd,
	    EV_WRITE | EV_PERSIST, session_sock_write_cb, s)) == NULL)
		return -1;
	s->write_armed = 1;
	event_add(s->wev, &tv);
	return 0;
}

/* The socket took all: back to writing from the flush event. */
static void
session_disarm_write(struct session *s)
{
	s->write_armed = 0;
	if (s->bev != NULL)
		bufferevent_disable(s->bev, EV_WRITE);
	else
		event_del(s->wev);
}

/*
 * A plain socket's output, written with one writev: the octets it took
 * are counted. -1 if the connection failed.
 */
static int
session_sock_write(struct session *s)
{
	int n;

	if ((n = evbuffer_write(s->out, s->fd)) > 0) {
		s->bytes_out += (uint64_t)n;
		s->set->bytes_out += (uint64_t)n;
	} else if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR)
		return -1;
	return 0;
}

/* A plain socket's empty buffers are freed: an idle session holds none. */
static void
session_sock_trim(struct session *s)
{
	if (s->out != NULL && s->cont == NULL && !s->write_armed &&
	    evbuffer_get_length(s->out) == 0) {
		session_evbuffer_put(s->set, s->out);
		s->out = NULL;
	}
	if (s->in != NULL && evbuffer_get_length(s->in) == 0) {
		session_evbuffer_put(s->set, s->in);
		s->in = NULL;
	}
}

/*
 * Send the output queued in this loop iteration (the set's flush event).
 * A plain socket's is written at once with one writev, instead of arming
 * the write event and waiting a poll for it: most replies are one short
 * line that the socket takes at once. A long reply in progress (s->cont)
 * and output the socket does not take at once wait for the write event,
 * which paces them (session_drained()), as does every output of a
 * bufferevent.
 */
void
session_flush(struct session *s)
{
	if (s->freeing || s->write_armed)
		return;
	/* A continuation yields only with output queued: never empty. */
	if (s->cont != NULL) {
		if (session_arm_write(s) == -1)
			session_close(s, "out-of-memory", false);
		return;
	}
	if (s->bev == NULL && s->out != NULL &&
	    evbuffer_get_length(s->out) > 0 && session_sock_write(s) == -1) {
		session_close(s, "connection-error", false);
		return;
	}
	if (session_output_len(s) > 0) {
		if (session_arm_write(s) == -1)
			session_close(s, "out-of-memory", false);
		return;
	}
	if (s->closing) {
		/* Else session_drained() frees us once it is out. */
		if (session_unsent(s) == 0)
			session_free_later(s);
		return;
	}
	if (s->tls_pending) {
		session_tls_swap(s);	/* STLS's "+OK" is out */
		return;
	}
	/* Input held back while the output was over OUT_HIWAT. */
	if (!s->held)
		session_process(s);
	if (s->bev == NULL && !s->closing)
		session_sock_trim(s);
}

/*
 * Stop reading while IN_HIWAT octets of input wait, and start again once
 * lines are taken. The read watermark alone does not do: libevent 2.1.11
 * and later run the read callback of a bufferevent (a socket's, a
 * pair's) whose input is at its high watermark on every turn of the
 * loop, which would spin while the session takes no input (libevent
 * issue #891).
 */
static void
session_throttle_read(struct session *s)
{
	bool full;

	if (s->closing || s->eof)
		return;
	full = session_input(s) != NULL &&
	    evbuffer_get_length(session_input(s)) >= IN_HIWAT;
	if (full && !s->read_paused) {
		s->read_paused = 1;
		if (s->bev != NULL)
			bufferevent_disable(s->bev, EV_READ);
		else
			event_del(s->rev);
	} else if (!full && s->read_paused) {
		s->read_paused = 0;
		if (s->bev != NULL)
			bufferevent_enable(s->bev, EV_READ);
		else
			event_add(s->rev, NULL);
	}
}

/*
 * The input loop: take complete lines while the session takes input and
 * the output is not backed up. Called when input arrives and whenever
 * one of those conditions ends.
 */
static void
session_process(struct session *s)
{
	const struct session_proto	*proto = s->set->params.proto;
	char				 line[LINE_MAX_CAP + 1];
	size_t				 len;
	enum lb_result			 r;

	while (session_takes_input(s)) {
		if (s->set->draining) {
			session_shutdown(s);	/* the command in progress is done */
			return;
		}
		if (session_output_len(s) >= OUT_HIWAT) {
			/* session_write_cb() resumes */
			session_throttle_read(s);
			return;
		}
		if (s->set->flat_owner == s)	/* s->in is empty */
			r = linebuf_take(&s->lb, &s->set->flat,
			    &s->set->flat_len, line, &len);
		else if (session_input(s) != NULL)
			r = linebuf_read(&s->lb, session_input(s), line, &len);
		else
			break;
		if (r == LB_AGAIN)
			break;
		if (r == LB_TOOLONG) {
			proto->overlong(s);
			continue;
		}
		proto->input(s, line, len);
		explicit_bzero(line, len);	/* it may have held a password */
	}
	if (s->eof && session_takes_input(s))
		session_close(s, "disconnected", true);
	else
		session_throttle_read(s);
}

void
session_hold(struct session *s)
{
	s->held = 1;
}

void
session_resume(struct session *s)
{
	s->held = 0;
	session_process(s);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_process(arg);
}

/*
 * A plain socket is readable: one read(2) into the set's read buffer (no
 * FIONREAD first, as a socket bufferevent does). When nothing is kept
 * from the last read, the lines are taken there in place (no input
 * buffer to make, fill and drain); what is left (the start of a line, or
 * lines the session does not take now) is kept in s->in, ahead of the
 * next read, which is then appended to it. The read buffer is cleared
 * after use: it may have held a password.
 */
static void
session_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session		*s = arg;
	struct session_set	*set = s->set;
	size_t			 kept = s->in != NULL ?
				    evbuffer_get_length(s->in) : 0;
	ssize_t			 n;

	(void)what;
	/* Reading stops at IN_HIWAT kept (session_throttle_read()). */
	n = read(fd, set->rbuf, kept < IN_HIWAT ? IN_HIWAT - kept : 1);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			session_close(s, "connection-error", false);
		return;
	}
	s->bytes_in += (uint64_t)n;
	if (n == 0) {
		event_del(s->rev);
		session_eof(s);
	} else if (kept > 0) {
		if (evbuffer_add(s->in, set->rbuf, (size_t)n) == -1)
			session_close(s, "out-of-memory", false);
		else
			session_process(s);
	} else {
		set->flat_owner = s;
		set->flat = set->rbuf;
		set->flat_len = (size_t)n;
		session_process(s);
		set->flat_owner = NULL;
		if (set->flat_len > 0 && !s->closing) {
			if ((s->in == NULL &&
			    (s->in = session_evbuffer_get(set)) == NULL) ||
			    evbuffer_add(s->in, set->flat, set->flat_len) == -1)
				session_close(s, "out-of-memory", false);
			else
				session_throttle_read(s);
		}
		set->flat_len = 0;
	}
	if (n > 0)
		explicit_bzero(set->rbuf, (size_t)n);
	if (!s->closing)
		session_sock_trim(s);
}

/* The peer closed its side: answer what it pipelined first, then close. */
static void
session_eof(struct session *s)
{
	s->eof = 1;
	if (session_takes_input(s))
		session_process(s);
	/* else a flushing close goes on: half-close */
}

/* End the reply in progress: free it (it may look at s->closing). */
static void
session_end_cont(struct session *s)
{
	struct session_cont *c = s->cont;

	if (c != NULL) {
		c->free(s, c);
		s->cont = NULL;
	}
}

/*
 * Run the reply in progress once. When it is finished, free it, close if
 * it asked to, and return true.
 */
static bool
session_run_cont(struct session *s)
{
	enum session_cont_status	 r;
	const char			*reason;

	r = s->cont->run(s, s->cont);
	if (r == SESSION_CONT_MORE)
		return false;
	reason = s->cont->close_reason;
	session_end_cont(s);
	if (r == SESSION_CONT_CLOSE)
		session_close(s, reason != NULL ? reason : "closed", true);
	return true;
}

void
session_start_cont(struct session *s, struct session_cont *c)
{
	if (s->closing) {
		c->free(s, c);
		return;
	}
	s->cont = c;
	(void)session_run_cont(s);
	session_set_queue_flush(s->set, s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_drained(arg);
}

/*
 * A plain socket can take more: write, and once the output is down to
 * OUT_LOWAT (the bufferevents' write watermark), go on as they do.
 */
static void
session_sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		session_close(s, "write-timeout", false);
		return;
	}
	if (session_sock_write(s) == -1) {
		session_close(s, "connection-error", false);
		return;
	}
	if (evbuffer_get_length(s->out) <= OUT_LOWAT)
		session_drained(s);
}

/*
 * The output drained to its low watermark (all of it when closing):
 * free a closed session once all is out, wrap STLS's socket, refill a
 * long reply, or take the next command.
 */
static void
session_drained(struct session *s)
{
	if (s->closing) {
		if (session_unsent(s) == 0)
			session_free_later(s);
		return;
	}
	if (s->tls_pending) {
		if (session_output_len(s) == 0)
			session_tls_swap(s);	/* STLS's "+OK" is out */
		return;
	}
	if (s->cont != NULL && !session_run_cont(s))
		return;
	if (!s->held)
		session_process(s);
	/* All out: back to writing from the flush event (session_flush). */
	if (!s->closing && s->cont == NULL && s->write_armed &&
	    session_output_len(s) == 0) {
		session_disarm_write(s);
		if (s->bev == NULL)
			session_sock_trim(s);
	}
}

/*
 * The bottom layer under a filter sent some: a flushing close is done
 * once nothing is left in any layer. The filter itself says nothing
 * when the layers under it drain.
 */
static void
session_sent_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct session *s = arg;

	(void)buf;
	if (s->closing && info->n_deleted > 0 && session_unsent(s) == 0)
		session_free_later(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->handshake && !s->closing)
			session_tls_ready(s);
		return;
	}
	if (s->handshake && !s->closing &&
	    (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		session_tls_failed(s);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		session_eof(s);
		return;
	}
	/* These end even a flushing close at once. */
	if (what & BEV_EVENT_TIMEOUT)
		session_close(s, "write-timeout", false);
	else if (what & BEV_EVENT_ERROR)
		session_close(s, "connection-error", false);
}

/* The deadline or the idle limit is due. */
static void
session_timer_fire(struct ptimer *t)
{
	struct session	*s = (struct session *)(void *)((char *)t -
			    offsetof(struct session, timer));
	uint64_t	 idle;

	if (!s->idle_timer) {
		session_close(s, s->deadline_reason, false);
		return;
	}
	/* A reply still streaming is progress: the write timeout covers stalls. */
	if (s->cont != NULL || session_output_len(s) > 0 || s->held)
		session_touch(s);
	idle = mono_ms() - s->active_ms;
	if (idle < s->idle_ms) {
		session_arm_timer(s, s->idle_ms - idle);
		return;
	}
	/* RFC 1939 section 3: close without a response. */
	session_close(s, "idle-timeout", false);
}

/* The pause is over (session_close() cancels it): the protocol's fn. */
static void
session_pause_cb(struct ptimer *t)
{
	struct session_pause	*sp = (struct session_pause *)(void *)((char *)t -
				    offsetof(struct session_pause, t));
	struct session		*s = sp->s;
	void			(*fn)(struct session *) = sp->fn;

	s->pause = NULL;
	free(sp);
	fn(s);
}

/* Cancel a pause in progress. */
static void
session_unpause(struct session *s)
{
	if (s->pause != NULL) {
		ptimer_del(s->set->timers, &s->pause->t);
		free(s->pause);
		s->pause = NULL;
	}
}

/*
 * On the set's precise timers (lib/ptimer.h), not an evtimer: the loop's
 * clock is the coarse one, and a failed login's answer must come exactly
 * when it is due, whatever the check cost.
 */
void
session_pause(struct session *s, uint64_t us, void (*fn)(struct session *))
{
	int err;

	s->held = 1;
	session_unpause(s);
	/* Made per pause: most sessions never pause (a failed login). */
	if ((s->pause = malloc(sizeof(*s->pause))) == NULL) {
		session_close(s, "out-of-memory", false);
		return;
	}
	ptimer_init(&s->pause->t, session_pause_cb);
	s->pause->s = s;
	s->pause->fn = fn;
	if (ptimer_add(s->set->timers, &s->pause->t, us) == -1) {
		err = errno;
		session_unpause(s);
		session_warnx(s, "event=pause-failed error=\"%s\"",
		    strerror(err));
		session_close(s, err == ENOMEM ? "out-of-memory" :
		    "internal-error", false);
	}
}

void
session_set_summary(struct session *s, const struct session_summary *sum)
{
	size_t	 ulen = sum->user != NULL ? strlen(sum->user) + 1 : 0;

	/* Allocated at the end only: an idle session holds a pointer. */
	free(s->summary);
	if ((s->summary = malloc(sizeof(*sum) + ulen)) == NULL)
		return;		/* the line goes without */
	*s->summary = *sum;
	if (sum->user != NULL)
		s->summary->user = memcpy(s->summary + 1, sum->user, ulen);
}

static void
session_count_in(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct session *s = arg;

	(void)buf;
	s->bytes_in += info->n_added;
}

static void
session_count_out(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct session *s = arg;

	(void)buf;
	s->bytes_out += info->n_deleted;	/* taken by the socket or TLS */
	s->set->bytes_out += info->n_deleted;	/* session_set_bytes_out() */
}

/* The logout format in force: the set's, or the default compiled once. */
static const struct logfmt *
session_logout_fmt(const struct session_set *set)
{
	static struct logfmt	*dflt;	/* kept for the process's life */
	char			 why[128];

	if (set->params.logout != NULL)
		return set->params.logout;
	if (dflt == NULL && logfmt_compile(LOGFMT_LOGOUT_DEFAULT, &dflt, why,
	    sizeof(why)) == -1)
		return NULL;
	return dflt;
}

/*
 * The disconnect line: "event=disconnect rip=ADDR" first, always (a
 * reader takes the first rip=; nothing the client chose comes before
 * it), then [log] logout_format.
 */
static void
session_log_logout(const struct session *s)
{
	const struct logfmt	*fmt = session_logout_fmt(s->set);
	static const struct session_summary none;
	const struct session_summary *sum =
	    s->summary != NULL ? s->summary : &none;
	struct logfmt_values	 v;
	char			 line[3072], lip[INET6_ADDRSTRLEN + 16];

	line[0] = '\0';
	if (fmt != NULL) {
		v = (struct logfmt_values){ .user = sum->user,
		    .rip = s->peer, .reason = s->reason,
		    .tls = s->secure ? s->set->params.tls.version(s->bev) :
		    NULL, .state = sum->state,
		    .session = s->id,
		    .duration_ms = mono_ms() - s->started_ms,
		    .input = s->bytes_in, .output = s->bytes_out,
		    .top_count = sum->top_count, .top_bytes = sum->top_bytes,
		    .retr_count = sum->retr_count,
		    .retr_bytes = sum->retr_bytes,
		    .deleted_count = sum->deleted_count,
		    .message_count = sum->message_count,
		    .message_bytes = sum->message_bytes,
		    .has_proto = s->summary != NULL };
		/* A system call: only when the format asks for it. */
		if (logfmt_uses(fmt, LOGFMT_LIP))
			v.lip = netaddr_local(s->fd, lip, sizeof(lip));
		logfmt_expand(fmt, &v, line, sizeof(line));
	}
	session_log(s, "event=disconnect rip=%s%s%s", s->peer,
	    line[0] != '\0' ? " " : "", line);
}

/* The protocol's end: the reply in progress, then gone(), once. */
static void
session_end_proto(struct session *s)
{
	s->closing = 1;
	session_end_cont(s);
	s->set->params.proto->gone(s);
	s->ctx = NULL;
}

void
session_close(struct session *s, const char *reason, bool flush)
{
	if (s->freeing)
		return;
	if (!s->closing) {
		s->reason = reason;
		session_end_proto(s);
		if (s->bev != NULL)
			bufferevent_disable(s->bev, EV_READ);
		else
			event_del(s->rev);
		ptimer_del(s->set->timers, &s->timer);
		session_unpause(s);
		if (flush && session_unsent(s) > 0) {
			/*
			 * session_drained() or session_flush() frees us
			 * once the output is out.
			 */
			if (s->bev != NULL)
				bufferevent_setwatermark(s->bev, EV_WRITE, 0,
				    0);
			if (!s->write_armed)
				session_set_queue_flush(s->set, s);
			return;
		}
	} else if (flush)
		return;		/* already flushing */
	else
		s->reason = reason;	/* a flushing close cut short */
	session_free_later(s);
}

void
session_close_bye(struct session *s, const char *bye, const char *reason)
{
	if (s->closing)
		return;
	if (!session_takes_input(s) || bye == NULL) {
		session_close(s, reason, false);
		return;
	}
	session_reply(s, "%s", bye);
	session_close(s, reason, true);
}

/*
 * The stop path (set.c, session_set_drain()). A session waiting for a
 * command gets the protocol's bye and is closed. One busy with a command
 * (a reply being sent, a worker job such as UPDATE, a pause) finishes
 * it: session_process() then answers its next command with the bye. A
 * TLS handshake in progress is dropped: no command was sent yet.
 */
void
session_shutdown(struct session *s)
{
	if (s->closing)
		return;
	if (s->handshake)
		session_close(s, "shutdown", false);
	else if (session_takes_input(s))
		session_close_bye(s, s->set->params.proto->bye, "shutdown");
}

void
session_destroy(struct session *s)
{
	session_free(s);
}

/*
 * A plain socket's events and buffers, freed (the read event, in the
 * session's allocation, only deleted); not the socket itself.
 */
static void
session_sock_release(struct session *s)
{
	if (s->rev != NULL)
		event_del(s->rev);
	if (s->wev != NULL)
		event_free(s->wev);
	if (s->in != NULL)
		evbuffer_free(s->in);
	if (s->out != NULL)
		evbuffer_free(s->out);
	s->rev = s->wev = NULL;
	s->in = s->out = NULL;
}

static void
session_free(struct session *s)
{
	struct bufferevent *b = s->bev != NULL ? session_bottom(s->bev) : NULL;

	if (!s->closing)
		session_end_proto(s);
	session_set_remove(s->set, s);
	session_log_logout(s);
	if (s->free_fn != NULL)
		s->free_fn(s, s->free_arg);
	if (b != s->bev)	/* under a filter (session_setup_bev()) */
		(void)evbuffer_remove_cb(bufferevent_get_output(b),
		    session_sent_cb, s);
	/*
	 * RFC 8446 section 6.1: say we are done, unless output was cut
	 * short (a close_notify would tell the peer it got everything).
	 */
	if (s->secure && s->set->params.tls.shutdown != NULL &&
	    session_unsent(s) == 0)
		s->set->params.tls.shutdown(s->bev);
	if (s->bev != NULL)
		bufferevent_free(s->bev);	/* closes the socket */
	else {
		session_sock_release(s);
		(void)close(s->fd);
	}
	ptimer_del(s->set->timers, &s->timer);
	session_unpause(s);	/* destroyed while paused */
	free(s->summary);
	free(s);
}

/* ------------------------------------------------------------ TLS */

bool
session_secure(const struct session *s)
{
	return s->secure;
}

bool
session_tls_available(const struct session *s)
{
	return s->set->params.tls.wrap != NULL && s->bev == NULL && !s->secure &&
	    !s->handshake && !s->tls_pending;
}

bool
session_peer_loopback(const struct session *s)
{
	return netaddr_loopback((const struct sockaddr *)(const void *)
	    &s->peer_sa);
}

/* Drop every octet of input received so far, and any partial line. */
static void
session_discard_input(struct session *s)
{
	struct evbuffer *in = session_input(s);

	if (in != NULL)
		evbuffer_drain(in, evbuffer_get_length(in));
	if (s->set->flat_owner == s)
		s->set->flat_len = 0;	/* the rest of this read too */
	linebuf_init(&s->lb, s->lb.max);
}

int
session_starttls(struct session *s)
{
	if (s->closing || !session_tls_available(s))
		return -1;
	/*
	 * RFC 2595 section 4, CVE-2011-0411: nothing the client sent after
	 * STLS in plaintext may be taken, before or after the handshake.
	 * No more is read from the socket until TLS reads it.
	 */
	session_discard_input(s);
	event_del(s->rev);
	s->read_paused = 0;
	s->tls_pending = 1;
	/* session_flush() wraps the socket once the "+OK" is out. */
	session_set_queue_flush(s->set, s);
	return 0;
}

/*
 * STLS's "+OK" is out: the plain socket bufferevent holds nothing more,
 * and gives way to a TLS socket bufferevent on the same socket (one
 * bufferevent, as an implicit TLS session has, not a filter over the old
 * one). What arrived meanwhile is discarded too (a client must wait for
 * the "+OK" before its ClientHello, RFC 2595 section 4). The handshake
 * then runs within the deadline already set (the login timeout).
 */
static void
session_tls_swap(struct session *s)
{
	const struct session_tls	*t = &s->set->params.tls;
	struct bufferevent		*tls;

	s->tls_pending = 0;
	session_discard_input(s);
	if ((tls = t->wrap(t->arg, s->set->base, s->fd)) == NULL) {
		session_close(s, "out-of-memory", false);
		return;
	}
	session_sock_release(s);	/* the socket is tls's now */
	s->bev = tls;
	s->write_armed = 0;
	s->read_paused = 0;
	s->handshake = 1;
	if (session_setup_bev(s) == -1) {
		session_close(s, "out-of-memory", false);
		return;
	}
	if (log_debug_enabled())
		session_debug(s, "event=tls-handshake rip=%s", s->peer);
	bufferevent_enable(tls, EV_READ);
}

/* The handshake is done: greet (implicit TLS) or take commands (STLS). */
static void
session_tls_ready(struct session *s)
{
	const struct session_params	*p = &s->set->params;

	s->handshake = 0;
	s->secure = 1;
	if (log_debug_enabled())
		session_debug(s, "event=tls rip=%s protocol=%s cipher=%s",
		    s->peer, p->tls.version(s->bev), p->tls.cipher(s->bev));
	if (!s->started) {
		s->started = 1;
		if (p->proto->start(s, p->arg) == -1) {
			session_close(s, "out-of-memory", false);
			return;
		}
	}
	session_process(s);
}

/* The peer left or spoke no TLS: one line with OpenSSL's reason, close. */
static void
session_tls_failed(struct session *s)
{
	char	why[256], q[LOG_QUOTED_SIZE(sizeof(why))];

	s->set->params.tls.error(s->bev, why, sizeof(why));
	session_log(s, "event=tls-failed rip=%s error=%s", s->peer,
	    log_quote(q, sizeof(q), why));
	session_close(s, "tls-handshake-failed", false);
}
