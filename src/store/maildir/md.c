/*
 * md: the bottom of the Maildir driver, called by its other files and
 * calling none of them: the maildrop's names and paths, the cache of its
 * directories' descriptors, and freeing it.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/monotime.h"
#include "store/maildir/maildir_int.h"
#include "store/sesslock.h"
#include "store/store.h"

const char *const md_subdir[2] = { "new", "cur" };

/* Append "/<s>" at buf[*off]; -1 if it and a NUL do not fit in len. */
static int
md_path_add(char *buf, size_t len, size_t *off, const char *s)
{
	size_t	 n = strlen(s);

	if (len - *off < n + 2)
		return -1;
	buf[(*off)++] = '/';
	memcpy(buf + *off, s, n + 1);
	*off += n;
	return 0;
}

/*
 * "<root>/<sub>[/<name>]" into buf; -1 if it does not fit. Copies, not
 * snprintf(): 850 instructions a path, three paths a login.
 */
int
md_path(const struct md *md, char *buf, size_t len, const char *sub,
    const char *name)
{
	size_t	 off = strlen(md->path);

	if (off >= len)
		goto toolong;
	memcpy(buf, md->path, off);
	if (md_path_add(buf, len, &off, sub) == -1 ||
	    (name != NULL && md_path_add(buf, len, &off, name) == -1))
		goto toolong;
	return 0;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

/*
 * The file name of m as it was last seen ("unique[:info]"). Copies, not
 * snprintf: this runs at every RETR. readdir gave the name, so it is at
 * most NAME_MAX octets and the callers' buffers hold it.
 */
void
md_msg_name(const struct md_msg *m, char *buf, size_t len)
{
	size_t	 ulen = strlen(m->name), ilen = 0;

	if (m->has_info)
		ilen = strlen(m->name + ulen + 1);
	if (ulen + 1 + ilen >= len) {		/* cannot happen: cut */
		snprintf(buf, len, "%s", m->name);
		return;
	}
	memcpy(buf, m->name, ulen);
	if (m->has_info) {
		buf[ulen] = ':';
		memcpy(buf + ulen + 1, m->name + ulen + 1, ilen);
		ulen += 1 + ilen;
	}
	buf[ulen] = '\0';
}

/* The full path of m; -1 if it does not fit. */
int
md_msg_path(const struct md *md, const struct md_msg *m, char *buf,
    size_t len)
{
	char	 name[NAME_MAX + 2];

	md_msg_name(m, name, sizeof(name));
	return md_path(md, buf, len, md_subdir[m->in_cur], name);
}

/*
 * Directory descriptors of the maildrops being read. RETR opens a message
 * relative to cur/ or new/ instead of walking its whole path again (the
 * walk was a tenth of a full download's CPU). A small cache shared by all
 * sessions, not a descriptor per session: an idle session must cost one
 * descriptor. Lookups and evictions happen on the event loop (msg_open);
 * the scan offers the descriptors it read with (md_dirfd_offer(), only
 * into a free slot) and md_free() drops a maildrop's entries, from
 * whichever thread runs them, so a descriptor is only ever closed by its
 * own maildrop's owner or by the loop itself. md->dirfd_slot remembers
 * where md's entries were, so that a lookup is one compare, not a walk of
 * the cache (500 instructions a RETR).
 *
 * A new entry takes a free slot, else the least recently used one if it
 * has not been used for MD_DIRFD_COLD_US; else there is none (MD_DIRFD_NONE)
 * and the message is opened by its whole path. Plain LRU thrashed once
 * more sessions read at once than there are slots: at 500 concurrent
 * `full` sessions every RETR opened cur/ and closed another session's,
 * three system calls where one does.
 */
#define MD_DIRFD_CACHE	STORE_CACHED_FDS
#define MD_DIRFD_COLD_US	(1000 * 1000)

static struct md_dirfd {
	const struct md	*md;		/* NULL: free slot */
	int		 sub;
	int		 fd;
	uint64_t	 used_us;	/* mono_us() of the last use */
} md_dirfds[MD_DIRFD_CACHE];
static pthread_mutex_t	 md_dirfd_mtx = PTHREAD_MUTEX_INITIALIZER;

/* Make slot e md's entry for sub, holding fd. Under md_dirfd_mtx. */
static void
md_dirfd_set(struct md *md, int sub, struct md_dirfd *e, int fd,
    uint64_t now_us)
{
	e->md = md;
	e->sub = sub;
	e->fd = fd;
	e->used_us = now_us;
	md->dirfd_slot[sub] = (unsigned char)(e - md_dirfds);
}

/*
 * A slot for a new entry: a free one, else the least recently used if it
 * is cold; NULL if none. Under md_dirfd_mtx.
 */
static struct md_dirfd *
md_dirfd_victim(uint64_t now_us)
{
	struct md_dirfd	*e, *victim = &md_dirfds[0];
	size_t		 i;

	for (i = 0; i < MD_DIRFD_CACHE; i++) {
		e = &md_dirfds[i];
		if (e->md == NULL)
			return e;
		if (e->used_us < victim->used_us)
			victim = e;
	}
	return victim->used_us + MD_DIRFD_COLD_US <= now_us ? victim : NULL;
}

/*
 * The cached descriptor of md's sub directory, opened if needed; -1 with
 * errno, or MD_DIRFD_NONE when every slot is in recent use. An entry of
 * md's is always in the slot md_dirfd_set() noted in md. The open runs
 * unlocked (a worker may fill a free slot meanwhile): the slot is chosen
 * after it.
 */
int
md_dirfd_get(struct md *md, int sub)
{
	struct md_dirfd	*e;
	char		 path[PATH_MAX];
	uint64_t	 now_us = mono_us();
	int		 fd;

	pthread_mutex_lock(&md_dirfd_mtx);
	e = &md_dirfds[md->dirfd_slot[sub]];
	if (e->md == md && e->sub == sub) {
		e->used_us = now_us;
		pthread_mutex_unlock(&md_dirfd_mtx);
		return e->fd;
	}
	e = md_dirfd_victim(now_us);
	pthread_mutex_unlock(&md_dirfd_mtx);
	if (e == NULL)
		return MD_DIRFD_NONE;

	if (md_path(md, path, sizeof(path), md_subdir[sub], NULL) == -1 ||
	    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	pthread_mutex_lock(&md_dirfd_mtx);
	if ((e = md_dirfd_victim(now_us)) == NULL) {
		pthread_mutex_unlock(&md_dirfd_mtx);
		close(fd);		/* taken meanwhile */
		return MD_DIRFD_NONE;
	}
	if (e->md != NULL)
		close(e->fd);
	md_dirfd_set(md, sub, e, fd, now_us);
	pthread_mutex_unlock(&md_dirfd_mtx);
	return fd;
}

/*
 * The scan read md's sub directory through fd: keep it for the RETRs to
 * come if a slot is free, else close it. Never evicts: an entry in use
 * belongs to a maildrop the loop may be reading right now.
 */
void
md_dirfd_offer(struct md *md, int sub, int fd)
{
	struct md_dirfd	*e, *free_e = NULL;
	size_t		 i;

	pthread_mutex_lock(&md_dirfd_mtx);
	for (i = 0; i < MD_DIRFD_CACHE; i++) {
		e = &md_dirfds[i];
		if (e->md == md && e->sub == sub) {	/* a scan retried */
			free_e = NULL;
			break;
		}
		if (e->md == NULL && free_e == NULL)
			free_e = e;
	}
	if (free_e != NULL)
		md_dirfd_set(md, sub, free_e, fd, mono_us());
	pthread_mutex_unlock(&md_dirfd_mtx);
	if (free_e == NULL)
		close(fd);
}

/* Close md's cached directory descriptors, from any thread. */
void
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

/* Drop md's descriptors, release its session lock, free it. */
void
md_free(struct md *md)
{
	if (md == NULL)
		return;
	md_dirfd_drop(md);
	if (sesslock_release(md->lock) == -1)
		log_warn("maildir %s: session lock release", md->path);
	arena_free(&md->arena);
	free(md->msgs);
	free(md->uidls);
	free(md);
}
