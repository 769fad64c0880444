/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Offline runs of a head or tail over many samples in batches: what tailgate-model, the
 * fixture checks, the benchmarks and the integration tests' references share. Not the
 * serving path (the gateway uses kern_tail's buckets and loads rows itself): this may
 * allocate, once per output per run.
 */
#include "kernels/kernels.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { KERN_STAGE_MAX_BATCH = 1u << 20 };

void
kern_stage_free(struct kern_stage *st)
{
	for (int i = 0; i < 2; i++) {
		kern_plan_free(st->plan[i]);
		st->plan[i] = NULL;
		st->batch[i] = 0;
	}
}

int
kern_stage_plan(struct kern_stage *st, unsigned b, struct kern_plan **out, struct tg_err *err)
{
	struct kern_plan_spec spec = st->spec;
	int slot, rc;

	if (b == 0 || b > KERN_STAGE_MAX_BATCH)
		return tg_err_set(err, -EINVAL, "batch %u: must be 1..%u", b,
				  (unsigned)KERN_STAGE_MAX_BATCH);
	for (int i = 0; i < 2; i++)
		if (st->plan[i] != NULL && st->batch[i] == b) {
			*out = st->plan[i];
			return 0;
		}
	/* Runs use the full batch, then one remainder: the second slot is the one to recycle. */
	slot = st->plan[0] == NULL ? 0 : 1;
	kern_plan_free(st->plan[slot]);
	st->plan[slot] = NULL;
	spec.batch = b;
	rc = kern_plan_create(st->m, &spec, &st->plan[slot], err);
	if (rc < 0) {
		tg_err_prefix(err, "%s plan at split %u, batch %u: ",
			      spec.kind == KERN_PLAN_HEAD ? "head" : "tail", spec.split, b);
		return rc;
	}
	st->batch[slot] = b;
	*out = st->plan[slot];
	return 0;
}

void
kern_outs_free(struct kern_outs *o)
{
	for (unsigned i = 0; i < o->n; i++) {
		tg_tensor_free(&o->t[i]);
		free(o->name[i]);
	}
	free(o->t);
	free(o->name);
	memset(o, 0, sizeof(*o));
}

int
kern_plan_feed(struct kern_plan *p, const struct tg_tensor *src, size_t first, unsigned b,
	       struct tg_err *err)
{
	struct tg_tensor in;
	size_t per, src_per;
	int rc = kern_plan_input(p, 0, &in);

	if (rc < 0)
		return tg_err_set(err, rc, "plan input: %s", strerror(-rc));
	if (src->dtype != TG_DT_F32 || src->ndim < 1 || src->dims[0] < 1)
		return tg_err_set(err, -EINVAL, "samples must be f32 with a batch dimension");
	per = tg_tensor_numel(&in) / (size_t)in.dims[0];
	src_per = tg_tensor_numel(src) / (size_t)src->dims[0];
	if (in.dtype != TG_DT_F32 || per != src_per || (size_t)in.dims[0] < b ||
	    first + b > (size_t)src->dims[0])
		return tg_err_set(err, -EINVAL, "plan input is %s [%" PRId64 ",...] (%zu values per "
				  "sample); fed samples %zu..%zu of %" PRId64 " with %zu values",
				  tg_dtype_name(in.dtype), in.dims[0], per, first, first + b,
				  src->dims[0], src_per);
	memcpy(in.data, (const float *)src->data + first * per, (size_t)b * per * sizeof(float));
	memset((float *)in.data + (size_t)b * per, 0,
	       ((size_t)in.dims[0] - b) * per * sizeof(float));
	return 0;
}

/* Size o for the plan's outputs at n_samples, named as the plan names them. */
static int
kern_outs_init(struct kern_outs *o, const struct kern_plan *p, unsigned n, size_t n_samples,
	       struct tg_err *err)
{
	o->t = calloc(n, sizeof(*o->t));
	o->name = calloc(n, sizeof(*o->name));
	if (o->t == NULL || o->name == NULL)
		goto nomem;
	for (unsigned k = 0; k < n; k++) {
		const char *name = NULL;
		int rc = kern_plan_output(p, k, &o->t[k], &name);

		if (rc < 0)
			return tg_err_set(err, rc, "plan output %u: %s", k, strerror(-rc));
		o->n = k + 1;
		o->t[k].data = NULL;
		o->t[k].dims[0] = (int64_t)n_samples;
		o->name[k] = strdup(name ? name : "output");
		if (o->name[k] == NULL || tg_tensor_alloc(&o->t[k]) < 0)
			goto nomem;
	}
	return 0;
nomem:
	return tg_err_set(err, -ENOMEM, "outputs of %zu samples: out of memory", n_samples);
}

int
kern_outs_take(struct kern_outs *o, const struct kern_plan *p, unsigned n_take,
	       size_t n_samples, size_t first, unsigned b, struct tg_err *err)
{
	unsigned np = kern_plan_n_outputs(p);
	int rc;

	if (n_take == 0 || n_take > np)
		n_take = np;
	if (o->n == 0) {
		rc = kern_outs_init(o, p, n_take, n_samples, err);
		if (rc < 0)
			return rc;
	}
	if (o->n != n_take)
		return tg_err_set(err, -EINVAL, "plans of one run disagree on outputs (%u, %u)",
				  n_take, o->n);
	for (unsigned k = 0; k < n_take; k++) {
		struct tg_tensor v;
		size_t per;

		rc = kern_plan_output(p, k, &v, NULL);
		if (rc < 0)
			return tg_err_set(err, rc, "plan output %u: %s", k, strerror(-rc));
		if (v.ndim < 1 || (size_t)v.dims[0] < b)
			return tg_err_set(err, -EINVAL, "output \"%s\": batch below %u", o->name[k], b);
		per = tg_tensor_bytes(&v) / (size_t)v.dims[0];
		if (per * n_samples != tg_tensor_bytes(&o->t[k]) || v.dtype != o->t[k].dtype ||
		    first + b > n_samples)
			return tg_err_set(err, -EINVAL, "output \"%s\": shape differs between batches",
					  o->name[k]);
		memcpy((uint8_t *)o->t[k].data + first * per, v.data, (size_t)b * per);
	}
	return 0;
}

int
kern_stage_run(struct kern_stage *st, unsigned b, const struct tg_tensor *x,
	       struct kern_outs *o, struct tg_err *err)
{
	size_t n = x->ndim > 0 && x->dims[0] > 0 ? (size_t)x->dims[0] : 0;
	int rc = 0;

	if (n == 0 || b == 0)
		return tg_err_set(err, -EINVAL, "no samples, or batch 0");
	for (size_t first = 0; first < n && rc == 0; first += b) {
		unsigned nb = (unsigned)(n - first < b ? n - first : b);
		struct kern_plan *p;

		rc = kern_stage_plan(st, nb, &p, err);
		if (rc == 0)
			rc = kern_plan_feed(p, x, first, nb, err);
		if (rc == 0) {
			rc = kern_plan_run(p);
			if (rc < 0)
				tg_err_set(err, rc, "running samples %zu..%zu failed", first,
					   first + nb);
		}
		if (rc == 0)
			rc = kern_outs_take(o, p, 0, n, first, nb, err);
	}
	return rc;
}
