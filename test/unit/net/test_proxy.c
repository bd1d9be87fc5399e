/*
 * net/proxy: the PROXY protocol header parser. Valid v1 (TCP4, TCP6,
 * UNKNOWN) and v2 (PROXY over AF_INET and AF_INET6, LOCAL, AF_UNSPEC,
 * with TLVs) headers, each fed whole, with the next layer's octets after
 * it, and cut at every length (always "more", never an error, until it
 * is whole); bad signatures, versions, commands, families, transports,
 * addresses, ports and TLVs; oversized ones; and random garbage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/proxy.h"

static const unsigned char sig2[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* Every proper prefix of a valid header asks for more. */
static void
check_prefixes(const void *buf, size_t len)
{
	struct proxy_hdr	 h;
	const char		*why;
	size_t			 i;

	for (i = 0; i < len; i++) {
		ssize_t r = proxy_parse(buf, i, &h, &why);

		if (r != 0)
			fail_msg("prefix %zu of %zu: %zd (%s)", i, len, r,
			    why != NULL ? why : "-");
	}
}

/* buf[0..len) is one whole valid header: parse it alone and followed. */
static void
parse_ok(const void *buf, size_t len, struct proxy_hdr *h)
{
	unsigned char	 more[PROXY_HDR_MAX + 64];
	const char	*why;
	ssize_t		 r;

	check_prefixes(buf, len);
	r = proxy_parse(buf, len, h, &why);
	if (r != (ssize_t)len)
		fail_msg("whole: %zd, want %zu (%s)", r, len,
		    why != NULL ? why : "-");
	/* The octets after the header are not its. */
	memcpy(more, buf, len);
	memcpy(more + len, "USER a\r\n", 8);
	assert_int_equal(proxy_parse(more, len + 8, h, &why), (ssize_t)len);
}

static void
parse_bad(const void *buf, size_t len, const char *want)
{
	struct proxy_hdr	 h;
	const char		*why = NULL;

	assert_int_equal(proxy_parse(buf, len, &h, &why), -1);
	assert_non_null(why);
	if (want != NULL)
		assert_string_equal(why, want);
}

static void
parse_bad_str(const char *s, const char *want)
{
	parse_bad(s, strlen(s), want);
}

static void
assert_in4(const struct sockaddr_storage *ss, const char *addr, int port)
{
	const struct sockaddr_in *sin = (const void *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(sin->sin_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void
assert_in6(const struct sockaddr_storage *ss, const char *addr, int port)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
	    sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* ------------------------------------------------------------ v1 */

static void
test_v1_tcp4(void **state)
{
	static const char hdr[] = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\n";
	struct proxy_hdr h;

	(void)state;
	parse_ok(hdr, sizeof(hdr) - 1, &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_in4(&h.src, "192.0.2.7", 56324);
	assert_in4(&h.dst, "198.51.100.1", 110);
	assert_int_equal(h.srclen, sizeof(struct sockaddr_in));
}

static void
test_v1_tcp6(void **state)
{
	static const char hdr[] =
	    "PROXY TCP6 2001:db8::7 2001:db8::1 65535 995\r\n";
	struct proxy_hdr h;

	(void)state;
	parse_ok(hdr, sizeof(hdr) - 1, &h);
	assert_false(h.local);
	assert_in6(&h.src, "2001:db8::7", 65535);
	assert_in6(&h.dst, "2001:db8::1", 995);
	assert_int_equal(h.srclen, sizeof(struct sockaddr_in6));
}

/* The longest v1 header: 107 octets with CRLF (section 2.1). */
static void
test_v1_longest(void **state)
{
	static const char hdr[] = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	char long_unknown[PROXY_V1_MAX + 2];
	struct proxy_hdr h;

	(void)state;
	assert_int_equal(sizeof(hdr) - 1, PROXY_V1_MAX);
	parse_ok(hdr, sizeof(hdr) - 1, &h);
	/* One more octet before the CRLF is too long, even UNKNOWN. */
	memset(long_unknown, 'x', sizeof(long_unknown));
	memcpy(long_unknown, "PROXY UNKNOWN ", 14);
	memcpy(long_unknown + PROXY_V1_MAX - 1, "\r\n", 2);
	parse_bad(long_unknown, sizeof(long_unknown) - 1, "too-long");
	/* And without any CRLF, refused at 107 octets, not later. */
	memset(long_unknown + 14, 'x', sizeof(long_unknown) - 14);
	parse_bad(long_unknown, PROXY_V1_MAX, "too-long");
	assert_int_equal(proxy_parse(long_unknown, PROXY_V1_MAX - 1, &h,
	    &(const char *){ NULL }), 0);
}

static void
test_v1_unknown(void **state)
{
	static const char a[] = "PROXY UNKNOWN\r\n";
	static const char b[] = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
	struct proxy_hdr h;

	(void)state;
	parse_ok(a, sizeof(a) - 1, &h);
	assert_true(h.local);
	assert_int_equal(h.version, 1);
	parse_ok(b, sizeof(b) - 1, &h);
	assert_true(h.local);
}

static void
test_v1_bad(void **state)
{
	(void)state;
	parse_bad_str("PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\n",
	    "bad-v1");
	parse_bad_str("PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\rX",
	    "bad-v1");
	parse_bad_str("PROXY TCP4 192.0.2.7  198.51.100.1 56324 110\r\n",
	    "bad-v1");
	parse_bad_str("PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",
	    "bad-v1");
	parse_bad_str("PROXY TCP4 192.0.2.7 198.51.100.1 56324 110 1\r\n",
	    "bad-v1");
	parse_bad_str("PROXY TCP4 192.0.2.7 198.51.100.1 56324 110 \r\n",
	    "bad-v1");
	parse_bad_str("PROXY \r\n", "bad-v1");
	parse_bad_str("PROXY TCP5 1.2.3.4 1.2.3.4 1 1\r\n", "bad-v1-protocol");
	parse_bad_str("PROXY tcp4 1.2.3.4 1.2.3.4 1 1\r\n", "bad-v1-protocol");
	parse_bad_str("PROXY TCP4 2001:db8::1 1.2.3.4 1 1\r\n",
	    "bad-v1-address");
	parse_bad_str("PROXY TCP6 1.2.3.4 2001:db8::1 1 1\r\n",
	    "bad-v1-address");
	parse_bad_str("PROXY TCP4 1.2.3.256 1.2.3.4 1 1\r\n",
	    "bad-v1-address");
	parse_bad_str("PROXY TCP4 1.2.3.4 1.2.3.4 65536 1\r\n",
	    "bad-v1-address");
	parse_bad_str("PROXY TCP4 1.2.3.4 1.2.3.4 0110 1\r\n",
	    "bad-v1-address");
	parse_bad_str("PROXY TCP4 1.2.3.4 1.2.3.4 -1 1\r\n",
	    "bad-v1-address");
	parse_bad_str("PROXY TCP4 1.2.3.4 1.2.3.4 1 +1\r\n",
	    "bad-v1-address");
	/* A control octet or NUL is refused where it stands. */
	parse_bad("PROXY TCP4 1.2\0", 15, "bad-v1");
	parse_bad_str("PROXY TCP4 1.2\t", "bad-v1");
	parse_bad_str("PROXY TCP4 1.2\xff", "bad-v1");
}

static void
test_bad_signature(void **state)
{
	struct proxy_hdr h;
	const char *why;

	(void)state;
	parse_bad_str("USER alice\r\n", "bad-signature");
	parse_bad_str("PROXX ", "bad-signature");
	parse_bad_str("P ", "bad-signature");
	parse_bad_str("proxy TCP4", "bad-signature");
	parse_bad_str("\r\n\r\n\x01", "bad-signature");
	/* A TLS ClientHello where a header should be: the first octet. */
	parse_bad("\x16\x03\x01", 3, "bad-signature");
	parse_bad_str("\r\nQUIT\r\n", "bad-signature");
	assert_int_equal(proxy_parse("", 0, &h, &why), 0);
	assert_int_equal(proxy_parse("PRO", 3, &h, &why), 0);
}

/* ------------------------------------------------------------ v2 */

/* A v2 header: the fixed part and the payload; returns its length. */
static size_t
v2(unsigned char *buf, unsigned ver_cmd, unsigned fam, const void *payload,
    size_t plen)
{
	memcpy(buf, sig2, 12);
	buf[12] = (unsigned char)ver_cmd;
	buf[13] = (unsigned char)fam;
	buf[14] = (unsigned char)(plen >> 8);
	buf[15] = (unsigned char)plen;
	memcpy(buf + 16, payload, plen);
	return 16 + plen;
}

static const unsigned char inet_addrs[12] = {
	192, 0, 2, 7,  198, 51, 100, 1,  0xdc, 0x04,  0x00, 0x6e
};

static void
test_v2_inet(void **state)
{
	unsigned char	 buf[64];
	struct proxy_hdr h;
	size_t		 len;

	(void)state;
	len = v2(buf, 0x21, 0x11, inet_addrs, sizeof(inet_addrs));
	parse_ok(buf, len, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_in4(&h.src, "192.0.2.7", 56324);
	assert_in4(&h.dst, "198.51.100.1", 110);
}

static void
test_v2_inet6(void **state)
{
	unsigned char	 buf[64], pl[36];
	struct proxy_hdr h;
	size_t		 len;

	(void)state;
	memset(pl, 0, sizeof(pl));
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::7", pl), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", pl + 16), 1);
	pl[32] = 0x01; pl[33] = 0x00;		/* 256 */
	pl[34] = 0x03; pl[35] = 0xe3;		/* 995 */
	len = v2(buf, 0x21, 0x21, pl, sizeof(pl));
	parse_ok(buf, len, &h);
	assert_false(h.local);
	assert_in6(&h.src, "2001:db8::7", 256);
	assert_in6(&h.dst, "2001:db8::1", 995);
}

/* HAProxy's health check: LOCAL, with or without addresses. */
static void
test_v2_local(void **state)
{
	unsigned char	 buf[64];
	struct proxy_hdr h;
	size_t		 len;

	(void)state;
	len = v2(buf, 0x20, 0x00, "", 0);
	parse_ok(buf, len, &h);
	assert_true(h.local);
	assert_int_equal(h.version, 2);
	/* Its family and addresses are ignored, whatever they are. */
	len = v2(buf, 0x20, 0x31, "garbage", 7);
	parse_ok(buf, len, &h);
	assert_true(h.local);
	/* PROXY with AF_UNSPEC names no client either. */
	len = v2(buf, 0x21, 0x00, "", 0);
	parse_ok(buf, len, &h);
	assert_true(h.local);
}

static void
test_v2_tlvs(void **state)
{
	unsigned char	 buf[PROXY_HDR_MAX + 64], pl[PROXY_V2_LEN_MAX];
	struct proxy_hdr h;
	size_t		 len, n;

	(void)state;
	memcpy(pl, inet_addrs, 12);
	n = 12;
	/* PP2_TYPE_ALPN "pop3", PP2_TYPE_NOOP empty, PP2_TYPE_UNIQUE_ID. */
	memcpy(pl + n, "\x01\x00\x04pop3", 7), n += 7;
	memcpy(pl + n, "\x04\x00\x00", 3), n += 3;
	memcpy(pl + n, "\x05\x00\x02id", 5), n += 5;
	len = v2(buf, 0x21, 0x11, pl, n);
	parse_ok(buf, len, &h);
	assert_in4(&h.src, "192.0.2.7", 56324);
	/* A TLV running past the header. */
	pl[12 + 2] = 5;
	len = v2(buf, 0x21, 0x11, pl, 12 + 7);
	parse_bad(buf, len, "bad-v2-tlv");
	/* A TLV cut inside its type and length. */
	len = v2(buf, 0x21, 0x11, pl, 12 + 2);
	parse_bad(buf, len, "bad-v2-tlv");
	/* The longest payload allowed, a single padding TLV. */
	memset(pl + 12, 0, sizeof(pl) - 12);
	pl[12] = 0x04;
	pl[13] = (unsigned char)((PROXY_V2_LEN_MAX - 15) >> 8);
	pl[14] = (unsigned char)(PROXY_V2_LEN_MAX - 15);
	len = v2(buf, 0x21, 0x11, pl, PROXY_V2_LEN_MAX);
	assert_int_equal(len, PROXY_HDR_MAX);
	parse_ok(buf, len, &h);
}

static void
test_v2_bad(void **state)
{
	unsigned char	 buf[128], pl[64];

	(void)state;
	memset(pl, 0, sizeof(pl));
	parse_bad(buf, v2(buf, 0x11, 0x11, inet_addrs, 12), "bad-v2-version");
	parse_bad(buf, v2(buf, 0x31, 0x11, inet_addrs, 12), "bad-v2-version");
	parse_bad(buf, v2(buf, 0x22, 0x11, inet_addrs, 12), "bad-v2-command");
	parse_bad(buf, v2(buf, 0x21, 0x12, inet_addrs, 12),
	    "unsupported-transport");
	parse_bad(buf, v2(buf, 0x21, 0x10, inet_addrs, 12),
	    "unsupported-transport");
	parse_bad(buf, v2(buf, 0x21, 0x31, pl, 64), "unsupported-family");
	parse_bad(buf, v2(buf, 0x21, 0x41, pl, 12), "bad-v2-family");
	parse_bad(buf, v2(buf, 0x21, 0x11, inet_addrs, 11), "bad-v2-length");
	parse_bad(buf, v2(buf, 0x21, 0x21, pl, 35), "bad-v2-length");
	/* Judged by the fixed part alone: before the payload arrives. */
	v2(buf, 0x11, 0x11, inet_addrs, 12);
	parse_bad(buf, 13, "bad-v2-version");
}

/* A length over the bound is refused from the fixed part alone. */
static void
test_v2_oversized(void **state)
{
	unsigned char	 buf[16];
	struct proxy_hdr h;
	const char	*why;

	(void)state;
	memcpy(buf, sig2, 12);
	buf[12] = 0x21;
	buf[13] = 0x11;
	buf[14] = (unsigned char)((PROXY_V2_LEN_MAX + 1) >> 8);
	buf[15] = (unsigned char)(PROXY_V2_LEN_MAX + 1);
	parse_bad(buf, 16, "too-long");
	buf[14] = buf[15] = 0xff;
	parse_bad(buf, 16, "too-long");
	buf[14] = (unsigned char)(PROXY_V2_LEN_MAX >> 8);
	buf[15] = (unsigned char)PROXY_V2_LEN_MAX;
	assert_int_equal(proxy_parse(buf, 16, &h, &why), 0);
}

/*
 * Random octets, and valid headers with one octet changed: never a read
 * past len (ASan), never "more" at PROXY_HDR_MAX octets.
 */
static void
test_random(void **state)
{
	unsigned char	 buf[PROXY_HDR_MAX];
	struct proxy_hdr h;
	const char	*why;
	uint32_t	 x = 2463534242u;
	size_t		 i, j, len;
	ssize_t		 r;

	(void)state;
	for (i = 0; i < 20000; i++) {
		for (j = 0; j < sizeof(buf); j++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			buf[j] = (unsigned char)x;
		}
		if (i % 2 == 0)
			memcpy(buf, sig2, 12);
		else if (i % 4 == 1)
			memcpy(buf, "PROXY TCP4 ", 11);
		len = i % 3 == 0 ? sizeof(buf) : x % sizeof(buf);
		r = proxy_parse(buf, len, &h, &why);
		assert_true(r >= -1 && r <= (ssize_t)len);
		if (len == sizeof(buf))
			assert_int_not_equal(r, 0);
		if (r == -1)
			assert_non_null(why);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_longest),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_v2_inet),
		cmocka_unit_test(test_v2_inet6),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_tlvs),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_v2_oversized),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
