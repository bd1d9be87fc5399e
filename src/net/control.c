/*
 * control: the admin socket (control.h). One request per connection, on
 * the loop: the request line is read without blocking, the command runs
 * at once, its reply is queued whole (bounded) and the connection closes
 * once the client has read it, or at the timeout.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/log.h"
#include "net/control.h"

struct control_client {
	TAILQ_ENTRY(control_client)	 entry;
	struct control			*ctl;
	struct bufferevent		*bev;
	struct event			*deadline;	/* the whole exchange */
	uid_t				 uid;
	pid_t				 pid;
	struct control_req		*pending;	/* CONTROL_LATER */
	unsigned			 replied:1;
};

struct control {
	struct event_base		*base;
	struct evconnlistener		*listener;	/* NULL: adopted only */
	char				*path;
	dev_t				 dev;	/* of the file we bound */
	ino_t				 ino;
	const struct control_cmd	*cmds;
	size_t				 n_cmds;
	void				*arg;
	TAILQ_HEAD(, control_client)	 clients;
	size_t				 n_clients;
};

static int
control_addr(const char *path, struct sockaddr_un *sun, char *err,
    size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "%s: path too long for a socket", path);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

/*
 * A socket file at path already: a live daemon's (something accepts, or
 * its backlog is full) is left alone; a dead one's (ECONNREFUSED) is
 * removed. 0: path is free now; -1: not, with the reason in err.
 */
static int
control_clear_stale(const char *path, const struct sockaddr_un *sun,
    char *err, size_t errlen)
{
	struct stat	 sb;
	int		 fd, e;

	if (lstat(path, &sb) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	e = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ?
	    0 : errno;
	close(fd);
	if (e == ENOENT)
		return 0;
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "%s: %s", path, e == 0 || e == EAGAIN ?
		    "in use by a running daemon (it accepts connections)" :
		    strerror(e));
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: cannot remove the stale socket: %s",
		    path, strerror(errno));
		return -1;
	}
	log_info("event=control-stale-removed path=%s", path);
	return 0;
}

/* Make the socket's directory if it is missing (one level, as root). */
static int
control_mkdir(const char *path, char *err, size_t errlen)
{
	char	 buf[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	char	*dir;

	snprintf(buf, sizeof(buf), "%s", path);
	dir = dirname(buf);
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot make the directory: %s", dir,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
control_bind(const char *path, int mode, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	mode_t			 old;
	int			 fd, rc;

	if (control_addr(path, &sun, err, errlen) == -1 ||
	    control_clear_stale(path, &sun, err, errlen) == -1 ||
	    control_mkdir(path, err, errlen) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* The file never exists with more permissions than mode. */
	old = umask((mode_t)(~mode & 0777));
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, (mode_t)mode) == -1 ||
	    listen(fd, CONTROL_CLIENTS) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		(void)unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

static void
client_free(struct control_client *cl)
{
	struct control *ctl = cl->ctl;

	TAILQ_REMOVE(&ctl->clients, cl, entry);
	ctl->n_clients--;
	if (cl->pending != NULL)
		cl->pending->cl = NULL;	/* control_done() frees it */
	if (cl->deadline != NULL)
		event_free(cl->deadline);
	bufferevent_free(cl->bev);
	free(cl);
}

/* Close once the reply is out (the write low watermark is 0). */
static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_free(arg);
}

static void
client_timeout(struct control_client *cl)
{
	log_info("event=admin-timeout uid=%lu pid=%ld note=\"%s\"",
	    (unsigned long)cl->uid, (long)cl->pid, cl->replied ?
	    "reply not read" : "no request");
	client_free(cl);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_client *cl = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT)
		client_timeout(cl);
	else
		client_free(cl);
}

/* The bufferevent's timeouts are per read or write; this, per exchange. */
static void
client_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	client_timeout(arg);
}

/*
 * Append the command's lines to the connection, each behind "* ", with
 * control bytes escaped; at most CONTROL_REPLY_MAX bytes. -1 if cut.
 */
static int
client_copy_lines(struct evbuffer *dst, struct evbuffer *src)
{
	char	*line;
	size_t	 n, i, j, total = 0;

	while ((line = evbuffer_readln(src, &n, EVBUFFER_EOL_LF)) != NULL) {
		if ((total += n + 3) > CONTROL_REPLY_MAX) {
			free(line);
			return -1;
		}
		evbuffer_add(dst, "* ", 2);
		/* Runs of plain bytes in one append, each control byte as \xNN. */
		for (i = 0; i < n; i = j + 1) {
			for (j = i; j < n && (unsigned char)line[j] >= 0x20 &&
			    line[j] != 0x7f; j++)
				;
			evbuffer_add(dst, line + i, j - i);
			if (j < n)
				evbuffer_add_printf(dst, "\\x%02x",
				    (unsigned char)line[j]);
		}
		evbuffer_add(dst, "\n", 1);
		free(line);
	}
	return 0;
}

/* The final line: log the command, and close once it is read. */
static void
client_finish(struct control_client *cl, const char *cmd, const char *log,
    const char *err)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	log_info("event=admin cmd=%s uid=%lu pid=%ld%s%s result=%s", cmd,
	    (unsigned long)cl->uid, (long)cl->pid, log[0] != '\0' ? " " : "",
	    log, err == NULL ? "ok" : "error");
	if (err == NULL)
		evbuffer_add_printf(out, "OK\n");
	else
		evbuffer_add_printf(out, "ERR %s\n", err);
	cl->replied = 1;
	bufferevent_disable(cl->bev, EV_READ);
	bufferevent_setcb(cl->bev, NULL, client_write_cb, client_event_cb, cl);
	bufferevent_setwatermark(cl->bev, EV_WRITE, 0, 0);
	bufferevent_enable(cl->bev, EV_WRITE);
}

/* Printable ASCII only: a request is a command and a user name. */
static bool
request_printable(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* The command's lines and its final line, once it is done. */
static void
client_reply(struct control_client *cl, struct control_req *req, int rc)
{
	if (client_copy_lines(bufferevent_get_output(cl->bev), req->out) == -1)
		client_finish(cl, req->cmd, req->log, "reply too long");
	else
		client_finish(cl, req->cmd, req->log, rc == 0 ? NULL :
		    req->err[0] != '\0' ? req->err : "failed");
}

static void
req_free(struct control_req *req)
{
	if (req->out != NULL)
		evbuffer_free(req->out);
	free(req);
}

static void
client_request(struct control_client *cl, char *line, size_t n)
{
	struct control			*ctl = cl->ctl;
	const struct control_cmd	*cmd = NULL;
	struct control_req		*req;
	char				 q[LOG_QUOTED_SIZE(32)], *sp;
	size_t				 i, namelen;
	int				 rc;

	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (!request_printable(line, n)) {
		client_finish(cl, "-", "", "bad request (not printable "
		    "ASCII)");
		return;
	}
	namelen = (sp = strchr(line, ' ')) != NULL ? (size_t)(sp - line) : n;
	for (i = 0; i < ctl->n_cmds && cmd == NULL; i++)
		if (strlen(ctl->cmds[i].name) == namelen &&
		    strncasecmp(ctl->cmds[i].name, line, namelen) == 0)
			cmd = &ctl->cmds[i];
	if (cmd == NULL) {
		line[namelen < 32 ? namelen : 32] = '\0';
		client_finish(cl, log_quote(q, sizeof(q), line), "",
		    "unknown command");
		return;
	}
	sp = sp != NULL ? sp + 1 : line + n;
	if (cmd->arg == CONTROL_ARG_REQUIRED && *sp == '\0') {
		client_finish(cl, cmd->name, "", "argument missing");
		return;
	}
	if (cmd->arg == CONTROL_ARG_NONE && *sp != '\0') {
		client_finish(cl, cmd->name, "", "no argument expected");
		return;
	}
	if ((req = calloc(1, sizeof(*req))) == NULL ||
	    (req->out = evbuffer_new()) == NULL) {
		free(req);
		client_finish(cl, cmd->name, "", "out of memory");
		return;
	}
	snprintf(req->argbuf, sizeof(req->argbuf), "%s", sp);
	req->arg = req->argbuf;
	req->cmd = cmd->name;
	req->cl = cl;
	if ((rc = cmd->fn(req, ctl->arg)) == CONTROL_LATER) {
		/* Answered by control_done(); reading has stopped. */
		cl->pending = req;
		bufferevent_disable(cl->bev, EV_READ);
		return;
	}
	client_reply(cl, req, rc);
	req_free(req);
}

void
control_done(struct control_req *req, int rc)
{
	struct control_client *cl = req->cl;

	if (cl != NULL) {
		cl->pending = NULL;
		client_reply(cl, req, rc);
	}
	req_free(req);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_client	*cl = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 eol;
	char			 line[CONTROL_REQUEST_MAX + 1];
	size_t			 n;

	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos == -1 || (size_t)eol.pos > CONTROL_REQUEST_MAX) {
		/* No newline yet: wait, unless the line is too long now. */
		if (eol.pos != -1 ||
		    evbuffer_get_length(in) > CONTROL_REQUEST_MAX)
			client_finish(cl, "-", "", "request too long");
		return;
	}
	n = (size_t)eol.pos;
	evbuffer_remove(in, line, n);
	evbuffer_drain(in, 1);		/* the LF */
	line[n] = '\0';
	client_request(cl, line, n);
}

static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control		*ctl = arg;
	struct control_client	*cl;
	struct ucred		 cred;
	socklen_t		 credlen = sizeof(cred);
	struct timeval		 tv = { .tv_sec = CONTROL_TIMEOUT_S };
	struct timeval		 all = { .tv_sec = CONTROL_DEADLINE_S };
	struct event_base	*base = ctl->base;
	static const char	 busy[] = "ERR busy: too many control "
				     "connections\n";

	(void)lev;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
		cred.uid = (uid_t)-1;
		cred.pid = -1;
	}
	if (ctl->n_clients >= CONTROL_CLIENTS) {
		log_warnx("event=admin-refused reason=busy uid=%lu pid=%ld "
		    "clients=%zu", (unsigned long)cred.uid, (long)cred.pid,
		    ctl->n_clients);
		(void)send(fd, busy, sizeof(busy) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		evutil_closesocket(fd);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL ||
	    (cl->deadline = evtimer_new(base, client_deadline_cb, cl)) ==
	    NULL || (cl->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warnx("event=admin-refused reason=out-of-memory");
		if (cl != NULL && cl->deadline != NULL)
			event_free(cl->deadline);
		free(cl);
		evutil_closesocket(fd);
		return;
	}
	cl->ctl = ctl;
	cl->uid = cred.uid;
	cl->pid = cred.pid;
	TAILQ_INSERT_TAIL(&ctl->clients, cl, entry);
	ctl->n_clients++;
	bufferevent_setcb(cl->bev, client_read_cb, NULL, client_event_cb, cl);
	/* Reading stops past the longest request: it is refused then. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, CONTROL_REQUEST_MAX + 2);
	bufferevent_set_timeouts(cl->bev, &tv, &tv);
	evtimer_add(cl->deadline, &all);
	evbuffer_add_printf(bufferevent_get_output(cl->bev),
	    "EVPOP3D-CONTROL %d\n", CONTROL_VERSION);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
}

struct control *
control_new(struct event_base *base, int fd, const char *path,
    const struct control_cmd *cmds, size_t n, void *arg)
{
	struct control	*ctl;
	struct stat	 sb;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		if (fd != -1)
			close(fd);
		return NULL;
	}
	if (fd != -1 && stat(path, &sb) == 0) {
		ctl->dev = sb.st_dev;
		ctl->ino = sb.st_ino;
	}
	ctl->base = base;
	ctl->cmds = cmds;
	ctl->n_cmds = n;
	ctl->arg = arg;
	TAILQ_INIT(&ctl->clients);
	if (fd == -1)
		return ctl;
	/* Backlog 0: control_bind() listens already. */
	if ((ctl->listener = evconnlistener_new(base, control_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd)) == NULL) {
		free(ctl->path);
		free(ctl);
		close(fd);
		return NULL;
	}
	log_info("event=control-listen path=%s", path);
	return ctl;
}

void
control_free(struct control *ctl)
{
	struct control_client	*cl;
	struct stat		 sb;

	if (ctl == NULL)
		return;
	while ((cl = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_free(cl);
	if (ctl->listener != NULL)
		evconnlistener_free(ctl->listener);
	/* Only our own file: a later daemon may have taken the path. */
	if (lstat(ctl->path, &sb) == 0 && sb.st_dev == ctl->dev &&
	    sb.st_ino == ctl->ino && unlink(ctl->path) == -1)
		log_debug("event=control-unlink path=%s error=\"%s\"",
		    ctl->path, strerror(errno));
	free(ctl->path);
	free(ctl);
}

void
control_adopt(struct control *ctl, int fd)
{
	(void)evutil_make_socket_nonblocking(fd);
	(void)evutil_make_socket_closeonexec(fd);
	control_accept_cb(NULL, fd, NULL, 0, ctl);
}

void
control_disown(struct control *ctl)
{
	if (ctl == NULL)
		return;
	ctl->dev = 0;
	ctl->ino = 0;
	ctl->path[0] = '\0';
}
