/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The types libtailgate-client's API (<tailgate/tgc.h>) shares with tailgate's wire format
 * and its utilities: the error carrier, tensors, the wire's status codes, and the decoded
 * HELLO_REPLY, catalog entry, tensor header and top-k entry a device reads. Installed beside
 * tgc.h (make install, libtailgate-client-dev); inside the tree, proto/proto.h and
 * util/util.h include it, so each of these is defined once and the library's ABI is the one
 * the gateway and the bench are built with. Types and constants only: nothing to link.
 * C11 and C++11. docs/protocol.md is the normative text of every wire value here.
 */
#ifndef TAILGATE_TYPES_H
#define TAILGATE_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- util: errors and tensors ---- */

/**
 * An error an operator can read. Callers pass one (or NULL) to functions that can fail for
 * reasons worth words; the callee fills it and returns the same negative errno it stored.
 */
struct tg_err {
	int code;		/* 0 or -errno */
	char msg[512];		/* human-readable, names the object that failed */
};

/** Element types of a tensor (the wire's enum proto_dtype has the same values). */
enum tg_dtype {
	TG_DT_F32 = 1,
	TG_DT_F16 = 2,
	TG_DT_S8 = 3,
	TG_DT_U8 = 4,
	TG_DT_S32 = 5,
	TG_DT_S64 = 6,
	TG_DT_F64 = 7,
};

enum { TG_MAX_DIMS = 8 };

/** A dense tensor. Who owns data is said by each function that takes or gives one. */
struct tg_tensor {
	enum tg_dtype dtype;
	int ndim;
	int64_t dims[TG_MAX_DIMS];
	void *data;
};

/* ---- the wire's values a device sees ---- */

#define PROTO_MODEL_ECHO 0xFFFFu	/* model id of the built-in echo diagnostic */
#define PROTO_NONE 0xFFu		/* u8 "no value": exit_taken, advice_variant/split */

enum {
	PROTO_PORT = 7700,		/* default UDP port of a gateway (dataplane's default too) */
	PROTO_NAME_LEN = 16,		/* catalog model name, NUL padded, last byte NUL */
	PROTO_MAX_DIMS = 6,		/* dims[] slots in every chunk header */
	PROTO_MAX_TOP_K = 128,		/* so a top-k RESPONSE always fits one such datagram */
};

enum proto_req_flag {			/* REQUEST byte 51; any other bit is refused */
	PROTO_RF_WANT_TENSOR = 1u << 0,	/* answer with the full output tensor, not top-k */
	PROTO_RF_NO_EARLY_EXIT = 1u << 1,	/* run to the final exit even if an early one is sure */
	PROTO_RF__ALL = 0x3,
};

/* What a device wants minimised (HELLO byte 76). NONE: it sent no energy profile (a device
 * before it), which the gateway takes as LATENCY and answers without advice_flags. */
enum proto_goal {
	PROTO_GOAL_NONE = 0,
	PROTO_GOAL_LATENCY = 1,
	PROTO_GOAL_ENERGY = 2,
};

/* RESPONSE byte 123, set only for a device whose HELLO had a goal (docs 7.3); other bits zero. */
enum proto_advice_flag {
	PROTO_AF_NO_EARLY_EXIT = 1u << 0,	/* advised: send with NO_EARLY_EXIT, device exits off */
	PROTO_AF_NONE_FITS = 1u << 1,	/* nothing meets the floor and the SLO: the advice (if
					 * any) is the lowest latency meeting the floor */
	PROTO_AF__ALL = PROTO_AF_NO_EARLY_EXIT | PROTO_AF_NONE_FITS,
};

/* Tensor element types on the wire; values match enum tg_dtype where both have one. */
enum proto_dtype {
	PROTO_DT_RAW = 0,		/* untyped bytes, ndim 0 (echo) */
	PROTO_DT_F32 = 1,		/* IEEE binary32, little endian */
	PROTO_DT_F16 = 2,		/* IEEE binary16, little endian */
	PROTO_DT_S8 = 3,		/* real = scale * (q - zero_point) */
	PROTO_DT_U8 = 4,		/* real = scale * (q - zero_point) */
	PROTO_DT__COUNT
};

/* Wire status codes: sym, metric label, what a client does about it. */
#define PROTO_FOREACH_STATUS(_)								\
	_(OK,                  "ok",                  "served")				\
	_(BAD_REQUEST,         "bad_request",         "malformed; reason says what; do not resend as is") \
	_(UNKNOWN_MODEL,       "unknown_model",       "model id not served; HELLO again for the catalog") \
	_(UNKNOWN_SPLIT,       "unknown_split",       "variant or split not served for the model") \
	_(OVERLOADED,          "overloaded",          "shed; back off, follow the advice")	\
	_(DEADLINE_INFEASIBLE, "deadline_infeasible", "deadline cannot be met; follow the advice") \
	_(INTERNAL,            "internal",            "gateway fault; may retry once")	\
	_(UNSUPPORTED_VERSION, "unsupported_version", "speak a version in [min, max] of the ERROR") \
	_(UNKNOWN_SESSION,     "unknown_session",     "session expired or moved: HELLO again") \
	_(UNKNOWN_REQUEST,     "unknown_request",     "no state for the request id: resend the request") \
	_(UNAUTHENTICATED,     "unauthenticated",     "MAC missing or wrong (when enforced)") \
	_(PENDING,             "pending",             "held whole, not answered yet: keep waiting, restart the timer")

enum proto_status {
#define _(sym, name, help) PROTO_ST_##sym,
	PROTO_FOREACH_STATUS(_)
#undef _
	PROTO_ST__COUNT
};

/* ---- decoded messages a device reads ---- */

struct proto_tensor {			/* the tensor a message carries: same in all its chunks */
	uint8_t dtype;			/* enum proto_dtype */
	uint8_t ndim;			/* 0 for RAW, 1..PROTO_MAX_DIMS otherwise */
	uint32_t dims[PROTO_MAX_DIMS];	/* dims[ndim..] are 0 */
	uint32_t raw_total;		/* bytes of the whole raw (decompressed) tensor */
	float scale;			/* real = scale * (q - zero_point); 1 for f32/f16/raw */
	int32_t zero_point;		/* in the dtype's range; 0 for f32/f16/raw */
};

struct proto_hello_reply {
	uint32_t session_ttl_ms;	/* idle time after which the session is forgotten */
	uint32_t max_msg_bytes;		/* the gateway's proto_limits, as it enforces them */
	uint32_t catalog_gen;		/* changes whenever the catalog does (reload) */
	uint16_t max_dgram;
	uint16_t max_chunks;
	uint16_t max_inflight;		/* open requests per client */
	uint16_t nack_gap_ms;		/* silence on an incomplete message before a NACK */
	uint16_t reasm_timeout_ms;	/* an incomplete message is dropped after this */
	uint16_t catalog_total;		/* entries in the whole catalog */
	uint16_t catalog_start;		/* index of the first entry in this reply */
	uint16_t catalog_count;		/* entries in this reply */
	uint32_t path_token;		/* non-zero: a path challenge (this address is not the
					 * session's yet): HELLO again with it to move the session */
	const uint8_t *entries;		/* decode: catalog_count packed entries in the datagram */
};

struct proto_catalog_entry {		/* one served (model, variant, split) */
	uint16_t model_id;		/* PROTO_MODEL_ECHO for the echo diagnostic */
	uint8_t variant_id;
	uint8_t split_id;
	uint8_t ndim;			/* the split tensor's shape at batch 1 */
	uint8_t dtype_mask;		/* bit d set: dtype d accepted */
	uint16_t n_classes;		/* classes of the final exit; 0 not a classifier */
	uint32_t dims[PROTO_MAX_DIMS];
	uint32_t head_kflop;		/* device work per sample up to the split, kFLOP */
	uint32_t tail_kflop;		/* gateway work per sample after it, kFLOP */
	uint32_t tail_us;		/* gateway's current tail latency estimate; 0 unknown */
	uint16_t accuracy_bp;		/* top-1 accuracy of the variant, 1/100 % */
	uint8_t n_exits;		/* exits served after the split */
	char name[PROTO_NAME_LEN];	/* model name, NUL terminated and padded */
};

struct proto_topk {
	uint32_t class_id;
	float score;
};

#ifdef __cplusplus
}
#endif

#endif
