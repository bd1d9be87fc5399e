/*
 * base64: strict decoding of RFC 4648 base64 (section 4, with padding),
 * for SASL responses and stored password hashes.
 */
#ifndef EVPOP3D_BASE64_H
#define EVPOP3D_BASE64_H

#include <stddef.h>

/* The most octets len characters of base64 decode to. */
#define BASE64_DECODED_MAX(len)	((len) / 4 * 3)

/*
 * Decode len characters of in into out (outlen octets). Only the base64
 * alphabet, a length that is a multiple of 4, and "=" padding at the end
 * (at most two) are accepted; "" decodes to nothing. Returns the number of
 * octets, or -1 if in is not strict base64 or does not fit in outlen.
 */
int	base64_decode(const char *in, size_t len, unsigned char *out,
	    size_t outlen);

/* The characters len octets encode to, without the NUL. */
#define BASE64_ENCODED_LEN(len)	(((len) + 2) / 3 * 4)

/* Encode len octets of in into out (BASE64_ENCODED_LEN(len) + 1 bytes). */
void	base64_encode(const unsigned char *in, size_t len, char *out);

#endif
