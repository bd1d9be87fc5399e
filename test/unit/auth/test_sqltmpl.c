/*
 * test_sqltmpl: Dovecot-style query templates into parameterized SQL
 * (sqltmpl.h), and the values of the parameters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/sqltmpl.h"

/* tmpl parses to sql with nparams parameters. */
static void
check(const char *tmpl, const char *sql, int nparams)
{
	struct sqltmpl	t;
	char		err[256];

	if (sqltmpl_parse(tmpl, &t, err, sizeof(err)) == -1)
		fail_msg("\"%s\": %s", tmpl, err);
	if (strcmp(t.sql, sql) != 0)
		fail_msg("\"%s\" gave \"%s\", want \"%s\"", tmpl, t.sql, sql);
	assert_int_equal(t.nparams, nparams);
	sqltmpl_free(&t);
}

/* tmpl is refused with a reason containing why. */
static void
refused(const char *tmpl, const char *why)
{
	struct sqltmpl	t;
	char		err[256];

	if (sqltmpl_parse(tmpl, &t, err, sizeof(err)) == 0)
		fail_msg("\"%s\" accepted as \"%s\"", tmpl, t.sql);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\": \"%s\" lacks \"%s\"", tmpl, err, why);
	assert_null(t.sql);
}

static void
test_quoted(void **state)
{
	(void)state;
	/* Dovecot's default: the quotes go with the variable. */
	check("SELECT userid AS user, password FROM users WHERE userid = '%u'",
	    "SELECT userid AS user, password FROM users WHERE userid = $1", 1);
	check("WHERE username = '%n' AND domain = '%d'",
	    "WHERE username = $1 AND domain = $2", 2);
	/* The same variable twice is one parameter. */
	check("WHERE a = '%u' OR b = '%u'", "WHERE a = $1 OR b = $1", 1);
	/* Numbered in order of first use. */
	check("WHERE d = '%d' AND n = '%n' AND u = '%u' AND x = '%d'",
	    "WHERE d = $1 AND n = $2 AND u = $3 AND x = $1", 3);
	/* Unquoted: a parameter too, never text. */
	check("WHERE userid = %u", "WHERE userid = $1", 1);
}

static void
test_inside_literal(void **state)
{
	(void)state;
	check("WHERE userid = '%n@example.org'",
	    "WHERE userid = ($1 || '@example.org')", 1);
	check("WHERE userid = '%n@%d'", "WHERE userid = ($1 || '@' || $2)", 2);
	check("WHERE m = 'x%ny'", "WHERE m = ('x' || $1 || 'y')", 1);
	check("WHERE m = '%n%d'", "WHERE m = ($1 || $2)", 2);
	/* An escaped quote and %% inside stay escaped. */
	check("WHERE m = 'it''s %u 100%%'",
	    "WHERE m = ('it''s ' || $1 || ' 100%')", 1);
}

static void
test_literals_kept(void **state)
{
	(void)state;
	check("SELECT 'a''b', '100%%' FROM t WHERE x = '%u'",
	    "SELECT 'a''b', '100%' FROM t WHERE x = $1", 1);
	check("SELECT 1 WHERE 5 %% 2 = 1", "SELECT 1 WHERE 5 % 2 = 1", 0);
	/* Identifiers are copied, % and all. */
	check("SELECT \"pass%word\" AS password FROM t WHERE u = '%u'",
	    "SELECT \"pass%word\" AS password FROM t WHERE u = $1", 1);
	check("SELECT '' AS home WHERE u = '%u'",
	    "SELECT '' AS home WHERE u = $1", 1);
}

static void
test_refused(void **state)
{
	(void)state;
	refused("WHERE u = '%x'", "unknown variable %x");
	refused("WHERE u = %x", "unknown variable %x");
	refused("WHERE u = '%L'", "unknown variable %L");
	refused("WHERE u = '%{user}'", "unknown variable %{");
	refused("WHERE u = '%u", "unterminated string literal");
	refused("WHERE \"u = 1", "unterminated quoted identifier");
	refused("WHERE u = $1", "parameter $1");
	refused("WHERE u = 1 %", "at the end");
	refused("WHERE u = '%'", "unknown variable");
	refused("", "empty");
}

static void
test_values(void **state)
{
	struct sqltmpl	 t;
	const char	*vals[SQLTMPL_NVARS];
	char		 err[256], buf[64];

	(void)state;
	assert_int_equal(sqltmpl_parse("WHERE a = '%d' AND b = '%n' AND "
	    "c = '%u'", &t, err, sizeof(err)), 0);
	sqltmpl_values(&t, "alice@example.org", buf, sizeof(buf), vals);
	assert_string_equal(vals[0], "example.org");
	assert_string_equal(vals[1], "alice");
	assert_string_equal(vals[2], "alice@example.org");
	/* No domain: %n is the whole name, %d empty. */
	sqltmpl_values(&t, "bob", buf, sizeof(buf), vals);
	assert_string_equal(vals[0], "");
	assert_string_equal(vals[1], "bob");
	assert_string_equal(vals[2], "bob");
	/* An injection attempt is a value, whatever it holds. */
	sqltmpl_values(&t, "x'OR'1'='1", buf, sizeof(buf), vals);
	assert_string_equal(vals[2], "x'OR'1'='1");
	sqltmpl_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_inside_literal),
		cmocka_unit_test(test_literals_kept),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
