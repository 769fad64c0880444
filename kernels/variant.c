/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Skip-dropped variants: the residual blocks of a model and the graph surgery that removes
 * their branches. A block is an Add of two activations where one input (the shortcut) alone
 * feeds every node of the other input's branch; dropping it replaces the Add's output by
 * the shortcut. The analysis runs on the loaded IR (folded, shapes at batch 1); the surgery
 * on the file's own ModelProto (the bytes kept in m->file), so what is written is a
 * standard ONNX file with the file's nodes, opset and names, minus the dropped branches.
 * Not a hot path: allocates freely, once.
 */
#include "kernels/kern_int.h"
#include "onnx/onnx.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when v is computed from activations (not a constant, not shape arithmetic). */
static bool
kern_var_act(const struct kern_model *m, int v)
{
	return v >= 0 && !m->values[v].is_static && !m->values[v].dead;
}

static bool
kern_var_same_shape(const struct kern_model *m, int a, int b)
{
	const struct kern_shapes *s = &m->shapes1;

	if (s->ndim[a] != s->ndim[b])
		return false;
	for (int d = 0; d < s->ndim[a]; d++)
		if (s->dims[a][d] != s->dims[b][d])
			return false;
	return true;
}

/*
 * The branch of Add node ai with shortcut sc and branch input br: in_cone[] gets every live
 * node computing br from sc. @return NULL when droppable, else why not.
 */
static const char *
kern_var_cone(const struct kern_model *m, unsigned ai, int sc, int br, uint8_t *in_cone)
{
	int *stack = calloc(m->n_values + 1, sizeof(int));
	unsigned top = 0;
	const char *why = NULL;

	if (stack == NULL)
		return "out of memory";
	memset(in_cone, 0, m->n_nodes);
	stack[top++] = br;
	while (top > 0 && why == NULL) {
		int v = stack[--top], p;

		if (v == sc || !kern_var_act(m, v))
			continue;
		p = m->values[v].producer;
		if (p < 0) {
			why = "no identity shortcut: its branch reads activations other than its "
			      "other input (e.g. a projection shortcut)";
			break;
		}
		if (in_cone[p])
			continue;
		if ((unsigned)p >= ai) {	/* topological order: a producer comes before */
			why = "its branch is not before it";
			break;
		}
		in_cone[p] = 1;
		for (int k = 0; k < m->nodes[p].n_in && top < m->n_values; k++)
			stack[top++] = m->nodes[p].in[k];
	}
	free(stack);
	if (why != NULL)
		return why;
	/* Nothing outside the branch may read inside it: an exit, another block, a Concat. */
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];

		if (!in_cone[i])
			continue;
		for (int o = 0; o < n->n_out; o++)
			if (n->out[o] >= 0 && m->values[n->out[o]].is_output)
				return "its branch computes a graph output";
	}
	for (unsigned j = 0; j < m->n_nodes; j++) {
		const struct kern_node *r = &m->nodes[j];

		if (in_cone[j] || j == ai || r->dead || r->is_static)
			continue;
		for (int k = 0; k < r->n_in; k++) {
			int p = r->in[k] >= 0 ? m->values[r->in[k]].producer : -1;

			if (p >= 0 && in_cone[p])
				return "a node outside its branch reads inside it";
		}
	}
	return NULL;
}

/* Describe Add node ai as a block; false when it is not an Add of two activations. */
static bool
kern_var_block(const struct kern_model *m, unsigned ai, uint8_t *in_cone, struct kern_block *b)
{
	const struct kern_node *n = &m->nodes[ai];
	const char *why[2];
	int out;

	if (n->op != KOP_ADD || n->dead || n->is_static || n->n_in != 2 ||
	    !kern_var_act(m, n->in[0]) || !kern_var_act(m, n->in[1]))
		return false;
	out = n->out[0];
	memset(b, 0, sizeof(*b));
	b->add = n->name;
	b->output = m->values[out].name;
	for (int s = 0; s < 2; s++) {
		int sc = n->in[s], br = n->in[1 - s];

		if (!kern_var_same_shape(m, sc, out) || !kern_var_same_shape(m, br, out)) {
			why[s] = "its inputs' shapes differ from its output's (no identity shortcut)";
			continue;
		}
		why[s] = kern_var_cone(m, ai, sc, br, in_cone);
		if (why[s] != NULL)
			continue;
		b->droppable = true;
		b->shortcut = m->values[sc].name;
		b->flops_saved = n->flops;
		for (unsigned i = 0; i < m->n_nodes; i++)
			if (in_cone[i])
				b->flops_saved += m->nodes[i].flops;
		return true;
	}
	/* The input-0 reason is the one a reader can act on unless it was the shape. */
	b->why = why[1] != NULL && strstr(why[0], "shapes") == NULL ? why[0] : why[1];
	return true;
}

unsigned
kern_model_blocks(const struct kern_model *m, struct kern_block *out, unsigned max)
{
	uint8_t *in_cone = calloc(m->n_nodes + 1, 1);
	unsigned n = 0;

	if (in_cone == NULL)
		return 0;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct kern_block b;

		if (!kern_var_block(m, i, in_cone, &b))
			continue;
		b.index = n;
		if (n < max)
			out[n] = b;
		n++;
	}
	free(in_cone);
	return n;
}

int
kern_model_find_block(const struct kern_model *m, const char *s, struct tg_err *err)
{
	struct kern_block *b;
	unsigned n = kern_model_blocks(m, NULL, 0), i;
	char *end;
	unsigned long idx;
	int rc = -ENOENT;

	b = calloc(n + 1, sizeof(*b));
	if (b == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	kern_model_blocks(m, b, n);
	idx = strtoul(s, &end, 10);
	for (i = 0; i < n; i++)
		if (strcmp(b[i].add, s) == 0 || strcmp(b[i].output, s) == 0 ||
		    (s[0] >= '0' && s[0] <= '9' && *end == '\0' && idx == i))
			break;
	if (i == n)
		tg_err_set(err, rc, "no residual block \"%s\" (the model has %u, 0 to %u: see "
			   "tailgate-model blocks)", s, n, n ? n - 1 : 0);
	else if (!b[i].droppable)
		rc = tg_err_set(err, -EINVAL, "block %u \"%s\" is not droppable: %s", i, b[i].add,
				b[i].why);
	else
		rc = (int)i;
	free(b);
	return rc;
}

/* ---- the surgery, on the file's ModelProto ---- */

/* Follow the renames (dropped Add output -> its shortcut) to the end of a chain. */
static const char *
kern_var_renamed(const char *const *from, const char *const *to, unsigned n, const char *s)
{
	for (unsigned hops = 0; hops <= n; hops++) {
		unsigned i;

		for (i = 0; i < n && strcmp(from[i], s) != 0; i++)
			;
		if (i == n)
			return s;
		s = to[i];
	}
	return s;	/* cannot loop: a shortcut is computed before its Add */
}

static bool
kern_var_is_output(const Onnx__GraphProto *g, const char *s)
{
	for (size_t i = 0; i < g->n_output; i++)
		if (strcmp(g->output[i]->name, s) == 0)
			return true;
	return false;
}

/* Whether a kept node or a graph output reads s. */
static bool
kern_var_read(const Onnx__GraphProto *g, const uint8_t *keep, const char *s)
{
	if (s[0] == '\0')
		return false;
	if (kern_var_is_output(g, s))
		return true;
	for (size_t j = 0; j < g->n_node; j++)
		for (size_t k = 0; keep[j] && k < g->node[j]->n_input; k++)
			if (strcmp(g->node[j]->input[k], s) == 0)
				return true;
	return false;
}

/* Remove nodes none of whose outputs are read, to a fixed point. */
static void
kern_var_dead_nodes(const Onnx__GraphProto *g, uint8_t *keep)
{
	bool changed = true;

	while (changed) {
		changed = false;
		for (size_t j = 0; j < g->n_node; j++) {
			bool used = false;

			for (size_t o = 0; keep[j] && o < g->node[j]->n_output && !used; o++)
				used = kern_var_read(g, keep, g->node[j]->output[o]);
			if (keep[j] && !used) {
				keep[j] = 0;
				changed = true;
			}
		}
	}
}

/*
 * Rewrite graph g in place: drop the Adds named in adds (file nodes by their output
 * tensor), rename their readers to the shortcuts, remove what only fed the branches.
 * An Add whose output is a graph output becomes an Identity of its shortcut, so the
 * output keeps its name. The graph's arrays are pointed at shallow copies and shortened;
 * kern_var_restore() puts the originals back so the unpacked message frees what it owns.
 */
struct kern_var_surgery {
	Onnx__GraphProto *g;
	const char **from, **to;	/* [n] dropped Add output -> shortcut */
	unsigned n;
	uint8_t *keep;			/* [n_node] */
	uint8_t *keep_init;		/* [n_initializer] */
	Onnx__NodeProto *copy;		/* [n_node] shallow copies the output is packed from */
	char ***ins;			/* [n_node] their input arrays */
	Onnx__NodeProto **nodes;	/* the original arrays, restored before freeing */
	Onnx__TensorProto **inits;
	Onnx__ValueInfoProto **inputs, **vinfo;
	size_t n_node, n_init, n_input, n_vinfo;
	char *identity_op;
};

static int
kern_var_apply(struct kern_var_surgery *s, struct tg_err *err)
{
	Onnx__GraphProto *g = s->g;

	for (size_t j = 0; j < g->n_node; j++) {
		Onnx__NodeProto *np = &s->copy[j];
		unsigned d;

		/* A shallow copy with inputs of its own: the message's strings stay its own. */
		*np = *s->nodes[j];
		np->input = s->ins[j];
		if (np->n_input)	/* a node without inputs (Constant) has a NULL array */
			memcpy(np->input, s->nodes[j]->input, np->n_input * sizeof(*np->input));
		g->node[j] = np;
		s->keep[j] = 1;
		for (d = 0; d < s->n && (np->n_output == 0 || strcmp(np->output[0], s->from[d]));
		     d++)
			;
		if (d < s->n) {
			if (strcmp(np->op_type, "Add") != 0 || np->n_input != 2)
				return tg_err_set(err, -EINVAL, "node producing \"%s\" is not an Add",
						  s->from[d]);
			if (!kern_var_is_output(g, np->output[0])) {
				s->keep[j] = 0;
				continue;
			}
			np->op_type = s->identity_op;	/* a graph output keeps its name */
			np->n_input = 1;
			np->n_attribute = 0;
			np->input[0] = (char *)s->to[d];
		}
		for (size_t k = 0; k < np->n_input; k++)
			np->input[k] = (char *)kern_var_renamed(s->from, s->to, s->n, np->input[k]);
	}
	kern_var_dead_nodes(g, s->keep);
	return 0;
}

/* Compact the graph's arrays to what is kept (pointers only; the message owns them). */
static void
kern_var_compact(struct kern_var_surgery *s)
{
	Onnx__GraphProto *g = s->g;
	size_t n = 0;

	/* What is read is decided on the whole node array (keep[] is indexed by it). */
	for (size_t i = 0; i < s->n_init; i++)
		s->keep_init[i] = kern_var_read(g, s->keep, s->inits[i]->name) ? 1 : 0;
	for (size_t i = 0; i < s->n_vinfo; i++)
		if (kern_var_read(g, s->keep, s->vinfo[i]->name))
			g->value_info[n++] = s->vinfo[i];
	g->n_value_info = n;
	n = 0;
	for (size_t i = 0; i < s->n_init; i++)
		if (s->keep_init[i])
			g->initializer[n++] = s->inits[i];
	g->n_initializer = n;
	n = 0;
	for (size_t i = 0; i < s->n_input; i++) {	/* before IR 4: initializers as inputs */
		bool init = false, kept = false;

		for (size_t k = 0; k < s->n_init; k++)
			if (strcmp(s->inits[k]->name, s->inputs[i]->name) == 0) {
				init = true;
				kept = s->keep_init[k];
			}
		if (!init || kept)
			g->input[n++] = s->inputs[i];
	}
	g->n_input = n;
	n = 0;
	for (size_t j = 0; j < s->n_node; j++)
		if (s->keep[j])
			g->node[n++] = &s->copy[j];
	g->n_node = n;
}

/* Shorter arrays of the unpacked message are put back before it is freed. */
static void
kern_var_restore(struct kern_var_surgery *s)
{
	Onnx__GraphProto *g = s->g;

	if (s->nodes && s->n_node) {
		memcpy(g->node, s->nodes, s->n_node * sizeof(*g->node));
		g->n_node = s->n_node;
	}
	if (s->inits && s->n_init) {
		memcpy(g->initializer, s->inits, s->n_init * sizeof(*g->initializer));
		g->n_initializer = s->n_init;
	}
	if (s->inputs && s->n_input) {
		memcpy(g->input, s->inputs, s->n_input * sizeof(*g->input));
		g->n_input = s->n_input;
	}
	if (s->vinfo && s->n_vinfo) {
		memcpy(g->value_info, s->vinfo, s->n_vinfo * sizeof(*g->value_info));
		g->n_value_info = s->n_vinfo;
	}
}

/* Keep copies of the arrays the surgery shortens, so the message frees what it owns. */
static int
kern_var_save(struct kern_var_surgery *s)
{
	Onnx__GraphProto *g = s->g;

	s->n_node = g->n_node;
	s->n_init = g->n_initializer;
	s->n_input = g->n_input;
	s->n_vinfo = g->n_value_info;
	s->nodes = malloc((s->n_node + 1) * sizeof(*s->nodes));
	s->inits = malloc((s->n_init + 1) * sizeof(*s->inits));
	s->inputs = malloc((s->n_input + 1) * sizeof(*s->inputs));
	s->vinfo = malloc((s->n_vinfo + 1) * sizeof(*s->vinfo));
	s->keep = calloc(s->n_node + 1, 1);
	s->keep_init = calloc(s->n_init + 1, 1);
	s->copy = calloc(s->n_node + 1, sizeof(*s->copy));
	s->ins = calloc(s->n_node + 1, sizeof(*s->ins));
	if (!s->nodes || !s->inits || !s->inputs || !s->vinfo || !s->keep || !s->keep_init ||
	    !s->copy || !s->ins)
		return -ENOMEM;
	for (size_t j = 0; j < s->n_node; j++)
		if ((s->ins[j] = calloc(g->node[j]->n_input + 1, sizeof(char *))) == NULL)
			return -ENOMEM;
	/* protobuf-c leaves an empty repeated field NULL: copy only what there is. */
	if (s->n_node)
		memcpy(s->nodes, g->node, s->n_node * sizeof(*s->nodes));
	if (s->n_init)
		memcpy(s->inits, g->initializer, s->n_init * sizeof(*s->inits));
	if (s->n_input)
		memcpy(s->inputs, g->input, s->n_input * sizeof(*s->inputs));
	if (s->n_vinfo)
		memcpy(s->vinfo, g->value_info, s->n_vinfo * sizeof(*s->vinfo));
	return 0;
}

static int
kern_var_pack(Onnx__ModelProto *mp, uint8_t **out, size_t *len, struct tg_err *err)
{
	*len = onnx__model_proto__get_packed_size(mp);
	*out = malloc(*len ? *len : 1);
	if (*out == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	if (onnx__model_proto__pack(mp, *out) != *len) {
		free(*out);
		*out = NULL;
		return tg_err_set(err, -EINVAL, "protobuf packing failed");
	}
	return 0;
}

int
kern_model_drop(const struct kern_model *m, const unsigned *blocks, unsigned n, uint8_t **out,
		size_t *len, struct tg_err *err)
{
	struct kern_var_surgery s = { .n = n, .identity_op = "Identity" };
	unsigned nb = kern_model_blocks(m, NULL, 0);
	struct kern_block *b = calloc(nb + 1, sizeof(*b));
	Onnx__ModelProto *mp = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	*len = 0;
	s.from = calloc(n + 1, sizeof(*s.from));
	s.to = calloc(n + 1, sizeof(*s.to));
	if (b == NULL || s.from == NULL || s.to == NULL) {
		tg_err_set(err, rc, "out of memory");
		goto out;
	}
	kern_model_blocks(m, b, nb);
	for (unsigned i = 0; i < n; i++) {
		rc = -EINVAL;
		if (blocks[i] >= nb) {
			tg_err_set(err, rc, "block %u: the model has %u residual blocks", blocks[i],
				   nb);
			goto out;
		}
		if (!b[blocks[i]].droppable) {
			tg_err_set(err, rc, "block %u \"%s\" is not droppable: %s", blocks[i],
				   b[blocks[i]].add, b[blocks[i]].why);
			goto out;
		}
		for (unsigned k = 0; k < i; k++)
			if (blocks[k] == blocks[i]) {
				tg_err_set(err, rc, "block %u listed twice", blocks[i]);
				goto out;
			}
		s.from[i] = b[blocks[i]].output;
		s.to[i] = b[blocks[i]].shortcut;
	}
	mp = onnx__model_proto__unpack(NULL, m->file_len, m->file);
	if (mp == NULL || mp->graph == NULL) {
		rc = tg_err_set(err, -EINVAL, "the model's file no longer parses");
		goto out;
	}
	s.g = mp->graph;
	rc = kern_var_save(&s);
	if (rc < 0) {
		tg_err_set(err, rc, "out of memory");
		goto out;
	}
	rc = kern_var_apply(&s, err);
	if (rc == 0) {
		kern_var_compact(&s);
		rc = kern_var_pack(mp, out, len, err);
	}
	kern_var_restore(&s);
out:
	if (rc < 0)
		tg_err_prefix(err, "model %s: drop: ", m->name);
	if (mp != NULL)
		onnx__model_proto__free_unpacked(mp, NULL);
	free(s.nodes);
	free(s.inits);
	free(s.inputs);
	free(s.vinfo);
	free(s.keep);
	free(s.keep_init);
	for (size_t j = 0; s.ins != NULL && j < s.n_node; j++)
		free(s.ins[j]);
	free(s.ins);
	free(s.copy);
	free(s.from);
	free(s.to);
	free(b);
	return rc;
}

int
kern_calib_subset(const struct kern_calib *src, const struct kern_model *m,
		  struct kern_calib **out, struct tg_err *err)
{
	const struct kern_model *sm = src->m;
	struct kern_calib *c;
	int rc = kern_calib_create(m, &c, err);

	if (rc < 0)
		return rc;
	/* Names are unique in a graph; both tables are small next to a model load. */
	for (unsigned v = 0; v < m->n_values; v++)
		for (unsigned k = 0; k < sm->n_values; k++)
			if (strcmp(sm->values[k].name, m->values[v].name) == 0) {
				c->lo[v] = src->lo[k];
				c->hi[v] = src->hi[k];
				break;
			}
	c->n_obs = src->n_obs;
	*out = c;
	return 0;
}
