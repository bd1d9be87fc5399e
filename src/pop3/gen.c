/*
 * gen: what a session starts with and keeps, the configuration and the
 * user database (client.h, struct pop3_gen). A reload makes a new one;
 * the old one goes with the last session or job holding it.
 *
 * [auth] driver = pgsql: the PostgreSQL pool is shared by the gens whose
 * pgsql settings are the same (a reload that changed other keys keeps
 * the connections, and flushes the cache so that a reload is also the
 * way to forget cached passwords). A reload that changed them makes a
 * new pool; the old one closes its connections once idle (env.c,
 * auth_pgsql_retire()) and is freed with the last gen holding it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_pgsql.h"
#include "config.h"
#include "pop3/client.h"

static void
gen_pgsql_params(const struct cfg *cfg, struct auth_pgsql_params *pp)
{
	*pp = (struct auth_pgsql_params){
		.conninfo = cfg->pgsql_connect,
		.password_query = cfg->password_query,
		.user_query = cfg->user_query,
		.connections = cfg->pgsql_connections,
		.timeout_ms = cfg->pgsql_timeout * 1000,
		.cache_ttl_s = cfg->cache_ttl,
		.cache_size = cfg->cache_size,
	};
}

int
pop3_gen_check(const struct cfg *cfg, size_t *unusable, char *err,
    size_t errlen)
{
	struct auth_db			*db;
	struct auth_pgsql_params	 pp;
	char				 why[1024];

	*unusable = 0;
	if (cfg->auth_pgsql) {
		gen_pgsql_params(cfg, &pp);
		return auth_pgsql_check(&pp, err, errlen);
	}
	if (auth_db_open(cfg->passwd_file, cfg->allow_shrink ?
	    AUTH_DB_ALLOW_SHRINK : 0, &db, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "[auth] passwd_file: %s", why);
		return -1;
	}
	*unusable = auth_db_unusable(db);
	auth_db_free(db);
	return 0;
}

int
pop3_gen_new(struct pop3_env *env, struct cfg *cfg, struct pop3_gen **gen_r,
    char *err, size_t errlen)
{
	struct pop3_gen			*gen;
	struct auth_pgsql_params	 pp;
	struct auth_pgsql		*prev;

	*gen_r = NULL;
	if ((gen = calloc(1, sizeof(*gen))) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (cfg->auth_pgsql) {
		gen_pgsql_params(cfg, &pp);
		prev = env->gen != NULL ? env->gen->pg : NULL;
		if (prev != NULL && auth_pgsql_same(prev, &pp)) {
			gen->pg = auth_pgsql_ref(prev);
			auth_pgsql_flush(prev);
		} else if (auth_pgsql_new(env->base, &pp, &gen->pg, err,
		    errlen) == -1) {
			free(gen);
			return -1;
		}
	} else if (auth_db_open(cfg->passwd_file, cfg->allow_shrink ?
	    AUTH_DB_ALLOW_SHRINK : 0, &gen->auth, err, errlen) == -1) {
		free(gen);
		return -1;
	}
	gen->refs = 1;
	gen->cfg = cfg_ref(cfg);
	*gen_r = gen;
	return 0;
}

struct pop3_gen *
pop3_gen_ref(struct pop3_gen *gen)
{
	gen->refs++;
	return gen;
}

void
pop3_gen_unref(struct pop3_gen *gen)
{
	if (gen == NULL || --gen->refs > 0)
		return;
	auth_db_free(gen->auth);
	auth_pgsql_unref(gen->pg);
	cfg_free(gen->cfg);
	free(gen);
}
