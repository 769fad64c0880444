/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler: segments and their queues, batch formation, execution, exits, workers.
 * See sched.h for the policy. Everything is sized at sched_create(); taking, running and
 * answering a batch allocate nothing.
 */
#include "scheduler/sched.h"
#include "proto/proto.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	SCHED_MAX_BUCKETS = 14,		/* 1, 2, 4, ... 4096 */
	SCHED_END = 0xFFFF,		/* segment runs to the end of the model */
	SCHED_GUARD_NS = 200000,	/* dispatch this early before a deadline would break */
	SCHED_DONE_BURST = 64,		/* answers per done() call */
	SCHED_L_WHOLE = 0,		/* layouts: whole tails, */
	SCHED_L_SEG = 1,		/* segments */
	SCHED_CHOICE_MIN = 64,		/* arrivals between two choices of layout, at least */
};
#define SCHED_CHOICE_NS 500000000ull	/* and this long */
#define SCHED_CHOICE_RATE 1e9		/* requests/s the layouts are priced at: every batch full */
/* Weight of the newest arrival event in a queue's rate EWMAs: about the last 8 events, so
 * that a change of load shows within a few arrivals and one odd gap moves it by an eighth. */
#define SCHED_ARR_W 0.125

struct sched_seg {
	unsigned from, to;		/* split rows; to == SCHED_END: the tail to the outputs */
	int next;			/* segment a continuing sample moves to, -1 */
	struct sched_req *head, *tail;	/* FIFO */
	unsigned n;			/* queued */
	struct kern_tail *plans[SCHED_MAX_WORKERS];
	int out_idx[32];		/* plan output k -> model output index; -1: boundary */
	unsigned order[32];		/* plan outputs by the FLOPs to reach them */
	unsigned n_out;
	size_t in_floats;		/* per sample, input at 'from' */
	size_t bnd_floats;		/* per sample, tensor at 'to' */
	uint64_t est[SCHED_MAX_BUCKETS];	/* ns per batch, by bucket */
	uint64_t seed[SCHED_MAX_BUCKETS];	/* est as measured at start: what the choice of
						 * layout compares (both layouts measured alike;
						 * the unused one's est would not follow load) */
	/* Arrivals into the queue (devices', degraded ones', samples moving on from the
	 * segment before), by event: the requests entering at one instant. */
	uint64_t t_arr;			/* the last event */
	double arr_gap;			/* EWMA of the gaps between events, ns */
	double arr_k;			/* EWMA of the requests per event */
	unsigned arr_events;		/* events seen, counted to 2: a rate needs a gap */
};

struct sched_mod {
	struct sched_model_cfg cfg;
	const struct kern_model *m;
	struct sched_seg seg[SCHED_MAX_SEGMENTS];
	unsigned n_seg;
	bool served[256];		/* split row served (fixed at build: read unlocked) */
	int entry_of[2][256];		/* by layout: split row -> queue it enters, -1 */
	unsigned layout;		/* the layout arrivals enter now (SCHED_L_*) */
	bool both;			/* both layouts built: chosen at run time */
	unsigned first_seg;		/* seg[] index of the segments layout's first queue */
	double seen[256];		/* arrivals per split row since the last choice */
	double rate[256];		/* arrivals per second per split row, smoothed */
	double reach[32], answered[32];	/* samples each early exit was asked about, and
					 * answered (decayed at each choice) */
	uint64_t t_choice;		/* when the last choice was made */
	unsigned n_seen;		/* arrivals since */
	bool have_rate;			/* rate[] holds a first measurement */
	float conf[32];			/* per output; > 1 never */
	unsigned final_out;
	unsigned n_outputs;
	unsigned bucket[SCHED_MAX_BUCKETS];
	unsigned n_buckets;
	struct sched_degrade deg[SCHED_MAX_DEGRADE];	/* stand-ins by split, most accurate
							 * first within a split */
	uint8_t deg_lo[256], deg_n[256];	/* split row -> its stand-ins deg[lo..lo+n) */
};

struct sched {
	struct sched_cfg cfg;
	struct sched_mod *mod;
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* work arrived or stop */
	pthread_t thr[SCHED_MAX_WORKERS];
	unsigned n_thr;
	bool stop, draining;
	unsigned inflight;
	float *stage;			/* [max_inflight][stage_floats] */
	size_t stage_floats;
	int *stage_free;
	unsigned n_stage_free;
	struct sched_stats st;
	uint64_t busy_until[SCHED_MAX_WORKERS];	/* expected end of each worker's running
						 * batch's requests (their whole chain) */
	uint64_t hold_end[SCHED_MAX_WORKERS];	/* until when an arrival may wait in the RX
						 * ring while each worker's running batch runs
						 * (sched_hold_end()), 0 between batches;
						 * written under mu, read lock-free
						 * (sched_busy_ns) */
	struct sched_batch wb[SCHED_MAX_WORKERS];	/* the workers' own batches */
	struct sched_req **wreq;	/* their request arrays */
	unsigned max_batch;		/* over models */
};

static uint64_t
sched_now(const struct sched *s)
{
	return s->cfg.clock ? s->cfg.clock() : tg_now_ns();
}

/* Under the lock (the layout may change at run time): the queue a request at split enters. */
static int
sched_entry(const struct sched_mod *md, unsigned split)
{
	return md->entry_of[md->layout][split];
}

static unsigned
sched_bucket(const struct sched_mod *md, unsigned n)
{
	for (unsigned i = 0; i < md->n_buckets; i++)
		if (md->bucket[i] >= n)
			return i;
	return md->n_buckets - 1;
}

/* Time from entering segment q until the last segment finishes, at batch size n. */
static uint64_t
sched_remaining(const struct sched_mod *md, int q, unsigned n)
{
	unsigned b = sched_bucket(md, n ? n : 1);
	uint64_t t = 0;

	for (; q >= 0; q = md->seg[q].next)
		t += md->seg[q].est[b];
	return t;
}

/*
 * Under the lock, as a worker takes a batch of n (of max_batch) that should end at end: until
 * when a request arriving now may wait in an RX lcore's ring (sched_busy_ns(), the busy hint)
 * without starting later than had it been queued at once. If the batch is full (the load is
 * at capacity: more is on its way) or some queue is due by the end (a full batch queued, or
 * its oldest request's max_delay run out), the next batch starts at the end whatever
 * arrives, and a request delivered just before joins it: hold to the end. Otherwise the next
 * batch waits a max_delay from its first request's enqueue, and a request held in the ring
 * would start that wait only once delivered: the batch after every held one then started up
 * to a max_delay late (measured: docs/BENCHMARKS.md, "The busy hint at low load"). So it
 * must be delivered a max_delay (the longest of the models') before the end.
 */
static uint64_t
sched_hold_end(const struct sched *s, unsigned n, unsigned max_batch, uint64_t end)
{
	uint64_t delay = 0;

	if (n >= max_batch)
		return end;
	for (unsigned mi = 0; mi < s->cfg.n_models; mi++) {
		const struct sched_mod *md = &s->mod[mi];

		delay = md->cfg.max_delay_ns > delay ? md->cfg.max_delay_ns : delay;
		for (unsigned qi = 0; qi < md->n_seg; qi++) {
			const struct sched_seg *q = &md->seg[qi];

			if (q->n >= md->cfg.max_batch ||
			    (q->n != 0 && q->head->t_enqueue_ns + md->cfg.max_delay_ns <= end))
				return end;
		}
	}
	return end > delay ? end - delay : 0;
}

/* Time to run n requests queued at q to the end: full batches, then the rest. */
static uint64_t
sched_queue_work(const struct sched_mod *md, int q, unsigned n)
{
	unsigned mb = md->cfg.max_batch;
	uint64_t t = (uint64_t)(n / mb) * sched_remaining(md, q, mb);

	return n % mb ? t + sched_remaining(md, q, n % mb) : t;
}

/*
 * Under the lock: the work the workers have before them, all workers together: every
 * queue's to the end of its tail, and what the running batches still have to do.
 */
static uint64_t
sched_backlog(const struct sched *s, uint64_t now)
{
	uint64_t t = 0;

	for (unsigned m = 0; m < s->cfg.n_models; m++) {
		const struct sched_mod *md = &s->mod[m];

		for (unsigned q = 0; q < md->n_seg; q++)
			if (md->seg[q].n > 0)
				t += sched_queue_work(md, (int)q, md->seg[q].n);
	}
	for (unsigned w = 0; w < s->cfg.n_workers; w++)
		if (s->busy_until[w] > now)
			t += s->busy_until[w] - now;
	return t;
}

/*
 * Under the lock: when a request joining queue (mi, qi) now would finish if the workers ran
 * everything queued, earliest deadline first: the backlog (requests ahead of it, since
 * deadlines are mostly alike) with its queue one longer (its own batch), shared by the
 * workers. An estimate from the same online latencies as batching. backlog: from
 * sched_backlog() at now (one sum serves every queue a request is weighed for).
 */
static uint64_t
sched_finish_with(const struct sched *s, uint64_t backlog, unsigned mi, unsigned qi,
		  uint64_t now)
{
	const struct sched_mod *md = &s->mod[mi];
	unsigned n = md->seg[qi].n;

	backlog += sched_queue_work(md, (int)qi, n + 1) - (n ? sched_queue_work(md, (int)qi, n) : 0);
	return now + backlog / s->cfg.n_workers;
}

/* ---- build ---- */

static int
sched_cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* First split at which output e is already computed in the head: its exit boundary. */
static unsigned
sched_exit_boundary(const struct kern_model *m, unsigned n_splits, unsigned e)
{
	for (unsigned b = 0; b < n_splits; b++)
		if (!kern_model_output_in_tail(m, b, e))
			return b;
	return SCHED_END;
}

static int
sched_seg_plans(struct sched *s, struct sched_mod *md, struct sched_seg *sg, unsigned mi,
		struct tg_err *err)
{
	const struct kern_model *m = md->m;
	struct kern_plan_spec spec = {
		.kind = sg->to == SCHED_END ? KERN_PLAN_TAIL : KERN_PLAN_SEGMENT,
		.split = sg->from, .split_to = sg->to, .precision = md->cfg.precision,
		.calib = md->cfg.calib,
	};
	struct kern_plan *p;
	struct tg_tensor v;
	const char *name;
	int rc;

	for (unsigned w = 0; w < s->cfg.n_workers; w++) {
		rc = kern_tail_create(m, &spec, md->cfg.max_batch, &sg->plans[w], err);
		if (rc < 0)
			return tg_err_prefix(err, "model %u segment %u..%u: ", mi, sg->from, sg->to);
	}
	p = kern_tail_plan(sg->plans[0], 1);
	sg->n_out = kern_plan_n_outputs(p);
	if (sg->n_out > 32)
		return tg_err_set(err, -EINVAL, "model %u: more than 32 outputs", mi);
	for (unsigned k = 0; k < sg->n_out; k++) {
		kern_plan_output(p, k, &v, &name);
		sg->out_idx[k] = -1;
		for (unsigned o = 0; o < md->n_outputs; o++)
			if (strcmp(kern_model_output(m, o)->name, name) == 0)
				sg->out_idx[k] = (int)o;
		if (k == 0 && sg->to != SCHED_END) {
			sg->out_idx[0] = -1;	/* the boundary tensor, even if it is also an exit */
			sg->bnd_floats = tg_tensor_numel(&v);
		}
	}
	for (unsigned k = 0; k < sg->n_out; k++)
		sg->order[k] = k;
	for (unsigned k = 1; k < sg->n_out; k++)	/* insertion sort: a handful of exits */
		for (unsigned j = k; j > 0; j--) {
			int a = sg->out_idx[sg->order[j - 1]], c = sg->out_idx[sg->order[j]];
			uint64_t fa = a < 0 ? 0 : kern_model_output(m, (unsigned)a)->flops;
			uint64_t fc = c < 0 ? 0 : kern_model_output(m, (unsigned)c)->flops;

			if (fa <= fc)
				break;
			unsigned t = sg->order[j];

			sg->order[j] = sg->order[j - 1];
			sg->order[j - 1] = t;
		}
	kern_plan_input(p, 0, &v);
	sg->in_floats = tg_tensor_numel(&v);
	/* Seed the estimates: the last run of each bucket (the first warms caches). The
	 * choice of layout compares seeds of two layouts measured one after the other: the
	 * faster of the two later runs, what interference on a shared host inflates least
	 * (with the last run alone, resnet224's tied layouts came out up to 8% apart). */
	for (unsigned b = 0; b < md->n_buckets; b++) {
		struct kern_plan *pb = kern_tail_plan(sg->plans[0], md->bucket[b]);
		uint64_t t0;

		kern_plan_input(pb, 0, &v);
		memset(v.data, 0, tg_tensor_bytes(&v));
		sg->seed[b] = UINT64_MAX;
		for (int rep = 0; rep < 3; rep++) {
			t0 = tg_now_ns();
			if (kern_plan_run(pb) < 0)
				return tg_err_set(err, -EIO, "model %u: engine failed", mi);
			sg->est[b] = tg_now_ns() - t0;
			if (rep > 0 && sg->est[b] < sg->seed[b])
				sg->seed[b] = sg->est[b];
		}
	}
	return 0;
}

/*
 * The segments layout's cuts: the served splits (bounds[0..nb), sorted) and, after every
 * exit that can answer early, its boundary, so that its samples stop there. Sorted, each
 * once, into cuts[]. @return their count
 */
static unsigned
sched_seg_cuts(const struct sched_mod *md, unsigned n_splits, const unsigned *bounds,
	       unsigned nb, unsigned *cuts)
{
	unsigned tmp[2 * SCHED_MAX_SEGMENTS], n = nb, nc = 0;

	memcpy(tmp, bounds, nb * sizeof(tmp[0]));
	for (unsigned o = 0; o < md->n_outputs; o++) {
		unsigned b = sched_exit_boundary(md->m, n_splits, o);

		if (o == md->final_out || md->conf[o] > 1.f || b == SCHED_END || b <= bounds[0])
			continue;
		if (n < 2 * SCHED_MAX_SEGMENTS)
			tmp[n++] = b;
	}
	qsort(tmp, n, sizeof(tmp[0]), sched_cmp_uint);
	for (unsigned i = 0; i < n; i++)
		if (i == 0 || tmp[i] != tmp[i - 1])
			cuts[nc++] = tmp[i];
	return nc;
}

/* Append the whole tails layout: a queue per served split, running to the outputs. */
static void
sched_add_whole(struct sched_mod *md, const unsigned *bounds, unsigned nb)
{
	for (unsigned i = 0; i < nb; i++) {
		md->seg[md->n_seg] = (struct sched_seg){ .from = bounds[i], .to = SCHED_END,
							 .next = -1 };
		md->entry_of[SCHED_L_WHOLE][bounds[i]] = (int)md->n_seg++;
	}
}

/* Append the segments layout: a chain of queues from cut to cut; served splits enter it. */
static void
sched_add_segments(struct sched_mod *md, const unsigned *cuts, unsigned nc)
{
	md->first_seg = md->n_seg;
	for (unsigned i = 0; i < nc; i++) {
		md->seg[md->n_seg] = (struct sched_seg){ .from = cuts[i], .to = SCHED_END,
							 .next = -1 };
		if (i > 0) {
			md->seg[md->n_seg - 1].to = cuts[i];
			md->seg[md->n_seg - 1].next = (int)md->n_seg;
		}
		if (md->served[cuts[i]])
			md->entry_of[SCHED_L_SEG][cuts[i]] = (int)md->n_seg;
		md->n_seg++;
	}
}

/*
 * The queues of the layouts cfg.mode asks for: one, or (AUTO) both when they differ and fit,
 * whole tails first (where arrivals enter until the first choice: fewer batches and no
 * queueing between segments, the better layout on the shipped model without exits).
 */
static int
sched_model_layouts(struct sched *s, struct sched_mod *md, unsigned n_splits,
		    const unsigned *bounds, unsigned nb)
{
	unsigned cuts[2 * SCHED_MAX_SEGMENTS], nc = sched_seg_cuts(md, n_splits, bounds, nb, cuts);

	switch (s->cfg.mode) {
	case SCHED_MODE_WHOLE:
		sched_add_whole(md, bounds, nb);
		md->layout = SCHED_L_WHOLE;
		return 0;
	case SCHED_MODE_SEGMENTS:
		if (nc > SCHED_MAX_SEGMENTS)
			return -1;
		sched_add_segments(md, cuts, nc);
		md->layout = SCHED_L_SEG;
		return 0;
	default:
		sched_add_whole(md, bounds, nb);
		md->layout = SCHED_L_WHOLE;
		/* One cut: a single queue to the outputs either way. Too many: whole tails.
		 * int8: whole tails (sched.h: segments would change answers with the load). */
		if (nc > 1 && nb + nc <= SCHED_MAX_SEGMENTS &&
		    md->cfg.precision != KERN_PREC_INT8) {
			sched_add_segments(md, cuts, nc);
			md->both = true;
		}
		return 0;
	}
}

static int
sched_model_build(struct sched *s, unsigned mi, struct tg_err *err)
{
	struct sched_mod *md = &s->mod[mi];
	const struct sched_model_cfg *c = &s->cfg.models[mi];
	struct kern_model_info info;
	unsigned bounds[SCHED_MAX_SEGMENTS], nb = 0;
	uint64_t best = 0;
	int rc;

	md->cfg = *c;
	md->m = c->model;
	if (md->m == NULL || c->n_splits == 0 || c->splits == NULL)
		return tg_err_set(err, -EINVAL, "model %u: no model or no served splits", mi);
	if (c->max_batch < 1 || c->max_batch > 4096)
		return tg_err_set(err, -EINVAL, "model %u: max_batch %u not in 1..4096", mi,
				  c->max_batch);
	if (c->precision == KERN_PREC_INT8 && c->calib == NULL)
		return tg_err_set(err, -EINVAL, "model %u: int8 without a calibration", mi);
	if (c->batch_wait != SCHED_WAIT_ADAPTIVE && c->batch_wait != SCHED_WAIT_FIXED)
		return tg_err_set(err, -EINVAL, "model %u: batch_wait %d: adaptive or fixed", mi,
				  (int)c->batch_wait);
	kern_model_get_info(md->m, &info);
	md->n_outputs = info.n_outputs;
	if (info.n_outputs > 32 || info.n_splits > 256)
		return tg_err_set(err, -EINVAL, "model %u: too many outputs or splits", mi);
	for (unsigned o = 0; o < info.n_outputs; o++) {
		const struct kern_output *ko = kern_model_output(md->m, o);

		md->conf[o] = c->exit_conf ? c->exit_conf[o] : 2.f;
		if (o == 0 || ko->flops >= best) {
			best = ko->flops;
			md->final_out = o;
		}
	}
	for (unsigned b = 1;; b *= 2) {
		md->bucket[md->n_buckets++] = b < c->max_batch ? b : c->max_batch;
		if (b >= c->max_batch)
			break;
	}
	for (unsigned i = 0; i < 256; i++)
		md->entry_of[SCHED_L_WHOLE][i] = md->entry_of[SCHED_L_SEG][i] = -1;
	for (unsigned i = 0; i < c->n_splits; i++) {
		if (c->splits[i] >= info.n_splits)
			return tg_err_set(err, -EINVAL, "model %u: split %u: the model has %u", mi,
					  c->splits[i], info.n_splits);
		if (nb == SCHED_MAX_SEGMENTS)
			return tg_err_set(err, -EINVAL, "model %u: too many splits", mi);
		bounds[nb++] = c->splits[i];
		md->served[c->splits[i]] = true;
	}
	qsort(bounds, nb, sizeof(bounds[0]), sched_cmp_uint);
	for (unsigned i = 1; i < nb; i++)
		if (bounds[i] == bounds[i - 1])
			return tg_err_set(err, -EINVAL, "model %u: split %u served twice", mi, bounds[i]);
	if (sched_model_layouts(s, md, info.n_splits, bounds, nb) < 0)
		return tg_err_set(err, -EINVAL, "model %u: too many segments", mi);
	for (unsigned i = 0; i < md->n_seg; i++) {
		rc = sched_seg_plans(s, md, &md->seg[i], mi, err);
		if (rc < 0)
			return rc;
		if (md->seg[i].bnd_floats > s->stage_floats)
			s->stage_floats = md->seg[i].bnd_floats;
	}
	s->st.model_segments[mi] = md->layout == SCHED_L_SEG;
	md->t_choice = sched_now(s);
	return 0;
}

/* Stand-ins by split, then the most accurate first (ties: the cheaper tail first). */
static int
sched_cmp_degrade(const void *a, const void *b)
{
	const struct sched_degrade *x = a, *y = b;

	if (x->split != y->split)
		return x->split < y->split ? -1 : 1;
	if (x->accuracy_bp != y->accuracy_bp)
		return x->accuracy_bp > y->accuracy_bp ? -1 : 1;
	return x->to_model < y->to_model ? -1 : x->to_model > y->to_model;
}

/*
 * Model mi's stand-ins, checked and sorted into per-split ranges once, so admission only
 * walks a short list. Every model is built by now (the entry segments' input sizes).
 */
static int
sched_degrade_build(struct sched *s, unsigned mi, struct tg_err *err)
{
	struct sched_mod *md = &s->mod[mi];
	const struct sched_model_cfg *c = &s->cfg.models[mi];

	if (c->n_degrade == 0)
		return 0;
	if (c->degrade == NULL || c->n_degrade > SCHED_MAX_DEGRADE)
		return tg_err_set(err, -EINVAL, "model %u: 1..%d stand-ins", mi, SCHED_MAX_DEGRADE);
	for (unsigned k = 0; k < c->n_degrade; k++) {
		const struct sched_degrade *d = &c->degrade[k];
		const struct sched_mod *tm;
		int q, tq;

		if (d->to_model >= s->cfg.n_models || d->to_model == mi)
			return tg_err_set(err, -EINVAL, "model %u: stand-in %u: model %u", mi, k,
					  d->to_model);
		tm = &s->mod[d->to_model];
		q = sched_entry(md, d->split);
		tq = sched_entry(tm, d->to_split);
		if (q < 0 || tq < 0)
			return tg_err_set(err, -EINVAL, "model %u split %u: stand-in model %u split %u: "
					  "a split not served", mi, d->split, d->to_model,
					  d->to_split);
		if (md->seg[q].in_floats != tm->seg[tq].in_floats)
			return tg_err_set(err, -EINVAL, "model %u split %u: stand-in model %u split %u "
					  "takes %zu values, not %zu", mi, d->split, d->to_model,
					  d->to_split, tm->seg[tq].in_floats, md->seg[q].in_floats);
		if (d->accuracy_bp == 0 || d->accuracy_bp > 10000)
			return tg_err_set(err, -EINVAL, "model %u: stand-in model %u: accuracy %u not "
					  "in 1..10000", mi, d->to_model, d->accuracy_bp);
		md->deg[k] = *d;
	}
	qsort(md->deg, c->n_degrade, sizeof(md->deg[0]), sched_cmp_degrade);
	for (unsigned k = c->n_degrade; k-- > 0;) {
		md->deg_lo[md->deg[k].split] = (uint8_t)k;
		md->deg_n[md->deg[k].split]++;
	}
	return 0;
}

int
sched_create(const struct sched_cfg *cfg, struct sched **out, struct tg_err *err)
{
	struct sched *s;
	int rc;

	if (cfg->n_models == 0 || cfg->n_models > SCHED_MAX_MODELS || cfg->models == NULL)
		return tg_err_set(err, -EINVAL, "scheduler: 1..%d models", SCHED_MAX_MODELS);
	if (cfg->n_workers < 1 || cfg->n_workers > SCHED_MAX_WORKERS)
		return tg_err_set(err, -EINVAL, "scheduler: workers must be 1..%d", SCHED_MAX_WORKERS);
	if (cfg->queue_cap < 1 || cfg->max_inflight < 1 || cfg->max_inflight > (1u << 20))
		return tg_err_set(err, -EINVAL, "scheduler: queue_cap and max_inflight must be >= 1");
	if (cfg->done == NULL)
		return tg_err_set(err, -EINVAL, "scheduler: no done callback");
	if (cfg->mode > SCHED_MODE_SEGMENTS)
		return tg_err_set(err, -EINVAL, "scheduler: mode %d unknown", (int)cfg->mode);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	s->cfg = *cfg;
	pthread_mutex_init(&s->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	s->mod = calloc(cfg->n_models, sizeof(*s->mod));
	if (s->mod == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < cfg->n_models; i++) {
		rc = sched_model_build(s, i, err);
		if (rc < 0)
			goto fail;
		if (s->mod[i].cfg.max_batch > s->max_batch)
			s->max_batch = s->mod[i].cfg.max_batch;
	}
	for (unsigned i = 0; i < cfg->n_models; i++) {
		rc = sched_degrade_build(s, i, err);
		if (rc < 0)
			goto fail;
	}
	s->stage = malloc((size_t)cfg->max_inflight * (s->stage_floats ? s->stage_floats : 1) *
			  sizeof(float));
	s->stage_free = malloc(cfg->max_inflight * sizeof(int));
	s->wreq = calloc((size_t)cfg->n_workers * s->max_batch, sizeof(*s->wreq));
	if (s->stage == NULL || s->stage_free == NULL || s->wreq == NULL) {
		rc = tg_err_set(err, -ENOMEM, "scheduler: out of memory for %u in-flight requests",
				cfg->max_inflight);
		goto fail;
	}
	for (unsigned i = 0; i < cfg->max_inflight; i++)
		s->stage_free[s->n_stage_free++] = (int)(cfg->max_inflight - 1 - i);
	for (unsigned w = 0; w < cfg->n_workers; w++)
		s->wb[w].req = s->wreq + (size_t)w * s->max_batch;
	*out = s;
	return 0;

fail:
	sched_free(s);
	return rc;
}

/* ---- queues ---- */

/*
 * One more request enters q at now: the arrival EWMAs. Requests entering at one instant (a
 * submitted burst, the survivors of a batch moving on together) are one event of k, weighed
 * once: the rate is then arr_k / arr_gap, where a gap EWMA per request would read each burst
 * as k - 1 gaps of 0 (an endless rate right after it). The first event gives no gap: its
 * count seeds arr_k, and the rate is unknown (0) until a second.
 */
static void
sched_arrive(struct sched_seg *q, uint64_t now)
{
	double gap = (double)(now > q->t_arr ? now - q->t_arr : 0);

	if (q->arr_events > 0 && now == q->t_arr) {	/* the same event, one more */
		q->arr_k += q->arr_events > 1 ? SCHED_ARR_W : 1;
		return;
	}
	if (q->arr_events == 0) {
		q->arr_k = 1;
		q->arr_events = 1;
	} else {
		q->arr_gap = q->arr_events > 1 ? q->arr_gap + SCHED_ARR_W * (gap - q->arr_gap) : gap;
		q->arr_k += SCHED_ARR_W * (1 - q->arr_k);
		q->arr_events = 2;
	}
	q->t_arr = now;
}

/*
 * Requests per ns entering q, at now: the events' mean count over their mean gap, where the
 * gap open since the last event counts once it is the longer (traffic that stopped reads as
 * stopping at once, not at the next arrival). 0 before a gap was seen.
 */
static double
sched_arrival_rate(const struct sched_seg *q, uint64_t now)
{
	double open = (double)(now > q->t_arr ? now - q->t_arr : 0), gap;

	if (q->arr_events < 2)
		return 0;
	gap = q->arr_gap > open ? q->arr_gap : open;
	return q->arr_k / (gap > 1 ? gap : 1);
}

static void
sched_push(struct sched_seg *q, struct sched_req *r, uint64_t now)
{
	sched_arrive(q, now);
	r->next = NULL;
	r->prev = q->tail;
	r->t_enqueue_ns = now;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->n++;
}

/* The oldest request of a queue. */
static struct sched_req *
sched_pop(struct sched_seg *q)
{
	struct sched_req *r = q->head;

	if (r == NULL)
		return NULL;
	q->head = r->next;
	if (q->head == NULL)
		q->tail = NULL;
	else
		q->head->prev = NULL;
	q->n--;
	r->next = r->prev = NULL;
	return r;
}

/* The newest request of a queue. */
static struct sched_req *
sched_pop_tail(struct sched_seg *q)
{
	struct sched_req *r = q->tail;

	if (r == NULL)
		return NULL;
	q->tail = r->prev;
	if (q->tail == NULL)
		q->head = NULL;
	else
		q->tail->next = NULL;
	q->n--;
	r->next = r->prev = NULL;
	return r;
}

static void
sched_stats_answer(struct sched *s, const struct sched_req *r)
{
	if (r->status < 16)
		s->st.by_status[r->status]++;
	if (r->exit_taken < 16) {
		s->st.exits[r->exit_taken]++;
		s->st.model_exits[r->model][r->exit_taken]++;
	}
	s->st.completed++;
}

/* Under the lock: the request leaves the scheduler (its staging slot is freed). */
static void
sched_retire(struct sched *s, struct sched_req *r)
{
	if (r->stage >= 0) {
		s->stage_free[s->n_stage_free++] = r->stage;
		r->stage = -1;
	}
	s->inflight--;
	sched_stats_answer(s, r);
}

/* Outside the lock: reset r's results; the checks that need no queue state. */
static int
sched_check(const struct sched *s, struct sched_req *r)
{
	r->exit_taken = SCHED_NONE;
	r->n_top = 0;
	r->full_len = 0;
	r->batch_size = 0;
	r->queue_us = r->compute_us = 0;
	r->stage = -1;
	r->reason = PROTO_OK;
	r->asked_model = r->model;
	r->asked_split = r->split;
	r->degraded = false;
	if (r->model >= s->cfg.n_models)
		return r->status = PROTO_ST_UNKNOWN_MODEL;
	if (!s->mod[r->model].served[r->split])
		return r->status = PROTO_ST_UNKNOWN_SPLIT;
	if (r->dtype != TG_DT_F32 && r->dtype != TG_DT_F16 && r->dtype != TG_DT_S8 &&
	    r->dtype != TG_DT_U8)
		return r->status = PROTO_ST_BAD_REQUEST;
	return r->status = PROTO_ST_OK;
}

/*
 * Under the lock: r would be refused for time (DEADLINE_INFEASIBLE or backlog). Its
 * stand-ins, most accurate first: the first that meets its floor, has room and is predicted
 * to finish before r is due takes it (r's model and split become the stand-in's).
 * backlog: sched_backlog() at now when the caller has it, else UINT64_MAX (summed here
 * once, when a stand-in gets that far).
 * @return the stand-in's queue index, or -1 (none fits: refuse as before)
 */
static int
sched_degrade(struct sched *s, struct sched_req *r, uint64_t now, uint64_t backlog)
{
	const struct sched_mod *md = &s->mod[r->model];
	unsigned lo = md->deg_lo[r->split], n = md->deg_n[r->split];

	if (r->accuracy_floor_bp == 0)
		return -1;	/* the device never said what it accepts */
	for (unsigned k = lo; k < lo + n; k++) {
		const struct sched_degrade *c = &md->deg[k];
		const struct sched_mod *tm = &s->mod[c->to_model];
		int tq = sched_entry(tm, c->to_split);

		if (c->accuracy_bp < r->accuracy_floor_bp)
			break;	/* sorted: the rest are less accurate still */
		if (tm->seg[tq].n >= s->cfg.queue_cap ||
		    now + sched_remaining(tm, tq, 1) > r->deadline_ns)
			continue;
		if (backlog == UINT64_MAX)
			backlog = sched_backlog(s, now);
		if (sched_finish_with(s, backlog, c->to_model, (unsigned)tq, now) > r->due_ns)
			continue;
		r->model = c->to_model;
		r->split = c->to_split;
		r->degraded = true;
		s->st.degraded++;
		s->st.model_degraded[r->asked_model]++;
		return tq;
	}
	return -1;
}

/* Under the lock: admit r (checked) into its queue, or refuse it. @return its status. */
static int
sched_admit(struct sched *s, struct sched_req *r, uint64_t now)
{
	struct sched_mod *md = &s->mod[r->model];
	int qi = sched_entry(md, r->split), di;
	struct sched_seg *q = &md->seg[qi];
	uint64_t backlog = 0;

	r->t_arrival_ns = now;
	if (r->deadline_ns == 0)
		r->deadline_ns = now + md->cfg.default_deadline_ns;
	/* Plan against the deadline less 1/16 of the budget: the scheduler's clock starts
	 * when the RX lcore took the first chunk and stops before the answer is sent. */
	r->due_ns = r->deadline_ns;
	if (r->deadline_ns > now)
		r->due_ns -= (r->deadline_ns - now) / 16;
	s->st.submitted++;
	if (s->draining || s->inflight >= s->cfg.max_inflight || q->n >= s->cfg.queue_cap) {
		r->status = PROTO_ST_OVERLOADED;
		r->reason = PROTO_E_QUEUE_FULL;
	} else if (now + sched_remaining(md, qi, 1) > r->deadline_ns) {
		if ((di = sched_degrade(s, r, now, UINT64_MAX)) >= 0)
			goto take;
		r->status = PROTO_ST_DEADLINE_INFEASIBLE;	/* even alone on an idle gateway */
	} else if (sched_finish_with(s, backlog = sched_backlog(s, now), r->model, (unsigned)qi,
				     now) > r->due_ns) {
		if ((di = sched_degrade(s, r, now, backlog)) >= 0)
			goto take;
		/* Shed now, not at batch formation: it would only wait to expire, and a queue
		 * kept to what can finish in time is what lets the rest make their deadlines. */
		r->status = PROTO_ST_OVERLOADED;
		r->reason = PROTO_E_BACKLOG;
		s->st.shed_on_arrival++;
	} else {
		di = qi;
		goto take;
	}
	s->st.by_status[r->status]++;
	return r->status;

take:
	r->status = PROTO_ST_OK;
	r->seg = (uint8_t)di;
	s->inflight++;
	s->mod[r->model].seen[r->split] += 1;
	s->mod[r->model].n_seen++;
	sched_push(&s->mod[r->model].seg[di], r, now);
	return PROTO_ST_OK;
}

unsigned
sched_submit_burst(struct sched *s, struct sched_req **reqs, unsigned n)
{
	unsigned k = 0, i;
	uint64_t now;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&s->mu);
	now = sched_now(s);
	for (i = 0; i < n; i++) {
		struct sched_req *r = reqs[i];

		/* Decided and partitioned under the lock: once queued, r is a worker's, which
		 * may expire it and call done() at once; nothing reads it after the unlock. */
		if (sched_check(s, r) == PROTO_ST_OK && sched_admit(s, r, now) == PROTO_ST_OK) {
			reqs[i] = reqs[k];
			reqs[k++] = r;
		}
	}
	if (k > 1)
		pthread_cond_broadcast(&s->cv);
	else if (k == 1)
		pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return k;
}

int
sched_submit(struct sched *s, struct sched_req *r)
{
	struct sched_req *one = r;
	int st;

	/* Refused: r stays the caller's and its status is final. Taken: read nothing. */
	if (sched_submit_burst(s, &one, 1) == 1)
		return PROTO_ST_OK;
	st = r->status;
	return st;
}

/*
 * Outside the lock: hand a list of answered requests (linked by next) to done() in bursts,
 * so the producer does its per-answer work (advice, counters) once per batch.
 */
static void
sched_answer_list(struct sched *s, struct sched_req *list)
{
	struct sched_req *out[SCHED_DONE_BURST];
	unsigned n = 0;

	while (list != NULL) {
		out[n++] = list;
		list = list->next;
		if (n == SCHED_DONE_BURST || list == NULL) {
			s->cfg.done(s->cfg.ctx, out, n);
			n = 0;
		}
	}
}

/* Under the lock: r expired in its queue; answered (after the unlock) via *list. */
static void
sched_expire(struct sched *s, struct sched_req *r, uint64_t now, struct sched_req **list)
{
	r->status = PROTO_ST_DEADLINE_INFEASIBLE;
	r->queue_us = (uint32_t)((now - r->t_arrival_ns) / 1000);
	s->st.expired_in_queue++;
	sched_retire(s, r);
	r->next = *list;
	*list = r;
}

/*
 * A batch runs on the plan of the smallest bucket holding it: 40 samples cost what 64 do.
 * When deadlines cut a batch short of its bucket while requests still wait, and the bucket
 * below gives more samples per second, the extra requests go back where they came from (the
 * next batch may take them).
 */
static void
sched_trim_batch(const struct sched_mod *md, struct sched_seg *q, struct sched_batch *b,
		 bool lifo)
{
	unsigned bi = sched_bucket(md, b->n), lo;

	/* Only a batch cut short by deadlines: a queue emptied into it is better run whole. */
	if (bi == 0 || md->bucket[bi] == b->n || q->n == 0)
		return;
	lo = md->bucket[bi - 1];
	/* n / est(bucket) < lo / est(lower bucket), without division */
	if ((uint64_t)b->n * q->est[bi - 1] >= (uint64_t)lo * q->est[bi])
		return;
	while (b->n > lo) {
		struct sched_req *r = b->req[--b->n];

		if (lifo) {	/* back to the tail, newest last */
			r->prev = q->tail;
			r->next = NULL;
			if (q->tail)
				q->tail->next = r;
			else
				q->head = r;
			q->tail = r;
		} else {	/* back to the head, oldest first */
			r->prev = NULL;
			r->next = q->head;
			if (q->head)
				q->head->prev = r;
			else
				q->tail = r;
			q->head = r;
		}
		q->n++;
	}
}

/* Earliest deadline among a queue's requests. */
static uint64_t
sched_queue_dmin(const struct sched_seg *q)
{
	uint64_t d = UINT64_MAX;

	for (const struct sched_req *r = q->head; r; r = r->next)
		d = r->due_ns < d ? r->due_ns : d;
	return d;
}

/* Engine ns per sample of q's own segment in a batch of n (the bucket that runs it). */
static double
sched_per_sample(const struct sched_mod *md, const struct sched_seg *q, unsigned n)
{
	n = n ? n : 1;
	return (double)q->est[sched_bucket(md, n)] / n;
}

/*
 * Under the lock: the workers that the arrivals into every queue need at the least, each
 * queue's rate times its per-sample time in full batches (a ratio: 1.0 is a worker always
 * busy). What sched_wait_pays() charges every other queue.
 */
static double
sched_least_load(const struct sched *s, uint64_t now)
{
	double u = 0;

	for (unsigned mi = 0; mi < s->cfg.n_models; mi++) {
		const struct sched_mod *md = &s->mod[mi];

		for (unsigned qi = 0; qi < md->n_seg; qi++) {
			const struct sched_seg *q = &md->seg[qi];

			if (q->arr_events > 1)
				u += sched_arrival_rate(q, now) *
				     sched_per_sample(md, q, md->cfg.max_batch);
		}
	}
	return u;
}

/*
 * Under the lock (batch_wait ADAPTIVE): should q, holding n requests and not yet due
 * (short of max_batch, max_delay and its deadlines), wait for more? Asked for an idle worker.
 *
 * Waiting buys fuller batches, which run more samples per engine second; that is worth a
 * delay only when the engine needs it. Running batches of n back to back keeps up with q's
 * arrivals when lambda_q x est(n) / n, the share of a worker they need, fits beside what
 * every other queue needs at its cheapest (its arrivals in full batches: least, less q's own
 * part) within the workers there are. Then dispatching now costs no throughput: while this
 * batch runs, fewer than n arrive (with every worker's share counted), and if load grows the
 * queue builds up behind the busy workers and the next batches are larger by themselves. So
 * a lone request at low load goes at once (2 ms of max_delay at 120 requests/s was 92% of
 * its gateway time: docs/BENCHMARKS.md, "Advice"), and under load the queue waits, as with
 * the fixed wait, for the smallest batch that keeps up (or max_batch, max_delay, a deadline).
 * Not counted: the CPU that smaller batches cost the RX lcores and the rest of the host; an
 * operator who needs that back sets batch_wait = fixed.
 * If it waits, *wake is lowered to when the gap open since q's last arrival would make the
 * rate low enough (arrivals anywhere signal the workers, and other queues' rates only fall
 * meanwhile: a later look may find it due sooner).
 * @return true: let it wait
 */
static bool
sched_wait_pays(const struct sched *s, const struct sched_mod *md, const struct sched_seg *q,
		uint64_t now, double least, uint64_t *wake)
{
	double lam = sched_arrival_rate(q, now), own = sched_per_sample(md, q, q->n);
	double room = (double)s->cfg.n_workers -
		      (least - lam * sched_per_sample(md, q, md->cfg.max_batch));
	uint64_t t;

	if (lam * own < room)
		return false;
	if (room > 0 && own > 0 && q->arr_k > 0) {
		/* rate arr_k / open < room / own once open > arr_k x own / room */
		t = q->t_arr + (uint64_t)(q->arr_k * own / room) + 1;
		if (t > now && t < *wake)
			*wake = t;
	}
	return true;
}

bool
sched_take_batch(struct sched *s, unsigned worker, struct sched_batch *b, uint64_t *wake_ns)
{
	struct sched_req *expired = NULL;
	bool got = false;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		uint64_t now = sched_now(s), wake = UINT64_MAX, best_d = UINT64_MAX;
		double least = -1;	/* sched_least_load(), when a queue first asks */
		int bm = -1, bq = -1;

		for (unsigned mi = 0; mi < s->cfg.n_models; mi++) {
			struct sched_mod *md = &s->mod[mi];

			for (unsigned qi = 0; qi < md->n_seg; qi++) {
				struct sched_seg *q = &md->seg[qi];
				uint64_t dmin, rem, t_delay, t_dead;
				bool due;

				if (q->n == 0)
					continue;
				dmin = sched_queue_dmin(q);
				rem = sched_remaining(md, (int)qi, q->n) + SCHED_GUARD_NS;
				t_delay = q->head->t_enqueue_ns + md->cfg.max_delay_ns;
				t_dead = dmin > rem ? dmin - rem : 0;
				due = s->draining || q->n >= md->cfg.max_batch || now >= t_delay ||
				      now >= t_dead;
				if (!due && md->cfg.batch_wait == SCHED_WAIT_ADAPTIVE) {
					if (least < 0)
						least = sched_least_load(s, now);
					due = !sched_wait_pays(s, md, q, now, least, &wake);
				}
				if (due) {
					if (dmin < best_d || bm < 0) {
						best_d = dmin;
						bm = (int)mi;
						bq = (int)qi;
					}
				} else {
					wake = t_delay < wake ? t_delay : wake;
					wake = t_dead < wake ? t_dead : wake;
				}
			}
		}
		*wake_ns = wake;
		if (bm < 0)
			break;
		/*
		 * Form the batch. First answer what cannot finish even alone (oldest first):
		 * it takes no compute. Then take requests while the batch, one larger, still
		 * ends before every deadline in it; a request that would only make a smaller
		 * batch waits for the next. In queue order normally; newest first when more
		 * than a batch waits (overload): a FIFO then serves only requests that have
		 * waited nearly their whole deadline, and a little noise makes them late,
		 * while the newest have the slack to be answered in time; the old ones expire
		 * unrun. (Sizing the batch by the queue length instead let late arrivals grow
		 * it past the deadlines of the first.)
		 */
		struct sched_mod *md = &s->mod[bm];
		struct sched_seg *q = &md->seg[bq];
		uint64_t d_batch = UINT64_MAX, one = sched_remaining(md, bq, 1) + SCHED_GUARD_NS;
		bool lifo;

		b->model = (uint16_t)bm;
		b->seg = (uint8_t)bq;
		b->n = 0;
		while (!s->draining && q->head != NULL && now + one > q->head->due_ns)
			sched_expire(s, sched_pop(q), now, &expired);
		lifo = q->n > md->cfg.max_batch;
		while (b->n < md->cfg.max_batch && q->head != NULL) {
			struct sched_req *r = lifo ? q->tail : q->head;
			uint64_t d = r->due_ns < d_batch ? r->due_ns : d_batch;

			if (s->draining ||
			    now + sched_remaining(md, bq, b->n + 1) + SCHED_GUARD_NS <= d) {
				b->req[b->n++] = lifo ? sched_pop_tail(q) : sched_pop(q);
				d_batch = d;
				continue;
			}
			if (now + one <= r->due_ns)
				break;
			sched_expire(s, lifo ? sched_pop_tail(q) : sched_pop(q), now, &expired);
		}
		sched_trim_batch(md, q, b, lifo);
		if (b->n > 0) {
			uint64_t est = q->est[sched_bucket(md, b->n)];

			got = true;
			if (worker < SCHED_MAX_WORKERS) {
				s->busy_until[worker] = now + sched_remaining(md, bq, b->n);
				__atomic_store_n(&s->hold_end[worker],
						 est ? sched_hold_end(s, b->n, md->cfg.max_batch,
								      now + est) : 0,
						 __ATOMIC_RELAXED);
			}
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	sched_answer_list(s, expired);
	return got;
}

/* ---- the choice of layout (SCHED_MODE_AUTO) ---- */

/* The est[] entry for a batch of about n samples: the bucket that would run it. */
static uint64_t
sched_layout_est(const uint64_t *est, const unsigned *buckets, unsigned n_buckets, double n)
{
	for (unsigned i = 0; i < n_buckets; i++)
		if ((double)buckets[i] >= n - 1e-9)
			return est[i];
	return est[n_buckets - 1];
}

double
sched_layout_load(const struct sched_layout_queue *q, unsigned n, const unsigned *buckets,
		  unsigned n_buckets, uint64_t max_delay_ns, unsigned workers)
{
	double lam[SCHED_MAX_SEGMENTS] = { 0 }, nb[SCHED_MAX_SEGMENTS];
	double round = (double)(max_delay_ns ? max_delay_ns : 1), load = 0, top;

	if (n == 0 || n > SCHED_MAX_SEGMENTS || n_buckets == 0 || workers == 0)
		return 0;
	top = (double)buckets[n_buckets - 1];
	for (unsigned i = 0; i < n; i++) {	/* chain order: a queue feeds later ones only */
		lam[i] += q[i].arrivals;
		if (q[i].next > (int)i && q[i].next < (int)n)
			lam[q[i].next] += lam[i] * q[i].survive;
	}
	/* A round: every queue with arrivals runs one batch of what came during the last
	 * round (at least a max_delay's worth); rounds grow with the batches until they agree.
	 * Monotone from below, bounded by full batches: converges. */
	for (unsigned it = 0; it < 64; it++) {
		double work = 0, next;

		for (unsigned i = 0; i < n; i++) {
			nb[i] = lam[i] * round / 1e9;
			nb[i] = nb[i] < 1 ? 1 : nb[i] > top ? top : ceil(nb[i]);
			if (lam[i] > 0)
				work += (double)sched_layout_est(q[i].est, buckets, n_buckets, nb[i]);
		}
		next = work / workers;
		next = next > (double)max_delay_ns ? next : (double)max_delay_ns;
		if (next <= round * 1.001 && it > 0)
			break;
		round = next;
	}
	for (unsigned i = 0; i < n; i++)
		if (lam[i] > 0)
			load += lam[i] / nb[i] *
				(double)sched_layout_est(q[i].est, buckets, n_buckets, nb[i]);
	return load;
}

/*
 * Under the lock: engine ns per request of one layout of md, queues [lo, hi), at capacity:
 * the mix of splits seen, scaled to SCHED_CHOICE_RATE (sched_layout_load() then fills every
 * batch that matters). Below capacity both layouts keep up, and whole tails answer sooner
 * (no queue between segments): measured on resnet224 at 60% of saturation, segments' mean
 * batch 1.95 against 1.38 but p50 24 against 16 ms (docs/BENCHMARKS.md).
 */
static double
sched_layout_of(const struct sched *s, const struct sched_mod *md, unsigned l, unsigned lo,
		unsigned hi)
{
	struct sched_layout_queue t[SCHED_MAX_SEGMENTS];
	double total = 0;

	for (unsigned k = 0; k < 256; k++)
		total += md->served[k] ? md->rate[k] : 0;
	if (total <= 0)
		return 0;

	for (unsigned i = lo; i < hi; i++) {
		const struct sched_seg *g = &md->seg[i];
		double survive = 1;

		for (unsigned k = 0; k < g->n_out; k++) {
			int o = g->out_idx[k];

			if (o >= 0 && (unsigned)o != md->final_out && md->reach[o] > 0)
				survive *= 1 - md->answered[o] / md->reach[o];
		}
		t[i - lo] = (struct sched_layout_queue){
			.arrivals = md->entry_of[l][g->from] == (int)i
				? md->rate[g->from] / total * SCHED_CHOICE_RATE : 0,
			.next = g->next < 0 ? -1 : g->next - (int)lo,
			.survive = g->next < 0 ? 0 : survive, .est = g->seed,
		};
	}
	return sched_layout_load(t, hi - lo, md->bucket, md->n_buckets, md->cfg.max_delay_ns,
				 s->cfg.n_workers) / SCHED_CHOICE_RATE;
}

/*
 * Under the lock, after a batch of model mi: at most every SCHED_CHOICE_NS and
 * SCHED_CHOICE_MIN arrivals, the mix of arrivals per split (rates smoothed over two periods)
 * and the exits' answer shares (halved each time: recent traffic weighs most) priced in
 * both layouts at capacity; new arrivals go to the other layout when it is cheaper by the
 * margin. (Nothing to weigh yet, a zero price: no move.)
 */
static void
sched_choose(struct sched *s, unsigned mi, uint64_t now)
{
	struct sched_mod *md = &s->mod[mi];
	double dt, lw, ls;

	if (!md->both || md->n_seen < SCHED_CHOICE_MIN || now < md->t_choice + SCHED_CHOICE_NS)
		return;
	dt = (double)(now - md->t_choice) / 1e9;
	for (unsigned k = 0; k < 256; k++) {
		if (!md->served[k])
			continue;
		md->rate[k] = md->have_rate ? (md->rate[k] + md->seen[k] / dt) / 2 : md->seen[k] / dt;
		md->seen[k] = 0;
	}
	md->have_rate = true;
	md->n_seen = 0;
	md->t_choice = now;
	lw = sched_layout_of(s, md, SCHED_L_WHOLE, 0, md->first_seg);
	ls = sched_layout_of(s, md, SCHED_L_SEG, md->first_seg, md->n_seg);
	s->st.model_cost_ns[mi][0] = lw;
	s->st.model_cost_ns[mi][1] = ls;
	for (unsigned o = 0; o < md->n_outputs; o++) {
		md->reach[o] /= 2;
		md->answered[o] /= 2;
	}
	if (lw <= 0 || ls <= 0)
		return;
	if ((md->layout == SCHED_L_WHOLE && ls < lw * (1 - SCHED_LAYOUT_MARGIN)) ||
	    (md->layout == SCHED_L_SEG && lw < ls * (1 - SCHED_LAYOUT_MARGIN))) {
		md->layout = md->layout == SCHED_L_WHOLE ? SCHED_L_SEG : SCHED_L_WHOLE;
		s->st.model_segments[mi] = md->layout == SCHED_L_SEG;
		s->st.layout_switches++;
	}
}

/* ---- running a batch ---- */

/* Softmax top-k of one row of logits; returns the top probability. */
static float
sched_topk(const float *x, size_t n, unsigned k, uint32_t *cls, float *score, uint16_t *n_top)
{
	float mx = -INFINITY, sum = 0.f;

	for (size_t i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	for (size_t i = 0; i < n; i++)
		sum += expf(x[i] - mx);
	if (k > n)
		k = (unsigned)n;
	if (k > SCHED_MAX_TOPK)
		k = SCHED_MAX_TOPK;
	/* k is small: selection by repeated scan, no allocation. */
	for (unsigned j = 0; j < (k ? k : 1); j++) {
		size_t bi = 0;
		float bv = -INFINITY;

		for (size_t i = 0; i < n; i++) {
			bool taken = false;

			for (unsigned t = 0; t < j && k; t++)
				taken |= cls[t] == i;
			if (!taken && x[i] > bv) {
				bv = x[i];
				bi = i;
			}
		}
		if (k) {
			cls[j] = (uint32_t)bi;
			score[j] = expf(bv - mx) / sum;
		} else {
			*n_top = 0;
			return expf(bv - mx) / sum;
		}
	}
	*n_top = (uint16_t)k;
	return score[0];
}

static void
sched_answer(struct sched_req *r, unsigned exit_idx, const float *row, size_t n)
{
	r->status = PROTO_ST_OK;
	r->exit_taken = (uint8_t)exit_idx;
	sched_topk(row, n, r->top_k, r->top_cls, r->top_score, &r->n_top);
	if (r->full_out != NULL) {
		size_t c = n < r->full_cap ? n : r->full_cap;

		memcpy(r->full_out, row, c * sizeof(float));
		r->full_len = (uint32_t)c;
	}
}

/* The calling thread's CPU time, ns (0 if the clock is unavailable: counters then stay 0). */
static uint64_t
sched_thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
sched_run_batch(struct sched *s, unsigned worker, struct sched_batch *b)
{
	struct sched_mod *md = &s->mod[b->model];
	struct sched_seg *q = &md->seg[b->seg];
	struct kern_plan *p = kern_tail_plan(q->plans[worker], b->n);
	struct sched_req *answered = NULL;
	struct tg_tensor out[32];
	size_t per[32];
	uint64_t t0, dt, now, wall0, wall1, cpu0, cpu1;
	unsigned bi = sched_bucket(md, b->n), moved = 0;
	bool ok = p != NULL;

	for (unsigned i = 0; ok && i < b->n; i++) {
		struct sched_req *r = b->req[i];

		if (r->stage < 0)
			ok = kern_plan_load_rows(p, 0, i, 1, r->dtype, r->data, r->scale,
						 r->zero_point) == 0;
		else
			ok = kern_plan_load_rows(p, 0, i, 1, TG_DT_F32,
						 s->stage + (size_t)r->stage * s->stage_floats, 1,
						 0) == 0;
	}
	t0 = sched_now(s);
	wall0 = tg_now_ns();
	cpu0 = sched_thread_cpu_ns();
	if (ok)
		ok = kern_plan_run(p) == 0;
	cpu1 = sched_thread_cpu_ns();
	wall1 = tg_now_ns();
	now = sched_now(s);
	dt = now - t0;
	for (unsigned k = 0; ok && k < q->n_out; k++) {
		kern_plan_output(p, k, &out[k], NULL);
		per[k] = tg_tensor_numel(&out[k]) / (size_t)out[k].dims[0];
	}

	pthread_mutex_lock(&s->mu);
	if (worker < SCHED_MAX_WORKERS) {
		s->busy_until[worker] = 0;	/* what moved on is queued work again */
		__atomic_store_n(&s->hold_end[worker], 0, __ATOMIC_RELAXED);
	}
	s->st.batches++;
	s->st.samples_run += b->n;
	if (worker < SCHED_MAX_WORKERS) {
		s->st.engine_ns[worker] += wall1 - wall0;
		s->st.engine_cpu_ns[worker] += cpu1 - cpu0;
	}
	s->st.model_samples_run[b->model] += b->n;
	for (unsigned h = 0, v = 1; h < SCHED_BATCH_BUCKETS; h++, v *= 2)
		if (b->n <= v || h == SCHED_BATCH_BUCKETS - 1) {
			s->st.batch_hist[h]++;
			s->st.model_batch_hist[b->model][h]++;
			break;
		}
	if (ok)	/* EWMA with 1/4 on the new sample: follows a change of load in a few batches */
		q->est[bi] = q->est[bi] ? (3 * q->est[bi] + dt) / 4 : dt;
	for (unsigned i = 0; i < b->n; i++) {
		struct sched_req *r = b->req[i];
		bool answer = !ok;

		r->compute_us += (uint32_t)(dt / 1000);
		r->batch_size = (uint16_t)b->n;
		if (!ok)
			r->status = PROTO_ST_INTERNAL;
		/* Exits in this segment, cheapest first: the first confident one answers
		 * (unless the request wants the final exit only); the final exit always does. */
		for (unsigned j = 0; ok && !answer && j < q->n_out; j++) {
			unsigned k = q->order[j];
			int o = q->out_idx[k];
			const float *row;
			uint16_t nt;
			uint32_t c;
			float sc, top;

			if (o < 0)
				continue;
			row = (const float *)out[k].data + i * per[k];
			top = sched_topk(row, per[k], 0, &c, &sc, &nt);
			if ((unsigned)o == md->final_out || (!r->no_early_exit && top >= md->conf[o])) {
				sched_answer(r, (unsigned)o, row, per[k]);
				answer = true;
			}
			if ((unsigned)o != md->final_out && md->conf[o] <= 1.f) {
				md->reach[o] += 1;	/* what the choice of layout weighs */
				md->answered[o] += answer;
			}
		}
		if (!answer && q->next < 0) {	/* no final exit here: a model we mis-cut */
			r->status = PROTO_ST_INTERNAL;
			answer = true;
		}
		if (!answer) {
			/* On to the next segment, its tensor kept in a staging slot meanwhile
			 * (the pool holds one per in-flight request, so one is free). */
			if (r->stage < 0)
				r->stage = s->stage_free[--s->n_stage_free];
			memcpy(s->stage + (size_t)r->stage * s->stage_floats,
			       (const float *)out[0].data + i * per[0], per[0] * sizeof(float));
			r->seg = (uint8_t)q->next;
			sched_push(&md->seg[q->next], r, now);
			moved++;
			continue;
		}
		{
			uint64_t life = (now - r->t_arrival_ns) / 1000;

			r->queue_us = life > r->compute_us ? (uint32_t)(life - r->compute_us) : 0;
		}
		sched_retire(s, r);
		r->next = answered;
		answered = r;
	}
	if (moved)
		pthread_cond_broadcast(&s->cv);
	sched_choose(s, b->model, now);
	pthread_mutex_unlock(&s->mu);
	sched_answer_list(s, answered);
	return ok ? 0 : -EIO;
}

uint64_t
sched_busy_ns(const struct sched *s)
{
	uint64_t now = sched_now(s), first = UINT64_MAX;

	for (unsigned w = 0; w < s->cfg.n_workers && w < SCHED_MAX_WORKERS; w++) {
		uint64_t e = __atomic_load_n(&s->hold_end[w], __ATOMIC_RELAXED);

		if (e == 0)
			return 0;	/* this worker could take a request now */
		first = e < first ? e : first;
	}
	return first != UINT64_MAX && first > now + SCHED_GUARD_NS ? first - now - SCHED_GUARD_NS
								   : 0;
}

/* ---- workers ---- */


struct sched_worker_arg {
	struct sched *s;
	unsigned w;
};

/* Set once at worker start: done() runs on whichever thread finished the request. */
static _Thread_local unsigned sched_tls_worker = SCHED_NO_WORKER;

unsigned
sched_current_worker(void)
{
	return sched_tls_worker;
}

static void *
sched_worker(void *arg)
{
	struct sched *s = ((struct sched_worker_arg *)arg)->s;
	unsigned w = ((struct sched_worker_arg *)arg)->w;
	struct sched_batch *b = &s->wb[w];

	free(arg);
	sched_tls_worker = w;
	for (;;) {
		uint64_t wake;
		struct timespec ts;

		pthread_mutex_lock(&s->mu);
		s->st.worker_cpu_ns[w] = sched_thread_cpu_ns();
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		pthread_mutex_unlock(&s->mu);
		if (sched_take_batch(s, w, b, &wake)) {
			sched_run_batch(s, w, b);
			continue;
		}
		pthread_mutex_lock(&s->mu);
		if (!s->stop) {
			/* Sleep until a queue falls due, work arrives (submissions signal), or
			 * 10 ms at most; with every queue empty 100 ms: an idle gateway's
			 * workers wake 10 times a second (scripts/bench_idle.sh). */
			uint64_t now = tg_now_ns();
			uint64_t until = now + (wake == UINT64_MAX && !s->cfg.clock ? 100000000ull
										: 10000000ull);

			if (wake != UINT64_MAX && !s->cfg.clock && wake < until)
				until = wake > now ? wake : now;
			ts.tv_sec = (time_t)(until / 1000000000ull);
			ts.tv_nsec = (long)(until % 1000000000ull);
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* top -H, perf and /proc name it (15 characters at most); a failure only loses the name. */
static void
sched_name_thread(pthread_t t, unsigned w)
{
	char name[16];

	snprintf(name, sizeof(name), "tg-worker-%u", w % 1000u);
	pthread_setname_np(t, name);
}

int
sched_start(struct sched *s, struct tg_err *err)
{
	for (unsigned w = 0; w < s->cfg.n_workers; w++) {
		struct sched_worker_arg *a = malloc(sizeof(*a));
		int rc;

		if (a == NULL)
			return tg_err_set(err, -ENOMEM, "out of memory");
		a->s = s;
		a->w = w;
		rc = pthread_create(&s->thr[w], NULL, sched_worker, a);
		if (rc != 0) {
			free(a);
			return tg_err_set(err, -rc, "scheduler: worker thread: %s", strerror(rc));
		}
		sched_name_thread(s->thr[w], w);
		s->n_thr++;
	}
	return 0;
}

void
sched_stop(struct sched *s)
{
	if (s == NULL)
		return;
	if (s->n_thr) {
		/* Finish what was accepted: every queue is due while draining (bounded wait). */
		uint64_t give_up = tg_now_ns() + 10000000000ull;

		pthread_mutex_lock(&s->mu);
		s->draining = true;
		pthread_cond_broadcast(&s->cv);
		while (s->inflight > 0 && tg_now_ns() < give_up) {
			struct timespec ts = { 0, 0 };
			uint64_t t = tg_now_ns() + 5000000ull;

			ts.tv_sec = (time_t)(t / 1000000000ull);
			ts.tv_nsec = (long)(t % 1000000000ull);
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		for (unsigned w = 0; w < s->n_thr; w++)
			pthread_join(s->thr[w], NULL);
		s->n_thr = 0;
	}
	pthread_mutex_lock(&s->mu);
	s->draining = true;	/* nothing more is admitted */
	pthread_mutex_unlock(&s->mu);
	/* Anything still queued is answered, never dropped silently. */
	for (unsigned mi = 0; s->mod && mi < s->cfg.n_models; mi++)
		for (unsigned qi = 0; qi < s->mod[mi].n_seg; qi++) {
			struct sched_req *r, *left = NULL;

			while ((r = sched_pop(&s->mod[mi].seg[qi])) != NULL) {
				r->status = PROTO_ST_INTERNAL;
				sched_retire(s, r);
				r->next = left;
				left = r;
			}
			sched_answer_list(s, left);
		}
}

void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	sched_stop(s);
	for (unsigned mi = 0; s->mod && mi < s->cfg.n_models; mi++)
		for (unsigned qi = 0; qi < s->mod[mi].n_seg; qi++)
			for (unsigned w = 0; w < SCHED_MAX_WORKERS; w++)
				kern_tail_free(s->mod[mi].seg[qi].plans[w]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->mod);
	free(s->stage);
	free(s->stage_free);
	free(s->wreq);
	free(s);
}

void
sched_set_estimate(struct sched *s, unsigned model, unsigned seg, unsigned batch, uint64_t ns)
{
	struct sched_mod *md = &s->mod[model];

	pthread_mutex_lock(&s->mu);
	if (seg < md->n_seg)
		md->seg[seg].est[sched_bucket(md, batch)] = md->seg[seg].seed[sched_bucket(md, batch)] =
			ns;
	pthread_mutex_unlock(&s->mu);
}

/*
 * The advice's estimate for a request entering queue qi of md now (sched_estimate_splits()).
 *
 * Admission asks "can this one request finish in time": sched_finish_with() charges it the
 * whole backlog (one worker pool, earliest deadline first: everything queued runs before or
 * beside it) plus only its marginal work. Advice asks "where should a device send from", and
 * there that figure misleads: under load every queue sees the same backlog, a lighter tail
 * saves a request only its own compute, and joining a batch already forming costs less than
 * opening one on a lighter variant, so advice went back to the heavy base exactly when the
 * gateway needed devices off it. But the backlog is made of the devices' own choices, and
 * advice moves a device for all its next requests (and every device like it), not one
 * request: in the steady state the advice leads to, the work queued ahead of a request grows
 * with the per-sample work of the choices the devices make. So the wait is scaled by a
 * congestion term: wait now x (this tail's per-sample work at the batch size the load forms,
 * Q + 1 capped at max_batch) / (the mean per-sample work of what is queued now); its own
 * batch at that size is added. A choice as heavy as what is queued sees today's wait, one
 * half as heavy half of it: under load, lighter variants and deeper splits (less tail) win
 * by what they would really spare the gateway, and more so the longer the backlog; the
 * advisor's floor rules still decide who may move. With nothing queued (q_n 0) this is
 * admission's figure: the batch of one after what is running.
 * Under the lock; backlog, q_n and q_work: sched_backlog() at now, and the requests queued
 * and their work over every queue (sched_queued()).
 */
static uint64_t
sched_advice_estimate(const struct sched *s, unsigned mi, unsigned qi, uint64_t now,
		      uint64_t backlog, unsigned q_n, uint64_t q_work)
{
	const struct sched_mod *md = &s->mod[mi];
	unsigned b = q_n + 1 < md->cfg.max_batch ? q_n + 1 : md->cfg.max_batch;
	uint64_t own = sched_remaining(md, (int)qi, b);
	double wait, ratio;

	if (q_n == 0 || q_work == 0)
		return sched_finish_with(s, backlog, mi, qi, now) - now;
	wait = (double)backlog / s->cfg.n_workers;
	ratio = ((double)own / b) / ((double)q_work / q_n);
	return own + (uint64_t)(wait * ratio + 0.5);
}

/* Under the lock: requests queued over every queue, and their work to the ends of their
 * tails (the queued part of sched_backlog()). */
static void
sched_queued(const struct sched *s, unsigned *n, uint64_t *work)
{
	*n = 0;
	*work = 0;
	for (unsigned m = 0; m < s->cfg.n_models; m++) {
		const struct sched_mod *md = &s->mod[m];

		for (unsigned q = 0; q < md->n_seg; q++)
			if (md->seg[q].n > 0) {
				*n += md->seg[q].n;
				*work += sched_queue_work(md, (int)q, md->seg[q].n);
			}
	}
}

void
sched_estimate_splits(struct sched *s, unsigned model, const unsigned *splits, unsigned n,
		      uint64_t *out_ns)
{
	const struct sched_mod *md;
	uint64_t now, backlog, q_work;
	unsigned q_n;

	for (unsigned i = 0; i < n; i++)
		out_ns[i] = UINT64_MAX;
	if (model >= s->cfg.n_models)
		return;
	md = &s->mod[model];
	pthread_mutex_lock(&s->mu);
	now = sched_now(s);
	backlog = sched_backlog(s, now);
	sched_queued(s, &q_n, &q_work);
	for (unsigned i = 0; i < n; i++) {
		int qi = splits[i] < 256 ? sched_entry(md, splits[i]) : -1;

		if (qi >= 0)
			out_ns[i] = sched_advice_estimate(s, model, (unsigned)qi, now, backlog,
							  q_n, q_work);
	}
	pthread_mutex_unlock(&s->mu);
}

unsigned
sched_segments(const struct sched *s, unsigned model, unsigned *starts, unsigned max)
{
	const struct sched_mod *md = &s->mod[model];

	for (unsigned i = 0; i < md->n_seg && i < max; i++)
		starts[i] = md->seg[i].from;
	return md->n_seg;
}

void
sched_get_stats(struct sched *s, struct sched_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
}
