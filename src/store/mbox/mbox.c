/*
 * mbox: the mbox driver's ops table, open(), the message list and close()
 * (see store.h; the format is in mbox_parse.h, the driver's other files
 * in mbox_int.h).
 *
 * A maildrop is one mbox file, the classic /var/mail/USER spool that
 * Postfix local, procmail, dovecot-lda and mutt write. A missing file is
 * an empty maildrop; open() never creates it.
 *
 * Threads: open(), commit() and close() run on worker threads, the rest
 * on the event loop; each maildrop is used by one thread at a time. The
 * shared state: the temporary-file counter (mb.c) and the lock wait
 * (atomics), and the directories lately cleaned (under a mutex).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "store/mbox/mbox.h"
#include "store/mbox/mbox_int.h"
#include "store/mbox/mbox_test.h"
#include "store/sesslock.h"
#include "store/store.h"

/* mb->path, dir, name and the lock paths from path. */
static enum store_err
mb_paths(struct mb *mb, const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	const char	*slash;
	char		*real = NULL;

	/* A symbolic link: the file it names is what gets replaced. */
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
	    (real = realpath(path, NULL)) != NULL)
		path = real;
	slash = strrchr(path, '/');
	if (slash == NULL || slash[1] == '\0') {
		free(real);
		snprintf(err, errlen, "mbox %s: want the path of a file", path);
		return STORE_PERM;
	}
	mb->path = strdup(path);
	mb->dir = slash == path ? strdup("/") :
	    strndup(path, (size_t)(slash - path));
	mb->name = strdup(slash + 1);
	if (asprintf(&mb->slock, "%s/.%s%s", mb->dir, mb->name,
	    STORE_MBOX_LOCK_SUFFIX) == -1)
		mb->slock = NULL;
	if (asprintf(&mb->dotlock, "%s.lock", path) == -1)
		mb->dotlock = NULL;
	if (asprintf(&mb->ixpath, "%s/.%s%s", mb->dir, mb->name,
	    MB_IX_SUFFIX) == -1)
		mb->ixpath = NULL;
	free(real);
	if (mb->path == NULL || mb->dir == NULL || mb->name == NULL ||
	    mb->slock == NULL || mb->dotlock == NULL || mb->ixpath == NULL)
		return store_fail(ENOMEM, err, errlen, "mbox", path);
	return STORE_OK;
}

static enum store_err
mb_open(const struct store_params *p, struct maildrop **md_r, char *err,
    size_t errlen)
{
	struct stat	 st;
	struct mb	*mb;
	struct mb_msg	*m;
	struct mb_ixhead ixh;
	enum store_err	 rv;
	bool		 nosep, want_ix = false;
	int		 fd, dot;

	*md_r = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (p->path == NULL || *p->path == '\0') {
		snprintf(err, errlen, "mbox: empty path");
		return STORE_PERM;
	}
	/* The MDA locks (dotlock, fcntl) wait: never on the loop. */
	if (p->nowait)
		return STORE_AGAIN;
	if ((mb = calloc(1, sizeof(*mb))) == NULL)
		return store_fail(errno, err, errlen, "mbox", p->path);
	mb->base.ops = &store_mbox_ops;
	if ((rv = mb_paths(mb, p->path, err, errlen)) != STORE_OK)
		goto fail;

	/* RFC 1939 section 4: the exclusive-access lock, for the session. */
	if ((rv = sesslock_acquire(mb->slock, &mb->lock, err, errlen)) !=
	    STORE_OK)
		goto fail;
	if (mb_clean_due(mb->dir))
		mb_clean_tmp(mb, true);

	/* The index, under the MDA locks. */
	if ((rv = mb_lock(mb, O_RDONLY, F_RDLCK, &fd, &dot, &st, err,
	    errlen)) != STORE_OK)
		goto fail;
	if (fd == -1)			/* no mail yet */
		mb_unlock(mb, fd, dot);
	else {
		mb->dev = st.st_dev;
		mb->ino = st.st_ino;
		/* The cached part, then only what follows it. */
		(void)mb_ix_load(mb, fd, &st);	/* sets mb->ix_end */
		rv = mb_index(mb, fd, mb->ix_end, &nosep, err, errlen);
		if (rv == STORE_OK && nosep) {
			log_debug("mbox %s: no separator at the cached end "
			    "%llu: full scan", mb->path,
			    (unsigned long long)mb->ix_end);
			mb_index_reset(mb);
			rv = mb_index(mb, fd, 0, &nosep, err, errlen);
		}
		if (rv == STORE_OK)
			want_ix = mb_ix_prepare(mb, fd, &ixh);
		mb_unlock(mb, fd, dot);
		if (rv != STORE_OK)
			goto fail;
		if (want_ix)
			mb_ix_write(mb, &ixh);
	}
	/* No slack from the doubling: 72 bytes a message, plus its UIDL. */
	if (mb->nmsgs > 0 && mb->nmsgs < mb->msgs_cap &&
	    (m = reallocarray(mb->msgs, mb->nmsgs, sizeof(*m))) != NULL) {
		mb->msgs = m;
		mb->msgs_cap = mb->nmsgs;
	}
	if ((rv = mb_make_vis(mb, err, errlen)) != STORE_OK ||
	    (rv = mb_make_uidls(mb, p->uidl_format, err, errlen)) != STORE_OK)
		goto fail;
	*md_r = &mb->base;
	return STORE_OK;
fail:
	mb_free(mb);
	return rv;
}

static size_t
mb_count(const struct maildrop *base)
{
	return ((const struct mb *)base)->nvis;
}

static uint64_t
mb_size(const struct maildrop *base, size_t i)
{
	const struct mb	*mb = (const struct mb *)base;

	return i < mb->nvis ? mb_vis(mb, i)->size : 0;
}

static uint64_t
mb_total(const struct maildrop *base)
{
	return ((const struct mb *)base)->total;
}

static const char *
mb_uidl(const struct maildrop *base, size_t i)
{
	const struct mb	*mb = (const struct mb *)base;

	return i < mb->nvis ? mb_vis(mb, i)->uidl : NULL;
}

static void
mb_close(struct maildrop *base)
{
	mb_free((struct mb *)base);
}

static void
mb_disown(struct maildrop *base)
{
	sesslock_disown(((struct mb *)base)->lock);
}

const struct store_ops store_mbox_ops = {
	.name =		"mbox",
	.open =		mb_open,
	.count =	mb_count,
	.size =		mb_size,
	.total =	mb_total,
	.uidl =		mb_uidl,
	.msg_open =	mb_msg_open,
	.msg_locate =	NULL,
	.msg_read =	mb_msg_read,
	.msg_close =	mb_msg_close,
	.commit =	mb_commit,
	.close =	mb_close,
	.disown =	mb_disown,
};
