/*
 * idtab: an open-addressing set of entry indexes keyed by strings, for
 * the drivers' per-login tables (Maildir unique parts and UIDLs, mbox
 * UIDLs, dovecot-uidlist base names). The caller keeps the entries and
 * their keys; a slot holds an entry's index and the high half of its
 * key's hash, so that a probe compares keys only when that half matches.
 *
 * Keys come from mail and file names that users choose, so the hash is
 * seeded at random per table (store_hash_seed()): chosen keys cannot pile
 * up in one probe chain and make a login quadratic. The table is sized
 * once for the entries it will hold (load factor at most 1/2) and never
 * grows; there is no removal.
 *
 * Use: s = idtab_find(t, key, len, eq, arg, &h); then if idtab_used(t, s)
 * the entry is idtab_get(t, s), else idtab_set(t, s, h, i) puts entry i
 * there. Not thread-safe (one table, one thread).
 */
#ifndef EVPOP3D_IDTAB_H
#define EVPOP3D_IDTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/store.h"

struct idtab_slot {
	uint32_t	 idx;		/* entry index + 1; 0: empty */
	uint32_t	 hi;		/* high half of the key's hash */
};

struct idtab {
	struct idtab_slot	*slot;
	size_t			 mask;	/* slots - 1: a power of 2 */
	uint64_t		 seed;
};

/*
 * Is entry idx's key the len bytes at key (not NUL-terminated)? arg is
 * idtab_find()'s.
 */
typedef bool	idtab_eq_fn(const void *arg, uint32_t idx, const char *key,
		    size_t len);

/*
 * Room for n entries (at least 16 slots, at least 2n), freshly seeded.
 * 0, or -1 with errno: EFBIG when n >= UINT32_MAX / 2 (indexes are 32
 * bits), ENOMEM. On -1, t->slot is NULL (idtab_free() is harmless).
 */
int	idtab_init(struct idtab *t, size_t n);

/* Free the slots (t->slot NULL after; NULL is a no-op). */
void	idtab_free(struct idtab *t);

/*
 * The slot of the entry whose key is key (len bytes), or the empty slot
 * where it goes; the key's hash into *h_r (if not NULL) for idtab_set().
 * eq is called only for entries whose hash agrees in its high half.
 * Inline, so that a static eq is inlined into the probe loop.
 */
static inline size_t
idtab_find(const struct idtab *t, const char *key, size_t len,
    idtab_eq_fn *eq, const void *arg, uint64_t *h_r)
{
	const struct idtab_slot	*sl;
	uint64_t		 h = store_hash(t->seed, key, len);
	uint32_t		 hi = (uint32_t)(h >> 32);
	size_t			 i;

	if (h_r != NULL)
		*h_r = h;
	for (i = (size_t)h & t->mask; (sl = &t->slot[i])->idx != 0;
	    i = (i + 1) & t->mask)
		if (sl->hi == hi && eq(arg, sl->idx - 1, key, len))
			break;
	return i;
}

/* Does slot s (from idtab_find()) hold an entry? */
static inline bool
idtab_used(const struct idtab *t, size_t s)
{
	return t->slot[s].idx != 0;
}

/* The entry in used slot s. */
static inline uint32_t
idtab_get(const struct idtab *t, size_t s)
{
	return t->slot[s].idx - 1;
}

/* Put entry idx, whose key hashed to h, in slot s (or replace it there). */
static inline void
idtab_set(struct idtab *t, size_t s, uint64_t h, uint32_t idx)
{
	t->slot[s].idx = idx + 1;
	t->slot[s].hi = (uint32_t)(h >> 32);
}

/*
 * For entries whose key is a NUL-terminated string: is it exactly the
 * len bytes at key?
 */
static inline bool
idtab_key_is(const char *k, const char *key, size_t len)
{
	return strncmp(k, key, len) == 0 && k[len] == '\0';
}

#endif
