/*
 * Normalisations: BatchNormalization (inference statistics; folded into the Conv before it
 * when it can be, kern_fold_bn), LayerNormalization, Softmax and LogSoftmax.
 */
#include "kernels/kern_int.h"

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

const struct kern_op_def kern_op_bn = {
	.known = (const char *const[]){ "epsilon", "momentum", "spatial", "training_mode",
					"is_test", NULL },
	.attrs = kern_bn_attrs,
	.infer = kern_bn_infer,
};

const struct kern_op_def kern_op_layernorm = {
	.known = (const char *const[]){ "axis", "epsilon", "stash_type", NULL },
	.attrs = kern_ln_attrs,
	.infer = kern_ln_infer,
};

const struct kern_op_def kern_op_softmax = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_softmax_attrs,
	.infer = kern_softmax_infer,
	.flops = kern_softmax_flops,
};

const struct kern_op_def kern_op_logsoftmax = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_softmax_attrs,
	.infer = kern_softmax_infer,
};
