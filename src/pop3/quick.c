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
 * zero, above the low 24 bits of the hash of the maildrop's path. A set
 * holds its hints first, the latest login's in slot 0, then zeros; it is
 * chosen by the low bits of the same hash.
 */
#define PATH_BITS	24
#define PATH_MASK	((UINT64_C(1) << PATH_BITS) - 1)
#define NSETS		(QUICK_HINT_SLOTS / QUICK_HINT_WAYS)

struct quick_hints {
	uint64_t	slot[QUICK_HINT_SLOTS];	/* first: sets on cache lines */
	uint64_t	k0, k1;
};

struct quick_hints *
quick_hints_new(void)
{
	void	*p;
	size_t	 len = (sizeof(struct quick_hints) + 63) & ~(size_t)63;

	if (posix_memalign(&p, 64, len) != 0)
		return NULL;
	memset(p, 0, len);
	((struct quick_hints *)p)->k0 = siphash_random();
	((struct quick_hints *)p)->k1 = siphash_random();
	return p;
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

uint64_t
quick_user_hash(const struct quick_hints *h, const char *user)
{
	return siphash(h->k0, h->k1, user, strlen(user));
}

uint64_t
quick_path_hash(const struct quick_hints *h, const char *path)
{
	return siphash(h->k1, h->k0, path, strlen(path)) & PATH_MASK;
}

static uint64_t
hint_tag(uint64_t user)
{
	return (user & ~PATH_MASK) | (UINT64_C(1) << PATH_BITS);
}

/* Where the user's set starts in slot[]. */
static size_t
hint_set(uint64_t user)
{
	return (size_t)(user % NSETS) * QUICK_HINT_WAYS;
}

/* The slot of the user's hint in set, or -1. */
static int
hint_find(const uint64_t *set, uint64_t user)
{
	uint64_t	tag = hint_tag(user);
	int		i;

	for (i = 0; i < QUICK_HINT_WAYS && set[i] != 0; i++)
		if ((set[i] & ~PATH_MASK) == tag)
			return i;
	return -1;
}

bool
quick_login_likely(const struct quick_hints *h, uint64_t user)
{
	return hint_find(&h->slot[hint_set(user)], user) >= 0;
}

bool
quick_path_known(const struct quick_hints *h, uint64_t user, uint64_t path)
{
	const uint64_t	*set = &h->slot[hint_set(user)];
	int		 i = hint_find(set, user);

	return i >= 0 && (set[i] & PATH_MASK) == path;
}

/* Take slot i out of set; the later ones move up. */
static void
hint_drop(uint64_t *set, int i)
{
	memmove(&set[i], &set[i + 1],
	    (size_t)(QUICK_HINT_WAYS - 1 - i) * sizeof(*set));
	set[QUICK_HINT_WAYS - 1] = 0;
}

void
quick_login_seen(struct quick_hints *h, uint64_t user, uint64_t path,
    size_t msgs, bool local)
{
	uint64_t	*set = &h->slot[hint_set(user)];
	int		 i = hint_find(set, user);

	if (!local || msgs > QUICK_MAX_MSGS) {
		if (i >= 0)
			hint_drop(set, i);
		return;
	}
	/* To the front; a full set loses its last (the oldest login). */
	if (i < 0)
		i = QUICK_HINT_WAYS - 1;
	memmove(&set[1], &set[0], (size_t)i * sizeof(*set));
	set[0] = hint_tag(user) | path;
}

void
quick_login_forget(struct quick_hints *h, uint64_t user)
{
	uint64_t	*set = &h->slot[hint_set(user)];
	int		 i = hint_find(set, user);

	if (i >= 0)
		hint_drop(set, i);
}
