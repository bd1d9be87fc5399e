/*
 * client: the protocol's side of one session (struct client), the
 * environment, and the few calls every handler uses. Private to
 * src/pop3/, whose files call one way only, from the top down:
 *
 *	dispatch.c	the command table, the dispatcher, the session's
 *			protocol table (start, input, overlong, gone), CAPA,
 *			QUIT in AUTHORIZATION
 *	authz.c		AUTHORIZATION: USER, PASS, APOP, AUTH (SASL PLAIN)
 *	transaction.c	TRANSACTION: STAT LIST UIDL RETR TOP DELE NOOP RSET
 *			LAST, and UPDATE (QUIT)
 *	stream.c	RETR/TOP: a store reader through the wire encoder into
 *			the session's output
 *	maildrop.c	the session's view of its maildrop: marks, totals,
 *			attaching it at login and releasing it
 *	client.c	state changes, bad commands, reply continuations,
 *			message numbers
 *
 * env.c (the environment: cfg, passwd-file, worker pool, counters) sits
 * beside dispatch.c. Each file's calls are declared in its own header.
 */
#ifndef EVPOP3D_POP3_CLIENT_H
#define EVPOP3D_POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/iptable.h"
#include "lib/metric.h"
#include "lib/ratelimit.h"
#include "lib/wire.h"
#include "lib/worker.h"
#include "pop3/pop3.h"
#include "session/session.h"
#include "store/store.h"

enum pop3_state {
	POP3_AUTHORIZATION	= 0x01,
	POP3_TRANSACTION	= 0x02,
	POP3_UPDATE		= 0x04,
};

enum cmd_result {
	CMD_OK,		/* done; take the next command */
	CMD_ERR,	/* done, the command failed (already answered) */
	CMD_BAD,	/* a bad command: counts towards max_bad_commands */
	CMD_CONT,	/* c->cont_next streams the rest of the reply */
	CMD_WAIT,	/* waiting for a worker or timer; input is held */
	CMD_CLOSE,	/* reply sent; close the connection (c->reason) */
};

/* What the next line is, in a SASL exchange (RFC 5034 section 4). */
enum sasl_wait {
	SASL_NONE,		/* a command */
	SASL_PLAIN,		/* the response to AUTH PLAIN's "+ " */
	SASL_LOGIN_USER,	/* to LOGIN's "Username:" */
	SASL_LOGIN_PASS,	/* to LOGIN's "Password:" */
};

struct pop3_stats {
	uint64_t	logged_in;		/* sessions now past login */
	uint64_t	logins;
	uint64_t	login_failures;
	uint64_t	refused_unauth;		/* max_unauth_per_ip */
	uint64_t	refused_user;		/* max_logins_per_user */
	uint64_t	penalized;		/* answers held by a penalty */
};

/* The commands in the table (dispatch.c checks it). */
#define POP3_N_CMDS	16

/* The protocol's metrics (pop3_metrics_write()); loop thread only. */
struct pop3_metrics {
	struct metric_tally	 login_failed;	/* by reason */
	struct metric_hist	 login_time;	/* credentials to answer */
	struct metric_hist	 cmd_latency[POP3_N_CMDS];	/* by table row */
	struct metric_tally	 store_errors;	/* by kind */
	uint64_t		 retr_bytes;	/* message octets sent */
	uint64_t		 top_bytes;
};

/*
 * What a session starts with and keeps: the configuration and the user
 * database. A reload makes a new one; the old one goes with the last
 * session or job holding it. References (the loop's thread only): the
 * environment's while it is current, each client's, each login job's.
 */
struct pop3_gen {
	unsigned		 refs;
	struct cfg		*cfg;		/* a reference */
	struct auth_db		*auth;		/* driver = passwd-file */
	struct auth_pgsql	*pg;		/* driver = pgsql, a reference */
};

struct pop3_env {
	struct event_base	*base;
	struct pop3_gen		*gen;		/* for new sessions */
	struct worker_pool	*workers;
	struct quick_hints	*hints;		/* quick.h: quick logins */
	struct pop3_stats	 stats;
	struct pop3_metrics	 metrics;
	/*
	 * penalty.c: per address (refs: sessions not logged in; the
	 * penalty fields), and per user and address (refs: logins and
	 * attempts). Exempt addresses are in neither.
	 */
	struct iptable		*ips;
	struct iptable		*userips;
	struct ratelimit	 log_unauth;	/* refusals' log lines */
	/*
	 * The pool is being freed: its last done() callbacks release
	 * maildrops in place instead of submitting jobs.
	 */
	bool			 stopping;
};

struct login_job;
struct update_job;
struct locate_job;

/*
 * A long reply in progress: LIST and UIDL listings, RETR and TOP. The
 * session runs base.run as the output drains.
 */
struct reply_cont {
	struct session_cont	 base;		/* first: we cast back */
	struct client		*c;
	size_t			 next;		/* listing: next index; msg */
	struct store_reader	*r;		/* RETR/TOP */
	struct wire_enc		 enc;
	uint64_t		*bytes_stat;	/* where to add octets sent */
	uint64_t		*bytes_total;	/* the metric's, at the end */
	uint64_t		 counted;	/* octets added to it so far */
};

struct client {
	struct session		*s;
	struct pop3_env		*env;
	struct pop3_gen		*gen;		/* a reference */
	const struct cfg	*cfg;		/* gen->cfg */
	enum pop3_state		 state;
	unsigned		 bad_cmds;
	unsigned		 auth_failures;
	char			*user;		/* after USER or at login */
	char			*apop_ts;	/* greeting timestamp, if APOP */
	const char		*reason;	/* for CMD_CLOSE */
	enum sasl_wait		 sasl;		/* the next line's SASL role */

	unsigned		 have_user:1;	/* USER was accepted */
	/* penalty.c: the address has limits (a key, session_peer_key()). */
	unsigned		 limited:1;
	/* md is on a local file system: its release may be quick (quick.h) */
	unsigned		 md_local:1;

	/* penalty.c: counts. */
	struct iptable_entry	*unauth;	/* ref while not logged in */
	struct iptable_entry	*userip;	/* ref for an attempt, a login */

	struct reply_cont	*cont_next;	/* CMD_CONT: to start */
	struct login_job	*login;		/* password check on a worker */
	struct update_job	*update;	/* UPDATE on a worker */
	struct locate_job	*locate;	/* RETR/TOP: lookup on a worker */

	/* TRANSACTION: the maildrop view (maildrop.c) */
	struct maildrop		*md;
	uint8_t			*deleted;	/* per message, 1 = DELE'd; NULL: none */
	size_t			 n_msgs;
	size_t			 n_deleted;
	uint64_t		 total_octets;	/* of undeleted messages */
	size_t			 last;		/* RFC 1460 LAST */

	/* The command being answered, for its latency (pop3_cmd_end()). */
	uint64_t		 cmd_start_us;	/* 0: none */
	unsigned		 cmd_idx;	/* its table row */
	uint64_t		 login_start_us; /* credentials given; 0: none */

	/* For the disconnect line, and `evpop3d who` (admin.c). */
	uint64_t		 login_ms;	/* mono_ms() at login */
	unsigned		 n_retr, n_top, n_dele_done;
	uint64_t		 retr_bytes, top_bytes;
	uint64_t		 login_octets;	/* maildrop size at login */
};

/* Change protocol state, tracing old->new at debug level. */
void	pop3_set_state(struct client *c, enum pop3_state state);
const char *pop3_state_name(enum pop3_state state);
/*
 * Count a bad command (answered already): unknown, wrong state, wrong
 * arguments, or invalid data (a user name, base64, a SASL message).
 * max_bad_commands in a row end the session, 5 before login.
 */
void	pop3_bad_command(struct client *c);
/*
 * A reply continuation for c running run; CMD_CONT (in c->cont_next), or
 * CMD_ERR after answering when out of memory.
 */
enum cmd_result	reply_cont_new(struct client *c,
		    enum session_cont_status (*run)(struct session *,
		    struct session_cont *));
/* Start the reply a handler left in c->cont_next (CMD_CONT). */
void	pop3_start_cont(struct client *c);
/*
 * The reply to the command dispatched last is complete (queued whole):
 * observe its latency, once. Called where each reply ends: the
 * dispatcher for a reply made at once, the end of a continuation, and
 * the answer of a command that waited (CMD_WAIT).
 */
void	pop3_cmd_end(struct client *c);
/* A login is answered (ok or not): observe its time once, and end the
 * command's (pop3_cmd_end()). */
void	pop3_login_end(struct client *c);
/* Count a failed login by reason (a fixed name, never client text). */
void	pop3_login_failed(struct pop3_env *env, const char *reason);
/* Count a store error of kind err (store.h); what is "read" for a read. */
void	pop3_store_error(struct pop3_env *env, enum store_err err);
/* Parse a message number (RFC 1939: 1..n). Returns the 0-based index or -1. */
long	pop3_msgno(const struct client *c, const char *arg);

#endif
