/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model as a standard QDQ ONNX file of the int8 arithmetic tailgate runs
 * (kern_model_export_qdq): the file is parsed again and written back with
 * QuantizeLinear/DequantizeLinear pairs where tailgate holds a tensor in int8, so another
 * runtime (ONNX Runtime's QDQ fusion) runs the same quantization:
 *   - activations: a Q/DQ pair after every calibrated tensor a quantized Conv or Gemm reads,
 *     and after what such a node (or an Add of two calibrated tensors) computes, past the
 *     Relu/Clip that follows it alone (tailgate fuses those, ONNX Runtime drops a Relu before
 *     a Q whose zero point is 0). Quantization is tailgate's: a tensor never negative is u8
 *     with scale max/255, zero point 0; any other is symmetric, scale max|x|/127, written as
 *     u8 with zero point 128 (the same grid as tailgate's s8, in the u8 that ONNX Runtime's
 *     U8S8 kernels take);
 *   - weights: s8, symmetric per output channel (scale max|w|/127, zero point 0), and the
 *     bias int32 with scale input scale x weight scale, each through a DequantizeLinear.
 * Graph outputs stay f32 (tailgate's plans output f32). A tail from a split
 * (kern_model_export_qdq_tail) is extracted first (kern_model_extract) and exported with the
 * whole model's ranges, so it carries the quantization the whole model's export has there.
 * Not a hot path: allocates freely, once; every allocation is recorded and released together.
 */
#include "kernels/kern_int.h"
#include "onnx/onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	KERN_QX_OPSET = 13,	/* per-axis DequantizeLinear: opset 13 */
	KERN_QX_IR = 7,		/* the IR version opset 13 needs */
};

/* What one export holds while it builds the new ModelProto. */
struct kern_qx {
	const struct kern_model *m;
	const struct kern_calib *c;
	const Onnx__GraphProto *g;
	struct kern_name_ix *byname;	/* [n_values] sorted by name */
	unsigned *n_cons;		/* [n_values] file nodes reading it */
	int *cons;			/* [n_values] one of them (the only one when n_cons is 1) */
	uint8_t *is_init;		/* [n_values] a file initializer */
	uint8_t *qact;			/* [n_values] gets a Q/DQ pair */
	uint8_t *qnode;			/* [n_file_nodes] quantized Conv/Gemm */
	uint8_t *wq_only;		/* [n_values] initializer read only as a quantized W or B */
	Onnx__NodeProto **nodes;	/* the new graph's nodes */
	size_t n_nodes, cap_nodes;
	Onnx__TensorProto **inits;	/* the new graph's initializers */
	size_t n_inits, cap_inits;
	void **owned;			/* everything allocated for the new model */
	size_t n_owned, cap_owned;
	unsigned n_qnodes;		/* Conv/Gemm quantized */
	struct tg_err *err;
};

static int
kern_qx_value(const struct kern_qx *x, const char *name)
{
	return kern_name_ix_find(x->m, x->byname, name);
}

/* calloc, recorded for release with the export; NULL (and err set) when memory ran out. */
static void *
kern_qx_alloc(struct kern_qx *x, size_t n, size_t size)
{
	void *p;

	if (x->n_owned == x->cap_owned) {
		size_t cap = x->cap_owned ? 2 * x->cap_owned : 256;
		void **o = realloc(x->owned, cap * sizeof(*o));

		if (o == NULL)
			goto oom;
		x->owned = o;
		x->cap_owned = cap;
	}
	p = calloc(n ? n : 1, size);
	if (p == NULL)
		goto oom;
	x->owned[x->n_owned++] = p;
	return p;
oom:
	tg_err_set(x->err, -ENOMEM, "out of memory");
	return NULL;
}

static char *
kern_qx_name(struct kern_qx *x, const char *base, const char *suffix)
{
	size_t n = strlen(base) + strlen(suffix) + 1;
	char *s = kern_qx_alloc(x, n, 1);

	if (s != NULL)
		snprintf(s, n, "%s%s", base, suffix);
	return s;
}

/* Append to a growing pointer array owned by the export. */
static int
kern_qx_push(struct kern_qx *x, void ***arr, size_t *n, size_t *cap, void *item)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 64;
		void **a = kern_qx_alloc(x, nc, sizeof(void *));

		if (a == NULL)
			return -ENOMEM;
		if (*n)
			memcpy(a, *arr, *n * sizeof(void *));
		*arr = a;
		*cap = nc;
	}
	(*arr)[(*n)++] = item;
	return 0;
}

static int
kern_qx_add_node(struct kern_qx *x, Onnx__NodeProto *np)
{
	return kern_qx_push(x, (void ***)&x->nodes, &x->n_nodes, &x->cap_nodes, np);
}

static int
kern_qx_add_init(struct kern_qx *x, Onnx__TensorProto *tp)
{
	return kern_qx_push(x, (void ***)&x->inits, &x->n_inits, &x->cap_inits, tp);
}

/* A new initializer of ndim dims (0: a scalar) whose raw bytes the export owns. */
static Onnx__TensorProto *
kern_qx_tensor(struct kern_qx *x, const char *name, int32_t dt, size_t elem, int ndim,
	       const int64_t *dims)
{
	Onnx__TensorProto *tp = kern_qx_alloc(x, 1, sizeof(*tp));
	size_t n = 1;

	if (tp == NULL)
		return NULL;
	*tp = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
	tp->name = (char *)name;
	tp->has_data_type = 1;
	tp->data_type = dt;
	tp->n_dims = (size_t)ndim;
	if (ndim > 0 && (tp->dims = kern_qx_alloc(x, (size_t)ndim, sizeof(int64_t))) == NULL)
		return NULL;
	for (int i = 0; i < ndim; i++)
		n *= (size_t)(tp->dims[i] = dims[i]);
	tp->has_raw_data = 1;
	tp->raw_data.len = n * elem;	/* little endian, as ONNX wants */
	tp->raw_data.data = kern_qx_alloc(x, n, elem);
	if (tp->raw_data.data == NULL || kern_qx_add_init(x, tp) < 0)
		return NULL;
	return tp;
}

/* A node of op with the given inputs and one output; axis >= 0 adds that attribute. */
static int
kern_qx_node(struct kern_qx *x, const char *op, const char *name, const char *const *in,
	     size_t n_in, const char *out, int64_t axis)
{
	Onnx__NodeProto *np = kern_qx_alloc(x, 1, sizeof(*np));
	char **ins = kern_qx_alloc(x, n_in, sizeof(char *));
	char **outs = kern_qx_alloc(x, 1, sizeof(char *));

	if (np == NULL || ins == NULL || outs == NULL)
		return -ENOMEM;
	*np = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
	np->op_type = (char *)op;
	np->name = (char *)name;
	for (size_t i = 0; i < n_in; i++)
		ins[i] = (char *)in[i];
	np->input = ins;
	np->n_input = n_in;
	outs[0] = (char *)out;
	np->output = outs;
	np->n_output = 1;
	if (axis >= 0) {
		Onnx__AttributeProto *a = kern_qx_alloc(x, 1, sizeof(*a));
		Onnx__AttributeProto **ap = kern_qx_alloc(x, 1, sizeof(*ap));

		if (a == NULL || ap == NULL)
			return -ENOMEM;
		*a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
		a->name = "axis";
		a->has_type = 1;
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
		a->has_i = 1;
		a->i = axis;
		ap[0] = a;
		np->attribute = ap;
		np->n_attribute = 1;
	}
	return kern_qx_add_node(x, np);
}

/* ---- what gets quantized ---- */

/* Tailgate's activation quantization of v, as u8 (scale, zero point). */
static bool
kern_qx_act_params(const struct kern_qx *x, int v, float *scale, uint8_t *zp)
{
	float lo, hi, amax;

	if (v < 0 || !kern_calib_range(x->c, v, &lo, &hi))
		return false;
	amax = fmaxf(fabsf(lo), fabsf(hi));
	if (amax < 1e-12f)
		amax = 1e-12f;
	*scale = lo >= 0 ? amax / 255.f : amax / 127.f;
	*zp = lo >= 0 ? 0 : 128;
	return true;
}

/* An activation that can carry a Q/DQ pair: computed or fed, calibrated, not an output. */
static bool
kern_qx_act_ok(const struct kern_qx *x, int v)
{
	float s;
	uint8_t z;

	return v >= 0 && !x->is_init[v] && !x->m->values[v].is_output &&
	       !x->m->values[v].is_static && kern_qx_act_params(x, v, &s, &z);
}

/* What a node's output becomes once the Relu/Clip that alone follows it is fused. */
static int
kern_qx_chain_end(const struct kern_qx *x, int v)
{
	for (int guard = 0; guard < 8 && v >= 0 && x->n_cons[v] == 1; guard++) {
		const Onnx__NodeProto *np = x->g->node[x->cons[v]];
		const char *op = np->op_type ? np->op_type : "";

		if ((strcmp(op, "Relu") != 0 && strcmp(op, "Clip") != 0) || np->n_output < 1)
			break;
		v = kern_qx_value(x, np->output[0]);
	}
	return v;
}

static int
kern_qx_input(const Onnx__NodeProto *np, const struct kern_qx *x, size_t k)
{
	return k < np->n_input ? kern_qx_value(x, np->input[k]) : -1;
}

static int64_t
kern_qx_attr_int(const Onnx__NodeProto *np, const char *name, int64_t dflt)
{
	for (size_t i = 0; i < np->n_attribute; i++)
		if (np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0)
			return np->attribute[i]->i;
	return dflt;
}

/*
 * A Conv or Gemm tailgate runs in int8: its input calibrated, its weight a constant f32
 * initializer (Gemm: A not transposed, the bias one value per output). A Conv whose output
 * a BatchNormalization absorbed at load has weights the file does not hold: refused.
 */
static int
kern_qx_mark_node(struct kern_qx *x, size_t j)
{
	const Onnx__NodeProto *np = x->g->node[j];
	const char *op = np->op_type ? np->op_type : "";
	bool gemm = strcmp(op, "Gemm") == 0;
	int xi = kern_qx_input(np, x, 0), w = kern_qx_input(np, x, 1);
	int b = kern_qx_input(np, x, 2), y;

	if ((!gemm && strcmp(op, "Conv") != 0) || np->n_output < 1)
		return 0;
	if (!kern_qx_act_ok(x, xi) || w < 0 || !x->is_init[w] ||
	    x->m->values[w].cdata.dtype != TG_DT_F32 || x->m->values[w].cdata.ndim < 2)
		return 0;
	if (gemm && (kern_qx_attr_int(np, "transA", 0) != 0 || x->m->values[w].cdata.ndim != 2))
		return 0;
	y = kern_qx_value(x, np->output[0]);
	if (y < 0 || x->m->values[y].dead)
		return tg_err_set(x->err, -EINVAL, "node \"%s\": its output is folded into the "
				  "next node at load (BatchNormalization); export the model with it "
				  "folded (torch.onnx.export in eval mode folds it)",
				  np->name ? np->name : op);
	if (b >= 0 && !x->is_init[b])
		return 0;
	x->qnode[j] = 1;
	x->n_qnodes++;
	x->qact[xi] = 1;
	y = kern_qx_chain_end(x, y);
	if (kern_qx_act_ok(x, y))
		x->qact[y] = 1;
	return 0;
}

/* An Add of two calibrated activations: both inputs and its (fused) output. */
static void
kern_qx_mark_add(struct kern_qx *x, size_t j)
{
	const Onnx__NodeProto *np = x->g->node[j];
	int a = kern_qx_input(np, x, 0), b = kern_qx_input(np, x, 1), y;

	if (np->op_type == NULL || strcmp(np->op_type, "Add") != 0 || np->n_input != 2 ||
	    np->n_output < 1 || !kern_qx_act_ok(x, a) || !kern_qx_act_ok(x, b))
		return;
	y = kern_qx_chain_end(x, kern_qx_value(x, np->output[0]));
	if (!kern_qx_act_ok(x, y))
		return;
	x->qact[a] = x->qact[b] = x->qact[y] = 1;
}

static int
kern_qx_index(struct kern_qx *x)
{
	const struct kern_model *m = x->m;
	const Onnx__GraphProto *g = x->g;

	kern_name_ix_build(m, x->byname);
	for (size_t i = 0; i < g->n_initializer; i++) {
		int v = kern_qx_value(x, g->initializer[i]->name);

		if (v < 0)
			return tg_err_set(x->err, -EINVAL, "initializer \"%s\" is not in the loaded "
					  "graph", g->initializer[i]->name);
		x->is_init[v] = 1;
	}
	for (size_t j = 0; j < g->n_node; j++)
		for (size_t k = 0; k < g->node[j]->n_input; k++) {
			int v = kern_qx_value(x, g->node[j]->input[k]);

			if (v >= 0) {
				x->n_cons[v]++;
				x->cons[v] = (int)j;
			}
		}
	return 0;
}

/* Which nodes and tensors are quantized; an initializer read only as a quantized W or B is
 * replaced by its quantized form. */
static int
kern_qx_plan(struct kern_qx *x)
{
	const Onnx__GraphProto *g = x->g;
	unsigned *uses = kern_qx_alloc(x, x->m->n_values, sizeof(unsigned));
	int rc;

	if (uses == NULL)
		return -ENOMEM;
	for (size_t j = 0; j < g->n_node; j++)
		if ((rc = kern_qx_mark_node(x, j)) < 0)
			return rc;
	for (size_t j = 0; j < g->n_node; j++)
		kern_qx_mark_add(x, j);
	if (x->n_qnodes == 0)
		return tg_err_set(x->err, -EINVAL, "no Conv or Gemm has a calibrated input: "
				  "nothing would run in int8");
	for (size_t j = 0; j < g->n_node; j++)
		for (size_t k = 1; x->qnode[j] && k < 3 && k < g->node[j]->n_input; k++) {
			int v = kern_qx_value(x, g->node[j]->input[k]);

			if (v >= 0)
				uses[v]++;
		}
	for (unsigned v = 0; v < x->m->n_values; v++)
		x->wq_only[v] = x->is_init[v] && uses[v] > 0 && uses[v] == x->n_cons[v];
	return 0;
}

/* ---- writing ---- */

/* Q and DQ after activation v: its readers then read "<v>_DequantizeLinear_Output". */
static int
kern_qx_emit_act(struct kern_qx *x, int v)
{
	const char *name = x->m->values[v].name;
	char *sn = kern_qx_name(x, name, "_scale"), *zn = kern_qx_name(x, name, "_zero_point");
	char *qo = kern_qx_name(x, name, "_QuantizeLinear_Output");
	char *dqo = kern_qx_name(x, name, "_DequantizeLinear_Output");
	char *qn = kern_qx_name(x, name, "_QuantizeLinear");
	char *dqn = kern_qx_name(x, name, "_DequantizeLinear");
	Onnx__TensorProto *st, *zt;
	float scale;
	uint8_t zp;
	int rc;

	if (!sn || !zn || !qo || !dqo || !qn || !dqn)
		return -ENOMEM;
	kern_qx_act_params(x, v, &scale, &zp);
	st = kern_qx_tensor(x, sn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sizeof(float), 0, NULL);
	zt = kern_qx_tensor(x, zn, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 1, 0, NULL);
	if (st == NULL || zt == NULL)
		return -ENOMEM;
	memcpy(st->raw_data.data, &scale, sizeof(scale));
	zt->raw_data.data[0] = zp;
	rc = kern_qx_node(x, "QuantizeLinear", qn, (const char *[]){ name, sn, zn }, 3, qo, -1);
	if (rc == 0)
		rc = kern_qx_node(x, "DequantizeLinear", dqn, (const char *[]){ qo, sn, zn }, 3,
				  dqo, -1);
	return rc;
}

/*
 * Weight w of a quantized node as s8 per output channel (axis ax of its dims), through a
 * DequantizeLinear; fills ws[oc] with the channel scales. The rule is tailgate's own
 * (kp_quantize_weights, op_int8.c): scale max|w|/127 (1 for an all-zero channel), round to
 * nearest. *out names the DequantizeLinear's output.
 */
static int
kern_qx_emit_weight(struct kern_qx *x, const char *node, int w, int ax, float *ws, size_t oc,
		    const char **out)
{
	const struct tg_tensor *t = &x->m->values[w].cdata;
	const char *name = x->m->values[w].name;
	size_t n = tg_tensor_numel(t), inner = 1;
	char *qn = kern_qx_name(x, name, "_quantized"), *sn = kern_qx_name(x, node, "_W_scale");
	char *zn = kern_qx_name(x, node, "_W_zero_point"), *dn = kern_qx_name(x, node, "_W_dq");
	char *nn = kern_qx_name(x, node, "_W_DequantizeLinear");
	Onnx__TensorProto *qt, *st, *zt;
	int64_t d1 = (int64_t)oc;
	const float *src = t->data;
	int8_t *q;

	if (!qn || !sn || !zn || !dn || !nn)
		return -ENOMEM;
	for (int d = ax + 1; d < t->ndim; d++)
		inner *= (size_t)t->dims[d];
	qt = kern_qx_tensor(x, qn, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1, t->ndim, t->dims);
	st = kern_qx_tensor(x, sn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sizeof(float), 1, &d1);
	zt = kern_qx_tensor(x, zn, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1, 1, &d1);
	if (qt == NULL || st == NULL || zt == NULL)
		return -ENOMEM;
	q = (int8_t *)qt->raw_data.data;
	for (size_t o = 0; o < oc; o++)
		ws[o] = 0.f;
	for (size_t i = 0; i < n; i++)	/* max|w| per channel, then the scale */
		ws[(i / inner) % oc] = fmaxf(ws[(i / inner) % oc], fabsf(src[i]));
	for (size_t o = 0; o < oc; o++)
		ws[o] = ws[o] > 0 ? ws[o] / 127.f : 1.f;
	for (size_t i = 0; i < n; i++)
		q[i] = (int8_t)lrintf(src[i] / ws[(i / inner) % oc]);
	memcpy(st->raw_data.data, ws, oc * sizeof(float));
	*out = dn;
	return kern_qx_node(x, "DequantizeLinear", nn, (const char *[]){ qn, sn, zn }, 3, dn, ax);
}

/* Bias b as int32 with scale xs * ws[o], zero point 0, through a DequantizeLinear. */
static int
kern_qx_emit_bias(struct kern_qx *x, const char *node, int b, float xs, const float *ws,
		  size_t oc, const char **out)
{
	const struct tg_tensor *t = &x->m->values[b].cdata;
	const char *name = x->m->values[b].name;
	char *qn = kern_qx_name(x, node, "_B_quantized"), *sn = kern_qx_name(x, node, "_B_scale");
	char *zn = kern_qx_name(x, node, "_B_zero_point"), *dn = kern_qx_name(x, node, "_B_dq");
	char *nn = kern_qx_name(x, node, "_B_DequantizeLinear");
	Onnx__TensorProto *qt, *st, *zt;
	int64_t d1 = (int64_t)oc;
	float *sc;
	int32_t *q;

	if (!qn || !sn || !zn || !dn || !nn)
		return -ENOMEM;
	if (t->dtype != TG_DT_F32 || tg_tensor_numel(t) != oc)
		return tg_err_set(x->err, -EINVAL, "node \"%s\": bias \"%s\" has %zu values for %zu "
				  "outputs", node, name, tg_tensor_numel(t), oc);
	qt = kern_qx_tensor(x, qn, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 4, 1, &d1);
	st = kern_qx_tensor(x, sn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sizeof(float), 1, &d1);
	zt = kern_qx_tensor(x, zn, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 4, 1, &d1);
	if (qt == NULL || st == NULL || zt == NULL)
		return -ENOMEM;
	q = (int32_t *)qt->raw_data.data;
	sc = (float *)st->raw_data.data;
	for (size_t o = 0; o < oc; o++) {
		double r;

		sc[o] = xs * ws[o];
		r = rint((double)((const float *)t->data)[o] / (double)sc[o]);
		q[o] = (int32_t)fmax(fmin(r, 2147483647.0), -2147483648.0);
	}
	*out = dn;
	return kern_qx_node(x, "DequantizeLinear", nn, (const char *[]){ qn, sn, zn }, 3, dn, 0);
}

/* A quantized Conv or Gemm: its weight and bias DequantizeLinears; new[1], new[2] set. */
static int
kern_qx_emit_params(struct kern_qx *x, const Onnx__NodeProto *np, const char **nin)
{
	const char *node = np->name && np->name[0] ? np->name : np->output[0];
	int xi = kern_qx_input(np, x, 0), w = kern_qx_input(np, x, 1), b = kern_qx_input(np, x, 2);
	const struct tg_tensor *wt = &x->m->values[w].cdata;
	bool gemm = strcmp(np->op_type, "Gemm") == 0;
	int ax = gemm && kern_qx_attr_int(np, "transB", 0) == 0 ? 1 : 0;
	size_t oc = (size_t)wt->dims[ax];
	float *ws = kern_qx_alloc(x, oc, sizeof(float)), xs;
	uint8_t zp;
	int rc;

	if (ws == NULL)
		return -ENOMEM;
	rc = kern_qx_emit_weight(x, node, w, ax, ws, oc, &nin[1]);
	if (rc == 0 && b >= 0) {
		kern_qx_act_params(x, xi, &xs, &zp);
		rc = kern_qx_emit_bias(x, node, b, xs, ws, oc, &nin[2]);
	}
	return rc;
}

/* The file's node j, reading the DequantizeLinear outputs where there are some. */
static int
kern_qx_emit_file_node(struct kern_qx *x, size_t j)
{
	const Onnx__NodeProto *np = x->g->node[j];
	Onnx__NodeProto *nn = kern_qx_alloc(x, 1, sizeof(*nn));
	const char **nin = kern_qx_alloc(x, np->n_input, sizeof(char *));
	int rc = 0;

	if (nn == NULL || nin == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < np->n_input; k++) {
		int v = kern_qx_value(x, np->input[k]);

		nin[k] = np->input[k];
		if (v >= 0 && x->qact[v] &&
		    (nin[k] = kern_qx_name(x, np->input[k], "_DequantizeLinear_Output")) == NULL)
			return -ENOMEM;
	}
	if (x->qnode[j])
		rc = kern_qx_emit_params(x, np, nin);
	if (rc < 0)
		return rc;
	*nn = *np;		/* name, op, attributes, outputs: the file's */
	nn->input = (char **)nin;
	rc = kern_qx_add_node(x, nn);
	for (size_t k = 0; rc == 0 && k < np->n_output; k++) {
		int v = kern_qx_value(x, np->output[k]);

		if (v >= 0 && x->qact[v])
			rc = kern_qx_emit_act(x, v);
	}
	return rc;
}

/* The graph: Q/DQ of the graph inputs, then the file's nodes in order, each followed by
 * the Q/DQ of what it computes; the initializers kept, then the new ones. */
static int
kern_qx_emit(struct kern_qx *x)
{
	const Onnx__GraphProto *g = x->g;
	int rc = 0;

	for (size_t i = 0; i < g->n_initializer; i++) {
		int v = kern_qx_value(x, g->initializer[i]->name);

		if (!x->wq_only[v] && (rc = kern_qx_add_init(x, g->initializer[i])) < 0)
			return rc;
	}
	for (size_t i = 0; i < g->n_input && rc == 0; i++) {
		int v = kern_qx_value(x, g->input[i]->name);

		if (v >= 0 && x->qact[v] && !x->is_init[v])
			rc = kern_qx_emit_act(x, v);
	}
	for (size_t j = 0; j < g->n_node && rc == 0; j++)
		rc = kern_qx_emit_file_node(x, j);
	return rc;
}

static int
kern_qx_pack(struct kern_qx *x, const Onnx__ModelProto *mp, uint8_t **out, size_t *len)
{
	Onnx__ModelProto nm = *mp;
	Onnx__GraphProto ng = *x->g;
	char doc[512];

	snprintf(doc, sizeof(doc), "%s in int8 as tailgate runs it (QDQ: u8 activations from "
		 "tailgate's calibration, s8 per-channel weights, int32 biases), by tailgate",
		 x->m->name);
	ng.node = x->nodes;
	ng.n_node = x->n_nodes;
	ng.initializer = x->inits;
	ng.n_initializer = x->n_inits;
	ng.doc_string = doc;
	nm.graph = &ng;
	if (!nm.has_ir_version || nm.ir_version < KERN_QX_IR) {
		nm.has_ir_version = 1;
		nm.ir_version = KERN_QX_IR;
	}
	nm.producer_name = "tailgate";
	nm.producer_version = NULL;
	*len = onnx__model_proto__get_packed_size(&nm);
	*out = malloc(*len ? *len : 1);
	if (*out == NULL)
		return tg_err_set(x->err, -ENOMEM, "out of memory");
	if (onnx__model_proto__pack(&nm, *out) != *len) {
		free(*out);
		*out = NULL;
		return tg_err_set(x->err, -EINVAL, "protobuf packing failed");
	}
	return 0;
}

/* The default domain's opset must have per-axis DequantizeLinear. */
static int
kern_qx_check_opset(struct kern_qx *x, const Onnx__ModelProto *mp)
{
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = mp->opset_import[i];

		if (o->domain == NULL || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0)
			return o->version >= KERN_QX_OPSET ? 0 :
			       tg_err_set(x->err, -EINVAL, "opset %lld: per-channel "
					  "DequantizeLinear needs opset %d or later (export the "
					  "model with opset_version=%d)", (long long)o->version,
					  KERN_QX_OPSET, KERN_QX_OPSET);
	}
	return tg_err_set(x->err, -EINVAL, "the file imports no default-domain opset");
}

int
kern_model_export_qdq(const struct kern_model *m, const struct kern_calib *c, uint8_t **out,
		      size_t *len, struct kern_qdq_info *info, struct tg_err *err)
{
	struct kern_qx x = { .m = m, .c = c, .err = err };
	Onnx__ModelProto *mp = NULL;
	size_t nv = m->n_values ? m->n_values : 1;
	int rc;

	*out = NULL;
	*len = 0;
	if (c == NULL || c->m != m) {
		rc = tg_err_set(err, -EINVAL, "the calibration is not this model's");
		goto out;
	}
	mp = onnx__model_proto__unpack(NULL, m->file_len, m->file);
	if (mp == NULL || mp->graph == NULL) {
		rc = tg_err_set(err, -EINVAL, "the model's file no longer parses");
		goto out;
	}
	x.g = mp->graph;
	rc = kern_qx_check_opset(&x, mp);
	if (rc < 0)
		goto out;
	x.byname = kern_qx_alloc(&x, nv, sizeof(*x.byname));
	x.n_cons = kern_qx_alloc(&x, nv, sizeof(unsigned));
	x.cons = kern_qx_alloc(&x, nv, sizeof(int));
	x.is_init = kern_qx_alloc(&x, nv, 1);
	x.qact = kern_qx_alloc(&x, nv, 1);
	x.wq_only = kern_qx_alloc(&x, nv, 1);
	x.qnode = kern_qx_alloc(&x, x.g->n_node, 1);
	if (!x.byname || !x.n_cons || !x.cons || !x.is_init || !x.qact || !x.wq_only || !x.qnode) {
		rc = -ENOMEM;
		goto out;
	}
	rc = kern_qx_index(&x);
	if (rc == 0)
		rc = kern_qx_plan(&x);
	if (rc == 0)
		rc = kern_qx_emit(&x);
	if (rc == 0)
		rc = kern_qx_pack(&x, mp, out, len);
	if (rc == 0 && info != NULL) {
		info->n_nodes = x.n_qnodes;
		info->n_tensors = 0;
		for (unsigned v = 0; v < m->n_values; v++)
			info->n_tensors += x.qact[v];
	}
out:
	if (rc < 0)
		tg_err_prefix(err, "model %s: export-qdq: ", m->name);
	for (size_t i = 0; i < x.n_owned; i++)
		free(x.owned[i]);
	free(x.owned);
	if (mp)
		onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}

/* c's ranges for the tensors of t that have their name in c's model (a tail's tensors keep
 * the names they have in the whole model). */
static int
kern_qx_calib_by_name(const struct kern_calib *c, const struct kern_model *t,
		      struct kern_calib **out, struct tg_err *err)
{
	const struct kern_model *m = c->m;
	struct kern_calib *tc = NULL;
	int rc;

	rc = kern_calib_create(t, &tc, err);
	if (rc < 0)
		return rc;
	for (unsigned v = 0; v < t->n_values; v++)
		for (unsigned k = 0; k < m->n_values; k++)
			if (strcmp(t->values[v].name, m->values[k].name) == 0) {
				tc->lo[v] = c->lo[k];
				tc->hi[v] = c->hi[k];
				break;
			}
	tc->n_obs = c->n_obs;
	*out = tc;
	return 0;
}

int
kern_model_export_qdq_tail(const struct kern_model *m, const struct kern_calib *c,
			   unsigned split, unsigned batch, uint8_t **out, size_t *len,
			   struct kern_qdq_info *info, struct tg_err *err)
{
	struct kern_calib *tc = NULL;
	struct kern_model *t = NULL;
	uint8_t *tbuf = NULL;
	size_t tlen = 0;
	int rc;

	*out = NULL;
	*len = 0;
	if (c == NULL || c->m != m) {
		rc = tg_err_set(err, -EINVAL, "model %s: export-qdq: the calibration is not this "
				"model's", m->name);
		goto out;
	}
	rc = kern_model_extract(m, split, batch, &tbuf, &tlen, err);
	if (rc < 0)
		goto out;
	rc = kern_model_load_mem(tbuf, tlen, m->name, &m->opts, &t, err);
	if (rc < 0)
		goto out_tail_file;
	rc = kern_qx_calib_by_name(c, t, &tc, err);
	if (rc < 0)
		goto out_tail;
	rc = kern_model_export_qdq(t, tc, out, len, info, err);
	kern_calib_free(tc);
out_tail:
	kern_model_free(t);
out_tail_file:
	free(tbuf);
out:
	return rc;
}
