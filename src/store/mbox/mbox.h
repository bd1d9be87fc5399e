/*
 * mbox: the mbox driver (mbox.c and the files mbox_int.h lists), as the
 * registry sees it: its ops.
 */
#ifndef EVPOP3D_MBOX_H
#define EVPOP3D_MBOX_H

#include "store/store.h"

extern const struct store_ops store_mbox_ops;

#endif
