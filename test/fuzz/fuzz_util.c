/*
 * fuzz_util: the scratch directory and file helpers of fuzz.h.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char	dir[256];

void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

void
fuzz_rmtree(const char *path)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	char		 sub[4096];

	if (lstat(path, &st) == -1) {
		FUZZ_CHECK(errno == ENOENT);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		d = opendir(path);
		FUZZ_CHECK(d != NULL);
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			FUZZ_CHECK(snprintf(sub, sizeof(sub), "%s/%s", path,
			    de->d_name) < (int)sizeof(sub));
			fuzz_rmtree(sub);
		}
		closedir(d);
		FUZZ_CHECK(rmdir(path) == 0);
	} else
		FUZZ_CHECK(unlink(path) == 0);
}

static void
dir_remove(void)
{
	if (dir[0] != '\0')
		fuzz_rmtree(dir);
}

const char *
fuzz_dir(void)
{
	const char *tmp;

	if (dir[0] != '\0')
		return dir;
	/* Memory is faster than a disk for files made and removed per input. */
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
	FUZZ_CHECK(snprintf(dir, sizeof(dir), "%s/evpop3d-fuzz-XXXXXX", tmp) <
	    (int)sizeof(dir));
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	atexit(dir_remove);
	return dir;
}

void
fuzz_write_file(const char *path, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;
	int		 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd != -1);
	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		FUZZ_CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
	FUZZ_CHECK(close(fd) == 0);
}

void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 16;
		b->p = realloc(b->p, b->cap);
		FUZZ_CHECK(b->p != NULL);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}
