/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The choice between whole tails and segments (SCHED_MODE_AUTO), from the scheduler's latency
 * estimates: sched_layout_load() on tables of estimates whose answer is known (the fixed point
 * of batch sizes at low load and at saturation; short tails whose per-batch cost dominates:
 * whole tails; an early exit answering most samples before a heavy remainder: segments; a
 * heavy shared tail that merged splits fill, below capacity: segments, at capacity: a tie),
 * then the scheduler itself on a fake
 * clock serving the multi-exit fixture with estimates set by hand: arrivals move to segments
 * when the exits answer early, stay on whole tails when they do not, forced modes never
 * move and build one layout, int8 stays whole, and every request is answered exactly once
 * across a switch.
 * Nothing here depends on this machine's speed.
 */
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "tests/harness.h"
#include "tests/sched_testkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE "tests/fixtures/multiexit/"
#define MS 1000000ull
enum { NB = 7, NOUT = 3, NREQ = 200 };

static const unsigned buckets[NB] = { 1, 2, 4, 8, 16, 32, 64 };

/* est[b] = fixed + per_sample x bucket, ns. */
static void
linear(uint64_t *est, double fixed_ms, double per_ms)
{
	for (unsigned i = 0; i < NB; i++)
		est[i] = (uint64_t)((fixed_ms + per_ms * buckets[i]) * 1e6);
}

static double
load(const struct sched_layout_queue *q, unsigned n)
{
	return sched_layout_load(q, n, buckets, NB, 2 * MS, 1);
}

/* One queue, known answers: alone at low load, full batches at saturation. */
static void
test_fixed_point(void)
{
	uint64_t e[NB];
	struct sched_layout_queue q = { .arrivals = 10, .next = -1, .est = e };
	double l;

	linear(e, 1, 1);	/* 2 ms alone, 65 ms for 64 */
	l = load(&q, 1);	/* 10/s x 2 ms max_delay: batches of 1 */
	TH_CHECK_MSG(fabs(l - 10 * 2e6) < 1, "low load: %g ns/s, want %g", l, 10 * 2e6);
	q.arrivals = 1e6;	/* far past saturation: full batches */
	l = load(&q, 1);
	TH_CHECK_MSG(fabs(l - 1e6 / 64 * 65e6) < 1e3, "saturation: %g ns/s", l);
	/* In between the batch grows with the round (800/s: 2, then 3 in bucket 4 taking 5 ms,
	 * then 4 per 5 ms round): cheaper per sample than alone. */
	q.arrivals = 800;
	l = load(&q, 1);
	TH_CHECK_MSG(fabs(l - 800 / 4.0 * 5e6) < 1, "800/s: %g ns/s", l);
	/* A chain passes on only what survives. */
	{
		uint64_t e2[NB];
		struct sched_layout_queue c[2] = {
			{ .arrivals = 10, .next = 1, .survive = 0.5, .est = e },
			{ .arrivals = 0, .next = -1, .est = e2 },
		};

		linear(e2, 0, 4);	/* 4 ms per sample */
		l = load(c, 2);
		TH_CHECK_MSG(fabs(l - (10 * 2e6 + 5 * 4e6)) < 1, "chain: %g ns/s", l);
	}
	TH_CHECK(sched_layout_load(&q, 0, buckets, NB, 2 * MS, 1) == 0);
}

/*
 * The shipped model's case (docs/BENCHMARKS.md): four splits, short tails whose per-batch
 * cost dominates, no exits. A split-0 request runs one batch whole, four in segments.
 */
static void
test_short_tails_keep_whole(void)
{
	uint64_t w[4][NB], g[4][NB];
	const double per[4] = { 0.15, 0.42, 0.40, 0.001 };	/* ms per sample per segment */
	struct sched_layout_queue whole[4], seg[4];

	for (unsigned rate = 50; rate <= 50000; rate *= 10) {
		for (unsigned i = 0; i < 4; i++) {
			double sum = 0;

			for (unsigned k = i; k < 4; k++)
				sum += per[k];
			linear(w[i], 0.3, sum);
			linear(g[i], 0.3, per[i]);
			whole[i] = (struct sched_layout_queue){ .arrivals = rate / 4.0, .next = -1,
								.est = w[i] };
			seg[i] = (struct sched_layout_queue){ .arrivals = rate / 4.0,
							      .next = i < 3 ? (int)i + 1 : -1,
							      .survive = 1, .est = g[i] };
		}
		TH_CHECK_MSG(load(whole, 4) < load(seg, 4), "%u/s: whole %g, segments %g", rate,
			     load(whole, 4), load(seg, 4));
	}
}

/* One split; an exit after a light first segment answers 75%; 3 ms more for the rest. */
static void
test_exits_pick_segments(void)
{
	uint64_t w[NB], g1[NB], g2[NB];
	struct sched_layout_queue whole = { .arrivals = 0, .next = -1, .est = w };
	struct sched_layout_queue seg[2] = {
		{ .next = 1, .survive = 0.25, .est = g1 },
		{ .next = -1, .est = g2 },
	};

	linear(w, 0.1, 4);
	linear(g1, 0.1, 1);
	linear(g2, 0.1, 3);
	for (double rate = 10; rate <= 1e5; rate *= 10) {
		whole.arrivals = seg[0].arrivals = rate;
		TH_CHECK_MSG(load(seg, 2) < load(&whole, 1) * (1 - SCHED_LAYOUT_MARGIN),
			     "%g/s: whole %g, segments %g", rate, load(&whole, 1), load(seg, 2));
	}
	/* No sample answered early: the same work in two batches, whole tails cheaper. */
	whole.arrivals = seg[0].arrivals = 1000;
	seg[0].survive = 1;
	TH_CHECK(load(&whole, 1) < load(seg, 2));
}

/*
 * A heavy tail shared by three splits whose batches amortise a large fixed cost: at a
 * moderate load per split, per-split queues run small batches, the merged last segment
 * larger ones (0.91 of whole tails' engine time here). At saturation every queue is full
 * and the two cost the same: what the choice of layout prices.
 */
static void
test_merging_a_heavy_shared_tail(void)
{
	uint64_t w[3][NB], g[3][NB];
	struct sched_layout_queue whole[3], seg[3];
	double lw, ls;

	for (unsigned i = 0; i < 3; i++) {
		linear(w[i], 20 * (3 - i), 1 * (3 - i));	/* 20 ms per batch per segment */
		linear(g[i], 20, 1);
		whole[i] = (struct sched_layout_queue){ .arrivals = 20, .next = -1, .est = w[i] };
		seg[i] = (struct sched_layout_queue){ .arrivals = 20, .next = i < 2 ? (int)i + 1 : -1,
						      .survive = 1, .est = g[i] };
	}
	lw = load(whole, 3);
	ls = load(seg, 3);
	TH_CHECK_MSG(ls < lw * 0.95, "20/s per split: whole %g, segments %g", lw, ls);
	for (unsigned i = 0; i < 3; i++)
		whole[i].arrivals = seg[i].arrivals = 1e6;
	lw = load(whole, 3);
	ls = load(seg, 3);
	TH_CHECK_MSG(fabs(lw - ls) < 1e-9 * lw, "saturation: whole %g, segments %g", lw, ls);
}

/* ---- the scheduler on the multi-exit fixture, fake clock ---- */

static unsigned answers[NREQ];
static void
on_done(void *ctx, struct sched_req **r, unsigned n)
{
	struct sched_req *base = ctx;

	for (unsigned i = 0; i < n; i++)
		answers[r[i] - base]++;
}

static struct kern_model *model;
static struct tg_tensor x;		/* model inputs, 8 samples */
static struct kern_calib *calib;	/* of x: serve() runs int8 when int8 is set */
static bool int8;

/*
 * Estimates by hand: every queue costs 1 ms per sample for each segment of the segments
 * layout it spans (a whole tail spans all those after its split), plus fixed_ms per batch.
 */
static void
set_estimates(struct sched *s, bool both, unsigned n_served, double fixed_ms, unsigned max_batch)
{
	unsigned starts[64], n = sched_segments(s, 0, starts, 64);
	unsigned first_seg = both ? n_served : 0;	/* AUTO: the whole tails come first */

	for (unsigned q = 0; q < n; q++) {
		unsigned span = 1;

		if (q < first_seg) {	/* a whole tail: the segments from its split on */
			span = 0;
			for (unsigned k = first_seg; k < n; k++)
				span += starts[k] >= starts[q];
		}
		for (unsigned b = 1; b <= max_batch; b *= 2)
			sched_set_estimate(s, 0, q, b, (uint64_t)((fixed_ms + span * b) * 1e6));
	}
}

/*
 * Serve the fixture at splits[] (in turn) in mode with the exits at th[] (NULL: none),
 * fixed_ms per batch in every estimate, batches of max_batch (a power of 2) at most: NREQ
 * requests in two waves, the second 600 ms later (the choice is due at its first batch).
 * out: the stats at the end; *n_queues the queues built; *seg_before whether arrivals
 * entered segments at the end of the first wave.
 */
static void
serve(enum sched_mode mode, const unsigned *splits, unsigned n_splits, const float *th,
      double fixed_ms, unsigned max_batch, struct sched_stats *out, unsigned *n_queues,
      bool *seg_before)
{
	struct sched_model_cfg mc = {
		.model = model, .splits = splits, .n_splits = n_splits, .exit_conf = th,
		.max_batch = max_batch, .max_delay_ns = 2 * MS, .default_deadline_ns = 5000 * MS,
		.precision = int8 ? KERN_PREC_INT8 : KERN_PREC_F32, .calib = int8 ? calib : NULL,
	};
	static struct sched_req r[NREQ];
	struct sched_cfg cfg = {
		.models = &mc, .n_models = 1, .queue_cap = NREQ, .max_inflight = NREQ,
		.n_workers = 1, .mode = mode, .done = on_done, .ctx = r, .clock = fake_clock,
	};
	struct kern_stage head[4] = { 0 };
	struct kern_outs h[4] = { 0 };
	const float *in[4] = { 0 };
	struct sched *s = NULL;
	struct tg_err err = { 0 };
	unsigned starts[64];

	memset(answers, 0, sizeof(answers));
	memset(out, 0, sizeof(*out));
	fake_now = 1000 * MS;
	TH_CHECK_MSG(sched_create(&cfg, &s, &err) == 0, "%s", err.msg);
	if (s == NULL)
		return;
	*n_queues = sched_segments(s, 0, starts, 64);
	set_estimates(s, mode == SCHED_MODE_AUTO, n_splits, fixed_ms, max_batch);
	for (unsigned k = 0; k < n_splits; k++) {
		head[k] = (struct kern_stage){ .m = model,
					       .spec = { .kind = KERN_PLAN_HEAD, .split = splits[k] } };
		if (splits[k] == 0) {
			in[k] = x.data;
			continue;
		}
		TH_CHECK_MSG(kern_stage_run(&head[k], 8, &x, &h[k], &err) == 0, "%s", err.msg);
		in[k] = h[k].n ? h[k].t[0].data : NULL;
	}
	for (unsigned i = 0; i < NREQ; i++) {
		unsigned k = i % n_splits;

		if (i == NREQ / 2) {	/* the second wave, after the choice's period */
			struct sched_stats st;

			run_until_idle(s);
			sched_get_stats(s, &st);
			*seg_before = st.model_segments[0];
			fake_now += 600 * MS;
		}
		if (in[k] == NULL)
			break;
		memset(&r[i], 0, sizeof(r[i]));
		r[i].split = (uint8_t)splits[k];
		r[i].dtype = TG_DT_F32;
		r[i].data = in[k] + (size_t)(i % 8) * kern_model_split(model, splits[k])->numel;
		r[i].top_k = 1;
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
		if (i % 40 == 39)
			run_until_idle(s);
	}
	run_until_idle(s);
	sched_get_stats(s, out);
	for (unsigned i = 0; i < NREQ; i++)
		TH_CHECK_MSG(answers[i] == 1 && r[i].status == PROTO_ST_OK,
			     "request %u answered %u times, status %u", i, answers[i], r[i].status);
	TH_CHECK(out->completed == NREQ);
	sched_free(s);
	for (unsigned k = 0; k < n_splits; k++) {
		kern_outs_free(&h[k]);
		kern_stage_free(&head[k]);
	}
}

/* exit1 answers every sample (threshold 0): the rest of the tail is work segments spare. */
static void
test_auto_moves_to_segments_when_exits_answer(void)
{
	const unsigned splits[1] = { 0 };
	const float th[NOUT] = { 0.f, 2.f, 2.f };
	struct sched_stats st;
	unsigned nq = 0;
	bool before = true;

	serve(SCHED_MODE_AUTO, splits, 1, th, 0.1, 64, &st, &nq, &before);
	TH_CHECK_MSG(nq >= 3, "%u queues: whole tails and segments both built", nq);
	TH_CHECK_MSG(!before, "entered segments before any choice");
	TH_CHECK_MSG(st.model_segments[0] && st.layout_switches == 1, "segments %d, switches %llu",
		     st.model_segments[0], (unsigned long long)st.layout_switches);
	TH_CHECK_MSG(st.model_cost_ns[0][1] < st.model_cost_ns[0][0], "predicted %g vs %g",
		     st.model_cost_ns[0][1], st.model_cost_ns[0][0]);
	TH_CHECK(st.exits[0] == NREQ);	/* the same answers in both layouts */
}

/*
 * No early exit, two splits, a large per-batch cost: at capacity (full batches, what the
 * choice prices) a split-0 request costs one batch's fixed cost whole, two in segments.
 * Whole tails stay.
 */
static void
test_auto_keeps_whole_without_exits(void)
{
	unsigned splits[2] = { 0, 0 };
	struct kern_model_info mi;
	struct sched_stats st;
	unsigned nq = 0;
	bool before = true;

	kern_model_get_info(model, &mi);
	splits[1] = mi.n_splits / 2;
	serve(SCHED_MODE_AUTO, splits, 2, NULL, 20, 64, &st, &nq, &before);
	TH_CHECK_MSG(nq == 4, "%u queues: 2 whole tails and 2 segments", nq);
	TH_CHECK_MSG(!st.model_segments[0] && st.layout_switches == 0, "segments %d, switches %llu",
		     st.model_segments[0], (unsigned long long)st.layout_switches);
	/* The choice was made (a prediction recorded), and favoured whole tails. */
	TH_CHECK_MSG(st.model_cost_ns[0][0] > 0 && st.model_cost_ns[0][0] < st.model_cost_ns[0][1],
		     "predicted whole %g, segments %g", st.model_cost_ns[0][0],
		     st.model_cost_ns[0][1]);
}

/* Forced modes build one layout and never move, whatever the exits answer. */
static void
test_forced_modes_never_move(void)
{
	const unsigned splits[1] = { 0 };
	const float th[NOUT] = { 0.f, 2.f, 2.f };
	struct sched_stats st;
	unsigned nq = 0;
	bool before = false;

	serve(SCHED_MODE_WHOLE, splits, 1, th, 0.1, 64, &st, &nq, &before);
	TH_CHECK_MSG(nq == 1 && !before && !st.model_segments[0] && st.layout_switches == 0,
		     "whole: %u queues, segments %d, switches %llu", nq, st.model_segments[0],
		     (unsigned long long)st.layout_switches);
	serve(SCHED_MODE_SEGMENTS, splits, 1, th, 0.1, 64, &st, &nq, &before);
	TH_CHECK_MSG(nq >= 2 && before && st.model_segments[0] && st.layout_switches == 0,
		     "segments: %u queues, switches %llu", nq,
		     (unsigned long long)st.layout_switches);
}

/*
 * int8 stays on whole tails under AUTO (segments requantize at their boundaries: answers
 * would change with the layout), with the traffic that moves f32 to segments.
 */
static void
test_auto_keeps_int8_whole(void)
{
	const unsigned splits[1] = { 0 };
	const float th[NOUT] = { 0.f, 2.f, 2.f };
	struct sched_stats st;
	unsigned nq = 0;
	bool before = true;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(kern_calib_create(model, &calib, &err) == 0 &&
		     kern_calib_observe(calib, &x, &err) == 0, "%s", err.msg);
	int8 = true;
	serve(SCHED_MODE_AUTO, splits, 1, th, 0.1, 64, &st, &nq, &before);
	int8 = false;
	TH_CHECK_MSG(nq == 1 && !before && !st.model_segments[0] && st.layout_switches == 0,
		     "int8: %u queues, segments %d, switches %llu", nq, st.model_segments[0],
		     (unsigned long long)st.layout_switches);
	kern_calib_free(calib);
	calib = NULL;
}

int
main(void)
{
	struct tg_err err = { 0 };
	struct tg_tensor f = { 0 };

	TH_RUN(test_fixed_point);
	TH_RUN(test_short_tails_keep_whole);
	TH_RUN(test_exits_pick_segments);
	TH_RUN(test_merging_a_heavy_shared_tail);
	if (kern_model_load(FIXTURE "model.onnx", NULL, &model, &err) < 0 ||
	    tg_npy_load(FIXTURE "input.npy", 1 << 20, &f, &err) < 0) {
		fprintf(stderr, "fixture: %s\n", err.msg);
		th_failed++;
		TH_DONE();
	}
	x = (struct tg_tensor){ .dtype = TG_DT_F32, .ndim = 4, .dims = { 8, 1, 28, 28 } };
	if (tg_tensor_alloc(&x) < 0)
		return 1;
	for (size_t i = 0; i < tg_tensor_numel(&x); i++)
		((float *)x.data)[i] = ((const float *)f.data)[i % tg_tensor_numel(&f)];
	tg_tensor_free(&f);
	TH_RUN(test_auto_moves_to_segments_when_exits_answer);
	TH_RUN(test_auto_keeps_whole_without_exits);
	TH_RUN(test_forced_modes_never_move);
	TH_RUN(test_auto_keeps_int8_whole);
	tg_tensor_free(&x);
	kern_model_free(model);
	TH_DONE();
}
