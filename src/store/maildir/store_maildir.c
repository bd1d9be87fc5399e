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
 * new/ to cur/ or renamed with new flags under us. msg_locate() and
 * commit() follow such moves by the message's unique part.
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
 * A Maildir Dovecot has served keeps Dovecot's UIDLs and numbering, from
 * its dovecot-uidlist (maildir_uidlist.h), as it was at the first login
 * (evpop3d-uidl-cutoff, md_uidls_list()); [pop3] uidl_format picks
 * another template. See md_make_uidls().
 *
 * Threads: open(), msg_locate(), commit() and close() run on worker
 * threads (they scan directories or write the lock), everything else on
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

#include "lib/fileio.h"
#include "lib/log.h"
#include "store/arena.h"
#include "store/idtab.h"
#include "store/maildir/maildir_sizecache.h"
#include "store/maildir/maildir_uidlist.h"
#include "store/sesslock.h"
#include "store/store.h"
#include "store/maildir/store_maildir.h"
#include "store/uidl_format.h"
#include "lib/wire.h"

#define MD_READ_SIZE	(64 * 1024)	/* read size when counting octets */
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

struct md {
	struct maildrop	 base;
	char		*path;		/* Maildir root */
	const char	*uidl_format;	/* p->uidl_format, during open() */
	struct sesslock	*lock;		/* <root>/evpop3d.lock, held */
	struct md_msg	*msgs;
	size_t		 nmsgs, msgs_cap;
	uint64_t	 total;		/* sum of the sizes */
	struct arena	 arena;		/* names and uidls */
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
	if (md == NULL)
		return;
	md_dirfd_drop(md);
	if (sesslock_release(md->lock) == -1)
		log_warn("maildir %s: session lock release", md->path);
	arena_free(&md->arena);
	free(md->msgs);
	free(md->path);
	free(md);
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

	if (md_path(md, buf, sizeof(buf), STORE_MAILDIR_LOCKFILE, NULL) == -1)
		return store_fail(errno, err, errlen, "maildir", md->path);
	return sesslock_acquire(buf, &md->lock, err, errlen);
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
		m->name = arena_add(&md->arena, name, ulen, colon != NULL ?
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
 * The id tables (idtab.h) hold indexes into md->msgs (arg), keyed by each
 * message's uidl or unique part. Names may be chosen by whoever delivers
 * mail: the tables' random seeds keep them from piling up.
 */
static bool
md_uidl_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct md_msg	*msgs = arg;

	return idtab_key_is(msgs[i].uidl, key, len);
}

static bool
md_name_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct md_msg	*msgs = arg;

	return idtab_key_is(msgs[i].name, key, len);
}

/*
 * UIDLs. Each message has a list of candidate ids, tried in this order:
 *
 *	MDC_SAVED	the P field of the message's dovecot-uidlist record,
 *			a UIDL Dovecot saved (pop3_save_uidl) or a migration
 *			script wrote (courier-dovecot-migrate.pl); empty means
 *			the unique part. Dovecot serves it whatever its
 *			pop3_uidl_format says, and so do we;
 *	MDC_FORMAT	[pop3] uidl_format (uidl_format.h), when set: %f the
 *			unique part, %u %v from dovecot-uidlist, %m the MD5 of
 *			the header (md_hdr_md5());
 *	MDC_DOVECOT	its UID and UIDVALIDITY as Dovecot's default
 *			"%08Xu%08Xv" prints them (8 lower-case hex digits
 *			each): what Dovecot serves when pop3_uidl_format is
 *			unset;
 *	MDC_NAME	the unique part, or the hex MD5 of it when that is no
 *			valid unique-id: the ids evpop3d has always served,
 *			so a Maildir without dovecot-uidlist keeps them.
 *
 * A candidate that does not apply (no record, no P field, a value the
 * format needs is missing) or is no valid unique-id (RFC 1939 section
 * 7) is skipped. Records are those up to the migration cutoff
 * (md_uidls_list()): a message Dovecot had not listed at evpop3d's first
 * login keeps its MDC_NAME id (or its uidl_format id without %u/%v) even
 * once Dovecot lists it.
 */
enum md_cand {
	MDC_SAVED, MDC_FORMAT, MDC_DOVECOT, MDC_NAME, MDC_END
};

#define MD_HDR_MAX		(1024 * 1024)	/* %m hashes at most this */
#define MD_LOST			0x80		/* md_uidls.first: id taken */

/* What md_make_uidls() works with. */
struct md_uidls {
	struct md			 *md;
	const char			 *fmt;		/* NULL: none */
	struct maildir_uidlist		 *ul;		/* NULL: none */
	const struct maildir_uidlist_rec **recs;	/* per message (ul) */
	struct idtab			  names;	/* md_uidls_want() */
	uint8_t				 *first;	/* per message: the */
							/* candidate it got */
	int				  dfd[2];	/* new/ cur/ (%m) */
	EVP_MD_CTX			 *mdctx;	/* %m */
	char				 *buf;		/* %m: the header */
	size_t				  bufsize;
	enum store_err			  rv;		/* md_cand() error */
};

/*
 * The end of the header in buf (len bytes): the offset of the first
 * empty line ("\n" or "\r\n" at the start of a line), looked for from
 * offset from on; -1 if there is none yet.
 */
static ssize_t
md_hdr_end(const char *buf, size_t len, size_t from)
{
	size_t	 j;

	for (j = from; j < len; j++) {
		if (j > 0 && buf[j - 1] != '\n')
			continue;
		if (buf[j] == '\n' ||
		    (buf[j] == '\r' && j + 1 < len && buf[j + 1] == '\n'))
			return (ssize_t)j;
	}
	return -1;
}

/*
 * %m: the hex MD5 of message m's header as stored, every byte before the
 * first empty line (the whole file if it has none), but at most the first
 * MD_HDR_MAX bytes. Costs an open() and a read of the header per message
 * at every login: only a uidl_format with %m pays it. Returns 0 and the
 * digest, 1 if the file is gone (moved since the scan), -1 on error with
 * errno set.
 */
static int
md_hdr_md5(struct md_uidls *u, const struct md_msg *m, char out[33])
{
	unsigned char		 dig[EVP_MAX_MD_SIZE];
	char			 name[NAME_MAX + 2];
	unsigned int		 dlen;
	size_t			 len = 0, nsize;
	ssize_t			 n, end = -1;
	char			*nbuf;
	int			 fd;

	md_msg_name(m, name, sizeof(name));
	fd = openat(u->dfd[m->in_cur], name, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT ? 1 : -1;
	while (end == -1 && len < MD_HDR_MAX) {
		if (len == u->bufsize) {
			nsize = u->bufsize == 0 ? 16384 : u->bufsize * 2;
			if ((nbuf = realloc(u->buf, nsize)) == NULL)
				goto fail;
			u->buf = nbuf;
			u->bufsize = nsize;
		}
		if ((n = fio_read(fd, u->buf + len, u->bufsize - len)) == -1)
			goto fail;
		if (n == 0)
			break;
		end = md_hdr_end(u->buf, len + (size_t)n,
		    len > 2 ? len - 2 : 0);
		len += (size_t)n;
	}
	close(fd);
	if (end == -1)
		end = (ssize_t)(len < MD_HDR_MAX ? len : MD_HDR_MAX);
	if (EVP_DigestInit_ex(u->mdctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(u->mdctx, u->buf, (size_t)end) != 1 ||
	    EVP_DigestFinal_ex(u->mdctx, dig, &dlen) != 1 || dlen != 16) {
		errno = ENOTSUP;
		return -1;
	}
	store_hex(dig, dlen, out);
	return 0;
fail:
	fio_close_keep_errno(fd);
	return -1;
}

/*
 * Candidate k of message i into cand (POP3_UIDL_MAX + 1 bytes). Returns
 * its length, 0 if it does not apply, -1 on error (err and u->rv set).
 */
static int
md_cand(struct md_uidls *u, size_t i, int k, char *cand, char *err,
    size_t errlen)
{
	static const char		 hex[] = "0123456789abcdef";
	const struct md_msg		*m = &u->md->msgs[i];
	const struct maildir_uidlist_rec *rec = u->recs != NULL ?
					    u->recs[i] : NULL;
	struct uidl_vars		 v;
	unsigned char			 dig[EVP_MAX_MD_SIZE];
	char				 md5[33];
	const char			*s;
	unsigned int			 dlen, j;
	size_t				 len;
	int				 r;

	memset(&v, 0, sizeof(v));
	if (rec != NULL) {
		v.has_uid = true;
		v.uid = rec->uid;
		v.uidvalidity = maildir_uidlist_uidvalidity(u->ul);
	}
	switch (k) {
	case MDC_FORMAT:
		if (u->fmt == NULL)
			return 0;
		v.file = m->name;
		if (u->mdctx != NULL) {
			if ((r = md_hdr_md5(u, m, md5)) == -1) {
				u->rv = store_fail(errno, err, errlen, "read",
				    m->name);
				return -1;
			}
			v.md5 = r == 0 ? md5 : NULL;
		}
		r = uidl_format_expand(u->fmt, &v, cand, POP3_UIDL_MAX + 1);
		return r > 0 ? r : 0;
	case MDC_SAVED:
		if (rec == NULL || rec->pop3_uidl == NULL)
			return 0;
		s = rec->pop3_uidl[0] == '\0' ? m->name : rec->pop3_uidl;
		len = strlen(s);
		if (!pop3_uidl_valid(s, len))
			return 0;
		memcpy(cand, s, len + 1);
		return (int)len;
	case MDC_DOVECOT:
		/*
		 * Dovecot's default pop3_uidl_format, "%08Xu%08Xv": its X
		 * modifier prints lower-case hex ("%llx" in its var_expand();
		 * Dovecot 2.3.19 serves "000000016b0934ca"). By hand, not with
		 * uidl_format_expand(): snprintf() was a fifth of the cost.
		 */
		if (rec == NULL)
			return 0;
		for (j = 0; j < 8; j++) {
			cand[j] = hex[(v.uid >> (28 - 4 * j)) & 0xf];
			cand[8 + j] =
			    hex[(v.uidvalidity >> (28 - 4 * j)) & 0xf];
		}
		cand[16] = '\0';
		return 16;
	default:				/* MDC_NAME */
		len = strlen(m->name);
		if (pop3_uidl_valid(m->name, len)) {
			memcpy(cand, m->name, len + 1);
			return (int)len;
		}
		if (EVP_Digest(m->name, len, dig, &dlen, EVP_md5(), NULL) != 1 ||
		    dlen * 2 > POP3_UIDL_MAX) {
			snprintf(err, errlen, "maildir %s: MD5 unavailable",
			    u->md->path);
			u->rv = STORE_TEMP;
			return -1;
		}
		store_hex(dig, dlen, cand);
		return (int)(2 * dlen);
	}
}

/* m's uidl := cand (len bytes); the name itself when they are equal. */
static int
md_set_uidl(struct md *md, struct md_msg *m, const char *cand, size_t len)
{
	if (strncmp(m->name, cand, len) == 0 && m->name[len] == '\0')
		m->uidl = m->name;
	else if ((m->uidl = arena_strndup(&md->arena, cand, len)) == NULL)
		return -1;
	return 0;
}

/*
 * Session order once Dovecot has listed the Maildir, so that message
 * numbers match what Dovecot showed as well: messages with an O field
 * first, by it (Dovecot's POP3 order), then by IMAP UID; messages it has
 * not listed last, in the order of md_sort(). Messages that share a unique
 * part share a record and so stay next to each other (md_claimed()).
 */
struct md_okey {
	uint64_t	 order;		/* O, or UINT32_MAX; unlisted: 2^32 */
	uint32_t	 uid;
	size_t		 idx;		/* keeps the sort stable */
};

static int
md_okey_cmp(const void *a, const void *b)
{
	const struct md_okey	*ka = a, *kb = b;

	if (ka->order != kb->order)
		return ka->order < kb->order ? -1 : 1;
	if (ka->uid != kb->uid)
		return ka->uid < kb->uid ? -1 : 1;
	return (ka->idx > kb->idx) - (ka->idx < kb->idx);
}

static int
md_uidls_order(struct md_uidls *u)
{
	struct md				*md = u->md;
	const struct maildir_uidlist_rec	*r, **recs;
	struct md_okey				*keys;
	struct md_msg				*msgs;
	size_t					 i, n = md->nmsgs;
	int					 sorted = 1;

	if ((keys = reallocarray(NULL, n, sizeof(*keys))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		r = u->recs[i];
		keys[i].order = r == NULL ? (uint64_t)1 << 32 :
		    r->has_order ? r->order : UINT32_MAX;
		keys[i].uid = r == NULL ? 0 : r->uid;
		keys[i].idx = i;
		if (i > 0 && md_okey_cmp(&keys[i - 1], &keys[i]) > 0)
			sorted = 0;
	}
	if (sorted) {
		free(keys);
		return 0;
	}
	qsort(keys, n, sizeof(*keys), md_okey_cmp);
	msgs = reallocarray(NULL, n, sizeof(*msgs));
	recs = reallocarray(NULL, n, sizeof(*recs));
	if (msgs == NULL || recs == NULL) {
		free(msgs);
		free(recs);
		free(keys);
		return -1;
	}
	for (i = 0; i < n; i++) {
		msgs[i] = md->msgs[keys[i].idx];
		recs[i] = u->recs[keys[i].idx];
	}
	free(keys);
	free(md->msgs);
	md->msgs = msgs;
	md->msgs_cap = n;
	free(u->recs);
	u->recs = recs;
	return 0;
}

/*
 * maildir_uidlist's filter for a list with the records of much expunged
 * mail: is name (len bytes) the unique part of a message? The set is made
 * at the first call, so a list of sane size costs nothing. The hash is
 * seeded per login: file names and list are both the user's to choose,
 * and must not be able to pile up in one probe chain.
 */
static int
md_uidls_want(void *arg, const char *name, size_t len)
{
	struct md_uidls	*u = arg;
	struct md	*md = u->md;
	struct idtab	*t = &u->names;
	uint64_t	 h;
	size_t		 i, s;

	if (t->slot == NULL) {
		/* Too many (EFBIG) or no memory: keep it (and the list is
		 * refused if it has too many records even so). */
		if (idtab_init(t, md->nmsgs) == -1)
			return 1;
		for (i = 0; i < md->nmsgs; i++) {
			s = idtab_find(t, md->msgs[i].name,
			    strlen(md->msgs[i].name), md_name_is, md->msgs, &h);
			if (!idtab_used(t, s))
				idtab_set(t, s, h, (uint32_t)i);
		}
	}
	return idtab_used(t, idtab_find(t, name, len, md_name_is, md->msgs,
	    NULL));
}

/*
 * Which dovecot-uidlist records may give ids: the migration is frozen at
 * the first login that has mail to serve (the ids a client has seen must
 * never change), in <root>/evpop3d-uidl-cutoff (maildir_uidlist.h):
 *
 *	no cutoff file	this is that login. A usable list is loaded whole
 *			and its UIDVALIDITY and highest UID are written down;
 *			a missing or unusable one (logged) makes "U0": then
 *			no Dovecot ids, ever. Mail Dovecot lists later (IMAP
 *			on the same Maildir) would otherwise switch from its
 *			name to a Dovecot id at the next login, and clients
 *			would download it again. Written at the first login
 *			with mail even when no message has a record (the ids
 *			served are then names, which must stay), and not at
 *			all while the Maildir is empty (nothing was served).
 *			A failed write is logged and the login goes on (an
 *			over-quota user can still delete mail); the next
 *			login tries again;
 *	U0		no list is read;
 *	V<v> U<u>	records up to UID u are used, later ones (mail listed
 *			since) are not read: those messages keep their names.
 *			The list must be there, usable up to u and of
 *			UIDVALIDITY v, else the login fails with STORE_TEMP
 *			and a reason for the log: other ids for one session
 *			would make clients download mail again. The operator
 *			restores the list, or removes the cutoff file (the
 *			next login then decides again) if he accepts that.
 *
 * A damaged cutoff file is STORE_TEMP as well. u->ul is left NULL when no
 * record is to be used.
 */
static enum store_err
md_uidls_list(struct md_uidls *u, char *err, size_t errlen)
{
	struct md			*md = u->md;
	struct maildir_uidlist_opts	 o;
	char				 path[PATH_MAX];
	uint32_t			 uidv = 0, cut = 0;
	int				 have, r;

	if ((have = maildir_uidlist_cutoff_load(md->path, &uidv, &cut)) ==
	    -1) {
		if (errno != EBADMSG) {
			snprintf(path, sizeof(path), "%s/%s", md->path,
			    MAILDIR_UIDLIST_CUTOFF_FILE);
			return store_fail(errno, err, errlen, "read", path);
		}
		snprintf(err, errlen, "maildir %s: %s is damaged: repair it, "
		    "or remove it to have the next login decide again",
		    md->path, MAILDIR_UIDLIST_CUTOFF_FILE);
		return STORE_TEMP;
	}
	if (have && cut == 0)
		return STORE_OK;
	memset(&o, 0, sizeof(o));
	o.nmsgs = md->nmsgs;
	o.max_uid = cut;
	o.want = md_uidls_want;
	o.arg = u;
	r = maildir_uidlist_load(md->path, &o, &u->ul);
	idtab_free(&u->names);
	if (r == -1) {
		snprintf(path, sizeof(path), "%s/%s", md->path,
		    MAILDIR_UIDLIST_FILE);
		return store_fail(errno, err, errlen, "read", path);
	}
	if (have) {
		if (r == 1 && maildir_uidlist_uidvalidity(u->ul) == uidv)
			return STORE_OK;
		if (r == 1)
			snprintf(err, errlen, "maildir %s: %s has UIDVALIDITY "
			    "%u, %s says %u: UIDLs would change; restore the "
			    "list or remove %s", md->path, MAILDIR_UIDLIST_FILE,
			    maildir_uidlist_uidvalidity(u->ul),
			    MAILDIR_UIDLIST_CUTOFF_FILE, uidv,
			    MAILDIR_UIDLIST_CUTOFF_FILE);
		else
			snprintf(err, errlen, "maildir %s: %s: %s%s%.0zu, but "
			    "%s (V%u U%u) needs it: UIDLs would change; "
			    "restore the list or remove %s", md->path,
			    MAILDIR_UIDLIST_FILE, o.why != NULL ? o.why :
			    "missing", o.line > 0 ? " at line " : "", o.line,
			    MAILDIR_UIDLIST_CUTOFF_FILE, uidv, cut,
			    MAILDIR_UIDLIST_CUTOFF_FILE);
		return STORE_TEMP;
	}
	if (r == 1) {
		uidv = maildir_uidlist_uidvalidity(u->ul);
		cut = maildir_uidlist_max_uid(u->ul);
	} else if (o.why != NULL)
		log_warnx("maildir %s: %s unusable (%s%s%.0zu): UIDLs are the "
		    "file names, from now on", md->path, MAILDIR_UIDLIST_FILE,
		    o.why, o.line > 0 ? " at line " : "", o.line);
	if (maildir_uidlist_cutoff_save(md->path, uidv, cut) == -1)
		log_warn("maildir %s: write %s", md->path,
		    MAILDIR_UIDLIST_CUTOFF_FILE);
	else if (r == 1)
		log_info("maildir %s: UIDLs from %s frozen at V%u U%u",
		    md->path, MAILDIR_UIDLIST_FILE, uidv, cut);
	return STORE_OK;
}

/*
 * Load dovecot-uidlist, look every message up, prepare for %m. Marks the
 * messages whose unique part is not unique as shared: with name-based ids
 * alone that is when ids collide (md_make_uidls() sees it, as it always
 * did), else it is looked at here, where md_sort() has put equal names
 * next to each other.
 */
static enum store_err
md_uidls_init(struct md_uidls *u, char *err, size_t errlen)
{
	struct md	*md = u->md;
	char		 path[PATH_MAX];
	enum store_err	 rv;
	size_t		 i;
	int		 sub;

	if ((rv = md_uidls_list(u, err, errlen)) != STORE_OK)
		return rv;
	for (i = 1; (u->ul != NULL || u->fmt != NULL) && i < md->nmsgs; i++)
		if (strcmp(md->msgs[i - 1].name, md->msgs[i].name) == 0)
			md->msgs[i - 1].shared = md->msgs[i].shared = 1;
	if ((u->first = calloc(md->nmsgs, 1)) == NULL)
		return store_fail(errno, err, errlen, "maildir", md->path);
	if (u->ul != NULL) {
		if ((u->recs = reallocarray(NULL, md->nmsgs,
		    sizeof(*u->recs))) == NULL)
			return store_fail(errno, err, errlen, "maildir",
			    md->path);
		for (i = 0; i < md->nmsgs; i++)
			u->recs[i] = maildir_uidlist_lookup(u->ul,
			    md->msgs[i].name, strlen(md->msgs[i].name));
		if (md_uidls_order(u) == -1)
			return store_fail(errno, err, errlen, "maildir",
			    md->path);
	}
	if (u->fmt != NULL && uidl_format_uses(u->fmt, 'm')) {
		for (sub = MD_NEW; sub <= MD_CUR; sub++)
			if (md_path(md, path, sizeof(path), md_subdir[sub],
			    NULL) == -1 || (u->dfd[sub] = open(path,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
				return store_fail(errno, err, errlen, "open",
				    path);
		if ((u->mdctx = EVP_MD_CTX_new()) == NULL)
			return store_fail(ENOMEM, err, errlen, "maildir",
			    md->path);
	}
	return STORE_OK;
}

static void
md_uidls_free(struct md_uidls *u)
{
	if (u->dfd[MD_NEW] != -1)
		close(u->dfd[MD_NEW]);
	if (u->dfd[MD_CUR] != -1)
		close(u->dfd[MD_CUR]);
	EVP_MD_CTX_free(u->mdctx);
	free(u->buf);
	free(u->first);
	free(u->recs);
	idtab_free(&u->names);
	maildir_uidlist_free(u->ul);
}

/*
 * Give every message its UIDL and make them unique. Every message first
 * gets its first candidate (see enum md_cand); the first message in
 * session order keeps an id, and a later one with the same id tries its
 * next candidates, then "-2", "-3", ... on its first one (the base cut so
 * the result stays within 70 characters), skipping any id taken.
 * Messages that share a unique part are marked shared. The uidl_format
 * and dovecot-uidlist are read here, on the worker thread of open().
 */
static enum store_err
md_make_uidls(struct md *md, char *err, size_t errlen)
{
	char			 cand[POP3_UIDL_MAX + 1], suf[24];
	struct md_uidls		 u;
	struct idtab		 t;
	struct md_msg		*m;
	enum store_err		 rv;
	uint64_t		 h;
	size_t			 i, k, len, blen, slen, s;
	int			 c, n, by_name;

	memset(&u, 0, sizeof(u));
	u.md = md;
	u.dfd[MD_NEW] = u.dfd[MD_CUR] = -1;
	if (md->uidl_format != NULL && md->uidl_format[0] != '\0')
		u.fmt = md->uidl_format;
	memset(&t, 0, sizeof(t));
	if (md->nmsgs == 0)
		return STORE_OK;
	if ((rv = md_uidls_init(&u, err, errlen)) != STORE_OK)
		goto done;
	/* See md_uidls_init() for shared. */
	by_name = u.ul != NULL || u.fmt != NULL;

	for (i = 0; i < md->nmsgs; i++) {
		for (c = 0; (n = md_cand(&u, i, c, cand, err, errlen)) == 0;
		    c++)
			;			/* MDC_NAME always applies */
		if (n == -1) {
			rv = u.rv;
			goto done;
		}
		u.first[i] = (uint8_t)c;
		if (md_set_uidl(md, &md->msgs[i], cand, (size_t)n) == -1)
			goto nomem;
	}

	if (idtab_init(&t, md->nmsgs) == -1)
		goto sysfail;
	for (i = 0; i < md->nmsgs; i++) {
		m = &md->msgs[i];
		s = idtab_find(&t, m->uidl, strlen(m->uidl), md_uidl_is,
		    md->msgs, &h);
		if (!idtab_used(&t, s))
			idtab_set(&t, s, h, (uint32_t)i);
		else {
			u.first[i] |= MD_LOST;
			if (!by_name) {
				m->shared = 1;
				md->msgs[idtab_get(&t, s)].shared = 1;
			}
		}
	}
	for (i = 0; i < md->nmsgs; i++) {
		if (!(u.first[i] & MD_LOST))
			continue;
		m = &md->msgs[i];
		n = 0;
		s = 0;
		/* The next candidates, as long as they are free. */
		for (c = (u.first[i] & ~MD_LOST) + 1; c < MDC_END; c++) {
			if ((n = md_cand(&u, i, c, cand, err, errlen)) == -1) {
				rv = u.rv;
				goto done;
			}
			if (n == 0)
				continue;
			s = idtab_find(&t, cand, (size_t)n, md_uidl_is,
			    md->msgs, &h);
			if (!idtab_used(&t, s))
				break;
		}
		if (c == MDC_END) {
			/* Then the first one with a suffix. */
			len = strlen(m->uidl);
			for (k = 2;; k++) {
				slen = (size_t)snprintf(suf, sizeof(suf),
				    "-%zu", k);
				blen = len < POP3_UIDL_MAX - slen ? len :
				    POP3_UIDL_MAX - slen;
				memcpy(cand, m->uidl, blen);
				memcpy(cand + blen, suf, slen + 1);
				s = idtab_find(&t, cand, blen + slen,
				    md_uidl_is, md->msgs, &h);
				if (!idtab_used(&t, s))
					break;
			}
			n = (int)(blen + slen);
		}
		if (md_set_uidl(md, m, cand, (size_t)n) == -1)
			goto nomem;
		idtab_set(&t, s, h, (uint32_t)i);
	}
	rv = STORE_OK;
	goto done;
sysfail:
	rv = store_fail(errno, err, errlen, "maildir", md->path);
	goto done;
nomem:
	rv = store_fail(ENOMEM, err, errlen, "maildir", md->path);
done:
	idtab_free(&t);
	md_uidls_free(&u);
	return rv;
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

/* The total for STAT at login, added up here on the worker thread. */
static void
md_sum(struct md *md)
{
	size_t	 i;

	md->total = 0;
	for (i = 0; i < md->nmsgs; i++)
		md->total += md->msgs[i].size;
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
	md->uidl_format = p->uidl_format;
	if ((md->path = strdup(path)) == NULL) {
		rv = store_fail(errno, err, errlen, "maildir", path);
		goto fail;
	}
	/*
	 * Lock, then scan. A user with no mail yet may have no Maildir: only
	 * when one of those steps fails for a missing directory is it
	 * created (mkdir -p of the root, cur/, new/, tmp/) and the step
	 * retried, so a login into an existing Maildir costs no mkdir calls.
	 */
	if ((rv = md_lock(md, err, errlen)) != STORE_OK) {
		if (rv == STORE_INUSE || !md_missing(md, 0) ||
		    (rv = md_create(md, err, errlen)) != STORE_OK ||
		    (rv = md_lock(md, err, errlen)) != STORE_OK)
			goto fail;
		created = 1;
	}
	if ((rv = md_scan(md, err, errlen)) != STORE_OK) {
		if (created || !md_missing(md, 1) ||
		    (rv = md_create(md, err, errlen)) != STORE_OK)
			goto fail;
		md->nmsgs = 0;
		if ((rv = md_scan(md, err, errlen)) != STORE_OK)
			goto fail;
	}
	md_sum(md);
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

static uint64_t
md_total(const struct maildrop *base)
{
	return ((const struct md *)base)->total;
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
	s = arena_add(&md->arena, name, ulen, info,
	    info != NULL ? strlen(info) : 0);
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
	struct idtab	 t;
	struct md_msg	*m, *tm = NULL;
	struct dirent	*de;
	char		 dpath[PATH_MAX];
	const char	*name;
	uint64_t	 h;
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

	if (idtab_init(&t, md->nmsgs) == -1)
		return -1;
	for (i = 0; i < md->nmsgs; i++) {
		if (md->msgs[i].shared)
			continue;
		s = idtab_find(&t, md->msgs[i].name, strlen(md->msgs[i].name),
		    md_name_is, md->msgs, &h);
		idtab_set(&t, s, h, (uint32_t)i);
	}
	if ((dir = opendir(dpath)) == NULL) {
		saved = errno;
		idtab_free(&t);
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
		s = idtab_find(&t, name, ulen, md_name_is, md->msgs, NULL);
		if (!idtab_used(&t, s))
			continue;
		m = &md->msgs[idtab_get(&t, s)];
		if ((r = md_move_to(md, m, name, ulen)) == -1)
			goto nomem;
		if (r == 1 && (size_t)(m - md->msgs) == target)
			moved = 1;
	}
	closedir(dir);
	idtab_free(&t);
	md->reloc_mtime = st.st_mtim;
	md->reloc_start = now;
	md->reloc_valid = 1;
	return moved;
nomem:
	errno = ENOMEM;
fail:
	saved = errno;
	closedir(dir);
	idtab_free(&t);
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
#define MD_DIRFD_CACHE	STORE_CACHED_FDS

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

/*
 * The file where the scan (or the last md_msg_locate()) saw it: one
 * openat(). A file that is not there was moved to cur/, renamed with
 * new flags or removed; telling which takes a pass over cur/, which is
 * tens of milliseconds for 100,000 messages: STORE_AGAIN, and
 * md_msg_locate() does it on a worker thread.
 */
static enum store_err
md_msg_open(struct maildrop *base, size_t i, struct store_reader **r_r)
{
	struct md		*md = (struct md *)base;
	struct md_reader	*r;
	int			 fd;

	*r_r = NULL;
	if (i >= md->nmsgs)
		return STORE_GONE;
	if ((fd = md_open_file(md, &md->msgs[i])) == -1)
		return errno == ENOENT ? STORE_AGAIN : store_errno(errno);
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
	n = fio_read(r->fd, buf, len);
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

/*
 * Worker thread, after md_msg_open() said STORE_AGAIN: follow message i
 * to its new name (md_relocate()). A file that is back where it was
 * counts as found; one found nowhere was removed.
 */
static enum store_err
md_msg_locate(struct maildrop *base, size_t i)
{
	struct md	*md = (struct md *)base;
	struct stat	 st;
	char		 path[PATH_MAX];
	int		 moved;

	if (i >= md->nmsgs)
		return STORE_GONE;
	if ((moved = md_relocate(md, i)) == -1)
		return store_errno(errno);
	if (moved == 1)
		return STORE_OK;
	if (md_msg_path(md, &md->msgs[i], path, sizeof(path)) == -1)
		return store_errno(errno);
	if (stat(path, &st) == 0)
		return STORE_OK;
	return errno == ENOENT ? STORE_GONE : store_errno(errno);
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

static void
md_disown(struct maildrop *base)
{
	sesslock_disown(((struct md *)base)->lock);
}

const struct store_ops store_maildir_ops = {
	.name =		"maildir",
	.open =		md_open,
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
