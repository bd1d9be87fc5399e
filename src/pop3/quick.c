/*
 * quick: the per-user hints of logins the loop may do itself (quick.h).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/siphash.h"
#include "pop3/quick.h"

/*
 * A slot: the keyed hash of a user whose last login said yes (0: none; a
 * hint that says no is no hint), and of the path its maildrop was at.
 */
struct quick_slot {
	uint64_t	user;
	uint64_t	path;
};

struct quick_hints {
	uint64_t		k0, k1;
	struct quick_slot	slot[QUICK_HINT_SLOTS];
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

/* The slot of user, and its tag (never 0) in *tag_r. */
static struct quick_slot *
slot_of(struct quick_hints *h, const char *user, uint64_t *tag_r)
{
	uint64_t tag = siphash(h->k0, h->k1, user, strlen(user)) | 1;

	*tag_r = tag;
	return &h->slot[(tag >> 1) % QUICK_HINT_SLOTS];
}

bool
quick_login_likely(struct quick_hints *h, const char *user)
{
	uint64_t tag;

	return slot_of(h, user, &tag)->user == tag;
}

uint64_t
quick_path_hash(const struct quick_hints *h, const char *path)
{
	return siphash(h->k1, h->k0, path, strlen(path));
}

bool
quick_path_known(struct quick_hints *h, const char *user, uint64_t path)
{
	struct quick_slot	*e;
	uint64_t		 tag;

	e = slot_of(h, user, &tag);
	return e->user == tag && e->path == path;
}

void
quick_login_seen(struct quick_hints *h, const char *user, uint64_t path,
    size_t msgs, bool local)
{
	struct quick_slot	*e;
	uint64_t		 tag;

	e = slot_of(h, user, &tag);
	if (local && msgs <= QUICK_MAX_MSGS) {
		e->user = tag;
		e->path = path;
	} else if (e->user == tag)
		e->user = 0;
}

void
quick_login_forget(struct quick_hints *h, const char *user)
{
	struct quick_slot	*e;
	uint64_t		 tag;

	e = slot_of(h, user, &tag);
	if (e->user == tag)
		e->user = 0;
}
