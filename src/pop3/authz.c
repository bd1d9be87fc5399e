/*
 * authz: AUTHORIZATION (USER, PASS, APOP, AUTH PLAIN and LOGIN).
 *
 * Password checks and maildrop opening block (hashing, directory scans),
 * so both run as one job in the worker pool: RFC 1939 section 4 has the
 * maildrop opened and locked at PASS, so a maildrop that cannot be opened
 * fails PASS itself. The job checks the password the user database
 * has (auth_verify_stored()): the passwd-file is looked up in the job;
 * with [auth] driver = pgsql the user is looked up first, on the loop
 * (auth_pgsql.h: asynchronous, or from its cache). A login that is cheap
 * after all (a {PLAIN} password, a small maildrop on a local disk) the
 * loop does itself, at the end of the turn (login_quick(), quick.h).
 *
 * A failed login is answered failure_delay after the command was
 * dispatched, however long the check took (queue wait and hashing
 * included), so the answer's timing does not tell a known user from an
 * unknown one, nor one scheme from another. An address that failed
 * before waits longer: the penalty doubles the delay per failure, and
 * its attempts wait their turn (penalty.c).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "auth/auth_pgsql.h"
#include "config.h"
#include "lib/base64.h"
#include "lib/evpop3d.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/ratelimit.h"
#include "lib/worker.h"
#include "pop3/authz.h"
#include "pop3/client.h"
#include "pop3/maildrop.h"
#include "pop3/penalty.h"
#include "pop3/quick.h"
#include "store/registry.h"
#include "store/store.h"

/* At most one "failure_delay too short" warning per this many ms. */
#define SLOW_WARN_INTERVAL_MS	(60 * 1000)
/* A maildrop in use: looked at once more this much later (login_done()). */
#define INUSE_RETRY_US		1000

struct login_job {
	struct worker_job	 base;		/* first: we cast back */
	struct client		*c;		/* NULL once the session is gone */
	struct pop3_env		*env;
	struct pop3_gen		*gen;		/* the client's, a reference */
	bool			 apop;

	/* in */
	char			*user;
	uint64_t		 user_hash;	/* quick_user_hash() */
	char			*secret;	/* password or APOP digest */
	char			*apop_ts;
	uint64_t		 started_us;	/* dispatched, monotonic */
	uint64_t		 turn_us;	/* answer no earlier (penalty) */
	/*
	 * What the lookup found: driver = pgsql, on the loop before the
	 * job runs (looked_up); passwd-file, in the job.
	 */
	bool			 looked_up;
	bool			 found;
	enum auth_result	 lookup;
	struct auth_rec		 rec;
	char			*standin;
	unsigned char		 ipkey[IPTABLE_ADDR_MAX];	/* penalty.c */
	size_t			 ipkeylen;

	/* out */
	enum auth_result	 auth;
	enum auth_fail		 fail;		/* with AUTH_FAIL */
	enum store_err		 st;
	char			 err[256];
	struct maildrop		*md;
	bool			 local;		/* md may be quick (quick.h) */
	uint64_t		 path_hash;	/* quick_path_hash() of md's */
	bool			 checked;	/* login_check() ran */
	bool			 retried;	/* [IN-USE] once already */
	bool			 paused;	/* waiting for the retry */
};

static void
job_free(struct login_job *job)
{
	auth_free_secret(job->secret);
	free(job->user);
	free(job->apop_ts);
	auth_rec_clear(&job->rec);
	auth_free_secret(job->standin);
	pop3_gen_unref(job->gen);
	free(job);
}

/*
 * Check the credentials against what the lookup found (an unknown user:
 * against the stand-in), once: a login that goes on after a declined
 * quick open or an [IN-USE] look-again keeps the answer (the secret is
 * wiped). False when the login ends here.
 */
static bool
login_check(struct login_job *job)
{
	if (job->checked)
		return job->auth == AUTH_OK;
	job->checked = true;
	job->auth = job->lookup == AUTH_OK ? auth_verify_stored(
	    job->found ? job->rec.password : NULL, job->standin,
	    job->apop ? job->apop_ts : NULL, job->secret, &job->fail) :
	    job->lookup;
	auth_wipe(job->secret, strlen(job->secret));
	if (job->auth == AUTH_FAIL && job->fail == AUTH_FAIL_ENTRY &&
	    !job->apop && job->gen->pg == NULL)
		auth_db_warn_unusable(job->gen->auth, job->user);
	return job->auth == AUTH_OK;
}

/*
 * Open and lock the maildrop; may its next opens be quick (quick.h)? On
 * the loop, only where the hint says it was last time.
 */
static void
login_open(struct login_job *job, bool on_loop)
{
	const struct cfg	*cfg = job->gen->cfg;
	const struct store_ops	*ops;
	char			 path[4096];
	bool			 local, missing;

	job->st = store_locate(job->rec.extra, cfg->mail_driver,
	    cfg->mail_location, job->rec.name, job->rec.home, &ops, path,
	    sizeof(path), job->err, sizeof(job->err));
	if (job->st != STORE_OK)
		return;
	job->path_hash = quick_path_hash(job->env->hints, path);
	if (on_loop && (ops->quick_ok == NULL ||
	    !quick_path_known(job->env->hints, job->user_hash,
	    job->path_hash))) {
		job->st = STORE_AGAIN;		/* moved: a thread opens */
		return;
	}
	/*
	 * On the loop only when an earlier open found it local. A new
	 * user's maildrop is not there yet (statfs fails): asked again
	 * once the open has made it.
	 */
	errno = 0;
	local = ops->quick_ok != NULL && (on_loop || fio_fs_local(path));
	missing = !local && errno == ENOENT;
	job->st = ops->open(&(struct store_params){
		.path = path,
		.uidl_format = cfg->uidl_format,
		.nowait = on_loop,
		.max_msgs = 2 * QUICK_MAX_MSGS,
		.listing_cache = local,
	    }, &job->md, job->err, sizeof(job->err));
	if (job->st != STORE_OK)
		return;
	if (missing)
		local = fio_fs_local(path);
	job->local = local && (on_loop || ops->quick_ok(job->md));
}

/*
 * Worker thread: look the user up (the passwd-file; pgsql did on the
 * loop), check the credentials against what was found, then open and
 * lock the maildrop. One path for both databases: an unknown user costs
 * a check against the stand-in, a real user's stored password.
 */
static void
login_work(struct worker_job *wj)
{
	struct login_job	*job = (struct login_job *)wj;

	if (!job->looked_up) {
		job->lookup = auth_db_lookup(job->gen->auth, job->user,
		    &job->rec, &job->found, &job->standin);
		job->looked_up = true;
	}
	if (login_check(job))
		login_open(job, false);
}

/*
 * The loop, at the end of the turn (quick.h): the same, when the user's
 * last login found a small maildrop on a local disk, the passwd-file is
 * unchanged, and the password is one hash at most. Declined otherwise,
 * before anything slow, or when the open would wait: what was done here
 * (the lookup, the check) is kept for the thread.
 */
static bool
login_quick(struct worker_job *wj)
{
	struct login_job	*job = (struct login_job *)wj;

	if (!quick_login_likely(job->env->hints, job->user_hash))
		return false;
	if (!job->looked_up) {
		if (!auth_db_lookup_quick(job->gen->auth, job->user,
		    &job->lookup, &job->rec, &job->found, &job->standin))
			return false;
		job->looked_up = true;
	}
	if (job->lookup != AUTH_OK || !job->found ||
	    !auth_password_cheap(job->rec.password))
		return false;
	if (!login_check(job))
		return true;
	login_open(job, true);
	/* It would wait (a lock being released): a thread opens it. */
	return job->st != STORE_AGAIN;
}

static void	login_done(struct worker_job *);

/*
 * driver = pgsql: the lookup's answer (on the loop, maybe within
 * login_submit()). Copy it, then check the password on the pool.
 */
static void
login_looked_up(void *arg, enum auth_result res, const struct auth_rec *rec,
    const char *standin)
{
	struct login_job	*job = arg;

	job->looked_up = true;
	job->lookup = res;
	if (res == AUTH_OK && ((job->standin = strdup(standin)) == NULL ||
	    (rec != NULL && auth_rec_copy(&job->rec, rec) == -1)))
		job->lookup = AUTH_TEMPFAIL;
	job->found = job->lookup == AUTH_OK && rec != NULL;
	worker_submit_later(job->env->workers, &job->base);
}

static enum cmd_result
login_submit(struct client *c, bool apop, const char *secret,
    size_t secret_len)
{
	struct login_job	*job;
	const unsigned char	*key;
	uint64_t		 now_us = mono_us(), turn_us;

	/* max_logins_per_user, and the penalty's turn. */
	if (!penalty_attempt(c, now_us, &turn_us)) {
		pop3_login_failed(c->env, "max-logins-per-user");
		return CMD_ERR;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (job->user = strdup(c->user)) == NULL ||
	    (job->secret = strndup(secret, secret_len)) == NULL ||
	    (apop && (job->apop_ts = strdup(c->apop_ts)) == NULL)) {
		if (job != NULL)
			job_free(job);
		penalty_attempt_end(c);
		pop3_login_failed(c->env, "out-of-memory");
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	worker_job_init(&job->base, login_work, login_done);
	worker_job_quick(&job->base, login_quick);
	c->login_start_us = now_us;
	job->c = c;
	job->env = c->env;
	job->gen = pop3_gen_ref(c->gen);
	job->user_hash = quick_user_hash(c->env->hints, job->user);
	job->apop = apop;
	job->started_us = now_us;
	job->turn_us = turn_us;
	/* The address key outlives the session for penalty_failed(). */
	if (c->limited) {
		key = session_peer_key(c->s, &job->ipkeylen);
		memcpy(job->ipkey, key, job->ipkeylen);
	}
	c->login = job;
	session_hold(c->s);	/* a SASL response comes past the dispatcher */
	if (c->gen->pg != NULL) {
		auth_pgsql_lookup(c->gen->pg, job->user, login_looked_up, job);
		return CMD_WAIT;
	}
	/* After this turn's callbacks: a session closed in it gives up its
	 * maildrop first (proto_gone()). */
	worker_submit_later(c->env->workers, &job->base);
	return CMD_WAIT;
}

/*
 * A failed check took took_us, longer than failure_delay (delay_ms > 0):
 * its answer cannot be held to the fixed time. Warn, at most once a
 * minute, with the number of such answers since the last warning.
 */
static void
login_slow_warn(uint64_t took_us, int delay_ms)
{
	static struct ratelimit	 rl = { .window_ms = SLOW_WARN_INTERVAL_MS };
	uint64_t		 n;

	if ((n = ratelimit_hit(&rl, mono_ms())) == 0)
		return;
	log_warnx("event=auth-slow check_ms=%.1f failure_delay_ms=%d "
	    "count=%llu note=\"failure_delay is shorter than the password "
	    "check (hashing and the wait for a worker), so failed logins are "
	    "answered late and their timing may tell which users exist: "
	    "raise [auth] failure_delay\"",
	    (double)took_us / 1000.0, delay_ms, (unsigned long long)n);
}

/* After the failed-login pause: answer, and drop a persistent guesser. */
static void
login_failed_reply(struct session *s)
{
	struct client *c = session_ctx(s);

	session_reply(s, "-ERR [AUTH] Authentication failed.");
	pop3_login_end(c);
	if (c->auth_failures >= (unsigned)c->cfg->max_failures) {
		session_close(s, "auth-failures", true);
		return;
	}
	session_resume(s);
}

/*
 * The user database could not answer: at failure_delay, like a failed
 * login (a client retrying at once would hammer it), but neither counted
 * for max_failures nor penalized.
 */
static void
login_tempfail_reply(struct session *s)
{
	struct client *c = session_ctx(s);

	session_reply(s, "-ERR [SYS/TEMP] Authentication service "
	    "unavailable, try again later.");
	pop3_login_end(c);
	session_resume(s);
}

/* After a penalized address's turn: the login's answer. */
static void
login_ok_reply(struct session *s)
{
	struct client *c = session_ctx(s);

	session_reply(s, "+OK Logged in, %zu messages (%llu octets).",
	    c->n_msgs, (unsigned long long)c->total_octets);
	pop3_login_end(c);
	session_resume(s);
}

/* After the pause: the same job, checked already, opens again. */
static void
login_inuse_retry(struct session *s)
{
	struct client		*c = session_ctx(s);
	struct login_job	*job = c->login;

	job->paused = false;
	session_hold(s);		/* login_done() resumes */
	worker_submit_later(c->env->workers, &job->base);
}

static void
login_done(struct worker_job *wj)
{
	struct login_job	*job = (struct login_job *)wj;
	struct client		*c = job->c;
	const struct cfg	*cfg = job->gen->cfg;
	char			 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	char			 qerr[LOG_QUOTED_SIZE(sizeof(job->err))];
	uint64_t		 delay_us, took_us, at_us, now_us, job_turn_us;
	unsigned		 fails;

	if (c == NULL) {			/* the client went away */
		if (job->md != NULL)
			maildrop_release(job->env, job->md, job->local);
		/* A guess whose answer nobody waits for still counts. */
		if (job->auth == AUTH_FAIL) {
			job->env->stats.login_failures++;
			pop3_login_failed(job->env, auth_fail_name(job->fail));
			(void)penalty_failed(job->env, job->ipkey,
			    job->ipkeylen, job->started_us, job->turn_us,
			    &fails);
		}
		job_free(job);
		return;
	}
	if (job->auth == AUTH_OK && job->st == STORE_INUSE && !job->retried) {
		/*
		 * The holder may be a session of ours that has ended without
		 * our knowing yet: a client that drops a connection and logs
		 * in on the next at once can have its new PASS read before
		 * the old socket's RST in one turn, or the RST arrive a turn
		 * later. Look once more, after a turn that has read every
		 * socket: if that session is gone, it has given the maildrop
		 * up (maildrop_disown()).
		 */
		job->retried = true;
		job->paused = true;
		job->st = STORE_OK;
		job->err[0] = '\0';
		session_pause(c->s, INUSE_RETRY_US, login_inuse_retry);
		return;
	}
	c->login = NULL;

	if (job->auth != AUTH_OK || job->st != STORE_OK)
		quick_login_forget(c->env->hints, job->user_hash);
	else
		quick_login_seen(c->env->hints, job->user_hash, job->path_hash,
		    maildrop_count(job->md), job->local);
	if (job->auth != AUTH_OK) {
		c->env->stats.login_failures++;
		penalty_attempt_end(c);
		if (job->auth == AUTH_TEMPFAIL) {
			pop3_login_failed(c->env, "temp-fail");
			/* Not the client's doing: fail2ban does not match. */
			session_warnx(c->s, "event=auth-failed rip=%s user=%s "
			    "reason=temp-fail", session_peer(c->s),
			    log_quote(quser, sizeof(quser), job->user));
			at_us = job->started_us +
			    (uint64_t)cfg->failure_delay_ms * 1000;
			job_free(job);
			now_us = mono_us();
			session_pause(c->s, at_us > now_us ? at_us - now_us : 0,
			    login_tempfail_reply);
			return;
		}
		c->auth_failures++;
		/*
		 * Answer failure_delay after the command, not after the
		 * check: what the check cost must not show. A penalized
		 * address waits longer (penalty.c).
		 */
		at_us = penalty_failed(c->env, job->ipkey, job->ipkeylen,
		    job->started_us, job->turn_us, &fails);
		now_us = mono_us();
		delay_us = (uint64_t)cfg->failure_delay_ms * 1000;
		took_us = now_us - job->started_us;
		if (took_us >= delay_us && delay_us > 0)
			login_slow_warn(took_us, cfg->failure_delay_ms);
		delay_us = at_us > now_us ? at_us - now_us : 0;
		pop3_login_failed(c->env, auth_fail_name(job->fail));
		/* conf/fail2ban/evpop3d.conf matches this line. */
		session_warnx(c->s, "event=auth-failed rip=%s user=%s "
		    "reason=bad-credentials detail=%s failures=%u "
		    "delay_ms=%llu", session_peer(c->s), log_quote(quser,
		    sizeof(quser), job->user), auth_fail_name(job->fail), fails,
		    (unsigned long long)(at_us - job->started_us) / 1000);
		job_free(job);
		session_pause(c->s, delay_us, login_failed_reply);
		return;
	}

	if (job->st != STORE_OK) {
		penalty_attempt_end(c);
		pop3_store_error(c->env, job->st);
		pop3_login_failed(c->env, job->st == STORE_INUSE ?
		    "mailbox-in-use" : job->st == STORE_PERM ?
		    "mailbox-perm" : "mailbox-temp");
		session_log(c->s, "event=login-failed rip=%s user=%s reason=%s",
		    session_peer(c->s), log_quote(quser, sizeof(quser),
		    job->user), log_quote(qerr, sizeof(qerr), job->err));
		/* RFC 1939 section 4: the maildrop could not be locked. */
		session_reply(c->s, "-ERR %s %s", store_err_code(job->st),
		    job->st == STORE_INUSE ? "Mailbox is locked by another "
		    "POP3 session." : job->st == STORE_PERM ? "Unable to open "
		    "mailbox." : "Unable to open mailbox, try again later.");
		job_free(job);
		pop3_login_end(c);
		session_resume(c->s);
		return;
	}

	maildrop_attach(c, job->md);
	c->md_local = job->local;
	free(c->user);
	c->user = job->user;
	job->user = NULL;
	job_turn_us = job->turn_us;
	job_free(job);

	c->env->stats.logins++;
	c->env->stats.logged_in++;
	c->bad_cmds = 0;
	penalty_login(c);
	pop3_set_state(c, POP3_TRANSACTION);
	session_log(c->s, "event=login rip=%s user=%s messages=%zu octets=%llu",
	    session_peer(c->s), log_quote(quser, sizeof(quser), c->user),
	    c->n_msgs, (unsigned long long)c->total_octets);
	/* A penalized address's login waits for its turn too. */
	now_us = mono_us();
	if (job_turn_us > now_us) {
		session_pause(c->s, job_turn_us - now_us, login_ok_reply);
		return;
	}
	login_ok_reply(c->s);
}

void
authz_gone(struct client *c)
{
	if (c->login == NULL)
		return;
	if (c->login->paused)		/* no job runs: nothing comes back */
		job_free(c->login);
	else
		c->login->c = NULL;	/* login_done() frees it */
	c->login = NULL;
}

bool
authz_plaintext_ok(const struct client *c)
{
	switch (c->cfg->plaintext) {
	case CFG_PLAINTEXT_ALLOWED:
		return true;
	case CFG_PLAINTEXT_LOCALHOST:
		return session_secure(c->s) || session_peer_loopback(c->s);
	case CFG_PLAINTEXT_NEVER:
		break;
	}
	return session_secure(c->s);
}

/*
 * RFC 2595 section 2.3, RFC 3206 [AUTH]: refused before TLS by the
 * policy. A bad command (a client that keeps trying is dropped), not a
 * failed login: no password was checked.
 */
static enum cmd_result
plaintext_refused(struct client *c)
{
	c->have_user = 0;
	session_reply(c->s, "-ERR [AUTH] Plaintext authentication disallowed "
	    "on non-secure connections.");
	return CMD_BAD;
}

static bool
set_user(struct client *c, const char *name, size_t len)
{
	char *copy;

	if ((copy = strndup(name, len)) == NULL)
		return false;
	free(c->user);
	c->user = copy;
	return true;
}

/* RFC 1939 section 7: USER name. Existence is not revealed here. */
enum cmd_result
cmd_user(struct client *c, int argc, char **argv)
{
	(void)argc;
	if (!authz_plaintext_ok(c))
		return plaintext_refused(c);
	if (!auth_username_valid(argv[0])) {
		c->have_user = 0;
		session_reply(c->s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	if (!set_user(c, argv[0], strlen(argv[0]))) {
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	c->have_user = 1;
	session_reply(c->s, "+OK");
	return CMD_OK;
}

/* RFC 1939 section 7: PASS string, the rest of the line. */
enum cmd_result
cmd_pass(struct client *c, int argc, char **argv)
{
	(void)argc;
	if (!authz_plaintext_ok(c))
		return plaintext_refused(c);
	if (!c->have_user) {
		session_reply(c->s, "-ERR No user name given: send USER first.");
		return CMD_BAD;
	}
	c->have_user = 0;		/* a failed PASS needs a new USER */
	return login_submit(c, false, argv[0], strlen(argv[0]));
}

/* RFC 1939 section 7: APOP name digest, when enabled. */
enum cmd_result
cmd_apop(struct client *c, int argc, char **argv)
{
	size_t i;

	(void)argc;
	c->have_user = 0;
	if (!authz_plaintext_ok(c))
		return plaintext_refused(c);
	if (!c->cfg->apop || c->apop_ts == NULL) {
		session_reply(c->s, "-ERR APOP is not enabled on this server.");
		return CMD_BAD;
	}
	if (!auth_username_valid(argv[0])) {
		session_reply(c->s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	for (i = 0; argv[1][i] != '\0'; i++)
		if (!isxdigit((unsigned char)argv[1][i]))
			break;
	if (i != 32 || argv[1][i] != '\0') {
		session_reply(c->s, "-ERR [AUTH] Invalid APOP digest.");
		return CMD_BAD;
	}
	if (!set_user(c, argv[0], strlen(argv[0]))) {
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	return login_submit(c, true, argv[1], 32);
}

/*
 * RFC 4616: message = [authzid] NUL authcid NUL passwd. We do not
 * support acting as another user, so authzid must be empty or authcid.
 */
static enum cmd_result
sasl_plain(struct client *c, const char *b64, size_t b64len)
{
	unsigned char	 buf[POP3_LINE_MAX];
	const char	*authzid, *authcid, *pass, *end;
	size_t		 zlen, clen;
	int		 n;
	enum cmd_result	 r;

	if (b64len == 1 && b64[0] == '=')	/* RFC 5034: empty response */
		b64len = 0;
	if ((n = base64_decode(b64, b64len, buf, sizeof(buf))) < 0) {
		session_reply(c->s, "-ERR [AUTH] Invalid base64 data.");
		return CMD_BAD;
	}
	authzid = (const char *)buf;
	end = authzid + n;
	authcid = memchr(authzid, '\0', (size_t)n);
	pass = authcid == NULL ? NULL :
	    memchr(authcid + 1, '\0', (size_t)(end - authcid - 1));
	if (pass == NULL || memchr(pass + 1, '\0', (size_t)(end - pass - 1))
	    != NULL) {
		auth_wipe(buf, sizeof(buf));
		session_reply(c->s, "-ERR [AUTH] Invalid SASL PLAIN message.");
		return CMD_BAD;
	}
	zlen = (size_t)(authcid - authzid);
	authcid++;
	clen = (size_t)(pass - authcid);
	pass++;
	if ((zlen != 0 && (zlen != clen || memcmp(authzid, authcid, clen) != 0))) {
		auth_wipe(buf, sizeof(buf));
		session_reply(c->s, "-ERR [AUTH] Authorization identity must be "
		    "empty or the user name.");
		return CMD_BAD;
	}
	if (clen == 0 || !auth_username_valid(authcid)) {
		auth_wipe(buf, sizeof(buf));
		session_reply(c->s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	if (!set_user(c, authcid, clen)) {
		auth_wipe(buf, sizeof(buf));
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	r = login_submit(c, false, pass, (size_t)(end - pass));
	auth_wipe(buf, sizeof(buf));
	return r;
}

/*
 * SASL LOGIN (draft-murchison-sasl-login, what Outlook and older clients
 * use): the user name, then the password, each base64 in its own
 * response after a "Username:" and a "Password:" challenge. The user
 * name is kept in c->user between the two.
 */
static enum cmd_result
sasl_login_user(struct client *c, const char *b64, size_t b64len)
{
	unsigned char	 buf[POP3_LINE_MAX];
	int		 n;

	if ((n = base64_decode(b64, b64len, buf, sizeof(buf) - 1)) < 0) {
		session_reply(c->s, "-ERR [AUTH] Invalid base64 data.");
		return CMD_BAD;
	}
	buf[n] = '\0';
	if (n == 0 || memchr(buf, '\0', (size_t)n) != NULL ||
	    !auth_username_valid((const char *)buf)) {
		session_reply(c->s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	if (!set_user(c, (const char *)buf, (size_t)n)) {
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	c->sasl = SASL_LOGIN_PASS;
	session_reply(c->s, "+ UGFzc3dvcmQ6");	/* "Password:" */
	return CMD_OK;
}

static enum cmd_result
sasl_login_pass(struct client *c, const char *b64, size_t b64len)
{
	unsigned char	 buf[POP3_LINE_MAX];
	enum cmd_result	 r;
	int		 n;

	if ((n = base64_decode(b64, b64len, buf, sizeof(buf))) < 0) {
		session_reply(c->s, "-ERR [AUTH] Invalid base64 data.");
		return CMD_BAD;
	}
	if (memchr(buf, '\0', (size_t)n) != NULL) {
		auth_wipe(buf, sizeof(buf));
		session_reply(c->s, "-ERR [AUTH] Invalid SASL LOGIN password.");
		return CMD_BAD;
	}
	r = login_submit(c, false, (const char *)buf, (size_t)n);
	auth_wipe(buf, sizeof(buf));
	return r;
}

/* RFC 5034: AUTH mechanism [initial-response]. */
enum cmd_result
cmd_auth(struct client *c, int argc, char **argv)
{
	c->have_user = 0;
	if (!authz_plaintext_ok(c))
		return plaintext_refused(c);
	if (argc == 0) {
		/* Not in RFC 5034; Outlook probes with it (and "AUTH "). */
		session_reply(c->s, "+OK Supported mechanisms follow");
		session_reply(c->s, "PLAIN");
		session_reply(c->s, "LOGIN");
		session_reply(c->s, ".");
		return CMD_OK;
	}
	if (strcasecmp(argv[0], "LOGIN") == 0) {
		if (argc == 2)		/* the user name as initial response */
			return sasl_login_user(c, argv[1], strlen(argv[1]));
		c->sasl = SASL_LOGIN_USER;
		session_reply(c->s, "+ VXNlcm5hbWU6");	/* "Username:" */
		return CMD_OK;
	}
	if (strcasecmp(argv[0], "PLAIN") != 0) {
		session_reply(c->s, "-ERR Unsupported authentication mechanism.");
		return CMD_BAD;
	}
	if (argc == 2)
		return sasl_plain(c, argv[1], strlen(argv[1]));
	c->sasl = SASL_PLAIN;
	session_reply(c->s, "+ ");
	return CMD_OK;
}

void
authz_sasl_response(struct client *c, char *line, size_t len)
{
	enum sasl_wait	step = c->sasl;
	enum cmd_result	r;

	c->sasl = SASL_NONE;
	session_touch(c->s);
	if (len == 1 && line[0] == '*') {
		session_reply(c->s, "-ERR Authentication cancelled.");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		session_reply(c->s, "-ERR [AUTH] Invalid base64 data.");
		pop3_bad_command(c);
		return;
	}
	if (step == SASL_PLAIN)
		r = sasl_plain(c, line, len);
	else if (step == SASL_LOGIN_PASS)
		r = sasl_login_pass(c, line, len);
	else
		r = sasl_login_user(c, line, len);
	/* Not through the dispatcher: count a bad response here. */
	if (r == CMD_BAD)
		pop3_bad_command(c);
}
