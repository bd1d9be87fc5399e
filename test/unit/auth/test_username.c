/*
 * test_username: auth_username_valid(), the gate before any user name
 * reaches a path or a log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "lib/evpop3d.h"

static void
test_accepted(void **state)
{
	static const char *const good[] = {
		"a", "alice", "Alice.Smith", "bob@example.org", "a.b.c",
		"user+tag", "x_y-z", "0", "a@b", "a.@b", "a@.b", "trailing.",
		"~tilde", "q!#$&'*=?^`{|}", "a.b@c.d",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!auth_username_valid(good[i]))
			fail_msg("refused good name \"%s\"", good[i]);
	}
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"", "a/b", "/etc", "a\\b", "..", "a..b", "../etc", "x/../y",
		".hidden", ".", "a:b", "a%b", "a b", " a", "a ", "a\tb",
		"a\nb", "a\rb", "\x01", "a\x1f", "a\x7f", "\x7f",
		"@x", "x@", "a@b@c", "@", "caf\xc3\xa9", "\x80", "a\xff",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (auth_username_valid(bad[i]))
			fail_msg("accepted bad name #%zu \"%s\"", i, bad[i]);
	}
	assert_false(auth_username_valid(NULL));
}

static void
test_length(void **state)
{
	char	 name[POP3_USER_MAX + 2];

	(void)state;
	memset(name, 'a', sizeof(name));
	name[POP3_USER_MAX] = '\0';		/* exactly 255 */
	assert_int_equal(strlen(name), 255);
	assert_true(auth_username_valid(name));

	name[POP3_USER_MAX] = 'a';
	name[POP3_USER_MAX + 1] = '\0';		/* 256 */
	assert_false(auth_username_valid(name));

	/* a bad byte at the very end of a maximal name is still seen */
	name[POP3_USER_MAX] = '\0';
	name[POP3_USER_MAX - 1] = '/';
	assert_false(auth_username_valid(name));
	name[POP3_USER_MAX - 1] = '@';
	assert_false(auth_username_valid(name));
	name[POP3_USER_MAX - 2] = '@';
	name[POP3_USER_MAX - 1] = 'b';
	assert_true(auth_username_valid(name));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
