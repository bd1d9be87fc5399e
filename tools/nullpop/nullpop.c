/*
 * evpop3d-nullpop: a POP3 responder that does no work.
 *
 * The yardstick for benchmarks: every reply is canned in memory at
 * startup, so what a client measures against it is the cost of libevent
 * plus loopback TCP, nothing else.  It keeps no state between sessions
 * (DELE is acknowledged and forgotten) and checks no credentials.
 *
 *	evpop3d-nullpop [-l ADDR:PORT] [-m MESSAGES] [-s SIZE] [-b BIGSIZE]
 *
 * Loopback addresses only.  Message n is SIZE octets (message 1 is BIGSIZE
 * when -b is given), in RFC 1939 terms: the sizes LIST and STAT report are
 * of the un-stuffed message with CRLF line ends, and RETR sends it
 * dot-stuffed (RFC 1939 section 3).  Each canned message has one body line
 * beginning with "." so clients have something to un-stuff.
 *
 * Output is bounded per connection: long replies (a big RETR, a long LIST)
 * are queued by reference to the prebuilt buffers in slices from the write
 * callback, never more than OUT_HIGH at a time, and pipelined input waits
 * until the reply before it is fully queued.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#define DEFAULT_LISTEN	"127.0.0.1:1100"
#define DEFAULT_COUNT	10
#define DEFAULT_SIZE	4096
#define MAX_COUNT	100000
#define MIN_MSG_SIZE	512
#define MAX_MSG_SIZE	(1UL << 30)

#define MAX_LINE	1024		/* longer lines close the session */
#define OUT_HIGH	(256 * 1024)	/* most output queued per connection */
#define OUT_LOW		(OUT_HIGH / 2)	/* refill below this */
#define SLICE		(64 * 1024)	/* one reference added to the output */
#define IN_HIGH		(64 * 1024)	/* input read-ahead (pipelining) */
#define BACKLOG		4096
#define BODY_WIDTH	70		/* body line length before CRLF */

/* One canned message: the complete RETR reply and where its parts are. */
struct canned {
	size_t	 size;		/* un-stuffed octets, as LIST reports */
	char	*retr;		/* "+OK .. octets" CRLF, wire form, "." CRLF */
	size_t	 retr_len;
	size_t	 body_off;	/* wire form starts here in retr */
	size_t	 wire_len;	/* dot-stuffed message, CRLF-terminated */
	size_t	 hdr_len;	/* wire octets up to and with the blank line */
};

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	struct bufferevent	*bev;
	const char		*pend;		/* rest of a long reply */
	size_t			 pend_len;
	unsigned		 pend_tail:1;	/* then ".\r\n" (TOP) */
	unsigned		 closing:1;	/* close once flushed */
};

static TAILQ_HEAD(, conn)	 conns = TAILQ_HEAD_INITIALIZER(conns);
static struct event_base	*base;
static struct evconnlistener	*listener;
static struct event		*relisten_ev;
static struct canned		 msg_small, msg_big;
static unsigned			 nmsgs;
static bool			 have_big;
static uint64_t			 total_octets;
static char			*list_all, *uidl_all;	/* multi-line replies */
static size_t			 list_all_len, uidl_all_len;
static char			 stat_reply[64];
static size_t			 stat_reply_len;

static const char greeting[] = "+OK nullpop ready\r\n";
static const char ok_reply[] = "+OK\r\n";
static const char bye_reply[] = "+OK bye\r\n";
static const char top_reply[] = "+OK top of message follows\r\n";
static const char dot_crlf[] = ".\r\n";
static const char err_unknown[] = "-ERR unknown command\r\n";
static const char err_nomsg[] = "-ERR no such message\r\n";
static const char err_syntax[] = "-ERR syntax error\r\n";
static const char capa_reply[] =
    "+OK capability list follows\r\n"
    "TOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\n"
    "IMPLEMENTATION evpop3d-nullpop\r\n.\r\n";

static void __attribute__((noreturn)) usage(void);
static void	build_canned(struct canned *, size_t);
static void	build_listings(void);
static const struct canned *msg_get(unsigned);
static int	parse_msgno(const char *, unsigned *);
static int	parse_size(const char *, size_t, size_t, size_t *);
static void	conn_free(struct conn *);
static void	conn_fill(struct conn *);
static int	conn_process(struct conn *);
static void	conn_command(struct conn *, char *);
static void	conn_read_cb(struct bufferevent *, void *);
static void	conn_write_cb(struct bufferevent *, void *);
static void	conn_event_cb(struct bufferevent *, short, void *);
static void	accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	accept_error_cb(struct evconnlistener *, void *);
static void	relisten_cb(evutil_socket_t, short, void *);
static void	signal_cb(evutil_socket_t, short, void *);
static int	parse_listen(const char *, struct sockaddr_storage *,
		    socklen_t *);
static int	is_loopback(const struct sockaddr *);

static void
usage(void)
{
	fprintf(stderr, "usage: evpop3d-nullpop [-l ADDR:PORT] [-m MESSAGES] "
	    "[-s SIZE] [-b BIGSIZE]\n"
	    "  -l  loopback address to listen on (default %s; port 0: any)\n"
	    "  -m  messages in the maildrop, 0..%d (default %d)\n"
	    "  -s  octets per message, %d..%lu (default %d)\n"
	    "  -b  octets of message 1 instead\n",
	    DEFAULT_LISTEN, MAX_COUNT, DEFAULT_COUNT, MIN_MSG_SIZE,
	    MAX_MSG_SIZE, DEFAULT_SIZE);
	exit(2);
}

/*
 * Build a realistic ASCII message of exactly size octets (CRLF line ends,
 * headers, a blank line, ~70-column body lines; the last body line is
 * padded to make the size exact) and its complete RETR reply. Body line 2
 * starts with "." and goes out stuffed, so the wire form is size + 1.
 */
static void
build_canned(struct canned *m, size_t size)
{
	static const char	*words[] = {
		"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
		"mail", "server", "event", "loop", "benchmark", "octets",
		"message", "retrieve", "pipeline", "session", "loopback",
		"null", "responder", "canned", "reply", "buffer", "queue",
	};
	const size_t	 nwords = sizeof(words) / sizeof(words[0]);
	char		 hdr[512], line[2 * (BODY_WIDTH + 2)], *plain, *p;
	size_t		 hlen, left, len, w, i, lineno, stat_len, stuffed;
	int		 n;

	n = snprintf(hdr, sizeof(hdr),
	    "Return-Path: <sender@nullpop.invalid>\r\n"
	    "From: Null Sender <sender@nullpop.invalid>\r\n"
	    "To: Bench User <bench@nullpop.invalid>\r\n"
	    "Subject: canned message of %zu octets\r\n"
	    "Date: Thu, 01 Jan 2015 00:00:00 +0000\r\n"
	    "Message-ID: <%zu.canned@nullpop.invalid>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n", size, size);
	/* Room for at least two body lines, the second one dot-led. */
	if (n < 0 || (size_t)n >= sizeof(hdr) ||
	    (size_t)n + 2 * (BODY_WIDTH + 2) > size) {
		fprintf(stderr, "nullpop: message size %zu too small\n", size);
		exit(2);
	}
	hlen = (size_t)n;

	/* The plain (un-stuffed) message. */
	if ((plain = malloc(size)) == NULL) {
		perror("nullpop: malloc");
		exit(1);
	}
	memcpy(plain, hdr, hlen);
	p = plain + hlen;
	left = size - hlen;
	w = 0;
	for (lineno = 0; left > 0; lineno++) {
		/* A full line while two more fit, else the padded last one. */
		len = left >= 2 * (BODY_WIDTH + 2) ? BODY_WIDTH : left - 2;
		for (i = 0; i < len; ) {
			const char	*word = words[w++ % nwords];

			if (i > 0)
				line[i++] = ' ';
			while (*word != '\0' && i < len)
				line[i++] = *word++;
		}
		if (lineno == 1)
			line[0] = '.';	/* to be stuffed on the wire */
		else if (line[0] == '.' || line[0] == ' ')
			line[0] = 'x';
		if (line[len - 1] == ' ')
			line[len - 1] = 'x';
		memcpy(p, line, len);
		p[len] = '\r';
		p[len + 1] = '\n';
		p += len + 2;
		left -= len + 2;
	}

	/* The RETR reply: status, stuffed lines, terminator (RFC 1939 §3). */
	m->size = size;
	m->hdr_len = hlen;
	for (i = 0, stuffed = 0; i < size; i++)
		if (plain[i] == '.' && (i == 0 || plain[i - 1] == '\n'))
			stuffed++;
	if ((m->retr = malloc(64 + size + stuffed + 3)) == NULL) {
		perror("nullpop: malloc");
		exit(1);
	}
	stat_len = (size_t)snprintf(m->retr, 64, "+OK %zu octets\r\n", size);
	m->body_off = stat_len;
	p = m->retr + stat_len;
	for (i = 0; i < size; i++) {
		if (plain[i] == '.' && (i == 0 || plain[i - 1] == '\n'))
			*p++ = '.';
		*p++ = plain[i];
	}
	m->wire_len = (size_t)(p - (m->retr + stat_len));
	memcpy(p, dot_crlf, 3);
	m->retr_len = stat_len + m->wire_len + 3;
	free(plain);
}

/* The full LIST and UIDL replies, and STAT. */
static void
build_listings(void)
{
	size_t		 cap;
	unsigned	 i;
	char		*lp, *up;

	total_octets = 0;
	for (i = 1; i <= nmsgs; i++)
		total_octets += msg_get(i)->size;
	stat_reply_len = (size_t)snprintf(stat_reply, sizeof(stat_reply),
	    "+OK %u %llu\r\n", nmsgs, (unsigned long long)total_octets);

	cap = 64 + (size_t)nmsgs * 40;
	if ((list_all = malloc(cap)) == NULL ||
	    (uidl_all = malloc(cap)) == NULL) {
		perror("nullpop: malloc");
		exit(1);
	}
	lp = list_all + sprintf(list_all, "+OK %u messages (%llu octets)\r\n",
	    nmsgs, (unsigned long long)total_octets);
	up = uidl_all + sprintf(uidl_all, "+OK unique-id listing follows\r\n");
	for (i = 1; i <= nmsgs; i++) {
		lp += sprintf(lp, "%u %zu\r\n", i, msg_get(i)->size);
		up += sprintf(up, "%u nullpop-%08u\r\n", i, i);
	}
	lp += sprintf(lp, ".\r\n");
	up += sprintf(up, ".\r\n");
	list_all_len = (size_t)(lp - list_all);
	uidl_all_len = (size_t)(up - uidl_all);
}

static const struct canned *
msg_get(unsigned n)
{
	return n == 1 && have_big ? &msg_big : &msg_small;
}

/* A message number argument: 0 and *n_r, or -1 if not 1..nmsgs. */
static int
parse_msgno(const char *s, unsigned *n_r)
{
	unsigned long	v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s) || v > MAX_COUNT)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < 1 || v > nmsgs)
		return -1;
	*n_r = (unsigned)v;
	return 0;
}

static int
parse_size(const char *s, size_t min, size_t max, size_t *v_r)
{
	unsigned long long	 v;
	char			*end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*v_r = (size_t)v;
	return 0;
}

static void
conn_free(struct conn *c)
{
	TAILQ_REMOVE(&conns, c, entry);
	bufferevent_free(c->bev);
	free(c);
}

/* Queue more of a pending long reply, up to OUT_HIGH in the output. */
static void
conn_fill(struct conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	size_t		 n, queued;

	while (c->pend_len > 0 && (queued = evbuffer_get_length(out)) <
	    OUT_HIGH) {
		n = OUT_HIGH - queued;
		if (n > SLICE)
			n = SLICE;
		if (n > c->pend_len)
			n = c->pend_len;
		/* The canned buffers live until exit: no cleanup callback. */
		if (evbuffer_add_reference(out, c->pend, n, NULL, NULL) == -1)
			break;
		c->pend += n;
		c->pend_len -= n;
	}
	if (c->pend_len == 0 && c->pend_tail) {
		evbuffer_add_reference(out, dot_crlf, 3, NULL, NULL);
		c->pend_tail = 0;
	}
}

/* Start sending a reply held in a canned buffer. */
static void
conn_send(struct conn *c, const char *p, size_t len, bool tail)
{
	c->pend = p;
	c->pend_len = len;
	c->pend_tail = tail;
	conn_fill(c);
}

/* A short reply: copied, which is cheaper than a reference chain. */
static void
reply(struct conn *c, const char *s, size_t len)
{
	evbuffer_add(bufferevent_get_output(c->bev), s, len);
}

#define REPLY(c, lit)	reply((c), (lit), sizeof(lit) - 1)

/*
 * Run the commands waiting in the input, in order, while the previous
 * reply is fully queued and the output is below OUT_HIGH. Returns 0, or
 * -1 when the connection was freed.
 */
static int
conn_process(struct conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct evbuffer		*out = bufferevent_get_output(c->bev);
	struct evbuffer_ptr	 eol;
	size_t			 eol_len, avail;
	char			 line[MAX_LINE + 1];

	while (!c->closing && c->pend_len == 0 && !c->pend_tail &&
	    evbuffer_get_length(out) < OUT_HIGH) {
		if ((avail = evbuffer_get_length(in)) == 0)
			return 0;
		/* EOL_CRLF: CRLF or a bare LF ends a line. */
		eol = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (avail > MAX_LINE + 1) {
				conn_free(c);	/* line too long */
				return -1;
			}
			return 0;
		}
		if ((size_t)eol.pos > MAX_LINE) {
			conn_free(c);
			return -1;
		}
		evbuffer_copyout(in, line, (size_t)eol.pos);
		line[eol.pos] = '\0';
		evbuffer_drain(in, (size_t)eol.pos + eol_len);
		conn_command(c, line);
	}
	return 0;
}

/* One command line (RFC 1939 §3: keyword, then space-separated args). */
static void
conn_command(struct conn *c, char *line)
{
	const struct canned	*m;
	const char		*body;
	char			*verb, *a1, *a2, *save, buf[96];
	unsigned		 n;
	size_t			 k, top_len;
	int			 blen;

	if ((verb = strtok_r(line, " ", &save)) == NULL) {
		REPLY(c, err_unknown);
		return;
	}
	a1 = strtok_r(NULL, " ", &save);
	a2 = strtok_r(NULL, " ", &save);

	if (strcasecmp(verb, "RETR") == 0) {
		if (parse_msgno(a1, &n) == -1) {
			REPLY(c, err_nomsg);
			return;
		}
		m = msg_get(n);
		conn_send(c, m->retr, m->retr_len, false);
	} else if (strcasecmp(verb, "NOOP") == 0 ||
	    strcasecmp(verb, "USER") == 0 || strcasecmp(verb, "PASS") == 0 ||
	    strcasecmp(verb, "RSET") == 0) {
		REPLY(c, ok_reply);
	} else if (strcasecmp(verb, "STAT") == 0) {
		reply(c, stat_reply, stat_reply_len);
	} else if (strcasecmp(verb, "LIST") == 0) {
		if (a1 == NULL) {
			conn_send(c, list_all, list_all_len, false);
		} else if (parse_msgno(a1, &n) == -1) {
			REPLY(c, err_nomsg);
		} else {
			blen = snprintf(buf, sizeof(buf), "+OK %u %zu\r\n", n,
			    msg_get(n)->size);
			bufferevent_write(c->bev, buf, (size_t)blen);
		}
	} else if (strcasecmp(verb, "UIDL") == 0) {
		if (a1 == NULL) {
			conn_send(c, uidl_all, uidl_all_len, false);
		} else if (parse_msgno(a1, &n) == -1) {
			REPLY(c, err_nomsg);
		} else {
			blen = snprintf(buf, sizeof(buf),
			    "+OK %u nullpop-%08u\r\n", n, n);
			bufferevent_write(c->bev, buf, (size_t)blen);
		}
	} else if (strcasecmp(verb, "DELE") == 0) {
		/* Acknowledged and forgotten: the maildrop never changes. */
		if (parse_msgno(a1, &n) == -1)
			REPLY(c, err_nomsg);
		else
			REPLY(c, ok_reply);
	} else if (strcasecmp(verb, "TOP") == 0) {
		/* RFC 1939 §7: headers, blank line, then k body lines. */
		if (parse_msgno(a1, &n) == -1) {
			REPLY(c, err_nomsg);
			return;
		}
		if (a2 == NULL || !isdigit((unsigned char)*a2)) {
			REPLY(c, err_syntax);
			return;
		}
		m = msg_get(n);
		k = strtoul(a2, NULL, 10);
		body = m->retr + m->body_off;
		for (top_len = m->hdr_len; k > 0 && top_len < m->wire_len; k--)
			top_len = (size_t)((const char *)memchr(body + top_len,
			    '\n', m->wire_len - top_len) - body) + 1;
		REPLY(c, top_reply);
		conn_send(c, m->retr + m->body_off, top_len, true);
	} else if (strcasecmp(verb, "CAPA") == 0) {
		REPLY(c, capa_reply);
	} else if (strcasecmp(verb, "QUIT") == 0) {
		REPLY(c, bye_reply);
		/* Close once "+OK bye" is flushed (conn_write_cb). */
		c->closing = 1;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	} else
		REPLY(c, err_unknown);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

/* The output drained to OUT_LOW (or to 0 when closing). */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
		return;
	}
	if (c->pend_len > 0 || c->pend_tail)
		conn_fill(c);
	/* Pipelined commands that waited for this reply. */
	if (c->pend_len == 0 && !c->pend_tail)
		conn_process(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	/* EOF or error: nothing to save, nothing to log. */
	conn_free(arg);
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct conn	*c;
	int		 on = 1;

	(void)lev;
	(void)sa;
	(void)salen;
	(void)arg;
	/* Replies are whole; do not let Nagle hold a tail back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	if ((c->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&conns, c, entry);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, IN_HIGH);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	/* Bigger writes than libevent's 16 KiB default: fewer syscalls. */
	bufferevent_set_max_single_write(c->bev, OUT_HIGH);
	bufferevent_set_max_single_read(c->bev, IN_HIGH);
	REPLY(c, greeting);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Out of descriptors: pause accepting for 100 ms instead of spinning. */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct timeval	tv = { 0, 100000 };
	int		err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		evconnlistener_disable(lev);
		evtimer_add(relisten_ev, &tv);
	}
}

static void
relisten_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	evconnlistener_enable(listener);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

/*
 * "A.B.C.D:PORT" or "[IPV6]:PORT", numeric only, port 0..65535 (0: any).
 * evutil_parse_sockaddr_port refuses port 0, hence our own.
 */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len_r)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	const char		*colon, *hs, *he;
	char			 host[INET6_ADDRSTRLEN];
	size_t			 port;

	memset(ss, 0, sizeof(*ss));
	if ((colon = strrchr(s, ':')) == NULL ||
	    parse_size(colon + 1, 0, 65535, &port) == -1)
		return -1;
	hs = s;
	he = colon;
	if (*s == '[') {
		if (he == s || he[-1] != ']')
			return -1;
		hs++;
		he--;
	}
	if ((size_t)(he - hs) >= sizeof(host))
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	if (*s != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*sin);
		return 0;
	}
	if (*s == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static int
is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_storage	 ss;
	struct event		*sigterm, *sigint;
	struct rlimit		 rl;
	const char		*laddr = DEFAULT_LISTEN;
	char			 host[INET6_ADDRSTRLEN];
	socklen_t		 sslen;
	size_t			 size = DEFAULT_SIZE, bigsize = 0, v;
	int			 ch, port;

	nmsgs = DEFAULT_COUNT;
	while ((ch = getopt(argc, argv, "b:hl:m:s:")) != -1) {
		switch (ch) {
		case 'b':
			if (parse_size(optarg, MIN_MSG_SIZE, MAX_MSG_SIZE,
			    &bigsize) == -1)
				usage();
			have_big = true;
			break;
		case 'l':
			laddr = optarg;
			break;
		case 'm':
			if (parse_size(optarg, 0, MAX_COUNT, &v) == -1)
				usage();
			nmsgs = (unsigned)v;
			break;
		case 's':
			if (parse_size(optarg, MIN_MSG_SIZE, MAX_MSG_SIZE,
			    &size) == -1)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	if (parse_listen(laddr, &ss, &sslen) == -1) {
		fprintf(stderr, "nullpop: bad listen address %s "
		    "(want A.B.C.D:PORT or [IPV6]:PORT)\n", laddr);
		return 2;
	}
	if (!is_loopback((struct sockaddr *)&ss)) {
		fprintf(stderr, "nullpop: %s is not a loopback address\n",
		    laddr);
		return 2;
	}

	/* As many descriptors as we may have. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);

	build_canned(&msg_small, size);
	if (have_big)
		build_canned(&msg_big, bigsize);
	build_listings();

	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "nullpop: event_base_new failed\n");
		return 1;
	}
	listener = evconnlistener_new_bind(base, accept_cb, NULL,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, BACKLOG,
	    (struct sockaddr *)&ss, (int)sslen);
	if (listener == NULL) {
		fprintf(stderr, "nullpop: listen on %s: %s\n", laddr,
		    strerror(errno));
		return 1;
	}
	evconnlistener_set_error_cb(listener, accept_error_cb);
	relisten_ev = evtimer_new(base, relisten_cb, NULL);
	sigterm = evsignal_new(base, SIGTERM, signal_cb, NULL);
	sigint = evsignal_new(base, SIGINT, signal_cb, NULL);
	if (relisten_ev == NULL || sigterm == NULL || sigint == NULL ||
	    evsignal_add(sigterm, NULL) == -1 ||
	    evsignal_add(sigint, NULL) == -1) {
		fprintf(stderr, "nullpop: cannot set up events\n");
		return 1;
	}

	/* Report the real port (port 0 asks the kernel for one). */
	sslen = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(listener),
	    (struct sockaddr *)&ss, &sslen) == -1) {
		perror("nullpop: getsockname");
		return 1;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		fprintf(stderr, "nullpop listening on [%s]:%d\n", host, port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		fprintf(stderr, "nullpop listening on %s:%d\n", host, port);
	}

	event_base_dispatch(base);

	/* SIGTERM/SIGINT: a clean exit, connections simply close. */
	while (!TAILQ_EMPTY(&conns))
		conn_free(TAILQ_FIRST(&conns));
	evconnlistener_free(listener);
	event_free(sigterm);
	event_free(sigint);
	event_free(relisten_ev);
	event_base_free(base);
	free(msg_small.retr);
	free(msg_big.retr);
	free(list_all);
	free(uidl_all);
	return 0;
}
