/*
 * fileio: full reads and writes, a directory fsync, small files read
 * whole and replaced atomically, the local file system test (see
 * fileio.h).
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>

#include <linux/magic.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fileio.h"

/*
 * The loop of the full reads: pread(2) from off on if at, else read(2),
 * until len bytes or the end of the file.
 */
static ssize_t
fio_fill(int fd, char *buf, size_t len, bool at, uint64_t off)
{
	size_t	 done = 0;
	ssize_t	 n;

	while (done < len) {
		if (at)
			n = pread(fd, buf + done, len - done,
			    (off_t)(off + done));
		else
			n = read(fd, buf + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* The loop of the full writes: pwrite(2) at off if at, else write(2). */
static int
fio_drain(int fd, const char *p, size_t len, bool at, uint64_t off)
{
	ssize_t	 n;

	while (len > 0) {
		if (at)
			n = pwrite(fd, p, len, (off_t)off);
		else
			n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
fio_read_full(int fd, void *buf, size_t len)
{
	return fio_fill(fd, buf, len, false, 0);
}

/* An offset past INT64_MAX is negative as an off_t: EINVAL. */
ssize_t
fio_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	return fio_fill(fd, buf, len, true, off);
}

int
fio_write_full(int fd, const void *buf, size_t len)
{
	return fio_drain(fd, buf, len, false, 0);
}

int
fio_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return fio_drain(fd, buf, len, true, off);
}

int
fio_fsync_dir(const char *path)
{
	int	 fd, rv;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rv = fsync(fd);
	fio_close_keep_errno(fd);
	return rv;
}

ssize_t
fio_read_file(const char *path, int oflags, char *buf, size_t size)
{
	ssize_t	 n;
	int	 fd;

	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | oflags)) == -1)
		return -1;
	n = fio_read_full(fd, buf, size - 1);
	fio_close_keep_errno(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/*
 * fio_read_small() on an open fd: fstat() into st (zeroed if it fails),
 * the checks, then the read. The bytes read, or -1 with errno.
 */
static ssize_t
fio_slurp(int fd, size_t max, unsigned flags, struct stat *st, char **buf_r)
{
	size_t	 want;
	ssize_t	 n;
	char	*buf;
	int	 saved;

	if (fstat(fd, st) == -1) {
		memset(st, 0, sizeof(*st));
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if ((flags & FIO_OWNED) && st->st_uid != geteuid()) {
		errno = EPERM;
		return -1;
	}
	want = (size_t)st->st_size;
	if ((uint64_t)st->st_size > max) {
		if (!(flags & FIO_HEAD)) {
			errno = EFBIG;
			return -1;
		}
		want = max;
	}
	if ((buf = malloc(want + 1)) == NULL)
		return -1;
	if ((n = fio_read_full(fd, buf, want)) == -1) {
		saved = errno;
		free(buf);
		errno = saved;
		return -1;
	}
	buf[n] = '\0';
	*buf_r = buf;
	return n;
}

int
fio_read_small(const char *path, int oflags, size_t max, unsigned flags,
    struct stat *st_r, char **buf_r, size_t *len_r)
{
	struct stat	 st;
	ssize_t		 n = -1;
	int		 fd;

	*buf_r = NULL;
	*len_r = 0;
	memset(&st, 0, sizeof(st));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | oflags)) != -1) {
		n = fio_slurp(fd, max, flags, &st, buf_r);
		fio_close_keep_errno(fd);
	}
	if (st_r != NULL)
		*st_r = st;
	if (n == -1)
		return -1;
	*len_r = (size_t)n;
	return 0;
}

int
fio_atomic_open(const char *tmp, int oflags, mode_t mode)
{
	return open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | oflags,
	    mode);
}

int
fio_atomic_commit(int fd, const char *tmp, const char *path, unsigned flags)
{
	if ((flags & FIO_SYNC) && fsync(fd) == -1) {
		fio_atomic_abort(fd, tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		fio_atomic_abort(-1, tmp);
		return -1;
	}
	return 0;
}

void
fio_atomic_abort(int fd, const char *tmp)
{
	int	 saved = errno;

	if (fd != -1)
		(void)close(fd);
	(void)unlink(tmp);
	errno = saved;
}

int
fio_write_atomic(const char *tmp, const char *path, const void *buf,
    size_t len, int oflags, mode_t mode, unsigned flags)
{
	int	 fd;

	if ((fd = fio_atomic_open(tmp, oflags, mode)) == -1)
		return -1;
	if (fio_write_full(fd, buf, len) == -1) {
		fio_atomic_abort(fd, tmp);
		return -1;
	}
	return fio_atomic_commit(fd, tmp, path, flags);
}

/* OpenZFS's f_type, which <linux/magic.h> does not name. */
#define FIO_ZFS_MAGIC	0x2FC12FC1

/* statfs(2)'s f_type of the file systems fio_fs_local() calls local. */
static const unsigned long fio_local_fs[] = {
	EXT4_SUPER_MAGIC,	/* ext2, ext3, ext4 */
	XFS_SUPER_MAGIC,
	BTRFS_SUPER_MAGIC,
	TMPFS_MAGIC,
	F2FS_SUPER_MAGIC,
	FIO_ZFS_MAGIC,
	OVERLAYFS_SUPER_MAGIC,	/* containers */
};

bool
fio_fs_local(const char *path)
{
	struct statfs	st;
	size_t		i;

	if (statfs(path, &st) == -1)
		return false;
	for (i = 0; i < sizeof(fio_local_fs) / sizeof(fio_local_fs[0]); i++)
		if ((unsigned long)st.f_type == fio_local_fs[i])
			return true;
	return false;
}
