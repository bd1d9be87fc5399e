/*
 * uidl: UIDLs, and the migration from Dovecot: its dovecot-uidlist
 * read as of the cutoff that the first login wrote down.
 *
 * UIDL: the unique part of the name (up to the ':' that starts the info),
 * which survives the move to cur/ and flag changes. One that is not a
 * valid unique-id (RFC 1939 section 7: 1..70 chars in 0x21..0x7E) is
 * replaced by the hex MD5 of it; duplicates get a deterministic suffix. A
 * Maildir Dovecot has served keeps Dovecot's UIDLs and numbering, from
 * its dovecot-uidlist (maildir_uidlist.h), as it was at the first login
 * (evpop3d-uidl-cutoff, md_uidls_list()); [pop3] uidl_format picks
 * another template. See md_make_uidls().
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "store/maildir/maildir_int.h"
#include "store/maildir/maildir_uidlist.h"
#include "store/store.h"
#include "store/uidl_format.h"

/*
 * The id tables (idtab.h) hold indexes into md->msgs (arg), keyed by each
 * message's uidl or unique part. Names may be chosen by whoever delivers
 * mail: the tables' random seeds keep them from piling up.
 */
static bool
md_uidl_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct md	*md = arg;

	return idtab_key_is(md_msg_uidl(md, &md->msgs[i]), key, len);
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
	const char	**v;
	const char	 *u;
	uint32_t	  cap;

	if (strncmp(m->name, cand, len) == 0 && m->name[len] == '\0') {
		m->uidl_idx = 0;
		return 0;
	}
	if (md->nuidls == md->uidls_cap) {
		cap = md->uidls_cap == 0 ? 16 : md->uidls_cap * 2;
		if (cap <= md->uidls_cap ||
		    (v = reallocarray(md->uidls, cap, sizeof(*v))) == NULL)
			return -1;
		md->uidls = v;
		md->uidls_cap = cap;
	}
	if ((u = arena_strndup(&md->arena, cand, len)) == NULL)
		return -1;
	md->uidls[md->nuidls++] = u;
	m->uidl_idx = md->nuidls;
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
	struct md_lc_stamp		 cst;
	struct timespec			 now;
	char				 path[PATH_MAX];
	uint32_t			 uidv = 0, cut = 0;
	int				 have, r;
	bool				 cst_ok = false;

	/* A kept listing knew it said U0, and it has not changed since. */
	if (md->lc_u0)
		return STORE_OK;
	/* Its stamp before the read, to keep with the listing if U0. */
	if (md->lc_keep && md_lc_cutoff_stamp(md, &cst) == 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		cst_ok = md_lc_settled(&cst, &now);
	}
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
	if (have && cut == 0) {
		if (cst_ok) {
			md->lc_stamp = md_lc_chain(md->lc_stamp, &cst);
			md->lc_u0 = 1;
		}
		return STORE_OK;
	}
	/* dovecot-uidlist (up to 32 MiB) or the cutoff's fsync: a thread's. */
	if (md->nowait)
		return STORE_AGAIN;
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
	/* Next time too: no loop open (maildir.c md_ids_slow()). */
	if (u->ul != NULL || (u->fmt != NULL && uidl_format_uses(u->fmt, 'm')))
		md->slow_ids = 1;
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
	/* Never with nowait: md_open() refused %m before the lock. */
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
enum store_err
md_make_uidls(struct md *md, char *err, size_t errlen)
{
	char			 cand[POP3_UIDL_MAX + 1], suf[24];
	struct md_uidls		 u;
	struct idtab		 t;
	struct md_msg		*m;
	const char		*id;
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
		/*
		 * No template and no record: the name itself, when it will
		 * do, without md_cand() trying the other three and copying
		 * the name twice (2,500 instructions a 10-message login).
		 */
		m = &md->msgs[i];
		if (u.fmt == NULL && (u.recs == NULL || u.recs[i] == NULL) &&
		    pop3_uidl_valid(m->name, strlen(m->name))) {
			u.first[i] = MDC_NAME;
			m->uidl_idx = 0;
			continue;
		}
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
		id = md_msg_uidl(md, m);
		s = idtab_find(&t, id, strlen(id), md_uidl_is, md, &h);
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
			s = idtab_find(&t, cand, (size_t)n, md_uidl_is, md,
			    &h);
			if (!idtab_used(&t, s))
				break;
		}
		if (c == MDC_END) {
			/* Then the first one with a suffix. */
			id = md_msg_uidl(md, m);	/* in the arena: stays */
			len = strlen(id);
			for (k = 2;; k++) {
				slen = (size_t)snprintf(suf, sizeof(suf),
				    "-%zu", k);
				blen = len < POP3_UIDL_MAX - slen ? len :
				    POP3_UIDL_MAX - slen;
				memcpy(cand, id, blen);
				memcpy(cand + blen, suf, slen + 1);
				s = idtab_find(&t, cand, blen + slen,
				    md_uidl_is, md, &h);
				if (!idtab_used(&t, s))
					break;
			}
			n = (int)(blen + slen);
		}
		if (md_set_uidl(md, m, cand, (size_t)n) == -1)
			goto nomem;
		idtab_set(&t, s, h, (uint32_t)i);
	}
	/*
	 * Every UIDL the name, unique, no Dovecot list: a kept listing of
	 * the same names needs none of this next time (listcache.c).
	 */
	md->lc_plain = md->lc_u0 && u.fmt == NULL && u.ul == NULL;
	for (i = 0; md->lc_plain && i < md->nmsgs; i++)
		if (u.first[i] != MDC_NAME || md->msgs[i].uidl_idx != 0)
			md->lc_plain = 0;	/* a suffix, an MD5 of the name */
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
