/*
 * test_store: the driver-independent parts of the store: where a user's
 * mail is (store_locate) and UIDL templates (uidl_format).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store/registry.h"
#include "store/store.h"
#include "store/uidl_format.h"

struct loc {
	const struct store_ops	*ops;
	char			 path[256];
	char			 err[256];
};

static enum store_err
locate(struct loc *l, const char *extra, const char *user, const char *home)
{
	memset(l, 0, sizeof(*l));
	return store_locate(extra, "maildir", "/var/mail/%d/%n/Maildir", user,
	    home, &l->ops, l->path, sizeof(l->path), l->err, sizeof(l->err));
}

static void
test_locate_default(void **state)
{
	struct loc l;

	(void)state;
	/* No extra field, or one without a mail field: [mail] wins. */
	assert_int_equal(locate(&l, "", "bob@ex.org", "/home/bob"), STORE_OK);
	assert_ptr_equal(l.ops, store_driver("maildir"));
	assert_string_equal(l.path, "/var/mail/ex.org/bob/Maildir");
	assert_int_equal(locate(&l, "userdb_quota_rule=*:storage=1G "
	    "nomail=x", "bob@ex.org", ""), STORE_OK);
	assert_string_equal(l.path, "/var/mail/ex.org/bob/Maildir");
	assert_int_equal(locate(&l, NULL, "bob@ex.org", ""), STORE_OK);
	/* [mail] location needs the domain: no domain, no maildrop. */
	assert_int_equal(locate(&l, "", "bob", ""), STORE_PERM);
	assert_non_null(strstr(l.err, "cannot expand"));
}

static void
test_locate_override(void **state)
{
	struct loc l;

	(void)state;
	assert_int_equal(locate(&l, "userdb_mail=maildir:/srv/%n/Md",
	    "bob@ex.org", ""), STORE_OK);
	assert_ptr_equal(l.ops, store_driver("maildir"));
	assert_string_equal(l.path, "/srv/bob/Md");

	/* Driver names in any case; userdb_mail= wins over mail=. */
	assert_int_equal(locate(&l, "mail=maildir:/m/%n userdb_mail="
	    "Maildir:/u/%n", "bob", ""), STORE_OK);
	assert_string_equal(l.path, "/u/bob");

	/* "mail=" (a userdb-only file), among other fields. */
	assert_int_equal(locate(&l, "userdb_uid=5 mail=maildir:~/Maildir "
	    "x=y", "bob", "/home/bob"), STORE_OK);
	assert_string_equal(l.path, "/home/bob/Maildir");
	assert_int_equal(locate(&l, "mail=maildir:~", "bob", "/home/bob"),
	    STORE_OK);
	assert_string_equal(l.path, "/home/bob");

	/* Dovecot's parameters: ignored, except INBOX= for mbox. */
	assert_int_equal(locate(&l, "userdb_mail=maildir:~/Md:LAYOUT=fs:"
	    "INDEX=/idx/%u", "bob", "/h/bob"), STORE_OK);
	assert_string_equal(l.path, "/h/bob/Md");
	if (store_driver("mbox") != NULL) {
		assert_int_equal(locate(&l, "userdb_mail=mbox:~/mail:"
		    "INBOX=/var/mail/%u", "bob", "/h/bob"), STORE_OK);
		assert_ptr_equal(l.ops, store_driver("mbox"));
		assert_string_equal(l.path, "/var/mail/bob");
		assert_int_equal(locate(&l, "userdb_mail=mbox:/var/mail/%n",
		    "bob@ex.org", ""), STORE_OK);
		assert_string_equal(l.path, "/var/mail/bob");
	}
}

static void
test_locate_bad(void **state)
{
	struct loc	l;
	char		long_extra[1200];

	(void)state;
	assert_int_equal(locate(&l, "userdb_mail=mdbox:~/mdbox", "bob",
	    "/h"), STORE_PERM);
	assert_non_null(strstr(l.err, "unknown mail driver 'mdbox'"));
	/* Dovecot's "::" is a ':' in the path: refused, not cut. */
	assert_int_equal(locate(&l, "userdb_mail=maildir:~/Mail::x", "bob",
	    "/h"), STORE_PERM);
	assert_non_null(strstr(l.err, "'::'"));
	assert_int_equal(locate(&l, "userdb_mail=/var/mail/bob", "bob", "/h"),
	    STORE_PERM);
	assert_int_equal(locate(&l, "userdb_mail=:/x", "bob", "/h"),
	    STORE_PERM);
	assert_int_equal(locate(&l, "userdb_mail=maildir:Maildir", "bob",
	    "/h"), STORE_PERM);
	assert_non_null(strstr(l.err, "not absolute"));
	assert_int_equal(locate(&l, "userdb_mail=maildir:~bob/Md", "bob",
	    "/h"), STORE_PERM);
	/* ~ without a home directory. */
	assert_int_equal(locate(&l, "userdb_mail=maildir:~/Md", "bob", ""),
	    STORE_PERM);
	/* An empty value is not a location. */
	assert_int_equal(locate(&l, "userdb_mail=", "bob@ex.org", "/h"),
	    STORE_OK);
	assert_string_equal(l.path, "/var/mail/ex.org/bob/Maildir");

	memset(long_extra, 'a', sizeof(long_extra) - 1);
	long_extra[sizeof(long_extra) - 1] = '\0';
	memcpy(long_extra, "mail=maildir:/", 14);
	assert_int_equal(locate(&l, long_extra, "bob", "/h"), STORE_PERM);
	assert_non_null(strstr(l.err, "too long"));
	/* The longest that fits still fits after "~" grows to "%h". */
	long_extra[5 + 1023] = '\0';
	memcpy(long_extra, "mail=maildir:~/", 15);
	assert_int_equal(locate(&l, long_extra, "bob", "/h"), STORE_PERM);
	assert_non_null(strstr(l.err, "cannot expand"));	/* > 256 */
}

static void
test_uidl_format_check(void **state)
{
	char why[128];

	(void)state;
	assert_int_equal(uidl_format_check("%08Xu%08Xv", why, sizeof(why)), 0);
	assert_int_equal(uidl_format_check("%f", why, sizeof(why)), 0);
	assert_int_equal(uidl_format_check("UID%u-%v", why, sizeof(why)), 0);
	assert_int_equal(uidl_format_check("%m%%", why, sizeof(why)), 0);
	assert_int_equal(uidl_format_check("%x", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("%08xu", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("%-4.4f%LUXm", why, sizeof(why)),
	    0);
	assert_int_equal(uidl_format_check("%-4f", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("%08Xq", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("%u %v", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("%", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("%999u", why, sizeof(why)), -1);
	assert_int_equal(uidl_format_check("fixed", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "same UIDL"));
	assert_int_equal(uidl_format_check("%%", why, sizeof(why)), -1);
	assert_true(uidl_format_uses("%08Xu%08Xv", 'u'));
	assert_true(uidl_format_uses("%08Xu%08Xv", 'v'));
	assert_false(uidl_format_uses("%08Xu%08Xv", 'm'));
	assert_false(uidl_format_uses("%%m", 'm'));
	assert_true(uidl_format_uses("%%%m", 'm'));
}

static void
test_uidl_format_expand(void **state)
{
	struct uidl_vars	 v = { .file = "1700000000.M1P2.host",
	    .md5 = "0123456789abcdef0123456789abcdef", .has_uid = true,
	    .uid = 0x2a, .uidvalidity = 1700000000u };
	char			 out[71], tiny[4];

	(void)state;
	/* Dovecot's default for a migrated Maildir: X is lower-case hex. */
	assert_int_equal(uidl_format_expand("%08Xu%08Xv", &v, out,
	    sizeof(out)), 16);
	assert_string_equal(out, "0000002a6553f100");
	assert_int_equal(uidl_format_expand("%08UXu", &v, out, sizeof(out)),
	    8);
	assert_string_equal(out, "0000002a");	/* U, then X's lower case */
	assert_int_equal(uidl_format_expand("%08XUu", &v, out, sizeof(out)),
	    8);
	assert_string_equal(out, "0000002A");
	assert_int_equal(uidl_format_expand("UID%u-%v", &v, out, sizeof(out)),
	    16);
	assert_string_equal(out, "UID42-1700000000");
	assert_int_equal(uidl_format_expand("%f", &v, out, sizeof(out)), 20);
	assert_string_equal(out, "1700000000.M1P2.host");
	assert_int_equal(uidl_format_expand("%m%%", &v, out, sizeof(out)), 33);
	assert_string_equal(out, "0123456789abcdef0123456789abcdef%");
	assert_int_equal(uidl_format_expand("%Um", &v, out, sizeof(out)), 32);
	assert_string_equal(out, "0123456789ABCDEF0123456789ABCDEF");
	/* Dovecot's widths: without a 0 they cut, with one they pad. */
	assert_int_equal(uidl_format_expand("%5u", &v, out, sizeof(out)), 2);
	assert_string_equal(out, "42");
	assert_int_equal(uidl_format_expand("%05u", &v, out, sizeof(out)), 5);
	assert_string_equal(out, "00042");
	assert_int_equal(uidl_format_expand("%02v", &v, out, sizeof(out)), 10);
	assert_int_equal(uidl_format_expand("%4f", &v, out, sizeof(out)), 4);
	assert_string_equal(out, "1700");
	/* Offsets: N.M skips N, -N.M counts from the end. */
	assert_int_equal(uidl_format_expand("%11.4f", &v, out, sizeof(out)), 4);
	assert_string_equal(out, "M1P2");
	assert_int_equal(uidl_format_expand("%-4.0f", &v, out, sizeof(out)), 4);
	assert_string_equal(out, "host");
	assert_int_equal(uidl_format_expand("a%99.0fb", &v, out, sizeof(out)),
	    -1);					/* > 64 */
	assert_int_equal(uidl_format_expand("a%60.0fb", &v, out, sizeof(out)),
	    2);
	assert_string_equal(out, "ab");
	/* A long file name, cut to fit: only the result must be <= 70. */
	v.file = "1700000000.M123456P7890V000000000000FD01I0000000000ABCDEF_0."
	    "mail-host-01.example.org,S=12345";
	assert_int_equal(uidl_format_expand("%.24f", &v, out, sizeof(out)),
	    24);
	assert_string_equal(out, "1700000000.M123456P7890V");
	assert_int_equal(uidl_format_expand("%f", &v, out, sizeof(out)), -1);
	v.file = "1700000000.M1P2.host";
	/* X of a non-number: Dovecot's strtoull() gives what it can. */
	assert_int_equal(uidl_format_expand("%Xf", &v, out, sizeof(out)), 8);
	assert_string_equal(out, "6553f100");

	/* A value the message does not have: the driver's default. */
	v.has_uid = false;
	assert_int_equal(uidl_format_expand("%08Xu%08Xv", &v, out,
	    sizeof(out)), -1);
	v.file = NULL;
	assert_int_equal(uidl_format_expand("%f", &v, out, sizeof(out)), -1);
	/* Too long for RFC 1939 (70), or for the buffer. */
	v.md5 = "0123456789abcdef0123456789abcdef";
	assert_int_equal(uidl_format_expand("%m%m", &v, out, sizeof(out)), 64);
	assert_int_equal(uidl_format_expand("%m%m%m", &v, out, sizeof(out)),
	    -1);
	assert_int_equal(uidl_format_expand("%m", &v, tiny, sizeof(tiny)), -1);
	assert_int_equal(uidl_format_expand("%m", &v, tiny, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locate_default),
		cmocka_unit_test(test_locate_override),
		cmocka_unit_test(test_locate_bad),
		cmocka_unit_test(test_uidl_format_check),
		cmocka_unit_test(test_uidl_format_expand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
