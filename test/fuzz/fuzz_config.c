/*
 * fuzz_config: the configuration loader (config.c over iniparser) on
 * arbitrary file contents.
 *
 * Each input is written to evpop3d.ini in the scratch directory and
 * loaded with cfg_load(): it must either give a configuration (freed
 * again) or fail with one line in err, within the err buffer. Unknown
 * keys are logged as warnings; log output goes to stderr, which
 * scripts/fuzz closes (-close_fd_mask=2).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "lib/log.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg	*cfg = NULL;
	char		 path[512], err[512];

	snprintf(path, sizeof(path), "%s/evpop3d.ini", fuzz_dir());
	fuzz_write_file(path, data, size);
	memset(err, 0, sizeof(err));
	if (cfg_load(path, &cfg, err, sizeof(err)) == 0) {
		FUZZ_CHECK(cfg != NULL);
		cfg_free(cfg);
	} else {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(strchr(err, '\n') == NULL);
	}
	return 0;
}
