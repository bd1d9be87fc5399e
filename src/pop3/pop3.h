/*
 * pop3: the POP3 protocol (RFC 1939, RFC 2449, RFC 5034) over a session.
 *
 * main makes the protocol's environment (the configuration, the user
 * database, the worker pool for blocking work, the counters) and hands
 * pop3_proto and the environment to the session set; the session then
 * calls the protocol through that table alone.
 */
#ifndef EVPOP3D_POP3_H
#define EVPOP3D_POP3_H

#include <stdbool.h>

#include "session/session.h"

struct cfg;
struct event_base;
struct pop3_env;
struct pop3_gen;

/* The protocol as the session sees it; its start() takes a pop3_env. */
extern const struct session_proto pop3_proto;

/*
 * The environment for cfg on base: open the passwd-file and start the
 * worker pool. Returns 0, or -1 after logging why at level error. The
 * environment takes a reference to cfg (config.h: cfg_ref()).
 */
int	pop3_env_new(struct event_base *base, struct cfg *cfg,
	    struct pop3_env **env_r);

/*
 * A reload, in two steps. pop3_gen_new(): what sessions will start with
 * under cfg (a reference to it, and its passwd-file opened anew, or its
 * PostgreSQL pool: env's, with the cache flushed, if the [auth] pgsql
 * settings are the same, else a new one); -1
 * with the reason in err, nothing changed. pop3_env_reload(): sessions
 * from now on start with gen (the environment takes it over); running
 * sessions and their jobs keep theirs. [auth] threads keeps its value
 * until a restart (logged). pop3_gen_unref() drops a gen not used.
 */
int	pop3_gen_new(struct pop3_env *env, struct cfg *cfg,
	    struct pop3_gen **gen_r, char *err, size_t errlen);
/*
 * What pop3_gen_new() would open, checked without keeping it (evpop3d
 * -t, the supervisor's reload): the passwd-file (its unusable entries
 * counted into *unusable), or the pgsql conninfo and queries, with no
 * connection made. 0, or -1 with the reason in err.
 */
int	pop3_gen_check(const struct cfg *cfg, size_t *unusable, char *err,
	    size_t errlen);
void	pop3_env_reload(struct pop3_env *env, struct pop3_gen *gen);
struct pop3_gen *pop3_gen_ref(struct pop3_gen *gen);
void	pop3_gen_unref(struct pop3_gen *gen);
/*
 * Finish the jobs still queued or running (pending UPDATEs complete,
 * maildrops of sessions that are gone are released), then free. Free
 * the session set first: its sessions use the environment.
 */
void	pop3_env_free(struct pop3_env *env);

/* The sessions logged in now. */
size_t	pop3_logged_in(const struct pop3_env *env);
struct metric_writer;

/*
 * The protocol's metrics into w (lib/metric.h): logins and failures by
 * reason, login time, commands and errors and latency by name, message
 * octets, store errors by kind, the worker queue. README, Operations,
 * Metrics lists them.
 */
void	pop3_metrics_write(const struct pop3_env *env,
	    struct metric_writer *w);

/* Log the counters, per command too: at info level, or debug. */
void	pop3_stats_log(const struct pop3_env *env, bool debug);

#endif
