/*
 * Pools: MaxPool, AveragePool (ceil_mode, count_include_pad, dilations, auto_pad),
 * GlobalAveragePool and GlobalMaxPool. Windows are read as Conv's are (op_conv.c).
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <string.h>

int
kern_pool_resolve(const struct kern_node *n, const int64_t *in_sp, int64_t *pads,
		  int64_t *out_sp)
{
	const struct kern_pool_attr *p = &n->a.pool;

	for (int i = 0; i < p->nsp; i++) {
		pads[i] = p->pads[i];
		pads[i + 2] = p->pads[i + 2];
		out_sp[i] = kern_window_out(in_sp[i], p->kernel[i], p->strides[i], p->dilations[i],
					    &pads[i], &pads[i + 2], p->auto_pad, p->valid,
					    p->ceil_mode);
		if (out_sp[i] < 1)
			return -EINVAL;
	}
	return 0;
}

static int
kern_pool_attrs(struct kern_attrs *a)
{
	struct kern_pool_attr *p = &a->n->a.pool;
	int rc = kern_attr_window(a, &p->nsp, p->kernel, p->strides, p->dilations, p->pads, true);

	if (rc == 0)
		rc = kern_attr_auto_pad(a, &p->auto_pad, &p->valid);
	p->ceil_mode = kern_attr_int(a, "ceil_mode", 0) != 0;
	p->count_include_pad = kern_attr_int(a, "count_include_pad", 0) != 0;
	if (rc == 0 && a->n->n_out > 1)
		rc = kern_attr_bad(a, "Indices", "the indices output is not supported");
	return rc;
}

static int
kern_pool_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		int *ndp, int64_t *d, struct tg_err *err)
{
	int64_t pads[4], out[2];
	int nd = *ndp;

	(void)m;
	(void)s;
	if (nd != n->a.pool.nsp + 2)
		return kern_bad(err, n, "input rank %d for a %d-D window", nd, n->a.pool.nsp);
	if (kern_pool_resolve(n, d + 2, pads, out) < 0)
		return kern_bad(err, n, "window larger than the padded input");
	for (int i = 0; i < nd - 2; i++)
		d[2 + i] = out[i];
	return 0;
}

static int
kern_global_pool_infer(const struct kern_model *m, struct kern_shapes *s,
		       const struct kern_node *n, int *ndp, int64_t *d, struct tg_err *err)
{
	(void)m;
	(void)s;
	if (*ndp < 3)
		return kern_bad(err, n, "input rank %d", *ndp);
	for (int i = 2; i < *ndp; i++)
		d[i] = 1;
	return 0;
}

static uint64_t
kern_pool_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	return kern_numel(s, n->out[0]) * (uint64_t)(n->a.pool.kernel[0] * n->a.pool.kernel[1]);
}

static uint64_t
kern_global_pool_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	return kern_numel(s, n->in[0]);
}

const struct kern_op_def kern_op_maxpool = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "dilations", "ceil_mode",
					"auto_pad", "storage_order", NULL },
	.attrs = kern_pool_attrs,
	.infer = kern_pool_infer,
	.flops = kern_pool_flops,
};

const struct kern_op_def kern_op_avgpool = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "ceil_mode", "auto_pad",
					"count_include_pad", NULL },
	.attrs = kern_pool_attrs,
	.infer = kern_pool_infer,
	.flops = kern_pool_flops,
};

const struct kern_op_def kern_op_gap = {
	.infer = kern_global_pool_infer,
	.flops = kern_global_pool_flops,
};

const struct kern_op_def kern_op_gmp = {
	.infer = kern_global_pool_infer,
	.flops = kern_global_pool_flops,
};
