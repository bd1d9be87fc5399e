/*
 * quick: which logins and lock releases the event loop does itself (the
 * worker pool's quick jobs, lib/worker.h) instead of a worker thread.
 *
 * A login is cheap when its password check is one hash at most
 * (auth_password_cheap()) and its maildrop opens fast: few messages, on
 * a local file system. The first the loop learns by looking the user
 * up, which it can do without reading the disk while the passwd-file is
 * unchanged and on a local disk (auth_db_lookup_quick(); pgsql looks up
 * on the loop anyway).
 * The second it can only know from an earlier login: the loop remembers,
 * per user, what the last open found, wherever it ran. Even then the
 * open on the loop never waits and never does the slow steps (a message
 * read to learn its size, dovecot-uidlist, a file written, a directory
 * made): store_params.nowait, where the open says STORE_AGAIN instead
 * and a thread opens. Only Maildir opens can be quick (store_ops
 * .quick_ok). A user without such a hint, or whose last maildrop was
 * big, on a network file system or needing a slow step every time,
 * logs in on a thread, as before; so does every unknown user, and a user
 * whose last login failed.
 *
 * A release (QUIT with nothing deleted, or a session that ended) opens,
 * reads and rewrites the lock record and closes it, and a Maildir's
 * keeps its listing for the next open (a copy): quick when the maildrop
 * is on a local file system and has no more messages than a loop's open
 * would list (maildrop_quick_release()).
 *
 * The hints are a table of fixed size made at the start: sets of eight
 * slots (one cache line), the set chosen by a keyed hash of the user
 * name (SipHash, a random key: nobody can aim names at one set), each
 * set kept in order of the last login, so a full set forgets the user
 * who logged in longest ago. (One slot per hash lost a hint for about
 * one user in twenty at 1,000 users in 16,384 slots, the bench's
 * mailboxes: every pair of users whose hashes met took turns.) A slot
 * also holds the hash of the maildrop's path: a passwd-file that moved
 * the user's home (to NFS, say) voids the hint. A reload clears them.
 * Loop thread only, no lock. What a wrong guess costs (a disk that stalls) the pool
 * bounds: a budget per loop turn, and a cool-off after a slow one.
 */
#ifndef EVPOP3D_QUICK_H
#define EVPOP3D_QUICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hints kept: 8 octets each (128 KiB), in sets of QUICK_HINT_WAYS. */
#define QUICK_HINT_SLOTS	16384
#define QUICK_HINT_WAYS		8
/*
 * A maildrop the loop opens itself had at most this many messages last
 * time: a Maildir open lists them (under a microsecond each: PASS took
 * 69.6 ms at the median for 100,000 messages in the responsiveness run
 * of doc/bench/phases-13c). How long it took is the pool's
 * business (its slow limit), not the hint's: the same open is slower
 * under a tracer, and every open is slower on a busy disk.
 */
#define QUICK_MAX_MSGS		500

struct quick_hints;

/* NULL when out of memory. */
struct quick_hints	*quick_hints_new(void);
void			 quick_hints_free(struct quick_hints *h);
/* Forget every hint (a reload may have moved maildrops). */
void			 quick_hints_clear(struct quick_hints *h);
/*
 * The keyed hash of a user name, which the calls below take: a login
 * hashes its user once.
 */
uint64_t		 quick_user_hash(const struct quick_hints *h,
			    const char *user);
/* The last login of the user found a small maildrop on a local disk. */
bool			 quick_login_likely(const struct quick_hints *h,
			    uint64_t user);
/* A keyed hash of a maildrop path (24 bits). Any thread: the key is fixed. */
uint64_t		 quick_path_hash(const struct quick_hints *h,
			    const char *path);
/* ... and it was at path (quick_path_hash()), which has not moved. */
bool			 quick_path_known(const struct quick_hints *h,
			    uint64_t user, uint64_t path);
/*
 * A login of the user opened its maildrop at path (hashed), msgs
 * messages; local: on a local file system, by a driver whose open may
 * be quick.
 */
void			 quick_login_seen(struct quick_hints *h, uint64_t user,
			    uint64_t path, size_t msgs, bool local);
/* A login of the user failed: no hint until it logs in again. */
void			 quick_login_forget(struct quick_hints *h,
			    uint64_t user);

#endif
