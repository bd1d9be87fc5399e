/*
 * procstat: CPU and memory of a process tree, from /proc (see procstat.h).
 *
 * Per process we read /proc/<pid>/stat (proc(5)): utime, stime, cutime,
 * cstime in clock ticks and rss in pages (the same counter as statm's
 * resident field and status's VmRSS), and, on request, the Pss line of
 * /proc/<pid>/smaps_rollup.
 *
 * With children, the tree is the pid plus every process reachable through
 * /proc/<p>/task/<tid>/children (CONFIG_PROC_CHILDREN); where those files
 * do not exist we scan /proc/[0-9]* once for parent pids instead.  CPU for
 * a tree is the sum of utime+stime+cutime+cstime of its live members: a
 * reaped process's time lives in its reaper's cutime/cstime, so every
 * finished descendant is counted exactly once and the total never shrinks.
 *
 * Processes die while we walk: any descendant we cannot read is skipped.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procstat.h"

/* A sanity bound on the walk, against pid reuse making a loop. */
#define PROCSTAT_MAX_PROCS	(1u << 22)

struct pstat {
	pid_t		ppid;
	uint64_t	utime, stime, cutime, cstime;	/* clock ticks */
	uint64_t	rss_pages;
};

struct pidvec {
	pid_t		*v;
	size_t		 n, cap;
};

static int	read_small(const char *, char *, size_t, size_t *);
static int	stat_read(pid_t, struct pstat *);
static uint64_t	pss_read(pid_t);
static int	pidvec_push(struct pidvec *, pid_t);
static int	parse_pid(const char *, pid_t *);
static int	children_of(pid_t, struct pidvec *);
static int	tree_children(pid_t, struct pidvec *);
static int	tree_scan(pid_t, struct pidvec *);

/*
 * Read a whole small /proc file into buf (NUL-terminated). Returns 0, or
 * -1 with errno.
 */
static int
read_small(const char *path, char *buf, size_t size, size_t *len_r)
{
	ssize_t	 r;
	size_t	 len = 0;
	int	 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (len < size - 1) {
		r = read(fd, buf + len, size - 1 - len);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return 0;
}

/*
 * Parse /proc/<pid>/stat. The comm field (2) is in parentheses and may
 * hold spaces and ')', so fields are counted from the last ')'.
 * Returns 0, or -1 with errno (ENOENT/ESRCH when the process is gone,
 * EINVAL when the file does not parse).
 */
static int
stat_read(pid_t pid, struct pstat *ps)
{
	char			 path[64], buf[1024], *p, *end;
	unsigned long long	 val;
	unsigned		 field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf), NULL) == -1)
		return -1;
	if ((p = strrchr(buf, ')')) == NULL) {
		errno = EINVAL;
		return -1;
	}
	p++;
	memset(ps, 0, sizeof(*ps));
	/* p now points at " S ppid ...": field 3 is the state letter. */
	for (field = 3; field <= 24; field++) {
		while (*p == ' ')
			p++;
		if (*p == '\0') {
			errno = EINVAL;
			return -1;
		}
		if (field == 3) {
			while (*p != ' ' && *p != '\0')
				p++;
			continue;
		}
		/* Negative fields (priority, nice) are parsed but unused. */
		val = strtoull(p, &end, 10);
		if (end == p) {
			errno = EINVAL;
			return -1;
		}
		p = end;
		switch (field) {
		case 4:
			ps->ppid = (pid_t)val;
			break;
		case 14:
			ps->utime = val;
			break;
		case 15:
			ps->stime = val;
			break;
		case 16:
			ps->cutime = val;
			break;
		case 17:
			ps->cstime = val;
			break;
		case 24:
			ps->rss_pages = val;
			break;
		}
	}
	return 0;
}

/* Pss of pid in bytes from smaps_rollup, 0 when unreadable. */
static uint64_t
pss_read(pid_t pid)
{
	char			 path[64], buf[4096], *p;
	unsigned long long	 kb;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if (read_small(path, buf, sizeof(buf), NULL) == -1)
		return 0;
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "Pss:", 4) == 0) {
			if (sscanf(p + 4, "%llu", &kb) != 1)
				return 0;
			return (uint64_t)kb * 1024;
		}
	}
	return 0;
}

static int
pidvec_push(struct pidvec *pv, pid_t pid)
{
	pid_t	*nv;
	size_t	 ncap;

	if (pv->n == pv->cap) {
		if (pv->cap >= PROCSTAT_MAX_PROCS) {
			errno = E2BIG;
			return -1;
		}
		ncap = pv->cap == 0 ? 64 : pv->cap * 2;
		if ((nv = reallocarray(pv->v, ncap, sizeof(*nv))) == NULL)
			return -1;
		pv->v = nv;
		pv->cap = ncap;
	}
	pv->v[pv->n++] = pid;
	return 0;
}

/* A /proc directory entry name as a pid: 0, or -1 if not all digits. */
static int
parse_pid(const char *s, pid_t *pid_r)
{
	long	v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s) || v > INT_MAX / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (v <= 0 || v > INT_MAX)
		return -1;
	*pid_r = (pid_t)v;
	return 0;
}

/*
 * Append the children of every thread of pid to pv. Returns 0 (also when
 * pid is gone), 1 when the kernel has no children files, -1 on ENOMEM.
 */
static int
children_of(pid_t pid, struct pidvec *pv)
{
	char		 path[96];
	char		 buf[4096];
	struct dirent	*de;
	struct stat	 sb;
	DIR		*dir;
	ssize_t		 r;
	pid_t		 tid;
	long		 cur;
	bool		 in_num;
	int		 fd, rv = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((dir = opendir(path)) == NULL)
		return 0;
	while (rv == 0 && (de = readdir(dir)) != NULL) {
		if (parse_pid(de->d_name, &tid) == -1)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
		    (int)pid, (int)tid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
			/* Thread gone, or no CONFIG_PROC_CHILDREN? */
			snprintf(path, sizeof(path), "/proc/%d/task/%d",
			    (int)pid, (int)tid);
			if (errno == ENOENT && stat(path, &sb) == 0)
				rv = 1;
			continue;
		}
		/* Space-separated pids; the list may span several reads. */
		cur = 0;
		in_num = false;
		while (rv == 0) {
			r = read(fd, buf, sizeof(buf));
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			for (ssize_t i = 0; i < r; i++) {
				if (isdigit((unsigned char)buf[i])) {
					if (cur <= INT_MAX / 10)
						cur = cur * 10 + (buf[i] - '0');
					in_num = true;
				} else if (in_num) {
					if (pidvec_push(pv, (pid_t)cur) == -1) {
						rv = -1;
						break;
					}
					cur = 0;
					in_num = false;
				}
			}
		}
		if (rv == 0 && in_num && pidvec_push(pv, (pid_t)cur) == -1)
			rv = -1;
		close(fd);
	}
	closedir(dir);
	return rv;
}

/*
 * Collect pid and its descendants into pv (pid first) through the
 * children files, breadth first. Returns 0, 1 when children files are
 * unsupported (pv then holds only pid), -1 on error.
 */
static int
tree_children(pid_t pid, struct pidvec *pv)
{
	size_t	i;
	int	rv;

	pv->n = 0;
	if (pidvec_push(pv, pid) == -1)
		return -1;
	for (i = 0; i < pv->n; i++) {
		if ((rv = children_of(pv->v[i], pv)) != 0) {
			if (rv == 1)
				pv->n = 1;
			return rv;
		}
	}
	return 0;
}

struct ppair {
	pid_t	ppid;
	pid_t	pid;
};

static int
ppair_cmp(const void *a, const void *b)
{
	const struct ppair	*x = a, *y = b;

	if (x->ppid != y->ppid)
		return x->ppid < y->ppid ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

/*
 * Collect pid and its descendants into pv (pid first) from one scan of
 * the ppid field of every /proc/[0-9]*\/stat. Returns 0 or -1.
 */
static int
tree_scan(pid_t pid, struct pidvec *pv)
{
	struct ppair	*pairs = NULL, *np, key, *hit;
	struct pstat	 ps;
	struct dirent	*de;
	DIR		*dir;
	size_t		 npairs = 0, cap = 0, i, lo, hi, mid;
	pid_t		 p;
	int		 rv = -1;

	pv->n = 0;
	if (pidvec_push(pv, pid) == -1)
		return -1;
	if ((dir = opendir("/proc")) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (parse_pid(de->d_name, &p) == -1 || p == pid)
			continue;
		if (stat_read(p, &ps) == -1)
			continue;	/* gone already */
		if (npairs == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			np = reallocarray(pairs, cap, sizeof(*np));
			if (np == NULL)
				goto out;
			pairs = np;
		}
		pairs[npairs].ppid = ps.ppid;
		pairs[npairs].pid = p;
		npairs++;
	}
	qsort(pairs, npairs, sizeof(*pairs), ppair_cmp);

	/* Breadth first: the children of v[i] are a run in the sorted pairs. */
	for (i = 0; i < pv->n; i++) {
		key.ppid = pv->v[i];
		lo = 0;
		hi = npairs;
		while (lo < hi) {	/* first pair with ppid >= key */
			mid = lo + (hi - lo) / 2;
			if (pairs[mid].ppid < key.ppid)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (hit = pairs + lo; hit < pairs + npairs &&
		    hit->ppid == key.ppid; hit++)
			if (pidvec_push(pv, hit->pid) == -1)
				goto out;
	}
	rv = 0;
 out:
	closedir(dir);
	free(pairs);
	return rv;
}

int
procstat_sample(pid_t pid, bool children, bool with_pss, struct procstat *out)
{
	static long	 tck, pagesz;
	struct pidvec	 pv = { NULL, 0, 0 };
	struct pstat	 ps;
	uint64_t	 ticks = 0, pages = 0, pss = 0;
	unsigned	 n = 0;
	size_t		 i;
	int		 rv;

	memset(out, 0, sizeof(*out));
	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (tck <= 0 && (tck = sysconf(_SC_CLK_TCK)) <= 0)
		tck = 100;
	if (pagesz <= 0 && (pagesz = sysconf(_SC_PAGESIZE)) <= 0)
		pagesz = 4096;

	/* The root must be readable; that is the only hard failure. */
	if (stat_read(pid, &ps) == -1) {
		if (errno == EINVAL)
			errno = ESRCH;
		return -1;
	}
	ticks = ps.utime + ps.stime;
	if (children)
		ticks += ps.cutime + ps.cstime;
	pages = ps.rss_pages;
	if (with_pss)
		pss = pss_read(pid);
	n = 1;

	if (children) {
		if ((rv = tree_children(pid, &pv)) == 1)
			rv = tree_scan(pid, &pv);
		if (rv == -1) {
			free(pv.v);
			return -1;
		}
		for (i = 1; i < pv.n; i++) {
			if (stat_read(pv.v[i], &ps) == -1)
				continue;	/* exited meanwhile */
			ticks += ps.utime + ps.stime + ps.cutime + ps.cstime;
			pages += ps.rss_pages;
			if (with_pss)
				pss += pss_read(pv.v[i]);
			n++;
		}
		free(pv.v);
	}

	out->cpu_us = ticks * 1000000 / (uint64_t)tck;
	out->rss_bytes = pages * (uint64_t)pagesz;
	out->pss_bytes = pss;
	out->nprocs = n;
	return 0;
}
