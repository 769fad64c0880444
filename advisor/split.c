/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The advice (protocol.md 7.3): which served (variant, split, exit policy) a device should
 * send from, given its profile and the gateway's own estimates (advisor.h).
 */
#include "advisor/advisor.h"
#include "proto/proto.h"

#include <stdint.h>

/* Per datagram on the wire beyond the tensor's bytes: a REQUEST's headers (common + chunk
 * block) and IPv4 + UDP; a chunk carries at most a default datagram less its headers. */
enum {
	ADV_DGRAM_OVERHEAD = PROTO_REQUEST_LEN + 28,
	ADV_DGRAM_PAYLOAD = PROTO_DEFAULT_DGRAM - PROTO_REQUEST_LEN,
};

static double
adv_wire_bits(uint64_t bytes)
{
	uint64_t dg = (bytes + ADV_DGRAM_PAYLOAD - 1) / ADV_DGRAM_PAYLOAD;

	return 8.0 * (double)(bytes + dg * ADV_DGRAM_OVERHEAD);
}

static uint32_t
adv_clamp_u32(double v)
{
	return v >= (double)UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)v;
}

void
adv_predict(const struct adv_device *d, const struct adv_cand *c, struct adv_pred *out)
{
	/* The share of samples that leave the device: a device exit answers the rest. */
	double sent = c->local_bp >= 10000 ? 0.0 : 1.0 - (double)c->local_bp / 10000.0;
	double head_us = 0, up_us = 0, bits = c->bytes > 0 ? adv_wire_bits(c->bytes) : 0;
	double uj;

	out->latency_us = UINT32_MAX;
	out->energy_uj = 0;
	if (c->head_flops > 0) {
		if (d->compute_mflops == 0)
			return;		/* a head to run at an unknown rate */
		head_us = (double)c->head_flops / (double)d->compute_mflops;	/* FLOP/us */
	}
	if (c->bytes > 0) {
		if (d->uplink_kbps == 0)
			return;
		up_us = bits * 1000.0 / (double)d->uplink_kbps;		/* kbit/s = bit/ms */
	}
	if (c->server_ns == UINT64_MAX)
		return;
	out->latency_us = adv_clamp_u32(head_us + sent * (up_us + (double)d->rtt_us +
							  (double)c->server_ns / 1000.0));
	uj = (double)c->head_flops / 1e6 * (double)d->head_uj_per_mflop +
	     sent * bits * (double)d->tx_pj_per_bit / 1e6;
	out->energy_uj = adv_clamp_u32(uj);
}

/* The figure the device's goal minimises. */
static uint32_t
adv_objective(const struct adv_device *d, const struct adv_pred *p)
{
	return d->goal == ADV_GOAL_ENERGY ? p->energy_uj : p->latency_us;
}

/* a better than b for d: the goal's figure, then latency. */
static bool
adv_better(const struct adv_device *d, const struct adv_pred *a, const struct adv_pred *b)
{
	uint32_t oa = adv_objective(d, a), ob = adv_objective(d, b);

	return oa < ob || (oa == ob && a->latency_us < b->latency_us);
}

static void
adv_set(struct adv_choice *out, const struct adv_cand *cands, int i, const struct adv_pred *p,
	bool fits)
{
	out->idx = i;
	out->variant = cands[i].variant;
	out->split = cands[i].split;
	out->exits = cands[i].exits;
	out->pred = *p;
	out->fits = fits;
}

void
adv_choose(const struct adv_device *d, const struct adv_cand *cands, unsigned n,
	   uint8_t cur_variant, uint8_t cur_split, uint8_t cur_exits, struct adv_choice *out)
{
	struct adv_pred best = { 0 }, cur = { 0 }, least_bad = { 0 };
	int bi = -1, ci = -1, li = -1;

	*out = (struct adv_choice){ .idx = -1, .variant = ADV_NONE, .split = ADV_NONE,
				    .exits = ADV_NONE };
	for (unsigned i = 0; i < n; i++) {
		const struct adv_cand *c = &cands[i];
		struct adv_pred p;

		if (c->accuracy_bp != 0 && c->accuracy_bp < d->accuracy_floor_bp)
			continue;
		/* No floor declared is no licence to trade accuracy: another variant (some
		 * are far less accurate, e.g. a skip-dropped one) only for a stated floor. */
		if (d->accuracy_floor_bp == 0 && c->variant != cur_variant)
			continue;
		adv_predict(d, c, &p);
		if (p.latency_us == UINT32_MAX)
			continue;
		if (li < 0 || p.latency_us < least_bad.latency_us) {
			li = (int)i;
			least_bad = p;
		}
		if (d->slo_us != 0 && p.latency_us > d->slo_us)
			continue;
		if (c->variant == cur_variant && c->split == cur_split && c->exits == cur_exits) {
			ci = (int)i;
			cur = p;
		}
		if (bi < 0 || adv_better(d, &p, &best)) {
			bi = (int)i;
			best = p;
		}
	}
	if (bi < 0) {
		if (li >= 0)
			adv_set(out, cands, li, &least_bad, false);	/* none fits: say so */
		return;
	}
	/* Keep the device where it is unless moving gains more than ADV_STICKY_PCT. */
	if (ci >= 0 && (uint64_t)adv_objective(d, &cur) * 100 <=
		       (uint64_t)adv_objective(d, &best) * (100 + ADV_STICKY_PCT))
		adv_set(out, cands, ci, &cur, true);
	else
		adv_set(out, cands, bi, &best, true);
}
