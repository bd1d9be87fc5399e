/*
 * hist: log-bucket histogram of microsecond values, HDR-style.
 *
 * Values below 16 have a bucket each; above that every power of two
 * [2^e, 2^(e+1)) is split into 16 equal sub-buckets, so a bucket's upper
 * bound is never more than 6.25% above any value in it.  The structure is
 * fixed-size (about 7.8 KiB), needs no allocation, and two histograms
 * merge by adding buckets.
 */
#ifndef SWARM_HIST_H
#define SWARM_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS	4
/* 976 */
#define HIST_NBUCKETS	(((64 - HIST_SUB_BITS) + 1) << HIST_SUB_BITS)

struct hist {
	uint64_t	count;
	uint64_t	sum;
	uint64_t	min;	/* UINT64_MAX when empty */
	uint64_t	max;
	uint64_t	bucket[HIST_NBUCKETS];
};

/* Make h empty. */
void	 hist_init(struct hist *h);

/* Record one value. Constant time, no floating point. */
void	 hist_add(struct hist *h, uint64_t v);

/* Add every value recorded in src to dst; src is unchanged. */
void	 hist_merge(struct hist *dst, const struct hist *src);

/*
 * Smallest bucket upper bound at or below which p percent (0..100) of the
 * values lie, clamped to [min, max]; 0 when empty. p=100 returns max.
 */
uint64_t hist_percentile(const struct hist *h, double p);

/* Arithmetic mean of the values, 0 when empty. */
double	 hist_mean(const struct hist *h);

/*
 * Call fn for each non-empty bucket in increasing order with the bucket's
 * upper bound (clamped to max) and the cumulative count up to it.
 */
void	 hist_foreach(const struct hist *h,
	    void (*fn)(uint64_t upper, uint64_t cumulative, void *arg),
	    void *arg);

/* Bucket index math, exposed for tests. */
unsigned hist_bucket(uint64_t v);
uint64_t hist_bucket_upper(unsigned b);

#endif
