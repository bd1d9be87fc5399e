/*
 * listcache: the listings of new/ and cur/ that the last opens of
 * Maildirs found, kept while those directories have not changed, so that
 * a login into an unchanged Maildir makes two stat() calls where it made
 * two open()s, four getdents64()s and two close()s (the sorted list of
 * names and sizes is copied, not read again). Dovecot does the same with
 * the mtimes in its index.
 *
 * When is a listing still good? Every change to a directory (a delivery,
 * a move from new/ to cur/, a flag change, an unlink) sets its mtime and
 * ctime to the time of the change, and a stat after it sees that. The
 * times come from a coarse clock (one tick of a few milliseconds), so a
 * change within the tick in which the directory was listed could leave
 * them as they were: a listing is kept only when both directories' times
 * were over a second old when their stat was taken, before they were
 * read; any change after that stat then moves the times on. A change
 * between the stat and the read only makes the next open list again.
 * A match is on device, inode, mtime and ctime (to the nanosecond) of
 * both directories (a keyed hash of them: 8 octets a maildrop).
 *
 * A listing may also carry what the migration cutoff file said when it
 * says "U0" (no Dovecot ids, the usual case: uidl.c), with the file's own
 * stamp in the hash: then a third stat() replaces its open, read and
 * close. Any rewrite, replacement or removal of the file changes that
 * stamp. And when every UIDL was the message's name, unique, with no
 * uidl_format then or now, the UIDLs are not worked out again.
 *
 * A listing is in the cache or in a session, never both: an open that
 * uses one takes it out, and the maildrop's close puts it back (with the
 * times it was taken of) unless the session removed mail or followed a
 * message another program moved. An idle session costs nothing here,
 * and 19,000 logged-in sessions do not keep 19,000 listings twice.
 *
 * Only maildrops on a local file system (store_params.listing_cache): an
 * NFS client's attribute cache may show a directory's old times for
 * seconds after another host delivered. Not a listing with a symbolic
 * link or an entry of unknown type (scan.c): its target can go without
 * the directory changing. And the times are the wall clock's: a clock
 * stepped back by more than a second could stamp a change with the very
 * times a kept listing has (to the nanosecond, on ext4 with large
 * inodes, XFS, Btrfs, tmpfs: not in practice; to the second on file
 * systems without nanoseconds). A reload with listing_cache = 0, or the
 * next change to the directory, ends it.
 *
 * Bounded: [mail] listing_cache octets in all, one listing at most an
 * eighth of that (a 100,000-message Maildir is not worth 8 MiB here),
 * the least recently used first out. Shared by the loop and the worker
 * threads under one mutex, held for lookups and links only: a listing
 * taken out is copied after it is unlinked (it is the open's alone), a
 * new one built before it is linked.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/maildir/maildir.h"
#include "store/maildir/maildir_int.h"
#include "store/maildir/maildir_uidlist.h"
#include "store/store.h"

#define LC_BUCKETS_MIN	256
#define LC_ENTRY_SHARE	8		/* one listing: at most limit / 8 */

struct lc_entry {
	struct lc_entry		*next;		/* hash chain */
	struct lc_entry		*newer, *older;	/* LRU list */
	uint64_t		 hash;
	uint64_t		 stamp;		/* md_lc_stamps() when listed */
	bool			 u0;		/* and md_lc_chain() of the cutoff's */
	bool			 plain;		/* every UIDL its name (with u0) */
	size_t			 bytes;		/* this allocation */
	size_t			 nmsgs;
	struct md_msg		*msgs;		/* names into blob */
	char			*blob;		/* "unique\0[info\0]"... */
	size_t			 bloblen;
	char			 path[];
};

static struct {
	pthread_mutex_t		 mtx;
	struct lc_entry		**bucket;
	size_t			 nbuckets, nentries;
	struct lc_entry		*newest, *oldest;
	size_t			 bytes, limit;
	uint64_t		 seed;
	uint64_t		 hits, stale, misses, plain_hits;
} lc = { .mtx = PTHREAD_MUTEX_INITIALIZER };

/* Keyed by lc.seed, set once by the first configure (before any open). */
static uint64_t
lc_hash(const char *p, size_t len)
{
	return store_hash(lc.seed, p, len);
}

static struct lc_entry **
lc_slot(uint64_t hash, const char *path)
{
	struct lc_entry	**pp;

	if (lc.nbuckets == 0)
		return NULL;
	for (pp = &lc.bucket[hash & (lc.nbuckets - 1)]; *pp != NULL;
	    pp = &(*pp)->next)
		if ((*pp)->hash == hash && strcmp((*pp)->path, path) == 0)
			return pp;
	return pp;
}

static void
lc_lru_unlink(struct lc_entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		lc.newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		lc.oldest = e->newer;
	e->newer = e->older = NULL;
}

static void
lc_lru_front(struct lc_entry *e)
{
	e->older = lc.newest;
	e->newer = NULL;
	if (lc.newest != NULL)
		lc.newest->newer = e;
	lc.newest = e;
	if (lc.oldest == NULL)
		lc.oldest = e;
}

/* Take e, found at *pp, out of the cache: the caller's now. */
static struct lc_entry *
lc_detach(struct lc_entry **pp)
{
	struct lc_entry	*e = *pp;

	*pp = e->next;
	lc_lru_unlink(e);
	lc.bytes -= e->bytes;
	lc.nentries--;
	return e;
}

/* ... and free it. */
static void
lc_remove(struct lc_entry **pp)
{
	free(lc_detach(pp));
}

/* Evict the least recently used until need more octets fit. */
static void
lc_trim(size_t need)
{
	struct lc_entry	*e;

	while ((e = lc.oldest) != NULL && lc.bytes + need > lc.limit)
		lc_remove(lc_slot(e->hash, e->path));
}

/* Twice the buckets when the chains average more than one entry. */
static void
lc_grow(void)
{
	struct lc_entry	**nb, *e, *next;
	size_t		  n, i;

	if (lc.nentries < lc.nbuckets)
		return;
	n = lc.nbuckets == 0 ? LC_BUCKETS_MIN : lc.nbuckets * 2;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;			/* longer chains, still correct */
	for (i = 0; i < lc.nbuckets; i++)
		for (e = lc.bucket[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	free(lc.bucket);
	lc.bucket = nb;
	lc.nbuckets = n;
}

void
maildir_listing_cache_configure(size_t bytes)
{
	pthread_mutex_lock(&lc.mtx);
	if (lc.seed == 0)
		lc.seed = store_hash_seed() | 1;
	lc.limit = bytes;
	lc_trim(0);
	if (lc.nentries == 0) {
		free(lc.bucket);
		lc.bucket = NULL;
		lc.nbuckets = 0;
	}
	pthread_mutex_unlock(&lc.mtx);
}

void
maildir_listing_cache_stats(struct store_cache_stats *st)
{
	pthread_mutex_lock(&lc.mtx);
	st->hits = lc.hits;
	st->stale = lc.stale;
	st->misses = lc.misses;
	st->plain_hits = lc.plain_hits;
	st->entries = lc.nentries;
	st->bytes = lc.bytes;
	st->limit = lc.limit;
	pthread_mutex_unlock(&lc.mtx);
}

bool
md_lc_enabled(void)
{
	bool on;

	pthread_mutex_lock(&lc.mtx);
	on = lc.limit > 0;
	pthread_mutex_unlock(&lc.mtx);
	return on;
}

void
md_lc_stamp(const struct stat *st, struct md_lc_stamp *s)
{
	memset(s, 0, sizeof(*s));	/* padding too: it is hashed */
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mtime = st->st_mtim;
	s->ctime = st->st_ctim;
}

bool
md_lc_settled(const struct md_lc_stamp *s, const struct timespec *now)
{
	return s->mtime.tv_sec < now->tv_sec - 1 &&
	    s->ctime.tv_sec < now->tv_sec - 1;
}

uint64_t
md_lc_stamps(const struct md_lc_stamp dir[2])
{
	return lc_hash((const char *)dir, 2 * sizeof(*dir));
}

uint64_t
md_lc_chain(uint64_t h, const struct md_lc_stamp *s)
{
	struct {
		uint64_t		h;
		struct md_lc_stamp	s;
	} in;

	memset(&in, 0, sizeof(in));
	in.h = h;
	in.s = *s;
	return lc_hash((const char *)&in, sizeof(in));
}

int
md_lc_cutoff_stamp(const struct md *md, struct md_lc_stamp *s)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	if (md_path(md, path, sizeof(path), MAILDIR_UIDLIST_CUTOFF_FILE,
	    NULL) == -1 || stat(path, &st) == -1)
		return -1;
	md_lc_stamp(&st, s);
	return 0;
}

enum md_lc_result
md_lc_get(struct md *md, size_t max_msgs)
{
	struct lc_entry		**pp, *e;
	struct md_lc_stamp	 now[2], cut;
	struct stat		 st;
	struct md_msg		*msgs = NULL;
	const char		*names = NULL;
	char			 path[PATH_MAX];
	size_t			 plen = strlen(md->path), i;
	uint64_t		 hash, stamp;
	bool			 u0, plain;
	int			 sub;

	pthread_mutex_lock(&lc.mtx);
	hash = lc_hash(md->path, plen);
	pp = lc_slot(hash, md->path);
	if (pp == NULL || *pp == NULL) {
		lc.misses++;
		pthread_mutex_unlock(&lc.mtx);
		return MD_LC_MISS;
	}
	u0 = (*pp)->u0;
	pthread_mutex_unlock(&lc.mtx);

	/* The stats run unlocked; the entry is looked up again after. */
	for (sub = MD_NEW; sub <= MD_CUR; sub++) {
		if (md_path(md, path, sizeof(path), md_subdir[sub], NULL) ==
		    -1 || stat(path, &st) == -1)
			goto stale;
		md_lc_stamp(&st, &now[sub]);
	}
	stamp = md_lc_stamps(now);
	if (u0) {
		if (md_lc_cutoff_stamp(md, &cut) == -1)
			goto stale;
		stamp = md_lc_chain(stamp, &cut);
	}

	pthread_mutex_lock(&lc.mtx);
	pp = lc_slot(hash, md->path);
	if (pp == NULL || (e = *pp) == NULL) {
		lc.misses++;
		pthread_mutex_unlock(&lc.mtx);
		return MD_LC_MISS;
	}
	if (e->stamp != stamp || e->u0 != u0) {
		lc_remove(pp);
		lc.stale++;
		pthread_mutex_unlock(&lc.mtx);
		return MD_LC_MISS;
	}
	if (md->nowait && max_msgs > 0 && e->nmsgs > max_msgs) {
		pthread_mutex_unlock(&lc.mtx);	/* kept: a thread's to use */
		return MD_LC_AGAIN;
	}
	/* Ours from here: copied without holding up the other opens. */
	e = lc_detach(pp);
	lc.hits++;
	plain = e->plain && (md->uidl_format == NULL ||
	    md->uidl_format[0] == '\0');
	if (plain)
		lc.plain_hits++;
	pthread_mutex_unlock(&lc.mtx);
	if (e->nmsgs > 0 && ((msgs = reallocarray(NULL, e->nmsgs,
	    sizeof(*msgs))) == NULL || (names = arena_add(&md->arena,
	    e->blob, e->bloblen - 1, NULL, 0)) == NULL)) {
		free(msgs);
		free(e);
		return MD_LC_MISS;	/* the scan reports the ENOMEM */
	}
	for (i = 0; i < e->nmsgs; i++) {
		msgs[i] = e->msgs[i];
		msgs[i].name = names + (e->msgs[i].name - e->blob);
	}
	free(md->msgs);			/* none: the open's first scan */
	md->msgs = msgs;
	md->nmsgs = md->msgs_cap = e->nmsgs;
	md->lc_stamp = e->stamp;
	md->lc_keep = 1;		/* the close puts it back */
	md->lc_u0 = e->u0;
	md->lc_plain = plain;
	free(e);
	return MD_LC_HIT;

stale:
	pthread_mutex_lock(&lc.mtx);
	if ((pp = lc_slot(hash, md->path)) != NULL && *pp != NULL)
		lc_remove(pp);
	lc.stale++;
	pthread_mutex_unlock(&lc.mtx);
	return MD_LC_MISS;
}

/* Can a listing of bytes octets be kept (under lc.mtx)? */
static bool
lc_fits(size_t bytes)
{
	return lc.limit > 0 && bytes <= lc.limit / LC_ENTRY_SHARE;
}

/*
 * The octets of m's name as the arena holds it, one piece:
 * "unique\0[info\0]".
 */
static size_t
lc_name_size(const struct md_msg *m)
{
	size_t n = strlen(m->name) + 1;

	return m->has_info ? n + strlen(m->name + n) + 1 : n;
}

/* Keep md's listing (md_lc_keep()). */
static void
lc_put(const struct md *md)
{
	struct lc_entry	**pp, *e;
	size_t		  plen = strlen(md->path), bloblen = 1, bytes, i, n;
	char		 *p;

	for (i = 0; i < md->nmsgs; i++)
		bloblen += lc_name_size(&md->msgs[i]);
	/* entry, path, messages (8-aligned), names */
	bytes = sizeof(*e) + ((plen + 1 + 7) & ~(size_t)7) +
	    md->nmsgs * sizeof(struct md_msg) + bloblen;

	pthread_mutex_lock(&lc.mtx);
	if (!lc_fits(bytes)) {
		if ((pp = lc_slot(lc_hash(md->path, plen), md->path)) !=
		    NULL && *pp != NULL)
			lc_remove(pp);
		pthread_mutex_unlock(&lc.mtx);
		return;
	}
	pthread_mutex_unlock(&lc.mtx);

	/* Built unlocked: a copy of the listing, names rebased. */
	if ((e = malloc(bytes)) == NULL)
		return;
	memset(e, 0, sizeof(*e));
	memcpy(e->path, md->path, plen + 1);
	e->bytes = bytes;
	e->stamp = md->lc_stamp;
	e->u0 = md->lc_u0;
	e->plain = md->lc_plain;
	e->nmsgs = md->nmsgs;
	e->msgs = (struct md_msg *)(void *)((char *)e + sizeof(*e) +
	    ((plen + 1 + 7) & ~(size_t)7));
	e->blob = (char *)(e->msgs + md->nmsgs);
	e->bloblen = bloblen;
	for (i = 0, p = e->blob; i < md->nmsgs; i++, p += n) {
		e->msgs[i] = md->msgs[i];
		e->msgs[i].uidl_idx = 0;	/* md_make_uidls()' to set */
		e->msgs[i].shared = 0;
		e->msgs[i].missing = 0;
		e->msgs[i].name = p;
		n = lc_name_size(&md->msgs[i]);
		memcpy(p, md->msgs[i].name, n);
	}
	*p = '\0';

	pthread_mutex_lock(&lc.mtx);
	e->hash = lc_hash(md->path, plen);
	if ((pp = lc_slot(e->hash, md->path)) != NULL && *pp != NULL)
		lc_remove(pp);		/* a listing from an older open */
	if (!lc_fits(bytes)) {
		pthread_mutex_unlock(&lc.mtx);	/* reconfigured meanwhile */
		free(e);
		return;
	}
	lc_trim(bytes);
	lc_grow();
	if (lc.bucket == NULL) {		/* no memory for the table */
		pthread_mutex_unlock(&lc.mtx);
		free(e);
		return;
	}
	pp = &lc.bucket[e->hash & (lc.nbuckets - 1)];
	e->next = *pp;
	*pp = e;
	lc_lru_front(e);
	lc.bytes += bytes;
	lc.nentries++;
	pthread_mutex_unlock(&lc.mtx);
}

void
md_lc_keep(const struct md *md)
{
	if (md->lc_keep && !md->slow_ids)
		lc_put(md);
}

void
md_lc_drop(const struct md *md)
{
	struct lc_entry	**pp;

	pthread_mutex_lock(&lc.mtx);
	if ((pp = lc_slot(lc_hash(md->path, strlen(md->path)), md->path)) !=
	    NULL && *pp != NULL)
		lc_remove(pp);
	pthread_mutex_unlock(&lc.mtx);
}
