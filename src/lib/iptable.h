/*
 * iptable: a bounded table of per-source records (per client address, or
 * per user and address), for the limits and the auth penalty (Dovecot's
 * anvil; popa3d's per-address table).
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
 * For the event loop's thread only: no locking.
 */
#ifndef EVPOP3D_IPTABLE_H
#define EVPOP3D_IPTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

/* An address key: a family octet and 4 (IPv4) or 8 (IPv6 /64) octets. */
#define IPTABLE_ADDR_MAX	9
/* The longest key: an address and a user name with its length octet. */
#define IPTABLE_KEY_MAX		(IPTABLE_ADDR_MAX + 1 + 255)

struct iptable;

struct iptable_entry {
	/* The caller's. */
	uint32_t		 refs;		/* iptable_ref() count */
	uint32_t		 fails;		/* penalty: failures counted */
	uint64_t		 last_ms;	/* penalty: the last failure */
	uint64_t		 next_ms;	/* penalty: next attempt's turn */

	/* The table's. */
	struct iptable_entry	*hnext;		/* bucket chain */
	TAILQ_ENTRY(iptable_entry) idle;	/* on the idle list */
	uint64_t		 hash;
	uint16_t		 keylen;
	unsigned char		 key[];
};

struct iptable_stats {
	size_t		entries;	/* records now */
	size_t		idle;		/* of which without references */
	uint64_t	evicted;	/* idle records dropped to make room */
};

/*
 * The key for sa's address into key (IPTABLE_ADDR_MAX octets): its
 * length, or 0 for a family other than AF_INET and AF_INET6.
 */
size_t	iptable_addr_key(const struct sockaddr *sa, unsigned char *key);

/* A table keeping at most max_idle (>= 1) idle records; NULL on error. */
struct iptable	*iptable_new(size_t max_idle);
void		 iptable_free(struct iptable *t);
/* A new bound (>= 1, a reload): the oldest idle records beyond it go. */
void		 iptable_set_max_idle(struct iptable *t, size_t max_idle);

/* The record for key, or NULL. */
struct iptable_entry	*iptable_find(struct iptable *t, const void *key,
			    size_t keylen);
/*
 * The record for key, made (all fields 0) if missing. A new record must
 * be given a reference or fails > 0 and then iptable_update(), or it is
 * freed by the next iptable_update() of it. NULL when out of memory or
 * keylen > IPTABLE_KEY_MAX.
 */
struct iptable_entry	*iptable_get(struct iptable *t, const void *key,
			    size_t keylen);
/* Take and drop a reference (iptable_unref() may free e). */
void	iptable_ref(struct iptable *t, struct iptable_entry *e);
void	iptable_unref(struct iptable *t, struct iptable_entry *e);
/*
 * The caller changed e's fields: free e when it holds neither a
 * reference nor a failure; else an idle e becomes the most recently
 * touched, evicting the least recently touched idle records beyond
 * max_idle. e may be gone afterwards.
 */
void	iptable_update(struct iptable *t, struct iptable_entry *e);
void	iptable_stats(const struct iptable *t, struct iptable_stats *st);

#endif
