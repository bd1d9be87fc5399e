/*
 * env: the protocol's environment: the configuration, the user database
 * (the passwd-file), the worker pool for blocking work (password checks,
 * maildrop opens, lookups, UPDATE, releases), and the counters.
 */
#include <stdlib.h>

#include "auth/auth.h"
#include "auth/auth_pgsql.h"
#include "config.h"
#include "lib/log.h"
#include "lib/metric.h"
#include "lib/worker.h"
#include "pop3/client.h"
#include "pop3/dispatch.h"
#include "pop3/penalty.h"
#include "pop3/quick.h"
#include "store/registry.h"

/*
 * [auth] quick_jobs: the pool's share of quick work (worker.h); [mail]
 * listing_cache, the listings that make opens quicker still.
 */
static void
pop3_env_quick(struct pop3_env *env, const struct cfg *cfg)
{
	struct worker_quick q = WORKER_QUICK_DEFAULTS;

	q.enabled = cfg->quick_jobs;
	q.turn_budget_us = q.slow_us = (uint64_t)cfg->quick_limit_ms * 1000;
	worker_set_quick(env->workers, &q);
	store_cache_configure((size_t)cfg->listing_cache_kib * 1024);
}

int
pop3_env_new(struct event_base *base, struct cfg *cfg,
    struct pop3_env **env_r)
{
	struct pop3_env	*env;
	char		 err[512];

	*env_r = NULL;
	if ((env = calloc(1, sizeof(*env))) == NULL) {
		log_error("event=startup-failed step=pop3-env");
		return -1;
	}
	env->base = base;
	if (pop3_gen_new(env, cfg, &env->gen, err, sizeof(err)) == -1) {
		log_errorx("event=startup-failed step=%s: %s",
		    cfg->auth_pgsql ? "pgsql" : "passwd-file", err);
		free(env);
		return -1;
	}
	if ((env->workers = worker_pool_new(base, cfg->threads)) == NULL) {
		log_error("event=startup-failed step=worker-pool");
		goto fail_gen;
	}
	if ((env->hints = quick_hints_new()) == NULL) {
		log_error("event=startup-failed step=quick-hints");
		goto fail_workers;
	}
	pop3_env_quick(env, cfg);
	if (penalty_env_init(env) == -1) {
		log_errorx("event=startup-failed step=penalty-tables "
		    "note=\"shlimits_init() has not run\"");
		quick_hints_free(env->hints);
		goto fail_workers;
	}
	*env_r = env;
	return 0;
fail_workers:
	worker_pool_free(env->workers);
fail_gen:
	pop3_gen_unref(env->gen);
	free(env);
	return -1;
}

void
pop3_env_reload(struct pop3_env *env, struct pop3_gen *gen)
{
	const struct cfg *old = env->gen->cfg, *cfg = gen->cfg;

	if (cfg->threads != old->threads)
		log_warnx("event=reload-restart-needed key=\"[auth] threads\" "
		    "running=%d configured=%d", old->threads, cfg->threads);
	penalty_env_reload(env, cfg);
	pop3_env_quick(env, cfg);
	/* Mail locations may have moved: every login learns again. */
	quick_hints_clear(env->hints);
	/* Sessions on the old pool use it as they need it, then no more. */
	if (env->gen->pg != NULL && env->gen->pg != gen->pg)
		auth_pgsql_retire(env->gen->pg);
	pop3_gen_unref(env->gen);
	env->gen = gen;
}

void
pop3_env_free(struct pop3_env *env)
{
	if (env == NULL)
		return;
	/*
	 * From here on maildrops are released in place: a done() callback
	 * of worker_pool_free()'s last drain must not submit a job to a
	 * pool whose threads are gone (maildrop_release()).
	 */
	env->stopping = true;
	/* Lookups a session closed at the stop still waits for: answered,
	 * so that their jobs end (and free) in the pool's last drain. */
	auth_pgsql_stop_all();
	/* Runs the last done() callbacks: pending UPDATEs complete. */
	worker_pool_free(env->workers);
	pop3_gen_unref(env->gen);
	quick_hints_free(env->hints);
	penalty_env_free(env);
	free(env);
}

size_t
pop3_logged_in(const struct pop3_env *env)
{
	return (size_t)env->stats.logged_in;
}

void
pop3_stats_log(const struct pop3_env *env, bool debug)
{
	void				(*logf)(const char *, ...);
	const struct pop3_cmd		*cmds;
	const struct pop3_cmd_stats	*st;
	size_t				 n, i;

	logf = debug ? log_debug : log_info;
	logf("event=stats part=pop3 logins=%llu login_failures=%llu",
	    (unsigned long long)env->stats.logins,
	    (unsigned long long)env->stats.login_failures);
	penalty_stats_log(env, logf);
	cmds = pop3_cmd_table(&n);
	st = pop3_cmd_stats(&n);
	for (i = 0; i < n; i++)
		if (st[i].calls > 0)
			logf("event=stats part=pop3 cmd=%s calls=%llu "
			    "errors=%llu", cmds[i].name,
			    (unsigned long long)st[i].calls,
			    (unsigned long long)st[i].errors);
}

/* The command table's rows as label values: fixed names, 16 of them. */
static void
write_commands(const struct pop3_env *env, struct metric_writer *w)
{
	const struct pop3_cmd		*cmds;
	const struct pop3_cmd_stats	*st;
	size_t				 n, i;

	cmds = pop3_cmd_table(&n);
	st = pop3_cmd_stats(&n);
	metric_family(w, "evpop3d_commands_total", METRIC_COUNTER,
	    "Commands dispatched, by name (unknown and refused ones "
	    "excluded).");
	for (i = 0; i < n; i++)
		metric_u64(w, "evpop3d_commands_total", "command",
		    cmds[i].name, st[i].calls);
	metric_family(w, "evpop3d_command_errors_total", METRIC_COUNTER,
	    "Commands answered -ERR by their handler, by name.");
	for (i = 0; i < n; i++)
		metric_u64(w, "evpop3d_command_errors_total", "command",
		    cmds[i].name, st[i].errors);
	metric_family(w, "evpop3d_command_duration_seconds",
	    METRIC_HISTOGRAM, "From a command's dispatch to its reply queued "
	    "whole (RETR/TOP/LIST/UIDL: the last slice), by name.");
	for (i = 0; i < n && i < POP3_N_CMDS; i++)
		metric_hist_write(w, "evpop3d_command_duration_seconds",
		    "command", cmds[i].name, &env->metrics.cmd_latency[i]);
}

void
pop3_metrics_write(const struct pop3_env *env, struct metric_writer *w)
{
	const struct pop3_metrics *m = &env->metrics;
	struct worker_stats	   ws;
	struct store_cache_stats   cs;

	metric_family(w, "evpop3d_logins_total", METRIC_COUNTER,
	    "Successful logins.");
	metric_u64(w, "evpop3d_logins_total", NULL, NULL, env->stats.logins);
	metric_family(w, "evpop3d_login_failures_total", METRIC_COUNTER,
	    "Failed logins, by reason.");
	metric_tally_write(w, "evpop3d_login_failures_total", "reason",
	    &m->login_failed);
	metric_family(w, "evpop3d_login_duration_seconds", METRIC_HISTOGRAM,
	    "From the credentials' arrival (PASS, APOP, AUTH) to the "
	    "answer queued, failure_delay and penalty included.");
	metric_hist_write(w, "evpop3d_login_duration_seconds", NULL, NULL,
	    &m->login_time);
	metric_family(w, "evpop3d_login_penalized_total", METRIC_COUNTER,
	    "Login answers held back by an address's failure penalty.");
	metric_u64(w, "evpop3d_login_penalized_total", NULL, NULL,
	    env->stats.penalized);
	metric_family(w, "evpop3d_unauth_refused_total", METRIC_COUNTER,
	    "Connections refused over [auth] max_unauth_per_ip.");
	metric_u64(w, "evpop3d_unauth_refused_total", NULL, NULL,
	    env->stats.refused_unauth);
	write_commands(env, w);
	metric_family(w, "evpop3d_message_sent_bytes_total", METRIC_COUNTER,
	    "Message octets sent by RETR and TOP (dot-stuffed, as on the "
	    "wire).");
	metric_u64(w, "evpop3d_message_sent_bytes_total", "command", "RETR",
	    m->retr_bytes);
	metric_u64(w, "evpop3d_message_sent_bytes_total", "command", "TOP",
	    m->top_bytes);
	metric_family(w, "evpop3d_store_errors_total", METRIC_COUNTER,
	    "Mail store errors, by kind (temp, perm, in-use, gone, again, "
	    "read).");
	metric_tally_write(w, "evpop3d_store_errors_total", "kind",
	    &m->store_errors);
	metric_family(w, "evpop3d_worker_jobs", METRIC_GAUGE,
	    "Worker pool jobs queued or running (logins, lookups, UPDATE).");
	metric_u64(w, "evpop3d_worker_jobs", NULL, NULL,
	    worker_pending(env->workers));
	worker_stats(env->workers, &ws);
	metric_family(w, "evpop3d_worker_quick_jobs_total", METRIC_COUNTER,
	    "Logins and lock releases the event loop did itself "
	    "(outcome=done), or tried to and handed to a worker thread "
	    "(outcome=declined: the password or the maildrop turned out "
	    "not to be cheap).");
	metric_u64(w, "evpop3d_worker_quick_jobs_total", "outcome", "done",
	    ws.quick_done);
	metric_u64(w, "evpop3d_worker_quick_jobs_total", "outcome",
	    "declined", ws.quick_declined);
	metric_family(w, "evpop3d_worker_quick_slow_total", METRIC_COUNTER,
	    "Quick jobs slower than [auth] quick_limit, each of which sent "
	    "all such work to the worker threads for a cool-off.");
	metric_u64(w, "evpop3d_worker_quick_slow_total", NULL, NULL,
	    ws.quick_slow);
	metric_family(w, "evpop3d_worker_quick_preempted_total",
	    METRIC_COUNTER, "Quick jobs over [auth] quick_limit by the clock "
	    "only because the loop thread was preempted (it neither blocked "
	    "nor used that much CPU): no cool-off.");
	metric_u64(w, "evpop3d_worker_quick_preempted_total", NULL, NULL,
	    ws.quick_preempted);
	store_cache_stats(&cs);
	metric_family(w, "evpop3d_listing_cache_lookups_total",
	    METRIC_COUNTER, "Maildir opens that looked for a kept listing "
	    "([mail] listing_cache): hit (used, no directory read), stale "
	    "(new/ or cur/ changed since), miss (none kept).");
	metric_u64(w, "evpop3d_listing_cache_lookups_total", "result", "hit",
	    cs.hits);
	metric_u64(w, "evpop3d_listing_cache_lookups_total", "result",
	    "stale", cs.stale);
	metric_u64(w, "evpop3d_listing_cache_lookups_total", "result",
	    "miss", cs.misses);
	metric_family(w, "evpop3d_listing_cache_bytes", METRIC_GAUGE,
	    "Octets of Maildir listings kept (at most [mail] listing_cache).");
	metric_u64(w, "evpop3d_listing_cache_bytes", NULL, NULL,
	    (uint64_t)cs.bytes);
	metric_family(w, "evpop3d_listing_cache_entries", METRIC_GAUGE,
	    "Maildir listings kept.");
	metric_u64(w, "evpop3d_listing_cache_entries", NULL, NULL,
	    (uint64_t)cs.entries);
	metric_family(w, "evpop3d_worker_threads", METRIC_GAUGE,
	    "Worker pool threads ([auth] threads).");
	metric_u64(w, "evpop3d_worker_threads", NULL, NULL,
	    (uint64_t)env->gen->cfg->threads);
}
