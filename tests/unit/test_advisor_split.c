/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The advice (adv_predict, adv_choose): the latency and energy arithmetic; a table of device
 * profiles against a catalog modelled on fmnist-resnet (CARD.md: the base variant and its
 * sparse variant, splits 0, 4, 6, 8 at int8, early exits on and off, device exits' shares)
 * with the answer expected of each, "none fits" included; the 5% stickiness; and that the
 * gateway's load moves advice (deeper splits, lighter variants).
 */
#include "advisor/advisor.h"
#include "tests/harness.h"

#include <stdio.h>

#define MS 1000000ull
#define ON ADV_EXITS_ON
#define OFF ADV_EXITS_OFF

enum { N_CAT = 12 };

static struct adv_cand cat[N_CAT];

/* fmnist-resnet at int8: bytes and head FLOPs from CARD.md's split table; accuracy final
 * 92.32% (exits off) and 91.91% with exits; exit1 answers 73.22% on a device computing it
 * (splits 5 on), exit1 + exit2 92.14% (splits 7 on). The sparse variant: 22.8% of the FLOPs,
 * 80.04% top-1 (79.00% with exits). The gateway idle: a millisecond or less per tail. */
static void
reset(void)
{
	unsigned i = 0;

	cat[i++] = (struct adv_cand){ 0, 0, ON, 0, 784, MS, 9191, 0 };
	cat[i++] = (struct adv_cand){ 0, 0, OFF, 0, 784, MS, 9232, 0 };
	cat[i++] = (struct adv_cand){ 0, 4, ON, 29500000, 25088, 7 * MS / 10, 9191, 0 };
	cat[i++] = (struct adv_cand){ 0, 4, OFF, 29500000, 25088, 7 * MS / 10, 9232, 0 };
	cat[i++] = (struct adv_cand){ 0, 6, ON, 59200000, 12544, 4 * MS / 10, 9191, 7322 };
	cat[i++] = (struct adv_cand){ 0, 6, OFF, 59200000, 12544, 4 * MS / 10, 9232, 0 };
	cat[i++] = (struct adv_cand){ 0, 8, ON, 89000000, 6272, MS / 20, 9191, 9214 };
	cat[i++] = (struct adv_cand){ 0, 8, OFF, 89000000, 6272, MS / 20, 9232, 0 };
	cat[i++] = (struct adv_cand){ 1, 0, ON, 0, 784, 3 * MS / 10, 7900, 0 };
	cat[i++] = (struct adv_cand){ 1, 0, OFF, 0, 784, 3 * MS / 10, 8004, 0 };
	cat[i++] = (struct adv_cand){ 1, 8, ON, 20300000, 6272, MS / 20, 7900, 9000 };
	cat[i++] = (struct adv_cand){ 1, 8, OFF, 20300000, 6272, MS / 20, 8004, 0 };
}

static void
test_latency_arithmetic(void)
{
	/* RTT 1 ms + gateway 2 ms + 10 MFLOP at 1000 MFLOP/s (10 ms) + one datagram of 1368
	 * bytes with 132 bytes of headers (12,000 bits) at 12,000 kbit/s (1 ms) = 14 ms */
	struct adv_device d = { .compute_mflops = 1000, .uplink_kbps = 12000, .rtt_us = 1000 };
	struct adv_cand c = { .split = 3, .head_flops = 10000000, .bytes = 1368,
			      .server_ns = 2 * MS };
	struct adv_pred p;

	adv_predict(&d, &c, &p);
	TH_CHECK_MSG(p.latency_us == 14000 && p.energy_uj == 0, "%u us %u uJ", p.latency_us,
		     p.energy_uj);
	c.bytes = 1369;	/* a second datagram: 132 more bytes of headers */
	adv_predict(&d, &c, &p);
	TH_CHECK_MSG(p.latency_us == 14088, "%u us", p.latency_us);
	/* A device exit answers 75%: the head always runs, a quarter is sent and waited for:
	 * 10 ms + (1.088 + 1 + 2) / 4 ms = 11.022 ms */
	c.local_bp = 7500;
	adv_predict(&d, &c, &p);
	TH_CHECK_MSG(p.latency_us == 11022, "%u us", p.latency_us);
	c.local_bp = 0;
	c.server_ns = UINT64_MAX;	/* not served now */
	adv_predict(&d, &c, &p);
	TH_CHECK(p.latency_us == UINT32_MAX);
	c.server_ns = 2 * MS;
	d.compute_mflops = 0;	/* a head at an unknown rate: cannot be estimated */
	adv_predict(&d, &c, &p);
	TH_CHECK(p.latency_us == UINT32_MAX);
	c.head_flops = 0;	/* the input: no head, so the rate does not matter */
	adv_predict(&d, &c, &p);
	TH_CHECK(p.latency_us != UINT32_MAX);
	d.uplink_kbps = 0;
	adv_predict(&d, &c, &p);
	TH_CHECK(p.latency_us == UINT32_MAX);
}

static void
test_energy_arithmetic(void)
{
	/* 10 MFLOP at 50 uJ/MFLOP = 500 uJ; 12,000 bits at 20,000 pJ/bit = 240 uJ */
	struct adv_device d = { .compute_mflops = 1000, .uplink_kbps = 12000,
				.head_uj_per_mflop = 50, .tx_pj_per_bit = 20000 };
	struct adv_cand c = { .head_flops = 10000000, .bytes = 1368, .server_ns = 0 };
	struct adv_pred p;

	adv_predict(&d, &c, &p);
	TH_CHECK_MSG(p.energy_uj == 740, "%u uJ", p.energy_uj);
	c.local_bp = 5000;	/* half answered on the device: half the bits sent */
	adv_predict(&d, &c, &p);
	TH_CHECK_MSG(p.energy_uj == 620, "%u uJ", p.energy_uj);
}

struct row {
	const char *what;
	struct adv_device d;
	uint64_t v0_s0_ns, v1_s0_ns;	/* the gateway's estimate for the input; 0: as reset() */
	int variant, split, exits;	/* expected; ADV_NONE: no advice */
	bool fits;
};

static const struct row rows[] = {
	/* 100 MFLOP/s: any head is 295 ms or more; the input at 100 Mbit/s is 2 ms away */
	{ "slow device, fast link: the input", { 100, 100000, 1000, 0, 9000, 0, 0, 0 }, 0, 0,
	  0, 0, ON, true },
	/* 100 GFLOP/s on 1 Mbit/s: the input takes 9.3 ms; split 8 runs 0.9 ms of head and
	 * exit1/exit2 answer 92% on the device, so 5.3 ms on average */
	{ "fast device, slow link: split 8 with exits", { 100000, 1000, 1000, 0, 9000, 0, 0, 0 },
	  0, 0, 0, 8, ON, true },
	/* A floor above the accuracy with exits: the final exit only, and then the input
	 * (9.3 ms) beats split 8 (57 ms of upload) */
	{ "floor above exits' accuracy: exits off", { 100000, 1000, 1000, 0, 9200, 0, 0, 0 },
	  0, 0, 0, 0, OFF, true },
	/* A loaded gateway (50 ms queued at the input of the base, 5 ms at the sparse
	 * variant's): a device whose floor admits it is moved to the lighter variant... */
	{ "loaded gateway, low floor: the sparse variant", { 1000, 100000, 1000, 0, 7500, 0, 0, 0 },
	  50 * MS, 5 * MS, 1, 0, ON, true },
	/* ... one whose floor does not, to a deeper split of the base (29.5 ms of head,
	 * 33.4 ms in all, against 51 ms at the input) */
	{ "loaded gateway, high floor: deeper split", { 1000, 100000, 1000, 0, 9000, 0, 0, 0 },
	  50 * MS, 5 * MS, 0, 4, ON, true },
	/* Energy: a cheap core (10 uJ/MFLOP) and a costly radio (1 uJ/bit) on 10 Mbit/s: the
	 * input costs 7.3 mJ to send, split 8 890 uJ of head and 4.4 mJ of the 8% sent... */
	{ "energy goal, costly radio: split 8", { 1000, 10000, 1000, 0, 9000, 10, 1000000,
	  ADV_GOAL_ENERGY }, 0, 0, 0, 8, ON, true },
	/* ... while the same device after latency sends the input (2.7 ms against 89 ms) */
	{ "latency goal, same device: the input", { 1000, 10000, 1000, 0, 9000, 10, 1000000,
	  ADV_GOAL_LATENCY }, 0, 0, 0, 0, ON, true },
	/* Energy goal under an SLO of 10 ms: split 8's 89 ms of head does not fit */
	{ "energy goal within an SLO: the input", { 1000, 10000, 1000, 10000, 9000, 10, 1000000,
	  ADV_GOAL_ENERGY }, 0, 0, 0, 0, ON, true },
	/* Nothing reaches a 95% floor: no advice at all */
	{ "floor above every variant: none fits", { 100000, 1000, 1000, 0, 9500, 0, 0, 0 }, 0, 0,
	  ADV_NONE, ADV_NONE, ADV_NONE, false },
	/* A 3 ms SLO nothing meets: none fits, and the least bad (5.3 ms) is named */
	{ "SLO below every choice: none fits, least bad named", { 100000, 1000, 1000, 3000, 9000,
	  0, 0, 0 }, 0, 0, 0, 8, ON, false },
	/* No floor: the variant the device sends (here none of them) is the only one it may
	 * be advised, however loaded its tails */
	{ "no floor: no other variant", { 1000, 100000, 1000, 0, 0, 0, 0, 0 }, 50 * MS, 5 * MS,
	  ADV_NONE, ADV_NONE, ADV_NONE, false },
	/* No profile: nothing can be estimated */
	{ "no profile: no advice", { 0, 0, 0, 0, 0, 0, 0, 0 }, 0, 0, ADV_NONE, ADV_NONE, ADV_NONE,
	  false },
};

static void
test_table(void)
{
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct adv_choice a;

		reset();
		if (r->v0_s0_ns) {
			cat[0].server_ns = cat[1].server_ns = r->v0_s0_ns;
			cat[8].server_ns = cat[9].server_ns = r->v1_s0_ns;
		}
		/* From a device on none of them: no stickiness in play. */
		adv_choose(&r->d, cat, N_CAT, 9, 9, ON, &a);
		TH_CHECK_MSG(a.variant == r->variant && a.split == r->split &&
			     a.exits == r->exits && a.fits == r->fits,
			     "%s: advised (%u, %u, %u) fits %d, %u us %u uJ", r->what, a.variant,
			     a.split, a.exits, a.fits, a.pred.latency_us, a.pred.energy_uj);
		TH_CHECK_MSG((a.idx < 0) == (r->variant == ADV_NONE), "%s: idx %d", r->what,
			     a.idx);
		if (a.idx >= 0)
			TH_CHECK_MSG(r->d.slo_us == 0 || a.fits == (a.pred.latency_us <= r->d.slo_us),
				     "%s: %u us against the SLO", r->what, a.pred.latency_us);
	}
}

static void
test_current_choice_kept_within_five_percent(void)
{
	struct adv_device d = { .compute_mflops = 1000, .uplink_kbps = 100000 };
	struct adv_cand e[2] = {
		{ .split = 0, .server_ns = 100 * MS },
		{ .split = 5, .server_ns = 97 * MS },
	};
	struct adv_choice a;

	adv_choose(&d, e, 2, 0, 0, ON, &a);	/* 3% better elsewhere: stay */
	TH_CHECK(a.split == 0 && a.pred.latency_us == 100000 && a.fits);
	adv_choose(&d, e, 2, 0, 0, OFF, &a);	/* not where the device is: the best */
	TH_CHECK(a.split == 5);
	e[1].server_ns = 90 * MS;	/* 10% better: move */
	adv_choose(&d, e, 2, 0, 0, ON, &a);
	TH_CHECK(a.split == 5 && a.pred.latency_us == 90000);
	/* The current choice is kept only while it fits the SLO */
	e[1].server_ns = 97 * MS;
	d.slo_us = 99000;
	adv_choose(&d, e, 2, 0, 0, ON, &a);
	TH_CHECK(a.split == 5 && a.fits);
}

static void
test_load_moves_fast_devices_deeper(void)
{
	/* A 20 GFLOP/s device on a fast link: the input while the gateway is idle, split 8
	 * (4.5 ms of head) once a second of work is queued at the input and split 4. */
	struct adv_device d = { .compute_mflops = 20000, .uplink_kbps = 1000000, .rtt_us = 1000,
				.accuracy_floor_bp = 9000 };
	struct adv_choice a;

	reset();
	adv_choose(&d, cat, N_CAT, 0, 0, ON, &a);
	TH_CHECK_MSG(a.split == 0 && a.variant == 0, "idle: advised %u", a.split);
	for (unsigned i = 0; i < 6; i++)
		cat[i].server_ns = 1000 * MS;
	adv_choose(&d, cat, N_CAT, 0, 0, ON, &a);
	TH_CHECK_MSG(a.split == 8 && a.variant == 0 && a.fits, "loaded: advised %u", a.split);
	/* Without a floor, a device on the sparse variant stays on it: its split 8 (1.0 ms
	 * of head, 90% answered there: 1.1 ms) rather than its input (1.3 ms) */
	d.accuracy_floor_bp = 0;
	adv_choose(&d, cat, N_CAT, 1, 0, ON, &a);
	TH_CHECK_MSG(a.variant == 1 && a.split == 8, "no floor: advised (%u, %u)", a.variant,
		     a.split);
}

int
main(void)
{
	TH_RUN(test_latency_arithmetic);
	TH_RUN(test_energy_arithmetic);
	TH_RUN(test_table);
	TH_RUN(test_current_choice_kept_within_five_percent);
	TH_RUN(test_load_moves_fast_devices_deeper);
	TH_DONE();
}
