/* grow: the swarm's one array-growing helper (see grow.h). */
#include <stdlib.h>

#include "grow.h"

int
swarm_grow(void **arr, uint32_t *cap, size_t need, size_t sz)
{
	size_t	 n;
	void	*q;

	if (need <= *cap)
		return 0;
	if (need > UINT32_MAX / 2)
		return -1;
	n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	if ((q = reallocarray(*arr, n, sz)) == NULL)
		return -1;
	*arr = q;
	*cap = (uint32_t)n;
	return 0;
}
