/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split advice (adv_split_choose, adv_split_latency_us): the latency arithmetic, and the
 * choice for devices at both ends (slow compute with a fast link, fast compute with a slow link, a
 * loaded gateway), the accuracy floor, the SLO, the 5% stickiness, and no advice without a
 * profile. Three splits modelled on a ResNet: the input (no head, big tensor, all the tail on
 * the gateway), a middle split, a late one (small tensor, almost no tail).
 */
#include "advisor/advisor.h"
#include "proto/proto.h"
#include "tests/harness.h"

#define MS 1000000ull

static struct adv_split_est sp[3];

static void
reset(void)
{
	sp[0] = (struct adv_split_est){ .split = 0, .head_flops = 0, .bytes = 100000,
					.server_ns = 10 * MS };
	sp[1] = (struct adv_split_est){ .split = 4, .head_flops = 30000000, .bytes = 50000,
					.server_ns = 5 * MS };
	sp[2] = (struct adv_split_est){ .split = 8, .head_flops = 90000000, .bytes = 1000,
					.server_ns = MS / 10 };
}

static void
test_latency_arithmetic(void)
{
	/* RTT 1 ms + gateway 2 ms + 10 MFLOP at 1000 MFLOP/s (10 ms) + one datagram of 1368
	 * bytes with 132 bytes of headers (12,000 bits) at 12,000 kbit/s (1 ms) = 14 ms */
	struct proto_hello p = { .compute_mflops = 1000, .uplink_kbps = 12000, .rtt_us = 1000 };
	struct adv_split_est e = { .split = 3, .head_flops = 10000000, .bytes = 1368,
				  .server_ns = 2 * MS };

	TH_CHECK_MSG(adv_split_latency_us(&p, &e) == 14000, "%u us", adv_split_latency_us(&p, &e));
	e.bytes = 1369;	/* a second datagram: 132 more bytes of headers */
	TH_CHECK_MSG(adv_split_latency_us(&p, &e) == 14088, "%u us", adv_split_latency_us(&p, &e));
	p.compute_mflops = 0;	/* a head at an unknown rate: cannot be estimated */
	TH_CHECK(adv_split_latency_us(&p, &e) == UINT32_MAX);
	e.head_flops = 0;	/* the input: no head, so the rate does not matter */
	TH_CHECK(adv_split_latency_us(&p, &e) != UINT32_MAX);
	p.uplink_kbps = 0;
	TH_CHECK(adv_split_latency_us(&p, &e) == UINT32_MAX);
}

static void
test_slow_device_fast_link_sends_the_input(void)
{
	/* 100 MFLOP/s: the late split's head alone is 900 ms; 1 Gbit/s moves 100 KB in 0.8 ms */
	struct proto_hello p = { .compute_mflops = 100, .uplink_kbps = 1000000, .rtt_us = 500 };
	struct adv_split_choice a;

	reset();
	adv_split_choose(&p, sp, 3, 4, &a);
	TH_CHECK_MSG(a.split == 0, "advised %u", a.split);
	TH_CHECK(a.latency_us == adv_split_latency_us(&p, &sp[0]) && a.within_slo);
}

static void
test_fast_device_slow_link_sends_the_late_split(void)
{
	/* 100 GFLOP/s: 0.9 ms of head; 1 Mbit/s: 100 KB take 0.8 s, 1 KB 9 ms */
	struct proto_hello p = { .compute_mflops = 100000, .uplink_kbps = 1000, .rtt_us = 500,
				 .slo_us = 50000 };
	struct adv_split_choice a;

	reset();
	adv_split_choose(&p, sp, 3, 0, &a);
	TH_CHECK_MSG(a.split == 8, "advised %u", a.split);
	TH_CHECK_MSG(a.within_slo && a.latency_us < 50000, "%u us", a.latency_us);
}

static void
test_loaded_gateway_moves_work_to_the_device(void)
{
	/* A mid-range device on a fast link sends the input while the gateway is idle, and the
	 * late split once the input's queue holds a second of work. */
	struct proto_hello p = { .compute_mflops = 20000, .uplink_kbps = 1000000, .rtt_us = 1000 };
	struct adv_split_choice a;

	reset();
	sp[0].server_ns = MS;
	adv_split_choose(&p, sp, 3, 0, &a);
	TH_CHECK_MSG(a.split == 0, "idle: advised %u", a.split);
	sp[0].server_ns = 1000 * MS;
	sp[1].server_ns = 600 * MS;
	adv_split_choose(&p, sp, 3, 0, &a);
	TH_CHECK_MSG(a.split == 8, "loaded: advised %u", a.split);
}

static void
test_accuracy_floor_and_slo(void)
{
	struct proto_hello p = { .compute_mflops = 100000, .uplink_kbps = 1000, .rtt_us = 500,
				 .accuracy_floor_bp = 9000, .slo_us = 1000 };
	struct adv_split_choice a;

	reset();
	sp[2].accuracy_bp = 8500;	/* the late split's answers score below the floor */
	sp[1].accuracy_bp = 9100;
	adv_split_choose(&p, sp, 3, 0, &a);
	TH_CHECK_MSG(a.split == 4, "advised %u", a.split);
	/* 1 ms is beyond every split: the best is still advised, flagged as missing it */
	TH_CHECK(!a.within_slo && a.latency_us > 1000);
	sp[0].accuracy_bp = sp[1].accuracy_bp = 8000;
	adv_split_choose(&p, sp, 3, 0, &a);
	TH_CHECK(a.split == PROTO_NONE);	/* nothing meets the floor */
}

static void
test_current_split_kept_within_five_percent(void)
{
	struct proto_hello p = { .compute_mflops = 1000, .uplink_kbps = 100000, .rtt_us = 0 };
	struct adv_split_est e[2] = {
		{ .split = 0, .bytes = 0, .server_ns = 100 * MS },
		{ .split = 5, .bytes = 0, .server_ns = 97 * MS },
	};
	struct adv_split_choice a;

	adv_split_choose(&p, e, 2, 0, &a);	/* 3% better elsewhere: stay */
	TH_CHECK(a.split == 0 && a.latency_us == 100000);
	e[1].server_ns = 90 * MS;	/* 10% better: move */
	adv_split_choose(&p, e, 2, 0, &a);
	TH_CHECK(a.split == 5 && a.latency_us == 90000);
}

static void
test_no_profile_no_advice(void)
{
	struct proto_hello p = { 0 };
	struct adv_split_choice a;

	reset();
	adv_split_choose(&p, sp, 3, 0, &a);
	TH_CHECK(a.split == PROTO_NONE && a.latency_us == 0);
	adv_split_choose(&p, sp, 0, 0, &a);
	TH_CHECK(a.split == PROTO_NONE);
}

int
main(void)
{
	TH_RUN(test_latency_arithmetic);
	TH_RUN(test_slow_device_fast_link_sends_the_input);
	TH_RUN(test_fast_device_slow_link_sends_the_late_split);
	TH_RUN(test_loaded_gateway_moves_work_to_the_device);
	TH_RUN(test_accuracy_floor_and_slo);
	TH_RUN(test_current_split_kept_within_five_percent);
	TH_RUN(test_no_profile_no_advice);
	TH_DONE();
}
