/*
 * maildrop: the session's view of its maildrop (RFC 1939 section 5):
 * the messages marked deleted, the octets of the rest, LAST; taking the
 * maildrop at login and releasing it.
 *
 * Releasing is file I/O (the lock): open, pread and pwrite of the
 * 160-byte record, close; 2 to 8 µs median on local ext4. It runs as a
 * quick job (quick.h) when the maildrop is on a local file system: on the
 * loop at the end of the turn, sparing the hand-off to a thread and back.
 * It can block, though: under a 1.5 GB write on this disk one release in
 * 3,000 took 4.5 ms (the pwrite waits for the page's writeback or for
 * dirty page throttling), and pwritev2(RWF_NOWAIT), which would say so
 * instead of waiting, is EOPNOTSUPP on a buffered file of ext4 and tmpfs
 * (Linux 6.18). So the pool times it: one over [auth] quick_limit sends
 * releases and logins to the threads for a cool-off (lib/worker.h). On a
 * network file system, where the open and the close are round trips to
 * the server, and when the pool is cooling off, it is a worker job,
 * ahead of queued logins (worker_submit_urgent()): the next login of the
 * same user waits for it.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/worker.h"
#include "pop3/client.h"
#include "pop3/maildrop.h"
#include "pop3/quick.h"

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
 * May the loop release md itself (quick.h)? Local, and no bigger than the
 * loop would open: a Maildir's close keeps its listing for the next
 * open (a copy of every name, store/maildir/listcache.c): about 2 MiB
 * for 25,000 messages (a 10-message listing took 937 octets here).
 */
bool
maildrop_quick_release(const struct maildrop *md, bool local)
{
	return local && maildrop_count(md) <= 2 * QUICK_MAX_MSGS;
}

/*
 * The maildrop is given up at once, here on the loop (maildrop_disown():
 * a login that follows, the user reconnecting, takes the lock over and
 * never sees a record of this process that is still being cleared); the
 * lock file is rewritten by a job: on the loop at the end of the turn
 * when md is local and the pool lets it (quick.h), else on a worker
 * thread. Once the pool is stopping (its last done() callbacks run after
 * its threads have gone), or out of memory, all of it here on the loop.
 */
void
maildrop_release(struct pop3_env *env, struct maildrop *md, bool local)
{
	struct release_job *job;

	maildrop_disown(md);
	if (env->stopping || (job = calloc(1, sizeof(*job))) == NULL) {
		md->ops->close(md);
		return;
	}
	worker_job_init(&job->base, release_work, release_done);
	if (maildrop_quick_release(md, local))
		worker_job_quick(&job->base, worker_quick_work);
	job->md = md;
	worker_submit_urgent(env->workers, &job->base);
}

void
maildrop_gone(struct client *c)
{
	if (c->md != NULL) {
		/* RFC 1939 section 6: no QUIT, no UPDATE. */
		maildrop_release(c->env, c->md, c->md_local);
		c->md = NULL;
	}
	free(c->deleted);
	c->deleted = NULL;
}
