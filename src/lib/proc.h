/*
 * proc: which worker process this is. With [server] workers = N the
 * supervisor forks N single-threaded workers and tells each its index
 * (0 .. N-1) before it serves; a single process is worker 0 of 1. Shared
 * per-host state (shlimits.h) keeps each worker's references apart by
 * this index, so that a dead worker's can be given back.
 */
#ifndef EVPOP3D_PROC_H
#define EVPOP3D_PROC_H

/* This process's index and the number of workers (defaults 0 and 1). */
unsigned	proc_worker_index(void);
unsigned	proc_worker_count(void);
/* In a new worker, before it serves: index < count, count >= 1. */
void		proc_set_worker(unsigned index, unsigned count);

#endif
