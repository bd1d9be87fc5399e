/*
 * session: one client connection, whatever protocol it speaks: its
 * lifecycle, line reading, output with backpressure, timers, and teardown.
 *
 * The session reads and writes a plain socket itself
 * (session_new_socket()), or through a bufferevent it is given (a TLS
 * socket for implicit TLS, a pair in tests), and it is the only thing
 * that writes to the connection. It knows TLS only through the hooks in
 * struct session_tls (net provides them): STLS gives its plain socket to
 * a TLS socket bufferevent (session_starttls()). It knows the protocol
 * through one small table (struct session_proto): start, input,
 * overlong, gone. Long replies are continuations (struct session_cont)
 * that the protocol embeds in its own struct: the session runs one each
 * time the output drains below the low watermark, and holds pipelined
 * input back until it is done (RFC 2449 section 6.6).
 *
 * A session is never freed from a callback that still uses it:
 * session_close() marks it, flushes the last reply, and frees it from a
 * deferred event (Redis freeClientAsync, Dovecot client_disconnect).
 *
 * The sessions of a process form a set (struct session_set): their list,
 * the queue of sessions with output to write before the loop polls again,
 * and the source of session ids.
 */
#ifndef EVPOP3D_SESSION_H
#define EVPOP3D_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct logfmt;

struct bufferevent;
struct event_base;
struct evbuffer;
struct session;
struct session_set;

/* What a continuation's run() asks for. */
enum session_cont_status {
	SESSION_CONT_MORE,	/* output queued; run me again once it drains */
	SESSION_CONT_DONE,	/* the reply is complete: take the next command */
	SESSION_CONT_CLOSE,	/* close the session (reason in close_reason) */
};

/*
 * A long reply in progress. The protocol embeds this in its own struct
 * and casts back. run() appends to session_output() and returns; free()
 * releases what the reply holds, when it is done or the session closes
 * (session_closing() tells which).
 */
struct session_cont {
	enum session_cont_status (*run)(struct session *s,
				     struct session_cont *c);
	void		(*free)(struct session *s, struct session_cont *c);
	const char	*close_reason;	/* with SESSION_CONT_CLOSE */
};

/*
 * The protocol, seen from the session. Every call is made on the loop,
 * never after gone().
 */
struct session_proto {
	/*
	 * A new connection: greet, set the first timeout, and keep the
	 * protocol's state with session_set_ctx(). arg is the set's
	 * (struct session_params). -1 (out of memory) closes at once.
	 */
	int	(*start)(struct session *s, void *arg);
	/*
	 * One complete line, without its terminator, NUL-terminated; it may
	 * contain NUL bytes (len tells). Wiped by the session afterwards.
	 */
	void	(*input)(struct session *s, char *line, size_t len);
	/* A line longer than line_max was discarded. */
	void	(*overlong)(struct session *s);
	/*
	 * The session is closing: no input will come and nothing more may
	 * be written. Release everything (once only), free the state, and
	 * leave a summary for the disconnect line (session_set_summary()).
	 */
	void	(*gone)(struct session *s);
	/* Said to a session idle at a server stop, before it is closed. */
	const char	*bye;
};

/*
 * TLS, seen from the session (net/tls.c fills it in; wrap NULL: no TLS).
 * The session never sees OpenSSL: it hands bufferevents to these.
 */
struct session_tls {
	/*
	 * STLS: a server-side TLS socket bufferevent on fd, the session's
	 * plain socket (nothing is pending on it), its handshake pending,
	 * that closes fd when freed. NULL on error: fd is then still the
	 * caller's.
	 */
	struct bufferevent	*(*wrap)(void *arg, struct event_base *base,
				    int fd);
	/* An established TLS bufferevent's protocol and cipher (static). */
	const char		*(*version)(struct bufferevent *bev);
	const char		*(*cipher)(struct bufferevent *bev);
	/* Why its handshake failed, for the log: no secrets. */
	void			 (*error)(struct bufferevent *bev, char *buf,
				    size_t len);
	/*
	 * An established TLS bufferevent with nothing left to send is
	 * about to be freed: send a close_notify alert if the socket takes
	 * it at once. Never blocks, never waits for the peer's.
	 */
	void			 (*shutdown)(struct bufferevent *bev);
	void			*arg;		/* for wrap */
};

struct session_params {
	const struct session_proto	*proto;
	void				*arg;		/* for proto->start */
	size_t				 line_max;	/* longest input line */
	unsigned			 write_timeout;	/* s, peer not reading */
	/* s, from connect (SESSION_TLS) or STLS to a finished handshake */
	unsigned			 handshake_timeout;
	struct session_tls		 tls;		/* STLS, TLS log lines */
	/* The disconnect line after "rip=" ([log] logout_format); NULL:
	 * the default, LOGFMT_LOGOUT_DEFAULT. Not owned. */
	const struct logfmt		*logout;
};

/* session_new() flags */
#define SESSION_TLS	0x02	/* bev is TLS, its handshake pending */

/* A new set on base; params are copied. NULL on error. */
struct session_set	*session_set_new(struct event_base *base,
			    const struct session_params *params);
/* Free every session at once (no flushing), then the set. */
void			 session_set_free(struct session_set *set);
size_t			 session_set_count(const struct session_set *set);
/*
 * Octets every session of set has sent so far: taken from the sessions'
 * outputs, before TLS (a TLS session's are counted as plaintext).
 */
uint64_t		 session_set_bytes_out(const struct session_set *set);
/*
 * Graceful stop: say proto->bye to sessions waiting for a command and
 * close them; a session busy with one (a reply being sent, a worker
 * job) finishes it, and its next command gets the bye instead of an
 * answer. The protocol decides, in gone(), what closing without QUIT
 * means. The loop exits once the last session is gone, or breaks after
 * grace_s seconds, freeing what is left (session_set_cut()).
 */
void			 session_set_drain(struct session_set *set,
			    unsigned grace_s);
/* Free every session now and break the loop: a drain cut short. */
void			 session_set_cut(struct session_set *set);
/*
 * Replace the parameters (a reload): new sessions take line_max from
 * them; running ones read the timeouts and the TLS hooks when they use
 * them, so they see the new ones too.
 */
void			 session_set_params(struct session_set *set,
			    const struct session_params *params);
/*
 * Call fn(s, arg) for each session, oldest first, skipping those already
 * closing; fn may close s (session_close() defers the free) but no other
 * session. Returns how many fn was called for.
 */
size_t			 session_set_foreach(struct session_set *set,
			    void (*fn)(struct session *, void *), void *arg);

/*
 * Take over fd, a connected non-blocking plain socket (closed with the
 * session), for a new session of set from peer sa, and start the
 * protocol. key, keylen: the peer's key for the per-address limits
 * (lib/iptable.h), which net has computed once for the connection (at
 * most IPTABLE_ADDR_MAX octets; keylen 0 when no limit applies: an
 * exempt address, not IP); the session keeps it for session_peer_key().
 * NULL on error: fd is then still the caller's.
 */
struct session	*session_new_socket(struct session_set *set, int fd,
		    const struct sockaddr *sa, socklen_t salen,
		    const unsigned char *key, size_t keylen);
/*
 * The same over bev (enabled by the session; freed with it). bev may be
 * a filter (TLS): the layers under it get the session's write
 * watermarks, and a flushing close waits until they have sent all.
 * flags: SESSION_TLS: the protocol starts (greets) only once the
 * handshake is done, which must be within handshake_timeout; a failed
 * one closes the session with reason tls-handshake-failed. NULL on
 * error: bev is then still the caller's.
 */
struct session	*session_new(struct session_set *set, struct bufferevent *bev,
		    const struct sockaddr *sa, socklen_t salen,
		    const unsigned char *key, size_t keylen, unsigned flags);

/*
 * STLS (RFC 2595 section 4), after the protocol queued its "+OK": every
 * octet of input already received is discarded (commands pipelined after
 * STLS must never run inside TLS: the CVE-2011-0411 class), no more input
 * is taken, and once the "+OK" is out the socket's bufferevent is
 * given to a TLS socket bufferevent (session_tls.wrap; the session
 * must have been made by session_new_socket()). The next line the protocol
 * sees comes over TLS after the handshake, within handshake_timeout; a
 * failed handshake closes the session (tls-handshake-failed). -1 if TLS
 * is not configured, the session is no plain socket or is already secure
 * (nothing changed).
 */
int		 session_starttls(struct session *s);
/* TLS can be started (configured, not yet secure, not starting). */
bool		 session_tls_available(const struct session *s);
/* Under TLS: an implicit TLS listener, or after STLS's handshake. */
bool		 session_secure(const struct session *s);
/*
 * The peer is on this host: 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104
 * (for a plaintext policy).
 */
bool		 session_peer_loopback(const struct session *s);

/* The protocol's state for s (session_proto.start), and the set's arg. */
void		 session_set_ctx(struct session *s, void *ctx);
void		*session_ctx(const struct session *s);
/* A 64-bit id, unique across restarts, and the peer as "addr:port". */
uint64_t	 session_id(const struct session *s);
const char	*session_peer(const struct session *s);
/* The peer's address as given to session_new() (sa_family 0 if none). */
const struct sockaddr *session_peer_addr(const struct session *s);
/*
 * The peer's per-address limits key as given to session_new(), its
 * length in *len: 0 when the address's limits do not apply.
 */
const unsigned char *session_peer_key(const struct session *s, size_t *len);
/* The local end as "addr:port" ("unknown" if the socket cannot tell). */
void		 session_local(const struct session *s, char *buf, size_t len);
/* Milliseconds since the connection was accepted. */
uint64_t	 session_age_ms(const struct session *s);
/*
 * Why s ends, as its disconnect line says ("quit", "idle-timeout"...; a
 * static string named in code, never client text); "unknown" before.
 */
const char	*session_reason(const struct session *s);
/*
 * Have fn(s, arg) called once when s is freed, after proto->gone(),
 * whatever ends it (per-address counts kept outside the session). One
 * hook per session; a later call replaces it.
 */
void		 session_on_free(struct session *s,
		    void (*fn)(struct session *, void *), void *arg);

/*
 * Queue a reply line; CRLF is added. RFC 1939 section 3: at most 512
 * octets with CRLF; longer formatted text is cut.
 */
void		 session_reply(struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* Append raw bytes to the output (multi-line bodies). */
void		 session_write(struct session *s, const void *buf, size_t len);
/*
 * The output buffer, for a continuation that fills it in bulk (run()
 * only): append, never remove. The session sends it. NULL if out of
 * memory (a plain socket's is made when needed).
 */
struct evbuffer	*session_output(struct session *s);
size_t		 session_output_len(const struct session *s);
/* Octets received and not taken yet (a partial line, pipelined input). */
size_t		 session_input_len(const struct session *s);

/*
 * Install c as the reply in progress and run it once; the session runs it
 * again as the output drains, frees it when done (c->free), and closes if
 * it asks to. Input is held meanwhile.
 */
void		 session_start_cont(struct session *s, struct session_cont *c);

/*
 * Hold input (a worker job or a timer is on the command) until
 * session_resume(), which takes the pipelined commands that waited.
 */
void		 session_hold(struct session *s);
void		 session_resume(struct session *s);
/*
 * Hold input for us microseconds from now, then call fn (a failed-login
 * pause; a precise timer of the set, lib/ptimer.h, never sleep()). fn
 * must end with session_resume(), session_close() (which cancels the
 * pause), or session_hold() when it has started more work whose end
 * resumes or closes (a login looked at again); if the timer cannot be
 * armed the session is closed.
 */
void		 session_pause(struct session *s, uint64_t us,
		    void (*fn)(struct session *));

/*
 * Timeouts. A deadline closes the session with reason ms from now,
 * whatever it does (RFC 1939 has a client log in within a time); an idle
 * limit closes it ("idle-timeout") after ms without session_touch(),
 * a reply still being sent counting as activity (RFC 1939 section 3).
 * Each replaces the other.
 */
void		 session_set_deadline(struct session *s, uint64_t ms,
		    const char *reason);
void		 session_set_idle(struct session *s, uint64_t ms);
void		 session_touch(struct session *s);

/*
 * End the session for reason (a short word for the log line). Pending
 * output is flushed first when flush is true, until the write timeout.
 * Under TLS, a session that leaves nothing unsent ends with a
 * close_notify (session_tls.shutdown) if the socket takes it at once.
 */
void		 session_close(struct session *s, const char *reason, bool flush);
/*
 * Close for reason now (an administrator's kick): an idle session
 * (waiting for a command) is told bye (a reply line) first and flushed;
 * one busy with a reply or a worker job is closed at once, without it (a
 * line in the middle of a reply would corrupt it). A server stop lets
 * the busy ones finish instead (session_set_drain()).
 */
void		 session_close_bye(struct session *s, const char *bye,
		    const char *reason);
/* session_close() was called. */
bool		 session_closing(const struct session *s);
/*
 * What proto->gone() leaves for the disconnect line ([log]
 * logout_format): the user as the client gave it (copied; the line
 * quotes it), the protocol state (a static string) and the counters.
 */
struct session_summary {
	const char	*user;		/* NULL: none yet ("-") */
	const char	*state;
	uint64_t	 top_count, top_bytes, retr_count, retr_bytes;
	uint64_t	 deleted_count;
	uint64_t	 message_count, message_bytes;	/* at login */
};
void		 session_set_summary(struct session *s,
		    const struct session_summary *sum);

/*
 * Log a key=value line prefixed with this session's id: info level, or
 * debug. Put event= first and rip= before any value the client chose,
 * and quote those with log_quote() (lib/log.h).
 */
void		 session_log(const struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		 session_debug(const struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* The same at warning level (what an operator or fail2ban acts on). */
void		 session_warnx(const struct session *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

#endif
