/*
 * The dispatcher and the protocol's session callbacks (start, input,
 * overlong, gone) against a fake session (fake_session.h): a real event
 * base, worker pool, passwd-file and Maildir, but no connection. Logins,
 * UPDATE and releases run on the worker pool and come back through the
 * loop, which the tests run until the reply arrives. Every command is
 * tried in every state.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/shlimits.h"
#include "lib/worker.h"
#include "pop3/authz.h"
#include "pop3/client.h"
#include "pop3/dispatch.h"
#include "pop3/pop3.h"
#include "fake_session.h"

/* How long a reply may take to come back through the loop. */
#define REPLY_DEADLINE_MS	10000

/* carol's one message: BIG_LINES lines of BIG_LINE_LEN octets and LF. */
#define BIG_LINES	4000
#define BIG_LINE_LEN	63

/*
 * From the real session's objects (session.c, set.c, linebuf.c): weak,
 * so they are NULL unless those objects were linked after all.
 */
void	session_flush(struct session *) __attribute__((weak));
void	session_set_add(struct session_set *, struct session *)
	    __attribute__((weak));
struct linebuf;
void	linebuf_init(struct linebuf *, size_t) __attribute__((weak));

struct tenv {
	char			 dir[64];
	struct event_base	*base;
	struct event		*tick;		/* bounds one loop turn */
	struct pop3_env		*pop3;
	struct cfg		*cfg;
};

/* AUTH PLAIN message "\0bob@example.com\0hunter 2" in base64. */
static const char bob_plain[] = "AGJvYkBleGFtcGxlLmNvbQBodW50ZXIgMg==";

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* A Maildir for user under env's directory, with the given messages. */
static void
make_maildir(struct tenv *env, const char *user, const char **msgs,
    size_t n)
{
	static const char	*sub[] = { "", "/new", "/cur", "/tmp" };
	char			 path[256];
	size_t			 i;

	snprintf(path, sizeof(path), "%s/%s", env->dir, user);
	assert_int_equal(mkdir(path, 0700), 0);
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s/Maildir%s", env->dir, user,
		    sub[i]);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s/Maildir/new/17000000%02zu."
		    "M%zuP1.h", env->dir, user, i + 1, i + 1);
		write_file(path, msgs[i]);
	}
}

static void
tick_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
}

/*
 * bob has two messages (23 and 30 octets on the wire), carol one big one.
 * extra_ini is appended to the ini: a section given again overrides.
 */
static struct tenv *
env_new(const char *extra_ini)
{
	static const char	*bob[] = { "Subject: one\n\nfirst\n",
	    "Subject: two\n\nsecond\n.dot\n" };
	struct tenv		*env = calloc(1, sizeof(*env));
	char			 path[256], ini[1024], err[512];
	char			*big, *p;
	const char		*carol[1];
	size_t			 i;

	assert_non_null(env);
	strcpy(env->dir, "/tmp/evpop3d-dispatch-XXXXXX");
	assert_non_null(mkdtemp(env->dir));
	snprintf(path, sizeof(path), "%s/passwd", env->dir);
	snprintf(ini, sizeof(ini),
	    "bob@example.com:{PLAIN}hunter 2::::%s/bob::\n"
	    "carol@example.com:{PLAIN}carol::::%s/carol::\n", env->dir,
	    env->dir);
	write_file(path, ini);
	make_maildir(env, "bob", bob, 2);
	assert_non_null(big = malloc(BIG_LINES * (BIG_LINE_LEN + 1) + 1));
	for (i = 0, p = big; i < BIG_LINES; i++, p += BIG_LINE_LEN + 1) {
		memset(p, 'a' + (int)(i % 26), BIG_LINE_LEN);
		p[BIG_LINE_LEN] = '\n';
	}
	*p = '\0';
	carol[0] = big;
	make_maildir(env, "carol", carol, 1);
	free(big);

	snprintf(path, sizeof(path), "%s/evpop3d.ini", env->dir);
	snprintf(ini, sizeof(ini),
	    "[server]\nlisten = 127.0.0.1:0\nhostname = test\n"
	    "[auth]\npasswd_file = passwd\nfailure_delay = 0\n"
	    "[mail]\nlocation = %%h/Maildir\n%s", extra_ini);
	write_file(path, ini);
	assert_int_equal(cfg_load(path, &env->cfg, err, sizeof(err)), 0);

	env->base = event_base_new();
	assert_non_null(env->base);
	env->tick = evtimer_new(env->base, tick_cb, NULL);
	assert_non_null(env->tick);
	assert_int_equal(shlimits_init((size_t)env->cfg->max_connections,
	    (size_t)env->cfg->penalty_table_size, 1, err, sizeof(err)), 0);
	assert_int_equal(pop3_env_new(env->base, env->cfg, &env->pop3), 0);
	return env;
}

/* Free the sessions first: their jobs finish in pop3_env_free(). */
static void
env_free(struct tenv *env)
{
	char cmd[128];

	pop3_env_free(env->pop3);
	shlimits_free();
	event_free(env->tick);
	event_base_free(env->base);
	cfg_free(env->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
	assert_int_equal(system(cmd), 0);
	free(env);
}

static struct session *
client_new(struct tenv *env)
{
	return fake_session_new(env->base, &pop3_proto, env->pop3);
}

/* The session kept its contract, gone() ran once if it closed; free it. */
static void
client_free(struct session *s)
{
	const char *v = fake_session_violation(s);

	if (v != NULL)
		fail_msg("session contract: %s", v);
	assert_int_equal(s->n_gone, s->closing ? 1 : 0);
	fake_session_free(s);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One turn of the loop: what is due, or at most 10 ms of waiting. */
static void
loop_once(struct tenv *env)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 10000 };

	evtimer_add(env->tick, &tv);
	assert_int_not_equal(event_base_loop(env->base, EVLOOP_ONCE), -1);
}

/*
 * The next line the client gets, CRLF removed; the loop runs until it
 * comes (a worker job, a pause), for REPLY_DEADLINE_MS at most. NULL
 * once the session is closed and everything it sent was read.
 */
static const char *
next_line(struct tenv *env, struct session *s)
{
	static char	line[4096];
	uint64_t	start = now_ms();

	for (;;) {
		if (fake_session_read_line(s, line, sizeof(line)))
			return line;
		if (s->closing)
			return NULL;
		if (now_ms() - start > REPLY_DEADLINE_MS)
			fail_msg("no reply within %d ms", REPLY_DEADLINE_MS);
		loop_once(env);
	}
}

/* Run the loop until *flag is true, for REPLY_DEADLINE_MS at most. */
static void
wait_for(struct tenv *env, const bool *flag)
{
	uint64_t start = now_ms();

	while (!*flag) {
		if (now_ms() - start > REPLY_DEADLINE_MS)
			fail_msg("nothing happened within %d ms",
			    REPLY_DEADLINE_MS);
		loop_once(env);
	}
}

static const char *
command(struct tenv *env, struct session *s, const char *cmd)
{
	fake_session_send(s, cmd);
	return next_line(env, s);
}

static bool
has_prefix(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Skip a multi-line body up to its "." line. */
static void
skip_body(struct tenv *env, struct session *s)
{
	const char *l;

	while ((l = next_line(env, s)) != NULL && strcmp(l, ".") != 0)
		;
	assert_non_null(l);
}

/* USER and PASS, after the greeting. */
static void
login_as(struct tenv *env, struct session *s, const char *user,
    const char *pass)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "USER %s", user);
	assert_string_equal(command(env, s, buf), "+OK");
	snprintf(buf, sizeof(buf), "PASS %s", pass);
	assert_true(has_prefix(command(env, s, buf), "+OK Logged in"));
	assert_false(s->held);
}

/* The greeting, and bob's login. */
static void
login(struct tenv *env, struct session *s)
{
	assert_true(has_prefix(next_line(env, s), "+OK"));
	login_as(env, s, "bob@example.com", "hunter 2");
}

/* Run the loop until s is paused, for REPLY_DEADLINE_MS at most. */
static void
wait_pause(struct tenv *env, struct session *s)
{
	uint64_t start = now_ms();

	while (s->pause_fn == NULL) {
		if (now_ms() - start > REPLY_DEADLINE_MS)
			fail_msg("no pause within %d ms", REPLY_DEADLINE_MS);
		loop_once(env);
	}
}

/* The per-command counters of cmd now. */
static struct pop3_cmd_stats
cmd_stats(const char *name)
{
	const struct pop3_cmd_stats	*st;
	const struct pop3_cmd		*cmds;
	size_t				 n;

	cmds = pop3_cmd_table(&n);
	st = pop3_cmd_stats(&n);
	return st[pop3_cmd_find(name) - cmds];
}

/*
 * The protocol's calls reach the fake, and the real session's objects
 * are not in the executable at all.
 */
static void
test_fake_is_linked(void **state)
{
	struct tenv	*env = env_new("");
	unsigned long	 before = fake_session_calls;
	struct session	*s;

	(void)state;
	assert_true(session_flush == NULL);
	assert_true(session_set_add == NULL);
	assert_true(linebuf_init == NULL);
	s = client_new(env);
	/* proto_start(): the context, the login deadline, the greeting. */
	assert_true(fake_session_calls >= before + 3);
	assert_non_null(s->ctx);
	assert_int_equal(s->n_reply, 1);
	assert_true(has_prefix(next_line(env, s), "+OK " EVPOP3D_NAME));
	client_free(s);
	env_free(env);
}

/* No command may run in UPDATE: it is left only by closing. */
static void
test_table_shape(void **state)
{
	const struct pop3_cmd	*cmds, *f;
	char			 name[8];
	size_t			 n, i, k;
	int			 c;

	(void)state;
	cmds = pop3_cmd_table(&n);
	assert_true(n >= 15);
	for (i = 0; i < n; i++) {
		assert_true(strlen(cmds[i].name) >= 3 &&
		    strlen(cmds[i].name) <= 4);
		assert_int_equal(cmds[i].states & POP3_UPDATE, 0);
		assert_true(cmds[i].min_args <= cmds[i].max_args);
		assert_true(cmds[i].max_args <= POP3_MAX_ARGS);
		assert_ptr_equal(pop3_cmd_find(cmds[i].name), &cmds[i]);
		/* Any case, and only the letter itself in either case
		 * (the lookup compares first letters with 0x20 masked). */
		strcpy(name, cmds[i].name);
		for (k = 0; name[k] != '\0'; k++)
			name[k] = (char)(k % 2 ? tolower((unsigned char)name[k]) :
			    name[k]);
		assert_ptr_equal(pop3_cmd_find(name), &cmds[i]);
		name[0] = (char)tolower((unsigned char)name[0]);
		assert_ptr_equal(pop3_cmd_find(name), &cmds[i]);
		for (c = 1; c < 256; c++) {
			if (toupper(c) == cmds[i].name[0])
				continue;
			name[0] = (char)c;
			f = pop3_cmd_find(name);
			assert_true(f == NULL || f != &cmds[i]);
		}
	}
	assert_ptr_equal(pop3_cmd_find("retr"), pop3_cmd_find("RETR"));
	assert_null(pop3_cmd_find("XYZZ"));
	assert_true(pop3_cmd_find("PASS")->flags & CMDF_SECRET);
	assert_true(pop3_cmd_find("PASS")->flags & CMDF_RESTLINE);
	assert_true(pop3_cmd_find("APOP")->flags & CMDF_SECRET);
	assert_true(pop3_cmd_find("AUTH")->flags & CMDF_SECRET);
	assert_false(pop3_cmd_find("USER")->flags & CMDF_SECRET);
}

/* Arguments that are well-formed for each command. */
static const char *
sample_args(const char *name)
{
	if (strcmp(name, "USER") == 0)
		return " bob@example.com";
	if (strcmp(name, "PASS") == 0)
		return " wrong";
	if (strcmp(name, "APOP") == 0)
		return " bob@example.com 0123456789abcdef0123456789abcdef";
	if (strcmp(name, "RETR") == 0 || strcmp(name, "DELE") == 0)
		return " 1";
	if (strcmp(name, "TOP") == 0)
		return " 1 0";
	return "";
}

static bool
multiline(const char *name)
{
	static const char *const names[] = { "CAPA", "LIST", "UIDL", "RETR",
	    "TOP", "AUTH" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * In each state, each command is either refused as wrong-state or gets
 * its own answer; the session survives either way, but for QUIT.
 */
static void
test_every_command_every_state(void **state)
{
	const struct pop3_cmd	*cmds;
	struct tenv		*env = env_new("");
	size_t			 n, i;
	int			 st;

	(void)state;
	cmds = pop3_cmd_table(&n);
	for (st = 0; st < 2; st++) {
		enum pop3_state pst = st == 0 ? POP3_AUTHORIZATION :
		    POP3_TRANSACTION;

		for (i = 0; i < n; i++) {
			struct session	*s = client_new(env);
			char		 line[128];
			const char	*r;
			bool		 allowed = (cmds[i].states & pst) != 0;

			if (pst == POP3_TRANSACTION)
				login(env, s);
			else
				assert_non_null(next_line(env, s));
			snprintf(line, sizeof(line), "%s%s", cmds[i].name,
			    sample_args(cmds[i].name));
			r = command(env, s, line);
			assert_non_null(r);
			if (!allowed) {
				assert_non_null(strstr(r, "not valid in this "
				    "state"));
				assert_true(has_prefix(r, "-ERR"));
			} else {
				assert_null(strstr(r, "not valid in this "
				    "state"));
				assert_null(strstr(r, "Unknown command"));
			}
			if (strcmp(cmds[i].name, "QUIT") == 0) {
				assert_null(next_line(env, s));
				assert_string_equal(s->reason, "quit");
				assert_true(s->flushed);
			} else {
				if (has_prefix(r, "+OK") &&
				    multiline(cmds[i].name))
					skip_body(env, s);
				r = command(env, s, "CAPA");
				assert_true(has_prefix(r, "+OK"));
				skip_body(env, s);
				assert_false(s->closing);
			}
			client_free(s);
		}
	}
	env_free(env);
}

static void
test_unknown_vs_wrong_state(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);
	const char	*r;
	char		 unknown[256];

	(void)state;
	next_line(env, s);
	r = command(env, s, "XYZZ");
	snprintf(unknown, sizeof(unknown), "%s", r);
	assert_true(has_prefix(unknown, "-ERR"));
	r = command(env, s, "STAT");
	assert_true(has_prefix(r, "-ERR"));
	assert_string_not_equal(r, unknown);
	/* Keywords are case-insensitive; too short or long is unknown. */
	assert_string_equal(command(env, s, "user bob@example.com"), "+OK");
	assert_string_equal(command(env, s, "NO"), unknown);
	assert_string_equal(command(env, s, "NOOPS"), unknown);
	/* A NUL byte anywhere in the line. */
	fake_session_input(s, "CAPA\0x", 6);
	assert_string_equal(next_line(env, s),
	    "-ERR Invalid character in command.");
	client_free(s);
	env_free(env);
}

static void
test_argument_counts(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);

	(void)state;
	login(env, s);
	assert_non_null(strstr(command(env, s, "RETR"), "Wrong number"));
	assert_non_null(strstr(command(env, s, "TOP 1"), "Wrong number"));
	assert_non_null(strstr(command(env, s, "STAT 1"), "Wrong number"));
	assert_non_null(strstr(command(env, s, "LIST 1 2"), "Wrong number"));
	assert_non_null(strstr(command(env, s, "UIDL 1 2 3 4 5"),
	    "Wrong number"));
	/* Extra spaces are tolerated. */
	assert_string_equal(command(env, s, "LIST  1 "), "+OK 1 23");
	assert_true(has_prefix(command(env, s, "RETR 0"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR -1"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR 3"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR +1"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR 01"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR 99999999999999999999"),
	    "-ERR"));
	/* No wrap-around to a real message; nothing after the digits. */
	assert_true(has_prefix(command(env, s, "LIST 4294967297"), "-ERR"));
	assert_true(has_prefix(command(env, s, "LIST 18446744073709551617"),
	    "-ERR"));
	assert_true(has_prefix(command(env, s, "LIST 1x"), "-ERR"));
	assert_true(has_prefix(command(env, s, "LIST 1\t"), "-ERR"));
	assert_true(has_prefix(command(env, s, "LIST 2"), "+OK 2 "));
	assert_true(has_prefix(command(env, s, "TOP 1 x"), "-ERR"));
	assert_string_equal(command(env, s, "STAT"), "+OK 2 53");
	client_free(s);
	env_free(env);
}

/* Consecutive bad commands end the session; a good one resets the count. */
static void
test_bad_command_limit(void **state)
{
	struct tenv	*env = env_new("[server]\nmax_bad_commands = 4\n");
	struct session	*s = client_new(env);
	int		 i;

	(void)state;
	login(env, s);
	for (i = 0; i < 3; i++)
		assert_true(has_prefix(command(env, s, "BOGUS"), "-ERR"));
	assert_string_equal(command(env, s, "NOOP"), "+OK");
	for (i = 0; i < 3; i++)
		assert_true(has_prefix(command(env, s, "BOGUS"), "-ERR"));
	assert_false(s->closing);
	assert_true(has_prefix(command(env, s, "BOGUS"), "-ERR"));
	assert_non_null(strstr(next_line(env, s), "Too many bad commands"));
	assert_null(next_line(env, s));
	assert_string_equal(s->reason, "bad-commands");
	assert_true(s->flushed);
	client_free(s);
	env_free(env);
}

/* Fewer bad commands are allowed before login. */
static void
test_bad_command_limit_prelogin(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);
	int		 i;

	(void)state;
	next_line(env, s);
	for (i = 0; i < 4; i++)
		assert_true(has_prefix(command(env, s, "STAT"), "-ERR"));
	assert_false(s->closing);
	assert_true(has_prefix(command(env, s, "STAT"), "-ERR"));
	assert_non_null(strstr(next_line(env, s), "Too many bad commands"));
	assert_null(next_line(env, s));
	assert_string_equal(s->reason, "bad-commands");
	client_free(s);
	env_free(env);
}

/* RFC 1939 section 7: the password is the rest of the line, verbatim. */
static void
test_pass_rest_of_line(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);

	(void)state;
	next_line(env, s);
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	/* "hunter 2" has a space; "PASS" alone has no argument. */
	assert_non_null(strstr(command(env, s, "PASS"), "Wrong number"));
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	/* A second space is part of the password. */
	assert_string_equal(command(env, s, "PASS  hunter 2"),
	    "-ERR [AUTH] Authentication failed.");
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	assert_true(has_prefix(command(env, s, "PASS hunter 2"),
	    "+OK Logged in"));
	client_free(s);
	env_free(env);
}

static void
test_auth_trailing_space(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);
	char		 line[128];

	(void)state;
	next_line(env, s);
	assert_true(has_prefix(command(env, s, "AUTH "), "+OK"));
	assert_string_equal(next_line(env, s), "PLAIN");
	assert_string_equal(next_line(env, s), "LOGIN");
	assert_string_equal(next_line(env, s), ".");
	/* AUTH PLAIN with an initial response. */
	snprintf(line, sizeof(line), "AUTH PLAIN %s", bob_plain);
	assert_true(has_prefix(command(env, s, line), "+OK Logged in"));
	assert_true(has_prefix(command(env, s, "STAT"), "+OK"));
	client_free(s);
	env_free(env);
}

static void
test_last_switch(void **state)
{
	struct tenv	*env = env_new("[pop3]\nenable_last = no\n");
	struct session	*s = client_new(env);

	(void)state;
	login(env, s);
	assert_non_null(strstr(command(env, s, "LAST"), "Unknown command"));
	client_free(s);
	env_free(env);

	env = env_new("");
	s = client_new(env);
	login(env, s);
	assert_string_equal(command(env, s, "LAST"), "+OK 0");
	assert_true(has_prefix(command(env, s, "RETR 2"), "+OK"));
	skip_body(env, s);
	assert_string_equal(command(env, s, "LAST"), "+OK 2");
	assert_true(has_prefix(command(env, s, "RSET"), "+OK"));
	assert_string_equal(command(env, s, "LAST"), "+OK 0");
	client_free(s);
	env_free(env);
}

/*
 * A line over the limit (the session discards it and calls overlong):
 * -ERR, counted as bad, and the session goes on; it also ends a SASL
 * exchange, so the next line is a command again.
 */
static void
test_line_too_long(void **state)
{
	struct tenv	*env = env_new("[server]\nmax_bad_commands = 2\n");
	struct session	*s = client_new(env);
	char		 want[128];

	(void)state;
	snprintf(want, sizeof(want), "-ERR Line too long (maximum %d octets).",
	    POP3_LINE_MAX);
	next_line(env, s);
	assert_string_equal(command(env, s, "AUTH PLAIN"), "+ ");
	fake_session_send_overlong(s);
	assert_string_equal(next_line(env, s), want);
	assert_true(has_prefix(command(env, s, "CAPA"), "+OK Capability"));
	skip_body(env, s);

	login_as(env, s, "bob@example.com", "hunter 2");
	fake_session_send_overlong(s);
	assert_string_equal(next_line(env, s), want);
	assert_string_equal(command(env, s, "NOOP"), "+OK");
	/* Counted: two in a row reach max_bad_commands. */
	fake_session_send_overlong(s);
	assert_string_equal(next_line(env, s), want);
	fake_session_send_overlong(s);
	assert_string_equal(next_line(env, s), want);
	assert_non_null(strstr(next_line(env, s), "Too many bad commands"));
	assert_null(next_line(env, s));
	client_free(s);
	env_free(env);
}

/*
 * RFC 1939 section 3: a login deadline from connect, then an idle limit
 * in TRANSACTION; both in cfg's seconds. Commands count as activity; the
 * limits end the session without a response.
 */
static void
test_timeouts(void **state)
{
	struct tenv	*env = env_new("[server]\nlogin_timeout = 45\n"
			    "idle_timeout = 900\n");
	struct session	*s = client_new(env);
	unsigned	 touches;

	(void)state;
	assert_int_equal(s->n_deadline, 1);
	assert_int_equal(s->timer, FAKE_TIMER_DEADLINE);
	assert_int_equal(s->deadline_ms, (uint64_t)45 * 1000);
	assert_string_equal(s->deadline_reason, "login-timeout");
	assert_int_equal(s->n_idle, 0);
	next_line(env, s);
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	assert_int_equal(s->timer, FAKE_TIMER_DEADLINE);	/* not yet */
	assert_true(has_prefix(command(env, s, "PASS hunter 2"),
	    "+OK Logged in"));
	assert_int_equal(s->n_deadline, 1);
	assert_int_equal(s->n_idle, 1);
	assert_int_equal(s->timer, FAKE_TIMER_IDLE);
	assert_int_equal(s->idle_ms, (uint64_t)900 * 1000);
	touches = s->n_touch;
	assert_string_equal(command(env, s, "NOOP"), "+OK");
	assert_int_equal(s->n_touch, touches + 1);
	assert_true(has_prefix(command(env, s, "STAT"), "+OK"));
	assert_int_equal(s->n_touch, touches + 2);
	fake_session_expire(s);
	assert_true(s->closing);
	assert_string_equal(s->reason, "idle-timeout");
	assert_false(s->flushed);
	assert_null(next_line(env, s));
	assert_int_equal(fake_session_unread(s), 0);
	client_free(s);

	/* Not logged in by the deadline. */
	s = client_new(env);
	next_line(env, s);
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	fake_session_expire(s);
	assert_string_equal(s->reason, "login-timeout");
	assert_false(s->flushed);
	assert_null(next_line(env, s));
	client_free(s);
	env_free(env);
}

/*
 * stderr into a file for test_secrets_not_logged, debug lines on. Not in
 * a test's directory: env_free() removes that before it is read.
 */
static struct {
	int	saved;			/* the real stderr; -1: not capturing */
	char	path[64];
} capture = { .saved = -1 };

static void
capture_start(void)
{
	int fd;

	snprintf(capture.path, sizeof(capture.path),
	    "/tmp/evpop3d-dispatch-stderr-XXXXXX");
	assert_int_not_equal(fd = mkstemp(capture.path), -1);
	assert_int_not_equal(capture.saved = dup(STDERR_FILENO), -1);
	assert_int_not_equal(dup2(fd, STDERR_FILENO), -1);
	close(fd);
	log_init(true);
}

/* Back to the real stderr; what was captured (free it), NULL on error. */
static char *
capture_stop(void)
{
	char	*text = NULL;
	FILE	*fp;
	long	 len;

	if (capture.saved == -1)
		return NULL;
	log_init(false);
	dup2(capture.saved, STDERR_FILENO);
	close(capture.saved);
	capture.saved = -1;
	if ((fp = fopen(capture.path, "r")) != NULL) {
		if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 &&
		    (text = calloc(1, (size_t)len + 1)) != NULL) {
			rewind(fp);
			if (fread(text, 1, (size_t)len, fp) != (size_t)len) {
				free(text);
				text = NULL;
			}
		}
		fclose(fp);
	}
	unlink(capture.path);
	return text;
}

/* After a failure: stderr back, and what it said (cmocka's why too). */
static int
capture_teardown(void **state)
{
	char *text;

	(void)state;
	if ((text = capture_stop()) != NULL) {
		fputs(text, stderr);
		free(text);
	}
	return 0;
}

/*
 * CMDF_SECRET: PASS, APOP and AUTH arguments are never logged, nor is a
 * SASL response, in the session's lines (the fake's record) or anywhere
 * on stderr (worker threads included); USER's are, as a control.
 */
static void
test_secrets_not_logged(void **state)
{
	static const char *const secrets[] = { "hunter", "s3cret-wrong",
	    bob_plain, "0123456789abcdef0123456789abcdef" };
	struct tenv	*env = env_new("");
	struct session	*s[3];
	char		 line[128], *logged;
	size_t		 i, j;

	(void)state;
	capture_start();
	s[0] = client_new(env);
	next_line(env, s[0]);
	assert_string_equal(command(env, s[0], "USER bob@example.com"), "+OK");
	assert_string_equal(command(env, s[0], "PASS s3cret-wrong"),
	    "-ERR [AUTH] Authentication failed.");
	assert_string_equal(command(env, s[0], "APOP bob@example.com "
	    "0123456789abcdef0123456789abcdef"),
	    "-ERR APOP is not enabled on this server.");
	login_as(env, s[0], "bob@example.com", "hunter 2");
	s[1] = client_new(env);
	next_line(env, s[1]);
	snprintf(line, sizeof(line), "AUTH PLAIN %s", bob_plain);
	assert_true(has_prefix(command(env, s[1], line), "-ERR [IN-USE]"));
	s[2] = client_new(env);
	next_line(env, s[2]);
	assert_string_equal(command(env, s[2], "AUTH PLAIN"), "+ ");
	assert_true(has_prefix(command(env, s[2], bob_plain), "-ERR [IN-USE]"));

	assert_true(fake_session_logged(s[0], "cmd=USER "
	    "args=\"bob@example.com\""));
	assert_true(fake_session_logged(s[0], "cmd=PASS args=<hidden>"));
	assert_true(fake_session_logged(s[0], "cmd=APOP args=<hidden>"));
	assert_true(fake_session_logged(s[1], "cmd=AUTH args=<hidden>"));
	assert_true(fake_session_logged(s[2], "cmd=AUTH args=<hidden>"));
	for (i = 0; i < 3; i++) {
		for (j = 0; j < sizeof(secrets) / sizeof(secrets[0]); j++)
			if (fake_session_logged(s[i], secrets[j]))
				fail_msg("session %zu logged %s", i,
				    secrets[j]);
		client_free(s[i]);
	}
	env_free(env);

	/* What reached stderr, the fake's forwarded lines included. */
	logged = capture_stop();
	assert_non_null(logged);
	assert_non_null(strstr(logged, "cmd=PASS args=<hidden>"));
	assert_non_null(strstr(logged, "event=auth-failed"));
	for (j = 0; j < sizeof(secrets) / sizeof(secrets[0]); j++)
		if (strstr(logged, secrets[j]) != NULL)
			fail_msg("stderr has %s", secrets[j]);
	free(logged);
}

/*
 * RFC 5034 section 4: after "AUTH PLAIN" the next line is the client's
 * response, not a command (authz_sasl_response()): it starts the login
 * job, input is held until the job's answer, and what was pipelined
 * after it waits. A response that is no valid SASL PLAIN message is a
 * bad command even if it looks like one; "*" cancels.
 */
static void
test_sasl_continuation(void **state)
{
	struct tenv		*env = env_new("");
	struct session		*s = client_new(env);
	struct pop3_cmd_stats	 auth0 = cmd_stats("AUTH");
	struct pop3_cmd_stats	 quit0 = cmd_stats("QUIT");
	struct client		*c;

	(void)state;
	next_line(env, s);
	assert_string_equal(command(env, s, "AUTH PLAIN"), "+ ");
	c = s->ctx;
	assert_true(c->sasl != SASL_NONE);
	assert_string_equal(command(env, s, "*"),
	    "-ERR Authentication cancelled.");
	assert_false(c->sasl != SASL_NONE);

	assert_string_equal(command(env, s, "AUTH PLAIN"), "+ ");
	/* A response, not QUIT: "QUIT" is base64 for no PLAIN message. */
	assert_string_equal(command(env, s, "QUIT"),
	    "-ERR [AUTH] Invalid SASL PLAIN message.");
	assert_false(s->closing);
	assert_int_equal(c->bad_cmds, 1);
	assert_int_equal(cmd_stats("QUIT").calls, quit0.calls);

	assert_string_equal(command(env, s, "AUTH PLAIN"), "+ ");
	fake_session_send(s, bob_plain);
	fake_session_send(s, "STAT");
	assert_true(s->held);
	assert_non_null(c->login);
	assert_int_equal(s->n_input, 1);
	assert_int_equal(fake_session_unread(s), 0);
	assert_true(has_prefix(next_line(env, s),
	    "+OK Logged in, 2 messages (53 octets)."));
	assert_string_equal(next_line(env, s), "+OK 2 53");
	assert_false(s->held);
	assert_int_equal(s->n_input, 0);
	assert_int_equal(c->state, POP3_TRANSACTION);
	/* The responses went past the dispatcher: AUTH counted 3 times. */
	assert_int_equal(cmd_stats("AUTH").calls, auth0.calls + 3);
	client_free(s);
	env_free(env);
}

/*
 * CMD_WAIT: PASS and QUIT wait for a worker job with input held; the
 * commands pipelined behind them are taken once the job has answered,
 * in order. QUIT's UPDATE removes the marked message before its +OK.
 */
static void
test_wait_holds_input(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);
	unsigned	 holds, resumes;

	(void)state;
	next_line(env, s);
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	holds = s->n_hold;
	resumes = s->n_resume;
	fake_session_send(s, "PASS hunter 2");
	fake_session_send(s, "STAT");
	fake_session_send(s, "NOOP");
	assert_true(s->held);
	assert_true(s->n_hold > holds);
	assert_int_equal(s->n_resume, resumes);
	assert_int_equal(s->n_input, 2);
	assert_int_equal(fake_session_unread(s), 0);
	assert_true(has_prefix(next_line(env, s), "+OK Logged in"));
	assert_string_equal(next_line(env, s), "+OK 2 53");
	assert_string_equal(next_line(env, s), "+OK");
	assert_int_equal(s->n_resume, resumes + 1);
	assert_false(s->held);

	assert_string_equal(command(env, s, "DELE 1"),
	    "+OK Message 1 deleted.");
	fake_session_send(s, "QUIT");
	fake_session_send(s, "NOOP");
	assert_true(s->held);
	assert_false(s->closing);
	assert_int_equal(s->n_input, 1);
	assert_string_equal(next_line(env, s), "+OK " EVPOP3D_NAME
	    " signing off (1 messages deleted).");
	assert_null(next_line(env, s));		/* NOOP never answered */
	assert_string_equal(s->reason, "quit");
	assert_true(s->flushed);
	assert_int_equal(s->n_input, 0);
	client_free(s);

	s = client_new(env);
	login(env, s);
	assert_string_equal(command(env, s, "STAT"), "+OK 1 30");
	client_free(s);
	env_free(env);
}

/*
 * A failed login is answered after a pause (session_pause(), never a
 * sleep) that ends at failure_delay after the command, input held
 * meanwhile; max_failures of them close the session.
 */
/*
 * A login that finds the maildrop in use looks once more after a pause
 * (authz.c login_done()): answered [IN-USE] when the holder is still
 * there, logged in when it ended meanwhile, and a session that goes
 * away during the pause frees its login (ASan watches).
 */
static void
test_inuse_look_again(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s[4];
	size_t		 i;

	(void)state;
	s[0] = client_new(env);
	login(env, s[0]);
	for (i = 1; i < 4; i++) {
		s[i] = client_new(env);
		s[i]->pause_manual = true;
		next_line(env, s[i]);
		assert_string_equal(command(env, s[i],
		    "USER bob@example.com"), "+OK");
		fake_session_send(s[i], "PASS hunter 2");
		wait_pause(env, s[i]);
		assert_true(s[i]->held);
		assert_int_equal(s[i]->pause_us, 1000);
	}
	/* Still held: [IN-USE] after the second look. */
	fake_session_fire_pause(s[1]);
	assert_string_equal(next_line(env, s[1]),
	    "-ERR [IN-USE] Mailbox is locked by another POP3 session.");
	assert_false(s[1]->held);
	/* Gone during the pause: its login is freed with it. */
	assert_null(fake_session_violation(s[2]));
	fake_session_free(s[2]);
	/* The holder ends meanwhile: the second look logs in. */
	assert_string_equal(command(env, s[0], "QUIT"),
	    "+OK evpop3d signing off.");
	fake_session_fire_pause(s[3]);
	assert_true(has_prefix(next_line(env, s[3]), "+OK Logged in"));
	client_free(s[0]);
	client_free(s[1]);
	client_free(s[3]);
	env_free(env);
}

static void
test_failed_login_pause(void **state)
{
	struct tenv	*env = env_new("[auth]\nfailure_delay = 1500\n"
			    "max_failures = 2\n");
	struct session	*s = client_new(env);

	(void)state;
	assert_int_equal(env->cfg->failure_delay_ms, 1500);
	s->pause_manual = true;
	next_line(env, s);
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	fake_session_send(s, "PASS wrong");
	fake_session_send(s, "USER bob@example.com");
	wait_pause(env, s);
	assert_int_equal(s->n_pause, 1);
	assert_true(s->pause_us <= (uint64_t)1500 * 1000);
	assert_true(s->held);
	assert_int_equal(s->n_input, 1);
	assert_int_equal(fake_session_unread(s), 0);
	assert_int_equal(env->pop3->stats.login_failures, 1);
	fake_session_fire_pause(s);
	assert_string_equal(next_line(env, s),
	    "-ERR [AUTH] Authentication failed.");
	assert_string_equal(next_line(env, s), "+OK");	/* the USER */
	assert_false(s->held);

	fake_session_send(s, "PASS wrong again");
	wait_pause(env, s);
	fake_session_fire_pause(s);
	assert_string_equal(next_line(env, s),
	    "-ERR [AUTH] Authentication failed.");
	assert_null(next_line(env, s));
	assert_string_equal(s->reason, "auth-failures");
	assert_true(s->flushed);
	client_free(s);
	env_free(env);
}

struct marker {
	struct worker_job	 base;		/* first: we cast back */
	bool			 done;
};

static void
marker_work(struct worker_job *wj)
{
	(void)wj;
}

static void
marker_done(struct worker_job *wj)
{
	((struct marker *)wj)->done = true;
}

/*
 * Another program moves bob's message file from to to (paths under his
 * Maildir), or removes it (to NULL), behind the session's back.
 */
static void
bob_message_moves(struct tenv *env, const char *from, const char *to)
{
	char path[256], path2[256];

	snprintf(path, sizeof(path), "%s/bob/Maildir/%s", env->dir, from);
	if (to == NULL) {
		assert_int_equal(unlink(path), 0);
		return;
	}
	snprintf(path2, sizeof(path2), "%s/bob/Maildir/%s", env->dir, to);
	assert_int_equal(rename(path, path2), 0);
}

/*
 * RETR of a message another program moved: CMD_WAIT while a worker looks
 * it up, input held; the reply and the lines that waited follow, in
 * order. One removed meanwhile is -ERR. A session gone during the lookup
 * leaves the maildrop to the job, which releases it.
 */
static void
test_retr_moved_message(void **state)
{
	struct tenv	*env = env_new("[auth]\nthreads = 1\n");
	struct session	*s = client_new(env);
	struct marker	 m = { .done = false };

	(void)state;
	login(env, s);
	bob_message_moves(env, "new/1700000001.M1P1.h",
	    "cur/1700000001.M1P1.h:2,S");
	fake_session_send(s, "RETR 1");
	fake_session_send(s, "NOOP");
	assert_true(s->held);
	assert_int_equal(s->n_input, 1);
	assert_int_equal(fake_session_unread(s), 0);
	assert_string_equal(next_line(env, s), "+OK 23 octets");
	assert_string_equal(next_line(env, s), "Subject: one");
	skip_body(env, s);
	assert_string_equal(next_line(env, s), "+OK");
	assert_false(s->held);

	bob_message_moves(env, "new/1700000002.M2P1.h", NULL);
	assert_string_equal(command(env, s, "TOP 2 0"),
	    "-ERR Message 2 was removed by another program.");
	assert_string_equal(command(env, s, "NOOP"), "+OK");
	client_free(s);

	/* Gone during the lookup; a job queued behind it marks its end. */
	s = client_new(env);
	login(env, s);
	bob_message_moves(env, "cur/1700000001.M1P1.h:2,S",
	    "cur/1700000001.M1P1.h:2,RS");
	fake_session_send(s, "RETR 1");
	assert_true(s->held);
	session_close(s, "connection-error", false);
	worker_job_init(&m.base, marker_work, marker_done);
	worker_submit(env->pop3->workers, &m.base);
	wait_for(env, &m.done);
	client_free(s);
	s = client_new(env);
	login(env, s);
	assert_string_equal(command(env, s, "STAT"), "+OK 1 23");
	client_free(s);
	env_free(env);
}

/*
 * pop3_cmd_stats(): a call per command that passed the generic checks
 * (not unknown, wrong-state or wrong-argument ones), an error per call
 * answered -ERR.
 */
static void
test_cmd_stats(void **state)
{
	static const char *const names[] = { "USER", "PASS", "STAT", "RETR",
	    "DELE", "NOOP", "LIST", "QUIT" };
	enum { N = sizeof(names) / sizeof(names[0]) };
	static const uint64_t calls[N] = { 3, 1, 1, 2, 2, 0, 1, 1 };
	static const uint64_t errors[N] = { 1, 0, 0, 1, 1, 0, 0, 0 };
	struct tenv		*env = env_new("");
	struct session		*s = client_new(env);
	struct pop3_cmd_stats	 st0[N], st;
	size_t			 i;

	(void)state;
	for (i = 0; i < N; i++)
		st0[i] = cmd_stats(names[i]);
	next_line(env, s);
	assert_true(has_prefix(command(env, s, "NOOP"), "-ERR"));
	assert_true(has_prefix(command(env, s, "XYZZ"), "-ERR"));
	assert_true(has_prefix(command(env, s, "USER a b"), "-ERR"));
	assert_true(has_prefix(command(env, s, "USER a/b"), "-ERR"));
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	assert_string_equal(command(env, s, "USER bob@example.com"), "+OK");
	assert_true(has_prefix(command(env, s, "PASS hunter 2"), "+OK"));
	assert_true(has_prefix(command(env, s, "STAT"), "+OK"));
	assert_true(has_prefix(command(env, s, "STAT 1"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR 9"), "-ERR"));
	assert_true(has_prefix(command(env, s, "RETR 1"), "+OK"));
	skip_body(env, s);
	assert_true(has_prefix(command(env, s, "DELE 1"), "+OK"));
	assert_true(has_prefix(command(env, s, "DELE 1"), "-ERR"));
	assert_true(has_prefix(command(env, s, "LIST"), "+OK"));
	skip_body(env, s);
	assert_true(has_prefix(command(env, s, "QUIT"), "+OK"));
	for (i = 0; i < N; i++) {
		st = cmd_stats(names[i]);
		if (st.calls - st0[i].calls != calls[i] ||
		    st.errors - st0[i].errors != errors[i])
			fail_msg("%s: calls +%llu errors +%llu, want +%llu "
			    "+%llu", names[i], (unsigned long long)(st.calls -
			    st0[i].calls), (unsigned long long)(st.errors -
			    st0[i].errors), (unsigned long long)calls[i],
			    (unsigned long long)errors[i]);
	}
	client_free(s);
	env_free(env);
}

/*
 * gone() leaves the disconnect line's summary: the user (quoted), the
 * state, RETR and TOP counts and octets sent, messages deleted by UPDATE.
 */
static void
test_disconnect_summary(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s;

	(void)state;
	s = client_new(env);
	next_line(env, s);
	fake_session_eof(s);
	assert_string_equal(s->reason, "disconnected");
	assert_string_equal(s->summary, "user=- state=AUTHORIZATION "
	    "retr=0/0 top=0/0 deleted=0");
	client_free(s);

	s = client_new(env);
	login(env, s);
	assert_string_equal(command(env, s, "RETR 1"), "+OK 23 octets");
	skip_body(env, s);
	assert_string_equal(command(env, s, "TOP 2 0"), "+OK");
	skip_body(env, s);
	assert_true(has_prefix(command(env, s, "DELE 1"), "+OK"));
	/* EOF after a pipelined command: answered, then closed. */
	fake_session_send(s, "NOOP");
	fake_session_eof(s);
	assert_string_equal(next_line(env, s), "+OK");
	assert_null(next_line(env, s));
	assert_string_equal(s->reason, "disconnected");
	assert_string_equal(s->summary, "user=\"bob@example.com\" "
	    "state=TRANSACTION retr=1/23 top=1/16 deleted=0");
	client_free(s);

	s = client_new(env);
	login(env, s);
	assert_true(has_prefix(command(env, s, "DELE 2"), "+OK"));
	assert_true(has_prefix(command(env, s, "QUIT"), "+OK"));
	assert_null(next_line(env, s));
	assert_string_equal(s->summary, "user=\"bob@example.com\" "
	    "state=UPDATE retr=0/0 top=0/0 deleted=1");
	client_free(s);
	env_free(env);
}

/*
 * RFC 1939 section 6: a session that ends without QUIT releases its
 * maildrop at gone(), without UPDATE: the same user's next login
 * succeeds at once, and nothing marked was removed.
 */
static void
test_gone_releases_maildrop(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*a = client_new(env), *b = client_new(env);

	(void)state;
	login(env, a);
	assert_true(has_prefix(command(env, a, "DELE 1"), "+OK"));
	next_line(env, b);
	assert_string_equal(command(env, b, "USER bob@example.com"), "+OK");
	assert_string_equal(command(env, b, "PASS hunter 2"),
	    "-ERR [IN-USE] Mailbox is locked by another POP3 session.");
	fake_session_eof(a);
	assert_true(a->closing);
	assert_int_equal(a->n_gone, 1);
	assert_null(a->ctx);
	assert_string_equal(command(env, b, "USER bob@example.com"), "+OK");
	assert_string_equal(command(env, b, "PASS hunter 2"),
	    "+OK Logged in, 2 messages (53 octets).");
	client_free(a);
	client_free(b);
	env_free(env);
}

/*
 * A session gone while its login runs: the job forgets it, and releases
 * the maildrop it opened, so the user's next login succeeds. One worker
 * thread, so a job queued behind the login's marks its end.
 */
static void
test_gone_during_login(void **state)
{
	struct tenv	*env = env_new("[auth]\nthreads = 1\n");
	struct session	*a = client_new(env), *b;
	struct marker	 m = { .done = false };

	(void)state;
	assert_int_equal(env->cfg->threads, 1);
	next_line(env, a);
	assert_string_equal(command(env, a, "USER bob@example.com"), "+OK");
	fake_session_send(a, "PASS hunter 2");
	assert_true(a->held);
	session_close(a, "connection-error", false);
	assert_int_equal(a->n_gone, 1);
	assert_string_equal(a->summary, "user=\"bob@example.com\" "
	    "state=AUTHORIZATION retr=0/0 top=0/0 deleted=0");
	worker_job_init(&m.base, marker_work, marker_done);
	worker_submit_later(env->pop3->workers, &m.base);
	wait_for(env, &m.done);
	assert_int_equal(fake_session_unread(a), 0);
	client_free(a);

	b = client_new(env);
	login(env, b);
	client_free(b);
	env_free(env);
}

/*
 * RETR of a big message is a continuation: run as the output drains,
 * input held until its end; at a close mid-message only what was sent
 * counts in the summary.
 */
static void
test_retr_continuation(void **state)
{
	struct tenv	*env = env_new("");
	struct session	*s = client_new(env);
	const uint64_t	 size = (uint64_t)BIG_LINES * (BIG_LINE_LEN + 2);
	char		 ok[64], want[128];
	const char	*l;
	size_t		 lines = 0;
	int		 steps = 0;

	(void)state;
	s->cont_manual = true;
	next_line(env, s);
	login_as(env, s, "carol@example.com", "carol");
	fake_session_send(s, "RETR 1");
	fake_session_send(s, "NOOP");
	assert_non_null(s->cont);
	assert_int_equal(s->n_conts, 1);
	assert_int_equal(s->n_input, 1);
	assert_int_equal(fake_session_unread(s), 0);	/* a stalled client */
	while (fake_session_step(s) == SESSION_CONT_MORE)
		assert_true(++steps < 100);
	assert_true(steps > 0);
	assert_null(s->cont);
	assert_int_equal(s->n_cont_runs, (unsigned)steps + 2);
	snprintf(ok, sizeof(ok), "+OK %llu octets", (unsigned long long)size);
	assert_string_equal(next_line(env, s), ok);
	while ((l = next_line(env, s)) != NULL && strcmp(l, ".") != 0) {
		assert_int_equal(strlen(l), BIG_LINE_LEN);
		assert_int_equal(l[0], 'a' + (int)(lines % 26));
		lines++;
	}
	assert_int_equal(lines, BIG_LINES);
	assert_string_equal(next_line(env, s), "+OK");	/* the NOOP */
	client_free(s);

	s = client_new(env);
	s->cont_manual = true;
	next_line(env, s);
	login_as(env, s, "carol@example.com", "carol");
	fake_session_send(s, "RETR 1");
	assert_int_equal(fake_session_step(s), SESSION_CONT_MORE);
	session_close(s, "connection-error", false);
	/* Sent: what the client read, less the +OK line. */
	snprintf(want, sizeof(want), "user=\"carol@example.com\" "
	    "state=TRANSACTION retr=1/%zu top=0/0 deleted=0",
	    fake_session_unread(s) - strlen(ok) - 2);
	assert_string_equal(s->summary, want);
	client_free(s);
	env_free(env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fake_is_linked),
		cmocka_unit_test(test_table_shape),
		cmocka_unit_test(test_every_command_every_state),
		cmocka_unit_test(test_unknown_vs_wrong_state),
		cmocka_unit_test(test_argument_counts),
		cmocka_unit_test(test_bad_command_limit),
		cmocka_unit_test(test_bad_command_limit_prelogin),
		cmocka_unit_test(test_pass_rest_of_line),
		cmocka_unit_test(test_auth_trailing_space),
		cmocka_unit_test(test_last_switch),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test_teardown(test_secrets_not_logged,
		    capture_teardown),
		cmocka_unit_test(test_sasl_continuation),
		cmocka_unit_test(test_wait_holds_input),
		cmocka_unit_test(test_failed_login_pause),
		cmocka_unit_test(test_inuse_look_again),
		cmocka_unit_test(test_retr_moved_message),
		cmocka_unit_test(test_cmd_stats),
		cmocka_unit_test(test_disconnect_summary),
		cmocka_unit_test(test_gone_releases_maildrop),
		cmocka_unit_test(test_gone_during_login),
		cmocka_unit_test(test_retr_continuation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
