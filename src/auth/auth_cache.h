/*
 * auth_cache: what a user database lookup found, kept for a while so
 * that a burst of logins is not a burst of queries (Dovecot's
 * auth_cache_ttl). Keyed by the user name as the client gave it; found
 * users only (an unknown user is asked again). Bounded: past max
 * entries the least recently used goes. The loop's thread only, no lock.
 */
#ifndef EVPOP3D_AUTH_CACHE_H
#define EVPOP3D_AUTH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"		/* struct auth_rec */

struct auth_cache;

/* NULL if out of memory. ttl_ms > 0, max > 0. */
struct auth_cache *auth_cache_new(size_t max, uint64_t ttl_ms);
void	auth_cache_free(struct auth_cache *c);

/*
 * user's record, if cached less than ttl_ms before now_ms (monotonic):
 * valid until the next call on c. An expired entry is dropped.
 */
const struct auth_rec *auth_cache_get(struct auth_cache *c, const char *user,
	    uint64_t now_ms);
/* Cache a copy of rec for user at now_ms. 0, or -1 (out of memory). */
int	auth_cache_put(struct auth_cache *c, const char *user,
	    const struct auth_rec *rec, uint64_t now_ms);
/* Drop every entry. */
void	auth_cache_flush(struct auth_cache *c);
size_t	auth_cache_count(const struct auth_cache *c);

#endif
