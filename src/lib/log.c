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
 *  - syslog: syslog(3) with LOG_PID and [log] syslog_facility; glibc
 *    sends one datagram to /dev/log per line.
 *  - journald: sd_journal_sendv(3), one datagram with MESSAGE=, PRIORITY=,
 *    SYSLOG_IDENTIFIER=evpop3d and EVPOP3D_EVENT=/EVPOP3D_SESSION= when
 *    the line has event= and sess=. Without a journal socket at
 *    log_configure() (where libsystemd would drop lines silently), and
 *    when a send fails, lines go to stderr instead, not nowhere.
 *
 * Every line is formatted into a stack buffer and handed over with one
 * write(2) of at most LOG_LINE_MAX octets (<= PIPE_BUF: lines of several
 * threads never interleave on a pipe or journald's stream), one syslog()
 * or one sd_journal_sendv() datagram. All three are thread-safe (glibc's
 * syslog takes a lock; libsystemd's journal socket is set up once,
 * atomically). The shared state is a few atomics set by log_configure().
 *
 * Blocking: a write to a full pipe, and a datagram to /dev/log or the
 * journal whose reader is stuck, wait until the reader catches up; the
 * journal socket has an 8 MB send buffer (libsystemd), journald and
 * rsyslog read at once and drop under their own rate limits rather than
 * stop reading. We log few lines per session (login, disconnect), so a
 * working logger never holds the loop; a hung one would, as it would
 * hold every other daemon on the host.
 */

#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
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

#include <systemd/sd-journal.h>

#include "lib/evpop3d.h"
#include "lib/fileio.h"
#include "lib/fmt.h"
#include "lib/log.h"
#include "lib/proc.h"

/* Longest line we emit, newline included; longer messages are cut. */
#define LOG_LINE_MAX	4096
/* Room in front of a line for the timestamp or "<N>", or "MESSAGE=". */
#define LOG_HEAD	40
#define LOG_TRUNC_MARK	"..."
/* Where sd_journal_sendv() sends (systemd-journald.service(8)). */
#define LOG_JOURNAL_SOCKET	"/run/systemd/journal/socket"

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

void
log_configure(const struct log_params *p)
{
	enum log_target	 t = p->target, old;
	bool		 journal = log_stderr_is_journal(), fallback = false;

	if (t == LOG_TARGET_AUTO)
		t = journal ? LOG_TARGET_JOURNALD : LOG_TARGET_STDERR;
	/* sd_journal_sendv() drops lines silently without a journal
	 * (ENOENT): keep them on stderr instead. */
	if (t == LOG_TARGET_JOURNALD && access(LOG_JOURNAL_SOCKET, F_OK) == -1) {
		t = LOG_TARGET_STDERR;
		fallback = true;
	}
	tzset();	/* localtime_r() need not read TZ itself */
	atomic_store_explicit(&log_debug_on, p->debug, memory_order_relaxed);
	atomic_store_explicit(&log_journal_stream, journal,
	    memory_order_relaxed);
	/* Open before the switch, close after: no line finds it closed
	 * (and glibc's syslog() would reopen it anyway). */
	if (t == LOG_TARGET_SYSLOG)
		openlog(EVPOP3D_NAME, LOG_PID | LOG_NDELAY, p->facility);
	old = atomic_exchange_explicit(&log_tgt, t, memory_order_relaxed);
	if (old == LOG_TARGET_SYSLOG && t != LOG_TARGET_SYSLOG)
		closelog();
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
 * free in front of it). -1 if the journal did not take it.
 */
static int
log_journal(enum log_level lvl, char *body, size_t blen)
{
	static const char	 id[] = "SYSLOG_IDENTIFIER=" EVPOP3D_NAME;
	struct iovec		 iov[5];
	char			 pri[16], ev[64], sess[64];
	size_t			 n = 0, len;
	int			 k;

	memcpy(body - 8, "MESSAGE=", 8);
	iov[n++] = (struct iovec){ body - 8, blen + 8 };
	k = snprintf(pri, sizeof(pri), "PRIORITY=%d", log_level_pri[lvl]);
	iov[n++] = (struct iovec){ pri, (size_t)k };
	iov[n++] = (struct iovec){ (void *)(uintptr_t)id, sizeof(id) - 1 };
	if ((len = log_field(body, " event=", "EVPOP3D_EVENT", ev,
	    sizeof(ev))) > 0)
		iov[n++] = (struct iovec){ ev, len };
	if ((len = log_field(body, " sess=", "EVPOP3D_SESSION", sess,
	    sizeof(sess))) > 0)
		iov[n++] = (struct iovec){ sess, len };
	return sd_journal_sendv(iov, (int)n) < 0 ? -1 : 0;
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

	switch (atomic_load_explicit(&log_tgt, memory_order_relaxed)) {
	case LOG_TARGET_SYSLOG:
		syslog(log_level_pri[lvl], "%s", line);
		break;
	case LOG_TARGET_JOURNALD:
		if (log_journal(lvl, line, len) == 0)
			break;
		/* No journal (not running, or full): not lost, on stderr. */
		log_stderr(lvl, line, len);
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
