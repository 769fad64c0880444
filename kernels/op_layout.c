/*
 * Ops that move elements: Transpose (a reorder through permuted strides), Concat (also on
 * shape values at load), Split and Slice (boxes copied out of the input; Slice also on shape
 * values) and constant Pad (the border written once at plan time).
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <string.h>

/* ---- attributes ---- */

static int
kern_transpose_attrs(struct kern_attrs *a)
{
	int rc = kern_attr_ints(a, "perm", a->n->a.perm.perm, TG_MAX_DIMS);

	if (rc < 0)
		return rc;
	a->n->a.perm.n = rc;	/* 0: reverse the dims */
	return 0;
}

static int
kern_concat_attrs(struct kern_attrs *a)
{
	if (!kern_attr_has(a, "axis"))
		return kern_attr_bad(a, "axis", "required");
	a->n->a.axis.axis = kern_attr_int(a, "axis", 0);
	return 0;
}

static int
kern_split_attrs(struct kern_attrs *a)
{
	struct kern_node *n = a->n;
	int rc;

	n->a.split.axis = kern_attr_int(a, "axis", 0);
	rc = kern_attr_ints(a, "split", n->a.split.sizes, KERN_MAX_OUT);
	if (rc < 0)
		return rc;
	n->a.split.n_sizes = rc;
	n->a.split.has_sizes = kern_attr_has(a, "split");
	return 0;
}

/* Slice-1's starts/ends/axes attributes; from opset 10 they are inputs. */
static int
kern_slice_attrs(struct kern_attrs *a)
{
	struct kern_node *n = a->n;
	int ns, ne, na;

	n->a.slice.has = kern_attr_has(a, "starts");
	if (!n->a.slice.has)
		return 0;
	ns = kern_attr_ints(a, "starts", n->a.slice.starts, TG_MAX_DIMS);
	ne = kern_attr_ints(a, "ends", n->a.slice.ends, TG_MAX_DIMS);
	na = kern_attr_ints(a, "axes", n->a.slice.axes, TG_MAX_DIMS);
	if (ns < 0 || ne < 0 || na < 0)
		return -EINVAL;
	if (ns != ne || (na && na != ns))
		return kern_attr_bad(a, "starts/ends/axes", "lengths differ");
	if (!na)
		for (int i = 0; i < ns; i++)
			n->a.slice.axes[i] = i;
	n->a.slice.n = ns;
	return 0;
}

static int
kern_pad_attrs(struct kern_attrs *a)
{
	struct kern_node *n = a->n;
	int rc;

	if (kern_attr_enum(a, "mode", (const char *const[]){ "constant", NULL }, 0) != 0)
		return kern_attr_bad(a, "mode", "only constant padding is supported");
	rc = kern_attr_ints(a, "pads", n->a.pad.pads, 2 * TG_MAX_DIMS);
	if (rc < 0)
		return rc;
	n->a.pad.n_pads = rc;
	n->a.pad.has_pads = kern_attr_has(a, "pads");
	n->a.pad.value = kern_attr_float(a, "value", 0.f);
	return 0;
}

/* ---- geometry ---- */

/* A Slice's starts, ends, axes and steps: the attributes (opset < 10) or static inputs.
 * @return how many, or -EINVAL */
static int
kern_slice_params(const struct kern_shapes *s, const struct kern_node *n, int64_t *st,
		  int64_t *en, int64_t *ax, int64_t *sp)
{
	int ns;

	if (n->a.slice.has) {
		ns = n->a.slice.n;
		memcpy(st, n->a.slice.starts, TG_MAX_DIMS * sizeof(int64_t));
		memcpy(en, n->a.slice.ends, TG_MAX_DIMS * sizeof(int64_t));
		memcpy(ax, n->a.slice.axes, TG_MAX_DIMS * sizeof(int64_t));
		for (int i = 0; i < ns; i++)
			sp[i] = 1;
		return ns;
	}
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
	return ns;
}

/*
 * A Slice on activations, as a box: begin[i] and count[i] for every dim of the nd-D input
 * dims (untouched dims: 0 and dims[i]). Only step 1 is supported (a box is a sub-memory).
 * @return 0 or -EINVAL
 */
int
kern_slice_box(const struct kern_shapes *s, const struct kern_node *n, int nd,
	       const int64_t *dims, int64_t *begin, int64_t *count)
{
	int64_t st[TG_MAX_DIMS], en[TG_MAX_DIMS], ax[TG_MAX_DIMS], sp[TG_MAX_DIMS];
	int ns = kern_slice_params(s, n, st, en, ax, sp);

	if (ns < 0)
		return -EINVAL;
	for (int i = 0; i < nd; i++) {
		begin[i] = 0;
		count[i] = dims[i];
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

/* ---- shapes ---- */

static int
kern_transpose_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		     int *ndp, int64_t *d, struct tg_err *err)
{
	int64_t od[TG_MAX_DIMS];
	bool seen[TG_MAX_DIMS] = { false };
	int nd = *ndp;

	(void)m;
	(void)s;
	if (n->a.perm.n && n->a.perm.n != nd)
		return kern_bad(err, n, "perm has %d entries for rank %d", n->a.perm.n, nd);
	for (int i = 0; i < nd; i++) {
		int64_t a = n->a.perm.n ? n->a.perm.perm[i] : nd - 1 - i;

		if (a < 0 || a >= nd || seen[a])
			return kern_bad(err, n, "perm is not a permutation");
		seen[a] = true;
		od[i] = d[a];
	}
	memcpy(d, od, sizeof(od));
	return 0;
}

static int
kern_concat_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  int *ndp, int64_t *d, struct tg_err *err)
{
	int nd = *ndp, x = n->in[0];
	int64_t ax = kern_norm_axis(n->a.axis.axis, nd);

	(void)m;
	if (ax < 0 || ax >= nd)
		return kern_bad(err, n, "axis out of range");
	d[ax] = 0;
	for (int k = 0; k < n->n_in; k++) {
		int v = n->in[k];

		if (v < 0 || !s->known[v] || s->ndim[v] != nd)
			return kern_bad(err, n, "input %d rank differs", k);
		for (int i = 0; i < nd; i++)
			if (i != ax && s->dims[v][i] != s->dims[x][i])
				return kern_bad(err, n, "input %d dim %d differs", k, i);
		d[ax] += s->dims[v][ax];
	}
	return 0;
}

static int
kern_split_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 int *ndp, int64_t *d, struct tg_err *err)
{
	int nd = *ndp;
	int64_t ax = kern_norm_axis(n->a.split.axis, nd), sizes[KERN_MAX_OUT];

	(void)m;
	if (ax < 0 || ax >= nd)
		return kern_bad(err, n, "axis out of range");
	if (kern_split_sizes(s, n, d[ax], sizes) < 0)
		return kern_bad(err, n, "split sizes must be constants adding up to %lld over %d outputs",
				(long long)d[ax], n->n_out);
	for (int k = 0; k < n->n_out; k++) {
		d[ax] = sizes[k];
		if (n->out[k] >= 0)
			kern_set_shape(s, n->out[k], nd, d);
	}
	return KERN_INFER_DONE;
}

static int
kern_slice_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 int *nd, int64_t *d, struct tg_err *err)
{
	int64_t begin[TG_MAX_DIMS];

	(void)m;
	if (kern_slice_box(s, n, *nd, s->dims[n->in[0]], begin, d) < 0)
		return kern_bad(err, n, "starts/ends/axes must be constants, steps 1 (on activations)");
	return 0;
}

static int
kern_pad_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
	       int *ndp, int64_t *d, struct tg_err *err)
{
	int64_t pads[2 * TG_MAX_DIMS];
	int np = n->a.pad.n_pads, nd = *ndp;

	(void)m;
	memcpy(pads, n->a.pad.pads, sizeof(pads));
	if (n->n_in > 1 && n->in[1] >= 0) {
		np = kern_static_ints(s, n->in[1], pads, 2 * TG_MAX_DIMS);
		if (np < 0)
			return kern_bad(err, n, "pads must be computable at load");
	}
	if (n->n_in > 3 && n->in[3] >= 0)
		return kern_bad(err, n, "the axes input is not supported");
	if (np != 2 * nd)
		return kern_bad(err, n, "%d pads for rank %d", np, nd);
	for (int i = 0; i < nd; i++) {
		if (pads[i] < 0 || pads[i + nd] < 0)
			return kern_bad(err, n, "negative pads (cropping) are not supported");
		d[i] += pads[i] + pads[i + nd];
	}
	return 0;
}

/* ---- static values (shape arithmetic) ---- */

/* Concat of 1-D shape vectors. */
static int
kern_concat_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		 struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]];
	struct tg_tensor *out = &s->sval[n->out[0]];
	int64_t total = 0;
	size_t at = 0;

	(void)m;
	for (int k = 0; k < n->n_in; k++) {
		const struct tg_tensor *t = &s->sval[n->in[k]];

		if (t->ndim > 1 || t->dtype != in->dtype)
			return kern_bad(err, n, "static concat of other than 1-D vectors");
		total += (int64_t)tg_tensor_numel(t);
	}
	if (kern_sval_new(out, in->dtype, 1, &total) < 0)
		return -ENOMEM;
	for (int k = 0; k < n->n_in; k++) {
		const struct tg_tensor *t = &s->sval[n->in[k]];

		memcpy((uint8_t *)out->data + at * tg_dtype_size(t->dtype), t->data,
		       tg_tensor_bytes(t));
		at += tg_tensor_numel(t);
	}
	return 0;
}

/* Slice of a 1-D shape vector, one axis, any step. */
static int
kern_slice_eval(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		struct tg_err *err)
{
	const struct tg_tensor *in = &s->sval[n->in[0]];
	struct tg_tensor *out = &s->sval[n->out[0]];
	int64_t st[TG_MAX_DIMS], en[TG_MAX_DIMS], ax[TG_MAX_DIMS], sp[TG_MAX_DIMS];
	int64_t len, b, e, step, cnt;
	int ns;

	(void)m;
	if (in->ndim != 1)
		return kern_bad(err, n, "static slice of other than a 1-D vector");
	ns = kern_slice_params(s, n, st, en, ax, sp);
	if (ns < 0)
		return kern_bad(err, n, "bad starts/ends/axes/steps");
	if (ns != 1 || kern_norm_axis(ax[0], 1) != 0 || sp[0] == 0)
		return kern_bad(err, n, "static slice must be one axis");
	len = in->dims[0];
	b = st[0] < 0 ? st[0] + len : st[0];
	e = en[0] < 0 ? en[0] + len : en[0];
	step = sp[0];
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
	return 0;
}

/* ---- definitions ---- */

const struct kern_op_def kern_op_transpose = {
	.known = (const char *const[]){ "perm", NULL },
	.attrs = kern_transpose_attrs,
	.infer = kern_transpose_infer,
};

const struct kern_op_def kern_op_concat = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_concat_attrs,
	.infer = kern_concat_infer,
	.eval = kern_concat_eval,
	.flops = kern_flops_none,
};

const struct kern_op_def kern_op_split = {
	.known = (const char *const[]){ "axis", "split", "num_outputs", NULL },
	.attrs = kern_split_attrs,
	.infer = kern_split_infer,
};

const struct kern_op_def kern_op_slice = {
	.known = (const char *const[]){ "starts", "ends", "axes", NULL },
	.attrs = kern_slice_attrs,
	.infer = kern_slice_infer,
	.eval = kern_slice_eval,
};

const struct kern_op_def kern_op_pad = {
	.known = (const char *const[]){ "mode", "pads", "value", NULL },
	.attrs = kern_pad_attrs,
	.infer = kern_pad_infer,
	.flops = kern_flops_none,
};
