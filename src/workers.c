/*
 * workers: the workers' answers merged (workers.h), and the supervisor's
 * admin commands and scrapes that ask for them. Bounded by what the
 * workers send: each answer is at most CONTROL_REPLY_MAX octets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/evpop3d.h"
#include "lib/log.h"
#include "net/control.h"
#include "net/metrics.h"
#include "net/supervise.h"
#include "pop3/admin.h"
#include "pop3/pop3.h"
#include "workers.h"

/* ------------------------------------------------------------ metrics */

struct merge_sample {
	char		*key;		/* name{labels} */
	unsigned long long u;		/* integer samples, exact */
	double		 d;		/* the others */
	bool		 is_double;
};

struct merge_family {
	char			*name;
	char			*help;		/* the whole "# HELP" line */
	char			*type;		/* the whole "# TYPE" line */
	struct merge_sample	*s;
	size_t			 n, cap;
};

struct merge {
	struct merge_family	*f;
	size_t			 n, cap;
	bool			 failed;	/* out of memory */
};

/* The process's own: the supervisor writes them, once. */
static bool
merge_skipped_len(const char *name, size_t len)
{
	return (len == 18 && memcmp(name, "evpop3d_build_info", 18) == 0) ||
	    (len == 26 && memcmp(name, "evpop3d_start_time_seconds", 26) == 0);
}

static struct merge_family *
merge_family(struct merge *m, const char *name, size_t len)
{
	struct merge_family	*f;
	size_t			 i;

	for (i = m->n; i-- > 0; )
		if (strlen(m->f[i].name) == len &&
		    memcmp(m->f[i].name, name, len) == 0)
			return &m->f[i];
	if (m->n == m->cap) {
		size_t	cap = m->cap == 0 ? 64 : m->cap * 2;

		if ((f = reallocarray(m->f, cap, sizeof(*f))) == NULL)
			return NULL;
		m->f = f;
		m->cap = cap;
	}
	f = &m->f[m->n];
	memset(f, 0, sizeof(*f));
	if ((f->name = strndup(name, len)) == NULL)
		return NULL;
	m->n++;
	return f;
}

static int
merge_sample(struct merge_family *f, const char *key, size_t klen,
    const char *val)
{
	struct merge_sample	*s = NULL;
	char			*end;
	size_t			 i;
	bool			 integral = val[0] != '\0' &&
				    strspn(val, "0123456789") == strlen(val);

	for (i = 0; i < f->n; i++)
		if (strlen(f->s[i].key) == klen &&
		    memcmp(f->s[i].key, key, klen) == 0) {
			s = &f->s[i];
			break;
		}
	if (s == NULL) {
		if (f->n == f->cap) {
			size_t	cap = f->cap == 0 ? 16 : f->cap * 2;

			if ((s = reallocarray(f->s, cap, sizeof(*s))) == NULL)
				return -1;
			f->s = s;
			f->cap = cap;
		}
		s = &f->s[f->n];
		memset(s, 0, sizeof(*s));
		if ((s->key = strndup(key, klen)) == NULL)
			return -1;
		f->n++;
	}
	if (integral && !s->is_double)
		s->u += strtoull(val, &end, 10);
	else {
		if (!s->is_double) {
			s->d = (double)s->u;
			s->is_double = true;
		}
		s->d += strtod(val, &end);
	}
	return 0;
}

/* One line of a worker's exposition; cur: the family it is in. */
static void
merge_line(struct merge *m, char *line, struct merge_family **cur)
{
	struct merge_family	*f;
	char			*sp, *name;
	size_t			 len;

	if (line[0] == '#') {
		/* "# HELP name ..." or "# TYPE name ..."; others go. */
		if (strncmp(line, "# HELP ", 7) != 0 &&
		    strncmp(line, "# TYPE ", 7) != 0) {
			*cur = NULL;
			return;
		}
		name = line + 7;
		len = strcspn(name, " ");
		if (merge_skipped_len(name, len)) {
			*cur = NULL;
			return;
		}
		if ((f = merge_family(m, name, len)) == NULL) {
			m->failed = true;
			return;
		}
		*cur = f;
		if (line[2] == 'H' && f->help == NULL)
			f->help = strdup(line);
		else if (line[2] == 'T' && f->type == NULL)
			f->type = strdup(line);
		return;
	}
	if ((sp = strrchr(line, ' ')) == NULL || sp == line)
		return;
	len = (size_t)(sp - line);
	if (*cur == NULL) {
		size_t nlen = strcspn(line, "{ ");

		if (merge_skipped_len(line, nlen))
			return;
		if ((*cur = merge_family(m, line, nlen)) == NULL) {
			m->failed = true;
			return;
		}
	}
	if (merge_sample(*cur, line, len, sp + 1) == -1)
		m->failed = true;
}

static void
merge_write(const struct merge *m, struct evbuffer *out)
{
	const struct merge_family	*f;
	const struct merge_sample	*s;
	size_t				 i, j;

	for (i = 0; i < m->n; i++) {
		f = &m->f[i];
		if (f->help != NULL)
			evbuffer_add_printf(out, "%s\n", f->help);
		if (f->type != NULL)
			evbuffer_add_printf(out, "%s\n", f->type);
		for (j = 0; j < f->n; j++) {
			s = &f->s[j];
			if (s->is_double)
				evbuffer_add_printf(out, "%s %.17g\n", s->key,
				    s->d);
			else
				evbuffer_add_printf(out, "%s %llu\n", s->key,
				    s->u);
		}
	}
}

static void
merge_free(struct merge *m)
{
	size_t i, j;

	for (i = 0; i < m->n; i++) {
		for (j = 0; j < m->f[i].n; j++)
			free(m->f[i].s[j].key);
		free(m->f[i].s);
		free(m->f[i].name);
		free(m->f[i].help);
		free(m->f[i].type);
	}
	free(m->f);
}

void
workers_merge_metrics(const struct supervise_answer *a, size_t n,
    struct evbuffer *out)
{
	struct merge		 m;
	struct merge_family	*cur;
	char			*line;
	size_t			 i, len;

	memset(&m, 0, sizeof(m));
	for (i = 0; i < n; i++) {
		if (!a[i].ok)
			continue;
		cur = NULL;
		while ((line = evbuffer_readln(a[i].lines, &len,
		    EVBUFFER_EOL_LF)) != NULL) {
			merge_line(&m, line, &cur);
			free(line);
		}
	}
	if (!m.failed)
		merge_write(&m, out);
	merge_free(&m);
}

/* ---------------------------------------------------------------- who */

struct who_user {
	char	*name;		/* as written: plain or quoted */
	size_t	 sessions;
	char	 addrs[POP3_ADMIN_WHO_ADDRS_MAX * 48];
	size_t	 n_addrs;
	bool	 more;		/* " ..." */
};

static int
who_cmp(const void *a, const void *b)
{
	return strcmp(((const struct who_user *)a)->name,
	    ((const struct who_user *)b)->name);
}

/*
 * "NAME N (ADDR ADDR[ ...])" into u; a quoted name may hold spaces and
 * parentheses, so the line is read from its end. -1: not such a line.
 */
static int
who_parse(char *line, char **name_r, size_t *n_r, char **addrs_r)
{
	char	*open, *sp, *end;
	size_t	 len = strlen(line);

	if (len < 5 || line[len - 1] != ')' ||
	    (open = strrchr(line, '(')) == NULL || open < line + 3 ||
	    open[-1] != ' ')
		return -1;
	line[len - 1] = '\0';
	open[-1] = '\0';
	if ((sp = strrchr(line, ' ')) == NULL)
		return -1;
	*sp = '\0';
	*n_r = strtoul(sp + 1, &end, 10);
	if (*end != '\0')
		return -1;
	*name_r = line;
	*addrs_r = open + 1;
	return 0;
}

static void
who_add_addrs(struct who_user *u, char *addrs)
{
	char	*tok, *save = NULL;
	size_t	 used = strlen(u->addrs);

	for (tok = strtok_r(addrs, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strcmp(tok, "...") == 0 ||
		    u->n_addrs == POP3_ADMIN_WHO_ADDRS_MAX ||
		    used + strlen(tok) + 2 > sizeof(u->addrs)) {
			u->more = true;
			continue;
		}
		used += (size_t)snprintf(u->addrs + used, sizeof(u->addrs) -
		    used, "%s%s", used > 0 ? " " : "", tok);
		u->n_addrs++;
	}
}

long
workers_merge_who(const struct supervise_answer *a, size_t n, bool verbose,
    struct evbuffer *out)
{
	struct who_user	*u = NULL, *nu;
	size_t		 n_u = 0, cap = 0, i, j, sessions, len;
	char		*line, *name, *addrs;
	long		 listed = 0;
	bool		 header = false;

	for (i = 0; i < n; i++) {
		if (!a[i].ok)
			continue;
		while ((line = evbuffer_readln(a[i].lines, &len,
		    EVBUFFER_EOL_LF)) != NULL) {
			if (verbose) {
				if (strncmp(line, "ID USER ", 8) == 0) {
					if (!header)
						evbuffer_add_printf(out,
						    "%s\n", line);
					header = true;
				} else {
					evbuffer_add_printf(out, "%s\n", line);
					listed++;
				}
				free(line);
				continue;
			}
			if (who_parse(line, &name, &sessions, &addrs) == -1) {
				free(line);
				continue;
			}
			for (j = 0; j < n_u; j++)
				if (strcmp(u[j].name, name) == 0)
					break;
			if (j == n_u) {
				if (n_u == cap) {
					cap = cap == 0 ? 16 : cap * 2;
					if ((nu = reallocarray(u, cap,
					    sizeof(*u))) == NULL) {
						free(line);
						listed = -1;
						goto out;
					}
					u = nu;
				}
				memset(&u[j], 0, sizeof(u[j]));
				if ((u[j].name = strdup(name)) == NULL) {
					free(line);
					listed = -1;
					goto out;
				}
				n_u++;
			}
			u[j].sessions += sessions;
			who_add_addrs(&u[j], addrs);
			free(line);
		}
	}
	if (verbose && !header)
		evbuffer_add_printf(out, "ID USER RIP LIP STATE LOGIN_S "
		    "CONNECTED_S RETR TOP\n");
	if (verbose)
		return listed;
	qsort(u, n_u, sizeof(*u), who_cmp);
	for (j = 0; j < n_u; j++)
		evbuffer_add_printf(out, "%s %zu (%s%s)\n", u[j].name,
		    u[j].sessions, u[j].addrs, u[j].more ? " ..." : "");
	listed = (long)n_u;
out:
	for (j = 0; j < n_u; j++)
		free(u[j].name);
	free(u);
	return listed;
}

/* --------------------------------------------------------------- kick */

void
workers_merge_kick(const struct supervise_answer *a, size_t n,
    size_t *kicked_r, size_t *updating_r)
{
	size_t	 i, len, k;
	char	*line;

	*kicked_r = *updating_r = 0;
	for (i = 0; i < n; i++) {
		if (!a[i].ok)
			continue;
		while ((line = evbuffer_readln(a[i].lines, &len,
		    EVBUFFER_EOL_LF)) != NULL) {
			if (sscanf(line, "kicked %zu ", &k) == 1)
				*kicked_r += k;
			else if (strstr(line, " in UPDATE ") != NULL &&
			    sscanf(line, "%zu ", &k) == 1)
				*updating_r += k;
			free(line);
		}
	}
}

/* ------------------------------------ the supervisor's admin socket */

/* A request asked of the workers, and whom to answer. */
struct sup_call {
	struct workers_ctx	*ctx;
	struct control_req	*req;
};

/* The request line for the workers: the command and its argument. */
static void
sup_line(const struct control_req *req, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", req->cmd, req->arg[0] != '\0' ? " " :
	    "", req->arg);
}

/* Count the workers that answered OK. */
static size_t
sup_answered(const struct supervise_answer *a, size_t n)
{
	size_t i, ok = 0;

	for (i = 0; i < n; i++)
		ok += a[i].ok;
	return ok;
}

static void
sup_who_done(void *arg, const struct supervise_answer *a, size_t n)
{
	struct control_req	*req = arg;
	bool			 verbose = strcmp(req->arg, "-1") == 0;
	long			 listed;

	if (n == 0) {
		snprintf(req->err, sizeof(req->err), "cancelled");
		control_done(req, -1);
		return;
	}
	if ((listed = workers_merge_who(a, n, verbose, req->out)) == -1) {
		snprintf(req->err, sizeof(req->err), "out of memory");
		control_done(req, -1);
		return;
	}
	snprintf(req->log, sizeof(req->log), "%s=%ld workers=%zu answered=%zu",
	    verbose ? "sessions" : "users", listed, n, sup_answered(a, n));
	control_done(req, 0);
}

static void
sup_kick_done(void *arg, const struct supervise_answer *a, size_t n)
{
	struct control_req	*req = arg;
	char			 q[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	char			 name[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	size_t			 kicked, updating;

	if (n == 0) {
		snprintf(req->err, sizeof(req->err), "cancelled");
		control_done(req, -1);
		return;
	}
	workers_merge_kick(a, n, &kicked, &updating);
	snprintf(req->log, sizeof(req->log), "user=%s kicked=%zu "
	    "updating=%zu workers=%zu answered=%zu", log_quote(q, sizeof(q),
	    req->arg), kicked, updating, n, sup_answered(a, n));
	pop3_admin_name(name, sizeof(name), req->arg);
	if (kicked == 0 && updating == 0) {
		snprintf(req->err, sizeof(req->err), "no session of %.200s to "
		    "kick", name);
		control_done(req, -1);
		return;
	}
	evbuffer_add_printf(req->out, "kicked %zu session(s) of %s\n",
	    kicked, name);
	if (updating > 0)
		evbuffer_add_printf(req->out, "%zu session(s) of %s in UPDATE "
		    "close when it is done\n", updating, name);
	control_done(req, 0);
}

static void
sup_stats_done(void *arg, const struct supervise_answer *a, size_t n)
{
	struct sup_call		*call = arg;
	struct control_req	*req = call->req;

	if (n == 0) {
		snprintf(req->err, sizeof(req->err), "cancelled");
		control_done(req, -1);
		free(call);
		return;
	}
	metrics_render(call->ctx->metrics, req->out, METRIC_TEXT);
	workers_merge_metrics(a, n, req->out);
	snprintf(req->log, sizeof(req->log), "workers=%zu answered=%zu", n,
	    sup_answered(a, n));
	control_done(req, 0);
	free(call);
}

/* who, kick: asked of every worker, answered merged (workers.h). */
static int
sup_control_ask(struct control_req *req, void *arg)
{
	struct workers_ctx	*ctx = arg;
	char			 line[CONTROL_REQUEST_MAX + 8];
	supervise_answer_fn	*fn = strcmp(req->cmd, "who") == 0 ?
				    sup_who_done : sup_kick_done;

	if (fn == sup_who_done && req->arg[0] != '\0' &&
	    strcmp(req->arg, "-1") != 0) {
		snprintf(req->err, sizeof(req->err), "usage: who [-1]");
		return -1;
	}
	sup_line(req, line, sizeof(line));
	if (supervise_ask(ctx->sup, line, fn, req) == -1) {
		snprintf(req->err, sizeof(req->err), "out of memory");
		return -1;
	}
	return CONTROL_LATER;
}

static int
sup_control_stats(struct control_req *req, void *arg)
{
	struct sup_call *call;

	if ((call = calloc(1, sizeof(*call))) == NULL) {
		snprintf(req->err, sizeof(req->err), "out of memory");
		return -1;
	}
	call->ctx = arg;
	call->req = req;
	if (supervise_ask(call->ctx->sup, "stats", sup_stats_done, call) ==
	    -1) {
		free(call);
		snprintf(req->err, sizeof(req->err), "out of memory");
		return -1;
	}
	return CONTROL_LATER;
}

static int
sup_control_reload(struct control_req *req, void *arg)
{
	struct workers_ctx *ctx = arg;

	return supervise_reload(ctx->sup, req->err, sizeof(req->err));
}

const struct control_cmd workers_control_cmds[] = {
	{ "who",	CONTROL_ARG_OPTIONAL,	sup_control_ask },
	{ "kick",	CONTROL_ARG_REQUIRED,	sup_control_ask },
	{ "stats",	CONTROL_ARG_NONE,	sup_control_stats },
	{ "reload",	CONTROL_ARG_NONE,	sup_control_reload },
};
const size_t workers_n_control_cmds = sizeof(workers_control_cmds) /
    sizeof(workers_control_cmds[0]);

static void
sup_metrics_done(void *arg, const struct supervise_answer *a, size_t n)
{
	struct metrics_pending	*p = arg;
	struct evbuffer		*families;

	/* Cancelled, failed or out of memory: a 500, not a 200 without
	 * the workers' families. */
	if (n == 0 || (families = evbuffer_new()) == NULL) {
		metrics_fetch_done(p, NULL);
		return;
	}
	workers_merge_metrics(a, n, families);
	metrics_fetch_done(p, families);
	evbuffer_free(families);
}

void
workers_metrics_fetch(void *arg, struct metrics_pending *p)
{
	struct workers_ctx *ctx = arg;

	if (supervise_ask(ctx->sup, "stats", sup_metrics_done, p) == -1)
		sup_metrics_done(p, NULL, 0);
}
