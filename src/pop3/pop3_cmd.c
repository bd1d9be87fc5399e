/*
 * pop3_cmd: the command table, the dispatcher, and the commands that
 * belong to no state in particular (CAPA, QUIT).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "pop3/pop3_cmd.h"
#include "net/server.h"
#include "session/session.h"

#define AUTHZ	POP3_AUTHORIZATION
#define TRANS	POP3_TRANSACTION

/* Dovecot allows 3 bad commands before login; we allow a few more. */
#define PRELOGIN_MAX_BAD	5

static pop3_handler cmd_capa, cmd_quit;

/* RFC 1939 sections 4-7, RFC 1460 (LAST), RFC 2449 (CAPA), RFC 5034 (AUTH). */
static const struct pop3_cmd cmds[] = {
	{ "CAPA", cmd_capa, AUTHZ | TRANS, 0, 0, 0 },
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

const struct pop3_cmd *
pop3_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_CMDS; i++)
		if (strcasecmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* A bad command: count it, and drop a client that sends only those. */
void
pop3_bad_command(struct session *s)
{
	unsigned limit = (unsigned)s->srv->cfg->max_bad_commands;

	if (s->state == POP3_AUTHORIZATION && limit > PRELOGIN_MAX_BAD)
		limit = PRELOGIN_MAX_BAD;
	if (++s->bad_cmds < limit)
		return;
	session_reply(s, "-ERR Too many bad commands, closing.");
	session_close(s, "bad-commands", true);
}

void
pop3_line_too_long(struct session *s)
{
	session_reply(s, "-ERR Line too long (maximum %d octets).",
	    POP3_LINE_MAX);
	pop3_bad_command(s);
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
log_command(struct session *s, const struct pop3_cmd *cmd, int argc,
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
	session_debug(s, "event=command rip=%s cmd=%s args=%s", s->rip,
	    cmd->name, (cmd->flags & CMDF_SECRET) ? "<hidden>" :
	    log_quote(q, sizeof(q), args));
}

void
pop3_dispatch(struct session *s, char *line, size_t len)
{
	const struct pop3_cmd	*cmd;
	char			*argv[POP3_MAX_ARGS + 1], *args;
	char			 keyword[5];
	size_t			 klen, idx;
	int			 argc;
	enum cmd_result		 r;

	if (memchr(line, '\0', len) != NULL) {
		session_reply(s, "-ERR Invalid character in command.");
		pop3_bad_command(s);
		return;
	}
	klen = strcspn(line, " ");
	if (klen < 3 || klen > 4) {
		session_reply(s, "-ERR Unknown command.");
		pop3_bad_command(s);
		return;
	}
	memcpy(keyword, line, klen);
	keyword[klen] = '\0';
	args = line + klen;

	cmd = pop3_cmd_find(keyword);
	if (cmd == NULL || (cmd->fn == cmd_last && !s->srv->cfg->enable_last)) {
		session_reply(s, "-ERR Unknown command.");
		pop3_bad_command(s);
		return;
	}
	idx = (size_t)(cmd - cmds);
	if ((cmd->states & s->state) == 0) {
		session_reply(s, "-ERR Command %s is not valid in this state.",
		    cmd->name);
		pop3_bad_command(s);
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
		session_reply(s, "-ERR Wrong number of arguments for %s.",
		    cmd->name);
		pop3_bad_command(s);
		return;
	}
	if (log_debug_enabled())
		log_command(s, cmd, argc, argv);

	session_touch(s);
	stats[idx].calls++;
	r = cmd->fn(s, argc, argv);
	switch (r) {
	case CMD_OK:
		/* Not while a SASL exchange waits for its response. */
		if (!s->sasl_wait)
			s->bad_cmds = 0;
		break;
	case CMD_ERR:
		stats[idx].errors++;
		s->bad_cmds = 0;
		break;
	case CMD_BAD:
		stats[idx].errors++;
		pop3_bad_command(s);
		break;
	case CMD_CONT:
		s->bad_cmds = 0;
		/* Start the long reply now; the write callback keeps it going. */
		(void)session_run_cont(s);
		break;
	case CMD_WAIT:
		s->bad_cmds = 0;
		s->waiting = 1;
		break;
	case CMD_CLOSE:
		session_close(s, s->reason, true);
		break;
	}
}

/*
 * RFC 1939 section 4; RFC 1939 section 7 for the APOP timestamp, which
 * must be unique per greeting: pid, session id, and time.
 */
void
pop3_greet(struct session *s)
{
	const struct cfg *cfg = s->srv->cfg;

	if (!cfg->apop) {
		session_reply(s, "+OK %s ready.", EVPOP3D_NAME);
		return;
	}
	if (asprintf(&s->apop_ts, "<%ld.%llx.%lld@%s>", (long)getpid(),
	    (unsigned long long)s->id, (long long)time(NULL),
	    cfg->hostname) == -1) {
		s->apop_ts = NULL;
		session_reply(s, "+OK %s ready.", EVPOP3D_NAME);
		return;
	}
	session_reply(s, "+OK %s ready. %s", EVPOP3D_NAME, s->apop_ts);
}

/*
 * RFC 2449 section 5: valid in both states; what is offered before login
 * is also offered after it. IMPLEMENTATION only after login (POP3-NOTES).
 */
static enum cmd_result
cmd_capa(struct session *s, int argc, char **argv)
{
	static const char capa[] =
	    "+OK Capability list follows\r\n"
	    "TOP\r\n"
	    "USER\r\n"
	    "UIDL\r\n"
	    "PIPELINING\r\n"
	    "RESP-CODES\r\n"
	    "AUTH-RESP-CODE\r\n"
	    "SASL PLAIN\r\n"
	    "EXPIRE NEVER\r\n"
	    "LOGIN-DELAY 0\r\n";

	(void)argc;
	(void)argv;
	session_write(s, capa, sizeof(capa) - 1);
	if (s->state == POP3_TRANSACTION)
		session_reply(s, "IMPLEMENTATION %s-%s", EVPOP3D_NAME,
		    EVPOP3D_VERSION);
	session_write(s, ".\r\n", 3);
	return CMD_OK;
}

/* RFC 1939 sections 4 and 6: QUIT ends AUTHORIZATION, or enters UPDATE. */
static enum cmd_result
cmd_quit(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (s->state == POP3_TRANSACTION)
		return cmd_auth_update(s);
	session_reply(s, "+OK %s signing off.", EVPOP3D_NAME);
	s->reason = "quit";
	return CMD_CLOSE;
}

long
pop3_msgno(const struct session *s, const char *arg)
{
	unsigned long	n;
	char		*end;

	/* Digits only: no sign, no spaces, no hex; at most 10 of them. */
	if (arg[0] < '1' || arg[0] > '9' || strlen(arg) > 10 ||
	    strspn(arg, "0123456789") != strlen(arg))
		return -1;
	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno != 0 || n == 0 || n > s->n_msgs)
		return -1;
	return (long)(n - 1);
}
