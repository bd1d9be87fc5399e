/*
 * uidl_format: [pop3] uidl_format, Dovecot's pop3_uidl_format syntax.
 *
 * A template of literal characters (0x21..0x7E) and escapes
 * %[-][0]N[.[0]M][X|L|U]VAR, VAR one of
 *	f	the Maildir file name's unique part (before ':2,')
 *	u	the IMAP UID: dovecot-uidlist (Maildir), X-UID (mbox)
 *	v	the UIDVALIDITY: dovecot-uidlist header, X-IMAPbase (mbox)
 *	m	hex MD5 of the message header, as the driver defines it
 *	%	a literal '%'
 * as Dovecot's var_expand() reads them: modifiers first (X: the decimal
 * value as lower-case hex, L/U: lower/upper case), then "N.M" skips N
 * characters (from the end if -N) and keeps M; a single N keeps the first
 * N, or with a leading 0 pads to N with zeros ("%08Xu"). Dovecot's
 * default, "%08Xu%08Xv", gives "0000002a6553f100" for UID 42 and
 * UIDVALIDITY 1700000000.
 */
#ifndef EVPOP3D_UIDL_FORMAT_H
#define EVPOP3D_UIDL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one message offers; NULL or has_uid false when it has no such value. */
struct uidl_vars {
	const char	*file;		/* %f */
	const char	*md5;		/* %m, 32 hex digits */
	bool		 has_uid;	/* %u and %v */
	uint32_t	 uid;
	uint32_t	 uidvalidity;
};

/*
 * Check a template (config load time). Returns 0, or -1 with the reason
 * in why: an unknown escape, a width over 64, characters outside
 * 0x21..0x7E, or no escape at all (every message would get one id).
 */
int	uidl_format_check(const char *fmt, char *why, size_t whylen);

/*
 * Expand fmt for one message into out. Returns the length, or -1 when the
 * message lacks a value fmt needs (the driver then uses its default id)
 * or the result is not a valid unique-id (RFC 1939 section 7: 1..70
 * chars in 0x21..0x7E).
 */
int	uidl_format_expand(const char *fmt, const struct uidl_vars *v,
	    char *out, size_t outlen);

/* True if fmt uses VAR (one of "fuvm"): drivers skip work nobody reads. */
bool	uidl_format_uses(const char *fmt, char var);

#endif
