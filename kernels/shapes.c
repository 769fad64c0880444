/*
 * Shapes and static values. Only the batch dimension varies between runs, so the exporter's
 * shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) is evaluated here,
 * once per plan, from the graph inputs' concrete shapes; it never executes with the batch.
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
kern_shapes_alloc(const struct kern_model *m, struct kern_shapes *s)
{
	size_t n = m->n_values ? m->n_values : 1;

	s->ndim = calloc(n, sizeof(*s->ndim));
	s->dims = calloc(n, sizeof(*s->dims));
	s->sval = calloc(n, sizeof(*s->sval));
	s->known = calloc(n, sizeof(*s->known));
	if (!s->ndim || !s->dims || !s->sval || !s->known) {
		kern_shapes_free(m, s);
		return -ENOMEM;
	}
	return 0;
}

void
kern_shapes_free(const struct kern_model *m, struct kern_shapes *s)
{
	if (s->sval)
		for (unsigned v = 0; v < m->n_values; v++)
			if (!m->values[v].is_const)	/* constants alias the model's data */
				tg_tensor_free(&s->sval[v]);
	free(s->ndim);
	free(s->dims);
	free(s->sval);
	free(s->known);
	memset(s, 0, sizeof(*s));
}

/* Element i of a static value as a double; every type a file's constant may have. */
static int
kern_sval_double(const struct tg_tensor *t, size_t i, double *x)
{
	switch (t->dtype) {
	case TG_DT_F32: *x = ((const float *)t->data)[i]; return 0;
	case TG_DT_F64: *x = ((const double *)t->data)[i]; return 0;
	case TG_DT_S64: *x = (double)((const int64_t *)t->data)[i]; return 0;
	case TG_DT_S32: *x = ((const int32_t *)t->data)[i]; return 0;
	case TG_DT_U8: *x = ((const uint8_t *)t->data)[i]; return 0;
	case TG_DT_S8: *x = ((const int8_t *)t->data)[i]; return 0;
	default: return -EINVAL;
	}
}

/* The static value v, at most max elements. @return it, or NULL (none, or too long). */
static const struct tg_tensor *
kern_static_of(const struct kern_shapes *s, int v, int max)
{
	if (v < 0 || s->sval[v].data == NULL || tg_tensor_numel(&s->sval[v]) > (size_t)max)
		return NULL;
	return &s->sval[v];
}

int
kern_static_ints(const struct kern_shapes *s, int v, int64_t *out, int max)
{
	const struct tg_tensor *t = kern_static_of(s, v, max);
	size_t n = t ? tg_tensor_numel(t) : 0;

	if (t == NULL)
		return v >= 0 && s->sval[v].data ? -E2BIG : -EINVAL;
	for (size_t i = 0; i < n; i++) {
		double x;

		if (t->dtype == TG_DT_S64) {	/* exact: int64 does not fit a double */
			out[i] = ((const int64_t *)t->data)[i];
			continue;
		}
		if (kern_sval_double(t, i, &x) < 0 || !(x >= -0x1p62 && x <= 0x1p62))
			return -EINVAL;	/* NaN too: not a shape value */
		out[i] = (int64_t)x;
	}
	return (int)n;
}

/* A static float vector (any numeric type). @return its length, or -EINVAL. */
static int
kern_static_floats(const struct kern_shapes *s, int v, float *out, int max)
{
	const struct tg_tensor *t = kern_static_of(s, v, max);
	size_t n = t ? tg_tensor_numel(t) : 0;
	double x;

	if (t == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (kern_sval_double(t, i, &x) < 0)
			return -EINVAL;
		out[i] = (float)x;
	}
	return (int)n;
}

int
kern_static_float(const struct kern_shapes *s, int v, float *out)
{
	return kern_static_floats(s, v, out, 1) == 1 ? 0 : -EINVAL;
}

/* ---- helpers ---- */

/* An error naming the node and op, then what is wrong with it. */
static int __attribute__((format(printf, 3, 4)))
kern_bad(struct tg_err *err, const struct kern_node *n, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return tg_err_set(err, -EINVAL, "node \"%s\" (%s): %s", n->name, kern_op_names[n->op], what);
}
#define BAD(node, ...) kern_bad(err, (node), __VA_ARGS__)

static int64_t
kern_norm_axis(int64_t axis, int rank)
{
	return axis < 0 ? axis + rank : axis;
}

static void
kern_set_shape(struct kern_shapes *s, int v, int ndim, const int64_t *dims)
{
	s->ndim[v] = ndim;
	memcpy(s->dims[v], dims, (size_t)ndim * sizeof(int64_t));
	s->known[v] = true;
}

static uint64_t
kern_numel(const struct kern_shapes *s, int v)
{
	uint64_t n = 1;

	for (int i = 0; i < s->ndim[v]; i++)
		n *= (uint64_t)s->dims[v][i];
	return n;
}

/* Numpy broadcasting of two shapes. */
static int
kern_broadcast(const struct kern_shapes *s, int a, int b, int *ndim, int64_t *dims)
{
	int na = s->ndim[a], nb = s->ndim[b], n = na > nb ? na : nb;

	for (int i = 0; i < n; i++) {
		int64_t da = i < n - na ? 1 : s->dims[a][i - (n - na)];
		int64_t db = i < n - nb ? 1 : s->dims[b][i - (n - nb)];

		if (da != db && da != 1 && db != 1)
			return -EINVAL;
		dims[i] = da == 1 ? db : da;
	}
	*ndim = n;
	return 0;
}

/* Output size of one window dimension; pads may be rewritten for auto_pad. */
static int64_t
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

int
kern_pool_resolve(const struct kern_node *n, const int64_t *in_sp, int64_t *pads,
		  int64_t *out_sp)
{
	const struct kern_pool_attr *p = &n->a.pool;

	for (int i = 0; i < p->nsp; i++) {
		pads[i] = p->pads[i];
		pads[i + 2] = p->pads[i + 2];
		out_sp[i] = kern_window_out(in_sp[i], p->kernel[i], p->strides[i], p->dilations[i],
					    &pads[i], &pads[i + 2], p->auto_pad, p->valid,
					    p->ceil_mode);
		if (out_sp[i] < 1)
			return -EINVAL;
	}
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

int
kern_resize_geometry(const struct kern_model *m, const struct kern_shapes *s,
		     const struct kern_node *n, int64_t *out_dims, float *scales, const char **why)
{
	int x = n->in[0], nd = s->ndim[x], sv = -1, zv = -1, ns = 0;
	int64_t sizes[TG_MAX_DIMS];
	const int64_t *d = s->dims[x];

	/* Where scales and sizes are: Upsample-7 an attribute, Upsample-9 and Resize-10 the
	 * second input, Resize-11.. the third (scales) or the fourth (sizes). */
	if (n->op == KOP_UPSAMPLE && n->a.resize.n_scales) {
		ns = n->a.resize.n_scales;
		memcpy(scales, n->a.resize.scales, (size_t)ns * sizeof(float));
	} else if (n->op == KOP_UPSAMPLE || m->opset < 11) {
		sv = n->in[1];
	} else {
		sv = n->in[2];
		zv = n->in[3];
	}
	if (sv >= 0 && (ns = kern_static_floats(s, sv, scales, TG_MAX_DIMS)) < 0) {
		*why = "scales must be constants";
		return -EINVAL;
	}
	if (ns == 0 && zv >= 0) {
		if (kern_static_ints(s, zv, sizes, TG_MAX_DIMS) != nd) {
			*why = "sizes must be constants, one per dim";
			return -EINVAL;
		}
		for (int i = 0; i < nd; i++) {
			out_dims[i] = sizes[i];
			scales[i] = d[i] > 0 ? (float)sizes[i] / (float)d[i] : 0.f;
		}
	} else if (ns == nd) {
		for (int i = 0; i < nd; i++)
			out_dims[i] = (int64_t)floor((double)d[i] * scales[i]);
	} else {
		*why = "scales or sizes must give one value per dim";
		return -EINVAL;
	}
	if (nd < 3 || nd > 5 || out_dims[0] != d[0] || out_dims[1] != d[1]) {
		*why = "only the 1 to 3 spatial dims may be resized";
		return -EINVAL;
	}
	for (int i = 2; i < nd; i++) {
		if (d[i] < 1 || out_dims[i] < 1 || out_dims[i] > (1 << 24) || !(scales[i] > 0.f)) {
			*why = "output size out of range";
			return -EINVAL;
		}
		/* Nearest: oneDNN and ONNX pick the same pixel for whole upscale factors with
		 * half-pixel centres (any rounding) or asymmetric floor. */
		bool half = n->a.resize.coord == KERN_RS_HALF_PIXEL ||
			    n->a.resize.coord == KERN_RS_PYTORCH_HALF_PIXEL;
		bool rounds = n->a.resize.nearest == KERN_RS_ROUND_PREFER_FLOOR ||
			      n->a.resize.nearest == KERN_RS_ROUND_PREFER_CEIL;

		/* Nearest: for a whole upscale factor k ONNX picks floor(dst / k), as oneDNN
		 * does, with half-pixel centres and rounding to nearest (never exactly at .5), or
		 * with asymmetric coordinates and floor. */
		if (n->a.resize.mode == KERN_RS_NEAREST &&
		    (out_dims[i] % d[i] != 0 || scales[i] != (float)(out_dims[i] / d[i]) ||
		     !((half && rounds) || (n->a.resize.coord == KERN_RS_ASYMMETRIC &&
					    n->a.resize.nearest == KERN_RS_FLOOR)))) {
			*why = "nearest is supported for whole upscale factors with half_pixel "
			       "coordinates rounding to nearest, or asymmetric ones and floor";
			return -EINVAL;
		}
		/* Linear: oneDNN's half-pixel interpolation, upscaling only (downscaling differs). */
		if (n->a.resize.mode == KERN_RS_LINEAR &&
		    (!half || out_dims[i] < d[i] || scales[i] < 1.f)) {
			*why = "linear is supported for upscaling with half_pixel or "
			       "pytorch_half_pixel coordinates only";
			return -EINVAL;
		}
	}
	if (n->a.resize.mode == KERN_RS_CUBIC) {
		*why = "cubic interpolation is not supported";
		return -EINVAL;
	}
	return 0;
}

/*
 * A Slice on activations, as a box: begin[i] and count[i] for every dim of the nd-D input
 * dims (untouched dims: 0 and dims[i]). starts/ends/axes/steps come from the attributes
 * (opset < 10) or constant inputs; only step 1 is supported (a box is a sub-memory).
 * @return 0 or -EINVAL
 */
int
kern_slice_box(const struct kern_shapes *s, const struct kern_node *n, int nd,
	       const int64_t *dims, int64_t *begin, int64_t *count)
{
	int64_t st[TG_MAX_DIMS], en[TG_MAX_DIMS], ax[TG_MAX_DIMS], sp[TG_MAX_DIMS];
	int ns;

	for (int i = 0; i < nd; i++) {
		begin[i] = 0;
		count[i] = dims[i];
	}
	if (n->a.slice.has) {
		ns = n->a.slice.n;
		memcpy(st, n->a.slice.starts, sizeof(st));
		memcpy(en, n->a.slice.ends, sizeof(en));
		memcpy(ax, n->a.slice.axes, sizeof(ax));
		for (int i = 0; i < ns; i++)
			sp[i] = 1;
	} else {
		if (n->n_in < 3 || n->in[1] < 0 || n->in[2] < 0)
			return -EINVAL;
		ns = kern_static_ints(s, n->in[1], st, TG_MAX_DIMS);
		if (ns < 0 || kern_static_ints(s, n->in[2], en, TG_MAX_DIMS) != ns)
			return -EINVAL;
		for (int i = 0; i < ns; i++) {
			ax[i] = i;
			sp[i] = 1;
		}
		if (n->n_in > 3 && n->in[3] >= 0 && kern_static_ints(s, n->in[3], ax, TG_MAX_DIMS) != ns)
			return -EINVAL;
		if (n->n_in > 4 && n->in[4] >= 0 && kern_static_ints(s, n->in[4], sp, TG_MAX_DIMS) != ns)
			return -EINVAL;
	}
	for (int i = 0; i < ns; i++) {
		int64_t a = kern_norm_axis(ax[i], nd), len, b, e;

		if (a < 0 || a >= nd || sp[i] != 1)
			return -EINVAL;
		len = dims[a];
		b = st[i] < 0 ? st[i] + len : st[i];
		e = en[i] < 0 ? en[i] + len : en[i];
		b = b < 0 ? 0 : b > len ? len : b;
		e = e < 0 ? 0 : e > len ? len : e;
		begin[a] = b;
		count[a] = e > b ? e - b : 0;
	}
	return 0;
}

/* The sizes of a Split's outputs along its axis: given, or equal parts. @return 0 or -EINVAL */
int
kern_split_sizes(const struct kern_shapes *s, const struct kern_node *n, int64_t dim,
		 int64_t *sizes)
{
	int k = n->a.split.n_sizes;
	int64_t sum = 0;

	memcpy(sizes, n->a.split.sizes, sizeof(n->a.split.sizes));
	if (n->n_in > 1 && n->in[1] >= 0) {
		k = kern_static_ints(s, n->in[1], sizes, KERN_MAX_OUT);
		if (k < 0)
			return -EINVAL;
	}
	if (k == 0) {	/* equal parts; the last one smaller when they do not divide (opset 18) */
		int64_t part = (dim + n->n_out - 1) / n->n_out;

		for (int i = 0; i < n->n_out; i++) {
			sizes[i] = dim - sum < part ? dim - sum : part;
			sum += sizes[i];
		}
		return sum == dim ? 0 : -EINVAL;
	}
	if (k != n->n_out)
		return -EINVAL;
	for (int i = 0; i < k; i++) {
		if (sizes[i] < 0)
			return -EINVAL;
		sum += sizes[i];
	}
	return sum == dim ? 0 : -EINVAL;
}

/*
 * The axes a Reduce* node reduces, as flags per input dim: the attribute (opset < 18, and
 * ReduceSum < 13) or the static second input; none given means every axis, or none at all
 * with noop_with_empty_axes. @return 0 or -EINVAL (an axis out of range, or not static)
 */
int
kern_reduce_axes(const struct kern_shapes *s, const struct kern_node *n, int nd, bool *red)
{
	int64_t axes[TG_MAX_DIMS];
	int na = n->a.reduce.n_axes;

	memcpy(axes, n->a.reduce.axes, sizeof(axes));
	if (n->n_in > 1 && n->in[1] >= 0) {
		na = kern_static_ints(s, n->in[1], axes, TG_MAX_DIMS);
		if (na < 0)
			return -EINVAL;
	}
	for (int i = 0; i < nd; i++)
		red[i] = na == 0 && !n->a.reduce.noop_empty;
	for (int i = 0; i < na; i++) {
		int64_t a = kern_norm_axis(axes[i], nd);

		if (a < 0 || a >= nd)
			return -EINVAL;
		red[a] = true;
	}
	return 0;
}

/* ---- data ops: output shape from input shapes ---- */

static int
kern_infer_data(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		struct tg_err *err)
{
	int x = n->in[0], nd = 0, o = n->out[0];
	int64_t d[TG_MAX_DIMS];

	if (x < 0 || !s->known[x])
		return BAD(n, "input shape unknown");
	nd = s->ndim[x];
	memcpy(d, s->dims[x], sizeof(d));
	switch (n->op) {
	case KOP_CONV: {
		int w = n->a.conv.nsp, wv = n->in[1];
		int64_t k[2], pads[4], out[2];

		if (wv < 0 || !s->known[wv] || n->n_in < 2)
			return BAD(n, "weights missing");
		if (!m->values[wv].is_const)
			return BAD(n, "weights must be an initializer");
		if (nd < 3 || nd > 4)
			return BAD(n, "only 1-D and 2-D convolutions are supported (input rank %d)", nd);
		if (s->ndim[wv] != nd)
			return BAD(n, "weights rank %d for input rank %d", s->ndim[wv], nd);
		if (w && w != nd - 2)
			return BAD(n, "kernel_shape rank does not match the input");
		for (int i = 0; i < nd - 2; i++) {
			k[i] = s->dims[wv][2 + i];
			if (w && n->a.conv.kernel[i] != k[i])
				return BAD(n, "kernel_shape disagrees with the weights");
		}
		if (d[1] != s->dims[wv][1] * n->a.conv.group || s->dims[wv][0] % n->a.conv.group)
			return BAD(n, "channels %lld do not match weights %lld x group %lld",
				   (long long)d[1], (long long)s->dims[wv][1],
				   (long long)n->a.conv.group);
		if (n->n_in > 2 && n->in[2] >= 0 &&
		    (s->ndim[n->in[2]] != 1 || s->dims[n->in[2]][0] != s->dims[wv][0] ||
		     !m->values[n->in[2]].is_const))
			return BAD(n, "bias must be a constant of %lld values", (long long)s->dims[wv][0]);
		if (kern_conv_resolve(n, d + 2, nd - 2, k, pads, out) < 0)
			return BAD(n, "window larger than the padded input");
		d[1] = s->dims[wv][0];
		for (int i = 0; i < nd - 2; i++)
			d[2 + i] = out[i];
		break;
	}
	case KOP_CONVT: {
		int wv = n->in[1];
		int64_t k[2], pads[4], out[2];

		if (wv < 0 || !s->known[wv])
			return BAD(n, "weights missing");
		if (!m->values[wv].is_const)
			return BAD(n, "weights must be an initializer");
		if (nd < 3 || nd > 4 || s->ndim[wv] != nd)
			return BAD(n, "only 1-D and 2-D transposed convolutions are supported");
		if (d[1] != s->dims[wv][0] || s->dims[wv][0] % n->a.conv.group)
			return BAD(n, "channels %lld do not match weights %lld (group %lld)",
				   (long long)d[1], (long long)s->dims[wv][0],
				   (long long)n->a.conv.group);
		for (int i = 0; i < nd - 2; i++) {
			k[i] = s->dims[wv][2 + i];
			if (n->a.conv.nsp && n->a.conv.kernel[i] != k[i])
				return BAD(n, "kernel_shape disagrees with the weights");
		}
		if (n->n_in > 2 && n->in[2] >= 0 &&
		    (s->ndim[n->in[2]] != 1 || !m->values[n->in[2]].is_const ||
		     s->dims[n->in[2]][0] != s->dims[wv][1] * n->a.conv.group))
			return BAD(n, "bias must be a constant of %lld values",
				   (long long)(s->dims[wv][1] * n->a.conv.group));
		if (kern_convt_resolve(n, d + 2, nd - 2, k, pads, out) < 0)
			return BAD(n, "output size, pads and output_padding do not fit");
		d[1] = s->dims[wv][1] * n->a.conv.group;
		for (int i = 0; i < nd - 2; i++)
			d[2 + i] = out[i];
		break;
	}
	case KOP_MAXPOOL:
	case KOP_AVGPOOL: {
		int64_t pads[4], out[2];

		if (nd != n->a.pool.nsp + 2)
			return BAD(n, "input rank %d for a %d-D window", nd, n->a.pool.nsp);
		if (kern_pool_resolve(n, d + 2, pads, out) < 0)
			return BAD(n, "window larger than the padded input");
		for (int i = 0; i < nd - 2; i++)
			d[2 + i] = out[i];
		break;
	}
	case KOP_GAP:
	case KOP_GMP:
		if (nd < 3)
			return BAD(n, "input rank %d", nd);
		for (int i = 2; i < nd; i++)
			d[i] = 1;
		break;
	case KOP_BN:
		if (nd < 2)
			return BAD(n, "input rank %d", nd);
		for (int k = 1; k < 5; k++)
			if (n->in[k] < 0 || !m->values[n->in[k]].is_const ||
			    kern_numel(s, n->in[k]) != (uint64_t)d[1])
				return BAD(n, "scale, bias, mean and var must be constants of %lld values",
					   (long long)d[1]);
		break;
	case KOP_LAYERNORM: {
		int64_t ax = kern_norm_axis(n->a.ln.axis, nd);
		uint64_t inner = 1;

		if (ax < 0 || ax >= nd)
			return BAD(n, "axis out of range");
		for (int i = (int)ax; i < nd; i++)
			inner *= (uint64_t)d[i];
		for (int k = 1; k < 3; k++)
			if ((k == 1 || (n->n_in > 2 && n->in[2] >= 0)) &&
			    (n->n_in <= k || n->in[k] < 0 || !m->values[n->in[k]].is_const ||
			     kern_numel(s, n->in[k]) != inner))
				return BAD(n, "scale and bias must be constants of %llu values",
					   (unsigned long long)inner);
		break;
	}
	case KOP_RELU: case KOP_SIGMOID: case KOP_HARDSWISH: case KOP_HARDSIGMOID:
	case KOP_CLIP:
		for (int k = 1; k < n->n_in; k++)
			if (n->in[k] >= 0 && (!m->values[n->in[k]].is_static ||
					      kern_numel(s, n->in[k]) != 1))
				return BAD(n, "min and max must be constant scalars");
		break;
	case KOP_DROPOUT: {
		float train = 0.f;

		/* Inference only: a training-mode Dropout would scale and drop. */
		if (n->n_in > 2 && n->in[2] >= 0 &&
		    (kern_static_float(s, n->in[2], &train) < 0 || train != 0.f))
			return BAD(n, "training_mode must be a constant false");
		break;
	}
	case KOP_ERF:
		return BAD(n, "Erf runs only as part of GELU, x * 0.5 * (1 + erf(x / sqrt(2)))");
	case KOP_GELU:
	case KOP_IDENTITY: case KOP_LEAKYRELU: case KOP_ELU:
	case KOP_TANH: case KOP_EXP: case KOP_ABS: case KOP_SQRT: case KOP_NEG:
	case KOP_RECIPROCAL: case KOP_LOG: case KOP_SOFTPLUS: case KOP_MISH: case KOP_ROUND:
		break;
	case KOP_POW: {
		float e;

		if (n->n_in < 2 || n->in[1] < 0 || kern_static_float(s, n->in[1], &e) < 0)
			return BAD(n, "only a constant scalar exponent is supported");
		break;
	}
	case KOP_PRELU: {
		int64_t bd[TG_MAX_DIMS];
		int bn;

		if (n->n_in < 2 || n->in[1] < 0 || !s->known[n->in[1]])
			return BAD(n, "slope missing");
		if (kern_prelu_per_channel(m, s, n))
			break;
		if (kern_broadcast(s, x, n->in[1], &bn, bd) < 0 || bn != nd ||
		    memcmp(bd, d, (size_t)nd * sizeof(int64_t)) != 0)
			return BAD(n, "slope does not broadcast to the input");
		break;
	}
	case KOP_MAX: case KOP_MIN:
		if (n->n_in != 2 || n->in[1] < 0 || !s->known[n->in[1]])
			return BAD(n, "only two operands are supported (%d given)", n->n_in);
		if (kern_broadcast(s, x, n->in[1], &nd, d) < 0)
			return BAD(n, "shapes do not broadcast");
		break;
	case KOP_RESIZE:
	case KOP_UPSAMPLE: {
		float sc[TG_MAX_DIMS];
		const char *why = "";

		if (kern_resize_geometry(m, s, n, d, sc, &why) < 0)
			return BAD(n, "%s", why);
		break;
	}
	case KOP_SLICE: {
		int64_t begin[TG_MAX_DIMS];

		if (kern_slice_box(s, n, nd, s->dims[x], begin, d) < 0)
			return BAD(n, "starts/ends/axes must be constants, steps 1 (on activations)");
		break;
	}
	case KOP_SPLIT: {
		int64_t ax = kern_norm_axis(n->a.split.axis, nd), sizes[KERN_MAX_OUT];

		if (ax < 0 || ax >= nd)
			return BAD(n, "axis out of range");
		if (kern_split_sizes(s, n, d[ax], sizes) < 0)
			return BAD(n, "split sizes must be constants adding up to %lld over %d outputs",
				   (long long)d[ax], n->n_out);
		for (int k = 0; k < n->n_out; k++) {
			d[ax] = sizes[k];
			if (n->out[k] >= 0)
				kern_set_shape(s, n->out[k], nd, d);
		}
		return 0;
	}
	case KOP_REDUCEMEAN: case KOP_REDUCEMAX: case KOP_REDUCEMIN: case KOP_REDUCESUM:
	case KOP_REDUCEPROD: case KOP_REDUCEL1: case KOP_REDUCEL2: case KOP_REDUCESUMSQUARE: {
		bool red[TG_MAX_DIMS];

		if (kern_reduce_axes(s, n, nd, red) < 0)
			return BAD(n, "axes out of range, or not computable at load");
		if (n->a.reduce.keepdims) {
			for (int i = 0; i < nd; i++)
				if (red[i])
					d[i] = 1;
		} else {
			int k = 0;

			for (int i = 0; i < nd; i++)
				if (!red[i])
					d[k++] = d[i];
			nd = k;
		}
		break;
	}
	case KOP_TRANSPOSE: {
		int64_t od[TG_MAX_DIMS];
		bool seen[TG_MAX_DIMS] = { false };

		if (n->a.perm.n && n->a.perm.n != nd)
			return BAD(n, "perm has %d entries for rank %d", n->a.perm.n, nd);
		for (int i = 0; i < nd; i++) {
			int64_t a = n->a.perm.n ? n->a.perm.perm[i] : nd - 1 - i;

			if (a < 0 || a >= nd || seen[a])
				return BAD(n, "perm is not a permutation");
			seen[a] = true;
			od[i] = d[a];
		}
		memcpy(d, od, sizeof(od));
		break;
	}
	case KOP_SOFTMAX:
	case KOP_LOGSOFTMAX: {
		int64_t ax = kern_norm_axis(n->a.axis.axis, nd);

		if (ax < 0 || ax >= nd)
			return BAD(n, "axis %lld out of range", (long long)n->a.axis.axis);
		break;
	}
	case KOP_ADD: case KOP_MUL: case KOP_SUB: case KOP_DIV:
		if (n->in[1] < 0 || !s->known[n->in[1]])
			return BAD(n, "second input missing");
		if (kern_broadcast(s, x, n->in[1], &nd, d) < 0)
			return BAD(n, "shapes do not broadcast");
		break;
	case KOP_CONCAT: {
		int64_t ax = kern_norm_axis(n->a.axis.axis, nd);

		if (ax < 0 || ax >= nd)
			return BAD(n, "axis out of range");
		d[ax] = 0;
		for (int k = 0; k < n->n_in; k++) {
			int v = n->in[k];

			if (v < 0 || !s->known[v] || s->ndim[v] != nd)
				return BAD(n, "input %d rank differs", k);
			for (int i = 0; i < nd; i++)
				if (i != ax && s->dims[v][i] != s->dims[x][i])
					return BAD(n, "input %d dim %d differs", k, i);
			d[ax] += s->dims[v][ax];
		}
		break;
	}
	case KOP_GEMM: {
		int b = n->in[1];
		int64_t mm, kk, kb, nn;

		if (b < 0 || !s->known[b] || nd != 2 || s->ndim[b] != 2)
			return BAD(n, "A and B must be 2-D");
		if (!m->values[b].is_const || n->a.gemm.trans_a ||
		    (n->n_in > 2 && n->in[2] >= 0 && !m->values[n->in[2]].is_const))
			return BAD(n, "only transA=0 with constant B and C is supported");
		mm = n->a.gemm.trans_a ? d[1] : d[0];
		kk = n->a.gemm.trans_a ? d[0] : d[1];
		kb = n->a.gemm.trans_b ? s->dims[b][1] : s->dims[b][0];
		nn = n->a.gemm.trans_b ? s->dims[b][0] : s->dims[b][1];
		if (kk != kb)
			return BAD(n, "inner dims %lld and %lld differ", (long long)kk, (long long)kb);
		d[0] = mm;
		d[1] = nn;
		if (n->n_in > 2 && n->in[2] >= 0) {
			int c = n->in[2];

			if (!s->known[c])
				return BAD(n, "C shape unknown");
			if (s->ndim[c] > 2 || (s->ndim[c] == 2 && ((s->dims[c][0] != 1 && s->dims[c][0] != mm) ||
							       (s->dims[c][1] != 1 && s->dims[c][1] != nn))) ||
			    (s->ndim[c] == 1 && s->dims[c][0] != 1 && s->dims[c][0] != nn))
				return BAD(n, "C does not broadcast to [%lld, %lld]", (long long)mm,
					   (long long)nn);
		}
		break;
	}
	case KOP_MATMUL: {
		int b = n->in[1];

		if (b < 0 || !s->known[b] || nd < 2 || s->ndim[b] < 2)
			return BAD(n, "1-D operands are not supported");
		int nb = s->ndim[b], no = nd > nb ? nd : nb;
		int64_t od[TG_MAX_DIMS];

		if (d[nd - 1] != s->dims[b][nb - 2])
			return BAD(n, "inner dims differ");
		for (int i = 0; i < no - 2; i++) {
			int64_t da = i < no - nd ? 1 : d[i - (no - nd)];
			int64_t db = i < no - nb ? 1 : s->dims[b][i - (no - nb)];

			if (da != db && da != 1 && db != 1)
				return BAD(n, "batch dims do not broadcast");
			od[i] = da == 1 ? db : da;
		}
		od[no - 2] = d[nd - 2];
		od[no - 1] = s->dims[b][nb - 1];
		nd = no;
		memcpy(d, od, sizeof(od));
		break;
	}
	case KOP_FLATTEN: {
		int64_t ax = kern_norm_axis(n->a.axis.axis, nd), a = 1, b = 1;

		if (ax < 0 || ax > nd)
			return BAD(n, "axis out of range");
		for (int i = 0; i < nd; i++)
			*(i < ax ? &a : &b) *= d[i];
		nd = 2;
		d[0] = a;
		d[1] = b;
		break;
	}
	case KOP_RESHAPE: {
		int64_t sh[TG_MAX_DIMS], known = 1, total = (int64_t)kern_numel(s, x);
		int ns, neg = -1;

		if (n->in[1] < 0 || !m->values[n->in[1]].is_static)
			return BAD(n, "the target shape must be computable at load");
		ns = kern_static_ints(s, n->in[1], sh, TG_MAX_DIMS);
		if (ns < 0)
			return BAD(n, "bad target shape");
		for (int i = 0; i < ns; i++) {
			if (sh[i] == 0 && i < nd)
				sh[i] = d[i];
			if (sh[i] == -1) {
				if (neg >= 0)
					return BAD(n, "two -1 dims");
				neg = i;
			} else if (sh[i] < 0) {
				return BAD(n, "negative dim");
			} else if (sh[i] > 0 && known > INT64_MAX / sh[i]) {
				return BAD(n, "target shape too large");
			} else {
				known *= sh[i];
			}
		}
		if (neg >= 0) {
			if (known == 0 || total % known)
				return BAD(n, "cannot infer the -1 dim");
			sh[neg] = total / known;
			known *= sh[neg];
		}
		if (known != total)
			return BAD(n, "%lld elements into %lld", (long long)total, (long long)known);
		nd = ns;
		memcpy(d, sh, sizeof(sh));
		break;
	}
	case KOP_SQUEEZE:
	case KOP_UNSQUEEZE: {
		int64_t axes[TG_MAX_DIMS];
		int na = n->a.axes.n_axes;
		bool pick[2 * TG_MAX_DIMS] = { false };

		memcpy(axes, n->a.axes.axes, sizeof(axes));
		if (n->n_in > 1 && n->in[1] >= 0) {
			na = kern_static_ints(s, n->in[1], axes, TG_MAX_DIMS);
			if (na < 0)
				return BAD(n, "axes must be computable at load");
		}
		if (n->op == KOP_SQUEEZE) {
			int k = 0;

			for (int i = 0; i < na; i++) {
				int64_t a = kern_norm_axis(axes[i], nd);

				if (a < 0 || a >= nd || d[a] != 1)
					return BAD(n, "axis %lld is not a 1", (long long)axes[i]);
				pick[a] = true;
			}
			for (int i = 0; i < nd; i++)
				if (!(na ? pick[i] : d[i] == 1))
					d[k++] = d[i];
			nd = k;
		} else {
			int no = nd + na, k = 0;
			int64_t od[TG_MAX_DIMS];

			if (no > TG_MAX_DIMS)
				return BAD(n, "rank too large");
			for (int i = 0; i < na; i++) {
				int64_t a = kern_norm_axis(axes[i], no);

				if (a < 0 || a >= no || pick[a])
					return BAD(n, "bad axis");
				pick[a] = true;
			}
			for (int i = 0; i < no; i++)
				od[i] = pick[i] ? 1 : d[k++];
			nd = no;
			memcpy(d, od, sizeof(od));
		}
		break;
	}
	case KOP_PAD: {
		int64_t pads[2 * TG_MAX_DIMS];
		int np = n->a.pad.n_pads;

		memcpy(pads, n->a.pad.pads, sizeof(pads));
		if (n->n_in > 1 && n->in[1] >= 0) {
			np = kern_static_ints(s, n->in[1], pads, 2 * TG_MAX_DIMS);
			if (np < 0)
				return BAD(n, "pads must be computable at load");
		}
		if (n->n_in > 3 && n->in[3] >= 0)
			return BAD(n, "the axes input is not supported");
		if (np != 2 * nd)
			return BAD(n, "%d pads for rank %d", np, nd);
		for (int i = 0; i < nd; i++) {
			if (pads[i] < 0 || pads[i + nd] < 0)
				return BAD(n, "negative pads (cropping) are not supported");
			d[i] += pads[i] + pads[i + nd];
		}
		break;
	}
	default:
		return BAD(n, "not executable on activations");
	}
	for (int i = 0; i < nd; i++)
		if (d[i] < 0 || (uint64_t)d[i] > m->opts.max_tensor_elems)
			return BAD(n, "output dim %d out of range", i);
	kern_set_shape(s, o, nd, d);
	if (kern_numel(s, o) / (nd ? (uint64_t)(d[0] ? d[0] : 1) : 1) > m->opts.max_tensor_elems)
		return BAD(n, "output larger than the tensor limit");
	for (int k = 1; k < n->n_out; k++)	/* Dropout's mask: never read (checked at load) */
		if (n->out[k] >= 0)
			kern_set_shape(s, n->out[k], nd, d);
	return 0;
}

/* ---- static ops: contents from contents ---- */

static int
kern_sval_new(struct tg_tensor *t, enum tg_dtype dt, int nd, const int64_t *dims)
{
	t->dtype = dt;
	t->ndim = nd;
	memcpy(t->dims, dims, (size_t)nd * sizeof(int64_t));
	return tg_tensor_alloc(t);
}

static double
kern_sval_get(const struct tg_tensor *t, size_t i)
{
	return t->dtype == TG_DT_S64 ? (double)((int64_t *)t->data)[i] : ((float *)t->data)[i];
}

static void
kern_sval_put(struct tg_tensor *t, size_t i, double v)
{
	if (t->dtype == TG_DT_S64)	/* hostile values saturate; the shape rules refuse them */
		((int64_t *)t->data)[i] = v >= 0x1p63 ? INT64_MAX : v >= -0x1p63 ? (int64_t)v :
					  INT64_MIN;
	else
		((float *)t->data)[i] = (float)v;
}

static int
kern_infer_static(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  struct tg_err *err)
{
	int o = n->out[0], x = n->in[0];
	struct tg_tensor *out = &s->sval[o], *in = x >= 0 ? &s->sval[x] : NULL;
	int64_t d[TG_MAX_DIMS];
	int rc = 0;

	if (n->op == KOP_CONSTANT)
		return 0;	/* set at load: out aliases the model's constant */
	if (x < 0)
		return BAD(n, "first input missing");
	if (n->op == KOP_SHAPE) {
		int64_t nd = s->ndim[x];

		if (!s->known[x])
			return BAD(n, "input shape unknown");
		if (kern_sval_new(out, TG_DT_S64, 1, &nd) < 0)
			return -ENOMEM;
		memcpy(out->data, s->dims[x], (size_t)nd * sizeof(int64_t));
		goto done;
	}
	for (int k = 0; k < n->n_in; k++)
		if (n->in[k] >= 0 && s->sval[n->in[k]].data == NULL)
			return BAD(n, "static input %d has no value", k);
	switch (n->op) {
	case KOP_IDENTITY: case KOP_DROPOUT: case KOP_RESHAPE: case KOP_SQUEEZE:
	case KOP_UNSQUEEZE: case KOP_FLATTEN:
		/* Same contents, new shape: reuse the data-op shape rules. */
		if (n->op != KOP_IDENTITY && n->op != KOP_DROPOUT) {
			kern_set_shape(s, x, in->ndim, in->dims);
			rc = kern_infer_data(m, s, n, err);
			if (rc < 0)
				return rc;
		} else {
			kern_set_shape(s, o, in->ndim, in->dims);
		}
		if (kern_sval_new(out, in->dtype, s->ndim[o], s->dims[o]) < 0)
			return -ENOMEM;
		memcpy(out->data, in->data, tg_tensor_bytes(in));
		goto done;
	case KOP_CAST: {
		enum tg_dtype to = (n->a.cast.to == 1 || n->a.cast.to == 10 || n->a.cast.to == 11) ?
					   TG_DT_F32 : TG_DT_S64;

		if (kern_sval_new(out, to, in->ndim, in->dims) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < tg_tensor_numel(in); i++)
			kern_sval_put(out, i, kern_sval_get(in, i));
		goto done;
	}
	case KOP_GATHER: {
		const struct tg_tensor *idx = n->in[1] >= 0 ? &s->sval[n->in[1]] : NULL;
		int64_t ax = kern_norm_axis(n->a.axis.axis, in->ndim), outer = 1, inner = 1;
		int nd = 0;

		if (idx == NULL)
			return BAD(n, "indices missing");
		if (ax < 0 || ax >= in->ndim || in->ndim + idx->ndim - 1 > TG_MAX_DIMS)
			return BAD(n, "axis out of range");
		for (int i = 0; i < ax; i++) {
			outer *= in->dims[i];
			d[nd++] = in->dims[i];
		}
		for (int i = 0; i < idx->ndim; i++)
			d[nd++] = idx->dims[i];
		for (int i = (int)ax + 1; i < in->ndim; i++) {
			inner *= in->dims[i];
			d[nd++] = in->dims[i];
		}
		if (kern_sval_new(out, in->dtype, nd, d) < 0)
			return -ENOMEM;
		size_t ni = tg_tensor_numel(idx), k = 0;

		for (int64_t a = 0; a < outer; a++)
			for (size_t j = 0; j < ni; j++) {
				int64_t ix = (int64_t)kern_sval_get(idx, j);

				if (ix < 0)
					ix += in->dims[ax];
				if (ix < 0 || ix >= in->dims[ax])
					return BAD(n, "index %lld out of range", (long long)ix);
				for (int64_t b = 0; b < inner; b++)
					kern_sval_put(out, k++, kern_sval_get(in, (size_t)(
						(a * in->dims[ax] + ix) * inner + b)));
			}
		goto done;
	}
	case KOP_CONCAT: {
		int64_t total = 0;

		for (int k = 0; k < n->n_in; k++) {
			const struct tg_tensor *t = &s->sval[n->in[k]];

			if (t->ndim > 1 || t->dtype != in->dtype)
				return BAD(n, "static concat of other than 1-D vectors");
			total += (int64_t)tg_tensor_numel(t);
		}
		if (kern_sval_new(out, in->dtype, 1, &total) < 0)
			return -ENOMEM;
		size_t k2 = 0;

		for (int k = 0; k < n->n_in; k++) {
			const struct tg_tensor *t = &s->sval[n->in[k]];

			memcpy((uint8_t *)out->data + k2 * tg_dtype_size(t->dtype), t->data,
			       tg_tensor_bytes(t));
			k2 += tg_tensor_numel(t);
		}
		goto done;
	}
	case KOP_SLICE: {
		int64_t st[TG_MAX_DIMS], en[TG_MAX_DIMS], ax[TG_MAX_DIMS], sp[TG_MAX_DIMS];
		int ns;

		if (in->ndim != 1)
			return BAD(n, "static slice of other than a 1-D vector");
		if (n->a.slice.has) {
			ns = n->a.slice.n;
			memcpy(st, n->a.slice.starts, sizeof(st));
			memcpy(en, n->a.slice.ends, sizeof(en));
			memcpy(ax, n->a.slice.axes, sizeof(ax));
			for (int i = 0; i < ns; i++)
				sp[i] = 1;
		} else {
			ns = kern_static_ints(s, n->in[1], st, TG_MAX_DIMS);
			if (ns < 0 || kern_static_ints(s, n->in[2], en, TG_MAX_DIMS) != ns)
				return BAD(n, "bad starts/ends");
			for (int i = 0; i < ns; i++) {
				ax[i] = i;
				sp[i] = 1;
			}
			if (n->n_in > 3 && n->in[3] >= 0 &&
			    kern_static_ints(s, n->in[3], ax, TG_MAX_DIMS) != ns)
				return BAD(n, "bad axes");
			if (n->n_in > 4 && n->in[4] >= 0 &&
			    kern_static_ints(s, n->in[4], sp, TG_MAX_DIMS) != ns)
				return BAD(n, "bad steps");
		}
		if (ns != 1 || kern_norm_axis(ax[0], 1) != 0 || sp[0] == 0)
			return BAD(n, "static slice must be one axis");
		int64_t len = in->dims[0], b = st[0], e = en[0], step = sp[0], cnt = 0;

		if (b < 0)
			b += len;
		if (e < 0)
			e += len;
		if (step > 0) {
			b = b < 0 ? 0 : b > len ? len : b;
			e = e < 0 ? 0 : e > len ? len : e;
			cnt = e > b ? (e - b + step - 1) / step : 0;
		} else {
			b = b < 0 ? -1 : b >= len ? len - 1 : b;
			e = e < -1 ? -1 : e >= len ? len - 1 : e;
			cnt = b > e ? (b - e - step - 1) / -step : 0;
		}
		if (kern_sval_new(out, in->dtype, 1, &cnt) < 0)
			return -ENOMEM;
		for (int64_t i = 0; i < cnt; i++)
			kern_sval_put(out, (size_t)i, kern_sval_get(in, (size_t)(b + i * step)));
		goto done;
	}
	case KOP_ADD: case KOP_MUL: case KOP_SUB: case KOP_DIV: {
		if (n->in[1] < 0)
			return BAD(n, "second input missing");
		const struct tg_tensor *b = &s->sval[n->in[1]];
		size_t na = tg_tensor_numel(in), nb = tg_tensor_numel(b);
		const struct tg_tensor *big = na >= nb ? in : b;

		if (na != nb && na != 1 && nb != 1)
			return BAD(n, "static arithmetic on unequal sizes");
		if (kern_sval_new(out, in->dtype, big->ndim, big->dims) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < tg_tensor_numel(big); i++) {
			double va = kern_sval_get(in, na == 1 ? 0 : i);
			double vb = kern_sval_get(b, nb == 1 ? 0 : i), r;

			switch (n->op) {
			case KOP_ADD: r = va + vb; break;
			case KOP_SUB: r = va - vb; break;
			case KOP_MUL: r = va * vb; break;
			default:
				if (vb == 0 && in->dtype == TG_DT_S64)
					return BAD(n, "division by zero");
				r = in->dtype == TG_DT_S64 ? trunc(va / vb) : va / vb;
				break;
			}
			kern_sval_put(out, i, r);
		}
		goto done;
	}
	default:
		return BAD(n, "cannot be evaluated at load");
	}
done:
	kern_set_shape(s, o, out->ndim, out->dims);
	return 0;
}

int
kern_shapes_infer(const struct kern_model *m, const struct tg_tensor *in_shapes,
		  struct kern_shapes *s, struct tg_err *err)
{
	for (unsigned v = 0; v < m->n_values; v++) {
		const struct kern_value *kv = &m->values[v];

		if (!kv->is_const && s->sval[v].data)
			tg_tensor_free(&s->sval[v]);
		s->known[v] = false;
		if (kv->is_const) {
			s->sval[v] = kv->cdata;	/* alias: never freed through s */
			kern_set_shape(s, (int)v, kv->cdata.ndim, kv->cdata.dims);
		}
	}
	for (unsigned i = 0; i < m->n_inputs; i++) {
		const struct tg_tensor *t = &in_shapes[i];

		if (t->ndim < 0 || t->ndim > TG_MAX_DIMS)
			return tg_err_set(err, -EINVAL, "input %u: bad rank", i);
		kern_set_shape(s, m->inputs[i], t->ndim, t->dims);
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];
		int rc;

		if (n->dead)
			continue;
		rc = n->is_static ? kern_infer_static(m, s, n, err) : kern_infer_data(m, s, n, err);
		if (rc < 0)
			return rc == -ENOMEM ? tg_err_set(err, rc, "out of memory") : rc;
	}
	return 0;
}
