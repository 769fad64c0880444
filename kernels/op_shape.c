/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape ops and the exporter's shape arithmetic. On activations Flatten, Reshape, Squeeze,
 * Unsqueeze, Identity and Dropout are views (the same bytes, another shape); on shape values
 * they, Shape, Gather, Cast and Constant are evaluated once per plan (shapes.c), never run.
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <string.h>

/* ---- attributes ---- */

static int
kern_flatten_attrs(struct kern_attrs *a)
{
	a->n->a.axis.axis = kern_attr_int(a, "axis", 1);
	return 0;
}

static int
kern_gather_attrs(struct kern_attrs *a)
{
	a->n->a.axis.axis = kern_attr_int(a, "axis", 0);
	return 0;
}

static int
kern_reshape_attrs(struct kern_attrs *a)
{
	if (kern_attr_int(a, "allowzero", 0) != 0)
		return kern_attr_bad(a, "allowzero", "only 0 is supported");
	if (kern_attr_has(a, "shape"))
		return kern_attr_bad(a, "shape", "Reshape-1 attribute form is not supported");
	return 0;
}

static int
kern_axes_attrs(struct kern_attrs *a)
{
	int rc = kern_attr_ints(a, "axes", a->n->a.axes.axes, TG_MAX_DIMS);

	if (rc < 0)
		return rc;
	a->n->a.axes.n_axes = rc;
	a->n->a.axes.has_axes = kern_attr_has(a, "axes");
	return 0;
}

static int
kern_shape_attrs(struct kern_attrs *a)
{
	if (kern_attr_has(a, "start") || kern_attr_has(a, "end"))
		return kern_attr_bad(a, "start/end", "not supported");
	return 0;
}

static int
kern_cast_attrs(struct kern_attrs *a)
{
	a->n->a.cast.to = (int)kern_attr_int(a, "to", 0);
	return 0;
}

/* ---- shapes ---- */

static int
kern_dropout_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		   int *nd, int64_t *d, struct tg_err *err)
{
	float train = 0.f;

	(void)m;
	(void)nd;
	(void)d;
	/* Inference only: a training-mode Dropout would scale and drop. */
	if (n->n_in > 2 && n->in[2] >= 0 &&
	    (kern_static_float(s, n->in[2], &train) < 0 || train != 0.f))
		return kern_bad(err, n, "training_mode must be a constant false");
	return 0;
}

static int
kern_flatten_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		   int *nd, int64_t *d, struct tg_err *err)
{
	int64_t ax = kern_norm_axis(n->a.axis.axis, *nd), a = 1, b = 1;

	(void)m;
	(void)s;
	if (ax < 0 || ax > *nd)
		return kern_bad(err, n, "axis out of range");
	for (int i = 0; i < *nd; i++)
		*(i < ax ? &a : &b) *= d[i];
	*nd = 2;
	d[0] = a;
	d[1] = b;
	return 0;
}

/* The target shape with 0 (copy) and -1 (inferred) resolved. @return 0 or -EINVAL */
static int
kern_reshape_target(const struct kern_node *n, int64_t total, int nd, const int64_t *d,
		    int64_t *sh, int ns, struct tg_err *err)
{
	int64_t known = 1;
	int neg = -1;

	for (int i = 0; i < ns; i++) {
		if (sh[i] == 0 && i < nd)
			sh[i] = d[i];
		if (sh[i] == -1) {
			if (neg >= 0)
				return kern_bad(err, n, "two -1 dims");
			neg = i;
		} else if (sh[i] < 0) {
			return kern_bad(err, n, "negative dim");
		} else if (sh[i] > 0 && known > INT64_MAX / sh[i]) {
			return kern_bad(err, n, "target shape too large");
		} else {
			known *= sh[i];
		}
	}
	if (neg >= 0) {
		if (known == 0 || total % known)
			return kern_bad(err, n, "cannot infer the -1 dim");
		sh[neg] = total / known;
		known *= sh[neg];
	}
	if (known != total)
		return kern_bad(err, n, "%lld elements into %lld", (long long)total, (long long)known);
	return 0;
}

static int
kern_reshape_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		   int *nd, int64_t *d, struct tg_err *err)
{
	int64_t sh[TG_MAX_DIMS];
	int ns;

	if (n->in[1] < 0 || !m->values[n->in[1]].is_static)
		return kern_bad(err, n, "the target shape must be computable at load");
	ns = kern_static_ints(s, n->in[1], sh, TG_MAX_DIMS);
	if (ns < 0)
		return kern_bad(err, n, "bad target shape");
	if (kern_reshape_target(n, (int64_t)kern_numel(s, n->in[0]), *nd, d, sh, ns, err) < 0)
		return -EINVAL;
	*nd = ns;
	memcpy(d, sh, sizeof(sh));
	return 0;
}

/* Squeeze's and Unsqueeze's axes: the attribute (opset < 13) or the static second input.
 * @return how many, or -EINVAL */
static int
kern_axes_of(const struct kern_shapes *s, const struct kern_node *n, int64_t *axes,
	     struct tg_err *err)
{
	int na = n->a.axes.n_axes;

	memcpy(axes, n->a.axes.axes, TG_MAX_DIMS * sizeof(int64_t));
	if (n->n_in > 1 && n->in[1] >= 0) {
		na = kern_static_ints(s, n->in[1], axes, TG_MAX_DIMS);
		if (na < 0)
			return kern_bad(err, n, "axes must be computable at load");
	}
	return na;
}

static int
kern_squeeze_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		   int *nd, int64_t *d, struct tg_err *err)
{
	int64_t axes[TG_MAX_DIMS];
	int na = kern_axes_of(s, n, axes, err), k = 0;
	bool pick[TG_MAX_DIMS] = { false };

	(void)m;
	if (na < 0)
		return na;
	for (int i = 0; i < na; i++) {
		int64_t a = kern_norm_axis(axes[i], *nd);

		if (a < 0 || a >= *nd || d[a] != 1)
			return kern_bad(err, n, "axis %lld is not a 1", (long long)axes[i]);
		pick[a] = true;
	}
	for (int i = 0; i < *nd; i++)
		if (!(na ? pick[i] : d[i] == 1))
			d[k++] = d[i];
	*nd = k;
	return 0;
}

static int
kern_unsqueeze_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		     int *nd, int64_t *d, struct tg_err *err)
{
	int64_t axes[TG_MAX_DIMS], od[TG_MAX_DIMS];
	int na = kern_axes_of(s, n, axes, err), no, k = 0;
	bool pick[2 * TG_MAX_DIMS] = { false };

	(void)m;
	if (na < 0)
		return na;
	no = *nd + na;
	if (no > TG_MAX_DIMS)
		return kern_bad(err, n, "rank too large");
	for (int i = 0; i < na; i++) {
		int64_t a = kern_norm_axis(axes[i], no);

		if (a < 0 || a >= no || pick[a])
			return kern_bad(err, n, "bad axis");
		pick[a] = true;
	}
	for (int i = 0; i < no; i++)
		od[i] = pick[i] ? 1 : d[k++];
	*nd = no;
	memcpy(d, od, sizeof(od));
	return 0;
}

/* ---- static values ---- */

/* Identity: the same contents. */
static int
kern_copy_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	       struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]];

	(void)m;
	(void)err;
	if (kern_sval_new(&s->sval[n->out[0]], in->dtype, in->ndim, in->dims) < 0)
		return -ENOMEM;
	memcpy(s->sval[n->out[0]].data, in->data, tg_tensor_bytes(in));
	return 0;
}

/* Reshape, Squeeze, Unsqueeze: the same contents, the shape the data rules give. */
static int
kern_reshape_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]];
	int o = n->out[0], rc;

	kern_set_shape(s, n->in[0], in->ndim, in->dims);
	rc = kern_infer_data(m, s, n, err);
	if (rc < 0)
		return rc;
	if (kern_sval_new(&s->sval[o], in->dtype, s->ndim[o], s->dims[o]) < 0)
		return -ENOMEM;
	memcpy(s->sval[o].data, in->data, tg_tensor_bytes(in));
	return 0;
}

/* Constant: its value was set at load (kern_attr_constant); s->sval aliases it. */
static int
kern_constant_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		   struct tg_err *err)
{
	(void)m;
	(void)s;
	(void)n;
	(void)err;
	return 0;
}

static int
kern_shape_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		struct tg_err *err)
{
	int x = n->in[0];
	int64_t nd = s->ndim[x];

	(void)m;
	if (!s->known[x])
		return kern_bad(err, n, "input shape unknown");
	if (kern_sval_new(&s->sval[n->out[0]], TG_DT_S64, 1, &nd) < 0)
		return -ENOMEM;
	memcpy(s->sval[n->out[0]].data, s->dims[x], (size_t)nd * sizeof(int64_t));
	return 0;
}

static int
kern_cast_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	       struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]];
	struct tg_tensor *out = &s->sval[n->out[0]];
	int to = n->a.cast.to;	/* FLOAT, FLOAT16 and DOUBLE become f32; the rest s64 */

	(void)m;
	(void)err;
	if (kern_sval_new(out, to == 1 || to == 10 || to == 11 ? TG_DT_F32 : TG_DT_S64, in->ndim,
			  in->dims) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < tg_tensor_numel(in); i++)
		kern_sval_put(out, i, kern_sval_get(in, i));
	return 0;
}

static int
kern_gather_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]];
	const struct tg_tensor *idx = n->in[1] >= 0 ? &s->sval[n->in[1]] : NULL;
	int64_t ax = kern_norm_axis(n->a.axis.axis, in->ndim), outer = 1, inner = 1;
	int64_t d[TG_MAX_DIMS];
	size_t ni, k = 0;
	int nd = 0;

	(void)m;
	if (idx == NULL)
		return kern_bad(err, n, "indices missing");
	if (ax < 0 || ax >= in->ndim || in->ndim + idx->ndim - 1 > TG_MAX_DIMS)
		return kern_bad(err, n, "axis out of range");
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
	if (kern_sval_new(&s->sval[n->out[0]], in->dtype, nd, d) < 0)
		return -ENOMEM;
	ni = tg_tensor_numel(idx);
	for (int64_t a = 0; a < outer; a++)
		for (size_t j = 0; j < ni; j++) {
			int64_t ix = (int64_t)kern_sval_get(idx, j);

			if (ix < 0)
				ix += in->dims[ax];
			if (ix < 0 || ix >= in->dims[ax])
				return kern_bad(err, n, "index %lld out of range", (long long)ix);
			for (int64_t b = 0; b < inner; b++)
				kern_sval_put(&s->sval[n->out[0]], k++, kern_sval_get(in, (size_t)(
					(a * in->dims[ax] + ix) * inner + b)));
		}
	return 0;
}

/* ---- builder ---- */

/* An int8 value stays int8 through a view (the bytes and the scale are the same): the
 * Flatten between a pooled int8 tensor and an int8 Gemm would otherwise cost a dequantizing
 * and a quantizing reorder per batch. A plan output is f32 whatever it views. */
static bool
kp_view_keeps_int8(const struct kern_plan *p, int x, int y)
{
	return p->vmem[x] != NULL && kp_is_int8(kp_md(p->vmem[x])) && !p->is_pout[y];
}

/* Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout (and a Reduce* reducing nothing):
 * the input's bytes in plain layout, seen in the output's shape. */
int
kp_build_view(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	int x = n->in[0], y = n->out[0];
	dnnl_memory_desc_t xmd, ymd;
	dnnl_memory_t src;
	int rc;

	(void)c;
	kp_plain_md(&xmd, p->sh.ndim[x], p->sh.dims[x]);
	kp_plain_md(&ymd, p->sh.ndim[y], p->sh.dims[y]);
	if (kp_view_keeps_int8(p, x, y)) {
		xmd.data_type = ymd.data_type = kp_md(p->vmem[x])->data_type;
		p->vscale[y] = p->vscale[x];
		p->vdt[y] = p->vdt[x];
	}
	rc = kp_get(p, x, &xmd, &src, n);
	if (rc < 0)
		return rc;
	return kp_mem_new(p, &ymd, kp_handle(src), &p->vmem[y], n);
}

/* ---- definitions ---- */

#define KERN_VIEW(name, known_, attrs_, infer_, eval_)                                      \
	const struct kern_op_def kern_op_##name = {                                         \
		.known = known_, .attrs = attrs_, .infer = infer_, .eval = eval_,           \
		.flops = kern_flops_none, .build = kp_build_view, .view = true,               \
	}

/* Flatten and Dropout stay data ops on constants (no eval): what the exporter's shape
 * arithmetic uses is evaluated, nothing more. */
KERN_VIEW(flatten, ((const char *const[]){ "axis", NULL }), kern_flatten_attrs,
	  kern_flatten_infer, NULL);
KERN_VIEW(reshape, ((const char *const[]){ "allowzero", "shape", NULL }), kern_reshape_attrs,
	  kern_reshape_infer, kern_reshape_eval);
KERN_VIEW(squeeze, ((const char *const[]){ "axes", NULL }), kern_axes_attrs, kern_squeeze_infer,
	  kern_reshape_eval);
KERN_VIEW(unsqueeze, ((const char *const[]){ "axes", NULL }), kern_axes_attrs,
	  kern_unsqueeze_infer, kern_reshape_eval);
KERN_VIEW(identity, NULL, NULL, kern_infer_same, kern_copy_eval);
KERN_VIEW(dropout, ((const char *const[]){ "ratio", "seed", "is_test", NULL }), NULL,
	  kern_dropout_infer, NULL);

const struct kern_op_def kern_op_constant = {
	.known = (const char *const[]){ "value", "value_float", "value_floats", "value_int",
					"value_ints", NULL },
	.attrs = kern_attr_constant,
	.eval = kern_constant_eval,
	.eval_in = KERN_EVAL_NOTHING,
};

const struct kern_op_def kern_op_shape = {
	.known = (const char *const[]){ "start", "end", NULL },
	.attrs = kern_shape_attrs,
	.eval = kern_shape_eval,
	.eval_in = KERN_EVAL_SHAPE,
};

const struct kern_op_def kern_op_gather = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_gather_attrs,
	.eval = kern_gather_eval,
};

const struct kern_op_def kern_op_cast = {
	.known = (const char *const[]){ "to", NULL },
	.attrs = kern_cast_attrs,
	.eval = kern_cast_eval,
};
