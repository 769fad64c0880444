/*
 * ONNX to the graph IR: protobuf-c decoding of the ModelProto, attributes checked per op,
 * initializers copied out, nodes sorted topologically. Everything a hostile file can say
 * is checked against the load limits before it sizes an allocation.
 */
#include "kernels/kern_int.h"
#include "onnx/onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kern_op_names[KOP__COUNT] = {
#define _(sym, name, st, da) [KOP_##sym] = name,
	KERN_FOREACH_OP(_)
#undef _
};

/* ---- name -> value index: open addressing, sized once for every name the file can hold ---- */

struct kern_names {
	int *slot;			/* value index or -1 */
	size_t cap;			/* power of two */
	const struct kern_model *m;
};

static uint64_t
kern_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

static int
kern_names_init(struct kern_names *t, const struct kern_model *m, size_t max_names)
{
	t->cap = 16;
	while (t->cap < max_names * 2)
		t->cap <<= 1;
	t->slot = malloc(t->cap * sizeof(int));
	if (t->slot == NULL)
		return -ENOMEM;
	memset(t->slot, 0xff, t->cap * sizeof(int));
	t->m = m;
	return 0;
}

static int *
kern_names_find(struct kern_names *t, const char *name)
{
	size_t i = kern_hash(name) & (t->cap - 1);

	while (t->slot[i] >= 0 && strcmp(t->m->values[t->slot[i]].name, name) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->slot[i];
}

/* ---- tensors ---- */

static int
kern_dtype_from_onnx(int32_t dt, enum tg_dtype *out)
{
	switch (dt) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: *out = TG_DT_F32; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: *out = TG_DT_F16; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: *out = TG_DT_F64; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: *out = TG_DT_S8; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: *out = TG_DT_U8; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *out = TG_DT_S32; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *out = TG_DT_S64; return 0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *out = TG_DT_U8; return 0;
	}
	return -EINVAL;
}

/* Copy a TensorProto's data out, as stored (raw_data or the typed repeated field). */
static int
kern_tensor_from_proto(const Onnx__TensorProto *tp, uint64_t max_elems, struct tg_tensor *out,
		       struct tg_err *err)
{
	struct tg_tensor t = { 0 };
	const char *name = tp->name ? tp->name : "?";
	uint64_t n = 1;
	size_t es, have = 0;
	const void *src = NULL;

	if (tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL ||
	    tp->n_external_data > 0)
		return tg_err_set(err, -EINVAL, "tensor \"%s\": external data is not supported", name);
	if (tp->segment != NULL)
		return tg_err_set(err, -EINVAL, "tensor \"%s\": segments are not supported", name);
	if (kern_dtype_from_onnx(tp->data_type, &t.dtype) < 0)
		return tg_err_set(err, -EINVAL, "tensor \"%s\": unsupported data type %d", name,
				  tp->data_type);
	if (tp->n_dims > TG_MAX_DIMS)
		return tg_err_set(err, -EINVAL, "tensor \"%s\": %zu dims, at most %d", name,
				  tp->n_dims, TG_MAX_DIMS);
	t.ndim = (int)tp->n_dims;
	for (size_t i = 0; i < tp->n_dims; i++) {
		if (tp->dims[i] < 0 || (uint64_t)tp->dims[i] > max_elems ||
		    (tp->dims[i] > 0 && n > max_elems / (uint64_t)tp->dims[i]))
			return tg_err_set(err, -EFBIG, "tensor \"%s\": dims out of bounds", name);
		t.dims[i] = tp->dims[i];
		n *= (uint64_t)tp->dims[i];
	}
	es = tg_dtype_size(t.dtype);
	if (tp->has_raw_data) {
		src = tp->raw_data.data;
		have = tp->raw_data.len / es;
		if (tp->raw_data.len % es != 0 || have != n)
			return tg_err_set(err, -EINVAL, "tensor \"%s\": %zu raw bytes for %llu elements",
					  name, tp->raw_data.len, (unsigned long long)n);
	}
	if (tg_tensor_alloc(&t) < 0)
		return tg_err_set(err, -ENOMEM, "tensor \"%s\": out of memory", name);
	if (src != NULL) {
		memcpy(t.data, src, n * es);	/* little endian, as this host */
		*out = t;
		return 0;
	}
	switch (t.dtype) {
	case TG_DT_F32: have = tp->n_float_data; break;
	case TG_DT_S64: have = tp->n_int64_data; break;
	case TG_DT_F64: have = tp->n_double_data; break;
	default: have = tp->n_int32_data; break;	/* int32, int8, uint8, f16, bool */
	}
	if (have != n) {
		tg_tensor_free(&t);
		return tg_err_set(err, -EINVAL, "tensor \"%s\": %zu values for %llu elements", name,
				  have, (unsigned long long)n);
	}
	for (uint64_t i = 0; i < n; i++) {
		switch (t.dtype) {
		case TG_DT_F32: ((float *)t.data)[i] = tp->float_data[i]; break;
		case TG_DT_S64: ((int64_t *)t.data)[i] = tp->int64_data[i]; break;
		case TG_DT_F64: ((double *)t.data)[i] = tp->double_data[i]; break;
		case TG_DT_S32: ((int32_t *)t.data)[i] = tp->int32_data[i]; break;
		case TG_DT_S8: ((int8_t *)t.data)[i] = (int8_t)tp->int32_data[i]; break;
		case TG_DT_U8: ((uint8_t *)t.data)[i] = (uint8_t)tp->int32_data[i]; break;
		case TG_DT_F16: ((uint16_t *)t.data)[i] = (uint16_t)tp->int32_data[i]; break;
		}
	}
	*out = t;
	return 0;
}

/* Constants are kept as f32 (weights, scalars) or s64 (shapes, indices) only. */
static int
kern_tensor_normalize(struct tg_tensor *t, const char *name, struct tg_err *err)
{
	size_t n = tg_tensor_numel(t);
	enum tg_dtype to;
	struct tg_tensor u;

	switch (t->dtype) {
	case TG_DT_F32: case TG_DT_S64: return 0;
	case TG_DT_F64: case TG_DT_F16: to = TG_DT_F32; break;
	default: to = TG_DT_S64; break;
	}
	u = *t;
	u.dtype = to;
	if (tg_tensor_alloc(&u) < 0)
		return tg_err_set(err, -ENOMEM, "tensor \"%s\": out of memory", name);
	for (size_t i = 0; i < n; i++) {
		switch (t->dtype) {
		case TG_DT_F64: ((float *)u.data)[i] = (float)((double *)t->data)[i]; break;
		case TG_DT_F16: ((float *)u.data)[i] = tg_f16_to_f32(((uint16_t *)t->data)[i]); break;
		case TG_DT_S32: ((int64_t *)u.data)[i] = ((int32_t *)t->data)[i]; break;
		case TG_DT_S8: ((int64_t *)u.data)[i] = ((int8_t *)t->data)[i]; break;
		case TG_DT_U8: ((int64_t *)u.data)[i] = ((uint8_t *)t->data)[i]; break;
		default: break;
		}
	}
	tg_tensor_free(t);
	*t = u;
	return 0;
}

int
kern_tensor_pb_parse(const uint8_t *buf, size_t len, struct tg_tensor *out, char *name,
		     size_t name_len, struct tg_err *err)
{
	Onnx__TensorProto *tp;
	int rc;

	tp = onnx__tensor_proto__unpack(NULL, len, buf);
	if (tp == NULL)
		return tg_err_set(err, -EINVAL, "not a TensorProto");
	rc = kern_tensor_from_proto(tp, 1ull << 31, out, err);
	if (rc == 0 && name != NULL && name_len > 0)
		snprintf(name, name_len, "%s", tp->name ? tp->name : "");
	onnx__tensor_proto__free_unpacked(tp, NULL);
	return rc;
}

/* ---- attributes ---- */

struct kern_attr_ctx {
	const struct kern_node *n;
	const Onnx__NodeProto *np;
	struct tg_err *err;
};

static const Onnx__AttributeProto *
kern_attr(const Onnx__NodeProto *np, const char *name)
{
	for (size_t i = 0; i < np->n_attribute; i++)
		if (np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0)
			return np->attribute[i];
	return NULL;
}

static int
kern_attr_bad(const struct kern_attr_ctx *c, const char *attr, const char *why)
{
	return tg_err_set(c->err, -EINVAL, "node \"%s\" (%s): attribute %s: %s", c->n->name,
			  kern_op_names[c->n->op], attr, why);
}

static int64_t
kern_attr_int(const Onnx__NodeProto *np, const char *name, int64_t dflt)
{
	const Onnx__AttributeProto *a = kern_attr(np, name);

	return a && a->has_i ? a->i : dflt;
}

static float
kern_attr_float(const Onnx__NodeProto *np, const char *name, float dflt)
{
	const Onnx__AttributeProto *a = kern_attr(np, name);

	return a && a->has_f ? a->f : dflt;
}

/* Copy an INTS attribute of at most max entries. @return count, 0 if absent, <0 on error. */
static int
kern_attr_ints(const struct kern_attr_ctx *c, const char *name, int64_t *out, int max)
{
	const Onnx__AttributeProto *a = kern_attr(c->np, name);

	if (a == NULL)
		return 0;
	if (a->n_ints > (size_t)max)
		return kern_attr_bad(c, name, "too many values");
	if (a->n_ints > 0)
		memcpy(out, a->ints, a->n_ints * sizeof(int64_t));
	return (int)a->n_ints;
}

/* Refuse any attribute not in the list: silently ignoring one would compute something else. */
static int
kern_attr_check_known(const struct kern_attr_ctx *c, const char *const *known)
{
	for (size_t i = 0; i < c->np->n_attribute; i++) {
		const char *an = c->np->attribute[i]->name ? c->np->attribute[i]->name : "";
		bool ok = false;

		for (const char *const *k = known; *k; k++)
			ok |= strcmp(*k, an) == 0;
		if (!ok)
			return tg_err_set(c->err, -EINVAL,
					  "node \"%s\" (%s): unsupported attribute %s", c->n->name,
					  kern_op_names[c->n->op], an);
	}
	return 0;
}

static int
kern_attr_auto_pad(const struct kern_attr_ctx *c, int *auto_pad, bool *valid)
{
	const Onnx__AttributeProto *a = kern_attr(c->np, "auto_pad");
	char s[32] = "NOTSET";

	if (a && a->has_s)
		snprintf(s, sizeof(s), "%.*s", (int)a->s.len, (const char *)a->s.data);
	*auto_pad = 0;
	*valid = false;
	if (strcmp(s, "NOTSET") == 0)
		return 0;
	if (strcmp(s, "VALID") == 0) {
		*valid = true;
		return 0;
	}
	if (strcmp(s, "SAME_UPPER") == 0) {
		*auto_pad = 1;
		return 0;
	}
	if (strcmp(s, "SAME_LOWER") == 0) {
		*auto_pad = 2;
		return 0;
	}
	return kern_attr_bad(c, "auto_pad", "unknown value");
}

/* kernel_shape/strides/pads/dilations shared by Conv and the pools. */
static int
kern_attr_window(const struct kern_attr_ctx *c, int *nsp, int64_t *kernel, int64_t *strides,
		 int64_t *dilations, int64_t *pads, bool need_kernel)
{
	int64_t k[8], s[8], d[8], p[8];
	int nk, ns, nd, np;

	nk = kern_attr_ints(c, "kernel_shape", k, 8);
	ns = kern_attr_ints(c, "strides", s, 8);
	nd = kern_attr_ints(c, "dilations", d, 8);
	np = kern_attr_ints(c, "pads", p, 8);
	if (nk < 0 || ns < 0 || nd < 0 || np < 0)
		return -EINVAL;
	if (need_kernel && nk == 0)
		return kern_attr_bad(c, "kernel_shape", "required");
	if (nk > 2)
		return kern_attr_bad(c, "kernel_shape", "only 1-D and 2-D windows are supported");
	*nsp = nk;	/* 0 for Conv without kernel_shape: taken from the weights later */
	for (int i = 0; i < 2; i++) {
		kernel[i] = i < nk ? k[i] : 1;
		strides[i] = 1;
		dilations[i] = 1;
		pads[i] = pads[i + 2] = 0;
	}
	if ((ns && nk && ns != nk) || (nd && nk && nd != nk) || (np && nk && np != 2 * nk))
		return kern_attr_bad(c, "strides/dilations/pads", "rank does not match the kernel");
	if (ns > 2 || nd > 2 || np > 4)
		return kern_attr_bad(c, "strides/dilations/pads", "only 1-D and 2-D are supported");
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
			return kern_attr_bad(c, "kernel_shape/strides/dilations", "out of range");
		if (pads[i] < 0 || pads[i + 2] < 0 || pads[i] > 1024 || pads[i + 2] > 1024)
			return kern_attr_bad(c, "pads", "out of range");
	}
	return 0;
}

/* Conv's and ConvTranspose's window, auto_pad and group. */
static int
kern_attr_conv(const struct kern_attr_ctx *c, struct kern_node *n, const Onnx__NodeProto *np)
{
	int rc = kern_attr_window(c, &n->a.conv.nsp, n->a.conv.kernel, n->a.conv.strides,
				  n->a.conv.dilations, n->a.conv.pads, false);

	if (rc == 0)
		rc = kern_attr_auto_pad(c, &n->a.conv.auto_pad, &n->a.conv.valid);
	n->a.conv.group = kern_attr_int(np, "group", 1);
	if (rc == 0 && (n->a.conv.group < 1 || n->a.conv.group > (1 << 20)))
		rc = kern_attr_bad(c, "group", "out of range");
	return rc;
}

/* ConvTranspose's output_padding and output_shape (spatial; some exporters write [N,C,...]). */
static int
kern_attr_convt(const struct kern_attr_ctx *c, struct kern_node *n)
{
	int64_t sh[TG_MAX_DIMS];
	int ns, rc = kern_attr_ints(c, "output_padding", n->a.conv.out_pad, 2);

	if (rc < 0)
		return rc;
	ns = kern_attr_ints(c, "output_shape", sh, TG_MAX_DIMS);
	if (ns < 0)
		return ns;
	if (ns > 2 && ns != 3 && ns != 4)
		return kern_attr_bad(c, "output_shape", "only 1-D and 2-D are supported");
	for (int i = 0; i < 2 && i < ns; i++)
		n->a.conv.out_shape[i] = sh[ns > 2 ? i + 2 : i];
	n->a.conv.has_out_shape = ns > 0;
	for (int i = 0; i < 2; i++)
		if (n->a.conv.out_pad[i] < 0 || n->a.conv.out_pad[i] > 1024 ||
		    n->a.conv.out_shape[i] < 0 || n->a.conv.out_shape[i] > (1 << 24))
			return kern_attr_bad(c, "output_padding/output_shape", "out of range");
	return 0;
}

/* A STRING attribute matched against a list: its index, dflt when absent, -1 unknown. */
static int
kern_attr_enum(const Onnx__NodeProto *np, const char *name, const char *const *names, int dflt)
{
	const Onnx__AttributeProto *a = kern_attr(np, name);

	if (a == NULL || !a->has_s)
		return dflt;
	for (int i = 0; names[i]; i++)
		if (strlen(names[i]) == a->s.len && memcmp(names[i], a->s.data, a->s.len) == 0)
			return i;
	return -1;
}

/* Resize (opset 10..18) and Upsample (7, 9): the modes; what is not computed exactly is
 * refused when shapes are known (kern_resize_geometry). */
static int
kern_attr_resize(const struct kern_attr_ctx *c, struct kern_model *m, struct kern_node *n)
{
	static const char *const modes[] = { "nearest", "linear", "cubic", NULL };
	static const char *const coords[] = { "half_pixel", "pytorch_half_pixel", "align_corners",
					      "asymmetric", "tf_crop_and_resize",
					      "half_pixel_symmetric", NULL };
	static const char *const nearest[] = { "round_prefer_floor", "round_prefer_ceil", "floor",
					       "ceil", NULL };
	const Onnx__AttributeProto *a = kern_attr(c->np, "mode");
	bool legacy = n->op == KOP_UPSAMPLE || m->opset < 11;

	/* Upsample and Resize-10 say "bilinear"/"linear" and map coordinates asymmetrically. */
	if (a && a->has_s && a->s.len == 8 && memcmp(a->s.data, "bilinear", 8) == 0)
		n->a.resize.mode = KERN_RS_LINEAR;
	else
		n->a.resize.mode = kern_attr_enum(c->np, "mode", modes, KERN_RS_NEAREST);
	n->a.resize.coord = legacy ? KERN_RS_ASYMMETRIC :
		kern_attr_enum(c->np, "coordinate_transformation_mode", coords, KERN_RS_HALF_PIXEL);
	n->a.resize.nearest = legacy ? KERN_RS_FLOOR :
		kern_attr_enum(c->np, "nearest_mode", nearest, KERN_RS_ROUND_PREFER_FLOOR);
	if (n->a.resize.mode < 0 || n->a.resize.coord < 0 || n->a.resize.nearest < 0)
		return kern_attr_bad(c, "mode/coordinate_transformation_mode/nearest_mode",
				     "value not supported");
	if (kern_attr_int(c->np, "antialias", 0) != 0)
		return kern_attr_bad(c, "antialias", "not supported");
	if (kern_attr(c->np, "axes") != NULL)
		return kern_attr_bad(c, "axes", "not supported");
	if (kern_attr_enum(c->np, "keep_aspect_ratio_policy", (const char *const[]){ "stretch",
			   NULL }, 0) != 0)
		return kern_attr_bad(c, "keep_aspect_ratio_policy", "only stretch is supported");
	a = kern_attr(c->np, "scales");
	if (a != NULL) {
		if (a->n_floats > TG_MAX_DIMS)
			return kern_attr_bad(c, "scales", "too many values");
		for (size_t i = 0; i < a->n_floats; i++)
			n->a.resize.scales[i] = a->floats[i];
		n->a.resize.n_scales = (int)a->n_floats;
	}
	return 0;
}

static int
kern_node_attrs(struct kern_model *m, struct kern_node *n, const Onnx__NodeProto *np,
		struct tg_err *err)
{
	struct kern_attr_ctx c = { n, np, err };
	int rc = 0;

#define KNOWN(...)                                                                    \
	do {                                                                          \
		static const char *const k_[] = { __VA_ARGS__, NULL };                \
		rc = kern_attr_check_known(&c, k_);                                   \
		if (rc < 0)                                                           \
			return rc;                                                    \
	} while (0)

	switch (n->op) {
	case KOP_CONVT:
		KNOWN("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad",
		      "output_padding", "output_shape");
		rc = kern_attr_conv(&c, n, np);
		if (rc == 0)
			rc = kern_attr_convt(&c, n);
		break;
	case KOP_CONV:
		KNOWN("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad");
		rc = kern_attr_conv(&c, n, np);
		break;
	case KOP_MAXPOOL:
	case KOP_AVGPOOL:
		if (n->op == KOP_MAXPOOL)
			KNOWN("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad",
			      "storage_order");
		else
			KNOWN("kernel_shape", "strides", "pads", "ceil_mode", "auto_pad",
			      "count_include_pad");
		rc = kern_attr_window(&c, &n->a.pool.nsp, n->a.pool.kernel, n->a.pool.strides,
				      n->a.pool.dilations, n->a.pool.pads, true);
		if (rc == 0)
			rc = kern_attr_auto_pad(&c, &n->a.pool.auto_pad, &n->a.pool.valid);
		n->a.pool.ceil_mode = kern_attr_int(np, "ceil_mode", 0) != 0;
		n->a.pool.count_include_pad = kern_attr_int(np, "count_include_pad", 0) != 0;
		if (rc == 0 && np->n_output > 1)
			rc = kern_attr_bad(&c, "Indices", "the indices output is not supported");
		break;
	case KOP_BN:
		KNOWN("epsilon", "momentum", "spatial", "training_mode", "is_test");
		n->a.bn.eps = kern_attr_float(np, "epsilon", 1e-5f);
		if (kern_attr_int(np, "spatial", 1) != 1)
			return kern_attr_bad(&c, "spatial", "only spatial=1 is supported");
		if (kern_attr_int(np, "training_mode", 0) != 0)
			return kern_attr_bad(&c, "training_mode", "training is not supported");
		if (np->n_output > 1)
			return kern_attr_bad(&c, "outputs", "running statistics outputs (training)");
		break;
	case KOP_LAYERNORM:
		KNOWN("axis", "epsilon", "stash_type");
		n->a.ln.axis = kern_attr_int(np, "axis", -1);
		n->a.ln.eps = kern_attr_float(np, "epsilon", 1e-5f);
		if (kern_attr_int(np, "stash_type", 1) != 1)
			return kern_attr_bad(&c, "stash_type", "only float statistics are supported");
		break;
	case KOP_CLIP:
		KNOWN("min", "max");
		n->a.clip.has_min = kern_attr(np, "min") != NULL;
		n->a.clip.has_max = kern_attr(np, "max") != NULL;
		n->a.clip.min = kern_attr_float(np, "min", -INFINITY);
		n->a.clip.max = kern_attr_float(np, "max", INFINITY);
		break;
	case KOP_HARDSIGMOID:
		KNOWN("alpha", "beta");
		n->a.hsig.alpha = kern_attr_float(np, "alpha", 0.2f);
		n->a.hsig.beta = kern_attr_float(np, "beta", 0.5f);
		break;
	case KOP_LEAKYRELU:
	case KOP_ELU:
		KNOWN("alpha");
		n->a.elt.alpha = kern_attr_float(np, "alpha", n->op == KOP_ELU ? 1.f : 0.01f);
		break;
	case KOP_TRANSPOSE:
		KNOWN("perm");
		rc = kern_attr_ints(&c, "perm", n->a.perm.perm, TG_MAX_DIMS);
		if (rc < 0)
			return rc;
		n->a.perm.n = rc;	/* 0: reverse the dims */
		rc = 0;
		break;
	case KOP_GEMM:
		KNOWN("alpha", "beta", "transA", "transB", "broadcast");
		n->a.gemm.alpha = kern_attr_float(np, "alpha", 1.f);
		n->a.gemm.beta = kern_attr_float(np, "beta", 1.f);
		n->a.gemm.trans_a = (int)kern_attr_int(np, "transA", 0);
		n->a.gemm.trans_b = (int)kern_attr_int(np, "transB", 0);
		break;
	case KOP_CONCAT:
		KNOWN("axis");
		if (kern_attr(np, "axis") == NULL)
			return kern_attr_bad(&c, "axis", "required");
		n->a.axis.axis = kern_attr_int(np, "axis", 0);
		break;
	case KOP_FLATTEN:
		KNOWN("axis");
		n->a.axis.axis = kern_attr_int(np, "axis", 1);
		break;
	case KOP_SOFTMAX:
	case KOP_LOGSOFTMAX:
		KNOWN("axis");
		n->a.axis.axis = kern_attr_int(np, "axis", m->opset >= 13 ? -1 : 1);
		break;
	case KOP_GATHER:
		KNOWN("axis");
		n->a.axis.axis = kern_attr_int(np, "axis", 0);
		break;
	case KOP_SQUEEZE:
	case KOP_UNSQUEEZE:
		KNOWN("axes");
		rc = kern_attr_ints(&c, "axes", n->a.axes.axes, TG_MAX_DIMS);
		if (rc < 0)
			return rc;
		n->a.axes.n_axes = rc;
		n->a.axes.has_axes = kern_attr(np, "axes") != NULL;
		rc = 0;
		break;
	case KOP_PAD: {
		const Onnx__AttributeProto *a = kern_attr(np, "mode");

		KNOWN("mode", "pads", "value");
		if (a && a->has_s && !(a->s.len == 8 && memcmp(a->s.data, "constant", 8) == 0))
			return kern_attr_bad(&c, "mode", "only constant padding is supported");
		rc = kern_attr_ints(&c, "pads", n->a.pad.pads, 2 * TG_MAX_DIMS);
		if (rc < 0)
			return rc;
		n->a.pad.n_pads = rc;
		n->a.pad.has_pads = kern_attr(np, "pads") != NULL;
		n->a.pad.value = kern_attr_float(np, "value", 0.f);
		rc = 0;
		break;
	}
	case KOP_SLICE:
		KNOWN("starts", "ends", "axes");
		n->a.slice.has = kern_attr(np, "starts") != NULL;
		if (n->a.slice.has) {
			int ns = kern_attr_ints(&c, "starts", n->a.slice.starts, TG_MAX_DIMS);
			int ne = kern_attr_ints(&c, "ends", n->a.slice.ends, TG_MAX_DIMS);
			int na = kern_attr_ints(&c, "axes", n->a.slice.axes, TG_MAX_DIMS);

			if (ns < 0 || ne < 0 || na < 0)
				return -EINVAL;
			if (ns != ne || (na && na != ns))
				return kern_attr_bad(&c, "starts/ends/axes", "lengths differ");
			if (!na)
				for (int i = 0; i < ns; i++)
					n->a.slice.axes[i] = i;
			n->a.slice.n = ns;
		}
		break;
	case KOP_REDUCEMEAN: case KOP_REDUCEMAX: case KOP_REDUCEMIN: case KOP_REDUCESUM:
	case KOP_REDUCEPROD: case KOP_REDUCEL1: case KOP_REDUCEL2: case KOP_REDUCESUMSQUARE:
		KNOWN("axes", "keepdims", "noop_with_empty_axes");
		rc = kern_attr_ints(&c, "axes", n->a.reduce.axes, TG_MAX_DIMS);
		if (rc < 0)
			return rc;
		n->a.reduce.n_axes = rc;
		n->a.reduce.has_axes = kern_attr(np, "axes") != NULL;
		n->a.reduce.keepdims = kern_attr_int(np, "keepdims", 1) != 0;
		n->a.reduce.noop_empty = kern_attr_int(np, "noop_with_empty_axes", 0) != 0;
		rc = 0;
		break;
	case KOP_SPLIT:
		KNOWN("axis", "split", "num_outputs");
		n->a.split.axis = kern_attr_int(np, "axis", 0);
		rc = kern_attr_ints(&c, "split", n->a.split.sizes, KERN_MAX_OUT);
		if (rc < 0)
			return rc;
		n->a.split.n_sizes = rc;
		n->a.split.has_sizes = kern_attr(np, "split") != NULL;
		rc = 0;
		break;
	case KOP_RESIZE:
	case KOP_UPSAMPLE:
		KNOWN("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
		      "exclude_outside", "extrapolation_value", "antialias", "axes",
		      "keep_aspect_ratio_policy", "scales");
		rc = kern_attr_resize(&c, m, n);
		break;
	case KOP_GELU:
		KNOWN("approximate");
		n->a.gelu.tanh = kern_attr_enum(np, "approximate",
						(const char *const[]){ "none", "tanh", NULL }, 0) == 1;
		break;
	case KOP_CAST:
		KNOWN("to");
		n->a.cast.to = (int)kern_attr_int(np, "to", 0);
		break;
	case KOP_SHAPE:
		KNOWN("start", "end");
		if (kern_attr(np, "start") || kern_attr(np, "end"))
			return kern_attr_bad(&c, "start/end", "not supported");
		break;
	case KOP_RESHAPE:
		KNOWN("allowzero", "shape");
		if (kern_attr_int(np, "allowzero", 0) != 0)
			return kern_attr_bad(&c, "allowzero", "only 0 is supported");
		if (kern_attr(np, "shape"))
			return kern_attr_bad(&c, "shape", "Reshape-1 attribute form is not supported");
		break;
	case KOP_DROPOUT:
		KNOWN("ratio", "seed", "is_test");
		break;
	case KOP_ADD: case KOP_MUL: case KOP_SUB: case KOP_DIV:
		KNOWN("broadcast", "axis");
		if (kern_attr(np, "axis") != NULL)
			return kern_attr_bad(&c, "axis", "legacy broadcast axis is not supported");
		break;
	case KOP_CONSTANT:
		KNOWN("value", "value_float", "value_floats", "value_int", "value_ints");
		break;
	default:
		KNOWN("__none__");
		break;
	}
#undef KNOWN
	return rc;
}

/* Turn a Constant node's attribute into constant data on its output value. */
static int
kern_constant_value(struct kern_model *m, struct kern_node *n, const Onnx__NodeProto *np,
		    struct tg_err *err)
{
	struct kern_value *v = &m->values[n->out[0]];
	const Onnx__AttributeProto *a;
	struct tg_tensor t = { 0 };
	int rc;

	if ((a = kern_attr(np, "value")) != NULL && a->t != NULL) {
		rc = kern_tensor_from_proto(a->t, m->opts.max_tensor_elems, &t, err);
		if (rc < 0)
			return tg_err_prefix(err, "node \"%s\" (Constant): ", n->name);
	} else if ((a = kern_attr(np, "value_float")) != NULL) {
		t.dtype = TG_DT_F32;
		if (tg_tensor_alloc(&t) < 0)
			return tg_err_set(err, -ENOMEM, "out of memory");
		*(float *)t.data = a->f;
	} else if ((a = kern_attr(np, "value_int")) != NULL) {
		t.dtype = TG_DT_S64;
		if (tg_tensor_alloc(&t) < 0)
			return tg_err_set(err, -ENOMEM, "out of memory");
		*(int64_t *)t.data = a->i;
	} else if ((a = kern_attr(np, "value_ints")) != NULL ||
		   (a = kern_attr(np, "value_floats")) != NULL) {
		bool ints = a->n_ints > 0 || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;

		t.dtype = ints ? TG_DT_S64 : TG_DT_F32;
		t.ndim = 1;
		t.dims[0] = (int64_t)(ints ? a->n_ints : a->n_floats);
		if (tg_tensor_alloc(&t) < 0)
			return tg_err_set(err, -ENOMEM, "out of memory");
		memcpy(t.data, ints ? (void *)a->ints : (void *)a->floats,
		       (size_t)t.dims[0] * tg_dtype_size(t.dtype));
	} else {
		return tg_err_set(err, -EINVAL, "node \"%s\" (Constant): no supported value attribute",
				  n->name);
	}
	rc = kern_tensor_normalize(&t, v->name, err);
	if (rc < 0) {
		tg_tensor_free(&t);
		return rc;
	}
	v->cdata = t;
	v->is_const = true;
	v->is_static = true;
	v->elem_type = t.dtype == TG_DT_F32 ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT :
					      ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	return 0;
}

/* ---- graph ---- */

static int
kern_value_add(struct kern_model *m, struct kern_names *names, const char *name, int *out,
	       struct tg_err *err)
{
	int *slot = kern_names_find(names, name);
	struct kern_value *v;

	if (*slot >= 0) {
		*out = *slot;
		return 0;
	}
	v = &m->values[m->n_values];
	memset(v, 0, sizeof(*v));
	v->name = strdup(name);
	if (v->name == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	v->producer = -1;
	*slot = (int)m->n_values;
	*out = (int)m->n_values++;
	return 0;
}

static int
kern_lookup_op(const char *op_type, const char *domain, enum kern_op *out)
{
	if (domain != NULL && domain[0] != '\0' && strcmp(domain, "ai.onnx") != 0)
		return -ENOENT;
	for (int i = 0; i < KOP__COUNT; i++)
		if (strcmp(kern_op_names[i], op_type) == 0) {
			*out = (enum kern_op)i;
			return 0;
		}
	return -ENOENT;
}

static int
kern_input_shape(struct kern_value *v, const Onnx__ValueInfoProto *vi, struct tg_err *err)
{
	const Onnx__TypeProto *tp = vi->type;
	const Onnx__TensorShapeProto *sp;

	if (tp == NULL || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
	    tp->tensor_type == NULL)
		return tg_err_set(err, -EINVAL, "input \"%s\": not a tensor", v->name);
	v->elem_type = tp->tensor_type->elem_type;
	sp = tp->tensor_type->shape;
	if (sp == NULL)
		return tg_err_set(err, -EINVAL, "input \"%s\": no shape", v->name);
	if (sp->n_dim > TG_MAX_DIMS)
		return tg_err_set(err, -EINVAL, "input \"%s\": %zu dims, at most %d", v->name,
				  sp->n_dim, TG_MAX_DIMS);
	v->in_ndim = (int)sp->n_dim;
	for (size_t i = 0; i < sp->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];

		if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
		    d->dim_value >= 0 && d->dim_value <= (1 << 24)) {
			v->in_dims[i] = d->dim_value;
		} else if (i == 0) {
			v->in_dims[i] = 1;	/* the batch: any size */
		} else {
			return tg_err_set(err, -EINVAL,
					  "input \"%s\": dim %zu is symbolic or out of range; only "
					  "the batch dimension (0) may vary",
					  v->name, i);
		}
	}
	return 0;
}

/* Kahn's algorithm: nodes come out in an order where every producer precedes its readers. */
static int
kern_topo_sort(struct kern_model *m, struct tg_err *err)
{
	unsigned n = m->n_nodes, head = 0, tail = 0;
	unsigned *indeg = calloc(n ? n : 1, sizeof(unsigned));
	unsigned *queue = malloc((n ? n : 1) * sizeof(unsigned));
	int *newidx = malloc((n ? n : 1) * sizeof(int));
	struct kern_node *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	/* readers of each value, as a CSR built from the in[] lists */
	unsigned *rstart = calloc(m->n_values + 1, sizeof(unsigned));
	unsigned *readers = NULL, total = 0;
	int rc = 0;

	if (!indeg || !queue || !newidx || !sorted || !rstart) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < n; i++)
		for (int k = 0; k < m->nodes[i].n_in; k++)
			if (m->nodes[i].in[k] >= 0) {
				rstart[m->nodes[i].in[k] + 1]++;
				total++;
			}
	for (unsigned v = 0; v < m->n_values; v++)
		rstart[v + 1] += rstart[v];
	readers = malloc((total ? total : 1) * sizeof(unsigned));
	if (readers == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	{
		unsigned *fill = calloc(m->n_values, sizeof(unsigned));

		if (fill == NULL) {
			rc = tg_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		for (unsigned i = 0; i < n; i++)
			for (int k = 0; k < m->nodes[i].n_in; k++) {
				int v = m->nodes[i].in[k];

				if (v < 0)
					continue;
				readers[rstart[v] + fill[v]++] = i;
				if (m->values[v].producer >= 0)
					indeg[i]++;
			}
		free(fill);
	}
	for (unsigned i = 0; i < n; i++)
		if (indeg[i] == 0)
			queue[tail++] = i;
	while (head < tail) {
		unsigned i = queue[head++];

		for (int o = 0; o < m->nodes[i].n_out; o++) {
			int v = m->nodes[i].out[o];

			if (v < 0)
				continue;	/* an omitted optional output */
			for (unsigned r = rstart[v]; r < rstart[v + 1]; r++)
				if (--indeg[readers[r]] == 0)
					queue[tail++] = readers[r];
		}
	}
	if (tail != n) {
		for (unsigned i = 0; i < n; i++)
			if (indeg[i] != 0) {
				rc = tg_err_set(err, -EINVAL, "graph has a cycle through node \"%s\"",
						m->nodes[i].name);
				goto out;
			}
	}
	for (unsigned k = 0; k < n; k++) {
		sorted[k] = m->nodes[queue[k]];
		newidx[queue[k]] = (int)k;
	}
	memcpy(m->nodes, sorted, n * sizeof(*sorted));
	for (unsigned v = 0; v < m->n_values; v++)
		if (m->values[v].producer >= 0)
			m->values[v].producer = newidx[m->values[v].producer];
out:
	free(indeg);
	free(queue);
	free(newidx);
	free(sorted);
	free(rstart);
	free(readers);
	return rc;
}

static int
kern_onnx_graph(struct kern_model *m, const Onnx__GraphProto *g, struct tg_err *err)
{
	struct kern_names names = { 0 };
	size_t max_names = g->n_initializer + g->n_input + g->n_output + 1;
	int rc;

	if (g->n_node > m->opts.max_nodes)
		return tg_err_set(err, -EFBIG, "%zu nodes, limit is %u", g->n_node, m->opts.max_nodes);
	if (g->n_node == 0)
		return tg_err_set(err, -EINVAL, "graph has no nodes");
	for (size_t i = 0; i < g->n_node; i++)
		max_names += g->node[i]->n_input + g->node[i]->n_output;
	/* Room for one new bias per node: BatchNormalization folding may add them. */
	m->values = calloc(max_names + g->n_node, sizeof(*m->values));
	m->nodes = calloc(g->n_node, sizeof(*m->nodes));
	m->inputs = calloc(g->n_input + 1, sizeof(int));
	m->outputs = calloc(g->n_output + 1, sizeof(int));
	if (!m->values || !m->nodes || !m->inputs || !m->outputs ||
	    kern_names_init(&names, m, max_names) < 0)
		return tg_err_set(err, -ENOMEM, "out of memory");

	for (size_t i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *tp = g->initializer[i];
		struct kern_value *v;
		int vi;

		if (tp->name == NULL || tp->name[0] == '\0') {
			rc = tg_err_set(err, -EINVAL, "initializer %zu has no name", i);
			goto out;
		}
		rc = kern_value_add(m, &names, tp->name, &vi, err);
		if (rc < 0)
			goto out;
		v = &m->values[vi];
		if (v->is_const) {
			rc = tg_err_set(err, -EINVAL, "initializer \"%s\" defined twice", tp->name);
			goto out;
		}
		rc = kern_tensor_from_proto(tp, m->opts.max_tensor_elems, &v->cdata, err);
		if (rc == 0)
			rc = kern_tensor_normalize(&v->cdata, v->name, err);
		if (rc < 0)
			goto out;
		v->is_const = v->is_static = true;
		v->elem_type = tp->data_type;
	}
	for (size_t i = 0; i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		int idx;

		if (vi->name == NULL || vi->name[0] == '\0') {
			rc = tg_err_set(err, -EINVAL, "graph input %zu has no name", i);
			goto out;
		}
		rc = kern_value_add(m, &names, vi->name, &idx, err);
		if (rc < 0)
			goto out;
		if (m->values[idx].is_const)	/* old exporters list initializers as inputs */
			continue;
		rc = kern_input_shape(&m->values[idx], vi, err);
		if (rc < 0)
			goto out;
		m->values[idx].is_input = true;
		m->inputs[m->n_inputs++] = idx;
	}
	if (m->n_inputs == 0) {
		rc = tg_err_set(err, -EINVAL, "graph has no runtime input");
		goto out;
	}
	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *np = g->node[i];
		struct kern_node *n = &m->nodes[m->n_nodes];
		const char *op = np->op_type ? np->op_type : "";
		char nm[96];

		snprintf(nm, sizeof(nm), "%s_%zu", op, i);
		n->name = strdup(np->name && np->name[0] ? np->name : nm);
		if (n->name == NULL) {
			rc = tg_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		m->n_nodes++;
		if (kern_lookup_op(op, np->domain, &n->op) < 0) {
			rc = tg_err_set(err, -EINVAL, "node \"%s\": unsupported op %s%s%s", n->name, op,
					np->domain && np->domain[0] ? " in domain " : "",
					np->domain ? np->domain : "");
			goto out;
		}
		if (np->n_input > KERN_MAX_IN || np->n_output > KERN_MAX_OUT) {
			rc = tg_err_set(err, -EINVAL, "node \"%s\" (%s): too many inputs or outputs",
					n->name, op);
			goto out;
		}
		if (np->n_output == 0) {
			rc = tg_err_set(err, -EINVAL, "node \"%s\" (%s): no output", n->name, op);
			goto out;
		}
		for (int k = 0; k < KERN_MAX_IN; k++)
			n->in[k] = -1;	/* absent: what every rule that reads in[k] checks for */
		for (size_t k = 0; k < np->n_input; k++) {
			if (np->input[k][0] == '\0')
				continue;	/* omitted optional input */
			int *slot = kern_names_find(&names, np->input[k]);

			n->in[k] = *slot;	/* -1 when not yet seen: resolved below */
			if (*slot < 0) {
				rc = kern_value_add(m, &names, np->input[k], &n->in[k], err);
				if (rc < 0)
					goto out;
			}
		}
		n->n_in = (int)np->n_input;
		for (size_t k = 0; k < np->n_output; k++) {
			int vi;

			n->out[k] = -1;
			if (np->output[k][0] == '\0')
				continue;
			rc = kern_value_add(m, &names, np->output[k], &vi, err);
			if (rc < 0)
				goto out;
			if (m->values[vi].producer >= 0 || m->values[vi].is_const ||
			    m->values[vi].is_input) {
				rc = tg_err_set(err, -EINVAL, "node \"%s\": output \"%s\" is defined twice",
						n->name, np->output[k]);
				goto out;
			}
			m->values[vi].producer = (int)i;
			n->out[k] = vi;
		}
		/* Optional trailing outputs (Dropout's mask, ...) are allowed when nobody reads them. */
		n->n_out = (int)np->n_output;
		if (n->out[0] < 0) {
			rc = tg_err_set(err, -EINVAL, "node \"%s\" (%s): first output unnamed", n->name, op);
			goto out;
		}
		rc = kern_node_attrs(m, n, np, err);
		if (rc < 0)
			goto out;
		if (n->op == KOP_CONSTANT) {
			rc = kern_constant_value(m, n, np, err);
			if (rc < 0)
				goto out;
		}
	}
	/* Every input must be produced by something. */
	for (unsigned i = 0; i < m->n_nodes; i++)
		for (int k = 0; k < m->nodes[i].n_in; k++) {
			int v = m->nodes[i].in[k];

			if (v >= 0 && m->values[v].producer < 0 && !m->values[v].is_const &&
			    !m->values[v].is_input) {
				rc = tg_err_set(err, -EINVAL,
						"node \"%s\" (%s): input \"%s\" is neither produced by a "
						"node nor an initializer nor a graph input (missing initializer?)",
						m->nodes[i].name, kern_op_names[m->nodes[i].op],
						m->values[v].name);
				goto out;
			}
			if (v >= 0)
				m->values[v].n_consumers++;
		}
	for (size_t i = 0; i < g->n_output; i++) {
		const char *on = g->output[i]->name ? g->output[i]->name : "";
		int *slot = kern_names_find(&names, on);

		if (*slot < 0 || (m->values[*slot].producer < 0 && !m->values[*slot].is_input)) {
			rc = tg_err_set(err, -EINVAL, "graph output \"%s\" is not produced by any node", on);
			goto out;
		}
		m->values[*slot].is_output = true;
		m->outputs[m->n_outputs++] = *slot;
	}
	if (m->n_outputs == 0) {
		rc = tg_err_set(err, -EINVAL, "graph has no outputs");
		goto out;
	}
	rc = kern_topo_sort(m, err);
out:
	free(names.slot);
	return rc;
}

int
kern_onnx_parse(struct kern_model *m, const uint8_t *buf, size_t len, struct tg_err *err)
{
	Onnx__ModelProto *mp;
	int rc;

	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (mp == NULL)
		return tg_err_set(err, -EINVAL, "not an ONNX model (protobuf decoding failed)");
	if (mp->graph == NULL) {
		rc = tg_err_set(err, -EINVAL, "model has no graph");
		goto out;
	}
	m->opset = 0;
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const char *d = mp->opset_import[i]->domain;

		if (d == NULL || d[0] == '\0' || strcmp(d, "ai.onnx") == 0)
			m->opset = (int)mp->opset_import[i]->version;
	}
	if (m->opset < 6 || m->opset > 18) {
		rc = tg_err_set(err, -EINVAL, "default-domain opset %d; supported: 6 to 18", m->opset);
		goto out;
	}
	rc = kern_onnx_graph(m, mp->graph, err);
out:
	onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}
