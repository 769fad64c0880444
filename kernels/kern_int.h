/*
 * kernels internals, shared by the kernels module only: the graph IR the loader builds, the
 * folding and split analysis read, and the plan builder turns into oneDNN primitives.
 */
#ifndef TG_KERN_INT_H
#define TG_KERN_INT_H

#include "kernels/kernels.h"

#include <stdbool.h>
#include <stdint.h>

/* Every operator the loader accepts: one line gives the enum, the ONNX name, and whether it
 * can run on shape values at load/plan time (static), on activations (data), or both. */
#define KERN_FOREACH_OP(_)                                    \
	_(CONV, "Conv", 0, 1)                                 \
	_(CONVT, "ConvTranspose", 0, 1)                       \
	_(BN, "BatchNormalization", 0, 1)                     \
	_(LAYERNORM, "LayerNormalization", 0, 1)              \
	_(RELU, "Relu", 0, 1)                                 \
	_(CLIP, "Clip", 0, 1)                                 \
	_(SIGMOID, "Sigmoid", 0, 1)                           \
	_(HARDSWISH, "HardSwish", 0, 1)                       \
	_(HARDSIGMOID, "HardSigmoid", 0, 1)                   \
	_(LEAKYRELU, "LeakyRelu", 0, 1)                       \
	_(ELU, "Elu", 0, 1)                                   \
	_(TANH, "Tanh", 0, 1)                                 \
	_(EXP, "Exp", 0, 1)                                   \
	_(ABS, "Abs", 0, 1)                                   \
	_(SQRT, "Sqrt", 0, 1)                                 \
	_(NEG, "Neg", 0, 1)                                   \
	_(RECIPROCAL, "Reciprocal", 0, 1)                     \
	_(LOG, "Log", 0, 1)                                   \
	_(SOFTPLUS, "Softplus", 0, 1)                         \
	_(MISH, "Mish", 0, 1)                                 \
	_(GELU, "Gelu", 0, 1)                                 \
	_(ERF, "Erf", 0, 1)                                   \
	_(ROUND, "Round", 0, 1)                               \
	_(POW, "Pow", 0, 1)                                   \
	_(TRANSPOSE, "Transpose", 0, 1)                       \
	_(MAXPOOL, "MaxPool", 0, 1)                           \
	_(AVGPOOL, "AveragePool", 0, 1)                       \
	_(GAP, "GlobalAveragePool", 0, 1)                     \
	_(GMP, "GlobalMaxPool", 0, 1)                         \
	_(ADD, "Add", 1, 1)                                   \
	_(MUL, "Mul", 1, 1)                                   \
	_(SUB, "Sub", 1, 1)                                   \
	_(DIV, "Div", 1, 1)                                   \
	_(MAX, "Max", 0, 1)                                   \
	_(MIN, "Min", 0, 1)                                   \
	_(PRELU, "PRelu", 0, 1)                               \
	_(CONCAT, "Concat", 1, 1)                             \
	_(SPLIT, "Split", 0, 1)                               \
	_(RESIZE, "Resize", 0, 1)                             \
	_(UPSAMPLE, "Upsample", 0, 1)                         \
	_(GEMM, "Gemm", 0, 1)                                 \
	_(MATMUL, "MatMul", 0, 1)                             \
	_(FLATTEN, "Flatten", 0, 1)                           \
	_(RESHAPE, "Reshape", 1, 1)                           \
	_(SOFTMAX, "Softmax", 0, 1)                           \
	_(LOGSOFTMAX, "LogSoftmax", 0, 1)                     \
	_(REDUCEMEAN, "ReduceMean", 0, 1)                     \
	_(REDUCEMAX, "ReduceMax", 0, 1)                       \
	_(REDUCEMIN, "ReduceMin", 0, 1)                       \
	_(REDUCESUM, "ReduceSum", 0, 1)                       \
	_(REDUCEPROD, "ReduceProd", 0, 1)                     \
	_(REDUCEL1, "ReduceL1", 0, 1)                         \
	_(REDUCEL2, "ReduceL2", 0, 1)                         \
	_(REDUCESUMSQUARE, "ReduceSumSquare", 0, 1)           \
	_(PAD, "Pad", 0, 1)                                   \
	_(IDENTITY, "Identity", 1, 1)                         \
	_(DROPOUT, "Dropout", 0, 1)                           \
	_(SQUEEZE, "Squeeze", 1, 1)                           \
	_(UNSQUEEZE, "Unsqueeze", 1, 1)                       \
	_(CONSTANT, "Constant", 1, 0)                         \
	_(SHAPE, "Shape", 1, 0)                               \
	_(GATHER, "Gather", 1, 0)                             \
	_(SLICE, "Slice", 1, 1)                               \
	_(CAST, "Cast", 1, 0)

enum kern_op {
#define _(sym, name, st, da) KOP_##sym,
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
int kern_shapes_alloc(const struct kern_model *m, struct kern_shapes *s);
void kern_shapes_free(const struct kern_model *m, struct kern_shapes *s);
/* Resolve every value's shape and every static value from the graph inputs' shapes. */
int kern_shapes_infer(const struct kern_model *m, const struct tg_tensor *in_shapes,
		      struct kern_shapes *s, struct tg_err *err);
/* A static input's contents as int64s (Reshape's shape, Pad's pads, ...): count, or -EINVAL. */
int kern_static_ints(const struct kern_shapes *s, int v, int64_t *out, int max);
/* Window geometry with auto_pad resolved: explicit pads (begins, ends) and output sizes. */
/** ConvTranspose's output size and pads (begins then ends) for an input. @return 0 or -EINVAL */
int kern_convt_resolve(const struct kern_node *n, const int64_t *in_sp, int nsp,
		       const int64_t *kernel, int64_t *pads, int64_t *out_sp);
int kern_conv_resolve(const struct kern_node *n, const int64_t *in_sp, int nsp, int64_t *kernel,
		      int64_t *pads, int64_t *out_sp);
int kern_pool_resolve(const struct kern_node *n, const int64_t *in_sp, int64_t *pads,
		      int64_t *out_sp);
/* A static scalar (Clip's min and max). */
int kern_static_float(const struct kern_shapes *s, int v, float *out);
/** Whether a PRelu's slope is per channel (opset < 7 semantics) rather than broadcast. */
bool kern_prelu_per_channel(const struct kern_model *m, const struct kern_shapes *s,
			    const struct kern_node *n);
/** A Slice on activations as a box (begin, count per dim). @return 0 or -EINVAL */
int kern_slice_box(const struct kern_shapes *s, const struct kern_node *n, int nd,
		   const int64_t *dims, int64_t *begin, int64_t *count);
/** Sizes of a Split's outputs along its axis of length dim. @return 0 or -EINVAL */
int kern_split_sizes(const struct kern_shapes *s, const struct kern_node *n, int64_t dim,
		     int64_t *sizes);
/** A Resize/Upsample's output dims and per-dim scales (out/in when sizes are given), and
 * whether oneDNN's resampling computes it exactly. @return 0 or -EINVAL with *why set */
int kern_resize_geometry(const struct kern_model *m, const struct kern_shapes *s,
			 const struct kern_node *n, int64_t *out_dims, float *scales,
			 const char **why);
/** Which dims of an nd-D input a Reduce* node reduces (flags). @return 0 or -EINVAL */
int kern_reduce_axes(const struct kern_shapes *s, const struct kern_node *n, int nd, bool *red);

#endif
