/*
 * workers: the workers' answers merged as the supervisor gives them
 * (src/workers.c): metrics summed sample by sample, process families
 * left out; who's summary one line a user; kick's counts added up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>

#include "net/supervise.h"
#include "workers.h"

/* Two answers with the given lines (NULL: the worker did not answer). */
static void
answers(struct supervise_answer a[2], const char *w0, const char *w1)
{
	const char	*text[2] = { w0, w1 };
	size_t		 i;

	memset(a, 0, 2 * sizeof(*a));
	for (i = 0; i < 2; i++) {
		a[i].lines = evbuffer_new();
		assert_non_null(a[i].lines);
		a[i].ok = text[i] != NULL;
		if (text[i] != NULL)
			evbuffer_add(a[i].lines, text[i], strlen(text[i]));
	}
}

static char *
text_of(struct evbuffer *b)
{
	size_t	 n = evbuffer_get_length(b);
	char	*s = calloc(1, n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	return s;
}

static void
answers_free(struct supervise_answer a[2])
{
	evbuffer_free(a[0].lines);
	evbuffer_free(a[1].lines);
}

static void
test_metrics_summed(void **state)
{
	struct supervise_answer	 a[2];
	struct evbuffer		*out = evbuffer_new();
	char			*s;

	(void)state;
	answers(a,
	    "# HELP evpop3d_build_info Always 1.\n"
	    "# TYPE evpop3d_build_info gauge\n"
	    "evpop3d_build_info{version=\"0.1.0\"} 1\n"
	    "# HELP evpop3d_logins_total Successful logins.\n"
	    "# TYPE evpop3d_logins_total counter\n"
	    "evpop3d_logins_total 3\n"
	    "# HELP evpop3d_x_seconds A histogram.\n"
	    "# TYPE evpop3d_x_seconds histogram\n"
	    "evpop3d_x_seconds_bucket{le=\"0.1\"} 1\n"
	    "evpop3d_x_seconds_bucket{le=\"+Inf\"} 2\n"
	    "evpop3d_x_seconds_sum 0.25\n"
	    "evpop3d_x_seconds_count 2\n"
	    "# HELP evpop3d_ended_total By reason.\n"
	    "# TYPE evpop3d_ended_total counter\n"
	    "evpop3d_ended_total{reason=\"quit\"} 5\n",
	    "# HELP evpop3d_build_info Always 1.\n"
	    "# TYPE evpop3d_build_info gauge\n"
	    "evpop3d_build_info{version=\"0.1.0\"} 1\n"
	    "# HELP evpop3d_logins_total Successful logins.\n"
	    "# TYPE evpop3d_logins_total counter\n"
	    "evpop3d_logins_total 4\n"
	    "# HELP evpop3d_x_seconds A histogram.\n"
	    "# TYPE evpop3d_x_seconds histogram\n"
	    "evpop3d_x_seconds_bucket{le=\"0.1\"} 0\n"
	    "evpop3d_x_seconds_bucket{le=\"+Inf\"} 1\n"
	    "evpop3d_x_seconds_sum 0.5\n"
	    "evpop3d_x_seconds_count 1\n"
	    "# HELP evpop3d_ended_total By reason.\n"
	    "# TYPE evpop3d_ended_total counter\n"
	    "evpop3d_ended_total{reason=\"idle\"} 2\n");
	workers_merge_metrics(a, 2, out);
	s = text_of(out);
	assert_string_equal(s,
	    "# HELP evpop3d_logins_total Successful logins.\n"
	    "# TYPE evpop3d_logins_total counter\n"
	    "evpop3d_logins_total 7\n"
	    "# HELP evpop3d_x_seconds A histogram.\n"
	    "# TYPE evpop3d_x_seconds histogram\n"
	    "evpop3d_x_seconds_bucket{le=\"0.1\"} 1\n"
	    "evpop3d_x_seconds_bucket{le=\"+Inf\"} 3\n"
	    "evpop3d_x_seconds_sum 0.75\n"
	    "evpop3d_x_seconds_count 3\n"
	    "# HELP evpop3d_ended_total By reason.\n"
	    "# TYPE evpop3d_ended_total counter\n"
	    "evpop3d_ended_total{reason=\"quit\"} 5\n"
	    "evpop3d_ended_total{reason=\"idle\"} 2\n");
	free(s);
	answers_free(a);
	evbuffer_free(out);
}

static void
test_who_summary_one_line_a_user(void **state)
{
	struct supervise_answer	 a[2];
	struct evbuffer		*out = evbuffer_new();
	char			*s;

	(void)state;
	answers(a,
	    "bob 1 (192.0.2.1)\n"
	    "\"odd (name) x\" 1 (192.0.2.9)\n",
	    "alice 2 (192.0.2.7 192.0.2.8)\n"
	    "bob 2 (192.0.2.2 192.0.2.3)\n");
	assert_int_equal(workers_merge_who(a, 2, false, out), 3);
	s = text_of(out);
	assert_string_equal(s,
	    "\"odd (name) x\" 1 (192.0.2.9)\n"
	    "alice 2 (192.0.2.7 192.0.2.8)\n"
	    "bob 3 (192.0.2.1 192.0.2.2 192.0.2.3)\n");
	free(s);
	answers_free(a);
	evbuffer_free(out);
}

static void
test_who_verbose_one_header(void **state)
{
	struct supervise_answer	 a[2];
	struct evbuffer		*out = evbuffer_new();
	char			*s;

	(void)state;
	answers(a,
	    "ID USER RIP LIP STATE LOGIN_S CONNECTED_S RETR TOP\n"
	    "0000000000000002 bob 1 2 T 1 1 0 0\n",
	    NULL);
	assert_int_equal(workers_merge_who(a, 2, true, out), 1);
	s = text_of(out);
	assert_string_equal(s,
	    "ID USER RIP LIP STATE LOGIN_S CONNECTED_S RETR TOP\n"
	    "0000000000000002 bob 1 2 T 1 1 0 0\n");
	free(s);
	answers_free(a);
	evbuffer_free(out);
}

static void
test_kick_summed(void **state)
{
	struct supervise_answer	a[2];
	size_t			kicked, updating;

	(void)state;
	answers(a, "kicked 2 session(s) of bob\n",
	    "kicked 1 session(s) of bob\n"
	    "1 session(s) of bob in UPDATE close when it is done\n");
	a[0].ok = true;
	workers_merge_kick(a, 2, &kicked, &updating);
	assert_int_equal(kicked, 3);
	assert_int_equal(updating, 1);
	answers_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_summed),
		cmocka_unit_test(test_who_summary_one_line_a_user),
		cmocka_unit_test(test_who_verbose_one_header),
		cmocka_unit_test(test_kick_summed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
