/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Convolutions: Conv (grouped, depthwise, dilated, 1-D and 2-D) and ConvTranspose (the same,
 * with output_padding, output_shape and auto_pad). The window attributes and geometry are
 * shared with the pools (op_pool.c).
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- windows: attributes and geometry, shared with the pools ---- */

int
kern_attr_auto_pad(struct kern_attrs *a, int *auto_pad, bool *valid)
{
	static const char *const modes[] = { "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", NULL };
	int k = kern_attr_enum(a, "auto_pad", modes, 0);

	if (k < 0)
		return kern_attr_bad(a, "auto_pad", "unknown value");
	*valid = k == 1;
	*auto_pad = k >= 2 ? k - 1 : 0;	/* 1 SAME_UPPER, 2 SAME_LOWER */
	return 0;
}

int
kern_attr_window(struct kern_attrs *a, int *nsp, int64_t *kernel, int64_t *strides,
		 int64_t *dilations, int64_t *pads, bool need_kernel)
{
	int64_t k[8], s[8], d[8], p[8];
	int nk, ns, nd, np;

	nk = kern_attr_ints(a, "kernel_shape", k, 8);
	ns = kern_attr_ints(a, "strides", s, 8);
	nd = kern_attr_ints(a, "dilations", d, 8);
	np = kern_attr_ints(a, "pads", p, 8);
	if (nk < 0 || ns < 0 || nd < 0 || np < 0)
		return -EINVAL;
	if (need_kernel && nk == 0)
		return kern_attr_bad(a, "kernel_shape", "required");
	if (nk > 2)
		return kern_attr_bad(a, "kernel_shape", "only 1-D and 2-D windows are supported");
	*nsp = nk;	/* 0 for Conv without kernel_shape: taken from the weights later */
	for (int i = 0; i < 2; i++) {
		kernel[i] = i < nk ? k[i] : 1;
		strides[i] = 1;
		dilations[i] = 1;
		pads[i] = pads[i + 2] = 0;
	}
	if ((ns && nk && ns != nk) || (nd && nk && nd != nk) || (np && nk && np != 2 * nk))
		return kern_attr_bad(a, "strides/dilations/pads", "rank does not match the kernel");
	if (ns > 2 || nd > 2 || np > 4)
		return kern_attr_bad(a, "strides/dilations/pads", "only 1-D and 2-D are supported");
	for (int i = 0; i < ns; i++)
		strides[i] = s[i];
	for (int i = 0; i < nd; i++)
		dilations[i] = d[i];
	for (int i = 0; i < np / 2; i++) {
		pads[i] = p[i];
		pads[i + 2] = p[i + np / 2];
	}
	for (int i = 0; i < 2; i++) {
		if (kernel[i] < 1 || kernel[i] > 1024 || strides[i] < 1 || strides[i] > 1024 ||
		    dilations[i] < 1 || dilations[i] > 1024)
			return kern_attr_bad(a, "kernel_shape/strides/dilations", "out of range");
		if (pads[i] < 0 || pads[i + 2] < 0 || pads[i] > 1024 || pads[i + 2] > 1024)
			return kern_attr_bad(a, "pads", "out of range");
	}
	return 0;
}

int64_t
kern_window_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t *pb, int64_t *pe,
		int auto_pad, bool valid, bool ceil_mode)
{
	int64_t ek = (k - 1) * d + 1, out;

	if (valid) {
		*pb = *pe = 0;
	} else if (auto_pad) {
		out = (in + s - 1) / s;
		int64_t total = (out - 1) * s + ek - in;

		if (total < 0)
			total = 0;
		*pb = auto_pad == 1 ? total / 2 : total - total / 2;
		*pe = total - *pb;
	}
	int64_t span = in + *pb + *pe - ek;

	if (span < 0)
		return -1;
	out = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
	/* A window may not start in the end padding (ONNX and PyTorch agree). */
	if (ceil_mode && (out - 1) * s >= in + *pb)
		out--;
	return out;
}

int
kern_conv_resolve(const struct kern_node *n, const int64_t *in_sp, int nsp, int64_t *kernel,
		  int64_t *pads, int64_t *out_sp)
{
	const struct kern_conv_attr *c = &n->a.conv;

	for (int i = 0; i < nsp; i++) {
		pads[i] = c->pads[i];
		pads[i + 2] = c->pads[i + 2];
		out_sp[i] = kern_window_out(in_sp[i], kernel[i], c->strides[i], c->dilations[i],
					    &pads[i], &pads[i + 2], c->auto_pad, c->valid, false);
		if (out_sp[i] < 1)
			return -EINVAL;
	}
	return 0;
}

int
kern_convt_resolve(const struct kern_node *n, const int64_t *in_sp, int nsp,
		   const int64_t *kernel, int64_t *pads, int64_t *out_sp)
{
	const struct kern_conv_attr *c = &n->a.conv;

	for (int i = 0; i < nsp; i++) {
		int64_t full = c->strides[i] * (in_sp[i] - 1) + c->out_pad[i] +
			       (kernel[i] - 1) * c->dilations[i] + 1, total, half;

		pads[i] = c->valid ? 0 : c->pads[i];
		pads[i + 2] = c->valid ? 0 : c->pads[i + 2];
		if (c->has_out_shape || c->auto_pad) {
			/* The pads that give the wanted size, split as ONNX says. */
			out_sp[i] = c->has_out_shape ? c->out_shape[i] : in_sp[i] * c->strides[i];
			total = full - out_sp[i];
			if (total < 0)
				return -EINVAL;
			half = total / 2;
			pads[i] = c->auto_pad == 1 ? half : total - half;
			pads[i + 2] = total - pads[i];
		}
		out_sp[i] = full - pads[i] - pads[i + 2];
		if (out_sp[i] < 1 || (c->out_pad[i] >= c->strides[i] &&
				      c->out_pad[i] >= c->dilations[i]))
			return -EINVAL;
	}
	return 0;
}

/* ---- attributes ---- */

/* Conv's and ConvTranspose's window, auto_pad and group. */
static int
kern_conv_attrs(struct kern_attrs *a)
{
	struct kern_conv_attr *c = &a->n->a.conv;
	int rc = kern_attr_window(a, &c->nsp, c->kernel, c->strides, c->dilations, c->pads, false);

	if (rc == 0)
		rc = kern_attr_auto_pad(a, &c->auto_pad, &c->valid);
	c->group = kern_attr_int(a, "group", 1);
	if (rc == 0 && (c->group < 1 || c->group > (1 << 20)))
		rc = kern_attr_bad(a, "group", "out of range");
	return rc;
}

/* ConvTranspose's output_padding and output_shape (spatial; some exporters write [N,C,...]). */
static int
kern_convt_attrs(struct kern_attrs *a)
{
	struct kern_conv_attr *c = &a->n->a.conv;
	int64_t sh[TG_MAX_DIMS];
	int ns, rc = kern_conv_attrs(a);

	if (rc == 0)
		rc = kern_attr_ints(a, "output_padding", c->out_pad, 2);
	if (rc < 0)
		return rc;
	ns = kern_attr_ints(a, "output_shape", sh, TG_MAX_DIMS);
	if (ns < 0)
		return ns;
	if (ns > 2 && ns != 3 && ns != 4)
		return kern_attr_bad(a, "output_shape", "only 1-D and 2-D are supported");
	for (int i = 0; i < 2 && i < ns; i++)
		c->out_shape[i] = sh[ns > 2 ? i + 2 : i];
	c->has_out_shape = ns > 0;
	for (int i = 0; i < 2; i++)
		if (c->out_pad[i] < 0 || c->out_pad[i] > 1024 || c->out_shape[i] < 0 ||
		    c->out_shape[i] > (1 << 24))
			return kern_attr_bad(a, "output_padding/output_shape", "out of range");
	return 0;
}

/* ---- shapes ---- */

static int
kern_conv_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		int *ndp, int64_t *d, struct tg_err *err)
{
	int w = n->a.conv.nsp, wv = n->in[1], nd = *ndp;
	int64_t k[2], pads[4], out[2];

	if (wv < 0 || !s->known[wv] || n->n_in < 2)
		return kern_bad(err, n, "weights missing");
	if (!m->values[wv].is_const)
		return kern_bad(err, n, "weights must be an initializer");
	if (nd < 3 || nd > 4)
		return kern_bad(err, n, "only 1-D and 2-D convolutions are supported (input rank %d)",
				nd);
	if (s->ndim[wv] != nd)
		return kern_bad(err, n, "weights rank %d for input rank %d", s->ndim[wv], nd);
	if (w && w != nd - 2)
		return kern_bad(err, n, "kernel_shape rank does not match the input");
	for (int i = 0; i < nd - 2; i++) {
		k[i] = s->dims[wv][2 + i];
		if (w && n->a.conv.kernel[i] != k[i])
			return kern_bad(err, n, "kernel_shape disagrees with the weights");
	}
	if (d[1] != s->dims[wv][1] * n->a.conv.group || s->dims[wv][0] % n->a.conv.group)
		return kern_bad(err, n, "channels %lld do not match weights %lld x group %lld",
				(long long)d[1], (long long)s->dims[wv][1],
				(long long)n->a.conv.group);
	if (n->n_in > 2 && n->in[2] >= 0 &&
	    (s->ndim[n->in[2]] != 1 || s->dims[n->in[2]][0] != s->dims[wv][0] ||
	     !m->values[n->in[2]].is_const))
		return kern_bad(err, n, "bias must be a constant of %lld values",
				(long long)s->dims[wv][0]);
	if (kern_conv_resolve(n, d + 2, nd - 2, k, pads, out) < 0)
		return kern_bad(err, n, "window larger than the padded input");
	d[1] = s->dims[wv][0];
	for (int i = 0; i < nd - 2; i++)
		d[2 + i] = out[i];
	return 0;
}

static int
kern_convt_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 int *ndp, int64_t *d, struct tg_err *err)
{
	int wv = n->in[1], nd = *ndp;
	int64_t k[2], pads[4], out[2];

	if (wv < 0 || !s->known[wv])
		return kern_bad(err, n, "weights missing");
	if (!m->values[wv].is_const)
		return kern_bad(err, n, "weights must be an initializer");
	if (nd < 3 || nd > 4 || s->ndim[wv] != nd)
		return kern_bad(err, n, "only 1-D and 2-D transposed convolutions are supported");
	if (d[1] != s->dims[wv][0] || s->dims[wv][0] % n->a.conv.group)
		return kern_bad(err, n, "channels %lld do not match weights %lld (group %lld)",
				(long long)d[1], (long long)s->dims[wv][0],
				(long long)n->a.conv.group);
	for (int i = 0; i < nd - 2; i++) {
		k[i] = s->dims[wv][2 + i];
		if (n->a.conv.nsp && n->a.conv.kernel[i] != k[i])
			return kern_bad(err, n, "kernel_shape disagrees with the weights");
	}
	if (n->n_in > 2 && n->in[2] >= 0 &&
	    (s->ndim[n->in[2]] != 1 || !m->values[n->in[2]].is_const ||
	     s->dims[n->in[2]][0] != s->dims[wv][1] * n->a.conv.group))
		return kern_bad(err, n, "bias must be a constant of %lld values",
				(long long)(s->dims[wv][1] * n->a.conv.group));
	if (kern_convt_resolve(n, d + 2, nd - 2, k, pads, out) < 0)
		return kern_bad(err, n, "output size, pads and output_padding do not fit");
	d[1] = s->dims[wv][1] * n->a.conv.group;
	for (int i = 0; i < nd - 2; i++)
		d[2 + i] = out[i];
	return 0;
}

/* Every output element is a dot product over one output channel's weights. */
static uint64_t
kern_conv_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	uint64_t per = kern_numel(s, n->in[1]) / (uint64_t)s->dims[n->in[1]][0];

	return 2 * kern_numel(s, n->out[0]) * per;
}

/* Every input element meets OC/G x k... weights. */
static uint64_t
kern_convt_flops(const struct kern_shapes *s, const struct kern_node *n)
{
	uint64_t per = kern_numel(s, n->in[1]) / (uint64_t)s->dims[n->in[1]][0];

	return 2 * kern_numel(s, n->in[0]) * per;
}

/* ---- Conv ---- */

/*
 * A fused residual Add can accumulate straight into the residual's buffer when nothing reads
 * that buffer afterwards: its other readers run before the fused primitive, none of them is a
 * view aliasing it, it is no plan input or output, and its layout is the one dst wants.
 */
static bool
kp_sum_in_place(const struct kern_plan *p, const struct kern_node *head, const struct kp_chain *c,
		const dnnl_memory_desc_t *dst_md)
{
	const struct kern_model *m = p->m;
	int r = c->sum_v, at = p->epos[head - m->nodes];
	const struct kern_node *add = NULL;
	dnnl_memory_desc_t rmd;

	if (r < 0 || p->vmem[r] == NULL || p->is_pout[r] || m->values[r].is_input ||
	    m->values[r].is_static)
		return false;
	for (unsigned i = 0; i < p->n_in; i++)
		if (p->in_v[i] == r)
			return false;
	rmd = *kp_md(p->vmem[r]);
	if (kp_is_int8(&rmd) != kp_is_int8(dst_md))
		return false;
	rmd.data_type = dst_md->data_type;
	if (!dnnl_memory_desc_equal(&rmd, dst_md))
		return false;
	for (int k = 0; k < c->n; k++)
		if (c->nodes[k]->op == KOP_ADD)
			add = c->nodes[k];
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];
		bool reads = false;

		if (!p->active[i] || n->is_static || n->dead || n == add)
			continue;
		for (int k = 0; k < n->n_in; k++)
			reads |= n->in[k] == r;
		if (!reads)
			continue;
		if (p->epos[i] >= at || kern_ops[n->op]->view)
			return false;
	}
	return true;
}

/* A Conv as oneDNN takes it, with its int8 decisions. */
struct kp_conv {
	dnnl_convolution_desc_t cd;
	dnnl_memory_desc_t w_plain, b_plain;
	struct kp_quant q;
	dnnl_data_type_t xdt;
	float xs;			/* the input's int8 scale */
	bool i8;
	int64_t oc;
};

/*
 * Grouped f32 convolutions ask for NHWC (acdb) source and destination. Under format `any`
 * oneDNN 2.6 runs a grouped conv with its blocked kernels (aBcd8b, aBcd16b) while the dense
 * convolutions, pooling and residual Adds around it settle on NHWC (brgconv), so each grouped
 * conv paid a reorder of its input, of its residual and of its output: 17% of the batch-64
 * time of fmnist-resnet's predefined-sparse variant, which ran 20% faster without them
 * (variants/sparse/TRAINING.md). The same jit kernels take NHWC. kp_build_conv() falls back
 * to `any` when only oneDNN's reference kernel would take it.
 */
static bool
kp_conv_nhwc_first(const struct kern_plan *p, const struct kern_node *n)
{
	return n->a.conv.group > 1 && p->sh.ndim[n->in[0]] == 4 && !p->int8;
}

static int
kp_conv_desc(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c,
	     struct kp_conv *cv, bool nhwc)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1;
	int nd = s->ndim[x], nsp = nd - 2, wnd = 0;
	int64_t g = n->a.conv.group, k[2], pads[4], osp[2], wd[TG_MAX_DIMS + 1] = { 0 };
	dnnl_memory_desc_t src_md, w_md, b_md, dst_md;
	dnnl_dims_t strides, dil, pl, pr;

	for (int i = 0; i < nsp; i++)
		k[i] = s->dims[w][2 + i];
	kern_conv_resolve(n, s->dims[x] + 2, nsp, k, pads, osp);
	for (int i = 0; i < nsp; i++) {
		strides[i] = n->a.conv.strides[i];
		dil[i] = n->a.conv.dilations[i] - 1;
		pl[i] = pads[i];
		pr[i] = pads[i + 2];
	}
	cv->oc = s->dims[w][0];
	cv->xdt = dnnl_f32;
	cv->xs = 1.f;
	cv->i8 = kp_layer_quant(p, x, c, &cv->xdt, &cv->xs, &cv->q);
	kp_any_md(&src_md, nd, s->dims[x]);
	kp_any_md(&dst_md, nd, s->dims[c->out_v]);
	src_md.data_type = cv->xdt;
	dst_md.data_type = cv->q.dst_dt;
	if (nhwc && !cv->i8) {
		int rc = KP_CHK(p, dnnl_memory_desc_init_by_tag(&src_md, nd, src_md.dims, dnnl_f32,
								dnnl_acdb), n, "NHWC source");

		if (rc == 0)
			rc = KP_CHK(p, dnnl_memory_desc_init_by_tag(&dst_md, nd, dst_md.dims, dnnl_f32,
								    dnnl_acdb), n, "NHWC destination");
		if (rc < 0)
			return rc;
	}
	/* Grouped weights are [G, OC/G, IC/G, k...] to oneDNN; same bytes as ONNX's [OC, IC/G, k...]. */
	if (g > 1) {
		wd[wnd++] = g;
		wd[wnd++] = s->dims[w][0] / g;
	} else {
		wd[wnd++] = s->dims[w][0];
	}
	for (int i = 1; i < nd; i++)
		wd[wnd++] = s->dims[w][i];
	kp_plain_md(&cv->w_plain, wnd, wd);
	kp_any_md(&w_md, wnd, wd);
	if (cv->i8)
		w_md.data_type = dnnl_s8;
	if (b >= 0) {
		kp_plain_md(&cv->b_plain, 1, s->dims[b]);
		b_md = cv->b_plain;
	}
	return KP_CHK(p, dnnl_dilated_convolution_forward_desc_init(&cv->cd, dnnl_forward_inference,
			dnnl_convolution_direct, &src_md, &w_md, b >= 0 ? &b_md : NULL, &dst_md,
			strides, dil, pl, pr), n, "convolution");
}

/* The destination, as y's memory: the residual's own bytes when a fused Add can accumulate
 * in place; else new, with the residual placed in it first (the sum post-op adds what dst
 * holds), in the type the post-op reads it as (f32 dst: real units; int8: its own scale). */
static int
kp_conv_dst(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c,
	    const struct kp_conv *cv, const struct kp_prim *pr, dnnl_memory_t *dst)
{
	const dnnl_memory_desc_t *dmd = kp_prim_md(pr, dnnl_query_dst_md);
	bool in_place = kp_sum_in_place(p, n, c, dmd);
	dnnl_memory_desc_t rmd;
	dnnl_memory_t other, place;
	int rc;

	rc = kp_mem_new(p, dmd, in_place ? kp_handle(p->vmem[c->sum_v]) : NULL, dst, n);
	if (rc < 0)
		return rc;
	p->vmem[c->out_v] = *dst;
	if (c->sum_v < 0 || in_place)
		return 0;
	rmd = *kp_md(*dst);
	rmd.data_type = kp_is_int8(kp_md(*dst)) ? cv->q.sum_dt : dnnl_f32;
	rc = kp_get(p, c->sum_v, NULL, &other, n);
	if (rc == 0)
		rc = kp_mem_new(p, &rmd, kp_handle(*dst), &place, n);
	if (rc == 0)
		rc = kp_reorder_v(p, c->sum_v, other, place, false, n);
	return rc;
}

/* True when oneDNN picked its reference (slow, any-layout) kernel for pd. */
static bool
kp_is_ref_impl(const_dnnl_primitive_desc_t pd)
{
	const char *impl = NULL;

	if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
	    impl == NULL)
		return false;
	return strncmp(impl, "ref", 3) == 0;
}

/* Conv with its fused followers (activations, one residual Add), f32 or int8. */
static int
kp_build_conv(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	int w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1;
	bool nhwc = kp_conv_nhwc_first(p, n);
	struct kp_prim pr = { 0 };
	struct kp_conv cv;
	dnnl_memory_t src, wm = NULL, bm = NULL, dst;
	int rc = kp_conv_desc(p, n, c, &cv, nhwc);

	if (rc == 0)
		rc = kp_chain_attr(p, c, &pr.attr, n, &cv.q);
	if (rc == 0 && cv.i8)
		rc = kp_int8_layer(p, n, &cv.cd, &p->sh.sval[w], b >= 0 ? &p->sh.sval[b] : NULL,
				   &cv.w_plain, cv.xs, cv.oc, &pr, &wm, &bm);
	rc = kp_prim_desc(p, &pr, rc, &cv.cd, n, "convolution pd");
	if (rc == 0 && nhwc && kp_is_ref_impl(pr.pd)) {
		dnnl_primitive_desc_destroy(pr.pd);
		pr.pd = NULL;
		rc = kp_conv_desc(p, n, c, &cv, false);
		rc = kp_prim_desc(p, &pr, rc, &cv.cd, n, "convolution pd");
	}
	if (rc == 0)
		rc = kp_get(p, n->in[0], kp_prim_md(&pr, dnnl_query_src_md), &src, n);
	if (rc == 0 && !cv.i8)
		rc = kp_const(p, w, &cv.w_plain, kp_prim_md(&pr, dnnl_query_weights_md), &wm, n);
	if (rc == 0 && b >= 0 && !cv.i8)
		rc = kp_const(p, b, &cv.b_plain, NULL, &bm, n);
	if (rc == 0)
		rc = kp_conv_dst(p, n, c, &cv, &pr, &dst);
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, src);
		kp_arg(&pr, DNNL_ARG_WEIGHTS, wm);
		kp_arg(&pr, DNNL_ARG_DST, dst);
		if (bm != NULL)
			kp_arg(&pr, DNNL_ARG_BIAS, bm);
	}
	return kp_prim_end(p, &pr, rc, -1, n);
}

/* ---- ConvTranspose ---- */

/*
 * oneDNN's deconvolution, f32. ONNX weights are [IC, OC/G, k...]: the same bytes described to
 * oneDNN as [OC, IC, k...] (or [G, OC/G, IC/G, k...]) through strides, then reordered once
 * into the layout the primitive picked. output_padding adds rows at the end: it comes off
 * the end padding.
 */
static int
kp_convt_desc(struct kern_plan *p, const struct kern_node *n, dnnl_deconvolution_desc_t *dd,
	      dnnl_memory_desc_t *w_plain, dnnl_memory_desc_t *b_md)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1;
	int nd = s->ndim[x], nsp = nd - 2, wnd = 0;
	int64_t g = n->a.conv.group, k[2] = { 1, 1 }, pads[4], osp[2];
	int64_t ic = s->dims[w][0], ocg = s->dims[w][1], icg = ic / g, ksz = 1;
	dnnl_memory_desc_t src_md, w_md, dst_md;
	dnnl_dims_t strides, dil, pl, pr, wd, ws;

	for (int i = 0; i < nsp; i++) {
		k[i] = s->dims[w][2 + i];
		ksz *= k[i];
	}
	if (kern_convt_resolve(n, s->dims[x] + 2, nsp, k, pads, osp) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (ConvTranspose): bad geometry",
				  n->name);
	for (int i = 0; i < nsp; i++) {
		strides[i] = n->a.conv.strides[i];
		dil[i] = n->a.conv.dilations[i] - 1;
		pl[i] = pads[i];
		pr[i] = pads[i + 2] - n->a.conv.out_pad[i];
	}
	/* Logical [G,] OC/G, IC/G, k... over ONNX's [G x IC/G, OC/G, k...] bytes. */
	if (g > 1) {
		wd[wnd] = g;
		ws[wnd++] = icg * ocg * ksz;
	}
	wd[wnd] = g > 1 ? ocg : ocg * g;
	ws[wnd++] = ksz;
	wd[wnd] = icg;
	ws[wnd++] = ocg * ksz;
	for (int i = 0; i < nsp; i++) {
		wd[wnd] = k[i];
		ws[wnd++] = i + 1 < nsp ? k[i + 1] : 1;
	}
	dnnl_memory_desc_init_by_strides(w_plain, wnd, wd, dnnl_f32, ws);
	dnnl_memory_desc_init_by_tag(&w_md, wnd, wd, dnnl_f32, dnnl_format_tag_any);
	kp_any_md(&src_md, nd, s->dims[x]);
	kp_any_md(&dst_md, nd, s->dims[n->out[0]]);
	if (b >= 0)
		kp_plain_md(b_md, 1, s->dims[b]);
	return KP_CHK(p, dnnl_dilated_deconvolution_forward_desc_init(dd, dnnl_forward_inference,
			dnnl_deconvolution_direct, &src_md, &w_md, b >= 0 ? b_md : NULL, &dst_md,
			strides, dil, pl, pr), n, "deconvolution");
}

static int
kp_build_convt(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	int b = n->n_in > 2 ? n->in[2] : -1;
	dnnl_deconvolution_desc_t dd;
	dnnl_memory_desc_t w_plain, b_md;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src, wm, bm = NULL;
	int rc = kp_convt_desc(p, n, &dd, &w_plain, &b_md);

	(void)c;
	rc = kp_prim_desc(p, &pr, rc, &dd, n, "deconvolution pd");
	if (rc == 0)
		rc = kp_get(p, n->in[0], kp_prim_md(&pr, dnnl_query_src_md), &src, n);
	if (rc == 0)
		rc = kp_const(p, n->in[1], &w_plain, kp_prim_md(&pr, dnnl_query_weights_md), &wm, n);
	if (rc == 0 && b >= 0)
		rc = kp_const(p, b, &b_md, NULL, &bm, n);
	if (rc == 0) {
		kp_arg(&pr, DNNL_ARG_SRC, src);
		kp_arg(&pr, DNNL_ARG_WEIGHTS, wm);
		if (bm != NULL)
			kp_arg(&pr, DNNL_ARG_BIAS, bm);
	}
	return kp_prim_end(p, &pr, rc, n->out[0], n);
}

/* ---- definitions ---- */

const struct kern_op_def kern_op_conv = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "dilations", "group",
					"auto_pad", NULL },
	.attrs = kern_conv_attrs,
	.infer = kern_conv_infer,
	.flops = kern_conv_flops,
	.build = kp_build_conv,
	.fuses = true,
	.fuses_sum = true,
};

const struct kern_op_def kern_op_convt = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "dilations", "group",
					"auto_pad", "output_padding", "output_shape", NULL },
	.attrs = kern_convt_attrs,
	.infer = kern_convt_infer,
	.flops = kern_convt_flops,
	.build = kp_build_convt,
};
