/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the wire decoder, fed any datagram, as the gateway's RX lcore and the
 * client are. What it accepts must lie inside the input; an accepted chunk is decompressed
 * into a bounded slot exactly as the gateway places it; accepted messages re-encode to the
 * same bytes (the format is canonical); refused ones get an ERROR no larger than themselves.
 */
#include "proto/proto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { FUZZ_MSG_MAX = 1 << 20 };	/* tight bound: the slot below is this large */

static uint8_t fuzz_slot[FUZZ_MSG_MAX];
static uint8_t fuzz_out[PROTO_MAX_DGRAM];
static struct proto_catalog_entry fuzz_cat[(PROTO_MAX_DGRAM - PROTO_HELLO_REPLY_LEN) /
					   PROTO_CATALOG_ENTRY_LEN + 1];

static void
fuzz_inside(const uint8_t *data, size_t size, const uint8_t *p, size_t len)
{
	uintptr_t lo = (uintptr_t)data, q = (uintptr_t)p;

	if (len != 0 && (q < lo || q - lo > size || len > size - (q - lo)))
		__builtin_trap();
}

/* An accepted tensor chunk: payload inside, placed inside the slot whatever its bytes. */
static void
fuzz_chunk(const uint8_t *data, size_t size, const struct proto_chunk *c)
{
	enum proto_reason r;

	fuzz_inside(data, size, c->payload, c->payload_len);
	if ((uint64_t)c->raw_offset + c->raw_len > c->t.raw_total ||
	    c->t.raw_total > FUZZ_MSG_MAX)
		__builtin_trap();
	/* Guard bytes just past the chunk's range must survive any payload. */
	if (c->raw_offset + c->raw_len < FUZZ_MSG_MAX)
		fuzz_slot[c->raw_offset + c->raw_len] = 0xa5;
	r = proto_chunk_unpack(c, fuzz_slot, c->t.raw_total, NULL);
	if (r != PROTO_OK && r != PROTO_E_LZ4)
		__builtin_trap();
	if (c->raw_offset + c->raw_len < FUZZ_MSG_MAX &&
	    fuzz_slot[c->raw_offset + c->raw_len] != 0xa5)
		__builtin_trap();
}

static int
fuzz_reencode(const struct proto_msg *m, size_t size)
{
	struct proto_hdr h = m->h;

	h.flags &= (uint16_t)~PROTO_F_LZ4;
	switch (m->h.type) {
	case PROTO_T_HELLO:
		return proto_encode_hello(fuzz_out, sizeof(fuzz_out), &h, &m->u.hello, size);
	case PROTO_T_HELLO_REPLY:
		for (unsigned i = 0; i < m->u.hello_reply.catalog_count; i++)
			proto_catalog_get(&m->u.hello_reply, i, &fuzz_cat[i]);
		return proto_encode_hello_reply(fuzz_out, sizeof(fuzz_out), &h, &m->u.hello_reply,
						fuzz_cat);
	case PROTO_T_REQUEST:
		return proto_encode_request(fuzz_out, sizeof(fuzz_out), &h, &m->u.req);
	case PROTO_T_RESPONSE:
		return proto_encode_response(fuzz_out, sizeof(fuzz_out), &h, &m->u.resp);
	case PROTO_T_NACK:
		return proto_encode_nack(fuzz_out, sizeof(fuzz_out), &h, &m->u.nack);
	case PROTO_T_ERROR:
		return proto_encode_error(fuzz_out, sizeof(fuzz_out), &h, &m->u.error);
	}
	__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_limits lim;
	struct proto_msg m;
	enum proto_reason r;
	int n;

	proto_limits_default(&lim);
	lim.max_msg_bytes = FUZZ_MSG_MAX;
	lim.max_dgram = PROTO_MAX_DGRAM;
	lim.max_chunks = PROTO_MAX_CHUNKS;
	lim.max_nack_ranges = PROTO_MAX_NACK_RANGES;
	lim.max_top_k = PROTO_MAX_TOP_K;
	r = proto_decode(data, size, &lim, &m, NULL);
	if (r != PROTO_OK) {
		if (r >= PROTO_REASON__COUNT)
			__builtin_trap();
		/* The gateway's answer: never larger than what arrived, always decodable. */
		n = proto_error_reply(fuzz_out, sizeof(fuzz_out), data, size,
				      proto_reason_status(r), r);
		if (n > 0 && ((size_t)n > size ||
			      proto_decode(fuzz_out, (size_t)n, NULL, &m, NULL) != PROTO_OK))
			__builtin_trap();
		return 0;
	}
	switch (m.h.type) {
	case PROTO_T_REQUEST:
		fuzz_chunk(data, size, &m.u.req.c);
		break;
	case PROTO_T_RESPONSE:
		fuzz_chunk(data, size, &m.u.resp.c);
		for (unsigned i = 0; m.u.resp.result_kind == PROTO_RES_TOPK && i < m.u.resp.top_k;
		     i++) {
			struct proto_topk e;

			fuzz_inside(data, size, m.u.resp.c.payload + 8 * i, 8);
			proto_topk_get(&m.u.resp, i, &e);
		}
		break;
	case PROTO_T_HELLO_REPLY:
		fuzz_inside(data, size, m.u.hello_reply.entries,
			    (size_t)m.u.hello_reply.catalog_count * PROTO_CATALOG_ENTRY_LEN);
		break;
	}
	/* Canonical: decoding then encoding gives back the very same datagram. */
	n = fuzz_reencode(&m, size);
	if (n != (int)size || memcmp(fuzz_out, data, size) != 0)
		__builtin_trap();
	return 0;
}
