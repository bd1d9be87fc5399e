/*
 * stream: RETR and TOP. The store hands out a reader of the message's
 * bytes; here they go through the wire encoder (lib/wire.h: CRLF,
 * dot-stuffing, the TOP limit, the final ".") into the session's output,
 * in bounded slices as it drains (Dovecot's fetch_callback does the
 * same), so every driver's messages are encoded the same way.
 *
 * A message that another program moved is looked up on a worker thread
 * first (msg_open() said STORE_AGAIN).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/fmt.h"
#include "lib/log.h"
#include "lib/wire.h"
#include "lib/worker.h"
#include "pop3/client.h"
#include "pop3/maildrop.h"
#include "pop3/stream.h"

/* How much of a message to queue per refill. */
#define MESSAGE_CHUNK	(64 * 1024)
/* Bytes per msg_read(): what the driver gets asked for. */
#define READ_CHUNK	(16 * 1024)

/*
 * RETR or TOP of a message the driver has to look up: msg_locate() runs
 * on a worker thread while the session waits. If the session goes away
 * meanwhile (stream_gone()), the job owns the maildrop and releases it
 * once the lookup is over.
 */
struct locate_job {
	struct worker_job	 base;		/* first: we cast back */
	struct client		*c;		/* NULL once the session is gone */
	struct pop3_env		*env;		/* for the release without c */
	uint64_t		 sess_id;	/* for the log without c */
	struct maildrop		*md;
	size_t			 i;
	long			 top_lines;
	enum store_err		 st;
	int			 errnum;	/* why st failed */
};

/*
 * Append to out until it holds at least limit octets or the message has
 * ended. 1 when the whole reply, ".\r\n" included, is queued, 0 when
 * there is more, -1 on a read error (errno set by msg_read()).
 */
static int
stream_fill(struct reply_cont *rc, struct evbuffer *out, size_t limit)
{
	char	buf[READ_CHUNK];
	ssize_t	n;

	while (evbuffer_get_length(out) < limit) {
		if ((n = rc->r->ops->msg_read(rc->r, buf, sizeof(buf))) < 0)
			return -1;
		if (n == 0 || wire_enc_feed(&rc->enc, buf, (size_t)n, out)) {
			wire_enc_finish(&rc->enc, out);
			return 1;
		}
	}
	return 0;
}

/*
 * Queue up to MESSAGE_CHUNK octets of the message, then wait for the
 * output to drain. A read error mid-message cannot be reported in-band,
 * so it ends the connection.
 */
static enum session_cont_status
message_run(struct session *s, struct session_cont *sc)
{
	struct reply_cont	*rc = (struct reply_cont *)sc;
	struct client		*c = rc->c;
	struct evbuffer		*out = session_output(s);
	uint64_t		 listed;
	int			 rv;

	if (out == NULL) {
		rc->base.close_reason = "out-of-memory";
		return SESSION_CONT_CLOSE;
	}
	rv = stream_fill(rc, out, MESSAGE_CHUNK);
	/* Counted as queued; reply_cont_free() takes back what is not sent. */
	*rc->bytes_stat += rc->enc.octets - rc->counted;
	rc->counted = rc->enc.octets;
	if (rv == 0)
		return SESSION_CONT_MORE;
	if (rv < 0) {
		/* errno is msg_read()'s (store.h). */
		log_warn("sess=%016llx event=read-error cmd=%s msg=%zu sent=%llu",
		    (unsigned long long)session_id(s), rc->bytes_stat ==
		    &c->retr_bytes ? "RETR" : "TOP", rc->next + 1,
		    (unsigned long long)rc->enc.octets);
		rc->base.close_reason = "read-error";
		metric_tally_add(&c->env->metrics.store_errors, "read");
		return SESSION_CONT_CLOSE;
	}
	listed = maildrop_size(c->md, rc->next);
	if (rc->enc.body_lines < 0 && rc->enc.octets != listed)
		session_log(s, "event=size-mismatch msg=%zu listed=%llu "
		    "sent=%llu", rc->next + 1, (unsigned long long)listed,
		    (unsigned long long)rc->enc.octets);
	return SESSION_CONT_DONE;
}

/*
 * RETR/TOP: message i could not be opened; errnum says why (0: unknown).
 * Logged with the session id, since the reply tells the client little.
 */
static enum cmd_result
message_fail(struct client *c, long i, long top_lines, enum store_err err,
    int errnum)
{
	const char		*cmd = top_lines < 0 ? "RETR" : "TOP";
	unsigned long long	 id = (unsigned long long)session_id(c->s);

	pop3_store_error(c->env, err);
	if (err == STORE_GONE) {
		session_log(c->s, "event=message-gone cmd=%s msg=%ld", cmd,
		    i + 1);
		session_reply(c->s, "-ERR Message %ld was removed by another "
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
	session_reply(c->s, "-ERR %s Cannot read message %ld.",
	    store_err_code(err == STORE_AGAIN ? STORE_TEMP : err), i + 1);
	return CMD_ERR;
}

static void	locate_work(struct worker_job *);
static void	locate_done(struct worker_job *);

/* Look message i up on a worker: CMD_WAIT, or -1 if out of memory. */
static int
locate_submit(struct client *c, long i, long top_lines)
{
	struct locate_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		return -1;
	worker_job_init(&job->base, locate_work, locate_done);
	job->c = c;
	job->env = c->env;
	job->sess_id = session_id(c->s);
	job->md = c->md;
	job->i = (size_t)i;
	job->top_lines = top_lines;
	c->locate = job;
	worker_submit(c->env->workers, &job->base);
	return 0;
}

/*
 * RFC 1939 section 7: "+OK <size> octets" put together by hand and
 * written as is (session_reply()'s formatting was half of a RETR's cost
 * outside the encoder).
 */
static void
retr_ok(struct client *c, uint64_t size)
{
	char	 buf[4 + 20 + 9], *end = buf + sizeof(buf) - 9, *p;

	memcpy(end, " octets\r\n", 9);
	p = fmt_u64_back(end, size) - 4;
	memcpy(p, "+OK ", 4);
	session_write(c->s, p, (size_t)(buf + sizeof(buf) - p));
}

/*
 * Open message i and answer. With may_wait, a message the driver has to
 * look up first (STORE_AGAIN) is looked up by a worker job: CMD_WAIT,
 * and locate_done() comes back here without may_wait, so a message that
 * moved again meanwhile gets -ERR [SYS/TEMP] rather than another lookup.
 */
static enum cmd_result
message_start(struct client *c, long i, long top_lines, bool may_wait)
{
	struct store_reader	*r;
	struct reply_cont	*rc;
	enum store_err		 err;
	int			 errnum;

	err = c->md->ops->msg_open(c->md, (size_t)i, &r);
	errnum = errno;		/* why, on STORE_TEMP or STORE_PERM */
	if (err == STORE_AGAIN && may_wait && c->md->ops->msg_locate != NULL &&
	    locate_submit(c, i, top_lines) == 0)
		return CMD_WAIT;
	if (err != STORE_OK)
		return message_fail(c, i, top_lines, err, errnum);
	if (reply_cont_new(c, message_run) != CMD_CONT) {
		r->ops->msg_close(r);
		return CMD_ERR;
	}
	rc = c->cont_next;
	rc->r = r;
	rc->next = (size_t)i;
	wire_enc_init(&rc->enc, top_lines);
	if (top_lines < 0) {
		c->n_retr++;
		rc->bytes_stat = &c->retr_bytes;
		rc->bytes_total = &c->env->metrics.retr_bytes;
		retr_ok(c, maildrop_size(c->md, (size_t)i));
	} else {
		c->n_top++;
		rc->bytes_stat = &c->top_bytes;
		rc->bytes_total = &c->env->metrics.top_bytes;
		session_reply(c->s, "+OK");
	}
	return CMD_CONT;
}

enum cmd_result
stream_message(struct client *c, long i, long top_lines)
{
	return message_start(c, i, top_lines, true);
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
	struct client		*c = job->c;
	enum cmd_result		 res;

	if (c == NULL) {
		/* The session is gone and the maildrop is ours. */
		if (log_debug_enabled())
			log_debug("sess=%016llx event=locate-detached msg=%zu",
			    (unsigned long long)job->sess_id, job->i + 1);
		maildrop_release(job->env, job->md, false);
		free(job);
		return;
	}
	c->locate = NULL;
	if (job->st == STORE_OK)
		res = message_start(c, (long)job->i, job->top_lines, false);
	else
		res = message_fail(c, (long)job->i, job->top_lines, job->st,
		    job->errnum);
	free(job);
	if (res == CMD_CONT)
		pop3_start_cont(c);
	else
		pop3_cmd_end(c);
	session_resume(c->s);
}

/*
 * A lookup still running takes the maildrop over (c->md is NULL after),
 * as it must not be released under the worker (store.h); locate_done()
 * releases it.
 */
void
stream_gone(struct client *c)
{
	if (c->locate == NULL)
		return;
	c->locate->c = NULL;
	c->locate = NULL;
	c->md = NULL;
}
