/*
 * mbox_test: what the mbox driver's tests see besides its ops (mbox.h):
 * the names of the files the driver keeps beside an mbox, and two knobs.
 * The driver's files include it for those names; the registry and the
 * daemon never do.
 */
#ifndef EVPOP3D_MBOX_TEST_H
#define EVPOP3D_MBOX_TEST_H

/* Beside the mbox DIR/NAME: DIR/.NAME<suffix>. */
#define STORE_MBOX_LOCK_SUFFIX	".evpop3d-lock"	/* session lock (sesslock.h) */
#define STORE_MBOX_TMP_SUFFIX	".evpop3d-tmp."	/* + "<pid>.<n>": rewrites */

/* How long open() and commit() wait for the MDA locks, by default. */
#define STORE_MBOX_LOCK_WAIT_MS	10000

/*
 * How long to wait for the dotlock and fcntl lock before giving up with
 * STORE_TEMP (0: back to STORE_MBOX_LOCK_WAIT_MS). Thread-safe.
 */
void		store_mbox_set_lock_wait(unsigned ms);

/* How many opens loaded a valid index cache, so far. Thread-safe. */
unsigned long	store_mbox_ix_loads(void);

#endif
