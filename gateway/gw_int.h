/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the daemon's files only (daemon.c wiring, path.c the request path, gen.c model
 * generations and reload, metrics.c the control plane's pages): the daemon's state. Other
 * modules and the gateway library's users include gateway/gateway.h only.
 *
 * Threads and what each touches:
 *   RX lcores   gw_path_deliver() (the dataplane's deliver hook): reads g->cur (RCU: the
 *               generation is retired only after dp_synchronize()), admits, submits bursts,
 *               answers refusals;
 *   workers     gw_path_done() (the scheduler's done hook): fills and sends answers;
 *   builder     gw_gen_*: builds a generation off the serving path, publishes it, retires
 *               the one it replaced (SIGHUP; one build at a time);
 *   main        options, start, signals, shutdown;
 *   HTTP        metrics.c: reads counters, and the live generations under gen_mu.
 */
#ifndef TG_GW_INT_H
#define TG_GW_INT_H

#include "dataplane/dataplane.h"
#include "gateway/gateway.h"
#include "proto/proto.h"
#include "scheduler/sched.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum {
	GW_N_LAT = 14,			/* latency histogram buckets, +Inf excluded */
	GW_N_ST = PROTO_ST__COUNT,
	GW_N_SLOTS = 2 * GW_MAX_MODELS,	/* model names counted, over reloads */
	GW_SLOT_UNKNOWN = GW_N_SLOTS,	/* requests for no served model */
	GW_N_EXITS = 16,		/* exits counted per model (sched_stats' width) */
	GW_EXTRA_PRODUCERS = 8,		/* log rings beyond the workers': RX lcores, main,
					 * builder (a thread takes one on first use) */
};

extern const uint32_t gw_lat_le_us[GW_N_LAT];

struct gw;

/*
 * One generation of served models: a repository and the scheduler built on it. SIGHUP
 * builds the next one on the builder thread; it is published (g->cur), then the old one
 * finishes what it accepted and is retired, its counters folded into g's totals.
 */
struct gw_gen {
	struct gw *g;
	uint32_t id;			/* 1, 2, ...: also the catalog's generation */
	struct gw_repo *repo;
	struct sched *sched;
	unsigned log_base;		/* its workers' log rings: base + worker index (two
					 * generations run at once while the old one drains) */
	unsigned slot[GW_MAX_MODELS];	/* model index -> counter slot (by name) */
	struct sched_model_cfg mc[GW_MAX_MODELS];
	struct sched_degrade deg[GW_MAX_MODELS][SCHED_MAX_DEGRADE];	/* each model's stand-ins
					 * (gw_degrade_find(); none with degrade off) */
	struct gw_gen *next;		/* g->live list, under gen_mu */
};

/* A request inside the scheduler: lives in its dataplane slot (dp_req.priv). */
struct gw_pend {
	struct sched_req sr;		/* sr.owner: the dp_req */
	struct gw_gen *gen;		/* the generation that took it */
	uint64_t t_submit_ns;		/* when the RX lcore handed it over (queue_us starts at
					 * the last chunk's arrival, per the wire spec) */
};
_Static_assert(sizeof(struct gw_pend) <= DP_REQ_PRIV_BYTES, "gw_pend must fit dp_req.priv");

struct gw_lat {
	_Atomic uint64_t le[GW_N_LAT + 1];	/* per bucket, not cumulative; last: +Inf */
	_Atomic uint64_t sum_us, count;
};

/* The scheduler's counters of retired generations, by model name (monotonic /metrics). */
struct gw_totals {
	struct sched_stats st;		/* model_exits, model_batch_hist unused: by slot below */
	uint64_t exits[GW_N_SLOTS][GW_N_EXITS];
	uint64_t batch_hist[GW_N_SLOTS][SCHED_BATCH_BUCKETS];	/* as sched_stats' */
	uint64_t samples_run[GW_N_SLOTS];
};

struct gw {
	struct gw_config cfg;
	struct gw_gen *_Atomic cur;	/* what the deliver hook submits to (RCU, see top) */
	struct gw_gen *live;		/* every generation not yet retired, newest first */
	pthread_mutex_t gen_mu;		/* live, totals, slot names */
	struct gw_log *log;
	struct dp *dp;
	struct gw_http *http;
	unsigned n_producers;		/* log rings: 2 x workers, then GW_EXTRA_PRODUCERS */
	_Atomic unsigned next_producer;	/* the next extra ring a thread takes */
	_Atomic bool stopping;		/* SIGTERM: the hook answers OVERLOADED, submits none */
	/* Counters, read by the HTTP thread: [slot][status]; a slot per model name, kept
	 * across reloads so that counters never go back (names added under gen_mu). */
	_Atomic uint64_t req_by[GW_N_SLOTS + 1][GW_N_ST];
	char slot_name[GW_N_SLOTS][2 * GW_NAME_MAX];	/* gw_model.label */
	char exit_name[GW_N_SLOTS][GW_N_EXITS][GW_NAME_MAX];	/* by slot, as last loaded */
	unsigned n_slots;
	/* Refusals by status and reason (PROTO_OK: a status that needs no reason, e.g.
	 * DEADLINE_INFEASIBLE); OK answers are not refusals. */
	_Atomic uint64_t refused[GW_N_ST][PROTO_REASON__COUNT];
	struct gw_lat lat_queue[GW_N_SLOTS + 1], lat_compute[GW_N_SLOTS + 1];	/* by slot */
	/* Degrade instead of shed, by counter slot: requests asked of [from] that ran on [to]
	 * (counted when answered); pairs a generation may degrade between are listed even at
	 * 0 (set under gen_mu). */
	_Atomic uint64_t degraded[GW_N_SLOTS][GW_N_SLOTS];
	bool degrade_pair[GW_N_SLOTS][GW_N_SLOTS];
	_Atomic uint64_t taken;		/* requests the deliver hook received */
	_Atomic uint64_t answered;	/* of those, handed back with dp_req_respond() */
	struct gw_totals tot;		/* under gen_mu */
	clockid_t main_clock;		/* the main thread's CPU clock (/metrics) */
	bool main_clock_set;		/* main_clock valid (set before the HTTP thread starts) */
	/* Reload: one build at a time, on its own thread. */
	pthread_t builder;
	_Atomic int build_state;	/* enum gw_build */
	struct proto_keys *keys;	/* device keys (auth_keys): the RX lcores read them;
					 * replaced by the builder on SIGHUP (gw_keys_reload) */
};

enum gw_build { GW_BUILD_IDLE, GW_BUILD_RUNNING, GW_BUILD_DONE };

/* keys.c: the device key file at start (before dp_create(): it sets cfg.dp.keys; 0 or
 * -errno with err set), and again on SIGHUP (builder thread; failures logged, old keys kept). */
int gw_keys_load(struct gw *g, struct tg_err *err);
void gw_keys_reload(struct gw *g, unsigned producer);

/* path.c: the request path */
void gw_path_deliver(void *ctx, struct dp_req **reqs, unsigned n);
uint64_t gw_path_busy(void *ctx);
void gw_path_done(void *ctx, struct sched_req **r, unsigned n);
/* The calling thread's log ring for generation gen (NULL: not a worker's). */
unsigned gw_producer(struct gw *g, const struct gw_gen *gen);
/* Give the calling thread extra ring GW_RING_* (main, builder: threads that come again). */
void gw_producer_set(struct gw *g, unsigned extra);
enum { GW_RING_MAIN, GW_RING_BUILDER, GW_RING_FIRST_FREE };

/* gen.c: generations and reload */
int gw_gen_build(struct gw *g, uint32_t id, struct gw_gen **out, struct tg_err *err);
int gw_gen_publish(struct gw *g, struct gw_gen *gen, struct tg_err *err);
void gw_gen_retire(struct gw *g, struct gw_gen *old);
/* SIGHUP: start a build (build_state IDLE; main thread); gw_reload_reap() joins a finished
 * one (wait: also a running one), making build_state IDLE again. */
void gw_reload_start(struct gw *g);
void gw_reload_reap(struct gw *g, bool wait);
/* Sum of the scheduler counters of every generation, by slot (under gen_mu). */
void gw_stats_sum(struct gw *g, struct gw_totals *out);

/* metrics.c: the control plane's pages (gw_http_fn) */
int gw_http_render(void *ctx, const char *path, char *buf, size_t cap, size_t *len,
		   const char **ctype);
/* ops.c: the operator's and the service manager's side (main thread). */
void gw_version_print(FILE *f, const char *prog);
/* sd_notify(3) of the formatted state ("READY=1\nSTATUS=..."); no-op outside systemd. */
void gw_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Nanoseconds between watchdog keep-alives (half WatchdogSec); 0: no watchdog. */
uint64_t gw_watchdog_interval_ns(void);
/* --check-config: keys and model repository loaded and printed to out, no DPDK. 0/-errno. */
int gw_check_config(struct gw *g, FILE *out, struct tg_err *err);

/* metrics.c: DPDK telemetry commands /tailgate/models, /tailgate/model,ID and
 * /tailgate/sessions, answered from g until dp_tel_unregister_all(). 0 or -errno (err). */
int gw_telemetry_start(struct gw *g, struct tg_err *err);

#endif
