#ifndef EVPOP3D_SESSLOCK_H
#define EVPOP3D_SESSLOCK_H

/*
 * sesslock: the POP3 session lock (RFC 1939 section 4), held without a
 * file descriptor.
 *
 * An idle session must cost one descriptor, its socket: 19,000 logged-in
 * sessions have to fit under a 20,000-descriptor limit, so a held fcntl
 * or flock lock is out. The lock is a small file that stays in place and
 * names its owner in one fixed-size record:
 *
 *	<pid> <start time in clock ticks> <boot id> <host name>   ...\n
 *
 * or "free" when nobody holds it. Taking the lock reads and rewrites the
 * record under a short OFD lock; releasing it writes "free". The file is
 * never created or removed per session: on ext4, creating an inode right
 * after freeing one is slow (the allocator avoids recently deleted
 * inodes), and it was half of a login's cost.
 *
 * A record whose owner is gone is free: same host and boot, and
 * /proc/<pid> missing or started at another time (the pid was reused);
 * or same host and another boot. An owner on another host is taken as
 * alive. Anything else in the file (the bare pid of evpop3d 0.1, a torn
 * write) counts as free.
 *
 * acquire() may wait a few milliseconds for another acquire() and runs on
 * worker threads; release() never waits (it runs on workers too: at QUIT
 * and when a session ends, so the event loop never writes the file).
 */

#include <stddef.h>

#include "store.h"

#define SESSLOCK_RECORD		160	/* bytes in the lock file */

/*
 * Take the lock at path (the file is created if missing). STORE_OK when
 * this session holds it now; STORE_INUSE when a live session holds it
 * (err says so); STORE_TEMP or STORE_PERM with err set on I/O errors.
 */
enum store_err	sesslock_acquire(const char *path, char *err, size_t errlen);

/*
 * Give up a lock taken by sesslock_acquire() in this process. Returns 0,
 * or -1 with errno set when the record could not be rewritten (the lock
 * then stays until this process exits).
 */
int		sesslock_release(const char *path);

#endif
