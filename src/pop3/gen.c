/*
 * gen: what a session starts with and keeps, the configuration and the
 * user database (client.h, struct pop3_gen). A reload makes a new one;
 * the old one goes with the last session or job holding it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "config.h"
#include "pop3/client.h"

int
pop3_gen_new(struct cfg *cfg, struct pop3_gen **gen_r, char *err,
    size_t errlen)
{
	struct pop3_gen *gen;

	*gen_r = NULL;
	if ((gen = calloc(1, sizeof(*gen))) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (auth_db_open(cfg->passwd_file, cfg->allow_shrink ?
	    AUTH_DB_ALLOW_SHRINK : 0, &gen->auth, err, errlen) == -1) {
		free(gen);
		return -1;
	}
	gen->refs = 1;
	gen->cfg = cfg_ref(cfg);
	*gen_r = gen;
	return 0;
}

struct pop3_gen *
pop3_gen_ref(struct pop3_gen *gen)
{
	gen->refs++;
	return gen;
}

void
pop3_gen_unref(struct pop3_gen *gen)
{
	if (gen == NULL || --gen->refs > 0)
		return;
	auth_db_free(gen->auth);
	cfg_free(gen->cfg);
	free(gen);
}
