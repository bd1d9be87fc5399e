/*
 * sesslock: the POP3 session lock as an owner-naming lock file (see
 * sesslock.h for the format and the staleness rules).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sesslock.h"

#define BOOT_ID_MAX	40
#define HOST_MAX	64
#define LOCK_TRIES	3	/* creates to try when breaking stale locks */

struct owner {
	long		pid;
	uint64_t	start;			/* clock ticks after boot */
	char		boot[BOOT_ID_MAX];
	char		host[HOST_MAX];
};

/* This process, as written into its locks; redone after a fork. */
static pthread_mutex_t	 self_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct owner	 self;
static char		 self_line[160];
static size_t		 self_len;

/* Field 22 of /proc/<pid>/stat. 0 and errno set when unreadable. */
static uint64_t
proc_start(long pid)
{
	char		 path[64], buf[1024], *p;
	unsigned long long start;
	ssize_t		 n;
	int		 fd, i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and ')': skip to the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (i = 2; i < 22 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

static void
read_line_file(const char *path, char *buf, size_t len)
{
	ssize_t	 n;
	int	 fd;

	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		n = 0;
	buf[n] = '\0';
	buf[strcspn(buf, " \t\r\n")] = '\0';
}

/* This process's identity into o; returns the length of self_line. */
static size_t
self_identity(struct owner *o)
{
	size_t	 len;

	pthread_mutex_lock(&self_mtx);
	if (self.pid != (long)getpid()) {
		memset(&self, 0, sizeof(self));
		self.pid = (long)getpid();
		self.start = proc_start(self.pid);
		read_line_file("/proc/sys/kernel/random/boot_id", self.boot,
		    sizeof(self.boot));
		if (gethostname(self.host, sizeof(self.host)) == -1)
			self.host[0] = '\0';
		self.host[sizeof(self.host) - 1] = '\0';
		self.host[strcspn(self.host, " \t\r\n")] = '\0';
		self_len = (size_t)snprintf(self_line, sizeof(self_line),
		    "%ld %" PRIu64 " %s %s\n", self.pid, self.start,
		    self.boot[0] != '\0' ? self.boot : "-",
		    self.host[0] != '\0' ? self.host : "-");
	}
	*o = self;
	len = self_len;
	pthread_mutex_unlock(&self_mtx);
	return len;
}

/*
 * Parse a lock file's text: 0 with o filled; -1 when it is not a complete
 * line yet (being written); -2 when it is a complete line of another
 * format (such as the bare pid that evpop3d 0.1's fcntl lock files held).
 */
static int
owner_parse(const char *text, struct owner *o)
{
	unsigned long long start;

	memset(o, 0, sizeof(*o));
	if (strchr(text, '\n') == NULL)
		return -1;
	if (sscanf(text, "%ld %llu %39s %63s", &o->pid, &start, o->boot,
	    o->host) != 4 || o->pid <= 0)
		return -2;
	o->start = start;
	return 0;
}

/* Whether the owner of a lock may still be running. */
static int
owner_alive(const struct owner *o, const struct owner *me)
{
	uint64_t	 start;

	if (strcmp(o->host, me->host) != 0)
		return 1;		/* another host: cannot tell */
	if (strcmp(o->boot, me->boot) != 0)
		return 0;		/* written before a reboot */
	if (o->pid == me->pid)
		return o->start == me->start;
	if (kill((pid_t)o->pid, 0) == -1 && errno == ESRCH)
		return 0;
	start = proc_start(o->pid);
	return start == 0 || start == o->start;
}

enum store_err
sesslock_acquire(const char *path, char *err, size_t errlen)
{
	struct owner	 me, holder;
	struct stat	 st, st2;
	char		 text[256], ebuf[128];
	size_t		 len;
	ssize_t		 n;
	int		 fd, tries;

	len = self_identity(&me);
	for (tries = 0; tries < LOCK_TRIES; tries++) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd != -1) {
			pthread_mutex_lock(&self_mtx);
			n = write(fd, self_line, len);
			pthread_mutex_unlock(&self_mtx);
			if (n != (ssize_t)len) {
				if (n >= 0)
					errno = ENOSPC;
				goto fail_written;
			}
			if (close(fd) == -1) {
				fd = -1;
				goto fail_written;
			}
			return STORE_OK;
		}
		if (errno != EEXIST)
			goto fail;

		/* Someone holds it, or held it and is gone. */
		if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
			if (errno == ENOENT)
				continue;	/* released meanwhile */
			goto fail;
		}
		n = fstat(fd, &st) == -1 ? -1 : read(fd, text, sizeof(text) - 1);
		close(fd);
		if (n < 0)
			goto fail;
		text[n] = '\0';
		switch (owner_parse(text, &holder)) {
		case -1:
			/* Being written, or its writer died before writing. */
			if (time(NULL) - st.st_mtime < SESSLOCK_STALE_EMPTY)
				goto inuse;
			break;
		case 0:
			if (owner_alive(&holder, &me))
				goto inuse;
			break;
		}

		/*
		 * Stale: remove it, unless it was replaced since we read it
		 * (another process broke it first and holds the new one).
		 */
		if (lstat(path, &st2) == 0 && st2.st_ino == st.st_ino &&
		    st2.st_dev == st.st_dev &&
		    st2.st_ctim.tv_sec == st.st_ctim.tv_sec &&
		    st2.st_ctim.tv_nsec == st.st_ctim.tv_nsec &&
		    unlink(path) == -1 &&
		    errno != ENOENT)
			goto fail;
	}
inuse:
	snprintf(err, errlen, "%s is held by another POP3 session", path);
	return STORE_INUSE;

fail_written:
	{
		int saved = errno;

		if (fd != -1)
			close(fd);
		unlink(path);
		errno = saved;
	}
fail:
	snprintf(err, errlen, "lock %s: %s", path,
	    strerror_r(errno, ebuf, sizeof(ebuf)));
	return (errno == EACCES || errno == EPERM || errno == EROFS) ?
	    STORE_PERM : STORE_TEMP;
}

void
sesslock_release(const char *path)
{
	(void)unlink(path);
}
