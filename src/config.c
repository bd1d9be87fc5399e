/*
 * config: the INI file turned into an immutable struct cfg.
 *
 * Every key is one row of cfg_keys[] below: where it lives in the file,
 * its type, where it goes in struct cfg, its default and its bounds. One
 * generic loop walks the table; the only per-key code is the handful of
 * check hooks for values with a shape of their own (driver name, host
 * name, mail location template). Add a key by adding a row, a field in
 * struct cfg, a line in conf/evpop3d.ini and a line in doc/CONFIG.md.
 *
 * cfg_load() is meant for the main thread (start-up and SIGHUP): the
 * iniparser error hook it installs is process-wide.
 */

#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <iniparser.h>

#include "config.h"
#include "lib/log.h"
#include "store/registry.h"
#include "store/store.h"
#include "store/uidl_format.h"

enum cfg_type {
	CFG_INT,	/* int; plain decimal within [min, max] */
	CFG_BOOL,	/* bool; yes/no true/false on/off 1/0 */
	CFG_STRING,	/* char *; non-empty */
	CFG_PATH,	/* char *; made absolute against the config dir */
	CFG_LISTEN,	/* struct cfg_listen *, count at aux_offset */
	CFG_NETS,	/* struct cfg_net *, count at aux_offset; may be "" */
};

#define CFG_F_REQUIRED	0x01	/* no default: the file must set it */
#define CFG_F_TEMPLATE	0x02	/* PATH: %-template, "%h..." is absolute */
#define CFG_F_SYSHOST	0x04	/* default: gethostname() */
#define CFG_F_EMPTY	0x08	/* STRING: "" is a value */
#define CFG_F_FILEDB	0x10	/* required with [auth] driver = passwd-file */

struct cfg_key {
	const char	*section;
	const char	*key;
	enum cfg_type	 type;
	size_t		 offset;	/* of the field in struct cfg */
	const char	*dflt;		/* parsed like a value from the file */
	long		 min, max;	/* CFG_INT only */
	int		 flags;		/* CFG_F_* */

	/* Set with designated initializers: */
	const char	*doc;		/* one line, for readers */
	const char	*min_note;	/* why min is min, e.g. an RFC */
	size_t		 aux_offset;	/* CFG_LISTEN: the size_t count */
	/* Value check before conversion; 0 or -1 with a reason in why. */
	int		(*check)(const char *, char *, size_t);
};

struct cfg_ctx;
static int	cfg_set_nets(struct cfg_ctx *, const struct cfg_key *,
		    const char *, struct cfg *);
static int	cfg_check_driver(const char *, char *, size_t);
static int	cfg_check_auth_driver(const char *, char *, size_t);
static int	cfg_check_hostname(const char *, char *, size_t);
static int	cfg_check_template(const char *, char *, size_t);
static int	cfg_check_uidl_format(const char *, char *, size_t);
static int	cfg_check_tls_protocol(const char *, char *, size_t);
static int	cfg_check_plaintext(const char *, char *, size_t);
static int	cfg_check_user(const char *, char *, size_t);
static int	cfg_check_group(const char *, char *, size_t);
static int	cfg_check_control_socket(const char *, char *, size_t);
static int	cfg_check_mode(const char *, char *, size_t);
static int	cfg_check_workers(const char *, char *, size_t);
static int	cfg_check_log_target(const char *, char *, size_t);
static int	cfg_check_log_facility(const char *, char *, size_t);
static const struct cfg_key *cfg_find(const char *, size_t, const char *);
static int	cfg_check_metrics_listen(const char *, char *, size_t);

#define OFF(f)	offsetof(struct cfg, f)

/* Dovecot's default password_query, with the userdb fields (prefetch). */
#define CFG_PASSWORD_QUERY	"SELECT userid AS user, password, home, " \
	"uid, gid FROM users WHERE userid = '%u'"

static const struct cfg_key cfg_keys[] = {
	{ "server", "listen", CFG_LISTEN, OFF(listen),
	    "127.0.0.1:110, [::1]:110", 0, 0, 0,
	    .doc = "literal addresses to listen on, ADDR:PORT, comma-separated",
	    .aux_offset = OFF(n_listen) },
	{ "server", "hostname", CFG_STRING, OFF(hostname), NULL, 0, 0,
	    CFG_F_SYSHOST,
	    .doc = "name used in the greeting and APOP timestamp",
	    .check = cfg_check_hostname },
	{ "server", "idle_timeout", CFG_INT, OFF(idle_timeout), "600",
	    600, 86400, 0,
	    .doc = "seconds without a command before a client is dropped",
	    .min_note = "RFC 1939 section 3" },
	{ "server", "login_timeout", CFG_INT, OFF(login_timeout), "60",
	    1, 3600, 0,
	    .doc = "seconds from connect to a completed login" },
	{ "server", "write_timeout", CFG_INT, OFF(write_timeout), "300",
	    5, 86400, 0,
	    .doc = "seconds a client may stop reading our output" },
	{ "server", "max_connections", CFG_INT, OFF(max_connections), "10000",
	    1, 1000000, 0,
	    .doc = "concurrent client connections; more are refused" },
	{ "server", "max_bad_commands", CFG_INT, OFF(max_bad_commands), "20",
	    1, 1000, 0,
	    .doc = "consecutive bad commands after login before disconnect" },
	{ "server", "shutdown_timeout", CFG_INT, OFF(shutdown_timeout), "30",
	    0, 3600, 0,
	    .doc = "seconds a stop waits for replies and UPDATEs in progress" },
	/* PROXY protocol (net/proxy.h; README, Behind HAProxy). */
	{ "server", "proxy_protocol_from", CFG_NETS, OFF(proxy_from),
	    "", 0, 0, CFG_F_EMPTY,
	    .doc = "ADDRESS[/PREFIX] list of load balancers whose connections "
		"must begin with a PROXY protocol v1 or v2 header naming the "
		"client; \"\" (the default): none",
	    .aux_offset = OFF(n_proxy_from) },
	{ "server", "proxy_protocol_timeout", CFG_INT, OFF(proxy_timeout),
	    "5", 1, 300, 0,
	    .doc = "seconds from connect to a complete PROXY header" },

	/* Privileges (lib/privdrop.h): the names are looked up at load. */
	{ "server", "user", CFG_STRING, OFF(user), "", 0, 0, CFG_F_EMPTY,
	    .doc = "user to serve as after start-up as root (e.g. vmail)",
	    .check = cfg_check_user },
	{ "server", "group", CFG_STRING, OFF(group), "", 0, 0, CFG_F_EMPTY,
	    .doc = "group to serve as; empty: the user's primary group",
	    .check = cfg_check_group },
	{ "server", "allow_root", CFG_BOOL, OFF(allow_root), "no", 0, 0, 0,
	    .doc = "serve clients as root when no user is set" },
	/* Processes (net/supervise.h): start-only. */
	{ "server", "workers", CFG_STRING, OFF(workers_text), "1", 0, 0, 0,
	    .doc = "serving processes, 1 to " "256 or auto (one per CPU "
		"this process may run on); more than 1: a supervisor forks "
		"them",
	    .check = cfg_check_workers },

	{ "auth", "driver", CFG_STRING, OFF(auth_driver), "passwd-file",
	    0, 0, 0,
	    .doc = "the user database: passwd-file or pgsql",
	    .check = cfg_check_auth_driver },
	{ "auth", "passwd_file", CFG_PATH, OFF(passwd_file), NULL, 0, 0,
	    CFG_F_FILEDB,
	    .doc = "the password file (required with driver = passwd-file)" },
	/* [auth] driver = pgsql (README, Users in PostgreSQL) */
	{ "auth", "pgsql_connect", CFG_STRING, OFF(pgsql_connect), NULL,
	    0, 0, 0,
	    .doc = "libpq conninfo, e.g. \"host=/run/postgresql dbname=mail "
		"user=evpop3d\" (required with driver = pgsql)" },
	{ "auth", "password_query", CFG_STRING, OFF(password_query),
	    CFG_PASSWORD_QUERY, 0, 0, 0,
	    .doc = "SQL returning the columns password and optionally user, "
		"home, uid, gid, mail: %u user, %n local part, %d domain" },
	{ "auth", "user_query", CFG_STRING, OFF(user_query), "", 0, 0,
	    CFG_F_EMPTY,
	    .doc = "SQL returning home, uid, gid, mail for a user the "
		"password query found; \"\" for none" },
	{ "auth", "pgsql_connections", CFG_INT, OFF(pgsql_connections), "4",
	    1, 64, 0,
	    .doc = "connections to PostgreSQL, opened as logins need them" },
	{ "auth", "pgsql_timeout", CFG_INT, OFF(pgsql_timeout), "5", 1, 300, 0,
	    .doc = "seconds for a connect or a query before the connection "
		"is dropped and the login answers [SYS/TEMP]" },
	{ "auth", "cache_ttl", CFG_INT, OFF(cache_ttl), "60", 0, 86400, 0,
	    .doc = "seconds a user found in the database is remembered "
		"(driver = pgsql); 0: no cache" },
	{ "auth", "cache_size", CFG_INT, OFF(cache_size), "10000", 1,
	    10000000, 0,
	    .doc = "users the cache holds; the least recently used go first" },
	{ "auth", "apop", CFG_BOOL, OFF(apop), "no", 0, 0, 0,
	    .doc = "offer APOP (RFC 1939 section 7)" },
	{ "auth", "failure_delay", CFG_INT, OFF(failure_delay_ms), "2000",
	    0, 60000, 0,
	    .doc = "milliseconds before answering a failed login" },
	{ "auth", "max_failures", CFG_INT, OFF(max_failures), "3",
	    1, 100, 0,
	    .doc = "failed logins per connection before disconnect" },
	{ "auth", "threads", CFG_INT, OFF(threads), "2", 1, 64, 0,
	    .doc = "worker threads for password hashing and maildrop scans" },
	{ "auth", "quick_jobs", CFG_BOOL, OFF(quick_jobs), "yes", 0, 0, 0,
	    .doc = "the event loop does a login or a lock release itself, "
		"without a worker thread, when it is cheap: a {PLAIN} or "
		"digest password and a small maildrop on a local disk whose "
		"last open listed few messages" },
	{ "auth", "quick_limit", CFG_INT, OFF(quick_limit_ms), "2", 1, 1000,
	    0,
	    .doc = "milliseconds of such work the loop does per turn; one "
		"job that takes longer (blocked or busy, not preempted) sends "
		"it all to the threads for a cool-off of 0.1 s, doubling up to "
		"60 s while slow ones keep coming" },
	{ "auth", "allow_shrink", CFG_BOOL, OFF(allow_shrink), "no", 0, 0, 0,
	    .doc = "load a passwd-file with no users, or a reload that loses "
		"more than half of them" },
	/* Brute-force defence and per-source limits (README, Security). */
	{ "auth", "max_connections_per_ip", CFG_INT,
	    OFF(max_connections_per_ip), "50", 0, 1000000, 0,
	    .doc = "connections from one address (IPv6: one /64); 0: no "
		"limit" },
	{ "auth", "max_unauth_per_ip", CFG_INT, OFF(max_unauth_per_ip), "10",
	    0, 1000000, 0,
	    .doc = "connections from one address not logged in yet; 0: no "
		"limit" },
	{ "auth", "max_logins_per_user", CFG_INT, OFF(max_logins_per_user),
	    "10", 0, 1000000, 0,
	    .doc = "logins (and login attempts) of one user from one address "
		"at once; 0: no limit" },
	{ "auth", "penalty_max", CFG_INT, OFF(penalty_max_ms), "15000",
	    0, 300000, 0,
	    .doc = "milliseconds, the cap of the per-address failure delay "
		"that doubles from failure_delay; 0: no penalty" },
	{ "auth", "penalty_expire", CFG_INT, OFF(penalty_expire), "3600",
	    1, 86400, 0,
	    .doc = "seconds without a failure before an address's failures "
		"are forgotten" },
	{ "auth", "penalty_table_size", CFG_INT, OFF(penalty_table_size),
	    "20000", 1, 10000000, 0,
	    .doc = "addresses whose failures are remembered; the oldest are "
		"forgotten first" },
	{ "auth", "limits_exempt", CFG_NETS, OFF(limits_exempt),
	    "127.0.0.1, ::1", 0, 0, CFG_F_EMPTY,
	    .doc = "ADDRESS[/PREFIX] list of clients the limits and the "
		"penalty leave alone (a local proxy or webmail); \"\" for none",
	    .aux_offset = OFF(n_limits_exempt) },

	{ "mail", "driver", CFG_STRING, OFF(mail_driver), "maildir", 0, 0, 0,
	    .doc = "mail store driver",
	    .check = cfg_check_driver },
	{ "mail", "location", CFG_PATH, OFF(mail_location), NULL, 0, 0,
	    CFG_F_REQUIRED | CFG_F_TEMPLATE,
	    .doc = "maildrop template: %u user, %n local part, %d domain, "
		"%h home",
	    .check = cfg_check_template },
	{ "mail", "listing_cache", CFG_INT, OFF(listing_cache_kib), "16384",
	    0, 4194304, 0,
	    .doc = "KiB of Maildir listings kept while new/ and cur/ are "
		"unchanged (local file systems only); 0: list at every login" },

	{ "pop3", "enable_last", CFG_BOOL, OFF(enable_last), "yes", 0, 0, 0,
	    .doc = "offer the RFC 1460 LAST command" },
	{ "pop3", "uidl_format", CFG_STRING, OFF(uidl_format), "", 0, 0,
	    CFG_F_EMPTY,
	    .doc = "UIDL template (Dovecot pop3_uidl_format): %f %u %v %m",
	    .check = cfg_check_uidl_format },

	/* TLS (net/tls.c) and the plaintext policy. */
	{ "server", "listen_tls", CFG_LISTEN, OFF(listen_tls), NULL, 0, 0, 0,
	    .doc = "addresses for implicit TLS (POP3S, RFC 8314), like listen",
	    .aux_offset = OFF(n_listen_tls) },
	{ "tls", "cert", CFG_PATH, OFF(tls_cert), NULL, 0, 0, 0,
	    .doc = "PEM certificate, then its chain (fullchain.pem)" },
	{ "tls", "key", CFG_PATH, OFF(tls_key), NULL, 0, 0, 0,
	    .doc = "PEM private key of cert (privkey.pem)" },
	{ "tls", "dh", CFG_PATH, OFF(tls_dh), NULL, 0, 0, 0,
	    .doc = "PEM DH parameters for DHE (default: OpenSSL's built-in)" },
	{ "tls", "ciphers", CFG_STRING, OFF(tls_ciphers), NULL, 0, 0, 0,
	    .doc = "TLSv1.2 cipher list (OpenSSL syntax)" },
	{ "tls", "ciphersuites", CFG_STRING, OFF(tls_ciphersuites), NULL, 0, 0,
	    0, .doc = "TLSv1.3 cipher suites (OpenSSL syntax)" },
	{ "tls", "min_protocol", CFG_STRING, OFF(tls_min_protocol), "TLSv1.2",
	    0, 0, 0, .doc = "oldest TLS version accepted: TLSv1.2 or TLSv1.3",
	    .check = cfg_check_tls_protocol },
	{ "auth", "plaintext", CFG_STRING, OFF(plaintext_text), "localhost",
	    0, 0, 0,
	    .doc = "clear-text logins before TLS: allowed, localhost, never",
	    .check = cfg_check_plaintext },

	{ "log", "debug", CFG_BOOL, OFF(log_debug), "no", 0, 0, 0,
	    .doc = "log debug lines" },

	/* The admin socket (net/control.h, `evpop3d who|kick|stats|reload`). */
	{ "control", "socket", CFG_STRING, OFF(control_socket),
	    "/run/evpop3d/control", 0, 0, CFG_F_EMPTY,
	    .doc = "absolute path of the admin socket; \"\" for none",
	    .check = cfg_check_control_socket },
	{ "control", "mode", CFG_STRING, OFF(control_mode_text), "0600", 0, 0,
	    0, .doc = "octal permissions of the admin socket (who may use it)",
	    .check = cfg_check_mode },
	{ "log", "target", CFG_STRING, OFF(log_target_text), "auto", 0, 0, 0,
	    .doc = "stderr, syslog, journald, or auto (journald when stderr "
		"is the journal, else stderr)",
	    .check = cfg_check_log_target },
	{ "log", "syslog_facility", CFG_STRING, OFF(log_facility_text), "mail",
	    0, 0, 0,
	    .doc = "facility for target = syslog: mail, daemon, user, auth, "
		"authpriv, local0..local7",
	    .check = cfg_check_log_facility },
	{ "log", "logout_format", CFG_STRING, OFF(log_logout_text),
	    LOGFMT_LOGOUT_DEFAULT, 0, 0, CFG_F_EMPTY,
	    .doc = "the disconnect line after \"event=disconnect rip=ADDR\" "
		"(Dovecot pop3_logout_format variables)" },
	{ "metrics", "listen", CFG_STRING, OFF(metrics_listen), "", 0, 0,
	    CFG_F_EMPTY,
	    .doc = "ADDR:PORT of the Prometheus endpoint (GET /metrics); "
		"empty: none",
	    .check = cfg_check_metrics_listen },
};

/* [tls.NAME]: iniparser's (lower-case) name of an SNI section. */
#define CFG_SNI_PREFIX	"tls."

#define CFG_NKEYS	(sizeof(cfg_keys) / sizeof(cfg_keys[0]))
#define CFG_FIELD(cfg, off, type) \
	((type *)(void *)((char *)(cfg) + (off)))

/* State of one cfg_load() call. */
struct cfg_ctx {
	const char	*file;		/* as given, for messages */
	char		*dir;		/* absolute directory of file */
	char		*err;
	size_t		 errlen;
	int		 warnings;	/* log_warnx() lines so far */
};

/*
 * iniparser reports syntax errors through a process-wide hook; while we
 * load, it lands here so we can turn it into our own one-line error.
 */
static struct {
	const char	*file;
	char		 first[1024];	/* first message, rewritten */
	int		 count;
} cfg_ini_cap;

static int	cfg_ini_error(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
static int	cfg_error(struct cfg_ctx *, const struct cfg_key *,
		    const char *, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

/*
 * Write "FILE: [section] key: WHAT, got 'VALUE'" to the caller's buffer
 * (without the ", got" part when value is NULL). Always returns -1.
 */
static int
cfg_error(struct cfg_ctx *ctx, const struct cfg_key *k, const char *value,
    const char *fmt, ...)
{
	char	 what[512];
	va_list	 ap;

	if (ctx->err == NULL || ctx->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (value != NULL)
		snprintf(ctx->err, ctx->errlen, "%s: [%s] %s: %s, got '%s'",
		    ctx->file, k->section, k->key, what, value);
	else
		snprintf(ctx->err, ctx->errlen, "%s: [%s] %s: %s",
		    ctx->file, k->section, k->key, what);
	return -1;
}

/* Like cfg_error() for the file as a whole. */
static int
cfg_file_error(struct cfg_ctx *ctx, const char *what, const char *detail)
{
	if (ctx->err != NULL && ctx->errlen > 0)
		snprintf(ctx->err, ctx->errlen, "%s: %s: %s", ctx->file, what,
		    detail);
	return -1;
}

/*
 * Rewrite an iniparser message such as
 *   "iniparser: syntax error in FILE (3):\n-> garbage\n"
 * into "syntax error at line 3: garbage". Messages of another shape keep
 * their text, minus the "iniparser: " prefix and the newlines.
 */
static void
cfg_ini_rewrite(const char *msg, const char *file, char *out, size_t outlen)
{
	char		 flat[1024], needle[PATH_MAX + 8];
	const char	*p, *q, *rparen;
	size_t		 i, j;
	int		 line;

	/* Flatten: "\n-> " becomes ": ", other newlines go. */
	for (i = j = 0; msg[i] != '\0' && j < sizeof(flat) - 2; i++) {
		if (strncmp(msg + i, ":\n-> ", 5) == 0) {
			flat[j++] = ':';
			flat[j++] = ' ';
			i += 4;
		} else if (msg[i] != '\n')
			flat[j++] = msg[i];
	}
	flat[j] = '\0';
	p = flat;
	if (strncmp(p, "iniparser: ", 11) == 0)
		p += 11;

	/* " in FILE (N)" becomes " at line N". */
	snprintf(needle, sizeof(needle), " in %s (", file);
	if ((q = strstr(p, needle)) != NULL &&
	    sscanf(q + strlen(needle), "%d", &line) == 1 &&
	    (rparen = strchr(q + strlen(needle), ')')) != NULL)
		snprintf(out, outlen, "%.*s at line %d%s", (int)(q - p), p,
		    line, rparen + 1);
	else
		snprintf(out, outlen, "%s", p);
}

static int
cfg_ini_error(const char *fmt, ...)
{
	char	 msg[1024], line[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_ini_rewrite(msg, cfg_ini_cap.file, line, sizeof(line));
	if (cfg_ini_cap.count++ == 0)
		snprintf(cfg_ini_cap.first, sizeof(cfg_ini_cap.first), "%s",
		    line);
	else
		log_warnx("%s: %s", cfg_ini_cap.file, line);
	return 0;
}

/*
 * Clean a path in place, lexically: collapse "//", drop "." components
 * and a trailing '/'. ".." is kept, since resolving it without the file
 * system would be wrong across symbolic links.
 */
static void
cfg_path_clean(char *p)
{
	char	*r = p, *w = p;
	size_t	 n;

	if (*r == '/')
		*w++ = *r++;
	while (*r != '\0') {
		while (*r == '/')
			r++;
		if (*r == '\0')
			break;
		n = strcspn(r, "/");
		if (n == 1 && r[0] == '.') {
			r++;
			continue;
		}
		if (w > p && w[-1] != '/')
			*w++ = '/';
		memmove(w, r, n);
		w += n;
		r += n;
	}
	if (w == p)
		*w++ = '.';
	*w = '\0';
}

/*
 * The absolute, cleaned directory holding file. Returns a new string or
 * NULL with errno set.
 */
static char *
cfg_file_dir(const char *file)
{
	char	 cwd[PATH_MAX], *abs, *slash;

	if (file[0] == '/') {
		if ((abs = strdup(file)) == NULL)
			return NULL;
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return NULL;
		if (asprintf(&abs, "%s/%s", cwd, file) == -1)
			return NULL;
	}
	cfg_path_clean(abs);
	slash = strrchr(abs, '/');	/* abs starts with '/' */
	if (slash == abs)
		slash[1] = '\0';
	else
		*slash = '\0';
	return abs;
}

/* Trim ASCII white space in place; returns the start of the text. */
static char *
cfg_trim(char *s)
{
	char	*e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Plain decimal, optional '-', optional surrounding spaces. Returns 0 with
 * the value in *v_r (clamped to LONG_MIN/LONG_MAX on overflow, which the
 * caller's range check then rejects), -1 if s is not a number.
 */
static int
cfg_parse_int(const char *s, long *v_r)
{
	const char	*p = s, *digits;
	char		*end;

	while (isspace((unsigned char)*p))
		p++;
	digits = (*p == '-') ? p + 1 : p;
	if (!isdigit((unsigned char)*digits))
		return -1;
	errno = 0;
	*v_r = strtol(p, &end, 10);
	/* ERANGE already left LONG_MIN or LONG_MAX in *v_r. */
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -1;
	return 0;
}

static int
cfg_parse_bool(const char *s, bool *v_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	char		 buf[16];
	const char	*t;
	size_t		 i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	memcpy(buf, s, strlen(s) + 1);
	t = cfg_trim(buf);
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(t, yes[i]) == 0) {
			*v_r = true;
			return 0;
		}
		if (strcasecmp(t, no[i]) == 0) {
			*v_r = false;
			return 0;
		}
	}
	return -1;
}

static int
cfg_check_driver(const char *v, char *why, size_t whylen)
{
	char		 known[128];
	const char	*name;
	size_t		 i, len = 0;

	if (store_driver(v) != NULL)
		return 0;
	known[0] = '\0';
	for (i = 0; (name = store_driver_name(i)) != NULL; i++)
		if (len < sizeof(known))
			len += (size_t)snprintf(known + len,
			    sizeof(known) - len, "%s%s", i > 0 ? ", " : "",
			    name);
	snprintf(why, whylen, "unknown driver (known: %s)", known);
	return -1;
}

static int
cfg_check_auth_driver(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "passwd-file") == 0 || strcmp(v, "pgsql") == 0)
		return 0;
	snprintf(why, whylen, "must be passwd-file or pgsql");
	return -1;
}

static int
cfg_check_uidl_format(const char *v, char *why, size_t whylen)
{
	return *v == '\0' ? 0 : uidl_format_check(v, why, whylen);
}

static int
cfg_check_log_target(const char *v, char *why, size_t whylen)
{
	enum log_target t;

	if (log_target_parse(v, &t) == 0)
		return 0;
	snprintf(why, whylen, "must be stderr, syslog, journald or auto");
	return -1;
}

static int
cfg_check_log_facility(const char *v, char *why, size_t whylen)
{
	int f;

	if (log_facility_parse(v, &f) == 0)
		return 0;
	snprintf(why, whylen, "must be mail, daemon, user, auth, authpriv or "
	    "local0..local7");
	return -1;
}

/*
 * [auth] driver: what each needs. The pgsql keys' values (conninfo,
 * templates) are checked by auth_pgsql_check() (evpop3d -t, start,
 * reload): config does not link the auth part.
 */
static int
cfg_auth_finish(struct cfg_ctx *ctx, struct cfg *cfg)
{
	cfg->auth_pgsql = strcmp(cfg->auth_driver, "pgsql") == 0;
	if (cfg->auth_pgsql && cfg->pgsql_connect == NULL)
		return cfg_error(ctx, cfg_find("auth", 4, "pgsql_connect"),
		    NULL, "required with driver = pgsql");
	return 0;
}

/* [log]: the checked texts as values, the logout format compiled. */
static int
cfg_log_finish(struct cfg_ctx *ctx, struct cfg *cfg)
{
	char why[256];

	(void)log_target_parse(cfg->log_target_text, &cfg->log_target);
	(void)log_facility_parse(cfg->log_facility_text, &cfg->log_facility);
	if (logfmt_compile(cfg->log_logout_text, &cfg->log_logout, why,
	    sizeof(why)) == -1)
		return cfg_error(ctx, cfg_find("log", 3, "logout_format"),
		    cfg->log_logout_text, "%s", why);
	return 0;
}

void
cfg_log_params(const struct cfg *cfg, struct log_params *p_r)
{
	*p_r = (struct log_params){ .debug = cfg->log_debug,
	    .target = cfg->log_target, .facility = cfg->log_facility };
}

/* RFC 8996, BCP 195: nothing older than TLS 1.2. */
static int
cfg_check_tls_protocol(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "TLSv1.2") == 0 || strcmp(v, "TLSv1.3") == 0)
		return 0;
	snprintf(why, whylen, "must be TLSv1.2 or TLSv1.3");
	return -1;
}

static int
cfg_check_plaintext(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "allowed") == 0 || strcmp(v, "localhost") == 0 ||
	    strcmp(v, "never") == 0)
		return 0;
	snprintf(why, whylen, "must be allowed, localhost or never");
	return -1;
}

/* [control] socket: absolute, and short enough for sun_path. */
static int
cfg_check_control_socket(const char *v, char *why, size_t whylen)
{
	if (*v == '\0')
		return 0;
	if (*v != '/') {
		snprintf(why, whylen, "must be an absolute path (or \"\")");
		return -1;
	}
	if (strlen(v) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		snprintf(why, whylen, "longer than a socket path may be "
		    "(%zu bytes)", sizeof(((struct sockaddr_un *)NULL)->sun_path)
		    - 1);
		return -1;
	}
	return 0;
}

/* [control] mode: octal permission bits, 0000 to 0777. */
static int
cfg_check_mode(const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);

	if (n < 1 || n > 4 || strspn(v, "01234567") != n ||
	    (n == 4 && v[0] != '0')) {
		snprintf(why, whylen, "must be octal permissions such as 0600 "
		    "or 0660");
		return -1;
	}
	return 0;
}

/* [server] workers: 1 to CFG_WORKERS_MAX, or auto. */
static int
cfg_check_workers(const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);

	if (strcmp(v, "auto") == 0 || (n >= 1 && n <= 3 &&
	    strspn(v, "0123456789") == n && v[0] != '0' &&
	    atoi(v) <= CFG_WORKERS_MAX))
		return 0;
	snprintf(why, whylen, "must be a number of processes from 1 to %d, "
	    "or auto", CFG_WORKERS_MAX);
	return -1;
}

/*
 * The CPUs this process may run on (sched_getaffinity(2)), at most
 * CFG_WORKERS_MAX; 1 if unknown.
 */
static int
cfg_cpus(void)
{
	cpu_set_t	set;
	int		n;

	if (sched_getaffinity(0, sizeof(set), &set) == -1 ||
	    (n = CPU_COUNT(&set)) < 1)
		return 1;
	return n > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : n;
}

/*
 * [server] user and group: names in the system's databases, so that a
 * typo stops `evpop3d -t` rather than the start (privdrop_prepare()
 * looks them up again when it drops).
 */
static int
cfg_check_user(const char *v, char *why, size_t whylen)
{
	if (*v == '\0' || getpwnam(v) != NULL)
		return 0;
	snprintf(why, whylen, "unknown user (not in the system's user "
	    "database)");
	return -1;
}

static int
cfg_check_group(const char *v, char *why, size_t whylen)
{
	if (*v == '\0' || getgrnam(v) != NULL)
		return 0;
	snprintf(why, whylen, "unknown group (not in the system's group "
	    "database)");
	return -1;
}

/* [metrics] listen: empty (no endpoint), or one address as listen takes. */
static int
cfg_check_metrics_listen(const char *v, char *why, size_t whylen)
{
	struct cfg_listen l;

	if (*v == '\0')
		return 0;
	return cfg_parse_listen(v, &l, why, whylen);
}

/*
 * The host name ends up in the greeting and inside the APOP msg-id
 * "<...@host>" (RFC 1939 section 7), so keep it to host name characters.
 */
static int
cfg_check_hostname(const char *v, char *why, size_t whylen)
{
	const char	*p;

	if (strlen(v) > 255) {
		snprintf(why, whylen, "must be at most 255 characters");
		return -1;
	}
	for (p = v; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && strchr("-._", *p) == NULL) {
			snprintf(why, whylen, "must be a host name (letters, "
			    "digits, '-', '.' and '_')");
			return -1;
		}
	}
	return 0;
}

/*
 * Mail location: every '%' starts one of %u (user), %n (local part), %d
 * (domain), %h (home) or %% (a '%'). A location without %u, %n or %h
 * would hand every user the same maildrop, which is never intended.
 */
static int
cfg_check_template(const char *v, char *why, size_t whylen)
{
	const char	*p;
	bool		 per_user = false;

	for (p = v; (p = strchr(p, '%')) != NULL; p += 2) {
		switch (p[1]) {
		case 'u':
		case 'n':
		case 'h':
			per_user = true;
			break;
		case 'd':
		case '%':
			break;
		case '\0':
			snprintf(why, whylen, "ends in a lone '%%' "
			    "(write %%%% for a '%%')");
			return -1;
		default:
			snprintf(why, whylen, "unknown variable '%%%c' "
			    "(known: %%u %%n %%d %%h %%%%)", p[1]);
			return -1;
		}
	}
	if (!per_user) {
		snprintf(why, whylen, "must contain %%u, %%n or %%h so that "
		    "every user gets a maildrop of their own");
		return -1;
	}
	return 0;
}

/*
 * Make v absolute against the config directory, cleaned. A template
 * starting with %h is already absolute; in a template, '%' in the
 * directory name is escaped so the result is still a valid template.
 */
static char *
cfg_resolve_path(struct cfg_ctx *ctx, const char *v, int template)
{
	const char	*s;
	char		*out, *w;
	size_t		 pct = 0;

	if (v[0] == '/' || (template && strncmp(v, "%h", 2) == 0)) {
		if ((out = strdup(v)) == NULL)
			return NULL;
		cfg_path_clean(out);
		return out;
	}
	if (template)
		for (s = ctx->dir; *s != '\0'; s++)
			pct += (*s == '%');
	/* dir + pct escapes + '/' + v + NUL */
	if ((out = malloc(strlen(ctx->dir) + pct + strlen(v) + 2)) == NULL)
		return NULL;
	for (s = ctx->dir, w = out; *s != '\0'; s++) {
		*w++ = *s;
		if (template && *s == '%')
			*w++ = '%';
	}
	*w++ = '/';
	strcpy(w, v);
	cfg_path_clean(out);
	return out;
}

/*
 * A comma-separated list of listen addresses, at least one, no two the
 * same. Stores a new array and its length.
 */
static int
cfg_set_listen(struct cfg_ctx *ctx, const struct cfg_key *k, const char *v,
    struct cfg *cfg)
{
	struct cfg_listen	*ls, *l;
	char			*copy, *item, *next, why[256];
	size_t			 n = 1, i, count = 0;
	const char		*p;
	int			 rv = -1;

	for (p = v; *p != '\0'; p++)
		n += (*p == ',');
	if ((copy = strdup(v)) == NULL)
		return cfg_error(ctx, k, NULL, "%s", strerror(errno));
	if ((ls = calloc(n, sizeof(*ls))) == NULL) {
		free(copy);
		return cfg_error(ctx, k, NULL, "%s", strerror(errno));
	}

	for (item = copy; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		item = cfg_trim(item);
		if (*item == '\0') {
			if (n == 1)
				cfg_error(ctx, k, v, "at least one address "
				    "is required");
			else
				cfg_error(ctx, k, v, "empty address in list");
			goto out;
		}
		l = &ls[count];
		if (cfg_parse_listen(item, l, why, sizeof(why)) == -1) {
			cfg_error(ctx, k, item, "%s", why);
			goto out;
		}
		for (i = 0; i < count; i++) {
			if (ls[i].addrlen == l->addrlen &&
			    memcmp(&ls[i].addr, &l->addr, l->addrlen) == 0) {
				cfg_error(ctx, k, item, "duplicate address "
				    "(same as '%s')", ls[i].text);
				goto out;
			}
		}
		count++;
	}

	*CFG_FIELD(cfg, k->offset, struct cfg_listen *) = ls;
	*CFG_FIELD(cfg, k->aux_offset, size_t) = count;
	ls = NULL;
	rv = 0;
 out:
	free(ls);
	free(copy);
	return rv;
}

/* One "ADDRESS[/PREFIX]"; 0, or -1 with a reason in why. */
static int
cfg_parse_net(const char *text, struct cfg_net *n, char *why, size_t whylen)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	long		 bits;
	int		 max;

	if (strlen(text) >= sizeof(buf)) {
		snprintf(why, whylen, "too long for a network");
		return -1;
	}
	memcpy(buf, text, strlen(text) + 1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		snprintf(why, whylen, "not a literal IPv4 or IPv6 address "
		    "(write ADDRESS or ADDRESS/PREFIX)");
		return -1;
	}
	n->prefix = max;
	if (slash != NULL) {
		if (cfg_parse_int(slash, &bits) == -1 || bits < 0 ||
		    bits > max) {
			snprintf(why, whylen, "prefix must be a number from 0 "
			    "to %d", max);
			return -1;
		}
		n->prefix = (int)bits;
	}
	return 0;
}

/* A comma-separated list of networks, possibly empty. */
static int
cfg_set_nets(struct cfg_ctx *ctx, const struct cfg_key *k, const char *v,
    struct cfg *cfg)
{
	struct cfg_net	*ns;
	char		*copy, *item, *next, why[256];
	size_t		 n = 1, count = 0;
	const char	*p;
	int		 rv = -1;

	for (p = v; *p != '\0'; p++)
		n += (*p == ',');
	if ((copy = strdup(v)) == NULL)
		return cfg_error(ctx, k, NULL, "%s", strerror(errno));
	if ((ns = calloc(n, sizeof(*ns))) == NULL) {
		free(copy);
		return cfg_error(ctx, k, NULL, "%s", strerror(errno));
	}
	for (item = copy; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		item = cfg_trim(item);
		if (*item == '\0') {
			if (n == 1)
				break;		/* "": no network */
			cfg_error(ctx, k, v, "empty network in list");
			goto out;
		}
		if (cfg_parse_net(item, &ns[count], why, sizeof(why)) == -1) {
			cfg_error(ctx, k, item, "%s", why);
			goto out;
		}
		count++;
	}
	*CFG_FIELD(cfg, k->offset, struct cfg_net *) = ns;
	*CFG_FIELD(cfg, k->aux_offset, size_t) = count;
	ns = NULL;
	rv = 0;
 out:
	free(ns);
	free(copy);
	return rv;
}

/* The first bits of a and b are equal. */
static bool
cfg_prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int		 whole = bits / 8, rest = bits % 8;
	unsigned char	 mask;

	if (memcmp(a, b, (size_t)whole) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* Is sa's address in one of nets[0..n)? IPv4-mapped IPv6 as IPv4. */
static bool
cfg_nets_match(const struct cfg_net *nets, size_t n, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const unsigned char	*a;
	size_t			 i;
	int			 family = sa->sa_family;

	if (family == AF_INET)
		a = (const unsigned char *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	else if (family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr.s6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			family = AF_INET;
			a += 12;
		}
	} else
		return false;
	for (i = 0; i < n; i++)
		if (nets[i].family == family &&
		    cfg_prefix_equal(a, nets[i].addr, nets[i].prefix))
			return true;
	return false;
}

bool
cfg_limits_exempt(const struct cfg *cfg, const struct sockaddr *sa)
{
	return cfg_nets_match(cfg->limits_exempt, cfg->n_limits_exempt, sa);
}

bool
cfg_proxy_trusted(const struct cfg *cfg, const struct sockaddr *sa)
{
	return cfg_nets_match(cfg->proxy_from, cfg->n_proxy_from, sa);
}

/*
 * Convert and store one value (from the file or the default) for key k.
 * Returns 0, or -1 with the error in ctx.
 */
static int
cfg_set(struct cfg_ctx *ctx, const struct cfg_key *k, const char *v,
    struct cfg *cfg)
{
	char	 why[256], *s;
	long	 n;
	bool	 b;

	if (k->type != CFG_INT && k->type != CFG_BOOL &&
	    k->type != CFG_LISTEN && !(k->flags & CFG_F_EMPTY) && *v == '\0')
		return cfg_error(ctx, k, v, "must not be empty");
	if (k->check != NULL && k->check(v, why, sizeof(why)) == -1)
		return cfg_error(ctx, k, v, "%s", why);

	switch (k->type) {
	case CFG_INT:
		if (cfg_parse_int(v, &n) == -1)
			return cfg_error(ctx, k, v,
			    "must be a decimal integer");
		if (n < k->min) {
			if (k->min_note != NULL)
				return cfg_error(ctx, k, v,
				    "must be at least %ld (%s)", k->min,
				    k->min_note);
			return cfg_error(ctx, k, v, "must be at least %ld",
			    k->min);
		}
		if (n > k->max)
			return cfg_error(ctx, k, v, "must be at most %ld",
			    k->max);
		*CFG_FIELD(cfg, k->offset, int) = (int)n;
		return 0;
	case CFG_BOOL:
		if (cfg_parse_bool(v, &b) == -1)
			return cfg_error(ctx, k, v, "must be yes or no "
			    "(or true/false, on/off, 1/0)");
		*CFG_FIELD(cfg, k->offset, bool) = b;
		return 0;
	case CFG_STRING:
		if ((s = strdup(v)) == NULL)
			return cfg_error(ctx, k, NULL, "%s", strerror(errno));
		*CFG_FIELD(cfg, k->offset, char *) = s;
		return 0;
	case CFG_PATH:
		s = cfg_resolve_path(ctx, v, (k->flags & CFG_F_TEMPLATE) != 0);
		if (s == NULL)
			return cfg_error(ctx, k, NULL, "%s", strerror(errno));
		*CFG_FIELD(cfg, k->offset, char *) = s;
		return 0;
	case CFG_LISTEN:
		return cfg_set_listen(ctx, k, v, cfg);
	case CFG_NETS:
		return cfg_set_nets(ctx, k, v, cfg);
	}
	return cfg_error(ctx, k, NULL, "internal error: bad type %d",
	    (int)k->type);
}

static const struct cfg_key *
cfg_find(const char *section, size_t seclen, const char *key)
{
	size_t	 i;

	for (i = 0; i < CFG_NKEYS; i++) {
		if (strlen(cfg_keys[i].section) != seclen ||
		    strncmp(cfg_keys[i].section, section, seclen) != 0)
			continue;
		if (key == NULL || strcmp(cfg_keys[i].key, key) == 0)
			return &cfg_keys[i];
	}
	return NULL;
}

/*
 * The edit distance (Levenshtein) between a and b, or max + 1 if it is
 * larger than max or either is longer than CFG_KEY_MAX.
 */
#define CFG_KEY_MAX	64

static size_t
cfg_distance(const char *a, const char *b, size_t max)
{
	size_t	 row[CFG_KEY_MAX + 1], la = strlen(a), lb = strlen(b);
	size_t	 i, j, diag, up, best;

	if (la > CFG_KEY_MAX || lb > CFG_KEY_MAX)
		return max + 1;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		best = row[0];
		for (j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
			if (row[j] < best)
				best = row[j];
		}
		if (best > max)
			return max + 1;
	}
	return row[lb] > max ? max + 1 : row[lb];
}

/*
 * The known key of section (seclen bytes) closest to key, as git does for
 * commands: within an edit distance of 2, or one a prefix of the other.
 * Returns NULL when none is close.
 */
static const char *
cfg_suggest(const char *section, size_t seclen, const char *key)
{
	const char	*best = NULL;
	size_t		 i, d, bestd = 3, lk = strlen(key), lc;

	for (i = 0; i < CFG_NKEYS; i++) {
		if (strlen(cfg_keys[i].section) != seclen ||
		    strncmp(cfg_keys[i].section, section, seclen) != 0)
			continue;
		lc = strlen(cfg_keys[i].key);
		d = cfg_distance(key, cfg_keys[i].key, 2);
		if (d > 2 && lk > 0 && lc > 0 &&
		    strncmp(key, cfg_keys[i].key, lk < lc ? lk : lc) == 0)
			d = 2;		/* a prefix: as close as allowed */
		if (d < bestd) {
			bestd = d;
			best = cfg_keys[i].key;
		}
	}
	return best;
}

/*
 * Warn about every section and key we do not know. iniparser stores a
 * section as "section" and a key as "section:key" (both lowercased), a key
 * above the first section as ":key".
 */
static void
cfg_warn_unknown(struct cfg_ctx *ctx, const dictionary *d)
{
	const char	*name, *colon, *hint;
	ssize_t		 i;

	for (i = 0; i < d->size; i++) {
		if ((name = d->key[i]) == NULL)
			continue;
		if (strncmp(name, CFG_SNI_PREFIX, strlen(CFG_SNI_PREFIX)) == 0)
			continue;	/* cfg_tls_sni() checks those */
		if ((colon = strchr(name, ':')) == NULL) {
			if (cfg_find(name, strlen(name), NULL) == NULL) {
				log_warnx("%s: [%s]: unknown section, ignored",
				    ctx->file, name);
				ctx->warnings++;
			}
		} else if (colon == name) {
			log_warnx("%s: %s: key outside any section, ignored",
			    ctx->file, colon + 1);
			ctx->warnings++;
		} else if (cfg_find(name, (size_t)(colon - name), NULL) !=
		    NULL && cfg_find(name, (size_t)(colon - name), colon + 1) ==
		    NULL) {
			hint = cfg_suggest(name, (size_t)(colon - name),
			    colon + 1);
			log_warnx("%s: [%.*s] %s: unknown key, ignored%s%s%s",
			    ctx->file, (int)(colon - name), name, colon + 1,
			    hint != NULL ? "; did you mean " : "",
			    hint != NULL ? hint : "", hint != NULL ? "?" : "");
			ctx->warnings++;
		}
		/* Keys of unknown sections: covered by the above. */
	}
}

/*
 * Copy s[0..len) to out lower-cased, without the blanks around it.
 * Returns out.
 */
static char *
cfg_lower_trim(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	 i, n = 0;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	for (i = 0; i < len && n + 1 < outlen; i++)
		out[n++] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return out;
}

/*
 * iniparser keeps the last of a key given twice, silently: read the file's
 * lines ourselves ("[section]" headers and "key = value" lines; ';' and
 * '#' comments; a trailing '\' continues a line; names case-insensitive)
 * and warn about each repeat, naming both lines.
 */
static void
cfg_warn_duplicates(struct cfg_ctx *ctx, const char *path)
{
	struct cfg_seen {
		char	 name[160];	/* "section:key" */
		size_t	 line;
	}		*seen = NULL, *tmp;
	FILE		*fp;
	char		 buf[4096], sec[80] = "", key[80];
	const char	*p, *eq, *rb;
	size_t		 n = 0, cap = 0, lineno = 0, i, len;
	bool		 cont = false, was_cont, head = true, starts;

	if ((fp = fopen(path, "re")) == NULL)
		return;		/* iniparser read it: cannot happen */
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		/* A line longer than buf comes in pieces: its first names
		 * the key, the rest is not a line of its own. */
		len = strlen(buf);
		starts = head;
		head = len > 0 && buf[len - 1] == '\n';
		if (!starts)
			continue;
		lineno++;
		while (len > 0 && isspace((unsigned char)buf[len - 1]))
			buf[--len] = '\0';
		was_cont = cont;
		cont = len > 0 && buf[len - 1] == '\\';
		if (was_cont)
			continue;
		for (p = buf; isspace((unsigned char)*p); p++)
			;
		if (*p == '\0' || *p == ';' || *p == '#')
			continue;
		if (*p == '[') {
			if ((rb = strchr(p, ']')) != NULL)
				cfg_lower_trim(p + 1, (size_t)(rb - p - 1),
				    sec, sizeof(sec));
			continue;
		}
		if ((eq = strchr(p, '=')) == NULL)
			continue;
		cfg_lower_trim(p, (size_t)(eq - p), key, sizeof(key));
		if (n == cap) {
			cap = cap == 0 ? 32 : cap * 2;
			if ((tmp = reallocarray(seen, cap, sizeof(*seen))) ==
			    NULL)
				break;	/* out of memory: fewer warnings */
			seen = tmp;
		}
		snprintf(seen[n].name, sizeof(seen[n].name), "%s:%s", sec,
		    key);
		seen[n].line = lineno;
		for (i = 0; i < n; i++)
			if (strcmp(seen[i].name, seen[n].name) == 0)
				break;
		if (i < n) {
			log_warnx("%s:%zu: [%s] %s: duplicate key, overrides "
			    "line %zu", ctx->file, lineno, sec, key,
			    seen[i].line);
			ctx->warnings++;
			seen[i].line = lineno;	/* a third names the second */
		} else
			n++;
	}
	fclose(fp);
	free(seen);
}

/*
 * The [tls.NAME] sections: the certificate and key for the SNI server
 * name NAME (RFC 6066 section 3), both required, paths resolved like
 * passwd_file. Other keys are warned about, like unknown keys.
 */
static int
cfg_tls_sni(struct cfg_ctx *ctx, const dictionary *d, struct cfg *cfg)
{
	struct cfg_tls_sni	*sni;
	const char		*sec, *cert, *key, *host;
	char			 name[600], why[256];
	ssize_t			 i;
	size_t			 j, n = 0;
	int			 nsec = iniparser_getnsec(d), k;

	for (k = 0; k < nsec; k++)
		if ((sec = iniparser_getsecname(d, k)) != NULL &&
		    strncmp(sec, CFG_SNI_PREFIX, strlen(CFG_SNI_PREFIX)) == 0)
			n++;
	if (n == 0)
		return 0;
	if ((cfg->tls_sni = calloc(n, sizeof(*cfg->tls_sni))) == NULL)
		return cfg_file_error(ctx, "cannot load", strerror(errno));
	for (k = 0; k < nsec; k++) {
		if ((sec = iniparser_getsecname(d, k)) == NULL ||
		    strncmp(sec, CFG_SNI_PREFIX, strlen(CFG_SNI_PREFIX)) != 0)
			continue;
		sni = &cfg->tls_sni[cfg->n_tls_sni];
		host = sec + strlen(CFG_SNI_PREFIX);
		if (strncmp(host, "*.", 2) == 0)
			host += 2;	/* a wildcard: one label, any name */
		if (*host == '\0')
			return cfg_file_error(ctx, sec, "empty server name");
		if (cfg_check_hostname(host, why, sizeof(why)) == -1)
			return cfg_file_error(ctx, sec, why);
		snprintf(name, sizeof(name), "%s:cert", sec);
		cert = iniparser_getstring(d, name, NULL);
		snprintf(name, sizeof(name), "%s:key", sec);
		key = iniparser_getstring(d, name, NULL);
		if (cert == NULL || key == NULL || *cert == '\0' || *key == '\0')
			return cfg_file_error(ctx, sec, "needs both cert and "
			    "key");
		if ((sni->name = strdup(sec + strlen(CFG_SNI_PREFIX))) == NULL ||
		    (sni->cert = cfg_resolve_path(ctx, cert, 0)) == NULL ||
		    (sni->key = cfg_resolve_path(ctx, key, 0)) == NULL) {
			cfg->n_tls_sni++;	/* cfg_free() frees it */
			return cfg_file_error(ctx, "cannot load",
			    strerror(errno));
		}
		cfg->n_tls_sni++;
		for (j = 0; j + 1 < cfg->n_tls_sni; j++)
			if (strcmp(cfg->tls_sni[j].name, sni->name) == 0)
				return cfg_file_error(ctx, sec, "duplicate "
				    "server name");
	}
	/* Keys of those sections other than cert and key. */
	for (i = 0; i < d->size; i++) {
		const char *kn = d->key[i], *colon;

		if (kn == NULL || strncmp(kn, CFG_SNI_PREFIX,
		    strlen(CFG_SNI_PREFIX)) != 0 ||
		    (colon = strchr(kn, ':')) == NULL)
			continue;
		if (strcmp(colon + 1, "cert") != 0 &&
		    strcmp(colon + 1, "key") != 0) {
			log_warnx("%s: [%.*s] %s: unknown key, ignored",
			    ctx->file, (int)(colon - kn), kn, colon + 1);
			ctx->warnings++;
		}
	}
	return 0;
}

/*
 * What single keys cannot check: TLS needs both cert and key; listen_tls,
 * SNI sections and plaintext = never need TLS; no address is both plain
 * and TLS.
 */
static int
cfg_tls_finish(struct cfg_ctx *ctx, const dictionary *d, struct cfg *cfg)
{
	size_t	i, j;

	if (strcmp(cfg->plaintext_text, "allowed") == 0)
		cfg->plaintext = CFG_PLAINTEXT_ALLOWED;
	else if (strcmp(cfg->plaintext_text, "never") == 0)
		cfg->plaintext = CFG_PLAINTEXT_NEVER;
	else
		cfg->plaintext = CFG_PLAINTEXT_LOCALHOST;
	if (cfg_tls_sni(ctx, d, cfg) == -1)
		return -1;
	if (cfg->tls_cert != NULL && cfg->tls_key == NULL)
		return cfg_error(ctx, cfg_find("tls", 3, "key"), NULL,
		    "required with cert");
	if (cfg->tls_key != NULL && cfg->tls_cert == NULL)
		return cfg_error(ctx, cfg_find("tls", 3, "cert"), NULL,
		    "required with key");
	if (cfg->tls_cert == NULL) {
		if (cfg->n_listen_tls > 0)
			return cfg_error(ctx, cfg_find("server", 6,
			    "listen_tls"), NULL, "needs [tls] cert and key");
		if (cfg->n_tls_sni > 0)
			return cfg_file_error(ctx, "[tls.NAME] sections",
			    "need [tls] cert and key (the default "
			    "certificate)");
		if (cfg->plaintext == CFG_PLAINTEXT_NEVER)
			return cfg_error(ctx, cfg_find("auth", 4,
			    "plaintext"), "never", "needs [tls] cert and key "
			    "(else nobody could log in)");
	}
	for (i = 0; i < cfg->n_listen_tls; i++)
		for (j = 0; j < cfg->n_listen; j++)
			if (cfg->listen[j].addrlen ==
			    cfg->listen_tls[i].addrlen &&
			    memcmp(&cfg->listen[j].addr,
			    &cfg->listen_tls[i].addr,
			    cfg->listen[j].addrlen) == 0 &&
			    ((const struct sockaddr_in *)&cfg->listen[j].addr)
			    ->sin_port != 0)
				return cfg_error(ctx, cfg_find("server", 6,
				    "listen_tls"), cfg->listen_tls[i].text,
				    "also in [server] listen");
	return 0;
}

/* The walk: every row once, from the file or its default. */
static int
cfg_apply(struct cfg_ctx *ctx, const dictionary *d, struct cfg *cfg)
{
	const struct cfg_key	*k;
	const char		*v;
	char			 name[128], host[HOST_NAME_MAX + 1];
	size_t			 i;

	for (i = 0; i < CFG_NKEYS; i++) {
		k = &cfg_keys[i];
		snprintf(name, sizeof(name), "%s:%s", k->section, k->key);
		if ((v = iniparser_getstring(d, name, NULL)) == NULL) {
			if ((k->flags & CFG_F_REQUIRED) ||
			    ((k->flags & CFG_F_FILEDB) && strcmp(
			    iniparser_getstring(d, "auth:driver",
			    "passwd-file"), "pgsql") != 0))
				return cfg_error(ctx, k, NULL,
				    "required key is missing");
			v = k->dflt;
		}
		if (v == NULL && (k->flags & CFG_F_SYSHOST)) {
			if (gethostname(host, sizeof(host)) == -1)
				return cfg_error(ctx, k, NULL, "no value and "
				    "gethostname: %s", strerror(errno));
			host[sizeof(host) - 1] = '\0';
			v = host;
		}
		if (v == NULL)
			continue;
		if (cfg_set(ctx, k, v, cfg) == -1)
			return -1;
	}
	return 0;
}

int
cfg_load(const char *path, struct cfg **cfg_r, char *err, size_t errlen)
{
	struct cfg_ctx	 ctx = { .file = path, .err = err, .errlen = errlen };
	struct cfg	*cfg = NULL;
	dictionary	*d = NULL;
	struct stat	 sb;
	int		 fd, rv = -1;

	*cfg_r = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	/* Check first, so a missing file gets its errno text. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return cfg_file_error(&ctx, "cannot open", strerror(errno));
	if (fstat(fd, &sb) == -1) {
		cfg_file_error(&ctx, "cannot stat", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(sb.st_mode))
		return cfg_file_error(&ctx, "cannot read",
		    "not a regular file");

	if ((ctx.dir = cfg_file_dir(path)) == NULL)
		return cfg_file_error(&ctx, "cannot resolve directory",
		    strerror(errno));

	memset(&cfg_ini_cap, 0, sizeof(cfg_ini_cap));
	cfg_ini_cap.file = path;
	iniparser_set_error_callback(cfg_ini_error);
	d = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	if (d == NULL || cfg_ini_cap.count > 0) {
		cfg_file_error(&ctx, "cannot parse", cfg_ini_cap.count > 0 ?
		    cfg_ini_cap.first : "unknown iniparser error");
		goto out;
	}

	cfg_warn_unknown(&ctx, d);
	cfg_warn_duplicates(&ctx, path);

	if ((cfg = calloc(1, sizeof(*cfg))) != NULL)
		cfg->refs = 1;
	if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
		cfg_file_error(&ctx, "cannot load", strerror(errno));
		goto out;
	}
	if (cfg_apply(&ctx, d, cfg) == -1 || cfg_tls_finish(&ctx, d, cfg) == -1 ||
	    cfg_log_finish(&ctx, cfg) == -1 ||
	    cfg_auth_finish(&ctx, cfg) == -1)
		goto out;
	cfg->control_mode = (int)strtol(cfg->control_mode_text, NULL, 8);
	cfg->workers = strcmp(cfg->workers_text, "auto") == 0 ? cfg_cpus() :
	    atoi(cfg->workers_text);
	cfg->warnings = ctx.warnings;

	*cfg_r = cfg;
	cfg = NULL;
	rv = 0;
 out:
	cfg_free(cfg);
	if (d != NULL)
		iniparser_freedict(d);
	free(ctx.dir);
	return rv;
}

struct cfg *
cfg_ref(struct cfg *cfg)
{
	cfg->refs++;
	return cfg;
}

void
cfg_free(struct cfg *cfg)
{
	size_t	 i;

	if (cfg == NULL || --cfg->refs > 0)
		return;
	for (i = 0; i < CFG_NKEYS; i++) {
		switch (cfg_keys[i].type) {
		case CFG_STRING:
		case CFG_PATH:
			free(*CFG_FIELD(cfg, cfg_keys[i].offset, char *));
			break;
		case CFG_LISTEN:
			free(*CFG_FIELD(cfg, cfg_keys[i].offset,
			    struct cfg_listen *));
			break;
		case CFG_NETS:
			free(*CFG_FIELD(cfg, cfg_keys[i].offset,
			    struct cfg_net *));
			break;
		case CFG_INT:
		case CFG_BOOL:
			break;
		}
	}
	for (i = 0; i < cfg->n_tls_sni; i++) {
		free(cfg->tls_sni[i].name);
		free(cfg->tls_sni[i].cert);
		free(cfg->tls_sni[i].key);
	}
	free(cfg->tls_sni);
	logfmt_free(cfg->log_logout);
	free(cfg->path);
	free(cfg);
}

/* Port: 1-5 decimal digits, 0..65535. */
static int
cfg_parse_port(const char *s, in_port_t *port_r)
{
	unsigned long	 v = 0;
	size_t		 i;

	for (i = 0; isdigit((unsigned char)s[i]); i++) {
		if (i == 5)
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || s[i] != '\0' || v > 65535)
		return -1;
	*port_r = htons((in_port_t)v);
	return 0;
}

int
cfg_parse_listen(const char *text, struct cfg_listen *l_r, char *err,
    size_t errlen)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 buf[sizeof(l_r->text)], *host, *port, *p;
	const char		*s, *e;
	in_port_t		 nport;
	size_t			 len;
	int			 v6;

	memset(l_r, 0, sizeof(*l_r));

	for (s = text; isspace((unsigned char)*s); s++)
		;
	for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		;
	if ((len = (size_t)(e - s)) == 0) {
		snprintf(err, errlen, "empty address");
		return -1;
	}
	if (len >= sizeof(buf)) {
		snprintf(err, errlen, "too long for an address");
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';

	if (buf[0] == '[') {
		/* "[v6]:port" */
		v6 = 1;
		host = buf + 1;
		if ((p = strchr(host, ']')) == NULL) {
			snprintf(err, errlen, "missing ']' after IPv6 address");
			return -1;
		}
		*p++ = '\0';
		if (*p != ':') {
			snprintf(err, errlen, *p == '\0' ?
			    "missing port (write [ADDRESS]:PORT)" :
			    "expected ':' and a port after ']'");
			return -1;
		}
		port = p + 1;
	} else {
		/* "v4:port" or "*:port" */
		v6 = 0;
		host = buf;
		if ((p = strrchr(buf, ':')) == NULL) {
			snprintf(err, errlen, "missing port (write "
			    "ADDRESS:PORT)");
			return -1;
		}
		*p = '\0';
		port = p + 1;
		if (strchr(host, ':') != NULL) {
			snprintf(err, errlen, "IPv6 addresses must be in "
			    "brackets, as in [::1]:110");
			return -1;
		}
	}

	if (cfg_parse_port(port, &nport) == -1) {
		snprintf(err, errlen, "port must be a number from 0 to 65535");
		return -1;
	}

	if (v6) {
		sin6 = (struct sockaddr_in6 *)&l_r->addr;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = nport;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "not a literal IPv6 address "
			    "(host names are not supported)");
			return -1;
		}
		l_r->addrlen = sizeof(*sin6);
	} else {
		sin = (struct sockaddr_in *)&l_r->addr;
		sin->sin_family = AF_INET;
		sin->sin_port = nport;
		if (*host == '\0') {
			snprintf(err, errlen, "missing address (write "
			    "*:PORT for all IPv4 addresses)");
			return -1;
		}
		if (strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			for (p = host; *p != '\0'; p++)
				if (isalpha((unsigned char)*p))
					break;
			snprintf(err, errlen, *p != '\0' ?
			    "host names are not supported, use a literal "
			    "address such as 127.0.0.1 or [::1]" :
			    "not a valid IPv4 address");
			return -1;
		}
		l_r->addrlen = sizeof(*sin);
	}
	/* buf was split in place; the text is the trimmed original. */
	memcpy(l_r->text, s, len);
	l_r->text[len] = '\0';
	return 0;
}
