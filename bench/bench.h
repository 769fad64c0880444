/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench: tailgate-bench's load generator, and what it and the tools measure with: the
 * Fashion-MNIST data set (idx files) and HDR latency histograms. The engine benchmark's
 * peers (ONNX Runtime, PyTorch, the peak probe) sit beside it in bench/engine/; every
 * program's main() is in programs/. Prefix bench_.
 *
 * The load generator: many simulated devices (each its own client id
 * and session, split, wire dtype, uplink and deadline drawn from a mix) send real
 * Fashion-MNIST head tensors to a gateway from one thread over one kernel UDP socket
 * (sendmmsg / recvmmsg), event driven: a timer heap over the devices, no thread per device,
 * no allocation per request. Arrivals are open-loop Poisson (latency counted from each
 * request's scheduled time, so a slow gateway cannot hide its queueing: no coordinated
 * omission) or closed-loop.
 *
 * Requests behave as client/ (libtailgate-client) does: chunked and LZ4'd by proto/, paced by
 * the client's token bucket at the device's uplink, NACKed chunks resent, whole resends on
 * timeouts (docs/protocol.md 12.2 timer, doubling, bounded), re-HELLO on UNKNOWN_SESSION.
 *
 * Threads: everything here belongs to the one thread that created it.
 */
#ifndef TG_BENCH_H
#define TG_BENCH_H

#include "proto/proto.h"
#include "util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- Fashion-MNIST (idx files, gzip'd as Debian ships them, or plain) ---- */

#define BENCH_FMNIST_DIR "/usr/share/datasets/fashion-mnist"	/* Debian dataset-fashion-mnist */

enum {
	BENCH_FMNIST_ROWS = 28,
	BENCH_FMNIST_COLS = 28,
	BENCH_FMNIST_CLASSES = 10,
	BENCH_FMNIST_MAX_ITEMS = 100000,	/* the set has 60,000 + 10,000; bounds a hostile header */
};

/** A loaded split of the data set. Owner of both buffers; release with bench_fmnist_free(). */
struct bench_fmnist {
	struct tg_tensor images;	/* f32 [n,1,28,28], pixel / 255 (the model input contract) */
	uint8_t *labels;		/* [n], classes 0..9, malloc'd */
	size_t n;			/* images (= labels) loaded */
};

/**
 * Load the test split (train false: t10k-*) or the training split (train-*) from dir
 * (NULL: BENCH_FMNIST_DIR). Files are read with io_uring and inflated in memory; idx headers are
 * checked (magic, 28x28, count <= BENCH_FMNIST_MAX_ITEMS, labels < 10, data exactly as long as the
 * header says) before anything is allocated from them.
 * @param limit  load only the first limit items; 0 = all
 * @param out    filled on success; the caller frees it with bench_fmnist_free()
 * @return 0, -ENOENT (and other read errors) when the files are absent, -EINVAL malformed
 */
int bench_fmnist_load(const char *dir, bool train, size_t limit, struct bench_fmnist *out,
		   struct tg_err *err);
/** Release what bench_fmnist_load() filled; ds may be NULL. */
void bench_fmnist_free(struct bench_fmnist *ds);

/**
 * Parse an idx3 image file image (gzip'd or plain) held in memory (the caller keeps buf).
 * @param what   names the file in errors (NULL: "images")
 * @param out    set to a new f32 [n,1,28,28] tensor (n = min(count, limit), limit 0 = all)
 * @return 0 or -EINVAL/-ENOMEM with err set
 */
int bench_fmnist_images_parse(const uint8_t *buf, size_t len, const char *what, size_t limit,
			   struct tg_tensor *out, struct tg_err *err);
/** As bench_fmnist_images_parse() for an idx1 label file: *labels malloc'd, *n its length. */
int bench_fmnist_labels_parse(const uint8_t *buf, size_t len, const char *what, size_t limit,
			   uint8_t **labels, size_t *n, struct tg_err *err);


/* ---- HDR latency histogram (HdrHistogram's bucketing: fixed relative precision) ---- */

/**
 * Counts of integer values (e.g. microseconds) in [1, highest], each recorded with a
 * relative error of at most 10^-sigfigs: 2^k sub-buckets per power of two, as HdrHistogram
 * (Gil Tene) lays them out, so its percentile files (.hgrm) read the same. The counts array
 * is allocated once by bench_hdr_init(); recording allocates nothing. Thread: one owner.
 */
struct bench_hdr {
	int64_t lowest;			/* smallest distinguishable value (>= 1) */
	int64_t highest;		/* largest trackable value; larger ones are clamped */
	int sigfigs;			/* significant decimal digits, 1..5 */
	int unit_magnitude;		/* floor(log2(lowest)) */
	int sub_bucket_half_count_magnitude;
	int32_t sub_bucket_count;	/* 2^(magnitude + 1) */
	int32_t sub_bucket_half_count;
	int64_t sub_bucket_mask;
	int32_t bucket_count;
	int32_t counts_len;
	int64_t *counts;		/* counts_len slots, malloc'd */
	int64_t total;			/* values recorded */
	int64_t clamped;		/* values over highest, recorded as highest */
	int64_t min, max;		/* exact extremes recorded (after clamping) */
	double sum;			/* for the mean */
	double sum_sq;			/* for the standard deviation */
};

/**
 * @param lowest   >= 1
 * @param highest  >= 2 * lowest
 * @param sigfigs  1..5
 * @return 0, -EINVAL (bounds), -ENOMEM
 */
int bench_hdr_init(struct bench_hdr *h, int64_t lowest, int64_t highest, int sigfigs);
/** Release the counts; h may be NULL or never initialised (zeroed). */
void bench_hdr_fini(struct bench_hdr *h);
/** Forget every value, keep the layout. */
void bench_hdr_reset(struct bench_hdr *h);
/** Record v count times (v < lowest counts as lowest, > highest as highest). */
void bench_hdr_record_n(struct bench_hdr *h, int64_t v, int64_t count);
static inline void
bench_hdr_record(struct bench_hdr *h, int64_t v)
{
	bench_hdr_record_n(h, v, 1);
}
/** Add every count of src to dst (same lowest, highest and sigfigs). @return 0 or -EINVAL. */
int bench_hdr_add(struct bench_hdr *dst, const struct bench_hdr *src);
/**
 * The value at percentile p (0..100): the highest value equivalent to the recorded value
 * below which p % of the values lie (HdrHistogram's getValueAtPercentile). 0 when empty.
 */
int64_t bench_hdr_value_at(const struct bench_hdr *h, double p);
double bench_hdr_mean(const struct bench_hdr *h);
double bench_hdr_stddev(const struct bench_hdr *h);
/** Whether a and b fall in the same bucket (they are recorded as the same value). */
bool bench_hdr_equivalent(const struct bench_hdr *h, int64_t a, int64_t b);
/**
 * Write the percentile distribution in HdrHistogram's text format (.hgrm: "Value Percentile
 * TotalCount 1/(1-Percentile)" lines, ticks_per_half 5 as its tools use, then the
 * Mean/Max/Buckets footer), values divided by scale (1000: microseconds shown as ms).
 * @return 0 or -EIO
 */
int bench_hdr_write_hgrm(const struct bench_hdr *h, FILE *f, double scale, int ticks_per_half);

/* ---- seeded randomness: splitmix64, reproducible across runs and machines ---- */

struct bench_rng {
	uint64_t s;
};

void bench_rng_seed(struct bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(struct bench_rng *r);
/** Uniform in [0, 1). */
double bench_rng_unit(struct bench_rng *r);
/** Uniform integer in [lo, hi] (hi >= lo). */
uint64_t bench_rng_range(struct bench_rng *r, uint64_t lo, uint64_t hi);
/**
 * A Poisson process's next gap: exponential with mean 1e9 / rate ns (rate > 0, per second).
 * Gaps are drawn from the scheduled times, not from when the previous request left, so the
 * arrival process is the one asked for whatever the gateway does.
 */
uint64_t bench_poisson_gap_ns(struct bench_rng *r, double rate);

/* ---- the device mix ---- */

enum bench_mix_key {
	BENCH_MIX_SPLIT,			/* split row the device computes its head to */
	BENCH_MIX_DTYPE,			/* wire dtype (enum proto_dtype) */
	BENCH_MIX_UPLINK,			/* kbit/s; 0 = unpaced */
	BENCH_MIX_DEADLINE,		/* microseconds; 0 = none */
	BENCH_MIX__COUNT
};

enum { BENCH_MIX_MAX_ITEMS = 32 };	/* alternatives per key */

struct bench_mix_item {
	uint64_t lo, hi;		/* a value (lo == hi) or a range drawn uniformly */
	double weight;			/* > 0; relative to the key's other items */
};

struct bench_mix {
	struct {
		unsigned n;
		struct bench_mix_item item[BENCH_MIX_MAX_ITEMS];
	} key[BENCH_MIX__COUNT];
};

/** What one device is, drawn once from the mix. */
struct bench_profile {
	uint8_t split;
	uint8_t dtype;			/* enum proto_dtype */
	uint32_t uplink_kbps;
	uint32_t deadline_us;
};

#define BENCH_MIX_DEFAULT "split=0,4,6,8;dtype=f32,f16,s8,u8;uplink=20000-100000kbps;deadline=100ms"

/**
 * Parse a mix spec: "key=item,item,...;key=..." with keys split, dtype, uplink, deadline.
 * An item is VALUE or LO-HI (uniform; uplink and deadline only), optionally :WEIGHT (default
 * 1). Units: uplink kbps (default), mbps, gbps; deadline ms (default), us, s. Keys not given
 * keep what m held (start from bench_mix_default()).
 * @return 0 or -EINVAL with err naming the key and item
 */
int bench_mix_parse(struct bench_mix *m, const char *spec, struct tg_err *err);
/** The default mix (BENCH_MIX_DEFAULT). */
void bench_mix_default(struct bench_mix *m);
/**
 * A mix file: key=value lines (or ';'-separated pairs on one line), '#' comments, blank
 * lines. @return 0, -EINVAL with err "file:line: ...", or the read's -errno.
 */
int bench_mix_load(struct bench_mix *m, const char *path, struct tg_err *err);
/** Draw one device. */
void bench_mix_draw(const struct bench_mix *m, struct bench_rng *r, struct bench_profile *out);
/** The mix as a spec bench_mix_parse() reads back. */
void bench_mix_format(const struct bench_mix *m, char *buf, size_t len);
/** Bit s set for every split row the mix uses; dtypes likewise (bit = enum proto_dtype). */
uint64_t bench_mix_split_mask(const struct bench_mix *m);
unsigned bench_mix_dtype_mask(const struct bench_mix *m);
/** The largest deadline the mix can draw (us; 0 when every deadline is none). */
uint32_t bench_mix_max_deadline(const struct bench_mix *m);

/* ---- sender-side impairment, per chunk ---- */

struct bench_impair {
	double drop;			/* fraction of chunks never sent */
	double dup;			/* ... sent twice */
	double reorder;			/* ... held back and sent after the device's next chunk */
	double corrupt;			/* fraction of chunks with one payload byte changed after
					 * sealing, as a middlebox that recomputes the UDP
					 * checksum would (a draw of its own) */
};

enum bench_fate { BENCH_FATE_SEND, BENCH_FATE_DROP, BENCH_FATE_DUP, BENCH_FATE_REORDER };

/** Fractions each in [0, 1) and summing to at most 1. @return 0 or -EINVAL. */
int bench_impair_check(const struct bench_impair *im, struct tg_err *err);
/** One chunk's fate: a single uniform draw split into the three fractions. */
enum bench_fate bench_impair_fate(const struct bench_impair *im, struct bench_rng *r);

/* ---- inputs: wire-ready requests of real images, with the engine's offline answer ---- */

/** One image at one (split, dtype): its REQUEST datagrams and the offline prediction. */
struct bench_msg {
	uint32_t first_dg;		/* index of its first datagram in bench_inputs.dg */
	uint16_t n_dg;			/* datagrams (chunks) */
	uint16_t offline;		/* the engine's top-1 for exactly these bytes, dequantized */
	uint16_t offline_at[4];		/* bench_inputs_cfg.early_exits: the top-1 of each model
					 * output (< BENCH_MAX_EXITS) the tail computes;
					 * UINT16_MAX not */
};
enum { BENCH_MAX_EXITS = 4 };		/* model outputs the bench tells apart */

struct bench_dgram_ref {
	uint64_t off;			/* in bench_inputs.arena */
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
struct bench_inputs {
	unsigned n_items;		/* images (samples) */
	uint16_t *labels;		/* [n_items]; all BENCH_NO_LABEL when has_labels is false */
	bool has_labels;		/* false: random inputs, or a folder without labels.npy */
	char what[256];			/* where the samples came from, for the report */
	uint64_t split_mask;		/* splits built */
	unsigned dtype_mask;		/* dtypes built */
	struct bench_msg *msg[64][PROTO_DT__COUNT];	/* [split][dtype] -> [n_items], or NULL */
	struct bench_dgram_ref *dg;	/* every datagram */
	size_t n_dg, cap_dg;
	uint8_t *arena;			/* their bytes */
	size_t arena_len, arena_cap;
	uint16_t max_chunks;		/* most datagrams of any message */
	uint16_t max_dgram;		/* the datagram size they were cut for */
	double build_s;			/* wall time the build (or the cache load) took */
	bool from_cache;		/* loaded from cfg.cache_dir, not built */
	uint64_t offline_hits;		/* offline top-1 == label, over every message built */
	uint64_t offline_total;
	unsigned n_exits;		/* model outputs (at most BENCH_MAX_EXITS told apart) */
	char exit_name[BENCH_MAX_EXITS][32];
	uint64_t exit_flops[BENCH_MAX_EXITS];	/* per sample, from the input to that output */
	unsigned final_exit;		/* the output with the most FLOPs */
};

struct bench_inputs_cfg {
	const char *model;		/* ONNX file, or a directory holding model.onnx */
	const char *dataset_dir;	/* NULL: BENCH_FMNIST_DIR */
	/* Samples from a folder instead of Fashion-MNIST: every *.npy but labels.npy, in name
	 * order, float32 of the model's input shape without the batch ([C,H,W]: one sample)
	 * or with it ([N,C,H,W]: N); labels.npy (int32/int64/uint8, one per sample) optional. */
	const char *inputs_dir;
	unsigned n_random;		/* no inputs_dir: this many random samples (uniform in
					 * [0, 1), from seed) instead of Fashion-MNIST; no labels */
	uint64_t seed;
	uint16_t model_id;
	uint8_t variant_id;		/* the REQUESTs' variant (0: the base model); model is
					 * then that variant's file, for its heads and answers */
	bool early_exits;		/* requests without NO_EARLY_EXIT: the gateway's exits may
					 * answer; offline answers kept per exit to check them */
	unsigned n_images;		/* at most this many samples; 0: all (Fashion-MNIST:
					 * 10,000) */
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
 * @param out  set to new inputs the caller owns and releases with bench_inputs_free() (after
 *             every run using them); cfg and its strings are read during the call only
 * @return 0, -EINVAL (a split the model lacks: err says which), -ENOENT (data set), -ENOMEM,
 *         -EIO (engine)
 */
int bench_inputs_build(struct bench_inputs **out, const struct bench_inputs_cfg *cfg, struct tg_err *err);
/** Release inputs; in may be NULL. */
void bench_inputs_free(struct bench_inputs *in);

enum { BENCH_NO_LABEL = 0xFFFF };

/** The samples inputs are built from (loadgen/samples.c). */
struct bench_samples {
	float *x;			/* [n][numel], f32 */
	uint16_t *labels;		/* [n], or NULL: none */
	unsigned n;
	size_t numel;			/* values per sample */
	char what[256];			/* where they came from, for the report */
};

/**
 * Load the samples cfg names (inputs_dir, else n_random, else Fashion-MNIST), checked
 * against the model's input shape in[0..ndim) (in[0] is the batch). Init code.
 * @return 0, or -EINVAL (a file of another dtype or shape, bad labels: err names the file),
 *         -ENOENT (no data), -E2BIG, -ENOMEM; s is empty then
 */
int bench_samples_load(struct bench_samples *s, const struct bench_inputs_cfg *cfg, const int64_t *in,
		    int ndim, struct tg_err *err);
void bench_samples_free(struct bench_samples *s);

/* ---- a run: devices, sessions, phases of load ---- */

/* ---- device classes, advice and the oracle (bench/advice.c) ---- */

enum { BENCH_MAX_CLASSES = 8, BENCH_CLASS_NAME = 16,
       BENCH_MAX_VARIANTS = 16 };	/* variant ids a run can send (bench_run_add_inputs()) */

/**
 * A class of devices (--class): devices are dealt to classes in turn (device i: class
 * i mod n). Each declares its profile in its HELLO; its head's time is simulated from the
 * split's head FLOPs (the catalog's) at its compute rate before the first chunk leaves, and
 * its energy counted from its profile: head FLOPs x uJ/MFLOP + bits sent x pJ/bit.
 */
struct bench_class {
	char name[BENCH_CLASS_NAME];
	uint32_t compute_mflops;	/* head compute rate; 0: the head takes no time */
	uint32_t uplink_kbps;		/* replaces the mix's uplink; 0 unpaced */
	uint32_t head_uj_per_mflop;	/* device energy per MFLOP of head, uJ */
	uint32_t tx_pj_per_bit;		/* device energy per bit sent (IP and UDP headers too), pJ */
	uint16_t floor_bp;		/* accuracy floor declared; 0 none */
};

/** What one class did in a phase (measured requests only). */
struct bench_class_stats {
	struct bench_hdr lat_us;	/* answered OK: scheduled time to answer */
	uint64_t requests;		/* measured requests ended (answered or given up) */
	uint64_t ok, correct;		/* OK answers; of those, top-1 == label */
	double energy_uj;		/* device energy of those requests: head + bits sent */
	uint64_t by_split[BENCH_MAX_VARIANTS][64];	/* requests by the (variant, split) they
							 * were sent from */
};

/**
 * Parse "NAME:MFLOPS:UPLINK[:UJ_PER_MFLOP:PJ_PER_BIT[:FLOOR]]"; UPLINK in kbps, or with a
 * kbps/mbps/gbps suffix; FLOOR a top-1 percentage (90 or 90.5). @return 0 or -EINVAL (err)
 */
int bench_class_parse(struct bench_class *c, const char *spec, struct tg_err *err);
/** Allocate / free the histogram of s; reset keeps the allocation. */
int bench_class_stats_init(struct bench_class_stats *s);
void bench_class_stats_fini(struct bench_class_stats *s);
void bench_class_stats_reset(struct bench_class_stats *s);
/**
 * The per-class table: requests, latency p50/p90/p99 (ms), device energy per request (mJ),
 * accuracy, and the splits the class sent from ("S:PCT%" for the run's own variant, vid,
 * "vV/S:PCT%" for variant V). label names the run (e.g. "advised").
 */
void bench_report_classes(FILE *f, const char *label, const struct bench_class *cls,
			  const struct bench_class_stats *st, unsigned n, unsigned vid);

struct bench_config {
	uint32_t gw_ip;			/* network order */
	uint16_t gw_port;		/* host order */
	uint32_t bind_ip;		/* network order; 0 any */
	uint16_t model_id;
	uint8_t variant_id;		/* the variant the inputs were built for (in->...) */
	unsigned n_devices;
	struct bench_mix mix;
	struct bench_impair impair;
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
	const struct bench_inputs *in;	/* must outlive the run */
	/* Device classes (NULL, 0: none: devices declare only the mix's uplink and deadline) */
	const struct bench_class *classes;	/* borrowed: must outlive the run */
	unsigned n_classes;			/* <= BENCH_MAX_CLASSES */
	uint8_t goal;			/* enum proto_goal every class declares; 0 none */
	bool follow_advice;		/* a device switches to the advised (variant, split)
					 * (when its inputs were built: in, or another variant's
					 * from bench_run_add_inputs()) for its next requests */
};

/** A phase's counters and latencies. Only requests scheduled after the warm-up count. */
struct bench_results {
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
	uint64_t agree;			/* OK answers equal to the offline top-1 (of the exit
					 * that answered, with early exits) */
	uint64_t by_exit[BENCH_MAX_EXITS + 1];	/* OK answers by exit_taken; last: others */
	unsigned variant;		/* the variant the REQUESTs named */
	uint64_t other_variant;		/* OK answers whose RESPONSE names another variant */
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
	struct bench_hdr lat_us;		/* answered OK: scheduled time to answer, microseconds */
	struct bench_hdr lat_all_us;	/* every answer, any status */
	struct bench_hdr srv_queue_us;	/* answered OK after a batch ran: the RESPONSE's queue_us */
	struct bench_hdr srv_compute_us;	/* ... and its compute_us (the gateway's own account) */
};

/** Allocate the histograms of r (1 us .. 1 h, 3 digits). @return 0 or -ENOMEM. */
int bench_results_init(struct bench_results *r);
void bench_results_fini(struct bench_results *r);
/**
 * Rates of a phase, per second over the measurement window: offered (measured arrivals),
 * achieved (answers that arrived in the window, whichever request they answer: a gateway
 * that keeps up answers as fast as it is offered, one that does not, at its capacity) and
 * goodput (those answers OK within their deadline).
 */
double bench_results_offered(const struct bench_results *r);
double bench_results_achieved(const struct bench_results *r);
double bench_results_goodput(const struct bench_results *r);

struct bench_run;

/**
 * Open the socket and every device's session (HELLOs at cfg->hello_rate, each retried 4
 * times, 200 ms doubling). Devices the gateway refuses are reported in err and make it fail.
 * @param out  set to a new run the caller owns (bench_run_free()); cfg is copied, cfg->in is
 *             borrowed and must outlive the run. Thread: the caller's, for every bench_run_*
 * @return 0, -EINVAL (cfg), -ETIMEDOUT (HELLOs unanswered), -EPROTO (refused: err says
 *         how many and why), -ENOMEM, -errno of the socket
 */
int bench_run_create(struct bench_run **out, const struct bench_config *cfg, struct tg_err *err);
/** Close the socket and free the run (not its inputs); r may be NULL. */
void bench_run_free(struct bench_run *r);
/** The gateway's limits from the first HELLO_REPLY (entries NULL). */
const struct proto_hello_reply *bench_run_gateway(const struct bench_run *r);
/** Class k's figures of the last phase (k < cfg.n_classes). Valid until the next phase. */
const struct bench_class_stats *bench_run_class(const struct bench_run *r, unsigned k);
/**
 * Every device sends from (variant, split) for the next phases; split -1: back to each
 * device's own (the mix's, then the advice's). The run's random stream restarts from the
 * seed, so the next phase draws the same arrivals and samples (the oracle's runs).
 * @return 0, or -EINVAL (nothing changed) when (variant, split) cannot be sent
 *         (bench_run_has() false)
 */
int bench_run_fix(struct bench_run *r, unsigned variant, int split);

/**
 * What the gateway's catalog (every page, read at bench_run_create()) says of (variant,
 * split) of the run's model. @return its accuracy_bp (0: not declared), or -1 when the
 * catalog does not list it.
 */
int bench_run_catalog(const struct bench_run *r, unsigned variant, unsigned split);
/** True when requests of (variant, split) can be sent: inputs built, catalog lists it. */
bool bench_run_has(const struct bench_run *r, unsigned variant, unsigned split);

/**
 * Inputs of another variant of the run's model (built from that variant's file, for the
 * same samples and datagram size as cfg.in, with bench_inputs_cfg.variant_id = variant),
 * so that devices may follow advice to it and the oracle fix it.
 * Between phases only. Every split built must be in the gateway's catalog.
 * @param in  borrowed: must outlive the run
 * @return 0, -EINVAL (variant is the run's own or >= BENCH_MAX_VARIANTS, other samples or
 *         datagram size, a split not served: err says which), -ENOMEM
 */
int bench_run_add_inputs(struct bench_run *r, unsigned variant, const struct bench_inputs *in,
			 struct tg_err *err);

/**
 * One phase of load: open loop at rate requests/s (Poisson), or closed loop with concurrency
 * requests always in flight when rate is 0. Arrivals run for warmup_s + duration_s (or
 * until max_requests measured ones, when not 0); then open requests get up to drain_s.
 * @param res  initialised by bench_results_init(), the caller's; reset and filled here
 * @return 0 or -errno of the socket
 */
int bench_run_phase(struct bench_run *r, double rate, unsigned concurrency, double warmup_s,
		 double duration_s, uint64_t max_requests, double drain_s, struct bench_results *res,
		 struct tg_err *err);

/* ---- reports ---- */

/** The final table: rates, latency percentiles, counters, statuses, accuracy. */
void bench_report_table(FILE *f, const struct bench_results *r, const struct bench_inputs *in);
/**
 * The same as a JSON object (jansson): rates, latency_ms and the gateway's own
 * server_queue_ms / server_compute_ms (p50, p90, p95, p99, p99.9, max, mean), counters,
 * statuses, reasons, accuracy; with in, the inputs. @return a new reference (the caller
 * json_decref()s it), or NULL when out of memory.
 */
json_t *bench_report_json(const struct bench_results *r, const struct bench_inputs *in);
/** CSV: a header line, then one line per phase (a sweep: per step) with the same columns. */
void bench_report_csv_header(FILE *f);
void bench_report_csv_row(FILE *f, const struct bench_results *r);
/** A sweep's header and one row per step. */
void bench_report_sweep_header(FILE *f);
void bench_report_sweep_row(FILE *f, const struct bench_results *r, bool saturated);

#endif
