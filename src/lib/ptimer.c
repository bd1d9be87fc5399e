/*
 * ptimer: precise one-shot timers on one timerfd (ptimer.h).
 *
 * The pending entries are a binary heap (an array of pointers, the set's
 * one allocation, grown by doubling and never shrunk, 8 octets an entry;
 * the session set reserves room for a deadline and a pause per session,
 * so it does not grow while sessions arm theirs). Each entry knows its
 * place, so a delete is a swap with the last and one sift. A list sorted
 * by deadline, searched from its tail, would cost nothing while the
 * pauses come in deadline order, but pauses of several lengths (the
 * per-address penalty doubles them up to penalty_max) make each add walk
 * past every later one: with thousands pending, a walk over thousands of
 * sessions' cache lines per failed login, which clients choose. Equal
 * deadlines run in the order they were added (seq; it wraps, and is
 * compared as a difference, which holds while fewer than 2^31 adds
 * separate two pending entries).
 *
 * The timerfd is armed only when a new entry's deadline is earlier than
 * the one it is armed at (armed_us; 0: not armed). A deleted head leaves
 * it armed: the expiry then finds nothing due, or less than it was armed
 * for, and arms at the new head. Fewer timerfd_settime() calls, for one
 * wake-up more when a paused session goes away.
 *
 * Like the worker pool's eventfd, the descriptor is watched
 * edge-triggered and never read where the backend can (epoll): each
 * expiry wakes epoll's waiters, an edge, and timerfd_settime() sets the
 * expiry count back to 0, so an expiry still queued in epoll when the
 * timer is armed again is dropped unreported. Elsewhere (poll) the
 * callback reads the count.
 */
#include <sys/timerfd.h>

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/ptimer.h"

struct ptimer_set {
	int			 fd;
	struct event		*ev;
	struct ptimer		**heap;		/* heap[0]: the earliest */
	uint32_t		 n, cap;
	uint32_t		 seq;		/* the next add's */
	uint64_t		 armed_us;	/* 0: not armed */
	bool			 et;		/* edge-triggered: no read */
	struct ptimer_stats	 stats;
};

/* Is a due before b? */
static inline bool
ptimer_before(const struct ptimer *a, const struct ptimer *b)
{
	return a->at_us < b->at_us ||
	    (a->at_us == b->at_us && (int32_t)(a->seq - b->seq) < 0);
}

static inline void
ptimer_place(struct ptimer_set *set, struct ptimer *t, uint32_t i)
{
	set->heap[i] = t;
	t->idx = i + 1;
}

static void
ptimer_sift_up(struct ptimer_set *set, uint32_t i)
{
	struct ptimer	*t = set->heap[i];
	uint32_t	 up;

	while (i > 0 && ptimer_before(t, set->heap[up = (i - 1) / 2])) {
		ptimer_place(set, set->heap[up], i);
		i = up;
	}
	ptimer_place(set, t, i);
}

static void
ptimer_sift_down(struct ptimer_set *set, uint32_t i)
{
	struct ptimer	*t = set->heap[i];
	uint32_t	 c;

	while ((c = 2 * i + 1) < set->n) {
		if (c + 1 < set->n &&
		    ptimer_before(set->heap[c + 1], set->heap[c]))
			c++;
		if (!ptimer_before(set->heap[c], t))
			break;
		ptimer_place(set, set->heap[c], i);
		i = c;
	}
	ptimer_place(set, t, i);
}

/* Arm the timerfd at at_us (never 0: 0 would disarm it). */
static int
ptimer_arm(struct ptimer_set *set, uint64_t at_us)
{
	struct itimerspec its = { .it_value = {
	    .tv_sec = (time_t)(at_us / 1000000),
	    .tv_nsec = (long)(at_us % 1000000) * 1000 } };

	if (timerfd_settime(set->fd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
		return -1;
	set->armed_us = at_us;
	set->stats.arms++;
	return 0;
}

/*
 * The timerfd expired (or an expiry of an earlier arming came late):
 * run every entry due, then arm at the earliest left.
 */
static void
ptimer_expired(evutil_socket_t fd, short events, void *arg)
{
	struct ptimer_set	*set = arg;
	struct ptimer		*t;
	uint64_t		 n, now_us;

	(void)events;
	if (!set->et && read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("ptimer: read");
	set->stats.wakeups++;
	/* One-shot: whatever it was armed at has passed, or is replaced. */
	set->armed_us = 0;
	now_us = mono_us();
	while (set->n > 0 && (t = set->heap[0])->at_us <= now_us) {
		ptimer_del(set, t);
		t->fn(t);	/* may add t again, or free its owner */
	}
	/* An fn's ptimer_add() may have armed it at the head already. */
	if (set->n > 0 && set->armed_us != set->heap[0]->at_us &&
	    ptimer_arm(set, set->heap[0]->at_us) == -1)
		log_warn("ptimer: timerfd_settime");
}

struct ptimer_set *
ptimer_set_new(struct event_base *base)
{
	struct ptimer_set	*set;
	int			 err;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (set->fd == -1)
		goto fail;
	set->et = (event_base_get_features(base) & EV_FEATURE_ET) != 0;
	set->ev = event_new(base, set->fd, EV_READ | EV_PERSIST |
	    (set->et ? EV_ET : 0), ptimer_expired, set);
	if (set->ev == NULL || event_add(set->ev, NULL) == -1)
		goto fail;
	return set;

fail:
	err = errno;
	ptimer_set_free(set);
	errno = err;
	return NULL;
}

void
ptimer_set_free(struct ptimer_set *set)
{
	if (set == NULL)
		return;
	if (set->ev != NULL)
		event_free(set->ev);
	if (set->fd != -1)
		close(set->fd);
	free(set->heap);
	free(set);
}

void
ptimer_init(struct ptimer *t, ptimer_fn *fn)
{
	t->at_us = 0;
	t->fn = fn;
	t->idx = 0;
	t->seq = 0;
}

int
ptimer_reserve(struct ptimer_set *set, size_t n)
{
	struct ptimer	**heap;
	uint32_t	  cap;

	if (n <= set->cap)
		return 0;
	if (n > UINT32_MAX / 2) {
		errno = ENOMEM;
		return -1;
	}
	for (cap = set->cap == 0 ? 16 : set->cap; cap < n; cap *= 2)
		;
	if ((heap = reallocarray(set->heap, cap, sizeof(*heap))) == NULL)
		return -1;
	set->heap = heap;
	set->cap = cap;
	return 0;
}

int
ptimer_add(struct ptimer_set *set, struct ptimer *t, uint64_t delay_us)
{
	return ptimer_add_at(set, t, mono_us() + delay_us);
}

int
ptimer_add_at(struct ptimer_set *set, struct ptimer *t, uint64_t at_us)
{
	if (at_us == 0)
		at_us = 1;	/* 0 disarms a timerfd; and it is long past */
	ptimer_del(set, t);	/* pending: moved */
	if (set->n == set->cap && ptimer_reserve(set, (size_t)set->n + 1) == -1)
		return -1;
	/* Armed at a later deadline, or not at all: arm at this one. */
	if ((set->armed_us == 0 || at_us < set->armed_us) &&
	    ptimer_arm(set, at_us) == -1)
		return -1;
	t->at_us = at_us;
	t->seq = set->seq++;
	ptimer_place(set, t, set->n++);
	ptimer_sift_up(set, set->n - 1);
	return 0;
}

void
ptimer_del(struct ptimer_set *set, struct ptimer *t)
{
	struct ptimer	*last;
	uint32_t	 i;

	if (t->idx == 0)
		return;
	i = t->idx - 1;
	t->idx = 0;
	last = set->heap[--set->n];
	if (last == t)
		return;
	/* The last entry takes t's place, and moves up or down from it. */
	ptimer_place(set, last, i);
	ptimer_sift_down(set, i);
	if (last->idx - 1 == i)
		ptimer_sift_up(set, i);
}

void
ptimer_set_stats(const struct ptimer_set *set, struct ptimer_stats *st)
{
	*st = set->stats;
}
