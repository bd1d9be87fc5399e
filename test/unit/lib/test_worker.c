/*
 * test_worker: the worker pool (worker.h) with real threads and a real
 * event loop: urgent jobs start before every queued normal job, each
 * queue in order; done() runs on the loop thread; worker_pool_free()
 * finishes both queues and hands back every result; completions the loop
 * has not taken yet share one wake-up, and one that comes after the loop
 * took the queue wakes it again, with the eventfd edge-triggered (epoll)
 * and level-triggered (poll). Quick jobs: done on the loop at the end of
 * the turn when their quick() takes them, on a thread when it declines,
 * the pool is not set for them, the turn's budget is spent, or a slow one
 * started a cool-off, whose length doubles while slow ones keep coming.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/monotime.h"
#include "lib/worker.h"

#define MAX_JOBS	16

/* What the jobs record, in the order things happened. */
struct trace {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	/* Gates 1 and 2 (0: none): the blocking job runs, and may finish. */
	bool		 gate_started[3];
	bool		 gate_open[3];
	char		 worked[MAX_JOBS + 1];
	size_t		 n_worked;
	char		 done[MAX_JOBS + 1];
	size_t		 n_done;
	char		 quicked[MAX_JOBS + 1];	/* quick() calls */
	size_t		 n_quicked;
	bool		 quick_off_loop;
	pthread_t	 loop;
	bool		 done_off_loop;
	struct event_base *base;
	size_t		 expect;	/* done() calls before loopbreak */
};

struct tjob {
	struct worker_job	 base;	/* first: we cast back */
	struct trace		*t;
	char			 name;
	int			 gate;
	bool			 decline;	/* quick() says no */
	uint64_t		 spin_us;	/* quick() uses this much CPU */
	uint64_t		 wall_us;	/* ... or takes this long, spinning */
	uint64_t		 sleep_us;	/* ... or sleeps this long */
};

/* The calling thread's CPU time. */
static uint64_t
cpu_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
tjob_work(struct worker_job *wj)
{
	struct tjob	*j = (struct tjob *)wj;
	struct trace	*t = j->t;

	pthread_mutex_lock(&t->lock);
	t->worked[t->n_worked++] = j->name;
	if (j->gate != 0) {
		t->gate_started[j->gate] = true;
		pthread_cond_broadcast(&t->cond);
		while (!t->gate_open[j->gate])
			pthread_cond_wait(&t->cond, &t->lock);
	}
	pthread_mutex_unlock(&t->lock);
}

static void
tjob_done(struct worker_job *wj)
{
	struct tjob	*j = (struct tjob *)wj;
	struct trace	*t = j->t;

	if (!pthread_equal(pthread_self(), t->loop))
		t->done_off_loop = true;
	t->done[t->n_done++] = j->name;
	if (t->n_done == t->expect && t->base != NULL)
		event_base_loopbreak(t->base);
	free(j);
}

/*
 * Loop thread: spin for spin_us of CPU time (at least as long by the
 * clock, however busy the machine), or wall_us by the clock, or sleep
 * sleep_us; then take the job or decline it.
 */
static bool
tjob_quick(struct worker_job *wj)
{
	struct tjob	*j = (struct tjob *)wj;
	struct trace	*t = j->t;
	uint64_t	 end = cpu_us() + j->spin_us, wend = mono_us() + j->wall_us;

	if (!pthread_equal(pthread_self(), t->loop))
		t->quick_off_loop = true;
	t->quicked[t->n_quicked++] = j->name;
	while (cpu_us() < end)
		;
	while (mono_us() < wend)
		;
	if (j->sleep_us > 0)
		usleep((useconds_t)j->sleep_us);
	return !j->decline;
}

static struct tjob *
tjob_new(struct trace *t, char name)
{
	struct tjob *j = calloc(1, sizeof(*j));

	assert_non_null(j);
	j->base.work = tjob_work;
	j->base.done = tjob_done;
	j->t = t;
	j->name = name;
	return j;
}

static void
trace_init(struct trace *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->loop = pthread_self();
}

/* Queue a job that blocks its thread at gate n until gate_release(). */
static void
gate_submit(struct worker_pool *pool, struct trace *t, char name, int n)
{
	struct tjob *gate = tjob_new(t, name);

	gate->gate = n;
	worker_submit(pool, &gate->base);
}

static void
gate_wait(struct trace *t, int n)
{
	pthread_mutex_lock(&t->lock);
	while (!t->gate_started[n])
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

/* Keep the pool's one thread busy with a gate job until gate_release(). */
static void
gate_hold(struct worker_pool *pool, struct trace *t)
{
	gate_submit(pool, t, 'g', 1);
	gate_wait(t, 1);
}

static void
gate_release_n(struct trace *t, int n)
{
	pthread_mutex_lock(&t->lock);
	t->gate_open[n] = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void
gate_release(struct trace *t)
{
	gate_release_n(t, 1);
}

/*
 * One thread, held busy by a gate job while the queues fill: then the
 * urgent jobs must come first, each queue first in first out.
 */
static void
test_urgent_first(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct trace		 t;
	const char		*plan = "aUbVcW", *p;

	(void)state;
	assert_non_null(base);
	assert_non_null(pool = worker_pool_new(base, 1));
	trace_init(&t);
	t.base = base;
	t.expect = 1 + strlen(plan);

	gate_hold(pool, &t);

	/* Lower case: worker_submit(); upper case: worker_submit_urgent(). */
	for (p = plan; *p != '\0'; p++) {
		struct tjob *j = tjob_new(&t, *p);

		if (*p >= 'A' && *p <= 'Z')
			worker_submit_urgent(pool, &j->base);
		else
			worker_submit(pool, &j->base);
	}
	/* The gauge of the metrics: queued and running, done() not run. */
	assert_int_equal(worker_pending(pool), t.expect);
	gate_release(&t);

	/* The results come back through the loop. */
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(t.n_done, t.expect);
	assert_int_equal(worker_pending(pool), 0);
	assert_string_equal(t.worked, "gUVWabc");
	assert_string_equal(t.done, "gUVWabc");
	assert_false(t.done_off_loop);

	worker_pool_free(pool);
	event_base_free(base);
}

/* Freeing the pool runs every queued job, urgent ones first, and done(). */
static void
test_free_finishes_both_queues(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	assert_non_null(pool = worker_pool_new(base, 1));
	trace_init(&t);
	t.expect = 4;

	gate_hold(pool, &t);
	j = tjob_new(&t, 'a');
	worker_submit(pool, &j->base);
	j = tjob_new(&t, 'B');
	worker_submit_urgent(pool, &j->base);
	j = tjob_new(&t, 'c');
	worker_submit(pool, &j->base);

	gate_release(&t);

	worker_pool_free(pool);		/* no loop ran: done() here */
	assert_int_equal(t.n_done, 4);
	assert_string_equal(t.worked, "gBac");
	assert_string_equal(t.done, "gBac");
	assert_false(t.done_off_loop);
	event_base_free(base);
}

/*
 * worker_submit_later(): held until the loop has run this turn's
 * callbacks, so a job submitted at once overtakes it; in order among
 * themselves.
 */
static void
test_submit_later(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	assert_non_null(pool = worker_pool_new(base, 1));
	trace_init(&t);
	t.base = base;
	t.expect = 4;

	gate_hold(pool, &t);
	j = tjob_new(&t, 'a');
	worker_submit_later(pool, &j->base);
	j = tjob_new(&t, 'b');
	worker_submit(pool, &j->base);
	j = tjob_new(&t, 'c');
	worker_submit_later(pool, &j->base);
	gate_release(&t);

	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.worked, "gbac");
	assert_string_equal(t.done, "gbac");

	/* Held jobs still pending at free are run too. */
	t.base = NULL;
	t.expect = 5;
	j = tjob_new(&t, 'd');
	worker_submit_later(pool, &j->base);
	worker_pool_free(pool);
	assert_string_equal(t.done, "gbacd");
	event_base_free(base);
}

/*
 * Batching: one thread finishes a gate job and then eight more while no
 * loop runs; the loop wakes once and runs all nine done(). The second gate
 * job, finished after the loop took the queue, wakes it once more.
 */
static void
one_wakeup_per_batch(struct event_base *base)
{
	struct worker_pool	*pool;
	struct worker_stats	 st;
	struct trace		 t;
	struct tjob		*j;
	const char		*plan = "abcdefgh", *p;

	assert_non_null(base);
	assert_non_null(pool = worker_pool_new(base, 1));
	trace_init(&t);
	t.base = base;
	t.expect = 1 + strlen(plan);

	gate_hold(pool, &t);
	for (p = plan; *p != '\0'; p++) {
		j = tjob_new(&t, *p);
		worker_submit(pool, &j->base);
	}
	gate_submit(pool, &t, 'G', 2);
	gate_release(&t);
	/* Gate 2 runs: the nine before it are on the done queue. */
	gate_wait(&t, 2);
	worker_stats(pool, &st);
	assert_int_equal(st.wakeups, 1);
	assert_int_equal(st.drains, 0);

	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.done, "gabcdefgh");
	worker_stats(pool, &st);
	assert_int_equal(st.wakeups, 1);
	assert_int_equal(st.drains, 1);

	/* Finished after the drain: a wake-up of its own, not lost. */
	t.expect++;
	gate_release_n(&t, 2);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.done, "gabcdefghG");
	worker_stats(pool, &st);
	assert_int_equal(st.wakeups, 2);
	assert_int_equal(st.drains, 2);
	assert_int_equal(worker_pending(pool), 0);

	worker_pool_free(pool);
	event_base_free(base);
}

/* epoll: the eventfd edge-triggered, never read (each write an edge). */
static void
test_one_wakeup_per_batch(void **state)
{
	struct event_base *base = event_base_new();

	(void)state;
	assert_non_null(base);
	assert_string_equal(event_base_get_method(base), "epoll");
	one_wakeup_per_batch(base);
}

/* A backend without edge triggering: the counter is read back to zero. */
static void
test_one_wakeup_per_batch_level(void **state)
{
	struct event_config	*cfg = event_config_new();
	struct event_base	*base;

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(event_config_avoid_method(cfg, "epoll"), 0);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	assert_non_null(base);
	assert_int_equal(event_base_get_features(base) & EV_FEATURE_ET, 0);
	one_wakeup_per_batch(base);
}

/*
 * More threads than one, many jobs from both queues and from the end of
 * the turn: every job runs exactly once, every done() on the loop, and
 * freeing the pool stops every thread (one stop token each).
 */
static void
test_many_threads(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct trace		 t;
	struct tjob		*j;
	size_t			 i;

	(void)state;
	assert_non_null(base);
	assert_non_null(pool = worker_pool_new(base, 4));
	trace_init(&t);
	t.base = base;
	t.expect = MAX_JOBS;
	for (i = 0; i < MAX_JOBS; i++) {
		j = tjob_new(&t, (char)('a' + i));
		if (i % 3 == 0)
			worker_submit_urgent(pool, &j->base);
		else if (i % 3 == 1)
			worker_submit_later(pool, &j->base);
		else
			worker_submit(pool, &j->base);
	}
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(t.n_worked, MAX_JOBS);
	assert_int_equal(t.n_done, MAX_JOBS);
	assert_int_equal(worker_pending(pool), 0);
	assert_false(t.done_off_loop);
	worker_pool_free(pool);
	event_base_free(base);
}


/* A quick job: tjob_quick() as its quick(). */
static struct tjob *
qjob_new(struct trace *t, char name, bool decline, uint64_t spin_us)
{
	struct tjob *j = tjob_new(t, name);

	worker_job_quick(&j->base, tjob_quick);
	j->decline = decline;
	j->spin_us = spin_us;
	return j;
}

static struct worker_pool *
quick_pool(struct event_base *base, uint64_t budget_us, uint64_t slow_us,
    uint64_t cool_min_ms, uint64_t cool_max_ms)
{
	struct worker_pool	*pool;
	struct worker_quick	 q = WORKER_QUICK_DEFAULTS;

	assert_non_null(pool = worker_pool_new(base, 1));
	q.turn_budget_us = budget_us;
	q.slow_us = slow_us;
	q.cool_min_ms = cool_min_ms;
	q.cool_max_ms = cool_max_ms;
	worker_set_quick(pool, &q);
	return pool;
}

/*
 * Quick jobs from all three submit calls run on the loop at the end of
 * the turn, after a plain job submitted at once; a declined one runs on
 * the thread, an urgent one ahead of the normal jobs queued before it.
 */
static void
test_quick_on_loop(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct worker_stats	 st;
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	pool = quick_pool(base, 1000 * 1000, 1000 * 1000, 1000, 1000);
	trace_init(&t);
	t.base = base;
	t.expect = 7;

	gate_hold(pool, &t);
	j = tjob_new(&t, 'a');			/* plain, at once */
	worker_submit(pool, &j->base);
	j = qjob_new(&t, 'q', false, 0);
	worker_submit(pool, &j->base);
	j = qjob_new(&t, 'R', false, 0);
	worker_submit_urgent(pool, &j->base);
	j = qjob_new(&t, 's', false, 0);
	worker_submit_later(pool, &j->base);
	j = qjob_new(&t, 'D', true, 0);		/* declines: urgent */
	worker_submit_urgent(pool, &j->base);
	j = qjob_new(&t, 'e', true, 0);		/* declines */
	worker_submit(pool, &j->base);
	assert_int_equal(worker_pending(pool), 7);
	/* The thread is held: the quick ones finish without it. */
	t.expect = 3;
	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.done, "qRs");
	assert_string_equal(t.quicked, "qRsDe");
	assert_false(t.quick_off_loop);
	assert_int_equal(t.n_worked, 1);		/* the gate */
	worker_stats(pool, &st);
	assert_int_equal(st.quick_done, 3);
	assert_int_equal(st.quick_declined, 2);
	assert_int_equal(st.quick_slow, 0);

	t.expect = 7;
	gate_release(&t);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.worked, "gDae");
	assert_string_equal(t.done, "qRsgDae");
	assert_false(t.done_off_loop);
	assert_int_equal(worker_pending(pool), 0);
	worker_pool_free(pool);
	event_base_free(base);
}

/* A pool not set for quick jobs never calls quick(). */
static void
test_quick_off(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct worker_quick	 q = WORKER_QUICK_DEFAULTS;
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	assert_non_null(pool = worker_pool_new(base, 1));
	trace_init(&t);
	t.base = base;
	t.expect = 2;
	j = qjob_new(&t, 'a', false, 0);
	worker_submit(pool, &j->base);
	/* Set, then unset ([auth] quick_jobs = no at a reload). */
	worker_set_quick(pool, &q);
	q.enabled = false;
	worker_set_quick(pool, &q);
	j = qjob_new(&t, 'b', false, 0);
	worker_submit_later(pool, &j->base);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(t.n_quicked, 0);
	assert_string_equal(t.worked, "ab");
	worker_pool_free(pool);
	event_base_free(base);
}

/*
 * The turn's budget: quick() runs while the turn's quick work is under
 * it. Each job here takes the whole budget, so one runs on the loop and
 * the other two go to the thread, in order.
 */
static void
test_quick_budget(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct worker_stats	 st;
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	pool = quick_pool(base, 1000, 1000 * 1000, 1000, 1000);
	trace_init(&t);
	t.base = base;
	t.expect = 3;
	j = qjob_new(&t, 'a', false, 1000);
	worker_submit(pool, &j->base);
	j = qjob_new(&t, 'b', false, 1000);
	worker_submit(pool, &j->base);
	j = qjob_new(&t, 'c', false, 1000);
	worker_submit(pool, &j->base);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.quicked, "a");
	assert_string_equal(t.worked, "bc");
	assert_string_equal(t.done, "abc");
	worker_stats(pool, &st);
	assert_int_equal(st.quick_done, 1);
	assert_int_equal(st.quick_slow, 0);
	worker_pool_free(pool);
	event_base_free(base);
}

/* done() of a job that holds another quick job, in the same turn. */
static struct worker_pool	*chain_pool;

static void
chain_done(struct worker_job *wj)
{
	struct tjob	*j = (struct tjob *)wj;
	struct tjob	*next = qjob_new(j->t, 'b', false, 0);

	tjob_done(wj);
	worker_submit(chain_pool, &next->base);
}

/*
 * The budget is the turn's, not one pass's: a done() that holds another
 * quick job (a pipelined QUIT after a quick login) runs it in the same
 * turn, where the budget is spent already: it goes to the thread.
 */
static void
test_quick_budget_turn(void **state)
{
	struct event_base	*base = event_base_new();
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	chain_pool = quick_pool(base, 1000, 1000 * 1000, 1000, 1000);
	trace_init(&t);
	t.base = base;
	t.expect = 2;
	j = qjob_new(&t, 'a', false, 1000);
	j->base.done = chain_done;
	worker_submit(chain_pool, &j->base);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.quicked, "a");
	assert_string_equal(t.worked, "b");
	assert_string_equal(t.done, "ab");
	worker_pool_free(chain_pool);
	event_base_free(base);
}

/* Run the loop until job name (quick, never declining) is done. */
static char
quick_run(struct event_base *base, struct worker_pool *pool,
    struct trace *t, char name, uint64_t spin_us)
{
	struct tjob	*j = qjob_new(t, name, false, spin_us);
	size_t		 nq = t->n_quicked;

	t->expect = t->n_done + 1;
	worker_submit(pool, &j->base);
	assert_int_equal(event_base_dispatch(base), 0);
	return t->n_quicked > nq ? 'L' : 'T';	/* loop or thread */
}

/* Let the clock pass us (the cool-offs are time itself, not an event). */
static void
wait_until(uint64_t us)
{
	uint64_t now;

	while ((now = mono_us()) < us)
		usleep((useconds_t)(us - now));
}

/*
 * A quick() over the slow limit: every job goes to the threads for the
 * cool-off; slow again within one cool-off of its end, and the next is
 * twice as long, up to the maximum; slow after a quiet period, and it
 * is back to its first length.
 */
static void
test_quick_cool_off(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct worker_stats	 st;
	struct trace		 t;
	uint64_t		 end;

	(void)state;
	assert_non_null(base);
	/*
	 * Slow: over 5 ms (the slow jobs spin 10); cool-offs of 200, 400, then 400 ms: wide enough
	 * that only a stall of 200 ms on a busy machine could make a run
	 * late enough to count as after a quiet period.
	 */
	pool = quick_pool(base, 1000 * 1000, 5000, 200, 400);
	trace_init(&t);
	t.base = base;

	assert_int_equal(quick_run(base, pool, &t, 'b', 10000), 'L');
	end = mono_us();	/* the cool-off started before this */
	worker_stats(pool, &st);
	assert_int_equal(st.quick_slow, 1);
	assert_int_equal(st.cool_ms, 200);
	/* Cooling off: on the thread (the 200 ms cannot be over yet unless
	 * this machine stalled us for that long; then it proves nothing). */
	if (quick_run(base, pool, &t, 'c', 0) == 'L')
		assert_true(mono_us() - end >= 200 * 1000);
	/* After it, on the loop again; slow at once: 400 ms. */
	wait_until(end + 200 * 1000);
	assert_int_equal(quick_run(base, pool, &t, 'd', 10000), 'L');
	end = mono_us();
	worker_stats(pool, &st);
	assert_int_equal(st.quick_slow, 2);
	assert_int_equal(st.cool_ms, 400);
	/* Again after it: capped at 400. */
	wait_until(end + 400 * 1000);
	assert_int_equal(quick_run(base, pool, &t, 'e', 10000), 'L');
	end = mono_us();
	worker_stats(pool, &st);
	assert_int_equal(st.quick_slow, 3);
	assert_int_equal(st.cool_ms, 400);
	/* Quiet for more than one cool-off after its end: 200 again. */
	wait_until(end + 2 * 400 * 1000 + 100 * 1000);
	assert_int_equal(quick_run(base, pool, &t, 'f', 10000), 'L');
	worker_stats(pool, &st);
	assert_int_equal(st.quick_slow, 4);
	assert_int_equal(st.cool_ms, 200);
	assert_false(t.quick_off_loop);
	worker_pool_free(pool);
	event_base_free(base);
}

/*
 * A quick() that blocks (sleeps: a voluntary switch) past the limit is
 * slow, however little CPU it used: a disk that stalls.
 */
static void
test_quick_blocked_slow(void **state)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct worker_stats	 st;
	struct trace		 t;
	struct tjob		*j;

	(void)state;
	assert_non_null(base);
	pool = quick_pool(base, 1000 * 1000, 5000, 200, 400);
	trace_init(&t);
	t.base = base;
	t.expect = 1;
	j = qjob_new(&t, 'a', false, 0);
	j->sleep_us = 20 * 1000;
	worker_submit(pool, &j->base);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_string_equal(t.quicked, "a");
	worker_stats(pool, &st);
	assert_int_equal(st.quick_slow, 1);
	assert_int_equal(st.quick_preempted, 0);
	worker_pool_free(pool);
	event_base_free(base);
}

static volatile bool	 hog_stop;

static void *
hog(void *arg)
{
	(void)arg;
	while (!hog_stop)
		;
	return NULL;
}

/*
 * The preempted loop: in a child process, the loop thread and a busy
 * thread share one CPU, the loop thread at nice 19 (a thread may always
 * lower its own priority), so it gets about 1.5 % of the CPU. A quick()
 * that spins 200 ms by the clock then uses a few ms of CPU time (a slice
 * or a scheduler tick, 4 ms at HZ=250, at a time), well under the 20 ms
 * limit, and never blocks: over the limit by the clock only, it is
 * counted as preempted and starts no cool-off; the next job is quick too.
 * The child reports by its exit status (no cmocka there).
 */
static int
preempted_child(void)
{
	struct event_base	*base = event_base_new();
	struct worker_pool	*pool;
	struct worker_stats	 st;
	struct trace		 t;
	struct tjob		*j;
	pthread_t		 th;
	cpu_set_t		 all, one;
	int			 cpu, rc = 0;

	if (base == NULL || sched_getaffinity(0, sizeof(all), &all) == -1)
		return 10;
	for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &all); cpu++)
		;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) == -1)
		return 11;
	pool = quick_pool(base, 1000 * 1000, 20 * 1000, 200, 400);
	if (pthread_create(&th, NULL, hog, NULL) != 0)
		return 12;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) == -1)
		return 13;
	trace_init(&t);
	t.base = base;
	t.expect = 1;
	j = qjob_new(&t, 'a', false, 0);
	j->wall_us = 200 * 1000;
	worker_submit(pool, &j->base);
	if (event_base_dispatch(base) != 0)
		rc = 14;
	worker_stats(pool, &st);
	if (rc == 0 && (st.quick_slow != 0 || st.quick_preempted != 1))
		rc = 20 + (int)st.quick_slow;
	if (rc == 0) {				/* not cooling off */
		t.expect = 2;
		worker_submit(pool, &qjob_new(&t, 'b', false, 0)->base);
		if (event_base_dispatch(base) != 0 || t.n_quicked != 2)
			rc = 30;
	}
	hog_stop = true;
	pthread_join(th, NULL);
	worker_pool_free(pool);
	event_base_free(base);
	return rc;
}

static void
test_quick_preempted(void **state)
{
	pid_t	 pid;
	int	 status;

	(void)state;
	if ((pid = fork()) == 0)
		_exit(preempted_child());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_urgent_first),
		cmocka_unit_test(test_free_finishes_both_queues),
		cmocka_unit_test(test_submit_later),
		cmocka_unit_test(test_one_wakeup_per_batch),
		cmocka_unit_test(test_one_wakeup_per_batch_level),
		cmocka_unit_test(test_many_threads),
		cmocka_unit_test(test_quick_on_loop),
		cmocka_unit_test(test_quick_off),
		cmocka_unit_test(test_quick_budget),
		cmocka_unit_test(test_quick_budget_turn),
		cmocka_unit_test(test_quick_cool_off),
		cmocka_unit_test(test_quick_blocked_slow),
		cmocka_unit_test(test_quick_preempted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
