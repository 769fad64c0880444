/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels internals, shared by the kernels module only: the graph IR the loader builds, the
 * folding and split analysis read, and the plan builder turns into oneDNN primitives.
 */
#ifndef TG_KERN_INT_H
#define TG_KERN_INT_H

#include "kernels/kernels.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Every operator the loader accepts, one line each: the enum, the ONNX name, its definition
 * kern_op_<def> (attributes, shape rules, static evaluation, FLOPs, plan builder: struct
 * kern_op_def) and the family file kernels/op_<family>.c that defines it. Adding an operator
 * is a line here and a definition in its family's file.
 */
#define KERN_FOREACH_OP(_) \
	_(CONV, "Conv", conv, conv)                                     \
	_(CONVT, "ConvTranspose", convt, conv)                          \
	_(BN, "BatchNormalization", bn, norm)                           \
	_(LAYERNORM, "LayerNormalization", layernorm, norm)             \
	_(RELU, "Relu", relu, eltwise)                                  \
	_(CLIP, "Clip", clip, eltwise)                                  \
	_(SIGMOID, "Sigmoid", sigmoid, eltwise)                         \
	_(HARDSWISH, "HardSwish", hardswish, eltwise)                   \
	_(HARDSIGMOID, "HardSigmoid", hardsigmoid, eltwise)             \
	_(LEAKYRELU, "LeakyRelu", leakyrelu, eltwise)                   \
	_(ELU, "Elu", elu, eltwise)                                     \
	_(TANH, "Tanh", tanh, eltwise)                                  \
	_(EXP, "Exp", exp, eltwise)                                     \
	_(ABS, "Abs", abs, eltwise)                                     \
	_(SQRT, "Sqrt", sqrt, eltwise)                                  \
	_(NEG, "Neg", neg, eltwise)                                     \
	_(RECIPROCAL, "Reciprocal", reciprocal, eltwise)                \
	_(LOG, "Log", log, eltwise)                                     \
	_(SOFTPLUS, "Softplus", softplus, eltwise)                      \
	_(MISH, "Mish", mish, eltwise)                                  \
	_(GELU, "Gelu", gelu, eltwise)                                  \
	_(ERF, "Erf", erf, eltwise)                                     \
	_(ROUND, "Round", round, eltwise)                               \
	_(POW, "Pow", pow, eltwise)                                     \
	_(TRANSPOSE, "Transpose", transpose, layout)                    \
	_(MAXPOOL, "MaxPool", maxpool, pool)                            \
	_(AVGPOOL, "AveragePool", avgpool, pool)                        \
	_(GAP, "GlobalAveragePool", gap, pool)                          \
	_(GMP, "GlobalMaxPool", gmp, pool)                              \
	_(ADD, "Add", add, binary)                                      \
	_(MUL, "Mul", mul, binary)                                      \
	_(SUB, "Sub", sub, binary)                                      \
	_(DIV, "Div", div, binary)                                      \
	_(MAX, "Max", max, binary)                                      \
	_(MIN, "Min", min, binary)                                      \
	_(PRELU, "PRelu", prelu, eltwise)                               \
	_(CONCAT, "Concat", concat, layout)                             \
	_(SPLIT, "Split", split, layout)                                \
	_(RESIZE, "Resize", resize, resize)                             \
	_(UPSAMPLE, "Upsample", upsample, resize)                       \
	_(GEMM, "Gemm", gemm, matmul)                                   \
	_(MATMUL, "MatMul", matmul, matmul)                             \
	_(FLATTEN, "Flatten", flatten, shape)                           \
	_(RESHAPE, "Reshape", reshape, shape)                           \
	_(SOFTMAX, "Softmax", softmax, norm)                            \
	_(LOGSOFTMAX, "LogSoftmax", logsoftmax, norm)                   \
	_(REDUCEMEAN, "ReduceMean", reducemean, reduce)                 \
	_(REDUCEMAX, "ReduceMax", reducemax, reduce)                    \
	_(REDUCEMIN, "ReduceMin", reducemin, reduce)                    \
	_(REDUCESUM, "ReduceSum", reducesum, reduce)                    \
	_(REDUCEPROD, "ReduceProd", reduceprod, reduce)                 \
	_(REDUCEL1, "ReduceL1", reducel1, reduce)                       \
	_(REDUCEL2, "ReduceL2", reducel2, reduce)                       \
	_(REDUCESUMSQUARE, "ReduceSumSquare", reducesumsquare, reduce)  \
	_(PAD, "Pad", pad, layout)                                      \
	_(IDENTITY, "Identity", identity, shape)                        \
	_(DROPOUT, "Dropout", dropout, shape)                           \
	_(SQUEEZE, "Squeeze", squeeze, shape)                           \
	_(UNSQUEEZE, "Unsqueeze", unsqueeze, shape)                     \
	_(CONSTANT, "Constant", constant, shape)                        \
	_(SHAPE, "Shape", shape, shape)                                 \
	_(GATHER, "Gather", gather, shape)                              \
	_(SLICE, "Slice", slice, layout)                                \
	_(CAST, "Cast", cast, shape)                                   

enum kern_op {
#define _(sym, name, def, family) KOP_##sym,
	KERN_FOREACH_OP(_)
#undef _
	KOP__COUNT
};

extern const char *const kern_op_names[KOP__COUNT];

enum { KERN_MAX_IN = 8, KERN_MAX_OUT = 8 };

/** A tensor of the graph. */
struct kern_value {
	char *name;
	int producer;			/* node index, -1 for a graph input or a constant */
	bool is_input;			/* graph input fed at run time */
	bool is_const;			/* initializer or Constant: data known at load */
	bool is_static;			/* computable without activations (consts, shape math) */
	bool is_output;			/* graph output */
	bool dead;			/* folded away (e.g. a Conv output absorbed by its BN) */
	int elem_type;			/* ONNX TensorProto data type, 0 if unknown */
	struct tg_tensor cdata;		/* is_const: the data (f32 or s64) */
	/* Declared input shape (is_input): dims[0] is the batch. */
	int in_ndim;
	int64_t in_dims[TG_MAX_DIMS];
	unsigned n_consumers;		/* data and static nodes that read it */
};

/** Attributes of the ops that have them; only the relevant member is set. */
struct kern_conv_attr {
	int nsp;			/* spatial dims: 1 or 2 (3 refused) */
	int64_t kernel[2], strides[2], dilations[2], pads[4];	/* pads: begins then ends */
	int64_t group;
	int auto_pad;			/* 0 NOTSET/VALID handled, 1 SAME_UPPER, 2 SAME_LOWER */
	bool valid;			/* auto_pad VALID */
	/* ConvTranspose only */
	int64_t out_pad[2], out_shape[2];
	bool has_out_shape;
};

struct kern_pool_attr {
	int nsp;
	int64_t kernel[2], strides[2], dilations[2], pads[4];
	int auto_pad;
	bool valid;
	bool ceil_mode;
	bool count_include_pad;
};

/* Resize/Upsample modes, as their string attributes say. */
enum { KERN_RS_NEAREST, KERN_RS_LINEAR, KERN_RS_CUBIC };
enum { KERN_RS_HALF_PIXEL, KERN_RS_PYTORCH_HALF_PIXEL, KERN_RS_ALIGN_CORNERS,
       KERN_RS_ASYMMETRIC, KERN_RS_TF_CROP, KERN_RS_HALF_PIXEL_SYMMETRIC };
enum { KERN_RS_ROUND_PREFER_FLOOR, KERN_RS_ROUND_PREFER_CEIL, KERN_RS_FLOOR, KERN_RS_CEIL };

struct kern_node {
	enum kern_op op;
	char *name;			/* node name, or "<op>_<index>" when the file has none */
	int in[KERN_MAX_IN];		/* value indices, -1 for an omitted optional input */
	int n_in;
	int out[KERN_MAX_OUT];
	int n_out;
	bool is_static;			/* evaluated at plan time, never executed */
	bool dead;			/* folded away */
	union {
		struct kern_conv_attr conv;
		struct kern_pool_attr pool;
		struct { float min, max; bool has_min, has_max; } clip;	/* opset < 11 */
		struct { float alpha, beta; int trans_a, trans_b; } gemm;
		struct { float alpha, beta; } hsig;
		struct { float alpha; } elt;		/* LeakyRelu, Elu */
		struct { int64_t perm[TG_MAX_DIMS]; int n; } perm;	/* Transpose */
		struct { float eps; } bn;
		struct { int64_t axis; float eps; } ln;	/* LayerNormalization */
		struct { int64_t axis; } axis;		/* Concat, Flatten, Softmax, Gather */
		struct { int64_t axes[TG_MAX_DIMS]; int n_axes; bool has_axes; } axes;
		struct { int64_t pads[2 * TG_MAX_DIMS]; int n_pads; bool has_pads; float value; }
			pad;		/* opset < 11 attributes */
		struct { int64_t starts[TG_MAX_DIMS], ends[TG_MAX_DIMS], axes[TG_MAX_DIMS];
			 int n; bool has; } slice;	/* opset < 10 attributes */
		struct { int to; } cast;
		struct { bool tanh; } gelu;		/* Gelu: the tanh approximation */
		struct { int64_t axis, sizes[KERN_MAX_OUT]; int n_sizes; bool has_sizes; } split;
		struct { int mode, coord, nearest; float scales[TG_MAX_DIMS]; int n_scales; }
			resize;		/* enum kern_resize_* ; scales: Upsample-7's attribute */
		struct { int64_t axes[TG_MAX_DIMS]; int n_axes; bool has_axes, keepdims,
			 noop_empty; } reduce;
	} a;
	uint64_t flops;			/* per sample at batch 1, set by the analysis */
};

/** One resolved shape per value for a given set of input shapes (an "instance"). */
struct kern_shapes {
	int *ndim;			/* [n_values] */
	int64_t (*dims)[TG_MAX_DIMS];	/* [n_values] */
	struct tg_tensor *sval;		/* [n_values]: contents of static values (owned) */
	bool *known;			/* [n_values] */
};

struct kern_model {
	char *name;
	int opset;
	struct kern_value *values;
	unsigned n_values;
	struct kern_node *nodes;	/* topologically sorted */
	unsigned n_nodes;		/* as in the file */
	int *inputs;			/* graph inputs (value indices) */
	unsigned n_inputs;
	int *outputs;			/* graph outputs */
	unsigned n_outputs;
	int final_output;		/* index into outputs[] of the main exit */
	/* Analysis at batch 1. */
	struct kern_shapes shapes1;
	struct kern_split *splits;
	int *split_value;		/* [n_splits] value index of each split */
	uint8_t **tail_mask;		/* [n_splits][n_nodes]: node in the split's tail */
	unsigned n_splits;
	struct kern_output *outs;	/* [n_outputs] */
	uint64_t n_params, flops;
	unsigned n_exec_nodes;
	struct kern_load_opts opts;
	/* The file's bytes as loaded (malloc'd copy): the IR above is folded and the protobuf
	 * freed, so kern_model_extract() re-parses these to write the original nodes. */
	uint8_t *file;
	size_t file_len;
};

/* calib.c: ranges per value index; lo > hi means never observed. */
struct kern_calib {
	const struct kern_model *m;
	float *lo, *hi;			/* [n_values] */
	unsigned n_obs;			/* batches observed */
};
bool kern_calib_range(const struct kern_calib *c, int v, float *lo, float *hi);

/* plan.c: a plan whose outputs are every data tensor it computes (no fusion), for calibration */
int kern_plan_create_all(const struct kern_model *m, const struct kern_plan_spec *spec,
			 struct kern_plan **out, struct tg_err *err);
int kern_plan_output_value(const struct kern_plan *p, unsigned i);

/* onnx.c */
int kern_onnx_parse(struct kern_model *m, const uint8_t *buf, size_t len, struct tg_err *err);

/* graph.c */
int kern_graph_prepare(struct kern_model *m, struct tg_err *err);

/* A model's values sorted by name, for the writers that re-read the file's graph (extract.c,
 * qdq.c) and must map its names back to value indices. ix has m->n_values entries. */
struct kern_name_ix {
	const char *name;
	int v;
};
void kern_name_ix_build(const struct kern_model *m, struct kern_name_ix *ix);
/* @return the value index of name, -1 if the model has none by that name (or name is empty) */
int kern_name_ix_find(const struct kern_model *m, const struct kern_name_ix *ix, const char *name);
int kern_shapes_alloc(const struct kern_model *m, struct kern_shapes *s);
void kern_shapes_free(const struct kern_model *m, struct kern_shapes *s);
/* Resolve every value's shape and every static value from the graph inputs' shapes. */
int kern_shapes_infer(const struct kern_model *m, const struct tg_tensor *in_shapes,
		      struct kern_shapes *s, struct tg_err *err);
/* A static input's contents as int64s (Reshape's shape, Pad's pads, ...): count, or -EINVAL. */
int kern_static_ints(const struct kern_shapes *s, int v, int64_t *out, int max);
/* A static scalar (Clip's min and max). */
int kern_static_float(const struct kern_shapes *s, int v, float *out);
/* A static float vector (any numeric type): its length, or -EINVAL. */
int kern_static_floats(const struct kern_shapes *s, int v, float *out, int max);
/* Shape inference of one data node, and static evaluation of one static node (shapes.c:
 * the parts every op shares around its definition's infer and eval). */
int kern_infer_data(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		    struct tg_err *err);

/* ---- shapes.c helpers for the op definitions ---- */

/** An error naming the node and its op, then what is wrong: -EINVAL. */
int kern_bad(struct tg_err *err, const struct kern_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/** A negative axis counted from the end of rank. */
static inline int64_t
kern_norm_axis(int64_t axis, int rank)
{
	return axis < 0 ? axis + rank : axis;
}
void kern_set_shape(struct kern_shapes *s, int v, int ndim, const int64_t *dims);
uint64_t kern_numel(const struct kern_shapes *s, int v);
/** Numpy broadcasting of the shapes of a and b. @return 0 or -EINVAL */
int kern_broadcast(const struct kern_shapes *s, int a, int b, int *ndim, int64_t *dims);
/** A new static value of dtype dt and shape (nd, dims). @return 0 or -ENOMEM */
int kern_sval_new(struct tg_tensor *t, enum tg_dtype dt, int nd, const int64_t *dims);
double kern_sval_get(const struct tg_tensor *t, size_t i);
void kern_sval_put(struct tg_tensor *t, size_t i, double v);

/* ---- fault.c: the plan-building fault hook (kern_fault_arm in kernels.h) ---- */

/** Whether this allocation or oneDNN call is the one to fail (counted only while armed). */
bool kern_fault(void);
/* malloc, calloc, realloc and tg_tensor_alloc that fail when kern_fault() says so: every
 * allocation plan building makes goes through these. */
void *kern_malloc(size_t n);
void *kern_calloc(size_t n, size_t size);
void *kern_realloc(void *p, size_t n);
int kern_tensor_alloc(struct tg_tensor *t);

/* ---- the operator table: one definition per KERN_FOREACH_OP line ---- */

struct kern_plan;
struct kp_chain;

/** One node's attributes while the loader reads them; see the kern_attr_*() readers. */
struct kern_attrs {
	struct kern_model *m;		/* being loaded: its opset; Constant adds data to it */
	struct kern_node *n;		/* inputs and outputs already resolved */
	const void *np;			/* its Onnx__NodeProto: read through kern_attr_*() only */
	struct tg_err *err;
};

/** An elementwise operation as oneDNN runs it (alone, or as a fused post-op). */
struct kern_elt {
	int alg;			/* dnnl_alg_kind_t */
	float alpha, beta;
	bool clip01;			/* then clip to [0, 1] (HardSigmoid) */
};

/* What a static evaluation reads: every input's value, only the first input's shape (Shape,
 * static whatever its input), or nothing (Constant: its value is set at load). */
enum kern_eval_in { KERN_EVAL_VALUES, KERN_EVAL_SHAPE, KERN_EVAL_NOTHING };

/*
 * Everything the engine knows about one operator. A NULL member means "not supported":
 * no infer, not executable on activations; no eval, never evaluated at load (shape math).
 * Thread: read only, shared by every thread.
 */
struct kern_op_def {
	/* Attribute names accepted (NULL-terminated; NULL: none): any other is refused, since
	 * ignoring one would compute something else. */
	const char *const *known;
	/** Read and check the attributes into n->a. @return 0 or -EINVAL (err set) */
	int (*attrs)(struct kern_attrs *a);
	/** Output shape on activations: (*nd, d) hold the first input's on entry.
	 * @return 0, KERN_INFER_DONE when it set every output itself, or -EINVAL (err set) */
	int (*infer)(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		     int *nd, int64_t *d, struct tg_err *err);
	/** Contents of the static output s->sval[n->out[0]] (allocated here) from the inputs'.
	 * @return 0, -EINVAL (err set) or -ENOMEM */
	int (*eval)(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		    struct tg_err *err);
	enum kern_eval_in eval_in;
	/** FLOPs per sample at batch 1; NULL: one per output element. */
	uint64_t (*flops)(const struct kern_shapes *s, const struct kern_node *n);
	/** Its primitives appended to the plan (kp_int.h); c: the followers fused into it. */
	int (*build)(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c);
	/** Elementwise ops: the operation with the node's parameters. @return false when a
	 * parameter is not known at plan time */
	bool (*elt)(const struct kern_shapes *s, const struct kern_node *n, struct kern_elt *e);
	int alg;			/* oneDNN algorithm (dnnl_alg_kind_t) for its builder */
	float alpha, beta;		/* and that algorithm's fixed parameters */
	bool fuses;			/* heads a chain of fused elementwise followers */
	bool fuses_sum;			/* ... which may include one residual Add */
	bool view;			/* its output is its input's bytes seen in another shape */
};
enum { KERN_INFER_DONE = 1 };

#define _(sym, name, def, family) extern const struct kern_op_def kern_op_##def;
KERN_FOREACH_OP(_)
#undef _
/** The definition of every op, indexed by enum kern_op. */
extern const struct kern_op_def *const kern_ops[KOP__COUNT];

/* ops.c: shared members of definitions. */
/** infer: the output has the first input's shape. */
int kern_infer_same(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		    int *nd, int64_t *d, struct tg_err *err);
/** flops: none (views, copies). */
uint64_t kern_flops_none(const struct kern_shapes *s, const struct kern_node *n);
/** The node's FLOPs per sample at batch 1 (its definition's, or one per output element). */
uint64_t kern_node_flops(const struct kern_shapes *s, const struct kern_node *n);

/* onnx.c: attribute readers for the definitions' attrs(). */
bool kern_attr_has(const struct kern_attrs *a, const char *name);
int64_t kern_attr_int(const struct kern_attrs *a, const char *name, int64_t dflt);
float kern_attr_float(const struct kern_attrs *a, const char *name, float dflt);
/** An INTS attribute of at most max values: count, 0 if absent, or -EINVAL (err set). */
int kern_attr_ints(const struct kern_attrs *a, const char *name, int64_t *out, int max);
/** A FLOATS attribute of at most max values: count, 0 if absent, or -EINVAL (err set). */
int kern_attr_floats(const struct kern_attrs *a, const char *name, float *out, int max);
/** A STRING attribute's index in names (NULL-terminated), dflt when absent, -1 unknown. */
int kern_attr_enum(const struct kern_attrs *a, const char *name, const char *const *names,
		   int dflt);
/** "node (op): attribute attr: why": -EINVAL. */
int kern_attr_bad(const struct kern_attrs *a, const char *attr, const char *why);
/** Constant: its value attribute as the output value's data. @return 0 or -errno (err set) */
int kern_attr_constant(struct kern_attrs *a);

/* op_conv.c: windows of Conv and the pools. */
/** kernel_shape/strides/dilations/pads into 2-D arrays; nsp: the kernel's rank. */
int kern_attr_window(struct kern_attrs *a, int *nsp, int64_t *kernel, int64_t *strides,
		     int64_t *dilations, int64_t *pads, bool need_kernel);
int kern_attr_auto_pad(struct kern_attrs *a, int *auto_pad, bool *valid);
/** Output size of one window dimension; pads rewritten for auto_pad. -1: no room. */
int64_t kern_window_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t *pb, int64_t *pe,
			int auto_pad, bool valid, bool ceil_mode);
/* Window geometry with auto_pad resolved: explicit pads (begins, ends) and output sizes. */
int kern_conv_resolve(const struct kern_node *n, const int64_t *in_sp, int nsp, int64_t *kernel,
		      int64_t *pads, int64_t *out_sp);
/** ConvTranspose's output size and pads (begins then ends) for an input. @return 0 or -EINVAL */
int kern_convt_resolve(const struct kern_node *n, const int64_t *in_sp, int nsp,
		       const int64_t *kernel, int64_t *pads, int64_t *out_sp);
/* op_pool.c */
int kern_pool_resolve(const struct kern_node *n, const int64_t *in_sp, int64_t *pads,
		      int64_t *out_sp);
/* op_eltwise.c */
/** Whether a PRelu's slope is per channel (opset < 7 semantics) rather than broadcast. */
bool kern_prelu_per_channel(const struct kern_model *m, const struct kern_shapes *s,
			    const struct kern_node *n);
/* op_layout.c */
/** A Slice on activations as a box (begin, count per dim). @return 0 or -EINVAL */
int kern_slice_box(const struct kern_shapes *s, const struct kern_node *n, int nd,
		   const int64_t *dims, int64_t *begin, int64_t *count);
/** Sizes of a Split's outputs along its axis of length dim. @return 0 or -EINVAL */
int kern_split_sizes(const struct kern_shapes *s, const struct kern_node *n, int64_t dim,
		     int64_t *sizes);
/* op_resize.c */
/** A Resize/Upsample's output dims and per-dim scales (out/in when sizes are given), and
 * whether oneDNN's resampling computes it exactly. @return 0 or -EINVAL with *why set */
int kern_resize_geometry(const struct kern_model *m, const struct kern_shapes *s,
			 const struct kern_node *n, int64_t *out_dims, float *scales,
			 const char **why);
/* op_reduce.c */
/** Which dims of an nd-D input a Reduce* node reduces (flags). @return 0 or -EINVAL */
int kern_reduce_axes(const struct kern_shapes *s, const struct kern_node *n, int nd, bool *red);

#endif
