/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pools: MaxPool, AveragePool (ceil_mode, count_include_pad, dilations, auto_pad),
 * GlobalAveragePool and GlobalMaxPool. Windows are read as Conv's are (op_conv.c).
 */
#include "kernels/kp_int.h"

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

/* ---- builders ---- */

/* The pooling primitive over window (k, st, dil, pl, pr). Pools keep int8 as it is (max and
 * mean commute with the scale): y takes x's scale. */
static int
kp_pool_end(struct kern_plan *p, const struct kern_node *n, dnnl_alg_kind_t alg, dnnl_dims_t st,
	    dnnl_dims_t k, dnnl_dims_t dil, dnnl_dims_t pl, dnnl_dims_t pr_)
{
	int x = n->in[0], y = n->out[0];
	dnnl_memory_desc_t src_md, dst_md;
	dnnl_pooling_v2_desc_t pdsc;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src = p->vmem[x];
	int rc;

	if (src != NULL && kp_is_int8(kp_md(src)) && !p->is_pout[y]) {
		p->vscale[y] = p->vscale[x];
		p->vdt[y] = p->vdt[x];
	} else {
		rc = kp_get_src(p, x, &src, n);
		if (rc < 0)
			return rc;
	}
	src_md = *kp_md(src);
	kp_any_md(&dst_md, p->sh.ndim[x], p->sh.dims[y]);
	dst_md.data_type = src_md.data_type;
	rc = KP_CHK(p, dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg,
							  &src_md, &dst_md, st, k, dil, pl, pr_), n,
		    "pooling");
	rc = kp_prim_desc(p, &pr, rc, &pdsc, n, "pooling pd");
	kp_arg(&pr, DNNL_ARG_SRC, src);
	return kp_prim_end(p, &pr, rc, y, n);
}

/* MaxPool, AveragePool: ceil_mode, as oneDNN floors, pads the end enough for the last
 * window. */
static int
kp_build_pool(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	const struct kern_pool_attr *a = &n->a.pool;
	int x = n->in[0], nsp = s->ndim[x] - 2;
	dnnl_dims_t st, k, dil, pl, pr;
	dnnl_alg_kind_t alg = (dnnl_alg_kind_t)kern_ops[n->op]->alg;
	int64_t pads[4], osp[2];

	(void)c;
	if (nsp != a->nsp)
		return tg_err_set(p->err, -EINVAL, "node \"%s\": pool rank mismatch", n->name);
	kern_pool_resolve(n, s->dims[x] + 2, pads, osp);
	for (int i = 0; i < nsp; i++) {
		int64_t ek = (a->kernel[i] - 1) * a->dilations[i] + 1;
		int64_t need = (osp[i] - 1) * a->strides[i] + ek - s->dims[x][2 + i] - pads[i];

		k[i] = a->kernel[i];
		st[i] = a->strides[i];
		dil[i] = a->dilations[i] - 1;
		pl[i] = pads[i];
		pr[i] = need > pads[i + 2] ? need : pads[i + 2];
	}
	if (a->count_include_pad)	/* AveragePool only: MaxPool refuses it */
		alg = dnnl_pooling_avg_include_padding;
	return kp_pool_end(p, n, alg, st, k, dil, pl, pr);
}

/* GlobalAveragePool, GlobalMaxPool: one window over every spatial dim. */
static int
kp_build_global_pool(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0];
	dnnl_dims_t st, k, dil, pl, pr;

	(void)c;
	for (int i = 0; i < s->ndim[x] - 2; i++) {
		k[i] = s->dims[x][2 + i];
		st[i] = 1;
		dil[i] = pl[i] = pr[i] = 0;
	}
	return kp_pool_end(p, n, (dnnl_alg_kind_t)kern_ops[n->op]->alg, st, k, dil, pl, pr);
}

const struct kern_op_def kern_op_maxpool = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "dilations", "ceil_mode",
					"auto_pad", "storage_order", NULL },
	.attrs = kern_pool_attrs,
	.infer = kern_pool_infer,
	.flops = kern_pool_flops,
	.build = kp_build_pool,
	.alg = dnnl_pooling_max,
};

const struct kern_op_def kern_op_avgpool = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "ceil_mode", "auto_pad",
					"count_include_pad", NULL },
	.attrs = kern_pool_attrs,
	.infer = kern_pool_infer,
	.flops = kern_pool_flops,
	.build = kp_build_pool,
	.alg = dnnl_pooling_avg_exclude_padding,
};

const struct kern_op_def kern_op_gap = {
	.infer = kern_global_pool_infer,
	.flops = kern_global_pool_flops,
	.build = kp_build_global_pool,
	.alg = dnnl_pooling_avg_exclude_padding,
};

const struct kern_op_def kern_op_gmp = {
	.infer = kern_global_pool_infer,
	.flops = kern_global_pool_flops,
	.build = kp_build_global_pool,
	.alg = dnnl_pooling_max,
};
