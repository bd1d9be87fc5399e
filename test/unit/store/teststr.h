/*
 * teststr: helpers the mbox tests share (test_mbox_parse.c,
 * test_store_mbox.c): a growable byte string and a seedable xorshift
 * generator, so random cases are the same at every run.
 */
#ifndef EVPOP3D_TESTSTR_H
#define EVPOP3D_TESTSTR_H

#include <stdlib.h>
#include <string.h>

/* A growable byte string, always NUL-terminated. */
struct str {
	char	*p;
	size_t	 len, cap;
};

static inline void
str_add(struct str *s, const void *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static inline void
str_adds(struct str *s, const char *z)
{
	str_add(s, z, strlen(z));
}

static inline void
str_free(struct str *s)
{
	free(s->p);
	memset(s, 0, sizeof(*s));
}

/* xorshift64; a test file may set rnd_state to its own seed. */
static unsigned long long rnd_state = 88172645463325252ULL;

/* A number in [0, n), 0 if n is 0. */
static inline unsigned
rnd(unsigned n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return n == 0 ? 0 : (unsigned)(rnd_state % n);
}

#endif
