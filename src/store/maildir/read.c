/*
 * read: msg_open() and msg_read() on the event loop, a message's file
 * opened relative to a cached descriptor of its directory; msg_locate()
 * on a worker for a message another program moved (to cur/, or renamed
 * with new flags): one pass over cur/ follows every message that moved,
 * by its unique part (md_relocate(), which commit() uses too).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "store/maildir/maildir_int.h"
#include "store/store.h"

struct md_reader {
	struct store_reader	 base;
	int			 fd;
	int			 eof;	/* a short read: the file ends there */
};

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
	md->lc_keep = 0;		/* not the listing of the open */
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
int
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
	    md->reloc_mtime.tv_sec < md->reloc_start - 1)
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
	if ((dir = opendir(dpath)) == NULL)
		goto fail;
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
	md->reloc_start = now.tv_sec;
	md->reloc_valid = 1;
	return moved;
nomem:
	errno = ENOMEM;
fail:
	saved = errno;
	if (dir != NULL)
		closedir(dir);
	idtab_free(&t);
	errno = saved;
	return -1;
}

static int
md_open_file(struct md *md, const struct md_msg *m)
{
	char	 name[PATH_MAX];
	int	 dfd;

	if ((dfd = md_dirfd_get(md, m->in_cur ? MD_CUR : MD_NEW)) == -1)
		return -1;
	if (dfd == MD_DIRFD_NONE) {
		if (md_msg_path(md, m, name, sizeof(name)) == -1)
			return -1;
		dfd = AT_FDCWD;
	} else
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
enum store_err
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
	r->base.ops = md->base.ops;
	r->fd = fd;
	r->eof = 0;
	*r_r = &r->base;
	return STORE_OK;
}

ssize_t
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

void
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
enum store_err
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
