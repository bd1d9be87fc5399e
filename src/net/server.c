/*
 * server: listeners, accept limits, and graceful shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "lib/fileio.h"
#include "lib/iptable.h"
#include "lib/log.h"
#include "lib/metric.h"
#include "lib/monotime.h"
#include "lib/netaddr.h"
#include "lib/ratelimit.h"
#include "lib/shlimits.h"
#include "net/proxy.h"
#include "net/server.h"
#include "net/tls.h"
#include "session/session.h"

#define LISTEN_BACKLOG	SERVER_LISTEN_BACKLOG

/*
 * Accept pauses: the first is ACCEPT_PAUSE_MIN_MS, each failure soon after
 * doubles it up to ACCEPT_PAUSE_MAX_MS; ACCEPT_CALM_MS of listening without
 * a failure ends the episode (and the back-off).
 */
#define ACCEPT_PAUSE_MIN_MS	100
#define ACCEPT_PAUSE_MAX_MS	1000
#define ACCEPT_CALM_MS		1000
/* Connections refused through the reserve per failed accept; more wait. */
#define RESERVE_REFUSE_MAX	1024
/* A repeated event is logged at most once per window. */
#define RATELOG_WINDOW_MS	1000

static void
ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

/* ------------------------------------------------------------ ratelog */

/*
 * The line of rlg's events: "what count=N", with " rip=ADDR" after what
 * when the events are a client's (ratelog_hit_addr()). The address is
 * formatted here, once per line, not at each event of a flood.
 */
static void
ratelog_line(struct server_ratelog *rlg, uint64_t count)
{
	const struct sockaddr	*sa = (const void *)&rlg->last_addr;
	char			 a[8 + INET6_ADDRSTRLEN];
	size_t			 k;

	k = (size_t)snprintf(a, sizeof(a), " %s=", rlg->addr_key != NULL ?
	    rlg->addr_key : "rip");
	if (sa->sa_family == AF_INET)
		evutil_inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, a + k, sizeof(a) - k);
	else if (sa->sa_family == AF_INET6)
		evutil_inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, a + k, sizeof(a) - k);
	else
		a[0] = '\0';
	if (rlg->errnum != 0) {
		errno = rlg->errnum;
		log_warn("%s%s count=%llu", rlg->what, a,
		    (unsigned long long)count);
	} else
		log_warnx("%s%s count=%llu%s%s", rlg->what, a,
		    (unsigned long long)count, rlg->note != NULL ?
		    " error=" : "", rlg->note != NULL ? rlg->note : "");
}

/* Events are pending: have the timer report them when they are due. */
static void
ratelog_arm(struct server_ratelog *rlg, uint64_t now)
{
	struct timeval	 tv;
	uint64_t	 wait;

	if (evtimer_pending(rlg->flush, NULL) ||
	    (wait = ratelimit_wait_ms(&rlg->rl, now)) == UINT64_MAX)
		return;
	ms_to_tv(wait, &tv);
	evtimer_add(rlg->flush, &tv);
}

static void
ratelog_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	struct server_ratelog	*rlg = arg;
	uint64_t		 now = mono_ms(), n;

	(void)fd;
	(void)events;
	if ((n = ratelimit_due(&rlg->rl, now)) > 0)
		ratelog_line(rlg, n);
	else
		ratelog_arm(rlg, now);		/* woken early: not due yet */
}

static int
ratelog_init(struct server *srv, struct server_ratelog *rlg, const char *what)
{
	ratelimit_init(&rlg->rl, RATELOG_WINDOW_MS);
	rlg->what = what;
	rlg->errnum = 0;
	rlg->note = NULL;
	rlg->addr_key = NULL;
	rlg->flush = evtimer_new(srv->base, ratelog_flush_cb, rlg);
	return rlg->flush == NULL ? -1 : 0;
}

/* Count one event; errnum (or 0) is named in the line that reports it. */
static void
ratelog_hit(struct server_ratelog *rlg, int errnum)
{
	uint64_t	 now = mono_ms(), n;

	rlg->errnum = errnum;
	if ((n = ratelimit_hit(&rlg->rl, now)) > 0)
		ratelog_line(rlg, n);
	else
		ratelog_arm(rlg, now);
}

/*
 * ratelog_hit() for an event of one client: the line names the address
 * of the last event it counts, "rip=ADDR".
 */
static void
ratelog_hit_addr(struct server_ratelog *rlg, const struct sockaddr *sa)
{
	size_t len = sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	memcpy(&rlg->last_addr, sa, len);
	ratelog_hit(rlg, 0);
}

/* At exit: log what is pending and free the timer. */
static void
ratelog_free(struct server_ratelog *rlg)
{
	uint64_t n;

	if (rlg->flush == NULL)
		return;
	if ((n = ratelimit_flush(&rlg->rl, mono_ms())) > 0)
		ratelog_line(rlg, n);
	event_free(rlg->flush);
	rlg->flush = NULL;
}

/* ------------------------------------------------------------ accept */

/*
 * An accepted connection as a session: on a plain listener the socket
 * itself, which the session reads and writes; on an implicit TLS one
 * (RFC 8314) a TLS socket bufferevent, the session greeting once the
 * handshake is done (SESSION_TLS). NULL (errno set) if it could not be
 * made; fd is then closed.
 */
static struct session *
session_accept(struct server *srv, evutil_socket_t fd, bool tls,
    const struct sockaddr *sa, socklen_t salen, const unsigned char *key,
    size_t keylen)
{
	struct bufferevent	*bev;
	struct session		*s;
	int			 err;

	/*
	 * Replies are already whole when written (the session sends a loop
	 * iteration's output in one writev), so Nagle could only hold a
	 * reply back waiting for the peer's delayed ACK.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
	    sizeof(int));
	if (!tls) {
		if ((s = session_new_socket(srv->sessions, fd, sa, salen, key,
		    keylen)) == NULL)
			fio_close_keep_errno(fd);
		return s;
	}
	if ((bev = tls_socket_new(srv->tls, srv->base, fd)) == NULL)
		return NULL;	/* fd closed */
	if ((s = session_new(srv->sessions, bev, sa, salen, key, keylen,
	    SESSION_TLS)) == NULL) {
		err = errno;
		bufferevent_free(bev);
		errno = err;
		return NULL;
	}
	return s;
}

/* ------------------------------------------------------------ per address */

/*
 * [server] max_connections holds for every worker together: this one's
 * count (sessions and connections reading a PROXY header) goes to its
 * shared counter whenever it changes, and accept_cb() checks the sum.
 */
static void
conns_publish(struct server *srv)
{
	shlimits_conns_set((srv->sessions != NULL ?
	    session_set_count(srv->sessions) : 0) + srv->n_proxy_pending);
}

/* Any session ends: count its reason (the disconnect line's). */
static void
session_ended(struct session *s, void *arg)
{
	struct server *srv = arg;

	metric_tally_add(&srv->ended, session_reason(s));
	conns_publish(srv);		/* s has left the set */
}

/* Give back a reference per_ip_take() took for an address's key. */
static void
per_ip_put(struct server *srv, const unsigned char *key, size_t len)
{
	struct iptable_entry	*e;

	iptable_lock(srv->per_ip);
	if ((e = iptable_find(srv->per_ip, key, len)) != NULL)
		iptable_unref(srv->per_ip, e);
	iptable_unlock(srv->per_ip);
}

/* A session counted in srv->per_ip ends: its address counts one less. */
static void
per_ip_release(struct session *s, void *arg)
{
	struct server	*srv = arg;
	const unsigned char *key;
	size_t		 len;

	session_ended(s, srv);
	key = session_peer_key(s, &len);
	per_ip_put(srv, key, len);
}

/*
 * [auth] max_connections_per_ip, across the workers: count a connection
 * of the address with key (IPv6: its /64) in the shared table. 1:
 * counted (give it back with per_ip_put()); 0: need not be counted (no
 * limit, len 0: exempt or not IP); -1: the address is at its limit (or
 * the table is full of pinned records, which max_connections keeps from
 * happening): refuse.
 */
static int
per_ip_take(struct server *srv, const unsigned char *key, size_t len)
{
	struct iptable		*t = srv->per_ip;
	struct iptable_entry	*e;
	int			 ret = -1;

	if (srv->cfg->max_connections_per_ip == 0 || len == 0)
		return 0;
	iptable_lock(t);
	if ((e = iptable_get(t, key, len)) != NULL &&
	    e->refs < (uint32_t)srv->cfg->max_connections_per_ip) {
		iptable_ref(t, e);
		ret = 1;
	}
	iptable_unlock(t);
	return ret;
}

/*
 * Refuse fd with msg (RFC 3206 [SYS/TEMP]) and close it; on an implicit
 * TLS listener there is no saying it before a handshake: close only.
 */
static void
refuse(evutil_socket_t fd, bool tls, const char *msg, size_t len)
{
	ssize_t n;

	if (!tls) {
		n = write(fd, msg, len);
		(void)n;	/* best effort: the socket is new and empty */
	}
	evutil_closesocket(fd);
}

/*
 * A connection becomes a session of the client at sa: the peer itself,
 * or the client a PROXY header named. Counted per address from here, so
 * that the limit is the client's, not its proxy's.
 */
static void
accept_client(struct server *srv, evutil_socket_t fd, bool tls,
    const struct sockaddr *sa, socklen_t salen)
{
	static const char	 busy_ip[] = "-ERR [SYS/TEMP] Too many "
	    "connections from your address, try again later.\r\n";
	struct session		*s;
	unsigned char		 key[IPTABLE_ADDR_MAX];
	size_t			 keylen;
	int			 counted;

	/*
	 * The address's key for every per-address limit, once: the session
	 * carries it to the protocol's (pop3/penalty.c) and back to
	 * per_ip_put(). Length 0: exempt, or not IP.
	 */
	keylen = cfg_limits_exempt(srv->cfg, sa) ? 0 :
	    iptable_addr_key(sa, key);
	if ((counted = per_ip_take(srv, key, keylen)) == -1) {
		srv->stats.refused_per_ip++;
		refuse(fd, tls, busy_ip, sizeof(busy_ip) - 1);
		ratelog_hit_addr(&srv->log_per_ip, sa);
		return;
	}
	if ((s = session_accept(srv, fd, tls, sa, salen, key, keylen)) ==
	    NULL) {
		ratelog_hit(&srv->log_accept, errno);	/* out of memory */
		if (counted)
			per_ip_put(srv, key, keylen);
		return;
	}
	session_on_free(s, counted ? per_ip_release : session_ended, srv);
	conns_publish(srv);
}

/* ------------------------------------------------------------ PROXY header */

/*
 * A connection from a proxy_protocol_from address, reading its header
 * (net/proxy.h) before there is a session: the session is made with the
 * client's address the header names. The header is taken off the socket
 * exactly (peeked, then read up to its end), so the octets after it (a
 * pipelined command, a TLS ClientHello) stay in the socket for the
 * session. What is peeked of an incomplete header is read into buf (all
 * of it is header), so a connection never stays readable unread.
 */
struct proxy_conn {
	struct server		*srv;
	struct event		*ev;
	evutil_socket_t		 fd;
	bool			 tls;
	struct sockaddr_storage	 peer;		/* the proxy */
	socklen_t		 peerlen;
	uint64_t		 deadline_ms;
	size_t			 have;		/* header octets read so far */
	TAILQ_ENTRY(proxy_conn)	 entry;
	unsigned char		 buf[PROXY_HDR_MAX];
};

/* Forget pc; its socket is closed unless it went on to a session. */
static void
proxy_conn_free(struct proxy_conn *pc, bool close_fd)
{
	struct server *srv = pc->srv;

	TAILQ_REMOVE(&srv->proxy_pending, pc, entry);
	srv->n_proxy_pending--;
	conns_publish(srv);
	if (pc->ev != NULL)
		event_free(pc->ev);
	if (close_fd)
		evutil_closesocket(pc->fd);
	free(pc);
}

/*
 * A bad, truncated, oversized or late header: close without a word (the
 * octets would reach a client through the proxy, or a TLS client that
 * expects a handshake), and log it, rate-limited, with the proxy's
 * address.
 */
static void
proxy_refuse(struct proxy_conn *pc, const char *why)
{
	struct server	*srv = pc->srv;
	char		 via[80];

	/* Each one at debug level; the warning below is rate-limited. */
	if (log_debug_enabled())
		log_debug("event=proxy-refused proxy=%s error=%s",
		    netaddr_text((const struct sockaddr *)&pc->peer,
		    pc->peerlen, via, sizeof(via)), why);
	srv->stats.refused_proxy++;
	srv->log_proxy.note = why;
	ratelog_hit_addr(&srv->log_proxy, (const struct sockaddr *)&pc->peer);
	proxy_conn_free(pc, true);
}

/* Wait for more of the header, until the deadline. */
static void
proxy_arm(struct proxy_conn *pc)
{
	struct timeval	tv;
	uint64_t	now = mono_ms();

	if (now >= pc->deadline_ms) {
		proxy_refuse(pc, "timeout");
		return;
	}
	ms_to_tv(pc->deadline_ms - now, &tv);
	if (event_add(pc->ev, &tv) == -1)
		proxy_refuse(pc, "event-add");
}

/* The header is complete: the session of the client it names. */
static void
proxy_done(struct proxy_conn *pc, const struct proxy_hdr *h)
{
	struct server		*srv = pc->srv;
	const struct sockaddr	*sa;
	socklen_t		 salen;
	char			 rip[80], via[80];
	evutil_socket_t		 fd = pc->fd;
	bool			 tls = pc->tls;

	if (h->local) {
		/* A health check, or a client the proxy cannot name. */
		sa = (const struct sockaddr *)&pc->peer;
		salen = pc->peerlen;
	} else {
		sa = (const struct sockaddr *)&h->src;
		salen = h->srclen;
	}
	if (log_debug_enabled())
		log_debug("event=proxy-header rip=%s proxy=%s version=%d%s",
		    netaddr_text(sa, salen, rip, sizeof(rip)),
		    netaddr_text((const struct sockaddr *)&pc->peer,
		    pc->peerlen, via, sizeof(via)), h->version,
		    h->local ? " local=1" : "");
	/*
	 * pc's event goes after the session's took the socket: the socket
	 * stays in the loop's epoll set throughout, instead of leaving and
	 * coming back (two epoll_ctl calls). accept_client() copies sa.
	 */
	accept_client(srv, fd, tls, sa, salen);
	proxy_conn_free(pc, false);
}

/*
 * Take what the socket has of the header: peek, parse, and read exactly
 * the header's octets (or, while incomplete, all that was peeked).
 */
static void
proxy_input(struct proxy_conn *pc)
{
	struct proxy_hdr	 h;
	const char		*why;
	ssize_t			 n, r, got;
	size_t			 take;

	for (;;) {
		n = recv(pc->fd, pc->buf + pc->have, sizeof(pc->buf) -
		    pc->have, MSG_PEEK);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				proxy_arm(pc);
			else
				proxy_refuse(pc, "read-error");
			return;
		}
		if (n == 0) {
			/* A bare TCP check connects and leaves: no news. */
			if (pc->have == 0) {
				log_debug("event=proxy-eof");
				proxy_conn_free(pc, true);
			} else
				proxy_refuse(pc, "truncated");
			return;
		}
		r = proxy_parse(pc->buf, pc->have + (size_t)n, &h, &why);
		if (r == -1) {
			proxy_refuse(pc, why);
			return;
		}
		take = r > 0 ? (size_t)r - pc->have : (size_t)n;
		do
			got = recv(pc->fd, pc->buf + pc->have, take, 0);
		while (got == -1 && errno == EINTR);
		if (got != (ssize_t)take) {
			proxy_refuse(pc, "read-error");	/* peeked, so never */
			return;
		}
		pc->have += take;
		if (r > 0) {
			proxy_done(pc, &h);
			return;
		}
	}
}

static void
proxy_read_cb(evutil_socket_t fd, short events, void *arg)
{
	struct proxy_conn *pc = arg;

	(void)fd;
	if (events & EV_TIMEOUT) {
		proxy_refuse(pc, "timeout");
		return;
	}
	proxy_input(pc);
}

/* A connection from a trusted proxy: read its header first. */
static void
proxy_start(struct server *srv, evutil_socket_t fd, bool tls,
    const struct sockaddr *sa, socklen_t salen)
{
	struct proxy_conn *pc;

	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		ratelog_hit(&srv->log_accept, errno);
		evutil_closesocket(fd);
		return;
	}
	pc->srv = srv;
	pc->fd = fd;
	pc->tls = tls;
	if ((size_t)salen > sizeof(pc->peer))
		salen = sizeof(pc->peer);
	memcpy(&pc->peer, sa, (size_t)salen);
	pc->peerlen = salen;
	pc->deadline_ms = mono_ms() + (uint64_t)srv->cfg->proxy_timeout * 1000;
	TAILQ_INSERT_TAIL(&srv->proxy_pending, pc, entry);
	srv->n_proxy_pending++;
	conns_publish(srv);
	/* Persistent: see proxy_done(). proxy_arm() renews the timeout. */
	if ((pc->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST,
	    proxy_read_cb, pc)) == NULL) {
		ratelog_hit(&srv->log_accept, errno);
		proxy_conn_free(pc, true);
		return;
	}
	/* The proxy usually sends the header with its first segment. */
	proxy_input(pc);
}

/* Close every connection still reading its header (a stop, the end). */
static void
proxy_pending_close(struct server *srv)
{
	while (!TAILQ_EMPTY(&srv->proxy_pending))
		proxy_conn_free(TAILQ_FIRST(&srv->proxy_pending), true);
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	static const char	 busy[] =
	    "-ERR [SYS/TEMP] Too many connections, try again later.\r\n";
	struct listener		*l = arg;
	struct server		*srv = l->srv;
	size_t			 max = (size_t)srv->cfg->max_connections;
	bool			 tls = l->tls;

	(void)lev;
	srv->stats.connections++;
	/*
	 * Every worker's connections, those reading their PROXY header
	 * too; at most as many as the shared tables were sized for (a
	 * reload may not grow them).
	 */
	if (max > shlimits_max_connections())
		max = shlimits_max_connections();
	if (srv->stopping || shlimits_conns() >= max) {
		/* Shed the excess connection with a clear answer (RFC 3206). */
		srv->stats.refused++;
		refuse(fd, tls, busy, sizeof(busy) - 1);
		if (!srv->stopping)
			ratelog_hit(&srv->log_busy, 0);
		return;
	}
	/*
	 * proxy_protocol_from: a proxy's connections must begin with a
	 * header; anyone else's are POP3 from the first octet, and a header
	 * from them is only a bad command (never guessed at: the PROXY
	 * protocol specification, section 2).
	 */
	if (srv->cfg->n_proxy_from > 0 && cfg_proxy_trusted(srv->cfg, sa)) {
		proxy_start(srv, fd, tls, sa, (socklen_t)salen);
		return;
	}
	accept_client(srv, fd, tls, sa, (socklen_t)salen);
}

/*
 * Linux accept(2) reports network errors of the connection being taken
 * (which it then drops); the next one may be fine. Nothing to pause for.
 */
static bool
accept_error_transient(int err)
{
	switch (err) {
	case ENETDOWN:
	case EPROTO:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
	case EPERM:		/* a firewall rule */
	case ETIMEDOUT:
	case ECONNRESET:
		return true;
	}
	return false;
}

static int
reserve_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
listeners_enable(struct server *srv, bool on)
{
	size_t i;

	for (i = 0; i < srv->n_listeners; i++)
		if (on)
			evconnlistener_enable(srv->listeners[i]->lev);
		else
			evconnlistener_disable(srv->listeners[i]->lev);
}

/*
 * EMFILE or ENFILE: no descriptor for the connections waiting in lev's
 * backlog, which would otherwise wait unanswered. Give the reserve
 * descriptor up and, with the slot it frees, accept, refuse and close
 * them one after the other, then take the reserve back (libuv's
 * uv__emfile_trick; the libev manual's advice). Another thread may take
 * the slot meanwhile: the pause line then says "reserve=lost", and the
 * reserve is taken again at the end of the pause.
 */
static void
accept_refuse_reserved(struct server *srv, struct evconnlistener *lev)
{
	static const char	 msg[] =
	    "-ERR [SYS/TEMP] Too many open files, try again later.\r\n";
	struct accept_guard	*ag = &srv->accept;
	evutil_socket_t		 lfd = evconnlistener_get_fd(lev);
	ssize_t			 w;
	int			 fd, n;

	if (ag->reserve_fd == -1)
		return;
	close(ag->reserve_fd);
	for (n = 0; n < RESERVE_REFUSE_MAX; n++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    accept_error_transient(errno))
				continue;
			break;	/* EAGAIN: none left; EMFILE: slot taken */
		}
		w = write(fd, msg, sizeof(msg) - 1);
		(void)w;	/* best effort, as for max_connections */
		close(fd);
		srv->stats.refused_nofd++;
		ag->ep_refused++;
		ratelog_hit(&srv->log_nofd, 0);
	}
	ag->reserve_fd = reserve_open();	/* -1: "reserve=lost" below */
}

/*
 * Disable every listener for a pause: ACCEPT_PAUSE_MIN_MS at the start of
 * an episode, twice the last one (up to ACCEPT_PAUSE_MAX_MS) when the
 * failure came while probing. One line per pause.
 */
static void
accept_pause(struct server *srv, int err)
{
	struct accept_guard	*ag = &srv->accept;
	struct timeval		 tv;

	if (ag->state == ACCEPT_PAUSED)
		return;			/* the listeners are off already */
	if (ag->state == ACCEPT_ON) {
		ag->pause_ms = ACCEPT_PAUSE_MIN_MS;
		ag->pauses = 0;
		ag->ep_failed = 0;
		ag->since_ms = mono_ms();
	} else if ((ag->pause_ms *= 2) > ACCEPT_PAUSE_MAX_MS)
		ag->pause_ms = ACCEPT_PAUSE_MAX_MS;
	ag->state = ACCEPT_PAUSED;
	ag->pauses++;
	ag->ep_failed += ag->failed;
	listeners_enable(srv, false);
	errno = err;
	log_warn("event=accept-paused pause_ms=%u failed=%llu sessions=%zu%s",
	    ag->pause_ms, (unsigned long long)ag->failed,
	    session_set_count(srv->sessions),
	    ag->reserve_fd == -1 ? " reserve=lost" : "");
	ag->failed = 0;
	ms_to_tv(ag->pause_ms, &tv);
	evtimer_add(ag->timer, &tv);
}

/* The end of a pause (listen again, probing), or of a calm probation. */
static void
accept_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct server		*srv = arg;
	struct accept_guard	*ag = &srv->accept;
	struct timeval		 tv;

	(void)fd;
	(void)events;
	if (srv->stopping)
		return;
	if (ag->state == ACCEPT_PAUSED) {
		if (ag->reserve_fd == -1)
			ag->reserve_fd = reserve_open();
		ag->state = ACCEPT_PROBING;
		ag->probe_ms = mono_ms();
		listeners_enable(srv, true);
		ms_to_tv(ACCEPT_CALM_MS, &tv);
		evtimer_add(ag->timer, &tv);
		return;
	}
	ag->state = ACCEPT_ON;
	log_info("event=accept-resumed pauses=%u failed=%llu refused=%llu "
	    "duration_ms=%llu", ag->pauses, (unsigned long long)ag->ep_failed,
	    (unsigned long long)ag->ep_refused,
	    (unsigned long long)(ag->probe_ms - ag->since_ms));
	ag->ep_refused = 0;
}

/*
 * accept() failed with something libevent does not retry by itself
 * (errno tells). A connection's own network error is only counted and
 * logged (rate-limited); anything else would fail again at once while
 * the listener stays readable, spinning the loop: pause the listeners.
 * Out of descriptors, the connections waiting get a refusal first.
 */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener	*l = arg;
	struct server	*srv = l->srv;
	int		 err = EVUTIL_SOCKET_ERROR();

	srv->stats.accept_errors++;
	if (srv->stopping)
		return;			/* the listeners are off for good */
	if (accept_error_transient(err)) {
		ratelog_hit(&srv->log_accept, err);
		return;
	}
	srv->accept.failed++;
	if (err == EMFILE || err == ENFILE)
		accept_refuse_reserved(srv, lev);
	accept_pause(srv, err);
}

/*
 * A listener on fd, which listens already (socket activation) or is
 * bound and then listens here. NULL after logging why (fd closed).
 */
static struct listener *
listener_new(struct server *srv, int fd, const struct cfg_listen *conf,
    bool tls, const char *from)
{
	bool inherited = from != NULL;

	struct listener	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		log_error("event=listen-failed addr=%s step=alloc",
		    conf != NULL ? conf->text : "inherited");
		close(fd);
		return NULL;
	}
	l->srv = srv;
	l->tls = tls;
	if (conf != NULL)
		l->conf = *conf;
	/*
	 * A deep accept queue (the kernel caps it at net.core.somaxconn):
	 * when a burst of connections overflows it, the client believes it
	 * is connected while the kernel drops its ACK, and the greeting
	 * waits for a SYN-ACK retransmission, up to half a minute later.
	 * An inherited socket listens already (the backlog is systemd's).
	 */
	l->lev = evconnlistener_new(srv->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE, inherited ? 0 : LISTEN_BACKLOG, fd);
	if (l->lev == NULL) {
		log_error("event=listen-failed addr=%s step=listen",
		    conf != NULL ? conf->text : "inherited");
		close(fd);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	l->boundlen = sizeof(l->bound);
	if (getsockname(fd, (struct sockaddr *)&l->bound, &l->boundlen) == -1)
		l->boundlen = 0;
	/* Log the real address: with port 0 the kernel picked one. */
	(void)netaddr_text((const struct sockaddr *)&l->bound, l->boundlen,
	    l->text, sizeof(l->text));
	log_info("event=listen addr=%s%s%s%s", l->text,
	    tls ? " tls=implicit" : "", inherited ? " from=" : "",
	    inherited ? from : "");
	return l;
}

static void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	evconnlistener_free(l->lev);
	free(l);
}

/* Bind a listener for conf; NULL after logging why. */
static struct listener *
listen_one(struct server *srv, const struct cfg_listen *conf, bool tls)
{
	const char	*step;
	int		 fd;

	if ((fd = netaddr_bind((const struct sockaddr *)&conf->addr,
	    conf->addrlen, &step)) == -1) {
		log_error("event=listen-failed addr=%s step=%s", conf->text,
		    step);
		return NULL;
	}
	return listener_new(srv, fd, conf, tls, NULL);
}

/*
 * The listener of srv that can serve conf (the same address as it was
 * configured with or is bound to: "127.0.0.1:0" may now be written with
 * the port it got; the same kind), not already taken by this reload;
 * NULL if none.
 */
static struct listener *
listener_find(struct server *srv, const struct cfg_listen *conf, bool tls)
{
	struct listener	*l;
	size_t		 i;

	for (i = 0; i < srv->n_listeners; i++) {
		l = srv->listeners[i];
		if (l->kept || l->tls != tls)
			continue;
		if ((l->conf.addrlen == conf->addrlen &&
		    memcmp(&l->conf.addr, &conf->addr, conf->addrlen) == 0) ||
		    (l->boundlen == conf->addrlen &&
		    memcmp(&l->bound, &conf->addr, conf->addrlen) == 0))
			return l;
	}
	return NULL;
}

/*
 * The listeners cfg asks for, in *ls_r (listen, then listen_tls when
 * tls): the ones srv has for the same address are kept, the others
 * bound. Returns the count, or -1 after logging why: what this call
 * bound is closed again, and srv's listeners are as they were.
 */
static ssize_t
listeners_for(struct server *srv, const struct cfg *cfg, bool tls,
    struct listener ***ls_r)
{
	const struct cfg_listen	*conf;
	struct listener		**ls, *l;
	size_t			 i, n = 0, want;

	want = cfg->n_listen + (tls ? cfg->n_listen_tls : 0);
	if ((ls = calloc(want + 1, sizeof(*ls))) == NULL) {
		log_error("event=listen-failed step=alloc");
		return -1;
	}
	for (i = 0; i < want; i++) {
		bool is_tls = i >= cfg->n_listen;

		conf = is_tls ? &cfg->listen_tls[i - cfg->n_listen] :
		    &cfg->listen[i];
		if ((l = listener_find(srv, conf, is_tls)) == NULL) {
			if ((l = listen_one(srv, conf, is_tls)) == NULL)
				goto fail;
			l->fresh = 1;
		}
		l->kept = 1;
		ls[n++] = l;
	}
	*ls_r = ls;
	return (ssize_t)n;
fail:
	for (i = 0; i < n; i++)
		if (ls[i]->fresh)
			listener_free(ls[i]);
	for (i = 0; i < srv->n_listeners; i++)
		srv->listeners[i]->kept = 0;
	free(ls);
	return -1;
}

/* Make ls (n of them, from listeners_for()) srv's; close the rest. */
static void
listeners_swap(struct server *srv, struct listener **ls, size_t n)
{
	size_t i;

	for (i = 0; i < srv->n_listeners; i++)
		if (!srv->listeners[i]->kept) {
			log_info("event=unlisten addr=%s",
			    srv->listeners[i]->text);
			listener_free(srv->listeners[i]);
		}
	free(srv->listeners);
	for (i = 0; i < n; i++)
		ls[i]->kept = ls[i]->fresh = 0;
	srv->listeners = ls;
	srv->n_listeners = n;
	/* A new listener in the middle of an accept pause waits too. */
	if (srv->accept.state == ACCEPT_PAUSED || srv->stopping)
		listeners_enable(srv, false);
}

/* See server.h. */
ssize_t
server_systemd_sockets(bool tls, struct server_socket **socks_r)
{
	struct server_socket	*socks = NULL;
	char			**names = NULL;
	int			 n, i, fd;
	ssize_t			 ret = -1;

	*socks_r = NULL;
	if ((n = sd_listen_fds_with_names(1, &names)) <= 0) {
		if (n < 0)
			log_errorx("event=listen-failed step=sd_listen_fds "
			    "error=\"%s\"", strerror(-n));
		return n < 0 ? -1 : 0;
	}
	if ((socks = calloc((size_t)n, sizeof(*socks))) == NULL) {
		log_error("event=listen-failed step=alloc");
		goto out;
	}
	for (i = 0; i < n; i++) {
		fd = SD_LISTEN_FDS_START + i;
		socks[i].fd = fd;
		socks[i].tls = strcmp(names[i], "pop3s") == 0;
		if (!socks[i].tls && strcmp(names[i], "pop3") != 0 &&
		    strcmp(names[i], "unknown") != 0) {
			log_errorx("event=listen-failed fd=%d name=\"%s\" "
			    "note=\"FileDescriptorName= must be pop3 or "
			    "pop3s\"", fd, names[i]);
			goto out;
		}
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_errorx("event=listen-failed fd=%d name=%s "
			    "note=\"not a listening stream socket\"", fd,
			    names[i]);
			goto out;
		}
		if (socks[i].tls && !tls) {
			log_errorx("event=listen-failed fd=%d name=pop3s "
			    "note=\"implicit TLS needs [tls] cert and key\"",
			    fd);
			goto out;
		}
		(void)evutil_make_socket_nonblocking(fd);
		(void)evutil_make_socket_closeonexec(fd);
	}
	*socks_r = socks;
	socks = NULL;
	ret = n;
out:
	free(socks);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/*
 * Socket activation: the sockets systemd passed replace [server] listen
 * and listen_tls. Returns the count (0: not activated), or -1 after
 * logging why.
 */
static ssize_t
listeners_inherited(struct server *srv, bool tls)
{
	struct server_socket	*socks;
	struct listener		*l;
	ssize_t			 n, i;

	if ((n = server_systemd_sockets(tls, &socks)) <= 0)
		return n;
	if ((srv->listeners = calloc((size_t)n, sizeof(*srv->listeners)))
	    == NULL) {
		log_error("event=listen-failed step=alloc");
		free(socks);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((l = listener_new(srv, socks[i].fd, NULL, socks[i].tls,
		    "systemd")) == NULL) {
			free(socks);
			return -1;
		}
		srv->listeners[srv->n_listeners++] = l;
	}
	free(socks);
	return n;
}

/* What server_init() and server_init_given() share: all but listeners. */
static int
server_setup(struct server *srv, struct event_base *base, const struct cfg *cfg,
    struct session_set *set, struct tls_server *tls)
{
	memset(srv, 0, sizeof(*srv));
	srv->accept.reserve_fd = -1;	/* before any failure: server_free() */
	TAILQ_INIT(&srv->proxy_pending);
	srv->base = base;
	srv->cfg = cfg;
	srv->sessions = set;
	srv->tls = tls;
	if ((srv->accept.timer = evtimer_new(base, accept_timer_cb, srv))
	    == NULL ||
	    ratelog_init(srv, &srv->log_busy,
	    "event=refused reason=max-connections") == -1 ||
	    ratelog_init(srv, &srv->log_nofd,
	    "event=refused reason=no-descriptors") == -1 ||
	    ratelog_init(srv, &srv->log_accept, "event=accept-error") == -1 ||
	    ratelog_init(srv, &srv->log_per_ip,
	    "event=refused reason=max-connections-per-ip") == -1 ||
	    ratelog_init(srv, &srv->log_proxy,
	    "event=refused reason=proxy-header") == -1) {
		log_error("event=startup-failed step=event_new");
		return -1;
	}
	srv->log_proxy.addr_key = "proxy";
	/* Shared by the workers, made before any fork (shlimits.h). */
	if ((srv->per_ip = shlimits_per_ip()) == NULL) {
		log_errorx("event=startup-failed step=per-ip-table");
		return -1;
	}
	/* See accept_refuse_reserved(). Without it EMFILE still pauses. */
	if ((srv->accept.reserve_fd = reserve_open()) == -1)
		log_warn("event=reserve-failed path=/dev/null");
	return 0;
}

int
server_init(struct server *srv, struct event_base *base, const struct cfg *cfg,
    struct session_set *set, struct tls_server *tls)
{
	struct listener	**ls;
	ssize_t		  n;

	if (server_setup(srv, base, cfg, set, tls) == -1)
		return -1;
	if ((n = listeners_inherited(srv, tls != NULL)) != 0) {
		srv->inherited = true;
		return n < 0 ? -1 : 0;
	}
	if ((n = listeners_for(srv, cfg, tls != NULL, &ls)) == -1)
		return -1;
	listeners_swap(srv, ls, (size_t)n);
	return 0;
}

int
server_init_given(struct server *srv, struct event_base *base,
    const struct cfg *cfg, struct session_set *set, struct tls_server *tls,
    const struct server_socket *socks, size_t n)
{
	struct listener	*l;
	size_t		 i;

	i = 0;
	if (server_setup(srv, base, cfg, set, tls) == -1)
		goto fail;
	srv->inherited = true;
	if ((srv->listeners = calloc(n + 1, sizeof(*srv->listeners))) ==
	    NULL) {
		log_error("event=listen-failed step=alloc");
		goto fail;
	}
	for (; i < n; i++) {
		/* listener_new() closes the descriptor when it fails. */
		if ((l = listener_new(srv, socks[i].fd, NULL, socks[i].tls,
		    "supervisor")) == NULL) {
			i++;
			goto fail;
		}
		srv->listeners[srv->n_listeners++] = l;
	}
	return 0;
fail:
	for (; i < n; i++)
		close(socks[i].fd);
	return -1;
}

int
server_reconfigure(struct server *srv, const struct cfg *cfg,
    struct tls_server *tls)
{
	struct listener	**ls;
	ssize_t		  n;
	size_t		  i;

	if (srv->inherited) {
		for (i = 0; i < srv->n_listeners; i++)
			if (srv->listeners[i]->tls && tls == NULL) {
				log_errorx("event=reload-failed addr=%s "
				    "note=\"a pop3s socket from systemd "
				    "needs [tls]\"", srv->listeners[i]->text);
				return -1;
			}
	} else {
		if ((n = listeners_for(srv, cfg, tls != NULL, &ls)) == -1)
			return -1;
		listeners_swap(srv, ls, (size_t)n);
	}
	srv->cfg = cfg;
	srv->tls = tls;
	return 0;
}

void
server_stop(struct server *srv)
{
	size_t i;

	if (srv->stopping) {
		/* A second signal: no more waiting. */
		log_warnx("event=shutdown-now sessions=%zu",
		    session_set_count(srv->sessions));
		session_set_cut(srv->sessions);
		return;
	}
	srv->stopping = true;
	log_info("event=shutdown sessions=%zu timeout_s=%d",
	    session_set_count(srv->sessions), srv->cfg->shutdown_timeout);
	/*
	 * Close the listening sockets: new clients are refused by the
	 * kernel and try elsewhere, instead of waiting in a backlog that is
	 * never accepted. Sockets from systemd stay open in systemd, which
	 * hands them, and the connections queued on them, to the next start.
	 */
	for (i = 0; i < srv->n_listeners; i++)
		listener_free(srv->listeners[i]);
	srv->n_listeners = 0;
	proxy_pending_close(srv);	/* not clients yet: nothing to drain */
	if (srv->accept.timer != NULL)
		evtimer_del(srv->accept.timer);	/* no pause ends now */
	session_set_drain(srv->sessions, (unsigned)srv->cfg->shutdown_timeout);
}

void
server_stats_log(const struct server *srv, bool debug)
{
	const struct server_stats	*st = &srv->stats;
	struct iptable_stats		 ips = { 0 };

	if (srv->per_ip != NULL)
		iptable_stats(srv->per_ip, &ips);
	(debug ? log_debug : log_info)("event=stats part=net connections=%llu "
	    "sessions=%zu refused=%llu refused_nofd=%llu accept_errors=%llu "
	    "refused_per_ip=%llu per_ip_addrs=%zu refused_proxy=%llu "
	    "sessions_all=%zu per_ip_full=%llu",
	    (unsigned long long)st->connections,
	    session_set_count(srv->sessions),
	    (unsigned long long)st->refused,
	    (unsigned long long)st->refused_nofd,
	    (unsigned long long)st->accept_errors,
	    (unsigned long long)st->refused_per_ip, ips.entries,
	    (unsigned long long)st->refused_proxy, shlimits_conns(),
	    (unsigned long long)ips.full);
}

void
server_free(struct server *srv)
{
	size_t i;

	srv->sessions = NULL;		/* main may have freed the set */
	for (i = 0; i < srv->n_listeners; i++)
		listener_free(srv->listeners[i]);
	free(srv->listeners);
	if (srv->proxy_pending.tqh_last != NULL)	/* server_init() ran */
		proxy_pending_close(srv);
	if (srv->accept.timer != NULL)
		event_free(srv->accept.timer);
	if (srv->accept.reserve_fd != -1)
		close(srv->accept.reserve_fd);
	ratelog_free(&srv->log_busy);
	ratelog_free(&srv->log_nofd);
	ratelog_free(&srv->log_accept);
	ratelog_free(&srv->log_per_ip);
	ratelog_free(&srv->log_proxy);
	/*
	 * The table is shlimits'. Sessions still counted in it unref when
	 * freed: main frees the session set first (and a set with sessions
	 * never outlives this).
	 */
	srv->per_ip = NULL;
}

void
server_metrics_write(const struct server *srv, struct metric_writer *w)
{
	const struct server_stats *st = &srv->stats;

	metric_family(w, "evpop3d_connections", METRIC_GAUGE,
	    "Client connections open now (sessions).");
	metric_u64(w, "evpop3d_connections", NULL, NULL,
	    srv->sessions != NULL ? session_set_count(srv->sessions) : 0);
	metric_family(w, "evpop3d_connections_accepted_total", METRIC_COUNTER,
	    "Connections accepted, the refused ones included.");
	metric_u64(w, "evpop3d_connections_accepted_total", NULL, NULL,
	    st->connections + st->refused_nofd);
	metric_family(w, "evpop3d_connections_refused_total", METRIC_COUNTER,
	    "Connections refused at accept, by reason.");
	metric_u64(w, "evpop3d_connections_refused_total", "reason",
	    "max-connections", st->refused);
	metric_u64(w, "evpop3d_connections_refused_total", "reason",
	    "max-connections-per-ip", st->refused_per_ip);
	metric_u64(w, "evpop3d_connections_refused_total", "reason",
	    "no-descriptors", st->refused_nofd);
	metric_u64(w, "evpop3d_connections_refused_total", "reason",
	    "proxy-header", st->refused_proxy);
	metric_family(w, "evpop3d_accept_errors_total", METRIC_COUNTER,
	    "Failed accept() calls.");
	metric_u64(w, "evpop3d_accept_errors_total", NULL, NULL,
	    st->accept_errors);
	metric_family(w, "evpop3d_sessions_ended_total", METRIC_COUNTER,
	    "Sessions ended, by the reason of their disconnect line.");
	metric_tally_write(w, "evpop3d_sessions_ended_total", "reason",
	    &srv->ended);
}
