/*
 * ratelimit: one log line per window with a count (see ratelimit.h).
 */
#include "lib/ratelimit.h"

void
ratelimit_init(struct ratelimit *rl, uint64_t window_ms)
{
	rl->window_ms = window_ms;
	rl->last_ms = 0;
	rl->pending = 0;
	rl->reported = false;
}

/*
 * May a line be reported at now_ms? A clock that went back counts as
 * yes: a count is never held for longer than a window.
 */
static bool
ratelimit_open(const struct ratelimit *rl, uint64_t now_ms)
{
	return !rl->reported || now_ms < rl->last_ms ||
	    now_ms - rl->last_ms >= rl->window_ms;
}

static uint64_t
ratelimit_take(struct ratelimit *rl, uint64_t now_ms)
{
	uint64_t n = rl->pending;

	rl->pending = 0;
	rl->last_ms = now_ms;
	rl->reported = true;
	return n;
}

uint64_t
ratelimit_hit(struct ratelimit *rl, uint64_t now_ms)
{
	rl->pending++;
	if (!ratelimit_open(rl, now_ms))
		return 0;
	return ratelimit_take(rl, now_ms);
}

uint64_t
ratelimit_due(struct ratelimit *rl, uint64_t now_ms)
{
	if (rl->pending == 0 || !ratelimit_open(rl, now_ms))
		return 0;
	return ratelimit_take(rl, now_ms);
}

uint64_t
ratelimit_flush(struct ratelimit *rl, uint64_t now_ms)
{
	if (rl->pending == 0)
		return 0;
	return ratelimit_take(rl, now_ms);
}

uint64_t
ratelimit_wait_ms(const struct ratelimit *rl, uint64_t now_ms)
{
	if (rl->pending == 0)
		return UINT64_MAX;
	if (ratelimit_open(rl, now_ms))
		return 0;
	return rl->window_ms - (now_ms - rl->last_ms);
}
