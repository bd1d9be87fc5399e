/*
 * arena: the strings of one maildrop (file names, UIDLs, MD5s) in a few
 * blocks instead of a malloc() each, freed together when the maildrop
 * is. Blocks never move, so a string's address stays valid until
 * arena_free(). The first block is small (a maildrop with little mail
 * costs little); each new one is twice the last, up to a cap, so a big
 * maildrop wastes at most one block's slack.
 *
 * Not thread-safe: an arena belongs to one maildrop, used by one thread
 * at a time (store.h).
 */
#ifndef EVPOP3D_ARENA_H
#define EVPOP3D_ARENA_H

#include <stddef.h>
#include <string.h>

#define ARENA_BLK_MIN	512		/* bytes in the first block */
#define ARENA_BLK_MAX	(64 * 1024)	/* blocks double up to this */

struct arena_blk {
	struct arena_blk	*next;
	size_t			 used, size;
	char			 data[];
};

/* All zero is an empty arena. */
struct arena {
	struct arena_blk	*head;	/* the block being filled */
};

/*
 * A new block for need bytes at a->head: NULL if out of memory (the
 * arena is unchanged). For arena_add().
 */
struct arena_blk	*arena_grow(struct arena *a, size_t need);

/*
 * Copy s (slen bytes) and, if t is not NULL, t (tlen bytes) into the
 * arena as "s\0t\0" (s and t need not be NUL-terminated). Returns the
 * copy of s, or NULL if out of memory. Called per message by the
 * drivers' scans: inline, a block allocation only every few hundred.
 */
static inline char *
arena_add(struct arena *a, const char *s, size_t slen, const char *t,
    size_t tlen)
{
	struct arena_blk	*b = a->head;
	size_t			 need;
	char			*d;

	need = slen + 1 + (t != NULL ? tlen + 1 : 0);
	if ((b == NULL || b->size - b->used < need) &&
	    (b = arena_grow(a, need)) == NULL)
		return NULL;
	d = b->data + b->used;
	memcpy(d, s, slen);
	d[slen] = '\0';
	if (t != NULL) {
		memcpy(d + slen + 1, t, tlen);
		d[slen + 1 + tlen] = '\0';
	}
	b->used += need;
	return d;
}

/* A NUL-terminated copy of s (len bytes); NULL if out of memory. */
static inline const char *
arena_strndup(struct arena *a, const char *s, size_t len)
{
	return arena_add(a, s, len, NULL, 0);
}

/* Free every block: the arena is empty again, its strings gone. */
void	arena_free(struct arena *a);

#endif
