/*
 * shlimits: the tables' sizes from the configuration's numbers, one
 * making only; worker processes' connection counts summed across
 * processes; a dead worker's references and count reclaimed from every
 * table, no one else's; proc's defaults.
 */
#include <sys/wait.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/iptable.h"
#include "lib/proc.h"
#include "lib/shlimits.h"

static void
test_sizes(void **state)
{
	struct iptable_stats	st;
	char			err[256];

	(void)state;
	assert_int_equal(proc_worker_index(), 0);
	assert_int_equal(proc_worker_count(), 1);
	assert_null(shlimits_per_ip());
	assert_int_equal(shlimits_init(10, 5, 0, err, sizeof(err)), -1);
	assert_int_equal(shlimits_init(10, 5, IPTABLE_SLOTS_MAX + 1, err,
	    sizeof(err)), -1);
	assert_int_equal(shlimits_init(10, 5, 3, err, sizeof(err)), 0);
	assert_int_equal(shlimits_init(10, 5, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(shlimits_max_connections(), 10);
	assert_int_equal(shlimits_table_size(), 5);
	/* Pinned: 10 connections and one per worker; idle; one slack. */
	iptable_stats(shlimits_per_ip(), &st);
	assert_int_equal(st.capacity, 10 + 3 + 1);
	iptable_stats(shlimits_ips(), &st);
	assert_int_equal(st.capacity, 10 + 3 + 5 + 1);
	iptable_stats(shlimits_userips(), &st);
	assert_int_equal(st.capacity, 10 + 3 + 1);
	assert_int_equal(shlimits_conns(), 0);
	shlimits_free();
	assert_null(shlimits_ips());
	assert_int_equal(shlimits_conns(), 0);
	/* Again after a free (the unit tests' environments do). */
	assert_int_equal(shlimits_init(1, 1, 1, err, sizeof(err)), 0);
	shlimits_free();
}

/*
 * Three workers, each counting i + 1 connections and holding references
 * in every table; worker 1 dies: its count and references go.
 */
static void
test_workers_reclaim(void **state)
{
	struct iptable		*tabs[3];
	struct iptable_entry	*e;
	char			 err[256];
	pid_t			 pid;
	unsigned		 i, j;
	int			 st;

	(void)state;
	assert_int_equal(shlimits_init(100, 10, 3, err, sizeof(err)), 0);
	tabs[0] = shlimits_per_ip();
	tabs[1] = shlimits_ips();
	tabs[2] = shlimits_userips();
	for (i = 0; i < 3; i++) {
		assert_true((pid = fork()) != -1);
		if (pid == 0) {
			proc_set_worker(i, 3);
			shlimits_conns_set(i + 1);
			for (j = 0; j < 3; j++) {
				iptable_lock(tabs[j]);
				e = iptable_get(tabs[j], "k", 1);
				if (e == NULL)
					_exit(1);
				iptable_ref(tabs[j], e);
				iptable_ref(tabs[j], e);
				iptable_unlock(tabs[j]);
			}
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_int_equal(shlimits_conns(), 1 + 2 + 3);
	assert_int_equal(shlimits_reclaim(1), 3 * 2);
	assert_int_equal(shlimits_conns(), 1 + 3);
	assert_int_equal(shlimits_reclaim(1), 0);
	assert_int_equal(shlimits_reclaim(3), 0);	/* no such worker */
	for (j = 0; j < 3; j++) {
		iptable_lock(tabs[j]);
		assert_non_null(e = iptable_find(tabs[j], "k", 1));
		assert_int_equal(e->refs, 4);
		assert_int_equal(iptable_check(tabs[j]), 0);
		iptable_unlock(tabs[j]);
	}
	assert_int_equal(shlimits_reclaim(0), 3 * 2);
	assert_int_equal(shlimits_reclaim(2), 3 * 2);
	assert_int_equal(shlimits_conns(), 0);
	for (j = 0; j < 3; j++) {
		iptable_lock(tabs[j]);
		assert_null(iptable_find(tabs[j], "k", 1));	/* freed */
		iptable_unlock(tabs[j]);
	}
	shlimits_free();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_workers_reclaim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
