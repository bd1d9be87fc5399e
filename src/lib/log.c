/*
 * log: one line per call on stderr.
 *
 * Line format: "<level> <message>\n", level being one of debug, info, warn,
 * error. Every byte outside printable ASCII is written as \xNN. Under
 * systemd, journald stamps each line itself; when stderr is a terminal we
 * prefix an ISO-8601 local timestamp so a developer running the daemon in
 * the foreground still sees when things happened.
 *
 * Every line is formatted into a stack buffer and written with a single
 * write(2) of at most LOG_LINE_MAX octets. That is <= PIPE_BUF, so lines
 * written by several threads (the event loop and the auth workers) never
 * interleave on a pipe, and in practice not on journald's stream socket
 * either. The only shared state is two flags set by log_init().
 */

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/log.h"

/* Longest line we emit, newline included; longer messages are cut. */
#define LOG_LINE_MAX	4096
#define LOG_TRUNC_MARK	"..."

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

/* Relaxed atomics: written at start, read from any thread. */
static atomic_bool log_debug_on;
static atomic_bool log_tty;	/* stderr is a terminal: add timestamps */

static void	log_vline(enum log_level, int, uint64_t, const char *, va_list)
		    __attribute__((format(printf, 4, 0)));

void
log_init(bool debug)
{
	atomic_store_explicit(&log_debug_on, debug, memory_order_relaxed);
	/* Asked once here, not with an ioctl per line. */
	atomic_store_explicit(&log_tty, isatty(STDERR_FILENO),
	    memory_order_relaxed);
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
 */
static size_t
log_timestamp(char *buf, size_t len)
{
	struct timeval	 tv;
	struct tm	 tm;
	char		 date[32], zone[8];
	int		 n;

	if (gettimeofday(&tv, NULL) == -1 ||
	    localtime_r(&tv.tv_sec, &tm) == NULL)
		return 0;
	if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
	    strftime(zone, sizeof(zone), "%z", &tm) != 5)
		return 0;
	/* %z is "+hhmm"; ISO 8601 extended format wants "+hh:mm". */
	n = snprintf(buf, len, "%s.%03ld%.3s:%s ", date,
	    (long)(tv.tv_usec / 1000), zone, zone + 3);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
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
 * Format and write one line. with_errno appends ": strerror(errno)" using
 * the errno value the caller saw. errno is preserved for the caller.
 */
static void
log_vline(enum log_level lvl, int with_errno, uint64_t sess, const char *fmt,
    va_list ap)
{
	char	 line[LOG_LINE_MAX], msg[LOG_LINE_MAX];
	char	 suffix[160], ebuf[128];
	size_t	 len = 0, room, slen = 0, mlen;
	int	 saved_errno = errno, n;
	bool	 cut;

	if (lvl == LOG_LVL_DEBUG && !log_debug_enabled())
		return;

	if (atomic_load_explicit(&log_tty, memory_order_relaxed))
		len = log_timestamp(line, sizeof(line));
	if (sess != 0)
		n = snprintf(line + len, sizeof(line) - len, "%s sess=%016llx ",
		    log_level_names[lvl], (unsigned long long)sess);
	else
		n = snprintf(line + len, sizeof(line) - len, "%s ",
		    log_level_names[lvl]);
	if (n > 0)
		len += (size_t)n;

	/* The errno text is short; reserve room so a long message cannot
	 * push it out of the line. */
	if (with_errno) {
		n = snprintf(suffix, sizeof(suffix), ": %s",
		    log_strerror(saved_errno, ebuf, sizeof(ebuf)));
		if (n > 0)
			slen = (size_t)n < sizeof(suffix) ?
			    (size_t)n : sizeof(suffix) - 1;
	}

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		n = snprintf(msg, sizeof(msg), "(bad log format '%s')", fmt);
	mlen = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n :
	    sizeof(msg) - 1;

	/*
	 * Room for the message: everything but the suffix, the '\n' and the
	 * truncation mark. One event, one line, in printable ASCII.
	 */
	room = sizeof(line) - len - slen - 1 - strlen(LOG_TRUNC_MARK);
	len += log_escape(line + len, room, msg, mlen, &cut);
	if (cut || (size_t)n >= sizeof(msg)) {
		/* Truncated: mark it so nobody takes the line as complete. */
		memcpy(line + len, LOG_TRUNC_MARK, strlen(LOG_TRUNC_MARK));
		len += strlen(LOG_TRUNC_MARK);
	}

	memcpy(line + len, suffix, slen);
	len += slen;
	line[len++] = '\n';

	/* A single write(2) keeps lines whole; more only on EINTR or the
	 * (rare) short write. There is nowhere to report a failure. */
	(void)fio_write_full(STDERR_FILENO, line, len);
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
