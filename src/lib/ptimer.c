/*
 * ptimer: precise one-shot timers on one timerfd (ptimer.h).
 *
 * The list is sorted by deadline and searched from the tail: the pauses
 * of one loop mostly have one length, so a new deadline is the latest
 * and the search stops at once. An equal deadline goes behind the ones
 * already there (first added, first run).
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

TAILQ_HEAD(ptimer_list, ptimer);

struct ptimer_set {
	int			 fd;
	struct event		*ev;
	struct ptimer_list	 list;
	uint64_t		 armed_us;	/* 0: not armed */
	bool			 et;		/* edge-triggered: no read */
	struct ptimer_stats	 stats;
};

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
	while ((t = TAILQ_FIRST(&set->list)) != NULL && t->at_us <= now_us) {
		TAILQ_REMOVE(&set->list, t, entry);
		t->entry.tqe_prev = NULL;
		t->fn(t);	/* may add t again, or free its owner */
	}
	/* An fn's ptimer_add() may have armed it at the head already. */
	if (t != NULL && set->armed_us != t->at_us &&
	    ptimer_arm(set, t->at_us) == -1)
		log_warn("ptimer: timerfd_settime");
}

struct ptimer_set *
ptimer_set_new(struct event_base *base)
{
	struct ptimer_set	*set;
	int			 err;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	TAILQ_INIT(&set->list);
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
	free(set);
}

void
ptimer_init(struct ptimer *t, ptimer_fn *fn)
{
	t->entry.tqe_next = NULL;
	t->entry.tqe_prev = NULL;
	t->at_us = 0;
	t->fn = fn;
}

int
ptimer_add(struct ptimer_set *set, struct ptimer *t, uint64_t delay_us)
{
	return ptimer_add_at(set, t, mono_us() + delay_us);
}

int
ptimer_add_at(struct ptimer_set *set, struct ptimer *t, uint64_t at_us)
{
	struct ptimer	*p;

	if (at_us == 0)
		at_us = 1;	/* 0 disarms a timerfd; and it is long past */
	ptimer_del(set, t);	/* pending: moved */
	/* Armed at a later deadline, or not at all: arm at this one. */
	if ((set->armed_us == 0 || at_us < set->armed_us) &&
	    ptimer_arm(set, at_us) == -1)
		return -1;
	t->at_us = at_us;
	/* From the tail: behind every entry due no later than t. */
	TAILQ_FOREACH_REVERSE(p, &set->list, ptimer_list, entry)
		if (p->at_us <= at_us)
			break;
	if (p != NULL)
		TAILQ_INSERT_AFTER(&set->list, p, t, entry);
	else
		TAILQ_INSERT_HEAD(&set->list, t, entry);
	return 0;
}

void
ptimer_del(struct ptimer_set *set, struct ptimer *t)
{
	if (!ptimer_pending(t))
		return;
	TAILQ_REMOVE(&set->list, t, entry);
	t->entry.tqe_prev = NULL;
}

void
ptimer_set_stats(const struct ptimer_set *set, struct ptimer_stats *st)
{
	*st = set->stats;
}
