/*
 * tls: the swarm's client-side OpenSSL context.
 *
 * One SSL_CTX per run, shared by every session (as a real client fleet
 * would share nothing, but one context is what keeps 19,000 idle client
 * sessions cheap).  The engine drives the SSL objects itself, on its own
 * non-blocking sockets; this module only builds the context, keeps the
 * per-slot sessions for resumption and names errors.
 *
 * Free of libevent types, like engine.h.
 */
#ifndef SWARM_TLS_H
#define SWARM_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct ssl_ctx_st;
struct ssl_st;
struct ssl_session_st;

/* Where the session that resumption offers next is kept (one per slot). */
struct swarm_tls_slot {
	struct ssl_session_st	*sess;
};

/*
 * A client context: TLS 1.2 or later, no certificate verification unless
 * cacert (a PEM file of trusted certificates) is given, in which case the
 * chain must verify (and match the name given to swarm_tls_attach()).
 * With resume, every new session the server hands out (a TLS 1.3 ticket,
 * or a TLS 1.2 ticket or id) is kept in the swarm_tls_slot that
 * swarm_tls_attach() named, and offered by the next connection of that
 * slot.  Returns NULL with a message in err.
 */
struct ssl_ctx_st	*swarm_tls_ctx_new(const char *cacert, bool resume,
			    char *err, size_t errsize);
void			 swarm_tls_ctx_free(struct ssl_ctx_st *);

/*
 * A client SSL object on fd, in connect state, with SNI name (if any),
 * offering slot->sess (if any) and storing new sessions into slot.
 * Returns NULL with a message in err.
 */
struct ssl_st		*swarm_tls_attach(struct ssl_ctx_st *, int fd,
			    const char *name, struct swarm_tls_slot *slot,
			    char *err, size_t errsize);
/* Drop the slot's kept session. */
void			 swarm_tls_slot_clear(struct swarm_tls_slot *);

/*
 * The reason for the last failure on this thread's OpenSSL error queue
 * (emptied), with the verify result when a certificate was refused; "" if
 * none.  Writes into buf and returns it.
 */
const char		*swarm_tls_error(struct ssl_st *, char *buf,
			    size_t size);

#endif
