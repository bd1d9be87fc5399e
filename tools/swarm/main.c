/*
 * evpop3d-swarm: a scripted POP3 load generator for loopback benchmarks.
 *
 * main: options, the scenario lookup, users, loopback-only address checks,
 * RLIMIT_NOFILE, then one engine run and its report.  Exit status: 0 if no
 * violations and no failed sessions, 1 otherwise, 2 on usage or setup
 * errors.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "report.h"
#include "scenario.h"

#ifndef EVPOP3D_VERSION_STRING
#define EVPOP3D_VERSION_STRING	"unknown"
#endif

#define EXIT_USAGE	2
#define MAX_USERS	1000000
#define MAX_DEFS	64
#define FD_RESERVE	32		/* stdio, epoll, signal pipe, /proc */

enum {
	OPT_USER_COUNT = 256,
	OPT_USER_FIRST,
	OPT_CONNECT_TIMEOUT,
	OPT_REPLY_TIMEOUT,
	OPT_VERSION,
	OPT_TLS,
	OPT_STLS,
	OPT_TLS_RESUME,
	OPT_CACERT,
	OPT_TLS_NAME,
};

static const struct option longopts[] = {
	{ "host",		required_argument, NULL, 'H' },
	{ "port",		required_argument, NULL, 'p' },
	{ "concurrency",	required_argument, NULL, 'c' },
	{ "sessions",		required_argument, NULL, 'n' },
	{ "duration",		required_argument, NULL, 'd' },
	{ "rate",		required_argument, NULL, 'r' },
	{ "users",		required_argument, NULL, 'u' },
	{ "user-count",		required_argument, NULL, OPT_USER_COUNT },
	{ "user-first",		required_argument, NULL, OPT_USER_FIRST },
	{ "password",		required_argument, NULL, 'P' },
	{ "users-file",		required_argument, NULL, 'U' },
	{ "source",		required_argument, NULL, 's' },
	{ "var",		required_argument, NULL, 'D' },
	{ "json",		no_argument,	   NULL, 'j' },
	{ "server-pid",		required_argument, NULL, 'S' },
	{ "server-children",	no_argument,	   NULL, 'C' },
	{ "quiet",		no_argument,	   NULL, 'q' },
	{ "connect-timeout",	required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "reply-timeout",	required_argument, NULL, OPT_REPLY_TIMEOUT },
	{ "tls",		no_argument,	   NULL, OPT_TLS },
	{ "stls",		no_argument,	   NULL, OPT_STLS },
	{ "tls-resume",		no_argument,	   NULL, OPT_TLS_RESUME },
	{ "cacert",		required_argument, NULL, OPT_CACERT },
	{ "tls-name",		required_argument, NULL, OPT_TLS_NAME },
	{ "help",		no_argument,	   NULL, 'h' },
	{ "version",		no_argument,	   NULL, OPT_VERSION },
	{ NULL,			0,		   NULL, 0 },
};

static void	usage_error(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

static void
usage(FILE *f)
{
	fprintf(f,
"usage: evpop3d-swarm [options] SCENARIO\n"
"  SCENARIO            a file, or a name (full, login, pipeline, idle,\n"
"                      retr-big, churn, ...) looked up as\n"
"                      $EVPOP3D_SWARM_DIR/NAME.swarm, then\n"
"                      <bindir>/../share/evpop3d/swarm/NAME.swarm, then\n"
"                      the source tree's scripts/swarm/NAME.swarm\n"
"  -H, --host ADDR     target, 127.0.0.0/8 or ::1 only (127.0.0.1)\n"
"  -p, --port PORT     (110)\n"
"  -c, --concurrency N sessions in flight (10, max %d)\n"
"  -n, --sessions N    stop after N sessions (0: no limit)\n"
"  -d, --duration SEC  stop after SEC seconds (10, max 86400)\n"
"  -r, --rate N        start at most N sessions/s (0: no limit)\n"
"  -u, --users PATTERN user names, one %%d (bench%%04d)\n"
"      --user-count N  (1000)   --user-first N (0)\n"
"  -P, --password PAT  password, %%d as in the user pattern (pass)\n"
"  -U, --users-file F  \"user:password\" lines, used round-robin\n"
"  -s, --source LIST   loopback source addresses, comma-separated\n"
"  -D, --var NAME=VAL  set a scenario variable (repeatable)\n"
"  -j, --json          JSON report on stdout (text report on stderr)\n"
"  -S, --server-pid P  sample the server's CPU and memory\n"
"  -C, --server-children  include its descendants\n"
"  -q, --quiet         no progress line\n"
"      --connect-timeout MS (5000)   --reply-timeout MS (30000)\n"
"      --tls           TLS from connect (port 995 style, RFC 8314)\n"
"      --stls          STLS right after the greeting (RFC 2595), no CAPA\n"
"      --tls-resume    each slot offers its last TLS session again\n"
"      --cacert FILE   verify the server against FILE (default: no check)\n"
"      --tls-name NAME SNI, and the name verified with --cacert\n"
"  -h, --help          --version\n"
"exit status: 0 clean, 1 violations or failed sessions, 2 usage error\n",
	    SWARM_MAX_CONCURRENCY);
}

static void
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	fputs("evpop3d-swarm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static uint64_t
num_arg(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 ||
	    v < min || v > max)
		usage_error("%s: want an integer in %llu..%llu, not \"%s\"",
		    opt, (unsigned long long)min, (unsigned long long)max, s);
	return v;
}

static double
real_arg(const char *opt, const char *s, double min, double max)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= min) ||
	    !(v <= max))
		usage_error("%s: want a number in %g..%g, not \"%s\"", opt,
		    min, max, s);
	return v;
}

/*
 * Parse a loopback address (127.0.0.0/8 or ::1; no names) into ss with
 * port.  Returns 0 or -1.
 */
static int
loopback_addr(const char *s, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/*
 * Format pattern with n for its one "%[0][width]d" ("%%" is a '%').
 * need is the number of conversions required (0 or 1 allowed when
 * optional).  Returns the length, or -1 for a bad pattern or overflow.
 */
static int
fmt_pattern(const char *pat, unsigned long long n, int optional, char *out,
    size_t size)
{
	const char	*p;
	char		 digits[24];
	size_t		 len = 0, nd, w;
	int		 conv = 0, zero;
	unsigned long long v;

	for (p = pat; *p != '\0'; p++) {
		if (*p != '%') {
			if (len + 1 >= size)
				return -1;
			out[len++] = *p;
			continue;
		}
		p++;
		if (*p == '%') {
			if (len + 1 >= size)
				return -1;
			out[len++] = '%';
			continue;
		}
		zero = *p == '0';
		if (zero)
			p++;
		for (w = 0; *p >= '0' && *p <= '9'; p++)
			w = w * 10 + (size_t)(*p - '0');
		if (*p != 'd' || conv++ > 0 || w > 20)
			return -1;
		nd = 0;
		v = n;
		do {
			digits[nd++] = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0);
		while (w > nd) {
			if (len + 1 >= size)
				return -1;
			out[len++] = zero ? '0' : ' ';
			w--;
		}
		while (nd > 0) {
			if (len + 1 >= size)
				return -1;
			out[len++] = digits[--nd];
		}
	}
	if (conv == 0 && !optional)
		return -1;
	out[len] = '\0';
	return (int)len;
}

static int
user_set(struct swarm_user *u, const char *name, size_t nlen,
    const char *pw, size_t plen)
{
	if (nlen == 0 || nlen > SC_VALUE_MAX || plen > SC_VALUE_MAX)
		return -1;
	if ((u->name = strndup(name, nlen)) == NULL ||
	    (u->password = strndup(pw, plen)) == NULL)
		return -1;
	u->name_len = (uint16_t)nlen;
	u->password_len = (uint16_t)plen;
	return 0;
}

static struct swarm_user *
users_from_pattern(const char *upat, const char *ppat, uint64_t first,
    uint64_t count)
{
	struct swarm_user	*users;
	char			 name[SC_VALUE_MAX + 1], pw[SC_VALUE_MAX + 1];
	int			 nl, pl;
	uint64_t		 i;

	if ((users = calloc(count, sizeof(*users))) == NULL)
		usage_error("out of memory");
	for (i = 0; i < count; i++) {
		nl = fmt_pattern(upat, first + i, 0, name, sizeof(name));
		if (nl == -1)
			usage_error("--users: want a pattern with one %%d "
			    "(e.g. bench%%04d), not \"%s\"", upat);
		pl = fmt_pattern(ppat, first + i, 1, pw, sizeof(pw));
		if (pl == -1)
			usage_error("--password: at most one %%d, not \"%s\"",
			    ppat);
		if (user_set(&users[i], name, (size_t)nl, pw, (size_t)pl) == -1)
			usage_error("user %s: too long", name);
	}
	return users;
}

static struct swarm_user *
users_from_file(const char *path, uint32_t *n_r)
{
	struct swarm_user	*users = NULL, *q;
	FILE			*f;
	char			*line = NULL, *colon;
	size_t			 cap = 0, n = 0, ncap = 0, len;
	ssize_t			 r;
	unsigned		 lineno = 0;

	if ((f = fopen(path, "r")) == NULL)
		usage_error("%s: %s", path, strerror(errno));
	while ((r = getline(&line, &cap, f)) != -1) {
		lineno++;
		len = (size_t)r;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if ((colon = strchr(line, ':')) == NULL)
			usage_error("%s:%u: want user:password", path, lineno);
		if (n == MAX_USERS)
			usage_error("%s: more than %d users", path, MAX_USERS);
		if (n == ncap) {
			ncap = ncap ? ncap * 2 : 64;
			if ((q = reallocarray(users, ncap,
			    sizeof(*users))) == NULL)
				usage_error("out of memory");
			users = q;
		}
		if (user_set(&users[n], line, (size_t)(colon - line),
		    colon + 1, strlen(colon + 1)) == -1)
			usage_error("%s:%u: empty or too long", path, lineno);
		n++;
	}
	free(line);
	if (ferror(f))
		usage_error("%s: read error", path);
	fclose(f);
	if (n == 0)
		usage_error("%s: no users", path);
	*n_r = (uint32_t)n;
	return users;
}

static int
readable(const char *path)
{
	struct stat	 sb;

	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* SCENARIO as a path, or NAME in the search path of the usage text. */
static char *
find_scenario(const char *arg)
{
	char		 buf[PATH_MAX], exe[PATH_MAX], *dir;
	const char	*env;
	ssize_t		 n;

	if (readable(arg) || strchr(arg, '/') != NULL)
		return strdup(arg);
	if ((env = getenv("EVPOP3D_SWARM_DIR")) != NULL && *env != '\0') {
		snprintf(buf, sizeof(buf), "%s/%s.swarm", env, arg);
		if (readable(buf))
			return strdup(buf);
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		dir = dirname(exe);
		snprintf(buf, sizeof(buf), "%s/../share/evpop3d/swarm/%s.swarm",
		    dir, arg);
		if (readable(buf))
			return strdup(buf);
	}
#ifdef SWARM_SOURCE_DIR
	snprintf(buf, sizeof(buf), "%s/%s.swarm", SWARM_SOURCE_DIR, arg);
	if (readable(buf))
		return strdup(buf);
#endif
	return NULL;
}

/* "full" for ".../full.swarm". */
static char *
scenario_name(const char *path)
{
	const char	*b = strrchr(path, '/');
	char		*s;
	size_t		 n;

	b = b ? b + 1 : path;
	if ((s = strdup(b)) == NULL)
		return NULL;
	n = strlen(s);
	if (n > 6 && strcmp(s + n - 6, ".swarm") == 0)
		s[n - 6] = '\0';
	return s;
}

static void
parse_sources(struct swarm_opts *o, const char *list)
{
	char		*copy, *tok, *save = NULL;
	socklen_t	 len;

	if ((copy = strdup(list)) == NULL)
		usage_error("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (o->nsrc == SWARM_MAX_SOURCES)
			usage_error("--source: more than %d addresses",
			    SWARM_MAX_SOURCES);
		if (loopback_addr(tok, 0, &o->src[o->nsrc], &len) == -1)
			usage_error("--source: \"%s\" is not a loopback "
			    "address (127.0.0.0/8 or ::1)", tok);
		o->nsrc++;
	}
	free(copy);
	if (o->nsrc == 0)
		usage_error("--source: empty list");
}

static void
raise_nofile(unsigned concurrency)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		usage_error("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)concurrency + FD_RESERVE > rl.rlim_cur)
		usage_error("-c %u: the open-file limit is %llu (hard); at "
		    "most %llu sessions", concurrency,
		    (unsigned long long)rl.rlim_cur,
		    rl.rlim_cur > FD_RESERVE ?
		    (unsigned long long)(rl.rlim_cur - FD_RESERVE) : 0ULL);
}

int
main(int argc, char *argv[])
{
	struct swarm_opts	 o;
	struct sc_def		 defs[MAX_DEFS];
	struct engine		*e;
	const struct swarm_stats *st;
	struct sc_prog		*prog;
	struct swarm_user	*users;
	const char		*host = "127.0.0.1", *upat = "bench%04d";
	const char		*ppat = "pass", *ufile = NULL, *sources = NULL;
	char			*path, *name, *eq, err[512];
	uint64_t		 ucount = 1000, ufirst = 0;
	size_t			 ndefs = 0, i;
	bool			 json = false, quiet = false;
	int			 ch, rc;

	memset(&o, 0, sizeof(o));
	o.port = 110;
	o.concurrency = 10;
	o.duration = 10;
	o.connect_timeout_ms = 5000;
	o.reply_timeout_ms = 30000;

	while ((ch = getopt_long(argc, argv, "H:p:c:n:d:r:u:P:U:s:D:jS:Cqh",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			o.port = (unsigned)num_arg("--port", optarg, 1, 65535);
			break;
		case 'c':
			o.concurrency = (unsigned)num_arg("--concurrency",
			    optarg, 1, SWARM_MAX_CONCURRENCY);
			break;
		case 'n':
			o.sessions = num_arg("--sessions", optarg, 0,
			    UINT64_MAX / 2);
			break;
		case 'd':
			o.duration = real_arg("--duration", optarg, 0.001,
			    86400);
			break;
		case 'r':
			o.rate = real_arg("--rate", optarg, 0, 10000000);
			break;
		case 'u':
			upat = optarg;
			break;
		case OPT_USER_COUNT:
			ucount = num_arg("--user-count", optarg, 1, MAX_USERS);
			break;
		case OPT_USER_FIRST:
			ufirst = num_arg("--user-first", optarg, 0,
			    UINT32_MAX);
			break;
		case 'P':
			ppat = optarg;
			break;
		case 'U':
			ufile = optarg;
			break;
		case 's':
			sources = optarg;
			break;
		case 'D':
			if ((eq = strchr(optarg, '=')) == NULL ||
			    eq == optarg)
				usage_error("--var: want NAME=VALUE, not "
				    "\"%s\"", optarg);
			if (ndefs == MAX_DEFS)
				usage_error("--var: more than %d", MAX_DEFS);
			*eq = '\0';
			defs[ndefs].name = optarg;
			defs[ndefs].value = eq + 1;
			defs[ndefs].used = 0;
			ndefs++;
			break;
		case 'j':
			json = true;
			break;
		case 'S':
			o.server_pid = (pid_t)num_arg("--server-pid", optarg,
			    1, INT_MAX);
			break;
		case 'C':
			o.server_children = true;
			break;
		case 'q':
			quiet = true;
			break;
		case OPT_CONNECT_TIMEOUT:
			o.connect_timeout_ms = (unsigned)num_arg(
			    "--connect-timeout", optarg, 1, 3600000);
			break;
		case OPT_REPLY_TIMEOUT:
			o.reply_timeout_ms = (unsigned)num_arg(
			    "--reply-timeout", optarg, 1, 3600000);
			break;
		case OPT_TLS:
		case OPT_STLS:
			if (o.tls != SWARM_TLS_OFF)
				usage_error("--tls and --stls: one of them");
			o.tls = ch == OPT_TLS ? SWARM_TLS_IMPLICIT :
			    SWARM_TLS_STLS;
			break;
		case OPT_TLS_RESUME:
			o.tls_resume = true;
			break;
		case OPT_CACERT:
			o.cacert = optarg;
			break;
		case OPT_TLS_NAME:
			if (*optarg == '\0' || strlen(optarg) > 253)
				usage_error("--tls-name: want a host name, not "
				    "\"%s\"", optarg);
			o.tls_name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("evpop3d-swarm %s\n", EVPOP3D_VERSION_STRING);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (o.tls == SWARM_TLS_OFF && (o.tls_resume || o.cacert != NULL ||
	    o.tls_name != NULL))
		usage_error("--tls-resume, --cacert and --tls-name need --tls "
		    "or --stls");
	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}

	/* Loopback only: this tool must never load a real host. */
	if (loopback_addr(host, o.port, &o.dst, &o.dstlen) == -1)
		usage_error("--host: \"%s\" is not a loopback address "
		    "(127.0.0.0/8 or ::1; names are refused)", host);
	snprintf(o.host, sizeof(o.host), "%s", host);
	if (sources != NULL) {
		parse_sources(&o, sources);
		for (i = 0; i < o.nsrc; i++)
			if (o.src[i].ss_family != o.dst.ss_family)
				usage_error("--source: address family differs "
				    "from --host");
	}

	if ((path = find_scenario(argv[0])) == NULL)
		usage_error("scenario \"%s\" not found", argv[0]);
	if ((prog = sc_parse_file(path, defs, ndefs, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		free(path);
		return EXIT_USAGE;
	}
	for (i = 0; i < ndefs; i++)
		if (!defs[i].used)
			fprintf(stderr, "evpop3d-swarm: warning: --var %s: "
			    "the scenario does not use it\n", defs[i].name);
	if ((name = scenario_name(path)) == NULL)
		usage_error("out of memory");

	if (ufile != NULL)
		users = users_from_file(ufile, &o.nusers);
	else {
		users = users_from_pattern(upat, ppat, ufirst, ucount);
		o.nusers = (uint32_t)ucount;
	}

	raise_nofile(o.concurrency);
	signal(SIGPIPE, SIG_IGN);

	o.prog = prog;
	o.scenario = name;
	o.users = users;
	o.progress = !quiet && isatty(STDERR_FILENO);
	rc = EXIT_USAGE;
	if ((e = engine_new(&o)) != NULL && engine_run(e) == 0) {
		st = engine_stats(e);
		if (json) {
			report_text(stderr, &o, st);
			report_json(stdout, &o, st);
		} else
			report_text(stdout, &o, st);
		rc = st->violations_total > 0 || st->failed > 0 ? 1 : 0;
	}

	engine_free(e);
	for (i = 0; i < o.nusers; i++) {
		free(users[i].name);
		free(users[i].password);
	}
	free(users);
	sc_free(prog);
	free(name);
	free(path);
	return rc;
}
