/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reductions: ReduceMean, ReduceMax, ReduceMin, ReduceSum, ReduceProd, ReduceL1, ReduceL2,
 * ReduceSumSquare, as oneDNN reductions (the definition's alg, with its power p as alpha).
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <string.h>

static int
kern_reduce_attrs(struct kern_attrs *a)
{
	struct kern_node *n = a->n;
	int rc = kern_attr_ints(a, "axes", n->a.reduce.axes, TG_MAX_DIMS);

	if (rc < 0)
		return rc;
	n->a.reduce.n_axes = rc;
	n->a.reduce.has_axes = kern_attr_has(a, "axes");
	n->a.reduce.keepdims = kern_attr_int(a, "keepdims", 1) != 0;
	n->a.reduce.noop_empty = kern_attr_int(a, "noop_with_empty_axes", 0) != 0;
	return 0;
}

/*
 * The axes a Reduce* node reduces, as flags per input dim: the attribute (opset < 18, and
 * ReduceSum < 13) or the static second input; none given means every axis, or none at all
 * with noop_with_empty_axes. @return 0 or -EINVAL (an axis out of range, or not static)
 */
int
kern_reduce_axes(const struct kern_shapes *s, const struct kern_node *n, int nd, bool *red)
{
	int64_t axes[TG_MAX_DIMS];
	int na = n->a.reduce.n_axes;

	memcpy(axes, n->a.reduce.axes, sizeof(axes));
	if (n->n_in > 1 && n->in[1] >= 0) {
		na = kern_static_ints(s, n->in[1], axes, TG_MAX_DIMS);
		if (na < 0)
			return -EINVAL;
	}
	for (int i = 0; i < nd; i++)
		red[i] = na == 0 && !n->a.reduce.noop_empty;
	for (int i = 0; i < na; i++) {
		int64_t a = kern_norm_axis(axes[i], nd);

		if (a < 0 || a >= nd)
			return -EINVAL;
		red[a] = true;
	}
	return 0;
}

static int
kern_reduce_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  int *ndp, int64_t *d, struct tg_err *err)
{
	bool red[TG_MAX_DIMS];
	int nd = *ndp, k = 0;

	(void)m;
	if (kern_reduce_axes(s, n, nd, red) < 0)
		return kern_bad(err, n, "axes out of range, or not computable at load");
	for (int i = 0; i < nd; i++) {
		if (n->a.reduce.keepdims)
			d[i] = red[i] ? 1 : d[i];
		else if (!red[i])
			d[k++] = d[i];
	}
	if (!n->a.reduce.keepdims)
		*ndp = k;
	return 0;
}

/*
 * A oneDNN reduction in plain layout to the keepdims shape; keepdims = 0 views the same bytes
 * at the output's rank. Nothing reduced (noop_with_empty_axes): a view.
 */
static int
kp_build_reduce(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	const struct kern_op_def *d = kern_ops[n->op];
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t kd[TG_MAX_DIMS];
	bool red[TG_MAX_DIMS], any = false;
	dnnl_memory_desc_t kmd, ymd;
	dnnl_reduction_desc_t rd;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, dst;
	int rc;

	if (kern_reduce_axes(s, n, nd, red) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): bad axes", n->name,
				  kern_op_names[n->op]);
	for (int i = 0; i < nd; i++) {
		kd[i] = red[i] ? 1 : s->dims[x][i];
		any |= red[i];
	}
	if (!any || nd == 0)
		return kp_build_view(p, n, c);
	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	kp_plain_md(&kmd, nd, kd);
	rc = KP_CHK(p, dnnl_reduction_desc_init(&rd, (dnnl_alg_kind_t)d->alg, kp_md(src), &kmd,
						d->alpha, 0.f), n, "reduction");
	rc = kp_prim_desc(p, &pr, rc, &rd, n, "reduction pd");
	if (rc == 0)
		rc = kp_mem_new(p, &kmd, NULL, &dst, n);
	if (rc == 0) {
		kp_plain_md(&ymd, s->ndim[y], s->dims[y]);
		rc = kp_mem_new(p, &ymd, kp_handle(dst), &p->vmem[y], n);
	}
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, src);
		kp_arg(&pr, DNNL_ARG_DST, dst);
	}
	return kp_prim_end(p, &pr, rc, -1, n);
}

#define KERN_REDUCE(name, alg_, p)                                                          \
	const struct kern_op_def kern_op_##name = {                                         \
		.known = (const char *const[]){ "axes", "keepdims", "noop_with_empty_axes",  \
						NULL },                                       \
		.attrs = kern_reduce_attrs, .infer = kern_reduce_infer,                      \
		.build = kp_build_reduce, .alg = alg_, .alpha = p, /* the norm's p */        \
	}

KERN_REDUCE(reducemean, dnnl_reduction_mean, 0.f);
KERN_REDUCE(reducemax, dnnl_reduction_max, 0.f);
KERN_REDUCE(reducemin, dnnl_reduction_min, 0.f);
KERN_REDUCE(reducesum, dnnl_reduction_sum, 0.f);
KERN_REDUCE(reduceprod, dnnl_reduction_mul, 0.f);
KERN_REDUCE(reducel1, dnnl_reduction_norm_lp_sum, 1.f);
KERN_REDUCE(reducel2, dnnl_reduction_norm_lp_sum, 2.f);
KERN_REDUCE(reducesumsquare, dnnl_reduction_norm_lp_power_p_sum, 2.f);
