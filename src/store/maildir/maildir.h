/*
 * maildir: the Maildir driver (maildir.c and the files maildir_int.h
 * lists), as the registry sees it: its ops.
 */
#ifndef EVPOP3D_MAILDIR_H
#define EVPOP3D_MAILDIR_H

#include "store/store.h"

extern const struct store_ops store_maildir_ops;

#endif
