/*
 * control: the admin socket, a Unix stream socket on the daemon's loop
 * that `evpop3d who|kick|stats|reload` (ctl.c) talk to.
 *
 * The wire protocol is text, one exchange per connection:
 *
 *	server:	EVPOP3D-CONTROL 1		on connect; 1 is the version
 *	client:	COMMAND [ARGUMENT]		one line, at most
 *						CONTROL_REQUEST_MAX bytes
 *	server:	* TEXT				any number of reply lines
 *	server:	OK | ERR REASON			the last line; then it closes
 *
 * Lines end in "\n". Reply lines are what the command wrote, each behind
 * "* ", with any control byte escaped as \xNN: no reply line can pass for
 * the final one, whatever a user name holds.
 *
 * Who may connect is decided by the socket file's owner and mode (bound
 * before the privilege drop, so root's by default); each command is
 * logged with the peer's uid (SO_PEERCRED). The limits: CONTROL_CLIENTS
 * at once (more are told "ERR busy"), CONTROL_TIMEOUT_S without progress
 * in reading the request or sending the reply and CONTROL_DEADLINE_S for
 * the whole exchange (a trickle holds no slot), a request line of
 * CONTROL_REQUEST_MAX bytes, and a reply of at most CONTROL_REPLY_MAX
 * bytes (cut with "ERR reply too long"). Nothing on the socket ever blocks the loop.
 */
#ifndef EVPOP3D_CONTROL_H
#define EVPOP3D_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct evbuffer;

#define CONTROL_VERSION		1
#define CONTROL_REQUEST_MAX	1024
#define CONTROL_CLIENTS		8
#define CONTROL_TIMEOUT_S	10
#define CONTROL_DEADLINE_S	30
#define CONTROL_REPLY_MAX	(16u << 20)

/* A handler's return: the reply comes later, from control_done(). */
#define CONTROL_LATER		1

struct control_client;

/* One request, as a command handler sees it. */
struct control_req {
	const char	*arg;		/* after "COMMAND ", or "" */
	const char	*cmd;		/* the command's name */
	struct evbuffer	*out;		/* reply lines, each ending in "\n" */
	char		 err[256];	/* -1: the reason for "ERR" */
	char		 log[1280];	/* key=value pairs for the log line;
					   client-chosen values log_quote()d */
	/* Private to control.c. */
	char		 argbuf[CONTROL_REQUEST_MAX + 1];
	struct control_client *cl;	/* NULL: the client has gone */
};

enum control_arg {
	CONTROL_ARG_NONE,
	CONTROL_ARG_OPTIONAL,
	CONTROL_ARG_REQUIRED,
};

struct control_cmd {
	const char	*name;
	enum control_arg arg;		/* the text after "COMMAND " */
	/*
	 * 0: "OK" after the lines; -1: "ERR " req->err; CONTROL_LATER:
	 * the handler keeps req and answers with control_done().
	 */
	int		(*fn)(struct control_req *req, void *arg);
};

struct control;

/*
 * Bind and listen on path with mode (as root, before the privilege
 * drop). A socket file already there is removed only if nothing answers
 * on it (a dead daemon's); a live one, or a file that is not a socket,
 * is an error. A missing parent directory is made (0755). Returns the
 * listening descriptor, or -1 with a reason in err.
 */
int	control_bind(const char *path, int mode, char *err, size_t errlen);

/*
 * Serve the socket fd (from control_bind(), now ours) on base with the
 * commands cmds[0..n) (static), passing arg to each; fd -1: no socket,
 * only connections given to control_adopt(). NULL if out of memory (fd
 * is closed).
 */
struct control	*control_new(struct event_base *base, int fd, const char *path,
		    const struct control_cmd *cmds, size_t n, void *arg);

/*
 * Serve the connected stream socket fd (now ours) as if it had been
 * accepted: a [server] workers process gets its supervisor's requests
 * so (net/supervise.h).
 */
void	control_adopt(struct control *ctl, int fd);

/*
 * Finish a request its handler answered CONTROL_LATER: rc as the
 * handler's would be. Frees req; the client may have gone meanwhile.
 */
void	control_done(struct control_req *req, int rc);

/*
 * In a forked child: let control_free() leave the socket file alone
 * (it is the parent's).
 */
void	control_disown(struct control *ctl);

/*
 * Close every control connection and the socket, and remove the socket
 * file if it is still ours (after the privilege drop the directory may
 * not let us: the next start removes it then). NULL is ignored.
 */
void	control_free(struct control *ctl);

#endif
