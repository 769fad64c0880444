/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matrix products: Gemm with constant B and C (an inner product, alpha and beta folded into
 * the weights) and MatMul with numpy batch broadcasting (oneDNN's matmul).
 */
#include "kernels/kp_int.h"

#include <errno.h>
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

/* ---- builders ---- */

/* Gemm's weights [N, K] = alpha * B (transposed as needed) and bias [N] = beta * C. */
static void
kp_gemm_fold(const struct kern_plan *p, const struct kern_node *n, int64_t M, int64_t K,
	     float *w, float *bias)
{
	const struct kern_shapes *s = &p->sh;
	const float *B = s->sval[n->in[1]].data;
	int cv = n->n_in > 2 ? n->in[2] : -1;

	for (int64_t i = 0; i < M; i++) {
		for (int64_t k = 0; k < K; k++)
			w[i * K + k] = n->a.gemm.alpha * (n->a.gemm.trans_b ? B[i * K + k] :
									     B[k * M + i]);
		bias[i] = 0.f;
		if (cv >= 0) {
			const float *C = s->sval[cv].data;
			size_t nc = tg_tensor_numel(&s->sval[cv]);

			bias[i] = C[nc == 1 ? 0 : i];
		}
		bias[i] *= n->a.gemm.beta;
	}
}

/* The folded weights and bias as the primitive wants them, from a temporary plain memory. */
static int
kp_gemm_consts(struct kern_plan *p, const struct kern_node *n, const struct kp_prim *pr,
	       const struct tg_tensor *wt, const struct tg_tensor *bt, dnnl_memory_t *wm,
	       dnnl_memory_t *bm)
{
	dnnl_memory_desc_t w_plain, b_md;
	dnnl_memory_t tmp = NULL;
	int rc;

	kp_plain_md(&w_plain, 2, wt->dims);
	kp_plain_md(&b_md, 1, bt->dims);
	rc = kp_mem_new(p, kp_prim_md(pr, dnnl_query_weights_md), NULL, wm, n);
	if (rc == 0)
		rc = KP_CHK(p, dnnl_memory_create(&tmp, &w_plain, p->eng, wt->data), n, "memory");
	if (rc == 0)
		rc = kp_reorder(p, tmp, *wm, true, n);
	if (tmp != NULL)
		dnnl_memory_destroy(tmp);
	if (rc == 0)
		rc = kp_mem_new(p, &b_md, NULL, bm, n);
	if (rc == 0)
		memcpy(kp_handle(*bm), bt->data, tg_tensor_bytes(bt));
	return rc;
}

/*
 * Gemm with constant B (and C): an inner product; alpha and beta folded into the weights.
 * In an int8 plan, a Gemm whose input has a calibrated range runs as an int8 inner product
 * (u8/s8 source, s8 weights per output channel, as export-qdq writes it for other engines),
 * its output int8 too when the chain's output has a range and is no plan output.
 */
static int
kp_build_gemm(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int a = n->in[0], bv = n->in[1], cv = n->n_in > 2 ? n->in[2] : -1, y = c->out_v;
	int64_t K = s->dims[a][1], M = s->dims[y][1];
	struct tg_tensor wt = { .dtype = TG_DT_F32, .ndim = 2, .dims = { M, K } };
	struct tg_tensor bt = { .dtype = TG_DT_F32, .ndim = 1, .dims = { M } };
	dnnl_memory_desc_t src_md, w_md, w_plain, b_md, dst_md;
	dnnl_inner_product_desc_t ipd;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, wm = NULL, bm = NULL;
	dnnl_data_type_t xdt = dnnl_f32;
	struct kp_quant q;
	float xs = 1.f;
	bool i8;
	int rc = 0;

	if (n->a.gemm.trans_a || !p->m->values[bv].is_const ||
	    (cv >= 0 && !p->m->values[cv].is_const))
		return tg_err_set(p->err, -ENOTSUP,
				  "node \"%s\" (Gemm): only transA=0 with constant B and C is supported",
				  n->name);
	if (kern_tensor_alloc(&wt) < 0 || kern_tensor_alloc(&bt) < 0)
		rc = tg_err_set(p->err, -ENOMEM, "out of memory");
	else
		kp_gemm_fold(p, n, M, K, wt.data, bt.data);
	i8 = kp_layer_quant(p, a, c, &xdt, &xs, &q);
	kp_plain_md(&w_plain, 2, wt.dims);
	kp_any_md(&w_md, 2, wt.dims);
	kp_plain_md(&b_md, 1, &M);
	kp_any_md(&src_md, 2, s->dims[a]);
	kp_any_md(&dst_md, 2, s->dims[y]);
	src_md.data_type = xdt;
	dst_md.data_type = q.dst_dt;
	if (i8)
		w_md.data_type = dnnl_s8;
	if (rc == 0)
		rc = KP_CHK(p, dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference,
				&src_md, &w_md, &b_md, &dst_md), n, "inner product");
	if (rc == 0)
		rc = kp_chain_attr(p, c, &pr.attr, n, &q);
	if (rc == 0 && i8)
		rc = kp_int8_layer(p, n, &ipd, &wt, &bt, &w_plain, xs, M, &pr, &wm, &bm);
	rc = kp_prim_desc(p, &pr, rc, &ipd, n, "inner product pd");
	if (rc == 0)
		rc = kp_get(p, a, kp_prim_md(&pr, dnnl_query_src_md), &src, n);
	if (rc == 0 && !i8)
		rc = kp_gemm_consts(p, n, &pr, &wt, &bt, &wm, &bm);
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, src);
		kp_arg(&pr, DNNL_ARG_WEIGHTS, wm);
		kp_arg(&pr, DNNL_ARG_BIAS, bm);
	}
	tg_tensor_free(&wt);
	tg_tensor_free(&bt);
	return kp_prim_end(p, &pr, rc, y, n);
}

/* MatMul: both operands in plain layout, viewed at the broadcast rank over the same bytes. */
static int
kp_build_matmul(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int a = n->in[0], b = n->in[1], y = n->out[0], nd = s->ndim[y];
	int64_t ad[TG_MAX_DIMS] = { 0 }, bd[TG_MAX_DIMS] = { 0 };
	dnnl_memory_desc_t a_md, b_md, y_md;
	dnnl_matmul_desc_t md;
	struct kp_prim pr = { 0 };
	dnnl_memory_t am, bm;
	int rc;

	(void)c;
	kp_expand_dims(p, a, nd, ad);
	kp_expand_dims(p, b, nd, bd);
	kp_plain_md(&a_md, nd, ad);
	kp_plain_md(&b_md, nd, bd);
	kp_plain_md(&y_md, nd, s->dims[y]);
	rc = KP_CHK(p, dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &y_md), n, "matmul");
	rc = kp_prim_desc(p, &pr, rc, &md, n, "matmul pd");
	if (rc == 0)
		rc = kp_get_plain_as(p, a, nd, ad, &a_md, &am, n);
	if (rc == 0)
		rc = kp_get_plain_as(p, b, nd, bd, &b_md, &bm, n);
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, am);
		kp_arg(&pr, DNNL_ARG_WEIGHTS, bm);
	}
	return kp_prim_end(p, &pr, rc, y, n);
}

const struct kern_op_def kern_op_gemm = {
	.known = (const char *const[]){ "alpha", "beta", "transA", "transB", "broadcast", NULL },
	.attrs = kern_gemm_attrs,
	.infer = kern_gemm_infer,
	.flops = kern_matmul_flops,
	.build = kp_build_gemm,
	.fuses = true,
};

const struct kern_op_def kern_op_matmul = {
	.infer = kern_matmul_infer,
	.flops = kern_matmul_flops,
	.build = kp_build_matmul,
};
