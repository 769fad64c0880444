/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels: the tail inference engine. Loads an ONNX model (protobuf-c, read with io_uring),
 * folds BatchNormalization and the exporter's shape arithmetic, finds the split points, and
 * runs the head or the tail from any split for a batch with oneDNN. Prefix kern_.
 *
 * Threads: a kern_model is immutable once loaded and may be shared by any number of threads.
 * A kern_plan belongs to one thread at a time (its buffers are its own).
 */
#ifndef TG_KERNELS_H
#define TG_KERNELS_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kern_model;
struct kern_plan;

/** Bounds a model file must respect; a file over them is refused before allocation. */
struct kern_load_opts {
	size_t max_file_bytes;		/* default 512 MiB */
	unsigned max_nodes;		/* default 100,000 */
	uint64_t max_tensor_elems;	/* any one tensor, per sample for activations; default 2^28 */
};

/**
 * Load and check a model file. The file is read with io_uring.
 * A QDQ file (QuantizeLinear/DequantizeLinear, as kern_model_export_qdq() and other
 * quantizers write) loads as the float model it quantizes: constant DequantizeLinears become
 * their f32 values and QuantizeLinear -> DequantizeLinear pairs on activations are removed
 * (run it in int8 with a calibration: its activations keep their names); any other use of
 * the two ops is refused as unsupported.
 * @param opts  NULL for the defaults
 * @param out   set to a new model the caller frees with kern_model_free()
 * @return 0, or -EINVAL (malformed or unsupported: err names the node, op and attribute),
 *         -EFBIG (over a bound), -ENOMEM, -errno of the read
 */
int kern_model_load(const char *path, const struct kern_load_opts *opts,
		    struct kern_model **out, struct tg_err *err);

/** As kern_model_load() from bytes in memory (the caller keeps buf). */
int kern_model_load_mem(const uint8_t *buf, size_t len, const char *name,
			const struct kern_load_opts *opts, struct kern_model **out,
			struct tg_err *err);

/** Release a model; NULL allowed. Every plan built on it must be freed first. */
void kern_model_free(struct kern_model *m);

/** Whole-model facts, per sample (batch 1). */
struct kern_model_info {
	const char *name;		/* file name the model was loaded from */
	unsigned n_nodes;		/* ONNX nodes in the file */
	unsigned n_exec_nodes;		/* nodes left to execute after folding */
	uint64_t n_params;		/* weight elements after folding */
	uint64_t flops;			/* multiply-adds count 2, per sample */
	unsigned n_inputs;		/* graph inputs that are not initializers */
	unsigned n_outputs;		/* graph outputs = exits */
	unsigned n_splits;		/* rows of the split table, the input included */
};
void kern_model_get_info(const struct kern_model *m, struct kern_model_info *out);

/**
 * Operator histogram of the file as loaded: fills up to max (op name, count) pairs.
 * @return the number of distinct ops (may exceed max).
 */
unsigned kern_model_op_counts(const struct kern_model *m, const char **ops, unsigned *counts,
			      unsigned max);

/** One row of the split table. Row 0 is the model input (the whole model is the tail). */
struct kern_split {
	unsigned index;			/* row in the table, 0..n_splits-1, in execution order */
	const char *name;		/* ONNX tensor name */
	int ndim;
	int64_t dims[TG_MAX_DIMS];	/* at batch 1 (dims[0] == 1) */
	uint64_t numel;			/* elements per sample */
	uint64_t head_flops;		/* per sample, from the input to this tensor */
	uint64_t tail_flops;		/* per sample, from this tensor to every output after it */
};

/** @return row idx of the split table, or NULL past the end. */
const struct kern_split *kern_model_split(const struct kern_model *m, unsigned idx);

/**
 * Resolve a split given as a tensor name, as "input", or as a row index in decimal.
 * @return the row index, or -ENOENT with err set (an index past the last row included).
 */
int kern_model_find_split(const struct kern_model *m, const char *name_or_index,
			  struct tg_err *err);

/** A graph output: one exit of a multi-exit model. */
struct kern_output {
	unsigned index;			/* order in the ONNX graph's outputs */
	const char *name;
	int ndim;
	int64_t dims[TG_MAX_DIMS];	/* at batch 1 */
	uint64_t flops;			/* per sample, from the input to this output */
};
const struct kern_output *kern_model_output(const struct kern_model *m, unsigned idx);

/** True when output out depends on the split tensor (a server-side exit for that split). */
bool kern_model_output_in_tail(const struct kern_model *m, unsigned split, unsigned out);

/** Which part of the graph a plan runs. */
enum kern_plan_kind {
	KERN_PLAN_TAIL,		/* split tensor in; every output that depends on it out */
	KERN_PLAN_HEAD,		/* model input in; the split tensor, then the outputs before it */
	KERN_PLAN_GRAPH,	/* every graph input in at the shapes given; every output out */
	KERN_PLAN_SEGMENT,	/* split tensor in; the tensor at split_to, then the exits
				 * between the two, out: one link of a tail cut at several splits */
};

/** Arithmetic of a plan. */
enum kern_precision {
	KERN_PREC_F32 = 0,	/* everything in fp32 */
	KERN_PREC_INT8,		/* Conv and Gemm in int8 (u8/s8 activations, s8 weights with
				 * per-channel scales, activation scales from a calibration);
				 * tensors without a calibrated range, and every output, stay f32 */
};

struct kern_calib;

struct kern_plan_spec {
	enum kern_plan_kind kind;
	enum kern_precision precision;
	const struct kern_calib *calib;	/* INT8: activation ranges; must outlive the plan */
	unsigned split;			/* TAIL, HEAD, SEGMENT: row of the split table */
	unsigned split_to;		/* SEGMENT: a later row, where the segment ends */
	unsigned batch;			/* TAIL, HEAD: samples per run, >= 1 */
	/* GRAPH only: concrete shape of every graph input, in graph order (data ignored). */
	const struct tg_tensor *input_shapes;
	unsigned n_input_shapes;
};

/**
 * Build an execution plan: shapes resolved for the batch, oneDNN primitives created,
 * weights reordered into the layouts they chose, every buffer allocated. Running it
 * allocates nothing.
 * @param out  set to a plan the caller frees with kern_plan_free(); it refers to m
 * @return 0, -EINVAL (bad spec, or an input shape the graph cannot take), -ENOMEM, -EIO
 *         (oneDNN refused: err says which node)
 */
int kern_plan_create(const struct kern_model *m, const struct kern_plan_spec *spec,
		     struct kern_plan **out, struct tg_err *err);
void kern_plan_free(struct kern_plan *p);

/** Inputs and outputs of a plan, dense row-major (NCHW) f32 unless said otherwise. */
unsigned kern_plan_n_inputs(const struct kern_plan *p);
unsigned kern_plan_n_outputs(const struct kern_plan *p);

/**
 * A view of input i's buffer: dims at the plan's batch, data owned by the plan, valid until
 * kern_plan_free(). The caller writes it before kern_plan_run().
 */
int kern_plan_input(struct kern_plan *p, unsigned i, struct tg_tensor *view);

/**
 * A view of output i after kern_plan_run(): dims, data owned by the plan. For HEAD plans,
 * output 0 is the split tensor. name_out, if not NULL, gets the ONNX tensor name.
 */
int kern_plan_output(const struct kern_plan *p, unsigned i, struct tg_tensor *view,
		     const char **name_out);

/**
 * Run the plan on what its inputs hold. Thread: the plan's owner; no allocation.
 * @return 0 or -EIO (oneDNN failed)
 */
int kern_plan_run(struct kern_plan *p);

/**
 * A tail (or head) with one plan per batch-size bucket (1, 2, 4, ... up to max_batch, and
 * max_batch itself), built once: a run of n samples uses the smallest bucket >= n.
 * Thread: one owner at a time, like a plan.
 */
struct kern_tail;

/**
 * @param spec  kind TAIL, HEAD or SEGMENT with its splits, precision and calibration; batch
 *              is ignored (the buckets are)
 * @return 0, or as kern_plan_create().
 */
int kern_tail_create(const struct kern_model *m, const struct kern_plan_spec *spec,
		     unsigned max_batch, struct kern_tail **out, struct tg_err *err);
void kern_tail_free(struct kern_tail *t);
/** The plan that will run n samples (1 <= n <= max_batch), NULL otherwise. */
struct kern_plan *kern_tail_plan(struct kern_tail *t, unsigned n);
/** Largest batch the tail takes. */
unsigned kern_tail_max_batch(const struct kern_tail *t);

/**
 * Parse a serialized ONNX TensorProto (the test data format of ONNX's backend tests) into
 * a new tensor. name, if not NULL, receives the tensor's name (truncated to name_len).
 * @return 0, -EINVAL (malformed, or a data type other than float/int64/int32/uint8/int8/float16)
 */
int kern_tensor_pb_parse(const uint8_t *buf, size_t len, struct tg_tensor *out, char *name,
			 size_t name_len, struct tg_err *err);

/**
 * Input rows from a device: copy n samples of the given dtype into input i of the plan,
 * starting at row, dequantizing as real = scale * (q - zero_point) (f32 ignores both; f16 is
 * IEEE half). The copy that assembles a batch is also the dequantization: no extra pass.
 * @return 0, or -EINVAL (row + n past the batch, unknown dtype)
 */
int kern_plan_load_rows(struct kern_plan *p, unsigned i, unsigned row, unsigned n,
			enum tg_dtype dtype, const void *src, float scale, int32_t zero_point);

/* ---- int8 calibration: activation ranges per tensor ---- */

/** An empty calibration for m. @return 0 or -ENOMEM. */
int kern_calib_create(const struct kern_model *m, struct kern_calib **out, struct tg_err *err);
void kern_calib_free(struct kern_calib *c);

/**
 * Run the whole model in fp32 on a batch of model inputs (dims[0] samples, f32) and widen
 * every tensor's observed range. Call once per batch of calibration images.
 */
int kern_calib_observe(struct kern_calib *c, const struct tg_tensor *input, struct tg_err *err);

/** Save as text ("tailgate-calib 1", then "<tensor> <min> <max>" per line). */
int kern_calib_save(const struct kern_calib *c, const char *path, struct tg_err *err);
/** Load a saved calibration for m; names unknown to m are an error. */
int kern_calib_load(const struct kern_model *m, const char *path, struct kern_calib **out,
		    struct tg_err *err);
/**
 * The ranges of src (a calibration of another model) for m's tensors of the same names:
 * a skip-dropped variant's calibration from its base's. Tensors src has no range for stay
 * unobserved (they run in f32). @return 0 or -ENOMEM
 */
int kern_calib_subset(const struct kern_calib *src, const struct kern_model *m,
		      struct kern_calib **out, struct tg_err *err);
/** Tensors with a recorded range. */
unsigned kern_calib_count(const struct kern_calib *c);

/**
 * Make oneDNN's OpenMP threads sleep, not spin, between primitives: on a host where the RX
 * lcore, other processes or a second engine share the cores, spinning threads that wait for
 * a descheduled peer stall whole batches (measured: a 2-thread batch-8 run at 572 ms under
 * load instead of ~1 ms). libgomp reads OMP_WAIT_POLICY only at start, so when it is unset
 * this sets it to PASSIVE and re-executes the program with the same argv. Call first thing
 * in main(); returns only if nothing had to change (or the re-exec failed).
 */
void kern_prefer_passive_wait(char **argv);

/** Use at most n threads for oneDNN's primitives (OpenMP); 0 = all cores. */
void kern_set_threads(unsigned n);

/**
 * Write the tail from a split as an ONNX model of its own, for other runtimes (the engine
 * benchmark's ONNX Runtime peer) and for checking the engine against them. The model has
 * one input, the split tensor at batch samples (its dims fixed), the file's original nodes of
 * the tail (a BatchNormalization folded at load is written unfolded, as in the file), the
 * initializers they read, and the graph outputs in the tail. Shape arithmetic the tail reads
 * (Shape -> Gather -> Concat -> Reshape, ...) is kept as nodes where it reads only the tail's
 * tensors, and written as constants evaluated at batch where it reads the head's, so nothing
 * refers to the head. (The engine analyses a model at batch 1: a model with constants frozen
 * at batch > 1 loads in other runtimes only.) Opset is the file's, IR version at least 4.
 * Thread: any (m is only read).
 * @param split  row of the split table (0: the whole model)
 * @param batch  samples, 1 .. 2^20
 * @param out    set to a malloc'd buffer of *len bytes the caller frees
 * @return 0, -EINVAL (bad split or batch, or a tail this cannot express: err says which
 *         tensor), -ENOMEM
 */
int kern_model_extract(const struct kern_model *m, unsigned split, unsigned batch, uint8_t **out,
		       size_t *len, struct tg_err *err);

/** What kern_model_export_qdq() quantized. */
struct kern_qdq_info {
	unsigned n_nodes;		/* Conv and Gemm nodes with int8 weights */
	unsigned n_tensors;		/* activations with a QuantizeLinear/DequantizeLinear pair */
};

/**
 * Write m as a standard QDQ ONNX model of the int8 arithmetic tailgate runs with calibration
 * c, for other runtimes and quantization tools: the file's own nodes, with a
 * QuantizeLinear/DequantizeLinear pair after each calibrated activation a quantized Conv or
 * Gemm reads and after what such a node (or an Add of two calibrated activations) computes,
 * past a Relu/Clip that alone follows it; activations u8 with tailgate's scale (a tensor never
 * negative: max/255, zero point 0; else max|x|/127, zero point 128), weights s8 per output
 * channel (max|w|/127, zero point 0), biases int32 (input scale x weight scale). A Conv or
 * Gemm runs in int8 when its input has a range in c and its weight is an f32 initializer.
 * Graph outputs stay f32. Opset is the file's (13 at least: per-axis DequantizeLinear), IR
 * version 7 at least. Thread: any (m and c are only read).
 * @param c     a calibration of m (kern_calib_load, kern_calib_observe)
 * @param out   set to a malloc'd buffer of *len bytes the caller frees
 * @param info  if not NULL, what was quantized
 * @return 0, -EINVAL (c is not m's, the file's opset is below 13, nothing has a calibrated
 *         input, or a Conv's output is folded into a BatchNormalization: err says which),
 *         -ENOMEM
 */
int kern_model_export_qdq(const struct kern_model *m, const struct kern_calib *c, uint8_t **out,
			  size_t *len, struct kern_qdq_info *info, struct tg_err *err);

/**
 * The tail of m from a split at a fixed batch (kern_model_extract) as a QDQ ONNX model
 * (kern_model_export_qdq), quantized with c's ranges: the tail's tensors keep their names, so
 * each carries the scale and zero point it has in m's own export, and the tail's input (the
 * split tensor) gets its Q/DQ pair when a quantized node reads it. For runtimes that want a
 * fixed input shape (ONNX Runtime in the engine benchmark). Thread: any (m and c only read).
 * @param split  row of the split table (0: the whole model)
 * @param batch  samples, 1 .. 2^20
 * @param out    set to a malloc'd buffer of *len bytes the caller frees
 * @return 0, -EINVAL (c is not m's, bad split or batch, a tail extract cannot express, or
 *         kern_model_export_qdq's reasons on the tail: err says which), -ENOMEM
 */
int kern_model_export_qdq_tail(const struct kern_model *m, const struct kern_calib *c,
			       unsigned split, unsigned batch, uint8_t **out, size_t *len,
			       struct kern_qdq_info *info, struct tg_err *err);

/* ---- skip-dropped variants: residual blocks and their removal ---- */

/**
 * A residual block: an Add of two activations of the Add's own shape. It is droppable when
 * one input (the shortcut) alone feeds every node computing the other (the branch) and
 * nothing outside the branch reads inside it: then the Add's output may be replaced by the
 * shortcut and the branch removed. Strings point into the model (valid while it lives).
 */
struct kern_block {
	unsigned index;			/* among the model's residual Adds, in execution order */
	const char *add;		/* the Add node's name */
	const char *output;		/* its output tensor */
	const char *shortcut;		/* the input kept when dropped; NULL: not droppable */
	uint64_t flops_saved;		/* per sample: the branch's nodes and the Add */
	bool droppable;
	const char *why;		/* not droppable: why (a static string) */
};

/**
 * The residual blocks of m, droppable or not, in execution order: fills up to max (out may
 * be NULL with max 0). Thread: any. @return how many there are (may exceed max).
 */
unsigned kern_model_blocks(const struct kern_model *m, struct kern_block *out, unsigned max);

/**
 * Resolve a block given as its index, its Add node's name or its output tensor's name.
 * @return the index, -ENOENT (no such block: err says how many there are), or -EINVAL (the
 *         block exists and is not droppable: err names it and says why)
 */
int kern_model_find_block(const struct kern_model *m, const char *s, struct tg_err *err);

/**
 * Write m's file with blocks[0..n) dropped: each Add's readers read its shortcut instead
 * (an Add that is a graph output becomes an Identity of the shortcut), and every node,
 * initializer and value_info that then feeds nothing is removed. The rest of the file (opset,
 * names, attributes, BatchNormalization nodes as they were) is kept: it is a standard ONNX
 * model other runtimes load. Thread: any (m is only read).
 * @param out  set to a malloc'd buffer of *len bytes the caller frees
 * @return 0, -EINVAL (a block out of range, listed twice or not droppable: err names it),
 *         -ENOMEM
 */
int kern_model_drop(const struct kern_model *m, const unsigned *blocks, unsigned n,
		    uint8_t **out, size_t *len, struct tg_err *err);

/* ---- offline runs over many samples: tools, tests, benchmarks (not the serving path) ---- */

/**
 * The plans of one (kind, split, precision) for running N samples in batches of B: one for
 * the full batch and one for the remainder, built on first use and reused, so a run builds
 * at most two plans. Zero it, set m and spec (spec.batch is ignored), release with
 * kern_stage_free(). Thread: one owner at a time, like a plan.
 */
struct kern_stage {
	const struct kern_model *m;
	struct kern_plan_spec spec;
	struct kern_plan *plan[2];
	unsigned batch[2];
};

/** The stage's plan for batches of b (1 .. 2^20), built when it has none. */
int kern_stage_plan(struct kern_stage *st, unsigned b, struct kern_plan **out,
		    struct tg_err *err);
void kern_stage_free(struct kern_stage *st);

/** Every output of a run over N samples, full length (dims[0] = N), by ONNX name. */
struct kern_outs {
	unsigned n;
	struct tg_tensor *t;	/* [n], malloc'd data */
	char **name;		/* [n], malloc'd */
};
void kern_outs_free(struct kern_outs *o);

/**
 * Copy samples [first, first + b) of src (f32, dims[0] samples of the plan input's size) into
 * input 0 of p; rows of a larger plan batch past b are zeroed (defined, don't-care).
 * @return 0 or -EINVAL (dtype, sample size or batch do not match: err says which)
 */
int kern_plan_feed(struct kern_plan *p, const struct tg_tensor *src, size_t first, unsigned b,
		   struct tg_err *err);

/**
 * Copy the first b rows of p's first n_take outputs (all when n_take is 0 or larger) to
 * samples [first, first + b) of o, which is sized for n_samples on first use.
 * @return 0, -EINVAL (outputs changed shape between batches), -ENOMEM
 */
int kern_outs_take(struct kern_outs *o, const struct kern_plan *p, unsigned n_take,
		   size_t n_samples, size_t first, unsigned b, struct tg_err *err);

/**
 * Run the stage over every sample of x (f32 [N, ...]) in batches of b (the last one may be
 * smaller), gathering every plan output into o (empty on entry, or filled by an earlier run
 * with the same shapes).
 * @return 0, or as kern_stage_plan(), kern_plan_feed(), kern_plan_run(), kern_outs_take()
 */
int kern_stage_run(struct kern_stage *st, unsigned b, const struct tg_tensor *x,
		   struct kern_outs *o, struct tg_err *err);

/* ---- test hook ---- */

/**
 * Fault injection (SQLite's malloc tests): the nth allocation or oneDNN call made while
 * building plans (kern_plan_create and the shape evaluation it runs) fails once, as if
 * memory ran out; nth = 0 disarms. A test walks nth = 1, 2, ... until a build counts fewer
 * calls than nth: every error path then ran, and each must return an error, leak nothing and
 * leave *out unset. Always compiled in; disarmed it costs one relaxed load per call at plan
 * build time, and kern_plan_run never looks at it.
 * Thread: arm it only while no other thread builds plans (the counter is process-wide).
 */
void kern_fault_arm(unsigned long nth);
/** Allocations and oneDNN calls counted since kern_fault_arm() (only while armed). */
unsigned long kern_fault_count(void);

#endif
