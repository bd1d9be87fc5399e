/*
 * net/metrics: the endpoint with a real loop and a real HTTP client (a
 * thread doing blocking socket calls while the loop serves): a scrape
 * has the sources' samples; metrics_reconfigure() keeps the same
 * address, rebinds to another, keeps serving on a bad or taken address,
 * and stops on ""; metrics_render() works without HTTP.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/metric.h"
#include "net/metrics.h"

struct fetch {
	char		 addr[80];	/* "127.0.0.1:port" */
	const char	*request;
	char		 reply[65536];
	int		 connect_errno;	/* 0: connected */
	atomic_bool	 finished;
};

static void
source(const void *arg, struct metric_writer *w)
{
	metric_family(w, "t_things_total", METRIC_COUNTER, "Test.");
	metric_u64(w, "t_things_total", "kind", arg, 7);
}

static int
connect_to(const char *addr)
{
	struct sockaddr_in	 sin;
	char			 host[64];
	const char		*colon = strrchr(addr, ':');
	int			 fd;

	assert_non_null(colon);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	assert_int_equal(inet_pton(AF_INET, host, &sin.sin_addr), 1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
fetch_main(void *arg)
{
	struct fetch	*f = arg;
	size_t		 n = 0;
	ssize_t		 r;
	int		 fd;

	if ((fd = connect_to(f->addr)) == -1) {
		f->connect_errno = 1;
		atomic_store(&f->finished, true);
		return NULL;
	}
	(void)write(fd, f->request, strlen(f->request));
	while (n < sizeof(f->reply) - 1 &&
	    (r = read(fd, f->reply + n, sizeof(f->reply) - 1 - n)) > 0)
		n += (size_t)r;
	f->reply[n] = '\0';
	close(fd);
	atomic_store(&f->finished, true);
	return NULL;
}

/* Run the loop while a thread does one HTTP exchange with addr. */
static void
fetch(struct event_base *base, const char *addr, struct fetch *f)
{
	pthread_t t;

	memset(f, 0, sizeof(*f));
	snprintf(f->addr, sizeof(f->addr), "%s", addr);
	f->request = "GET /metrics HTTP/1.0\r\n\r\n";
	assert_int_equal(pthread_create(&t, NULL, fetch_main, f), 0);
	while (!atomic_load(&f->finished))
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	pthread_join(t, NULL);
}

static void
test_reconfigure(void **state)
{
	struct event_base	*base = event_base_new();
	struct metrics		*m;
	struct fetch		*f = calloc(1, sizeof(*f));
	char			 a[80], b[80], err[256];
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 busy;

	(void)state;
	assert_non_null(base);
	assert_non_null(f);
	assert_non_null(m = metrics_new(base));
	assert_int_equal(metrics_add_source(m, source, "x"), 0);
	assert_null(metrics_address(m));

	assert_int_equal(metrics_reconfigure(m, "127.0.0.1:0", err,
	    sizeof(err)), 0);
	assert_non_null(metrics_address(m));
	snprintf(a, sizeof(a), "%s", metrics_address(m));
	fetch(base, a, f);
	assert_int_equal(f->connect_errno, 0);
	assert_non_null(strstr(f->reply, " 200 OK\r\n"));
	assert_non_null(strstr(f->reply, "\nt_things_total{kind=\"x\"} 7\n"));
	assert_non_null(strstr(f->reply, "evpop3d_build_info{version="));

	/* The same text: left alone, same port. */
	assert_int_equal(metrics_reconfigure(m, "127.0.0.1:0", err,
	    sizeof(err)), 0);
	assert_string_equal(metrics_address(m), a);
	/* The same address written otherwise: left alone too. */
	assert_int_equal(metrics_reconfigure(m, " 127.0.0.1:00 ", err,
	    sizeof(err)), 0);
	assert_string_equal(metrics_address(m), a);
	/* ... and still served. */
	fetch(base, a, f);
	assert_non_null(strstr(f->reply, " 200 OK\r\n"));

	/* A bad address: refused, the old one still served. */
	err[0] = '\0';
	assert_int_equal(metrics_reconfigure(m, "nowhere:x", err,
	    sizeof(err)), -1);
	assert_true(err[0] != '\0');
	assert_string_equal(metrics_address(m), a);
	fetch(base, a, f);
	assert_non_null(strstr(f->reply, " 200 OK\r\n"));

	/* A taken port: refused too. */
	busy = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(busy, 1), 0);
	assert_int_equal(getsockname(busy, (struct sockaddr *)&sin, &len), 0);
	snprintf(b, sizeof(b), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(metrics_reconfigure(m, b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bind"));
	assert_string_equal(metrics_address(m), a);
	close(busy);

	/* Another address: the new one serves, the old one is closed. */
	assert_int_equal(metrics_reconfigure(m, "127.0.0.2:0", err,
	    sizeof(err)), 0);
	snprintf(b, sizeof(b), "%s", metrics_address(m));
	assert_true(strncmp(b, "127.0.0.2:", 10) == 0);
	fetch(base, b, f);
	assert_non_null(strstr(f->reply, "\nt_things_total{kind=\"x\"} 7\n"));
	fetch(base, a, f);
	assert_int_equal(f->connect_errno, 1);

	/* Off. */
	assert_int_equal(metrics_reconfigure(m, "", err, sizeof(err)), 0);
	assert_null(metrics_address(m));
	fetch(base, b, f);
	assert_int_equal(f->connect_errno, 1);
	assert_int_equal(metrics_reconfigure(m, NULL, err, sizeof(err)), 0);

	metrics_free(m);
	event_base_free(base);
	free(f);
}

static void
test_render_without_http(void **state)
{
	struct event_base	*base = event_base_new();
	struct metrics		*m;
	struct evbuffer		*out = evbuffer_new();
	char			*s;
	size_t			 n;
	int			 i;

	(void)state;
	assert_non_null(m = metrics_new(base));
	for (i = 0; i < METRICS_MAX_SOURCES; i++)
		assert_int_equal(metrics_add_source(m, source, "y"), 0);
	assert_int_equal(metrics_add_source(m, source, "z"), -1);
	metrics_render(m, out, METRIC_OPENMETRICS);
	n = evbuffer_get_length(out);
	s = calloc(1, n + 1);
	assert_non_null(s);
	evbuffer_remove(out, s, n);
	assert_non_null(strstr(s, "# TYPE t_things counter\n"));
	assert_non_null(strstr(s, "t_things_total{kind=\"y\"} 7\n"));
	assert_true(n > 6 && strcmp(s + n - 6, "# EOF\n") == 0);
	free(s);
	evbuffer_free(out);
	metrics_free(m);
	metrics_free(NULL);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reconfigure),
		cmocka_unit_test(test_render_without_http),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
