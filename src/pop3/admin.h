/*
 * admin: the protocol's answers to the admin socket (net/control.h):
 * who is logged in, kicking a user's sessions, the counters. main wires
 * them to the control commands; they write text lines, each ending in
 * "\n", to an evbuffer, with every client-chosen name escaped
 * (pop3_admin_name()) so that no name can make a line of its own.
 */
#ifndef EVPOP3D_POP3_ADMIN_H
#define EVPOP3D_POP3_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct pop3_env;
struct session_set;

/*
 * `who`: one line per user, by name, with the number of its sessions
 * and their client addresses:
 *	alice 2 (127.0.0.1 192.0.2.7)
 * A user's sessions are those logged in as it (one at most per maildrop:
 * the lock is exclusive) and those that named it with USER but are not
 * logged in (a login being checked, refused, or [IN-USE]). With verbose
 * (`who -1`) a header, then one line per session, those that named no
 * user yet too (USER "-"); STATE tells who is logged in:
 *	ID USER RIP LIP STATE LOGIN_S CONNECTED_S RETR TOP
 * Returns the number of sessions listed (verbose) or users (summary); -1
 * if out of memory (nothing written then).
 */
long	pop3_admin_who(struct session_set *set, struct evbuffer *out,
	    bool verbose);
/* Addresses listed per user in the summary; more are shown as " ...". */
#define POP3_ADMIN_WHO_ADDRS_MAX	16

/*
 * `kick USER`: close every logged-in session of user (exact name) at
 * once, without UPDATE (RFC 1939 section 6: only QUIT deletes), so that
 * its maildrop is released now. Sessions in UPDATE finish it first and
 * are counted in *updating_r. Returns the number closed.
 */
size_t	pop3_admin_kick(struct session_set *set, const char *user,
	    size_t *updating_r);


/*
 * name as it appears in admin replies: as is when made only of letters,
 * digits and "._@+=-" (and not "-" alone, which means no user), else
 * quoted and escaped as log_quote() does. buf: LOG_QUOTED_SIZE(len).
 */
const char *pop3_admin_name(char *buf, size_t len, const char *name);

#endif
