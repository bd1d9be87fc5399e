/*
 * reply: POP3 reply parsing for the swarm, free of libevent and sockets.
 *
 * The engine feeds whatever bytes a read() returned; these functions keep
 * only the few bytes of state a split needs, so a 20 MiB RETR body is
 * counted as it streams and never buffered.
 */
#ifndef SWARM_REPLY_H
#define SWARM_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define REPLY_STATUS_MAX	512	/* RFC 1939 section 3, CRLF included */

enum reply_status {
	REPLY_OK,
	REPLY_ERR,
	REPLY_BAD,		/* neither "+OK" nor "-ERR" */
};

/* Flags of a multi-line body. */
#define ML_DONE		0x01	/* the ".CRLF" terminator was consumed */
#define ML_BARE_LF	0x02	/* a line ended in LF without CR */

/*
 * Multi-line body counter (RFC 1939 section 3): counts the octets of the
 * body after un-stuffing, CRLF counted as two octets and the terminator
 * not at all, i.e. what LIST must have announced.  A bare LF is counted as
 * if it were CRLF and flagged.
 */
struct mlcount {
	uint64_t	 octets;
	uint64_t	 lines;
	uint8_t		 state;		/* internal */
	uint8_t		 flags;		/* ML_* */
};

void		 mlcount_init(struct mlcount *mc);

/*
 * Consume body bytes from buf.  Returns how many were consumed: all of
 * len, or fewer when the terminator ended the body (ML_DONE is then set
 * and the rest of buf belongs to the next reply).  Must not be called
 * once ML_DONE is set.
 */
size_t		 mlcount_feed(struct mlcount *mc, const char *buf, size_t len);

/* True if the counter stopped right after ".\r" (a broken terminator). */
int		 mlcount_at_dot_cr(const struct mlcount *mc);

/* Status of a reply's first line (without CRLF). */
enum reply_status reply_status(const char *line, size_t len);

/*
 * "+OK nn mm [...]" (RFC 1939 section 5, STAT).  Returns 0 or -1 if the
 * line is not of that form.
 */
int		 reply_parse_stat(const char *line, size_t len,
		    uint64_t *count, uint64_t *size);

/* Scan listing line "n size [...]" (section 5, LIST).  0 or -1. */
int		 reply_parse_list(const char *line, size_t len, uint64_t *n,
		    uint64_t *size);

/*
 * Unique-id listing line "n uid" (section 7, UIDL).  The uid must be 1..70
 * octets in 0x21..0x7E.  Returns 0 with *uid and *uidlen set, or -1.
 */
int		 reply_parse_uidl(const char *line, size_t len, uint64_t *n,
		    const char **uid, size_t *uidlen);

/* 64-bit FNV-1a, for the uniqueness check of UIDLs. */
uint64_t	 reply_hash(const char *s, size_t len);

#endif
