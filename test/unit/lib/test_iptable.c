/*
 * iptable: address keys (IPv4, mapped IPv4, the IPv6 /64), exact
 * reference counts, and the bound: a million distinct addresses with
 * failures leave at most max_idle records, never evicting a pinned one,
 * and the least recently touched go first.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/iptable.h"

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
	assert_non_null(t = iptable_new(16));
	for (i = 0; i < 30000; i++) {
		k = i % 1000;
		memcpy(key, &k, 4);
		assert_non_null(e = iptable_get(t, key, 4));
		iptable_ref(t, e);
	}
	iptable_stats(t, &st);
	assert_int_equal(st.entries, 1000);
	assert_int_equal(st.idle, 0);
	memcpy(key, &(uint32_t){ 7 }, 4);
	assert_int_equal(iptable_find(t, key, 4)->refs, 30);
	for (i = 30000; i-- > 0; ) {
		k = i % 1000;
		memcpy(key, &k, 4);
		assert_non_null(e = iptable_find(t, key, 4));
		iptable_unref(t, e);
	}
	iptable_stats(t, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.evicted, 0);
	/* A record made but never used goes at its first update. */
	assert_non_null(e = iptable_get(t, "x", 1));
	iptable_update(t, e);
	assert_null(iptable_find(t, "x", 1));
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
	assert_non_null(t = iptable_new(1000));
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	for (i = 0; i < 100; i++) {
		s4.sin_addr.s_addr = htonl(0x0a000000 + i);	/* 10.0.0.i */
		len = iptable_addr_key((struct sockaddr *)&s4, key);
		assert_non_null(e = iptable_get(t, key, len));
		iptable_ref(t, e);
	}
	for (i = 0; i < 1000000; i++) {
		s4.sin_addr.s_addr = htonl(0xc6120000 + i);	/* 198.18/15 */
		len = iptable_addr_key((struct sockaddr *)&s4, key);
		assert_non_null(e = iptable_get(t, key, len));
		e->fails++;
		iptable_update(t, e);
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
	iptable_free(t);
}

/* A record touched again is kept over older ones. */
static void
test_lru_order(void **state)
{
	struct iptable		*t;
	struct iptable_entry	*e;

	(void)state;
	assert_non_null(t = iptable_new(2));
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
	iptable_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_keys),
		cmocka_unit_test(test_refs_exact),
		cmocka_unit_test(test_bound_many_addresses),
		cmocka_unit_test(test_lru_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
