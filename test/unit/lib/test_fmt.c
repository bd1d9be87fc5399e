/*
 * fmt: the small vsnprintf() gives what vsnprintf() gives, for every
 * conversion it takes, every buffer length (truncation) and the
 * formats it hands on.
 */
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "lib/fmt.h"

static int
ours(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

/* The same call through both, at every length from 0 to past the end. */
#define SAME(...) do {							\
	char	 want[256], got[256];					\
	int	 wn, gn;						\
	size_t	 len;							\
									\
	for (len = 0; len < sizeof(want); len++) {			\
		memset(want, 'W', sizeof(want));			\
		memset(got, 'W', sizeof(got));				\
		wn = snprintf(want, len, __VA_ARGS__);			\
		gn = ours(got, len, __VA_ARGS__);			\
		assert_int_equal(gn, wn);				\
		assert_memory_equal(got, want, sizeof(want));		\
	}								\
} while (0)

static void
test_conversions(void **state)
{
	(void)state;
	SAME("+OK");
	SAME("%%");
	SAME("+OK %s ready.", "evpop3d");
	SAME("%s", "");
	SAME("-ERR %s %s", "[SYS/TEMP]", "Cannot read.");
	SAME("%.*s|", 3, "abcdef");
	SAME("%.*s|", 10, "abc");
	SAME("%.*s|", 0, "abc");
	SAME("%c%c", 'x', 'y');
	SAME("%d %d %d %d", 0, -1, INT_MAX, INT_MIN);
	SAME("%i", -42);
	SAME("%u %u", 0u, UINT_MAX);
	SAME("%ld %ld", LONG_MAX, LONG_MIN);
	SAME("%lu", ULONG_MAX);
	SAME("%lld %lld", LLONG_MAX, LLONG_MIN);
	SAME("%llu", ULLONG_MAX);
	SAME("%zu %zd %zd", SIZE_MAX, (ssize_t)-5, (ssize_t)SSIZE_MAX);
	SAME("%x %lx %llx %zx", 0xdeadbeefu, 0x1234567890abcdefUL,
	    0xffffffffffffffffULL, (size_t)255);
	SAME("%" PRIu64 " octets %" PRId64, UINT64_MAX, INT64_MIN);
	SAME("+OK Logged in, %zu messages (%llu octets).", (size_t)10,
	    42364ULL);
	SAME("a%sb%dc%%d%ue", "-", 7, 9u);
}

/* What it does not take goes to vsnprintf() whole, arguments intact. */
static void
test_handed_on(void **state)
{
	(void)state;
	SAME("%s %5d", "x", 42);
	SAME("%d %.1f", 3, 2.5);
	SAME("%-8s|", "ab");
	SAME("%08x", 0xabcu);
	SAME("%s %p", "p", (void *)0);
	SAME("%zu %hhu", (size_t)1, 200);
	SAME("%.3d", 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_handed_on),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
