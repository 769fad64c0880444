/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the scheduler's unit tests share: a fake clock the test moves by hand (so nothing
 * depends on how fast the machine is), and the drain loop that plays worker 0 on it.
 * Included by one test program each; everything here is static.
 */
#ifndef TG_TESTS_SCHED_TESTKIT_H
#define TG_TESTS_SCHED_TESTKIT_H

#include "scheduler/sched.h"

#include <stdint.h>

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

#endif
