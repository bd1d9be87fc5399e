/*
 * linebuf: limits, CRLF and bare LF, lines split across reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "session/linebuf.h"

#define MAX	16

struct fixture {
	struct evbuffer	*in;
	struct linebuf	 lb;
	char		 line[MAX + 1];
	size_t		 len;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->in = evbuffer_new();
	linebuf_init(&f->lb, MAX);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	evbuffer_free(f->in);
	free(f);
	return 0;
}

static void
feed(struct fixture *f, const char *s)
{
	evbuffer_add(f->in, s, strlen(s));
}

static enum lb_result
next(struct fixture *f)
{
	return linebuf_read(&f->lb, f->in, f->line, &f->len);
}

static void
expect_line(struct fixture *f, const char *want)
{
	assert_int_equal(next(f), LB_LINE);
	assert_int_equal(f->len, strlen(want));
	assert_string_equal(f->line, want);
}

static void
test_crlf_and_lf(void **state)
{
	struct fixture *f = *state;

	feed(f, "STAT\r\nLIST 1\nNOOP\r\n");
	expect_line(f, "STAT");
	expect_line(f, "LIST 1");
	expect_line(f, "NOOP");
	assert_int_equal(next(f), LB_AGAIN);
	assert_int_equal(evbuffer_get_length(f->in), 0);
}

static void
test_empty_lines(void **state)
{
	struct fixture *f = *state;

	feed(f, "\r\n\n");
	expect_line(f, "");
	expect_line(f, "");
	assert_int_equal(next(f), LB_AGAIN);
}

static void
test_partial(void **state)
{
	struct fixture *f = *state;

	feed(f, "RE");
	assert_int_equal(next(f), LB_AGAIN);
	feed(f, "TR 1\r");
	assert_int_equal(next(f), LB_AGAIN);
	feed(f, "\n");
	expect_line(f, "RETR 1");
}

/* Every split point of a pipelined batch gives the same lines. */
static void
test_every_split(void **state)
{
	static const char	 batch[] = "USER a\r\nPASS b c\nSTAT\r\n\r\nQUIT\n";
	static const char	*want[] = { "USER a", "PASS b c", "STAT", "", "QUIT" };
	struct fixture		*f = *state;
	size_t			 split, i, got;

	for (split = 0; split <= sizeof(batch) - 1; split++) {
		got = 0;
		evbuffer_add(f->in, batch, split);
		while (next(f) == LB_LINE)
			assert_string_equal(f->line, want[got++]);
		evbuffer_add(f->in, batch + split, sizeof(batch) - 1 - split);
		while (next(f) == LB_LINE)
			assert_string_equal(f->line, want[got++]);
		assert_int_equal(got, 5);
		assert_int_equal(evbuffer_get_length(f->in), 0);
	}
	/*
	 * Every split into two chains of their own (references are never
	 * merged into one chain): a line whose LF is past the first chain
	 * takes the search; one wholly in the first chain does not.
	 */
	for (split = 0; split <= sizeof(batch) - 1; split++) {
		got = 0;
		evbuffer_add_reference(f->in, batch, split, NULL, NULL);
		evbuffer_add_reference(f->in, batch + split,
		    sizeof(batch) - 1 - split, NULL, NULL);
		while (next(f) == LB_LINE)
			assert_string_equal(f->line, want[got++]);
		assert_int_equal(got, 5);
		assert_int_equal(evbuffer_get_length(f->in), 0);
	}
	/* And byte by byte. */
	got = 0;
	for (i = 0; i < sizeof(batch) - 1; i++) {
		evbuffer_add(f->in, batch + i, 1);
		while (next(f) == LB_LINE)
			assert_string_equal(f->line, want[got++]);
	}
	assert_int_equal(got, 5);
}

static void
test_exact_limit(void **state)
{
	struct fixture	*f = *state;
	char		 max[MAX + 1];

	memset(max, 'x', MAX);
	max[MAX] = '\0';
	feed(f, max);
	feed(f, "\r\n");
	expect_line(f, max);
	feed(f, max);
	feed(f, "\n");
	expect_line(f, max);
}

/* A long line whose end is already buffered. */
static void
test_too_long_complete(void **state)
{
	struct fixture *f = *state;

	feed(f, "xxxxxxxxxxxxxxxxx\r\nNOOP\r\n");	/* 17 > MAX */
	assert_int_equal(next(f), LB_TOOLONG);
	expect_line(f, "NOOP");
}

/* A long line arriving in pieces is dropped as it comes, never stored. */
static void
test_too_long_streaming(void **state)
{
	struct fixture	*f = *state;
	int		 i;

	feed(f, "0123456789abcdefXY");
	assert_int_equal(next(f), LB_TOOLONG);
	assert_int_equal(evbuffer_get_length(f->in), 0);
	for (i = 0; i < 1000; i++) {
		feed(f, "more garbage without an end ");
		assert_int_equal(next(f), LB_AGAIN);
		assert_int_equal(evbuffer_get_length(f->in), 0);
	}
	feed(f, "tail\r\nSTAT\r\n");
	expect_line(f, "STAT");
	assert_int_equal(next(f), LB_AGAIN);
}

/* MAX octets then CR: the LF may still come; MAX+1 then no LF: too long. */
static void
test_cr_at_limit(void **state)
{
	struct fixture	*f = *state;
	char		 max[MAX + 2];

	memset(max, 'y', MAX);
	max[MAX] = '\r';
	max[MAX + 1] = '\0';
	feed(f, max);
	assert_int_equal(next(f), LB_AGAIN);
	feed(f, "\n");
	max[MAX] = '\0';
	expect_line(f, max);

	memset(max, 'z', MAX + 1);
	max[MAX + 1] = '\0';
	feed(f, max);
	assert_int_equal(next(f), LB_AGAIN);	/* could still be "...\r" */
	feed(f, "z");
	assert_int_equal(next(f), LB_TOOLONG);
}

/* Embedded NUL bytes come through with their real length. */
static void
test_nul_bytes(void **state)
{
	struct fixture *f = *state;

	evbuffer_add(f->in, "NO\0OP\r\n", 7);
	assert_int_equal(next(f), LB_LINE);
	assert_int_equal(f->len, 5);
	assert_memory_equal(f->line, "NO\0OP", 5);
}

/* One result of a line reader, for comparing two of them. */
struct result {
	enum lb_result	r;
	size_t		len;
	char		line[MAX + 1];
};

/* Every result the evbuffer reader gives now (until LB_AGAIN). */
static size_t
drain_read(struct linebuf *lb, struct evbuffer *in, struct result *out,
    size_t n)
{
	struct result	r;

	while ((r.r = linebuf_read(lb, in, r.line, &r.len)) != LB_AGAIN) {
		assert_true(n < 4096);
		if (r.r != LB_LINE)
			r.len = 0;
		out[n++] = r;
	}
	return n;
}

/*
 * linebuf_take() as the session uses it (a read is taken in place while
 * nothing is kept from the last; what is left, a line's start, is kept
 * in the evbuffer ahead of the next read) gives what linebuf_read() over
 * the same octets gives, for random octets split at random.
 */
static void
test_take_as_read(void **state)
{
	static const char	 alphabet[] = "ab.\r\n";
	char			 data[2048];
	struct result		*want, *got, r;
	size_t			 nw, ng, i, off, chunk;
	int			 round;

	(void)state;
	want = calloc(4096, sizeof(*want));
	got = calloc(4096, sizeof(*got));
	assert_true(want != NULL && got != NULL);
	srandom(7);
	for (round = 0; round < 2000; round++) {
		struct evbuffer	*a = evbuffer_new(), *b = evbuffer_new();
		struct linebuf	 la, lb;
		size_t		 len = (size_t)(random() % sizeof(data));

		/* Mostly short lines; sometimes a long run without LF. */
		for (i = 0; i < len; i++)
			data[i] = random() % 8 == 0 ? 'x' :
			    alphabet[random() % (sizeof(alphabet) - 1)];
		if (round % 5 == 0)
			for (i = 0; i + 1 < len && i < 3 * MAX; i++)
				data[i] = 'y';
		linebuf_init(&la, MAX);
		linebuf_init(&lb, MAX);
		nw = ng = 0;
		for (off = 0; off < len; off += chunk) {
			chunk = 1 + (size_t)(random() % (2 * MAX + 4));
			if (chunk > len - off)
				chunk = len - off;
			evbuffer_add(a, data + off, chunk);
			nw = drain_read(&la, a, want, nw);
			if (evbuffer_get_length(b) > 0) {
				evbuffer_add(b, data + off, chunk);
				ng = drain_read(&lb, b, got, ng);
				continue;
			}
			{
				const char	*p = data + off;
				size_t		 left = chunk;

				while ((r.r = linebuf_take(&lb, &p, &left,
				    r.line, &r.len)) != LB_AGAIN) {
					if (r.r != LB_LINE)
						r.len = 0;
					got[ng++] = r;
				}
				assert_true(left <= MAX + 1);
				evbuffer_add(b, p, left);
			}
		}
		assert_int_equal(ng, nw);
		for (i = 0; i < nw; i++) {
			assert_int_equal(got[i].r, want[i].r);
			assert_int_equal(got[i].len, want[i].len);
			assert_memory_equal(got[i].line, want[i].line,
			    want[i].len);
		}
		evbuffer_free(a);
		evbuffer_free(b);
	}
	free(want);
	free(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crlf_and_lf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exact_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_long_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_long_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cr_at_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_bytes, setup, teardown),
		cmocka_unit_test(test_take_as_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
