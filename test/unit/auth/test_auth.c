/*
 * test_auth: password schemes (auth_password_*) and the passwd-file
 * database (auth_db_*): parsing, reload, APOP and concurrent use.
 *
 * Every file lives in a mkdtemp() directory removed at the end. Hashes are
 * made here with libxcrypt, except one fixed SHA512-CRYPT vector from
 * `openssl passwd -6 -salt saltsalt secret`.
 */
#include <sys/stat.h>

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "lib/evpop3d.h"

#define SHA512_VECTOR	"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1" \
			"E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"

/* RFC 1939 section 7 example */
#define APOP_TS		"<1896.697170952@dbc.mtview.ca.us>"
#define APOP_SECRET	"tanstaaf"
#define APOP_DIGEST	"c4c9334bac560ecc979e58001b3e22fb"

static char	 tmpdir[64];
static char	 pwpath[128];

/* --- helpers --- */

/*
 * A login's check as a login job does it (pop3/authz.c login_work):
 * auth_db_lookup(), auth_verify_stored() against the entry or the
 * stand-in, the unusable-entry warning; the user's fields into *info_r
 * on AUTH_OK, info_r->fail on AUTH_FAIL.
 */
static enum auth_result
db_verify(struct auth_db *db, const char *user, const char *timestamp,
    const char *secret, struct auth_userinfo *info_r)
{
	struct auth_rec		 rec;
	enum auth_result	 res;
	char			*standin;
	bool			 found;

	info_r->fail = AUTH_FAIL_USER;
	if (db == NULL)
		return AUTH_TEMPFAIL;
	if (user == NULL || secret == NULL)
		return AUTH_FAIL;
	if ((res = auth_db_lookup(db, user, &rec, &found, &standin)) !=
	    AUTH_OK)
		return res;
	res = auth_verify_stored(found ? rec.password : NULL, standin,
	    timestamp, secret, &info_r->fail);
	if (res == AUTH_FAIL && info_r->fail == AUTH_FAIL_ENTRY &&
	    timestamp == NULL)
		auth_db_warn_unusable(db, user);
	if (res == AUTH_OK) {
		snprintf(info_r->name, sizeof(info_r->name), "%s", rec.name);
		snprintf(info_r->home, sizeof(info_r->home), "%s", rec.home);
		snprintf(info_r->extra, sizeof(info_r->extra), "%s",
		    rec.extra);
		info_r->uid = rec.uid;
		info_r->gid = rec.gid;
	}
	auth_rec_clear(&rec);
	if (standin != NULL) {
		auth_wipe(standin, strlen(standin));
		free(standin);
	}
	return res;
}

/* USER/PASS: password for user. */
static enum auth_result
verify_plain(struct auth_db *db, const char *user, const char *password,
    struct auth_userinfo *info_r)
{
	return db_verify(db, user, NULL, password, info_r);
}

/* APOP: digest for user under timestamp. */
static enum auth_result
verify_apop(struct auth_db *db, const char *user, const char *timestamp,
    const char *digest, struct auth_userinfo *info_r)
{
	if (timestamp == NULL) {
		info_r->fail = AUTH_FAIL_USER;
		return db == NULL ? AUTH_TEMPFAIL : AUTH_FAIL;
	}
	return db_verify(db, user, timestamp, digest, info_r);
}

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_auth.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(pwpath, sizeof(pwpath), "%s/passwd", tmpdir);
	return 0;
}

static int
teardown_dir(void **state)
{
	DIR		*d;
	struct dirent	*de;
	char		 p[512];

	(void)state;
	if ((d = opendir(tmpdir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(tmpdir);
}

/*
 * Replace path with len bytes of data: write a new file and rename() it
 * over the old one, so the inode (and thus the db's file key) changes.
 */
static void
write_file_len(const char *path, const char *data, size_t len)
{
	char	 tmp[256];
	FILE	*fp;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void
write_file(const char *path, const char *data)
{
	write_file_len(path, data, strlen(data));
}

/* crypt(3) hash of pw with a fresh salt for prefix, or NULL if disabled. */
static char *
make_crypt(const char *prefix, unsigned long count, const char *pw)
{
	struct crypt_data	*cd;
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char		*res;
	char			*out = NULL;

	cd = calloc(1, sizeof(*cd));
	assert_non_null(cd);
	if (crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof(salt)) ==
	    NULL)
		goto done;
	res = crypt_rn(pw, salt, cd, sizeof(*cd));
	if (res != NULL && res[0] != '*')
		out = strdup(res);
 done:
	free(cd);
	return out;
}

/* "{SCHEME}" + hash, malloc'd. */
static char *
with_scheme(const char *scheme, const char *hash)
{
	char	*s;

	assert_true(asprintf(&s, "{%s}%s", scheme, hash) > 0);
	return s;
}

static double
now_sec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This thread's CPU time: immune to other load on the host. */
static double
cpu_sec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Send stderr (where log.c writes) to a file while a test runs. */
struct capture {
	int	 saved;
	char	 path[256];
};

static void
capture_start(struct capture *c)
{
	int	 fd;

	snprintf(c->path, sizeof(c->path), "%s/stderr.log", tmpdir);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved != -1);
	fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	close(fd);
}

/* Returns what was logged, malloc'd. */
static char *
capture_end(struct capture *c)
{
	FILE	*fp;
	char	*buf;
	long	 n;

	fflush(stderr);
	assert_true(dup2(c->saved, STDERR_FILENO) != -1);
	close(c->saved);
	fp = fopen(c->path, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	unlink(c->path);
	return buf;
}

static struct auth_db *
open_ok(const char *content)
{
	struct auth_db	*db = NULL;
	char		 err[512] = "";

	write_file(pwpath, content);
	if (auth_db_open(pwpath, 0, &db, err, sizeof(err)) != 0)
		fail_msg("auth_db_open: %s", err);
	assert_non_null(db);
	return db;
}

/* --- schemes --- */

static void
test_plain(void **state)
{
	(void)state;
	assert_int_equal(auth_password_verify("{PLAIN}secret", "secret"), 1);
	assert_int_equal(auth_password_verify("{plain}secret", "secret"), 1);
	assert_int_equal(auth_password_verify("{Plain}secret", "secret"), 1);
	assert_int_equal(auth_password_verify("{PLAIN}secret", "Secret"), 0);
	assert_int_equal(auth_password_verify("{PLAIN}secret", "secret "),
	    0);
	assert_int_equal(auth_password_verify("{PLAIN}secret", "secre"), 0);
	assert_int_equal(auth_password_verify("{PLAIN}secret", ""), 0);
	assert_int_equal(auth_password_verify("{PLAIN}a b:c}d{",
	    "a b:c}d{"), 1);
	assert_int_equal(auth_password_verify("{PLAIN}a b:c}d{",
	    "a b:c}d"), 0);
	/* The stored password is read cyclically: repeats of it differ. */
	assert_int_equal(auth_password_verify("{PLAIN}secret",
	    "secretsecret"), 0);
	assert_int_equal(auth_password_verify("{PLAIN}ab", "aba"), 0);
	assert_int_equal(auth_password_verify("{PLAIN}a", "aaaa"), 0);
	assert_int_equal(auth_password_verify("{PLAIN}a", "a"), 1);
	assert_int_equal(auth_password_verify("{PLAIN}", ""), 1);
	assert_int_equal(auth_password_verify("{PLAIN}", "x"), 0);
	assert_int_equal(auth_password_verify("{PLAIN}\xc3\xa9t\xc3\xa9",
	    "\xc3\xa9t\xc3\xa9"), 1);
	assert_int_equal(auth_password_verify("{PLAIN}\xc3\xa9t\xc3\xa9",
	    "\xc3\xa9t\xc3\xa8"), 0);
}

static void
test_sha512_vector(void **state)
{
	(void)state;
	assert_int_equal(auth_password_verify("{SHA512-CRYPT}" SHA512_VECTOR,
	    "secret"), 1);
	assert_int_equal(auth_password_verify("{sha512-crypt}" SHA512_VECTOR,
	    "secret"), 1);
	assert_int_equal(auth_password_verify("{CRYPT}" SHA512_VECTOR,
	    "secret"), 1);
	/* bare hash = {CRYPT} */
	assert_int_equal(auth_password_verify(SHA512_VECTOR, "secret"), 1);
	assert_int_equal(auth_password_verify("{SHA512-CRYPT}" SHA512_VECTOR,
	    "Secret"), 0);
	assert_int_equal(auth_password_verify("{SHA512-CRYPT}" SHA512_VECTOR,
	    "secret\n"), 0);
	assert_int_equal(auth_password_verify("{SHA512-CRYPT}" SHA512_VECTOR,
	    ""), 0);
	/* a damaged hash is a mismatch, whatever the password */
	assert_int_equal(auth_password_verify("{SHA512-CRYPT}$6$saltsalt$"
	    "TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQ"
	    "SpT0Y77vwPZN.Pq.H91p5hVO2", "secret"), 0);
	assert_int_equal(auth_password_verify("{SHA512-CRYPT}$6$saltsalt$"
	    "TVLlQ", "secret"), 0);
}

struct scheme_case {
	const char	*scheme;	/* scheme name used in the file */
	const char	*prefix;	/* crypt_gensalt prefix */
	unsigned long	 count;
};

static void
test_crypt_schemes(void **state)
{
	static const struct scheme_case cases[] = {
		{ "SHA256-CRYPT",	"$5$",	0 },
		{ "SHA512-CRYPT",	"$6$",	0 },
		{ "BLF-CRYPT",		"$2b$",	4 },
		{ "BLF-CRYPT",		"$2a$",	4 },
		{ "BLF-CRYPT",		"$2y$",	4 },
		{ "MD5-CRYPT",		"$1$",	0 },
		{ "CRYPT",		"$6$",	0 },
		{ "CRYPT",		"$5$",	0 },
		{ "CRYPT",		"$2b$",	4 },
		{ "CRYPT",		"$1$",	0 },
	};
	static const char *const pws[] = {
		"secret", "with space", "col:on:s", " lead and trail ", "x",
	};
	size_t	 i, j;
	char	*h, *st;
	int	 ran = 0;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (j = 0; j < sizeof(pws) / sizeof(pws[0]); j++) {
			h = make_crypt(cases[i].prefix, cases[i].count, pws[j]);
			if (h == NULL) {
				print_message("note: %s disabled in libxcrypt\n",
				    cases[i].prefix);
				break;
			}
			st = with_scheme(cases[i].scheme, h);
			if (auth_password_verify(st, pws[j]) != 1)
				fail_msg("%s: right password refused", st);
			if (auth_password_verify(st, "wrong") != 0)
				fail_msg("%s: wrong password accepted", st);
			/* one character more or less */
			if (auth_password_verify(st, pws[j] + 1) != 0)
				fail_msg("%s: suffix accepted", st);
			free(st);
			free(h);
			ran++;
		}
	}
	/* SHA256/SHA512 at least are always there */
	assert_true(ran >= 10);
}

static void
test_des_crypt(void **state)
{
	struct crypt_data	*cd;
	const char		*res;
	char			*st;

	(void)state;
	cd = calloc(1, sizeof(*cd));
	assert_non_null(cd);
	res = crypt_rn("secret", "ab", cd, sizeof(*cd));
	if (res == NULL || res[0] == '*') {
		free(cd);
		skip();
	}
	assert_int_equal(strlen(res), 13);
	st = with_scheme("CRYPT", res);
	assert_int_equal(auth_password_verify(st, "secret"), 1);
	assert_int_equal(auth_password_verify(st, "secreT"), 0);
	assert_int_equal(auth_password_verify(res, "secret"), 1);
	free(st);
	free(cd);
}

/*
 * The digest schemes, against hashes made by Dovecot 2.3's
 * `doveadm pw -s SCHEME -p 'hunter 2'`.
 */
static void
test_digest_schemes(void **state)
{
	static const char *const good[] = {
	    "{SHA}vGlm2kXv9YeJhB79ewfbQf4WWMk=",
	    "{SHA1}vGlm2kXv9YeJhB79ewfbQf4WWMk=",
	    "{sha}vGlm2kXv9YeJhB79ewfbQf4WWMk=",
	    "{SHA256}MCdiyrPfCKWH0W7/sQY7JVkDNWsL1CWzMP7GW/Pnd9s=",
	    "{SHA512}i/ioEiYQfx6jh4DzK5BZG5g56Yy7EO4ybnbW+x7/UjFQ7lQFgfjCg6rd"
	    "FPkcfPmW61sVTvyfHaUE+gMwOLChjQ==",
	    "{SSHA}mjw8cSQzWK/gWBf1HSGqD5jQHEuihi6x",
	    "{SSHA256}++jnaPPpXOwzt9U05AgAMmiwTKLYpANMxgvgO7itx5J/wcWM",
	    "{SSHA512}/R0S5rwi9qSlhaPNdxr7Q+4OEd3Z9qqoNoEpTIvvivwUnhx/W/DcuW61"
	    "/1YI+yWsRU1qhmzhhW9sTJxZ+p92BETV25A=",
	    "{SHA256.HEX}302762cab3df08a587d16effb1063b255903356b0bd425b330fe"
	    "c65bf3e777db",
	    /* Dovecot reads an unsalted digest of hex length as hex */
	    "{SHA256}302762cab3df08a587d16effb1063b255903356b0bd425b330fec65b"
	    "f3e777db",
	    "{SSHA.HEX}7257f833593a0bcece9ac639849732b5a4891b5c4507db62",
	    "{SHA512.B64}i/ioEiYQfx6jh4DzK5BZG5g56Yy7EO4ybnbW+x7/UjFQ7lQFgfjC"
	    "g6rdFPkcfPmW61sVTvyfHaUE+gMwOLChjQ==",
	};
	static const char *const bad[] = {
	    "{SHA}vGlm2kXv9YeJhB79ewfbQf4WWM==",	/* 19 octets */
	    "{SHA}vGlm2kXv9YeJhB79ewfbQf4WWMk",		/* no padding */
	    "{SHA}vGlm2kXv9YeJhB79ewfbQf4W!Mk=",	/* not base64 */
	    "{SHA}",
	    "{SSHA}vGlm2kXv9YeJhB79ewfbQf4WWMk=",	/* no salt */
	    "{SHA256.HEX}302762cab3df08a587d16effb1063b255903356b0bd425b3"
	    "30fec65bf3e777dg",				/* not hex */
	    "{SHA256.HEX}30",
	    "{SHA256.XYZ}MCdiyrPfCKWH0W7/sQY7JVkDNWsL1CWzMP7GW/Pnd9s=",
	    "{PLAIN.HEX}68756e7465722032",		/* digests only */
	    "{SHA3}vGlm2kXv9YeJhB79ewfbQf4WWMk=",
	};
	char	cls[64];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(auth_password_verify(good[i], "hunter 2"), 1);
		assert_int_equal(auth_password_verify(good[i], "hunter 3"), 0);
		assert_int_equal(auth_password_verify(good[i], "hunter 22"), 0);
		assert_int_equal(auth_password_verify(good[i], ""), 0);
		assert_int_equal(auth_password_cost(good[i], cls, sizeof(cls)),
		    0);
		assert_true(strncmp(cls, "SHA", 3) == 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(auth_password_verify(bad[i], "hunter 2"), -1);
		/* unusable at load time too (auth_file names such users) */
		assert_int_equal(auth_password_cost(bad[i], cls, sizeof(cls)),
		    -1);
	}
	/* One cost class per digest, whatever the salt or encoding. */
	assert_int_equal(auth_password_cost(good[5], cls, sizeof(cls)), 0);
	assert_string_equal(cls, "SHA1");
	assert_int_equal(auth_password_cost(good[8], cls, sizeof(cls)), 0);
	assert_string_equal(cls, "SHA256");
}

/*
 * {ARGON2I} and {ARGON2ID} (libsodium): hashes made by Dovecot 2.3's
 * `doveadm pw -s SCHEME -p 'correct horse'` (its defaults), and cheap
 * ones with other parameters (2 and 4 lanes, 64 KiB) made by the
 * reference implementation (libargon2) and verified by doveadm.
 */
static void
test_argon2_schemes(void **state)
{
	static const struct {
		const char	*stored;
		const char	*cls;
	} good[] = {
	    { "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$Phd5lj6jxGT1jMxI8hYabA$"
	      "CV+WHXz7jdKR4NLEMQRpNEuqrTTqVAQ4uLLQ53ltwdw",
	      "$argon2i$v=19$m=32768,t=4,p=1" },
	    { "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	      "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	      "$argon2id$v=19$m=65536,t=3,p=1" },
	    { "{ARGON2ID}$argon2id$v=19$m=256,t=2,p=2$ZXZwb3AzZC1zYWx0LTE2Yg$"
	      "L/Y7D0Dq8fXmJkZSayszOQlEKZJOG/ZQ+SJgv7lNgYs",
	      "$argon2id$v=19$m=256,t=2,p=2" },
	    { "{argon2i}$argon2i$v=19$m=64,t=3,p=1$ZXZwb3AzZC1zYWx0LTE2Yg$"
	      "F3VCZuo04bOtZQeO3CPyK+MwYiq3FyHurmKjx/RHWX0",
	      "$argon2i$v=19$m=64,t=3,p=1" },
	    { "{ARGON2ID}$argon2id$v=19$m=64,t=1,p=4$ZXZwb3AzZC1zYWx0LTE2Yg$"
	      "AzvRR0AZdk/ThHXFCP9MOWAUW1bzVIXsSizFtKMyavM",
	      "$argon2id$v=19$m=64,t=1,p=4" },
	};
	/* Refused at load: malformed, or asking too much of each check. */
	static const char *const bad[] = {
	    /* the other variant's string under this scheme */
	    "{ARGON2I}$argon2id$v=19$m=256,t=2,p=2$ZXZwb3AzZC1zYWx0LTE2Yg$"
	    "L/Y7D0Dq8fXmJkZSayszOQlEKZJOG/ZQ+SJgv7lNgYs",
	    "{ARGON2ID}$argon2i$v=19$m=64,t=3,p=1$ZXZwb3AzZC1zYWx0LTE2Yg$"
	    "F3VCZuo04bOtZQeO3CPyK+MwYiq3FyHurmKjx/RHWX0",
	    "{ARGON2ID}$argon2d$v=19$m=64,t=1,p=1$ZXZwb3AzZC1zYWx0LTE2Yg$"
	    "AzvRR0AZdk/ThHXFCP9MOWAUW1bzVIXsSizFtKMyavM",
	    /* 2 GiB, 65 passes, 17 lanes, 0 of each, fewer than 8 KiB a lane */
	    "{ARGON2ID}$argon2id$v=19$m=2097152,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=65,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=17$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=0,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=0,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=0$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=31,t=1,p=4$ZXZwb3AzZC1zYWx0LTE2Yg$"
	    "AzvRR0AZdk/ThHXFCP9MOWAUW1bzVIXsSizFtKMyavM",
	    /* argon2i takes at least 3 passes in libsodium */
	    "{ARGON2I}$argon2i$v=19$m=64,t=2,p=1$ZXZwb3AzZC1zYWx0LTE2Yg$"
	    "F3VCZuo04bOtZQeO3CPyK+MwYiq3FyHurmKjx/RHWX0",
	    /* numbers: too long, leading zero, sign, missing */
	    "{ARGON2ID}$argon2id$v=19$m=00000065536,t=3,p=1$K1ye3XFPIzNNRR84HQ"
	    "H6zw$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=065536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=+65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    /* version 16, no version, order of fields */
	    "{ARGON2ID}$argon2id$v=16$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$t=3,m=65536,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	    /* salt or hash missing, cut, or not base64 */
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw$",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$$RAEhscv11SF4atK5oDZjB36A"
	    "72scX/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zw"
	    "$RAEhscv11SF4atK5oDZjB36A72sc!/4eOuSXm1zRG1Q",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1",
	    "{ARGON2ID}$argon2id$",
	    "{ARGON2ID}",
	    /* 128 characters or more: beyond libsodium's string buffer */
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$K1ye3XFPIzNNRR84HQH6zwK1"
	    "ye3XFPIzNNRR84HQH6zw$RAEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1QR"
	    "AEhscv11SF4atK5oDZjB36A72scX/4eOuSXm1zRG1Q",
	};
	char	cls[64];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(auth_password_verify(good[i].stored,
		    "correct horse"), 1);
		assert_int_equal(auth_password_verify(good[i].stored,
		    "correct horsf"), 0);
		assert_int_equal(auth_password_verify(good[i].stored, ""), 0);
		assert_int_equal(auth_password_cost(good[i].stored, cls,
		    sizeof(cls)), 0);
		assert_string_equal(cls, good[i].cls);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (auth_password_cost(bad[i], cls, sizeof(cls)) != -1)
			fail_msg("usable at load: %s", bad[i]);
		assert_int_equal(auth_password_verify(bad[i],
		    "correct horse"), -1);
	}
}

/*
 * `evpop3d hash -s ARGON2I|ARGON2ID [-r ROUNDS]` makes what Dovecot's
 * doveadm makes: the same parameters for the same rounds, and refuses
 * rounds out of range.
 */
static void
test_argon2_hash(void **state)
{
	static const struct {
		const char	*scheme;
		unsigned long	 rounds;
		const char	*prefix;
	} cases[] = {
	    { "ARGON2I",  0, "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$" },
	    { "ARGON2I",  3, "{ARGON2I}$argon2i$v=19$m=32768,t=3,p=1$" },
	    { "argon2id", 0, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$" },
	    { "ARGON2ID", 1, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$" },
	};
	char	err[128], cls[64], *h;
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		h = auth_password_hash_scheme(cases[i].scheme, cases[i].rounds,
		    "pw: x", err, sizeof(err));
		if (h == NULL)
			fail_msg("%s: %s", cases[i].scheme, err);
		if (strncmp(h, cases[i].prefix, strlen(cases[i].prefix)) != 0)
			fail_msg("%s -r %lu: %s", cases[i].scheme,
			    cases[i].rounds, h);
		assert_int_equal(auth_password_verify(h, "pw: x"), 1);
		assert_int_equal(auth_password_verify(h, "pw: y"), 0);
		assert_int_equal(auth_password_cost(h, cls, sizeof(cls)), 0);
		free(h);
	}
	assert_null(auth_password_hash_scheme("ARGON2I", 2, "x", err,
	    sizeof(err)));
	assert_non_null(strstr(err, "rounds 2 out of range (3-64)"));
	assert_null(auth_password_hash_scheme("ARGON2ID", 65, "x", err,
	    sizeof(err)));
	assert_non_null(strstr(err, "rounds 65 out of range (1-64)"));
}

static void
test_scheme_mismatch(void **state)
{
	char	*h5, *h1, *st;

	(void)state;
	/* right password, but the data does not fit the scheme */
	assert_int_equal(auth_password_verify("{SHA256-CRYPT}" SHA512_VECTOR,
	    "secret"), -1);
	assert_int_equal(auth_password_verify("{BLF-CRYPT}" SHA512_VECTOR,
	    "secret"), -1);
	assert_int_equal(auth_password_verify("{MD5-CRYPT}" SHA512_VECTOR,
	    "secret"), -1);
	h5 = make_crypt("$5$", 0, "secret");
	assert_non_null(h5);
	st = with_scheme("SHA512-CRYPT", h5);
	assert_int_equal(auth_password_verify(st, "secret"), -1);
	free(st);
	st = with_scheme("SHA256-CRYPT", h5);
	assert_int_equal(auth_password_verify(st, "secret"), 1);
	free(st);
	free(h5);
	/* $2x$ is a real bcrypt variant, but not one we accept */
	assert_int_equal(auth_password_verify("{BLF-CRYPT}$2x$04$abcdefghijk"
	    "lmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW", "secret"), -1);
	assert_int_equal(auth_password_verify("{BLF-CRYPT}$2", "secret"), -1);
	assert_int_equal(auth_password_verify("{BLF-CRYPT}$", "secret"), -1);
	h1 = make_crypt("$1$", 0, "secret");
	if (h1 != NULL) {
		st = with_scheme("SHA512-CRYPT", h1);
		assert_int_equal(auth_password_verify(st, "secret"), -1);
		free(st);
		free(h1);
	}
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"",			/* bare and empty */
		"{CRYPT}",
		"{SHA512-CRYPT}",
		"{SHA256-CRYPT}",
		"{BLF-CRYPT}",
		"{MD5-CRYPT}",
		"{PLAIN",		/* no closing brace */
		"{",
		"{}secret",		/* empty scheme */
		"{FOO}secret",		/* unknown */
		"{SSHA}secret",
		"{PLAIN }secret",
		"{SHA512CRYPT}" SHA512_VECTOR,
		"*",			/* locked account markers */
		"*LK*",
		"!",
		"{CRYPT}!",
		"{CRYPT}$9$nonsense",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (auth_password_verify(bad[i], "secret") != -1)
			fail_msg("\"%s\" not refused as malformed", bad[i]);
	}
	assert_int_equal(auth_password_verify(NULL, "secret"), -1);
	assert_int_equal(auth_password_verify("{PLAIN}x", NULL), -1);
}

static void
test_hash_roundtrip(void **state)
{
	const char	*pw = "pass word:with colon";
	char		*h1, *h2, *s1, *s2;

	(void)state;
	h1 = auth_password_hash(pw);
	h2 = auth_password_hash(pw);
	assert_non_null(h1);
	assert_non_null(h2);
	assert_int_equal(strncmp(h1, "{SHA512-CRYPT}$6$", 17), 0);
	assert_int_equal(strncmp(h2, "{SHA512-CRYPT}$6$", 17), 0);
	assert_int_equal(auth_password_verify(h1, pw), 1);
	assert_int_equal(auth_password_verify(h2, pw), 1);
	assert_int_equal(auth_password_verify(h1, "pass word"), 0);
	assert_int_equal(auth_password_verify(h1, ""), 0);

	/* different salts: "$6$salt$hash" */
	s1 = strchr(h1 + 17, '$');
	s2 = strchr(h2 + 17, '$');
	assert_non_null(s1);
	assert_non_null(s2);
	assert_true(s1 - h1 > 17 + 8);		/* a real salt */
	assert_false(s1 - h1 == s2 - h2 &&
	    memcmp(h1, h2, (size_t)(s1 - h1)) == 0);
	assert_string_not_equal(h1, h2);
	free(h1);
	free(h2);

	h1 = auth_password_hash("");
	assert_non_null(h1);
	assert_int_equal(auth_password_verify(h1, ""), 1);
	assert_int_equal(auth_password_verify(h1, " "), 0);
	free(h1);
	assert_null(auth_password_hash(NULL));
}

static void
test_wipe(void **state)
{
	char	 buf[64];
	size_t	 i;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	auth_wipe(buf, 32);
	for (i = 0; i < 32; i++)
		assert_int_equal(buf[i], 0);
	for (; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 'x');
	auth_wipe(NULL, 0);
}

/* --- passwd-file --- */

static void
test_file_parse(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			*h, *content;

	(void)state;
	h = auth_password_hash("p:w d");
	assert_non_null(h);
	assert_true(asprintf(&content,
	    "# evpop3d users\n"
	    "\n"
	    "full:{PLAIN}fullpw:1001:1002:Full Name:/home/full:/bin/sh:"
	    "quota=10M mail=maildir:~/Maildir\n"
	    "   \t\n"
	    "   # indented comment\n"
	    "minimal:{PLAIN}minpw\n"
	    "crlf:{PLAIN}crlfpw:5:6::/home/crlf\r\n"
	    "\r\n"
	    "hashed:%s\n"
	    "noids:{PLAIN}x:::gecos:/home/noids::\n"
	    "bob@example.org:" SHA512_VECTOR "\n"
	    "zero:{PLAIN}z:0:0\n"
	    "last:{PLAIN}lastpw\n", h) > 0);
	db = open_ok(content);

	memset(&info, 0xa5, sizeof(info));
	assert_int_equal(verify_plain(db, "full", "fullpw", &info),
	    AUTH_OK);
	assert_string_equal(info.name, "full");
	assert_string_equal(info.home, "/home/full");
	assert_string_equal(info.extra, "quota=10M mail=maildir:~/Maildir");
	assert_int_equal(info.uid, 1001);
	assert_int_equal(info.gid, 1002);

	memset(&info, 0xa5, sizeof(info));
	assert_int_equal(verify_plain(db, "minimal", "minpw", &info),
	    AUTH_OK);
	assert_string_equal(info.name, "minimal");
	assert_string_equal(info.home, "");
	assert_string_equal(info.extra, "");
	assert_true(info.uid == (uid_t)-1);
	assert_true(info.gid == (gid_t)-1);

	assert_int_equal(verify_plain(db, "crlf", "crlfpw", &info),
	    AUTH_OK);
	assert_string_equal(info.home, "/home/crlf");
	assert_int_equal(info.uid, 5);
	assert_int_equal(info.gid, 6);
	/* the CR is not part of the password */
	assert_int_equal(verify_plain(db, "crlf", "crlfpw\r", &info),
	    AUTH_FAIL);

	assert_int_equal(verify_plain(db, "hashed", "p:w d", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "hashed", "p:w", &info),
	    AUTH_FAIL);

	assert_int_equal(verify_plain(db, "noids", "x", &info),
	    AUTH_OK);
	assert_true(info.uid == (uid_t)-1);
	assert_true(info.gid == (gid_t)-1);
	assert_string_equal(info.home, "/home/noids");
	assert_string_equal(info.extra, "");

	assert_int_equal(verify_plain(db, "bob@example.org", "secret",
	    &info), AUTH_OK);
	assert_string_equal(info.name, "bob@example.org");
	assert_int_equal(verify_plain(db, "zero", "z", &info),
	    AUTH_OK);
	assert_int_equal(info.uid, 0);
	assert_int_equal(info.gid, 0);
	assert_int_equal(verify_plain(db, "last", "lastpw", &info),
	    AUTH_OK);

	/* wrong passwords, unknown and case-different users */
	assert_int_equal(verify_plain(db, "full", "minpw", &info),
	    AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_PASSWORD);
	assert_string_equal(auth_fail_name(info.fail), "password-mismatch");
	assert_int_equal(verify_plain(db, "full", "", &info),
	    AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_PASSWORD);
	assert_int_equal(verify_plain(db, "Full", "fullpw", &info),
	    AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_USER);
	assert_int_equal(verify_plain(db, "nobody", "fullpw", &info),
	    AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_USER);
	assert_string_equal(auth_fail_name(info.fail), "unknown-user");
	assert_int_equal(verify_plain(db, "# evpop3d users", "x",
	    &info), AUTH_FAIL);
	assert_int_equal(verify_plain(db, "../full", "fullpw", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "", "fullpw", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "full", NULL, &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, NULL, "x", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(NULL, "full", "fullpw", &info),
	    AUTH_TEMPFAIL);

	auth_db_free(db);
	auth_db_free(NULL);
	free(content);
	free(h);
}

static void
test_file_limits(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			*content, *home, *extra;

	(void)state;
	/* the longest home and extra that fit struct auth_userinfo */
	home = malloc(sizeof(info.home));
	extra = malloc(sizeof(info.extra));
	assert_non_null(home);
	assert_non_null(extra);
	memset(home, 'h', sizeof(info.home) - 1);
	home[0] = '/';
	home[sizeof(info.home) - 1] = '\0';
	memset(extra, 'e', sizeof(info.extra) - 1);
	extra[sizeof(info.extra) - 1] = '\0';
	assert_true(asprintf(&content, "u:{PLAIN}p:1:2::%s::%s\n", home,
	    extra) > 0);
	db = open_ok(content);
	assert_int_equal(verify_plain(db, "u", "p", &info), AUTH_OK);
	assert_string_equal(info.home, home);
	assert_string_equal(info.extra, extra);
	auth_db_free(db);
	free(content);
	free(home);
	free(extra);
}

struct error_case {
	const char	*content;
	const char	*suffix;	/* expected err after the path */
};

static void
test_file_errors(void **state)
{
	static const struct error_case cases[] = {
		{ "a:{PLAIN}x\n# c\na:{PLAIN}y\n", ":3: duplicate user" },
		{ "a:{PLAIN}x\nb:{PLAIN}y\nc:{PLAIN}z\nb:{PLAIN}w\n",
		    ":4: duplicate user" },
		/* the first error in file order wins */
		{ "a:{PLAIN}x\na:{PLAIN}x\nb:{PLAIN}x:bad\n",
		    ":2: duplicate user" },
		{ "a:{PLAIN}x\nb:{PLAIN}x:bad\na:{PLAIN}x\n", ":2: invalid uid" },
		{ "b:{PLAIN}x\nz:{PLAIN}x\nb:{PLAIN}x\nz:{PLAIN}x\n",
		    ":3: duplicate user" },
		{ "ok:{PLAIN}x\nba/d:{PLAIN}x\n", ":2: invalid user name" },
		{ "ok:{PLAIN}x\n\n.hidden:{PLAIN}x\n", ":3: invalid user name" },
		{ ":{PLAIN}x\n", ":1: invalid user name" },
		{ "a b:{PLAIN}x\n", ":1: invalid user name" },
		{ "bob\n", ":1: missing password field" },
		{ "ok:{PLAIN}x\r\nbob:\r\n", ":2: missing password field" },
		{ "bob::1:1\n", ":1: missing password field" },
		{ "u:{PLAIN}x:12a\n", ":1: invalid uid" },
		{ "u:{PLAIN}x:-1\n", ":1: invalid uid" },
		{ "u:{PLAIN}x:+1\n", ":1: invalid uid" },
		{ "u:{PLAIN}x: 1\n", ":1: invalid uid" },
		{ "u:{PLAIN}x:4294967295\n", ":1: invalid uid" },
		{ "u:{PLAIN}x:99999999999999999999999\n", ":1: invalid uid" },
		{ "#\n#\nu:{PLAIN}x:1:x\n", ":3: invalid gid" },
	};
	struct auth_db	*db;
	char		 err[512], want[512];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(pwpath, cases[i].content);
		db = (struct auth_db *)0x1;
		memset(err, 0, sizeof(err));
		if (auth_db_open(pwpath, 0, &db, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted", i);
		assert_null(db);
		snprintf(want, sizeof(want), "%s%s", pwpath, cases[i].suffix);
		if (strcmp(err, want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err,
			    want);
	}
}

static void
test_file_errors_long(void **state)
{
	struct auth_userinfo	 info;
	struct auth_db		*db = NULL;
	char			 err[512], want[512], *content, *longf;
	size_t			 n;

	(void)state;
	/* home one byte too long */
	n = sizeof(info.home);
	longf = malloc(n + 1);
	assert_non_null(longf);
	memset(longf, 'h', n);
	longf[n] = '\0';
	assert_true(asprintf(&content, "ok:{PLAIN}x\nu:{PLAIN}x:1:1::%s\n",
	    longf) > 0);
	write_file(pwpath, content);
	assert_int_equal(auth_db_open(pwpath, 0, &db, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: home too long", pwpath);
	assert_string_equal(err, want);
	free(content);
	free(longf);

	/* extra one byte too long */
	n = sizeof(info.extra);
	longf = malloc(n + 1);
	assert_non_null(longf);
	memset(longf, 'e', n);
	longf[n] = '\0';
	assert_true(asprintf(&content, "u:{PLAIN}x:1:1::/h::%s\n", longf) >
	    0);
	write_file(pwpath, content);
	assert_int_equal(auth_db_open(pwpath, 0, &db, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: extra field too long", pwpath);
	assert_string_equal(err, want);
	free(content);
	free(longf);

	/* user name of 256 octets */
	longf = malloc(POP3_USER_MAX + 2);
	assert_non_null(longf);
	memset(longf, 'u', POP3_USER_MAX + 1);
	longf[POP3_USER_MAX + 1] = '\0';
	assert_true(asprintf(&content, "%s:{PLAIN}x\n", longf) > 0);
	write_file(pwpath, content);
	assert_int_equal(auth_db_open(pwpath, 0, &db, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: invalid user name", pwpath);
	assert_string_equal(err, want);
	free(content);
	free(longf);

	/* a NUL byte would silently hide the rest of the file */
	write_file_len(pwpath, "a:{PLAIN}x\nb:{PLAIN}\0y\n", 23);
	assert_int_equal(auth_db_open(pwpath, 0, &db, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", pwpath);
	assert_string_equal(err, want);

	/* no file at all */
	snprintf(want, sizeof(want), "%s/nonexistent", tmpdir);
	assert_int_equal(auth_db_open(want, 0, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	assert_null(db);

	/* a directory is not a passwd-file */
	assert_int_equal(auth_db_open(tmpdir, 0, &db, err, sizeof(err)), -1);
	assert_null(db);
}

/*
 * A file without users would lock everyone out: it does not open, unless
 * the operator allows it.
 */
static void
test_file_empty(void **state)
{
	static const char *const empty[] = { "", "# only comments\n\n" };
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			 err[512], want[512];
	size_t			 i;

	(void)state;
	snprintf(want, sizeof(want), "%s: no users (everyone would be locked "
	    "out); set [auth] allow_shrink = yes to start anyway", pwpath);
	for (i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		write_file(pwpath, empty[i]);
		db = (struct auth_db *)0x1;
		assert_int_equal(auth_db_open(pwpath, 0, &db, err,
		    sizeof(err)), -1);
		assert_null(db);
		assert_string_equal(err, want);

		db = NULL;
		if (auth_db_open(pwpath, AUTH_DB_ALLOW_SHRINK, &db, err,
		    sizeof(err)) != 0)
			fail_msg("allow_shrink: %s", err);
		assert_int_equal(verify_plain(db, "a", "x", &info),
		    AUTH_FAIL);
		/* users come later */
		write_file(pwpath, "a:{PLAIN}x\n");
		assert_int_equal(verify_plain(db, "a", "x", &info),
		    AUTH_OK);
		auth_db_free(db);
	}
}

/* A last line without a newline: being written, or cut; never loaded. */
static void
test_file_partial_open(void **state)
{
	static const char *const cut[] = {
		"a:{PLAIN}x\nb:{PLAIN}y",
		"a:{PLAIN}x\nb:{PLAIN}y:1:1::/home/b",
		"a:{PLAIN}x\r\nb:{PLAIN}y\r",
		"a:{PLAIN}x\n# a comment",
		"a",
	};
	struct auth_db	*db;
	char		 err[512], want[512];
	size_t		 i;

	(void)state;
	snprintf(want, sizeof(want), "%s: the last line has no newline: the "
	    "file is being written, or was cut short (every line must end "
	    "with a newline, the last one too)", pwpath);
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		write_file(pwpath, cut[i]);
		db = (struct auth_db *)0x1;
		if (auth_db_open(pwpath, AUTH_DB_ALLOW_SHRINK, &db, err,
		    sizeof(err)) != -1)
			fail_msg("case %zu accepted", i);
		assert_null(db);
		assert_string_equal(err, want);
	}
}

static void
test_file_big(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			*buf, *p, name[32], err[512];
	size_t			 i, n = 100000;
	double			 t0;

	(void)state;
	buf = malloc(n * 48);
	assert_non_null(buf);
	p = buf;
	/* descending order, so the loader really has to sort */
	for (i = n; i > 0; i--)
		p += sprintf(p, "user%zu:{PLAIN}pw%zu:%zu:100\n", i, i, i);
	write_file_len(pwpath, buf, (size_t)(p - buf));
	free(buf);

	t0 = now_sec();
	db = NULL;
	if (auth_db_open(pwpath, 0, &db, err, sizeof(err)) != 0)
		fail_msg("auth_db_open: %s", err);
	for (i = 1; i <= n; i += 997) {
		char	 pw[32];

		snprintf(name, sizeof(name), "user%zu", i);
		snprintf(pw, sizeof(pw), "pw%zu", i);
		assert_int_equal(verify_plain(db, name, pw, &info),
		    AUTH_OK);
		assert_int_equal(info.uid, i);
		snprintf(pw, sizeof(pw), "pw%zu", i + 1);
		assert_int_equal(verify_plain(db, name, pw, &info),
		    AUTH_FAIL);
	}
	assert_int_equal(verify_plain(db, "user100000", "pw100000",
	    &info), AUTH_OK);
	assert_int_equal(verify_plain(db, "user1", "pw1", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "user0", "pw0", &info),
	    AUTH_FAIL);
	print_message("100000 users: open + 200 lookups in %.3f s\n",
	    now_sec() - t0);
	auth_db_free(db);
}

/* --- reload --- */

static void
test_reload(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct stat		 st1, st2;

	(void)state;
	db = open_ok("u:{PLAIN}one:1:1::/home/one\n");
	assert_int_equal(verify_plain(db, "u", "one", &info),
	    AUTH_OK);
	assert_string_equal(info.home, "/home/one");
	assert_int_equal(verify_plain(db, "v", "vee", &info),
	    AUTH_FAIL);

	assert_int_equal(stat(pwpath, &st1), 0);
	write_file(pwpath, "u:{PLAIN}two:2:2::/home/two2\nv:{PLAIN}vee\n");
	assert_int_equal(stat(pwpath, &st2), 0);
	assert_true(st1.st_ino != st2.st_ino || st1.st_size != st2.st_size);

	assert_int_equal(verify_plain(db, "u", "one", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "u", "two", &info),
	    AUTH_OK);
	assert_string_equal(info.home, "/home/two2");
	assert_int_equal(info.uid, 2);
	assert_int_equal(verify_plain(db, "v", "vee", &info),
	    AUTH_OK);

	/* a user removed from the file goes away */
	write_file(pwpath, "v:{PLAIN}vee\n");
	assert_int_equal(verify_plain(db, "u", "two", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "v", "vee", &info),
	    AUTH_OK);

	/* APOP sees reloads too */
	write_file(pwpath, "mrose:{PLAIN}" APOP_SECRET "\n");
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    APOP_DIGEST, &info), AUTH_OK);
	auth_db_free(db);
}

static void
test_reload_broken(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct capture		 cap;
	char			*log, want[256];

	(void)state;
	db = open_ok("u:{PLAIN}good-pw:1:1::/home/u\n");
	assert_int_equal(verify_plain(db, "u", "good-pw", &info),
	    AUTH_OK);

	/* a half-edited file: the old table stays, the reason is logged */
	capture_start(&cap);
	write_file(pwpath, "u:{PLAIN}new-pw:1:1::/home/u\nu:{PLAIN}dup-pw\n");
	assert_int_equal(verify_plain(db, "u", "good-pw", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "u", "new-pw", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "u", "dup-pw", &info),
	    AUTH_FAIL);
	log = capture_end(&cap);
	snprintf(want, sizeof(want), "%s:2: duplicate user", pwpath);
	if (strstr(log, want) == NULL)
		fail_msg("log lacks \"%s\": \"%s\"", want, log);
	assert_null(strstr(log, "good-pw"));
	assert_null(strstr(log, "new-pw"));
	assert_null(strstr(log, "dup-pw"));
	/* reported once, not at every verify */
	assert_ptr_equal(strstr(strstr(log, want) + 1, want), NULL);
	free(log);

	/* the file disappears: still the old table */
	capture_start(&cap);
	assert_int_equal(unlink(pwpath), 0);
	assert_int_equal(verify_plain(db, "u", "good-pw", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "u", "good-pw", &info),
	    AUTH_OK);
	log = capture_end(&cap);
	assert_non_null(strstr(log, pwpath));
	assert_null(strstr(log, "good-pw"));
	free(log);

	/* fixed: the new version is used */
	capture_start(&cap);
	write_file(pwpath, "u:{PLAIN}fixed-pw:1:1::/home/fixed\n");
	assert_int_equal(verify_plain(db, "u", "good-pw", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "u", "fixed-pw", &info),
	    AUTH_OK);
	assert_string_equal(info.home, "/home/fixed");
	log = capture_end(&cap);
	assert_null(strstr(log, "fixed-pw"));
	free(log);

	/* broken again with a bad uid, then the same content fixed */
	capture_start(&cap);
	write_file(pwpath, "u:{PLAIN}x:nope\n");
	assert_int_equal(verify_plain(db, "u", "fixed-pw", &info),
	    AUTH_OK);
	log = capture_end(&cap);
	snprintf(want, sizeof(want), "%s:1: invalid uid", pwpath);
	assert_non_null(strstr(log, want));
	free(log);
	auth_db_free(db);
}

/* How many times needle occurs in hay. */
static size_t
count_str(const char *hay, const char *needle)
{
	size_t	 n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/*
 * A reload that finds the file cut mid-line (a writer that has not
 * finished) keeps the old table, whatever the cut, and loads the file
 * once it is complete.
 */
static void
test_reload_partial(void **state)
{
	static const char old_v[] =
	    "u:{PLAIN}old-pw:1:1::/home/old\nv:{PLAIN}vee:2:2::/home/v\n";
	static const char new_v[] =
	    "v:{PLAIN}vee:2:2::/home/v\n"
	    "u:{PLAIN}new-password:1:1::/home/u-new\n";
	static const char *const cuts[] = {
		"new-pa",		/* inside the {PLAIN} password */
		"/home/u-n",		/* inside the home field */
		"/home/u-new",		/* at the end of the last field */
	};
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct capture		 cap;
	char			*log, want[512];
	const char		*at;
	size_t			 i, len;

	(void)state;
	snprintf(want, sizeof(want), "passwd-file reload postponed: %s: the "
	    "last line has no newline", pwpath);
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		db = open_ok(old_v);
		at = strstr(new_v, cuts[i]);
		assert_non_null(at);
		len = (size_t)(at - new_v) + strlen(cuts[i]);

		capture_start(&cap);
		write_file_len(pwpath, new_v, len);
		assert_int_equal(verify_plain(db, "u", "old-pw",
		    &info), AUTH_OK);
		assert_string_equal(info.home, "/home/old");
		assert_int_equal(verify_plain(db, "u", "new-pa",
		    &info), AUTH_FAIL);
		assert_int_equal(verify_plain(db, "u", "new-password",
		    &info), AUTH_FAIL);
		assert_int_equal(verify_plain(db, "v", "vee", &info),
		    AUTH_OK);
		log = capture_end(&cap);
		/* logged once for this version, without secrets */
		if (count_str(log, want) != 1)
			fail_msg("cut %zu: want one \"%s\" in \"%s\"", i,
			    want, log);
		assert_null(strstr(log, "new-pa"));
		free(log);

		/* completed: loaded at the next verify */
		write_file(pwpath, new_v);
		assert_int_equal(verify_plain(db, "u", "new-password",
		    &info), AUTH_OK);
		assert_string_equal(info.home, "/home/u-new");
		assert_int_equal(verify_plain(db, "u", "old-pw",
		    &info), AUTH_FAIL);
		auth_db_free(db);
	}
}

/*
 * A writer may finish without changing (dev, inode, size, mtime): an
 * unfinished version is read again a second later, though it is
 * reported only once. Here the last byte becomes the newline in place and
 * the mtime is put back. The sleep only makes sure that a second has
 * passed; nothing depends on how much longer it takes.
 */
static void
test_reload_partial_retry(void **state)
{
	static const char new_v[] = "u:{PLAIN}new-pw:1:1::/home/new\n";
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct capture		 cap;
	struct stat		 st1, st2;
	struct timespec		 times[2];
	struct timespec		 pause = { 1, 100 * 1000 * 1000 };
	char			*log, *buf;
	size_t			 len = strlen(new_v);
	int			 fd;

	(void)state;
	db = open_ok("u:{PLAIN}old-pw:1:1::/home/old\n");
	buf = strdup(new_v);
	assert_non_null(buf);
	buf[len - 1] = 'w';		/* "...:/home/neww", no newline */
	capture_start(&cap);
	write_file_len(pwpath, buf, len);
	assert_int_equal(stat(pwpath, &st1), 0);
	assert_int_equal(verify_plain(db, "u", "old-pw", &info),
	    AUTH_OK);
	nanosleep(&pause, NULL);
	/* retried, still unfinished: not logged again */
	assert_int_equal(verify_plain(db, "u", "old-pw", &info),
	    AUTH_OK);

	fd = open(pwpath, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "\n", 1, (off_t)len - 1), 1);
	times[0] = st1.st_atim;
	times[1] = st1.st_mtim;
	assert_int_equal(futimens(fd, times), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(stat(pwpath, &st2), 0);
	assert_true(st1.st_ino == st2.st_ino && st1.st_size == st2.st_size &&
	    st1.st_mtim.tv_sec == st2.st_mtim.tv_sec &&
	    st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec);

	nanosleep(&pause, NULL);
	assert_int_equal(verify_plain(db, "u", "new-pw", &info),
	    AUTH_OK);
	assert_string_equal(info.home, "/home/new");
	log = capture_end(&cap);
	if (count_str(log, "reload postponed") != 1)
		fail_msg("want one \"reload postponed\" in \"%s\"", log);
	free(log);
	free(buf);
	auth_db_free(db);
}

/* "uNN:{PLAIN}pwNN\n" for NN in [from, to), malloc'd. */
static char *
users_file(int from, int to)
{
	char	*buf, *p;
	int	 i;

	buf = malloc((size_t)(to - from) * 32 + 1);
	assert_non_null(buf);
	p = buf;
	*p = '\0';
	for (i = from; i < to; i++)
		p += sprintf(p, "u%02d:{PLAIN}pw%02d\n", i, i);
	return buf;
}

/*
 * A reload that would leave no users, or lose more than half of them, is
 * refused with an error line (once per version) and the old table stays;
 * losing fewer is a normal reload. AUTH_DB_ALLOW_SHRINK lets it through.
 */
static void
test_reload_shrink(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct capture		 cap;
	char			*ten, *four, *six, *three, *log;
	int			 allow;

	(void)state;
	ten = users_file(0, 10);
	four = users_file(0, 4);
	six = users_file(4, 10);
	three = users_file(4, 7);

	db = open_ok(ten);
	capture_start(&cap);
	write_file(pwpath, "");
	assert_int_equal(verify_plain(db, "u09", "pw09", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "u00", "pw00", &info),
	    AUTH_OK);
	write_file(pwpath, "# nobody\n");
	assert_int_equal(verify_plain(db, "u00", "pw00", &info),
	    AUTH_OK);
	write_file(pwpath, four);	/* 6 of 10 gone */
	assert_int_equal(verify_plain(db, "u09", "pw09", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "u00", "pw00", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "u03", "pw03", &info),
	    AUTH_OK);
	log = capture_end(&cap);
	if (count_str(log, "error passwd-file ") != 3 ||
	    count_str(log, ": reload refused: 0 users instead of 10") != 2 ||
	    count_str(log, ": reload refused: 4 users instead of 10") != 1 ||
	    count_str(log, "allow_shrink") != 3)
		fail_msg("unexpected log: \"%s\"", log);
	free(log);

	/* 4 of 10 gone: a reload */
	write_file(pwpath, six);
	assert_int_equal(verify_plain(db, "u00", "pw00", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "u09", "pw09", &info),
	    AUTH_OK);
	/* then exactly half of 6 gone: still a reload */
	write_file(pwpath, three);
	assert_int_equal(verify_plain(db, "u09", "pw09", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "u06", "pw06", &info),
	    AUTH_OK);
	auth_db_free(db);

	/* allowed: every shrink loads */
	for (allow = 0; allow < 2; allow++) {
		char	 err[512];

		write_file(pwpath, ten);
		db = NULL;
		if (auth_db_open(pwpath, AUTH_DB_ALLOW_SHRINK, &db, err,
		    sizeof(err)) != 0)
			fail_msg("auth_db_open: %s", err);
		write_file(pwpath, allow == 0 ? four : "");
		assert_int_equal(verify_plain(db, "u09", "pw09",
		    &info), AUTH_FAIL);
		assert_int_equal(verify_plain(db, "u03", "pw03",
		    &info), allow == 0 ? AUTH_OK : AUTH_FAIL);
		auth_db_free(db);
	}
	free(ten);
	free(four);
	free(six);
	free(three);
}

/* --- unknown users and timing --- */

static void
test_unknown_user(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			*h, *content;
	double			 t0, d, known, unknown;
	int			 i;

	(void)state;
	h = auth_password_hash("right");
	assert_non_null(h);
	assert_true(asprintf(&content, "known:%s\n", h) > 0);
	db = open_ok(content);

	assert_int_equal(verify_plain(db, "unknown", "right", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "known", "right", &info),
	    AUTH_OK);

	/*
	 * A miss must cost about what a hit costs: both run one default
	 * SHA512-CRYPT. Measured in this thread's CPU time, the cheapest of
	 * 8 interleaved calls each, so a busy host does not make it flaky;
	 * without the stand-in hash a miss is a thousand times cheaper.
	 */
	known = unknown = 1e9;
	for (i = 0; i < 8; i++) {
		t0 = cpu_sec();
		assert_int_equal(verify_plain(db, "known", "wrong",
		    &info), AUTH_FAIL);
		if ((d = cpu_sec() - t0) < known)
			known = d;
		t0 = cpu_sec();
		assert_int_equal(verify_plain(db, "unknown", "wrong",
		    &info), AUTH_FAIL);
		if ((d = cpu_sec() - t0) < unknown)
			unknown = d;
	}
	print_message("cheapest miss: known user %.6f s, unknown user "
	    "%.6f s (CPU)\n", known, unknown);
	assert_true(unknown > known * 0.25);

	auth_db_free(db);
	free(content);
	free(h);
}

static void
test_malformed_entry(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct capture		 cap;
	char			*log;

	(void)state;
	/* loads (the scheme is checked at use), but never authenticates */
	db = open_ok("odd:{NOPE}sekrit-data\nbadblf:{BLF-CRYPT}"
	    SHA512_VECTOR "\n");
	capture_start(&cap);
	assert_int_equal(verify_plain(db, "odd", "sekrit-data",
	    &info), AUTH_FAIL);
	assert_int_equal(verify_plain(db, "badblf", "secret", &info),
	    AUTH_FAIL);
	log = capture_end(&cap);
	assert_non_null(strstr(log, "odd"));
	assert_null(strstr(log, "sekrit"));
	free(log);
	auth_db_free(db);
}

/* Cheapest of 8 CPU-timed checks of (user, pw), each AUTH_FAIL. */
static double
fail_cost(struct auth_db *db, const char *user, const char *pw)
{
	struct auth_userinfo	 info;
	double			 t0, d, best = 1e9;
	int			 i;

	for (i = 0; i < 8; i++) {
		t0 = cpu_sec();
		assert_int_equal(verify_plain(db, user, pw, &info),
		    AUTH_FAIL);
		if ((d = cpu_sec() - t0) < best)
			best = d;
	}
	return best;
}

/*
 * Unknown users are checked like the table's most common scheme and cost:
 * here bcrypt at cost 8 (about 15 ms; b3's bare hash is of that class
 * too), where the SHA512-CRYPT stand-in of old cost 2 ms. So is a user
 * whose entry cannot be checked (old: no check at all).
 */
static void
test_standin_cost(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct capture		 cap;
	char			*b1, *b2, *b3, *content, *log;
	double			 blf, unknown, odd, plain;

	(void)state;
	b1 = make_crypt("$2b$", 8, "one");
	b2 = make_crypt("$2b$", 8, "two");
	b3 = make_crypt("$2b$", 8, "three");
	if (b1 == NULL || b2 == NULL || b3 == NULL)
		skip();
	assert_true(asprintf(&content,
	    "b1:{BLF-CRYPT}%s\nb2:{BLF-CRYPT}%s\nb3:%s\n"
	    "p:{PLAIN}plain-pw\nodd:{NOPE}x\n", b1, b2, b3) > 0);
	db = open_ok(content);
	capture_start(&cap);
	blf = fail_cost(db, "b2", "wrong");
	unknown = fail_cost(db, "nosuch", "wrong");
	odd = fail_cost(db, "odd", "wrong");
	plain = fail_cost(db, "p", "wrong");
	log = capture_end(&cap);
	free(log);
	print_message("cheapest failure (CPU): bcrypt user %.6f s, unknown "
	    "%.6f s, malformed entry %.6f s, {PLAIN} user %.6f s\n", blf,
	    unknown, odd, plain);
	assert_true(unknown > blf * 0.5);
	assert_true(odd > blf * 0.5);
	assert_true(plain < blf * 0.25);

	/* the stand-in, b1's hash (first of its class), logs nobody in */
	assert_int_equal(verify_plain(db, "nosuch", "one", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "b1", "one", &info),
	    AUTH_OK);
	auth_db_free(db);
	free(content);
	free(b1);
	free(b2);
	free(b3);
}

/*
 * Most users {PLAIN}: an unknown user costs a {PLAIN} check, not a
 * SHA512-CRYPT (old: always SHA512-CRYPT). The stand-in's own password
 * does not log an unknown user in.
 */
static void
test_standin_plain(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			*h, *content;
	double			 sha, unknown;

	(void)state;
	h = auth_password_hash("sha-pw");
	assert_non_null(h);
	assert_true(asprintf(&content, "a:{PLAIN}a-pw\nb:{PLAIN}b-pw\n"
	    "c:{PLAIN}c-pw\ns:%s\n", h) > 0);
	db = open_ok(content);
	sha = fail_cost(db, "s", "wrong");
	unknown = fail_cost(db, "nosuch", "wrong");
	print_message("cheapest failure (CPU): SHA512-CRYPT user %.6f s, "
	    "unknown %.6f s\n", sha, unknown);
	assert_true(unknown < sha * 0.25);
	assert_int_equal(verify_plain(db, "nosuch", "a-pw", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "nosuch", "b-pw", &info),
	    AUTH_FAIL);
	assert_int_equal(verify_plain(db, "a", "a-pw", &info),
	    AUTH_OK);
	auth_db_free(db);
	free(content);
	free(h);
}

static void
test_password_cost(void **state)
{
	static const struct {
		const char	*stored;
		const char	*cls;		/* NULL: -1 */
	} cases[] = {
		{ "{PLAIN}x",					"PLAIN" },
		{ "{plain}",					"PLAIN" },
		{ "{SHA512-CRYPT}" SHA512_VECTOR,		"$6$" },
		{ SHA512_VECTOR,				"$6$" },
		{ "{CRYPT}$6$rounds=9000$salt$hash",		"$6$rounds=9000" },
		{ "$5$rounds=6000$salt$hash",			"$5$rounds=6000" },
		{ "{BLF-CRYPT}$2b$05$J2I5NFmCMafU3nE04BG/LOT6XzyuqjbOrKvTUt"
		    "tkII5Jm53mC0q36",				"$2b$05" },
		{ "$2y$12$J2I5NFmCMafU3nE04BG/LOT6XzyuqjbOrKvTUttkII5Jm53mC"
		    "0q36",					"$2y$12" },
		{ "$y$j9T$DTfkKaC2gCPOpHgDi5Cwl.$wROrrKd2NEE.Lb5Znm.DUkojfW"
		    "X6dDfRr/OkDZJ/mRD",			"$y$j9T" },
		{ "{MD5-CRYPT}$1$Bt7CJrYp$.IXwrEwCpI/EbA..vdLw0/", "$1$" },
		{ "{CRYPT}abiQ6Ep3EYTHc",			"DES" },
		{ "{BLF-CRYPT}$2b$99$J2I5NFmCMafU3nE04BG/LOT6XzyuqjbOrKvTUt"
		    "tkII5Jm53mC0q36",				NULL },
		{ "{BLF-CRYPT}$2b$5$x",				NULL },
		{ "{BLF-CRYPT}" SHA512_VECTOR,			NULL },
		{ "{NOPE}x",					NULL },
		{ "{PLAIN",					NULL },
		{ "*",						NULL },
		{ "!",						NULL },
		{ "",						NULL },
		{ "{CRYPT}$9$nonsense",				NULL },
	};
	char	 buf[64];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].cls == NULL) {
			if (auth_password_cost(cases[i].stored, buf,
			    sizeof(buf)) != -1)
				fail_msg("\"%s\": class \"%s\", want -1",
				    cases[i].stored, buf);
			continue;
		}
		if (auth_password_cost(cases[i].stored, buf, sizeof(buf)) != 0)
			fail_msg("\"%s\": -1, want \"%s\"", cases[i].stored,
			    cases[i].cls);
		if (strcmp(buf, cases[i].cls) != 0)
			fail_msg("\"%s\": class \"%s\", want \"%s\"",
			    cases[i].stored, buf, cases[i].cls);
	}
	assert_int_equal(auth_password_cost(NULL, buf, sizeof(buf)), -1);
	/* a short buffer is cut, and terminated */
	assert_int_equal(auth_password_cost("{PLAIN}x", buf, 3), 0);
	assert_string_equal(buf, "PL");
}

/* --- APOP --- */

static void
test_apop(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	char			*h, *content;

	(void)state;
	h = auth_password_hash(APOP_SECRET);
	assert_non_null(h);
	assert_true(asprintf(&content,
	    "mrose:{PLAIN}" APOP_SECRET ":10:20::/home/mrose::x=y\n"
	    "lower:{plain}" APOP_SECRET "\n"
	    "hashed:%s\n"
	    "bare:" SHA512_VECTOR "\n"
	    /* "{CRYPT}" is as long as "{PLAIN}": a scheme check must see it */
	    "crypt7:{CRYPT}" APOP_SECRET "\n", h) > 0);
	db = open_ok(content);

	memset(&info, 0, sizeof(info));
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    APOP_DIGEST, &info), AUTH_OK);
	assert_string_equal(info.name, "mrose");
	assert_string_equal(info.home, "/home/mrose");
	assert_string_equal(info.extra, "x=y");
	assert_int_equal(info.uid, 10);
	assert_int_equal(info.gid, 20);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    "C4C9334BAC560ECC979E58001B3E22FB", &info), AUTH_OK);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    "c4C9334bac560ecc979e58001b3e22Fb", &info), AUTH_OK);
	assert_int_equal(verify_apop(db, "lower", APOP_TS,
	    APOP_DIGEST, &info), AUTH_OK);

	/* wrong digest, timestamp, user */
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    "c4c9334bac560ecc979e58001b3e22fc", &info), AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_PASSWORD);
	assert_int_equal(verify_apop(db, "mrose",
	    "<1896.697170953@dbc.mtview.ca.us>", APOP_DIGEST, &info),
	    AUTH_FAIL);
	assert_int_equal(verify_apop(db, "nobody", APOP_TS,
	    APOP_DIGEST, &info), AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_USER);
	/* malformed digests */
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    "c4c9334bac560ecc979e58001b3e22f", &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    "c4c9334bac560ecc979e58001b3e22fb0", &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    "c4c9334bac560ecc979e58001b3e22fg", &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    " c4c9334bac560ecc979e58001b3e22f", &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS, "",
	    &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "mrose", APOP_TS, NULL,
	    &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "mrose", NULL, APOP_DIGEST,
	    &info), AUTH_FAIL);
	/* the secret itself is not a digest */
	assert_int_equal(verify_apop(db, "mrose", APOP_TS,
	    APOP_SECRET, &info), AUTH_FAIL);

	/* only {PLAIN} users can use APOP, even with the right secret */
	assert_int_equal(verify_apop(db, "hashed", APOP_TS,
	    APOP_DIGEST, &info), AUTH_FAIL);
	assert_int_equal(info.fail, AUTH_FAIL_ENTRY);
	assert_string_equal(auth_fail_name(info.fail), "unusable-entry");
	assert_int_equal(verify_plain(db, "hashed", APOP_SECRET,
	    &info), AUTH_OK);
	assert_int_equal(verify_apop(db, "bare", APOP_TS,
	    APOP_DIGEST, &info), AUTH_FAIL);
	assert_int_equal(verify_apop(db, "crypt7", APOP_TS,
	    APOP_DIGEST, &info), AUTH_FAIL);
	assert_int_equal(verify_apop(NULL, "mrose", APOP_TS,
	    APOP_DIGEST, &info), AUTH_TEMPFAIL);

	auth_db_free(db);
	free(content);
	free(h);
}

/* --- concurrency --- */

#define CONC_THREADS	4

struct conc_arg {
	struct auth_db	*db;
	atomic_bool	*stop;
	unsigned long	 ok_a, ok_b, bad;
	char		 why[128];
};

static const char conc_a[] = "u:{PLAIN}alpha:1:1::/home/a\nw:{PLAIN}w\n";
static const char conc_b[] =
    "# version b\nu:{PLAIN}beta-longer:2:2::/home/bb\nw:{PLAIN}w\n";

static void *
conc_thread(void *arg)
{
	struct conc_arg		*ca = arg;
	struct auth_userinfo	 info;
	enum auth_result	 r;
	unsigned long		 n = 0;

	memset(&info, 0, sizeof(info));
	while (!atomic_load(ca->stop) || n < 50) {
		n++;
		r = verify_plain(ca->db, "u", "alpha", &info);
		if (r == AUTH_OK) {
			ca->ok_a++;
			if (strcmp(info.home, "/home/a") != 0 || info.uid != 1)
				goto bad;
		} else if (r != AUTH_FAIL)
			goto bad;
		r = verify_plain(ca->db, "u", "beta-longer", &info);
		if (r == AUTH_OK) {
			ca->ok_b++;
			if (strcmp(info.home, "/home/bb") != 0 || info.uid != 2)
				goto bad;
		} else if (r != AUTH_FAIL)
			goto bad;
		/* in both versions */
		if (verify_plain(ca->db, "w", "w", &info) != AUTH_OK)
			goto bad;
		if (verify_plain(ca->db, "u", "gamma", &info) !=
		    AUTH_FAIL)
			goto bad;
		if (verify_apop(ca->db, "w", APOP_TS, APOP_DIGEST,
		    &info) != AUTH_FAIL)
			goto bad;
	}
	return NULL;
 bad:
	snprintf(ca->why, sizeof(ca->why), "iteration %lu r=%d home=%.60s",
	    n, (int)r, info.home);
	ca->bad++;
	return NULL;
}

static void
test_concurrency(void **state)
{
	struct auth_db		*db;
	struct auth_userinfo	 info;
	struct conc_arg		 ca[CONC_THREADS];
	pthread_t		 th[CONC_THREADS];
	atomic_bool		 stop = false;
	struct timespec		 ts = { 0, 5 * 1000 * 1000 };
	unsigned long		 ok_a = 0, ok_b = 0;
	int			 i;

	(void)state;
	db = open_ok(conc_a);
	for (i = 0; i < CONC_THREADS; i++) {
		memset(&ca[i], 0, sizeof(ca[i]));
		ca[i].db = db;
		ca[i].stop = &stop;
		assert_int_equal(pthread_create(&th[i], NULL, conc_thread,
		    &ca[i]), 0);
	}
	for (i = 0; i < 12; i++) {
		nanosleep(&ts, NULL);
		write_file(pwpath, i % 2 == 0 ? conc_b : conc_a);
	}
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (i = 0; i < CONC_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (ca[i].bad != 0)
			fail_msg("thread %d: wrong result: %s", i, ca[i].why);
		ok_a += ca[i].ok_a;
		ok_b += ca[i].ok_b;
	}
	print_message("concurrent OKs: version a %lu, version b %lu\n", ok_a,
	    ok_b);
	assert_true(ok_a > 0);
	assert_true(ok_b > 0);

	/* the last write was version a */
	assert_int_equal(verify_plain(db, "u", "alpha", &info),
	    AUTH_OK);
	assert_int_equal(verify_plain(db, "u", "beta-longer", &info),
	    AUTH_FAIL);
	auth_db_free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_sha512_vector),
		cmocka_unit_test(test_crypt_schemes),
		cmocka_unit_test(test_des_crypt),
		cmocka_unit_test(test_digest_schemes),
		cmocka_unit_test(test_argon2_schemes),
		cmocka_unit_test(test_argon2_hash),
		cmocka_unit_test(test_scheme_mismatch),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_hash_roundtrip),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_file_parse),
		cmocka_unit_test(test_file_limits),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_errors_long),
		cmocka_unit_test(test_file_empty),
		cmocka_unit_test(test_file_partial_open),
		cmocka_unit_test(test_file_big),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_reload_broken),
		cmocka_unit_test(test_reload_partial),
		cmocka_unit_test(test_reload_partial_retry),
		cmocka_unit_test(test_reload_shrink),
		cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_malformed_entry),
		cmocka_unit_test(test_standin_cost),
		cmocka_unit_test(test_standin_plain),
		cmocka_unit_test(test_password_cost),
		cmocka_unit_test(test_apop),
		cmocka_unit_test(test_concurrency),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
