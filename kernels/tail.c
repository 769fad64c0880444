/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plans per batch-size bucket. A plan's primitives are specialised to its batch, so a batch of
 * n runs on the smallest bucket that holds it (rows past n are computed and ignored): powers
 * of two keep the waste under half a batch and the number of plans logarithmic.
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <stdlib.h>

enum { KERN_TAIL_MAX_BUCKETS = 18 };

struct kern_tail {
	unsigned n_buckets;
	unsigned size[KERN_TAIL_MAX_BUCKETS];
	struct kern_plan *plan[KERN_TAIL_MAX_BUCKETS];
};

int
kern_tail_create(const struct kern_model *m, const struct kern_plan_spec *base,
		 unsigned max_batch, struct kern_tail **out, struct tg_err *err)
{
	struct kern_tail *t;
	int rc = 0;

	if (base->kind == KERN_PLAN_GRAPH || max_batch < 1 || max_batch > (1u << 16))
		return tg_err_set(err, -EINVAL, "tail: bad kind or max batch %u", max_batch);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	for (unsigned b = 1; rc == 0; b *= 2) {
		struct kern_plan_spec spec = *base;

		spec.batch = b < max_batch ? b : max_batch;
		t->size[t->n_buckets] = spec.batch;
		rc = kern_plan_create(m, &spec, &t->plan[t->n_buckets], err);
		if (rc == 0)
			t->n_buckets++;
		if (spec.batch == max_batch)
			break;
	}
	if (rc < 0) {
		kern_tail_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void
kern_tail_free(struct kern_tail *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->n_buckets; i++)
		kern_plan_free(t->plan[i]);
	free(t);
}

struct kern_plan *
kern_tail_plan(struct kern_tail *t, unsigned n)
{
	for (unsigned i = 0; i < t->n_buckets; i++)
		if (t->size[i] >= n && n >= 1)
			return t->plan[i];
	return NULL;
}

unsigned
kern_tail_max_batch(const struct kern_tail *t)
{
	return t->n_buckets ? t->size[t->n_buckets - 1] : 0;
}
