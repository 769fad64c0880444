/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unit-test harness: each test is a function, a test passes when none of its checks failed.
 * A binary ends with "N passed, N failed[, N skipped]" (read by CI) and exits non-zero on failure.
 */
#ifndef TG_TEST_HARNESS_H
#define TG_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int th_passed, th_failed, th_skipped, th_cur_failed, th_cur_skipped;

#define TH_CHECK(cond)                                                                 \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                \
			th_cur_failed++;                                               \
		}                                                                      \
	} while (0)

#define TH_CHECK_MSG(cond, ...)                                                        \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, \
				#cond);                                                \
			fprintf(stderr, __VA_ARGS__);                                  \
			fputc('\n', stderr);                                           \
			th_cur_failed++;                                               \
		}                                                                      \
	} while (0)

/* Mark the running test skipped (it cannot run here), with the reason. */
#define TH_SKIP(...)                                                                   \
	do {                                                                           \
		fprintf(stderr, "  skip: ");                                           \
		fprintf(stderr, __VA_ARGS__);                                          \
		fputc('\n', stderr);                                                   \
		th_cur_skipped = 1;                                                    \
	} while (0)

#define TH_RUN(fn)                                                                     \
	do {                                                                           \
		th_cur_failed = 0;                                                     \
		th_cur_skipped = 0;                                                    \
		fn();                                                                  \
		if (th_cur_failed) {                                                   \
			th_failed++;                                                   \
			fprintf(stderr, "FAIL %s\n", #fn);                             \
		} else if (th_cur_skipped) {                                           \
			th_skipped++;                                                  \
			fprintf(stderr, "SKIP %s\n", #fn);                             \
		} else {                                                               \
			th_passed++;                                                   \
		}                                                                      \
	} while (0)

#define TH_DONE()                                                                      \
	do {                                                                           \
		printf("%d passed, %d failed, %d skipped\n", th_passed, th_failed,     \
		       th_skipped);                                                    \
		return th_failed ? 1 : 0;                                              \
	} while (0)

#endif
