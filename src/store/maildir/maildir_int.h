/*
 * maildir_int: the insides of the Maildir driver, shared by its files and
 * seen by them alone (PRIVATE_HEADERS of the maildir part in
 * CMakeLists.txt): the maildrop and its messages, and what one file calls
 * in another.
 *
 *	maildir.c	the ops table, open(), the message list, close()
 *	scan.c		the scan of new/ and cur/, and the sizes
 *	uidl.c		UIDLs, and Dovecot's (dovecot-uidlist, the cutoff)
 *	commit.c	UPDATE: the unlinks
 *	read.c		msg_open(), msg_read(); messages that moved
 *	listcache.c	the listings kept while new/ and cur/ are unchanged
 *	md.c		names and paths, directory descriptors, md_free()
 *
 * Calls go down this list, never up or across to a file above: maildir.c
 * calls scan.c, commit.c, read.c and listcache.c; scan.c calls uidl.c
 * and listcache.c; uidl.c and commit.c call listcache.c; commit.c calls
 * read.c; md.c, the bottom, is called by all and calls none of them.
 */
#ifndef EVPOP3D_MAILDIR_INT_H
#define EVPOP3D_MAILDIR_INT_H

#include <sys/stat.h>
#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/arena.h"
#include "store/idtab.h"
#include "store/store.h"

enum { MD_NEW = 0, MD_CUR = 1 };

/* The directories by MD_NEW, MD_CUR: "new", "cur". */
extern const char *const md_subdir[2];

struct sesslock;

/* A message as the scan (or a later move) saw it. */
struct md_msg {
	uint64_t	 size;		/* wire size */
	const char	*name;		/* unique part NUL [info NUL] */
	/*
	 * 0: the uidl is the name (most messages: 24 octets a message, not
	 * 32); else md->uidls[uidl_idx - 1] (md_msg_uidl()).
	 */
	uint32_t	 uidl_idx;
	unsigned	 in_cur:1;	/* cur/ (else new/) */
	unsigned	 has_info:1;	/* name had ":info" */
	unsigned	 shared:1;	/* unique part not unique: moves are */
					/* followed for this one only on demand */
	unsigned	 missing:1;	/* commit: ENOENT on the first try */
};

/* The maildrop (store.h): the snapshot open() took. */
struct md {
	struct maildrop	 base;
	const char	*uidl_format;	/* p->uidl_format, during open() */
	struct sesslock	*lock;		/* <root>/evpop3d.lock, held */
	struct md_msg	*msgs;
	size_t		 nmsgs, msgs_cap;
	uint64_t	 total;		/* sum of the sizes */
	struct arena	 arena;		/* names and uidls */
	const char	**uidls;	/* the uidls that are not names */
	uint32_t	 nuidls, uidls_cap;
	/* The last md_relocate() pass: cur/'s mtime before it, and when. */
	struct timespec	 reloc_mtime;
	time_t		 reloc_start;	/* seconds: all that is compared */
	unsigned	 reloc_valid:1;
	/*
	 * open() on the event loop (store_params.nowait): every step that
	 * would read a message, write a file or read dovecot-uidlist says
	 * STORE_AGAIN instead, and a thread opens the maildrop.
	 */
	unsigned	 nowait:1;
	/* Its UIDLs need dovecot-uidlist or %m: never quick (uidl.c). */
	unsigned	 slow_ids:1;
	/*
	 * lc_ok: the open may use and keep a listing (listcache.c); lc_keep:
	 * md->msgs is one, of new/ and cur/ as lc_stamp says, settled, for
	 * md_free() to put in the cache.
	 */
	unsigned	 lc_ok:1;
	unsigned	 lc_keep:1;
	/* ... and lc_stamp covers the cutoff file, which says U0 (uidl.c). */
	unsigned	 lc_u0:1;
	/* ... and every UIDL is the name, unique (md_make_uidls()). */
	unsigned	 lc_plain:1;
	/* Where md_dirfd_get() last found new/ and cur/ (a hint). */
	unsigned char	 dirfd_slot[2];
	uint64_t	 lc_stamp;	/* md_lc_stamps(), with lc_keep */
	char		 path[];	/* Maildir root (one allocation) */
};

/* m's UIDL: its name, or one of its own. */
static inline const char *
md_msg_uidl(const struct md *md, const struct md_msg *m)
{
	return m->uidl_idx == 0 ? m->name : md->uidls[m->uidl_idx - 1];
}

/*
 * For the id tables (idtab.h) over md->msgs (arg): is message i's unique
 * part key (len bytes)?
 */
static inline bool
md_name_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct md_msg	*msgs = arg;

	return idtab_key_is(msgs[i].name, key, len);
}

/* scan.c */

/*
 * Scan new/ and cur/ into md->msgs, in session order, with their sizes
 * (the size cache read and written on the way) and UIDLs. STORE_OK, or
 * an error with err set.
 */
enum store_err	md_scan(struct md *md, size_t max_msgs, char *err,
		    size_t errlen);

/* uidl.c */

/*
 * Give every message its UIDL, unique in the maildrop (md->uidl_format,
 * dovecot-uidlist as of the cutoff), and mark the messages that share a
 * unique part. May reorder md->msgs (Dovecot's order). STORE_OK, or an
 * error with err set (a damaged or missing list the cutoff needs:
 * STORE_TEMP).
 */
enum store_err	md_make_uidls(struct md *md, char *err, size_t errlen);

/* listcache.c */

/* What the listing of a directory was taken of. */
struct md_lc_stamp {
	dev_t		 dev;
	ino_t		 ino;
	struct timespec	 mtime, ctime;
};

enum md_lc_result {
	MD_LC_MISS,	/* none kept, or new/ or cur/ changed: scan */
	MD_LC_HIT,	/* md->msgs and md->nmsgs set, sorted, names in arena */
	MD_LC_AGAIN	/* kept, but over max_msgs for a nowait open */
};

/* Is the cache on ([mail] listing_cache > 0)? */
bool		md_lc_enabled(void);
/* The stamp of a directory from its stat. */
void		md_lc_stamp(const struct stat *st, struct md_lc_stamp *s);
/*
 * Were the times over a second old at now (CLOCK_REALTIME, read before
 * the directory or file is read; the stat before that too)? Only then
 * can a listing taken after the stat be kept.
 */
bool		md_lc_settled(const struct md_lc_stamp *s,
		    const struct timespec *now);
/* The keyed hash of new/'s and cur/'s stamps, for md->lc_stamp. */
uint64_t	md_lc_stamps(const struct md_lc_stamp dir[2]);
/* h, and the stamp s of the cutoff file, hashed (md->lc_u0). */
uint64_t	md_lc_chain(uint64_t h, const struct md_lc_stamp *s);
/* The stamp of md's cutoff file (a stat): 0, or -1 with errno. */
int		md_lc_cutoff_stamp(const struct md *md,
		    struct md_lc_stamp *s);
/*
 * The listing a close of the same maildrop kept, if new/ and cur/ are as
 * they were then (a stat of each): taken out of the cache into md, which
 * has no messages yet, with lc_keep set.
 */
enum md_lc_result md_lc_get(struct md *md, size_t max_msgs);
/*
 * Before md_free() of a maildrop whose session is over (a close, an
 * UPDATE, a failed open): with md->lc_keep, and the listing still the
 * scan's (not in Dovecot's order, no message followed to a new name),
 * keep it for the next open, replacing an older one; unless it is too
 * big or the cache is off.
 */
void		md_lc_keep(const struct md *md);
/* Forget md's listing (its messages were removed). */
void		md_lc_drop(const struct md *md);

/* commit.c */

/* The ops' commit (store.h): the unlinks, then md is freed. */
enum store_err	md_commit(struct maildrop *base, const uint8_t *del,
		    size_t *failed_r);

/* read.c */

/*
 * Follow messages another program moved from new/ to cur/ or renamed
 * with new flags (one pass over cur/, skipped when cur/ cannot have
 * changed since the last). target: a message index to follow even if
 * its unique part is shared, or SIZE_MAX. 1 if the target moved, 0 if
 * not, -1 on error (errno set).
 */
int		md_relocate(struct md *md, size_t target);
/* The ops' msg_open, msg_read, msg_close and msg_locate (store.h). */
enum store_err	md_msg_open(struct maildrop *base, size_t i,
		    struct store_reader **r_r);
ssize_t		md_msg_read(struct store_reader *base, void *buf, size_t len);
void		md_msg_close(struct store_reader *base);
enum store_err	md_msg_locate(struct maildrop *base, size_t i);

/* md.c */

/*
 * Close md's cached directory descriptors, release the session lock
 * (logged if that fails), free md; NULL: no-op.
 */
void		md_free(struct md *md);
/*
 * "<root>/<sub>[/<name>]" into buf (len bytes): 0, or -1 with errno
 * ENAMETOOLONG if it does not fit.
 */
int		md_path(const struct md *md, char *buf, size_t len,
		    const char *sub, const char *name);
/* The file name of m as it was last seen, "unique[:info]", into buf. */
void		md_msg_name(const struct md_msg *m, char *buf, size_t len);
/* The full path of m into buf: 0, or -1 (ENAMETOOLONG). */
int		md_msg_path(const struct md *md, const struct md_msg *m,
		    char *buf, size_t len);
/*
 * The cached descriptor of md's directory sub (MD_NEW, MD_CUR), opened if
 * need be (the cache is shared by all maildrops): -1 with errno, or
 * MD_DIRFD_NONE when the cache has no room now (open by the whole path).
 * On the event loop.
 */
#define MD_DIRFD_NONE	(-2)
int		md_dirfd_get(struct md *md, int sub);
/*
 * Hand fd, open on md's directory sub, to the cache if a slot is free;
 * else close it. Any thread; the caller no longer uses fd.
 */
void		md_dirfd_offer(struct md *md, int sub, int fd);
/* Close md's cached directory descriptors (any thread). */
void		md_dirfd_drop(const struct md *md);

#endif
