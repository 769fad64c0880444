/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plan internals, shared by plan.c (the plan's life cycle, memories, reorders, fusion) and
 * the op family files (kernels/op_*.c), whose builders append each op's primitives. Plan
 * building happens once per plan, off the hot path; kern_plan_run() only executes steps.
 * Thread: a plan under construction belongs to the thread building it.
 */
#ifndef TG_KP_INT_H
#define TG_KP_INT_H

#include "kernels/kern_int.h"

#include <dnnl.h>

enum { KP_MAX_ARGS = KERN_MAX_IN + 2 };	/* Concat: every source and its destination */

struct kern_step {
	dnnl_primitive_t prim;
	int nargs;
	dnnl_exec_arg_t args[KP_MAX_ARGS];
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

/* A head (Conv, Gemm, binary, eltwise) and the followers fused into it as post-ops. */
struct kp_chain {
	const struct kern_node *nodes[8];
	int n;
	int sum_v;			/* Add's other operand, -1 if none */
	int out_v;			/* value the fused primitive produces */
};

/* How an int8 primitive's fused chain meets its data types: see op_int8.c. */
struct kp_quant {
	float dst_scale;		/* 1 / scale of an int8 dst, 1 for f32 */
	float sum_scale;		/* the residual's scale into real units */
	dnnl_data_type_t sum_dt;	/* residual's data type as placed in dst */
	dnnl_data_type_t dst_dt;
};
extern const struct kp_quant kp_quant_f32;

/* ---- op_int8.c: int8 layers with weights (Conv, Gemm) ---- */

/**
 * The data types of a Conv or Gemm reading x with fused chain c: true (int8, with x's type
 * and scale in xdt, xs and the chain's in q) when the plan is int8 and x has a calibrated
 * range; false (f32: q = kp_quant_f32) otherwise.
 */
bool kp_layer_quant(struct kern_plan *p, int x, const struct kp_chain *c, dnnl_data_type_t *xdt,
		    float *xs, struct kp_quant *q);
struct kp_prim;
/**
 * An int8 layer's constants and scales, before its pd is created: weights wt ([oc, ...] f32,
 * plain as w_plain_f32) quantized s8 per output channel into the layout op_desc's
 * primitive wants (*wm), bias bt (NULL: none; one value or oc) rescaled (*bm), and the
 * per-channel output scales set on pr->attr. @return 0 or -errno with p->err set
 */
int kp_int8_layer(struct kern_plan *p, const struct kern_node *n, const void *op_desc,
		  const struct tg_tensor *wt, const struct tg_tensor *bt,
		  const dnnl_memory_desc_t *w_plain_f32, float src_scale, int64_t oc,
		  struct kp_prim *pr, dnnl_memory_t *wm, dnnl_memory_t *bm);

/*
 * One primitive under construction: its descriptor, attributes and arguments. Builders
 * start from { 0 }, fill it (kp_prim_desc, kp_arg) and always finish with kp_prim_end(),
 * which appends the primitive when all went well and releases pd and attr either way.
 */
struct kp_prim {
	dnnl_primitive_desc_t pd;
	dnnl_primitive_attr_t attr;	/* NULL: default attributes */
	int nargs;
	dnnl_exec_arg_t args[KP_MAX_ARGS];
};

static inline void
kp_arg(struct kp_prim *pr, int kind, dnnl_memory_t mem)
{
	pr->args[pr->nargs++] = (dnnl_exec_arg_t){ kind, mem };
}

/** pr->pd from op_desc with pr->attr, when rc is 0. @return rc, or the failure */
int kp_prim_desc(struct kern_plan *p, struct kp_prim *pr, int rc, const void *op_desc,
		 const struct kern_node *n, const char *what);
/** A memory descriptor pr->pd chose (dnnl_query_src_md, ...). */
const dnnl_memory_desc_t *kp_prim_md(const struct kp_prim *pr, dnnl_query_t what);
/**
 * Every builder's end: when rc is 0, y >= 0 gets a new memory in the layout pr->pd chose as
 * its destination (the DST argument), and the primitive is created and appended with its
 * arguments. pr->pd and pr->attr are released whatever happened. @return rc, or the failure
 */
int kp_prim_end(struct kern_plan *p, struct kp_prim *pr, int rc, int y, const struct kern_node *n);

/* ---- plan.c helpers for the builders; each returns 0 or -errno with p->err set ---- */

/** A oneDNN status as 0, or the error naming the node and what failed. */
int kp_chk(struct kern_plan *p, dnnl_status_t st, const struct kern_node *n, const char *what);
/* Every oneDNN call of plan building: skipped and failed when the fault hook says so
 * (fault.c), then checked by kp_chk(). */
#define KP_DNNL(call) (kern_fault() ? dnnl_out_of_memory : (call))
#define KP_CHK(p, call, n, what) kp_chk((p), KP_DNNL(call), (n), (what))
/** A new memory of md owned by the plan: allocated (handle NULL) or over handle's bytes. */
int kp_mem_new(struct kern_plan *p, const dnnl_memory_desc_t *md, void *handle,
	       dnnl_memory_t *out, const struct kern_node *n);
const dnnl_memory_desc_t *kp_md(dnnl_memory_t mem);
void *kp_handle(dnnl_memory_t mem);
bool kp_is_int8(const dnnl_memory_desc_t *md);
/** Dense row-major f32 descriptor of any rank (rank 0: one element). */
void kp_plain_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims);
/** f32 descriptor whose layout the primitive picks. */
void kp_any_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims);
void kp_dims(dnnl_dims_t d, const int64_t *src, int n);
/** Shape of v padded with leading 1s to rank nd (numpy broadcasting). */
void kp_expand_dims(const struct kern_plan *p, int v, int nd, int64_t *out);
bool kp_same_shape(const struct kern_plan *p, int a, int b);
/** Reorder src into dst: appended as a step, or run once now (weights). v: the value both
 * hold, whose int8 scale a crossing between f32 and int8 applies (-1: none). */
int kp_reorder_v(struct kern_plan *p, int v, dnnl_memory_t src, dnnl_memory_t dst, bool now,
		 const struct kern_node *n);
int kp_reorder(struct kern_plan *p, dnnl_memory_t src, dnnl_memory_t dst, bool now,
	       const struct kern_node *n);
/** Constant v in layout want (NULL: plain), reordered once from its plain bytes. */
int kp_const(struct kern_plan *p, int v, const dnnl_memory_desc_t *plain,
	     const dnnl_memory_desc_t *want, dnnl_memory_t *out, const struct kern_node *n);
/** Value v in layout want (NULL: its own): its memory, or a reorder made once. */
int kp_get(struct kern_plan *p, int v, const dnnl_memory_desc_t *want, dnnl_memory_t *out,
	   const struct kern_node *n);
/** Value v in f32, in the layout it has. */
int kp_get_f32(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n);
/** Value v in plain f32 layout. */
int kp_get_plain(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n);
/** Value v in plain layout seen at rank nd with dims d (leading 1s): same bytes. */
int kp_get_plain_as(struct kern_plan *p, int v, int nd, const int64_t *d,
		    dnnl_memory_desc_t *md, dnnl_memory_t *out, const struct kern_node *n);
/** Value v for a primitive taking any layout: its own memory's (f32), plain if none. */
int kp_get_src(struct kern_plan *p, int v, dnnl_memory_t *out, const struct kern_node *n);
/** v's int8 type and scale, when the plan is int8 and v was calibrated. */
bool kp_qparams(const struct kern_plan *p, int v, dnnl_data_type_t *dt, float *scale);
/** The fused chain as attributes: post-ops (and int8 scaling per q), library scratchpad. */
int kp_chain_attr(struct kern_plan *p, const struct kp_chain *c, dnnl_primitive_attr_t *attr,
		  const struct kern_node *head, const struct kp_quant *q);
/** Append node n's eltwise as a post-op. @return 0, -EINVAL (not an eltwise) or -EIO */
int kp_append_eltwise(const struct kern_plan *p, dnnl_post_ops_t po, const struct kern_node *n);
/** The oneDNN eltwise node n is, with its parameters; false when it is none. */
bool kp_eltwise_params(const struct kern_plan *p, const struct kern_node *n, struct kern_elt *e);
/** Output n->out[0] as the input's bytes in plain layout, another shape (op_shape.c). */
int kp_build_view(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c);

#endif
