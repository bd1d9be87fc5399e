/*
 * client: the protocol's side of one session, and what the files of
 * src/pop3/ share. Private to src/pop3/.
 *
 *	dispatch.c	the command table, the dispatcher, the session's
 *			protocol table (start, input, overlong, gone), CAPA,
 *			QUIT in AUTHORIZATION
 *	authz.c		AUTHORIZATION: USER, PASS, APOP, AUTH (SASL PLAIN)
 *	transaction.c	TRANSACTION: STAT LIST UIDL RETR TOP DELE NOOP RSET
 *			LAST, and UPDATE (QUIT)
 *	maildrop.c	the session's view of its maildrop: marks, totals,
 *			attaching it at login and releasing it
 *	stream.c	RETR/TOP: a store reader through the wire encoder into
 *			the session's output
 *	env.c		the environment: cfg, passwd-file, worker pool,
 *			counters
 */
#ifndef EVPOP3D_POP3_CLIENT_H
#define EVPOP3D_POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wire.h"
#include "lib/worker.h"
#include "pop3/pop3.h"
#include "session/session.h"
#include "store/store.h"

#define CMDF_SECRET	0x01	/* never log the arguments */
#define CMDF_RESTLINE	0x02	/* one argument: the rest of the line */

#define POP3_MAX_ARGS	4

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

struct pop3_stats {
	uint64_t	logins;
	uint64_t	login_failures;
};

struct pop3_env {
	const struct cfg	*cfg;
	struct auth_db		*auth;
	struct worker_pool	*workers;
	struct pop3_stats	 stats;
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
	uint64_t		 counted;	/* octets added to it so far */
};

struct client {
	struct session		*s;
	struct pop3_env		*env;
	enum pop3_state		 state;
	unsigned		 bad_cmds;
	unsigned		 auth_failures;
	char			*user;		/* after USER or at login */
	char			*apop_ts;	/* greeting timestamp, if APOP */
	const char		*reason;	/* for CMD_CLOSE */

	unsigned		 have_user:1;	/* USER was accepted */
	unsigned		 sasl_wait:1;	/* next line is a SASL response */

	struct reply_cont	*cont_next;	/* CMD_CONT: to start */
	struct login_job	*login;		/* password check on a worker */
	struct update_job	*update;	/* UPDATE on a worker */
	struct locate_job	*locate;	/* RETR/TOP: lookup on a worker */

	/* TRANSACTION: the maildrop view (maildrop.c) */
	struct maildrop		*md;
	uint8_t			*deleted;	/* per message, 1 = DELE'd */
	size_t			 n_msgs;
	size_t			 n_deleted;
	uint64_t		 total_octets;	/* of undeleted messages */
	size_t			 last;		/* RFC 1460 LAST */

	/* For the disconnect line. */
	unsigned		 n_retr, n_top, n_dele_done;
	uint64_t		 retr_bytes, top_bytes;
};

typedef enum cmd_result pop3_handler(struct client *c, int argc, char **argv);

struct pop3_cmd {
	const char	*name;
	pop3_handler	*fn;
	unsigned	 states;	/* mask of enum pop3_state */
	int		 min_args;
	int		 max_args;
	unsigned	 flags;
};

struct pop3_cmd_stats {
	uint64_t	calls;
	uint64_t	errors;
};

/* dispatch.c */
/* Handle one complete command line (terminator removed). */
void	pop3_dispatch(struct client *c, char *line, size_t len);
/*
 * Count a bad command (answered already): unknown, wrong state, wrong
 * arguments, or invalid data (a user name, base64, a SASL message).
 * max_bad_commands in a row end the session, 5 before login.
 */
void	pop3_bad_command(struct client *c);
/* Change protocol state, tracing old->new at debug level. */
void	pop3_set_state(struct client *c, enum pop3_state state);
/* Start the reply a handler left in c->cont_next (CMD_CONT). */
void	pop3_start_cont(struct client *c);
/* The command table, for tests and statistics. */
const struct pop3_cmd	*pop3_cmd_table(size_t *n_r);
const struct pop3_cmd	*pop3_cmd_find(const char *name);
const struct pop3_cmd_stats *pop3_cmd_stats(size_t *n_r);
/* Parse a message number (RFC 1939: 1..n). Returns the 0-based index or -1. */
long	pop3_msgno(const struct client *c, const char *arg);

/* authz.c: AUTHORIZATION. */
pop3_handler	cmd_user, cmd_pass, cmd_apop, cmd_auth;
/* The next line while c->sasl_wait is set (RFC 5034 section 4). */
void		authz_sasl_response(struct client *c, char *line, size_t len);
/* The session is gone: a login job still running forgets it. */
void		authz_gone(struct client *c);

/* transaction.c: TRANSACTION and UPDATE. */
pop3_handler	cmd_stat, cmd_list, cmd_retr, cmd_dele, cmd_noop, cmd_rset,
		cmd_top, cmd_uidl, cmd_last;
/* QUIT in TRANSACTION: UPDATE (RFC 1939 section 6). */
enum cmd_result	transaction_update(struct client *c);
/* The session is gone: an UPDATE job still running forgets it. */
void		transaction_gone(struct client *c);
/*
 * A reply continuation for c running run; CMD_CONT (in c->cont_next), or
 * CMD_ERR after answering when out of memory.
 */
enum cmd_result	reply_cont_new(struct client *c,
		    enum session_cont_status (*run)(struct session *,
		    struct session_cont *));

/* maildrop.c: the session's maildrop view. */
/* After login: c takes md over. -1 (out of memory; md released) or 0. */
int		maildrop_attach(struct client *c, struct maildrop *md);
/* Unmark every message, recount the octets, LAST to 0 (login, RSET). */
void		maildrop_reset(struct client *c);
/* Message number argument to a live message index, or -ERR and -1. */
long		maildrop_live_msg(struct client *c, const char *arg);
/*
 * Release md without UPDATE on a worker, ahead of queued logins, for a
 * session that is gone or cannot keep it; no other job may be using md.
 */
void		maildrop_release(struct pop3_env *env, struct maildrop *md);
/* The session is gone: release what it holds (RFC 1939 section 6). */
void		maildrop_gone(struct client *c);

/* stream.c: RETR and TOP. */
/*
 * Answer RETR (top_lines < 0) or TOP of message i: "+OK" and the message
 * as a continuation (CMD_CONT), CMD_WAIT while a worker looks a moved
 * message up, or -ERR.
 */
enum cmd_result	stream_message(struct client *c, long i, long top_lines);
/* The session is gone: a lookup still running takes the maildrop over. */
void		stream_gone(struct client *c);

#endif
