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
 * worker threads; release() never waits long (it runs on workers too: at
 * QUIT and when a session ends, so the event loop never writes the file).
 *
 * Within this process the locks held are also kept in a table, because a
 * record naming this process cannot tell one of its sessions from
 * another: a session that ends gives its maildrop up at once, on the loop
 * (sesslock_disown(), no I/O), while the record is rewritten later on a
 * worker. A login that comes in between finds the lock disowned in the
 * table and takes it over without touching the file, instead of reading
 * a record that still names this process and answering [IN-USE]. The
 * disowned holder's release() then leaves the file alone.
 */

#include <stddef.h>

#include "store/store.h"

#define SESSLOCK_RECORD		160	/* bytes in the lock file */

/* A lock held by this process (opaque). */
struct sesslock;

/*
 * Take the lock at path (the file is created if missing). STORE_OK and
 * *lk_r when this session holds it now; STORE_INUSE when a live session
 * holds it (err says so); STORE_TEMP or STORE_PERM with err set on I/O
 * errors. Thread-safe; may wait briefly.
 */
enum store_err	sesslock_acquire(const char *path, struct sesslock **lk_r,
		    char *err, size_t errlen);

/*
 * sesslock_acquire() for the event loop: STORE_AGAIN, and nothing taken,
 * where it would wait (another thread's acquire or release of the path
 * in progress, another process's acquire holding the OFD lock) or answer
 * STORE_INUSE (a live holder may be a session ending in this very turn
 * of the loop, whose close the loop has not seen yet): the caller tries
 * again on a worker thread, which waits and decides.
 */
enum store_err	sesslock_try(const char *path, struct sesslock **lk_r,
		    char *err, size_t errlen);

/*
 * The session holding lk has ended: from now on another
 * sesslock_acquire() of the same path in this process may take the lock
 * over, before sesslock_release(lk) has run. The caller must no longer
 * use what the lock protects, except to release it. Never blocks on I/O:
 * for the event loop. Idempotent.
 */
void		sesslock_disown(struct sesslock *lk);

/*
 * Give up lk and free it (NULL is a no-op). Writes "free" into the record
 * unless the lock was taken over meanwhile. Returns 0, or -1 with errno
 * set when the record could not be rewritten: the record then keeps
 * naming this process, and only a sesslock_acquire() of this process
 * (which takes it over) or the end of the process frees it.
 */
int		sesslock_release(struct sesslock *lk);

/* Locks this process holds or has disowned but not yet released. */
size_t		sesslock_count(void);

#endif
