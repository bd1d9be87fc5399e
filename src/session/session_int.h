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
#include "session/linebuf.h"
#include "session/session.h"

struct event;
struct evbuffer_cb_entry;

TAILQ_HEAD(session_list, session);

struct session_set {
	struct event_base	*base;
	struct session_params	 params;
	struct session_list	 sessions;
	size_t			 n_sessions;
	/*
	 * Sessions with output queued in this loop iteration. One event
	 * writes them all before the loop polls again (Redis's
	 * beforeSleep): a reply costs one write and no epoll changes.
	 */
	struct session_list	 flushq;
	struct event		*flush_ev;
	uint64_t		 next_id;
	uint64_t		 id_step;	/* workers: ids of one stay theirs */
	struct event		*drain_timer;	/* the drain's deadline */
	unsigned		 draining:1;
	uint64_t		 bytes_out;	/* sent by every session */
};

enum session_timer {
	TIMER_DEADLINE,		/* close at the deadline */
	TIMER_IDLE,		/* close after idle_ms without a command */
};

struct session {
	TAILQ_ENTRY(session)	 entry;
	TAILQ_ENTRY(session)	 flush_entry;	/* on set->flushq */
	struct session_set	*set;
	uint64_t		 id;
	struct bufferevent	*bev;
	void			*ctx;		/* the protocol's */
	struct event		*timer;		/* deadline or idle limit */
	struct event		*delay;		/* pause; deferred free */
	struct evbuffer		*sent_out;	/* under a filter: the socket's */
	struct evbuffer_cb_entry *sent_cb;	/*   output, watched */
	char			 peer[INET6_ADDRSTRLEN + 16];	/* addr:port */
	struct sockaddr_storage	 peer_sa;	/* family 0: unknown */
	void			(*free_fn)(struct session *, void *);
	void			*free_arg;	/* session_on_free() */

	struct linebuf		 lb;
	struct session_cont	*cont;		/* long reply in progress */
	void			(*pause_fn)(struct session *);

	enum session_timer	 timer_kind;
	const char		*deadline_reason;
	uint64_t		 idle_ms;
	uint64_t		 active_ms;	/* last command (idle limit) */
	uint64_t		 started_ms;
	const char		*reason;	/* why it closed */
	struct session_summary	*summary;	/* proto->gone()'s, with
						   the user in the same block */
	uint64_t		 bytes_in;	/* octets read (after TLS) */
	uint64_t		 bytes_out;	/* octets sent (before TLS) */

	unsigned		 direct:1;	/* SESSION_SOCKET */
	unsigned		 held:1;	/* session_hold() */
	unsigned		 closing:1;
	unsigned		 eof:1;		/* peer closed its side */
	unsigned		 freeing:1;
	unsigned		 flush_queued:1; /* on set->flushq */
	unsigned		 write_armed:1;	/* EV_WRITE enabled on bev */
	unsigned		 read_paused:1;	/* input full: EV_READ off */
	unsigned		 secure:1;	/* TLS handshake done */
	unsigned		 tls_pending:1;	/* STLS: wrap once "+OK" is out */
	unsigned		 handshake:1;	/* TLS handshake in progress */
	unsigned		 started:1;	/* proto->start() was called */
	uint8_t			 peer_keylen;	/* 0: no per-address limits */
	unsigned char		 peer_key[IPTABLE_ADDR_MAX]; /* net's */
	const char		*tls_version;	/* for the disconnect line */
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

/* session.c, for set.c */
void	session_flush(struct session *s);
/* The stop path: say the protocol's bye if idle, and close. */
void	session_shutdown(struct session *s);
/* Free at once (outside callbacks using s): the set's free and deadline. */
void	session_destroy(struct session *s);

#endif
