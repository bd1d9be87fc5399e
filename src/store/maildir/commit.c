/*
 * commit: UPDATE (RFC 1939 section 6): the marked messages unlinked,
 * those that moved meanwhile followed first.
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "store/maildir/maildir_int.h"
#include "store/store.h"

/* unlink m; 0 or -1 with errno. Records the directory it was in. */
static int
md_unlink(struct md *md, struct md_msg *m, unsigned *dirs)
{
	char	 path[PATH_MAX];

	if (md_msg_path(md, m, path, sizeof(path)) == -1 || unlink(path) == -1)
		return -1;
	*dirs |= 1U << m->in_cur;
	return 0;
}

static void
md_fsync_dir(struct md *md, int sub)
{
	char	 path[PATH_MAX];

	/* Best effort: the unlinks are done. */
	if (md_path(md, path, sizeof(path), md_subdir[sub], NULL) == 0)
		(void)fio_fsync_dir(path);
}

/*
 * RFC 1939 section 6. A message that is gone from where it was seen is
 * looked for under its unique part in cur/ (one pass for all of them);
 * one that is found nowhere was removed by someone else, which counts as
 * removed.
 */
enum store_err
md_commit(struct maildrop *base, const uint8_t *del, size_t *failed_r)
{
	struct md	*md = (struct md *)base;
	struct md_msg	*m;
	enum store_err	 rv = STORE_OK;
	size_t		 i, failed = 0, missing = 0;
	unsigned	 dirs = 0;
	int		 relocated = 0;

	for (i = 0; del != NULL && i < md->nmsgs; i++) {
		m = &md->msgs[i];
		m->missing = 0;
		if (!del[i] || md_unlink(md, m, &dirs) == 0)
			continue;
		if (errno == ENOENT) {
			m->missing = 1;
			missing++;
			continue;
		}
		if (failed++ == 0)
			rv = store_errno(errno);
	}
	for (i = 0; missing > 0 && i < md->nmsgs; i++) {
		m = &md->msgs[i];
		if (!m->missing)
			continue;
		if ((!relocated && md_relocate(md, SIZE_MAX) == -1) ||
		    (m->shared && md_relocate(md, i) == -1)) {
			if (failed++ == 0)
				rv = store_errno(errno);
			continue;
		}
		relocated = 1;
		if (md_unlink(md, m, &dirs) == -1 && errno != ENOENT)
			if (failed++ == 0)
				rv = store_errno(errno);
	}
	if (dirs != 0) {		/* gone from the listing too */
		md->lc_keep = 0;
		md_lc_drop(md);
	}
	if (dirs & (1U << MD_CUR))
		md_fsync_dir(md, MD_CUR);
	if (dirs & (1U << MD_NEW))
		md_fsync_dir(md, MD_NEW);
	md_lc_keep(md);			/* unless mail was removed */
	md_free(md);			/* and unlock */
	if (failed_r != NULL)
		*failed_r = failed;
	return rv;
}
