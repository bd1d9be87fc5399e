/*
 * iptable: bounded per-source records (see iptable.h).
 *
 * A chained hash table that doubles when it holds more records than
 * buckets, and a list of the idle records, least recently touched
 * first. Pinned records are on no list: only idle ones are evicted.
 */
#include <netinet/in.h>
#include <sys/random.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/iptable.h"

#define IPTABLE_MIN_BUCKETS	64

TAILQ_HEAD(iptable_idle, iptable_entry);

struct iptable {
	struct iptable_entry	**buckets;
	size_t			 n_buckets;	/* a power of 2 */
	size_t			 n_entries;
	size_t			 n_idle;
	size_t			 max_idle;
	uint64_t		 evicted;
	uint64_t		 k0, k1;	/* the SipHash key */
	struct iptable_idle	 idle;
};

/* ---------------------------------------------------------- SipHash */

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

/* SipHash-2-4 (Aumasson and Bernstein) of in under (k0, k1). */
static uint64_t
siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
	uint64_t	v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t	v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t	v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t	v3 = 0x7465646279746573ULL ^ k1;
	uint64_t	m, b = (uint64_t)len << 56;
	size_t		i, j, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)in[i + j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (j = 0; j < left; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

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

/* ---------------------------------------------------------- table */

struct iptable *
iptable_new(size_t max_idle)
{
	struct iptable	*t;
	uint64_t	 k[2];

	if (max_idle == 0 || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->buckets = calloc(IPTABLE_MIN_BUCKETS, sizeof(*t->buckets)))
	    == NULL) {
		free(t);
		return NULL;
	}
	t->n_buckets = IPTABLE_MIN_BUCKETS;
	t->max_idle = max_idle;
	TAILQ_INIT(&t->idle);
	/* Without randomness the key is fixed: still correct, less hard. */
	if (getrandom(k, sizeof(k), GRND_NONBLOCK) == (ssize_t)sizeof(k)) {
		t->k0 = k[0];
		t->k1 = k[1];
	}
	return t;
}

void
iptable_free(struct iptable *t)
{
	struct iptable_entry	*e, *next;
	size_t			 i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n_buckets; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			free(e);
		}
	free(t->buckets);
	free(t);
}

static struct iptable_entry **
iptable_slot(struct iptable *t, uint64_t hash, const void *key, size_t keylen)
{
	struct iptable_entry **ep;

	for (ep = &t->buckets[hash & (t->n_buckets - 1)]; *ep != NULL;
	    ep = &(*ep)->hnext)
		if ((*ep)->hash == hash && (*ep)->keylen == keylen &&
		    memcmp((*ep)->key, key, keylen) == 0)
			break;
	return ep;
}

struct iptable_entry *
iptable_find(struct iptable *t, const void *key, size_t keylen)
{
	return *iptable_slot(t, siphash(t->k0, t->k1, key, keylen), key,
	    keylen);
}

/* Twice the buckets; on failure the table just stays as it is. */
static void
iptable_grow(struct iptable *t)
{
	struct iptable_entry	**nb, *e, *next;
	size_t			  n = t->n_buckets * 2, i;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < t->n_buckets; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	free(t->buckets);
	t->buckets = nb;
	t->n_buckets = n;
}

static void
iptable_remove(struct iptable *t, struct iptable_entry *e)
{
	struct iptable_entry **ep;

	ep = iptable_slot(t, e->hash, e->key, e->keylen);
	*ep = e->hnext;
	if (e->refs == 0) {
		TAILQ_REMOVE(&t->idle, e, idle);
		t->n_idle--;
	}
	t->n_entries--;
	free(e);
}

struct iptable_entry *
iptable_get(struct iptable *t, const void *key, size_t keylen)
{
	struct iptable_entry	**ep, *e;
	uint64_t		  hash;

	if (keylen > IPTABLE_KEY_MAX)
		return NULL;
	hash = siphash(t->k0, t->k1, key, keylen);
	if ((e = *(ep = iptable_slot(t, hash, key, keylen))) != NULL)
		return e;
	if ((e = calloc(1, sizeof(*e) + keylen)) == NULL)
		return NULL;
	e->hash = hash;
	e->keylen = (uint16_t)keylen;
	memcpy(e->key, key, keylen);
	*ep = e;
	/* New and unreferenced: idle, most recent (iptable_update()). */
	TAILQ_INSERT_TAIL(&t->idle, e, idle);
	t->n_idle++;
	if (++t->n_entries > t->n_buckets)
		iptable_grow(t);
	return e;
}

void
iptable_ref(struct iptable *t, struct iptable_entry *e)
{
	if (e->refs++ == 0) {
		TAILQ_REMOVE(&t->idle, e, idle);
		t->n_idle--;
	}
}

void
iptable_unref(struct iptable *t, struct iptable_entry *e)
{
	if (e->refs == 0)
		return;			/* unpaired: a bug, but harmless */
	if (--e->refs == 0) {
		TAILQ_INSERT_TAIL(&t->idle, e, idle);
		t->n_idle++;
	}
	iptable_update(t, e);
}

void
iptable_update(struct iptable *t, struct iptable_entry *e)
{
	struct iptable_entry *old;

	if (e->refs > 0)
		return;
	if (e->fails == 0) {
		iptable_remove(t, e);
		return;
	}
	TAILQ_REMOVE(&t->idle, e, idle);
	TAILQ_INSERT_TAIL(&t->idle, e, idle);
	while (t->n_idle > t->max_idle &&
	    (old = TAILQ_FIRST(&t->idle)) != e) {
		iptable_remove(t, old);
		t->evicted++;
	}
}

void
iptable_set_max_idle(struct iptable *t, size_t max_idle)
{
	struct iptable_entry *old;

	t->max_idle = max_idle > 0 ? max_idle : 1;
	while (t->n_idle > t->max_idle &&
	    (old = TAILQ_FIRST(&t->idle)) != NULL) {
		iptable_remove(t, old);
		t->evicted++;
	}
}

void
iptable_stats(const struct iptable *t, struct iptable_stats *st)
{
	st->entries = t->n_entries;
	st->idle = t->n_idle;
	st->evicted = t->evicted;
}
