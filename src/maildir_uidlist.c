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
 * Runs on the worker thread that opens the maildrop. Measured: a list of
 * 100,000 records (5.5 MB) loads in 6-9 ms, and a 100,000-message login
 * takes about as long with one as without (80 ms); a list whose UIDs
 * follow no scan order at all costs up to 60 ms more (hashing, sorting).
 */
#include <sys/random.h>
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

#include "maildir_uidlist.h"

#define UL_ESTALE_TRIES	3	/* NFS: reopen and read again, as Dovecot */

struct ul_rec {
	struct maildir_uidlist_rec	 pub;
	const char			*name;	/* base name, not terminated */
	uint32_t			 len;
	bool				 dead;	/* replaced by a later record */
};

struct ul_slot {
	uint32_t	 idx;		/* record index + 1, 0 = empty */
	uint32_t	 hash;		/* the high bits of the name's hash */
};

struct maildir_uidlist {
	char		*text;		/* the file, cut up in place */
	struct ul_rec	*recs;
	size_t		 nrecs;
	struct ul_slot	*slot;
	size_t		 mask;
	uint64_t	 seed;
	size_t		 hint;		/* the record after the last found */
	size_t		 count;		/* distinct base names */
	uint32_t	 uidvalidity, nextuid;
	int		 version;
};

/* A seeded hash of a base name, eight bytes at a time. */
static uint64_t
ul_hash(uint64_t seed, const char *s, size_t len)
{
	uint64_t	 h = seed ^ (len * 0x9e3779b97f4a7c15ULL), w;

	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	if (len > 0) {
		w = 0;
		memcpy(&w, s, len);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
	}
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 32);
}

/*
 * The slot of base name s (len bytes, hash h), or the empty slot where it
 * goes.
 */
static size_t
ul_find(const struct maildir_uidlist *ul, const char *s, size_t len,
    uint64_t h)
{
	const struct ul_slot	*sl;
	const struct ul_rec	*r;
	uint32_t		 hi = (uint32_t)(h >> 32);
	size_t			 i;

	for (i = (size_t)h & ul->mask; (sl = &ul->slot[i])->idx != 0;
	    i = (i + 1) & ul->mask) {
		if (sl->hash != hi)
			continue;
		r = &ul->recs[sl->idx - 1];
		if (r->len == len && memcmp(r->name, s, len) == 0)
			break;
	}
	return i;
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

/* One record line into ul->recs[ul->nrecs]; prev is the previous UID. */
static int
ul_record(struct maildir_uidlist *ul, char *line, uint32_t *prev)
{
	struct ul_rec	*r = &ul->recs[ul->nrecs];
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
	r->pub.uid = uid;
	r->name = name;
	r->len = (uint32_t)len;
	h = ul_hash(ul->seed, name, len);
	s = ul_find(ul, name, len, h);
	if (ul->slot[s].idx == 0)
		ul->count++;
	else	/* a later record of the same base name replaces it */
		ul->recs[ul->slot[s].idx - 1].dead = true;
	ul->slot[s].idx = (uint32_t)(ul->nrecs + 1);
	ul->slot[s].hash = (uint32_t)(h >> 32);
	ul->nrecs++;
	return 0;
}

/*
 * Parse ul->text (len bytes): 0; -1 if it is no usable list; -2 when out
 * of memory.
 */
static int
ul_parse(struct maildir_uidlist *ul, size_t len)
{
	char		*p = ul->text, *end, *nl;
	size_t		 lines = 0, cap = 16;
	uint32_t	 prev = 0;

	if (len == 0 || memchr(p, '\0', len) != NULL)
		return -1;
	/* A torn last line (an append in progress) is not there yet. */
	while (len > 0 && p[len - 1] != '\n')
		len--;
	end = p + len;
	for (nl = p; nl < end && (nl = memchr(nl, '\n', (size_t)(end - nl))) !=
	    NULL; nl++)
		lines++;
	if (lines == 0 || lines >= UINT32_MAX / 2)
		return -1;
	while (cap < 2 * lines)
		cap <<= 1;
	if ((ul->recs = reallocarray(NULL, lines, sizeof(*ul->recs))) == NULL ||
	    (ul->slot = calloc(cap, sizeof(*ul->slot))) == NULL)
		return -2;
	ul->mask = cap - 1;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if ((size_t)(nl - p) + 1 > MAILDIR_UIDLIST_LINE_MAX)
			return -1;
		*nl = '\0';
		if (p == ul->text) {
			if (ul_header(ul, p) == -1)
				return -1;
		} else if (ul_record(ul, p, &prev) == -1)
			return -1;
	}
	return 0;
}

/* Read path whole into a new buffer: 1, 0 for "no usable file", -1. */
static int
ul_read(const char *path, char **text_r, size_t *len_r)
{
	struct stat	 st;
	char		*text;
	size_t		 got = 0;
	ssize_t		 n;
	int		 fd, saved;

	*text_r = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ?
		    0 : -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > MAILDIR_UIDLIST_FILE_MAX) {
		close(fd);
		return 0;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL)
		goto fail;
	/* Appends after the fstat() are left for the next login. */
	while (got < (size_t)st.st_size) {
		n = read(fd, text + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			free(text);
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	*text_r = text;
	*len_r = got;
	return 1;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
maildir_uidlist_load(const char *root, struct maildir_uidlist **ul_r)
{
	struct maildir_uidlist	*ul;
	char			 path[PATH_MAX];
	size_t			 len = 0;
	int			 r, tries = 0, saved;

	*ul_r = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", root,
	    MAILDIR_UIDLIST_FILE) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((ul = calloc(1, sizeof(*ul))) == NULL)
		return -1;
	/* No entropy: the address and the time (only collisions suffer). */
	if (getrandom(&ul->seed, sizeof(ul->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(ul->seed))
		ul->seed = (uint64_t)(uintptr_t)ul ^ (uint64_t)time(NULL);
	do {
		r = ul_read(path, &ul->text, &len);
	} while (r == -1 && errno == ESTALE && ++tries < UL_ESTALE_TRIES);
	if (r == 1) {
		r = ul_parse(ul, len);
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
	s = ul_find(ul, name, len, ul_hash(ul->seed, name, len));
	if (ul->slot[s].idx == 0)
		return NULL;
	ul->hint = ul->slot[s].idx;
	return &ul->recs[ul->slot[s].idx - 1].pub;
}

void
maildir_uidlist_free(struct maildir_uidlist *ul)
{
	if (ul == NULL)
		return;
	free(ul->slot);
	free(ul->recs);
	free(ul->text);
	free(ul);
}
