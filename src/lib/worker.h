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
 */
#ifndef EVPOP3D_WORKER_H
#define EVPOP3D_WORKER_H

#include <stddef.h>

struct event_base;

struct worker_job {
	void			(*work)(struct worker_job *job);	/* pool thread */
	void			(*done)(struct worker_job *job);	/* loop thread */
	struct worker_job	*next;
};

struct worker_pool;

/* Set job up to run work() on a pool thread and then done() on the loop. */
static inline void
worker_job_init(struct worker_job *job, void (*work)(struct worker_job *),
    void (*done)(struct worker_job *))
{
	job->work = work;
	job->done = done;
	job->next = NULL;
}

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

/*
 * How the results came back, since the start: wake-ups the threads wrote
 * (at most one per batch of completions the loop had not taken yet) and
 * drains of the loop that found results. Loop thread only.
 */
struct worker_stats {
	unsigned long	wakeups;
	unsigned long	drains;
};
void			 worker_stats(struct worker_pool *pool,
			    struct worker_stats *st);

#endif
