/*
 * pidcache: this process's id without a system call. glibc no longer
 * caches getpid() (2.25), and the lock records ask for it at every login
 * and release; a fork() resets the cache in the child (pthread_atfork).
 */
#ifndef EVPOP3D_PIDCACHE_H
#define EVPOP3D_PIDCACHE_H

#include <sys/types.h>

/* getpid(), cached. Thread-safe. */
pid_t	pid_self(void);

#endif
