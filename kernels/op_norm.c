/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Normalisations: BatchNormalization (inference statistics; folded into the Conv before it
 * when it can be, kern_fold_bn), LayerNormalization, Softmax and LogSoftmax.
 */
#include "kernels/kp_int.h"

#include <errno.h>

static int
kern_bn_attrs(struct kern_attrs *a)
{
	a->n->a.bn.eps = kern_attr_float(a, "epsilon", 1e-5f);
	if (kern_attr_int(a, "spatial", 1) != 1)
		return kern_attr_bad(a, "spatial", "only spatial=1 is supported");
	if (kern_attr_int(a, "training_mode", 0) != 0)
		return kern_attr_bad(a, "training_mode", "training is not supported");
	if (a->n->n_out > 1)
		return kern_attr_bad(a, "outputs", "running statistics outputs (training)");
	return 0;
}

static int
kern_ln_attrs(struct kern_attrs *a)
{
	a->n->a.ln.axis = kern_attr_int(a, "axis", -1);
	a->n->a.ln.eps = kern_attr_float(a, "epsilon", 1e-5f);
	if (kern_attr_int(a, "stash_type", 1) != 1)
		return kern_attr_bad(a, "stash_type", "only float statistics are supported");
	return 0;
}

/* Softmax-13 normalises over one axis (default the last); before, over everything from axis
 * on (default 1). */
static int
kern_softmax_attrs(struct kern_attrs *a)
{
	a->n->a.axis.axis = kern_attr_int(a, "axis", a->m->opset >= 13 ? -1 : 1);
	return 0;
}

static int
kern_bn_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	      int *nd, int64_t *d, struct tg_err *err)
{
	if (*nd < 2)
		return kern_bad(err, n, "input rank %d", *nd);
	for (int k = 1; k < 5; k++)
		if (n->in[k] < 0 || !m->values[n->in[k]].is_const ||
		    kern_numel(s, n->in[k]) != (uint64_t)d[1])
			return kern_bad(err, n,
					"scale, bias, mean and var must be constants of %lld values",
					(long long)d[1]);
	return 0;
}

static int
kern_ln_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	      int *ndp, int64_t *d, struct tg_err *err)
{
	int nd = *ndp;
	int64_t ax = kern_norm_axis(n->a.ln.axis, nd);
	uint64_t inner = 1;

	if (ax < 0 || ax >= nd)
		return kern_bad(err, n, "axis out of range");
	for (int i = (int)ax; i < nd; i++)
		inner *= (uint64_t)d[i];
	for (int k = 1; k < 3; k++)
		if ((k == 1 || (n->n_in > 2 && n->in[2] >= 0)) &&
		    (n->n_in <= k || n->in[k] < 0 || !m->values[n->in[k]].is_const ||
		     kern_numel(s, n->in[k]) != inner))
			return kern_bad(err, n, "scale and bias must be constants of %llu values",
					(unsigned long long)inner);
	return 0;
}

static int
kern_softmax_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		   int *nd, int64_t *d, struct tg_err *err)
{
	int64_t ax = kern_norm_axis(n->a.axis.axis, *nd);

	(void)m;
	(void)s;
	(void)d;
	if (ax < 0 || ax >= *nd)
		return kern_bad(err, n, "axis %lld out of range", (long long)n->a.axis.axis);
	return 0;
}

/* exp, sum and divide per element. */
static uint64_t
kern_softmax_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	return 3 * kern_numel(s, n->out[0]);
}

/* ---- builders ---- */

/* BatchNormalization left unfolded: oneDNN's with global statistics, scale and shift. */
static int
kp_build_bn(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0];
	int64_t C = s->dims[x][1];
	static const int which[4] = { DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN,
				      DNNL_ARG_VARIANCE };
	dnnl_memory_desc_t cmd, src_md;
	dnnl_batch_normalization_desc_t bd;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, prm;
	int rc;

	(void)c;
	if (s->ndim[x] < 2 || s->ndim[x] > 5)
		return tg_err_set(p->err, -ENOTSUP, "node \"%s\": BatchNormalization of rank %d",
				  n->name, s->ndim[x]);
	kp_plain_md(&cmd, 1, &C);
	rc = kp_get_src(p, x, &src, n);
	if (rc < 0)
		return rc;
	src_md = *kp_md(src);
	rc = KP_CHK(p, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference,
			&src_md, n->a.bn.eps, dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
		    n, "batch normalization");
	rc = kp_prim_desc(p, &pr, rc, &bd, n, "bnorm pd");
	kp_arg(&pr, DNNL_ARG_SRC, src);
	for (int i = 0; rc == 0 && i < 4; i++) {
		dnnl_memory_desc_t pl;

		kp_plain_md(&pl, s->ndim[n->in[1 + i]], s->dims[n->in[1 + i]]);
		rc = kp_const(p, n->in[1 + i], &pl, &cmd, &prm, n);
		if (rc == 0)
			kp_arg(&pr, which[i], prm);
	}
	return kp_prim_end(p, &pr, rc, n->out[0], n);
}

/* Output y over a new plain memory of md (the shape a primitive computes in), seen at y's own
 * shape: same bytes. */
static int
kp_dst_as(struct kern_plan *p, const struct kern_node *n, const dnnl_memory_desc_t *md, int y,
	  dnnl_memory_t *dst)
{
	dnnl_memory_desc_t ymd;
	int rc = kp_mem_new(p, md, NULL, dst, n);

	if (rc == 0) {
		kp_plain_md(&ymd, p->sh.ndim[y], p->sh.dims[y]);
		rc = kp_mem_new(p, &ymd, kp_handle(*dst), &p->vmem[y], n);
	}
	return rc;
}

/* LayerNormalization: oneDNN normalises over the last dim, so the input is seen as
 * [outer, inner] with everything from axis on in inner (same bytes, plain layout). */
static int
kp_build_layernorm(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], nd = s->ndim[x];
	int64_t ax = kern_norm_axis(n->a.ln.axis, nd), d2[2] = { 1, 1 };
	bool shift = n->n_in > 2 && n->in[2] >= 0;
	dnnl_memory_desc_t md, cmd;
	dnnl_layer_normalization_desc_t ld;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, view, dst, sc, sh;
	int rc;

	(void)c;
	for (int i = 0; i < nd; i++)
		d2[i < ax ? 0 : 1] *= s->dims[x][i];
	kp_plain_md(&md, 2, d2);
	kp_plain_md(&cmd, 1, &d2[1]);
	rc = kp_get_plain(p, x, &src, n);
	if (rc == 0)
		rc = kp_mem_new(p, &md, kp_handle(src), &view, n);
	if (rc == 0)
		rc = KP_CHK(p, dnnl_layer_normalization_forward_desc_init(&ld,
				dnnl_forward_inference, &md, NULL, n->a.ln.eps,
				dnnl_use_scale | (shift ? dnnl_use_shift : 0)), n, "layer normalization");
	rc = kp_prim_desc(p, &pr, rc, &ld, n, "layer normalization pd");
	if (rc == 0)	/* the constants' own bytes, read as [inner] */
		rc = kp_const(p, n->in[1], &cmd, NULL, &sc, n);
	if (rc == 0 && shift) {
		rc = kp_const(p, n->in[2], &cmd, NULL, &sh, n);
		if (rc == 0)
			kp_arg(&pr, DNNL_ARG_SHIFT, sh);
	}
	if (rc == 0)
		rc = kp_dst_as(p, n, &md, n->out[0], &dst);
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, view);
		kp_arg(&pr, DNNL_ARG_SCALE, sc);
		kp_arg(&pr, DNNL_ARG_DST, dst);
	}
	return kp_prim_end(p, &pr, rc, -1, n);
}

/* Softmax and LogSoftmax, in plain layout. */
static int
kp_build_softmax(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], nd = s->ndim[x];
	int ax = (int)kern_norm_axis(n->a.axis.axis, nd);
	dnnl_memory_desc_t md;
	dnnl_softmax_v2_desc_t sd;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, view, dst;
	int rc;

	(void)c;
	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	if (p->m->opset < 13 && ax != nd - 1) {
		/* Softmax-1/11 normalise over everything from axis on, as a 2-D [outer, inner]. */
		int64_t d2[2] = { 1, 1 };

		for (int i = 0; i < nd; i++)
			d2[i < ax ? 0 : 1] *= s->dims[x][i];
		kp_plain_md(&md, 2, d2);
		ax = 1;
	} else {
		kp_plain_md(&md, nd, s->dims[x]);
	}
	rc = kp_mem_new(p, &md, kp_handle(src), &view, n);
	if (rc == 0)
		rc = KP_CHK(p, dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference,
				(dnnl_alg_kind_t)kern_ops[n->op]->alg, &md, &md, ax), n, "softmax");
	rc = kp_prim_desc(p, &pr, rc, &sd, n, "softmax pd");
	if (rc == 0)
		rc = kp_dst_as(p, n, &md, n->out[0], &dst);
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, view);
		kp_arg(&pr, DNNL_ARG_DST, dst);
	}
	return kp_prim_end(p, &pr, rc, -1, n);
}

const struct kern_op_def kern_op_bn = {
	.known = (const char *const[]){ "epsilon", "momentum", "spatial", "training_mode",
					"is_test", NULL },
	.attrs = kern_bn_attrs,
	.infer = kern_bn_infer,
	.build = kp_build_bn,
};

const struct kern_op_def kern_op_layernorm = {
	.known = (const char *const[]){ "axis", "epsilon", "stash_type", NULL },
	.attrs = kern_ln_attrs,
	.infer = kern_ln_infer,
	.build = kp_build_layernorm,
};

const struct kern_op_def kern_op_softmax = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_softmax_attrs,
	.infer = kern_softmax_infer,
	.flops = kern_softmax_flops,
	.build = kp_build_softmax,
	.alg = dnnl_softmax_accurate,
};

const struct kern_op_def kern_op_logsoftmax = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_softmax_attrs,
	.infer = kern_softmax_infer,
	.build = kp_build_softmax,
	.alg = dnnl_softmax_log,
};
