/* SPDX-License-Identifier: Apache-2.0 */
/*
 * advisor: what a device should do to be served best: today the split it should send from
 * (docs/protocol.md 7.3), from the profile of its HELLO and the gateway's own estimates.
 * Pure arithmetic, no state, no locks: the caller gathers the estimates (adv_split_est),
 * once per batch or burst, and fills the RESPONSE's advice fields. Prefix adv_.
 * Thread: any.
 */
#ifndef TG_ADVISOR_H
#define TG_ADVISOR_H

#include "proto/proto.h"

#include <stdbool.h>
#include <stdint.h>

/** What the gateway expects of one served split for a device. */
struct adv_split_est {
	uint8_t split;			/* row of the split table */
	uint64_t head_flops;		/* the device's work per sample up to the split */
	uint64_t bytes;			/* the split tensor's raw bytes in the device's dtype */
	uint64_t server_ns;		/* the gateway's queue + compute estimate from it, now */
	uint16_t accuracy_bp;		/* top-1 accuracy of answers from it; 0 unknown */
};

/** The advice: split (PROTO_NONE: none) and the end-to-end latency expected there. */
struct adv_split_choice {
	uint8_t split;
	uint32_t latency_us;
	bool within_slo;		/* latency_us <= the device's SLO (or it has none) */
};

/**
 * Expected end-to-end latency from split e for device p, us: head on the device
 * (head_flops / compute rate), upload (bytes plus datagram headers at the uplink rate), one
 * round trip, and the gateway's estimate. UINT32_MAX when p lacks the compute rate (a head
 * to run) or the uplink (bytes to send).
 */
uint32_t adv_split_latency_us(const struct proto_hello *p, const struct adv_split_est *e);

/**
 * Pick the split for a device: among splits whose accuracy meets its floor (unknown
 * accuracy passes), the lowest expected latency; a split within 5% of it that the device
 * uses now (cur) is kept, so advice does not flap on noise. When even the best misses the
 * SLO it is still advised (within_slo false): nothing does better. No advice (split
 * PROTO_NONE) when no split can be estimated or none meets the floor.
 */
void adv_split_choose(const struct proto_hello *p, const struct adv_split_est *e, unsigned n,
		      uint8_t cur, struct adv_split_choice *out);

#endif
