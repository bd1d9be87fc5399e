/*
 * test_arena_idtab: the drivers' string arena and seeded id table
 * (store/arena.h, store/idtab.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/arena.h"
#include "store/idtab.h"

/* An impossible allocation must fail, not abort, under ASan too. */
const char	*__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static void
test_arena_strings(void **state)
{
	struct arena	 a;
	const char	*s, *t, *u;
	char		*p;

	(void)state;
	memset(&a, 0, sizeof(a));
	arena_free(&a);				/* empty: harmless */
	s = arena_strndup(&a, "hello world", 5);
	assert_string_equal(s, "hello");
	/* Two strings in one: "name\0info\0". */
	p = arena_add(&a, "1700000000.M1P2.host,S=12", 25, "2,S", 3);
	assert_non_null(p);
	assert_string_equal(p, "1700000000.M1P2.host,S=12");
	assert_string_equal(p + strlen(p) + 1, "2,S");
	/* Empty strings are strings too. */
	t = arena_strndup(&a, "", 0);
	assert_string_equal(t, "");
	u = arena_add(&a, "x", 1, "", 0);
	assert_string_equal(u, "x");
	assert_string_equal(u + 2, "");
	/* Earlier strings are still there. */
	assert_string_equal(s, "hello");
	arena_free(&a);
	assert_null(a.head);
	/* And it can be used again. */
	assert_string_equal(arena_strndup(&a, "again", 5), "again");
	arena_free(&a);
}

/* Blocks: 512 bytes first, doubling up to 64 KiB; strings never move. */
static void
test_arena_blocks(void **state)
{
	struct arena		 a;
	struct arena_blk	*b;
	const char		*ptrs[20000];
	char			 buf[64];
	size_t			 i, n, expect;

	(void)state;
	memset(&a, 0, sizeof(a));
	for (i = 0; i < 20000; i++) {
		n = (size_t)snprintf(buf, sizeof(buf), "message-%zu", i);
		ptrs[i] = arena_strndup(&a, buf, n);
		assert_non_null(ptrs[i]);
	}
	for (i = 0; i < 20000; i++) {
		snprintf(buf, sizeof(buf), "message-%zu", i);
		assert_string_equal(ptrs[i], buf);
	}
	/* Newest first: 64 KiB blocks, then 32K, ... down to 512. */
	for (b = a.head; b->next != NULL && b->size == ARENA_BLK_MAX;
	    b = b->next)
		;
	for (expect = b->size; b != NULL; b = b->next, expect /= 2) {
		assert_int_equal(b->size, expect);
		assert_true(b->used <= b->size);
	}
	assert_int_equal(expect, ARENA_BLK_MIN / 2);
	arena_free(&a);
}

/* A string larger than a block gets a block of its own size. */
static void
test_arena_big(void **state)
{
	struct arena	 a;
	char		*big;
	const char	*s, *t;
	size_t		 n = 3 * ARENA_BLK_MAX;

	(void)state;
	memset(&a, 0, sizeof(a));
	big = malloc(n);
	assert_non_null(big);
	memset(big, 'b', n);
	t = arena_strndup(&a, "small", 5);
	s = arena_strndup(&a, big, n);
	assert_non_null(s);
	assert_int_equal(strlen(s), n);
	assert_int_equal(a.head->size, n + 1);
	assert_string_equal(t, "small");
	free(big);
	arena_free(&a);
}

/* Out of memory: NULL, the arena and its strings unchanged. */
static void
test_arena_nomem(void **state)
{
	struct arena		 a;
	struct arena_blk	*head;
	const char		*s;

	(void)state;
	memset(&a, 0, sizeof(a));
	s = arena_strndup(&a, "kept", 4);
	head = a.head;
	assert_null(arena_grow(&a, SIZE_MAX / 4));
	assert_ptr_equal(a.head, head);
	assert_string_equal(s, "kept");
	arena_free(&a);
}

/* Entries: an array of NUL-terminated keys. */
struct keys {
	char	**k;
};

static size_t	 eq_calls;

static bool
key_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct keys	*ks = arg;

	eq_calls++;
	return idtab_key_is(ks->k[i], key, len);
}

/* Insert key i unless present: 1 if inserted, 0 if it was there. */
static int
put(struct idtab *t, struct keys *ks, uint32_t i)
{
	uint64_t	 h;
	size_t		 s;

	s = idtab_find(t, ks->k[i], strlen(ks->k[i]), key_is, ks, &h);
	if (idtab_used(t, s))
		return 0;
	idtab_set(t, s, h, i);
	return 1;
}

static void
test_idtab_sizes(void **state)
{
	struct idtab	 t;

	(void)state;
	assert_int_equal(idtab_init(&t, 0), 0);
	assert_int_equal(t.mask + 1, 16);
	idtab_free(&t);
	assert_null(t.slot);
	idtab_free(&t);				/* twice: harmless */
	assert_int_equal(idtab_init(&t, 8), 0);
	assert_int_equal(t.mask + 1, 16);
	idtab_free(&t);
	assert_int_equal(idtab_init(&t, 9), 0);
	assert_int_equal(t.mask + 1, 32);
	idtab_free(&t);
	assert_int_equal(idtab_init(&t, 100000), 0);
	assert_int_equal(t.mask + 1, 262144);
	idtab_free(&t);
	/* Indexes are 32 bits: refused before any allocation. */
	errno = 0;
	assert_int_equal(idtab_init(&t, (size_t)UINT32_MAX / 2), -1);
	assert_int_equal(errno, EFBIG);
	assert_null(t.slot);
	idtab_free(&t);
}

static void
test_idtab_set(void **state)
{
	struct idtab	 t;
	struct keys	 ks;
	char		 buf[64];
	uint32_t	 i, n = 20000;
	size_t		 s, misses;

	(void)state;
	ks.k = calloc(n, sizeof(*ks.k));
	assert_non_null(ks.k);
	for (i = 0; i < n; i++) {
		/* A common prefix, as Maildir names have; every 10th twice. */
		snprintf(buf, sizeof(buf), "1700000000.M%uP42.host",
		    i % 10 == 9 ? i - 1 : i);
		ks.k[i] = strdup(buf);
	}
	assert_int_equal(idtab_init(&t, n), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(put(&t, &ks, i), i % 10 == 9 ? 0 : 1);
	/* Each key leads to its first entry. */
	for (i = 0; i < n; i++) {
		s = idtab_find(&t, ks.k[i], strlen(ks.k[i]), key_is, &ks,
		    NULL);
		assert_true(idtab_used(&t, s));
		assert_int_equal(idtab_get(&t, s), i % 10 == 9 ? i - 1 : i);
	}
	/* Keys not there, a prefix of one included: empty slots, and
	 * (the high half of the hash) almost no key comparisons. */
	eq_calls = 0;
	for (i = 0, misses = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "1700000001.M%uP42.host", i);
		s = idtab_find(&t, buf, strlen(buf), key_is, &ks, NULL);
		misses += !idtab_used(&t, s);
	}
	assert_int_equal(misses, n);
	assert_true(eq_calls < 10);
	s = idtab_find(&t, ks.k[0], strlen(ks.k[0]) - 1, key_is, &ks, NULL);
	assert_false(idtab_used(&t, s));
	/* A key given by length, not NUL-terminated. */
	snprintf(buf, sizeof(buf), "%sXYZ", ks.k[5]);
	s = idtab_find(&t, buf, strlen(ks.k[5]), key_is, &ks, NULL);
	assert_true(idtab_used(&t, s));
	assert_int_equal(idtab_get(&t, s), 5);
	/* idtab_set() on a used slot replaces the entry. */
	s = idtab_find(&t, ks.k[7], strlen(ks.k[7]), key_is, &ks, NULL);
	idtab_set(&t, s, 0, 8);
	assert_int_equal(idtab_get(&t, s), 8);
	idtab_free(&t);
	for (i = 0; i < n; i++)
		free(ks.k[i]);
	free(ks.k);
}

/*
 * Keys that collide: a seed chosen so that both keys start in the last
 * slot, so the second one's chain wraps around to slot 0.
 */
static void
test_idtab_wrap(void **state)
{
	struct idtab	 t;
	struct keys	 ks;
	char		*k[3] = { "k0", "k1", "k2" };
	uint64_t	 seed;
	size_t		 s;

	(void)state;
	ks.k = k;
	assert_int_equal(idtab_init(&t, 2), 0);
	for (seed = 1; (store_hash(seed, "k0", 2) & t.mask) != t.mask ||
	    (store_hash(seed, "k1", 2) & t.mask) != t.mask; seed++)
		;
	t.seed = seed;
	assert_int_equal(put(&t, &ks, 0), 1);
	assert_int_equal(put(&t, &ks, 1), 1);
	assert_int_equal(t.slot[t.mask].idx, 1);	/* k0 */
	assert_int_equal(t.slot[0].idx, 2);		/* k1, wrapped */
	s = idtab_find(&t, "k1", 2, key_is, &ks, NULL);
	assert_int_equal(s, 0);
	assert_int_equal(idtab_get(&t, s), 1);
	assert_int_equal(put(&t, &ks, 1), 0);
	s = idtab_find(&t, "k0", 2, key_is, &ks, NULL);
	assert_int_equal(idtab_get(&t, s), 0);
	idtab_free(&t);
}

/* Two tables, two seeds: chosen keys cannot target both. */
static void
test_idtab_seeded(void **state)
{
	struct idtab	 a, b;

	(void)state;
	assert_int_equal(idtab_init(&a, 1), 0);
	assert_int_equal(idtab_init(&b, 1), 0);
	assert_true(a.seed != b.seed);
	idtab_free(&a);
	idtab_free(&b);
}

static void
test_idtab_key_is(void **state)
{
	(void)state;
	assert_true(idtab_key_is("abc", "abc", 3));
	assert_true(idtab_key_is("abc", "abcdef", 3));
	assert_false(idtab_key_is("abc", "ab", 2));
	assert_false(idtab_key_is("abc", "abd", 3));
	assert_false(idtab_key_is("ab", "abc", 3));
	assert_true(idtab_key_is("", "x", 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_strings),
		cmocka_unit_test(test_arena_blocks),
		cmocka_unit_test(test_arena_big),
		cmocka_unit_test(test_arena_nomem),
		cmocka_unit_test(test_idtab_sizes),
		cmocka_unit_test(test_idtab_set),
		cmocka_unit_test(test_idtab_wrap),
		cmocka_unit_test(test_idtab_seeded),
		cmocka_unit_test(test_idtab_key_is),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
