/*
 * authz: AUTHORIZATION (authz.c).
 */
#ifndef EVPOP3D_POP3_AUTHZ_H
#define EVPOP3D_POP3_AUTHZ_H

#include <stddef.h>

#include "pop3/client.h"

/* USER, PASS, APOP, AUTH */
enum cmd_result	cmd_user(struct client *, int, char **);
enum cmd_result	cmd_pass(struct client *, int, char **);
enum cmd_result	cmd_apop(struct client *, int, char **);
enum cmd_result	cmd_auth(struct client *, int, char **);
/* The next line while c->sasl is set (RFC 5034 section 4). */
void		authz_sasl_response(struct client *c, char *line, size_t len);
/* The session is gone: a login job still running forgets it. */
void		authz_gone(struct client *c);

#endif
