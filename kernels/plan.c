/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Execution plans: the nodes of a head, a tail or a whole graph turned into oneDNN primitives
 * for one batch size. Everything is decided and allocated here; kern_plan_run() only executes.
 * Layouts: convolutions, pools and inner products pick theirs (format `any`); elementwise ops
 * keep their input's; reorders are inserted only where a consumer needs another layout.
 */
#include "kernels/kp_int.h"
#include "proto/proto.h"

#include <dnnl_debug.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs below this many FLOPs use one thread (see kp_threads_for). */
#define KP_SMALL_RUN_FLOPS 120000000ull

/* ---- small helpers ---- */

int
kp_chk(struct kern_plan *p, dnnl_status_t st, const struct kern_node *n, const char *what)
{
	if (st == dnnl_success)
		return 0;
	return tg_err_set(p->err, st == dnnl_unimplemented ? -ENOTSUP : -EIO,
			  "node \"%s\" (%s): oneDNN %s: %s", n ? n->name : "-",
			  n ? kern_op_names[n->op] : "-", what, dnnl_status2str(st));
}

static int
kp_grow(void **arr, unsigned *cap, unsigned need, size_t elem)
{
	void *q;
	unsigned nc;

	if (need <= *cap)
		return 0;
	nc = *cap ? *cap * 2 : 32;
	while (nc < need)
		nc *= 2;
	q = kern_realloc(*arr, nc * elem);
	if (q == NULL)
		return -ENOMEM;
	*arr = q;
	*cap = nc;
	return 0;
}

static int
kp_own_mem(struct kern_plan *p, dnnl_memory_t mem)
{
	if (kp_grow((void **)&p->mems, &p->cap_mems, p->n_mems + 1, sizeof(*p->mems)) < 0) {
		dnnl_memory_destroy(mem);
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	}
	p->mems[p->n_mems++] = mem;
	return 0;
}

/* A new memory of md: allocated by oneDNN (handle NULL) or over an existing buffer. */
int
kp_mem_new(struct kern_plan *p, const dnnl_memory_desc_t *md, void *handle, dnnl_memory_t *out,
	   const struct kern_node *n)
{
	dnnl_memory_t mem;
	int rc;

	rc = KP_CHK(p, dnnl_memory_create(&mem, md, p->eng, handle ? handle : DNNL_MEMORY_ALLOCATE),
		    n, "memory");
	if (rc < 0)
		return rc;
	rc = kp_own_mem(p, mem);
	if (rc < 0)
		return rc;
	*out = mem;
	return 0;
}

const dnnl_memory_desc_t *
kp_md(dnnl_memory_t mem)
{
	const dnnl_memory_desc_t *md = NULL;

	dnnl_memory_get_memory_desc(mem, &md);
	return md;
}

void *
kp_handle(dnnl_memory_t mem)
{
	void *h = NULL;

	dnnl_memory_get_data_handle(mem, &h);
	return h;
}

/* Dense row-major f32 descriptor of any rank. */
void
kp_plain_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims)
{
	dnnl_dims_t d, s;

	if (nd == 0) {	/* scalars are 1-element vectors to oneDNN */
		d[0] = 1;
		s[0] = 1;
		dnnl_memory_desc_init_by_strides(md, 1, d, dnnl_f32, s);
		return;
	}
	for (int i = nd - 1; i >= 0; i--) {
		d[i] = dims[i];
		s[i] = i == nd - 1 ? 1 : s[i + 1] * (dims[i + 1] ? dims[i + 1] : 1);
	}
	dnnl_memory_desc_init_by_strides(md, nd, d, dnnl_f32, s);
}

void
kp_any_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims)
{
	dnnl_dims_t d;

	for (int i = 0; i < nd; i++)
		d[i] = dims[i];
	dnnl_memory_desc_init_by_tag(md, nd, d, dnnl_f32, dnnl_format_tag_any);
}

static int
kp_push_step(struct kern_plan *p, dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args)
{
	if (kp_grow((void **)&p->steps, &p->cap_steps, p->n_steps + 1, sizeof(*p->steps)) < 0) {
		dnnl_primitive_destroy(prim);
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	}
	p->steps[p->n_steps].prim = prim;
	p->steps[p->n_steps].nargs = nargs;
	memcpy(p->steps[p->n_steps].args, args, (size_t)nargs * sizeof(*args));
	p->n_steps++;
	return 0;
}

/* Create a primitive from a primitive descriptor and append it with its arguments. */
static int
kp_push_pd(struct kern_plan *p, dnnl_primitive_desc_t pd, int nargs, const dnnl_exec_arg_t *args,
	   const struct kern_node *n)
{
	dnnl_primitive_t prim;
	int rc;

	rc = KP_CHK(p, dnnl_primitive_create(&prim, pd), n, "primitive");
	if (rc < 0)
		return rc;
	return kp_push_step(p, prim, nargs, args);
}

bool
kp_is_int8(const dnnl_memory_desc_t *md)
{
	return md->data_type == dnnl_s8 || md->data_type == dnnl_u8;
}

/*
 * A reorder from src to dst: appended as a step, or run once now (weights, constants).
 * v names the value both hold: crossing between f32 and int8 applies its scale.
 */
int
kp_reorder_v(struct kern_plan *p, int v, dnnl_memory_t src, dnnl_memory_t dst, bool now,
	     const struct kern_node *n)
{
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t prim;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, src }, { DNNL_ARG_TO, dst } };
	float scale = 1.f;
	int rc;

	if (v >= 0 && p->vscale[v] > 0) {
		if (kp_is_int8(kp_md(src)))
			scale *= p->vscale[v];
		if (kp_is_int8(kp_md(dst)))
			scale /= p->vscale[v];
	}
	if (scale != 1.f) {
		rc = KP_CHK(p, dnnl_primitive_attr_create(&attr), n, "attr");
		if (rc == 0)
			rc = KP_CHK(p, dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), n,
				    "reorder scale");
		if (rc < 0) {
			dnnl_primitive_attr_destroy(attr);
			return rc;
		}
	}
	rc = KP_CHK(p, dnnl_reorder_primitive_desc_create(&pd, kp_md(src), p->eng, kp_md(dst),
							   p->eng, attr), n, "reorder");
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	if (rc < 0)
		return rc;
	rc = KP_CHK(p, dnnl_primitive_create(&prim, pd), n, "reorder primitive");
	dnnl_primitive_desc_destroy(pd);
	if (rc < 0)
		return rc;
	if (!now)
		return kp_push_step(p, prim, 2, args);
	rc = KP_CHK(p, dnnl_primitive_execute(prim, p->stream, 2, args), n, "reorder run");
	if (rc == 0)
		rc = KP_CHK(p, dnnl_stream_wait(p->stream), n, "reorder wait");
	dnnl_primitive_destroy(prim);
	return rc;
}

int
kp_reorder(struct kern_plan *p, dnnl_memory_t src, dnnl_memory_t dst, bool now,
	   const struct kern_node *n)
{
	return kp_reorder_v(p, -1, src, dst, now, n);
}

/* Memory for a constant in the layout md wants (weights: reordered once, here). */
int
kp_const(struct kern_plan *p, int v, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
	 dnnl_memory_t *out, const struct kern_node *n)
{
	const struct tg_tensor *t = &p->sh.sval[v];
	dnnl_memory_t src, dst;
	int rc;

	if (t->dtype != TG_DT_F32)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): constant \"%s\" is not float",
				  n->name, kern_op_names[n->op], p->m->values[v].name);
	/* The model's constant stays read-only: the plain memory is only a reorder source. */
	rc = kp_mem_new(p, plain, t->data, &src, n);
	if (rc < 0)
		return rc;
	if (want == NULL || dnnl_memory_desc_equal(plain, want)) {
		rc = kp_mem_new(p, plain, NULL, &dst, n);
		if (rc < 0)
			return rc;
	} else {
		rc = kp_mem_new(p, want, NULL, &dst, n);
		if (rc < 0)
			return rc;
	}
	rc = kp_reorder(p, src, dst, true, n);
	*out = dst;
	return rc;
}

/* Value v in layout want: its own memory when it matches, else a reorder made once. */
int
kp_get(struct kern_plan *p, int v, const dnnl_memory_desc_t *want, dnnl_memory_t *out,
       const struct kern_node *n)
{
	dnnl_memory_t mem;
	int rc;

	if (p->vmem[v] == NULL) {
		if (p->m->values[v].is_static) {
			dnnl_memory_desc_t plain;

			kp_plain_md(&plain, p->sh.ndim[v], p->sh.dims[v]);
			return kp_const(p, v, &plain, want, out, n);
		}
		return tg_err_set(p->err, -EINVAL, "node \"%s\": input \"%s\" is not computed",
				  n->name, p->m->values[v].name);
	}
	if (want == NULL || dnnl_memory_desc_equal(kp_md(p->vmem[v]), want)) {
		*out = p->vmem[v];
		return 0;
	}
	for (unsigned i = 0; i < p->n_alts; i++)
		if (p->alts[i].v == v && dnnl_memory_desc_equal(kp_md(p->alts[i].mem), want)) {
			*out = p->alts[i].mem;
			return 0;
		}
	rc = kp_mem_new(p, want, NULL, &mem, n);
	if (rc == 0)
		rc = kp_reorder_v(p, v, p->vmem[v], mem, false, n);
	if (rc < 0)
		return rc;
	if (kp_grow((void **)&p->alts, &p->cap_alts, p->n_alts + 1, sizeof(*p->alts)) < 0)
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	p->alts[p->n_alts++] = (struct kern_alt){ v, mem };
	*out = mem;
	return 0;
}

/* Value v in f32, in the layout it has (a dequantizing reorder when it is int8). */
int
kp_get_f32(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n)
{
	dnnl_memory_desc_t md;

	if (p->vmem[v] == NULL || !kp_is_int8(kp_md(p->vmem[v])))
		return kp_get(p, v, NULL, out, n);
	md = *kp_md(p->vmem[v]);
	md.data_type = dnnl_f32;
	return kp_get(p, v, &md, out, n);
}

/* int8 representation of every calibrated value: u8 when never negative, else s8. */
static void
kp_qparams_init(struct kern_plan *p)
{
	for (unsigned v = 0; v < p->m->n_values; v++) {
		float lo, hi, amax;

		if (!p->int8 || !kern_calib_range(p->calib, (int)v, &lo, &hi))
			continue;
		amax = fmaxf(fabsf(lo), fabsf(hi));
		if (amax < 1e-12f)
			amax = 1e-12f;
		p->vdt[v] = lo >= 0 ? dnnl_u8 : dnnl_s8;
		p->vscale[v] = lo >= 0 ? amax / 255.f : amax / 127.f;
	}
}

bool
kp_qparams(const struct kern_plan *p, int v, dnnl_data_type_t *dt, float *scale)
{
	if (!p->int8 || p->vscale[v] == 0.f)
		return false;
	*dt = p->vdt[v];
	*scale = p->vscale[v];
	return true;
}

int
kp_get_plain(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n)
{
	dnnl_memory_desc_t md;

	kp_plain_md(&md, p->sh.ndim[v], p->sh.dims[v]);
	return kp_get(p, v, &md, out, n);
}

/* Create the destination from the pd's choice and record it as value v's memory. */
static int
kp_dst(struct kern_plan *p, dnnl_primitive_desc_t pd, int v, dnnl_memory_t *out,
       const struct kern_node *n)
{
	const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
	int rc = kp_mem_new(p, md, NULL, out, n);

	if (rc == 0)
		p->vmem[v] = *out;
	return rc;
}

/* Value v in f32 for a primitive that takes any layout: its own memory's, plain if none. */
int
kp_get_src(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n)
{
	return p->vmem[v] == NULL ? kp_get_plain(p, v, out, n) : kp_get_f32(p, v, out, n);
}

/* ---- the end every builder shares ---- */

int
kp_prim_desc(struct kern_plan *p, struct kp_prim *pr, int rc, const void *op_desc,
	     const struct kern_node *n, const char *what)
{
	if (rc == 0)
		rc = KP_CHK(p, dnnl_primitive_desc_create(&pr->pd, op_desc, pr->attr, p->eng, NULL),
			    n, what);
	return rc;
}

const dnnl_memory_desc_t *
kp_prim_md(const struct kp_prim *pr, dnnl_query_t what)
{
	return dnnl_primitive_desc_query_md(pr->pd, what, 0);
}

int
kp_prim_end(struct kern_plan *p, struct kp_prim *pr, int rc, int y, const struct kern_node *n)
{
	dnnl_memory_t dst;

	if (rc == 0 && pr->pd == NULL)
		rc = tg_err_set(p->err, -EINVAL, "node \"%s\": no primitive", n->name);
	if (rc == 0 && y >= 0) {
		rc = kp_dst(p, pr->pd, y, &dst, n);
		if (rc == 0)
			kp_arg(pr, DNNL_ARG_DST, dst);
	}
	if (rc == 0)
		rc = kp_push_pd(p, pr->pd, pr->nargs, pr->args, n);
	if (pr->pd)
		dnnl_primitive_desc_destroy(pr->pd);
	if (pr->attr)
		dnnl_primitive_attr_destroy(pr->attr);
	pr->pd = NULL;
	pr->attr = NULL;
	return rc;
}

/* ---- post-op fusion: Conv/Gemm/binary followed by activations (and Conv by one Add) ---- */


/* The oneDNN eltwise a node is, with its parameters; false for other ops, or when a
 * parameter is not known at plan time. */
bool
kp_eltwise_params(const struct kern_plan *p, const struct kern_node *n, struct kern_elt *e)
{
	const struct kern_op_def *d = kern_ops[n->op];

	return d->elt != NULL && d->elt(&p->sh, n, e);
}

int
kp_append_eltwise(const struct kern_plan *p, dnnl_post_ops_t po, const struct kern_node *n)
{
	struct kern_elt e;

	if (!kp_eltwise_params(p, n, &e))
		return -EINVAL;
	if (KP_DNNL(dnnl_post_ops_append_eltwise(po, 1.f, (dnnl_alg_kind_t)e.alg, e.alpha,
						 e.beta)) != dnnl_success)
		return -EIO;
	if (e.clip01 && KP_DNNL(dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_clip_v2, 0.f,
							     1.f)) != dnnl_success)
		return -EIO;
	return 0;
}

bool
kp_same_shape(const struct kern_plan *p, int a, int b)
{
	return p->sh.ndim[a] == p->sh.ndim[b] &&
	       memcmp(p->sh.dims[a], p->sh.dims[b], (size_t)p->sh.ndim[a] * sizeof(int64_t)) == 0;
}

/* The single active data reader of v, or -1. */
static int
kp_only_reader(const struct kern_plan *p, int v)
{
	const struct kern_model *m = p->m;

	if (p->ncons[v] != 1 || p->is_pout[v])
		return -1;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];

		if (!p->active[i] || n->is_static || n->dead)
			continue;
		for (int k = 0; k < n->n_in; k++)
			if (n->in[k] == v)
				return (int)i;
	}
	return -1;
}

/* head_of[]: nodes already fused into an earlier head are not taken twice. */
static void
kp_chain_build(const struct kern_plan *p, const struct kern_node *head, bool allow_sum,
	       const int *head_of, struct kp_chain *c)
{
	int cur = head->out[0];

	c->n = 0;
	c->sum_v = -1;
	while (c->n < 6) {
		int r = kp_only_reader(p, cur);
		const struct kern_node *n;
		struct kern_elt e;

		if (r < 0 || head_of[r] >= 0)
			break;
		n = &p->m->nodes[r];
		if (kp_eltwise_params(p, n, &e)) {
			/* ok */
		} else if (n->op == KOP_ADD && allow_sum && c->sum_v < 0 && n->in[0] >= 0 &&
			   n->in[1] >= 0 && n->in[0] != n->in[1]) {
			int other = n->in[0] == cur ? n->in[1] : n->in[0];

			if (p->m->values[other].is_static || !kp_same_shape(p, other, cur))
				break;
			c->sum_v = other;
		} else {
			break;
		}
		c->nodes[c->n++] = n;
		cur = n->out[0];
	}
	c->out_v = cur;
}


const struct kp_quant kp_quant_f32 = { 1.f, 1.f, dnnl_f32, dnnl_f32 };

int
kp_chain_attr(struct kern_plan *p, const struct kp_chain *c, dnnl_primitive_attr_t *attr,
	      const struct kern_node *head, const struct kp_quant *q)
{
	dnnl_post_ops_t po;
	int rc = 0;

	*attr = NULL;
	rc = KP_CHK(p, dnnl_primitive_attr_create(attr), head, "attr");
	if (rc == 0)
		rc = KP_CHK(p, dnnl_primitive_attr_set_scratchpad_mode(*attr,
				dnnl_scratchpad_mode_library), head, "scratchpad");
	if (rc < 0)
		return rc;
	if (c->n == 0 && q->dst_scale == 1.f)
		return 0;
	rc = KP_CHK(p, dnnl_post_ops_create(&po), head, "post-ops");
	if (rc < 0)
		return rc;
	for (int i = 0; i < c->n && rc == 0; i++) {
		if (c->nodes[i]->op == KOP_ADD && q->sum_dt != q->dst_dt)
			rc = KP_CHK(p, dnnl_post_ops_append_sum_v2(po, q->sum_scale, q->sum_dt), head,
				    "sum post-op");
		else if (c->nodes[i]->op == KOP_ADD)
			rc = KP_CHK(p, dnnl_post_ops_append_sum(po, q->sum_scale), head, "sum post-op");
		else if (kp_append_eltwise(p, po, c->nodes[i]) < 0)
			rc = tg_err_set(p->err, -EINVAL, "node \"%s\": cannot fuse",
					c->nodes[i]->name);
	}
	/* Post-ops run in real units; the last step scales into the int8 destination. */
	if (rc == 0 && q->dst_scale != 1.f)
		rc = KP_CHK(p, dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_linear,
							    q->dst_scale, 0.f), head, "dst scale");
	if (rc == 0)
		rc = KP_CHK(p, dnnl_primitive_attr_set_post_ops(*attr, po), head, "set post-ops");
	dnnl_post_ops_destroy(po);
	return rc;
}

/* ---- builders, one per op family ---- */

void
kp_dims(dnnl_dims_t d, const int64_t *src, int n)
{
	for (int i = 0; i < n; i++)
		d[i] = src[i];
}

/* Shape of v padded with leading 1s to rank nd (numpy broadcasting). */
void
kp_expand_dims(const struct kern_plan *p, int v, int nd, int64_t *out)
{
	int vn = p->sh.ndim[v];

	for (int i = 0; i < nd; i++)
		out[i] = i < nd - vn ? 1 : p->sh.dims[v][i - (nd - vn)];
}

/* Value v in plain layout, seen at rank nd with dims d (leading 1s added): same bytes. */
int
kp_get_plain_as(struct kern_plan *p, int v, int nd, const int64_t *d, dnnl_memory_desc_t *md,
		dnnl_memory_t *out, const struct kern_node *n)
{
	dnnl_memory_desc_t pl;
	dnnl_memory_t tmp;
	int rc;

	kp_plain_md(&pl, p->sh.ndim[v], p->sh.dims[v]);
	rc = kp_get(p, v, &pl, &tmp, n);
	if (rc < 0)
		return rc;
	kp_plain_md(md, nd, d);
	return kp_mem_new(p, md, kp_handle(tmp), out, n);
}

/* Node n's primitives, by its op's definition; c: the followers fused into it. */
static int
kp_build_node(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_op_def *d = kern_ops[n->op];

	if (d->build == NULL)
		return tg_err_set(p->err, -ENOTSUP, "node \"%s\" (%s): not executable", n->name,
				  kern_op_names[n->op]);
	return d->build(p, n, c);
}

static int
kp_build_all(struct kern_plan *p)
{
	const struct kern_model *m = p->m;
	int *head_of = kern_malloc(m->n_nodes * sizeof(int));	/* fused node -> its head */
	struct kp_chain *chains = kern_calloc(m->n_nodes, sizeof(*chains));
	int rc = 0;

	if (head_of == NULL || chains == NULL) {
		rc = tg_err_set(p->err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < m->n_nodes; i++)
		head_of[i] = -1;
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];

		chains[i].out_v = n->out[0];
		chains[i].sum_v = -1;
		if (!p->active[i] || n->is_static || n->dead || head_of[i] >= 0 ||
		    !kern_ops[n->op]->fuses)
			continue;
		kp_chain_build(p, n, kern_ops[n->op]->fuses_sum, head_of, &chains[i]);
		for (int k = 0; k < chains[i].n; k++)
			head_of[chains[i].nodes[k] - m->nodes] = (int)i;
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		int h = head_of[i] >= 0 ? head_of[i] : (int)i;

		p->epos[i] = chains[h].n ? (int)(chains[h].nodes[chains[h].n - 1] - m->nodes) : h;
	}
	for (unsigned i = 0; i < m->n_nodes && rc == 0; i++) {
		const struct kern_node *n = &m->nodes[i];

		if (!p->active[i] || n->is_static || n->dead)
			continue;
		if (head_of[i] >= 0) {
			const struct kp_chain *c = &chains[head_of[i]];

			/* Emit the fused head where its last member stood: by then the sum
			 * operand and every other input exist. */
			if (c->nodes[c->n - 1] == n)
				rc = kp_build_node(p, &m->nodes[head_of[i]], c);
			continue;
		}
		if (chains[i].n > 0)
			continue;	/* emitted at its last member */
		rc = kp_build_node(p, n, &chains[i]);
	}
out:
	free(head_of);
	free(chains);
	return rc;
}

/* ---- plan life cycle ---- */

static int
kp_select(struct kern_plan *p, const struct kern_plan_spec *spec)
{
	const struct kern_model *m = p->m;
	const uint8_t *tail = NULL;

	const uint8_t *rest = NULL;	/* SEGMENT: the tail after split_to */
	bool seg = spec->kind == KERN_PLAN_SEGMENT;
	int to_v = -1;

	if (spec->kind != KERN_PLAN_GRAPH) {
		if (spec->split >= m->n_splits)
			return tg_err_set(p->err, -EINVAL, "split %u: the model has %u", spec->split,
					  m->n_splits);
		tail = m->tail_mask[spec->split];
	}
	if (seg) {
		if (spec->split_to <= spec->split || spec->split_to >= m->n_splits)
			return tg_err_set(p->err, -EINVAL, "segment %u to %u: not a later split",
					  spec->split, spec->split_to);
		rest = m->tail_mask[spec->split_to];
		to_v = m->split_value[spec->split_to];
	}
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];

		if (n->dead || n->is_static)
			continue;
		p->active[i] = spec->kind == KERN_PLAN_GRAPH ? 1 :
			       spec->kind == KERN_PLAN_TAIL ? tail[i] :
			       seg ? tail[i] && !rest[i] : !tail[i];
		if (!p->active[i])
			continue;
		for (int k = 0; k < n->n_in; k++)
			if (n->in[k] >= 0 && !m->values[n->in[k]].is_static)
				p->ncons[n->in[k]]++;
	}
	/* Inputs and outputs. */
	if (spec->kind == KERN_PLAN_TAIL || seg) {
		p->in_v[p->n_in++] = m->split_value[spec->split];
	} else {
		for (unsigned i = 0; i < m->n_inputs && i < 8; i++)
			p->in_v[p->n_in++] = m->inputs[i];
	}
	p->out_v = kern_calloc(m->n_values + 1, sizeof(int));
	p->out_mem = kern_calloc(m->n_values + 1, sizeof(dnnl_memory_t));
	if (p->out_v == NULL || p->out_mem == NULL)
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	if (spec->kind == KERN_PLAN_HEAD)
		to_v = m->split_value[spec->split];
	if (to_v >= 0)
		p->out_v[p->n_out++] = to_v;
	for (unsigned o = 0; o < m->n_outputs; o++) {
		int v = m->outputs[o], pr = m->values[v].producer;
		bool in_plan = pr >= 0 && p->active[pr];

		if (v == to_v)
			continue;
		if (in_plan)
			p->out_v[p->n_out++] = v;
	}
	if (p->expose_all) {	/* every other computed tensor too, after the exits */
		for (unsigned i = 0; i < m->n_nodes; i++) {
			int v = m->nodes[i].out[0];

			if (p->active[i] && !m->nodes[i].is_static && !m->nodes[i].dead &&
			    !m->values[v].is_output)
				p->out_v[p->n_out++] = v;
		}
	}
	for (unsigned o = 0; o < p->n_out; o++)
		p->is_pout[p->out_v[o]] = 1;
	return 0;
}

static int
kp_input_shapes(struct kern_plan *p, const struct kern_plan_spec *spec, struct tg_tensor *in)
{
	const struct kern_model *m = p->m;

	for (unsigned i = 0; i < m->n_inputs; i++) {
		const struct kern_value *v = &m->values[m->inputs[i]];

		if (spec->kind == KERN_PLAN_GRAPH) {
			if (spec->input_shapes == NULL || spec->n_input_shapes != m->n_inputs)
				return tg_err_set(p->err, -EINVAL, "graph plan: %u input shapes for %u inputs",
						  spec->n_input_shapes, m->n_inputs);
			in[i] = spec->input_shapes[i];
			in[i].data = NULL;
			if (in[i].ndim != v->in_ndim)
				return tg_err_set(p->err, -EINVAL, "input \"%s\": rank %d, model has %d",
						  v->name, in[i].ndim, v->in_ndim);
			for (int d = 1; d < in[i].ndim; d++)
				if (in[i].dims[d] != v->in_dims[d])
					return tg_err_set(p->err, -EINVAL,
							  "input \"%s\": dim %d is %lld, model has %lld",
							  v->name, d, (long long)in[i].dims[d],
							  (long long)v->in_dims[d]);
		} else {
			in[i].dtype = TG_DT_F32;
			in[i].ndim = v->in_ndim;
			memcpy(in[i].dims, v->in_dims, sizeof(in[i].dims));
			if (in[i].ndim > 0)
				in[i].dims[0] = spec->batch;
		}
	}
	return 0;
}

/*
 * Threads for a plan: one when a run is small and OpenMP's threads sleep between parallel
 * regions (OMP_WAIT_POLICY=PASSIVE, which the gateway and tools choose: see
 * kern_prefer_passive_wait). Each region then pays a futex wake-up per thread. Measured on
 * the shipped model (2 cores, quiet, passive): the whole model at batch 1 (89 MFLOP) runs
 * 1,349 images/s on one thread and 1,019 on two; at batch 2 (178 MFLOP) two win; the tail
 * from split 6 likewise (30 MFLOP: 3,350 vs 2,114; 119 MFLOP: 3,846 vs 4,424). Spinning
 * threads (ACTIVE) make two win even at batch 1 (2,385 images/s), so then all are used.
 */
static int
kp_threads_for(const struct kern_plan *p)
{
	const char *wait = getenv("OMP_WAIT_POLICY");
	uint64_t work = 0;
	int most = omp_get_max_threads();

	if (most < 1)
		return 1;
	if (wait == NULL || strcasecmp(wait, "passive") != 0)
		return most;

	for (unsigned i = 0; i < p->m->n_nodes; i++)
		if (p->active[i])
			work += p->m->nodes[i].flops;
	return work * p->batch < KP_SMALL_RUN_FLOPS ? 1 : most;
}

static int
kp_create(const struct kern_model *m, const struct kern_plan_spec *spec, bool expose_all,
	  struct kern_plan **out, struct tg_err *err)
{
	struct kern_plan *p;
	struct tg_tensor *in = NULL;
	int rc, saved_nthr = 0;

	if (spec->kind != KERN_PLAN_GRAPH && (spec->batch < 1 || spec->batch > (1u << 16)))
		return tg_err_set(err, -EINVAL, "batch %u out of range", spec->batch);
	p = kern_calloc(1, sizeof(*p));
	if (p == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	p->m = m;
	p->err = err;
	p->expose_all = expose_all;
	p->kind = spec->kind;
	p->batch = spec->batch;
	p->active = kern_calloc(m->n_nodes, 1);
	p->ncons = kern_calloc(m->n_values, sizeof(unsigned));
	p->is_pout = kern_calloc(m->n_values, 1);
	p->vmem = kern_calloc(m->n_values, sizeof(dnnl_memory_t));
	p->epos = kern_calloc(m->n_nodes, sizeof(int));
	p->vscale = kern_calloc(m->n_values, sizeof(float));
	p->vdt = kern_calloc(m->n_values, sizeof(dnnl_data_type_t));
	p->int8 = spec->precision == KERN_PREC_INT8;
	p->calib = spec->calib;
	in = kern_calloc(m->n_inputs, sizeof(*in));
	if (!p->active || !p->ncons || !p->is_pout || !p->vmem || !p->vscale || !p->vdt ||
	    !p->epos || !in ||
	    kern_shapes_alloc(m, &p->sh) < 0) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = kp_input_shapes(p, spec, in);
	if (rc == 0)
		rc = kern_shapes_infer(m, in, &p->sh, err);
	if (rc == 0 && p->int8 && p->calib == NULL)
		rc = tg_err_set(err, -EINVAL, "int8 plan without a calibration");
	if (rc == 0)
		rc = kp_select(p, spec);
	if (rc < 0)
		goto fail;
	kp_qparams_init(p);
	if (spec->kind == KERN_PLAN_GRAPH)
		p->batch = m->values[m->inputs[0]].in_ndim ? (unsigned)p->sh.dims[m->inputs[0]][0] : 1;
	p->nthr = kp_threads_for(p);
	saved_nthr = omp_get_max_threads();
	omp_set_num_threads(p->nthr);	/* kernels pick their partitioning when created */
	rc = KP_CHK(p, dnnl_engine_create(&p->eng, dnnl_cpu, 0), NULL, "engine");
	if (rc == 0)
		rc = KP_CHK(p, dnnl_stream_create(&p->stream, p->eng, dnnl_stream_default_flags), NULL,
			    "stream");
	for (unsigned i = 0; rc == 0 && i < p->n_in; i++) {
		dnnl_memory_desc_t md;
		int v = p->in_v[i];

		kp_plain_md(&md, p->sh.ndim[v], p->sh.dims[v]);
		rc = kp_mem_new(p, &md, NULL, &p->in_mem[i], NULL);
		p->vmem[v] = p->in_mem[i];
	}
	if (rc == 0)
		rc = kp_build_all(p);
	for (unsigned o = 0; rc == 0 && o < p->n_out; o++)
		rc = kp_get_plain(p, p->out_v[o], &p->out_mem[o], NULL);
	if (saved_nthr > 0)
		omp_set_num_threads(saved_nthr);
	if (rc < 0)
		goto fail;
	free(in);
	p->err = NULL;
	*out = p;
	return 0;

fail:
	free(in);
	kern_plan_free(p);
	return rc;
}

int
kern_plan_create(const struct kern_model *m, const struct kern_plan_spec *spec,
		 struct kern_plan **out, struct tg_err *err)
{
	return kp_create(m, spec, false, out, err);
}

int
kern_plan_create_all(const struct kern_model *m, const struct kern_plan_spec *spec,
		     struct kern_plan **out, struct tg_err *err)
{
	return kp_create(m, spec, true, out, err);
}

int
kern_plan_output_value(const struct kern_plan *p, unsigned i)
{
	return i < p->n_out ? p->out_v[i] : -1;
}

void
kern_plan_free(struct kern_plan *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->n_steps; i++)
		dnnl_primitive_destroy(p->steps[i].prim);
	for (unsigned i = 0; i < p->n_mems; i++)
		dnnl_memory_destroy(p->mems[i]);
	if (p->stream)
		dnnl_stream_destroy(p->stream);
	if (p->eng)
		dnnl_engine_destroy(p->eng);
	if (p->sh.ndim)
		kern_shapes_free(p->m, &p->sh);
	free(p->steps);
	free(p->mems);
	free(p->alts);
	free(p->active);
	free(p->ncons);
	free(p->is_pout);
	free(p->vmem);
	free(p->epos);
	free(p->vscale);
	free(p->vdt);
	free(p->out_v);
	free(p->out_mem);
	free(p);
}

unsigned
kern_plan_n_inputs(const struct kern_plan *p)
{
	return p->n_in;
}

unsigned
kern_plan_n_outputs(const struct kern_plan *p)
{
	return p->n_out;
}

static void
kp_view(const struct kern_plan *p, int v, dnnl_memory_t mem, struct tg_tensor *view)
{
	memset(view, 0, sizeof(*view));
	view->dtype = TG_DT_F32;
	view->ndim = p->sh.ndim[v];
	memcpy(view->dims, p->sh.dims[v], sizeof(view->dims));
	view->data = kp_handle(mem);
}

int
kern_plan_input(struct kern_plan *p, unsigned i, struct tg_tensor *view)
{
	if (i >= p->n_in)
		return -EINVAL;
	kp_view(p, p->in_v[i], p->in_mem[i], view);
	return 0;
}

int
kern_plan_output(const struct kern_plan *p, unsigned i, struct tg_tensor *view,
		 const char **name_out)
{
	if (i >= p->n_out)
		return -EINVAL;
	kp_view(p, p->out_v[i], p->out_mem[i], view);
	if (name_out)
		*name_out = p->m->values[p->out_v[i]].name;
	return 0;
}

int
kern_plan_run(struct kern_plan *p)
{
	int cur = omp_get_max_threads(), rc = 0;

	/* The calling thread's OpenMP setting: a worker thread runs small and large plans. */
	if (cur != p->nthr)
		omp_set_num_threads(p->nthr);
	for (unsigned i = 0; i < p->n_steps && rc == 0; i++)
		if (dnnl_primitive_execute(p->steps[i].prim, p->stream, p->steps[i].nargs,
					   p->steps[i].args) != dnnl_success)
			rc = -EIO;
	if (rc == 0 && dnnl_stream_wait(p->stream) != dnnl_success)
		rc = -EIO;
	if (cur != p->nthr)
		omp_set_num_threads(cur);
	return rc;
}

void
kern_prefer_passive_wait(char **argv)
{
	if (getenv("OMP_WAIT_POLICY") != NULL)
		return;	/* the operator chose */
	if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
		execv("/proc/self/exe", argv);
}

void
kern_set_threads(unsigned n)
{
	omp_set_num_threads(n ? (int)n : omp_get_num_procs());
}

int
kern_plan_load_rows(struct kern_plan *p, unsigned i, unsigned row, unsigned n,
		    enum tg_dtype dtype, const void *src, float scale, int32_t zero_point)
{
	struct tg_tensor in;
	size_t per, k;
	float *dst;

	if (i >= p->n_in)
		return -EINVAL;
	kp_view(p, p->in_v[i], p->in_mem[i], &in);
	if (in.ndim < 1 || row > (unsigned)in.dims[0] || n > (unsigned)in.dims[0] - row)
		return -EINVAL;
	per = tg_tensor_numel(&in) / (size_t)in.dims[0];
	dst = (float *)in.data + (size_t)row * per;
	switch (dtype) {
	case TG_DT_F32:
		memcpy(dst, src, (size_t)n * per * sizeof(float));
		return 0;
	case TG_DT_F16:
		for (k = 0; k < (size_t)n * per; k++)
			dst[k] = proto_f16_to_f32(((const uint16_t *)src)[k]);
		return 0;
	case TG_DT_S8:
		for (k = 0; k < (size_t)n * per; k++)
			dst[k] = scale * (float)(((const int8_t *)src)[k] - zero_point);
		return 0;
	case TG_DT_U8:
		for (k = 0; k < (size_t)n * per; k++)
			dst[k] = scale * (float)(((const uint8_t *)src)[k] - zero_point);
		return 0;
	default:
		return -EINVAL;
	}
}
