/*
 * test_log: log_configure(). stderr to a file gets a timestamp on each
 * line; the same file named by $JOURNAL_STREAM gets "<N>" priority
 * prefixes instead; target and facility names parse; and switching the
 * configuration while other threads log never tears a line.
 */
#include <sys/stat.h>

#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/log.h"
#include "lib/proc.h"

static char	 path[] = "/tmp/test_log.XXXXXX";
static int	 saved = -1;
static char	 jstream[64];	/* "DEV:INO" of the capture file */

/* fd 2 to a new temporary file; $JOURNAL_STREAM names it if journal. */
static void
capture(bool journal)
{
	struct stat	 sb;
	int		 fd;

	strcpy(path, "/tmp/test_log.XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	snprintf(jstream, sizeof(jstream), "%llu:%llu",
	    (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino);
	if (journal)
		setenv("JOURNAL_STREAM", jstream, 1);
	else
		unsetenv("JOURNAL_STREAM");
	saved = dup(STDERR_FILENO);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Restore fd 2; the file's text (caller frees). */
static char *
captured(void)
{
	FILE	*fp;
	char	*buf;
	long	 len;

	dup2(saved, STDERR_FILENO);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	assert_non_null(fp = fopen(path, "r"));
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	assert_non_null(buf = malloc((size_t)len + 1));
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	unlink(path);
	return buf;
}

static void
assert_match(const char *text, const char *re)
{
	regex_t	 rx;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&rx, text, 0, NULL, 0) != 0)
		fail_msg("'%s' !~ /%s/", text, re);
	regfree(&rx);
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}" \
	"\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} "

static const struct log_params to_stderr = {
	.debug = true, .target = LOG_TARGET_STDERR, .facility = LOG_MAIL,
};

static void
test_file_gets_timestamps(void **state)
{
	char *out;

	(void)state;
	capture(false);
	log_configure(&to_stderr);
	log_debug("d");
	log_warnx("w");
	out = captured();
	assert_match(out, "^" STAMP "debug d\n" STAMP "warn w\n$");
	free(out);
}

static void
test_journal_stream_gets_priorities(void **state)
{
	char *out;

	(void)state;
	capture(true);
	log_configure(&to_stderr);
	log_debug("d");
	log_info("i");
	log_warnx("w");
	log_errorx("e");
	out = captured();
	assert_string_equal(out, "<7>debug d\n<6>info i\n<4>warn w\n"
	    "<3>error e\n");
	free(out);
	log_init(false);
}

static void
test_names(void **state)
{
	enum log_target	 t;
	int		 f;

	(void)state;
	assert_int_equal(log_target_parse("journald", &t), 0);
	assert_int_equal(t, LOG_TARGET_JOURNALD);
	assert_int_equal(log_target_parse("auto", &t), 0);
	assert_int_equal(t, LOG_TARGET_AUTO);
	assert_int_equal(log_target_parse("file", &t), -1);
	assert_int_equal(log_facility_parse("local7", &f), 0);
	assert_int_equal(f, LOG_LOCAL7);
	assert_int_equal(log_facility_parse("mail", &f), 0);
	assert_int_equal(f, LOG_MAIL);
	assert_int_equal(log_facility_parse("kern", &f), -1);
	assert_string_equal(log_target_name(LOG_TARGET_SYSLOG), "syslog");
}

#define NTHREADS	4
#define NLINES		2000

static void *
logger(void *arg)
{
	int i;

	for (i = 0; i < NLINES; i++)
		log_info("event=t thread=%d i=%d pad=%0200d", (int)(intptr_t)arg,
		    i, 0);
	return NULL;
}

/* Flip between the two stderr forms while threads log. */
static void
test_switch_while_logging(void **state)
{
	pthread_t	 th[NTHREADS];
	char		*out, *line, *next;
	size_t		 n = 0;
	int		 i;
	regex_t		 rx;

	(void)state;
	capture(true);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, logger,
		    (void *)(intptr_t)i), 0);
	for (i = 0; i < 200; i++) {
		if (i % 2)
			setenv("JOURNAL_STREAM", jstream, 1);
		else
			unsetenv("JOURNAL_STREAM");
		log_configure(&to_stderr);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	out = captured();
	assert_int_equal(regcomp(&rx, "^(<6>|" STAMP ")info event=t "
	    "thread=[0-9] i=[0-9]+ pad=0{200}$", REG_EXTENDED | REG_NOSUB),
	    0);
	for (line = out; *line != '\0'; line = next + 1, n++) {
		assert_non_null(next = strchr(line, '\n'));
		*next = '\0';
		if (regexec(&rx, line, 0, NULL, 0) != 0)
			fail_msg("torn line: '%s'", line);
	}
	regfree(&rx);
	assert_int_equal(n, NTHREADS * NLINES);
	free(out);
	log_init(false);
}

static void
session_line(uint64_t sess, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vsession(sess, fmt, ap);
	va_end(ap);
}

/*
 * A worker's lines say which worker: "worker=I " after the level and
 * the session. Last: a process stays a worker once it is one.
 */
static void
test_worker_tag(void **state)
{
	char *out;

	(void)state;
	capture(false);
	log_configure(&to_stderr);
	log_warnx("before");
	proc_set_worker(3, 4);
	log_warnx("w");
	session_line(0x1234, "event=x");
	out = captured();
	assert_match(out, "^" STAMP "warn before\n" STAMP "warn worker=3 w\n"
	    STAMP "info sess=0000000000001234 worker=3 event=x\n$");
	free(out);
	log_init(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_gets_timestamps),
		cmocka_unit_test(test_journal_stream_gets_priorities),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_switch_while_logging),
		cmocka_unit_test(test_worker_tag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
