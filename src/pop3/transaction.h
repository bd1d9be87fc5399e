/*
 * transaction: TRANSACTION and UPDATE (transaction.c).
 */
#ifndef EVPOP3D_POP3_TRANSACTION_H
#define EVPOP3D_POP3_TRANSACTION_H

#include "pop3/client.h"

/* STAT LIST RETR DELE NOOP RSET TOP UIDL LAST */
enum cmd_result	cmd_stat(struct client *, int, char **);
enum cmd_result	cmd_list(struct client *, int, char **);
enum cmd_result	cmd_retr(struct client *, int, char **);
enum cmd_result	cmd_dele(struct client *, int, char **);
enum cmd_result	cmd_noop(struct client *, int, char **);
enum cmd_result	cmd_rset(struct client *, int, char **);
enum cmd_result	cmd_top(struct client *, int, char **);
enum cmd_result	cmd_uidl(struct client *, int, char **);
enum cmd_result	cmd_last(struct client *, int, char **);
/* QUIT in TRANSACTION: UPDATE (RFC 1939 section 6). */
enum cmd_result	transaction_update(struct client *c);
/* The session is gone: an UPDATE job still running forgets it. */
void		transaction_gone(struct client *c);

#endif
