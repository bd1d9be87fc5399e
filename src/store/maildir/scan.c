/*
 * scan: the scan of new/ and cur/ at open(): one getdents64() pass
 * per directory, the wire sizes, and the session order.
 *
 * Size: the wire size (wire.h). A ",W=<n>" in the unique part (Dovecot,
 * Courier) is that size already; otherwise the file is read once and the
 * size kept in the Maildir's size cache (maildir_sizecache.h) for the
 * next logins.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/wire.h"
#include "store/maildir/maildir_int.h"
#include "store/maildir/maildir_sizecache.h"
#include "store/store.h"

#define MD_READ_SIZE	(64 * 1024)	/* read size when counting octets */
#define MD_MSGS_INIT	64

/*
 * Parse ",W=<digits>" in the unique part (ulen bytes of name), ended by ','
 * or the end of the unique part. Returns 0 and the size, -1 if absent.
 */
static int
md_parse_w(const char *name, size_t ulen, uint64_t *size_r)
{
	const char	*p = name, *end = name + ulen, *q;
	uint64_t	 v;
	unsigned	 d;

	/* memchr() for the commas: memmem() cost 340 instructions a name. */
	for (; (p = memchr(p, ',', (size_t)(end - p))) != NULL; p++) {
		if (end - p < 3 || p[1] != 'W' || p[2] != '=')
			continue;
		q = p + 3;
		v = 0;
		while (q < end && *q >= '0' && *q <= '9') {
			d = (unsigned)(*q - '0');
			if (v > (UINT64_MAX - d) / 10)
				break;
			v = v * 10 + d;
			q++;
		}
		if (q > p + 3 && (q == end || *q == ',')) {
			*size_r = v;
			return 0;
		}
	}
	return -1;
}

/*
 * Wire size of the file name in dfd, read in MD_READ_SIZE chunks into buf.
 * Returns 0, 1 if the file vanished or is not a regular file (skip it),
 * -1 on error with errno set.
 */
static int
md_count(int dfd, const char *name, char *buf, uint64_t *size_r)
{
	struct wire_enc	 e;
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	/* O_NONBLOCK: never hang on a FIFO swapped in after readdir. */
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT ? 1 : -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return 1;
	}
	wire_enc_init(&e, -1);
	while ((n = fio_read(fd, buf, MD_READ_SIZE)) > 0)
		wire_enc_feed(&e, buf, (size_t)n, NULL);
	if (n == -1)
		goto fail;
	wire_enc_finish(&e, NULL);
	close(fd);
	*size_r = e.octets;
	return 0;
fail:
	fio_close_keep_errno(fd);
	return -1;
}

/*
 * Where the sizes of messages whose names give none come from: the size
 * cache, else a count. Both are set up at the first such message, so that
 * a maildrop whose names all carry W= (Dovecot's, Courier's and ours)
 * costs no open of the cache file and no read buffer.
 */
struct md_sizes {
	struct sizecache	*sc;	/* NULL: no memory, no cache */
	char			*buf;	/* MD_READ_SIZE octets */
	bool			 ready;
	size_t			 max_msgs;	/* md_scan()'s */
	/*
	 * An entry without its type (DT_UNKNOWN) or a symbolic link: what
	 * it is can change without the directory changing, so the listing
	 * is not kept (listcache.c).
	 */
	bool			 untyped;
};

/*
 * The size of name (ulen octets before the info) in dfd: 0, 1 if it has
 * vanished since readdir, 2 if it would have to be read (md->nowait),
 * -1 with errno.
 */
static int
md_size_of(struct md *md, struct md_sizes *sz, int dfd, const char *name,
    size_t ulen, uint64_t *size_r)
{
	int	 r;

	if (!sz->ready) {
		sz->sc = sizecache_load(md->path);
		if ((sz->buf = malloc(MD_READ_SIZE)) == NULL)
			return -1;
		sz->ready = true;
	}
	if (sz->sc != NULL && sizecache_get(sz->sc, name, ulen, size_r) == 0)
		return 0;
	if (md->nowait)		/* a whole message read: a thread's */
		return 2;
	if ((r = md_count(dfd, name, sz->buf, size_r)) == 0 && sz->sc != NULL)
		(void)sizecache_put(sz->sc, name, ulen, *size_r);
	return r;
}

/*
 * Read one of new/ and cur/ into md->msgs; with md->lc_ok, its stamp
 * (listcache.c) from before the read into *stamp.
 */
static enum store_err
md_scan_dir(struct md *md, int sub, struct md_sizes *sz,
    struct md_lc_stamp *stamp, char *err, size_t errlen)
{
	char		 dpath[PATH_MAX];
	struct md_msg	*m;
	struct dirent64	*de = NULL;
	struct stat	 st;
	char		 dents[32 * 1024] __attribute__((aligned(8)));
	size_t		 off, len;
	ssize_t		 n;
	const char	*name, *colon;
	uint64_t	 size;
	size_t		 ulen, ncap, first = md->nmsgs;
	int		 dfd, r;
	enum store_err	 rv = STORE_OK;

	if (md_path(md, dpath, sizeof(dpath), md_subdir[sub], NULL) == -1)
		return store_fail(errno, err, errlen, "maildir", md->path);
	dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
		return store_fail(errno, err, errlen, "open", dpath);
	if (md->lc_ok) {
		if (fstat(dfd, &st) == -1) {
			rv = store_fail(errno, err, errlen, "stat", dpath);
			goto done;
		}
		md_lc_stamp(&st, stamp);
	}

	/*
	 * getdents64() straight into a stack buffer: opendir() would add an
	 * fstat, two fcntls and a 32 KiB allocation to every login.
	 */
	for (off = len = 0;; off += de->d_reclen) {
		if (off >= len) {
			if ((n = getdents64(dfd, dents, sizeof(dents))) == -1) {
				rv = store_fail(errno, err, errlen, "readdir",
				    dpath);
				break;
			}
			if (n == 0)
				break;
			len = (size_t)n;
			off = 0;
		}
		de = (struct dirent64 *)(void *)(dents + off);
		name = de->d_name;
		if (name[0] == '.')
			continue;
		switch (de->d_type) {
		case DT_REG:
			break;
		case DT_UNKNOWN:
		case DT_LNK:
			sz->untyped = true;
			if (fstatat(dfd, name, &st, 0) == -1) {
				if (errno == ENOENT)	/* gone, or dangling */
					continue;
				rv = store_fail(errno, err, errlen, "stat", name);
				goto done;
			}
			if (!S_ISREG(st.st_mode))
				continue;
			break;
		default:
			continue;
		}

		colon = strchr(name, ':');
		ulen = colon != NULL ? (size_t)(colon - name) : strlen(name);
		if (md_parse_w(name, ulen, &size) == -1 &&
		    (r = md_size_of(md, sz, dfd, name, ulen, &size)) != 0) {
			if (r == 1)
				continue;	/* vanished since readdir */
			if (r == 2) {
				rv = STORE_AGAIN;
				goto done;
			}
			rv = store_fail(errno, err, errlen, "read", name);
			goto done;
		}

		if (md->nowait && sz->max_msgs > 0 &&
		    md->nmsgs >= sz->max_msgs) {
			rv = STORE_AGAIN;	/* grew: a thread's to list */
			goto done;
		}
		if (md->nmsgs == md->msgs_cap) {
			ncap = md->msgs_cap == 0 ? MD_MSGS_INIT : md->msgs_cap * 2;
			m = reallocarray(md->msgs, ncap, sizeof(*m));
			if (m == NULL) {
				rv = store_fail(errno, err, errlen, "scan", dpath);
				goto done;
			}
			md->msgs = m;
			md->msgs_cap = ncap;
		}
		m = &md->msgs[md->nmsgs];
		memset(m, 0, sizeof(*m));
		m->size = size;
		m->in_cur = sub == MD_CUR;
		m->has_info = colon != NULL;
		m->name = arena_add(&md->arena, name, ulen, colon != NULL ?
		    colon + 1 : NULL, colon != NULL ? strlen(colon + 1) : 0);
		if (m->name == NULL) {
			rv = store_fail(ENOMEM, err, errlen, "scan", dpath);
			goto done;
		}
		md->nmsgs++;
	}
done:
	/* Kept for RETR when the directory has mail (md.c). */
	if (rv == STORE_OK && md->nmsgs > first)
		md_dirfd_offer(md, sub, dfd);
	else
		close(dfd);
	return rv;
}

/* The delivery time that starts a Maildir name; 0 if there is none. */
static uint64_t
md_stamp(const char *s)
{
	uint64_t	 v = 0;
	unsigned	 d;

	for (; *s >= '0' && *s <= '9'; s++) {
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return UINT64_MAX;
		v = v * 10 + d;
	}
	return v;
}

/*
 * Session order: delivery time, then the unique part (strcmp), so a flag
 * change or a move to cur/ does not reorder; then new/ before cur/ and the
 * info, which only matter for duplicates.
 */
struct md_key {
	uint64_t		 stamp;		/* md_stamp(m->name), once */
	const struct md_msg	*m;
};

static int
md_key_cmp(const void *a, const void *b)
{
	const struct md_key	*ka = a, *kb = b;
	const struct md_msg	*ma = ka->m, *mb = kb->m;
	int			 c;

	if (ka->stamp != kb->stamp)
		return ka->stamp < kb->stamp ? -1 : 1;
	if ((c = strcmp(ma->name, mb->name)) != 0)
		return c;
	if (ma->in_cur != mb->in_cur)
		return ma->in_cur ? 1 : -1;
	if (ma->has_info != mb->has_info)
		return ma->has_info ? 1 : -1;
	if (!ma->has_info)
		return 0;
	return strcmp(ma->name + strlen(ma->name) + 1,
	    mb->name + strlen(mb->name) + 1);
}

/*
 * Put the messages in session order. The delivery time is parsed once per
 * message into a key array, not twice per comparison (a 100,000-message
 * Maildir makes about 1.7 million comparisons).
 */
static int
md_sort(struct md *md)
{
	struct md_key	*keys;
	struct md_msg	*sorted;
	size_t		 i, n = md->nmsgs;

	if ((keys = reallocarray(NULL, n, sizeof(*keys))) == NULL)
		return -1;
	if ((sorted = reallocarray(NULL, n, sizeof(*sorted))) == NULL) {
		free(keys);
		return -1;
	}
	for (i = 0; i < n; i++) {
		keys[i].stamp = md_stamp(md->msgs[i].name);
		keys[i].m = &md->msgs[i];
	}
	qsort(keys, n, sizeof(*keys), md_key_cmp);
	for (i = 0; i < n; i++)
		sorted[i] = *keys[i].m;
	free(keys);
	free(md->msgs);
	md->msgs = sorted;
	md->msgs_cap = n;
	return 0;
}

/*
 * max_msgs: with md->nowait, STORE_AGAIN once the listing passes it (a
 * Maildir that grew since the last login is a thread's to list).
 */
enum store_err
md_scan(struct md *md, size_t max_msgs, char *err, size_t errlen)
{
	struct md_sizes		 sz = { .sc = NULL, .max_msgs = max_msgs };
	struct md_lc_stamp	 stamp[2];
	struct timespec		 now = { 0, 0 };
	enum store_err		 rv;

	if (md->lc_ok) {
		switch (md_lc_get(md, max_msgs)) {
		case MD_LC_HIT:
			return md->lc_plain ? STORE_OK :
			    md_make_uidls(md, err, errlen);
		case MD_LC_AGAIN:
			return STORE_AGAIN;
		case MD_LC_MISS:
			break;
		}
		clock_gettime(CLOCK_REALTIME, &now);
	}
	if ((rv = md_scan_dir(md, MD_NEW, &sz, &stamp[MD_NEW], err,
	    errlen)) == STORE_OK)
		rv = md_scan_dir(md, MD_CUR, &sz, &stamp[MD_CUR], err, errlen);
	free(sz.buf);
	/*
	 * Not loaded: every name had its size, so the cache would hold
	 * nothing. A file left from names that had none goes stale, read
	 * again (and rewritten without its unused entries) at the next
	 * name without a size.
	 */
	if (rv == STORE_OK && sz.sc != NULL && !md->nowait)
		(void)sizecache_save(sz.sc, md->path);	/* best effort */
	sizecache_free(sz.sc);
	if (rv != STORE_OK)
		return rv;
	/* The sorted copy is exact: no slack from the doubling. */
	if (md->nmsgs > 0 && md_sort(md) == -1)
		return store_fail(errno, err, errlen, "scan", md->path);
	if (md->lc_ok && !sz.untyped && md_lc_settled(&stamp[MD_NEW], &now) &&
	    md_lc_settled(&stamp[MD_CUR], &now)) {
		md->lc_stamp = md_lc_stamps(stamp);
		md->lc_keep = 1;	/* for the cache: md_lc_keep() */
	}
	return md_make_uidls(md, err, errlen);
}
