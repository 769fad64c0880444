/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gateway: the tailgate daemon's own parts: its configuration file, the model repository,
 * startup and signals, the control plane. Prefix gw_.
 *
 * Configuration format (docs in README.md, "Running the gateway"): one "key = value" per
 * line, '#' starts a comment, blank lines ignored; keys are unique; every error names the
 * file, the line and the key. The same syntax serves each model's models/<name>/model.conf.
 */
#ifndef TG_GATEWAY_H
#define TG_GATEWAY_H

#include "dataplane/dataplane.h"
#include "kernels/kernels.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum {
	GW_PATH_MAX = 1024,
	GW_NAME_MAX = 64,
	GW_MAX_SPLITS = 64,
	GW_MAX_EXITS = 32,
	GW_MAX_MODELS = 64,		/* served (model, variant) pairs, all folders together */
	GW_MAX_VARIANTS = 16,		/* variant lines per model.conf */
	GW_MAX_DROP = 16,		/* blocks in one drop list */
	GW_VARIANT_ID_MAX = 254,	/* 0 is the base model, 0xFF "no variant" in advice */
};

/** Top-1 accuracy of one exit from the model's card, 1/100 %; 0 unknown. */
struct gw_exit_acc {
	char exit[GW_NAME_MAX];		/* graph output name */
	uint16_t fp32_bp, int8_bp;
};

/**
 * One "variant = ID NAME [drop=B,...] [splits=S,...] [exits=OUT:CONF,...]
 * [accuracy=OUT:FP32[:INT8],...]" line of model.conf (README, "Variants"). Without drop= it
 * is a file variant: models/<model>/variants/NAME/model.onnx (model.calib beside it for
 * dtype = int8); with it, the base model with those residual blocks dropped (block indices
 * of tailgate-model blocks, or Add node names), no second file.
 */
struct gw_variant_conf {
	uint8_t id;				/* 1..254, unique in the model */
	char name[GW_NAME_MAX];			/* [A-Za-z0-9_.-], unique in the model */
	char drop[GW_MAX_DROP][GW_NAME_MAX];	/* blocks dropped; none: a file variant */
	unsigned n_drop;
	char splits[GW_MAX_SPLITS / 4][GW_NAME_MAX];	/* served splits of the variant's own
							 * table; none: a drop variant serves the
							 * base's that it keeps, a file variant all */
	unsigned n_splits;
	char exit_name[GW_MAX_EXITS / 4][GW_NAME_MAX];	/* none: a drop variant takes the
							 * base's exits */
	float exit_conf[GW_MAX_EXITS / 4];
	unsigned n_exits;
	struct gw_exit_acc acc[GW_MAX_EXITS / 4];	/* per exit, from its card */
	unsigned n_acc;
};

/** The daemon's settings: defaults from gw_config_default(), then the file, then options. */
struct gw_config {
	struct dp_config dp;			/* address, port, queues, limits, timeouts */
	char models_dir[GW_PATH_MAX];		/* the model repository ("models") */
	unsigned workers;			/* scheduler worker threads (1) */
	unsigned engine_threads;		/* oneDNN threads per worker; 0: all cores (0) */
	unsigned queue_cap;			/* requests waiting per queue (256) */
	unsigned max_inflight;			/* requests in the scheduler (1024) */
	unsigned whole_tail;			/* enum sched_mode: whole tails per batch (true),
						 * segments (false), or per model the one
						 * predicted cheaper (auto, the default) */
	bool degrade;				/* degrade instead of shed: a request past its
						 * deadline runs on a lighter variant that takes
						 * its tensor and meets its floor (true) */
	bool advice;				/* fill the RESPONSE's advice (true); false: never
						 * (README, "The advisor") */
	bool rx_busy_sleep;			/* RX lcores sleep while every worker computes
						 * (the scheduler's busy hint, true) */
	char access_log[GW_PATH_MAX];		/* JSON lines; "" = none */
	char event_log[GW_PATH_MAX];		/* "" = stderr */
	uint32_t log_ring;			/* records per lcore log ring (4096) */
	uint32_t fsync_ms;			/* fdatasync period of the logs (1000) */
	char metrics_addr[GW_NAME_MAX];		/* "ADDR:PORT" of /metrics; "" = off */
	char auth_keys[GW_PATH_MAX];		/* device key file (docs/protocol.md 12.5); "" =
						 * none. dp.auth and dp.integrity_required are
						 * the "auth" and "integrity" keys */
};

/** One served model, from models/<name>/model.conf (all keys optional). */
struct gw_model_conf {
	char name[GW_NAME_MAX];			/* the folder's name */
	uint16_t id;				/* model id on the wire (required, unique, not 0xFFFF) */
	char splits[GW_MAX_SPLITS][GW_NAME_MAX];	/* served splits: rows or tensor names;
							 * none: every split */
	unsigned n_splits;
	char exit_name[GW_MAX_EXITS][GW_NAME_MAX];	/* "exit = NAME:CONF" pairs */
	float exit_conf[GW_MAX_EXITS];
	unsigned n_exits;
	unsigned max_batch;			/* (32) */
	uint32_t max_delay_us;			/* (2000) */
	unsigned batch_wait;			/* enum sched_batch_wait: "adaptive" (waits
						 * only while it pays) or "fixed" (adaptive) */
	uint32_t deadline_ms;			/* default deadline (100) */
	enum kern_precision precision;		/* "dtype = f32|int8" (f32); int8 uses model.calib */
	unsigned top_k;				/* classes in a response unless asked (5) */
	uint16_t accuracy_bp;			/* top-1 accuracy, 1/100 %; 0 unknown (0) */
	uint16_t accuracy_exits_bp;		/* top-1 with the early exits answering at
						 * their thresholds (the card's), for the
						 * advice; 0 unknown (0) */
	struct gw_exit_acc acc[GW_MAX_EXITS];	/* "accuracy = OUT:FP32[:INT8]", per exit */
	unsigned n_acc;
	struct gw_variant_conf variants[GW_MAX_VARIANTS];	/* "variant = ..." lines */
	unsigned n_variants;
};

/**
 * Gateway defaults, on top of the dataplane's (from dp_config_default(); passed in so this
 * file's parser links without DPDK, for its tests and fuzz target). dp NULL: zeroes.
 */
void gw_config_default(struct gw_config *c, const struct dp_config *dp);
void gw_model_conf_default(struct gw_model_conf *mc);

/**
 * Parse configuration text (not NUL-terminated; at most 1 MiB) into c, on top of what c
 * holds. name labels errors ("tailgate.conf:12: queue_cap: ...").
 * @return 0 or -EINVAL with err set; c may be partly updated on error.
 */
int gw_config_parse(const char *text, size_t len, const char *name, struct gw_config *c,
		    struct tg_err *err);
/** Read (io_uring) and parse a configuration file. */
int gw_config_load(const char *path, struct gw_config *c, struct tg_err *err);
/** Cross-field checks after file and options: what is accepted, said in the error. */
int gw_config_validate(const struct gw_config *c, struct tg_err *err);

/** As gw_config_parse() for a model's model.conf. */
int gw_model_conf_parse(const char *text, size_t len, const char *name, struct gw_model_conf *mc,
			struct tg_err *err);

/* ---- the model repository: models/<name>/{model.onnx, model.conf[, model.calib]} ---- */

/**
 * One served (model, variant), loaded and resolved against its graph. A model folder gives
 * its base (variant 0) and then one entry per variant line, in the order of the lines;
 * each is scheduled, counted and listed in the catalog on its own.
 */
struct gw_model {
	struct gw_model_conf conf;		/* the folder's model.conf (shared by its variants;
						 * only the base's copy lists the variants) */
	uint8_t variant;			/* 0: the base model; else the variant's id */
	char label[2 * GW_NAME_MAX];		/* "model" or "model/variant": metrics, logs */
	struct kern_model *m;			/* read with io_uring (a drop variant: the base's
						 * file with its blocks dropped) */
	struct kern_calib *calib;		/* int8: model.calib; else NULL */
	unsigned splits[GW_MAX_SPLITS];		/* served split rows, from conf.splits */
	unsigned n_splits;
	float exit_conf[GW_MAX_EXITS];		/* per model output; 2 = never answers early */
	uint16_t acc_fp32[GW_MAX_EXITS];	/* per model output, 1/100 %; 0 unknown */
	uint16_t acc_int8[GW_MAX_EXITS];
	uint16_t accuracy_bp;			/* the catalog's: accuracy_bp, else the final
						 * exit's in the served dtype; 0 unknown */
	unsigned drop[GW_MAX_DROP];		/* a drop variant: block indices of the base */
	unsigned n_drop;
};

struct gw_repo {
	struct gw_model *models;		/* a model's base first, then its variants */
	unsigned n;
};

/**
 * Load every model folder of dir (folders without model.onnx are skipped, with a note in
 * err-less stderr output left to the caller: see gw_repo_summary()). Each needs a
 * model.conf with a unique id; splits and exits named there must exist in the model; each
 * variant line must name a file that loads (or blocks the base can drop) and splits and
 * exits it has. Any error fails the whole load (a reload keeps the previous generation).
 * @return 0, or -errno with err naming the folder, the variant and what is wrong.
 */
int gw_repo_load(const char *dir, struct gw_repo **out, struct tg_err *err);
void gw_repo_free(struct gw_repo *r);

/** The startup summary: per model its id, dtype, served splits with bytes, exits. */
void gw_repo_summary(const struct gw_repo *r, FILE *f);

/** The entry serving (model id, variant id): its index, or -1. *known_model tells whether
 * the model id is served at all (UNKNOWN_MODEL vs unknown_variant). */
int gw_repo_find(const struct gw_repo *r, uint16_t model_id, uint8_t variant, bool *known_model);

/* ---- the daemon ---- */

/**
 * The tailgate daemon, start to exit (programs/tailgate.c): options, then `--` and the EAL's
 * (`tailgate --help`); serves until SIGTERM/SIGINT. Thread: the process's main thread, once.
 * @return the process's exit status: 0 after a clean drain, 1 on a start error, 2 on usage
 */
int gw_daemon_main(int argc, char **argv);

/* ---- logs: bounded per-producer rings, written by io_uring from one writer thread ---- */

/*
 * Life of a record: a producer hands it to its ring (gw_log_access(), gw_log_event()); the
 * writer formats it into its log's buffer; both logs' buffers are written in one io_uring
 * submit (with a linked fdatasync each every fsync_ms). A record is counted written once all
 * its bytes are on the file. A write that fails (ENOSPC, EIO, ...) cuts the file back to its
 * last whole line and counts the records it carried as lost, by reason; the next records are
 * tried again, so logging resumes by itself once the disk has room. For each log, at any
 * time: produced = written + lost (all reasons) + in flight (in a ring or being written); in
 * flight is 0 after gw_log_flush() or gw_log_close(). A failure episode (from the first
 * failed write to the next one that succeeds) is one event line at its start and one at its
 * end, not a line per record.
 */

/** One access-log record (a JSON line once written). */
struct gw_access_rec {
	uint64_t t_ns;			/* CLOCK_REALTIME of the answer */
	uint32_t client_id, request_id;
	uint32_t bytes;			/* raw tensor bytes received */
	uint32_t queue_us, compute_us;
	uint16_t model;
	uint16_t batch;
	uint8_t split, dtype, status, exit_taken;	/* exit 0xFF: none */
	uint8_t variant;		/* the variant the request named */
	uint8_t ran_variant, ran_split;	/* the variant and split that answered: the request's,
					 * unless degraded instead of shed */
};

/** The two logs, as counters and metric labels ("access", "event") name them. */
enum gw_log_kind { GW_LOG_ACCESS, GW_LOG_EVENT, GW_LOG__KINDS };

/* Why a record was lost: symbol, metric label, help. */
#define GW_LOG_FOREACH_LOSS(_)							\
	_(RING_FULL,   "ring_full",   "its producer's ring was full")			\
	_(DISK_FULL,   "disk_full",   "no room on the file system (ENOSPC, EDQUOT, EFBIG)") \
	_(WRITE_ERROR, "write_error", "its write failed otherwise (EIO, ...)")		\
	_(NO_RING,     "no_ring",     "its producer index has no ring (more threads than rings)")

enum gw_log_loss {
#define _(sym, label, help) GW_LOG_LOSS_##sym,
	GW_LOG_FOREACH_LOSS(_)
#undef _
	GW_LOG_LOSS__COUNT
};

struct gw_log;

/**
 * Open the access log (access_path, "" = none) and event log (event_path, "" = stderr),
 * both appended to, with n_producers rings of ring_size records each (a power of two), and
 * start the writer (its thread blocks every signal).
 * @return 0 or -errno with err set (a log that cannot be opened, bad sizes, no memory, no
 *         io_uring).
 */
int gw_log_open(struct gw_log **out, const char *access_path, const char *event_path,
		unsigned n_producers, unsigned ring_size, unsigned fsync_ms, struct tg_err *err);

/**
 * Hand a record to the writer. Thread: only producer p's own thread (one thread per ring,
 * ever: two threads on one ring lose records); lock-free, never blocks: when p's ring is
 * full the record is dropped and counted (ring_full), as when p has no ring (no_ring).
 * r is copied.
 * @return true when queued; false when dropped, or when there is no access log (nothing
 *         produced then, nothing counted).
 */
bool gw_log_access(struct gw_log *l, unsigned p, const struct gw_access_rec *r);

/** An event line (control path: startup, reloads, state changes); same ring rules. A
 * newline in the text becomes a space: one event, one line. */
bool gw_log_event(struct gw_log *l, unsigned p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * Ask the writer to reopen both files (after rotation; SIGUSR1). Any thread, any time,
 * signal handlers excepted (it signals a condition variable); returns at once. Records
 * taken before the reopen go to the files open before it. A log that cannot be reopened
 * keeps its previous file open and goes on writing there; the event log says so and
 * reopen_failures counts it. A log without a path (event log on stderr) is left as it is.
 */
void gw_log_reopen(struct gw_log *l);

/**
 * Wait until every record queued before this call (by any producer whose gw_log_access()
 * or gw_log_event() returned before it) is on its file, or counted lost; then in flight
 * is 0 for them and the counters of gw_log_stats() add up for those records. The shutdown
 * drain calls it after the last answer, before reporting counts. Not fdatasync'd
 * (gw_log_close() is). Thread: any but the writer; other producers may go on meanwhile.
 * @return 0, or -ETIMEDOUT after timeout_ms (a stuck disk: the writer is still in a write).
 */
int gw_log_flush(struct gw_log *l, unsigned timeout_ms);

struct gw_log_stats {
	uint64_t produced_by[GW_LOG__KINDS];	/* queued, or refused by a full ring, plus the
						 * writer's own event lines */
	uint64_t written_by[GW_LOG__KINDS];	/* records whose every byte is on the file */
	uint64_t lost_by[GW_LOG__KINDS][GW_LOG_LOSS__COUNT];
	uint64_t write_errors_by[GW_LOG__KINDS];	/* failed writes (each cut back the file) */
	uint64_t reopen_failures_by[GW_LOG__KINDS];	/* reopens that kept the previous file */
	bool failing[GW_LOG__KINDS];		/* in a failure episode now */
	uint64_t written, dropped, write_errors;	/* sums over both logs (dropped: every
						 * reason) */
	uint64_t fsyncs, fsync_errors;		/* fdatasyncs done; failed */
	uint64_t reopens;			/* reopens done (both logs tried each time) */
	uint64_t io_submits;			/* io_uring submits of the writer */
	uint64_t io_sqes;			/* SQEs they carried: writes and fdatasyncs */
	uint64_t io_both;			/* submits that carried both logs' writes */
};
/** A snapshot of the counters. Any thread; each counter is read once, not all at one
 * instant (a scrape under load may see a record as in flight). */
void gw_log_stats(const struct gw_log *l, struct gw_log_stats *out);

/** The log families of /metrics (tailgate_log_*, labelled by log and reason) into p. */
struct gw_prom;
void gw_log_prom(const struct gw_log *l, struct gw_prom *p);

/**
 * Write everything queued, then a last event line with each log's counts (produced,
 * written, lost by reason), fdatasync, stop the writer, close. Producers must have stopped
 * (their threads joined). Thread: the one that opened it. NULL ok.
 */
void gw_log_close(struct gw_log *l);

/* ---- control plane: a small HTTP server and Prometheus text ---- */

/**
 * Render the body for a GET of path into buf (cap bytes); set *len and *ctype.
 * Called on the HTTP server's thread. @return the HTTP status (200, 404, ...).
 */
typedef int (*gw_http_fn)(void *ctx, const char *path, char *buf, size_t cap, size_t *len,
			  const char **ctype);

struct gw_http;

/**
 * Serve GETs on "ADDR:PORT" (PORT 0: any free port, see gw_http_port()) with libmicrohttpd's
 * own thread. Bodies are rendered into a fresh buffer of buf_cap bytes per request (the
 * control path may allocate). @return 0 or -errno with err set.
 */
int gw_http_start(struct gw_http **out, const char *addr_port, gw_http_fn fn, void *ctx,
		  size_t buf_cap, struct tg_err *err);
uint16_t gw_http_port(const struct gw_http *h);
void gw_http_stop(struct gw_http *h);

/** Prometheus text exposition into a fixed buffer; overflow is sticky and reported. */
struct gw_prom {
	char *buf;
	size_t cap, len;
	bool overflow;
};
/** Append raw text (comments, JSON bodies) to p; overflow is sticky. */
void gw_prom_printf(struct gw_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** "# HELP" and "# TYPE" lines of a metric family. */
void gw_prom_family(struct gw_prom *p, const char *name, const char *type, const char *help);
/** src as a Prometheus label value (backslash, quote, newline escaped), cut to fit cap
 * bytes with its NUL; returns dst. */
const char *gw_prom_escape(char *dst, size_t cap, const char *src);
/** One sample: name{labels} value; labels without braces, may be NULL or "". */
void gw_prom_sample(struct gw_prom *p, const char *name, const char *labels, double v);

#endif
