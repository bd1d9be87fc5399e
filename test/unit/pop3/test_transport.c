/*
 * The POP3 protocol over transports other than a plain socket: the same
 * real protocol (pop3_proto, a real pop3_env with its worker pool, a
 * passwd-file and a Maildir) is driven through
 *	a plain socket, session_new_socket() (the daemon's path),
 *	a socket bufferevent (the bufferevent reads and writes),
 *	a bufferevent pair (no socket at all), and
 *	a pass-through bufferevent_filter_new() over a socket bufferevent
 *	(where a TLS filter would be).
 * Each runs the same scripted sessions; the replies must be correct and
 * byte-identical across transports. The loop turns until each reply has
 * arrived (PASS runs on a worker thread), with a deadline; none sleeps.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/iptable.h"
#include "lib/monotime.h"
#include "lib/shlimits.h"
#include "pop3/pop3.h"
#include "session/session.h"

#define WAIT_MS		20000		/* the deadline of one wait */
#define TICK_MS		100		/* WAIT_FOR() looks this often */
#define MAX_RESP	32		/* responses to one dialogue() */
#define BIG_MIN		(1024 * 1024)	/* the big message, at least */
#define SLOW		4096		/* a slow peer reads this a turn */
#define RECORD		16384		/* the filter's "record" */

enum transport {
	TR_DIRECT,	/* socket, session_new_socket(): the daemon's path */
	TR_SOCKET,	/* socket, the bufferevent's own write path */
	TR_PAIR,	/* bufferevent_pair: no socket */
	TR_FILTER,	/* a pass-through filter over a socket */
	TR_COUNT
};

static const char *const tr_name[TR_COUNT] = { "socket+direct", "socket",
    "pair", "filter" };

/* The maildrop: file name (delivery order) and content. */
struct msg {
	const char	*name;
	char		*text;
	size_t		 len;
	struct evbuffer	*wire;		/* the model: CRLF, unstuffed */
};

#define N_MSGS	5
#define MSG_BIG	2		/* index of the 1 MiB message */
static struct msg	 msgs[N_MSGS];

struct peer {
	enum transport		 tr;
	struct bufferevent	*bev;		/* the client's end */
	struct bufferevent	*srv;		/* the session's (TR_DIRECT: none) */
	struct session		*s;
	struct bufferevent	*under;		/* TR_FILTER: srv's socket */
	struct evbuffer		*rx;		/* every octet received */
	size_t			 slow;		/* > 0: take this much a turn */
	size_t			 parsed;	/* rx octets taken as responses */
	bool			 eof, error;
	/* dialogue(): the responses, as offsets into rx */
	size_t			 n_resp;
	size_t			 resp_off[MAX_RESP], resp_len[MAX_RESP];
};

struct tenv {
	char			 dir[64];
	struct event_base	*base;
	struct pop3_env		*pop3;
	struct session_set	*set;
	struct cfg		*cfg;
	struct event		*tick;
	uint64_t		 deadline_at;
	bool			 deadline_hit;
	struct peer		*peer;		/* the one session at a time */
	size_t			 max_queued;	/* most octets the server held */
};

static struct tenv	*cur;			/* for teardown */
static struct evbuffer	*transcripts[TR_COUNT];

/* ------------------------------------------------------ the messages */

static void
msg_set(struct msg *m, const char *name, const char *text, size_t len)
{
	m->name = name;
	m->text = malloc(len);
	assert_non_null(m->text);
	memcpy(m->text, text, len);
	m->len = len;
}

/*
 * The wire form of a message, written here from RFC 1939 section 3
 * rather than with lib/wire.h: a bare LF becomes CRLF, a lone CR stays,
 * a last line without its end gets a CRLF. No dot-stuffing: that is
 * undone on the client side before comparing.
 */
static struct evbuffer *
wire_model(const char *p, size_t len)
{
	struct evbuffer	*w = evbuffer_new();
	size_t		 i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			evbuffer_add(w, "\r", 1);
		evbuffer_add(w, &p[i], 1);
	}
	if (len > 0 && p[len - 1] != '\n')
		evbuffer_add(w, "\r\n", 2);
	return w;
}

static int
group_setup(void **state)
{
	static const char m0[] =
	    "From: alice@example.com\nSubject: one\n\n"
	    "Hello, Bob.\n.a line that starts with a dot\n..two dots\n.\n"
	    "end\n";
	static const char m1[] =
	    "Subject: two\r\nX-Mixed: yes\n\r\n"
	    "a CRLF line\r\na bare LF line\n\nlone\rCR inside\r\n.\r\n"
	    "no end of line";
	static const char m3[] =
	    "Subject: four\n\n..\n. \nbody\n.\n";
	static const char m4[] =
	    "Subject: five, no body\n\n";
	struct evbuffer	*big = evbuffer_new();
	char		 line[200];
	size_t		 i, n;

	(void)state;
	/* 1 MiB of lines of every length up to 150, some with dots. */
	evbuffer_add_printf(big, "From: list@example.com\nSubject: big\n\n");
	for (i = 0; evbuffer_get_length(big) < BIG_MIN; i++) {
		n = (i * 37) % 150;
		memset(line, 'a' + (int)(i % 26), n);
		/* Some lines begin with a dot: stuffed on the wire. */
		evbuffer_add_printf(big, "%s%06zu %.*s\n", i % 50 == 7 ? "." :
		    "", i, (int)n, line);
		if (i % 997 == 0)
			evbuffer_add(big, ".\n", 2);	/* a lone dot */
	}
	msg_set(&msgs[0], "1700000001.M1P1.test", m0, sizeof(m0) - 1);
	msg_set(&msgs[1], "1700000002.M2P1.test", m1, sizeof(m1) - 1);
	msg_set(&msgs[MSG_BIG], "1700000003.M3P1.test",
	    (const char *)evbuffer_pullup(big, -1), evbuffer_get_length(big));
	msg_set(&msgs[3], "1700000004.M4P1.test", m3, sizeof(m3) - 1);
	msg_set(&msgs[4], "1700000005.M5P1.test", m4, sizeof(m4) - 1);
	evbuffer_free(big);
	for (i = 0; i < N_MSGS; i++)
		msgs[i].wire = wire_model(msgs[i].text, msgs[i].len);
	for (i = 0; i < TR_COUNT; i++)
		transcripts[i] = evbuffer_new();
	return 0;
}

static int
group_teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N_MSGS; i++) {
		free(msgs[i].text);
		evbuffer_free(msgs[i].wire);
	}
	for (i = 0; i < TR_COUNT; i++)
		evbuffer_free(transcripts[i]);
	return 0;
}

/* ----------------------------------------------------- the environment */

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tenv *e = arg;

	(void)fd;
	(void)what;
	if (mono_ms() >= e->deadline_at)
		e->deadline_hit = true;
	event_base_loopbreak(e->base);
}

/* A Maildir of msgs for bob@example.com, and the server core on it. */
static struct tenv *
env_new(void)
{
	struct tenv		*e = calloc(1, sizeof(*e));
	char			 path[256], text[1024], err[512];
	size_t			 i;

	assert_true(e != NULL);
	strcpy(e->dir, "/tmp/evpop3d-transport-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(path, sizeof(path), "%s/passwd", e->dir);
	snprintf(text, sizeof(text),
	    "bob@example.com:{PLAIN}hunter 2::::%s/bob::\n", e->dir);
	write_file(path, text, strlen(text));
	snprintf(path, sizeof(path), "%s/bob", e->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/bob/Maildir", e->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/bob/Maildir/new", e->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/bob/Maildir/cur", e->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/bob/Maildir/tmp", e->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (i = 0; i < N_MSGS; i++) {
		snprintf(path, sizeof(path), "%s/bob/Maildir/new/%s", e->dir,
		    msgs[i].name);
		write_file(path, msgs[i].text, msgs[i].len);
	}
	snprintf(path, sizeof(path), "%s/evpop3d.ini", e->dir);
	snprintf(text, sizeof(text),
	    "[server]\nlisten = 127.0.0.1:0\nhostname = test\n"
	    "[auth]\npasswd_file = passwd\nfailure_delay = 0\n"
	    "[mail]\nlocation = %%h/Maildir\n");
	write_file(path, text, strlen(text));
	assert_int_equal(cfg_load(path, &e->cfg, err, sizeof(err)), 0);

	/* As main() has it: libevent's coarse clock, pauses on a timerfd. */
	e->base = event_base_new();
	assert_non_null(e->base);
	assert_int_equal(shlimits_init((size_t)e->cfg->max_connections,
	    (size_t)e->cfg->penalty_table_size, 1, err, sizeof(err)), 0);
	assert_int_equal(pop3_env_new(e->base, e->cfg, &e->pop3), 0);
	e->set = session_set_new(e->base, &(struct session_params){
	    .proto = &pop3_proto, .arg = e->pop3, .line_max = POP3_LINE_MAX,
	    .write_timeout = 60 });
	assert_non_null(e->set);
	e->tick = event_new(e->base, -1, EV_PERSIST, tick_cb, e);
	assert_non_null(e->tick);
	cur = e;
	return e;
}

static void
peer_free(struct peer *p)
{
	if (p == NULL)
		return;
	if (p->bev != NULL)
		bufferevent_free(p->bev);
	evbuffer_free(p->rx);
	free(p);
}

static void
env_free(struct tenv *e)
{
	char cmd[128];

	if (e == NULL)
		return;
	session_set_free(e->set);
	peer_free(e->peer);
	pop3_env_free(e->pop3);
	shlimits_free();
	event_free(e->tick);
	event_base_free(e->base);
	cfg_free(e->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	if (cur == e)
		cur = NULL;
}

static int
teardown(void **state)
{
	(void)state;
	env_free(cur);
	return 0;
}

/* ------------------------------------------------------------ the peer */

/* What the server side holds for the peer: the session's output, and
 * the filter's socket's. */
static size_t
server_queued(struct tenv *e, struct peer *p)
{
	size_t n;

	if (session_set_count(e->set) == 0)
		return 0;
	n = session_output_len(p->s);
	if (p->under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(p->under));
	return n;
}

/* Take what the peer read (a slow one: some); watch the server side. */
static void
pump(struct tenv *e)
{
	struct peer	*p = e->peer;
	struct evbuffer	*in;
	size_t		 n, q;

	if (p == NULL || p->bev == NULL)
		return;
	in = bufferevent_get_input(p->bev);
	n = evbuffer_get_length(in);
	if (p->slow > 0 && n > p->slow)
		n = p->slow;
	if (n > 0)
		evbuffer_remove_buffer(in, p->rx, n);
	if (p->slow > 0 && evbuffer_get_length(in) < p->slow &&
	    !(bufferevent_get_enabled(p->bev) & EV_READ))
		bufferevent_enable(p->bev, EV_READ);
	if ((q = server_queued(e, p)) > e->max_queued)
		e->max_queued = q;
}

/*
 * Turn the loop until cond holds, the peer taking what it read before
 * each turn; fail after WAIT_MS. A tick breaks a turn that would not
 * end, so that the condition is looked at again.
 */
#define WAIT_FOR(e, cond) do {						\
	wait_start(e);							\
	for (;;) {							\
		pump(e);						\
		if (cond)						\
			break;						\
		if ((e)->deadline_hit)					\
			wait_failed(e, __FILE__, __LINE__, #cond);	\
		event_base_loop((e)->base, EVLOOP_ONCE);		\
	}								\
	evtimer_del((e)->tick);						\
} while (0)

/* Say where a wait stopped: what the client and the server hold. */
static void
wait_failed(struct tenv *e, const char *file, int line, const char *cond)
{
	struct peer	*p = e->peer;
	size_t		 len = evbuffer_get_length(p->rx);

	size_t		 tail = len > 60 ? 60 : len;

	fail_msg("%s:%d: %s: no \"%s\" within %d ms (the client has %zu "
	    "octets, %zu taken, ending \"%.*s\"; the server %s, holding "
	    "%zu)", file, line, tr_name[p->tr], cond, WAIT_MS, len,
	    p->parsed, (int)tail, len == 0 ? "" :
	    (const char *)evbuffer_pullup(p->rx, -1) + len - tail,
	    session_set_count(e->set) > 0 ? "is up" : "has closed",
	    server_queued(e, p));
}

static void
wait_start(struct tenv *e)
{
	struct timeval tv = { .tv_usec = TICK_MS * 1000 };

	e->deadline_at = mono_ms() + WAIT_MS;
	e->deadline_hit = false;
	evtimer_add(e->tick, &tv);
}

static void
peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;

	/* A slow peer stops at SLOW octets; pump() makes room. */
	if (p->slow > 0 && evbuffer_get_length(bufferevent_get_input(bev)) >=
	    p->slow)
		bufferevent_disable(bev, EV_READ);
}

static void
peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		p->eof = true;
	if (what & BEV_EVENT_ERROR)
		p->error = true;
}

/* Pass-through, in records of at most RECORD octets, as TLS would. */
static enum bufferevent_filter_result
passthrough(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *ctx)
{
	size_t n = evbuffer_get_length(src);

	(void)mode;
	(void)ctx;
	if (n > RECORD)
		n = RECORD;
	if (limit >= 0 && n > (size_t)limit)
		n = (size_t)limit;
	if (n == 0)
		return BEV_NEED_MORE;
	if (evbuffer_remove_buffer(src, dst, n) != (int)n)
		return BEV_ERROR;
	return BEV_OK;
}

/* A new session on transport tr, and its client. */
static struct peer *
peer_new(struct tenv *e, enum transport tr)
{
	struct sockaddr_in	 sin = { .sin_family = AF_INET,
				    .sin_port = htons(4242) };
	struct bufferevent	*pair[2];
	struct peer		*p = calloc(1, sizeof(*p));
	unsigned char		 key[IPTABLE_ADDR_MAX];
	size_t			 keylen;
	int			 sv[2];

	assert_non_null(p);
	assert_null(e->peer);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	p->tr = tr;
	p->rx = evbuffer_new();
	if (tr == TR_PAIR) {
		assert_int_equal(bufferevent_pair_new(e->base,
		    BEV_OPT_CLOSE_ON_FREE, pair), 0);
		p->srv = pair[0];
		p->bev = pair[1];
	} else {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
		assert_int_equal(evutil_make_socket_nonblocking(sv[1]), 0);
		if (tr != TR_DIRECT)
			p->srv = bufferevent_socket_new(e->base, sv[0],
			    BEV_OPT_CLOSE_ON_FREE);
		p->bev = bufferevent_socket_new(e->base, sv[1],
		    BEV_OPT_CLOSE_ON_FREE);
		assert_true((p->srv != NULL || tr == TR_DIRECT) &&
		    p->bev != NULL);
		if (tr == TR_FILTER) {
			p->under = p->srv;
			p->srv = bufferevent_filter_new(p->under, passthrough,
			    passthrough, BEV_OPT_CLOSE_ON_FREE, NULL, NULL);
			assert_non_null(p->srv);
		}
	}
	bufferevent_setcb(p->bev, peer_read_cb, NULL, peer_event_cb, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	e->peer = p;
	keylen = iptable_addr_key((struct sockaddr *)&sin, key);
	p->s = tr == TR_DIRECT ? session_new_socket(e->set, sv[0],
	    (struct sockaddr *)&sin, sizeof(sin), key, keylen) :
	    session_new(e->set, p->srv, (struct sockaddr *)&sin, sizeof(sin),
	    key, keylen, 0);
	assert_non_null(p->s);
	return p;
}

/* Read at most SLOW octets a turn (or at once again). */
static void
peer_slow(struct peer *p, bool on)
{
	p->slow = on ? SLOW : 0;
	bufferevent_setwatermark(p->bev, EV_READ, 0, p->slow);
	bufferevent_enable(p->bev, EV_READ);
}

static bool
peer_closed(struct peer *p)
{
	if (p->eof || p->error)
		return true;
	return p->tr == TR_PAIR && bufferevent_pair_get_partner(p->bev) ==
	    NULL;
}

/* -------------------------------------------------------- the client */

/* RFC 1939, 2449: the commands whose +OK is followed by lines and ".". */
static bool
multiline(const char *cmd, size_t len)
{
	if (len == 4 && (strncasecmp(cmd, "CAPA", 4) == 0 ||
	    strncasecmp(cmd, "LIST", 4) == 0 ||
	    strncasecmp(cmd, "UIDL", 4) == 0))
		return true;
	return (len > 5 && strncasecmp(cmd, "RETR ", 5) == 0) ||
	    (len > 4 && strncasecmp(cmd, "TOP ", 4) == 0);
}

/*
 * The first CRLF in the len octets at p, or NULL. (Not memmem(): under
 * ASan it checks all of a 1 MiB haystack on every call.)
 */
static const char *
find_crlf(const char *p, size_t len)
{
	const char *lf;

	while ((lf = memchr(p, '\n', len)) != NULL) {
		if (lf > p && lf[-1] == '\r')
			return lf - 1;
		len -= (size_t)(lf + 1 - p);
		p = lf + 1;
	}
	return NULL;
}

/*
 * The length of the complete response at buf, or 0 if it is not all
 * there: the status line, and after a multi-line +OK every line up to
 * the one that is ".".
 */
static size_t
response_len(const char *buf, size_t len, bool multi)
{
	const char	*eol;
	size_t		 off, l;

	if ((eol = find_crlf(buf, len)) == NULL)
		return 0;
	off = (size_t)(eol - buf) + 2;
	if (!multi || len < 3 || strncmp(buf, "+OK", 3) != 0)
		return off;
	for (;;) {
		if ((eol = find_crlf(buf + off, len - off)) == NULL)
			return 0;
		l = (size_t)(eol - (buf + off));
		off += l + 2;
		if (l == 1 && buf[off - 3] == '.')
			return off;
	}
}

/*
 * Have the responses to cmds (or the greeting: NULL) arrived? Then they
 * are the last dialogue's, and taken.
 */
static bool
responses_in(struct peer *p, const char *cmds)
{
	const char	*rx, *c = cmds, *eol;
	size_t		 len = evbuffer_get_length(p->rx), off = p->parsed, n;
	bool		 multi;

	if (len == off)
		return false;
	rx = (const char *)evbuffer_pullup(p->rx, -1);
	p->n_resp = 0;
	do {
		multi = false;
		if (c != NULL) {
			eol = strstr(c, "\r\n");
			assert_non_null(eol);
			multi = multiline(c, (size_t)(eol - c));
			c = eol + 2;
		}
		if (off == len || (n = response_len(rx + off, len - off,
		    multi)) == 0)
			return false;
		assert_true(p->n_resp < MAX_RESP);
		p->resp_off[p->n_resp] = off;
		p->resp_len[p->n_resp++] = n;
		off += n;
	} while (c != NULL && *c != '\0');
	p->parsed = off;
	return true;
}

/*
 * Send cmds (CRLF-terminated lines, all in one write: pipelined) and
 * wait for a response to each. NULL: wait for the greeting.
 */
static void
dialogue(struct tenv *e, const char *cmds)
{
	struct peer *p = e->peer;

	if (cmds != NULL)
		assert_int_equal(bufferevent_write(p->bev, cmds,
		    strlen(cmds)), 0);
	WAIT_FOR(e, responses_in(p, cmds));
}

/* Response i of the last dialogue(), and its length. */
static const char *
resp(struct peer *p, size_t i, size_t *len_r)
{
	assert_true(i < p->n_resp);
	*len_r = p->resp_len[i];
	return (const char *)evbuffer_pullup(p->rx, -1) + p->resp_off[i];
}

/* Response i is the line want (CRLF added). */
static void
assert_resp(struct peer *p, size_t i, const char *want)
{
	size_t		 len;
	const char	*r = resp(p, i, &len);

	if (len != strlen(want) + 2 || memcmp(r, want, len - 2) != 0 ||
	    memcmp(r + len - 2, "\r\n", 2) != 0)
		fail_msg("%s: response %zu is \"%.*s\", want \"%s\"",
		    tr_name[p->tr], i, (int)(len > 200 ? 200 : len), r, want);
}

/* Response i begins with prefix. */
static void
assert_resp_prefix(struct peer *p, size_t i, const char *prefix)
{
	size_t		 len;
	const char	*r = resp(p, i, &len);

	if (len < strlen(prefix) || memcmp(r, prefix, strlen(prefix)) != 0)
		fail_msg("%s: response %zu is \"%.*s\", want \"%s...\"",
		    tr_name[p->tr], i, (int)(len > 200 ? 200 : len), r,
		    prefix);
}

/*
 * Response i is a message's reply: status, then m's wire form (or what
 * TOP n gives of it) dot-stuffed, then ".". RFC 1939 sections 3 and 7.
 */
static void
assert_message(struct peer *p, size_t i, const struct msg *m, long top)
{
	struct evbuffer	*got = evbuffer_new(), *want = evbuffer_new();
	const char	*r, *line, *eol, *w;
	size_t		 len, off, l, wlen, body = 0;
	bool		 in_body = false;

	r = resp(p, i, &len);
	assert_true(len >= 3 && memcmp(r, "+OK", 3) == 0);
	off = (size_t)(find_crlf(r, len) - r) + 2;
	/* Undo the stuffing; every line but the last "." is the message's. */
	for (;;) {
		line = r + off;
		eol = find_crlf(line, len - off);
		l = (size_t)(eol - line);
		off += l + 2;
		if (off == len) {
			assert_true(l == 1 && line[0] == '.');
			break;
		}
		if (l > 0 && line[0] == '.') {
			assert_true(l > 1 && line[1] == '.');	/* stuffed */
			line++;
			l--;
		}
		evbuffer_add(got, line, l);
		evbuffer_add(got, "\r\n", 2);
	}
	/* The model, cut for TOP after the blank line and top lines. */
	w = (const char *)evbuffer_pullup(m->wire, -1);
	wlen = evbuffer_get_length(m->wire);
	for (off = 0; off < wlen; off += l + 2) {
		eol = find_crlf(w + off, wlen - off);
		l = (size_t)(eol - (w + off));
		if (top >= 0 && in_body && body++ == (size_t)top)
			break;
		evbuffer_add(want, w + off, l + 2);
		if (l == 0)
			in_body = true;
	}
	if (evbuffer_get_length(got) != evbuffer_get_length(want) ||
	    memcmp(evbuffer_pullup(got, -1), evbuffer_pullup(want, -1),
	    evbuffer_get_length(want)) != 0)
		fail_msg("%s: %s of %s: %zu octets, want %zu", tr_name[p->tr],
		    top < 0 ? "RETR" : "TOP", m->name,
		    evbuffer_get_length(got), evbuffer_get_length(want));
	evbuffer_free(got);
	evbuffer_free(want);
}

/* The session ends (the server closes), and is freed. */
static void
wait_closed(struct tenv *e)
{
	WAIT_FOR(e, peer_closed(e->peer) && session_set_count(e->set) == 0);
}

/* Keep the session's transcript, and end with its client. */
static void
session_done(struct tenv *e, struct evbuffer *transcript, const char *name)
{
	struct peer *p = e->peer;

	wait_closed(e);
	assert_int_equal(evbuffer_get_length(p->rx), p->parsed);
	evbuffer_add_printf(transcript, "=== %s\n", name);
	evbuffer_add_buffer(transcript, p->rx);
	peer_free(p);
	e->peer = NULL;
}

/* ------------------------------------------------------ the sessions */

static uint64_t
wire_size(size_t i)
{
	return evbuffer_get_length(msgs[i].wire);
}

static uint64_t
wire_total(void)
{
	uint64_t	t = 0;
	size_t		i;

	for (i = 0; i < N_MSGS; i++)
		t += wire_size(i);
	return t;
}

/* A wrong password, then the right one (RFC 1939 section 7). */
static void
session_auth_fail(struct tenv *e, enum transport tr, struct evbuffer *out)
{
	struct peer	*p = peer_new(e, tr);
	char		 want[128];

	dialogue(e, NULL);
	assert_resp(p, 0, "+OK " EVPOP3D_NAME " ready.");
	dialogue(e, "USER bob@example.com\r\n");
	assert_resp(p, 0, "+OK");
	dialogue(e, "PASS hunter 3\r\n");
	assert_resp(p, 0, "-ERR [AUTH] Authentication failed.");
	dialogue(e, "STAT\r\n");
	assert_resp_prefix(p, 0, "-ERR");
	dialogue(e, "USER bob@example.com\r\n");
	dialogue(e, "PASS hunter 2\r\n");
	snprintf(want, sizeof(want), "+OK Logged in, %d messages (%llu "
	    "octets).", N_MSGS, (unsigned long long)wire_total());
	assert_resp(p, 0, want);
	dialogue(e, "QUIT\r\n");
	assert_resp(p, 0, "+OK " EVPOP3D_NAME " signing off.");
	session_done(e, out, "auth-fail");
}

/* CAPA before and after login, UIDL, TOP, LIST n (RFC 2449, 1939). */
static void
session_capa_top_uidl(struct tenv *e, enum transport tr,
    struct evbuffer *out)
{
	struct peer	*p = peer_new(e, tr);
	char		 want[128];
	size_t		 len, i;
	const char	*r;

	dialogue(e, NULL);
	dialogue(e, "CAPA\r\n");
	r = resp(p, 0, &len);
	assert_resp_prefix(p, 0, "+OK");
	assert_non_null(memmem(r, len, "\r\nPIPELINING\r\n", 14));
	assert_null(memmem(r, len, "IMPLEMENTATION", 14));
	dialogue(e, "USER bob@example.com\r\nPASS hunter 2\r\n");
	dialogue(e, "CAPA\r\n");
	r = resp(p, 0, &len);
	assert_non_null(memmem(r, len, "\r\nIMPLEMENTATION ", 17));
	dialogue(e, "UIDL\r\n");
	r = resp(p, 0, &len);
	for (i = 0; i < N_MSGS; i++) {
		char uidl[64];

		snprintf(uidl, sizeof(uidl), "\r\n%zu %s\r\n", i + 1,
		    msgs[i].name);
		assert_non_null(memmem(r, len, uidl, strlen(uidl)));
	}
	dialogue(e, "UIDL 2\r\n");
	assert_resp(p, 0, "+OK 2 1700000002.M2P1.test");
	dialogue(e, "TOP 1 0\r\nTOP 2 2\r\nTOP 4 1\r\nTOP 5 3\r\n");
	assert_message(p, 0, &msgs[0], 0);
	assert_message(p, 1, &msgs[1], 2);
	assert_message(p, 2, &msgs[3], 1);
	assert_message(p, 3, &msgs[4], 3);
	dialogue(e, "LIST 3\r\nNOOP\r\n");
	snprintf(want, sizeof(want), "+OK 3 %llu",
	    (unsigned long long)wire_size(MSG_BIG));
	assert_resp(p, 0, want);
	assert_resp(p, 1, "+OK");
	dialogue(e, "QUIT\r\n");
	session_done(e, out, "capa-top-uidl");
}

/* Every command in one write (RFC 2449 section 6.6): answered in order. */
static void
session_pipelined(struct tenv *e, enum transport tr, struct evbuffer *out)
{
	struct peer	*p = peer_new(e, tr);
	char		 want[128];

	dialogue(e, NULL);
	dialogue(e, "USER bob@example.com\r\nPASS hunter 2\r\nSTAT\r\nLIST\r\n"
	    "RETR 2\r\nUIDL 1\r\nTOP 4 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n");
	assert_int_equal(p->n_resp, 10);
	assert_resp(p, 0, "+OK");
	assert_resp_prefix(p, 1, "+OK Logged in");
	snprintf(want, sizeof(want), "+OK %d %llu", N_MSGS,
	    (unsigned long long)wire_total());
	assert_resp(p, 2, want);
	assert_message(p, 4, &msgs[1], -1);
	assert_resp(p, 5, "+OK 1 1700000001.M1P1.test");
	assert_message(p, 6, &msgs[3], 1);
	assert_message(p, 7, &msgs[0], -1);
	assert_resp(p, 8, "+OK");
	assert_resp(p, 9, "+OK " EVPOP3D_NAME " signing off.");
	session_done(e, out, "pipelined");
}

/*
 * RETR of the 1 MiB message to a client that reads 4 KiB a turn: the
 * message is sent in slices as the output drains, never queued whole.
 */
static void
session_slow_retr(struct tenv *e, enum transport tr, struct evbuffer *out)
{
	struct peer	*p = peer_new(e, tr);
	char		 want[64];

	dialogue(e, NULL);
	dialogue(e, "USER bob@example.com\r\nPASS hunter 2\r\n");
	peer_slow(p, true);
	e->max_queued = 0;
	dialogue(e, "RETR 3\r\n");
	snprintf(want, sizeof(want), "+OK %llu octets",
	    (unsigned long long)wire_size(MSG_BIG));
	assert_resp_prefix(p, 0, want);
	assert_message(p, 0, &msgs[MSG_BIG], -1);
	if (e->max_queued > 256 * 1024)
		fail_msg("%s: the server queued %zu octets of a %llu octet "
		    "message for a slow client", tr_name[tr], e->max_queued,
		    (unsigned long long)wire_size(MSG_BIG));
	peer_slow(p, false);
	dialogue(e, "QUIT\r\n");
	session_done(e, out, "slow-retr");
}

/* Is message i's file still in new/ or cur/? */
static bool
msg_on_disk(struct tenv *e, size_t i)
{
	static const char *const subs[] = { "new", "cur" };
	char		 path[256];
	struct dirent	*de;
	DIR		*d;
	size_t		 k;
	bool		 found = false;

	for (k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/bob/Maildir/%s", e->dir,
		    subs[k]);
		assert_non_null(d = opendir(path));
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, msgs[i].name,
			    strlen(msgs[i].name)) == 0)
				found = true;
		closedir(d);
	}
	return found;
}

/*
 * RFC 1939 section 10's example: USER/PASS, STAT, LIST, RETR each,
 * DELE, QUIT; UPDATE removes the message from the disk.
 */
static void
session_rfc1939(struct tenv *e, enum transport tr, struct evbuffer *out)
{
	struct peer	*p = peer_new(e, tr);
	char		 want[128], cmd[32];
	size_t		 len, i;
	const char	*r;

	dialogue(e, NULL);
	dialogue(e, "USER bob@example.com\r\n");
	dialogue(e, "PASS hunter 2\r\n");
	assert_resp_prefix(p, 0, "+OK Logged in");
	dialogue(e, "STAT\r\n");
	snprintf(want, sizeof(want), "+OK %d %llu", N_MSGS,
	    (unsigned long long)wire_total());
	assert_resp(p, 0, want);
	dialogue(e, "LIST\r\n");
	r = resp(p, 0, &len);
	snprintf(want, sizeof(want), "+OK %d messages (%llu octets)", N_MSGS,
	    (unsigned long long)wire_total());
	assert_resp_prefix(p, 0, want);
	for (i = 0; i < N_MSGS; i++) {
		snprintf(want, sizeof(want), "\r\n%zu %llu\r\n", i + 1,
		    (unsigned long long)wire_size(i));
		assert_non_null(memmem(r, len, want, strlen(want)));
	}
	for (i = 0; i < N_MSGS; i++) {
		snprintf(cmd, sizeof(cmd), "RETR %zu\r\n", i + 1);
		dialogue(e, cmd);
		snprintf(want, sizeof(want), "+OK %llu octets",
		    (unsigned long long)wire_size(i));
		assert_resp_prefix(p, 0, want);
		assert_message(p, 0, &msgs[i], -1);
	}
	dialogue(e, "DELE 1\r\n");
	assert_resp(p, 0, "+OK Message 1 deleted.");
	assert_true(msg_on_disk(e, 0));
	dialogue(e, "QUIT\r\n");
	assert_resp(p, 0, "+OK " EVPOP3D_NAME " signing off (1 messages "
	    "deleted).");
	/* UPDATE answered after the removal (RFC 1939 section 6). */
	assert_false(msg_on_disk(e, 0));
	for (i = 1; i < N_MSGS; i++)
		assert_true(msg_on_disk(e, i));
	session_done(e, out, "rfc1939");
}

/* Every session on transport tr; keep the transcript. */
static void
run_transport(enum transport tr)
{
	struct tenv *e = env_new();

	evbuffer_drain(transcripts[tr], evbuffer_get_length(transcripts[tr]));
	session_auth_fail(e, tr, transcripts[tr]);
	session_capa_top_uidl(e, tr, transcripts[tr]);
	session_pipelined(e, tr, transcripts[tr]);
	session_slow_retr(e, tr, transcripts[tr]);
	session_rfc1939(e, tr, transcripts[tr]);
	env_free(e);
}

static void
test_socket_direct(void **state)
{
	(void)state;
	run_transport(TR_DIRECT);
}

static void
test_socket(void **state)
{
	(void)state;
	run_transport(TR_SOCKET);
}

static void
test_pair(void **state)
{
	(void)state;
	run_transport(TR_PAIR);
}

static void
test_filter(void **state)
{
	(void)state;
	run_transport(TR_FILTER);
}

/* What each transport's client received is the same, octet for octet. */
static void
test_same_bytes(void **state)
{
	size_t	len = evbuffer_get_length(transcripts[TR_DIRECT]);
	int	tr;

	(void)state;
	assert_true(len > BIG_MIN * 2);
	for (tr = TR_SOCKET; tr < TR_COUNT; tr++) {
		if (evbuffer_get_length(transcripts[tr]) != len ||
		    memcmp(evbuffer_pullup(transcripts[tr], -1),
		    evbuffer_pullup(transcripts[TR_DIRECT], -1), len) != 0)
			fail_msg("%s: %zu octets differ from %s's %zu",
			    tr_name[tr], evbuffer_get_length(transcripts[tr]),
			    tr_name[TR_DIRECT], len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_socket_direct, teardown),
		cmocka_unit_test_teardown(test_socket, teardown),
		cmocka_unit_test_teardown(test_pair, teardown),
		cmocka_unit_test_teardown(test_filter, teardown),
		cmocka_unit_test(test_same_bytes),
	};
	const char *filter;

	signal(SIGPIPE, SIG_IGN);		/* as main.c does */
	if ((filter = getenv("TEST_FILTER")) != NULL)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
