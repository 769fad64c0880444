/*
 * tailgate: the gateway daemon. Loads the model repository, opens the logs, brings up the
 * dataplane and the scheduler, and feeds completed requests from one to the other on the
 * main thread; workers answer through the done callback. A control-plane HTTP server gives
 * /metrics, /healthz and /v1/models. SIGTERM/SIGINT drain and exit 0; SIGHUP reopens the logs
 * and reloads the model repository without dropping requests.
 *
 *   tailgate [options] -- [EAL args]        (tailgate --help)
 *
 * Threads: main (feeder: dp_req_dequeue_burst -> sched_submit; refusals answered here), the
 * RX lcore(s) of the dataplane, the scheduler's workers (done callback), the log writer and
 * libmicrohttpd's thread (render callback, read-only on counters).
 */
#include "dataplane/dataplane.h"
#include "gateway/gateway.h"
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "util/util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	GW_BURST = 32,			/* requests per dequeue */
	GW_IDLE_SPIN = 64,		/* empty dequeues before the feeder sleeps */
	GW_IDLE_SLEEP_MIN_US = 50,	/* feeder's first sleep when idle, doubling up to */
	GW_IDLE_SLEEP_MAX_US = 800,	/* this: measured idle on af_packet, a fixed 200 us
					 * sleep cost 5% of a core; a core is compute */
	GW_HTTP_BUF = 1 << 18,		/* bytes of one rendered /metrics or /v1/models body */
	GW_N_LAT = 14,			/* latency histogram buckets, +Inf excluded */
	GW_N_ST = PROTO_ST__COUNT,
	GW_N_SLOTS = 2 * GW_MAX_MODELS,	/* model names counted, over reloads */
	GW_SLOT_UNKNOWN = GW_N_SLOTS,	/* requests for no served model */
};

/* Latency buckets, us: the tail runs in about a millisecond, deadlines are ~100 ms. */
static const uint32_t gw_lat_le_us[GW_N_LAT] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

struct gw;

/*
 * One generation of served models: a repository and the scheduler built on it. SIGHUP
 * builds the next one, the feeder switches to it, and the old one is freed once drained.
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
};

/* A request inside the scheduler: its sched_req and the dataplane request it answers. */
struct gw_pend {
	struct sched_req sr;
	struct gw_gen *gen;		/* the generation that took it */
	struct dp_req *dq;
	uint64_t t_submit_ns;		/* when the feeder handed it over (queue_us starts at the
					 * last chunk's arrival, per the wire spec) */
};

struct gw_lat {
	_Atomic uint64_t le[GW_N_LAT + 1];	/* per bucket, not cumulative; last: +Inf */
	_Atomic uint64_t sum_us, count;
};

struct gw {
	struct gw_config cfg;
	struct gw_gen *cur;		/* what the feeder submits to; changed by the main thread
					 * under gen_mu, read by the HTTP thread under gen_mu */
	pthread_mutex_t gen_mu;
	struct gw_log *log;
	struct dp *dp;
	struct gw_http *http;
	unsigned main_producer;		/* log ring of the main thread: 2 x workers */
	/* The request pool: sized by the dataplane's slot pool, so that a request the
	 * dataplane holds always finds one unless the scheduler holds them all. */
	struct gw_pend *pend;
	struct gw_pend **free_pend;
	unsigned n_pend, n_free;
	pthread_mutex_t pool_mu;	/* feeder takes, workers give back */
	/* Counters, read by the HTTP thread: [slot][status]; a slot per model name, kept
	 * across reloads so that counters never go back (names added under gen_mu). */
	_Atomic uint64_t req_by[GW_N_SLOTS + 1][GW_N_ST];
	char slot_name[GW_N_SLOTS][GW_NAME_MAX];
	unsigned n_slots;
	_Atomic uint64_t bad_reason[PROTO_REASON__COUNT];	/* refusals made by the feeder */
	struct gw_lat lat_queue, lat_compute;
	_Atomic uint64_t pool_empty;	/* requests refused for want of a pool entry */
	uint64_t taken;			/* requests dequeued (main thread only) */
	_Atomic uint64_t answered;	/* of those, handed back with dp_req_respond() */
};

static volatile sig_atomic_t gw_stop_flag, gw_hup_flag;

static void
gw_on_signal(int sig)
{
	if (sig == SIGHUP)
		gw_hup_flag = 1;
	else
		gw_stop_flag = 1;
}

/* ---- request pool ---- */

static struct gw_pend *
gw_pend_get(struct gw *g)
{
	struct gw_pend *p = NULL;

	pthread_mutex_lock(&g->pool_mu);
	if (g->n_free > 0)
		p = g->free_pend[--g->n_free];
	pthread_mutex_unlock(&g->pool_mu);
	return p;
}

static void
gw_pend_put(struct gw *g, struct gw_pend *p)
{
	pthread_mutex_lock(&g->pool_mu);
	g->free_pend[g->n_free++] = p;
	pthread_mutex_unlock(&g->pool_mu);
}

static unsigned
gw_pend_in_use(struct gw *g)
{
	unsigned n;

	pthread_mutex_lock(&g->pool_mu);
	n = g->n_pend - g->n_free;
	pthread_mutex_unlock(&g->pool_mu);
	return n;
}

/* ---- answering ---- */

/* Every answer goes back through here: taken = answered is the drain's proof. */
static void
gw_respond(struct gw *g, struct dp_req *dq)
{
	atomic_fetch_add_explicit(&g->answered, 1, memory_order_relaxed);
	dp_req_respond(dq);
}

static void
gw_lat_add(struct gw_lat *l, uint32_t us)
{
	unsigned b = 0;

	while (b < GW_N_LAT && us > gw_lat_le_us[b])
		b++;
	atomic_fetch_add_explicit(&l->le[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->count, 1, memory_order_relaxed);
}

/* Count an answer under its model's slot; model < 0: no served model. */
static void
gw_count(struct gw *g, const struct gw_gen *gen, int model, unsigned status)
{
	unsigned m = model < 0 ? GW_SLOT_UNKNOWN : gen->slot[model];

	if (status < GW_N_ST)
		atomic_fetch_add_explicit(&g->req_by[m][status], 1, memory_order_relaxed);
}

/* The access-log record of an answered request; producer p is the calling thread's ring. */
static void
gw_access(struct gw *g, unsigned p, const struct dp_req *dq, const struct gw_pend *pd)
{
	struct gw_access_rec a = { 0 };
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	a.t_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	a.client_id = dq->hdr.client_id;
	a.request_id = dq->hdr.request_id;
	a.bytes = dq->req.c.t.raw_total;
	a.queue_us = dq->resp.queue_us;
	a.compute_us = dq->resp.compute_us;
	a.model = dq->req.c.model_id;
	a.batch = dq->resp.batch_size;
	a.split = dq->req.c.split_id;
	a.dtype = dq->req.c.t.dtype;
	a.status = dq->resp.status;
	a.exit_taken = pd != NULL ? pd->sr.exit_taken : PROTO_NONE;
	gw_log_access(g->log, p, &a);
}

/*
 * Split advice for the device that sent dq (protocol.md 7.3): its HELLO profile against each
 * served split's head FLOPs, bytes in the dtype it sends, and the scheduler's queue + compute
 * estimate from there now. On every answer, refusals included; none without a profile.
 */
static void
gw_advice_fill(const struct gw_gen *gen, int mi, struct dp_req *dq)
{
	struct gw_split_est e[GW_MAX_SPLITS];
	uint64_t ns[GW_MAX_SPLITS];
	const struct gw_model *gm;
	struct gw_advice a;
	unsigned dsz = proto_dtype_size(dq->req.c.t.dtype);

	if (mi < 0 || gen == NULL || gen->sched == NULL ||
	    (dq->profile.compute_mflops == 0 && dq->profile.uplink_kbps == 0))
		return;
	gm = &gen->repo->models[mi];
	sched_estimate_splits(gen->sched, (unsigned)mi, gm->splits, gm->n_splits, ns);
	for (unsigned k = 0; k < gm->n_splits; k++) {
		const struct kern_split *sp = kern_model_split(gm->m, gm->splits[k]);

		e[k] = (struct gw_split_est){
			.split = (uint8_t)sp->index, .head_flops = sp->head_flops,
			.bytes = sp->numel * (dsz ? dsz : 4), .server_ns = ns[k] == UINT64_MAX ? 0 : ns[k],
			.accuracy_bp = gm->conf.accuracy_bp,
		};
	}
	gw_advise(&dq->profile, e, gm->n_splits, dq->req.c.split_id, &a);
	if (a.split == PROTO_NONE)
		return;
	dq->resp.advice_variant = 0;
	dq->resp.advice_split = a.split;
	dq->resp.advice_latency_us = a.latency_us;
}

/* Refuse a request on the feeder thread (never reached the scheduler). */
static void
gw_refuse(struct gw *g, int model, struct dp_req *dq, enum proto_status st, enum proto_reason r)
{
	dq->resp.status = (uint8_t)st;
	dq->resp.reason = (uint8_t)r;
	dq->resp.result_kind = PROTO_RES_NONE;
	gw_count(g, g->cur, model, st);
	gw_advice_fill(g->cur, model, dq);
	if (r < PROTO_REASON__COUNT)
		atomic_fetch_add_explicit(&g->bad_reason[r], 1, memory_order_relaxed);
	gw_access(g, g->main_producer, dq, NULL);
	gw_respond(g, dq);
}

/* Scheduler done callback: on a worker (or on sched_free()'s caller while draining). */
static void
gw_done(void *ctx, struct sched_req *r)
{
	struct gw_gen *gen = ctx;
	struct gw *g = gen->g;
	struct gw_pend *pd = r->owner;
	struct dp_req *dq = pd->dq;
	struct proto_response *resp = &dq->resp;
	unsigned w = sched_current_worker();
	uint64_t wait_ns = pd->t_submit_ns > dq->done_ns ? pd->t_submit_ns - dq->done_ns : 0;

	resp->status = r->status;
	resp->reason = r->status == PROTO_ST_OK ? PROTO_OK : resp->reason;
	resp->exit_taken = r->exit_taken;
	resp->batch_size = r->batch_size;
	resp->queue_us = r->queue_us + (uint32_t)(wait_ns / 1000);
	resp->compute_us = r->compute_us;
	if (r->status == PROTO_ST_OK && (dq->req.flags & PROTO_RF_WANT_TENSOR)) {
		/* The exit's output row, written over the input (gw_feed_one): f32 [1, n]. */
		struct proto_tensor t = { .dtype = PROTO_DT_F32, .ndim = 2,
					  .dims = { 1, r->full_len }, .scale = 1.0f,
					  .raw_total = r->full_len * (uint32_t)sizeof(float) };

		dp_req_set_tensor(dq, &t);
	} else if (r->status == PROTO_ST_OK && r->n_top > 0) {
		struct proto_topk e[SCHED_MAX_TOPK];

		for (unsigned i = 0; i < r->n_top; i++) {
			e[i].class_id = r->top_cls[i];
			e[i].score = r->top_score[i];
		}
		if (proto_response_set_topk(resp, dq->topk, e, r->n_top) < 0) {
			resp->status = PROTO_ST_INTERNAL;	/* cannot happen: n_top <= 16 */
			resp->result_kind = PROTO_RES_NONE;
		}
	} else {
		resp->result_kind = PROTO_RES_NONE;
	}
	gw_count(g, gen, r->model, resp->status);
	gw_advice_fill(gen, r->model, dq);
	if (r->status == PROTO_ST_OK) {
		gw_lat_add(&g->lat_queue, resp->queue_us);
		gw_lat_add(&g->lat_compute, resp->compute_us);
	}
	gw_access(g, w < g->cfg.workers ? gen->log_base + w : g->main_producer, dq, pd);
	gw_pend_put(g, pd);
	gw_respond(g, dq);
}

/* ---- the feeder ---- */

static int
gw_model_index(const struct gw *g, uint16_t id)
{
	for (unsigned i = 0; i < g->cur->repo->n; i++)
		if (g->cur->repo->models[i].conf.id == id)
			return (int)i;
	return -1;
}

/* dtype on the wire -> enum tg_dtype (their values agree for the four served types) */
static bool
gw_dtype_ok(uint8_t dt)
{
	return dt == PROTO_DT_F32 || dt == PROTO_DT_F16 || dt == PROTO_DT_S8 || dt == PROTO_DT_U8;
}

/*
 * The tensor is the split's: element count and bytes exact; a shape with the split's rank
 * must be its shape (batch dim 1); any other shape must at least hold numel elements.
 */
static bool
gw_shape_ok(const struct kern_split *sp, const struct proto_tensor *t)
{
	uint64_t n = 1;

	for (unsigned i = 0; i < t->ndim; i++)
		n *= t->dims[i];
	if (n != sp->numel || (uint64_t)t->raw_total != sp->numel * proto_dtype_size(t->dtype))
		return false;
	if (t->ndim == (unsigned)sp->ndim)
		for (int i = 0; i < sp->ndim; i++)
			if ((int64_t)t->dims[i] != sp->dims[i])
				return false;
	return true;
}

static void
gw_feed_one(struct gw *g, struct dp_req *dq)
{
	const struct proto_request *rq = &dq->req;
	const struct gw_model *gm;
	const struct kern_split *sp = NULL;
	struct gw_pend *pd;
	struct sched_req *sr;
	int mi, rc;
	unsigned row = rq->c.split_id, top_k;

	if (rq->c.model_id == PROTO_MODEL_ECHO) {
		/* Echo is the RX lcore's unless no_echo: answer it like it would. */
		if (rq->flags & PROTO_RF_WANT_TENSOR) {
			dp_req_set_tensor(dq, &rq->c.t);
		} else {
			dq->resp.result_kind = PROTO_RES_ECHO;
			dq->resp.echo_crc32c = proto_crc32c(0, dq->tensor, rq->c.t.raw_total);
			dq->resp.echo_bytes = rq->c.t.raw_total;
		}
		gw_count(g, g->cur, -1, PROTO_ST_OK);
		gw_respond(g, dq);
		return;
	}
	mi = gw_model_index(g, rq->c.model_id);
	if (mi < 0) {
		gw_refuse(g, -1, dq, PROTO_ST_UNKNOWN_MODEL, PROTO_OK);
		return;
	}
	gm = &g->cur->repo->models[mi];
	for (unsigned k = 0; rq->c.variant_id == 0 && k < gm->n_splits; k++)
		if (gm->splits[k] == row)
			sp = kern_model_split(gm->m, row);
	if (sp == NULL) {
		gw_refuse(g, mi, dq, PROTO_ST_UNKNOWN_SPLIT, PROTO_OK);
		return;
	}
	if (!gw_dtype_ok(rq->c.t.dtype) || !gw_shape_ok(sp, &rq->c.t)) {
		gw_refuse(g, mi, dq, PROTO_ST_BAD_REQUEST, PROTO_E_MODEL_SHAPE);
		return;
	}
	pd = gw_pend_get(g);
	if (pd == NULL) {
		atomic_fetch_add_explicit(&g->pool_empty, 1, memory_order_relaxed);
		gw_refuse(g, mi, dq, PROTO_ST_OVERLOADED, PROTO_E_QUEUE_FULL);
		return;
	}
	top_k = rq->top_k ? rq->top_k : gm->conf.top_k;
	sr = &pd->sr;
	memset(sr, 0, sizeof(*sr));
	pd->dq = dq;
	pd->gen = g->cur;
	sr->owner = pd;
	sr->model = (uint16_t)mi;
	sr->split = (uint8_t)row;
	sr->dtype = rq->c.t.dtype;	/* proto and tg dtypes agree for f32/f16/s8/u8 */
	sr->scale = rq->c.t.scale;
	sr->zero_point = rq->c.t.zero_point;
	sr->data = dq->tensor;
	if (rq->flags & PROTO_RF_WANT_TENSOR) {
		/* The exit's output goes over the input, read by then; the RX lcore chunks it. */
		sr->full_out = dq->tensor;
		sr->full_cap = dq->tensor_cap / (uint32_t)sizeof(float);
	}
	/* Deadlines run from the first chunk's arrival: reassembly time counts against them. */
	sr->deadline_ns = dq->first_ns + (rq->deadline_us ? (uint64_t)rq->deadline_us * 1000ull
				       : (uint64_t)gm->conf.deadline_ms * 1000000ull);
	sr->top_k = (uint16_t)(top_k < SCHED_MAX_TOPK ? top_k : SCHED_MAX_TOPK);
	sr->no_early_exit = (rq->flags & PROTO_RF_NO_EARLY_EXIT) != 0;
	pd->t_submit_ns = tg_now_ns();
	rc = sched_submit(g->cur->sched, sr);
	if (rc != PROTO_ST_OK) {
		gw_pend_put(g, pd);
		gw_refuse(g, mi, dq, (enum proto_status)rc, (enum proto_reason)sr->reason);
	}
}

/* Answer whatever the dataplane completed with st (shutdown); @return how many. */
static unsigned
gw_refuse_all(struct gw *g, enum proto_status st)
{
	struct dp_req *reqs[GW_BURST];
	unsigned n, total = 0;

	while ((n = dp_req_dequeue_burst(g->dp, reqs, GW_BURST)) > 0) {
		g->taken += n;
		for (unsigned i = 0; i < n; i++)
			gw_refuse(g, gw_model_index(g, reqs[i]->req.c.model_id), reqs[i], st,
				  PROTO_OK);
		total += n;
	}
	return total;
}

static void gw_reload(struct gw *g);

static void
gw_feed(struct gw *g)
{
	struct dp_req *reqs[GW_BURST];
	unsigned empty = 0, sleep_us = GW_IDLE_SLEEP_MIN_US;

	while (!gw_stop_flag) {
		unsigned n = dp_req_dequeue_burst(g->dp, reqs, GW_BURST);

		g->taken += n;
		for (unsigned i = 0; i < n; i++)
			gw_feed_one(g, reqs[i]);
		if (n > 0) {
			empty = 0;
			sleep_us = GW_IDLE_SLEEP_MIN_US;
			continue;
		}
		if (gw_hup_flag) {
			gw_hup_flag = 0;
			gw_log_reopen(g->log);
			gw_reload(g);
		}
		/* A short spin catches the next request of a burst; then sleep, longer the
		 * longer it stays idle, so the feeder does not take a core from the engine. */
		if (++empty > GW_IDLE_SPIN) {
			struct timespec idle = { 0, (long)sleep_us * 1000L };

			nanosleep(&idle, NULL);
			if (sleep_us < GW_IDLE_SLEEP_MAX_US)
				sleep_us *= 2;
		}
	}
}

/* ---- control plane ---- */


static void
gw_prom_counter(struct gw_prom *p, const char *name, const char *help, double v)
{
	gw_prom_family(p, name, "counter", help);
	gw_prom_sample(p, name, NULL, v);
}

static void
gw_prom_lat(struct gw_prom *p, const char *name, const char *help, struct gw_lat *l)
{
	char n2[128], lab[64];
	uint64_t cum = 0;

	gw_prom_family(p, name, "histogram", help);
	snprintf(n2, sizeof(n2), "%s_bucket", name);
	for (unsigned b = 0; b <= GW_N_LAT; b++) {
		cum += atomic_load_explicit(&l->le[b], memory_order_relaxed);
		if (b < GW_N_LAT)
			snprintf(lab, sizeof(lab), "le=\"%g\"", gw_lat_le_us[b] / 1e6);
		else
			snprintf(lab, sizeof(lab), "le=\"+Inf\"");
		gw_prom_sample(p, n2, lab, (double)cum);
	}
	snprintf(n2, sizeof(n2), "%s_sum", name);
	gw_prom_sample(p, n2, NULL, atomic_load(&l->sum_us) / 1e6);
	snprintf(n2, sizeof(n2), "%s_count", name);
	gw_prom_sample(p, n2, NULL, (double)atomic_load(&l->count));
}

/* Answers per exit, labelled by model, exit name and output index; and each threshold. */
static void
gw_render_exits(struct gw *g, struct gw_prom *p, const struct sched_stats *ss)
{
	const struct gw_repo *repo = g->cur->repo;
	char lab[512], mq[160], eq[160];

	gw_prom_family(p, "tailgate_exit_answers_total", "counter",
		       "requests answered by each exit (since the last reload)");
	for (unsigned i = 0; i < repo->n && i < SCHED_MAX_MODELS; i++) {
		struct kern_model_info info;

		kern_model_get_info(repo->models[i].m, &info);
		for (unsigned e = 0; e < info.n_outputs && e < 16; e++) {
			snprintf(lab, sizeof(lab), "model=\"%s\",exit=\"%s\",index=\"%u\"",
				 gw_prom_escape(mq, sizeof(mq), repo->models[i].conf.name),
				 gw_prom_escape(eq, sizeof(eq),
						kern_model_output(repo->models[i].m, e)->name), e);
			gw_prom_sample(p, "tailgate_exit_answers_total", lab,
				       (double)ss->model_exits[i][e]);
		}
	}
	gw_prom_family(p, "tailgate_exit_confidence", "gauge",
		       "softmax confidence at which an early exit answers (exits enabled only)");
	for (unsigned i = 0; i < repo->n; i++) {
		struct kern_model_info info;

		kern_model_get_info(repo->models[i].m, &info);
		for (unsigned e = 0; e < info.n_outputs; e++) {
			if (repo->models[i].exit_conf[e] > 1.f)
				continue;
			snprintf(lab, sizeof(lab), "model=\"%s\",exit=\"%s\",index=\"%u\"",
				 gw_prom_escape(mq, sizeof(mq), repo->models[i].conf.name),
				 gw_prom_escape(eq, sizeof(eq),
						kern_model_output(repo->models[i].m, e)->name), e);
			gw_prom_sample(p, "tailgate_exit_confidence", lab,
				       (double)repo->models[i].exit_conf[e]);
		}
	}
}

static void
gw_render_metrics(struct gw *g, struct gw_prom *p)
{
	struct dp_stats ds;
	struct sched_stats ss;
	struct gw_log_stats ls;
	char lab[512], mq[160];
	uint64_t cum = 0;

	dp_stats_get(g->dp, &ds);
	sched_get_stats(g->cur->sched, &ss);
	gw_log_stats(g->log, &ls);

	gw_prom_family(p, "tailgate_requests_total", "counter",
		       "requests answered, by model and status");
	for (unsigned m = 0; m <= g->n_slots; m++)
		for (unsigned s = 0; s < GW_N_ST; s++) {
			unsigned slot = m < g->n_slots ? m : GW_SLOT_UNKNOWN;
			uint64_t v = atomic_load_explicit(&g->req_by[slot][s], memory_order_relaxed);

			if (v == 0 && s != PROTO_ST_OK)
				continue;
			snprintf(lab, sizeof(lab), "model=\"%s\",status=\"%s\"",
				 gw_prom_escape(mq, sizeof(mq), m < g->n_slots ? g->slot_name[m] :
					       "unknown"), proto_status_name(s));
			gw_prom_sample(p, "tailgate_requests_total", lab, (double)v);
		}
	gw_prom_family(p, "tailgate_refusals_total", "counter",
		       "requests the gateway refused before the scheduler, by reason");
	for (unsigned r = 0; r < PROTO_REASON__COUNT; r++) {
		uint64_t v = atomic_load_explicit(&g->bad_reason[r], memory_order_relaxed);

		if (v == 0)
			continue;
		snprintf(lab, sizeof(lab), "reason=\"%s\"", proto_reason_name(r));
		gw_prom_sample(p, "tailgate_refusals_total", lab, (double)v);
	}
	gw_prom_counter(p, "tailgate_pool_empty_total",
			"requests answered OVERLOADED for want of a request entry",
			(double)atomic_load(&g->pool_empty));
	gw_prom_family(p, "tailgate_inflight", "gauge", "requests inside the scheduler");
	gw_prom_sample(p, "tailgate_inflight", NULL, (double)gw_pend_in_use(g));

	/* The scheduler's batch sizes: buckets 1, 2, 4, ... 4096 */
	gw_prom_family(p, "tailgate_batch_size", "histogram", "samples per engine batch");
	for (unsigned h = 0, v = 1; h < 13; h++, v *= 2) {
		cum += ss.batch_hist[h];
		snprintf(lab, sizeof(lab), "le=\"%u\"", v);
		gw_prom_sample(p, "tailgate_batch_size_bucket", lab, (double)cum);
	}
	gw_prom_sample(p, "tailgate_batch_size_bucket", "le=\"+Inf\"", (double)cum);
	gw_prom_sample(p, "tailgate_batch_size_sum", NULL, (double)ss.samples_run);
	gw_prom_sample(p, "tailgate_batch_size_count", NULL, (double)ss.batches);
	gw_prom_lat(p, "tailgate_queue_seconds",
		    "last chunk's arrival to its batch's start, less compute (OK answers)",
		    &g->lat_queue);
	gw_prom_lat(p, "tailgate_compute_seconds", "engine time of a request's batches (OK answers)",
		    &g->lat_compute);
	gw_prom_counter(p, "tailgate_model_generation", "model repository loads (1 + reloads)",
			(double)g->cur->id);
	gw_prom_counter(p, "tailgate_sched_submitted_total",
			"requests offered to the scheduler (since the last reload)",
			(double)ss.submitted);
	gw_prom_counter(p, "tailgate_sched_completed_total", "requests the scheduler answered",
			(double)ss.completed);
	gw_prom_counter(p, "tailgate_sched_expired_in_queue_total",
			"requests answered DEADLINE_INFEASIBLE at batch formation",
			(double)ss.expired_in_queue);
	gw_prom_counter(p, "tailgate_sched_shed_on_arrival_total",
			"requests answered OVERLOADED: their predicted finish was past the deadline",
			(double)ss.shed_on_arrival);
	gw_render_exits(g, p, &ss);
	{
		unsigned used, total;

		dp_slots_get(g->dp, &used, &total);
		gw_prom_family(p, "tailgate_dp_slots_in_use", "gauge",
			       "message (reassembly) slots held: reassembling, queued or computing");
		gw_prom_sample(p, "tailgate_dp_slots_in_use", NULL, (double)used);
		gw_prom_family(p, "tailgate_dp_slots", "gauge", "message slots in the pool");
		gw_prom_sample(p, "tailgate_dp_slots", NULL, (double)total);
	}

	gw_prom_family(p, "tailgate_dp_drops_total", "counter",
		       "dataplane drops by reason (see the comment line of each reason)");
	for (unsigned d = 0; d < DP_DROP__COUNT; d++) {
		gw_prom_printf(p, "# reason %s: %s\n", dp_drop_name((enum dp_drop)d),
		       dp_drop_help((enum dp_drop)d));
		snprintf(lab, sizeof(lab), "reason=\"%s\"", dp_drop_name((enum dp_drop)d));
		gw_prom_sample(p, "tailgate_dp_drops_total", lab, (double)ds.drop[d]);
	}
	gw_prom_family(p, "tailgate_proto_rejects_total", "counter",
		       "datagrams the wire decoder refused, by reason");
	for (unsigned r = 1; r < PROTO_REASON__COUNT; r++) {
		if (ds.proto.reject[r] == 0)
			continue;
		snprintf(lab, sizeof(lab), "reason=\"%s\"", proto_reason_name(r));
		gw_prom_sample(p, "tailgate_proto_rejects_total", lab, (double)ds.proto.reject[r]);
	}
#define GW_DP(f, help) gw_prom_counter(p, "tailgate_dp_" #f "_total", help, (double)ds.f)
	GW_DP(rx_pkts, "frames received from the port");
	GW_DP(tx_pkts, "frames the port took");
	GW_DP(rx_bytes, "bytes received");
	GW_DP(tx_bytes, "bytes sent");
	GW_DP(arp_replies, "ARP requests answered");
	GW_DP(icmp_replies, "ICMP echo requests answered");
	GW_DP(udp_rx, "datagrams to our port that passed IPv4/UDP checks");
	GW_DP(chunks_placed, "REQUEST chunks placed into their slot");
	GW_DP(msgs_opened, "messages given a reassembly slot");
	GW_DP(msgs_completed, "messages whose every chunk arrived");
	GW_DP(msgs_echoed, "messages answered by the echo model");
	GW_DP(msgs_delivered, "messages handed to the gateway");
	GW_DP(resp_sent, "RESPONSE datagrams sent");
	GW_DP(nacks_sent, "NACK datagrams sent");
	GW_DP(errors_sent, "ERROR datagrams sent");
	GW_DP(tensor_answers, "TENSOR RESPONSEs built (WANT_TENSOR), one or more chunks each");
	GW_DP(answers_resent, "kept answers resent to a duplicate of their request");
	GW_DP(resp_chunks_resent, "RESPONSE chunks resent (device NACKs, duplicate requests)");
	GW_DP(answers_lost, "kept tensor answers overwritten before their request was forgotten");
	GW_DP(idle_sleeps, "idle back-off sleeps of the RX lcores");
	GW_DP(port_missed, "frames the port dropped before RX");
#undef GW_DP
	gw_prom_counter(p, "tailgate_log_written_total", "log records written", (double)ls.written);
	gw_prom_counter(p, "tailgate_log_dropped_total", "log records dropped (ring full)",
			(double)ls.dropped);
	gw_prom_counter(p, "tailgate_log_write_errors_total", "log writes that failed",
			(double)ls.write_errors);
	gw_prom_counter(p, "tailgate_log_reopens_total", "log reopens (SIGHUP)", (double)ls.reopens);
}

static void
gw_render_models(struct gw *g, struct gw_prom *p)
{
	static const struct { const char *name; unsigned size; } dts[] = {
		{ "f32", 4 }, { "f16", 2 }, { "s8", 1 }, { "u8", 1 },
	};

	gw_prom_printf(p, "{\"generation\":%u,\"models\":[", g->cur->id);
	for (unsigned i = 0; i < g->cur->repo->n; i++) {
		const struct gw_model *gm = &g->cur->repo->models[i];
		struct kern_model_info info;

		kern_model_get_info(gm->m, &info);
		gw_prom_printf(p, "%s{\"id\":%u,\"name\":\"%s\",\"precision\":\"%s\",\"max_batch\":%u,"
		       "\"max_delay_us\":%u,\"deadline_ms\":%u,\"top_k\":%u,\"splits\":[",
		       i ? "," : "", gm->conf.id, gm->conf.name,
		       gm->conf.precision == KERN_PREC_INT8 ? "int8" : "f32", gm->conf.max_batch,
		       gm->conf.max_delay_us, gm->conf.deadline_ms, gm->conf.top_k);
		for (unsigned k = 0; k < gm->n_splits; k++) {
			const struct kern_split *sp = kern_model_split(gm->m, gm->splits[k]);

			gw_prom_printf(p, "%s{\"split_id\":%u,\"name\":\"%s\",\"shape\":[", k ? "," : "",
			       sp->index, sp->name);
			for (int d = 0; d < sp->ndim; d++)
				gw_prom_printf(p, "%s%lld", d ? "," : "", (long long)sp->dims[d]);
			gw_prom_printf(p, "],\"bytes\":{");
			for (unsigned t = 0; t < 4; t++)
				gw_prom_printf(p, "%s\"%s\":%llu", t ? "," : "", dts[t].name,
				       (unsigned long long)sp->numel * dts[t].size);
			gw_prom_printf(p, "}}");
		}
		gw_prom_printf(p, "],\"exits\":[");
		for (unsigned o = 0; o < info.n_outputs; o++) {
			const struct kern_output *ko = kern_model_output(gm->m, o);

			gw_prom_printf(p, "%s{\"index\":%u,\"name\":\"%s\"", o ? "," : "", o, ko->name);
			if (gm->exit_conf[o] <= 1.f)
				gw_prom_printf(p, ",\"confidence\":%.3f}", gm->exit_conf[o]);
			else
				gw_prom_printf(p, ",\"confidence\":null}");
		}
		gw_prom_printf(p, "]}");
	}
	gw_prom_printf(p, "]}\n");
}

static int
gw_http_render(void *ctx, const char *path, char *buf, size_t cap, size_t *len,
	       const char **ctype)
{
	struct gw *g = ctx;
	struct gw_prom p = { .buf = buf, .cap = cap };

	if (strcmp(path, "/metrics") == 0) {
		pthread_mutex_lock(&g->gen_mu);	/* a reload frees the old generation */
		gw_render_metrics(g, &p);
		pthread_mutex_unlock(&g->gen_mu);
		*ctype = "text/plain; version=0.0.4";
	} else if (strcmp(path, "/healthz") == 0) {
		gw_prom_printf(&p, "ok\n");
		*ctype = "text/plain";
	} else if (strcmp(path, "/v1/models") == 0) {
		pthread_mutex_lock(&g->gen_mu);
		gw_render_models(g, &p);
		pthread_mutex_unlock(&g->gen_mu);
		*ctype = "application/json";
	} else {
		gw_prom_printf(&p, "not found\n");
		*ctype = "text/plain";
		*len = p.len;
		return 404;
	}
	if (p.overflow) {
		*len = 0;
		return 500;
	}
	*len = p.len;
	return 200;
}

/* ---- startup ---- */

static void
gw_usage(FILE *f)
{
	fprintf(f,
		"usage: tailgate [options] -- [EAL args]\n"
		"Serve the tails of split DNNs from a model repository over UDP (DPDK).\n\n"
		"  -c, --config FILE         configuration file (key = value; README.md)\n"
		"  -a, --address A.B.C.D     the gateway's IPv4 address on the port (address)\n"
		"  -p, --port N              UDP port of the protocol (udp_port)\n"
		"  -m, --models DIR          the model repository (models)\n"
		"  -M, --metrics ADDR:PORT   control plane: /metrics /healthz /v1/models (metrics)\n"
		"  -w, --workers N           scheduler worker threads (workers)\n"
		"  -t, --engine-threads N    oneDNN threads, 0: all cores (engine_threads)\n"
		"  -A, --access-log FILE     JSON-lines access log (access_log)\n"
		"  -E, --event-log FILE      event log; empty: stderr (event_log)\n"
		"  -r, --ready FILE          create FILE once serving (for scripts)\n"
		"  -h, --help                this text\n\n"
		"Options override the file, which overrides the defaults. EAL needs a worker lcore\n"
		"per RX queue, e.g.: tailgate -c gw.conf -- -l 0-1 --vdev net_af_xdp0,iface=eth1\n"
		"Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reopens the logs and\n"
		"reloads the model repository (on error the loaded models keep serving).\n");
}

struct gw_opt_set {
	const char *opt;		/* long option name, for errors */
	const char *key;		/* config key it sets */
	const char *val;
};

/* Apply one option through the config parser, so it is checked like the file's key. */
static int
gw_apply_opt(struct gw_config *c, const char *opt, const char *key, const char *val,
	     struct tg_err *err)
{
	char line[GW_PATH_MAX + 64], name[64];
	int n;

	if (strchr(val, '\n') != NULL || strchr(val, '#') != NULL)
		return tg_err_set(err, -EINVAL, "--%s: '%s': no newline or '#' allowed", opt, val);
	n = snprintf(line, sizeof(line), "%s = %s\n", key, val);
	if (n < 0 || (size_t)n >= sizeof(line))
		return tg_err_set(err, -EINVAL, "--%s: value too long", opt);
	snprintf(name, sizeof(name), "option --%s", opt);
	return gw_config_parse(line, (size_t)n, name, c, err);
}

static int
gw_pool_init(struct gw *g, unsigned n, struct tg_err *err)
{
	g->pend = calloc(n, sizeof(*g->pend));
	g->free_pend = calloc(n, sizeof(*g->free_pend));
	if (g->pend == NULL || g->free_pend == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory for %u requests", n);
	for (unsigned i = 0; i < n; i++)
		g->free_pend[i] = &g->pend[n - 1 - i];
	g->n_pend = g->n_free = n;
	return 0;
}

/* Counter slot of a model name: found, or added (main thread, under gen_mu). */
static unsigned
gw_slot_of(struct gw *g, const char *name)
{
	unsigned i;

	for (i = 0; i < g->n_slots; i++)
		if (strcmp(g->slot_name[i], name) == 0)
			return i;
	if (g->n_slots == GW_N_SLOTS)
		return GW_SLOT_UNKNOWN;	/* 128 names over reloads: counted as unknown */
	pthread_mutex_lock(&g->gen_mu);
	snprintf(g->slot_name[i], GW_NAME_MAX, "%s", name);
	g->n_slots++;
	pthread_mutex_unlock(&g->gen_mu);
	return i;
}

/* Stop a generation's workers once what they accepted is answered, and free it. NULL ok. */
static void
gw_gen_free(struct gw_gen *gen)
{
	if (gen == NULL)
		return;
	sched_free(gen->sched);
	gw_repo_free(gen->repo);
	free(gen);
}

/*
 * Load the repository (io_uring reads; the summary on stderr) and build and start its
 * scheduler: plans built and measured here, on the calling thread, which takes seconds
 * for large models; requests completing meanwhile wait in the dataplane's ring.
 */
static int
gw_gen_build(struct gw *g, uint32_t id, struct gw_gen **out, struct tg_err *err)
{
	struct sched_cfg sc = { 0 };
	struct gw_gen *gen;
	int rc;

	gen = calloc(1, sizeof(*gen));
	if (gen == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	gen->g = g;
	gen->id = id;
	gen->log_base = (id % 2) * g->cfg.workers;
	rc = gw_repo_load(g->cfg.models_dir, &gen->repo, err);
	if (rc < 0)
		goto out_free;
	gw_repo_summary(gen->repo, stderr);
	for (unsigned i = 0; i < gen->repo->n; i++) {
		const struct gw_model *gm = &gen->repo->models[i];

		gen->slot[i] = gw_slot_of(g, gm->conf.name);
		gen->mc[i] = (struct sched_model_cfg){
			.model = gm->m,
			.precision = gm->conf.precision,
			.calib = gm->calib,
			.splits = gm->splits,
			.n_splits = gm->n_splits,
			.exit_conf = gm->exit_conf,
			.max_batch = gm->conf.max_batch,
			.max_delay_ns = (uint64_t)gm->conf.max_delay_us * 1000ull,
			.default_deadline_ns = (uint64_t)gm->conf.deadline_ms * 1000000ull,
		};
	}
	sc.models = gen->mc;
	sc.n_models = gen->repo->n;
	sc.queue_cap = g->cfg.queue_cap;
	sc.max_inflight = g->cfg.max_inflight;
	sc.n_workers = g->cfg.workers;
	sc.whole_tail = g->cfg.whole_tail;
	sc.done = gw_done;
	sc.ctx = gen;
	rc = sched_create(&sc, &gen->sched, err);
	if (rc < 0)
		goto out_repo;
	rc = sched_start(gen->sched, err);
	if (rc < 0)
		goto out_sched;
	*out = gen;
	return 0;

out_sched:
	sched_free(gen->sched);
out_repo:
	gw_repo_free(gen->repo);
out_free:
	free(gen);
	return rc;
}

/*
 * The catalog HELLO_REPLYs list: one entry per served (model, split), so a device learns
 * what to send (shape, dtypes, the work on each side) before its first request.
 */
static int
gw_catalog(struct gw *g, const struct gw_gen *gen, struct tg_err *err)
{
	const struct gw_repo *repo = gen->repo;
	struct proto_catalog_entry *e;
	unsigned n = 0;
	int rc;

	for (unsigned i = 0; i < repo->n; i++)
		n += repo->models[i].n_splits;
	e = calloc(n ? n : 1, sizeof(*e));
	if (e == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory for the catalog");
	n = 0;
	for (unsigned i = 0; i < repo->n; i++) {
		const struct gw_model *gm = &repo->models[i];
		struct kern_model_info info;
		const struct kern_output *fin;
		unsigned f = 0;

		kern_model_get_info(gm->m, &info);
		for (unsigned o = 1; o < info.n_outputs; o++)	/* final: most FLOPs, as sched */
			if (kern_model_output(gm->m, o)->flops >= kern_model_output(gm->m, f)->flops)
				f = o;
		fin = kern_model_output(gm->m, f);
		for (unsigned k = 0; k < gm->n_splits; k++) {
			const struct kern_split *sp = kern_model_split(gm->m, gm->splits[k]);
			struct proto_catalog_entry *c = &e[n++];
			uint64_t classes = 1;

			for (int d = 1; d < fin->ndim; d++)
				classes *= (uint64_t)fin->dims[d];
			c->model_id = gm->conf.id;
			c->split_id = (uint8_t)sp->index;
			c->ndim = (uint8_t)(sp->ndim < PROTO_MAX_DIMS ? sp->ndim : PROTO_MAX_DIMS);
			for (unsigned d = 0; d < c->ndim; d++)
				c->dims[d] = (uint32_t)sp->dims[d];
			c->dtype_mask = 1u << PROTO_DT_F32 | 1u << PROTO_DT_F16 | 1u << PROTO_DT_S8 |
					1u << PROTO_DT_U8;
			c->n_classes = (uint16_t)(classes <= UINT16_MAX ? classes : 0);
			c->head_kflop = (uint32_t)(sp->head_flops / 1000);
			c->tail_kflop = (uint32_t)(sp->tail_flops / 1000);
			c->accuracy_bp = gm->conf.accuracy_bp;
			for (unsigned o = 0; o < info.n_outputs; o++)
				c->n_exits += kern_model_output_in_tail(gm->m, sp->index, o);
			/* The wire's name is 15 characters and a NUL: longer names are cut. */
			_Static_assert(PROTO_NAME_LEN == 16, "name format below");
			snprintf(c->name, sizeof(c->name), "%.15s", gm->conf.name);
		}
	}
	rc = dp_catalog_set(g->dp, e, n, gen->id, err);
	free(e);
	return rc;
}

/*
 * SIGHUP: load the repository again into a new generation; the feeder switches to it (the
 * dataplane's RX lcores pause for the catalog change), then the old generation finishes
 * what it accepted and is freed. On any error the old generation keeps serving.
 */
static void
gw_reload(struct gw *g)
{
	struct tg_err err = { 0 };
	struct gw_gen *gen, *old = g->cur;

	gw_log_event(g->log, g->main_producer, "SIGHUP: logs reopened, reloading models from %s",
		     g->cfg.models_dir);
	if (gw_gen_build(g, old->id + 1, &gen, &err) < 0) {
		gw_log_event(g->log, g->main_producer, "reload failed, previous models kept: %s",
			     err.msg);
		return;
	}
	dp_stop(g->dp);
	if (gw_catalog(g, gen, &err) < 0) {
		gw_log_event(g->log, g->main_producer, "reload: catalog: %s (previous one kept)",
			     err.msg);
	}
	if (dp_start(g->dp, &err) < 0) {
		/* The port cannot serve: stop like on SIGTERM rather than hold requests. */
		gw_log_event(g->log, g->main_producer, "reload: dataplane restart: %s", err.msg);
		gw_stop_flag = 1;
	}
	pthread_mutex_lock(&g->gen_mu);
	g->cur = gen;
	pthread_mutex_unlock(&g->gen_mu);
	gw_gen_free(old);	/* drains: its done() answers through the old generation */
	gw_log_event(g->log, g->main_producer, "reload: generation %u serves %u model(s)",
		     gen->id, gen->repo->n);
}

static void
gw_touch(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f != NULL)
		fclose(f);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "models", required_argument, NULL, 'm' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "workers", required_argument, NULL, 'w' },
		{ "engine-threads", required_argument, NULL, 't' },
		{ "access-log", required_argument, NULL, 'A' },
		{ "event-log", required_argument, NULL, 'E' },
		{ "ready", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct gw gw;	/* static: the signal-free threads outlive main's frame */
	struct gw *g = &gw;
	struct gw_opt_set sets[16];
	unsigned n_sets = 0;
	struct dp_config dpd;
	struct tg_err err = { 0 };
	const char *conf_path = NULL, *ready = NULL;
	char **eal_argv = NULL;
	cpu_set_t cpus;
	bool have_cpus;
	struct sigaction sa;
	int opt, li, rc, eal_argc, status = 1;

	/* oneDNN's OpenMP threads must sleep, not spin, beside the RX lcore (kernels.h). */
	kern_prefer_passive_wait(argv);

	while ((opt = getopt_long(argc, argv, "+c:a:p:m:M:w:t:A:E:r:h", lopts, &li)) != -1) {
		const char *key = NULL;

		switch (opt) {
		case 'c': conf_path = optarg; continue;
		case 'r': ready = optarg; continue;
		case 'h': gw_usage(stdout); return 0;
		case 'a': key = "address"; break;
		case 'p': key = "udp_port"; break;
		case 'm': key = "models"; break;
		case 'M': key = "metrics"; break;
		case 'w': key = "workers"; break;
		case 't': key = "engine_threads"; break;
		case 'A': key = "access_log"; break;
		case 'E': key = "event_log"; break;
		default: gw_usage(stderr); return 2;
		}
		if (n_sets == sizeof(sets) / sizeof(sets[0])) {
			fprintf(stderr, "tailgate: too many options\n");
			return 2;
		}
		sets[n_sets].opt = NULL;
		for (unsigned k = 0; lopts[k].name != NULL; k++)
			if (lopts[k].val == opt)
				sets[n_sets].opt = lopts[k].name;
		sets[n_sets].key = key;
		sets[n_sets++].val = optarg;
	}

	/* Defaults, then the file, then the options. */
	dp_config_default(&dpd);
	gw_config_default(&g->cfg, &dpd);
	if (conf_path != NULL && gw_config_load(conf_path, &g->cfg, &err) < 0)
		goto out_err;
	for (unsigned i = 0; i < n_sets; i++)
		if (gw_apply_opt(&g->cfg, sets[i].opt, sets[i].key, sets[i].val, &err) < 0)
			goto out_err;
	if (gw_config_validate(&g->cfg, &err) < 0)
		goto out_err;
	g->main_producer = 2 * g->cfg.workers;	/* two generations' workers, then main */

	if (pthread_mutex_init(&g->pool_mu, NULL) != 0 ||
	    pthread_mutex_init(&g->gen_mu, NULL) != 0 ||
	    gw_pool_init(g, g->cfg.dp.limits.max_inflight_total, &err) < 0)
		goto out_pool;

	rc = gw_log_open(&g->log, g->cfg.access_log, g->cfg.event_log, g->main_producer + 1,
			 g->cfg.log_ring, g->cfg.fsync_ms, &err);
	if (rc < 0)
		goto out_pool;

	/* EAL pins the calling thread to its main lcore's CPU; threads created later inherit
	 * that. Give it back its CPUs after EAL init, so the scheduler's workers and oneDNN's
	 * threads use every core; only the RX lcores stay pinned. */
	have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
	eal_argc = argc - optind + 1;
	eal_argv = calloc((size_t)eal_argc + 1, sizeof(*eal_argv));
	if (eal_argv == NULL) {
		tg_err_set(&err, -ENOMEM, "out of memory");
		goto out_log;
	}
	eal_argv[0] = argv[0];
	for (int i = optind; i < argc; i++)
		eal_argv[i - optind + 1] = argv[i];
	rc = dp_eal_init(eal_argc, eal_argv, &err);
	if (rc < 0)
		goto out_log;
	if (have_cpus)
		pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	kern_set_threads(g->cfg.engine_threads);

	rc = dp_create(&g->dp, &g->cfg.dp, &err);
	if (rc < 0)
		goto out_eal;
	rc = gw_gen_build(g, 1, &g->cur, &err);
	if (rc < 0)
		goto out_dp;
	rc = gw_catalog(g, g->cur, &err);
	if (rc < 0)
		goto out_gen;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = gw_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	rc = dp_start(g->dp, &err);
	if (rc < 0)
		goto out_gen;
	if (g->cfg.metrics_addr[0] != '\0') {
		rc = gw_http_start(&g->http, g->cfg.metrics_addr, gw_http_render, g, GW_HTTP_BUF,
				   &err);
		if (rc < 0)
			goto out_stop;
	}
	gw_log_event(g->log, g->main_producer,
		     "tailgate: serving %u model(s) on %u queue(s), %u worker(s)%s%s",
		     g->cur->repo->n, dp_n_queues(g->dp), g->cfg.workers,
		     g->http ? ", control plane on " : "", g->http ? g->cfg.metrics_addr : "");
	if (g->http)
		fprintf(stderr, "tailgate: control plane on port %u\n", gw_http_port(g->http));
	if (ready != NULL)
		gw_touch(ready);

	gw_feed(g);

	/* Drain: the scheduler finishes what it accepted (its done() answers each), then
	 * whatever completed meanwhile is answered OVERLOADED; nothing is left unanswered. */
	gw_log_event(g->log, g->main_producer, "tailgate: stopping, draining %u request(s)",
		     gw_pend_in_use(g));
	gw_http_stop(g->http);
	g->http = NULL;
	sched_free(g->cur->sched);	/* the repository stays: refusals below name models */
	g->cur->sched = NULL;
	{
		/* Answer late completions; give the RX lcore time to send the answers (it
		 * drains its response ring on its own loop), bounded at 200 ms of quiet. */
		struct timespec t = { 0, 10 * 1000000L };
		struct dp_stats ds;
		unsigned late;

		for (unsigned quiet = 0, i = 0; quiet < 20 && i < 500; i++) {
			quiet = gw_refuse_all(g, PROTO_ST_OVERLOADED) ? 0 : quiet + 1;
			nanosleep(&t, NULL);
		}
		dp_stop(g->dp);
		/* Completed after the last look: answered for the books, never sent. */
		late = gw_refuse_all(g, PROTO_ST_OVERLOADED);
		dp_stats_get(g->dp, &ds);
		gw_log_event(g->log, g->main_producer,
			     "tailgate: stopped: %llu requests delivered by the dataplane, %llu taken, "
			     "%llu answered, %u after the port stopped",
			     (unsigned long long)ds.msgs_delivered, (unsigned long long)g->taken,
			     (unsigned long long)atomic_load(&g->answered), late);
	}
	status = 0;
out_stop:
	gw_http_stop(g->http);
	dp_stop(g->dp);
out_gen:
	gw_gen_free(g->cur);
out_dp:
	dp_destroy(g->dp);
out_eal:
	dp_eal_cleanup();
out_log:
	free(eal_argv);
	gw_log_close(g->log);
out_pool:
	free(g->pend);
	free(g->free_pend);
	if (status != 0 && err.code != 0)
		fprintf(stderr, "tailgate: %s\n", err.msg);
	return status;

out_err:
	fprintf(stderr, "tailgate: %s\n", err.msg);
	return 2;
}
