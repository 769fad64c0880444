/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator table: KERN_FOREACH_OP (kern_int.h) expanded into each op's ONNX name and a
 * pointer to its definition, which lives in its family's file (kernels/op_<family>.c). The
 * loader, the shape rules, the static evaluator, the FLOP count and the plan builder all
 * dispatch through kern_ops[n->op]: an op is defined in one place.
 */
#include "kernels/kern_int.h"

const char *const kern_op_names[KOP__COUNT] = {
#define _(sym, name, def, family) [KOP_##sym] = name,
	KERN_FOREACH_OP(_)
#undef _
};

const struct kern_op_def *const kern_ops[KOP__COUNT] = {
#define _(sym, name, def, family) [KOP_##sym] = &kern_op_##def,
	KERN_FOREACH_OP(_)
#undef _
};

int
kern_infer_same(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		int *nd, int64_t *d, struct tg_err *err)
{
	(void)m;
	(void)s;
	(void)n;
	(void)nd;
	(void)d;
	(void)err;
	return 0;
}

uint64_t
kern_flops_none(const struct kern_shapes *s, const struct kern_node *n)
{
	(void)s;
	(void)n;
	return 0;
}

/* Multiply-adds count 2, elementwise work 1 per element. */
uint64_t
kern_node_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	const struct kern_op_def *d = kern_ops[n->op];

	return d->flops ? d->flops(s, n) : kern_numel(s, n->out[0]);
}
