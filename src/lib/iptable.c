/*
 * iptable: bounded per-source records in shared memory (see iptable.h).
 *
 * One mapping: the header (the lock, the shape, the counts), the bucket
 * heads, then the slab of capacity records of recsize octets each (the
 * struct, one reference count per worker slot, the key). Links are slab
 * indexes plus one, 0 ending a chain, so the zero pages of a new mapping
 * are an empty table and untouched records cost no memory. A chained
 * hash table with at least as many buckets as records (it never grows),
 * a list of the idle records, least recently touched first, and a list
 * of free records. Pinned records are on no list: only idle ones are
 * evicted.
 */
#include <netinet/in.h>
#include <sys/mman.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/iptable.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "lib/siphash.h"

#define IPTABLE_MIN_BUCKETS	64
#define ALIGN_UP(n, a)		(((n) + (a) - 1) & ~((size_t)(a) - 1))

struct iptable {
	pthread_mutex_t	 lock;		/* process-shared, robust */

	/* The shape: set by iptable_new(), read only after. */
	size_t		 map_size;
	size_t		 capacity;
	size_t		 keymax;
	size_t		 recsize;
	size_t		 n_buckets;	/* a power of 2 */
	size_t		 buckets_off;	/* from the header */
	size_t		 slab_off;
	unsigned	 slots;
	uint64_t	 k0, k1;	/* the SipHash key */

	/* Under the lock. */
	bool		 locked;	/* for the asserts */
	size_t		 max_idle;
	size_t		 n_entries;
	size_t		 n_idle;
	size_t		 n_made;	/* slab records ever handed out */
	uint32_t	 free_head;	/* links: index + 1, 0 = none */
	uint32_t	 idle_head;	/* the least recently touched */
	uint32_t	 idle_tail;
	uint64_t	 evicted;
	uint64_t	 full;
	uint64_t	 repaired;
};

/* ---------------------------------------------------------- keys */

size_t
iptable_addr_key(const struct sockaddr *sa, unsigned char *key)
{
	static const unsigned char mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		key[0] = 4;
		memcpy(key + 1, &s4->sin_addr, 4);
		return 5;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	s6 = (const struct sockaddr_in6 *)(const void *)sa;
	if (memcmp(s6->sin6_addr.s6_addr, mapped, sizeof(mapped)) == 0) {
		key[0] = 4;
		memcpy(key + 1, s6->sin6_addr.s6_addr + 12, 4);
		return 5;
	}
	key[0] = 6;
	memcpy(key + 1, s6->sin6_addr.s6_addr, 8);	/* the /64 */
	return 9;
}

/* ---------------------------------------------------------- layout */

static inline uint32_t *
buckets_of(struct iptable *t)
{
	return (uint32_t *)(void *)((char *)t + t->buckets_off);
}

/* The record of link l (index + 1, l > 0). */
static inline struct iptable_entry *
rec(struct iptable *t, uint32_t l)
{
	return (struct iptable_entry *)(void *)((char *)t + t->slab_off +
	    (size_t)(l - 1) * t->recsize);
}

/* e's link (index + 1). */
static inline uint32_t
link_of(struct iptable *t, const struct iptable_entry *e)
{
	return (uint32_t)(((const char *)e - ((const char *)t + t->slab_off)) /
	    t->recsize + 1);
}

static inline uint32_t *
slot_refs(struct iptable_entry *e)
{
	return (uint32_t *)(void *)(e + 1);
}

static inline unsigned char *
key_of(struct iptable *t, struct iptable_entry *e)
{
	return (unsigned char *)(slot_refs(e) + t->slots);
}

/* This process's slot: its worker index (one slot: always 0). */
static inline unsigned
my_slot(const struct iptable *t)
{
	unsigned w = proc_worker_index();

	assert(w < t->slots);
	return w < t->slots ? w : 0;
}

/* ---------------------------------------------------------- lists */

static void
idle_push(struct iptable *t, struct iptable_entry *e)
{
	uint32_t l = link_of(t, e);

	e->inext = 0;
	e->iprev = t->idle_tail;
	if (t->idle_tail != 0)
		rec(t, t->idle_tail)->inext = l;
	else
		t->idle_head = l;
	t->idle_tail = l;
	t->n_idle++;
}

static void
idle_remove(struct iptable *t, struct iptable_entry *e)
{
	if (e->iprev != 0)
		rec(t, e->iprev)->inext = e->inext;
	else
		t->idle_head = e->inext;
	if (e->inext != 0)
		rec(t, e->inext)->iprev = e->iprev;
	else
		t->idle_tail = e->iprev;
	e->iprev = e->inext = 0;
	t->n_idle--;
}

/* The link that holds key's record (its value 0: none). */
static uint32_t *
chain_find(struct iptable *t, uint64_t hash, const void *key, size_t keylen)
{
	struct iptable_entry	*e;
	uint32_t		*lp;

	for (lp = &buckets_of(t)[hash & (t->n_buckets - 1)]; *lp != 0;
	    lp = &e->hnext) {
		e = rec(t, *lp);
		if (e->hash == hash && e->keylen == keylen &&
		    memcmp(key_of(t, e), key, keylen) == 0)
			break;
	}
	return lp;
}

/* Take e off its bucket chain. */
static void
chain_remove(struct iptable *t, struct iptable_entry *e)
{
	uint32_t	*lp, l = link_of(t, e);

	for (lp = &buckets_of(t)[e->hash & (t->n_buckets - 1)]; *lp != 0;
	    lp = &rec(t, *lp)->hnext)
		if (*lp == l) {
			*lp = e->hnext;
			break;
		}
	e->hnext = 0;
}

static void
chain_insert(struct iptable *t, struct iptable_entry *e)
{
	uint32_t *head = &buckets_of(t)[e->hash & (t->n_buckets - 1)];

	e->hnext = *head;
	*head = link_of(t, e);
}

/* e's slot goes back to the free list. */
static void
rec_release(struct iptable *t, struct iptable_entry *e)
{
	e->used = 0;
	e->hnext = t->free_head;
	t->free_head = link_of(t, e);
}

static void
iptable_remove(struct iptable *t, struct iptable_entry *e)
{
	chain_remove(t, e);
	if (e->refs == 0)
		idle_remove(t, e);
	t->n_entries--;
	rec_release(t, e);
}

/* Drop the least recently touched idle records beyond max_idle, not e. */
static void
idle_trim(struct iptable *t, const struct iptable_entry *e)
{
	struct iptable_entry *old;

	while (t->n_idle > t->max_idle && t->idle_head != 0 &&
	    (old = rec(t, t->idle_head)) != e) {
		iptable_remove(t, old);
		t->evicted++;
	}
}

/* ---------------------------------------------------------- table */

struct iptable *
iptable_new(const struct iptable_size *sz)
{
	pthread_mutexattr_t	 ma;
	struct iptable		*t;
	size_t			 recsize, nb, boff, soff, size;
	void			*p;

	if (sz->capacity == 0 || sz->capacity >= UINT32_MAX ||
	    sz->keymax == 0 || sz->keymax > IPTABLE_KEY_MAX ||
	    sz->max_idle == 0 || sz->slots == 0 ||
	    sz->slots > IPTABLE_SLOTS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	recsize = ALIGN_UP(sizeof(struct iptable_entry) +
	    sz->slots * sizeof(uint32_t) + sz->keymax, 8);
	for (nb = IPTABLE_MIN_BUCKETS; nb < sz->capacity; nb *= 2)
		;
	boff = ALIGN_UP(sizeof(*t), 64);
	soff = ALIGN_UP(boff + nb * sizeof(uint32_t), 64);
	if (sz->capacity > (SIZE_MAX - soff) / recsize) {
		errno = EINVAL;
		return NULL;
	}
	size = soff + sz->capacity * recsize;
	/* Zero pages: no bucket, record or list yet. Pages are committed
	 * as records are used, not for the whole capacity. */
	if ((p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) == MAP_FAILED)
		return NULL;
	t = p;
	t->map_size = size;
	t->capacity = sz->capacity;
	t->keymax = sz->keymax;
	t->recsize = recsize;
	t->n_buckets = nb;
	t->buckets_off = boff;
	t->slab_off = soff;
	t->slots = sz->slots;
	t->max_idle = sz->max_idle;
	t->k0 = siphash_random();
	t->k1 = siphash_random();
	if (pthread_mutexattr_init(&ma) != 0 ||
	    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&t->lock, &ma) != 0) {
		pthread_mutexattr_destroy(&ma);
		munmap(p, size);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutexattr_destroy(&ma);
	return t;
}

void
iptable_free(struct iptable *t)
{
	if (t == NULL)
		return;
	munmap(t, t->map_size);
}

/*
 * The holder of the lock died, maybe halfway through a change: rebuild
 * every link and count from the records themselves. A record's total is
 * its slots' sum; one with a key too long for the table goes; two with
 * one key (a half-made insertion) are merged. The idle list comes back
 * in slab order: the age order is lost, not the bound.
 */
static void
iptable_repair(struct iptable *t)
{
	struct iptable_entry	*e, *dup;
	uint32_t		 l, dl, *sr;
	uint64_t		 sum;
	unsigned		 w;

	memset(buckets_of(t), 0, t->n_buckets * sizeof(uint32_t));
	t->free_head = t->idle_head = t->idle_tail = 0;
	t->n_entries = t->n_idle = 0;
	if (t->n_made > t->capacity)
		t->n_made = t->capacity;
	for (l = 1; l <= t->n_made; l++) {
		e = rec(t, l);
		e->hnext = e->iprev = e->inext = 0;
		if (!e->used || e->keylen > t->keymax) {
			rec_release(t, e);
			continue;
		}
		sr = slot_refs(e);
		for (sum = 0, w = 0; w < t->slots; w++)
			sum += sr[w];
		e->refs = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
		e->hash = siphash(t->k0, t->k1, key_of(t, e), e->keylen);
		if ((dl = *chain_find(t, e->hash, key_of(t, e), e->keylen))
		    != 0) {
			dup = rec(t, dl);
			for (w = 0; w < t->slots; w++)
				slot_refs(dup)[w] += sr[w];
			if (dup->refs == 0 && e->refs > 0)
				idle_remove(t, dup);
			dup->refs += e->refs;
			if (e->fails > dup->fails)
				dup->fails = e->fails;
			rec_release(t, e);
			continue;
		}
		if (e->refs == 0 && e->fails == 0) {
			rec_release(t, e);
			continue;
		}
		chain_insert(t, e);
		t->n_entries++;
		if (e->refs == 0)
			idle_push(t, e);
	}
	idle_trim(t, NULL);
	t->repaired++;
}

void
iptable_lock(struct iptable *t)
{
	int r;

	if ((r = pthread_mutex_lock(&t->lock)) == EOWNERDEAD) {
		iptable_repair(t);
		if (pthread_mutex_consistent(&t->lock) != 0)
			fatalx("event=iptable-lock-failed step=consistent");
		t->locked = true;
		/* Rare (a worker killed inside a few instructions): the one
		 * line may be written with the lock held. */
		log_warnx("event=iptable-repaired entries=%zu idle=%zu",
		    t->n_entries, t->n_idle);
		return;
	}
	if (r != 0) {
		errno = r;
		fatal("event=iptable-lock-failed");
	}
	t->locked = true;
}

void
iptable_unlock(struct iptable *t)
{
	assert(t->locked);
	t->locked = false;
	pthread_mutex_unlock(&t->lock);
}

struct iptable_entry *
iptable_find(struct iptable *t, const void *key, size_t keylen)
{
	uint32_t l;

	assert(t->locked);
	if (keylen > t->keymax)
		return NULL;
	l = *chain_find(t, siphash(t->k0, t->k1, key, keylen), key, keylen);
	return l != 0 ? rec(t, l) : NULL;
}

/* A free record: from the free list, the slab's unused tail, or the
 * least recently touched idle record; NULL when all are pinned. */
static struct iptable_entry *
rec_take(struct iptable *t)
{
	struct iptable_entry *e;

	if (t->free_head == 0) {
		if (t->n_made < t->capacity)
			return rec(t, (uint32_t)++t->n_made);
		if (t->idle_head == 0)
			return NULL;
		iptable_remove(t, rec(t, t->idle_head));
		t->evicted++;
	}
	e = rec(t, t->free_head);
	t->free_head = e->hnext;
	return e;
}

struct iptable_entry *
iptable_get(struct iptable *t, const void *key, size_t keylen)
{
	struct iptable_entry	*e;
	uint64_t		 hash;
	uint32_t		 l;

	assert(t->locked);
	if (keylen > t->keymax)
		return NULL;
	hash = siphash(t->k0, t->k1, key, keylen);
	if ((l = *chain_find(t, hash, key, keylen)) != 0)
		return rec(t, l);
	if ((e = rec_take(t)) == NULL) {
		t->full++;
		return NULL;
	}
	memset(e, 0, sizeof(*e) + t->slots * sizeof(uint32_t));
	e->hash = hash;
	e->keylen = (uint16_t)keylen;
	memcpy(key_of(t, e), key, keylen);
	e->used = 1;
	chain_insert(t, e);
	/* New and unreferenced: idle, most recent (iptable_update()). */
	idle_push(t, e);
	t->n_entries++;
	return e;
}

void
iptable_ref(struct iptable *t, struct iptable_entry *e)
{
	assert(t->locked);
	slot_refs(e)[my_slot(t)]++;
	if (e->refs++ == 0)
		idle_remove(t, e);
}

void
iptable_unref(struct iptable *t, struct iptable_entry *e)
{
	uint32_t *sr = &slot_refs(e)[my_slot(t)];

	assert(t->locked);
	if (*sr == 0 || e->refs == 0)
		return;			/* unpaired: a bug, but harmless */
	(*sr)--;
	if (--e->refs == 0)
		idle_push(t, e);
	iptable_update(t, e);
}

void
iptable_update(struct iptable *t, struct iptable_entry *e)
{
	assert(t->locked);
	if (e->refs > 0)
		return;
	if (e->fails == 0) {
		iptable_remove(t, e);
		return;
	}
	idle_remove(t, e);
	idle_push(t, e);
	idle_trim(t, e);
}

int
iptable_check(struct iptable *t)
{
	struct iptable_entry	*e;
	size_t			 used = 0, chained = 0, idle = 0, freed = 0;
	size_t			 b, limit = t->capacity + 1;
	uint32_t		 l, prev;
	uint64_t		 sum;
	unsigned		 w;

	assert(t->locked);
	if (t->n_made > t->capacity)
		return -1;
	for (l = 1; l <= t->n_made; l++) {
		if (!(e = rec(t, l))->used)
			continue;
		used++;
		for (sum = 0, w = 0; w < t->slots; w++)
			sum += slot_refs(e)[w];
		if (sum != e->refs || e->keylen > t->keymax ||
		    e->hash != siphash(t->k0, t->k1, key_of(t, e), e->keylen))
			return -1;
		if (e->refs == 0 && e->fails == 0)
			return -1;	/* should have been freed */
	}
	for (b = 0; b < t->n_buckets; b++)
		for (l = buckets_of(t)[b]; l != 0; l = e->hnext) {
			if (l > t->n_made || ++chained > limit)
				return -1;
			e = rec(t, l);
			if (!e->used || (e->hash & (t->n_buckets - 1)) != b)
				return -1;
		}
	for (prev = 0, l = t->idle_head; l != 0; prev = l, l = e->inext) {
		if (l > t->n_made || ++idle > limit)
			return -1;
		e = rec(t, l);
		if (!e->used || e->refs != 0 || e->iprev != prev)
			return -1;
	}
	if (prev != t->idle_tail)
		return -1;
	for (l = t->free_head; l != 0; l = e->hnext) {
		if (l > t->n_made || ++freed > limit)
			return -1;
		if ((e = rec(t, l))->used)
			return -1;
	}
	if (used != t->n_entries || chained != used || idle != t->n_idle ||
	    freed != t->n_made - used || t->n_idle > t->max_idle + 1)
		return -1;
	return 0;
}

void
iptable_set_max_idle(struct iptable *t, size_t max_idle)
{
	iptable_lock(t);
	t->max_idle = max_idle > 0 ? max_idle : 1;
	idle_trim(t, NULL);
	iptable_unlock(t);
}

uint64_t
iptable_reclaim(struct iptable *t, unsigned slot)
{
	struct iptable_entry	*e;
	uint32_t		 l, n;
	uint64_t		 dropped = 0;

	if (slot >= t->slots)
		return 0;
	iptable_lock(t);
	for (l = 1; l <= t->n_made; l++) {
		e = rec(t, l);
		if (!e->used || (n = slot_refs(e)[slot]) == 0)
			continue;
		slot_refs(e)[slot] = 0;
		dropped += n;
		e->refs = e->refs > n ? e->refs - n : 0;
		if (e->refs == 0) {
			idle_push(t, e);
			iptable_update(t, e);	/* may free e, or older idle */
		}
	}
	iptable_unlock(t);
	return dropped;
}

void
iptable_stats(struct iptable *t, struct iptable_stats *st)
{
	iptable_lock(t);
	st->capacity = t->capacity;
	st->entries = t->n_entries;
	st->idle = t->n_idle;
	st->evicted = t->evicted;
	st->full = t->full;
	st->repaired = t->repaired;
	iptable_unlock(t);
}
