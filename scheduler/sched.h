/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scheduler: per-(model, segment) queues, deadline-aware dynamic batching, tail execution on
 * the engine, server-side early exits. Prefix sched_.
 *
 * A model's served tail is cut into segments at every served split point and after every
 * server-side exit (DESIGN.md, Scheduling). A request enters the queue of the segment that
 * starts at its split; after each segment, a sample whose exit is confident is answered and
 * the rest move on to the next segment's queue, where requests that entered at other splits
 * join them: heterogeneous clients batch together where their tails meet. In the other
 * layout, whole tails, each served split has one queue running its whole tail at once.
 *
 * Which layout (cfg.mode): either may be forced; SCHED_MODE_AUTO chooses per model from what
 * each would cost. Both layouts' queues and plans are built (once, when they differ) and
 * their latencies measured; arrivals enter whole tails first (fewer batches, no queueing
 * between segments), and about twice a second, once enough requests came, the scheduler
 * predicts the engine time per second each layout needs for the arrivals it saw per split
 * and the share of samples each early exit answered: the engine time per request each
 * layout needs at capacity (sched_layout_load() at that mix scaled up until batches are
 * full, from the latency estimates per batch size measured at start), and sends new
 * arrivals to the layout predicted cheaper by more than SCHED_LAYOUT_MARGIN. Priced at
 * capacity because that is where the layout matters: below it both keep up, and whole
 * tails answer sooner (one queue, not one per segment).
 * Requests already queued finish in the layout they entered. Segments win when exits stop
 * many samples early, or when merging splits fills batches that per-split queues would not;
 * whole tails when the extra batches' fixed costs outweigh that (docs/BENCHMARKS.md,
 * "Confluence batching"). An int8 model stays on whole tails under AUTO: segments hand
 * their boundary tensors over in f32 and the next segment quantizes them again, which
 * changes a few answers (measured on the shipped model: 3-5 top-1 classes in 2,000, top-1
 * scores by up to 0.04), and a gateway's answers should not depend on its load.
 *
 * Batching per queue: a batch leaves when it is full, when its oldest request has waited
 * max_delay, or when waiting longer would break the earliest deadline in it, given online
 * estimates of each segment's latency per batch size; and (batch_wait ADAPTIVE, the default)
 * at once, when waiting would buy no throughput: when the queue's arrival rate times its
 * per-sample time at the batch it holds, plus every other queue's arrivals at their cheapest
 * (full batches), is under the workers there are, batches of that size run back to back keep
 * up with the arrivals, and an idle worker that waits only adds the wait to every request
 * (sched.c, sched_wait_pays()). Rates are an EWMA of the gaps between arrivals into each
 * queue, bounded by the gap open since the last one. It takes requests while one more still
 * ends before every deadline in it, in queue order, or newest first when more than a batch
 * waits (overload: the newest still have the slack to finish in time), and drops to the
 * bucket below when that runs more samples per second. A request that cannot finish even
 * alone is answered DEADLINE_INFEASIBLE on arrival, and again at batch formation if it expired
 * while queued (it never takes compute); a full queue, or a predicted finish (the work queued
 * in every queue plus the running batches' remainder, over the workers) past its deadline,
 * answers OVERLOADED on arrival.
 *
 * Degrade instead of shed: a model may list lighter stand-ins for a served split (variants of
 * the same family that take the very same tensor there, with a cheaper tail: struct
 * sched_degrade, found by the caller when it loads the models). A request that would be
 * answered DEADLINE_INFEASIBLE or OVERLOADED (backlog) on arrival joins instead the queue of
 * the most accurate stand-in that meets its accuracy floor and is predicted to finish in
 * time; its model and split then name the stand-in, asked_model and asked_split what it
 * asked for. The list is sorted once at sched_create(): admission tries it in order and
 * stops at the first that fits, one backlog sum for all (no search over the queues per
 * candidate). Requests without a floor (0) are never degraded.
 *
 * Threads: sched_submit_burst() and the batch functions may be called from any thread (one
 * mutex guards the queues, taken once per burst, never held while the engine runs). sched_start() runs worker threads
 * that take and run batches; tests drive the same functions on a fake clock instead.
 */
#ifndef TG_SCHED_H
#define TG_SCHED_H

#include "kernels/kernels.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

enum {
	SCHED_MAX_TOPK = 16,		/* classes a result carries */
	SCHED_MAX_MODELS = 64,
	SCHED_BATCH_BUCKETS = 13,	/* batch size histogram: 1, 2, 4, ... 4096 */
	SCHED_MAX_SEGMENTS = 64,	/* per model */
	SCHED_MAX_WORKERS = 16,
	SCHED_NONE = 0xFF,		/* exit_taken when no exit answered */
	SCHED_MAX_DEGRADE = 64,		/* stand-ins per model, all its splits together */
};

/** How long a queue's requests wait for more to join their batch (sched_model_cfg). */
enum sched_batch_wait {
	SCHED_WAIT_ADAPTIVE = 0,	/* up to max_delay, and only while waiting pays (above) */
	SCHED_WAIT_FIXED,		/* up to max_delay whatever the load (before session 9) */
};

/** One request. Filled by the producer; the scheduler fills the results before done(). */
struct sched_req {
	/* in */
	void *owner;			/* the producer's handle (e.g. its reassembly slot) */
	uint16_t model;			/* index in sched_cfg.models */
	uint8_t split;			/* row of the model's split table */
	uint8_t dtype;			/* enum tg_dtype of data: f32, f16, s8 or u8 */
	float scale;			/* s8/u8: real = scale * (q - zero_point) */
	int32_t zero_point;
	const void *data;		/* one sample at the split; the producer's until done() */
	uint64_t deadline_ns;		/* absolute, on the scheduler's clock; 0: model default */
	uint16_t top_k;			/* classes wanted (<= SCHED_MAX_TOPK) */
	bool no_early_exit;		/* answer at the final exit only (PROTO_RF_NO_EARLY_EXIT) */
	float *full_out;		/* if not NULL: the answering exit's output is copied here */
	uint32_t full_cap;		/* floats full_out holds */
	uint16_t accuracy_floor_bp;	/* the device's lowest acceptable top-1 accuracy, 1/100 %:
					 * a stand-in below it is never used; 0: none declared,
					 * never degraded */
	/* out */
	uint16_t asked_model;		/* model and split the request named (set on submission); */
	uint8_t asked_split;		/* model and split differ from them once degraded */
	bool degraded;			/* it runs on a stand-in (model, split say which) */
	uint8_t status;			/* enum proto_status */
	uint8_t reason;			/* enum proto_reason of a refusal; PROTO_OK when none */
	uint8_t exit_taken;		/* output index of the answering exit, SCHED_NONE if none */
	uint16_t batch_size;		/* samples in the batch that finished it */
	uint32_t queue_us;		/* arrival to the start of its last batch, less compute */
	uint32_t compute_us;		/* engine time of the batches it was in */
	uint32_t full_len;		/* floats written to full_out */
	uint16_t n_top;
	uint32_t top_cls[SCHED_MAX_TOPK];
	float top_score[SCHED_MAX_TOPK];	/* softmax probabilities */
	/* the scheduler's own */
	uint64_t t_arrival_ns;
	uint64_t t_enqueue_ns;		/* entered its current queue */
	uint64_t due_ns;		/* the deadline less a margin (1/16 of its budget at
					 * arrival): what batching plans against, so that delays
					 * outside the scheduler's view (RX, sending) fit too */
	int32_t stage;			/* staging slot holding its tensor between segments, -1 */
	uint8_t seg;			/* current segment */
	struct sched_req *next, *prev;
};

/**
 * A lighter stand-in for one served split of a model: a variant that takes the same tensor
 * (same family, same split tensor and shape, the same head computed it) and whose tail costs
 * less. The caller vouches for "the same tensor"; sched_create() checks the rest.
 */
struct sched_degrade {
	uint8_t split;			/* served split row of this model */
	uint8_t to_split;		/* the stand-in's served split row for that tensor */
	uint16_t to_model;		/* index in sched_cfg.models, not this model */
	uint16_t accuracy_bp;		/* the stand-in's top-1 accuracy, 1/100 %, 1..10000: the
					 * floor is checked against it */
};

struct sched_model_cfg {
	const struct kern_model *model;	/* must outlive the scheduler */
	enum kern_precision precision;
	const struct kern_calib *calib;	/* int8: the calibration */
	const unsigned *splits;		/* served split rows, any order, no duplicates */
	unsigned n_splits;
	const float *exit_conf;		/* [n_outputs]: answer at an exit when its top softmax
					 * probability >= this; NULL or > 1: never. The final
					 * exit always answers. */
	unsigned max_batch;		/* 1..4096 */
	uint64_t max_delay_ns;		/* longest a request waits for its batch to fill */
	enum sched_batch_wait batch_wait;	/* whether it waits that long at low load;
						 * 0: ADAPTIVE */
	uint64_t default_deadline_ns;	/* relative, for requests without one */
	const struct sched_degrade *degrade;	/* stand-ins, any order (copied at create);
						 * NULL: this model's requests are shed as before */
	unsigned n_degrade;		/* 0..SCHED_MAX_DEGRADE */
};

/** How each model's tails are cut into queues (the header comment says what each does). */
enum sched_mode {
	SCHED_MODE_AUTO = 0,		/* per model, the layout predicted cheaper */
	SCHED_MODE_WHOLE,		/* one queue per served split, its whole tail per batch */
	SCHED_MODE_SEGMENTS,		/* segments between served splits and exits, merged */
};

/* A layout must be predicted this much cheaper (a fraction) to take over from the other:
 * the costs estimates do not see (staging copies between segments, a queue more to wait
 * in) and the noise of the start-up measurements (resnet224's layouts, tied in throughput,
 * were priced up to 8% apart). */
#define SCHED_LAYOUT_MARGIN 0.10

struct sched_cfg {
	const struct sched_model_cfg *models;
	unsigned n_models;
	unsigned queue_cap;		/* requests waiting per queue; more are OVERLOADED */
	unsigned max_inflight;		/* requests inside the scheduler; sizes the staging pool */
	unsigned n_workers;		/* worker threads of sched_start(), 1.. */
	enum sched_mode mode;		/* layout of every model's queues; 0: AUTO */
	/* Called with accepted requests whose results are set, once each, in bursts of up to
	 * 64 (those a batch or a batch formation answered), from the thread that finished
	 * them, never under the scheduler's lock (done() may call sched_estimate_splits());
	 * the requests are the producer's again. */
	void (*done)(void *ctx, struct sched_req **r, unsigned n);
	void *ctx;
	uint64_t (*clock)(void);	/* monotonic ns; NULL: tg_now_ns */
};

struct sched;

/** A batch taken from a queue, run by one worker. */
struct sched_batch {
	uint16_t model;
	uint8_t seg;
	unsigned n;
	struct sched_req **req;		/* [max_batch] */
};

/**
 * Build queues, segments and every plan (per worker, per batch bucket), then measure each
 * segment once per bucket to seed the latency estimates. Models and calibrations stay the
 * caller's. @return 0, -EINVAL (bad config, err says which field), -ENOMEM, engine errors.
 */
int sched_create(const struct sched_cfg *cfg, struct sched **out, struct tg_err *err);
/**
 * Stop admitting (later submissions are refused OVERLOADED), let the workers finish what was
 * accepted (every queue is due while draining; at most 10 s), stop them, answer what is
 * still queued (INTERNAL). Counters stay readable (sched_get_stats()). Idempotent; NULL ok.
 */
void sched_stop(struct sched *s);
/** sched_stop(), then free; NULL ok. */
void sched_free(struct sched *s);

/**
 * Offer a burst of requests under one lock: a *burst* operation (rte_ring's sense: up to
 * n are taken, not all or none), each request admitted or refused on its own, in order.
 * The array is reordered: reqs[0..k) are the requests taken, each the scheduler's until
 * its done() (a worker may answer it before this returns: the caller must not read them);
 * reqs[k..n) were refused, remain the caller's, and carry the final status and reason:
 * UNKNOWN_MODEL (model index out of range), UNKNOWN_SPLIT (split not served), BAD_REQUEST
 * (dtype), DEADLINE_INFEASIBLE (cannot finish in time even alone), OVERLOADED (reason
 * queue_full: queue, in-flight cap or draining; backlog: predicted finish past the
 * deadline); the last two only when no stand-in fits (degrade, above): a request taken on
 * one has degraded set and model, split naming it. Thread: any (producers may be several,
 * e.g. one per RX lcore).
 * @return k, the number taken (0..n)
 */
unsigned sched_submit_burst(struct sched *s, struct sched_req **reqs, unsigned n);

/**
 * One request: sched_submit_burst(s, &r, 1). @return PROTO_ST_OK when taken (done() will
 * follow; r must not be read), or the status it was refused with (also in r->status).
 */
int sched_submit(struct sched *s, struct sched_req *r);

/**
 * Take the most urgent batch that is due at the scheduler's now, answering expired
 * requests on the way. @return true with *b filled (b->req must hold max_batch pointers),
 * false when none is due; *wake_ns then says when one will be (UINT64_MAX: queues empty).
 */
bool sched_take_batch(struct sched *s, unsigned worker, struct sched_batch *b, uint64_t *wake_ns);

/** Run a taken batch on worker's plans; answers or moves on each request. @return 0, -EIO. */
int sched_run_batch(struct sched *s, unsigned worker, struct sched_batch *b);

/** Start cfg.n_workers threads that take and run batches until sched_free(). */
int sched_start(struct sched *s, struct tg_err *err);

/**
 * The index (0..n_workers-1) of the sched_start() worker calling, or SCHED_NO_WORKER on any
 * other thread (sched_free()'s caller answering leftovers, tests driving batches by hand).
 * Lets done() pick per-worker resources (e.g. a log ring) without a lock. Thread: any.
 */
unsigned sched_current_worker(void);
#define SCHED_NO_WORKER (~0u)

/**
 * Override a latency estimate, and the start-up measurement the choice of layout weighs
 * (tests on a fake clock). seg indexes sched_segments()'s list; batch is a bucket size.
 */
void sched_set_estimate(struct sched *s, unsigned model, unsigned seg, unsigned batch,
			uint64_t ns);

/**
 * What a request entering at each of splits[0..n) of model should expect to wait and compute,
 * now, for the advice, in out_ns; UINT64_MAX for a split not served. Idle (nothing queued),
 * the admission's predicted finish less now; under load, the wait scaled by the tail's
 * per-sample work against that of what is queued (a congestion term: what a lighter variant
 * or a deeper split really spares the gateway when devices move; sched.c,
 * sched_advice_estimate()), plus its own batch at the size the load forms. Not admission's
 * figure: admission still charges each request the whole backlog. One lock for all.
 * Thread: any.
 */
void sched_estimate_splits(struct sched *s, unsigned model, const unsigned *splits, unsigned n,
			   uint64_t *out_ns);

/**
 * How long from now a request submitted now could be held back without starting any later,
 * ns: every worker is computing a batch, and the first of them should end (by its batch
 * size's latency estimate) that far from now, less a guard of 200 us; less a max_delay
 * more (the longest of the models') when that batch is not full and no queue is due by its
 * end, so that a request held until then still starts its batching wait in time; 0 when a
 * worker is free or waiting, or no estimate is known yet. Lock-free, any thread: the RX
 * lcores' back-off asks it (dataplane.h, dp_busy_fn) so that they sleep while the engine
 * has the cores.
 */
uint64_t sched_busy_ns(const struct sched *s);

/**
 * Queues (segments) of a model and where each begins (split row). With both layouts built
 * (SCHED_MODE_AUTO), the whole tails' queues come first, then the segments'. @return count.
 */
unsigned sched_segments(const struct sched *s, unsigned model, unsigned *starts, unsigned max);

struct sched_stats {
	uint64_t submitted, completed, batches, samples_run;
	uint64_t by_status[16];		/* answers by enum proto_status */
	uint64_t exits[16];		/* answers by exit index, over models */
	uint64_t model_exits[SCHED_MAX_MODELS][16];	/* answers by model and exit index */
	uint64_t expired_in_queue;	/* answered DEADLINE_INFEASIBLE at batch formation */
	uint64_t shed_on_arrival;	/* OVERLOADED: the predicted finish was past the deadline */
	uint64_t degraded;		/* taken on a stand-in instead of being refused (counted
					 * in submitted; answered, like any taken, in completed) */
	uint64_t model_degraded[SCHED_MAX_MODELS];	/* ... by the model asked for */
	uint64_t batch_hist[SCHED_BATCH_BUCKETS];	/* batches by size bucket: 1, 2, 4, ... 4096 */
	uint64_t model_batch_hist[SCHED_MAX_MODELS][SCHED_BATCH_BUCKETS];	/* ... by model */
	uint64_t model_samples_run[SCHED_MAX_MODELS];	/* samples_run by model */
	bool model_segments[SCHED_MAX_MODELS];	/* arrivals enter segments now (else whole
						 * tails) */
	uint64_t layout_switches;	/* SCHED_MODE_AUTO: times a model changed layout */
	double model_cost_ns[SCHED_MAX_MODELS][2];	/* its last prediction (AUTO, both
							 * layouts built): engine ns per request
							 * at capacity, whole tails then
							 * segments */
	/* Where each worker's time goes, by worker index (sched_start()'s workers; a batch run
	 * by another thread through sched_run_batch() counts under the index it names): */
	uint64_t engine_ns[SCHED_MAX_WORKERS];	/* wall time inside kern_plan_run() (oneDNN) */
	uint64_t engine_cpu_ns[SCHED_MAX_WORKERS];	/* the calling thread's CPU time inside
						 * it (oneDNN's other threads not counted) */
	uint64_t worker_cpu_ns[SCHED_MAX_WORKERS];	/* the worker thread's whole CPU time,
						 * taken after each batch and wake-up (at most
						 * 10 ms stale) and when it exits */
};
void sched_get_stats(struct sched *s, struct sched_stats *out);

/** One queue of a layout, as the choice of layout weighs it (sched_layout_load()). */
struct sched_layout_queue {
	double arrivals;		/* requests per second devices send into it */
	int next;			/* queue its unanswered samples move on to (a later
					 * index), -1: none */
	double survive;			/* share of the samples it runs that move on (0..1):
					 * those no exit in it answered */
	const uint64_t *est;		/* ns per batch, by bucket */
};

/**
 * The engine time per second (ns/s) a layout needs for the given arrivals: each queue's rate
 * (devices', plus what earlier queues pass on), the batch it forms at that rate (what arrives
 * in one round of batches of every queue, at least max_delay, at most the largest bucket:
 * a fixed point, found by iteration) and its estimate at that batch's bucket, over the
 * workers. Pure: a table of estimates in, a figure out (SCHED_MODE_AUTO compares two, at
 * arrivals that fill the batches).
 * @param buckets  batch sizes of est[], ascending, the last the model's max_batch
 */
double sched_layout_load(const struct sched_layout_queue *q, unsigned n, const unsigned *buckets,
			 unsigned n_buckets, uint64_t max_delay_ns, unsigned workers);

#endif
