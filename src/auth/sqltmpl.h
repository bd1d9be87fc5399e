/*
 * sqltmpl: a Dovecot-style SQL query template ("... WHERE userid =
 * '%u'") turned into a parameterized statement ("... WHERE userid = $1")
 * and the list of what each $n stands for. The values go to the server
 * as parameters (PQsendQueryPrepared), never into the SQL text, so a
 * user name cannot change the query.
 *
 * Variables: %u the user name, %n its local part (before '@'), %d its
 * domain (after '@', "" without one), %% a '%'. A variable alone in a
 * string literal ('%u') becomes $n; one inside a longer literal
 * ('%n@example.org') becomes ($n || '@example.org'); one outside quotes
 * becomes $n too. Double-quoted identifiers are copied as they are.
 * Anything else after '%' is an error, and so is a "$1" of the author's
 * own (the numbers are ours).
 */
#ifndef EVPOP3D_SQLTMPL_H
#define EVPOP3D_SQLTMPL_H

#include <stddef.h>

enum sqltmpl_var {
	SQLTMPL_USER,		/* %u */
	SQLTMPL_LOCAL,		/* %n */
	SQLTMPL_DOMAIN,		/* %d */
};
#define SQLTMPL_NVARS	3

struct sqltmpl {
	char		*sql;			/* with $1..$nparams */
	int		 nparams;
	enum sqltmpl_var vars[SQLTMPL_NVARS];	/* $k+1 is vars[k] */
};

/*
 * Parse tmpl into *t. Returns 0, or -1 with the reason in err (and *t
 * left empty). Free with sqltmpl_free().
 */
int	sqltmpl_parse(const char *tmpl, struct sqltmpl *t, char *err,
	    size_t errlen);
void	sqltmpl_free(struct sqltmpl *t);

/*
 * The parameter values of t for user: vals[k] for $k+1, pointing into
 * user or into buf (at least strlen(user) + 1 octets).
 */
void	sqltmpl_values(const struct sqltmpl *t, const char *user, char *buf,
	    size_t buflen, const char *vals[SQLTMPL_NVARS]);

#endif
