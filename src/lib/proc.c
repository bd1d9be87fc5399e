/*
 * proc: which worker process this is (see proc.h).
 */
#include "lib/proc.h"

static unsigned	proc_index;
static unsigned	proc_count = 1;

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

void
proc_set_worker(unsigned index, unsigned count)
{
	proc_count = count > 0 ? count : 1;
	proc_index = index < proc_count ? index : 0;
}
