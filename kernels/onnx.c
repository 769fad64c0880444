/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ONNX to the graph IR: protobuf-c decoding of the ModelProto, attributes checked per op,
 * initializers copied out, nodes sorted topologically. Everything a hostile file can say
 * is checked against the load limits before it sizes an allocation.
 */
#include "kernels/kern_int.h"
#include "kernels/qdq_load.h"
#include "onnx/onnx.pb-c.h"
#include "proto/proto.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		case TG_DT_F16: ((float *)u.data)[i] = proto_f16_to_f32(((uint16_t *)t->data)[i]); break;
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

/* ---- attributes: the readers each op's definition uses (kern_int.h) ---- */

static const Onnx__AttributeProto *
kern_attr(const struct kern_attrs *a, const char *name)
{
	const Onnx__NodeProto *np = a->np;

	for (size_t i = 0; i < np->n_attribute; i++)
		if (np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0)
			return np->attribute[i];
	return NULL;
}

bool
kern_attr_has(const struct kern_attrs *a, const char *name)
{
	return kern_attr(a, name) != NULL;
}

int
kern_attr_bad(const struct kern_attrs *a, const char *attr, const char *why)
{
	return tg_err_set(a->err, -EINVAL, "node \"%s\" (%s): attribute %s: %s", a->n->name,
			  kern_op_names[a->n->op], attr, why);
}

int64_t
kern_attr_int(const struct kern_attrs *a, const char *name, int64_t dflt)
{
	const Onnx__AttributeProto *at = kern_attr(a, name);

	return at && at->has_i ? at->i : dflt;
}

float
kern_attr_float(const struct kern_attrs *a, const char *name, float dflt)
{
	const Onnx__AttributeProto *at = kern_attr(a, name);

	return at && at->has_f ? at->f : dflt;
}

int
kern_attr_ints(const struct kern_attrs *a, const char *name, int64_t *out, int max)
{
	const Onnx__AttributeProto *at = kern_attr(a, name);

	if (at == NULL)
		return 0;
	if (at->n_ints > (size_t)max)
		return kern_attr_bad(a, name, "too many values");
	if (at->n_ints > 0)
		memcpy(out, at->ints, at->n_ints * sizeof(int64_t));
	return (int)at->n_ints;
}

int
kern_attr_floats(const struct kern_attrs *a, const char *name, float *out, int max)
{
	const Onnx__AttributeProto *at = kern_attr(a, name);

	if (at == NULL)
		return 0;
	if (at->n_floats > (size_t)max)
		return kern_attr_bad(a, name, "too many values");
	for (size_t i = 0; i < at->n_floats; i++)
		out[i] = at->floats[i];
	return (int)at->n_floats;
}

int
kern_attr_enum(const struct kern_attrs *a, const char *name, const char *const *names, int dflt)
{
	const Onnx__AttributeProto *at = kern_attr(a, name);

	if (at == NULL || !at->has_s)
		return dflt;
	for (int i = 0; names[i]; i++)
		if (strlen(names[i]) == at->s.len && memcmp(names[i], at->s.data, at->s.len) == 0)
			return i;
	return -1;
}

/* Refuse any attribute not in the list: silently ignoring one would compute something else. */
static int
kern_attr_check_known(const struct kern_attrs *a, const char *const *known)
{
	const Onnx__NodeProto *np = a->np;

	for (size_t i = 0; i < np->n_attribute; i++) {
		const char *an = np->attribute[i]->name ? np->attribute[i]->name : "";
		bool ok = false;

		for (const char *const *k = known; k && *k; k++)
			ok |= strcmp(*k, an) == 0;
		if (!ok)
			return tg_err_set(a->err, -EINVAL,
					  "node \"%s\" (%s): unsupported attribute %s", a->n->name,
					  kern_op_names[a->n->op], an);
	}
	return 0;
}

/* A node's attributes, as its op's definition reads them. */
static int
kern_node_attrs(struct kern_model *m, struct kern_node *n, const Onnx__NodeProto *np,
		struct tg_err *err)
{
	const struct kern_op_def *d = kern_ops[n->op];
	struct kern_attrs a = { m, n, np, err };
	int rc = kern_attr_check_known(&a, d->known);

	if (rc == 0 && d->attrs != NULL)
		rc = d->attrs(&a);
	return rc;
}

/* Turn a Constant node's attribute into constant data on its output value. */
int
kern_attr_constant(struct kern_attrs *c)
{
	struct kern_model *m = c->m;
	struct kern_node *n = c->n;
	struct tg_err *err = c->err;
	struct kern_value *v = &m->values[n->out[0]];
	const Onnx__AttributeProto *a;
	struct tg_tensor t = { 0 };
	int rc;

	if ((a = kern_attr(c, "value")) != NULL && a->t != NULL) {
		rc = kern_tensor_from_proto(a->t, m->opts.max_tensor_elems, &t, err);
		if (rc < 0)
			return tg_err_prefix(err, "node \"%s\" (Constant): ", n->name);
	} else if ((a = kern_attr(c, "value_float")) != NULL) {
		t.dtype = TG_DT_F32;
		if (tg_tensor_alloc(&t) < 0)
			return tg_err_set(err, -ENOMEM, "out of memory");
		*(float *)t.data = a->f;
	} else if ((a = kern_attr(c, "value_int")) != NULL) {
		t.dtype = TG_DT_S64;
		if (tg_tensor_alloc(&t) < 0)
			return tg_err_set(err, -ENOMEM, "out of memory");
		*(int64_t *)t.data = a->i;
	} else if ((a = kern_attr(c, "value_ints")) != NULL ||
		   (a = kern_attr(c, "value_floats")) != NULL) {
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

/* Initializers: constant values, f32 or s64. */
static int
kern_onnx_inits(struct kern_model *m, struct kern_names *names, const Onnx__GraphProto *g,
		struct tg_err *err)
{
	for (size_t i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *tp = g->initializer[i];
		struct kern_value *v;
		int vi, rc;

		if (tp->name == NULL || tp->name[0] == '\0')
			return tg_err_set(err, -EINVAL, "initializer %zu has no name", i);
		rc = kern_value_add(m, names, tp->name, &vi, err);
		if (rc < 0)
			return rc;
		v = &m->values[vi];
		if (v->is_const)
			return tg_err_set(err, -EINVAL, "initializer \"%s\" defined twice", tp->name);
		rc = kern_tensor_from_proto(tp, m->opts.max_tensor_elems, &v->cdata, err);
		if (rc == 0)
			rc = kern_tensor_normalize(&v->cdata, v->name, err);
		if (rc < 0)
			return rc;
		v->is_const = v->is_static = true;
		v->elem_type = tp->data_type;
	}
	return 0;
}

/* Graph inputs fed at run time, with their declared shapes. */
static int
kern_onnx_inputs(struct kern_model *m, struct kern_names *names, const Onnx__GraphProto *g,
		 struct tg_err *err)
{
	for (size_t i = 0; i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		int idx, rc;

		if (vi->name == NULL || vi->name[0] == '\0')
			return tg_err_set(err, -EINVAL, "graph input %zu has no name", i);
		rc = kern_value_add(m, names, vi->name, &idx, err);
		if (rc < 0)
			return rc;
		if (m->values[idx].is_const)	/* old exporters list initializers as inputs */
			continue;
		rc = kern_input_shape(&m->values[idx], vi, err);
		if (rc < 0)
			return rc;
		m->values[idx].is_input = true;
		m->inputs[m->n_inputs++] = idx;
	}
	if (m->n_inputs == 0)
		return tg_err_set(err, -EINVAL, "graph has no runtime input");
	return 0;
}

/* A node's inputs and outputs as value indices; a name not seen yet becomes a value. */
static int
kern_onnx_node_io(struct kern_model *m, struct kern_names *names, struct kern_node *n,
		  const Onnx__NodeProto *np, size_t i, struct tg_err *err)
{
	int rc;

	for (int k = 0; k < KERN_MAX_IN; k++)
		n->in[k] = -1;	/* absent: what every rule that reads in[k] checks for */
	for (size_t k = 0; k < np->n_input; k++) {
		if (np->input[k][0] == '\0')
			continue;	/* omitted optional input */
		rc = kern_value_add(m, names, np->input[k], &n->in[k], err);
		if (rc < 0)
			return rc;
	}
	n->n_in = (int)np->n_input;
	for (size_t k = 0; k < np->n_output; k++) {
		int vi;

		n->out[k] = -1;
		if (np->output[k][0] == '\0')
			continue;
		rc = kern_value_add(m, names, np->output[k], &vi, err);
		if (rc < 0)
			return rc;
		if (m->values[vi].producer >= 0 || m->values[vi].is_const || m->values[vi].is_input)
			return tg_err_set(err, -EINVAL, "node \"%s\": output \"%s\" is defined twice",
					  n->name, np->output[k]);
		m->values[vi].producer = (int)i;
		n->out[k] = vi;
	}
	/* Optional trailing outputs (Dropout's mask, ...) are allowed when nobody reads them. */
	n->n_out = (int)np->n_output;
	if (n->out[0] < 0)
		return tg_err_set(err, -EINVAL, "node \"%s\" (%s): first output unnamed", n->name,
				  kern_op_names[n->op]);
	return 0;
}

/* Node i of the file: its op, inputs, outputs and attributes. */
static int
kern_onnx_node(struct kern_model *m, struct kern_names *names, const Onnx__NodeProto *np,
	       size_t i, struct tg_err *err)
{
	struct kern_node *n = &m->nodes[m->n_nodes];
	const char *op = np->op_type ? np->op_type : "";
	char nm[96];
	int rc;

	snprintf(nm, sizeof(nm), "%s_%zu", op, i);
	n->name = strdup(np->name && np->name[0] ? np->name : nm);
	if (n->name == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	m->n_nodes++;
	if (kern_lookup_op(op, np->domain, &n->op) < 0)
		return tg_err_set(err, -EINVAL, "node \"%s\": unsupported op %s%s%s", n->name, op,
				  np->domain && np->domain[0] ? " in domain " : "",
				  np->domain ? np->domain : "");
	if (np->n_input > KERN_MAX_IN || np->n_output > KERN_MAX_OUT)
		return tg_err_set(err, -EINVAL, "node \"%s\" (%s): too many inputs or outputs",
				  n->name, op);
	if (np->n_output == 0)
		return tg_err_set(err, -EINVAL, "node \"%s\" (%s): no output", n->name, op);
	rc = kern_onnx_node_io(m, names, n, np, i, err);
	if (rc == 0)
		rc = kern_node_attrs(m, n, np, err);
	return rc;
}

/* Every input must be produced by something; consumers counted. */
static int
kern_onnx_check_inputs(struct kern_model *m, struct tg_err *err)
{
	for (unsigned i = 0; i < m->n_nodes; i++)
		for (int k = 0; k < m->nodes[i].n_in; k++) {
			int v = m->nodes[i].in[k];

			if (v >= 0 && m->values[v].producer < 0 && !m->values[v].is_const &&
			    !m->values[v].is_input)
				return tg_err_set(err, -EINVAL,
						  "node \"%s\" (%s): input \"%s\" is neither produced "
						  "by a node nor an initializer nor a graph input "
						  "(missing initializer?)",
						  m->nodes[i].name, kern_op_names[m->nodes[i].op],
						  m->values[v].name);
			if (v >= 0)
				m->values[v].n_consumers++;
		}
	return 0;
}

static int
kern_onnx_outputs(struct kern_model *m, struct kern_names *names, const Onnx__GraphProto *g,
		  struct tg_err *err)
{
	for (size_t i = 0; i < g->n_output; i++) {
		const char *on = g->output[i]->name ? g->output[i]->name : "";
		int *slot = kern_names_find(names, on);

		if (*slot < 0 || (m->values[*slot].producer < 0 && !m->values[*slot].is_input))
			return tg_err_set(err, -EINVAL, "graph output \"%s\" is not produced by any node",
					  on);
		m->values[*slot].is_output = true;
		m->outputs[m->n_outputs++] = *slot;
	}
	if (m->n_outputs == 0)
		return tg_err_set(err, -EINVAL, "graph has no outputs");
	return 0;
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
	rc = kern_onnx_inits(m, &names, g, err);
	if (rc == 0)
		rc = kern_onnx_inputs(m, &names, g, err);
	for (size_t i = 0; rc == 0 && i < g->n_node; i++)
		rc = kern_onnx_node(m, &names, g->node[i], i, err);
	if (rc == 0)
		rc = kern_onnx_check_inputs(m, err);
	if (rc == 0)
		rc = kern_onnx_outputs(m, &names, g, err);
	if (rc == 0)
		rc = kern_topo_sort(m, err);
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
	{
		/* A QDQ file is read as the float model it quantizes (qdq_load.c). */
		struct kern_qdq_view qv;

		rc = kern_qdq_view_build(mp->graph, &qv, err);
		if (rc == 0)
			rc = kern_onnx_graph(m, qv.used ? &qv.g : mp->graph, err);
		kern_qdq_view_free(&qv);
	}
out:
	onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}
