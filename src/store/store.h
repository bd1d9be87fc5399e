/*
 * store: the maildrop interface. The protocol sees only this header and
 * registry.h, never a driver's insides; the interface knows neither the
 * event loop nor the wire format: a message is handed out as a reader of
 * its bytes, and the protocol encodes them (src/pop3/stream.c).
 *
 * A driver (store/maildir/, store/mbox/) fills a struct store_ops and is
 * found by name through store_driver() (registry.h). A maildrop is
 * opened, locked and scanned by one blocking call. Message indexes are
 * 0-based here; the protocol adds 1.
 *
 * Threads: open(), msg_locate(), commit() and close() block and are made
 * from worker threads; every other call is cheap and is made from the
 * event loop. A maildrop is used by one thread at a time, and drivers do
 * no locking of their own: while a blocking call on it runs, the caller
 * makes no other call on it. In particular nothing commits or closes a
 * maildrop while its msg_locate() runs (the protocol hands the maildrop
 * of a session that ends meanwhile to the lookup, which releases it
 * after: src/pop3/stream.c).
 *
 * The lock is exclusive across sessions and across processes: a second
 * open of the same maildrop fails with STORE_INUSE until the first is
 * committed or closed.
 */
#ifndef EVPOP3D_STORE_H
#define EVPOP3D_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/evpop3d.h"

enum store_err {
	STORE_OK = 0,
	STORE_TEMP,	/* transient: -ERR [SYS/TEMP] */
	STORE_PERM,	/* permanent: -ERR [SYS/PERM] */
	STORE_INUSE,	/* locked by another session: -ERR [IN-USE] */
	STORE_GONE,	/* the message was removed by another program */
	STORE_AGAIN,	/* msg_open: call msg_locate() first (see there);
			 * open with nowait: open on a thread instead */
};

struct maildrop {
	const struct store_ops	*ops;	/* drivers embed this first */
};

struct store_reader {
	const struct store_ops	*ops;	/* drivers embed this first */
};

/* What open() is given. */
struct store_params {
	const char	*path;		/* the expanded location */
	/*
	 * [pop3] uidl_format: "" for the driver's default, else a template
	 * of %f %u %v %m %% (doc/CONFIG.md); drivers ignore escapes they
	 * cannot fill for a message and use their default for it.
	 */
	const char	*uidl_format;
	/*
	 * The event loop opens (a quick login, pop3/quick.h): wherever the
	 * open would wait (for a lock that another session, of this process
	 * or another, or an MDA holds; for another thread's lock I/O), it
	 * says STORE_AGAIN at once, with nothing opened, and the caller opens
	 * again on a worker thread, which waits. A driver may always say so
	 * (mbox does: its MDA locks wait).
	 */
	bool		 nowait;
	/* With nowait: STORE_AGAIN past this many messages (0: no limit). */
	size_t		 max_msgs;
	/*
	 * The maildrop is on a local file system, whose directory times
	 * change with every change to the directory as soon as it is made:
	 * the driver may use a listing it kept of it (Maildir: new/ and cur/
	 * unchanged since; registry.h, store_cache_configure()).
	 */
	bool		 listing_cache;
};

/* A driver's cache of listings, for the metrics. */
struct store_cache_stats {
	uint64_t	 hits;		/* a listing used */
	uint64_t	 stale;		/* one found, but the maildrop changed */
	uint64_t	 misses;	/* none kept */
	uint64_t	 plain_hits;	/* hits whose UIDLs were kept too */
	size_t		 entries, bytes, limit;
};

struct store_ops {
	const char *name;

	/*
	 * Open, lock and scan the maildrop at p->path (already expanded).
	 * Blocking; thread-safe. On error writes a reason for the log to err.
	 */
	enum store_err	(*open)(const struct store_params *p,
			    struct maildrop **md_r, char *err, size_t errlen);
	/*
	 * After an open without nowait: would one with nowait have done it
	 * (no slow step it refuses)? NULL for drivers whose open with nowait
	 * never succeeds, so the protocol never tries them on the event loop
	 * (pop3/quick.h; mbox: its MDA locks wait).
	 */
	bool		(*quick_ok)(const struct maildrop *md);
	size_t		(*count)(const struct maildrop *md);
	/* Wire size in octets (lib/wire.h). */
	uint64_t	(*size)(const struct maildrop *md, size_t i);
	/*
	 * The sum of size(i) over every message, worked out by open() (the
	 * loop does not add up 100,000 sizes at login). Every driver has it.
	 */
	uint64_t	(*total)(const struct maildrop *md);
	/* Unique id: 1..70 chars in 0x21..0x7E, stable across sessions. */
	const char	*(*uidl)(const struct maildrop *md, size_t i);

	/*
	 * Stream message i as the client is to see it, before wire encoding
	 * (the protocol's streamer adds that): size(i) is the wire size of exactly
	 * these bytes. STORE_GONE if another program removed it. Cheap: when
	 * the message is not where open() saw it and finding it means a
	 * directory scan, STORE_AGAIN (and *r_r NULL) instead. On STORE_TEMP
	 * or STORE_PERM errno says why (the failed call's). The reader holds
	 * at most one descriptor, until msg_close().
	 */
	enum store_err	(*msg_open)(struct maildrop *md, size_t i,
			    struct store_reader **r_r);
	/*
	 * After msg_open() said STORE_AGAIN: look message i up (blocking: on
	 * a worker thread), then msg_open() it again on the loop. STORE_OK
	 * when it was found, STORE_GONE when another program removed it,
	 * another error when the lookup failed (errno says why). NULL for
	 * drivers whose msg_open() never says STORE_AGAIN.
	 */
	enum store_err	(*msg_locate)(struct maildrop *md, size_t i);
	/* Up to len bytes; returns > 0, 0 at the end, -1 on error (errno). */
	ssize_t		(*msg_read)(struct store_reader *r, void *buf, size_t len);
	void		(*msg_close)(struct store_reader *r);

	/*
	 * UPDATE (RFC 1939 section 6): remove messages i with del[i] != 0,
	 * then unlock and free md. del NULL (or all zero) marks nothing: then
	 * md is only unlocked and freed, touching no message, as close()
	 * does. *failed_r (failed_r may be NULL) counts removals that failed.
	 * Returns STORE_OK when every removal succeeded.
	 */
	enum store_err	(*commit)(struct maildrop *md, const uint8_t *del,
			    size_t *failed_r);
	/* Unlock and free md, removing nothing. Blocking (the lock's I/O). */
	void		(*close)(struct maildrop *md);
	/*
	 * The session using md has ended and md is about to be closed (or
	 * committed with nothing marked) on a worker: from now on an open()
	 * of the same maildrop in this process may take the lock over
	 * before that close runs (sesslock.h). Cheap, no I/O: called on
	 * the event loop. Not while a commit that removes messages is
	 * pending: that keeps the lock until it is done.
	 */
	void		(*disown)(struct maildrop *md);
};

/*
 * Descriptors, for the start-up check of RLIMIT_NOFILE (main.c). Besides
 * a reader's one (msg_open() to msg_close()), drivers keep at most
 * STORE_CACHED_FDS open across calls, shared by all maildrops (the
 * Maildir driver's directory cache), and a blocking call (open,
 * msg_locate, commit, close) holds at most STORE_CALL_FDS at once: a
 * Maildir open whose uidl_format has %m reads a message with new/ and
 * cur/ open; an mbox open or commit holds the mbox and its index cache,
 * temporary file or directory; lock files are opened alone.
 */
#define STORE_CACHED_FDS	32
#define STORE_CALL_FDS		3

/*
 * Expand a location template: %u user, %n local part (before '@'), %d
 * domain (after '@', "" if none), %h home, %% a percent sign. Returns 0, or
 * -1 if the result does not fit, names an unknown escape, or uses %h/%d
 * when they are empty.
 */
int	store_expand_location(const char *tmpl, const char *user,
	    const char *home, char *out, size_t outlen);

/* For drivers: a failed system call's errno as a store error (permission
 * problems are permanent, the rest temporary). */
enum store_err	 store_errno(int errnum);

/*
 * For drivers: "<what> <path>: <strerror>" into err; returns
 * store_errno(errnum). Thread-safe (strerror_r).
 */
enum store_err	 store_fail(int errnum, char *err, size_t errlen,
		    const char *what, const char *path);

/*
 * For drivers' hash tables: a 64-bit hash of len bytes under seed. Seed
 * it at random (store_hash_seed()) where the keys come from mail or files that
 * others name, so that chosen keys cannot make a table slow.
 */
uint64_t	 store_hash(uint64_t seed, const void *p, size_t len);
/* len bytes as 2 * len lower-case hex digits and a NUL into out. */
void		 store_hex(const unsigned char *p, size_t len, char *out);
/* A random seed for store_hash(): siphash_random(), no system call. */
uint64_t	 store_hash_seed(void);

/* The RFC 2449/3206 response code for err: "[SYS/TEMP]", ... or "". */
const char *store_err_code(enum store_err err);

/* Shorthands that dispatch through md->ops. */
static inline size_t maildrop_count(const struct maildrop *md)
{ return md->ops->count(md); }
static inline uint64_t maildrop_size(const struct maildrop *md, size_t i)
{ return md->ops->size(md, i); }
static inline uint64_t maildrop_total(const struct maildrop *md)
{ return md->ops->total(md); }
static inline const char *maildrop_uidl(const struct maildrop *md, size_t i)
{ return md->ops->uidl(md, i); }
static inline void maildrop_disown(struct maildrop *md)
{ md->ops->disown(md); }

#endif
