/*
 * shlimits: the per-host limits' shared state (see shlimits.h).
 *
 * The sizes: a connection pins at most one record of each table (its
 * address in per_ip and ips, its user and address in userips), so each
 * table holds max_connections + nworkers pinned records at most; ips
 * keeps penalty_table_size idle ones besides. One record more than that
 * is the slack of a new record before iptable_update() trims. Only the
 * records used take memory (iptable.h).
 */
#include <sys/mman.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lib/iptable.h"
#include "lib/proc.h"
#include "lib/shlimits.h"

/* One worker's connection count, on a cache line of its own. */
struct shl_conns {
	_Atomic uint64_t	 n;
	char			 pad[64 - sizeof(uint64_t)];
};

static struct {
	struct iptable		*per_ip, *ips, *userips;
	struct shl_conns	*conns;		/* [nworkers], shared */
	size_t			 conns_size;
	unsigned		 nworkers;
	size_t			 max_connections;
	size_t			 table_size;
} shl;

static struct iptable *
shl_table(size_t pinned, size_t idle, size_t keymax, unsigned nworkers)
{
	struct iptable_size sz = {
		.capacity = pinned + idle + 1,
		.keymax = keymax,
		.max_idle = idle > 0 ? idle : 1,
		.slots = nworkers,
	};

	return iptable_new(&sz);
}

int
shlimits_init(size_t max_connections, size_t penalty_table_size,
    unsigned nworkers, char *err, size_t errlen)
{
	size_t	 pinned = max_connections + nworkers;
	void	*p;

	if (shl.per_ip != NULL) {
		snprintf(err, errlen, "shared limits made twice");
		return -1;
	}
	if (nworkers == 0 || nworkers > IPTABLE_SLOTS_MAX) {
		snprintf(err, errlen, "workers %u: 1 to %d", nworkers,
		    IPTABLE_SLOTS_MAX);
		return -1;
	}
	shl.conns_size = nworkers * sizeof(struct shl_conns);
	if ((p = mmap(NULL, shl.conns_size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		goto fail;
	shl.conns = p;
	if ((shl.per_ip = shl_table(pinned, 0, IPTABLE_ADDR_MAX,
	    nworkers)) == NULL ||
	    (shl.ips = shl_table(pinned, penalty_table_size, IPTABLE_ADDR_MAX,
	    nworkers)) == NULL ||
	    (shl.userips = shl_table(pinned, 0, IPTABLE_KEY_MAX,
	    nworkers)) == NULL)
		goto fail;
	shl.nworkers = nworkers;
	shl.max_connections = max_connections;
	shl.table_size = penalty_table_size;
	return 0;
fail:
	snprintf(err, errlen, "shared limit tables (%zu connections, %zu "
	    "addresses): %s", max_connections, penalty_table_size,
	    strerror(errno));
	shlimits_free();
	return -1;
}

void
shlimits_free(void)
{
	iptable_free(shl.per_ip);
	iptable_free(shl.ips);
	iptable_free(shl.userips);
	if (shl.conns != NULL)
		munmap(shl.conns, shl.conns_size);
	memset(&shl, 0, sizeof(shl));
}

struct iptable *
shlimits_per_ip(void)
{
	return shl.per_ip;
}

struct iptable *
shlimits_ips(void)
{
	return shl.ips;
}

struct iptable *
shlimits_userips(void)
{
	return shl.userips;
}

size_t
shlimits_max_connections(void)
{
	return shl.max_connections;
}

size_t
shlimits_table_size(void)
{
	return shl.table_size;
}

void
shlimits_conns_set(size_t n)
{
	unsigned w = proc_worker_index();

	if (shl.conns != NULL && w < shl.nworkers)
		atomic_store_explicit(&shl.conns[w].n, n,
		    memory_order_relaxed);
}

size_t
shlimits_conns(void)
{
	uint64_t	sum = 0;
	unsigned	w;

	for (w = 0; w < shl.nworkers; w++)
		sum += atomic_load_explicit(&shl.conns[w].n,
		    memory_order_relaxed);
	return (size_t)sum;
}

uint64_t
shlimits_reclaim(unsigned index)
{
	uint64_t n = 0;

	if (shl.per_ip == NULL || index >= shl.nworkers)
		return 0;
	n += iptable_reclaim(shl.per_ip, index);
	n += iptable_reclaim(shl.ips, index);
	n += iptable_reclaim(shl.userips, index);
	atomic_store_explicit(&shl.conns[index].n, 0, memory_order_relaxed);
	return n;
}
