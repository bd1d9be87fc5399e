/*
 * supervise: [server] workers = N > 1. The process systemd starts binds
 * what needs privileges and is shared (the listeners, the admin socket,
 * the metrics endpoint), then forks N worker processes, each running
 * the whole daemon loop on its own listening sockets, and only
 * supervises them on a loop of its own:
 *
 *   - listeners: for each configured address N sockets with SO_REUSEPORT,
 *     one per worker (the kernel spreads the connections), all kept open
 *     by the supervisor, so that a worker restarted gets the same socket
 *     and its queue waits meanwhile (nothing is refused); under socket
 *     activation the workers share systemd's sockets (no SO_REUSEPORT);
 *   - a worker that exits is logged (event=worker-exit) and forked
 *     again: at once when it had run SUPERVISE_STABLE_S, else after a
 *     back-off from SUPERVISE_BACKOFF_MIN_S doubling to
 *     SUPERVISE_BACKOFF_MAX_S, so that a crash loop does not spin;
 *   - SIGHUP, SIGTERM and SIGINT are forwarded to every worker (SIGHUP
 *     after the supervisor's own check of the file); it exits when the
 *     last worker has;
 *   - the admin socket and the metrics endpoint: a request is asked of
 *     every worker (supervise_ask()) and the answers merged by the
 *     caller.
 *
 * The channel: each worker has a SOCK_SEQPACKET socketpair to its
 * supervisor. A worker sends "R" when it is ready (at start and after
 * each reload), and "S" with its counts for STATUS=; the supervisor
 * sends "C" with a descriptor (SCM_RIGHTS):
 * one end of an admin connection the worker serves with its own control
 * commands (net/control.h). A worker whose channel ends (its supervisor
 * is gone, even by SIGKILL) stops gracefully.
 */
#ifndef EVPOP3D_SUPERVISE_H
#define EVPOP3D_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct evbuffer;
struct event_base;
struct server_socket;
struct supervisor;

#define SUPERVISE_STABLE_S	10	/* ran this long: restart at once */
#define SUPERVISE_BACKOFF_MIN_S	1
#define SUPERVISE_BACKOFF_MAX_S	60
#define SUPERVISE_ASK_TIMEOUT_S	5	/* a worker's answer to a request */

struct supervise_hooks {
	/*
	 * In the child, just after the fork and supervise_child_detach():
	 * run worker index on its listening sockets socks[0..n) and its
	 * end of the channel chan; never returns. Signals are blocked:
	 * the worker unblocks them (sigprocmask) once it handles them.
	 */
	void	(*worker)(void *arg, unsigned index,
		    const struct server_socket *socks, size_t n, int chan);
	/*
	 * SIGHUP or the admin socket's reload, before it goes to the
	 * workers: the supervisor's own part (check the file, apply what
	 * it serves itself). 0: forward it; -1 with a reason in err: not.
	 */
	int	(*reload)(void *arg, char *err, size_t errlen);
	/* A worker has been reaped: per-host state it held is freed. */
	void	(*reclaim)(void *arg, unsigned index);
	/*
	 * In the child, before its worker() runs: free the parent's
	 * state that is not the supervisor's (admin socket, metrics).
	 */
	void	(*child_cleanup)(void *arg);
	void	*arg;
};

/* One worker's answer to supervise_ask(). */
struct supervise_answer {
	bool		 ok;		/* "OK"; else err says why */
	struct evbuffer	*lines;		/* its lines, without "* " */
	char		 err[256];
};

/*
 * The answers, answers[0..n) in worker order (a worker not running
 * answers !ok, "not running"); the caller may drain the lines. n is 0
 * when the request was cancelled (the process is a forked worker now):
 * free what arg holds, reply to nobody.
 */
typedef void	supervise_answer_fn(void *arg,
		    const struct supervise_answer *answers, size_t n);

/*
 * Bind the listeners of cfg for n workers, or take systemd's sockets
 * (socket activation; pop3s ones need tls): before the privilege drop.
 * NULL after logging why (event=listen-failed).
 */
struct supervisor *supervise_new(const struct cfg *cfg, unsigned n, bool tls);

/*
 * Fork the workers and supervise them on base (its signal events:
 * SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGUSR1). hooks must outlive sup.
 * -1 if out of memory or no worker could be forked.
 */
int	supervise_start(struct supervisor *sup, struct event_base *base,
	    const struct supervise_hooks *hooks);

/*
 * Ask every running worker line (a control command, net/control.h) and
 * call fn with the answers, after SUPERVISE_ASK_TIMEOUT_S at most. 0, or
 * -1 if out of memory (fn is not called).
 */
int	supervise_ask(struct supervisor *sup, const char *line,
	    supervise_answer_fn *fn, void *arg);

/*
 * SIGHUP's work, for the admin socket's reload too: hooks->reload, then
 * SIGHUP to every worker; READY=1 once each has said it is ready again.
 * 0, or -1 with a reason in err (nothing forwarded).
 */
int	supervise_reload(struct supervisor *sup, char *err, size_t errlen);

/* The supervisor's counts, for the log and STATUS=. */
unsigned	supervise_running(const struct supervisor *sup);
uint64_t	supervise_restarts(const struct supervisor *sup);

/*
 * Free sup: its listening sockets closed, asks in progress cancelled
 * (their fn called with n = 0); the loop has exited.
 */
void	supervise_free(struct supervisor *sup);

/*
 * The worker's end of the channel, on the worker's base: adopt(arg, fd)
 * for each admin connection, gone(arg) once when the supervisor is.
 */
struct supervise_chan;
struct supervise_chan *supervise_chan_new(struct event_base *base, int fd,
		    void (*adopt)(void *, int), void (*gone)(void *),
		    void *arg);
/* Tell the supervisor this worker is ready (started or reloaded). */
void	supervise_chan_ready(struct supervise_chan *c);
/*
 * This worker's live counts, which the supervisor sums into STATUS=
 * for systemd (each worker sends them every few seconds when its
 * supervisor has NOTIFY_SOCKET).
 */
void	supervise_chan_status(struct supervise_chan *c, uint64_t sessions,
	    uint64_t logged_in, uint64_t connections);
void	supervise_chan_free(struct supervise_chan *c);

#endif
