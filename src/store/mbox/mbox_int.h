/*
 * mbox_int: the insides of the mbox driver, shared by its files and seen
 * by them alone (PRIVATE_HEADERS of the mbox part in CMakeLists.txt): the
 * maildrop and its entries, and what one file calls in another.
 *
 *	mbox.c		the ops table, open(), the message list, close()
 *	commit.c	UPDATE: the rewrite, and leftover temporary files
 *	read.c		msg_open(), msg_read(): a message as the client sees it
 *	uidl.c		the visible messages and their UIDLs
 *	cache.c		the index cache, so that a scan reads only new mail
 *	scan.c		the index: one read of the file through the parser
 *	lock.c		the MDA locks: dotlock, then fcntl
 *	mb.c		temporary file names, mb_free()
 *
 * Calls go down this list, never up or across to a file above: mbox.c
 * calls them all; commit.c calls cache.c and lock.c; read.c calls
 * cache.c; cache.c calls scan.c; mb.c, the bottom, is called by all and
 * calls none of them.
 *
 * The format is mbox_parse.h's; how the parts work, each file's opening
 * comment.
 */
#ifndef EVPOP3D_MBOX_INT_H
#define EVPOP3D_MBOX_INT_H

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/fileio.h"
#include "store/arena.h"
#include "store/mbox/mbox_parse.h"
#include "store/store.h"

#define MB_READ_CHUNK	(16 * 1024)	/* pread size of a reader */
#define MB_IX_SUFFIX	".evpop3d-index"	/* DIR/.NAME + this */

struct sesslock;

/* An entry of the mbox: a message, or the pseudo message. */
struct mb_msg {
	uint64_t	 from_off;	/* the separator line */
	uint64_t	 end_off;	/* message end; the dropped terminator
					 * runs up to the next entry */
	uint64_t	 size;		/* wire size */
	uint64_t	 hash;		/* mbox_hash of the whole raw entry */
	const char	*uidl;
	const char	*md5;		/* hex, of the client's header block */
	const char	*xuidl;		/* a valid X-UIDL header, or NULL */
	uint32_t	 from_len;	/* separator line with terminator */
	uint32_t	 from_hash;	/* its checksum, low half */
	uint32_t	 xuid;
	unsigned	 has_xuid:1;
	unsigned	 hidden:1;	/* the pseudo message */
	unsigned	 no_eol:1;	/* the entry ends without a '\n' */
};

/* The maildrop (store.h): the mbox as open() indexed it. */
struct mb {
	struct maildrop	 base;
	char		*path;		/* the mbox file */
	char		*dir;		/* its directory */
	char		*name;		/* its last component */
	char		*slock;		/* DIR/.NAME.evpop3d-lock */
	char		*dotlock;	/* PATH.lock */
	char		*ixpath;	/* DIR/.NAME.evpop3d-index */
	struct sesslock	*lock;		/* the session lock, held */
	unsigned	 has_uidvalidity:1;
	uint32_t	 uidvalidity;
	dev_t		 dev;
	ino_t		 ino;
	uint64_t	 end;		/* indexed end: the size at open */
	uint64_t	 ix_end;	/* end of the index cache used, or 0 */
	struct mb_msg	*msgs;		/* every entry, pseudo message too */
	size_t		 nmsgs, msgs_cap;
	uint32_t	*vis;		/* visible -> msgs index; NULL: same */
	size_t		 nvis;
	uint64_t	 total;
	struct arena	 arena;		/* uidl, md5, xuidl strings */
};

/* A message being read (read.c). */
struct mb_reader {
	struct store_reader	 base;
	struct mb		*mb;
	int			 fd;
	uint64_t		 pos;		/* next raw offset to read */
	uint64_t		 end;		/* message end */
	uint64_t		 entry_end;
	uint64_t		 want;		/* the entry's checksum */
	struct mbox_hash	 h;
	struct mbox_filter	 f;
	size_t			 rpos, rlen;	/* raw[] not yet filtered */
	char			 raw[MB_READ_CHUNK];
};

/* A new index cache's header, taken under the lock (cache.c). */
struct mb_ixhead {
	uint64_t	 end;		/* the last message's separator */
	uint64_t	 head;		/* checksum of the first SAMPLE */
	uint64_t	 tail;		/* ... of the SAMPLE before end */
};

/* The visible message i (the pseudo message is not one). */
static inline struct mb_msg *
mb_vis(const struct mb *mb, size_t i)
{
	return &mb->msgs[mb->vis != NULL ? mb->vis[i] : i];
}

/* Where entry k ends: the next separator, or the indexed end. */
static inline uint64_t
mb_entry_end(const struct mb *mb, size_t k)
{
	return k + 1 < mb->nmsgs ? mb->msgs[k + 1].from_off : mb->end;
}

/* pread all of len bytes; -1 with errno (ESTALE for a short file). */
static inline int
mb_pread(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t	 n;

	if ((n = fio_pread_full(fd, buf, len, off)) == -1)
		return -1;
	if ((size_t)n < len) {
		errno = ESTALE;
		return -1;
	}
	return 0;
}

/* commit.c */

/* The ops' commit (store.h): all or nothing, then mb is freed. */
enum store_err	mb_commit(struct maildrop *base, const uint8_t *del,
		    size_t *failed_r);
/* Is a look for leftover temporary files in dir due? Thread-safe. */
bool		mb_clean_due(const char *dir);
/*
 * Remove the temporary files of rewrites that died: every mbox's in the
 * directory with all, else this one's. Best effort.
 */
void		mb_clean_tmp(struct mb *mb, bool all);

/* read.c: the ops' msg_open, msg_read and msg_close (store.h). */

enum store_err	mb_msg_open(struct maildrop *base, size_t i,
		    struct store_reader **r_r);
ssize_t		mb_msg_read(struct store_reader *base, void *buf, size_t len);
void		mb_msg_close(struct store_reader *base);

/* uidl.c */

/* The visible messages (mb->vis, mb->nvis) and their total size. */
enum store_err	mb_make_vis(struct mb *mb, char *err, size_t errlen);
/*
 * Every visible message's UIDL, unique in the maildrop, fmt the [pop3]
 * uidl_format (NULL or "": none). Out of memory: STORE_TEMP, err set.
 */
enum store_err	mb_make_uidls(struct mb *mb, const char *fmt, char *err,
		    size_t errlen);

/* cache.c */

/*
 * Under the read lock (fd, st): load the index cache if it describes
 * this mbox as it is now. true with mb->msgs and mb->ix_end set (the scan
 * goes on from there); false with nothing loaded.
 */
bool		mb_ix_load(struct mb *mb, int fd, const struct stat *st);
/*
 * After the scan, still under the lock: true if a new cache is due, its
 * header in *h for mb_ix_write() (which may run after the unlock).
 */
bool		mb_ix_prepare(struct mb *mb, int fd, struct mb_ixhead *h);
/* Write the cache with header h. Best effort: failures logged at debug. */
void		mb_ix_write(struct mb *mb, const struct mb_ixhead *h);
/* Remove the cache (the mbox changed): the next open scans it all. */
void		mb_ix_drop(struct mb *mb);

/* scan.c */

/*
 * Read the mbox (fd, locked) from start (0, or the index cache's end: a
 * separator line) to its end, appending to mb->msgs, and set mb->end.
 * From start > 0 without a separator line there, *nosep_r is set and
 * nothing was added. STORE_PERM for a file that is no mbox; other errors
 * with err set.
 */
enum store_err	mb_index(struct mb *mb, int fd, uint64_t start, bool *nosep_r,
		    char *err, size_t errlen);
/* Back to no index at all: no entries, no strings, no cache used. */
void		mb_index_reset(struct mb *mb);

/* lock.c */

/*
 * Open the mbox with flags under both MDA locks: the dotlock, then an
 * fcntl lock of type (F_RDLCK or F_WRLCK; a read lock if we may only
 * read), each waited for up to the lock wait. STORE_OK with *fd_r (-1 if
 * there is no file: then no lock is held), the fstat() after locking in
 * *st and *dot_r, all for mb_unlock(); else an error with err set and
 * nothing held.
 */
enum store_err	mb_lock(struct mb *mb, int flags, short type, int *fd_r,
		    int *dot_r, struct stat *st, char *err, size_t errlen);
/* Release what mb_lock() took, in reverse order (fd -1: no file). */
void		mb_unlock(struct mb *mb, int fd, int dot);

/* mb.c */

/* Release the session lock (logged if that fails), free mb; NULL: no-op. */
void		mb_free(struct mb *mb);
/*
 * A new temporary file name beside the mbox, DIR/.NAME.evpop3d-tmp.PID.N,
 * into buf (len bytes): 0, or -1 if it does not fit.
 */
int		mb_tmp_name(const struct mb *mb, char *buf, size_t len);

#endif
