/*
 * store_maildir: the Maildir driver (store_maildir.c). Internal: only
 * store.c's registry and the driver's own tests include this.
 */
#ifndef EVPOP3D_STORE_MAILDIR_H
#define EVPOP3D_STORE_MAILDIR_H

#include "store/store.h"

/* Name of the lock file in the Maildir root (held with an OFD lock). */
#define STORE_MAILDIR_LOCKFILE	"evpop3d.lock"

extern const struct store_ops store_maildir_ops;

#endif
