/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The head on the device: the gateway's own engine (kernels/) runs the model from its input
 * to a split, one KERN_PLAN_HEAD plan per split, built on first use and kept. A head plan
 * also computes the exits before its split: tgc_head_exits() reads them (softmax, threshold,
 * top-k), as the gateway's scheduler does after the split.
 */
#include "client/tgc.h"
#include "proto/proto.h"
#include "util/util.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TGC_HEAD_MAX_EXITS = 64 };

struct tgc_head {
	struct kern_model *m;
	unsigned n_splits;
	unsigned n_outputs;
	float exit_conf[TGC_HEAD_MAX_EXITS];	/* per model output; > 1: off */
	int last_split;			/* of the last tgc_run_head(); -1 none */
	uint64_t last_ns;		/* its run's time, the plan's first build excluded */
	struct kern_plan **plans;	/* [n_splits]; NULL until first used (row 0 never) */
	float *in0;			/* split 0: the input, copied (in_numel floats) */
	size_t in_numel;
};

int
tgc_head_open(struct tgc_head **out, const char *path, struct tg_err *err)
{
	struct kern_model_info info;
	struct tgc_head *h;
	int rc;

	if (out == NULL || path == NULL)
		return tg_err_set(err, -EINVAL, "tgc_head_open: out and path are required");
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return tg_err_set(err, -ENOMEM, "head %s: out of memory", path);
	rc = kern_model_load(path, NULL, &h->m, err);
	if (rc < 0)
		goto out_free;
	kern_model_get_info(h->m, &info);
	h->n_splits = info.n_splits;
	h->n_outputs = info.n_outputs < TGC_HEAD_MAX_EXITS ? info.n_outputs : TGC_HEAD_MAX_EXITS;
	h->last_split = -1;
	for (unsigned o = 0; o < TGC_HEAD_MAX_EXITS; o++)
		h->exit_conf[o] = 2.f;
	h->in_numel = kern_model_split(h->m, 0)->numel;
	h->plans = calloc(h->n_splits ? h->n_splits : 1, sizeof(*h->plans));
	h->in0 = malloc(h->in_numel * sizeof(float));
	if (h->plans == NULL || h->in0 == NULL) {
		rc = tg_err_set(err, -ENOMEM, "head %s: out of memory", path);
		goto out_model;
	}
	*out = h;
	return 0;

out_model:
	free(h->plans);
	free(h->in0);
	kern_model_free(h->m);
out_free:
	free(h);
	return rc;
}

void
tgc_head_close(struct tgc_head *h)
{
	if (h == NULL)
		return;
	for (unsigned i = 0; i < h->n_splits; i++)
		kern_plan_free(h->plans[i]);
	free(h->plans);
	free(h->in0);
	kern_model_free(h->m);
	free(h);
}

unsigned
tgc_head_n_splits(const struct tgc_head *h)
{
	return h->n_splits;
}

int
tgc_run_head(struct tgc_head *h, unsigned split, const float *input, size_t numel,
	     struct tg_tensor *out, struct tg_err *err)
{
	const struct kern_split *s0;
	struct tg_tensor in;
	uint64_t t0;
	int rc;

	if (h == NULL || input == NULL || out == NULL)
		return tg_err_set(err, -EINVAL, "tgc_run_head: h, input and out are required");
	if (split >= h->n_splits)
		return tg_err_set(err, -EINVAL, "split %u: the model has %u", split, h->n_splits);
	if (numel != h->in_numel)
		return tg_err_set(err, -EINVAL, "input: %zu values, the model takes %zu", numel,
				  h->in_numel);
	h->last_split = -1;
	h->last_ns = 0;
	if (split == 0) {
		h->last_split = 0;
		s0 = kern_model_split(h->m, 0);
		memcpy(h->in0, input, numel * sizeof(float));
		memset(out, 0, sizeof(*out));
		out->dtype = TG_DT_F32;
		out->ndim = s0->ndim;
		memcpy(out->dims, s0->dims, sizeof(out->dims));
		out->data = h->in0;
		return 0;
	}
	if (h->plans[split] == NULL) {
		struct kern_plan_spec spec = { .kind = KERN_PLAN_HEAD, .split = split, .batch = 1 };

		rc = kern_plan_create(h->m, &spec, &h->plans[split], err);
		if (rc < 0)
			return tg_err_prefix(err, "head to split %u: ", split);
	}
	rc = kern_plan_input(h->plans[split], 0, &in);
	if (rc < 0)
		return tg_err_set(err, rc, "head to split %u: no input", split);
	t0 = tg_now_ns();
	memcpy(in.data, input, numel * sizeof(float));
	if (kern_plan_run(h->plans[split]) != 0)
		return tg_err_set(err, -EIO, "head to split %u: the engine failed", split);
	rc = kern_plan_output(h->plans[split], 0, out, NULL);
	if (rc < 0)
		return tg_err_set(err, rc, "head to split %u: no output", split);
	h->last_ns = tg_now_ns() - t0;
	h->last_split = (int)split;
	return 0;
}

uint64_t
tgc_head_last_ns(const struct tgc_head *h)
{
	return h != NULL && h->last_split >= 0 ? h->last_ns : 0;
}

int
tgc_head_set_exit(struct tgc_head *h, const char *exit, float conf, struct tg_err *err)
{
	if (h == NULL || exit == NULL)
		return tg_err_set(err, -EINVAL, "tgc_head_set_exit: h and exit are required");
	if (!(conf >= 0.f))
		return tg_err_set(err, -EINVAL, "exit %s: confidence %g is not a number >= 0", exit,
				  (double)conf);
	for (unsigned o = 0; o < h->n_outputs; o++)
		if (strcmp(kern_model_output(h->m, o)->name, exit) == 0) {
			h->exit_conf[o] = conf;
			return 0;
		}
	return tg_err_set(err, -ENOENT, "exit %s: the model has no output of that name (it has "
			  "%u, first \"%s\")", exit, h->n_outputs,
			  h->n_outputs ? kern_model_output(h->m, 0)->name : "");
}

/* Softmax of row into p[] (the largest first subtracted); @return the top class. */
static uint32_t
tgc_softmax(const float *row, size_t n, float *p)
{
	uint32_t top = 0;
	double sum = 0;

	for (size_t k = 1; k < n; k++)
		if (row[k] > row[top])
			top = (uint32_t)k;
	for (size_t k = 0; k < n; k++)
		sum += exp((double)row[k] - (double)row[top]);
	for (size_t k = 0; k < n; k++)
		p[k] = (float)(exp((double)row[k] - (double)row[top]) / sum);
	return top;
}

/* The top_k classes of probabilities p[n], highest first (ties: lower class first). */
static unsigned
tgc_topk(const float *p, size_t n, unsigned top_k, struct proto_topk *out)
{
	unsigned k = 0;

	for (size_t c = 0; c < n; c++) {
		unsigned i = k < top_k ? k++ : k;

		if (i == top_k && !(p[c] > out[top_k - 1].score))
			continue;
		if (i == top_k)
			i = top_k - 1;
		while (i > 0 && p[c] > out[i - 1].score) {
			out[i] = out[i - 1];
			i--;
		}
		out[i].class_id = (uint32_t)c;
		out[i].score = p[c];
	}
	return k;
}

/* A head plan output that is a model output (an exit before the split). */
struct tgc_dexit {
	unsigned o;			/* model output index */
	uint64_t flops;
	const float *row;
	size_t n;
};

/* The head plan's outputs past the split tensor that are model outputs, cheapest first. */
static unsigned
tgc_dexits(const struct tgc_head *h, struct kern_plan *p, struct tgc_dexit *d, unsigned max)
{
	unsigned nd = 0;

	for (unsigned k = 1; p != NULL && k < kern_plan_n_outputs(p) && nd < max; k++) {
		struct tg_tensor v;
		const char *name = NULL;
		unsigned o, i;

		if (kern_plan_output(p, k, &v, &name) < 0 || name == NULL || v.dtype != TG_DT_F32)
			continue;
		for (o = 0; o < h->n_outputs; o++)
			if (strcmp(kern_model_output(h->m, o)->name, name) == 0)
				break;
		if (o == h->n_outputs || tg_tensor_numel(&v) == 0 || tg_tensor_numel(&v) > 4096)
			continue;
		for (i = nd++; i > 0 && d[i - 1].flops > kern_model_output(h->m, o)->flops; i--)
			d[i] = d[i - 1];
		d[i] = (struct tgc_dexit){ o, kern_model_output(h->m, o)->flops, v.data,
					   tg_tensor_numel(&v) };
	}
	return nd;
}

int
tgc_head_exits(struct tgc_head *h, unsigned split, unsigned top_k, struct tgc_local *out,
	       struct tg_err *err)
{
	struct tgc_dexit d[TGC_HEAD_MAX_EXITS];
	const struct tgc_dexit *pick = NULL;
	const struct kern_split *sp;
	float prob[4096];
	unsigned nd;

	if (h == NULL || out == NULL || h->last_split != (int)split)
		return tg_err_set(err, -EINVAL, "tgc_head_exits: split %u was not the last run", split);
	if (top_k > TGC_MAX_TOP_K)
		return tg_err_set(err, -EINVAL, "top_k %u over %u", top_k, TGC_MAX_TOP_K);
	top_k = top_k ? top_k : 5;
	memset(out, 0, sizeof(*out));
	out->exit = out->best = PROTO_NONE;
	sp = kern_model_split(h->m, split);
	out->head_flops = sp->head_flops;
	out->tail_flops = sp->tail_flops;
	nd = tgc_dexits(h, split ? h->plans[split] : NULL, d, TGC_HEAD_MAX_EXITS);
	/* The gateway's rule: the cheapest confident exit answers. Without one, the deepest
	 * exit is the best the device has (a fallback). */
	for (unsigned i = 0; i < nd && pick == NULL; i++) {
		uint32_t top = tgc_softmax(d[i].row, d[i].n, prob);

		if (prob[top] >= h->exit_conf[d[i].o]) {
			pick = &d[i];
			out->exit = (uint8_t)d[i].o;
		}
	}
	if (nd > 0)
		out->best = (uint8_t)d[nd - 1].o;
	if (pick == NULL && nd > 0)
		pick = &d[nd - 1];
	if (pick != NULL) {
		uint32_t top = tgc_softmax(pick->row, pick->n, prob);

		out->conf = prob[top];
		out->top_k = (uint8_t)tgc_topk(prob, pick->n, top_k, out->top);
	}
	return 0;
}
