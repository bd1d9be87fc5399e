/*
 * fmt: a small vsnprintf() (see fmt.h).
 */
#include <sys/types.h>

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/fmt.h"

/* An output that counts what does not fit, as vsnprintf() does. */
struct out {
	char	*p;
	size_t	 room;		/* octets left for text, NUL excluded */
	size_t	 n;		/* octets the whole output needs */
};

static inline void
out_put(struct out *o, const char *s, size_t len)
{
	size_t	 k = len < o->room ? len : o->room;

	memcpy(o->p, s, k);
	o->p += k;
	o->room -= k;
	o->n += len;
}

static void
out_u64(struct out *o, uint64_t v, bool neg, unsigned base)
{
	char	 tmp[24], *e = tmp + sizeof(tmp), *q = e;

	do {
		*--q = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	if (neg)
		*--q = '-';
	out_put(o, q, (size_t)(e - q));
}

static void
out_i64(struct out *o, int64_t v)
{
	/* -INT64_MIN overflows: negate as unsigned. */
	if (v < 0)
		out_u64(o, -(uint64_t)v, true, 10);
	else
		out_u64(o, (uint64_t)v, false, 10);
}

/*
 * The conversion at *fmt (just past '%') written to o; its end in *fmt.
 * false: not one of ours (nothing written, ap untouched).
 */
static bool
conv(struct out *o, const char **fmtp, va_list *ap)
{
	const char	*f = *fmtp, *s;
	int		 lng = 0, prec;
	bool		 size = false;

	if (f[0] == '.' && f[1] == '*' && f[2] == 's') {
		prec = va_arg(*ap, int);
		s = va_arg(*ap, const char *);
		out_put(o, s, prec < 0 ? strlen(s) : strnlen(s, (size_t)prec));
		*fmtp = f + 3;
		return true;
	}
	for (; *f == 'l' && lng < 2; f++)
		lng++;
	if (lng == 0 && *f == 'z') {
		size = true;
		f++;
	}
	switch (*f) {
	case 's':
		if (lng != 0 || size)
			return false;
		s = va_arg(*ap, const char *);
		out_put(o, s != NULL ? s : "(null)", strlen(s != NULL ? s :
		    "(null)"));
		break;
	case 'c':
		if (lng != 0 || size)
			return false;
		{
			char	 ch = (char)va_arg(*ap, int);

			out_put(o, &ch, 1);
		}
		break;
	case '%':
		if (lng != 0 || size)
			return false;
		out_put(o, "%", 1);
		break;
	case 'd':
	case 'i':
		if (size)
			out_i64(o, va_arg(*ap, ssize_t));
		else if (lng == 2)
			out_i64(o, va_arg(*ap, long long));
		else if (lng == 1)
			out_i64(o, va_arg(*ap, long));
		else
			out_i64(o, va_arg(*ap, int));
		break;
	case 'u':
	case 'x':
		if (size)
			out_u64(o, va_arg(*ap, size_t), false, *f == 'x' ? 16 : 10);
		else if (lng == 2)
			out_u64(o, va_arg(*ap, unsigned long long), false,
			    *f == 'x' ? 16 : 10);
		else if (lng == 1)
			out_u64(o, va_arg(*ap, unsigned long), false,
			    *f == 'x' ? 16 : 10);
		else
			out_u64(o, va_arg(*ap, unsigned int), false,
			    *f == 'x' ? 16 : 10);
		break;
	default:
		return false;
	}
	*fmtp = f + 1;
	return true;
}

int
fmt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct out	 o = { .p = buf, .room = len > 0 ? len - 1 : 0 };
	const char	*f = fmt, *pct;
	va_list		 cp, whole;
	int		 n;

	va_copy(whole, ap);
	va_copy(cp, ap);
	while ((pct = strchr(f, '%')) != NULL) {
		out_put(&o, f, (size_t)(pct - f));
		f = pct + 1;
		if (!conv(&o, &f, &cp)) {
			/* Not ours: vsnprintf() does the whole format. */
			va_end(cp);
			n = vsnprintf(buf, len, fmt, whole);
			va_end(whole);
			return n;
		}
	}
	va_end(cp);
	va_end(whole);
	out_put(&o, f, strlen(f));
	if (len > 0)
		*o.p = '\0';
	return o.n > INT_MAX ? -1 : (int)o.n;
}
