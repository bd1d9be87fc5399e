/*
 * registry: the store drivers by name, and a user's mail location
 * (see registry.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "store/maildir/maildir.h"
#include "store/mbox/mbox.h"
#include "store/registry.h"
#include "store/store.h"

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

void
store_cache_configure(size_t bytes)
{
	maildir_listing_cache_configure(bytes);
}

void
store_cache_stats(struct store_cache_stats *st)
{
	maildir_listing_cache_stats(st);
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
