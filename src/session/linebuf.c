/*
 * linebuf: bounded line extraction (see linebuf.h).
 */
#include <string.h>

#include <event2/buffer.h>

#include "session/linebuf.h"

/*
 * A line of len octets copied to line, its LF dropped: drop a CR before
 * it too (CRLF, or a bare LF), and check the limit.
 */
static enum lb_result
linebuf_end(const struct linebuf *lb, char *line, size_t len, size_t *len_r)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > lb->max)
		return LB_TOOLONG;
	line[len] = '\0';
	*len_r = len;
	return LB_LINE;
}

void
linebuf_init(struct linebuf *lb, size_t max)
{
	lb->max = max;
	lb->discarding = false;
}

enum lb_result
linebuf_read(struct linebuf *lb, struct evbuffer *in, char *line, size_t *len_r)
{
	struct evbuffer_ptr	 eol;
	struct evbuffer_iovec	 v;
	const char		*nl;
	size_t			 avail, eol_len, len;

	for (;;) {
		/*
		 * The usual case: the whole line in the buffer's first
		 * chain, copied out and drained at once (a search, a remove
		 * and a drain, each through the evbuffer's callbacks, cost
		 * three times as much).
		 */
		if (!lb->discarding && evbuffer_peek(in, -1, NULL, &v, 1) >= 1 &&
		    (nl = memchr(v.iov_base, '\n', v.iov_len)) != NULL &&
		    (len = (size_t)(nl - (const char *)v.iov_base)) <=
		    lb->max + 1) {
			memcpy(line, v.iov_base, len);
			evbuffer_drain(in, len + 1);
			return linebuf_end(lb, line, len, len_r);
		}
		avail = evbuffer_get_length(in);
		if (avail == 0)
			return LB_AGAIN;

		/*
		 * The input buffer is bounded by the session's read
		 * watermark, so a search over all of it is cheap.
		 */
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (lb->discarding) {
			if (eol.pos < 0) {
				evbuffer_drain(in, avail);
				return LB_AGAIN;
			}
			evbuffer_drain(in, (size_t)eol.pos + eol_len);
			lb->discarding = false;
			continue;
		}

		if (eol.pos < 0) {
			if (avail <= lb->max + 1)	/* +1: a CR may wait for its LF */
				return LB_AGAIN;
			evbuffer_drain(in, avail);
			lb->discarding = true;
			return LB_TOOLONG;
		}

		len = (size_t)eol.pos;
		if (len > lb->max + 1) {
			evbuffer_drain(in, len + eol_len);
			return LB_TOOLONG;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		return linebuf_end(lb, line, len, len_r);
	}
}

enum lb_result
linebuf_take(struct linebuf *lb, const char **buf, size_t *len, char *line,
    size_t *len_r)
{
	const char	*nl;
	size_t		 n;

	for (;;) {
		if (*len == 0)
			return LB_AGAIN;
		nl = memchr(*buf, '\n', *len);
		if (lb->discarding) {
			if (nl == NULL) {
				*buf += *len;
				*len = 0;
				return LB_AGAIN;
			}
			n = (size_t)(nl - *buf) + 1;
			*buf += n;
			*len -= n;
			lb->discarding = false;
			continue;
		}
		if (nl == NULL) {
			if (*len <= lb->max + 1)	/* +1: a CR may wait for its LF */
				return LB_AGAIN;
			*buf += *len;
			*len = 0;
			lb->discarding = true;
			return LB_TOOLONG;
		}
		n = (size_t)(nl - *buf);
		*buf += n + 1;
		*len -= n + 1;
		if (n > lb->max + 1)
			return LB_TOOLONG;
		memcpy(line, nl - n, n);
		return linebuf_end(lb, line, n, len_r);
	}
}
