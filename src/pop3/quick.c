/*
 * quick: the per-user hints of logins the loop may do itself (quick.h).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/siphash.h"
#include "pop3/quick.h"

/*
 * A slot: 0, or a user whose last login said yes (a hint that says no is
 * no hint): the top 40 bits of the keyed hash of the name, never all
 * zero, above the low 24 bits of the hash of the maildrop's path.
 */
#define PATH_BITS	24
#define PATH_MASK	((UINT64_C(1) << PATH_BITS) - 1)

struct quick_hints {
	uint64_t	k0, k1;
	uint64_t	slot[QUICK_HINT_SLOTS];
};

struct quick_hints *
quick_hints_new(void)
{
	struct quick_hints *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->k0 = siphash_random();
	h->k1 = siphash_random();
	return h;
}

void
quick_hints_free(struct quick_hints *h)
{
	free(h);
}

void
quick_hints_clear(struct quick_hints *h)
{
	memset(h->slot, 0, sizeof(h->slot));
}

/* The slot of user, and its tag (the user bits, never 0) in *tag_r. */
static uint64_t *
slot_of(struct quick_hints *h, const char *user, uint64_t *tag_r)
{
	uint64_t hash = siphash(h->k0, h->k1, user, strlen(user));

	*tag_r = (hash & ~PATH_MASK) | (UINT64_C(1) << PATH_BITS);
	return &h->slot[hash % QUICK_HINT_SLOTS];
}

bool
quick_login_likely(struct quick_hints *h, const char *user)
{
	uint64_t tag;

	return (*slot_of(h, user, &tag) & ~PATH_MASK) == tag;
}

uint64_t
quick_path_hash(const struct quick_hints *h, const char *path)
{
	return siphash(h->k1, h->k0, path, strlen(path)) & PATH_MASK;
}

bool
quick_path_known(struct quick_hints *h, const char *user, uint64_t path)
{
	uint64_t tag;

	return *slot_of(h, user, &tag) == (tag | path);
}

void
quick_login_seen(struct quick_hints *h, const char *user, uint64_t path,
    size_t msgs, bool local)
{
	uint64_t tag, *e = slot_of(h, user, &tag);

	if (local && msgs <= QUICK_MAX_MSGS)
		*e = tag | path;
	else if ((*e & ~PATH_MASK) == tag)
		*e = 0;
}

void
quick_login_forget(struct quick_hints *h, const char *user)
{
	uint64_t tag, *e = slot_of(h, user, &tag);

	if ((*e & ~PATH_MASK) == tag)
		*e = 0;
}
