/*
 * quick: which logins and lock releases the event loop does itself (the
 * worker pool's quick jobs, lib/worker.h) instead of a worker thread.
 *
 * A login is cheap when its password check is one hash at most
 * (auth_password_cheap()) and its maildrop opens fast: few messages, on
 * a local file system. The first the loop learns by looking the user
 * up, which it can do without reading the disk while the passwd-file is
 * unchanged (auth_db_lookup_quick(); pgsql looks up on the loop anyway).
 * The second it can only know from an earlier login: the loop remembers,
 * per user, what the last open found, wherever it ran. A user without such
 * a hint, or whose last maildrop was big or on a network file system,
 * logs in on a thread, as before; so does every unknown user, and a user
 * whose last login failed.
 *
 * A release (QUIT with nothing deleted, or a session that ended) opens,
 * reads and rewrites the lock record and closes it: quick when the
 * maildrop is on a local file system.
 *
 * The hints are a table of fixed size made at the start, one slot per
 * keyed hash of the user name (SipHash, a random key: nobody can aim
 * names at one slot); a collision replaces the older hint. Loop thread
 * only, no lock. What a wrong guess costs (a disk that stalls) the pool
 * bounds: a budget per loop turn, and a cool-off after a slow one.
 */
#ifndef EVPOP3D_QUICK_H
#define EVPOP3D_QUICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hints kept: 8 octets each. */
#define QUICK_HINT_SLOTS	16384
/*
 * A maildrop the loop opens itself had at most this many messages last
 * time: a Maildir open lists them (about a microsecond each here), an
 * mbox open reads the index of as many. How long it took is the pool's
 * business (its slow limit), not the hint's: the same open is slower
 * under a tracer, and every open is slower on a busy disk.
 */
#define QUICK_MAX_MSGS		500

struct quick_hints;

/* NULL when out of memory. */
struct quick_hints	*quick_hints_new(void);
void			 quick_hints_free(struct quick_hints *h);
/* The last login of user found a small, fast, local maildrop. */
bool			 quick_login_likely(struct quick_hints *h,
			    const char *user);
/* A login of user opened its maildrop of msgs messages. */
void			 quick_login_seen(struct quick_hints *h,
			    const char *user, size_t msgs, bool local);
/* A login of user failed: no hint until it logs in again. */
void			 quick_login_forget(struct quick_hints *h,
			    const char *user);
/*
 * path is on a local file system (ext4, XFS, Btrfs, tmpfs, F2FS, ZFS,
 * overlayfs), not a network one (NFS, CIFS, FUSE, Ceph ...) where every
 * open is a round trip. statfs(2): a worker thread's call.
 */
bool			 quick_fs_local(const char *path);

#endif
