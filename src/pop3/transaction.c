/*
 * transaction: the TRANSACTION state (RFC 1939 section 5, RFC 1460 LAST)
 * and UPDATE (section 6).
 *
 * Message numbers are 1-based on the wire and fixed for the session;
 * deleted messages keep their numbers and are invisible to every command
 * but RSET. LIST and UIDL stream as continuations, RETR and TOP through
 * stream.c. UPDATE's removals are file I/O: they run as a job in the
 * worker pool, ahead of queued logins, and QUIT's +OK waits for them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/evpop3d.h"
#include "lib/fmt.h"
#include "lib/log.h"
#include "lib/worker.h"
#include "pop3/client.h"
#include "pop3/maildrop.h"
#include "pop3/stream.h"
#include "pop3/transaction.h"

/* How much of a listing to queue per refill. */
#define LISTING_CHUNK	(64 * 1024)
/* The lines of a listing put together on the stack, at most this much;
 * a line always fits (store.h: a unique id is 1..70 octets). */
#define LISTING_BUF	4096
_Static_assert(20 + 1 + POP3_UIDL_MAX + 2 <= LISTING_BUF,
    "a listing line fits its buffer");

/* UPDATE on a worker thread: commit() removes the marked messages. */
struct update_job {
	struct worker_job	 base;		/* first: we cast back */
	struct client		*c;		/* NULL once the session is gone */
	uint64_t		 sess_id;	/* for the log line */
	char			 rip[64];
	char			*user;
	struct maildrop		*md;
	uint8_t			*del;		/* the marks */
	size_t			 n_marked;
	enum store_err		 st;
	size_t			 failed;	/* removals that failed */
};

/* RFC 1939 section 5: "+OK nn mm", deleted messages not counted. */
enum cmd_result
cmd_stat(struct client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(c->s, "+OK %zu %llu", c->n_msgs - c->n_deleted,
	    (unsigned long long)c->total_octets);
	return CMD_OK;
}

/*
 * LIST and UIDL without argument: one line per live message, then ".".
 * The lines are put together in a buffer on the stack and queued a few
 * kilobytes at a time: an evbuffer_add_printf() per line (vsnprintf,
 * then an evbuffer append) was 8 % of a whole `full` session.
 */
static enum session_cont_status
listing_run(struct session *s, struct reply_cont *rc, bool uidl)
{
	struct evbuffer	*out = session_output(s);
	struct client	*c = rc->c;
	char		 buf[LISTING_BUF], num[24], *nb, size[24], *sb;
	const char	*val;
	size_t		 len = 0, nlen, vlen;

	if (out == NULL) {
		rc->base.close_reason = "out-of-memory";
		return SESSION_CONT_CLOSE;
	}
	while (rc->next < c->n_msgs) {
		size_t i = rc->next++;

		if (c->deleted != NULL && c->deleted[i])
			continue;
		nb = fmt_u64_back(num + sizeof(num), (uint64_t)i + 1);
		nlen = (size_t)(num + sizeof(num) - nb);
		if (uidl) {
			val = maildrop_uidl(c->md, i);
			vlen = strlen(val);
		} else {
			sb = fmt_u64_back(size + sizeof(size),
			    maildrop_size(c->md, i));
			val = sb;
			vlen = (size_t)(size + sizeof(size) - sb);
		}
		if (len + nlen + 1 + vlen + 2 > sizeof(buf)) {
			evbuffer_add(out, buf, len);
			len = 0;
		}
		memcpy(buf + len, nb, nlen);
		buf[len + nlen] = ' ';
		memcpy(buf + len + nlen + 1, val, vlen);
		memcpy(buf + len + nlen + 1 + vlen, "\r\n", 2);
		len += nlen + 1 + vlen + 2;
		if (evbuffer_get_length(out) + len >= LISTING_CHUNK) {
			evbuffer_add(out, buf, len);
			return SESSION_CONT_MORE;
		}
	}
	if (len + 3 > sizeof(buf)) {
		evbuffer_add(out, buf, len);
		len = 0;
	}
	memcpy(buf + len, ".\r\n", 3);
	evbuffer_add(out, buf, len + 3);
	return SESSION_CONT_DONE;
}

static enum session_cont_status
list_run(struct session *s, struct session_cont *sc)
{
	return listing_run(s, (struct reply_cont *)sc, false);
}

static enum session_cont_status
uidl_run(struct session *s, struct session_cont *sc)
{
	return listing_run(s, (struct reply_cont *)sc, true);
}

enum cmd_result
cmd_list(struct client *c, int argc, char **argv)
{
	long i;

	if (argc == 1) {
		if ((i = maildrop_live_msg(c, argv[0])) < 0)
			return CMD_ERR;
		session_reply(c->s, "+OK %ld %llu", i + 1,
		    (unsigned long long)maildrop_size(c->md, (size_t)i));
		return CMD_OK;
	}
	session_reply(c->s, "+OK %zu messages (%llu octets)",
	    c->n_msgs - c->n_deleted, (unsigned long long)c->total_octets);
	return reply_cont_new(c, list_run);
}

/* RFC 1939 section 7: UIDL [msg]. */
enum cmd_result
cmd_uidl(struct client *c, int argc, char **argv)
{
	long i;

	if (argc == 1) {
		if ((i = maildrop_live_msg(c, argv[0])) < 0)
			return CMD_ERR;
		session_reply(c->s, "+OK %ld %s", i + 1,
		    maildrop_uidl(c->md, (size_t)i));
		return CMD_OK;
	}
	session_reply(c->s, "+OK Unique-ID listing follows");
	return reply_cont_new(c, uidl_run);
}

/* RFC 1939 section 5: RETR msg. */
enum cmd_result
cmd_retr(struct client *c, int argc, char **argv)
{
	long i;

	(void)argc;
	if ((i = maildrop_live_msg(c, argv[0])) < 0)
		return CMD_ERR;
	/* RFC 1460: RETR raises the highest message number accessed. */
	if ((size_t)i + 1 > c->last)
		c->last = (size_t)i + 1;
	return stream_message(c, i, -1);
}

/* RFC 1939 section 7: TOP msg n; n is a non-negative number of lines. */
enum cmd_result
cmd_top(struct client *c, int argc, char **argv)
{
	unsigned long	 n;
	char		*end;
	long		 i;

	(void)argc;
	if ((i = maildrop_live_msg(c, argv[0])) < 0)
		return CMD_ERR;
	errno = 0;
	n = strtoul(argv[1], &end, 10);
	if (argv[1][0] < '0' || argv[1][0] > '9' || *end != '\0' ||
	    errno != 0 || n > 2147483647UL) {
		session_reply(c->s, "-ERR Invalid number of lines.");
		return CMD_ERR;
	}
	return stream_message(c, i, (long)n);
}

/* RFC 1939 section 5: DELE msg marks it; UPDATE removes it. */
enum cmd_result
cmd_dele(struct client *c, int argc, char **argv)
{
	long i;

	(void)argc;
	if ((i = maildrop_live_msg(c, argv[0])) < 0)
		return CMD_ERR;
	if (c->deleted == NULL &&
	    (c->deleted = calloc(c->n_msgs, 1)) == NULL) {
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory.");
		return CMD_ERR;
	}
	c->deleted[i] = 1;
	c->n_deleted++;
	c->total_octets -= maildrop_size(c->md, (size_t)i);
	session_reply(c->s, "+OK Message %ld deleted.", i + 1);
	return CMD_OK;
}

static void
update_job_free(struct update_job *job)
{
	free(job->user);
	free(job->del);
	free(job);
}

/* Worker thread: remove the marked messages, then unlock. */
static void
update_work(struct worker_job *wj)
{
	struct update_job *job = (struct update_job *)wj;

	job->st = job->md->ops->commit(job->md, job->del, &job->failed);
	job->md = NULL;
}

static void
update_done(struct worker_job *wj)
{
	struct update_job	*job = (struct update_job *)wj;
	struct client		*c = job->c;
	size_t			 n = job->n_marked;
	char			 quser[LOG_QUOTED_SIZE(POP3_USER_MAX)];

	if (n > 0)
		log_info("sess=%016llx event=update rip=%s user=%s "
		    "deleted=%zu failed=%zu%s", (unsigned long long)job->sess_id,
		    job->rip, log_quote(quser, sizeof(quser), job->user),
		    n - job->failed, job->failed, c == NULL ? " client=gone" :
		    "");
	if (c == NULL) {
		update_job_free(job);
		return;
	}
	c->update = NULL;
	c->n_dele_done = (unsigned)(n - job->failed);
	if (job->st == STORE_OK && n == 0)
		session_reply(c->s, "+OK %s signing off.", EVPOP3D_NAME);
	else if (job->st == STORE_OK)
		session_reply(c->s, "+OK %s signing off (%zu messages "
		    "deleted).", EVPOP3D_NAME, n);
	else if (job->failed >= n)	/* an mbox update is all or nothing */
		session_reply(c->s, "-ERR [SYS/TEMP] The mailbox could not be "
		    "updated; nothing was deleted.");
	else
		session_reply(c->s, "-ERR [SYS/TEMP] Some deleted messages "
		    "were not removed.");
	if (job->st != STORE_OK)
		pop3_store_error(c->env, job->st);
	update_job_free(job);
	pop3_cmd_end(c);
	session_close(c->s, "quit", true);
}

/*
 * RFC 1939 section 6: remove the marked messages, release the lock, and
 * answer; "-ERR" if some could not be removed. With nothing marked the
 * job only releases the lock: the +OK still comes after it, so that a
 * client logging in again at once finds the maildrop free. Still a job,
 * since a release can block (maildrop.c says how long, measured), but one
 * the loop may do itself at the end of the turn (quick.h).
 */
enum cmd_result
transaction_update(struct client *c)
{
	struct update_job *job;

	pop3_set_state(c, POP3_UPDATE);
	c->reason = "quit";
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (job->user = strdup(c->user)) == NULL) {
		free(job);
		session_reply(c->s, "-ERR [SYS/TEMP] Out of memory; nothing "
		    "was deleted.");
		return CMD_CLOSE;
	}
	worker_job_init(&job->base, update_work, update_done);
	/* Removals stay on a thread: unlinks and a directory fsync, or an
	 * mbox rewritten whole. */
	if (c->n_deleted == 0 && maildrop_quick_release(c->md, c->md_local))
		worker_job_quick(&job->base, worker_quick_work);
	job->c = c;
	job->sess_id = session_id(c->s);
	fmt_copy(job->rip, sizeof(job->rip), session_peer(c->s));
	job->md = c->md;
	job->del = c->deleted;
	job->n_marked = c->n_deleted;
	c->md = NULL;
	c->deleted = NULL;
	c->update = job;
	worker_submit_urgent(c->env->workers, &job->base);
	return CMD_WAIT;
}

void
transaction_gone(struct client *c)
{
	if (c->update != NULL) {
		c->update->c = NULL;	/* update_done() frees it */
		c->update = NULL;
	}
}

enum cmd_result
cmd_noop(struct client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(c->s, "+OK");
	return CMD_OK;
}

/* RFC 1939 section 5: unmark every deletion; RFC 1460: LAST back to 0. */
enum cmd_result
cmd_rset(struct client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	maildrop_reset(c);
	session_reply(c->s, "+OK Maildrop has %zu messages (%llu octets).",
	    c->n_msgs, (unsigned long long)c->total_octets);
	return CMD_OK;
}

/* RFC 1460: LAST, the highest message number accessed (by RETR). */
enum cmd_result
cmd_last(struct client *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(c->s, "+OK %zu", c->last);
	return CMD_OK;
}
