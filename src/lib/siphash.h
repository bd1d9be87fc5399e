/*
 * siphash: SipHash-2-4 (Aumasson and Bernstein), a keyed hash for tables
 * whose keys a client chooses, and a cheap source of per-table seeds.
 */
#ifndef EVPOP3D_SIPHASH_H
#define EVPOP3D_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of in under the key (k0, k1). */
uint64_t	siphash(uint64_t k0, uint64_t k1, const void *in, size_t len);

/*
 * A fresh random 64-bit value: SipHash of a per-thread counter under a
 * per-thread key from getrandom(), so one system call per thread, not
 * per value. Unpredictable without the key; for hash seeds, not for
 * cryptographic keys. Thread-safe.
 */
uint64_t	siphash_random(void);

#endif
