/*
 * evpop3d: an event-driven POP3 server.
 *
 *   evpop3d -c FILE        run in the foreground, logging to stderr
 *   evpop3d -t -c FILE     check the configuration and exit
 *   evpop3d hash [-s SCHEME] [-r ROUNDS]
 *                          read a password, print its hash ({SHA512-CRYPT})
 *   evpop3d who [-1] | kick USER | stats | reload [-c FILE | -s SOCKET]
 *                          ask the running daemon (ctl.c)
 *   evpop3d --version
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <systemd/sd-daemon.h>

#include "auth/auth.h"
#include "config.h"
#include "ctl.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/metric.h"
#include "lib/monotime.h"
#include "lib/netaddr.h"
#include "lib/privdrop.h"
#include "lib/proc.h"
#include "lib/shlimits.h"
#include "net/control.h"
#include "net/metrics.h"
#include "net/server.h"
#include "net/supervise.h"
#include "net/tls.h"
#include "pop3/admin.h"
#include "pop3/pop3.h"
#include "session/session.h"
#include "store/store.h"
#include "workers.h"

/* Print the usage and exit: to stdout for --help (status 0), else stderr. */
static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: %s [-d] [-t] -c FILE\n"
	    "       %s hash [-s SCHEME] [-r ROUNDS]\n"
	    "       %s who [-1] [-c FILE | -s SOCKET]\n"
	    "       %s kick [-c FILE | -s SOCKET] USER\n"
	    "       %s stats | reload [-c FILE | -s SOCKET]\n"
	    "       %s --version | --help\n"
	    "  -c FILE  configuration file\n"
	    "  -d       debug logging\n"
	    "  -t       check the configuration and the files it names, and "
	    "exit\n"
	    "           (1 on errors and on warnings such as unknown or "
	    "duplicate keys)\n"
	    "  who, kick, stats, reload: ask the running daemon through its "
	    "admin socket\n"
	    "           ([control] socket of -c FILE, default %s, or -s "
	    "SOCKET)\n",
	    EVPOP3D_NAME, EVPOP3D_NAME, EVPOP3D_NAME, EVPOP3D_NAME,
	    EVPOP3D_NAME, EVPOP3D_NAME, CTL_DEFAULT_CONFIG);
	exit(status);
}

/*
 * Each session needs a descriptor, two while it sends a message: take
 * the hard limit. Returns the soft limit now in force (0 if unknown).
 */
static rlim_t
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return 0;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t soft = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("setrlimit(RLIMIT_NOFILE)");
			return soft;
		}
	}
	return rl.rlim_cur;
}

/*
 * The descriptors the daemon holds besides two per session (its socket,
 * and the message file while RETR or TOP sends it):
 *
 *	3	stdin, stdout, stderr
 *	4	libevent's epoll descriptor and signal pipe; the session
 *		set's timerfd (its timers and pauses: lib/ptimer.h)
 *	n	a socket per [server] listen address
 *	1	the worker pool's wake-up eventfd
 *	1	the reserve descriptor (server.c: refusals when out of them)
 *	1	the sd_notify socket, for a moment
 *	32	the Maildir driver's directory cache (STORE_CACHED_FDS)
 *	3	per worker thread: the most a store call holds at once
 *		(STORE_CALL_FDS: a Maildir open with %m in uidl_format has
 *		new/, cur/ and a message open; an mbox open or UPDATE the mbox
 *		and its index cache, temporary file or directory); the lock
 *		file, the dotlock and the passwd-file are opened alone
 *
 * so 42 + n + 3 * threads; with the default 2 listeners and 2 threads
 * 50, and 20,050 with max_connections = 10000. (/proc/PID/fd of a daemon
 * with one listener, at start: 10, the first five lines.) Past the limit
 * accept() fails with EMFILE (the server pauses it and refuses the excess
 * through its reserve, see server.c), and so can a RETR's open or a
 * login's scan.
 */
#define NOFILE_FIXED	(3 + 4 + 1 + 1 + 1 + STORE_CACHED_FDS)
#define NOFILE_SESSION	2

/* Does l accept connections from other hosts (not a loopback address)? */
static bool
listen_remote(const struct cfg_listen *l)
{
	return !netaddr_loopback((const struct sockaddr *)&l->addr);
}

/*
 * [auth] plaintext = localhost (the default) without [tls]: clients from
 * other hosts cannot log in at all. Say so at start when a listener takes
 * them, rather than leave it to their failed logins.
 */
static void
check_plaintext(const struct cfg *cfg)
{
	size_t i;

	if (cfg->plaintext != CFG_PLAINTEXT_LOCALHOST || cfg->tls_cert != NULL)
		return;
	for (i = 0; i < cfg->n_listen; i++)
		if (listen_remote(&cfg->listen[i])) {
			log_warnx("event=plaintext-local-only addr=%s "
			    "note=\"[auth] plaintext = localhost and no [tls]: "
			    "only clients on loopback can log in\"",
			    cfg->listen[i].text);
			return;
		}
}

/* One warning line when the limit is below what cfg may need. */
static void
check_nofile(const struct cfg *cfg, rlim_t limit)
{
	unsigned long long	 fixed, need;

	fixed = NOFILE_FIXED + (unsigned long long)cfg->n_listen +
	    (unsigned long long)cfg->threads * STORE_CALL_FDS;
	need = fixed + (unsigned long long)cfg->max_connections *
	    NOFILE_SESSION;
	if (limit == 0 || limit == RLIM_INFINITY || limit >= need) {
		log_debug("event=nofile limit=%llu needed=%llu",
		    (unsigned long long)limit, need);
		return;
	}
	log_warnx("event=nofile-low limit=%llu needed=%llu max_connections=%d "
	    "per_session=%d fixed=%llu sessions_fit=%llu", (unsigned long long)
	    limit, need, cfg->max_connections, NOFILE_SESSION, fixed,
	    limit > fixed ? ((unsigned long long)limit - fixed) /
	    NOFILE_SESSION : 0);
}

/*
 * After the drop: warn about each file that is read again later (the
 * passwd-file when it changes, the certificates and keys on SIGHUP) but
 * that the mail user cannot read. What was loaded at start goes on.
 */
static void
check_readable_after_drop(const struct cfg *cfg)
{
	size_t i;

	if (cfg->passwd_file != NULL)
		(void)privdrop_check_readable("passwd_file",
		    cfg->passwd_file);
	if (cfg->tls_cert == NULL)
		return;
	(void)privdrop_check_readable("tls_cert", cfg->tls_cert);
	(void)privdrop_check_readable("tls_key", cfg->tls_key);
	for (i = 0; i < cfg->n_tls_sni; i++) {
		(void)privdrop_check_readable("tls_cert", cfg->tls_sni[i].cert);
		(void)privdrop_check_readable("tls_key", cfg->tls_sni[i].key);
	}
}

/*
 * The rest of -t, after what a start does first (cfg_load, privdrop and
 * TLS): check the user database as pop3_env_new() will open it, then fail
 * on warnings too: unknown or duplicate keys (cfg->warnings) and users
 * whose password cannot be checked. Returns the exit status, 0 or 1.
 */
static int
check_config(const struct cfg *cfg, const char *path)
{
	char		 err[1024];
	size_t		 unusable, warnings = (size_t)cfg->warnings;

	if (pop3_gen_check(cfg, &unusable, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", EVPOP3D_NAME, path, err);
		return 1;
	}
	warnings += unusable;
	if (warnings > 0) {
		fprintf(stderr, "%s: configuration %s has %zu warning(s)\n",
		    EVPOP3D_NAME, path, warnings);
		return 1;
	}
	printf("%s: configuration %s is valid\n", EVPOP3D_NAME, path);
	return 0;
}

/*
 * A start that fails before serving: for -t a message for the operator
 * at the terminal; for a start an error-level line (to the journal with
 * its priority), then the exit line. Returns the exit status.
 */
static int
startup_error(bool check, const char *step, const char *err)
{
	char q[LOG_QUOTED_SIZE(1024)];

	if (check) {
		fprintf(stderr, "%s: %s\n", EVPOP3D_NAME, err);
		return 1;
	}
	log_errorx("event=startup-failed step=%s error=%s", step,
	    log_quote(q, sizeof(q), err));
	log_errorx("event=exiting reason=startup-failed");
	return 1;
}

/* The last line of a start that failed: an operator sees it stopped. */
static int
startup_failed(void)
{
	log_errorx("event=exiting reason=startup-failed");
	return 1;
}

/* What the signal handlers work on. */
/* The loop's side of the log's backlog (log_watch_start()). */
struct log_watch {
	struct event_base	*base;
	struct event		*timer;		/* every LOG_FLUSH_MS */
	struct event		*ev;		/* fd writable; NULL */
	int			 fd;		/* watched; -1 */
};

struct daemon {
	const char		*path;		/* the configuration file */
	bool			 debug;		/* -d */
	struct cfg		*cfg;		/* the one in force */
	struct server		 srv;
	struct pop3_env		*env;
	struct session_set	*sessions;
	struct session_params	 sp;
	/*
	 * Made when [tls] is first configured, kept to the end: sessions'
	 * hooks point at it. The configuration in force has [tls] when
	 * cfg->tls_cert is set.
	 */
	struct tls_server	*tls;
	struct event		*status;	/* STATUS= for systemd */
	struct log_watch	 logw;		/* lib/log.h's backlog */
	uint64_t		 reloads;
	struct control		*control;	/* NULL: no admin socket */
	struct metrics		*metrics;	/* [metrics] (net/metrics.h) */
	/* [server] workers > 1 (net/supervise.h) */
	struct supervisor	*sup;		/* the supervisor's */
	struct supervise_chan	*chan;		/* a worker's, to it */
	unsigned		 workers;	/* forked at start */
	bool			 notify;	/* a worker's supervisor has
						   NOTIFY_SOCKET */
	struct workers_ctx	 wctx;		/* the supervisor's answers */
};

/* The parts' metrics, as net/metrics.h's sources. */
static void
metrics_server_cb(const void *arg, struct metric_writer *w)
{
	const struct daemon *d = arg;

	server_metrics_write(&d->srv, w);
	metric_family(w, "evpop3d_sent_bytes_total", METRIC_COUNTER,
	    "Octets sent to clients (POP3 bytes, before TLS).");
	metric_u64(w, "evpop3d_sent_bytes_total", NULL, NULL,
	    session_set_bytes_out(d->sessions));
	metric_family(w, "evpop3d_log_dropped_lines_total", METRIC_COUNTER,
	    "Log lines dropped: the journald or syslog socket was full and "
	    "the backlog too.");
	metric_u64(w, "evpop3d_log_dropped_lines_total", NULL, NULL,
	    log_dropped_count());
}

static void
metrics_pop3_cb(const void *arg, struct metric_writer *w)
{
	const struct daemon *d = arg;

	pop3_metrics_write(d->env, w);
}

/*
 * The registry with every part, serving on [metrics] listen if set (cfg
 * NULL: serving nothing, a worker's); a start that cannot have it ends
 * here.
 */
static void
metrics_start(struct daemon *d, struct event_base *base,
    const struct cfg *cfg)
{
	char err[512];

	if ((d->metrics = metrics_new(base)) == NULL ||
	    metrics_add_source(d->metrics, metrics_server_cb, d) == -1 ||
	    metrics_add_source(d->metrics, metrics_pop3_cb, d) == -1)
		exit(startup_error(false, "metrics", strerror(errno)));
	if (cfg != NULL && metrics_reconfigure(d->metrics, cfg->metrics_listen,
	    err, sizeof(err)) == -1)
		exit(startup_error(false, "metrics-listen", err));
}

/* The counters of every part: info level (SIGUSR1), or debug (at exit). */
static void
stats_log(const struct daemon *d, bool debug)
{
	server_stats_log(&d->srv, debug);
	pop3_stats_log(d->env, debug);
}

/* The session parameters cfg asks for. */
static void
daemon_params(struct daemon *d, const struct cfg *cfg)
{
	d->sp = (struct session_params){ .proto = &pop3_proto, .arg = d->env,
	    .line_max = POP3_LINE_MAX,
	    .write_timeout = (unsigned)cfg->write_timeout,
	    .handshake_timeout = (unsigned)cfg->login_timeout,
	    .logout = cfg->log_logout };
	if (cfg->tls_cert != NULL)
		tls_session_hooks(d->tls, &d->sp.tls);
}

/* Live counts for `systemctl status` (STATUS=), every few seconds. */
#define STATUS_INTERVAL_S	5

/*
 * The log's backlog (lib/log.h): lines a full journald or syslog socket
 * did not take wait there, never on the loop. While some wait, the loop
 * watches that socket and sends them as soon as it takes more; a timer
 * a second notices lines queued since (the next line sends them too).
 */
static void	log_watch_update(struct log_watch *);

static void
log_watch_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	log_flush();
	log_watch_update(arg);
}

/* Watch the socket the backlog waits for, or nothing. */
static void
log_watch_update(struct log_watch *w)
{
	int fd = log_backlog_fd();

	if (fd == w->fd)
		return;
	if (w->ev != NULL)
		event_free(w->ev);
	w->ev = NULL;
	w->fd = fd;
	if (fd != -1 && (w->ev = event_new(w->base, fd, EV_WRITE | EV_PERSIST,
	    log_watch_cb, w)) != NULL)
		event_add(w->ev, NULL);
	else
		w->fd = -1;
}

/*
 * Start w on base (a forked worker's copy of its supervisor's was freed
 * by sup_child_cleanup()).
 */
static void
log_watch_start(struct log_watch *w, struct event_base *base)
{
	struct timeval tv = { .tv_sec = LOG_FLUSH_MS / 1000,
	    .tv_usec = LOG_FLUSH_MS % 1000 * 1000 };

	w->base = base;
	w->ev = NULL;
	w->fd = -1;
	if ((w->timer = event_new(base, -1, EV_PERSIST, log_watch_cb, w)) !=
	    NULL)
		event_add(w->timer, &tv);
}

static void
log_watch_stop(struct log_watch *w)
{
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->timer != NULL)
		event_free(w->timer);
	w->ev = w->timer = NULL;
}

static void
status_cb(evutil_socket_t fd, short events, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)events;
	if (d->chan != NULL) {
		/* A worker: its supervisor sums them (net/supervise.h). */
		supervise_chan_status(d->chan, session_set_count(d->sessions),
		    pop3_logged_in(d->env), d->srv.stats.connections);
		return;
	}
	sd_notifyf(0, "STATUS=%zu sessions, %zu logged in; %llu connections, "
	    "%llu reloads since start", session_set_count(d->sessions),
	    pop3_logged_in(d->env), (unsigned long long)d->srv.stats.connections,
	    (unsigned long long)d->reloads);
}

/* The settings a reload cannot change, being applied once at start. */
static void
reload_restart_needed(const struct cfg *old, const struct cfg *cfg)
{
	if (strcmp(old->user, cfg->user) != 0 ||
	    strcmp(old->group, cfg->group) != 0 ||
	    old->allow_root != cfg->allow_root)
		log_warnx("event=reload-restart-needed key=\"[server] user, "
		    "group, allow_root\" note=\"the privileges were dropped "
		    "at start\"");
	if (strcmp(old->control_socket, cfg->control_socket) != 0 ||
	    old->control_mode != cfg->control_mode)
		log_warnx("event=reload-restart-needed key=\"[control] socket, "
		    "mode\" note=\"the admin socket was bound at start\"");
	if (old->workers != cfg->workers)
		log_warnx("event=reload-restart-needed key=\"[server] "
		    "workers\" note=\"the processes were set up at start\"");
	if ((size_t)cfg->max_connections > shlimits_max_connections() ||
	    (size_t)cfg->penalty_table_size > shlimits_table_size())
		log_warnx("event=reload-restart-needed key=\"[server] "
		    "max_connections, [auth] penalty_table_size\" "
		    "note=\"the shared limit tables were sized at start for "
		    "%zu and %zu\"", shlimits_max_connections(),
		    shlimits_table_size());
}

/*
 * The end of a reload that has succeeded, in a daemon, a worker and a
 * supervisor alike: the [log] settings, the metrics endpoint (not in a
 * worker), then cfg becomes the running configuration.
 */
static void
reload_apply(struct daemon *d, struct cfg *cfg)
{
	struct log_params	lp;
	char			merr[512], q[LOG_QUOTED_SIZE(512)];

	cfg_log_params(cfg, &lp);
	lp.debug = d->debug || cfg->log_debug;
	log_configure(&lp);
	/* Binds the new address before it lets the old one go; a worker
	 * serves none (its supervisor does). */
	if (!proc_is_worker() && metrics_reconfigure(d->metrics,
	    cfg->metrics_listen, merr, sizeof(merr)) == -1)
		log_errorx("event=metrics-listen-failed error=%s note=\"the "
		    "endpoint stays as it was\"", log_quote(q, sizeof(q), merr));
	cfg_free(d->cfg);
	d->cfg = cfg;
	d->reloads++;
}

/*
 * A reload's TLS state for cfg: none (no certificate), a new server
 * (*made_r: there was none), or d->tls with the new contexts prepared;
 * *tls_r is the one in force after reload_tls_commit(). Either that or
 * reload_tls_abort() ends it. -1 with a reason in err.
 */
static int
reload_tls_prepare(struct daemon *d, const struct cfg *cfg,
    struct tls_server **made_r, struct tls_server **tls_r, char *err,
    size_t errlen)
{
	*made_r = *tls_r = NULL;
	if (cfg->tls_cert == NULL)
		return 0;
	if (d->tls == NULL) {
		if (tls_server_new(cfg, made_r, err, errlen) == -1)
			return -1;
		*tls_r = *made_r;
		return 0;
	}
	if (tls_server_prepare(d->tls, cfg, err, errlen) == -1)
		return -1;
	*tls_r = d->tls;
	return 0;
}

static void
reload_tls_commit(struct daemon *d, struct tls_server *made,
    struct tls_server *tls)
{
	if (made != NULL)
		d->tls = made;
	else if (tls != NULL)
		tls_server_commit(tls);
}

static void
reload_tls_abort(struct daemon *d, struct tls_server *made)
{
	tls_server_abort(d->tls);
	tls_server_free(made);
}

/*
 * SIGHUP (and the admin socket's reload): read the configuration file
 * again and apply all of it, or none: the passwd-file, the TLS
 * certificates and keys, the listeners (kept, added, closed), limits
 * and timeouts. Sessions from now on start with the new settings;
 * running ones keep theirs. Anything that fails leaves the running
 * configuration as it was, with an error line. Returns 0 or -1 (err).
 */
static int
daemon_reload(struct daemon *d, char *err, size_t errlen)
{
	struct cfg		*cfg = NULL;
	struct pop3_gen		*gen = NULL;
	struct tls_server	*made = NULL, *tls = NULL;
	char			 q[LOG_QUOTED_SIZE(1024)];

	sd_notifyf(0, "RELOADING=1\nSTATUS=Reloading %s\nMONOTONIC_USEC=%llu",
	    d->path, (unsigned long long)mono_us());
	log_info("event=reload path=%s", d->path);
	if (cfg_load(d->path, &cfg, err, errlen) == -1 ||
	    reload_tls_prepare(d, cfg, &made, &tls, err, errlen) == -1)
		goto fail;
	if (pop3_gen_new(d->env, cfg, &gen, err, errlen) == -1)
		goto fail;
	if (server_reconfigure(&d->srv, cfg, tls) == -1) {
		snprintf(err, errlen, "%s: a listener could not be set up "
		    "(see the listen-failed line)", d->path);
		goto fail;
	}

	/* Nothing fails from here on. */
	if (!proc_is_worker())		/* else the supervisor says it */
		reload_restart_needed(d->cfg, cfg);
	reload_tls_commit(d, made, tls);
	pop3_env_reload(d->env, gen);
	daemon_params(d, cfg);
	session_set_params(d->sessions, &d->sp);
	reload_apply(d, cfg);
	check_plaintext(cfg);
	log_info("event=reload result=ok listeners=%zu tls=%s warnings=%d",
	    d->srv.n_listeners, tls != NULL ? "yes" : "no", cfg->warnings);
	sd_notify(0, "READY=1");
	supervise_chan_ready(d->chan);
	status_cb(-1, 0, d);
	return 0;
fail:
	reload_tls_abort(d, made);
	pop3_gen_unref(gen);
	cfg_free(cfg);
	log_errorx("event=reload result=failed error=%s note=\"the running "
	    "configuration stays in force\"", log_quote(q, sizeof(q), err));
	sd_notify(0, "READY=1");
	supervise_chan_ready(d->chan);
	status_cb(-1, 0, d);
	return -1;
}

/* ------------------------------------------------ the admin socket */

/* who [-1] */
static int
control_who(struct control_req *req, void *arg)
{
	struct daemon	*d = arg;
	bool		 verbose = strcmp(req->arg, "-1") == 0;
	long		 n;

	if (req->arg[0] != '\0' && !verbose) {
		snprintf(req->err, sizeof(req->err), "usage: who [-1]");
		return -1;
	}
	if ((n = pop3_admin_who(d->sessions, req->out, verbose)) == -1) {
		snprintf(req->err, sizeof(req->err), "out of memory");
		return -1;
	}
	snprintf(req->log, sizeof(req->log), "%s=%ld", verbose ? "sessions" :
	    "users", n);
	return 0;
}

/* kick USER: nonzero (ERR) when the user had no session to close. */
static int
control_kick(struct control_req *req, void *arg)
{
	struct daemon	*d = arg;
	char		 q[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	char		 name[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	size_t		 kicked, updating;

	kicked = pop3_admin_kick(d->sessions, req->arg, &updating);
	snprintf(req->log, sizeof(req->log), "user=%s kicked=%zu "
	    "updating=%zu", log_quote(q, sizeof(q), req->arg), kicked,
	    updating);
	pop3_admin_name(name, sizeof(name), req->arg);
	if (kicked == 0 && updating == 0) {
		snprintf(req->err, sizeof(req->err), "no session of %.200s to "
		    "kick", name);
		return -1;
	}
	evbuffer_add_printf(req->out, "kicked %zu session(s) of %s\n",
	    kicked, name);
	if (updating > 0)
		evbuffer_add_printf(req->out, "%zu session(s) of %s in UPDATE "
		    "close when it is done\n", updating, name);
	return 0;
}

/* stats: the metrics, as GET /metrics would give them (text format). */
static int
control_stats(struct control_req *req, void *arg)
{
	struct daemon *d = arg;

	metrics_render(d->metrics, req->out, METRIC_TEXT);
	return 0;
}

static int
control_reload(struct control_req *req, void *arg)
{
	return daemon_reload(arg, req->err, sizeof(req->err));
}

static const struct control_cmd control_cmds[] = {
	{ "who",	CONTROL_ARG_OPTIONAL,	control_who },
	{ "kick",	CONTROL_ARG_REQUIRED,	control_kick },
	{ "stats",	CONTROL_ARG_NONE,	control_stats },
	{ "reload",	CONTROL_ARG_NONE,	control_reload },
};

static void
signal_cb(evutil_socket_t sig, short events, void *arg)
{
	struct daemon	*d = arg;
	char		 err[1024];

	(void)events;
	if (sig == SIGUSR1) {
		stats_log(d, false);
		return;
	}
	if (sig == SIGHUP) {
		log_info("event=sighup");
		(void)daemon_reload(d, err, sizeof(err));
		return;
	}
	if (!d->srv.stopping)
		sd_notifyf(0, "STOPPING=1\nSTATUS=Stopping: %zu sessions",
		    session_set_count(d->sessions));
	server_stop(&d->srv);
}

/* Read one line from stdin, without echo when it is a terminal. */
static int
read_password(const char *prompt, char *buf, size_t len)
{
	struct termios	 old, noecho;
	bool		 tty = isatty(STDIN_FILENO);
	size_t		 n;
	char		*ok;

	if (tty) {
		fputs(prompt, stderr);
		tcgetattr(STDIN_FILENO, &old);
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	}
	ok = fgets(buf, (int)len, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (ok == NULL)
		return -1;
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	return 0;
}

/*
 * `evpop3d hash [-s SCHEME] [-r ROUNDS]`, like `doveadm pw`: read a
 * password (twice, without echo, on a terminal) and print its hash,
 * {SHA512-CRYPT} unless told otherwise. An empty password is refused.
 */
static int
cmd_hash(int argc, char *argv[])
{
	char		 pw[1024], again[1024], err[256], *hash, *end;
	const char	*scheme = "SHA512-CRYPT";
	unsigned long	 rounds = 0;
	int		 ch, ret = 1;

	optind = 1;
	while ((ch = getopt(argc, argv, "r:s:")) != -1) {
		switch (ch) {
		case 'r':
			errno = 0;
			rounds = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' ||
			    *end != '\0' || errno != 0) {
				fprintf(stderr, "%s: hash: bad rounds '%s'\n",
				    EVPOP3D_NAME, optarg);
				return 2;
			}
			break;
		case 's':
			scheme = optarg;
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	memset(again, 0, sizeof(again));
	if (read_password("Enter new password: ", pw, sizeof(pw)) == -1) {
		fprintf(stderr, "%s: no password given\n", EVPOP3D_NAME);
		return 1;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "%s: empty password refused\n", EVPOP3D_NAME);
		goto out;
	}
	if (isatty(STDIN_FILENO)) {
		if (read_password("Retype new password: ", again,
		    sizeof(again)) == -1 || strcmp(pw, again) != 0) {
			fprintf(stderr, "%s: passwords don't match\n",
			    EVPOP3D_NAME);
			goto out;
		}
	}
	if ((hash = auth_password_hash_scheme(scheme, rounds, pw, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s: hash: %s\n", EVPOP3D_NAME, err);
		goto out;
	}
	printf("%s\n", hash);
	free(hash);
	ret = 0;
out:
	auth_wipe(pw, sizeof(pw));
	auth_wipe(again, sizeof(again));
	return ret;
}

/*
 * The loop's base. No evthread_use_pthreads(): worker threads never
 * touch libevent (results come back through an eventfd), so the base
 * needs no locks.
 *
 * libevent's timers stay on its coarse clock (a jiffy, 4 ms) with
 * millisecond epoll timeouts: deadlines, idle limits and back-offs need
 * no more. The one wait that must be exact, a failed login answered
 * failure_delay after its command (else the answer's phase against the
 * clock ticks shows how long the password check took), is a pause on
 * the session set's own timerfd (lib/ptimer.h). The base's flag
 * EVENT_BASE_FLAG_PRECISE_TIMER made every timer precise, at the cost of
 * a timerfd_settime() on every loop iteration with a timer pending (12 %
 * of a `full` session's system calls). NULL after logging why.
 */
static struct event_base *
base_new(void)
{
	struct event_base *base;

	if ((base = event_base_new()) == NULL)
		log_errorx("event=startup-failed step=event-base");
	return base;
}

/* A worker's supervisor has gone (SIGKILL too): drain, as at SIGTERM. */
static void
worker_orphaned(void *arg)
{
	struct daemon *d = arg;

	if (!d->srv.stopping)
		server_stop(&d->srv);
}

/* An admin connection from the supervisor: served as if accepted. */
static void
worker_adopt(void *arg, int fd)
{
	struct daemon *d = arg;

	control_adopt(d->control, fd);
}

/*
 * Serve: today's daemon loop. Alone (chan -1): bind the listeners and
 * the admin socket, serve [metrics], drop the privileges with pd. As a
 * worker of a supervisor (net/supervise.h): on the listening sockets
 * socks[0..n_socks) it was given, with the admin requests arriving on
 * chan; the supervisor did the rest, privileges dropped already, and
 * signals are blocked until this process handles them. Frees d's
 * parts; returns the exit status.
 */
static int
daemon_serve(struct daemon *d, struct privdrop *pd,
    const struct server_socket *socks, size_t n_socks, int chan)
{
	struct event_base	*base;
	struct event		*sigs[4];
	struct cfg		*cfg = d->cfg;
	char			 err[1024];
	int			 i, ret, ctl_fd = -1;
	const int		 signos[4] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct timeval		 status_tv = { .tv_sec = STATUS_INTERVAL_S };
	sigset_t		 none;
	bool			 worker = chan != -1;

	if ((base = base_new()) == NULL) {
		tls_server_free(d->tls);
		cfg_free(cfg);
		return startup_failed();
	}
	if (pop3_env_new(base, cfg, &d->env) == -1) {
		event_base_free(base);
		tls_server_free(d->tls);
		cfg_free(cfg);
		return startup_failed();
	}
	daemon_params(d, cfg);
	if ((d->sessions = session_set_new(base, &d->sp)) == NULL)
		log_error("event=startup-failed step=sessions");
	if (d->sessions == NULL || (worker ? server_init_given(&d->srv, base,
	    cfg, d->sessions, d->tls, socks, n_socks) : server_init(&d->srv,
	    base, cfg, d->sessions, d->tls)) == -1) {
		if (d->sessions != NULL)
			server_free(&d->srv);
		session_set_free(d->sessions);
		pop3_env_free(d->env);
		event_base_free(base);
		tls_server_free(d->tls);
		cfg_free(cfg);
		return startup_failed();
	}
	/*
	 * The admin socket, bound as the user who starts us (root: only
	 * root may use it with mode 0600) before the drop; served after.
	 * A worker serves only what its supervisor hands over.
	 */
	if (!worker && cfg->control_socket[0] != '\0' && (ctl_fd =
	    control_bind(cfg->control_socket, cfg->control_mode, err,
	    sizeof(err))) == -1) {
		session_set_free(d->sessions);
		server_free(&d->srv);
		pop3_env_free(d->env);
		event_base_free(base);
		tls_server_free(d->tls);
		cfg_free(cfg);
		return startup_error(false, "control", err);
	}
	if ((ctl_fd != -1 || worker) && (d->control = control_new(base,
	    ctl_fd, worker ? "supervisor" : cfg->control_socket, control_cmds,
	    sizeof(control_cmds) / sizeof(control_cmds[0]), d)) == NULL) {
		log_errorx("event=startup-failed step=control");
		fatalx("event=exiting reason=startup-failed");
	}
	metrics_start(d, base, worker ? NULL : cfg);
	for (i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(base, signos[i], signal_cb, d);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1) {
			log_errorx("event=startup-failed step=signals");
			fatalx("event=exiting reason=startup-failed");
		}
	}
	if (worker) {
		/* Blocked since the fork (supervise.c); handled now. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if ((d->chan = supervise_chan_new(base, chan, worker_adopt,
		    worker_orphaned, d)) == NULL) {
			log_errorx("event=startup-failed step=channel");
			fatalx("event=exiting reason=startup-failed");
		}
		log_info("event=worker-ready pid=%ld listeners=%zu",
		    (long)getpid(), d->srv.n_listeners);
		supervise_chan_ready(d->chan);
	} else {
		/* Bound, keys and passwd-file read: serve no client as root. */
		if (privdrop_apply(pd, err, sizeof(err)) == -1)
			exit(startup_error(false, "privdrop", err));
		if (pd->drop)
			check_readable_after_drop(cfg);
		log_info("event=ready version=%s listeners=%zu tls=%s%s",
		    EVPOP3D_VERSION, d->srv.n_listeners, d->tls != NULL ?
		    "yes" : "no", d->srv.inherited ? " sockets=systemd" : "");
		sd_notify(0, "READY=1");
	}
	/* systemctl status: live counts, when systemd listens (to the
	 * supervisor of a worker). */
	if ((getenv("NOTIFY_SOCKET") != NULL || d->notify) &&
	    (d->status = event_new(base, -1, EV_PERSIST, status_cb, d)) !=
	    NULL) {
		status_cb(-1, 0, d);
		event_add(d->status, &status_tv);
	}
	log_watch_start(&d->logw, base);

	ret = event_base_dispatch(base) == -1 ? 1 : 0;

	if (log_debug_enabled())
		stats_log(d, true);
	metrics_free(d->metrics);
	/* Sessions first: their release jobs go to the pool, which the
	 * environment then drains, and they leave the server's per-address
	 * counts when freed. */
	control_free(d->control);
	supervise_chan_free(d->chan);
	session_set_free(d->sessions);
	server_free(&d->srv);
	pop3_env_free(d->env);
	for (i = 0; i < 4; i++)
		event_free(sigs[i]);
	if (d->status != NULL)
		event_free(d->status);
	log_watch_stop(&d->logw);
	event_base_free(base);
	tls_server_free(d->tls);
	log_info("event=stopped");
	shlimits_free();
	cfg_free(d->cfg);
	libevent_global_shutdown();
	return ret;
}

/* ----------------------------------------- the supervisor (workers > 1) */

/*
 * A reaped worker's references in the per-host limit tables go back
 * (lib/shlimits.h) before another worker takes its index.
 */
static void
sup_reclaim(void *arg, unsigned index)
{
	(void)arg;
	shlimits_reclaim(index);
}

/* In a worker just forked: the supervisor's admin socket and metrics go. */
static void
sup_child_cleanup(void *arg)
{
	struct daemon *d = arg;

	control_disown(d->control);
	control_free(d->control);
	d->control = NULL;
	metrics_free(d->metrics);
	d->metrics = NULL;
	/*
	 * A worker restarted after the start inherits the supervisor's log
	 * watch, which daemon_serve() starts anew: freed here, not lost
	 * (LeakSanitizer saw the lost timer in test_workers ReloadTLS).
	 */
	log_watch_stop(&d->logw);
}

/* The child's life as worker index; never returns. */
static void
sup_worker(void *arg, unsigned index, const struct server_socket *socks,
    size_t n, int chan)
{
	struct daemon *d = arg;

	proc_set_worker(index, d->workers);
	/* Only the supervisor talks to systemd (NotifyAccess=main). */
	d->notify = getenv("NOTIFY_SOCKET") != NULL;
	(void)unsetenv("NOTIFY_SOCKET");
	exit(daemon_serve(d, NULL, socks, n, chan));
}

/* Did the listeners change between old and cfg? */
static bool
listeners_changed(const struct cfg *old, const struct cfg *cfg)
{
	size_t i;

	if (old->n_listen != cfg->n_listen ||
	    old->n_listen_tls != cfg->n_listen_tls ||
	    (old->tls_cert == NULL) != (cfg->tls_cert == NULL))
		return true;
	for (i = 0; i < cfg->n_listen; i++)
		if (strcmp(old->listen[i].text, cfg->listen[i].text) != 0)
			return true;
	for (i = 0; i < cfg->n_listen_tls; i++)
		if (strcmp(old->listen_tls[i].text, cfg->listen_tls[i].text) != 0)
			return true;
	return false;
}

/*
 * supervise_hooks.reload: the supervisor's part of a reload. The whole
 * configuration is checked as a worker's reload will use it (the file,
 * the TLS certificates and keys, the user database), so that a bad one
 * is refused once, here, and never reaches the workers. The supervisor's
 * TLS contexts are reloaded as well: a worker forked later inherits
 * them. 0, or -1 with a reason in err.
 */
static int
sup_reload(void *arg, char *err, size_t errlen)
{
	struct daemon		*d = arg;
	struct cfg		*cfg = NULL;
	struct tls_server	*made = NULL, *tls = NULL;
	size_t			 unusable;
	char			 q[LOG_QUOTED_SIZE(1024)];

	log_info("event=reload path=%s", d->path);
	if (cfg_load(d->path, &cfg, err, errlen) == -1 ||
	    reload_tls_prepare(d, cfg, &made, &tls, err, errlen) == -1)
		goto fail;
	if (pop3_gen_check(cfg, &unusable, err, errlen) == -1)
		goto fail;

	/* Nothing fails from here on. */
	reload_restart_needed(d->cfg, cfg);
	if (listeners_changed(d->cfg, cfg))
		log_warnx("event=reload-restart-needed key=\"[server] listen, "
		    "listen_tls\" note=\"with workers > 1 the listeners were "
		    "bound at start\"");
	reload_tls_commit(d, made, tls);
	reload_apply(d, cfg);
	log_info("event=reload result=ok warnings=%d", cfg->warnings);
	return 0;
fail:
	reload_tls_abort(d, made);
	cfg_free(cfg);
	log_errorx("event=reload result=failed error=%s note=\"the running "
	    "configuration stays in force in every worker\"",
	    log_quote(q, sizeof(q), err));
	return -1;
}

/*
 * [server] workers > 1: bind, check, drop the privileges, fork the
 * workers and supervise them (net/supervise.h) until they have all
 * exited. Returns the exit status.
 */
static int
supervisor_main(struct daemon *d, struct privdrop *pd)
{
	static struct supervise_hooks hooks = {
		.worker = sup_worker,
		.reload = sup_reload,
		.reclaim = sup_reclaim,
		.child_cleanup = sup_child_cleanup,
	};
	struct event_base	*base;
	struct cfg		*cfg = d->cfg;
	char			 err[1024];
	size_t			 unusable;
	int			 ctl_fd = -1, ret;

	hooks.arg = d;
	d->workers = (unsigned)cfg->workers;
	/* main() has loaded the TLS certificates and keys from cfg. */
	if (pop3_gen_check(cfg, &unusable, err, sizeof(err)) == -1)
		return startup_error(false, "config", err);
	if ((base = base_new()) == NULL)
		return startup_failed();
	if ((d->sup = supervise_new(cfg, d->workers,
	    d->tls != NULL)) == NULL) {
		event_base_free(base);
		return startup_failed();
	}
	if (cfg->control_socket[0] != '\0' && ((ctl_fd = control_bind(
	    cfg->control_socket, cfg->control_mode, err, sizeof(err))) == -1))
		exit(startup_error(false, "control", err));
	d->wctx.sup = d->sup;
	if (ctl_fd != -1 && (d->control = control_new(base, ctl_fd,
	    cfg->control_socket, workers_control_cmds, workers_n_control_cmds,
	    &d->wctx)) == NULL)
		exit(startup_error(false, "control", "out of memory"));
	if ((d->metrics = metrics_new(base)) == NULL)
		exit(startup_error(false, "metrics", strerror(errno)));
	d->wctx.metrics = d->metrics;
	metrics_set_fetch(d->metrics, workers_metrics_fetch, &d->wctx);
	if (metrics_reconfigure(d->metrics, cfg->metrics_listen, err,
	    sizeof(err)) == -1)
		exit(startup_error(false, "metrics-listen", err));
	if (privdrop_apply(pd, err, sizeof(err)) == -1)
		exit(startup_error(false, "privdrop", err));
	if (pd->drop)
		check_readable_after_drop(cfg);
	if (supervise_start(d->sup, base, &hooks) == -1)
		exit(startup_error(false, "workers", "no worker could be "
		    "started"));
	log_watch_start(&d->logw, base);

	ret = event_base_dispatch(base) == -1 ? 1 : 0;

	control_free(d->control);
	metrics_free(d->metrics);
	supervise_free(d->sup);
	log_watch_stop(&d->logw);
	event_base_free(base);
	tls_server_free(d->tls);
	log_info("event=stopped workers=%u", d->workers);
	shlimits_free();
	cfg_free(d->cfg);
	libevent_global_shutdown();
	return ret;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct daemon		 d;
	struct cfg		*cfg;
	struct privdrop		 pd;
	struct log_params	 lp;
	const char		*path = NULL;
	char			 err[1024];
	bool			 check = false, debug = false;
	int			 ch, ret;

	if (argc >= 2 && strcmp(argv[1], "hash") == 0)
		return cmd_hash(argc - 1, argv + 1);
	if (argc >= 2 && ctl_command(argv[1]))
		return ctl_main(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:dht", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 't':
			check = true;
			break;
		case 'V':
			printf("%s %s\n", EVPOP3D_NAME, EVPOP3D_VERSION);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (path == NULL || optind != argc)
		usage(2);

	log_init(debug);
	if (cfg_load(path, &cfg, err, sizeof(err)) == -1)
		return startup_error(check, "config", err);
	/* From here on, [log] says where lines go (target, facility). */
	cfg_log_params(cfg, &lp);
	lp.debug = debug || cfg->log_debug;
	if (!check)
		log_configure(&lp);
	if (privdrop_prepare(cfg->user, cfg->group, cfg->allow_root, &pd, err,
	    sizeof(err)) == -1) {
		char what[sizeof(err) + 256];

		snprintf(what, sizeof(what), "%s: %s", path, err);
		cfg_free(cfg);
		return startup_error(check, "privdrop", what);
	}
	/* -t too: a certificate or key that does not load is an error. */
	memset(&d, 0, sizeof(d));
	d.path = path;
	d.debug = debug;
	d.cfg = cfg;
	if (tls_server_new(cfg, &d.tls, err, sizeof(err)) == -1) {
		cfg_free(cfg);
		return startup_error(check, "tls", err);
	}
	if (check) {
		ret = check_config(cfg, path);
		tls_server_free(d.tls);
		cfg_free(cfg);
		return ret;
	}
	check_nofile(cfg, raise_nofile());
	check_plaintext(cfg);
	/*
	 * The per-host limits' shared tables (lib/shlimits.h), for every
	 * worker process: made once, before anything forks or threads.
	 */
	if (shlimits_init((size_t)cfg->max_connections,
	    (size_t)cfg->penalty_table_size, (unsigned)cfg->workers, err,
	    sizeof(err)) == -1) {
		tls_server_free(d.tls);
		cfg_free(cfg);
		return startup_error(false, "shared-limits", err);
	}
	signal(SIGPIPE, SIG_IGN);
	/* RLIMIT_FSIZE: a write past it fails with EFBIG (an mbox rewrite
	 * then keeps the old file) instead of killing the daemon. */
	signal(SIGXFSZ, SIG_IGN);
	if (cfg->workers > 1)
		return supervisor_main(&d, &pd);
	return daemon_serve(&d, &pd, NULL, 0, -1);
}
