/*
 * test_quick: the hints of quick logins (pop3/quick.h): a login that
 * found a small local maildrop makes one, a big or remote one or a
 * failure removes it, the path must match, a reload clears them, and a
 * table full of users keeps the newest hint of each slot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "pop3/quick.h"

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
	assert_false(quick_login_likely(h, "alice"));

	quick_login_seen(h, "alice", p, 10, true);
	assert_true(quick_login_likely(h, "alice"));
	assert_true(quick_path_known(h, "alice", p));
	assert_false(quick_path_known(h, "alice", q));	/* moved */
	assert_false(quick_login_likely(h, "Alice"));	/* as typed */
	assert_false(quick_login_likely(h, "bob"));

	/* Big, or not local: the hint goes. */
	quick_login_seen(h, "alice", p, QUICK_MAX_MSGS + 1, true);
	assert_false(quick_login_likely(h, "alice"));
	quick_login_seen(h, "alice", p, QUICK_MAX_MSGS, true);
	assert_true(quick_login_likely(h, "alice"));
	quick_login_seen(h, "alice", p, 1, false);
	assert_false(quick_login_likely(h, "alice"));

	/* A failed login forgets it; another user's is left alone. */
	quick_login_seen(h, "alice", p, 1, true);
	quick_login_seen(h, "bob", q, 1, true);
	quick_login_forget(h, "alice");
	assert_false(quick_login_likely(h, "alice"));
	assert_true(quick_path_known(h, "bob", q));
	quick_login_forget(h, "carol");			/* none: no-op */
	assert_true(quick_login_likely(h, "bob"));

	quick_hints_clear(h);
	assert_false(quick_login_likely(h, "bob"));
	quick_hints_free(h);
}

/*
 * Four times as many users as slots: every user's hint either holds
 * (and then with its own path) or is gone, never another user's; the
 * last QUICK_HINT_SLOTS / 4 users are mostly still there.
 */
static void
test_full_table(void **state)
{
	struct quick_hints	*h = quick_hints_new();
	char			 user[32];
	size_t			 i, n = 4 * QUICK_HINT_SLOTS, kept = 0;

	(void)state;
	assert_non_null(h);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		quick_login_seen(h, user, quick_path_hash(h, user), 5, true);
	}
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		if (!quick_login_likely(h, user))
			continue;
		assert_true(quick_path_known(h, user,
		    quick_path_hash(h, user)));
		if (i >= n - QUICK_HINT_SLOTS / 4)
			kept++;
	}
	/* A slot is lost to a later user with chance about 1 - e^-0.25. */
	assert_true(kept > QUICK_HINT_SLOTS / 4 * 7 / 10);
	quick_hints_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seen_forget),
		cmocka_unit_test(test_full_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
