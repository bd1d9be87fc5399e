/*
 * admin: who, kick and the counters for the admin socket (admin.h).
 * Each call walks the session set once on the loop; `who` of 10,000
 * sessions is a sort of 10,000 pointers and about a megabyte of text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/netaddr.h"
#include "pop3/admin.h"
#include "pop3/client.h"
#include "pop3/dispatch.h"

/* RFC 1939 has no unsolicited reply; a client waiting for one sees this. */
#define KICK_BYE	"-ERR [SYS/TEMP] Disconnected by the administrator."

const char *
pop3_admin_name(char *buf, size_t len, const char *name)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+=-";
	size_t n = strlen(name);

	if (n > 0 && strspn(name, safe) == n && strcmp(name, "-") != 0 &&
	    n < len) {
		memcpy(buf, name, n + 1);
		return buf;
	}
	return log_quote(buf, len, name);
}

/* The client address without its port (the summary), or "unknown". */
static void
admin_rip(struct session *s, char *buf, size_t len)
{
	const struct sockaddr *sa = session_peer_addr(s);

	(void)netaddr_host(sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), buf, len);
}

static bool
admin_logged_in(const struct client *c)
{
	return c != NULL && c->user != NULL && c->state != POP3_AUTHORIZATION;
}

/* A session that names a user: logged in, or USER given (admin.h). */
static bool
admin_named(const struct client *c)
{
	return c != NULL && c->user != NULL;
}

/* who -1: one line per session. */
static void
who_session(struct session *s, void *arg)
{
	struct evbuffer	*out = arg;
	struct client	*c = session_ctx(s);
	char		 name[LOG_QUOTED_SIZE(POP3_USER_MAX)], lip[64];
	uint64_t	 now = mono_ms();
	bool		 in = admin_logged_in(c);

	session_local(s, lip, sizeof(lip));
	/* USER: the name; LOGIN_S 0 until logged in. */
	evbuffer_add_printf(out, "%016llx %s %s %s %s %llu %llu %u %u\n",
	    (unsigned long long)session_id(s), admin_named(c) ?
	    pop3_admin_name(name, sizeof(name), c->user) : "-",
	    session_peer(s), lip,
	    c != NULL ? pop3_state_name(c->state) : "-",
	    in ? (unsigned long long)(now - c->login_ms) / 1000 : 0ULL,
	    (unsigned long long)session_age_ms(s) / 1000,
	    c != NULL ? c->n_retr : 0, c != NULL ? c->n_top : 0);
}

/* The summary's sessions: collected, then sorted by user. */
struct who_list {
	struct session	**v;
	size_t		  n, max;
};

static void
who_collect(struct session *s, void *arg)
{
	struct who_list	*l = arg;

	if (l->n < l->max && admin_named(session_ctx(s)))
		l->v[l->n++] = s;
}

static int
who_cmp(const void *a, const void *b)
{
	const struct client *ca = session_ctx(*(struct session *const *)a);
	const struct client *cb = session_ctx(*(struct session *const *)b);

	return strcmp(ca->user, cb->user);
}

/* One summary line: v[0..n) are the sessions of one user. */
static void
who_user(struct evbuffer *out, struct session **v, size_t n)
{
	const struct client	*c = session_ctx(v[0]);
	char			 name[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	char			 rip[INET6_ADDRSTRLEN];
	size_t			 i;

	evbuffer_add_printf(out, "%s %zu (", pop3_admin_name(name,
	    sizeof(name), c->user), n);
	for (i = 0; i < n && i < POP3_ADMIN_WHO_ADDRS_MAX; i++) {
		admin_rip(v[i], rip, sizeof(rip));
		evbuffer_add_printf(out, "%s%s", i > 0 ? " " : "", rip);
	}
	evbuffer_add_printf(out, "%s)\n", n > POP3_ADMIN_WHO_ADDRS_MAX ?
	    " ..." : "");
}

long
pop3_admin_who(struct session_set *set, struct evbuffer *out, bool verbose)
{
	struct who_list	 l;
	size_t		 i, j;
	long		 users = 0;

	if (verbose) {
		evbuffer_add_printf(out, "ID USER RIP LIP STATE LOGIN_S "
		    "CONNECTED_S RETR TOP\n");
		return (long)session_set_foreach(set, who_session, out);
	}
	l.n = 0;
	l.max = session_set_count(set);
	if ((l.v = calloc(l.max + 1, sizeof(*l.v))) == NULL)
		return -1;
	(void)session_set_foreach(set, who_collect, &l);
	qsort(l.v, l.n, sizeof(*l.v), who_cmp);
	for (i = 0; i < l.n; i = j, users++) {
		const struct client *c = session_ctx(l.v[i]);

		for (j = i + 1; j < l.n; j++)
			if (strcmp(c->user, ((struct client *)session_ctx(
			    l.v[j]))->user) != 0)
				break;
		who_user(out, l.v + i, j - i);
	}
	free(l.v);
	return users;
}

struct kick {
	const char	*user;
	size_t		 kicked, updating;
};

/*
 * A logged-in session of the user, or one whose login is being checked
 * on a worker (it would attach the maildrop right after). UPDATE is
 * left to finish (the client asked for it with QUIT); it closes itself.
 */
static void
kick_session(struct session *s, void *arg)
{
	struct kick	*k = arg;
	struct client	*c = session_ctx(s);

	if (c == NULL || c->user == NULL || strcmp(c->user, k->user) != 0)
		return;
	if (c->state == POP3_UPDATE) {
		k->updating++;
		return;
	}
	if (c->state != POP3_TRANSACTION && c->login == NULL)
		return;
	/* RFC 1939 section 6: no QUIT, no UPDATE; gone() releases. */
	session_close_bye(s, KICK_BYE, "kicked");
	k->kicked++;
}

size_t
pop3_admin_kick(struct session_set *set, const char *user,
    size_t *updating_r)
{
	struct kick k = { .user = user };

	(void)session_set_foreach(set, kick_session, &k);
	*updating_r = k.updating;
	return k.kicked;
}
