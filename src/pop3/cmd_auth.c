/*
 * cmd_auth: AUTHORIZATION (USER, PASS, APOP, AUTH PLAIN) and UPDATE.
 *
 * Password checks and maildrop opening block (hashing, directory scans),
 * so both run as one job in the worker pool: RFC 1939 section 4 has the
 * maildrop opened and locked at PASS, so a maildrop that cannot be opened
 * fails PASS itself. UPDATE's removals run as a job too, and so does
 * every release of a maildrop (QUIT or not): the unlock is file I/O.
 * Releases go ahead of queued logins (worker_submit_urgent()): QUIT's
 * +OK and the next login of the same user wait for them.
 *
 * A failed login is answered failure_delay after the command was
 * dispatched, however long the check took (queue wait and hashing
 * included), so the answer's timing does not tell a known user from an
 * unknown one, nor one scheme from another.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "config.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "pop3/pop3_cmd.h"
#include "lib/ratelimit.h"
#include "net/server.h"
#include "session/session.h"
#include "store/registry.h"
#include "store/store.h"
#include "lib/worker.h"

/* At most one "failure_delay too short" warning per this many ms. */
#define SLOW_WARN_INTERVAL_MS	(60 * 1000)

enum job_kind {
	JOB_LOGIN_PLAIN,
	JOB_LOGIN_APOP,
	JOB_RELEASE,	/* commit(): QUIT's UPDATE, or only the unlock */
};

struct login_job {
	struct worker_job	 base;		/* first: we cast back */
	struct session		*s;		/* NULL once the session is gone */
	struct server		*srv;
	enum job_kind		 kind;
	uint64_t		 sess_id;	/* UPDATE: for the log line */
	char			 rip[sizeof(((struct session *)0)->rip)];

	/* in */
	char			*user;
	char			*secret;	/* password or APOP digest */
	char			*apop_ts;
	uint64_t		 started_us;	/* dispatched, monotonic */

	/* out */
	enum auth_result	 auth;
	enum store_err		 st;
	char			 err[256];
	struct maildrop		*md;
	size_t			 failed;	/* UPDATE: removals that failed */
	uint8_t			*del;		/* UPDATE: the marks, or NULL */
	size_t			 n_marked;	/* UPDATE: how many */
};

static void
job_free(struct login_job *job)
{
	if (job->secret != NULL) {
		auth_wipe(job->secret, strlen(job->secret));
		free(job->secret);
	}
	free(job->user);
	free(job->apop_ts);
	free(job->del);
	free(job);
}

/* Worker thread: check the credentials, then open and lock the maildrop. */
static void
login_work(struct worker_job *wj)
{
	struct login_job	*job = (struct login_job *)wj;
	struct server		*srv = job->srv;
	struct auth_userinfo	 info;
	const struct store_ops	*ops;
	struct store_params	 params;
	char			 path[4096];

	if (job->kind == JOB_LOGIN_APOP)
		job->auth = auth_db_verify_apop(srv->auth, job->user,
		    job->apop_ts, job->secret, &info);
	else
		job->auth = auth_db_verify_plain(srv->auth, job->user,
		    job->secret, &info);
	auth_wipe(job->secret, strlen(job->secret));
	if (job->auth != AUTH_OK)
		return;

	job->st = store_locate(info.extra, srv->cfg->mail_driver,
	    srv->cfg->mail_location, info.name, info.home, &ops, path,
	    sizeof(path), job->err, sizeof(job->err));
	if (job->st != STORE_OK)
		return;
	params.path = path;
	params.uidl_format = srv->cfg->uidl_format;
	job->st = ops->open(&params, &job->md, job->err, sizeof(job->err));
}

static void	login_done(struct worker_job *);
static void	update_work(struct worker_job *);
static void	update_done(struct worker_job *);

/*
 * Release md without UPDATE (RFC 1939 section 6) for a session that has
 * gone or never got it. The maildrop is given up at once, here on the
 * loop (maildrop_disown(): a login that follows, the user reconnecting,
 * takes the lock over and never sees a record of this process that is
 * still being cleared); the lock file is rewritten on a worker thread,
 * ahead of queued logins. Once the server is stopping (server_free()
 * runs the last done callbacks after the pool threads have gone), or out
 * of memory, all of it here on the loop.
 */
void
cmd_auth_release(struct server *srv, struct maildrop *md)
{
	struct login_job *job;

	maildrop_disown(md);
	if (srv->stopping || (job = calloc(1, sizeof(*job))) == NULL) {
		md->ops->close(md);
		return;
	}
	job->base.work = update_work;
	job->base.done = update_done;
	job->srv = srv;
	job->kind = JOB_RELEASE;
	job->md = md;
	worker_submit_urgent(srv->workers, &job->base);
}

static enum cmd_result
login_submit(struct session *s, enum job_kind kind, const char *secret,
    size_t secret_len)
{
	struct login_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (job->user = strdup(s->user)) == NULL ||
	    (job->secret = strndup(secret, secret_len)) == NULL ||
	    (kind == JOB_LOGIN_APOP &&
	    (job->apop_ts = strdup(s->apop_ts)) == NULL)) {
		if (job != NULL)
			job_free(job);
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	job->base.work = login_work;
	job->base.done = login_done;
	job->s = s;
	job->srv = s->srv;
	job->kind = kind;
	job->started_us = mono_us();
	s->job = job;
	s->waiting = 1;
	/* After this turn's callbacks: a session closed in it gives up its
	 * maildrop first (cmd_auth_closing()). */
	worker_submit_later(s->srv->workers, &job->base);
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
	session_reply(s, "-ERR [AUTH] Authentication failed.");
	if (s->auth_failures >= (unsigned)s->srv->cfg->max_failures) {
		session_close(s, "auth-failures", true);
		return;
	}
	session_resume(s);
}

static void
login_done(struct worker_job *wj)
{
	struct login_job	*job = (struct login_job *)wj;
	struct session		*s = job->s;
	char			 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	char			 qerr[LOG_QUOTED_SIZE(sizeof(job->err))];
	uint64_t		 delay_us, started_us, took_us;

	if (s == NULL) {			/* the client went away */
		if (job->md != NULL)
			cmd_auth_release(job->srv, job->md);
		job_free(job);
		return;
	}
	s->job = NULL;

	if (job->auth != AUTH_OK) {
		s->srv->stats.login_failures++;
		s->auth_failures++;
		/* conf/fail2ban/evpop3d.conf matches this line. */
		session_log(s, "event=auth-failed rip=%s user=%s%s", s->rip,
		    log_quote(quser, sizeof(quser), job->user),
		    job->auth == AUTH_TEMPFAIL ? " temp=1" : "");
		if (job->auth == AUTH_TEMPFAIL) {
			job_free(job);
			session_reply(s, "-ERR [SYS/TEMP] Authentication "
			    "service unavailable, try again later.");
			session_resume(s);
			return;
		}
		/*
		 * Answer failure_delay after the command, not after the
		 * check: what the check cost must not show.
		 */
		delay_us = (uint64_t)s->srv->cfg->failure_delay_ms * 1000;
		started_us = job->started_us;
		job_free(job);
		took_us = mono_us() - started_us;
		if (took_us >= delay_us && delay_us > 0)
			login_slow_warn(took_us, s->srv->cfg->failure_delay_ms);
		session_pause(s, took_us < delay_us ? delay_us - took_us : 0,
		    login_failed_reply);
		return;
	}

	if (job->st != STORE_OK) {
		session_log(s, "event=login-failed rip=%s user=%s reason=%s",
		    s->rip, log_quote(quser, sizeof(quser), job->user),
		    log_quote(qerr, sizeof(qerr), job->err));
		/* RFC 1939 section 4: the maildrop could not be locked. */
		session_reply(s, "-ERR %s %s", store_err_code(job->st),
		    job->st == STORE_INUSE ? "Mailbox is locked by another "
		    "POP3 session." : job->st == STORE_PERM ? "Unable to open "
		    "mailbox." : "Unable to open mailbox, try again later.");
		job_free(job);
		session_resume(s);
		return;
	}

	s->md = job->md;
	s->n_msgs = maildrop_count(s->md);
	if ((s->deleted = calloc(s->n_msgs + 1, 1)) == NULL) {
		cmd_auth_release(s->srv, s->md);
		s->md = NULL;
		job_free(job);
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		session_resume(s);
		return;
	}
	cmd_mail_reset(s);
	free(s->user);
	s->user = job->user;
	job->user = NULL;
	job_free(job);

	s->srv->stats.logins++;
	s->bad_cmds = 0;
	session_set_state(s, POP3_TRANSACTION);
	session_log(s, "event=login rip=%s user=%s messages=%zu octets=%llu",
	    s->rip, log_quote(quser, sizeof(quser), s->user), s->n_msgs,
	    (unsigned long long)s->total_octets);
	session_reply(s, "+OK Logged in, %zu messages (%llu octets).",
	    s->n_msgs, (unsigned long long)s->total_octets);
	session_resume(s);
}

static bool
set_user(struct session *s, const char *name, size_t len)
{
	char *copy;

	if ((copy = strndup(name, len)) == NULL)
		return false;
	free(s->user);
	s->user = copy;
	return true;
}

/* RFC 1939 section 7: USER name. Existence is not revealed here. */
enum cmd_result
cmd_user(struct session *s, int argc, char **argv)
{
	(void)argc;
	if (!auth_username_valid(argv[0])) {
		s->have_user = 0;
		session_reply(s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	if (!set_user(s, argv[0], strlen(argv[0]))) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	s->have_user = 1;
	session_reply(s, "+OK");
	return CMD_OK;
}

/* RFC 1939 section 7: PASS string, the rest of the line. */
enum cmd_result
cmd_pass(struct session *s, int argc, char **argv)
{
	(void)argc;
	if (!s->have_user) {
		session_reply(s, "-ERR No user name given: send USER first.");
		return CMD_BAD;
	}
	s->have_user = 0;		/* a failed PASS needs a new USER */
	return login_submit(s, JOB_LOGIN_PLAIN, argv[0], strlen(argv[0]));
}

/* RFC 1939 section 7: APOP name digest, when enabled. */
enum cmd_result
cmd_apop(struct session *s, int argc, char **argv)
{
	size_t i;

	(void)argc;
	s->have_user = 0;
	if (!s->srv->cfg->apop || s->apop_ts == NULL) {
		session_reply(s, "-ERR APOP is not enabled on this server.");
		return CMD_BAD;
	}
	if (!auth_username_valid(argv[0])) {
		session_reply(s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	for (i = 0; argv[1][i] != '\0'; i++)
		if (!isxdigit((unsigned char)argv[1][i]))
			break;
	if (i != 32 || argv[1][i] != '\0') {
		session_reply(s, "-ERR [AUTH] Invalid APOP digest.");
		return CMD_BAD;
	}
	if (!set_user(s, argv[0], strlen(argv[0]))) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	return login_submit(s, JOB_LOGIN_APOP, argv[1], 32);
}

/*
 * Strict base64 (RFC 4648 section 4, padded) into out, which must hold
 * 3 * len / 4 bytes. Returns the decoded length or -1.
 */
static int
base64_decode(const char *in, size_t len, unsigned char *out)
{
	size_t	i, pad = 0;
	int	n;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '=') {
			if (i < len - 2)
				return -1;
			pad++;
		} else if (pad > 0 || !(isalnum(c) || c == '+' || c == '/'))
			return -1;
	}
	if (len == 0)
		return 0;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	return n - (int)pad;
}

/*
 * RFC 4616: message = [authzid] NUL authcid NUL passwd. We do not
 * support acting as another user, so authzid must be empty or authcid.
 */
static enum cmd_result
sasl_plain(struct session *s, const char *b64, size_t b64len)
{
	unsigned char	 buf[POP3_LINE_MAX];
	const char	*authzid, *authcid, *pass, *end;
	size_t		 zlen, clen;
	int		 n;
	enum cmd_result	 r;

	if (b64len == 1 && b64[0] == '=')	/* RFC 5034: empty response */
		b64len = 0;
	if ((n = base64_decode(b64, b64len, buf)) < 0) {
		session_reply(s, "-ERR [AUTH] Invalid base64 data.");
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
		session_reply(s, "-ERR [AUTH] Invalid SASL PLAIN message.");
		return CMD_BAD;
	}
	zlen = (size_t)(authcid - authzid);
	authcid++;
	clen = (size_t)(pass - authcid);
	pass++;
	if ((zlen != 0 && (zlen != clen || memcmp(authzid, authcid, clen) != 0))) {
		auth_wipe(buf, sizeof(buf));
		session_reply(s, "-ERR [AUTH] Authorization identity must be "
		    "empty or the user name.");
		return CMD_BAD;
	}
	if (clen == 0 || !auth_username_valid(authcid)) {
		auth_wipe(buf, sizeof(buf));
		session_reply(s, "-ERR [AUTH] Invalid user name.");
		return CMD_BAD;
	}
	if (!set_user(s, authcid, clen)) {
		auth_wipe(buf, sizeof(buf));
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	r = login_submit(s, JOB_LOGIN_PLAIN, pass, (size_t)(end - pass));
	auth_wipe(buf, sizeof(buf));
	return r;
}

/* RFC 5034: AUTH mechanism [initial-response]. */
enum cmd_result
cmd_auth(struct session *s, int argc, char **argv)
{
	s->have_user = 0;
	if (argc == 0) {
		/* Not in RFC 5034; Outlook probes with it (and "AUTH "). */
		session_reply(s, "+OK Supported mechanisms follow");
		session_reply(s, "PLAIN");
		session_reply(s, ".");
		return CMD_OK;
	}
	if (strcasecmp(argv[0], "PLAIN") != 0) {
		session_reply(s, "-ERR Unsupported authentication mechanism.");
		return CMD_BAD;
	}
	if (argc == 2)
		return sasl_plain(s, argv[1], strlen(argv[1]));
	s->sasl_wait = 1;
	session_reply(s, "+ ");
	return CMD_OK;
}

void
cmd_auth_response(struct session *s, char *line, size_t len)
{
	s->sasl_wait = 0;
	session_touch(s);
	if (len == 1 && line[0] == '*') {
		session_reply(s, "-ERR Authentication cancelled.");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		session_reply(s, "-ERR [AUTH] Invalid base64 data.");
		pop3_bad_command(s);
		return;
	}
	/* Not through the dispatcher: count a bad response here. */
	if (sasl_plain(s, line, len) == CMD_BAD)
		pop3_bad_command(s);
}

/*
 * Worker thread: UPDATE; with nothing marked (or del NULL) the driver
 * only unlocks (store.h).
 */
static void
update_work(struct worker_job *wj)
{
	struct login_job *job = (struct login_job *)wj;

	job->st = job->md->ops->commit(job->md, job->del, &job->failed);
	job->md = NULL;
}

static void
update_done(struct worker_job *wj)
{
	struct login_job	*job = (struct login_job *)wj;
	struct session		*s = job->s;
	size_t			 n = job->n_marked;
	char			 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];

	if (n > 0)
		log_info("sess=%016llx event=update rip=%s user=%s "
		    "deleted=%zu failed=%zu%s", (unsigned long long)job->sess_id,
		    job->rip, log_quote(quser, sizeof(quser), job->user),
		    n - job->failed, job->failed, s == NULL ? " client=gone" :
		    "");
	if (s == NULL) {
		job_free(job);
		return;
	}
	s->job = NULL;
	s->n_dele_done = (unsigned)(n - job->failed);
	if (job->st == STORE_OK && n == 0)
		session_reply(s, "+OK %s signing off.", EVPOP3D_NAME);
	else if (job->st == STORE_OK)
		session_reply(s, "+OK %s signing off (%zu messages deleted).",
		    EVPOP3D_NAME, n);
	else if (job->failed >= n)	/* an mbox update is all or nothing */
		session_reply(s, "-ERR [SYS/TEMP] The mailbox could not be "
		    "updated; nothing was deleted.");
	else
		session_reply(s, "-ERR [SYS/TEMP] Some deleted messages were "
		    "not removed.");
	job_free(job);
	s->waiting = 0;
	session_close(s, "quit", true);
}

/*
 * RFC 1939 section 6: remove the marked messages, release the lock, and
 * answer; "-ERR" if some could not be removed. With nothing marked the
 * job only releases the lock: the +OK still comes after it, so that a
 * client logging in again at once finds the maildrop free.
 */
enum cmd_result
cmd_auth_update(struct session *s)
{
	struct login_job *job;

	session_set_state(s, POP3_UPDATE);
	s->reason = "quit";
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (job->user = strdup(s->user)) == NULL) {
		free(job);
		session_reply(s, "-ERR [SYS/TEMP] Out of memory; nothing was "
		    "deleted.");
		return CMD_CLOSE;
	}
	job->base.work = update_work;
	job->base.done = update_done;
	job->s = s;
	job->srv = s->srv;
	job->kind = JOB_RELEASE;
	job->sess_id = s->id;
	memcpy(job->rip, s->rip, sizeof(job->rip));
	job->md = s->md;
	job->del = s->deleted;
	job->n_marked = s->n_deleted;
	s->md = NULL;
	s->deleted = NULL;
	s->job = job;
	worker_submit_urgent(s->srv->workers, &job->base);
	return CMD_WAIT;
}

void
cmd_auth_closing(struct session *s)
{
	/* A lookup on a worker (cmd_mail.c) still uses the maildrop. */
	if (s->md != NULL && s->locate == NULL)
		maildrop_disown(s->md);
}

void
cmd_auth_cleanup(struct session *s)
{
	if (s->job != NULL) {
		s->job->s = NULL;	/* done() frees it */
		s->job = NULL;
	}
	if (s->md != NULL) {
		/* RFC 1939 section 6: no QUIT, no UPDATE. */
		cmd_auth_release(s->srv, s->md);
		s->md = NULL;
	}
	free(s->deleted);
	s->deleted = NULL;
}
