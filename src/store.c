/*
 * store: the driver registry and the helpers every driver shares
 * (see store.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "store_maildir.h"

static const struct {
	const char		*name;
	const struct store_ops	*ops;
} store_drivers[] = {
	{ "maildir",	&store_maildir_ops },
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

	/* GNU strerror_r: drivers fail on worker threads too. */
	snprintf(err, errlen, "%s %s: %s", what, path,
	    strerror_r(errnum, buf, sizeof(buf)));
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
		break;
	}
	return "";
}
