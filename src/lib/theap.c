/*
 * theap: many timers under one libevent timer (see theap.h).
 */
#include <stdlib.h>
#include <sys/time.h>

#include <event2/event.h>

#include "lib/monotime.h"
#include "lib/theap.h"

static void	theap_cb(evutil_socket_t, short, void *);

static void
theap_put(struct theap *h, size_t i, struct theap_entry *e)
{
	h->v[i] = e;
	e->idx = (uint32_t)(i + 1);	/* theap_reserve() bounds i */
}

static void
theap_up(struct theap *h, size_t i)
{
	struct theap_entry	*e = h->v[i];
	size_t			 parent;

	for (; i > 0; i = parent) {
		parent = (i - 1) / 2;
		if (h->v[parent]->due_ms <= e->due_ms)
			break;
		theap_put(h, i, h->v[parent]);
	}
	theap_put(h, i, e);
}

static void
theap_down(struct theap *h, size_t i)
{
	struct theap_entry	*e = h->v[i];
	size_t			 child;

	for (; (child = 2 * i + 1) < h->len; i = child) {
		if (child + 1 < h->len &&
		    h->v[child + 1]->due_ms < h->v[child]->due_ms)
			child++;
		if (e->due_ms <= h->v[child]->due_ms)
			break;
		theap_put(h, i, h->v[child]);
	}
	theap_put(h, i, e);
}

/* The event, for the earliest entry (none: off). */
static void
theap_schedule(struct theap *h)
{
	struct timeval	tv;
	uint64_t	now, due, ms;

	if (h->firing)
		return;		/* theap_cb() schedules once at its end */
	if (h->len == 0) {
		evtimer_del(h->ev);
		return;
	}
	now = mono_ms();
	due = h->v[0]->due_ms;
	ms = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(h->ev, &tv);
}

/* Take e off the heap; true if it was the earliest. */
static bool
theap_remove(struct theap *h, struct theap_entry *e)
{
	size_t			 i = e->idx;
	struct theap_entry	*last;

	if (i-- == 0)
		return false;
	e->idx = 0;
	last = h->v[--h->len];
	if (last != e) {
		theap_put(h, i, last);
		theap_up(h, i);
		theap_down(h, last->idx - 1);
	}
	return i == 0;
}

int
theap_init(struct theap *h, struct event_base *base,
    void (*fire)(struct theap_entry *, void *), void *arg)
{
	*h = (struct theap){ .fire = fire, .arg = arg };
	if ((h->ev = evtimer_new(base, theap_cb, h)) == NULL)
		return -1;
	return 0;
}

void
theap_free(struct theap *h)
{
	if (h->ev != NULL)
		event_free(h->ev);
	free(h->v);
	*h = (struct theap){ 0 };
}

int
theap_reserve(struct theap *h, size_t n)
{
	struct theap_entry	**v;
	size_t			  cap;

	if (n <= h->cap)
		return 0;
	if (n >= UINT32_MAX)
		return -1;
	for (cap = h->cap == 0 ? 64 : h->cap; cap < n; cap *= 2)
		;
	if ((v = reallocarray(h->v, cap, sizeof(*v))) == NULL)
		return -1;
	h->v = v;
	h->cap = cap;
	return 0;
}

void
theap_arm(struct theap *h, struct theap_entry *e, uint64_t due_ms)
{
	bool first;

	e->due_ms = due_ms;
	if (e->idx == 0)
		theap_put(h, h->len++, e);	/* theap_reserve() made room */
	first = h->v[0] == e;
	theap_up(h, e->idx - 1);
	theap_down(h, e->idx - 1);
	/* Only a change of the earliest moves the event. */
	if (first || h->v[0] == e)
		theap_schedule(h);
}

void
theap_del(struct theap *h, struct theap_entry *e)
{
	if (theap_remove(h, e))
		theap_schedule(h);
}

/* Fire every entry that is due, earliest first, then wait for the next. */
static void
theap_cb(evutil_socket_t fd, short events, void *arg)
{
	struct theap		*h = arg;
	struct theap_entry	*e;
	uint64_t		 now = mono_ms();

	(void)fd;
	(void)events;
	h->firing = true;
	while (h->len > 0 && (e = h->v[0])->due_ms <= now) {
		(void)theap_remove(h, e);
		h->fire(e, h->arg);
	}
	h->firing = false;
	theap_schedule(h);
}
