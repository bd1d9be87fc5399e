/*
 * fuzz_proxy: the PROXY protocol header parser (net/proxy.h).
 *
 * Input: the first octets of a connection. Checks: the answer is -1, 0
 * or a length within the input; "more" (0) never once PROXY_HDR_MAX
 * octets are there; a refusal has a reason; a header is self-delimiting
 * (its own octets alone give the same length and addresses, and every
 * shorter prefix asks for more, as the accept path relies on when it
 * reads a header in pieces); a header naming a client names an IPv4 or
 * IPv6 one with a matching length.
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "net/proxy.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	 h, h2;
	const char		*why;
	ssize_t			 r, r2;
	size_t			 i, step;

	r = proxy_parse(data, size, &h, &why);
	FUZZ_CHECK(r >= -1 && r <= (ssize_t)size);
	if (r == 0)
		FUZZ_CHECK(size < PROXY_HDR_MAX);
	if (r == -1) {
		FUZZ_CHECK(why != NULL);
		return 0;
	}
	if (r == 0)
		return 0;
	FUZZ_CHECK(h.version == 1 || h.version == 2);
	if (!h.local) {
		FUZZ_CHECK((h.src.ss_family == AF_INET &&
		    h.srclen == sizeof(struct sockaddr_in)) ||
		    (h.src.ss_family == AF_INET6 &&
		    h.srclen == sizeof(struct sockaddr_in6)));
		FUZZ_CHECK(h.dst.ss_family == h.src.ss_family);
	}
	r2 = proxy_parse(data, (size_t)r, &h2, &why);
	FUZZ_CHECK(r2 == r);
	FUZZ_CHECK(h2.local == h.local && h2.srclen == h.srclen);
	FUZZ_CHECK(memcmp(&h2.src, &h.src, h.srclen) == 0);
	/* Every prefix asks for more (a stride for the long ones). */
	step = (size_t)r > 64 ? (size_t)r / 61 : 1;
	for (i = 0; i < (size_t)r; i += step)
		FUZZ_CHECK(proxy_parse(data, i, &h2, &why) == 0);
	FUZZ_CHECK(proxy_parse(data, (size_t)r - 1, &h2, &why) == 0);
	return 0;
}
