/*
 * stream: RETR and TOP (stream.c).
 */
#ifndef EVPOP3D_POP3_STREAM_H
#define EVPOP3D_POP3_STREAM_H

#include "pop3/client.h"

/*
 * Answer RETR (top_lines < 0) or TOP of message i: "+OK" and the message
 * as a continuation (CMD_CONT), CMD_WAIT while a worker looks a moved
 * message up, or -ERR.
 */
enum cmd_result	stream_message(struct client *c, long i, long top_lines);
/* The session is gone: a lookup still running takes the maildrop over. */
void		stream_gone(struct client *c);

#endif
