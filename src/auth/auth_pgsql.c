/*
 * auth_pgsql: the PostgreSQL user database (auth_pgsql.h).
 *
 * Each connection is a small state machine driven by its socket's
 * readiness and one timer:
 *
 *	NONE -> CONNECTING (PQconnectPoll) -> PREPARING (PQsendPrepare, the
 *	password query, then the user query) -> IDLE <-> BUSY (a lookup:
 *	the password query, then the user query for a user found)
 *
 * and from any of them, on an error or the timer, WAIT (the back-off)
 * and then NONE again. A connection is opened when a lookup finds none
 * idle (one per waiting lookup, up to the pool's size), or, while the
 * database is down, by the back-off timer as a probe.
 */
#include <sys/queue.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "auth/auth_pgsql.h"
#include "auth/sqltmpl.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/ratelimit.h"

#define PGSQL_QUEUE_MAX		1024	/* lookups waiting */
#define PGSQL_BACKOFF_MIN_MS	100
#define PGSQL_BACKOFF_MAX_MS	10000
#define PGSQL_ERR_MAX		256
#define PGSQL_LOG_INTERVAL_MS	(60 * 1000)
#define PGSQL_TEXTOID		25	/* every parameter is text */
#define PGSQL_STMT_PASS		"evpop3d_pass"
#define PGSQL_STMT_USER		"evpop3d_user"
#define PGSQL_MAIL_MAX		1000

enum pgc_state {
	PGC_NONE,		/* no connection; may open one */
	PGC_CONNECTING,
	PGC_PREPARING,
	PGC_IDLE,
	PGC_BUSY,		/* a lookup's query in flight */
	PGC_WAIT,		/* back-off after a failure */
};

struct pg_req {
	TAILQ_ENTRY(pg_req)	 entry;
	char			*user;
	auth_pgsql_cb		 cb;
	void			*arg;
	struct auth_rec		 rec;
	unsigned int		 found:1;
	unsigned int		 userq:1;	/* at the user query */
};
TAILQ_HEAD(pg_reqs, pg_req);

struct pgc {
	struct auth_pgsql	*pool;
	PGconn			*conn;
	enum pgc_state		 state;
	struct event		 ev;		/* the socket */
	struct event		*tmo;		/* timeout, back-off */
	struct pg_req		*req;		/* BUSY */
	int			 prepared;	/* statements */
	char			 err[PGSQL_ERR_MAX]; /* a result's error */
	short			 watching;	/* ev's events, if ev_set */
	unsigned int		 ev_set:1;
};

struct auth_pgsql {
	LIST_ENTRY(auth_pgsql)	 entry;		/* pools */
	unsigned		 refs;
	struct event_base	*base;
	char			*conninfo;
	char			*password;	/* conninfo's, kept out
						   of the log */
	char			*pass_text, *user_text; /* as written */
	struct sqltmpl		 passq, userq;
	bool			 have_userq;
	struct pgc		*conns;
	int			 nconns;
	int			 timeout_ms;
	struct pg_reqs		 queue;
	size_t			 queued;
	bool			 down;
	uint64_t		 backoff_ms;
	struct auth_cache	*cache;		/* NULL: cache_ttl 0 */
	int			 cache_ttl_s, cache_size;
	char			*standin;	/* for unknown users */
	bool			 standin_real;	/* a found user's hash */
	struct ratelimit	 rl_query;	/* query errors' log lines */
	struct ratelimit	 rl_queue;	/* full queue */
	bool			 retired;	/* no longer current */
	bool			 stopped;	/* auth_pgsql_stop_all() */
};

/* Every pool, for auth_pgsql_stop_all(). */
static LIST_HEAD(, auth_pgsql) pools = LIST_HEAD_INITIALIZER(pools);

static void	pgc_io(evutil_socket_t, short, void *);
static void	pgc_timer(evutil_socket_t, short, void *);
static void	pgc_fail(struct pgc *, const char *);
static void	pool_dispatch(struct auth_pgsql *);
static void	pgc_idle(struct pgc *);

/*
 * libpq's message, one line, without the conninfo's password (libpq
 * does not put it in, but a message quoting the conninfo would).
 */
static void
pool_errmsg(const struct auth_pgsql *p, const char *msg, char *buf,
    size_t len)
{
	char	*s, *o;
	size_t	 n;

	snprintf(buf, len, "%s", msg != NULL && *msg != '\0' ? msg :
	    "unknown error");
	/* One line: each run of white space one space, none at the end. */
	for (s = o = buf; *s != '\0'; s++) {
		if (*s == '\n' || *s == '\t' || *s == '\r')
			*s = ' ';
		if (*s != ' ' || (o > buf && o[-1] != ' '))
			*o++ = *s;
	}
	*o = '\0';
	for (n = strlen(buf); n > 0 && buf[n - 1] == ' '; n--)
		buf[n - 1] = '\0';
	if (p->password != NULL && *p->password != '\0')
		while ((s = strstr(buf, p->password)) != NULL)
			memset(s, '*', strlen(p->password));
}

static void
pgc_watch(struct pgc *pc, short what)
{
	evutil_socket_t	fd = PQsocket(pc->conn);

	if (pc->ev_set && event_get_fd(&pc->ev) == fd && pc->watching == what)
		return;		/* as it is: no epoll_ctl */
	if (pc->ev_set)
		event_del(&pc->ev);
	event_assign(&pc->ev, pc->pool->base, fd, what | EV_PERSIST, pgc_io,
	    pc);
	event_add(&pc->ev, NULL);
	pc->ev_set = 1;
	pc->watching = what;
}

static void
pgc_arm(struct pgc *pc, uint64_t ms)
{
	struct timeval	tv = { .tv_sec = (time_t)(ms / 1000),
			    .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(pc->tmo, &tv);
}

/* Close pc's connection, if any. */
static void
pgc_close(struct pgc *pc)
{
	if (pc->ev_set)
		event_del(&pc->ev);
	pc->ev_set = 0;
	evtimer_del(pc->tmo);
	if (pc->conn != NULL)
		PQfinish(pc->conn);
	pc->conn = NULL;
	pc->prepared = 0;
	pc->err[0] = '\0';
}

static void
req_free(struct pg_req *r)
{
	auth_rec_clear(&r->rec);
	free(r->user);
	free(r);
}

/* Answer r and free it. */
static void
req_done(struct auth_pgsql *p, struct pg_req *r, enum auth_result res)
{
	char	cost[64];

	if (res == AUTH_OK && r->found) {
		if (p->cache != NULL)
			(void)auth_cache_put(p->cache, r->user, &r->rec,
			    mono_ms());
		/*
		 * Unknown users cost what the first user found costs, taken
		 * once: a later cheap hash does not make them cheaper (nor
		 * tell which users exist), and a lookup pays nothing here.
		 */
		if (!p->standin_real && auth_password_cost(r->rec.password,
		    cost, sizeof(cost)) == 0) {
			char *s = strdup(r->rec.password);

			if (s != NULL) {
				auth_free_secret(p->standin);
				p->standin = s;
				p->standin_real = true;
			}
		}
	}
	r->cb(r->arg, res, res == AUTH_OK && r->found ? &r->rec : NULL,
	    p->standin);
	req_free(r);
}

/* Every waiting lookup: AUTH_TEMPFAIL. */
static void
pool_fail_queue(struct auth_pgsql *p)
{
	struct pg_req	*r;

	while ((r = TAILQ_FIRST(&p->queue)) != NULL) {
		TAILQ_REMOVE(&p->queue, r, entry);
		p->queued--;
		req_done(p, r, AUTH_TEMPFAIL);
	}
}

static void
pool_up(struct auth_pgsql *p)
{
	p->backoff_ms = PGSQL_BACKOFF_MIN_MS;
	if (p->down) {
		p->down = false;
		log_info("event=pgsql-up");
	}
}

/* Start connecting pc (NONE). */
static void
pgc_connect(struct pgc *pc)
{
	static const char *const keys[] = { "dbname",
	    "fallback_application_name", NULL };
	struct auth_pgsql	*p = pc->pool;
	const char		*vals[] = { p->conninfo, EVPOP3D_NAME, NULL };

	/* The conninfo (expanded from dbname), shown in pg_stat_activity
	 * as "evpop3d" unless it sets application_name. */
	pc->state = PGC_CONNECTING;
	if ((pc->conn = PQconnectStartParams(keys, vals, 1)) == NULL) {
		pgc_fail(pc, "out of memory");
		return;
	}
	if (PQstatus(pc->conn) == CONNECTION_BAD || PQsocket(pc->conn) < 0) {
		pgc_fail(pc, PQerrorMessage(pc->conn));
		return;
	}
	/* As if PQconnectPoll() had said WRITING (libpq's manual). */
	pgc_watch(pc, EV_WRITE);
	pgc_arm(pc, (uint64_t)p->timeout_ms);
}

/* After a send: flush what libpq could not write yet. 0 or -1. */
static int
pgc_flush(struct pgc *pc)
{
	int	r;

	if ((r = PQflush(pc->conn)) == -1) {
		pgc_fail(pc, PQerrorMessage(pc->conn));
		return -1;
	}
	pgc_watch(pc, r == 1 ? EV_READ | EV_WRITE : EV_READ);
	return 0;
}

/*
 * pc has nothing to do: wait for the next lookup, or close if the pool
 * is retired and none waits. Then hand out what waits.
 */
static void
pgc_idle(struct pgc *pc)
{
	struct auth_pgsql	*p = pc->pool;

	evtimer_del(pc->tmo);
	if (p->retired && TAILQ_EMPTY(&p->queue)) {
		pgc_close(pc);
		pc->state = PGC_NONE;
		return;
	}
	pc->state = PGC_IDLE;
	pgc_watch(pc, EV_READ);	/* a close from the server */
	pool_dispatch(p);
}

/* Prepare the next statement, or become IDLE. */
static void
pgc_prepare(struct pgc *pc)
{
	struct auth_pgsql	*p = pc->pool;
	const struct sqltmpl	*t;
	Oid			 types[SQLTMPL_NVARS];
	const char		*name;
	int			 k;

	if (pc->prepared == 0) {
		t = &p->passq;
		name = PGSQL_STMT_PASS;
	} else if (pc->prepared == 1 && p->have_userq) {
		t = &p->userq;
		name = PGSQL_STMT_USER;
	} else {
		pool_up(p);
		pgc_idle(pc);
		return;
	}
	for (k = 0; k < t->nparams; k++)
		types[k] = PGSQL_TEXTOID;
	pc->state = PGC_PREPARING;
	if (PQsendPrepare(pc->conn, name, t->sql, t->nparams, types) == 0) {
		pgc_fail(pc, PQerrorMessage(pc->conn));
		return;
	}
	if (pgc_flush(pc) == 0)
		pgc_arm(pc, (uint64_t)p->timeout_ms);
}

/* Send r's next query on pc. */
static void
pgc_send(struct pgc *pc, struct pg_req *r)
{
	struct auth_pgsql	*p = pc->pool;
	const struct sqltmpl	*t = r->userq ? &p->userq : &p->passq;
	const char		*vals[SQLTMPL_NVARS];
	char			 local[POP3_USER_MAX + 1];

	pc->req = r;
	pc->state = PGC_BUSY;
	pc->err[0] = '\0';
	sqltmpl_values(t, r->user, local, sizeof(local), vals);
	if (PQsendQueryPrepared(pc->conn, r->userq ? PGSQL_STMT_USER :
	    PGSQL_STMT_PASS, t->nparams, vals, NULL, NULL, 0) == 0) {
		pgc_fail(pc, PQerrorMessage(pc->conn));
		return;
	}
	if (pgc_flush(pc) == 0)
		pgc_arm(pc, (uint64_t)p->timeout_ms);
}

/* A text column by either name, or NULL (absent or SQL NULL). */
static const char *
res_field(const PGresult *res, const char *name, const char *alt)
{
	int	col;

	if ((col = PQfnumber(res, name)) < 0 && alt != NULL)
		col = PQfnumber(res, alt);
	if (col < 0 || PQgetisnull(res, 0, col))
		return NULL;
	return PQgetvalue(res, 0, col);
}

/* A uid or gid column: decimal, else (uid_t)-1. */
static unsigned long
res_id(const PGresult *res, const char *name, const char *alt)
{
	const char		*s = res_field(res, name, alt), *q;
	unsigned long long	 v = 0;

	if (s == NULL || *s == '\0')
		return (unsigned long)-1;
	for (q = s; *q != '\0'; q++) {
		if (*q < '0' || *q > '9' || v > 0xffffffffULL)
			return (unsigned long)-1;
		v = v * 10 + (unsigned long long)(*q - '0');
	}
	return v >= 0xffffffffULL ? (unsigned long)-1 : (unsigned long)v;
}

static int
rec_set(char **field, const char *v, size_t max)
{
	char	*s;

	if (strlen(v) > max || (s = strdup(v)) == NULL)
		return -1;
	free(*field);
	*field = s;
	return 0;
}

/*
 * One result of r's query into r (the password query: password, user and
 * the userdb fields; the user query: the userdb fields). Problems go to
 * pc->err: the lookup then fails with AUTH_TEMPFAIL.
 */
static void
pgc_take(struct pgc *pc, struct pg_req *r, const PGresult *res)
{
	const char	*what = r->userq ? "user_query" : "password_query";
	const char	*v;
	char		 mail[PGSQL_MAIL_MAX + 16];
	int		 n;

	if (pc->err[0] != '\0')
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pool_errmsg(pc->pool, PQresultErrorMessage(res), pc->err,
		    sizeof(pc->err));
		return;
	}
	if ((n = PQntuples(res)) == 0) {
		r->found = 0;
		return;
	}
	if (n > 1) {
		snprintf(pc->err, sizeof(pc->err), "%s returned %d rows for "
		    "one user", what, n);
		return;
	}
	if (!r->userq) {
		if (PQfnumber(res, "password") < 0) {
			snprintf(pc->err, sizeof(pc->err), "password_query "
			    "returns no column named password");
			return;
		}
		r->found = 1;
		v = res_field(res, "password", NULL);
		if (rec_set(&r->rec.password, v != NULL ? v : "", 4096) == -1 ||
		    rec_set(&r->rec.name, r->user, POP3_USER_MAX) == -1 ||
		    rec_set(&r->rec.home, "", 0) == -1 ||
		    rec_set(&r->rec.extra, "", 0) == -1)
			goto toolong;
		if ((v = res_field(res, "user", NULL)) != NULL) {
			if (!auth_username_valid(v)) {
				snprintf(pc->err, sizeof(pc->err),
				    "password_query returned an invalid user "
				    "name");
				return;
			}
			if (rec_set(&r->rec.name, v, POP3_USER_MAX) == -1)
				goto toolong;
		}
	}
	if ((v = res_field(res, "home", "userdb_home")) != NULL &&
	    rec_set(&r->rec.home, v, 4095) == -1)
		goto toolong;
	if (PQfnumber(res, "uid") >= 0 || PQfnumber(res, "userdb_uid") >= 0)
		r->rec.uid = (uid_t)res_id(res, "uid", "userdb_uid");
	if (PQfnumber(res, "gid") >= 0 || PQfnumber(res, "userdb_gid") >= 0)
		r->rec.gid = (gid_t)res_id(res, "gid", "userdb_gid");
	if ((v = res_field(res, "mail", "userdb_mail")) != NULL &&
	    *v != '\0') {
		/* store_locate() reads it as the passwd-file's field */
		if (strlen(v) > PGSQL_MAIL_MAX || strpbrk(v, " \t\r\n")) {
			snprintf(pc->err, sizeof(pc->err), "%s returned a "
			    "mail location with white space or too long",
			    what);
			return;
		}
		snprintf(mail, sizeof(mail), "userdb_mail=%s", v);
		if (rec_set(&r->rec.extra, mail, sizeof(mail)) == -1)
			goto toolong;
	}
	return;
 toolong:
	snprintf(pc->err, sizeof(pc->err), "%s returned a value too long "
	    "(or out of memory)", what);
}

/* pc's command is complete (PQgetResult() gave NULL). */
static void
pgc_complete(struct pgc *pc)
{
	struct auth_pgsql	*p = pc->pool;
	struct pg_req		*r;
	char			 q[LOG_QUOTED_SIZE(PGSQL_ERR_MAX)];
	uint64_t		 n;

	if (pc->state == PGC_PREPARING) {
		if (pc->err[0] != '\0') {
			/* A query the server refuses: no login works. */
			pgc_fail(pc, pc->err);
			return;
		}
		pc->prepared++;
		pgc_prepare(pc);
		return;
	}
	r = pc->req;
	evtimer_del(pc->tmo);
	if (pc->err[0] == '\0' && r->found && !r->userq && p->have_userq) {
		r->userq = 1;
		pgc_send(pc, r);
		return;
	}
	pc->req = NULL;
	if (pc->err[0] != '\0') {
		if ((n = ratelimit_hit(&p->rl_query, mono_ms())) > 0)
			log_warnx("event=pgsql-query-failed error=%s "
			    "count=%llu", log_quote(q, sizeof(q), pc->err),
			    (unsigned long long)n);
		pc->err[0] = '\0';
		req_done(p, r, AUTH_TEMPFAIL);
	} else {
		pool_up(p);
		req_done(p, r, AUTH_OK);
	}
	pgc_idle(pc);
}

/*
 * The server closed pc's idle connection (an idle timeout, a restart):
 * not yet a failure of the database. pc opens another at once, so that
 * a database gone is seen now rather than at the next login: only if
 * that connect fails is the database down (pgc_fail()). While down (the
 * back-off's probe opens), or retired, pc just has no connection.
 */
static void
pgc_gone(struct pgc *pc)
{
	struct auth_pgsql	*p = pc->pool;

	pgc_close(pc);
	pc->state = PGC_NONE;
	if (!p->down && !p->retired && !p->stopped)
		pgc_connect(pc);
	else
		pool_dispatch(p);
}

/* Read what came; each complete command goes to pgc_complete(). */
static void
pgc_read(struct pgc *pc)
{
	PGresult	*res;

	if (PQconsumeInput(pc->conn) == 0) {
		pgc_fail(pc, PQerrorMessage(pc->conn));
		return;
	}
	while (pc->state == PGC_PREPARING || pc->state == PGC_BUSY) {
		if (PQisBusy(pc->conn))
			return;
		if ((res = PQgetResult(pc->conn)) == NULL) {
			pgc_complete(pc);
			continue;	/* a next query may be out */
		}
		if (pc->state == PGC_PREPARING) {
			if (PQresultStatus(res) != PGRES_COMMAND_OK &&
			    pc->err[0] == '\0')
				pool_errmsg(pc->pool,
				    PQresultErrorMessage(res), pc->err,
				    sizeof(pc->err));
		} else
			pgc_take(pc, pc->req, res);
		PQclear(res);
	}
	if (pc->state == PGC_IDLE && PQstatus(pc->conn) == CONNECTION_BAD)
		pgc_gone(pc);
}

static void
pgc_io(evutil_socket_t fd, short what, void *arg)
{
	struct pgc		*pc = arg;
	PostgresPollingStatusType st;

	(void)fd;
	switch (pc->state) {
	case PGC_CONNECTING:
		st = PQconnectPoll(pc->conn);
		if (st == PGRES_POLLING_FAILED) {
			pgc_fail(pc, PQerrorMessage(pc->conn));
		} else if (st == PGRES_POLLING_OK) {
			if (PQsetnonblocking(pc->conn, 1) == -1) {
				pgc_fail(pc, PQerrorMessage(pc->conn));
				return;
			}
			pgc_prepare(pc);
		} else	/* the socket may have changed (several hosts) */
			pgc_watch(pc, st == PGRES_POLLING_READING ? EV_READ :
			    EV_WRITE);
		return;
	case PGC_PREPARING:
	case PGC_BUSY:
		if ((what & EV_WRITE) && pgc_flush(pc) == -1)
			return;
		if (what & EV_READ)
			pgc_read(pc);
		return;
	case PGC_IDLE:
		/* Notices, or the server closing: see which. */
		if (PQconsumeInput(pc->conn) == 0 ||
		    PQstatus(pc->conn) == CONNECTION_BAD)
			pgc_gone(pc);
		return;
	case PGC_NONE:
	case PGC_WAIT:
		break;
	}
}

/* Is a connection on its way up (a probe or an on-demand connect)? */
static int
pool_opening(const struct auth_pgsql *p)
{
	int	i, n = 0;

	for (i = 0; i < p->nconns; i++)
		if (p->conns[i].state == PGC_CONNECTING ||
		    p->conns[i].state == PGC_PREPARING)
			n++;
	return n;
}

static void
pgc_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pgc		*pc = arg;
	struct auth_pgsql	*p = pc->pool;
	char			 why[64];

	(void)fd;
	(void)what;
	if (pc->state == PGC_WAIT) {
		pc->state = PGC_NONE;
		/* While down, one probe at a time; else on demand. */
		if (p->down && pool_opening(p) == 0)
			pgc_connect(pc);
		else
			pool_dispatch(p);
		return;
	}
	snprintf(why, sizeof(why), "no answer within %d ms", p->timeout_ms);
	pgc_fail(pc, why);
}

/*
 * pc failed (msg: why): drop its connection, fail its lookup, wait the
 * back-off. The first failure after success is logged: the database is
 * down until a connection works again. While down, no lookup waits.
 */
static void
pgc_fail(struct pgc *pc, const char *msg)
{
	struct auth_pgsql	*p = pc->pool;
	struct pg_req		*r = pc->req;
	char			 err[PGSQL_ERR_MAX];
	char			 q[LOG_QUOTED_SIZE(PGSQL_ERR_MAX)];

	pool_errmsg(p, msg, err, sizeof(err));
	pgc_close(pc);
	pc->req = NULL;
	pc->state = PGC_WAIT;
	pgc_arm(pc, p->backoff_ms);
	log_debug("event=pgsql-connection-failed retry_ms=%llu error=%s",
	    (unsigned long long)p->backoff_ms, log_quote(q, sizeof(q), err));
	p->backoff_ms *= 2;
	if (p->backoff_ms > PGSQL_BACKOFF_MAX_MS)
		p->backoff_ms = PGSQL_BACKOFF_MAX_MS;
	if (!p->down) {
		p->down = true;
		log_warnx("event=pgsql-down error=%s note=\"logins of users "
		    "not in the cache answer [SYS/TEMP] until it is back\"",
		    log_quote(q, sizeof(q), err));
	}
	if (r != NULL)
		req_done(p, r, AUTH_TEMPFAIL);
	pool_fail_queue(p);
}

/* Give waiting lookups to idle connections; open more if needed. */
static void
pool_dispatch(struct auth_pgsql *p)
{
	struct pg_req	*r;
	size_t		 opening;
	int		 i;

	for (i = 0; i < p->nconns && !TAILQ_EMPTY(&p->queue); i++) {
		if (p->conns[i].state != PGC_IDLE)
			continue;
		r = TAILQ_FIRST(&p->queue);
		TAILQ_REMOVE(&p->queue, r, entry);
		p->queued--;
		pgc_send(&p->conns[i], r);
	}
	if (p->down)
		return;		/* the back-off's probe opens */
	opening = (size_t)pool_opening(p);
	for (i = 0; i < p->nconns && p->queued > opening; i++)
		if (p->conns[i].state == PGC_NONE) {
			pgc_connect(&p->conns[i]);
			opening++;
		}
}

/* See auth_pgsql.h. */
void
auth_pgsql_lookup(struct auth_pgsql *p, const char *user, auth_pgsql_cb cb,
    void *arg)
{
	const struct auth_rec	*rec;
	struct pg_req		*r;
	uint64_t		 n;
	int			 i;

	if (p->cache != NULL &&
	    (rec = auth_cache_get(p->cache, user, mono_ms())) != NULL) {
		cb(arg, AUTH_OK, rec, p->standin);
		return;
	}
	if (p->stopped) {
		cb(arg, AUTH_TEMPFAIL, NULL, p->standin);
		return;
	}
	if (p->down) {
		for (i = 0; i < p->nconns; i++)
			if (p->conns[i].state == PGC_IDLE)
				break;
		if (i == p->nconns) {
			cb(arg, AUTH_TEMPFAIL, NULL, p->standin);
			return;
		}
	}
	if (p->queued >= PGSQL_QUEUE_MAX) {
		if ((n = ratelimit_hit(&p->rl_queue, mono_ms())) > 0)
			log_warnx("event=pgsql-queue-full queued=%d count=%llu",
			    PGSQL_QUEUE_MAX, (unsigned long long)n);
		cb(arg, AUTH_TEMPFAIL, NULL, p->standin);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->user = strdup(user)) == NULL) {
		free(r);
		cb(arg, AUTH_TEMPFAIL, NULL, p->standin);
		return;
	}
	r->cb = cb;
	r->arg = arg;
	r->rec.uid = (uid_t)-1;
	r->rec.gid = (gid_t)-1;
	TAILQ_INSERT_TAIL(&p->queue, r, entry);
	p->queued++;
	if (log_debug_enabled()) {
		char	quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];

		log_debug("event=pgsql-lookup user=%s queued=%zu",
		    log_quote(quser, sizeof(quser), user), p->queued);
	}
	pool_dispatch(p);
}

/* True if host (one of a host= list) needs no DNS lookup. */
static bool
host_literal(const char *h, size_t len)
{
	char		buf[256];
	unsigned char	addr[sizeof(struct in6_addr)];

	if (len == 0 || h[0] == '/' || h[0] == '@')
		return true;
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, h, len);
	buf[len] = '\0';
	return strcmp(buf, "localhost") == 0 ||
	    inet_pton(AF_INET, buf, addr) == 1 ||
	    inet_pton(AF_INET6, buf, addr) == 1;
}

/*
 * The conninfo's syntax and hosts; its password into *pw_r if wanted.
 * host and hostaddr not in the conninfo are libpq's from the environment
 * (PGHOST, PGHOSTADDR), which PQconninfoParse() leaves out. A service
 * (service=, PGSERVICE) is refused: its file could name a host.
 */
static int
conninfo_check(const char *conninfo, char **pw_r, char *err, size_t errlen)
{
	PQconninfoOption	*opts, *o;
	const char		*host = NULL, *hostaddr = NULL, *h, *e;
	const char		*service = NULL;
	char			*msg = NULL;
	int			 rv = 0;

	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL) {
		snprintf(err, errlen, "[auth] pgsql_connect: %s", msg != NULL ?
		    msg : "out of memory");
		if (err[0] != '\0' && err[strlen(err) - 1] == '\n')
			err[strlen(err) - 1] = '\0';
		PQfreemem(msg);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
		else if (strcmp(o->keyword, "service") == 0)
			service = o->val;
		else if (strcmp(o->keyword, "password") == 0 && pw_r != NULL &&
		    (*pw_r = strdup(o->val)) == NULL)
			rv = -1;
	}
	if (host == NULL)
		host = getenv("PGHOST");
	if (hostaddr == NULL)
		hostaddr = getenv("PGHOSTADDR");
	if (service == NULL)
		service = getenv("PGSERVICE");
	if (rv == 0 && service != NULL && *service != '\0') {
		snprintf(err, errlen, "[auth] pgsql_connect: service %s (or "
		    "PGSERVICE) is refused: its file could name a host, and "
		    "resolving it would block the event loop", service);
		PQconninfoFree(opts);
		return -1;
	}
	if (host != NULL && (hostaddr == NULL || *hostaddr == '\0'))
		for (h = host; rv == 0; h = e + 1) {
			if ((e = strchr(h, ',')) == NULL)
				e = h + strlen(h);
			if (!host_literal(h, (size_t)(e - h))) {
				snprintf(err, errlen, "[auth] pgsql_connect: "
				    "host %.*s is a name, and resolving it "
				    "would block the event loop: give a "
				    "socket directory, an address, or "
				    "hostaddr=", (int)(e - h), h);
				rv = -1;
			}
			if (*e == '\0')
				break;
		}
	else if (rv == -1)
		snprintf(err, errlen, "out of memory");
	PQconninfoFree(opts);
	return rv;
}

/* See auth_pgsql.h. */
int
auth_pgsql_check(const struct auth_pgsql_params *pp, char *err,
    size_t errlen)
{
	struct sqltmpl	t;
	char		why[256];

	if (pp->conninfo == NULL) {
		snprintf(err, errlen, "[auth] pgsql_connect: required with "
		    "driver = pgsql");
		return -1;
	}
	if (conninfo_check(pp->conninfo, NULL, err, errlen) == -1)
		return -1;
	if (sqltmpl_parse(pp->password_query, &t, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "[auth] password_query: %s", why);
		return -1;
	}
	sqltmpl_free(&t);
	if (pp->user_query != NULL && *pp->user_query != '\0') {
		if (sqltmpl_parse(pp->user_query, &t, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "[auth] user_query: %s", why);
			return -1;
		}
		sqltmpl_free(&t);
	}
	return 0;
}

/* A stand-in before any user was found: SHA512-CRYPT of random bytes. */
static char *
pool_dummy(void)
{
	unsigned char	rnd[16];
	char		hex[sizeof(rnd) * 2 + 1], *s;
	size_t		i;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return NULL;
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(hex + i * 2, 3, "%02x", rnd[i]);
	s = auth_password_hash(hex);
	auth_wipe(rnd, sizeof(rnd));
	auth_wipe(hex, sizeof(hex));
	return s;
}

static void
pool_free(struct auth_pgsql *p)
{
	struct pg_req	*r;
	int		 i;

	for (i = 0; p->conns != NULL && i < p->nconns; i++) {
		r = p->conns[i].req;
		p->conns[i].req = NULL;
		if (p->conns[i].tmo != NULL) {
			pgc_close(&p->conns[i]);
			event_free(p->conns[i].tmo);
		}
		if (r != NULL)
			req_done(p, r, AUTH_TEMPFAIL);
	}
	pool_fail_queue(p);
	if (p->refs != (unsigned)-1)	/* listed: auth_pgsql_new() */
		LIST_REMOVE(p, entry);
	free(p->conns);
	auth_cache_free(p->cache);
	sqltmpl_free(&p->passq);
	sqltmpl_free(&p->userq);
	auth_free_secret(p->password);
	auth_free_secret(p->conninfo);
	free(p->pass_text);
	free(p->user_text);
	auth_free_secret(p->standin);
	free(p);
}

/* See auth_pgsql.h. */
int
auth_pgsql_new(struct event_base *base, const struct auth_pgsql_params *pp,
    struct auth_pgsql **pool_r, char *err, size_t errlen)
{
	struct auth_pgsql	*p;
	char			 why[256];
	int			 i;

	*pool_r = NULL;
	if (auth_pgsql_check(pp, err, errlen) == -1)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto nomem;
	p->refs = (unsigned)-1;		/* not listed yet */
	p->base = base;
	p->nconns = pp->connections > 0 ? pp->connections : 1;
	p->timeout_ms = pp->timeout_ms;
	p->backoff_ms = PGSQL_BACKOFF_MIN_MS;
	p->cache_ttl_s = pp->cache_ttl_s;
	p->cache_size = pp->cache_size;
	TAILQ_INIT(&p->queue);
	ratelimit_init(&p->rl_query, PGSQL_LOG_INTERVAL_MS);
	ratelimit_init(&p->rl_queue, PGSQL_LOG_INTERVAL_MS);
	if ((p->conninfo = strdup(pp->conninfo)) == NULL ||
	    (p->pass_text = strdup(pp->password_query)) == NULL ||
	    (p->user_text = strdup(pp->user_query != NULL ?
	    pp->user_query : "")) == NULL ||
	    (p->standin = pool_dummy()) == NULL ||
	    (p->conns = calloc((size_t)p->nconns, sizeof(*p->conns))) == NULL)
		goto nomem;
	if (conninfo_check(pp->conninfo, &p->password, err, errlen) == -1 ||
	    sqltmpl_parse(p->pass_text, &p->passq, why, sizeof(why)) == -1 ||
	    (*p->user_text != '\0' && sqltmpl_parse(p->user_text, &p->userq,
	    why, sizeof(why)) == -1)) {
		pool_free(p);
		return -1;	/* checked above: out of memory */
	}
	p->have_userq = *p->user_text != '\0';
	if (pp->cache_ttl_s > 0 && (p->cache = auth_cache_new(
	    (size_t)pp->cache_size, (uint64_t)pp->cache_ttl_s * 1000)) == NULL)
		goto nomem;
	for (i = 0; i < p->nconns; i++) {
		p->conns[i].pool = p;
		p->conns[i].state = PGC_NONE;
		if ((p->conns[i].tmo = evtimer_new(base, pgc_timer,
		    &p->conns[i])) == NULL)
			goto nomem;
	}
	p->refs = 1;
	LIST_INSERT_HEAD(&pools, p, entry);
	*pool_r = p;
	return 0;
 nomem:
	snprintf(err, errlen, "[auth] driver = pgsql: %s", strerror(ENOMEM));
	if (p != NULL)
		pool_free(p);
	return -1;
}

struct auth_pgsql *
auth_pgsql_ref(struct auth_pgsql *p)
{
	p->refs++;
	return p;
}

void
auth_pgsql_unref(struct auth_pgsql *p)
{
	if (p == NULL || --p->refs > 0)
		return;
	pool_free(p);
}

/* See auth_pgsql.h. */
bool
auth_pgsql_same(const struct auth_pgsql *p, const struct auth_pgsql_params *pp)
{
	return strcmp(p->conninfo, pp->conninfo) == 0 &&
	    strcmp(p->pass_text, pp->password_query) == 0 &&
	    strcmp(p->user_text, pp->user_query != NULL ? pp->user_query :
	    "") == 0 && p->nconns == pp->connections &&
	    p->timeout_ms == pp->timeout_ms &&
	    p->cache_ttl_s == pp->cache_ttl_s &&
	    p->cache_size == pp->cache_size;
}

void
auth_pgsql_flush(struct auth_pgsql *p)
{
	if (p->cache != NULL)
		auth_cache_flush(p->cache);
}

/* See auth_pgsql.h. */
void
auth_pgsql_retire(struct auth_pgsql *p)
{
	int	i;

	p->retired = true;
	/* A probe in back-off goes on: the sessions left may need it. */
	for (i = 0; i < p->nconns; i++)
		if (p->conns[i].state == PGC_IDLE) {
			pgc_close(&p->conns[i]);
			p->conns[i].state = PGC_NONE;
		}
}

/* See auth_pgsql.h. */
void
auth_pgsql_stop_all(void)
{
	struct auth_pgsql	*p;
	struct pg_req		*r;
	int			 i;

	LIST_FOREACH(p, &pools, entry) {
		p->stopped = true;
		for (i = 0; i < p->nconns; i++) {
			r = p->conns[i].req;
			p->conns[i].req = NULL;
			pgc_close(&p->conns[i]);
			p->conns[i].state = PGC_NONE;
			if (r != NULL)
				req_done(p, r, AUTH_TEMPFAIL);
		}
		pool_fail_queue(p);
	}
}
