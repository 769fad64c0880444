/* SPDX-License-Identifier: Apache-2.0 */
/*
 * advisor: what a device should do to be served best (docs/protocol.md 7.3): which
 * (variant, split, exit policy) of a model it should send from, for the lowest latency or
 * the lowest device energy that meets its accuracy floor and its SLO, from the profile of its
 * HELLO (measurements folded in by the caller) and the gateway's own estimates.
 *
 * Pure arithmetic, no state, no locks, no allocation: the caller gathers the candidates and
 * the gateway's estimates (struct adv_cand) once per burst or batch, outside the scheduler's
 * lock, and asks per answer (a few dozen candidates: a pass of multiplications). Prefix adv_.
 * Thread: any.
 */
#ifndef TG_ADVISOR_H
#define TG_ADVISOR_H

#include <stdbool.h>
#include <stdint.h>

enum adv_goal {
	ADV_GOAL_LATENCY = 0,		/* lowest expected end-to-end latency */
	ADV_GOAL_ENERGY = 1,		/* lowest expected device energy (latency breaks ties) */
};

enum adv_exits {
	ADV_EXITS_ON = 0,		/* early exits answer when confident (device and gateway) */
	ADV_EXITS_OFF = 1,		/* the final exit only (REQUEST flag NO_EARLY_EXIT) */
};

enum {
	ADV_NONE = 0xFF,		/* no variant / split / exit policy advised */
	ADV_STICKY_PCT = 5,		/* the current choice is kept unless another is this much
					 * better: estimates move with load, advice should not */
};

/** One device, as the advisor sees it: declared in its HELLO, or measured. 0 = unknown. */
struct adv_device {
	uint32_t compute_mflops;	/* head compute rate, MFLOP/s */
	uint32_t uplink_kbps;		/* uplink, kbit/s */
	uint32_t rtt_us;		/* round trip */
	uint32_t slo_us;		/* end-to-end latency wanted; 0 none */
	uint16_t accuracy_floor_bp;	/* lowest acceptable top-1, 1/100 %; 0 none */
	uint32_t head_uj_per_mflop;	/* device energy per MFLOP of head compute, microjoules */
	uint32_t tx_pj_per_bit;		/* device energy per bit sent, picojoules */
	uint8_t goal;			/* enum adv_goal */
};

/** One (variant, split, exit policy) the gateway serves, with its estimates now. */
struct adv_cand {
	uint8_t variant, split, exits;	/* exits: enum adv_exits */
	uint64_t head_flops;		/* the device's work per sample up to the split */
	uint64_t bytes;			/* the split tensor's raw bytes in the device's dtype */
	uint64_t server_ns;		/* the gateway's queue + tail compute estimate from there */
	uint16_t accuracy_bp;		/* top-1 with this exit policy, 1/100 %; 0 unknown
					 * (passes any floor: the operator did not say) */
	uint16_t local_bp;		/* share of samples a device-side exit answers (nothing
					 * sent), 1/100 %; 0 with ADV_EXITS_OFF */
};

/** What a candidate is expected to cost this device. */
struct adv_pred {
	uint32_t latency_us;		/* end to end, mean; UINT32_MAX: cannot be estimated */
	uint32_t energy_uj;		/* device energy per request, microjoules; 0 when the
					 * device declared no energy profile */
};

/** The advice. */
struct adv_choice {
	int idx;			/* the candidate advised, -1: none */
	uint8_t variant, split, exits;	/* of cands[idx]; ADV_NONE when idx is -1 */
	bool fits;			/* it meets the floor and the SLO. false with idx >= 0:
					 * none fits, idx is the lowest latency meeting the floor
					 * (the least bad); false with idx -1: none meets even the
					 * floor, or none can be estimated */
	struct adv_pred pred;		/* of cands[idx]; zero when idx is -1 */
};

/**
 * Expected cost of candidate c for device d. Latency: head on the device (head_flops at the
 * compute rate), then for the samples no device exit answers (1 - local share): upload
 * (bytes plus datagram headers at the uplink), one round trip and the gateway's estimate.
 * Energy: head FLOPs at head_uj_per_mflop, plus the bits sent (headers included) at
 * tx_pj_per_bit for the share that is sent. latency_us is UINT32_MAX when d lacks the
 * compute rate (a head to run) or the uplink (bytes to send), or server_ns is UINT64_MAX.
 */
void adv_predict(const struct adv_device *d, const struct adv_cand *c, struct adv_pred *out);

/**
 * Choose for device d among cands[0..n): of those meeting the accuracy floor and the SLO,
 * (without a floor: of its current variant only, cur_variant), the lowest latency (goal latency) or energy (goal energy; latency breaks ties). The
 * device's current (variant, split, exit policy), cur_*, is kept while it fits and is within
 * ADV_STICKY_PCT of the best (so advice does not flap on noisy estimates). When none fits,
 * says so (out->fits false) and names the lowest latency meeting the floor, if any.
 * @param cands  read only, the caller's; n may be 0
 * @param out    always filled
 */
void adv_choose(const struct adv_device *d, const struct adv_cand *cands, unsigned n,
		uint8_t cur_variant, uint8_t cur_split, uint8_t cur_exits, struct adv_choice *out);

#endif
