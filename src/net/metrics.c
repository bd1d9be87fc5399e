/*
 * metrics: the Prometheus endpoint on evhttp, and the registry of the
 * parts' metric sources. One evhttp per address served: a rebind makes
 * the new one before freeing the old.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/metric.h"
#include "lib/netaddr.h"
#include "net/metrics.h"

#define METRICS_BACKLOG	16

struct metrics_source {
	metrics_source_fn	*fn;
	const void		*arg;
};

struct metrics {
	struct event_base	*base;
	struct evhttp		*http;		/* NULL: not serving */
	struct cfg_listen	 conf;		/* as configured; addrlen 0:
						   not serving */
	char			 bound[80];	/* with the real port */
	time_t			 started;	/* wall clock, for the gauge */
	struct metrics_source	 src[METRICS_MAX_SOURCES];
	size_t			 n_src;
	metrics_fetch_fn	*fetch;		/* NULL: the sources answer */
	void			*fetch_arg;
};

/* A scrape waiting for metrics_fetch_done(). */
struct metrics_pending {
	struct metrics		*m;
	struct evhttp_request	*req;		/* NULL: the client has gone */
};

struct metrics *
metrics_new(struct event_base *base)
{
	struct metrics *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->base = base;
	m->started = time(NULL);
	return m;
}

int
metrics_add_source(struct metrics *m, metrics_source_fn *fn, const void *arg)
{
	if (m->n_src == METRICS_MAX_SOURCES)
		return -1;
	m->src[m->n_src].fn = fn;
	m->src[m->n_src].arg = arg;
	m->n_src++;
	return 0;
}

/* The process's own families: what runs, and since when. */
static void
write_process(const struct metrics *m, struct metric_writer *w)
{
	metric_family(w, "evpop3d_build_info", METRIC_GAUGE,
	    "Always 1; the version of the running daemon as a label.");
	metric_u64(w, "evpop3d_build_info", "version", EVPOP3D_VERSION, 1);
	metric_family(w, "evpop3d_start_time_seconds", METRIC_GAUGE,
	    "When the daemon started, in seconds since the Epoch.");
	metric_double(w, "evpop3d_start_time_seconds", NULL, NULL,
	    (double)m->started);
}

void
metrics_render(const struct metrics *m, struct evbuffer *out,
    enum metric_format format)
{
	struct metric_writer	w = { .out = out, .format = format };
	size_t			i;

	write_process(m, &w);
	for (i = 0; i < m->n_src; i++)
		m->src[i].fn(m->src[i].arg, &w);
	metric_end(&w);
}

/*
 * Content negotiation: OpenMetrics when the scraper lists it (Prometheus
 * sends "application/openmetrics-text;version=1.0.0,...;q=0.5,...");
 * else the text format 0.0.4, which every scraper reads.
 */
static enum metric_format
wanted_format(const char *accept)
{
	if (accept != NULL &&
	    strstr(accept, "application/openmetrics-text") != NULL)
		return METRIC_OPENMETRICS;
	return METRIC_TEXT;
}

static void
reply_error(struct evhttp_request *req, int code, const char *reason)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*body;

	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	if (code == HTTP_BADMETHOD)
		evhttp_add_header(h, "Allow", "GET, HEAD");
	if ((body = evbuffer_new()) != NULL)
		evbuffer_add_printf(body, "%s\n", reason);
	evhttp_send_reply(req, code, reason, body);
	if (body != NULL)
		evbuffer_free(body);
}

/* The connection of a pending scrape closes: answer nobody. */
static void
pending_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct metrics_pending *p = arg;

	(void)evcon;
	p->req = NULL;
}

/* A scrape the fetch hook answers (metrics_set_fetch()). */
static void
fetch_start(struct metrics *m, struct evhttp_request *req)
{
	struct metrics_pending *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	p->m = m;
	p->req = req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req),
	    pending_close_cb, p);
	m->fetch(m->fetch_arg, p);
}

void
metrics_fetch_done(struct metrics_pending *p, struct evbuffer *families)
{
	struct evkeyvalq	*h;
	struct evbuffer		*body;

	if (p->req == NULL) {
		free(p);
		return;
	}
	evhttp_connection_set_closecb(evhttp_request_get_connection(p->req),
	    NULL, NULL);
	/* NULL families: the workers were not asked (out of memory). */
	if (families == NULL || (body = evbuffer_new()) == NULL) {
		evhttp_send_error(p->req, HTTP_INTERNAL, NULL);
		free(p);
		return;
	}
	h = evhttp_request_get_output_headers(p->req);
	metrics_render(p->m, body, METRIC_TEXT);
	evbuffer_add_buffer(body, families);
	evhttp_add_header(h, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(p->req, HTTP_OK, "OK", body);
	evbuffer_free(body);
	free(p);
}

void
metrics_set_fetch(struct metrics *m, metrics_fetch_fn *fn, void *arg)
{
	m->fetch = fn;
	m->fetch_arg = arg;
}

/* Every request: GET or HEAD of /metrics; anything else is refused. */
static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct metrics		*m = arg;
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri != NULL ?
				    evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	enum metric_format	 fmt;
	struct evbuffer		*body;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		reply_error(req, HTTP_NOTFOUND, "Not Found");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		reply_error(req, HTTP_BADMETHOD, "Method Not Allowed");
		return;
	}
	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	fmt = wanted_format(evhttp_find_header(in, "Accept"));
	if (m->fetch != NULL) {
		evbuffer_free(body);
		fetch_start(m, req);
		return;
	}
	metrics_render(m, body, fmt);
	evhttp_add_header(h, "Content-Type", fmt == METRIC_OPENMETRICS ?
	    "application/openmetrics-text; version=1.0.0; charset=utf-8" :
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	/* evhttp sends the headers alone to a HEAD, Content-Length kept. */
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* A listening socket on l, or -1 with the step that failed in err. */
static int
listen_socket(const struct cfg_listen *l, char *err, size_t errlen)
{
	const char	*step;
	char		 ebuf[128];
	int		 fd;

	if ((fd = netaddr_bind((const struct sockaddr *)&l->addr, l->addrlen,
	    &step)) == -1)
		snprintf(err, errlen, "%s: %s: %s", l->text, step,
		    log_strerror(errno, ebuf, sizeof(ebuf)));
	return fd;
}

/* An evhttp serving the registry on l's address; NULL and err. */
static struct evhttp *
http_new(struct metrics *m, const struct cfg_listen *l, char *bound,
    size_t boundlen, char *err, size_t errlen)
{
	const char		*text = l->text;
	struct evconnlistener	*lev;
	struct evhttp		*http;
	char			 why[256];
	int			 fd;

	if ((fd = listen_socket(l, err, errlen)) == -1)
		return NULL;
	if ((http = evhttp_new(m->base)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", text);
		close(fd);
		return NULL;
	}
	lev = evconnlistener_new(m->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE,
	    METRICS_BACKLOG, fd);
	if (lev == NULL || evhttp_bind_listener(http, lev) == NULL) {
		snprintf(err, errlen, "%s: listen: %s", text,
		    log_strerror(errno, why, sizeof(why)));
		if (lev != NULL)
			evconnlistener_free(lev);
		else
			close(fd);
		evhttp_free(http);
		return NULL;
	}
	evhttp_set_max_headers_size(http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(http, METRICS_MAX_BODY);
	evhttp_set_timeout(http, METRICS_TIMEOUT);
	/* Every method reaches request_cb, which answers 405 (not 501). */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, request_cb, m);
	(void)netaddr_local(fd, bound, boundlen);
	return http;
}

int
metrics_reconfigure(struct metrics *m, const char *listen, char *err,
    size_t errlen)
{
	struct evhttp		*http = NULL;
	struct cfg_listen	 conf;
	char			 bound[sizeof(m->bound)], why[256];

	memset(&conf, 0, sizeof(conf));
	if (listen != NULL && *listen != '\0' &&
	    cfg_parse_listen(listen, &conf, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", listen, why);
		return -1;
	}
	/*
	 * The same address, however it is written ("127.0.0.1:0" and
	 * "127.0.0.1:00", or none and none): kept. Binding it again
	 * beside the old socket would fail.
	 */
	if (conf.addrlen == m->conf.addrlen &&
	    memcmp(&conf.addr, &m->conf.addr, conf.addrlen) == 0)
		return 0;
	if (conf.addrlen > 0 && (http = http_new(m, &conf, bound,
	    sizeof(bound), err, errlen)) == NULL)
		return -1;
	if (m->http != NULL) {
		evhttp_free(m->http);
		log_info("event=metrics-closed addr=%s", m->bound);
	}
	m->http = http;
	m->conf = conf;
	m->bound[0] = '\0';
	if (http != NULL) {
		memcpy(m->bound, bound, sizeof(m->bound));
		log_info("event=metrics-listen addr=%s", m->bound);
	}
	return 0;
}

const char *
metrics_address(const struct metrics *m)
{
	return m->http != NULL ? m->bound : NULL;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m);
}
