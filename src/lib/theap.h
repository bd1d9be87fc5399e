/*
 * theap: many one-shot timers under one libevent timer: a binary
 * min-heap by due time, the event armed for the earliest (libevent's
 * own timer heap, without a struct event of 128 octets per timer).
 * For the sessions' deadlines and idle limits: thousands of timers,
 * each armed once per login and fired once.
 *
 * Entries are embedded in their owners. Room for n entries is made
 * beforehand (theap_reserve()), so arming never fails. Times are
 * mono_ms(). Not thread-safe: the loop's.
 */
#ifndef EVPOP3D_THEAP_H
#define EVPOP3D_THEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;

struct theap_entry {
	uint64_t	 due_ms;
	uint32_t	 idx;		/* in the heap, +1; 0: not armed */
};

struct theap {
	struct theap_entry	**v;
	size_t			  len, cap;
	struct event		 *ev;
	/* A due entry, already taken off; it may be armed again. */
	void			(*fire)(struct theap_entry *e, void *arg);
	void			 *arg;
	bool			  firing;	/* in the event's callback */
};

/* An empty heap on base whose due entries go to fire. -1 on error. */
int	theap_init(struct theap *h, struct event_base *base,
	    void (*fire)(struct theap_entry *, void *), void *arg);
void	theap_free(struct theap *h);
/* Room for n entries in all (at most UINT32_MAX - 1). -1 if out of memory. */
int	theap_reserve(struct theap *h, size_t n);
/* Arm e (again) for due_ms; its room must have been reserved. */
void	theap_arm(struct theap *h, struct theap_entry *e, uint64_t due_ms);
/* Disarm e; nothing if it is not armed. */
void	theap_del(struct theap *h, struct theap_entry *e);

static inline bool
theap_armed(const struct theap_entry *e)
{
	return e->idx != 0;
}

#endif
