/*
 * test_logfmt: the logout format. The default gives the disconnect line
 * of old byte for byte; letters and long names; absent values drop
 * their label; the user is quoted; bad formats are refused with a
 * reason; a short buffer cuts cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/logfmt.h"

static struct logfmt *
compile_ok(const char *fmt)
{
	struct logfmt	*f;
	char		 why[256];

	if (logfmt_compile(fmt, &f, why, sizeof(why)) == -1)
		fail_msg("'%s': %s", fmt, why);
	return f;
}

static const char *
expand(const char *fmt, const struct logfmt_values *v)
{
	static char	 buf[4096];
	struct logfmt	*f = compile_ok(fmt);

	logfmt_expand(f, v, buf, sizeof(buf));
	logfmt_free(f);
	return buf;
}

static const struct logfmt_values full = {
	.user = "bob@example.org", .rip = "192.0.2.7:51344",
	.lip = "198.51.100.1:110", .reason = "quit", .tls = "TLSv1.3",
	.state = "UPDATE", .session = 0x3f2a9c0d1e4b5a60ULL,
	.duration_ms = 12345, .input = 61, .output = 70012,
	.top_count = 1, .top_bytes = 120, .retr_count = 2,
	.retr_bytes = 70000, .deleted_count = 2, .message_count = 5,
	.message_bytes = 90000, .has_proto = true,
};

/* What session.c wrote before the format existed, for each case. */
static void
test_default_is_the_old_line(void **state)
{
	struct logfmt_values	 v = full;

	(void)state;
	assert_string_equal(expand(LOGFMT_LOGOUT_DEFAULT, &v),
	    "reason=quit tls=TLSv1.3 user=\"bob@example.org\" state=UPDATE "
	    "retr=2/70000 top=1/120 deleted=2 duration_ms=12345");
	v.tls = NULL;
	v.user = NULL;
	v.state = "AUTHORIZATION";
	v.retr_count = v.retr_bytes = v.top_count = v.top_bytes = 0;
	v.deleted_count = 0;
	assert_string_equal(expand(LOGFMT_LOGOUT_DEFAULT, &v),
	    "reason=quit user=- state=AUTHORIZATION retr=0/0 top=0/0 "
	    "deleted=0 duration_ms=12345");
	/* No protocol (a TLS handshake that failed): no summary. */
	v = (struct logfmt_values){ .rip = "192.0.2.7:1", .reason =
	    "tls-handshake-failed", .duration_ms = 7 };
	assert_string_equal(expand(LOGFMT_LOGOUT_DEFAULT, &v),
	    "reason=tls-handshake-failed duration_ms=7");
}

static void
test_dovecot_letters(void **state)
{
	(void)state;
	assert_string_equal(expand("top=%t/%p, retr=%r/%b, del=%d/%m, "
	    "size=%s, bytes=%i/%o", &full), "top=1/120, retr=2/70000, "
	    "del=2/5, size=90000, bytes=61/70012");
	assert_string_equal(expand("%u 100%%", &full),
	    "\"bob@example.org\" 100%");
}

static void
test_long_names(void **state)
{
	(void)state;
	assert_string_equal(expand("user=%{user} rip=%{rip} lip=%{lip} "
	    "duration=%{duration} reason=%{reason} left=%{left} "
	    "size=%{size} top=%{top_count}/%{top_bytes} "
	    "retr=%{retr_count}/%{retr_bytes} del=%{deleted_count} "
	    "msgs=%{message_count}/%{message_bytes} in=%{input} "
	    "out=%{output} sess=%{session} state=%{state}", &full),
	    "user=\"bob@example.org\" rip=192.0.2.7:51344 "
	    "lip=198.51.100.1:110 duration=12.345 reason=quit left=3 "
	    "size=90000 top=1/120 retr=2/70000 del=2 msgs=5/90000 in=61 "
	    "out=70012 sess=3f2a9c0d1e4b5a60 state=UPDATE");
}

/* A user name cannot end the value early or look like another key. */
static void
test_user_quoted(void **state)
{
	struct logfmt_values v = full;

	(void)state;
	v.user = "x\" rip=10.0.0.1 \\\n";
	assert_string_equal(expand("user=%{user}", &v),
	    "user=\"x\\\" rip=10.0.0.1 \\\\\\x0a\"");
}

static void
test_absent_drops_label(void **state)
{
	struct logfmt_values v = { .rip = "r", .reason = "idle-timeout" };

	(void)state;
	assert_string_equal(expand("a lip=%{lip} b", &v), "a b");
	assert_string_equal(expand("x=%r/%b y=%{reason}", &v),
	    "y=idle-timeout");
	assert_string_equal(expand("%{tls}", &v), "");
	assert_string_equal(expand("", &v), "");
}

static void
assert_refused(const char *fmt, const char *reason)
{
	struct logfmt	*f = (struct logfmt *)1;
	char		 why[256];

	assert_int_equal(logfmt_compile(fmt, &f, why, sizeof(why)), -1);
	assert_null(f);
	if (strstr(why, reason) == NULL)
		fail_msg("'%s': '%s' lacks '%s'", fmt, why, reason);
}

static void
test_bad_formats(void **state)
{
	char big[LOGFMT_MAX_LEN + 2];

	(void)state;
	assert_refused("x=%q", "unknown variable '%q'");
	assert_refused("x=%{nosuch}", "unknown variable '%{nosuch}'");
	assert_refused("x=%{user", "unterminated '%{' at offset 2");
	assert_refused("x=%", "'%' at the end");
	assert_refused("%{}", "unknown variable");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_refused(big, "longer than");
}

static void
test_uses(void **state)
{
	struct logfmt *f = compile_ok("a=%{lip} %i");

	(void)state;
	assert_true(logfmt_uses(f, LOGFMT_LIP));
	assert_true(logfmt_uses(f, LOGFMT_INPUT));
	assert_false(logfmt_uses(f, LOGFMT_OUTPUT));
	assert_false(logfmt_uses(NULL, LOGFMT_LIP));
	logfmt_free(f);
}

/* Every buffer size gives a NUL-terminated prefix of the full line. */
static void
test_short_buffer(void **state)
{
	struct logfmt	*f = compile_ok(LOGFMT_LOGOUT_DEFAULT);
	char		 whole[512], buf[512];
	size_t		 n, len, i;

	(void)state;
	n = logfmt_expand(f, &full, whole, sizeof(whole));
	assert_int_equal(n, strlen(whole));
	for (len = 1; len <= n + 1; len++) {
		memset(buf, 'Z', sizeof(buf));
		i = logfmt_expand(f, &full, buf, len);
		assert_int_equal(i, len - 1);
		assert_int_equal(buf[len - 1], '\0');
		assert_memory_equal(buf, whole, len - 1);
		assert_int_equal(buf[len], 'Z');
	}
	logfmt_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_is_the_old_line),
		cmocka_unit_test(test_dovecot_letters),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_user_quoted),
		cmocka_unit_test(test_absent_drops_label),
		cmocka_unit_test(test_bad_formats),
		cmocka_unit_test(test_uses),
		cmocka_unit_test(test_short_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
