/*
 * The dispatcher against a real server core: a real event base, worker
 * pool, passwd-file and Maildir, with each session on a socketpair.
 * Every command is tried in every state.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <event2/bufferevent.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "pop3/client.h"
#include "pop3/pop3.h"
#include "session/session.h"

struct tenv {
	char			 dir[64];
	struct event_base	*base;
	struct pop3_env		*pop3;
	struct session_set	*set;
	struct cfg		*cfg;
};

struct tclient {
	struct tenv	*env;
	int		 fd;
	char		 buf[65536];
	size_t		 len;
};

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static struct tenv *
env_new(const char *extra_ini)
{
	struct tenv	*env = calloc(1, sizeof(*env));
	char		 path[256], ini[1024], err[512];

	strcpy(env->dir, "/tmp/evpop3d-dispatch-XXXXXX");
	assert_non_null(mkdtemp(env->dir));
	snprintf(path, sizeof(path), "%s/passwd", env->dir);
	snprintf(ini, sizeof(ini),
	    "bob@example.com:{PLAIN}hunter 2::::%s/bob::\n", env->dir);
	write_file(path, ini);
	snprintf(path, sizeof(path), "%s/bob", env->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/bob/Maildir", env->dir);
	mkdir(path, 0700);
	strcat(path, "/new");
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/bob/Maildir/cur", env->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/bob/Maildir/tmp", env->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/bob/Maildir/new/1700000001.M1P1.h",
	    env->dir);
	write_file(path, "Subject: one\n\nfirst\n");
	snprintf(path, sizeof(path), "%s/bob/Maildir/new/1700000002.M2P1.h",
	    env->dir);
	write_file(path, "Subject: two\n\nsecond\n.dot\n");

	snprintf(path, sizeof(path), "%s/evpop3d.ini", env->dir);
	snprintf(ini, sizeof(ini),
	    "[server]\nlisten = 127.0.0.1:0\nhostname = test\n"
	    "[auth]\npasswd_file = passwd\nfailure_delay = 0\n"
	    "[mail]\nlocation = %%h/Maildir\n%s", extra_ini);
	write_file(path, ini);
	assert_int_equal(cfg_load(path, &env->cfg, err, sizeof(err)), 0);

	env->base = event_base_new();
	assert_non_null(env->base);
	assert_int_equal(pop3_env_new(env->base, env->cfg, &env->pop3), 0);
	env->set = session_set_new(env->base, &(struct session_params){
	    .proto = &pop3_proto, .arg = env->pop3, .line_max = POP3_LINE_MAX,
	    .write_timeout = 60 });
	assert_non_null(env->set);
	return env;
}

static void
env_free(struct tenv *env)
{
	char cmd[128];

	session_set_free(env->set);
	pop3_env_free(env->pop3);
	event_base_free(env->base);
	cfg_free(env->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
	assert_int_equal(system(cmd), 0);
	free(env);
}

static struct tclient *
client_new(struct tenv *env)
{
	struct tclient		*c = calloc(1, sizeof(*c));
	struct sockaddr_in	 sin = { .sin_family = AF_INET };
	struct bufferevent	*bev;
	int			 sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	bev = bufferevent_socket_new(env->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(bev);
	assert_non_null(session_new(env->set, bev, (struct sockaddr *)&sin,
	    sizeof(sin), SESSION_SOCKET));
	c->env = env;
	c->fd = sv[1];
	return c;
}

/*
 * Close the client and run the loop until the server has freed the
 * session (a login or lock release in a worker may still be running; the
 * wait is for that event, with a deadline, never a number of turns). The
 * next client of the same user may then log in at once: the maildrop was
 * given up when the session was freed.
 */
static void
client_free(struct tclient *c)
{
	struct timespec	 start, now;

	close(c->fd);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (session_set_count(c->env->set) > 0) {
		event_base_loop(c->env->base, EVLOOP_NONBLOCK);
		if (session_set_count(c->env->set) == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 10)
			fail_msg("session not freed within 10 s");
		poll(NULL, 0, 1);
	}
	free(c);
}

/* Run the loop until the client has a complete line; return it (no CRLF). */
static const char *
client_line(struct tclient *c)
{
	static char	 line[4096];
	char		*eol;
	struct timespec	 start, now;
	ssize_t		 n;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if ((eol = memchr(c->buf, '\n', c->len)) != NULL) {
			size_t l = (size_t)(eol - c->buf);

			assert_true(l > 0 && eol[-1] == '\r');
			memcpy(line, c->buf, l - 1);
			line[l - 1] = '\0';
			memmove(c->buf, eol + 1, c->len - l - 1);
			c->len -= l + 1;
			return line;
		}
		event_base_loop(c->env->base, EVLOOP_NONBLOCK);
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0)
			return NULL;		/* the server closed */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 10)
			fail_msg("no reply within 10 s");
		poll(NULL, 0, 1);
	}
}

/* Run the loop for ms; false if the server closed the connection. */
static bool
client_alive_for(struct tclient *c, int ms)
{
	struct timespec	 start, now;
	ssize_t		 n;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		event_base_loop(c->env->base, EVLOOP_NONBLOCK);
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n == 0)
			return false;
		if (n > 0)
			c->len += (size_t)n;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 >= ms)
			return true;
		poll(NULL, 0, 5);
	}
}

static void
client_send(struct tclient *c, const char *text)
{
	size_t len = strlen(text);

	assert_int_equal(write(c->fd, text, len), (ssize_t)len);
}

static const char *
command(struct tclient *c, const char *cmd)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "%s\r\n", cmd);
	client_send(c, buf);
	return client_line(c);
}

/* Skip a multi-line body up to its "." line. */
static void
skip_body(struct tclient *c)
{
	const char *l;

	while ((l = client_line(c)) != NULL && strcmp(l, ".") != 0)
		;
}

static void
login(struct tclient *c)
{
	assert_true(strncmp(client_line(c), "+OK", 3) == 0);	/* greeting */
	assert_string_equal(command(c, "USER bob@example.com"), "+OK");
	assert_true(strncmp(command(c, "PASS hunter 2"), "+OK", 3) == 0);
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

/*
 * In each state, each command is either refused as wrong-state or gets
 * its own answer; the session survives either way.
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
			struct tclient	*c = client_new(env);
			char		 line[128];
			const char	*r;
			bool		 allowed = (cmds[i].states & pst) != 0;

			if (pst == POP3_TRANSACTION)
				login(c);
			else
				client_line(c);
			snprintf(line, sizeof(line), "%s%s", cmds[i].name,
			    sample_args(cmds[i].name));
			r = command(c, line);
			assert_non_null(r);
			if (!allowed) {
				assert_non_null(strstr(r, "not valid in this "
				    "state"));
				assert_true(strncmp(r, "-ERR", 4) == 0);
			} else {
				assert_null(strstr(r, "not valid in this state"));
				assert_null(strstr(r, "Unknown command"));
			}
			/* The session is still up (QUIT ends it). */
			if (strcmp(cmds[i].name, "QUIT") != 0) {
				if (strncmp(r, "+OK", 3) == 0 &&
				    (strcmp(cmds[i].name, "CAPA") == 0 ||
				    strcmp(cmds[i].name, "LIST") == 0 ||
				    strcmp(cmds[i].name, "UIDL") == 0 ||
				    strcmp(cmds[i].name, "RETR") == 0 ||
				    strcmp(cmds[i].name, "TOP") == 0 ||
				    strcmp(cmds[i].name, "AUTH") == 0))
					skip_body(c);
				r = command(c, "CAPA");
				assert_non_null(r);
				assert_true(strncmp(r, "+OK", 3) == 0);
				skip_body(c);
			} else
				assert_null(client_line(c));
			client_free(c);
		}
	}
	env_free(env);
}

/* No command may run in UPDATE: it is left only by closing. */
static void
test_table_shape(void **state)
{
	const struct pop3_cmd	*cmds;
	size_t			 n, i;

	(void)state;
	cmds = pop3_cmd_table(&n);
	assert_true(n >= 15);
	for (i = 0; i < n; i++) {
		assert_true(strlen(cmds[i].name) >= 3 && strlen(cmds[i].name) <= 4);
		assert_int_equal(cmds[i].states & POP3_UPDATE, 0);
		assert_true(cmds[i].min_args <= cmds[i].max_args);
		assert_ptr_equal(pop3_cmd_find(cmds[i].name), &cmds[i]);
	}
	assert_ptr_equal(pop3_cmd_find("retr"), pop3_cmd_find("RETR"));
	assert_null(pop3_cmd_find("XYZZ"));
	assert_true(pop3_cmd_find("PASS")->flags & CMDF_SECRET);
	assert_true(pop3_cmd_find("PASS")->flags & CMDF_RESTLINE);
}

static void
test_unknown_vs_wrong_state(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);
	const char	*r;
	char		 unknown[256];

	(void)state;
	client_line(c);
	r = command(c, "XYZZ");
	snprintf(unknown, sizeof(unknown), "%s", r);
	assert_true(strncmp(unknown, "-ERR", 4) == 0);
	r = command(c, "STAT");
	assert_true(strncmp(r, "-ERR", 4) == 0);
	assert_string_not_equal(r, unknown);
	/* Keywords are case-insensitive; too short or long is unknown. */
	assert_string_equal(command(c, "user bob@example.com"), "+OK");
	assert_string_equal(command(c, "NO"), unknown);
	assert_string_equal(command(c, "NOOPS"), unknown);
	client_free(c);
	env_free(env);
}

static void
test_argument_counts(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);

	(void)state;
	login(c);
	assert_non_null(strstr(command(c, "RETR"), "Wrong number"));
	assert_non_null(strstr(command(c, "TOP 1"), "Wrong number"));
	assert_non_null(strstr(command(c, "STAT 1"), "Wrong number"));
	assert_non_null(strstr(command(c, "LIST 1 2"), "Wrong number"));
	/* Extra spaces are tolerated. */
	assert_string_equal(command(c, "LIST  1 "), "+OK 1 23");
	assert_true(strncmp(command(c, "RETR 0"), "-ERR", 4) == 0);
	assert_true(strncmp(command(c, "RETR -1"), "-ERR", 4) == 0);
	assert_true(strncmp(command(c, "RETR 3"), "-ERR", 4) == 0);
	assert_true(strncmp(command(c, "RETR +1"), "-ERR", 4) == 0);
	assert_true(strncmp(command(c, "RETR 01"), "-ERR", 4) == 0);
	assert_true(strncmp(command(c, "RETR 99999999999999999999"), "-ERR",
	    4) == 0);
	assert_true(strncmp(command(c, "TOP 1 x"), "-ERR", 4) == 0);
	assert_string_equal(command(c, "STAT"), "+OK 2 53");
	client_free(c);
	env_free(env);
}

/* Consecutive bad commands end the session; a good one resets the count. */
static void
test_bad_command_limit(void **state)
{
	struct tenv	*env = env_new("[server]\nmax_bad_commands = 4\n");
	struct tclient	*c = client_new(env);
	const char	*r;
	int		 i;

	(void)state;
	login(c);
	for (i = 0; i < 3; i++)
		assert_true(strncmp(command(c, "BOGUS"), "-ERR", 4) == 0);
	assert_string_equal(command(c, "NOOP"), "+OK");
	for (i = 0; i < 3; i++)
		assert_true(strncmp(command(c, "BOGUS"), "-ERR", 4) == 0);
	r = command(c, "BOGUS");
	assert_true(strncmp(r, "-ERR", 4) == 0);
	r = client_line(c);
	assert_non_null(strstr(r, "Too many bad commands"));
	assert_null(client_line(c));
	client_free(c);
	env_free(env);
}

/* Fewer bad commands are allowed before login. */
static void
test_bad_command_limit_prelogin(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);
	int		 i;

	(void)state;
	client_line(c);
	for (i = 0; i < 4; i++)
		assert_true(strncmp(command(c, "STAT"), "-ERR", 4) == 0);
	assert_true(strncmp(command(c, "STAT"), "-ERR", 4) == 0);
	assert_non_null(strstr(client_line(c), "Too many bad commands"));
	assert_null(client_line(c));
	client_free(c);
	env_free(env);
}

static void
test_pass_rest_of_line(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);

	(void)state;
	client_line(c);
	assert_string_equal(command(c, "USER bob@example.com"), "+OK");
	/* "hunter 2" has a space; "PASS" alone has no argument. */
	assert_non_null(strstr(command(c, "PASS"), "Wrong number"));
	assert_string_equal(command(c, "USER bob@example.com"), "+OK");
	assert_true(strncmp(command(c, "PASS hunter 2"), "+OK", 3) == 0);
	client_free(c);
	env_free(env);
}

static void
test_auth_trailing_space(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);

	(void)state;
	client_line(c);
	assert_true(strncmp(command(c, "AUTH "), "+OK", 3) == 0);
	assert_string_equal(client_line(c), "PLAIN");
	assert_string_equal(client_line(c), ".");
	/* AUTH PLAIN with an initial response: "\0bob@example.com\0hunter 2". */
	assert_true(strncmp(command(c,
	    "AUTH PLAIN AGJvYkBleGFtcGxlLmNvbQBodW50ZXIgMg=="), "+OK", 3) == 0);
	assert_true(strncmp(command(c, "STAT"), "+OK", 3) == 0);
	client_free(c);
	env_free(env);
}

static void
test_last_switch(void **state)
{
	struct tenv	*env = env_new("[pop3]\nenable_last = no\n");
	struct tclient	*c = client_new(env);

	(void)state;
	login(c);
	assert_non_null(strstr(command(c, "LAST"), "Unknown command"));
	client_free(c);
	env_free(env);

	env = env_new("");
	c = client_new(env);
	login(c);
	assert_string_equal(command(c, "LAST"), "+OK 0");
	assert_true(strncmp(command(c, "RETR 2"), "+OK", 3) == 0);
	skip_body(c);
	assert_string_equal(command(c, "LAST"), "+OK 2");
	assert_true(strncmp(command(c, "RSET"), "+OK", 3) == 0);
	assert_string_equal(command(c, "LAST"), "+OK 0");
	client_free(c);
	env_free(env);
}

static void
test_line_too_long(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);
	char		 big[3000];

	(void)state;
	login(c);
	memset(big, 'A', sizeof(big) - 3);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	client_send(c, big);
	assert_non_null(strstr(client_line(c), "Line too long"));
	assert_string_equal(command(c, "NOOP"), "+OK");
	client_free(c);
	env_free(env);
}

/*
 * The idle timer is armed once and re-armed for the remainder when it
 * fires: a command resets it, silence ends the session without a reply.
 * (The config refuses idle_timeout < 600; the test shortens it directly.)
 */
static void
test_idle_timeout(void **state)
{
	struct tenv	*env = env_new("");
	struct tclient	*c = client_new(env);

	(void)state;
	env->cfg->idle_timeout = 1;
	login(c);
	assert_true(client_alive_for(c, 700));
	assert_string_equal(command(c, "NOOP"), "+OK");
	assert_true(client_alive_for(c, 700));	/* 1.4 s since login */
	assert_string_equal(command(c, "NOOP"), "+OK");
	assert_false(client_alive_for(c, 2500));
	assert_int_equal(c->len, 0);		/* closed without a response */
	client_free(c);
	env_free(env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
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
		cmocka_unit_test(test_idle_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
