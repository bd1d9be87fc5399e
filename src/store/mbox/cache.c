/*
 * cache: the index cache, so that open() scans only the mail
 * delivered since the last login.
 *
 * Index cache. Spools mostly grow by appends, so open() keeps the index
 * in DIR/.NAME.evpop3d-index (ours, mode 0600; written after the MDA
 * locks are released, through a DIR/.NAME.evpop3d-tmp.PID.N file renamed
 * into place, without fsync; best effort: a failure is logged at debug).
 * It holds, in native byte order with a version and a checksum of the
 * whole file at its end: the mbox's st_dev and st_ino, the cached end,
 * checksums of the first and of the last 64 KiB before that end, the
 * X-IMAPbase state, and every entry but the last (all of what the scan
 * computes but the UIDL). The cached end is thus the last message's
 * separator: the next scan starts at a separator line and parses the last
 * message again, however it ended. Under the read lock, a cache that
 * parses cleanly, names this file, is not past its size and whose two
 * samples match the file is loaded, and only [cached end, EOF) is
 * scanned; without a separator line there, or for anything else, the
 * whole file is (and the cache rewritten). UIDLs are made after, over all
 * entries, as without a cache. A same-size rewrite in the unsampled
 * middle goes unseen at open, but never serves or loses wrong mail:
 * msg_open() checks the separator line and msg_read()/commit() each
 * entry's checksum. When they find a change (STORE_GONE, a read error,
 * "changed"), and after a commit (a new file), the cache is removed, so
 * the next login parses the file whole.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "store/mbox/mbox_int.h"
#include "store/mbox/mbox_test.h"
#include "store/store.h"

/*
 * The index cache DIR/.NAME.evpop3d-index (see the top of the file): a
 * header, the entries before the last message, a checksum of it all.
 * Native byte order (a marker says which); every field is checked on
 * load, and anything odd means a full scan.
 */
#define MB_IX_MAGIC	"evp3mbix"	/* 8 bytes, then the version */
#define MB_IX_VERSION	1
#define MB_IX_ORDER	0x01020304u	/* native byte order only */
#define MB_IX_SAMPLE	(64 * 1024)	/* bytes checked at each end */
#define MB_IX_MAX	(1024u * 1024 * 1024)	/* larger: not ours */
#define MB_IX_MD5	32		/* hex digits of an MD5 */

#define MB_IXF_XUID	0x01
#define MB_IXF_HIDDEN	0x02
#define MB_IXF_NOEOL	0x04

/* The fixed part of a cached entry; the X-UIDL (xlen bytes) follows. */
#define MB_IX_ENTRY	(4 * 8 + 3 * 4 + 2 + MB_IX_MD5)
#define MB_IX_HEADER	(8 + 2 * 4 + 5 * 8 + 2 * 4 + 8)

static atomic_ulong	 mb_ix_loads;

unsigned long
store_mbox_ix_loads(void)
{
	return atomic_load(&mb_ix_loads);
}

/* A growable buffer for the cache being written; err: out of memory. */
struct mb_ixbuf {
	char		*p;
	size_t		 len, cap;
	int		 err;
};

static void
mb_ix_put(struct mb_ixbuf *b, const void *p, size_t n)
{
	size_t	 ncap;
	char	*q;

	if (b->err || n == 0)
		return;
	if (b->cap - b->len < n) {
		for (ncap = b->cap ? b->cap : 64 * 1024; ncap - b->len < n;)
			ncap *= 2;
		if ((q = realloc(b->p, ncap)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = q;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
mb_ix_put64(struct mb_ixbuf *b, uint64_t v)
{
	mb_ix_put(b, &v, sizeof(v));
}

static void
mb_ix_put32(struct mb_ixbuf *b, uint32_t v)
{
	mb_ix_put(b, &v, sizeof(v));
}

/* A cursor over the cache being read; bad once it ran past the end. */
struct mb_ixrd {
	const char	*p;
	size_t		 len, pos;
	int		 bad;
};

static const char *
mb_ix_get(struct mb_ixrd *r, size_t n)
{
	const char	*p;

	if (r->bad || r->len - r->pos < n) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->pos;
	r->pos += n;
	return p;
}

static uint64_t
mb_ix_get64(struct mb_ixrd *r)
{
	const char	*p = mb_ix_get(r, 8);
	uint64_t	 v = 0;

	if (p != NULL)
		memcpy(&v, p, 8);
	return v;
}

static uint32_t
mb_ix_get32(struct mb_ixrd *r)
{
	const char	*p = mb_ix_get(r, 4);
	uint32_t	 v = 0;

	if (p != NULL)
		memcpy(&v, p, 4);
	return v;
}

/*
 * The checksums of the mbox (fd) at both ends of [0, end): the first
 * and the last MB_IX_SAMPLE bytes (the same ones if end is smaller).
 * 0, or -1 if they cannot be read.
 */
static int
mb_ix_sample(int fd, uint64_t end, uint64_t *head_r, uint64_t *tail_r)
{
	size_t		 n;
	char		*buf;

	n = end < MB_IX_SAMPLE ? (size_t)end : MB_IX_SAMPLE;
	/* calloc: gcc -O2 cannot tell that mb_pread() fills the buffer. */
	if ((buf = calloc(1, n)) == NULL)
		return -1;
	if (mb_pread(fd, buf, n, 0) == -1)
		goto fail;
	*head_r = mbox_hash_buf(buf, n);
	if (n == end)				/* one sample covers it all */
		*tail_r = *head_r;
	else if (mb_pread(fd, buf, n, end - n) == -1)
		goto fail;
	else
		*tail_r = mbox_hash_buf(buf, n);
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

/* Forget the cache: it named mail that is not there any more. */
void
mb_ix_drop(struct mb *mb)
{
	if (unlink(mb->ixpath) == -1 && errno != ENOENT)
		log_debug("mbox %s: removal: %s", mb->ixpath, strerror(errno));
}

static bool
mb_ix_hex(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* Parse the entries of the cache (r after the header) into mb->msgs. */
static int
mb_ix_entries(struct mb *mb, struct mb_ixrd *r, uint64_t n, uint64_t end)
{
	struct mb_msg	*m;
	const char	*md5, *x;
	uint64_t	 i, prev;
	unsigned	 flags, xlen;

	if ((mb->msgs = reallocarray(NULL, (size_t)n, sizeof(*m))) == NULL)
		return -1;
	mb->msgs_cap = (size_t)n;
	for (i = 0; i < n; i++) {
		m = &mb->msgs[i];
		memset(m, 0, sizeof(*m));
		m->from_off = mb_ix_get64(r);
		m->end_off = mb_ix_get64(r);
		m->size = mb_ix_get64(r);
		m->hash = mb_ix_get64(r);
		m->from_len = mb_ix_get32(r);
		m->from_hash = mb_ix_get32(r);
		m->xuid = mb_ix_get32(r);
		x = mb_ix_get(r, 2);
		md5 = mb_ix_get(r, MB_IX_MD5);
		if (x == NULL || md5 == NULL)
			return -1;
		flags = (unsigned char)x[0];
		xlen = (unsigned char)x[1];
		if ((x = mb_ix_get(r, xlen)) == NULL)
			return -1;
		/*
		 * Entries tile [0, end): each runs up to the next separator,
		 * a dropped terminator (0..2 bytes) after its message.
		 */
		prev = i == 0 ? 0 : mb->msgs[i - 1].end_off;
		if ((i == 0 && m->from_off != 0) || m->from_off < prev ||
		    m->from_off - prev > 2)
			return -1;
		if (m->from_len == 0 || m->from_len > MBOX_FROM_MAX ||
		    m->end_off < m->from_off + m->from_len ||
		    (i + 1 == n && (m->end_off > end || end - m->end_off > 2)))
			return -1;
		if ((flags & ~(unsigned)(MB_IXF_XUID | MB_IXF_HIDDEN |
		    MB_IXF_NOEOL)) != 0 || ((flags & MB_IXF_HIDDEN) && i > 0))
			return -1;
		if ((xlen > 0 && !pop3_uidl_valid(x, xlen)) ||
		    !mb_ix_hex(md5, MB_IX_MD5))
			return -1;
		m->has_xuid = (flags & MB_IXF_XUID) != 0;
		m->hidden = (flags & MB_IXF_HIDDEN) != 0;
		m->no_eol = (flags & MB_IXF_NOEOL) != 0;
		if ((m->md5 = arena_strndup(&mb->arena, md5, MB_IX_MD5)) ==
		    NULL || (xlen > 0 && (m->xuidl = arena_strndup(&mb->arena,
		    x, xlen)) == NULL))
			return -1;
		mb->nmsgs++;
	}
	return 0;
}

/*
 * Load the cache if it is one of this mbox (fd, st; under the MDA read
 * lock) as it is now: same file, not shorter, the same bytes at both ends
 * of the cached part. Returns true with mb->msgs, mb->ix_end set (the
 * scan goes on from there); false: nothing loaded.
 */
bool
mb_ix_load(struct mb *mb, int fd, const struct stat *st)
{
	struct mb_ixrd	 r;
	struct stat	 ist;
	uint64_t	 head, tail, h0, t0, n, sum, end;
	const char	*magic;
	char		*text;
	size_t		 len;

	/* Ours only: a file another user put there could hide mail. */
	if (fio_read_small(mb->ixpath, O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
	    MB_IX_MAX, FIO_OWNED, &ist, &text, &len) == -1) {
		if (ist.st_mode == 0)
			return false;		/* none (or unreadable) */
		goto bad;
	}
	if (len != (size_t)ist.st_size || len < MB_IX_HEADER + 8)
		goto bad;

	/* The checksum over everything before it. */
	memset(&r, 0, sizeof(r));
	r.p = text;
	r.len = len - 8;
	memcpy(&sum, text + r.len, 8);
	if (mbox_hash_buf(text, r.len) != sum)
		goto bad;

	magic = mb_ix_get(&r, 8);
	if (magic == NULL || memcmp(magic, MB_IX_MAGIC, 8) != 0 ||
	    mb_ix_get32(&r) != MB_IX_VERSION || mb_ix_get32(&r) !=
	    MB_IX_ORDER || mb_ix_get64(&r) != (uint64_t)st->st_dev ||
	    mb_ix_get64(&r) != (uint64_t)st->st_ino)
		goto bad;
	end = mb_ix_get64(&r);
	head = mb_ix_get64(&r);
	tail = mb_ix_get64(&r);
	mb->uidvalidity = mb_ix_get32(&r);
	mb->has_uidvalidity = mb_ix_get32(&r) != 0;
	n = mb_ix_get64(&r);
	if (r.bad || end == 0 || end > (uint64_t)st->st_size || n == 0 ||
	    n > (r.len - r.pos) / MB_IX_ENTRY || n > UINT32_MAX)
		goto bad;
	if (mb_ix_sample(fd, end, &h0, &t0) == -1 || h0 != head ||
	    t0 != tail)
		goto bad;
	if (mb_ix_entries(mb, &r, n, end) == -1 || r.bad || r.pos != r.len)
		goto bad;
	free(text);
	mb->ix_end = end;
	atomic_fetch_add(&mb_ix_loads, 1);
	return true;
bad:
	free(text);
	mb_index_reset(mb);
	log_debug("mbox %s: index cache not used", mb->ixpath);
	return false;
}

/*
 * After the scan, under the lock still: is a new cache due (the scan
 * went past the cached part), and its header. Entries before the last
 * message's separator are cached (so that the next scan starts at a
 * separator and parses the last message again, however it ends).
 */
bool
mb_ix_prepare(struct mb *mb, int fd, struct mb_ixhead *h)
{
	bool loaded = mb->ix_end != 0;	/* the cache was used */

	if (mb->nmsgs < 2) {
		if (!loaded)
			mb_ix_drop(mb);		/* an unusable one */
		return false;
	}
	h->end = mb->msgs[mb->nmsgs - 1].from_off;
	if (loaded && h->end == mb->ix_end)
		return false;
	return mb_ix_sample(fd, h->end, &h->head, &h->tail) == 0;
}

/*
 * Write the cache: a temporary file beside the mbox, renamed over the
 * old cache. Best effort: a failure is logged at debug.
 */
void
mb_ix_write(struct mb *mb, const struct mb_ixhead *h)
{
	struct mb_ixbuf	 b;
	const struct mb_msg *m;
	char		 tmp[PATH_MAX];
	unsigned char	 x[2];
	size_t		 i, xlen;
	int		 fd, rv;

	memset(&b, 0, sizeof(b));
	mb_ix_put(&b, MB_IX_MAGIC, 8);
	mb_ix_put32(&b, MB_IX_VERSION);
	mb_ix_put32(&b, MB_IX_ORDER);
	mb_ix_put64(&b, (uint64_t)mb->dev);
	mb_ix_put64(&b, (uint64_t)mb->ino);
	mb_ix_put64(&b, h->end);
	mb_ix_put64(&b, h->head);
	mb_ix_put64(&b, h->tail);
	mb_ix_put32(&b, mb->uidvalidity);
	mb_ix_put32(&b, mb->has_uidvalidity);
	mb_ix_put64(&b, mb->nmsgs - 1);
	for (i = 0; i + 1 < mb->nmsgs; i++) {
		m = &mb->msgs[i];
		xlen = m->xuidl != NULL ? strlen(m->xuidl) : 0;
		mb_ix_put64(&b, m->from_off);
		mb_ix_put64(&b, m->end_off);
		mb_ix_put64(&b, m->size);
		mb_ix_put64(&b, m->hash);
		mb_ix_put32(&b, m->from_len);
		mb_ix_put32(&b, m->from_hash);
		mb_ix_put32(&b, m->xuid);
		x[0] = (unsigned char)((m->has_xuid ? MB_IXF_XUID : 0) |
		    (m->hidden ? MB_IXF_HIDDEN : 0) |
		    (m->no_eol ? MB_IXF_NOEOL : 0));
		x[1] = (unsigned char)xlen;
		mb_ix_put(&b, x, 2);
		mb_ix_put(&b, m->md5, MB_IX_MD5);
		mb_ix_put(&b, m->xuidl, xlen);
	}
	if (b.err) {
		log_debug("mbox %s: index cache: out of memory", mb->ixpath);
		free(b.p);
		return;
	}
	mb_ix_put64(&b, mbox_hash_buf(b.p, b.len));
	if (b.err || mb_tmp_name(mb, tmp, sizeof(tmp)) == -1) {
		log_debug("mbox %s: index cache not written", mb->ixpath);
		free(b.p);
		return;
	}
	if ((fd = fio_atomic_open(tmp, O_EXCL | O_NOCTTY, 0600)) == -1) {
		log_debug("mbox %s: %s", tmp, strerror(errno));
		free(b.p);
		return;
	}
	/* No fsync(): a cache, checked whole when it is read. */
	if ((rv = fio_write_full(fd, b.p, b.len)) == -1)
		fio_atomic_abort(fd, tmp);
	else
		rv = fio_atomic_commit(fd, tmp, mb->ixpath, 0);
	if (rv == -1)
		log_debug("mbox %s: index cache not written: %s", mb->ixpath,
		    strerror(errno));
	free(b.p);
}
