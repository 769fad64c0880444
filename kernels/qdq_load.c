/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading a QDQ ONNX file (kern_export_qdq's, or another quantizer's): tailgate quantizes
 * activations itself, from a calibration, so the file is read as the float model it
 * quantizes. A DequantizeLinear of constants (int8/uint8/int32 weights and biases with their
 * scales) becomes its f32 value; a QuantizeLinear -> DequantizeLinear pair on an activation is
 * removed, its readers reading the activation. The result is a view of the file's graph
 * (arrays of its own, the file's nodes and tensors shared) that the IR is built from; a
 * QuantizeLinear or DequantizeLinear in any other form stays and is refused by the loader as
 * an unsupported op, naming the node. Load time only: allocates freely.
 */
#include "kernels/kern_int.h"
#include "kernels/qdq_load.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool
kern_ql_is(const Onnx__NodeProto *np, const char *op)
{
	return np->op_type != NULL && strcmp(np->op_type, op) == 0 &&
	       (np->domain == NULL || np->domain[0] == '\0' || strcmp(np->domain, "ai.onnx") == 0);
}

static void *
kern_ql_alloc(struct kern_qdq_view *v, size_t n, size_t size)
{
	void *p;

	if (v->n_owned == v->cap_owned) {
		size_t cap = v->cap_owned ? 2 * v->cap_owned : 64;
		void **o = realloc(v->owned, cap * sizeof(*o));

		if (o == NULL)
			return NULL;
		v->owned = o;
		v->cap_owned = cap;
	}
	p = calloc(n ? n : 1, size);
	if (p != NULL)
		v->owned[v->n_owned++] = p;
	return p;
}

static int
kern_ql_init(const Onnx__GraphProto *g, const char *name)
{
	for (size_t i = 0; name != NULL && name[0] && i < g->n_initializer; i++)
		if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
			return (int)i;
	return -1;
}

/* Element i of an int8/uint8/int32/float initializer as a double; false: other type or
 * out of range. */
static bool
kern_ql_elem(const Onnx__TensorProto *tp, size_t i, size_t n, double *out)
{
	size_t es;

	switch (tp->data_type) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: es = 1; break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: es = 4; break;
	default: return false;
	}
	if (i >= n)
		return false;
	if (tp->has_raw_data) {
		const uint8_t *p = tp->raw_data.data + i * es;
		int32_t s32;
		float f;

		if (tp->raw_data.len != n * es)
			return false;
		switch (tp->data_type) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: *out = (int8_t)p[0]; return true;
		case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: *out = p[0]; return true;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
			memcpy(&s32, p, 4);
			*out = s32;
			return true;
		default:
			memcpy(&f, p, 4);
			*out = f;
			return true;
		}
	}
	if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
		return tp->n_float_data == n ? (*out = tp->float_data[i], true) : false;
	if (tp->n_int32_data != n)
		return false;
	*out = tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ? (int8_t)tp->int32_data[i] :
	       tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 ? (uint8_t)tp->int32_data[i] :
	       tp->int32_data[i];
	return true;
}

/* Elements of a tensor's dims, saturated at 2^40 (far past any bound checked after it). */
static size_t
kern_ql_numel(const Onnx__TensorProto *tp)
{
	const size_t cap = (size_t)1 << 40;
	size_t n = 1;

	for (size_t d = 0; d < tp->n_dims; d++) {
		if (tp->dims[d] <= 0)
			return 0;
		if ((size_t)tp->dims[d] > cap / n)
			return cap;
		n *= (size_t)tp->dims[d];
	}
	return n;
}

/*
 * DequantizeLinear j of constants as an f32 initializer named for its output: real =
 * (q - zero_point) * scale, per tensor or per axis. Returns 1 when folded, 0 when it is
 * not a DequantizeLinear of constants, -EINVAL when it is one that cannot be read.
 */
static int
kern_ql_fold(struct kern_qdq_view *v, const Onnx__GraphProto *g, const Onnx__NodeProto *np,
	     Onnx__TensorProto **out, struct tg_err *err)
{
	int xi = np->n_input > 0 ? kern_ql_init(g, np->input[0]) : -1;
	int si = np->n_input > 1 ? kern_ql_init(g, np->input[1]) : -1;
	int zi = np->n_input > 2 ? kern_ql_init(g, np->input[2]) : -1;
	const Onnx__TensorProto *x, *s, *z;
	size_t n, ns, inner = 1, nc = 1;
	int64_t axis = 1;
	Onnx__TensorProto *t;
	float *y;

	if (xi < 0 || si < 0 || (np->n_input > 2 && np->input[2][0] && zi < 0) || np->n_output < 1)
		return 0;
	x = g->initializer[xi];
	s = g->initializer[si];
	z = zi >= 0 ? g->initializer[zi] : NULL;
	n = kern_ql_numel(x);
	ns = kern_ql_numel(s);
	for (size_t k = 0; k < np->n_attribute; k++)
		if (np->attribute[k]->name && strcmp(np->attribute[k]->name, "axis") == 0)
			axis = np->attribute[k]->i;
	if (axis < 0)
		axis += (int64_t)x->n_dims;
	if (ns > 1) {
		if (axis < 0 || axis >= (int64_t)x->n_dims || x->dims[axis] != (int64_t)ns)
			goto bad;
		nc = ns;
		for (size_t d = (size_t)axis + 1; d < x->n_dims; d++)
			inner *= (size_t)x->dims[d];
	}
	if (n > (1u << 28) || (z != NULL && kern_ql_numel(z) != ns))
		goto bad;
	t = kern_ql_alloc(v, 1, sizeof(*t));
	y = kern_ql_alloc(v, n, sizeof(float));
	if (t == NULL || y == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t c = ns > 1 ? (i / inner) % nc : 0;
		double q, sc, zp = 0;

		if (!kern_ql_elem(x, i, n, &q) || !kern_ql_elem(s, c, ns, &sc) ||
		    (z != NULL && !kern_ql_elem(z, c, ns, &zp)))
			goto bad;
		y[i] = (float)((q - zp) * sc);
	}
	*t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
	t->name = np->output[0];
	t->n_dims = x->n_dims;
	t->dims = x->dims;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->has_raw_data = 1;
	t->raw_data.len = n * sizeof(float);
	t->raw_data.data = (uint8_t *)y;
	*out = t;
	return 1;
bad:
	return tg_err_set(err, -EINVAL, "node \"%s\" (DequantizeLinear): constants it cannot "
			  "dequantize (types int8/uint8/int32 with float scales, per tensor or "
			  "per axis)", np->name ? np->name : "");
}

/* The activation a name stands for once the Q -> DQ pairs are gone. */
static const char *
kern_ql_resolve(const struct kern_qdq_view *v, const char *name)
{
	for (int guard = 0; guard < 64; guard++) {
		size_t i;

		for (i = 0; i < v->n_alias; i++)
			if (strcmp(v->alias_from[i], name) == 0)
				break;
		if (i == v->n_alias)
			return name;
		name = v->alias_to[i];
	}
	return name;
}

/* Q -> DQ pairs on activations: the DQ's output stands for the Q's input. */
static int
kern_ql_pairs(struct kern_qdq_view *v, const Onnx__GraphProto *g, uint8_t *skip)
{
	v->alias_from = kern_ql_alloc(v, g->n_node, sizeof(char *));
	v->alias_to = kern_ql_alloc(v, g->n_node, sizeof(char *));
	if (v->alias_from == NULL || v->alias_to == NULL)
		return -ENOMEM;
	for (size_t j = 0; j < g->n_node; j++) {
		const Onnx__NodeProto *dq = g->node[j];

		if (skip[j] || !kern_ql_is(dq, "DequantizeLinear") || dq->n_input < 1 ||
		    dq->n_output < 1)
			continue;
		for (size_t i = 0; i < g->n_node; i++) {
			const Onnx__NodeProto *q = g->node[i];

			if (!kern_ql_is(q, "QuantizeLinear") || q->n_output < 1 || q->n_input < 1 ||
			    strcmp(q->output[0], dq->input[0]) != 0)
				continue;
			v->alias_from[v->n_alias] = dq->output[0];
			v->alias_to[v->n_alias++] = q->input[0];
			skip[j] = skip[i] = 1;
			break;
		}
	}
	return 0;
}

/* The view's nodes (the rest, inputs renamed) and initializers (the rest, then the folded). */
static int
kern_ql_build(struct kern_qdq_view *v, const Onnx__GraphProto *g, const uint8_t *skip,
	      Onnx__TensorProto **folded, size_t n_folded)
{
	Onnx__NodeProto **nodes = kern_ql_alloc(v, g->n_node, sizeof(*nodes));
	Onnx__TensorProto **inits = kern_ql_alloc(v, g->n_initializer + n_folded, sizeof(*inits));
	Onnx__ValueInfoProto **outs = kern_ql_alloc(v, g->n_output, sizeof(*outs));

	if (nodes == NULL || inits == NULL || outs == NULL)
		return -ENOMEM;
	v->g = *g;
	v->g.n_node = 0;
	for (size_t j = 0; j < g->n_node; j++) {
		Onnx__NodeProto *nn;
		char **in;

		if (skip[j])
			continue;
		nn = kern_ql_alloc(v, 1, sizeof(*nn));
		in = kern_ql_alloc(v, g->node[j]->n_input, sizeof(char *));
		if (nn == NULL || in == NULL)
			return -ENOMEM;
		*nn = *g->node[j];
		for (size_t k = 0; k < nn->n_input; k++)
			in[k] = (char *)kern_ql_resolve(v, nn->input[k]);
		nn->input = in;
		nodes[v->g.n_node++] = nn;
	}
	v->g.node = nodes;
	v->g.n_initializer = 0;
	for (size_t i = 0; i < g->n_initializer; i++)
		inits[v->g.n_initializer++] = g->initializer[i];
	for (size_t i = 0; i < n_folded; i++)
		inits[v->g.n_initializer++] = folded[i];
	v->g.initializer = inits;
	for (size_t i = 0; i < g->n_output; i++) {
		Onnx__ValueInfoProto *o = kern_ql_alloc(v, 1, sizeof(*o));

		if (o == NULL)
			return -ENOMEM;
		*o = *g->output[i];
		o->name = (char *)kern_ql_resolve(v, o->name ? o->name : "");
		outs[i] = o;
	}
	v->g.output = outs;
	return 0;
}

int
kern_qdq_view_build(const Onnx__GraphProto *g, struct kern_qdq_view *v, struct tg_err *err)
{
	Onnx__TensorProto **folded = NULL;
	size_t n_folded = 0;
	uint8_t *skip;
	bool any = false;
	int rc;

	memset(v, 0, sizeof(*v));
	for (size_t j = 0; j < g->n_node && !any; j++)
		any = kern_ql_is(g->node[j], "QuantizeLinear") ||
		      kern_ql_is(g->node[j], "DequantizeLinear");
	if (!any)
		return 0;
	skip = kern_ql_alloc(v, g->n_node, 1);
	folded = kern_ql_alloc(v, g->n_node, sizeof(*folded));
	if (skip == NULL || folded == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t j = 0; j < g->n_node; j++) {
		if (!kern_ql_is(g->node[j], "DequantizeLinear"))
			continue;
		rc = kern_ql_fold(v, g, g->node[j], &folded[n_folded], err);
		if (rc < 0)
			goto out;
		n_folded += (size_t)rc;
		skip[j] = (uint8_t)rc;
	}
	rc = kern_ql_pairs(v, g, skip);
	if (rc == 0)
		rc = kern_ql_build(v, g, skip, folded, n_folded);
	if (rc == -ENOMEM)
		tg_err_set(err, rc, "out of memory");
	if (rc == 0) {
		v->used = true;
		return 0;
	}
out:
	kern_qdq_view_free(v);
	return rc;
}

void
kern_qdq_view_free(struct kern_qdq_view *v)
{
	for (size_t i = 0; i < v->n_owned; i++)
		free(v->owned[i]);
	free(v->owned);
	memset(v, 0, sizeof(*v));
}
