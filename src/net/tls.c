/*
 * tls: SSL_CTX management, SNI, reload, and the session's TLS hooks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "config.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "net/tls.h"
#include "session/session.h"

/* The contexts built from one reading of the files. */
struct tls_ctxset {
	SSL_CTX		*dflt;		/* [tls] cert/key */
	SSL_CTX		**sni;		/* [tls.NAME], as cfg->tls_sni */
	char		**names;	/* their names ("*.example.org") */
	size_t		 n_sni;
};

struct tls_server {
	struct tls_ctxset	*cur;
	struct tls_ctxset	*next;		/* tls_server_prepare()'s */
};

/* The most recent OpenSSL error as text (file names, never key data). */
static const char *
tls_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static void
ctxset_free(struct tls_ctxset *set)
{
	size_t i;

	if (set == NULL)
		return;
	SSL_CTX_free(set->dflt);
	for (i = 0; i < set->n_sni; i++) {
		SSL_CTX_free(set->sni[i]);
		free(set->names[i]);
	}
	free(set->names);
	free(set->sni);
	free(set);
}

/* Can path be opened for reading? Else a clear line naming it. */
static int
tls_readable(const struct cfg *cfg, const char *section, const char *key,
    const char *path, char *err, size_t errlen)
{
	FILE *f;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: [%s] %s: cannot read %s: %s",
		    cfg->path, section, key, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* [tls] dh: DHE parameters from a PEM file, else OpenSSL's own. */
static int
tls_load_dh(const struct cfg *cfg, SSL_CTX *ctx, char *err, size_t errlen)
{
	EVP_PKEY	*dh;
	BIO		*bio;
	char		 e[256];

	if (cfg->tls_dh == NULL) {
		SSL_CTX_set_dh_auto(ctx, 1);
		return 0;
	}
	if (tls_readable(cfg, "tls", "dh", cfg->tls_dh, err, errlen) == -1)
		return -1;
	if ((bio = BIO_new_file(cfg->tls_dh, "r")) == NULL)
		goto bad;
	dh = PEM_read_bio_Parameters(bio, NULL);
	BIO_free(bio);
	if (dh == NULL)
		goto bad;
	if (SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
		EVP_PKEY_free(dh);
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: [tls] dh: no DH parameters in %s: %s",
	    cfg->path, cfg->tls_dh, tls_errstr(e, sizeof(e)));
	return -1;
}

/*
 * One context for the certificate chain in cert and its key, named in
 * messages as [section]. NULL with a line in err.
 */
static SSL_CTX *
ctx_new(const struct cfg *cfg, const char *section, const char *cert,
    const char *key, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	char	 e[256];

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "%s: [%s]: SSL_CTX_new: %s", cfg->path,
		    section, tls_errstr(e, sizeof(e)));
		return NULL;
	}
	/* BCP 195 (RFC 9325), RFC 8996: TLS 1.2 or 1.3 only. */
	SSL_CTX_set_min_proto_version(ctx,
	    strcmp(cfg->tls_min_protocol, "TLSv1.3") == 0 ? TLS1_3_VERSION :
	    TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* An idle session keeps no 16 KiB+ read and write record buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Resumption by tickets; one per handshake is enough for POP3. */
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"evpop3d",
	    7);
	if (cfg->tls_ciphers != NULL &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		snprintf(err, errlen, "%s: [tls] ciphers: no usable cipher in "
		    "'%s': %s", cfg->path, cfg->tls_ciphers,
		    tls_errstr(e, sizeof(e)));
		goto fail;
	}
	if (cfg->tls_ciphersuites != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
		snprintf(err, errlen, "%s: [tls] ciphersuites: no usable "
		    "suite in '%s': %s", cfg->path, cfg->tls_ciphersuites,
		    tls_errstr(e, sizeof(e)));
		goto fail;
	}
	if (tls_load_dh(cfg, ctx, err, errlen) == -1)
		goto fail;
	if (tls_readable(cfg, section, "cert", cert, err, errlen) == -1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "%s: [%s] cert: no PEM certificate in "
		    "%s: %s", cfg->path, section, cert,
		    tls_errstr(e, sizeof(e)));
		goto fail;
	}
	if (tls_readable(cfg, section, "key", key, err, errlen) == -1)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* A key of another certificate may already fail here. */
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			goto mismatch;
		}
		snprintf(err, errlen, "%s: [%s] key: no PEM private key in "
		    "%s: %s", cfg->path, section, key,
		    tls_errstr(e, sizeof(e)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
mismatch:
		snprintf(err, errlen, "%s: [%s] key: %s does not match the "
		    "certificate in %s", cfg->path, section, key, cert);
		ERR_clear_error();
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * RFC 6066 section 3: the client's server name picks a [tls.NAME]
 * context: the exact name, else a "*.rest" wildcard for its first label.
 * No name, or one we do not know, keeps the default certificate.
 */
static int
tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_server	*tls = arg;
	struct tls_ctxset	*set = tls->cur;
	const char		*name, *dot;
	size_t			 i;

	(void)alert;
	if ((name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) ==
	    NULL)
		return SSL_TLSEXT_ERR_NOACK;
	dot = strchr(name, '.');
	for (i = 0; i < set->n_sni; i++)
		if (strcasecmp(set->names[i], name) == 0)
			goto found;
	for (i = 0; dot != NULL && i < set->n_sni; i++)
		if (strncmp(set->names[i], "*.", 2) == 0 &&
		    strcasecmp(set->names[i] + 1, dot) == 0)
			goto found;
	return SSL_TLSEXT_ERR_NOACK;
found:
	/* SSL_set_SSL_CTX() takes a reference: a reload may free ours. */
	if (SSL_set_SSL_CTX(ssl, set->sni[i]) == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

static struct tls_ctxset *
ctxset_new(struct tls_server *tls, const struct cfg *cfg, char *err,
    size_t errlen)
{
	struct tls_ctxset	*set;
	char			 section[300];
	size_t			 i;

	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (cfg->n_tls_sni > 0 && ((set->sni = calloc(cfg->n_tls_sni,
	    sizeof(*set->sni))) == NULL || (set->names = calloc(
	    cfg->n_tls_sni, sizeof(*set->names))) == NULL))) {
		snprintf(err, errlen, "%s: [tls]: %s", cfg->path,
		    strerror(errno));
		ctxset_free(set);
		return NULL;
	}
	if ((set->dflt = ctx_new(cfg, "tls", cfg->tls_cert, cfg->tls_key, err,
	    errlen)) == NULL)
		goto fail;
	for (i = 0; i < cfg->n_tls_sni; i++) {
		snprintf(section, sizeof(section), "tls.%s",
		    cfg->tls_sni[i].name);
		if ((set->sni[i] = ctx_new(cfg, section, cfg->tls_sni[i].cert,
		    cfg->tls_sni[i].key, err, errlen)) == NULL)
			goto fail;
		set->n_sni++;
		if ((set->names[i] = strdup(cfg->tls_sni[i].name)) == NULL) {
			snprintf(err, errlen, "%s: [%s]: %s", cfg->path,
			    section, strerror(errno));
			goto fail;
		}
	}
	SSL_CTX_set_tlsext_servername_callback(set->dflt, tls_servername_cb);
	SSL_CTX_set_tlsext_servername_arg(set->dflt, tls);
	return set;
fail:
	ctxset_free(set);
	return NULL;
}

int
tls_server_new(const struct cfg *cfg, struct tls_server **tls_r, char *err,
    size_t errlen)
{
	struct tls_server *tls;

	*tls_r = NULL;
	if (cfg->tls_cert == NULL)
		return 0;
	if ((tls = calloc(1, sizeof(*tls))) == NULL) {
		snprintf(err, errlen, "%s: [tls]: %s", cfg->path,
		    strerror(errno));
		return -1;
	}
	if ((tls->cur = ctxset_new(tls, cfg, err, errlen)) == NULL) {
		free(tls);
		return -1;
	}
	*tls_r = tls;
	return 0;
}

int
tls_server_prepare(struct tls_server *tls, const struct cfg *cfg, char *err,
    size_t errlen)
{
	ctxset_free(tls->next);
	tls->next = ctxset_new(tls, cfg, err, errlen);
	return tls->next != NULL ? 0 : -1;
}

void
tls_server_commit(struct tls_server *tls)
{
	if (tls->next == NULL)
		return;
	ctxset_free(tls->cur);
	tls->cur = tls->next;
	tls->next = NULL;
	log_info("event=tls-reload result=ok certificates=%zu",
	    1 + tls->cur->n_sni);
}

void
tls_server_abort(struct tls_server *tls)
{
	if (tls == NULL)
		return;
	ctxset_free(tls->next);
	tls->next = NULL;
}

void
tls_server_free(struct tls_server *tls)
{
	if (tls == NULL)
		return;
	ctxset_free(tls->cur);
	ctxset_free(tls->next);
	free(tls);
}

/*
 * A server-side TLS socket bufferevent on fd, the handshake pending; it
 * frees its SSL and closes fd with itself. NULL (errno ENOMEM) on error,
 * fd left open.
 */
static struct bufferevent *
tls_bev_new(struct tls_server *tls, struct event_base *base,
    evutil_socket_t fd)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if ((ssl = SSL_new(tls->cur->dflt)) == NULL) {
		ERR_clear_error();
		errno = ENOMEM;
		return NULL;
	}
	if ((bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		SSL_free(ssl);
		errno = ENOMEM;
		return NULL;
	}
	/* A peer closing without close_notify has simply left (EOF). */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *
tls_socket_new(struct tls_server *tls, struct event_base *base,
    evutil_socket_t fd)
{
	struct bufferevent *bev;

	if ((bev = tls_bev_new(tls, base, fd)) == NULL)
		fio_close_keep_errno(fd);
	return bev;
}

/* session_tls.wrap: STLS, on the session's plain socket. */
static struct bufferevent *
tls_stls_new(void *arg, struct event_base *base, int fd)
{
	return tls_bev_new(arg, base, fd);
}

static const char *
tls_version(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	return ssl != NULL ? SSL_get_version(ssl) : "-";
}

static const char *
tls_cipher(struct bufferevent *bev)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	const char	*c;

	if (ssl == NULL || (c = SSL_get_cipher_name(ssl)) == NULL)
		return "-";
	return c;
}

/*
 * Why a handshake failed: OpenSSL's first queued error for bev ("wrong
 * version number", "unsupported protocol"), or how the peer left.
 */
static void
tls_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long	 e;
	const char	*r;

	if ((e = bufferevent_get_openssl_error(bev)) == 0) {
		snprintf(buf, len, "connection closed during handshake");
		return;
	}
	if ((r = ERR_reason_error_string(e)) != NULL)
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(e, buf, len);
	/* Errors beyond the first are of no use in the log. */
	while (bufferevent_get_openssl_error(bev) != 0)
		;
}

/*
 * session_tls.shutdown: one try at a close_notify on the non-blocking
 * socket (RFC 8446 section 6.1). A peer that does not take it at once
 * (a full socket buffer, a reset) is not waited for: the session is
 * freed right after, as it would be without.
 */
static void
tls_shutdown(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return;
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

void
tls_session_hooks(struct tls_server *tls, struct session_tls *hooks)
{
	memset(hooks, 0, sizeof(*hooks));
	if (tls == NULL)
		return;
	hooks->wrap = tls_stls_new;
	hooks->version = tls_version;
	hooks->cipher = tls_cipher;
	hooks->error = tls_error;
	hooks->shutdown = tls_shutdown;
	hooks->arg = tls;
}
