/*
 * maildir_sizecache: the per-Maildir cache of computed wire sizes (see
 * maildir_sizecache.h). Runs on worker threads, one maildrop at a time.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/pidcache.h"
#include "store/maildir/maildir_sizecache.h"

#define SC_HEADER	"evpop3d-sizes 1\n"
#define SC_FILE_MAX	(256u * 1024 * 1024)	/* larger: not ours */
#define SC_NAME_MAX	255
#define SC_OUT_BUF	(16 * 1024)		/* bytes per write(2) */
#define SC_LINE_MAX	(SC_NAME_MAX + 23)	/* name, size, newline */

struct sc_entry {
	const char	*name;		/* into the text, or malloc'd */
	uint32_t	 len;
	unsigned	 used:1;
	unsigned	 owned:1;	/* name is malloc'd (put) */
	uint64_t	 size;
};

struct sizecache {
	char		*text;		/* the file as read */
	struct sc_entry	*ents;
	size_t		 n, nloaded, cap;
	size_t		 nfile;		/* entries the file had */
	unsigned	 dirty:1;	/* no good file: it must be written */
	unsigned	 had_file:1;	/* there was a file, usable or not */
};

static int
sc_cmp(const void *a, const void *b)
{
	const struct sc_entry	*x = a, *y = b;
	int			 r;

	r = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
	if (r != 0)
		return r;
	return (x->len > y->len) - (x->len < y->len);
}

static int
sc_valid_name(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > SC_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == '/' ||
		    (unsigned char)s[i] == 0x7f)
			return 0;
	return 1;
}

static int
sc_grow(struct sizecache *c)
{
	struct sc_entry	*e;
	size_t		 ncap;

	if (c->n < c->cap)
		return 0;
	ncap = c->cap == 0 ? 64 : c->cap * 2;
	if ((e = reallocarray(c->ents, ncap, sizeof(*e))) == NULL)
		return -1;
	c->ents = e;
	c->cap = ncap;
	return 0;
}

/* Parse c->text (len bytes, NUL-terminated); -1 if it is not a cache. */
static int
sc_parse(struct sizecache *c, size_t len)
{
	char		*p = c->text, *end = c->text + len, *nl, *sp, *q;
	unsigned long long size, count;
	size_t		 hl = strlen(SC_HEADER);

	if (len < hl || memcmp(p, SC_HEADER, hl) != 0)
		return -1;
	for (p += hl; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return -1;			/* torn last line */
		*nl = '\0';
		if (strncmp(p, "end ", 4) == 0) {
			errno = 0;
			count = strtoull(p + 4, &q, 10);
			if (errno != 0 || q == p + 4 || *q != '\0' ||
			    count != c->n || nl + 1 != end)
				return -1;
			return 0;
		}
		if ((sp = strchr(p, ' ')) == NULL ||
		    !sc_valid_name(p, (size_t)(sp - p)))
			return -1;
		errno = 0;
		size = strtoull(sp + 1, &q, 10);
		if (errno != 0 || q == sp + 1 || *q != '\0' ||
		    (sp[1] < '0' || sp[1] > '9'))
			return -1;
		if (sc_grow(c) == -1)
			return -1;
		c->ents[c->n++] = (struct sc_entry){ .name = p,
		    .len = (uint32_t)(sp - p), .size = size };
	}
	return -1;				/* no "end" line */
}

struct sizecache *
sizecache_load(const char *root)
{
	struct sizecache	*c;
	struct stat		 st;
	char			 path[PATH_MAX];
	size_t			 got, i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->dirty = 1;			/* until a good file is read */
	if (snprintf(path, sizeof(path), "%s/%s", root,
	    MAILDIR_SIZECACHE_FILE) >= (int)sizeof(path))
		return c;
	if (fio_read_small(path, O_NOFOLLOW, SC_FILE_MAX, 0, &st, &c->text,
	    &got) == -1) {
		c->had_file = st.st_mode != 0;	/* there, but not usable */
		return c;
	}
	c->had_file = 1;
	if (got != (size_t)st.st_size || sc_parse(c, got) == -1) {
		c->n = 0;		/* unusable: start over */
		return c;
	}
	/* sizecache_save() writes it sorted: one pass, then no sort. */
	for (i = 1; i < c->n; i++)
		if (sc_cmp(&c->ents[i - 1], &c->ents[i]) > 0) {
			qsort(c->ents, c->n, sizeof(*c->ents), sc_cmp);
			break;
		}
	c->nloaded = c->nfile = c->n;
	c->dirty = 0;
	return c;
}

int
sizecache_get(struct sizecache *c, const char *name, size_t len,
    uint64_t *size_r)
{
	struct sc_entry	 key = { .name = name, .len = (uint32_t)len }, *e;

	if (len > SC_NAME_MAX || c->nloaded == 0 ||
	    (e = bsearch(&key, c->ents, c->nloaded, sizeof(*c->ents),
	    sc_cmp)) == NULL)
		return -1;
	/*
	 * A unique part two files share (new/X and cur/X:2,S) names no one
	 * size: such files are counted at every login (a file written
	 * before this rule may still hold such a name twice).
	 */
	if ((e > c->ents && sc_cmp(e - 1, e) == 0) ||
	    (e + 1 < c->ents + c->nloaded && sc_cmp(e, e + 1) == 0))
		return -1;
	e->used = 1;
	*size_r = e->size;
	return 0;
}

int
sizecache_put(struct sizecache *c, const char *name, size_t len,
    uint64_t size)
{
	char	*copy;

	if (!sc_valid_name(name, len))
		return 0;		/* not expressible: just not cached */
	if (sc_grow(c) == -1 || (copy = malloc(len)) == NULL)
		return -1;
	memcpy(copy, name, len);
	c->ents[c->n++] = (struct sc_entry){ .name = copy,
	    .len = (uint32_t)len, .size = size, .used = 1, .owned = 1 };
	return 0;
}

/* Room for a line in out (SC_OUT_BUF bytes, *len used): written out. */
static int
sc_room(int fd, const char *out, size_t *len)
{
	if (SC_OUT_BUF - *len >= SC_LINE_MAX)
		return 0;
	if (fio_write_full(fd, out, *len) == -1)
		return -1;
	*len = 0;
	return 0;
}

int
sizecache_save(struct sizecache *c, const char *root)
{
	char		 tmp[PATH_MAX], path[PATH_MAX], out[SC_OUT_BUF];
	size_t		 i, count = 0, len;
	int		 fd, fresh = 0;

	/*
	 * Sorted, so that the next load need not sort, and so that a name
	 * two files share (see sizecache_get()) is seen and left out. This
	 * reorders ents; the cache is not looked up after saving.
	 */
	if (c->n > 1)
		qsort(c->ents, c->n, sizeof(*c->ents), sc_cmp);
	c->nloaded = 0;
	for (i = 0; i < c->n; i++) {
		if ((i > 0 && sc_cmp(&c->ents[i - 1], &c->ents[i]) == 0) ||
		    (i + 1 < c->n && sc_cmp(&c->ents[i], &c->ents[i + 1]) == 0))
			c->ents[i].used = 0;
		count += c->ents[i].used;
		fresh |= c->ents[i].used && c->ents[i].owned;
	}
	/* Unchanged: no new size, and every entry of the file still used. */
	if (!c->dirty && !fresh && count == c->nfile)
		return 0;
	/* All sizes in the names (Dovecot, Courier): no file at all. */
	if (count == 0 && !c->had_file)
		return 0;
	if (snprintf(path, sizeof(path), "%s/%s", root,
	    MAILDIR_SIZECACHE_FILE) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%ld", root,
	    MAILDIR_SIZECACHE_FILE, (long)pid_self()) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = fio_atomic_open(tmp, O_TRUNC, 0600)) == -1)
		return -1;
	len = strlen(SC_HEADER);
	memcpy(out, SC_HEADER, len);
	for (i = 0; i < c->n; i++) {
		if (!c->ents[i].used)
			continue;
		if (sc_room(fd, out, &len) == -1)
			goto fail;
		len += (size_t)snprintf(out + len, sizeof(out) - len,
		    "%.*s %" PRIu64 "\n", (int)c->ents[i].len,
		    c->ents[i].name, c->ents[i].size);
	}
	if (sc_room(fd, out, &len) == -1)
		goto fail;
	len += (size_t)snprintf(out + len, sizeof(out) - len, "end %zu\n",
	    count);
	/* No fsync(): a cache, and a torn one is refused when read. */
	if (fio_write_full(fd, out, len) == -1)
		goto fail;
	if (fio_atomic_commit(fd, tmp, path, 0) == -1)
		return -1;
	c->dirty = 0;
	return 0;
fail:
	fio_atomic_abort(fd, tmp);
	return -1;
}

void
sizecache_free(struct sizecache *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		if (c->ents[i].owned)
			free((char *)c->ents[i].name);
	free(c->ents);
	free(c->text);
	free(c);
}
