/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request path: the dataplane's deliver hook admits a burst of completed requests and
 * hands them to the scheduler in one call; the scheduler's done hook fills and sends the
 * answers of a batch. Every request is answered here, once: a refusal by the hook
 * (gw_path_refuse), a result or a late status by the done hook. Both run on the hot path
 * (an RX lcore, a worker): no allocation, no blocking beyond the scheduler's mutex (once
 * per burst), advice estimates fetched once per model per burst.
 */
#include "advisor/advisor.h"
#include "gateway/gw_int.h"
#include "kernels/kernels.h"

#include <string.h>
#include <time.h>

/* Latency buckets, us: the tail runs in about a millisecond, deadlines are ~100 ms. */
const uint32_t gw_lat_le_us[GW_N_LAT] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

/* A thread's log ring outside the workers': set (main, builder) or taken on first use. */
static _Thread_local unsigned gw_tls_producer = ~0u;

unsigned
gw_producer(struct gw *g, const struct gw_gen *gen)
{
	unsigned w = sched_current_worker();

	if (gen != NULL && w != SCHED_NO_WORKER && w < g->cfg.workers)
		return gen->log_base + w;
	if (gw_tls_producer == ~0u)
		gw_tls_producer = 2 * g->cfg.workers +
				  atomic_fetch_add_explicit(&g->next_producer, 1,
							    memory_order_relaxed);
	return gw_tls_producer;	/* past n_producers: gw_log_* refuse and count it */
}

void
gw_producer_set(struct gw *g, unsigned extra)
{
	gw_tls_producer = 2 * g->cfg.workers + extra;
}

/*
 * Advice candidates of one model (every served variant and split), with the scheduler's
 * estimates fetched once per burst (one lock per variant), and the candidates built for one
 * (dtype, exit policies) at a time: requests of a burst mostly share them.
 */
enum { GW_ADV_MAX = 128 };	/* (variant, split) rows of one model advised over */
enum { GW_ADV_BOTH = 2 };	/* exit policies offered: ADV_EXITS_ON, _OFF, or both */
struct gw_adv_cache {
	const struct gw_gen *gen;
	int model;			/* repo index of the base whose family is fetched; -1 */
	uint8_t dtype, exits;		/* what cand[] was built for; 0xFF none */
	unsigned n_rows, n;		/* (variant, split) rows; candidates built from them */
	uint64_t ns[GW_ADV_MAX];	/* per row: the gateway's estimate */
	uint64_t numel[GW_ADV_MAX];	/* ... its split tensor's elements */
	uint16_t acc_on[GW_ADV_MAX];	/* ... accuracy with early exits, without */
	uint16_t acc_off[GW_ADV_MAX];
	struct adv_cand row[GW_ADV_MAX];	/* ... variant, split, head FLOPs */
	struct adv_cand cand[2 * GW_ADV_MAX];
};

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

/* The access-log record of an answered request, on producer ring p. */
static void
gw_access(struct gw *g, unsigned p, const struct dp_req *dq, uint8_t exit_taken)
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
	a.exit_taken = exit_taken;
	a.variant = dq->req.c.variant_id;
	a.ran_variant = dq->resp.c.variant_id;	/* the request's unless degraded */
	a.ran_split = dq->resp.c.split_id;
	gw_log_access(g->log, p, &a);
}

/*
 * Accuracy of a variant's answers with its early exits on: the card's figure for the base
 * (accuracy_exits_bp); otherwise, with early exits configured, the least accurate exit that
 * may answer (a floor, not an estimate: no variant's mix is known); without, the final's.
 */
static uint16_t
gw_advice_acc_exits(const struct gw_model *vm)
{
	struct kern_model_info info;
	uint16_t lo = vm->accuracy_bp;

	if (vm->variant == 0 && vm->conf.accuracy_exits_bp != 0)
		return vm->conf.accuracy_exits_bp;
	kern_model_get_info(vm->m, &info);
	for (unsigned o = 0; o < info.n_outputs && o < GW_MAX_EXITS; o++) {
		uint16_t a = vm->conf.precision == KERN_PREC_INT8 && vm->acc_int8[o] ?
			     vm->acc_int8[o] : vm->acc_fp32[o];

		if (vm->exit_conf[o] > 1.f)
			continue;	/* never answers early */
		if (a == 0)
			return 0;	/* an exit of unknown accuracy may answer */
		if (a < lo)
			lo = a;
	}
	return lo;
}

/* The served (variant, split) rows of base's model, estimates from the scheduler, into c. */
static void
gw_advice_fetch(struct gw_adv_cache *c, const struct gw_gen *gen, int base)
{
	const struct gw_repo *r = gen->repo;
	uint16_t id = r->models[base].conf.id;

	c->gen = gen;
	c->model = base;
	c->dtype = c->exits = 0xFF;
	c->n_rows = 0;
	for (unsigned j = 0; j < r->n; j++) {
		const struct gw_model *vm = &r->models[j];
		uint16_t on;

		if (vm->conf.id != id || c->n_rows + vm->n_splits > GW_ADV_MAX)
			continue;
		on = gw_advice_acc_exits(vm);
		sched_estimate_splits(gen->sched, j, vm->splits, vm->n_splits, c->ns + c->n_rows);
		for (unsigned k = 0; k < vm->n_splits; k++, c->n_rows++) {
			const struct kern_split *sp = kern_model_split(vm->m, vm->splits[k]);

			c->numel[c->n_rows] = sp->numel;
			c->acc_on[c->n_rows] = on;
			c->acc_off[c->n_rows] = vm->accuracy_bp;	/* accuracy_bp, else card's */
			c->row[c->n_rows] = (struct adv_cand){
				.variant = vm->variant, .split = (uint8_t)sp->index,
				.head_flops = sp->head_flops,
			};
		}
	}
}

/*
 * Candidates for a device sending dtype dt (bytes per element), with exit policy ex
 * (ADV_EXITS_ON or _OFF: the only one it can be advised) or GW_ADV_BOTH. Exits on come first:
 * of two equally good, the gateway's default.
 */
static void
gw_advice_shape(struct gw_adv_cache *c, uint8_t dt, uint8_t ex)
{
	unsigned dsz = proto_dtype_size(dt);

	if (c->dtype == dt && c->exits == ex)
		return;
	c->n = 0;
	for (unsigned i = 0; i < c->n_rows; i++)
		for (uint8_t e = ADV_EXITS_ON; e <= ADV_EXITS_OFF; e++) {
			struct adv_cand *a = &c->cand[c->n];

			if (ex != GW_ADV_BOTH && e != ex)
				continue;
			*a = c->row[i];
			a->bytes = c->numel[i] * (dsz ? dsz : 4);
			a->server_ns = c->ns[i];
			a->exits = e;
			a->accuracy_bp = e == ADV_EXITS_ON ? c->acc_on[i] : c->acc_off[i];
			c->n++;
		}
	c->dtype = dt;
	c->exits = ex;
}

/*
 * Advice for the device that sent dq (protocol.md 7.3): its HELLO profile against every
 * served (variant, split) of the model it asked for, at the dtype it sends, with the
 * scheduler's queue + compute estimate from each (c: fetched once per model per burst).
 * Exit policies too for a device with a goal (the advice_flags are new to it); another keeps
 * its own. On every answer, refusals included; none without a profile.
 */
static void
gw_advice_fill(struct gw_adv_cache *c, const struct gw_gen *gen, int mi, struct dp_req *dq)
{
	const struct proto_hello *h = &dq->profile;
	uint8_t ex = (dq->req.flags & PROTO_RF_NO_EARLY_EXIT) ? ADV_EXITS_OFF : ADV_EXITS_ON;
	struct adv_device d = {
		.compute_mflops = h->compute_mflops, .uplink_kbps = h->uplink_kbps,
		.rtt_us = h->rtt_us, .slo_us = h->slo_us, .accuracy_floor_bp = h->accuracy_floor_bp,
		.head_uj_per_mflop = h->head_uj_per_mflop, .tx_pj_per_bit = h->tx_pj_per_bit,
		.goal = h->goal == PROTO_GOAL_ENERGY ? ADV_GOAL_ENERGY : ADV_GOAL_LATENCY,
	};
	struct adv_choice a;
	bool known;
	int base;

	if (mi < 0 || gen == NULL || gen->sched == NULL || !gen->g->cfg.advice ||
	    (h->compute_mflops == 0 && h->uplink_kbps == 0))
		return;
	base = gw_repo_find(gen->repo, gen->repo->models[mi].conf.id, 0, &known);
	if (base < 0)
		base = mi;
	if (c->gen != gen || c->model != base)
		gw_advice_fetch(c, gen, base);
	gw_advice_shape(c, dq->req.c.t.dtype, h->goal != PROTO_GOAL_NONE ? GW_ADV_BOTH : ex);
	adv_choose(&d, c->cand, c->n, dq->req.c.variant_id, dq->req.c.split_id, ex, &a);
	if (h->goal != PROTO_GOAL_NONE)
		dq->resp.advice_flags = (uint8_t)((a.fits ? 0 : PROTO_AF_NONE_FITS) |
			(a.exits == ADV_EXITS_OFF ? PROTO_AF_NO_EARLY_EXIT : 0));
	if (a.idx < 0)
		return;
	dq->resp.advice_variant = a.variant;
	dq->resp.advice_split = a.split;
	dq->resp.advice_latency_us = a.pred.latency_us;
}

/* Count, log and send an answer whose resp is filled: the one exit of every request. */
static void
gw_answer(struct gw *g, const struct gw_gen *gen, int model, struct dp_req *dq, unsigned p,
	  uint8_t exit_taken)
{
	unsigned m = model < 0 ? GW_SLOT_UNKNOWN : gen->slot[model];

	if (dq->resp.status < GW_N_ST)
		atomic_fetch_add_explicit(&g->req_by[m][dq->resp.status], 1, memory_order_relaxed);
	gw_access(g, p, dq, exit_taken);
	atomic_fetch_add_explicit(&g->answered, 1, memory_order_relaxed);
	dp_req_respond(dq);
}

/* Refuse a request the scheduler did not take (or that never reached it). */
static void
gw_path_refuse(struct gw *g, const struct gw_gen *gen, struct gw_adv_cache *c, int model,
	       struct dp_req *dq, enum proto_status st, enum proto_reason r, unsigned p)
{
	dq->resp.status = (uint8_t)st;
	dq->resp.reason = (uint8_t)r;
	dq->resp.result_kind = PROTO_RES_NONE;
	if (r < PROTO_REASON__COUNT && (unsigned)st < GW_N_ST && st != PROTO_ST_OK)
		atomic_fetch_add_explicit(&g->refused[st][r], 1, memory_order_relaxed);
	gw_advice_fill(c, gen, model, dq);
	gw_answer(g, gen, model, dq, p, PROTO_NONE);
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

/*
 * Admission, all of it in one place: the (model, variant) served (by wire ids), a served
 * split of that variant, a served dtype, the split's shape. Fills the scheduler's entry in dq->priv.
 * @return PROTO_ST_OK, or the status to refuse with (*reason set); *model: its index or -1
 */
static enum proto_status
gw_admit(const struct gw_gen *gen, struct dp_req *dq, int *model, enum proto_reason *reason)
{
	const struct proto_request *rq = &dq->req;
	struct gw_pend *pd = (struct gw_pend *)dq->priv;
	struct sched_req *sr = &pd->sr;
	const struct kern_split *sp = NULL;
	const struct gw_model *gm;
	unsigned row = rq->c.split_id, top_k;
	uint8_t dt = rq->c.t.dtype;
	bool known;
	int mi;

	*reason = PROTO_OK;
	*model = mi = gw_repo_find(gen->repo, rq->c.model_id, rq->c.variant_id, &known);
	if (mi < 0 && known) {
		/* The model is served: the refusal is counted under its base variant's name,
		 * where an operator looks for that model's traffic, not under "unknown". */
		*model = gw_repo_find(gen->repo, rq->c.model_id, 0, &known);
		*reason = PROTO_E_UNKNOWN_VARIANT;
		return PROTO_ST_UNKNOWN_SPLIT;
	}
	if (mi < 0)
		return PROTO_ST_UNKNOWN_MODEL;
	gm = &gen->repo->models[mi];
	for (unsigned k = 0; k < gm->n_splits; k++)
		if (gm->splits[k] == row)
			sp = kern_model_split(gm->m, row);
	if (sp == NULL)
		return PROTO_ST_UNKNOWN_SPLIT;
	/* Wire dtypes and enum tg_dtype agree for the four served types. */
	if ((dt != PROTO_DT_F32 && dt != PROTO_DT_F16 && dt != PROTO_DT_S8 && dt != PROTO_DT_U8) ||
	    !gw_shape_ok(sp, &rq->c.t)) {
		*reason = PROTO_E_MODEL_SHAPE;
		return PROTO_ST_BAD_REQUEST;
	}
	top_k = rq->top_k ? rq->top_k : gm->conf.top_k;
	memset(sr, 0, sizeof(*sr));
	pd->gen = (struct gw_gen *)gen;
	sr->owner = dq;
	sr->model = (uint16_t)mi;
	sr->split = (uint8_t)row;
	sr->dtype = dt;
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
	sr->accuracy_floor_bp = dq->profile.accuracy_floor_bp;	/* 0 without a HELLO profile */
	return PROTO_ST_OK;
}

/*
 * The deliver hook (dataplane.h), on an RX lcore: admit each request, submit the admitted
 * ones in one burst, answer the rest here (their answers leave with this lcore's next pass).
 * Stopping, everything is answered OVERLOADED: the scheduler is draining.
 */
void
gw_path_deliver(void *ctx, struct dp_req **reqs, unsigned n)
{
	struct gw *g = ctx;
	struct gw_gen *gen = atomic_load_explicit(&g->cur, memory_order_acquire);
	struct gw_adv_cache c;	/* not zeroed: 7 KB per burst; gen NULL marks it empty */
	struct sched_req *sr[64];
	unsigned p = gw_producer(g, NULL), m = 0, k;
	uint64_t now = tg_now_ns();
	bool stopping = atomic_load_explicit(&g->stopping, memory_order_acquire);

	c.gen = NULL;
	atomic_fetch_add_explicit(&g->taken, n, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++) {
		enum proto_reason r;
		enum proto_status st;
		int mi;

		st = gw_admit(gen, reqs[i], &mi, &r);
		if (st == PROTO_ST_OK && (stopping || m == sizeof(sr) / sizeof(sr[0]))) {
			st = PROTO_ST_OVERLOADED;
			r = PROTO_E_QUEUE_FULL;
		}
		if (st != PROTO_ST_OK) {
			gw_path_refuse(g, gen, &c, mi, reqs[i], st, r, p);
			continue;
		}
		((struct gw_pend *)reqs[i]->priv)->t_submit_ns = now;
		sr[m++] = &((struct gw_pend *)reqs[i]->priv)->sr;
	}
	k = sched_submit_burst(gen->sched, sr, m);
	for (; k < m; k++)
		gw_path_refuse(g, gen, &c, sr[k]->model, sr[k]->owner,
			       (enum proto_status)sr[k]->status, (enum proto_reason)sr[k]->reason, p);
}

/*
 * The busy hint (dataplane.h), on an RX lcore: how long the serving generation's workers
 * are all still computing, less what a request needs queued to be batched in time
 * (sched_busy_ns()). A reload's new generation has idle workers
 * until requests reach it: 0, the lcores back off as usual.
 */
uint64_t
gw_path_busy(void *ctx)
{
	struct gw *g = ctx;
	struct gw_gen *gen = atomic_load_explicit(&g->cur, memory_order_acquire);

	return gen != NULL ? sched_busy_ns(gen->sched) : 0;
}

/* The scheduler's results into the RESPONSE: status, timing, top-k or the output tensor. */
static void
gw_result_fill(const struct sched_req *r, struct dp_req *dq, uint64_t wait_ns)
{
	struct proto_response *resp = &dq->resp;

	resp->status = r->status;
	resp->reason = r->status == PROTO_ST_OK ? PROTO_OK : resp->reason;
	resp->exit_taken = r->exit_taken;
	resp->batch_size = r->batch_size;
	resp->queue_us = r->queue_us + (uint32_t)(wait_ns / 1000);
	resp->compute_us = r->compute_us;
	resp->result_kind = PROTO_RES_NONE;
	if (r->status == PROTO_ST_OK && (dq->req.flags & PROTO_RF_WANT_TENSOR)) {
		/* The exit's output row, written over the input (gw_admit): f32 [1, n]. */
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
	}
}

/*
 * r was answered by a stand-in (degrade instead of shed): the answer names the variant and
 * split that ran (docs/protocol.md 7.4), and the pair is counted. Only an OK answer ran:
 * one that expired in the stand-in's queue names the request's own.
 */
static void
gw_degraded(struct gw *g, const struct gw_gen *gen, const struct sched_req *r, struct dp_req *dq)
{
	unsigned a = r->asked_model < GW_MAX_MODELS ? gen->slot[r->asked_model] : GW_SLOT_UNKNOWN;
	unsigned b = r->model < GW_MAX_MODELS ? gen->slot[r->model] : GW_SLOT_UNKNOWN;

	dq->resp.c.variant_id = gen->repo->models[r->model].variant;
	dq->resp.c.split_id = r->split;
	if (a < GW_N_SLOTS && b < GW_N_SLOTS)
		atomic_fetch_add_explicit(&g->degraded[a][b], 1, memory_order_relaxed);
}

/* The scheduler's done hook: a batch's answers (or expired requests), on a worker. */
void
gw_path_done(void *ctx, struct sched_req **rs, unsigned n)
{
	struct gw_gen *gen = ctx;
	struct gw *g = gen->g;
	struct gw_adv_cache c;	/* not zeroed: 7 KB per burst; gen NULL marks it empty */
	unsigned p = gw_producer(g, gen);

	c.gen = NULL;
	for (unsigned i = 0; i < n; i++) {
		struct sched_req *r = rs[i];
		unsigned slot = r->model < GW_MAX_MODELS ? gen->slot[r->model] : GW_SLOT_UNKNOWN;
		struct dp_req *dq = r->owner;
		const struct gw_pend *pd = (const struct gw_pend *)dq->priv;
		uint64_t wait_ns = pd->t_submit_ns > dq->done_ns ? pd->t_submit_ns - dq->done_ns : 0;

		gw_result_fill(r, dq, wait_ns);
		if (r->degraded && r->status == PROTO_ST_OK)
			gw_degraded(g, gen, r, dq);
		gw_advice_fill(&c, gen, r->asked_model, dq);
		if (dq->resp.status == PROTO_ST_OK) {
			gw_lat_add(&g->lat_queue[slot], dq->resp.queue_us);
			gw_lat_add(&g->lat_compute[slot], dq->resp.compute_us);
		}
		gw_answer(g, gen, r->asked_model, dq, p, r->exit_taken);
	}
}
