/*
 * client: what every handler uses: the protocol state, the count of bad
 * commands, reply continuations, message numbers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "pop3/client.h"

/* Dovecot allows 3 bad commands before login; we allow a few more. */
#define PRELOGIN_MAX_BAD	5

const char *
pop3_state_name(enum pop3_state state)
{
	switch (state) {
	case POP3_AUTHORIZATION:
		return "AUTHORIZATION";
	case POP3_TRANSACTION:
		return "TRANSACTION";
	case POP3_UPDATE:
		return "UPDATE";
	}
	return "?";
}

void
pop3_set_state(struct client *c, enum pop3_state state)
{
	if (log_debug_enabled())
		session_debug(c->s, "event=state from=%s to=%s",
		    pop3_state_name(c->state), pop3_state_name(state));
	c->state = state;
	if (state == POP3_TRANSACTION)
		c->login_ms = mono_ms();
	/* The login deadline becomes the idle limit (RFC 1939 section 3). */
	if (state == POP3_TRANSACTION)
		session_set_idle(c->s, (uint64_t)c->cfg->idle_timeout *
		    1000);
}

/* A bad command: count it, and drop a client that sends only those. */
void
pop3_bad_command(struct client *c)
{
	unsigned limit = (unsigned)c->cfg->max_bad_commands;

	if (c->state == POP3_AUTHORIZATION && limit > PRELOGIN_MAX_BAD)
		limit = PRELOGIN_MAX_BAD;
	if (++c->bad_cmds < limit)
		return;
	session_reply(c->s, "-ERR Too many bad commands, closing.");
	session_close(c->s, "bad-commands", true);
}

/*
 * The end of a reply: a message cut off by the end of the session does
 * not count what is still queued, which will never be sent (retr= and
 * top= in the disconnect line are octets sent). The metric's total takes
 * the octets sent once, here: a Prometheus counter must never go down.
 */
static void
reply_cont_free(struct session *s, struct session_cont *sc)
{
	struct reply_cont	*rc = (struct reply_cont *)sc;
	size_t			 unsent = 0;

	if (session_closing(s) && rc->bytes_stat != NULL) {
		unsent = session_output_len(s);
		unsent = unsent < rc->counted ? unsent : rc->counted;
		*rc->bytes_stat -= unsent;
	}
	if (rc->bytes_total != NULL)
		*rc->bytes_total += rc->counted - unsent;
	/* The reply is whole, unless the session cut it short. */
	if (!session_closing(s))
		pop3_cmd_end(rc->c);
	if (rc->r != NULL)
		rc->r->ops->msg_close(rc->r);
	free(rc);
}

enum cmd_result
reply_cont_new(struct client *c, enum session_cont_status (*run)(
    struct session *, struct session_cont *))
{
	struct reply_cont *rc;

	/* malloc(), not calloc(): glibc's calloc() skips its thread cache */
	if ((rc = malloc(sizeof(*rc))) == NULL) {
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	*rc = (struct reply_cont){ .base = { .run = run,
	    .free = reply_cont_free }, .c = c };
	c->cont_next = rc;
	return CMD_CONT;
}

void
pop3_start_cont(struct client *c)
{
	struct reply_cont *rc = c->cont_next;

	c->cont_next = NULL;
	session_start_cont(c->s, &rc->base);
}

void
pop3_cmd_end(struct client *c)
{
	if (c->cmd_start_us == 0)
		return;
	metric_hist_observe(&c->env->metrics.cmd_latency[c->cmd_idx],
	    mono_us() - c->cmd_start_us);
	c->cmd_start_us = 0;
}

void
pop3_login_end(struct client *c)
{
	if (c->login_start_us != 0) {
		metric_hist_observe(&c->env->metrics.login_time,
		    mono_us() - c->login_start_us);
		c->login_start_us = 0;
	}
	pop3_cmd_end(c);
}

void
pop3_login_failed(struct pop3_env *env, const char *reason)
{
	metric_tally_add(&env->metrics.login_failed, reason);
}

void
pop3_store_error(struct pop3_env *env, enum store_err err)
{
	static const char *const kind[] = {
		[STORE_OK] = "ok", [STORE_TEMP] = "temp",
		[STORE_PERM] = "perm", [STORE_INUSE] = "in-use",
		[STORE_GONE] = "gone", [STORE_AGAIN] = "again",
	};

	metric_tally_add(&env->metrics.store_errors,
	    (size_t)err < sizeof(kind) / sizeof(kind[0]) ? kind[err] :
	    "other");
}

long
pop3_msgno(const struct client *c, const char *arg)
{
	uint64_t	n = 0;
	size_t		i;

	/*
	 * Digits only: no sign, no spaces, no hex, no leading zero; at most
	 * 10 of them. By hand: strspn() and strtoul() cost 200 instructions
	 * a RETR.
	 */
	if (arg[0] < '1' || arg[0] > '9')
		return -1;
	for (i = 0; arg[i] != '\0'; i++) {
		if (i == 10 || arg[i] < '0' || arg[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(arg[i] - '0');
	}
	if (n > c->n_msgs)
		return -1;
	return (long)(n - 1);
}
