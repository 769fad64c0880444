/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split advice (protocol.md 7.3): which served split a device should send from, given the
 * profile of its HELLO and the gateway's own estimates (advisor.h).
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

uint32_t
adv_split_latency_us(const struct proto_hello *p, const struct adv_split_est *e)
{
	double us = (double)p->rtt_us + (double)e->server_ns / 1000.0;

	if (e->head_flops > 0) {
		if (p->compute_mflops == 0)
			return UINT32_MAX;	/* a head to run at an unknown rate */
		/* MFLOP/s = FLOP/us */
		us += (double)e->head_flops / (double)p->compute_mflops;
	}
	if (e->bytes > 0) {
		uint64_t dg = (e->bytes + ADV_DGRAM_PAYLOAD - 1) / ADV_DGRAM_PAYLOAD;
		double bits = 8.0 * (double)(e->bytes + dg * ADV_DGRAM_OVERHEAD);

		if (p->uplink_kbps == 0)
			return UINT32_MAX;
		us += bits * 1000.0 / (double)p->uplink_kbps;	/* kbit/s = bit/ms */
	}
	return us >= (double)UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)us;
}

void
adv_split_choose(const struct proto_hello *p, const struct adv_split_est *e, unsigned n,
		 uint8_t cur, struct adv_split_choice *out)
{
	uint32_t best = UINT32_MAX, at_cur = UINT32_MAX;
	int bi = -1;

	out->split = PROTO_NONE;
	out->latency_us = 0;
	out->within_slo = false;
	for (unsigned i = 0; i < n; i++) {
		uint32_t l;

		if (e[i].accuracy_bp != 0 && e[i].accuracy_bp < p->accuracy_floor_bp)
			continue;
		l = adv_split_latency_us(p, &e[i]);
		if (l == UINT32_MAX)
			continue;
		if (e[i].split == cur)
			at_cur = l;
		if (l < best) {
			best = l;
			bi = (int)i;
		}
	}
	if (bi < 0)
		return;
	out->split = e[bi].split;
	out->latency_us = best;
	/* Keep the device where it is unless moving gains more than 5%. */
	if (at_cur != UINT32_MAX && (uint64_t)at_cur * 100 <= (uint64_t)best * 105) {
		out->split = cur;
		out->latency_us = at_cur;
	}
	out->within_slo = p->slo_us == 0 || out->latency_us <= p->slo_us;
}
