/*
 * shlimits: the per-host limits' shared state, one for every worker
 * process (Dovecot's anvil, in shared memory instead of a process):
 *
 *  - per_ip: [auth] max_connections_per_ip, connections per address
 *    (net/server.c);
 *  - ips: [auth] max_unauth_per_ip and the auth penalty, per address;
 *    userips: max_logins_per_user, per user and address (pop3/penalty.c);
 *  - the connection count of [server] max_connections: one counter per
 *    worker, each written by its worker alone, summed to check.
 *
 * shlimits_init() maps it all before any fork (the supervisor's, or the
 * single process's before its loop), sized from the configuration: a
 * reload cannot grow it (see shlimits_max_connections()). When a worker
 * dies, the supervisor calls shlimits_reclaim() with its index after
 * reaping it and before starting its successor: every reference and
 * connection it held is given back.
 */
#ifndef EVPOP3D_SHLIMITS_H
#define EVPOP3D_SHLIMITS_H

#include <stddef.h>
#include <stdint.h>

struct iptable;

/*
 * Map the tables for nworkers (1..IPTABLE_SLOTS_MAX) worker processes,
 * max_connections connections in all (plus one per worker: each checks
 * the sum, then counts its own) and penalty_table_size idle addresses
 * with failures. -1 with err on error; again after success: -1 too.
 */
int	shlimits_init(size_t max_connections, size_t penalty_table_size,
	    unsigned nworkers, char *err, size_t errlen);
/* Unmap everything (at exit; tests between runs). */
void	shlimits_free(void);

/* The tables, NULL before shlimits_init(). */
struct iptable	*shlimits_per_ip(void);
struct iptable	*shlimits_ips(void);
struct iptable	*shlimits_userips(void);

/*
 * The most connections the tables were sized for: a reload raising
 * [server] max_connections above it is held to it until a restart.
 */
size_t	shlimits_max_connections(void);
/* The same for [auth] penalty_table_size (beyond it, the oldest go). */
size_t	shlimits_table_size(void);

/* This worker's open connections, now n (a store, no lock). */
void	shlimits_conns_set(size_t n);
/* Every worker's open connections: the sum. */
size_t	shlimits_conns(void);

/*
 * Worker index's process is gone: its references in every table and its
 * connection count go. Returns the references dropped.
 */
uint64_t shlimits_reclaim(unsigned index);

#endif
