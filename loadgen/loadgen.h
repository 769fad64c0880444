/*
 * loadgen: tailgate-bench's load generator. Many simulated devices (each its own client id
 * and session, split, wire dtype, uplink and deadline drawn from a mix) send real
 * Fashion-MNIST head tensors to a gateway from one thread over one kernel UDP socket
 * (sendmmsg / recvmmsg), event driven: a timer heap over the devices, no thread per device,
 * no allocation per request. Arrivals are open-loop Poisson (latency counted from each
 * request's scheduled time, so a slow gateway cannot hide its queueing: no coordinated
 * omission) or closed-loop. Prefix lg_.
 *
 * Requests behave as client/ (libtailgate-client) does: chunked and LZ4'd by proto/, paced by
 * the client's token bucket at the device's uplink, NACKed chunks resent, whole resends on
 * timeouts (docs/protocol.md 12.2 timer, doubling, bounded), re-HELLO on UNKNOWN_SESSION.
 *
 * Threads: everything here belongs to the one thread that created it.
 */
#ifndef TG_LOADGEN_H
#define TG_LOADGEN_H

#include "proto/proto.h"
#include "util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- seeded randomness: splitmix64, reproducible across runs and machines ---- */

struct lg_rng {
	uint64_t s;
};

void lg_rng_seed(struct lg_rng *r, uint64_t seed);
uint64_t lg_rng_next(struct lg_rng *r);
/** Uniform in [0, 1). */
double lg_rng_unit(struct lg_rng *r);
/** Uniform integer in [lo, hi] (hi >= lo). */
uint64_t lg_rng_range(struct lg_rng *r, uint64_t lo, uint64_t hi);
/**
 * A Poisson process's next gap: exponential with mean 1e9 / rate ns (rate > 0, per second).
 * Gaps are drawn from the scheduled times, not from when the previous request left, so the
 * arrival process is the one asked for whatever the gateway does.
 */
uint64_t lg_poisson_gap_ns(struct lg_rng *r, double rate);

/* ---- the device mix ---- */

enum lg_mix_key {
	LG_MIX_SPLIT,			/* split row the device computes its head to */
	LG_MIX_DTYPE,			/* wire dtype (enum proto_dtype) */
	LG_MIX_UPLINK,			/* kbit/s; 0 = unpaced */
	LG_MIX_DEADLINE,		/* microseconds; 0 = none */
	LG_MIX__COUNT
};

enum { LG_MIX_MAX_ITEMS = 32 };	/* alternatives per key */

struct lg_mix_item {
	uint64_t lo, hi;		/* a value (lo == hi) or a range drawn uniformly */
	double weight;			/* > 0; relative to the key's other items */
};

struct lg_mix {
	struct {
		unsigned n;
		struct lg_mix_item item[LG_MIX_MAX_ITEMS];
	} key[LG_MIX__COUNT];
};

/** What one device is, drawn once from the mix. */
struct lg_profile {
	uint8_t split;
	uint8_t dtype;			/* enum proto_dtype */
	uint32_t uplink_kbps;
	uint32_t deadline_us;
};

#define LG_MIX_DEFAULT "split=0,4,6,8;dtype=f32,f16,s8,u8;uplink=20000-100000kbps;deadline=100ms"

/**
 * Parse a mix spec: "key=item,item,...;key=..." with keys split, dtype, uplink, deadline.
 * An item is VALUE or LO-HI (uniform; uplink and deadline only), optionally :WEIGHT (default
 * 1). Units: uplink kbps (default), mbps, gbps; deadline ms (default), us, s. Keys not given
 * keep what m held (start from lg_mix_default()).
 * @return 0 or -EINVAL with err naming the key and item
 */
int lg_mix_parse(struct lg_mix *m, const char *spec, struct tg_err *err);
/** The default mix (LG_MIX_DEFAULT). */
void lg_mix_default(struct lg_mix *m);
/**
 * A mix file: key=value lines (or ';'-separated pairs on one line), '#' comments, blank
 * lines. @return 0, -EINVAL with err "file:line: ...", or the read's -errno.
 */
int lg_mix_load(struct lg_mix *m, const char *path, struct tg_err *err);
/** Draw one device. */
void lg_mix_draw(const struct lg_mix *m, struct lg_rng *r, struct lg_profile *out);
/** The mix as a spec lg_mix_parse() reads back. */
void lg_mix_format(const struct lg_mix *m, char *buf, size_t len);
/** Bit s set for every split row the mix uses; dtypes likewise (bit = enum proto_dtype). */
uint64_t lg_mix_split_mask(const struct lg_mix *m);
unsigned lg_mix_dtype_mask(const struct lg_mix *m);
/** The largest deadline the mix can draw (us; 0 when every deadline is none). */
uint32_t lg_mix_max_deadline(const struct lg_mix *m);

/* ---- sender-side impairment, per chunk ---- */

struct lg_impair {
	double drop;			/* fraction of chunks never sent */
	double dup;			/* ... sent twice */
	double reorder;			/* ... held back and sent after the device's next chunk */
	double corrupt;			/* fraction of chunks with one payload byte changed after
					 * sealing, as a middlebox that recomputes the UDP
					 * checksum would (a draw of its own) */
};

enum lg_fate { LG_FATE_SEND, LG_FATE_DROP, LG_FATE_DUP, LG_FATE_REORDER };

/** Fractions each in [0, 1) and summing to at most 1. @return 0 or -EINVAL. */
int lg_impair_check(const struct lg_impair *im, struct tg_err *err);
/** One chunk's fate: a single uniform draw split into the three fractions. */
enum lg_fate lg_impair_fate(const struct lg_impair *im, struct lg_rng *r);

/* ---- inputs: wire-ready requests of real images, with the engine's offline answer ---- */

/** One image at one (split, dtype): its REQUEST datagrams and the offline prediction. */
struct lg_msg {
	uint32_t first_dg;		/* index of its first datagram in lg_inputs.dg */
	uint16_t n_dg;			/* datagrams (chunks) */
	uint8_t offline;		/* the engine's top-1 for exactly these bytes, dequantized */
};

struct lg_dgram_ref {
	uint64_t off;			/* in lg_inputs.arena */
	uint32_t len;
	uint32_t pad;			/* 0: no indeterminate bytes in the cache file */
};

/**
 * Every image's REQUEST datagrams at every (split, dtype) a mix uses, built once: heads run
 * with the engine in batches, each sample quantized (per-sample scale, as the client does),
 * chunked and LZ4'd by proto_request_chunk(), with placeholder ids the sender patches. The
 * offline answer runs the tail from the same split on the same quantized bytes, loaded as
 * the gateway loads them (kern_plan_load_rows), final exit. Compressed datagrams, not f32
 * tensors, are kept: 10,000 images at split 4 would be 1 GB of f32 alone.
 */
struct lg_inputs {
	unsigned n_items;		/* images */
	uint8_t *labels;		/* [n_items] */
	uint64_t split_mask;		/* splits built */
	unsigned dtype_mask;		/* dtypes built */
	struct lg_msg *msg[64][PROTO_DT__COUNT];	/* [split][dtype] -> [n_items], or NULL */
	struct lg_dgram_ref *dg;	/* every datagram */
	size_t n_dg, cap_dg;
	uint8_t *arena;			/* their bytes */
	size_t arena_len, arena_cap;
	uint16_t max_chunks;		/* most datagrams of any message */
	uint16_t max_dgram;		/* the datagram size they were cut for */
	double build_s;			/* wall time the build (or the cache load) took */
	bool from_cache;		/* loaded from cfg.cache_dir, not built */
	uint64_t offline_hits;		/* offline top-1 == label, over every message built */
	uint64_t offline_total;
};

struct lg_inputs_cfg {
	const char *model;		/* ONNX file, or a directory holding model.onnx */
	const char *dataset_dir;	/* NULL: TG_FMNIST_DIR */
	uint16_t model_id;
	unsigned n_images;		/* 0: all 10,000 */
	uint64_t split_mask;		/* rows of the model's split table */
	unsigned dtype_mask;		/* bit = enum proto_dtype */
	uint16_t max_dgram;		/* 0: PROTO_DEFAULT_DGRAM */
	unsigned threads;		/* engine threads; 0: all cores */
	const char *calib;		/* offline answers in int8 with this calibration file (a
					 * gateway serving the model with dtype = int8); NULL: f32 */
	const char *cache_dir;		/* NULL: no cache; else the built inputs are kept there,
					 * keyed by model file (path, size, mtime), images, splits,
					 * dtypes, datagram size and model id, and loaded next time */
};

/**
 * Build every message, or load them from cfg->cache_dir. Slow (the engine runs the heads
 * and tails of every image once); reports its time in build_s. A cache that cannot be
 * written is only a warning on stderr; one that does not match is rebuilt.
 * @param out  set to new inputs the caller owns and releases with lg_inputs_free() (after
 *             every run using them); cfg and its strings are read during the call only
 * @return 0, -EINVAL (a split the model lacks: err says which), -ENOENT (data set), -ENOMEM,
 *         -EIO (engine)
 */
int lg_inputs_build(struct lg_inputs **out, const struct lg_inputs_cfg *cfg, struct tg_err *err);
/** Release inputs; in may be NULL. */
void lg_inputs_free(struct lg_inputs *in);

/* ---- a run: devices, sessions, phases of load ---- */

struct lg_config {
	uint32_t gw_ip;			/* network order */
	uint16_t gw_port;		/* host order */
	uint32_t bind_ip;		/* network order; 0 any */
	uint16_t model_id;
	unsigned n_devices;
	struct lg_mix mix;
	struct lg_impair impair;
	uint64_t seed;
	unsigned hello_rate;		/* HELLOs per second while opening sessions */
	const struct proto_keys *keys;	/* NULL, or device i signs with keys->k[i] (its client
					 * id is that entry's): docs/protocol.md 12.5. Borrowed:
					 * must outlive the run */
	bool no_crc;			/* without keys: send no CRC (as devices before it) */
	unsigned retries;		/* at most this many whole-request resends; 0: as many as
					 * the request's budget allows (tgc_budget_us()) */
	uint32_t timer_ms;		/* request timer; 0: docs/protocol.md 12.2 per device */
	bool progress;			/* a live line on stderr once a second */
	const char *progress_tag;	/* shown first on that line (e.g. "step 3"); NULL none;
					 * borrowed: must outlive the run */
	const struct lg_inputs *in;	/* must outlive the run */
};

/** A phase's counters and latencies. Only requests scheduled after the warm-up count. */
struct lg_results {
	double rate;			/* asked: requests/s (0 closed loop) */
	unsigned concurrency;		/* asked (0 open loop) */
	double window_s;		/* from the end of the warm-up to the last measured answer */
	double sched_s;			/* the measurement window: from the end of the warm-up
					 * until arrivals stopped */
	uint64_t win_answered;		/* answers (any request) that arrived in that window */
	uint64_t win_good;		/* ... OK within their device's deadline */
	uint64_t scheduled;		/* measured requests scheduled */
	uint64_t answered;		/* ... ended by a RESPONSE or an ERROR */
	uint64_t ok;			/* ... RESPONSE OK */
	uint64_t ok_in_deadline;	/* ... OK within their device's deadline */
	uint64_t gave_up;		/* ... no answer after every retry (timeouts) */
	uint64_t unfinished;		/* ... still open (or never sent) when the phase ended */
	uint64_t correct;		/* OK answers whose top-1 is the label */
	uint64_t offline_correct;	/* OK answers whose offline top-1 is the label */
	uint64_t agree;			/* OK answers equal to the offline top-1 */
	uint64_t status[PROTO_ST__COUNT];	/* RESPONSE statuses */
	uint64_t error[PROTO_ST__COUNT];	/* ERRORs that ended a request, by status */
	uint64_t reason[PROTO_REASON__COUNT];	/* reasons of non-OK answers (RESPONSE or ERROR) */
	uint64_t timer_fires;		/* request timers that fired (each resends everything) */
	uint64_t chunks_sent;		/* REQUEST datagrams sent, resends and dups included */
	uint64_t chunks_resent;		/* resent for NACKs, timeouts, UNKNOWN_REQUEST */
	uint64_t nacks;			/* NACKs received */
	uint64_t dropped, duped, reordered;	/* impairment applied */
	uint64_t corrupted;		/* chunks the corrupt impairment changed */
	uint64_t rx_unauth;		/* datagrams dropped for a missing or wrong tag (keys) */
	uint64_t rehellos;		/* re-HELLOs after UNKNOWN_SESSION */
	uint64_t path_challenges;	/* path challenges answered (the address changed) */
	uint64_t pendings;		/* PENDING answers (the gateway held the request) */
	uint64_t rx_ignored;		/* datagrams not decoded or not for an open request */
	uint64_t send_errors;		/* datagrams the kernel refused (lost) */
	uint64_t backlog_max;		/* most requests waiting for an idle device */
	uint64_t bytes_sent;		/* UDP payload bytes */
	struct tg_hdr lat_us;		/* answered OK: scheduled time to answer, microseconds */
	struct tg_hdr lat_all_us;	/* every answer, any status */
	struct tg_hdr srv_queue_us;	/* answered OK after a batch ran: the RESPONSE's queue_us */
	struct tg_hdr srv_compute_us;	/* ... and its compute_us (the gateway's own account) */
};

/** Allocate the histograms of r (1 us .. 1 h, 3 digits). @return 0 or -ENOMEM. */
int lg_results_init(struct lg_results *r);
void lg_results_fini(struct lg_results *r);
/**
 * Rates of a phase, per second over the measurement window: offered (measured arrivals),
 * achieved (answers that arrived in the window, whichever request they answer: a gateway
 * that keeps up answers as fast as it is offered, one that does not, at its capacity) and
 * goodput (those answers OK within their deadline).
 */
double lg_results_offered(const struct lg_results *r);
double lg_results_achieved(const struct lg_results *r);
double lg_results_goodput(const struct lg_results *r);

struct lg_run;

/**
 * Open the socket and every device's session (HELLOs at cfg->hello_rate, each retried 4
 * times, 200 ms doubling). Devices the gateway refuses are reported in err and make it fail.
 * @param out  set to a new run the caller owns (lg_run_free()); cfg is copied, cfg->in is
 *             borrowed and must outlive the run. Thread: the caller's, for every lg_run_*
 * @return 0, -EINVAL (cfg), -ETIMEDOUT (HELLOs unanswered), -EPROTO (refused: err says
 *         how many and why), -ENOMEM, -errno of the socket
 */
int lg_run_create(struct lg_run **out, const struct lg_config *cfg, struct tg_err *err);
/** Close the socket and free the run (not its inputs); r may be NULL. */
void lg_run_free(struct lg_run *r);
/** The gateway's limits from the first HELLO_REPLY (entries NULL). */
const struct proto_hello_reply *lg_run_gateway(const struct lg_run *r);

/**
 * One phase of load: open loop at rate requests/s (Poisson), or closed loop with concurrency
 * requests always in flight when rate is 0. Arrivals run for warmup_s + duration_s (or
 * until max_requests measured ones, when not 0); then open requests get up to drain_s.
 * @param res  initialised by lg_results_init(), the caller's; reset and filled here
 * @return 0 or -errno of the socket
 */
int lg_run_phase(struct lg_run *r, double rate, unsigned concurrency, double warmup_s,
		 double duration_s, uint64_t max_requests, double drain_s, struct lg_results *res,
		 struct tg_err *err);

/* ---- reports ---- */

/** The final table: rates, latency percentiles, counters, statuses, accuracy. */
void lg_report_table(FILE *f, const struct lg_results *r, const struct lg_inputs *in);
/**
 * The same as a JSON object (jansson): rates, latency_ms and the gateway's own
 * server_queue_ms / server_compute_ms (p50, p90, p95, p99, p99.9, max, mean), counters,
 * statuses, reasons, accuracy; with in, the inputs. @return a new reference (the caller
 * json_decref()s it), or NULL when out of memory.
 */
json_t *lg_report_json(const struct lg_results *r, const struct lg_inputs *in);
/** CSV: a header line, then one line per phase (a sweep: per step) with the same columns. */
void lg_report_csv_header(FILE *f);
void lg_report_csv_row(FILE *f, const struct lg_results *r);
/** A sweep's header and one row per step. */
void lg_report_sweep_header(FILE *f);
void lg_report_sweep_row(FILE *f, const struct lg_results *r, bool saturated);

#endif
