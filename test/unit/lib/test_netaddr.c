/*
 * netaddr: one text form for every address, and the loopback test the
 * plaintext policy and the start-up warning rely on.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/netaddr.h"

static socklen_t
parse(const char *ip, unsigned port, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return sizeof(*s4);
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	return sizeof(*s6);
}

static void
test_text(void **state)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 buf[64], tiny[6];

	(void)state;
	len = parse("192.0.2.7", 110, &ss);
	assert_string_equal(netaddr_text((struct sockaddr *)&ss, len, buf,
	    sizeof(buf)), "192.0.2.7:110");
	len = parse("2001:db8::7", 995, &ss);
	assert_string_equal(netaddr_text((struct sockaddr *)&ss, len, buf,
	    sizeof(buf)), "[2001:db8::7]:995");
	len = parse("::ffff:10.1.2.3", 1, &ss);
	assert_string_equal(netaddr_text((struct sockaddr *)&ss, len, buf,
	    sizeof(buf)), "[::ffff:10.1.2.3]:1");
	assert_string_equal(netaddr_text(NULL, 0, buf, sizeof(buf)),
	    "unknown");
	ss.ss_family = AF_UNIX;
	assert_string_equal(netaddr_text((struct sockaddr *)&ss, len, buf,
	    sizeof(buf)), "unknown");
	/* Cut, never overrun. */
	len = parse("192.0.2.7", 110, &ss);
	assert_string_equal(netaddr_text((struct sockaddr *)&ss, len, tiny,
	    sizeof(tiny)), "192.0");
}

/* What getnameinfo() says, for the addresses and ports taken by hand. */
static void
test_text_as_getnameinfo(void **state)
{
	static const char *const ips[] = { "0.0.0.0", "127.0.0.1",
	    "255.255.255.255", "10.0.0.1", "::", "::1", "2001:db8::7",
	    "::ffff:127.0.0.1", "fe80::1", "2001:db8:1:2:3:4:5:6" };
	static const unsigned ports[] = { 0, 1, 9, 10, 110, 995, 65535 };
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 buf[80], host[NI_MAXHOST], port[NI_MAXSERV];
	char			 want[NI_MAXHOST + NI_MAXSERV + 4];
	size_t			 i, j;

	(void)state;
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
		for (j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
			len = parse(ips[i], ports[j], &ss);
			assert_int_equal(getnameinfo((struct sockaddr *)&ss,
			    len, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV), 0);
			snprintf(want, sizeof(want), ss.ss_family == AF_INET6 ?
			    "[%s]:%s" : "%s:%s", host, port);
			assert_string_equal(netaddr_text((struct sockaddr *)&ss,
			    len, buf, sizeof(buf)), want);
		}
	/* A scope names its interface, as getnameinfo() does. */
	len = parse("fe80::1", 110, &ss);
	((struct sockaddr_in6 *)&ss)->sin6_scope_id = 1;	/* lo */
	assert_int_equal(getnameinfo((struct sockaddr *)&ss, len, host,
	    sizeof(host), NULL, 0, NI_NUMERICHOST), 0);
	snprintf(want, sizeof(want), "[%s]:110", host);
	assert_non_null(strchr(want, '%'));
	assert_string_equal(netaddr_text((struct sockaddr *)&ss, len, buf,
	    sizeof(buf)), want);
}

static void
test_local(void **state)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	char			 buf[64], want[64];
	int			 fd;

	(void)state;
	assert_string_equal(netaddr_local(-1, buf, sizeof(buf)), "unknown");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_string_equal(netaddr_local(fd, buf, sizeof(buf)), want);
	close(fd);
}

static void
test_loopback(void **state)
{
	static const struct {
		const char	*ip;
		bool		 loop;
	} cases[] = {
		{ "127.0.0.1", true }, { "127.255.0.9", true },
		{ "128.0.0.1", false }, { "10.0.0.1", false },
		{ "0.0.0.0", false }, { "::1", true }, { "::", false },
		{ "::ffff:127.0.0.1", true }, { "::ffff:127.9.9.9", true },
		{ "::ffff:10.0.0.1", false }, { "::2", false },
		{ "2001:db8::1", false },
	};
	struct sockaddr_storage	ss;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		(void)parse(cases[i].ip, 110, &ss);
		if (netaddr_loopback((struct sockaddr *)&ss) != cases[i].loop)
			fail_msg("%s: expected %d", cases[i].ip, cases[i].loop);
	}
	assert_false(netaddr_loopback(NULL));
	ss.ss_family = AF_UNIX;
	assert_false(netaddr_loopback((struct sockaddr *)&ss));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_text_as_getnameinfo),
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
