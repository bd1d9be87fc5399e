/*
 * commit: UPDATE (RFC 1939 section 6), the mbox rewritten without the
 * deleted messages; the temporary files of rewrites that died.
 *
 * UPDATE (commit) writes a new mbox DIR/.NAME.evpop3d-tmp.PID.N beside
 * the old one, under both MDA locks: the raw bytes of each kept entry
 * (separator line and blank line included), then everything after the
 * indexed end (mail delivered during the session) verbatim; it checks
 * each entry against its checksum on the way. Then fsync(), rename() over
 * the mbox, fsync() of the directory: at every instant the path names
 * either the old or the new complete mbox. The new file gets the old
 * one's owner, group and mode. If the old file was replaced, cut, or
 * changed anywhere in the indexed part (an MUA expunged), or any write
 * fails (ENOSPC, EFBIG), nothing is deleted: the temporary file is
 * removed and commit() fails with STORE_TEMP. Temporary files left by a
 * process that died are removed by the next commit() of that mbox, and by
 * an open() in their directory (once an hour per directory and process: a
 * big spool directory is not read at every login). An MDA that appends
 * after taking only the fcntl lock, without checking that the path still
 * names the file it locked, may append to the replaced file: such MDAs
 * are not safe with any mbox rewriter.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/pidcache.h"
#include "store/mbox/mbox_int.h"
#include "store/mbox/mbox_test.h"
#include "store/store.h"

#define MB_COPY_BUF	(1024 * 1024)	/* read and write size of commit */
#define MB_TMP_STALE	3600		/* seconds */

/* The rewrite: a temporary file and what is being copied into it. */
struct mb_copy {
	struct mb	*mb;
	const uint8_t	*del;		/* by visible index */
	int		 fd;		/* the mbox, locked */
	int		 tfd;		/* the new file */
	char		 tmp[PATH_MAX];
	char		*in, *out;	/* MB_COPY_BUF each */
	size_t		 olen;
	int		 changed;	/* another program changed the mbox */
};

static int
mb_out_flush(struct mb_copy *c)
{
	if (fio_write_full(c->tfd, c->out, c->olen) == -1)
		return -1;
	c->olen = 0;
	return 0;
}

/* Append bytes to the new file (buffered). */
static int
mb_out(struct mb_copy *c, const char *p, size_t n)
{
	if (c->olen + n > MB_COPY_BUF && mb_out_flush(c) == -1)
		return -1;
	if (n >= MB_COPY_BUF)
		return fio_write_full(c->tfd, p, n);
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
	return 0;
}

/*
 * Copy the indexed part: every entry is checked against its checksum,
 * the kept ones are written. Returns 0, or -1 (errno set; c->changed
 * if the mbox is not what open() saw).
 */
static int
mb_copy_index(struct mb_copy *c)
{
	struct mb		*mb = c->mb;
	struct mb_msg		*m;
	struct mbox_hash	 h;
	uint64_t		 off = 0, pos, ee;
	size_t			 k = 0, v = 0, take, want;
	ssize_t			 n;
	bool			 keep;

	mbox_hash_init(&h);
	while (off < mb->end) {
		want = mb->end - off < MB_COPY_BUF ? (size_t)(mb->end - off) :
		    MB_COPY_BUF;
		if ((n = fio_read_full(c->fd, c->in, want)) == -1)
			return -1;
		if ((size_t)n < want) {
			c->changed = 1;		/* cut while we waited */
			return -1;
		}
		for (pos = off; pos < off + want;) {
			m = &mb->msgs[k];
			keep = m->hidden || c->del[v] == 0;
			ee = mb_entry_end(mb, k);
			take = (size_t)((ee < off + want ? ee : off + want) -
			    pos);
			mbox_hash_update(&h, c->in + (pos - off), take);
			if (keep && mb_out(c, c->in + (pos - off), take) == -1)
				return -1;
			pos += take;
			if (pos == ee) {
				if (mbox_hash_final(&h) != m->hash) {
					c->changed = 1;
					return -1;
				}
				mbox_hash_init(&h);
				if (!m->hidden)
					v++;
				k++;
			}
		}
		off += want;
	}
	return 0;
}

/*
 * Copy what was appended after the indexed end. If the last entry goes,
 * what follows it must be a new entry: a separator line, after the line
 * terminator the last message lacked (if it did). Anything else means
 * the last message grew, and it is not ours to delete.
 */
static int
mb_copy_tail(struct mb_copy *c, bool last_deleted, bool last_unterminated)
{
	const char	*nl;
	ssize_t		 n;
	size_t		 skip = 0, len;
	bool		 first = true;

	for (;;) {
		if ((n = fio_read_full(c->fd, c->in, MB_COPY_BUF)) == -1)
			return -1;
		if (n == 0)
			return 0;
		len = (size_t)n;
		if (first && last_deleted) {
			/*
			 * What follows a deleted last message must be new
			 * entries: line terminators (the one it lacked, if
			 * it did, and blank lines some MDAs put first), then
			 * a separator. Anything else means the message grew.
			 */
			if (last_unterminated && c->in[0] != '\n' &&
			    c->in[0] != '\r')
				goto changed;
			while (skip < len && (c->in[skip] == '\n' ||
			    (c->in[skip] == '\r' && skip + 1 < len &&
			    c->in[skip + 1] == '\n')))
				skip += c->in[skip] == '\n' ? 1 : 2;
			if (skip == len && len == MB_COPY_BUF)
				goto changed;	/* a megabyte of blank lines */
			if (skip < len) {
				nl = memchr(c->in + skip, '\n', len - skip);
				if (nl == NULL || !mbox_from_valid(c->in + skip,
				    (size_t)(nl - (c->in + skip))))
					goto changed;
			}
		}
		first = false;
		if (mb_out(c, c->in + skip, len - skip) == -1)
			return -1;
		skip = 0;
	}
changed:
	c->changed = 1;
	return -1;
}

/*
 * The rewrite, under the MDA locks: new file, copy, fsync, rename.
 * Returns STORE_OK once the new mbox is in place; otherwise nothing
 * changed (the temporary file is gone) and err says why.
 */
static enum store_err
mb_rewrite(struct mb_copy *c, const struct stat *st, char *err,
    size_t errlen)
{
	struct mb	*mb = c->mb;
	struct mb_msg	*last = &mb->msgs[mb->nmsgs - 1];
	struct stat	 tst;
	enum store_err	 rv;
	bool		 last_deleted;
	int		 n;

	if (st->st_dev != mb->dev || st->st_ino != mb->ino ||
	    (uint64_t)st->st_size < mb->end) {
		c->changed = 1;
		snprintf(err, errlen, "replaced or cut");
		return STORE_TEMP;
	}
	if (mb_tmp_name(mb, c->tmp, sizeof(c->tmp)) == -1)
		return store_fail(ENAMETOOLONG, err, errlen, "mbox", mb->path);
	c->tfd = fio_atomic_open(c->tmp, O_EXCL | O_NOCTTY, 0600);
	if (c->tfd == -1)
		return store_fail(errno, err, errlen, "create", c->tmp);

	/* The owner, group and mode of the old file. */
	if (fstat(c->tfd, &tst) == -1) {
		rv = store_fail(errno, err, errlen, "fstat", c->tmp);
		goto fail;
	}
	if ((tst.st_uid != st->st_uid || tst.st_gid != st->st_gid) &&
	    fchown(c->tfd, st->st_uid, st->st_gid) == -1) {
		store_fail(errno, err, errlen, "fchown", c->tmp);
		rv = STORE_TEMP;
		goto fail;
	}
	if (fchmod(c->tfd, st->st_mode & 07777) == -1) {
		store_fail(errno, err, errlen, "fchmod", c->tmp);
		rv = STORE_TEMP;
		goto fail;
	}

	last_deleted = !last->hidden && c->del[mb->nvis - 1] != 0;
	if (mb_copy_index(c) == -1 || mb_copy_tail(c, last_deleted,
	    last->no_eol) == -1 || mb_out_flush(c) == -1) {
		if (c->changed) {
			snprintf(err, errlen, "changed");
			rv = STORE_TEMP;
		} else
			rv = store_fail(errno, err, errlen, "write", c->tmp);
		goto fail;
	}
	if (fsync(c->tfd) == -1) {
		rv = store_fail(errno, err, errlen, "fsync", c->tmp);
		goto fail;
	}
	n = close(c->tfd);
	c->tfd = -1;
	if (n == -1) {
		rv = store_fail(errno, err, errlen, "close", c->tmp);
		goto fail;
	}
	if (rename(c->tmp, mb->path) == -1) {
		rv = store_fail(errno, err, errlen, "rename", c->tmp);
		goto fail;
	}
	/* The rename on disk; best effort: the new mbox is in place. */
	if (fio_fsync_dir(mb->dir) == -1)
		log_warn("mbox %s: fsync of the directory", mb->dir);
	return STORE_OK;
fail:
	if (c->tfd != -1)
		close(c->tfd);
	c->tfd = -1;
	if (unlink(c->tmp) == -1)
		log_warn("mbox %s: removal", c->tmp);
	return rv == STORE_OK ? STORE_TEMP : rv;
}

/*
 * RFC 1939 section 6. All or nothing: either the new mbox without the
 * marked messages is in place (STORE_OK), or the old one is untouched
 * and every marked message counts as failed (logged with the reason).
 */
enum store_err
mb_commit(struct maildrop *base, const uint8_t *del, size_t *failed_r)
{
	struct mb	*mb = (struct mb *)base;
	struct mb_copy	 c;
	struct stat	 st;
	char		 err[512];
	enum store_err	 rv;
	size_t		 i, marked = 0;
	int		 dot;

	for (i = 0; del != NULL && i < mb->nvis; i++)
		marked += del[i] != 0;
	if (failed_r != NULL)
		*failed_r = 0;
	if (marked == 0) {
		mb_free(mb);		/* nothing to remove: touch nothing */
		return STORE_OK;
	}

	memset(&c, 0, sizeof(c));
	c.mb = mb;
	c.del = del;
	c.fd = c.tfd = -1;
	err[0] = '\0';
	if ((rv = mb_lock(mb, O_RDWR, F_WRLCK, &c.fd, &dot, &st, err,
	    sizeof(err))) != STORE_OK)
		goto done;
	if (c.fd == -1) {
		c.changed = 1;
		snprintf(err, sizeof(err), "removed");
		rv = STORE_TEMP;
		goto unlock;
	}
	c.in = malloc(MB_COPY_BUF);
	c.out = malloc(MB_COPY_BUF);
	if (c.in == NULL || c.out == NULL)
		rv = store_fail(ENOMEM, err, sizeof(err), "mbox", mb->path);
	else
		rv = mb_rewrite(&c, &st, err, sizeof(err));
	free(c.in);
	free(c.out);
unlock:
	mb_unlock(mb, c.fd, dot);
	/*
	 * Leftovers of dead rewrites: this mbox's every time, the others'
	 * when due; after the MDA locks, so deliveries never wait for it.
	 */
	mb_clean_tmp(mb, mb_clean_due(mb->dir));
	/*
	 * A new file (its inode may come back for another one), or one that
	 * changed under us: the cache describes neither.
	 */
	if (rv == STORE_OK || c.changed)
		mb_ix_drop(mb);
done:
	if (rv != STORE_OK) {
		if (c.changed)
			log_warnx("mbox %s: changed by another program during "
			    "the session (%s): nothing deleted", mb->path, err);
		else
			log_warnx("mbox %s: update failed, nothing deleted: %s",
			    mb->path, err);
		if (failed_r != NULL)
			*failed_r = marked;
		rv = STORE_TEMP;	/* -ERR [SYS/TEMP]: try again later */
	}
	mb_free(mb);
	return rv;
}

/*
 * Directories whose leftover temporary files were looked for lately, so
 * that a login into a spool of thousands of mboxes does not read the
 * whole directory each time (3 ms for 10,000 entries).
 */
#define MB_CLEAN_SLOTS	64

static struct {
	uint64_t	 key;		/* hash of the directory; 0: free */
	time_t		 when;
} mb_clean_seen[MB_CLEAN_SLOTS];
static pthread_mutex_t	 mb_clean_mtx = PTHREAD_MUTEX_INITIALIZER;

/* Is a look at dir due (none in this process for MB_TMP_STALE)? */
bool
mb_clean_due(const char *dir)
{
	uint64_t	 key = store_hash(0, dir, strlen(dir)) | 1;
	time_t		 now = time(NULL);
	size_t		 i, old = 0;
	bool		 due = true;

	pthread_mutex_lock(&mb_clean_mtx);
	for (i = 0; i < MB_CLEAN_SLOTS; i++) {
		if (mb_clean_seen[i].key == key)
			break;
		if (mb_clean_seen[i].when < mb_clean_seen[old].when)
			old = i;
	}
	if (i == MB_CLEAN_SLOTS)
		i = old;			/* the least recent one goes */
	else if (mb_clean_seen[i].when + MB_TMP_STALE > now)
		due = false;
	if (due) {
		mb_clean_seen[i].key = key;
		mb_clean_seen[i].when = now;
	}
	pthread_mutex_unlock(&mb_clean_mtx);
	return due;
}

/*
 * Remove the temporary files of rewrites that died: DIR/.NAME.evpop3d-
 * tmp.PID.N whose PID is not running, or that are older than an hour;
 * and, of our own mbox (we hold its session lock, so no rewrite of it
 * runs in this process), those of our PID. With all, every mbox's in
 * DIR, else only ours. Best effort.
 */
void
mb_clean_tmp(struct mb *mb, bool all)
{
	struct dirent	*de;
	struct stat	 st;
	char		 own[NAME_MAX + 32], *end;
	const char	*suf;
	size_t		 olen;
	long		 pid;
	bool		 ours;
	DIR		*d;

	olen = (size_t)snprintf(own, sizeof(own), ".%s%s", mb->name,
	    STORE_MBOX_TMP_SUFFIX);
	if (olen >= sizeof(own) || (d = opendir(mb->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		ours = strncmp(de->d_name, own, olen) == 0;
		if (ours)
			suf = de->d_name + olen;
		else if (!all || de->d_name[0] != '.' || (suf = strstr(
		    de->d_name, STORE_MBOX_TMP_SUFFIX)) == NULL)
			continue;
		else
			suf += strlen(STORE_MBOX_TMP_SUFFIX);
		errno = 0;
		pid = strtol(suf, &end, 10);
		if (errno != 0 || end == suf || *end != '.' || pid <= 0 ||
		    pid > INT32_MAX)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    -1 || !S_ISREG(st.st_mode))
			continue;
		if (!(ours && pid == (long)pid_self()) &&
		    !(kill((pid_t)pid, 0) == -1 && errno == ESRCH) &&
		    st.st_mtime + MB_TMP_STALE >= time(NULL))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_warnx("mbox %s: removed %s, left by an update that "
			    "did not finish", mb->dir, de->d_name);
	}
	closedir(d);
}
