/*
 * store: the helpers every driver shares (see store.h).
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/siphash.h"
#include "store/store.h"

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
	return siphash_random();
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
