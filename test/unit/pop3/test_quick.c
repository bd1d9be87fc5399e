/*
 * test_quick: the hints of quick logins (pop3/quick.h): a login that
 * found a small local maildrop makes one, a big or remote one or a
 * failure removes it, the path must match, a reload clears them, a set
 * forgets the user who logged in longest ago, and a table full of users
 * keeps the newest hints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "pop3/quick.h"

#define U(h, name)	quick_user_hash((h), (name))

static void
test_seen_forget(void **state)
{
	struct quick_hints	*h = quick_hints_new();
	uint64_t		 p, q;

	(void)state;
	assert_non_null(h);
	p = quick_path_hash(h, "/home/alice/Maildir");
	q = quick_path_hash(h, "/nfs/alice/Maildir");
	assert_true(p != q);
	assert_false(quick_login_likely(h, U(h, "alice")));

	quick_login_seen(h, U(h, "alice"), p, 10, true);
	assert_true(quick_login_likely(h, U(h, "alice")));
	assert_true(quick_path_known(h, U(h, "alice"), p));
	assert_false(quick_path_known(h, U(h, "alice"), q));	/* moved */
	assert_false(quick_login_likely(h, U(h, "Alice")));	/* as typed */
	assert_false(quick_login_likely(h, U(h, "bob")));

	/* Big, or not local: the hint goes. */
	quick_login_seen(h, U(h, "alice"), p, QUICK_MAX_MSGS + 1, true);
	assert_false(quick_login_likely(h, U(h, "alice")));
	quick_login_seen(h, U(h, "alice"), p, QUICK_MAX_MSGS, true);
	assert_true(quick_login_likely(h, U(h, "alice")));
	quick_login_seen(h, U(h, "alice"), p, 1, false);
	assert_false(quick_login_likely(h, U(h, "alice")));

	/* A failed login forgets it; another user's is left alone. */
	quick_login_seen(h, U(h, "alice"), p, 1, true);
	quick_login_seen(h, U(h, "bob"), q, 1, true);
	quick_login_forget(h, U(h, "alice"));
	assert_false(quick_login_likely(h, U(h, "alice")));
	assert_true(quick_path_known(h, U(h, "bob"), q));
	quick_login_forget(h, U(h, "carol"));			/* none: no-op */
	assert_true(quick_login_likely(h, U(h, "bob")));

	quick_hints_clear(h);
	assert_false(quick_login_likely(h, U(h, "bob")));
	quick_hints_free(h);
}

/*
 * Users whose hashes choose one set (the low bits) with different tags
 * (the high ones): the set keeps the eight latest logins, a login again
 * moves a user to the front, and a forgotten user's slot is free again.
 */
static void
test_set_order(void **state)
{
	struct quick_hints	*h = quick_hints_new();
	uint64_t		 u[QUICK_HINT_WAYS + 3];
	size_t			 i;

	(void)state;
	assert_non_null(h);
	for (i = 0; i < QUICK_HINT_WAYS + 3; i++)
		u[i] = ((uint64_t)(i + 1) << 32) | 5;
	for (i = 0; i < QUICK_HINT_WAYS; i++)
		quick_login_seen(h, u[i], 7, 1, true);
	for (i = 0; i < QUICK_HINT_WAYS; i++)
		assert_true(quick_path_known(h, u[i], 7));

	/* A ninth: the oldest login goes. */
	quick_login_seen(h, u[QUICK_HINT_WAYS], 7, 1, true);
	assert_false(quick_login_likely(h, u[0]));
	for (i = 1; i <= QUICK_HINT_WAYS; i++)
		assert_true(quick_login_likely(h, u[i]));

	/* u[1] logs in again (another path): u[2] is now the oldest. */
	quick_login_seen(h, u[1], 9, 1, true);
	quick_login_seen(h, u[QUICK_HINT_WAYS + 1], 7, 1, true);
	assert_true(quick_path_known(h, u[1], 9));
	assert_false(quick_path_known(h, u[1], 7));
	assert_false(quick_login_likely(h, u[2]));

	/* A forgotten slot takes the next user; nobody else goes. */
	quick_login_forget(h, u[4]);
	quick_login_seen(h, u[QUICK_HINT_WAYS + 2], 7, 1, true);
	assert_false(quick_login_likely(h, u[4]));
	assert_true(quick_login_likely(h, u[1]));
	assert_true(quick_login_likely(h, u[3]));
	for (i = 5; i < QUICK_HINT_WAYS + 3; i++)
		assert_true(quick_login_likely(h, u[i]));

	/* Another set is another matter. */
	assert_false(quick_login_likely(h, u[3] + 1));
	quick_hints_free(h);
}

/* user0..user<n-1> log in once each, in that order (path: the name). */
static void
log_in_all(struct quick_hints *h, size_t n)
{
	char	 user[32];
	size_t	 i;

	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		quick_login_seen(h, U(h, user), quick_path_hash(h, user), 5,
		    true);
	}
}

/*
 * A sixteenth of the table in users, each logged in once: every hint
 * holds (some set of the 2,048 overflows with chance about 1e-5). One
 * slot per hash lost about one in twenty here.
 */
static void
test_all_kept(void **state)
{
	struct quick_hints	*h = quick_hints_new();
	char			 user[32];
	size_t			 i, n = QUICK_HINT_SLOTS / 16;

	(void)state;
	assert_non_null(h);
	log_in_all(h, n);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		assert_true(quick_path_known(h, U(h, user),
		    quick_path_hash(h, user)));
	}
	quick_hints_free(h);
}

/*
 * Four times as many users as slots: every user's hint either holds
 * (and then with its own path) or is gone, never another user's; of the
 * last QUICK_HINT_SLOTS / 4 users (two a set on average) nearly all are
 * still there.
 */
static void
test_full_table(void **state)
{
	struct quick_hints	*h = quick_hints_new();
	char			 user[32];
	size_t			 i, n = 4 * QUICK_HINT_SLOTS, kept = 0;

	(void)state;
	assert_non_null(h);
	log_in_all(h, n);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		if (!quick_login_likely(h, U(h, user)))
			continue;
		assert_true(quick_path_known(h, U(h, user),
		    quick_path_hash(h, user)));
		if (i >= n - QUICK_HINT_SLOTS / 4)
			kept++;
	}
	/* Lost only from a set that saw nine of them: about 1 in 4,000. */
	assert_true(kept >= QUICK_HINT_SLOTS / 4 * 99 / 100);
	quick_hints_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seen_forget),
		cmocka_unit_test(test_set_order),
		cmocka_unit_test(test_all_kept),
		cmocka_unit_test(test_full_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
