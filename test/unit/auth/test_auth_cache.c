/*
 * test_auth_cache: the user cache of driver = pgsql (auth_cache.h): TTL,
 * bound, least-recently-used eviction, flush.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_cache.h"

static struct auth_rec
rec(const char *password, const char *home)
{
	struct auth_rec r = {
		.password = (char *)password, .name = (char *)"n",
		.home = (char *)home, .extra = (char *)"userdb_mail=maildir:/m",
		.uid = 1000, .gid = 100,
	};

	return r;
}

static void
test_get_put(void **state)
{
	struct auth_cache	*c;
	struct auth_rec		 r = rec("{PLAIN}pw", "/home/a");
	const struct auth_rec	*got;

	(void)state;
	assert_non_null(c = auth_cache_new(10, 60000));
	assert_null(auth_cache_get(c, "alice", 0));
	assert_int_equal(auth_cache_put(c, "alice", &r, 1000), 0);
	assert_non_null(got = auth_cache_get(c, "alice", 1000));
	assert_string_equal(got->password, "{PLAIN}pw");
	assert_string_equal(got->home, "/home/a");
	assert_string_equal(got->extra, "userdb_mail=maildir:/m");
	assert_int_equal(got->uid, 1000);
	assert_int_equal(got->gid, 100);
	/* A copy: the caller's strings are not kept. */
	assert_ptr_not_equal(got->password, r.password);
	assert_null(auth_cache_get(c, "alic", 1000));
	assert_null(auth_cache_get(c, "alice2", 1000));
	/* A put again replaces. */
	r = rec("{PLAIN}new", "/home/b");
	assert_int_equal(auth_cache_put(c, "alice", &r, 2000), 0);
	assert_int_equal(auth_cache_count(c), 1);
	assert_string_equal(auth_cache_get(c, "alice", 2000)->password,
	    "{PLAIN}new");
	auth_cache_free(c);
}

static void
test_ttl(void **state)
{
	struct auth_cache	*c;
	struct auth_rec		 r = rec("{PLAIN}pw", "");

	(void)state;
	assert_non_null(c = auth_cache_new(10, 60000));
	assert_int_equal(auth_cache_put(c, "alice", &r, 5000), 0);
	assert_non_null(auth_cache_get(c, "alice", 5000 + 59999));
	/* A hit does not extend it: the TTL runs from the put. */
	assert_null(auth_cache_get(c, "alice", 5000 + 60000));
	assert_int_equal(auth_cache_count(c), 0);
	auth_cache_free(c);
}

static void
test_bound_lru(void **state)
{
	struct auth_cache	*c;
	struct auth_rec		 r = rec("{PLAIN}pw", "");
	char			 name[32];
	int			 i;

	(void)state;
	assert_non_null(c = auth_cache_new(3, 60000));
	assert_int_equal(auth_cache_put(c, "a", &r, 0), 0);
	assert_int_equal(auth_cache_put(c, "b", &r, 0), 0);
	assert_int_equal(auth_cache_put(c, "c", &r, 0), 0);
	/* "a" used: "b" is now the least recently used. */
	assert_non_null(auth_cache_get(c, "a", 1));
	assert_int_equal(auth_cache_put(c, "d", &r, 2), 0);
	assert_int_equal(auth_cache_count(c), 3);
	assert_null(auth_cache_get(c, "b", 3));
	assert_non_null(auth_cache_get(c, "a", 3));
	assert_non_null(auth_cache_get(c, "c", 3));
	assert_non_null(auth_cache_get(c, "d", 3));
	auth_cache_free(c);

	/* Many users, a growing table: every one found, the bound kept. */
	assert_non_null(c = auth_cache_new(5000, 60000));
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(auth_cache_put(c, name, &r, 0), 0);
	}
	assert_int_equal(auth_cache_count(c), 5000);
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		if ((auth_cache_get(c, name, 1) != NULL) != (i >= 15000))
			fail_msg("%s: wrong presence", name);
	}
	auth_cache_flush(c);
	assert_int_equal(auth_cache_count(c), 0);
	assert_null(auth_cache_get(c, "user19999", 1));
	auth_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_put),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_bound_lru),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
