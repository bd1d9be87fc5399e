/*
 * swarm hist: bucket boundaries, relative error, percentiles against a
 * sorted reference, merge, empty histograms, cumulative iteration.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

#define NRANDOM	200000

/* xorshift64*: deterministic, so a failure is reproducible. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* Roughly log-uniform in [1, 2^bits). */
static uint64_t
rnd_log(uint64_t *s, unsigned bits)
{
	unsigned	e = (unsigned)(rnd(s) % bits);

	return (rnd(s) >> (63 - e)) | (UINT64_C(1) << e);
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t
ref_percentile(const uint64_t *v, size_t n, double p)
{
	size_t	rank;

	if (p >= 100.0)
		return v[n - 1];
	rank = (size_t)ceil(p / 100.0 * (double)n - 1e-6);
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static void
test_small_values_exact(void **state)
{
	uint64_t	v;

	(void)state;
	assert_int_equal(HIST_NBUCKETS, 976);
	/* Below 16 exact by design; 16..31 are exact too (width 1). */
	for (v = 0; v < 32; v++) {
		assert_int_equal(hist_bucket(v), v);
		assert_int_equal(hist_bucket_upper((unsigned)v), v);
	}
	/* 32..63: width 2. */
	assert_int_equal(hist_bucket(32), 32);
	assert_int_equal(hist_bucket(33), 32);
	assert_int_equal(hist_bucket(34), 33);
	assert_int_equal(hist_bucket_upper(32), 33);
}

static void
test_powers_of_two(void **state)
{
	uint64_t	v;
	unsigned	e, b;

	(void)state;
	for (e = 0; e < 64; e++) {
		v = UINT64_C(1) << e;
		b = hist_bucket(v);
		assert_true(b > 0);
		assert_true(b < HIST_NBUCKETS);
		assert_true(hist_bucket_upper(b) >= v);
		/* v opens its bucket, v-1 closes the one before. */
		assert_int_equal(hist_bucket(v - 1), b - 1);
		assert_true(hist_bucket_upper(b - 1) == v - 1);
		if (e >= 4) {
			assert_int_equal(b, (e - 3) * 16);
			/* Last value below the next power of two. */
			assert_int_equal(hist_bucket(2 * v - 1),
			    (e - 3) * 16 + 15);
		}
	}
	assert_int_equal(hist_bucket(UINT64_MAX), HIST_NBUCKETS - 1);
	assert_true(hist_bucket_upper(HIST_NBUCKETS - 1) == UINT64_MAX);
}

static void
test_every_bucket_contiguous(void **state)
{
	uint64_t	up = 0, lo;
	unsigned	b;

	(void)state;
	lo = 0;
	for (b = 0; b < HIST_NBUCKETS; b++) {
		up = hist_bucket_upper(b);
		assert_true(up >= lo);
		assert_int_equal(hist_bucket(lo), b);
		assert_int_equal(hist_bucket(up), b);
		/* Width relative to the lowest value: at most 1/16. */
		assert_true((up - lo) <= lo / 16);
		if (b + 1 < HIST_NBUCKETS) {
			assert_int_equal(hist_bucket(up + 1), b + 1);
			lo = up + 1;
		}
	}
	assert_true(up == UINT64_MAX);
}

static void
test_relative_error_random(void **state)
{
	uint64_t	s = 42, v, up;
	int		i;

	(void)state;
	for (i = 0; i < NRANDOM; i++) {
		v = rnd_log(&s, 64);
		up = hist_bucket_upper(hist_bucket(v));
		assert_true(up >= v);
		assert_true(up - v <= v / 16);
	}
}

static void
check_percentiles(const uint64_t *sorted, size_t n, const struct hist *h)
{
	static const double	ps[] = { 0.0, 1.0, 50.0, 90.0, 99.0, 99.9,
				    99.99, 100.0 };
	uint64_t		ref, got;
	size_t			i;

	for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		ref = ref_percentile(sorted, n, ps[i]);
		got = hist_percentile(h, ps[i]);
		if (got < ref || (double)got > (double)ref * 1.0625)
			fail_msg("p%g: got %llu, reference %llu (n=%zu)",
			    ps[i], (unsigned long long)got,
			    (unsigned long long)ref, n);
	}
	assert_true(hist_percentile(h, 100.0) == sorted[n - 1]);
	assert_true(hist_percentile(h, 0.0) == sorted[0]);
}

static void
test_percentiles_vs_sorted(void **state)
{
	static const size_t	 sizes[] = { 1, 2, 3, 10, 999, 1000, 1001,
				    NRANDOM };
	struct hist		 h;
	uint64_t		*v, s = 7, sum;
	double			 mean;
	size_t			 k, i, n;

	(void)state;
	v = malloc(NRANDOM * sizeof(*v));
	assert_non_null(v);
	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		n = sizes[k];
		hist_init(&h);
		sum = 0;
		for (i = 0; i < n; i++) {
			/* Latency-like (up to ~2 min), or spread wider. */
			v[i] = rnd_log(&s, k % 2 ? 40 : 27);
			sum += v[i];
			hist_add(&h, v[i]);
		}
		qsort(v, n, sizeof(*v), u64_cmp);
		assert_true(h.count == n);
		assert_true(h.sum == sum);
		assert_true(h.min == v[0]);
		assert_true(h.max == v[n - 1]);
		mean = (double)sum / (double)n;
		assert_true(fabs(hist_mean(&h) - mean) < 1e-6 * mean);
		check_percentiles(v, n, &h);
	}
	free(v);
}

/* Ranks that p/100*n computes inexactly must still be nearest-rank. */
static void
test_percentile_rank_rounding(void **state)
{
	struct hist	h;
	uint64_t	i;

	(void)state;
	/*
	 * 99.9 / 100 * 1000 is 999.0000000000001 in doubles: rank must be
	 * 999 (a 100), not 1000 (the outlier).
	 */
	hist_init(&h);
	for (i = 0; i < 999; i++)
		hist_add(&h, 100);
	hist_add(&h, 1000000);
	assert_true(hist_percentile(&h, 99.9) <= 100 * 1.0625);
	assert_true(hist_percentile(&h, 99.95) == 1000000);
	/* p70 of ten values is the 7th. */
	hist_init(&h);
	for (i = 1; i <= 10; i++)
		hist_add(&h, i * 100000);
	assert_true(hist_percentile(&h, 70.0) < 800000);
	assert_true(hist_percentile(&h, 70.0) >= 700000);
	/* Small exact values come back exactly. */
	hist_init(&h);
	for (i = 1; i <= 10; i++)
		hist_add(&h, i);
	assert_true(hist_percentile(&h, 10.0) == 1);
	assert_true(hist_percentile(&h, 50.0) == 5);
	assert_true(hist_percentile(&h, 51.0) == 6);
	assert_true(hist_percentile(&h, 90.0) == 9);
	assert_true(hist_percentile(&h, 100.0) == 10);
}

/* A single value is every percentile: clamping to [min, max]. */
static void
test_single_value(void **state)
{
	struct hist	h;

	(void)state;
	hist_init(&h);
	hist_add(&h, 1000001);
	assert_true(hist_percentile(&h, 0.0) == 1000001);
	assert_true(hist_percentile(&h, 50.0) == 1000001);
	assert_true(hist_percentile(&h, 99.0) == 1000001);
	assert_true(hist_percentile(&h, 100.0) == 1000001);
	assert_true(hist_mean(&h) == 1000001.0);

	hist_init(&h);
	hist_add(&h, UINT64_MAX);
	assert_true(hist_percentile(&h, 50.0) == UINT64_MAX);
	assert_true(h.bucket[HIST_NBUCKETS - 1] == 1);
}

static void
test_empty(void **state)
{
	struct hist	h, z;
	unsigned	b;

	(void)state;
	memset(&h, 0xa5, sizeof(h));
	hist_init(&h);
	assert_true(h.count == 0);
	assert_true(h.sum == 0);
	assert_true(h.min == UINT64_MAX);
	assert_true(h.max == 0);
	assert_true(hist_percentile(&h, 50.0) == 0);
	assert_true(hist_percentile(&h, 100.0) == 0);
	assert_true(hist_mean(&h) == 0.0);
	for (b = 0; b < HIST_NBUCKETS; b++)
		assert_true(h.bucket[b] == 0);

	/* Merging two empties stays empty; min stays UINT64_MAX. */
	hist_init(&z);
	hist_merge(&h, &z);
	assert_memory_equal(&h, &z, sizeof(h));
}

static void
test_merge_equals_adding_all(void **state)
{
	struct hist	*all, *a, *b, *e;
	uint64_t	 s = 99, v;
	int		 i;

	(void)state;
	all = malloc(sizeof(*all));
	a = malloc(sizeof(*a));
	b = malloc(sizeof(*b));
	e = malloc(sizeof(*e));
	assert_non_null(all);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(e);
	hist_init(all);
	hist_init(a);
	hist_init(b);
	hist_init(e);
	for (i = 0; i < 50000; i++) {
		v = rnd_log(&s, 48);
		hist_add(all, v);
		/* Uneven split so min and max come from different sides. */
		hist_add(rnd(&s) % 3 == 0 ? a : b, v);
	}
	hist_merge(a, b);
	assert_memory_equal(a, all, sizeof(*all));

	/* Empty into full and full into empty. */
	hist_merge(a, e);
	assert_memory_equal(a, all, sizeof(*all));
	hist_merge(e, all);
	assert_memory_equal(e, all, sizeof(*all));

	free(all);
	free(a);
	free(b);
	free(e);
}

struct walk {
	uint64_t	last_upper;
	uint64_t	last_cum;
	unsigned	calls;
	int		bad;
};

static void
walk_cb(uint64_t upper, uint64_t cumulative, void *arg)
{
	struct walk	*w = arg;

	if (w->calls > 0 && (upper <= w->last_upper ||
	    cumulative <= w->last_cum))
		w->bad++;
	w->last_upper = upper;
	w->last_cum = cumulative;
	w->calls++;
}

static void
test_foreach_cumulative(void **state)
{
	struct hist	h;
	struct walk	w;
	uint64_t	s = 5;
	unsigned	b, nonempty;
	int		i;

	(void)state;
	hist_init(&h);
	memset(&w, 0, sizeof(w));
	hist_foreach(&h, walk_cb, &w);
	assert_int_equal(w.calls, 0);

	for (i = 0; i < 20000; i++)
		hist_add(&h, rnd_log(&s, 30));
	hist_add(&h, 0);
	hist_add(&h, UINT64_MAX - 1);	/* top bucket, upper clamps to max */
	nonempty = 0;
	for (b = 0; b < HIST_NBUCKETS; b++)
		nonempty += h.bucket[b] != 0;

	memset(&w, 0, sizeof(w));
	hist_foreach(&h, walk_cb, &w);
	assert_int_equal(w.bad, 0);
	assert_int_equal(w.calls, nonempty);
	assert_true(w.last_cum == h.count);
	assert_true(w.last_upper == h.max);
	assert_true(w.last_upper == UINT64_MAX - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_values_exact),
		cmocka_unit_test(test_powers_of_two),
		cmocka_unit_test(test_every_bucket_contiguous),
		cmocka_unit_test(test_relative_error_random),
		cmocka_unit_test(test_percentiles_vs_sorted),
		cmocka_unit_test(test_percentile_rank_rounding),
		cmocka_unit_test(test_single_value),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_merge_equals_adding_all),
		cmocka_unit_test(test_foreach_cumulative),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
