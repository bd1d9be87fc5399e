/*
 * store_maildir: the Maildir driver (see store.h).
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
 * new/ to cur/ or renamed with new flags under us. msg_open() and commit()
 * follow such moves by the message's unique part.
 *
 * Size: the wire size (wire.h). A ",W=<n>" in the unique part (Dovecot,
 * Courier) is that size already; otherwise the file is read once and the
 * size kept in the Maildir's size cache (maildir_sizecache.h) for the
 * next logins.
 *
 * UIDL: the unique part of the name (up to the ':' that starts the info),
 * which survives the move to cur/ and flag changes. One that is not a
 * valid unique-id (RFC 1939 section 7: 1..70 chars in 0x21..0x7E) is
 * replaced by the hex MD5 of it; duplicates get a deterministic suffix.
 *
 * Threads: open() and commit() run on worker threads, everything else on
 * the event loop; each maildrop is used by one thread at a time. The one
 * shared state is the directory descriptor cache (md_dirfd_get()), under
 * its mutex.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "maildir_sizecache.h"
#include "sesslock.h"
#include "store.h"
#include "store_maildir.h"
#include "wire.h"

#define MD_READ_SIZE	(64 * 1024)	/* read size when counting octets */
#define MD_ARENA_MIN	512		/* first name arena block */
#define MD_ARENA_MAX	(64 * 1024)	/* arena blocks double up to this */
#define MD_MSGS_INIT	64

enum { MD_NEW = 0, MD_CUR = 1 };
static const char *const md_subdir[] = { "new", "cur" };

struct md_msg {
	uint64_t	 size;		/* wire size */
	const char	*name;		/* unique part NUL [info NUL] */
	const char	*uidl;		/* name, or a string of its own */
	unsigned	 in_cur:1;	/* cur/ (else new/) */
	unsigned	 has_info:1;	/* name had ":info" */
	unsigned	 shared:1;	/* unique part not unique: moves are */
					/* followed for this one only on demand */
	unsigned	 missing:1;	/* commit: ENOENT on the first try */
};

/* Names live in blocks that never move, so pointers into them stay valid. */
struct md_blk {
	struct md_blk	*next;
	size_t		 used, size;
	char		 data[];
};

struct md {
	struct maildrop	 base;
	char		*path;		/* Maildir root */
	unsigned	 locked:1;	/* we hold <root>/evpop3d.lock */
	struct md_msg	*msgs;
	size_t		 nmsgs, msgs_cap;
	struct md_blk	*arena;
	/* The last md_relocate() pass: cur/'s mtime before it, and when. */
	struct timespec	 reloc_mtime, reloc_start;
	unsigned	 reloc_valid:1;
};

struct md_reader {
	struct store_reader	 base;
	int			 fd;
	int			 eof;	/* a short read: the file ends there */
};

static int	md_path(const struct md *, char *, size_t, const char *,
		    const char *);
static void	md_dirfd_drop(const struct md *);

static void
md_free(struct md *md)
{
	struct md_blk	*b;
	char		 buf[PATH_MAX];

	if (md == NULL)
		return;
	md_dirfd_drop(md);
	if (md->locked && md_path(md, buf, sizeof(buf),
	    STORE_MAILDIR_LOCKFILE, NULL) == 0)
		(void)sesslock_release(buf);	/* stays held until exit */
	while ((b = md->arena) != NULL) {
		md->arena = b->next;
		free(b);
	}
	free(md->msgs);
	free(md->path);
	free(md);
}

/*
 * Copy a (alen bytes) and, if b != NULL, b (blen bytes) into the arena as
 * "a\0b\0". Returns the copy of a, NULL if out of memory.
 */
static char *
md_arena_add(struct md *md, const char *a, size_t alen, const char *b,
    size_t blen)
{
	struct md_blk	*blk = md->arena;
	size_t		 need, size;
	char		*s;

	need = alen + 1 + (b != NULL ? blen + 1 : 0);
	if (blk == NULL || blk->size - blk->used < need) {
		/* Small maildrops stay small; big ones waste little. */
		size = blk == NULL ? MD_ARENA_MIN : blk->size * 2;
		if (size > MD_ARENA_MAX)
			size = MD_ARENA_MAX;
		if (size < need)
			size = need;
		if ((blk = malloc(sizeof(*blk) + size)) == NULL)
			return NULL;
		blk->used = 0;
		blk->size = size;
		blk->next = md->arena;
		md->arena = blk;
	}
	s = blk->data + blk->used;
	memcpy(s, a, alen);
	s[alen] = '\0';
	if (b != NULL) {
		memcpy(s + alen + 1, b, blen);
		s[alen + 1 + blen] = '\0';
	}
	blk->used += need;
	return s;
}

/* "<root>/<sub>[/<name>]" into buf; -1 if it does not fit. */
static int
md_path(const struct md *md, char *buf, size_t len, const char *sub,
    const char *name)
{
	int	 n;

	if (name != NULL)
		n = snprintf(buf, len, "%s/%s/%s", md->path, sub, name);
	else
		n = snprintf(buf, len, "%s/%s", md->path, sub);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* The file name of m as it was last seen ("unique[:info]"). */
static void
md_msg_name(const struct md_msg *m, char *buf, size_t len)
{
	if (m->has_info)
		snprintf(buf, len, "%s:%s", m->name, m->name + strlen(m->name) + 1);
	else
		snprintf(buf, len, "%s", m->name);
}

/* The full path of m; -1 if it does not fit. */
static int
md_msg_path(const struct md *md, const struct md_msg *m, char *buf,
    size_t len)
{
	char	 name[NAME_MAX + 2];

	md_msg_name(m, name, sizeof(name));
	return md_path(md, buf, len, md_subdir[m->in_cur], name);
}

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
md_lock(struct md *md, char *err, size_t errlen)
{
	char		 buf[PATH_MAX];
	enum store_err	 rv;

	if (md_path(md, buf, sizeof(buf), STORE_MAILDIR_LOCKFILE, NULL) == -1)
		return store_fail(errno, err, errlen, "maildir", md->path);
	if ((rv = sesslock_acquire(buf, err, errlen)) == STORE_OK)
		md->locked = 1;
	return rv;
}

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

	while ((p = memmem(p, (size_t)(end - p), ",W=", 3)) != NULL) {
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
		p++;
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
	int		 fd, saved;

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
	for (;;) {
		n = read(fd, buf, MD_READ_SIZE);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		wire_enc_feed(&e, buf, (size_t)n, NULL);
	}
	wire_enc_finish(&e, NULL);
	close(fd);
	*size_r = e.octets;
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Read one of new/ and cur/ into md->msgs. */
static enum store_err
md_scan_dir(struct md *md, int sub, struct sizecache *sc, char *buf,
    char *err, size_t errlen)
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
	size_t		 ulen, ncap;
	int		 dfd, r;
	enum store_err	 rv = STORE_OK;

	if (md_path(md, dpath, sizeof(dpath), md_subdir[sub], NULL) == -1)
		return store_fail(errno, err, errlen, "maildir", md->path);
	dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
		return store_fail(errno, err, errlen, "open", dpath);

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
		if (md_parse_w(name, ulen, &size) == -1 && (sc == NULL ||
		    sizecache_get(sc, name, ulen, &size) == -1)) {
			if ((r = md_count(dfd, name, buf, &size)) == 1)
				continue;	/* vanished since readdir */
			if (r == -1) {
				rv = store_fail(errno, err, errlen, "read", name);
				goto done;
			}
			if (sc != NULL)
				(void)sizecache_put(sc, name, ulen, size);
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
		m->name = md_arena_add(md, name, ulen, colon != NULL ?
		    colon + 1 : NULL, colon != NULL ? strlen(colon + 1) : 0);
		if (m->name == NULL) {
			rv = store_fail(ENOMEM, err, errlen, "scan", dpath);
			goto done;
		}
		md->nmsgs++;
	}
done:
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
 * Open-addressing table of message indexes + 1 (0 = empty), keyed by each
 * message's uidl or unique part.
 */
struct md_tab {
	uint32_t		*slot;
	size_t			 mask;
	const struct md_msg	*msgs;
	int			 by_uidl;
};

static int
md_tab_init(struct md_tab *t, const struct md_msg *msgs, size_t n,
    int by_uidl)
{
	size_t	 cap = 16;

	if (n >= UINT32_MAX / 2) {
		errno = EFBIG;
		return -1;
	}
	while (cap < 2 * n)
		cap <<= 1;
	if ((t->slot = calloc(cap, sizeof(*t->slot))) == NULL)
		return -1;
	t->mask = cap - 1;
	t->msgs = msgs;
	t->by_uidl = by_uidl;
	return 0;
}

/* The slot holding key s (len bytes), or the empty slot where it goes. */
static size_t
md_tab_find(const struct md_tab *t, const char *s, size_t len)
{
	const char	*k;
	uint64_t	 h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	size_t		 i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	for (i = (size_t)h & t->mask; t->slot[i] != 0; i = (i + 1) & t->mask) {
		k = t->by_uidl ? t->msgs[t->slot[i] - 1].uidl :
		    t->msgs[t->slot[i] - 1].name;
		if (strncmp(k, s, len) == 0 && k[len] == '\0')
			break;
	}
	return i;
}

/* RFC 1939 section 7: 1..70 characters in 0x21..0x7E. */
static int
md_uidl_valid(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > POP3_UIDL_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/*
 * Give every message its UIDL, and make them unique: the first message
 * (in session order) keeps its id, later ones get "-2", "-3", ... (the
 * base cut so the result stays within 70 characters), skipping any id
 * already taken. Messages involved in a collision are marked shared.
 */
static enum store_err
md_make_uidls(struct md *md, char *err, size_t errlen)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 dig[EVP_MAX_MD_SIZE];
	unsigned int		 dlen, j;
	char			 cand[POP3_UIDL_MAX + 1], suf[24];
	struct md_tab		 t;
	struct md_msg		*m;
	size_t			 i, k, len, blen, slen, s;

	for (i = 0; i < md->nmsgs; i++) {
		m = &md->msgs[i];
		len = strlen(m->name);
		if (md_uidl_valid(m->name, len)) {
			m->uidl = m->name;
			continue;
		}
		if (EVP_Digest(m->name, len, dig, &dlen, EVP_md5(), NULL) != 1 ||
		    dlen * 2 >= sizeof(cand)) {
			snprintf(err, errlen, "maildir %s: MD5 unavailable",
			    md->path);
			return STORE_TEMP;
		}
		for (j = 0; j < dlen; j++) {
			cand[2 * j] = hex[dig[j] >> 4];
			cand[2 * j + 1] = hex[dig[j] & 0xf];
		}
		if ((m->uidl = md_arena_add(md, cand, 2 * dlen, NULL, 0)) == NULL)
			return store_fail(ENOMEM, err, errlen, "maildir", md->path);
	}

	if (md_tab_init(&t, md->msgs, md->nmsgs, 1) == -1)
		return store_fail(errno, err, errlen, "maildir", md->path);
	for (i = 0; i < md->nmsgs; i++) {
		m = &md->msgs[i];
		s = md_tab_find(&t, m->uidl, strlen(m->uidl));
		if (t.slot[s] == 0)
			t.slot[s] = (uint32_t)(i + 1);
		else
			m->shared = md->msgs[t.slot[s] - 1].shared = 1;
	}
	for (i = 0; i < md->nmsgs; i++) {
		m = &md->msgs[i];
		if (!m->shared)
			continue;
		s = md_tab_find(&t, m->uidl, strlen(m->uidl));
		if (t.slot[s] == i + 1)
			continue;		/* the first one keeps its id */
		len = strlen(m->uidl);
		for (k = 2;; k++) {
			slen = (size_t)snprintf(suf, sizeof(suf), "-%zu", k);
			blen = len < POP3_UIDL_MAX - slen ? len :
			    POP3_UIDL_MAX - slen;
			memcpy(cand, m->uidl, blen);
			memcpy(cand + blen, suf, slen + 1);
			s = md_tab_find(&t, cand, blen + slen);
			if (t.slot[s] == 0)
				break;
		}
		if ((m->uidl = md_arena_add(md, cand, blen + slen, NULL, 0)) ==
		    NULL) {
			free(t.slot);
			return store_fail(ENOMEM, err, errlen, "maildir", md->path);
		}
		t.slot[s] = (uint32_t)(i + 1);
	}
	free(t.slot);
	return STORE_OK;
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

static enum store_err
md_scan(struct md *md, char *err, size_t errlen)
{
	struct sizecache *sc;
	enum store_err	 rv;
	char		*buf;

	if ((buf = malloc(MD_READ_SIZE)) == NULL)
		return store_fail(errno, err, errlen, "maildir", md->path);
	sc = sizecache_load(md->path);	/* NULL: no memory, no cache */
	if ((rv = md_scan_dir(md, MD_NEW, sc, buf, err, errlen)) == STORE_OK)
		rv = md_scan_dir(md, MD_CUR, sc, buf, err, errlen);
	free(buf);
	if (rv == STORE_OK && sc != NULL)
		(void)sizecache_save(sc, md->path);	/* best effort */
	sizecache_free(sc);
	if (rv != STORE_OK)
		return rv;
	/* The sorted copy is exact: no slack from the doubling. */
	if (md->nmsgs > 0 && md_sort(md) == -1)
		return store_fail(errno, err, errlen, "scan", md->path);
	return md_make_uidls(md, err, errlen);
}

static enum store_err
md_open(const struct store_params *p, struct maildrop **md_r, char *err,
    size_t errlen)
{
	const char	*path = p->path;
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
	if ((md = calloc(1, sizeof(*md))) == NULL)
		return store_fail(errno, err, errlen, "maildir", path);
	md->base.ops = &store_maildir_ops;
	if ((md->path = strdup(path)) == NULL) {
		rv = store_fail(errno, err, errlen, "maildir", path);
		goto fail;
	}
	/*
	 * Lock, then scan. A user with no mail yet may have no Maildir: only
	 * when one of those steps fails is it created (mkdir -p of the root,
	 * cur/, new/, tmp/) and the step retried, so a login into an existing
	 * Maildir costs no mkdir calls.
	 */
	if ((rv = md_lock(md, err, errlen)) != STORE_OK) {
		if (rv == STORE_INUSE ||
		    (rv = md_create(md, err, errlen)) != STORE_OK ||
		    (rv = md_lock(md, err, errlen)) != STORE_OK)
			goto fail;
		created = 1;
	}
	if ((rv = md_scan(md, err, errlen)) != STORE_OK) {
		if (created || (rv = md_create(md, err, errlen)) != STORE_OK)
			goto fail;
		md->nmsgs = 0;
		if ((rv = md_scan(md, err, errlen)) != STORE_OK)
			goto fail;
	}
	*md_r = &md->base;
	return STORE_OK;
fail:
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

static const char *
md_uidl(const struct maildrop *base, size_t i)
{
	const struct md	*md = (const struct md *)base;

	return i < md->nmsgs ? md->msgs[i].uidl : NULL;
}

/* Is m recorded at cur/name (whose unique part is ulen bytes)? */
static int
md_is_at(const struct md_msg *m, const char *name, size_t ulen)
{
	const char	*info = name[ulen] == ':' ? name + ulen + 1 : NULL;

	return m->in_cur && strncmp(m->name, name, ulen) == 0 &&
	    m->name[ulen] == '\0' && (info != NULL) == m->has_info &&
	    (info == NULL || strcmp(info, m->name + ulen + 1) == 0);
}

/*
 * Is cur/name the recorded file of another message with the same unique
 * part as msgs[i]? Such messages are next to each other in session order.
 */
static int
md_claimed(const struct md *md, size_t i, const char *name, size_t ulen)
{
	const char	*u = md->msgs[i].name;
	size_t		 j;

	for (j = i; j-- > 0 && strcmp(md->msgs[j].name, u) == 0;)
		if (md_is_at(&md->msgs[j], name, ulen))
			return 1;
	for (j = i + 1; j < md->nmsgs && strcmp(md->msgs[j].name, u) == 0; j++)
		if (md_is_at(&md->msgs[j], name, ulen))
			return 1;
	return 0;
}

/* Point m at cur/name. Returns 1 if that changed anything, -1 on ENOMEM. */
static int
md_move_to(struct md *md, struct md_msg *m, const char *name, size_t ulen)
{
	const char	*info = name[ulen] == ':' ? name + ulen + 1 : NULL;
	const char	*s;

	if (md_is_at(m, name, ulen))
		return 0;
	s = md_arena_add(md, name, ulen, info, info != NULL ? strlen(info) : 0);
	if (s == NULL)
		return -1;
	m->name = s;
	m->in_cur = 1;
	m->has_info = info != NULL;
	return 1;
}

/*
 * Follow messages that another program moved from new/ to cur/ or renamed
 * with new flags: one readdir of cur/ updates every message whose unique
 * part shows up under another name. A shared unique part (a broken
 * delivery) is ambiguous, so such messages move only when one is the
 * target, to the first file with its unique part that is not another
 * copy's recorded file (never to a sibling's). target is a message
 * index or SIZE_MAX. The pass is skipped when cur/ cannot have changed
 * since the last one.
 * Returns 1 if the target moved, 0 if not, -1 on error (errno set).
 */
static int
md_relocate(struct md *md, size_t target)
{
	struct timespec	 now;
	struct stat	 st;
	struct md_tab	 t;
	struct md_msg	*m, *tm = NULL;
	struct dirent	*de;
	char		 dpath[PATH_MAX];
	const char	*name;
	size_t		 i, s, ulen;
	DIR		*dir;
	int		 moved = 0, r, saved;

	if (target != SIZE_MAX && target < md->nmsgs && md->msgs[target].shared)
		tm = &md->msgs[target];
	if (md_path(md, dpath, sizeof(dpath), md_subdir[MD_CUR], NULL) == -1)
		return -1;
	if (clock_gettime(CLOCK_REALTIME, &now) == -1 ||
	    stat(dpath, &st) == -1)
		return -1;
	/*
	 * Any rename into or within cur/ after the last pass started would
	 * have set its mtime to that time or later (give or take a
	 * timestamp tick, hence the second of slack).
	 */
	if (tm == NULL && md->reloc_valid &&
	    st.st_mtim.tv_sec == md->reloc_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == md->reloc_mtime.tv_nsec &&
	    md->reloc_mtime.tv_sec < md->reloc_start.tv_sec - 1)
		return 0;

	if (md_tab_init(&t, md->msgs, md->nmsgs, 0) == -1)
		return -1;
	for (i = 0; i < md->nmsgs; i++) {
		if (md->msgs[i].shared)
			continue;
		s = md_tab_find(&t, md->msgs[i].name, strlen(md->msgs[i].name));
		t.slot[s] = (uint32_t)(i + 1);
	}
	if ((dir = opendir(dpath)) == NULL) {
		saved = errno;
		free(t.slot);
		errno = saved;
		return -1;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(dir)) == NULL) {
			if (errno != 0)
				goto fail;
			break;
		}
		name = de->d_name;
		if (name[0] == '.' || (de->d_type != DT_REG &&
		    de->d_type != DT_UNKNOWN && de->d_type != DT_LNK))
			continue;
		ulen = strcspn(name, ":");
		if (tm != NULL && strncmp(tm->name, name, ulen) == 0 &&
		    tm->name[ulen] == '\0' &&
		    !md_claimed(md, target, name, ulen)) {
			if ((r = md_move_to(md, tm, name, ulen)) == -1)
				goto nomem;
			moved |= r;
			tm = NULL;	/* the first free match wins */
			continue;
		}
		/* Shared unique parts are not in the table. */
		s = md_tab_find(&t, name, ulen);
		if (t.slot[s] == 0)
			continue;
		m = &md->msgs[t.slot[s] - 1];
		if ((r = md_move_to(md, m, name, ulen)) == -1)
			goto nomem;
		if (r == 1 && (size_t)(m - md->msgs) == target)
			moved = 1;
	}
	closedir(dir);
	free(t.slot);
	md->reloc_mtime = st.st_mtim;
	md->reloc_start = now;
	md->reloc_valid = 1;
	return moved;
nomem:
	errno = ENOMEM;
fail:
	saved = errno;
	closedir(dir);
	free(t.slot);
	errno = saved;
	return -1;
}

/*
 * Directory descriptors of the maildrops being read. RETR opens a message
 * relative to cur/ or new/ instead of walking its whole path again (the
 * walk was a tenth of a full download's CPU). A small cache shared by all
 * sessions, not a descriptor per session: an idle session must cost one
 * descriptor. Lookups and evictions happen on the event loop (msg_open);
 * md_free() drops a maildrop's entries from whichever thread frees it, so
 * a descriptor is only ever closed by its own maildrop's owner or by the
 * loop itself.
 */
#define MD_DIRFD_CACHE	32

static struct md_dirfd {
	const struct md	*md;		/* NULL: free slot */
	int		 sub;
	int		 fd;
	uint64_t	 used;		/* LRU clock */
} md_dirfds[MD_DIRFD_CACHE];
static pthread_mutex_t	 md_dirfd_mtx = PTHREAD_MUTEX_INITIALIZER;
static uint64_t		 md_dirfd_clock;

/* The cached descriptor of md's sub directory, opened if needed; -1. */
static int
md_dirfd_get(const struct md *md, int sub)
{
	struct md_dirfd	*e, *victim = &md_dirfds[0];
	char		 path[PATH_MAX];
	int		 fd;
	size_t		 i;

	pthread_mutex_lock(&md_dirfd_mtx);
	for (i = 0; i < MD_DIRFD_CACHE; i++) {
		e = &md_dirfds[i];
		if (e->md == md && e->sub == sub) {
			e->used = ++md_dirfd_clock;
			pthread_mutex_unlock(&md_dirfd_mtx);
			return e->fd;
		}
		if (e->md == NULL || (victim->md != NULL &&
		    e->used < victim->used))
			victim = e;
	}
	pthread_mutex_unlock(&md_dirfd_mtx);

	if (md_path(md, path, sizeof(path), md_subdir[sub], NULL) == -1 ||
	    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	pthread_mutex_lock(&md_dirfd_mtx);
	if (victim->md != NULL)
		close(victim->fd);
	victim->md = md;
	victim->sub = sub;
	victim->fd = fd;
	victim->used = ++md_dirfd_clock;
	pthread_mutex_unlock(&md_dirfd_mtx);
	return fd;
}

static void
md_dirfd_drop(const struct md *md)
{
	size_t	 i;

	pthread_mutex_lock(&md_dirfd_mtx);
	for (i = 0; i < MD_DIRFD_CACHE; i++)
		if (md_dirfds[i].md == md) {
			close(md_dirfds[i].fd);
			md_dirfds[i].md = NULL;
		}
	pthread_mutex_unlock(&md_dirfd_mtx);
}

static int
md_open_file(const struct md *md, const struct md_msg *m)
{
	char	 name[NAME_MAX + 2];
	int	 dfd;

	if ((dfd = md_dirfd_get(md, m->in_cur ? MD_CUR : MD_NEW)) == -1)
		return -1;
	md_msg_name(m, name, sizeof(name));
	return openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

static enum store_err
md_msg_open(struct maildrop *base, size_t i, struct store_reader **r_r)
{
	struct md		*md = (struct md *)base;
	struct md_reader	*r;
	int			 fd, moved;

	*r_r = NULL;
	if (i >= md->nmsgs)
		return STORE_GONE;
	if ((fd = md_open_file(md, &md->msgs[i])) == -1) {
		if (errno != ENOENT)
			return store_errno(errno);
		/* Moved to cur/ or renamed with new flags? */
		if ((moved = md_relocate(md, i)) == -1)
			return store_errno(errno);
		if (moved == 0)
			return STORE_GONE;
		if ((fd = md_open_file(md, &md->msgs[i])) == -1)
			return errno == ENOENT ? STORE_GONE : store_errno(errno);
	}
	if ((r = malloc(sizeof(*r))) == NULL) {
		close(fd);
		return STORE_TEMP;
	}
	r->base.ops = &store_maildir_ops;
	r->fd = fd;
	r->eof = 0;
	*r_r = &r->base;
	return STORE_OK;
}

static ssize_t
md_msg_read(struct store_reader *base, void *buf, size_t len)
{
	struct md_reader	*r = (struct md_reader *)base;
	ssize_t			 n;

	/*
	 * A delivered Maildir message never grows, so a short read is its
	 * end: saves the read() that would return 0, one per message.
	 */
	if (r->eof)
		return 0;
	do {
		n = read(r->fd, buf, len);
	} while (n == -1 && errno == EINTR);
	if (n >= 0 && (size_t)n < len)
		r->eof = 1;
	return n;
}

static void
md_msg_close(struct store_reader *base)
{
	struct md_reader	*r = (struct md_reader *)base;

	if (r == NULL)
		return;
	close(r->fd);
	free(r);
}

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
	int	 fd;

	if (md_path(md, path, sizeof(path), md_subdir[sub], NULL) == -1)
		return;
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	(void)fsync(fd);	/* best effort: the unlinks are done */
	close(fd);
}

/*
 * RFC 1939 section 6. A message that is gone from where it was seen is
 * looked for under its unique part in cur/ (one pass for all of them);
 * one that is found nowhere was removed by someone else, which counts as
 * removed.
 */
static enum store_err
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
	if (dirs & (1U << MD_CUR))
		md_fsync_dir(md, MD_CUR);
	if (dirs & (1U << MD_NEW))
		md_fsync_dir(md, MD_NEW);
	md_free(md);			/* and unlock */
	if (failed_r != NULL)
		*failed_r = failed;
	return rv;
}

static void
md_close(struct maildrop *base)
{
	md_free((struct md *)base);
}

const struct store_ops store_maildir_ops = {
	.name =		"maildir",
	.open =		md_open,
	.count =	md_count_msgs,
	.size =		md_size,
	.uidl =		md_uidl,
	.msg_open =	md_msg_open,
	.msg_read =	md_msg_read,
	.msg_close =	md_msg_close,
	.commit =	md_commit,
	.close =	md_close,
};
