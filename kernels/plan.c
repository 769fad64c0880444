/*
 * Execution plans: the nodes of a head, a tail or a whole graph turned into oneDNN primitives
 * for one batch size. Everything is decided and allocated here; kern_plan_run() only executes.
 * Layouts: convolutions, pools and inner products pick theirs (format `any`); elementwise ops
 * keep their input's; reorders are inserted only where a consumer needs another layout.
 */
#include "kernels/kern_int.h"

#include <dnnl.h>
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

struct kern_step {
	dnnl_primitive_t prim;
	int nargs;
	dnnl_exec_arg_t args[8];
};

/* A value in another layout than its producer's, made by a reorder step. */
struct kern_alt {
	int v;
	dnnl_memory_t mem;
};

struct kern_plan {
	const struct kern_model *m;
	enum kern_plan_kind kind;
	unsigned batch;
	int nthr;			/* OpenMP threads it was built for and runs with */
	dnnl_engine_t eng;
	dnnl_stream_t stream;
	struct kern_shapes sh;
	uint8_t *active;		/* [n_nodes] node runs in this plan */
	unsigned *ncons;		/* [n_values] readers among active data nodes */
	uint8_t *is_pout;		/* [n_values] plan output */
	dnnl_memory_t *vmem;		/* [n_values] each value's memory, producer's layout */
	struct kern_step *steps;
	unsigned n_steps, cap_steps;
	dnnl_memory_t *mems;		/* every memory created, destroyed at free */
	unsigned n_mems, cap_mems;
	struct kern_alt *alts;
	unsigned n_alts, cap_alts;
	int in_v[8];			/* plan inputs (values) */
	dnnl_memory_t in_mem[8];
	unsigned n_in;
	int *out_v;			/* plan outputs (values) */
	dnnl_memory_t *out_mem;		/* plain-layout memory of each output */
	unsigned n_out;
	bool int8;			/* KERN_PREC_INT8 */
	const struct kern_calib *calib;
	float *vscale;			/* [n_values] real = vscale * q in v's int8 memories; 0: f32 only */
	dnnl_data_type_t *vdt;		/* [n_values] v's int8 type (u8 when never negative) */
	bool expose_all;		/* calibration: every tensor is an output */
	int *epos;			/* [n_nodes] where each node's primitive runs (fused: its
					 * chain's last member), to tell when a buffer is free */
	struct tg_err *err;		/* during build only */
};

/* Runs below this many FLOPs use one thread (see kp_threads_for). */
#define KP_SMALL_RUN_FLOPS 120000000ull

/* ---- small helpers ---- */

static int
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
	q = realloc(*arr, nc * elem);
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
static int
kp_mem_new(struct kern_plan *p, const dnnl_memory_desc_t *md, void *handle, dnnl_memory_t *out,
	   const struct kern_node *n)
{
	dnnl_memory_t mem;
	int rc;

	rc = kp_chk(p, dnnl_memory_create(&mem, md, p->eng, handle ? handle : DNNL_MEMORY_ALLOCATE),
		    n, "memory");
	if (rc < 0)
		return rc;
	rc = kp_own_mem(p, mem);
	if (rc < 0)
		return rc;
	*out = mem;
	return 0;
}

static const dnnl_memory_desc_t *
kp_md(dnnl_memory_t mem)
{
	const dnnl_memory_desc_t *md = NULL;

	dnnl_memory_get_memory_desc(mem, &md);
	return md;
}

static void *
kp_handle(dnnl_memory_t mem)
{
	void *h = NULL;

	dnnl_memory_get_data_handle(mem, &h);
	return h;
}

/* Dense row-major f32 descriptor of any rank. */
static void
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

static void
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

	rc = kp_chk(p, dnnl_primitive_create(&prim, pd), n, "primitive");
	if (rc < 0)
		return rc;
	return kp_push_step(p, prim, nargs, args);
}

static bool
kp_is_int8(const dnnl_memory_desc_t *md)
{
	return md->data_type == dnnl_s8 || md->data_type == dnnl_u8;
}

/*
 * A reorder from src to dst: appended as a step, or run once now (weights, constants).
 * v names the value both hold: crossing between f32 and int8 applies its scale.
 */
static int
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
		rc = kp_chk(p, dnnl_primitive_attr_create(&attr), n, "attr");
		if (rc == 0)
			rc = kp_chk(p, dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), n,
				    "reorder scale");
		if (rc < 0) {
			dnnl_primitive_attr_destroy(attr);
			return rc;
		}
	}
	rc = kp_chk(p, dnnl_reorder_primitive_desc_create(&pd, kp_md(src), p->eng, kp_md(dst),
							   p->eng, attr), n, "reorder");
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	if (rc < 0)
		return rc;
	rc = kp_chk(p, dnnl_primitive_create(&prim, pd), n, "reorder primitive");
	dnnl_primitive_desc_destroy(pd);
	if (rc < 0)
		return rc;
	if (!now)
		return kp_push_step(p, prim, 2, args);
	rc = kp_chk(p, dnnl_primitive_execute(prim, p->stream, 2, args), n, "reorder run");
	if (rc == 0)
		rc = kp_chk(p, dnnl_stream_wait(p->stream), n, "reorder wait");
	dnnl_primitive_destroy(prim);
	return rc;
}

static int
kp_reorder(struct kern_plan *p, dnnl_memory_t src, dnnl_memory_t dst, bool now,
	   const struct kern_node *n)
{
	return kp_reorder_v(p, -1, src, dst, now, n);
}

/* Memory for a constant in the layout md wants (weights: reordered once, here). */
static int
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
static int
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
static int
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

static bool
kp_qparams(const struct kern_plan *p, int v, dnnl_data_type_t *dt, float *scale)
{
	if (!p->int8 || p->vscale[v] == 0.f)
		return false;
	*dt = p->vdt[v];
	*scale = p->vscale[v];
	return true;
}

static int
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
static int
kp_get_src(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n)
{
	return p->vmem[v] == NULL ? kp_get_plain(p, v, out, n) : kp_get_f32(p, v, out, n);
}

/*
 * The end of a one-source builder: the primitive of op_desc (when rc, the result of
 * building it, is 0), its destination as y's memory, run reading src; the pd released.
 */
static int
kp_push_src_dst(struct kern_plan *p, int rc, const void *op_desc, dnnl_memory_t src, int y,
		const struct kern_node *n, const char *what)
{
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t dst;

	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, op_desc, NULL, p->eng, NULL), n, what);
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 2, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/* ---- post-op fusion: Conv/Gemm/binary followed by activations (and Conv by one Add) ---- */

struct kp_chain {
	const struct kern_node *nodes[8];
	int n;
	int sum_v;			/* Add's other operand, -1 if none */
	int out_v;			/* value the fused primitive produces */
};

/* The oneDNN eltwise a node is, with its parameters; false for other ops, or when a
 * parameter is not known at plan time. */
static bool
kp_eltwise_params(const struct kern_plan *p, const struct kern_node *n, struct kern_elt *e)
{
	const struct kern_op_def *d = kern_ops[n->op];

	return d->elt != NULL && d->elt(&p->sh, n, e);
}

static int
kp_append_eltwise(const struct kern_plan *p, dnnl_post_ops_t po, const struct kern_node *n)
{
	struct kern_elt e;

	if (!kp_eltwise_params(p, n, &e))
		return -EINVAL;
	if (dnnl_post_ops_append_eltwise(po, 1.f, (dnnl_alg_kind_t)e.alg, e.alpha, e.beta) !=
	    dnnl_success)
		return -EIO;
	if (e.clip01 &&
	    dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_clip_v2, 0.f, 1.f) != dnnl_success)
		return -EIO;
	return 0;
}

static bool
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

/* How an int8 primitive's fused chain meets its data types: see kp_build_conv(). */
struct kp_quant {
	float dst_scale;		/* 1 / scale of an int8 dst, 1 for f32 */
	float sum_scale;		/* the residual's scale into real units */
	dnnl_data_type_t sum_dt;	/* residual's data type as placed in dst */
	dnnl_data_type_t dst_dt;
};

static const struct kp_quant kp_quant_f32 = { 1.f, 1.f, dnnl_f32, dnnl_f32 };

static int
kp_chain_attr(struct kern_plan *p, const struct kp_chain *c, dnnl_primitive_attr_t *attr,
	      const struct kern_node *head, const struct kp_quant *q)
{
	dnnl_post_ops_t po;
	int rc = 0;

	*attr = NULL;
	rc = kp_chk(p, dnnl_primitive_attr_create(attr), head, "attr");
	if (rc < 0)
		return rc;
	dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_library);
	if (c->n == 0 && q->dst_scale == 1.f)
		return 0;
	rc = kp_chk(p, dnnl_post_ops_create(&po), head, "post-ops");
	if (rc < 0)
		return rc;
	for (int i = 0; i < c->n && rc == 0; i++) {
		if (c->nodes[i]->op == KOP_ADD && q->sum_dt != q->dst_dt)
			rc = kp_chk(p, dnnl_post_ops_append_sum_v2(po, q->sum_scale, q->sum_dt), head,
				    "sum post-op");
		else if (c->nodes[i]->op == KOP_ADD)
			rc = kp_chk(p, dnnl_post_ops_append_sum(po, q->sum_scale), head, "sum post-op");
		else if (kp_append_eltwise(p, po, c->nodes[i]) < 0)
			rc = tg_err_set(p->err, -EINVAL, "node \"%s\": cannot fuse",
					c->nodes[i]->name);
	}
	/* Post-ops run in real units; the last step scales into the int8 destination. */
	if (rc == 0 && q->dst_scale != 1.f)
		rc = kp_chk(p, dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_linear,
							    q->dst_scale, 0.f), head, "dst scale");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_attr_set_post_ops(*attr, po), head, "set post-ops");
	dnnl_post_ops_destroy(po);
	return rc;
}

/* ---- builders, one per op family ---- */

static void
kp_dims(dnnl_dims_t d, const int64_t *src, int n)
{
	for (int i = 0; i < n; i++)
		d[i] = src[i];
}

/*
 * Per-output-channel symmetric s8 weights: w = ws[oc] * q. Returns the scales (caller frees)
 * and fills q (oc * per values).
 */
static float *
kp_quantize_weights(const float *w, size_t oc, size_t per, int8_t *q)
{
	float *ws = malloc(oc * sizeof(float));

	if (ws == NULL)
		return NULL;
	for (size_t o = 0; o < oc; o++) {
		float amax = 0.f;

		for (size_t k = 0; k < per; k++)
			amax = fmaxf(amax, fabsf(w[o * per + k]));
		ws[o] = amax > 0 ? amax / 127.f : 1.f;
		for (size_t k = 0; k < per; k++)
			q[o * per + k] = (int8_t)lrintf(w[o * per + k] / ws[o]);
	}
	return ws;
}

/* Weights (and bias) of an int8 primitive: quantized, reordered into want, bias rescaled. */
static int
kp_int8_weights(struct kern_plan *p, int w, int b, const dnnl_memory_desc_t *w_plain_f32,
		const dnnl_memory_desc_t *want, float src_scale, size_t oc, float *out_scales,
		dnnl_memory_t *wm, dnnl_memory_t *bm, const struct kern_node *n)
{
	const struct tg_tensor *wt = &p->sh.sval[w];
	size_t per = tg_tensor_numel(wt) / oc;
	int8_t *q = malloc(tg_tensor_numel(wt));
	dnnl_memory_desc_t qmd = *w_plain_f32, bmd;
	dnnl_memory_t tmp;
	float *ws = NULL;
	int rc;

	if (q == NULL || (ws = kp_quantize_weights(wt->data, oc, per, q)) == NULL) {
		free(q);
		return tg_err_set(p->err, -ENOMEM, "out of memory");
	}
	qmd.data_type = dnnl_s8;
	rc = kp_chk(p, dnnl_memory_create(&tmp, &qmd, p->eng, q), n, "memory");
	if (rc == 0)
		rc = kp_mem_new(p, want, NULL, wm, n);
	if (rc == 0)
		rc = kp_reorder(p, tmp, *wm, true, n);
	if (rc == 0 || tmp)
		dnnl_memory_destroy(tmp);
	for (size_t o = 0; o < oc; o++)
		out_scales[o] = src_scale * ws[o];
	if (rc == 0 && b >= 0) {
		/* int8 primitives add the bias before the output scale: divide it in. */
		int64_t boc = (int64_t)oc;

		kp_plain_md(&bmd, 1, &boc);
		rc = kp_mem_new(p, &bmd, NULL, bm, n);
		if (rc == 0) {
			float *bd = kp_handle(*bm);
			const float *bs = p->sh.sval[b].data;
			size_t nb = tg_tensor_numel(&p->sh.sval[b]);

			for (size_t o = 0; o < oc; o++)
				bd[o] = (nb == 1 ? bs[0] : bs[o]) / out_scales[o];
		}
	}
	free(q);
	free(ws);
	return rc;
}

/*
 * The data types of a Conv or Gemm: int8 when the plan is int8 and both the input and the
 * fused chain's output have a calibrated range (and the output is not a plan output, which
 * is f32), with the residual of a fused Add placed in dst in its own int8 type.
 */
static bool
kp_conv_quant(struct kern_plan *p, int x, const struct kp_chain *c, dnnl_data_type_t *xdt,
	      float *xs, struct kp_quant *q)
{
	float ys = 1.f;

	*q = kp_quant_f32;
	if (!kp_qparams(p, x, xdt, xs))
		return false;
	if (!p->is_pout[c->out_v] && kp_qparams(p, c->out_v, &q->dst_dt, &ys)) {
		q->dst_scale = 1.f / ys;
		if (c->sum_v >= 0) {
			float rs;

			if (!kp_qparams(p, c->sum_v, &q->sum_dt, &rs)) {
				q->dst_dt = dnnl_f32;	/* residual without a range: f32 dst */
				q->dst_scale = 1.f;
				q->sum_dt = dnnl_f32;
			} else {
				q->sum_scale = rs;
			}
		}
	}
	return true;
}

/*
 * A fused residual Add can accumulate straight into the residual's buffer when nothing reads
 * that buffer afterwards: its other readers run before the fused primitive, none of them is a
 * view aliasing it, it is no plan input or output, and its layout is the one dst wants.
 */
static bool
kp_sum_in_place(const struct kern_plan *p, const struct kern_node *head, const struct kp_chain *c,
		const dnnl_memory_desc_t *dst_md)
{
	const struct kern_model *m = p->m;
	int r = c->sum_v, at = p->epos[head - m->nodes];
	const struct kern_node *add = NULL;
	dnnl_memory_desc_t rmd;

	if (r < 0 || p->vmem[r] == NULL || p->is_pout[r] || m->values[r].is_input ||
	    m->values[r].is_static)
		return false;
	for (unsigned i = 0; i < p->n_in; i++)
		if (p->in_v[i] == r)
			return false;
	rmd = *kp_md(p->vmem[r]);
	if (kp_is_int8(&rmd) != kp_is_int8(dst_md))
		return false;
	rmd.data_type = dst_md->data_type;
	if (!dnnl_memory_desc_equal(&rmd, dst_md))
		return false;
	for (int k = 0; k < c->n; k++)
		if (c->nodes[k]->op == KOP_ADD)
			add = c->nodes[k];
	for (unsigned i = 0; i < m->n_nodes; i++) {
		const struct kern_node *n = &m->nodes[i];
		bool reads = false;

		if (!p->active[i] || n->is_static || n->dead || n == add)
			continue;
		for (int k = 0; k < n->n_in; k++)
			reads |= n->in[k] == r;
		if (!reads)
			continue;
		if (p->epos[i] >= at || kern_ops[n->op]->view)
			return false;
	}
	return true;
}

static int
kp_build_conv(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1, y = c->out_v;
	int nd = s->ndim[x], nsp = nd - 2;
	int64_t g = n->a.conv.group, k[2], pads[4], osp[2], oc = s->dims[w][0];
	dnnl_memory_desc_t src_md, w_md, b_md, dst_md, w_plain, b_plain;
	dnnl_dims_t strides, dil, pl, pr, wd;
	dnnl_convolution_desc_t cd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_memory_t src, wm, bm = NULL, dst;
	dnnl_data_type_t xdt = dnnl_f32;
	struct kp_quant q;
	float xs = 1.f, *oscale = NULL;
	bool i8;
	int rc, wnd;

	for (int i = 0; i < nsp; i++)
		k[i] = s->dims[w][2 + i];
	kern_conv_resolve(n, s->dims[x] + 2, nsp, k, pads, osp);
	for (int i = 0; i < nsp; i++) {
		strides[i] = n->a.conv.strides[i];
		dil[i] = n->a.conv.dilations[i] - 1;
		pl[i] = pads[i];
		pr[i] = pads[i + 2];
	}
	i8 = kp_conv_quant(p, x, c, &xdt, &xs, &q);
	kp_any_md(&src_md, nd, s->dims[x]);
	kp_any_md(&dst_md, nd, s->dims[y]);
	src_md.data_type = xdt;
	dst_md.data_type = q.dst_dt;
	/* Grouped weights are [G, OC/G, IC/G, k...] to oneDNN; same bytes as ONNX's [OC, IC/G, k...]. */
	if (g > 1) {
		wd[0] = g;
		wd[1] = s->dims[w][0] / g;
		for (int i = 1; i < nd; i++)
			wd[i + 1] = s->dims[w][i];
		wnd = nd + 1;
	} else {
		kp_dims(wd, s->dims[w], nd);
		wnd = nd;
	}
	{
		int64_t wd64[TG_MAX_DIMS + 1] = { 0 };

		for (int i = 0; i < wnd; i++)
			wd64[i] = wd[i];
		kp_plain_md(&w_plain, wnd, wd64);
		kp_any_md(&w_md, wnd, wd64);
	}
	if (i8)
		w_md.data_type = dnnl_s8;
	if (b >= 0) {
		kp_plain_md(&b_plain, 1, s->dims[b]);
		b_md = b_plain;
	}
	rc = kp_chk(p, dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
			dnnl_convolution_direct, &src_md, &w_md, b >= 0 ? &b_md : NULL, &dst_md,
			strides, dil, pl, pr), n, "convolution");
	if (rc == 0)
		rc = kp_chain_attr(p, c, &attr, n, &q);
	if (rc == 0 && i8) {
		oscale = malloc((size_t)oc * sizeof(float));
		if (oscale == NULL)
			rc = tg_err_set(p->err, -ENOMEM, "out of memory");
	}
	if (rc == 0 && i8) {
		/* Provisional scales: the pd only needs the mask; values are set below. */
		for (int64_t o = 0; o < oc; o++)
			oscale[o] = 1.f;
		rc = kp_chk(p, dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, oscale), n,
			    "output scales");
	}
	if (rc < 0)
		goto out;
	if (i8) {
		/* Weights first: the output scales depend on the weight scales. */
		const dnnl_memory_desc_t *wq;
		dnnl_primitive_desc_t probe = NULL;

		rc = kp_chk(p, dnnl_primitive_desc_create(&probe, &cd, attr, p->eng, NULL), n,
			    "convolution pd");
		if (rc < 0)
			goto out;
		wq = dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0);
		rc = kp_int8_weights(p, w, b, &w_plain, wq, xs, (size_t)oc, oscale, &wm, &bm, n);
		dnnl_primitive_desc_destroy(probe);
		if (rc == 0)
			rc = kp_chk(p, dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, oscale),
				    n, "output scales");
		if (rc < 0)
			goto out;
	}
	rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &cd, attr, p->eng, NULL), n,
		    "convolution pd");
	if (rc < 0)
		goto out;
	rc = kp_get(p, x, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &src, n);
	if (rc == 0 && !i8)
		rc = kp_const(p, w, &w_plain, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
			      &wm, n);
	if (rc == 0 && b >= 0 && !i8)
		rc = kp_const(p, b, &b_plain, NULL, &bm, n);
	if (rc == 0 && kp_sum_in_place(p, n, c,
				       dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0))) {
		/* Same bytes, read as the residual's type by the sum post-op, written as y's. */
		rc = kp_mem_new(p, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
				kp_handle(p->vmem[c->sum_v]), &dst, n);
		if (rc == 0)
			p->vmem[y] = dst;
	} else if (rc == 0) {
		rc = kp_dst(p, pd, y, &dst, n);
	} else {
		goto out;
	}
	if (rc == 0 && c->sum_v >= 0 && kp_handle(dst) != kp_handle(p->vmem[c->sum_v])) {
		/* The sum post-op adds what dst holds: put the other operand there first, in the
		 * type the post-op reads it as (f32 dst: real units; int8: its own scale). */
		dnnl_memory_desc_t rmd = *kp_md(dst);
		dnnl_memory_t other, place;

		rmd.data_type = kp_is_int8(kp_md(dst)) ? q.sum_dt : dnnl_f32;
		rc = kp_get(p, c->sum_v, NULL, &other, n);
		if (rc == 0)
			rc = kp_mem_new(p, &rmd, kp_handle(dst), &place, n);
		if (rc == 0)
			rc = kp_reorder_v(p, c->sum_v, other, place, false, n);
	}
	if (rc == 0) {
		dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_WEIGHTS, wm },
					    { DNNL_ARG_DST, dst }, { DNNL_ARG_BIAS, bm } };

		rc = kp_push_pd(p, pd, bm ? 4 : 3, args, n);
	}
out:
	free(oscale);
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return rc;
}

/* Gemm with constant B (and C): an inner product; alpha and beta folded into the weights. */
static int
kp_build_gemm(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int a = n->in[0], bv = n->in[1], cv = n->n_in > 2 ? n->in[2] : -1, y = c->out_v;
	int64_t K = s->dims[a][1], M = s->dims[y][1];
	dnnl_memory_desc_t src_md, w_md, b_md, dst_md, w_plain;
	dnnl_inner_product_desc_t ipd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_memory_t src, wm, bm, dst;
	struct tg_tensor wt = { .dtype = TG_DT_F32, .ndim = 2, .dims = { M, K } };
	struct tg_tensor bt = { .dtype = TG_DT_F32, .ndim = 1, .dims = { M } };
	const float *B = s->sval[bv].data;
	int rc;

	if (n->a.gemm.trans_a || !p->m->values[bv].is_const ||
	    (cv >= 0 && !p->m->values[cv].is_const))
		return tg_err_set(p->err, -ENOTSUP,
				  "node \"%s\" (Gemm): only transA=0 with constant B and C is supported",
				  n->name);
	if (tg_tensor_alloc(&wt) < 0 || tg_tensor_alloc(&bt) < 0) {
		rc = tg_err_set(p->err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int64_t i = 0; i < M; i++) {
		for (int64_t k = 0; k < K; k++)
			((float *)wt.data)[i * K + k] =
				n->a.gemm.alpha * (n->a.gemm.trans_b ? B[i * K + k] : B[k * M + i]);
		float bias = 0.f;

		if (cv >= 0) {
			const float *C = s->sval[cv].data;
			size_t nc = tg_tensor_numel(&s->sval[cv]);

			bias = C[nc == 1 ? 0 : i];
		}
		((float *)bt.data)[i] = n->a.gemm.beta * bias;
	}
	{
		int64_t dims[2] = { M, K };

		kp_plain_md(&w_plain, 2, dims);
		kp_any_md(&w_md, 2, dims);
	}
	kp_plain_md(&b_md, 1, &M);
	kp_any_md(&src_md, 2, s->dims[a]);
	kp_any_md(&dst_md, 2, s->dims[y]);
	rc = kp_chk(p, dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src_md,
							     &w_md, &b_md, &dst_md), n, "inner product");
	if (rc == 0)
		rc = kp_chain_attr(p, c, &attr, n, &kp_quant_f32);
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &ipd, attr, p->eng, NULL), n,
			    "inner product pd");
	if (rc < 0)
		goto out;
	rc = kp_get(p, a, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &src, n);
	if (rc == 0)
		rc = kp_mem_new(p, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), NULL,
				&wm, n);
	if (rc == 0) {	/* reorder the folded weights in from a temporary plain memory */
		dnnl_memory_t tmp;

		rc = kp_chk(p, dnnl_memory_create(&tmp, &w_plain, p->eng, wt.data), n, "memory");
		if (rc == 0) {
			rc = kp_reorder(p, tmp, wm, true, n);
			dnnl_memory_destroy(tmp);
		}
	}
	if (rc == 0)
		rc = kp_mem_new(p, &b_md, NULL, &bm, n);
	if (rc == 0)
		memcpy(kp_handle(bm), bt.data, (size_t)M * sizeof(float));
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_WEIGHTS, wm },
					    { DNNL_ARG_BIAS, bm }, { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 4, args, n);
	}
out:
	tg_tensor_free(&wt);
	tg_tensor_free(&bt);
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return rc;
}

/* Shape of v padded with leading 1s to rank nd (numpy broadcasting). */
static void
kp_expand_dims(const struct kern_plan *p, int v, int nd, int64_t *out)
{
	int vn = p->sh.ndim[v];

	for (int i = 0; i < nd; i++)
		out[i] = i < nd - vn ? 1 : p->sh.dims[v][i - (nd - vn)];
}

/* Value v in plain layout, seen at rank nd with dims d (leading 1s added): same bytes. */
static int
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

static int
kp_build_matmul(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int a = n->in[0], b = n->in[1], y = n->out[0], nd = s->ndim[y];
	int64_t ad[TG_MAX_DIMS] = { 0 }, bd[TG_MAX_DIMS] = { 0 };
	dnnl_memory_desc_t a_md, b_md, y_md;
	dnnl_matmul_desc_t md;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t am, bm, dst;
	int rc;

	kp_expand_dims(p, a, nd, ad);
	kp_expand_dims(p, b, nd, bd);
	kp_plain_md(&a_md, nd, ad);
	kp_plain_md(&b_md, nd, bd);
	kp_plain_md(&y_md, nd, s->dims[y]);
	rc = kp_chk(p, dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &y_md), n, "matmul");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &md, NULL, p->eng, NULL), n, "matmul pd");
	if (rc < 0)
		goto out;
	/* Operands in plain layout, then viewed at the broadcast rank over the same bytes. */
	rc = kp_get_plain_as(p, a, nd, ad, &a_md, &am, n);
	if (rc == 0)
		rc = kp_get_plain_as(p, b, nd, bd, &b_md, &bm, n);
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, am }, { DNNL_ARG_WEIGHTS, bm },
					    { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 3, args, n);
	}
out:
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

static int
kp_build_binary(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int a = n->in[0], b = n->in[1], y = c->out_v, nd = s->ndim[n->out[0]];
	bool commut = n->op == KOP_ADD || n->op == KOP_MUL || n->op == KOP_MAX || n->op == KOP_MIN;
	int64_t ad[TG_MAX_DIMS] = { 0 }, bd[TG_MAX_DIMS] = { 0 };
	dnnl_alg_kind_t alg = (dnnl_alg_kind_t)kern_ops[n->op]->alg;
	dnnl_memory_desc_t a_md, b_md, dst_md;
	dnnl_binary_desc_t bdsc;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_memory_t am, bm, dst;
	int rc;

	/* oneDNN broadcasts src1 only: the full-shape operand goes first. */
	kp_expand_dims(p, a, nd, ad);
	if (memcmp(ad, s->dims[n->out[0]], (size_t)nd * sizeof(int64_t)) != 0) {
		if (!commut)
			return tg_err_set(p->err, -ENOTSUP,
					  "node \"%s\" (%s): broadcasting the first operand is not supported",
					  n->name, kern_op_names[n->op]);
		int t = a;

		a = b;
		b = t;
		kp_expand_dims(p, a, nd, ad);
		if (memcmp(ad, s->dims[n->out[0]], (size_t)nd * sizeof(int64_t)) != 0)
			return tg_err_set(p->err, -ENOTSUP,
					  "node \"%s\" (%s): both operands broadcast", n->name,
					  kern_op_names[n->op]);
	}
	kp_expand_dims(p, b, nd, bd);
	/* The full operand keeps its layout when its rank is the output's; else plain. */
	if (!p->m->values[a].is_static && s->ndim[a] == nd && p->vmem[a] != NULL) {
		rc = kp_get_f32(p, a, &am, n);
		if (rc < 0)
			return rc;
		a_md = *kp_md(am);
	} else {
		rc = kp_get_plain_as(p, a, nd, ad, &a_md, &am, n);
		if (rc < 0)
			return rc;
	}
	if (kp_same_shape(p, a, b) && !p->m->values[b].is_static) {
		rc = kp_get(p, b, &a_md, &bm, n);	/* same layout as a */
		if (rc < 0)
			return rc;
		b_md = a_md;
	} else {
		rc = kp_get_plain_as(p, b, nd, bd, &b_md, &bm, n);
		if (rc < 0)
			return rc;
	}
	kp_any_md(&dst_md, nd, s->dims[y]);
	rc = kp_chk(p, dnnl_binary_desc_init(&bdsc, alg, &a_md, &b_md, &dst_md), n, "binary");
	if (rc == 0)
		rc = kp_chain_attr(p, c, &attr, n, &kp_quant_f32);
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &bdsc, attr, p->eng, NULL), n,
			    "binary pd");
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC_0, am }, { DNNL_ARG_SRC_1, bm },
					    { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 3, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return rc;
}

static int
kp_build_eltwise(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	int x = n->in[0], y = c->out_v;
	struct kern_elt e;
	dnnl_eltwise_desc_t ed;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_memory_t src, dst;
	struct kp_chain c2 = *c;
	int rc;

	if (!kp_eltwise_params(p, n, &e))
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): min/max not computable at load",
				  n->name, kern_op_names[n->op]);
	rc = p->vmem[x] == NULL || p->sh.ndim[x] < 2 ? kp_get_plain(p, x, &src, n) :
						       kp_get_f32(p, x, &src, n);
	if (rc < 0)
		return rc;
	if (p->sh.ndim[x] < 2) {
		/* oneDNN 2.6 mis-applies eltwise post-ops on 1-D tensors: view them as [1, n]. */
		int64_t d2[2] = { 1, p->sh.ndim[x] ? p->sh.dims[x][0] : 1 };
		dnnl_memory_desc_t md2;

		kp_plain_md(&md2, 2, d2);
		rc = kp_mem_new(p, &md2, kp_handle(src), &src, n);
		if (rc < 0)
			return rc;
	}
	rc = kp_chk(p, dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference,
						       (dnnl_alg_kind_t)e.alg, kp_md(src), e.alpha,
						       e.beta), n, "eltwise");
	if (rc < 0)
		return rc;
	if (e.clip01) {	/* linear, then clip to [0, 1] as a post-op */
		memmove(c2.nodes + 1, c2.nodes, (size_t)c2.n * sizeof(c2.nodes[0]));
		c2.n++;
		c2.nodes[0] = NULL;
	}
	{
		dnnl_post_ops_t po = NULL;

		rc = kp_chk(p, dnnl_primitive_attr_create(&attr), n, "attr");
		if (rc == 0 && c2.n)
			rc = kp_chk(p, dnnl_post_ops_create(&po), n, "post-ops");
		for (int i = 0; rc == 0 && i < c2.n; i++) {
			if (c2.nodes[i] == NULL)
				rc = kp_chk(p, dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_clip_v2,
									    0.f, 1.f), n, "clip");
			else if (kp_append_eltwise(p, po, c2.nodes[i]) < 0)
				rc = tg_err_set(p->err, -EINVAL, "node \"%s\": cannot fuse", c2.nodes[i]->name);
		}
		if (rc == 0 && po)
			rc = kp_chk(p, dnnl_primitive_attr_set_post_ops(attr, po), n, "set post-ops");
		if (po)
			dnnl_post_ops_destroy(po);
	}
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &ed, attr, p->eng, NULL), n,
			    "eltwise pd");
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0 && p->sh.ndim[y] < 2) {	/* back to the value's own rank */
		dnnl_memory_desc_t md1;

		kp_plain_md(&md1, p->sh.ndim[y], p->sh.dims[y]);
		rc = kp_mem_new(p, &md1, kp_handle(dst), &p->vmem[y], n);
	}
	if (rc == 0) {
		dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 2, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return rc;
}

static int
kp_build_pool(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x], nsp = nd - 2;
	dnnl_dims_t st, k, dil, pl, pr;
	dnnl_alg_kind_t alg;
	dnnl_memory_desc_t src_md, dst_md;
	dnnl_pooling_v2_desc_t pdsc;
	dnnl_memory_t src;
	int rc;

	if (n->op == KOP_GAP || n->op == KOP_GMP) {
		for (int i = 0; i < nsp; i++) {
			k[i] = s->dims[x][2 + i];
			st[i] = 1;
			dil[i] = pl[i] = pr[i] = 0;
		}
		alg = n->op == KOP_GAP ? dnnl_pooling_avg_exclude_padding : dnnl_pooling_max;
	} else {
		int64_t pads[4], osp[2];

		if (nsp != n->a.pool.nsp)
			return tg_err_set(p->err, -EINVAL, "node \"%s\": pool rank mismatch", n->name);
		kern_pool_resolve(n, s->dims[x] + 2, pads, osp);
		for (int i = 0; i < nsp; i++) {
			int64_t ek = (n->a.pool.kernel[i] - 1) * n->a.pool.dilations[i] + 1;
			int64_t need = (osp[i] - 1) * n->a.pool.strides[i] + ek - s->dims[x][2 + i] -
				       pads[i];

			k[i] = n->a.pool.kernel[i];
			st[i] = n->a.pool.strides[i];
			dil[i] = n->a.pool.dilations[i] - 1;
			pl[i] = pads[i];
			/* ceil_mode: oneDNN floors, so pad the end enough for the last window. */
			pr[i] = need > pads[i + 2] ? need : pads[i + 2];
		}
		alg = n->op == KOP_MAXPOOL ? dnnl_pooling_max :
		      n->a.pool.count_include_pad ? dnnl_pooling_avg_include_padding :
						    dnnl_pooling_avg_exclude_padding;
	}
	/* Pools keep int8 as it is (max and mean commute with the scale); y takes x's scale. */
	src = p->vmem[x];
	if (src != NULL && kp_is_int8(kp_md(src)) && !p->is_pout[y]) {
		p->vscale[y] = p->vscale[x];
		p->vdt[y] = p->vdt[x];
	} else {
		rc = kp_get_src(p, x, &src, n);
		if (rc < 0)
			return rc;
	}
	src_md = *kp_md(src);
	kp_any_md(&dst_md, nd, s->dims[y]);
	dst_md.data_type = src_md.data_type;
	rc = kp_chk(p, dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg,
							  &src_md, &dst_md, st, k, dil, pl, pr), n,
		    "pooling");
	return kp_push_src_dst(p, rc, &pdsc, src, y, n, "pooling pd");
}

static int
kp_build_bn(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0];
	int64_t C = s->dims[x][1];
	dnnl_memory_desc_t cmd, src_md;
	dnnl_batch_normalization_desc_t bd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t src, dst, prm[4];
	int rc;

	if (s->ndim[x] < 2 || s->ndim[x] > 5)
		return tg_err_set(p->err, -ENOTSUP, "node \"%s\": BatchNormalization of rank %d",
				  n->name, s->ndim[x]);
	kp_plain_md(&cmd, 1, &C);
	rc = kp_get_src(p, x, &src, n);
	if (rc < 0)
		return rc;
	src_md = *kp_md(src);
	rc = kp_chk(p, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference,
			&src_md, n->a.bn.eps, dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
		    n, "batch normalization");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &bd, NULL, p->eng, NULL), n, "bnorm pd");
	for (int i = 0; rc == 0 && i < 4; i++) {
		dnnl_memory_desc_t pl;

		kp_plain_md(&pl, s->ndim[n->in[1 + i]], s->dims[n->in[1 + i]]);
		rc = kp_const(p, n->in[1 + i], &pl, &cmd, &prm[i], n);
	}
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[6] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_SCALE, prm[0] },
					    { DNNL_ARG_SHIFT, prm[1] }, { DNNL_ARG_MEAN, prm[2] },
					    { DNNL_ARG_VARIANCE, prm[3] }, { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 6, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

static int
kp_build_concat(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int y = n->out[0], nd = s->ndim[y], ax = (int)(n->a.axis.axis < 0 ? n->a.axis.axis + nd :
									    n->a.axis.axis);
	dnnl_memory_desc_t mds[KERN_MAX_IN];
	dnnl_memory_t srcs[KERN_MAX_IN], dst;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_exec_arg_t args[KERN_MAX_IN + 1];
	int rc = 0, k = 0;

	for (int i = 0; i < n->n_in && rc == 0; i++) {
		int v = n->in[i];

		if (s->dims[v][ax] == 0)
			continue;	/* empty pieces add nothing */
		if (p->vmem[v] == NULL || p->m->values[v].is_static)
			rc = kp_get_plain(p, v, &srcs[k], n);
		else
			rc = kp_get_f32(p, v, &srcs[k], n);
		if (rc == 0) {
			mds[k] = *kp_md(srcs[k]);
			args[k] = (dnnl_exec_arg_t){ DNNL_ARG_MULTIPLE_SRC + k, srcs[k] };
			k++;
		}
	}
	if (rc == 0)
		rc = kp_chk(p, dnnl_concat_primitive_desc_create(&pd, NULL, k, ax, mds, NULL, p->eng),
			    n, "concat");
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		args[k] = (dnnl_exec_arg_t){ DNNL_ARG_DST, dst };
		rc = kp_push_pd(p, pd, k + 1, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/* Softmax and LogSoftmax. */
static int
kp_build_softmax(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int ax = (int)(n->a.axis.axis < 0 ? n->a.axis.axis + nd : n->a.axis.axis);
	dnnl_memory_desc_t md;
	dnnl_softmax_v2_desc_t sd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t src, view, dst;
	int rc;

	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	if (p->m->opset < 13 && ax != nd - 1) {
		/* Softmax-1/11 normalise over everything from axis on, as a 2-D [outer, inner]. */
		int64_t d2[2] = { 1, 1 };

		for (int i = 0; i < nd; i++)
			d2[i < ax ? 0 : 1] *= s->dims[x][i];
		kp_plain_md(&md, 2, d2);
		ax = 1;
	} else {
		kp_plain_md(&md, nd, s->dims[x]);
	}
	rc = kp_mem_new(p, &md, kp_handle(src), &view, n);
	if (rc == 0)
		rc = kp_chk(p, dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference,
				n->op == KOP_LOGSOFTMAX ? dnnl_softmax_log : dnnl_softmax_accurate,
				&md, &md, ax), n, "softmax");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &sd, NULL, p->eng, NULL), n, "softmax pd");
	if (rc == 0) {
		dnnl_memory_desc_t ymd;

		kp_plain_md(&ymd, s->ndim[y], s->dims[y]);
		rc = kp_mem_new(p, &md, NULL, &dst, n);
		if (rc == 0)
			rc = kp_mem_new(p, &ymd, kp_handle(dst), &p->vmem[y], n);
	}
	if (rc == 0) {
		dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, view }, { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 2, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/* Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout: same bytes in plain layout. */
static int
kp_build_view(struct kern_plan *p, const struct kern_node *n)
{
	int y = n->out[0];
	dnnl_memory_desc_t md;
	dnnl_memory_t src;
	int rc;

	rc = kp_get_plain(p, n->in[0], &src, n);
	if (rc < 0)
		return rc;
	kp_plain_md(&md, p->sh.ndim[y], p->sh.dims[y]);
	return kp_mem_new(p, &md, kp_handle(src), &p->vmem[y], n);
}

/* PRelu: oneDNN's prelu with the slope as weights broadcast to the input's rank. */
static int
kp_build_prelu(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t wd[TG_MAX_DIMS];
	dnnl_memory_desc_t w_md;
	dnnl_prelu_desc_t pdsc;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t src, w, dst;
	int rc;

	rc = p->vmem[x] == NULL || nd < 2 ? kp_get_plain(p, x, &src, n) : kp_get_f32(p, x, &src, n);
	if (rc == 0) {
		if (kern_prelu_per_channel(p->m, s, n)) {
			for (int i = 0; i < nd; i++)
				wd[i] = i == 1 ? s->dims[x][1] : 1;
		} else {
			kp_expand_dims(p, n->in[1], nd, wd);
		}
		rc = kp_get_plain_as(p, n->in[1], nd, wd, &w_md, &w, n);
	}
	if (rc == 0)
		rc = kp_chk(p, dnnl_prelu_forward_desc_init(&pdsc, dnnl_forward_inference, kp_md(src),
							     &w_md), n, "prelu");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &pdsc, NULL, p->eng, NULL), n,
			    "prelu pd");
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_WEIGHTS, w },
					    { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 3, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/*
 * Reduce*: a oneDNN reduction in plain layout to the keepdims shape; keepdims = 0 views the
 * same bytes at the output's rank. Nothing reduced (noop_with_empty_axes): a view.
 */
static int
kp_build_reduce(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t kd[TG_MAX_DIMS];
	bool red[TG_MAX_DIMS], any = false;
	dnnl_memory_desc_t kmd, ymd;
	dnnl_reduction_desc_t rd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t src, dst;
	dnnl_alg_kind_t alg;
	float pw;
	int rc;

	if (kern_reduce_axes(s, n, nd, red) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): bad axes", n->name,
				  kern_op_names[n->op]);
	for (int i = 0; i < nd; i++) {
		kd[i] = red[i] ? 1 : s->dims[x][i];
		any |= red[i];
	}
	if (!any || nd == 0)
		return kp_build_view(p, n);
	alg = (dnnl_alg_kind_t)kern_ops[n->op]->alg;
	pw = kern_ops[n->op]->alpha;	/* the norm's p */
	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	kp_plain_md(&kmd, nd, kd);
	rc = kp_chk(p, dnnl_reduction_desc_init(&rd, alg, kp_md(src), &kmd, pw, 0.f), n,
		    "reduction");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &rd, NULL, p->eng, NULL), n,
			    "reduction pd");
	if (rc == 0)
		rc = kp_mem_new(p, &kmd, NULL, &dst, n);
	if (rc == 0) {
		kp_plain_md(&ymd, s->ndim[y], s->dims[y]);
		rc = kp_mem_new(p, &ymd, kp_handle(dst), &p->vmem[y], n);
	}
	if (rc == 0) {
		dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_DST, dst } };

		rc = kp_push_pd(p, pd, 2, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/*
 * Slice and Split on activations: each output is a box of the plain input, copied out by a
 * reorder from a sub-memory over the input's bytes (dense outputs: later ops see plain
 * tensors of their own).
 */
static int
kp_copy_box(struct kern_plan *p, const struct kern_node *n, dnnl_memory_t src, int y,
	    const int64_t *begin, const int64_t *count)
{
	int nd = p->sh.ndim[n->in[0]];
	dnnl_dims_t dd, off;
	dnnl_memory_desc_t sub, ymd;
	dnnl_memory_t view, dst;
	int rc;

	for (int i = 0; i < nd; i++) {
		dd[i] = count[i];
		off[i] = begin[i];
	}
	rc = kp_chk(p, dnnl_memory_desc_init_submemory(&sub, kp_md(src), dd, off), n, "sub-memory");
	if (rc == 0)
		rc = kp_mem_new(p, &sub, kp_handle(src), &view, n);
	if (rc == 0) {
		kp_plain_md(&ymd, nd, count);
		rc = kp_mem_new(p, &ymd, NULL, &dst, n);
	}
	if (rc == 0)
		rc = kp_reorder(p, view, dst, false, n);
	if (rc == 0)
		p->vmem[y] = dst;
	return rc;
}

static int
kp_build_slice(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], nd = s->ndim[x];
	int64_t begin[TG_MAX_DIMS] = { 0 }, count[TG_MAX_DIMS], sizes[KERN_MAX_OUT];
	dnnl_memory_t src;
	int64_t ax, at = 0;
	int rc;

	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	if (n->op == KOP_SLICE) {
		if (kern_slice_box(s, n, nd, s->dims[x], begin, count) < 0)
			return tg_err_set(p->err, -EINVAL, "node \"%s\" (Slice): bad box", n->name);
		return kp_copy_box(p, n, src, n->out[0], begin, count);
	}
	ax = n->a.split.axis < 0 ? n->a.split.axis + nd : n->a.split.axis;
	if (kern_split_sizes(s, n, s->dims[x][ax], sizes) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (Split): bad sizes", n->name);
	memcpy(count, s->dims[x], sizeof(count));
	for (int k = 0; k < n->n_out && rc == 0; k++) {
		begin[ax] = at;
		count[ax] = sizes[k];
		at += sizes[k];
		if (n->out[k] >= 0 && sizes[k] > 0)
			rc = kp_copy_box(p, n, src, n->out[k], begin, count);
	}
	return rc;
}

/*
 * ConvTranspose: oneDNN's deconvolution, f32. ONNX weights are [IC, OC/G, k...]: the same
 * bytes described to oneDNN as [OC, IC, k...] (or [G, OC/G, IC/G, k...]) through strides,
 * then reordered once into the layout the primitive picked. output_padding adds rows at
 * the end: it comes off the end padding.
 */
static int
kp_build_convt(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1, y = n->out[0];
	int nd = s->ndim[x], nsp = nd - 2, wnd;
	int64_t g = n->a.conv.group, k[2] = { 1, 1 }, pads[4], osp[2];
	int64_t ic = s->dims[w][0], ocg = s->dims[w][1], icg = ic / g, ksz = 1;
	dnnl_memory_desc_t src_md, w_md, w_plain, b_md, dst_md;
	dnnl_dims_t strides, dil, pl, pr, wd, ws;
	dnnl_deconvolution_desc_t dd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t src, wm, bm = NULL, dst;
	int rc;

	for (int i = 0; i < nsp; i++) {
		k[i] = s->dims[w][2 + i];
		ksz *= k[i];
	}
	if (kern_convt_resolve(n, s->dims[x] + 2, nsp, k, pads, osp) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (ConvTranspose): bad geometry",
				  n->name);
	for (int i = 0; i < nsp; i++) {
		strides[i] = n->a.conv.strides[i];
		dil[i] = n->a.conv.dilations[i] - 1;
		pl[i] = pads[i];
		pr[i] = pads[i + 2] - n->a.conv.out_pad[i];
	}
	/* Logical [G,] OC/G, IC/G, k... over ONNX's [G x IC/G, OC/G, k...] bytes. */
	wnd = 0;
	if (g > 1) {
		wd[wnd] = g;
		ws[wnd++] = icg * ocg * ksz;
	}
	wd[wnd] = g > 1 ? ocg : ocg * g;
	ws[wnd++] = ksz;
	wd[wnd] = icg;
	ws[wnd++] = ocg * ksz;
	for (int i = 0; i < nsp; i++) {
		wd[wnd] = k[i];
		ws[wnd++] = i + 1 < nsp ? k[i + 1] : 1;
	}
	dnnl_memory_desc_init_by_strides(&w_plain, wnd, wd, dnnl_f32, ws);
	dnnl_memory_desc_init_by_tag(&w_md, wnd, wd, dnnl_f32, dnnl_format_tag_any);
	kp_any_md(&src_md, nd, s->dims[x]);
	kp_any_md(&dst_md, nd, s->dims[y]);
	if (b >= 0)
		kp_plain_md(&b_md, 1, s->dims[b]);
	rc = kp_chk(p, dnnl_dilated_deconvolution_forward_desc_init(&dd, dnnl_forward_inference,
			dnnl_deconvolution_direct, &src_md, &w_md, b >= 0 ? &b_md : NULL, &dst_md,
			strides, dil, pl, pr), n, "deconvolution");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &dd, NULL, p->eng, NULL), n,
			    "deconvolution pd");
	if (rc == 0)
		rc = kp_get(p, x, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &src, n);
	if (rc == 0)
		rc = kp_const(p, w, &w_plain, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md,
									   0), &wm, n);
	if (rc == 0 && b >= 0)
		rc = kp_const(p, b, &b_md, NULL, &bm, n);
	if (rc == 0)
		rc = kp_dst(p, pd, y, &dst, n);
	if (rc == 0) {
		dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_WEIGHTS, wm },
					    { DNNL_ARG_DST, dst }, { DNNL_ARG_BIAS, bm } };

		rc = kp_push_pd(p, pd, bm ? 4 : 3, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/* Resize and Upsample: oneDNN's resampling with ONNX's own scales (see kern_resize_geometry
 * for which modes compute exactly what ONNX says). */
static int
kp_build_resize(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t od[TG_MAX_DIMS];
	float sc[TG_MAX_DIMS];
	const char *why = "";
	dnnl_memory_desc_t dst_md;
	dnnl_resampling_desc_t rd;
	dnnl_memory_t src;
	int rc;

	if (kern_resize_geometry(p->m, s, n, od, sc, &why) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): %s", n->name,
				  kern_op_names[n->op], why);
	rc = kp_get_src(p, x, &src, n);
	if (rc < 0)
		return rc;
	kp_any_md(&dst_md, nd, s->dims[y]);
	rc = kp_chk(p, dnnl_resampling_forward_desc_init(&rd, dnnl_forward_inference,
			n->a.resize.mode == KERN_RS_LINEAR ? dnnl_resampling_linear :
							     dnnl_resampling_nearest,
			sc + 2, kp_md(src), &dst_md), n, "resampling");
	return kp_push_src_dst(p, rc, &rd, src, y, n, "resampling pd");
}

/* LayerNormalization: oneDNN normalises over the last dim, so the input is seen as
 * [outer, inner] with everything from axis on in inner (same bytes, plain layout). */
static int
kp_build_layernorm(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t ax = n->a.ln.axis < 0 ? n->a.ln.axis + nd : n->a.ln.axis, d2[2] = { 1, 1 };
	bool shift = n->n_in > 2 && n->in[2] >= 0;
	dnnl_memory_desc_t md, cmd, ymd;
	dnnl_layer_normalization_desc_t ld;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t src, view, dst, sc, sh = NULL;
	int rc;

	for (int i = 0; i < nd; i++)
		d2[i < ax ? 0 : 1] *= s->dims[x][i];
	kp_plain_md(&md, 2, d2);
	kp_plain_md(&cmd, 1, &d2[1]);
	rc = kp_get_plain(p, x, &src, n);
	if (rc == 0)
		rc = kp_mem_new(p, &md, kp_handle(src), &view, n);
	if (rc == 0)
		rc = kp_chk(p, dnnl_layer_normalization_forward_desc_init(&ld,
				dnnl_forward_inference, &md, NULL, n->a.ln.eps,
				dnnl_use_scale | (shift ? dnnl_use_shift : 0)), n, "layer normalization");
	if (rc == 0)
		rc = kp_chk(p, dnnl_primitive_desc_create(&pd, &ld, NULL, p->eng, NULL), n,
			    "layer normalization pd");
	if (rc == 0)	/* the constants' own bytes, read as [inner] */
		rc = kp_const(p, n->in[1], &cmd, NULL, &sc, n);
	if (rc == 0 && shift)
		rc = kp_const(p, n->in[2], &cmd, NULL, &sh, n);
	if (rc == 0)
		rc = kp_mem_new(p, &md, NULL, &dst, n);
	if (rc == 0) {
		kp_plain_md(&ymd, s->ndim[y], s->dims[y]);
		rc = kp_mem_new(p, &ymd, kp_handle(dst), &p->vmem[y], n);
	}
	if (rc == 0) {
		dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, view }, { DNNL_ARG_DST, dst },
					    { DNNL_ARG_SCALE, sc }, { DNNL_ARG_SHIFT, sh } };

		rc = kp_push_pd(p, pd, shift ? 4 : 3, args, n);
	}
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	return rc;
}

/* Constant Pad: the border is written once here; each run copies only the interior. */
static int
kp_build_pad(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t pads[2 * TG_MAX_DIMS];
	float value = n->a.pad.value;
	dnnl_memory_desc_t ymd, sub;
	dnnl_dims_t dims, offs;
	dnnl_memory_t dst, inner, src;
	float *buf;
	size_t total = 1;
	int rc;

	memcpy(pads, n->a.pad.pads, sizeof(pads));
	if (n->n_in > 1 && n->in[1] >= 0)
		kern_static_ints(s, n->in[1], pads, 2 * TG_MAX_DIMS);
	if (n->n_in > 2 && n->in[2] >= 0 && kern_static_float(s, n->in[2], &value) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (Pad): value not computable at load",
				  n->name);
	kp_plain_md(&ymd, nd, s->dims[y]);
	rc = kp_mem_new(p, &ymd, NULL, &dst, n);
	if (rc < 0)
		return rc;
	buf = kp_handle(dst);
	for (int i = 0; i < nd; i++) {
		total *= (size_t)s->dims[y][i];
		dims[i] = s->dims[x][i];
		offs[i] = pads[i];
	}
	for (size_t i = 0; i < total; i++)
		buf[i] = value;
	p->vmem[y] = dst;
	rc = kp_chk(p, dnnl_memory_desc_init_submemory(&sub, &ymd, dims, offs), n, "submemory");
	if (rc == 0)
		rc = kp_mem_new(p, &sub, buf, &inner, n);
	if (rc == 0)
		rc = kp_get_f32(p, x, &src, n);
	if (rc == 0)
		rc = kp_reorder(p, src, inner, false, n);
	return rc;
}

/* Transpose: a reorder from the input, seen through permuted strides, into plain output. */
static int
kp_build_transpose(struct kern_plan *p, const struct kern_node *n)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	dnnl_memory_desc_t in_pl, perm_md, y_md;
	dnnl_dims_t dims, strides;
	dnnl_memory_t src, view, dst;
	int64_t st[TG_MAX_DIMS];
	int rc;

	rc = kp_get_plain(p, x, &src, n);
	if (rc < 0)
		return rc;
	kp_plain_md(&in_pl, nd, s->dims[x]);
	for (int i = nd - 1; i >= 0; i--)
		st[i] = i == nd - 1 ? 1 : st[i + 1] * s->dims[x][i + 1];
	for (int i = 0; i < nd; i++) {
		int64_t a = n->a.perm.n ? n->a.perm.perm[i] : nd - 1 - i;

		dims[i] = s->dims[x][a];
		strides[i] = st[a];
	}
	rc = kp_chk(p, dnnl_memory_desc_init_by_strides(&perm_md, nd, dims, dnnl_f32, strides), n,
		    "transpose md");
	if (rc == 0)
		rc = kp_mem_new(p, &perm_md, kp_handle(src), &view, n);
	kp_plain_md(&y_md, nd, s->dims[y]);
	if (rc == 0)
		rc = kp_mem_new(p, &y_md, NULL, &dst, n);
	if (rc == 0)
		rc = kp_reorder(p, view, dst, false, n);
	if (rc == 0)
		p->vmem[y] = dst;
	return rc;
}

static int
kp_build_node(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	switch (n->op) {
	case KOP_CONV: return kp_build_conv(p, n, c);
	case KOP_CONVT: return kp_build_convt(p, n);
	case KOP_GEMM: return kp_build_gemm(p, n, c);
	case KOP_MATMUL: return kp_build_matmul(p, n);
	case KOP_ADD: case KOP_MUL: case KOP_SUB: case KOP_DIV: case KOP_MAX: case KOP_MIN:
		return kp_build_binary(p, n, c);
	case KOP_RELU: case KOP_CLIP: case KOP_SIGMOID: case KOP_HARDSWISH: case KOP_HARDSIGMOID:
	case KOP_LEAKYRELU: case KOP_ELU: case KOP_TANH: case KOP_EXP: case KOP_ABS: case KOP_SQRT:
	case KOP_NEG: case KOP_RECIPROCAL: case KOP_LOG: case KOP_SOFTPLUS: case KOP_MISH:
	case KOP_ROUND: case KOP_POW: case KOP_GELU:
		return kp_build_eltwise(p, n, c);
	case KOP_PRELU: return kp_build_prelu(p, n);
	case KOP_REDUCEMEAN: case KOP_REDUCEMAX: case KOP_REDUCEMIN: case KOP_REDUCESUM:
	case KOP_REDUCEPROD: case KOP_REDUCEL1: case KOP_REDUCEL2: case KOP_REDUCESUMSQUARE:
		return kp_build_reduce(p, n);
	case KOP_TRANSPOSE: return kp_build_transpose(p, n);
	case KOP_MAXPOOL: case KOP_AVGPOOL: case KOP_GAP: case KOP_GMP: return kp_build_pool(p, n);
	case KOP_BN: return kp_build_bn(p, n);
	case KOP_LAYERNORM: return kp_build_layernorm(p, n);
	case KOP_CONCAT: return kp_build_concat(p, n);
	case KOP_SOFTMAX: case KOP_LOGSOFTMAX: return kp_build_softmax(p, n);
	case KOP_FLATTEN: case KOP_RESHAPE: case KOP_SQUEEZE: case KOP_UNSQUEEZE:
	case KOP_IDENTITY: case KOP_DROPOUT:
		return kp_build_view(p, n);
	case KOP_PAD: return kp_build_pad(p, n);
	case KOP_SLICE: case KOP_SPLIT: return kp_build_slice(p, n);
	case KOP_RESIZE: case KOP_UPSAMPLE: return kp_build_resize(p, n);
	default:
		return tg_err_set(p->err, -ENOTSUP, "node \"%s\" (%s): not executable", n->name,
				  kern_op_names[n->op]);
	}
}

static int
kp_build_all(struct kern_plan *p)
{
	const struct kern_model *m = p->m;
	int *head_of = malloc(m->n_nodes * sizeof(int));	/* fused node -> its head */
	struct kp_chain *chains = calloc(m->n_nodes, sizeof(*chains));
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
	p->out_v = calloc(m->n_values + 1, sizeof(int));
	p->out_mem = calloc(m->n_values + 1, sizeof(dnnl_memory_t));
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
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	p->m = m;
	p->err = err;
	p->expose_all = expose_all;
	p->kind = spec->kind;
	p->batch = spec->batch;
	p->active = calloc(m->n_nodes, 1);
	p->ncons = calloc(m->n_values, sizeof(unsigned));
	p->is_pout = calloc(m->n_values, 1);
	p->vmem = calloc(m->n_values, sizeof(dnnl_memory_t));
	p->epos = calloc(m->n_nodes, sizeof(int));
	p->vscale = calloc(m->n_values, sizeof(float));
	p->vdt = calloc(m->n_values, sizeof(dnnl_data_type_t));
	p->int8 = spec->precision == KERN_PREC_INT8;
	p->calib = spec->calib;
	in = calloc(m->n_inputs, sizeof(*in));
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
	rc = kp_chk(p, dnnl_engine_create(&p->eng, dnnl_cpu, 0), NULL, "engine");
	if (rc == 0)
		rc = kp_chk(p, dnnl_stream_create(&p->stream, p->eng, dnnl_stream_default_flags), NULL,
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
			dst[k] = tg_f16_to_f32(((const uint16_t *)src)[k]);
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
