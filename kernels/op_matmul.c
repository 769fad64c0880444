/*
 * Matrix products: Gemm with constant B and C (an inner product, alpha and beta folded into
 * the weights) and MatMul with numpy batch broadcasting (oneDNN's matmul).
 */
#include "kernels/kern_int.h"

#include <string.h>

static int
kern_gemm_attrs(struct kern_attrs *a)
{
	a->n->a.gemm.alpha = kern_attr_float(a, "alpha", 1.f);
	a->n->a.gemm.beta = kern_attr_float(a, "beta", 1.f);
	a->n->a.gemm.trans_a = (int)kern_attr_int(a, "transA", 0);
	a->n->a.gemm.trans_b = (int)kern_attr_int(a, "transB", 0);
	return 0;
}

/* C must broadcast to [M, N]: a scalar, [N], [1 or M, 1 or N]. */
static bool
kern_gemm_c_ok(const struct kern_shapes *s, int c, int64_t mm, int64_t nn)
{
	const int64_t *cd = s->dims[c];

	if (s->ndim[c] > 2)
		return false;
	if (s->ndim[c] == 2)
		return (cd[0] == 1 || cd[0] == mm) && (cd[1] == 1 || cd[1] == nn);
	return s->ndim[c] != 1 || cd[0] == 1 || cd[0] == nn;
}

static int
kern_gemm_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		int *nd, int64_t *d, struct tg_err *err)
{
	int b = n->in[1], c = n->n_in > 2 ? n->in[2] : -1;
	int64_t mm, kk, kb, nn;

	if (b < 0 || !s->known[b] || *nd != 2 || s->ndim[b] != 2)
		return kern_bad(err, n, "A and B must be 2-D");
	if (!m->values[b].is_const || n->a.gemm.trans_a || (c >= 0 && !m->values[c].is_const))
		return kern_bad(err, n, "only transA=0 with constant B and C is supported");
	mm = n->a.gemm.trans_a ? d[1] : d[0];
	kk = n->a.gemm.trans_a ? d[0] : d[1];
	kb = n->a.gemm.trans_b ? s->dims[b][1] : s->dims[b][0];
	nn = n->a.gemm.trans_b ? s->dims[b][0] : s->dims[b][1];
	if (kk != kb)
		return kern_bad(err, n, "inner dims %lld and %lld differ", (long long)kk, (long long)kb);
	d[0] = mm;
	d[1] = nn;
	if (c >= 0 && !s->known[c])
		return kern_bad(err, n, "C shape unknown");
	if (c >= 0 && !kern_gemm_c_ok(s, c, mm, nn))
		return kern_bad(err, n, "C does not broadcast to [%lld, %lld]", (long long)mm,
				(long long)nn);
	return 0;
}

static int
kern_matmul_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  int *ndp, int64_t *d, struct tg_err *err)
{
	int b = n->in[1], nd = *ndp, nb, no;
	int64_t od[TG_MAX_DIMS];

	(void)m;
	if (b < 0 || !s->known[b] || nd < 2 || s->ndim[b] < 2)
		return kern_bad(err, n, "1-D operands are not supported");
	nb = s->ndim[b];
	no = nd > nb ? nd : nb;
	if (d[nd - 1] != s->dims[b][nb - 2])
		return kern_bad(err, n, "inner dims differ");
	for (int i = 0; i < no - 2; i++) {
		int64_t da = i < no - nd ? 1 : d[i - (no - nd)];
		int64_t db = i < no - nb ? 1 : s->dims[b][i - (no - nb)];

		if (da != db && da != 1 && db != 1)
			return kern_bad(err, n, "batch dims do not broadcast");
		od[i] = da == 1 ? db : da;
	}
	od[no - 2] = d[nd - 2];
	od[no - 1] = s->dims[b][nb - 1];
	*ndp = no;
	memcpy(d, od, sizeof(od));
	return 0;
}

/* Multiply-adds: every output element is a dot product of the inner length. */
static uint64_t
kern_matmul_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	int a = n->in[0];
	int64_t k = n->op == KOP_GEMM && n->a.gemm.trans_a ? s->dims[a][0] :
							   s->dims[a][s->ndim[a] - 1];

	return 2 * kern_numel(s, n->out[0]) * (uint64_t)k;
}

const struct kern_op_def kern_op_gemm = {
	.known = (const char *const[]){ "alpha", "beta", "transA", "transB", "broadcast", NULL },
	.attrs = kern_gemm_attrs,
	.infer = kern_gemm_infer,
	.flops = kern_matmul_flops,
	.fuses = true,
};

const struct kern_op_def kern_op_matmul = {
	.infer = kern_matmul_infer,
	.flops = kern_matmul_flops,
};
