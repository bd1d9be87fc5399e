/*
 * wire: message bytes to POP3 wire format (RFC 1939 section 3).
 *
 * Bare LF becomes CRLF, CRLF stays, a lone CR is an ordinary byte. A line
 * that begins with '.' gets one more '.' (dot-stuffing). A message whose
 * last line has no terminator gets a CRLF. The state carries across calls,
 * so input may be split anywhere, even between CR and LF.
 *
 * The "wire size" of a message (STAT, LIST, RFC 1939 section 11) is the
 * length of this output without the stuffed dots and without the final
 * ".CRLF": wire_count_*() computes exactly that, so sizes always agree with
 * what RETR sends.
 */
#ifndef EVPOP3D_WIRE_H
#define EVPOP3D_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

struct wire_enc {
	long		 body_lines;	/* TOP: body lines still to send; -1 = all */
	unsigned	 at_bol:1;	/* next byte starts a line */
	unsigned	 pending_cr:1;	/* a CR was seen, its LF may follow */
	unsigned	 in_body:1;	/* past the header/body blank line */
	unsigned	 line_empty:1;	/* current line has no bytes yet */
	unsigned	 done:1;	/* TOP limit reached: ignore the rest */
	uint64_t	 octets;	/* wire octets emitted, stuffing excluded */
};

/* top_lines < 0: the whole message (RETR); >= 0: TOP msg top_lines. */
void	wire_enc_init(struct wire_enc *e, long top_lines);

/*
 * Encode len bytes into out. Returns 1 once the encoder needs no more
 * input (a TOP limit was reached), 0 otherwise. out may be NULL to count
 * only (then nothing is appended but e->octets advances).
 */
int	wire_enc_feed(struct wire_enc *e, const char *buf, size_t len,
	    struct evbuffer *out);

/* Terminate the last line if needed and append ".\r\n" (unless out NULL). */
void	wire_enc_finish(struct wire_enc *e, struct evbuffer *out);

/* Wire size of a whole message given as one buffer (a convenience). */
uint64_t wire_size(const char *buf, size_t len);

#endif
