/*
 * base64: RFC 4648 encoding, and strict decoding (see base64.h).
 */
#include "lib/base64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
base64_encode(const unsigned char *in, size_t len, char *out)
{
	unsigned long	g;
	size_t		i, n = 0;

	for (i = 0; i < len; i += 3) {
		g = (unsigned long)in[i] << 16;
		if (i + 1 < len)
			g |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			g |= in[i + 2];
		out[n++] = b64_alphabet[g >> 18 & 63];
		out[n++] = b64_alphabet[g >> 12 & 63];
		out[n++] = i + 1 < len ? b64_alphabet[g >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? b64_alphabet[g & 63] : '=';
	}
	out[n] = '\0';
}

/* A character's 6-bit value, or -1. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	size_t		 i, j, n = 0, pad = 0;
	unsigned long	 group;
	int		 v;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	if (BASE64_DECODED_MAX(len) - pad > outlen)
		return -1;
	for (i = 0; i < len; i += 4) {
		group = 0;
		for (j = 0; j < 4; j++) {
			if (i + j >= len - pad && in[i + j] == '=')
				v = 0;
			else if ((v = b64_value((unsigned char)in[i + j])) < 0)
				return -1;
			group = group << 6 | (unsigned long)v;
		}
		out[n++] = (unsigned char)(group >> 16);
		if (i + 4 < len || pad < 2)
			out[n++] = (unsigned char)(group >> 8);
		if (i + 4 < len || pad < 1)
			out[n++] = (unsigned char)group;
	}
	return (int)n;
}
