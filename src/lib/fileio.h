/*
 * fileio: the small file helpers of the daemon's blocking I/O (store
 * drivers, lock files, caches, the passwd-file), so that each idiom is
 * written once: reads and writes retried on EINTR and carried on after
 * a short count, a close() that keeps errno for the caller, a directory
 * fsync(), a small file read whole, a small file replaced atomically
 * (a temporary file renamed over it), and whether a path is on a local
 * file system.
 *
 * Every function is thread-safe (no shared state) and blocks. Descriptors
 * are opened O_CLOEXEC. Functions that return -1 leave errno saying why.
 */
#ifndef EVPOP3D_FILEIO_H
#define EVPOP3D_FILEIO_H

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* fio_read_small() flags. */
#define FIO_HEAD	0x01	/* a file over max: read its first max bytes */
#define FIO_OWNED	0x02	/* refuse a file another user owns (EPERM) */

/* fio_atomic_commit() and fio_write_atomic() flags. */
#define FIO_SYNC	0x01	/* fsync() the file before the rename() */

/*
 * close(fd) leaving errno as it was: the clean-up on a failure path,
 * where errno must still tell the failure. fd -1 is ignored.
 */
static inline void
fio_close_keep_errno(int fd)
{
	int	 saved = errno;

	if (fd != -1)
		(void)close(fd);
	errno = saved;
}

/*
 * One read(2), retried on EINTR: > 0 bytes, 0 at the end of the file, -1
 * with errno. For callers that want a short count (a reader that stops
 * at the first short read); fio_read_full() fills the buffer.
 */
static inline ssize_t
fio_read(int fd, void *buf, size_t len)
{
	ssize_t	 n;

	do {
		n = read(fd, buf, len);
	} while (n == -1 && errno == EINTR);
	return n;
}

/*
 * Read until len bytes are in buf or the file ends, retrying on EINTR and
 * after short reads. Returns the bytes read (fewer than len only at the
 * end of the file), or -1 with errno (what was read before is lost).
 */
ssize_t	fio_read_full(int fd, void *buf, size_t len);

/* As fio_read_full(), with pread(2) from file offset off on. */
ssize_t	fio_pread_full(int fd, void *buf, size_t len, uint64_t off);

/*
 * Write all len bytes, retrying on EINTR and after short writes. 0, or
 * -1 with errno (ENOSPC if write(2) wrote nothing without an error); part
 * of buf may have been written then.
 */
int	fio_write_full(int fd, const void *buf, size_t len);

/* As fio_write_full(), with pwrite(2) at file offset off on. */
int	fio_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/*
 * fsync() the directory path, so that the renames, links and unlinks
 * made in it are on disk. 0, or -1 with errno (of open() or fsync()).
 */
int	fio_fsync_dir(const char *path);

/*
 * Read the start of the file at path into buf (size > 0 bytes): at most
 * size - 1 bytes, up to the end of the file, then a NUL. Opened O_RDONLY
 * with oflags added (O_NOFOLLOW, O_NONBLOCK, ...). Returns the bytes read,
 * or -1 with errno and buf "". For short records: a lock file, a line of
 * /proc.
 */
ssize_t	fio_read_file(const char *path, int oflags, char *buf, size_t size);

/*
 * Read the regular file at path whole into a new buffer: *buf_r (free()
 * it) holds *len_r bytes and a NUL after them. Opened O_RDONLY with oflags
 * added (O_NOFOLLOW refuses a symbolic link: ELOOP). The size is taken by
 * fstat() first, into *st_r if st_r is not NULL: bytes appended later are
 * not read, and a file that shrank meanwhile gives fewer (the caller
 * compares *len_r with st_r->st_size if that matters). Returns 0, or -1
 * with *buf_r NULL and errno: open(), fstat(), read() or malloc()'s,
 * EINVAL for anything but a regular file, EPERM with FIO_OWNED for a file
 * the effective user does not own, EFBIG for a file over max bytes unless
 * FIO_HEAD (then its first max bytes are read). After a failure,
 * st_r->st_mode is 0 if the file could not be opened and fstat()ed, so a
 * caller can tell "no file" from "a file it cannot use".
 */
int	fio_read_small(const char *path, int oflags, size_t max,
	    unsigned flags, struct stat *st_r, char **buf_r, size_t *len_r);

/*
 * Atomic replacement of a file, in three steps: fio_atomic_open() creates
 * the temporary file tmp (in the directory of the final path, so that
 * rename() is atomic), the caller writes it through the descriptor,
 * then either fio_atomic_commit() renames it over path or
 * fio_atomic_abort() removes it. At every instant path names the old
 * file or the complete new one.
 */

/*
 * Create tmp for writing: O_WRONLY | O_CREAT | O_NOFOLLOW and oflags
 * (O_EXCL for a name of its own, or O_TRUNC to reuse a name a crash left),
 * with mode. The descriptor, or -1 with errno.
 */
int	fio_atomic_open(const char *tmp, int oflags, mode_t mode);

/*
 * Finish: fsync() with FIO_SYNC (without it a crash may leave an empty or
 * partial file at path: for caches that are checked when read), close(),
 * rename(tmp, path). 0; or -1 with errno, fd closed and tmp removed.
 */
int	fio_atomic_commit(int fd, const char *tmp, const char *path,
	    unsigned flags);

/* Give up: close fd, remove tmp; errno is left as it was. */
void	fio_atomic_abort(int fd, const char *tmp);

/*
 * The three steps for a file of len bytes from buf: 0, or -1 with errno
 * and nothing left at tmp (path untouched).
 */
int	fio_write_atomic(const char *tmp, const char *path, const void *buf,
	    size_t len, int oflags, mode_t mode, unsigned flags);

/*
 * path is on a local file system (ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS,
 * overlayfs), not a network one (NFS, CIFS, FUSE, Ceph ...) where every
 * call may be a round trip to a server that hangs. statfs(2); false when
 * it fails.
 */
bool	fio_fs_local(const char *path);

#endif
