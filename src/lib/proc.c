/*
 * proc: which serving process this is (proc.h).
 */
#include "lib/proc.h"

static unsigned	proc_index;
static unsigned	proc_count = 1;
static bool	proc_worker;

void
proc_set_worker(unsigned index, unsigned count)
{
	proc_index = index;
	proc_count = count > 0 ? count : 1;
	proc_worker = true;
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
