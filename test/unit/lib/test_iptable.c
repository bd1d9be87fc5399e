/*
 * iptable: address keys (IPv4, mapped IPv4, the IPv6 /64), exact
 * reference counts, and the bound: a million distinct addresses with
 * failures leave at most max_idle records, never evicting a pinned one,
 * and the least recently touched go first. Shared memory: a full table
 * refuses new records (or evicts an idle one); forked processes taking
 * and dropping references and counting failures on the same keys at the
 * same time leave exact counts; a process that dies holding the lock (by
 * _exit() or SIGKILL) leaves it to the next taker, which repairs the
 * table, and iptable_reclaim() gives its references back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/iptable.h"
#include "lib/proc.h"

static struct iptable *
table_new(size_t capacity, size_t keymax, size_t max_idle, unsigned slots)
{
	struct iptable_size sz = {
		.capacity = capacity,
		.keymax = keymax,
		.max_idle = max_idle,
		.slots = slots,
	};

	return iptable_new(&sz);
}


static size_t
key_of(const char *text, unsigned char *key)
{
	struct sockaddr_in	s4;
	struct sockaddr_in6	s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, text, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		s4.sin_port = htons(1234);
		return iptable_addr_key((struct sockaddr *)&s4, key);
	}
	assert_int_equal(inet_pton(AF_INET6, text, &s6.sin6_addr), 1);
	s6.sin6_family = AF_INET6;
	return iptable_addr_key((struct sockaddr *)&s6, key);
}

static void
test_addr_keys(void **state)
{
	unsigned char	a[IPTABLE_ADDR_MAX], b[IPTABLE_ADDR_MAX];
	size_t		la, lb;
	struct sockaddr	un = { .sa_family = AF_UNIX };

	(void)state;
	la = key_of("192.0.2.7", a);
	lb = key_of("::ffff:192.0.2.7", b);
	assert_int_equal(la, 5);
	assert_memory_equal(a, b, la);		/* mapped is IPv4 */
	assert_int_equal(lb, la);
	lb = key_of("192.0.2.8", b);
	assert_memory_not_equal(a, b, la);
	/* One /64, whatever the interface id. */
	la = key_of("2001:db8:1:2::1", a);
	lb = key_of("2001:db8:1:2:ffff:ffff:ffff:ffff", b);
	assert_int_equal(la, 9);
	assert_int_equal(lb, 9);
	assert_memory_equal(a, b, la);
	lb = key_of("2001:db8:1:3::1", b);
	assert_memory_not_equal(a, b, la);
	/* An IPv4 key never equals an IPv6 one: lengths and family octet. */
	assert_int_equal(iptable_addr_key(&un, a), 0);
}

/* Interleaved references of many keys come back to an empty table. */
static void
test_refs_exact(void **state)
{
	struct iptable		*t;
	struct iptable_entry	*e;
	struct iptable_stats	 st;
	unsigned char		 key[8];
	uint32_t		 i, k;

	(void)state;
	assert_non_null(t = table_new(1001, 8, 16, 1));
	iptable_lock(t);
	for (i = 0; i < 30000; i++) {
		k = i % 1000;
		memcpy(key, &k, 4);
		assert_non_null(e = iptable_get(t, key, 4));
		iptable_ref(t, e);
	}
	assert_int_equal(iptable_check(t), 0);
	iptable_unlock(t);
	iptable_stats(t, &st);
	assert_int_equal(st.entries, 1000);
	assert_int_equal(st.idle, 0);
	iptable_lock(t);
	memcpy(key, &(uint32_t){ 7 }, 4);
	assert_int_equal(iptable_find(t, key, 4)->refs, 30);
	for (i = 30000; i-- > 0; ) {
		k = i % 1000;
		memcpy(key, &k, 4);
		assert_non_null(e = iptable_find(t, key, 4));
		iptable_unref(t, e);
	}
	iptable_unlock(t);
	iptable_stats(t, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.evicted, 0);
	iptable_lock(t);
	/* A record made but never used goes at its first update. */
	assert_non_null(e = iptable_get(t, "x", 1));
	iptable_update(t, e);
	assert_null(iptable_find(t, "x", 1));
	/* An unpaired unref is ignored. */
	assert_non_null(e = iptable_get(t, "y", 1));
	iptable_ref(t, e);
	iptable_unref(t, e);
	assert_null(iptable_find(t, "y", 1));
	assert_int_equal(iptable_check(t), 0);
	iptable_unlock(t);
	iptable_free(t);
}

/*
 * A botnet: a million distinct addresses fail once each while 100
 * addresses hold connections. The table never keeps more than max_idle
 * idle records, and the pinned ones survive.
 */
static void
test_bound_many_addresses(void **state)
{
	struct iptable		*t;
	struct iptable_entry	*e;
	struct iptable_stats	 st;
	unsigned char		 key[IPTABLE_ADDR_MAX];
	struct sockaddr_in	 s4;
	size_t			 len;
	uint32_t		 i;

	(void)state;
	/* Exactly as shlimits sizes it: pinned + idle + 1. */
	assert_non_null(t = table_new(100 + 1000 + 1, IPTABLE_ADDR_MAX, 1000,
	    1));
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	iptable_lock(t);
	for (i = 0; i < 100; i++) {
		s4.sin_addr.s_addr = htonl(0x0a000000 + i);	/* 10.0.0.i */
		len = iptable_addr_key((struct sockaddr *)&s4, key);
		assert_non_null(e = iptable_get(t, key, len));
		iptable_ref(t, e);
	}
	iptable_unlock(t);
	for (i = 0; i < 1000000; i++) {
		s4.sin_addr.s_addr = htonl(0xc6120000 + i);	/* 198.18/15 */
		len = iptable_addr_key((struct sockaddr *)&s4, key);
		iptable_lock(t);
		assert_non_null(e = iptable_get(t, key, len));
		e->fails++;
		iptable_update(t, e);
		iptable_unlock(t);
		if (i % 4096 == 0) {
			iptable_stats(t, &st);
			assert_true(st.idle <= 1000);
			assert_true(st.entries <= 1100);
		}
	}
	iptable_stats(t, &st);
	assert_int_equal(st.idle, 1000);
	assert_int_equal(st.entries, 1100);
	assert_int_equal(st.evicted, 1000000 - 1000);
	assert_int_equal(st.full, 0);
	iptable_lock(t);
	for (i = 0; i < 100; i++) {
		s4.sin_addr.s_addr = htonl(0x0a000000 + i);
		len = iptable_addr_key((struct sockaddr *)&s4, key);
		assert_non_null(e = iptable_find(t, key, len));
		assert_int_equal(e->refs, 1);
	}
	/* The newest 1000 are the ones kept. */
	s4.sin_addr.s_addr = htonl(0xc6120000 + 1000000 - 1000);
	len = iptable_addr_key((struct sockaddr *)&s4, key);
	assert_non_null(iptable_find(t, key, len));
	s4.sin_addr.s_addr = htonl(0xc6120000 + 1000000 - 1001);
	len = iptable_addr_key((struct sockaddr *)&s4, key);
	assert_null(iptable_find(t, key, len));
	assert_int_equal(iptable_check(t), 0);
	iptable_unlock(t);
	iptable_free(t);
}

/* A record touched again is kept over older ones. */
static void
test_lru_order(void **state)
{
	struct iptable		*t;
	struct iptable_entry	*e;

	(void)state;
	assert_non_null(t = table_new(4, IPTABLE_KEY_MAX, 2, 1));
	iptable_lock(t);
	e = iptable_get(t, "a", 1);
	e->fails = 1;
	iptable_update(t, e);
	e = iptable_get(t, "b", 1);
	e->fails = 1;
	iptable_update(t, e);
	e = iptable_find(t, "a", 1);		/* a fails again: newest */
	e->fails++;
	iptable_update(t, e);
	e = iptable_get(t, "c", 1);
	e->fails = 1;
	iptable_update(t, e);			/* evicts b, the oldest */
	assert_non_null(iptable_find(t, "a", 1));
	assert_null(iptable_find(t, "b", 1));
	assert_non_null(iptable_find(t, "c", 1));
	/* Cleared: gone at once. */
	e = iptable_find(t, "a", 1);
	e->fails = 0;
	iptable_update(t, e);
	assert_null(iptable_find(t, "a", 1));
	/* Too long a key is refused. */
	assert_null(iptable_get(t, "k", IPTABLE_KEY_MAX + 1));
	assert_int_equal(iptable_check(t), 0);
	iptable_unlock(t);
	/* A lower bound (a reload) trims the oldest at once. */
	iptable_lock(t);
	e = iptable_get(t, "d", 1);
	e->fails = 1;
	iptable_update(t, e);
	iptable_unlock(t);
	iptable_set_max_idle(t, 1);
	iptable_lock(t);
	assert_null(iptable_find(t, "c", 1));
	assert_non_null(iptable_find(t, "d", 1));
	iptable_unlock(t);
	iptable_free(t);
}

/* Shapes a table cannot have. */
static void
test_bad_shape(void **state)
{
	(void)state;
	errno = 0;
	assert_null(table_new(0, 8, 1, 1));
	assert_int_equal(errno, EINVAL);
	assert_null(table_new(8, 0, 1, 1));
	assert_null(table_new(8, IPTABLE_KEY_MAX + 1, 1, 1));
	assert_null(table_new(8, 8, 0, 1));
	assert_null(table_new(8, 8, 1, 0));
	assert_null(table_new(8, 8, 1, IPTABLE_SLOTS_MAX + 1));
}

/*
 * Capacity: when every record is pinned a new key gets NULL (counted as
 * full) and the table stays whole; a reference given back makes room;
 * with an idle record the oldest idle one makes room instead, whatever
 * max_idle says (a reload may have raised it past the capacity).
 */
static void
test_capacity(void **state)
{
	struct iptable		*t;
	struct iptable_entry	*e;
	struct iptable_stats	 st;
	unsigned char		 k;

	(void)state;
	assert_non_null(t = table_new(4, 1, 1, 1));
	iptable_set_max_idle(t, 100);
	iptable_lock(t);
	for (k = 0; k < 4; k++) {
		assert_non_null(e = iptable_get(t, &k, 1));
		iptable_ref(t, e);
	}
	k = 4;
	assert_null(iptable_get(t, &k, 1));
	assert_null(iptable_get(t, &k, 1));
	assert_null(iptable_find(t, &k, 1));
	/* A key longer than the table's: refused too, not counted. */
	assert_null(iptable_get(t, "ab", 2));
	assert_null(iptable_find(t, "ab", 2));
	assert_int_equal(iptable_check(t), 0);
	iptable_unlock(t);
	iptable_stats(t, &st);
	assert_int_equal(st.capacity, 4);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.full, 2);

	iptable_lock(t);
	k = 0;
	iptable_unref(t, iptable_find(t, &k, 1));	/* freed */
	k = 1;
	e = iptable_find(t, &k, 1);
	e->fails = 1;
	iptable_unref(t, e);				/* idle */
	k = 4;
	assert_non_null(e = iptable_get(t, &k, 1));	/* the free one */
	e->fails = 1;
	iptable_update(t, e);
	k = 5;
	assert_non_null(e = iptable_get(t, &k, 1));	/* evicts 1 */
	iptable_ref(t, e);
	k = 1;
	assert_null(iptable_find(t, &k, 1));
	k = 4;
	assert_non_null(iptable_find(t, &k, 1));
	assert_int_equal(iptable_check(t), 0);
	iptable_unlock(t);
	iptable_stats(t, &st);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.idle, 1);
	assert_int_equal(st.evicted, 1);
	iptable_free(t);
}

/* ------------------------------------------------------------ processes */

#define FORK_PROCS	4
#define FORK_KEYS	16
#define FORK_ROUNDS	20000

/* A small PRNG for the children (xorshift32): no shared state. */
static uint32_t
xs32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* What child i holds of key k at the end. */
static uint32_t
fork_keep(unsigned i, unsigned k)
{
	return (i + k) % 3;
}

/*
 * Child i: FORK_ROUNDS random references taken and given back on
 * FORK_KEYS keys, each round also counting a failure on its key, then
 * keep fork_keep(i, k) of each. Exit status 0, or what went wrong.
 */
static int
fork_child(struct iptable *t, unsigned i)
{
	struct iptable_entry	*e;
	uint32_t		 held[FORK_KEYS] = { 0 }, x = 0x9e3779b9u * (i + 1);
	unsigned char		 key;
	unsigned		 n, k;

	proc_set_worker(i, FORK_PROCS);
	for (n = 0; n < FORK_ROUNDS; n++) {
		k = xs32(&x) % FORK_KEYS;
		key = (unsigned char)k;
		iptable_lock(t);
		if ((e = iptable_get(t, &key, 1)) == NULL) {
			iptable_unlock(t);
			return 2;
		}
		e->fails++;			/* a lost update shows */
		if (held[k] > 0 && xs32(&x) % 2 == 0) {
			iptable_unref(t, e);
			held[k]--;
		} else {
			iptable_ref(t, e);
			held[k]++;
		}
		iptable_unlock(t);
	}
	for (k = 0; k < FORK_KEYS; k++) {
		key = (unsigned char)k;
		iptable_lock(t);
		e = iptable_find(t, &key, 1);
		while (e != NULL && held[k] > fork_keep(i, k)) {
			iptable_unref(t, e);
			held[k]--;
		}
		while (e != NULL && held[k] < fork_keep(i, k)) {
			iptable_ref(t, e);
			held[k]++;
		}
		iptable_unlock(t);
		if (e == NULL && fork_keep(i, k) > 0)
			return 3;
	}
	return 0;
}

/*
 * FORK_PROCS processes on the same keys at once: every failure counted
 * (no update lost), every reference where it belongs, and reclaiming a
 * process's slot takes exactly its references.
 */
static void
test_fork_concurrent(void **state)
{
	struct iptable		*t;
	struct iptable_entry	*e;
	pid_t			 pids[FORK_PROCS];
	uint64_t		 fails = 0;
	uint32_t		 want;
	unsigned char		 key;
	unsigned		 i, k;
	int			 st;

	(void)state;
	/* Failures keep records idle: room for all. */
	assert_non_null(t = table_new(64, 1, 64, FORK_PROCS));
	for (i = 0; i < FORK_PROCS; i++) {
		assert_true((pids[i] = fork()) != -1);
		if (pids[i] == 0)
			_exit(fork_child(t, i));
	}
	for (i = 0; i < FORK_PROCS; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	iptable_lock(t);
	assert_int_equal(iptable_check(t), 0);
	for (k = 0; k < FORK_KEYS; k++) {
		key = (unsigned char)k;
		assert_non_null(e = iptable_find(t, &key, 1));
		fails += e->fails;
		for (want = 0, i = 0; i < FORK_PROCS; i++)
			want += fork_keep(i, k);
		assert_int_equal(e->refs, want);
	}
	assert_int_equal(fails, (uint64_t)FORK_PROCS * FORK_ROUNDS);
	iptable_unlock(t);

	/* Process 2 is gone: its references go, nobody else's. */
	for (want = 0, k = 0; k < FORK_KEYS; k++)
		want += fork_keep(2, k);
	assert_int_equal(iptable_reclaim(t, 2), want);
	assert_int_equal(iptable_reclaim(t, 2), 0);
	assert_int_equal(iptable_reclaim(t, FORK_PROCS), 0);
	iptable_lock(t);
	assert_int_equal(iptable_check(t), 0);
	for (k = 0; k < FORK_KEYS; k++) {
		key = (unsigned char)k;
		assert_non_null(e = iptable_find(t, &key, 1));
		for (want = 0, i = 0; i < FORK_PROCS; i++)
			if (i != 2)
				want += fork_keep(i, k);
		assert_int_equal(e->refs, want);
	}
	iptable_unlock(t);
	iptable_free(t);
}

/*
 * The child, worker 1, takes references, then dies holding the lock in
 * the middle of a change (a new record neither referenced nor failed,
 * which iptable_update() would have freed): by _exit(), or, when a pipe
 * is given, by the parent's SIGKILL after it says it holds the lock.
 */
static void
holder_child(struct iptable *t, int say_fd)
{
	struct iptable_entry *e;

	proc_set_worker(1, 2);
	iptable_lock(t);
	iptable_ref(t, iptable_get(t, "a", 1));
	iptable_ref(t, iptable_get(t, "c", 1));
	e = iptable_get(t, "c", 1);
	iptable_ref(t, e);
	(void)iptable_get(t, "d", 1);		/* half done */
	e->fails = 7;
	if (say_fd == -1)
		_exit(0);
	if (write(say_fd, "L", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void
holder_dies(bool kill9)
{
	struct iptable		*t;
	struct iptable_entry	*e;
	struct iptable_stats	 st;
	pid_t			 pid;
	int			 fds[2] = { -1, -1 }, status;
	char			 c;

	assert_non_null(t = table_new(16, 4, 8, 2));
	iptable_lock(t);
	iptable_ref(t, iptable_get(t, "a", 1));		/* worker 0's */
	e = iptable_get(t, "b", 1);
	e->fails = 3;
	iptable_update(t, e);
	iptable_unlock(t);

	if (kill9)
		assert_int_equal(pipe(fds), 0);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		if (kill9)
			close(fds[0]);
		holder_child(t, fds[1]);
	}
	if (kill9) {
		/* Only the child holds the write end: if it dies before it
		 * writes, read() sees EOF and fails rather than hangs. */
		close(fds[1]);
		assert_int_equal(read(fds[0], &c, 1), 1);
		assert_int_equal(kill(pid, SIGKILL), 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (kill9) {
		assert_true(WIFSIGNALED(status));
		close(fds[0]);
	}

	/* The next taker repairs: the half-made record is gone. */
	iptable_lock(t);
	assert_int_equal(iptable_check(t), 0);
	assert_null(iptable_find(t, "d", 1));
	assert_non_null(e = iptable_find(t, "a", 1));
	assert_int_equal(e->refs, 2);
	assert_non_null(e = iptable_find(t, "c", 1));
	assert_int_equal(e->refs, 2);
	assert_int_equal(e->fails, 7);
	assert_non_null(e = iptable_find(t, "b", 1));
	assert_int_equal(e->fails, 3);
	iptable_unlock(t);
	iptable_stats(t, &st);
	assert_int_equal(st.repaired, 1);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.idle, 1);

	/* The supervisor gives worker 1's references back. */
	assert_int_equal(iptable_reclaim(t, 1), 3);
	iptable_lock(t);
	assert_int_equal(iptable_check(t), 0);
	assert_int_equal(iptable_find(t, "a", 1)->refs, 1);
	assert_int_equal(iptable_find(t, "c", 1)->refs, 0);	/* idle */
	iptable_unlock(t);
	iptable_stats(t, &st);
	assert_int_equal(st.repaired, 1);		/* once only */
	assert_int_equal(st.idle, 2);
	iptable_free(t);
}

static void
test_holder_exits(void **state)
{
	(void)state;
	holder_dies(false);
}

static void
test_holder_killed(void **state)
{
	(void)state;
	holder_dies(true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_keys),
		cmocka_unit_test(test_refs_exact),
		cmocka_unit_test(test_bound_many_addresses),
		cmocka_unit_test(test_lru_order),
		cmocka_unit_test(test_bad_shape),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_fork_concurrent),
		cmocka_unit_test(test_holder_exits),
		cmocka_unit_test(test_holder_killed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
