/*
 * test_ptimer: the precise one-shot timers (ptimer.h) on a real event
 * base: entries run in deadline order, equal deadlines in the order they
 * were added and in one wake-up; a deleted head, middle or last entry
 * never runs (and a deleted head costs a wake-up, no arming); adding a
 * pending entry moves it; thousands of entries, many with equal
 * deadlines, added, moved and deleted at random, run in order; a callback
 * may add its entry again, add others, or free owners, its own or one
 * still pending that it deletes first; the timerfd is armed only when the
 * earliest deadline moves earlier; a pause ends on time, never early,
 * and within 2 ms on an idle loop; with epoll (edge-triggered, the
 * timerfd never read) and with poll (read).
 *
 * The loop runs until the expected calls are made, or a 10 s guard
 * (a failure) ends it: no fixed sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/monotime.h"
#include "lib/ptimer.h"

#define MAX_T		64
#define GUARD_S		10

struct env;

/* An owner, as a session is: the entry embedded, found back by offset. */
struct owner {
	int			 id;
	struct env		*e;
	struct ptimer		 t;
	uint64_t		 fired_us;
	int			 readd;		/* add again this many times */
	uint64_t		 readd_us;
	struct owner		*victim;	/* del and free it, then self */
	bool			 free_self;
};

struct env {
	struct event_base	*base;
	struct ptimer_set	*set;
	struct event		*guard;
	bool			 guard_hit;
	int			 order[MAX_T * 4];
	size_t			 n_fired;
	size_t			 expect;	/* loopbreak at this many */
};

static struct owner *
owner_of(struct ptimer *t)
{
	return (struct owner *)(void *)((char *)t -
	    offsetof(struct owner, t));
}

static void
fired(struct ptimer *t)
{
	struct owner	*o = owner_of(t);
	struct env	*e = o->e;

	assert_false(ptimer_pending(t));	/* off the list first */
	o->fired_us = mono_us();
	assert_true(e->n_fired < sizeof(e->order) / sizeof(e->order[0]));
	e->order[e->n_fired++] = o->id;
	if (o->readd > 0) {
		o->readd--;
		assert_int_equal(ptimer_add(e->set, t, o->readd_us), 0);
	}
	if (o->victim != NULL) {
		ptimer_del(e->set, &o->victim->t);
		free(o->victim);
		o->victim = NULL;
	}
	if (e->n_fired == e->expect)
		event_base_loopbreak(e->base);
	if (o->free_self)
		free(o);
}

/* test_many's: the order of N_MANY calls, beyond e->order's room. */
static int	*many_order;

static void
many_fired(struct ptimer *t)
{
	struct owner	*o = owner_of(t);
	struct env	*e = o->e;

	assert_false(ptimer_pending(t));
	many_order[e->n_fired++] = o->id;
	if (e->n_fired == e->expect)
		event_base_loopbreak(e->base);
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct env *e = arg;

	(void)fd;
	(void)what;
	e->guard_hit = true;
	event_base_loopbreak(e->base);
}

static struct env *
env_new(bool avoid_epoll)
{
	struct env		*e = calloc(1, sizeof(*e));
	struct event_config	*cfg = event_config_new();

	assert_true(e != NULL && cfg != NULL);
	if (avoid_epoll)
		assert_int_equal(event_config_avoid_method(cfg, "epoll"), 0);
	e->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	assert_non_null(e->base);
	assert_string_equal(event_base_get_method(e->base),
	    avoid_epoll ? "poll" : "epoll");
	assert_non_null(e->set = ptimer_set_new(e->base));
	assert_non_null(e->guard = evtimer_new(e->base, guard_cb, e));
	return e;
}

static void
env_free(struct env *e)
{
	ptimer_set_free(e->set);
	event_free(e->guard);
	event_base_free(e->base);
	free(e);
}

/* Run the loop until n calls in all, or the guard. */
static void
run_until(struct env *e, size_t n)
{
	struct timeval tv = { .tv_sec = GUARD_S };

	e->expect = n;
	if (e->n_fired >= n)
		return;
	evtimer_add(e->guard, &tv);
	event_base_dispatch(e->base);
	evtimer_del(e->guard);
	assert_false(e->guard_hit);
	assert_int_equal(e->n_fired, n);
}

static void
owner_init(struct env *e, struct owner *o, int id)
{
	memset(o, 0, sizeof(*o));
	o->id = id;
	o->e = e;
	ptimer_init(&o->t, fired);
}

static void
stats(struct env *e, unsigned long *arms, unsigned long *wakeups)
{
	struct ptimer_stats st;

	ptimer_set_stats(e->set, &st);
	*arms = st.arms;
	*wakeups = st.wakeups;
}

/* Added out of order, run in deadline order, each not before its time. */
static void
order_on(bool avoid_epoll)
{
	static const unsigned	 ms[] = { 30, 10, 50, 20, 40, 0 };
	struct env		*e = env_new(avoid_epoll);
	struct owner		 o[6];
	uint64_t		 at[6];
	size_t			 i;

	for (i = 0; i < 6; i++) {
		owner_init(e, &o[i], (int)ms[i]);
		at[i] = mono_us() + ms[i] * 1000;
		assert_int_equal(ptimer_add(e->set, &o[i].t, ms[i] * 1000), 0);
		assert_true(ptimer_pending(&o[i].t));
	}
	run_until(e, 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(e->order[i], (int)(i * 10));
		assert_true(o[i].fired_us >= at[i]);
	}
	env_free(e);
}

static void
test_order_epoll(void **state)
{
	(void)state;
	order_on(false);
}

static void
test_order_poll(void **state)
{
	(void)state;
	order_on(true);
}

/*
 * Equal deadlines: in the order added, all in one wake-up, one arming
 * (the later adds find it armed at their deadline).
 */
static void
test_equal_deadlines(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 o[MAX_T];
	uint64_t	 at = mono_us() + 20000;
	unsigned long	 arms, wakeups;
	int		 i;

	(void)state;
	for (i = 0; i < MAX_T; i++) {
		owner_init(e, &o[i], i);
		assert_int_equal(ptimer_add_at(e->set, &o[i].t, at), 0);
	}
	run_until(e, MAX_T);
	for (i = 0; i < MAX_T; i++)
		assert_int_equal(e->order[i], i);
	stats(e, &arms, &wakeups);
	assert_int_equal(arms, 1);
	assert_int_equal(wakeups, 1);
	env_free(e);
}

/*
 * Deleted entries never run: the head, one in the middle, the last; a
 * delete of one not pending (never added, or deleted twice) does nothing.
 */
static void
test_del(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 o[5], idle;
	unsigned long	 arms, wakeups;
	int		 i;

	(void)state;
	owner_init(e, &idle, 99);
	ptimer_del(e->set, &idle.t);		/* never added */
	for (i = 0; i < 5; i++) {
		owner_init(e, &o[i], i);
		assert_int_equal(ptimer_add(e->set, &o[i].t,
		    (uint64_t)(i + 1) * 10000), 0);
	}
	ptimer_del(e->set, &o[0].t);		/* head */
	ptimer_del(e->set, &o[2].t);		/* middle */
	ptimer_del(e->set, &o[4].t);		/* last */
	ptimer_del(e->set, &o[2].t);		/* twice */
	for (i = 0; i < 5; i += 2)
		assert_false(ptimer_pending(&o[i].t));
	stats(e, &arms, &wakeups);
	assert_int_equal(arms, 1);		/* at o[0]'s: deletes leave it */
	run_until(e, 2);
	assert_int_equal(e->order[0], 1);
	assert_int_equal(e->order[1], 3);
	/*
	 * o[0]'s deadline woke the set for nothing; then armed at o[1] and
	 * o[3]. A busy box may merge expiries: o[0]'s wake-up late enough
	 * runs o[1], or both, and arms once less each time.
	 */
	stats(e, &arms, &wakeups);
	assert_true(wakeups >= 1 && wakeups <= 3);
	assert_true(arms >= 1 && arms <= 3);
	/* Everything deleted: the last arming fires for nothing. */
	owner_init(e, &o[0], 0);
	assert_int_equal(ptimer_add(e->set, &o[0].t, 5000), 0);
	ptimer_del(e->set, &o[0].t);
	owner_init(e, &o[1], 1);
	assert_int_equal(ptimer_add(e->set, &o[1].t, 15000), 0);
	run_until(e, 3);
	assert_int_equal(e->order[2], 1);
	env_free(e);
}

/* Armed only when the earliest deadline moves earlier. */
static void
test_arms(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 o[4];
	unsigned long	 arms, wakeups;
	int		 i;

	(void)state;
	for (i = 0; i < 4; i++)
		owner_init(e, &o[i], i);
	assert_int_equal(ptimer_add(e->set, &o[0].t, 50000), 0);
	stats(e, &arms, &wakeups);
	assert_int_equal(arms, 1);
	assert_int_equal(ptimer_add(e->set, &o[1].t, 60000), 0);
	stats(e, &arms, &wakeups);
	assert_int_equal(arms, 1);		/* later: no arming */
	assert_int_equal(ptimer_add(e->set, &o[2].t, 40000), 0);
	stats(e, &arms, &wakeups);
	assert_int_equal(arms, 2);		/* earlier: armed again */
	assert_int_equal(ptimer_add(e->set, &o[3].t, 45000), 0);
	stats(e, &arms, &wakeups);
	assert_int_equal(arms, 2);
	run_until(e, 4);
	assert_int_equal(e->order[0], 2);
	assert_int_equal(e->order[1], 3);
	assert_int_equal(e->order[2], 0);
	assert_int_equal(e->order[3], 1);
	/* One arming per wake-up that left entries pending, at most. */
	stats(e, &arms, &wakeups);
	assert_true(wakeups >= 1 && wakeups <= 4);
	assert_int_equal(arms, 2 + wakeups - 1);
	env_free(e);
}

/*
 * A callback adds its entry again (3 more times), and a later entry
 * pending meanwhile still runs in its turn.
 */
static void
test_readd(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 a, b;

	(void)state;
	owner_init(e, &a, 1);
	owner_init(e, &b, 2);
	a.readd = 3;
	a.readd_us = 5000;
	assert_int_equal(ptimer_add(e->set, &a.t, 5000), 0);
	assert_int_equal(ptimer_add(e->set, &b.t, 200000), 0);
	run_until(e, 5);
	assert_int_equal(e->order[0], 1);
	assert_int_equal(e->order[1], 1);
	assert_int_equal(e->order[2], 1);
	assert_int_equal(e->order[3], 1);
	assert_int_equal(e->order[4], 2);
	assert_false(ptimer_pending(&a.t));
	env_free(e);
}

/* A callback adds again with no delay: it runs, and the loop goes on. */
static void
test_readd_now(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 a;

	(void)state;
	owner_init(e, &a, 7);
	a.readd = 10;
	a.readd_us = 0;
	assert_int_equal(ptimer_add(e->set, &a.t, 0), 0);
	run_until(e, 11);
	assert_false(ptimer_pending(&a.t));
	env_free(e);
}

/*
 * Owners freed with their entries: a callback frees its own owner, and
 * another deletes and frees one still pending, which never runs (ASan
 * would see a use after free).
 */
static void
test_free_pending(void **state)
{
	struct env	*e = env_new(false);
	struct owner	*a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct owner	*c = malloc(sizeof(*c)), d;

	(void)state;
	assert_true(a != NULL && b != NULL && c != NULL);
	owner_init(e, a, 1);
	owner_init(e, b, 2);
	owner_init(e, c, 3);
	owner_init(e, &d, 4);
	a->victim = c;			/* c is due with a: deleted unrun */
	a->free_self = true;
	b->free_self = true;
	assert_int_equal(ptimer_add(e->set, &a->t, 10000), 0);
	assert_int_equal(ptimer_add_at(e->set, &c->t, a->t.at_us), 0);
	assert_int_equal(ptimer_add(e->set, &b->t, 20000), 0);
	assert_int_equal(ptimer_add(e->set, &d.t, 30000), 0);
	run_until(e, 3);
	assert_int_equal(e->order[0], 1);
	assert_int_equal(e->order[1], 2);
	assert_int_equal(e->order[2], 4);
	env_free(e);
}

/* Adding a pending entry moves it: earlier, then later. */
static void
test_move(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 a, b, c;

	(void)state;
	owner_init(e, &a, 1);
	owner_init(e, &b, 2);
	owner_init(e, &c, 3);
	assert_int_equal(ptimer_add(e->set, &a.t, 50000), 0);
	assert_int_equal(ptimer_add(e->set, &b.t, 30000), 0);
	assert_int_equal(ptimer_add(e->set, &c.t, 20000), 0);
	assert_int_equal(ptimer_add(e->set, &a.t, 10000), 0);	/* first */
	assert_int_equal(ptimer_add(e->set, &c.t, 60000), 0);	/* last */
	run_until(e, 3);
	assert_int_equal(e->order[0], 1);
	assert_int_equal(e->order[1], 2);
	assert_int_equal(e->order[2], 3);
	env_free(e);
}

/*
 * The heap at scale: N entries with deadlines drawn from 21 values (many
 * equal), added in random order, a third deleted (some moved first): the
 * rest run in deadline order, equal ones in the order added, the deleted
 * never.
 */
#define N_MANY	3000

struct many {
	struct owner	 o[N_MANY];
	uint32_t	 added[N_MANY];	/* the order each was (last) added */
	bool		 deleted[N_MANY];
};

static void
test_many(void **state)
{
	struct env	*e = env_new(false);
	struct many	*m = calloc(1, sizeof(*m));
	uint64_t	 base = mono_us() + 30000, t0, add_us;
	int		*order;
	size_t		 i, n_left = 0;
	uint32_t	 seq = 0;

	(void)state;
	assert_non_null(m);
	order = calloc(N_MANY, sizeof(*order));
	assert_non_null(order);
	srandom(13);
	t0 = mono_us();
	for (i = 0; i < N_MANY; i++) {
		owner_init(e, &m->o[i], (int)i);
		m->added[i] = seq++;
		assert_int_equal(ptimer_add_at(e->set, &m->o[i].t, base +
		    (uint64_t)(random() % 21) * 1000), 0);
	}
	add_us = mono_us() - t0;
	for (i = 0; i < N_MANY; i++) {
		if (random() % 3 == 0) {
			if (random() % 2 == 0)		/* moved, then deleted */
				assert_int_equal(ptimer_add_at(e->set,
				    &m->o[i].t, base + 5000), 0);
			ptimer_del(e->set, &m->o[i].t);
			m->deleted[i] = true;
		} else if (random() % 4 == 0) {		/* moved */
			m->added[i] = seq++;
			assert_int_equal(ptimer_add_at(e->set, &m->o[i].t,
			    base + (uint64_t)(random() % 21) * 1000), 0);
		}
	}
	for (i = 0; i < N_MANY; i++)
		if (!m->deleted[i])
			n_left++;
	print_message("ptimer: %d adds in %llu us\n", N_MANY,
	    (unsigned long long)add_us);
	/* e->order holds MAX_T * 4: record the whole order here instead. */
	e->n_fired = 0;
	for (i = 0; i < N_MANY; i++)
		m->o[i].t.fn = many_fired;
	many_order = order;
	run_until(e, n_left);
	for (i = 0; i < n_left; i++) {
		struct ptimer	*a = &m->o[order[i]].t;

		assert_false(m->deleted[order[i]]);
		if (i > 0) {
			struct ptimer *p = &m->o[order[i - 1]].t;

			assert_true(p->at_us <= a->at_us);
			if (p->at_us == a->at_us)
				assert_true(m->added[order[i - 1]] <
				    m->added[order[i]]);
		}
	}
	free(order);
	free(m);
	env_free(e);
}

/* A deadline in the past (or 0) runs at once. */
static void
test_past(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 a, b;

	(void)state;
	owner_init(e, &a, 1);
	owner_init(e, &b, 2);
	assert_int_equal(ptimer_add_at(e->set, &a.t, 0), 0);
	assert_int_equal(ptimer_add_at(e->set, &b.t, mono_us() - 1000), 0);
	run_until(e, 2);
	assert_int_equal(e->order[0], 1);
	assert_int_equal(e->order[1], 2);
	env_free(e);
}

/*
 * Precision: a 20 ms pause ends no earlier than due, and on an idle loop
 * within 2 ms of it: the best of 10 tries (a busy machine may preempt
 * some; libevent's coarse clock would be late or early by up to 4 ms
 * plus a millisecond of epoll timeout rounding).
 */
static void
test_precision(void **state)
{
	struct env	*e = env_new(false);
	struct owner	 a;
	uint64_t	 at, late, best = UINT64_MAX;
	int		 i;

	(void)state;
	for (i = 0; i < 10; i++) {
		owner_init(e, &a, i);
		at = mono_us() + 20000;
		assert_int_equal(ptimer_add(e->set, &a.t, 20000), 0);
		run_until(e, (size_t)i + 1);
		assert_true(a.fired_us >= at);
		late = a.fired_us - at;
		if (late < best)
			best = late;
	}
	print_message("ptimer: 20 ms pause, best of 10: %llu us late\n",
	    (unsigned long long)best);
	assert_true(best < 2000);
	env_free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_epoll),
		cmocka_unit_test(test_order_poll),
		cmocka_unit_test(test_equal_deadlines),
		cmocka_unit_test(test_del),
		cmocka_unit_test(test_arms),
		cmocka_unit_test(test_readd),
		cmocka_unit_test(test_readd_now),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_move),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_past),
		cmocka_unit_test(test_precision),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
