/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tail from a split as an ONNX model of its own (kern_model_extract): the file is parsed
 * again (the IR is folded: BatchNormalization absorbed, shape arithmetic marked static), the
 * original nodes of the tail are picked by following the data from the split tensor, and
 * every tensor the tail reads from outside it is defined again: the file's initializer, the
 * shape arithmetic that computes it from the tail's own tensors (kept as nodes, so the model
 * still takes any batch in the engine), or, when it depends on the head's shapes, its value
 * at the batch as an initializer.
 * The selection is checked against the split table's tail mask, so the file written runs
 * exactly the nodes a tail plan runs. Not a hot path: allocates freely, once.
 */
#include "kernels/kern_int.h"
#include "onnx/onnx.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KERN_EX_MAX_BATCH = 1 << 20 };

/* What the extraction of one tail holds while it builds the new ModelProto. */
struct kern_ex {
	const struct kern_model *m;
	const Onnx__GraphProto *g;	/* the file's graph, re-parsed */
	struct kern_shapes sh;		/* shapes and static values at the batch */
	struct kern_name_ix *byname;	/* [n_values] sorted by name */
	int *fv;			/* [n_file_nodes]: value of each node's first output */
	int *init_of;			/* [n_values]: file initializer holding it, or -1 */
	int *fprod;			/* [n_values]: file node producing it, or -1 */
	uint8_t *mark;			/* [n_values]: computed from the split tensor */
	uint8_t *avail;			/* [n_values]: defined in the new graph */
	uint8_t *incl;			/* [n_file_nodes]: 1 tail node, 2 Constant it reads */
	uint8_t *need_init;		/* [n_initializer]: copied */
	uint8_t *need_comp;		/* [n_values]: static value written as an initializer */
	struct tg_err *err;
};

/* Value index of a tensor name of the file, -1 if the IR has none by that name. */
static int
kern_ex_value(const struct kern_ex *x, const char *name)
{
	return kern_name_ix_find(x->m, x->byname, name);
}

static int
kern_ex_unknown(const struct kern_ex *x, const char *name)
{
	return tg_err_set(x->err, -EINVAL, "tensor \"%s\" of the file is not in the loaded graph",
			  name ? name : "");
}

static int
kern_ex_index(struct kern_ex *x)
{
	const struct kern_model *m = x->m;
	const Onnx__GraphProto *g = x->g;

	for (unsigned v = 0; v < m->n_values; v++) {
		x->init_of[v] = -1;
		x->fprod[v] = -1;
	}
	kern_name_ix_build(m, x->byname);
	for (size_t i = 0; i < g->n_initializer; i++) {
		int v = kern_ex_value(x, g->initializer[i]->name);

		if (v < 0)
			return kern_ex_unknown(x, g->initializer[i]->name);
		x->init_of[v] = (int)i;
	}
	for (size_t j = 0; j < g->n_node; j++) {
		const Onnx__NodeProto *np = g->node[j];

		if (np->n_output == 0 || (x->fv[j] = kern_ex_value(x, np->output[0])) < 0)
			return kern_ex_unknown(x, np->n_output ? np->output[0] : "");
		for (size_t k = 0; k < np->n_output; k++) {
			int v = kern_ex_value(x, np->output[k]);

			if (v >= 0)
				x->fprod[v] = (int)j;
		}
	}
	return 0;
}

/*
 * The tail's nodes of the file: data nodes (not shape arithmetic) that read a tensor computed
 * from the split, to a fixed point (a file need not list its nodes in order).
 */
static void
kern_ex_select(struct kern_ex *x, int split_v)
{
	const Onnx__GraphProto *g = x->g;
	bool changed = true;

	x->mark[split_v] = 1;
	while (changed) {
		changed = false;
		for (size_t j = 0; j < g->n_node; j++) {
			const Onnx__NodeProto *np = g->node[j];
			bool reads = false;

			if (x->incl[j] || x->m->values[x->fv[j]].is_static)
				continue;
			for (size_t k = 0; k < np->n_input && !reads; k++) {
				int v = kern_ex_value(x, np->input[k]);

				reads = v >= 0 && x->mark[v];
			}
			if (!reads)
				continue;
			x->incl[j] = 1;
			changed = true;
			for (size_t k = 0; k < np->n_output; k++) {
				int v = kern_ex_value(x, np->output[k]);

				if (v >= 0)
					x->mark[v] = 1;
			}
		}
	}
}

/* The same nodes as the split table's tail: a folded Conv's own output is dead in the IR. */
static int
kern_ex_check_mask(struct kern_ex *x, unsigned split)
{
	const struct kern_model *m = x->m;
	const uint8_t *mask = m->tail_mask[split];

	for (unsigned i = 0; i < m->n_nodes; i++)
		if (mask[i] && !x->mark[m->nodes[i].out[0]])
			return tg_err_set(x->err, -EINVAL, "node \"%s\" of the tail was not found in "
					  "the file", m->nodes[i].name);
	for (size_t j = 0; j < x->g->n_node; j++) {
		const struct kern_value *v = &m->values[x->fv[j]];

		if (x->incl[j] && !v->dead && (v->producer < 0 || !mask[v->producer]))
			return tg_err_set(x->err, -EINVAL, "tensor \"%s\" follows the split in the "
					  "file but is not in the tail", v->name);
	}
	return 0;
}

/*
 * Static values (shape arithmetic) the tail can compute itself: Constants, Shape of a tensor
 * of the tail, and what is computed from those and initializers alone. Keeping them as nodes
 * keeps the written model good for any batch; only what depends on the head's shapes must be
 * frozen at the batch. To a fixed point, like the selection.
 */
static void
kern_ex_tail_static(struct kern_ex *x, uint8_t *tailc)
{
	const Onnx__GraphProto *g = x->g;
	bool changed = true;

	while (changed) {
		changed = false;
		for (size_t j = 0; j < g->n_node; j++) {
			const Onnx__NodeProto *np = g->node[j];
			const char *op = np->op_type ? np->op_type : "";
			bool ok = true;

			if (tailc[x->fv[j]] || !x->m->values[x->fv[j]].is_static)
				continue;
			for (size_t k = 0; k < np->n_input && ok; k++) {
				int v = kern_ex_value(x, np->input[k]);

				if (np->input[k][0] == '\0')
					continue;
				if (strcmp(op, "Shape") == 0)
					ok = v >= 0 && (x->mark[v] || x->init_of[v] >= 0);
				else
					ok = v >= 0 && (tailc[v] || x->init_of[v] >= 0);
			}
			if (!ok)
				continue;
			for (size_t k = 0; k < np->n_output; k++) {
				int v = kern_ex_value(x, np->output[k]);

				if (v >= 0)
					tailc[v] = 1;
			}
			changed = true;
		}
	}
}

/*
 * Give every tensor the tail reads from outside it a definition in the new graph: the file's
 * initializer, the static nodes that compute it from the tail (kept, with what they read), or
 * its value at the batch as an initializer. A worklist of values, each handled once.
 */
static int
kern_ex_outside(struct kern_ex *x)
{
	const struct kern_model *m = x->m;
	const Onnx__GraphProto *g = x->g;
	uint8_t *tailc = calloc(m->n_values ? m->n_values : 1, 1), *seen = NULL;
	int *work = NULL, n_work = 0, rc = 0;

	seen = calloc(m->n_values ? m->n_values : 1, 1);
	work = malloc((m->n_values ? m->n_values : 1) * sizeof(int));
	if (tailc == NULL || seen == NULL || work == NULL) {
		rc = tg_err_set(x->err, -ENOMEM, "out of memory");
		goto out;
	}
	kern_ex_tail_static(x, tailc);
	for (size_t j = 0; j <= g->n_node; j++) {
		const Onnx__NodeProto *np;

		/* Drain what the last node (or kept static node) added, then take the next. */
		while (n_work > 0 && rc == 0) {
			int v = work[--n_work], p = x->fprod[v];

			if (x->init_of[v] >= 0) {
				x->need_init[x->init_of[v]] = 1;	/* as in the file: unfolded */
				x->avail[v] = 1;
			} else if (tailc[v] && p >= 0) {
				x->incl[p] = 2;		/* defines v when ordered */
				for (size_t k = 0; k < g->node[p]->n_input; k++) {
					int u = kern_ex_value(x, g->node[p]->input[k]);

					if (u >= 0 && !x->mark[u] && !seen[u]) {
						seen[u] = 1;
						work[n_work++] = u;
					}
				}
			} else if (m->values[v].is_static && x->sh.sval[v].data != NULL &&
				   (x->sh.sval[v].dtype == TG_DT_F32 ||
				    x->sh.sval[v].dtype == TG_DT_S64)) {
				x->need_comp[v] = 1;	/* frozen at the batch */
				x->avail[v] = 1;
			} else {
				rc = tg_err_set(x->err, -EINVAL,
						"the tail reads \"%s\", computed in the head",
						m->values[v].name);
			}
		}
		if (rc < 0 || j == g->n_node)
			break;
		np = g->node[j];
		if (x->incl[j] != 1)
			continue;
		for (size_t k = 0; k < np->n_input; k++) {
			int v = kern_ex_value(x, np->input[k]);

			if (np->input[k][0] == '\0')
				continue;	/* omitted optional input */
			if (v < 0) {
				rc = kern_ex_unknown(x, np->input[k]);
				break;
			}
			if (!x->mark[v] && !seen[v]) {
				seen[v] = 1;
				work[n_work++] = v;
			}
		}
	}
out:
	free(tailc);
	free(seen);
	free(work);
	return rc;
}

/* ValueInfo of a float tensor with fixed dims; the storage is the caller's. */
struct kern_ex_vi {
	Onnx__ValueInfoProto vi;
	Onnx__TypeProto type;
	Onnx__TypeProto__Tensor tt;
	Onnx__TensorShapeProto shape;
	Onnx__TensorShapeProto__Dimension dim[TG_MAX_DIMS];
	Onnx__TensorShapeProto__Dimension *dimp[TG_MAX_DIMS];
};

static Onnx__ValueInfoProto *
kern_ex_vi_set(struct kern_ex_vi *s, const char *name, int ndim, const int64_t *dims)
{
	s->vi = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
	s->type = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
	s->tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
	s->shape = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
	s->vi.name = (char *)name;
	s->vi.type = &s->type;
	s->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	s->type.tensor_type = &s->tt;
	s->tt.has_elem_type = 1;
	s->tt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	s->tt.shape = &s->shape;
	s->shape.n_dim = (size_t)ndim;
	s->shape.dim = s->dimp;
	for (int i = 0; i < ndim; i++) {
		s->dim[i] = (Onnx__TensorShapeProto__Dimension)
			ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
		s->dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		s->dim[i].dim_value = dims[i];
		s->dimp[i] = &s->dim[i];
	}
	return &s->vi;
}

/* Nodes in an order where each input is defined first (the kept ones, in file order). */
static int
kern_ex_order(struct kern_ex *x, Onnx__NodeProto **nodes, size_t *n_nodes)
{
	const Onnx__GraphProto *g = x->g;
	size_t want = 0, n = 0;
	uint8_t *done = calloc(g->n_node ? g->n_node : 1, 1);

	if (done == NULL)
		return tg_err_set(x->err, -ENOMEM, "out of memory");
	for (size_t j = 0; j < g->n_node; j++)
		want += x->incl[j] != 0;
	while (n < want) {
		size_t before = n;

		for (size_t j = 0; j < g->n_node; j++) {
			const Onnx__NodeProto *np = g->node[j];
			bool ready = true;

			if (!x->incl[j] || done[j])
				continue;
			for (size_t k = 0; k < np->n_input && ready; k++) {
				int v = kern_ex_value(x, np->input[k]);

				ready = np->input[k][0] == '\0' || (v >= 0 && x->avail[v]);
			}
			if (!ready)
				continue;
			done[j] = 1;
			nodes[n++] = g->node[j];
			for (size_t k = 0; k < np->n_output; k++) {
				int v = kern_ex_value(x, np->output[k]);

				if (v >= 0)
					x->avail[v] = 1;
			}
		}
		if (n == before) {
			free(done);
			return tg_err_set(x->err, -EINVAL, "the tail's nodes cannot be ordered");
		}
	}
	free(done);
	*n_nodes = n;
	return 0;
}

/* Build the new ModelProto around the file's own nodes and initializers, and pack it. */
static int
kern_ex_write(struct kern_ex *x, const Onnx__ModelProto *mp, unsigned split, unsigned batch,
	      uint8_t **out, size_t *len)
{
	const struct kern_model *m = x->m;
	const Onnx__GraphProto *g = x->g;
	const int split_v = m->split_value[split];
	Onnx__ModelProto nm = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto ng = ONNX__GRAPH_PROTO__INIT;
	Onnx__NodeProto **nodes = calloc(g->n_node + 1, sizeof(*nodes));
	Onnx__TensorProto **inits = calloc(g->n_initializer + m->n_values + 1, sizeof(*inits));
	Onnx__TensorProto *comp = calloc(m->n_values + 1, sizeof(*comp));
	struct kern_ex_vi *vis = calloc(m->n_outputs + 1, sizeof(*vis));
	Onnx__ValueInfoProto **outs = calloc(m->n_outputs + 1, sizeof(*outs)), *in;
	char gname[64], doc[512];
	size_t n_comp = 0;
	int rc = -ENOMEM;

	if (!nodes || !inits || !comp || !vis || !outs) {
		tg_err_set(x->err, rc, "out of memory");
		goto out;
	}
	for (unsigned v = 0; v < m->n_values; v++)
		if (x->init_of[v] >= 0 && x->need_init[x->init_of[v]])
			x->avail[v] = 1;
	rc = kern_ex_order(x, nodes, &ng.n_node);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < g->n_initializer; i++)
		if (x->need_init[i])
			inits[ng.n_initializer++] = g->initializer[i];
	for (unsigned v = 0; v < m->n_values; v++) {
		const struct tg_tensor *t = &x->sh.sval[v];
		Onnx__TensorProto *tp = &comp[n_comp++];

		if (!x->need_comp[v]) {
			n_comp--;
			continue;
		}
		*tp = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
		tp->name = m->values[v].name;
		tp->n_dims = (size_t)t->ndim;
		tp->dims = (int64_t *)t->dims;
		tp->has_data_type = 1;
		tp->data_type = t->dtype == TG_DT_F32 ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT :
							ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
		tp->has_raw_data = 1;
		tp->raw_data.len = tg_tensor_bytes(t);	/* little endian, as ONNX wants */
		tp->raw_data.data = t->data;
		inits[ng.n_initializer++] = tp;
	}
	in = kern_ex_vi_set(&vis[m->n_outputs], m->values[split_v].name, x->sh.ndim[split_v],
			    x->sh.dims[split_v]);
	for (unsigned o = 0; o < m->n_outputs; o++) {
		int v = m->outputs[o];

		if (kern_model_output_in_tail(m, split, o))
			outs[ng.n_output++] = kern_ex_vi_set(&vis[o], m->values[v].name,
							     x->sh.ndim[v], x->sh.dims[v]);
	}
	snprintf(gname, sizeof(gname), "tail_%u_b%u", split, batch);
	snprintf(doc, sizeof(doc), "tail of %s from split %u \"%s\" at batch %u, by tailgate",
		 m->name, split, m->values[split_v].name, batch);
	ng.name = gname;
	ng.doc_string = doc;
	ng.node = nodes;
	ng.initializer = inits;
	ng.n_input = 1;
	ng.input = &in;
	ng.output = outs;
	/* Before IR 4 an initializer also had to be a graph input: write IR 4 at least. */
	nm.has_ir_version = 1;
	nm.ir_version = mp->has_ir_version && mp->ir_version > 4 ? mp->ir_version : 4;
	nm.n_opset_import = mp->n_opset_import;
	nm.opset_import = mp->opset_import;
	nm.producer_name = "tailgate";
	nm.graph = &ng;
	*len = onnx__model_proto__get_packed_size(&nm);
	*out = malloc(*len ? *len : 1);
	if (*out == NULL) {
		rc = tg_err_set(x->err, -ENOMEM, "out of memory");
		goto out;
	}
	if (onnx__model_proto__pack(&nm, *out) != *len) {
		free(*out);
		*out = NULL;
		rc = tg_err_set(x->err, -EINVAL, "protobuf packing failed");
		goto out;
	}
	rc = 0;
out:
	free(nodes);
	free(inits);
	free(comp);
	free(vis);
	free(outs);
	return rc;
}

int
kern_model_extract(const struct kern_model *m, unsigned split, unsigned batch, uint8_t **out,
		   size_t *len, struct tg_err *err)
{
	struct kern_ex x = { .m = m, .err = err };
	Onnx__ModelProto *mp = NULL;
	struct tg_tensor in = { .dtype = TG_DT_F32 };
	const struct kern_value *iv;
	size_t nn, nv = m->n_values ? m->n_values : 1;
	int rc;

	*out = NULL;
	*len = 0;
	if (split >= m->n_splits) {
		rc = tg_err_set(err, -EINVAL, "the model has %u split points", m->n_splits);
		goto out;
	}
	if (batch < 1 || batch > KERN_EX_MAX_BATCH) {
		rc = tg_err_set(err, -EINVAL, "batch %u: must be 1 to %u", batch, KERN_EX_MAX_BATCH);
		goto out;
	}
	mp = onnx__model_proto__unpack(NULL, m->file_len, m->file);
	if (mp == NULL || mp->graph == NULL) {
		rc = tg_err_set(err, -EINVAL, "the model's file no longer parses");
		goto out;
	}
	x.g = mp->graph;
	nn = x.g->n_node ? x.g->n_node : 1;
	x.byname = calloc(nv, sizeof(*x.byname));
	x.fv = calloc(nn, sizeof(int));
	x.init_of = calloc(nv, sizeof(int));
	x.fprod = calloc(nv, sizeof(int));
	x.mark = calloc(nv, 1);
	x.avail = calloc(nv, 1);
	x.incl = calloc(nn, 1);
	x.need_init = calloc(x.g->n_initializer + 1, 1);
	x.need_comp = calloc(nv, 1);
	if (!x.byname || !x.fv || !x.init_of || !x.fprod || !x.mark || !x.avail || !x.incl ||
	    !x.need_init || !x.need_comp || kern_shapes_alloc(m, &x.sh) < 0) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* Static values at this batch: the single model input with its dim 0 set to batch. */
	iv = &m->values[m->inputs[0]];
	in.ndim = iv->in_ndim;
	memcpy(in.dims, iv->in_dims, sizeof(in.dims));
	if (in.ndim > 0)
		in.dims[0] = batch;
	rc = kern_shapes_infer(m, &in, &x.sh, err);
	if (rc == 0)
		rc = kern_ex_index(&x);
	if (rc == 0) {
		kern_ex_select(&x, m->split_value[split]);
		rc = kern_ex_check_mask(&x, split);
	}
	if (rc == 0)
		rc = kern_ex_outside(&x);
	if (rc == 0) {
		x.avail[m->split_value[split]] = 1;
		rc = kern_ex_write(&x, mp, split, batch, out, len);
	}
out:
	if (rc < 0)
		tg_err_prefix(err, "model %s: extract split %u: ", m->name, split);
	if (x.sh.ndim)
		kern_shapes_free(m, &x.sh);
	free(x.byname);
	free(x.fv);
	free(x.init_of);
	free(x.fprod);
	free(x.mark);
	free(x.avail);
	free(x.incl);
	free(x.need_init);
	free(x.need_comp);
	if (mp)
		onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}
