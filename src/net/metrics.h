/*
 * metrics: the Prometheus endpoint ([metrics] listen): GET /metrics over
 * HTTP/1.1, served by libevent's evhttp on the daemon's own event loop.
 *
 * The endpoint knows no part's counters: main registers one source per
 * part (server_metrics_write(), pop3_metrics_write()) and each writes its
 * families through a struct metric_writer (lib/metric.h) when a scrape
 * comes. metrics_render() gives the same exposition without HTTP (the
 * admin socket's "stats").
 *
 * Hostile clients: request headers are bounded (METRICS_MAX_HEADERS),
 * bodies too (METRICS_MAX_BODY), a connection idle or slow for
 * METRICS_TIMEOUT seconds is closed, only GET and HEAD are answered (405
 * otherwise), any path but /metrics is 404. evhttp in libevent 2.1 has
 * no cap on concurrent connections: the timeout bounds how long each
 * lives; listen on loopback or firewall the port (README, Metrics).
 */
#ifndef EVPOP3D_NET_METRICS_H
#define EVPOP3D_NET_METRICS_H

#include <stddef.h>

#include "lib/metric.h"

#define METRICS_MAX_HEADERS	8192	/* octets, request line included */
#define METRICS_MAX_BODY	1024
#define METRICS_TIMEOUT		10	/* seconds, per read or write */
#define METRICS_MAX_SOURCES	8

struct event_base;
struct evbuffer;
struct metrics;

/* A part's metrics, written into w at each scrape (loop thread). */
typedef void	metrics_source_fn(const void *arg, struct metric_writer *w);

/*
 * A registry on base, serving nothing yet (metrics_reconfigure() binds).
 * NULL if out of memory.
 */
struct metrics	*metrics_new(struct event_base *base);
/*
 * Add a source; the exposition has them in the order added, after the
 * process's own families (evpop3d_build_info, start time). arg must
 * outlive m. -1 when METRICS_MAX_SOURCES are there already.
 */
int		 metrics_add_source(struct metrics *m, metrics_source_fn *fn,
		    const void *arg);
/*
 * Serve on listen ("ADDR:PORT" as [server] listen takes it; port 0
 * picks one), or stop serving when listen is NULL or "". The same
 * address as now, compared as parsed (not as written), is left alone
 * (its connections go on); another one is
 * bound first and the old one closed only once it is, so a failure
 * (logged by the caller from err) leaves the endpoint as it was.
 * Logs "event=metrics-listen addr=..." with the real port on a new
 * binding. Returns 0, or -1 with a reason in err.
 */
int		 metrics_reconfigure(struct metrics *m, const char *listen,
		    char *err, size_t errlen);
/* The address served, with its real port ("127.0.0.1:9110"), or NULL. */
const char	*metrics_address(const struct metrics *m);
/* The whole exposition, as a scrape would get it, appended to out. */
void		 metrics_render(const struct metrics *m, struct evbuffer *out,
		    enum metric_format format);
/*
 * [server] workers > 1: the supervisor's registry has no sources; each
 * scrape calls fn(arg, p) instead, which gathers the workers' families
 * (net/supervise.h) and answers with metrics_fetch_done() (text format
 * always). p is valid until then, even if the client goes away.
 */
struct metrics_pending;
typedef void	metrics_fetch_fn(void *arg, struct metrics_pending *p);
void		 metrics_set_fetch(struct metrics *m, metrics_fetch_fn *fn,
		    void *arg);
/*
 * Answer p: the process's own families, then families (text format,
 * drained); families NULL (the workers could not be asked): 500. Frees
 * p.
 */
void		 metrics_fetch_done(struct metrics_pending *p,
		    struct evbuffer *families);
/* Close the endpoint and its connections, and free m. NULL is fine. */
void		 metrics_free(struct metrics *m);

#endif
