/*
 * sqltmpl: Dovecot-style query templates to parameterized SQL (sqltmpl.h).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sqltmpl.h"

#define SQLTMPL_MAX	8192	/* octets of template */

/* The variable of %c, or -1. */
static int
sqltmpl_var(char c)
{
	switch (c) {
	case 'u':
		return SQLTMPL_USER;
	case 'n':
		return SQLTMPL_LOCAL;
	case 'd':
		return SQLTMPL_DOMAIN;
	}
	return -1;
}

/* "$k" for var, numbering a variable at its first use. */
static int
sqltmpl_param(struct sqltmpl *t, int var)
{
	int	k;

	for (k = 0; k < t->nparams; k++)
		if ((int)t->vars[k] == var)
			return k + 1;
	t->vars[t->nparams++] = (enum sqltmpl_var)var;
	return t->nparams;
}

/*
 * At p, after a '%': the variable, or -1 for "%%", or -2 with err set.
 */
static int
sqltmpl_escape(const char *p, char *err, size_t errlen)
{
	int	var;

	if (*p == '%')
		return -1;
	if (*p == '\0') {
		snprintf(err, errlen, "'%%' at the end (write %%%% for a "
		    "'%%')");
		return -2;
	}
	if ((var = sqltmpl_var(*p)) == -1) {
		if (isprint((unsigned char)*p))
			snprintf(err, errlen, "unknown variable %%%c (%%u, "
			    "%%n, %%d and %%%% are known)", *p);
		else
			snprintf(err, errlen, "unknown variable after '%%'");
		return -2;
	}
	return var;
}

/*
 * A string literal from its opening quote at *pp: copied as it is if it
 * holds no variable, else as ('text' || $k || 'text'). Moves *pp past
 * the closing quote. Returns the octets written, or -1 (err).
 */
static int
sqltmpl_literal(struct sqltmpl *t, const char **pp, char *out, char *err,
    size_t errlen)
{
	const char	*p = *pp + 1, *q;
	char		*o = out;
	bool		 vars = false, open = false, first = true;
	int		 var;

	/* First pass: find the end, and whether a variable is inside. */
	for (q = p;; q++) {
		if (*q == '\0') {
			snprintf(err, errlen, "unterminated string literal");
			return -1;
		}
		if (*q == '\'') {
			if (q[1] != '\'')
				break;
			q++;
		} else if (*q == '%') {
			if ((var = sqltmpl_escape(q + 1, err, errlen)) == -2)
				return -1;
			if (var >= 0)
				vars = true;
			q++;
		}
	}
	if (!vars) {
		/* Copied, with %% made %. */
		*o++ = '\'';
		for (; p < q; p++) {
			*o++ = *p;
			if (*p == '%')
				p++;
		}
		*o++ = '\'';
		*pp = q + 1;
		return (int)(o - out);
	}
	/* Alone: '%u' is $1. Else a concatenation in parentheses. */
	if (q - p == 2 && p[0] == '%' && sqltmpl_var(p[1]) >= 0) {
		o += sprintf(o, "$%d", sqltmpl_param(t, sqltmpl_var(p[1])));
		*pp = q + 1;
		return (int)(o - out);
	}
	*o++ = '(';
	for (; p < q; p++) {
		if (*p == '%' && (var = sqltmpl_var(p[1])) >= 0) {
			if (open) {
				*o++ = '\'';
				open = false;
			}
			o += sprintf(o, "%s$%d", first ? "" : " || ",
			    sqltmpl_param(t, var));
			first = false;
			p++;
			continue;
		}
		if (!open) {
			o += sprintf(o, "%s'", first ? "" : " || ");
			open = true;
			first = false;
		}
		if (*p == '%')			/* "%%" */
			*o++ = *p++;
		else if (*p == '\'') {		/* "''" */
			*o++ = *p++;
			*o++ = *p;
		} else
			*o++ = *p;
	}
	if (open)
		*o++ = '\'';
	*o++ = ')';
	*pp = q + 1;
	return (int)(o - out);
}

/* See sqltmpl.h. */
int
sqltmpl_parse(const char *tmpl, struct sqltmpl *t, char *err, size_t errlen)
{
	const char	*p, *e;
	char		*out, *o;
	size_t		 len = strlen(tmpl);
	int		 n, var;

	memset(t, 0, sizeof(*t));
	if (len == 0) {
		snprintf(err, errlen, "empty query");
		return -1;
	}
	if (len > SQLTMPL_MAX) {
		snprintf(err, errlen, "longer than %d octets", SQLTMPL_MAX);
		return -1;
	}
	/* A variable grows at most from 2 octets to 11 (" || $1 || '"). */
	if ((out = malloc(len * 6 + 16)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o = out;
	for (p = tmpl; *p != '\0';) {
		switch (*p) {
		case '\'':
			if ((n = sqltmpl_literal(t, &p, o, err, errlen)) == -1)
				goto fail;
			o += n;
			continue;
		case '"':
			if ((e = strchr(p + 1, '"')) == NULL) {
				snprintf(err, errlen, "unterminated quoted "
				    "identifier");
				goto fail;
			}
			memcpy(o, p, (size_t)(e - p + 1));
			o += e - p + 1;
			p = e + 1;
			continue;
		case '%':
			if ((var = sqltmpl_escape(p + 1, err, errlen)) == -2)
				goto fail;
			if (var == -1)
				*o++ = '%';
			else
				o += sprintf(o, "$%d", sqltmpl_param(t, var));
			p += 2;
			continue;
		case '$':
			if (isdigit((unsigned char)p[1])) {
				snprintf(err, errlen, "a parameter $%c of its "
				    "own (write %%u, %%n or %%d)", p[1]);
				goto fail;
			}
			break;
		}
		*o++ = *p++;
	}
	*o = '\0';
	t->sql = out;
	return 0;
 fail:
	free(out);
	memset(t, 0, sizeof(*t));
	return -1;
}

void
sqltmpl_free(struct sqltmpl *t)
{
	free(t->sql);
	memset(t, 0, sizeof(*t));
}

/* See sqltmpl.h. */
void
sqltmpl_values(const struct sqltmpl *t, const char *user, char *buf,
    size_t buflen, const char *vals[SQLTMPL_NVARS])
{
	const char	*at = strrchr(user, '@');
	size_t		 n;
	int		 k;

	n = at != NULL ? (size_t)(at - user) : strlen(user);
	if (n >= buflen)
		n = buflen - 1;
	memcpy(buf, user, n);
	buf[n] = '\0';
	for (k = 0; k < t->nparams; k++) {
		switch (t->vars[k]) {
		case SQLTMPL_USER:
			vals[k] = user;
			break;
		case SQLTMPL_LOCAL:
			vals[k] = buf;
			break;
		case SQLTMPL_DOMAIN:
			vals[k] = at != NULL ? at + 1 : "";
			break;
		}
	}
}
