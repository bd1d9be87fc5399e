/*
 * proxy: the PROXY protocol header, versions 1 and 2 (proxy.h), as
 * HAProxy's doc/proxy-protocol.txt specifies it.
 *
 * Each octet is judged as soon as it is there, so a connection that is
 * not sending a header is refused at its first wrong octet instead of at
 * the deadline, and a header never needs more than PROXY_HDR_MAX octets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "net/proxy.h"

static const unsigned char v1_sig[] = "PROXY ";
#define V1_SIGLEN	(sizeof(v1_sig) - 1)
/* Section 2.2: the v2 signature; "QUIT\n" makes a plain server hang up. */
static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* The v2 command (low nibble of octet 12), family and transport. */
#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_AF_UNSPEC	0x0
#define V2_AF_INET	0x1
#define V2_AF_INET6	0x2
#define V2_AF_UNIX	0x3
#define V2_STREAM	0x1
#define V2_INET_LEN	12	/* two IPv4 addresses, two ports */
#define V2_INET6_LEN	36

static ssize_t
fail(const char **why_r, const char *why)
{
	*why_r = why;
	return -1;
}

/* Does buf[0..len) begin sig[0..siglen) as far as it goes? */
static bool
prefix_ok(const unsigned char *buf, size_t len, const unsigned char *sig,
    size_t siglen)
{
	return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

/* ------------------------------------------------------------ v1 */

/*
 * The next space-separated word of *p (section 2.1: one space between
 * words, none doubled), NUL-terminated in place; NULL if empty.
 */
static char *
v1_word(char **p)
{
	char *w = *p, *sp;

	if (*w == '\0' || *w == ' ')
		return NULL;
	if ((sp = strchr(w, ' ')) != NULL) {
		*sp = '\0';
		*p = sp + 1;
	} else
		*p = w + strlen(w);
	return w;
}

/* A port: decimal, 0-65535, no sign and no leading zero. */
static int
v1_port(const char *w, uint16_t *port_r)
{
	unsigned long	 n = 0;
	size_t		 i, len = strlen(w);

	if (len == 0 || len > 5 || (len > 1 && w[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (w[i] < '0' || w[i] > '9')
			return -1;
		n = n * 10 + (unsigned long)(w[i] - '0');
	}
	if (n > 65535)
		return -1;
	*port_r = (uint16_t)n;
	return 0;
}

/* An address of family af and a port into ss. */
static int
v1_addr(int af, const char *addr, const char *port,
    struct sockaddr_storage *ss, socklen_t *len_r)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)ss;
	uint16_t		 p;

	memset(ss, 0, sizeof(*ss));
	if (v1_port(port, &p) == -1)
		return -1;
	if (af == AF_INET) {
		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		*len_r = sizeof(*sin);
	} else {
		if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
		*len_r = sizeof(*sin6);
	}
	return 0;
}

/* The words of a complete v1 line (without "PROXY " and CRLF). */
static ssize_t
v1_line(char *line, size_t hdrlen, struct proxy_hdr *h, const char **why_r)
{
	char	*p = line, *proto, *src, *dst, *sport, *dport;
	int	 af;

	h->version = 1;
	if ((proto = v1_word(&p)) == NULL)
		return fail(why_r, "bad-v1");
	if (strcmp(proto, "UNKNOWN") == 0) {
		/* Section 2.1: whatever follows UNKNOWN is to be ignored. */
		h->local = true;
		return (ssize_t)hdrlen;
	}
	if (p[0] != '\0' && p[strlen(p) - 1] == ' ')
		return fail(why_r, "bad-v1");	/* a word after it empty */
	if (strcmp(proto, "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(proto, "TCP6") == 0)
		af = AF_INET6;
	else
		return fail(why_r, "bad-v1-protocol");
	if ((src = v1_word(&p)) == NULL || (dst = v1_word(&p)) == NULL ||
	    (sport = v1_word(&p)) == NULL || (dport = v1_word(&p)) == NULL ||
	    *p != '\0')
		return fail(why_r, "bad-v1");
	if (v1_addr(af, src, sport, &h->src, &h->srclen) == -1 ||
	    v1_addr(af, dst, dport, &h->dst, &h->dstlen) == -1)
		return fail(why_r, "bad-v1-address");
	return (ssize_t)hdrlen;
}

static ssize_t
v1_parse(const unsigned char *buf, size_t len, struct proxy_hdr *h,
    const char **why_r)
{
	char	 line[PROXY_V1_MAX + 1];
	size_t	 i, end = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;

	for (i = V1_SIGLEN; i < end; i++) {
		if (buf[i] == '\n')
			break;
		/* Printable ASCII only; CR only right before LF. */
		if (buf[i] == '\r' ? i + 1 < len && buf[i + 1] != '\n' :
		    buf[i] < 0x20 || buf[i] > 0x7e)
			return fail(why_r, "bad-v1");
	}
	if (i == end)
		return len >= PROXY_V1_MAX ? fail(why_r, "too-long") : 0;
	if (buf[i - 1] != '\r')
		return fail(why_r, "bad-v1");
	memcpy(line, buf + V1_SIGLEN, i - 1 - V1_SIGLEN);
	line[i - 1 - V1_SIGLEN] = '\0';
	return v1_line(line, i + 1, h, why_r);
}

/* ------------------------------------------------------------ v2 */

/* Section 2.2.7: type, 16-bit length, value; each must fit exactly. */
static int
v2_tlvs(const unsigned char *p, size_t len)
{
	size_t off = 0, tlen;

	while (off < len) {
		if (len - off < 3)
			return -1;
		tlen = (size_t)p[off + 1] << 8 | p[off + 2];
		if (tlen > len - off - 3)
			return -1;
		off += 3 + tlen;
	}
	return 0;
}

static ssize_t
v2_parse(const unsigned char *buf, size_t len, struct proxy_hdr *h,
    const char **why_r)
{
	struct sockaddr_in	*s4, *d4;
	struct sockaddr_in6	*s6, *d6;
	const unsigned char	*a = buf + PROXY_V2_FIXED;
	size_t			 plen, alen;
	unsigned		 cmd, af;

	if (len <= sizeof(v2_sig))
		return 0;
	if (buf[12] >> 4 != 2)
		return fail(why_r, "bad-v2-version");
	cmd = buf[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return fail(why_r, "bad-v2-command");
	if (len < PROXY_V2_FIXED)
		return 0;
	plen = (size_t)buf[14] << 8 | buf[15];
	if (plen > PROXY_V2_LEN_MAX)
		return fail(why_r, "too-long");
	if (len < PROXY_V2_FIXED + plen)
		return 0;
	h->version = 2;
	af = buf[13] >> 4;
	/* Section 2.2: LOCAL's family and addresses are to be ignored. */
	if (cmd == V2_CMD_LOCAL || af == V2_AF_UNSPEC) {
		h->local = true;
		return (ssize_t)(PROXY_V2_FIXED + plen);
	}
	if (af == V2_AF_UNIX)
		return fail(why_r, "unsupported-family");
	if (af != V2_AF_INET && af != V2_AF_INET6)
		return fail(why_r, "bad-v2-family");
	if ((buf[13] & 0x0f) != V2_STREAM)
		return fail(why_r, "unsupported-transport");
	alen = af == V2_AF_INET ? V2_INET_LEN : V2_INET6_LEN;
	if (plen < alen)
		return fail(why_r, "bad-v2-length");
	if (v2_tlvs(a + alen, plen - alen) == -1)
		return fail(why_r, "bad-v2-tlv");
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (af == V2_AF_INET) {
		s4 = (struct sockaddr_in *)(void *)&h->src;
		d4 = (struct sockaddr_in *)(void *)&h->dst;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(&d4->sin_addr, a + 4, 4);
		memcpy(&s4->sin_port, a + 8, 2);	/* network order */
		memcpy(&d4->sin_port, a + 10, 2);
		h->srclen = h->dstlen = sizeof(*s4);
	} else {
		s6 = (struct sockaddr_in6 *)(void *)&h->src;
		d6 = (struct sockaddr_in6 *)(void *)&h->dst;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		memcpy(&d6->sin6_addr, a + 16, 16);
		memcpy(&s6->sin6_port, a + 32, 2);
		memcpy(&d6->sin6_port, a + 34, 2);
		h->srclen = h->dstlen = sizeof(*s6);
	}
	return (ssize_t)(PROXY_V2_FIXED + plen);
}

ssize_t
proxy_parse(const void *data, size_t len, struct proxy_hdr *h,
    const char **why_r)
{
	const unsigned char *buf = data;

	memset(h, 0, sizeof(*h));
	*why_r = NULL;
	if (len == 0)
		return 0;
	if (buf[0] == v1_sig[0]) {
		if (!prefix_ok(buf, len, v1_sig, V1_SIGLEN))
			return fail(why_r, "bad-signature");
		return len < V1_SIGLEN ? 0 : v1_parse(buf, len, h, why_r);
	}
	if (!prefix_ok(buf, len, v2_sig, sizeof(v2_sig)))
		return fail(why_r, "bad-signature");
	return v2_parse(buf, len, h, why_r);
}
