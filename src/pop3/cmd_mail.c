/*
 * cmd_mail: the TRANSACTION state (RFC 1939 section 5, RFC 1460 LAST).
 *
 * Message numbers are 1-based on the wire and fixed for the session;
 * deleted messages keep their numbers and are invisible to every command
 * but RSET. LIST, UIDL, RETR and TOP stream as continuations. A message
 * that another program moved is looked up on a worker thread first
 * (STORE_AGAIN, see message_start()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "lib/log.h"
#include "pop3/pop3_cmd.h"
#include "net/server.h"
#include "session/session.h"
#include "store/store.h"
#include "lib/worker.h"

/* How much of a long reply to queue per refill. */
#define CONT_CHUNK	(64 * 1024)

/*
 * RETR or TOP of a message the driver has to look up (msg_open() said
 * STORE_AGAIN): msg_locate() runs on a worker thread while the session
 * waits. If the session is freed meanwhile (cmd_mail_cleanup()), the job
 * owns the maildrop and releases it once the lookup is over.
 */
struct locate_job {
	struct worker_job	 base;		/* first: we cast back */
	struct session		*s;		/* NULL once the session is gone */
	struct server		*srv;		/* for the release without s */
	uint64_t		 sess_id;	/* for the log without s */
	struct maildrop		*md;
	size_t			 i;
	long			 top_lines;
	enum store_err		 st;
	int			 errnum;	/* why st failed */
};

/* Message number argument to a live message index, or -ERR. */
static long
live_msg(struct session *s, const char *arg)
{
	long i = pop3_msgno(s, arg);

	if (i < 0) {
		session_reply(s, "-ERR No such message.");
		return -1;
	}
	if (s->deleted[i]) {
		session_reply(s, "-ERR Message %ld is deleted.", i + 1);
		return -1;
	}
	return i;
}

static enum cmd_result
cont_start(struct session *s, enum cmd_result (*fn)(struct session *))
{
	if ((s->cont = calloc(1, sizeof(*s->cont))) == NULL) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	s->cont->fn = fn;
	return CMD_CONT;
}

void
cmd_cont_free(struct session *s)
{
	struct session_cont	*c = s->cont;
	size_t			 unsent;

	if (c == NULL)
		return;
	/*
	 * A message cut off by the end of the session: what is still queued
	 * will never be sent, so it does not count (retr= and top= in the
	 * disconnect line are octets sent).
	 */
	if (s->closing && c->bytes_stat != NULL) {
		unsent = session_output_len(s);
		*c->bytes_stat -= unsent < c->counted ? unsent : c->counted;
	}
	store_stream_close(&s->cont->msg);
	free(s->cont);
	s->cont = NULL;
}

/*
 * Session teardown, before cmd_auth_cleanup(): a lookup still running
 * takes the maildrop over (s->md is NULL after), as it must not be
 * released under the worker (store.h); locate_done() releases it.
 */
void
cmd_mail_cleanup(struct session *s)
{
	if (s->locate == NULL)
		return;
	s->locate->s = NULL;
	s->locate = NULL;
	s->md = NULL;
}

void
cmd_mail_reset(struct session *s)
{
	if (s->n_deleted > 0)
		memset(s->deleted, 0, s->n_msgs);
	s->n_deleted = 0;
	s->last = 0;
	/* The driver's total was added up by open(), off the loop. */
	s->total_octets = maildrop_total(s->md);
}

/* RFC 1939 section 5: "+OK nn mm", deleted messages not counted. */
enum cmd_result
cmd_stat(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(s, "+OK %zu %llu", s->n_msgs - s->n_deleted,
	    (unsigned long long)s->total_octets);
	return CMD_OK;
}

/* LIST and UIDL without argument: one line per live message, then ".". */
static enum cmd_result
listing_cont(struct session *s, bool uidl)
{
	struct evbuffer		*out = bufferevent_get_output(s->bev);
	struct session_cont	*c = s->cont;

	while (c->next < s->n_msgs) {
		size_t i = c->next++;

		if (s->deleted[i])
			continue;
		if (uidl)
			evbuffer_add_printf(out, "%zu %s\r\n", i + 1,
			    maildrop_uidl(s->md, i));
		else
			evbuffer_add_printf(out, "%zu %llu\r\n", i + 1,
			    (unsigned long long)maildrop_size(s->md, i));
		if (evbuffer_get_length(out) >= CONT_CHUNK)
			return CMD_CONT;
	}
	evbuffer_add(out, ".\r\n", 3);
	return CMD_OK;
}

static enum cmd_result
list_cont(struct session *s)
{
	return listing_cont(s, false);
}

static enum cmd_result
uidl_cont(struct session *s)
{
	return listing_cont(s, true);
}

enum cmd_result
cmd_list(struct session *s, int argc, char **argv)
{
	long i;

	if (argc == 1) {
		if ((i = live_msg(s, argv[0])) < 0)
			return CMD_ERR;
		session_reply(s, "+OK %ld %llu", i + 1,
		    (unsigned long long)maildrop_size(s->md, (size_t)i));
		return CMD_OK;
	}
	session_reply(s, "+OK %zu messages (%llu octets)",
	    s->n_msgs - s->n_deleted, (unsigned long long)s->total_octets);
	return cont_start(s, list_cont);
}

/* RFC 1939 section 7: UIDL [msg]. */
enum cmd_result
cmd_uidl(struct session *s, int argc, char **argv)
{
	long i;

	if (argc == 1) {
		if ((i = live_msg(s, argv[0])) < 0)
			return CMD_ERR;
		session_reply(s, "+OK %ld %s", i + 1,
		    maildrop_uidl(s->md, (size_t)i));
		return CMD_OK;
	}
	session_reply(s, "+OK Unique-ID listing follows");
	return cont_start(s, uidl_cont);
}

/*
 * RETR and TOP: queue up to CONT_CHUNK octets of the message, then wait
 * for the output to drain (bufferevent write low watermark). A read
 * error mid-message cannot be reported in-band, so it ends the
 * connection.
 */
static enum cmd_result
message_cont(struct session *s)
{
	struct session_cont	*c = s->cont;
	struct wire_enc		*enc = &c->msg.enc;
	uint64_t		 listed;
	int			 rv;

	rv = store_stream_fill(&c->msg, bufferevent_get_output(s->bev),
	    CONT_CHUNK);
	/* Counted as queued; cmd_cont_free() takes back what is not sent. */
	*c->bytes_stat += enc->octets - c->counted;
	c->counted = enc->octets;
	if (rv == 0)
		return CMD_CONT;
	if (rv < 0) {
		/* errno is msg_read()'s (store.h). */
		log_warn("sess=%016llx event=read-error cmd=%s msg=%zu sent=%llu",
		    (unsigned long long)s->id, c->bytes_stat == &s->retr_bytes ?
		    "RETR" : "TOP", c->next + 1,
		    (unsigned long long)enc->octets);
		s->reason = "read-error";
		return CMD_CLOSE;
	}
	listed = maildrop_size(s->md, c->next);
	if (enc->body_lines < 0 && enc->octets != listed)
		session_log(s, "event=size-mismatch msg=%zu listed=%llu "
		    "sent=%llu", c->next + 1, (unsigned long long)listed,
		    (unsigned long long)enc->octets);
	return CMD_OK;
}

static void	locate_work(struct worker_job *);
static void	locate_done(struct worker_job *);

/*
 * RETR/TOP: message i could not be opened; errnum says why (0: unknown).
 * Logged with the session id, since the reply tells the client little.
 */
static enum cmd_result
message_fail(struct session *s, long i, long top_lines, enum store_err err,
    int errnum)
{
	const char		*cmd = top_lines < 0 ? "RETR" : "TOP";
	unsigned long long	 id = (unsigned long long)s->id;

	if (err == STORE_GONE) {
		session_log(s, "event=message-gone cmd=%s msg=%ld", cmd, i + 1);
		session_reply(s, "-ERR Message %ld was removed by another "
		    "program.", i + 1);
		return CMD_ERR;
	}
	if (err == STORE_AGAIN)	/* moved again during its lookup, or no lookup */
		log_warnx("sess=%016llx event=open-error cmd=%s msg=%ld "
		    "reason=moved", id, cmd, i + 1);
	else if (errnum != 0) {
		errno = errnum;
		log_warn("sess=%016llx event=open-error cmd=%s msg=%ld", id,
		    cmd, i + 1);
	} else
		log_warnx("sess=%016llx event=open-error cmd=%s msg=%ld", id,
		    cmd, i + 1);
	session_reply(s, "-ERR %s Cannot read message %ld.",
	    store_err_code(err == STORE_AGAIN ? STORE_TEMP : err), i + 1);
	return CMD_ERR;
}

/*
 * Open message i and answer: "+OK" and the message as a continuation, or
 * -ERR. With may_wait, a message the driver has to look up first
 * (STORE_AGAIN) is looked up by a worker job: CMD_WAIT, and
 * locate_done() comes back here without may_wait, so a message that
 * moved again meanwhile gets -ERR [SYS/TEMP] rather than another lookup.
 */
static enum cmd_result
message_start(struct session *s, long i, long top_lines, bool may_wait)
{
	struct store_stream	 st;
	struct locate_job	*job;
	enum store_err		 err;
	enum cmd_result		 res;
	int			 errnum;

	err = store_stream_open(s->md, (size_t)i, top_lines, &st);
	errnum = errno;		/* why, on STORE_TEMP or STORE_PERM */
	if (err == STORE_AGAIN && may_wait && s->md->ops->msg_locate != NULL &&
	    (job = calloc(1, sizeof(*job))) != NULL) {
		job->base.work = locate_work;
		job->base.done = locate_done;
		job->s = s;
		job->srv = s->srv;
		job->sess_id = s->id;
		job->md = s->md;
		job->i = (size_t)i;
		job->top_lines = top_lines;
		s->locate = job;
		s->waiting = 1;
		worker_submit(s->srv->workers, &job->base);
		return CMD_WAIT;
	}
	if (err != STORE_OK)
		return message_fail(s, i, top_lines, err, errnum);
	if ((res = cont_start(s, message_cont)) != CMD_CONT) {
		store_stream_close(&st);
		return res;
	}
	s->cont->msg = st;
	s->cont->next = (size_t)i;
	if (top_lines < 0) {
		s->n_retr++;
		s->cont->bytes_stat = &s->retr_bytes;
		session_reply(s, "+OK %llu octets",
		    (unsigned long long)maildrop_size(s->md, (size_t)i));
	} else {
		s->n_top++;
		s->cont->bytes_stat = &s->top_bytes;
		session_reply(s, "+OK");
	}
	return CMD_CONT;
}

/* RFC 1939 section 5: RETR msg. */
enum cmd_result
cmd_retr(struct session *s, int argc, char **argv)
{
	long i;

	(void)argc;
	if ((i = live_msg(s, argv[0])) < 0)
		return CMD_ERR;
	/* RFC 1460: RETR raises the highest message number accessed. */
	if ((size_t)i + 1 > s->last)
		s->last = (size_t)i + 1;
	return message_start(s, i, -1, true);
}

/* RFC 1939 section 7: TOP msg n; n is a non-negative number of lines. */
enum cmd_result
cmd_top(struct session *s, int argc, char **argv)
{
	unsigned long	 n;
	char		*end;
	long		 i;

	(void)argc;
	if ((i = live_msg(s, argv[0])) < 0)
		return CMD_ERR;
	errno = 0;
	n = strtoul(argv[1], &end, 10);
	if (argv[1][0] < '0' || argv[1][0] > '9' || *end != '\0' ||
	    errno != 0 || n > 2147483647UL) {
		session_reply(s, "-ERR Invalid number of lines.");
		return CMD_ERR;
	}
	return message_start(s, i, (long)n, true);
}

/* Worker thread: look the message up. */
static void
locate_work(struct worker_job *wj)
{
	struct locate_job	*job = (struct locate_job *)wj;

	job->st = job->md->ops->msg_locate(job->md, job->i);
	job->errnum = errno;	/* this thread's: the loop cannot see it */
}

/*
 * Loop thread: answer the RETR/TOP that waited, then take the pipelined
 * commands after it (RFC 2449 section 6.6: in order).
 */
static void
locate_done(struct worker_job *wj)
{
	struct locate_job	*job = (struct locate_job *)wj;
	struct session		*s = job->s;
	enum cmd_result		 res;

	if (s == NULL) {
		/* The session is gone and the maildrop is ours. */
		if (log_debug_enabled())
			log_debug("sess=%016llx event=locate-detached msg=%zu",
			    (unsigned long long)job->sess_id, job->i + 1);
		cmd_auth_release(job->srv, job->md);
		free(job);
		return;
	}
	s->locate = NULL;
	if (s->closing) {
		/* Nothing to answer; session_free() releases s->md. */
		free(job);
		return;
	}
	if (job->st == STORE_OK)
		res = message_start(s, (long)job->i, job->top_lines, false);
	else
		res = message_fail(s, (long)job->i, job->top_lines, job->st,
		    job->errnum);
	free(job);
	if (res == CMD_CONT)
		(void)session_run_cont(s);
	session_resume(s);
}

/* RFC 1939 section 5: DELE msg marks it; UPDATE removes it. */
enum cmd_result
cmd_dele(struct session *s, int argc, char **argv)
{
	long i;

	(void)argc;
	if ((i = live_msg(s, argv[0])) < 0)
		return CMD_ERR;
	s->deleted[i] = 1;
	s->n_deleted++;
	s->total_octets -= maildrop_size(s->md, (size_t)i);
	session_reply(s, "+OK Message %ld deleted.", i + 1);
	return CMD_OK;
}

enum cmd_result
cmd_noop(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(s, "+OK");
	return CMD_OK;
}

/* RFC 1939 section 5: unmark every deletion; RFC 1460: LAST back to 0. */
enum cmd_result
cmd_rset(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cmd_mail_reset(s);
	session_reply(s, "+OK Maildrop has %zu messages (%llu octets).",
	    s->n_msgs, (unsigned long long)s->total_octets);
	return CMD_OK;
}

/* RFC 1460: LAST, the highest message number accessed (by RETR). */
enum cmd_result
cmd_last(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(s, "+OK %zu", s->last);
	return CMD_OK;
}
