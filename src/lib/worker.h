/*
 * worker: a small thread pool for blocking work (password hashing, maildrop
 * scans) whose results are handed back to the event loop.
 *
 * A job's work() runs on a pool thread; its done() then runs on the loop
 * thread. The submitter embeds struct worker_job in its own struct. Jobs
 * cannot be cancelled: a submitter that goes away clears its back pointer
 * and lets done() clean up (OpenSMTPD's wait tree, without the tree).
 *
 * Two queues, each first in first out: urgent jobs are started before
 * any normal one, so that a short job a client is waiting on (releasing
 * a maildrop) never waits for a queue of password hashes.
 *
 * A job may also have a quick() hook: work the loop may do itself when it
 * is cheap after all, sparing the hand-off to a thread and back (a futex
 * wake, an eventfd write and two task switches). Such a job waits for the
 * end of the loop turn, like worker_submit_later(); there quick() runs on
 * the loop unless the turn's quick work is over its budget or the pool is
 * cooling off (below); quick() may decline, and then work() runs on a
 * thread as usual. Only the submitter can tell whether its job is cheap
 * (a {PLAIN} password, a small maildrop on a local disk), so the pool
 * only bounds the cost of a wrong guess: a quick() that ran longer than
 * the slow limit sends every job to the threads for a cool-off period,
 * which doubles while slow runs keep coming (a disk under a write storm)
 * and starts again from its first length after a quiet period. Longer
 * by the clock only because the loop thread was preempted (it neither
 * blocked nor used the limit in CPU time since the pass's first quick():
 * a getrusage() and a thread CPU clock read a pass, 0.5 us) is not slow:
 * a busy host's scheduler is no reason to hand cheap work to threads.
 */
#ifndef EVPOP3D_WORKER_H
#define EVPOP3D_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

struct worker_job {
	void			(*work)(struct worker_job *job);	/* pool thread */
	void			(*done)(struct worker_job *job);	/* loop thread */
	/* Optional, loop thread: true when it did the work, false to decline. */
	bool			(*quick)(struct worker_job *job);
	struct worker_job	*next;
	bool			 urgent;	/* where a declined quick job goes */
};

struct worker_pool;

/* Set job up to run work() on a pool thread and then done() on the loop. */
static inline void
worker_job_init(struct worker_job *job, void (*work)(struct worker_job *),
    void (*done)(struct worker_job *))
{
	job->work = work;
	job->done = done;
	job->quick = NULL;
	job->next = NULL;
	job->urgent = false;
}

/*
 * Let the loop try quick(job) at the end of the turn (see the top). It
 * must do what work() does, or nothing and return false; done() follows
 * either way, on the loop. It runs only on the loop thread, so it must
 * not wait for anything a done() callback would bring.
 */
static inline void
worker_job_quick(struct worker_job *job, bool (*quick)(struct worker_job *))
{
	job->quick = quick;
}

/*
 * A quick() for a job whose work is cheap whenever the submitter offers
 * it to the loop: work() itself, never declining (lock releases).
 */
bool			 worker_quick_work(struct worker_job *job);

/* The loop's share of quick work (worker_set_quick()). */
struct worker_quick {
	bool		enabled;
	uint64_t	turn_budget_us;	/* quick work per loop turn */
	uint64_t	slow_us;	/* a quick() over this: cool off */
	uint64_t	cool_min_ms;	/* first cool-off; doubles ... */
	uint64_t	cool_max_ms;	/* ... up to this */
};

#define WORKER_QUICK_DEFAULTS { true, 2000, 2000, 100, 60000 }

/* NULL on error (errno set). */
struct worker_pool	*worker_pool_new(struct event_base *base, int nthreads);
/*
 * Finish every queued job, join the threads, then run the outstanding
 * done() callbacks on the calling thread so that results can be freed.
 */
void			 worker_pool_free(struct worker_pool *pool);
/* Queue job behind every job queued so far. */
void			 worker_submit(struct worker_pool *pool, struct worker_job *job);
/*
 * Queue job behind the urgent jobs only, ahead of every worker_submit()
 * job not yet started. For short jobs: a job already running is never
 * interrupted, so an urgent job waits for at most that.
 */
void			 worker_submit_urgent(struct worker_pool *pool,
			    struct worker_job *job);
/*
 * Like worker_submit(), but only once the event loop has run every
 * callback already due in this turn of the loop. Loop thread only. For a
 * job whose outcome depends on what those callbacks do: a login must not
 * look for the maildrop lock before the end of a session whose close
 * arrived in the same turn (the client dropped one connection and
 * opened the next one at once) has given the lock up.
 */
void			 worker_submit_later(struct worker_pool *pool,
			    struct worker_job *job);
/*
 * The jobs submitted whose done() has not run yet: queued, running, or
 * finished and waiting for the loop. Loop thread only; a plain counter
 * the submit calls and the loop side keep, no lock.
 */
size_t			 worker_pending(const struct worker_pool *pool);

/* Loop thread only. Quick jobs are off until this is called. */
void			 worker_set_quick(struct worker_pool *pool,
			    const struct worker_quick *q);

/*
 * How the results came back, since the start: wake-ups the threads wrote
 * (at most one per batch of completions the loop had not taken yet) and
 * drains of the loop that found results; quick jobs done on the loop,
 * declined by their quick(), cool-offs begun and the last one's length,
 * and quick() runs over the limit by the clock that the loop thread was
 * preempted in (no cool-off). Loop thread only.
 */
struct worker_stats {
	unsigned long	wakeups;
	unsigned long	drains;
	unsigned long	quick_done;
	unsigned long	quick_declined;
	unsigned long	quick_slow;
	uint64_t	cool_ms;
	unsigned long	quick_preempted;
};
void			 worker_stats(struct worker_pool *pool,
			    struct worker_stats *st);

#endif
