/*
 * fmt: vsnprintf() for the conversions replies and log lines use most,
 * at a fifth of glibc's cost (which parses the format into a general
 * machine for every call: a tenth of a session's instructions went
 * there). %s %.*s %c %d %i %u %ld %lu %lld %llu %zu %zd %x %llx and %%;
 * a format with anything else (flags, widths, precision on numbers,
 * floating point, %p, %n) is handed to vsnprintf() whole.
 */
#ifndef EVPOP3D_FMT_H
#define EVPOP3D_FMT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* As vsnprintf(): the length the whole output needs, NUL not counted;
 * buf always NUL-terminated when len > 0. */
int	fmt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
	    __attribute__((format(printf, 3, 0)));

/*
 * n in decimal, written backwards to end from end (no NUL): returns where
 * the digits start. Room for 20 digits before end.
 */
static inline char *
fmt_u64_back(char *end, uint64_t n)
{
	do {
		*--end = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	return end;
}

/*
 * snprintf(buf, len, "%s", s) without the format machine (600
 * instructions a call): s cut to len - 1 octets, NUL-terminated.
 */
static inline void
fmt_copy(char *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	if (len == 0)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
}

#endif
