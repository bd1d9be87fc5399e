/*
 * penalty: per-address defences before and at login (see penalty.h).
 *
 * The penalty, after Dovecot's auth-penalty.c and anvil: an address's
 * failures n (forgotten penalty_expire seconds after its last failure,
 * and at a successful login) set the delay of a failure's answer,
 *
 *	d(n) = failure_delay * 2^(n - 1), at most penalty_max
 *
 * (Dovecot: 2 s doubling to 15 s). One connection guessing in a row gets
 * its answers at d(1), d(2), d(3)... after each attempt. Parallel
 * connections from one address would each wait their own d(n) and
 * multiply the rate, so an attempt from a penalized address also takes a
 * turn: next_us is when the address's previous attempt is answered, and
 * an attempt's answer (success too) waits for it, at most penalty_max;
 * its own failure is answered d(n) after its turn. The password is
 * checked at once (on a worker); only the answer waits, so the count of
 * checks in flight is bounded by the connections, and the answers, one
 * per d(n) per address, bound the rate.
 *
 * The records are every worker process's (lib/shlimits.h): counts,
 * failures and turns hold per host whichever worker a connection lands
 * in; each worker arms its own timer from the shared next_ms (the
 * monotonic clock is the system's). Each use is one short hold of the
 * table's lock, with nothing but arithmetic inside: replies and log
 * lines come after.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/iptable.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/ratelimit.h"
#include "lib/shlimits.h"
#include "pop3/client.h"
#include "pop3/penalty.h"

/* At most one refusal line per this many ms (with the count). */
#define REFUSE_LOG_WINDOW_MS	1000
/* Failures counted past this do not double the delay any further. */
#define FAILS_MAX		30

int
penalty_env_init(struct pop3_env *env)
{
	ratelimit_init(&env->log_unauth, REFUSE_LOG_WINDOW_MS);
	/* Idle records: addresses with failures; pinned ones are counted
	 * sessions, at most max_connections of them. Shared, made before
	 * any fork. */
	env->ips = shlimits_ips();
	env->userips = shlimits_userips();
	return env->ips != NULL && env->userips != NULL ? 0 : -1;
}

void
penalty_env_reload(struct pop3_env *env, const struct cfg *cfg)
{
	iptable_set_max_idle(env->ips, (size_t)cfg->penalty_table_size);
}

void
penalty_env_free(struct pop3_env *env)
{
	env->ips = env->userips = NULL;		/* shlimits' */
}

static bool
penalty_on(const struct cfg *cfg)
{
	return cfg->penalty_max_ms > 0 && cfg->failure_delay_ms > 0;
}

/* d(n) in microseconds, n >= 1. */
static uint64_t
penalty_delay_us(const struct cfg *cfg, unsigned n)
{
	uint64_t d = (uint64_t)cfg->failure_delay_ms * 1000;
	uint64_t cap = (uint64_t)cfg->penalty_max_ms * 1000;

	if (!penalty_on(cfg))
		return d;
	while (--n > 0 && d < cap)
		d *= 2;
	return d < cap ? d : cap;
}

/* Forget e's failures when the last one is penalty_expire old. */
static void
penalty_decay(const struct cfg *cfg, struct iptable_entry *e, uint64_t now_us)
{
	if (e->fails > 0 && now_us - e->last_ms * 1000 >=
	    (uint64_t)cfg->penalty_expire * 1000000) {
		e->fails = 0;
		e->next_ms = 0;
	}
}

bool
penalty_connect(struct client *c)
{
	const struct cfg	*cfg = c->cfg;
	struct iptable		*t = c->env->ips;
	struct iptable_entry	*e;
	const unsigned char	*key;
	size_t			 keylen;
	uint64_t		 n;

	/* net checked the exemption and made the key (session_peer_key()). */
	key = session_peer_key(c->s, &keylen);
	if (keylen == 0)
		return true;
	c->limited = 1;
	iptable_lock(t);
	e = iptable_get(t, key, keylen);
	if (e != NULL && (cfg->max_unauth_per_ip == 0 ||
	    e->refs < (uint32_t)cfg->max_unauth_per_ip)) {
		iptable_ref(t, e);
		c->unauth = e;
		iptable_unlock(t);
		return true;
	}
	if (e != NULL)
		iptable_update(t, e);
	iptable_unlock(t);
	c->env->stats.refused_unauth++;
	if ((n = ratelimit_hit(&c->env->log_unauth, mono_ms())) > 0)
		session_warnx(c->s, "event=refused reason=max-unauth-per-ip "
		    "rip=%s count=%llu", session_peer(c->s),
		    (unsigned long long)n);
	session_reply(c->s, "-ERR [SYS/TEMP] Too many connections from your "
	    "address not logged in, try again later.");
	session_close(c->s, "max-unauth-per-ip", true);
	return false;
}

/*
 * The key of c->user from c's address (ipkey, iplen > 0): address,
 * length octet, name.
 */
static size_t
userip_key(const struct client *c, const unsigned char *ipkey, size_t iplen,
    unsigned char *key)
{
	size_t ulen = strlen(c->user);

	if (ulen > POP3_USER_MAX)
		ulen = POP3_USER_MAX;
	memcpy(key, ipkey, iplen);
	key[iplen] = (unsigned char)ulen;
	memcpy(key + iplen + 1, c->user, ulen);
	return iplen + 1 + ulen;
}

bool
penalty_attempt(struct client *c, uint64_t now, uint64_t *turn_us)
{
	const struct cfg	*cfg = c->cfg;
	struct iptable		*t;
	struct iptable_entry	*e;
	unsigned char		 key[IPTABLE_KEY_MAX];
	char			 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];
	const unsigned char	*ipkey;
	uint64_t		 turn, cap;
	size_t			 len, iplen;

	*turn_us = now;
	if (!c->limited)
		return true;
	ipkey = session_peer_key(c->s, &iplen);
	if (cfg->max_logins_per_user > 0 && c->userip == NULL) {
		len = userip_key(c, ipkey, iplen, key);
		t = c->env->userips;
		iptable_lock(t);
		if ((e = iptable_get(t, key, len)) != NULL &&
		    e->refs < (uint32_t)cfg->max_logins_per_user) {
			iptable_ref(t, e);
			c->userip = e;
		} else if (e != NULL)
			iptable_update(t, e);
		iptable_unlock(t);
		if (c->userip == NULL) {
			c->env->stats.refused_user++;
			/* conf/fail2ban/evpop3d.conf matches this line. */
			session_warnx(c->s, "event=auth-failed rip=%s user=%s "
			    "reason=max-logins-per-user", session_peer(c->s),
			    log_quote(quser, sizeof(quser), c->user));
			session_reply(c->s, "-ERR [IN-USE] Too many logins "
			    "for this user from your address.");
			return false;
		}
	}
	if (!penalty_on(cfg))
		return true;
	t = c->env->ips;
	iptable_lock(t);
	if ((e = iptable_find(t, ipkey, iplen)) == NULL) {
		iptable_unlock(t);
		return true;
	}
	penalty_decay(cfg, e, now);
	if (e->fails > 0) {
		cap = now + (uint64_t)cfg->penalty_max_ms * 1000;
		turn = e->next_ms * 1000 > now ? e->next_ms * 1000 : now;
		if (turn > cap)
			turn = cap;
		*turn_us = turn;
		/* The next attempt waits for this one's answer, if it fails. */
		e->next_ms = (turn + penalty_delay_us(cfg, e->fails + 1)) /
		    1000;
	}
	iptable_update(t, e);
	iptable_unlock(t);
	return true;
}

uint64_t
penalty_failed(struct pop3_env *env, const unsigned char *key, size_t keylen,
    uint64_t started_us, uint64_t turn_us, unsigned *fails_r)
{
	const struct cfg	*cfg = env->gen->cfg;
	struct iptable		*t = env->ips;
	struct iptable_entry	*e;
	uint64_t		 now = mono_us(), at, pen;

	at = started_us + (uint64_t)cfg->failure_delay_ms * 1000;
	*fails_r = 0;
	if (keylen == 0 || !penalty_on(cfg))
		return at;
	iptable_lock(t);
	if ((e = iptable_get(t, key, keylen)) == NULL) {
		iptable_unlock(t);
		return at;
	}
	penalty_decay(cfg, e, now);
	if (e->fails < FAILS_MAX)
		e->fails++;
	e->last_ms = now / 1000;
	*fails_r = e->fails;
	pen = turn_us + penalty_delay_us(cfg, e->fails);
	if (pen > at)
		at = pen;
	if (e->fails > 1)
		env->stats.penalized++;
	if (e->next_ms < at / 1000)
		e->next_ms = at / 1000;
	iptable_update(t, e);
	iptable_unlock(t);
	return at;
}

void
penalty_attempt_end(struct client *c)
{
	struct iptable *t = c->env->userips;

	if (c->userip != NULL) {
		iptable_lock(t);
		iptable_unref(t, c->userip);
		iptable_unlock(t);
		c->userip = NULL;
	}
}

void
penalty_login(struct client *c)
{
	struct iptable		*t = c->env->ips;
	struct iptable_entry	*e;
	const unsigned char	*key;
	size_t			 keylen;

	if (!c->limited)
		return;
	key = session_peer_key(c->s, &keylen);
	iptable_lock(t);
	if (c->unauth != NULL) {
		iptable_unref(t, c->unauth);
		c->unauth = NULL;
	}
	if ((e = iptable_find(t, key, keylen)) != NULL) {
		e->fails = 0;
		e->next_ms = 0;
		iptable_update(t, e);
	}
	iptable_unlock(t);
}

void
penalty_gone(struct client *c)
{
	struct iptable *t = c->env->ips;

	if (c->unauth != NULL) {
		iptable_lock(t);
		iptable_unref(t, c->unauth);
		iptable_unlock(t);
		c->unauth = NULL;
	}
	penalty_attempt_end(c);
}

void
penalty_stats_log(const struct pop3_env *env, void (*logf)(const char *, ...))
{
	struct iptable_stats	ips = { 0 }, ups = { 0 };

	if (env->ips != NULL)
		iptable_stats(env->ips, &ips);
	if (env->userips != NULL)
		iptable_stats(env->userips, &ups);
	/* The tables are every worker's; full: records refused, every one
	 * pinned (the sizing keeps that from happening). */
	logf("event=stats part=penalty addrs=%zu idle_addrs=%zu "
	    "evicted=%llu user_addrs=%zu refused_unauth=%llu "
	    "refused_user=%llu penalized=%llu full=%llu", ips.entries,
	    ips.idle, (unsigned long long)ips.evicted, ups.entries,
	    (unsigned long long)env->stats.refused_unauth,
	    (unsigned long long)env->stats.refused_user,
	    (unsigned long long)env->stats.penalized,
	    (unsigned long long)(ips.full + ups.full));
}
