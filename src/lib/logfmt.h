/*
 * logfmt: the logout line's format ([log] logout_format), like Dovecot's
 * pop3_logout_format: %t/%p TOP count/octets, %r/%b RETR, %d deleted,
 * %m messages, %s mailbox size, %i/%o octets in/out, and long names
 * %{user} %{rip} %{lip} %{duration} %{reason} %{left} ... (the table in
 * logfmt.c). %% is a '%'.
 *
 * The format is parsed once (logfmt_compile(), at config load) into a
 * short list of ops; logfmt_expand() only walks it. A variable without a
 * value in a session (tls= on a plain connection, the counters when the
 * protocol never started) is left out together with its label: the
 * literal text just before it, back to the last space ("retr=%r" gives
 * "" and " tls=%{tls}" gives "" too), so the line holds no "key=" pairs
 * without a value.
 */
#ifndef EVPOP3D_LOGFMT_H
#define EVPOP3D_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The default: what the disconnect line has always said after
 * "event=disconnect rip=ADDR " (test_fail2ban.py and other readers
 * depend on it).
 */
#define LOGFMT_LOGOUT_DEFAULT \
	"reason=%{reason} tls=%{tls} user=%{user} state=%{state} " \
	"retr=%r/%b top=%t/%p deleted=%d duration_ms=%{duration_ms}"

/* Longest format accepted, and most ops it may compile to. */
#define LOGFMT_MAX_LEN	1024

enum logfmt_var {
	LOGFMT_USER,		/* quoted with log_quote(); "-" if none */
	LOGFMT_RIP,		/* addr:port */
	LOGFMT_LIP,		/* addr:port, the server side */
	LOGFMT_REASON,
	LOGFMT_TLS,		/* protocol version; absent on plaintext */
	LOGFMT_STATE,
	LOGFMT_DURATION,	/* seconds, with milliseconds: "12.345" */
	LOGFMT_DURATION_MS,
	LOGFMT_INPUT,		/* octets received (after TLS) */
	LOGFMT_OUTPUT,		/* octets sent (before TLS) */
	LOGFMT_TOP_COUNT,
	LOGFMT_TOP_BYTES,
	LOGFMT_RETR_COUNT,
	LOGFMT_RETR_BYTES,
	LOGFMT_DELETED_COUNT,
	LOGFMT_MESSAGE_COUNT,	/* in the maildrop at login */
	LOGFMT_MESSAGE_BYTES,	/* their size */
	LOGFMT_LEFT,		/* messages left: count minus deleted */
	LOGFMT_SESSION,		/* the 16 hex digit session id */
	LOGFMT_NVARS
};

/*
 * The values of one session's logout line. Strings may be NULL: that
 * variable is then absent. has_proto: the protocol filled user, state
 * and the counters (else they are all absent).
 */
struct logfmt_values {
	const char	*user;		/* raw, as the client gave it */
	const char	*rip, *lip, *reason, *tls, *state;
	uint64_t	 session;
	uint64_t	 duration_ms;
	uint64_t	 input, output;
	uint64_t	 top_count, top_bytes, retr_count, retr_bytes;
	uint64_t	 deleted_count;
	uint64_t	 message_count, message_bytes;
	bool		 has_proto;
};

struct logfmt;

/*
 * Parse fmt. Returns 0 and a new format in *fmt_r (free with
 * logfmt_free()), or -1 with a reason in why: an unknown variable, an
 * unterminated "%{", a '%' at the end, a format too long.
 */
int	logfmt_compile(const char *fmt, struct logfmt **fmt_r, char *why,
	    size_t whylen);
void	logfmt_free(struct logfmt *fmt);
/* Does fmt use variable v (to skip computing what nobody reads)? */
bool	logfmt_uses(const struct logfmt *fmt, enum logfmt_var v);
/*
 * Write fmt with the values v into buf (len > 0, always NUL-terminated).
 * Returns the length written; a line longer than len is cut (the log
 * then marks it "...").
 */
size_t	logfmt_expand(const struct logfmt *fmt, const struct logfmt_values *v,
	    char *buf, size_t len);

#endif
