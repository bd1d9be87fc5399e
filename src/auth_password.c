/*
 * auth_password: user name checks, password schemes and secret hygiene.
 *
 * Stored passwords are Dovecot-style "{SCHEME}data" strings. The crypt
 * schemes go through libxcrypt's crypt_rn() with a heap-allocated
 * struct crypt_data (about 32 KiB: too big for small worker stacks), which
 * makes them thread-safe. Every comparison of secret-derived bytes uses
 * CRYPTO_memcmp().
 */
#include <crypt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth.h"
#include "evpop3d.h"

enum auth_scheme {
	SCHEME_PLAIN,
	SCHEME_CRYPT,		/* any hash crypt(3) understands */
	SCHEME_MD5_CRYPT,	/* $1$ */
	SCHEME_SHA256_CRYPT,	/* $5$ */
	SCHEME_SHA512_CRYPT,	/* $6$ */
	SCHEME_BLF_CRYPT,	/* $2a$, $2b$, $2y$ */
};

static const struct {
	const char		*name;
	enum auth_scheme	 scheme;
	const char		*prefix;	/* required start of the data */
} auth_schemes[] = {
	{ "PLAIN",		SCHEME_PLAIN,		NULL },
	{ "CRYPT",		SCHEME_CRYPT,		NULL },
	{ "MD5-CRYPT",		SCHEME_MD5_CRYPT,	"$1$" },
	{ "SHA256-CRYPT",	SCHEME_SHA256_CRYPT,	"$5$" },
	{ "SHA512-CRYPT",	SCHEME_SHA512_CRYPT,	"$6$" },
	{ "BLF-CRYPT",		SCHEME_BLF_CRYPT,	"$2" },	/* + a|b|y */
};

#define AUTH_HASH_PREFIX	"{SHA512-CRYPT}"

static int	auth_verify_plain(const char *, const char *);
static int	auth_verify_crypt(const char *, const char *);

void
auth_wipe(void *buf, size_t len)
{
	if (buf != NULL && len > 0)
		explicit_bzero(buf, len);
}

/*
 * See auth.h. The name later becomes a path component and a log field, so
 * the rules are strict; RFC 1939 itself says nothing about user names.
 */
bool
auth_username_valid(const char *name)
{
	size_t	 len, i, nat = 0;

	if (name == NULL)
		return false;
	len = strnlen(name, POP3_USER_MAX + 1);
	if (len == 0 || len > POP3_USER_MAX)
		return false;
	if (name[0] == '.' || name[0] == '@' || name[len - 1] == '@')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		/* printable ASCII without space: 0x21..0x7e */
		if (c <= 0x20 || c >= 0x7f)
			return false;
		switch (c) {
		case '/':
		case '\\':
		case ':':
		case '%':
			return false;
		case '@':
			if (++nat > 1)
				return false;
			break;
		case '.':
			if (i + 1 < len && name[i + 1] == '.')
				return false;
			break;
		default:
			break;
		}
	}
	return true;
}

/*
 * {PLAIN}: hash both sides to a fixed-size digest first, so the comparison
 * is constant-time and leaks nothing about the stored length.
 */
static int
auth_verify_plain(const char *data, const char *password)
{
	unsigned char	 d1[EVP_MAX_MD_SIZE], d2[EVP_MAX_MD_SIZE];
	unsigned int	 l1 = 0, l2 = 0;
	int		 ret = -1;

	if (EVP_Digest(data, strlen(data), d1, &l1, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(password, strlen(password), d2, &l2, EVP_sha256(),
	    NULL) != 1 || l1 != l2)
		goto out;
	ret = CRYPTO_memcmp(d1, d2, l1) == 0 ? 1 : 0;
 out:
	auth_wipe(d1, sizeof(d1));
	auth_wipe(d2, sizeof(d2));
	return ret;
}

/*
 * crypt(3) schemes: re-hash password with the stored setting and compare
 * the whole output. A NULL or "*..." result from crypt_rn() means the
 * setting is malformed or the method is disabled.
 */
static int
auth_verify_crypt(const char *data, const char *password)
{
	struct crypt_data	*cd;
	const char		*res;
	size_t			 dlen, rlen;
	int			 ret = -1;

	dlen = strlen(data);
	if (dlen == 0 || dlen >= CRYPT_OUTPUT_SIZE || data[0] == '*')
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	res = crypt_rn(password, data, cd, sizeof(*cd));
	if (res == NULL || res[0] == '*')
		goto out;
	rlen = strlen(res);
	/* The lengths of a hash's parts are public: no secret leaks here. */
	if (rlen != dlen)
		ret = 0;
	else
		ret = CRYPTO_memcmp(res, data, dlen) == 0 ? 1 : 0;
 out:
	auth_wipe(cd, sizeof(*cd));
	free(cd);
	return ret;
}

/* See auth.h. */
int
auth_password_verify(const char *stored, const char *password)
{
	const char	*data, *end;
	size_t		 i, nlen;

	if (stored == NULL || password == NULL)
		return -1;
	if (stored[0] != '{')
		return auth_verify_crypt(stored, password);

	if ((end = strchr(stored, '}')) == NULL)
		return -1;
	nlen = (size_t)(end - (stored + 1));
	data = end + 1;
	for (i = 0; i < sizeof(auth_schemes) / sizeof(auth_schemes[0]); i++) {
		if (strlen(auth_schemes[i].name) != nlen ||
		    strncasecmp(auth_schemes[i].name, stored + 1, nlen) != 0)
			continue;
		if (auth_schemes[i].scheme == SCHEME_PLAIN)
			return auth_verify_plain(data, password);
		if (auth_schemes[i].prefix != NULL &&
		    strncmp(data, auth_schemes[i].prefix,
		    strlen(auth_schemes[i].prefix)) != 0)
			return -1;
		/* bcrypt: only the $2a$, $2b$ and $2y$ variants */
		if (auth_schemes[i].scheme == SCHEME_BLF_CRYPT &&
		    (data[2] == '\0' || strchr("aby", data[2]) == NULL ||
		    data[3] != '$'))
			return -1;
		return auth_verify_crypt(data, password);
	}
	return -1;
}

/* See auth.h. The salt comes from the OS RNG through crypt_gensalt_rn(). */
char *
auth_password_hash(const char *password)
{
	struct crypt_data	*cd;
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char		*res;
	char			*out = NULL;
	size_t			 plen, rlen;

	if (password == NULL)
		return NULL;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return NULL;
	if (crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)) == NULL)
		goto out;
	res = crypt_rn(password, salt, cd, sizeof(*cd));
	if (res == NULL || res[0] == '*')
		goto out;
	plen = strlen(AUTH_HASH_PREFIX);
	rlen = strlen(res);
	if ((out = malloc(plen + rlen + 1)) == NULL)
		goto out;
	memcpy(out, AUTH_HASH_PREFIX, plen);
	memcpy(out + plen, res, rlen + 1);
 out:
	auth_wipe(cd, sizeof(*cd));
	free(cd);
	return out;
}
