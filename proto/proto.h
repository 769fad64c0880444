/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: tailgate's wire format (docs/protocol.md is the normative text; this header follows
 * it field for field). Encode and decode of every message, the chunking of a tensor into
 * independently LZ4-compressed datagrams, quantization, CRC32C, the CRC and MAC seals
 * (libsodium's keyed BLAKE2b) and the device key file. Prefix proto_.
 *
 * Shared by the gateway's RX lcores, the device client library and the bench: no DPDK, no
 * allocation, no logging, no locks in anything here (CRC32C builds its tables and libsodium
 * picks its BLAKE2b implementation once, under pthread_once), the key file loader excepted
 * (an init path: it reads a file and allocates). Every function is safe to call from any thread on its own arguments.
 * Buffers are always the caller's: a decoded message points into the datagram it was decoded
 * from and is valid exactly as long as that datagram.
 */
#ifndef TG_PROTO_H
#define TG_PROTO_H

#include <tailgate/types.h>	/* the wire types the device API shares */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants: the wire's fixed sizes and the caps its field widths impose ---- */

#define PROTO_MAGIC 0x5447u		/* "TG", bytes 0-1 of every datagram */
enum {
	PROTO_VERSION = 1,		/* what this code speaks and sends */
	PROTO_VERSION_MIN = 1,		/* lowest version accepted */
	PROTO_VERSION_MAX = 1,		/* highest version accepted */

	PROTO_HDR_LEN = 40,		/* common header, every message */
	PROTO_MAC_LEN = 16,		/* room for a keyed BLAKE2b-128 tag (docs 12.5) */
	PROTO_HELLO_LEN = 64,		/* fixed part of each type, payload starts there */
	PROTO_HELLO_REPLY_LEN = 72,
	PROTO_REQUEST_LEN = 104,
	PROTO_RESPONSE_LEN = 128,
	PROTO_NACK_LEN = 48,
	PROTO_ERROR_LEN = 48,
	PROTO_CATALOG_ENTRY_LEN = 64,	/* one HELLO_REPLY catalog entry */
	PROTO_NACK_RANGE_LEN = 4,	/* u16 first, u16 count */
	PROTO_TOPK_ENTRY_LEN = 8,	/* u32 class, f32 score */

	PROTO_HELLO_MIN_DGRAM = 1200,	/* a HELLO is padded to at least this (anti-amplification) */
	PROTO_DEFAULT_DGRAM = 1472,	/* MTU 1500 less IPv4 (20) and UDP (8) */
	PROTO_MAX_DGRAM = 65507,	/* largest UDP payload over IPv4 */
	PROTO_MAX_CHUNKS = 65535,	/* chunk count is a u16 on the wire */
	PROTO_MAX_NACK_RANGES = 256,	/* so a NACK always fits a HELLO-sized datagram */
	PROTO_MAX_MSG_BYTES = 1 << 30,	/* raw tensor cap; the wire field is a u32 */
};

/* Every message's first byte pair and layout. Offsets are from the start of the datagram. */
enum proto_off {
	/* common header, every type; bytes 0-15 keep their meaning in every future version */
	PROTO_OFF_MAGIC = 0,		/* u16 PROTO_MAGIC */
	PROTO_OFF_VERSION = 2,		/* u8 */
	PROTO_OFF_TYPE = 3,		/* u8 enum proto_type */
	PROTO_OFF_FLAGS = 4,		/* u16 enum proto_flag */
	PROTO_OFF_PAYLOAD_LEN = 6,	/* u16 bytes after the type's fixed part */
	PROTO_OFF_CLIENT_ID = 8,	/* u32 */
	PROTO_OFF_REQUEST_ID = 12,	/* u32 */
	PROTO_OFF_SESSION_ID = 16,	/* u64 */
	PROTO_OFF_MAC = 24,		/* u8[16] */
	/* HELLO */
	PROTO_OFF_HELLO_COMPUTE = 40,	/* u32 MFLOP/s */
	PROTO_OFF_HELLO_UPLINK = 44,	/* u32 kbit/s */
	PROTO_OFF_HELLO_RTT = 48,	/* u32 us */
	PROTO_OFF_HELLO_SLO = 52,	/* u32 us */
	PROTO_OFF_HELLO_ACC_FLOOR = 56,	/* u16 1/100 % */
	PROTO_OFF_HELLO_MAX_DGRAM = 58,	/* u16 */
	PROTO_OFF_HELLO_CAT_START = 60,	/* u16 */
	PROTO_OFF_HELLO_RSVD = 62,	/* u16 zero */
	PROTO_OFF_HELLO_PATH_TOKEN = 64,	/* u32, first padding bytes: 0 none (docs 12.1) */
	/* The energy profile, next padding bytes (docs 4.1): all zero from a device without */
	PROTO_OFF_HELLO_EN_HEAD = 68,	/* u32 uJ per MFLOP of head compute */
	PROTO_OFF_HELLO_EN_TX = 72,	/* u32 pJ per bit sent */
	PROTO_OFF_HELLO_GOAL = 76,	/* u8 enum proto_goal; 77-79 zero */
	PROTO_HELLO_EXT_END = 80,	/* padding proper (zero) from here */
	/* HELLO_REPLY */
	PROTO_OFF_HR_SESSION_TTL = 40,	/* u32 ms */
	PROTO_OFF_HR_MAX_MSG = 44,	/* u32 bytes */
	PROTO_OFF_HR_CAT_GEN = 48,	/* u32 */
	PROTO_OFF_HR_MAX_DGRAM = 52,	/* u16 */
	PROTO_OFF_HR_MAX_CHUNKS = 54,	/* u16 */
	PROTO_OFF_HR_MAX_INFLIGHT = 56,	/* u16 */
	PROTO_OFF_HR_NACK_GAP = 58,	/* u16 ms */
	PROTO_OFF_HR_REASM_TIMEOUT = 60,	/* u16 ms */
	PROTO_OFF_HR_CAT_TOTAL = 62,	/* u16 */
	PROTO_OFF_HR_CAT_START = 64,	/* u16 */
	PROTO_OFF_HR_CAT_COUNT = 66,	/* u16 */
	PROTO_OFF_HR_PATH_TOKEN = 68,	/* u32: 0, or a path challenge (docs 12.1) */
	/* REQUEST and RESPONSE: the chunk block, same offsets in both */
	PROTO_OFF_MODEL_ID = 40,	/* u16 */
	PROTO_OFF_VARIANT_ID = 42,	/* u8 */
	PROTO_OFF_SPLIT_ID = 43,	/* u8 */
	PROTO_OFF_CHUNK_INDEX = 44,	/* u16 */
	PROTO_OFF_CHUNK_COUNT = 46,	/* u16 */
	PROTO_OFF_DTYPE = 48,		/* u8 enum proto_dtype */
	PROTO_OFF_NDIM = 49,		/* u8 */
	PROTO_OFF_TOP_K = 50,		/* REQUEST: u8 */
	PROTO_OFF_REQ_FLAGS = 51,	/* REQUEST: u8 enum proto_req_flag */
	PROTO_OFF_STATUS = 50,		/* RESPONSE: u8 enum proto_status */
	PROTO_OFF_REASON = 51,		/* RESPONSE: u8 enum proto_reason */
	PROTO_OFF_RAW_TOTAL = 52,	/* u32 */
	PROTO_OFF_RAW_OFFSET = 56,	/* u32 */
	PROTO_OFF_RAW_LEN = 60,		/* u32 */
	PROTO_OFF_DIMS = 64,		/* u32[6] */
	PROTO_OFF_SCALE = 88,		/* f32 (binary32 bits, big endian) */
	PROTO_OFF_ZERO_POINT = 92,	/* s32 */
	PROTO_OFF_DEADLINE = 96,	/* REQUEST: u32 us */
	PROTO_OFF_REQ_RSVD = 100,	/* REQUEST: u32 zero */
	PROTO_OFF_QUEUE_US = 96,	/* RESPONSE: u32 */
	PROTO_OFF_COMPUTE_US = 100,	/* RESPONSE: u32 */
	PROTO_OFF_ADVICE_LATENCY = 104,	/* RESPONSE: u32 us */
	PROTO_OFF_ECHO_CRC = 108,	/* RESPONSE: u32 */
	PROTO_OFF_ECHO_BYTES = 112,	/* RESPONSE: u32 */
	PROTO_OFF_BATCH_SIZE = 116,	/* RESPONSE: u16 */
	PROTO_OFF_EXIT_TAKEN = 118,	/* RESPONSE: u8 */
	PROTO_OFF_RESULT_KIND = 119,	/* RESPONSE: u8 enum proto_result */
	PROTO_OFF_ADVICE_VARIANT = 120,	/* RESPONSE: u8 */
	PROTO_OFF_ADVICE_SPLIT = 121,	/* RESPONSE: u8 */
	PROTO_OFF_RESP_TOP_K = 122,	/* RESPONSE: u8 entries in a TOPK result */
	PROTO_OFF_ADVICE_FLAGS = 123,	/* RESPONSE: u8 enum proto_advice_flag */
	PROTO_OFF_RESP_RSVD32 = 124,	/* RESPONSE: u32 zero */
	/* NACK */
	PROTO_OFF_NACK_COUNT = 40,	/* u16 chunk count of the message */
	PROTO_OFF_NACK_N = 42,		/* u16 ranges that follow */
	PROTO_OFF_NACK_RSVD = 44,	/* u32 zero */
	/* ERROR */
	PROTO_OFF_ERR_STATUS = 40,	/* u8 */
	PROTO_OFF_ERR_REASON = 41,	/* u8 */
	PROTO_OFF_ERR_REF_TYPE = 42,	/* u8 type of the datagram answered, 0 unknown */
	PROTO_OFF_ERR_VMIN = 43,	/* u8 */
	PROTO_OFF_ERR_VMAX = 44,	/* u8 */
	PROTO_OFF_ERR_RSVD = 45,	/* u8 zero */
	PROTO_OFF_ERR_CHUNK = 46,	/* u16 chunk index answered, 0xFFFF none */
};

#ifndef __cplusplus	/* C11's keyword; every C build checks these, so C++ users need not */
_Static_assert(PROTO_OFF_MAC + PROTO_MAC_LEN == PROTO_HDR_LEN, "MAC ends the common header");
_Static_assert(PROTO_OFF_DIMS + 4 * PROTO_MAX_DIMS == PROTO_OFF_SCALE, "dims fill 64..87");
_Static_assert(PROTO_OFF_REQ_RSVD + 4 == PROTO_REQUEST_LEN, "REQUEST fixed part");
_Static_assert(PROTO_OFF_RESP_RSVD32 + 4 == PROTO_RESPONSE_LEN, "RESPONSE fixed part");
_Static_assert(PROTO_OFF_HR_PATH_TOKEN + 4 == PROTO_HELLO_REPLY_LEN, "HELLO_REPLY fixed part");
_Static_assert(PROTO_OFF_HELLO_RSVD + 2 == PROTO_HELLO_LEN, "HELLO fixed part");
_Static_assert(PROTO_OFF_ERR_CHUNK + 2 == PROTO_ERROR_LEN, "ERROR fixed part");
_Static_assert(PROTO_MAX_CHUNKS <= UINT16_MAX, "chunk count is a u16 on the wire");
_Static_assert(PROTO_MAX_DGRAM <= UINT16_MAX, "payload_len is a u16 on the wire");
_Static_assert((uint64_t)PROTO_MAX_MSG_BYTES <= UINT32_MAX, "raw_total is a u32 on the wire");
_Static_assert(PROTO_MAX_TOP_K <= UINT8_MAX, "top_k is a u8 on the wire");
_Static_assert(PROTO_NACK_LEN + PROTO_NACK_RANGE_LEN * PROTO_MAX_NACK_RANGES
	       <= PROTO_HELLO_MIN_DGRAM, "the longest NACK fits the smallest datagram");
_Static_assert(PROTO_RESPONSE_LEN + PROTO_TOPK_ENTRY_LEN * PROTO_MAX_TOP_K
	       <= PROTO_HELLO_MIN_DGRAM, "the longest top-k RESPONSE fits one datagram");
_Static_assert(PROTO_ERROR_LEN <= PROTO_REQUEST_LEN && PROTO_ERROR_LEN <= PROTO_HELLO_LEN,
	       "an ERROR is never larger than a REQUEST or HELLO it answers");
_Static_assert(PROTO_HELLO_REPLY_LEN + PROTO_CATALOG_ENTRY_LEN <= PROTO_HELLO_MIN_DGRAM,
	       "a minimal HELLO has room for a reply with at least one catalog entry");
#endif

enum proto_type {
	PROTO_T_HELLO = 1,		/* client -> gateway: device profile, opens a session */
	PROTO_T_HELLO_REPLY = 2,	/* gateway -> client: session, limits, catalog page */
	PROTO_T_REQUEST = 3,		/* client -> gateway: one chunk of a feature tensor */
	PROTO_T_RESPONSE = 4,		/* gateway -> client: status, timing, advice, result chunk */
	PROTO_T_NACK = 5,		/* either way: chunks of a message still missing */
	PROTO_T_ERROR = 6,		/* either way: a datagram that could not be served */
	PROTO_T__COUNT
};

enum proto_flag {			/* common header flags; any other bit is refused */
	PROTO_F_LZ4 = 1u << 0,		/* payload is one LZ4 block (REQUEST, RESPONSE only) */
	PROTO_F_MAC = 1u << 1,		/* mac holds a keyed BLAKE2b-128 tag (proto_seal_mac()) */
	PROTO_F_RETRANSMIT = 1u << 2,	/* a resend of an earlier datagram (counted only) */
	PROTO_F_CRC = 1u << 3,		/* mac bytes 0-3 hold CRC32C (proto_seal_crc()); the
					 * decoder checks it. Not with MAC */
	PROTO_F__ALL = 0xF,
};

/* enum proto_req_flag, enum proto_dtype: <tailgate/types.h> */

enum proto_result {			/* RESPONSE result_kind: what the payload holds */
	PROTO_RES_NONE = 0,		/* no payload: non-OK status */
	PROTO_RES_TOPK = 1,		/* top_k entries {u32 class, f32 score}, big endian */
	PROTO_RES_TENSOR = 2,		/* the output tensor (f32), chunked like a request */
	PROTO_RES_ECHO = 3,		/* no payload: echo_crc32c and echo_bytes are set */
	PROTO_RES__COUNT
};

/* PROTO_FOREACH_STATUS, enum proto_status: <tailgate/types.h> */

/*
 * Reasons: why a datagram was refused (the decoder's results, PROTO_E_LZ4 from unpacking) and
 * the gateway's own BAD_REQUEST / OVERLOADED reasons. The value is the wire's reason byte, so
 * entries are only ever appended. sym, metric label, wire status, help.
 */
#define PROTO_FOREACH_REASON(_)								\
	_(OK,               "ok",               OK,          "accepted (or: no reason)")	\
	_(E_TRUNCATED,      "truncated",        BAD_REQUEST, "shorter than its header or declared payload") \
	_(E_BAD_MAGIC,      "bad_magic",        BAD_REQUEST, "magic is not \"TG\"")	\
	_(E_BAD_VERSION,    "bad_version",      UNSUPPORTED_VERSION, "protocol version not spoken") \
	_(E_BAD_TYPE,       "bad_type",         BAD_REQUEST, "unknown message type")	\
	_(E_BAD_FLAGS,      "bad_flags",        BAD_REQUEST, "unknown flag, or one the type does not allow") \
	_(E_BAD_LENGTH,     "bad_length",       BAD_REQUEST, "bytes after the declared payload") \
	_(E_DGRAM_TOO_BIG,  "dgram_too_big",    BAD_REQUEST, "datagram over the configured maximum") \
	_(E_RESERVED,       "reserved",         BAD_REQUEST, "reserved field not zero")	\
	_(E_BAD_FIELD,      "bad_field",        BAD_REQUEST, "field outside its documented range") \
	_(E_CHUNK_INDEX,    "chunk_index",      BAD_REQUEST, "chunk index not below chunk count") \
	_(E_CHUNK_COUNT,    "chunk_count",      BAD_REQUEST, "chunk count 0 or above the element count") \
	_(E_TOO_MANY_CHUNKS, "too_many_chunks", BAD_REQUEST, "chunk count over the configured maximum") \
	_(E_MSG_TOO_BIG,    "msg_too_big",      BAD_REQUEST, "raw tensor over the configured maximum") \
	_(E_CHUNK_RANGE,    "chunk_range",      BAD_REQUEST, "raw offset + raw length past the raw tensor") \
	_(E_CHUNK_ALIGN,    "chunk_align",      BAD_REQUEST, "raw offset or length not whole elements") \
	_(E_EMPTY_CHUNK,    "empty_chunk",      BAD_REQUEST, "chunk of a non-empty tensor with no raw bytes") \
	_(E_RAW_LEN,        "raw_len",          BAD_REQUEST, "uncompressed payload length is not raw length") \
	_(E_BAD_DTYPE,      "bad_dtype",        BAD_REQUEST, "unknown dtype")			\
	_(E_BAD_SHAPE,      "bad_shape",        BAD_REQUEST, "ndim over 6, a zero dim, dims past ndim, or ndim/dtype disagree") \
	_(E_DIMS_TOO_BIG,   "dims_too_big",     BAD_REQUEST, "shape holds more bytes than the maximum") \
	_(E_SHAPE_SIZE,     "shape_size",       BAD_REQUEST, "shape times element size is not the raw size") \
	_(E_BAD_QUANT,      "bad_quant",        BAD_REQUEST, "scale or zero point invalid for the dtype") \
	_(E_LZ4,            "lz4",              BAD_REQUEST, "payload does not decompress to exactly raw length") \
	_(E_TOP_K,          "top_k",            BAD_REQUEST, "top-k over the maximum")	\
	_(E_BAD_RESULT,     "bad_result",       BAD_REQUEST, "result kind, status and payload disagree") \
	_(E_NACK_TOO_LONG,  "nack_too_long",    BAD_REQUEST, "NACK with no ranges or over the maximum") \
	_(E_NACK_RANGE,     "nack_range",       BAD_REQUEST, "NACK range empty, unsorted or past the count") \
	_(E_HELLO_SHORT,    "hello_short",      BAD_REQUEST, "HELLO not padded to 1200 bytes") \
	_(E_BAD_PADDING,    "bad_padding",      BAD_REQUEST, "HELLO padding not zero")	\
	_(E_BAD_CATALOG,    "bad_catalog",      BAD_REQUEST, "catalog count, entry or name invalid") \
	_(E_BAD_STATUS,     "bad_status",       BAD_REQUEST, "unknown status code, or OK in an ERROR")		\
	_(E_CHUNK_MISMATCH, "chunk_mismatch",   BAD_REQUEST, "chunk disagrees with earlier chunks of its message") \
	_(E_MODEL_SHAPE,    "model_shape",      BAD_REQUEST, "dtype or shape not what the split takes") \
	_(E_REASM_TIMEOUT,  "reasm_timeout",    UNKNOWN_REQUEST, "message still incomplete at its reassembly timeout") \
	_(E_QUEUE_FULL,     "queue_full",       OVERLOADED,  "the split's queue is full")	\
	_(E_CLIENT_INFLIGHT, "client_inflight", OVERLOADED,  "client over its in-flight messages") \
	_(E_POOL_FULL,      "pool_full",        OVERLOADED,  "no free message slot in the gateway") \
	_(E_CHUNK_TILE,     "chunk_tile",       BAD_REQUEST, "chunks overlap or leave a gap: they do not tile the tensor") \
	_(E_SESSION_FULL,   "session_full",     OVERLOADED,  "no free session for a new HELLO")  \
	_(E_BACKLOG,        "backlog",          OVERLOADED,  "the work queued ahead would finish it after its deadline") \
	_(E_BAD_CRC,        "bad_crc",          BAD_REQUEST, "CRC32C wrong (flag CRC), or missing where integrity is required") \
	_(E_BAD_MAC,        "bad_mac",          UNAUTHENTICATED, "MAC tag wrong, or no key for the client id") \
	_(E_NO_MAC,         "no_mac",           UNAUTHENTICATED, "MAC required and missing") \
	_(E_REPLAY,         "replay",           UNAUTHENTICATED, "request id already answered and forgotten, below the window, or an old HELLO nonce") \
	_(E_PENDING,        "pending",          PENDING,     "held whole and not answered yet: the answer will come") \
	_(E_PATH_UNVERIFIED, "path_unverified", UNKNOWN_SESSION, "session bound to another address: a path challenge was sent") \
	_(E_SOURCE_INFLIGHT, "source_inflight", OVERLOADED,  "the source address holds its share of message slots") \
	_(E_EVICTED,        "evicted",          UNKNOWN_REQUEST, "unfinished message's slot taken back for fair share") \
	_(E_UNKNOWN_VARIANT, "unknown_variant", UNKNOWN_SPLIT, "the model does not serve the variant id the request names")

enum proto_reason {
#define _(sym, name, status, help) PROTO_##sym,
	PROTO_FOREACH_REASON(_)
#undef _
	PROTO_REASON__COUNT
};
#ifndef __cplusplus
_Static_assert(PROTO_REASON__COUNT <= UINT8_MAX, "reason is a u8 on the wire");
#endif

/** Metric label of a status / reason ("bad_magic"); "?" for a value out of range. */
const char *proto_status_name(unsigned status);
const char *proto_reason_name(unsigned reason);
/** One line for /metrics HELP and logs. */
const char *proto_reason_help(unsigned reason);
/** The wire status a reason is answered with (BAD_REQUEST for most). */
enum proto_status proto_reason_status(enum proto_reason r);

/* ---- limits: what a receiver accepts; each one refuses with its own reason ---- */

struct proto_limits {
	uint32_t max_msg_bytes;		/* raw tensor per message; default 4 MiB, <= PROTO_MAX_MSG_BYTES */
	uint16_t max_dgram;		/* largest datagram; default 1472, >= PROTO_HELLO_MIN_DGRAM */
	uint16_t max_chunks;		/* chunks per message; default 4096, <= PROTO_MAX_CHUNKS */
	uint16_t max_nack_ranges;	/* ranges per NACK; default 64, <= PROTO_MAX_NACK_RANGES */
	uint8_t max_top_k;		/* default 16, <= PROTO_MAX_TOP_K */
};

/** The defaults above. */
void proto_limits_default(struct proto_limits *l);
/** Every field inside its wire cap. @return 0 or -EINVAL. */
int proto_limits_check(const struct proto_limits *l);

/* ---- decoded messages ---- */

struct proto_hdr {			/* the common header */
	uint8_t version;		/* PROTO_VERSION when encoding (ignored there) */
	uint8_t type;			/* enum proto_type (set by the encoders) */
	uint16_t flags;			/* enum proto_flag; encoders set LZ4 themselves */
	uint16_t payload_len;		/* bytes after the fixed part (set by the encoders) */
	uint32_t client_id;		/* the device's identity, chosen by the device */
	uint32_t request_id;		/* unique per session: retransmits reuse it */
	uint64_t session_id;		/* from HELLO_REPLY; 0 in a first HELLO */
	uint8_t mac[PROTO_MAC_LEN];	/* zero in v1 unless PROTO_F_MAC */
};

/* struct proto_tensor: <tailgate/types.h> */

struct proto_chunk {			/* REQUEST and RESPONSE: one datagram's piece */
	uint16_t model_id;
	uint8_t variant_id;
	uint8_t split_id;
	uint16_t index;			/* 0..count-1 */
	uint16_t count;			/* chunks in the message */
	struct proto_tensor t;
	uint32_t raw_offset;		/* where the payload's raw bytes go in the tensor */
	uint32_t raw_len;		/* raw bytes the payload stands for */
	bool lz4;			/* payload is an LZ4 block, else raw_len raw bytes */
	const uint8_t *payload;		/* decode: inside the datagram; encode: the caller's */
	uint32_t payload_len;
};

/* enum proto_goal, enum proto_advice_flag: <tailgate/types.h> */

struct proto_hello {
	uint32_t compute_mflops;	/* device head compute rate, MFLOP/s; 0 unknown */
	uint32_t uplink_kbps;		/* uplink estimate, kbit/s; 0 unknown */
	uint32_t rtt_us;		/* round trip estimate; 0 unknown */
	uint32_t slo_us;		/* end-to-end latency target per request; 0 none */
	uint16_t accuracy_floor_bp;	/* lowest acceptable top-1 accuracy, 1/100 %; <= 10000 */
	uint16_t max_dgram;		/* largest datagram the device takes; >= 1200 */
	uint16_t catalog_start;		/* first catalog entry wanted in the reply */
	uint32_t path_token;		/* echo of a HELLO_REPLY's path_token; 0 none */
	/* The energy profile (docs 4.1); all 0 from a device without one */
	uint32_t head_uj_per_mflop;	/* device energy per MFLOP of head compute, uJ; 0 unknown */
	uint32_t tx_pj_per_bit;		/* device energy per bit sent, pJ; 0 unknown */
	uint8_t goal;			/* enum proto_goal */
};

/* struct proto_hello_reply, struct proto_catalog_entry: <tailgate/types.h> */

struct proto_request {
	struct proto_chunk c;
	uint8_t top_k;			/* classes wanted; 0 none */
	uint8_t flags;			/* enum proto_req_flag */
	uint32_t deadline_us;		/* budget from the first chunk's arrival; 0 none */
};

struct proto_response {
	struct proto_chunk c;		/* the result's bytes (RAW, raw_total 0 when none) */
	uint8_t status;			/* enum proto_status */
	uint8_t reason;			/* enum proto_reason; OK when none */
	uint8_t result_kind;		/* enum proto_result */
	uint8_t exit_taken;		/* exit that answered; PROTO_NONE when none ran */
	uint8_t advice_variant;		/* PROTO_NONE: no advice */
	uint8_t advice_split;		/* PROTO_NONE: no advice */
	uint8_t advice_flags;		/* enum proto_advice_flag; 0 for devices without a goal */
	uint8_t top_k;			/* entries in a TOPK result */
	uint16_t batch_size;		/* batch the request ran in; 0 not run */
	uint32_t queue_us;		/* arrival of the last chunk to dispatch */
	uint32_t compute_us;		/* tail run time of its batch */
	uint32_t advice_latency_us;	/* expected end-to-end latency at the advised split */
	uint32_t echo_crc32c;		/* ECHO: CRC32C of the reassembled raw tensor */
	uint32_t echo_bytes;		/* ECHO: its length */
};

struct proto_range {
	uint16_t first;			/* first missing chunk index */
	uint16_t count;			/* consecutive missing chunks, >= 1 */
};

struct proto_nack {
	uint16_t chunk_count;		/* chunk count of the message the NACK is about */
	uint16_t n_ranges;
	struct proto_range ranges[PROTO_MAX_NACK_RANGES];	/* ascending, disjoint */
};

struct proto_error {
	uint8_t status;			/* enum proto_status, never OK */
	uint8_t reason;			/* enum proto_reason */
	uint8_t ref_type;		/* type of the datagram answered; 0 unknown */
	uint8_t min_version;		/* versions the sender speaks */
	uint8_t max_version;
	uint16_t chunk_index;		/* chunk answered; 0xFFFF none */
};

struct proto_msg {
	struct proto_hdr h;
	union {
		struct proto_hello hello;
		struct proto_hello_reply hello_reply;
		struct proto_request req;
		struct proto_response resp;
		struct proto_nack nack;
		struct proto_error error;
	} u;
};

/* Per-receiver counters: decoded messages by type, refusals by reason. Plain increments: one
 * instance per thread (an lcore's stats), summed by whoever exports them. */
struct proto_stats {
	uint64_t rx[PROTO_T__COUNT];
	uint64_t reject[PROTO_REASON__COUNT];
};

/* ---- decoding ---- */

/**
 * Check the common header only: magic, version, length, type. Used to route a datagram
 * and to answer a version the receiver does not speak.
 * @param h  filled as far as the checks got (version and ids even on E_BAD_VERSION when
 *           the datagram holds them)
 * @return PROTO_OK or E_TRUNCATED, E_BAD_MAGIC, E_BAD_VERSION, E_BAD_TYPE
 */
enum proto_reason proto_peek(const uint8_t *buf, size_t len, struct proto_hdr *h);

/**
 * Decode and check one datagram: every field against the wire rules and lim, in the order
 * docs/protocol.md gives. No allocation; out's pointers (payload, entries) point into buf.
 * Thread: any; buf and out are the caller's.
 * @param lim  NULL: proto_limits_default()
 * @param st   NULL, or counters: rx[type]++ on success, reject[reason]++ otherwise
 * @return PROTO_OK, or the reason it was refused. On a refusal out->h is filled as far as
 *         proto_peek() got (the caller should zero it first: fields past that point are left
 *         as they were; version and type from 4 bytes on, flags to request_id from 16,
 *         session_id and mac from 40), which is what an ERROR reply needs; the rest of out
 *         is unspecified.
 */
enum proto_reason proto_decode(const uint8_t *buf, size_t len, const struct proto_limits *lim,
			       struct proto_msg *out, struct proto_stats *st);

/** Catalog entry i (< catalog_count) of a decoded HELLO_REPLY (checked by proto_decode). */
void proto_catalog_get(const struct proto_hello_reply *r, unsigned i,
		       struct proto_catalog_entry *e);

/* struct proto_topk: <tailgate/types.h> */
/** Entry i (< top_k) of a decoded TOPK RESPONSE. */
void proto_topk_get(const struct proto_response *r, unsigned i, struct proto_topk *e);

/**
 * Two chunks belong to the same message consistently: ids, count, tensor (and for REQUEST
 * top_k, flags, deadline). Reassembly refuses a chunk that differs with E_CHUNK_MISMATCH.
 */
bool proto_request_same_msg(const struct proto_request *a, const struct proto_request *b);
bool proto_response_same_msg(const struct proto_response *a, const struct proto_response *b);

/* ---- encoding: into the caller's buffer; never emits what proto_decode would refuse ---- */

/*
 * Each proto_encode_*() writes one datagram at buf and returns its length, or -ENOSPC (cap
 * too small) or -EINVAL (a field outside the wire rules: the same checks the decoder makes,
 * against the wire caps). h supplies flags (LZ4 excepted), client, request and session ids
 * and mac; version, type and payload_len are the encoder's. Thread: any.
 */

/** HELLO padded with zeros to pad_to bytes (>= PROTO_HELLO_MIN_DGRAM). */
int proto_encode_hello(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		       const struct proto_hello *m, size_t pad_to);
/** HELLO_REPLY with m->catalog_count entries from e. */
int proto_encode_hello_reply(uint8_t *buf, size_t cap, const struct proto_hdr *h,
			     const struct proto_hello_reply *m,
			     const struct proto_catalog_entry *e);
/** REQUEST: the chunk's payload (m->c.payload, payload_len) is copied after the header. */
int proto_encode_request(uint8_t *buf, size_t cap, const struct proto_hdr *h,
			 const struct proto_request *m);
/** RESPONSE, payload as for a REQUEST. */
int proto_encode_response(uint8_t *buf, size_t cap, const struct proto_hdr *h,
			  const struct proto_response *m);
int proto_encode_nack(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		      const struct proto_nack *m);
int proto_encode_error(uint8_t *buf, size_t cap, const struct proto_hdr *h,
		       const struct proto_error *m);

/**
 * The ERROR answering datagram in (in_len bytes) with status and reason: echoes its client,
 * request and session ids, type and chunk index where in holds them.
 * Anti-amplification: refuses to build an ERROR longer than in_len.
 * @return the ERROR's length, -EMSGSIZE (in too short to be answered: drop and count it),
 *         -ENOSPC (cap too small)
 */
int proto_error_reply(uint8_t *buf, size_t cap, const uint8_t *in, size_t in_len,
		      enum proto_status status, enum proto_reason reason);

/**
 * Catalog entries a HELLO_REPLY may carry when answering a HELLO of hello_len bytes: the
 * reply fits the HELLO (anti-amplification), the gateway's and the device's max_dgram.
 */
unsigned proto_hello_reply_room(size_t hello_len, unsigned gw_max_dgram,
				unsigned client_max_dgram);

/** Make r a TOPK result of k entries packed into scratch (>= 8 * k bytes, the caller's). */
int proto_response_set_topk(struct proto_response *r, uint8_t *scratch,
			    const struct proto_topk *e, unsigned k);

/**
 * Fill a NACK with the ranges of chunks not set in a received-bitmap (bit i of word i / 64
 * set when chunk i arrived), at most max_ranges of them (the first ones, ascending).
 * @return ranges written; 0 when nothing is missing
 */
unsigned proto_nack_from_bitmap(struct proto_nack *n, const uint64_t *received,
				uint16_t chunk_count, unsigned max_ranges);

/* ---- chunking: a tensor into datagrams, and a chunk back into its tensor ---- */

/** Element bytes of a dtype (RAW: 1); 0 for an unknown value. */
unsigned proto_dtype_size(unsigned dtype);

struct proto_dgram {			/* one encoded datagram inside the caller's out buffer */
	uint8_t *data;
	uint32_t len;
};

/**
 * Worst case of proto_*_chunk() for a tensor of raw_total bytes of dtype at max_dgram:
 * chunks it may produce and out bytes it may need (each chunk holds at least a raw
 * payload's worth of whole elements, and never more wire bytes than raw bytes).
 * @return 0, or -EINVAL (dtype unknown, or max_dgram leaves no room for one element)
 */
int proto_chunk_bound(enum proto_type type, unsigned dtype, size_t raw_total, size_t max_dgram,
		      unsigned *max_chunks, size_t *max_bytes);

/**
 * Split raw (m->c.t.raw_total bytes, the tensor m->c.t describes) into REQUEST datagrams of
 * at most max_dgram bytes each, written back to back into out, dg[i] pointing at each.
 * Each chunk is compressed on its own: LZ4_compress_destSize packs as much of the tensor
 * as fits one datagram; a chunk is sent raw when that covers more, or (the last chunk) when
 * LZ4 does not shrink it. Chunk boundaries fall on whole elements. lz4 false: all raw.
 * m's chunk placement fields (index, count, offsets, payload) are ignored and set per chunk.
 * No allocation (LZ4 keeps its 16 KiB state on the stack).
 * @return 0 with *n_dg set, -EINVAL (m or max_dgram invalid), -E2BIG (more than max_dg
 *         chunks or PROTO_MAX_CHUNKS), -ENOSPC (out_cap too small: see proto_chunk_bound)
 */
int proto_request_chunk(const struct proto_hdr *h, const struct proto_request *m,
			const void *raw, size_t max_dgram, bool lz4, uint8_t *out, size_t out_cap,
			struct proto_dgram *dg, unsigned max_dg, unsigned *n_dg);
/** The same for a TENSOR RESPONSE (the gateway's full-output answers). */
int proto_response_chunk(const struct proto_hdr *h, const struct proto_response *m,
			 const void *raw, size_t max_dgram, bool lz4, uint8_t *out,
			 size_t out_cap, struct proto_dgram *dg, unsigned max_dg, unsigned *n_dg);

/**
 * Place an accepted chunk into its tensor: copy or LZ4-decompress its payload straight to
 * dst + raw_offset (LZ4_decompress_safe bounded to raw_len). Only [raw_offset, raw_offset +
 * raw_len) of dst is written, even when the payload is refused.
 * @param dst_len  bytes of dst (the tensor slot, normally raw_total)
 * @param st       NULL or counters: reject[reason]++ on refusal
 * @return PROTO_OK, E_LZ4 (does not decompress to exactly raw_len bytes), E_CHUNK_RANGE
 *         (the range does not fit dst_len)
 */
enum proto_reason proto_chunk_unpack(const struct proto_chunk *c, void *dst, size_t dst_len,
				     struct proto_stats *st);

/* ---- quantization: real = scale * (q - zero_point), elements little endian ---- */

/**
 * Scale and zero point for x[0..n): U8 affine over [min(x, 0), max(x, 0)]; S8 symmetric
 * (zero_point 0, scale max|x| / 127); F32/F16 1 and 0. Non-finite values are ignored.
 * @return 0 or -EINVAL (RAW or unknown dtype)
 */
int proto_quant_params(unsigned dtype, const float *x, size_t n, float *scale,
		       int32_t *zero_point);

/**
 * x[0..n) f32 to dtype at dst (n * size bytes, little endian, any alignment):
 * q = clamp(round_half_even(x / scale) + zero_point); NaN becomes zero_point; f16 rounds to
 * nearest even and overflows to infinity.
 * @return 0 or -EINVAL (RAW, unknown dtype, scale not finite and > 0, zero point out of range)
 */
int proto_quantize(unsigned dtype, const float *x, size_t n, float scale, int32_t zero_point,
		   void *dst);
/** dtype at src (little endian, any alignment) back to f32: scale * (q - zero_point). */
int proto_dequantize(unsigned dtype, const void *src, size_t n, float scale,
		     int32_t zero_point, float *dst);
/** IEEE half <-> single conversions (round to nearest even; overflow to infinity). */
float proto_f16_to_f32(uint16_t h);
uint16_t proto_f32_to_f16(float f);

/* ---- integrity and authentication of a whole datagram (docs/protocol.md 12.5) ---- */

enum {
	PROTO_KEY_LEN = 32,		/* a device's BLAKE2b key */
	PROTO_CRC_LEN = 4,		/* CRC32C in mac bytes 0-3, bytes 4-15 zero */
};

/**
 * Seal a whole encoded datagram in place with CRC32C (flag CRC): sets CRC, clears MAC,
 * zeroes the mac field, then writes the CRC32C of all len bytes (mac zero) big endian at
 * mac bytes 0-3. Call after the last change to the bytes (e.g. RETRANSMIT).
 * @return 0, or -EINVAL when len < PROTO_HDR_LEN
 */
int proto_seal_crc(uint8_t *dg, size_t len);

/**
 * Seal in place with the keyed BLAKE2b-128 tag (flag MAC): sets MAC, clears CRC, zeroes the
 * mac field, writes crypto_generichash(tag, 16, dg, len, key, 32) there.
 * @param key  PROTO_KEY_LEN bytes, the caller's
 * @return 0, or -EINVAL when len < PROTO_HDR_LEN
 */
int proto_seal_mac(uint8_t *dg, size_t len, const uint8_t *key);

/** The datagram's CRC32C is right (flag CRC set, bytes 4-15 of mac zero). Any thread. */
bool proto_crc_ok(const uint8_t *dg, size_t len);

/**
 * The datagram carries flag MAC and a tag valid under key, compared in constant time
 * (sodium_memcmp): a forger learns nothing from how long a refusal took.
 */
bool proto_mac_ok(const uint8_t *dg, size_t len, const uint8_t *key);

/* ---- device keys: the key file, one `CLIENT_ID HEX64` line per device ---- */

struct tg_err;

struct proto_key {
	uint32_t client_id;
	uint8_t key[PROTO_KEY_LEN];
};

/**
 * A key table: what a key file holds, ascending by client id, each id once. Immutable once
 * built, so any number of threads may read it at once; the keys lie in memory that is locked
 * (not swapped) and guarded (sodium_malloc) and is zeroed when the table is freed.
 */
struct proto_keys {
	size_t n;			/* entries */
	struct proto_key *k;		/* [n], ascending client_id */
	uint64_t *nonce;		/* [n]: the highest HELLO nonce a MAC-verified HELLO of
					 * the device carried, as 1 << 32 | nonce; 0 none yet.
					 * Not secret, and the one mutable part: the gateway's RX
					 * lcores update it with atomics (docs/protocol.md 12.5) */
};

/**
 * Parse a key file's text: per line `CLIENT_ID HEX64` (client id 0..4294967295 in decimal,
 * the key as 64 hex digits), `#` starts a comment, blank lines are skipped. Every malformed
 * or duplicated line is an error naming name:line. Init path: allocates.
 * @param out  set to a new table, the caller's: proto_keys_free() it
 * @return 0, -EINVAL (err says where and why), -ENOMEM
 */
int proto_keys_parse(struct proto_keys **out, const char *text, size_t len, const char *name,
		     struct tg_err *err);

/**
 * Read and parse the key file at path. Refused when it is not a regular file, when its mode
 * lets the group or others read or write it (chmod 600), or when it is over 16 MiB. The
 * file's bytes are zeroed once parsed.
 * @return 0 with *out set (the caller's), or -errno with err set
 */
int proto_keys_load(struct proto_keys **out, const char *path, struct tg_err *err);

/** The entry of client_id, or NULL. Binary search: no allocation, any thread. */
const struct proto_key *proto_keys_find(const struct proto_keys *t, uint32_t client_id);

/** Zero and free a table; t may be NULL. No reader may hold it any more. */
void proto_keys_free(struct proto_keys *t);

/* ---- CRC32C (Castagnoli, reflected 0x82F63B78), the echo model's checksum ---- */

/**
 * CRC32C of buf appended to a running crc: start with 0, feed the previous return value to
 * continue ("123456789" -> 0xE3069283). The SSE4.2 crc32 instruction where the CPU has it
 * (checked at run time), else software slicing-by-8 (tables built on first use).
 */
uint32_t proto_crc32c(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
