/*
 * server: the process-wide state: the event base, the listeners, the
 * worker pool, the live sessions, and graceful shutdown.
 */
#ifndef EVPOP3D_SERVER_H
#define EVPOP3D_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct auth_db;
struct cfg;
struct event;
struct event_base;
struct evconnlistener;
struct session;
struct worker_pool;

TAILQ_HEAD(session_list, session);

struct server_stats {
	uint64_t	connections;	/* accepted */
	uint64_t	refused;	/* over max_connections */
	uint64_t	logins;
	uint64_t	login_failures;
};

struct server {
	struct event_base	*base;
	const struct cfg	*cfg;
	struct auth_db		*auth;
	struct worker_pool	*workers;

	struct evconnlistener	**listeners;
	size_t			 n_listeners;

	struct session_list	 sessions;
	size_t			 n_sessions;
	/*
	 * Sessions with output queued in this loop iteration. One event
	 * writes them all before the loop polls again (Redis's
	 * beforeSleep): a reply costs one write and no epoll changes.
	 */
	struct session_list	 flushq;
	struct event		*flush_ev;
	uint64_t		 next_session_id;

	struct event		*stop_timer;	/* shutdown deadline */
	bool			 stopping;
	struct server_stats	 stats;
};

/*
 * Set up srv on base with cfg: open the passwd-file, start the worker
 * pool, bind every listener (logging "event=listen addr=..." with the real
 * port). Returns 0, or -1 after logging why. cfg must outlive srv.
 */
int	server_init(struct server *srv, struct event_base *base,
	    const struct cfg *cfg);

/*
 * Graceful stop: close the listeners, tell idle sessions "-ERR [SYS/TEMP]
 * server shutting down" and close every session without UPDATE (RFC 1939
 * section 6). The loop exits when the last session is gone, or after a few
 * seconds at the latest.
 */
void	server_stop(struct server *srv);

/* Free what server_init() made; call after the loop has exited. */
void	server_free(struct server *srv);

/* Called by session.c when a session is freed. */
void	server_session_gone(struct server *srv);

#endif
