/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: a tensor into datagrams and back. Sizes 0, 1, exactly one datagram, one byte more,
 * many chunks; LZ4 and raw chunks; reassembly in any order; a chunk whose LZ4 block does not
 * decompress to exactly its raw length is refused and writes nothing outside its range.
 */
#include "tests/harness.h"
#include "proto/proto.h"

#include <errno.h>
#include <lz4.h>
#include <stdlib.h>

enum { MTU_DGRAM = PROTO_DEFAULT_DGRAM, CAP = MTU_DGRAM - PROTO_REQUEST_LEN };

static uint8_t out[8 << 20];
static struct proto_dgram dg[8192];
static uint8_t slot[4 << 20];

static const struct proto_hdr hdr = { .client_id = 42, .request_id = 7, .session_id = 99 };

static uint32_t rng = 12345;

static uint8_t
rnd8(void)
{
	rng = rng * 1103515245u + 12345u;
	return (uint8_t)(rng >> 16);
}

static struct proto_request
req_for(unsigned dtype, uint32_t bytes)
{
	struct proto_request r = { .c = { .model_id = 1, .split_id = 2 }, .top_k = 3 };

	r.c.t.dtype = (uint8_t)dtype;
	r.c.t.raw_total = bytes;
	r.c.t.scale = dtype == PROTO_DT_U8 || dtype == PROTO_DT_S8 ? 0.1f : 1.0f;
	if (dtype != PROTO_DT_RAW) {
		r.c.t.ndim = 2;
		r.c.t.dims[0] = 1;
		r.c.t.dims[1] = bytes / proto_dtype_size(dtype);
	}
	return r;
}

/*
 * Chunk raw, check every datagram decodes on its own and places where it says, reassemble
 * in a shuffled order and compare. Returns the chunk count (0 on failure).
 */
static unsigned
chunk_and_reassemble(unsigned dtype, const uint8_t *raw, uint32_t bytes, size_t max_dgram,
		     bool lz4, unsigned *n_lz4)
{
	struct proto_request r = req_for(dtype, bytes);
	struct proto_limits lim;
	unsigned n = 0, bound, order[8192];
	size_t max_bytes, total_bytes = 0;
	uint64_t covered = 0;
	int rc;

	proto_limits_default(&lim);
	lim.max_dgram = (uint16_t)(max_dgram > 1200 ? max_dgram : 1200);
	lim.max_chunks = PROTO_MAX_CHUNKS;
	rc = proto_request_chunk(&hdr, &r, raw, max_dgram, lz4, out, sizeof(out), dg, 8192, &n);
	TH_CHECK_MSG(rc == 0, "chunk: %d", rc);
	if (rc != 0)
		return 0;
	TH_CHECK(proto_chunk_bound(PROTO_T_REQUEST, dtype, bytes, max_dgram, &bound,
				   &max_bytes) == 0);
	TH_CHECK_MSG(n >= 1 && n <= bound, "%u chunks, bound %u", n, bound);
	r.c.count = (uint16_t)n;	/* the template's is ignored; every chunk has the real one */
	memset(slot, 0xee, bytes + 64);
	*n_lz4 = 0;
	for (unsigned i = 0; i < n; i++)
		order[i] = i;
	for (unsigned i = n; i > 1; i--) {	/* Fisher-Yates */
		unsigned j = (unsigned)(rnd8() | rnd8() << 8) % i, t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	for (unsigned k = 0; k < n; k++) {
		const struct proto_dgram *d = &dg[order[k]];
		struct proto_msg m;
		enum proto_reason pr;

		total_bytes += d->len;
		TH_CHECK_MSG(d->len <= max_dgram, "datagram %u: %u bytes", order[k], d->len);
		pr = proto_decode(d->data, d->len, &lim, &m, NULL);
		TH_CHECK_MSG(pr == PROTO_OK, "datagram %u: %s", order[k], proto_reason_name(pr));
		if (pr != PROTO_OK)
			return 0;
		TH_CHECK(m.u.req.c.index == order[k] && m.u.req.c.count == n);
		TH_CHECK(proto_request_same_msg(&m.u.req, &r));
		TH_CHECK(m.u.req.c.raw_len % proto_dtype_size(dtype) == 0);
		if (m.u.req.c.lz4) {
			++*n_lz4;
			/* chosen only when it beats raw */
			TH_CHECK(m.u.req.c.payload_len < m.u.req.c.raw_len);
		}
		covered += m.u.req.c.raw_len;
		TH_CHECK(proto_chunk_unpack(&m.u.req.c, slot, bytes, NULL) == PROTO_OK);
	}
	TH_CHECK_MSG(total_bytes <= max_bytes, "%zu bytes, bound %zu", total_bytes, max_bytes);
	TH_CHECK(covered == bytes);
	TH_CHECK(bytes == 0 || memcmp(slot, raw, bytes) == 0);
	TH_CHECK(slot[bytes] == 0xee);
	return n;
}

static void
test_chunks_empty_tensor(void)
{
	unsigned nl, n = chunk_and_reassemble(PROTO_DT_RAW, NULL, 0, MTU_DGRAM, true, &nl);

	TH_CHECK(n == 1 && nl == 0);
	TH_CHECK(dg[0].len == PROTO_REQUEST_LEN);
	/* an empty chunk unpacks into nothing at all */
	{
		struct proto_msg m;

		TH_CHECK(proto_decode(dg[0].data, dg[0].len, NULL, &m, NULL) == PROTO_OK);
		TH_CHECK(proto_chunk_unpack(&m.u.req.c, NULL, 0, NULL) == PROTO_OK);
	}
}

static void
test_chunks_one_byte(void)
{
	const uint8_t one = 0x5a;
	unsigned nl, n = chunk_and_reassemble(PROTO_DT_U8, &one, 1, MTU_DGRAM, true, &nl);

	TH_CHECK(n == 1 && nl == 0);
	TH_CHECK(dg[0].len == PROTO_REQUEST_LEN + 1);
}

static void
test_chunks_exactly_one_datagram(void)
{
	static uint8_t raw[CAP + 1];
	unsigned nl, n;

	for (unsigned i = 0; i < sizeof(raw); i++)
		raw[i] = rnd8();	/* incompressible */
	n = chunk_and_reassemble(PROTO_DT_U8, raw, CAP, MTU_DGRAM, true, &nl);
	TH_CHECK(n == 1 && nl == 0 && dg[0].len == MTU_DGRAM);
	n = chunk_and_reassemble(PROTO_DT_U8, raw, CAP + 1, MTU_DGRAM, true, &nl);
	TH_CHECK(n == 2 && dg[0].len == MTU_DGRAM && dg[1].len == PROTO_REQUEST_LEN + 1);
}

static void
test_chunks_incompressible_tensor_raw(void)
{
	static uint8_t raw[10000];
	unsigned nl, n;

	for (unsigned i = 0; i < sizeof(raw); i++)
		raw[i] = rnd8();
	n = chunk_and_reassemble(PROTO_DT_U8, raw, sizeof(raw), MTU_DGRAM, true, &nl);
	TH_CHECK_MSG(n == (sizeof(raw) + CAP - 1) / CAP && nl == 0, "%u chunks, %u lz4", n, nl);
}

/* A post-ReLU f32 feature map: 70% zeros, the rest small values. */
static void
relu_tensor(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = rnd8() < 180 ? 0.0f : (float)rnd8() / 64.0f;
}

static void
test_chunks_sparse_tensor_with_lz4(void)
{
	static float x[32 * 14 * 14];
	unsigned nl, n, n_raw, nl_raw;

	relu_tensor(x, sizeof(x) / 4);
	n = chunk_and_reassemble(PROTO_DT_F32, (const uint8_t *)x, sizeof(x), MTU_DGRAM, true,
				 &nl);
	n_raw = chunk_and_reassemble(PROTO_DT_F32, (const uint8_t *)x, sizeof(x), MTU_DGRAM,
				     false, &nl_raw);
	TH_CHECK(nl_raw == 0 && n_raw == (sizeof(x) + (CAP / 4 * 4) - 1) / (CAP / 4 * 4));
	TH_CHECK_MSG(nl > 0 && n < n_raw, "lz4: %u chunks (%u lz4), raw: %u", n, nl, n_raw);
}

static void
test_chunks_quantized_tensors_on_element_boundaries(void)
{
	static float x[4000];
	static uint8_t q[8000];
	unsigned nl, n;

	relu_tensor(x, 4000);
	TH_CHECK(proto_quantize(PROTO_DT_F16, x, 4000, 1, 0, q) == 0);
	n = chunk_and_reassemble(PROTO_DT_F16, q, 8000, MTU_DGRAM, true, &nl);
	TH_CHECK(n >= 1);
	/* an odd datagram size: chunks still end on whole f32 elements */
	n = chunk_and_reassemble(PROTO_DT_F32, (const uint8_t *)x, 16000, 1201, true, &nl);
	TH_CHECK(n >= 1);
	n = chunk_and_reassemble(PROTO_DT_F32, (const uint8_t *)x, 16000, 1201, false, &nl);
	TH_CHECK(n == (16000 + 1096 - 1) / 1096);	/* 1201 - 104 = 1097 -> 1096 */
}

static void
test_chunks_large_zero_tensor_into_few_datagrams(void)
{
	static uint8_t zeros[1 << 20];
	unsigned nl, n = chunk_and_reassemble(PROTO_DT_U8, zeros, sizeof(zeros), MTU_DGRAM, true,
					      &nl);

	/* LZ4 tops out near 255:1, so a MiB of zeros is a handful of datagrams, not 767. */
	TH_CHECK_MSG(n >= 2 && n <= 8 && nl == n, "%u chunks, %u lz4", n, nl);
}

static void
test_response_tensor_chunks(void)
{
	static float y[1000];
	struct proto_response r = { .c = { .model_id = 1 }, .status = PROTO_ST_OK,
				    .result_kind = PROTO_RES_TENSOR, .exit_taken = 2,
				    .batch_size = 4 };
	unsigned n = 0;

	for (unsigned i = 0; i < 1000; i++)
		y[i] = (float)i * 0.25f;
	r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_F32, .ndim = 2, .dims = { 1, 1000 },
				       .raw_total = 4000, .scale = 1 };
	TH_CHECK(proto_response_chunk(&hdr, &r, y, MTU_DGRAM, true, out, sizeof(out), dg, 64,
				      &n) == 0);
	TH_CHECK(n >= 1 && n <= 3);
	memset(slot, 0, 4000);
	for (unsigned i = 0; i < n; i++) {
		struct proto_msg m;

		TH_CHECK(proto_decode(dg[i].data, dg[i].len, NULL, &m, NULL) == PROTO_OK);
		TH_CHECK(m.h.type == PROTO_T_RESPONSE && m.u.resp.batch_size == 4);
		TH_CHECK(m.u.resp.result_kind == PROTO_RES_TENSOR && m.u.resp.c.count == n);
		TH_CHECK(proto_chunk_unpack(&m.u.resp.c, slot, 4000, NULL) == PROTO_OK);
	}
	TH_CHECK(memcmp(slot, y, 4000) == 0);
}

/*
 * A TENSOR answer of many chunks (docs/protocol.md 7.2): every chunk repeats status, timing
 * and advice, decodes alone, re-encodes to the same bytes, and the chunks in any order tile
 * the tensor: f32 noise (raw chunks) and a U8 tensor with its quantization (LZ4 chunks), at
 * the smallest max_dgram a device may give.
 */
static void
test_response_tensor_many_chunks(void)
{
	static uint8_t enc[2048];
	struct proto_response r = { .c = { .model_id = 9, .variant_id = 1, .split_id = 3 },
				    .status = PROTO_ST_OK, .result_kind = PROTO_RES_TENSOR,
				    .exit_taken = 1, .batch_size = 8, .queue_us = 120,
				    .compute_us = 900, .advice_variant = 1, .advice_split = 2,
				    .advice_latency_us = 5000 };
	const uint32_t sizes[2] = { 200000, 300000 };

	for (unsigned k = 0; k < 2; k++) {
		uint32_t bytes = sizes[k];
		unsigned n = 0, n_lz4 = 0, bound;
		size_t max_bytes;
		uint64_t covered = 0;

		if (k == 0) {
			r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_F32, .ndim = 2,
						       .dims = { 1, bytes / 4 },
						       .raw_total = bytes, .scale = 1 };
			for (uint32_t i = 0; i < bytes; i++)
				slot[i] = rnd8();
		} else {
			r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_U8, .ndim = 3,
						       .dims = { 1, 300, 1000 },
						       .raw_total = bytes, .scale = 0.05f,
						       .zero_point = 7 };
			for (uint32_t i = 0; i < bytes; i++)
				slot[i] = (uint8_t)(i / 700 % 5 == 0 ? rnd8() : 0);
		}
		memcpy(out + (4 << 20), slot, bytes);	/* the original, out of the way */
		TH_CHECK(proto_response_chunk(&hdr, &r, out + (4 << 20), PROTO_HELLO_MIN_DGRAM,
					      true, out, 4 << 20, dg, 8192, &n) == 0);
		TH_CHECK(proto_chunk_bound(PROTO_T_RESPONSE, r.c.t.dtype, bytes,
					   PROTO_HELLO_MIN_DGRAM, &bound, &max_bytes) == 0);
		TH_CHECK_MSG(n > 40 && n <= bound, "%u chunks, bound %u", n, bound);
		r.c.count = (uint16_t)n;	/* the template's is ignored */
		memset(slot, 0xee, bytes);
		for (unsigned j = 0; j < n; j++) {
			unsigned i = (j * 7919u) % n;	/* a permutation: 7919 is prime, > n */
			struct proto_msg m;
			int len;

			TH_CHECK(dg[i].len <= PROTO_HELLO_MIN_DGRAM);
			if (proto_decode(dg[i].data, dg[i].len, NULL, &m, NULL) != PROTO_OK) {
				TH_CHECK_MSG(0, "chunk %u refused", i);
				return;
			}
			TH_CHECK(m.u.resp.c.index == i && m.u.resp.c.count == n);
			TH_CHECK(proto_response_same_msg(&m.u.resp, &r));
			TH_CHECK(m.u.resp.queue_us == 120 && m.u.resp.compute_us == 900 &&
				 m.u.resp.advice_split == 2 && m.u.resp.batch_size == 8);
			TH_CHECK(m.u.resp.c.t.zero_point == r.c.t.zero_point);
			n_lz4 += m.u.resp.c.lz4;
			covered += m.u.resp.c.raw_len;
			m.h.flags &= (uint16_t)~PROTO_F_LZ4;	/* the encoder's to set */
			len = proto_encode_response(enc, sizeof(enc), &m.h, &m.u.resp);
			TH_CHECK(len == (int)dg[i].len && memcmp(enc, dg[i].data, dg[i].len) == 0);
			TH_CHECK(proto_chunk_unpack(&m.u.resp.c, slot, bytes, NULL) == PROTO_OK);
		}
		TH_CHECK(covered == bytes);
		TH_CHECK(memcmp(slot, out + (4 << 20), bytes) == 0);
		TH_CHECK_MSG(k == 0 ? n_lz4 == 0 : n_lz4 > n / 2, "%u of %u chunks LZ4", n_lz4, n);
	}
}

static void
test_chunker_refuses_what_does_not_fit(void)
{
	static uint8_t raw[5000];
	struct proto_request r = req_for(PROTO_DT_U8, sizeof(raw));
	unsigned n, bound;
	size_t bytes;

	for (unsigned i = 0; i < sizeof(raw); i++)
		raw[i] = rnd8();
	TH_CHECK(proto_request_chunk(&hdr, &r, raw, MTU_DGRAM, true, out, sizeof(out), dg, 3,
				     &n) == -E2BIG);
	TH_CHECK(proto_request_chunk(&hdr, &r, raw, MTU_DGRAM, true, out, 2000, dg, 64, &n) ==
		 -ENOSPC);
	TH_CHECK(proto_chunk_bound(PROTO_T_REQUEST, PROTO_DT_U8, sizeof(raw), MTU_DGRAM, &bound,
				   &bytes) == 0);
	TH_CHECK(bound == 4 && bytes == 4 * PROTO_REQUEST_LEN + sizeof(raw));
	TH_CHECK(proto_request_chunk(&hdr, &r, raw, MTU_DGRAM, true, out, bytes, dg, bound,
				     &n) == 0);	/* the bound is enough */
	/* no room for one f32 element after the header */
	r = req_for(PROTO_DT_F32, 400);
	TH_CHECK(proto_request_chunk(&hdr, &r, raw, PROTO_REQUEST_LEN + 3, true, out,
				     sizeof(out), dg, 64, &n) == -EINVAL);
	/* a tensor the wire refuses: shape says 100 elements, raw_total 401 bytes */
	r.c.t.raw_total = 401;
	TH_CHECK(proto_request_chunk(&hdr, &r, raw, MTU_DGRAM, true, out, sizeof(out), dg, 64,
				     &n) == -EINVAL);
	TH_CHECK(proto_chunk_bound(PROTO_T_NACK, PROTO_DT_U8, 10, MTU_DGRAM, &bound, &bytes) ==
		 -EINVAL);
}

/* One LZ4 chunk by hand: raw_len as declared, or lying about it. */
static struct proto_chunk
lz4_chunk(const uint8_t *raw, int raw_n, uint8_t *comp, int declared)
{
	struct proto_chunk c = { .count = 1, .raw_len = (uint32_t)declared, .lz4 = true,
				 .payload = comp };

	c.t = (struct proto_tensor){ .dtype = PROTO_DT_RAW, .raw_total = (uint32_t)declared,
				     .scale = 1 };
	c.payload_len = (uint32_t)LZ4_compress_default((const char *)raw, (char *)comp, raw_n,
						       LZ4_compressBound(raw_n));
	return c;
}

static void
test_unpack_refuses_lz4_of_wrong_length(void)
{
	static uint8_t raw[600], comp[1024], dst[700];
	struct proto_stats st = { 0 };
	struct proto_chunk c;

	memset(raw, 'a', 300);
	for (unsigned i = 300; i < 600; i++)
		raw[i] = rnd8();
	c = lz4_chunk(raw, 600, comp, 600);
	memset(dst, 0xee, sizeof(dst));
	TH_CHECK(proto_chunk_unpack(&c, dst, 600, &st) == PROTO_OK);
	TH_CHECK(memcmp(dst, raw, 600) == 0 && st.reject[PROTO_E_LZ4] == 0);
	/* declares more than the block holds: short output refused, not zero-filled */
	c = lz4_chunk(raw, 600, comp, 640);
	TH_CHECK(proto_chunk_unpack(&c, dst, 640, &st) == PROTO_E_LZ4);
	TH_CHECK(st.reject[PROTO_E_LZ4] == 1);
	/* declares less than the block holds: decoding would overrun, refused */
	c = lz4_chunk(raw, 600, comp, 599);
	c.raw_offset = 50;
	c.t.raw_total = 650;
	memset(dst, 0xee, sizeof(dst));
	TH_CHECK(proto_chunk_unpack(&c, dst, 650, &st) == PROTO_E_LZ4);
	TH_CHECK(st.reject[PROTO_E_LZ4] == 2);
	/* whatever it wrote stayed inside [raw_offset, raw_offset + raw_len) */
	TH_CHECK(dst[49] == 0xee && dst[649] == 0xee && dst[650] == 0xee);
	/* garbage and a truncated block */
	c = lz4_chunk(raw, 600, comp, 600);
	c.payload_len -= 5;
	TH_CHECK(proto_chunk_unpack(&c, dst, 600, &st) == PROTO_E_LZ4);
	memset(comp, 0xff, 64);
	c.payload_len = 64;
	TH_CHECK(proto_chunk_unpack(&c, dst, 600, &st) == PROTO_E_LZ4);
	c.payload_len = 0;
	TH_CHECK(proto_chunk_unpack(&c, dst, 600, &st) == PROTO_E_LZ4);
	TH_CHECK(st.reject[PROTO_E_LZ4] == 5);
}

static void
test_lz4_chunk_of_wrong_length_passes_decode_fails_unpack(void)
{
	static uint8_t raw[400], comp[512], d[PROTO_REQUEST_LEN + 512], dst[401];
	struct proto_request r = { .top_k = 0 };
	struct proto_msg m;
	int n;

	memset(raw, 7, sizeof(raw));
	r.c = lz4_chunk(raw, 400, comp, 401);
	r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_U8, .ndim = 1, .dims = { 401 },
				       .raw_total = 401, .scale = 1 };
	n = proto_encode_request(d, sizeof(d), &hdr, &r);
	TH_CHECK(n > 0);
	TH_CHECK(proto_decode(d, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(proto_chunk_unpack(&m.u.req.c, dst, sizeof(dst), NULL) == PROTO_E_LZ4);
}

static void
test_unpack_refuses_range_outside_slot_and_raw_mismatch(void)
{
	static uint8_t p[16], dst[32];
	struct proto_stats st = { 0 };
	struct proto_chunk c = { .raw_offset = 24, .raw_len = 16, .payload = p,
				 .payload_len = 16 };

	TH_CHECK(proto_chunk_unpack(&c, dst, sizeof(dst), &st) == PROTO_E_CHUNK_RANGE);
	c.raw_offset = 0xfffffff8u;
	TH_CHECK(proto_chunk_unpack(&c, dst, sizeof(dst), &st) == PROTO_E_CHUNK_RANGE);
	c.raw_offset = 16;
	TH_CHECK(proto_chunk_unpack(&c, dst, sizeof(dst), &st) == PROTO_OK);
	c.payload_len = 15;
	TH_CHECK(proto_chunk_unpack(&c, dst, sizeof(dst), &st) == PROTO_E_RAW_LEN);
	TH_CHECK(st.reject[PROTO_E_CHUNK_RANGE] == 2 && st.reject[PROTO_E_RAW_LEN] == 1);
}

int
main(void)
{
	TH_RUN(test_chunks_empty_tensor);
	TH_RUN(test_chunks_one_byte);
	TH_RUN(test_chunks_exactly_one_datagram);
	TH_RUN(test_chunks_incompressible_tensor_raw);
	TH_RUN(test_chunks_sparse_tensor_with_lz4);
	TH_RUN(test_chunks_quantized_tensors_on_element_boundaries);
	TH_RUN(test_chunks_large_zero_tensor_into_few_datagrams);
	TH_RUN(test_response_tensor_chunks);
	TH_RUN(test_response_tensor_many_chunks);
	TH_RUN(test_chunker_refuses_what_does_not_fit);
	TH_RUN(test_unpack_refuses_lz4_of_wrong_length);
	TH_RUN(test_lz4_chunk_of_wrong_length_passes_decode_fails_unpack);
	TH_RUN(test_unpack_refuses_range_outside_slot_and_raw_mismatch);
	TH_DONE();
}
