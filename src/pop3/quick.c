/*
 * quick: the per-user hints of logins the loop may do itself (quick.h).
 */
#include <stdlib.h>
#include <string.h>

#include <sys/vfs.h>

#include "lib/siphash.h"
#include "pop3/quick.h"

/*
 * A slot holds the keyed hash of a user whose last login said yes, or 0:
 * a hint that says no is no hint.
 */
struct quick_hints {
	uint64_t	k0, k1;
	uint64_t	slot[QUICK_HINT_SLOTS];
};

/* statfs(2)'s f_type of the file systems a login may be quick on. */
static const unsigned long local_fs[] = {
	0xEF53,		/* ext2, ext3, ext4 */
	0x58465342,	/* XFS */
	0x9123683E,	/* Btrfs */
	0x01021994,	/* tmpfs */
	0xF2F52010,	/* F2FS */
	0x2FC12FC1,	/* ZFS */
	0x794C7630,	/* overlayfs (containers) */
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

/* The slot of user, and its tag (never 0) in *tag_r. */
static uint64_t *
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

	return *slot_of(h, user, &tag) == tag;
}

void
quick_login_seen(struct quick_hints *h, const char *user, size_t msgs,
    bool local)
{
	uint64_t tag, *e = slot_of(h, user, &tag);

	if (local && msgs <= QUICK_MAX_MSGS)
		*e = tag;
	else if (*e == tag)
		*e = 0;
}

void
quick_login_forget(struct quick_hints *h, const char *user)
{
	uint64_t tag, *e = slot_of(h, user, &tag);

	if (*e == tag)
		*e = 0;
}

bool
quick_fs_local(const char *path)
{
	struct statfs	st;
	size_t		i;

	if (statfs(path, &st) == -1)
		return false;
	for (i = 0; i < sizeof(local_fs) / sizeof(local_fs[0]); i++)
		if ((unsigned long)st.f_type == local_fs[i])
			return true;
	return false;
}
