/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The head on the device: the gateway's own engine (kernels/) runs the model from its input
 * to a split, one KERN_PLAN_HEAD plan per split, built on first use and kept.
 */
#include "client/tgc.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tgc_head {
	struct kern_model *m;
	unsigned n_splits;
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
	int rc;

	if (h == NULL || input == NULL || out == NULL)
		return tg_err_set(err, -EINVAL, "tgc_run_head: h, input and out are required");
	if (split >= h->n_splits)
		return tg_err_set(err, -EINVAL, "split %u: the model has %u", split, h->n_splits);
	if (numel != h->in_numel)
		return tg_err_set(err, -EINVAL, "input: %zu values, the model takes %zu", numel,
				  h->in_numel);
	if (split == 0) {
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
	memcpy(in.data, input, numel * sizeof(float));
	if (kern_plan_run(h->plans[split]) != 0)
		return tg_err_set(err, -EIO, "head to split %u: the engine failed", split);
	rc = kern_plan_output(h->plans[split], 0, out, NULL);
	if (rc < 0)
		return tg_err_set(err, rc, "head to split %u: no output", split);
	return 0;
}
