/*
 * uidl_format: expand [pop3] uidl_format templates (see uidl_format.h),
 * the way Dovecot's var_expand() expands pop3_uidl_format.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/evpop3d.h"
#include "store/uidl_format.h"

#define NUM_MAX		64	/* offsets and widths */
#define MODS_MAX	4

/* One escape, %[-][0]N[.[-][0]M][modifiers]VAR. */
struct uidl_esc {
	int	 offset;		/* N when a '.' follows it */
	int	 width;
	int	 zero;			/* pad with '0' instead of cutting */
	char	 mods[MODS_MAX + 1];	/* X L U, applied in order */
	char	 var;
};

/* A decimal number of at most NUM_MAX; -1 if larger. */
static const char *
uidl_num_parse(const char *p, int *n)
{
	*n = 0;
	while (*p >= '0' && *p <= '9') {
		*n = *n * 10 + (*p++ - '0');
		if (*n > NUM_MAX)
			return NULL;
	}
	return p;
}

/* Parse the escape at p (its '%'); returns the byte after it, or NULL. */
static const char *
uidl_esc_parse(const char *p, struct uidl_esc *e)
{
	int	 sign = 1, n;
	size_t	 nmods = 0;

	memset(e, 0, sizeof(*e));
	p++;
	if (*p == '-') {
		sign = -1;
		p++;
	}
	if (*p == '0') {
		e->zero = 1;
		p++;
	}
	if ((p = uidl_num_parse(p, &n)) == NULL)
		return NULL;
	e->width = n;
	if (*p == '.') {
		e->offset = sign * n;
		e->zero = 0;
		if (*++p == '0') {
			e->zero = 1;
			p++;
		}
		if ((p = uidl_num_parse(p, &e->width)) == NULL)
			return NULL;
	} else if (sign < 0)
		return NULL;			/* a negative width */
	while (*p == 'X' || *p == 'L' || *p == 'U') {
		if (nmods == MODS_MAX)
			return NULL;
		e->mods[nmods++] = *p++;
	}
	if (*p == '\0' || strchr("fuvm%", *p) == NULL)
		return NULL;
	e->var = *p++;
	return p;
}

int
uidl_format_check(const char *fmt, char *why, size_t whylen)
{
	struct uidl_esc	 e;
	const char	*p = fmt;
	int		 vars = 0;

	while (*p != '\0') {
		if (*p != '%') {
			if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
				snprintf(why, whylen, "characters must be "
				    "printable ASCII without spaces");
				return -1;
			}
			p++;
			continue;
		}
		if ((p = uidl_esc_parse(p, &e)) == NULL) {
			snprintf(why, whylen, "bad escape: want %%[-][0]N"
			    "[.[0]M][X|L|U] and one of f u v m %%, numbers up "
			    "to %d", NUM_MAX);
			return -1;
		}
		if (e.var != '%')
			vars++;
	}
	if (vars == 0) {
		snprintf(why, whylen, "names no message value (%%f %%u %%v "
		    "%%m): every message would have the same UIDL");
		return -1;
	}
	return 0;
}

/*
 * Apply e's modifiers, offset and width to the value in val (NUL-ended,
 * in a buffer of vallen) and append the result to out at *pos. -1 if it
 * does not fit.
 */
static int
uidl_esc_output(const struct uidl_esc *e, char *val, size_t vallen,
    char *out, size_t outlen, size_t *pos)
{
	const char	*m;
	char		*v = val;
	size_t		 len, i;
	int		 n;

	for (m = e->mods; *m != '\0'; m++) {
		if (*m == 'X') {
			/* Dovecot: strtoull(value, 10) printed by "%llx". */
			n = snprintf(val, vallen, "%llx",
			    strtoull(val, NULL, 10));
			if (n < 0 || (size_t)n >= vallen)
				return -1;
		} else
			for (i = 0; val[i] != '\0'; i++)
				val[i] = (char)(*m == 'L' ?
				    tolower((unsigned char)val[i]) :
				    toupper((unsigned char)val[i]));
	}
	len = strlen(v);
	if (e->offset > 0)
		v += (size_t)e->offset < len ? (size_t)e->offset : len;
	else if (e->offset < 0)
		v += (size_t)-e->offset < len ? len - (size_t)-e->offset : 0;
	len = strlen(v);
	if (e->width > 0 && !e->zero && len > (size_t)e->width)
		len = (size_t)e->width;		/* cut, like "%.*s" */
	n = e->zero && (size_t)e->width > len ? e->width - (int)len : 0;
	if ((size_t)n + len >= outlen - *pos)
		return -1;
	memset(out + *pos, '0', (size_t)n);	/* "%05u": pad, never cut */
	memcpy(out + *pos + n, v, len);
	*pos += (size_t)n + len;
	return 0;
}

int
uidl_format_expand(const char *fmt, const struct uidl_vars *v, char *out,
    size_t outlen)
{
	struct uidl_esc	 e;
	const char	*p = fmt, *str;
	char		 val[NAME_MAX + 1];	/* %f: a whole file name */
	size_t		 pos = 0;

	if (outlen == 0)
		return -1;
	while (*p != '\0') {
		if (*p != '%') {
			if (pos + 1 >= outlen)
				return -1;
			out[pos++] = *p++;
			continue;
		}
		if ((p = uidl_esc_parse(p, &e)) == NULL)
			return -1;
		switch (e.var) {
		case 'f':
			str = v->file;
			break;
		case 'm':
			str = v->md5;
			break;
		case '%':
			str = "%";
			break;
		default:			/* u, v */
			if (!v->has_uid)
				return -1;
			snprintf(val, sizeof(val), "%u", (unsigned)(e.var ==
			    'u' ? v->uid : v->uidvalidity));
			str = val;
			break;
		}
		if (str == NULL || strlen(str) >= sizeof(val))
			return -1;
		if (str != val)
			memmove(val, str, strlen(str) + 1);
		if (uidl_esc_output(&e, val, sizeof(val), out, outlen,
		    &pos) == -1)
			return -1;
	}
	out[pos] = '\0';
	return pop3_uidl_valid(out, pos) ? (int)pos : -1;
}

bool
uidl_format_uses(const char *fmt, char var)
{
	struct uidl_esc	 e;
	const char	*p = fmt;

	while ((p = strchr(p, '%')) != NULL) {
		if ((p = uidl_esc_parse(p, &e)) == NULL)
			return false;
		if (e.var == var)
			return true;
	}
	return false;
}
