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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "lib/evpop3d.h"

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

static int	auth_scheme_parse(const char *, enum auth_scheme *,
		    const char **);
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

/*
 * Split stored into its scheme and data (a bare string is {CRYPT}).
 * Returns 0, or -1 if the scheme is unknown or the data does not start
 * the way the scheme requires.
 */
static int
auth_scheme_parse(const char *stored, enum auth_scheme *scheme_r,
    const char **data_r)
{
	const char	*data, *end;
	size_t		 i, nlen;

	if (stored[0] != '{') {
		*scheme_r = SCHEME_CRYPT;
		*data_r = stored;
		return 0;
	}
	if ((end = strchr(stored, '}')) == NULL)
		return -1;
	nlen = (size_t)(end - (stored + 1));
	data = end + 1;
	for (i = 0; i < sizeof(auth_schemes) / sizeof(auth_schemes[0]); i++) {
		if (strlen(auth_schemes[i].name) != nlen ||
		    strncasecmp(auth_schemes[i].name, stored + 1, nlen) != 0)
			continue;
		if (auth_schemes[i].prefix != NULL &&
		    strncmp(data, auth_schemes[i].prefix,
		    strlen(auth_schemes[i].prefix)) != 0)
			return -1;
		/* bcrypt: only the $2a$, $2b$ and $2y$ variants */
		if (auth_schemes[i].scheme == SCHEME_BLF_CRYPT &&
		    (data[2] == '\0' || strchr("aby", data[2]) == NULL ||
		    data[3] != '$'))
			return -1;
		*scheme_r = auth_schemes[i].scheme;
		*data_r = data;
		return 0;
	}
	return -1;
}

/* See auth.h. */
int
auth_password_verify(const char *stored, const char *password)
{
	enum auth_scheme	 scheme;
	const char		*data;

	if (stored == NULL || password == NULL)
		return -1;
	if (auth_scheme_parse(stored, &scheme, &data) == -1)
		return -1;
	if (scheme == SCHEME_PLAIN)
		return auth_verify_plain(data, password);
	return auth_verify_crypt(data, password);
}

/*
 * See auth.h. What sets the cost of a crypt(3) hash: the method (the
 * "$id$"), and its parameters where it has any: bcrypt's cost field, the
 * first field of "$id$params$salt$hash" ("rounds=N" of SHA-crypt,
 * yescrypt's and sha1crypt's parameters), scrypt's N, r and p at the start
 * of its salt field, the count of BSDi's "_" DES. Salts and hashes vary
 * within a class and cost the same.
 */
int
auth_password_cost(const char *stored, char *buf, size_t len)
{
	enum auth_scheme	 scheme;
	const char		*data, *id_end, *f1, *p;
	size_t			 nf = 0;
	int			 cost;

	if (len > 0)
		buf[0] = '\0';
	if (stored == NULL || len == 0 ||
	    auth_scheme_parse(stored, &scheme, &data) == -1)
		return -1;
	if (scheme == SCHEME_PLAIN) {
		snprintf(buf, len, "PLAIN");
		return 0;
	}
	/* What auth_verify_crypt() and crypt_rn() refuse without hashing. */
	if (data[0] == '\0' || data[0] == '*' ||
	    strlen(data) >= CRYPT_OUTPUT_SIZE)
		return -1;
	switch (crypt_checksalt(data)) {
	case CRYPT_SALT_OK:
	case CRYPT_SALT_METHOD_LEGACY:
	case CRYPT_SALT_TOO_CHEAP:
		break;
	default:
		return -1;
	}
	if (data[0] == '_') {
		snprintf(buf, len, "%.5s", data);
		return 0;
	}
	if (data[0] != '$') {
		snprintf(buf, len, "DES");
		return 0;
	}
	if ((id_end = strchr(data + 1, '$')) == NULL)
		return -1;
	f1 = id_end + 1;
	if (strncmp(data, "$2", 2) == 0) {
		/* "$2b$NN$": crypt_rn() refuses a cost outside 4..31 */
		if (f1[0] < '0' || f1[0] > '9' || f1[1] < '0' || f1[1] > '9' ||
		    f1[2] != '$')
			return -1;
		cost = (f1[0] - '0') * 10 + (f1[1] - '0');
		if (cost < 4 || cost > 31)
			return -1;
		snprintf(buf, len, "%.*s", (int)(f1 + 2 - data), data);
		return 0;
	}
	if (strncmp(data, "$7$", 3) == 0) {
		snprintf(buf, len, "%.*s", (int)(f1 - data + 11), data);
		return 0;
	}
	for (p = f1; *p != '\0'; p++)
		if (*p == '$')
			nf++;
	if (nf >= 2)		/* $id$params$salt$hash */
		snprintf(buf, len, "%.*s", (int)(strchr(f1, '$') - data),
		    data);
	else			/* $id$salt$hash */
		snprintf(buf, len, "%.*s", (int)(f1 - data), data);
	return 0;
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
