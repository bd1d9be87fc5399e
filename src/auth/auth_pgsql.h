/*
 * auth_pgsql: users in PostgreSQL, asked through libpq's asynchronous API
 * on the event loop ([auth] driver = pgsql).
 *
 * A pool of connections opened on demand (never before the first login,
 * so after the privilege drop), each with the queries prepared once;
 * lookups wait their turn first in, first out (a bounded queue) and go
 * out as PQsendQueryPrepared() with the user name as parameters
 * (sqltmpl.h). Nothing on the loop blocks: connect, send, flush and read
 * follow the socket's readiness through libevent, and a query that does
 * not answer within the timeout drops its connection. A connection that
 * fails waits a back-off (0.1 s doubling to 10 s) before the next try.
 * The database going down and coming back is logged once per change
 * (event=pgsql-down error=..., event=pgsql-up); while it is down a lookup
 * answers AUTH_TEMPFAIL at once, unless the cache has the user.
 *
 * The loop's thread only. A pool is shared by reference (a reload whose
 * [auth] pgsql settings did not change keeps the pool, and flushes the
 * cache; one that changed them retires it); the last auth_pgsql_unref()
 * frees it.
 */
#ifndef EVPOP3D_AUTH_PGSQL_H
#define EVPOP3D_AUTH_PGSQL_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"

struct auth_pgsql;
struct event_base;

struct auth_pgsql_params {
	const char	*conninfo;	/* libpq "host=... dbname=..." */
	const char	*password_query;	/* sqltmpl.h template */
	const char	*user_query;	/* "" or NULL: none */
	int		 connections;	/* >= 1 */
	int		 timeout_ms;	/* connect, and each query */
	int		 cache_ttl_s;	/* 0: no cache */
	int		 cache_size;
};

/*
 * What evpop3d -t checks without connecting: the templates, the
 * conninfo's syntax, and that no host name would need a DNS lookup (it
 * would block the loop: give a socket directory, an address, or
 * hostaddr=). 0, or -1 with "[auth] KEY: reason" in err.
 */
int	auth_pgsql_check(const struct auth_pgsql_params *p, char *err,
	    size_t errlen);

/* A new pool (no connection yet): 0, or -1 with the reason in err. */
int	auth_pgsql_new(struct event_base *base,
	    const struct auth_pgsql_params *p, struct auth_pgsql **pool_r,
	    char *err, size_t errlen);
struct auth_pgsql *auth_pgsql_ref(struct auth_pgsql *pool);
void	auth_pgsql_unref(struct auth_pgsql *pool);
/* Would a pool made from p be the same as pool's? */
bool	auth_pgsql_same(const struct auth_pgsql *pool,
	    const struct auth_pgsql_params *p);
/* Forget the cached users (a reload). */
void	auth_pgsql_flush(struct auth_pgsql *pool);
/*
 * pool is no longer the one new sessions use (a reload made another):
 * close its connections once idle. Lookups of the sessions still on it
 * open one again, for as long as they need it.
 */
void	auth_pgsql_retire(struct auth_pgsql *pool);
/*
 * The daemon stops: every pool's lookups in flight or waiting answer
 * AUTH_TEMPFAIL now (their callbacks run within this call), connections
 * close, later lookups fail at once. Before the worker pool is freed, so
 * that the logins those answers start are finished and freed with it.
 */
void	auth_pgsql_stop_all(void);

/*
 * The answer to a lookup: res AUTH_OK with rec the user, or rec NULL
 * for a user the database does not know; AUTH_TEMPFAIL if the database
 * could not answer. standin is the stored password to check an unknown
 * user's password against, for auth_verify_stored(): the first user
 * found's (taken once, so it costs what that hash costs), or before
 * any was found a SHA512-CRYPT of random bytes. rec and standin are
 * valid in the call only.
 */
typedef void	(*auth_pgsql_cb)(void *arg, enum auth_result res,
		    const struct auth_rec *rec, const char *standin);

/*
 * Look user up (a valid user name, auth_username_valid()). cb runs
 * exactly once: within this call for a cached user, a database known
 * to be down or a full queue, else later from the loop.
 */
void	auth_pgsql_lookup(struct auth_pgsql *pool, const char *user,
	    auth_pgsql_cb cb, void *arg);

#endif
