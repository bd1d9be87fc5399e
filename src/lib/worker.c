/*
 * worker: a thread pool whose results come back to the event loop.
 *
 * Submitted jobs go on one of two queues that the pool threads take from,
 * the urgent one first. A finished job goes on a done queue and the loop
 * is woken through an eventfd; the loop side drains the done queue and
 * runs each done() callback. Only the three queues are shared, all under
 * the one mutex, which is never held while a thread sleeps.
 *
 * What a hand-off costs is system calls, so each side makes as few as it
 * can (a futex call or a wake-up is a few microseconds, a job such as a
 * lock release barely more):
 *
 * - Idle threads sleep on a semaphore that counts the queued jobs, not on
 *   a condition variable: sem_post() makes a futex call only when a thread
 *   sleeps, and a thread that finishes a job takes the next one without
 *   sleeping. A condition variable cost three futex calls a job: the
 *   signal, the wait, and the unlock after it (glibc takes the mutex back
 *   as contended), and two more when the thread woke while the loop still
 *   held the mutex.
 * - A wake-up for the loop is written only when the done queue was empty:
 *   until the loop has taken the queue, later completions ride on the
 *   wake-up already pending.
 * - The loop watches the eventfd edge-triggered and never reads it: each
 *   write is an edge epoll reports (it queues the descriptor again even
 *   when the counter was not zero), and the counter, one a batch, would
 *   take centuries to reach its limit. A write that lands after the loop
 *   took the queue is a new edge, so no finished job is left behind.
 *   Where the libevent backend has no edge triggering (not epoll), the
 *   loop reads the counter back to zero (one read, where a pipe needed a
 *   second to see it empty) before it takes the queue.
 *
 * Quick jobs (worker.h) skip all of that when the loop does them itself.
 * They are held for the end of the turn with the worker_submit_later()
 * jobs; worker_later_cb() runs their quick() hooks one after another,
 * timing each (two clock reads: the vDSO, no system call), until the
 * turn's budget is spent, and hands the rest to the threads under one
 * lock. A quick() slower than the slow limit starts a cool-off, unless
 * the thread was only preempted (worker_preempted(): two system calls a
 * pass that runs a quick()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/worker.h"

struct job_queue {
	struct worker_job	*head;
	struct worker_job	**tailp;
};

/*
 * The loop thread's use of the CPU so far: its voluntary switches (it
 * blocked) from getrusage(), and its CPU time from the thread CPU clock,
 * which is exact; getrusage()'s is only as of the last scheduler tick
 * (4 ms at HZ=250, twice the default limit).
 */
struct thread_use {
	long		 nvcsw;
	uint64_t	 cpu_us;
};

struct worker_pool {
	pthread_mutex_t		 lock;
	struct job_queue	 urgent;	/* taken before todo */
	struct job_queue	 todo;
	struct job_queue	 done;
	unsigned long		 wakeups;	/* eventfd writes */
	/* A token per queued job, and one per thread to stop it. */
	sem_t			 jobs;
	bool			 jobs_init;
	int			 nthreads;
	pthread_t		*threads;
	int			 wake_fd;	/* eventfd: threads -> loop */
	struct event		*wake_ev;
	bool			 wake_et;	/* edge-triggered: no read */
	/* Drains that found jobs: loop thread only, no lock. */
	unsigned long		 drains;
	/* worker_submit_later(): loop thread only, no lock. */
	struct job_queue	 later;
	struct event		*later_ev;
	/* Submitted, done() not run yet: loop thread only, no lock. */
	size_t			 pending;
	/* Quick jobs: loop thread only, no lock. */
	struct worker_quick	 quick;
	uint64_t		 turn_spent_us;	/* quick work this pass chain */
	bool			 in_later;	/* worker_later_cb() runs */
	bool			 chained;	/* ... and held another job */
	uint64_t		 cool_until_us;	/* none before this */
	uint64_t		 cool_ms;	/* the last cool-off's length */
	/* At this pass's first quick() (worker_preempted()). */
	struct thread_use	 pass_use;
	bool			 pass_use_ok, pass_use_tried;
	unsigned long		 quick_done;
	unsigned long		 quick_declined;
	unsigned long		 quick_slow;
	unsigned long		 quick_preempted;
};

static void
queue_init(struct job_queue *q)
{
	q->head = NULL;
	q->tailp = &q->head;
}

static void
queue_push(struct job_queue *q, struct worker_job *job)
{
	job->next = NULL;
	*q->tailp = job;
	q->tailp = &job->next;
}

/* Move every job of src to the end of dst. */
static void
queue_append(struct job_queue *dst, struct job_queue *src)
{
	if (src->head == NULL)
		return;
	*dst->tailp = src->head;
	dst->tailp = src->tailp;
	queue_init(src);
}

static struct worker_job *
queue_pop(struct job_queue *q)
{
	struct worker_job *job = q->head;

	if (job != NULL) {
		q->head = job->next;
		if (q->head == NULL)
			q->tailp = &q->head;
	}
	return job;
}

/* A token: a job is queued, or the pool is stopping. */
static void
jobs_wait(struct worker_pool *pool)
{
	while (sem_wait(&pool->jobs) == -1 && errno == EINTR)
		;	/* a signal handled on this thread */
}

static void
jobs_post(struct worker_pool *pool, size_t n)
{
	while (n-- > 0)
		sem_post(&pool->jobs);
}

/*
 * Under the lock: true when the loop needs a wake-up for this job, only
 * when the done queue was empty (else one is pending and the loop takes
 * the whole queue).
 */
static bool
done_push(struct worker_pool *pool, struct worker_job *job)
{
	bool was_empty = pool->done.head == NULL;

	queue_push(&pool->done, job);
	if (was_empty)
		pool->wakeups++;
	return was_empty;
}

/*
 * Outside the lock: the loop may take the job before this write lands,
 * and then wakes once for nothing, but never misses a job.
 */
static void
wake_loop(struct worker_pool *pool)
{
	static const uint64_t one = 1;

	/* EAGAIN only at a counter of 2^64 - 2, after 2^64 - 2 batches. */
	if (write(pool->wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("worker: wake-up write");
}

static void *
worker_main(void *arg)
{
	struct worker_pool	*pool = arg;
	struct worker_job	*job;
	bool			 wake;

	for (;;) {
		jobs_wait(pool);
		pthread_mutex_lock(&pool->lock);
		if ((job = queue_pop(&pool->urgent)) == NULL)
			job = queue_pop(&pool->todo);
		pthread_mutex_unlock(&pool->lock);
		/* Tokens never outnumber jobs until the stop tokens. */
		if (job == NULL)
			break;

		job->work(job);

		pthread_mutex_lock(&pool->lock);
		wake = done_push(pool, job);
		pthread_mutex_unlock(&pool->lock);
		if (wake)
			wake_loop(pool);
	}
	return NULL;
}

static void
worker_wake_cb(evutil_socket_t fd, short events, void *arg)
{
	struct worker_pool	*pool = arg;
	struct worker_job	*list, *job;
	uint64_t		 n;

	(void)events;
	/* Before the queue is taken: see the comment at the top. */
	if (!pool->wake_et && read(fd, &n, sizeof(n)) == -1 &&
	    errno != EAGAIN)
		log_warn("worker: wake-up read");
	pthread_mutex_lock(&pool->lock);
	list = pool->done.head;
	queue_init(&pool->done);
	pthread_mutex_unlock(&pool->lock);
	if (list != NULL)
		pool->drains++;

	while ((job = list) != NULL) {
		list = job->next;
		pool->pending--;
		job->done(job);
	}
}

static bool
worker_thread_use(struct thread_use *u)
{
	struct rusage	ru;
	struct timespec	ts;

	if (getrusage(RUSAGE_THREAD, &ru) == -1 ||
	    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
		return false;
	u->nvcsw = ru.ru_nvcsw;
	u->cpu_us = (uint64_t)ts.tv_sec * 1000000 +
	    (uint64_t)ts.tv_nsec / 1000;
	return true;
}

/*
 * A quick() over the slow limit by the clock: was the thread only
 * preempted for it, neither blocking (no voluntary switch) nor spending
 * the limit in CPU time since the pass's first quick() began (the pass,
 * not the job: two system calls a pass, 0.5 us; a pass whose earlier
 * jobs used the CPU counts as slow)? What it found goes in *blocked_r and
 * *cpu_us_r (-1 and 0 when it could not tell).
 */
static bool
worker_preempted(struct worker_pool *pool, long *blocked_r,
    uint64_t *cpu_us_r)
{
	struct thread_use now;

	*blocked_r = -1;
	*cpu_us_r = 0;
	if (!pool->pass_use_ok || !worker_thread_use(&now))
		return false;
	*blocked_r = now.nvcsw - pool->pass_use.nvcsw;
	*cpu_us_r = now.cpu_us - pool->pass_use.cpu_us;
	return *blocked_r == 0 && *cpu_us_r < pool->quick.slow_us;
}

/*
 * A quick() took took_us, ending at now_us: past the slow limit, no quick
 * job for a while, unless the thread was only preempted. Slow again
 * within one cool-off of the last one's end, and the next is twice as
 * long (up to the maximum); else the first length again.
 */
static void
quick_timed(struct worker_pool *pool, uint64_t took_us, uint64_t now_us)
{
	uint64_t	ms = pool->quick.cool_min_ms, cpu_us;
	long		blocked;

	if (took_us <= pool->quick.slow_us)
		return;
	if (worker_preempted(pool, &blocked, &cpu_us)) {
		pool->quick_preempted++;
		return;
	}
	if (pool->cool_ms != 0 &&
	    now_us < pool->cool_until_us + pool->cool_ms * 1000) {
		ms = pool->cool_ms * 2;
		if (ms > pool->quick.cool_max_ms)
			ms = pool->quick.cool_max_ms;
	}
	pool->quick_slow++;
	pool->cool_ms = ms;
	pool->cool_until_us = now_us + ms * 1000;
	log_warnx("event=quick-slow took_ms=%.1f cpu_ms=%.1f "
	    "blocked=%ld cool_ms=%llu note=\"work the event loop did "
	    "itself (a login or a lock release) was slow; such work goes to "
	    "the worker threads meanwhile\"", (double)took_us / 1000.0,
	    (double)cpu_us / 1000.0, blocked, (unsigned long long)ms);
}

/*
 * Try a held job's quick(): true when it ran here (done() has run too).
 * The budget is spent across a chain of worker_later_cb() runs: a done()
 * that holds another job makes libevent run the callback again in the
 * same turn, and that run does not start a new budget (hold()). The
 * loop's cached time cannot tell the turns apart: it is the coarse
 * clock, one value for every turn of a 4 ms tick here.
 */
static bool
quick_try(struct worker_pool *pool, struct worker_job *job)
{
	uint64_t	 start, end;
	bool		 ok;

	if (job->quick == NULL || !pool->quick.enabled)
		return false;
	if (pool->turn_spent_us >= pool->quick.turn_budget_us)
		return false;
	start = mono_us();
	if (start < pool->cool_until_us)
		return false;
	if (!pool->pass_use_tried) {
		pool->pass_use_tried = true;
		pool->pass_use_ok = worker_thread_use(&pool->pass_use);
	}
	ok = job->quick(job);
	end = mono_us();
	pool->turn_spent_us += end - start;
	quick_timed(pool, end - start, end);
	if (!ok) {
		pool->quick_declined++;
		return false;
	}
	pool->quick_done++;
	pool->pending--;
	job->done(job);
	return true;
}

/*
 * The end of a loop turn: the held jobs' quick() where it may run, then
 * the rest to the threads, in order, under one lock and with one token
 * a job.
 */
static void
worker_later_cb(evutil_socket_t fd, short events, void *arg)
{
	struct worker_pool	*pool = arg;
	struct worker_job	*list, *job;
	struct job_queue	 urgent, todo;
	size_t			 n = 0;

	(void)fd;
	(void)events;
	if (!pool->chained)		/* a new turn's first run */
		pool->turn_spent_us = 0;
	pool->chained = false;
	pool->in_later = true;
	pool->pass_use_tried = false;
	list = pool->later.head;
	queue_init(&pool->later);	/* done() callbacks may hold more */
	queue_init(&urgent);
	queue_init(&todo);
	while ((job = list) != NULL) {
		list = job->next;
		if (quick_try(pool, job))
			continue;
		queue_push(job->urgent ? &urgent : &todo, job);
		n++;
	}
	pool->in_later = false;
	if (n == 0)
		return;
	pthread_mutex_lock(&pool->lock);
	queue_append(&pool->urgent, &urgent);
	queue_append(&pool->todo, &todo);
	pthread_mutex_unlock(&pool->lock);
	/* One token a job: each wakes at most one sleeping thread. */
	jobs_post(pool, n);
}

struct worker_pool *
worker_pool_new(struct event_base *base, int nthreads)
{
	struct worker_pool	*pool;
	int			 i, err;

	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	pthread_mutex_init(&pool->lock, NULL);
	queue_init(&pool->urgent);
	queue_init(&pool->todo);
	queue_init(&pool->done);
	queue_init(&pool->later);
	pool->wake_fd = -1;
	if (sem_init(&pool->jobs, 0, 0) == -1)
		goto fail;
	pool->jobs_init = true;
	if ((pool->later_ev = event_new(base, -1, 0, worker_later_cb, pool))
	    == NULL)
		goto fail;
	if ((pool->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	pool->wake_et = (event_base_get_features(base) & EV_FEATURE_ET) != 0;
	pool->wake_ev = event_new(base, pool->wake_fd, EV_READ | EV_PERSIST |
	    (pool->wake_et ? EV_ET : 0), worker_wake_cb, pool);
	if (pool->wake_ev == NULL || event_add(pool->wake_ev, NULL) == -1)
		goto fail;
	if ((pool->threads = calloc((size_t)nthreads, sizeof(pthread_t))) == NULL)
		goto fail;
	for (i = 0; i < nthreads; i++) {
		if ((err = pthread_create(&pool->threads[i], NULL, worker_main,
		    pool)) != 0) {
			errno = err;
			goto fail;
		}
		pool->nthreads++;
	}
	return pool;

fail:
	err = errno;
	worker_pool_free(pool);
	errno = err;
	return NULL;
}

void
worker_pool_free(struct worker_pool *pool)
{
	int i;

	if (pool == NULL)
		return;
	/* Jobs held for the end of the turn go in now, behind the rest. */
	pool->quick.enabled = false;
	if (pool->nthreads > 0)
		worker_later_cb(-1, 0, pool);
	/*
	 * A token per thread, behind those of the queued jobs: a thread
	 * stops at the first token that finds both queues empty.
	 */
	jobs_post(pool, (size_t)pool->nthreads);
	for (i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	/* Hand the last results back so their owners can free them. */
	if (pool->wake_ev != NULL)
		worker_wake_cb(pool->wake_fd, EV_READ, pool);
	if (pool->wake_ev != NULL)
		event_free(pool->wake_ev);
	if (pool->later_ev != NULL)
		event_free(pool->later_ev);
	if (pool->wake_fd != -1)
		close(pool->wake_fd);
	if (pool->jobs_init)
		sem_destroy(&pool->jobs);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

/* Hold job for the end of the turn (worker_later_cb()). */
static void
hold(struct worker_pool *pool, struct worker_job *job)
{
	bool was_empty = pool->later.head == NULL;

	queue_push(&pool->later, job);
	/*
	 * Activated now, the event runs after every callback libevent had
	 * already made active for this turn (one queue, first in first out).
	 * Held by a done() of a run of it: the next run is in the same turn.
	 */
	if (pool->in_later)
		pool->chained = true;
	if (was_empty)
		event_active(pool->later_ev, EV_TIMEOUT, 0);
}

static void
submit(struct worker_pool *pool, struct job_queue *q, struct worker_job *job)
{
	pool->pending++;
	if (job->quick != NULL && pool->quick.enabled) {
		job->urgent = q == &pool->urgent;
		hold(pool, job);
		return;
	}
	pthread_mutex_lock(&pool->lock);
	queue_push(q, job);
	pthread_mutex_unlock(&pool->lock);
	/* After the unlock: a thread woken here finds the mutex free. */
	jobs_post(pool, 1);
}

void
worker_submit(struct worker_pool *pool, struct worker_job *job)
{
	submit(pool, &pool->todo, job);
}

void
worker_submit_urgent(struct worker_pool *pool, struct worker_job *job)
{
	submit(pool, &pool->urgent, job);
}

void
worker_submit_later(struct worker_pool *pool, struct worker_job *job)
{
	pool->pending++;
	job->urgent = false;
	hold(pool, job);
}

bool
worker_quick_work(struct worker_job *job)
{
	job->work(job);
	return true;
}

void
worker_set_quick(struct worker_pool *pool, const struct worker_quick *q)
{
	pool->quick = *q;
}

size_t
worker_pending(const struct worker_pool *pool)
{
	return pool->pending;
}

void
worker_stats(struct worker_pool *pool, struct worker_stats *st)
{
	pthread_mutex_lock(&pool->lock);
	st->wakeups = pool->wakeups;
	pthread_mutex_unlock(&pool->lock);
	st->drains = pool->drains;
	st->quick_done = pool->quick_done;
	st->quick_declined = pool->quick_declined;
	st->quick_slow = pool->quick_slow;
	st->quick_preempted = pool->quick_preempted;
	st->cool_ms = pool->cool_ms;
}
