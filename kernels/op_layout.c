/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ops that move elements: Transpose (a reorder through permuted strides), Concat (also on
 * shape values at load), Split and Slice (boxes copied out of the input; Slice also on shape
 * values) and constant Pad (the border written once at plan time).
 */
#include "kernels/kp_int.h"

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

/* ---- builders ---- */

static int
kp_build_concat(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int y = n->out[0], ax = (int)kern_norm_axis(n->a.axis.axis, s->ndim[y]), rc = 0, k = 0;
	dnnl_memory_desc_t mds[KERN_MAX_IN];
	dnnl_memory_t src;
	struct kp_prim pr = { 0 };

	(void)c;
	for (int i = 0; i < n->n_in && rc == 0; i++) {
		int v = n->in[i];

		if (s->dims[v][ax] == 0)
			continue;	/* empty pieces add nothing */
		if (p->vmem[v] == NULL || p->m->values[v].is_static)
			rc = kp_get_plain(p, v, &src, n);
		else
			rc = kp_get_f32(p, v, &src, n);
		if (rc == 0) {
			mds[k] = *kp_md(src);
			kp_arg(&pr, DNNL_ARG_MULTIPLE_SRC + k++, src);
		}
	}
	if (rc == 0)
		rc = KP_CHK(p, dnnl_concat_primitive_desc_create(&pr.pd, NULL, k, ax, mds, NULL,
								  p->eng), n, "concat");
	return kp_prim_end(p, &pr, rc, y, n);
}

/*
 * Slice and Split on activations: each output is a box of the plain input, copied out by a
 * reorder from a sub-memory over the input's bytes (dense outputs: later ops see plain
 * tensors of their own).
 */
static int
kp_copy_box(struct kern_plan *p, const struct kern_node *n, dnnl_memory_t src, int y,
	    const int64_t *begin, const int64_t *count)
{
	int nd = p->sh.ndim[n->in[0]];
	dnnl_dims_t dd, off;
	dnnl_memory_desc_t sub, ymd;
	dnnl_memory_t view, dst;
	int rc;

	for (int i = 0; i < nd; i++) {
		dd[i] = count[i];
		off[i] = begin[i];
	}
	rc = KP_CHK(p, dnnl_memory_desc_init_submemory(&sub, kp_md(src), dd, off), n, "sub-memory");
	if (rc == 0)
		rc = kp_mem_new(p, &sub, kp_handle(src), &view, n);
	if (rc == 0) {
		kp_plain_md(&ymd, nd, count);
		rc = kp_mem_new(p, &ymd, NULL, &dst, n);
	}
	if (rc == 0)
		rc = kp_reorder(p, view, dst, false, n);
	if (rc == 0)
		p->vmem[y] = dst;
	return rc;
}

static int
kp_build_slice(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0];
	int64_t begin[TG_MAX_DIMS], count[TG_MAX_DIMS];
	dnnl_memory_t src;
	int rc;

	(void)c;
	if (kern_slice_box(s, n, s->ndim[x], s->dims[x], begin, count) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (Slice): bad box", n->name);
	rc = kp_get_plain(p, x, &src, n);
	if (rc == 0)
		rc = kp_copy_box(p, n, src, n->out[0], begin, count);
	return rc;
}

static int
kp_build_split(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], nd = s->ndim[x];
	int64_t begin[TG_MAX_DIMS] = { 0 }, count[TG_MAX_DIMS], sizes[KERN_MAX_OUT];
	int64_t ax = kern_norm_axis(n->a.split.axis, nd), at = 0;
	dnnl_memory_t src;
	int rc;

	(void)c;
	if (kern_split_sizes(s, n, s->dims[x][ax], sizes) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (Split): bad sizes", n->name);
	rc = kp_get_plain(p, x, &src, n);
	memcpy(count, s->dims[x], sizeof(count));
	for (int k = 0; k < n->n_out && rc == 0; k++) {
		begin[ax] = at;
		count[ax] = sizes[k];
		at += sizes[k];
		if (n->out[k] >= 0 && sizes[k] > 0)
			rc = kp_copy_box(p, n, src, n->out[k], begin, count);
	}
	return rc;
}

/* Constant Pad: the border is written once here; each run copies only the interior. */
static int
kp_build_pad(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t pads[2 * TG_MAX_DIMS];
	float value = n->a.pad.value;
	dnnl_memory_desc_t ymd, sub;
	dnnl_dims_t dims, offs;
	dnnl_memory_t dst, inner, src;
	float *buf;
	size_t total = 1;
	int rc;

	(void)c;
	memcpy(pads, n->a.pad.pads, sizeof(pads));
	if (n->n_in > 1 && n->in[1] >= 0)
		kern_static_ints(s, n->in[1], pads, 2 * TG_MAX_DIMS);
	if (n->n_in > 2 && n->in[2] >= 0 && kern_static_float(s, n->in[2], &value) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (Pad): value not computable at load",
				  n->name);
	kp_plain_md(&ymd, nd, s->dims[y]);
	rc = kp_mem_new(p, &ymd, NULL, &dst, n);
	if (rc < 0)
		return rc;
	buf = kp_handle(dst);
	for (int i = 0; i < nd; i++) {
		total *= (size_t)s->dims[y][i];
		dims[i] = s->dims[x][i];
		offs[i] = pads[i];
	}
	for (size_t i = 0; i < total; i++)
		buf[i] = value;
	p->vmem[y] = dst;
	rc = KP_CHK(p, dnnl_memory_desc_init_submemory(&sub, &ymd, dims, offs), n, "submemory");
	if (rc == 0)
		rc = kp_mem_new(p, &sub, buf, &inner, n);
	if (rc == 0)
		rc = kp_get_f32(p, x, &src, n);
	if (rc == 0)
		rc = kp_reorder(p, src, inner, false, n);
	return rc;
}

/* Transpose: a reorder from the input, seen through permuted strides, into plain output. */
static int
kp_build_transpose(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	dnnl_memory_desc_t perm_md, y_md;
	dnnl_dims_t dims, strides;
	dnnl_memory_t src, view, dst;
	int64_t st[TG_MAX_DIMS];
	int rc;

	(void)c;
	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	for (int i = nd - 1; i >= 0; i--)
		st[i] = i == nd - 1 ? 1 : st[i + 1] * s->dims[x][i + 1];
	for (int i = 0; i < nd; i++) {
		int64_t a = n->a.perm.n ? n->a.perm.perm[i] : nd - 1 - i;

		dims[i] = s->dims[x][a];
		strides[i] = st[a];
	}
	rc = KP_CHK(p, dnnl_memory_desc_init_by_strides(&perm_md, nd, dims, dnnl_f32, strides), n,
		    "transpose md");
	if (rc == 0)
		rc = kp_mem_new(p, &perm_md, kp_handle(src), &view, n);
	kp_plain_md(&y_md, nd, s->dims[y]);
	if (rc == 0)
		rc = kp_mem_new(p, &y_md, NULL, &dst, n);
	if (rc == 0)
		rc = kp_reorder(p, view, dst, false, n);
	if (rc == 0)
		p->vmem[y] = dst;
	return rc;
}

/* ---- definitions ---- */

const struct kern_op_def kern_op_transpose = {
	.known = (const char *const[]){ "perm", NULL },
	.attrs = kern_transpose_attrs,
	.infer = kern_transpose_infer,
	.build = kp_build_transpose,
};

const struct kern_op_def kern_op_concat = {
	.known = (const char *const[]){ "axis", NULL },
	.attrs = kern_concat_attrs,
	.infer = kern_concat_infer,
	.eval = kern_concat_eval,
	.flops = kern_flops_none,
	.build = kp_build_concat,
};

const struct kern_op_def kern_op_split = {
	.known = (const char *const[]){ "axis", "split", "num_outputs", NULL },
	.attrs = kern_split_attrs,
	.infer = kern_split_infer,
	.build = kp_build_split,
};

const struct kern_op_def kern_op_slice = {
	.known = (const char *const[]){ "starts", "ends", "axes", NULL },
	.attrs = kern_slice_attrs,
	.infer = kern_slice_infer,
	.eval = kern_slice_eval,
	.build = kp_build_slice,
};

const struct kern_op_def kern_op_pad = {
	.known = (const char *const[]){ "mode", "pads", "value", NULL },
	.attrs = kern_pad_attrs,
	.infer = kern_pad_infer,
	.flops = kern_flops_none,
	.build = kp_build_pad,
};
