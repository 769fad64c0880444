/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays files through a fuzz target's LLVMFuzzerTestOneInput without libFuzzer, so
 * `make test` (gcc, optionally SAN=1) re-runs every kept corpus entry and crash.
 * Usage: replay FILE|DIR...
 */
#include "util/util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	struct tg_err err = { 0 };
	uint8_t *buf;
	size_t len;

	if (tg_file_read(path, 64u << 20, &buf, &len, &err) < 0) {
		fprintf(stderr, "replay: %s\n", err.msg);
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned n = 0, bad = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			bad += replay_file(argv[i]) < 0;
			n++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		while (d && (e = readdir(d)) != NULL) {
			char p[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
			bad += replay_file(p) < 0;
			n++;
		}
		if (d)
			closedir(d);
	}
	printf("%u passed, %u failed\n", n - bad, bad);
	return bad ? 1 : 0;
}
