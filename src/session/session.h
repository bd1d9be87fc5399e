/*
 * session: one POP3 connection: its state machine, line reading, output
 * with backpressure, timers, and teardown.
 *
 * The protocol state changes only through session_set_state(). Long
 * replies (RETR, TOP, LIST, UIDL) are continuations: a handler installs
 * s->cont and returns CMD_CONT; the continuation is called again each time
 * the output drains below the low watermark, and pipelined input waits
 * until it finishes (RFC 2449 section 6.6).
 *
 * A session is never freed from a callback that still uses it:
 * session_close() marks it, flushes the last reply, and frees it from a
 * deferred event.
 */
#ifndef EVPOP3D_SESSION_H
#define EVPOP3D_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "lib/evpop3d.h"
#include "session/linebuf.h"
#include "store/store.h"

struct bufferevent;
struct event;
struct session;
struct maildrop;
struct server;
struct store_reader;
struct login_job;
struct locate_job;

enum pop3_state {
	POP3_AUTHORIZATION	= 0x01,
	POP3_TRANSACTION	= 0x02,
	POP3_UPDATE		= 0x04,
};

enum cmd_result {
	CMD_OK,		/* done; take the next command */
	CMD_ERR,	/* done, the command failed (already answered) */
	CMD_BAD,	/* a bad command: counts towards max_bad_commands */
	CMD_CONT,	/* s->cont streams the rest of the reply */
	CMD_WAIT,	/* waiting for a worker or timer; input is held */
	CMD_CLOSE,	/* reply sent; close the connection */
};

/* A long reply in progress. */
struct session_cont {
	enum cmd_result		(*fn)(struct session *s);
	size_t			 next;		/* LIST/UIDL: next index */
	struct store_stream	 msg;		/* RETR/TOP (msg.r set) */
	uint64_t		*bytes_stat;	/* where to add octets sent */
	uint64_t		 counted;	/* octets added to it so far */
};

struct session {
	TAILQ_ENTRY(session)	 entry;
	TAILQ_ENTRY(session)	 flush_entry;	/* on srv->flushq */
	struct server		*srv;
	uint64_t		 id;
	struct bufferevent	*bev;
	struct event		*timer;		/* login or idle timeout */
	struct event		*delay;		/* failed-auth pause; deferred free */
	enum pop3_state		 state;
	char			 rip[INET6_ADDRSTRLEN + 16];	/* "addr:port" */

	struct linebuf		 lb;
	unsigned		 bad_cmds;
	unsigned		 auth_failures;
	char			*user;		/* after USER or at login */
	char			*apop_ts;	/* greeting timestamp, if APOP */

	unsigned		 have_user:1;	/* USER was accepted */
	unsigned		 sasl_wait:1;	/* next line is a SASL response */
	unsigned		 waiting:1;	/* CMD_WAIT in progress */
	unsigned		 closing:1;
	unsigned		 eof:1;		/* peer closed its side */
	unsigned		 freeing:1;
	unsigned		 flush_queued:1; /* on srv->flushq */
	unsigned		 write_armed:1;	/* EV_WRITE enabled on bev */

	struct session_cont	*cont;		/* long reply in progress */
	void			(*pause_fn)(struct session *);
	struct login_job	*job;		/* login or update in a worker */
	struct locate_job	*locate;	/* RETR/TOP: lookup in a worker */

	/* TRANSACTION */
	struct maildrop		*md;
	uint8_t			*deleted;	/* per message, 1 = DELE'd */
	size_t			 n_msgs;
	size_t			 n_deleted;
	uint64_t		 total_octets;	/* of undeleted messages */
	size_t			 last;		/* RFC 1460 LAST */

	/* For the summary line at disconnect. */
	const char		*reason;
	unsigned		 n_retr, n_top, n_dele_done;
	uint64_t		 retr_bytes, top_bytes;
	uint64_t		 started_ms;
	uint64_t		 active_ms;	/* last command (idle timer) */
};

/* Take over fd (accepted, non-blocking); sends the greeting. NULL on error. */
struct session	*session_new(struct server *srv, int fd,
		    const struct sockaddr *sa, socklen_t salen);

/* Change protocol state, tracing old->new at debug level. */
void		 session_set_state(struct session *s, enum pop3_state state);

/*
 * Queue a reply line; CRLF is added. RFC 1939 section 3: at most 512
 * octets with CRLF; longer formatted text is cut.
 */
void		 session_reply(struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* Append raw bytes to the output (multi-line bodies). */
void		 session_write(struct session *s, const void *buf, size_t len);
size_t		 session_output_len(const struct session *s);

/*
 * End the session for reason (a short word for the log). Pending output
 * is flushed first when flush is true. Never runs UPDATE.
 */
void		 session_close(struct session *s, const char *reason, bool flush);

/* Resume input after a CMD_WAIT has finished. */
void		 session_resume(struct session *s);

/* Note activity: restarts the idle timeout (RFC 1939 section 3). */
void		 session_touch(struct session *s);

/*
 * Run the long reply in progress once (s->cont must be set). When it is
 * finished, free it, close if it asked to, and return true.
 */
bool		 session_run_cont(struct session *s);

/*
 * The server's flush event (see struct server): writes the output of every
 * queued session directly to its socket; what does not fit is left to
 * the bufferevent's write event.
 */
void		 session_flush_cb(evutil_socket_t fd, short events, void *arg);

/*
 * Log a key=value line prefixed with this session's id: info level, or
 * debug. Put event= first and rip= before any value the client chose,
 * and quote those with log_quote() (log.h).
 */
void		 session_log(const struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		 session_debug(const struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * Hold input for us microseconds from now, then call fn (the failed-login
 * pause; an evtimer, never sleep()). fn must end with session_resume() or
 * close.
 */
void		 session_pause(struct session *s, uint64_t us,
		    void (*fn)(struct session *));

/* Shutdown path for server_stop(): say goodbye, close without UPDATE. */
void		 session_shutdown(struct session *s);
/* Free at once; only for server_stop()'s deadline, outside callbacks. */
void		 session_destroy(struct session *s);

#endif
