/*
 * maildrop: the session's view of its maildrop (maildrop.c).
 */
#ifndef EVPOP3D_POP3_MAILDROP_H
#define EVPOP3D_POP3_MAILDROP_H

#include "pop3/client.h"

/* After login: c takes md over. */
void		maildrop_attach(struct client *c, struct maildrop *md);
/* Unmark every message, recount the octets, LAST to 0 (login, RSET). */
void		maildrop_reset(struct client *c);
/* Message number argument to a live message index, or -ERR and -1. */
long		maildrop_live_msg(struct client *c, const char *arg);
/*
 * May the loop release md itself (quick.h): local (c->md_local), and no
 * more messages than a loop's open would list.
 */
bool		maildrop_quick_release(const struct maildrop *md, bool local);
/*
 * Release md without UPDATE on a worker, ahead of queued logins, for a
 * session that is gone or cannot keep it; no other job may be using md.
 * local (c->md_local): md is on a local file system, and the loop may
 * do the release itself (quick.h).
 */
void		maildrop_release(struct pop3_env *env, struct maildrop *md,
		    bool local);
/* The session is gone: release what it holds (RFC 1939 section 6). */
void		maildrop_gone(struct client *c);

#endif
