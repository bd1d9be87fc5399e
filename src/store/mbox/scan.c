/*
 * scan: the index, an entry per message, made by open() in one read of
 * the mbox through the separator scanner and the client-view filter
 * (mbox_parse.h).
 *
 * Index. open() reads the file once, sequentially with read(2) (never
 * mmap: another program may truncate the file, and a mapping would
 * SIGBUS), and keeps per message: offsets, the wire size of what the
 * client sees, a checksum of the raw entry, and its UIDL (72 bytes, the
 * 33-byte hex MD5 of its header, and any X-UIDL or formatted id). The
 * size comes from the same filter (mbox_filter) that msg_read() streams
 * through, so LIST and RETR always agree.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/fileio.h"
#include "lib/wire.h"
#include "store/mbox/mbox_int.h"
#include "store/store.h"

#define MB_SCAN_BUF	(1024 * 1024)	/* read size of the index scan */
#define MB_FILTER_OUT	(64 * 1024)	/* filter output while counting */
#define MB_MSGS_INIT	64

struct mb_scan {
	struct mb		*mb;
	struct mbox_filter	 f;
	struct mbox_hdr_info	 info;
	struct wire_enc		 we;
	struct mbox_hash	 h;
	EVP_MD_CTX		*md5;
	EVP_MD			*md5_alg;	/* fetched once per scan */
	uint64_t		 len;		/* message bytes so far */
	bool			 sep_eol;	/* the separator ends in '\n' */
	char			*out;		/* MB_FILTER_OUT */
	int			 error;		/* errno of a failed callback */
};

static int
mb_scan_sep(void *arg, uint64_t off, const char *line, size_t len)
{
	struct mb_scan		*s = arg;
	struct mb		*mb = s->mb;
	struct mb_msg		*m;
	size_t			 ncap;

	if (mb->nmsgs == mb->msgs_cap) {
		ncap = mb->msgs_cap == 0 ? MB_MSGS_INIT : mb->msgs_cap * 2;
		if (ncap > UINT32_MAX) {
			s->error = EFBIG;
			return -1;
		}
		if ((m = reallocarray(mb->msgs, ncap, sizeof(*m))) == NULL) {
			s->error = errno;
			return -1;
		}
		mb->msgs = m;
		mb->msgs_cap = ncap;
	}
	m = &mb->msgs[mb->nmsgs];
	memset(m, 0, sizeof(*m));
	m->from_off = off;
	m->from_len = (uint32_t)len;
	m->from_hash = (uint32_t)mbox_hash_buf(line, len);

	mbox_hash_init(&s->h);
	mbox_hash_update(&s->h, line, len);
	s->sep_eol = len > 0 && line[len - 1] == '\n';
	mbox_filter_init(&s->f, &s->info);
	wire_enc_init(&s->we, -1);
	s->len = 0;
	if (EVP_DigestInit_ex(s->md5, s->md5_alg, NULL) != 1) {
		s->error = ENOMEM;
		return -1;
	}
	return 0;
}

/* Run message bytes through the filter: wire size, header MD5. */
static int
mb_scan_filter(struct mb_scan *s, const char *p, size_t n, bool eof)
{
	size_t	 used, olen, hlen;

	while (n > 0 || (eof && !mbox_filter_done(&s->f))) {
		used = mbox_filter_run(&s->f, p, n, eof, s->out, MB_FILTER_OUT,
		    &olen, &hlen);
		p += used;
		n -= used;
		if (hlen > 0 && EVP_DigestUpdate(s->md5, s->out, hlen) != 1) {
			s->error = ENOMEM;
			return -1;
		}
		if (olen > 0)
			wire_enc_feed(&s->we, s->out, olen, NULL);
	}
	return 0;
}

static int
mb_scan_data(void *arg, const char *p, size_t n)
{
	struct mb_scan	*s = arg;

	mbox_hash_update(&s->h, p, n);
	s->len += n;
	return mb_scan_filter(s, p, n, false);
}

static int
mb_scan_end(void *arg, const char *term, size_t n)
{
	struct mb_scan		*s = arg;
	struct mb		*mb = s->mb;
	struct mb_msg		*m = &mb->msgs[mb->nmsgs];
	unsigned char		 dig[EVP_MAX_MD_SIZE];
	char			 hx[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int		 dlen;

	mbox_hash_update(&s->h, term, n);
	if (mb_scan_filter(s, "", 0, true) == -1)
		return -1;
	wire_enc_finish(&s->we, NULL);
	m->size = s->we.octets;
	m->end_off = m->from_off + m->from_len + s->len;
	m->hash = mbox_hash_final(&s->h);
	m->no_eol = n == 0 && (s->len > 0 || !s->sep_eol);

	if (EVP_DigestFinal_ex(s->md5, dig, &dlen) != 1) {
		s->error = ENOMEM;
		return -1;
	}
	store_hex(dig, dlen, hx);
	if ((m->md5 = arena_strndup(&mb->arena, hx, 2 * dlen)) == NULL)
		goto nomem;
	if (s->info.xuidl_valid && (m->xuidl = arena_strndup(&mb->arena,
	    s->info.xuidl, strlen(s->info.xuidl))) == NULL)
		goto nomem;
	m->has_xuid = s->info.has_xuid;
	m->xuid = s->info.xuid;
	/*
	 * The pseudo message and X-IMAPbase count in the first entry only,
	 * as in Dovecot (mbox-sync-parse.c): anywhere else they came with
	 * mail from outside, which must not hide itself or set UIDVALIDITY.
	 */
	if (mb->nmsgs == 0) {
		m->hidden = s->info.pseudo;
		mb->has_uidvalidity = s->info.has_base;
		mb->uidvalidity = s->info.uidvalidity;
	}
	mb->nmsgs++;
	return 0;
nomem:
	s->error = ENOMEM;
	return -1;
}

/*
 * Read the file from start (0, or a separator line: the index cache's
 * end) to EOF through the scanner, appending to mb->msgs. From start > 0
 * without a separator line there, *nosep_r is set and nothing was added.
 */
enum store_err
mb_index(struct mb *mb, int fd, uint64_t start, bool *nosep_r, char *err,
    size_t errlen)
{
	static const struct mbox_scan_cb cb0 = {
		.sep = mb_scan_sep, .data = mb_scan_data, .end = mb_scan_end,
	};
	struct mbox_scan_cb	 cb = cb0;
	struct mbox_scan	 sc;
	struct mb_scan		 s;
	enum mbox_scan_res	 res;
	enum store_err		 rv = STORE_OK;
	char			*buf;
	size_t			 have = 0, used;
	ssize_t			 n;

	*nosep_r = false;
	memset(&s, 0, sizeof(s));
	s.mb = mb;
	if (lseek(fd, (off_t)start, SEEK_SET) == -1)
		return store_fail(errno, err, errlen, "lseek", mb->path);
	buf = malloc(MB_SCAN_BUF + MBOX_SCAN_KEEP);
	s.out = malloc(MB_FILTER_OUT);
	s.md5 = EVP_MD_CTX_new();
	s.md5_alg = EVP_MD_fetch(NULL, "MD5", NULL);
	if (buf == NULL || s.out == NULL || s.md5 == NULL ||
	    s.md5_alg == NULL) {
		rv = store_fail(ENOMEM, err, errlen, "mbox", mb->path);
		goto done;
	}
	cb.arg = &s;
	mbox_scan_init(&sc, &cb);
	sc.off = start;
	(void)posix_fadvise(fd, (off_t)start, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		if ((n = fio_read(fd, buf + have, MB_SCAN_BUF)) == -1) {
			rv = store_fail(errno, err, errlen, "read", mb->path);
			goto done;
		}
		have += (size_t)n;
		res = mbox_scan_feed(&sc, buf, have, n == 0, &used);
		if (res == MBOX_SCAN_NOTMBOX && start > 0) {
			*nosep_r = true;
			goto done;
		}
		if (res == MBOX_SCAN_NOTMBOX) {
			snprintf(err, errlen, "mbox %s: not an mbox file",
			    mb->path);
			rv = STORE_PERM;
			goto done;
		}
		if (res == MBOX_SCAN_STOPPED) {
			rv = store_fail(s.error, err, errlen, "mbox", mb->path);
			goto done;
		}
		if (n == 0)
			break;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	if (start > 0 && !sc.started) {
		*nosep_r = true;		/* cut at the cache's end */
		goto done;
	}
	mb->end = sc.off;
done:
	EVP_MD_CTX_free(s.md5);
	EVP_MD_free(s.md5_alg);
	free(s.out);
	free(buf);
	return rv;
}

/* Back to no index at all (a cache that did not fit the file). */
void
mb_index_reset(struct mb *mb)
{
	arena_free(&mb->arena);
	free(mb->msgs);
	mb->msgs = NULL;
	mb->nmsgs = mb->msgs_cap = 0;
	mb->has_uidvalidity = 0;
	mb->uidvalidity = 0;
	mb->ix_end = 0;
}
