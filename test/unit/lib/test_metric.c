/*
 * metric: the exposition text (both formats), histogram buckets at their
 * bounds, a tally that never holds more than METRIC_TALLY_MAX values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "lib/metric.h"

/* The writer's output as a string (freed by the caller). */
static char *
text_of(struct evbuffer *b)
{
	size_t	 n = evbuffer_get_length(b);
	char	*s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void
test_family_and_samples(void **state)
{
	struct metric_writer	 w = { .format = METRIC_TEXT };
	char			*s;

	(void)state;
	w.out = evbuffer_new();
	metric_family(&w, "x_total", METRIC_COUNTER, "Things.");
	metric_u64(&w, "x_total", NULL, NULL, 18446744073709551615ULL);
	metric_u64(&w, "x_total", "reason", "a\"b\\c\nd", 2);
	metric_end(&w);
	s = text_of(w.out);
	assert_string_equal(s,
	    "# HELP x_total Things.\n# TYPE x_total counter\n"
	    "x_total 18446744073709551615\n"
	    "x_total{reason=\"a\\\"b\\\\c\\nd\"} 2\n");
	free(s);

	/* OpenMetrics: the counter family without _total, and # EOF. */
	w.format = METRIC_OPENMETRICS;
	metric_family(&w, "x_total", METRIC_COUNTER, "Things.");
	metric_family(&w, "g", METRIC_GAUGE, "G.");
	metric_end(&w);
	s = text_of(w.out);
	assert_string_equal(s,
	    "# HELP x Things.\n# TYPE x counter\n"
	    "# HELP g G.\n# TYPE g gauge\n# EOF\n");
	free(s);
	evbuffer_free(w.out);
}

static void
test_hist_bounds(void **state)
{
	struct metric_hist	 h;
	struct metric_writer	 w = { .format = METRIC_TEXT };
	char			*s;

	(void)state;
	memset(&h, 0, sizeof(h));
	metric_hist_observe(&h, 0);		/* le 0.0001 */
	metric_hist_observe(&h, 100);		/* le 0.0001: bounds are <= */
	metric_hist_observe(&h, 101);		/* le 0.00025 */
	metric_hist_observe(&h, 10000000);	/* le 10 */
	metric_hist_observe(&h, 10000001);	/* +Inf only */
	assert_int_equal(h.bucket[0], 2);
	assert_int_equal(h.bucket[1], 1);
	assert_int_equal(h.bucket[METRIC_HIST_BUCKETS - 1], 1);
	assert_int_equal(h.bucket[METRIC_HIST_BUCKETS], 1);
	assert_int_equal(h.count, 5);

	w.out = evbuffer_new();
	metric_hist_write(&w, "lat_seconds", "command", "RETR", &h);
	s = text_of(w.out);
	assert_non_null(strstr(s, "lat_seconds_bucket{command=\"RETR\","
	    "le=\"0.0001\"} 2\n"));
	assert_non_null(strstr(s, "lat_seconds_bucket{command=\"RETR\","
	    "le=\"0.00025\"} 3\n"));
	assert_non_null(strstr(s, "lat_seconds_bucket{command=\"RETR\","
	    "le=\"5\"} 3\n"));
	assert_non_null(strstr(s, "lat_seconds_bucket{command=\"RETR\","
	    "le=\"10\"} 4\n"));
	assert_non_null(strstr(s, "lat_seconds_bucket{command=\"RETR\","
	    "le=\"+Inf\"} 5\n"));
	assert_non_null(strstr(s, "lat_seconds_sum{command=\"RETR\"} "
	    "20.000202\n"));
	assert_non_null(strstr(s, "lat_seconds_count{command=\"RETR\"} 5\n"));
	free(s);

	/* Without a label. */
	metric_hist_write(&w, "t_seconds", NULL, NULL, &h);
	s = text_of(w.out);
	assert_non_null(strstr(s, "t_seconds_bucket{le=\"+Inf\"} 5\n"));
	assert_non_null(strstr(s, "\nt_seconds_count 5\n"));
	free(s);
	evbuffer_free(w.out);
}

static void
test_tally_bounded(void **state)
{
	struct metric_tally	*t;
	char			 name[64];
	int			 i;

	(void)state;
	t = calloc(1, sizeof(*t));
	assert_non_null(t);
	metric_tally_add(t, "quit");
	metric_tally_add(t, "quit");
	metric_tally_add(t, NULL);
	metric_tally_add(t, "");
	assert_int_equal(metric_tally_get(t, "quit"), 2);
	assert_int_equal(metric_tally_get(t, "unknown"), 2);
	/* 100 distinct values more: the table fills, the rest is "other". */
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		metric_tally_add(t, name);
	}
	assert_int_equal(t->n, METRIC_TALLY_MAX);
	assert_int_equal(metric_tally_get(t, "r0"), 1);
	assert_int_equal(metric_tally_get(t, "r28"), 1);
	assert_int_equal(metric_tally_get(t, "r29"), 0);
	assert_int_equal(metric_tally_get(t, "other"), 100 - 29);
	/* Known values still count in their own slot. */
	metric_tally_add(t, "quit");
	assert_int_equal(metric_tally_get(t, "quit"), 3);
	/* A long value is cut, and counts with its cut self. */
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memset(t, 0, sizeof(*t));
	metric_tally_add(t, name);
	metric_tally_add(t, name);
	assert_int_equal(t->n, 1);
	assert_int_equal(strlen(t->e[0].value), METRIC_LABEL_MAX - 1);
	assert_int_equal(t->e[0].count, 2);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_hist_bounds),
		cmocka_unit_test(test_tally_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
