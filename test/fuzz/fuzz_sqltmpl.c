/*
 * fuzz_sqltmpl: the query template parser of [auth] driver = pgsql
 * (auth/sqltmpl.c) on arbitrary templates.
 *
 * The input up to its first NUL is the template. A refusal must come
 * with a message; an accepted one must have at most 3 parameters, each
 * a different variable, each used in the SQL as $k. The values are then
 * taken for a user with and without a domain.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sqltmpl.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqltmpl	 t;
	const char	*vals[SQLTMPL_NVARS];
	char		*tmpl, err[256], buf[64], dollar[4];
	int		 k, j;

	if ((tmpl = malloc(size + 1)) == NULL)
		return 0;
	memcpy(tmpl, data, size);
	tmpl[size] = '\0';
	err[0] = '\0';
	if (sqltmpl_parse(tmpl, &t, err, sizeof(err)) == -1) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(t.sql == NULL);
		free(tmpl);
		return 0;
	}
	FUZZ_CHECK(t.nparams >= 0 && t.nparams <= SQLTMPL_NVARS);
	for (k = 0; k < t.nparams; k++) {
		for (j = k + 1; j < t.nparams; j++)
			FUZZ_CHECK(t.vars[k] != t.vars[j]);
		snprintf(dollar, sizeof(dollar), "$%d", k + 1);
		FUZZ_CHECK(strstr(t.sql, dollar) != NULL);
	}
	sqltmpl_values(&t, "alice@example.org", buf, sizeof(buf), vals);
	for (k = 0; k < t.nparams; k++)
		FUZZ_CHECK(vals[k] != NULL);
	sqltmpl_values(&t, "bob", buf, sizeof(buf), vals);
	sqltmpl_free(&t);
	free(tmpl);
	return 0;
}
