/*
 * siphash: SipHash-2-4 and per-thread seeds (see siphash.h).
 */
#include <sys/random.h>

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/siphash.h"

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

uint64_t
siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const unsigned char *in = data;
	uint64_t	v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t	v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t	v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t	v3 = 0x7465646279746573ULL ^ k1;
	uint64_t	m, b = (uint64_t)len << 56;
	size_t		i, j, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)in[i + j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (j = 0; j < left; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
siphash_random(void)
{
	static _Thread_local uint64_t	 key[2], counter;
	static _Thread_local bool	 keyed;

	if (!keyed) {
		/* No entropy yet: the time and an address (only collisions
		 * suffer); tried again on the next call. */
		if (getrandom(key, sizeof(key), GRND_NONBLOCK) ==
		    (ssize_t)sizeof(key))
			keyed = true;
		else {
			key[0] ^= (uint64_t)time(NULL);
			key[1] ^= (uint64_t)(uintptr_t)&counter;
		}
	}
	counter++;
	return siphash(key[0], key[1], &counter, sizeof(counter));
}
