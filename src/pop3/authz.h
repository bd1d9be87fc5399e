/*
 * authz: AUTHORIZATION (authz.c).
 */
#ifndef EVPOP3D_POP3_AUTHZ_H
#define EVPOP3D_POP3_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include "pop3/client.h"

/* USER, PASS, APOP, AUTH */
enum cmd_result	cmd_user(struct client *, int, char **);
enum cmd_result	cmd_pass(struct client *, int, char **);
enum cmd_result	cmd_apop(struct client *, int, char **);
enum cmd_result	cmd_auth(struct client *, int, char **);
/* The next line while c->sasl is set (RFC 5034 section 4). */
void		authz_sasl_response(struct client *c, char *line, size_t len);
/*
 * May c log in with a clear-text secret now ([auth] plaintext, RFC 2595
 * section 2.3)? Always under TLS; else "allowed", or "localhost" from a
 * loopback peer.
 */
bool		authz_plaintext_ok(const struct client *c);
/* The session is gone: a login job still running forgets it. */
void		authz_gone(struct client *c);

#endif
