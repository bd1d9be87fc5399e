/*
 * auth_file: the Dovecot-style passwd-file user database.
 *
 *   user:{SCHEME}data:uid:gid:gecos:home:shell:extra
 *
 * The whole file is read into one buffer, split in place and indexed by a
 * name-sorted array (bsearch: 100,000 users cost 17 comparisons). The file
 * is not kept open. Each verify stat()s it and, when (dev, inode, size,
 * mtime) changed, builds a new table and swaps it in; a file that no longer
 * parses is reported once and the old table stays in use, so a half-edited
 * file does not lock everyone out. A file that is still being written
 * (its last line has no newline) is not loaded either, but tried again
 * after AUTH_PARTIAL_RETRY_MS even if its key has not changed, since a slow
 * writer may finish within one mtime tick. A reload that would leave no
 * users or lose more than half of them is refused (a writer that truncated
 * the file and cut it at a line end looks like that) unless allowed.
 *
 * Unknown users are checked against a stand-in, the stored password of a
 * real entry of the table's most common cost class (auth_password_cost()),
 * so that a miss costs what most hits cost; its result is never used.
 *
 * Locking: tab is read under the rwlock (readers verify concurrently and
 * hold it only to look up and copy one entry; hashing runs outside it).
 * reload_mtx serialises reloaders and guards the "already warned" state;
 * a reloader takes the write lock only for the pointer swap.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "auth/auth.h"
#include "lib/evpop3d.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/monotime.h"

/* Refuse absurd files: 100,000 users are a few MB. */
#define AUTH_FILE_MAX		(256UL * 1024 * 1024)
#define AUTH_FIELDS		8
#define AUTH_PARTIAL_RETRY_MS	1000	/* try an unfinished file again */
#define AUTH_COST_CLASSES	16	/* distinct cost classes counted */
#define AUTH_CLASS_MAX		64	/* auth_password_cost() buffer */
#define AUTH_UNUSABLE_LINES	20	/* users named at load, then a count */

/* What identifies one version of the file. */
struct auth_fkey {
	dev_t			 dev;
	ino_t			 ino;
	off_t			 size;
	struct timespec		 mtim;
};

/* One user; the strings point into auth_table.buf. */
struct auth_entry {
	const char		*name;
	const char		*pass;
	const char		*home;
	const char		*extra;
	uid_t			 uid;
	gid_t			 gid;
	size_t			 line;
};

struct auth_table {
	char			*buf;		/* file contents, split in place */
	size_t			 bufsize;	/* allocated */
	size_t			 datalen;	/* read */
	struct auth_entry	*ents;		/* sorted by name */
	size_t			 nents;
	struct auth_fkey	 key;
	const char		*standin;	/* an entry's pass, or NULL */
	size_t			 unusable;	/* entries that cannot be
						   checked (scheme, hash) */
	bool			 local;		/* on a local file system */
};

enum auth_load {
	AUTH_LOAD_OK,
	AUTH_LOAD_ERROR,	/* broken: this version is not tried again */
	AUTH_LOAD_PARTIAL,	/* no final newline: being written */
};

struct auth_db {
	char			*path;
	char			*dummy;		/* stand-in if the table has none */
	pthread_rwlock_t	 lock;		/* protects tab */
	pthread_mutex_t		 reload_mtx;	/* protects the fields below */
	struct auth_table	*tab;
	struct auth_fkey	 bad_key;	/* version that failed to load */
	struct auth_fkey	 partial_key;	/* version being written */
	uint64_t		 partial_retry;	/* ms, monotonic */
	unsigned int		 have_bad:1;
	unsigned int		 have_partial:1;
	unsigned int		 stat_failed:1;
	unsigned int		 allow_shrink:1;	/* set at open only */
};

static void	auth_fkey_from_stat(struct auth_fkey *, const struct stat *);
static bool	auth_fkey_eq(const struct auth_fkey *, const struct auth_fkey *);
static void	auth_table_free(struct auth_table *);
static int	auth_read_file(const char *, struct auth_table *, char *,
		    size_t);
static int	auth_parse_id(const char *, unsigned long long *);
static int	auth_parse_line(char *, struct auth_entry *, char *, size_t,
		    const char *, size_t);
static int	auth_entry_cmp_name(const void *, const void *);
static int	auth_entry_cmp(const void *, const void *);
static void	auth_table_pick_standin(struct auth_table *, const char *);
static void	auth_report_unusable(const struct auth_entry *,
		    const char *, size_t);
static enum auth_load auth_table_load(const char *, struct auth_table **,
		    char *, size_t);
static bool	auth_shrink_refused(const struct auth_db *, size_t, size_t);
static void	auth_db_refresh(struct auth_db *);

static void
auth_fkey_from_stat(struct auth_fkey *k, const struct stat *st)
{
	memset(k, 0, sizeof(*k));
	k->dev = st->st_dev;
	k->ino = st->st_ino;
	k->size = st->st_size;
	k->mtim = st->st_mtim;
}

static bool
auth_fkey_eq(const struct auth_fkey *a, const struct auth_fkey *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtim.tv_sec == b->mtim.tv_sec &&
	    a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* The buffer holds hashes and maybe {PLAIN} passwords: wipe it. */
static void
auth_table_free(struct auth_table *tab)
{
	if (tab == NULL)
		return;
	auth_wipe(tab->buf, tab->bufsize);
	free(tab->buf);
	free(tab->ents);
	free(tab);
}

/*
 * Read the whole file into tab->buf (NUL-terminated) and record its key
 * as seen by fstat() before reading: if it changes while we read, the next
 * verify sees a different key and reads it again. Not fio_read_small(),
 * which stops at the size fstat() saw: this reads on to the end, and
 * wipes every buffer it lets go. 0, or -1 with err set.
 */
static int
auth_read_file(const char *path, struct auth_table *tab, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL, *nbuf;
	size_t		 cap, len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK))
	    == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((unsigned long long)st.st_size > AUTH_FILE_MAX) {
		snprintf(err, errlen, "%s: file too large", path);
		goto fail;
	}
	auth_fkey_from_stat(&tab->key, &st);

	cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	for (;;) {
		if (len + 1 >= cap) {
			/* the file grew since fstat() */
			if (cap > AUTH_FILE_MAX) {
				snprintf(err, errlen, "%s: file too large",
				    path);
				goto fail;
			}
			if ((nbuf = malloc(cap * 2)) == NULL) {
				snprintf(err, errlen, "%s: %s", path,
				    strerror(errno));
				goto fail;
			}
			memcpy(nbuf, buf, len);
			auth_wipe(buf, cap);
			free(buf);
			buf = nbuf;
			cap *= 2;
		}
		if ((n = fio_read_full(fd, buf + len, cap - 1 - len)) == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	tab->buf = buf;
	tab->bufsize = cap;
	tab->datalen = len;
	return 0;

 fail:
	if (buf != NULL) {
		auth_wipe(buf, cap);
		free(buf);
	}
	close(fd);
	return -1;
}

/* A uid or gid: decimal digits only, below the (uid_t)-1 marker. */
static int
auth_parse_id(const char *s, unsigned long long *v_r)
{
	unsigned long long	 v = 0;
	const char		*p;

	if (*s == '\0')
		return -1;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v >= (unsigned long long)(uid_t)-1 ||
		    v >= (unsigned long long)(gid_t)-1)
			return -1;
	}
	*v_r = v;
	return 0;
}

/*
 * Split one NUL-terminated line (not blank, not a comment) into e.
 * Returns 0, or -1 with "FILE:LINE: reason" in err. Field contents are
 * never put in the message: a confused admin may have a password there.
 */
static int
auth_parse_line(char *line, struct auth_entry *e, char *err, size_t errlen,
    const char *path, size_t lineno)
{
	char			*f[AUTH_FIELDS], *p, *c;
	size_t			 nf = 0;
	unsigned long long	 v;

	p = line;
	while (nf < AUTH_FIELDS - 1 && (c = strchr(p, ':')) != NULL) {
		*c = '\0';
		f[nf++] = p;
		p = c + 1;
	}
	f[nf++] = p;	/* the last field keeps any further ':' */

	memset(e, 0, sizeof(*e));
	e->line = lineno;
	e->uid = (uid_t)-1;
	e->gid = (gid_t)-1;
	e->home = "";
	e->extra = "";

	if (!auth_username_valid(f[0])) {
		snprintf(err, errlen, "%s:%zu: invalid user name", path,
		    lineno);
		return -1;
	}
	e->name = f[0];
	if (nf < 2 || f[1][0] == '\0') {
		snprintf(err, errlen, "%s:%zu: missing password field", path,
		    lineno);
		return -1;
	}
	e->pass = f[1];
	if (nf > 2 && f[2][0] != '\0') {
		if (auth_parse_id(f[2], &v) == -1) {
			snprintf(err, errlen, "%s:%zu: invalid uid", path,
			    lineno);
			return -1;
		}
		e->uid = (uid_t)v;
	}
	if (nf > 3 && f[3][0] != '\0') {
		if (auth_parse_id(f[3], &v) == -1) {
			snprintf(err, errlen, "%s:%zu: invalid gid", path,
			    lineno);
			return -1;
		}
		e->gid = (gid_t)v;
	}
	/* f[4] is the gecos field and f[6] the shell: unused */
	if (nf > 5) {
		if (strlen(f[5]) >= sizeof(((struct auth_userinfo *)0)->home)) {
			snprintf(err, errlen, "%s:%zu: home too long", path,
			    lineno);
			return -1;
		}
		e->home = f[5];
	}
	if (nf > 7) {
		if (strlen(f[7]) >=
		    sizeof(((struct auth_userinfo *)0)->extra)) {
			snprintf(err, errlen, "%s:%zu: extra field too long",
			    path, lineno);
			return -1;
		}
		e->extra = f[7];
	}
	return 0;
}

/* bsearch: the key's name against an entry's. */
static int
auth_entry_cmp_name(const void *a, const void *b)
{
	const struct auth_entry	*ea = a, *eb = b;

	return strcmp(ea->name, eb->name);
}

/* qsort: by name, then by line so duplicates sort in file order. */
static int
auth_entry_cmp(const void *a, const void *b)
{
	const struct auth_entry	*ea = a, *eb = b;
	int			 r;

	if ((r = strcmp(ea->name, eb->name)) != 0)
		return r;
	return (ea->line > eb->line) - (ea->line < eb->line);
}

/*
 * Choose tab->standin: the stored password of the first entry of the
 * most common cost class (ties: the class seen first). Entries whose
 * scheme is unknown or whose hash cannot be checked do not count (and
 * are named: auth_report_unusable()); with none left, standin stays NULL
 * and the db's own SHA512-CRYPT is used. path is for the log.
 */
static void
auth_table_pick_standin(struct auth_table *tab, const char *path)
{
	struct {
		char	 name[AUTH_CLASS_MAX];
		size_t	 count;
		size_t	 first;		/* entry index */
	}		 cls[AUTH_COST_CLASSES];
	char		 name[AUTH_CLASS_MAX];
	size_t		 ncls = 0, i, j, best = 0, unusable = 0;

	tab->standin = NULL;
	for (i = 0; i < tab->nents; i++) {
		if (auth_password_cost(tab->ents[i].pass, name,
		    sizeof(name)) == -1) {
			auth_report_unusable(&tab->ents[i], path, ++unusable);
			continue;
		}
		for (j = 0; j < ncls; j++)
			if (strcmp(cls[j].name, name) == 0)
				break;
		if (j == ncls) {
			if (ncls == AUTH_COST_CLASSES)
				continue;	/* a rare class: not counted */
			memcpy(cls[j].name, name, sizeof(name));
			cls[j].count = 0;
			cls[j].first = i;
			ncls++;
		}
		cls[j].count++;
	}
	tab->unusable = unusable;
	if (unusable > AUTH_UNUSABLE_LINES)
		log_warnx("event=passwd-entry-unusable file=%s count=%zu "
		    "note=\"%zu more users whose password cannot be "
		    "checked\"", path, unusable, unusable - AUTH_UNUSABLE_LINES);
	if (ncls == 0)
		return;
	for (j = 1; j < ncls; j++)
		if (cls[j].count > cls[best].count)
			best = j;
	tab->standin = tab->ents[cls[best].first].pass;
	log_debug("passwd-file: unknown users are checked like a %s password "
	    "(%zu of %zu users)", cls[best].name, cls[best].count, tab->nents);
}

/*
 * Name, at load time, a user whose password cannot be checked (an
 * unknown scheme or a malformed hash; n of them so far): such a user
 * could never log in, and the operator should hear of it now rather than
 * at a failed login. The scheme's name is logged, never the hash. At most
 * AUTH_UNUSABLE_LINES lines; auth_table_pick_standin() logs the count of
 * the rest.
 */
static void
auth_report_unusable(const struct auth_entry *e, const char *path, size_t n)
{
	char		 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	char		 scheme[40], qscheme[LOG_QUOTED_SIZE(sizeof(scheme))];
	const char	*end;

	if (n > AUTH_UNUSABLE_LINES)
		return;
	if (e->pass[0] != '{')
		snprintf(scheme, sizeof(scheme), "CRYPT");
	else if ((end = strchr(e->pass, '}')) == NULL)
		snprintf(scheme, sizeof(scheme), "?");
	else
		snprintf(scheme, sizeof(scheme), "%.*s",
		    (int)(end - e->pass - 1), e->pass + 1);
	log_warnx("event=passwd-entry-unusable file=%s line=%zu user=%s "
	    "scheme=%s note=\"unknown password scheme or malformed hash: "
	    "this user cannot log in\"", path, e->line, log_quote(quser,
	    sizeof(quser), e->name), log_quote(qscheme, sizeof(qscheme),
	    scheme));
}

/*
 * Read and parse path into a new table. Returns AUTH_LOAD_OK, or
 * AUTH_LOAD_ERROR with a message for the first error in file order in err,
 * or AUTH_LOAD_PARTIAL (and a message) if the last line has no newline.
 */
static enum auth_load
auth_table_load(const char *path, struct auth_table **tab_r, char *err,
    size_t errlen)
{
	struct auth_table	*tab;
	struct auth_entry	*nents;
	char			*p, *eol, *end, *next, *s, perr[512];
	size_t			 cap = 0, lineno = 0, i, dupline = 0;
	bool			 failed = false;

	if ((tab = calloc(1, sizeof(*tab))) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return AUTH_LOAD_ERROR;
	}
	if (auth_read_file(path, tab, err, errlen) == -1) {
		auth_table_free(tab);
		return AUTH_LOAD_ERROR;
	}
	/*
	 * Every line ends with a newline, the last one too: without it the
	 * file is being written, or was cut short. Its last entry may hold a
	 * truncated password or home directory: never load it.
	 */
	if (tab->datalen > 0 && tab->buf[tab->datalen - 1] != '\n') {
		snprintf(err, errlen, "%s: the last line has no newline: the "
		    "file is being written, or was cut short (every line must "
		    "end with a newline, the last one too)", path);
		auth_table_free(tab);
		return AUTH_LOAD_PARTIAL;
	}

	perr[0] = '\0';
	p = tab->buf;
	end = tab->buf + tab->datalen;
	while (p < end) {
		lineno++;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		next = eol < end ? eol + 1 : end;
		/* LF or CRLF line ends */
		if (eol > p && eol[-1] == '\r')
			eol--;
		/* a NUL would silently cut the line short */
		if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
			snprintf(perr, sizeof(perr), "%s:%zu: NUL byte in line",
			    path, lineno);
			failed = true;
			break;
		}
		*eol = '\0';

		for (s = p; *s == ' ' || *s == '\t'; s++)
			;
		if (*s != '\0' && *s != '#') {
			if (tab->nents == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				nents = reallocarray(tab->ents, cap,
				    sizeof(*tab->ents));
				if (nents == NULL) {
					snprintf(perr, sizeof(perr), "%s: %s",
					    path, strerror(errno));
					failed = true;
					break;
				}
				tab->ents = nents;
			}
			if (auth_parse_line(p, &tab->ents[tab->nents], perr,
			    sizeof(perr), path, lineno) == -1) {
				failed = true;
				break;
			}
			tab->nents++;
		}
		p = next;
	}

	if (tab->nents > 1) {
		qsort(tab->ents, tab->nents, sizeof(*tab->ents),
		    auth_entry_cmp);
		for (i = 0; i + 1 < tab->nents; i++) {
			if (strcmp(tab->ents[i].name, tab->ents[i + 1].name)
			    != 0)
				continue;
			if (dupline == 0 || tab->ents[i + 1].line < dupline)
				dupline = tab->ents[i + 1].line;
		}
	}
	/* Entries were parsed in order, so a duplicate precedes perr. */
	if (dupline != 0) {
		snprintf(err, errlen, "%s:%zu: duplicate user", path, dupline);
		auth_table_free(tab);
		return AUTH_LOAD_ERROR;
	}
	if (failed) {
		snprintf(err, errlen, "%s", perr);
		auth_table_free(tab);
		return AUTH_LOAD_ERROR;
	}
	auth_table_pick_standin(tab, path);
	/* Only a local file is stat()ed on the loop (auth_db_lookup_quick()). */
	tab->local = fio_fs_local(path);
	*tab_r = tab;
	return AUTH_LOAD_OK;
}

/*
 * A reload from nold to nnew users that leaves none or loses more than
 * half of them: a truncated file cut at a line end looks like this.
 */
static bool
auth_shrink_refused(const struct auth_db *db, size_t nold, size_t nnew)
{
	return !db->allow_shrink && nnew < nold && 2 * (nold - nnew) > nold;
}

/*
 * The table is that of the file as it is now: one stat() and a compare.
 * local_only: false without the stat() for a file not on a local disk
 * (the event loop's lookup: a hung NFS server would hang the loop).
 */
static bool
auth_db_fresh(struct auth_db *db, bool local_only)
{
	struct auth_fkey	 key, now;
	struct stat		 st;
	bool			 have;

	/* The table's key, then the stat() unlocked: a reload meanwhile
	 * only makes the answer "changed". */
	pthread_rwlock_rdlock(&db->lock);
	have = db->tab != NULL && (!local_only || db->tab->local);
	if (have)
		key = db->tab->key;
	pthread_rwlock_unlock(&db->lock);
	if (!have || stat(db->path, &st) == -1)
		return false;
	auth_fkey_from_stat(&now, &st);
	return auth_fkey_eq(&key, &now);
}

/*
 * Reload the table if the file changed. Never fails: problems are logged
 * (once per file version) and the current table stays. A version that is
 * still being written is tried again AUTH_PARTIAL_RETRY_MS later; any
 * other refused version only once it changes.
 */
static void
auth_db_refresh(struct auth_db *db)
{
	struct auth_table	*nt, *old;
	struct auth_fkey	 key;
	struct stat		 st;
	char			 err[512];
	enum auth_load		 r;
	uint64_t		 now;
	size_t			 nold;

	/* Fast path: one stat() and a compare under the read lock. */
	if (auth_db_fresh(db, false))
		return;

	/*
	 * Slow path, one reloader at a time. Look again: another thread may
	 * have reloaded while we waited, and our stat() may be stale.
	 * Only reloaders write db->tab, and they hold reload_mtx.
	 */
	pthread_mutex_lock(&db->reload_mtx);
	if (stat(db->path, &st) == -1) {
		if (!db->stat_failed)
			log_warnx("passwd-file %s: %s; keeping the old user "
			    "table", db->path, strerror(errno));
		db->stat_failed = 1;
		goto out;
	}
	db->stat_failed = 0;
	auth_fkey_from_stat(&key, &st);
	if ((db->tab != NULL && auth_fkey_eq(&db->tab->key, &key)) ||
	    (db->have_bad && auth_fkey_eq(&db->bad_key, &key)))
		goto out;
	now = mono_ms();
	if (db->have_partial && auth_fkey_eq(&db->partial_key, &key) &&
	    now < db->partial_retry)
		goto out;

	r = auth_table_load(db->path, &nt, err, sizeof(err));
	if (r == AUTH_LOAD_PARTIAL) {
		if (!db->have_partial || !auth_fkey_eq(&db->partial_key, &key))
			log_warnx("passwd-file reload postponed: %s; keeping "
			    "the old user table until the file is complete",
			    err);
		db->partial_key = key;
		db->partial_retry = now + AUTH_PARTIAL_RETRY_MS;
		db->have_partial = 1;
		goto out;
	}
	db->have_partial = 0;
	if (r == AUTH_LOAD_ERROR) {
		log_warnx("passwd-file reload failed: %s; keeping the old "
		    "user table", err);
		db->bad_key = key;
		db->have_bad = 1;
		goto out;
	}
	nold = db->tab != NULL ? db->tab->nents : 0;
	if (auth_shrink_refused(db, nold, nt->nents)) {
		log_errorx("passwd-file %s: reload refused: %zu users instead "
		    "of %zu (a file cut short?); keeping the old user table. "
		    "Replace the file atomically, or set [auth] allow_shrink "
		    "= yes", db->path, nt->nents, nold);
		auth_table_free(nt);
		db->bad_key = key;
		db->have_bad = 1;
		goto out;
	}
	db->have_bad = 0;
	pthread_rwlock_wrlock(&db->lock);
	old = db->tab;
	db->tab = nt;
	pthread_rwlock_unlock(&db->lock);
	log_info("passwd-file %s: reloaded, %zu users", db->path, nt->nents);
	auth_table_free(old);
 out:
	pthread_mutex_unlock(&db->reload_mtx);
}

/* See auth.h. */
int
auth_db_open(const char *path, int flags, struct auth_db **db_r, char *err,
    size_t errlen)
{
	struct auth_db		*db;
	pthread_rwlockattr_t	 attr;
	unsigned char		 rnd[16];
	char			 hex[sizeof(rnd) * 2 + 1], dummy_err[1];
	size_t			 i;

	if (err == NULL || errlen == 0) {
		err = dummy_err;
		errlen = sizeof(dummy_err);
	}
	*db_r = NULL;
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(db);
		return -1;
	}

	db->allow_shrink = (flags & AUTH_DB_ALLOW_SHRINK) != 0;

	/*
	 * The stand-in for tables without a usable entry, and the APOP
	 * stand-in secret: SHA512-CRYPT of a random string.
	 */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		snprintf(err, errlen, "%s: RAND_bytes failed", path);
		goto fail;
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(hex + i * 2, 3, "%02x", rnd[i]);
	db->dummy = auth_password_hash(hex);
	auth_wipe(rnd, sizeof(rnd));
	auth_wipe(hex, sizeof(hex));
	if (db->dummy == NULL) {
		snprintf(err, errlen, "%s: cannot compute a SHA512-CRYPT hash",
		    path);
		goto fail;
	}

	if (auth_table_load(path, &db->tab, err, errlen) != AUTH_LOAD_OK)
		goto fail;
	/* An empty table locks everyone out: not by accident. */
	if (db->tab->nents == 0 && !db->allow_shrink) {
		snprintf(err, errlen, "%s: no users (everyone would be locked "
		    "out); set [auth] allow_shrink = yes to start anyway",
		    path);
		auth_table_free(db->tab);
		goto fail;
	}

	/* Prefer writers so a busy pool cannot starve a reload. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&db->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&db->reload_mtx, NULL);

	*db_r = db;
	return 0;

 fail:
	free(db->dummy);
	free(db->path);
	free(db);
	return -1;
}

/* See auth.h. */
size_t
auth_db_unusable(struct auth_db *db)
{
	size_t	 n;

	pthread_rwlock_rdlock(&db->lock);
	n = db->tab != NULL ? db->tab->unusable : 0;
	pthread_rwlock_unlock(&db->lock);
	return n;
}

/* See auth.h. No verify may be running. */
void
auth_db_free(struct auth_db *db)
{
	if (db == NULL)
		return;
	auth_table_free(db->tab);
	pthread_rwlock_destroy(&db->lock);
	pthread_mutex_destroy(&db->reload_mtx);
	auth_free_secret(db->dummy);
	free(db->path);
	free(db);
}

/* The lookup of the current table: see auth_db_lookup() in auth.h. */
static enum auth_result
auth_db_find(struct auth_db *db, const char *user, struct auth_rec *rec_r,
    bool *found_r, char **standin_r)
{
	struct auth_entry	 key, *e = NULL;
	enum auth_result	 res = AUTH_OK;

	memset(&key, 0, sizeof(key));
	key.name = user;
	pthread_rwlock_rdlock(&db->lock);
	if (db->tab == NULL) {
		pthread_rwlock_unlock(&db->lock);
		return AUTH_TEMPFAIL;
	}
	if (user != NULL && db->tab->nents > 0 && auth_username_valid(user))
		e = bsearch(&key, db->tab->ents, db->tab->nents,
		    sizeof(*e), auth_entry_cmp_name);
	if ((*standin_r = strdup(db->tab->standin != NULL ?
	    db->tab->standin : db->dummy)) == NULL)
		res = AUTH_TEMPFAIL;
	if (e != NULL && res == AUTH_OK) {
		rec_r->uid = e->uid;
		rec_r->gid = e->gid;
		if ((rec_r->password = strdup(e->pass)) == NULL ||
		    (rec_r->name = strdup(e->name)) == NULL ||
		    (rec_r->home = strdup(e->home)) == NULL ||
		    (rec_r->extra = strdup(e->extra)) == NULL)
			res = AUTH_TEMPFAIL;
		else
			*found_r = true;
	}
	pthread_rwlock_unlock(&db->lock);
	if (res != AUTH_OK) {
		auth_rec_clear(rec_r);
		*found_r = false;
		auth_free_secret(*standin_r);
		*standin_r = NULL;
	}
	return res;
}

static void
auth_db_lookup_init(struct auth_rec *rec_r, bool *found_r, char **standin_r)
{
	memset(rec_r, 0, sizeof(*rec_r));
	rec_r->uid = (uid_t)-1;
	rec_r->gid = (gid_t)-1;
	*found_r = false;
	*standin_r = NULL;
}

/*
 * See auth.h. The entry is copied out under the read lock (hashing runs
 * outside it, in auth_verify_stored()).
 */
enum auth_result
auth_db_lookup(struct auth_db *db, const char *user, struct auth_rec *rec_r,
    bool *found_r, char **standin_r)
{
	auth_db_lookup_init(rec_r, found_r, standin_r);
	if (db == NULL)
		return AUTH_TEMPFAIL;
	auth_db_refresh(db);
	return auth_db_find(db, user, rec_r, found_r, standin_r);
}

/* See auth.h. */
bool
auth_db_lookup_quick(struct auth_db *db, const char *user,
    enum auth_result *res_r, struct auth_rec *rec_r, bool *found_r,
    char **standin_r)
{
	auth_db_lookup_init(rec_r, found_r, standin_r);
	if (db == NULL || !auth_db_fresh(db, true))
		return false;
	*res_r = auth_db_find(db, user, rec_r, found_r, standin_r);
	return true;
}

/* See auth.h. */
void
auth_db_warn_unusable(const struct auth_db *db, const char *user)
{
	char quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];

	log_warnx("event=passwd-entry-unusable file=%s user=%s "
	    "note=\"unknown password scheme or malformed hash\"",
	    db->path, log_quote(quser, sizeof(quser), user));
}

/* See auth.h. */
const char *
auth_fail_name(enum auth_fail why)
{
	switch (why) {
	case AUTH_FAIL_USER:
		return "unknown-user";
	case AUTH_FAIL_PASSWORD:
		return "password-mismatch";
	case AUTH_FAIL_ENTRY:
		return "unusable-entry";
	}
	return "unknown";
}
