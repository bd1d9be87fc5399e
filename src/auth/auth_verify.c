/*
 * auth_verify: a user as a user database has it (struct auth_rec: the
 * passwd-file's lookup, the SQL database's or its cache's), and the
 * check of a login against its stored password.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"

#define APOP_DIGEST_LEN	16	/* MD5 */

static char *
auth_strdup0(const char *s)
{
	return strdup(s != NULL ? s : "");
}

/* See auth.h. */
int
auth_rec_copy(struct auth_rec *dst, const struct auth_rec *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->uid = src->uid;
	dst->gid = src->gid;
	if ((dst->password = auth_strdup0(src->password)) == NULL ||
	    (dst->name = auth_strdup0(src->name)) == NULL ||
	    (dst->home = auth_strdup0(src->home)) == NULL ||
	    (dst->extra = auth_strdup0(src->extra)) == NULL) {
		auth_rec_clear(dst);
		return -1;
	}
	return 0;
}

/* See auth.h. */
void
auth_rec_clear(struct auth_rec *rec)
{
	auth_free_secret(rec->password);
	free(rec->name);
	free(rec->home);
	free(rec->extra);
	memset(rec, 0, sizeof(*rec));
	rec->uid = (uid_t)-1;
	rec->gid = (gid_t)-1;
}

/* RFC 1939 section 7: MD5(timestamp || secret). 0 or -1. */
static int
auth_apop_digest(const char *timestamp, const char *secret, unsigned char *out)
{
	EVP_MD_CTX	*ctx;
	unsigned int	 len = 0;
	int		 ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, &len) == 1 &&
	    len == APOP_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* See auth.h. */
enum auth_result
auth_verify_stored(const char *stored, const char *standin,
    const char *timestamp, const char *secret, enum auth_fail *fail_r)
{
	unsigned char	 want[APOP_DIGEST_LEN], got[APOP_DIGEST_LEN];
	bool		 usable, match;
	int		 r;

	*fail_r = AUTH_FAIL_USER;
	if (timestamp == NULL) {
		/* An unknown user, or an unusable entry, costs a stand-in
		 * check whose result is discarded. */
		r = auth_password_verify(stored != NULL ? stored : standin,
		    secret);
		if (stored != NULL && r == -1)
			(void)auth_password_verify(standin, secret);
		if (stored != NULL && r == 1)
			return AUTH_OK;
		if (stored != NULL)
			*fail_r = r == -1 ? AUTH_FAIL_ENTRY :
			    AUTH_FAIL_PASSWORD;
		return AUTH_FAIL;
	}

	/* APOP: a {PLAIN} password only; others hash the stand-in. */
	usable = stored != NULL && strncasecmp(stored, "{PLAIN}", 7) == 0;
	if (stored != NULL)
		*fail_r = usable ? AUTH_FAIL_PASSWORD : AUTH_FAIL_ENTRY;
	if (auth_apop_digest(timestamp, usable ? stored + 7 : standin,
	    want) == -1)
		return AUTH_TEMPFAIL;
	match = auth_hex_decode(secret, strlen(secret), got, sizeof(got)) ==
	    (int)sizeof(got) && CRYPTO_memcmp(want, got, sizeof(want)) == 0;
	auth_wipe(want, sizeof(want));
	auth_wipe(got, sizeof(got));
	return usable && match ? AUTH_OK : AUTH_FAIL;
}
