/*
 * maildrop: the session's view of its maildrop (RFC 1939 section 5):
 * the messages marked deleted, the octets of the rest, LAST; taking the
 * maildrop at login and releasing it.
 *
 * Releasing is file I/O (the lock), so it runs as a job in the worker
 * pool, ahead of queued logins (worker_submit_urgent()): the next login
 * of the same user waits for it.
 *
 * Short as it is (open, pread and pwrite of the 160-byte record, close:
 * 2 to 8 µs median on local ext4), it stays off the loop, because it can
 * block: under a 1.5 GB write on this disk one release in 3,000 took
 * 4.5 ms (the pwrite waits for the page's writeback or for dirty page
 * throttling), and on NFS the open and the close are round trips to the
 * server. Done on the loop, it would have saved 6 of the 66 syscalls of
 * a `login` session (the hand-off's futex wake and wait, eventfd write
 * and read, and a loop turn), and stalled every session whenever it
 * blocks (issue 13, README "Performance"). Nor can it be tried without
 * blocking and handed over when it would wait: the record's page can be
 * read with preadv2(RWF_NOWAIT) and the file reached with openat2's
 * RESOLVE_CACHED, but pwritev2(RWF_NOWAIT) on a buffered file says
 * EOPNOTSUPP on ext4 and tmpfs (Linux 6.18; XFS is said to take it,
 * not tried here).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/worker.h"
#include "pop3/client.h"
#include "pop3/maildrop.h"

/* A maildrop released without UPDATE on a worker thread. */
struct release_job {
	struct worker_job	 base;		/* first: we cast back */
	struct maildrop		*md;
};

void
maildrop_attach(struct client *c, struct maildrop *md)
{
	/* c->deleted: made by the first DELE (most sessions have none) */
	c->md = md;
	c->n_msgs = maildrop_count(md);
	c->login_octets = maildrop_total(md);	/* the logout line's %s */
	maildrop_reset(c);
}

void
maildrop_reset(struct client *c)
{
	if (c->n_deleted > 0)
		memset(c->deleted, 0, c->n_msgs);
	c->n_deleted = 0;
	c->last = 0;
	/* The driver's total was added up by open(), off the loop. */
	c->total_octets = maildrop_total(c->md);
}

long
maildrop_live_msg(struct client *c, const char *arg)
{
	long i = pop3_msgno(c, arg);

	if (i < 0) {
		session_reply(c->s, "-ERR No such message.");
		return -1;
	}
	if (c->deleted != NULL && c->deleted[i]) {
		session_reply(c->s, "-ERR Message %ld is deleted.", i + 1);
		return -1;
	}
	return i;
}

/* Worker thread: with nothing marked the driver only unlocks (store.h). */
static void
release_work(struct worker_job *wj)
{
	struct release_job *job = (struct release_job *)wj;

	(void)job->md->ops->commit(job->md, NULL, NULL);
	job->md = NULL;
}

static void
release_done(struct worker_job *wj)
{
	free(wj);
}

/*
 * The maildrop is given up at once, here on the loop (maildrop_disown():
 * a login that follows, the user reconnecting, takes the lock over and
 * never sees a record of this process that is still being cleared); the
 * lock file is rewritten on a worker thread. Once the pool is stopping
 * (its last done() callbacks run after its threads have gone), or out of
 * memory, all of it here on the loop.
 */
void
maildrop_release(struct pop3_env *env, struct maildrop *md)
{
	struct release_job *job;

	maildrop_disown(md);
	if (env->stopping || (job = calloc(1, sizeof(*job))) == NULL) {
		md->ops->close(md);
		return;
	}
	worker_job_init(&job->base, release_work, release_done);
	job->md = md;
	worker_submit_urgent(env->workers, &job->base);
}

void
maildrop_gone(struct client *c)
{
	if (c->md != NULL) {
		/* RFC 1939 section 6: no QUIT, no UPDATE. */
		maildrop_release(c->env, c->md);
		c->md = NULL;
	}
	free(c->deleted);
	c->deleted = NULL;
}
