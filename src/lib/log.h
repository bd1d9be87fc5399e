/*
 * log: one line per event on stderr (systemd/journald style), key=value.
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

/*
 * Enable debug lines, and note whether stderr is a terminal (then lines
 * get a timestamp). Without log_init(): info and above, no timestamps.
 */
void	log_init(bool debug);
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
