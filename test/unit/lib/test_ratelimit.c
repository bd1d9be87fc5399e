/*
 * ratelimit: the first event is reported at once, the rest once per
 * window with their count, and no event is lost or counted twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lib/ratelimit.h"

#define WINDOW	1000

static void
test_first_event_at_once(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, WINDOW);
	assert_true(ratelimit_wait_ms(&rl, 5) == UINT64_MAX);
	assert_int_equal(ratelimit_due(&rl, 5), 0);
	assert_int_equal(ratelimit_hit(&rl, 5), 1);
	assert_true(ratelimit_wait_ms(&rl, 5) == UINT64_MAX);
}

static void
test_burst_summed_per_window(void **state)
{
	struct ratelimit rl;
	uint64_t	 t;

	(void)state;
	ratelimit_init(&rl, WINDOW);
	assert_int_equal(ratelimit_hit(&rl, 10000), 1);
	/* 999 more within the window: held. */
	for (t = 10001; t < 11000; t++)
		assert_int_equal(ratelimit_hit(&rl, t), 0);
	assert_int_equal(ratelimit_wait_ms(&rl, 10500), 500);
	assert_int_equal(ratelimit_due(&rl, 10999), 0);
	assert_int_equal(ratelimit_wait_ms(&rl, 10999), 1);
	/* The first event after the window reports them all, itself too. */
	assert_int_equal(ratelimit_hit(&rl, 11000), 1000);
	assert_true(ratelimit_wait_ms(&rl, 11000) == UINT64_MAX);
	/* The window starts again from that line. */
	assert_int_equal(ratelimit_hit(&rl, 11500), 0);
	assert_int_equal(ratelimit_hit(&rl, 11999), 0);
	assert_int_equal(ratelimit_hit(&rl, 12000), 3);
}

static void
test_due_flushes_leftover(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, WINDOW);
	assert_int_equal(ratelimit_hit(&rl, 0), 1);
	assert_int_equal(ratelimit_hit(&rl, 1), 0);
	assert_int_equal(ratelimit_hit(&rl, 2), 0);
	assert_int_equal(ratelimit_due(&rl, 999), 0);
	assert_int_equal(ratelimit_due(&rl, 1000), 2);
	assert_int_equal(ratelimit_due(&rl, 5000), 0);	/* nothing twice */
	/* The flush was a line: the next event waits a window from it. */
	assert_int_equal(ratelimit_hit(&rl, 1500), 0);
	assert_int_equal(ratelimit_wait_ms(&rl, 1500), 500);
	assert_int_equal(ratelimit_due(&rl, 2000), 1);
	/* Quiet for long: the next event is reported at once again. */
	assert_int_equal(ratelimit_hit(&rl, 60000), 1);
	/* At exit: whatever is pending, window or not. */
	assert_int_equal(ratelimit_flush(&rl, 60001), 0);
	assert_int_equal(ratelimit_hit(&rl, 60002), 0);
	assert_int_equal(ratelimit_flush(&rl, 60003), 1);
	assert_int_equal(ratelimit_flush(&rl, 60004), 0);
}

static void
test_clock_back(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, WINDOW);
	assert_int_equal(ratelimit_hit(&rl, 5000), 1);
	assert_int_equal(ratelimit_hit(&rl, 5100), 0);
	/* A clock that went back never holds the count for longer. */
	assert_int_equal(ratelimit_wait_ms(&rl, 100), 0);
	assert_int_equal(ratelimit_hit(&rl, 100), 2);
}

/* Random event times and flushes: the sum of counts is the number of
 * events, and lines are at least a window apart. */
static void
test_random_conservation(void **state)
{
	struct ratelimit rl;
	uint64_t	 t = 1, events = 0, reported = 0, n, last = 0;
	uint32_t	 x = 2463534242u;
	int		 i, lines = 0;

	(void)state;
	ratelimit_init(&rl, WINDOW);
	for (i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		t += x % 7;
		if (x % 11 == 0)
			n = ratelimit_due(&rl, t);
		else {
			events++;
			n = ratelimit_hit(&rl, t);
		}
		if (n > 0) {
			if (lines > 0)
				assert_true(t - last >= WINDOW);
			last = t;
			lines++;
			reported += n;
		}
	}
	reported += ratelimit_due(&rl, t + WINDOW);
	assert_int_equal(reported, events);
	assert_true(lines <= (int)(t / WINDOW) + 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_event_at_once),
		cmocka_unit_test(test_burst_summed_per_window),
		cmocka_unit_test(test_due_flushes_leftover),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_random_conservation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
