/*
 * maildir: the Maildir driver (maildir.c and the files maildir_int.h
 * lists), as the registry sees it: its ops.
 */
#ifndef EVPOP3D_MAILDIR_H
#define EVPOP3D_MAILDIR_H

#include "store/store.h"

extern const struct store_ops store_maildir_ops;

/*
 * The listings kept of unchanged Maildirs (listcache.c): at most bytes
 * octets in all, 0 for none (none until this is called; the daemon
 * calls it with [mail] listing_cache). Any thread, any time: a smaller
 * size evicts at once.
 */
void	maildir_listing_cache_configure(size_t bytes);
void	maildir_listing_cache_stats(struct store_cache_stats *st);

#endif
