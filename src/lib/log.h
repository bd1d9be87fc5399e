/*
 * log: one line per event, key=value, to stderr, syslog or the journal
 * ([log] target).
 *
 * The log_warn() family appends ": strerror(errno)"; the *x variants do not.
 * fatal()/fatalx() log and exit(1). Never pass a password to any of these.
 */
#ifndef EVPOP3D_LOG_H
#define EVPOP3D_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Bytes log_quote() needs for a value of n bytes, quotes and NUL included. */
#define LOG_QUOTED_SIZE(n)	(4 * (n) + 3)

/* [log] target */
enum log_target {
	LOG_TARGET_AUTO,	/* journald if stderr is the journal, else stderr */
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_JOURNALD,
};

struct log_params {
	bool		 debug;		/* debug lines too */
	enum log_target	 target;
	int		 facility;	/* syslog(3) LOG_MAIL etc. */
};

/*
 * Apply p: from then on every line goes to p's target, at the same
 * priorities (debug, info, warning, err). Safe while other threads log
 * (a line goes whole to the old target or the new one): SIGHUP calls it
 * with a reloaded [log]. Looks at stderr again (is it the journal,
 * $JOURNAL_STREAM). Without a call: info and above on stderr.
 */
void	log_configure(const struct log_params *p);
/*
 * journald and syslog: a line is one datagram, sent without waiting. A
 * line the receiver's socket does not take (it is full: the logger is
 * slow or hung) waits in a backlog of 64 KiB, in order, and goes with
 * the next line or at log_flush(); a line that finds the backlog full
 * is dropped, and once the backlog has gone the count follows ("warn
 * event=log-dropped count=N target=journald").
 *
 * The loop: while log_backlog_fd() is a socket (lines wait for it),
 * call log_flush() when it is writable; check every LOG_FLUSH_MS for
 * lines queued since. At exit the backlog gets a second.
 * log_dropped_count(): lines dropped since the start.
 */
#define LOG_FLUSH_MS	1000
void	log_flush(void);
int	log_backlog_fd(void);
uint64_t log_dropped_count(void);
/* log_configure() with target auto, facility mail. */
void	log_init(bool debug);
/* A target's name ("journald"). */
const char *log_target_name(enum log_target t);
/* Config values: "auto", "stderr", "syslog", "journald"; 0 or -1. */
int	log_target_parse(const char *s, enum log_target *t_r);
/* "mail", "daemon", "user", "local0".."local7" ...; 0 or -1. */
int	log_facility_parse(const char *s, int *facility_r);
/* strerror() into buf, thread-safe, whichever strerror_r() libc has. */
const char *log_strerror(int errnum, char *buf, size_t len);
bool	log_debug_enabled(void);

/*
 * A value a client (or mail) chose, ready for a key=value line: s in
 * double quotes, with '"' and '\\' backslash-escaped and every byte
 * outside printable ASCII as \xNN, so it can never end early or look
 * like another key ("rip=..."). Cut with "..." inside the quotes when
 * len is too small; LOG_QUOTED_SIZE(strlen(s)) always suffices. Writes
 * into buf and returns it; s NULL is "".
 */
const char *log_quote(char *buf, size_t len, const char *s);

void	log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void	log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
/* An info line "sess=<16 hex digits> ..." (sess != 0). */
void	log_vsession(uint64_t sess, const char *fmt, va_list ap)
	    LOG_PRINTF(2, 0);
/* The same at debug level, and at warning level. */
void	log_vsession_debug(uint64_t sess, const char *fmt, va_list ap)
	    LOG_PRINTF(2, 0);
void	log_vsession_warn(uint64_t sess, const char *fmt, va_list ap)
	    LOG_PRINTF(2, 0);
void	log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void	log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
/* As log_warn()/log_warnx(), at level error; the caller goes on. */
void	log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
void	log_errorx(const char *fmt, ...) LOG_PRINTF(1, 2);
void	fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void	fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

#endif
