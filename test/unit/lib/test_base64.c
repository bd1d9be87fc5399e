/*
 * test_base64: strict RFC 4648 decoding: the RFC's vectors, what is
 * refused, the output limit, and random round trips through an encoder
 * written here, which base64_encode() must agree with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t
encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, n = 0;

	for (i = 0; i < len; i += 3) {
		unsigned long g = (unsigned long)in[i] << 16;

		if (i + 1 < len)
			g |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			g |= in[i + 2];
		out[n++] = alphabet[g >> 18 & 63];
		out[n++] = alphabet[g >> 12 & 63];
		out[n++] = i + 1 < len ? alphabet[g >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? alphabet[g & 63] : '=';
	}
	out[n] = '\0';
	return n;
}

static int
dec(const char *in, unsigned char *out, size_t outlen)
{
	return base64_decode(in, strlen(in), out, outlen);
}

/* RFC 4648 section 10. */
static void
test_rfc_vectors(void **state)
{
	static const struct { const char *b64, *text; } v[] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" },
		{ "Zm9vYmFy", "foobar" },
	};
	unsigned char	out[16];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(dec(v[i].b64, out, sizeof(out)),
		    (int)strlen(v[i].text));
		assert_memory_equal(out, v[i].text, strlen(v[i].text));
	}
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Zm9vY", "Z===", "====", "=Zm9", "Zm=v", "Zg==Zg==",
		"Zm9v!A==", "Zm9v\nA==", "Zm 9", "Zm9-", "Zm9_", "\x80\x81\x82\x83",
	};
	unsigned char	out[16];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dec(bad[i], out, sizeof(out)), -1);
	/* A NUL inside is not base64 either. */
	assert_int_equal(base64_decode("Zm\0v", 4, out, sizeof(out)), -1);
}

static void
test_output_limit(void **state)
{
	unsigned char out[8];

	(void)state;
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(dec("Zm9vYmFy", out, 6), 6);
	assert_int_equal(dec("Zm9vYmFy", out, 5), -1);
	assert_int_equal(dec("Zm9vYg==", out, 4), 4);
	assert_int_equal(dec("Zm9vYg==", out, 3), -1);
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(dec("Zm9vYmE=", out, 5), 5);
	assert_int_equal(out[5], 0xaa);		/* nothing past the end */
}

static void
test_round_trip(void **state)
{
	unsigned char	in[300], out[300];
	char		b64[410];
	size_t		len, k;
	int		round;

	(void)state;
	srandom(42);
	for (round = 0; round < 2000; round++) {
		len = (size_t)random() % sizeof(in);
		for (k = 0; k < len; k++)
			in[k] = (unsigned char)random();
		encode(in, len, b64);
		{
			char mine[410];

			base64_encode(in, len, mine);
			assert_string_equal(mine, b64);
			assert_int_equal(strlen(mine), BASE64_ENCODED_LEN(len));
		}
		assert_int_equal(dec(b64, out, len), (int)len);
		assert_memory_equal(in, out, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_vectors),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_output_limit),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
