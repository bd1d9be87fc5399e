/*
 * iptable: a bounded table of per-source records (per client address, or
 * per user and address), for the limits and the auth penalty (Dovecot's
 * anvil; popa3d's per-address table), shared by the worker processes.
 *
 * A record is found by a key of up to IPTABLE_KEY_MAX bytes, usually made
 * by iptable_addr_key(): an IPv4 address (an IPv4-mapped IPv6 address
 * counts as IPv4), or the /64 prefix of an IPv6 address, since one host
 * is commonly given a whole /64 and could otherwise rotate through 2^64
 * addresses. The caller may append more (a user name).
 *
 * Each record carries a reference count (connections or sessions: exact,
 * the caller pairs every iptable_ref() with one iptable_unref()) and
 * penalty fields the caller reads and writes. A record with references is
 * pinned: it stays however full the table is (their number is bounded by
 * the caller's connection limit). A record without references but with
 * fails > 0 is idle: the table keeps at most max_idle of them and evicts
 * the least recently touched when a new one would exceed that, so a
 * botnet of millions of addresses costs a fixed amount of memory. A
 * record with neither is freed at once.
 *
 * Lookups hash the key with SipHash-2-4 under a random key, so a client
 * choosing addresses (or user names) cannot aim them at one bucket.
 *
 * Shared memory: the table is one MAP_SHARED region of fixed size (the
 * records a slab of capacity slots, linked by index, never malloc'd),
 * made before the workers are forked, so every worker sees the same
 * records. A process-shared robust mutex guards it: the caller takes it
 * with iptable_lock() around each short sequence of the calls marked
 * "locked" (no system call, no logging inside). A record pointer is
 * good while the caller holds one of its references (a pinned record
 * does not move or go); one without is good only under the lock, until
 * the next iptable_get() or iptable_update(), which may evict it.
 * References are counted per worker slot (lib/proc.h's index) as well
 * as in total, so that iptable_reclaim() can give back a dead worker's.
 * A worker that dies holding the lock leaves the mutex to the next taker
 * as EOWNERDEAD: it rebuilds the chains, the idle list and the counts
 * from the records (the idle records then in slab order, not by age)
 * and carries on.
 */
#ifndef EVPOP3D_IPTABLE_H
#define EVPOP3D_IPTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address key: a family octet and 4 (IPv4) or 8 (IPv6 /64) octets. */
#define IPTABLE_ADDR_MAX	9
/* The longest key: an address and a user name with its length octet. */
#define IPTABLE_KEY_MAX		(IPTABLE_ADDR_MAX + 1 + 255)
/* The most worker slots a table counts references for. */
#define IPTABLE_SLOTS_MAX	1024

struct iptable;

/*
 * A record, in the table's slab; after it, the per-slot reference counts
 * and the key (the table's). Read and write the caller's fields with the
 * lock held.
 */
struct iptable_entry {
	/* The caller's; refs read only (iptable_ref(), iptable_unref()). */
	uint32_t	 refs;		/* references, every slot's */
	uint32_t	 fails;		/* penalty: failures counted */
	uint64_t	 last_ms;	/* penalty: the last failure (mono_ms) */
	uint64_t	 next_ms;	/* penalty: next attempt's turn */

	/* The table's. */
	uint64_t	 hash;
	uint32_t	 hnext;		/* bucket chain: a slab index */
	uint32_t	 iprev, inext;	/* idle list: slab indexes */
	uint16_t	 keylen;
	uint8_t		 used;		/* 0: on the free list */
	uint8_t		 pad;
};

/* The table's shape, fixed when it is made. */
struct iptable_size {
	size_t		 capacity;	/* records, pinned and idle, >= 1 */
	size_t		 keymax;	/* longest key, <= IPTABLE_KEY_MAX */
	size_t		 max_idle;	/* idle records kept, >= 1 */
	unsigned	 slots;		/* worker slots, 1..IPTABLE_SLOTS_MAX */
};

struct iptable_stats {
	size_t		capacity;	/* records at most */
	size_t		entries;	/* records now */
	size_t		idle;		/* of which without references */
	uint64_t	evicted;	/* idle records dropped to make room */
	uint64_t	full;		/* records refused: all pinned */
	uint64_t	repaired;	/* rebuilds after a holder died */
};

/*
 * The key for sa's address into key (IPTABLE_ADDR_MAX octets): its
 * length, or 0 for a family other than AF_INET and AF_INET6.
 */
size_t	iptable_addr_key(const struct sockaddr *sa, unsigned char *key);

/*
 * A table of sz's shape in a new shared mapping (inherited by children
 * forked after); NULL on error (errno set: EINVAL for a bad shape).
 * Address space is taken for the whole capacity; memory only for the
 * records used so far (the slab is taken in order, freed records reused
 * first).
 */
struct iptable	*iptable_new(const struct iptable_size *sz);
/* Unmap t (in this process); the caller holds no lock. */
void		 iptable_free(struct iptable *t);

/*
 * Take and give back t's lock. A previous holder's death is repaired
 * before iptable_lock() returns; it never fails (a mutex made
 * unrecoverable is fatal: only a holder giving the lock back without the
 * repair does that, which this code never does).
 */
void	iptable_lock(struct iptable *t);
void	iptable_unlock(struct iptable *t);

/* Locked: the record for key, or NULL. */
struct iptable_entry	*iptable_find(struct iptable *t, const void *key,
			    size_t keylen);
/*
 * Locked: the record for key, made (all fields 0) if missing. A new
 * record must be given a reference or fails > 0 and then iptable_update(),
 * or it is freed by the next iptable_update() of it. When every slot is
 * in use, the least recently touched idle record makes room; NULL when
 * all are pinned (counted as "full"), or keylen > the table's keymax.
 */
struct iptable_entry	*iptable_get(struct iptable *t, const void *key,
			    size_t keylen);
/*
 * Locked: take and drop a reference for this worker (proc_worker_index())
 * (iptable_unref() may free e).
 */
void	iptable_ref(struct iptable *t, struct iptable_entry *e);
void	iptable_unref(struct iptable *t, struct iptable_entry *e);
/*
 * Locked: the caller changed e's fields: free e when it holds neither a
 * reference nor a failure; else an idle e becomes the most recently
 * touched, evicting the least recently touched idle records beyond
 * max_idle. e may be gone afterwards.
 */
void	iptable_update(struct iptable *t, struct iptable_entry *e);
/*
 * Locked: 0 when t's chains, idle list, free list and counts agree with
 * its records, -1 otherwise (the tests' check).
 */
int	iptable_check(struct iptable *t);

/*
 * These take the lock themselves. A new idle bound (>= 1, a reload): the
 * oldest idle records beyond it go.
 */
void	iptable_set_max_idle(struct iptable *t, size_t max_idle);
/*
 * Worker slot's references are given back (its process is gone): records
 * left with no reference are updated as by iptable_unref(). Returns the
 * number of references dropped.
 */
uint64_t iptable_reclaim(struct iptable *t, unsigned slot);
void	iptable_stats(struct iptable *t, struct iptable_stats *st);

#endif
