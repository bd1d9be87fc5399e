/*
 * idtab: sizing and seeding of the drivers' id tables (see idtab.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/idtab.h"

int
idtab_init(struct idtab *t, size_t n)
{
	size_t	 cap = 16;

	t->slot = NULL;
	t->mask = 0;
	if (n >= UINT32_MAX / 2) {
		errno = EFBIG;
		return -1;
	}
	while (cap < 2 * n)
		cap <<= 1;
	if ((t->slot = calloc(cap, sizeof(*t->slot))) == NULL)
		return -1;
	t->mask = cap - 1;
	t->seed = store_hash_seed();
	return 0;
}

void
idtab_free(struct idtab *t)
{
	free(t->slot);
	t->slot = NULL;
}
