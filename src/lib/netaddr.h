/*
 * netaddr: socket addresses as text for logs and listings, one form
 * everywhere: "192.0.2.7:110", "[2001:db8::7]:110", or "unknown".
 */
#ifndef EVPOP3D_NETADDR_H
#define EVPOP3D_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "ADDR:PORT" of sa (salen octets) into buf; returns buf. */
const char	*netaddr_text(const struct sockaddr *sa, socklen_t salen,
		    char *buf, size_t len);
/* The address of sa without its port ("2001:db8::7"), or "unknown". */
const char	*netaddr_host(const struct sockaddr *sa, socklen_t salen,
		    char *buf, size_t len);
/* The same for the address fd is bound to (getsockname(2)). */
const char	*netaddr_local(int fd, char *buf, size_t len);
/*
 * A non-blocking, close-on-exec TCP socket bound to sa (SO_REUSEADDR;
 * IPv6 only for an IPv6 address), not yet listening. -1 with errno set
 * and *step_r naming the call that failed ("socket" or "bind").
 */
int		 netaddr_bind(const struct sockaddr *sa, socklen_t salen,
		    const char **step_r);
/*
 * The same with SO_REUSEPORT ("setsockopt" may fail too): several such
 * sockets on one address share its connections (net/supervise.h).
 */
int		 netaddr_bind_reuseport(const struct sockaddr *sa,
		    socklen_t salen, const char **step_r);
/* Is sa on loopback: 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104? */
bool		 netaddr_loopback(const struct sockaddr *sa);

#endif
