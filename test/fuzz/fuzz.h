/*
 * fuzz: what the libFuzzer harnesses of test/fuzz/ share.
 *
 * A harness is one LLVMFuzzerTestOneInput() over one part of evpop3d.
 * Each input must leave nothing behind (no memory, no descriptor, no
 * file outside its scratch directory, no global state that changes how
 * the next input runs), so that a crash replays from its input alone.
 * A failed check aborts with a line on stderr: libFuzzer takes the abort
 * as a crash and keeps the input.
 */
#ifndef EVPOP3D_FUZZ_H
#define EVPOP3D_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_CHECK(cond) do {						\
	if (!(cond))							\
		fuzz_fail(__FILE__, __LINE__, #cond);			\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int	LLVMFuzzerInitialize(int *argc, char ***argv);

void	fuzz_fail(const char *file, int line, const char *what)
	    __attribute__((noreturn));

/*
 * The process's scratch directory, made at the first call (under
 * $TMPDIR, else /dev/shm if writable, else /tmp) and removed with everything in it at exit.
 */
const char *fuzz_dir(void);
/* Write len bytes to path (replaced); aborts on error. */
void	fuzz_write_file(const char *path, const void *data, size_t len);
/* rm -rf path (no shell); aborts on error. ENOENT is fine. */
void	fuzz_rmtree(const char *path);

/* A growing byte buffer; free(b.p) when done. */
struct buf {
	char	*p;
	size_t	 len, cap;
};

/* Append n bytes (none: p may be NULL); aborts when out of memory. */
void	buf_add(struct buf *b, const void *p, size_t n);

#endif
