/*
 * log: one line per call, to stderr, syslog or the journal.
 *
 * Line format: "<level> <message>", level being one of debug, info, warn,
 * error. Every byte outside printable ASCII is written as \xNN. The same
 * text goes to every target (fail2ban and the tests read it); what the
 * target adds differs:
 *
 *  - stderr: an ISO-8601 timestamp with milliseconds and UTC offset in
 *    front, except when stderr is the journal's stream ($JOURNAL_STREAM
 *    names its device:inode, systemd.exec(5)): journald stamps lines
 *    itself, and an sd-daemon(3) "<N>" prefix gives it the priority.
 *  - syslog: one datagram per line to /dev/log, as syslog(3) with
 *    LOG_PID sends it ("<PRI>Mmm dd hh:mm:ss evpop3d[PID]: line"), with
 *    [log] syslog_facility.
 *  - journald: one datagram per line to the journal's socket in its
 *    native protocol (what sd_journal_sendv(3) sends for a small entry):
 *    MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER=evpop3d and
 *    EVPOP3D_EVENT=/EVPOP3D_SESSION= when the line has event= and sess=.
 *    Without a journal socket at log_configure(), and when a send fails
 *    for another reason than a full receiver, lines go to stderr
 *    instead, not nowhere.
 *
 * Every line is formatted into a stack buffer and handed over with one
 * write(2) of at most LOG_LINE_MAX octets (<= PIPE_BUF: lines of several
 * threads never interleave on a pipe or journald's stream) or one
 * datagram on a socket of our own (struct log_sock), from any thread.
 * The shared state is a few atomics set by log_configure(), and the two
 * sockets' descriptors.
 *
 * Blocking: the datagrams are sent with MSG_DONTWAIT, so a receiver that
 * is slow or stops reading (a hung journald or syslog daemon; Linux
 * queues only net.unix.max_dgram_qlen datagrams per socket: 512 under
 * systemd, 10 by default) never holds the loop. The lines it does not
 * take wait in a bounded backlog, in order, sent with the next line or
 * when the loop sees the socket writable (log_backlog_fd()); lines that
 * find the backlog full are dropped and counted, and once it has gone
 * out "warn event=log-dropped count=N" follows. The stderr write still
 * waits for a full pipe (under systemd stderr is journald's stream; the
 * datagram targets are the ones to use there).
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/evpop3d.h"
#include "lib/fileio.h"
#include "lib/fmt.h"
#include "lib/log.h"
#include "lib/pidcache.h"
#include "lib/proc.h"

/* Longest line we emit, newline included; longer messages are cut. */
#define LOG_LINE_MAX	4096
/* Room in front of a line for the timestamp or "<N>", or "MESSAGE=". */
#define LOG_HEAD	40
#define LOG_TRUNC_MARK	"..."
/* Where sd_journal_sendv() sends (systemd-journald.service(8)). */
#define LOG_JOURNAL_SOCKET	"/run/systemd/journal/socket"
/* Where syslog(3) sends. */
#define LOG_SYSLOG_SOCKET	"/dev/log"

enum log_level {
	LOG_LVL_DEBUG,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
};

static const char *const log_level_names[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_ERROR] = "error",
};

/* syslog(3) priorities: the journal and sd-daemon(3) use the same. */
static const int log_level_pri[] = {
	[LOG_LVL_DEBUG] = LOG_DEBUG,
	[LOG_LVL_INFO] = LOG_INFO,
	[LOG_LVL_WARN] = LOG_WARNING,
	[LOG_LVL_ERROR] = LOG_ERR,
};

/* Relaxed atomics: written by log_configure(), read from any thread. */
static atomic_bool log_debug_on;
static atomic_int log_tgt = LOG_TARGET_STDERR;	/* never AUTO */
static atomic_bool log_journal_stream;	/* stderr is the journal's */
static atomic_int log_facility = LOG_MAIL;

/*
 * A datagram target: our own socket, connected to path, non-blocking.
 * Opened by log_configure() (before a privilege drop, and with no other
 * thread yet) and never closed: a line in another thread may be using
 * the descriptor. A send that finds the receiver gone (restarted)
 * connects a new socket and puts it in the old one's place with dup2(),
 * under the lock, so the number stays good for every thread.
 */
struct log_sock {
	const char	*path;
	atomic_int	 fd;		/* -1: not open */
};

static struct log_sock log_journal_sock = { LOG_JOURNAL_SOCKET, -1 };
static struct log_sock log_syslog_sock = { LOG_SYSLOG_SOCKET, -1 };

/* The socket of datagram target t. */
static struct log_sock *
log_sock_of(enum log_target t)
{
	return t == LOG_TARGET_SYSLOG ? &log_syslog_sock : &log_journal_sock;
}
static pthread_mutex_t log_sock_mtx = PTHREAD_MUTEX_INITIALIZER;

/*
 * The backlog: lines a full datagram receiver did not take yet, in
 * order, each a struct log_rec and its text. Under log_out_mtx, which
 * also orders the sends (a send never waits, so it is held briefly).
 * Lines that find it full are dropped and counted (dropped: not reported
 * yet; dropped_total: since the start, for log_dropped_count()).
 */
#define LOG_BACKLOG_MAX	(64 * 1024)

struct log_rec {
	uint16_t	 len;
	uint8_t		 lvl;
	uint8_t		 tgt;
};

static pthread_mutex_t	 log_out_mtx = PTHREAD_MUTEX_INITIALIZER;
static char		 log_backlog[LOG_BACKLOG_MAX];
static size_t		 log_bl_off, log_bl_used;	/* sent up to, filled */
static atomic_bool	 log_bl_pending;		/* log_bl_used > 0 */
static uint64_t		 log_dropped;
static atomic_ullong	 log_dropped_total;
static pthread_once_t	 log_hooks_once = PTHREAD_ONCE_INIT;
static void		 log_hooks(void);

static void	log_vline(enum log_level, int, uint64_t, const char *, va_list)
		    __attribute__((format(printf, 4, 0)));

/*
 * Is stderr the journal's stream? systemd sets $JOURNAL_STREAM to
 * "DEVICE:INODE" of the stream it connected (systemd.exec(5)); a child
 * with stderr redirected elsewhere inherits the variable, so compare.
 */
static bool
log_stderr_is_journal(void)
{
	const char		*v = getenv("JOURNAL_STREAM");
	unsigned long long	 dev, ino;
	struct stat		 sb;
	char			 end;

	if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(STDERR_FILENO, &sb) == -1)
		return false;
	return (unsigned long long)sb.st_dev == dev &&
	    (unsigned long long)sb.st_ino == ino;
}

/* A new non-blocking datagram socket connected to path, or -1. */
static int
log_sock_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Connect ls (again, when stale is its descriptor that failed: the new
 * socket takes that number). The descriptor, or -1.
 */
static int
log_sock_open(struct log_sock *ls, int stale)
{
	int fd, cur;

	pthread_mutex_lock(&log_sock_mtx);
	cur = atomic_load(&ls->fd);
	if (cur == -1 || cur == stale) {
		if ((fd = log_sock_connect(ls->path)) != -1 && cur != -1) {
			/* In place: a thread sending on cur now sends here. */
			if (dup2(fd, cur) == -1)
				fd = -1;
			else {
				close(fd);
				fd = cur;
			}
		}
		if (fd != -1)
			atomic_store(&ls->fd, fd);
		cur = fd;
	}
	pthread_mutex_unlock(&log_sock_mtx);
	return cur;
}

/*
 * One datagram of iov to ls, never waiting: 0 sent; 1 not sent, the
 * receiver being full; -1 no receiver (the caller writes the line to
 * stderr).
 */
static int
log_sock_send(struct log_sock *ls, struct iovec *iov, size_t n)
{
	struct msghdr	 msg;
	int		 fd, tries;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = n;
	if ((fd = atomic_load_explicit(&ls->fd, memory_order_relaxed)) == -1 &&
	    (fd = log_sock_open(ls, -1)) == -1)
		return -1;
	for (tries = 0; tries < 3; tries++) {
		if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) != -1)
			return 0;
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
		case ENOBUFS:
			return 1;
		case EINTR:
			break;
		case ECONNREFUSED:
		case ECONNRESET:
		case ENOTCONN:
		case ENOENT:
		case EPIPE:
			/* The receiver restarted: connect again. */
			if ((fd = log_sock_open(ls, fd)) == -1)
				return -1;
			break;
		default:
			return -1;
		}
	}
	return -1;
}

uint64_t
log_dropped_count(void)
{
	return atomic_load_explicit(&log_dropped_total, memory_order_relaxed);
}

void
log_configure(const struct log_params *p)
{
	enum log_target	 t = p->target;
	bool		 journal = log_stderr_is_journal(), fallback = false;

	if (t == LOG_TARGET_AUTO)
		t = journal ? LOG_TARGET_JOURNALD : LOG_TARGET_STDERR;
	/* Without a journal (not running), lines would be lost: keep them
	 * on stderr instead. */
	if (t == LOG_TARGET_JOURNALD && access(LOG_JOURNAL_SOCKET, F_OK) == -1) {
		t = LOG_TARGET_STDERR;
		fallback = true;
	}
	tzset();	/* localtime_r() need not read TZ itself */
	(void)pthread_once(&log_hooks_once, log_hooks);
	atomic_store_explicit(&log_debug_on, p->debug, memory_order_relaxed);
	atomic_store_explicit(&log_journal_stream, journal,
	    memory_order_relaxed);
	atomic_store_explicit(&log_facility, p->facility,
	    memory_order_relaxed);
	/* Connect before the switch (and before a privilege drop); a
	 * socket that cannot be reached yet is tried again at each line. */
	if (t == LOG_TARGET_SYSLOG)
		(void)log_sock_open(&log_syslog_sock, -1);
	else if (t == LOG_TARGET_JOURNALD)
		(void)log_sock_open(&log_journal_sock, -1);
	atomic_store_explicit(&log_tgt, t, memory_order_relaxed);
	if (fallback && p->target == LOG_TARGET_JOURNALD)
		log_warnx("event=log-target-fallback target=stderr "
		    "reason=no-journal socket=%s", LOG_JOURNAL_SOCKET);
}

void
log_init(bool debug)
{
	log_configure(&(struct log_params){ .debug = debug,
	    .target = LOG_TARGET_AUTO, .facility = LOG_MAIL });
}

static const char *const log_target_names[] = {
	[LOG_TARGET_AUTO] = "auto",
	[LOG_TARGET_STDERR] = "stderr",
	[LOG_TARGET_SYSLOG] = "syslog",
	[LOG_TARGET_JOURNALD] = "journald",
};

const char *
log_target_name(enum log_target t)
{
	return log_target_names[t];
}

int
log_target_parse(const char *s, enum log_target *t_r)
{
	size_t i;

	for (i = 0; i < sizeof(log_target_names) / sizeof(*log_target_names);
	    i++)
		if (strcmp(s, log_target_names[i]) == 0) {
			*t_r = (enum log_target)i;
			return 0;
		}
	return -1;
}

int
log_facility_parse(const char *s, int *facility_r)
{
	static const struct {
		const char	*name;
		int		 facility;
	} names[] = {
		{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON },
		{ "user", LOG_USER }, { "auth", LOG_AUTH },
		{ "authpriv", LOG_AUTHPRIV },
		{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
		{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*facility_r = names[i].facility;
			return 0;
		}
	return -1;
}

bool
log_debug_enabled(void)
{
	return atomic_load_explicit(&log_debug_on, memory_order_relaxed);
}

/*
 * strerror() may use a static buffer; strerror_r() comes in a GNU and an
 * XSI flavour depending on feature macros. Hide the difference here.
 */
const char *
log_strerror(int errnum, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
	return strerror_r(errnum, buf, len);
#else
	if (strerror_r(errnum, buf, len) != 0)
		snprintf(buf, len, "error %d", errnum);
	return buf;
#endif
}

/*
 * Write "YYYY-MM-DDTHH:MM:SS.mmm+HH:MM " into buf. Returns the length
 * written, 0 if the time could not be formatted.
 *
 * localtime_r() and strftime() cost about a thousand instructions, two
 * log lines' worth per login: each thread formats the date and the zone
 * once a second and writes only the milliseconds itself.
 */
static size_t
log_timestamp(char *buf, size_t len)
{
	static __thread time_t	 cached = (time_t)-1;
	static __thread char	 date[20], zone[7];	/* "+hh:mm" */
	struct timeval		 tv;
	struct tm		 tm;
	char			 z[8];
	long			 ms;
	const size_t		 need = 19 + 4 + 6 + 1;

	if (len <= need || gettimeofday(&tv, NULL) == -1)
		return 0;
	if (tv.tv_sec != cached) {
		if (localtime_r(&tv.tv_sec, &tm) == NULL ||
		    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm)
		    != 19 || strftime(z, sizeof(z), "%z", &tm) != 5)
			return 0;
		/* %z is "+hhmm"; ISO 8601 extended format wants "+hh:mm". */
		memcpy(zone, z, 3);
		zone[3] = ':';
		memcpy(zone + 4, z + 3, 2);
		zone[6] = '\0';
		cached = tv.tv_sec;
	}
	ms = (long)(tv.tv_usec / 1000);
	memcpy(buf, date, 19);
	buf[19] = '.';
	buf[20] = (char)('0' + ms / 100);
	buf[21] = (char)('0' + ms / 10 % 10);
	buf[22] = (char)('0' + ms % 10);
	memcpy(buf + 23, zone, 6);
	buf[29] = ' ';
	buf[30] = '\0';
	return need;
}

/*
 * Copy msg (n bytes) into out (room bytes) with every byte outside
 * printable ASCII written as \xNN: a newline cannot forge a second line,
 * an escape sequence cannot move a terminal's cursor, and bytes >= 0x80
 * (invalid UTF-8, C1 controls) never reach a log reader raw. An escape is
 * never cut in half. Returns the length written; *cut_r is set when not
 * all of msg fit.
 */
/* Byte c as the four characters "\xNN" at out. */
static void
log_hex(char *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 0xf];
}

static size_t
log_escape(char *out, size_t room, const char *msg, size_t n, bool *cut_r)
{
	size_t i, o = 0;

	*cut_r = false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)msg[i];

		if (c >= 0x20 && c < 0x7f) {
			if (o + 1 > room)
				break;
			out[o++] = (char)c;
			continue;
		}
		if (o + 4 > room)
			break;
		log_hex(out + o, c);
		o += 4;
	}
	*cut_r = i < n;
	return o;
}

/*
 * The value of key (" event=") in line, up to the next space, as a
 * journal field "FIELD=value" in out; 0 if the line has no such key.
 * Only the first occurrence counts: our keys come before any value a
 * client chose (those are quoted, but may hold " event=").
 */
static size_t
log_field(const char *line, const char *key, const char *field, char *out,
    size_t len)
{
	const char	*p = strstr(line, key), *e;
	int		 n;

	if (p == NULL)
		return 0;
	p += strlen(key);
	e = p + strcspn(p, " ");
	n = snprintf(out, len, "%s=%.*s", field, (int)(e - p), p);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/*
 * One journal entry from body (NUL-terminated, with LOG_HEAD octets
 * free in front of it), in the journal's native protocol: each field
 * "KEY=value" and a newline (no value has one: the line is escaped).
 * As log_sock_send().
 */
static int
log_journal(enum log_level lvl, char *body, size_t blen)
{
	static const char	 id[] = "SYSLOG_IDENTIFIER=" EVPOP3D_NAME "\n";
	struct iovec		 iov[5];
	char			 pri[16], ev[64], sess[64];
	size_t			 n = 0, len;
	int			 k, r;

	memcpy(body - 8, "MESSAGE=", 8);
	iov[n++] = (struct iovec){ body - 8, blen + 9 };
	k = snprintf(pri, sizeof(pri), "PRIORITY=%d\n", log_level_pri[lvl]);
	iov[n++] = (struct iovec){ pri, (size_t)k };
	iov[n++] = (struct iovec){ (void *)(uintptr_t)id, sizeof(id) - 1 };
	if ((len = log_field(body, " event=", "EVPOP3D_EVENT", ev,
	    sizeof(ev) - 1)) > 0) {
		ev[len++] = '\n';
		iov[n++] = (struct iovec){ ev, len };
	}
	if ((len = log_field(body, " sess=", "EVPOP3D_SESSION", sess,
	    sizeof(sess) - 1)) > 0) {
		sess[len++] = '\n';
		iov[n++] = (struct iovec){ sess, len };
	}
	body[blen] = '\n';		/* the fields are read: end MESSAGE */
	r = log_sock_send(&log_journal_sock, iov, n);
	body[blen] = '\0';
	return r;
}

/*
 * "Mmm dd hh:mm:ss " (RFC 3164, local time, as syslog(3) writes it) into
 * buf (at least 17 octets): the length, 0 if the time failed. Formatted
 * once a second per thread, as log_timestamp() does.
 */
static size_t
log_syslog_stamp(char *buf)
{
	static __thread time_t	 cached = (time_t)-1;
	static __thread char	 stamp[17];
	time_t			 now = time(NULL);
	struct tm		 tm;

	if (now != cached) {
		if (localtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S ", &tm) !=
		    16)
			return 0;
		cached = now;
	}
	memcpy(buf, stamp, 16);
	return 16;
}

/*
 * One syslog datagram from body (blen octets), as syslog(3) with
 * LOG_PID sends it: "<PRI>Mmm dd hh:mm:ss evpop3d[PID]: body". As
 * log_sock_send().
 */
static int
log_syslog(enum log_level lvl, const char *body, size_t blen)
{
	char		 head[64];
	struct iovec	 iov[2];
	size_t		 hlen;
	int		 n;

	n = snprintf(head, sizeof(head), "<%d>", log_level_pri[lvl] |
	    atomic_load_explicit(&log_facility, memory_order_relaxed));
	hlen = n > 0 ? (size_t)n : 0;
	hlen += log_syslog_stamp(head + hlen);
	n = snprintf(head + hlen, sizeof(head) - hlen, "%s[%ld]: ",
	    EVPOP3D_NAME, (long)pid_self());
	hlen += n > 0 ? (size_t)n : 0;
	iov[0] = (struct iovec){ head, hlen };
	iov[1] = (struct iovec){ (void *)(uintptr_t)body, blen };
	return log_sock_send(&log_syslog_sock, iov, 2);
}

/*
 * line (len octets, LOG_HEAD free in front, room for one more after) to
 * the datagram target t: as log_sock_send().
 */
static int
log_dgram(enum log_target t, enum log_level lvl, char *line, size_t len)
{
	return t == LOG_TARGET_SYSLOG ? log_syslog(lvl, line, len) :
	    log_journal(lvl, line, len);
}

/* body on stderr, with its timestamp or "<N>" in front and a newline. */
static void
log_stderr(enum log_level lvl, char *body, size_t blen)
{
	char	 head[LOG_HEAD];
	size_t	 hlen;
	int	 n;

	if (atomic_load_explicit(&log_journal_stream, memory_order_relaxed)) {
		n = snprintf(head, sizeof(head), "<%d>", log_level_pri[lvl]);
		hlen = n > 0 ? (size_t)n : 0;
	} else
		hlen = log_timestamp(head, sizeof(head));
	memcpy(body - hlen, head, hlen);
	body[blen] = '\n';
	/* A single write(2) keeps lines whole; more only on EINTR or the
	 * (rare) short write. There is nowhere to report a failure. */
	(void)fio_write_full(STDERR_FILENO, body - hlen, hlen + blen + 1);
}

/* Queue a line the receiver did not take; false when there is no room. */
static bool
log_bl_add(enum log_target t, enum log_level lvl, const char *line,
    size_t len)
{
	struct log_rec rec = { (uint16_t)len, (uint8_t)lvl, (uint8_t)t };

	if (log_bl_used + sizeof(rec) + len > sizeof(log_backlog) &&
	    log_bl_off > 0) {
		memmove(log_backlog, log_backlog + log_bl_off,
		    log_bl_used - log_bl_off);
		log_bl_used -= log_bl_off;
		log_bl_off = 0;
	}
	if (log_bl_used + sizeof(rec) + len > sizeof(log_backlog))
		return false;
	memcpy(log_backlog + log_bl_used, &rec, sizeof(rec));
	memcpy(log_backlog + log_bl_used + sizeof(rec), line, len);
	log_bl_used += sizeof(rec) + len;
	atomic_store_explicit(&log_bl_pending, true, memory_order_relaxed);
	return true;
}

/*
 * Send what the backlog holds, oldest first, until the receiver is full
 * again (false: some left) or it is empty (true). A line whose receiver
 * has gone goes to stderr. With log_out_mtx held.
 */
static bool
log_bl_send(void)
{
	char		 buf[LOG_LINE_MAX];
	struct log_rec	 rec;
	int		 r;

	while (log_bl_off < log_bl_used) {
		memcpy(&rec, log_backlog + log_bl_off, sizeof(rec));
		memcpy(buf + LOG_HEAD, log_backlog + log_bl_off + sizeof(rec),
		    rec.len);
		buf[LOG_HEAD + rec.len] = '\0';
		r = log_dgram(rec.tgt, rec.lvl, buf + LOG_HEAD, rec.len);
		if (r == 1)
			return false;
		if (r == -1)
			log_stderr(rec.lvl, buf + LOG_HEAD, rec.len);
		log_bl_off += sizeof(rec) + rec.len;
	}
	log_bl_off = log_bl_used = 0;
	atomic_store_explicit(&log_bl_pending, false, memory_order_relaxed);
	return true;
}

/*
 * The backlog is empty again after lines were dropped: say how many, on
 * the target (queued like any line if it is full again). With
 * log_out_mtx held.
 */
static void
log_dropped_report(enum log_target t)
{
	char	 buf[LOG_HEAD + 96];
	char	*line = buf + LOG_HEAD;
	size_t	 tlen;
	int	 k;

	k = snprintf(line, sizeof(buf) - LOG_HEAD - 1, "warn %sevent=log-"
	    "dropped count=%llu target=%s", proc_log_tag(&tlen),
	    (unsigned long long)log_dropped, log_target_name(t));
	log_dropped = 0;
	if (k <= 0)
		return;
	if (log_dgram(t, LOG_LVL_WARN, line, (size_t)k) == 1)
		(void)log_bl_add(t, LOG_LVL_WARN, line, (size_t)k);
}

/*
 * line (len octets, LOG_HEAD free in front, room for one more after) to
 * the datagram target t, after the backlog: sent now if the receiver
 * takes it, else queued, else (the backlog full) dropped and counted.
 * Never waits. -1 when there is no receiver: the caller writes the line
 * to stderr.
 */
static int
log_out(enum log_target t, enum log_level lvl, char *line, size_t len)
{
	int r = 0;

	pthread_mutex_lock(&log_out_mtx);
	if (log_bl_used > 0 && !log_bl_send()) {
		if (!log_bl_add(t, lvl, line, len)) {
			log_dropped++;
			atomic_fetch_add(&log_dropped_total, 1);
		}
		goto out;
	}
	if (log_dropped > 0)
		log_dropped_report(t);
	if (log_bl_used > 0)		/* the report was queued */
		(void)log_bl_add(t, lvl, line, len);
	else if ((r = log_dgram(t, lvl, line, len)) == 1) {
		(void)log_bl_add(t, lvl, line, len);	/* empty: fits */
		r = 0;
	}
out:
	pthread_mutex_unlock(&log_out_mtx);
	return r;
}

void
log_flush(void)
{
	enum log_target t;

	if (!atomic_load_explicit(&log_bl_pending, memory_order_relaxed))
		return;
	t = (enum log_target)atomic_load_explicit(&log_tgt,
	    memory_order_relaxed);
	pthread_mutex_lock(&log_out_mtx);
	if (log_bl_used > 0 && log_bl_send() && log_dropped > 0 &&
	    (t == LOG_TARGET_SYSLOG || t == LOG_TARGET_JOURNALD))
		log_dropped_report(t);
	pthread_mutex_unlock(&log_out_mtx);
}

int
log_backlog_fd(void)
{
	int fd = -1;

	if (!atomic_load_explicit(&log_bl_pending, memory_order_relaxed))
		return -1;
	pthread_mutex_lock(&log_out_mtx);
	if (log_bl_off < log_bl_used) {
		struct log_rec rec;

		memcpy(&rec, log_backlog + log_bl_off, sizeof(rec));
		fd = atomic_load(&log_sock_of(rec.tgt)->fd);
	}
	pthread_mutex_unlock(&log_out_mtx);
	return fd;
}

/*
 * At exit: what the backlog holds gets a second (at most) to go, the
 * one wait there is: the loop is over.
 */
static void
log_exit_flush(void)
{
	struct pollfd	 pfd;
	int		 i;

	for (i = 0; i < 20; i++) {
		log_flush();
		if (!atomic_load(&log_bl_pending))
			return;
		/* The socket the oldest line waits for. */
		pfd.fd = log_backlog_fd();
		pfd.events = POLLOUT;
		if (pfd.fd == -1 || poll(&pfd, 1, 50) == -1)
			return;
	}
}

/* A forked child: the parent's backlog is the parent's to send. */
static void
log_atfork_child(void)
{
	pthread_mutex_init(&log_out_mtx, NULL);
	pthread_mutex_init(&log_sock_mtx, NULL);
	log_bl_off = log_bl_used = 0;
	log_dropped = 0;
	atomic_store(&log_bl_pending, false);
}

static void
log_hooks(void)
{
	(void)atexit(log_exit_flush);
	(void)pthread_atfork(NULL, NULL, log_atfork_child);
}

/*
 * Format and write one line. with_errno appends ": strerror(errno)" using
 * the errno value the caller saw. errno is preserved for the caller.
 */
static void
log_vline(enum log_level lvl, int with_errno, uint64_t sess, const char *fmt,
    va_list ap)
{
	char	 buf[LOG_LINE_MAX], msg[LOG_LINE_MAX];
	char	 suffix[160], ebuf[128];
	char	*line = buf + LOG_HEAD;
	size_t	 len = 0, room, slen = 0, mlen;
	size_t	 max = sizeof(buf) - LOG_HEAD - 1;	/* '\n' or NUL */
	int	 saved_errno = errno, n;
	bool	 cut;
	const char *tag;
	size_t	 tlen;
	enum log_target tgt;

	if (lvl == LOG_LVL_DEBUG && !log_debug_enabled())
		return;

	/* "LEVEL sess=%016llx ", by hand: twice a session at least. */
	len = strlen(log_level_names[lvl]);
	memcpy(line, log_level_names[lvl], len);
	line[len++] = ' ';
	if (sess != 0) {
		memcpy(line + len, "sess=", 5);
		len += 5;
		for (n = 15; n >= 0; n--, sess >>= 4)
			line[len + (size_t)n] = "0123456789abcdef"[sess & 0xf];
		len += 16;
		line[len++] = ' ';
	}
	/* [server] workers > 1: which process said it (lib/proc.h: made
	 * once at the fork, copied here). */
	tag = proc_log_tag(&tlen);
	memcpy(line + len, tag, tlen);
	len += tlen;

	/* The errno text is short; reserve room so a long message cannot
	 * push it out of the line. */
	if (with_errno) {
		n = snprintf(suffix, sizeof(suffix), ": %s",
		    log_strerror(saved_errno, ebuf, sizeof(ebuf)));
		if (n > 0)
			slen = (size_t)n < sizeof(suffix) ?
			    (size_t)n : sizeof(suffix) - 1;
	}

	n = fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		n = snprintf(msg, sizeof(msg), "(bad log format '%s')", fmt);
	mlen = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n :
	    sizeof(msg) - 1;

	/*
	 * Room for the message: everything but the suffix and the
	 * truncation mark. One event, one line, in printable ASCII.
	 */
	room = max - len - slen - strlen(LOG_TRUNC_MARK);
	len += log_escape(line + len, room, msg, mlen, &cut);
	if (cut || (size_t)n >= sizeof(msg)) {
		/* Truncated: mark it so nobody takes the line as complete. */
		memcpy(line + len, LOG_TRUNC_MARK, strlen(LOG_TRUNC_MARK));
		len += strlen(LOG_TRUNC_MARK);
	}

	memcpy(line + len, suffix, slen);
	len += slen;
	line[len] = '\0';

	switch ((tgt = atomic_load_explicit(&log_tgt, memory_order_relaxed))) {
	case LOG_TARGET_SYSLOG:
	case LOG_TARGET_JOURNALD:
		/* Never waits (a full receiver: queued or dropped). */
		if (log_out(tgt, lvl, line, len) == -1)
			log_stderr(lvl, line, len);	/* no receiver */
		break;
	default:
		log_stderr(lvl, line, len);
		break;
	}
	errno = saved_errno;
}

/* Bytes byte c takes inside log_quote()'s quotes. */
static size_t
log_quote_width(unsigned char c)
{
	if (c == '"' || c == '\\')
		return 2;
	return c >= 0x20 && c < 0x7f ? 1 : 4;
}

const char *
log_quote(char *buf, size_t len, const char *s)
{
	const unsigned char	*p;
	size_t			 o = 0, w, total = 3;	/* quotes, NUL */
	bool			 cut;

	if (len < 6) {			/* room for "..." at least */
		if (len > 0)
			buf[0] = '\0';
		return buf;
	}
	if (s == NULL)
		s = "";
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		total += log_quote_width(*p);
	cut = total > len;
	buf[o++] = '"';
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		w = log_quote_width(*p);
		/* Cut: keep room for "...", the quote and the NUL. */
		if (cut && o + w + 5 > len)
			break;
		if (w == 2) {
			buf[o++] = '\\';
			buf[o++] = (char)*p;
		} else if (w == 1)
			buf[o++] = (char)*p;
		else {
			log_hex(buf + o, *p);
			o += 4;
		}
	}
	if (cut) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

void
log_vsession(uint64_t sess, const char *fmt, va_list ap)
{
	log_vline(LOG_LVL_INFO, 0, sess, fmt, ap);
}

void
log_vsession_debug(uint64_t sess, const char *fmt, va_list ap)
{
	log_vline(LOG_LVL_DEBUG, 0, sess, fmt, ap);
}

void
log_vsession_warn(uint64_t sess, const char *fmt, va_list ap)
{
	log_vline(LOG_LVL_WARN, 0, sess, fmt, ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_DEBUG, 0, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_INFO, 0, 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_WARN, 1, 0, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_WARN, 0, 0, fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, 1, 0, fmt, ap);
	va_end(ap);
}

void
log_errorx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, 0, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, 1, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
