/*
 * swarm procstat: CPU and RSS of this process, of a forked process tree
 * (children walked through /proc/<pid>/task/<tid>/children and through
 * the /proc ppid scan fallback), of reaped and zombie children, and of
 * pids that do not exist.
 *
 * procstat.c is included so the two private tree walkers can be compared
 * directly; procstat_sample is still exercised through its public API.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "procstat.c"

#define MIB		(1024 * 1024)
#define BURN_MS		150

/* Spin until this process has used ms more milliseconds of CPU. */
static void
burn_cpu(unsigned ms)
{
	struct timespec	 t0, t;
	volatile uint64_t x = 0;
	uint64_t	 spent;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	do {
		for (int i = 0; i < 100000; i++)
			x += (uint64_t)i * 7;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
		spent = (uint64_t)(t.tv_sec - t0.tv_sec) * 1000 +
		    (uint64_t)(t.tv_nsec - t0.tv_nsec) / 1000000;
	} while (spent < ms);
}

/* Allocate and touch n bytes; the caller frees (or exits). */
static char *
touch_mem(size_t n)
{
	char	*p = malloc(n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i += 1024)
		p[i] = (char)(i | 1);
	return p;
}

static struct procstat
sample(pid_t pid, bool children, bool with_pss)
{
	struct procstat	ps;

	assert_int_equal(procstat_sample(pid, children, with_pss, &ps), 0);
	return ps;
}

static void
test_self_cpu(void **state)
{
	struct procstat	a, b;

	(void)state;
	a = sample(getpid(), false, false);
	assert_int_equal(a.nprocs, 1);
	assert_true(a.rss_bytes > 0);
	burn_cpu(300);
	b = sample(getpid(), false, false);
	assert_true(b.cpu_us >= a.cpu_us + 200000);
	/* Not absurdly more than burned (ticks are 10 ms, allow slack). */
	assert_true(b.cpu_us <= a.cpu_us + 2000000);
}

static void
test_self_rss(void **state)
{
	struct procstat	 a, b;
	char		*p;

	(void)state;
	a = sample(getpid(), false, true);
	p = touch_mem(32 * MIB);
	b = sample(getpid(), false, true);
	assert_true(b.rss_bytes >= a.rss_bytes + 28 * MIB);
	/* Private anonymous memory: Pss grows as much as Rss. */
	assert_true(a.pss_bytes > 0);
	assert_true(b.pss_bytes >= a.pss_bytes + 28 * MIB);
	/* Without with_pss, Pss is not read. */
	a = sample(getpid(), false, false);
	assert_true(a.pss_bytes == 0);
	free(p);
}

/*
 * Descendant: allocate 16 MiB, burn CPU, report ready, then wait for the
 * release pipe to close. With nkids, first fork that many children of its
 * own (which do the same) and reap them before exiting.
 */
static void	descendant(int, int, int) __attribute__((noreturn));

static void
descendant(int ready, int release, int nkids)
{
	char	*mem, c;
	pid_t	 kids[4];
	int	 i;

	for (i = 0; i < nkids; i++) {
		if ((kids[i] = fork()) == 0)
			descendant(ready, release, 0);
		if (kids[i] == -1)
			_exit(2);
	}
	mem = touch_mem(16 * MIB);
	burn_cpu(BURN_MS);
	if (write(ready, "r", 1) != 1)
		_exit(3);
	while (read(release, &c, 1) > 0)
		;
	for (i = 0; i < nkids; i++)
		waitpid(kids[i], NULL, 0);
	mem[0] = 0;
	_exit(0);
}

static int
pid_cmp(const void *a, const void *b)
{
	pid_t	x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

static void
test_children_tree(void **state)
{
	struct procstat	 with, without, pss_with, pss_without;
	struct pidvec	 va = { NULL, 0, 0 }, vb = { NULL, 0, 0 };
	pid_t		 kids[2];
	char		 c;
	int		 ready[2], release[2], i;

	(void)state;
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(release), 0);
	/* Two children; the first has a grandchild of its own. */
	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		assert_true(kids[i] != -1);
		if (kids[i] == 0) {
			close(ready[0]);
			close(release[1]);
			descendant(ready[1], release[0], i == 0 ? 1 : 0);
		}
	}
	close(ready[1]);
	close(release[0]);
	for (i = 0; i < 3; i++)
		assert_int_equal(read(ready[0], &c, 1), 1);

	with = sample(getpid(), true, false);
	without = sample(getpid(), false, false);
	assert_int_equal(with.nprocs, 4);
	assert_int_equal(without.nprocs, 1);
	assert_true(with.rss_bytes >= without.rss_bytes + 3 * 14 * MIB);
	assert_true(with.cpu_us >=
	    without.cpu_us + 3 * (BURN_MS * 1000) * 2 / 3);

	pss_with = sample(getpid(), true, true);
	pss_without = sample(getpid(), false, true);
	assert_true(pss_with.pss_bytes >= pss_without.pss_bytes + 3 * 14 * MIB);

	/* Both walkers find the same four processes, root first. */
	assert_int_equal(tree_children(getpid(), &va), 0);
	assert_int_equal(tree_scan(getpid(), &vb), 0);
	assert_int_equal(va.n, 4);
	assert_int_equal(vb.n, 4);
	assert_int_equal(va.v[0], getpid());
	assert_int_equal(vb.v[0], getpid());
	qsort(va.v, va.n, sizeof(pid_t), pid_cmp);
	qsort(vb.v, vb.n, sizeof(pid_t), pid_cmp);
	assert_memory_equal(va.v, vb.v, va.n * sizeof(pid_t));
	/* A leaf has no descendants either way. */
	assert_int_equal(tree_children(kids[1], &va), 0);
	assert_int_equal(va.n, 1);
	assert_int_equal(tree_scan(kids[1], &vb), 0);
	assert_int_equal(vb.n, 1);
	free(va.v);
	free(vb.v);

	/* The children sample of a child counts its grandchild. */
	with = sample(kids[0], true, false);
	assert_int_equal(with.nprocs, 2);

	close(release[1]);
	for (i = 0; i < 2; i++) {
		int	st;

		assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	close(ready[0]);
	with = sample(getpid(), true, false);
	assert_int_equal(with.nprocs, 1);
}

/*
 * A child's CPU while it is a zombie shows in its own stat; once reaped it
 * moves to our cutime/cstime. children=true sees it both times, about the
 * same amount; children=false never does.
 */
static void
test_reaped_child(void **state)
{
	struct procstat	 a, af, z, b, bf;
	siginfo_t	 si;
	pid_t		 pid;
	int		 st;

	(void)state;
	a = sample(getpid(), true, false);
	af = sample(getpid(), false, false);
	if ((pid = fork()) == 0) {
		burn_cpu(300);
		_exit(0);
	}
	assert_true(pid != -1);
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	z = sample(getpid(), true, false);
	assert_int_equal(z.nprocs, 2);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	b = sample(getpid(), true, false);
	bf = sample(getpid(), false, false);

	assert_int_equal(b.nprocs, 1);
	assert_true(z.cpu_us >= a.cpu_us + 250000);
	assert_true(b.cpu_us >= a.cpu_us + 250000);
	/* Zombie utime vs reaped cutime: same time, within a few ticks. */
	assert_true(b.cpu_us + 50000 >= z.cpu_us);
	assert_true(b.cpu_us <= z.cpu_us + 50000);
	/* We were blocked in waitid: our own time barely moved. */
	assert_true(bf.cpu_us < af.cpu_us + 100000);
}

static void
test_missing_pid(void **state)
{
	struct procstat	ps;
	pid_t		pid;

	(void)state;
	/* Above any pid_max (at most 2^22). */
	memset(&ps, 0xff, sizeof(ps));
	errno = 0;
	assert_int_equal(procstat_sample(0x7fffffff, false, false, &ps), -1);
	assert_true(errno == ENOENT || errno == ESRCH);
	assert_true(ps.nprocs == 0 && ps.cpu_us == 0 && ps.rss_bytes == 0);
	assert_int_equal(procstat_sample(0x7fffffff, true, true, &ps), -1);

	/* A child that has been reaped is gone. */
	if ((pid = fork()) == 0)
		_exit(0);
	assert_true(pid != -1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(procstat_sample(pid, true, false, &ps), -1);

	errno = 0;
	assert_int_equal(procstat_sample(0, false, false, &ps), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(procstat_sample(-1, true, false, &ps), -1);
}

/*
 * A child forked by a second thread is that thread's child: it is listed
 * only in /proc/<pid>/task/<tid>/children of that tid, not the main one.
 */
struct thr {
	int	ready[2], release[2];
	pid_t	kid;
};

static void *
thread_forker(void *arg)
{
	struct thr	*t = arg;
	char		 c;

	if ((t->kid = fork()) == 0) {
		close(t->ready[0]);
		close(t->release[1]);
		descendant(t->ready[1], t->release[0], 0);
	}
	/* Stay alive: a dead thread's children move to another one. */
	while (read(t->release[0], &c, 1) > 0)
		;
	return NULL;
}

static void
test_child_of_thread(void **state)
{
	struct procstat	 ps;
	struct thr	 t;
	pthread_t	 th;
	char		 c;

	(void)state;
	assert_int_equal(pipe(t.ready), 0);
	assert_int_equal(pipe(t.release), 0);
	t.kid = -1;
	assert_int_equal(pthread_create(&th, NULL, thread_forker, &t), 0);
	assert_int_equal(read(t.ready[0], &c, 1), 1);
	assert_true(t.kid > 0);

	ps = sample(getpid(), true, false);
	assert_int_equal(ps.nprocs, 2);
	assert_true(ps.rss_bytes >= sample(getpid(), false, false).rss_bytes +
	    14 * MIB);

	close(t.release[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(waitpid(t.kid, NULL, 0), t.kid);
	close(t.ready[0]);
	close(t.ready[1]);
	close(t.release[0]);
}

/* Another process's tree: our parent's includes us. */
static void
test_other_process(void **state)
{
	struct procstat	ps;

	(void)state;
	assert_int_equal(procstat_sample(getppid(), true, false, &ps), 0);
	assert_true(ps.nprocs >= 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_cpu),
		cmocka_unit_test(test_self_rss),
		cmocka_unit_test(test_children_tree),
		cmocka_unit_test(test_reaped_child),
		cmocka_unit_test(test_child_of_thread),
		cmocka_unit_test(test_missing_pid),
		cmocka_unit_test(test_other_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
