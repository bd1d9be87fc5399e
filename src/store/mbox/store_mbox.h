/*
 * store_mbox: the mbox driver (store_mbox.c). Internal: only store.c's
 * registry and the driver's own tests include this.
 */
#ifndef EVPOP3D_STORE_MBOX_H
#define EVPOP3D_STORE_MBOX_H

#include "store/store.h"

/* Beside the mbox DIR/NAME: DIR/.NAME<suffix>. */
#define STORE_MBOX_LOCK_SUFFIX	".evpop3d-lock"	/* session lock (sesslock.h) */
#define STORE_MBOX_TMP_SUFFIX	".evpop3d-tmp."	/* + "<pid>.<n>": rewrites */

/* How long open() and commit() wait for the MDA locks, by default. */
#define STORE_MBOX_LOCK_WAIT_MS	10000

extern const struct store_ops store_mbox_ops;

/*
 * For tests: how long to wait for the dotlock and fcntl lock before
 * giving up with STORE_TEMP (0: back to STORE_MBOX_LOCK_WAIT_MS).
 */
void	store_mbox_set_lock_wait(unsigned ms);

/* For tests: how many opens loaded a valid index cache, so far. */
unsigned long	store_mbox_ix_loads(void);

#endif
