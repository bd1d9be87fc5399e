/*
 * auth_cache: a TTL cache of user records (auth_cache.h).
 *
 * A hash table of chains (FNV-1a; it doubles as it fills) and a list in
 * use order: a hit moves its entry to the tail, a put past max evicts
 * the head. The TTL runs from the put, not from the last hit, so a user
 * whose password changed in the database is asked again within ttl.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"

#define AUTH_CACHE_MIN_BUCKETS	64

struct auth_centry {
	TAILQ_ENTRY(auth_centry)	 lru;
	struct auth_centry		*next;		/* chain */
	uint64_t			 hash;
	uint64_t			 at_ms;		/* put */
	char				*user;
	struct auth_rec			 rec;
};

TAILQ_HEAD(auth_lru, auth_centry);

struct auth_cache {
	struct auth_centry	**buckets;
	size_t			  nbuckets;	/* a power of 2 */
	size_t			  count;
	size_t			  max;
	uint64_t		  ttl_ms;
	struct auth_lru		  lru;	/* head: least used */
};

static uint64_t
auth_cache_hash(const char *s)
{
	uint64_t	h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct auth_cache *
auth_cache_new(size_t max, uint64_t ttl_ms)
{
	struct auth_cache	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->nbuckets = AUTH_CACHE_MIN_BUCKETS;
	if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL) {
		free(c);
		return NULL;
	}
	c->max = max > 0 ? max : 1;
	c->ttl_ms = ttl_ms;
	TAILQ_INIT(&c->lru);
	return c;
}

/* Unlink e from its chain and the list, and free it. */
static void
auth_cache_drop(struct auth_cache *c, struct auth_centry *e)
{
	struct auth_centry	**pp;

	for (pp = &c->buckets[e->hash & (c->nbuckets - 1)]; *pp != e;
	    pp = &(*pp)->next)
		;
	*pp = e->next;
	TAILQ_REMOVE(&c->lru, e, lru);
	c->count--;
	auth_rec_clear(&e->rec);
	free(e->user);
	free(e);
}

void
auth_cache_flush(struct auth_cache *c)
{
	while (!TAILQ_EMPTY(&c->lru))
		auth_cache_drop(c, TAILQ_FIRST(&c->lru));
}

void
auth_cache_free(struct auth_cache *c)
{
	if (c == NULL)
		return;
	auth_cache_flush(c);
	free(c->buckets);
	free(c);
}

size_t
auth_cache_count(const struct auth_cache *c)
{
	return c->count;
}

static struct auth_centry *
auth_cache_find(struct auth_cache *c, const char *user, uint64_t h)
{
	struct auth_centry	*e;

	for (e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->user, user) == 0)
			return e;
	return NULL;
}

/* See auth_cache.h. */
const struct auth_rec *
auth_cache_get(struct auth_cache *c, const char *user, uint64_t now_ms)
{
	struct auth_centry	*e;

	if ((e = auth_cache_find(c, user, auth_cache_hash(user))) == NULL)
		return NULL;
	if (now_ms - e->at_ms >= c->ttl_ms) {
		auth_cache_drop(c, e);
		return NULL;
	}
	TAILQ_REMOVE(&c->lru, e, lru);
	TAILQ_INSERT_TAIL(&c->lru, e, lru);
	return &e->rec;
}

/* Double the table when it holds more entries than buckets. */
static void
auth_cache_grow(struct auth_cache *c)
{
	struct auth_centry	**nb, *e;
	size_t			  n = c->nbuckets * 2;

	if (c->count < c->nbuckets || n > c->max * 2 ||
	    (nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* longer chains: slower, still right */
	TAILQ_FOREACH(e, &c->lru, lru) {
		e->next = nb[e->hash & (n - 1)];
		nb[e->hash & (n - 1)] = e;
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

/* See auth_cache.h. */
int
auth_cache_put(struct auth_cache *c, const char *user,
    const struct auth_rec *rec, uint64_t now_ms)
{
	struct auth_centry	*e;
	uint64_t		 h = auth_cache_hash(user);

	if ((e = auth_cache_find(c, user, h)) != NULL)
		auth_cache_drop(c, e);
	while (c->count >= c->max)
		auth_cache_drop(c, TAILQ_FIRST(&c->lru));
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	if ((e->user = strdup(user)) == NULL ||
	    auth_rec_copy(&e->rec, rec) == -1) {
		free(e->user);
		free(e);
		return -1;
	}
	e->hash = h;
	e->at_ms = now_ms;
	e->next = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	TAILQ_INSERT_TAIL(&c->lru, e, lru);
	c->count++;
	auth_cache_grow(c);
	return 0;
}
