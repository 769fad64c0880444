/* SPDX-License-Identifier: Apache-2.0 */
/*
 * int8 for the layers with weights, Conv (op_conv.c) and Gemm (op_matmul.c) alike: which
 * data types a layer and its fused chain run in, and its s8 weights with per-output-channel
 * scales (the scheme tailgate-model export-qdq writes into a QDQ file: qdq.c), so that a
 * layer quantized here and the same layer run by another engine from that file agree.
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/*
 * Per-output-channel symmetric s8 weights: w = ws[oc] * q. Returns the scales (caller frees)
 * and fills q (oc * per values).
 */
static float *
kp_quantize_weights(const float *w, size_t oc, size_t per, int8_t *q)
{
	float *ws = kern_malloc(oc * sizeof(float));

	if (ws == NULL)
		return NULL;
	for (size_t o = 0; o < oc; o++) {
		float amax = 0.f;

		for (size_t k = 0; k < per; k++)
			amax = fmaxf(amax, fabsf(w[o * per + k]));
		ws[o] = amax > 0 ? amax / 127.f : 1.f;
		for (size_t k = 0; k < per; k++)
			q[o * per + k] = (int8_t)lrintf(w[o * per + k] / ws[o]);
	}
	return ws;
}

/* The int8 primitives divide the bias by the output scale: they add it before scaling. */
static int
kp_int8_bias(struct kern_plan *p, const struct tg_tensor *bt, size_t oc, const float *out_scales,
	     dnnl_memory_t *bm, const struct kern_node *n)
{
	int64_t boc = (int64_t)oc;
	dnnl_memory_desc_t bmd;
	int rc;

	kp_plain_md(&bmd, 1, &boc);
	rc = kp_mem_new(p, &bmd, NULL, bm, n);
	if (rc == 0) {
		float *bd = kp_handle(*bm);
		const float *bs = bt->data;
		size_t nb = tg_tensor_numel(bt);

		for (size_t o = 0; o < oc; o++)
			bd[o] = (nb == 1 ? bs[0] : bs[o]) / out_scales[o];
	}
	return rc;
}

/* Weights (and bias) of an int8 primitive: quantized, reordered into want, bias rescaled. */
static int
kp_int8_consts(struct kern_plan *p, const struct tg_tensor *wt, const struct tg_tensor *bt,
	       const dnnl_memory_desc_t *w_plain_f32, const dnnl_memory_desc_t *want,
	       float src_scale, size_t oc, float *out_scales, dnnl_memory_t *wm, dnnl_memory_t *bm,
	       const struct kern_node *n)
{
	size_t per = tg_tensor_numel(wt) / oc;
	int8_t *q = kern_malloc(tg_tensor_numel(wt));
	dnnl_memory_desc_t qmd = *w_plain_f32;
	dnnl_memory_t tmp = NULL;
	float *ws = NULL;
	int rc;

	if (q == NULL || (ws = kp_quantize_weights(wt->data, oc, per, q)) == NULL) {
		free(q);
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	}
	qmd.data_type = dnnl_s8;
	rc = KP_CHK(p, dnnl_memory_create(&tmp, &qmd, p->eng, q), n, "memory");
	if (rc == 0)
		rc = kp_mem_new(p, want, NULL, wm, n);
	if (rc == 0)
		rc = kp_reorder(p, tmp, *wm, true, n);
	if (tmp != NULL)
		dnnl_memory_destroy(tmp);
	for (size_t o = 0; o < oc; o++)
		out_scales[o] = src_scale * ws[o];
	if (rc == 0 && bt != NULL)
		rc = kp_int8_bias(p, bt, oc, out_scales, bm, n);
	free(q);
	free(ws);
	return rc;
}

int
kp_int8_layer(struct kern_plan *p, const struct kern_node *n, const void *op_desc,
	      const struct tg_tensor *wt, const struct tg_tensor *bt,
	      const dnnl_memory_desc_t *w_plain_f32, float src_scale, int64_t oc,
	      struct kp_prim *pr, dnnl_memory_t *wm, dnnl_memory_t *bm)
{
	float *oscale = kern_malloc((size_t)oc * sizeof(float));
	dnnl_primitive_desc_t probe = NULL;
	int rc;

	if (oscale == NULL)
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	/* Provisional scales: the probe pd only needs the mask; values are set below. */
	for (int64_t o = 0; o < oc; o++)
		oscale[o] = 1.f;
	rc = KP_CHK(p, dnnl_primitive_attr_set_output_scales(pr->attr, oc, 1 << 1, oscale), n,
		    "output scales");
	if (rc == 0)
		rc = KP_CHK(p, dnnl_primitive_desc_create(&probe, op_desc, pr->attr, p->eng, NULL), n,
			    "int8 pd");
	if (rc == 0)
		rc = kp_int8_consts(p, wt, bt, w_plain_f32,
				    dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0),
				    src_scale, (size_t)oc, oscale, wm, bm, n);
	if (probe != NULL)
		dnnl_primitive_desc_destroy(probe);
	if (rc == 0)
		rc = KP_CHK(p, dnnl_primitive_attr_set_output_scales(pr->attr, oc, 1 << 1, oscale),
			    n, "output scales");
	free(oscale);
	return rc;
}

/*
 * The data types of a Conv or Gemm: int8 when the plan is int8 and both the input and the
 * fused chain's output have a calibrated range (and the output is not a plan output, which
 * is f32), with the residual of a fused Add placed in dst in its own int8 type.
 */
bool
kp_layer_quant(struct kern_plan *p, int x, const struct kp_chain *c, dnnl_data_type_t *xdt,
	       float *xs, struct kp_quant *q)
{
	float ys = 1.f;

	*q = kp_quant_f32;
	if (!kp_qparams(p, x, xdt, xs))
		return false;
	if (!p->is_pout[c->out_v] && kp_qparams(p, c->out_v, &q->dst_dt, &ys)) {
		q->dst_scale = 1.f / ys;
		if (c->sum_v >= 0) {
			float rs;

			if (!kp_qparams(p, c->sum_v, &q->sum_dt, &rs)) {
				q->dst_dt = dnnl_f32;	/* residual without a range: f32 dst */
				q->dst_scale = 1.f;
				q->sum_dt = dnnl_f32;
			} else {
				q->sum_scale = rs;
			}
		}
	}
	return true;
}

