/*
 * test_auth_verify: auth_verify_stored(), the check of a password that a
 * SQL user database returned (driver = pgsql): USER/PASS and APOP, an
 * unknown user against the stand-in, an unusable entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "auth/auth.h"

/* MD5(ts secret) as 32 lower-case hex digits. */
static void
apop_hex(const char *ts, const char *secret, char *out)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 len = 0, i;
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_md5(), NULL), 1);
	EVP_DigestUpdate(ctx, ts, strlen(ts));
	EVP_DigestUpdate(ctx, secret, strlen(secret));
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
test_plain(void **state)
{
	enum auth_fail	 why;
	char		*sha;

	(void)state;
	assert_non_null(sha = auth_password_hash("secret"));
	assert_int_equal(auth_verify_stored("{PLAIN}secret", sha, NULL,
	    "secret", &why), AUTH_OK);
	assert_int_equal(auth_verify_stored(sha, sha, NULL, "secret", &why),
	    AUTH_OK);
	assert_int_equal(auth_verify_stored(sha, sha, NULL, "wrong", &why),
	    AUTH_FAIL);
	assert_int_equal(why, AUTH_FAIL_PASSWORD);
	/* Unknown: the stand-in is checked, and its match does not count. */
	assert_int_equal(auth_verify_stored(NULL, sha, NULL, "secret", &why),
	    AUTH_FAIL);
	assert_int_equal(why, AUTH_FAIL_USER);
	assert_int_equal(auth_verify_stored("{NOSUCH}x", sha, NULL, "x",
	    &why), AUTH_FAIL);
	assert_int_equal(why, AUTH_FAIL_ENTRY);
	assert_int_equal(auth_verify_stored("", sha, NULL, "", &why),
	    AUTH_FAIL);
	free(sha);
}

static void
test_apop(void **state)
{
	static const char	*ts = "<1896.697170952@dbc.mtview.ca.us>";
	enum auth_fail		 why;
	char			 hex[33];

	(void)state;
	/* RFC 1939 section 7's example. */
	apop_hex(ts, "tanstaaf", hex);
	assert_string_equal(hex, "c4c9334bac560ecc979e58001b3e22fb");
	assert_int_equal(auth_verify_stored("{PLAIN}tanstaaf",
	    "{PLAIN}other", ts, hex, &why), AUTH_OK);
	assert_int_equal(auth_verify_stored("{PLAIN}tanstaaX",
	    "{PLAIN}other", ts, hex, &why), AUTH_FAIL);
	assert_int_equal(why, AUTH_FAIL_PASSWORD);
	/* Only {PLAIN}: a hash cannot answer APOP. */
	assert_int_equal(auth_verify_stored("{SHA512-CRYPT}$6$x$y",
	    "{PLAIN}other", ts, hex, &why), AUTH_FAIL);
	assert_int_equal(why, AUTH_FAIL_ENTRY);
	assert_int_equal(auth_verify_stored(NULL, "{PLAIN}tanstaaf", ts, hex,
	    &why), AUTH_FAIL);
	assert_int_equal(why, AUTH_FAIL_USER);
	assert_int_equal(auth_verify_stored("{PLAIN}tanstaaf",
	    "{PLAIN}other", ts, "not-hex", &why), AUTH_FAIL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_apop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
