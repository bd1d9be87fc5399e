#ifndef EVPOP3D_MAILDIR_SIZECACHE_H
#define EVPOP3D_MAILDIR_SIZECACHE_H

/*
 * maildir_sizecache: wire sizes of Maildir messages whose names carry no
 * ",W=", remembered in <root>/evpop3d-sizes so that a login does not read
 * every such message again (a 100,000-message Maildir would mean 100,000
 * files read per login).
 *
 * The file, written whole and renamed into place:
 *
 *	evpop3d-sizes 1
 *	<unique part of a message name> <wire size>
 *	...
 *	end <number of entries>
 *
 * It is a cache, never the truth: only names the directory listing still
 * has are looked up (a Maildir unique name is never reused for other
 * content), and a file that is missing, truncated or malformed in any way
 * is ignored as a whole and written again. The caller holds the maildrop
 * lock, so there is one writer at a time.
 */

#include <stddef.h>
#include <stdint.h>

#define MAILDIR_SIZECACHE_FILE	"evpop3d-sizes"

struct sizecache;

/* Load root's cache; an unusable file gives an empty cache. NULL: ENOMEM. */
struct sizecache	*sizecache_load(const char *root);

/* The wire size cached for the unique part name (len bytes): 0, or -1. */
int		 sizecache_get(struct sizecache *c, const char *name,
		    size_t len, uint64_t *size_r);

/* Remember a size computed for name. -1 on ENOMEM (then not cached). */
int		 sizecache_put(struct sizecache *c, const char *name,
		    size_t len, uint64_t size);

/*
 * Write root's cache again if it changed: new sizes, entries that were not
 * looked up (their messages are gone), or an unusable file. Atomic (a
 * temporary file in root/tmp/, then rename), sorted by name. 0, or -1 with
 * errno set; a failure only costs the next login some reading. Only
 * sizecache_free() may follow.
 */
int		 sizecache_save(struct sizecache *c, const char *root);

void		 sizecache_free(struct sizecache *c);

#endif
