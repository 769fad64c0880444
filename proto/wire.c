/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encode and decode of every message (docs/protocol.md). Hot path: the gateway's RX lcores
 * decode every datagram here, so no allocation, no logging, nothing but the checks. The
 * decoder checks in the order the spec gives, so every refusal has one well-defined reason;
 * encoders decode what they wrote, so nothing leaves that a receiver would refuse.
 */
#include "proto/proto_int.h"

#include <errno.h>
#include <math.h>

const struct proto_limits proto_limits_wire = {
	.max_msg_bytes = PROTO_MAX_MSG_BYTES,
	.max_dgram = PROTO_MAX_DGRAM,
	.max_chunks = PROTO_MAX_CHUNKS,
	.max_nack_ranges = PROTO_MAX_NACK_RANGES,
	.max_top_k = PROTO_MAX_TOP_K,
};

static const char *const proto_status_names[] = {
#define _(sym, name, help) name,
	PROTO_FOREACH_STATUS(_)
#undef _
};

static const char *const proto_reason_names[] = {
#define _(sym, name, status, help) name,
	PROTO_FOREACH_REASON(_)
#undef _
};

static const char *const proto_reason_helps[] = {
#define _(sym, name, status, help) help,
	PROTO_FOREACH_REASON(_)
#undef _
};

static const uint8_t proto_reason_statuses[] = {
#define _(sym, name, status, help) PROTO_ST_##status,
	PROTO_FOREACH_REASON(_)
#undef _
};

const char *
proto_status_name(unsigned status)
{
	return status < PROTO_ST__COUNT ? proto_status_names[status] : "?";
}

const char *
proto_reason_name(unsigned reason)
{
	return reason < PROTO_REASON__COUNT ? proto_reason_names[reason] : "?";
}

const char *
proto_reason_help(unsigned reason)
{
	return reason < PROTO_REASON__COUNT ? proto_reason_helps[reason] : "?";
}

enum proto_status
proto_reason_status(enum proto_reason r)
{
	return (unsigned)r < PROTO_REASON__COUNT ? (enum proto_status)proto_reason_statuses[r]
						 : PROTO_ST_BAD_REQUEST;
}

void
proto_limits_default(struct proto_limits *l)
{
	*l = (struct proto_limits){
		.max_msg_bytes = 4u << 20,
		.max_dgram = PROTO_DEFAULT_DGRAM,
		.max_chunks = 4096,
		.max_nack_ranges = 64,
		.max_top_k = 16,
	};
}

int
proto_limits_check(const struct proto_limits *l)
{
	if (l->max_msg_bytes > PROTO_MAX_MSG_BYTES || l->max_dgram < PROTO_HELLO_MIN_DGRAM ||
	    l->max_dgram > PROTO_MAX_DGRAM || l->max_chunks == 0 ||
	    l->max_nack_ranges == 0 || l->max_nack_ranges > PROTO_MAX_NACK_RANGES ||
	    l->max_top_k > PROTO_MAX_TOP_K)
		return -EINVAL;
	return 0;
}

/* ---- shared checks ---- */

unsigned
proto_dtype_size(unsigned dtype)
{
	switch (dtype) {
	case PROTO_DT_RAW: return 1;
	case PROTO_DT_F32: return 4;
	case PROTO_DT_F16: return 2;
	case PROTO_DT_S8: return 1;
	case PROTO_DT_U8: return 1;
	}
	return 0;
}

bool
proto_quant_ok(unsigned dtype, float scale, int32_t zero_point)
{
	switch (dtype) {
	case PROTO_DT_RAW:
	case PROTO_DT_F32:
	case PROTO_DT_F16:
		/* Unquantized: the formula must be the identity, so one code path dequantizes. */
		return scale == 1.0f && zero_point == 0;
	case PROTO_DT_S8:
		return isfinite(scale) && scale > 0 && zero_point >= INT8_MIN &&
		       zero_point <= INT8_MAX;
	case PROTO_DT_U8:
		return isfinite(scale) && scale > 0 && zero_point >= 0 && zero_point <= UINT8_MAX;
	}
	return false;
}

enum proto_reason
proto_tensor_check(const struct proto_tensor *t, const struct proto_limits *lim)
{
	unsigned esize = proto_dtype_size(t->dtype);
	uint64_t bytes;

	if (esize == 0)
		return PROTO_E_BAD_DTYPE;
	if (t->ndim > PROTO_MAX_DIMS || (t->dtype == PROTO_DT_RAW) != (t->ndim == 0))
		return PROTO_E_BAD_SHAPE;
	for (unsigned i = 0; i < PROTO_MAX_DIMS; i++)
		if ((i < t->ndim) != (t->dims[i] != 0))
			return PROTO_E_BAD_SHAPE;
	if (!proto_quant_ok(t->dtype, t->scale, t->zero_point))
		return PROTO_E_BAD_QUANT;
	if (t->raw_total > lim->max_msg_bytes)
		return PROTO_E_MSG_TOO_BIG;
	if (t->ndim == 0)
		return PROTO_OK;
	/* bytes stays <= 2^30 before each multiply by a u32: no overflow in 64 bits. */
	bytes = esize;
	for (unsigned i = 0; i < t->ndim; i++) {
		bytes *= t->dims[i];
		if (bytes > lim->max_msg_bytes)
			return PROTO_E_DIMS_TOO_BIG;
	}
	return bytes == t->raw_total ? PROTO_OK : PROTO_E_SHAPE_SIZE;
}

enum proto_reason
proto_chunk_check(const struct proto_chunk *c, const struct proto_limits *lim)
{
	unsigned esize = proto_dtype_size(c->t.dtype);	/* tensor already checked: >= 1 */
	uint32_t elems = c->t.raw_total / esize;

	if (c->count == 0)
		return PROTO_E_CHUNK_COUNT;
	if (c->count > lim->max_chunks)
		return PROTO_E_TOO_MANY_CHUNKS;
	/* Every chunk carries at least one element: no bitmap of 65535 for a 10-byte tensor. */
	if (c->count > (elems > 1 ? elems : 1))
		return PROTO_E_CHUNK_COUNT;
	if (c->index >= c->count)
		return PROTO_E_CHUNK_INDEX;
	if (c->raw_offset % esize != 0 || c->raw_len % esize != 0)
		return PROTO_E_CHUNK_ALIGN;
	if (c->raw_offset > c->t.raw_total || c->raw_len > c->t.raw_total - c->raw_offset)
		return PROTO_E_CHUNK_RANGE;
	if (c->raw_len == 0 && c->t.raw_total != 0)
		return PROTO_E_EMPTY_CHUNK;
	if (!c->lz4 && c->payload_len != c->raw_len)
		return PROTO_E_RAW_LEN;
	return PROTO_OK;
}

/* ---- decoding ---- */

static bool
proto_all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static unsigned
proto_fixed_len(unsigned type)
{
	switch (type) {
	case PROTO_T_HELLO: return PROTO_HELLO_LEN;
	case PROTO_T_HELLO_REPLY: return PROTO_HELLO_REPLY_LEN;
	case PROTO_T_REQUEST: return PROTO_REQUEST_LEN;
	case PROTO_T_RESPONSE: return PROTO_RESPONSE_LEN;
	case PROTO_T_NACK: return PROTO_NACK_LEN;
	case PROTO_T_ERROR: return PROTO_ERROR_LEN;
	}
	return 0;
}

enum proto_reason
proto_peek(const uint8_t *buf, size_t len, struct proto_hdr *h)
{
	if (len < 4)
		return PROTO_E_TRUNCATED;
	if (proto_ld16(buf + PROTO_OFF_MAGIC) != PROTO_MAGIC)
		return PROTO_E_BAD_MAGIC;
	h->version = buf[PROTO_OFF_VERSION];
	h->type = buf[PROTO_OFF_TYPE];
	if (len >= 16) {	/* bytes 0-15 mean the same in every version */
		h->flags = proto_ld16(buf + PROTO_OFF_FLAGS);
		h->payload_len = proto_ld16(buf + PROTO_OFF_PAYLOAD_LEN);
		h->client_id = proto_ld32(buf + PROTO_OFF_CLIENT_ID);
		h->request_id = proto_ld32(buf + PROTO_OFF_REQUEST_ID);
	}
	if (h->version < PROTO_VERSION_MIN || h->version > PROTO_VERSION_MAX)
		return PROTO_E_BAD_VERSION;
	if (len < PROTO_HDR_LEN)
		return PROTO_E_TRUNCATED;
	h->session_id = proto_ld64(buf + PROTO_OFF_SESSION_ID);
	memcpy(h->mac, buf + PROTO_OFF_MAC, PROTO_MAC_LEN);
	if (proto_fixed_len(h->type) == 0)
		return PROTO_E_BAD_TYPE;
	return PROTO_OK;
}

static void
proto_chunk_get(const uint8_t *buf, uint16_t flags, uint16_t payload_len, unsigned fixed,
		struct proto_chunk *c)
{
	c->model_id = proto_ld16(buf + PROTO_OFF_MODEL_ID);
	c->variant_id = buf[PROTO_OFF_VARIANT_ID];
	c->split_id = buf[PROTO_OFF_SPLIT_ID];
	c->index = proto_ld16(buf + PROTO_OFF_CHUNK_INDEX);
	c->count = proto_ld16(buf + PROTO_OFF_CHUNK_COUNT);
	c->t.dtype = buf[PROTO_OFF_DTYPE];
	c->t.ndim = buf[PROTO_OFF_NDIM];
	c->t.raw_total = proto_ld32(buf + PROTO_OFF_RAW_TOTAL);
	c->raw_offset = proto_ld32(buf + PROTO_OFF_RAW_OFFSET);
	c->raw_len = proto_ld32(buf + PROTO_OFF_RAW_LEN);
	for (unsigned i = 0; i < PROTO_MAX_DIMS; i++)
		c->t.dims[i] = proto_ld32(buf + PROTO_OFF_DIMS + 4 * i);
	c->t.scale = proto_ldf(buf + PROTO_OFF_SCALE);
	c->t.zero_point = (int32_t)proto_ld32(buf + PROTO_OFF_ZERO_POINT);
	c->lz4 = (flags & PROTO_F_LZ4) != 0;
	c->payload = buf + fixed;
	c->payload_len = payload_len;
}

static enum proto_reason
proto_decode_hello(const uint8_t *buf, size_t len, struct proto_msg *m)
{
	struct proto_hello *o = &m->u.hello;

	if (len < PROTO_HELLO_MIN_DGRAM)
		return PROTO_E_HELLO_SHORT;
	if (proto_ld16(buf + PROTO_OFF_HELLO_RSVD) != 0)
		return PROTO_E_RESERVED;
	/* Zero padding after the path token and the energy profile: the bytes exist to make
	 * the HELLO as large as its reply, nothing else. */
	if (buf[PROTO_OFF_HELLO_GOAL + 1] != 0 || buf[PROTO_OFF_HELLO_GOAL + 2] != 0 ||
	    buf[PROTO_OFF_HELLO_GOAL + 3] != 0 ||
	    !proto_all_zero(buf + PROTO_HELLO_EXT_END, len - PROTO_HELLO_EXT_END))
		return PROTO_E_BAD_PADDING;
	o->head_uj_per_mflop = proto_ld32(buf + PROTO_OFF_HELLO_EN_HEAD);
	o->tx_pj_per_bit = proto_ld32(buf + PROTO_OFF_HELLO_EN_TX);
	o->goal = buf[PROTO_OFF_HELLO_GOAL];
	/* An energy profile comes with its goal: without one, the bytes are padding. */
	if (o->goal == PROTO_GOAL_NONE && (o->head_uj_per_mflop | o->tx_pj_per_bit) != 0)
		return PROTO_E_BAD_PADDING;
	if (o->goal > PROTO_GOAL_ENERGY)
		return PROTO_E_BAD_FIELD;
	o->path_token = proto_ld32(buf + PROTO_OFF_HELLO_PATH_TOKEN);
	o->compute_mflops = proto_ld32(buf + PROTO_OFF_HELLO_COMPUTE);
	o->uplink_kbps = proto_ld32(buf + PROTO_OFF_HELLO_UPLINK);
	o->rtt_us = proto_ld32(buf + PROTO_OFF_HELLO_RTT);
	o->slo_us = proto_ld32(buf + PROTO_OFF_HELLO_SLO);
	o->accuracy_floor_bp = proto_ld16(buf + PROTO_OFF_HELLO_ACC_FLOOR);
	o->max_dgram = proto_ld16(buf + PROTO_OFF_HELLO_MAX_DGRAM);
	o->catalog_start = proto_ld16(buf + PROTO_OFF_HELLO_CAT_START);
	if (o->accuracy_floor_bp > 10000 || o->max_dgram < PROTO_HELLO_MIN_DGRAM)
		return PROTO_E_BAD_FIELD;
	return PROTO_OK;
}

static enum proto_reason
proto_catalog_entry_check(const uint8_t *e)
{
	unsigned ndim = e[4];
	const uint8_t *name = e + 48;
	unsigned i;

	if (ndim > PROTO_MAX_DIMS || e[47] != 0 || (e[5] >> PROTO_DT__COUNT) != 0 ||
	    proto_ld16(e + 44) > 10000)
		return PROTO_E_BAD_CATALOG;
	for (i = 0; i < PROTO_MAX_DIMS; i++)
		if ((i < ndim) != (proto_ld32(e + 8 + 4 * i) != 0))
			return PROTO_E_BAD_CATALOG;
	/* A C string padded with NULs: a client may print it as is. */
	for (i = 0; i < PROTO_NAME_LEN && name[i] != 0; i++)
		;
	if (i == PROTO_NAME_LEN || !proto_all_zero(name + i, PROTO_NAME_LEN - i))
		return PROTO_E_BAD_CATALOG;
	return PROTO_OK;
}

static enum proto_reason
proto_decode_hello_reply(const uint8_t *buf, uint16_t payload_len, struct proto_msg *m)
{
	struct proto_hello_reply *o = &m->u.hello_reply;
	enum proto_reason r;

	o->path_token = proto_ld32(buf + PROTO_OFF_HR_PATH_TOKEN);
	o->session_ttl_ms = proto_ld32(buf + PROTO_OFF_HR_SESSION_TTL);
	o->max_msg_bytes = proto_ld32(buf + PROTO_OFF_HR_MAX_MSG);
	o->catalog_gen = proto_ld32(buf + PROTO_OFF_HR_CAT_GEN);
	o->max_dgram = proto_ld16(buf + PROTO_OFF_HR_MAX_DGRAM);
	o->max_chunks = proto_ld16(buf + PROTO_OFF_HR_MAX_CHUNKS);
	o->max_inflight = proto_ld16(buf + PROTO_OFF_HR_MAX_INFLIGHT);
	o->nack_gap_ms = proto_ld16(buf + PROTO_OFF_HR_NACK_GAP);
	o->reasm_timeout_ms = proto_ld16(buf + PROTO_OFF_HR_REASM_TIMEOUT);
	o->catalog_total = proto_ld16(buf + PROTO_OFF_HR_CAT_TOTAL);
	o->catalog_start = proto_ld16(buf + PROTO_OFF_HR_CAT_START);
	o->catalog_count = proto_ld16(buf + PROTO_OFF_HR_CAT_COUNT);
	o->entries = buf + PROTO_HELLO_REPLY_LEN;
	if (o->max_msg_bytes > PROTO_MAX_MSG_BYTES || o->max_dgram < PROTO_HELLO_MIN_DGRAM ||
	    o->max_chunks == 0 || o->max_inflight == 0)
		return PROTO_E_BAD_FIELD;
	if ((uint32_t)o->catalog_count * PROTO_CATALOG_ENTRY_LEN != payload_len ||
	    (uint32_t)o->catalog_start + o->catalog_count > o->catalog_total)
		return PROTO_E_BAD_CATALOG;
	for (unsigned i = 0; i < o->catalog_count; i++) {
		r = proto_catalog_entry_check(o->entries + (size_t)i * PROTO_CATALOG_ENTRY_LEN);
		if (r != PROTO_OK)
			return r;
	}
	return PROTO_OK;
}

static enum proto_reason
proto_decode_request(const uint8_t *buf, const struct proto_limits *lim, struct proto_msg *m)
{
	struct proto_request *o = &m->u.req;
	enum proto_reason r;

	if (proto_ld32(buf + PROTO_OFF_REQ_RSVD) != 0)
		return PROTO_E_RESERVED;
	o->top_k = buf[PROTO_OFF_TOP_K];
	o->flags = buf[PROTO_OFF_REQ_FLAGS];
	o->deadline_us = proto_ld32(buf + PROTO_OFF_DEADLINE);
	if (o->flags & ~PROTO_RF__ALL)
		return PROTO_E_BAD_FLAGS;
	if (o->top_k > lim->max_top_k)
		return PROTO_E_TOP_K;
	proto_chunk_get(buf, m->h.flags, m->h.payload_len, PROTO_REQUEST_LEN, &o->c);
	r = proto_tensor_check(&o->c.t, lim);
	return r != PROTO_OK ? r : proto_chunk_check(&o->c, lim);
}

/* What each result kind allows: canonical, so decode then encode gives the same bytes. */
static enum proto_reason
proto_result_check(const struct proto_response *o)
{
	const struct proto_chunk *c = &o->c;
	bool empty = c->t.dtype == PROTO_DT_RAW && c->t.raw_total == 0;
	bool echo_set = o->echo_crc32c != 0 || o->echo_bytes != 0;

	if (o->status != PROTO_ST_OK && o->result_kind != PROTO_RES_NONE)
		return PROTO_E_BAD_RESULT;
	if (o->result_kind != PROTO_RES_ECHO && echo_set)
		return PROTO_E_BAD_RESULT;
	if (o->result_kind != PROTO_RES_TOPK && o->top_k != 0)
		return PROTO_E_BAD_RESULT;
	switch (o->result_kind) {
	case PROTO_RES_NONE:
	case PROTO_RES_ECHO:
		return empty ? PROTO_OK : PROTO_E_BAD_RESULT;
	case PROTO_RES_TOPK:
		if (o->top_k == 0 || c->t.dtype != PROTO_DT_RAW || c->lz4 ||
		    c->t.raw_total != (uint32_t)o->top_k * PROTO_TOPK_ENTRY_LEN)
			return PROTO_E_BAD_RESULT;
		return PROTO_OK;
	case PROTO_RES_TENSOR:
		return PROTO_OK;
	}
	return PROTO_E_BAD_RESULT;
}

static enum proto_reason
proto_decode_response(const uint8_t *buf, const struct proto_limits *lim, struct proto_msg *m)
{
	struct proto_response *o = &m->u.resp;
	enum proto_reason r;

	if ((buf[PROTO_OFF_ADVICE_FLAGS] & ~PROTO_AF__ALL) != 0 ||
	    proto_ld32(buf + PROTO_OFF_RESP_RSVD32) != 0)
		return PROTO_E_RESERVED;
	o->advice_flags = buf[PROTO_OFF_ADVICE_FLAGS];
	o->status = buf[PROTO_OFF_STATUS];
	o->reason = buf[PROTO_OFF_REASON];
	o->queue_us = proto_ld32(buf + PROTO_OFF_QUEUE_US);
	o->compute_us = proto_ld32(buf + PROTO_OFF_COMPUTE_US);
	o->advice_latency_us = proto_ld32(buf + PROTO_OFF_ADVICE_LATENCY);
	o->echo_crc32c = proto_ld32(buf + PROTO_OFF_ECHO_CRC);
	o->echo_bytes = proto_ld32(buf + PROTO_OFF_ECHO_BYTES);
	o->batch_size = proto_ld16(buf + PROTO_OFF_BATCH_SIZE);
	o->exit_taken = buf[PROTO_OFF_EXIT_TAKEN];
	o->result_kind = buf[PROTO_OFF_RESULT_KIND];
	o->advice_variant = buf[PROTO_OFF_ADVICE_VARIANT];
	o->advice_split = buf[PROTO_OFF_ADVICE_SPLIT];
	o->top_k = buf[PROTO_OFF_RESP_TOP_K];
	/* Reasons are appended without a version change: an unknown one is still accepted. */
	if (o->status >= PROTO_ST__COUNT)
		return PROTO_E_BAD_STATUS;
	if (o->top_k > lim->max_top_k)
		return PROTO_E_TOP_K;
	proto_chunk_get(buf, m->h.flags, m->h.payload_len, PROTO_RESPONSE_LEN, &o->c);
	r = proto_tensor_check(&o->c.t, lim);
	if (r == PROTO_OK)
		r = proto_chunk_check(&o->c, lim);
	return r != PROTO_OK ? r : proto_result_check(o);
}

static enum proto_reason
proto_decode_nack(const uint8_t *buf, const struct proto_limits *lim, struct proto_msg *m)
{
	struct proto_nack *o = &m->u.nack;
	uint32_t end = 0;

	if (proto_ld32(buf + PROTO_OFF_NACK_RSVD) != 0)
		return PROTO_E_RESERVED;
	o->chunk_count = proto_ld16(buf + PROTO_OFF_NACK_COUNT);
	o->n_ranges = proto_ld16(buf + PROTO_OFF_NACK_N);
	if (o->n_ranges == 0 || o->n_ranges > lim->max_nack_ranges)
		return PROTO_E_NACK_TOO_LONG;
	if (o->chunk_count == 0)
		return PROTO_E_CHUNK_COUNT;
	if (o->chunk_count > lim->max_chunks)
		return PROTO_E_TOO_MANY_CHUNKS;
	if (m->h.payload_len < (uint32_t)o->n_ranges * PROTO_NACK_RANGE_LEN)
		return PROTO_E_TRUNCATED;
	if (m->h.payload_len > (uint32_t)o->n_ranges * PROTO_NACK_RANGE_LEN)
		return PROTO_E_BAD_LENGTH;
	for (unsigned i = 0; i < o->n_ranges; i++) {
		const uint8_t *p = buf + PROTO_NACK_LEN + PROTO_NACK_RANGE_LEN * i;
		struct proto_range *g = &o->ranges[i];

		g->first = proto_ld16(p);
		g->count = proto_ld16(p + 2);
		/* Ascending, with a received chunk between two ranges: one canonical list. */
		if (g->count == 0 || (i > 0 && g->first <= end) ||
		    (uint32_t)g->first + g->count > o->chunk_count)
			return PROTO_E_NACK_RANGE;
		end = (uint32_t)g->first + g->count;
	}
	return PROTO_OK;
}

static enum proto_reason
proto_decode_error(const uint8_t *buf, struct proto_msg *m)
{
	struct proto_error *o = &m->u.error;

	if (buf[PROTO_OFF_ERR_RSVD] != 0)
		return PROTO_E_RESERVED;
	if (m->h.payload_len != 0)
		return PROTO_E_BAD_LENGTH;
	o->status = buf[PROTO_OFF_ERR_STATUS];
	o->reason = buf[PROTO_OFF_ERR_REASON];
	o->ref_type = buf[PROTO_OFF_ERR_REF_TYPE];
	o->min_version = buf[PROTO_OFF_ERR_VMIN];
	o->max_version = buf[PROTO_OFF_ERR_VMAX];
	o->chunk_index = proto_ld16(buf + PROTO_OFF_ERR_CHUNK);
	if (o->status == PROTO_ST_OK || o->status >= PROTO_ST__COUNT)
		return PROTO_E_BAD_STATUS;
	if (o->min_version > o->max_version || o->ref_type >= PROTO_T__COUNT)
		return PROTO_E_BAD_FIELD;
	return PROTO_OK;
}

static enum proto_reason
proto_decode_body(const uint8_t *buf, size_t len, const struct proto_limits *lim,
		  struct proto_msg *m)
{
	unsigned fixed;
	enum proto_reason r;

	r = proto_peek(buf, len, &m->h);
	if (r != PROTO_OK)
		return r;
	if (len > lim->max_dgram)
		return PROTO_E_DGRAM_TOO_BIG;
	fixed = proto_fixed_len(m->h.type);
	if (len < fixed || len - fixed < m->h.payload_len)
		return PROTO_E_TRUNCATED;
	if (len - fixed > m->h.payload_len)
		return PROTO_E_BAD_LENGTH;
	if ((m->h.flags & ~PROTO_F__ALL) ||
	    ((m->h.flags & PROTO_F_LZ4) && m->h.type != PROTO_T_REQUEST &&
	     m->h.type != PROTO_T_RESPONSE) ||
	    (m->h.flags & (PROTO_F_MAC | PROTO_F_CRC)) == (PROTO_F_MAC | PROTO_F_CRC))
		return PROTO_E_BAD_FLAGS;
	if (!(m->h.flags & (PROTO_F_MAC | PROTO_F_CRC)) &&
	    !proto_all_zero(m->h.mac, PROTO_MAC_LEN))
		return PROTO_E_RESERVED;
	/* Before any field past the header is believed: a corrupted datagram is refused for
	 * what it is, not for whichever field the corruption happened to hit. */
	if ((m->h.flags & PROTO_F_CRC) && !proto_crc_ok(buf, len))
		return PROTO_E_BAD_CRC;
	switch (m->h.type) {
	case PROTO_T_HELLO: return proto_decode_hello(buf, len, m);
	case PROTO_T_HELLO_REPLY: return proto_decode_hello_reply(buf, m->h.payload_len, m);
	case PROTO_T_REQUEST: return proto_decode_request(buf, lim, m);
	case PROTO_T_RESPONSE: return proto_decode_response(buf, lim, m);
	case PROTO_T_NACK: return proto_decode_nack(buf, lim, m);
	case PROTO_T_ERROR: return proto_decode_error(buf, m);
	}
	return PROTO_E_BAD_TYPE;	/* proto_peek refused it already */
}

enum proto_reason
proto_decode(const uint8_t *buf, size_t len, const struct proto_limits *lim,
	     struct proto_msg *out, struct proto_stats *st)
{
	struct proto_limits def;
	enum proto_reason r;

	if (lim == NULL) {
		proto_limits_default(&def);
		lim = &def;
	}
	r = proto_decode_body(buf, len, lim, out);
	if (st != NULL) {
		if (r == PROTO_OK)
			st->rx[out->h.type]++;
		else
			st->reject[r]++;
	}
	return r;
}

void
proto_catalog_get(const struct proto_hello_reply *r, unsigned i, struct proto_catalog_entry *e)
{
	const uint8_t *p = r->entries + (size_t)i * PROTO_CATALOG_ENTRY_LEN;

	e->model_id = proto_ld16(p);
	e->variant_id = p[2];
	e->split_id = p[3];
	e->ndim = p[4];
	e->dtype_mask = p[5];
	e->n_classes = proto_ld16(p + 6);
	for (unsigned d = 0; d < PROTO_MAX_DIMS; d++)
		e->dims[d] = proto_ld32(p + 8 + 4 * d);
	e->head_kflop = proto_ld32(p + 32);
	e->tail_kflop = proto_ld32(p + 36);
	e->tail_us = proto_ld32(p + 40);
	e->accuracy_bp = proto_ld16(p + 44);
	e->n_exits = p[46];
	memcpy(e->name, p + 48, PROTO_NAME_LEN);
}

void
proto_topk_get(const struct proto_response *r, unsigned i, struct proto_topk *e)
{
	const uint8_t *p = r->c.payload + (size_t)i * PROTO_TOPK_ENTRY_LEN;

	e->class_id = proto_ld32(p);
	e->score = proto_ldf(p + 4);
}

static bool
proto_chunk_same_msg(const struct proto_chunk *a, const struct proto_chunk *b)
{
	return a->model_id == b->model_id && a->variant_id == b->variant_id &&
	       a->split_id == b->split_id && a->count == b->count &&
	       a->t.dtype == b->t.dtype && a->t.ndim == b->t.ndim &&
	       a->t.raw_total == b->t.raw_total &&
	       memcmp(a->t.dims, b->t.dims, sizeof(a->t.dims)) == 0 &&
	       memcmp(&a->t.scale, &b->t.scale, sizeof(a->t.scale)) == 0 &&
	       a->t.zero_point == b->t.zero_point;
}

bool
proto_request_same_msg(const struct proto_request *a, const struct proto_request *b)
{
	return proto_chunk_same_msg(&a->c, &b->c) && a->top_k == b->top_k &&
	       a->flags == b->flags && a->deadline_us == b->deadline_us;
}

bool
proto_response_same_msg(const struct proto_response *a, const struct proto_response *b)
{
	return proto_chunk_same_msg(&a->c, &b->c) && a->status == b->status &&
	       a->reason == b->reason && a->result_kind == b->result_kind;
}

/* ---- encoding ---- */

void
proto_hdr_put(uint8_t *buf, const struct proto_hdr *h, uint8_t type, uint16_t flags,
	      uint16_t payload_len)
{
	proto_st16(buf + PROTO_OFF_MAGIC, PROTO_MAGIC);
	buf[PROTO_OFF_VERSION] = PROTO_VERSION;
	buf[PROTO_OFF_TYPE] = type;
	proto_st16(buf + PROTO_OFF_FLAGS, flags);
	proto_st16(buf + PROTO_OFF_PAYLOAD_LEN, payload_len);
	proto_st32(buf + PROTO_OFF_CLIENT_ID, h->client_id);
	proto_st32(buf + PROTO_OFF_REQUEST_ID, h->request_id);
	proto_st64(buf + PROTO_OFF_SESSION_ID, h->session_id);
	memcpy(buf + PROTO_OFF_MAC, h->mac, PROTO_MAC_LEN);
}

void
proto_chunk_put(uint8_t *buf, const struct proto_chunk *c)
{
	proto_st16(buf + PROTO_OFF_MODEL_ID, c->model_id);
	buf[PROTO_OFF_VARIANT_ID] = c->variant_id;
	buf[PROTO_OFF_SPLIT_ID] = c->split_id;
	proto_st16(buf + PROTO_OFF_CHUNK_INDEX, c->index);
	proto_st16(buf + PROTO_OFF_CHUNK_COUNT, c->count);
	buf[PROTO_OFF_DTYPE] = c->t.dtype;
	buf[PROTO_OFF_NDIM] = c->t.ndim;
	proto_st32(buf + PROTO_OFF_RAW_TOTAL, c->t.raw_total);
	proto_st32(buf + PROTO_OFF_RAW_OFFSET, c->raw_offset);
	proto_st32(buf + PROTO_OFF_RAW_LEN, c->raw_len);
	for (unsigned i = 0; i < PROTO_MAX_DIMS; i++)
		proto_st32(buf + PROTO_OFF_DIMS + 4 * i, c->t.dims[i]);
	proto_stf(buf + PROTO_OFF_SCALE, c->t.scale);
	proto_st32(buf + PROTO_OFF_ZERO_POINT, (uint32_t)c->t.zero_point);
}

/*
 * Room check before writing, self-check after: the encoder and the decoder cannot drift
 * apart, at the price of one decode (a few dozen loads) per datagram sent.
 */
static int
proto_encode_begin(size_t cap, const struct proto_hdr *h, size_t fixed, size_t payload_len)
{
	if (h->flags & ~(PROTO_F__ALL & ~PROTO_F_LZ4))
		return -EINVAL;
	if (payload_len > PROTO_MAX_DGRAM - fixed)
		return -EINVAL;
	if (cap < fixed + payload_len)
		return -ENOSPC;
	return 0;
}

/* With flag CRC the datagram is sealed here, as its last step; a MAC is the caller's
 * (proto_seal_mac() after encoding: the key is not the encoder's business). */
static int
proto_encode_end(uint8_t *buf, size_t len)
{
	struct proto_msg m;

	if ((proto_ld16(buf + PROTO_OFF_FLAGS) & PROTO_F_CRC) && proto_seal_crc(buf, len) < 0)
		return -EINVAL;
	return proto_decode(buf, len, &proto_limits_wire, &m, NULL) == PROTO_OK ? (int)len
										  : -EINVAL;
}

int
proto_encode_hello(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		   const struct proto_hello *m, size_t pad_to)
{
	int rc;

	if (pad_to < PROTO_HELLO_MIN_DGRAM || m->goal > PROTO_GOAL_ENERGY ||
	    (m->goal == PROTO_GOAL_NONE && (m->head_uj_per_mflop | m->tx_pj_per_bit) != 0))
		return -EINVAL;
	rc = proto_encode_begin(cap, h, PROTO_HELLO_LEN, pad_to - PROTO_HELLO_LEN);
	if (rc < 0)
		return rc;
	proto_hdr_put(buf, h, PROTO_T_HELLO, h->flags, (uint16_t)(pad_to - PROTO_HELLO_LEN));
	proto_st32(buf + PROTO_OFF_HELLO_COMPUTE, m->compute_mflops);
	proto_st32(buf + PROTO_OFF_HELLO_UPLINK, m->uplink_kbps);
	proto_st32(buf + PROTO_OFF_HELLO_RTT, m->rtt_us);
	proto_st32(buf + PROTO_OFF_HELLO_SLO, m->slo_us);
	proto_st16(buf + PROTO_OFF_HELLO_ACC_FLOOR, m->accuracy_floor_bp);
	proto_st16(buf + PROTO_OFF_HELLO_MAX_DGRAM, m->max_dgram);
	proto_st16(buf + PROTO_OFF_HELLO_CAT_START, m->catalog_start);
	proto_st16(buf + PROTO_OFF_HELLO_RSVD, 0);
	memset(buf + PROTO_HELLO_LEN, 0, pad_to - PROTO_HELLO_LEN);
	proto_st32(buf + PROTO_OFF_HELLO_PATH_TOKEN, m->path_token);
	proto_st32(buf + PROTO_OFF_HELLO_EN_HEAD, m->head_uj_per_mflop);
	proto_st32(buf + PROTO_OFF_HELLO_EN_TX, m->tx_pj_per_bit);
	buf[PROTO_OFF_HELLO_GOAL] = m->goal;
	return proto_encode_end(buf, pad_to);
}

int
proto_encode_hello_reply(uint8_t *buf, size_t cap, const struct proto_hdr *h,
			 const struct proto_hello_reply *m, const struct proto_catalog_entry *e)
{
	size_t plen = (size_t)m->catalog_count * PROTO_CATALOG_ENTRY_LEN;
	int rc;

	rc = proto_encode_begin(cap, h, PROTO_HELLO_REPLY_LEN, plen);
	if (rc < 0)
		return rc;
	proto_hdr_put(buf, h, PROTO_T_HELLO_REPLY, h->flags, (uint16_t)plen);
	proto_st32(buf + PROTO_OFF_HR_SESSION_TTL, m->session_ttl_ms);
	proto_st32(buf + PROTO_OFF_HR_MAX_MSG, m->max_msg_bytes);
	proto_st32(buf + PROTO_OFF_HR_CAT_GEN, m->catalog_gen);
	proto_st16(buf + PROTO_OFF_HR_MAX_DGRAM, m->max_dgram);
	proto_st16(buf + PROTO_OFF_HR_MAX_CHUNKS, m->max_chunks);
	proto_st16(buf + PROTO_OFF_HR_MAX_INFLIGHT, m->max_inflight);
	proto_st16(buf + PROTO_OFF_HR_NACK_GAP, m->nack_gap_ms);
	proto_st16(buf + PROTO_OFF_HR_REASM_TIMEOUT, m->reasm_timeout_ms);
	proto_st16(buf + PROTO_OFF_HR_CAT_TOTAL, m->catalog_total);
	proto_st16(buf + PROTO_OFF_HR_CAT_START, m->catalog_start);
	proto_st16(buf + PROTO_OFF_HR_CAT_COUNT, m->catalog_count);
	proto_st32(buf + PROTO_OFF_HR_PATH_TOKEN, m->path_token);
	for (unsigned i = 0; i < m->catalog_count; i++) {
		uint8_t *p = buf + PROTO_HELLO_REPLY_LEN + (size_t)i * PROTO_CATALOG_ENTRY_LEN;

		proto_st16(p, e[i].model_id);
		p[2] = e[i].variant_id;
		p[3] = e[i].split_id;
		p[4] = e[i].ndim;
		p[5] = e[i].dtype_mask;
		proto_st16(p + 6, e[i].n_classes);
		for (unsigned d = 0; d < PROTO_MAX_DIMS; d++)
			proto_st32(p + 8 + 4 * d, e[i].dims[d]);
		proto_st32(p + 32, e[i].head_kflop);
		proto_st32(p + 36, e[i].tail_kflop);
		proto_st32(p + 40, e[i].tail_us);
		proto_st16(p + 44, e[i].accuracy_bp);
		p[46] = e[i].n_exits;
		p[47] = 0;
		memcpy(p + 48, e[i].name, PROTO_NAME_LEN);
	}
	return proto_encode_end(buf, PROTO_HELLO_REPLY_LEN + plen);
}

/* The chunk block and payload of a REQUEST or RESPONSE; the payload may already be in place. */
static void
proto_chunk_payload_put(uint8_t *buf, size_t fixed, const struct proto_chunk *c)
{
	proto_chunk_put(buf, c);
	if (c->payload_len != 0 && c->payload != buf + fixed)
		memmove(buf + fixed, c->payload, c->payload_len);
}

int
proto_encode_request(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		     const struct proto_request *m)
{
	uint16_t flags = (uint16_t)(h->flags | (m->c.lz4 ? PROTO_F_LZ4 : 0));
	int rc;

	rc = proto_encode_begin(cap, h, PROTO_REQUEST_LEN, m->c.payload_len);
	if (rc < 0)
		return rc;
	proto_hdr_put(buf, h, PROTO_T_REQUEST, flags, (uint16_t)m->c.payload_len);
	proto_chunk_payload_put(buf, PROTO_REQUEST_LEN, &m->c);
	buf[PROTO_OFF_TOP_K] = m->top_k;
	buf[PROTO_OFF_REQ_FLAGS] = m->flags;
	proto_st32(buf + PROTO_OFF_DEADLINE, m->deadline_us);
	proto_st32(buf + PROTO_OFF_REQ_RSVD, 0);
	return proto_encode_end(buf, PROTO_REQUEST_LEN + (size_t)m->c.payload_len);
}

int
proto_encode_response(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		      const struct proto_response *m)
{
	uint16_t flags = (uint16_t)(h->flags | (m->c.lz4 ? PROTO_F_LZ4 : 0));
	int rc;

	rc = proto_encode_begin(cap, h, PROTO_RESPONSE_LEN, m->c.payload_len);
	if (rc < 0)
		return rc;
	proto_hdr_put(buf, h, PROTO_T_RESPONSE, flags, (uint16_t)m->c.payload_len);
	proto_chunk_payload_put(buf, PROTO_RESPONSE_LEN, &m->c);
	buf[PROTO_OFF_STATUS] = m->status;
	buf[PROTO_OFF_REASON] = m->reason;
	proto_st32(buf + PROTO_OFF_QUEUE_US, m->queue_us);
	proto_st32(buf + PROTO_OFF_COMPUTE_US, m->compute_us);
	proto_st32(buf + PROTO_OFF_ADVICE_LATENCY, m->advice_latency_us);
	proto_st32(buf + PROTO_OFF_ECHO_CRC, m->echo_crc32c);
	proto_st32(buf + PROTO_OFF_ECHO_BYTES, m->echo_bytes);
	proto_st16(buf + PROTO_OFF_BATCH_SIZE, m->batch_size);
	buf[PROTO_OFF_EXIT_TAKEN] = m->exit_taken;
	buf[PROTO_OFF_RESULT_KIND] = m->result_kind;
	buf[PROTO_OFF_ADVICE_VARIANT] = m->advice_variant;
	buf[PROTO_OFF_ADVICE_SPLIT] = m->advice_split;
	buf[PROTO_OFF_RESP_TOP_K] = m->top_k;
	buf[PROTO_OFF_ADVICE_FLAGS] = m->advice_flags;
	proto_st32(buf + PROTO_OFF_RESP_RSVD32, 0);
	return proto_encode_end(buf, PROTO_RESPONSE_LEN + (size_t)m->c.payload_len);
}

int
proto_encode_nack(uint8_t *buf, size_t cap, const struct proto_hdr *h, const struct proto_nack *m)
{
	size_t plen = (size_t)m->n_ranges * PROTO_NACK_RANGE_LEN;
	int rc;

	if (m->n_ranges > PROTO_MAX_NACK_RANGES)
		return -EINVAL;
	rc = proto_encode_begin(cap, h, PROTO_NACK_LEN, plen);
	if (rc < 0)
		return rc;
	proto_hdr_put(buf, h, PROTO_T_NACK, h->flags, (uint16_t)plen);
	proto_st16(buf + PROTO_OFF_NACK_COUNT, m->chunk_count);
	proto_st16(buf + PROTO_OFF_NACK_N, m->n_ranges);
	proto_st32(buf + PROTO_OFF_NACK_RSVD, 0);
	for (unsigned i = 0; i < m->n_ranges; i++) {
		proto_st16(buf + PROTO_NACK_LEN + 4 * i, m->ranges[i].first);
		proto_st16(buf + PROTO_NACK_LEN + 4 * i + 2, m->ranges[i].count);
	}
	return proto_encode_end(buf, PROTO_NACK_LEN + plen);
}

int
proto_encode_error(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		   const struct proto_error *m)
{
	int rc;

	rc = proto_encode_begin(cap, h, PROTO_ERROR_LEN, 0);
	if (rc < 0)
		return rc;
	proto_hdr_put(buf, h, PROTO_T_ERROR, h->flags, 0);
	buf[PROTO_OFF_ERR_STATUS] = m->status;
	buf[PROTO_OFF_ERR_REASON] = m->reason;
	buf[PROTO_OFF_ERR_REF_TYPE] = m->ref_type;
	buf[PROTO_OFF_ERR_VMIN] = m->min_version;
	buf[PROTO_OFF_ERR_VMAX] = m->max_version;
	buf[PROTO_OFF_ERR_RSVD] = 0;
	proto_st16(buf + PROTO_OFF_ERR_CHUNK, m->chunk_index);
	return proto_encode_end(buf, PROTO_ERROR_LEN);
}

int
proto_error_reply(uint8_t *buf, size_t cap, const uint8_t *in, size_t in_len,
		  enum proto_status status, enum proto_reason reason)
{
	struct proto_error e = {
		.status = (uint8_t)status,
		.reason = (uint8_t)reason,
		.min_version = PROTO_VERSION_MIN,
		.max_version = PROTO_VERSION_MAX,
		.chunk_index = 0xFFFF,
	};
	struct proto_hdr h = { 0 };
	bool known;

	/* Never answer with more bytes than arrived: a spoofed source gains nothing. */
	if (in_len < PROTO_ERROR_LEN)
		return -EMSGSIZE;
	h.client_id = proto_ld32(in + PROTO_OFF_CLIENT_ID);
	h.request_id = proto_ld32(in + PROTO_OFF_REQUEST_ID);
	/* Past byte 15 only a version we speak has a layout we know. */
	known = proto_ld16(in) == PROTO_MAGIC && in[PROTO_OFF_VERSION] >= PROTO_VERSION_MIN &&
		in[PROTO_OFF_VERSION] <= PROTO_VERSION_MAX;
	if (known) {
		h.session_id = proto_ld64(in + PROTO_OFF_SESSION_ID);
		if (proto_fixed_len(in[PROTO_OFF_TYPE]) != 0)
			e.ref_type = in[PROTO_OFF_TYPE];
		if (e.ref_type == PROTO_T_REQUEST || e.ref_type == PROTO_T_RESPONSE)
			e.chunk_index = proto_ld16(in + PROTO_OFF_CHUNK_INDEX);
	}
	return proto_encode_error(buf, cap, &h, &e);
}

unsigned
proto_hello_reply_room(size_t hello_len, unsigned gw_max_dgram, unsigned client_max_dgram)
{
	size_t room = hello_len;

	if (room > gw_max_dgram)
		room = gw_max_dgram;
	if (room > client_max_dgram)
		room = client_max_dgram;
	if (room > PROTO_MAX_DGRAM)
		room = PROTO_MAX_DGRAM;
	if (room < PROTO_HELLO_REPLY_LEN)
		return 0;
	return (unsigned)((room - PROTO_HELLO_REPLY_LEN) / PROTO_CATALOG_ENTRY_LEN);
}

int
proto_response_set_topk(struct proto_response *r, uint8_t *scratch, const struct proto_topk *e,
			unsigned k)
{
	uint32_t len = k * PROTO_TOPK_ENTRY_LEN;

	if (k == 0 || k > PROTO_MAX_TOP_K)
		return -EINVAL;
	for (unsigned i = 0; i < k; i++) {
		proto_st32(scratch + PROTO_TOPK_ENTRY_LEN * i, e[i].class_id);
		proto_stf(scratch + PROTO_TOPK_ENTRY_LEN * i + 4, e[i].score);
	}
	r->result_kind = PROTO_RES_TOPK;
	r->top_k = (uint8_t)k;
	r->c.t = (struct proto_tensor){ .dtype = PROTO_DT_RAW, .raw_total = len, .scale = 1.0f };
	r->c.index = 0;
	r->c.count = 1;
	r->c.raw_offset = 0;
	r->c.raw_len = len;
	r->c.lz4 = false;
	r->c.payload = scratch;
	r->c.payload_len = len;
	return 0;
}

unsigned
proto_nack_from_bitmap(struct proto_nack *n, const uint64_t *received, uint16_t chunk_count,
		       unsigned max_ranges)
{
	unsigned i = 0, k = 0;

	if (max_ranges > PROTO_MAX_NACK_RANGES)
		max_ranges = PROTO_MAX_NACK_RANGES;
	n->chunk_count = chunk_count;
	while (i < chunk_count && k < max_ranges) {
		unsigned first;

		/* Skip received chunks a word at a time where the word is full. */
		if ((i & 63) == 0 && received[i / 64] == UINT64_MAX) {
			i += 64;
			continue;
		}
		if (received[i / 64] >> (i & 63) & 1) {
			i++;
			continue;
		}
		first = i;
		while (i < chunk_count && !(received[i / 64] >> (i & 63) & 1))
			i++;
		n->ranges[k].first = (uint16_t)first;
		n->ranges[k].count = (uint16_t)(i - first);
		k++;
	}
	n->n_ranges = (uint16_t)k;
	return k;
}
