/*
 * server: listeners, accept limits, and graceful shutdown.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "worker.h"

/* How long server_stop() waits for sessions to say goodbye. */
#define STOP_GRACE_SECONDS	5

#define LISTEN_BACKLOG	4096

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	static const char	 busy[] =
	    "-ERR [SYS/TEMP] Too many connections, try again later.\r\n";
	struct server		*srv = arg;

	(void)lev;
	srv->stats.connections++;
	if (srv->stopping ||
	    srv->n_sessions >= (size_t)srv->cfg->max_connections) {
		/* Shed the excess connection with a clear answer (RFC 3206). */
		srv->stats.refused++;
		ssize_t n = write(fd, busy, sizeof(busy) - 1);

		(void)n;	/* best effort: the socket is new and empty */
		evutil_closesocket(fd);
		return;
	}
	if (session_new(srv, fd, sa, (socklen_t)salen) == NULL)
		log_warn("event=accept-failed");
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)arg;
	/* EMFILE and friends: log and go on; libevent retries. */
	log_warn("event=accept-error fd=%d", evconnlistener_get_fd(lev));
}

static int
listen_one(struct server *srv, const struct cfg_listen *l)
{
	struct evconnlistener	*lev;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	char			 text[80];
	int			 fd, on = 1;

	if ((fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("listen %s: socket", l->text);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1) {
		log_warn("listen %s: bind", l->text);
		close(fd);
		return -1;
	}
	/*
	 * A deep accept queue (the kernel caps it at net.core.somaxconn):
	 * when a burst of connections overflows it, the client believes it
	 * is connected while the kernel drops its ACK, and the greeting
	 * waits for a SYN-ACK retransmission, up to half a minute later.
	 */
	lev = evconnlistener_new(srv->base, accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE, LISTEN_BACKLOG, fd);
	if (lev == NULL) {
		log_warn("listen %s: listen", l->text);
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(lev, accept_error_cb);
	srv->listeners[srv->n_listeners++] = lev;

	/* Log the real address: with port 0 the kernel picked one. */
	getsockname(fd, (struct sockaddr *)&ss, &sslen);
	if (ss.ss_family == AF_INET6) {
		char a[INET6_ADDRSTRLEN];
		const struct sockaddr_in6 *s6 = (const void *)&ss;

		evutil_inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(text, sizeof(text), "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		char a[INET_ADDRSTRLEN];
		const struct sockaddr_in *s4 = (const void *)&ss;

		evutil_inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(text, sizeof(text), "%s:%u", a, ntohs(s4->sin_port));
	}
	log_info("event=listen addr=%s", text);
	return 0;
}

int
server_init(struct server *srv, struct event_base *base, const struct cfg *cfg)
{
	char	err[512];
	size_t	i;

	memset(srv, 0, sizeof(*srv));
	srv->base = base;
	srv->cfg = cfg;
	TAILQ_INIT(&srv->sessions);
	TAILQ_INIT(&srv->flushq);
	if ((srv->flush_ev = event_new(base, -1, 0, session_flush_cb, srv))
	    == NULL) {
		log_warn("event_new");
		return -1;
	}
	/* Session ids: random start, so they are unique across restarts. */
	if (evutil_secure_rng_init() == 0)
		evutil_secure_rng_get_bytes(&srv->next_session_id,
		    sizeof(srv->next_session_id));
	if (srv->next_session_id == 0)
		srv->next_session_id = 1;	/* 0 is "no session" in logs */

	if (auth_db_open(cfg->passwd_file,
	    cfg->allow_shrink ? AUTH_DB_ALLOW_SHRINK : 0, &srv->auth, err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	if ((srv->workers = worker_pool_new(base, cfg->threads)) == NULL) {
		log_warn("worker pool");
		return -1;
	}
	if ((srv->listeners = calloc(cfg->n_listen, sizeof(*srv->listeners)))
	    == NULL) {
		log_warn("listeners");
		return -1;
	}
	for (i = 0; i < cfg->n_listen; i++)
		if (listen_one(srv, &cfg->listen[i]) == -1)
			return -1;
	return 0;
}

static void
stop_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct server	*srv = arg;
	struct session	*s;

	(void)fd;
	(void)events;
	log_warnx("event=shutdown-deadline sessions=%zu", srv->n_sessions);
	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		session_destroy(s);
	event_base_loopbreak(srv->base);
}

void
server_stop(struct server *srv)
{
	struct session	*s, *next;
	struct timeval	 tv = { .tv_sec = STOP_GRACE_SECONDS };
	size_t		 i;

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_info("event=shutdown sessions=%zu", srv->n_sessions);
	for (i = 0; i < srv->n_listeners; i++)
		evconnlistener_disable(srv->listeners[i]);
	/* RFC 1939 section 6: sessions that did not QUIT delete nothing. */
	for (s = TAILQ_FIRST(&srv->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		session_shutdown(s);
	}
	if (srv->n_sessions == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	srv->stop_timer = evtimer_new(srv->base, stop_deadline_cb, srv);
	if (srv->stop_timer != NULL)
		evtimer_add(srv->stop_timer, &tv);
}

void
server_session_gone(struct server *srv)
{
	if (srv->stopping && srv->n_sessions == 0)
		event_base_loopexit(srv->base, NULL);
}

void
server_free(struct server *srv)
{
	struct session	*s;
	size_t		 i;

	/*
	 * From here on maildrops are released in place: a done() callback
	 * of worker_pool_free()'s last drain must not submit a job to a
	 * pool whose threads are gone (cmd_auth_release()).
	 */
	srv->stopping = true;
	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		session_destroy(s);
	for (i = 0; i < srv->n_listeners; i++)
		evconnlistener_free(srv->listeners[i]);
	free(srv->listeners);
	/* Runs the last done() callbacks: pending UPDATEs complete. */
	worker_pool_free(srv->workers);
	if (srv->stop_timer != NULL)
		event_free(srv->stop_timer);
	if (srv->flush_ev != NULL)
		event_free(srv->flush_ev);
	auth_db_free(srv->auth);
}
