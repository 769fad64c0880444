/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Early-exit thresholds honoured at every split, on the gateway side: the scheduler serving
 * the multi-exit fixture (tests/fixtures/multiexit: exit1, exit2, final) from each split of
 * its table in turn, whole tails and segments, answers each sample from the cheapest exit
 * after the split whose softmax confidence reaches its threshold, else from the final exit;
 * a request flagged "no early exit" always from the final one. The expected exit comes from
 * the whole model run offline; thresholds sit halfway between two samples' confidences, so
 * some samples leave early and some do not, with a margin no rounding crosses.
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
enum { N = 24, NOUT = 3, NCLS = 10 };

static void
on_done(void *ctx, struct sched_req **r, unsigned n)
{
	(void)ctx;
	(void)r;
	(void)n;
}

static struct kern_model *model;
static struct tg_tensor x;		/* N input samples: the fixture's 3, then random */
static float conf[NOUT][N];		/* softmax top probability per exit and sample */
static float th[NOUT];			/* thresholds; the final exit's unused */
static unsigned order[NOUT];		/* outputs by FLOPs */

static float
softmax_top(const float *row)
{
	float mx = row[0];
	double sum = 0;

	for (int k = 1; k < NCLS; k++)
		mx = row[k] > mx ? row[k] : mx;
	for (int k = 0; k < NCLS; k++)
		sum += exp((double)row[k] - mx);
	return (float)(1.0 / sum);
}

static int
cmp_float(const void *a, const void *b)
{
	float x1 = *(const float *)a, y = *(const float *)b;

	return x1 < y ? -1 : x1 > y;
}

/* The whole model over x: each exit's confidence per sample; thresholds between medians. */
static int
setup(void)
{
	struct kern_stage st = { 0 };
	struct kern_outs o = { 0 };
	struct tg_err err = { 0 };
	struct tg_tensor f = { 0 };
	unsigned seed = 7;

	if (kern_model_load(FIXTURE "model.onnx", NULL, &model, &err) < 0 ||
	    tg_npy_load(FIXTURE "input.npy", 1 << 20, &f, &err) < 0)
		return fprintf(stderr, "setup: %s\n", err.msg), -1;
	x = (struct tg_tensor){ .dtype = TG_DT_F32, .ndim = 4, .dims = { N, 1, 28, 28 } };
	if (tg_tensor_alloc(&x) < 0)
		return -1;
	memcpy(x.data, f.data, tg_tensor_bytes(&f));
	for (size_t i = tg_tensor_numel(&f); i < tg_tensor_numel(&x); i++) {
		seed = seed * 1103515245 + 12345;
		((float *)x.data)[i] = (float)((seed >> 16) % 1000) / 1000.f;
	}
	tg_tensor_free(&f);
	st.m = model;
	st.spec.kind = KERN_PLAN_TAIL;
	if (kern_stage_run(&st, N, &x, &o, &err) < 0 || o.n != NOUT)
		return fprintf(stderr, "setup: %s\n", err.msg), -1;
	for (unsigned e = 0; e < NOUT; e++) {
		float sorted[N];

		for (unsigned i = 0; i < N; i++)
			conf[e][i] = softmax_top((const float *)o.t[e].data + i * NCLS);
		memcpy(sorted, conf[e], sizeof(sorted));
		qsort(sorted, N, sizeof(float), cmp_float);
		th[e] = (sorted[N / 2 - 1] + sorted[N / 2]) / 2;
		order[e] = e;
	}
	for (unsigned a = 0; a < NOUT; a++)	/* by FLOPs: the scheduler's order */
		for (unsigned b = a + 1; b < NOUT; b++)
			if (kern_model_output(model, order[b])->flops <
			    kern_model_output(model, order[a])->flops) {
				unsigned t = order[a];

				order[a] = order[b];
				order[b] = t;
			}
	kern_outs_free(&o);
	kern_stage_free(&st);
	return 0;
}

/* The exit that must answer sample i entering at split s. */
static unsigned
expected(unsigned s, unsigned i, bool no_early)
{
	unsigned fin = order[NOUT - 1];

	for (unsigned j = 0; !no_early && j + 1 < NOUT; j++) {
		unsigned e = order[j];

		if (kern_model_output_in_tail(model, s, e) && conf[e][i] >= th[e])
			return e;
	}
	return fin;
}

/* Serve split s alone; every sample, flagged and not: the exits taken. */
static void
check_split(unsigned s, bool whole, unsigned *early)
{
	const unsigned splits[1] = { s };
	struct sched_model_cfg mc = {
		.model = model, .splits = splits, .n_splits = 1, .exit_conf = th, .max_batch = 8,
		.max_delay_ns = MS, .default_deadline_ns = 1000 * MS,
	};
	struct sched_cfg cfg = {
		.models = &mc, .n_models = 1, .queue_cap = 2 * N, .max_inflight = 2 * N,
		.n_workers = 1, .mode = whole ? SCHED_MODE_WHOLE : SCHED_MODE_SEGMENTS,
		.done = on_done, .clock = fake_clock,
	};
	struct kern_stage head = { .m = model, .spec = { .kind = KERN_PLAN_HEAD, .split = s } };
	struct kern_outs h = { 0 };
	struct sched_req r[2 * N];
	struct sched *sc = NULL;
	struct tg_err err = { 0 };
	const float *in = x.data;
	size_t per = kern_model_split(model, s)->numel;

	fake_now = 1000 * MS;
	TH_CHECK_MSG(sched_create(&cfg, &sc, &err) == 0, "%s", err.msg);
	if (sc != NULL) {	/* 1 ms per batch: admission never depends on this machine's speed */
		unsigned starts[16], nseg = sched_segments(sc, 0, starts, 16);

		for (unsigned q = 0; q < nseg; q++)
			for (unsigned b = 1; b <= 4096; b *= 2)
				sched_set_estimate(sc, 0, q, b, MS);
	}
	if (s > 0) {
		TH_CHECK_MSG(kern_stage_run(&head, N, &x, &h, &err) == 0, "%s", err.msg);
		in = h.n ? h.t[0].data : NULL;
	}
	for (unsigned i = 0; sc && in && i < 2 * N; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].split = (uint8_t)s;
		r[i].dtype = TG_DT_F32;
		r[i].data = in + (size_t)(i % N) * per;
		r[i].top_k = 1;
		r[i].no_early_exit = i >= N;
		TH_CHECK(sched_submit(sc, &r[i]) == PROTO_ST_OK);
	}
	if (sc && in) {
		run_until_idle(sc);
		for (unsigned i = 0; i < 2 * N; i++) {
			unsigned want = expected(s, i % N, i >= N);

			TH_CHECK_MSG(r[i].status == PROTO_ST_OK && r[i].exit_taken == want,
				     "split %u %s sample %u%s: exit %u, want %u", s,
				     whole ? "whole" : "segments", i % N, i >= N ? " (no early)" : "",
				     r[i].exit_taken, want);
			*early += r[i].exit_taken != order[NOUT - 1];
		}
	}
	kern_outs_free(&h);
	kern_stage_free(&head);
	sched_free(sc);
}

static void
test_thresholds_honoured_at_every_split(void)
{
	struct kern_model_info mi;
	unsigned early = 0;

	kern_model_get_info(model, &mi);
	for (unsigned s = 0; s < mi.n_splits; s++) {
		check_split(s, true, &early);
		check_split(s, false, &early);
	}
	/* The thresholds do make samples leave early, or the test would prove nothing. */
	TH_CHECK_MSG(early > 0, "no sample left early at any split");
}

int
main(void)
{
	if (setup() < 0) {
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	TH_RUN(test_thresholds_honoured_at_every_split);
	tg_tensor_free(&x);
	kern_model_free(model);
	TH_DONE();
}
