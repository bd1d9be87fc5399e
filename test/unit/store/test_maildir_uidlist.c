/*
 * test_maildir_uidlist: the dovecot-uidlist reader, on real files in a
 * mkdtemp() directory: the formats Dovecot and courier-dovecot-migrate.pl
 * write, every kind of damage (each must give "no uidlist"), random
 * garbage, truncations and mutations (under ASan: no crash, no overread),
 * the migration cutoff (records above it not read, the cutoff file) and
 * the bound on records kept.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/maildir/maildir_uidlist.h"

struct fixture {
	char	 dir[64];		/* the mkdtemp() directory */
	char	 file[128];		/* <dir>/dovecot-uidlist */
};

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_maildir_uidlist.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->file, sizeof(f->file), "%s/%s", f->dir,
	    MAILDIR_UIDLIST_FILE);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	struct stat	 st;

	char		 p[160];

	if (lstat(f->file, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			assert_int_equal(rmdir(f->file), 0);
		else
			assert_int_equal(unlink(f->file), 0);
	}
	snprintf(p, sizeof(p), "%s/%s", f->dir, MAILDIR_UIDLIST_CUTOFF_FILE);
	if (lstat(p, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			assert_int_equal(rmdir(p), 0);
		else
			assert_int_equal(unlink(p), 0);
	}
	snprintf(p, sizeof(p), "%s/tmp", f->dir);
	(void)rmdir(p);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* Replace the file with len bytes of s (len -1: strlen). */
static void
put(const struct fixture *f, const char *s, ssize_t len)
{
	int	 fd;

	if (len < 0)
		len = (ssize_t)strlen(s);
	fd = open(f->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, s, (size_t)len), len);
	close(fd);
}

/* The options of the last ld(): why a list was unusable. */
static struct maildir_uidlist_opts	 last;

/* load() for a Maildir of 64 messages, no cutoff, no filter. */
static int
ld(const char *root, struct maildir_uidlist **ul_r)
{
	memset(&last, 0, sizeof(last));
	last.nmsgs = 64;
	return maildir_uidlist_load(root, &last, ul_r);
}

/* load() must say 1; returns the list. */
static struct maildir_uidlist *
load_ok(const struct fixture *f)
{
	struct maildir_uidlist	*ul = NULL;
	int			 r;

	r = ld(f->dir, &ul);
	if (r != 1)
		fail_msg("load: %d (errno %d)", r, errno);
	assert_non_null(ul);
	return ul;
}

/* load() of s (NULL: the file as it is) must say "no uidlist". */
static void
unusable(const struct fixture *f, const char *s, ssize_t len)
{
	struct maildir_uidlist	*ul = (void *)1;
	int			 r;

	if (s != NULL)
		put(f, s, len);
	r = ld(f->dir, &ul);
	if (r != 0)
		fail_msg("load of %.60s: %d, want 0", s != NULL ? s : "file",
		    r);
	assert_null(ul);
	assert_non_null(last.why);		/* there is a file */
}

/* The last ld() said unusable for this reason, at this line. */
static void
why(const char *reason, size_t line)
{
	assert_non_null(last.why);
	assert_string_equal(last.why, reason);
	assert_int_equal(last.line, line);
}

static const struct maildir_uidlist_rec *
get(struct maildir_uidlist *ul, const char *name)
{
	return maildir_uidlist_lookup(ul, name, strlen(name));
}

/* Version 3, as Dovecot 2.3 and courier-dovecot-migrate.pl write it. */
static void
test_v3(void **state)
{
	struct fixture				*f = *state;
	struct maildir_uidlist			*ul;
	const struct maildir_uidlist_rec	*r;

	put(f, "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1 Xfoo\n"
	    "25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,\n"
	    "25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n"
	    "25018 P00000001abc W10 S9 :1276533074.M1P1.host\n"
	    "25019 P :1276533075.M2P2.host\n"
	    "25020   O7  Pa:b   x1 :1276533076.M3P3.host:2,S\n"
	    "25021 Ox O :1276533077.M4P4.host\n"
	    "25022 P1 P2 O3 O4 :name with space:2,\n", -1);
	ul = load_ok(f);
	assert_int_equal(maildir_uidlist_uidvalidity(ul), 1275660208);
	assert_int_equal(maildir_uidlist_count(ul), 7);

	r = get(ul, "1276528487.M364837P9451.kurkku,S=1355,W=1394");
	assert_non_null(r);
	assert_int_equal(r->uid, 25006);
	assert_null(r->pop3_uidl);
	assert_false(r->has_order);
	/* With or without the info, from new/ or cur/. */
	assert_ptr_equal(get(ul, "1276528487.M364837P9451.kurkku,S=1355,"
	    "W=1394:2,RS"), r);
	assert_int_equal(get(ul, "1276533073.M242911P3632.kurkku")->uid, 25017);

	r = get(ul, "1276533074.M1P1.host:2,S");
	assert_int_equal(r->uid, 25018);
	assert_string_equal(r->pop3_uidl, "00000001abc");
	/* An empty P: "the base name". */
	assert_string_equal(get(ul, "1276533075.M2P2.host")->pop3_uidl, "");
	/* Extra spaces, ':' inside a value, a key outside A..Z skipped. */
	r = get(ul, "1276533076.M3P3.host");
	assert_int_equal(r->uid, 25020);
	assert_string_equal(r->pop3_uidl, "a:b");
	assert_true(r->has_order);
	assert_int_equal(r->order, 7);
	/* O that is no number: no order. */
	assert_false(get(ul, "1276533077.M4P4.host")->has_order);
	/* The first of a repeated key; a file name with spaces. */
	r = get(ul, "name with space");
	assert_int_equal(r->uid, 25022);
	assert_string_equal(r->pop3_uidl, "1");
	assert_int_equal(r->order, 3);

	/* Only whole base names match. */
	assert_null(get(ul, "1276533074.M1P1"));
	assert_null(get(ul, "1276533074.M1P1.hostx"));
	assert_null(get(ul, ""));
	assert_null(get(ul, ":2,S"));
	maildir_uidlist_free(ul);
}

/* Version 1 (Dovecot 1.0, Courier's courierimapuiddb layout). */
static void
test_v1(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul;

	put(f, "1 1100000000 10\n"
	    "1 1000.a.host:2,S\n"
	    "3   1001.b.host\n"
	    "4 \n"				/* no name: matches nothing */
	    "9 P1 :x\n", -1);			/* all of it is the name */
	ul = load_ok(f);
	assert_int_equal(maildir_uidlist_uidvalidity(ul), 1100000000);
	assert_int_equal(maildir_uidlist_count(ul), 3);
	assert_int_equal(get(ul, "1000.a.host")->uid, 1);
	assert_null(get(ul, "1000.a.host")->pop3_uidl);
	assert_int_equal(get(ul, "1001.b.host:2,")->uid, 3);
	assert_int_equal(get(ul, "P1 ")->uid, 9);
	maildir_uidlist_free(ul);

	/* A UID at or over the next UID is damage in version 1 only. */
	unusable(f, "1 5 10\n10 a\n", -1);
	put(f, "3 V5 N10\n10 :a\n", -1);
	ul = load_ok(f);
	maildir_uidlist_free(ul);
}

/* Two records of one base name: the later wins, as in Dovecot. */
static void
test_duplicate(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul;

	put(f, "3 V7 N20\n3 P3 :1.a:2,S\n5 :1.b\n9 :1.a\n", -1);
	ul = load_ok(f);
	assert_int_equal(maildir_uidlist_count(ul), 2);
	assert_int_equal(get(ul, "1.a")->uid, 9);
	assert_null(get(ul, "1.a")->pop3_uidl);
	assert_int_equal(get(ul, "1.b")->uid, 5);
	maildir_uidlist_free(ul);
}

/* A last line without its newline is an append in progress. */
static void
test_torn(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul;

	put(f, "3 V7 N20\n3 :1.a\n5 :1.b", -1);
	ul = load_ok(f);
	assert_int_equal(maildir_uidlist_count(ul), 1);
	assert_non_null(get(ul, "1.a"));
	assert_null(get(ul, "1.b"));
	maildir_uidlist_free(ul);
	/* Even a torn header: then there is nothing. */
	unusable(f, "3 V7 N20", -1);
	/* Header only: a list of no messages. */
	put(f, "3 V7 N1\n", -1);
	ul = load_ok(f);
	assert_int_equal(maildir_uidlist_count(ul), 0);
	assert_null(get(ul, "1.a"));
	maildir_uidlist_free(ul);
}

/* Every kind of damage: "no uidlist", never a crash. */
static void
test_damage(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"3\n",
		"x V1 N2\n",
		"33 V1 N2\n",
		"2 1 2\n1 0 a\n",		/* version 2: refused */
		"4 V1 N2\n",
		"3 V0 N2\n1 :a\n",
		"3 V1 N0\n",
		"3 N2\n1 :a\n",			/* no V */
		"3 V1\n1 :a\n",			/* no N */
		"3 Vx N2\n",
		"3 V4294967296 N2\n",
		"3 V1 N2 Gxyz\n",
		"3 V1 N2 G3085f01b7f11094c501100008c4a11c\n",
		"1 5\n1 a\n",
		"1 0 10\n1 a\n",
		"1 x 10\n",
		"3 V1 N2\n0 :a\n",
		"3 V1 N2\n-1 :a\n",
		"3 V1 N2\nx :a\n",
		"3 V1 N2\n :a\n",
		"3 V1 N2\n1:a\n",
		"3 V1 N2\n1\n",
		"3 V1 N2\n5 :a\n5 :b\n",		/* not increasing */
		"3 V1 N2\n5 :a\n4 :b\n",
		"3 V1 N2\n4294967295 :a\n",
		"3 V1 N2\n4294967296 :a\n",
		"3 V1 N2\n99999999999999999999 :a\n",
		"3 V1 N2\n1 P1\n",			/* no file name */
		"3 V1 N2\n1 :\n",
		"3 V1 N2\n1 \n",
		"3 V1 N2\n1 P1 W2\n",
		"3 V1 N2\n1 :../a\n",
		"3 V1 N2\n1 :cur/a\n",
		"1 1 10\n1 a/b\n",
	};
	struct fixture	*f = *state;
	char		*big;
	size_t		 i;
	int		 fd;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		unusable(f, bad[i], -1);
	/* A NUL byte anywhere. */
	unusable(f, "3 V1 N2\n1 :a\0b\n", 15);
	why("a NUL byte", 2);
	unusable(f, "3 V1\0 N2\n1 :ab\n", 15);
	why("a NUL byte", 1);
	unusable(f, "3 V1 N9\n1 :a\n2 :b\nx :c\n4 :d\n", -1);
	why("damaged", 4);
	unusable(f, "3 V1 N9", -1);
	why("damaged", 1);

	/* A line of exactly MAILDIR_UIDLIST_LINE_MAX bytes, then one more. */
	big = malloc(MAILDIR_UIDLIST_LINE_MAX + 64);
	assert_non_null(big);
	i = (size_t)snprintf(big, 64, "3 V1 N2\n1 :");
	memset(big + i, 'n', MAILDIR_UIDLIST_LINE_MAX - 4);
	big[i + MAILDIR_UIDLIST_LINE_MAX - 4] = '\n';
	big[i + MAILDIR_UIDLIST_LINE_MAX - 3] = '\0';
	put(f, big, -1);
	{
		struct maildir_uidlist *ul = load_ok(f);

		assert_int_equal(maildir_uidlist_count(ul), 1);
		maildir_uidlist_free(ul);
	}
	memset(big + i, 'n', MAILDIR_UIDLIST_LINE_MAX - 3);
	big[i + MAILDIR_UIDLIST_LINE_MAX - 3] = '\n';
	big[i + MAILDIR_UIDLIST_LINE_MAX - 2] = '\0';
	unusable(f, big, -1);
	why("a line longer than 4096 bytes", 2);
	free(big);

	/* Over MAILDIR_UIDLIST_FILE_MAX (sparse): not even read. */
	put(f, "3 V1 N2\n", -1);
	fd = open(f->file, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(ftruncate(fd, (off_t)MAILDIR_UIDLIST_FILE_MAX + 1), 0);
	close(fd);
	unusable(f, NULL, 0);
	why("larger than 32 MiB", 0);
}

/* Not a regular file, or a symbolic link: not used. */
static void
test_not_file(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul = (void *)1;
	char			 target[160], longroot[PATH_MAX + 8];

	/* Missing: no reason, there is no file. */
	assert_int_equal(ld(f->dir, &ul), 0);
	assert_null(ul);
	assert_null(last.why);
	/* A directory. */
	assert_int_equal(mkdir(f->file, 0700), 0);
	assert_int_equal(ld(f->dir, &ul), 0);
	assert_null(ul);
	why("not a regular file", 0);
	assert_int_equal(rmdir(f->file), 0);
	/* A FIFO: no hang. */
	assert_int_equal(mkfifo(f->file, 0600), 0);
	assert_int_equal(ld(f->dir, &ul), 0);
	why("not a regular file", 0);
	assert_int_equal(unlink(f->file), 0);
	/* A symbolic link to a good list. */
	snprintf(target, sizeof(target), "%s/real", f->dir);
	{
		FILE *fp = fopen(target, "w");

		assert_non_null(fp);
		fputs("3 V1 N3\n1 :a\n", fp);
		fclose(fp);
	}
	assert_int_equal(symlink("real", f->file), 0);
	assert_int_equal(ld(f->dir, &ul), 0);
	assert_null(ul);
	why("a symbolic link", 0);
	/* A root that is a file: no list. */
	assert_int_equal(ld(target, &ul), 0);
	assert_null(last.why);
	assert_int_equal(unlink(target), 0);
	/* A root too long for a path: an error, not "no uidlist". */
	memset(longroot, 'x', sizeof(longroot) - 1);
	longroot[0] = '/';
	longroot[sizeof(longroot) - 1] = '\0';
	errno = 0;
	assert_int_equal(ld(longroot, &ul), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_null(ul);
}

/*
 * A list that exists but cannot be read is an error (the driver then fails
 * the login rather than serve other ids): checked in a child without the
 * permission (as root: one that becomes nobody).
 */
static void
test_unreadable(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul = NULL;
	pid_t			 pid;
	int			 status, r;

	char			 path[160];
	uint32_t		 v, u;

	put(f, "3 V1 N3\n1 :a\n", -1);
	assert_int_equal(chmod(f->file, 0), 0);
	snprintf(path, sizeof(path), "%s/%s", f->dir,
	    MAILDIR_UIDLIST_CUTOFF_FILE);
	assert_int_equal(close(open(path, O_WRONLY | O_CREAT, 0)), 0);
	if ((pid = fork()) == 0) {
		if (getuid() == 0 && (setgid(65534) == -1 ||
		    setuid(65534) == -1))
			_exit(2);
		r = ld(f->dir, &ul);
		if (r != -1 || errno != EACCES || ul != NULL)
			_exit(1);
		r = maildir_uidlist_cutoff_load(f->dir, &v, &u);
		_exit(r == -1 && errno == EACCES ? 0 : 3);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Deterministic xorshift, so a failure can be replayed. */
static uint64_t	 rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

#define ANY		(-1)	/* check_loaded(): either outcome */
#define NONE		(-2)	/* check_loaded(): unusable */

/*
 * Load the list; lookups must work whatever it holds. want: ANY, NONE,
 * or the number of records of test_random()'s good file it must load
 * with: exactly its first want records (their UIDs and P fields), not
 * the others.
 */
static void
check_loaded(const struct fixture *f, int want)
{
	struct maildir_uidlist			*ul = NULL;
	const struct maildir_uidlist_rec	*r;
	char					 name[32];
	int					 i, res;

	res = ld(f->dir, &ul);
	assert_true(res == 0 || res == 1);
	if (want == NONE && res != 0)
		fail_msg("usable, want unusable");
	if (want >= 0 && res != 1)
		fail_msg("unusable (%s, line %zu), want %d records",
		    last.why != NULL ? last.why : "none", last.line, want);
	if (res == 0) {
		assert_null(ul);
		return;
	}
	for (i = 1; i <= 24; i++) {
		snprintf(name, sizeof(name), "%d.M%dP1.h", 1700000000 + i, i);
		r = get(ul, name);
		if (want < 0)
			continue;
		if (i > want) {
			assert_null(r);
			continue;
		}
		assert_non_null(r);
		assert_int_equal(r->uid, (uint32_t)i * 3);
		if (i % 3 == 0)
			assert_string_equal(r->pop3_uidl, "");
		else if (i % 3 == 1)
			assert_string_equal(r->pop3_uidl, "id-x");
		else
			assert_null(r->pop3_uidl);
	}
	if (want >= 0)
		assert_int_equal(maildir_uidlist_count(ul), (size_t)want);
	(void)get(ul, "");
	maildir_uidlist_free(ul);
}

/* Truncations, mutations and pure garbage. */
static void
test_random(void **state)
{
	struct fixture	*f = *state;
	char		 good[4096], buf[4096];
	size_t		 len = 0, hlen, n, i, j;
	int		 lines;

	hlen = len = (size_t)snprintf(good, sizeof(good),
	    "3 V1700000000 N200 G0123456789abcdef0123456789ABCDEF\n");
	for (i = 1; i <= 24; i++)
		len += (size_t)snprintf(good + len, sizeof(good) - len,
		    "%zu%s :%zu.M%zuP1.h%s\n", i * 3, i % 3 == 0 ? " P" :
		    i % 3 == 1 ? " W123 Pid-x" : "", 1700000000 + i, i,
		    i % 2 ? ":2,S" : "");
	put(f, good, (ssize_t)len);
	check_loaded(f, 24);

	/*
	 * Every prefix: unusable while the header is torn, then usable with
	 * exactly the records whose lines are complete (a torn last line is
	 * an append in progress).
	 */
	for (n = 0; n <= len; n++) {
		put(f, good, (ssize_t)n);
		for (lines = 0, j = hlen; j < n; j++)
			lines += good[j] == '\n';
		check_loaded(f, n < hlen ? NONE : lines);
	}
	/* Random byte changes of the good file. */
	for (i = 0; i < 1000; i++) {
		memcpy(buf, good, len);
		for (j = 1 + rnd() % 4; j > 0; j--)
			buf[rnd() % len] = (char)(rnd() % 256);
		put(f, buf, (ssize_t)len);
		check_loaded(f, ANY);
	}
	/* Garbage of every length, in a printable and a binary flavour. */
	for (i = 0; i < 1000; i++) {
		n = rnd() % sizeof(buf);
		for (j = 0; j < n; j++)
			buf[j] = i % 2 ? (char)(rnd() % 256) :
			    " :0123456789VNGPOW\n3ab"[rnd() % 22];
		if (n > 2 && i % 4 == 0)
			memcpy(buf, "3 V1 N9\n", n < 8 ? n : 8);
		put(f, buf, (ssize_t)n);
		check_loaded(f, ANY);
	}
}

/* load() with these options (last: what it said). */
static int
ldo(const struct fixture *f, size_t nmsgs, uint32_t max_uid,
    int (*want)(void *, const char *, size_t), struct maildir_uidlist **ul_r)
{
	memset(&last, 0, sizeof(last));
	last.nmsgs = nmsgs;
	last.max_uid = max_uid;
	last.want = want;
	return maildir_uidlist_load(f->dir, &last, ul_r);
}

/*
 * With a cutoff (max_uid), records above it are not read, not even
 * checked; damage up to it still counts.
 */
static void
test_cutoff_stop(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul;
	char			*big;
	size_t			 i;

	put(f, "3 V7 N99\n1 :a\n5 P5 :b\n9 :c\n12 :d\n", -1);
	assert_int_equal(ldo(f, 4, 9, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 3);
	assert_int_equal(maildir_uidlist_max_uid(ul), 9);
	assert_int_equal(get(ul, "c")->uid, 9);
	assert_null(get(ul, "d"));
	maildir_uidlist_free(ul);
	/* The header's "3" is no record above a cutoff of 1. */
	assert_int_equal(ldo(f, 4, 1, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 1);
	assert_int_equal(maildir_uidlist_max_uid(ul), 1);
	assert_null(get(ul, "b"));
	maildir_uidlist_free(ul);
	/* Between records; above them all; no cutoff. */
	assert_int_equal(ldo(f, 4, 10, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 3);
	maildir_uidlist_free(ul);
	assert_int_equal(ldo(f, 4, 4294967294u, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 4);
	assert_int_equal(maildir_uidlist_max_uid(ul), 12);
	maildir_uidlist_free(ul);

	/* Nothing up to it: a list of no records. */
	put(f, "3 V7 N99\n5 :a\n", -1);
	assert_int_equal(ldo(f, 4, 3, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 0);
	assert_int_equal(maildir_uidlist_max_uid(ul), 0);
	maildir_uidlist_free(ul);

	/* Damage after the cutoff: not read. */
	big = malloc(3 * MAILDIR_UIDLIST_LINE_MAX);
	assert_non_null(big);
	i = (size_t)snprintf(big, 64, "3 V7 N99\n1 :a\n5 :b\n6 :");
	memset(big + i, 'x', 2 * MAILDIR_UIDLIST_LINE_MAX);
	i += 2 * MAILDIR_UIDLIST_LINE_MAX;
	memcpy(big + i, "\n5 :x\n\0\n99999999999 :y\nz\n", 26);
	put(f, big, (ssize_t)i + 26);
	assert_int_equal(ldo(f, 4, 5, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 2);
	maildir_uidlist_free(ul);
	/* The same file without a cutoff, or one that reaches it. */
	assert_int_equal(ldo(f, 4, 0, NULL, &ul), 0);
	why("a NUL byte", 6);
	assert_int_equal(ldo(f, 4, 6, NULL, &ul), 0);
	why("a NUL byte", 6);
	/* A long line above the cutoff is not read, up to it is damage. */
	i = (size_t)snprintf(big, 64, "3 V7 N99\n1 :a\n6 :");
	memset(big + i, 'x', 2 * MAILDIR_UIDLIST_LINE_MAX);
	i += 2 * MAILDIR_UIDLIST_LINE_MAX;
	memcpy(big + i, "\n7 :b\n", 6);
	put(f, big, (ssize_t)i + 6);
	assert_int_equal(ldo(f, 4, 5, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 1);
	maildir_uidlist_free(ul);
	assert_int_equal(ldo(f, 4, 6, NULL, &ul), 0);
	why("a line longer than 4096 bytes", 3);
	/* A UID too large for 32 bits is above any cutoff. */
	put(f, "3 V7 N99\n1 :a\n99999999999 :y\n", -1);
	assert_int_equal(ldo(f, 4, 4294967295u, NULL, &ul), 1);
	maildir_uidlist_free(ul);
	assert_int_equal(ldo(f, 4, 0, NULL, &ul), 0);
	why("damaged", 3);
	/* Damage up to the cutoff counts. */
	put(f, "3 V7 N99\n1 :a\nx :b\n9 :c\n", -1);
	assert_int_equal(ldo(f, 4, 9, NULL, &ul), 0);
	why("damaged", 3);
	put(f, "3 V7 N99\n4 :a\n2 :b\n9 :c\n", -1);	/* not increasing */
	assert_int_equal(ldo(f, 4, 5, NULL, &ul), 0);
	why("damaged", 3);
	/* ... but not after the first record above the cutoff. */
	assert_int_equal(ldo(f, 4, 3, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 0);
	maildir_uidlist_free(ul);
	free(big);
}

/*
 * A file over MAILDIR_UIDLIST_FILE_MAX: unusable without a cutoff; with
 * one, read up to the limit and usable if the cutoff lies within.
 */
static void
test_cutoff_big(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul;
	int			 fd;

	put(f, "3 V7 N99\n1 :a\n5 :b\n7 :c\n", -1);
	fd = open(f->file, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(ftruncate(fd, (off_t)MAILDIR_UIDLIST_FILE_MAX + 10),
	    0);
	close(fd);
	assert_int_equal(ldo(f, 4, 0, NULL, &ul), 0);
	why("larger than 32 MiB", 0);
	assert_int_equal(ldo(f, 4, 5, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 2);
	assert_int_equal(get(ul, "b")->uid, 5);
	maildir_uidlist_free(ul);
	/* The cutoff not reached in the part read: maybe further on. */
	assert_int_equal(ldo(f, 4, 7, NULL, &ul), 0);
	why("larger than 32 MiB up to the cutoff", 0);
}

static int	 want_calls;

/* A filter: the names "k<even number>" only. */
static int
want_even(void *arg, const char *name, size_t len)
{
	(void)arg;
	want_calls++;
	return len >= 2 && name[0] == 'k' && (name[len - 1] - '0') % 2 == 0;
}

static int
want_all(void *arg, const char *name, size_t len)
{
	(void)arg;
	(void)name;
	(void)len;
	want_calls++;
	return 1;
}

/* Write "3 V7 N<n+1>" and records 1..n, "<i> :k<i>" (or all "k1"). */
static void
put_records(const struct fixture *f, size_t n, int same)
{
	FILE	*fp;
	size_t	 i;

	fp = fopen(f->file, "w");
	assert_non_null(fp);
	fprintf(fp, "3 V7 N%zu\n", n + 1);
	for (i = 1; i <= n; i++)
		fprintf(fp, "%zu :k%zu:2,S\n", i, same ? (size_t)1 : i);
	assert_int_equal(fclose(fp), 0);
}

/*
 * At most 2 * nmsgs + 1000 records are kept: beyond that, only those the
 * filter wants; more than that even so is unusable.
 */
static void
test_limit(void **state)
{
	struct fixture		*f = *state;
	struct maildir_uidlist	*ul;

	/* Up to the bound: no filter is asked. */
	put_records(f, 1000, 0);
	want_calls = 0;
	assert_int_equal(ldo(f, 0, 0, want_even, &ul), 1);
	assert_int_equal(want_calls, 0);
	assert_int_equal(maildir_uidlist_count(ul), 1000);
	assert_int_equal(get(ul, "k999")->uid, 999);
	maildir_uidlist_free(ul);
	put_records(f, 1020, 0);
	assert_int_equal(ldo(f, 10, 0, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 1020);
	maildir_uidlist_free(ul);

	/* One more: unusable without a filter. */
	put_records(f, 1001, 0);
	assert_int_equal(ldo(f, 0, 0, NULL, &ul), 0);
	why("more records than the Maildir has messages", 0);
	/* With one: the records it wants, all of them read. */
	put_records(f, 1998, 0);
	want_calls = 0;
	assert_int_equal(ldo(f, 0, 0, want_even, &ul), 1);
	assert_int_equal(want_calls, 1998);
	assert_int_equal(maildir_uidlist_count(ul), 999);
	assert_int_equal(maildir_uidlist_max_uid(ul), 1998);
	assert_int_equal(get(ul, "k1998")->uid, 1998);
	assert_int_equal(get(ul, "k2:2,")->uid, 2);
	assert_null(get(ul, "k1997"));
	maildir_uidlist_free(ul);
	/* Still too many: unusable. */
	put_records(f, 2004, 0);
	assert_int_equal(ldo(f, 0, 0, want_even, &ul), 0);
	why("more records than the Maildir has messages", 2003);
	assert_int_equal(ldo(f, 0, 0, want_all, &ul), 0);
	why("more records than the Maildir has messages", 1002);
	/* One name again and again (made up to cost memory). */
	put_records(f, 5000, 1);
	assert_int_equal(ldo(f, 1, 0, want_all, &ul), 0);
	why("more records than the Maildir has messages", 1004);

	/* Only records up to the cutoff count. */
	put_records(f, 3000, 0);
	want_calls = 0;
	assert_int_equal(ldo(f, 0, 1000, NULL, &ul), 1);
	assert_int_equal(maildir_uidlist_count(ul), 1000);
	assert_null(get(ul, "k1001"));
	maildir_uidlist_free(ul);
	assert_int_equal(ldo(f, 0, 1001, NULL, &ul), 0);
	assert_int_equal(ldo(f, 0, 1001, want_even, &ul), 1);
	assert_int_equal(want_calls, 1001);
	maildir_uidlist_free(ul);
}

/* evpop3d-uidl-cutoff: written whole, read strictly. */
static void
test_cutoff_file(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"evpop3d-uidl-cutoff 1 V1 U2",		/* torn */
		"evpop3d-uidl-cutoff 1 V1 U2\n\n",
		"evpop3d-uidl-cutoff 1 V1 U2 \n",
		"evpop3d-uidl-cutoff 1 V1 U2\r\n",
		"evpop3d-uidl-cutoff 1 V1  U2\n",
		"evpop3d-uidl-cutoff 1  V1 U2\n",
		" evpop3d-uidl-cutoff 1 V1 U2\n",
		"evpop3d-uidl-cutoff 2 V1 U2\n",
		"evpop3d-uidl-cutoff V1 U2\n",
		"evpop3d-uidl-cutoff 1 U2 V1\n",
		"evpop3d-uidl-cutoff 1 V1\n",
		"evpop3d-uidl-cutoff 1 V01 U2\n",
		"evpop3d-uidl-cutoff 1 V1 U02\n",
		"evpop3d-uidl-cutoff 1 V1 U00\n",
		"evpop3d-uidl-cutoff 1 V-1 U2\n",
		"evpop3d-uidl-cutoff 1 V+1 U2\n",
		"evpop3d-uidl-cutoff 1 V U2\n",
		"evpop3d-uidl-cutoff 1 V1 U\n",
		"evpop3d-uidl-cutoff 1 V4294967296 U2\n",
		"evpop3d-uidl-cutoff 1 V1 U4294967296\n",
		"evpop3d-uidl-cutoff 1 V0 U5\n",	/* U needs a V */
		"evpop3d-uidl-cutoff 1 v1 u2\n",
		"evpop3d-sizes 1\nend 0\n",
		"evpop3d-uidl-cutoff 1 V1 U2\nevpop3d-uidl-cutoff 1 V1 U2\n",
		"evpop3d-uidl-cutoff 1 V1 U2                                "
		    "             \n",		/* longer than any */
	};
	struct fixture	*f = *state;
	char		 path[160], tmp[160], text[128];
	uint32_t	 v = 1, u = 1;
	size_t		 i;
	int		 fd;
	ssize_t		 n;

	snprintf(path, sizeof(path), "%s/%s", f->dir,
	    MAILDIR_UIDLIST_CUTOFF_FILE);
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->dir);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), 0);

	/* No tmp/: not written, nothing left. */
	errno = 0;
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 7, 9), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), 0);

	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 1275660208,
	    25022), 0);
	fd = open(path, O_RDONLY);
	assert_true(fd != -1);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	assert_string_equal(text, "evpop3d-uidl-cutoff 1 V1275660208 U25022\n");
	assert_int_equal(rmdir(tmp), 0);	/* tmp/ left empty */
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), 1);
	assert_int_equal(v, 1275660208);
	assert_int_equal(u, 25022);
	/* The extremes, and "no Dovecot ids". */
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 4294967295u,
	    4294967295u), 0);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), 1);
	assert_int_equal(v, 4294967295u);
	assert_int_equal(u, 4294967295u);
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 0, 0), 0);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), 1);
	assert_int_equal(v, 0);
	assert_int_equal(u, 0);
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 5, 0), 0);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), 1);
	assert_int_equal(v, 5);
	assert_int_equal(u, 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd != -1);
		assert_int_equal(write(fd, bad[i], strlen(bad[i])),
		    (ssize_t)strlen(bad[i]));
		close(fd);
		errno = 0;
		if (maildir_uidlist_cutoff_load(f->dir, &v, &u) != -1 ||
		    errno != EBADMSG)
			fail_msg("cutoff file \"%s\" not refused", bad[i]);
	}
	/* A NUL byte. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, "evpop3d-uidl-cutoff 1 V1\0U2\n", 28), 28);
	close(fd);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), -1);
	assert_int_equal(errno, EBADMSG);
	/* A symbolic link to a good one; a directory. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 1, 2), 0);
	snprintf(text, sizeof(text), "%s/good", f->dir);
	assert_int_equal(rename(path, text), 0);
	assert_int_equal(symlink("good", path), 0);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(text), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(maildir_uidlist_cutoff_load(f->dir, &v, &u), -1);
	assert_int_equal(errno, EBADMSG);
	/* Not replaced by a save either: rename() fails, tmp/ stays clean. */
	assert_int_equal(maildir_uidlist_cutoff_save(f->dir, 1, 2), -1);
	assert_int_equal(rmdir(tmp), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_torn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_stop, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_big, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cutoff_file, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
