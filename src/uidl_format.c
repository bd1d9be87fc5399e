/*
 * uidl_format: expand [pop3] uidl_format templates (see uidl_format.h).
 */
#include <stdio.h>
#include <string.h>

#include "uidl_format.h"

#define UIDL_MAX	70	/* RFC 1939 section 7 */
#define WIDTH_MAX	64

/* One parsed escape: p points at the '%'; returns the byte after it. */
struct uidl_esc {
	int	 zero, width;
	char	 hex;		/* 'X', 'x' or 0 */
	char	 var;
};

static const char *
uidl_esc_parse(const char *p, struct uidl_esc *e)
{
	memset(e, 0, sizeof(*e));
	p++;
	if (*p == '0') {
		e->zero = 1;
		p++;
	}
	while (*p >= '0' && *p <= '9') {
		e->width = e->width * 10 + (*p++ - '0');
		if (e->width > WIDTH_MAX)
			return NULL;
	}
	if (*p == 'X' || *p == 'x')
		e->hex = *p++;
	if (*p == '\0' || strchr("fuvm%", *p) == NULL)
		return NULL;
	e->var = *p++;
	return p;
}

/* n as e says: decimal or hex, padded to e->width. */
static int
uidl_num(char *buf, size_t len, const struct uidl_esc *e, uint32_t n)
{
	unsigned u = n;

	if (e->hex == 'X')
		return e->zero ? snprintf(buf, len, "%0*X", e->width, u) :
		    snprintf(buf, len, "%*X", e->width, u);
	if (e->hex == 'x')
		return e->zero ? snprintf(buf, len, "%0*x", e->width, u) :
		    snprintf(buf, len, "%*x", e->width, u);
	return e->zero ? snprintf(buf, len, "%0*u", e->width, u) :
	    snprintf(buf, len, "%*u", e->width, u);
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
			snprintf(why, whylen, "unknown escape: want "
			    "%%[0][WIDTH][X|x] and one of f u v m %%");
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

int
uidl_format_expand(const char *fmt, const struct uidl_vars *v, char *out,
    size_t outlen)
{
	struct uidl_esc	 e;
	const char	*p = fmt, *str;
	char		 num[WIDTH_MAX + 1];
	size_t		 pos = 0;
	uint32_t	 n;
	int		 len;

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
		str = NULL;
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
			n = e.var == 'u' ? v->uid : v->uidvalidity;
			len = uidl_num(num, sizeof(num), &e, n);
			if (len < 0 || (size_t)len >= sizeof(num))
				return -1;
			str = num;
			e.width = 0;		/* printed with it */
			break;
		}
		if (str == NULL)
			return -1;
		len = snprintf(out + pos, outlen - pos, "%*s", e.width, str);
		if (len < 0 || (size_t)len >= outlen - pos)
			return -1;
		pos += (size_t)len;
	}
	out[pos] = '\0';
	if (pos == 0 || pos > UIDL_MAX)
		return -1;
	for (len = 0; (size_t)len < pos; len++)
		if ((unsigned char)out[len] < 0x21 ||
		    (unsigned char)out[len] > 0x7e)
			return -1;
	return (int)pos;
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
