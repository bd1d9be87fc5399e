/*
 * test_store_mbox: the mbox driver on real files in a mkdtemp()
 * directory: what clients see, UIDLs, the update, locks, and what
 * happens when other programs deliver or rewrite the mbox meanwhile.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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
#include <event2/buffer.h>
#include <openssl/evp.h>

#include "store/mbox/mbox.h"
#include "store/mbox/mbox_parse.h"
#include "store/mbox/mbox_test.h"
#include "store/store.h"
#include "lib/wire.h"
#include "teststr.h"

static const struct store_ops *ops = &store_mbox_ops;

struct fixture {
	char	 tmp[64];		/* the mkdtemp() directory */
	char	 mbox[128];		/* <tmp>/user */
};

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
	strcpy(f->tmp, "/tmp/test_store_mbox.XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->mbox, sizeof(f->mbox), "%s/user", f->tmp);
	store_mbox_set_lock_wait(0);
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
write_file(const char *path, const void *p, size_t len)
{
	FILE	*fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* The whole file, NUL-terminated; NULL if missing. */
static char *
read_file(const char *path, size_t *len_r)
{
	struct stat	 st;
	char		*p;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1) {
		assert_int_equal(errno, ENOENT);
		return NULL;
	}
	assert_int_equal(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	p[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return p;
}

static void
assert_file(const char *path, const char *want, size_t len)
{
	size_t	 got_len;
	char	*got = read_file(path, &got_len);

	assert_non_null(got);
	if (got_len != len || memcmp(got, want, len) != 0)
		fail_msg("%s: %zu bytes \"%.60s...\", want %zu \"%.60s...\"",
		    path, got_len, got, len, want);
	free(got);
}

static enum store_err
open_fmt(const char *path, const char *fmt, struct maildrop **md_r)
{
	struct store_params p = { .path = path, .uidl_format = fmt };
	char		 err[512];
	enum store_err	 rv;

	rv = ops->open(&p, md_r, err, sizeof(err));
	if (rv != STORE_OK)
		print_message("open: %s\n", err);
	return rv;
}

static struct maildrop *
must_open(const char *path)
{
	struct maildrop	*md = NULL;

	assert_int_equal(open_fmt(path, "", &md), STORE_OK);
	assert_non_null(md);
	return md;
}

/* Message i as the reader gives it, read in random small pieces. */
static enum store_err
retr(struct maildrop *md, size_t i, struct str *out)
{
	struct store_reader	*r;
	enum store_err		 rv;
	char			 buf[300];
	ssize_t			 n;

	out->len = 0;
	str_add(out, "", 0);
	if ((rv = ops->msg_open(md, i, &r)) != STORE_OK)
		return rv;
	while ((n = ops->msg_read(r, buf, 1 + rnd(sizeof(buf)))) > 0)
		str_add(out, buf, (size_t)n);
	ops->msg_close(r);
	return n == 0 ? STORE_OK : STORE_TEMP;
}

/*
 * Message i in wire format, as RETR/TOP send it (src/pop3/stream.c): the
 * driver's reader, read in chunks of random size, through the wire
 * encoder; and its octet count.
 */
static void
retr_wire(struct maildrop *md, size_t i, long top, struct str *out,
    uint64_t *octets_r)
{
	struct store_reader	*rd;
	struct wire_enc		 enc;
	struct evbuffer		*eb = evbuffer_new();
	char			 buf[20000];
	ssize_t			 n;

	assert_non_null(eb);
	assert_int_equal(md->ops->msg_open(md, i, &rd), STORE_OK);
	wire_enc_init(&enc, top);
	while ((n = rd->ops->msg_read(rd, buf, 1 + rnd(sizeof(buf) - 1))) > 0)
		if (wire_enc_feed(&enc, buf, (size_t)n, eb))
			break;
	assert_true(n >= 0);
	wire_enc_finish(&enc, eb);
	*octets_r = enc.octets;
	rd->ops->msg_close(rd);
	out->len = 0;
	str_add(out, evbuffer_pullup(eb, -1), evbuffer_get_length(eb));
	evbuffer_free(eb);
}

/* buf in wire format, as RFC 1939 wants it (terminator included). */
static void
wire_of(const char *p, size_t len, struct str *out)
{
	struct wire_enc	 e;
	struct evbuffer	*eb = evbuffer_new();

	wire_enc_init(&e, -1);
	wire_enc_feed(&e, p, len, eb);
	wire_enc_finish(&e, eb);
	out->len = 0;
	str_add(out, evbuffer_pullup(eb, -1), evbuffer_get_length(eb));
	evbuffer_free(eb);
}

/* Append raw as an MDA does: dotlock, fcntl lock, write, unlock. */
static void
deliver(const char *path, const char *raw, size_t len)
{
	struct flock	 fl;
	char		 lock[PATH_MAX];
	int		 fd, lfd;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	lfd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(lfd != -1);
	close(lfd);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	assert_true(fd != -1);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	assert_int_equal(fcntl(fd, F_SETLKW, &fl), 0);
	assert_int_equal(write(fd, raw, len), (ssize_t)len);
	close(fd);
	assert_int_equal(unlink(lock), 0);
}

static bool
uidl_ok(const char *u)
{
	size_t	 i, n = strlen(u);

	if (n == 0 || n > 70)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e)
			return false;
	return true;
}

static void
md5_hex(const char *p, size_t len, char out[33])
{
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n, i;

	assert_int_equal(EVP_Digest(p, len, d, &n, EVP_md5(), NULL), 1);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------ fixture */

#define FL(who, h)	"From " who " Mon Jan  1 " h ":00:00 2024\n"

/* One mbox entry: its bytes in the file, what a client sees (NULL for
 * the hidden pseudo message), its UIDL if fixed. */
struct tmsg {
	struct str	 raw, view;
	bool		 hidden;
	const char	*uidl;
};

enum { T_PSEUDO, T_INTERNAL, T_CRLF, T_XUIDL, T_EMPTY, T_DUP1, T_DUP2,
    T_HUGE, T_NOBLANK, T_CRLFENTRY, T_NOEOL, T_N };

static struct tmsg tricky[T_N];

static void
tm_set(struct tmsg *m, const char *raw, const char *view)
{
	memset(m, 0, sizeof(*m));
	str_adds(&m->raw, raw);
	m->hidden = view == NULL;
	str_add(&m->view, "", 0);
	if (view != NULL)
		str_adds(&m->view, view);
}

static void
tricky_init(void)
{
	struct tmsg	*m;
	size_t		 i;

	tm_set(&tricky[T_PSEUDO], FL("MAILER-DAEMON", "09")
	    "Date: Mon, 01 Jan 2024 09:00:00 +0000\n"
	    "From: Mail System Internal Data <MAILER-DAEMON@test.example>\n"
	    "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	    "X-IMAP: 1704099600 0000000007\n"
	    "Status: RO\n"
	    "\n"
	    "This text is part of the internal format of your mail folder\n"
	    "\n", NULL);
	tm_set(&tricky[T_INTERNAL], FL("alice@example.com", "10")
	    "Return-Path: <alice@example.com>\n"
	    "Status: RO\n"
	    "X-Status: A\n"
	    "From: Alice <alice@example.com>\n"
	    "X-Keywords: $Forwarded\n"
	    "\tJunk\n"
	    " NonJunk\n"
	    "Subject: internal headers and quoting\n"
	    "X-UID: 17\n"
	    "x-status: lower case is internal too\n"
	    "X-IMAPbase: 1704099600 7\n"
	    "X-Mailer-Status: not internal\n"
	    "\n"
	    "Body with >From not at the start of the line\n"
	    ">From someone, quoted once\n"
	    ">>From someone, quoted twice\n"
	    "From here on, a body line without a date: no separator\n"
	    "From \n"
	    ".a leading dot\n"
	    "\n",
	    "Return-Path: <alice@example.com>\n"
	    "From: Alice <alice@example.com>\n"
	    "Subject: internal headers and quoting\n"
	    "X-Mailer-Status: not internal\n"
	    "\n"
	    "Body with >From not at the start of the line\n"
	    "From someone, quoted once\n"
	    ">From someone, quoted twice\n"
	    "From here on, a body line without a date: no separator\n"
	    "From \n"
	    ".a leading dot\n");
	tm_set(&tricky[T_CRLF], FL("bob@example.com", "11")
	    "From: bob@example.com\r\n"
	    "Subject: crlf lines\r\n"
	    "Content-Length: 3\r\n"
	    "X-UID: 5\r\n"
	    "\r\n"
	    "line one\r\n"
	    ">From crlf quoted\r\n"
	    "last\r\n"
	    "\n",
	    "From: bob@example.com\r\n"
	    "Subject: crlf lines\r\n"
	    "Content-Length: 3\r\n"
	    "\r\n"
	    "line one\r\n"
	    "From crlf quoted\r\n"
	    "last\r\n");
	tm_set(&tricky[T_XUIDL],
	    "From carol@example.com Mon Jan  1 12:00:00 2024 remote from gw\n"
	    "X-UIDL: legacy.uidl-0001\n"
	    "Subject: has an x-uidl\n"
	    "\n"
	    "body\n"
	    "\n",
	    "X-UIDL: legacy.uidl-0001\n"
	    "Subject: has an x-uidl\n"
	    "\n"
	    "body\n");
	tricky[T_XUIDL].uidl = "legacy.uidl-0001";
	tm_set(&tricky[T_EMPTY], FL("nobody@example.com", "13") "\n", "");
	for (i = T_DUP1; i <= T_DUP2; i++)
		tm_set(&tricky[i], FL("dup@example.com", "14")
		    "From: dup@example.com\n"
		    "Subject: duplicate\n"
		    "\n"
		    "same body\n"
		    "\n",
		    "From: dup@example.com\n"
		    "Subject: duplicate\n"
		    "\n"
		    "same body\n");
	/* A 1 MiB header line, and a 1 MiB internal one. */
	m = &tricky[T_HUGE];
	tm_set(m, FL("dave@example.com", "15") "Subject: huge header\n"
	    "X-Long: ", "Subject: huge header\nX-Long: ");
	for (i = 0; i < 1024 * 1024; i += 16) {
		str_adds(&m->raw, "aaaaaaaaaaaaaaaa");
		str_adds(&m->view, "aaaaaaaaaaaaaaaa");
	}
	str_adds(&m->raw, "\nStatus: ");
	for (i = 0; i < 1024 * 1024; i += 16)
		str_adds(&m->raw, "ssssssssssssssss");
	str_adds(&m->raw, "\n\nshort body\n\n");
	str_adds(&m->view, "\n\nshort body\n");
	tm_set(&tricky[T_NOBLANK], FL("gina@example.com", "16")
	    "Subject: no blank line before the next separator\n"
	    "\n"
	    "body\n",
	    "Subject: no blank line before the next separator\n"
	    "\n"
	    "body");
	tm_set(&tricky[T_CRLFENTRY],
	    "From eve@example.com Mon Jan  1 17:00:00 2024\r\n"
	    "From: eve@example.com\r\n"
	    "Subject: crlf mbox entry\r\n"
	    "Status: O\r\n"
	    "\r\n"
	    ">From a crlf body\r\n"
	    "end\r\n"
	    "\r\n",
	    "From: eve@example.com\r\n"
	    "Subject: crlf mbox entry\r\n"
	    "\r\n"
	    "From a crlf body\r\n"
	    "end\r\n");
	tm_set(&tricky[T_NOEOL], FL("frank@example.com", "19")
	    "From: frank@example.com\n"
	    "Subject: no final newline\n"
	    "\n"
	    "first\n"
	    "last line without a newline",
	    "From: frank@example.com\n"
	    "Subject: no final newline\n"
	    "\n"
	    "first\n"
	    "last line without a newline");
}

static void
tricky_free(void)
{
	size_t	 i;

	for (i = 0; i < T_N; i++) {
		str_free(&tricky[i].raw);
		str_free(&tricky[i].view);
	}
}

/* The mbox of msgs[0..n) whose keep[i] (NULL: all) is set. */
static void
mbox_of(const struct tmsg *msgs, size_t n, const bool *keep, struct str *out)
{
	size_t	 i;

	out->len = 0;
	str_add(out, "", 0);
	for (i = 0; i < n; i++)
		if (keep == NULL || keep[i])
			str_add(out, msgs[i].raw.p, msgs[i].raw.len);
}

/* A simple message and its entry. */
static void
simple(struct tmsg *m, int i, const char *tag)
{
	char	 view[256], raw[512];

	snprintf(view, sizeof(view), "From: sender@example.com\nSubject: %s "
	    "%d\nMessage-ID: <%s-%d@example.com>\n\nbody %d\n", tag, i, tag, i,
	    i);
	snprintf(raw, sizeof(raw), "From sender@example.com Mon Jan  1 "
	    "10:%02d:00 2024\n%s>From a quoted line\n\n", i % 60, view);
	memset(m, 0, sizeof(*m));
	str_adds(&m->raw, raw);
	str_adds(&m->view, view);
	str_adds(&m->view, "From a quoted line\n");
}

/* ------------------------------------------------------------ tests */

static void
test_open_tricky(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct str	 box = { 0 }, got = { 0 }, want = { 0 };
	const char	*u[T_N];
	uint64_t	 total = 0, octets;
	size_t		 i, v, j;
	int		 round;

	tricky_init();
	mbox_of(tricky, T_N, NULL, &box);
	write_file(f->mbox, box.p, box.len);
	for (round = 0; round < 2; round++) {
		md = must_open(f->mbox);
		assert_int_equal(ops->count(md), T_N - 1);
		for (i = 0, v = 0; i < T_N; i++) {
			if (tricky[i].hidden)
				continue;
			/* The reader yields the view; size is its wire size. */
			assert_int_equal(retr(md, v, &got), STORE_OK);
			if (got.len != tricky[i].view.len || memcmp(got.p,
			    tricky[i].view.p, got.len) != 0)
				fail_msg("message %zu: \"%.80s\" != "
				    "\"%.80s\"", i, got.p, tricky[i].view.p);
			assert_int_equal(ops->size(md, v), wire_size(
			    tricky[i].view.p, tricky[i].view.len));
			/* RETR bytes == LIST size. */
			retr_wire(md, v, -1, &got, &octets);
			wire_of(tricky[i].view.p, tricky[i].view.len, &want);
			assert_int_equal(got.len, want.len);
			assert_memory_equal(got.p, want.p, want.len);
			assert_int_equal(octets, ops->size(md, v));
			retr_wire(md, v, 0, &got, &octets);
			assert_true(got.len <= want.len);
			total += ops->size(md, v);
			u[v] = ops->uidl(md, v);
			assert_true(uidl_ok(u[v]));
			if (tricky[i].uidl != NULL)
				assert_string_equal(u[v], tricky[i].uidl);
			if (round == 1)
				assert_string_equal(u[v], ops->uidl(md, v));
			v++;
		}
		assert_int_equal(ops->total(md), total);
		total = 0;
		for (i = 0; i < v; i++)
			for (j = i + 1; j < v; j++)
				assert_string_not_equal(u[i], u[j]);
		assert_null(ops->uidl(md, v));
		assert_int_equal(ops->size(md, v), 0);
		assert_int_equal(ops->msg_open(md, v, &(struct store_reader *){
		    NULL }), STORE_GONE);
		ops->close(md);
	}
	/* Nothing touched. */
	assert_file(f->mbox, box.p, box.len);
	str_free(&box);
	str_free(&got);
	str_free(&want);
	tricky_free();
}

/* The default UIDL is the MD5 of the header block the client sees. */
static void
test_uidl_md5(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	const char	*box = FL("a@b", "10") "Subject: s\nStatus: RO\n"
	    "X-UID: 3\n\nbody\n\n" FL("a@b", "11") "Subject: t\n";
	char		 want[33];

	write_file(f->mbox, box, strlen(box));
	md = must_open(f->mbox);
	md5_hex("Subject: s\n\n", 12, want);
	assert_string_equal(ops->uidl(md, 0), want);
	md5_hex("Subject: t", 10, want);	/* no body: all header */
	assert_string_equal(ops->uidl(md, 1), want);
	ops->close(md);
}

/* The event loop's open (nowait): never for an mbox, nothing touched. */
static void
test_nowait(void **state)
{
	struct fixture		*f = *state;
	struct store_params	 p = { .path = f->mbox, .uidl_format = "",
				    .nowait = true };
	struct maildrop		*md = NULL;
	struct dirent		*de;
	char			 err[512];
	DIR			*d;
	size_t			 n = 0;

	deliver(f->mbox, FL("a@b", "10") "x\n\n", strlen(FL("a@b", "10")) + 3);
	assert_int_equal(ops->open(&p, &md, err, sizeof(err)), STORE_AGAIN);
	assert_null(md);
	/* Nothing made beside it: no dotlock, lock file or index. */
	assert_non_null(d = opendir(f->tmp));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	assert_int_equal(n, 1);			/* the mbox itself */
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 1);
	ops->close(md);
}

static void
test_missing(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct dirent	*de;
	DIR		*d;
	size_t		 failed = 1;

	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 0);
	assert_int_equal(ops->total(md), 0);
	assert_int_equal(ops->commit(md, NULL, &failed), STORE_OK);
	assert_int_equal(failed, 0);
	assert_int_equal(access(f->mbox, F_OK), -1);
	/* At most a hidden lock file beside it. */
	assert_non_null(d = opendir(f->tmp));
	while ((de = readdir(d)) != NULL)
		assert_true(de->d_name[0] == '.');
	closedir(d);
	/* A file delivered meanwhile is not ours to touch. */
	md = must_open(f->mbox);
	deliver(f->mbox, FL("a@b", "10") "x\n\n", strlen(FL("a@b", "10")) + 3);
	assert_int_equal(ops->commit(md, (const uint8_t *)"", &failed),
	    STORE_OK);
	assert_file(f->mbox, FL("a@b", "10") "x\n\n",
	    strlen(FL("a@b", "10")) + 3);
}

static void
test_open_errors(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md = NULL;
	char		 path[256];

	/* An empty file: no messages. */
	write_file(f->mbox, "", 0);
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 0);
	ops->close(md);
	/* Not an mbox. */
	write_file(f->mbox, "Subject: x\n\nbody\n", 17);
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_PERM);
	assert_null(md);
	write_file(f->mbox, "\n" FL("a@b", "10"), 1 + strlen(FL("a@b", "10")));
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_PERM);
	/* The failed opens released the session lock. */
	write_file(f->mbox, FL("a@b", "10"), strlen(FL("a@b", "10")));
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 1);
	assert_int_equal(ops->size(md, 0), 0);
	ops->close(md);
	/* A directory. */
	snprintf(path, sizeof(path), "%s/dir", f->tmp);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(open_fmt(path, "", &md), STORE_PERM);
	assert_int_equal(open_fmt("", "", &md), STORE_PERM);
	assert_int_equal(open_fmt("/", "", &md), STORE_PERM);
	/* No directory: no lock. */
	snprintf(path, sizeof(path), "%s/nodir/user", f->tmp);
	assert_int_equal(open_fmt(path, "", &md), STORE_TEMP);
}

/* Delete some: exactly those go, the rest stays byte-identical. */
static void
test_commit(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct str	 box = { 0 };
	uint8_t		 del[T_N - 1];
	bool		 keep[T_N];
	const char	*u[T_N];
	char		*uc[T_N];
	size_t		 i, v, failed = 9, n;

	tricky_init();
	mbox_of(tricky, T_N, NULL, &box);
	write_file(f->mbox, box.p, box.len);
	/* Delete the first visible, one duplicate, the empty one, the last. */
	md = must_open(f->mbox);
	memset(del, 0, sizeof(del));
	for (i = 0, v = 0; i < T_N; i++) {
		keep[i] = true;
		if (tricky[i].hidden)
			continue;
		uc[v] = strdup(ops->uidl(md, v));
		if (i == T_INTERNAL || i == T_DUP1 || i == T_EMPTY ||
		    i == T_NOEOL) {
			del[v] = 1;
			keep[i] = false;
		}
		v++;
	}
	n = v;
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	assert_int_equal(failed, 0);
	mbox_of(tricky, T_N, keep, &box);
	assert_file(f->mbox, box.p, box.len);

	/* The rest keep their UIDLs (the second duplicate inherits). */
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), n - 4);
	for (i = 0, v = 0; i < n; i++) {
		if (del[i])
			continue;
		u[v] = ops->uidl(md, v);
		if (strcmp(u[v], uc[i]) != 0) {
			/* Only the surviving duplicate may change: to the
			 * deleted copy's id. */
			assert_string_equal(u[v], uc[i - 1]);
		}
		v++;
	}
	ops->close(md);
	for (i = 0; i < n; i++)
		free(uc[i]);
	str_free(&box);
	tricky_free();
}

/* No marks: nothing is touched, not even the inode. */
static void
test_commit_nothing(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct stat	 a, b;
	uint8_t		 del[2] = { 0, 0 };
	const char	*box = FL("a@b", "10") "x\n\n" FL("a@b", "11") "y\n";
	size_t		 failed = 5;

	write_file(f->mbox, box, strlen(box));
	assert_int_equal(stat(f->mbox, &a), 0);
	md = must_open(f->mbox);
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	assert_int_equal(failed, 0);
	md = must_open(f->mbox);
	assert_int_equal(ops->commit(md, NULL, NULL), STORE_OK);
	assert_int_equal(stat(f->mbox, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_file(f->mbox, box, strlen(box));
}

/* Mail delivered during the session survives the update. */
static void
test_append_survives(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct tmsg	 m[6];
	struct str	 box = { 0 }, got = { 0 };
	uint8_t		 del[4] = { 1, 0, 1, 0 };
	bool		 keep[6] = { false, true, false, true, true, true };
	char		*u1[4];
	size_t		 i, failed;

	for (i = 0; i < 6; i++)
		simple(&m[i], (int)i, "s");
	mbox_of(m, 4, NULL, &box);
	write_file(f->mbox, box.p, box.len);
	md = must_open(f->mbox);
	for (i = 0; i < 4; i++)
		u1[i] = strdup(ops->uidl(md, i));
	deliver(f->mbox, m[4].raw.p, m[4].raw.len);
	assert_int_equal(ops->count(md), 4);
	/* RETR still works after the append. */
	assert_int_equal(retr(md, 3, &got), STORE_OK);
	assert_int_equal(got.len, m[3].view.len);
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	mbox_of(m, 5, keep, &box);
	assert_file(f->mbox, box.p, box.len);

	/* UIDLs stay: earlier ones deleted, new ones appended. */
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 3);
	assert_string_equal(ops->uidl(md, 0), u1[1]);
	assert_string_equal(ops->uidl(md, 1), u1[3]);
	for (i = 0; i < 4; i++)
		assert_string_not_equal(ops->uidl(md, 2), u1[i]);
	u1[0] = (free(u1[0]), strdup(ops->uidl(md, 2)));
	ops->close(md);
	deliver(f->mbox, m[5].raw.p, m[5].raw.len);
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 4);
	assert_string_equal(ops->uidl(md, 0), u1[1]);
	assert_string_equal(ops->uidl(md, 1), u1[3]);
	assert_string_equal(ops->uidl(md, 2), u1[0]);
	assert_int_equal(retr(md, 3, &got), STORE_OK);
	assert_int_equal(got.len, m[5].view.len);
	assert_memory_equal(got.p, m[5].view.p, got.len);
	ops->close(md);
	for (i = 0; i < 4; i++)
		free(u1[i]);
	for (i = 0; i < 6; i++) {
		str_free(&m[i].raw);
		str_free(&m[i].view);
	}
	str_free(&box);
	str_free(&got);
}

/*
 * The last message without a final newline: what an MDA appends after it
 * starts with the newline it lacked; deleting it leaves that out. If
 * what follows continues its last line, the message grew: no update.
 */
static void
test_append_after_noeol(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	const char	*a = FL("a@b", "10") "a\n\n";
	const char	*b = FL("a@b", "11") "b";
	const char	*c = FL("a@b", "12") "c\n\n";
	uint8_t		 del[2] = { 0, 1 };
	struct str	 s = { 0 };
	size_t		 failed;

	str_adds(&s, a);
	str_adds(&s, b);
	write_file(f->mbox, s.p, s.len);
	md = must_open(f->mbox);
	deliver(f->mbox, "\n", 1);
	deliver(f->mbox, c, strlen(c));
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	s.len = 0;
	str_adds(&s, a);
	str_adds(&s, c);
	assert_file(f->mbox, s.p, s.len);

	s.len = 0;
	str_adds(&s, a);
	str_adds(&s, b);
	write_file(f->mbox, s.p, s.len);
	md = must_open(f->mbox);
	deliver(f->mbox, c, strlen(c));
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	assert_int_equal(failed, 1);
	str_adds(&s, c);
	assert_file(f->mbox, s.p, s.len);

	/* An MDA that puts blank lines before its From_: a pure append. */
	s.len = 0;
	str_adds(&s, a);
	str_adds(&s, FL("a@b", "11") "b\n\n");
	write_file(f->mbox, s.p, s.len);
	md = must_open(f->mbox);
	deliver(f->mbox, "\n\r\n", 3);
	deliver(f->mbox, c, strlen(c));
	assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
	s.len = 0;
	str_adds(&s, a);
	str_adds(&s, c);
	assert_file(f->mbox, s.p, s.len);
	str_free(&s);
}

/* An MUA renames a new mbox over ours: no update, reads are GONE. */
static void
test_rewrite_rename(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct store_reader *r;
	const char	*box = FL("a@b", "10") "a\n\n" FL("a@b", "11") "b\n\n";
	const char	*mua = FL("a@b", "11") "b\n\n";
	char		 other[256];
	uint8_t		 del[2] = { 0, 1 };
	size_t		 failed = 0;

	write_file(f->mbox, box, strlen(box));
	md = must_open(f->mbox);
	snprintf(other, sizeof(other), "%s/mutt-tmp", f->tmp);
	write_file(other, mua, strlen(mua));
	assert_int_equal(rename(other, f->mbox), 0);
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_GONE);
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	assert_int_equal(failed, 1);
	assert_file(f->mbox, mua, strlen(mua));

	/* Removed altogether. */
	write_file(f->mbox, box, strlen(box));
	md = must_open(f->mbox);
	assert_int_equal(unlink(f->mbox), 0);
	assert_int_equal(ops->msg_open(md, 1, &r), STORE_GONE);
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	assert_int_equal(access(f->mbox, F_OK), -1);
}

/* Rewritten in place (same inode): no update; reads fail or are GONE. */
static void
test_rewrite_inplace(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct store_reader *r;
	struct str	 got = { 0 };
	const char	*box = FL("a@b", "10") "aaaa\n\n" FL("a@b", "11")
	    "bbbb\n\n" FL("a@b", "12") "cccc\n\n";
	const char	*same = FL("a@b", "10") "aaaa\n\n" FL("a@b", "11")
	    "bXbb\n\n" FL("a@b", "12") "cccc\n\n";
	const char	*cut = FL("a@b", "11") "bbbb\n\n" FL("a@b", "12")
	    "cccc\n\n";
	uint8_t		 del[3] = { 0, 0, 1 };
	size_t		 failed = 0;
	char		 buf[64];
	int		 fd;

	/* Same size, one byte changed in a message that is kept. */
	write_file(f->mbox, box, strlen(box));
	md = must_open(f->mbox);
	fd = open(f->mbox, O_WRONLY | O_TRUNC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, same, strlen(same)), (ssize_t)strlen(same));
	close(fd);
	/* The separator is still there; the content check fails the read. */
	assert_int_equal(ops->msg_open(md, 1, &r), STORE_OK);
	while (ops->msg_read(r, buf, sizeof(buf)) > 0)
		;
	assert_int_equal(ops->msg_read(r, buf, sizeof(buf)), -1);
	ops->msg_close(r);
	assert_int_equal(retr(md, 0, &got), STORE_OK);	/* unchanged */
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	assert_int_equal(failed, 1);
	assert_file(f->mbox, same, strlen(same));

	/* Truncated and rewritten shorter (the first one expunged). */
	write_file(f->mbox, box, strlen(box));
	md = must_open(f->mbox);
	fd = open(f->mbox, O_WRONLY | O_TRUNC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, cut, strlen(cut)), (ssize_t)strlen(cut));
	close(fd);
	assert_int_equal(ops->msg_open(md, 0, &r), STORE_GONE);
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	assert_file(f->mbox, cut, strlen(cut));

	/* Rewritten with a message moved: the separator is not where it was. */
	write_file(f->mbox, box, strlen(box));
	md = must_open(f->mbox);
	fd = open(f->mbox, O_WRONLY | O_TRUNC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, cut, strlen(cut)), (ssize_t)strlen(cut));
	assert_int_equal(write(fd, box, strlen(box)), (ssize_t)strlen(box));
	close(fd);
	assert_int_equal(ops->msg_open(md, 1, &r), STORE_GONE);
	assert_int_equal(ops->commit(md, del, &failed), STORE_TEMP);
	str_free(&got);
}

/* The new file gets the old one's owner, group and mode. */
static void
test_owner_mode(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct stat	 st;
	const char	*box = FL("a@b", "10") "a\n\n" FL("a@b", "11") "b\n\n";
	static const mode_t modes[] = { 0600, 0640, 0660 };
	uint8_t		 del[2] = { 1, 0 };
	size_t		 i, failed;
	bool		 root = geteuid() == 0;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(f->mbox, box, strlen(box));
		assert_int_equal(chmod(f->mbox, modes[i]), 0);
		if (root)
			assert_int_equal(chown(f->mbox, 1234 + (uid_t)i,
			    5678 + (gid_t)i), 0);
		md = must_open(f->mbox);
		assert_int_equal(ops->commit(md, del, &failed), STORE_OK);
		assert_int_equal(stat(f->mbox, &st), 0);
		assert_int_equal(st.st_mode & 07777, modes[i]);
		if (root) {
			assert_int_equal(st.st_uid, 1234 + i);
			assert_int_equal(st.st_gid, 5678 + i);
		}
		assert_file(f->mbox, FL("a@b", "11") "b\n\n",
		    strlen(FL("a@b", "11")) + 3);
	}
}

/* Entries beginning with "tmp" after the dot: our temporary files. */
static size_t
count_tmp(const struct fixture *f)
{
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0;

	assert_non_null(d = opendir(f->tmp));
	while ((de = readdir(d)) != NULL)
		n += strstr(de->d_name, STORE_MBOX_TMP_SUFFIX) != NULL;
	closedir(d);
	return n;
}

/*
 * A write error (EFBIG past RLIMIT_FSIZE, in a child) leaves the old mbox
 * as it was and fails with STORE_TEMP.
 */
static void
test_write_failure(void **state)
{
	struct fixture	*f = *state;
	struct tmsg	 m[40];
	struct str	 box = { 0 };
	struct maildrop	*md;
	pid_t		 pid;
	int		 status;
	size_t		 i;

	for (i = 0; i < 40; i++)
		simple(&m[i], (int)i, "w");
	mbox_of(m, 40, NULL, &box);
	write_file(f->mbox, box.p, box.len);
	assert_true(box.len > 4096);

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct rlimit	 rl = { 4096, 4096 };
		uint8_t		 del[40] = { 1 };
		size_t		 failed = 0;
		enum store_err	 rv;

		signal(SIGXFSZ, SIG_IGN);	/* as main.c does */
		if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
			_exit(2);
		if (open_fmt(f->mbox, "", &md) != STORE_OK)
			_exit(3);
		rv = ops->commit(md, del, &failed);
		_exit(rv == STORE_TEMP && failed == 1 ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_file(f->mbox, box.p, box.len);
	assert_int_equal(count_tmp(f), 0);
	/* The child let the session lock go. */
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 40);
	ops->close(md);
	for (i = 0; i < 40; i++) {
		str_free(&m[i].raw);
		str_free(&m[i].view);
	}
	str_free(&box);
}

/* RFC 1939 section 4: one session at a time. */
static void
test_session_lock(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md, *md2 = NULL;
	char		 lock[256];
	struct stat	 st;

	write_file(f->mbox, FL("a@b", "10") "x\n", strlen(FL("a@b", "10")) + 2);
	md = must_open(f->mbox);
	assert_int_equal(open_fmt(f->mbox, "", &md2), STORE_INUSE);
	assert_null(md2);
	ops->close(md);
	md = must_open(f->mbox);
	assert_int_equal(open_fmt(f->mbox, "", &md2), STORE_INUSE);
	assert_int_equal(ops->commit(md, NULL, NULL), STORE_OK);
	md = must_open(f->mbox);
	ops->close(md);
	/* The lock file is hidden, beside the mbox, and stays. */
	snprintf(lock, sizeof(lock), "%s/.user%s", f->tmp,
	    STORE_MBOX_LOCK_SUFFIX);
	assert_int_equal(stat(lock, &st), 0);
	/* No MDA lock is left behind. */
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	assert_int_equal(access(lock, F_OK), -1);
}

static double
now_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fresh dotlock of another program: open waits, then fails TEMP. */
static void
test_dotlock_fresh(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md = NULL;
	char		 lock[256], live[32];
	uint8_t		 del[1] = { 1 };
	double		 t;

	write_file(f->mbox, FL("a@b", "10") "x\n", strlen(FL("a@b", "10")) + 2);
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	/* A running process's (our parent's) lock. */
	snprintf(live, sizeof(live), "%ld\n", (long)getppid());
	write_file(lock, live, strlen(live));
	store_mbox_set_lock_wait(300);
	t = now_s();
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_TEMP);
	assert_true(now_s() - t >= 0.29);
	assert_true(now_s() - t < 5);
	assert_int_equal(access(lock, F_OK), 0);	/* not ours */

	/* Nor is the update done while it is held. */
	assert_int_equal(unlink(lock), 0);
	md = must_open(f->mbox);
	write_file(lock, live, strlen(live));
	assert_int_equal(ops->commit(md, del, NULL), STORE_TEMP);
	assert_file(f->mbox, FL("a@b", "10") "x\n",
	    strlen(FL("a@b", "10")) + 2);
	/* Released: it goes through. */
	assert_int_equal(unlink(lock), 0);
	md = must_open(f->mbox);
	assert_int_equal(ops->commit(md, del, NULL), STORE_OK);
	assert_file(f->mbox, "", 0);
}

/* A dotlock untouched for over 5 minutes is stale and broken. */
static void
test_dotlock_stale(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct timeval	 tv[2];
	char		 lock[256];

	write_file(f->mbox, FL("a@b", "10") "x\n", strlen(FL("a@b", "10")) + 2);
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	write_file(lock, "4242\n", 5);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 600;
	tv[1] = tv[0];
	assert_int_equal(utimes(lock, tv), 0);
	store_mbox_set_lock_wait(300);
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 1);
	assert_int_equal(access(lock, F_OK), -1);
	ops->close(md);
}

/*
 * A dotlock naming a pid that is gone (a crashed delivery, a killed
 * evpop3d) is broken at once when its record is complete, and a bare pid
 * (perhaps still being written) once it is 2 seconds old; a live pid's,
 * or another host's, is not.
 */
static void
test_dotlock_dead_pid(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md = NULL;
	struct timeval	 tv[2];
	char		 lock[256], text[128], host[64];
	pid_t		 pid;
	int		 status;

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	write_file(f->mbox, FL("a@b", "10") "x\n", strlen(FL("a@b", "10")) + 2);
	snprintf(lock, sizeof(lock), "%s.lock", f->mbox);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 3;
	tv[1] = tv[0];
	store_mbox_set_lock_wait(300);

	/* A live pid (our parent's): waited for. */
	snprintf(text, sizeof(text), "%ld\n", (long)getppid());
	write_file(lock, text, strlen(text));
	assert_int_equal(utimes(lock, tv), 0);
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_TEMP);
	/* A dead one's bare pid, just written: perhaps half of it. */
	snprintf(text, sizeof(text), "%ld", (long)pid);
	write_file(lock, text, strlen(text));
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_TEMP);
	/* Just written but complete: broken at once, not after 2 s. */
	snprintf(text, sizeof(text), "%ld\n", (long)pid);
	write_file(lock, text, strlen(text));
	md = must_open(f->mbox);
	assert_int_equal(access(lock, F_OK), -1);
	ops->close(md);
	snprintf(text, sizeof(text), "%ld:%s", (long)pid, host);
	write_file(lock, text, strlen(text));
	md = must_open(f->mbox);
	assert_int_equal(access(lock, F_OK), -1);
	ops->close(md);
	/* Of another host (Dovecot's PID:HOST): waited for. */
	snprintf(text, sizeof(text), "%ld:no-such-host.example", (long)pid);
	write_file(lock, text, strlen(text));
	assert_int_equal(utimes(lock, tv), 0);
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_TEMP);
	/* Dead and 3 s old: broken. */
	snprintf(text, sizeof(text), "%ld", (long)pid);
	write_file(lock, text, strlen(text));
	assert_int_equal(utimes(lock, tv), 0);
	md = must_open(f->mbox);
	assert_int_equal(access(lock, F_OK), -1);
	ops->close(md);
	/*
	 * Our own pid: left by an earlier process that had it (a restart in
	 * a container gets the same pid); this one never holds a lock it
	 * waits for. Broken, not waited out for 5 minutes.
	 */
	snprintf(text, sizeof(text), "%ld:%s\n", (long)getpid(), host);
	write_file(lock, text, strlen(text));
	assert_int_equal(utimes(lock, tv), 0);
	md = must_open(f->mbox);
	assert_int_equal(access(lock, F_OK), -1);
	ops->close(md);
}

/* Another process's fcntl write lock (an MDA delivering) keeps us out. */
static void
test_fcntl_lock(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md = NULL;
	struct flock	 fl;
	int		 p[2], q[2], fd, status;
	char		 c;
	pid_t		 pid;

	write_file(f->mbox, FL("a@b", "10") "x\n", strlen(FL("a@b", "10")) + 2);
	assert_int_equal(pipe(p), 0);		/* child -> parent */
	assert_int_equal(pipe(q), 0);		/* parent -> child */
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		fd = open(f->mbox, O_RDWR);
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fd == -1 || fcntl(fd, F_SETLK, &fl) == -1)
			_exit(1);
		(void)!write(p[1], "L", 1);
		(void)!read(q[0], &c, 1);	/* until the parent is done */
		_exit(0);
	}
	assert_int_equal(read(p[0], &c, 1), 1);
	store_mbox_set_lock_wait(200);
	assert_int_equal(open_fmt(f->mbox, "", &md), STORE_TEMP);
	assert_int_equal(write(q[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	md = must_open(f->mbox);
	ops->close(md);
}

/* Temporary files of an update that died are removed at open. */
static void
test_stale_tmp(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct timeval	 tv[2];
	char		 dead[256], live[256], old[256];
	pid_t		 pid;
	int		 status;

	write_file(f->mbox, FL("a@b", "10") "x\n", strlen(FL("a@b", "10")) + 2);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	snprintf(dead, sizeof(dead), "%s/.user%s%ld.0", f->tmp,
	    STORE_MBOX_TMP_SUFFIX, (long)pid);
	snprintf(live, sizeof(live), "%s/.user%s%ld.0", f->tmp,
	    STORE_MBOX_TMP_SUFFIX, (long)getppid());
	snprintf(old, sizeof(old), "%s/.user%s%ld.1", f->tmp,
	    STORE_MBOX_TMP_SUFFIX, (long)getppid());
	write_file(dead, "partial", 7);
	write_file(live, "partial", 7);
	write_file(old, "partial", 7);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 7200;
	tv[1] = tv[0];
	assert_int_equal(utimes(old, tv), 0);
	md = must_open(f->mbox);
	assert_int_equal(access(dead, F_OK), -1);
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(access(live, F_OK), 0);
	ops->close(md);

	/*
	 * The directory is looked at once an hour by open(); an update
	 * looks at its own mbox's every time. Another mbox's leftovers of
	 * a dead process go at the next look at the directory.
	 */
	write_file(dead, "partial", 7);
	snprintf(old, sizeof(old), "%s/.other%s%ld.3", f->tmp,
	    STORE_MBOX_TMP_SUFFIX, (long)pid);
	write_file(old, "partial", 7);
	md = must_open(f->mbox);
	assert_int_equal(access(dead, F_OK), 0);
	assert_int_equal(ops->commit(md, (const uint8_t *)"\1", NULL),
	    STORE_OK);
	assert_int_equal(access(dead, F_OK), -1);
	assert_int_equal(access(old, F_OK), 0);		/* not its mbox */
	assert_int_equal(access(live, F_OK), 0);
	assert_file(f->mbox, "", 0);
}

/* X-UIDL use and fallbacks; duplicates; uidl_format with Dovecot's
 * X-UID and X-IMAPbase. */
static void
test_uidl_rules(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	const char	*box =
	    FL("a@b", "01") "X-IMAPbase: 1704099600 9\nX-UID: 1\n"
	    "X-UIDL: good-1\nSubject: a\n\n\n"
	    FL("a@b", "02") "X-UID: 2\nX-UIDL: twice\nSubject: b\n\n\n"
	    FL("a@b", "03") "X-UID: 3\nX-UIDL: twice\nSubject: c\n\n\n"
	    FL("a@b", "04") "X-UIDL: bad uidl\nSubject: d\n\n\n"
	    FL("a@b", "05") "Subject: e\n\n\n"
	    FL("a@b", "06") "X-UID: 3\nSubject: f\n\n\n"
	    FL("a@b", "07") "Subject: e\n\n\n"
	    FL("a@b", "08") "X-UIDL: 5a1ee5d2d2d6e4e4ae6e5b3c1d2e0b6e\n"
	    "Subject: h\n\n\n";
	char		 md5[8][33];
	char		 want[40];
	const char	*hdrs[8] = { "X-UIDL: good-1\nSubject: a\n\n",
	    "X-UIDL: twice\nSubject: b\n\n", "X-UIDL: twice\nSubject: c\n\n",
	    "X-UIDL: bad uidl\nSubject: d\n\n", "Subject: e\n\n",
	    "Subject: f\n\n", "Subject: e\n\n",
	    "X-UIDL: 5a1ee5d2d2d6e4e4ae6e5b3c1d2e0b6e\nSubject: h\n\n" };
	size_t		 i;

	for (i = 0; i < 8; i++)
		md5_hex(hdrs[i], strlen(hdrs[i]), md5[i]);
	write_file(f->mbox, box, strlen(box));

	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 8);
	assert_string_equal(ops->uidl(md, 0), "good-1");
	/* A shared X-UIDL is the first one's; the later one falls back. */
	assert_string_equal(ops->uidl(md, 1), "twice");
	assert_string_equal(ops->uidl(md, 2), md5[2]);
	assert_string_equal(ops->uidl(md, 3), md5[3]);	/* invalid X-UIDL */
	assert_string_equal(ops->uidl(md, 4), md5[4]);
	assert_string_equal(ops->uidl(md, 5), md5[5]);
	snprintf(want, sizeof(want), "%s-2", md5[4]);	/* identical header */
	assert_string_equal(ops->uidl(md, 6), want);
	assert_string_equal(ops->uidl(md, 7),
	    "5a1ee5d2d2d6e4e4ae6e5b3c1d2e0b6e");
	ops->close(md);

	/*
	 * Dovecot's default POP3 UIDL: %08Xu%08Xv (lower-case hex). An
	 * X-UIDL still wins (the issue: it is what a former server served).
	 */
	assert_int_equal(open_fmt(f->mbox, "%08Xu%08Xv", &md), STORE_OK);
	assert_string_equal(ops->uidl(md, 0), "good-1");
	assert_string_equal(ops->uidl(md, 1), "twice");
	assert_string_equal(ops->uidl(md, 2), "0000000365927f10");
	assert_string_equal(ops->uidl(md, 3), md5[3]);	/* no X-UID */
	assert_string_equal(ops->uidl(md, 4), md5[4]);
	assert_string_equal(ops->uidl(md, 5), md5[5]);	/* X-UID clash */
	assert_string_equal(ops->uidl(md, 6), want);
	ops->close(md);
	/* %m; and %u alone works without X-IMAPbase. */
	assert_int_equal(open_fmt(f->mbox, "m%m", &md), STORE_OK);
	snprintf(want, sizeof(want), "m%s", md5[4]);
	assert_string_equal(ops->uidl(md, 4), want);
	ops->close(md);
	assert_int_equal(open_fmt(f->mbox, "u%u", &md), STORE_OK);
	assert_string_equal(ops->uidl(md, 0), "good-1");
	assert_string_equal(ops->uidl(md, 2), "u3");
	assert_string_equal(ops->uidl(md, 5), md5[5]);	/* u3 taken */
	ops->close(md);
	/* %f names nothing in an mbox: the default. */
	assert_int_equal(open_fmt(f->mbox, "%f", &md), STORE_OK);
	assert_string_equal(ops->uidl(md, 0), "good-1");
	ops->close(md);
}

/*
 * Ids stay when mail with an X-UIDL an older message has is appended;
 * the pseudo message and X-IMAPbase count in the first entry only (mail
 * from outside must not hide itself or set UIDVALIDITY).
 */
static void
test_uidl_append_and_position(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	const char	*one = FL("a@b", "01") "X-UIDL: abc\nSubject: a\n\n\n";
	const char	*two = FL("a@b", "02") "X-UIDL: abc\nSubject: b\n\n\n";
	const char	*sneaky = FL("x@y", "03")
	    "X-IMAP: 1 1\nX-UID: 7\n"
	    "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\n"
	    "important mail\n\n";
	char		 buf[1024];

	write_file(f->mbox, one, strlen(one));
	md = must_open(f->mbox);
	assert_string_equal(ops->uidl(md, 0), "abc");
	ops->close(md);
	snprintf(buf, sizeof(buf), "%s%s%s", one, two, sneaky);
	write_file(f->mbox, buf, strlen(buf));
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), 3);		/* the third is mail */
	assert_string_equal(ops->uidl(md, 0), "abc");	/* unchanged */
	assert_string_not_equal(ops->uidl(md, 1), "abc");
	ops->close(md);
	/* Its X-IMAP is no UIDVALIDITY: %v has no value, the default id. */
	assert_int_equal(open_fmt(f->mbox, "%u.%v", &md), STORE_OK);
	assert_int_not_equal(strcmp(ops->uidl(md, 2), "7.1"), 0);
	ops->close(md);
}

/* Many messages: counts and ids, read at random. */
static void
test_many(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct str	 box = { 0 }, got = { 0 };
	struct tmsg	 m;
	size_t		 i, n = 3000;
	uint8_t		*del;

	for (i = 0; i < n; i++) {
		simple(&m, (int)i, "many");
		str_add(&box, m.raw.p, m.raw.len);
		str_free(&m.raw);
		str_free(&m.view);
	}
	write_file(f->mbox, box.p, box.len);
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), n);
	for (i = 0; i < 50; i++) {
		size_t k = rnd((unsigned)n);

		simple(&m, (int)k, "many");
		assert_int_equal(retr(md, k, &got), STORE_OK);
		assert_int_equal(got.len, m.view.len);
		assert_memory_equal(got.p, m.view.p, got.len);
		assert_int_equal(ops->size(md, k), wire_size(m.view.p,
		    m.view.len));
		str_free(&m.raw);
		str_free(&m.view);
	}
	/* Delete every other one. */
	del = calloc(n, 1);
	assert_non_null(del);
	for (i = 0; i < n; i += 2)
		del[i] = 1;
	assert_int_equal(ops->commit(md, del, NULL), STORE_OK);
	md = must_open(f->mbox);
	assert_int_equal(ops->count(md), n / 2);
	simple(&m, 1, "many");
	assert_int_equal(retr(md, 0, &got), STORE_OK);
	assert_memory_equal(got.p, m.view.p, m.view.len);
	ops->close(md);
	str_free(&m.raw);
	str_free(&m.view);
	free(del);
	str_free(&box);
	str_free(&got);
}

/* ------------------------------------------------------------ index cache */

/* What a client can see of a maildrop: LIST, UIDL and RETR of each. */
struct snap {
	size_t		 n;
	uint64_t	 total;
	uint64_t	*size;
	char		**uidl;
	struct str	*body;
	enum store_err	*rv;
};

static void
snap_take(struct maildrop *md, struct snap *s)
{
	size_t	 i;

	memset(s, 0, sizeof(*s));
	s->n = ops->count(md);
	s->total = ops->total(md);
	s->size = calloc(s->n + 1, sizeof(*s->size));
	s->uidl = calloc(s->n + 1, sizeof(*s->uidl));
	s->body = calloc(s->n + 1, sizeof(*s->body));
	s->rv = calloc(s->n + 1, sizeof(*s->rv));
	assert_true(s->size != NULL && s->uidl != NULL && s->body != NULL &&
	    s->rv != NULL);
	for (i = 0; i < s->n; i++) {
		s->size[i] = ops->size(md, i);
		assert_non_null(s->uidl[i] = strdup(ops->uidl(md, i)));
		s->rv[i] = retr(md, i, &s->body[i]);
	}
}

static void
snap_free(struct snap *s)
{
	size_t	 i;

	for (i = 0; i < s->n; i++) {
		free(s->uidl[i]);
		str_free(&s->body[i]);
	}
	free(s->size);
	free(s->uidl);
	free(s->body);
	free(s->rv);
}

static void
snap_equal(const struct snap *a, const struct snap *b)
{
	size_t	 i;

	assert_int_equal(a->n, b->n);
	assert_int_equal(a->total, b->total);
	for (i = 0; i < a->n; i++) {
		assert_int_equal(a->size[i], b->size[i]);
		assert_string_equal(a->uidl[i], b->uidl[i]);
		assert_int_equal(a->rv[i], b->rv[i]);
		assert_int_equal(a->body[i].len, b->body[i].len);
		assert_memory_equal(a->body[i].p, b->body[i].p,
		    a->body[i].len);
	}
}

/* The cache file of an mbox path. */
static void
ix_path(const char *mbox, char *buf, size_t len)
{
	const char	*slash = strrchr(mbox, '/');

	snprintf(buf, len, "%.*s/.%s.evpop3d-index", (int)(slash - mbox), mbox,
	    slash + 1);
}

/* A snapshot of path by a full parse: copied to DIR/ref, no cache. */
static void
snap_fresh(const struct fixture *f, const char *fmt, struct snap *s)
{
	struct maildrop	*md = NULL;
	char		 ref[160], ix[200];
	size_t		 len;
	char		*p = read_file(f->mbox, &len);

	snprintf(ref, sizeof(ref), "%s/ref", f->tmp);
	ix_path(ref, ix, sizeof(ix));
	(void)unlink(ix);
	if (p == NULL)
		(void)unlink(ref);
	else
		write_file(ref, p, len);
	free(p);
	assert_int_equal(open_fmt(ref, fmt, &md), STORE_OK);
	snap_take(md, s);
	ops->close(md);
	(void)unlink(ix);
}

/* Open f->mbox (with whatever cache there is) and snapshot it. */
static void
snap_open(const struct fixture *f, const char *fmt, struct snap *s)
{
	struct maildrop	*md = NULL;

	assert_int_equal(open_fmt(f->mbox, fmt, &md), STORE_OK);
	snap_take(md, s);
	ops->close(md);
}

/* Open with cache and by a full parse: the same? */
static void
check_same(const struct fixture *f, const char *fmt)
{
	struct snap	 a, b;

	snap_open(f, fmt, &a);
	snap_fresh(f, fmt, &b);
	snap_equal(&a, &b);
	snap_free(&a);
	snap_free(&b);
}

/* Append (as the MDA would, or anything at all) random bytes. */
static void
random_piece(struct str *out, unsigned k)
{
	struct tmsg	 m;

	switch (rnd(8)) {
	case 0:			/* a tricky entry (not the 2 MiB one) */
		do
			k = rnd(T_N);
		while (k == T_HUGE || k == T_PSEUDO);
		str_add(out, tricky[k].raw.p, tricky[k].raw.len);
		break;
	case 1:			/* more text for the last message */
		str_adds(out, rnd(2) ? "more text\n" : "no newline");
		break;
	case 2:			/* a separator right there */
		str_adds(out, FL("x@y", "20"));
		break;
	case 3:
		str_adds(out, rnd(2) ? "\n" : "\r\n");
		break;
	case 4:			/* a body line that looks like one */
		str_adds(out, "From nobody at all\n");
		break;
	default:
		simple(&m, (int)k, "app");
		str_add(out, m.raw.p, m.raw.len);
		str_free(&m.raw);
		str_free(&m.view);
		break;
	}
}

/*
 * For random mboxes and random appends (and the odd cut), the index from
 * the cache plus the scan of the rest is the full parse's: count, sizes,
 * UIDLs, RETR bytes.
 */
static void
test_ix_equivalence(void **state)
{
	struct fixture	*f = *state;
	static const char *const fmts[] = { "", "%v.%u", "%u" };
	struct str	 box = { 0 }, add = { 0 };
	const char	*fmt;
	char		 ix[200];
	size_t		 len, cut;
	char		*p;
	unsigned	 iter, step, i, used = 0;
	unsigned long	 loads;

	tricky_init();
	ix_path(f->mbox, ix, sizeof(ix));
	for (iter = 0; iter < 60; iter++) {
		fmt = fmts[rnd(3)];
		box.len = 0;
		str_add(&box, "", 0);
		if (rnd(3) == 0)
			str_add(&box, tricky[T_PSEUDO].raw.p,
			    tricky[T_PSEUDO].raw.len);
		else if (rnd(2) == 0)
			str_add(&box, tricky[T_INTERNAL].raw.p,
			    tricky[T_INTERNAL].raw.len);
		str_adds(&box, FL("first@x", "01") "Subject: s\n\nb\n\n");
		for (i = rnd(6); i > 0; i--)
			random_piece(&box, iter * 100 + i);
		write_file(f->mbox, box.p, box.len);
		(void)unlink(ix);
		check_same(f, fmt);
		for (step = 0; step < 4; step++) {
			if (rnd(6) == 0) {
				/* An MUA cut the file somewhere. */
				p = read_file(f->mbox, &len);
				cut = (size_t)(strchr(p, '\n') + 1 - p);
				cut += rnd((unsigned)(len - cut + 1));
				write_file(f->mbox, p, cut);
				free(p);
			}
			add.len = 0;
			str_add(&add, "", 0);
			for (i = 1 + rnd(3); i > 0; i--)
				random_piece(&add, iter * 100 + step * 10 + i);
			deliver(f->mbox, add.p, add.len);
			loads = store_mbox_ix_loads();
			check_same(f, fmt);
			used += store_mbox_ix_loads() > loads;
		}
	}
	/* The cache was loaded, most of the time. */
	assert_true(used > 60);
	str_free(&box);
	str_free(&add);
	tricky_free();
}

/* n simple messages: a file of about 180 * n bytes. */
static void
many_box(struct str *box, size_t n)
{
	struct tmsg	 m;
	size_t		 i;

	box->len = 0;
	str_add(box, "", 0);
	for (i = 0; i < n; i++) {
		simple(&m, (int)i, "ix");
		str_add(box, m.raw.p, m.raw.len);
		str_free(&m.raw);
		str_free(&m.view);
	}
}

/* Where message i's body line "body i" starts. */
static size_t
body_off(const struct str *box, size_t i)
{
	char	 pat[64];
	char	*q;

	snprintf(pat, sizeof(pat), "\n\nbody %zu\n", i);
	assert_non_null(q = memmem(box->p, box->len, pat, strlen(pat)));
	return (size_t)(q - box->p) + 2;
}

/* Reseal a cache file's checksum after an edit. */
static void
ix_reseal(char *p, size_t len)
{
	struct mbox_hash h;
	uint64_t	 sum;

	mbox_hash_init(&h);
	mbox_hash_update(&h, p, len - 8);
	sum = mbox_hash_final(&h);
	memcpy(p + len - 8, &sum, 8);
}

/*
 * A cache that is not right for the file is not used: the full parse
 * gives the right answer and writes it anew (the same bytes as a good
 * one). Truncated, flipped, another version, another inode, the mbox
 * changed in its first or last 64 KiB.
 */
static void
test_ix_corrupt(void **state)
{
	struct fixture	*f = *state;
	struct str	 box = { 0 }, mod = { 0 };
	struct snap	 a, b;
	struct stat	 st;
	char		 ix[200], tmp[200];
	char		*good, *bad, *p;
	size_t		 glen, len, i, n = 3000, off, kk;
	uint64_t	 v;

	many_box(&box, n);
	write_file(f->mbox, box.p, box.len);
	ix_path(f->mbox, ix, sizeof(ix));
	snap_fresh(f, "", &b);			/* the truth */
	snap_open(f, "", &a);
	snap_equal(&a, &b);
	snap_free(&a);
	assert_non_null(good = read_file(ix, &glen));
	assert_int_equal(stat(ix, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(glen > 72 + 8);

	/* Truncated anywhere, one byte flipped anywhere. */
	for (i = 0; i < 40; i++) {
		len = i < 20 ? rnd((unsigned)glen) : glen;
		bad = malloc(glen);
		assert_non_null(bad);
		memcpy(bad, good, glen);
		if (i >= 20)
			bad[rnd((unsigned)glen)] ^= (char)(1 + rnd(255));
		write_file(ix, bad, len);
		snap_open(f, "", &a);
		snap_equal(&a, &b);
		snap_free(&a);
		assert_file(ix, good, glen);	/* rebuilt */
		free(bad);
	}
	/* Another version; another file (sealed, so only that is wrong). */
	for (i = 0; i < 2; i++) {
		bad = malloc(glen);
		assert_non_null(bad);
		memcpy(bad, good, glen);
		off = i == 0 ? 8 : 24;		/* version, st_ino */
		memcpy(&v, bad + off, 8);
		v += 1;
		memcpy(bad + off, &v, 8);
		ix_reseal(bad, glen);
		write_file(ix, bad, glen);
		snap_open(f, "", &a);
		snap_equal(&a, &b);
		snap_free(&a);
		assert_file(ix, good, glen);
		free(bad);
	}
	snap_free(&b);

	/*
	 * Same size, changed near the start, near the cached end (the last
	 * message is not cached: change the one before), and the mbox
	 * replaced by a copy with its middle changed (another inode): a
	 * full parse each time (a ".ody" line is one octet more on the wire
	 * and another checksum: a trusted cache would show).
	 */
	for (i = 0; i < 3; i++) {
		write_file(f->mbox, box.p, box.len);
		(void)unlink(ix);
		snap_open(f, "", &a);		/* a good cache */
		snap_free(&a);
		assert_int_equal(access(ix, F_OK), 0);
		mod.len = 0;
		str_add(&mod, box.p, box.len);
		kk = i == 0 ? 3 : i == 1 ? n - 2 : n / 2;
		off = body_off(&box, kk);
		mod.p[off] = '.';
		if (i < 2) {
			/* in place, same inode */
			int fd = open(f->mbox, O_WRONLY);

			assert_true(fd != -1);
			assert_int_equal(pwrite(fd, ".", 1, (off_t)off), 1);
			close(fd);
		} else {
			snprintf(tmp, sizeof(tmp), "%s/new", f->tmp);
			write_file(tmp, mod.p, mod.len);
			assert_int_equal(rename(tmp, f->mbox), 0);
		}
		p = read_file(f->mbox, &len);
		assert_int_equal(len, mod.len);
		assert_memory_equal(p, mod.p, len);
		free(p);
		check_same(f, "");
		snap_open(f, "", &a);
		assert_int_equal(a.rv[kk], STORE_OK);
		assert_int_equal(a.size[kk], wire_size(a.body[kk].p,
		    a.body[kk].len));
		snap_free(&a);
	}
	free(good);
	str_free(&box);
	str_free(&mod);
}

/*
 * A same-size rewrite in the middle (not sampled): the cache is trusted,
 * but RETR of the changed message fails (never the wrong bytes), commit
 * deletes nothing, and either drops the cache, so the next open is right.
 */
static void
test_ix_middle(void **state)
{
	struct fixture	*f = *state;
	struct maildrop	*md;
	struct str	 box = { 0 }, got = { 0 };
	struct snap	 a, b;
	struct tmsg	 m;
	char		 ix[200];
	size_t		 n = 3000, k = n / 2, off, len, failed = 0;
	uint8_t		*del;
	char		*p;
	int		 fd, round;
	enum store_err	 rv;

	many_box(&box, n);
	ix_path(f->mbox, ix, sizeof(ix));
	del = calloc(n, 1);
	assert_non_null(del);
	for (round = 0; round < 2; round++) {
		write_file(f->mbox, box.p, box.len);
		(void)unlink(ix);
		md = must_open(f->mbox);
		ops->close(md);
		assert_int_equal(access(ix, F_OK), 0);
		/* ".ody": one octet more on the wire, not in the file. */
		off = body_off(&box, k);
		assert_true(off > 64 * 1024 && off < box.len - 64 * 1024);
		assert_true((fd = open(f->mbox, O_WRONLY)) != -1);
		assert_int_equal(pwrite(fd, ".", 1, (off_t)off), 1);
		close(fd);

		md = must_open(f->mbox);
		assert_int_equal(ops->count(md), n);
		/* The cache was trusted: the size is the old one. */
		simple(&m, (int)k, "ix");
		assert_int_equal(ops->size(md, k), wire_size(m.view.p,
		    m.view.len));
		str_free(&m.raw);
		str_free(&m.view);
		assert_int_equal(access(ix, F_OK), 0);
		if (round == 0) {
			rv = retr(md, k, &got);
			assert_true(rv == STORE_TEMP || rv == STORE_GONE);
			assert_int_equal(access(ix, F_OK), -1);
			/* Others are fine. */
			assert_int_equal(retr(md, k - 1, &got), STORE_OK);
			ops->close(md);
		} else {
			del[0] = del[k] = del[n - 1] = 1;
			assert_int_equal(ops->commit(md, del, &failed),
			    STORE_TEMP);
			assert_int_equal(failed, 3);
			p = read_file(f->mbox, &len);
			/* Nothing deleted. */
			assert_int_equal(len, box.len);
			free(p);
			assert_int_equal(access(ix, F_OK), -1);
		}
		/* The next open is right. */
		snap_open(f, "", &a);
		snap_fresh(f, "", &b);
		snap_equal(&a, &b);
		assert_int_equal(a.rv[k], STORE_OK);
		assert_int_equal(a.size[k], wire_size(a.body[k].p,
		    a.body[k].len));
		snap_free(&a);
		snap_free(&b);
	}
	free(del);
	str_free(&box);
	str_free(&got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_tricky, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidl_md5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nowait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_nothing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_append_survives, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_append_after_noeol, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_rename, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_inplace, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_mode, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_failure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_session_lock, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dotlock_fresh, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dotlock_stale, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dotlock_dead_pid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcntl_lock, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stale_tmp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidl_append_and_position,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_uidl_rules, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ix_equivalence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ix_corrupt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ix_middle, setup,
		    teardown),
	};

	/* The seed this file's random cases were written with. */
	rnd_state = 0x9e3779b97f4a7c15ULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
