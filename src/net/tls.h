/*
 * tls: the daemon's TLS (OpenSSL 3 through libevent's bufferevent_openssl):
 * one shared SSL_CTX per certificate, the default ([tls] cert/key) and one
 * per [tls.NAME] section, picked by the client's SNI server name (RFC 6066
 * section 3). Implicit TLS listeners (RFC 8314) get a TLS socket
 * bufferevent from tls_socket_new(); STLS (RFC 2595) replaces a session's
 * socket bufferevent by a TLS socket bufferevent on the same socket
 * through the hooks of tls_session_hooks().
 *
 * Every context: TLS >= [tls] min_protocol (TLSv1.2 by default, RFC 8996),
 * no compression, no renegotiation, the server's cipher order, session
 * tickets (resumption), and SSL_MODE_RELEASE_BUFFERS so that an idle
 * session holds no record buffers.
 *
 * A reload (tls_server_prepare(), then commit) builds a whole new set of
 * contexts from the files and swaps it in only if every one loaded;
 * sessions keep the context they started with (their SSL objects hold
 * references).
 */
#ifndef EVPOP3D_NET_TLS_H
#define EVPOP3D_NET_TLS_H

#include <stddef.h>

#include <event2/util.h>

struct bufferevent;
struct cfg;
struct event_base;
struct session_tls;
struct tls_server;

/*
 * Load the contexts cfg asks for ([tls] cert set), checking that each key
 * matches its certificate. Returns 0 with *tls_r set (NULL when cfg has no
 * TLS), or -1 with one line in err naming the file, section and key, e.g.
 *   "evpop3d.ini: [tls] key: /etc/ssl/k.pem does not match the
 *    certificate in /etc/ssl/c.pem"
 * The result does not refer to cfg.
 */
int	tls_server_new(const struct cfg *cfg, struct tls_server **tls_r,
	    char *err, size_t errlen);
/*
 * A reload, in two steps: tls_server_prepare() builds the contexts cfg
 * asks for (its files read anew) and keeps them aside (-1 with err as
 * for tls_server_new(): nothing changed); tls_server_commit() makes
 * them serve the handshakes from now on (logging "event=tls-reload
 * result=ok"), tls_server_abort() drops them. cfg need not outlive it.
 */
int	tls_server_prepare(struct tls_server *tls, const struct cfg *cfg,
	    char *err, size_t errlen);
void	tls_server_commit(struct tls_server *tls);
void	tls_server_abort(struct tls_server *tls);
/* Free the contexts (sessions using them keep their references). */
void	tls_server_free(struct tls_server *tls);

/*
 * A server-side TLS bufferevent for an accepted socket fd on base, the
 * handshake pending (it starts once reading is enabled). Closes fd and
 * returns NULL (errno set) on error.
 */
struct bufferevent *tls_socket_new(struct tls_server *tls,
		    struct event_base *base, evutil_socket_t fd);

/* The hooks a session uses for STLS and its log lines (session.h). */
void	tls_session_hooks(struct tls_server *tls, struct session_tls *hooks);

#endif
