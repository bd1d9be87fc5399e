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
 * the first line's user is looked up (auth_db_lookup()) and checked
 * through APOP (auth_verify_stored()), which compares without hashing,
 * as a login job does (pop3/authz.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/log.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_rec		 rec;
	struct auth_db		*db;
	enum auth_fail		 why;
	char			 path[512], err[512], user[64], *standin;
	bool			 found;
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
		if (auth_username_valid(user) && auth_db_lookup(db, user,
		    &rec, &found, &standin) == AUTH_OK) {
			(void)auth_verify_stored(found ? rec.password : NULL,
			    standin, "<1.2@fuzz>",
			    "0123456789abcdef0123456789abcdef", &why);
			auth_rec_clear(&rec);
			if (standin != NULL) {
				auth_wipe(standin, strlen(standin));
				free(standin);
			}
		}
		auth_db_free(db);
	}
	return 0;
}
