/*
 * mb: the bottom of the mbox driver, called by its other files and
 * calling none of them: the names of temporary files, and freeing a
 * maildrop.
 */
#include <sys/types.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/pidcache.h"
#include "store/mbox/mbox_int.h"
#include "store/mbox/mbox_test.h"
#include "store/sesslock.h"
#include "store/store.h"

static atomic_ulong	 mb_tmp_counter;

/*
 * A new temporary file name beside the mbox, DIR/.NAME.evpop3d-tmp.PID.N
 * (a rewrite, or a dotlock being made): one that a dead process left is
 * removed by mb_clean_tmp(). -1 if it does not fit.
 */
int
mb_tmp_name(const struct mb *mb, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "%s/.%s%s%ld.%lu", mb->dir, mb->name,
	    STORE_MBOX_TMP_SUFFIX, (long)pid_self(),
	    atomic_fetch_add(&mb_tmp_counter, 1));
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Release mb's session lock, free it. */
void
mb_free(struct mb *mb)
{
	if (mb == NULL)
		return;
	if (sesslock_release(mb->lock) == -1)
		log_warn("mbox %s: session lock release", mb->slock);
	arena_free(&mb->arena);
	free(mb->msgs);
	free(mb->vis);
	free(mb->path);
	free(mb->dir);
	free(mb->name);
	free(mb->slock);
	free(mb->dotlock);
	free(mb->ixpath);
	free(mb);
}
