/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tailgate-bench's device classes (--class): the spec's fields and units, and a refusal
 * naming the field for each malformed one.
 */
#include "bench/bench.h"
#include "tests/harness.h"

#include <errno.h>
#include <string.h>

static void
test_class_spec_fields_and_units(void)
{
	struct bench_class c;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(bench_class_parse(&c, "slow:1000:1mbps:1000:100000:90.5", &err) == 0, "%s",
		     err.msg);
	TH_CHECK(strcmp(c.name, "slow") == 0 && c.compute_mflops == 1000 &&
		 c.uplink_kbps == 1000 && c.head_uj_per_mflop == 1000 &&
		 c.tx_pj_per_bit == 100000 && c.floor_bp == 9050);
	TH_CHECK(bench_class_parse(&c, "fast:1000000:1gbps", &err) == 0);
	TH_CHECK(c.compute_mflops == 1000000 && c.uplink_kbps == 1000000 &&
		 c.head_uj_per_mflop == 0 && c.floor_bp == 0);
	TH_CHECK(bench_class_parse(&c, "k:5:750", &err) == 0 && c.uplink_kbps == 750);
	TH_CHECK(bench_class_parse(&c, "k:5:750kbps:1:2", &err) == 0 && c.tx_pj_per_bit == 2);
}

static void
test_class_spec_refusals(void)
{
	static const char *bad[] = {
		"", "slow", ":1:2", "slow:", "slow:1", "slow:x:2", "slow:1:2:3",
		"slow:1:2mbit", "slow:1:2:3:4:101", "slow:1:2:3:4:5:6", "slow:-1:2",
		"a-name-longer-than-15:1:2",
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bench_class c;
		struct tg_err err = { 0 };

		TH_CHECK_MSG(bench_class_parse(&c, bad[i], &err) == -EINVAL && err.msg[0] != 0,
			     "'%s' accepted", bad[i]);
	}
}

int
main(void)
{
	TH_RUN(test_class_spec_fields_and_units);
	TH_RUN(test_class_spec_refusals);
	TH_DONE();
}
