/*
 * procstat: CPU and memory of a server process, from /proc (Linux).
 *
 * Used by the swarm to charge CPU time and resident memory to the server
 * under test, optionally including its descendants (forking servers).
 */
#ifndef SWARM_PROCSTAT_H
#define SWARM_PROCSTAT_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

struct procstat {
	/*
	 * utime+stime, plus (children=1) all live descendants' utime+stime
	 * and the reaped children's cutime+cstime.
	 */
	uint64_t	cpu_us;
	uint64_t	rss_bytes;	/* VmRSS summed over the same */
	uint64_t	pss_bytes;	/* Pss from smaps_rollup summed, or 0 */
	unsigned	nprocs;		/* processes counted */
};

/*
 * Sample pid (and, when children is true, every descendant found by walking
 * /proc/<pid>/task/<tid>/children or /proc/[0-9]*\/stat ppid). Returns 0, or
 * -1 with errno when pid itself is gone/unreadable. Reading smaps_rollup is
 * slower: with_pss=false skips it. Descendants that vanish during the walk
 * are skipped silently.
 */
int	 procstat_sample(pid_t pid, bool children, bool with_pss,
	    struct procstat *out);

#endif
