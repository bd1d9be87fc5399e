/*
 * theap: timers under one libevent timer, on a real event base. Each
 * entry fires once, not before its time, in the order of the times
 * whatever order they were armed in; a disarmed one never fires; one
 * armed again from its own callback fires again; a random sequence of
 * arms and disarms keeps the heap in order (checked against a plain
 * array after every step).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/monotime.h"
#include "lib/theap.h"

#define N	40

struct timer {
	struct theap_entry	 e;
	uint64_t		 fired_ms;
	int			 fires;
	int			 order;		/* fire order, from 1 */
	int			 again;		/* arm again this many times */
};

struct env {
	struct event_base	*base;
	struct theap		 h;
	int			 fired;
	int			 pending;
};

static void
fire(struct theap_entry *e, void *arg)
{
	struct env	*env = arg;
	struct timer	*t = (struct timer *)(void *)e;

	assert_false(theap_armed(e));
	t->fired_ms = mono_ms();
	t->fires++;
	t->order = ++env->fired;
	if (t->again > 0) {
		t->again--;
		theap_arm(&env->h, e, mono_ms() + 20);
		return;
	}
	if (--env->pending == 0)
		event_base_loopbreak(env->base);
}

static void
env_init(struct env *env)
{
	*env = (struct env){ 0 };
	assert_non_null(env->base = event_base_new());
	assert_int_equal(theap_init(&env->h, env->base, fire, env), 0);
	assert_int_equal(theap_reserve(&env->h, N), 0);
}

/* A deadline for the whole test: a lost timer fails it, not hangs it. */
static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
	fail_msg("a timer did not fire within 20 s");
}

static void
env_run(struct env *env)
{
	struct timeval	 tv = { .tv_sec = 20 };
	struct event	*guard;

	assert_non_null(guard = evtimer_new(env->base, guard_cb, env->base));
	evtimer_add(guard, &tv);
	event_base_dispatch(env->base);
	event_free(guard);
}

static void
env_free(struct env *env)
{
	theap_free(&env->h);
	event_base_free(env->base);
}

/* Shuffled times: fired in time order, never early; two disarmed. */
static void
test_order(void **state)
{
	struct env	 env;
	struct timer	 t[N];
	uint64_t	 t0, due[N];
	int		 i, j;

	(void)state;
	env_init(&env);
	t0 = mono_ms();
	for (i = 0; i < N; i++) {
		t[i] = (struct timer){ 0 };
		due[i] = t0 + 50 + 10 * (uint64_t)((i * 17) % N);
		theap_arm(&env.h, &t[i].e, due[i]);
		assert_true(theap_armed(&t[i].e));
	}
	/* One moved later, one earlier: arming again re-sorts. */
	due[3] += 95;
	theap_arm(&env.h, &t[3].e, due[3]);
	due[4] = t0 + 45;
	theap_arm(&env.h, &t[4].e, due[4]);
	theap_del(&env.h, &t[7].e);
	theap_del(&env.h, &t[7].e);		/* twice: nothing */
	theap_del(&env.h, &t[(7 * 17 + 1) % N].e);
	env.pending = N - 2;
	env_run(&env);
	for (i = 0; i < N; i++) {
		if (i == 7 || i == (7 * 17 + 1) % N) {
			assert_int_equal(t[i].fires, 0);
			continue;
		}
		assert_int_equal(t[i].fires, 1);
		assert_true(t[i].fired_ms >= due[i]);
		for (j = 0; j < N; j++)
			if (t[j].fires == 1 && due[i] < due[j])
				assert_true(t[i].order < t[j].order);
	}
	assert_int_equal(env.h.len, 0);
	env_free(&env);
}

/* Armed again from its own callback: fires again, after the others due. */
static void
test_rearm_from_fire(void **state)
{
	struct env	 env;
	struct timer	 a = { .again = 2 }, b = { 0 };

	(void)state;
	env_init(&env);
	theap_arm(&env.h, &a.e, mono_ms() + 10);
	theap_arm(&env.h, &b.e, mono_ms() + 100);
	env.pending = 2;
	env_run(&env);
	assert_int_equal(a.fires, 3);
	assert_int_equal(b.fires, 1);
	env_free(&env);
}

/* The heap's order after every step of random arms and disarms. */
static void
test_random_steps(void **state)
{
	struct env	 env;
	struct timer	 t[N];
	size_t		 k;
	int		 i, step;

	(void)state;
	env_init(&env);
	srandom(1);
	for (i = 0; i < N; i++)
		t[i] = (struct timer){ 0 };
	for (step = 0; step < 20000; step++) {
		i = (int)(random() % N);
		if (random() % 3 == 0)
			theap_del(&env.h, &t[i].e);
		else
			theap_arm(&env.h, &t[i].e, 1000000 +
			    (uint64_t)(random() % 1000));
		for (k = 0; k < env.h.len; k++) {
			assert_int_equal(env.h.v[k]->idx, k + 1);
			if (k > 0)
				assert_true(env.h.v[(k - 1) / 2]->due_ms <=
				    env.h.v[k]->due_ms);
		}
		for (i = 0, k = 0; i < N; i++)
			k += theap_armed(&t[i].e);
		assert_int_equal(k, env.h.len);
	}
	env_free(&env);
}

static void
test_reserve(void **state)
{
	struct env env;

	(void)state;
	env_init(&env);
	assert_int_equal(theap_reserve(&env.h, 1000), 0);
	assert_true(env.h.cap >= 1000);
	assert_int_equal(theap_reserve(&env.h, 10), 0);	/* never shrinks */
	assert_true(env.h.cap >= 1000);
	assert_int_equal(theap_reserve(&env.h, UINT32_MAX), -1);
	env_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_rearm_from_fire),
		cmocka_unit_test(test_random_steps),
		cmocka_unit_test(test_reserve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
