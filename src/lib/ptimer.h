/*
 * ptimer: precise one-shot timers of an event loop: on CLOCK_MONOTONIC to
 * the microsecond, where libevent's own timers, unless the whole base is
 * made precise, run on the coarse clock (a jiffy, 4 ms) with millisecond
 * epoll timeouts. For the waits whose end must not show anything (a
 * failed login's answer, exactly failure_delay after its command), and,
 * in the same set, for many timers that need no event of their own (the
 * sessions' deadlines and idle limits).
 *
 * A set is one timerfd watched by one event, armed (TFD_TIMER_ABSTIME) at
 * the earliest deadline pending; the entries are embedded in their
 * owners (no allocation per add) and ordered by a binary heap of
 * pointers to them. A precise libevent base instead calls
 * timerfd_settime() on every turn of the loop that has any timer pending
 * (idle limits: always); a set calls it only when its earliest deadline
 * moves earlier, or after an expiry that leaves entries pending. Loop
 * thread only.
 */
#ifndef EVPOP3D_PTIMER_H
#define EVPOP3D_PTIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ptimer;
struct ptimer_set;

typedef void	ptimer_fn(struct ptimer *);

/*
 * One timer, embedded in its owner (fn finds the owner from the entry's
 * address). ptimer_init() it before the first use.
 */
struct ptimer {
	uint64_t	 at_us;	/* deadline, CLOCK_MONOTONIC */
	ptimer_fn	*fn;
	uint32_t	 idx;	/* place in the heap + 1; 0: not pending */
	uint32_t	 seq;	/* order of adds, for equal deadlines */
};

/* A set on base: its timerfd and event. NULL with errno set. */
struct ptimer_set	*ptimer_set_new(struct event_base *base);
/* Free a set with no entry pending (their owners remove them first). */
void			 ptimer_set_free(struct ptimer_set *set);

void	ptimer_init(struct ptimer *t, ptimer_fn *fn);
/*
 * Room for n entries pending at once, made now: an add then fails only
 * if the timerfd cannot be armed. -1 with errno set if out of memory.
 */
int	ptimer_reserve(struct ptimer_set *set, size_t n);
/*
 * Call t's fn once, delay_us microseconds from now (CLOCK_MONOTONIC read
 * here, not the time the loop woke at). Entries with one deadline run in
 * the order they were added. A pending t moves to the new deadline. -1
 * with errno set if the timerfd could not be armed or the heap not
 * grown (t is not pending then). The entry is off the set when fn runs:
 * fn may add it again, or free its owner.
 */
int	ptimer_add(struct ptimer_set *set, struct ptimer *t, uint64_t delay_us);
/* The same at at_us on mono_us()'s clock (one in the past: at once). */
int	ptimer_add_at(struct ptimer_set *set, struct ptimer *t, uint64_t at_us);
/* Cancel t if pending (O(log n)); nothing on one not pending. */
void	ptimer_del(struct ptimer_set *set, struct ptimer *t);

static inline bool
ptimer_pending(const struct ptimer *t)
{
	return t->idx != 0;
}

/* For the unit test: timerfd_settime() calls, and wake-ups of the set. */
struct ptimer_stats {
	unsigned long	arms;
	unsigned long	wakeups;
};
void	ptimer_set_stats(const struct ptimer_set *set, struct ptimer_stats *st);

#endif
