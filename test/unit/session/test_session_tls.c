/*
 * The session over a real TLS connection: STLS on a socketpair whose
 * other end is an OpenSSL client driven by the test, with a throwaway
 * ECDSA certificate made here. The session never sees OpenSSL: the test
 * provides the session_tls hooks, as net/tls.c does for the daemon.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/monotime.h"
#include "session/session.h"
#include "session/session_int.h"	/* s->reason */

#define WAIT_MS		10000
#define MAX_LINES	8

struct tenv {
	struct event_base	*base;
	struct session_set	*set;
	SSL_CTX			*sctx, *cctx;
	SSL			*cssl;		/* the client's */
	int			 cfd;		/* the client's end */
	struct session		*s;		/* while it lives */
	char			 lines[MAX_LINES][64];
	bool			 secure_at[MAX_LINES];
	unsigned		 n_lines, gones;
	char			 reason[32];	/* s->reason at gone() */
	char			 rx[1024];	/* the client's plaintext */
	size_t			 rx_len;
};

static struct tenv *cur;

/* ------------------------------------------------ the fake protocol */

static int
fake_start(struct session *s, void *arg)
{
	struct tenv *e = arg;

	e->s = s;
	session_reply(s, "+OK hi");
	return 0;
}

static void
fake_input(struct session *s, char *line, size_t len)
{
	struct tenv *e = cur;

	if (e->n_lines < MAX_LINES) {
		snprintf(e->lines[e->n_lines], sizeof(e->lines[0]), "%.*s",
		    (int)len, line);
		e->secure_at[e->n_lines] = session_secure(s);
		e->n_lines++;
	}
	if (strcmp(line, "STLS") == 0) {
		session_reply(s, "+OK go");
		assert_int_equal(session_starttls(s), 0);
	} else if (strcmp(line, "QUIT") == 0) {
		session_reply(s, "+OK bye");
		session_close(s, "quit", true);
	} else
		session_reply(s, "ok %s", line);
}

static void
fake_overlong(struct session *s)
{
	(void)s;
}

static void
fake_gone(struct session *s)
{
	cur->gones++;
	snprintf(cur->reason, sizeof(cur->reason), "%s", s->reason);
	cur->s = NULL;
}

static const struct session_proto fake_proto = {
	.start = fake_start,
	.input = fake_input,
	.overlong = fake_overlong,
	.gone = fake_gone,
};

/* ---------------------------------------------- the TLS hooks (net's) */

static struct bufferevent *
hook_wrap(void *arg, struct event_base *base, int fd)
{
	struct tenv		*e = arg;
	struct bufferevent	*bev;
	SSL			*ssl;

	if ((ssl = SSL_new(e->sctx)) == NULL ||
	    (bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	return bev;
}

static const char *
hook_version(struct bufferevent *bev)
{
	return SSL_get_version(bufferevent_openssl_get_ssl(bev));
}

static const char *
hook_cipher(struct bufferevent *bev)
{
	return SSL_get_cipher_name(bufferevent_openssl_get_ssl(bev));
}

static void
hook_error(struct bufferevent *bev, char *buf, size_t len)
{
	(void)bev;
	snprintf(buf, len, "handshake failed");
	ERR_clear_error();
}

static void
hook_shutdown(struct bufferevent *bev)
{
	(void)SSL_shutdown(bufferevent_openssl_get_ssl(bev));
	ERR_clear_error();
}

/* ------------------------------------------------------ the harness */

/* A self-signed P-256 certificate for ctx, made now. */
static void
use_throwaway_cert(SSL_CTX *ctx)
{
	EVP_PKEY	*pk = EVP_EC_gen("P-256");
	X509		*x = X509_new();
	X509_NAME	*n;

	assert_true(pk != NULL && x != NULL);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, pk), 1);
	n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"test.example", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pk), 1);
	X509_free(x);
	EVP_PKEY_free(pk);
}

/* A session on a socketpair (a plain socket, as the daemon's). */
static struct tenv *
env_new(void)
{
	struct tenv		*e = calloc(1, sizeof(*e));
	struct sockaddr_in	 sin = { .sin_family = AF_INET,
				    .sin_port = htons(4242) };
	int			 sv[2];

	assert_non_null(e);
	cur = e;
	e->sctx = SSL_CTX_new(TLS_server_method());
	e->cctx = SSL_CTX_new(TLS_client_method());
	assert_true(e->sctx != NULL && e->cctx != NULL);
	SSL_CTX_set_mode(e->sctx, SSL_MODE_RELEASE_BUFFERS);
	use_throwaway_cert(e->sctx);
	SSL_CTX_set_verify(e->cctx, SSL_VERIFY_NONE, NULL);
	assert_non_null(e->base = event_base_new());
	e->set = session_set_new(e->base, &(struct session_params){
	    .proto = &fake_proto, .arg = e, .line_max = 512,
	    .write_timeout = 10, .handshake_timeout = 10,
	    .tls = { .wrap = hook_wrap, .version = hook_version,
	    .cipher = hook_cipher, .error = hook_error,
	    .shutdown = hook_shutdown, .arg = e } });
	assert_non_null(e->set);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[1]), 0);
	e->cfd = sv[1];
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_non_null(session_new_socket(e->set, sv[0],
	    (struct sockaddr *)&sin, sizeof(sin), NULL, 0));
	return e;
}

static int
teardown(void **state)
{
	struct tenv *e = cur;

	(void)state;
	if (e == NULL)
		return 0;
	session_set_free(e->set);
	SSL_free(e->cssl);
	if (e->cfd != -1)
		close(e->cfd);
	SSL_CTX_free(e->sctx);
	SSL_CTX_free(e->cctx);
	event_base_free(e->base);
	free(e);
	cur = NULL;
	return 0;
}

/* One turn of the session's loop, and a short wait for the client. */
static void
turn(struct tenv *e)
{
	struct pollfd pfd = { .fd = e->cfd, .events = POLLIN };

	event_base_loop(e->base, EVLOOP_NONBLOCK);
	(void)poll(&pfd, 1, 1);
	event_base_loop(e->base, EVLOOP_NONBLOCK);
}

#define WAIT_FOR(e, cond) do {						\
	uint64_t until_ = mono_ms() + WAIT_MS;				\
	while (!(cond)) {						\
		assert_true(mono_ms() < until_);			\
		turn(e);						\
	}								\
} while (0)

static void
client_send(struct tenv *e, const char *text)
{
	assert_int_equal(write(e->cfd, text, strlen(text)),
	    (ssize_t)strlen(text));
}

/* Plaintext from the session until rx ends with want. */
static void
client_read_until(struct tenv *e, const char *want)
{
	uint64_t	until = mono_ms() + WAIT_MS;
	size_t		wl = strlen(want);
	ssize_t		n;

	while (e->rx_len < wl || memcmp(e->rx + e->rx_len - wl, want, wl)) {
		assert_true(mono_ms() < until);
		turn(e);
		n = read(e->cfd, e->rx + e->rx_len, sizeof(e->rx) - 1 -
		    e->rx_len);
		if (n > 0)
			e->rx_len += (size_t)n;
		else
			assert_true(n == -1 && errno == EAGAIN);
	}
	e->rx[e->rx_len] = '\0';
}

/* The client's handshake, the session's loop turning meanwhile. */
static void
client_handshake(struct tenv *e)
{
	uint64_t	until = mono_ms() + WAIT_MS;
	int		r;

	assert_non_null(e->cssl = SSL_new(e->cctx));
	assert_int_equal(SSL_set_fd(e->cssl, e->cfd), 1);
	SSL_set_connect_state(e->cssl);
	while ((r = SSL_do_handshake(e->cssl)) != 1) {
		r = SSL_get_error(e->cssl, r);
		assert_true(r == SSL_ERROR_WANT_READ ||
		    r == SSL_ERROR_WANT_WRITE);
		assert_true(mono_ms() < until);
		turn(e);
	}
}

static void
tls_send(struct tenv *e, const char *text)
{
	assert_int_equal(SSL_write(e->cssl, text, (int)strlen(text)),
	    (int)strlen(text));
}

/*
 * What comes over TLS until the session closes: the octets in out, and
 * whether it ended with a close_notify (else an EOF without one).
 */
static bool
tls_read_to_close(struct tenv *e, char *out, size_t outlen)
{
	uint64_t	until = mono_ms() + WAIT_MS;
	size_t		len = 0;
	int		r;

	for (;;) {
		assert_true(mono_ms() < until);
		r = SSL_read(e->cssl, out + len, (int)(outlen - 1 - len));
		if (r > 0) {
			len += (size_t)r;
			continue;
		}
		r = SSL_get_error(e->cssl, r);
		if (r == SSL_ERROR_WANT_READ) {
			turn(e);
			continue;
		}
		out[len] = '\0';
		ERR_clear_error();
		return r == SSL_ERROR_ZERO_RETURN;
	}
}

/* ------------------------------------------------------------ tests */

/*
 * RFC 2595 section 4 and CVE-2011-0411: STLS's "+OK" goes out in
 * plaintext before any TLS octet; what the client pipelined behind STLS
 * (a whole line and a partial one) is discarded, never run; the next
 * line comes over TLS to proto->input with session_secure() true; and
 * QUIT ends with the reply and a close_notify.
 */
static void
test_stls(void **state)
{
	struct tenv	*e = env_new();
	char		 got[256];

	(void)state;
	client_read_until(e, "+OK hi\r\n");
	assert_false(session_secure(e->s));
	client_send(e, "STLS\r\nINJECTED\r\nPART");
	client_read_until(e, "+OK go\r\n");
	/* In plaintext, and nothing else: no TLS record from the server. */
	assert_string_equal(e->rx, "+OK hi\r\n+OK go\r\n");
	assert_int_equal(e->n_lines, 1);
	assert_string_equal(e->lines[0], "STLS");
	assert_false(session_secure(e->s));

	client_handshake(e);
	WAIT_FOR(e, session_secure(e->s));
	tls_send(e, "HELLO\r\n");
	WAIT_FOR(e, e->n_lines == 2);
	assert_string_equal(e->lines[1], "HELLO");
	assert_true(e->secure_at[1]);

	tls_send(e, "QUIT\r\n");
	assert_true(tls_read_to_close(e, got, sizeof(got)));
	assert_string_equal(got, "ok HELLO\r\n+OK bye\r\n");
	WAIT_FOR(e, e->gones == 1 && session_set_count(e->set) == 0);
	assert_string_equal(e->reason, "quit");
	/* INJECTED and PART never reached the protocol. */
	assert_int_equal(e->n_lines, 3);
}

/* No TLS after STLS's "+OK": the session closes, no line taken. */
static void
test_stls_not_tls(void **state)
{
	struct tenv *e = env_new();

	(void)state;
	client_read_until(e, "+OK hi\r\n");
	client_send(e, "STLS\r\n");
	client_read_until(e, "+OK go\r\n");
	client_send(e, "USER x\r\nPASS y\r\n");
	WAIT_FOR(e, e->gones == 1 && session_set_count(e->set) == 0);
	assert_string_equal(e->reason, "tls-handshake-failed");
	assert_int_equal(e->n_lines, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stls, teardown),
		cmocka_unit_test_teardown(test_stls_not_tls, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
