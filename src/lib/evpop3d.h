/*
 * evpop3d: project-wide constants.
 */
#ifndef EVPOP3D_H
#define EVPOP3D_H

#define EVPOP3D_NAME		"evpop3d"
/* The version is CMake's project(VERSION), given to every part. */
#ifndef EVPOP3D_VERSION_STRING
#error "EVPOP3D_VERSION_STRING comes from CMakeLists.txt"
#endif
#define EVPOP3D_VERSION		EVPOP3D_VERSION_STRING

/*
 * RFC 2449 section 4: commands may be up to 255 octets including CRLF.
 * We accept four times that so SASL initial responses fit, and no more.
 */
#define POP3_LINE_MAX		1024

/* RFC 1939 section 7 / RFC 2449: a unique-id is 1..70 chars in 0x21..0x7E. */
#define POP3_UIDL_MAX		70

#include <stdbool.h>
#include <stddef.h>

/* Is s (len bytes) a valid unique-id? */
static inline bool
pop3_uidl_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > POP3_UIDL_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Longest user name we accept, in octets (auth_username_valid()). */
#define POP3_USER_MAX		255

#endif
