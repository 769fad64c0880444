/*
 * Two-operand arithmetic with numpy broadcasting: Add, Mul, Sub, Div (also evaluated at load
 * on shape values), Max and Min: oneDNN's binary primitive, whose algorithm is the
 * definition's alg.
 */
#include "kernels/kern_int.h"

#include <dnnl.h>
#include <errno.h>
#include <math.h>

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

#define KERN_ARITH(name, alg_)                                                              \
	const struct kern_op_def kern_op_##name = {                                         \
		.known = (const char *const[]){ "broadcast", "axis", NULL },               \
		.attrs = kern_arith_attrs, .infer = kern_arith_infer,                        \
		.eval = kern_arith_eval, .alg = alg_, .fuses = true,                         \
	}

KERN_ARITH(add, dnnl_binary_add);
KERN_ARITH(mul, dnnl_binary_mul);
KERN_ARITH(sub, dnnl_binary_sub);
KERN_ARITH(div, dnnl_binary_div);

const struct kern_op_def kern_op_max = {
	.infer = kern_minmax_infer,
	.alg = dnnl_binary_max,
};

const struct kern_op_def kern_op_min = {
	.infer = kern_minmax_infer,
	.alg = dnnl_binary_min,
};
