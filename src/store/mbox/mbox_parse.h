/*
 * mbox_parse: the mbox format, on buffers (no I/O), for the mbox driver.
 *
 * An mbox file is a sequence of entries. An entry starts with a separator
 * line "From ADDR DATE" at the start of the file or right after a '\n';
 * a "From " line counts as a separator only if its date parses (Dovecot's
 * rule, mbox_from_valid()), so a body line "From here on ..." does not
 * split a message. The message is what follows the separator line up to
 * the next separator, less ONE line terminator ("\n" or "\r\n") right
 * before that separator or at the end of the file: the blank line mbox
 * writers put between messages. Content-Length is never used.
 *
 * What a POP3 client sees of a message (mbox_filter): the header block
 * without the internal headers MDAs and IMAP servers add (Status,
 * X-Status, X-UID, X-IMAPbase, X-IMAP, X-Keywords: any case, with their
 * continuation lines), then the body with one '>' taken from each line
 * matching ^>+From  (mboxrd quoting).
 *
 * Everything here is streaming: input may be split anywhere (inside
 * "From ", a CRLF or a header name) and lines may be of any length; the
 * state is a few hundred bytes at most (struct mbox_filter, 208 on
 * LP64).
 *
 * Thread-safe: no shared state.
 */
#ifndef EVPOP3D_MBOX_PARSE_H
#define EVPOP3D_MBOX_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A longer "From " line (its terminator included) is no separator. */
#define MBOX_FROM_MAX		1024

/*
 * Is line (len bytes from "From ", without its line terminator) a
 * separator: "From ADDR DATE [...]" with an asctime(3)-like date,
 * "Www Mmm dd hh:mm[:ss] [zone] yyyy [zone]" (zone: a name or +hhmm), or
 * "Www, dd Mmm yyyy hh:mm[:ss]"; ADDR may be empty or "quoted"; whatever
 * follows the date ("remote from HOST") is ignored.
 */
bool	mbox_from_valid(const char *line, size_t len);

/*
 * The separator scanner: file bytes in, entries out. Every byte given to
 * it comes back exactly once, in file order, through one of the callbacks
 * (each returns 0, or -1 to stop the scan):
 *
 *	sep	a separator line (terminator included) at file offset off:
 *		a message starts after it;
 *	data	bytes of the current message;
 *	end	the current message is over; term is the dropped line
 *		terminator (0..2 bytes) that follows it.
 */
struct mbox_scan_cb {
	void	*arg;
	int	(*sep)(void *arg, uint64_t off, const char *line, size_t len);
	int	(*data)(void *arg, const char *p, size_t len);
	int	(*end)(void *arg, const char *term, size_t len);
};

enum mbox_scan_res {
	MBOX_SCAN_OK = 0,
	MBOX_SCAN_NOTMBOX,	/* the file does not start with a separator */
	MBOX_SCAN_STOPPED,	/* a callback returned -1 */
};

/*
 * The bytes the scanner may hand back unused (mbox_scan_feed()): a
 * separator candidate line and a few bytes.
 */
#define MBOX_SCAN_KEEP		(MBOX_FROM_MAX + 8)

struct mbox_scan {
	struct mbox_scan_cb	 cb;
	uint64_t		 off;		/* offset of the next byte */
	unsigned		 started:1;	/* a separator was seen */
	unsigned		 at_sep:1;	/* just after a separator */
};

void	mbox_scan_init(struct mbox_scan *sc, const struct mbox_scan_cb *cb);

/*
 * Feed buf (the file bytes from sc->off on). *used_r says how many were
 * consumed; the caller gives the rest again, with more bytes after them,
 * in the next call. Unless eof, at most MBOX_SCAN_KEEP bytes stay unused
 * (so a buffer of MBOX_SCAN_KEEP + N bytes always makes progress); with
 * eof (buf ends the file) all are used and the last message ended.
 */
enum mbox_scan_res mbox_scan_feed(struct mbox_scan *sc, const char *buf,
	    size_t len, bool eof, size_t *used_r);

/*
 * A fast 64-bit checksum of file bytes, to tell whether an entry is still
 * the one seen at open (not cryptographic). The result depends only on
 * the bytes, not on how they were split across updates.
 */
struct mbox_hash {
	uint64_t	 h[4];
	uint64_t	 len;
	unsigned char	 part[32];	/* bytes of an incomplete block */
	unsigned	 npart;
};

void		mbox_hash_init(struct mbox_hash *h);
/* The checksum of one buffer: init, update, final. */
uint64_t	mbox_hash_buf(const void *p, size_t len);
void		mbox_hash_update(struct mbox_hash *h, const void *p,
		    size_t len);
uint64_t	mbox_hash_final(const struct mbox_hash *h);

/* What the filter saw in a message's headers (mbox_filter_init()). */
#define MBOX_HDR_VALUE_MAX	80

struct mbox_hdr_info {
	/* X-UIDL, trimmed, if present (the first one); valid: a unique-id */
	char		 xuidl[MBOX_HDR_VALUE_MAX + 1];
	unsigned	 has_xuidl:1;
	unsigned	 xuidl_valid:1;	/* 1..70 chars in 0x21..0x7E */
	unsigned	 has_xuid:1;	/* X-UID: <number> */
	unsigned	 has_base:1;	/* X-IMAPbase/X-IMAP: <number> ... */
	unsigned	 has_ximap:1;	/* X-IMAP or X-IMAPbase present */
	unsigned	 pseudo:1;	/* the folder-internal pseudo message */
	uint32_t	 xuid;
	uint32_t	 uidvalidity;	/* of X-IMAPbase or X-IMAP */
};

/* The Subject of the UW-IMAP/Dovecot pseudo message. */
#define MBOX_PSEUDO_SUBJECT "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA"

/*
 * The client's view of one message: init, then run() over its bytes (as
 * the scanner's data callback gives them, or as read back from the file)
 * until eof. Output is never longer than the input; the filter holds at
 * most a header name or a ">>>From " prefix (counted, not stored) between
 * calls.
 */
struct mbox_filter {
	struct mbox_hdr_info *info;	/* NULL: nothing collected */
	uint64_t	 gt;		/* '>'s at the start of a body line */
	uint64_t	 pend_gt;	/* '>'s to emit before pend[] */
	unsigned	 state;
	unsigned	 nlen;		/* bytes in name[] */
	unsigned	 fidx;		/* bytes of "From " matched */
	unsigned	 pend_len, pend_off;
	unsigned	 cap;		/* header being collected */
	unsigned	 cap_len;
	unsigned	 drop:1;	/* the current header is internal */
	unsigned	 in_hdr:1;	/* output so far is header block */
	unsigned	 hdr_last:1;	/* pend[] ends the header block */
	unsigned	 cap_over:1;	/* the value did not fit */
	unsigned	 subject_seen:1;	/* the pseudo message's */
	unsigned	 xuid_seen:1;
	char		 name[32];
	char		 pend[40];
	char		 cap_buf[MBOX_HDR_VALUE_MAX + 1];
};

/* info may be NULL; if not, it is cleared and filled as headers go by. */
void	mbox_filter_init(struct mbox_filter *f, struct mbox_hdr_info *info);

/*
 * Filter up to inlen bytes of in into out (outcap bytes). Returns the
 * input consumed; *outlen_r gets the bytes written, *hdrlen_r (if not
 * NULL) how many of them, from the start, belong to the header block
 * (the blank line that ends it included). eof says in ends the message:
 * once everything was consumed and a call returned *outlen_r == 0 the
 * message is complete (mbox_filter_done()). A call makes progress
 * unless out is full.
 */
size_t	mbox_filter_run(struct mbox_filter *f, const char *in, size_t inlen,
	    bool eof, char *out, size_t outcap, size_t *outlen_r,
	    size_t *hdrlen_r);

/* After eof: true once every byte has been written out (and info set). */
bool	mbox_filter_done(const struct mbox_filter *f);

#endif
