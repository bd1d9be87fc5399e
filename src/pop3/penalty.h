/*
 * penalty: per-address defences before and at login (README, Security):
 * the cap on connections not logged in yet, the cap on logins of one
 * user from one address, and the auth penalty (Dovecot's auth_penalty):
 * each failed login from an address doubles the delay of the next
 * failure's answer, from failure_delay up to penalty_max, and attempts
 * from a penalized address wait their turn, so parallel connections do
 * not multiply the rate. Addresses in [auth] limits_exempt are left
 * alone. Records live in the environment's bounded tables (iptable.h).
 */
#ifndef EVPOP3D_POP3_PENALTY_H
#define EVPOP3D_POP3_PENALTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct client;
struct pop3_env;

/* Make the environment's tables; -1 when out of memory. */
int	penalty_env_init(struct pop3_env *env);
void	penalty_env_free(struct pop3_env *env);
/* A reload: the idle records' bound from cfg ([auth] penalty_table_size). */
void	penalty_env_reload(struct pop3_env *env, const struct cfg *cfg);

/*
 * A new session: count it as not logged in from its address. false when
 * the address is at max_unauth_per_ip: the refusal is answered and the
 * session closing.
 */
bool	penalty_connect(struct client *c);

/*
 * A login attempt for c->user made at now_us (monotonic): take a place
 * in max_logins_per_user (false: refused, answered with [IN-USE] and
 * logged), and return in *turn_us the earliest time its answer may go:
 * later than now_us when the address is penalized.
 */
bool	penalty_attempt(struct client *c, uint64_t now_us, uint64_t *turn_us);

/*
 * The attempt failed (wrong password or unknown user), c may be gone
 * (NULL): count a failure for the address key, and return when to answer
 * it: failure_delay after started_us at least, the doubled penalty after
 * turn_us when the address has failed before. *fails_r: the count now.
 */
uint64_t penalty_failed(struct pop3_env *env, const unsigned char *key,
	    size_t keylen, uint64_t started_us, uint64_t turn_us,
	    unsigned *fails_r);
/* The failed attempt gives its place back (max_logins_per_user). */
void	penalty_attempt_end(struct client *c);

/* Logged in: no longer unauthenticated; the address's failures cleared. */
void	penalty_login(struct client *c);

/* The session is gone: give every count back. */
void	penalty_gone(struct client *c);

/* For the stats line: the tables' sizes and the refusals. */
void	penalty_stats_log(const struct pop3_env *env,
	    void (*logf)(const char *, ...));

#endif
