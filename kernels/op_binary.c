/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two-operand arithmetic with numpy broadcasting: Add, Mul, Sub, Div (also evaluated at load
 * on shape values), Max and Min: oneDNN's binary primitive, whose algorithm is the
 * definition's alg.
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static int
kern_arith_attrs(struct kern_attrs *a)
{
	if (kern_attr_has(a, "axis"))
		return kern_attr_bad(a, "axis", "legacy broadcast axis is not supported");
	return 0;
}

static int
kern_arith_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 int *nd, int64_t *d, struct tg_err *err)
{
	(void)m;
	if (n->in[1] < 0 || !s->known[n->in[1]])
		return kern_bad(err, n, "second input missing");
	if (kern_broadcast(s, n->in[0], n->in[1], nd, d) < 0)
		return kern_bad(err, n, "shapes do not broadcast");
	return 0;
}

static int
kern_minmax_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  int *nd, int64_t *d, struct tg_err *err)
{
	(void)m;
	if (n->n_in != 2 || n->in[1] < 0 || !s->known[n->in[1]])
		return kern_bad(err, n, "only two operands are supported (%d given)", n->n_in);
	if (kern_broadcast(s, n->in[0], n->in[1], nd, d) < 0)
		return kern_bad(err, n, "shapes do not broadcast");
	return 0;
}

/* Shape arithmetic: equal sizes or a scalar operand; integer division truncates. */
static int
kern_arith_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]], *b, *big;
	struct tg_tensor *out = &s->sval[n->out[0]];
	int alg = kern_ops[n->op]->alg;
	size_t na, nb;

	(void)m;
	if (n->in[1] < 0)
		return kern_bad(err, n, "second input missing");
	b = &s->sval[n->in[1]];
	na = tg_tensor_numel(in);
	nb = tg_tensor_numel(b);
	big = na >= nb ? in : b;
	if (na != nb && na != 1 && nb != 1)
		return kern_bad(err, n, "static arithmetic on unequal sizes");
	if (kern_sval_new(out, in->dtype, big->ndim, big->dims) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < tg_tensor_numel(big); i++) {
		double va = kern_sval_get(in, na == 1 ? 0 : i);
		double vb = kern_sval_get(b, nb == 1 ? 0 : i), r;

		if (alg == dnnl_binary_add) {
			r = va + vb;
		} else if (alg == dnnl_binary_sub) {
			r = va - vb;
		} else if (alg == dnnl_binary_mul) {
			r = va * vb;
		} else {
			if (vb == 0 && in->dtype == TG_DT_S64)
				return kern_bad(err, n, "division by zero");
			r = in->dtype == TG_DT_S64 ? trunc(va / vb) : va / vb;
		}
		kern_sval_put(out, i, r);
	}
	return 0;
}

/* oneDNN broadcasts src1 only: the operand of the output's full shape goes first (a and b
 * swapped when that is allowed), with dims ad at the output's rank. @return 0 or -ENOTSUP */
static int
kp_binary_order(struct kern_plan *p, const struct kern_node *n, int *a, int *b, int64_t *ad)
{
	const struct kern_op_def *d = kern_ops[n->op];
	bool commut = d->alg != dnnl_binary_sub && d->alg != dnnl_binary_div;
	int nd = p->sh.ndim[n->out[0]], t;
	size_t sz = (size_t)nd * sizeof(int64_t);

	kp_expand_dims(p, *a, nd, ad);
	if (memcmp(ad, p->sh.dims[n->out[0]], sz) == 0)
		return 0;
	if (!commut)
		return tg_err_set(p->err, -ENOTSUP,
				  "node \"%s\" (%s): broadcasting the first operand is not supported",
				  n->name, kern_op_names[n->op]);
	t = *a;
	*a = *b;
	*b = t;
	kp_expand_dims(p, *a, nd, ad);
	if (memcmp(ad, p->sh.dims[n->out[0]], sz) != 0)
		return tg_err_set(p->err, -ENOTSUP, "node \"%s\" (%s): both operands broadcast",
				  n->name, kern_op_names[n->op]);
	return 0;
}

static int
kp_build_binary(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int a = n->in[0], b = n->in[1], y = c->out_v, nd = s->ndim[n->out[0]];
	int64_t ad[TG_MAX_DIMS] = { 0 }, bd[TG_MAX_DIMS] = { 0 };
	dnnl_memory_desc_t a_md, b_md, dst_md;
	dnnl_binary_desc_t bdsc;
	struct kp_prim pr = { 0 };
	dnnl_memory_t am, bm;
	int rc = kp_binary_order(p, n, &a, &b, ad);

	if (rc < 0)
		return rc;
	kp_expand_dims(p, b, nd, bd);
	/* The full operand keeps its layout when its rank is the output's; else plain. */
	if (!p->m->values[a].is_static && s->ndim[a] == nd && p->vmem[a] != NULL) {
		rc = kp_get_f32(p, a, &am, n);
		if (rc == 0)
			a_md = *kp_md(am);
	} else {
		rc = kp_get_plain_as(p, a, nd, ad, &a_md, &am, n);
	}
	if (rc == 0 && kp_same_shape(p, a, b) && !p->m->values[b].is_static) {
		rc = kp_get(p, b, &a_md, &bm, n);	/* same layout as a */
		b_md = a_md;
	} else if (rc == 0) {
		rc = kp_get_plain_as(p, b, nd, bd, &b_md, &bm, n);
	}
	if (rc < 0)
		return rc;
	kp_any_md(&dst_md, nd, s->dims[y]);
	rc = KP_CHK(p, dnnl_binary_desc_init(&bdsc, (dnnl_alg_kind_t)kern_ops[n->op]->alg, &a_md,
					     &b_md, &dst_md), n, "binary");
	if (rc == 0)
		rc = kp_chain_attr(p, c, &pr.attr, n, &kp_quant_f32);
	rc = kp_prim_desc(p, &pr, rc, &bdsc, n, "binary pd");
	kp_arg(&pr, DNNL_ARG_SRC_0, am);
	kp_arg(&pr, DNNL_ARG_SRC_1, bm);
	return kp_prim_end(p, &pr, rc, y, n);
}

#define KERN_ARITH(name, alg_)                                                              \
	const struct kern_op_def kern_op_##name = {                                         \
		.known = (const char *const[]){ "broadcast", "axis", NULL },               \
		.attrs = kern_arith_attrs, .infer = kern_arith_infer,                        \
		.eval = kern_arith_eval, .build = kp_build_binary, .alg = alg_,              \
		.fuses = true,                                                               \
	}

KERN_ARITH(add, dnnl_binary_add);
KERN_ARITH(mul, dnnl_binary_mul);
KERN_ARITH(sub, dnnl_binary_sub);
KERN_ARITH(div, dnnl_binary_div);

const struct kern_op_def kern_op_max = {
	.infer = kern_minmax_infer,
	.build = kp_build_binary,
	.alg = dnnl_binary_max,
};

const struct kern_op_def kern_op_min = {
	.infer = kern_minmax_infer,
	.build = kp_build_binary,
	.alg = dnnl_binary_min,
};
