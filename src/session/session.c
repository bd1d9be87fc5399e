/*
 * session: connection lifecycle, input loop, output backpressure, timers.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth/auth.h"
#include "config.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "pop3/pop3_cmd.h"
#include "net/server.h"
#include "session/session.h"

/*
 * Output throttle (Dovecot's, le-proxy.c's): stop taking commands while
 * more than OUT_HIWAT octets wait to be sent; long replies are refilled
 * when the output drains to OUT_LOWAT. Input waits in at most IN_HIWAT
 * octets, then the socket is not read until we catch up.
 */
#define OUT_LOWAT	(16 * 1024)
#define OUT_HIWAT	(64 * 1024)
#define IN_HIWAT	(16 * 1024)

static void	session_read_cb(struct bufferevent *, void *);
static void	session_write_cb(struct bufferevent *, void *);
static void	session_event_cb(struct bufferevent *, short, void *);
static void	session_timer_cb(evutil_socket_t, short, void *);
static void	session_delay_cb(evutil_socket_t, short, void *);
static void	session_process(struct session *);
static void	session_free(struct session *);
static void	session_queue_flush(struct session *);
static void	session_free_later(struct session *);

static void
session_arm_timer(struct session *s, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
	    .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(s->timer, &tv);
}

static const char *
state_name(enum pop3_state state)
{
	switch (state) {
	case POP3_AUTHORIZATION:
		return "AUTHORIZATION";
	case POP3_TRANSACTION:
		return "TRANSACTION";
	case POP3_UPDATE:
		return "UPDATE";
	}
	return "?";
}

static void
format_peer(const struct sockaddr *sa, socklen_t salen, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN], port[8];

	if (getnameinfo(sa, salen, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, outlen, "unknown");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%s", host, port);
	else
		snprintf(out, outlen, "%s:%s", host, port);
}

struct session *
session_new(struct server *srv, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	const struct cfg	*cfg = srv->cfg;
	struct session		*s;
	struct timeval		 tv;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->srv = srv;
	s->id = srv->next_session_id++;
	s->state = POP3_AUTHORIZATION;
	s->started_ms = mono_ms();
	s->reason = "unknown";
	format_peer(sa, salen, s->rip, sizeof(s->rip));
	linebuf_init(&s->lb, POP3_LINE_MAX);

	/*
	 * Replies are already whole when written (session_flush() sends a
	 * loop iteration's output in one writev), so Nagle could only hold
	 * a reply back waiting for the peer's delayed ACK.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(srv->base, session_timer_cb, s);
	s->delay = evtimer_new(srv->base, session_delay_cb, s);
	if (s->bev == NULL || s->timer == NULL || s->delay == NULL) {
		if (s->bev != NULL)
			bufferevent_free(s->bev);
		else
			evutil_closesocket(fd);
		if (s->timer != NULL)
			event_free(s->timer);
		if (s->delay != NULL)
			event_free(s->delay);
		free(s);
		return NULL;
	}
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	/* New bufferevents start with EV_WRITE on; session_flush() arms it. */
	bufferevent_disable(s->bev, EV_WRITE);
	bufferevent_setwatermark(s->bev, EV_READ, 0, IN_HIWAT);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUT_LOWAT, 0);
	tv = (struct timeval){ .tv_sec = cfg->write_timeout };
	bufferevent_set_timeouts(s->bev, NULL, &tv);

	/* The login timeout runs from connect: a client must log in by then. */
	session_arm_timer(s, (uint64_t)cfg->login_timeout * 1000);

	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->n_sessions++;
	/* The disconnect line names the peer too: one line per session. */
	if (log_debug_enabled())
		log_debug("sess=%016llx event=connect rip=%s",
		    (unsigned long long)s->id, s->rip);

	pop3_greet(s);
	bufferevent_enable(s->bev, EV_READ);	/* EV_WRITE: session_flush() */
	return s;
}

void
session_set_state(struct session *s, enum pop3_state state)
{
	if (log_debug_enabled())
		session_debug(s, "event=state from=%s to=%s",
		    state_name(s->state), state_name(state));
	s->state = state;
	if (state == POP3_TRANSACTION) {
		/* The login timer becomes the idle timer. */
		s->active_ms = mono_ms();
		session_arm_timer(s, (uint64_t)s->srv->cfg->idle_timeout * 1000);
	}
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
session_reply(struct session *s, const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	else if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;	/* RFC 1939 section 3: 512 with CRLF */
	buf[n++] = '\r';
	buf[n++] = '\n';
	evbuffer_add(bufferevent_get_output(s->bev), buf, (size_t)n);
	session_queue_flush(s);
}

void
session_write(struct session *s, const void *buf, size_t len)
{
	evbuffer_add(bufferevent_get_output(s->bev), buf, len);
	session_queue_flush(s);
}

/* Free the session from the delay event, outside any callback using it. */
static void
session_free_later(struct session *s)
{
	if (!s->freeing) {
		s->freeing = 1;
		event_active(s->delay, EV_TIMEOUT, 0);
	}
}

/* Have the server's flush event write our output before the next poll. */
static void
session_queue_flush(struct session *s)
{
	struct server	*srv = s->srv;

	if (s->flush_queued || s->freeing)
		return;
	s->flush_queued = 1;
	TAILQ_INSERT_TAIL(&srv->flushq, s, flush_entry);
	event_active(srv->flush_ev, EV_TIMEOUT, 0);
}

static void
session_arm_write(struct session *s)
{
	if (!s->write_armed) {
		s->write_armed = 1;
		bufferevent_enable(s->bev, EV_WRITE);
	}
}

/*
 * Write the output now, with one writev, instead of arming the write event
 * and waiting a poll for it: most replies are one short line that the
 * socket takes at once. A long reply in progress (s->cont) and output the
 * socket does not take are left to the bufferevent, whose write callback
 * paces them (session_write_cb).
 */
static void
session_flush(struct session *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);

	if (s->freeing || s->write_armed)
		return;
	/* A continuation yields only with CONT_CHUNK queued: never empty. */
	if (s->cont != NULL) {
		session_arm_write(s);
		return;
	}
	if (evbuffer_get_length(out) > 0) {
		int	 n;

		/* The bufferevent keeps the front frozen between its writes. */
		evbuffer_unfreeze(out, 1);
		n = evbuffer_write(out, bufferevent_getfd(s->bev));
		evbuffer_freeze(out, 1);
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			session_close(s, "connection-error", false);
			return;
		}
	}
	if (evbuffer_get_length(out) > 0) {
		session_arm_write(s);
		return;
	}
	if (s->closing) {
		session_free_later(s);
		return;
	}
	/* Input held back while the output was over OUT_HIWAT. */
	if (!s->waiting)
		session_process(s);
}

void
session_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	struct server	*srv = arg;
	struct session	*s;

	(void)fd;
	(void)events;
	while ((s = TAILQ_FIRST(&srv->flushq)) != NULL) {
		TAILQ_REMOVE(&srv->flushq, s, flush_entry);
		s->flush_queued = 0;
		session_flush(s);
	}
}

size_t
session_output_len(const struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

/*
 * The input loop: take complete lines while no long reply, worker job or
 * pause is in progress and the output is not backed up. Called when input
 * arrives and whenever one of those conditions ends.
 */
static void
session_process(struct session *s)
{
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	char		 line[POP3_LINE_MAX + 1];
	size_t		 len;
	enum lb_result	 r;

	while (!s->closing && !s->waiting && s->cont == NULL) {
		if (session_output_len(s) >= OUT_HIWAT)
			return;		/* session_write_cb() resumes */
		r = linebuf_read(&s->lb, in, line, &len);
		if (r == LB_AGAIN)
			break;
		if (r == LB_TOOLONG) {
			s->sasl_wait = 0;
			pop3_line_too_long(s);
			continue;
		}
		if (s->sasl_wait)
			cmd_auth_response(s, line, len);
		else
			pop3_dispatch(s, line, len);
		auth_wipe(line, len);	/* it may have held a password */
	}
	if (s->eof && !s->closing && !s->waiting && s->cont == NULL)
		session_close(s, "disconnected", true);
}

void
session_resume(struct session *s)
{
	s->waiting = 0;
	session_process(s);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_process(arg);
}

bool
session_run_cont(struct session *s)
{
	enum cmd_result r;

	r = s->cont->fn(s);
	if (r == CMD_CONT)
		return false;
	cmd_cont_free(s);
	if (r == CMD_CLOSE)
		session_close(s, s->reason, true);
	return true;
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->closing) {
		if (session_output_len(s) == 0)
			session_free_later(s);
		return;
	}
	if (s->cont != NULL && !session_run_cont(s))
		return;
	if (!s->waiting)
		session_process(s);
	/* All out: back to writing directly (session_flush). */
	if (!s->closing && s->cont == NULL && s->write_armed &&
	    session_output_len(s) == 0) {
		s->write_armed = 0;
		bufferevent_disable(s->bev, EV_WRITE);
	}
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		/* Answer what was pipelined before the FIN, then close. */
		s->eof = 1;
		if (!s->closing && !s->waiting && s->cont == NULL)
			session_process(s);
		return;		/* a flushing close goes on: half-close */
	}
	/* These end even a flushing close at once. */
	if (what & BEV_EVENT_TIMEOUT)
		session_close(s, "write-timeout", false);
	else if (what & BEV_EVENT_ERROR)
		session_close(s, "connection-error", false);
}

static void
session_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct session	*s = arg;
	uint64_t	 idle, limit;

	(void)fd;
	(void)events;
	if (s->state == POP3_AUTHORIZATION) {
		session_close(s, "login-timeout", false);
		return;
	}
	/* A reply still streaming is progress: the write timeout covers stalls. */
	if (s->cont != NULL || session_output_len(s) > 0 || s->waiting)
		session_touch(s);
	idle = mono_ms() - s->active_ms;
	limit = (uint64_t)s->srv->cfg->idle_timeout * 1000;
	if (idle < limit) {
		session_arm_timer(s, limit - idle);
		return;
	}
	/* RFC 1939 section 3: close without a response and without UPDATE. */
	session_close(s, "idle-timeout", false);
}

/*
 * The delay event serves two purposes: the failed-login pause, and
 * freeing the session outside of any callback that still uses it.
 */
static void
session_delay_cb(evutil_socket_t fd, short events, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)events;
	if (s->freeing) {
		session_free(s);
		return;
	}
	if (s->pause_fn != NULL) {
		void (*fn)(struct session *) = s->pause_fn;

		s->pause_fn = NULL;
		fn(s);
	}
}

void
session_pause(struct session *s, uint64_t us, void (*fn)(struct session *))
{
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000),
	    .tv_usec = (suseconds_t)(us % 1000000) };

	s->waiting = 1;
	s->pause_fn = fn;
	/* evtimer_add() counts from the time cached when the loop woke */
	event_base_update_cache_time(s->srv->base);
	evtimer_add(s->delay, &tv);
}

void
session_close(struct session *s, const char *reason, bool flush)
{
	if (s->freeing)
		return;
	if (!s->closing) {
		s->closing = 1;
		s->reason = reason;
		cmd_cont_free(s);
		cmd_auth_closing(s);
		bufferevent_disable(s->bev, EV_READ);
		evtimer_del(s->timer);
		evtimer_del(s->delay);
		s->pause_fn = NULL;
		if (flush && session_output_len(s) > 0) {
			/*
			 * session_write_cb() or session_flush() frees us
			 * once the output is out.
			 */
			bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
			if (!s->write_armed)
				session_queue_flush(s);
			return;
		}
	} else if (flush)
		return;		/* already flushing */
	else
		s->reason = reason;	/* a flushing close cut short */
	session_free_later(s);
}

void
session_shutdown(struct session *s)
{
	if (s->closing)
		return;
	if (s->waiting || s->cont != NULL) {
		session_close(s, "shutdown", false);
		return;
	}
	session_reply(s, "-ERR [SYS/TEMP] Server shutting down.");
	session_close(s, "shutdown", true);
}

void
session_destroy(struct session *s)
{
	session_free(s);
}

static void
session_free(struct session *s)
{
	struct server	*srv = s->srv;
	char		 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];

	cmd_cont_free(s);
	cmd_mail_cleanup(s);	/* a running lookup takes s->md over */
	cmd_auth_cleanup(s);
	if (s->flush_queued) {
		TAILQ_REMOVE(&srv->flushq, s, flush_entry);
		s->flush_queued = 0;
	}
	session_log(s, "event=disconnect rip=%s reason=%s user=%s state=%s "
	    "retr=%u/%llu top=%u/%llu deleted=%u duration_ms=%llu", s->rip,
	    s->reason, s->user != NULL ? log_quote(quser, sizeof(quser),
	    s->user) : "-", state_name(s->state), s->n_retr,
	    (unsigned long long)s->retr_bytes, s->n_top,
	    (unsigned long long)s->top_bytes, s->n_dele_done,
	    (unsigned long long)(mono_ms() - s->started_ms));
	bufferevent_free(s->bev);
	TAILQ_REMOVE(&srv->sessions, s, entry);
	srv->n_sessions--;
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->delay != NULL)
		event_free(s->delay);
	free(s->user);
	free(s->apop_ts);
	free(s);
	server_session_gone(srv);
}
