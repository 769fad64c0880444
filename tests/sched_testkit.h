/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the scheduler's unit tests share: a fake clock the test moves by hand (so nothing
 * depends on how fast the machine is), and the drain loop that plays worker 0 on it.
 * Included by one test program each; everything here is static.
 */
#ifndef TG_TESTS_SCHED_TESTKIT_H
#define TG_TESTS_SCHED_TESTKIT_H

#include "kernels/kernels.h"
#include "scheduler/sched.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>

static uint64_t fake_now;

/* sched_cfg.clock: the test's time, ns. */
static inline uint64_t
fake_clock(void)
{
	return fake_now;
}

/*
 * Worker 0 takes and runs batches until nothing is queued, the fake clock jumping to each
 * wake-up the scheduler asks for. Bounded: a scheduler that never goes idle ends the loop
 * after 2,000 rounds, and the test's own checks then fail.
 */
static inline void
run_until_idle(struct sched *s)
{
	struct sched_req *slots[64];
	struct sched_batch b = { .req = slots };
	uint64_t wake;

	for (int guard = 0; guard < 2000; guard++) {
		if (sched_take_batch(s, 0, &b, &wake)) {
			sched_run_batch(s, 0, &b);
			continue;
		}
		if (wake == UINT64_MAX)
			return;
		fake_now = wake;
	}
}

/*
 * The multi-exit fixture (tests/fixtures/multiexit: splits 0 and 4, two exits) and its
 * reference input, as most scheduler tests serve them. On failure says why on stderr.
 * @return 0, or -1 (nothing to free)
 */
static inline int
load_multiexit(struct kern_model **model, struct tg_tensor *x)
{
	struct tg_err err = { 0 };

	if (kern_model_load("tests/fixtures/multiexit/model.onnx", NULL, model, &err) < 0)
		goto fail;
	if (tg_npy_load("tests/fixtures/multiexit/input.npy", 1 << 20, x, &err) < 0) {
		kern_model_free(*model);
		*model = NULL;
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "setup: %s\n", err.msg);
	return -1;
}

#endif
