/*
 * store: the driver registry and the helpers every driver shares
 * (see store.h).
 */
#include <sys/random.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "log.h"
#include "store.h"
#include "store_maildir.h"
#include "store_mbox.h"

static const struct {
	const char		*name;
	const struct store_ops	*ops;
} store_drivers[] = {
	{ "maildir",	&store_maildir_ops },
	{ "mbox",	&store_mbox_ops },
};

const struct store_ops *
store_driver(const char *name)
{
	size_t	 i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < sizeof(store_drivers) / sizeof(store_drivers[0]); i++)
		if (strcmp(store_drivers[i].name, name) == 0)
			return store_drivers[i].ops;
	return NULL;
}

const char *
store_driver_name(size_t i)
{
	if (i >= sizeof(store_drivers) / sizeof(store_drivers[0]))
		return NULL;
	return store_drivers[i].name;
}

/* Append s to out at *pos; -1 if it does not fit with its NUL. */
static int
store_put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
	if (n >= outlen - *pos)
		return -1;
	memcpy(out + *pos, s, n);
	*pos += n;
	return 0;
}

int
store_expand_location(const char *tmpl, const char *user, const char *home,
    char *out, size_t outlen)
{
	const char	*at, *p, *s;
	size_t		 pos = 0, n;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (tmpl == NULL || user == NULL)
		return -1;
	if (home == NULL)
		home = "";
	/* auth_username_valid() allows one '@' at most; the domain is what
	 * follows it. */
	at = strchr(user, '@');

	for (p = tmpl; *p != '\0'; p++) {
		if (*p != '%') {
			/* Copy the literal run up to the next escape. */
			n = strcspn(p, "%");
			if (store_put(out, outlen, &pos, p, n) == -1)
				goto fail;
			p += n - 1;
			continue;
		}
		switch (*++p) {
		case 'u':
			s = user;
			n = strlen(user);
			break;
		case 'n':
			s = user;
			n = at != NULL ? (size_t)(at - user) : strlen(user);
			break;
		case 'd':
			if (at == NULL || at[1] == '\0')
				goto fail;
			s = at + 1;
			n = strlen(s);
			break;
		case 'h':
			if (*home == '\0')
				goto fail;
			s = home;
			n = strlen(home);
			break;
		case '%':
			s = "%";
			n = 1;
			break;
		default:		/* unknown escape, or '%' at the end */
			goto fail;
		}
		if (store_put(out, outlen, &pos, s, n) == -1)
			goto fail;
	}
	out[pos] = '\0';
	return 0;
fail:
	out[0] = '\0';
	return -1;
}

/*
 * The value of extra's userdb_mail= field, else of its mail= field (a
 * userdb-only file), or NULL.
 */
static const char *
store_extra_mail(const char *extra, size_t *len_r)
{
	static const char *const keys[] = { "userdb_mail=", "mail=" };
	const char	*p;
	size_t		 n, i, k;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		k = strlen(keys[i]);
		for (p = extra; *p != '\0'; p += n) {
			p += strspn(p, " \t");
			n = strcspn(p, " \t");
			if (n > k && strncmp(p, keys[i], k) == 0) {
				*len_r = n - k;
				return p + k;
			}
		}
	}
	return NULL;
}

enum store_err
store_locate(const char *extra, const char *driver, const char *tmpl,
    const char *user, const char *home, const struct store_ops **ops_r,
    char *path, size_t pathlen, char *err, size_t errlen)
{
	char		 spec[1024], drv[32], tbuf[sizeof(spec) + 1];
	char		*f, *next, *loc, *inbox = NULL;
	const char	*v;
	size_t		 n, i;

	if (extra != NULL && (v = store_extra_mail(extra, &n)) != NULL) {
		if (n >= sizeof(spec)) {
			snprintf(err, errlen, "userdb_mail too long");
			return STORE_PERM;
		}
		memcpy(spec, v, n);
		spec[n] = '\0';
		if ((loc = strchr(spec, ':')) == NULL || loc == spec ||
		    (size_t)(loc - spec) >= sizeof(drv)) {
			snprintf(err, errlen, "userdb_mail '%s': want "
			    "DRIVER:PATH", spec);
			return STORE_PERM;
		}
		if (strstr(loc, "::") != NULL) {
			/* Dovecot's escaped ':' would change the path. */
			snprintf(err, errlen, "userdb_mail '%s': '::' (a ':' "
			    "in the path) is not supported", spec);
			return STORE_PERM;
		}
		for (i = 0; spec + i < loc; i++)	/* "Maildir" too */
			drv[i] = (char)tolower((unsigned char)spec[i]);
		drv[i] = '\0';
		*loc++ = '\0';
		/* PATH[:KEY=VALUE]...: Dovecot's parameters. */
		for (f = strchr(loc, ':'); f != NULL; f = next) {
			*f++ = '\0';
			next = strchr(f, ':');
			if (strncmp(f, "INBOX=", 6) == 0)
				inbox = f + 6;
		}
		if (strcmp(drv, "mbox") == 0 && inbox != NULL)
			loc = inbox;
		if (loc[0] == '~') {		/* Dovecot's home shorthand */
			if (loc[1] != '\0' && loc[1] != '/') {
				snprintf(err, errlen, "userdb_mail: only ~ "
				    "and ~/ name a home directory");
				return STORE_PERM;
			}
			snprintf(tbuf, sizeof(tbuf), "%%h%s", loc + 1);
			loc = tbuf;
		}
		driver = drv;
		tmpl = loc;
		if (tmpl[0] != '/' && strncmp(tmpl, "%h", 2) != 0) {
			snprintf(err, errlen, "userdb_mail path '%s' is not "
			    "absolute", tmpl);
			return STORE_PERM;
		}
	}
	if ((*ops_r = store_driver(driver)) == NULL) {
		snprintf(err, errlen, "unknown mail driver '%s'", driver);
		return STORE_PERM;
	}
	if (store_expand_location(tmpl, user, home, path, pathlen) == -1) {
		snprintf(err, errlen, "cannot expand location '%s'", tmpl);
		return STORE_PERM;
	}
	return STORE_OK;
}

uint64_t
store_hash(uint64_t seed, const void *p, size_t len)
{
	const unsigned char	*s = p;
	uint64_t		 h = seed ^ (len * 0x9e3779b97f4a7c15ULL), w;

	/* Eight bytes at a time, then a final xorshift-multiply mix. */
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

void
store_hex(const unsigned char *p, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 0xf];
	}
	out[2 * len] = '\0';
}

uint64_t
store_hash_seed(void)
{
	uint64_t seed;

	/* No entropy yet: the time and an address (only collisions suffer). */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(seed))
		seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&seed;
	return seed;
}

enum store_err
store_errno(int errnum)
{
	return (errnum == EACCES || errnum == EPERM) ? STORE_PERM : STORE_TEMP;
}

enum store_err
store_fail(int errnum, char *err, size_t errlen, const char *what,
    const char *path)
{
	char	 buf[128];

	/* Thread-safe: drivers fail on worker threads too. */
	snprintf(err, errlen, "%s %s: %s", what, path,
	    log_strerror(errnum, buf, sizeof(buf)));
	return store_errno(errnum);
}

const char *
store_err_code(enum store_err err)
{
	switch (err) {
	case STORE_TEMP:
		return "[SYS/TEMP]";
	case STORE_PERM:
		return "[SYS/PERM]";
	case STORE_INUSE:
		return "[IN-USE]";
	case STORE_OK:
	case STORE_GONE:
	case STORE_AGAIN:
		break;
	}
	return "";
}

/* Bytes per read(2) of a message: what the driver gets asked for. */
#define STORE_READ_CHUNK	(16 * 1024)

enum store_err
store_stream_open(struct maildrop *md, size_t i, long top_lines,
    struct store_stream *st)
{
	enum store_err err;

	memset(st, 0, sizeof(*st));
	if ((err = md->ops->msg_open(md, i, &st->r)) != STORE_OK) {
		st->r = NULL;
		return err;
	}
	wire_enc_init(&st->enc, top_lines);
	return STORE_OK;
}

int
store_stream_fill(struct store_stream *st, struct evbuffer *out, size_t limit)
{
	char	buf[STORE_READ_CHUNK];
	ssize_t	n;

	while (evbuffer_get_length(out) < limit) {
		if ((n = st->r->ops->msg_read(st->r, buf, sizeof(buf))) < 0)
			return -1;
		if (n == 0 || wire_enc_feed(&st->enc, buf, (size_t)n, out)) {
			wire_enc_finish(&st->enc, out);
			return 1;
		}
	}
	return 0;
}

void
store_stream_close(struct store_stream *st)
{
	if (st->r != NULL)
		st->r->ops->msg_close(st->r);
	st->r = NULL;
}
