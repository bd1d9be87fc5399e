/*
 * workers: the supervisor's answers to the admin socket and the metrics
 * endpoint with [server] workers > 1, merged from every worker's own
 * (net/supervise.h, supervise_ask()). Text in, text out: each worker
 * answers as a daemon of its own would (pop3/admin.h, net/metrics.h).
 */
#ifndef EVPOP3D_WORKERS_H
#define EVPOP3D_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/control.h"

struct evbuffer;
struct metrics;
struct metrics_pending;
struct supervise_answer;
struct supervisor;

/* What the supervisor's admin commands and scrapes work on. */
struct workers_ctx {
	struct supervisor	*sup;
	struct metrics		*metrics;	/* its own families, no sources */
};

/*
 * The supervisor's admin commands (net/control.h), arg a struct
 * workers_ctx: who and kick asked of every worker and merged, stats the
 * supervisor's process families and the workers' summed, reload as
 * SIGHUP (supervise_reload()).
 */
extern const struct control_cmd	workers_control_cmds[];
extern const size_t		workers_n_control_cmds;

/* metrics_set_fetch()'s hook, arg a struct workers_ctx: a scrape. */
void	workers_metrics_fetch(void *arg, struct metrics_pending *p);

/*
 * `stats` and GET /metrics (text format): every family once, in the
 * order first seen; each sample (name and labels) the sum of the
 * workers' values. The process's own families (build info, start time)
 * are left out: the supervisor writes its own. Appended to out.
 */
void	workers_merge_metrics(const struct supervise_answer *a, size_t n,
	    struct evbuffer *out);

/*
 * `who`: the summary lines ("alice 2 (127.0.0.1 ...)") of a user in
 * several workers made one, by name; `who -1` (verbose): one header,
 * then every worker's sessions. Returns the users or sessions listed;
 * -1 if out of memory.
 */
long	workers_merge_who(const struct supervise_answer *a, size_t n,
	    bool verbose, struct evbuffer *out);

/*
 * `kick USER`: the sessions kicked and left in UPDATE, summed over the
 * workers' lines ("kicked N session(s) of ...", "N session(s) of ... in
 * UPDATE ...").
 */
void	workers_merge_kick(const struct supervise_answer *a, size_t n,
	    size_t *kicked_r, size_t *updating_r);

#endif
