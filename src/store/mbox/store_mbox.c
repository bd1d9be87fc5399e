/*
 * store_mbox: the mbox driver (see store.h; the format is in
 * mbox_parse.h).
 *
 * A maildrop is one mbox file, the classic /var/mail/USER spool that
 * Postfix local, procmail, dovecot-lda and mutt write. A missing file is
 * an empty maildrop; open() never creates it.
 *
 * Locks. The session lock keeps POP3 sessions apart for a whole session
 * and holds no descriptor: an owner record in DIR/.NAME.evpop3d-lock
 * (sesslock.h), a hidden file that stays. Against the MDA and MUAs the
 * standard mbox locks are taken only for the short windows of the index
 * scan (open) and of the rewrite (commit), so deliveries go on during a
 * session: first the dotlock NAME.lock beside the mbox ("PID:HOST",
 * link()ed into place whole; one whose mtime is over 5 minutes old, or over 2
 * seconds and naming a pid of this host that is gone, is stale and
 * broken; a directory we may not write in means fcntl alone), then an
 * fcntl lock, shared for the scan, exclusive for the rewrite: the order
 * Postfix local and dovecot-lda use, released in reverse. The fcntl lock
 * is an open file description lock (F_OFD_SETLK): it conflicts with the
 * MDAs' classic F_SETLK locks, and unlike those it is not dropped when
 * another thread of this process closes a descriptor of the same file.
 * Both are retried with short sleeps for up to 10 seconds.
 *
 * Index. open() reads the file once, sequentially with read(2) (never
 * mmap: another program may truncate the file, and a mapping would
 * SIGBUS), and keeps per message: offsets, the wire size of what the
 * client sees, a checksum of the raw entry, and its UIDL (72 bytes, the
 * 33-byte hex MD5 of its header, and any X-UIDL or formatted id). The size comes from the same filter (mbox_filter)
 * that msg_read() streams through, so LIST and RETR always agree.
 *
 * Index cache. Spools mostly grow by appends, so open() keeps the index
 * in DIR/.NAME.evpop3d-index (ours, mode 0600; written after the MDA
 * locks are released, through a DIR/.NAME.evpop3d-tmp.PID.N file renamed
 * into place, without fsync; best effort: a failure is logged at debug).
 * It holds, in native byte order with a version and a checksum of the
 * whole file at its end: the mbox's st_dev and st_ino, the cached end,
 * checksums of the first and of the last 64 KiB before that end, the
 * X-IMAPbase state, and every entry but the last (all of what the scan
 * computes but the UIDL). The cached end is thus the last message's
 * separator: the next scan starts at a separator line and parses the
 * last message again, however it ended. Under the read lock, a cache
 * that parses cleanly, names this file, is not past its size and whose
 * two samples match the file is loaded, and only [cached end, EOF) is
 * scanned; without a separator line there, or for anything else, the
 * whole file is (and the cache rewritten). UIDLs are made after, over
 * all entries, as without a cache. A same-size rewrite in the unsampled
 * middle goes unseen at open, but never serves or loses wrong mail:
 * msg_open() checks the separator line and msg_read()/commit() each
 * entry's checksum. When they find a change (STORE_GONE, a read error,
 * "changed"), and after a commit (a new file), the cache is removed, so
 * the next login parses the file whole.
 *
 * UIDL. A valid X-UIDL header (RFC 1939 section 7: 1..70 chars in
 * 0x21..0x7E) wins: the id a former POP3 server stored. Otherwise the
 * [pop3] uidl_format if set (%m the MD5 below, %u the message's X-UID,
 * %v X-IMAPbase's first number in the first message: Dovecot's mbox
 * headers; %f has no value), otherwise the hex MD5 of the header block
 * the client sees (%m). A message whose id an earlier one already has
 * falls back to its MD5, then "MD5-2", "MD5-3", ... So appending mail
 * changes no id, and deleting mail changes none but that of a later
 * message sharing the deleted one's X-UIDL or header block (the same
 * Message-ID and Received lines: in practice the same message delivered
 * twice), which inherits its id.
 *
 * The UW-IMAP/Dovecot pseudo message (X-IMAP or X-IMAPbase and the
 * Subject "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA") is no POP3
 * message: it is not listed and always kept.
 *
 * Reading (msg_open/msg_read, on the event loop) costs an open(), an
 * fstat() and a pread() of the separator line: a file replaced (another
 * inode), cut below the indexed end, or without the same separator line
 * at the message's offset is STORE_GONE. The message is then read with
 * pread(); the raw entry's checksum is checked at its end, and a
 * mismatch fails the read (the session closes the connection rather
 * than end a message that changed under it). No descriptor is held
 * while no message is being read.
 *
 * UPDATE (commit) writes a new mbox DIR/.NAME.evpop3d-tmp.PID.N beside
 * the old one, under both MDA locks: the raw bytes of each kept entry
 * (separator line and blank line included), then everything after the
 * indexed end (mail delivered during the session) verbatim; it checks
 * each entry against its checksum on the way. Then fsync(), rename()
 * over the mbox, fsync() of the directory: at every instant the path
 * names either the old or the new complete mbox. The new file gets the
 * old one's owner, group and mode. If the old file was replaced, cut, or
 * changed anywhere in the indexed part (an MUA expunged), or any write
 * fails (ENOSPC, EFBIG), nothing is deleted: the temporary file is
 * removed and commit() fails with STORE_TEMP. Temporary files left by a
 * process that died are removed by the next commit() of that mbox, and
 * by an open() in their directory (once an hour per directory and
 * process: a big spool directory is not read at every login). An MDA that appends after taking only the fcntl lock, without
 * checking that the path still names the file it locked, may append to
 * the replaced file: such MDAs are not safe with any mbox rewriter.
 *
 * Threads: open(), commit() and close() run on worker threads, the rest
 * on the event loop; each maildrop is used by one thread at a time. The
 * shared state: the temporary-file counter and the lock wait (atomics),
 * and the directories lately cleaned (under a mutex).
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "store/arena.h"
#include "store/idtab.h"
#include "store/mbox/mbox_parse.h"
#include "store/sesslock.h"
#include "store/store.h"
#include "store/mbox/store_mbox.h"
#include "store/uidl_format.h"
#include "lib/wire.h"

#define MB_SCAN_BUF	(1024 * 1024)	/* read size of the index scan */
#define MB_COPY_BUF	(1024 * 1024)	/* read and write size of commit */
#define MB_FILTER_OUT	(64 * 1024)	/* filter output while counting */
#define MB_READ_CHUNK	(16 * 1024)	/* pread size of a reader */
#define MB_MSGS_INIT	64
#define MB_DOTLOCK_STALE 300		/* seconds: Dovecot, procmail */
#define MB_DOTLOCK_DEAD	2		/* seconds, if its pid is gone */
#define MB_TMP_STALE	3600		/* seconds */
#define MB_IX_SUFFIX	".evpop3d-index"	/* DIR/.NAME + this */
#define MB_IX_MAGIC	"evp3mbix"	/* 8 bytes, then the version */
#define MB_IX_VERSION	1
#define MB_IX_ORDER	0x01020304u	/* native byte order only */
#define MB_IX_SAMPLE	(64 * 1024)	/* bytes checked at each end */
#define MB_IX_MAX	(1024u * 1024 * 1024)	/* larger: not ours */
#define MB_IX_MD5	32		/* hex digits of an MD5 */

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

static atomic_uint	 mb_lock_wait_ms;
static atomic_ulong	 mb_tmp_counter;
static atomic_ulong	 mb_ix_loads;

void
store_mbox_set_lock_wait(unsigned ms)
{
	atomic_store(&mb_lock_wait_ms, ms);
}

unsigned long
store_mbox_ix_loads(void)
{
	return atomic_load(&mb_ix_loads);
}

static void
mb_free(struct mb *mb)
{
	if (mb == NULL)
		return;
	if (sesslock_release(mb->lock) == -1)
		log_warn("mbox %s: session lock release", mb->slock);
	arena_free(&mb->arena);
	free(mb->msgs);
	free(mb->vis);
	free(mb->path);
	free(mb->dir);
	free(mb->name);
	free(mb->slock);
	free(mb->dotlock);
	free(mb->ixpath);
	free(mb);
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
 * A new temporary file name beside the mbox, DIR/.NAME.evpop3d-tmp.PID.N
 * (a rewrite, or a dotlock being made): one that a dead process left is
 * removed by mb_clean_tmp(). -1 if it does not fit.
 */
static int
mb_tmp_name(const struct mb *mb, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "%s/.%s%s%ld.%lu", mb->dir, mb->name,
	    STORE_MBOX_TMP_SUFFIX, (long)getpid(),
	    atomic_fetch_add(&mb_tmp_counter, 1));
	return n < 0 || (size_t)n >= len ? -1 : 0;
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
	n = snprintf(rec, sizeof(rec), "%ld:%s\n", (long)getpid(), host);
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
	if (pid == (long)getpid())
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
static enum store_err
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
static void
mb_unlock(struct mb *mb, int fd, int dot)
{
	if (fd != -1)
		close(fd);		/* drops the fcntl lock */
	mb_dotunlock(mb, dot);
}

/* ------------------------------------------------------------ index */

struct mb_scan {
	struct mb		*mb;
	struct mbox_filter	 f;
	struct mbox_hdr_info	 info;
	struct wire_enc		 we;
	struct mbox_hash	 h;
	EVP_MD_CTX		*md5;
	EVP_MD			*md5_alg;	/* fetched once per scan */
	uint64_t		 len;		/* message bytes so far */
	bool			 sep_eol;	/* the separator ends in '\n' */
	char			*out;		/* MB_FILTER_OUT */
	int			 error;		/* errno of a failed callback */
};

static int
mb_scan_sep(void *arg, uint64_t off, const char *line, size_t len)
{
	struct mb_scan		*s = arg;
	struct mb		*mb = s->mb;
	struct mb_msg		*m;
	size_t			 ncap;

	if (mb->nmsgs == mb->msgs_cap) {
		ncap = mb->msgs_cap == 0 ? MB_MSGS_INIT : mb->msgs_cap * 2;
		if (ncap > UINT32_MAX) {
			s->error = EFBIG;
			return -1;
		}
		if ((m = reallocarray(mb->msgs, ncap, sizeof(*m))) == NULL) {
			s->error = errno;
			return -1;
		}
		mb->msgs = m;
		mb->msgs_cap = ncap;
	}
	m = &mb->msgs[mb->nmsgs];
	memset(m, 0, sizeof(*m));
	m->from_off = off;
	m->from_len = (uint32_t)len;
	m->from_hash = (uint32_t)mbox_hash_buf(line, len);

	mbox_hash_init(&s->h);
	mbox_hash_update(&s->h, line, len);
	s->sep_eol = len > 0 && line[len - 1] == '\n';
	mbox_filter_init(&s->f, &s->info);
	wire_enc_init(&s->we, -1);
	s->len = 0;
	if (EVP_DigestInit_ex(s->md5, s->md5_alg, NULL) != 1) {
		s->error = ENOMEM;
		return -1;
	}
	return 0;
}

/* Run message bytes through the filter: wire size, header MD5. */
static int
mb_scan_filter(struct mb_scan *s, const char *p, size_t n, bool eof)
{
	size_t	 used, olen, hlen;

	while (n > 0 || (eof && !mbox_filter_done(&s->f))) {
		used = mbox_filter_run(&s->f, p, n, eof, s->out, MB_FILTER_OUT,
		    &olen, &hlen);
		p += used;
		n -= used;
		if (hlen > 0 && EVP_DigestUpdate(s->md5, s->out, hlen) != 1) {
			s->error = ENOMEM;
			return -1;
		}
		if (olen > 0)
			wire_enc_feed(&s->we, s->out, olen, NULL);
	}
	return 0;
}

static int
mb_scan_data(void *arg, const char *p, size_t n)
{
	struct mb_scan	*s = arg;

	mbox_hash_update(&s->h, p, n);
	s->len += n;
	return mb_scan_filter(s, p, n, false);
}

static int
mb_scan_end(void *arg, const char *term, size_t n)
{
	struct mb_scan		*s = arg;
	struct mb		*mb = s->mb;
	struct mb_msg		*m = &mb->msgs[mb->nmsgs];
	unsigned char		 dig[EVP_MAX_MD_SIZE];
	char			 hx[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int		 dlen;

	mbox_hash_update(&s->h, term, n);
	if (mb_scan_filter(s, NULL, 0, true) == -1)
		return -1;
	wire_enc_finish(&s->we, NULL);
	m->size = s->we.octets;
	m->end_off = m->from_off + m->from_len + s->len;
	m->hash = mbox_hash_final(&s->h);
	m->no_eol = n == 0 && (s->len > 0 || !s->sep_eol);

	if (EVP_DigestFinal_ex(s->md5, dig, &dlen) != 1) {
		s->error = ENOMEM;
		return -1;
	}
	store_hex(dig, dlen, hx);
	if ((m->md5 = arena_strndup(&mb->arena, hx, 2 * dlen)) == NULL)
		goto nomem;
	if (s->info.xuidl_valid && (m->xuidl = arena_strndup(&mb->arena,
	    s->info.xuidl, strlen(s->info.xuidl))) == NULL)
		goto nomem;
	m->has_xuid = s->info.has_xuid;
	m->xuid = s->info.xuid;
	/*
	 * The pseudo message and X-IMAPbase count in the first entry only,
	 * as in Dovecot (mbox-sync-parse.c): anywhere else they came with
	 * mail from outside, which must not hide itself or set UIDVALIDITY.
	 */
	if (mb->nmsgs == 0) {
		m->hidden = s->info.pseudo;
		mb->has_uidvalidity = s->info.has_base;
		mb->uidvalidity = s->info.uidvalidity;
	}
	mb->nmsgs++;
	return 0;
nomem:
	s->error = ENOMEM;
	return -1;
}

/*
 * Read the file from start (0, or a separator line: the index cache's
 * end) to EOF through the scanner, appending to mb->msgs. From start > 0
 * without a separator line there, *nosep_r is set and nothing was added.
 */
static enum store_err
mb_index(struct mb *mb, int fd, uint64_t start, bool *nosep_r, char *err,
    size_t errlen)
{
	static const struct mbox_scan_cb cb0 = {
		.sep = mb_scan_sep, .data = mb_scan_data, .end = mb_scan_end,
	};
	struct mbox_scan_cb	 cb = cb0;
	struct mbox_scan	 sc;
	struct mb_scan		 s;
	enum mbox_scan_res	 res;
	enum store_err		 rv = STORE_OK;
	char			*buf;
	size_t			 have = 0, used;
	ssize_t			 n;

	*nosep_r = false;
	memset(&s, 0, sizeof(s));
	s.mb = mb;
	if (lseek(fd, (off_t)start, SEEK_SET) == -1)
		return store_fail(errno, err, errlen, "lseek", mb->path);
	buf = malloc(MB_SCAN_BUF + MBOX_SCAN_KEEP);
	s.out = malloc(MB_FILTER_OUT);
	s.md5 = EVP_MD_CTX_new();
	s.md5_alg = EVP_MD_fetch(NULL, "MD5", NULL);
	if (buf == NULL || s.out == NULL || s.md5 == NULL ||
	    s.md5_alg == NULL) {
		rv = store_fail(ENOMEM, err, errlen, "mbox", mb->path);
		goto done;
	}
	cb.arg = &s;
	mbox_scan_init(&sc, &cb);
	sc.off = start;
	(void)posix_fadvise(fd, (off_t)start, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		if ((n = fio_read(fd, buf + have, MB_SCAN_BUF)) == -1) {
			rv = store_fail(errno, err, errlen, "read", mb->path);
			goto done;
		}
		have += (size_t)n;
		res = mbox_scan_feed(&sc, buf, have, n == 0, &used);
		if (res == MBOX_SCAN_NOTMBOX && start > 0) {
			*nosep_r = true;
			goto done;
		}
		if (res == MBOX_SCAN_NOTMBOX) {
			snprintf(err, errlen, "mbox %s: not an mbox file",
			    mb->path);
			rv = STORE_PERM;
			goto done;
		}
		if (res == MBOX_SCAN_STOPPED) {
			rv = store_fail(s.error, err, errlen, "mbox", mb->path);
			goto done;
		}
		if (n == 0)
			break;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	if (start > 0 && !sc.started) {
		*nosep_r = true;		/* cut at the cache's end */
		goto done;
	}
	mb->end = sc.off;
done:
	EVP_MD_CTX_free(s.md5);
	EVP_MD_free(s.md5_alg);
	free(s.out);
	free(buf);
	return rv;
}

/* ------------------------------------------------------------ UIDLs */

/*
 * The UIDL table (idtab.h) holds indexes into mb->msgs: is message i's
 * uidl key (len bytes)? Keys come from mail (X-UIDL): the table's random
 * seed keeps chosen ids from making a login quadratic.
 */
static bool
mb_uidl_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct mb_msg	*msgs = arg;

	return idtab_key_is(msgs[i].uidl, key, len);
}

static struct mb_msg *
mb_vis(const struct mb *mb, size_t i)
{
	return &mb->msgs[mb->vis != NULL ? mb->vis[i] : i];
}

/*
 * Claim id (len bytes) for m if no earlier message has it: 1 if it is
 * m's now, 0 if taken, -1 out of memory. copy: id is not in the arena.
 */
static int
mb_claim(struct mb *mb, struct idtab *t, struct mb_msg *m, const char *id,
    size_t len, bool copy)
{
	uint64_t	 h;
	size_t		 s;

	s = idtab_find(t, id, len, mb_uidl_is, mb->msgs, &h);
	if (idtab_used(t, s))
		return 0;
	m->uidl = copy ? arena_strndup(&mb->arena, id, len) : id;
	if (m->uidl == NULL)
		return -1;
	idtab_set(t, s, h, (uint32_t)(m - mb->msgs));
	return 1;
}

/*
 * Give each visible message its UIDL (see the top of the file): the
 * first of X-UIDL, uidl_format, MD5, MD5-2, MD5-3, ... that no earlier
 * message has. Earlier messages choose first, so appending mail never
 * changes an id.
 */
static enum store_err
mb_make_uidls(struct mb *mb, const char *fmt, char *err, size_t errlen)
{
	struct uidl_vars v;
	struct idtab	 t;
	struct mb_msg	*m;
	char		 buf[POP3_UIDL_MAX + 1];
	size_t		 i, k;
	bool		 uses_v;
	int		 len, r = 0;

	if (fmt == NULL)
		fmt = "";
	uses_v = *fmt != '\0' && uidl_format_uses(fmt, 'v');
	if (idtab_init(&t, mb->nvis) == -1)
		goto nomem;
	for (i = 0; i < mb->nvis; i++) {
		m = mb_vis(mb, i);
		if (m->xuidl != NULL && (r = mb_claim(mb, &t, m, m->xuidl,
		    strlen(m->xuidl), false)) != 0)
			goto next;
		if (*fmt != '\0') {
			memset(&v, 0, sizeof(v));
			v.md5 = m->md5;
			v.has_uid = m->has_xuid && (mb->has_uidvalidity ||
			    !uses_v);
			v.uid = m->xuid;
			v.uidvalidity = mb->uidvalidity;
			len = uidl_format_expand(fmt, &v, buf, sizeof(buf));
			if (len > 0 && (r = mb_claim(mb, &t, m, buf,
			    (size_t)len, true)) != 0)
				goto next;
		}
		if ((r = mb_claim(mb, &t, m, m->md5, strlen(m->md5),
		    false)) != 0)
			goto next;
		for (k = 2; r == 0; k++) {
			len = snprintf(buf, sizeof(buf), "%s-%zu", m->md5, k);
			r = mb_claim(mb, &t, m, buf, (size_t)len, true);
		}
next:
		if (r == -1) {
			idtab_free(&t);
			goto nomem;
		}
	}
	idtab_free(&t);
	return STORE_OK;
nomem:
	return store_fail(ENOMEM, err, errlen, "mbox", mb->path);
}

/* The visible messages, their total size. */
static enum store_err
mb_make_vis(struct mb *mb, char *err, size_t errlen)
{
	size_t	 i, nhidden = 0;

	for (i = 0; i < mb->nmsgs; i++)
		nhidden += mb->msgs[i].hidden;
	mb->nvis = mb->nmsgs - nhidden;
	if (nhidden > 0) {
		mb->vis = reallocarray(NULL, mb->nvis > 0 ? mb->nvis : 1,
		    sizeof(*mb->vis));
		if (mb->vis == NULL)
			return store_fail(ENOMEM, err, errlen, "mbox",
			    mb->path);
		for (i = 0, nhidden = 0; i < mb->nmsgs; i++)
			if (!mb->msgs[i].hidden)
				mb->vis[nhidden++] = (uint32_t)i;
	}
	mb->total = 0;
	for (i = 0; i < mb->nvis; i++)
		mb->total += mb_vis(mb, i)->size;
	return STORE_OK;
}

/* ------------------------------------------------------------ index cache */

/*
 * The index cache DIR/.NAME.evpop3d-index (see the top of the file): a
 * header, the entries before the last message, a checksum of it all.
 * Native byte order (a marker says which); every field is checked on
 * load, and anything odd means a full scan.
 */
struct mb_ixhead {
	uint64_t	 end;		/* the last message's separator */
	uint64_t	 head;		/* checksum of the first SAMPLE */
	uint64_t	 tail;		/* ... of the SAMPLE before end */
};

#define MB_IXF_XUID	0x01
#define MB_IXF_HIDDEN	0x02
#define MB_IXF_NOEOL	0x04

/* The fixed part of a cached entry; the X-UIDL (xlen bytes) follows. */
#define MB_IX_ENTRY	(4 * 8 + 3 * 4 + 2 + MB_IX_MD5)
#define MB_IX_HEADER	(8 + 2 * 4 + 5 * 8 + 2 * 4 + 8)

static int	mb_pread(int, void *, size_t, uint64_t);

/* A growable buffer for the cache being written; err: out of memory. */
struct mb_ixbuf {
	char		*p;
	size_t		 len, cap;
	int		 err;
};

static void
mb_ix_put(struct mb_ixbuf *b, const void *p, size_t n)
{
	size_t	 ncap;
	char	*q;

	if (b->err || n == 0)
		return;
	if (b->cap - b->len < n) {
		for (ncap = b->cap ? b->cap : 64 * 1024; ncap - b->len < n;)
			ncap *= 2;
		if ((q = realloc(b->p, ncap)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = q;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
mb_ix_put64(struct mb_ixbuf *b, uint64_t v)
{
	mb_ix_put(b, &v, sizeof(v));
}

static void
mb_ix_put32(struct mb_ixbuf *b, uint32_t v)
{
	mb_ix_put(b, &v, sizeof(v));
}

/* A cursor over the cache being read; bad once it ran past the end. */
struct mb_ixrd {
	const char	*p;
	size_t		 len, pos;
	int		 bad;
};

static const char *
mb_ix_get(struct mb_ixrd *r, size_t n)
{
	const char	*p;

	if (r->bad || r->len - r->pos < n) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->pos;
	r->pos += n;
	return p;
}

static uint64_t
mb_ix_get64(struct mb_ixrd *r)
{
	const char	*p = mb_ix_get(r, 8);
	uint64_t	 v = 0;

	if (p != NULL)
		memcpy(&v, p, 8);
	return v;
}

static uint32_t
mb_ix_get32(struct mb_ixrd *r)
{
	const char	*p = mb_ix_get(r, 4);
	uint32_t	 v = 0;

	if (p != NULL)
		memcpy(&v, p, 4);
	return v;
}

/*
 * The checksums of the mbox (fd) at both ends of [0, end): the first
 * and the last MB_IX_SAMPLE bytes (the same ones if end is smaller).
 * 0, or -1 if they cannot be read.
 */
static int
mb_ix_sample(int fd, uint64_t end, uint64_t *head_r, uint64_t *tail_r)
{
	size_t		 n;
	char		*buf;

	n = end < MB_IX_SAMPLE ? (size_t)end : MB_IX_SAMPLE;
	/* calloc: gcc -O2 cannot tell that mb_pread() fills the buffer. */
	if ((buf = calloc(1, n)) == NULL)
		return -1;
	if (mb_pread(fd, buf, n, 0) == -1)
		goto fail;
	*head_r = mbox_hash_buf(buf, n);
	if (n == end)				/* one sample covers it all */
		*tail_r = *head_r;
	else if (mb_pread(fd, buf, n, end - n) == -1)
		goto fail;
	else
		*tail_r = mbox_hash_buf(buf, n);
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

/* Forget the cache: it named mail that is not there any more. */
static void
mb_ix_drop(struct mb *mb)
{
	if (unlink(mb->ixpath) == -1 && errno != ENOENT)
		log_debug("mbox %s: removal: %s", mb->ixpath, strerror(errno));
}

/* Back to no index at all (a cache that did not fit the file). */
static void
mb_index_reset(struct mb *mb)
{
	arena_free(&mb->arena);
	free(mb->msgs);
	mb->msgs = NULL;
	mb->nmsgs = mb->msgs_cap = 0;
	mb->has_uidvalidity = 0;
	mb->uidvalidity = 0;
	mb->ix_end = 0;
}

static bool
mb_ix_hex(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* Parse the entries of the cache (r after the header) into mb->msgs. */
static int
mb_ix_entries(struct mb *mb, struct mb_ixrd *r, uint64_t n, uint64_t end)
{
	struct mb_msg	*m;
	const char	*md5, *x;
	uint64_t	 i, prev;
	unsigned	 flags, xlen;

	if ((mb->msgs = reallocarray(NULL, (size_t)n, sizeof(*m))) == NULL)
		return -1;
	mb->msgs_cap = (size_t)n;
	for (i = 0; i < n; i++) {
		m = &mb->msgs[i];
		memset(m, 0, sizeof(*m));
		m->from_off = mb_ix_get64(r);
		m->end_off = mb_ix_get64(r);
		m->size = mb_ix_get64(r);
		m->hash = mb_ix_get64(r);
		m->from_len = mb_ix_get32(r);
		m->from_hash = mb_ix_get32(r);
		m->xuid = mb_ix_get32(r);
		x = mb_ix_get(r, 2);
		md5 = mb_ix_get(r, MB_IX_MD5);
		if (x == NULL || md5 == NULL)
			return -1;
		flags = (unsigned char)x[0];
		xlen = (unsigned char)x[1];
		if ((x = mb_ix_get(r, xlen)) == NULL)
			return -1;
		/*
		 * Entries tile [0, end): each runs up to the next separator,
		 * a dropped terminator (0..2 bytes) after its message.
		 */
		prev = i == 0 ? 0 : mb->msgs[i - 1].end_off;
		if ((i == 0 && m->from_off != 0) || m->from_off < prev ||
		    m->from_off - prev > 2)
			return -1;
		if (m->from_len == 0 || m->from_len > MBOX_FROM_MAX ||
		    m->end_off < m->from_off + m->from_len ||
		    (i + 1 == n && (m->end_off > end || end - m->end_off > 2)))
			return -1;
		if ((flags & ~(unsigned)(MB_IXF_XUID | MB_IXF_HIDDEN |
		    MB_IXF_NOEOL)) != 0 || ((flags & MB_IXF_HIDDEN) && i > 0))
			return -1;
		if ((xlen > 0 && !pop3_uidl_valid(x, xlen)) ||
		    !mb_ix_hex(md5, MB_IX_MD5))
			return -1;
		m->has_xuid = (flags & MB_IXF_XUID) != 0;
		m->hidden = (flags & MB_IXF_HIDDEN) != 0;
		m->no_eol = (flags & MB_IXF_NOEOL) != 0;
		if ((m->md5 = arena_strndup(&mb->arena, md5, MB_IX_MD5)) ==
		    NULL || (xlen > 0 && (m->xuidl = arena_strndup(&mb->arena,
		    x, xlen)) == NULL))
			return -1;
		mb->nmsgs++;
	}
	return 0;
}

/*
 * Load the cache if it is one of this mbox (fd, st; under the MDA read
 * lock) as it is now: same file, not shorter, the same bytes at both ends
 * of the cached part. Returns true with mb->msgs, mb->ix_end set (the
 * scan goes on from there); false: nothing loaded.
 */
static bool
mb_ix_load(struct mb *mb, int fd, const struct stat *st)
{
	struct mb_ixrd	 r;
	struct stat	 ist;
	uint64_t	 head, tail, h0, t0, n, sum, end;
	const char	*magic;
	char		*text;
	size_t		 len;

	/* Ours only: a file another user put there could hide mail. */
	if (fio_read_small(mb->ixpath, O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
	    MB_IX_MAX, FIO_OWNED, &ist, &text, &len) == -1) {
		if (ist.st_mode == 0)
			return false;		/* none (or unreadable) */
		goto bad;
	}
	if (len != (size_t)ist.st_size || len < MB_IX_HEADER + 8)
		goto bad;

	/* The checksum over everything before it. */
	memset(&r, 0, sizeof(r));
	r.p = text;
	r.len = len - 8;
	memcpy(&sum, text + r.len, 8);
	if (mbox_hash_buf(text, r.len) != sum)
		goto bad;

	magic = mb_ix_get(&r, 8);
	if (magic == NULL || memcmp(magic, MB_IX_MAGIC, 8) != 0 ||
	    mb_ix_get32(&r) != MB_IX_VERSION || mb_ix_get32(&r) !=
	    MB_IX_ORDER || mb_ix_get64(&r) != (uint64_t)st->st_dev ||
	    mb_ix_get64(&r) != (uint64_t)st->st_ino)
		goto bad;
	end = mb_ix_get64(&r);
	head = mb_ix_get64(&r);
	tail = mb_ix_get64(&r);
	mb->uidvalidity = mb_ix_get32(&r);
	mb->has_uidvalidity = mb_ix_get32(&r) != 0;
	n = mb_ix_get64(&r);
	if (r.bad || end == 0 || end > (uint64_t)st->st_size || n == 0 ||
	    n > (r.len - r.pos) / MB_IX_ENTRY || n > UINT32_MAX)
		goto bad;
	if (mb_ix_sample(fd, end, &h0, &t0) == -1 || h0 != head ||
	    t0 != tail)
		goto bad;
	if (mb_ix_entries(mb, &r, n, end) == -1 || r.bad || r.pos != r.len)
		goto bad;
	free(text);
	mb->ix_end = end;
	atomic_fetch_add(&mb_ix_loads, 1);
	return true;
bad:
	free(text);
	mb_index_reset(mb);
	log_debug("mbox %s: index cache not used", mb->ixpath);
	return false;
}

/*
 * After the scan, under the lock still: is a new cache due (the scan
 * went past the cached part), and its header. Entries before the last
 * message's separator are cached (so that the next scan starts at a
 * separator and parses the last message again, however it ends).
 */
static bool
mb_ix_prepare(struct mb *mb, int fd, struct mb_ixhead *h)
{
	bool loaded = mb->ix_end != 0;	/* the cache was used */

	if (mb->nmsgs < 2) {
		if (!loaded)
			mb_ix_drop(mb);		/* an unusable one */
		return false;
	}
	h->end = mb->msgs[mb->nmsgs - 1].from_off;
	if (loaded && h->end == mb->ix_end)
		return false;
	return mb_ix_sample(fd, h->end, &h->head, &h->tail) == 0;
}

/*
 * Write the cache: a temporary file beside the mbox, renamed over the
 * old cache. Best effort: a failure is logged at debug.
 */
static void
mb_ix_write(struct mb *mb, const struct mb_ixhead *h)
{
	struct mb_ixbuf	 b;
	const struct mb_msg *m;
	char		 tmp[PATH_MAX];
	unsigned char	 x[2];
	size_t		 i, xlen;
	int		 fd, rv;

	memset(&b, 0, sizeof(b));
	mb_ix_put(&b, MB_IX_MAGIC, 8);
	mb_ix_put32(&b, MB_IX_VERSION);
	mb_ix_put32(&b, MB_IX_ORDER);
	mb_ix_put64(&b, (uint64_t)mb->dev);
	mb_ix_put64(&b, (uint64_t)mb->ino);
	mb_ix_put64(&b, h->end);
	mb_ix_put64(&b, h->head);
	mb_ix_put64(&b, h->tail);
	mb_ix_put32(&b, mb->uidvalidity);
	mb_ix_put32(&b, mb->has_uidvalidity);
	mb_ix_put64(&b, mb->nmsgs - 1);
	for (i = 0; i + 1 < mb->nmsgs; i++) {
		m = &mb->msgs[i];
		xlen = m->xuidl != NULL ? strlen(m->xuidl) : 0;
		mb_ix_put64(&b, m->from_off);
		mb_ix_put64(&b, m->end_off);
		mb_ix_put64(&b, m->size);
		mb_ix_put64(&b, m->hash);
		mb_ix_put32(&b, m->from_len);
		mb_ix_put32(&b, m->from_hash);
		mb_ix_put32(&b, m->xuid);
		x[0] = (unsigned char)((m->has_xuid ? MB_IXF_XUID : 0) |
		    (m->hidden ? MB_IXF_HIDDEN : 0) |
		    (m->no_eol ? MB_IXF_NOEOL : 0));
		x[1] = (unsigned char)xlen;
		mb_ix_put(&b, x, 2);
		mb_ix_put(&b, m->md5, MB_IX_MD5);
		mb_ix_put(&b, m->xuidl, xlen);
	}
	if (b.err) {
		log_debug("mbox %s: index cache: out of memory", mb->ixpath);
		free(b.p);
		return;
	}
	mb_ix_put64(&b, mbox_hash_buf(b.p, b.len));
	if (b.err || mb_tmp_name(mb, tmp, sizeof(tmp)) == -1) {
		log_debug("mbox %s: index cache not written", mb->ixpath);
		free(b.p);
		return;
	}
	if ((fd = fio_atomic_open(tmp, O_EXCL | O_NOCTTY, 0600)) == -1) {
		log_debug("mbox %s: %s", tmp, strerror(errno));
		free(b.p);
		return;
	}
	/* No fsync(): a cache, checked whole when it is read. */
	if ((rv = fio_write_full(fd, b.p, b.len)) == -1)
		fio_atomic_abort(fd, tmp);
	else
		rv = fio_atomic_commit(fd, tmp, mb->ixpath, 0);
	if (rv == -1)
		log_debug("mbox %s: index cache not written: %s", mb->ixpath,
		    strerror(errno));
	free(b.p);
}

/* ------------------------------------------------------------ open */

/*
 * Directories whose leftover temporary files were looked for lately, so
 * that a login into a spool of thousands of mboxes does not read the
 * whole directory each time (3 ms for 10,000 entries).
 */
#define MB_CLEAN_SLOTS	64

static struct {
	uint64_t	 key;		/* hash of the directory; 0: free */
	time_t		 when;
} mb_clean_seen[MB_CLEAN_SLOTS];
static pthread_mutex_t	 mb_clean_mtx = PTHREAD_MUTEX_INITIALIZER;

/* Is a look at dir due (none in this process for MB_TMP_STALE)? */
static bool
mb_clean_due(const char *dir)
{
	uint64_t	 key = store_hash(0, dir, strlen(dir)) | 1;
	time_t		 now = time(NULL);
	size_t		 i, old = 0;
	bool		 due = true;

	pthread_mutex_lock(&mb_clean_mtx);
	for (i = 0; i < MB_CLEAN_SLOTS; i++) {
		if (mb_clean_seen[i].key == key)
			break;
		if (mb_clean_seen[i].when < mb_clean_seen[old].when)
			old = i;
	}
	if (i == MB_CLEAN_SLOTS)
		i = old;			/* the least recent one goes */
	else if (mb_clean_seen[i].when + MB_TMP_STALE > now)
		due = false;
	if (due) {
		mb_clean_seen[i].key = key;
		mb_clean_seen[i].when = now;
	}
	pthread_mutex_unlock(&mb_clean_mtx);
	return due;
}

/*
 * Remove the temporary files of rewrites that died: DIR/.NAME.evpop3d-
 * tmp.PID.N whose PID is not running, or that are older than an hour;
 * and, of our own mbox (we hold its session lock, so no rewrite of it
 * runs in this process), those of our PID. With all, every mbox's in
 * DIR, else only ours. Best effort.
 */
static void
mb_clean_tmp(struct mb *mb, bool all)
{
	struct dirent	*de;
	struct stat	 st;
	char		 own[NAME_MAX + 32], *end;
	const char	*suf;
	size_t		 olen;
	long		 pid;
	bool		 ours;
	DIR		*d;

	olen = (size_t)snprintf(own, sizeof(own), ".%s%s", mb->name,
	    STORE_MBOX_TMP_SUFFIX);
	if (olen >= sizeof(own) || (d = opendir(mb->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		ours = strncmp(de->d_name, own, olen) == 0;
		if (ours)
			suf = de->d_name + olen;
		else if (!all || de->d_name[0] != '.' || (suf = strstr(
		    de->d_name, STORE_MBOX_TMP_SUFFIX)) == NULL)
			continue;
		else
			suf += strlen(STORE_MBOX_TMP_SUFFIX);
		errno = 0;
		pid = strtol(suf, &end, 10);
		if (errno != 0 || end == suf || *end != '.' || pid <= 0 ||
		    pid > INT32_MAX)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    -1 || !S_ISREG(st.st_mode))
			continue;
		if (!(ours && pid == (long)getpid()) &&
		    !(kill((pid_t)pid, 0) == -1 && errno == ESRCH) &&
		    st.st_mtime + MB_TMP_STALE >= time(NULL))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_warnx("mbox %s: removed %s, left by an update that "
			    "did not finish", mb->dir, de->d_name);
	}
	closedir(d);
}

/* mb->path, dir, name and the lock paths from path. */
static enum store_err
mb_paths(struct mb *mb, const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	const char	*slash;
	char		*real = NULL;

	/* A symbolic link: the file it names is what gets replaced. */
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
	    (real = realpath(path, NULL)) != NULL)
		path = real;
	slash = strrchr(path, '/');
	if (slash == NULL || slash[1] == '\0') {
		free(real);
		snprintf(err, errlen, "mbox %s: want the path of a file", path);
		return STORE_PERM;
	}
	mb->path = strdup(path);
	mb->dir = slash == path ? strdup("/") :
	    strndup(path, (size_t)(slash - path));
	mb->name = strdup(slash + 1);
	if (asprintf(&mb->slock, "%s/.%s%s", mb->dir, mb->name,
	    STORE_MBOX_LOCK_SUFFIX) == -1)
		mb->slock = NULL;
	if (asprintf(&mb->dotlock, "%s.lock", path) == -1)
		mb->dotlock = NULL;
	if (asprintf(&mb->ixpath, "%s/.%s%s", mb->dir, mb->name,
	    MB_IX_SUFFIX) == -1)
		mb->ixpath = NULL;
	free(real);
	if (mb->path == NULL || mb->dir == NULL || mb->name == NULL ||
	    mb->slock == NULL || mb->dotlock == NULL || mb->ixpath == NULL)
		return store_fail(ENOMEM, err, errlen, "mbox", path);
	return STORE_OK;
}

static enum store_err
mb_open(const struct store_params *p, struct maildrop **md_r, char *err,
    size_t errlen)
{
	struct stat	 st;
	struct mb	*mb;
	struct mb_msg	*m;
	struct mb_ixhead ixh;
	enum store_err	 rv;
	bool		 nosep, want_ix = false;
	int		 fd, dot;

	*md_r = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (p->path == NULL || *p->path == '\0') {
		snprintf(err, errlen, "mbox: empty path");
		return STORE_PERM;
	}
	if ((mb = calloc(1, sizeof(*mb))) == NULL)
		return store_fail(errno, err, errlen, "mbox", p->path);
	mb->base.ops = &store_mbox_ops;
	if ((rv = mb_paths(mb, p->path, err, errlen)) != STORE_OK)
		goto fail;

	/* RFC 1939 section 4: the exclusive-access lock, for the session. */
	if ((rv = sesslock_acquire(mb->slock, &mb->lock, err, errlen)) !=
	    STORE_OK)
		goto fail;
	if (mb_clean_due(mb->dir))
		mb_clean_tmp(mb, true);

	/* The index, under the MDA locks. */
	if ((rv = mb_lock(mb, O_RDONLY, F_RDLCK, &fd, &dot, &st, err,
	    errlen)) != STORE_OK)
		goto fail;
	if (fd == -1)			/* no mail yet */
		mb_unlock(mb, fd, dot);
	else {
		mb->dev = st.st_dev;
		mb->ino = st.st_ino;
		/* The cached part, then only what follows it. */
		(void)mb_ix_load(mb, fd, &st);	/* sets mb->ix_end */
		rv = mb_index(mb, fd, mb->ix_end, &nosep, err, errlen);
		if (rv == STORE_OK && nosep) {
			log_debug("mbox %s: no separator at the cached end "
			    "%llu: full scan", mb->path,
			    (unsigned long long)mb->ix_end);
			mb_index_reset(mb);
			rv = mb_index(mb, fd, 0, &nosep, err, errlen);
		}
		if (rv == STORE_OK)
			want_ix = mb_ix_prepare(mb, fd, &ixh);
		mb_unlock(mb, fd, dot);
		if (rv != STORE_OK)
			goto fail;
		if (want_ix)
			mb_ix_write(mb, &ixh);
	}
	/* No slack from the doubling: 72 bytes a message, plus its UIDL. */
	if (mb->nmsgs > 0 && mb->nmsgs < mb->msgs_cap &&
	    (m = reallocarray(mb->msgs, mb->nmsgs, sizeof(*m))) != NULL) {
		mb->msgs = m;
		mb->msgs_cap = mb->nmsgs;
	}
	if ((rv = mb_make_vis(mb, err, errlen)) != STORE_OK ||
	    (rv = mb_make_uidls(mb, p->uidl_format, err, errlen)) != STORE_OK)
		goto fail;
	*md_r = &mb->base;
	return STORE_OK;
fail:
	mb_free(mb);
	return rv;
}

static size_t
mb_count(const struct maildrop *base)
{
	return ((const struct mb *)base)->nvis;
}

static uint64_t
mb_size(const struct maildrop *base, size_t i)
{
	const struct mb	*mb = (const struct mb *)base;

	return i < mb->nvis ? mb_vis(mb, i)->size : 0;
}

static uint64_t
mb_total(const struct maildrop *base)
{
	return ((const struct mb *)base)->total;
}

static const char *
mb_uidl(const struct maildrop *base, size_t i)
{
	const struct mb	*mb = (const struct mb *)base;

	return i < mb->nvis ? mb_vis(mb, i)->uidl : NULL;
}

/* ------------------------------------------------------------ reading */

/* Where entry k ends: the next separator, or the indexed end. */
static uint64_t
mb_entry_end(const struct mb *mb, size_t k)
{
	return k + 1 < mb->nmsgs ? mb->msgs[k + 1].from_off : mb->end;
}

/* pread all of len bytes; -1 with errno (ESTALE for a short file). */
static int
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

/*
 * Cheap, on the loop: the file is the indexed one and message i's
 * separator line is still where it was (else another program rewrote
 * the mbox: STORE_GONE).
 */
static enum store_err
mb_msg_open(struct maildrop *base, size_t i, struct store_reader **r_r)
{
	struct mb		*mb = (struct mb *)base;
	struct mb_reader	*r;
	struct mb_msg		*m;
	struct stat		 st;
	char			 line[MBOX_FROM_MAX + 1];
	enum store_err		 rv = STORE_GONE;
	int			 fd;

	*r_r = NULL;
	if (i >= mb->nvis)
		return STORE_GONE;
	m = mb_vis(mb, i);
	fd = open(mb->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT ? STORE_GONE : store_errno(errno);
	if (fstat(fd, &st) == -1) {
		rv = store_errno(errno);
		goto fail;
	}
	if (st.st_dev != mb->dev || st.st_ino != mb->ino ||
	    (uint64_t)st.st_size < mb->end)
		goto fail;
	/* The separator line, and the '\n' before it. */
	if (m->from_off > 0) {
		if (mb_pread(fd, line, m->from_len + 1, m->from_off - 1) == -1)
			goto fail_io;
		if (line[0] != '\n')
			goto fail;
	} else if (mb_pread(fd, line + 1, m->from_len, 0) == -1)
		goto fail_io;
	if ((uint32_t)mbox_hash_buf(line + 1, m->from_len) != m->from_hash)
		goto fail;

	if ((r = malloc(sizeof(*r))) == NULL) {
		rv = STORE_TEMP;
		goto fail;
	}
	r->base.ops = &store_mbox_ops;
	r->mb = mb;
	r->fd = fd;
	r->pos = m->from_off + m->from_len;
	r->end = m->end_off;
	r->entry_end = mb_entry_end(mb, (size_t)(m - mb->msgs));
	r->want = m->hash;
	mbox_hash_init(&r->h);
	mbox_hash_update(&r->h, line + 1, m->from_len);
	mbox_filter_init(&r->f, NULL);
	r->rpos = r->rlen = 0;
	*r_r = &r->base;
	return STORE_OK;
fail_io:
	rv = errno == ESTALE ? STORE_GONE : store_errno(errno);
fail:
	close(fd);
	if (rv == STORE_GONE)
		mb_ix_drop(mb);		/* the next login scans it all */
	return rv;
}

static ssize_t
mb_msg_read(struct store_reader *base, void *buf, size_t len)
{
	struct mb_reader	*r = (struct mb_reader *)base;
	size_t			 want, content, used, out;
	uint64_t		 left;

	for (;;) {
		if (r->rpos == r->rlen && r->pos < r->entry_end) {
			left = r->entry_end - r->pos;
			want = left < sizeof(r->raw) ? (size_t)left :
			    sizeof(r->raw);
			if (mb_pread(r->fd, r->raw, want, r->pos) == -1) {
				if (errno == ESTALE)
					mb_ix_drop(r->mb);	/* cut */
				return -1;
			}
			mbox_hash_update(&r->h, r->raw, want);
			content = want;
			if (r->pos >= r->end)
				content = 0;
			else if (r->end - r->pos < want)
				content = (size_t)(r->end - r->pos);
			r->rpos = 0;
			r->rlen = content;
			r->pos += want;
		}
		used = mbox_filter_run(&r->f, r->raw + r->rpos,
		    r->rlen - r->rpos, r->pos >= r->end, buf, len, &out, NULL);
		r->rpos += used;
		if (out > 0)
			return (ssize_t)out;
		if (mbox_filter_done(&r->f) && r->pos >= r->entry_end) {
			/* The whole entry was read: is it the indexed one? */
			if (mbox_hash_final(&r->h) != r->want) {
				mb_ix_drop(r->mb);
				errno = ESTALE;
				return -1;
			}
			return 0;
		}
	}
}

static void
mb_msg_close(struct store_reader *base)
{
	struct mb_reader	*r = (struct mb_reader *)base;

	if (r == NULL)
		return;
	close(r->fd);
	free(r);
}

/* ------------------------------------------------------------ commit */

/* The rewrite: a temporary file and what is being copied into it. */
struct mb_copy {
	struct mb	*mb;
	const uint8_t	*del;		/* by visible index */
	int		 fd;		/* the mbox, locked */
	int		 tfd;		/* the new file */
	char		 tmp[PATH_MAX];
	char		*in, *out;	/* MB_COPY_BUF each */
	size_t		 olen;
	int		 changed;	/* another program changed the mbox */
};

static int
mb_out_flush(struct mb_copy *c)
{
	if (fio_write_full(c->tfd, c->out, c->olen) == -1)
		return -1;
	c->olen = 0;
	return 0;
}

/* Append bytes to the new file (buffered). */
static int
mb_out(struct mb_copy *c, const char *p, size_t n)
{
	if (c->olen + n > MB_COPY_BUF && mb_out_flush(c) == -1)
		return -1;
	if (n >= MB_COPY_BUF)
		return fio_write_full(c->tfd, p, n);
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
	return 0;
}

/*
 * Copy the indexed part: every entry is checked against its checksum,
 * the kept ones are written. Returns 0, or -1 (errno set; c->changed
 * if the mbox is not what open() saw).
 */
static int
mb_copy_index(struct mb_copy *c)
{
	struct mb		*mb = c->mb;
	struct mb_msg		*m;
	struct mbox_hash	 h;
	uint64_t		 off = 0, pos, ee;
	size_t			 k = 0, v = 0, take, want;
	ssize_t			 n;
	bool			 keep;

	mbox_hash_init(&h);
	while (off < mb->end) {
		want = mb->end - off < MB_COPY_BUF ? (size_t)(mb->end - off) :
		    MB_COPY_BUF;
		if ((n = fio_read_full(c->fd, c->in, want)) == -1)
			return -1;
		if ((size_t)n < want) {
			c->changed = 1;		/* cut while we waited */
			return -1;
		}
		for (pos = off; pos < off + want;) {
			m = &mb->msgs[k];
			keep = m->hidden || c->del[v] == 0;
			ee = mb_entry_end(mb, k);
			take = (size_t)((ee < off + want ? ee : off + want) -
			    pos);
			mbox_hash_update(&h, c->in + (pos - off), take);
			if (keep && mb_out(c, c->in + (pos - off), take) == -1)
				return -1;
			pos += take;
			if (pos == ee) {
				if (mbox_hash_final(&h) != m->hash) {
					c->changed = 1;
					return -1;
				}
				mbox_hash_init(&h);
				if (!m->hidden)
					v++;
				k++;
			}
		}
		off += want;
	}
	return 0;
}

/*
 * Copy what was appended after the indexed end. If the last entry goes,
 * what follows it must be a new entry: a separator line, after the line
 * terminator the last message lacked (if it did). Anything else means
 * the last message grew, and it is not ours to delete.
 */
static int
mb_copy_tail(struct mb_copy *c, bool last_deleted, bool last_unterminated)
{
	const char	*nl;
	ssize_t		 n;
	size_t		 skip = 0, len;
	bool		 first = true;

	for (;;) {
		if ((n = fio_read_full(c->fd, c->in, MB_COPY_BUF)) == -1)
			return -1;
		if (n == 0)
			return 0;
		len = (size_t)n;
		if (first && last_deleted) {
			/*
			 * What follows a deleted last message must be new
			 * entries: line terminators (the one it lacked, if
			 * it did, and blank lines some MDAs put first), then
			 * a separator. Anything else means the message grew.
			 */
			if (last_unterminated && c->in[0] != '\n' &&
			    c->in[0] != '\r')
				goto changed;
			while (skip < len && (c->in[skip] == '\n' ||
			    (c->in[skip] == '\r' && skip + 1 < len &&
			    c->in[skip + 1] == '\n')))
				skip += c->in[skip] == '\n' ? 1 : 2;
			if (skip == len && len == MB_COPY_BUF)
				goto changed;	/* a megabyte of blank lines */
			if (skip < len) {
				nl = memchr(c->in + skip, '\n', len - skip);
				if (nl == NULL || !mbox_from_valid(c->in + skip,
				    (size_t)(nl - (c->in + skip))))
					goto changed;
			}
		}
		first = false;
		if (mb_out(c, c->in + skip, len - skip) == -1)
			return -1;
		skip = 0;
	}
changed:
	c->changed = 1;
	return -1;
}

/*
 * The rewrite, under the MDA locks: new file, copy, fsync, rename.
 * Returns STORE_OK once the new mbox is in place; otherwise nothing
 * changed (the temporary file is gone) and err says why.
 */
static enum store_err
mb_rewrite(struct mb_copy *c, const struct stat *st, char *err,
    size_t errlen)
{
	struct mb	*mb = c->mb;
	struct mb_msg	*last = &mb->msgs[mb->nmsgs - 1];
	struct stat	 tst;
	enum store_err	 rv;
	bool		 last_deleted;
	int		 n;

	if (st->st_dev != mb->dev || st->st_ino != mb->ino ||
	    (uint64_t)st->st_size < mb->end) {
		c->changed = 1;
		snprintf(err, errlen, "replaced or cut");
		return STORE_TEMP;
	}
	if (mb_tmp_name(mb, c->tmp, sizeof(c->tmp)) == -1)
		return store_fail(ENAMETOOLONG, err, errlen, "mbox", mb->path);
	c->tfd = fio_atomic_open(c->tmp, O_EXCL | O_NOCTTY, 0600);
	if (c->tfd == -1)
		return store_fail(errno, err, errlen, "create", c->tmp);

	/* The owner, group and mode of the old file. */
	if (fstat(c->tfd, &tst) == -1) {
		rv = store_fail(errno, err, errlen, "fstat", c->tmp);
		goto fail;
	}
	if ((tst.st_uid != st->st_uid || tst.st_gid != st->st_gid) &&
	    fchown(c->tfd, st->st_uid, st->st_gid) == -1) {
		store_fail(errno, err, errlen, "fchown", c->tmp);
		rv = STORE_TEMP;
		goto fail;
	}
	if (fchmod(c->tfd, st->st_mode & 07777) == -1) {
		store_fail(errno, err, errlen, "fchmod", c->tmp);
		rv = STORE_TEMP;
		goto fail;
	}

	last_deleted = !last->hidden && c->del[mb->nvis - 1] != 0;
	if (mb_copy_index(c) == -1 || mb_copy_tail(c, last_deleted,
	    last->no_eol) == -1 || mb_out_flush(c) == -1) {
		if (c->changed) {
			snprintf(err, errlen, "changed");
			rv = STORE_TEMP;
		} else
			rv = store_fail(errno, err, errlen, "write", c->tmp);
		goto fail;
	}
	if (fsync(c->tfd) == -1) {
		rv = store_fail(errno, err, errlen, "fsync", c->tmp);
		goto fail;
	}
	n = close(c->tfd);
	c->tfd = -1;
	if (n == -1) {
		rv = store_fail(errno, err, errlen, "close", c->tmp);
		goto fail;
	}
	if (rename(c->tmp, mb->path) == -1) {
		rv = store_fail(errno, err, errlen, "rename", c->tmp);
		goto fail;
	}
	/* The rename on disk; best effort: the new mbox is in place. */
	if (fio_fsync_dir(mb->dir) == -1)
		log_warn("mbox %s: fsync of the directory", mb->dir);
	return STORE_OK;
fail:
	if (c->tfd != -1)
		close(c->tfd);
	c->tfd = -1;
	if (unlink(c->tmp) == -1)
		log_warn("mbox %s: removal", c->tmp);
	return rv == STORE_OK ? STORE_TEMP : rv;
}

/*
 * RFC 1939 section 6. All or nothing: either the new mbox without the
 * marked messages is in place (STORE_OK), or the old one is untouched
 * and every marked message counts as failed (logged with the reason).
 */
static enum store_err
mb_commit(struct maildrop *base, const uint8_t *del, size_t *failed_r)
{
	struct mb	*mb = (struct mb *)base;
	struct mb_copy	 c;
	struct stat	 st;
	char		 err[512];
	enum store_err	 rv;
	size_t		 i, marked = 0;
	int		 dot;

	for (i = 0; del != NULL && i < mb->nvis; i++)
		marked += del[i] != 0;
	if (failed_r != NULL)
		*failed_r = 0;
	if (marked == 0) {
		mb_free(mb);		/* nothing to remove: touch nothing */
		return STORE_OK;
	}

	memset(&c, 0, sizeof(c));
	c.mb = mb;
	c.del = del;
	c.fd = c.tfd = -1;
	err[0] = '\0';
	if ((rv = mb_lock(mb, O_RDWR, F_WRLCK, &c.fd, &dot, &st, err,
	    sizeof(err))) != STORE_OK)
		goto done;
	if (c.fd == -1) {
		c.changed = 1;
		snprintf(err, sizeof(err), "removed");
		rv = STORE_TEMP;
		goto unlock;
	}
	c.in = malloc(MB_COPY_BUF);
	c.out = malloc(MB_COPY_BUF);
	if (c.in == NULL || c.out == NULL)
		rv = store_fail(ENOMEM, err, sizeof(err), "mbox", mb->path);
	else
		rv = mb_rewrite(&c, &st, err, sizeof(err));
	free(c.in);
	free(c.out);
unlock:
	mb_unlock(mb, c.fd, dot);
	/*
	 * Leftovers of dead rewrites: this mbox's every time, the others'
	 * when due; after the MDA locks, so deliveries never wait for it.
	 */
	mb_clean_tmp(mb, mb_clean_due(mb->dir));
	/*
	 * A new file (its inode may come back for another one), or one that
	 * changed under us: the cache describes neither.
	 */
	if (rv == STORE_OK || c.changed)
		mb_ix_drop(mb);
done:
	if (rv != STORE_OK) {
		if (c.changed)
			log_warnx("mbox %s: changed by another program during "
			    "the session (%s): nothing deleted", mb->path, err);
		else
			log_warnx("mbox %s: update failed, nothing deleted: %s",
			    mb->path, err);
		if (failed_r != NULL)
			*failed_r = marked;
		rv = STORE_TEMP;	/* -ERR [SYS/TEMP]: try again later */
	}
	mb_free(mb);
	return rv;
}

static void
mb_close(struct maildrop *base)
{
	mb_free((struct mb *)base);
}

static void
mb_disown(struct maildrop *base)
{
	sesslock_disown(((struct mb *)base)->lock);
}

const struct store_ops store_mbox_ops = {
	.name =		"mbox",
	.open =		mb_open,
	.count =	mb_count,
	.size =		mb_size,
	.total =	mb_total,
	.uidl =		mb_uidl,
	.msg_open =	mb_msg_open,
	.msg_locate =	NULL,
	.msg_read =	mb_msg_read,
	.msg_close =	mb_msg_close,
	.commit =	mb_commit,
	.close =	mb_close,
	.disown =	mb_disown,
};
