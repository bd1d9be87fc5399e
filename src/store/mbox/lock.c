/*
 * lock: the MDA locks around the scan and the rewrite (the dotlock, then
 * an fcntl lock, each waited for).
 *
 * Locks. The session lock keeps POP3 sessions apart for a whole session
 * and holds no descriptor: an owner record in DIR/.NAME.evpop3d-lock
 * (sesslock.h), a hidden file that stays. Against the MDA and MUAs the
 * standard mbox locks are taken only for the short windows of the index
 * scan (open) and of the rewrite (commit), so deliveries go on during a
 * session: first the dotlock NAME.lock beside the mbox ("PID:HOST",
 * link()ed into place whole; one whose mtime is over 5 minutes old, or
 * over 2 seconds and naming a pid of this host that is gone, is stale and
 * broken; a directory we may not write in means fcntl alone), then an
 * fcntl lock, shared for the scan, exclusive for the rewrite: the order
 * Postfix local and dovecot-lda use, released in reverse. The fcntl lock
 * is an open file description lock (F_OFD_SETLK): it conflicts with the
 * MDAs' classic F_SETLK locks, and unlike those it is not dropped when
 * another thread of this process closes a descriptor of the same file.
 * Both are retried with short sleeps for up to 10 seconds.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/pidcache.h"
#include "store/mbox/mbox_int.h"
#include "store/mbox/mbox_test.h"
#include "store/store.h"

#define MB_DOTLOCK_STALE 300		/* seconds: Dovecot, procmail */
#define MB_DOTLOCK_DEAD	2		/* seconds, if its pid is gone */

static atomic_uint	 mb_lock_wait_ms;

void
store_mbox_set_lock_wait(unsigned ms)
{
	atomic_store(&mb_lock_wait_ms, ms);
}

static uint64_t
mb_deadline(void)
{
	unsigned	 ms = atomic_load(&mb_lock_wait_ms);

	return mono_ms() + (ms != 0 ? ms : STORE_MBOX_LOCK_WAIT_MS);
}

/* Sleep a little longer each try: 2, 4, ... up to 50 ms. */
static void
mb_backoff(unsigned *tries)
{
	struct timespec	 ts;
	unsigned	 ms = 2U << (*tries < 5 ? *tries : 5);

	if (ms > 50)
		ms = 50;
	(*tries)++;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)ms * 1000000L;
	nanosleep(&ts, NULL);
}

/*
 * Create the dotlock holding "PID:HOST\n" in one step, as Dovecot and
 * procmail do: the record goes into a temporary file that is then
 * link()ed to PATH.lock. Created and then written, a kill in between
 * would leave an empty lock that no dead-pid rule can break (Postfix
 * makes empty ones too; those wait for MB_DOTLOCK_STALE), and the host
 * keeps another machine's lock on a shared spool from looking dead.
 * Returns 0, or -1 with errno (EEXIST: held).
 */
static int
mb_dotlock_create(const struct mb *mb)
{
	char	 tmp[PATH_MAX], rec[HOST_NAME_MAX + 32];
	char	 host[HOST_NAME_MAX + 1];
	int	 fd, n, rv;

	if (gethostname(host, sizeof(host)) == -1)
		return -1;
	host[sizeof(host) - 1] = '\0';
	n = snprintf(rec, sizeof(rec), "%ld:%s\n", (long)pid_self(), host);
	if (n < 0 || (size_t)n >= sizeof(rec) ||
	    mb_tmp_name(mb, tmp, sizeof(tmp)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = fio_atomic_open(tmp, O_EXCL | O_NOCTTY, 0600)) == -1)
		return -1;
	if (fio_write_full(fd, rec, (size_t)n) == -1) {
		fio_atomic_abort(fd, tmp);
		return -1;
	}
	close(fd);
	/* link(), not rename(): an existing lock must make it fail. */
	rv = link(tmp, mb->dotlock);
	fio_atomic_abort(-1, tmp);	/* the temporary name goes either way */
	return rv;
}

/*
 * Is the dotlock (st) of a process that is gone? It names a pid of this
 * host ("PID\n", Dovecot's "PID:HOST", or a bare "PID") and no such
 * process runs: a crashed delivery or a killed evpop3d must not lock the
 * user out for 5 minutes. A complete record (a newline after the pid, or
 * our host name after it) is taken over at once. A bare "PID" may be a
 * record still being written by a program that creates the file first
 * and writes it after (its first digits could name another pid): that
 * one must be MB_DOTLOCK_DEAD seconds old (Dovecot's rule).
 */
static bool
mb_dotlock_dead(const struct mb *mb, const struct stat *st)
{
	char		 buf[128], host[HOST_NAME_MAX + 1], *end;
	const char	*h;
	long		 pid;

	if (fio_read_file(mb->dotlock, O_NOFOLLOW | O_NONBLOCK, buf,
	    sizeof(buf)) <= 0)
		return false;
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || pid <= 0 || pid > INT32_MAX ||
	    (*end != '\0' && *end != '\n' && *end != ' ' && *end != ':'))
		return false;
	if (*end == '\0' && st->st_mtime + MB_DOTLOCK_DEAD > time(NULL))
		return false;		/* perhaps half written */
	if (*end == ':') {
		h = end + 1;
		if (gethostname(host, sizeof(host)) == -1)
			return false;
		host[sizeof(host) - 1] = '\0';
		if (strncmp(h, host, strlen(host)) != 0 ||
		    (h[strlen(host)] != '\0' && h[strlen(host)] != '\n'))
			return false;		/* another host's */
	}
	/*
	 * Our own pid: a previous incarnation's (a restart got the same pid,
	 * as in a container). This process never waits for its own lock:
	 * the session lock, taken first, keeps every other session of this
	 * process away from this mbox.
	 */
	if (pid == (long)pid_self())
		return true;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/*
 * Take PATH.lock (the MDA dotlock). *held_r says whether we hold it: a
 * directory we cannot create files in leaves fcntl alone (logged).
 */
static enum store_err
mb_dotlock(struct mb *mb, uint64_t deadline, int *held_r, char *err,
    size_t errlen)
{
	struct stat	 st, st2;
	unsigned	 tries = 0;

	*held_r = 0;
	for (;;) {
		if (mb_dotlock_create(mb) == 0) {
			*held_r = 1;
			return STORE_OK;
		}
		switch (errno) {
		case EINTR:
			continue;
		case EACCES:
		case EPERM:
		case EROFS:
			log_warn("mbox %s: no dotlock, fcntl lock only",
			    mb->dotlock);
			return STORE_OK;
		case EEXIST:
			break;
		default:
			return store_fail(errno, err, errlen, "dotlock",
			    mb->dotlock);
		}
		if (lstat(mb->dotlock, &st) == -1) {
			if (errno == ENOENT)
				continue;		/* just released */
			return store_fail(errno, err, errlen, "dotlock",
			    mb->dotlock);
		}
		if (st.st_mtime + MB_DOTLOCK_STALE < time(NULL) ||
		    mb_dotlock_dead(mb, &st)) {
			/* Still the same lock file? (narrows the race) */
			if (lstat(mb->dotlock, &st2) == 0 &&
			    st2.st_ino == st.st_ino &&
			    st2.st_mtime == st.st_mtime) {
				if (unlink(mb->dotlock) == -1 &&
				    errno != ENOENT)
					return store_fail(errno, err, errlen,
					    "stale dotlock", mb->dotlock);
				log_warnx("mbox %s: removed a stale dotlock",
				    mb->dotlock);
			}
			continue;
		}
		if (mono_ms() >= deadline) {
			snprintf(err, errlen, "mbox %s: dotlock %s held by "
			    "another program", mb->path, mb->dotlock);
			return STORE_TEMP;
		}
		mb_backoff(&tries);
	}
}

static void
mb_dotunlock(struct mb *mb, int held)
{
	if (held && unlink(mb->dotlock) == -1)
		log_warn("mbox %s: dotlock removal", mb->dotlock);
}

/* The fcntl lock (type F_RDLCK or F_WRLCK) on fd, retried to deadline. */
static enum store_err
mb_fcntl_lock(struct mb *mb, int fd, short type, uint64_t deadline,
    char *err, size_t errlen)
{
	struct flock	 fl;
	unsigned	 tries = 0;
	int		 cmd = F_OFD_SETLK;

	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = type;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, cmd, &fl) == 0)
			return STORE_OK;
		if (errno == EINTR)
			continue;
		if (errno == EINVAL && cmd == F_OFD_SETLK) {
			cmd = F_SETLK;		/* no OFD locks here */
			continue;
		}
		if (errno != EAGAIN && errno != EACCES)
			return store_fail(errno, err, errlen, "fcntl lock",
			    mb->path);
		if (mono_ms() >= deadline) {
			snprintf(err, errlen, "mbox %s: locked by another "
			    "program", mb->path);
			return STORE_TEMP;
		}
		mb_backoff(&tries);
	}
}

/*
 * Open the mbox under both MDA locks (dotlock, then fcntl of type). The
 * descriptor names the file at the path once locked (a file renamed over
 * it while we waited is locked in its turn). Returns STORE_OK with *fd_r
 * (-1 if there is no file: then no lock is held) and *dot_r for
 * mb_unlock().
 */
enum store_err
mb_lock(struct mb *mb, int flags, short type, int *fd_r, int *dot_r,
    struct stat *st, char *err, size_t errlen)
{
	struct stat	 pst;
	uint64_t	 deadline = mb_deadline();
	enum store_err	 rv;
	int		 fd, tries;

	*fd_r = -1;
	if ((rv = mb_dotlock(mb, deadline, dot_r, err, errlen)) != STORE_OK)
		return rv;
	for (tries = 0; tries < 10; tries++) {
		fd = open(mb->path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd == -1 && errno == EACCES && (flags & O_ACCMODE) ==
		    O_RDWR) {
			/* Read-only for us: a read lock keeps writers out. */
			flags = (flags & ~O_ACCMODE) | O_RDONLY;
			type = F_RDLCK;
			tries--;
			continue;
		}
		if (fd == -1) {
			if (errno == ENOENT)
				return STORE_OK;
			rv = store_fail(errno, err, errlen, "open", mb->path);
			goto fail;
		}
		if (fstat(fd, st) == -1) {
			rv = store_fail(errno, err, errlen, "fstat", mb->path);
			goto fail_fd;
		}
		if (!S_ISREG(st->st_mode)) {
			snprintf(err, errlen, "mbox %s: not a regular file",
			    mb->path);
			rv = STORE_PERM;
			goto fail_fd;
		}
		if ((rv = mb_fcntl_lock(mb, fd, type, deadline, err,
		    errlen)) != STORE_OK)
			goto fail_fd;
		if (stat(mb->path, &pst) == 0 && pst.st_dev == st->st_dev &&
		    pst.st_ino == st->st_ino) {
			if (fstat(fd, st) == -1) {	/* size after lock */
				rv = store_fail(errno, err, errlen, "fstat",
				    mb->path);
				goto fail_fd;
			}
			*fd_r = fd;
			return STORE_OK;
		}
		close(fd);			/* replaced: lock the new one */
	}
	snprintf(err, errlen, "mbox %s: keeps being replaced", mb->path);
	rv = STORE_TEMP;
	goto fail;
fail_fd:
	close(fd);
fail:
	mb_dotunlock(mb, *dot_r);
	*dot_r = 0;
	return rv;
}

/* Release what mb_lock() took, in reverse order. */
void
mb_unlock(struct mb *mb, int fd, int dot)
{
	if (fd != -1)
		close(fd);		/* drops the fcntl lock */
	mb_dotunlock(mb, dot);
}
