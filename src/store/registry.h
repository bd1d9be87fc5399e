/*
 * registry: the store drivers by name, and where a user's mail is.
 *
 * The one place that knows every driver: the protocol and the
 * configuration find a driver here and then see only its store_ops
 * (store.h), never its internals.
 */
#ifndef EVPOP3D_STORE_REGISTRY_H
#define EVPOP3D_STORE_REGISTRY_H

#include <stddef.h>

#include "store/store.h"

/* The driver registered under name ("maildir"), or NULL. */
const struct store_ops *store_driver(const char *name);
/* The name of the i-th registered driver, NULL past the last one. */
const char	*store_driver_name(size_t i);

/*
 * The drivers' caches of listings ([mail] listing_cache; Maildir's, the
 * only one): at most bytes octets, 0 for none. Any time: a smaller size
 * evicts at once.
 */
void		 store_cache_configure(size_t bytes);
void		 store_cache_stats(struct store_cache_stats *st);

/*
 * Where a user's mail is: the driver and the expanded path. A per-user
 * override in the passwd-file extra field (Dovecot style, one of the
 * space-separated key=value fields) wins over [mail] driver/location:
 *
 *	userdb_mail=DRIVER:TEMPLATE[:KEY=VALUE...]	(or mail=...)
 *
 * TEMPLATE takes the escapes of store_expand_location() and a leading
 * "~" for the home directory; it must be absolute. For mbox, an
 * INBOX=TEMPLATE parameter names the mbox file (Dovecot's
 * "mbox:~/mail:INBOX=/var/mail/%u"); other parameters (LAYOUT, INDEX,
 * CONTROL, ...) are Dovecot's business and ignored. Returns STORE_OK,
 * or STORE_PERM with a reason in err.
 */
enum store_err	 store_locate(const char *extra, const char *driver,
		    const char *tmpl, const char *user, const char *home,
		    const struct store_ops **ops_r, char *path, size_t pathlen,
		    char *err, size_t errlen);

#endif
