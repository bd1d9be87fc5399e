/*
 * pidcache: getpid() once per process (pidcache.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "lib/pidcache.h"

static _Atomic pid_t	cached;
static pthread_once_t	once = PTHREAD_ONCE_INIT;

/* In a forked child: the child's own id, before anything else runs. */
static void
pid_child(void)
{
	atomic_store_explicit(&cached, getpid(), memory_order_relaxed);
}

static void
pid_init(void)
{
	(void)pthread_atfork(NULL, NULL, pid_child);
	atomic_store_explicit(&cached, getpid(), memory_order_relaxed);
}

pid_t
pid_self(void)
{
	pid_t	 pid;

	if ((pid = atomic_load_explicit(&cached, memory_order_relaxed)) != 0)
		return pid;
	(void)pthread_once(&once, pid_init);
	return atomic_load_explicit(&cached, memory_order_relaxed);
}
