/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libtailgate-client: the device library. A device opens a session with a gateway
 * (HELLO / HELLO_REPLY), runs the head of a model to a split point, and sends the feature
 * tensor as one REQUEST: quantized (f32|f16|s8|u8), LZ4-chunked into datagrams, paced at the
 * device's uplink rate; it resends what a NACK lists, the whole request on a timeout (same
 * request id: requests are idempotent), and returns the gateway's RESPONSE: status, top-k,
 * server timing, exit taken and split advice. Prefix tgc_.
 *
 * Wire format: docs/protocol.md. Transport: one kernel UDP socket, connected
 * to the gateway. Installed (make install) as <tailgate/tgc.h>; build with
 * `pkg-config --cflags --libs tailgate-client` (--static for libtailgate-client.a). The
 * shared library (soname libtailgate-client.so.1) exports the tgc_* functions only; C and
 * C++ alike.
 *
 * Threads: a struct tgc is one session and belongs to one thread at a time (one request in
 * flight; a device wanting more opens more sessions). struct tgc_head likewise.
 * Errors: actions return 0 or -errno; where words help, a struct tg_err (may be NULL) is
 * filled with a message naming what failed. Nothing here aborts or exits.
 */
#ifndef TG_CLIENT_TGC_H
#define TG_CLIENT_TGC_H

/* The error carrier, tensors and the wire's types used below (installed beside this file; in
 * the tree include/tailgate/types.h): nothing else of tailgate's is needed. */
#include <tailgate/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tgc;
struct tgc_head;
struct proto_nack;			/* a decoded NACK (tgc_nack_mark(): the bench's) */

enum {
	TGC_MAX_CATALOG = 256,		/* catalog entries kept from the HELLO_REPLY pages */
	TGC_MAX_TOP_K = PROTO_MAX_TOP_K,	/* entries a tgc_result can hold */
	TGC_HEAD_MIN_SAMPLES = 8,	/* measured head runs before the measured compute rate
					 * replaces the declared one (tgc_head_report()) */
	TGC_HEAD_RESEND_PCT = 25,	/* ... and how far it must be from the rate the gateway
					 * was last told before the HELLO is sent again */
	TGC_HEAD_MAX_SPLITS = 64,	/* (model, variant, split) triples measured per session */
};

/** What the device tells the gateway about itself (HELLO): drives the split advice. */
struct tgc_profile {
	uint32_t compute_mflops;	/* head compute rate, MFLOP/s; 0 unknown */
	uint32_t uplink_kbps;		/* uplink, kbit/s; also the pacing rate; 0 unknown/unpaced */
	uint32_t rtt_us;		/* round-trip estimate; 0 unknown (then 1 ms is assumed) */
	uint32_t slo_us;		/* end-to-end latency wanted per request; 0 none */
	uint16_t accuracy_floor_bp;	/* lowest acceptable top-1 accuracy, 1/100 %; <= 10000 */
};

/** Everything tgc_open() needs. Zero means the default given for each field. */
struct tgc_config {
	const char *gateway;		/* IPv4 address, dotted quad; required. Read during
					 * tgc_open() only: the caller keeps it */
	uint16_t port;			/* gateway's UDP port; 0: PROTO_PORT (7700) */
	const char *bind_addr;		/* local IPv4 address to bind; NULL: any. As gateway */
	uint16_t bind_port;		/* local UDP port; 0: an ephemeral one */
	uint32_t client_id;		/* the device's identity; 0: derived from the pid */
	struct tgc_profile profile;
	uint16_t max_dgram;		/* largest datagram either way (path MTU - 28); 0: 1472;
					 * 1200 .. 65507 */
	uint16_t hello_timeout_ms;	/* first HELLO wait, doubling per try; 0: 200 */
	uint8_t hello_tries;		/* HELLOs sent before giving up; 0: 4 */
	uint16_t request_timeout_ms;	/* first request timer; 0: docs/protocol.md 12.2's
					 * 2 x RTT + nack_gap + expected server time, >= 20 ms */
	uint8_t request_retries;	/* at most this many whole-request resends; 0: as many
					 * as the request's budget allows (tgc_budget_us()) */
	bool follow_advice;		/* remember the gateway's split advice per model for
					 * tgc_split_for() */
	/* docs/protocol.md 12.5. With a key (32 bytes, copied at open; the caller keeps its
	 * own), every datagram sent carries flag MAC and the keyed BLAKE2b-128 tag under it,
	 * and every datagram received without a valid tag is dropped (counted rx_unauth):
	 * client_id must then be the one the gateway's key file gives this key. Without a key,
	 * every datagram carries flag CRC (no_crc: none, as devices before it did). */
	const uint8_t *key;
	bool no_crc;
	/* Test impairment: drop this fraction (0..1) of outgoing REQUEST chunks, first sends
	 * and resends alike, with a xorshift RNG seeded by test_seed. 0 in production. */
	double test_drop_chunks;
	uint64_t test_seed;
	/* Test impairment: drop this fraction (0..1) of the datagrams tgc_request() receives
	 * (RESPONSE chunks, NACKs, ERRORs), same RNG. 0 in production. */
	double test_drop_rx;
};

/**
 * The device's energy profile (docs/protocol.md 4.1) and what the gateway's advice should
 * minimise. Given after tgc_open() (tgc_set_energy()), so that struct tgc_config keeps its
 * layout for programs built before it.
 */
struct tgc_energy {
	uint32_t head_uj_per_mflop;	/* energy per MFLOP of head compute, microjoules; 0 unknown */
	uint32_t tx_pj_per_bit;		/* energy per bit sent, picojoules (1000 = 1 nJ); 0 unknown */
	uint8_t goal;			/* enum proto_goal: 1 latency, 2 energy; 0 with the two
					 * above 0: no profile (as before) */
};

/** The gateway's last advice for a model (docs/protocol.md 7.3). */
struct tgc_advice {
	uint8_t variant_id;		/* PROTO_NONE: none */
	uint8_t split_id;		/* PROTO_NONE: none */
	uint8_t flags;			/* enum proto_advice_flag (a session with a goal only):
					 * NO_EARLY_EXIT: send with that flag; NONE_FITS:
					 * nothing meets the floor and the SLO */
	uint32_t latency_us;		/* end-to-end latency expected there */
};

/** Counters of a session since tgc_open(): plain numbers, read with tgc_stats(). */
struct tgc_stats {
	uint64_t requests;		/* tgc_request() calls that sent something */
	uint64_t responses;		/* RESPONSEs that ended a request */
	uint64_t chunks_sent;		/* REQUEST datagrams handed to the kernel, resends included */
	uint64_t chunks_dropped;	/* ... and those the test impairment dropped instead */
	uint64_t bytes_sent;		/* UDP payload bytes sent (HELLOs included) */
	uint64_t nacks;			/* NACKs received for our requests */
	uint64_t chunks_resent;		/* chunks resent for NACKs and timeouts */
	uint64_t timeouts;		/* request timers that fired */
	uint64_t pendings;		/* PENDING answers (the gateway holds the request) */
	uint64_t hellos;		/* HELLOs sent (re-HELLOs after UNKNOWN_SESSION included) */
	uint64_t path_challenges;	/* path challenges answered (our address changed) */
	uint64_t rx_ignored;		/* datagrams refused by proto_decode or not ours */
	uint64_t pace_wait_ns;		/* time spent waiting for the token bucket */
	uint64_t rx_dropped;		/* received datagrams the test impairment dropped */
	uint64_t resp_chunks;		/* TENSOR RESPONSE chunks placed (duplicates excluded) */
	uint64_t resp_nacks;		/* NACKs sent for missing TENSOR RESPONSE chunks */
	uint64_t rx_unauth;		/* datagrams dropped for a missing or wrong tag (key set) */
};

/** The result of one request. All fields are copies: nothing points into tgc's buffers. */
struct tgc_result {
	uint32_t request_id;
	uint8_t status;			/* enum proto_status of the RESPONSE (tgc_status_name()) */
	uint8_t reason;			/* the wire's reason code, docs/protocol.md (tgc_reason_name());
					 * 0 (ok) when none */
	uint8_t exit_taken;		/* exit (model output index) that answered; PROTO_NONE */
	uint8_t advice_variant;		/* PROTO_NONE: no advice */
	uint8_t advice_split;		/* PROTO_NONE: no advice */
	bool advice_differs;		/* advice given and not the (variant, split) just used */
	uint16_t batch_size;		/* batch the request ran in; 0 not run */
	uint32_t queue_us;		/* server: last chunk to batch start */
	uint32_t compute_us;		/* server: tail run time of the batch */
	uint32_t advice_latency_us;	/* expected end-to-end latency at the advised split */
	uint64_t total_ns;		/* this call: first chunk sent to RESPONSE received */
	uint64_t quant_ns;		/* quantization and chunking */
	uint32_t raw_bytes;		/* quantized tensor bytes */
	uint32_t wire_bytes;		/* datagram bytes of one full send (LZ4 included) */
	uint16_t chunks;		/* datagrams of the request */
	uint16_t chunks_resent;		/* resent for NACKs and timeouts, this request */
	uint8_t nacks;			/* NACKs received for it */
	uint8_t timeouts;		/* timers fired for it (and ERROR-driven resends) */
	uint8_t pendings;		/* PENDING answers it got (not resends) */
	uint8_t top_k;			/* entries in top[] */
	struct proto_topk top[TGC_MAX_TOP_K];	/* highest score first */
	/* WANT_TENSOR answered with a TENSOR result: what was written to opts.tensor_out
	 * (dtype, ndim, dims, raw_total bytes, scale, zero_point); raw_total 0 otherwise. */
	struct proto_tensor tensor;
	uint16_t resp_chunks;		/* datagrams of the TENSOR RESPONSE */
	uint8_t resp_nacks;		/* NACKs we sent for its missing chunks */
	/* tgc_infer() only (tgc_request() leaves them 0): where the answer came from, enum
	 * tgc_source; for TGC_SRC_DEVICE_FALLBACK the gateway's status that made it fall back
	 * (PROTO_NONE: no answer in time); the answering exit's softmax confidence on the
	 * device (0 for the gateway's answers: their scores are in top[]). */
	uint8_t source;
	uint8_t gw_status;
	float device_conf;
	/* The variant and split whose tail answered (docs/protocol.md 7.4): the request's,
	 * unless the gateway degraded it to a lighter variant of the model instead of refusing
	 * it for load (only for a profile with an accuracy floor, only to a variant whose
	 * catalog accuracy meets it); degraded then. PROTO_NONE and false when no RESPONSE
	 * came (a device exit answered). These three fill what was the struct's tail padding:
	 * its size and every earlier offset are unchanged (ABI of libtailgate-client.so.1). */
	uint8_t ran_variant;
	uint8_t ran_split;
	bool degraded;
};

/** Where a tgc_infer() answer came from (tgc_result.source). */
enum tgc_source {
	TGC_SRC_GATEWAY = 0,		/* the gateway's RESPONSE, as tgc_request() */
	TGC_SRC_DEVICE = 1,		/* a device-side exit was confident: nothing was sent */
	TGC_SRC_DEVICE_FALLBACK = 2,	/* the gateway did not answer within the deadline, or
					 * refused for load (OVERLOADED, DEADLINE_INFEASIBLE,
					 * INTERNAL): the best exit the head computed answers */
};

/**
 * Open a session: a UDP socket connected to cfg->gateway, a HELLO (padded to 1200 bytes,
 * session 0) resent after hello_timeout_ms, doubling, up to hello_tries times; then every
 * catalog page (more HELLOs with the session id). A re-HELLO (after UNKNOWN_SESSION) answers
 * a path challenge by echoing its token, which moves the session to our new address
 * (docs/protocol.md 12.1), and opens a new session when the gateway forgot the old one. Buffers for the largest request the
 * gateway accepts (its max_msg_bytes) are allocated here, none per request.
 * @param out  set to a new session the caller releases with tgc_close()
 * @param cfg  read during the call only
 * @return 0, -EINVAL (cfg invalid: err says which field), -ETIMEDOUT (no HELLO_REPLY),
 *         -EPROTO (the gateway answered with an ERROR: err has its status and reason),
 *         -ENOMEM, -errno of socket/bind/connect
 */
int tgc_open(struct tgc **out, const struct tgc_config *cfg, struct tg_err *err);

/** Close the socket and free everything; c may be NULL. */
void tgc_close(struct tgc *c);

/** The session id the gateway gave (changes only after a re-HELLO with a new session). */
uint64_t tgc_session_id(const struct tgc *c);

/** The gateway's limits, as its HELLO_REPLY gave them (entries NULL). Points into c, valid
 * until tgc_close(); updated by a re-HELLO. */
const struct proto_hello_reply *tgc_gateway_limits(const struct tgc *c);

/** Catalog entries fetched at open. @return their count; *entries points into c (valid until
 * tgc_close()). */
unsigned tgc_catalog(const struct tgc *c, const struct proto_catalog_entry **entries);

/** The catalog entry of (model, variant, split), NULL when the gateway does not serve it.
 * Points into c, valid until tgc_close(). */
const struct proto_catalog_entry *tgc_catalog_find(const struct tgc *c, uint16_t model_id,
						   uint8_t variant_id, uint8_t split_id);

/** One request's parameters beyond the tensor. */
struct tgc_request_opts {
	uint16_t model_id;
	uint8_t variant_id;
	uint8_t split_id;		/* the split the tensor was computed at */
	enum tg_dtype wire_dtype;	/* TG_DT_F32, F16, S8 or U8: quantized to this on the wire */
	uint8_t top_k;			/* classes wanted, <= the gateway's max (16 by default) */
	uint32_t deadline_us;		/* latency budget; 0 none */
	uint8_t req_flags;		/* enum proto_req_flag. WANT_TENSOR needs tensor_out: the
					 * answer is the exit's whole output tensor (f32; for the
					 * echo model the request's own tensor as sent) */
	/* WANT_TENSOR only: the caller's buffer the answer's tensor is reassembled into. It is
	 * written only during tgc_request() (chunk by chunk as they arrive, so on an error
	 * return it holds garbage) and stays the caller's; the result's tensor field says
	 * what it holds. An answer larger than tensor_cap bytes fails with -E2BIG. */
	void *tensor_out;
	uint32_t tensor_cap;
	/* 0: wait for the answer as long as the request's budget allows (tgc_budget_us());
	 * else give up this long after the first send (-ETIMEDOUT): tgc_infer() sets it to
	 * deadline_us when a device exit can answer instead. */
	uint32_t wait_us;
};

/**
 * Send one tensor and wait for its answer. The tensor is quantized to o->wire_dtype
 * (proto_quant_params: s8 symmetric, u8 affine), chunked with per-chunk LZ4, and sent paced
 * by a token bucket at profile.uplink_kbps. A NACK makes it resend exactly the chunks listed;
 * a timeout resends every chunk with the same request id, doubling the timer, until the
 * request's budget is spent (tgc_budget_us(): its deadline, or 2 x the gateway's
 * reasm_timeout_ms without one, plus a timer for the answer; request_retries may cap the
 * resends too). RESPONSE PENDING (the gateway holds the request whole) restarts the timer
 * and makes room in the budget without counting as a resend. ERROR UNKNOWN_REQUEST resends
 * the whole request; ERROR UNKNOWN_SESSION re-HELLOs (following a path challenge) and
 * resends it; a chunk's ERROR lz4 is left to the gateway's NACK.
 * With WANT_TENSOR the answer may take many datagrams: each is placed into o->tensor_out
 * as it arrives (LZ4 per chunk); after the gateway's nack_gap_ms of silence the missing
 * chunks are NACKed (at most 3 NACKs per round), then the request timer resends the whole
 * request, which the gateway answers by resending the whole answer (docs/protocol.md 12.2).
 * Thread: c's owner. Blocks for about the budget at most, longer only while the gateway
 * answers PENDING.
 * @param t    f32 tensor at the split, shape as the catalog entry says (dims[0] = 1); read
 *             only, the caller keeps it
 * @param out  filled on 0; status may be any enum proto_status (OVERLOADED and
 *             DEADLINE_INFEASIBLE carry advice: see tgc_split_for())
 * @return 0 (a RESPONSE arrived), -EINVAL (bad arguments, shape or dtype not what the
 *         catalog says: err says which), -E2BIG (tensor over the gateway's limits),
 *         -ETIMEDOUT (no answer within the budget), -EPROTO (an ERROR answered it: err has the
 *         status and reason), -E2BIG also for a TENSOR answer over tensor_cap, -errno of
 *         the socket
 */
int tgc_request(struct tgc *c, const struct tgc_request_opts *o, const struct tg_tensor *t,
		struct tgc_result *out, struct tg_err *err);

/**
 * The split to compute the next tensor of model_id at: the gateway's last advice for that
 * model when cfg.follow_advice is set and the advised split is in the catalog, else dflt.
 */
uint8_t tgc_split_for(const struct tgc *c, uint16_t model_id, uint8_t dflt);

/**
 * Send the energy profile and goal (a HELLO on the session; the catalog is fetched again), so
 * that the gateway advises exit policies too and, with goal 2, the least device energy.
 * Thread: c's owner. @return 0, -EINVAL (e invalid: err says why), -EOPNOTSUPP (a gateway
 * before the profile refused it: the session goes on without), or as tgc_open()
 */
int tgc_set_energy(struct tgc *c, const struct tgc_energy *e, struct tg_err *err);

/** The last advice the gateway gave for model_id, whether or not cfg.follow_advice is set.
 * @return true with *out filled, false when none came yet */
bool tgc_advice(const struct tgc *c, uint16_t model_id, struct tgc_advice *out);

/**
 * The device's own head time (issue: measurements win over declarations). Report how long
 * one run of the head of (model_id, variant_id) up to split_id took here, in ns:
 * tgc_infer() reports its own runs; a device that runs its head itself (tgc_run_head() and
 * tgc_request(), or its own accelerator) calls this after each run (tgc_head_last_ns()
 * gives tgc_run_head()'s time). Per split the library keeps the samples and their mean
 * (tgc_head_time()). Once TGC_HEAD_MIN_SAMPLES runs at splits with head work (the catalog's
 * head_kflop > 0) are in, the measured compute rate (their FLOPs over their time) replaces
 * profile.compute_mflops: whenever it differs from the rate the gateway was last told by
 * more than TGC_HEAD_RESEND_PCT %, and TGC_HEAD_MIN_SAMPLES new runs came since that, the
 * session's HELLO is sent again with it (the catalog is fetched again, as tgc_set_energy()
 * does), so the gateway's advice prices every split's head at what this device measured.
 * The wire carries one rate (HELLO compute_mflops, docs/protocol.md 4.1): splits whose time
 * is not in proportion to their FLOPs are averaged, weighted by their runs. Older samples
 * fade (each split's count and sum are halved past 1024 runs). Thread: c's owner.
 * @return 1 when the measured rate was just sent, 0 when kept, -EINVAL (head_ns 0, or the
 *         catalog does not serve that triple), -ENOSPC (TGC_HEAD_MAX_SPLITS triples already
 *         measured), or as tgc_open() when the HELLO failed (the rate is tried again at
 *         the next report)
 */
int tgc_head_report(struct tgc *c, uint16_t model_id, uint8_t variant_id, uint8_t split_id,
		    uint64_t head_ns, struct tg_err *err);

/**
 * The mean measured head time at (model_id, variant_id, split_id), ns, and its samples.
 * @return false (outputs untouched) when none was reported
 */
bool tgc_head_time(const struct tgc *c, uint16_t model_id, uint8_t variant_id,
		   uint8_t split_id, uint64_t *mean_ns, uint32_t *samples);

/** The compute rate (MFLOP/s) the gateway was last told: the declared profile's until a
 * measured one replaced it (tgc_head_report()). */
uint32_t tgc_compute_mflops(const struct tgc *c);

/** Counters since tgc_open(), copied into *out. */
void tgc_stats(const struct tgc *c, struct tgc_stats *out);

/** The name of a status ("overloaded") or reason ("queue_full") as docs/protocol.md and the
 * gateway's metrics spell it; "?" for a value out of range. Static strings; any thread. */
const char *tgc_status_name(unsigned status);
const char *tgc_reason_name(unsigned reason);

/* ---- pieces of the request logic shared with tailgate-bench (bench/): no network ---- */

/*
 * Token bucket in bytes: refilled at rate_bps / 8 bytes per second, holding at most burst
 * bytes. A datagram of n bytes may leave when the bucket holds n (or, for n > burst, when
 * it is full; the debt is then carried), and takes n tokens. rate 0: unpaced.
 */
struct tgc_pacer {
	uint64_t rate_bps;		/* bits per second; 0 = unpaced */
	double burst;			/* bucket depth, bytes */
	double tokens;			/* current fill, bytes; may go negative (debt) */
	uint64_t last_ns;		/* time of the last refill */
};

/** A pacer at kbps (0 unpaced), starting full, with burst bytes of depth (>= 1 datagram). */
void tgc_pacer_init(struct tgc_pacer *p, uint32_t kbps, uint32_t burst, uint64_t now_ns);
/** Nanoseconds to wait from now_ns before n bytes may be sent; 0 = now. */
uint64_t tgc_pacer_delay(struct tgc_pacer *p, uint32_t n, uint64_t now_ns);
/** Take n bytes' tokens at now_ns (call when sending). */
void tgc_pacer_take(struct tgc_pacer *p, uint32_t n, uint64_t now_ns);

/**
 * Mark in resend (bit i of word i / 64) the chunks a NACK lists for a message of count
 * chunks. A NACK about another chunk count (not this message) or with ranges past count is
 * ignored entirely.
 * @return chunks newly marked (0 for an ignored NACK)
 */
unsigned tgc_nack_mark(const struct proto_nack *n, uint16_t count, uint64_t *resend);

/**
 * The first request timer of docs/protocol.md 12.2, in microseconds: 2 x RTT (1 ms when
 * rtt_us is 0) + the gateway's NACK gap + the expected server time (srv_us: a smoothed
 * queue + compute of recent answers, else the catalog's tail_us), at least 20 ms. Each
 * timeout doubles it.
 */
uint64_t tgc_timer_us(uint32_t rtt_us, uint16_t nack_gap_ms, uint32_t srv_us);

/**
 * The retry budget of docs/protocol.md 12.2, microseconds from the first send: the request's
 * deadline_us, or without one 2 x the gateway's reasm_timeout_ms (1 s when 0), plus timer_us
 * (the first request timer: room for the answer to the last resend).
 */
uint64_t tgc_budget_us(uint32_t deadline_us, uint16_t reasm_timeout_ms, uint64_t timer_us);

/* ---- running the head on the device (oneDNN, the gateway's own engine) ---- */

/**
 * Load a model for running its head (the same ONNX file the gateway serves).
 * @param path  read during the call only
 * @param out   set to a new head the caller releases with tgc_head_close()
 * @return 0 or as kern_model_load()
 */
int tgc_head_open(struct tgc_head **out, const char *path, struct tg_err *err);
void tgc_head_close(struct tgc_head *h);

/**
 * Run the model's head on one input sample up to split (a row of the model's split table;
 * 0 is the input itself, copied). The head plan of each split is built on first use
 * (KERN_PLAN_HEAD, batch 1) and kept.
 * @param input  numel f32 values of one sample (e.g. [1,1,28,28]); the caller keeps it
 * @param out    a view of the split tensor (f32, dims at batch 1); its data belongs to h and
 *               stays valid until the next tgc_run_head() or tgc_head_close()
 * @return 0, -EINVAL (split past the table, numel not the input's), -ENOMEM, -EIO
 */
int tgc_run_head(struct tgc_head *h, unsigned split, const float *input, size_t numel,
		 struct tg_tensor *out, struct tg_err *err);

/** Splits of the model's table (rows, the input included). */
unsigned tgc_head_n_splits(const struct tgc_head *h);

/** How long the last successful tgc_run_head() took on this device, ns (the split's plan
 * built on first use is not counted); 0 when none ran, or when it was split 0 (the input is
 * only copied). For tgc_head_report(). */
uint64_t tgc_head_last_ns(const struct tgc_head *h);

/* ---- early exits on the device, and progressive inference ---- */

/**
 * Enable the model output named exit as an early exit on the device: it answers when its
 * softmax top probability reaches conf, as a model.conf "exit = NAME:CONF" line makes it on
 * the gateway (use the same thresholds: tailgate-model calibrate-exits). conf > 1: off again.
 * Exits are off until set. Only outputs the head computes before a split are evaluated there.
 * @return 0, -ENOENT (no output of that name: err says which there are), -EINVAL (conf not a
 *         number >= 0)
 */
int tgc_head_set_exit(struct tgc_head *h, const char *exit, float conf, struct tg_err *err);

/** What the head's own exits say about its last run. */
struct tgc_local {
	uint8_t exit;			/* the cheapest device-side exit whose confidence reached
					 * its threshold (model output index); PROTO_NONE: none */
	uint8_t best;			/* the device-side exit with the most FLOPs (the last,
					 * usually most accurate); PROTO_NONE: no exit before the
					 * split */
	float conf;			/* softmax top probability of exit, else of best */
	uint8_t top_k;			/* entries in top[] */
	struct proto_topk top[TGC_MAX_TOP_K];	/* of exit, else of best; softmax scores */
	uint64_t head_flops;		/* the device's FLOPs per sample to the split */
	uint64_t tail_flops;		/* the gateway's from the split (saved by exit) */
};

/**
 * Evaluate the exits the head computed in the last tgc_run_head(h, split, ...): the
 * cheapest enabled one at or above its threshold answers. Thread: h's owner.
 * @param top_k  classes wanted in out->top (1 .. TGC_MAX_TOP_K; 0: 5)
 * @return 0, -EINVAL (split not the last run's, top_k too large)
 */
int tgc_head_exits(struct tgc_head *h, unsigned split, unsigned top_k, struct tgc_local *out,
		   struct tg_err *err);

/**
 * Progressive inference of one sample: run the head to o->split_id; when a device exit is
 * confident, answer from it (source TGC_SRC_DEVICE, status OK, exit_taken that exit,
 * nothing sent) unless o->req_flags has NO_EARLY_EXIT; else send the tensor and wait for
 * the gateway (tgc_request()), at most o->deadline_us when a device exit can answer
 * instead. Then, when the gateway did not answer in time or refused for load (OVERLOADED,
 * DEADLINE_INFEASIBLE, INTERNAL), the best device exit answers (TGC_SRC_DEVICE_FALLBACK,
 * status OK, gw_status what the gateway said or PROTO_NONE). Other refusals (a bad request,
 * an unknown model) are returned as they are. Thread: c's and h's owner.
 * @param input  numel f32 values of one sample; the caller keeps it
 * @return 0 (out filled), or as tgc_run_head() and tgc_request()
 */
int tgc_infer(struct tgc *c, struct tgc_head *h, const struct tgc_request_opts *o,
	      const float *input, size_t numel, struct tgc_result *out, struct tg_err *err);

#ifdef __cplusplus
}
#endif

#endif
