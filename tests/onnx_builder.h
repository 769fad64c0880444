/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny ONNX graph builder for the engine's unit tests, on protobuf-c's generated structs:
 * nodes, attributes, initializers (float or int64), value infos, packing and loading.
 * Everything lives in one struct mb (no allocation but mb_pack()'s buffer), so a test builds a
 * model on its stack or in a static and throws it away. Test code only.
 */
#ifndef TG_TESTS_ONNX_BUILDER_H
#define TG_TESTS_ONNX_BUILDER_H

#include "kernels/kernels.h"
#include "onnx/onnx.pb-c.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MB_MAX = 64 };

struct mb {
	Onnx__ModelProto model;
	Onnx__GraphProto graph;
	Onnx__OperatorSetIdProto opset, *opsets[1];
	Onnx__NodeProto nodes[MB_MAX], *node_ptrs[MB_MAX];
	Onnx__AttributeProto attrs[MB_MAX], *attr_ptrs[MB_MAX];
	Onnx__TensorProto inits[MB_MAX], *init_ptrs[MB_MAX], attr_t[4];
	Onnx__ValueInfoProto vis[4], *in_ptrs[2], *out_ptrs[4];
	Onnx__TypeProto types[4];
	Onnx__TypeProto__Tensor ttypes[4];
	Onnx__TensorShapeProto shapes[4];
	Onnx__TensorShapeProto__Dimension dims[16], *dim_ptrs[16];
	float fdata[8192];
	int64_t idata[256];
	char *strs[MB_MAX * 4];
	int n_nodes, n_attrs, n_inits, n_vis, n_dims, n_f, n_i, n_s, n_at;
};

static inline void
mb_init(struct mb *b, int opset)
{
	memset(b, 0, sizeof(*b));
	b->model = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
	b->graph = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
	b->opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
	b->opset.has_version = 1;
	b->opset.version = opset;
	b->opsets[0] = &b->opset;
	b->model.n_opset_import = 1;
	b->model.opset_import = b->opsets;
	b->model.has_ir_version = 1;
	b->model.ir_version = 7;
	b->model.graph = &b->graph;
	b->graph.node = b->node_ptrs;
	b->graph.initializer = b->init_ptrs;
	b->graph.input = b->in_ptrs;
	b->graph.output = b->out_ptrs;
}

static inline char **
mb_names(struct mb *b, const char *const *names, int n)
{
	char **out = &b->strs[b->n_s];

	for (int i = 0; i < n; i++)
		b->strs[b->n_s++] = (char *)names[i];
	return out;
}

static inline Onnx__NodeProto *
mb_node(struct mb *b, const char *op, const char *name, const char *const *in, int n_in,
	const char *out)
{
	Onnx__NodeProto *n = &b->nodes[b->n_nodes];

	*n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
	n->op_type = (char *)op;
	n->name = (char *)name;
	n->n_input = (size_t)n_in;
	n->input = mb_names(b, in, n_in);
	n->n_output = 1;
	n->output = mb_names(b, &out, 1);
	n->attribute = &b->attr_ptrs[b->n_attrs];
	b->node_ptrs[b->n_nodes++] = n;
	b->graph.n_node = (size_t)b->n_nodes;
	return n;
}

/* Attributes must be added right after their node. */
static inline Onnx__AttributeProto *
mb_attr(struct mb *b, Onnx__NodeProto *n, const char *name)
{
	Onnx__AttributeProto *a = &b->attrs[b->n_attrs];

	*a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
	a->name = (char *)name;
	a->has_type = 1;
	b->attr_ptrs[b->n_attrs++] = a;
	n->n_attribute++;
	return a;
}

static inline void
mb_attr_ints(struct mb *b, Onnx__NodeProto *n, const char *name, const int64_t *v, int k)
{
	Onnx__AttributeProto *a = mb_attr(b, n, name);

	a->type = k == 1 ? ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT :
			   ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	if (k == 1) {
		a->has_i = 1;
		a->i = v[0];
	} else {
		a->n_ints = (size_t)k;
		a->ints = &b->idata[b->n_i];
		memcpy(a->ints, v, (size_t)k * sizeof(int64_t));
		b->n_i += k;
	}
}

static inline Onnx__TensorProto *
mb_tensor(struct mb *b, Onnx__TensorProto *t, const char *name, const int64_t *dims, int nd,
	  const float *fv, const int64_t *iv)
{
	size_t n = 1;

	*t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
	t->name = (char *)name;
	t->has_data_type = 1;
	t->data_type = fv ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	t->n_dims = (size_t)nd;
	t->dims = &b->idata[b->n_i];
	if (nd > 0)
		memcpy(t->dims, dims, (size_t)nd * sizeof(int64_t));
	b->n_i += nd;
	for (int i = 0; i < nd; i++)
		n *= (size_t)dims[i];
	if (fv) {
		t->n_float_data = n;
		t->float_data = &b->fdata[b->n_f];
		memcpy(t->float_data, fv, n * sizeof(float));
		b->n_f += (int)n;
	} else if (iv) {
		t->n_int64_data = n;
		t->int64_data = &b->idata[b->n_i];
		memcpy(t->int64_data, iv, n * sizeof(int64_t));
		b->n_i += (int)n;
	}
	return t;
}

static inline void
mb_init_tensor(struct mb *b, const char *name, const int64_t *dims, int nd, const float *fv,
	       const int64_t *iv)
{
	b->init_ptrs[b->n_inits] = mb_tensor(b, &b->inits[b->n_inits], name, dims, nd, fv, iv);
	b->n_inits++;
	b->graph.n_initializer = (size_t)b->n_inits;
}

static inline Onnx__ValueInfoProto *
mb_vi(struct mb *b, const char *name, const int64_t *dims, int nd)
{
	int k = b->n_vis++;
	Onnx__ValueInfoProto *vi = &b->vis[k];

	*vi = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
	b->types[k] = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
	b->ttypes[k] = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
	b->shapes[k] = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
	vi->name = (char *)name;
	vi->type = &b->types[k];
	b->types[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	b->types[k].tensor_type = &b->ttypes[k];
	b->ttypes[k].has_elem_type = 1;
	b->ttypes[k].elem_type = 1;
	b->ttypes[k].shape = &b->shapes[k];
	b->shapes[k].n_dim = (size_t)nd;
	b->shapes[k].dim = &b->dim_ptrs[b->n_dims];
	for (int i = 0; i < nd; i++) {
		Onnx__TensorShapeProto__Dimension *d = &b->dims[b->n_dims];

		*d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
		d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		d->dim_value = dims[i];
		b->dim_ptrs[b->n_dims++] = d;
	}
	return vi;
}

static inline uint8_t *
mb_pack(struct mb *b, size_t *len)
{
	uint8_t *buf;

	*len = onnx__model_proto__get_packed_size(&b->model);
	buf = malloc(*len);
	if (buf)
		onnx__model_proto__pack(&b->model, buf);
	return buf;
}

/* One input, one output with no shape (the loader infers it). */
static inline void
mb_io(struct mb *b, const char *in, const int64_t *dims, int nd, const char *out)
{
	b->in_ptrs[0] = mb_vi(b, in, dims, nd);
	b->graph.n_input = 1;
	b->out_ptrs[b->graph.n_output++] = mb_vi(b, out, NULL, 0);
}

static inline int
mb_load(struct mb *b, struct kern_model **m, struct tg_err *err)
{
	size_t len;
	uint8_t *buf = mb_pack(b, &len);
	int rc;

	if (!buf)
		return tg_err_set(err, -ENOMEM, "test model: no memory to pack");
	rc = kern_model_load_mem(buf, len, "test", NULL, m, err);
	free(buf);
	return rc;
}

#endif
