/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elementwise activations: one oneDNN eltwise each (alone, or fused as a post-op into the
 * primitive before it), plus PRelu (oneDNN's prelu) and Erf (only inside a GELU, which the
 * loader fuses: see kern_fuse_gelu).
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* ---- attributes ---- */

/* Clip-6's bounds are attributes; Clip-11 on takes them as inputs. */
static int
kern_clip_attrs(struct kern_attrs *a)
{
	a->n->a.clip.has_min = kern_attr_has(a, "min");
	a->n->a.clip.has_max = kern_attr_has(a, "max");
	a->n->a.clip.min = kern_attr_float(a, "min", -INFINITY);
	a->n->a.clip.max = kern_attr_float(a, "max", INFINITY);
	return 0;
}

static int
kern_hardsigmoid_attrs(struct kern_attrs *a)
{
	a->n->a.hsig.alpha = kern_attr_float(a, "alpha", 0.2f);
	a->n->a.hsig.beta = kern_attr_float(a, "beta", 0.5f);
	return 0;
}

/* LeakyRelu and Elu: alpha, whose default is the definition's. */
static int
kern_alpha_attrs(struct kern_attrs *a)
{
	a->n->a.elt.alpha = kern_attr_float(a, "alpha", kern_ops[a->n->op]->alpha);
	return 0;
}

static int
kern_gelu_attrs(struct kern_attrs *a)
{
	a->n->a.gelu.tanh = kern_attr_enum(a, "approximate",
					   (const char *const[]){ "none", "tanh", NULL }, 0) == 1;
	return 0;
}

/* ---- shapes ---- */

/* Relu, Sigmoid, HardSwish, HardSigmoid, Clip: any extra input is Clip's constant bound. */
static int
kern_scalar_args_infer(const struct kern_model *m, struct kern_shapes *s,
		       const struct kern_node *n, int *nd, int64_t *d, struct tg_err *err)
{
	(void)nd;
	(void)d;
	for (int k = 1; k < n->n_in; k++)
		if (n->in[k] >= 0 && (!m->values[n->in[k]].is_static || kern_numel(s, n->in[k]) != 1))
			return kern_bad(err, n, "min and max must be constant scalars");
	return 0;
}

static int
kern_erf_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	       int *nd, int64_t *d, struct tg_err *err)
{
	(void)m;
	(void)s;
	(void)nd;
	(void)d;
	return kern_bad(err, n, "Erf runs only as part of GELU, x * 0.5 * (1 + erf(x / sqrt(2)))");
}

static int
kern_pow_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	       int *nd, int64_t *d, struct tg_err *err)
{
	float e;

	(void)m;
	(void)nd;
	(void)d;
	if (n->n_in < 2 || n->in[1] < 0 || kern_static_float(s, n->in[1], &e) < 0)
		return kern_bad(err, n, "only a constant scalar exponent is supported");
	return 0;
}

/* PRelu before opset 7 takes a [C] slope per channel (dim 1), not numpy-broadcast. */
bool
kern_prelu_per_channel(const struct kern_model *m, const struct kern_shapes *s,
		       const struct kern_node *n)
{
	int x = n->in[0], w = n->in[1];

	return m->opset < 7 && s->ndim[w] == 1 && s->ndim[x] >= 2 &&
	       s->dims[w][0] == s->dims[x][1] && s->dims[w][0] != 1;
}

static int
kern_prelu_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 int *nd, int64_t *d, struct tg_err *err)
{
	int64_t bd[TG_MAX_DIMS];
	int bn;

	if (n->n_in < 2 || n->in[1] < 0 || !s->known[n->in[1]])
		return kern_bad(err, n, "slope missing");
	if (kern_prelu_per_channel(m, s, n))
		return 0;
	if (kern_broadcast(s, n->in[0], n->in[1], &bn, bd) < 0 || bn != *nd ||
	    memcmp(bd, d, (size_t)*nd * sizeof(int64_t)) != 0)
		return kern_bad(err, n, "slope does not broadcast to the input");
	return 0;
}

/* ---- the operation each runs ---- */

static bool
kern_elt_fixed(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e)
{
	const struct kern_op_def *d = kern_ops[n->op];

	(void)s;
	*e = (struct kern_elt){ d->alg, d->alpha, d->beta, false };
	return true;
}

static bool
kern_elt_alpha(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e)
{
	(void)s;
	*e = (struct kern_elt){ kern_ops[n->op]->alg, n->a.elt.alpha, 0.f, false };
	return true;
}

static bool
kern_elt_gelu(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e)
{
	(void)s;
	*e = (struct kern_elt){ n->a.gelu.tanh ? dnnl_eltwise_gelu_tanh : dnnl_eltwise_gelu_erf,
				0.f, 0.f, false };
	return true;
}

static bool
kern_elt_pow(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e)
{
	*e = (struct kern_elt){ dnnl_eltwise_pow, 1.f, 0.f, false };
	return kern_static_float(s, n->in[1], &e->beta) == 0;
}

/* Linear, then a clip to [0, 1]. */
static bool
kern_elt_hardsigmoid(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e)
{
	(void)s;
	*e = (struct kern_elt){ dnnl_eltwise_linear, n->a.hsig.alpha, n->a.hsig.beta, true };
	return true;
}

static bool
kern_elt_clip(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e)
{
	float lo = -FLT_MAX, hi = FLT_MAX;

	if (n->n_in > 1 && n->in[1] >= 0 && kern_static_float(s, n->in[1], &lo) < 0)
		return false;
	if (n->n_in > 2 && n->in[2] >= 0 && kern_static_float(s, n->in[2], &hi) < 0)
		return false;
	if (n->n_in <= 1) {
		lo = n->a.clip.has_min ? n->a.clip.min : -FLT_MAX;
		hi = n->a.clip.has_max ? n->a.clip.max : FLT_MAX;
	}
	*e = (struct kern_elt){ dnnl_eltwise_clip_v2, lo, hi, false };
	return true;
}

/* ---- builders ---- */

/* The followers as post-ops, after the node's own clip to [0, 1] when it has one. */
static int
kp_elt_attr(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c,
	    bool clip01, dnnl_primitive_attr_t *attr)
{
	dnnl_post_ops_t po = NULL;
	int rc = KP_CHK(p, dnnl_primitive_attr_create(attr), n, "attr");

	if (rc == 0 && (c->n || clip01))
		rc = KP_CHK(p, dnnl_post_ops_create(&po), n, "post-ops");
	if (rc == 0 && clip01)
		rc = KP_CHK(p, dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_clip_v2, 0.f, 1.f),
			    n, "clip");
	for (int i = 0; rc == 0 && i < c->n; i++)
		if (kp_append_eltwise(p, po, c->nodes[i]) < 0)
			rc = tg_err_set(p->err, -EINVAL, "node \"%s\": cannot fuse", c->nodes[i]->name);
	if (rc == 0 && po)
		rc = KP_CHK(p, dnnl_primitive_attr_set_post_ops(*attr, po), n, "set post-ops");
	if (po)
		dnnl_post_ops_destroy(po);
	return rc;
}

/* One oneDNN eltwise, its followers fused. oneDNN 2.6 mis-applies eltwise post-ops on 1-D
 * tensors: those are seen as [1, n], and the output back at its own rank. */
static int
kp_build_eltwise(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	int x = n->in[0], y = c->out_v;
	struct kern_elt e;
	dnnl_eltwise_desc_t ed;
	struct kp_prim pr = { 0 };
	dnnl_memory_desc_t md;
	dnnl_memory_t src;
	int rc;

	if (!kp_eltwise_params(p, n, &e))
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): min/max not computable at load",
				  n->name, kern_op_names[n->op]);
	rc = p->vmem[x] == NULL || p->sh.ndim[x] < 2 ? kp_get_plain(p, x, &src, n) :
						       kp_get_f32(p, x, &src, n);
	if (rc == 0 && p->sh.ndim[x] < 2) {
		int64_t d2[2] = { 1, p->sh.ndim[x] ? p->sh.dims[x][0] : 1 };

		kp_plain_md(&md, 2, d2);
		rc = kp_mem_new(p, &md, kp_handle(src), &src, n);
	}
	if (rc < 0)
		return rc;
	rc = KP_CHK(p, dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference,
						       (dnnl_alg_kind_t)e.alg, kp_md(src), e.alpha,
						       e.beta), n, "eltwise");
	if (rc == 0)
		rc = kp_elt_attr(p, n, c, e.clip01, &pr.attr);
	rc = kp_prim_desc(p, &pr, rc, &ed, n, "eltwise pd");
	kp_arg(&pr, DNNL_ARG_SRC, src);
	rc = kp_prim_end(p, &pr, rc, y, n);
	if (rc == 0 && p->sh.ndim[y] < 2) {
		kp_plain_md(&md, p->sh.ndim[y], p->sh.dims[y]);
		rc = kp_mem_new(p, &md, kp_handle(p->vmem[y]), &p->vmem[y], n);
	}
	return rc;
}

/* PRelu: oneDNN's prelu with the slope as weights broadcast to the input's rank. */
static int
kp_build_prelu(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], nd = s->ndim[x];
	int64_t wd[TG_MAX_DIMS];
	dnnl_memory_desc_t w_md;
	dnnl_prelu_desc_t pdsc;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, w;
	int rc;

	(void)c;
	rc = p->vmem[x] == NULL || nd < 2 ? kp_get_plain(p, x, &src, n) : kp_get_f32(p, x, &src, n);
	if (rc == 0) {
		if (kern_prelu_per_channel(p->m, s, n)) {
			for (int i = 0; i < nd; i++)
				wd[i] = i == 1 ? s->dims[x][1] : 1;
		} else {
			kp_expand_dims(p, n->in[1], nd, wd);
		}
		rc = kp_get_plain_as(p, n->in[1], nd, wd, &w_md, &w, n);
	}
	if (rc == 0)
		rc = KP_CHK(p, dnnl_prelu_forward_desc_init(&pdsc, dnnl_forward_inference, kp_md(src),
							     &w_md), n, "prelu");
	rc = kp_prim_desc(p, &pr, rc, &pdsc, n, "prelu pd");
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, src);
		kp_arg(&pr, DNNL_ARG_WEIGHTS, w);
	}
	return kp_prim_end(p, &pr, rc, n->out[0], n);
}

/* ---- definitions ---- */

#define KERN_ELT(name, infer_, alg_, alpha_, beta_)                                        \
	const struct kern_op_def kern_op_##name = {                                         \
		.infer = infer_, .build = kp_build_eltwise, .elt = kern_elt_fixed,          \
		.alg = alg_, .alpha = alpha_, .beta = beta_, .fuses = true,                  \
	}

KERN_ELT(relu, kern_scalar_args_infer, dnnl_eltwise_relu, 0.f, 0.f);
KERN_ELT(sigmoid, kern_scalar_args_infer, dnnl_eltwise_logistic, 0.f, 0.f);
KERN_ELT(hardswish, kern_scalar_args_infer, dnnl_eltwise_hardswish, 0.f, 0.f);
KERN_ELT(tanh, kern_infer_same, dnnl_eltwise_tanh, 0.f, 0.f);
KERN_ELT(exp, kern_infer_same, dnnl_eltwise_exp, 0.f, 0.f);
KERN_ELT(abs, kern_infer_same, dnnl_eltwise_abs, 0.f, 0.f);
KERN_ELT(sqrt, kern_infer_same, dnnl_eltwise_sqrt, 0.f, 0.f);
KERN_ELT(neg, kern_infer_same, dnnl_eltwise_linear, -1.f, 0.f);
KERN_ELT(reciprocal, kern_infer_same, dnnl_eltwise_pow, 1.f, -1.f);
KERN_ELT(log, kern_infer_same, dnnl_eltwise_log, 0.f, 0.f);
KERN_ELT(softplus, kern_infer_same, dnnl_eltwise_soft_relu, 0.f, 0.f);
KERN_ELT(mish, kern_infer_same, dnnl_eltwise_mish, 0.f, 0.f);
KERN_ELT(round, kern_infer_same, dnnl_eltwise_round, 0.f, 0.f);	/* half to even, as ONNX */

const struct kern_op_def kern_op_clip = {
	.known = (const char *const[]){ "min", "max", NULL },
	.attrs = kern_clip_attrs,
	.infer = kern_scalar_args_infer,
	.build = kp_build_eltwise,
	.elt = kern_elt_clip,
	.fuses = true,
};

const struct kern_op_def kern_op_hardsigmoid = {
	.known = (const char *const[]){ "alpha", "beta", NULL },
	.attrs = kern_hardsigmoid_attrs,
	.infer = kern_scalar_args_infer,
	.build = kp_build_eltwise,
	.elt = kern_elt_hardsigmoid,
	.fuses = true,
};

const struct kern_op_def kern_op_leakyrelu = {
	.known = (const char *const[]){ "alpha", NULL },
	.attrs = kern_alpha_attrs,
	.infer = kern_infer_same,
	.build = kp_build_eltwise,
	.elt = kern_elt_alpha,
	.alg = dnnl_eltwise_relu,
	.alpha = 0.01f,
	.fuses = true,
};

const struct kern_op_def kern_op_elu = {
	.known = (const char *const[]){ "alpha", NULL },
	.attrs = kern_alpha_attrs,
	.infer = kern_infer_same,
	.build = kp_build_eltwise,
	.elt = kern_elt_alpha,
	.alg = dnnl_eltwise_elu,
	.alpha = 1.f,
	.fuses = true,
};

const struct kern_op_def kern_op_gelu = {
	.known = (const char *const[]){ "approximate", NULL },
	.attrs = kern_gelu_attrs,
	.infer = kern_infer_same,
	.build = kp_build_eltwise,
	.elt = kern_elt_gelu,
	.fuses = true,
};

const struct kern_op_def kern_op_pow = {
	.infer = kern_pow_infer,
	.build = kp_build_eltwise,
	.elt = kern_elt_pow,
	.fuses = true,
};

const struct kern_op_def kern_op_erf = {
	.infer = kern_erf_infer,
};

const struct kern_op_def kern_op_prelu = {
	.infer = kern_prelu_infer,
	.build = kp_build_prelu,
};
