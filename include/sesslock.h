#ifndef EVPOP3D_SESSLOCK_H
#define EVPOP3D_SESSLOCK_H

/*
 * sesslock: the POP3 session lock (RFC 1939 section 4), as a lock file
 * that holds no file descriptor.
 *
 * An idle session must cost one descriptor, its socket: 19,000 logged-in
 * sessions have to fit under a 20,000-descriptor limit, so a held fcntl
 * or flock lock (a descriptor per session) is out. The lock is a file
 * created with O_EXCL that names its owner:
 *
 *	<pid> <start time in clock ticks> <boot id> <host name>\n
 *
 * A lock whose owner is gone is stale and is broken: same host and boot,
 * and /proc/<pid> missing or started at another time (the pid was reused);
 * or same host and another boot. An owner on another host is taken as
 * alive. A file that cannot be parsed is a lock being written, unless it
 * is older than SESSLOCK_STALE_EMPTY seconds (its writer died).
 *
 * Callers are worker threads (acquire) and the event loop (release); the
 * functions are thread-safe.
 */

#include <stddef.h>

#include "store.h"

#define SESSLOCK_STALE_EMPTY	30

/*
 * Create the lock file at path. STORE_OK when this session holds it now;
 * STORE_INUSE when a live session holds it (err says so); STORE_TEMP or
 * STORE_PERM with err set on I/O errors.
 */
enum store_err	sesslock_acquire(const char *path, char *err, size_t errlen);

/* Remove a lock this process holds (best effort; errors are ignored). */
void		sesslock_release(const char *path);

#endif
