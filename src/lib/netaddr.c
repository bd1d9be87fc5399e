/*
 * netaddr: socket addresses as text.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/netaddr.h"

/* The decimal digits of v (a port, an octet) at p: their count. */
static size_t
netaddr_port(char *p, unsigned v)
{
	char	 tmp[8];
	size_t	 n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

const char *
netaddr_text(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	const struct sockaddr_in	*s4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)sa;
	char	 host[NI_MAXHOST], port[NI_MAXSERV], tmp[INET6_ADDRSTRLEN + 10];
	size_t	 n, i;

	/*
	 * At every accept: IPv4 and the port by hand (glibc's inet_ntop()
	 * is an sprintf(), 1,600 instructions a session), IPv6 by
	 * inet_ntop(); either way a fifth of getnameinfo()'s cost or less. A
	 * scoped IPv6 address ("fe80::1%eth0") takes getnameinfo(), which
	 * names the interface.
	 */
	if (sa != NULL && sa->sa_family == AF_INET &&
	    salen >= (socklen_t)sizeof(*s4)) {
		const unsigned char *b = (const unsigned char *)&s4->sin_addr;

		for (i = 0, n = 0; i < 4; i++) {
			n += netaddr_port(tmp + n, b[i]);
			tmp[n++] = i < 3 ? '.' : ':';
		}
		n += netaddr_port(tmp + n, ntohs(s4->sin_port));
	} else if (sa != NULL && sa->sa_family == AF_INET6 &&
	    salen >= (socklen_t)sizeof(*s6) && s6->sin6_scope_id == 0 &&
	    inet_ntop(AF_INET6, &s6->sin6_addr, tmp + 1, sizeof(tmp) - 1) !=
	    NULL) {
		tmp[0] = '[';
		n = strlen(tmp);
		tmp[n++] = ']';
		tmp[n++] = ':';
		n += netaddr_port(tmp + n, ntohs(s6->sin6_port));
	} else {
		if (sa == NULL || (sa->sa_family != AF_INET &&
		    sa->sa_family != AF_INET6) || getnameinfo(sa, salen, host,
		    sizeof(host), port, sizeof(port), NI_NUMERICHOST |
		    NI_NUMERICSERV) != 0)
			snprintf(buf, len, "unknown");
		else if (sa->sa_family == AF_INET6)
			snprintf(buf, len, "[%s]:%s", host, port);
		else
			snprintf(buf, len, "%s:%s", host, port);
		return buf;
	}
	if (len > 0) {
		if (n >= len)
			n = len - 1;
		memcpy(buf, tmp, n);
		buf[n] = '\0';
	}
	return buf;
}

const char *
netaddr_host(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	if (sa == NULL || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6) || getnameinfo(sa, salen, buf, len,
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(buf, len, "unknown");
	return buf;
}

const char *
netaddr_local(int fd, char *buf, size_t len)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (fd == -1 || getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1)
		return netaddr_text(NULL, 0, buf, len);
	return netaddr_text((struct sockaddr *)&ss, sslen, buf, len);
}

bool
netaddr_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6	*s6;
	const uint8_t			*a;

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)
		    ->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family != AF_INET6)
		return false;
	s6 = (const struct sockaddr_in6 *)(const void *)sa;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return true;
	a = s6->sin6_addr.s6_addr;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && a[12] == 127;
}

static int
bind_socket(const struct sockaddr *sa, socklen_t salen, bool reuseport,
    const char **step_r)
{
	int fd, on = 1, saved;

	*step_r = "socket";
	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	*step_r = "setsockopt";
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof(on)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	*step_r = "bind";
	if (bind(fd, sa, salen) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
netaddr_bind(const struct sockaddr *sa, socklen_t salen, const char **step_r)
{
	return bind_socket(sa, salen, false, step_r);
}

int
netaddr_bind_reuseport(const struct sockaddr *sa, socklen_t salen,
    const char **step_r)
{
	return bind_socket(sa, salen, true, step_r);
}
