/*
 * monotime: the monotonic clock in milliseconds or microseconds, for
 * timeouts, pauses and durations (never the wall clock, which jumps).
 */
#ifndef EVPOP3D_MONOTIME_H
#define EVPOP3D_MONOTIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t
mono_ms(void)
{
	return mono_us() / 1000;
}

#endif
