/*
 * Convolutions: Conv (grouped, depthwise, dilated, 1-D and 2-D) and ConvTranspose (the same,
 * with output_padding, output_shape and auto_pad). The window attributes and geometry are
 * shared with the pools (op_pool.c).
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <stdio.h>
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

/* ---- definitions ---- */

const struct kern_op_def kern_op_conv = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "dilations", "group",
					"auto_pad", NULL },
	.attrs = kern_conv_attrs,
	.infer = kern_conv_infer,
	.flops = kern_conv_flops,
	.fuses = true,
	.fuses_sum = true,
};

const struct kern_op_def kern_op_convt = {
	.known = (const char *const[]){ "kernel_shape", "strides", "pads", "dilations", "group",
					"auto_pad", "output_padding", "output_shape", NULL },
	.attrs = kern_convt_attrs,
	.infer = kern_convt_infer,
	.flops = kern_convt_flops,
};
