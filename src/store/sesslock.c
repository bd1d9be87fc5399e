/*
 * sesslock: the POP3 session lock as an owner record in a file that stays
 * (see sesslock.h for the format and the staleness rules).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/pidcache.h"
#include "store/sesslock.h"

#define BOOT_ID_MAX	40
#define HOST_MAX	64
#define LOCK_TRIES	50	/* tries for the short OFD lock ... */
#define LOCK_WAIT_US	200	/* ... this far apart: 14-16 ms in all,
				 * measured (timer slack) */
#define TABLE_MIN	64	/* buckets of the held-lock table */

struct owner {
	long		pid;
	uint64_t	start;			/* clock ticks after boot */
	char		boot[BOOT_ID_MAX];
	char		host[HOST_MAX];
};

/*
 * One path this process holds a lock on, in the held-lock table. owner
 * is the handle of the session that holds it; a handle that has been
 * disowned (or an owner of NULL, when a release could not rewrite the
 * record) lets the next acquire() take the lock over, which detaches the
 * old handle (its e becomes NULL). Only the owner's handle points to an
 * entry, so the entry is freed when it leaves the table.
 */
enum entry_state {
	ENTRY_TAKING,		/* an acquire() is reading the file */
	ENTRY_HELD,
	ENTRY_FREEING,		/* a release() is writing "free" */
};

struct entry {
	struct entry		*next;		/* hash chain */
	struct sesslock		*owner;
	uint64_t		 hash;
	enum entry_state	 state;
	char			 path[];
};

/* Both fields are read and written under tab_mtx. */
struct sesslock {
	struct entry		*e;		/* NULL once taken over */
	unsigned		 disowned:1;
};

/*
 * The table; tab_cond wakes acquirers waiting for an ENTRY_FREEING or
 * ENTRY_TAKING entry to settle. tab_pid: the table belongs to this pid
 * (a forked child starts with an empty one: its parent's locks are not
 * its own).
 */
static pthread_mutex_t	 tab_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 tab_cond = PTHREAD_COND_INITIALIZER;
static struct entry	**tab;
static size_t		 tab_size, tab_n;
static uint64_t		 tab_seed;
static pid_t		 tab_pid;

/* This process, as written into its locks; redone after a fork. */
static pthread_mutex_t	 self_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct owner	 self;
static char		 self_rec[SESSLOCK_RECORD];

/* A record: the text, spaces up to SESSLOCK_RECORD - 1, a newline. */
static void __attribute__((format(printf, 2, 3)))
record_fill(char *rec, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(rec, SESSLOCK_RECORD, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > SESSLOCK_RECORD - 1)
		n = SESSLOCK_RECORD - 1;
	memset(rec + n, ' ', (size_t)(SESSLOCK_RECORD - 1 - n));
	rec[SESSLOCK_RECORD - 1] = '\n';
}

/* The record of a free lock, "free" and the padding, made once. */
static pthread_once_t	 free_once = PTHREAD_ONCE_INIT;
static char		 free_rec_text[SESSLOCK_RECORD];

static void
free_rec_init(void)
{
	record_fill(free_rec_text, "free");
}

static const char *
free_rec(void)
{
	pthread_once(&free_once, free_rec_init);
	return free_rec_text;
}

/* Field 22 of /proc/<pid>/stat. 0 and errno set when unreadable. */
static uint64_t
proc_start(long pid)
{
	char		 path[64], buf[1024], *p;
	unsigned long long start;
	int		 i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (fio_read_file(path, 0, buf, sizeof(buf)) <= 0)
		return 0;
	/* The command name may hold spaces and ')': skip to the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (i = 2; i < 22 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

/* This process's identity into o, and its record into rec. */
static void
self_identity(struct owner *o, char *rec)
{
	pthread_mutex_lock(&self_mtx);
	if (self.pid != (long)pid_self()) {
		memset(&self, 0, sizeof(self));
		self.pid = (long)pid_self();
		self.start = proc_start(self.pid);
		(void)fio_read_file("/proc/sys/kernel/random/boot_id", 0,
		    self.boot, sizeof(self.boot));
		self.boot[strcspn(self.boot, " \t\r\n")] = '\0';
		if (gethostname(self.host, sizeof(self.host)) == -1)
			self.host[0] = '\0';
		self.host[sizeof(self.host) - 1] = '\0';
		self.host[strcspn(self.host, " \t\r\n")] = '\0';
		record_fill(self_rec, "%ld %" PRIu64 " %s %s", self.pid,
		    self.start, self.boot[0] != '\0' ? self.boot : "-",
		    self.host[0] != '\0' ? self.host : "-");
	}
	*o = self;
	memcpy(rec, self_rec, SESSLOCK_RECORD);
	pthread_mutex_unlock(&self_mtx);
}

/*
 * sscanf's %Ns: skip white space, copy up to max octets of a word into
 * buf (NUL-terminated). The text after it, or NULL if there is no word.
 */
static const char *
owner_word(const char *p, char *buf, size_t max)
{
	size_t	 n = 0;

	while (isspace((unsigned char)*p))
		p++;
	while (n < max && *p != '\0' && !isspace((unsigned char)*p))
		buf[n++] = *p++;
	buf[n] = '\0';
	return n > 0 ? p : NULL;
}

/*
 * Parse a record: 0 with o filled, -1 when it names no owner (free).
 * As sscanf(text, "%ld %llu %39s %63s") read it, at a tenth of the cost
 * (twice per login).
 */
static int
owner_parse(const char *text, struct owner *o)
{
	const char	*p;
	char		*end;

	memset(o, 0, sizeof(*o));
	o->pid = strtol(text, &end, 10);
	if (end == text || o->pid <= 0)
		return -1;
	p = end;
	o->start = strtoull(p, &end, 10);
	if (end == p)
		return -1;
	if ((p = owner_word(end, o->boot, sizeof(o->boot) - 1)) == NULL ||
	    owner_word(p, o->host, sizeof(o->host) - 1) == NULL)
		return -1;
	return 0;
}

/* Whether the owner of a record may still be running. */
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

/* The record into text (len - 1 octets at most, then a NUL): its length. */
static ssize_t
record_read(int fd, char *text, size_t len)
{
	ssize_t	 n;

	if ((n = fio_pread_full(fd, text, len - 1, 0)) == -1)
		return -1;
	text[n] = '\0';
	return n;
}

/*
 * Take the record of path for this process. nowait: STORE_AGAIN instead
 * of waiting for the OFD lock or answering STORE_INUSE.
 */
static enum store_err
file_acquire(const char *path, bool nowait, char *err, size_t errlen)
{
	struct owner	 me, holder;
	struct flock	 fl;
	char		 rec[SESSLOCK_RECORD], text[SESSLOCK_RECORD + 1];
	enum store_err	 rv;
	int		 fd, tries;

	self_identity(&me, rec);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return store_fail(errno, err, errlen, "lock", path);

	/*
	 * The OFD lock only makes read-and-rewrite atomic between acquirers;
	 * it is held for a few syscalls. Bounded waiting: a process that
	 * holds it longer (evpop3d 0.1 held it for a whole session) is a
	 * session in progress.
	 */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	for (tries = 0; fcntl(fd, F_OFD_SETLK, &fl) == -1; tries++) {
		if (nowait && (errno == EAGAIN || errno == EACCES)) {
			close(fd);
			return STORE_AGAIN;
		}
		if ((errno != EAGAIN && errno != EACCES) ||
		    tries == LOCK_TRIES) {
			if (errno == EAGAIN || errno == EACCES)
				goto inuse;
			rv = store_fail(errno, err, errlen, "lock", path);
			close(fd);
			return rv;
		}
		usleep(LOCK_WAIT_US);
	}

	if (record_read(fd, text, sizeof(text)) == -1)
		goto fail;
	if (owner_parse(text, &holder) == 0 && owner_alive(&holder, &me)) {
		if (nowait) {
			close(fd);
			return STORE_AGAIN;
		}
		goto inuse;
	}
	if (fio_pwrite_full(fd, rec, sizeof(rec), 0) == -1)
		goto fail;
	close(fd);			/* drops the OFD lock */
	return STORE_OK;

inuse:
	close(fd);
	snprintf(err, errlen, "%s is held by another POP3 session", path);
	return STORE_INUSE;
fail:
	rv = store_fail(errno, err, errlen, "lock", path);
	close(fd);
	return rv;
}

static int
file_release(const char *path)
{
	struct owner	 me;
	char		 rec[SESSLOCK_RECORD], text[SESSLOCK_RECORD + 1];
	ssize_t		 n;
	int		 fd;

	/*
	 * No OFD lock needed: while the record names this process, no
	 * acquire() writes it, so only this write can change it. The
	 * record is ours if it is the one file_acquire() wrote, octet for
	 * octet: only this process writes that text (parsing it cost 1,000
	 * instructions a session).
	 */
	self_identity(&me, rec);
	if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	if ((n = record_read(fd, text, sizeof(text))) == -1)
		goto fail;
	if (n == (ssize_t)sizeof(rec) && memcmp(text, rec, sizeof(rec)) == 0 &&
	    fio_pwrite_full(fd, free_rec(), SESSLOCK_RECORD, 0) == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	fio_close_keep_errno(fd);
	return -1;
}

/* The table entry for path (hash h), or NULL. Under tab_mtx. */
static struct entry *
tab_find(const char *path, uint64_t h)
{
	struct entry *e;

	if (tab_size == 0)
		return NULL;
	for (e = tab[h & (tab_size - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

/* Double the buckets when chains grow; a failure only slows lookups. */
static void
tab_grow(void)
{
	struct entry	**nt, *e, *next;
	size_t		 nsize = tab_size == 0 ? TABLE_MIN : tab_size * 2, i;

	if ((nt = calloc(nsize, sizeof(*nt))) == NULL)
		return;
	for (i = 0; i < tab_size; i++)
		for (e = tab[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nt[e->hash & (nsize - 1)];
			nt[e->hash & (nsize - 1)] = e;
		}
	free(tab);
	tab = nt;
	tab_size = nsize;
}

/* Under tab_mtx: a forked child forgets its parent's locks. */
static void
tab_check_pid(void)
{
	if (tab_pid == pid_self())
		return;
	/* The parent's entries stay allocated: its threads are not here. */
	tab = NULL;
	tab_size = tab_n = 0;
	tab_pid = pid_self();
	tab_seed = store_hash_seed();
}

/* Take e out of the table and free it; waiting acquirers look again. */
static void
tab_remove(struct entry *e)
{
	struct entry **pp = &tab[e->hash & (tab_size - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	tab_n--;
	free(e);
	pthread_cond_broadcast(&tab_cond);
}

/* sesslock_acquire(), or with nowait sesslock_try(). */
static enum store_err
acquire(const char *path, bool nowait, struct sesslock **lk_r, char *err,
    size_t errlen)
{
	struct sesslock	*lk;
	struct entry	*e;
	enum store_err	 rv;
	uint64_t	 h;
	size_t		 plen = strlen(path);

	*lk_r = NULL;
	if ((lk = calloc(1, sizeof(*lk))) == NULL)
		return store_fail(errno, err, errlen, "lock", path);
	pthread_mutex_lock(&tab_mtx);
	tab_check_pid();
	h = store_hash(tab_seed, path, plen);
	for (;;) {
		if ((e = tab_find(path, h)) == NULL)
			break;
		if (nowait && (e->state != ENTRY_HELD ||
		    (e->owner != NULL && !e->owner->disowned))) {
			pthread_mutex_unlock(&tab_mtx);
			free(lk);
			return STORE_AGAIN;
		}
		if (e->state != ENTRY_HELD) {
			/* Being taken or freed right now: a few syscalls. */
			pthread_cond_wait(&tab_cond, &tab_mtx);
			continue;
		}
		if (e->owner != NULL && !e->owner->disowned) {
			pthread_mutex_unlock(&tab_mtx);
			free(lk);
			snprintf(err, errlen, "%s is held by another POP3 "
			    "session", path);
			return STORE_INUSE;
		}
		/* Given up by a session of ours: the record names us. */
		if (e->owner != NULL)
			e->owner->e = NULL;	/* its release() does nothing */
		e->owner = lk;
		lk->e = e;
		pthread_mutex_unlock(&tab_mtx);
		*lk_r = lk;
		return STORE_OK;
	}

	/* Not ours: the file decides, with the path marked as being taken. */
	if ((e = calloc(1, sizeof(*e) + plen + 1)) == NULL) {
		pthread_mutex_unlock(&tab_mtx);
		free(lk);
		return store_fail(errno, err, errlen, "lock", path);
	}
	memcpy(e->path, path, plen + 1);
	e->hash = h;
	e->owner = lk;
	e->state = ENTRY_TAKING;
	if (tab_n >= tab_size)
		tab_grow();
	if (tab_size == 0) {
		pthread_mutex_unlock(&tab_mtx);
		free(e);
		free(lk);
		return store_fail(ENOMEM, err, errlen, "lock", path);
	}
	e->next = tab[h & (tab_size - 1)];
	tab[h & (tab_size - 1)] = e;
	tab_n++;
	lk->e = e;
	pthread_mutex_unlock(&tab_mtx);

	rv = file_acquire(path, nowait, err, errlen);

	pthread_mutex_lock(&tab_mtx);
	if (rv == STORE_OK) {
		e->state = ENTRY_HELD;
		pthread_cond_broadcast(&tab_cond);
		*lk_r = lk;
	} else {
		tab_remove(e);
		free(lk);
	}
	pthread_mutex_unlock(&tab_mtx);
	return rv;
}

enum store_err
sesslock_acquire(const char *path, struct sesslock **lk_r, char *err,
    size_t errlen)
{
	return acquire(path, false, lk_r, err, errlen);
}

enum store_err
sesslock_try(const char *path, struct sesslock **lk_r, char *err,
    size_t errlen)
{
	return acquire(path, true, lk_r, err, errlen);
}

void
sesslock_disown(struct sesslock *lk)
{
	if (lk == NULL)
		return;
	pthread_mutex_lock(&tab_mtx);
	lk->disowned = 1;
	pthread_mutex_unlock(&tab_mtx);
}

int
sesslock_release(struct sesslock *lk)
{
	struct entry	*e;
	int		 rv, saved;

	if (lk == NULL)
		return 0;
	pthread_mutex_lock(&tab_mtx);
	/*
	 * Taken over by a later session (the record is its now), or a
	 * forked child's copy of its parent's lock: nothing to write.
	 */
	if ((e = lk->e) == NULL || tab_pid != pid_self()) {
		pthread_mutex_unlock(&tab_mtx);
		free(lk);
		return 0;
	}
	e->state = ENTRY_FREEING;
	pthread_mutex_unlock(&tab_mtx);

	rv = file_release(e->path);
	saved = errno;

	pthread_mutex_lock(&tab_mtx);
	if (rv == 0)
		tab_remove(e);
	else {
		/* The record still names us: the next acquire takes over. */
		e->owner = NULL;
		e->state = ENTRY_HELD;
		pthread_cond_broadcast(&tab_cond);
	}
	pthread_mutex_unlock(&tab_mtx);
	free(lk);
	errno = saved;
	return rv;
}

size_t
sesslock_count(void)
{
	size_t n;

	pthread_mutex_lock(&tab_mtx);
	tab_check_pid();
	n = tab_n;
	pthread_mutex_unlock(&tab_mtx);
	return n;
}
