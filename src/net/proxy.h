/*
 * proxy: the PROXY protocol header (HAProxy's proxy-protocol.txt, versions
 * 1 and 2) that a trusted proxy sends before anything else, naming the
 * client it relays. A pure parser: no I/O, no allocation, no clock; the
 * accept path (server.c) reads the octets and calls it as they come.
 *
 * Accepted: v1 "PROXY TCP4|TCP6|UNKNOWN ...\r\n" (at most 107 octets), and
 * v2 PROXY or LOCAL with AF_INET or AF_INET6 over STREAM (or AF_UNSPEC,
 * which like LOCAL and UNKNOWN names no client), with TLVs after the
 * addresses walked and skipped, the length bounded by PROXY_V2_LEN_MAX.
 * Anything else is refused with a short reason.
 */
#ifndef EVPOP3D_PROXY_H
#define EVPOP3D_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* v1: "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF. */
#define PROXY_V1_MAX		107
/* v2: the fixed part, and the most we take after it (addresses + TLVs). */
#define PROXY_V2_FIXED		16
#define PROXY_V2_LEN_MAX	1024
/* The longest header we ever hold. */
#define PROXY_HDR_MAX		(PROXY_V2_FIXED + PROXY_V2_LEN_MAX)

struct proxy_hdr {
	int			 version;	/* 1 or 2 */
	/*
	 * No client named (v1 UNKNOWN, v2 LOCAL or AF_UNSPEC: a health
	 * check): the connection's own address stands.
	 */
	bool			 local;
	struct sockaddr_storage	 src;		/* the client, unless local */
	socklen_t		 srclen;
	struct sockaddr_storage	 dst;		/* where it connected to */
	socklen_t		 dstlen;
};

/*
 * Parse the start of a connection, buf[0..len). Returns the length of
 * the complete header (> 0) with *h filled in; the octets after it are
 * the next layer's. 0: a valid beginning, more octets needed (never when
 * len >= PROXY_HDR_MAX). -1: not a valid header (at the first octet that
 * proves it), *why_r a static word for the log ("bad-signature",
 * "too-long", ...).
 */
ssize_t	proxy_parse(const void *buf, size_t len, struct proxy_hdr *h,
	    const char **why_r);

#endif
