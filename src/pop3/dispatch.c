/*
 * dispatch: the command table, the dispatcher, the protocol as the
 * session sees it (start, input, overlong, gone), and the commands that
 * belong to no state in particular (CAPA, QUIT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/pidcache.h"
#include "pop3/authz.h"
#include "pop3/client.h"
#include "pop3/dispatch.h"
#include "pop3/maildrop.h"
#include "pop3/penalty.h"
#include "pop3/stream.h"
#include "pop3/transaction.h"

#define AUTHZ	POP3_AUTHORIZATION
#define TRANS	POP3_TRANSACTION

static pop3_handler cmd_capa, cmd_quit, cmd_stls;

/*
 * RFC 1939 sections 4-7, RFC 1460 (LAST), RFC 2449 (CAPA), RFC 5034
 * (AUTH), RFC 2595 (STLS).
 */
static const struct pop3_cmd cmds[] = {
	{ "CAPA", cmd_capa, AUTHZ | TRANS, 0, 0, 0 },
	{ "STLS", cmd_stls, AUTHZ,	   0, 0, 0 },
	{ "USER", cmd_user, AUTHZ,	   1, 1, 0 },
	{ "PASS", cmd_pass, AUTHZ,	   1, 1, CMDF_SECRET | CMDF_RESTLINE },
	{ "APOP", cmd_apop, AUTHZ,	   2, 2, CMDF_SECRET },
	{ "AUTH", cmd_auth, AUTHZ,	   0, 2, CMDF_SECRET },
	{ "QUIT", cmd_quit, AUTHZ | TRANS, 0, 0, 0 },
	{ "STAT", cmd_stat, TRANS,	   0, 0, 0 },
	{ "LIST", cmd_list, TRANS,	   0, 1, 0 },
	{ "RETR", cmd_retr, TRANS,	   1, 1, 0 },
	{ "DELE", cmd_dele, TRANS,	   1, 1, 0 },
	{ "NOOP", cmd_noop, TRANS,	   0, 0, 0 },
	{ "RSET", cmd_rset, TRANS,	   0, 0, 0 },
	{ "TOP",  cmd_top,  TRANS,	   2, 2, 0 },
	{ "UIDL", cmd_uidl, TRANS,	   0, 1, 0 },
	{ "LAST", cmd_last, TRANS,	   0, 0, 0 },
};
#define N_CMDS	(sizeof(cmds) / sizeof(cmds[0]))
_Static_assert(N_CMDS == POP3_N_CMDS, "POP3_N_CMDS (client.h)");

static struct pop3_cmd_stats stats[N_CMDS];

const struct pop3_cmd *
pop3_cmd_table(size_t *n_r)
{
	*n_r = N_CMDS;
	return cmds;
}

const struct pop3_cmd_stats *
pop3_cmd_stats(size_t *n_r)
{
	*n_r = N_CMDS;
	return stats;
}

/*
 * A linear scan, as the table is small; the first letters are compared
 * first (case folded: 0x20 is the only bit between an ASCII letter's
 * cases; a non-letter that passes is sorted out by strcasecmp()), so a
 * command costs one or two strcasecmp() calls, not nine on average
 * (7,000 instructions of a full session's 248,000).
 */
const struct pop3_cmd *
pop3_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_CMDS; i++)
		if (((cmds[i].name[0] ^ name[0]) & ~0x20) == 0 &&
		    strcasecmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/*
 * RFC 1939 section 3: a keyword of 3 or 4 characters, then arguments
 * separated by spaces. We split on runs of spaces and ignore trailing
 * ones, so "AUTH " (Outlook) is "AUTH".
 */
static int
split_args(char *p, char **argv, int max)
{
	int argc = 0;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return argc;
		if (argc == max)
			return max + 1;		/* too many */
		argv[argc++] = p;
		while (*p != ' ' && *p != '\0')
			p++;
		if (*p == ' ')
			*p++ = '\0';
	}
}

/* The debug line of a command; secret arguments are never logged. */
static void
log_command(struct client *c, const struct pop3_cmd *cmd, int argc,
    char **argv)
{
	char	 args[POP3_LINE_MAX], q[LOG_QUOTED_SIZE(POP3_LINE_MAX)];
	size_t	 n = 0;
	int	 i;

	args[0] = '\0';
	for (i = 0; i < argc && !(cmd->flags & CMDF_SECRET) &&
	    n < sizeof(args); i++)
		n += (size_t)snprintf(args + n, sizeof(args) - n, "%s%s",
		    i > 0 ? " " : "", argv[i]);
	session_debug(c->s, "event=command rip=%s cmd=%s args=%s",
	    session_peer(c->s), cmd->name, (cmd->flags & CMDF_SECRET) ?
	    "<hidden>" : log_quote(q, sizeof(q), args));
}

void
pop3_dispatch(struct client *c, char *line, size_t len)
{
	const struct pop3_cmd	*cmd;
	char			*argv[POP3_MAX_ARGS + 1], *args;
	char			 keyword[5];
	size_t			 klen, idx;
	int			 argc;
	enum cmd_result		 r;

	if (memchr(line, '\0', len) != NULL) {
		session_reply(c->s, "-ERR Invalid character in command.");
		pop3_bad_command(c);
		return;
	}
	klen = strcspn(line, " ");
	if (klen < 3 || klen > 4) {
		session_reply(c->s, "-ERR Unknown command.");
		pop3_bad_command(c);
		return;
	}
	memcpy(keyword, line, klen);
	keyword[klen] = '\0';
	args = line + klen;

	cmd = pop3_cmd_find(keyword);
	if (cmd == NULL || (cmd->fn == cmd_last && !c->cfg->enable_last)) {
		session_reply(c->s, "-ERR Unknown command.");
		pop3_bad_command(c);
		return;
	}
	idx = (size_t)(cmd - cmds);
	if ((cmd->states & c->state) == 0) {
		session_reply(c->s, "-ERR Command %s is not valid in this "
		    "state.", cmd->name);
		pop3_bad_command(c);
		return;
	}

	if (cmd->flags & CMDF_RESTLINE) {
		/* PASS: the rest of the line, spaces and all (RFC 1939 s. 7). */
		if (*args != ' ') {
			argc = 0;
		} else {
			argv[0] = args + 1;
			argc = 1;
		}
	} else
		argc = split_args(args, argv, POP3_MAX_ARGS);
	if (argc < cmd->min_args || argc > cmd->max_args) {
		session_reply(c->s, "-ERR Wrong number of arguments for %s.",
		    cmd->name);
		pop3_bad_command(c);
		return;
	}
	if (log_debug_enabled())
		log_command(c, cmd, argc, argv);

	session_touch(c->s);
	stats[idx].calls++;
	c->cmd_idx = (unsigned)idx;
	c->cmd_start_us = mono_us();
	r = cmd->fn(c, argc, argv);
	/* Answered now; a continuation or a wait ends it later. */
	if (r != CMD_CONT && r != CMD_WAIT)
		pop3_cmd_end(c);
	switch (r) {
	case CMD_OK:
		/* Not while a SASL exchange waits for its response. */
		if (c->sasl == SASL_NONE)
			c->bad_cmds = 0;
		break;
	case CMD_ERR:
		stats[idx].errors++;
		c->bad_cmds = 0;
		break;
	case CMD_BAD:
		stats[idx].errors++;
		pop3_bad_command(c);
		break;
	case CMD_CONT:
		c->bad_cmds = 0;
		pop3_start_cont(c);
		break;
	case CMD_WAIT:
		c->bad_cmds = 0;
		session_hold(c->s);
		break;
	case CMD_CLOSE:
		session_close(c->s, c->reason, true);
		break;
	}
}

/*
 * RFC 1939 section 4; RFC 1939 section 7 for the APOP timestamp, which
 * must be unique per greeting: pid, session id, and time.
 */
static void
pop3_greet(struct client *c)
{
	const struct cfg *cfg = c->cfg;

	/* No timestamp where APOP would be refused (authz_plaintext_ok()). */
	if (!cfg->apop || !authz_plaintext_ok(c)) {
		session_reply(c->s, "+OK %s ready.", EVPOP3D_NAME);
		return;
	}
	if (asprintf(&c->apop_ts, "<%ld.%llx.%lld@%s>", (long)pid_self(),
	    (unsigned long long)session_id(c->s), (long long)time(NULL),
	    cfg->hostname) == -1) {
		c->apop_ts = NULL;
		session_reply(c->s, "+OK %s ready.", EVPOP3D_NAME);
		return;
	}
	session_reply(c->s, "+OK %s ready. %s", EVPOP3D_NAME, c->apop_ts);
}

/*
 * RFC 2449 section 5: valid in both states; what is offered before login
 * is also offered after it. IMPLEMENTATION only after login (POP3-NOTES).
 * RFC 2595 section 4: STLS only where TLS can still be started; section
 * 2.3 (and RFC 5034 section 4): no USER nor SASL mechanisms where the
 * plaintext policy refuses them, so a client sees why it should STLS.
 */
static enum cmd_result
cmd_capa(struct client *c, int argc, char **argv)
{
	static const char capa[] =
	    "+OK Capability list follows\r\n"
	    "TOP\r\n";
	static const char rest[] =
	    "UIDL\r\n"
	    "PIPELINING\r\n"
	    "RESP-CODES\r\n"
	    "AUTH-RESP-CODE\r\n";
	static const char tail[] =
	    "EXPIRE NEVER\r\n"
	    "LOGIN-DELAY 0\r\n";
	bool plain = c->state != POP3_AUTHORIZATION || authz_plaintext_ok(c);

	(void)argc;
	(void)argv;
	session_write(c->s, capa, sizeof(capa) - 1);
	if (plain)
		session_write(c->s, "USER\r\n", 6);
	session_write(c->s, rest, sizeof(rest) - 1);
	if (plain)
		session_write(c->s, "SASL PLAIN LOGIN\r\n", 18);
	if (c->state == POP3_AUTHORIZATION && session_tls_available(c->s))
		session_write(c->s, "STLS\r\n", 6);
	session_write(c->s, tail, sizeof(tail) - 1);
	if (c->state == POP3_TRANSACTION)
		session_reply(c->s, "IMPLEMENTATION %s-%s", EVPOP3D_NAME,
		    EVPOP3D_VERSION);
	session_write(c->s, ".\r\n", 3);
	return CMD_OK;
}

/*
 * RFC 2595 section 4: STLS in AUTHORIZATION, before USER, once. After
 * the "+OK" the session discards what was pipelined behind it and starts
 * TLS; the client must ask CAPA again (its answer changes), and USER
 * given before is forgotten.
 */
static enum cmd_result
cmd_stls(struct client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (session_secure(c->s)) {
		session_reply(c->s, "-ERR TLS is already active.");
		return CMD_BAD;
	}
	if (!session_tls_available(c->s)) {
		session_reply(c->s, "-ERR TLS is not available.");
		return CMD_BAD;
	}
	if (c->have_user) {
		session_reply(c->s, "-ERR STLS is not allowed after USER.");
		return CMD_BAD;
	}
	session_reply(c->s, "+OK Begin TLS negotiation");
	free(c->user);
	c->user = NULL;
	c->have_user = 0;
	if (session_starttls(c->s) == -1) {
		c->reason = "starttls-failed";
		return CMD_CLOSE;
	}
	if (log_debug_enabled())
		session_debug(c->s, "event=starttls rip=%s",
		    session_peer(c->s));
	return CMD_OK;
}

/* RFC 1939 sections 4 and 6: QUIT ends AUTHORIZATION, or enters UPDATE. */
static enum cmd_result
cmd_quit(struct client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (c->state == POP3_TRANSACTION)
		return transaction_update(c);
	session_reply(c->s, "+OK %s signing off.", EVPOP3D_NAME);
	c->reason = "quit";
	return CMD_CLOSE;
}

/* ------------------------------------------------ the session's table */

static int
proto_start(struct session *s, void *arg)
{
	struct pop3_env	*env = arg;
	struct client	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->s = s;
	c->env = env;
	c->gen = pop3_gen_ref(env->gen);
	c->cfg = c->gen->cfg;
	c->state = POP3_AUTHORIZATION;
	c->reason = "closed";
	session_set_ctx(s, c);
	/* Over max_unauth_per_ip: refused, and closed (gone() freed c). */
	if (!penalty_connect(c))
		return 0;
	/* The login timeout runs from connect: a client must log in by then. */
	session_set_deadline(s, (uint64_t)c->cfg->login_timeout * 1000,
	    "login-timeout");
	pop3_greet(c);
	return 0;
}

static void
proto_input(struct session *s, char *line, size_t len)
{
	struct client *c = session_ctx(s);

	if (c->sasl != SASL_NONE)
		authz_sasl_response(c, line, len);
	else
		pop3_dispatch(c, line, len);
}

/* A line over POP3_LINE_MAX was discarded: -ERR, and it counts as bad. */
static void
proto_overlong(struct session *s)
{
	struct client *c = session_ctx(s);

	c->sasl = SASL_NONE;
	session_reply(s, "-ERR Line too long (maximum %d octets).",
	    POP3_LINE_MAX);
	pop3_bad_command(c);
}

/*
 * The session is closing. Jobs still running forget it (a lookup takes
 * the maildrop over); the maildrop is released without UPDATE (RFC 1939
 * section 6), given up at once so that the user's next login takes the
 * lock over even while the last output is still being flushed.
 */
static void
proto_gone(struct session *s)
{
	struct client		*c = session_ctx(s);
	struct session_summary	 sum;

	if (c == NULL)
		return;
	if (c->cont_next != NULL)
		c->cont_next->base.free(s, &c->cont_next->base);
	sum = (struct session_summary){ .user = c->user,
	    .message_count = c->n_msgs, .message_bytes = c->login_octets };
	stream_gone(c);
	authz_gone(c);
	penalty_gone(c);
	if (c->state != POP3_AUTHORIZATION)
		c->env->stats.logged_in--;
	transaction_gone(c);
	maildrop_gone(c);
	sum.state = pop3_state_name(c->state);
	sum.retr_count = c->n_retr;
	sum.retr_bytes = c->retr_bytes;
	sum.top_count = c->n_top;
	sum.top_bytes = c->top_bytes;
	sum.deleted_count = c->n_dele_done;
	session_set_summary(s, &sum);	/* copies the user */
	free(c->user);
	free(c->apop_ts);
	pop3_gen_unref(c->gen);
	free(c);
}

const struct session_proto pop3_proto = {
	.start = proto_start,
	.input = proto_input,
	.overlong = proto_overlong,
	.gone = proto_gone,
	.bye = "-ERR [SYS/TEMP] Server shutting down.",
};
