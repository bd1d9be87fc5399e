/*
 * maildir_uidlist: read Dovecot's dovecot-uidlist (see maildir_uidlist.h).
 *
 * The file is read whole into one buffer and parsed in place: fields are
 * cut with NULs and the records point into the buffer. Base names are
 * found through an open-addressing table of record indexes, each slot
 * with 32 bits of the name's hash so that a probe rarely leaves the
 * table. The hash is seeded per list (a crafted file cannot aim for
 * collisions). A lookup first tries the record after the last one found:
 * Dovecot numbers mail in delivery order, the order of a Maildir scan,
 * so most lookups of a scan take no hashing and read memory in order.
 * Runs on the worker thread that opens the maildrop. Measured (Release,
 * a loaded 2-CPU VM): a list of 100,000 records (6.9 MB) loads in 5.6-6
 * ms with or without a cutoff, and a 100,000-message login takes about
 * as long with one as without (85-105 ms, as before the cutoff); one of
 * 300,000 records, two thirds expunged mail (filtered), 145-170 ms, as
 * before the filter; a list whose UIDs follow no scan order at all costs
 * up to 60 ms more (hashing, sorting). Writing the cutoff file at the
 * first login takes 0.25-0.55 ms (an fsync() on ext4).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/pidcache.h"
#include "store/idtab.h"
#include "store/maildir/maildir_uidlist.h"
#include "store/store.h"

#define UL_ESTALE_TRIES	3	/* NFS: reopen and read again, as Dovecot */
#define UL_FILE_MAX_STR	"32 MiB"
#define UL_LINE_MAX_STR	"4096"
_Static_assert(MAILDIR_UIDLIST_FILE_MAX == 32u * 1024 * 1024 &&
    MAILDIR_UIDLIST_LINE_MAX == 4096, "the limits as the log spells them");
#define UL_CUTOFF_MAGIC	"evpop3d-uidl-cutoff 1 "
#define UL_CUTOFF_MAX	64	/* bytes: a longer file is damaged */

struct ul_rec {
	struct maildir_uidlist_rec	 pub;
	const char			*name;	/* base name, not terminated */
	uint32_t			 len;
	bool				 dead;	/* replaced by a later record */
};

struct maildir_uidlist {
	char		*text;		/* the file, cut up in place */
	struct ul_rec	*recs;
	size_t		 nrecs;
	struct idtab	 tab;		/* base name -> record */
	size_t		 hint;		/* the record after the last found */
	size_t		 count;		/* distinct base names */
	size_t		 cap;		/* recs allocated */
	uint32_t	 uidvalidity, nextuid;
	uint32_t	 maxuid;	/* the last record's UID */
	int		 version;
	struct maildir_uidlist_opts *opts;
	unsigned	 filter:1;	/* keep only what opts->want() wants */
};

/* For the table (idtab.h): is record i's base name s (len bytes)? */
static bool
ul_name_is(const void *arg, uint32_t i, const char *s, size_t len)
{
	const struct maildir_uidlist	*ul = arg;
	const struct ul_rec		*r = &ul->recs[i];

	return r->len == len && memcmp(r->name, s, len) == 0;
}

/*
 * Leading decimal digits of *pp as a uint32_t, *pp moved past them.
 * Returns 0 and the value, -1 if there are none or they overflow.
 */
static int
ul_u32(char **pp, uint32_t *v_r)
{
	char		*p = *pp;
	uint64_t	 v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*pp = p;
	*v_r = (uint32_t)v;
	return 0;
}

/* Exactly 32 hex digits (Dovecot's guid_128_from_string()). */
static int
ul_guid_valid(const char *s, size_t len)
{
	size_t	 i;

	if (len != 32)
		return 0;
	for (i = 0; i < len; i++)
		if (strchr("0123456789abcdefABCDEF", s[i]) == NULL)
			return 0;
	return 1;
}

/*
 * The header line. Version 1: "1 <uidvalidity> <nextuid>" (read like
 * sscanf("%u %u")); version 3: "3" and space-separated <key><value>
 * fields in any order, V and N required, G checked, others skipped.
 */
static int
ul_header(struct maildir_uidlist *ul, char *line)
{
	char	*p, *val;
	char	 key;

	if (line[0] < '0' || line[0] > '9' || line[1] != ' ')
		return -1;
	ul->version = line[0] - '0';
	p = line + 2;
	switch (ul->version) {
	case 1:
		while (*p == ' ')
			p++;
		if (ul_u32(&p, &ul->uidvalidity) == -1 || *p != ' ')
			return -1;
		while (*p == ' ')
			p++;
		if (ul_u32(&p, &ul->nextuid) == -1)
			return -1;
		break;
	case 3:
		while (*p != '\0') {
			key = *p++;
			val = p;
			while (*p != '\0' && *p != ' ')
				p++;
			if (key == 'V' || key == 'N') {
				/* Dovecot: strtoul(), 0 if not a number */
				if (ul_u32(&val, key == 'V' ? &ul->uidvalidity :
				    &ul->nextuid) == -1)
					return -1;
			} else if (key == 'G' &&
			    !ul_guid_valid(val, (size_t)(p - val)))
				return -1;
			while (*p == ' ')
				p++;
		}
		break;
	default:
		return -1;			/* 2, or unknown */
	}
	if (ul->uidvalidity == 0 || ul->nextuid == 0)
		return -1;
	return 0;
}

/*
 * Version 3 extension fields up to the " :" that starts the file name;
 * *pp is left on the file name. A key outside A..Z is skipped, as Dovecot
 * drops it. -1 if no file name follows.
 */
static int
ul_fields(struct ul_rec *r, char **pp)
{
	char		*p = *pp, *tok, *end, *d;
	uint64_t	 v;

	while (*p != '\0' && *p != ':') {
		tok = p;
		while (*p != '\0' && *p != ' ')
			p++;
		end = p;
		while (*p == ' ')
			p++;
		if (*tok == 'P' && r->pub.pop3_uidl == NULL) {
			*end = '\0';		/* the first P wins, as there */
			r->pub.pop3_uidl = tok + 1;
		} else if (*tok == 'O' && !r->pub.has_order) {
			/* Dovecot sorts a bad O like none at all. */
			for (v = 0, d = tok + 1; d < end && *d >= '0' &&
			    *d <= '9'; d++) {
				v = v * 10 + (uint64_t)(*d - '0');
				if (v > UINT32_MAX)	/* saturate */
					v = (uint64_t)UINT32_MAX + 1;
			}
			if (d == end && d > tok + 1) {
				r->pub.has_order = true;
				r->pub.order = v > UINT32_MAX ? UINT32_MAX :
				    (uint32_t)v;
			}
		}
	}
	if (*p == ':')
		p++;
	if (*p == '\0')
		return -1;
	*pp = p;
	return 0;
}

/*
 * One record line, into ul->recs[ul->nrecs] unless it names no file or
 * the filter drops it; prev is the previous UID. 0, or -1 if the line is
 * damaged or there are more records to keep than ul->cap.
 */
static int
ul_record(struct maildir_uidlist *ul, char *line, uint32_t *prev)
{
	struct ul_rec	 rec, *r = &rec;
	char		*p = line, *name;
	uint64_t	 h;
	uint32_t	 uid;
	size_t		 s, len;

	memset(r, 0, sizeof(*r));
	if (ul_u32(&p, &uid) == -1 || uid == 0 || *p != ' ' ||
	    uid <= *prev || uid == UINT32_MAX)
		return -1;
	if (ul->version == 1 && uid >= ul->nextuid)
		return -1;
	*prev = uid;
	while (*p == ' ')
		p++;
	if (ul->version == 3 && ul_fields(r, &p) == -1)
		return -1;
	name = p;
	if (strchr(name, '/') != NULL)
		return -1;
	if (*name == '\0')
		return 0;			/* version 1: matches nothing */
	len = strcspn(name, ":");
	if (ul->filter && !ul->opts->want(ul->opts->arg, name, len))
		return 0;
	if (ul->nrecs == ul->cap) {
		ul->opts->why = "more records than the Maildir has messages";
		return -1;
	}
	r->pub.uid = uid;
	r->name = name;
	r->len = (uint32_t)len;
	s = idtab_find(&ul->tab, name, len, ul_name_is, ul, &h);
	if (!idtab_used(&ul->tab, s))
		ul->count++;
	else	/* a later record of the same base name replaces it */
		ul->recs[idtab_get(&ul->tab, s)].dead = true;
	ul->recs[ul->nrecs] = rec;
	idtab_set(&ul->tab, s, h, (uint32_t)ul->nrecs);
	ul->nrecs++;
	return 0;
}

/*
 * Does the record line at p (up to end) have a UID above max? A line
 * that does not start with a number does not: it is parsed, and refused.
 */
static int
ul_above(const char *p, const char *end, uint32_t max)
{
	uint64_t	 v = 0;

	if (p == end || *p < '0' || *p > '9')
		return 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (uint64_t)(*p - '0')) > max)
			return 1;
	return 0;
}

/*
 * Parse ul->text (len bytes; partial: only the first len bytes of a
 * longer file): 0; -1 if it is no usable list (opts->why and ->line
 * set); -2 when out of memory.
 */
static int
ul_parse(struct maildir_uidlist *ul, size_t len, int partial)
{
	struct maildir_uidlist_opts	*o = ul->opts;
	char				*p = ul->text, *end, *nl;
	size_t				 lines = 0, limit;
	uint32_t			 prev = 0;
	int				 stopped = 0;

	o->why = "damaged";
	/* A torn last line (an append in progress) is not there yet. */
	while (len > 0 && p[len - 1] != '\n')
		len--;
	end = p + len;
	/* Count the lines up to the first record above the cutoff. */
	for (nl = p; nl < end; nl++) {
		if (lines > 0 && o->max_uid > 0 &&
		    ul_above(nl, end, o->max_uid)) {
			end = nl;
			stopped = 1;
			break;
		}
		if ((nl = memchr(nl, '\n', (size_t)(end - nl))) == NULL)
			break;
		lines++;
	}
	if (partial && !stopped) {
		o->why = "larger than " UL_FILE_MAX_STR
		    " up to the cutoff";
		return -1;
	}
	if (lines == 0 || lines >= UINT32_MAX / 2) {
		o->line = 1;
		return -1;
	}
	if ((nl = memchr(p, '\0', (size_t)(end - p))) != NULL) {
		o->why = "a NUL byte";
		for (o->line = 1; (p = memchr(p, '\n', (size_t)(nl - p))) !=
		    NULL; p++)
			o->line++;
		return -1;
	}
	/* Records of expunged mail beyond that: keep only the Maildir's. */
	limit = 2 * o->nmsgs + 1000;
	if (lines - 1 > limit) {
		if (o->want == NULL) {
			o->why = "more records than the Maildir has messages";
			return -1;
		}
		ul->filter = 1;
		ul->cap = limit;
	} else
		ul->cap = lines;
	if ((ul->recs = reallocarray(NULL, ul->cap, sizeof(*ul->recs))) ==
	    NULL || idtab_init(&ul->tab, ul->cap) == -1)
		return -2;

	for (o->line = 1; p < end; p = nl + 1, o->line++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if ((size_t)(nl - p) + 1 > MAILDIR_UIDLIST_LINE_MAX) {
			o->why = "a line longer than "
			    UL_LINE_MAX_STR " bytes";
			return -1;
		}
		*nl = '\0';
		if (p == ul->text) {
			if (ul_header(ul, p) == -1)
				return -1;
		} else if (ul_record(ul, p, &prev) == -1)
			return -1;
	}
	ul->maxuid = prev;
	o->why = NULL;
	o->line = 0;
	return 0;
}

/*
 * Read path whole into a new buffer, or (partial_ok) its first
 * MAILDIR_UIDLIST_FILE_MAX bytes if it is larger (*partial_r set): 1; 0
 * for "no usable file" (o->why: NULL if there is none); -1.
 */
static int
ul_read(const char *path, struct maildir_uidlist_opts *o, int partial_ok,
    char **text_r, size_t *len_r, int *partial_r)
{
	struct stat	 st;

	/* Appends after the fstat() are left for the next login. */
	*partial_r = 0;
	if (fio_read_small(path, O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
	    MAILDIR_UIDLIST_FILE_MAX, partial_ok ? FIO_HEAD : 0, &st, text_r,
	    len_r) == 0) {
		*partial_r = (uint64_t)st.st_size > MAILDIR_UIDLIST_FILE_MAX;
		return 1;
	}
	if (st.st_mode == 0) {			/* open() or fstat() failed */
		if (errno == ELOOP) {
			o->why = "a symbolic link";
			return 0;
		}
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	}
	if (!S_ISREG(st.st_mode))
		o->why = "not a regular file";
	else if ((uint64_t)st.st_size > MAILDIR_UIDLIST_FILE_MAX)
		o->why = "larger than " UL_FILE_MAX_STR;
	else
		return -1;			/* could not read it */
	return 0;
}

int
maildir_uidlist_load(const char *root, struct maildir_uidlist_opts *o,
    struct maildir_uidlist **ul_r)
{
	struct maildir_uidlist	*ul;
	char			 path[PATH_MAX];
	size_t			 len = 0;
	int			 r, tries = 0, saved, partial;

	*ul_r = NULL;
	o->why = NULL;
	o->line = 0;
	if (snprintf(path, sizeof(path), "%s/%s", root,
	    MAILDIR_UIDLIST_FILE) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((ul = calloc(1, sizeof(*ul))) == NULL)
		return -1;
	ul->opts = o;
	do {
		r = ul_read(path, o, o->max_uid > 0, &ul->text, &len,
		    &partial);
	} while (r == -1 && errno == ESTALE && ++tries < UL_ESTALE_TRIES);
	if (r == 1) {
		r = ul_parse(ul, len, partial);
		/* The text stays: the records point into it. */
		ul->opts = NULL;
		if (r == 0) {
			*ul_r = ul;
			return 1;
		}
		maildir_uidlist_free(ul);
		if (r == -2) {
			errno = ENOMEM;
			return -1;
		}
		return 0;			/* unusable */
	}
	saved = errno;
	maildir_uidlist_free(ul);
	errno = saved;
	return r;			/* 0: none; -1: could not read it */
}

uint32_t
maildir_uidlist_uidvalidity(const struct maildir_uidlist *ul)
{
	return ul->uidvalidity;
}

size_t
maildir_uidlist_count(const struct maildir_uidlist *ul)
{
	return ul->count;
}

uint32_t
maildir_uidlist_max_uid(const struct maildir_uidlist *ul)
{
	return ul->maxuid;
}

const struct maildir_uidlist_rec *
maildir_uidlist_lookup(struct maildir_uidlist *ul, const char *name,
    size_t len)
{
	const struct ul_rec	*r;
	const char		*colon;
	size_t			 s;

	if ((colon = memchr(name, ':', len)) != NULL)
		len = (size_t)(colon - name);
	if (ul->hint < ul->nrecs) {
		r = &ul->recs[ul->hint];
		if (!r->dead && r->len == len &&
		    memcmp(r->name, name, len) == 0) {
			ul->hint++;
			return &r->pub;
		}
	}
	s = idtab_find(&ul->tab, name, len, ul_name_is, ul, NULL);
	if (!idtab_used(&ul->tab, s))
		return NULL;
	ul->hint = idtab_get(&ul->tab, s) + 1;
	return &ul->recs[ul->hint - 1].pub;
}

void
maildir_uidlist_free(struct maildir_uidlist *ul)
{
	if (ul == NULL)
		return;
	idtab_free(&ul->tab);
	free(ul->recs);
	free(ul->text);
	free(ul);
}

/* "<key><decimal>": no sign, no leading zero, at most UINT32_MAX. */
static int
ul_cutoff_field(char **pp, char key, uint32_t *v_r)
{
	char	*p = *pp;

	if (*p++ != key || (p[0] == '0' && p[1] >= '0' && p[1] <= '9') ||
	    ul_u32(&p, v_r) == -1)
		return -1;
	*pp = p;
	return 0;
}

/* The cutoff file's text (len bytes, NUL-terminated): 0, or -1. */
static int
ul_cutoff_parse(char *p, size_t len, uint32_t *uidvalidity_r,
    uint32_t *max_uid_r)
{
	if (len != strlen(p) || strncmp(p, UL_CUTOFF_MAGIC,
	    strlen(UL_CUTOFF_MAGIC)) != 0)
		return -1;
	p += strlen(UL_CUTOFF_MAGIC);
	if (ul_cutoff_field(&p, 'V', uidvalidity_r) == -1 || *p++ != ' ' ||
	    ul_cutoff_field(&p, 'U', max_uid_r) == -1 ||
	    strcmp(p, "\n") != 0 || (*uidvalidity_r == 0 && *max_uid_r != 0))
		return -1;
	return 0;
}

/*
 * One read() into a buffer larger than any good file, and no fstat(): a
 * short read of a regular file is its end (a login's fourth syscall for
 * this file saved). What is not a regular file reads as damaged, as the
 * fstat() had it: a FIFO (opened O_NONBLOCK) gives 0 octets or EAGAIN, a
 * directory EISDIR, a symbolic link ELOOP, a device or a longer file more
 * than UL_CUTOFF_MAX octets.
 */
int
maildir_uidlist_cutoff_load(const char *root, uint32_t *uidvalidity_r,
    uint32_t *max_uid_r)
{
	char		 path[PATH_MAX], text[UL_CUTOFF_MAX + 2];
	ssize_t		 n;
	int		 fd;

	if (snprintf(path, sizeof(path), "%s/%s", root,
	    MAILDIR_UIDLIST_CUTOFF_FILE) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			errno = EBADMSG;
		return -1;
	}
	n = fio_read(fd, text, UL_CUTOFF_MAX + 1);
	fio_close_keep_errno(fd);
	if (n == -1) {
		if (errno == EISDIR || errno == EAGAIN)
			errno = EBADMSG;
		return -1;
	}
	text[n] = '\0';
	if (n > UL_CUTOFF_MAX ||
	    ul_cutoff_parse(text, (size_t)n, uidvalidity_r, max_uid_r) == -1) {
		errno = EBADMSG;
		return -1;
	}
	return 1;
}

int
maildir_uidlist_cutoff_save(const char *root, uint32_t uidvalidity,
    uint32_t max_uid)
{
	char	 tmp[PATH_MAX], path[PATH_MAX], line[UL_CUTOFF_MAX];
	int	 len;

	len = snprintf(line, sizeof(line), UL_CUTOFF_MAGIC "V%u U%u\n",
	    uidvalidity, max_uid);
	if (snprintf(path, sizeof(path), "%s/%s", root,
	    MAILDIR_UIDLIST_CUTOFF_FILE) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%ld", root,
	    MAILDIR_UIDLIST_CUTOFF_FILE, (long)pid_self()) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* On disk before the name: a crash must not leave a damaged file. */
	return fio_write_atomic(tmp, path, line, (size_t)len,
	    O_TRUNC | O_NOCTTY, 0600, FIO_SYNC);
}
