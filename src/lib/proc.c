/*
 * proc: which serving process this is (proc.h).
 */
#include <stdio.h>

#include "lib/proc.h"

static unsigned	proc_index;
static unsigned	proc_count = 1;
static bool	proc_worker;
/* "worker=I ", made once: it starts every log line of a worker. */
static char	proc_tag[24];
static size_t	proc_tag_len;

void
proc_set_worker(unsigned index, unsigned count)
{
	int n;

	proc_index = index;
	proc_count = count > 0 ? count : 1;
	proc_worker = true;
	n = snprintf(proc_tag, sizeof(proc_tag), "worker=%u ", index);
	proc_tag_len = n > 0 && (size_t)n < sizeof(proc_tag) ? (size_t)n : 0;
}

const char *
proc_log_tag(size_t *len)
{
	*len = proc_tag_len;
	return proc_tag;
}

unsigned
proc_worker_index(void)
{
	return proc_index;
}

unsigned
proc_worker_count(void)
{
	return proc_count;
}

bool
proc_is_worker(void)
{
	return proc_worker;
}
