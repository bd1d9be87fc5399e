/*
 * session_int: the session's and the set's insides, shared by
 * session.c (one connection) and set.c (all of them). Private to
 * src/session/.
 */
#ifndef EVPOP3D_SESSION_INT_H
#define EVPOP3D_SESSION_INT_H

#include <sys/queue.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "lib/iptable.h"
#include "lib/ptimer.h"
#include "session/linebuf.h"
#include "session/session.h"

struct event;

TAILQ_HEAD(session_list, session);

/* Empty evbuffers a set keeps for its sessions' next replies. */
#define SESSION_SPARE_MAX	16

struct session_set {
	struct event_base	*base;
	struct session_params	 params;
	struct session_list	 sessions;
	size_t			 n_sessions;
	/*
	 * Sessions with output queued in this loop iteration. One event
	 * writes them all before the loop polls again (Redis's
	 * beforeSleep): a reply costs one write and no epoll changes. The
	 * same event frees the closed ones queued (session_free_later()),
	 * outside any callback that still uses them.
	 */
	struct session_list	 flushq;
	struct event		*flush_ev;
	uint64_t		 next_id;
	uint64_t		 id_step;	/* workers: ids of one stay theirs */
	struct event		*drain_timer;	/* the drain's deadline */
	/*
	 * The sessions' timers: a deadline or the idle limit each, and a
	 * failed login's pause, on one precise set (no struct event per
	 * session). Heap room for both of every session is made when the
	 * session is, so the heap never grows when one is armed (a pause
	 * itself is allocated per pause).
	 */
	struct ptimer_set	*timers;
	unsigned		 draining:1;
	uint64_t		 bytes_out;	/* sent by every session */
	struct evbuffer		*spare[SESSION_SPARE_MAX]; /* empty */
	unsigned		 n_spare;
	/*
	 * A plain socket's read, taken in place (session_sock_read_cb()):
	 * flat_owner's lines come from flat until it is done with them.
	 */
	struct session		*flat_owner;
	const char		*flat;
	size_t			 flat_len;
	char			 rbuf[16 * 1024];	/* IN_HIWAT */
};

/*
 * A session's transport is one of two:
 * - a plain socket (bev NULL): the session's own I/O. One read(2) into
 *   the set's rbuf (a socket bufferevent asks FIONREAD first, one more
 *   system call per command), the lines taken there; replies go out with one
 *   writev from the set's flush event. The input and output buffers and
 *   the write event exist only while they hold something: an idle
 *   session is the struct, its read event and its timer.
 * - a bufferevent (TLS, or a pair in the tests): libevent's, with the
 *   watermarks and callbacks of session_setup_bev().
 */
struct session {
	TAILQ_ENTRY(session)	 entry;
	TAILQ_ENTRY(session)	 flush_entry;	/* on set->flushq */
	struct session_set	*set;
	uint64_t		 id;
	struct bufferevent	*bev;		/* NULL: a plain socket */
	int			 fd;		/* the socket; -1: none (a pair) */
	struct event		*rev;		/* plain: readable; in the
						   same allocation */
	struct event		*wev;		/* plain: writable, once needed */
	struct evbuffer		*in, *out;	/* plain: while not empty */
	void			*ctx;		/* the protocol's */
	struct ptimer		 timer;		/* deadline or idle limit */
	char			 peer[INET6_ADDRSTRLEN + 16];	/* addr:port */
	union {
		struct sockaddr		sa;
		struct sockaddr_in	sin;
		struct sockaddr_in6	sin6;
	}			 peer_sa;	/* family 0: unknown */
	void			(*free_fn)(struct session *, void *);
	void			*free_arg;	/* session_on_free() */

	struct linebuf		 lb;
	struct session_cont	*cont;		/* long reply in progress */
	struct session_pause	*pause;		/* while paused */

	const char		*deadline_reason;
	uint64_t		 idle_ms;
	uint64_t		 active_ms;	/* last command (idle limit) */
	uint64_t		 started_ms;
	const char		*reason;	/* why it closed */
	struct session_summary	*summary;	/* proto->gone()'s, with
						   the user in the same block */
	uint64_t		 bytes_in;	/* octets read (after TLS) */
	uint64_t		 bytes_out;	/* octets sent (before TLS) */

	unsigned		 held:1;	/* session_hold() */
	unsigned		 closing:1;
	unsigned		 eof:1;		/* peer closed its side */
	unsigned		 freeing:1;
	unsigned		 flush_queued:1; /* on set->flushq */
	unsigned		 write_armed:1;	/* waiting for the socket to
						   take more */
	unsigned		 read_paused:1;	/* input full: not read */
	unsigned		 secure:1;	/* TLS handshake done */
	unsigned		 tls_pending:1;	/* STLS: wrap once "+OK" is out */
	unsigned		 handshake:1;	/* TLS handshake in progress */
	unsigned		 started:1;	/* proto->start() was called */
	unsigned		 idle_timer:1;	/* timer: the idle limit (else
						   the deadline) */
	uint8_t			 peer_keylen;	/* 0: no per-address limits */
	unsigned char		 peer_key[IPTABLE_ADDR_MAX]; /* net's */
};

/* A pause in progress (session_pause()): made for it, freed after. */
struct session_pause {
	struct ptimer		 t;		/* session_pause_cb() finds us */
	struct session		*s;
	void			(*fn)(struct session *);
};

/*
 * May the session take the next command? Not while closing, nor while a
 * command is held (a worker job, a pause) or a long reply is in
 * progress, nor between STLS and the end of its handshake.
 */
static inline int
session_takes_input(const struct session *s)
{
	return !s->closing && !s->held && s->cont == NULL &&
	    !s->tls_pending && !s->handshake;
}

/* A new session joins the set: it gets its id. */
static inline void
session_set_add(struct session_set *set, struct session *s)
{
	s->id = set->next_id;
	set->next_id += set->id_step;
	TAILQ_INSERT_TAIL(&set->sessions, s, entry);
	set->n_sessions++;
}

/* A freed session leaves; the last one ends a drain (session_set_drain()). */
static inline void
session_set_remove(struct session_set *set, struct session *s)
{
	if (s->flush_queued) {
		TAILQ_REMOVE(&set->flushq, s, flush_entry);
		s->flush_queued = 0;
	}
	TAILQ_REMOVE(&set->sessions, s, entry);
	set->n_sessions--;
	if (set->draining && set->n_sessions == 0)
		event_base_loopexit(set->base, NULL);
}

/* Have the set's flush event write s's output before the next poll. */
static inline void
session_set_queue_flush(struct session_set *set, struct session *s)
{
	if (s->flush_queued || s->freeing)
		return;
	s->flush_queued = 1;
	TAILQ_INSERT_TAIL(&set->flushq, s, flush_entry);
	event_active(set->flush_ev, EV_TIMEOUT, 0);
}

/*
 * Have the set's flush event free s (s->freeing: a freeing session
 * writes no more, so where it is queued it is freed instead).
 */
static inline void
session_set_queue_free(struct session_set *set, struct session *s)
{
	if (s->flush_queued)
		return;
	s->flush_queued = 1;
	TAILQ_INSERT_TAIL(&set->flushq, s, flush_entry);
	event_active(set->flush_ev, EV_TIMEOUT, 0);
}

/* session.c, for set.c */

void	session_flush(struct session *s);
/* The stop path: say the protocol's bye if idle, and close. */
void	session_shutdown(struct session *s);
/* Free at once (outside callbacks using s): the set's free and deadline. */
void	session_destroy(struct session *s);

#endif
