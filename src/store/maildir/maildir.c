/*
 * maildir: the Maildir driver's ops table, open(), the message list
 * and close() (see store.h; the driver's other files in maildir_int.h).
 *
 * A maildrop is a Maildir root with cur/, new/ and tmp/. open() creates a
 * missing Maildir (a user with no mail yet is normal), takes the session
 * lock, then scans new/ and cur/ once; the session works on that snapshot
 * (RFC 1939 section 4: message numbers are fixed for the session).
 *
 * Lock: an owner record in <root>/evpop3d.lock (sesslock.h), written at
 * open and cleared at close or commit; the record of a holder that died
 * is stale and the next open takes over. It holds no descriptor, so an
 * idle session costs one descriptor. The lock keeps POP3 sessions apart:
 * deliveries and IMAP servers keep working, so files may be moved from
 * new/ to cur/ or renamed with new flags under us. msg_locate() and
 * commit() follow such moves by the message's unique part.
 *
 * Threads: open(), msg_locate(), commit() and close() run on worker
 * threads (they scan directories or write the lock), everything else on
 * the event loop; each maildrop is used by one thread at a time. The one
 * shared state is the directory descriptor cache (md.c: filled by the
 * scan's md_dirfd_offer() and RETR's md_dirfd_get()), under its mutex.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maildir/maildir.h"
#include "store/maildir/maildir_int.h"
#include "store/maildir/maildir_test.h"
#include "store/sesslock.h"
#include "store/store.h"
#include "store/uidl_format.h"

/* mkdir that accepts an existing directory. */
static int
md_mkdir(const char *path)
{
	struct stat	 st;
	int		 saved;

	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	saved = errno;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	errno = saved;
	return -1;
}

/* mkdir -p path: every missing component with mode 0700. */
static int
md_mkdir_p(const char *path)
{
	char	 buf[PATH_MAX];
	char	*p;

	if (strlen(path) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		if (p[-1] == '/')
			continue;
		*p = '\0';
		if (md_mkdir(buf) == -1)
			return -1;
		*p = '/';
	}
	return md_mkdir(buf);
}

/*
 * Make sure the Maildir exists: create the root if missing, then any of
 * cur/, new/, tmp/ that is missing.
 */
static enum store_err
md_create(struct md *md, char *err, size_t errlen)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	char	 buf[PATH_MAX];
	size_t	 i;
	int	 root_done = 0;

	if (md->nowait)			/* mkdir: a thread's */
		return STORE_AGAIN;
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (md_path(md, buf, sizeof(buf), subs[i], NULL) == -1)
			return store_fail(errno, err, errlen, "maildir", md->path);
		if (md_mkdir(buf) == 0)
			continue;
		if (errno != ENOENT || root_done)
			return store_fail(errno, err, errlen, "mkdir", buf);
		if (md_mkdir_p(md->path) == -1)
			return store_fail(errno, err, errlen, "mkdir", md->path);
		root_done = 1;
		i--;			/* again, now that the root exists */
	}
	return STORE_OK;
}

/* RFC 1939 section 4: the exclusive-access lock. */
static enum store_err
md_lock(struct md *md, bool nowait, char *err, size_t errlen)
{
	char		 buf[PATH_MAX];

	if (md_path(md, buf, sizeof(buf), STORE_MAILDIR_LOCKFILE, NULL) == -1)
		return store_fail(errno, err, errlen, "maildir", md->path);
	return nowait ? sesslock_try(buf, &md->lock, err, errlen) :
	    sesslock_acquire(buf, &md->lock, err, errlen);
}

/*
 * Did a step of open() fail because the Maildir is not there (a user
 * with no mail yet)? The lock step (scan 0) needs the root, the scan
 * new/ and cur/. Any other failure (permissions, I/O, a file where a
 * directory should be) is reported as it is, and nothing is created.
 */
static int
md_missing(const struct md *md, int scan)
{
	char		 buf[PATH_MAX];
	struct stat	 st;
	int		 sub;

	if (!scan)
		return stat(md->path, &st) == -1 && errno == ENOENT;
	for (sub = MD_NEW; sub <= MD_CUR; sub++)
		if (md_path(md, buf, sizeof(buf), md_subdir[sub], NULL) == 0 &&
		    stat(buf, &st) == -1 && errno == ENOENT)
			return 1;
	return 0;
}

/* Before a scan again: nothing of the last one's listing is left. */
static void
md_reset_listing(struct md *md)
{
	free(md->msgs);
	md->msgs = NULL;
	md->nmsgs = md->msgs_cap = 0;
	md->lc_keep = md->lc_u0 = md->lc_plain = 0;
}

/* The total for STAT at login, added up here on the worker thread. */
static void
md_sum(struct md *md)
{
	size_t	 i;

	md->total = 0;
	for (i = 0; i < md->nmsgs; i++)
		md->total += md->msgs[i].size;
}

/*
 * The UIDLs would need %m (every message's headers): no open with nowait,
 * known before the lock's I/O. dovecot-uidlist is refused by uidl.c,
 * after the scan; a Maildir that needs it gets no hint (md_quick_ok()),
 * so the loop tries it only when it changed since.
 */
static bool
md_ids_slow(const struct md *md)
{
	return md->uidl_format != NULL && uidl_format_uses(md->uidl_format,
	    'm');
}

/* See store.h: after a thread's open, would a loop's have done? */
static bool
md_quick_ok(const struct maildrop *base)
{
	return !((const struct md *)base)->slow_ids;
}

static enum store_err
md_open(const struct store_params *p, struct maildrop **md_r, char *err,
    size_t errlen)
{
	const char	*path = p->path;
	size_t		 plen;
	struct md	*md;
	enum store_err	 rv;
	int		 created = 0;

	*md_r = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "maildir: empty path");
		return STORE_PERM;
	}
	plen = strlen(path);
	if ((md = calloc(1, sizeof(*md) + plen + 1)) == NULL)
		return store_fail(errno, err, errlen, "maildir", path);
	md->base.ops = &store_maildir_ops;
	md->uidl_format = p->uidl_format;
	memcpy(md->path, path, plen + 1);
	/*
	 * Lock, then scan. A user with no mail yet may have no Maildir: only
	 * when one of those steps fails for a missing directory is it
	 * created (mkdir -p of the root, cur/, new/, tmp/) and the step
	 * retried, so a login into an existing Maildir costs no mkdir calls.
	 */
	md->nowait = p->nowait;
	md->lc_ok = p->listing_cache && md_lc_enabled();
	/* Before the lock's I/O: what would make a loop open fail anyway. */
	if (p->nowait && md_ids_slow(md)) {
		rv = STORE_AGAIN;
		goto fail;
	}
	if ((rv = md_lock(md, p->nowait, err, errlen)) != STORE_OK) {
		if (rv == STORE_INUSE || rv == STORE_AGAIN ||
		    !md_missing(md, 0) ||
		    (rv = md_create(md, err, errlen)) != STORE_OK ||
		    (rv = md_lock(md, p->nowait, err, errlen)) != STORE_OK)
			goto fail;
		created = 1;
	}
	if ((rv = md_scan(md, p->max_msgs, err, errlen)) != STORE_OK) {
		if (rv == STORE_AGAIN || created || !md_missing(md, 1) ||
		    (rv = md_create(md, err, errlen)) != STORE_OK)
			goto fail;
		md_reset_listing(md);
		if ((rv = md_scan(md, p->max_msgs, err, errlen)) != STORE_OK)
			goto fail;
	}
	md_sum(md);
	md->nowait = 0;
	*md_r = &md->base;
	return STORE_OK;
fail:
	md_lc_keep(md);			/* a whole listing, or none */
	md_free(md);
	return rv;
}

static size_t
md_count_msgs(const struct maildrop *base)
{
	return ((const struct md *)base)->nmsgs;
}

static uint64_t
md_size(const struct maildrop *base, size_t i)
{
	const struct md	*md = (const struct md *)base;

	return i < md->nmsgs ? md->msgs[i].size : 0;
}

static uint64_t
md_total(const struct maildrop *base)
{
	return ((const struct md *)base)->total;
}

static const char *
md_uidl(const struct maildrop *base, size_t i)
{
	const struct md	*md = (const struct md *)base;

	return i < md->nmsgs ? md_msg_uidl(md, &md->msgs[i]) : NULL;
}

static void
md_close(struct maildrop *base)
{
	md_lc_keep((struct md *)base);
	md_free((struct md *)base);
}

static void
md_disown(struct maildrop *base)
{
	sesslock_disown(((struct md *)base)->lock);
}

const struct store_ops store_maildir_ops = {
	.name =		"maildir",
	.open =		md_open,
	.quick_ok =	md_quick_ok,
	.count =	md_count_msgs,
	.size =		md_size,
	.total =	md_total,
	.uidl =		md_uidl,
	.msg_open =	md_msg_open,
	.msg_locate =	md_msg_locate,
	.msg_read =	md_msg_read,
	.msg_close =	md_msg_close,
	.commit =	md_commit,
	.close =	md_close,
	.disown =	md_disown,
};
