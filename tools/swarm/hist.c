/*
 * hist: log-bucket histogram (see hist.h).
 *
 * Bucket layout, with S = HIST_SUB_BITS = 4:
 *   v < 16:            bucket v (exact)
 *   2^e <= v < 2^e+1:  bucket (e - S + 1) * 16 + ((v >> (e - S)) & 15)
 * so e = 4 gives buckets 16..31 (still exact) and e = 63 ends at 975.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hist.h"

#define SUB_COUNT	(1u << HIST_SUB_BITS)
#define SUB_MASK	(SUB_COUNT - 1)

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned
hist_bucket(uint64_t v)
{
	unsigned	e;

	if (v < SUB_COUNT)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);	/* e >= HIST_SUB_BITS */
	return ((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) +
	    (unsigned)((v >> (e - HIST_SUB_BITS)) & SUB_MASK);
}

/* Largest value that falls in bucket b (b < HIST_NBUCKETS). */
uint64_t
hist_bucket_upper(unsigned b)
{
	unsigned	shift;
	uint64_t	lower;

	if (b < SUB_COUNT)
		return b;
	if (b >= HIST_NBUCKETS)
		return UINT64_MAX;
	shift = (b >> HIST_SUB_BITS) - 1;	/* = e - HIST_SUB_BITS */
	lower = (uint64_t)(SUB_COUNT + (b & SUB_MASK)) << shift;
	return lower + ((UINT64_C(1) << shift) - 1);
}

void
hist_add(struct hist *h, uint64_t v)
{
	h->bucket[hist_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned	i;

	if (src->count == 0)
		return;
	for (i = 0; i < HIST_NBUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/*
 * Nearest-rank percentile: the value of rank ceil(p/100 * count), 1-based,
 * reported as the upper bound of the bucket holding it.
 */
uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t	rank, cum, up;
	double		r;
	unsigned	i;

	if (h->count == 0)
		return 0;
	if (!(p < 100.0))	/* also catches NaN */
		return h->max;
	if (p <= 0.0)
		return h->min;
	r = p / 100.0 * (double)h->count;
	/*
	 * Absorb rounding in p/100*count (99.9% of 1000 must be rank 999,
	 * not 1000); the error is ~count * 1e-16, far below the slack.
	 */
	rank = (uint64_t)ceil(r - 1e-6);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;

	cum = 0;
	for (i = 0; i < HIST_NBUCKETS; i++) {
		cum += h->bucket[i];
		if (cum >= rank)
			break;
	}
	up = hist_bucket_upper(i);
	if (up > h->max)
		up = h->max;
	if (up < h->min)
		up = h->min;
	return up;
}

double
hist_mean(const struct hist *h)
{
	if (h->count == 0)
		return 0.0;
	return (double)h->sum / (double)h->count;
}

void
hist_foreach(const struct hist *h,
    void (*fn)(uint64_t upper, uint64_t cumulative, void *arg), void *arg)
{
	uint64_t	cum = 0, up;
	unsigned	i;

	for (i = 0; i < HIST_NBUCKETS && cum < h->count; i++) {
		if (h->bucket[i] == 0)
			continue;
		cum += h->bucket[i];
		up = hist_bucket_upper(i);
		if (up > h->max)
			up = h->max;
		fn(up, cum, arg);
	}
}
