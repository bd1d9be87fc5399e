/*
 * netaddr: socket addresses as text.
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "lib/netaddr.h"

const char *
netaddr_text(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

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
