/*
 * test_fileio: the file helpers, on files in a mkdtemp() directory and on
 * pipes: short counts (a writer thread feeding a pipe in pieces), EINTR
 * (SIGALRM from an interval timer, its handler installed without
 * SA_RESTART, while the main thread blocks in read() or write()), and the
 * error paths.
 */
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/fileio.h"

struct fixture {
	char	 dir[64];
};

static volatile sig_atomic_t	 alarms;

static void
on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* SIGALRM every ms milliseconds, interrupting (no SA_RESTART); 0: off. */
static void
alarm_every(long ms)
{
	struct sigaction	 sa;
	struct itimerval	 it;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ms > 0 ? on_alarm : SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_usec = ms * 1000;
	it.it_interval.tv_usec = ms * 1000;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void
sleep_ms(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * A thread that feeds a pipe: len bytes of pattern in pieces of piece
 * bytes, pause_ms apart, then closes its end. SIGALRM is blocked in it,
 * so the main thread takes every alarm.
 */
struct feeder {
	pthread_t	 t;
	int		 fd;
	const char	*data;
	size_t		 len, piece;
	long		 pause_ms;
	size_t		 drained;	/* drain mode: bytes read */
	int		 drain;		/* read fd slowly instead */
	char		*sink;
};

static void *
feeder_main(void *arg)
{
	struct feeder	*f = arg;
	sigset_t	 set;
	size_t		 off, n;
	ssize_t		 r;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (f->drain) {
		/* Read slowly, so that the main thread's write() blocks. */
		for (;;) {
			sleep_ms(f->pause_ms);
			r = read(f->fd, f->sink + f->drained, f->piece);
			if (r <= 0)
				break;
			f->drained += (size_t)r;
		}
		close(f->fd);
		return NULL;
	}
	for (off = 0; off < f->len; off += n) {
		sleep_ms(f->pause_ms);
		n = f->len - off < f->piece ? f->len - off : f->piece;
		if (write(f->fd, f->data + off, n) != (ssize_t)n)
			break;
	}
	close(f->fd);
	return NULL;
}

static void
feeder_start(struct feeder *f)
{
	assert_int_equal(pthread_create(&f->t, NULL, feeder_main, f), 0);
}

static void
feeder_join(struct feeder *f)
{
	assert_int_equal(pthread_join(f->t, NULL), 0);
}

static char *
pattern(size_t len)
{
	char	*p = malloc(len);
	size_t	 i;

	assert_non_null(p);
	for (i = 0; i < len; i++)
		p[i] = (char)('a' + (i * 7 + i / 251) % 26);
	return p;
}

static void
put_file(const char *path, const char *data, size_t len)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_fileio.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	alarms = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 cmd[128];

	alarm_every(0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
test_close_keep_errno(void **state)
{
	int	 fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	errno = ENOSPC;
	fio_close_keep_errno(fds[0]);
	assert_int_equal(errno, ENOSPC);
	/* It was closed... */
	assert_int_equal(fcntl(fds[0], F_GETFD), -1);
	/* ... and a failing close() does not change errno either. */
	errno = EROFS;
	fio_close_keep_errno(fds[0]);
	assert_int_equal(errno, EROFS);
	errno = EIO;
	fio_close_keep_errno(-1);
	assert_int_equal(errno, EIO);
	close(fds[1]);
}

/* Pieces of 1000 bytes: read() comes back short, the loop goes on. */
static void
test_read_full_short_reads(void **state)
{
	struct feeder	 fe;
	char		*data = pattern(10000), buf[12000];
	int		 fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	memset(&fe, 0, sizeof(fe));
	fe.fd = fds[1];
	fe.data = data;
	fe.len = 10000;
	fe.piece = 1000;
	fe.pause_ms = 2;
	feeder_start(&fe);
	assert_int_equal(fio_read_full(fds[0], buf, 4500), 4500);
	assert_memory_equal(buf, data, 4500);
	/* More than is left: fewer, at the end of the file. */
	assert_int_equal(fio_read_full(fds[0], buf, sizeof(buf)), 5500);
	assert_memory_equal(buf, data + 4500, 5500);
	assert_int_equal(fio_read_full(fds[0], buf, sizeof(buf)), 0);
	feeder_join(&fe);
	close(fds[0]);
	free(data);
}

/* Alarms while read() waits for a slow writer: EINTR is retried. */
static void
test_read_eintr(void **state)
{
	struct feeder	 fe;
	char		*data = pattern(300), buf[400];
	int		 fds[2];

	(void)state;
	alarms = 0;
	assert_int_equal(pipe(fds), 0);
	memset(&fe, 0, sizeof(fe));
	fe.fd = fds[1];
	fe.data = data;
	fe.len = 300;
	fe.piece = 100;
	fe.pause_ms = 40;
	alarm_every(5);
	feeder_start(&fe);
	/* fio_read(): one read, the first piece, despite the alarms. */
	assert_int_equal(fio_read(fds[0], buf, sizeof(buf)), 100);
	assert_true(alarms > 0);
	assert_memory_equal(buf, data, 100);
	alarms = 0;
	assert_int_equal(fio_read_full(fds[0], buf, sizeof(buf)), 200);
	assert_true(alarms > 0);
	assert_memory_equal(buf, data + 100, 200);
	assert_int_equal(fio_read(fds[0], buf, sizeof(buf)), 0);
	alarm_every(0);
	feeder_join(&fe);
	close(fds[0]);
	free(data);
}

static void
test_read_errors(void **state)
{
	char	 buf[16];
	int	 fds[2];

	(void)state;
	assert_int_equal(fio_read(-1, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(fio_read_full(-1, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(fio_pread_full(-1, buf, sizeof(buf), 0), -1);
	assert_int_equal(errno, EBADF);
	/* pread on a pipe: ESPIPE. */
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(fio_pread_full(fds[0], buf, sizeof(buf), 0), -1);
	assert_int_equal(errno, ESPIPE);
	close(fds[0]);
	close(fds[1]);
	/* Nothing to read: 0, without a call that could block. */
	assert_int_equal(fio_read_full(-1, buf, 0), 0);
}

static void
test_pread_pwrite(void **state)
{
	struct fixture	*f = *state;
	char		 path[PATH_MAX], buf[64];
	int		 fd;

	snprintf(path, sizeof(path), "%s/p", f->dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd != -1);
	assert_int_equal(fio_pwrite_full(fd, "0123456789", 10, 0), 0);
	assert_int_equal(fio_pwrite_full(fd, "abc", 3, 4), 0);
	assert_int_equal(fio_pread_full(fd, buf, 10, 0), 10);
	assert_memory_equal(buf, "0123abc789", 10);
	/* From an offset, and fewer at the end of the file. */
	assert_int_equal(fio_pread_full(fd, buf, sizeof(buf), 5), 5);
	assert_memory_equal(buf, "bc789", 5);
	assert_int_equal(fio_pread_full(fd, buf, sizeof(buf), 10), 0);
	assert_int_equal(fio_pread_full(fd, buf, sizeof(buf), 1000), 0);
	/* The descriptor's offset is not used or moved. */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	/* An offset off_t cannot hold. */
	assert_int_equal(fio_pread_full(fd, buf, 1, UINT64_MAX), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(fio_pwrite_full(fd, "x", 1, UINT64_MAX), -1);
	assert_int_equal(errno, EINVAL);
	close(fd);
	/* Read-only: EBADF. */
	fd = open(path, O_RDONLY);
	assert_int_equal(fio_pwrite_full(fd, "x", 1, 0), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(fio_write_full(fd, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	close(fd);
}

/*
 * 1 MiB into a pipe that a slow reader drains 4 KiB at a time: write()
 * blocks, comes back short or with EINTR (the alarms); every byte
 * arrives, in order.
 */
static void
test_write_full_blocking(void **state)
{
	struct feeder	 fe;
	size_t		 len = 1024 * 1024;
	char		*data = pattern(len);
	int		 fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	memset(&fe, 0, sizeof(fe));
	fe.fd = fds[0];
	fe.drain = 1;
	fe.piece = 4096;
	fe.pause_ms = 1;
	fe.sink = malloc(len);
	assert_non_null(fe.sink);
	alarms = 0;
	alarm_every(2);
	feeder_start(&fe);
	assert_int_equal(fio_write_full(fds[1], data, len), 0);
	alarm_every(0);
	close(fds[1]);
	feeder_join(&fe);
	assert_true(alarms > 0);
	assert_int_equal(fe.drained, len);
	assert_memory_equal(fe.sink, data, len);
	free(fe.sink);
	free(data);
}

static void
test_write_full_epipe(void **state)
{
	int	 fds[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	assert_int_equal(fio_write_full(fds[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(fds[1]);
	/* Nothing to write: no call at all. */
	assert_int_equal(fio_write_full(-1, "x", 0), 0);
}

static void
test_fsync_dir(void **state)
{
	struct fixture	*f = *state;
	char		 path[PATH_MAX];

	assert_int_equal(fio_fsync_dir(f->dir), 0);
	snprintf(path, sizeof(path), "%s/missing", f->dir);
	errno = 0;
	assert_int_equal(fio_fsync_dir(path), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(path, sizeof(path), "%s/file", f->dir);
	put_file(path, "x", 1);
	assert_int_equal(fio_fsync_dir(path), -1);
	assert_int_equal(errno, ENOTDIR);
}

static void
test_read_file(void **state)
{
	struct fixture	*f = *state;
	char		 path[PATH_MAX], buf[8];

	snprintf(path, sizeof(path), "%s/rec", f->dir);
	put_file(path, "1234 host\n", 10);
	/* At most size - 1 bytes, then a NUL. */
	assert_int_equal(fio_read_file(path, 0, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "1234 ho");
	put_file(path, "12", 2);
	assert_int_equal(fio_read_file(path, O_NOFOLLOW, buf, sizeof(buf)), 2);
	assert_string_equal(buf, "12");
	put_file(path, "", 0);
	assert_int_equal(fio_read_file(path, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* Missing: -1 and "". */
	snprintf(path, sizeof(path), "%s/none", f->dir);
	strcpy(buf, "junk");
	assert_int_equal(fio_read_file(path, 0, buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(buf, "");
	/* A directory: read() fails with EISDIR. */
	strcpy(buf, "junk");
	assert_int_equal(fio_read_file(f->dir, 0, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EISDIR);
	assert_string_equal(buf, "");
}

static void
test_read_small(void **state)
{
	struct fixture	*f = *state;
	struct stat	 st;
	char		 path[PATH_MAX], link[PATH_MAX], *buf;
	size_t		 len;

	snprintf(path, sizeof(path), "%s/small", f->dir);
	put_file(path, "hello\nworld\n", 12);
	assert_int_equal(fio_read_small(path, O_NOFOLLOW, 12, 0, &st, &buf,
	    &len), 0);
	assert_int_equal(len, 12);
	assert_int_equal(st.st_size, 12);
	assert_string_equal(buf, "hello\nworld\n");
	free(buf);
	/* Empty. */
	put_file(path, "", 0);
	assert_int_equal(fio_read_small(path, 0, 12, 0, NULL, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);

	/* Over max: EFBIG; with FIO_HEAD its first max bytes. */
	put_file(path, "0123456789", 10);
	assert_int_equal(fio_read_small(path, 0, 9, 0, &st, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_null(buf);
	assert_int_equal(len, 0);
	assert_int_equal(st.st_size, 10);	/* it was there */
	assert_int_equal(fio_read_small(path, 0, 4, FIO_HEAD, &st, &buf,
	    &len), 0);
	assert_int_equal(len, 4);
	assert_string_equal(buf, "0123");
	free(buf);

	/* The owner is us: FIO_OWNED lets it through. */
	assert_int_equal(fio_read_small(path, 0, 100, FIO_OWNED, NULL, &buf,
	    &len), 0);
	free(buf);
	if (geteuid() == 0) {
		/* Another owner: EPERM. */
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(fio_read_small(path, 0, 100, FIO_OWNED, &st,
		    &buf, &len), -1);
		assert_int_equal(errno, EPERM);
		assert_null(buf);
		assert_int_not_equal(st.st_mode, 0);
	}

	/* Missing: st_mode 0 says there was no file. */
	snprintf(link, sizeof(link), "%s/none", f->dir);
	st.st_mode = 1;
	assert_int_equal(fio_read_small(link, 0, 100, 0, &st, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(st.st_mode, 0);
	assert_null(buf);

	/* A directory: EINVAL, st_mode set. */
	assert_int_equal(fio_read_small(f->dir, 0, 100, 0, &st, &buf, &len),
	    -1);
	assert_int_equal(errno, EINVAL);
	assert_true(S_ISDIR(st.st_mode));

	/* A symbolic link: followed, or ELOOP with O_NOFOLLOW. */
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(fio_read_small(link, 0, 100, 0, NULL, &buf, &len), 0);
	assert_int_equal(len, 10);
	free(buf);
	assert_int_equal(fio_read_small(link, O_NOFOLLOW, 100, 0, &st, &buf,
	    &len), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(st.st_mode, 0);
}

/* A FIFO with O_NONBLOCK: no hang, EINVAL. */
static void
test_read_small_fifo(void **state)
{
	struct fixture	*f = *state;
	char		 path[PATH_MAX], *buf;
	size_t		 len;

	snprintf(path, sizeof(path), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(fio_read_small(path, O_NONBLOCK, 100, 0, NULL, &buf,
	    &len), -1);
	assert_int_equal(errno, EINVAL);
	assert_null(buf);
}

static void
test_write_atomic(void **state)
{
	struct fixture	*f = *state;
	char		 path[PATH_MAX], tmp[PATH_MAX], *buf;
	size_t		 len;

	snprintf(path, sizeof(path), "%s/cache", f->dir);
	snprintf(tmp, sizeof(tmp), "%s/.cache.tmp", f->dir);
	assert_int_equal(fio_write_atomic(tmp, path, "one\n", 4, O_EXCL,
	    0600, 0), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(fio_read_small(path, 0, 100, 0, NULL, &buf, &len), 0);
	assert_string_equal(buf, "one\n");
	free(buf);
	/* Replaced, synced, with the mode asked for. */
	assert_int_equal(fio_write_atomic(tmp, path, "two two\n", 8, O_TRUNC,
	    0640, FIO_SYNC), 0);
	assert_int_equal(fio_read_small(path, 0, 100, 0, NULL, &buf, &len), 0);
	assert_string_equal(buf, "two two\n");
	free(buf);

	/* A temporary file of someone else's, with O_EXCL: untouched. */
	put_file(tmp, "theirs", 6);
	assert_int_equal(fio_write_atomic(tmp, path, "three\n", 6, O_EXCL,
	    0600, 0), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(fio_read_small(tmp, 0, 100, 0, NULL, &buf, &len), 0);
	assert_string_equal(buf, "theirs");
	free(buf);
	unlink(tmp);

	/* rename() fails (a directory in the way): tmp is removed. */
	snprintf(path, sizeof(path), "%s/dir", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(tmp, sizeof(tmp), "%s/dir/x", f->dir);
	put_file(tmp, "x", 1);
	snprintf(tmp, sizeof(tmp), "%s/.dir.tmp", f->dir);
	assert_int_equal(fio_write_atomic(tmp, path, "x", 1, O_EXCL, 0600,
	    FIO_SYNC), -1);
	assert_true(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
	assert_int_equal(access(tmp, F_OK), -1);

	/* No such directory: open() fails, nothing is left. */
	snprintf(tmp, sizeof(tmp), "%s/none/tmp", f->dir);
	assert_int_equal(fio_write_atomic(tmp, path, "x", 1, O_EXCL, 0600, 0),
	    -1);
	assert_int_equal(errno, ENOENT);
}

/* The three steps by hand; abort keeps errno and leaves nothing. */
static void
test_atomic_steps(void **state)
{
	struct fixture	*f = *state;
	char		 path[PATH_MAX], tmp[PATH_MAX], *buf;
	size_t		 len;
	int		 fd;

	snprintf(path, sizeof(path), "%s/f", f->dir);
	snprintf(tmp, sizeof(tmp), "%s/f.tmp", f->dir);
	put_file(path, "old", 3);
	fd = fio_atomic_open(tmp, O_EXCL | O_NOCTTY, 0600);
	assert_true(fd != -1);
	assert_int_equal(fio_write_full(fd, "new", 3), 0);
	errno = ENOSPC;
	fio_atomic_abort(fd, tmp);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(fio_read_small(path, 0, 100, 0, NULL, &buf, &len), 0);
	assert_string_equal(buf, "old");
	free(buf);

	fd = fio_atomic_open(tmp, O_EXCL, 0600);
	assert_true(fd != -1);
	assert_int_equal(fio_write_full(fd, "new", 3), 0);
	assert_int_equal(fio_atomic_commit(fd, tmp, path, FIO_SYNC), 0);
	assert_int_equal(fio_read_small(path, 0, 100, 0, NULL, &buf, &len), 0);
	assert_string_equal(buf, "new");
	free(buf);
	assert_int_equal(access(tmp, F_OK), -1);
	/* fsync() of a descriptor that cannot be synced: abort. */
	put_file(tmp, "", 0);
	assert_int_equal(fio_atomic_commit(-1, tmp, path, FIO_SYNC), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(access(tmp, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_keep_errno),
		cmocka_unit_test(test_read_full_short_reads),
		cmocka_unit_test(test_read_eintr),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test_setup_teardown(test_pread_pwrite, setup,
		    teardown),
		cmocka_unit_test(test_write_full_blocking),
		cmocka_unit_test(test_write_full_epipe),
		cmocka_unit_test_setup_teardown(test_fsync_dir, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_small, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_small_fifo, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_atomic_steps, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
