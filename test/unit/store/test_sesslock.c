/*
 * test_sesslock: the descriptor-free session lock (sesslock.h): exclusion,
 * staleness rules, and a race of processes taking over one stale record.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/sesslock.h"

struct fixture {
	char	 dir[64];
	char	 path[128];
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_sesslock.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/lock", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	unlink(f->path);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static void
slurp(const char *path, char *buf, size_t len)
{
	ssize_t	 n;
	int	 fd = open(path, O_RDONLY);

	assert_true(fd != -1);
	n = read(fd, buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static void
plant(const char *path, const char *text)
{
	int	 fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/*
 * The handle of the last lock try_lock() took; unlock() releases it. One
 * slot is enough: the tests hold one lock at a time.
 */
static struct sesslock *held;

static enum store_err
try_lock(const char *path)
{
	struct sesslock	*lk = NULL;
	char		 err[256];
	enum store_err	 rv;

	err[0] = '\0';
	rv = sesslock_acquire(path, &lk, err, sizeof(err));
	if (rv == STORE_OK) {
		assert_null(held);
		held = lk;
	} else
		assert_null(lk);
	return rv;
}

static int
unlock(void)
{
	struct sesslock	*lk = held;

	held = NULL;
	return sesslock_release(lk);
}

/* Our own "pid start boot host" fields, from a lock we take. */
static void
self_fields(const char *path, long *pid, unsigned long long *start,
    char *boot, char *host)
{
	char	 text[256];

	assert_int_equal(try_lock(path), STORE_OK);
	slurp(path, text, sizeof(text));
	assert_int_equal(sscanf(text, "%ld %llu %63s %63s", pid, start, boot,
	    host), 4);
	unlock();
}


static void
test_exclusive(void **state)
{
	struct fixture	*f = *state;
	struct sesslock	*lk = NULL;
	char		 err[256], text[256];
	long		 pid;
	pid_t		 child;
	int		 status;

	assert_int_equal(try_lock(f->path), STORE_OK);
	slurp(f->path, text, sizeof(text));
	assert_int_equal(sscanf(text, "%ld", &pid), 1);
	assert_int_equal(pid, (long)getpid());

	/* Held: by this process too, and by another one. */
	err[0] = '\0';
	assert_int_equal(sesslock_acquire(f->path, &lk, err, sizeof(err)),
	    STORE_INUSE);
	assert_null(lk);
	assert_non_null(strstr(err, "held"));
	child = fork();
	assert_true(child != -1);
	if (child == 0)
		_exit(try_lock(f->path) == STORE_INUSE ? 0 : 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(unlock(), 0);
	slurp(f->path, text, sizeof(text));
	assert_int_equal(strncmp(text, "free ", 5), 0);
	assert_int_equal(strlen(text), SESSLOCK_RECORD);
	assert_int_equal(try_lock(f->path), STORE_OK);
	unlock();
}

/* A child takes the lock and exits: the lock is stale. */
static void
test_dead_owner(void **state)
{
	struct fixture	*f = *state;
	pid_t		 child;
	int		 status;

	child = fork();
	assert_true(child != -1);
	if (child == 0)
		_exit(try_lock(f->path) == STORE_OK ? 0 : 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(f->path, F_OK), 0);
	assert_int_equal(try_lock(f->path), STORE_OK);
	unlock();
}

/* Which owners count as alive. */
static void
test_owner_rules(void **state)
{
	struct fixture	*f = *state;
	char		 boot[64], host[64], text[512];
	unsigned long long start, start1 = 0;
	long		 pid;
	FILE		*fp;
	char		 stat1[1024], *p;
	int		 i;

	self_fields(f->path, &pid, &start, boot, host);

	/* Our pid with another start time: the pid was reused. */
	snprintf(text, sizeof(text), "%ld %llu %s %s\n", pid, start + 1, boot,
	    host);
	plant(f->path, text);
	assert_int_equal(try_lock(f->path), STORE_OK);
	unlock();

	/* A live process (pid 1) with its real start time holds it. */
	fp = fopen("/proc/1/stat", "r");
	assert_non_null(fp);
	assert_non_null(fgets(stat1, sizeof(stat1), fp));
	fclose(fp);
	p = strrchr(stat1, ')');
	for (i = 2; i < 22; i++)
		p = strchr(p + 1, ' ');
	assert_int_equal(sscanf(p + 1, "%llu", &start1), 1);
	snprintf(text, sizeof(text), "1 %llu %s %s\n", start1, boot, host);
	plant(f->path, text);
	assert_int_equal(try_lock(f->path), STORE_INUSE);
	/* ... and our release() leaves another owner's record alone. */
	plant(f->path, "free\n");
	assert_int_equal(try_lock(f->path), STORE_OK);
	plant(f->path, text);
	assert_int_equal(unlock(), 0);
	assert_int_equal(try_lock(f->path), STORE_INUSE);

	/* Our release writes a whole "free" record over our own. */
	assert_int_equal(try_lock(f->path), STORE_INUSE);
	plant(f->path, "free\n");
	assert_int_equal(try_lock(f->path), STORE_OK);
	assert_int_equal(unlock(), 0);
	fp = fopen(f->path, "r");
	assert_non_null(fp);
	assert_int_equal(fread(text, 1, sizeof(text), fp), SESSLOCK_RECORD);
	fclose(fp);
	assert_memory_equal(text, "free ", 5);
	assert_int_equal(text[SESSLOCK_RECORD - 1], '\n');
	assert_int_equal(try_lock(f->path), STORE_OK);
	unlock();

	/* The same owner on another host: cannot tell, so it is held. */
	snprintf(text, sizeof(text), "%ld %llu %s elsewhere.example\n", pid,
	    start + 1, boot);
	plant(f->path, text);
	assert_int_equal(try_lock(f->path), STORE_INUSE);

	/* This host before a reboot: stale. */
	snprintf(text, sizeof(text), "1 %llu 00000000-dead-beef %s\n", start1,
	    host);
	plant(f->path, text);
	assert_int_equal(try_lock(f->path), STORE_OK);
	unlock();

	/* evpop3d 0.1 left "pid\n" files behind: not a lock. */
	plant(f->path, "1\n");
	assert_int_equal(try_lock(f->path), STORE_OK);
	unlock();
}

/* Anything that names no owner is free: empty, torn or foreign text. */
static void
test_garbage(void **state)
{
	struct fixture	*f = *state;
	static const char *const texts[] = { "", "123 45", "free\n",
	    "x y z w\n", "-5 1 b h\n" };
	size_t		 i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		plant(f->path, texts[i]);
		assert_int_equal(try_lock(f->path), STORE_OK);
		assert_int_equal(try_lock(f->path), STORE_INUSE);
		unlock();
	}
}

/*
 * Many processes find the same stale lock at once: exactly one of them
 * may hold the lock at any time. A holder keeps it until every process
 * has tried (a "tried" byte each on a pipe), however slowly the machine
 * runs them, so no try can come after a release.
 */
static void
test_race(void **state)
{
	struct fixture	*f = *state;
	enum { NPROC = 8, ROUNDS = 30 };
	int		 round, i, status, go[2], tried[2], release[2];
	int		 holders;
	pid_t		 kids[NPROC];
	char		 c;

	for (round = 0; round < ROUNDS; round++) {
		/* A dead local owner: our pid, another start time. */
		{
			long		 pid;
			unsigned long long start;
			char		 boot[64], host[64], text[256];

			self_fields(f->path, &pid, &start, boot, host);
			snprintf(text, sizeof(text), "%ld %llu %s %s\n", pid,
			    start + 7, boot, host);
			plant(f->path, text);
		}
		assert_int_equal(pipe(go), 0);
		assert_int_equal(pipe(tried), 0);
		assert_int_equal(pipe(release), 0);
		for (i = 0; i < NPROC; i++) {
			kids[i] = fork();
			assert_true(kids[i] != -1);
			if (kids[i] == 0) {
				enum store_err st;

				close(go[1]);
				close(tried[0]);
				close(release[1]);
				if (read(go[0], &c, 1) != 0)
					_exit(3);
				st = try_lock(f->path);
				if (write(tried[1], "t", 1) != 1)
					_exit(3);
				if (st != STORE_OK)
					_exit(0);
				/* Hold it until everyone has tried. */
				if (read(release[0], &c, 1) != 0)
					_exit(3);
				unlock();
				_exit(1);
			}
		}
		close(go[0]);
		close(tried[1]);
		close(release[0]);
		close(go[1]);		/* all start now */
		for (i = 0; i < NPROC; i++)
			assert_int_equal(read(tried[0], &c, 1), 1);
		close(tried[0]);
		close(release[1]);	/* the holder may let go */
		holders = 0;
		for (i = 0; i < NPROC; i++) {
			assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
			assert_true(WIFEXITED(status));
			assert_true(WEXITSTATUS(status) <= 1);
			holders += WEXITSTATUS(status);
		}
		assert_int_equal(holders, 1);
		assert_int_equal(try_lock(f->path), STORE_OK);
		unlock();
	}
}

/*
 * The held-lock table: a session that ends disowns its lock at once, and
 * a login that follows takes it over without waiting for the release
 * job, whose later release() then leaves the new holder's record alone.
 */
static void
test_disown_takeover(void **state)
{
	struct fixture	*f = *state;
	struct sesslock	*a = NULL, *b = NULL, *c = NULL;
	char		 err[256], rec[256], text[256];

	assert_int_equal(sesslock_acquire(f->path, &a, err, sizeof(err)),
	    STORE_OK);
	slurp(f->path, rec, sizeof(rec));
	assert_int_equal(sesslock_acquire(f->path, &b, err, sizeof(err)),
	    STORE_INUSE);
	assert_int_equal(sesslock_count(), 1);

	sesslock_disown(a);
	sesslock_disown(a);			/* idempotent */
	assert_int_equal(sesslock_acquire(f->path, &b, err, sizeof(err)),
	    STORE_OK);
	assert_non_null(b);
	slurp(f->path, text, sizeof(text));
	assert_string_equal(text, rec);		/* the file was not touched */
	assert_int_equal(sesslock_count(), 1);

	/* The old holder's release: the record is b's now, it stays. */
	assert_int_equal(sesslock_release(a), 0);
	slurp(f->path, text, sizeof(text));
	assert_string_equal(text, rec);
	assert_int_equal(sesslock_acquire(f->path, &c, err, sizeof(err)),
	    STORE_INUSE);
	assert_int_equal(sesslock_release(b), 0);
	slurp(f->path, text, sizeof(text));
	assert_int_equal(strncmp(text, "free ", 5), 0);
	assert_int_equal(sesslock_count(), 0);

	/* Released in the other order: the late release() clears nothing. */
	assert_int_equal(sesslock_acquire(f->path, &a, err, sizeof(err)),
	    STORE_OK);
	sesslock_disown(a);
	assert_int_equal(sesslock_acquire(f->path, &b, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(sesslock_release(b), 0);
	assert_int_equal(sesslock_acquire(f->path, &c, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(sesslock_release(a), 0);
	slurp(f->path, text, sizeof(text));
	assert_string_equal(text, rec);		/* c's record, intact */
	assert_int_equal(sesslock_acquire(f->path, &b, err, sizeof(err)),
	    STORE_INUSE);
	assert_int_equal(sesslock_release(c), 0);
	assert_int_equal(sesslock_release(NULL), 0);
	assert_int_equal(sesslock_count(), 0);
}

/*
 * A release that cannot rewrite the record (here the path is briefly a
 * directory) leaves it naming this process: the next acquire of this
 * process takes it over instead of answering [IN-USE] until a restart.
 */
static void
test_failed_release(void **state)
{
	struct fixture	*f = *state;
	struct sesslock	*a = NULL, *b = NULL;
	char		 err[256], aside[160], text[256];

	snprintf(aside, sizeof(aside), "%s/aside", f->dir);
	assert_int_equal(sesslock_acquire(f->path, &a, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(rename(f->path, aside), 0);
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(sesslock_release(a), -1);
	assert_int_equal(rmdir(f->path), 0);
	assert_int_equal(rename(aside, f->path), 0);

	assert_int_equal(sesslock_count(), 1);
	assert_int_equal(sesslock_acquire(f->path, &b, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(sesslock_release(b), 0);
	slurp(f->path, text, sizeof(text));
	assert_int_equal(strncmp(text, "free ", 5), 0);
	assert_int_equal(sesslock_count(), 0);
}

/*
 * What the daemon does under load, with threads: a session ends (disown
 * on the loop, the release queued to a worker) and the same user logs in
 * again at once on another worker. Thousands of rounds, never [IN-USE],
 * and at the end the record is free.
 */
#define RELAY_ROUNDS	5000

struct relay {
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cond;
	struct sesslock	*q[RELAY_ROUNDS];
	size_t		 head, tail;
	bool		 done;
};

static void *
releaser(void *arg)
{
	struct relay	*r = arg;
	struct sesslock	*lk;

	pthread_mutex_lock(&r->mtx);
	for (;;) {
		while (r->head == r->tail && !r->done)
			pthread_cond_wait(&r->cond, &r->mtx);
		if (r->head == r->tail)
			break;
		lk = r->q[r->head++];
		pthread_mutex_unlock(&r->mtx);
		assert_int_equal(sesslock_release(lk), 0);
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
	return NULL;
}

static void
test_reconnect_race(void **state)
{
	struct fixture	*f = *state;
	struct relay	 r;
	struct sesslock	*lk;
	pthread_t	 th[3];
	char		 err[256], text[256];
	size_t		 i;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mtx, NULL);
	pthread_cond_init(&r.cond, NULL);
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, releaser, &r), 0);
	for (i = 0; i < RELAY_ROUNDS; i++) {
		lk = NULL;
		assert_int_equal(sesslock_acquire(f->path, &lk, err,
		    sizeof(err)), STORE_OK);
		sesslock_disown(lk);
		pthread_mutex_lock(&r.mtx);
		r.q[r.tail++] = lk;
		pthread_cond_signal(&r.cond);
		pthread_mutex_unlock(&r.mtx);
	}
	pthread_mutex_lock(&r.mtx);
	r.done = true;
	pthread_cond_broadcast(&r.cond);
	pthread_mutex_unlock(&r.mtx);
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	slurp(f->path, text, sizeof(text));
	assert_int_equal(strncmp(text, "free ", 5), 0);
	assert_int_equal(sesslock_count(), 0);
	pthread_cond_destroy(&r.cond);
	pthread_mutex_destroy(&r.mtx);
}


/*
 * sesslock_try(), the event loop's acquire: STORE_AGAIN where
 * sesslock_acquire() would answer STORE_INUSE or wait (a live holder in
 * this process or another, another process's OFD lock held), nothing
 * taken; a disowned or free lock it takes as sesslock_acquire() does.
 */
static void
test_try(void **state)
{
	struct fixture	*f = *state;
	struct sesslock	*a = NULL, *b = NULL;
	struct flock	 fl;
	char		 err[256];
	pid_t		 child;
	int		 status, fd, gate[2];

	assert_int_equal(sesslock_try(f->path, &a, err, sizeof(err)),
	    STORE_OK);
	assert_non_null(a);
	/* A live holder of this process: maybe ending in this turn. */
	assert_int_equal(sesslock_try(f->path, &b, err, sizeof(err)),
	    STORE_AGAIN);
	assert_null(b);
	assert_int_equal(sesslock_count(), 1);
	sesslock_disown(a);
	assert_int_equal(sesslock_try(f->path, &b, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(sesslock_release(a), 0);
	assert_int_equal(sesslock_release(b), 0);
	assert_int_equal(sesslock_count(), 0);

	/* A live holder in another process (the record names it). */
	assert_int_equal(pipe(gate), 0);
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		close(gate[0]);
		if (try_lock(f->path) != STORE_OK)
			_exit(1);
		if (write(gate[1], "x", 1) != 1)
			_exit(1);
		for (;;)		/* hold it until killed */
			pause();
	}
	close(gate[1]);
	{
		char c;

		assert_int_equal(read(gate[0], &c, 1), 1);
	}
	assert_int_equal(sesslock_try(f->path, &b, err, sizeof(err)),
	    STORE_AGAIN);
	assert_null(b);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	close(gate[0]);
	/* The holder is dead now: the record is stale, and taken. */
	assert_int_equal(sesslock_try(f->path, &b, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(sesslock_release(b), 0);

	/* Another acquirer holds the OFD lock: no waiting, AGAIN. */
	assert_true((fd = open(f->path, O_RDWR)) != -1);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
	assert_int_equal(sesslock_try(f->path, &b, err, sizeof(err)),
	    STORE_AGAIN);
	assert_int_equal(sesslock_count(), 0);
	close(fd);
	assert_int_equal(sesslock_try(f->path, &b, err, sizeof(err)),
	    STORE_OK);
	assert_int_equal(sesslock_release(b), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exclusive, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dead_owner, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_rules, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_try, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disown_takeover, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failed_release, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_race, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
