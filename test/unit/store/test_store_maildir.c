/*
 * test_store_maildir: the Maildir driver and store.c's helpers, on real
 * Maildirs in a mkdtemp() directory.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "store/maildir/maildir.h"
#include "store/maildir/maildir_sizecache.h"
#include "store/maildir/maildir_test.h"
#include "store/maildir/maildir_uidlist.h"
#include "store/registry.h"
#include "store/sesslock.h"
#include "store/store.h"
#include "lib/wire.h"

struct fixture {
	char	 tmp[64];		/* the mkdtemp() directory */
	char	 md[256];		/* <tmp>/Maildir */
};

static const struct store_ops *ops = &store_maildir_ops;

/* open() with the default UIDL format. */
static enum store_err
md_open_at(const char *path, struct maildrop **md_r, char *err, size_t len)
{
	struct store_params p = { .path = path, .uidl_format = "" };

	return ops->open(&p, md_r, err, len);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->tmp, "/tmp/test_store_maildir.XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->md, sizeof(f->md), "%s/Maildir", f->tmp);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
mkdirs(const struct fixture *f)
{
	char	 p[PATH_MAX];

	assert_int_equal(mkdir(f->md, 0700), 0);
	snprintf(p, sizeof(p), "%s/cur", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/new", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/tmp", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
}

/* Write len bytes of s (len -1: strlen) to <md>/<sub>/<name>. */
static void
put(const struct fixture *f, const char *sub, const char *name,
    const char *s, ssize_t len)
{
	char	 p[PATH_MAX];
	int	 fd;

	if (len < 0)
		len = (ssize_t)strlen(s);
	snprintf(p, sizeof(p), "%s/%s/%s", f->md, sub, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, s, (size_t)len), len);
	close(fd);
}

static int
exists(const struct fixture *f, const char *sub, const char *name)
{
	char		 p[PATH_MAX];
	struct stat	 st;

	snprintf(p, sizeof(p), "%s/%s/%s", f->md, sub, name);
	return stat(p, &st) == 0;
}

static void
mv(const struct fixture *f, const char *from, const char *to)
{
	char	 a[PATH_MAX], b[PATH_MAX];

	snprintf(a, sizeof(a), "%s/%s", f->md, from);
	snprintf(b, sizeof(b), "%s/%s", f->md, to);
	assert_int_equal(rename(a, b), 0);
}

static void
rm(const struct fixture *f, const char *rel)
{
	char	 a[PATH_MAX];

	snprintf(a, sizeof(a), "%s/%s", f->md, rel);
	assert_int_equal(unlink(a), 0);
}

static struct maildrop *
open_ok(const char *path)
{
	struct maildrop	*md = NULL;
	char		 err[256];
	enum store_err	 rv;

	rv = md_open_at(path, &md, err, sizeof(err));
	if (rv != STORE_OK)
		fail_msg("open %s: %d %s", path, rv, err);
	assert_non_null(md);
	assert_ptr_equal(md->ops, ops);
	return md;
}

/*
 * msg_open() as cmd_mail does it: on STORE_AGAIN, msg_locate() (on a
 * worker thread there) and msg_open() once more, which must then not
 * say STORE_AGAIN.
 */
static enum store_err
msg_open_found(struct maildrop *md, size_t i, struct store_reader **r_r)
{
	enum store_err	 rv;

	if ((rv = ops->msg_open(md, i, r_r)) != STORE_AGAIN)
		return rv;
	assert_null(*r_r);
	if ((rv = ops->msg_locate(md, i)) != STORE_OK)
		return rv;
	rv = ops->msg_open(md, i, r_r);
	assert_int_not_equal(rv, STORE_AGAIN);
	return rv;
}

/* Read message i whole through msg_read() with small reads. */
static char *
slurp(struct maildrop *md, size_t i, size_t *len_r)
{
	struct store_reader	*r;
	char			*s = NULL;
	size_t			 len = 0, step;
	ssize_t			 n;

	assert_int_equal(msg_open_found(md, i, &r), STORE_OK);
	assert_non_null(r);
	for (;;) {
		/* Odd small reads first, then big ones. */
		step = len < 64 ? 7 : 65536;
		s = realloc(s, len + step + 1);
		assert_non_null(s);
		n = ops->msg_read(r, s + len, step);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	ops->msg_close(r);
	s[len] = '\0';
	*len_r = len;
	return s;
}

static size_t
find_uidl(struct maildrop *md, const char *uidl)
{
	size_t	 i;

	for (i = 0; i < maildrop_count(md); i++)
		if (strcmp(maildrop_uidl(md, i), uidl) == 0)
			return i;
	fail_msg("no message with uidl %s", uidl);
	return SIZE_MAX;
}

/* Message i reads as want. */
static void
expect_content(struct maildrop *md, size_t i, const char *want)
{
	char	*s;
	size_t	 len;

	s = slurp(md, i, &len);
	assert_int_equal(len, strlen(want));
	assert_string_equal(s, want);
	free(s);
}

/* A missing Maildir is created, with its parents, mode 0700. */
/* open() as the event loop makes it (nowait), with uidl_format fmt. */
static enum store_err
open_nowait(const char *path, const char *fmt, struct maildrop **md_r)
{
	struct store_params	 p = { .path = path, .uidl_format = fmt,
				    .nowait = true };
	char			 err[256];

	*md_r = NULL;
	return ops->open(&p, md_r, err, sizeof(err));
}

/*
 * The event loop's open (nowait) never waits and never does the slow
 * steps; each is STORE_AGAIN, nothing opened, the lock left free: a lock
 * a live session of this process holds (it may be ending in the same
 * turn; once disowned the open takes it over); a name without W= whose
 * size is not in the size cache (it would be read whole); a missing
 * Maildir (mkdir); no cutoff file yet (dovecot-uidlist, an fsync); a
 * uidl_format with %m (every message's headers).
 */
static void
test_nowait(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*a = NULL, *b = NULL;
	char		 err[256], p[PATH_MAX], other[PATH_MAX];

	/* Missing: not made here. */
	assert_int_equal(open_nowait(f->md, "", &a), STORE_AGAIN);
	assert_int_equal(access(f->md, F_OK), -1);
	ops->close(open_ok(f->md));		/* a thread's open makes it */

	assert_int_equal(open_nowait(f->md, "", &a), STORE_OK);
	assert_int_equal(open_nowait(f->md, "", &b), STORE_AGAIN);
	assert_null(b);
	assert_int_equal(md_open_at(f->md, &b, err, sizeof(err)),
	    STORE_INUSE);			/* a thread's answer */
	ops->disown(a);
	assert_int_equal(open_nowait(f->md, "", &b), STORE_OK);
	ops->close(a);
	ops->close(b);

	/* A name without a size: read by a thread, then from the cache. */
	put(f, "new", "1.a.host", "x\n", -1);
	assert_int_equal(open_nowait(f->md, "", &a), STORE_AGAIN);
	assert_null(a);
	ops->close(open_ok(f->md));		/* sizes cached, cutoff written */
	assert_int_equal(open_nowait(f->md, "", &a), STORE_OK);
	assert_int_equal(maildrop_count(a), 1);
	assert_int_equal(maildrop_total(a), 3);	/* "x\r\n" */
	ops->close(a);
	/* The lock was left free by every STORE_AGAIN. */
	b = open_ok(f->md);
	ops->close(b);

	/* %m: every message read. */
	assert_int_equal(open_nowait(f->md, "%m", &a), STORE_AGAIN);
	/* No cutoff file: dovecot-uidlist is looked for, the cutoff saved. */
	snprintf(p, sizeof(p), "%s/%s", f->md, MAILDIR_UIDLIST_CUTOFF_FILE);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(open_nowait(f->md, "", &a), STORE_AGAIN);
	assert_int_equal(access(p, F_OK), -1);
	ops->close(open_ok(f->md));
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(open_nowait(f->md, "", &a), STORE_OK);
	ops->close(a);

	/* Elsewhere, missing: nothing made. */
	snprintf(other, sizeof(other), "%s/other/Maildir", f->tmp);
	assert_int_equal(open_nowait(other, "", &a), STORE_AGAIN);
	assert_int_equal(access(other, F_OK), -1);

	/* A thread's open says whether a loop's would do next time. */
	a = open_ok(f->md);
	assert_true(ops->quick_ok(a));
	ops->close(a);
	{
		struct store_params	 q = { .path = f->md,
					    .uidl_format = "%m" };

		assert_int_equal(ops->open(&q, &a, err, sizeof(err)),
		    STORE_OK);
		assert_false(ops->quick_ok(a));
		ops->close(a);
	}

	/* Past max_msgs: a Maildir that grew is a thread's to list. */
	put(f, "new", "2.a.host", "y\n", -1);
	put(f, "new", "3.a.host", "z\n", -1);
	ops->close(open_ok(f->md));		/* their sizes cached */
	{
		struct store_params	 q = { .path = f->md, .uidl_format = "",
					    .nowait = true, .max_msgs = 2 };

		assert_int_equal(ops->open(&q, &a, err, sizeof(err)),
		    STORE_AGAIN);
		q.max_msgs = 3;
		assert_int_equal(ops->open(&q, &a, err, sizeof(err)),
		    STORE_OK);
		assert_int_equal(maildrop_count(a), 3);
		ops->close(a);
	}

	/* A cutoff with records to use (a Dovecot migration): refused
	 * after the scan, the lock left free. */
	assert_int_equal(maildir_uidlist_cutoff_save(f->md, 1, 7), 0);
	assert_int_equal(open_nowait(f->md, "", &a), STORE_AGAIN);
	assert_int_equal(sesslock_count(), 0);
}

static void
test_create_missing(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct stat	 st;
	char		 p[PATH_MAX], deep[256];
	static const char *const subs[] = { "cur", "new", "tmp" };
	size_t		 i;

	snprintf(deep, sizeof(deep), "%s/home/u/Maildir", f->tmp);
	md = open_ok(deep);
	assert_int_equal(maildrop_count(md), 0);
	ops->close(md);
	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", deep, subs[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 077, 0);
	}

	/* An existing Maildir that lacks cur/ gets one. */
	assert_int_equal(mkdir(f->md, 0700), 0);
	snprintf(p, sizeof(p), "%s/new", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	put(f, "new", "1.a.host", "x\n", -1);
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 1);
	ops->close(md);
	assert_true(exists(f, "cur", "."));
}

/* A path that cannot be a Maildir is an error with a reason. */
static void
test_open_errors(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md = (struct maildrop *)1;
	char		 p[PATH_MAX], err[256] = "";
	int		 fd;

	snprintf(p, sizeof(p), "%s/file", f->tmp);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd != -1);
	close(fd);
	assert_int_equal(md_open_at(p, &md, err, sizeof(err)), STORE_TEMP);
	assert_null(md);
	assert_true(strstr(err, p) != NULL);

	/* cur/ is a file. */
	snprintf(p, sizeof(p), "%s/bad", f->tmp);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/bad/cur", f->tmp);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd != -1);
	close(fd);
	snprintf(p, sizeof(p), "%s/bad", f->tmp);
	assert_int_not_equal(md_open_at(p, &md, err, sizeof(err)), STORE_OK);
	assert_int_equal(md_open_at("", &md, err, sizeof(err)), STORE_PERM);
}

/* new/ and cur/, flags or not, in delivery-time order; junk skipped. */
static void
test_scan_order(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	static const char *const want[] = {
		"noname.x", "999.B.host", "1000.A.host", "1000.AA.host",
		"1001.C.host", "1004.link", "9999.Y", "10000.Z",
	};
	char		 p[PATH_MAX], *s;
	size_t		 i, len;

	mkdirs(f);
	put(f, "new", "1000.A.host", "A\n", -1);
	put(f, "cur", "999.B.host:2,S", "B\n", -1);
	put(f, "cur", "1001.C.host:2,", "C\n", -1);
	put(f, "cur", "1000.AA.host:2,RS", "AA\n", -1);
	put(f, "new", "10000.Z", "Z\n", -1);
	put(f, "cur", "9999.Y:2,T", "Y\n", -1);
	put(f, "new", "noname.x", "N\n", -1);
	put(f, "new", ".hidden", "H\n", -1);		/* skipped */
	put(f, "cur", ".1002.dot:2,", "H\n", -1);	/* skipped */
	put(f, "tmp", "998.T", "T\n", -1);		/* not delivered */
	snprintf(p, sizeof(p), "%s/new/1002.dir", f->md);
	assert_int_equal(mkdir(p, 0700), 0);		/* not a file */
	snprintf(p, sizeof(p), "%s/cur/1003.fifo", f->md);
	assert_int_equal(mkfifo(p, 0600), 0);		/* not a file */
	snprintf(p, sizeof(p), "%s/new/1003.dangling", f->md);
	assert_int_equal(symlink("/nonexistent/x", p), 0);
	snprintf(p, sizeof(p), "%s/new/1004.link", f->md);
	assert_int_equal(symlink("../new/1000.A.host", p), 0);

	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 8);
	for (i = 0; i < 8; i++)
		assert_string_equal(maildrop_uidl(md, i), want[i]);
	/* Each index reads its own file. */
	s = slurp(md, 2, &len);
	assert_string_equal(s, "A\n");
	free(s);
	s = slurp(md, 1, &len);
	assert_string_equal(s, "B\n");
	free(s);
	s = slurp(md, 7, &len);
	assert_string_equal(s, "Z\n");
	free(s);
	ops->close(md);
}

/* Wire sizes: LF and CRLF files, ,W= in the name, large files. */
static void
test_sizes(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		*big, *s;
	size_t		 i, len, biglen = 300000;
	struct wire_enc	 e;

	mkdirs(f);
	put(f, "new", "1.lf", "a\nb\n", -1);
	put(f, "new", "2.crlf", "a\r\nb\r\n", -1);
	put(f, "new", "3.nonl", "abc", -1);
	put(f, "new", "4.empty", "", -1);
	put(f, "cur", "5.w,S=4,W=1234:2,S", "a\nb\n", -1);
	put(f, "cur", "6.w,W=77", "a\nb\n", -1);
	put(f, "new", "7.badw,W=12x", "a\nb\n", -1);	/* not a ,W= */
	put(f, "new", "8.emptyw,W=,S=4", "a\nb\n", -1);
	put(f, "cur", "9.infow:2,W=55", "a\nb\n", -1);	/* info, not name */
	put(f, "new", "10.dots", ".\n..\n", -1);	/* dots not counted */
	put(f, "new", "11.cr", "a\rb\r", -1);
	big = malloc(biglen);
	assert_non_null(big);
	for (i = 0; i < biglen; i++)
		big[i] = i % 61 == 60 ? '\n' : (i % 5 == 0 ? '\r' : 'x');
	put(f, "new", "12.big", big, (ssize_t)biglen);

	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 12);
	assert_true(maildrop_size(md, find_uidl(md, "1.lf")) == 6);
	assert_true(maildrop_size(md, find_uidl(md, "2.crlf")) == 6);
	assert_true(maildrop_size(md, find_uidl(md, "3.nonl")) == 5);
	assert_true(maildrop_size(md, find_uidl(md, "4.empty")) == 0);
	assert_true(maildrop_size(md, find_uidl(md, "5.w,S=4,W=1234")) == 1234);
	assert_true(maildrop_size(md, find_uidl(md, "6.w,W=77")) == 77);
	assert_true(maildrop_size(md, find_uidl(md, "7.badw,W=12x")) == 6);
	assert_true(maildrop_size(md, find_uidl(md, "8.emptyw,W=,S=4")) == 6);
	assert_true(maildrop_size(md, find_uidl(md, "9.infow")) == 6);
	assert_true(maildrop_size(md, find_uidl(md, "10.dots")) == 7);
	assert_true(maildrop_size(md, find_uidl(md, "11.cr")) == 6);
	assert_true(maildrop_size(md, find_uidl(md, "12.big")) ==
	    wire_size(big, biglen));
	assert_true(wire_size(big, biglen) > biglen);

	/* The size agrees with encoding what msg_read() returns. */
	s = slurp(md, find_uidl(md, "12.big"), &len);
	assert_int_equal(len, biglen);
	assert_memory_equal(s, big, biglen);
	wire_enc_init(&e, -1);
	wire_enc_feed(&e, s, len, NULL);
	wire_enc_finish(&e, NULL);
	assert_true(e.octets == maildrop_size(md, find_uidl(md, "12.big")));
	free(s);
	free(big);

	/* Out of range. */
	assert_true(maildrop_size(md, 12) == 0);
	assert_null(maildrop_uidl(md, 12));
	ops->close(md);
}

static void
md5hex(const char *s, char out[33])
{
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n, i;

	assert_int_equal(EVP_Digest(s, strlen(s), d, &n, EVP_md5(), NULL), 1);
	assert_int_equal(n, 16);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void
check_uidls_valid(struct maildrop *md)
{
	const char	*u, *v;
	size_t		 i, j, len;

	for (i = 0; i < maildrop_count(md); i++) {
		u = maildrop_uidl(md, i);
		len = strlen(u);
		assert_true(len >= 1 && len <= POP3_UIDL_MAX);
		for (j = 0; j < len; j++)
			assert_true(u[j] >= 0x21 && u[j] <= 0x7e);
		for (j = 0; j < i; j++) {
			v = maildrop_uidl(md, j);
			if (strcmp(u, v) == 0)
				fail_msg("uidl %s twice (%zu, %zu)", u, j, i);
		}
	}
}

/* UIDL: the unique part, stable, hashed when invalid, made unique. */
static void
test_uidl(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 longname[128], long70[80], name[160], hex[33];
	char		*first[32];
	size_t		 i, n;

	mkdirs(f);
	memset(longname, 'L', sizeof(longname));
	memcpy(longname, "1000.", 5);
	longname[100] = '\0';			/* 100 chars: too long */
	memset(long70, 'M', sizeof(long70));
	memcpy(long70, "1000.", 5);
	long70[70] = '\0';			/* exactly 70: kept */

	put(f, "new", "1000.plain.host", "x\n", -1);
	put(f, "cur", "1001.flags.host:2,FS", "x\n", -1);
	put(f, "new", longname, "x\n", -1);
	snprintf(name, sizeof(name), "%s:2,S", long70);
	put(f, "cur", name, "x\n", -1);
	put(f, "new", "1002.sp ace", "x\n", -1);	/* space: hashed */
	put(f, "new", "1003.del\x7f", "x\n", -1);	/* DEL: hashed */
	put(f, "new", "1004.hi\xc3\xa9", "x\n", -1);	/* 8-bit: hashed */
	put(f, "cur", ":2,S", "x\n", -1);		/* empty: hashed */
	/* Duplicates of a unique part, and an id a suffix would take. */
	put(f, "new", "1005.D", "new\n", -1);
	put(f, "cur", "1005.D:2,S", "cur\n", -1);
	put(f, "cur", "1005.D:2,RS", "cur2\n", -1);
	put(f, "new", "1005.D-2", "x\n", -1);
	/* new/ sorts before cur/, whatever the info. */
	put(f, "new", "1006.E:2,", "newE", -1);
	put(f, "cur", "1006.E", "curE", -1);
	/* Duplicates of a 70-char unique part stay within 70. */
	snprintf(name, sizeof(name), "%s:2,T", long70);
	put(f, "cur", name, "x\n", -1);

	md = open_ok(f->md);
	n = maildrop_count(md);
	assert_int_equal(n, 15);
	check_uidls_valid(md);
	find_uidl(md, "1000.plain.host");
	find_uidl(md, "1001.flags.host");
	find_uidl(md, long70);
	md5hex(longname, hex);
	find_uidl(md, hex);
	md5hex("1002.sp ace", hex);
	find_uidl(md, hex);
	md5hex("1003.del\x7f", hex);
	find_uidl(md, hex);
	md5hex("1004.hi\xc3\xa9", hex);
	find_uidl(md, hex);
	md5hex("", hex);
	find_uidl(md, hex);
	/* Session order: new/ "1005.D", cur/ ":2,RS", cur/ ":2,S", then
	 * "1005.D-2" keeps its own id and the copies skip it. */
	i = find_uidl(md, "1005.D");
	expect_content(md, i, "new\n");
	expect_content(md, i + 1, "cur2\n");
	expect_content(md, i + 2, "cur\n");
	assert_string_equal(maildrop_uidl(md, i + 1), "1005.D-3");
	assert_string_equal(maildrop_uidl(md, i + 2), "1005.D-4");
	assert_string_equal(maildrop_uidl(md, i + 3), "1005.D-2");
	i = find_uidl(md, "1006.E");
	assert_string_equal(maildrop_uidl(md, i + 1), "1006.E-2");
	expect_content(md, i, "newE");
	expect_content(md, i + 1, "curE");
	memcpy(name, long70, 68);
	memcpy(name + 68, "-2", 3);
	find_uidl(md, name);

	for (i = 0; i < maildrop_count(md); i++)
		first[i] = strdup(maildrop_uidl(md, i));
	ops->close(md);

	/* Stable across sessions, and when new/ mail moves to cur/. */
	md = open_ok(f->md);
	for (i = 0; i < maildrop_count(md); i++)
		assert_string_equal(maildrop_uidl(md, i), first[i]);
	ops->close(md);
	mv(f, "new/1000.plain.host", "cur/1000.plain.host:2,S");
	md = open_ok(f->md);
	for (i = 0; i < maildrop_count(md); i++) {
		assert_string_equal(maildrop_uidl(md, i), first[i]);
		free(first[i]);
	}
	ops->close(md);
}

/* RFC 1939 section 4: one session at a time, in and across processes. */
static void
test_lock(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*a, *b = NULL;
	char		 err[256];
	size_t		 failed = 1;
	pid_t		 pid;
	int		 status;

	mkdirs(f);
	put(f, "new", "1.a", "x\n", -1);
	a = open_ok(f->md);
	assert_int_equal(md_open_at(f->md, &b, err, sizeof(err)), STORE_INUSE);
	assert_null(b);
	assert_true(strlen(err) > 0);

	/* Another process. */
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct maildrop	*c = NULL;

		_exit(md_open_at(f->md, &c, err, sizeof(err)) == STORE_INUSE ?
		    0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* close() unlocks. */
	ops->close(a);
	b = open_ok(f->md);
	assert_int_equal(maildrop_count(b), 1);

	/* ... and so does commit(). */
	assert_int_equal(ops->commit(b, (const uint8_t *)"\0", &failed),
	    STORE_OK);
	assert_int_equal(failed, 0);
	a = open_ok(f->md);

	/* The lock ends with the session, not with the process. */
	ops->close(a);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct maildrop	*c = NULL;

		if (md_open_at(f->md, &c, err, sizeof(err)) != STORE_OK)
			_exit(1);
		ops->close(c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The lock file stays; the lock is its record. */
	a = open_ok(f->md);
	ops->close(a);
	assert_true(exists(f, ".", STORE_MAILDIR_LOCKFILE));

	/* A holder that died without unlocking leaves a stale lock. */
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct maildrop	*c = NULL;

		_exit(md_open_at(f->md, &c, err, sizeof(err)) == STORE_OK ?
		    0 : 1);		/* exits holding it */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(exists(f, ".", STORE_MAILDIR_LOCKFILE));
	a = open_ok(f->md);
	ops->close(a);
}

/* Another program moves new/ -> cur/ and renames with flags. */
static void
test_moved(void **state)
{
	struct fixture		*f = *state;
	struct maildrop		*md;
	struct store_reader	*r = (struct store_reader *)1;
	char			 a[64], b[64];
	size_t			 i;

	mkdirs(f);
	put(f, "new", "1000.M", "hello\n", -1);
	for (i = 0; i < 20; i++) {
		snprintf(a, sizeof(a), "%zu.N", 2000 + i);
		put(f, "new", a, a, -1);
	}
	/* Broken deliveries: pairs of files with the same unique part. */
	for (i = 0; i < 8; i++) {
		snprintf(a, sizeof(a), "%zu.D:2,", 3000 + i);
		snprintf(b, sizeof(b), "first%zu", i);
		put(f, "cur", a, b, -1);
		snprintf(a, sizeof(a), "%zu.D:2,T", 3000 + i);
		snprintf(b, sizeof(b), "second%zu", i);
		put(f, "cur", a, b, -1);
	}
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 37);

	mv(f, "new/1000.M", "cur/1000.M:2,S");
	expect_content(md, 0, "hello\n");
	mv(f, "cur/1000.M:2,S", "cur/1000.M:2,RS");
	expect_content(md, 0, "hello\n");
	expect_content(md, 0, "hello\n");

	/* Many moved at once (one pass of cur/ finds them all). */
	for (i = 0; i < 20; i++) {
		snprintf(a, sizeof(a), "new/%zu.N", 2000 + i);
		snprintf(b, sizeof(b), "cur/%zu.N:2,S", 2000 + i);
		mv(f, a, b);
	}
	for (i = 0; i < 20; i++) {
		snprintf(a, sizeof(a), "%zu.N", 2000 + i);
		expect_content(md, 1 + i, a);
	}

	/*
	 * Duplicated unique part: a renamed copy finds its own file, never
	 * its sibling's, and a pass for another message moves neither.
	 */
	assert_string_equal(maildrop_uidl(md, 21), "3000.D");
	assert_string_equal(maildrop_uidl(md, 22), "3000.D-2");
	for (i = 0; i < 8; i++) {
		snprintf(a, sizeof(a), "cur/%zu.D:2,T", 3000 + i);
		snprintf(b, sizeof(b), "cur/%zu.D:2,ST", 3000 + i);
		mv(f, a, b);
	}
	mv(f, "cur/1000.M:2,RS", "cur/1000.M:2,FRS");
	expect_content(md, 0, "hello\n");
	for (i = 0; i < 8; i++) {
		snprintf(a, sizeof(a), "first%zu", i);
		expect_content(md, 21 + 2 * i, a);
		snprintf(a, sizeof(a), "second%zu", i);
		expect_content(md, 22 + 2 * i, a);
		snprintf(a, sizeof(a), "first%zu", i);
		expect_content(md, 21 + 2 * i, a);
	}

	/* Removed: gone. */
	rm(f, "cur/1000.M:2,FRS");
	assert_int_equal(msg_open_found(md, 0, &r), STORE_GONE);
	assert_null(r);
	assert_int_equal(msg_open_found(md, 0, &r), STORE_GONE);
	assert_int_equal(ops->msg_open(md, 37, &r), STORE_GONE);
	assert_int_equal(ops->msg_locate(md, 37), STORE_GONE);
	/* The others are unaffected. */
	expect_content(md, 1, "2000.N");
	ops->close(md);
}

/*
 * A pass over cur/ is skipped while cur/ is unchanged; a change after the
 * pass (even with an old mtime before it) is still seen.
 */
static void
test_moved_old_cur(void **state)
{
	struct fixture		*f = *state;
	struct maildrop		*md;
	struct store_reader	*r;
	struct timespec		 old[2] = { { 946684800, 0 }, { 946684800, 0 } };
	char			 p[PATH_MAX];
	uint8_t			 del[3] = { 1, 1, 1 };
	size_t			 failed = 9;

	mkdirs(f);
	put(f, "new", "1.a", "a\n", -1);
	put(f, "new", "2.b", "b\n", -1);
	put(f, "cur", "3.c:2,", "c\n", -1);
	md = open_ok(f->md);
	snprintf(p, sizeof(p), "%s/cur", f->md);

	rm(f, "new/1.a");
	assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
	assert_int_equal(msg_open_found(md, 0, &r), STORE_GONE);
	assert_int_equal(msg_open_found(md, 0, &r), STORE_GONE);	/* skipped */

	mv(f, "new/2.b", "cur/2.b:2,S");
	expect_content(md, 1, "b\n");
	assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
	assert_int_equal(msg_open_found(md, 0, &r), STORE_GONE);
	mv(f, "cur/3.c:2,", "cur/3.c:2,T");
	expect_content(md, 2, "c\n");
	mv(f, "cur/2.b:2,S", "cur/2.b:2,ST");
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	assert_int_equal(failed, 0);
	assert_false(exists(f, "cur", "2.b:2,ST"));
	assert_false(exists(f, "cur", "3.c:2,T"));
}

/* RFC 1939 section 6: UPDATE removes exactly the marked messages. */
static void
test_commit(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	uint8_t		 del[6] = { 0, 1, 0, 1, 1, 0 };
	size_t		 failed = 99;

	mkdirs(f);
	put(f, "new", "1.a", "a\n", -1);
	put(f, "cur", "2.b:2,S", "b\n", -1);
	put(f, "new", "3.c", "c\n", -1);
	put(f, "cur", "4.d:2,", "d\n", -1);
	put(f, "new", "5.e", "e\n", -1);
	put(f, "cur", "6.f", "f\n", -1);
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 6);
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	assert_int_equal(failed, 0);
	assert_true(exists(f, "new", "1.a"));
	assert_false(exists(f, "cur", "2.b:2,S"));
	assert_true(exists(f, "new", "3.c"));
	assert_false(exists(f, "cur", "4.d:2,"));
	assert_false(exists(f, "new", "5.e"));
	assert_true(exists(f, "cur", "6.f"));

	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 3);
	assert_string_equal(maildrop_uidl(md, 0), "1.a");
	assert_string_equal(maildrop_uidl(md, 1), "3.c");
	assert_string_equal(maildrop_uidl(md, 2), "6.f");
	ops->close(md);		/* removes nothing */
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 3);
	ops->close(md);
}

/* Marked files that someone else removed or moved meanwhile. */
static void
test_commit_raced(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	uint8_t		 del[5] = { 1, 1, 1, 0, 1 };
	size_t		 failed = 99;

	mkdirs(f);
	put(f, "new", "1.gone", "a\n", -1);
	put(f, "new", "2.moved", "b\n", -1);
	put(f, "cur", "3.flagged:2,", "c\n", -1);
	put(f, "new", "4.keep", "d\n", -1);
	put(f, "cur", "5.gone:2,S", "e\n", -1);
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 5);
	rm(f, "new/1.gone");
	mv(f, "new/2.moved", "cur/2.moved:2,S");
	mv(f, "cur/3.flagged:2,", "cur/3.flagged:2,RS");
	rm(f, "cur/5.gone:2,S");
	put(f, "new", "6.later", "f\n", -1);	/* delivered meanwhile */
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	assert_int_equal(failed, 0);
	assert_false(exists(f, "cur", "2.moved:2,S"));
	assert_false(exists(f, "cur", "3.flagged:2,RS"));
	assert_true(exists(f, "new", "4.keep"));
	assert_true(exists(f, "new", "6.later"));

	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 2);
	ops->close(md);
}

/*
 * A removal that fails is counted and reported. A non-empty directory
 * where the file was makes unlink() fail even for root (EISDIR).
 */
static void
test_commit_failure(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	uint8_t		 del[2] = { 1, 1 };
	size_t		 failed = 0;
	char		 p[PATH_MAX];

	mkdirs(f);
	put(f, "new", "1.a", "a\n", -1);
	put(f, "cur", "2.b:2,S", "b\n", -1);
	md = open_ok(f->md);
	snprintf(p, sizeof(p), "%s/new/1.a", f->md);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0700), 0);
	put(f, "new/1.a", "keep", "k\n", -1);
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	assert_int_equal(failed, 1);
	assert_true(exists(f, "new/1.a", "keep"));
	assert_false(exists(f, "cur", "2.b:2,S"));
}

/* A bigger maildrop scans quickly and keeps its order. */
static void
test_many(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 name[64];
	size_t		 i, n = 3000;	/* several getdents64() buffers */

	mkdirs(f);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%zu.M%zu.host,S=2,W=%zu%s",
		    1600000000 + (i * 7919) % n, i, i, i % 2 ? ":2,S" : "");
		put(f, i % 2 ? "cur" : "new", name, "x\n", -1);
	}
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), n);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%zu.", 1600000000 + i);
		assert_memory_equal(maildrop_uidl(md, i), name, strlen(name));
	}
	check_uidls_valid(md);
	ops->close(md);
}

/* Descriptors open in this process. */
/*
 * Entries of /proc/self/fd (relative counts only: "." and the walk's own
 * descriptor are among them); only those open on path, unless NULL.
 */
static int
count_fds_on(const char *path)
{
	char		 link[PATH_MAX], got[PATH_MAX];
	struct dirent	*de;
	DIR		*d = opendir("/proc/self/fd");
	ssize_t		 len;
	int		 n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (path != NULL) {
			snprintf(link, sizeof(link), "/proc/self/fd/%s",
			    de->d_name);
			if ((len = readlink(link, got, sizeof(got) - 1)) <= 0)
				continue;
			got[len] = '\0';
			if (strcmp(got, path) != 0)
				continue;
		}
		n++;
	}
	closedir(d);
	return n;
}

static int
count_fds(void)
{
	return count_fds_on(NULL);
}

/*
 * The directory descriptor cache: the scan hands new/ and cur/ over
 * (only a directory with mail, only into a free slot), RETR reuses them,
 * or evicts one unused for a second, or opens by the whole path when all
 * are in use. More maildrops than slots, each with mail in new/ and
 * cur/, read within the second: the cache never holds more than
 * STORE_CACHED_FDS, every message reads right through, and closing gives
 * every descriptor back. An empty maildrop keeps none.
 */
static void
test_dirfd_cache(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*mds[STORE_CACHED_FDS + 8];
	char		 want[64];
	size_t		 n = sizeof(mds) / sizeof(mds[0]), i, k;
	int		 base;

	base = count_fds();
	for (i = 0; i < n; i++) {
		snprintf(f->md, sizeof(f->md), "%s/m%zu", f->tmp, i);
		mkdirs(f);
		snprintf(want, sizeof(want), "new %zu\n", i);
		put(f, "new", "1600000000.M1.host,S=7", want, -1);
		snprintf(want, sizeof(want), "cur %zu\n", i);
		put(f, "cur", "1600000001.M1.host,S=7:2,S", want, -1);
		mds[i] = open_ok(f->md);
		assert_true(count_fds() <= base + STORE_CACHED_FDS);
	}
	/* Twice round, in two orders: hits, misses and evictions. */
	for (k = 0; k < 2 * n; k++) {
		i = k < n ? k : (k * 7) % n;
		snprintf(want, sizeof(want), "new %zu\n", i);
		expect_content(mds[i], 0, want);
		snprintf(want, sizeof(want), "cur %zu\n", i);
		expect_content(mds[i], 1, want);
		assert_true(count_fds() <= base + STORE_CACHED_FDS);
	}
	for (i = 0; i < n; i++)
		ops->close(mds[i]);
	assert_int_equal(count_fds(), base);

	snprintf(f->md, sizeof(f->md), "%s/empty", f->tmp);
	mkdirs(f);
	mds[0] = open_ok(f->md);
	assert_int_equal(count_fds(), base);
	ops->close(mds[0]);
}

/* Is <tmp>/<name>/cur among this process's open descriptors? */
static bool
cur_open(const struct fixture *f, const char *name)
{
	char	 want[PATH_MAX];

	snprintf(want, sizeof(want), "%s/%s/cur", f->tmp, name);
	return count_fds_on(want) > 0;
}

/*
 * The cache's eviction rule: with every slot used within the last
 * second, a RETR of another maildrop opens its message by the whole path
 * and evicts nothing; once the slots are a second old, the least
 * recently used one goes (not one just used).
 */
static void
test_dirfd_cold(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*mds[STORE_CACHED_FDS + 1];
	char		 name[32], want[64];
	size_t		 n = STORE_CACHED_FDS + 1, i;
	uint64_t	 t0;
	struct timespec	 ts, nap = { 0, 20 * 1000 * 1000 };

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "m%zu", i);
		snprintf(f->md, sizeof(f->md), "%s/%s", f->tmp, name);
		mkdirs(f);
		snprintf(want, sizeof(want), "cur %zu\n", i);
		put(f, "cur", "1600000001.M1.host,S=7:2,S", want, -1);
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	for (i = 0; i < n; i++) {	/* the scans fill the free slots */
		snprintf(f->md, sizeof(f->md), "%s/m%zu", f->tmp, i);
		mds[i] = open_ok(f->md);
	}
	assert_true(cur_open(f, "m0"));
	assert_false(cur_open(f, "m32"));	/* no slot was free */
	expect_content(mds[n - 1], 0, "cur 32\n");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000 <
	    t0 + 800 * 1000) {		/* else this machine stalled: no proof */
		assert_false(cur_open(f, "m32"));
		assert_true(cur_open(f, "m1"));
	}
	/* A second on, m0 used again, then m32: m1 goes, m0 stays. */
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec /
		    1000 > t0 + 1200 * 1000)
			break;
		nanosleep(&nap, NULL);
	}
	expect_content(mds[0], 0, "cur 0\n");
	expect_content(mds[n - 1], 0, "cur 32\n");
	assert_true(cur_open(f, "m32"));
	assert_true(cur_open(f, "m0"));
	assert_false(cur_open(f, "m1"));
	for (i = 0; i < n; i++)
		ops->close(mds[i]);
	assert_false(cur_open(f, "m0"));
}

static int
unlink_in(const struct fixture *f, const char *sub, const char *name)
{
	char	 p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s/%s", f->md, sub, name);
	return unlink(p);
}

/* The whole text of <Maildir>/<name>, NUL-terminated, in buf. */
static void
slurp_root(const struct fixture *f, const char *name, char *buf, size_t len)
{
	char	 p[PATH_MAX];
	ssize_t	 n;
	int	 fd;

	snprintf(p, sizeof(p), "%s/%s", f->md, name);
	fd = open(p, O_RDONLY);
	assert_true(fd != -1);
	n = read(fd, buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static uint64_t
size_of(const struct fixture *f, size_t i)
{
	struct maildrop	*md = open_ok(f->md);
	uint64_t	 size = maildrop_size(md, i);

	ops->close(md);
	return size;
}

/* stat() of the size cache file. */
static int
stat_root(const struct fixture *f, struct stat *st)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", f->md, MAILDIR_SIZECACHE_FILE);
	return stat(p, st);
}

/*
 * Two files with one unique part (new/X and cur/X:2,S) have a size each:
 * the cache, keyed by the unique part, must not give both one of them,
 * at the first login or any later one; and it is not rewritten for them.
 */
static void
test_size_cache_shared_name(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct stat	 st, st2;
	char		 text[256];
	uint64_t	 a, b;
	int		 login;

	mkdirs(f);
	put(f, "new", "1.a", "short\n", -1);			/* 7 */
	/* 31 octets, wire size 32 */
	put(f, "cur", "1.a:2,S", "a line of thirty-one octets...\n", -1);
	put(f, "cur", "2.b:2,S", "two\n", -1);			/* 5 */
	for (login = 0; login < 3; login++) {
		md = open_ok(f->md);
		assert_int_equal(maildrop_count(md), 3);
		a = maildrop_size(md, 0);
		b = maildrop_size(md, 1);
		assert_true((a == 7 && b == 32) || (a == 32 && b == 7));
		assert_int_equal(maildrop_size(md, 2), 5);
		ops->close(md);
		slurp_root(f, MAILDIR_SIZECACHE_FILE, text, sizeof(text));
		assert_string_equal(text, "evpop3d-sizes 1\n2.b 5\nend 1\n");
		if (login == 1)
			assert_int_equal(stat_root(f, &st), 0);
		if (login == 2) {	/* nothing new: not written again */
			assert_int_equal(stat_root(f, &st2), 0);
			assert_int_equal(st2.st_ino, st.st_ino);
		}
	}
}

/* Sizes without ,W= are computed once, then come from evpop3d-sizes. */
static void
test_size_cache(void **state)
{
	struct fixture	*f = *state;
	static const char *const garbage[] = {
		"",				/* empty */
		"evpop3d-sizes 1\n1.a 7\n",	/* no end line */
		"evpop3d-sizes 1\n1.a 7\nend 2\n",	/* wrong count */
		"evpop3d-sizes 2\n1.a 7\nend 1\n",	/* other version */
		"evpop3d-sizes 1\n1.a x\nend 1\n",	/* bad size */
		"evpop3d-sizes 1\n1.a 7\nend 1\ntrailing",
	};
	char		 text[1024];
	size_t		 i;

	/* Every size in the names: no cache file. */
	mkdirs(f);
	put(f, "new", "3.c,W=99", "x\n", -1);		/* W= wins: 99 */
	assert_int_equal(size_of(f, 0), 99);
	assert_false(exists(f, ".", MAILDIR_SIZECACHE_FILE));

	put(f, "cur", "1.a:2,S", "one\n", -1);		/* wire size 5 */
	put(f, "cur", "2.b:2,S", "two\nlines\n", -1);	/* 12 */

	assert_int_equal(size_of(f, 0), 5);
	slurp_root(f, MAILDIR_SIZECACHE_FILE, text, sizeof(text));
	assert_string_equal(text, "evpop3d-sizes 1\n1.a 5\n2.b 12\nend 2\n");

	/* Used: a changed file (never done in a real Maildir) keeps its size. */
	put(f, "cur", "1.a:2,S", "changed content\n", -1);
	assert_int_equal(size_of(f, 0), 5);

	/* Anything unusable is ignored whole and written again. */
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		put(f, ".", MAILDIR_SIZECACHE_FILE, garbage[i], -1);
		assert_int_equal(size_of(f, 0), 17);
		slurp_root(f, MAILDIR_SIZECACHE_FILE, text, sizeof(text));
		assert_string_equal(text,
		    "evpop3d-sizes 1\n1.a 17\n2.b 12\nend 2\n");
		put(f, "cur", "1.a:2,S", "changed content\n", -1);
	}

	/* A cache of no entries is a good one. */
	put(f, ".", MAILDIR_SIZECACHE_FILE, "evpop3d-sizes 1\nend 0\n", -1);
	assert_int_equal(size_of(f, 0), 17);

	/* Never trusted over the listing: gone messages leave it. */
	assert_int_equal(unlink_in(f, "cur", "2.b:2,S"), 0);
	put(f, "cur", "4.d", "four\n", -1);
	{
		struct maildrop	*md = open_ok(f->md);

		assert_int_equal(maildrop_count(md), 3);
		ops->close(md);
	}
	slurp_root(f, MAILDIR_SIZECACHE_FILE, text, sizeof(text));
	assert_string_equal(text, "evpop3d-sizes 1\n1.a 17\n4.d 6\nend 2\n");
}

static void
test_expand_location(void **state)
{
	char	 out[64], small[8];

	(void)state;
	assert_int_equal(store_expand_location("/var/mail/%d/%n/Maildir",
	    "bob@example.org", "/home/bob", out, sizeof(out)), 0);
	assert_string_equal(out, "/var/mail/example.org/bob/Maildir");
	assert_int_equal(store_expand_location("%h/Maildir", "bob", "/home/bob",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "/home/bob/Maildir");
	assert_int_equal(store_expand_location("/m/%u/%%x%%", "bob@ex.org",
	    NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "/m/bob@ex.org/%x%");
	assert_int_equal(store_expand_location("/m/%n", "bob", "", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "/m/bob");
	assert_int_equal(store_expand_location("plain", "bob", "", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "plain");

	/* %d without a domain, %h without a home. */
	assert_int_equal(store_expand_location("/m/%d/%n", "bob", "/h", out,
	    sizeof(out)), -1);
	assert_int_equal(store_expand_location("%h/Maildir", "bob", "", out,
	    sizeof(out)), -1);
	assert_int_equal(store_expand_location("%h/Maildir", "bob", NULL, out,
	    sizeof(out)), -1);
	/* Unknown escapes, a trailing '%'. */
	assert_int_equal(store_expand_location("/m/%x", "bob", "/h", out,
	    sizeof(out)), -1);
	assert_int_equal(store_expand_location("/m/%", "bob", "/h", out,
	    sizeof(out)), -1);
	assert_int_equal(store_expand_location("/m/%U", "bob", "/h", out,
	    sizeof(out)), -1);
	/* Overflow, by a literal or by an escape; exact fit works. */
	assert_int_equal(store_expand_location("/123456", "bob", "/h", small,
	    sizeof(small)), 0);
	assert_string_equal(small, "/123456");
	assert_int_equal(store_expand_location("/1234567", "bob", "/h", small,
	    sizeof(small)), -1);
	assert_int_equal(store_expand_location("/m/%u", "bobby", "/h", small,
	    sizeof(small)), -1);
	assert_int_equal(store_expand_location("/m/%%%u", "bob", "/h", small,
	    sizeof(small)), 0);
	assert_string_equal(small, "/m/%bob");
	assert_int_equal(store_expand_location("%h", "b", "/home/b", small,
	    sizeof(small)), 0);
	assert_string_equal(small, "/home/b");
	assert_int_equal(store_expand_location("%h", "b", "/home/bo", small,
	    sizeof(small)), -1);
	assert_int_equal(store_expand_location("x", "b", "/h", small, 0), -1);
}

static void
test_err_code(void **state)
{
	(void)state;
	assert_string_equal(store_err_code(STORE_OK), "");
	assert_string_equal(store_err_code(STORE_TEMP), "[SYS/TEMP]");
	assert_string_equal(store_err_code(STORE_PERM), "[SYS/PERM]");
	assert_string_equal(store_err_code(STORE_INUSE), "[IN-USE]");
	assert_string_equal(store_err_code(STORE_GONE), "");
	assert_ptr_equal(store_driver("maildir"), &store_maildir_ops);
	assert_string_equal(store_driver("maildir")->name, "maildir");
	assert_null(store_driver("mdbox"));
	assert_null(store_driver(""));
	assert_null(store_driver(NULL));
}

/*
 * msg_open() never scans a directory (it runs on the event loop): a
 * message that is not where the scan saw it is STORE_AGAIN until
 * msg_locate() has followed it.
 */
static void
test_msg_again(void **state)
{
	struct fixture		*f = *state;
	struct maildrop		*md;
	struct store_reader	*r = (struct store_reader *)1;

	mkdirs(f);
	put(f, "new", "1.a", "a\n", -1);
	put(f, "new", "2.b", "b\n", -1);
	put(f, "cur", "3.c:2,", "c\n", -1);
	md = open_ok(f->md);

	/* Where the scan saw it: opened at once. */
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_OK);
	assert_non_null(r);
	ops->msg_close(r);

	/* Moved: STORE_AGAIN, and again, until looked up. */
	mv(f, "new/1.a", "cur/1.a:2,S");
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_AGAIN);
	assert_null(r);
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_AGAIN);
	assert_int_equal(ops->msg_locate(md, 0), STORE_OK);
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_OK);
	ops->msg_close(r);
	expect_content(md, 0, "a\n");

	/* Renamed twice before the lookup: its last name counts. */
	mv(f, "cur/1.a:2,S", "cur/1.a:2,RS");
	mv(f, "cur/1.a:2,RS", "cur/1.a:2,FRS");
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_AGAIN);
	assert_int_equal(ops->msg_locate(md, 0), STORE_OK);
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_OK);
	ops->msg_close(r);

	/* Moved and moved back before the lookup: found where it was. */
	mv(f, "new/2.b", "cur/2.b:2,S");
	assert_int_equal(ops->msg_open(md, 1, &r), STORE_AGAIN);
	mv(f, "cur/2.b:2,S", "new/2.b");
	assert_int_equal(ops->msg_locate(md, 1), STORE_OK);
	assert_int_equal(ops->msg_open(md, 1, &r), STORE_OK);
	ops->msg_close(r);
	expect_content(md, 1, "b\n");

	/* Removed: the lookup says so; the others stay readable. */
	rm(f, "cur/3.c:2,");
	assert_int_equal(ops->msg_open(md, 2, &r), STORE_AGAIN);
	assert_int_equal(ops->msg_locate(md, 2), STORE_GONE);
	assert_int_equal(ops->msg_open(md, 2, &r), STORE_AGAIN);
	assert_null(r);
	expect_content(md, 0, "a\n");
	assert_int_equal(ops->msg_open(md, 3, &r), STORE_GONE);
	assert_int_equal(ops->msg_locate(md, 3), STORE_GONE);
	ops->close(md);
}

/* total(): the sum of the wire sizes, worked out by open(). */
static void
test_total(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	uint64_t	 sum = 0;
	size_t		 i;

	assert_non_null(ops->total);
	mkdirs(f);
	md = open_ok(f->md);
	assert_int_equal(ops->total(md), 0);
	ops->close(md);

	put(f, "new", "1.a", "a\nb\n", -1);		/* 6 */
	put(f, "cur", "2.b,W=1000:2,S", "x\n", -1);	/* 1000, from W= */
	put(f, "cur", "3.c:2,", "c\r\n", -1);		/* 3 */
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 3);
	for (i = 0; i < maildrop_count(md); i++)
		sum += maildrop_size(md, i);
	assert_int_equal(sum, 1009);
	assert_int_equal(ops->total(md), sum);
	ops->close(md);
}

/*
 * open() creates a Maildir that is missing, and nothing else: a lock or
 * scan failure of another kind is reported as it is and creates nothing.
 */
static void
test_open_no_create(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md = (struct maildrop *)1;
	char		 p[PATH_MAX], err[256] = "";
	enum store_err	 rv;

	/* The lock file cannot be opened: a directory in its place. */
	assert_int_equal(mkdir(f->md, 0700), 0);
	snprintf(p, sizeof(p), "%s/%s", f->md, STORE_MAILDIR_LOCKFILE);
	assert_int_equal(mkdir(p, 0700), 0);
	rv = md_open_at(f->md, &md, err, sizeof(err));
	assert_true(rv == STORE_TEMP || rv == STORE_PERM);
	assert_null(md);
	assert_true(strlen(err) > 0);
	assert_false(exists(f, "cur", "."));
	assert_false(exists(f, "new", "."));
	assert_false(exists(f, "tmp", "."));
	assert_int_equal(rmdir(p), 0);

	/* new/ is a file: the scan fails, tmp/ is not made. */
	snprintf(p, sizeof(p), "%s/cur", f->md);
	assert_int_equal(mkdir(p, 0700), 0);
	put(f, ".", "new", "not a directory\n", -1);
	rv = md_open_at(f->md, &md, err, sizeof(err));
	assert_true(rv == STORE_TEMP || rv == STORE_PERM);
	assert_null(md);
	assert_false(exists(f, "tmp", "."));

	/* The failed open left no lock behind. */
	rm(f, "new");
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 0);
	assert_true(exists(f, "tmp", "."));		/* missing: created */
	ops->close(md);
}

/*
 * dovecot-uidlist and uidl_format (issue 4, "Migration without
 * re-downloads").
 */

/* open() with a uidl_format. */
static struct maildrop *
open_fmt(const char *path, const char *fmt)
{
	struct store_params	 p = { .path = path, .uidl_format = fmt };
	struct maildrop		*md = NULL;
	char			 err[256];
	enum store_err		 rv;

	if ((rv = ops->open(&p, &md, err, sizeof(err))) != STORE_OK)
		fail_msg("open %s with %s: %d %s", path, fmt, rv, err);
	return md;
}

/* Message i has this id and content. */
static void
expect_msg(struct maildrop *md, size_t i, const char *uidl, const char *body)
{
	if (strcmp(maildrop_uidl(md, i), uidl) != 0)
		fail_msg("message %zu: uidl %s, want %s", i + 1,
		    maildrop_uidl(md, i), uidl);
	expect_content(md, i, body);
}

/* A Maildir Dovecot has listed, with some mail delivered since. */
static void
dovecot_maildir(const struct fixture *f)
{
	mkdirs(f);
	put(f, "new", "1000.a.host", "a\n", -1);	/* uid 5 */
	put(f, "cur", "1001.b.host:2,S", "b\n", -1);	/* uid 3, P */
	put(f, "cur", "1002.c.host:2,", "c\n", -1);	/* uid 4, P empty */
	put(f, "new", "1003.d.host", "d\n", -1);	/* not listed */
	put(f, "new", "1004.e.host", "e\n", -1);	/* uid 9, P too long */
	put(f, "new", "1005.f.host", "f\n", -1);	/* uid 10, P 8-bit */
	put(f, ".", "dovecot-uidlist",
	    "3 V100 N11 G0123456789abcdef0123456789abcdef\n"
	    "3 W2 Psaved-b :1001.b.host:2,S\n"
	    "4 P :1002.c.host\n"
	    "5 :1000.a.host\n"
	    "6 :999.gone.host\n"
	    "9 P0123456789012345678901234567890123456789012345678901234567890"
	    "1234567890 :1004.e.host\n"
	    "10 Pcaf\xc3\xa9 :1005.f.host\n", -1);
}

/*
 * Forget the migration cutoff, as if evpop3d had never served the Maildir
 * (the next login with mail decides again).
 */
static void
unfreeze(const struct fixture *f)
{
	char	 p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", f->md, MAILDIR_UIDLIST_CUTOFF_FILE);
	if (unlink(p) == -1)
		assert_int_equal(errno, ENOENT);
}

/* The cutoff file says "V.. U.." (NULL: there is none). */
static void
expect_cutoff(const struct fixture *f, const char *want)
{
	char	 text[128], line[128];

	if (want == NULL) {
		assert_false(exists(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE));
		return;
	}
	slurp_root(f, MAILDIR_UIDLIST_CUTOFF_FILE, text, sizeof(text));
	snprintf(line, sizeof(line), "evpop3d-uidl-cutoff 1 %s\n", want);
	assert_string_equal(text, line);
}

/*
 * Default format with a dovecot-uidlist: P fields, else Dovecot's
 * "%08Xu%08Xv" (lower-case hex, as Dovecot prints it); unlisted mail
 * keeps its name; Dovecot's order.
 */
static void
test_uidlist_ids(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 before[1024], after[1024];
	int		 round;

	dovecot_maildir(f);
	slurp_root(f, "dovecot-uidlist", before, sizeof(before));
	for (round = 0; round < 3; round++) {
		md = open_ok(f->md);
		assert_int_equal(maildrop_count(md), 6);
		expect_msg(md, 0, "saved-b", "b\n");
		expect_msg(md, 1, "1002.c.host", "c\n");
		expect_msg(md, 2, "0000000500000064", "a\n");
		expect_msg(md, 3, "0000000900000064", "e\n");
		expect_msg(md, 4, "0000000a00000064", "f\n");
		expect_msg(md, 5, "1003.d.host", "d\n");
		assert_int_equal(maildrop_size(md, 2), 3);
		check_uidls_valid(md);
		ops->close(md);
		/* The same after a move to cur/ and a flag change. */
		if (round == 0)
			mv(f, "new/1000.a.host", "cur/1000.a.host:2,S");
		if (round == 1)
			mv(f, "cur/1001.b.host:2,S", "cur/1001.b.host:2,RS");
	}
	/* Read, never written. */
	slurp_root(f, "dovecot-uidlist", after, sizeof(after));
	assert_string_equal(before, after);
	assert_false(exists(f, ".", "dovecot-uidlist.lock"));
}

/* Dovecot's POP3 order: O fields first, then UIDs, then unlisted mail. */
static void
test_uidlist_order(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	uint8_t		 del[5] = { 0, 1, 0, 0, 0 };
	size_t		 failed;

	mkdirs(f);
	put(f, "new", "1.a", "a\n", -1);
	put(f, "new", "2.b", "b\n", -1);
	put(f, "new", "3.c", "c\n", -1);
	put(f, "new", "4.d", "d\n", -1);
	put(f, "new", "5.e", "e\n", -1);
	put(f, ".", "dovecot-uidlist", "3 V1 N9\n"
	    "1 O2 :2.b\n2 :1.a\n3 O1 :4.d\n4 :3.c\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "0000000300000001", "d\n");
	expect_msg(md, 1, "0000000100000001", "b\n");
	expect_msg(md, 2, "0000000200000001", "a\n");
	expect_msg(md, 3, "0000000400000001", "c\n");
	expect_msg(md, 4, "5.e", "e\n");
	/* Deleting by that numbering deletes the right file. */
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	assert_true(exists(f, "new", "1.a"));
	assert_false(exists(f, "new", "2.b"));
}

/* A damaged or unusable dovecot-uidlist: the ids of a Maildir without. */
static void
test_uidlist_corrupt(void **state)
{
	static const char *const bad[] = {
		"3 V100 N11\n5 :1000.a.host\n4 :1001.b.host\n",	/* order */
		"3 V0 N11\n5 :1000.a.host\n",
		"2 100 11\n5 0 1000.a.host\n",
		"3 V100 N11\n5 :cur/1000.a.host\n",
		"\x7f" "ELF\x02\x01\x01garbage\n\n",
	};
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 want[6][32];
	size_t		 i, j;

	dovecot_maildir(f);
	rm(f, "dovecot-uidlist");
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 6);
	for (j = 0; j < 6; j++)
		snprintf(want[j], sizeof(want[j]), "%s", maildrop_uidl(md, j));
	assert_string_equal(want[0], "1000.a.host");
	ops->close(md);
	expect_cutoff(f, "V0 U0");
	/* Each at a first login: the names, from then on (U0). */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unfreeze(f);
		put(f, ".", "dovecot-uidlist", bad[i], -1);
		md = open_ok(f->md);
		for (j = 0; j < 6; j++)
			assert_string_equal(maildrop_uidl(md, j), want[j]);
		ops->close(md);
		expect_cutoff(f, "V0 U0");
	}
}

/* The MD5 of s, in hex. */
static void
md5hex_n(const char *s, size_t len, char out[33])
{
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n, i;

	assert_int_equal(EVP_Digest(s, len, d, &n, EVP_md5(), NULL), 1);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* [pop3] uidl_format: %f %u %v %m, literals, and missing values. */
static void
test_uidl_format(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 hex[33], *big;

	dovecot_maildir(f);
	md = open_fmt(f->md, "%f");
	expect_msg(md, 0, "saved-b", "b\n");	/* a P field wins (Dovecot) */
	expect_msg(md, 1, "1002.c.host", "c\n");
	expect_msg(md, 2, "1000.a.host", "a\n");
	expect_msg(md, 5, "1003.d.host", "d\n");
	ops->close(md);

	/* Courier >= 4 style; unlisted mail lacks %u: its default id. */
	md = open_fmt(f->md, "UID%u-%v");
	expect_msg(md, 0, "saved-b", "b\n");
	expect_msg(md, 1, "1002.c.host", "c\n");	/* empty P: the name */
	expect_msg(md, 2, "UID5-100", "a\n");
	expect_msg(md, 4, "UID10-100", "f\n");
	expect_msg(md, 5, "1003.d.host", "d\n");
	ops->close(md);

	/* Dovecot's default spelled out: lower-case hex, as it prints. */
	md = open_fmt(f->md, "%08Xu%08Xv");
	expect_msg(md, 0, "saved-b", "b\n");
	expect_msg(md, 2, "0000000500000064", "a\n");
	expect_msg(md, 4, "0000000a00000064", "f\n");
	ops->close(md);
	md = open_fmt(f->md, "P%%%05u.%03v");
	expect_msg(md, 2, "P%00005.100", "a\n");
	ops->close(md);
	/* Longer than 70: the default id. */
	md = open_fmt(f->md, "%f%f%f%f%f%f%f");
	expect_msg(md, 0, "saved-b", "b\n");
	expect_msg(md, 2, "0000000500000064", "a\n");
	ops->close(md);

	/* %m: the header as stored, up to the first empty line. */
	rm(f, "dovecot-uidlist");
	unfreeze(f);
	put(f, "new", "2000.lf", "Subject: a\nFrom: b\n\nbody\n\nmore\n", -1);
	put(f, "new", "2001.crlf", "Subject: a\r\nX: y\r\n\r\nbody\r\n", -1);
	put(f, "new", "2002.nobody", "Subject: only\n", -1);
	put(f, "new", "2003.split", "S: x\n\r", -1);	/* CR, no LF */
	big = malloc(3 * 1024 * 1024);
	assert_non_null(big);
	memset(big, 'h', 3 * 1024 * 1024);
	big[3 * 1024 * 1024 - 1] = '\0';
	put(f, "new", "2004.huge", big, -1);		/* first 1 MiB */
	md = open_fmt(f->md, "%m");
	assert_int_equal(maildrop_count(md), 11);
	md5hex_n("Subject: a\nFrom: b\n", 19, hex);
	expect_msg(md, 6, hex, "Subject: a\nFrom: b\n\nbody\n\nmore\n");
	md5hex_n("Subject: a\r\nX: y\r\n", 18, hex);
	assert_string_equal(maildrop_uidl(md, 7), hex);
	md5hex_n("Subject: only\n", 14, hex);
	assert_string_equal(maildrop_uidl(md, 8), hex);
	md5hex_n("S: x\n\r", 6, hex);
	assert_string_equal(maildrop_uidl(md, 9), hex);
	md5hex_n(big, 1024 * 1024, hex);
	assert_string_equal(maildrop_uidl(md, 10), hex);
	/* "a\n" ... "f\n" have distinct headers too. */
	md5hex_n("a\n", 2, hex);
	assert_string_equal(maildrop_uidl(md, 0), hex);
	check_uidls_valid(md);
	ops->close(md);
	free(big);
}

/* Every id stays unique: a later message falls back, then gets "-N". */
static void
test_uidl_clash(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 hex[33];

	mkdirs(f);
	put(f, "new", "1100.a", "a\n", -1);		/* uid 1 */
	put(f, "new", "1100.d", "d\n", -1);		/* uid 2 */
	put(f, "new", "1100.b", "b\n", -1);		/* uid 3 */
	put(f, "new", "1100.x", "x\n", -1);		/* uid 4 */
	put(f, "new", "1100.y", "y\n", -1);		/* uid 5 */
	put(f, "new", "1100.z", "z\n", -1);		/* not listed */
	put(f, ".", "dovecot-uidlist", "3 V200 N9\n"
	    "1 P00000003000000c8 :1100.a\n"	/* b's default id */
	    "2 P1100.b :1100.d\n"		/* b's name */
	    "3 :1100.b\n"
	    "4 Pdup :1100.x\n"
	    "5 Pdup :1100.y\n"			/* the same P */
	    "6 P1100.z :1100.gone\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "00000003000000c8", "a\n");
	expect_msg(md, 1, "1100.b", "d\n");
	/* Its id and its name are taken: its first one with a suffix. */
	expect_msg(md, 2, "00000003000000c8-2", "b\n");
	expect_msg(md, 3, "dup", "x\n");
	expect_msg(md, 4, "00000005000000c8", "y\n");
	expect_msg(md, 5, "1100.z", "z\n");
	check_uidls_valid(md);
	ops->close(md);

	/* Two messages with one header under %m: the later one's default. */
	rm(f, "dovecot-uidlist");
	unfreeze(f);
	put(f, "new", "1100.y", "x\n", -1);
	md = open_fmt(f->md, "%m");
	md5hex_n("x\n", 2, hex);
	expect_msg(md, 3, hex, "x\n");
	expect_msg(md, 4, "1100.y", "x\n");
	check_uidls_valid(md);
	ops->close(md);

	/*
	 * Two files with one unique part share its record: the second gets
	 * its name; each is followed to its own file when another program
	 * moves one (md_relocate() needs them marked shared).
	 */
	put(f, "new", "1200.dup", "n\n", -1);
	put(f, "cur", "1200.dup:2,S", "c\n", -1);
	put(f, ".", "dovecot-uidlist", "3 V200 N9\n7 :1200.dup\n", -1);
	unfreeze(f);
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 8);
	expect_msg(md, 0, "00000007000000c8", "n\n");
	expect_msg(md, 1, "1200.dup", "c\n");
	mv(f, "new/1200.dup", "cur/1200.dup:2,");
	expect_msg(md, 0, "00000007000000c8", "n\n");
	expect_msg(md, 1, "1200.dup", "c\n");
	check_uidls_valid(md);
	ops->close(md);
}

/*
 * The migration cutoff (evpop3d-uidl-cutoff): the ids of the first login
 * stay, whatever Dovecot lists later.
 */

/* The ids of test_uidlist_ids(), plus g (delivered later), by name. */
static void
expect_frozen(const struct fixture *f, const char *fmt)
{
	struct maildrop	*md = open_fmt(f->md, fmt);

	assert_int_equal(maildrop_count(md), 7);
	expect_msg(md, 0, "saved-b", "b\n");
	expect_msg(md, 1, "1002.c.host", "c\n");
	if (strcmp(fmt, "UID%u-%v") == 0) {
		expect_msg(md, 2, "UID5-100", "a\n");
		expect_msg(md, 3, "UID9-100", "e\n");
		expect_msg(md, 4, "UID10-100", "f\n");
	} else {
		expect_msg(md, 2, "0000000500000064", "a\n");
		expect_msg(md, 3, "0000000900000064", "e\n");
		expect_msg(md, 4, "0000000a00000064", "f\n");
	}
	/* Listed by Dovecot since, above the cutoff: their names. */
	expect_msg(md, 5, "1003.d.host", "d\n");
	expect_msg(md, 6, "1006.g.host", "g\n");
	check_uidls_valid(md);
	ops->close(md);
}

/* The first login writes the cutoff; later records are not used. */
static void
test_cutoff_frozen(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;

	dovecot_maildir(f);
	expect_cutoff(f, NULL);
	md = open_ok(f->md);
	expect_msg(md, 5, "1003.d.host", "d\n");
	ops->close(md);
	expect_cutoff(f, "V100 U10");
	assert_false(exists(f, "tmp", MAILDIR_UIDLIST_CUTOFF_FILE ".0"));

	/*
	 * Dovecot (IMAP on the same Maildir) lists d and a new message, P
	 * fields even, and rewrites the list without the gone one.
	 */
	put(f, "new", "1006.g.host", "g\n", -1);
	put(f, ".", "dovecot-uidlist",
	    "3 V100 N14 G0123456789abcdef0123456789abcdef\n"
	    "3 W2 Psaved-b :1001.b.host:2,S\n"
	    "4 P :1002.c.host\n"
	    "5 :1000.a.host\n"
	    "9 P0123456789012345678901234567890123456789012345678901234567890"
	    "1234567890 :1004.e.host\n"
	    "10 Pcaf\xc3\xa9 :1005.f.host\n"
	    "11 O1 :1003.d.host\n"
	    "13 Pnew-g :1006.g.host\n", -1);
	expect_frozen(f, "");
	expect_frozen(f, "UID%u-%v");
	expect_frozen(f, "%08Xu%08Xv");
	expect_cutoff(f, "V100 U10");

	/* Forgotten: the next login decides again (and d gets its UID). */
	unfreeze(f);
	md = open_ok(f->md);
	expect_msg(md, 0, "0000000b00000064", "d\n");
	expect_msg(md, 6, "new-g", "g\n");
	ops->close(md);
	expect_cutoff(f, "V100 U13");
}

/*
 * The first login with mail decides, whatever it finds: no list, a list
 * that has none of the messages, an empty one.
 */
static void
test_cutoff_first(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;

	/* An empty Maildir decides nothing. */
	mkdirs(f);
	put(f, ".", "dovecot-uidlist", "3 V5 N3\n2 :1.gone\n", -1);
	md = open_ok(f->md);
	assert_int_equal(maildrop_count(md), 0);
	ops->close(md);
	expect_cutoff(f, NULL);

	/* A list of none of the messages: its highest UID all the same. */
	put(f, "new", "10.a", "a\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "10.a", "a\n");
	ops->close(md);
	expect_cutoff(f, "V5 U2");
	put(f, ".", "dovecot-uidlist", "3 V5 N4\n2 :1.gone\n3 :10.a\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "10.a", "a\n");
	ops->close(md);

	/* A list of no records: U0, and no list is read from then on. */
	unfreeze(f);
	put(f, ".", "dovecot-uidlist", "3 V5 N3\n", -1);
	md = open_ok(f->md);
	ops->close(md);
	expect_cutoff(f, "V5 U0");
	put(f, ".", "dovecot-uidlist", "3 V6 N4\n3 P3 :10.a\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "10.a", "a\n");
	ops->close(md);
	rm(f, "dovecot-uidlist");
	md = open_ok(f->md);
	expect_msg(md, 0, "10.a", "a\n");
	ops->close(md);

	/* No list: "V0 U0", the names stay when Dovecot writes one. */
	unfreeze(f);
	md = open_ok(f->md);
	ops->close(md);
	expect_cutoff(f, "V0 U0");
	put(f, ".", "dovecot-uidlist", "3 V5 N4\n3 Pdovecot :10.a\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "10.a", "a\n");
	ops->close(md);
	put(f, ".", "dovecot-uidlist", "garbage", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "10.a", "a\n");
	ops->close(md);

	/* A Maildir's first mail, listed by Dovecot before that login. */
	unfreeze(f);
	rm(f, "new/10.a");
	put(f, ".", "dovecot-uidlist", "3 V5 N4\n3 :10.a\n", -1);
	md = open_ok(f->md);
	ops->close(md);
	expect_cutoff(f, NULL);
	put(f, "new", "10.a", "a\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 0, "0000000300000005", "a\n");
	ops->close(md);
	expect_cutoff(f, "V5 U3");
}

/* open() must fail with STORE_TEMP, err naming what (and not write). */
static void
expect_temp(const struct fixture *f, const char *what)
{
	struct store_params	 p = { .path = f->md, .uidl_format = "" };
	struct maildrop		*md = NULL;
	char			 err[512];
	enum store_err		 rv;

	int			 round;

	/* Twice: the lock went with the first (else STORE_INUSE). */
	for (round = 0; round < 2; round++) {
		rv = ops->open(&p, &md, err, sizeof(err));
		if (rv != STORE_TEMP)
			fail_msg("open: %d (%s), want STORE_TEMP for %s", rv,
			    rv == STORE_OK ? "ok" : err, what);
		assert_null(md);
		if (strstr(err, what) == NULL)
			fail_msg("err \"%s\" does not say \"%s\"", err,
			    what);
	}
}

/*
 * With a cutoff, a list that is gone, unusable up to the cutoff or of
 * another UIDVALIDITY fails the login (clients would download again), as
 * does a damaged cutoff file; past the cutoff, nothing counts.
 */
static void
test_cutoff_temp(void **state)
{
	static const char *const damaged[] = {
		"",
		"evpop3d-uidl-cutoff 1 V100\n",
		"evpop3d-uidl-cutoff 1 V100 U10",
		"evpop3d-uidl-cutoff 1 V100 U010\n",
		"evpop3d-uidl-cutoff 1 V0 U10\n",
		"evpop3d-uidl-cutoff 2 V100 U10\n",
		"\x7f" "ELF\x02\x01\x01",
	};
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 good[1024], *big, p[PATH_MAX], q[PATH_MAX];
	size_t		 i, n;

	dovecot_maildir(f);
	slurp_root(f, "dovecot-uidlist", good, sizeof(good));
	md = open_ok(f->md);
	ops->close(md);
	expect_cutoff(f, "V100 U10");

	/* Gone (a symbolic link counts as gone). */
	rm(f, "dovecot-uidlist");
	expect_temp(f, "dovecot-uidlist: missing, but evpop3d-uidl-cutoff "
	    "(V100 U10) needs it");
	snprintf(p, sizeof(p), "%s/dovecot-uidlist", f->md);
	snprintf(q, sizeof(q), "%s/list", f->md);
	put(f, ".", "list", good, -1);
	assert_int_equal(symlink("list", p), 0);
	expect_temp(f, "dovecot-uidlist: a symbolic link, but");
	rm(f, "dovecot-uidlist");
	rm(f, "list");
	/* Garbled up to the cutoff. */
	put(f, ".", "dovecot-uidlist", "3 V100 N11\n3 :1001.b.host\n"
	    "x :1000.a.host\n", -1);
	expect_temp(f, "dovecot-uidlist: damaged at line 3, but");
	/* A line too long up to the cutoff (Dovecot would take it). */
	big = malloc(8192);
	assert_non_null(big);
	n = (size_t)snprintf(big, 64, "3 V100 N11\n3 P");
	memset(big + n, 'p', 5000);
	n += 5000;
	snprintf(big + n, 64, " :1001.b.host\n5 :1000.a.host\n");
	put(f, ".", "dovecot-uidlist", big, -1);
	expect_temp(f, "dovecot-uidlist: a line longer than 4096 bytes at "
	    "line 2, but");
	/* Another UIDVALIDITY: Dovecot started over. */
	put(f, ".", "dovecot-uidlist", "3 V101 N11\n5 :1000.a.host\n", -1);
	expect_temp(f, "dovecot-uidlist has UIDVALIDITY 101, "
	    "evpop3d-uidl-cutoff says 100");
	expect_cutoff(f, "V100 U10");

	/* Past the cutoff nothing counts: damage, long lines, a torn end. */
	n = strlen(good);
	memcpy(big, good, n);
	n += (size_t)snprintf(big + n, 64, "11 P");
	memset(big + n, 'q', 5000);
	n += 5000;
	n += (size_t)snprintf(big + n, 128, " :1003.d.host\nx\n\n12 :1");
	put(f, ".", "dovecot-uidlist", big, (ssize_t)n);
	md = open_ok(f->md);
	expect_msg(md, 0, "saved-b", "b\n");
	expect_msg(md, 2, "0000000500000064", "a\n");
	expect_msg(md, 5, "1003.d.host", "d\n");
	ops->close(md);

	/* A damaged cutoff file: the login fails, the file stays. */
	put(f, ".", "dovecot-uidlist", good, -1);
	for (i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
		put(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE, damaged[i], -1);
		expect_temp(f, "evpop3d-uidl-cutoff is damaged");
		assert_true(exists(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE));
	}
	/*
	 * Not a regular file of at most 64 octets (read with one read(),
	 * no fstat()): a longer one, a link to a good one, a FIFO (which
	 * must not block the login), a directory.
	 */
	memset(big, ' ', 100);
	memcpy(big, "evpop3d-uidl-cutoff 1 V100 U10\n", 31);
	put(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE, big, 100);
	expect_temp(f, "evpop3d-uidl-cutoff is damaged");
	put(f, ".", "good-cutoff", "evpop3d-uidl-cutoff 1 V100 U10\n", -1);
	snprintf(p, sizeof(p), "%s/%s", f->md, MAILDIR_UIDLIST_CUTOFF_FILE);
	rm(f, MAILDIR_UIDLIST_CUTOFF_FILE);
	assert_int_equal(symlink("good-cutoff", p), 0);
	expect_temp(f, "evpop3d-uidl-cutoff is damaged");
	rm(f, MAILDIR_UIDLIST_CUTOFF_FILE);
	rm(f, "good-cutoff");
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_temp(f, "evpop3d-uidl-cutoff is damaged");
	rm(f, MAILDIR_UIDLIST_CUTOFF_FILE);
	assert_int_equal(mkdir(p, 0700), 0);
	expect_temp(f, "evpop3d-uidl-cutoff is damaged");
	assert_int_equal(rmdir(p), 0);
	/* Repaired, or removed (the next login decides again). */
	put(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE,
	    "evpop3d-uidl-cutoff 1 V100 U10\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 2, "0000000500000064", "a\n");
	ops->close(md);
	put(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE, "garbage\n", -1);
	unfreeze(f);
	md = open_ok(f->md);
	expect_msg(md, 2, "0000000500000064", "a\n");
	ops->close(md);
	expect_cutoff(f, "V100 U10");
	/* "No Dovecot ids": the list does not matter at all. */
	put(f, ".", MAILDIR_UIDLIST_CUTOFF_FILE,
	    "evpop3d-uidl-cutoff 1 V0 U0\n", -1);
	rm(f, "dovecot-uidlist");
	md = open_ok(f->md);
	expect_msg(md, 0, "1000.a.host", "a\n");
	expect_msg(md, 1, "1001.b.host", "b\n");
	ops->close(md);
	free(big);
}

/* The cutoff cannot be written (no tmp/): the login goes on. */
static void
test_cutoff_unwritable(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	char		 p[PATH_MAX];

	dovecot_maildir(f);
	snprintf(p, sizeof(p), "%s/tmp", f->md);
	assert_int_equal(rmdir(p), 0);
	put(f, ".", "tmp", "not a directory\n", -1);
	md = open_ok(f->md);
	expect_msg(md, 2, "0000000500000064", "a\n");
	ops->close(md);
	expect_cutoff(f, NULL);
	rm(f, "tmp");
	assert_int_equal(mkdir(p, 0700), 0);
	md = open_ok(f->md);
	expect_msg(md, 2, "0000000500000064", "a\n");
	ops->close(md);
	expect_cutoff(f, "V100 U10");
}

/*
 * A list with far more records than messages (POP3 users delete what
 * they download; Dovecot, no longer run, never drops their records) is
 * used for the messages it has; one that has more records for them than
 * the bound (one name again and again) is not.
 */
static void
test_cutoff_stale(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	FILE		*fp;
	char		 p[PATH_MAX];
	int		 i;

	mkdirs(f);
	put(f, "new", "1300.a", "a\n", -1);
	put(f, "new", "1300.b", "b\n", -1);
	put(f, "new", "1300.c", "c\n", -1);
	snprintf(p, sizeof(p), "%s/dovecot-uidlist", f->md);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "3 V300 N5000\n");
	for (i = 1; i < 5000; i++)
		fprintf(fp, "%d :%s\n", i, i == 1000 ? "1300.b" : i == 4000 ?
		    "1300.a" : "1200.gone");
	assert_int_equal(fclose(fp), 0);
	for (i = 0; i < 2; i++) {		/* first login, then frozen */
		md = open_ok(f->md);
		expect_msg(md, 0, "000003e80000012c", "b\n");
		expect_msg(md, 1, "00000fa00000012c", "a\n");
		expect_msg(md, 2, "1300.c", "c\n");
		ops->close(md);
		expect_cutoff(f, "V300 U4999");
	}
	/* Made up: 1300.c listed 2000 times. Unusable, frozen as names. */
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "3 V300 N3000\n");
	for (i = 1; i < 3000; i++)
		fprintf(fp, "%d :1300.c\n", i);
	assert_int_equal(fclose(fp), 0);
	expect_temp(f, "dovecot-uidlist: more records than the Maildir has "
	    "messages at line 1008, but");
	unfreeze(f);
	md = open_ok(f->md);
	expect_msg(md, 2, "1300.c", "c\n");
	ops->close(md);
	expect_cutoff(f, "V0 U0");
}

/* open() with the listing cache allowed (a local file system). */
static enum store_err
open_lc(const char *path, bool nowait, size_t max_msgs,
    struct maildrop **md_r)
{
	struct store_params	 p = { .path = path, .uidl_format = "",
				    .nowait = nowait, .max_msgs = max_msgs,
				    .listing_cache = true };
	char			 err[256];

	*md_r = NULL;
	return ops->open(&p, md_r, err, sizeof(err));
}

/* What a session sees: count, then each message's size and UIDL. */
static void
listing_of(struct maildrop *md, char *buf, size_t len)
{
	size_t	 i, off;

	off = (size_t)snprintf(buf, len, "%zu", maildrop_count(md));
	for (i = 0; i < maildrop_count(md) && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, " %llu:%s",
		    (unsigned long long)maildrop_size(md, i),
		    maildrop_uidl(md, i));
}

/* Are new/'s and cur/'s times over a second old already? */
static bool
settled_now(const struct fixture *f)
{
	char		 p[PATH_MAX];
	struct stat	 st;
	struct timespec	 now;
	const char	*sub[] = { "new", "cur" };
	int		 i;

	clock_gettime(CLOCK_REALTIME, &now);
	for (i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->md, sub[i]);
		assert_int_equal(stat(p, &st), 0);
		if (st.st_mtim.tv_sec >= now.tv_sec - 1 ||
		    st.st_ctim.tv_sec >= now.tv_sec - 1)
			return false;
	}
	return true;
}

/*
 * Until new/'s and cur/'s times are over a second old, the earliest a
 * listing of them may be kept: the clock is polled, a change awaited.
 */
static void
wait_settled(const struct fixture *f)
{
	char		 p[PATH_MAX];
	struct stat	 st;
	struct timespec	 now, nap = { 0, 50 * 1000 * 1000 };
	const char	*sub[] = { "new", "cur" };
	int		 i;

	for (i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->md, sub[i]);
		assert_int_equal(stat(p, &st), 0);
		for (;;) {
			clock_gettime(CLOCK_REALTIME, &now);
			if (st.st_mtim.tv_sec < now.tv_sec - 1 &&
			    st.st_ctim.tv_sec < now.tv_sec - 1)
				break;
			nanosleep(&nap, NULL);
		}
	}
}

/* An open allowed the cache, what it lists (listing_of()), a close. */
static void
listing_now(const struct fixture *f, char *buf, size_t len)
{
	struct maildrop	*a;

	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	listing_of(a, buf, len);
	ops->close(a);
}

/* Once new/ and cur/ are settled, an open and a close: the listing kept. */
static void
keep_listing(const struct fixture *f)
{
	struct maildrop	*a;

	wait_settled(f);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	ops->close(a);
}

/*
 * The listing cache (listcache.c): a Maildir whose new/ and cur/ were
 * changed within the last second is listed and not kept; once they are
 * older, the listing is kept and the next open uses it, with the same
 * sizes, UIDLs and order; a delivery, a flag change and a removal each
 * make it stale and the open lists again and sees them; an open not
 * allowed the cache, or a cache of size 0, never looks; a nowait open
 * over max_msgs is STORE_AGAIN; the size bound holds.
 */
static void
test_listing_cache(void **state)
{
	struct fixture			*f = *state;
	struct maildrop			*a, *b;
	struct store_cache_stats	 s0, s1;
	char				 first[1024], again[1024];
	char				 p[PATH_MAX], q[PATH_MAX];
	uint8_t				 del[8] = { 0 };

	store_cache_configure(0);		/* empty */
	store_cache_configure(1024 * 1024);
	mkdirs(f);
	put(f, "cur", "1000.a.host,S=2:2,S", "a\n", -1);
	put(f, "cur", "1001.b.host,S=2", "b\n", -1);
	put(f, "new", "1002.c.host,S=2", "c\n", -1);

	/* Just made: listed, not kept (unless this machine stalled a second). */
	store_cache_stats(&s0);
	listing_now(f, first, sizeof(first));
	store_cache_stats(&s1);
	if (!settled_now(f))
		assert_int_equal(s1.entries, 0);
	assert_int_equal(s1.misses - s0.misses, 1);

	/* Settled: kept, then used. */
	keep_listing(f);
	store_cache_stats(&s0);
	assert_int_equal(s0.entries, 1);
	assert_true(s0.bytes > 0 && s0.bytes <= s0.limit);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	listing_of(a, again, sizeof(again));
	assert_string_equal(again, first);
	assert_int_equal(maildrop_total(a), 9);
	ops->close(a);
	store_cache_stats(&s1);
	assert_int_equal(s1.hits - s0.hits, 1);

	/* The loop's open uses it too, unless it is over max_msgs. */
	assert_int_equal(open_lc(f->md, true, 100, &a), STORE_OK);
	listing_of(a, again, sizeof(again));
	assert_string_equal(again, first);
	ops->close(a);
	assert_int_equal(open_lc(f->md, true, 2, &a), STORE_AGAIN);
	assert_null(a);
	b = open_ok(f->md);			/* the lock was left free */
	ops->close(b);

	/* Not allowed (not local): never looked at. */
	store_cache_stats(&s0);
	ops->close(open_ok(f->md));
	store_cache_stats(&s1);
	assert_int_equal(s1.hits + s1.misses + s1.stale,
	    s0.hits + s0.misses + s0.stale);

	/* A delivery into new/ (tmp/ then rename, as an MDA does). */
	snprintf(p, sizeof(p), "%s/tmp/1003.d.host,S=2", f->md);
	snprintf(q, sizeof(q), "%s/new/1003.d.host,S=2", f->md);
	put(f, "tmp", "1003.d.host,S=2", "d\n", -1);
	assert_int_equal(rename(p, q), 0);
	store_cache_stats(&s0);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	assert_int_equal(maildrop_count(a), 4);
	assert_string_equal(maildrop_uidl(a, 3), "1003.d.host,S=2");
	ops->close(a);
	store_cache_stats(&s1);
	assert_int_equal(s1.stale - s0.stale, 1);
	if (!settled_now(f))
		assert_int_equal(s1.entries, 0);	/* new/ just changed */

	/* A flag change in cur/ (an IMAP server's rename). */
	wait_settled(f);
	ops->close(open_ok(f->md));
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	ops->close(a);				/* kept again */
	snprintf(p, sizeof(p), "%s/cur/1001.b.host,S=2", f->md);
	snprintf(q, sizeof(q), "%s/cur/1001.b.host,S=2:2,ST", f->md);
	assert_int_equal(rename(p, q), 0);
	store_cache_stats(&s0);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	assert_int_equal(maildrop_count(a), 4);
	ops->close(a);
	store_cache_stats(&s1);
	assert_int_equal(s1.stale - s0.stale, 1);

	/* Our own removal forgets the listing at once. */
	keep_listing(f);
	store_cache_stats(&s0);
	assert_int_equal(s0.entries, 1);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	del[0] = 1;
	assert_int_equal(ops->commit(a, del, NULL), STORE_OK);
	store_cache_stats(&s1);
	assert_int_equal(s1.entries, 0);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	assert_int_equal(maildrop_count(a), 3);
	ops->close(a);

	/*
	 * The listing carries the cutoff file's "U0" (no open of it on a
	 * hit), with the file's stamp: a file changed in place is read again
	 * (here damaged: STORE_TEMP, as without the cache).
	 */
	keep_listing(f);
	store_cache_stats(&s0);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	ops->close(a);
	store_cache_stats(&s1);
	assert_int_equal(s1.hits - s0.hits, 1);
	snprintf(p, sizeof(p), "%s/%s", f->md, MAILDIR_UIDLIST_CUTOFF_FILE);
	{
		int fd = open(p, O_WRONLY | O_TRUNC);

		assert_true(fd != -1);
		assert_int_equal(write(fd, "garbage\n", 8), 8);
		close(fd);
	}
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_TEMP);
	assert_null(a);
	assert_int_equal(unlink(p), 0);		/* decide again */
	ops->close(open_ok(f->md));
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	assert_int_equal(maildrop_count(a), 3);
	ops->close(a);

	/* Too small a cache keeps nothing; size 0 does not look. */
	wait_settled(f);
	store_cache_configure(64);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	ops->close(a);
	store_cache_stats(&s0);
	assert_int_equal(s0.entries, 0);
	assert_int_equal(s0.bytes, 0);
	store_cache_configure(0);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	ops->close(a);
	store_cache_stats(&s1);
	assert_int_equal(s1.hits + s1.misses + s1.stale,
	    s0.hits + s0.misses + s0.stale);
}

/*
 * A kept listing gives the same UIDLs as a scan, also where they are not
 * the names: one that is no valid UIDL (its MD5) and a unique part in
 * both new/ and cur/ (a suffix); and under another uidl_format than the
 * one the listing was kept with.
 */
static void
test_listing_cache_uidls(void **state)
{
	struct fixture			*f = *state;
	struct maildrop			*a;
	struct store_params		 p = { .uidl_format = "%f-x",
					    .listing_cache = true };
	struct store_cache_stats	 s0, s1;
	char				 first[1024], again[1024], err[256];
	int				 k;

	store_cache_configure(0);
	store_cache_configure(1024 * 1024);
	mkdirs(f);
	put(f, "cur", "1000.a b.host,S=2:2,S", "a\n", -1);
	put(f, "cur", "1002.plain.host,S=2:2,S", "d\n", -1);
	ops->close(open_ok(f->md));		/* the cutoff written */
	for (k = 0; k < 2; k++) {
		if (k == 1) {			/* then a shared unique part */
			put(f, "new", "1001.dup.host,S=2", "b\n", -1);
			put(f, "cur", "1001.dup.host,S=2:2,S", "c\n", -1);
		}
		wait_settled(f);
		assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
		listing_of(a, first, sizeof(first));
		assert_int_equal(maildrop_count(a), 2 + 2 * k);
		assert_true(strchr(first, ' ') != NULL);
		assert_null(strstr(first, "a b"));	/* its MD5 */
		ops->close(a);
		store_cache_stats(&s0);
		listing_now(f, again, sizeof(again));
		store_cache_stats(&s1);
		assert_int_equal(s1.hits - s0.hits, 1);
		/* An MD5 of a name: the UIDLs worked out again. */
		assert_int_equal(s1.plain_hits, s0.plain_hits);
		assert_string_equal(again, first);
	}

	/* All names, all unique: the same, kept and used. */
	store_cache_configure(0);
	store_cache_configure(1024 * 1024);
	assert_int_equal(unlink_in(f, "cur", "1000.a b.host,S=2:2,S"), 0);
	assert_int_equal(unlink_in(f, "new", "1001.dup.host,S=2"), 0);
	wait_settled(f);
	assert_int_equal(open_lc(f->md, false, 0, &a), STORE_OK);
	listing_of(a, first, sizeof(first));
	assert_string_equal(first, "2 3:1001.dup.host,S=2 3:1002.plain.host,S=2");
	ops->close(a);
	store_cache_stats(&s0);
	listing_now(f, again, sizeof(again));
	store_cache_stats(&s1);
	assert_int_equal(s1.plain_hits - s0.plain_hits, 1);	/* kept too */
	assert_string_equal(again, first);

	/* Another uidl_format now: worked out under it. */
	p.path = f->md;
	assert_int_equal(ops->open(&p, &a, err, sizeof(err)), STORE_OK);
	listing_of(a, again, sizeof(again));
	assert_string_equal(again,
	    "2 3:1001.dup.host,S=2-x 3:1002.plain.host,S=2-x");
	ops->close(a);
	store_cache_configure(0);
}

/*
 * Many Maildirs through a cache that holds a few: it stays within its
 * size, the latest listings are the ones kept, and a shrink evicts.
 */
static void
test_listing_cache_bound(void **state)
{
	struct fixture			*f = *state;
	struct maildrop			*a;
	struct store_cache_stats	 s0, s1;
	char				 dir[PATH_MAX / 2], p[PATH_MAX];
	size_t				 i, one, n = 40;

	store_cache_configure(0);
	store_cache_configure(1024 * 1024);
	for (i = 0; i < n; i++) {
		snprintf(dir, sizeof(dir), "%s/u%zu", f->tmp, i);
		assert_int_equal(mkdir(dir, 0700), 0);
		snprintf(p, sizeof(p), "%s/Maildir", dir);
		ops->close(open_ok(p));		/* made, empty */
	}
	snprintf(f->md, sizeof(f->md), "%s/u%zu/Maildir", f->tmp, n - 1);
	wait_settled(f);			/* made last: all settled */
	for (i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/u%zu/Maildir", f->tmp, i);
		assert_int_equal(open_lc(p, false, 0, &a), STORE_OK);
		ops->close(a);
	}
	store_cache_stats(&s0);
	assert_int_equal(s0.entries, n);
	one = s0.bytes / n;

	/* Room for ten listings (eight times one fits the share rule). */
	store_cache_configure(10 * one + one / 2);
	store_cache_stats(&s1);
	assert_int_equal(s1.entries, 10);
	assert_true(s1.bytes <= s1.limit);
	for (i = n - 10; i < n; i++) {		/* the newest ten hit */
		snprintf(p, sizeof(p), "%s/u%zu/Maildir", f->tmp, i);
		store_cache_stats(&s0);
		assert_int_equal(open_lc(p, false, 0, &a), STORE_OK);
		ops->close(a);
		store_cache_stats(&s1);
		assert_int_equal(s1.hits - s0.hits, 1);
	}
	snprintf(p, sizeof(p), "%s/u0/Maildir", f->tmp);
	store_cache_stats(&s0);
	assert_int_equal(open_lc(p, false, 0, &a), STORE_OK);	/* evicted */
	ops->close(a);
	store_cache_stats(&s1);
	assert_int_equal(s1.misses - s0.misses, 1);
	assert_int_equal(s1.entries, 10);	/* u0 in, the oldest out */
	assert_true(s1.bytes <= s1.limit);
	store_cache_configure(0);
	store_cache_stats(&s1);
	assert_int_equal(s1.entries, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nowait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uidl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_moved_old_cur, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_raced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_cache_shared_name,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirfd_cold, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dirfd_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_size_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_msg_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_total, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_no_create, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidlist_ids, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidlist_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidlist_corrupt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidl_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidl_clash, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_frozen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_first, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_temp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_unwritable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_stale, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_listing_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_listing_cache_uidls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_listing_cache_bound, setup,
		    teardown),
		cmocka_unit_test(test_expand_location),
		cmocka_unit_test(test_err_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
