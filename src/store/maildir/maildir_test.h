/*
 * maildir_test: what the Maildir driver's tests see besides its ops
 * (maildir.h): the name of the lock file the driver keeps in a Maildir.
 * The driver includes it for that name; the registry and the daemon
 * never do. (The size cache's and Dovecot's files are named in
 * maildir_sizecache.h and maildir_uidlist.h.)
 */
#ifndef EVPOP3D_MAILDIR_TEST_H
#define EVPOP3D_MAILDIR_TEST_H

/* Name of the lock file in the Maildir root (sesslock.h). */
#define STORE_MAILDIR_LOCKFILE	"evpop3d.lock"

#endif
