/*
 * proc: which serving process this is. With [server] workers = N > 1 a
 * supervisor (net/supervise.h) forks N worker processes, each running
 * the whole daemon loop; a worker learns its index at fork. With
 * workers = 1 the one process is worker 0 of 1.
 *
 * Readers: log.c (worker=I on every line of a worker), the session set
 * (ids unique across workers: worker I hands out ids congruent to I
 * modulo N), and the per-host state shared between the workers
 * (shlimits.h), which keeps each worker's references apart by this
 * index so that a dead worker's can be given back.
 */
#ifndef EVPOP3D_PROC_H
#define EVPOP3D_PROC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Set once, in a worker just after the fork (index < count), before it
 * starts any thread: threads made later see it without a lock.
 */
void		 proc_set_worker(unsigned index, unsigned count);
/* This worker's index, 0..proc_worker_count() - 1; 0 outside workers. */
unsigned	 proc_worker_index(void);
/* How many workers serve: 1 unless this is a forked worker of N. */
unsigned	 proc_worker_count(void);
/* Is this process a worker forked by a supervisor? */
bool		 proc_is_worker(void);
/*
 * What starts a worker's log lines after the level and session, made by
 * proc_set_worker(): "worker=I " and its length in *len; outside a
 * worker "" and 0.
 */
const char	*proc_log_tag(size_t *len);

#endif
