/*
 * supervise: the supervisor of [server] workers (supervise.h): forks,
 * reaps, restarts with back-off, forwards signals, and asks the workers
 * what the admin socket and the metrics endpoint want to know. Nothing
 * of it is on a session's path: the workers accept on their own sockets.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/netaddr.h"
#include "net/control.h"
#include "net/server.h"
#include "net/supervise.h"

/* The channel's messages: one byte each (supervise.h). */
#define CHAN_READY	'R'
#define CHAN_CONN	'C'
#define CHAN_STATUS	'S'	/* then struct chan_status */

/* A worker's live counts, for STATUS= (supervise_chan_status()). */
struct chan_status {
	char		tag;
	uint64_t	sessions, logged_in, connections;
};

/*
 * A CHAN_CONN message as both ends frame it: the tag octet, and one
 * descriptor (SCM_RIGHTS) in the control buffer. chan_msg_init() points
 * the msghdr at the struct's own fields, so it must not be copied.
 */
struct chan_msg {
	struct msghdr	 msg;
	struct iovec	 iov;
	char		 tag;
	union {
		struct cmsghdr	hdr;	/* aligns buf */
		char		buf[CMSG_SPACE(sizeof(int))];
	}		 cbuf;		/* last: clang sees its size as variable */
};

struct sup_worker {
	struct supervisor	*sup;
	unsigned		 index;
	pid_t			 pid;		/* 0: not running */
	int			 chan;		/* our end; -1 */
	struct event		*chan_ev;
	struct event		*restart;	/* the back-off timer */
	uint64_t		 started_ms;
	unsigned		 backoff_s;	/* the next quick death's wait */
	unsigned		 ready:1;
	struct chan_status	 status;	/* its last counts */
};

struct sup_ask;

/* One worker's part of an ask: its connection and what it said. */
struct sup_ask_conn {
	struct sup_ask		*ask;
	struct bufferevent	*bev;		/* NULL: done */
	struct evbuffer		*raw;		/* the whole reply */
};

struct sup_ask {
	TAILQ_ENTRY(sup_ask)	 entry;
	struct supervisor	*sup;
	supervise_answer_fn	*fn;
	void			*arg;
	struct event		*timer;
	struct sup_ask_conn	*conns;		/* [sup->n] */
	size_t			 pending;
};

struct supervisor {
	struct event_base		*base;
	const struct supervise_hooks	*hooks;
	unsigned			 n;
	struct sup_worker		*w;		/* [n] */
	/* [n * n_addr], worker i's from i * n_addr; shared: [n_addr] */
	struct server_socket		*socks;
	size_t				 n_addr;
	bool				 shared;	/* systemd's sockets */
	struct event			*sigs[5];
	TAILQ_HEAD(, sup_ask)		 asks;
	bool				 stopping;
	bool				 ready;		/* READY=1 sent */
	bool				 reloading;	/* RELOADING=1 sent */
	uint64_t			 restarts;
};

static void	worker_spawn(struct sup_worker *w);

/* ---------------------------------------------------------- listeners */

/*
 * systemd's sockets (socket activation), shared by every worker: as
 * server.c takes them (FileDescriptorName pop3, pop3s or none). 0: not
 * activated; -1 after logging why.
 */
static int
sup_inherited(struct supervisor *sup, bool tls)
{
	ssize_t	 n;

	if ((n = server_systemd_sockets(tls, &sup->socks)) <= 0)
		return (int)n;
	sup->n_addr = (size_t)n;
	sup->shared = true;
	return (int)n;
}

/*
 * A socket per worker on conf's address, all with SO_REUSEPORT and
 * listening: socks[i * stride] for worker i. Port 0: the first gets one
 * from the kernel, the others take the same. -1 after logging why (what
 * was bound is closed).
 */
static int
sup_bind(struct supervisor *sup, const struct cfg_listen *conf, bool tls,
    struct server_socket *socks, size_t stride)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = conf->addrlen;
	const char		*step;
	char			 text[80];
	unsigned		 i;
	int			 fd;

	memcpy(&ss, &conf->addr, conf->addrlen);
	for (i = 0; i < sup->n; i++) {
		if ((fd = netaddr_bind_reuseport((struct sockaddr *)&ss, sslen,
		    &step)) == -1 || listen(fd, SERVER_LISTEN_BACKLOG) == -1) {
			if (fd != -1) {
				step = "listen";
				close(fd);
			}
			log_error("event=listen-failed addr=%s step=%s",
			    conf->text, step);
			while (i-- > 0)
				close(socks[i * stride].fd);
			return -1;
		}
		socks[i * stride].fd = fd;
		socks[i * stride].tls = tls;
		if (i == 0) {
			sslen = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &sslen) ==
			    -1) {
				log_error("event=listen-failed addr=%s "
				    "step=getsockname", conf->text);
				close(fd);
				return -1;
			}
		}
	}
	(void)netaddr_text((struct sockaddr *)&ss, sslen, text, sizeof(text));
	log_info("event=listen addr=%s%s workers=%u sockets=reuseport", text,
	    tls ? " tls=implicit" : "", sup->n);
	return 0;
}

struct supervisor *
supervise_new(const struct cfg *cfg, unsigned n, bool tls)
{
	struct supervisor	*sup;
	size_t			 a, i;
	int			 rc;

	if ((sup = calloc(1, sizeof(*sup))) == NULL ||
	    (sup->w = calloc(n, sizeof(*sup->w))) == NULL) {
		log_error("event=startup-failed step=supervisor");
		free(sup);
		return NULL;
	}
	sup->n = n;
	TAILQ_INIT(&sup->asks);
	for (i = 0; i < n; i++) {
		sup->w[i].sup = sup;
		sup->w[i].index = (unsigned)i;
		sup->w[i].chan = -1;
	}
	if ((rc = sup_inherited(sup, tls)) != 0) {
		if (rc == -1) {
			supervise_free(sup);
			return NULL;
		}
		log_info("event=listen-shared sockets=%zu workers=%u "
		    "from=systemd", sup->n_addr, n);
		return sup;
	}
	sup->n_addr = cfg->n_listen + (tls ? cfg->n_listen_tls : 0);
	if ((sup->socks = calloc(sup->n_addr * n + 1, sizeof(*sup->socks)))
	    == NULL) {
		log_error("event=listen-failed step=alloc");
		supervise_free(sup);
		return NULL;
	}
	for (i = 0; i < sup->n_addr * n; i++)
		sup->socks[i].fd = -1;
	for (a = 0; a < sup->n_addr; a++) {
		bool is_tls = a >= cfg->n_listen;

		if (sup_bind(sup, is_tls ? &cfg->listen_tls[a - cfg->n_listen] :
		    &cfg->listen[a], is_tls, &sup->socks[a], sup->n_addr) == -1) {
			supervise_free(sup);
			return NULL;
		}
	}
	return sup;
}

/* ------------------------------------------------------------ workers */

unsigned
supervise_running(const struct supervisor *sup)
{
	unsigned i, n = 0;

	for (i = 0; i < sup->n; i++)
		n += sup->w[i].pid != 0;
	return n;
}

uint64_t
supervise_restarts(const struct supervisor *sup)
{
	return sup->restarts;
}

/* Every worker has said it is ready: READY=1 (again after a reload). */
static void
sup_check_ready(struct supervisor *sup)
{
	unsigned i;

	if (sup->stopping)
		return;
	for (i = 0; i < sup->n; i++)
		if (!sup->w[i].ready)
			return;
	if (!sup->ready) {
		sup->ready = true;
		log_info("event=ready version=%s workers=%u sockets=%s",
		    EVPOP3D_VERSION, sup->n, sup->shared ? "systemd" :
		    "reuseport");
	} else if (!sup->reloading)
		return;
	sup->reloading = false;
	sd_notifyf(0, "READY=1\nSTATUS=%u workers, %llu restarts",
	    supervise_running(sup), (unsigned long long)sup->restarts);
}

/* STATUS= with the workers' counts summed (systemctl status). */
static void
sup_status(struct supervisor *sup)
{
	unsigned long long	sessions = 0, logged_in = 0, connections = 0;
	unsigned		i;

	for (i = 0; i < sup->n; i++)
		if (sup->w[i].pid != 0) {
			sessions += sup->w[i].status.sessions;
			logged_in += sup->w[i].status.logged_in;
			connections += sup->w[i].status.connections;
		}
	sd_notifyf(0, "STATUS=%llu sessions, %llu logged in; %llu "
	    "connections; %u of %u workers, %llu restarts", sessions,
	    logged_in, connections, supervise_running(sup), sup->n,
	    (unsigned long long)sup->restarts);
}

static void
chan_close(struct sup_worker *w)
{
	if (w->chan_ev != NULL) {
		event_free(w->chan_ev);
		w->chan_ev = NULL;
	}
	if (w->chan != -1) {
		close(w->chan);
		w->chan = -1;
	}
}

/* A worker's messages: "R" (ready). EOF: it is going; SIGCHLD says. */
static void
chan_read_cb(evutil_socket_t fd, short events, void *arg)
{
	struct sup_worker	*w = arg;
	struct chan_status	 msg;
	ssize_t			 n;

	(void)events;
	if ((n = recv(fd, &msg, sizeof(msg), MSG_DONTWAIT)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		chan_close(w);
		return;
	}
	if (msg.tag == CHAN_READY) {
		w->ready = 1;
		sup_check_ready(w->sup);
	} else if (msg.tag == CHAN_STATUS && (size_t)n == sizeof(msg)) {
		w->status = msg;
		sup_status(w->sup);
	}
}

static void
restart_cb(evutil_socket_t fd, short events, void *arg)
{
	struct sup_worker *w = arg;

	(void)fd;
	(void)events;
	if (!w->sup->stopping && w->pid == 0) {
		w->sup->restarts++;
		worker_spawn(w);
	}
}

/* An ask and what is left of its connections. */
static void
ask_free(struct supervisor *sup, struct sup_ask *ask)
{
	size_t	 i;

	for (i = 0; i < sup->n; i++) {
		if (ask->conns[i].bev != NULL)
			bufferevent_free(ask->conns[i].bev);
		if (ask->conns[i].raw != NULL)
			evbuffer_free(ask->conns[i].raw);
	}
	event_free(ask->timer);
	free(ask->conns);
	free(ask);
}

/* Every ask in progress ends unanswered (n = 0), and is freed. */
static void
asks_cancel(struct supervisor *sup)
{
	struct sup_ask	*ask;

	while ((ask = TAILQ_FIRST(&sup->asks)) != NULL) {
		TAILQ_REMOVE(&sup->asks, ask, entry);
		ask->fn(ask->arg, NULL, 0);
		ask_free(sup, ask);
	}
}

/*
 * Close the TCP sockets the child got from its parent, but the ones it
 * serves on (socks[0..n)): the metrics endpoint and its connections are
 * the supervisor's, and evhttp_free() would shutdown() a connection the
 * parent still serves. Freed after this, they only meet EBADF.
 */
static void
close_inherited_tcp(const struct server_socket *socks, size_t n)
{
	DIR		*dir;
	struct dirent	*de;
	socklen_t	 len;
	size_t		 i;
	int		 fd, domain;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if ((fd = atoi(de->d_name)) <= 2 || fd == dirfd(dir))
			continue;
		len = sizeof(domain);
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == -1 ||
		    (domain != AF_INET && domain != AF_INET6))
			continue;
		for (i = 0; i < n && socks[i].fd != fd; i++)
			;
		if (i == n)
			close(fd);
	}
	closedir(dir);
}

/* This process is a worker now: let go of the supervisor's state. */
static void
sup_child_detach(struct supervisor *sup, unsigned index)
{
	size_t a, i;

	/* The epoll instance and signal pipe are the parent's: a copy. */
	if (event_reinit(sup->base) == -1)
		_exit(1);
	asks_cancel(sup);
	for (i = 0; i < sup->n; i++) {
		chan_close(&sup->w[i]);
		if (sup->w[i].restart != NULL)
			event_free(sup->w[i].restart);
		sup->w[i].restart = NULL;
	}
	for (i = 0; i < sizeof(sup->sigs) / sizeof(sup->sigs[0]); i++)
		if (sup->sigs[i] != NULL) {
			event_free(sup->sigs[i]);
			sup->sigs[i] = NULL;
		}
	/* The other workers' sockets are theirs. */
	if (!sup->shared)
		for (i = 0; i < sup->n; i++)
			for (a = 0; a < sup->n_addr && i != index; a++)
				close(sup->socks[i * sup->n_addr + a].fd);
	close_inherited_tcp(sup->shared ? sup->socks : &sup->socks[index *
	    sup->n_addr], sup->n_addr);
}

/*
 * Fork worker w. Signals stay blocked across the fork: until the child
 * has its own handlers, one sent to it must not reach the parent's
 * (libevent's handler writes to a pipe both hold).
 */
static void
worker_spawn(struct sup_worker *w)
{
	struct supervisor	*sup = w->sup;
	sigset_t		 all, old;
	int			 sv[2];
	pid_t			 pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("event=worker-fork-failed worker=%u step=socketpair",
		    w->index);
		goto retry;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((pid = fork()) == -1) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		log_warn("event=worker-fork-failed worker=%u step=fork",
		    w->index);
		close(sv[0]);
		close(sv[1]);
		goto retry;
	}
	if (pid == 0) {
		const struct server_socket *socks = sup->shared ? sup->socks :
		    &sup->socks[w->index * sup->n_addr];

		close(sv[0]);
		sup_child_detach(sup, w->index);
		sup->hooks->child_cleanup(sup->hooks->arg);
		event_base_free(sup->base);
		sup->base = NULL;
		sup->hooks->worker(sup->hooks->arg, w->index, socks,
		    sup->n_addr, sv[1]);
		_exit(1);	/* not reached */
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	w->pid = pid;
	w->chan = sv[0];
	w->ready = 0;
	w->started_ms = mono_ms();
	if ((w->chan_ev = event_new(sup->base, w->chan, EV_READ | EV_PERSIST,
	    chan_read_cb, w)) == NULL || event_add(w->chan_ev, NULL) == -1)
		log_warnx("event=worker-channel-failed worker=%u", w->index);
	log_info("event=worker-start worker=%u pid=%ld", w->index, (long)pid);
	return;
retry:
	w->backoff_s = SUPERVISE_BACKOFF_MIN_S;
	if (w->restart != NULL) {
		struct timeval tv = { .tv_sec = w->backoff_s };

		evtimer_add(w->restart, &tv);
	}
}

/* "exit=N" or "signal=N" (with core=yes) of a wait status. */
static const char *
status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit=%d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal=%d%s", WTERMSIG(status),
		    WCOREDUMP(status) ? " core=yes" : "");
	else
		snprintf(buf, len, "status=%d", status);
	return buf;
}

/* A worker has exited: log it, free what it held, fork it again. */
static void
worker_reaped(struct sup_worker *w, int status)
{
	struct supervisor	*sup = w->sup;
	struct timeval		 tv = { 0, 0 };
	uint64_t		 ran_ms = mono_ms() - w->started_ms;
	char			 st[64];

	status_text(status, st, sizeof(st));
	chan_close(w);
	w->pid = 0;
	/* After the first READY=1 a dead worker holds no reload up: it
	 * starts with the file in force. */
	w->ready = sup->ready;
	if (sup->hooks->reclaim != NULL)
		sup->hooks->reclaim(sup->hooks->arg, w->index);
	if (sup->stopping) {
		log_info("event=worker-exit worker=%u %s ran_ms=%llu", w->index,
		    st, (unsigned long long)ran_ms);
		return;
	}
	if (ran_ms >= SUPERVISE_STABLE_S * 1000ULL)
		w->backoff_s = 0;
	else if (w->backoff_s == 0)
		w->backoff_s = SUPERVISE_BACKOFF_MIN_S;
	else if ((w->backoff_s *= 2) > SUPERVISE_BACKOFF_MAX_S)
		w->backoff_s = SUPERVISE_BACKOFF_MAX_S;
	/* Quick deaths wait; a worker that ran long enough has none. */
	tv.tv_sec = w->backoff_s;
	log_warnx("event=worker-exit worker=%u %s ran_ms=%llu restart_in_s=%ld",
	    w->index, st, (unsigned long long)ran_ms, (long)tv.tv_sec);
	evtimer_add(w->restart, &tv);
	sup_check_ready(sup);
}

static void
sup_reap(struct supervisor *sup)
{
	pid_t		pid;
	int		status;
	unsigned	i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < sup->n; i++)
			if (sup->w[i].pid == pid) {
				worker_reaped(&sup->w[i], status);
				break;
			}
	if (sup->stopping && supervise_running(sup) == 0) {
		log_info("event=workers-exited");
		event_base_loopbreak(sup->base);
	}
}

static void
sup_forward(struct supervisor *sup, int sig)
{
	unsigned i;

	for (i = 0; i < sup->n; i++)
		if (sup->w[i].pid != 0 && kill(sup->w[i].pid, sig) == -1 &&
		    errno != ESRCH)
			log_warn("event=signal-forward-failed worker=%u sig=%d",
			    i, sig);
}

int
supervise_reload(struct supervisor *sup, char *err, size_t errlen)
{
	unsigned i;

	sd_notifyf(0, "RELOADING=1\nSTATUS=Reloading\nMONOTONIC_USEC=%llu",
	    (unsigned long long)mono_us());
	if (sup->hooks->reload(sup->hooks->arg, err, errlen) == -1) {
		sd_notify(0, "READY=1");
		return -1;
	}
	sup->reloading = true;
	/* A worker not running starts with the new file when forked. */
	for (i = 0; i < sup->n; i++)
		sup->w[i].ready = sup->w[i].pid == 0;
	sup_forward(sup, SIGHUP);
	log_info("event=reload-forwarded workers=%u", supervise_running(sup));
	sup_check_ready(sup);
	return 0;
}

static void
sup_signal_cb(evutil_socket_t sig, short events, void *arg)
{
	struct supervisor	*sup = arg;
	char			 err[1024];
	unsigned		 i;

	(void)events;
	switch (sig) {
	case SIGCHLD:
		sup_reap(sup);
		return;
	case SIGHUP:
		log_info("event=sighup");
		(void)supervise_reload(sup, err, sizeof(err));
		return;
	case SIGUSR1:
		sup_forward(sup, SIGUSR1);
		return;
	}
	/* SIGTERM, SIGINT: the workers drain; a second one cuts. */
	if (!sup->stopping) {
		sup->stopping = true;
		sd_notifyf(0, "STOPPING=1\nSTATUS=Stopping: %u workers",
		    supervise_running(sup));
		log_info("event=stopping workers=%u", supervise_running(sup));
		for (i = 0; i < sup->n; i++)
			evtimer_del(sup->w[i].restart);
	}
	sup_forward(sup, (int)sig);
	if (supervise_running(sup) == 0)
		event_base_loopbreak(sup->base);
}

int
supervise_start(struct supervisor *sup, struct event_base *base,
    const struct supervise_hooks *hooks)
{
	static const int	 signos[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT,
				     SIGUSR1 };
	size_t			 i;

	sup->base = base;
	sup->hooks = hooks;
	for (i = 0; i < sizeof(signos) / sizeof(signos[0]); i++)
		if ((sup->sigs[i] = evsignal_new(base, signos[i],
		    sup_signal_cb, sup)) == NULL ||
		    evsignal_add(sup->sigs[i], NULL) == -1)
			return -1;
	for (i = 0; i < sup->n; i++)
		if ((sup->w[i].restart = evtimer_new(base, restart_cb,
		    &sup->w[i])) == NULL)
			return -1;
	for (i = 0; i < sup->n; i++)
		worker_spawn(&sup->w[i]);
	return supervise_running(sup) > 0 ? 0 : -1;
}

void
supervise_free(struct supervisor *sup)
{
	size_t i;

	if (sup == NULL)
		return;
	asks_cancel(sup);
	for (i = 0; i < sup->n; i++) {
		chan_close(&sup->w[i]);
		if (sup->w[i].restart != NULL)
			event_free(sup->w[i].restart);
	}
	for (i = 0; i < sizeof(sup->sigs) / sizeof(sup->sigs[0]); i++)
		if (sup->sigs[i] != NULL)
			event_free(sup->sigs[i]);
	if (sup->socks != NULL)
		for (i = 0; i < sup->n_addr * (sup->shared ? 1 : sup->n); i++)
			if (sup->socks[i].fd != -1)
				close(sup->socks[i].fd);
	free(sup->socks);
	free(sup->w);
	free(sup);
}

/* ------------------------------------------------------------- asking */

/* Parse one worker's raw reply (control.h's protocol) into *a. */
static void
ask_parse(struct evbuffer *raw, struct supervise_answer *a)
{
	char	*line;
	size_t	 n;
	bool	 greeted = false;

	a->ok = false;
	snprintf(a->err, sizeof(a->err), "no answer");
	while ((line = evbuffer_readln(raw, &n, EVBUFFER_EOL_LF)) != NULL) {
		if (!greeted)
			greeted = strncmp(line, "EVPOP3D-CONTROL ", 16) == 0;
		else if (n >= 2 && line[0] == '*' && line[1] == ' ') {
			evbuffer_add(a->lines, line + 2, n - 2);
			evbuffer_add(a->lines, "\n", 1);
		} else if (strcmp(line, "OK") == 0) {
			a->ok = true;
			a->err[0] = '\0';
		} else if (strncmp(line, "ERR ", 4) == 0)
			snprintf(a->err, sizeof(a->err), "%s", line + 4);
		free(line);
	}
}

/* Every worker has answered (or the time is up): call back, free. */
static void
ask_finish(struct sup_ask *ask)
{
	struct supervisor	*sup = ask->sup;
	struct supervise_answer	*a;
	size_t			 i;

	TAILQ_REMOVE(&sup->asks, ask, entry);
	if ((a = calloc(sup->n, sizeof(*a))) != NULL) {
		for (i = 0; i < sup->n; i++) {
			a[i].lines = evbuffer_new();
			if (a[i].lines != NULL)
				ask_parse(ask->conns[i].raw, &a[i]);
		}
		for (i = 0; i < sup->n; i++)
			if (a[i].lines == NULL) {
				a[i].ok = false;
				snprintf(a[i].err, sizeof(a[i].err),
				    "out of memory");
				a[i].lines = ask->conns[i].raw;
				ask->conns[i].raw = NULL;
			}
		ask->fn(ask->arg, a, sup->n);
		for (i = 0; i < sup->n; i++)
			evbuffer_free(a[i].lines);
		free(a);
	} else
		ask->fn(ask->arg, NULL, 0);
	ask_free(sup, ask);
}

static void
ask_conn_done(struct sup_ask_conn *c)
{
	struct sup_ask *ask = c->ask;

	bufferevent_free(c->bev);
	c->bev = NULL;
	if (--ask->pending == 0)
		ask_finish(ask);
}

/* Collect the reply, bounded; it ends when the worker closes. */
static void
ask_read_cb(struct bufferevent *bev, void *arg)
{
	struct sup_ask_conn *c = arg;

	evbuffer_add_buffer(c->raw, bufferevent_get_input(bev));
	if (evbuffer_get_length(c->raw) > CONTROL_REPLY_MAX + 4096)
		ask_conn_done(c);
}

static void
ask_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sup_ask_conn *c = arg;

	(void)what;
	evbuffer_add_buffer(c->raw, bufferevent_get_input(bev));
	ask_conn_done(c);
}

static void
ask_timeout_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	log_warnx("event=worker-ask-timeout pending=%zu",
	    ((struct sup_ask *)arg)->pending);
	ask_finish(arg);
}

/*
 * Frame m for sendmsg() with tag and descriptor fd, or (fd -1) for
 * recvmsg() with room for a tag and one descriptor.
 */
static void
chan_msg_init(struct chan_msg *m, char tag, int fd)
{
	struct cmsghdr *cm;

	memset(m, 0, sizeof(*m));
	m->tag = tag;
	m->iov.iov_base = &m->tag;
	m->iov.iov_len = 1;
	m->msg.msg_iov = &m->iov;
	m->msg.msg_iovlen = 1;
	m->msg.msg_control = m->cbuf.buf;
	m->msg.msg_controllen = sizeof(m->cbuf.buf);
	if (fd == -1)
		return;
	cm = CMSG_FIRSTHDR(&m->msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
}

/* Give worker w one end of a new connection; ours in *fd_r. */
static int
ask_connect(struct sup_worker *w, int *fd_r)
{
	struct chan_msg	 m;
	int		 sv[2];

	if (w->pid == 0 || w->chan == -1 || socketpair(AF_UNIX, SOCK_STREAM |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	chan_msg_init(&m, CHAN_CONN, sv[1]);
	if (sendmsg(w->chan, &m.msg, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	close(sv[1]);
	*fd_r = sv[0];
	return 0;
}

int
supervise_ask(struct supervisor *sup, const char *line,
    supervise_answer_fn *fn, void *arg)
{
	struct sup_ask		*ask;
	struct sup_ask_conn	*c;
	struct timeval		 tv = { .tv_sec = SUPERVISE_ASK_TIMEOUT_S };
	size_t			 i;
	int			 fd;

	if ((ask = calloc(1, sizeof(*ask))) == NULL ||
	    (ask->conns = calloc(sup->n, sizeof(*ask->conns))) == NULL ||
	    (ask->timer = evtimer_new(sup->base, ask_timeout_cb, ask)) ==
	    NULL) {
		if (ask != NULL)
			free(ask->conns);
		free(ask);
		return -1;
	}
	ask->sup = sup;
	ask->fn = fn;
	ask->arg = arg;
	for (i = 0; i < sup->n; i++) {
		ask->conns[i].ask = ask;
		if ((ask->conns[i].raw = evbuffer_new()) == NULL) {
			ask_free(sup, ask);
			return -1;
		}
	}
	TAILQ_INSERT_TAIL(&sup->asks, ask, entry);
	for (i = 0; i < sup->n; i++) {
		c = &ask->conns[i];
		if (ask_connect(&sup->w[i], &fd) == -1)
			continue;
		if ((c->bev = bufferevent_socket_new(sup->base, fd,
		    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			close(fd);
			continue;
		}
		bufferevent_setcb(c->bev, ask_read_cb, NULL, ask_event_cb, c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\n",
		    line);
		ask->pending++;
	}
	if (ask->pending == 0) {
		ask_finish(ask);
		return 0;
	}
	evtimer_add(ask->timer, &tv);
	return 0;
}

/* ------------------------------------------------- the worker's end */

struct supervise_chan {
	struct event	*ev;
	int		 fd;
	void		(*adopt)(void *, int);
	void		(*gone)(void *);
	void		*arg;
};

static void
wchan_read_cb(evutil_socket_t fd, short events, void *arg)
{
	struct supervise_chan	*c = arg;
	struct chan_msg		 m;
	struct cmsghdr		*cm;
	ssize_t			 n;
	int			 conn;

	(void)events;
	chan_msg_init(&m, 0, -1);
	if ((n = recvmsg(fd, &m.msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The supervisor is gone: stop, once. */
		log_warnx("event=supervisor-gone note=\"stopping\"");
		event_del(c->ev);
		c->gone(c->arg);
		return;
	}
	for (cm = CMSG_FIRSTHDR(&m.msg); cm != NULL;
	    cm = CMSG_NXTHDR(&m.msg, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
			memcpy(&conn, CMSG_DATA(cm), sizeof(int));
			if (m.tag == CHAN_CONN)
				c->adopt(c->arg, conn);
			else
				close(conn);
		}
}

struct supervise_chan *
supervise_chan_new(struct event_base *base, int fd,
    void (*adopt)(void *, int), void (*gone)(void *), void *arg)
{
	struct supervise_chan *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	c->adopt = adopt;
	c->gone = gone;
	c->arg = arg;
	if ((c->ev = event_new(base, fd, EV_READ | EV_PERSIST, wchan_read_cb,
	    c)) == NULL || event_add(c->ev, NULL) == -1) {
		if (c->ev != NULL)
			event_free(c->ev);
		free(c);
		return NULL;
	}
	return c;
}

void
supervise_chan_ready(struct supervise_chan *c)
{
	char tag = CHAN_READY;

	if (c != NULL)
		(void)send(c->fd, &tag, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void
supervise_chan_status(struct supervise_chan *c, uint64_t sessions,
    uint64_t logged_in, uint64_t connections)
{
	struct chan_status msg;

	memset(&msg, 0, sizeof(msg));
	msg.tag = CHAN_STATUS;
	msg.sessions = sessions;
	msg.logged_in = logged_in;
	msg.connections = connections;
	(void)send(c->fd, &msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void
supervise_chan_free(struct supervise_chan *c)
{
	if (c == NULL)
		return;
	event_free(c->ev);
	close(c->fd);
	free(c);
}
