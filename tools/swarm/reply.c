/*
 * reply: POP3 reply parsing (see reply.h).
 *
 * The body counter is a four-state machine over the bytes, but inside a
 * line it jumps to the next LF with memchr(), so the per-byte work is
 * memchr's: a 20 MiB body costs a few milliseconds.
 */
#include <string.h>

#include "reply.h"

enum ml_state {
	ML_BOL,		/* at the beginning of a line */
	ML_DOT,		/* a '.' began the line */
	ML_DOT_CR,	/* ".\r" began the line */
	ML_MID,		/* inside a line, previous byte not CR */
	ML_MID_CR,	/* inside a line, previous byte CR */
};

void
mlcount_init(struct mlcount *mc)
{
	memset(mc, 0, sizeof(*mc));
	mc->state = ML_BOL;
}

int
mlcount_at_dot_cr(const struct mlcount *mc)
{
	return mc->state == ML_DOT_CR;
}

size_t
mlcount_feed(struct mlcount *mc, const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len, *lf;

	while (p < end) {
		switch (mc->state) {
		case ML_BOL:
			if (*p == '.') {
				/* RFC 1939 section 3: the receiver strips
				 * the first '.' of a line; ".CRLF" ends. */
				p++;
				mc->state = ML_DOT;
				continue;
			}
			mc->state = ML_MID;
			continue;
		case ML_DOT:
			if (*p == '\r') {
				p++;
				mc->state = ML_DOT_CR;
				continue;
			}
			if (*p == '\n') {
				/* ".LF": a terminator, badly formed. */
				mc->flags |= ML_DONE | ML_BARE_LF;
				return (size_t)(p + 1 - buf);
			}
			mc->state = ML_MID;
			continue;
		case ML_DOT_CR:
			if (*p == '\n') {
				mc->flags |= ML_DONE;
				return (size_t)(p + 1 - buf);
			}
			/* ".\rx": the CR was content. */
			mc->octets++;
			mc->state = ML_MID_CR;
			continue;
		case ML_MID:
		case ML_MID_CR:
			lf = memchr(p, '\n', (size_t)(end - p));
			if (lf == NULL) {
				mc->octets += (uint64_t)(end - p);
				mc->state = end[-1] == '\r' ? ML_MID_CR : ML_MID;
				p = end;
				continue;
			}
			mc->octets += (uint64_t)(lf + 1 - p);
			if (lf > p ? lf[-1] != '\r' : mc->state != ML_MID_CR) {
				mc->flags |= ML_BARE_LF;
				mc->octets++;		/* as if CRLF */
			}
			mc->lines++;
			mc->state = ML_BOL;
			p = lf + 1;
			continue;
		}
	}
	return len;
}

enum reply_status
reply_status(const char *line, size_t len)
{
	/* RFC 1939 section 3: "+OK" or "-ERR", then a space or the end. */
	if (len >= 3 && memcmp(line, "+OK", 3) == 0 &&
	    (len == 3 || line[3] == ' '))
		return REPLY_OK;
	if (len >= 4 && memcmp(line, "-ERR", 4) == 0 &&
	    (len == 4 || line[4] == ' '))
		return REPLY_ERR;
	return REPLY_BAD;
}

/* A decimal at *p (advanced); -1 if none or it overflows. */
static int
num(const char **p, const char *end, uint64_t *v)
{
	const char	*s = *p;
	uint64_t	 acc = 0;

	if (s >= end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (acc > (UINT64_MAX - 9) / 10)
			return -1;
		acc = acc * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*v = acc;
	return 0;
}

/* "a b" with an optional " anything" after b. */
static int
two_numbers(const char *s, const char *end, uint64_t *a, uint64_t *b)
{
	if (num(&s, end, a) == -1 || s >= end || *s++ != ' ' ||
	    num(&s, end, b) == -1)
		return -1;
	if (s < end && *s != ' ')
		return -1;
	return 0;
}

int
reply_parse_stat(const char *line, size_t len, uint64_t *count,
    uint64_t *size)
{
	if (len < 4 || memcmp(line, "+OK ", 4) != 0)
		return -1;
	return two_numbers(line + 4, line + len, count, size);
}

int
reply_parse_list(const char *line, size_t len, uint64_t *n, uint64_t *size)
{
	return two_numbers(line, line + len, n, size);
}

int
reply_parse_uidl(const char *line, size_t len, uint64_t *n, const char **uid,
    size_t *uidlen)
{
	const char	*s = line, *end = line + len;
	size_t		 i;

	if (num(&s, end, n) == -1 || s >= end || *s++ != ' ')
		return -1;
	/* RFC 1939 section 7: 1 to 70 characters in 0x21..0x7E. */
	if (end - s < 1 || end - s > 70)
		return -1;
	for (i = 0; i < (size_t)(end - s); i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return -1;
	*uid = s;
	*uidlen = (size_t)(end - s);
	return 0;
}

uint64_t
reply_hash(const char *s, size_t len)
{
	uint64_t	 h = 14695981039346656037ULL;
	size_t		 i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}
