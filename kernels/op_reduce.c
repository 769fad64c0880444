/*
 * Reductions: ReduceMean, ReduceMax, ReduceMin, ReduceSum, ReduceProd, ReduceL1, ReduceL2,
 * ReduceSumSquare, as oneDNN reductions (the definition's alg, with its power p as alpha).
 */
#include "kernels/kern_int.h"

#include <dnnl.h>
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

#define KERN_REDUCE(name, alg_, p)                                                          \
	const struct kern_op_def kern_op_##name = {                                         \
		.known = (const char *const[]){ "axes", "keepdims", "noop_with_empty_axes",  \
						NULL },                                       \
		.attrs = kern_reduce_attrs, .infer = kern_reduce_infer, .alg = alg_,         \
		.alpha = p,                                                                   \
	}

KERN_REDUCE(reducemean, dnnl_reduction_mean, 0.f);
KERN_REDUCE(reducemax, dnnl_reduction_max, 0.f);
KERN_REDUCE(reducemin, dnnl_reduction_min, 0.f);
KERN_REDUCE(reducesum, dnnl_reduction_sum, 0.f);
KERN_REDUCE(reduceprod, dnnl_reduction_mul, 0.f);
KERN_REDUCE(reducel1, dnnl_reduction_norm_lp_sum, 1.f);
KERN_REDUCE(reducel2, dnnl_reduction_norm_lp_sum, 2.f);
KERN_REDUCE(reducesumsquare, dnnl_reduction_norm_lp_power_p_sum, 2.f);
