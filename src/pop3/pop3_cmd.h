/*
 * pop3_cmd: the command table and the dispatcher.
 *
 * One row per command: name, allowed states, argument count, flags and
 * handler. The dispatcher alone checks the keyword, the state and the
 * argument count and keeps the bad-command counter; handlers do only
 * semantics (Redis processCommand, OpenSMTPD check/proceed).
 */
#ifndef EVPOP3D_POP3_CMD_H
#define EVPOP3D_POP3_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "session/session.h"

#define CMDF_SECRET	0x01	/* never log the arguments */
#define CMDF_RESTLINE	0x02	/* one argument: the rest of the line */

#define POP3_MAX_ARGS	4

typedef enum cmd_result pop3_handler(struct session *s, int argc, char **argv);

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

/* Handle one complete command line (terminator removed). */
void	pop3_dispatch(struct session *s, char *line, size_t len);

/*
 * Count a bad command (answered already): unknown, wrong state, wrong
 * arguments, or invalid data (a user name, base64, a SASL message).
 * max_bad_commands in a row end the session, 5 before login.
 */
void	pop3_bad_command(struct session *s);

/* A line over POP3_LINE_MAX was discarded: -ERR, and it counts as bad. */
void	pop3_line_too_long(struct session *s);

/* The greeting (RFC 1939 section 4), with an APOP timestamp if enabled. */
void	pop3_greet(struct session *s);

/* The command table, for tests and statistics. */
const struct pop3_cmd	*pop3_cmd_table(size_t *n_r);
const struct pop3_cmd	*pop3_cmd_find(const char *name);
const struct pop3_cmd_stats *pop3_cmd_stats(size_t *n_r);

/* Parse a message number (RFC 1939: 1..n). Returns the 0-based index or -1. */
long	pop3_msgno(const struct session *s, const char *arg);

/* cmd_auth.c: AUTHORIZATION state. */
pop3_handler	cmd_user, cmd_pass, cmd_apop, cmd_auth;
/* The next line while s->sasl_wait is set (RFC 5034 section 4). */
void		cmd_auth_response(struct session *s, char *line, size_t len);
/* QUIT in TRANSACTION: UPDATE (RFC 1939 section 6). */
enum cmd_result	cmd_auth_update(struct session *s);
/*
 * The session is closing (no command will run again): give the maildrop
 * up at once, so that the user's next login takes the lock over even
 * while the last output is still being flushed (store.h disown()).
 */
void		cmd_auth_closing(struct session *s);
/* Release the maildrop without UPDATE; cancel pending login. */
void		cmd_auth_cleanup(struct session *s);
/*
 * Release md without UPDATE on a worker, ahead of queued logins, for a
 * session that is gone or cannot keep it; no other job may be using md.
 */
void		cmd_auth_release(struct server *srv, struct maildrop *md);

/* cmd_mail.c: TRANSACTION state. */
pop3_handler	cmd_stat, cmd_list, cmd_retr, cmd_dele, cmd_noop, cmd_rset,
		cmd_top, cmd_uidl, cmd_last;
/* Unmark every message, recount the octets, LAST to 0 (login, RSET). */
void		cmd_mail_reset(struct session *s);
/* Stop a long reply in progress and free what it holds. */
void		cmd_cont_free(struct session *s);
/*
 * Session teardown, before cmd_auth_cleanup(): a message lookup still
 * running in a worker (STORE_AGAIN) is detached and releases the
 * maildrop itself when it is done.
 */
void		cmd_mail_cleanup(struct session *s);

#endif
