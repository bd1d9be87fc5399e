/*
 * ratelimit: one log line per window for an event that can repeat
 * thousands of times a second (refused connections, accept errors), each
 * line carrying the number of events since the previous one, as popa3d's
 * standalone.c does for its per-address limit.
 *
 * The first event after a quiet window is reported at once (count 1), so
 * an operator sees a problem start without delay; the events of the next
 * window are summed and reported by the first event after the window, or
 * by ratelimit_due() from the caller's timer if none comes. Every event
 * is reported exactly once. Pure arithmetic on the caller's clock
 * (milliseconds, monotonic): no timer, no I/O, no locking.
 */
#ifndef EVPOP3D_RATELIMIT_H
#define EVPOP3D_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
	uint64_t	window_ms;	/* at most one line per window */
	uint64_t	last_ms;	/* when the last line was reported */
	uint64_t	pending;	/* events not reported yet */
	bool		reported;	/* last_ms is set */
};

/* Start with no event seen; window_ms > 0. */
void		ratelimit_init(struct ratelimit *rl, uint64_t window_ms);

/*
 * Count one event at now_ms. Returns the count to log now (this event and
 * any pending ones) when no line was reported within the window, else 0:
 * the event is pending (see ratelimit_due()).
 */
uint64_t	ratelimit_hit(struct ratelimit *rl, uint64_t now_ms);

/*
 * For the caller's timer: the pending count to log now when the window
 * has passed since the last line, else 0. Resets what it returns.
 */
uint64_t	ratelimit_due(struct ratelimit *rl, uint64_t now_ms);

/* The pending count whatever the window, for a last line at exit. */
uint64_t	ratelimit_flush(struct ratelimit *rl, uint64_t now_ms);

/*
 * Milliseconds from now_ms until ratelimit_due() reports the pending
 * events (0: now), or UINT64_MAX when nothing is pending.
 */
uint64_t	ratelimit_wait_ms(const struct ratelimit *rl, uint64_t now_ms);

#endif
