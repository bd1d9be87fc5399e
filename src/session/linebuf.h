/*
 * linebuf: bounded line extraction from an evbuffer.
 *
 * Lines end in CRLF or a bare LF (RFC 1939 section 3; popa3d does the same).
 * A line longer than max octets (terminator excluded) is never buffered
 * whole: it is reported once as LB_TOOLONG and the rest of it is discarded
 * up to and including its end of line, however many reads that takes.
 */
#ifndef EVPOP3D_LINEBUF_H
#define EVPOP3D_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum lb_result {
	LB_AGAIN,	/* no complete line yet */
	LB_LINE,	/* a line was copied to the caller's buffer */
	LB_TOOLONG,	/* a line exceeded max; it is being discarded */
};

struct linebuf {
	size_t		max;		/* longest accepted line */
	bool		discarding;	/* skipping the tail of a long line */
};

void		linebuf_init(struct linebuf *lb, size_t max);

/*
 * Take the next line from in. On LB_LINE, line (of at least lb->max + 1
 * bytes) holds the line without its terminator, NUL-terminated, and *len_r
 * its length (the line itself may contain NUL bytes; callers compare).
 */
enum lb_result	linebuf_read(struct linebuf *lb, struct evbuffer *in,
		    char *line, size_t *len_r);
/*
 * The same from the *len octets at *buf, which are taken as they are
 * read (*buf and *len advance). On LB_AGAIN what is left, if anything,
 * is the start of a line (at most lb->max + 1 octets): the caller keeps
 * it, ahead of what it reads next.
 */
enum lb_result	linebuf_take(struct linebuf *lb, const char **buf,
		    size_t *len, char *line, size_t *len_r);

#endif
