/*
 * worker: a thread pool whose results come back to the event loop.
 *
 * Submitted jobs go on one of two queues that the pool threads take from,
 * the urgent one first. A finished job goes on a done queue and the loop
 * is woken through a pipe; the loop side drains the done queue and runs
 * each done() callback. Only the three queues are shared, all under the
 * one mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/worker.h"

struct job_queue {
	struct worker_job	*head;
	struct worker_job	**tailp;
};

struct worker_pool {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct job_queue	 urgent;	/* taken before todo */
	struct job_queue	 todo;
	struct job_queue	 done;
	bool			 stopping;
	int			 nthreads;
	pthread_t		*threads;
	int			 wake[2];	/* pipe: threads -> loop */
	struct event		*wake_ev;
	/* worker_submit_later(): loop thread only, no lock. */
	struct job_queue	 later;
	struct event		*later_ev;
	/* Submitted, done() not run yet: loop thread only, no lock. */
	size_t			 pending;
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

static void *
worker_main(void *arg)
{
	struct worker_pool	*pool = arg;
	struct worker_job	*job;
	bool			 was_empty;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while ((job = queue_pop(&pool->urgent)) == NULL &&
		    (job = queue_pop(&pool->todo)) == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (job == NULL)
			break;
		pthread_mutex_unlock(&pool->lock);

		job->work(job);

		pthread_mutex_lock(&pool->lock);
		was_empty = pool->done.head == NULL;
		queue_push(&pool->done, job);
		/* One wake-up byte per batch: the loop drains the whole queue. */
		if (was_empty && write(pool->wake[1], "", 1) == -1 && errno != EAGAIN)
			log_warn("worker: wake-up write");
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void
worker_wake_cb(evutil_socket_t fd, short events, void *arg)
{
	struct worker_pool	*pool = arg;
	struct worker_job	*list, *job;
	char			 buf[64];

	(void)events;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&pool->lock);
	list = pool->done.head;
	queue_init(&pool->done);
	pthread_mutex_unlock(&pool->lock);

	while ((job = list) != NULL) {
		list = job->next;
		pool->pending--;
		job->done(job);
	}
}

/*
 * The end of a loop turn: hand the held jobs to the threads, in order,
 * under one lock and with one wake-up.
 */
static void
worker_later_cb(evutil_socket_t fd, short events, void *arg)
{
	struct worker_pool	*pool = arg;

	(void)fd;
	(void)events;
	if (pool->later.head == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	*pool->todo.tailp = pool->later.head;
	pool->todo.tailp = pool->later.tailp;
	if (pool->later.head->next == NULL)
		pthread_cond_signal(&pool->cond);
	else
		pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	queue_init(&pool->later);
}

struct worker_pool *
worker_pool_new(struct event_base *base, int nthreads)
{
	struct worker_pool	*pool;
	int			 i, err;

	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	queue_init(&pool->urgent);
	queue_init(&pool->todo);
	queue_init(&pool->done);
	queue_init(&pool->later);
	pool->wake[0] = pool->wake[1] = -1;
	if ((pool->later_ev = event_new(base, -1, 0, worker_later_cb, pool))
	    == NULL)
		goto fail;
	if (pipe2(pool->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		goto fail;
	pool->wake_ev = event_new(base, pool->wake[0], EV_READ | EV_PERSIST,
	    worker_wake_cb, pool);
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
	if (pool->nthreads > 0)
		worker_later_cb(-1, 0, pool);
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	/* Threads finish the queued jobs before they see stopping. */
	for (i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	/* Hand the last results back so their owners can free them. */
	if (pool->wake_ev != NULL)
		worker_wake_cb(pool->wake[0], EV_READ, pool);
	if (pool->wake_ev != NULL)
		event_free(pool->wake_ev);
	if (pool->later_ev != NULL)
		event_free(pool->later_ev);
	if (pool->wake[0] != -1)
		close(pool->wake[0]);
	if (pool->wake[1] != -1)
		close(pool->wake[1]);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

static void
submit(struct worker_pool *pool, struct job_queue *q, struct worker_job *job)
{
	pthread_mutex_lock(&pool->lock);
	queue_push(q, job);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}

void
worker_submit(struct worker_pool *pool, struct worker_job *job)
{
	pool->pending++;
	submit(pool, &pool->todo, job);
}

void
worker_submit_urgent(struct worker_pool *pool, struct worker_job *job)
{
	pool->pending++;
	submit(pool, &pool->urgent, job);
}

void
worker_submit_later(struct worker_pool *pool, struct worker_job *job)
{
	bool was_empty = pool->later.head == NULL;

	pool->pending++;
	queue_push(&pool->later, job);
	/*
	 * Activated now, the event runs after every callback libevent had
	 * already made active for this turn (one queue, first in first out).
	 */
	if (was_empty)
		event_active(pool->later_ev, EV_TIMEOUT, 0);
}

size_t
worker_pending(const struct worker_pool *pool)
{
	return pool->pending;
}
