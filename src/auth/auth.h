/*
 * auth: user names, password schemes and the Dovecot-style passwd-file.
 *
 * File format (one user per line, '#' comments, blank lines ignored):
 *   user:{SCHEME}data:uid:gid:gecos:home:shell:extra
 * Only the first two fields are required. Schemes: {PLAIN}, {CRYPT},
 * {SHA256-CRYPT}, {SHA512-CRYPT}, {BLF-CRYPT} (crypt(3) from libxcrypt),
 * the digest schemes (OpenSSL), {ARGON2I} and {ARGON2ID} (libsodium).
 *
 * The verify functions hash, so they are slow by design: call them from a
 * worker thread (worker.h), never on the event loop. They are thread-safe.
 */
#ifndef EVPOP3D_AUTH_H
#define EVPOP3D_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/evpop3d.h"

/*
 * True if name is safe to use as a user name and in a path: 1..POP3_USER_MAX
 * octets of printable ASCII, none of  / \ : % and no control characters or
 * spaces, not starting with '.', no "..", at most one '@' and not at either
 * end. Checked before anything touches the disk.
 */
bool	auth_username_valid(const char *name);

enum auth_result {
	AUTH_OK,
	AUTH_FAIL,	/* unknown user or wrong password: same answer */
	AUTH_TEMPFAIL,	/* passwd-file unreadable and similar */
};

/*
 * Why a check gave AUTH_FAIL: for the server's log line alone (the client
 * gets the same answer for each, RFC 1939 section 13).
 */
enum auth_fail {
	AUTH_FAIL_USER,		/* no such user */
	AUTH_FAIL_PASSWORD,	/* wrong password or APOP digest */
	AUTH_FAIL_ENTRY,	/* the entry cannot be checked (scheme, hash;
				   APOP without a {PLAIN} password) */
};

/* "unknown-user", "password-mismatch", "unusable-entry" */
const char	*auth_fail_name(enum auth_fail why);

struct auth_userinfo {
	enum auth_fail	 fail;		/* set on AUTH_FAIL, else unused */
	char	 name[POP3_USER_MAX + 1];
	char	 home[4096];		/* may be "" */
	char	 extra[1024];		/* the 8th field, may be "" */
	uid_t	 uid;			/* (uid_t)-1 if not given */
	gid_t	 gid;			/* (gid_t)-1 if not given */
};

/*
 * One user as a user database has it (the passwd-file's auth_db_lookup(),
 * the PostgreSQL driver's lookup, its cache); every string malloc'd.
 */
struct auth_rec {
	char		*password;	/* "{SCHEME}data" */
	char		*name;		/* canonical user name */
	char		*home;		/* "" if none */
	char		*extra;		/* "userdb_mail=..." or "" */
	uid_t		 uid;		/* (uid_t)-1 if none */
	gid_t		 gid;
};

/* Copy src into *dst: 0, or -1 (out of memory, *dst empty). */
int	auth_rec_copy(struct auth_rec *dst, const struct auth_rec *src);
/* Wipe the password and free the strings; *rec is left empty. */
void	auth_rec_clear(struct auth_rec *rec);

struct auth_db;

/* auth_db_open() flags */
#define AUTH_DB_ALLOW_SHRINK	0x01	/* [auth] allow_shrink = yes */

/*
 * Load a passwd-file. Returns 0 and a new db in *db_r, or -1 with a message
 * "FILE:LINE: what is wrong" in err. The db re-reads the file when its
 * mtime, size or inode changes (checked at each verify), like Dovecot.
 *
 * A file whose last line has no newline is being written (or was cut
 * short): open fails; a reload keeps the old table and tries that version
 * again a second later. A file without users fails to open, and a reload
 * that would leave no users or lose more than half of them is refused
 * (logged at error level, the old table stays), unless flags has
 * AUTH_DB_ALLOW_SHRINK.
 */
int	auth_db_open(const char *path, int flags, struct auth_db **db_r,
	    char *err, size_t errlen);
void	auth_db_free(struct auth_db *db);

/*
 * How many entries of the table now loaded have a password that cannot be
 * checked (an unknown scheme, a malformed hash): each was logged at load
 * (event=passwd-entry-unusable). evpop3d -t counts them as warnings.
 */
size_t	auth_db_unusable(struct auth_db *db);

/*
 * Look user up, as the PostgreSQL driver's lookup does (auth_pgsql.h),
 * for auth_verify_stored(): AUTH_OK with *found_r true and the user in
 * *rec_r (auth_rec_clear() it), or *found_r false for a user the table
 * does not have (*rec_r empty); either way *standin_r is the stand-in
 * (malloc'd; wipe and free it): the stored password of a user of the
 * table's most common scheme and cost. AUTH_TEMPFAIL: no table, out of
 * memory (nothing to free). Re-reads a changed file first; no hashing,
 * but it may read the file: a worker thread's job. Thread-safe.
 */
enum auth_result auth_db_lookup(struct auth_db *db, const char *user,
	    struct auth_rec *rec_r, bool *found_r, char **standin_r);
/*
 * auth_db_lookup() without the reload, for the event loop: false, and
 * nothing looked up, when the file changed since the table was read (or
 * cannot be stat()ed), or is not on a local file system (its stat()
 * could hang); a worker thread's auth_db_lookup() reloads it.
 */
bool	auth_db_lookup_quick(struct auth_db *db, const char *user,
	    enum auth_result *res_r, struct auth_rec *rec_r, bool *found_r,
	    char **standin_r);
/*
 * A login of user checked its password against an entry that cannot be
 * checked (AUTH_FAIL_ENTRY, not APOP): warn (event=passwd-entry-unusable).
 */
void	auth_db_warn_unusable(const struct auth_db *db, const char *user);

/*
 * Check a login against a stored "{SCHEME}data" fetched elsewhere (a SQL
 * user database or its cache; auth_pgsql.h). stored is NULL for an
 * unknown user: then standin (a real user's stored password, so that a
 * miss costs what a hit costs) is checked and the result discarded.
 * timestamp NULL: secret is the password; else APOP (RFC 1939 section
 * 7), secret the 32 hex digits, and only a {PLAIN} password matches.
 * Sets *fail_r on AUTH_FAIL; AUTH_TEMPFAIL if a digest cannot be made.
 * Hashes: a worker thread's job.
 */
enum auth_result auth_verify_stored(const char *stored, const char *standin,
	    const char *timestamp, const char *secret, enum auth_fail *fail_r);

/*
 * Check password against one stored "{SCHEME}data" string (a bare string
 * without a scheme is treated as {CRYPT}). Returns 1 on match, 0 on
 * mismatch, -1 if the scheme is unknown or the data malformed.
 * Comparisons are constant-time.
 */
int	auth_password_verify(const char *stored, const char *password);
/*
 * len hex digits (either case) of in into out, at most max octets: the
 * octets written, or -1 (an odd length, too long, not a hex digit).
 * The digest schemes' .HEX hashes and APOP digests.
 */
int	auth_hex_decode(const char *in, size_t len, unsigned char *out,
	    size_t max);

/*
 * The cost class of a stored "{SCHEME}data" string: strings of one class
 * take the same time to check. Writes e.g. "PLAIN", "$6$", "$2b$10" or
 * "$6$rounds=9000" to buf (always NUL-terminated). Returns 0, or -1 if the
 * scheme is unknown or the data cannot be checked (a cheap test that does
 * not hash; auth_password_verify() may still return -1 for other reasons).
 */
int	auth_password_cost(const char *stored, char *buf, size_t len);
/*
 * True when checking a password against stored costs one hash at most:
 * {PLAIN} and the digest schemes (SHA, SSHA512, PLAIN-MD5 ...), not the
 * crypt(3) and argon2 key derivations, which are slow on purpose. What
 * the event loop may check itself (pop3/quick.h).
 */
bool	auth_password_cheap(const char *stored);

/*
 * Hash password as "{SHA512-CRYPT}$6$salt$hash" with a random salt, like
 * `doveadm pw -s SHA512-CRYPT`. Returns a malloc'd string, NULL on error.
 */
char	*auth_password_hash(const char *password);

/*
 * Hash password in scheme, like `doveadm pw -s SCHEME [-r ROUNDS]`:
 * the crypt schemes (SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, MD5-CRYPT,
 * and CRYPT, which makes yescrypt, Debian's default) with a random salt
 * and rounds (0: the method's default), the digest schemes (SHA, SHA256,
 * SHA512, and SSHA, SSHA256, SSHA512 with an 8-octet random salt; no
 * rounds), ARGON2I and ARGON2ID (rounds are passes, and pick the memory
 * as Dovecot's doveadm does), or PLAIN. Returns "{SCHEME}data", malloc'd, or NULL with the
 * reason in err (an unknown scheme, rounds the scheme does not take or
 * out of its range, a PLAIN password the passwd-file cannot hold).
 */
char	*auth_password_hash_scheme(const char *scheme, unsigned long rounds,
	    const char *password, char *err, size_t errlen);

/* Wipe a secret buffer in a way the compiler cannot drop. */
void	auth_wipe(void *buf, size_t len);
/* Wipe a secret string, then free it (NULL is a no-op). */
void	auth_free_secret(char *s);

#endif
