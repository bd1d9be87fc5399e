/*
 * worker: a small thread pool for blocking work (password hashing, maildrop
 * scans) whose results are handed back to the event loop.
 *
 * A job's work() runs on a pool thread; its done() then runs on the loop
 * thread. The submitter embeds struct worker_job in its own struct. Jobs
 * cannot be cancelled: a submitter that goes away clears its back pointer
 * and lets done() clean up (OpenSMTPD's wait tree, without the tree).
 */
#ifndef EVPOP3D_WORKER_H
#define EVPOP3D_WORKER_H

struct event_base;

struct worker_job {
	void			(*work)(struct worker_job *job);	/* pool thread */
	void			(*done)(struct worker_job *job);	/* loop thread */
	struct worker_job	*next;
};

struct worker_pool;

/* NULL on error (errno set). */
struct worker_pool	*worker_pool_new(struct event_base *base, int nthreads);
/*
 * Finish every queued job, join the threads, then run the outstanding
 * done() callbacks on the calling thread so that results can be freed.
 */
void			 worker_pool_free(struct worker_pool *pool);
void			 worker_submit(struct worker_pool *pool, struct worker_job *job);

#endif
