/*
 * Unit tests for config.c (cfg_load, cfg_parse_listen) and log.c.
 *
 * Every test writes real INI files into a mkdtemp() directory and loads
 * them with the real loader. Log output is checked by pointing fd 2 at a
 * file (or a pseudo-terminal) and reading back what was written.
 *
 * Set EVPOP3D_SOURCE_DIR to the source tree to also check the shipped
 * conf/evpop3d.ini and doc/CONFIG.md; without it that test is skipped.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "lib/log.h"

static char	 tmpdir[64];
static int	 saved_stderr = -1;
static char	 cap_path[PATH_MAX + 32];

/* Minimal valid body: the two required keys. */
#define MINIMAL \
	"[auth]\npasswd_file = /etc/evpop3d/passwd\n" \
	"[mail]\nlocation = /var/mail/%u\n"

/* ------------------------------------------------------------------ */
/* helpers */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Restores stderr if a failed assertion left it captured. */
static int
test_teardown(void **state)
{
	(void)state;
	if (saved_stderr != -1) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
		saved_stderr = -1;
	}
	log_init(false);
	return 0;
}

/* tmpdir/name, in a static buffer (one at a time). */
static const char *
tpath(const char *name)
{
	static char	 buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static void
write_file(const char *path, const char *body)
{
	FILE	*fp;

	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(body, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void
make_dir(const char *path)
{
	assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
}

/* Write body to tmpdir/name and load it; returns cfg_load's result. */
static int
load_text(const char *name, const char *body, struct cfg **cfg_r,
    char *err, size_t errlen)
{
	char	 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", tpath(name));
	write_file(path, body);
	return cfg_load(path, cfg_r, err, errlen);
}

static struct cfg *
load_ok(const char *body)
{
	struct cfg	*cfg = NULL;
	char		 err[512];

	if (load_text("ok.ini", body, &cfg, err, sizeof(err)) != 0)
		fail_msg("unexpected load error: %s", err);
	assert_non_null(cfg);
	return cfg;
}

/*
 * Load body, expect failure, and check that the error is one line that
 * starts with the file name and contains every given fragment.
 */
static void
load_fails(const char *body, ...)
{
	struct cfg	*cfg = (struct cfg *)&cfg;	/* must be reset */
	char		 err[512], prefix[PATH_MAX + 2];
	const char	*frag;
	va_list		 ap;

	assert_int_equal(load_text("bad.ini", body, &cfg, err, sizeof(err)),
	    -1);
	assert_null(cfg);
	snprintf(prefix, sizeof(prefix), "%s: ", tpath("bad.ini"));
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error does not start with '%s': %s", prefix, err);
	assert_null(strchr(err, '\n'));
	va_start(ap, body);
	while ((frag = va_arg(ap, const char *)) != NULL)
		if (strstr(err, frag) == NULL)
			fail_msg("'%s' not in error: %s", frag, err);
	va_end(ap);
}

/* MINIMAL plus "[sect] key = value". */
static const char *
with_kv(const char *sect, const char *key, const char *value)
{
	static char	 buf[4096];

	snprintf(buf, sizeof(buf), "%s[%s]\n%s = %s\n", MINIMAL, sect, key,
	    value);
	return buf;
}

/* Point fd 2 at a file until capture_end(). */
static void
capture_begin(void)
{
	int	 fd;

	snprintf(cap_path, sizeof(cap_path), "%s/stderr.XXXXXX", tmpdir);
	fd = mkstemp(cap_path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/*
 * Remove the timestamp log.c puts before each line on a file (ISO 8601,
 * "2026-12-06T13:29:12.345+00:00 ", 30 characters): the tests compare
 * the rest. test_log_tty_timestamp checks the stamp's shape.
 */
static void
strip_stamps(char *buf)
{
	char	*in = buf, *out = buf;

	while (*in != '\0') {
		if (strlen(in) > 30 && in[4] == '-' && in[10] == 'T' &&
		    in[19] == '.' && in[29] == ' ')
			in += 30;
		while (*in != '\0' && *in != '\n')
			*out++ = *in++;
		if (*in == '\n')
			*out++ = *in++;
	}
	*out = '\0';
}

/* Restore fd 2; returns what was written (caller frees). */
static char *
capture_end(void)
{
	FILE	*fp;
	char	*buf;
	long	 len;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;

	fp = fopen(cap_path, "r");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	unlink(cap_path);
	strip_stamps(buf);
	return buf;
}

static void
assert_v4(const struct cfg_listen *l, const char *addr, int port)
{
	const struct sockaddr_in	*sin = (const void *)&l->addr;
	char				 buf[INET_ADDRSTRLEN];

	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(l->addrlen, sizeof(*sin));
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void
assert_v6(const struct cfg_listen *l, const char *addr, int port)
{
	const struct sockaddr_in6	*sin6 = (const void *)&l->addr;
	char				 buf[INET6_ADDRSTRLEN];

	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(l->addrlen, sizeof(*sin6));
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
	    sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* ------------------------------------------------------------------ */
/* loading: defaults and happy paths */

static void
test_minimal_defaults(void **state)
{
	struct cfg	*cfg;
	char		 host[256];

	(void)state;
	cfg = load_ok(MINIMAL);
	assert_string_equal(cfg->path, tpath("ok.ini"));

	assert_int_equal(cfg->n_listen, 2);
	assert_v4(&cfg->listen[0], "127.0.0.1", 110);
	assert_string_equal(cfg->listen[0].text, "127.0.0.1:110");
	assert_v6(&cfg->listen[1], "::1", 110);
	assert_string_equal(cfg->listen[1].text, "[::1]:110");

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(cfg->hostname, host);
	assert_int_equal(cfg->idle_timeout, 600);
	assert_int_equal(cfg->login_timeout, 60);
	assert_int_equal(cfg->write_timeout, 300);
	assert_int_equal(cfg->max_connections, 10000);
	assert_int_equal(cfg->max_bad_commands, 20);

	assert_string_equal(cfg->passwd_file, "/etc/evpop3d/passwd");
	assert_false(cfg->apop);
	assert_int_equal(cfg->failure_delay_ms, 2000);
	assert_int_equal(cfg->max_failures, 3);
	assert_int_equal(cfg->threads, 2);
	assert_false(cfg->allow_shrink);

	assert_string_equal(cfg->mail_driver, "maildir");
	assert_string_equal(cfg->mail_location, "/var/mail/%u");
	assert_true(cfg->enable_last);
	assert_false(cfg->log_debug);
	cfg_free(cfg);
}

static void
test_all_keys(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok(
	    "; every key, none at its default\n"
	    "[server]\n"
	    "listen = 127.0.0.2:2110\n"
	    "hostname = pop.example.org\n"
	    "idle_timeout = 1200\n"
	    "login_timeout = 30\n"
	    "write_timeout = 120\n"
	    "max_connections = 500\n"
	    "max_bad_commands = 5\n"
	    "[auth]\n"
	    "passwd_file = /srv/pop/users\n"
	    "apop = yes\n"
	    "failure_delay = 0\n"
	    "max_failures = 10\n"
	    "threads = 8\n"
	    "allow_shrink = yes\n"
	    "[mail]\n"
	    "driver = maildir\n"
	    "location = %h/Maildir\n"
	    "[pop3]\n"
	    "enable_last = no\n"
	    "[log]\n"
	    "debug = yes\n");
	assert_int_equal(cfg->n_listen, 1);
	assert_v4(&cfg->listen[0], "127.0.0.2", 2110);
	assert_string_equal(cfg->hostname, "pop.example.org");
	assert_int_equal(cfg->idle_timeout, 1200);
	assert_int_equal(cfg->login_timeout, 30);
	assert_int_equal(cfg->write_timeout, 120);
	assert_int_equal(cfg->max_connections, 500);
	assert_int_equal(cfg->max_bad_commands, 5);
	assert_string_equal(cfg->passwd_file, "/srv/pop/users");
	assert_true(cfg->apop);
	assert_int_equal(cfg->failure_delay_ms, 0);
	assert_int_equal(cfg->max_failures, 10);
	assert_int_equal(cfg->threads, 8);
	assert_true(cfg->allow_shrink);
	assert_string_equal(cfg->mail_driver, "maildir");
	assert_string_equal(cfg->mail_location, "%h/Maildir");
	assert_false(cfg->enable_last);
	assert_true(cfg->log_debug);
	cfg_free(cfg);
}

static void
test_case_insensitive_names(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok(MINIMAL "[SERVER]\nIdle_Timeout = 700\n"
	    "[Log]\nDEBUG = On\n");
	assert_int_equal(cfg->idle_timeout, 700);
	assert_true(cfg->log_debug);
	cfg_free(cfg);
}

/* ------------------------------------------------------------------ */
/* file-level errors */

static void
test_missing_file(void **state)
{
	struct cfg	*cfg = NULL;
	char		 err[512];

	(void)state;
	assert_int_equal(cfg_load(tpath("nonexistent.ini"), &cfg, err,
	    sizeof(err)), -1);
	assert_null(cfg);
	assert_non_null(strstr(err, tpath("nonexistent.ini")));
	assert_non_null(strstr(err, strerror(ENOENT)));
}

static void
test_not_a_file(void **state)
{
	struct cfg	*cfg = NULL;
	char		 err[512];

	(void)state;
	make_dir(tpath("adir"));
	assert_int_equal(cfg_load(tpath("adir"), &cfg, err, sizeof(err)), -1);
	assert_null(cfg);
	assert_non_null(strstr(err, tpath("adir")));
	assert_non_null(strstr(err, "not a regular file"));
}

static void
test_unreadable_file(void **state)
{
	struct cfg	*cfg = NULL;
	char		 err[512];
	pid_t		 pid;
	int		 status;

	(void)state;
	write_file(tpath("noperm.ini"), MINIMAL);
	assert_int_equal(chmod(tpath("noperm.ini"), 0), 0);
	/* In a child, as nobody if we are root (root reads anything). */
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		/* nobody may pass the directory: only the file's mode stops
		 * the read. */
		if (geteuid() == 0 && (chmod(tmpdir, 0711) == -1 ||
		    setgid(65534) == -1 || setuid(65534) == -1))
			_exit(3);
		if (cfg_load(tpath("noperm.ini"), &cfg, err,
		    sizeof(err)) != -1 || cfg != NULL)
			_exit(4);
		_exit(strstr(err, strerror(EACCES)) != NULL ? 0 : 5);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_syntax_error(void **state)
{
	char	 *out;

	(void)state;
	/* iniparser reports through our hook: nothing raw on stderr. */
	capture_begin();
	load_fails("[server]\nidle_timeout = 600\nthis is not ini\n",
	    "cannot parse", "syntax error at line 3", "this is not ini", NULL);
	out = capture_end();
	assert_string_equal(out, "");
	free(out);
}

static void
test_syntax_error_twice(void **state)
{
	char	 *out;

	(void)state;
	/* The first error is returned, later ones are logged. */
	capture_begin();
	load_fails("first bad\n[s]\nsecond bad\n", "syntax error at line 1",
	    "first bad", NULL);
	out = capture_end();
	assert_non_null(strstr(out, "warn "));
	assert_non_null(strstr(out, "line 3"));
	assert_non_null(strstr(out, "second bad"));
	free(out);
}

static void
test_line_too_long(void **state)
{
	char	 body[4096];

	(void)state;
	snprintf(body, sizeof(body), "%s[server]\nhostname = %01500d\n",
	    MINIMAL, 0);
	load_fails(body, "cannot parse", "line 6", NULL);
}

static void
test_empty_file(void **state)
{
	(void)state;
	load_fails("", "[auth] passwd_file: required key is missing", NULL);
}

/* ------------------------------------------------------------------ */
/* required keys */

static void
test_required_missing(void **state)
{
	char	*out;

	(void)state;
	load_fails("[mail]\nlocation = /var/mail/%u\n",
	    "[auth] passwd_file: required key is missing", NULL);
	load_fails("[auth]\npasswd_file = /etc/p\n",
	    "[mail] location: required key is missing", NULL);
	/* A key in the wrong section does not count (and is warned about). */
	capture_begin();
	load_fails("[server]\npasswd_file = /etc/p\n"
	    "[mail]\nlocation = /var/mail/%u\n",
	    "[auth] passwd_file: required key is missing", NULL);
	out = capture_end();
	assert_non_null(strstr(out, "[server] passwd_file: unknown key"));
	free(out);
}

/* [auth] driver: what each needs, and the pgsql keys' defaults. */
static void
test_auth_driver(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok("[auth]\ndriver = pgsql\npgsql_connect = "
	    "host=/run/postgresql dbname=mail\n"
	    "[mail]\nlocation = /var/mail/%u\n");
	assert_true(cfg->auth_pgsql);
	assert_null(cfg->passwd_file);
	assert_string_equal(cfg->pgsql_connect,
	    "host=/run/postgresql dbname=mail");
	assert_non_null(strstr(cfg->password_query, "WHERE userid = '%u'"));
	assert_string_equal(cfg->user_query, "");
	assert_int_equal(cfg->pgsql_connections, 4);
	assert_int_equal(cfg->pgsql_timeout, 5);
	assert_int_equal(cfg->cache_ttl, 60);
	assert_int_equal(cfg->cache_size, 10000);
	cfg_free(cfg);
	cfg = load_ok("[auth]\npasswd_file = /etc/p\n"
	    "[mail]\nlocation = /var/mail/%u\n");
	assert_false(cfg->auth_pgsql);
	cfg_free(cfg);
	load_fails("[auth]\ndriver = pgsql\n[mail]\nlocation = /m/%u\n",
	    "[auth] pgsql_connect: ", "required with driver = pgsql", NULL);
	load_fails("[auth]\ndriver = ldap\npasswd_file = /etc/p\n"
	    "[mail]\nlocation = /m/%u\n", "[auth] driver: ",
	    "passwd-file or pgsql", NULL);
	load_fails("[auth]\ndriver = passwd-file\n[mail]\nlocation = "
	    "/m/%u\n", "[auth] passwd_file: required key is missing", NULL);
	load_fails("[auth]\ndriver = pgsql\npgsql_connect = x\n"
	    "cache_ttl = -1\n[mail]\nlocation = /m/%u\n",
	    "[auth] cache_ttl: ", NULL);
}

static void
test_empty_strings(void **state)
{
	(void)state;
	load_fails(with_kv("auth", "passwd_file", ""),
	    "[auth] passwd_file: must not be empty, got ''", NULL);
	load_fails(with_kv("mail", "location", "\"\""),
	    "[mail] location: must not be empty, got ''", NULL);
	load_fails(with_kv("server", "hostname", ""),
	    "[server] hostname: must not be empty", NULL);
	load_fails(with_kv("mail", "driver", ""),
	    "[mail] driver: must not be empty", NULL);
}

/* ------------------------------------------------------------------ */
/* booleans */

static void
test_bools(void **state)
{
	static const struct {
		const char	*text;
		bool		 value;
	} good[] = {
		{ "yes", true }, { "YES", true }, { "true", true },
		{ "True", true }, { "on", true }, { "ON", true }, { "1", true },
		{ "no", false }, { "No", false }, { "false", false },
		{ "FALSE", false }, { "off", false }, { "Off", false },
		{ "0", false }, { "\" yes \"", true },
	};
	static const char *const bad[] = {
		"maybe", "2", "yess", "y", "n", "-1", "00", "ja",
	};
	struct cfg	*cfg;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cfg = load_ok(with_kv("auth", "apop", good[i].text));
		if (cfg->apop != good[i].value)
			fail_msg("apop = %s gave %d", good[i].text, cfg->apop);
		cfg_free(cfg);
		/* Each bool key goes through the same code; spot-check. */
		cfg = load_ok(with_kv("pop3", "enable_last", good[i].text));
		assert_int_equal(cfg->enable_last, good[i].value);
		cfg_free(cfg);
		cfg = load_ok(with_kv("auth", "allow_shrink", good[i].text));
		assert_int_equal(cfg->allow_shrink, good[i].value);
		cfg_free(cfg);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char	 got[64];

		snprintf(got, sizeof(got), "got '%s'", bad[i]);
		load_fails(with_kv("log", "debug", bad[i]),
		    "[log] debug: must be yes or no", got, NULL);
	}
	load_fails(with_kv("auth", "apop", ""), "[auth] apop: must be yes or no",
	    "got ''", NULL);
}

/* ------------------------------------------------------------------ */
/* integers */

static const struct int_key {
	const char	*section;
	const char	*key;
	long		 min, max;
	size_t		 offset;
} int_keys[] = {
	{ "server", "idle_timeout", 600, 86400,
	    offsetof(struct cfg, idle_timeout) },
	{ "server", "login_timeout", 1, 3600,
	    offsetof(struct cfg, login_timeout) },
	{ "server", "write_timeout", 5, 86400,
	    offsetof(struct cfg, write_timeout) },
	{ "server", "max_connections", 1, 1000000,
	    offsetof(struct cfg, max_connections) },
	{ "server", "max_bad_commands", 1, 1000,
	    offsetof(struct cfg, max_bad_commands) },
	{ "auth", "failure_delay", 0, 60000,
	    offsetof(struct cfg, failure_delay_ms) },
	{ "auth", "max_failures", 1, 100,
	    offsetof(struct cfg, max_failures) },
	{ "auth", "threads", 1, 64, offsetof(struct cfg, threads) },
};

static int
int_field(const struct cfg *cfg, size_t offset)
{
	int	 v;

	memcpy(&v, (const char *)cfg + offset, sizeof(v));
	return v;
}

/* Every integer key: min and max load, min-1 and max+1 do not. */
static void
test_int_bounds(void **state)
{
	const struct int_key	*k;
	struct cfg		*cfg;
	char			 v[32], what[128], got[64];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(int_keys) / sizeof(int_keys[0]); i++) {
		k = &int_keys[i];

		snprintf(v, sizeof(v), "%ld", k->min);
		cfg = load_ok(with_kv(k->section, k->key, v));
		assert_int_equal(int_field(cfg, k->offset), k->min);
		cfg_free(cfg);

		snprintf(v, sizeof(v), "%ld", k->max);
		cfg = load_ok(with_kv(k->section, k->key, v));
		assert_int_equal(int_field(cfg, k->offset), k->max);
		cfg_free(cfg);

		snprintf(v, sizeof(v), "%ld", k->min - 1);
		snprintf(what, sizeof(what), "[%s] %s: must be at least %ld",
		    k->section, k->key, k->min);
		snprintf(got, sizeof(got), ", got '%s'", v);
		load_fails(with_kv(k->section, k->key, v), what, got, NULL);

		snprintf(v, sizeof(v), "%ld", k->max + 1);
		snprintf(what, sizeof(what), "[%s] %s: must be at most %ld",
		    k->section, k->key, k->max);
		snprintf(got, sizeof(got), ", got '%s'", v);
		load_fails(with_kv(k->section, k->key, v), what, got, NULL);
	}
}

static void
test_int_idle_rfc(void **state)
{
	char	 err_prefix[PATH_MAX + 128];

	(void)state;
	/* The exact message from the header's contract. */
	snprintf(err_prefix, sizeof(err_prefix), "%s: [server] idle_timeout: "
	    "must be at least 600 (RFC 1939 section 3), got '30'",
	    tpath("bad.ini"));
	load_fails(with_kv("server", "idle_timeout", "30"), err_prefix, NULL);
}

static void
test_int_junk(void **state)
{
	static const char *const junk[] = {
		"10x", "x10", "0x10", "1e3", "+5", "1 000", "1.5", "--5", "-",
		"\"\"", "",
	};
	struct cfg	*cfg;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		load_fails(with_kv("auth", "threads", junk[i]),
		    "[auth] threads: must be a decimal integer, got '", NULL);
	load_fails(with_kv("auth", "threads", "10x"), "got '10x'", NULL);

	/* Overflow is out of range, in the right direction. */
	load_fails(with_kv("auth", "threads", "99999999999999999999999"),
	    "must be at most 64", NULL);
	load_fails(with_kv("auth", "threads", "-99999999999999999999999"),
	    "must be at least 1", NULL);
	load_fails(with_kv("auth", "failure_delay", "-5"),
	    "[auth] failure_delay: must be at least 0, got '-5'", NULL);

	/* Spaces around the number (kept by quoting) and leading zeros. */
	cfg = load_ok(with_kv("auth", "threads", "\"  7  \""));
	assert_int_equal(cfg->threads, 7);
	cfg_free(cfg);
	cfg = load_ok(with_kv("server", "idle_timeout", "0900"));
	assert_int_equal(cfg->idle_timeout, 900);
	cfg_free(cfg);
	/* An inline comment is not part of the value. */
	cfg = load_ok(with_kv("auth", "threads", "4 ; four"));
	assert_int_equal(cfg->threads, 4);
	cfg_free(cfg);
}

/* ------------------------------------------------------------------ */
/* cfg_parse_listen */

static void
listen_bad(const char *text, const char *frag)
{
	struct cfg_listen	 l;
	char			 err[256] = "";

	if (cfg_parse_listen(text, &l, err, sizeof(err)) != -1)
		fail_msg("'%s' was accepted", text);
	if (strstr(err, frag) == NULL)
		fail_msg("'%s': '%s' not in error: %s", text, frag, err);
}

static void
test_listen_parse(void **state)
{
	struct cfg_listen	 l;
	char			 err[256], big[128];

	(void)state;
	assert_int_equal(cfg_parse_listen("127.0.0.1:1100", &l, err,
	    sizeof(err)), 0);
	assert_v4(&l, "127.0.0.1", 1100);
	assert_string_equal(l.text, "127.0.0.1:1100");

	assert_int_equal(cfg_parse_listen("[::1]:1100", &l, err, sizeof(err)),
	    0);
	assert_v6(&l, "::1", 1100);
	assert_string_equal(l.text, "[::1]:1100");

	assert_int_equal(cfg_parse_listen("*:110", &l, err, sizeof(err)), 0);
	assert_v4(&l, "0.0.0.0", 110);
	assert_string_equal(l.text, "*:110");

	assert_int_equal(cfg_parse_listen("[::]:110", &l, err, sizeof(err)), 0);
	assert_v6(&l, "::", 110);

	assert_int_equal(cfg_parse_listen("[2001:db8::7]:995", &l, err,
	    sizeof(err)), 0);
	assert_v6(&l, "2001:db8::7", 995);

	/* Port bounds; 0 is "any free port". */
	assert_int_equal(cfg_parse_listen("127.0.0.1:0", &l, err, sizeof(err)),
	    0);
	assert_v4(&l, "127.0.0.1", 0);
	assert_int_equal(cfg_parse_listen("127.0.0.1:65535", &l, err,
	    sizeof(err)), 0);
	assert_v4(&l, "127.0.0.1", 65535);

	/* Trimmed, and the text is the trimmed original. */
	assert_int_equal(cfg_parse_listen("  \t[::1]:7 ", &l, err, sizeof(err)),
	    0);
	assert_v6(&l, "::1", 7);
	assert_string_equal(l.text, "[::1]:7");

	listen_bad("127.0.0.1:65536", "port must be a number from 0 to 65535");
	listen_bad("127.0.0.1:100000", "port must be");
	listen_bad("127.0.0.1:-1", "port must be");
	listen_bad("127.0.0.1:", "port must be");
	listen_bad("127.0.0.1:11x", "port must be");
	listen_bad("127.0.0.1: 110", "port must be");
	listen_bad("[::1]:pop3", "port must be");
	listen_bad("127.0.0.1", "missing port");
	listen_bad("[::1]", "missing port");
	listen_bad("[::1]110", "expected ':'");
	listen_bad("[::1:110", "missing ']'");
	listen_bad("::1:110", "IPv6 addresses must be in brackets");
	listen_bad("localhost:110", "host names are not supported");
	listen_bad("mail.example.org:110", "host names are not supported");
	listen_bad("[localhost]:110", "not a literal IPv6 address");
	listen_bad("[127.0.0.1]:110", "not a literal IPv6 address");
	listen_bad("127.0.0.256:110", "not a valid IPv4 address");
	listen_bad("127.1:110", "not a valid IPv4 address");
	listen_bad(":110", "missing address");
	listen_bad("", "empty address");
	listen_bad("   ", "empty address");
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	listen_bad(big, "too long");
}

static void
test_listen_list(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok(with_kv("server", "listen",
	    "  127.0.0.1:1 ,[::1]:2,   *:3 , [::]:4  "));
	assert_int_equal(cfg->n_listen, 4);
	assert_v4(&cfg->listen[0], "127.0.0.1", 1);
	assert_string_equal(cfg->listen[0].text, "127.0.0.1:1");
	assert_v6(&cfg->listen[1], "::1", 2);
	assert_string_equal(cfg->listen[1].text, "[::1]:2");
	assert_v4(&cfg->listen[2], "0.0.0.0", 3);
	assert_string_equal(cfg->listen[2].text, "*:3");
	assert_v6(&cfg->listen[3], "::", 4);
	cfg_free(cfg);

	/* Same address on another port, or v4 and v6: not duplicates. */
	cfg = load_ok(with_kv("server", "listen",
	    "127.0.0.1:1, 127.0.0.1:2, [::1]:1"));
	assert_int_equal(cfg->n_listen, 3);
	cfg_free(cfg);

	load_fails(with_kv("server", "listen", "127.0.0.1:1, 127.0.0.1:1"),
	    "[server] listen: duplicate address", "got '127.0.0.1:1'", NULL);
	/* "*" and 0.0.0.0 are the same address. */
	load_fails(with_kv("server", "listen", "*:5, 0.0.0.0:5"),
	    "duplicate address (same as '*:5')", "got '0.0.0.0:5'", NULL);
	load_fails(with_kv("server", "listen", "[::1]:5,[0:0::1]:5"),
	    "duplicate address", NULL);
	load_fails(with_kv("server", "listen", ""),
	    "[server] listen: at least one address is required", NULL);
	load_fails(with_kv("server", "listen", "127.0.0.1:1,,[::1]:1"),
	    "[server] listen: empty address in list", NULL);
	load_fails(with_kv("server", "listen", "127.0.0.1:1,"),
	    "empty address in list", NULL);
	/* The error names the bad item, not the whole list. */
	load_fails(with_kv("server", "listen", "127.0.0.1:1, localhost:2"),
	    "[server] listen: host names are not supported",
	    "got 'localhost:2'", NULL);
	load_fails(with_kv("server", "listen", "127.0.0.1:1, [::1]:70000"),
	    "port must be", "got '[::1]:70000'", NULL);
}

/* ------------------------------------------------------------------ */
/* strings with a shape: driver, hostname, location */

static void
test_driver(void **state)
{
	struct cfg *cfg;

	(void)state;
	load_fails(with_kv("mail", "driver", "mdbox"),
	    "[mail] driver: unknown driver (known: maildir, mbox), got "
	    "'mdbox'", NULL);
	load_fails(with_kv("mail", "driver", "Maildir"), "unknown driver",
	    NULL);
	cfg = load_ok(with_kv("mail", "driver", "mbox"));
	assert_string_equal(cfg->mail_driver, "mbox");
	cfg_free(cfg);
}

static void
test_uidl_format(void **state)
{
	struct cfg *cfg;

	(void)state;
	cfg = load_ok(with_kv("log", "debug", "no"));
	assert_string_equal(cfg->uidl_format, "");	/* drivers' own */
	cfg_free(cfg);
	cfg = load_ok(with_kv("pop3", "uidl_format", "%08Xu%08Xv"));
	assert_string_equal(cfg->uidl_format, "%08Xu%08Xv");
	cfg_free(cfg);
	cfg = load_ok(with_kv("pop3", "uidl_format", ""));
	assert_string_equal(cfg->uidl_format, "");
	cfg_free(cfg);
	load_fails(with_kv("pop3", "uidl_format", "%q"),
	    "[pop3] uidl_format: bad escape", "got '%q'", NULL);
	load_fails(with_kv("pop3", "uidl_format", "UID"),
	    "every message would have the same UIDL", NULL);
}

/* [server] user, group, allow_root: defaults, names looked up at load. */
static void
test_privileges(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok(MINIMAL);
	assert_string_equal(cfg->user, "");
	assert_string_equal(cfg->group, "");
	assert_false(cfg->allow_root);
	cfg_free(cfg);

	cfg = load_ok(MINIMAL "[server]\nuser = nobody\ngroup = nogroup\n"
	    "allow_root = yes\n");
	assert_string_equal(cfg->user, "nobody");
	assert_string_equal(cfg->group, "nogroup");
	assert_true(cfg->allow_root);
	cfg_free(cfg);

	load_fails(with_kv("server", "user", "no-such-user-x"),
	    "[server] user: unknown user (not in the system's user database)",
	    "got 'no-such-user-x'", NULL);
	load_fails(with_kv("server", "group", "no-such-group-x"),
	    "[server] group: unknown group", "got 'no-such-group-x'", NULL);
	load_fails(with_kv("server", "allow_root", "maybe"),
	    "[server] allow_root", "got 'maybe'", NULL);
}

static void
test_hostname(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok(with_kv("server", "hostname", "pop-1.example_org.net"));
	assert_string_equal(cfg->hostname, "pop-1.example_org.net");
	cfg_free(cfg);
	/* It goes into "<...@host>" on the wire: no spaces or brackets. */
	load_fails(with_kv("server", "hostname", "bad host"),
	    "[server] hostname: must be a host name", "got 'bad host'", NULL);
	load_fails(with_kv("server", "hostname", "a>b"), "must be a host name",
	    NULL);
}

static void
test_location_template(void **state)
{
	struct cfg	*cfg;

	(void)state;
	cfg = load_ok(with_kv("mail", "location", "/m/%d/%n/%%x/%u"));
	assert_string_equal(cfg->mail_location, "/m/%d/%n/%%x/%u");
	cfg_free(cfg);

	load_fails(with_kv("mail", "location", "/m/%x"),
	    "[mail] location: unknown variable '%x'", "got '/m/%x'", NULL);
	load_fails(with_kv("mail", "location", "/m/%u%"), "lone '%'", NULL);
	load_fails(with_kv("mail", "location", "/var/mail/shared"),
	    "must contain %u, %n or %h", NULL);
	/* %%u is a literal "%u", not the user. */
	load_fails(with_kv("mail", "location", "/m/%%u"),
	    "must contain %u, %n or %h", NULL);
	load_fails(with_kv("mail", "location", "/m/%d"),
	    "must contain %u, %n or %h", NULL);
}

/* ------------------------------------------------------------------ */
/* path resolution */

static void
test_relative_paths(void **state)
{
	struct cfg	*cfg = NULL;
	char		 err[512], dir[PATH_MAX], want[PATH_MAX + 64];
	char		 cwd[PATH_MAX];

	(void)state;
	snprintf(dir, sizeof(dir), "%s", tpath("etc"));
	make_dir(dir);
	write_file(tpath("etc/rel.ini"),
	    "[auth]\npasswd_file = ./users//passwd\n"
	    "[mail]\nlocation = spool/%n/\n");
	assert_int_equal(cfg_load(tpath("etc/rel.ini"), &cfg, err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/users/passwd", dir);
	assert_string_equal(cfg->passwd_file, want);
	snprintf(want, sizeof(want), "%s/spool/%%n", dir);
	assert_string_equal(cfg->mail_location, want);
	cfg_free(cfg);

	/* ".." is kept for the kernel; absolute paths are only cleaned. */
	write_file(tpath("etc/rel.ini"),
	    "[auth]\npasswd_file = ../p\n"
	    "[mail]\nlocation = //var//mail/./%u\n");
	assert_int_equal(cfg_load(tpath("etc/rel.ini"), &cfg, err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/../p", dir);
	assert_string_equal(cfg->passwd_file, want);
	assert_string_equal(cfg->mail_location, "/var/mail/%u");
	cfg_free(cfg);

	/* A relative config path: still resolved to an absolute path. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	write_file("etc/rel.ini", "[auth]\npasswd_file = passwd\n"
	    "[mail]\nlocation = %h/Maildir\n");
	assert_int_equal(cfg_load("etc/rel.ini", &cfg, err, sizeof(err)), 0);
	assert_int_equal(chdir(cwd), 0);
	snprintf(want, sizeof(want), "%s/passwd", dir);
	assert_string_equal(cfg->passwd_file, want);
	assert_string_equal(cfg->path, "etc/rel.ini");
	/* %h at the start is absolute: left alone. */
	assert_string_equal(cfg->mail_location, "%h/Maildir");
	cfg_free(cfg);
}

static void
test_relative_template_escape(void **state)
{
	struct cfg	*cfg = NULL;
	char		 err[512], want[PATH_MAX + 64];

	(void)state;
	/* A '%' in the directory must not turn into a variable. */
	make_dir(tpath("50%off"));
	write_file(tpath("50%off/c.ini"), "[auth]\npasswd_file = pw\n"
	    "[mail]\nlocation = m/%u\n");
	assert_int_equal(cfg_load(tpath("50%off/c.ini"), &cfg, err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/50%%%%off/m/%%u", tmpdir);
	assert_string_equal(cfg->mail_location, want);
	/* passwd_file is not a template: no escaping. */
	snprintf(want, sizeof(want), "%s/50%%off/pw", tmpdir);
	assert_string_equal(cfg->passwd_file, want);
	cfg_free(cfg);
}

/* ------------------------------------------------------------------ */
/* unknown keys, error buffers */

static void
test_unknown_keys_warn(void **state)
{
	struct cfg	*cfg;
	char		*out, want[PATH_MAX + 128];

	(void)state;
	capture_begin();
	cfg = load_ok("toplevel = 1\n" MINIMAL
	    "[server]\nidle_timeout = 900\nidle_timout = 900\n"
	    "[nosuch]\nfoo = 1\nbar = 2\n");
	out = capture_end();
	assert_int_equal(cfg->idle_timeout, 900);
	assert_int_equal(cfg->warnings, 3);
	cfg_free(cfg);

	snprintf(want, sizeof(want), "warn %s: [server] idle_timout: "
	    "unknown key, ignored; did you mean idle_timeout?\n",
	    tpath("ok.ini"));
	if (strstr(out, want) == NULL)
		fail_msg("'%s' not in: %s", want, out);
	snprintf(want, sizeof(want), "warn %s: [nosuch]: unknown section, "
	    "ignored\n", tpath("ok.ini"));
	if (strstr(out, want) == NULL)
		fail_msg("'%s' not in: %s", want, out);
	assert_non_null(strstr(out, "toplevel: key outside any section"));
	/* One warning for the section, none per key inside it. */
	assert_null(strstr(out, "foo"));
	assert_null(strstr(out, "bar"));
	free(out);
}

/* "did you mean": edit distance <= 2 or a prefix, else no hint. */
static void
test_unknown_key_hints(void **state)
{
	static const struct {
		const char	*sect, *key, *hint;	/* NULL: none */
	} t[] = {
		{ "server", "idletimeout", "idle_timeout" },	/* insertion */
		{ "server", "idle_timeuot", "idle_timeout" },	/* 2 swaps */
		{ "server", "Idle_Timout", "idle_timeout" },	/* any case */
		{ "auth", "max_failure", "max_failures" },
		{ "auth", "passwd", "passwd_file" },		/* prefix */
		{ "mail", "drivers", "driver" },
		{ "pop3", "enable_lost", "enable_last" },
		{ "auth", "colour", NULL },
		{ "log", "verbose", NULL },
		{ "server", "idle_tmeuot", NULL },		/* 3 edits */
	};
	struct cfg	*cfg;
	char		*out, want[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		capture_begin();
		cfg = load_ok(with_kv(t[i].sect, t[i].key, "1"));
		out = capture_end();
		assert_int_equal(cfg->warnings, 1);
		cfg_free(cfg);
		if (t[i].hint == NULL) {
			if (strstr(out, "did you mean") != NULL)
				fail_msg("%s: unexpected hint: %s", t[i].key,
				    out);
		} else {
			snprintf(want, sizeof(want), "ignored; did you mean "
			    "%s?\n", t[i].hint);
			if (strstr(out, want) == NULL)
				fail_msg("%s: '%s' not in: %s", t[i].key, want,
				    out);
		}
		free(out);
	}
}

/* iniparser keeps the last of a repeated key: each repeat is a warning. */
static void
test_duplicate_keys_warn(void **state)
{
	struct cfg	*cfg;
	char		*out, want[PATH_MAX + 128];

	(void)state;
	capture_begin();
	cfg = load_ok(MINIMAL			/* 4 lines */
	    "[Server]\n"			/* 5 */
	    "idle_timeout = 700\n"		/* 6 */
	    "; idle_timeout = 1\n"		/* 7: comments do not count */
	    "# idle_timeout = 2\n"		/* 8 */
	    "  IDLE_TIMEOUT=800 \n"		/* 9 */
	    "[pop3]\n"				/* 10 */
	    "idle_timeout = 3\n"		/* 11: another section */
	    "[server]\n"				/* 12 */
	    "idle_timeout = 900\n");		/* 13 */
	out = capture_end();
	assert_int_equal(cfg->idle_timeout, 900);	/* the last wins */
	assert_int_equal(cfg->warnings, 3);	/* and [pop3] idle_timeout */
	cfg_free(cfg);
	snprintf(want, sizeof(want), "warn %s:9: [server] idle_timeout: "
	    "duplicate key, overrides line 6\n", tpath("ok.ini"));
	if (strstr(out, want) == NULL)
		fail_msg("'%s' not in: %s", want, out);
	snprintf(want, sizeof(want), "warn %s:13: [server] idle_timeout: "
	    "duplicate key, overrides line 9\n", tpath("ok.ini"));
	if (strstr(out, want) == NULL)
		fail_msg("'%s' not in: %s", want, out);
	assert_null(strstr(out, ":11:"));
	free(out);
}

static void
test_known_keys_no_warnings(void **state)
{
	struct cfg	*cfg;
	char		*out;

	(void)state;
	capture_begin();
	cfg = load_ok(MINIMAL "[pop3]\nenable_last = no\n[log]\ndebug = no\n");
	out = capture_end();
	assert_string_equal(out, "");
	assert_int_equal(cfg->warnings, 0);
	free(out);
	cfg_free(cfg);
}

static void
test_small_err_buffer(void **state)
{
	struct cfg	*cfg = NULL;
	char		 err[16];

	(void)state;
	/* Truncated but terminated; ASan catches any overrun. */
	memset(err, 'x', sizeof(err));
	assert_int_equal(load_text("bad.ini", "[auth]\n", &cfg, err,
	    sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	/* No buffer at all is allowed too. */
	assert_int_equal(load_text("bad.ini", "[auth]\n", &cfg, NULL, 0), -1);
	assert_null(cfg);
	cfg_free(NULL);
}

/* ------------------------------------------------------------------ */
/* the shipped example */

static char *
read_all(const char *path)
{
	FILE	*fp;
	char	*buf;
	long	 len;

	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	return buf;
}

static void
test_shipped_config(void **state)
{
	static const char *const keys[] = {
		"listen", "hostname", "idle_timeout", "login_timeout",
		"write_timeout", "max_connections", "max_bad_commands",
		"user", "group", "allow_root",
		"passwd_file", "apop", "failure_delay", "max_failures",
		"threads", "allow_shrink", "driver", "location", "enable_last",
		"uidl_format", "debug",
		"socket", "mode",
	};
	const char	*src = getenv("EVPOP3D_SOURCE_DIR");
	struct cfg	*cfg = NULL;
	char		 path[PATH_MAX], err[512], *out, *ini, *doc, k[64];
	size_t		 i;

	(void)state;
	if (src == NULL || *src == '\0')
		skip();
	snprintf(path, sizeof(path), "%s/conf/evpop3d.ini", src);
	capture_begin();
	if (cfg_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	out = capture_end();
	assert_string_equal(out, "");	/* no unknown keys */
	free(out);
	assert_int_equal(cfg->warnings, 0);

	assert_int_equal(cfg->n_listen, 2);
	assert_v4(&cfg->listen[0], "127.0.0.1", 1100);
	assert_v6(&cfg->listen[1], "::1", 1100);
	assert_string_equal(cfg->passwd_file, "/etc/evpop3d/passwd");
	assert_string_equal(cfg->mail_location, "/var/mail/%d/%n/Maildir");
	assert_int_equal(cfg->idle_timeout, 600);
	cfg_free(cfg);

	/* Every key is shown in the example and in the reference. */
	ini = read_all(path);
	snprintf(path, sizeof(path), "%s/doc/CONFIG.md", src);
	doc = read_all(path);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(k, sizeof(k), "\n%s = ", keys[i]);
		if (strstr(ini, k) == NULL) {
			snprintf(k, sizeof(k), "; %s = ", keys[i]);
			if (strstr(ini, k) == NULL)
				fail_msg("conf/evpop3d.ini lacks %s", keys[i]);
		}
		snprintf(k, sizeof(k), "| `%s` |", keys[i]);
		if (strstr(doc, k) == NULL)
			fail_msg("doc/CONFIG.md lacks %s", keys[i]);
	}
	free(ini);
	free(doc);
}

/* ------------------------------------------------------------------ */
/* log.c */

static void
test_log_format(void **state)
{
	char	*out;

	(void)state;
	capture_begin();
	log_info("event=listen addr=%s", "127.0.0.1:1100");
	log_warnx("plain %d", 42);
	log_debug("hidden");
	log_init(true);
	assert_true(log_debug_enabled());
	log_debug("shown %s", "now");
	log_init(false);
	assert_false(log_debug_enabled());
	log_debug("hidden again");
	out = capture_end();
	/* Not a terminal: no timestamp, just "<level> <message>". */
	assert_string_equal(out,
	    "info event=listen addr=127.0.0.1:1100\n"
	    "warn plain 42\n"
	    "debug shown now\n");
	free(out);
}

static void
test_log_errno(void **state)
{
	char	*out, want[256];

	(void)state;
	capture_begin();
	errno = ENOENT;
	log_warn("open %s", "/x");
	assert_int_equal(errno, ENOENT);	/* preserved */
	errno = EACCES;
	log_warnx("no errno here");
	assert_int_equal(errno, EACCES);
	log_info("info keeps errno too");
	assert_int_equal(errno, EACCES);
	log_errorx("refused %d", 7);
	assert_int_equal(errno, EACCES);
	errno = ENOENT;
	log_error("read %s", "/y");
	assert_int_equal(errno, ENOENT);
	out = capture_end();
	snprintf(want, sizeof(want), "warn open /x: %s\nwarn no errno here\n"
	    "info info keeps errno too\nerror refused 7\nerror read /y: %s\n",
	    strerror(ENOENT), strerror(ENOENT));
	assert_string_equal(out, want);
	free(out);
}

static void
test_log_sanitize_truncate(void **state)
{
	char	*out, *big, *line, want[128];
	size_t	 len;

	(void)state;
	big = malloc(10000);
	assert_non_null(big);
	memset(big, 'a', 9999);
	big[9999] = '\0';

	capture_begin();
	log_info("user=%s", "evil\r\ninfo forged\x1b[2J");
	errno = EPERM;
	log_warn("%s", big);
	out = capture_end();

	/* Control characters cannot forge a second line. */
	assert_non_null(strstr(out,
	    "info user=evil\\x0d\\x0ainfo forged\\x1b[2J\n"));
	/* The long line is cut to 4 KiB, marked, and keeps its errno. */
	free(big);
	line = strchr(out, '\n') + 1;
	len = strlen(line);
	assert_true(len <= 4096);
	assert_true(len > 4000);
	assert_ptr_equal(strchr(line, '\n'), line + len - 1);
	snprintf(want, sizeof(want), "...: %s\n", strerror(EPERM));
	assert_string_equal(line + len - strlen(want), want);
	assert_int_equal(strncmp(line, "warn aaaa", 9), 0);
	free(out);
}

/* Every byte outside printable ASCII reaches the log as \xNN. */
static void
test_log_bytes(void **state)
{
	char	*out;
	size_t	 i;

	(void)state;
	capture_begin();
	log_info("a=%s b=%s", "tab\there", "caf\xc3\xa9 \x85 \x7f\xff");
	out = capture_end();
	assert_string_equal(out,
	    "info a=tab\\x09here b=caf\\xc3\\xa9 \\x85 \\x7f\\xff\n");
	for (i = 0; out[i] != '\0'; i++)
		assert_true(out[i] == '\n' ||
		    (out[i] >= 0x20 && out[i] < 0x7f));
	free(out);
}

/*
 * log_quote(): a client's value can never end early or pass for another
 * key, whatever its bytes; cut values say so inside the quotes.
 */
static void
test_log_quote(void **state)
{
	char	 q[LOG_QUOTED_SIZE(300)], small[12], *out;
	char	 big[301];
	size_t	 i;

	(void)state;
	assert_string_equal(log_quote(q, sizeof(q), "alice@example.org"),
	    "\"alice@example.org\"");
	assert_string_equal(log_quote(q, sizeof(q), NULL), "\"\"");
	assert_string_equal(log_quote(q, sizeof(q), "rip=10.9.8.7"),
	    "\"rip=10.9.8.7\"");
	assert_string_equal(log_quote(q, sizeof(q), "x\" rip=10.9.8.7"),
	    "\"x\\\" rip=10.9.8.7\"");
	assert_string_equal(log_quote(q, sizeof(q), "a\\\"b"),
	    "\"a\\\\\\\"b\"");
	assert_string_equal(log_quote(q, sizeof(q), "\r\n\x80\xff"),
	    "\"\\x0d\\x0a\\x80\\xff\"");

	/* The worst case fits in LOG_QUOTED_SIZE(n). */
	memset(big, 0x80, 300);
	big[300] = '\0';
	log_quote(q, sizeof(q), big);
	assert_int_equal(strlen(q), 4 * 300 + 2);
	/* Cut: "..." inside the quotes, never half an escape. */
	assert_string_equal(log_quote(small, sizeof(small), "abcdefghijkl"),
	    "\"abcdef...\"");
	assert_string_equal(log_quote(small, sizeof(small), "\x80\x81\x82"),
	    "\"\\x80...\"");
	assert_string_equal(log_quote(small, sizeof(small), "abcdefghi"),
	    "\"abcdefghi\"");
	for (i = 6; i < sizeof(small); i++) {
		log_quote(small, i, "\"\"\"\"\"\"\"\"\"\"");
		assert_true(strlen(small) < i);
		assert_int_equal(small[0], '"');
		assert_int_equal(small[strlen(small) - 1], '"');
	}

	/* In a line: the real key comes first, the forged one is quoted. */
	capture_begin();
	log_info("event=auth-failed rip=%s user=%s", "127.0.0.1:5",
	    log_quote(q, sizeof(q), "rip=10.9.8.7"));
	out = capture_end();
	assert_string_equal(out, "info event=auth-failed rip=127.0.0.1:5 "
	    "user=\"rip=10.9.8.7\"\n");
	free(out);
}

static void
test_log_fatal(void **state)
{
	char	*out;
	pid_t	 pid;
	int	 status;

	(void)state;
	capture_begin();
	if ((pid = fork()) == 0) {
		fatalx("cannot continue: %s", "reason");
		_exit(99);	/* not reached */
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0) == pid &&
	    WIFEXITED(status) && WEXITSTATUS(status) == 1, 1);
	if ((pid = fork()) == 0) {
		errno = ENOMEM;
		fatal("alloc");
		_exit(99);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0) == pid &&
	    WIFEXITED(status) && WEXITSTATUS(status) == 1, 1);
	out = capture_end();
	assert_non_null(strstr(out, "error cannot continue: reason\n"));
	assert_non_null(strstr(out, "error alloc: "));
	assert_non_null(strstr(out, strerror(ENOMEM)));
	free(out);
}

#define LOG_THREADS	4
#define LOG_LINES	300

static void *
log_thread(void *arg)
{
	char	 fill[1500];
	int	 id = (int)(intptr_t)arg, i;

	memset(fill, 'a' + id, sizeof(fill) - 1);
	fill[sizeof(fill) - 1] = '\0';
	for (i = 0; i < LOG_LINES; i++)
		log_info("t=%d i=%d %s end", id, i, fill);
	return NULL;
}

/* Lines from several threads never interleave. */
static void
test_log_threads(void **state)
{
	pthread_t	 t[LOG_THREADS];
	char		*out, *line, *nl, fill[1500];
	int		 i, id, n, count = 0, off;

	(void)state;
	capture_begin();
	for (i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_thread,
		    (void *)(intptr_t)i), 0);
	for (i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	out = capture_end();

	for (line = out; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		off = 0;
		if (sscanf(line, "info t=%d i=%d %n", &id, &n, &off) != 2 ||
		    off == 0)
			fail_msg("mangled line: %.80s", line);
		assert_in_range(id, 0, LOG_THREADS - 1);
		memset(fill, 'a' + id, sizeof(fill) - 1);
		fill[sizeof(fill) - 1] = '\0';
		assert_int_equal(strncmp(line + off, fill, sizeof(fill) - 1),
		    0);
		assert_string_equal(line + off + sizeof(fill) - 1, " end");
		count++;
	}
	assert_int_equal(*line, '\0');
	assert_int_equal(count, LOG_THREADS * LOG_LINES);
	free(out);
}

/* On a terminal each line starts with an ISO-8601 local timestamp. */
static void
test_log_tty_timestamp(void **state)
{
	struct pollfd	 pfd;
	regex_t		 re;
	char		 buf[512], name[128];
	ssize_t		 n;
	int		 master, slave;

	(void)state;
	if ((master = posix_openpt(O_RDWR | O_NOCTTY)) == -1 ||
	    grantpt(master) == -1 || unlockpt(master) == -1 ||
	    ptsname_r(master, name, sizeof(name)) != 0 ||
	    (slave = open(name, O_RDWR | O_NOCTTY)) == -1)
		skip();	/* no pseudo-terminals here */

	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	assert_int_equal(dup2(slave, STDERR_FILENO), STDERR_FILENO);
	log_init(false);	/* log_init() notes whether stderr is a tty */
	log_info("on a tty");
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;

	pfd.fd = master;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	n = read(master, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	close(slave);
	close(master);

	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T"
	    "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} "
	    "info on a tty\r?\n$", REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&re, buf, 0, NULL, 0) != 0)
		fail_msg("no timestamp: '%s'", buf);
	regfree(&re);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f)	cmocka_unit_test_teardown(f, test_teardown)
		T(test_minimal_defaults),
		T(test_all_keys),
		T(test_case_insensitive_names),
		T(test_missing_file),
		T(test_not_a_file),
		T(test_unreadable_file),
		T(test_syntax_error),
		T(test_syntax_error_twice),
		T(test_line_too_long),
		T(test_empty_file),
		T(test_required_missing),
		T(test_auth_driver),
		T(test_empty_strings),
		T(test_bools),
		T(test_int_bounds),
		T(test_int_idle_rfc),
		T(test_int_junk),
		T(test_listen_parse),
		T(test_listen_list),
		T(test_driver),
		T(test_uidl_format),
		T(test_hostname),
		T(test_privileges),
		T(test_location_template),
		T(test_relative_paths),
		T(test_relative_template_escape),
		T(test_unknown_keys_warn),
		T(test_unknown_key_hints),
		T(test_duplicate_keys_warn),
		T(test_known_keys_no_warnings),
		T(test_small_err_buffer),
		T(test_shipped_config),
		T(test_log_format),
		T(test_log_errno),
		T(test_log_sanitize_truncate),
		T(test_log_bytes),
		T(test_log_quote),
		T(test_log_fatal),
		T(test_log_threads),
		T(test_log_tty_timestamp),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
