/*
 * tls: the swarm's client-side OpenSSL context (see tls.h).
 *
 * Sessions for resumption come through the new-session callback rather
 * than SSL_get1_session() after the handshake: TLS 1.3 tickets arrive
 * after it, with the first application data, and a server may send
 * several; the last one seen is kept, one per slot, so that each slot
 * resumes its own session as a returning client would.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

static int	slot_idx = -1;

static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct swarm_tls_slot	*slot;

	if ((slot = SSL_get_ex_data(ssl, slot_idx)) == NULL)
		return 0;
	if (slot->sess != NULL)
		SSL_SESSION_free(slot->sess);
	slot->sess = sess;
	return 1;		/* we own the reference */
}

static void
errmsg(char *err, size_t size, const char *what)
{
	char	 buf[256];

	snprintf(err, size, "%s: %s", what, swarm_tls_error(NULL, buf,
	    sizeof(buf)));
}

struct ssl_ctx_st *
swarm_tls_ctx_new(const char *cacert, bool resume, char *err, size_t errsize)
{
	SSL_CTX		*ctx;

	if (slot_idx == -1 &&
	    (slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL)) == -1) {
		errmsg(err, errsize, "SSL_get_ex_new_index");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		errmsg(err, errsize, "SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		errmsg(err, errsize, "SSL_CTX_set_min_proto_version");
		goto fail;
	}
	/*
	 * Partial and moved writes: output the socket did not take waits in
	 * the session's own buffer, which may move between attempts.  Idle
	 * sessions give their read and write buffers back.  A TCP EOF
	 * without close_notify is an EOF (the server closed after QUIT).
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (cacert != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cacert, NULL) != 1) {
			errmsg(err, errsize, cacert);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (resume) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		/* TLS 1.2: no ticket asked for; 1.3 tickets are ignored. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
swarm_tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

struct ssl_st *
swarm_tls_attach(struct ssl_ctx_st *ctx, int fd, const char *name,
    struct swarm_tls_slot *slot, char *err, size_t errsize)
{
	SSL	*ssl;

	if ((ssl = SSL_new(ctx)) == NULL) {
		errmsg(err, errsize, "SSL_new");
		return NULL;
	}
	if (SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_ex_data(ssl, slot_idx, slot) != 1) {
		errmsg(err, errsize, "SSL_set_fd");
		goto fail;
	}
	if (name != NULL && (SSL_set_tlsext_host_name(ssl, name) != 1 ||
	    (SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE &&
	    SSL_set1_host(ssl, name) != 1))) {
		errmsg(err, errsize, "server name");
		goto fail;
	}
	if (slot != NULL && slot->sess != NULL &&
	    SSL_set_session(ssl, slot->sess) != 1) {
		errmsg(err, errsize, "SSL_set_session");
		goto fail;
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

void
swarm_tls_slot_clear(struct swarm_tls_slot *slot)
{
	if (slot->sess != NULL) {
		SSL_SESSION_free(slot->sess);
		slot->sess = NULL;
	}
}

const char *
swarm_tls_error(struct ssl_st *ssl, char *buf, size_t size)
{
	unsigned long	 e, last = 0;
	long		 vr;

	while ((e = ERR_get_error()) != 0)
		last = e;
	buf[0] = '\0';
	if (last != 0)
		ERR_error_string_n(last, buf, size);
	if (ssl != NULL && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE &&
	    (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		size_t	 n = strlen(buf);

		snprintf(buf + n, size - n, "%s(certificate: %s)",
		    n > 0 ? " " : "", X509_verify_cert_error_string(vr));
	}
	return buf;
}
