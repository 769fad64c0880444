/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: every message round-trips field for field and byte for byte; every reason the
 * decoder can give is produced by one bad input, and exactly its counter moves.
 */
#include "tests/harness.h"
#include "proto/proto.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static uint8_t buf[PROTO_MAX_DGRAM];

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void
putf(uint8_t *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	put32(p, u);
}

/*
 * Decode and check the result is want and that exactly one counter moved: rx[type] on
 * success, reject[want] otherwise.
 */
static void
expect_at(int line, const uint8_t *b, size_t len, const struct proto_limits *lim,
	  enum proto_reason want)
{
	struct proto_stats st = { 0 };
	struct proto_msg m;
	enum proto_reason got = proto_decode(b, len, lim, &m, &st);
	uint64_t total = 0;

	TH_CHECK_MSG(got == want, "line %d: got %s, want %s", line, proto_reason_name(got),
		     proto_reason_name(want));
	for (unsigned i = 0; i < PROTO_T__COUNT; i++)
		total += st.rx[i];
	for (unsigned i = 0; i < PROTO_REASON__COUNT; i++)
		total += st.reject[i];
	TH_CHECK_MSG(total == 1, "line %d: %llu counters moved", line, (unsigned long long)total);
	if (want == PROTO_OK)
		TH_CHECK_MSG(st.rx[m.h.type] == 1, "line %d: rx not counted", line);
	else
		TH_CHECK_MSG(st.reject[want] == 1, "line %d: reject not counted", line);
}
#define EXPECT(b, len, lim, want) expect_at(__LINE__, (b), (len), (lim), (want))

static const struct proto_hdr hdr = {
	.client_id = 0x01020304, .request_id = 0x0a0b0c0d, .session_id = 0x1122334455667788ull,
};

static uint8_t req_payload[32];

/* A valid one-chunk REQUEST: s8 [1,4,4,2], raw. */
static struct proto_request
req_valid(void)
{
	struct proto_request r = {
		.c = { .model_id = 7, .variant_id = 1, .split_id = 3, .index = 0, .count = 1,
		       .t = { .dtype = PROTO_DT_S8, .ndim = 4, .dims = { 1, 4, 4, 2 },
			      .raw_total = 32, .scale = 0.05f, .zero_point = -3 },
		       .raw_offset = 0, .raw_len = 32, .payload = req_payload, .payload_len = 32 },
		.top_k = 5, .flags = PROTO_RF_NO_EARLY_EXIT, .deadline_us = 20000,
	};

	for (unsigned i = 0; i < sizeof(req_payload); i++)
		req_payload[i] = (uint8_t)(i * 7);
	return r;
}

static int
req_encode(const struct proto_request *r)
{
	int n = proto_encode_request(buf, sizeof(buf), &hdr, r);

	TH_CHECK_MSG(n > 0, "encode: %d", n);
	return n;
}

static int
hello_encode(size_t pad)
{
	struct proto_hello m = { .compute_mflops = 1200, .uplink_kbps = 5000, .rtt_us = 4000,
				 .slo_us = 50000, .accuracy_floor_bp = 8500, .max_dgram = 1472,
				 .catalog_start = 0 };
	int n = proto_encode_hello(buf, sizeof(buf), &(struct proto_hdr){ .client_id = 9 }, &m,
				   pad);

	TH_CHECK_MSG(n == (int)pad, "encode: %d", n);
	return n;
}

static void
entry_make(struct proto_catalog_entry *e, uint16_t model, uint8_t split, const char *name)
{
	*e = (struct proto_catalog_entry){ .model_id = model, .variant_id = 0, .split_id = split,
					   .ndim = 4, .dtype_mask = 0x1e, .n_classes = 10,
					   .dims = { 1, 32, 14, 14 }, .head_kflop = 1500,
					   .tail_kflop = 9000, .tail_us = 350, .accuracy_bp = 9012,
					   .n_exits = 2 };
	snprintf(e->name, sizeof(e->name), "%s", name);
}

static int
hello_reply_encode(unsigned count)
{
	struct proto_catalog_entry e[4];
	struct proto_hello_reply m = { .session_ttl_ms = 60000, .max_msg_bytes = 4u << 20,
				       .catalog_gen = 3, .max_dgram = 1472, .max_chunks = 4096,
				       .max_inflight = 8, .nack_gap_ms = 10,
				       .reasm_timeout_ms = 200, .catalog_total = 5,
				       .catalog_start = 1, .catalog_count = (uint16_t)count };
	int n;

	for (unsigned i = 0; i < 4; i++)
		entry_make(&e[i], 7, (uint8_t)(i + 1), "fmnist-resnet");
	n = proto_encode_hello_reply(buf, sizeof(buf), &hdr, &m, e);
	TH_CHECK_MSG(n == PROTO_HELLO_REPLY_LEN + 64 * (int)count, "encode: %d", n);
	return n;
}

static int
resp_topk_encode(void)
{
	static uint8_t scratch[PROTO_MAX_TOP_K * 8];
	struct proto_topk k[3] = { { 4, 0.75f }, { 2, 0.2f }, { 9, 0.05f } };
	struct proto_response r = { .c = { .model_id = 7, .split_id = 3 }, .status = PROTO_ST_OK,
				    .exit_taken = 1, .advice_variant = 0, .advice_split = 4,
				    .batch_size = 12, .queue_us = 800, .compute_us = 2100,
				    .advice_latency_us = 9000 };
	int n;

	TH_CHECK(proto_response_set_topk(&r, scratch, k, 3) == 0);
	n = proto_encode_response(buf, sizeof(buf), &hdr, &r);
	TH_CHECK_MSG(n == PROTO_RESPONSE_LEN + 24, "encode: %d", n);
	return n;
}

static int
nack_encode(void)
{
	struct proto_nack m = { .chunk_count = 20, .n_ranges = 3,
				.ranges = { { 1, 2 }, { 5, 1 }, { 10, 10 } } };
	int n = proto_encode_nack(buf, sizeof(buf), &hdr, &m);

	TH_CHECK_MSG(n == PROTO_NACK_LEN + 12, "encode: %d", n);
	return n;
}

static int
error_encode(void)
{
	struct proto_error m = { .status = PROTO_ST_OVERLOADED, .reason = PROTO_E_QUEUE_FULL,
				 .ref_type = PROTO_T_REQUEST, .min_version = 1, .max_version = 1,
				 .chunk_index = 2 };
	int n = proto_encode_error(buf, sizeof(buf), &hdr, &m);

	TH_CHECK_MSG(n == PROTO_ERROR_LEN, "encode: %d", n);
	return n;
}

/* Decode, re-encode what was decoded, and get the same bytes back. */
static void
check_reencode(const uint8_t *b, size_t len)
{
	static uint8_t again[PROTO_MAX_DGRAM];
	struct proto_catalog_entry e[16];
	struct proto_msg m;
	int n = -1;

	TH_CHECK(proto_decode(b, len, NULL, &m, NULL) == PROTO_OK);
	switch (m.h.type) {
	case PROTO_T_HELLO:
		n = proto_encode_hello(again, sizeof(again), &m.h, &m.u.hello, len);
		break;
	case PROTO_T_HELLO_REPLY:
		for (unsigned i = 0; i < m.u.hello_reply.catalog_count && i < 16; i++)
			proto_catalog_get(&m.u.hello_reply, i, &e[i]);
		n = proto_encode_hello_reply(again, sizeof(again), &m.h, &m.u.hello_reply, e);
		break;
	case PROTO_T_REQUEST:
		m.h.flags &= (uint16_t)~PROTO_F_LZ4;
		n = proto_encode_request(again, sizeof(again), &m.h, &m.u.req);
		break;
	case PROTO_T_RESPONSE:
		m.h.flags &= (uint16_t)~PROTO_F_LZ4;
		n = proto_encode_response(again, sizeof(again), &m.h, &m.u.resp);
		break;
	case PROTO_T_NACK:
		n = proto_encode_nack(again, sizeof(again), &m.h, &m.u.nack);
		break;
	case PROTO_T_ERROR:
		n = proto_encode_error(again, sizeof(again), &m.h, &m.u.error);
		break;
	}
	TH_CHECK_MSG(n == (int)len, "re-encode: %d of %zu", n, len);
	if (n == (int)len)
		TH_CHECK(memcmp(again, b, len) == 0);
}

/* ---- round trips ---- */

static void
test_request_round_trips(void)
{
	struct proto_request r = req_valid();
	struct proto_msg m;
	int n = req_encode(&r);

	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.h.version == PROTO_VERSION && m.h.type == PROTO_T_REQUEST);
	TH_CHECK(m.h.client_id == hdr.client_id && m.h.request_id == hdr.request_id);
	TH_CHECK(m.h.session_id == hdr.session_id && m.h.flags == 0 && m.h.payload_len == 32);
	TH_CHECK(m.u.req.c.model_id == 7 && m.u.req.c.variant_id == 1 && m.u.req.c.split_id == 3);
	TH_CHECK(m.u.req.c.t.dtype == PROTO_DT_S8 && m.u.req.c.t.ndim == 4);
	TH_CHECK(m.u.req.c.t.dims[1] == 4 && m.u.req.c.t.dims[3] == 2 && m.u.req.c.t.dims[4] == 0);
	TH_CHECK(m.u.req.c.t.scale == 0.05f && m.u.req.c.t.zero_point == -3);
	TH_CHECK(m.u.req.top_k == 5 && m.u.req.flags == PROTO_RF_NO_EARLY_EXIT);
	TH_CHECK(m.u.req.deadline_us == 20000);
	TH_CHECK(m.u.req.c.payload == buf + PROTO_REQUEST_LEN && m.u.req.c.payload_len == 32);
	TH_CHECK(memcmp(m.u.req.c.payload, req_payload, 32) == 0);
	TH_CHECK(proto_request_same_msg(&r, &m.u.req));
	check_reencode(buf, (size_t)n);
}

static void
test_hello_round_trips(void)
{
	struct proto_msg m;
	int n = hello_encode(PROTO_HELLO_MIN_DGRAM);

	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.h.type == PROTO_T_HELLO && m.h.client_id == 9 && m.h.session_id == 0);
	TH_CHECK(m.u.hello.compute_mflops == 1200 && m.u.hello.uplink_kbps == 5000);
	TH_CHECK(m.u.hello.rtt_us == 4000 && m.u.hello.slo_us == 50000);
	TH_CHECK(m.u.hello.accuracy_floor_bp == 8500 && m.u.hello.max_dgram == 1472);
	check_reencode(buf, (size_t)n);
	n = hello_encode(1472);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	check_reencode(buf, (size_t)n);
}

static void
test_hello_reply_round_trips(void)
{
	struct proto_catalog_entry e;
	struct proto_msg m;
	int n = hello_reply_encode(3);

	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.hello_reply.session_ttl_ms == 60000 && m.u.hello_reply.catalog_gen == 3);
	TH_CHECK(m.u.hello_reply.max_chunks == 4096 && m.u.hello_reply.max_inflight == 8);
	TH_CHECK(m.u.hello_reply.nack_gap_ms == 10 && m.u.hello_reply.reasm_timeout_ms == 200);
	TH_CHECK(m.u.hello_reply.catalog_total == 5 && m.u.hello_reply.catalog_start == 1);
	TH_CHECK(m.u.hello_reply.catalog_count == 3);
	proto_catalog_get(&m.u.hello_reply, 2, &e);
	TH_CHECK(e.model_id == 7 && e.split_id == 3 && e.ndim == 4 && e.dims[1] == 32);
	TH_CHECK(e.dtype_mask == 0x1e && e.n_classes == 10 && e.tail_us == 350);
	TH_CHECK(e.accuracy_bp == 9012 && e.n_exits == 2 && strcmp(e.name, "fmnist-resnet") == 0);
	check_reencode(buf, (size_t)n);
	n = hello_reply_encode(0);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
}

static void
test_response_topk_round_trips(void)
{
	struct proto_topk k;
	struct proto_msg m;
	int n = resp_topk_encode();

	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.resp.status == PROTO_ST_OK && m.u.resp.result_kind == PROTO_RES_TOPK);
	TH_CHECK(m.u.resp.top_k == 3 && m.u.resp.exit_taken == 1 && m.u.resp.batch_size == 12);
	TH_CHECK(m.u.resp.queue_us == 800 && m.u.resp.compute_us == 2100);
	TH_CHECK(m.u.resp.advice_split == 4 && m.u.resp.advice_latency_us == 9000);
	proto_topk_get(&m.u.resp, 0, &k);
	TH_CHECK(k.class_id == 4 && k.score == 0.75f);
	proto_topk_get(&m.u.resp, 2, &k);
	TH_CHECK(k.class_id == 9 && k.score == 0.05f);
	check_reencode(buf, (size_t)n);
}

static void
test_response_status_and_echo_round_trip(void)
{
	struct proto_response r = { .c = { .model_id = 7, .count = 1,
					   .t = { .dtype = PROTO_DT_RAW, .scale = 1 } },
				    .status = PROTO_ST_DEADLINE_INFEASIBLE,
				    .exit_taken = PROTO_NONE, .advice_variant = 0,
				    .advice_split = 6, .advice_latency_us = 30000 };
	struct proto_msg m;
	int n = proto_encode_response(buf, sizeof(buf), &hdr, &r);

	TH_CHECK(n == PROTO_RESPONSE_LEN);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.resp.status == PROTO_ST_DEADLINE_INFEASIBLE && m.u.resp.advice_split == 6);
	check_reencode(buf, (size_t)n);

	r.status = PROTO_ST_OK;
	r.c.model_id = PROTO_MODEL_ECHO;
	r.result_kind = PROTO_RES_ECHO;
	r.echo_crc32c = 0xE3069283;
	r.echo_bytes = 9;
	n = proto_encode_response(buf, sizeof(buf), &hdr, &r);
	TH_CHECK(n == PROTO_RESPONSE_LEN);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.resp.echo_crc32c == 0xE3069283 && m.u.resp.echo_bytes == 9);
	check_reencode(buf, (size_t)n);
}

static void
test_nack_and_error_round_trip(void)
{
	struct proto_msg m;
	int n = nack_encode();

	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.nack.chunk_count == 20 && m.u.nack.n_ranges == 3);
	TH_CHECK(m.u.nack.ranges[2].first == 10 && m.u.nack.ranges[2].count == 10);
	check_reencode(buf, (size_t)n);
	n = error_encode();
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.error.status == PROTO_ST_OVERLOADED && m.u.error.chunk_index == 2);
	TH_CHECK(m.u.error.reason == PROTO_E_QUEUE_FULL && m.u.error.ref_type == PROTO_T_REQUEST);
	check_reencode(buf, (size_t)n);
}

static void
test_mac_flag_carries_mac(void)
{
	struct proto_request r = req_valid();
	struct proto_hdr h = hdr;
	struct proto_msg m;
	int n;

	h.flags = PROTO_F_MAC | PROTO_F_RETRANSMIT;
	for (unsigned i = 0; i < PROTO_MAC_LEN; i++)
		h.mac[i] = (uint8_t)(0xa0 + i);
	n = proto_encode_request(buf, sizeof(buf), &h, &r);
	TH_CHECK(n > 0);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(memcmp(m.h.mac, h.mac, PROTO_MAC_LEN) == 0);
	TH_CHECK(m.h.flags == (PROTO_F_MAC | PROTO_F_RETRANSMIT));
	check_reencode(buf, (size_t)n);
	/* The same tag without the flag: v1 says the field is zero then. */
	put16(buf + PROTO_OFF_FLAGS, 0);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
}

/* ---- the common header ---- */

static void
test_rejects_truncated(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	EXPECT(buf, 0, NULL, PROTO_E_TRUNCATED);
	EXPECT(buf, 3, NULL, PROTO_E_TRUNCATED);
	EXPECT(buf, PROTO_HDR_LEN - 1, NULL, PROTO_E_TRUNCATED);
	EXPECT(buf, PROTO_REQUEST_LEN - 1, NULL, PROTO_E_TRUNCATED);	/* fixed part cut */
	EXPECT(buf, (size_t)n - 1, NULL, PROTO_E_TRUNCATED);		/* payload cut */
}

static void
test_rejects_bad_magic(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	buf[0] = 'X';
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_MAGIC);
}

static void
test_rejects_unknown_version_and_peek_keeps_ids(void)
{
	struct proto_request r = req_valid();
	struct proto_hdr h;
	int n = req_encode(&r);

	buf[PROTO_OFF_VERSION] = 2;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_VERSION);
	/* A later version may have a shorter header: the version is judged first. */
	EXPECT(buf, 16, NULL, PROTO_E_BAD_VERSION);
	TH_CHECK(proto_peek(buf, 16, &h) == PROTO_E_BAD_VERSION);
	TH_CHECK(h.version == 2 && h.client_id == hdr.client_id &&
		 h.request_id == hdr.request_id);
	TH_CHECK(proto_reason_status(PROTO_E_BAD_VERSION) == PROTO_ST_UNSUPPORTED_VERSION);
	buf[PROTO_OFF_VERSION] = 0;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_VERSION);
}

static void
test_rejects_bad_type(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);
	const uint8_t bad[] = { 0, PROTO_T__COUNT, 0x83, 0xff };

	for (unsigned i = 0; i < sizeof(bad); i++) {
		buf[PROTO_OFF_TYPE] = bad[i];
		EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_TYPE);
	}
}

static void
test_rejects_bad_flags(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	put16(buf + PROTO_OFF_FLAGS, 0x10);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FLAGS);
	put16(buf + PROTO_OFF_FLAGS, PROTO_F_MAC | PROTO_F_CRC);	/* one seal, not both */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FLAGS);
	put16(buf + PROTO_OFF_FLAGS, 0x8000);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FLAGS);
	put16(buf + PROTO_OFF_FLAGS, 0);
	buf[PROTO_OFF_REQ_FLAGS] = 0x4;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FLAGS);
	n = nack_encode();
	put16(buf + PROTO_OFF_FLAGS, PROTO_F_LZ4);	/* LZ4 only on tensor chunks */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FLAGS);
	/* The encoders refuse to set what decoders refuse. */
	TH_CHECK(proto_encode_nack(buf, sizeof(buf), &(struct proto_hdr){ .flags = PROTO_F_LZ4 },
				   &(struct proto_nack){ .chunk_count = 2, .n_ranges = 1,
							 .ranges = { { 0, 1 } } }) == -EINVAL);
}

static void
test_rejects_trailing_bytes(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	buf[n] = 0;
	EXPECT(buf, (size_t)n + 1, NULL, PROTO_E_BAD_LENGTH);
	n = error_encode();
	put16(buf + PROTO_OFF_PAYLOAD_LEN, 4);	/* ERROR has no payload */
	EXPECT(buf, (size_t)n + 4, NULL, PROTO_E_BAD_LENGTH);
}

static void
test_rejects_dgram_over_limit(void)
{
	struct proto_limits lim;
	static uint8_t big[1300];
	struct proto_request r = req_valid();
	int n;

	proto_limits_default(&lim);
	lim.max_dgram = 1200;
	r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_RAW, .raw_total = sizeof(big),
				       .scale = 1 };
	r.c.raw_len = r.c.payload_len = sizeof(big);
	r.c.payload = big;
	n = req_encode(&r);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	EXPECT(buf, (size_t)n, &lim, PROTO_E_DGRAM_TOO_BIG);
}

static void
test_rejects_reserved_fields(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	buf[PROTO_OFF_REQ_RSVD + 3] = 1;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
	n = req_encode(&r);
	buf[PROTO_OFF_MAC + 15] = 1;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
	n = resp_topk_encode();
	buf[PROTO_OFF_ADVICE_FLAGS] = 1u << 2;	/* bits past the advice flags */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
	n = nack_encode();
	buf[PROTO_OFF_NACK_RSVD] = 1;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
	n = error_encode();
	buf[PROTO_OFF_ERR_RSVD] = 1;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
	n = hello_encode(1200);
	buf[PROTO_OFF_HELLO_RSVD] = 1;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RESERVED);
}

/* ---- REQUEST: the tensor and the chunk ---- */

static void
test_rejects_chunk_index_not_below_count(void)
{
	struct proto_request r = req_valid();
	int n;

	r.c.count = 2;
	r.c.raw_len = r.c.payload_len = 16;
	n = req_encode(&r);
	put16(buf + PROTO_OFF_CHUNK_INDEX, 2);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_INDEX);
	put16(buf + PROTO_OFF_CHUNK_INDEX, 0xffff);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_INDEX);
	put16(buf + PROTO_OFF_CHUNK_INDEX, 1);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
}

static void
test_rejects_bad_chunk_count(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	put16(buf + PROTO_OFF_CHUNK_COUNT, 0);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_COUNT);
	put16(buf + PROTO_OFF_CHUNK_COUNT, 33);		/* 32 elements: at most 32 chunks */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_COUNT);
	put16(buf + PROTO_OFF_CHUNK_COUNT, 32);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
}

static void
test_rejects_count_over_limit(void)
{
	struct proto_limits lim;
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	proto_limits_default(&lim);
	lim.max_chunks = 8;
	put16(buf + PROTO_OFF_CHUNK_COUNT, 9);
	EXPECT(buf, (size_t)n, &lim, PROTO_E_TOO_MANY_CHUNKS);
	put16(buf + PROTO_OFF_CHUNK_COUNT, 8);
	EXPECT(buf, (size_t)n, &lim, PROTO_OK);
}

static void
test_rejects_msg_over_limit(void)
{
	struct proto_limits lim;
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	proto_limits_default(&lim);
	lim.max_msg_bytes = 31;
	EXPECT(buf, (size_t)n, &lim, PROTO_E_MSG_TOO_BIG);
	lim.max_msg_bytes = 32;
	EXPECT(buf, (size_t)n, &lim, PROTO_OK);
}

static void
test_rejects_range_past_message(void)
{
	struct proto_request r = req_valid();
	int n;

	r.c.count = 2;
	r.c.raw_len = r.c.payload_len = 16;
	n = req_encode(&r);
	put32(buf + PROTO_OFF_RAW_OFFSET, 17);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_RANGE);
	put32(buf + PROTO_OFF_RAW_OFFSET, 0xfffffff0u);	/* offset + len wraps a u32 */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_RANGE);
	put32(buf + PROTO_OFF_RAW_OFFSET, 16);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
}

static void
test_rejects_misaligned_chunk(void)
{
	static uint8_t p[64];
	struct proto_request r = req_valid();
	int n;

	r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_F32, .ndim = 2, .dims = { 1, 16 },
				       .raw_total = 64, .scale = 1 };
	r.c.count = 2;
	r.c.raw_len = r.c.payload_len = 32;
	r.c.payload = p;
	n = req_encode(&r);
	put32(buf + PROTO_OFF_RAW_OFFSET, 2);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_ALIGN);
	put32(buf + PROTO_OFF_RAW_OFFSET, 0);
	put32(buf + PROTO_OFF_RAW_LEN, 30);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_CHUNK_ALIGN);
}

static void
test_rejects_empty_chunk_and_raw_len_mismatch(void)
{
	struct proto_request r = req_valid();
	int n;

	r.c.count = 2;
	r.c.raw_len = r.c.payload_len = 0;
	/* the encoder refuses what the decoder would */
	TH_CHECK(proto_encode_request(buf, sizeof(buf), &hdr, &r) == -EINVAL);
	r.c.raw_len = r.c.payload_len = 16;
	n = req_encode(&r);
	put32(buf + PROTO_OFF_RAW_LEN, 0);
	put16(buf + PROTO_OFF_PAYLOAD_LEN, 0);
	EXPECT(buf, PROTO_REQUEST_LEN, NULL, PROTO_E_EMPTY_CHUNK);
	n = req_encode(&r);
	put32(buf + PROTO_OFF_RAW_LEN, 8);	/* raw payload of 16 standing for 8 */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_RAW_LEN);
}

static void
test_rejects_bad_dtype(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	buf[PROTO_OFF_DTYPE] = PROTO_DT__COUNT;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_DTYPE);
	buf[PROTO_OFF_DTYPE] = 0xff;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_DTYPE);
}

static void
test_rejects_bad_shape(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	buf[PROTO_OFF_NDIM] = 7;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_SHAPE);
	n = req_encode(&r);
	put32(buf + PROTO_OFF_DIMS + 4, 0);	/* a zero dim */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_SHAPE);
	n = req_encode(&r);
	put32(buf + PROTO_OFF_DIMS + 4 * 5, 1);	/* a dim past ndim */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_SHAPE);
	n = req_encode(&r);
	buf[PROTO_OFF_NDIM] = 0;		/* s8 without a shape */
	memset(buf + PROTO_OFF_DIMS, 0, 24);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_SHAPE);
	buf[PROTO_OFF_DTYPE] = PROTO_DT_RAW;	/* raw with a shape */
	buf[PROTO_OFF_NDIM] = 1;
	put32(buf + PROTO_OFF_DIMS, 32);
	putf(buf + PROTO_OFF_SCALE, 1);
	put32(buf + PROTO_OFF_ZERO_POINT, 0);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_SHAPE);
}

static void
test_rejects_oversized_dims(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	/* 65536^4 overflows 64 bits after one more multiply: refused before it can. */
	for (unsigned i = 0; i < 4; i++)
		put32(buf + PROTO_OFF_DIMS + 4 * i, 65536);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_DIMS_TOO_BIG);
	buf[PROTO_OFF_NDIM] = 6;
	for (unsigned i = 0; i < 6; i++)
		put32(buf + PROTO_OFF_DIMS + 4 * i, 0xffffffffu);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_DIMS_TOO_BIG);
}

static void
test_rejects_shape_size_mismatch(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	put32(buf + PROTO_OFF_DIMS + 4 * 3, 3);		/* 1x4x4x3 = 48 bytes, raw_total 32 */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_SHAPE_SIZE);
	r.c.t.dims[3] = 3;
	TH_CHECK(proto_encode_request(buf, sizeof(buf), &hdr, &r) == -EINVAL);
}

static void
test_rejects_bad_quantization(void)
{
	struct proto_request r = req_valid();
	int n = req_encode(&r);

	putf(buf + PROTO_OFF_SCALE, 0);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	putf(buf + PROTO_OFF_SCALE, -1);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	putf(buf + PROTO_OFF_SCALE, NAN);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	putf(buf + PROTO_OFF_SCALE, INFINITY);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	putf(buf + PROTO_OFF_SCALE, 0.5f);
	put32(buf + PROTO_OFF_ZERO_POINT, 128);		/* s8 zero point out of range */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	buf[PROTO_OFF_DTYPE] = PROTO_DT_U8;
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	put32(buf + PROTO_OFF_ZERO_POINT, (uint32_t)-1);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	/* f16: unquantized, scale 1 and zero point 0 only */
	buf[PROTO_OFF_DTYPE] = PROTO_DT_F16;
	put32(buf + PROTO_OFF_DIMS + 4 * 3, 1);
	put32(buf + PROTO_OFF_ZERO_POINT, 0);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_QUANT);
	putf(buf + PROTO_OFF_SCALE, 1);
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
}

static void
test_rejects_top_k_over_limit(void)
{
	struct proto_limits lim;
	struct proto_request r = req_valid();
	int n;

	proto_limits_default(&lim);
	r.top_k = (uint8_t)(lim.max_top_k + 1);
	n = req_encode(&r);
	EXPECT(buf, (size_t)n, &lim, PROTO_E_TOP_K);
	n = resp_topk_encode();
	lim.max_top_k = 2;
	EXPECT(buf, (size_t)n, &lim, PROTO_E_TOP_K);
}

/* ---- RESPONSE ---- */

static void
test_rejects_inconsistent_result(void)
{
	int n = resp_topk_encode();

	buf[PROTO_OFF_STATUS] = PROTO_ST_OVERLOADED;	/* a result with a failure */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_RESULT);
	n = resp_topk_encode();
	buf[PROTO_OFF_RESP_TOP_K] = 2;			/* 24 bytes for 2 entries */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_RESULT);
	n = resp_topk_encode();
	buf[PROTO_OFF_RESULT_KIND] = PROTO_RES__COUNT;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_RESULT);
	n = resp_topk_encode();
	put32(buf + PROTO_OFF_ECHO_CRC, 1);		/* echo fields outside ECHO */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_RESULT);
	n = resp_topk_encode();
	buf[PROTO_OFF_RESULT_KIND] = PROTO_RES_NONE;	/* NONE with a payload */
	buf[PROTO_OFF_RESP_TOP_K] = 0;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_RESULT);
}

static void
test_rejects_unknown_status(void)
{
	int n = resp_topk_encode();

	buf[PROTO_OFF_STATUS] = PROTO_ST__COUNT;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_STATUS);
	n = resp_topk_encode();
	buf[PROTO_OFF_REASON] = 0xfe;	/* reasons are appended later: still accepted */
	EXPECT(buf, (size_t)n, NULL, PROTO_OK);
	n = error_encode();
	buf[PROTO_OFF_ERR_STATUS] = PROTO_ST_OK;	/* an ERROR that is not one */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_STATUS);
	buf[PROTO_OFF_ERR_STATUS] = 0xff;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_STATUS);
}

static void
test_rejects_bad_error_fields(void)
{
	int n = error_encode();

	buf[PROTO_OFF_ERR_VMIN] = 3;	/* min above max */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FIELD);
	n = error_encode();
	buf[PROTO_OFF_ERR_REF_TYPE] = 9;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FIELD);
}

/* ---- NACK ---- */

static void
test_rejects_nack_list_too_long(void)
{
	struct proto_limits lim;
	int n = nack_encode();

	proto_limits_default(&lim);
	lim.max_nack_ranges = 2;
	EXPECT(buf, (size_t)n, &lim, PROTO_E_NACK_TOO_LONG);
	put16(buf + PROTO_OFF_NACK_N, 0);
	put16(buf + PROTO_OFF_PAYLOAD_LEN, 0);
	EXPECT(buf, PROTO_NACK_LEN, NULL, PROTO_E_NACK_TOO_LONG);
	/* n_ranges and payload disagree */
	n = nack_encode();
	put16(buf + PROTO_OFF_NACK_N, 4);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_TRUNCATED);
	put16(buf + PROTO_OFF_NACK_N, 2);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_LENGTH);
}

static void
test_rejects_bad_nack_ranges(void)
{
	const uint16_t bad[][2][2] = {
		{ { 1, 0 }, { 5, 1 } },		/* empty range */
		{ { 5, 1 }, { 1, 2 } },		/* descending */
		{ { 1, 4 }, { 3, 1 } },		/* overlapping */
		{ { 1, 2 }, { 3, 1 } },		/* adjacent: one range, written as two */
		{ { 1, 2 }, { 19, 2 } },	/* past the count (20) */
	};
	struct proto_nack m = { .chunk_count = 20, .n_ranges = 2 };

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		nack_encode();
		put16(buf + PROTO_OFF_NACK_N, 2);
		put16(buf + PROTO_OFF_PAYLOAD_LEN, 8);
		for (unsigned k = 0; k < 2; k++) {
			put16(buf + PROTO_NACK_LEN + 4 * k, bad[i][k][0]);
			put16(buf + PROTO_NACK_LEN + 4 * k + 2, bad[i][k][1]);
		}
		EXPECT(buf, PROTO_NACK_LEN + 8, NULL, PROTO_E_NACK_RANGE);
		m.ranges[0] = (struct proto_range){ bad[i][0][0], bad[i][0][1] };
		m.ranges[1] = (struct proto_range){ bad[i][1][0], bad[i][1][1] };
		TH_CHECK(proto_encode_nack(buf, sizeof(buf), &hdr, &m) == -EINVAL);
	}
	nack_encode();
	put16(buf + PROTO_OFF_NACK_COUNT, 0);
	EXPECT(buf, PROTO_NACK_LEN + 12, NULL, PROTO_E_CHUNK_COUNT);
}

static void
test_nack_from_bitmap_lists_gaps(void)
{
	uint64_t rx[3] = { 0 };
	struct proto_nack n;
	unsigned k;

	/* 150 chunks: received all but 0, 64..70 and 149 */
	rx[0] = ~1ull;
	rx[1] = ~0x7full;
	rx[2] = (1ull << 21) - 1;
	k = proto_nack_from_bitmap(&n, rx, 150, 64);
	TH_CHECK(k == 3 && n.n_ranges == 3 && n.chunk_count == 150);
	TH_CHECK(n.ranges[0].first == 0 && n.ranges[0].count == 1);
	TH_CHECK(n.ranges[1].first == 64 && n.ranges[1].count == 7);
	TH_CHECK(n.ranges[2].first == 149 && n.ranges[2].count == 1);
	TH_CHECK(proto_nack_from_bitmap(&n, rx, 150, 2) == 2);	/* the first ones */
	TH_CHECK(n.ranges[1].first == 64);
	rx[0] = rx[1] = UINT64_MAX;
	rx[2] = (1ull << 22) - 1;
	TH_CHECK(proto_nack_from_bitmap(&n, rx, 150, 64) == 0);
	memset(rx, 0, sizeof(rx));
	TH_CHECK(proto_nack_from_bitmap(&n, rx, 150, 64) == 1 && n.ranges[0].count == 150);
	TH_CHECK(proto_encode_nack(buf, sizeof(buf), &hdr, &n) == PROTO_NACK_LEN + 4);
}

/* ---- HELLO and HELLO_REPLY ---- */

static void
test_rejects_short_hello(void)
{
	struct proto_hello h = { .max_dgram = 1472 };

	hello_encode(1200);
	put16(buf + PROTO_OFF_PAYLOAD_LEN, 1199 - PROTO_HELLO_LEN);
	EXPECT(buf, 1199, NULL, PROTO_E_HELLO_SHORT);
	put16(buf + PROTO_OFF_PAYLOAD_LEN, 0);
	EXPECT(buf, PROTO_HELLO_LEN, NULL, PROTO_E_HELLO_SHORT);
	TH_CHECK(proto_encode_hello(buf, sizeof(buf), &hdr, &h, 1199) == -EINVAL);
}

static void
test_rejects_hello_padding_not_zero(void)
{
	int n = hello_encode(1200);

	buf[1199] = 1;
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_PADDING);
	n = hello_encode(1200);
	buf[PROTO_OFF_HELLO_PATH_TOKEN + 4] = 1;	/* the first byte after the token */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_PADDING);
}

/* HELLO bytes 68-79: the energy profile and goal (docs/protocol.md 4.1), compatible with
 * devices before it (all zero, goal NONE); RESPONSE byte 123 the advice flags (7.3). */
static void
test_hello_energy_profile(void)
{
	struct proto_hello h = { .compute_mflops = 500, .uplink_kbps = 2000, .max_dgram = 1472,
				 .head_uj_per_mflop = 350, .tx_pj_per_bit = 70000,
				 .goal = PROTO_GOAL_ENERGY };
	struct proto_msg m;
	int n = proto_encode_hello(buf, sizeof(buf), &hdr, &h, 1200);

	TH_CHECK(n == 1200);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.hello.head_uj_per_mflop == 350 && m.u.hello.tx_pj_per_bit == 70000 &&
		 m.u.hello.goal == PROTO_GOAL_ENERGY);
	TH_CHECK(buf[PROTO_OFF_HELLO_EN_HEAD + 2] == 1 && buf[PROTO_OFF_HELLO_EN_HEAD + 3] == 94 &&
		 buf[PROTO_OFF_HELLO_GOAL] == 2);	/* 350 = 0x015E, big endian */
	check_reencode(buf, (size_t)n);
	buf[PROTO_OFF_HELLO_GOAL] = 3;		/* no such goal */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FIELD);
	buf[PROTO_OFF_HELLO_GOAL] = 2;
	buf[PROTO_OFF_HELLO_GOAL + 3] = 1;	/* 77-79 are padding */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_PADDING);
	buf[PROTO_OFF_HELLO_GOAL + 3] = 0;
	buf[PROTO_OFF_HELLO_GOAL] = 0;		/* energy without a goal: padding not zero */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_PADDING);
	h.goal = PROTO_GOAL_NONE;
	TH_CHECK(proto_encode_hello(buf, sizeof(buf), &hdr, &h, 1200) == -EINVAL);
	h.goal = 3;
	TH_CHECK(proto_encode_hello(buf, sizeof(buf), &hdr, &h, 1200) == -EINVAL);
	/* A device before the profile: bytes 68-79 zero, as its padding always was. */
	n = hello_encode(1200);
	for (unsigned i = PROTO_OFF_HELLO_EN_HEAD; i < PROTO_HELLO_EXT_END; i++)
		TH_CHECK(buf[i] == 0);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.hello.goal == PROTO_GOAL_NONE && m.u.hello.head_uj_per_mflop == 0);
	/* The advice flags round-trip */
	n = resp_topk_encode();
	buf[PROTO_OFF_ADVICE_FLAGS] = PROTO_AF_NO_EARLY_EXIT | PROTO_AF_NONE_FITS;
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.resp.advice_flags == (PROTO_AF_NO_EARLY_EXIT | PROTO_AF_NONE_FITS));
	check_reencode(buf, (size_t)n);
}

/* HELLO bytes 64-67 and HELLO_REPLY 68-71 carry the path token (docs/protocol.md 12.1). */
static void
test_path_token_round_trip(void)
{
	struct proto_hdr hdr = { .client_id = 5, .request_id = 6, .session_id = 7 };
	struct proto_hello h = { .max_dgram = 1472, .path_token = 0xA1B2C3D4u };
	struct proto_hello_reply hr = { .max_dgram = 1472, .max_chunks = 1, .max_inflight = 1,
					.path_token = 0x01020304u };
	struct proto_msg m;
	int n;

	n = proto_encode_hello(buf, sizeof(buf), &hdr, &h, 1200);
	TH_CHECK(n == 1200 && buf[64] == 0xA1 && buf[67] == 0xD4);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.hello.path_token == 0xA1B2C3D4u);
	n = proto_encode_hello_reply(buf, sizeof(buf), &hdr, &hr, NULL);
	TH_CHECK(n == PROTO_HELLO_REPLY_LEN && buf[68] == 1 && buf[71] == 4);
	TH_CHECK(proto_decode(buf, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.hello_reply.path_token == 0x01020304u);
}

static void
test_rejects_hello_fields_out_of_range(void)
{
	int n = hello_encode(1200);

	put16(buf + PROTO_OFF_HELLO_ACC_FLOOR, 10001);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FIELD);
	n = hello_encode(1200);
	put16(buf + PROTO_OFF_HELLO_MAX_DGRAM, 1199);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FIELD);
	n = hello_reply_encode(1);
	put16(buf + PROTO_OFF_HR_MAX_CHUNKS, 0);
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_FIELD);
}

static void
test_rejects_bad_catalog(void)
{
	int n = hello_reply_encode(2);

	put16(buf + PROTO_OFF_HR_CAT_COUNT, 3);		/* 3 entries, 2 present */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_CATALOG);
	n = hello_reply_encode(2);
	put16(buf + PROTO_OFF_HR_CAT_START, 4);		/* 4 + 2 > total 5 */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_CATALOG);
	n = hello_reply_encode(2);
	buf[PROTO_HELLO_REPLY_LEN + 64 + 4] = 7;	/* second entry: ndim 7 */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_CATALOG);
	n = hello_reply_encode(2);
	memset(buf + PROTO_HELLO_REPLY_LEN + 48, 'x', 16);	/* name not terminated */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_CATALOG);
	n = hello_reply_encode(2);
	buf[PROTO_HELLO_REPLY_LEN + 63] = 'x';		/* junk after the name's NUL */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_CATALOG);
	n = hello_reply_encode(2);
	buf[PROTO_HELLO_REPLY_LEN + 5] = 0x20;		/* dtype bit 5: no such dtype */
	EXPECT(buf, (size_t)n, NULL, PROTO_E_BAD_CATALOG);
}

/* ---- replies, limits and names ---- */

static void
test_error_reply_never_amplifies(void)
{
	static uint8_t out[256];
	struct proto_request r = req_valid();
	struct proto_msg m;
	int n = req_encode(&r);
	int k;

	k = proto_error_reply(out, sizeof(out), buf, (size_t)n, PROTO_ST_BAD_REQUEST,
			      PROTO_E_CHUNK_RANGE);
	TH_CHECK(k == PROTO_ERROR_LEN);
	TH_CHECK(proto_decode(out, (size_t)k, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.h.type == PROTO_T_ERROR && m.h.client_id == hdr.client_id);
	TH_CHECK(m.h.request_id == hdr.request_id && m.h.session_id == hdr.session_id);
	TH_CHECK(m.u.error.status == PROTO_ST_BAD_REQUEST &&
		 m.u.error.reason == PROTO_E_CHUNK_RANGE);
	TH_CHECK(m.u.error.ref_type == PROTO_T_REQUEST && m.u.error.chunk_index == 0);
	/* An unknown version: ids echoed from bytes 8-15, nothing read past them. */
	buf[PROTO_OFF_VERSION] = 9;
	k = proto_error_reply(out, sizeof(out), buf, 48, PROTO_ST_UNSUPPORTED_VERSION,
			      PROTO_E_BAD_VERSION);
	TH_CHECK(k == PROTO_ERROR_LEN);
	TH_CHECK(proto_decode(out, (size_t)k, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.h.client_id == hdr.client_id && m.h.session_id == 0);
	TH_CHECK(m.u.error.ref_type == 0 && m.u.error.chunk_index == 0xffff);
	TH_CHECK(m.u.error.min_version == PROTO_VERSION_MIN &&
		 m.u.error.max_version == PROTO_VERSION_MAX);
	/* Shorter than an ERROR: no answer at all. */
	TH_CHECK(proto_error_reply(out, sizeof(out), buf, 47, PROTO_ST_UNSUPPORTED_VERSION,
				   PROTO_E_BAD_VERSION) == -EMSGSIZE);
	TH_CHECK(proto_error_reply(out, 47, buf, (size_t)n, PROTO_ST_BAD_REQUEST,
				   PROTO_E_BAD_TYPE) == -ENOSPC);
}

static void
test_hello_reply_fits_the_hello(void)
{
	/* A minimal HELLO: 17 entries, and the reply is no larger than the HELLO. */
	unsigned k = proto_hello_reply_room(1200, 1472, 1472);

	TH_CHECK(k == 17);
	TH_CHECK(PROTO_HELLO_REPLY_LEN + 64 * k <= 1200);
	TH_CHECK(proto_hello_reply_room(1472, 1472, 1300) == (1300 - 72) / 64);
	TH_CHECK(proto_hello_reply_room(9000, 1472, 9000) == (1472 - 72) / 64);
	TH_CHECK(proto_hello_reply_room(100, 1472, 1472) == 0);
}

static void
test_limits_check_and_encoder_errors(void)
{
	struct proto_limits l;
	struct proto_request r = req_valid();

	proto_limits_default(&l);
	TH_CHECK(proto_limits_check(&l) == 0);
	l.max_dgram = 1199;
	TH_CHECK(proto_limits_check(&l) == -EINVAL);
	proto_limits_default(&l);
	l.max_nack_ranges = PROTO_MAX_NACK_RANGES + 1;
	TH_CHECK(proto_limits_check(&l) == -EINVAL);
	proto_limits_default(&l);
	l.max_msg_bytes = PROTO_MAX_MSG_BYTES + 1u;
	TH_CHECK(proto_limits_check(&l) == -EINVAL);
	TH_CHECK(proto_encode_request(buf, PROTO_REQUEST_LEN + 31, &hdr, &r) == -ENOSPC);
	TH_CHECK(proto_encode_request(buf, PROTO_REQUEST_LEN + 32, &hdr, &r) ==
		 PROTO_REQUEST_LEN + 32);
}

static void
test_reason_names_and_statuses(void)
{
	TH_CHECK(strcmp(proto_reason_name(PROTO_E_LZ4), "lz4") == 0);
	TH_CHECK(strcmp(proto_reason_name(PROTO_REASON__COUNT), "?") == 0);
	TH_CHECK(strcmp(proto_status_name(PROTO_ST_OVERLOADED), "overloaded") == 0);
	TH_CHECK(proto_reason_status(PROTO_E_QUEUE_FULL) == PROTO_ST_OVERLOADED);
	TH_CHECK(proto_reason_status(PROTO_E_CHUNK_INDEX) == PROTO_ST_BAD_REQUEST);
	TH_CHECK(proto_reason_status(PROTO_OK) == PROTO_ST_OK);
	for (unsigned i = 0; i < PROTO_REASON__COUNT; i++)
		TH_CHECK(proto_reason_help(i)[0] != '?' && proto_reason_name(i)[0] != '?');
	/* Wire values are frozen: these are in docs/protocol.md. */
	TH_CHECK(PROTO_E_TRUNCATED == 1 && PROTO_E_LZ4 == 23 && PROTO_E_POOL_FULL == 37);
	TH_CHECK(PROTO_E_CHUNK_TILE == 38 && PROTO_E_SESSION_FULL == 39);
	TH_CHECK(PROTO_ST_UNAUTHENTICATED == 10);
}

static void
test_same_msg_spots_a_different_chunk(void)
{
	struct proto_request a = req_valid(), b = a;

	b.c.index = 1;
	b.c.raw_offset = 16;	/* placement differs: same message */
	TH_CHECK(proto_request_same_msg(&a, &b));
	b.c.t.dims[1] = 2;
	TH_CHECK(!proto_request_same_msg(&a, &b));
	b = a;
	b.deadline_us++;
	TH_CHECK(!proto_request_same_msg(&a, &b));
	b = a;
	b.c.t.scale = 0.06f;
	TH_CHECK(!proto_request_same_msg(&a, &b));
}

int
main(void)
{
	TH_RUN(test_request_round_trips);
	TH_RUN(test_hello_round_trips);
	TH_RUN(test_hello_reply_round_trips);
	TH_RUN(test_response_topk_round_trips);
	TH_RUN(test_response_status_and_echo_round_trip);
	TH_RUN(test_nack_and_error_round_trip);
	TH_RUN(test_mac_flag_carries_mac);
	TH_RUN(test_rejects_truncated);
	TH_RUN(test_rejects_bad_magic);
	TH_RUN(test_rejects_unknown_version_and_peek_keeps_ids);
	TH_RUN(test_rejects_bad_type);
	TH_RUN(test_rejects_bad_flags);
	TH_RUN(test_rejects_trailing_bytes);
	TH_RUN(test_rejects_dgram_over_limit);
	TH_RUN(test_rejects_reserved_fields);
	TH_RUN(test_rejects_chunk_index_not_below_count);
	TH_RUN(test_rejects_bad_chunk_count);
	TH_RUN(test_rejects_count_over_limit);
	TH_RUN(test_rejects_msg_over_limit);
	TH_RUN(test_rejects_range_past_message);
	TH_RUN(test_rejects_misaligned_chunk);
	TH_RUN(test_rejects_empty_chunk_and_raw_len_mismatch);
	TH_RUN(test_rejects_bad_dtype);
	TH_RUN(test_rejects_bad_shape);
	TH_RUN(test_rejects_oversized_dims);
	TH_RUN(test_rejects_shape_size_mismatch);
	TH_RUN(test_rejects_bad_quantization);
	TH_RUN(test_rejects_top_k_over_limit);
	TH_RUN(test_rejects_inconsistent_result);
	TH_RUN(test_rejects_unknown_status);
	TH_RUN(test_rejects_bad_error_fields);
	TH_RUN(test_rejects_nack_list_too_long);
	TH_RUN(test_rejects_bad_nack_ranges);
	TH_RUN(test_nack_from_bitmap_lists_gaps);
	TH_RUN(test_rejects_short_hello);
	TH_RUN(test_hello_energy_profile);
	TH_RUN(test_rejects_hello_padding_not_zero);
	TH_RUN(test_path_token_round_trip);
	TH_RUN(test_rejects_hello_fields_out_of_range);
	TH_RUN(test_rejects_bad_catalog);
	TH_RUN(test_error_reply_never_amplifies);
	TH_RUN(test_hello_reply_fits_the_hello);
	TH_RUN(test_limits_check_and_encoder_errors);
	TH_RUN(test_reason_names_and_statuses);
	TH_RUN(test_same_msg_spots_a_different_chunk);
	TH_DONE();
}
