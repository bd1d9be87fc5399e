/*
 * arena: the block allocation behind arena_add() (see arena.h).
 */
#include <stdlib.h>

#include "store/arena.h"

struct arena_blk *
arena_grow(struct arena *a, size_t need)
{
	struct arena_blk	*b;
	size_t			 size;

	/* Small maildrops stay small; big ones waste little. */
	size = a->head == NULL ? ARENA_BLK_MIN : a->head->size * 2;
	if (size > ARENA_BLK_MAX)
		size = ARENA_BLK_MAX;
	if (size < need)
		size = need;
	if ((b = malloc(sizeof(*b) + size)) == NULL)
		return NULL;
	b->used = 0;
	b->size = size;
	b->next = a->head;
	a->head = b;
	return b;
}

void
arena_free(struct arena *a)
{
	struct arena_blk	*b;

	while ((b = a->head) != NULL) {
		a->head = b->next;
		free(b);
	}
}
