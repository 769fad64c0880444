/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model load and analysis: static marking, BatchNormalization folding, shapes at batch 1,
 * FLOPs, and the split points (tensors that alone carry everything the rest needs).
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A node is static when it only needs values known without activations. */
static int
kern_mark_static(struct kern_model *m, struct tg_err *err)
{
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct kern_node *n = &m->nodes[i];
		const struct kern_op_def *d = kern_ops[n->op];
		bool all = true;

		if (d->eval_in != KERN_EVAL_VALUES) {	/* Shape, Constant: static by nature */
			all = true;
		} else {
			for (int k = 0; k < n->n_in; k++)
				if (n->in[k] >= 0 && !m->values[n->in[k]].is_static)
					all = false;
			if (n->n_in == 0)
				all = false;
		}
		if (all && d->eval == NULL)
			all = false;	/* e.g. Conv on constants: runs as data */
		if (!all && d->infer == NULL)
			return tg_err_set(err, -EINVAL,
					  "node \"%s\" (%s): runs on activations; only shape "
					  "arithmetic is supported for this op",
					  n->name, kern_op_names[n->op]);
		n->is_static = all;
		for (int k = 0; k < n->n_out; k++)
			if (n->out[k] >= 0)
				m->values[n->out[k]].is_static = all;
		if (!all && n->op != KOP_SPLIT) {	/* extra outputs (Dropout's mask) unused */
			for (int k = 1; k < n->n_out; k++)
				if (n->out[k] >= 0 && (m->values[n->out[k]].n_consumers ||
						       m->values[n->out[k]].is_output))
					return tg_err_set(err, -EINVAL,
							  "node \"%s\" (%s): output %d is used; only the "
							  "first output is supported",
							  n->name, kern_op_names[n->op], k);
			if (n->op == KOP_CONV && (n->n_in < 2 || n->in[0] < 0 || n->in[1] < 0))
				return tg_err_set(err, -EINVAL, "node \"%s\" (Conv): needs X and W",
						  n->name);
		}
	}
	for (unsigned i = 0; i < m->n_outputs; i++)
		if (m->values[m->outputs[i]].is_static || m->values[m->outputs[i]].is_input)
			return tg_err_set(err, -EINVAL,
					  "graph output \"%s\" does not depend on the input data; "
					  "only computed float outputs are supported",
					  m->values[m->outputs[i]].name);
	return 0;
}

/*
 * Fold y = BN(Conv(x)) into Conv's weights and bias when the Conv output feeds nothing else:
 * w' = w * g / sqrt(v + eps), b' = (b - mean) * g / sqrt(v + eps) + beta.
 */
static int
kern_fold_bn(struct kern_model *m, struct tg_err *err)
{
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct kern_node *bn = &m->nodes[i], *cv;
		struct kern_value *cout, *w, *b = NULL;
		const float *g, *beta, *mean, *var;
		size_t oc, per;

		if (bn->op != KOP_BN || bn->is_static || bn->in[0] < 0)
			continue;
		cout = &m->values[bn->in[0]];
		if (cout->producer < 0 || cout->n_consumers != 1 || cout->is_output)
			continue;
		cv = &m->nodes[cout->producer];
		if (cv->op != KOP_CONV || cv->is_static)
			continue;
		w = &m->values[cv->in[1]];
		if (!w->is_const || w->n_consumers != 1 || w->cdata.dtype != TG_DT_F32 ||
		    w->cdata.ndim < 1)
			continue;
		if (cv->n_in > 2 && cv->in[2] >= 0) {
			b = &m->values[cv->in[2]];
			if (!b->is_const || b->n_consumers != 1 || b->cdata.dtype != TG_DT_F32)
				continue;
		}
		oc = (size_t)w->cdata.dims[0];
		bool ok = true;

		for (int k = 1; k < 5; k++) {
			const struct kern_value *p = bn->in[k] >= 0 ? &m->values[bn->in[k]] : NULL;

			ok &= p && p->is_const && p->cdata.dtype == TG_DT_F32 &&
			      tg_tensor_numel(&p->cdata) == oc;
		}
		if (!ok || (b && tg_tensor_numel(&b->cdata) != oc))
			continue;
		g = m->values[bn->in[1]].cdata.data;
		beta = m->values[bn->in[2]].cdata.data;
		mean = m->values[bn->in[3]].cdata.data;
		var = m->values[bn->in[4]].cdata.data;
		if (b == NULL) {	/* give the Conv a bias value of its own */
			b = &m->values[m->n_values];
			memset(b, 0, sizeof(*b));
			if (asprintf(&b->name, "%s.folded_bias", cv->name) < 0) {
				b->name = NULL;
				return tg_err_set(err, -ENOMEM, "out of memory");
			}
			b->producer = -1;
			b->is_const = b->is_static = true;
			b->cdata.dtype = TG_DT_F32;
			b->cdata.ndim = 1;
			b->cdata.dims[0] = (int64_t)oc;
			b->n_consumers = 1;
			if (tg_tensor_alloc(&b->cdata) < 0)
				return tg_err_set(err, -ENOMEM, "out of memory");
			cv->in[2] = (int)m->n_values++;
			cv->n_in = 3;
		}
		per = tg_tensor_numel(&w->cdata) / oc;
		for (size_t c = 0; c < oc; c++) {
			float sc = g[c] / sqrtf(var[c] + bn->a.bn.eps);
			float *wc = (float *)w->cdata.data + c * per;
			float *bc = (float *)b->cdata.data + c;

			for (size_t k = 0; k < per; k++)
				wc[k] *= sc;
			*bc = (*bc - mean[c]) * sc + beta[c];
		}
		/* The Conv now produces the BN's output; the BN and its input disappear. */
		cv->out[0] = bn->out[0];
		m->values[bn->out[0]].producer = cout->producer;
		cout->dead = true;
		cout->n_consumers = 0;
		for (int k = 1; k < 5; k++)
			m->values[bn->in[k]].n_consumers--;
		bn->dead = true;
	}
	return 0;
}

/* The split table: see kernels.h. tail[] gets the nodes that depend on value t. */
static bool
kern_is_split(const struct kern_model *m, int t, uint8_t *tail, uint8_t *mark)
{
	const int final_v = m->outputs[m->final_output];
	unsigned n_tail = 0;

	memset(mark, 0, m->n_values);
	memset(tail, 0, m->n_nodes);
	mark[t] = 1;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];
		bool reads = false, outside = false;

		if (n->dead || n->is_static)
			continue;
		for (int k = 0; k < n->n_in; k++) {
			int v = n->in[k];

			if (v < 0 || m->values[v].is_static)
				continue;
			if (mark[v])
				reads = true;
			else
				outside = true;
		}
		if (!reads)
			continue;
		if (outside)
			return false;	/* another tensor crosses the cut */
		tail[i] = 1;
		n_tail++;
		for (int k = 0; k < n->n_out; k++)
			if (n->out[k] >= 0)
				mark[n->out[k]] = 1;
	}
	/* Every tail node's inputs must come from t or the tail: a node that reads an outside
	 * value but nothing marked is fine only if it is not in the tail, and no tail node may
	 * be fed by it, which the loop above checks when that node's reader is reached. */
	return n_tail > 0 && mark[final_v];
}

static int
kern_find_splits(struct kern_model *m, struct tg_err *err)
{
	uint8_t *mark = NULL, *tail = NULL;
	unsigned cap = 1;
	int rc = 0;

	for (unsigned i = 0; i < m->n_nodes; i++)
		cap += !m->nodes[i].dead && !m->nodes[i].is_static;
	m->splits = calloc(cap, sizeof(*m->splits));
	m->split_value = calloc(cap, sizeof(int));
	m->tail_mask = calloc(cap, sizeof(uint8_t *));
	mark = malloc(m->n_values);
	tail = malloc(m->n_nodes);
	if (!m->splits || !m->split_value || !m->tail_mask || !mark || !tail) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (m->n_inputs != 1)
		goto out;	/* several inputs: no single tensor to split at */
	for (int i = -1; i < (int)m->n_nodes; i++) {
		int t;

		if (i < 0) {
			t = m->inputs[0];
		} else {
			if (m->nodes[i].dead || m->nodes[i].is_static)
				continue;
			t = m->nodes[i].out[0];
		}
		if (!kern_is_split(m, t, tail, mark))
			continue;
		struct kern_split *sp = &m->splits[m->n_splits];
		uint8_t *mask = malloc(m->n_nodes);

		if (mask == NULL) {
			rc = tg_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		memcpy(mask, tail, m->n_nodes);
		m->tail_mask[m->n_splits] = mask;
		m->split_value[m->n_splits] = t;
		sp->index = m->n_splits;
		sp->name = m->values[t].name;
		sp->ndim = m->shapes1.ndim[t];
		memcpy(sp->dims, m->shapes1.dims[t], sizeof(sp->dims));
		sp->numel = kern_numel(&m->shapes1, t);
		for (unsigned k = 0; k < m->n_nodes; k++) {
			if (m->nodes[k].dead || m->nodes[k].is_static)
				continue;
			if (mask[k])
				sp->tail_flops += m->nodes[k].flops;
			else
				sp->head_flops += m->nodes[k].flops;
		}
		m->n_splits++;
	}
out:
	free(mark);
	free(tail);
	return rc;
}

/* FLOPs upstream of each output; the output with the most is the final exit. */
static int
kern_outputs(struct kern_model *m, struct tg_err *err)
{
	uint8_t *need = malloc(m->n_values);
	uint64_t best = 0;

	m->outs = calloc(m->n_outputs, sizeof(*m->outs));
	if (need == NULL || m->outs == NULL) {
		free(need);
		return tg_err_set(err, -ENOMEM, "out of memory");
	}
	for (unsigned o = 0; o < m->n_outputs; o++) {
		struct kern_output *ko = &m->outs[o];
		int v = m->outputs[o];

		memset(need, 0, m->n_values);
		need[v] = 1;
		for (int i = (int)m->n_nodes - 1; i >= 0; i--) {
			const struct kern_node *n = &m->nodes[i];
			bool used = false;

			if (n->dead)
				continue;
			for (int k = 0; k < n->n_out; k++)
				used |= n->out[k] >= 0 && need[n->out[k]];
			if (!used)
				continue;
			if (!n->is_static)
				ko->flops += n->flops;
			for (int k = 0; k < n->n_in; k++)
				if (n->in[k] >= 0)
					need[n->in[k]] = 1;
		}
		ko->index = o;
		ko->name = m->values[v].name;
		ko->ndim = m->shapes1.ndim[v];
		memcpy(ko->dims, m->shapes1.dims[v], sizeof(ko->dims));
		if (o == 0 || ko->flops >= best) {
			best = ko->flops;
			m->final_output = (int)o;
		}
	}
	free(need);
	return 0;
}

/*
 * The exporter deduplicates equal initializers (zero biases, fresh BN parameters) and
 * reaches the copies through Identity nodes: give each such output a constant of its own,
 * so every rule that wants an initializer (Conv weights and bias, BN and LayerNorm
 * parameters) sees one, and BN folding never edits data another node reads.
 */
static int
kern_fold_const_identity(struct kern_model *m, struct tg_err *err)
{
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct kern_node *n = &m->nodes[i];
		struct kern_value *src, *dst;

		if (n->op != KOP_IDENTITY || n->dead || n->in[0] < 0 || n->out[0] < 0)
			continue;
		src = &m->values[n->in[0]];
		dst = &m->values[n->out[0]];
		if (!src->is_const || dst->is_output)
			continue;
		dst->cdata = src->cdata;
		dst->cdata.data = NULL;
		if (tg_tensor_alloc(&dst->cdata) < 0)
			return tg_err_set(err, -ENOMEM, "out of memory");
		memcpy(dst->cdata.data, src->cdata.data, tg_tensor_bytes(&src->cdata));
		dst->is_const = dst->is_static = true;
		dst->producer = -1;
		src->n_consumers--;
		n->dead = true;
	}
	return 0;
}

/* The one node reading v (not a graph output), or -1. */
static int
kern_sole_reader(const struct kern_model *m, int v)
{
	if (v < 0 || m->values[v].n_consumers != 1 || m->values[v].is_output)
		return -1;
	for (unsigned i = 0; i < m->n_nodes; i++)
		for (int k = 0; !m->nodes[i].dead && k < m->nodes[i].n_in; k++)
			if (m->nodes[i].in[k] == v)
				return (int)i;
	return -1;
}

/* Whether v is a scalar f32 constant within 1e-4 of want. */
static bool
kern_const_near(const struct kern_model *m, int v, float want)
{
	const struct kern_value *kv = v >= 0 ? &m->values[v] : NULL;

	return kv && kv->is_const && kv->cdata.dtype == TG_DT_F32 &&
	       tg_tensor_numel(&kv->cdata) == 1 && fabsf(*(float *)kv->cdata.data - want) < 1e-4f;
}

/* Node i's other operand when it is a binary op of kind op reading v, else -1. */
static int
kern_other_operand(const struct kern_model *m, int i, enum kern_op op, int v)
{
	const struct kern_node *n = i >= 0 ? &m->nodes[i] : NULL;

	if (n == NULL || n->op != op || n->n_in != 2)
		return -1;
	return n->in[0] == v ? n->in[1] : n->in[1] == v ? n->in[0] : -1;
}

/*
 * GELU as PyTorch exports it below opset 20: y = x * (1 + erf(x / sqrt 2)) * 0.5, five
 * nodes (Div, Erf, Add, Mul, Mul; the 0.5 may also multiply x first). oneDNN has GELU but
 * no Erf: the Div node becomes one Gelu node from x to y and the other four go dead. An
 * Erf that is not part of this pattern stays and is refused with its reason.
 */
static void
kern_fuse_gelu(struct kern_model *m)
{
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct kern_node *e = &m->nodes[i], *d;
		int x, a, r1, r2, y, half = -1, t;

		if (e->op != KOP_ERF || e->dead || e->in[0] < 0 || m->values[e->in[0]].producer < 0)
			continue;
		d = &m->nodes[m->values[e->in[0]].producer];
		if (d->dead || d->n_in != 2 || kern_sole_reader(m, d->out[0]) != (int)i)
			continue;
		x = d->in[0];
		if (!((d->op == KOP_DIV && kern_const_near(m, d->in[1], 1.41421356f)) ||
		      (d->op == KOP_MUL && kern_const_near(m, d->in[1], 0.70710678f))))
			continue;
		a = kern_sole_reader(m, e->out[0]);
		if (!kern_const_near(m, kern_other_operand(m, a, KOP_ADD, e->out[0]), 1.f))
			continue;
		r1 = kern_sole_reader(m, m->nodes[a].out[0]);
		t = kern_other_operand(m, r1, KOP_MUL, m->nodes[a].out[0]);
		if (t == x) {			/* (x * (1 + erf)) * 0.5 */
			r2 = kern_sole_reader(m, m->nodes[r1].out[0]);
			if (!kern_const_near(m, kern_other_operand(m, r2, KOP_MUL,
								   m->nodes[r1].out[0]), 0.5f))
				continue;
			y = m->nodes[r2].out[0];
		} else if (t >= 0 && m->values[t].producer >= 0 &&	/* (x * 0.5) * (1 + erf) */
			   m->values[t].n_consumers == 1 &&
			   kern_other_operand(m, m->values[t].producer, KOP_MUL, x) >= 0 &&
			   kern_const_near(m, kern_other_operand(m, m->values[t].producer, KOP_MUL,
								 x), 0.5f)) {
			half = m->values[t].producer;
			r2 = r1;
			r1 = -1;
			y = m->nodes[r2].out[0];
		} else {
			continue;
		}
		/* The four nodes and the tensors between them are folded away, as BN's are. */
		e->dead = m->nodes[a].dead = m->nodes[r2].dead = true;
		m->values[d->out[0]].dead = m->values[e->out[0]].dead = true;
		m->values[m->nodes[a].out[0]].dead = true;
		if (r1 >= 0)
			m->nodes[r1].dead = m->values[m->nodes[r1].out[0]].dead = true;
		if (half >= 0)
			m->nodes[half].dead = m->values[m->nodes[half].out[0]].dead = true;
		m->values[x].n_consumers--;	/* x fed Div and one Mul; Gelu reads it once */
		d->op = KOP_GELU;
		d->a.gelu.tanh = false;
		d->n_in = 1;
		d->in[1] = -1;
		d->out[0] = y;
		m->values[y].producer = (int)(d - m->nodes);
	}
}

int
kern_graph_prepare(struct kern_model *m, struct tg_err *err)
{
	struct tg_tensor *in = calloc(m->n_inputs, sizeof(*in));
	int rc;

	if (in == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	rc = kern_fold_const_identity(m, err);
	if (rc == 0)
		kern_fuse_gelu(m);
	if (rc == 0)
		rc = kern_mark_static(m, err);
	if (rc == 0)
		rc = kern_fold_bn(m, err);
	if (rc == 0)
		rc = kern_shapes_alloc(m, &m->shapes1) < 0 ? tg_err_set(err, -ENOMEM, "out of memory") : 0;
	for (unsigned i = 0; rc == 0 && i < m->n_inputs; i++) {
		const struct kern_value *v = &m->values[m->inputs[i]];

		if (v->elem_type != 1 /* FLOAT */)
			rc = tg_err_set(err, -EINVAL, "input \"%s\": only float inputs are supported",
					v->name);
		in[i].dtype = TG_DT_F32;
		in[i].ndim = v->in_ndim;
		memcpy(in[i].dims, v->in_dims, sizeof(in[i].dims));
		/* One input: its dim 0 is the batch, described at 1. Several (ONNX's own
		 * tests): the declared shapes, since dim 0 of a weight-like input is no batch. */
		if (in[i].ndim > 0 && m->n_inputs == 1)
			in[i].dims[0] = 1;
	}
	if (rc == 0)
		rc = kern_shapes_infer(m, in, &m->shapes1, err);
	free(in);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct kern_node *n = &m->nodes[i];

		if (n->dead || n->is_static)
			continue;
		n->flops = kern_node_flops(&m->shapes1, n);
		m->flops += n->flops;
		m->n_exec_nodes++;
		for (int k = 1; k < n->n_in; k++)
			if (n->in[k] >= 0 && m->values[n->in[k]].is_const &&
			    m->values[n->in[k]].cdata.dtype == TG_DT_F32)
				m->n_params += tg_tensor_numel(&m->values[n->in[k]].cdata);
	}
	rc = kern_outputs(m, err);
	if (rc == 0)
		rc = kern_find_splits(m, err);
	return rc;
}

/* ---- public: load, info ---- */

static const struct kern_load_opts kern_default_opts = {
	.max_file_bytes = 512u << 20,
	.max_nodes = 100000,
	.max_tensor_elems = 1ull << 28,
};

int
kern_model_load_mem(const uint8_t *buf, size_t len, const char *name,
		    const struct kern_load_opts *opts, struct kern_model **out, struct tg_err *err)
{
	struct kern_model *m;
	int rc;

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	m->opts = opts ? *opts : kern_default_opts;
	if (m->opts.max_nodes == 0)
		m->opts.max_nodes = kern_default_opts.max_nodes;
	if (m->opts.max_tensor_elems == 0)
		m->opts.max_tensor_elems = kern_default_opts.max_tensor_elems;
	m->name = strdup(name ? name : "model");
	if (m->name == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	if (opts && opts->max_file_bytes && len > opts->max_file_bytes) {
		rc = tg_err_set(err, -EFBIG, "%zu bytes, limit is %zu", len, opts->max_file_bytes);
		goto out_free;
	}
	rc = kern_onnx_parse(m, buf, len, err);
	if (rc == 0)
		rc = kern_graph_prepare(m, err);
	if (rc < 0)
		goto out_free;
	m->file = malloc(len ? len : 1);
	if (m->file == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	memcpy(m->file, buf, len);
	m->file_len = len;
	*out = m;
	return 0;

out_free:
	tg_err_prefix(err, "model %s: ", m->name ? m->name : "?");
	kern_model_free(m);
	return rc;
}

int
kern_model_load(const char *path, const struct kern_load_opts *opts, struct kern_model **out,
		struct tg_err *err)
{
	size_t max = opts && opts->max_file_bytes ? opts->max_file_bytes :
						     kern_default_opts.max_file_bytes;
	uint8_t *buf;
	size_t len;
	int rc;

	rc = tg_file_read(path, max, &buf, &len, err);
	if (rc < 0)
		return rc;
	rc = kern_model_load_mem(buf, len, path, opts, out, err);
	free(buf);
	return rc;
}

void
kern_model_free(struct kern_model *m)
{
	if (m == NULL)
		return;
	if (m->shapes1.ndim)
		kern_shapes_free(m, &m->shapes1);
	for (unsigned v = 0; m->values && v < m->n_values; v++) {
		free(m->values[v].name);
		tg_tensor_free(&m->values[v].cdata);
	}
	for (unsigned i = 0; m->nodes && i < m->n_nodes; i++)
		free(m->nodes[i].name);
	for (unsigned s = 0; m->tail_mask && s < m->n_splits; s++)
		free(m->tail_mask[s]);
	free(m->tail_mask);
	free(m->splits);
	free(m->split_value);
	free(m->outs);
	free(m->values);
	free(m->nodes);
	free(m->inputs);
	free(m->outputs);
	free(m->file);
	free(m->name);
	free(m);
}

void
kern_model_get_info(const struct kern_model *m, struct kern_model_info *out)
{
	memset(out, 0, sizeof(*out));
	out->name = m->name;
	out->n_nodes = m->n_nodes;
	out->n_exec_nodes = m->n_exec_nodes;
	out->n_params = m->n_params;
	out->flops = m->flops;
	out->n_inputs = m->n_inputs;
	out->n_outputs = m->n_outputs;
	out->n_splits = m->n_splits;
}

unsigned
kern_model_op_counts(const struct kern_model *m, const char **ops, unsigned *counts, unsigned max)
{
	unsigned hist[KOP__COUNT] = { 0 }, k = 0;

	for (unsigned i = 0; i < m->n_nodes; i++)
		hist[m->nodes[i].op]++;
	for (int op = 0; op < KOP__COUNT; op++) {
		if (hist[op] == 0)
			continue;
		if (k < max) {
			ops[k] = kern_op_names[op];
			counts[k] = hist[op];
		}
		k++;
	}
	return k;
}

const struct kern_split *
kern_model_split(const struct kern_model *m, unsigned idx)
{
	return idx < m->n_splits ? &m->splits[idx] : NULL;
}

int
kern_model_find_split(const struct kern_model *m, const char *s, struct tg_err *err)
{
	char *end;
	unsigned long idx;

	if (m->n_splits == 0)
		return tg_err_set(err, -ENOENT, "model %s has no split points", m->name);
	if (strcmp(s, "input") == 0)
		return 0;
	for (unsigned i = 0; i < m->n_splits; i++)
		if (strcmp(m->splits[i].name, s) == 0)
			return (int)i;
	idx = strtoul(s, &end, 10);
	if (s[0] != '\0' && *end == '\0') {
		if (idx < m->n_splits)
			return (int)idx;
		return tg_err_set(err, -ENOENT, "split %lu: the model has splits 0 to %u", idx,
				  m->n_splits - 1);
	}
	return tg_err_set(err, -ENOENT, "no split point named \"%s\"", s);
}

const struct kern_output *
kern_model_output(const struct kern_model *m, unsigned idx)
{
	return idx < m->n_outputs ? &m->outs[idx] : NULL;
}

bool
kern_model_output_in_tail(const struct kern_model *m, unsigned split, unsigned out)
{
	int p;

	if (split >= m->n_splits || out >= m->n_outputs)
		return false;
	p = m->values[m->outputs[out]].producer;
	return p >= 0 && m->tail_mask[split][p];
}

static int
kern_name_ix_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kern_name_ix *)a)->name,
		      ((const struct kern_name_ix *)b)->name);
}

void
kern_name_ix_build(const struct kern_model *m, struct kern_name_ix *ix)
{
	for (unsigned v = 0; v < m->n_values; v++) {
		ix[v].name = m->values[v].name;
		ix[v].v = (int)v;
	}
	qsort(ix, m->n_values, sizeof(*ix), kern_name_ix_cmp);
}

int
kern_name_ix_find(const struct kern_model *m, const struct kern_name_ix *ix, const char *name)
{
	struct kern_name_ix key = { name, -1 }, *hit;

	if (name == NULL || name[0] == '\0')
		return -1;
	hit = bsearch(&key, ix, m->n_values, sizeof(key), kern_name_ix_cmp);
	return hit ? hit->v : -1;
}
