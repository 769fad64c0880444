/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client's pieces that need no socket: the pacer, NACK bookkeeping, and a request's
 * datagrams (quantize, then proto_request_chunk). No allocation.
 */
#include "client/tgc_int.h"

#include <errno.h>
#include <string.h>

enum { TGC_MIN_TIMER_MS = 20 };	/* docs/protocol.md 12.2: the request timer's floor */

void
tgc_pacer_init(struct tgc_pacer *p, uint32_t kbps, uint32_t burst, uint64_t now_ns)
{
	p->rate_bps = (uint64_t)kbps * 1000u;
	p->burst = burst > 0 ? burst : 1;
	p->tokens = p->burst;
	p->last_ns = now_ns;
}

static void
tgc_pacer_refill(struct tgc_pacer *p, uint64_t now_ns)
{
	if (now_ns <= p->last_ns)
		return;
	p->tokens += (double)(now_ns - p->last_ns) * (double)p->rate_bps / 8e9;
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	p->last_ns = now_ns;
}

uint64_t
tgc_pacer_delay(struct tgc_pacer *p, uint32_t n, uint64_t now_ns)
{
	double need;

	if (p->rate_bps == 0)
		return 0;
	tgc_pacer_refill(p, now_ns);
	/* A datagram larger than the bucket waits for a full bucket and runs into debt. */
	need = (double)n < p->burst ? (double)n : p->burst;
	if (p->tokens >= need)
		return 0;
	return (uint64_t)((need - p->tokens) * 8e9 / (double)p->rate_bps) + 1;
}

void
tgc_pacer_take(struct tgc_pacer *p, uint32_t n, uint64_t now_ns)
{
	if (p->rate_bps == 0)
		return;
	tgc_pacer_refill(p, now_ns);
	p->tokens -= n;
}

unsigned
tgc_nack_mark(const struct proto_nack *n, uint16_t count, uint64_t *resend)
{
	unsigned marked = 0;

	if (n->chunk_count != count)
		return 0;
	for (unsigned r = 0; r < n->n_ranges; r++)
		if ((uint32_t)n->ranges[r].first + n->ranges[r].count > count)
			return 0;
	for (unsigned r = 0; r < n->n_ranges; r++)
		for (unsigned i = n->ranges[r].first;
		     i < (unsigned)n->ranges[r].first + n->ranges[r].count; i++) {
			uint64_t bit = 1ull << (i % 64);

			if (!(resend[i / 64] & bit)) {
				resend[i / 64] |= bit;
				marked++;
			}
		}
	return marked;
}

uint64_t
tgc_timer_us(uint32_t rtt_us, uint16_t nack_gap_ms, uint32_t srv_us)
{
	uint64_t us = 2ull * (rtt_us ? rtt_us : 1000u) + 1000ull * nack_gap_ms + srv_us;

	return us < TGC_MIN_TIMER_MS * 1000u ? TGC_MIN_TIMER_MS * 1000u : us;
}

uint64_t
tgc_budget_us(uint32_t deadline_us, uint16_t reasm_timeout_ms, uint64_t timer_us)
{
	/* Without a deadline: long enough for a whole resend after the gateway gave up on an
	 * incomplete first copy (reasm_timeout_ms), and then some. */
	uint64_t b = deadline_us != 0 ? deadline_us : 2000ull * (reasm_timeout_ms ? reasm_timeout_ms
										 : 1000u);

	return b + timer_us;
}

unsigned
tgc_wire_dtype(enum tg_dtype dt)
{
	switch (dt) {
	case TG_DT_F32: return PROTO_DT_F32;
	case TG_DT_F16: return PROTO_DT_F16;
	case TG_DT_S8: return PROTO_DT_S8;
	case TG_DT_U8: return PROTO_DT_U8;
	default: return PROTO_DT_RAW;
	}
}

int
tgc_build_request(const struct proto_hdr *h, struct proto_request *rq,
		  const struct tg_tensor *t, unsigned dtype, size_t max_dgram, uint8_t *q,
		  size_t q_cap, uint8_t *out, size_t out_cap, struct proto_dgram *dg,
		  unsigned max_dg, unsigned *n_dg, struct tg_err *err)
{
	size_t numel, bytes;
	const void *raw;
	int rc;

	if (t == NULL || t->data == NULL || t->dtype != TG_DT_F32)
		return tg_err_set(err, -EINVAL, "tensor: an f32 tensor with data is required");
	if (t->ndim < 1 || t->ndim > PROTO_MAX_DIMS)
		return tg_err_set(err, -EINVAL, "tensor: ndim %d not in 1..%d", t->ndim,
				  PROTO_MAX_DIMS);
	if (proto_dtype_size(dtype) == 0 || dtype == PROTO_DT_RAW)
		return tg_err_set(err, -EINVAL, "wire dtype %u: not f32, f16, s8 or u8", dtype);
	numel = tg_tensor_numel(t);
	bytes = numel * proto_dtype_size(dtype);
	if (bytes > PROTO_MAX_MSG_BYTES)
		return tg_err_set(err, -E2BIG, "tensor: %zu bytes over the wire cap", bytes);
	memset(&rq->c.t, 0, sizeof(rq->c.t));
	rq->c.t.dtype = (uint8_t)dtype;
	rq->c.t.ndim = (uint8_t)t->ndim;
	for (int d = 0; d < t->ndim; d++) {
		if (t->dims[d] <= 0 || t->dims[d] > UINT32_MAX)
			return tg_err_set(err, -EINVAL, "tensor: dim %d is %lld", d,
					  (long long)t->dims[d]);
		rq->c.t.dims[d] = (uint32_t)t->dims[d];
	}
	rq->c.t.raw_total = (uint32_t)bytes;
	rq->c.t.scale = 1.0f;
	rq->c.t.zero_point = 0;
	if (dtype == PROTO_DT_F32) {
		raw = t->data;	/* little endian already: sent as it is */
	} else {
		if (bytes > q_cap)
			return tg_err_set(err, -E2BIG, "tensor: %zu quantized bytes, room for %zu",
					  bytes, q_cap);
		rc = proto_quant_params(dtype, t->data, numel, &rq->c.t.scale,
					&rq->c.t.zero_point);
		if (rc == 0)
			rc = proto_quantize(dtype, t->data, numel, rq->c.t.scale,
					    rq->c.t.zero_point, q);
		if (rc < 0)
			return tg_err_set(err, rc, "quantize to dtype %u failed", dtype);
		raw = q;
	}
	rc = proto_request_chunk(h, rq, raw, max_dgram, true, out, out_cap, dg, max_dg, n_dg);
	if (rc == -E2BIG)
		return tg_err_set(err, rc, "tensor: %zu bytes need more than %u chunks of %zu bytes",
				  bytes, max_dg, max_dgram);
	if (rc < 0)
		return tg_err_set(err, rc, "chunking %zu bytes into %zu-byte datagrams failed",
				  bytes, max_dgram);
	return 0;
}
