/*
 * fake_session: the session API (session/session.h) as a recording
 * double; see fake_session.h. Its logic follows src/session/session.c
 * where the protocol can tell the difference: the order of the end (the
 * reply in progress freed, then gone(), then the output flushed or
 * dropped), what holds input, when an idle limit counts as reached.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/log.h"
#include "fake_session.h"

unsigned long	fake_session_calls;

static uint64_t	fake_next_id = 1;

static void	violation(const struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * A breach of the contract: count it, keep the first for the test to
 * show, and say it at once. The struct is the fake's: the const of the
 * API's getters is cast away for the record.
 */
static void
violation(const struct session *cs, const char *fmt, ...)
{
	struct session	*s = (struct session *)cs;
	char		 buf[sizeof(s->violation)];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fake_session: sess=%llu violation: %s\n",
	    (unsigned long long)s->id, buf);
	if (s->n_violations++ == 0)
		memcpy(s->violation, buf, sizeof(buf));
}

/* Every API call: counted, on the loop thread, never after gone(). */
static void
api(const struct session *s, const char *fn)
{
	fake_session_calls++;
	if (!pthread_equal(pthread_self(), s->loop))
		violation(s, "%s() off the loop thread", fn);
	if (s->gone)
		violation(s, "%s() after gone()", fn);
}

/* The client does not read while a manual reply is in progress. */
static void
fake_send(struct session *s)
{
	if (s->cont == NULL || !s->cont_manual)
		evbuffer_add_buffer(s->transcript, s->out);
}

static bool
takes_input(const struct session *s)
{
	return !s->closing && !s->held && s->cont == NULL;
}

static void
line_free(struct fake_line *l)
{
	/* It may have held a password. */
	explicit_bzero(l->data, l->len);
	free(l);
}

static void	fake_close(struct session *, const char *, bool);

/*
 * Take the queued lines while the session takes input; a client that
 * closed its side is closed once everything it sent is answered.
 */
static void
fake_process(struct session *s)
{
	struct fake_line *l;

	while (takes_input(s) && (l = TAILQ_FIRST(&s->input)) != NULL) {
		TAILQ_REMOVE(&s->input, l, entry);
		s->n_input--;
		s->n_taken++;
		if (l->overlong)
			s->proto->overlong(s);
		else
			s->proto->input(s, l->data, l->len);
		line_free(l);
	}
	if (s->eof && takes_input(s))
		fake_close(s, "disconnected", true);
}

/*
 * Run the reply in progress once. A finished one is freed, and the
 * session closed if it asked; the run's answer is returned.
 */
static enum session_cont_status
fake_run_cont(struct session *s)
{
	struct session_cont		*c = s->cont;
	enum session_cont_status	 r;
	const char			*reason;
	size_t				 before, after;

	before = evbuffer_get_length(s->out);
	s->in_run = true;
	s->n_cont_runs++;
	r = c->run(s, c);
	s->in_run = false;
	after = evbuffer_get_length(s->out);
	if (after < before)
		violation(s, "run() took %zu octets of output away",
		    before - after);
	if (r == SESSION_CONT_MORE) {
		if (after <= before)
			violation(s, "run() asked for more without output");
		return r;
	}
	reason = c->close_reason;
	c->free(s, c);
	s->cont = NULL;
	if (r == SESSION_CONT_CLOSE)
		fake_close(s, reason != NULL ? reason : "closed", true);
	return r;
}

/* The protocol's end: the reply in progress, then gone(), once. */
static void
fake_end_proto(struct session *s)
{
	struct session_cont	*c = s->cont;
	struct fake_line	*l;

	s->closing = true;
	if (c != NULL) {
		c->free(s, c);
		s->cont = NULL;
	}
	s->n_gone++;
	s->proto->gone(s);
	s->gone = true;
	s->ctx = NULL;
	/* No input will come. */
	while ((l = TAILQ_FIRST(&s->input)) != NULL) {
		TAILQ_REMOVE(&s->input, l, entry);
		line_free(l);
	}
	s->n_input = 0;
	evtimer_del(s->pause_ev);
	s->pause_fn = NULL;
	s->timer = FAKE_TIMER_NONE;
}

static void
fake_close(struct session *s, const char *reason, bool flush)
{
	s->n_close++;
	if (s->closing) {
		/* A flushing close is over at once here: nothing to cut. */
		if (!flush)
			s->reason = reason;
		return;
	}
	s->reason = reason;
	s->flushed = flush;
	fake_end_proto(s);
	if (flush)
		evbuffer_add_buffer(s->transcript, s->out);
	else
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
}

/* Output queued from a loop callback is sent before the loop polls. */
static void
fake_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	fake_send(arg);
}

static void
fake_run_pause(struct session *s)
{
	void		(*fn)(struct session *) = s->pause_fn;
	unsigned	 resumes = s->n_resume, closes = s->n_close;
	unsigned	 holds = s->n_hold;

	s->pause_fn = NULL;
	fn(s);
	if (s->n_resume == resumes && s->n_close == closes &&
	    s->n_hold == holds)
		violation(s, "a pause callback ended without resume, close "
		    "or hold");
	fake_send(s);
}

static void
fake_pause_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	fake_run_pause(arg);
}

/* ------------------------------------------------------ the test's side */

struct session *
fake_session_new(struct event_base *base, const struct session_proto *proto,
    void *arg)
{
	struct session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		abort();
	s->base = base;
	s->proto = proto;
	s->id = fake_next_id++;
	snprintf(s->peer, sizeof(s->peer), "192.0.2.1:%u",
	    40000 + (unsigned)(s->id % 20000));
	s->loop = pthread_self();
	TAILQ_INIT(&s->input);
	s->out = evbuffer_new();
	s->transcript = evbuffer_new();
	s->log = evbuffer_new();
	s->flush_ev = event_new(base, -1, 0, fake_flush_cb, s);
	s->pause_ev = evtimer_new(base, fake_pause_cb, s);
	if (s->out == NULL || s->transcript == NULL || s->log == NULL ||
	    s->flush_ev == NULL || s->pause_ev == NULL)
		abort();
	if (proto->start(s, arg) == -1)
		fake_close(s, "out-of-memory", false);
	fake_send(s);
	return s;
}

void
fake_session_free(struct session *s)
{
	struct fake_line *l;

	if (s == NULL)
		return;
	if (!s->closing)
		fake_end_proto(s);
	while ((l = TAILQ_FIRST(&s->input)) != NULL) {
		TAILQ_REMOVE(&s->input, l, entry);
		line_free(l);
	}
	event_free(s->flush_ev);
	event_free(s->pause_ev);
	evbuffer_free(s->out);
	evbuffer_free(s->transcript);
	evbuffer_free(s->log);
	free(s->summary);
	free(s);
}

static void
fake_queue(struct session *s, const void *line, size_t len, bool overlong)
{
	struct fake_line *l;

	if ((l = calloc(1, sizeof(*l) + len + 1)) == NULL)
		abort();
	l->overlong = overlong;
	l->len = len;
	memcpy(l->data, line, len);
	if (s->closing) {		/* nobody reads any more */
		line_free(l);
		return;
	}
	TAILQ_INSERT_TAIL(&s->input, l, entry);
	s->n_input++;
	fake_process(s);
	fake_send(s);
}

void
fake_session_input(struct session *s, const void *line, size_t len)
{
	fake_queue(s, line, len, false);
}

void
fake_session_send(struct session *s, const char *line)
{
	fake_queue(s, line, strlen(line), false);
}

void
fake_session_send_overlong(struct session *s)
{
	fake_queue(s, "", 0, true);
}

void
fake_session_eof(struct session *s)
{
	s->eof = true;
	fake_process(s);
	fake_send(s);
}

int
fake_session_read_line(struct session *s, char *buf, size_t len)
{
	struct evbuffer_ptr	p;
	size_t			n;

	fake_send(s);
	p = evbuffer_search(s->transcript, "\r\n", 2, NULL);
	if (p.pos == -1)
		return 0;
	n = (size_t)p.pos < len - 1 ? (size_t)p.pos : len - 1;
	evbuffer_copyout(s->transcript, buf, n);
	buf[n] = '\0';
	evbuffer_drain(s->transcript, (size_t)p.pos + 2);
	return 1;
}

size_t
fake_session_unread(const struct session *s)
{
	return evbuffer_get_length(s->transcript);
}

enum session_cont_status
fake_session_step(struct session *s)
{
	enum session_cont_status r;

	if (s->cont == NULL) {
		violation(s, "a step with no reply in progress");
		return SESSION_CONT_DONE;
	}
	evbuffer_add_buffer(s->transcript, s->out);	/* the client reads */
	if ((r = fake_run_cont(s)) != SESSION_CONT_MORE) {
		if (!s->held)
			fake_process(s);
		fake_send(s);
	}
	return r;
}

void
fake_session_fire_pause(struct session *s)
{
	if (s->pause_fn == NULL) {
		violation(s, "fired with no pause pending");
		return;
	}
	evtimer_del(s->pause_ev);
	fake_run_pause(s);
}

void
fake_session_expire(struct session *s)
{
	if (s->closing)
		return;			/* the timers went with the close */
	switch (s->timer) {
	case FAKE_TIMER_NONE:
		violation(s, "expired with no timer set");
		return;
	case FAKE_TIMER_DEADLINE:
		fake_close(s, s->deadline_reason, false);
		return;
	case FAKE_TIMER_IDLE:
		/* A reply being sent or a command waiting is activity. */
		if (s->cont != NULL || evbuffer_get_length(s->out) > 0 ||
		    s->held)
			return;
		/* RFC 1939 section 3: close without a response. */
		fake_close(s, "idle-timeout", false);
		return;
	}
}

const char *
fake_session_violation(const struct session *s)
{
	return s->n_violations > 0 ? s->violation : NULL;
}

bool
fake_session_logged(const struct session *s, const char *needle)
{
	struct evbuffer_ptr p;

	p = evbuffer_search(s->log, needle, strlen(needle), NULL);
	return p.pos != -1;
}

/* ---------------------------------------------------- the session API */

void
session_set_ctx(struct session *s, void *ctx)
{
	api(s, "session_set_ctx");
	s->ctx = ctx;
}

void *
session_ctx(const struct session *s)
{
	api(s, "session_ctx");
	return s->ctx;
}

uint64_t
session_id(const struct session *s)
{
	api(s, "session_id");
	return s->id;
}

const char *
session_peer(const struct session *s)
{
	api(s, "session_peer");
	return s->peer;
}

/* No address: the protocol's per-address limits leave fake peers alone. */
const struct sockaddr *
session_peer_addr(const struct session *s)
{
	static const struct sockaddr none = { .sa_family = AF_UNSPEC };

	api(s, "session_peer_addr");
	return &none;
}

/* No address, so no per-address limits: as net does for an exempt one. */
const unsigned char *
session_peer_key(const struct session *s, size_t *len)
{
	static const unsigned char none[1];

	api(s, "session_peer_key");
	*len = 0;
	return none;
}

static void
fake_write(struct session *s, const void *buf, size_t len)
{
	if (s->closing) {
		/* Dropped, as the real one does; but gone() was told. */
		violation(s, "%zu octets written after session_close(): "
		    "%.*s", len, (int)(len < 40 ? len : 40), (const char *)buf);
		return;
	}
	evbuffer_add(s->out, buf, len);
	event_active(s->flush_ev, EV_TIMEOUT, 0);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;
	int	n;

	api(s, "session_reply");
	s->n_reply++;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	else if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;	/* RFC 1939 section 3: 512 with CRLF */
	buf[n++] = '\r';
	buf[n++] = '\n';
	fake_write(s, buf, (size_t)n);
}

void
session_write(struct session *s, const void *buf, size_t len)
{
	api(s, "session_write");
	s->n_write++;
	fake_write(s, buf, len);
}

struct evbuffer *
session_output(struct session *s)
{
	api(s, "session_output");
	if (!s->in_run)
		violation(s, "session_output() outside run()");
	return s->out;
}

size_t
session_output_len(const struct session *s)
{
	api(s, "session_output_len");
	return evbuffer_get_length(s->out);
}

void
session_start_cont(struct session *s, struct session_cont *c)
{
	api(s, "session_start_cont");
	if (s->closing) {
		c->free(s, c);
		return;
	}
	if (s->cont != NULL) {
		violation(s, "a reply started over one in progress");
		c->free(s, c);
		return;
	}
	s->cont = c;
	s->n_conts++;
	if (fake_run_cont(s) != SESSION_CONT_MORE || s->cont_manual)
		return;
	/* The client reads what is queued; run again until done. */
	for (;;) {
		unsigned before = s->n_violations;

		evbuffer_add_buffer(s->transcript, s->out);
		if (fake_run_cont(s) != SESSION_CONT_MORE ||
		    s->n_violations != before)
			return;
	}
}

void
session_hold(struct session *s)
{
	api(s, "session_hold");
	s->n_hold++;
	s->held = true;
}

void
session_resume(struct session *s)
{
	api(s, "session_resume");
	s->n_resume++;
	s->held = false;
	fake_process(s);
}

void
session_pause(struct session *s, uint64_t us, void (*fn)(struct session *))
{
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000),
	    .tv_usec = (suseconds_t)(us % 1000000) };

	api(s, "session_pause");
	if (s->closing) {
		violation(s, "a pause after session_close()");
		return;
	}
	if (s->pause_fn != NULL)
		violation(s, "a pause over a pending one");
	s->n_pause++;
	s->held = true;
	s->pause_fn = fn;
	s->pause_us = us;
	if (!s->pause_manual)
		evtimer_add(s->pause_ev, &tv);
}

void
session_set_deadline(struct session *s, uint64_t ms, const char *reason)
{
	api(s, "session_set_deadline");
	s->n_deadline++;
	s->timer = FAKE_TIMER_DEADLINE;
	s->deadline_ms = ms;
	s->deadline_reason = reason;
}

void
session_set_idle(struct session *s, uint64_t ms)
{
	api(s, "session_set_idle");
	s->n_idle++;
	s->timer = FAKE_TIMER_IDLE;
	s->idle_ms = ms;
}

void
session_touch(struct session *s)
{
	api(s, "session_touch");
	s->n_touch++;
}

void
session_close(struct session *s, const char *reason, bool flush)
{
	api(s, "session_close");
	fake_close(s, reason, flush);
}

bool
session_closing(const struct session *s)
{
	api(s, "session_closing");
	return s->closing;
}

/* Kept as the default logout_format writes it (the counters part). */
void
session_set_summary(struct session *s, const struct session_summary *sum)
{
	char	 quser[LOG_QUOTED_SIZE(1024)];

	api(s, "session_set_summary");
	free(s->summary);
	if (asprintf(&s->summary, "user=%s state=%s retr=%llu/%llu "
	    "top=%llu/%llu deleted=%llu", sum->user != NULL ?
	    log_quote(quser, sizeof(quser), sum->user) : "-", sum->state,
	    (unsigned long long)sum->retr_count,
	    (unsigned long long)sum->retr_bytes,
	    (unsigned long long)sum->top_count,
	    (unsigned long long)sum->top_bytes,
	    (unsigned long long)sum->deleted_count) == -1)
		abort();
}

static void	fake_log(const struct session *, bool, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

/* Kept as the log writes it (debug lines only when enabled), and logged. */
static void
fake_log(const struct session *s, bool debug, const char *fmt, va_list ap)
{
	char	line[1024];
	va_list	aq;

	if (!debug || log_debug_enabled()) {
		va_copy(aq, ap);
		vsnprintf(line, sizeof(line), fmt, aq);
		va_end(aq);
		evbuffer_add_printf(s->log, "%s %s\n", debug ? "debug" :
		    "info", line);
	}
	if (debug)
		log_vsession_debug(s->id, fmt, ap);
	else
		log_vsession(s->id, fmt, ap);
}

void
session_log(const struct session *s, const char *fmt, ...)
{
	va_list ap;

	api(s, "session_log");
	va_start(ap, fmt);
	fake_log(s, false, fmt, ap);
	va_end(ap);
}

void
session_debug(const struct session *s, const char *fmt, ...)
{
	va_list ap;

	api(s, "session_debug");
	va_start(ap, fmt);
	fake_log(s, true, fmt, ap);
	va_end(ap);
}

/*
 * TLS: the fake has none (no STLS offered, never secure), and its peer is
 * on loopback, so the default plaintext policy lets it log in. STLS and
 * the policy are tested over real TLS in test/integration/test_tls*.py.
 */
int
session_starttls(struct session *s)
{
	api(s, "session_starttls");
	return -1;
}

bool
session_tls_available(const struct session *s)
{
	api(s, "session_tls_available");
	return false;
}

bool
session_secure(const struct session *s)
{
	api(s, "session_secure");
	return false;
}

bool
session_peer_loopback(const struct session *s)
{
	api(s, "session_peer_loopback");
	return true;
}

void
session_warnx(const struct session *s, const char *fmt, ...)
{
	va_list ap;

	api(s, "session_warnx");
	va_start(ap, fmt);
	fake_log(s, false, fmt, ap);
	va_end(ap);
}
