#ifndef SWARM_GROW_H
#define SWARM_GROW_H

#include <stddef.h>
#include <stdint.h>

/*
 * Grow *arr (elements of sz bytes, *cap of them) to hold at least need,
 * doubling from 16. Capacities are 32-bit: per-session arrays stay small
 * in 19,000-session runs. 0, or -1 when out of memory or too big.
 */
int	swarm_grow(void **arr, uint32_t *cap, size_t need, size_t sz);

#endif
