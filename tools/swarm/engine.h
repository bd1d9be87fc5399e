/*
 * engine: the swarm's libevent client engine.
 *
 * One event_base drives up to `concurrency` sessions, each a raw
 * non-blocking socket with one persistent read event and one timer (pause,
 * connect and reply timeouts share it).  Replies are parsed straight out
 * of a shared read buffer; only a partial line or bytes that arrive while
 * no expect is pending are copied into the session.  The hot path does no
 * malloc, no stdio and no name lookups: histograms are indexed by the verb
 * numbers the parser assigned.
 *
 * This header is free of libevent types so report.c and main.c need not
 * include it.
 */
#ifndef SWARM_ENGINE_H
#define SWARM_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "hist.h"
#include "procstat.h"
#include "scenario.h"

#define SWARM_MAX_CONCURRENCY	100000
#define SWARM_MAX_SOURCES	64
#define SWARM_STOP_GRACE_MS	5000

/* Violation kinds; the JSON report names them (engine_kind_name()). */
enum swarm_kind {
	VK_STATUS,	/* -ERR where +OK was expected, or the reverse */
	VK_SYNTAX,	/* malformed status or listing line, line too long */
	VK_TERMINATOR,	/* multi-line reply ended badly (EOF, ".\r") */
	VK_STAT_LIST,	/* LIST count/sum differ from STAT */
	VK_RETR_SIZE,	/* RETR body octets differ from LIST's size */
	VK_UIDL,	/* bad, duplicate or misnumbered unique-id */
	VK_TIMEOUT,	/* reply not complete within --reply-timeout */
	VK_CONNECT,	/* connect refused or timed out */
	VK_CLOSED,	/* unexpected EOF or reset */
	VK_BARE_LF,	/* the server sent a line ending in a bare LF */
	VK_UNSOLICITED,	/* too many bytes nobody asked for */
	VK_SCRIPT,	/* the scenario ran away (no wait in a long loop) */
	VK_TLS,		/* handshake failed or timed out, bad record,
			 * plaintext after the STLS reply */
	VK_NKINDS
};

/* --tls: TLS from connect (RFC 8314); --stls: STLS after the greeting
 * (RFC 2595 section 4), without asking CAPA first. */
enum swarm_tls {
	SWARM_TLS_OFF,
	SWARM_TLS_IMPLICIT,
	SWARM_TLS_STLS,
};

struct swarm_user {
	char		*name;
	char		*password;
	uint16_t	 name_len;
	uint16_t	 password_len;
};

struct swarm_opts {
	const struct sc_prog	*prog;
	const char		*scenario;	/* name for the report */
	struct sockaddr_storage	 dst;
	socklen_t		 dstlen;
	char			 host[64];
	unsigned		 port;
	struct sockaddr_storage	 src[SWARM_MAX_SOURCES];
	unsigned		 nsrc;
	unsigned		 concurrency;
	uint64_t		 sessions;	/* 0: no limit */
	double			 duration;	/* seconds */
	double			 rate;		/* sessions/s, 0: unlimited */
	const struct swarm_user	*users;
	uint32_t		 nusers;
	pid_t			 server_pid;	/* 0: don't sample */
	bool			 server_children;
	bool			 progress;	/* live line on stderr */
	unsigned		 connect_timeout_ms;
	unsigned		 reply_timeout_ms;
	int			 tls;		/* enum swarm_tls */
	bool			 tls_resume;	/* offer the slot's last session */
	const char		*cacert;	/* verify against it; NULL: no */
	const char		*tls_name;	/* SNI (and verified name) */
};

struct swarm_server {
	bool		 sampled;	/* start sample taken */
	pid_t		 pid;
	bool		 children;
	uint64_t	 cpu_us;	/* end - start */
	uint64_t	 rss_start, rss_peak, rss_end;
	uint64_t	 pss_start, pss_peak;
	uint64_t	 mem_rss, mem_pss;	/* at the memory point */
	uint64_t	 mem_open;		/* sessions open then */
	unsigned	 nprocs_peak;
};

struct swarm_tick {
	double		 t;		/* seconds since the start */
	uint64_t	 open;		/* sessions connected */
	uint64_t	 completed;	/* so far */
	uint64_t	 rss;		/* server RSS, 0 if not sampled */
};

struct swarm_stats {
	double		 elapsed_s;
	uint64_t	 started, completed, failed, aborted;
	uint64_t	 peak_open;
	uint64_t	 commands;
	uint64_t	 bytes_in, bytes_out;
	uint64_t	 err_replies;
	uint64_t	 violations[VK_NKINDS];
	uint64_t	 violations_total;
	uint64_t	*marks;		/* per prog->marks */
	struct hist	 session, connect, greeting;
	struct hist	 handshake;	/* TLS: first flight to Finished */
	uint64_t	 tls_full, tls_resumed;	/* completed handshakes */
	char		 tls_proto[16];	/* of the first handshake */
	char		 tls_cipher[64];
	struct hist	*verbs;		/* per prog->verbs */
	struct swarm_server server;
	uint64_t	 client_cpu_us;	/* the swarm's own utime+stime */
	struct swarm_tick *timeline;	/* one per second */
	uint32_t	 ntimeline, captimeline;
	bool		 interrupted;	/* a second SIGINT cut the run */
};

struct engine;

/*
 * Create an engine for opts (kept by reference: it must outlive the
 * engine).  Returns NULL with a message on stderr.
 */
struct engine	*engine_new(const struct swarm_opts *opts);
/* Run to the end (duration, -n, SIGINT).  Returns 0, or -1 on a setup
 * error (message on stderr). */
int		 engine_run(struct engine *e);
/* Results; valid until engine_free(). */
const struct swarm_stats *engine_stats(const struct engine *e);
void		 engine_free(struct engine *e);
const char	*engine_kind_name(enum swarm_kind k);

#endif
