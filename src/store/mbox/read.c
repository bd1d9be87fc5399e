/*
 * read: msg_open(), msg_read(), msg_close(): a message as the
 * client sees it, read back through the filter and checked.
 *
 * Reading (msg_open/msg_read, on the event loop) costs an open(), an
 * fstat() and a pread() of the separator line: a file replaced (another
 * inode), cut below the indexed end, or without the same separator line
 * at the message's offset is STORE_GONE. The message is then read with
 * pread(); the raw entry's checksum is checked at its end, and a mismatch
 * fails the read (the session closes the connection rather than end a
 * message that changed under it). No descriptor is held while no message
 * is being read.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/mbox/mbox_int.h"
#include "store/store.h"

/*
 * Cheap, on the loop: the file is the indexed one and message i's
 * separator line is still where it was (else another program rewrote
 * the mbox: STORE_GONE).
 */
enum store_err
mb_msg_open(struct maildrop *base, size_t i, struct store_reader **r_r)
{
	struct mb		*mb = (struct mb *)base;
	struct mb_reader	*r;
	struct mb_msg		*m;
	struct stat		 st;
	char			 line[MBOX_FROM_MAX + 1];
	enum store_err		 rv = STORE_GONE;
	int			 fd;

	*r_r = NULL;
	if (i >= mb->nvis)
		return STORE_GONE;
	m = mb_vis(mb, i);
	fd = open(mb->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT ? STORE_GONE : store_errno(errno);
	if (fstat(fd, &st) == -1) {
		rv = store_errno(errno);
		goto fail;
	}
	if (st.st_dev != mb->dev || st.st_ino != mb->ino ||
	    (uint64_t)st.st_size < mb->end)
		goto fail;
	/* The separator line, and the '\n' before it. */
	if (m->from_off > 0) {
		if (mb_pread(fd, line, m->from_len + 1, m->from_off - 1) == -1)
			goto fail_io;
		if (line[0] != '\n')
			goto fail;
	} else if (mb_pread(fd, line + 1, m->from_len, 0) == -1)
		goto fail_io;
	if ((uint32_t)mbox_hash_buf(line + 1, m->from_len) != m->from_hash)
		goto fail;

	if ((r = malloc(sizeof(*r))) == NULL) {
		rv = STORE_TEMP;
		goto fail;
	}
	r->base.ops = mb->base.ops;
	r->mb = mb;
	r->fd = fd;
	r->pos = m->from_off + m->from_len;
	r->end = m->end_off;
	r->entry_end = mb_entry_end(mb, (size_t)(m - mb->msgs));
	r->want = m->hash;
	mbox_hash_init(&r->h);
	mbox_hash_update(&r->h, line + 1, m->from_len);
	mbox_filter_init(&r->f, NULL);
	r->rpos = r->rlen = 0;
	*r_r = &r->base;
	return STORE_OK;
fail_io:
	rv = errno == ESTALE ? STORE_GONE : store_errno(errno);
fail:
	close(fd);
	if (rv == STORE_GONE)
		mb_ix_drop(mb);		/* the next login scans it all */
	return rv;
}

ssize_t
mb_msg_read(struct store_reader *base, void *buf, size_t len)
{
	struct mb_reader	*r = (struct mb_reader *)base;
	size_t			 want, content, used, out;
	uint64_t		 left;

	for (;;) {
		if (r->rpos == r->rlen && r->pos < r->entry_end) {
			left = r->entry_end - r->pos;
			want = left < sizeof(r->raw) ? (size_t)left :
			    sizeof(r->raw);
			if (mb_pread(r->fd, r->raw, want, r->pos) == -1) {
				if (errno == ESTALE)
					mb_ix_drop(r->mb);	/* cut */
				return -1;
			}
			mbox_hash_update(&r->h, r->raw, want);
			content = want;
			if (r->pos >= r->end)
				content = 0;
			else if (r->end - r->pos < want)
				content = (size_t)(r->end - r->pos);
			r->rpos = 0;
			r->rlen = content;
			r->pos += want;
		}
		used = mbox_filter_run(&r->f, r->raw + r->rpos,
		    r->rlen - r->rpos, r->pos >= r->end, buf, len, &out, NULL);
		r->rpos += used;
		if (out > 0)
			return (ssize_t)out;
		if (mbox_filter_done(&r->f) && r->pos >= r->entry_end) {
			/* The whole entry was read: is it the indexed one? */
			if (mbox_hash_final(&r->h) != r->want) {
				mb_ix_drop(r->mb);
				errno = ESTALE;
				return -1;
			}
			return 0;
		}
	}
}

void
mb_msg_close(struct store_reader *base)
{
	struct mb_reader	*r = (struct mb_reader *)base;

	if (r == NULL)
		return;
	close(r->fd);
	free(r);
}
