/*
 * server: the listeners: accepting connections, the limits on them, and
 * stopping. Each accepted connection becomes a session (session.h) on a
 * plain socket, or a TLS one on a listen_tls listener (tls.h); net knows
 * nothing of what the sessions speak.
 */
#ifndef EVPOP3D_SERVER_H
#define EVPOP3D_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config.h"
#include "lib/metric.h"
#include "lib/ratelimit.h"

/* listen(2)'s backlog for the sockets we bind (server.c). */
#define SERVER_LISTEN_BACKLOG	4096

struct cfg;
struct event;
struct event_base;
struct evconnlistener;
struct iptable;
struct session_set;
struct tls_server;

struct server_stats {
	uint64_t	connections;	/* accepted */
	uint64_t	refused;	/* over max_connections */
	uint64_t	refused_per_ip;	/* over max_connections_per_ip */
	uint64_t	refused_nofd;	/* no descriptor: refused via the reserve */
	uint64_t	accept_errors;	/* failed accept() calls */
	uint64_t	refused_proxy;	/* a bad, slow or missing PROXY header */
};

/*
 * An event that can repeat thousands of times a second, logged at most
 * once a second with its count (ratelimit.h); the timer logs a count
 * left over when no event follows.
 */
struct server_ratelog {
	struct ratelimit	 rl;
	struct event		*flush;
	const char		*what;		/* "event=refused reason=..." */
	struct sockaddr_storage	 last_addr;	/* ratelog_hit_addr(): "rip=" */
	int			 errnum;	/* the last event's errno, or 0 */
	const char		*note;		/* the last event's " error=" */
	const char		*addr_key;	/* "rip" unless set */
};

/*
 * A connection from a [server] proxy_protocol_from address before its
 * PROXY header is complete (server.c): no session exists yet.
 */
struct proxy_conn;
TAILQ_HEAD(proxy_conns, proxy_conn);

/*
 * Accepting under descriptor pressure (server.c, accept_error_cb()):
 * on EMFILE and the like every listener is disabled for a pause that
 * doubles from 100 ms to 1 s while the failures go on; a second without
 * a failure after the listeners are back ends the episode.
 */
enum accept_state {
	ACCEPT_ON,		/* listening, no failure lately */
	ACCEPT_PAUSED,		/* listeners disabled until the timer */
	ACCEPT_PROBING,		/* listening again; a failure pauses longer */
};

struct accept_guard {
	enum accept_state	 state;
	struct event		*timer;		/* ends a pause or a probation */
	int			 reserve_fd;	/* given up to refuse on EMFILE */
	unsigned		 pause_ms;	/* the current pause */
	uint64_t		 failed;	/* since the last pause line */
	/* The episode so far, for its last line. */
	unsigned		 pauses;
	uint64_t		 ep_failed;
	uint64_t		 ep_refused;	/* through the reserve */
	uint64_t		 since_ms;	/* the first pause */
	uint64_t		 probe_ms;	/* the listeners' last return */
};

/* One listening socket. */
struct listener {
	struct server		*srv;
	struct evconnlistener	*lev;
	struct cfg_listen	 conf;		/* as configured; inherited: 0 */
	struct sockaddr_storage	 bound;		/* as bound (port 0: the real) */
	socklen_t		 boundlen;
	char			 text[80];	/* the bound address */
	bool			 tls;		/* implicit TLS (listen_tls) */
	unsigned		 kept:1;	/* reconfiguring: still wanted */
	unsigned		 fresh:1;	/* reconfiguring: bound by it */
};

struct server {
	struct event_base	*base;
	const struct cfg	*cfg;
	struct session_set	*sessions;

	struct listener		**listeners;
	size_t			 n_listeners;
	bool			 inherited;	/* socket activation */
	struct tls_server	*tls;		/* NULL: no TLS configured */

	bool			 stopping;
	struct server_stats	 stats;

	struct accept_guard	 accept;
	struct server_ratelog	 log_busy;	/* refused: max_connections */
	struct server_ratelog	 log_nofd;	/* refused: no descriptor */
	struct server_ratelog	 log_accept;	/* one connection's accept error */
	struct server_ratelog	 log_per_ip;	/* refused: per address */
	struct server_ratelog	 log_proxy;	/* refused: PROXY header */

	/* Connections reading their PROXY header; count toward
	 * max_connections. */
	struct proxy_conns	 proxy_pending;
	size_t			 n_proxy_pending;

	/*
	 * Connections per client address (IPv6: per /64), for [auth]
	 * max_connections_per_ip; exempt addresses are not counted. Each
	 * counted session takes a reference, dropped when it is freed. The
	 * table is every worker's (lib/shlimits.h).
	 */
	struct iptable		*per_ip;

	/* Sessions ended, by reason (server_metrics_write()). */
	struct metric_tally	 ended;
};

/*
 * Set up srv on base with cfg: open the reserve descriptor and take the
 * listening sockets systemd passed (socket activation: FileDescriptorName
 * pop3 for plain POP3, pop3s for implicit TLS), or else bind every
 * listener (logging "event=listen addr=..." with the real port, and
 * "tls=implicit" for a listen_tls one, whose connections start with a TLS
 * handshake through tls); accepted connections become sessions of set.
 * Returns 0, or -1 after logging why at level error; server_free() is
 * then still to be called. cfg, set and tls must outlive srv, and
 * shlimits_init() must have run (the per-address table, the connection
 * counts).
 */
int	server_init(struct server *srv, struct event_base *base,
	    const struct cfg *cfg, struct session_set *set,
	    struct tls_server *tls);

/* A listening socket handed over (server_init_given()). */
struct server_socket {
	int	fd;		/* listening already */
	bool	tls;		/* implicit TLS (listen_tls, pop3s) */
};

/*
 * Socket activation (sd_listen_fds(3)): the listening sockets systemd
 * passed, told apart by FileDescriptorName=: "pop3" (or none given,
 * "unknown") is plain POP3, "pop3s" implicit TLS (refused unless tls).
 * Each is made non-blocking and close-on-exec. Returns their count with
 * a malloc'd array in *socks_r (0: not activated), or -1 after logging
 * why.
 */
ssize_t	server_systemd_sockets(bool tls, struct server_socket **socks_r);

/*
 * server_init() on the listening sockets socks[0..n) instead: a [server]
 * workers process serves those its supervisor bound (net/supervise.h).
 * The descriptors are srv's from now on (closed by it, even on -1). The
 * listeners stay as given across server_reconfigure(), as systemd's do.
 */
int	server_init_given(struct server *srv, struct event_base *base,
	    const struct cfg *cfg, struct session_set *set,
	    struct tls_server *tls, const struct server_socket *socks,
	    size_t n);

/*
 * A reload: listen as cfg says (listeners whose address stays are kept,
 * with the connections waiting on them; new ones are bound, the others
 * closed), and take cfg's limits and tls for the connections accepted
 * from now on. Sockets from systemd stay as they are. Returns 0, or -1
 * after logging why at level error, with nothing changed. cfg and tls
 * must outlive srv or the next reconfiguration.
 */
int	server_reconfigure(struct server *srv, const struct cfg *cfg,
	    struct tls_server *tls);

/*
 * Graceful stop: close the listeners and drain the sessions
 * (session_set_drain()): the loop exits when the last session is gone,
 * or after [server] shutdown_timeout at the latest. A second call cuts
 * the drain short (session_set_cut()).
 */
void	server_stop(struct server *srv);

/* Log the counters: at info level (SIGUSR1), or debug (at exit). */
void	server_stats_log(const struct server *srv, bool debug);

/*
 * The listeners' metrics into w (lib/metric.h): connections open,
 * accepted and refused by reason, accept errors, sessions ended by
 * reason. README, Operations, Metrics lists them.
 */
void	server_metrics_write(const struct server *srv,
	    struct metric_writer *w);

/* Free what server_init() made; call after the loop has exited. */
void	server_free(struct server *srv);

#endif
