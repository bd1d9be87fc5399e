/*
 * fuzz_passwd: the passwd-file parser (auth/auth_file.c) on arbitrary
 * file contents.
 *
 * Each input is written to a file and loaded with auth_db_open(), with
 * and without AUTH_DB_ALLOW_SHRINK; a refusal must come with a message.
 * No password is checked: a hostile file could name a crypt cost that
 * takes minutes, and the passwd-file is the operator's, so that is a
 * configuration to refuse or live with, not a parser bug. The schemes'
 * cost classes are still read at load (the unusable-entry check), and
 * the user names of the loaded table are looked up through APOP, which
 * compares without hashing.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/log.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_userinfo	 info;
	struct auth_db		*db;
	char			 path[512], err[512], user[64];
	const char		*colon;
	size_t			 n;
	int			 flags;

	snprintf(path, sizeof(path), "%s/passwd", fuzz_dir());
	fuzz_write_file(path, data, size);
	for (flags = 0; flags <= AUTH_DB_ALLOW_SHRINK; flags +=
	    AUTH_DB_ALLOW_SHRINK) {
		err[0] = '\0';
		if (auth_db_open(path, flags, &db, err, sizeof(err)) != 0) {
			FUZZ_CHECK(err[0] != '\0');
			continue;
		}
		/* The first line's user, through APOP (no hashing). */
		colon = memchr(data, ':', size < sizeof(user) ? size :
		    sizeof(user) - 1);
		n = colon != NULL ? (size_t)(colon - (const char *)data) : 0;
		memcpy(user, data, n);
		user[n] = '\0';
		if (auth_username_valid(user))
			(void)auth_db_verify_apop(db, user, "<1.2@fuzz>",
			    "0123456789abcdef0123456789abcdef", &info);
		auth_db_free(db);
	}
	return 0;
}
