/*
 * set: the sessions of a process: their list and count, the queue of
 * sessions with output to write before the loop polls again (and to
 * free, once closed), the timers of their deadlines, idle limits and
 * pauses (one precise set, lib/ptimer.h), session ids,
 * and the graceful stop. The set calls down into session.c; what a
 * session does to the set (joining, leaving, queueing its output) is
 * inline in session_int.h, so the calls go one way.
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "lib/log.h"
#include "lib/proc.h"
#include "session/session_int.h"

static void
set_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	struct session_set	*set = arg;
	struct session		*s;

	(void)fd;
	(void)events;
	while ((s = TAILQ_FIRST(&set->flushq)) != NULL) {
		if (s->freeing) {
			session_destroy(s);	/* session_set_remove() unqueues */
			continue;
		}
		TAILQ_REMOVE(&set->flushq, s, flush_entry);
		s->flush_queued = 0;
		session_flush(s);
	}
}

/* ------------------------------------------------------------ the set */

struct session_set *
session_set_new(struct event_base *base, const struct session_params *params)
{
	struct session_set	*set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->base = base;
	set->params = *params;
	TAILQ_INIT(&set->sessions);
	TAILQ_INIT(&set->flushq);
	if ((set->flush_ev = event_new(base, -1, 0, set_flush_cb, set))
	    == NULL ||
	    (set->timers = ptimer_set_new(base)) == NULL) {
		if (set->flush_ev != NULL)
			event_free(set->flush_ev);
		free(set);
		return NULL;
	}
	/* Session ids: random start, so they are unique across restarts. */
	if (evutil_secure_rng_init() == 0)
		evutil_secure_rng_get_bytes(&set->next_id, sizeof(set->next_id));
	/*
	 * Worker I of N (lib/proc.h) hands out the ids congruent to I
	 * modulo N: unique across the workers too.
	 */
	set->id_step = proc_worker_count();
	set->next_id -= set->next_id % set->id_step;
	set->next_id += proc_worker_index();
	if (set->next_id == 0)
		set->next_id = set->id_step;	/* 0 is "no session" in logs */
	return set;
}

void
session_set_free(struct session_set *set)
{
	struct session *s;

	if (set == NULL)
		return;
	while ((s = TAILQ_FIRST(&set->sessions)) != NULL)
		session_destroy(s);
	if (set->drain_timer != NULL)
		event_free(set->drain_timer);
	event_free(set->flush_ev);
	while (set->n_spare > 0)
		evbuffer_free(set->spare[--set->n_spare]);
	ptimer_set_free(set->timers);
	free(set);
}

size_t
session_set_count(const struct session_set *set)
{
	return set->n_sessions;
}

size_t
session_set_foreach(struct session_set *set,
    void (*fn)(struct session *, void *), void *arg)
{
	struct session	*s, *next;
	size_t		 n = 0;

	/* next first: fn may close s, which stays listed until freed. */
	for (s = TAILQ_FIRST(&set->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->closing)
			continue;
		fn(s, arg);
		n++;
	}
	return n;
}

void
session_set_params(struct session_set *set,
    const struct session_params *params)
{
	set->params = *params;
}

void
session_set_cut(struct session_set *set)
{
	struct session *s;

	set->draining = 0;	/* no loopexit from here: we break */
	while ((s = TAILQ_FIRST(&set->sessions)) != NULL)
		session_destroy(s);
	event_base_loopbreak(set->base);
}

static void
set_drain_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct session_set *set = arg;

	(void)fd;
	(void)events;
	log_warnx("event=shutdown-deadline sessions=%zu", set->n_sessions);
	session_set_cut(set);
}

void
session_set_drain(struct session_set *set, unsigned grace_s)
{
	struct session	*s, *next;
	struct timeval	 tv = { .tv_sec = (time_t)grace_s };

	if (set->draining)
		return;
	set->draining = 1;
	for (s = TAILQ_FIRST(&set->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		session_shutdown(s);
	}
	if (set->n_sessions == 0) {
		event_base_loopexit(set->base, NULL);
		return;
	}
	set->drain_timer = evtimer_new(set->base, set_drain_deadline_cb, set);
	if (set->drain_timer != NULL)
		evtimer_add(set->drain_timer, &tv);
}
