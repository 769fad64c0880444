/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shapes and static values. Only the batch dimension varies between runs, so the exporter's
 * shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) is evaluated here,
 * once per plan, from the graph inputs' concrete shapes; it never executes with the batch.
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
kern_shapes_alloc(const struct kern_model *m, struct kern_shapes *s)
{
	size_t n = m->n_values ? m->n_values : 1;

	s->ndim = kern_calloc(n, sizeof(*s->ndim));
	s->dims = kern_calloc(n, sizeof(*s->dims));
	s->sval = kern_calloc(n, sizeof(*s->sval));
	s->known = kern_calloc(n, sizeof(*s->known));
	if (!s->ndim || !s->dims || !s->sval || !s->known) {
		kern_shapes_free(m, s);
		return -ENOMEM;
	}
	return 0;
}

void
kern_shapes_free(const struct kern_model *m, struct kern_shapes *s)
{
	if (s->sval)
		for (unsigned v = 0; v < m->n_values; v++)
			if (!m->values[v].is_const)	/* constants alias the model's data */
				tg_tensor_free(&s->sval[v]);
	free(s->ndim);
	free(s->dims);
	free(s->sval);
	free(s->known);
	memset(s, 0, sizeof(*s));
}

/* Element i of a static value as a double; every type a file's constant may have. */
static int
kern_sval_double(const struct tg_tensor *t, size_t i, double *x)
{
	switch (t->dtype) {
	case TG_DT_F32: *x = ((const float *)t->data)[i]; return 0;
	case TG_DT_F64: *x = ((const double *)t->data)[i]; return 0;
	case TG_DT_S64: *x = (double)((const int64_t *)t->data)[i]; return 0;
	case TG_DT_S32: *x = ((const int32_t *)t->data)[i]; return 0;
	case TG_DT_U8: *x = ((const uint8_t *)t->data)[i]; return 0;
	case TG_DT_S8: *x = ((const int8_t *)t->data)[i]; return 0;
	default: return -EINVAL;
	}
}

/* The static value v, at most max elements. @return it, or NULL (none, or too long). */
static const struct tg_tensor *
kern_static_of(const struct kern_shapes *s, int v, int max)
{
	if (v < 0 || s->sval[v].data == NULL || tg_tensor_numel(&s->sval[v]) > (size_t)max)
		return NULL;
	return &s->sval[v];
}

int
kern_static_ints(const struct kern_shapes *s, int v, int64_t *out, int max)
{
	const struct tg_tensor *t = kern_static_of(s, v, max);
	size_t n = t ? tg_tensor_numel(t) : 0;

	if (t == NULL)
		return v >= 0 && s->sval[v].data ? -E2BIG : -EINVAL;
	for (size_t i = 0; i < n; i++) {
		double x;

		if (t->dtype == TG_DT_S64) {	/* exact: int64 does not fit a double */
			out[i] = ((const int64_t *)t->data)[i];
			continue;
		}
		if (kern_sval_double(t, i, &x) < 0 || !(x >= -0x1p62 && x <= 0x1p62))
			return -EINVAL;	/* NaN too: not a shape value */
		out[i] = (int64_t)x;
	}
	return (int)n;
}

int
kern_static_floats(const struct kern_shapes *s, int v, float *out, int max)
{
	const struct tg_tensor *t = kern_static_of(s, v, max);
	size_t n = t ? tg_tensor_numel(t) : 0;
	double x;

	if (t == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (kern_sval_double(t, i, &x) < 0)
			return -EINVAL;
		out[i] = (float)x;
	}
	return (int)n;
}

int
kern_static_float(const struct kern_shapes *s, int v, float *out)
{
	return kern_static_floats(s, v, out, 1) == 1 ? 0 : -EINVAL;
}

/* ---- helpers ---- */

int
kern_bad(struct tg_err *err, const struct kern_node *n, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return tg_err_set(err, -EINVAL, "node \"%s\" (%s): %s", n->name, kern_op_names[n->op], what);
}
#define BAD(node, ...) kern_bad(err, (node), __VA_ARGS__)

void
kern_set_shape(struct kern_shapes *s, int v, int ndim, const int64_t *dims)
{
	s->ndim[v] = ndim;
	memcpy(s->dims[v], dims, (size_t)ndim * sizeof(int64_t));
	s->known[v] = true;
}

uint64_t
kern_numel(const struct kern_shapes *s, int v)
{
	uint64_t n = 1;

	for (int i = 0; i < s->ndim[v]; i++)
		n *= (uint64_t)s->dims[v][i];
	return n;
}

int
kern_broadcast(const struct kern_shapes *s, int a, int b, int *ndim, int64_t *dims)
{
	int na = s->ndim[a], nb = s->ndim[b], n = na > nb ? na : nb;

	for (int i = 0; i < n; i++) {
		int64_t da = i < n - na ? 1 : s->dims[a][i - (n - na)];
		int64_t db = i < n - nb ? 1 : s->dims[b][i - (n - nb)];

		if (da != db && da != 1 && db != 1)
			return -EINVAL;
		dims[i] = da == 1 ? db : da;
	}
	*ndim = n;
	return 0;
}

/* ---- data ops: output shape from input shapes ---- */

int
kern_infer_data(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		struct tg_err *err)
{
	const struct kern_op_def *def = kern_ops[n->op];
	int x = n->in[0], nd = 0, o = n->out[0], rc;
	int64_t d[TG_MAX_DIMS];

	if (x < 0 || !s->known[x])
		return BAD(n, "input shape unknown");
	if (def->infer == NULL)
		return BAD(n, "not executable on activations");
	nd = s->ndim[x];
	memcpy(d, s->dims[x], sizeof(d));
	rc = def->infer(m, s, n, &nd, d, err);
	if (rc != 0)
		return rc == KERN_INFER_DONE ? 0 : rc;
	for (int i = 0; i < nd; i++)
		if (d[i] < 0 || (uint64_t)d[i] > m->opts.max_tensor_elems)
			return BAD(n, "output dim %d out of range", i);
	kern_set_shape(s, o, nd, d);
	if (kern_numel(s, o) / (nd ? (uint64_t)(d[0] ? d[0] : 1) : 1) > m->opts.max_tensor_elems)
		return BAD(n, "output larger than the tensor limit");
	for (int k = 1; k < n->n_out; k++)	/* Dropout's mask: never read (checked at load) */
		if (n->out[k] >= 0)
			kern_set_shape(s, n->out[k], nd, d);
	return 0;
}

/* ---- static ops: contents from contents ---- */

int
kern_sval_new(struct tg_tensor *t, enum tg_dtype dt, int nd, const int64_t *dims)
{
	t->dtype = dt;
	t->ndim = nd;
	memcpy(t->dims, dims, (size_t)nd * sizeof(int64_t));
	return kern_tensor_alloc(t);
}

double
kern_sval_get(const struct tg_tensor *t, size_t i)
{
	return t->dtype == TG_DT_S64 ? (double)((int64_t *)t->data)[i] : ((float *)t->data)[i];
}

void
kern_sval_put(struct tg_tensor *t, size_t i, double v)
{
	if (t->dtype == TG_DT_S64)	/* hostile values saturate; the shape rules refuse them */
		((int64_t *)t->data)[i] = v >= 0x1p63 ? INT64_MAX : v >= -0x1p63 ? (int64_t)v :
					  INT64_MIN;
	else
		((float *)t->data)[i] = (float)v;
}

/* A static node's value: every op shares the checks around its definition's eval. */
static int
kern_infer_static(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  struct tg_err *err)
{
	const struct kern_op_def *def = kern_ops[n->op];
	struct tg_tensor *out = &s->sval[n->out[0]];
	int rc;

	if (def->eval_in == KERN_EVAL_NOTHING)
		return 0;	/* set at load: out aliases the model's constant */
	if (n->in[0] < 0)
		return BAD(n, "first input missing");
	for (int k = 0; def->eval_in == KERN_EVAL_VALUES && k < n->n_in; k++)
		if (n->in[k] >= 0 && s->sval[n->in[k]].data == NULL)
			return BAD(n, "static input %d has no value", k);
	if (def->eval == NULL)
		return BAD(n, "cannot be evaluated at load");
	rc = def->eval(m, s, n, err);
	if (rc < 0)
		return rc;
	kern_set_shape(s, n->out[0], out->ndim, out->dims);
	return 0;
}

int
kern_shapes_infer(const struct kern_model *m, const struct tg_tensor *in_shapes,
		  struct kern_shapes *s, struct tg_err *err)
{
	for (unsigned v = 0; v < m->n_values; v++) {
		const struct kern_value *kv = &m->values[v];

		if (!kv->is_const && s->sval[v].data)
			tg_tensor_free(&s->sval[v]);
		s->known[v] = false;
		if (kv->is_const) {
			s->sval[v] = kv->cdata;	/* alias: never freed through s */
			kern_set_shape(s, (int)v, kv->cdata.ndim, kv->cdata.dims);
		}
	}
	for (unsigned i = 0; i < m->n_inputs; i++) {
		const struct tg_tensor *t = &in_shapes[i];

		if (t->ndim < 0 || t->ndim > TG_MAX_DIMS)
			return tg_err_set(err, -EINVAL, "input %u: bad rank", i);
		kern_set_shape(s, m->inputs[i], t->ndim, t->dims);
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];
		int rc;

		if (n->dead)
			continue;
		rc = n->is_static ? kern_infer_static(m, s, n, err) : kern_infer_data(m, s, n, err);
		if (rc < 0)
			return rc == -ENOMEM ? tg_err_set(err, rc, "out of memory") : rc;
	}
	return 0;
}
