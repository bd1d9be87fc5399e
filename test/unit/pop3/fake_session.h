/*
 * fake_session: a recording double of the session API (session/session.h)
 * for the protocol's unit tests. A test links fake_session.c in place of
 * the real session: it defines every function that src/pop3/ calls, so the
 * linker never pulls src/session/'s objects out of their library.
 *
 * A fake session has no connection. The test hands it lines from the
 * client; what the protocol writes is queued in a real evbuffer (the one
 * session_output() returns) and goes on to the transcript, what the client
 * got, as the real session would send it: at the end of the loop turn or
 * of the test's call that queued it, when the test reads a line, and at a
 * flushing close. Everything is recorded: hold and resume, pauses,
 * deadlines and idle limits, touches, continuations, the close with its
 * reason, gone(), the summary, the session's log lines.
 *
 * The fake keeps the real session's promises to the protocol, so that the
 * protocol's tests mean something: input is held while a command waits
 * (session_hold(), session_pause()) or a long reply is in progress, and
 * the lines that waited are taken on session_resume() or when the reply
 * ends; gone() is called once, with the reply in progress freed first;
 * nothing written after session_close() is sent; a peer that closed its
 * side is answered up to its last line, then closed ("disconnected").
 * It checks the protocol's promises in turn and records a breach as a
 * violation (fake_session_violation()): any call after gone() or off the
 * loop thread, a write after close, session_output() outside run(), a
 * run() that asks for more without queuing output or that takes output
 * away, a second reply or pause started over a pending one, a pause
 * callback that neither resumes nor closes.
 *
 * Continuations run to completion in session_start_cont() (the output
 * drained into the transcript between runs), or, with cont_manual set,
 * run once there and then only when the test steps them
 * (fake_session_step()): the client reads nothing meanwhile. A pause
 * fires from an evtimer of the given length on the event base, or, with
 * pause_manual set, when the test fires it (fake_session_fire_pause()).
 * Timers never fire by themselves: fake_session_expire() does what the
 * real one does when the deadline or idle limit is reached.
 *
 * Loop thread only. The struct is the test's to read; it sets
 * cont_manual and pause_manual, the fake everything else.
 */
#ifndef EVPOP3D_TEST_FAKE_SESSION_H
#define EVPOP3D_TEST_FAKE_SESSION_H

#include <sys/queue.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session/session.h"

struct event;
struct event_base;
struct evbuffer;

enum fake_timer {
	FAKE_TIMER_NONE,
	FAKE_TIMER_DEADLINE,	/* session_set_deadline() */
	FAKE_TIMER_IDLE,	/* session_set_idle() */
};

/* A line from the client, not yet taken by the protocol. */
struct fake_line {
	TAILQ_ENTRY(fake_line)	 entry;
	bool			 overlong;	/* proto->overlong() instead */
	size_t			 len;
	char			 data[];	/* len bytes, then a NUL */
};

TAILQ_HEAD(fake_lines, fake_line);

struct session {
	struct event_base	*base;
	const struct session_proto *proto;
	void			*ctx;
	uint64_t		 id;
	char			 peer[32];
	pthread_t		 loop;		/* the creating thread */

	/* Input and output. */
	struct fake_lines	 input;		/* not taken yet */
	size_t			 n_input;
	bool			 eof;		/* the client closed */
	struct evbuffer		*out;		/* queued */
	struct evbuffer		*transcript;	/* sent */
	struct event		*flush_ev;	/* end of the loop turn */
	unsigned		 n_reply, n_write;
	unsigned		 n_taken;	/* lines and overlongs */

	/* The reply in progress. */
	struct session_cont	*cont;
	bool			 cont_manual;	/* the test steps it */
	bool			 in_run;	/* inside cont->run() */
	unsigned		 n_conts, n_cont_runs;

	/* Holding input. */
	bool			 held;
	unsigned		 n_hold, n_resume;
	void			(*pause_fn)(struct session *);
	uint64_t		 pause_us;	/* the last pause */
	struct event		*pause_ev;
	bool			 pause_manual;	/* the test fires it */
	unsigned		 n_pause;

	/* Timeouts: the last values set. */
	enum fake_timer		 timer;
	uint64_t		 deadline_ms;
	const char		*deadline_reason;
	uint64_t		 idle_ms;
	unsigned		 n_deadline, n_idle, n_touch;

	/* The end. */
	bool			 closing;	/* session_close() called */
	bool			 gone;		/* proto->gone() returned */
	const char		*reason;
	bool			 flushed;	/* the first close flushed */
	unsigned		 n_close, n_gone;
	char			*summary;	/* session_set_summary() */

	/* "info ..." and "debug ..." lines, as the log writes them. */
	struct evbuffer		*log;

	unsigned		 n_violations;
	char			 violation[256];	/* the first */
};

/* Calls of the session API, any session: 0 unless the fake is linked. */
extern unsigned long	fake_session_calls;

/*
 * A new session of proto on base, the calling thread being the loop
 * thread; proto->start(s, arg) is called, and a -1 from it closes the
 * session ("out-of-memory", no flush) as session_new() does. Set
 * cont_manual and pause_manual before the first line if wanted. Aborts
 * if out of memory.
 */
struct session	*fake_session_new(struct event_base *base,
		    const struct session_proto *proto, void *arg);
/*
 * Free s; the protocol's end first if it is still open (gone() without
 * flushing, as when the set is freed). A pending pause is cancelled.
 */
void		 fake_session_free(struct session *s);

/*
 * Lines from the client: one line of len bytes without its terminator
 * (it may hold NUL bytes), a NUL-terminated one, and one that was longer
 * than the limit (proto->overlong() in its turn). Each queues the line,
 * takes what the session takes now, and sends the output.
 */
void		 fake_session_input(struct session *s, const void *line,
		    size_t len);
void		 fake_session_send(struct session *s, const char *line);
void		 fake_session_send_overlong(struct session *s);
/* The client closed its side: answer the lines queued, then close. */
void		 fake_session_eof(struct session *s);

/*
 * The next line the client got, without its CRLF, into buf (len bytes,
 * longer lines cut): 1, or 0 if no complete line has been sent yet.
 * Output queued is sent first, unless a manual reply is in progress.
 */
int		 fake_session_read_line(struct session *s, char *buf,
		    size_t len);
/* Octets sent and not read yet. */
size_t		 fake_session_unread(const struct session *s);

/*
 * Step the manual reply in progress: the client reads what is queued, and
 * run() is called once. When it is done the reply is freed (and the
 * session closed if it asked), and the waiting lines are taken. Returns
 * run()'s answer.
 */
enum session_cont_status fake_session_step(struct session *s);
/* Fire the pending pause now (pause_manual): its callback runs. */
void		 fake_session_fire_pause(struct session *s);
/*
 * The deadline or the idle limit is reached: close as the real timer does
 * (the deadline's reason, or "idle-timeout"; no response, no flush).
 */
void		 fake_session_expire(struct session *s);

/* The first breach of the session's contract, or NULL. */
const char	*fake_session_violation(const struct session *s);
/* Whether the log lines of s hold needle (NUL-terminated). */
bool		 fake_session_logged(const struct session *s,
		    const char *needle);

#endif
