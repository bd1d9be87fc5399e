/*
 * auth_password: user name checks, password schemes and secret hygiene.
 *
 * Stored passwords are Dovecot-style "{SCHEME}data" strings. The crypt
 * schemes go through libxcrypt's crypt_rn() with a heap-allocated
 * struct crypt_data (about 32 KiB: too big for small worker stacks), which
 * makes them thread-safe; yescrypt ("$y$", Debian's default) is one of
 * them. The digest schemes of LDAP and Dovecot ({SHA}, {SHA256},
 * {SHA512}, and the salted {SSHA}, {SSHA256}, {SSHA512}: the digest of
 * password and salt, then the salt) go through OpenSSL. {ARGON2I} and
 * {ARGON2ID} ("$argon2i$v=19$m=KIB,t=PASSES,p=LANES$salt$hash") go
 * through libsodium, as in Dovecot, whose doveadm writes them with the
 * same code: its verify reads the variant and parameters from the string
 * and compares in constant time. Every comparison of secret-derived bytes
 * uses CRYPTO_memcmp().
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <sodium.h>

#include "auth/auth.h"
#include "lib/base64.h"
#include "lib/evpop3d.h"

enum auth_scheme {
	SCHEME_PLAIN,
	SCHEME_CRYPT,		/* any hash crypt(3) understands */
	SCHEME_MD5_CRYPT,	/* $1$ */
	SCHEME_SHA256_CRYPT,	/* $5$ */
	SCHEME_SHA512_CRYPT,	/* $6$ */
	SCHEME_BLF_CRYPT,	/* $2a$, $2b$, $2y$ */
	SCHEME_DIGEST,		/* base64 (or hex) of digest(password) */
	SCHEME_SDIGEST,		/* ... of digest(password salt) salt */
	SCHEME_ARGON2I,		/* $argon2i$, libsodium */
	SCHEME_ARGON2ID,	/* $argon2id$, libsodium */
};

static const struct auth_scheme_def {
	const char		*name;
	enum auth_scheme	 scheme;
	const char		*prefix;	/* required start of the data */
	const char		*md;		/* digest schemes: OpenSSL's name */
} auth_schemes[] = {
	{ "PLAIN",		SCHEME_PLAIN,		NULL,	NULL },
	{ "CRYPT",		SCHEME_CRYPT,		NULL,	NULL },
	{ "MD5-CRYPT",		SCHEME_MD5_CRYPT,	"$1$",	NULL },
	{ "SHA256-CRYPT",	SCHEME_SHA256_CRYPT,	"$5$",	NULL },
	{ "SHA512-CRYPT",	SCHEME_SHA512_CRYPT,	"$6$",	NULL },
	{ "BLF-CRYPT",		SCHEME_BLF_CRYPT,	"$2",	NULL },	/* + a|b|y */
	{ "SHA",		SCHEME_DIGEST,		NULL,	"SHA1" },
	{ "SHA1",		SCHEME_DIGEST,		NULL,	"SHA1" },
	{ "SHA256",		SCHEME_DIGEST,		NULL,	"SHA256" },
	{ "SHA512",		SCHEME_DIGEST,		NULL,	"SHA512" },
	{ "SSHA",		SCHEME_SDIGEST,		NULL,	"SHA1" },
	{ "SSHA256",		SCHEME_SDIGEST,		NULL,	"SHA256" },
	{ "SSHA512",		SCHEME_SDIGEST,		NULL,	"SHA512" },
	{ "ARGON2I",		SCHEME_ARGON2I,		"$argon2i$",	NULL },
	{ "ARGON2ID",		SCHEME_ARGON2ID,	"$argon2id$",	NULL },
};

/* A digest scheme's data: base64 unless the scheme name says ".HEX". */
enum auth_encoding {
	ENC_AUTO,		/* base64; hex if it is exactly a hex digest */
	ENC_BASE64,		/* {SCHEME.B64}, {SCHEME.BASE64} */
	ENC_HEX,		/* {SCHEME.HEX} */
};

/* Longest decoded digest-scheme data: a SHA-512 digest and a salt. */
#define AUTH_DIGEST_DATA_MAX	(EVP_MAX_MD_SIZE + 256)

/*
 * The most an argon2 string may ask of one check, refused at load above
 * (a typo or a hostile passwd-file must not make every login allocate
 * gigabytes): 1 GiB (Dovecot's ARGON2ID with -r 4 or more, libsodium's
 * "sensitive"), 64 passes, 16 lanes (libsodium runs them one after the
 * other). A check holds m KiB for its duration, on each worker thread.
 */
#define AUTH_ARGON2_MEM_MAX_KIB	(1024UL * 1024)
#define AUTH_ARGON2_TIME_MAX	64UL
#define AUTH_ARGON2_LANES_MAX	16UL

static int	auth_scheme_parse(const char *,
		    const struct auth_scheme_def **, enum auth_encoding *,
		    const char **);
static int	auth_verify_plain(const char *, const char *);
static int	auth_verify_crypt(const char *, const char *);

void
auth_wipe(void *buf, size_t len)
{
	if (buf != NULL && len > 0)
		explicit_bzero(buf, len);
}

/* See auth.h. */
void
auth_free_secret(char *s)
{
	if (s != NULL) {
		auth_wipe(s, strlen(s));
		free(s);
	}
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
 * {PLAIN}: compare in time that depends on the password given, never on
 * the one stored. Every octet of password is compared with the stored
 * password read cyclically (the index wraps without a branch), and a
 * length difference is folded in without a branch either. Two SHA-256
 * digests did the same at 11,000 instructions, an eighth of a login.
 */
static int
auth_verify_plain(const char *data, const char *password)
{
	size_t		 dlen = strlen(data), plen = strlen(password), i, j;
	size_t		 next, lendiff = dlen ^ plen;
	unsigned	 diff = 0;

	if (dlen == 0)
		return plen == 0 ? 1 : 0;	/* an empty stored password */
	for (i = j = 0; i < plen; i++) {
		diff |= (unsigned char)(password[i] ^ data[j]);
		next = j + 1;
		j = next & ((size_t)0 - (size_t)(next < dlen));
	}
	/* 1 in the low bit when the lengths differ. */
	diff |= (unsigned)((lendiff | ((size_t)0 - lendiff)) >>
	    (sizeof(size_t) * 8 - 1));
	return diff == 0 ? 1 : 0;
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

/* sodium_init() once, from whichever thread gets here first. */
static pthread_once_t	auth_sodium_once = PTHREAD_ONCE_INIT;
static int		auth_sodium_ok;

static void
auth_sodium_init(void)
{
	auth_sodium_ok = sodium_init() >= 0;
}

/*
 * "NAME" then a decimal number of at most 10 digits (no leading zero)
 * then stop; moves *pp past it. 0, or -1 if the text is not that.
 */
static int
argon2_field(const char **pp, const char *name, char stop,
    unsigned long *v_r)
{
	const char	*p = *pp, *digits;
	unsigned long	 v = 0;

	if (strncmp(p, name, strlen(name)) != 0)
		return -1;
	digits = p += strlen(name);
	while (*p >= '0' && *p <= '9') {
		if (p - digits >= 10)
			return -1;
		v = v * 10 + (unsigned long)(*p++ - '0');
	}
	if (p == digits || *p != stop || (p - digits > 1 && digits[0] == '0'))
		return -1;
	*pp = p + 1;
	*v_r = v;
	return 0;
}

/*
 * An argon2 string as libsodium writes it (data starts with the
 * scheme's "$argon2i$" or "$argon2id$"): "v=19$m=KIB,t=N,p=N$" then salt
 * and hash in unpadded base64, within our limits and shorter than
 * libsodium's buffers. Stores the length of the parameters part (the
 * cost class: salts and hashes differ within it). Returns 0, or -1 if
 * the string is malformed or over a limit. Cheap: no hashing.
 */
static int
argon2_parse(const struct auth_scheme_def *def, const char *data,
    size_t *classlen_r)
{
	const char	*p = data + strlen(def->prefix);
	unsigned long	 v, m, t, lanes;
	size_t		 len = strlen(data);
	int		 r;

	if (len >= crypto_pwhash_argon2id_STRBYTES ||
	    len >= crypto_pwhash_argon2i_STRBYTES)
		return -1;
	if (argon2_field(&p, "v=", '$', &v) == -1 || v != 19 ||
	    argon2_field(&p, "m=", ',', &m) == -1 ||
	    argon2_field(&p, "t=", ',', &t) == -1 ||
	    argon2_field(&p, "p=", '$', &lanes) == -1)
		return -1;
	if (m > AUTH_ARGON2_MEM_MAX_KIB || t == 0 ||
	    t > AUTH_ARGON2_TIME_MAX || lanes == 0 ||
	    lanes > AUTH_ARGON2_LANES_MAX || m < 8 * lanes ||
	    (def->scheme == SCHEME_ARGON2I && t < 3))
		return -1;
	*classlen_r = (size_t)(p - 1 - data);
	/* The rest, salt and hash, as libsodium's decoder sees it. */
	pthread_once(&auth_sodium_once, auth_sodium_init);
	if (!auth_sodium_ok)
		return -1;
	if (def->scheme == SCHEME_ARGON2ID)
		r = crypto_pwhash_argon2id_str_needs_rehash(data, t, m * 1024);
	else
		r = crypto_pwhash_argon2i_str_needs_rehash(data, t, m * 1024);
	return r == -1 ? -1 : 0;
}

/*
 * {ARGON2I}, {ARGON2ID}: libsodium recomputes the hash with the string's
 * parameters and salt and compares in constant time. It answers -1 for
 * a mismatch (errno EINVAL) and for a failure (out of memory, a string
 * it cannot decode): only the first is a wrong password.
 */
static int
auth_verify_argon2(const struct auth_scheme_def *def, const char *data,
    const char *password)
{
	size_t	 classlen;
	int	 r;

	if (argon2_parse(def, data, &classlen) == -1)
		return -1;
	errno = 0;
	if (def->scheme == SCHEME_ARGON2ID)
		r = crypto_pwhash_argon2id_str_verify(data, password,
		    strlen(password));
	else
		r = crypto_pwhash_argon2i_str_verify(data, password,
		    strlen(password));
	if (r == 0)
		return 1;
	return errno == EINVAL ? 0 : -1;
}

/*
 * Split stored into its scheme and data (a bare string is {CRYPT}); a
 * digest scheme may name its encoding ("{SSHA256.HEX}", Dovecot's).
 * Returns 0, or -1 if the scheme is unknown or the data does not start
 * the way the scheme requires.
 */
static int
auth_scheme_parse(const char *stored, const struct auth_scheme_def **def_r,
    enum auth_encoding *enc_r, const char **data_r)
{
	const char	*data, *end, *dot;
	size_t		 i, nlen;

	*enc_r = ENC_AUTO;
	if (stored[0] != '{') {
		*def_r = &auth_schemes[1];	/* CRYPT */
		*data_r = stored;
		return 0;
	}
	if ((end = strchr(stored, '}')) == NULL)
		return -1;
	nlen = (size_t)(end - (stored + 1));
	data = end + 1;
	if ((dot = memchr(stored + 1, '.', nlen)) != NULL) {
		if ((size_t)(end - dot) == 4 && strncasecmp(dot, ".HEX", 4) == 0)
			*enc_r = ENC_HEX;
		else if (((size_t)(end - dot) == 4 &&
		    strncasecmp(dot, ".B64", 4) == 0) || ((size_t)(end - dot) ==
		    7 && strncasecmp(dot, ".BASE64", 7) == 0))
			*enc_r = ENC_BASE64;
		else
			return -1;
		nlen = (size_t)(dot - (stored + 1));
	}
	for (i = 0; i < sizeof(auth_schemes) / sizeof(auth_schemes[0]); i++) {
		const struct auth_scheme_def *def = &auth_schemes[i];

		if (strlen(def->name) != nlen ||
		    strncasecmp(def->name, stored + 1, nlen) != 0)
			continue;
		if (*enc_r != ENC_AUTO && def->md == NULL)
			return -1;	/* an encoding only for digests */
		if (def->prefix != NULL &&
		    strncmp(data, def->prefix, strlen(def->prefix)) != 0)
			return -1;
		/* bcrypt: only the $2a$, $2b$ and $2y$ variants */
		if (def->scheme == SCHEME_BLF_CRYPT &&
		    (data[2] == '\0' || strchr("aby", data[2]) == NULL ||
		    data[3] != '$'))
			return -1;
		*def_r = def;
		*data_r = data;
		return 0;
	}
	return -1;
}

/* See auth.h. */
int
auth_hex_decode(const char *in, size_t len, unsigned char *out, size_t max)
{
	size_t	i;
	int	hi, lo;

	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (i = 0; i < len; i += 2) {
		if ((hi = OPENSSL_hexchar2int((unsigned char)in[i])) < 0 ||
		    (lo = OPENSSL_hexchar2int((unsigned char)in[i + 1])) < 0)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(len / 2);
}

/*
 * A digest scheme's data into raw: its digest, and for a salted scheme a
 * salt of at least one octet after it. An unsalted digest stored as
 * exactly its hex form is read as hex, as Dovecot does. The digest's
 * length, or -1 if the data does not decode or has the wrong length.
 */
static int
digest_decode(const struct auth_scheme_def *def, enum auth_encoding enc,
    const char *data, unsigned char *raw, size_t rawlen, int *n_r,
    const EVP_MD **md_r)
{
	const EVP_MD	*md;
	size_t		 dlen, len = strlen(data);
	int		 n;

	if ((md = EVP_get_digestbyname(def->md)) == NULL)
		return -1;
	dlen = (size_t)EVP_MD_get_size(md);
	if (enc == ENC_HEX || (enc == ENC_AUTO &&
	    def->scheme == SCHEME_DIGEST && len == 2 * dlen))
		n = auth_hex_decode(data, len, raw, rawlen);
	else
		n = len == 0 ? -1 : base64_decode(data, len, raw, rawlen);
	/* The lengths are public: a salted hash has a salt, a plain one none. */
	if (n < 0 || (def->scheme == SCHEME_DIGEST && (size_t)n != dlen) ||
	    (def->scheme == SCHEME_SDIGEST && (size_t)n <= dlen))
		return -1;
	*n_r = n;
	*md_r = md;
	return (int)dlen;
}

/*
 * The digest schemes: compare digest(password), or for a salted scheme
 * digest(password || salt), with the stored digest.
 */
static int
auth_verify_digest(const struct auth_scheme_def *def, enum auth_encoding enc,
    const char *data, const char *password)
{
	unsigned char	 raw[AUTH_DIGEST_DATA_MAX], d[EVP_MAX_MD_SIZE];
	const EVP_MD	*md;
	EVP_MD_CTX	*ctx = NULL;
	unsigned int	 outl = 0;
	int		 n, dlen, ret = -1;

	if ((dlen = digest_decode(def, enc, data, raw, sizeof(raw), &n, &md))
	    < 0)
		goto out;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, password, strlen(password)) != 1 ||
	    (def->scheme == SCHEME_SDIGEST && EVP_DigestUpdate(ctx, raw + dlen,
	    (size_t)(n - dlen)) != 1) ||
	    EVP_DigestFinal_ex(ctx, d, &outl) != 1 || outl != (unsigned)dlen)
		goto out;
	ret = CRYPTO_memcmp(d, raw, (size_t)dlen) == 0 ? 1 : 0;
 out:
	EVP_MD_CTX_free(ctx);
	auth_wipe(raw, sizeof(raw));
	auth_wipe(d, sizeof(d));
	return ret;
}

/* See auth.h. */
int
auth_password_verify(const char *stored, const char *password)
{
	const struct auth_scheme_def	*def;
	enum auth_encoding		 enc;
	const char			*data;

	if (stored == NULL || password == NULL)
		return -1;
	if (auth_scheme_parse(stored, &def, &enc, &data) == -1)
		return -1;
	if (def->scheme == SCHEME_PLAIN)
		return auth_verify_plain(data, password);
	if (def->scheme == SCHEME_ARGON2I || def->scheme == SCHEME_ARGON2ID)
		return auth_verify_argon2(def, data, password);
	if (def->md != NULL)
		return auth_verify_digest(def, enc, data, password);
	return auth_verify_crypt(data, password);
}

/* See auth.h. */
bool
auth_password_cheap(const char *stored)
{
	const struct auth_scheme_def	*def;
	enum auth_encoding		 enc;
	const char			*data;

	if (stored == NULL || auth_scheme_parse(stored, &def, &enc, &data) == -1)
		return false;
	return def->scheme == SCHEME_PLAIN || def->md != NULL;
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
	const struct auth_scheme_def	*def;
	enum auth_encoding		 enc;
	const char			*data, *id_end, *f1, *p;
	size_t				 nf = 0;
	int				 cost;

	if (len > 0)
		buf[0] = '\0';
	if (stored == NULL || len == 0 ||
	    auth_scheme_parse(stored, &def, &enc, &data) == -1)
		return -1;
	if (def->scheme == SCHEME_PLAIN) {
		snprintf(buf, len, "PLAIN");
		return 0;
	}
	/* A digest costs one hash of the password, whatever the salt. */
	if (def->md != NULL) {
		unsigned char	 raw[AUTH_DIGEST_DATA_MAX];
		const EVP_MD	*md;
		int		 n, ok;

		ok = digest_decode(def, enc, data, raw, sizeof(raw), &n, &md);
		auth_wipe(raw, sizeof(raw));
		if (ok < 0)
			return -1;
		snprintf(buf, len, "%s", def->md);
		return 0;
	}
	/* argon2: the variant and its parameters, "$argon2id$v=19$m=..,t=..,p=.." */
	if (def->scheme == SCHEME_ARGON2I || def->scheme == SCHEME_ARGON2ID) {
		size_t	classlen;

		if (argon2_parse(def, data, &classlen) == -1)
			return -1;
		snprintf(buf, len, "%.*s", (int)classlen, data);
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

/* "{name}data" into a new string; NULL if out of memory. */
static char *
scheme_join(const char *name, const char *data)
{
	char *out;

	if (asprintf(&out, "{%s}%s", name, data) == -1)
		return NULL;
	return out;
}

/* A digest scheme's hash: base64 of the digest, then the salt if salted. */
static char *
hash_digest(const struct auth_scheme_def *def, const char *password,
    char *err, size_t errlen)
{
	unsigned char	 raw[EVP_MAX_MD_SIZE + 8];
	char		 b64[BASE64_ENCODED_LEN(sizeof(raw)) + 1];
	const EVP_MD	*md = EVP_get_digestbyname(def->md);
	EVP_MD_CTX	*ctx = NULL;
	size_t		 slen = def->scheme == SCHEME_SDIGEST ? 8 : 0;
	unsigned int	 dlen = 0;
	char		*out = NULL;

	if (md == NULL || (ctx = EVP_MD_CTX_new()) == NULL ||
	    (slen > 0 && RAND_bytes(raw + EVP_MAX_MD_SIZE, (int)slen) != 1) ||
	    EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, password, strlen(password)) != 1 ||
	    EVP_DigestUpdate(ctx, raw + EVP_MAX_MD_SIZE, slen) != 1 ||
	    EVP_DigestFinal_ex(ctx, raw, &dlen) != 1) {
		snprintf(err, errlen, "%s: hashing failed", def->name);
		goto out;
	}
	memmove(raw + dlen, raw + EVP_MAX_MD_SIZE, slen);
	base64_encode(raw, dlen + slen, b64);
	if ((out = scheme_join(def->name, b64)) == NULL)
		snprintf(err, errlen, "out of memory");
 out:
	EVP_MD_CTX_free(ctx);
	auth_wipe(raw, sizeof(raw));
	return out;
}

/* A crypt(3) scheme's hash: a salt of method prefix with rounds. */
static char *
hash_crypt(const struct auth_scheme_def *def, const char *prefix,
    unsigned long rounds, const char *password, char *err, size_t errlen)
{
	struct crypt_data	*cd;
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char		*res;
	char			*out = NULL;

	if ((cd = calloc(1, sizeof(*cd))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (crypt_gensalt_rn(prefix, rounds, NULL, 0, salt,
	    sizeof(salt)) == NULL) {
		snprintf(err, errlen, "%s: rounds %lu out of range",
		    def->name, rounds);
		goto out;
	}
	res = crypt_rn(password, salt, cd, sizeof(*cd));
	if (res == NULL || res[0] == '*')
		snprintf(err, errlen, "%s: hashing failed", def->name);
	else if ((out = scheme_join(def->name, res)) == NULL)
		snprintf(err, errlen, "out of memory");
 out:
	auth_wipe(cd, sizeof(*cd));
	free(cd);
	return out;
}

/*
 * An argon2 hash the way Dovecot's doveadm makes one: rounds are the
 * passes (default libsodium's "interactive": 4 for argon2i, 2 for
 * argon2id, which is raised to 3 as Dovecot does), and the memory is
 * libsodium's interactive, moderate or sensitive figure by the rounds
 * asked for (argon2i: 32, 128, 512 MiB; argon2id: 64, 256 MiB, 1 GiB).
 */
static char *
hash_argon2(const struct auth_scheme_def *def, unsigned long rounds,
    const char *password, char *err, size_t errlen)
{
	char			 res[crypto_pwhash_STRBYTES];
	unsigned long long	 ops;
	size_t			 mem;
	int			 r;
	char			*out;

	pthread_once(&auth_sodium_once, auth_sodium_init);
	if (!auth_sodium_ok) {
		snprintf(err, errlen, "%s: libsodium failed to start",
		    def->name);
		return NULL;
	}
	if (def->scheme == SCHEME_ARGON2I) {
		ops = rounds != 0 ? rounds :
		    crypto_pwhash_argon2i_OPSLIMIT_INTERACTIVE;
		if (ops >= crypto_pwhash_argon2i_OPSLIMIT_SENSITIVE)
			mem = crypto_pwhash_argon2i_MEMLIMIT_SENSITIVE;
		else if (ops >= crypto_pwhash_argon2i_OPSLIMIT_MODERATE)
			mem = crypto_pwhash_argon2i_MEMLIMIT_MODERATE;
		else
			mem = crypto_pwhash_argon2i_MEMLIMIT_INTERACTIVE;
		if (ops < crypto_pwhash_argon2i_OPSLIMIT_MIN)
			goto range;
	} else {
		ops = rounds != 0 ? rounds :
		    crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
		if (ops >= crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE)
			mem = crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE;
		else if (ops >= crypto_pwhash_argon2id_OPSLIMIT_MODERATE)
			mem = crypto_pwhash_argon2id_MEMLIMIT_MODERATE;
		else
			mem = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
		if (ops < 3)
			ops = 3;
	}
	if (ops > AUTH_ARGON2_TIME_MAX || mem / 1024 > AUTH_ARGON2_MEM_MAX_KIB)
		goto range;
	if (def->scheme == SCHEME_ARGON2I)
		r = crypto_pwhash_argon2i_str(res, password, strlen(password),
		    ops, mem);
	else
		r = crypto_pwhash_argon2id_str(res, password, strlen(password),
		    ops, mem);
	if (r != 0) {
		snprintf(err, errlen, "%s: hashing failed (out of memory?)",
		    def->name);
		return NULL;
	}
	if ((out = scheme_join(def->name, res)) == NULL)
		snprintf(err, errlen, "out of memory");
	return out;
 range:
	snprintf(err, errlen, "%s: rounds %lu out of range (%d-%lu)",
	    def->name, rounds, def->scheme == SCHEME_ARGON2I ?
	    (int)crypto_pwhash_argon2i_OPSLIMIT_MIN : 1, AUTH_ARGON2_TIME_MAX);
	return NULL;
}

/* See auth.h. */
char *
auth_password_hash_scheme(const char *scheme, unsigned long rounds,
    const char *password, char *err, size_t errlen)
{
	static const struct {
		enum auth_scheme	 scheme;
		const char		*prefix;
	} crypts[] = {
		{ SCHEME_CRYPT,		"$y$" },	/* yescrypt */
		{ SCHEME_MD5_CRYPT,	"$1$" },
		{ SCHEME_SHA256_CRYPT,	"$5$" },
		{ SCHEME_SHA512_CRYPT,	"$6$" },
		{ SCHEME_BLF_CRYPT,	"$2b$" },
	};
	const struct auth_scheme_def	*def = NULL;
	size_t				 i;
	char				*out;

	for (i = 0; i < sizeof(auth_schemes) / sizeof(auth_schemes[0]); i++)
		if (strcasecmp(auth_schemes[i].name, scheme) == 0)
			def = &auth_schemes[i];
	if (def == NULL) {
		snprintf(err, errlen, "unknown scheme '%.40s'", scheme);
		return NULL;
	}
	if (def->scheme == SCHEME_ARGON2I || def->scheme == SCHEME_ARGON2ID)
		return hash_argon2(def, rounds, password, err, errlen);
	if (def->scheme == SCHEME_PLAIN || def->md != NULL) {
		if (rounds != 0) {
			snprintf(err, errlen, "%s takes no rounds", def->name);
			return NULL;
		}
		if (def->md != NULL)
			return hash_digest(def, password, err, errlen);
		if (strpbrk(password, ":\r\n") != NULL) {
			snprintf(err, errlen, "PLAIN: a ':' or a line break "
			    "does not fit in the passwd-file");
			return NULL;
		}
		if ((out = scheme_join(def->name, password)) == NULL)
			snprintf(err, errlen, "out of memory");
		return out;
	}
	for (i = 0; i < sizeof(crypts) / sizeof(crypts[0]); i++)
		if (crypts[i].scheme == def->scheme)
			return hash_crypt(def, crypts[i].prefix, rounds,
			    password, err, errlen);
	snprintf(err, errlen, "%s: cannot hash", def->name);
	return NULL;
}

/* See auth.h. The salt comes from the OS RNG through crypt_gensalt_rn(). */
char *
auth_password_hash(const char *password)
{
	char err[128];

	if (password == NULL)
		return NULL;
	return auth_password_hash_scheme("SHA512-CRYPT", 0, password, err,
	    sizeof(err));
}
