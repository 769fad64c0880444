/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tailgate-model: the engine from the command line, for model cards, device developers and
 * operators. Subcommands info, run, eval, bench and extract; tensors in and out as .npy.
 *   exit 0: done; 1: the engine or a file refused (tg_err message on stderr); 2: bad usage.
 */
#include "bench/bench.h"
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "util/util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
	TM_EXIT_OK = 0,
	TM_EXIT_ERR = 1,	/* engine, file or data error */
	TM_EXIT_USAGE = 2,	/* bad arguments */
};

/* Largest .npy the tool reads: a whole test set at an early split is about 1 GB. */
#define TM_MAX_NPY_BYTES ((size_t)4 << 30)

static const char *tm_prog = "tailgate-model";

static int
tm_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A bad-usage message on stderr; returns the usage exit code. */
static int
tm_usage_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", tm_prog, cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s%s%s --help'.\n", tm_prog, cmd ? " " : "", cmd ? cmd : "");
	return TM_EXIT_USAGE;
}

/* An engine or file error: the tg_err message, which names the object that failed. */
static int
tm_fail(const struct tg_err *err)
{
	fprintf(stderr, "%s: %s\n", tm_prog, err->msg[0] ? err->msg : strerror(-err->code));
	return TM_EXIT_ERR;
}

/* getopt_long's '?' or ':' (opterr is off, so the message names our command, not argv[0]). */
static int
tm_bad_opt(const char *cmd, char **argv, int opt)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (opt == ':')
		return tm_usage_err(cmd, "option '%s' needs an argument", arg);
	if (optopt != 0 && strncmp(arg, "--", 2) != 0)
		return tm_usage_err(cmd, "unknown option '-%c'", optopt);
	return tm_usage_err(cmd, "unknown option '%s'", arg);
}

/* Strict unsigned parse: decimal digits only, within [lo, hi]. */
static int
tm_parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* An option's unsigned value (optarg) within [lo, hi]; a usage message naming the option
 * and the range when it is not one. @return 0 or -EINVAL */
static int
tm_opt_uint(const char *cmd, const char *opt, unsigned long lo, unsigned long hi,
	    unsigned long *out)
{
	if (tm_parse_uint(optarg, lo, hi, out) == 0)
		return 0;
	tm_usage_err(cmd, "%s: '%s' is not a number in %lu..%lu", opt, optarg ? optarg : "",
		     lo, hi);
	return -EINVAL;
}

static int
tm_parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 86400)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- formatting ---- */

/* "[N,16,14,14]": the batch shown as N, since every shape the tool prints is per sample. */
static void
tm_shape_str(char *buf, size_t len, int ndim, const int64_t *dims, bool batch_n)
{
	size_t o = 0;

	o += (size_t)snprintf(buf + o, len - o, "[");
	for (int i = 0; i < ndim && o < len; i++) {
		if (i == 0 && batch_n)
			o += (size_t)snprintf(buf + o, len - o, "N");
		else
			o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? "," : "", dims[i]);
	}
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

/* 3 significant digits with an SI suffix: "1.23 M", "456 K", "12.3 G". */
static void
tm_si(char *buf, size_t len, uint64_t v)
{
	static const char *const sfx[] = { "", " K", " M", " G", " T", " P" };
	double d = (double)v;
	int k = 0;

	if (v < 1000) {
		snprintf(buf, len, "%" PRIu64, v);
		return;
	}
	while (d >= 999.5 && k < 5) {
		d /= 1000;
		k++;
	}
	snprintf(buf, len, "%.*f%s", d < 9.995 ? 2 : d < 99.95 ? 1 : 0, d, sfx[k]);
}

/* ---- aligned text / markdown tables ---- */

enum { TM_MAX_COLS = 12 };

struct tm_table {
	unsigned n_cols;
	char spec[512];			/* the column spec, split in place into head[] */
	const char *head[TM_MAX_COLS];	/* point into spec */
	bool right[TM_MAX_COLS];	/* right-align (numbers) */
	char **cell;			/* [n_rows * n_cols], each malloc'd */
	unsigned n_rows, cap;
};

/* spec: "name|>flops|..." where '>' marks a right-aligned column. */
static void
tm_table_init(struct tm_table *t, const char *spec)
{
	char *save = NULL, *tok;

	memset(t, 0, sizeof(*t));
	snprintf(t->spec, sizeof(t->spec), "%s", spec);
	for (tok = strtok_r(t->spec, "|", &save); tok && t->n_cols < TM_MAX_COLS;
	     tok = strtok_r(NULL, "|", &save)) {
		t->right[t->n_cols] = tok[0] == '>';
		t->head[t->n_cols] = tok + (tok[0] == '>');
		t->n_cols++;
	}
}

static void
tm_table_free(struct tm_table *t)
{
	for (unsigned i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cell[i]);
	free(t->cell);
	memset(t, 0, sizeof(*t));
}

/* Append a row of n_cols strings (copied). @return 0 or -ENOMEM. */
static int
tm_table_row(struct tm_table *t, const char *const *cells)
{
	if (t->n_rows == t->cap) {
		unsigned cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cell, (size_t)cap * t->n_cols * sizeof(*c));

		if (c == NULL)
			return -ENOMEM;
		t->cell = c;
		t->cap = cap;
	}
	for (unsigned i = 0; i < t->n_cols; i++) {
		char *s = strdup(cells[i] ? cells[i] : "");

		if (s == NULL) {
			while (i-- > 0)
				free(t->cell[t->n_rows * t->n_cols + i]);
			return -ENOMEM;
		}
		t->cell[t->n_rows * t->n_cols + i] = s;
	}
	t->n_rows++;
	return 0;
}

/* Markdown cells must not contain '|'; tensor names may. */
static void
tm_md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void
tm_table_print(const struct tm_table *t, FILE *f, bool markdown)
{
	size_t w[TM_MAX_COLS];

	for (unsigned c = 0; c < t->n_cols; c++) {
		w[c] = strlen(t->head[c]);
		for (unsigned r = 0; r < t->n_rows; r++) {
			size_t l = strlen(t->cell[r * t->n_cols + c]);

			w[c] = l > w[c] ? l : w[c];
		}
	}
	if (markdown) {
		fputc('|', f);
		for (unsigned c = 0; c < t->n_cols; c++) {
			fputc(' ', f);
			tm_md_cell(f, t->head[c]);
			fputs(" |", f);
		}
		fputs("\n|", f);
		for (unsigned c = 0; c < t->n_cols; c++)
			fputs(t->right[c] ? " ---: |" : " --- |", f);
		fputc('\n', f);
		for (unsigned r = 0; r < t->n_rows; r++) {
			fputc('|', f);
			for (unsigned c = 0; c < t->n_cols; c++) {
				fputc(' ', f);
				tm_md_cell(f, t->cell[r * t->n_cols + c]);
				fputs(" |", f);
			}
			fputc('\n', f);
		}
		return;
	}
	for (unsigned c = 0; c < t->n_cols; c++)
		fprintf(f, "%s%*s%s", c ? "  " : "", t->right[c] ? (int)w[c] : -(int)w[c],
			t->head[c], "");
	fputc('\n', f);
	for (unsigned c = 0; c < t->n_cols; c++) {
		fprintf(f, "%s", c ? "  " : "");
		for (size_t k = 0; k < w[c]; k++)
			fputc('-', f);
	}
	fputc('\n', f);
	for (unsigned r = 0; r < t->n_rows; r++) {
		for (unsigned c = 0; c < t->n_cols; c++) {
			/* The last left-aligned column is not padded: no trailing blanks. */
			bool last = c + 1 == t->n_cols;

			fprintf(f, "%s%*s", c ? "  " : "",
				t->right[c] ? (int)w[c] : last ? 0 : -(int)w[c],
				t->cell[r * t->n_cols + c]);
		}
		fputc('\n', f);
	}
}

/* ---- model loading ---- */

static int
tm_load(const char *path, struct kern_model **m, struct tg_err *err)
{
	int rc = kern_model_load(path, NULL, m, err);

	if (rc < 0 && strstr(err->msg, path) == NULL)
		tg_err_prefix(err, "model %s: ", path);
	return rc;
}

/* Load MODEL and find --split in it. @return TM_EXIT_OK, or the exit code once the failure
 * is said (the model is then freed and *m NULL). */
static int
tm_load_split(const char *cmd, const char *path, const char *split_arg, struct kern_model **m,
	      int *split)
{
	struct tg_err err = { 0 };

	if (tm_load(path, m, &err) < 0)
		return tm_fail(&err);
	*split = kern_model_find_split(*m, split_arg, &err);
	if (*split < 0) {
		kern_model_free(*m);
		*m = NULL;
		return tm_usage_err(cmd, "--split: %s", err.msg);
	}
	return TM_EXIT_OK;
}

/* "0,2" for the outputs on one side of a split, "-" for none. */
static void
tm_exit_list(char *buf, size_t len, const struct kern_model *m, unsigned n_out, unsigned split,
	     bool in_tail)
{
	size_t o = 0;

	buf[0] = '\0';
	for (unsigned k = 0; k < n_out && o < len; k++)
		if (kern_model_output_in_tail(m, split, k) == in_tail)
			o += (size_t)snprintf(buf + o, len - o, "%s%u", o ? "," : "", k);
	if (o == 0)
		snprintf(buf, len, "-");
}

/* ---- info ---- */

static void
tm_info_help(FILE *f)
{
	fprintf(f,
		"Usage: %s info MODEL [--markdown]\n"
		"Describe an ONNX model as the engine loaded it:\n"
		"  - nodes, parameters and FLOPs (per sample; a multiply-add counts 2);\n"
		"  - the operator histogram;\n"
		"  - the split-point table: row index (use it or the name with run --split),\n"
		"    tensor name, shape (N = samples), bytes per sample as f32/f16/int8, head and\n"
		"    tail FLOPs, and which exits run on the device (in the head) and which on\n"
		"    the server (in the tail) when the model is split there;\n"
		"  - the outputs (exits) with their shapes.\n"
		"Options:\n"
		"  --markdown   print the tables as markdown (for model cards)\n"
		"  -h, --help   this text\n",
		tm_prog);
}

static int
tm_info_print(const struct kern_model *m, bool md)
{
	struct kern_model_info mi;
	const char **ops = NULL;
	unsigned *counts = NULL, n_ops;
	struct tm_table t;
	char a[64], b[64], c[64], d[64], e[64], f[64], g[256], h[256], shape[128];
	int rc = -ENOMEM;

	kern_model_get_info(m, &mi);
	n_ops = kern_model_op_counts(m, NULL, NULL, 0);
	ops = calloc(n_ops + 1, sizeof(*ops));
	counts = calloc(n_ops + 1, sizeof(*counts));
	if (ops == NULL || counts == NULL)
		goto out;
	n_ops = kern_model_op_counts(m, ops, counts, n_ops);

	tm_si(a, sizeof(a), mi.n_params);
	tm_si(b, sizeof(b), mi.flops);
	if (md) {
		printf("## %s\n\n", mi.name);
		printf("| property | value |\n| --- | ---: |\n");
		printf("| ONNX nodes | %u |\n| executed nodes (after folding) | %u |\n",
		       mi.n_nodes, mi.n_exec_nodes);
		printf("| parameters | %" PRIu64 " (%s) |\n", mi.n_params, a);
		printf("| FLOPs per sample | %" PRIu64 " (%s) |\n", mi.flops, b);
		printf("| inputs | %u |\n| outputs (exits) | %u |\n| split points | %u |\n\n",
		       mi.n_inputs, mi.n_outputs, mi.n_splits);
	} else {
		printf("model       %s\n", mi.name);
		printf("nodes       %u in the file, %u executed after folding\n", mi.n_nodes,
		       mi.n_exec_nodes);
		printf("parameters  %" PRIu64 " (%s)\n", mi.n_params, a);
		printf("FLOPs       %" PRIu64 " (%s) per sample\n", mi.flops, b);
		printf("inputs      %u\noutputs     %u (exits)\nsplits      %u\n\n", mi.n_inputs,
		       mi.n_outputs, mi.n_splits);
	}

	/* Operators, most frequent first (insertion sort: a model has a few dozen ops). */
	for (unsigned i = 1; i < n_ops; i++)
		for (unsigned j = i; j > 0 && counts[j] > counts[j - 1]; j--) {
			unsigned tc = counts[j];
			const char *to = ops[j];

			counts[j] = counts[j - 1];
			ops[j] = ops[j - 1];
			counts[j - 1] = tc;
			ops[j - 1] = to;
		}
	tm_table_init(&t, "op|>count");
	for (unsigned i = 0; i < n_ops; i++) {
		snprintf(a, sizeof(a), "%u", counts[i]);
		if (tm_table_row(&t, (const char *const[]){ ops[i], a }) < 0)
			goto out_table;
	}
	printf(md ? "### Operators\n\n" : "Operators\n");
	tm_table_print(&t, stdout, md);
	tm_table_free(&t);

	tm_table_init(&t, ">index|name|shape|>f32 B|>f16 B|>int8 B|>head FLOPs|>tail FLOPs|"
			  "device exits|server exits");
	for (unsigned i = 0; i < mi.n_splits; i++) {
		const struct kern_split *s = kern_model_split(m, i);
		char idx[16];

		if (s == NULL)
			break;
		snprintf(idx, sizeof(idx), "%u", s->index);
		tm_shape_str(shape, sizeof(shape), s->ndim, s->dims, true);
		snprintf(a, sizeof(a), "%" PRIu64, s->numel * 4);
		snprintf(b, sizeof(b), "%" PRIu64, s->numel * 2);
		snprintf(c, sizeof(c), "%" PRIu64, s->numel);
		tm_si(d, sizeof(d), s->head_flops);
		tm_si(e, sizeof(e), s->tail_flops);
		tm_exit_list(g, sizeof(g), m, mi.n_outputs, i, false);
		tm_exit_list(h, sizeof(h), m, mi.n_outputs, i, true);
		if (tm_table_row(&t, (const char *const[]){ idx, s->name, shape, a, b, c, d, e, g,
							     h }) < 0)
			goto out_table;
	}
	printf(md ? "\n### Split points\n\n" : "\nSplit points (bytes and FLOPs per sample; "
						"exits by output index)\n");
	tm_table_print(&t, stdout, md);
	tm_table_free(&t);

	tm_table_init(&t, ">index|name|shape|>FLOPs to exit");
	for (unsigned i = 0; i < mi.n_outputs; i++) {
		const struct kern_output *o = kern_model_output(m, i);
		char idx[16];

		if (o == NULL)
			break;
		snprintf(idx, sizeof(idx), "%u", o->index);
		tm_shape_str(shape, sizeof(shape), o->ndim, o->dims, true);
		tm_si(f, sizeof(f), o->flops);
		if (tm_table_row(&t, (const char *const[]){ idx, o->name, shape, f }) < 0)
			goto out_table;
	}
	printf(md ? "\n### Outputs (exits)\n\n" : "\nOutputs (exits)\n");
	tm_table_print(&t, stdout, md);
	rc = 0;
out_table:
	tm_table_free(&t);
out:
	free(ops);
	free(counts);
	return rc;
}

static int
tm_cmd_info(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "markdown", no_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	bool md = false;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (opt) {
		case 'm': md = true; break;
		case 'h': tm_info_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("info", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("info", optind == argc ? "missing MODEL" : "extra arguments");
	if (tm_load(argv[optind], &m, &err) < 0)
		return tm_fail(&err);
	rc = tm_info_print(m, md);
	kern_model_free(m);
	if (rc < 0) {
		tg_err_set(&err, rc, "info: out of memory");
		return tm_fail(&err);
	}
	return TM_EXIT_OK;
}

/* ---- plans by batch size ---- */

/* ---- --dtype f32|int8 and the calibration sidecar ---- */

/* MODEL.onnx -> MODEL.calib beside it: the gateway finds it the same way. */
static void
tm_calib_path(char *buf, size_t len, const char *model)
{
	size_t n = strlen(model);

	if (n > 5 && strcmp(model + n - 5, ".onnx") == 0)
		snprintf(buf, len, "%.*s.calib", (int)(n - 5), model);
	else
		snprintf(buf, len, "%s.calib", model);
}

/* A speed-only calibration on uniform [0, 1) inputs, for models that have none. */
static int
tm_calib_synthetic(const struct kern_model *m, struct kern_calib **out, struct tg_err *err)
{
	const struct kern_split *s0 = kern_model_split(m, 0);
	struct tg_tensor x = { .dtype = TG_DT_F32 };
	uint32_t r = 2463534242u;
	int rc;

	x.ndim = s0->ndim;
	memcpy(x.dims, s0->dims, sizeof(x.dims));
	x.dims[0] = 8;
	rc = tg_tensor_alloc(&x);
	if (rc < 0)
		return tg_err_set(err, rc, "out of memory");
	rc = kern_calib_create(m, out, err);
	for (int round = 0; rc == 0 && round < 2; round++) {
		for (size_t i = 0; i < tg_tensor_numel(&x); i++) {
			r ^= r << 13;
			r ^= r >> 17;
			r ^= r << 5;
			((float *)x.data)[i] = (float)(r >> 8) / 16777216.f;
		}
		rc = kern_calib_observe(*out, &x, err);
	}
	tg_tensor_free(&x);
	if (rc < 0) {
		kern_calib_free(*out);
		*out = NULL;
	}
	return rc;
}

/*
 * Resolve --dtype and --calib: int8 needs the calibration (given, or the sidecar beside the
 * model); with synthetic_ok a missing one is made from random inputs, with a warning.
 */
static int
tm_prec_setup(const char *cmd, const struct kern_model *m, const char *model_path,
	      const char *dtype, const char *calib_path, bool synthetic_ok,
	      enum kern_precision *prec, struct kern_calib **calib, struct tg_err *err)
{
	char side[4096];
	struct tg_err lerr = { 0 };

	*prec = KERN_PREC_F32;
	*calib = NULL;
	if (dtype == NULL || strcmp(dtype, "f32") == 0 || strcmp(dtype, "fp32") == 0)
		return 0;
	if (strcmp(dtype, "int8") != 0 && strcmp(dtype, "s8") != 0)
		return tg_err_set(err, -EINVAL, "%s: --dtype %s: supported are f32 and int8 (bf16: "
				  "not built; see docs/BENCHMARKS.md)", cmd, dtype);
	*prec = KERN_PREC_INT8;
	if (calib_path == NULL) {
		tm_calib_path(side, sizeof(side), model_path);
		calib_path = side;
	}
	if (kern_calib_load(m, calib_path, calib, &lerr) == 0)
		return 0;
	if (!synthetic_ok || lerr.code != -ENOENT)
		return tg_err_set(err, lerr.code ? lerr.code : -EINVAL,
				  "%s: int8 needs a calibration: %s (make one with '%s calibrate')",
				  cmd, lerr.msg, tm_prog);
	fprintf(stderr, "%s: warning: no calibration at %s; calibrating on synthetic inputs "
		"(speed only: accuracy will not be representative)\n", tm_prog, calib_path);
	return tm_calib_synthetic(m, calib, err);
}

/* ---- run ---- */

/* Load a .npy as f32 (f16 and f64 converted: a device may well send halves). */
static int
tm_load_f32(const char *path, struct tg_tensor *out, struct tg_err *err)
{
	struct tg_tensor t = { 0 }, u;
	size_t n;
	int rc;

	rc = tg_npy_load(path, TM_MAX_NPY_BYTES, &t, err);
	if (rc < 0)
		return strstr(err->msg, path) ? rc : tg_err_prefix(err, "%s: ", path);
	if (t.dtype == TG_DT_F32) {
		*out = t;
		return 0;
	}
	if (t.dtype != TG_DT_F16 && t.dtype != TG_DT_F64) {
		rc = tg_err_set(err, -EINVAL, "%s: dtype %s; the engine takes f32 (f16, f64 converted)",
				path, tg_dtype_name(t.dtype));
		tg_tensor_free(&t);
		return rc;
	}
	u = t;
	u.dtype = TG_DT_F32;
	u.data = NULL;
	if (tg_tensor_alloc(&u) < 0) {
		tg_tensor_free(&t);
		return tg_err_set(err, -ENOMEM, "%s: out of memory", path);
	}
	n = tg_tensor_numel(&t);
	for (size_t i = 0; i < n; i++)
		((float *)u.data)[i] = t.dtype == TG_DT_F16 ?
			proto_f16_to_f32(((uint16_t *)t.data)[i]) : (float)((double *)t.data)[i];
	tg_tensor_free(&t);
	*out = u;
	return 0;
}

/*
 * Check x's shape against the tensor a stage takes (dims at batch 1), dim 0 excepted.
 * @return 0 or -EINVAL with err saying both shapes.
 */
static int
tm_check_shape(const struct tg_tensor *x, const char *what, int ndim, const int64_t *dims,
	       const char *takes, struct tg_err *err)
{
	char want[128], got[128];
	bool ok = x->ndim == ndim && x->ndim >= 1 && x->dims[0] >= 1;

	for (int i = 1; ok && i < ndim; i++)
		ok = x->dims[i] == dims[i];
	if (ok)
		return 0;
	tm_shape_str(want, sizeof(want), ndim, dims, true);
	tm_shape_str(got, sizeof(got), x->ndim, x->dims, false);
	return tg_err_set(err, -EINVAL, "%s has shape %s; %s takes %s (N = samples, >= 1)", what,
			  got, takes, want);
}

/* Output file names keep to [A-Za-z0-9._-]: ONNX names may hold '/' or ':'. */
static void
tm_sanitize(char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			*s = '_';
}

/* Y.npy + name -> Y.name.npy (".npy" appended when Y lacks it). */
static int
tm_out_path(char *buf, size_t len, const char *output, const char *dir, const char *name,
	    bool per_name)
{
	char nm[256];
	size_t ol;
	int n;

	snprintf(nm, sizeof(nm), "%s", name);
	tm_sanitize(nm);
	if (dir != NULL)
		n = snprintf(buf, len, "%s/%s.npy", dir, nm);
	else if (!per_name)
		n = snprintf(buf, len, "%s", output);
	else {
		ol = strlen(output);
		if (ol >= 4 && strcmp(output + ol - 4, ".npy") == 0)
			n = snprintf(buf, len, "%.*s.%s.npy", (int)(ol - 4), output, nm);
		else
			n = snprintf(buf, len, "%s.%s.npy", output, nm);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void
tm_run_help(FILE *f)
{
	fprintf(f,
		"Usage: %s run MODEL --split S --input X.npy (--output Y.npy | --output-dir D)\n"
		"                      [--batch B] [--head] [--threads T]\n"
		"Run the tail of MODEL from split S on the samples in X.npy (dim 0 = samples,\n"
		"the other dims as the split's shape in 'info') and write what it outputs.\n"
		"Options:\n"
		"  -s, --split S       split point: tensor name, 'input' (the whole model), or\n"
		"                      the row index in 'info'; an index past the last row is\n"
		"                      an error\n"
		"  -i, --input X.npy   f32 tensor (f16 and f64 are converted)\n"
		"  -o, --output Y.npy  where to write; when the model has more than one output\n"
		"                      (a multi-exit model), each output the tail produces is\n"
		"                      written to Y.<output name>.npy instead (characters other\n"
		"                      than [A-Za-z0-9._-] in the name become '_')\n"
		"  -d, --output-dir D  write each output to D/<output name>.npy (D is created\n"
		"                      if absent; its parent must exist)\n"
		"  -b, --batch B       samples per engine run (default: all at once); the last\n"
		"                      batch may be smaller\n"
		"      --head          run the head instead: X.npy holds model inputs, and the\n"
		"                      tensor at the split is written (to Y.npy, or\n"
		"                      D/<split name>.npy)\n"
		"  -t, --threads T     engine threads (default: all cores)\n"
		"      --dtype f32|int8  the tail's arithmetic (int8 needs a calibration)\n"
		"      --calib FILE    int8 calibration (default: MODEL's .calib sidecar)\n"
		"  -h, --help          this text\n",
		tm_prog);
}

static int
tm_cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "split", required_argument, NULL, 's' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "output-dir", required_argument, NULL, 'd' },
		{ "batch", required_argument, NULL, 'b' },
		{ "head", no_argument, NULL, 'H' },
		{ "threads", required_argument, NULL, 't' },
		{ "dtype", required_argument, NULL, 'q' },
		{ "calib", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *split_arg = NULL, *in_path = NULL, *out_path = NULL, *out_dir = NULL;
	const char *dtype = NULL, *calib_path = NULL;
	struct kern_calib *calib = NULL;
	unsigned long batch = 0, threads = 0;
	bool head = false;
	struct kern_model *m = NULL;
	struct kern_model_info mi;
	struct tg_tensor x = { 0 };
	struct kern_stage st = { 0 };
	struct kern_outs outs = { 0 };
	struct tg_err err = { 0 };
	const struct kern_split *sp;
	char path[4096], what[4200];
	size_t n;
	int opt, rc, split;

	while ((opt = getopt_long(argc, argv, ":s:i:o:d:b:t:h", lo, NULL)) != -1) {
		switch (opt) {
		case 's': split_arg = optarg; break;
		case 'i': in_path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'd': out_dir = optarg; break;
		case 'H': head = true; break;
		case 'q': dtype = optarg; break;
		case 'c': calib_path = optarg; break;
		case 'b':
			if (tm_opt_uint("run", "--batch", 1, 1u << 20, &batch) < 0)
				return TM_EXIT_USAGE;
			break;
		case 't':
			if (tm_opt_uint("run", "--threads", 0, 4096, &threads) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'h': tm_run_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("run", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("run", optind == argc ? "missing MODEL" : "extra arguments");
	if (split_arg == NULL)
		return tm_usage_err("run", "--split is required");
	if (in_path == NULL)
		return tm_usage_err("run", "--input is required");
	if ((out_path == NULL) == (out_dir == NULL))
		return tm_usage_err("run", "give one of --output and --output-dir");

	kern_set_threads((unsigned)threads);
	rc = tm_load_split("run", argv[optind], split_arg, &m, &split);
	if (rc != TM_EXIT_OK)
		return rc;
	kern_model_get_info(m, &mi);
	sp = kern_model_split(m, (unsigned)split);
	rc = tm_load_f32(in_path, &x, &err);
	if (rc < 0)
		goto out;
	if (head) {
		const struct kern_split *s0 = kern_model_split(m, 0);

		rc = tm_check_shape(&x, in_path, s0->ndim, s0->dims, "the model input", &err);
	} else {
		snprintf(what, sizeof(what), "the tail from split %d \"%s\"", split, sp->name);
		rc = tm_check_shape(&x, in_path, sp->ndim, sp->dims, what, &err);
	}
	if (rc < 0)
		goto out;
	n = (size_t)x.dims[0];
	if (batch == 0 || batch > n)
		batch = n;

	st.m = m;
	st.spec.kind = head ? KERN_PLAN_HEAD : KERN_PLAN_TAIL;
	st.spec.split = (unsigned)split;
	if (!head) {	/* the head is the device's: it stays f32 */
		rc = tm_prec_setup("run", m, argv[optind], dtype, calib_path, false, &st.spec.precision,
				   &calib, &err);
		if (rc < 0)
			goto out;
		st.spec.calib = calib;
	}
	for (size_t first = 0; first < n; first += batch) {
		unsigned b = (unsigned)(n - first < batch ? n - first : batch);
		struct kern_plan *p;

		rc = kern_stage_plan(&st, b, &p, &err);
		if (rc < 0)
			goto out;
		rc = kern_plan_feed(p, &x, first, b, &err);
		if (rc < 0)
			goto out;
		rc = kern_plan_run(p);
		if (rc < 0) {
			tg_err_set(&err, rc, "run at split %d, batch %u: engine failed (%s)", split, b,
				   strerror(-rc));
			goto out;
		}
		/* A head's output 0 is the split tensor; the device-side exits are not asked for. */
		rc = kern_outs_take(&outs, p, head ? 1 : kern_plan_n_outputs(p), n, first, b, &err);
		if (rc < 0)
			goto out;
	}
	/* One level, like the .npy files in it: a typo'd parent is still an error. */
	if (out_dir != NULL && mkdir(out_dir, 0777) < 0 && errno != EEXIST) {
		rc = tg_err_set(&err, -errno, "--output-dir %s: %s", out_dir, strerror(errno));
		goto out;
	}
	for (unsigned k = 0; k < outs.n; k++) {
		rc = tm_out_path(path, sizeof(path), out_path, out_dir, outs.name[k],
				 !head && mi.n_outputs > 1);
		if (rc < 0) {
			tg_err_set(&err, rc, "output path for \"%s\" too long", outs.name[k]);
			goto out;
		}
		rc = tg_npy_save(path, &outs.t[k], &err);
		if (rc < 0) {
			if (strstr(err.msg, path) == NULL)
				tg_err_prefix(&err, "%s: ", path);
			goto out;
		}
		tm_shape_str(what, sizeof(what), outs.t[k].ndim, outs.t[k].dims, false);
		fprintf(stderr, "wrote %s: \"%s\" %s\n", path, outs.name[k], what);
	}
out:
	kern_outs_free(&outs);
	kern_stage_free(&st);
	kern_calib_free(calib);
	tg_tensor_free(&x);
	kern_model_free(m);
	return rc < 0 ? tm_fail(&err) : TM_EXIT_OK;
}

/* ---- eval ---- */

static void
tm_eval_help(FILE *f)
{
	fprintf(f,
		"Usage: %s eval MODEL --fashion-mnist [--split S] [--batch B] [--limit N]\n"
		"                       [--data-dir D] [--threads T] [--json]\n"
		"Top-1 accuracy of every exit of MODEL on the Fashion-MNIST test set (10,000\n"
		"images, f32 [N,1,28,28] = pixel/255). With --split S the head runs to S, its\n"
		"tensor is handed to the tail from S, and each exit is scored where it runs\n"
		"(device side: in the head; server side: in the tail). One line per exit.\n"
		"Options:\n"
		"      --fashion-mnist  the data set (required; the only one supported)\n"
		"      --data-dir D     where its idx files are (default %s)\n"
		"  -s, --split S        split point (default: input = the whole model as tail)\n"
		"  -b, --batch B        images per engine run (default 100)\n"
		"  -n, --limit N        only the first N test images\n"
		"  -t, --threads T      engine threads (default: all cores)\n"
		"      --dtype f32|int8 the tail's arithmetic (int8 needs a calibration)\n"
		"      --calib FILE     int8 calibration (default: MODEL's .calib sidecar)\n"
		"      --json           print one JSON object instead\n"
		"  -h, --help           this text\n",
		tm_prog, BENCH_FMNIST_DIR);
}

/* Top-1 hits of one output over a batch against labels. */
static unsigned
tm_top1_hits(const struct tg_tensor *v, const uint8_t *labels, unsigned b)
{
	size_t per = tg_tensor_numel(v) / b;
	unsigned hits = 0;

	for (unsigned i = 0; i < b; i++) {
		const float *row = (const float *)v->data + (size_t)i * per;
		size_t best = 0;

		for (size_t k = 1; k < per; k++)
			if (row[k] > row[best])
				best = k;
		hits += best == labels[i];
	}
	return hits;
}

/* Credit a plan's outputs (from index k0) to the model's exits by name. */
static int
tm_score(const struct kern_model *m, unsigned n_exits, const struct kern_plan *p, unsigned k0,
	 const uint8_t *labels, unsigned b, uint64_t *hits, uint64_t *seen, struct tg_err *err)
{
	for (unsigned k = k0; k < kern_plan_n_outputs(p); k++) {
		struct tg_tensor v;
		const char *name = NULL;
		int rc = kern_plan_output(p, k, &v, &name);
		unsigned e;

		if (rc < 0)
			return tg_err_set(err, rc, "plan output %u: %s", k, strerror(-rc));
		for (e = 0; e < n_exits; e++)
			if (name != NULL && strcmp(kern_model_output(m, e)->name, name) == 0)
				break;
		if (e == n_exits)
			continue;	/* not an exit (e.g. the split tensor) */
		if (v.dtype != TG_DT_F32 || v.ndim < 1 || v.dims[0] != (int64_t)b)
			return tg_err_set(err, -EINVAL, "exit \"%s\": not f32 at batch %u", name, b);
		hits[e] += tm_top1_hits(&v, labels, b);
		seen[e] += b;
	}
	return 0;
}

static void
tm_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/*
 * One batch of eval: images [first, first + b) of ds through the tail from split (through
 * the head first, as device and gateway do, when split > 0), every exit scored on the side
 * that computes it. @return 0 or -errno with err set
 */
static int
tm_eval_batch(struct kern_model *m, struct kern_stage *head, struct kern_stage *tail, int split,
	      const struct bench_fmnist *ds, size_t first, unsigned b, uint64_t *hits,
	      uint64_t *seen, struct tg_err *err)
{
	struct kern_model_info mi;
	struct kern_plan *hp = NULL, *tp;
	struct tg_tensor sv;
	int rc;

	kern_model_get_info(m, &mi);
	rc = kern_stage_plan(tail, b, &tp, err);
	if (rc < 0)
		return rc;
	if (split == 0) {
		rc = kern_plan_feed(tp, &ds->images, first, b, err);
	} else {
		rc = kern_stage_plan(head, b, &hp, err);
		if (rc < 0)
			return rc;
		rc = kern_plan_feed(hp, &ds->images, first, b, err);
		if (rc < 0)
			return rc;
		rc = kern_plan_run(hp);
		if (rc < 0)
			return tg_err_set(err, rc, "head to split %d, batch %u: engine failed", split,
					  b);
		rc = kern_plan_output(hp, 0, &sv, NULL);
		if (rc < 0)
			return tg_err_set(err, rc, "head output 0: %s", strerror(-rc));
		rc = kern_plan_feed(tp, &sv, 0, b, err);
		if (rc == 0)
			rc = tm_score(m, mi.n_outputs, hp, 1, ds->labels + first, b, hits, seen, err);
	}
	if (rc < 0)
		return rc;
	rc = kern_plan_run(tp);
	if (rc < 0)
		return tg_err_set(err, rc, "tail from split %d, batch %u: engine failed", split, b);
	return tm_score(m, mi.n_outputs, tp, 0, ds->labels + first, b, hits, seen, err);
}

/* eval's result: top-1 accuracy per exit and the side computing it, as text or JSON. */
static void
tm_eval_print(struct kern_model *m, int split, size_t n, unsigned long batch, double secs,
	      const uint64_t *hits, const uint64_t *seen, bool json)
{
	const char *sname = kern_model_split(m, (unsigned)split)->name;
	struct kern_model_info mi;

	kern_model_get_info(m, &mi);
	if (json) {
		printf("{\"model\": ");
		tm_json_str(mi.name);
		printf(", \"split\": %d, \"split_name\": ", split);
		tm_json_str(sname);
		printf(", \"images\": %zu, \"batch\": %lu, \"seconds\": %.3f, \"exits\": [", n,
		       batch, secs);
	} else {
		printf("model %s, split %d \"%s\", %zu test images, batch %lu, %.2f s\n", mi.name,
		       split, sname, n, batch, secs);
	}
	for (unsigned e = 0; e < mi.n_outputs; e++) {
		const struct kern_output *o = kern_model_output(m, e);
		const char *side = kern_model_output_in_tail(m, (unsigned)split, e) ? "server" :
										       "device";
		double acc = seen[e] ? 100.0 * (double)hits[e] / (double)seen[e] : 0;

		if (json) {
			printf("%s{\"index\": %u, \"name\": ", e ? ", " : "", e);
			tm_json_str(o->name);
			printf(", \"side\": \"%s\", \"correct\": %" PRIu64 ", \"accuracy\": %.4f}",
			       side, hits[e], acc / 100);
		} else {
			printf("exit %u %-24s %s  top-1 %6.2f%%  (%" PRIu64 "/%zu)\n", e, o->name,
			       side, acc, hits[e], n);
		}
	}
	if (json)
		printf("]}\n");
}

static int
tm_cmd_eval(int argc, char **argv)
{
	enum { OPT_FMNIST = 256, OPT_DIR, OPT_JSON, OPT_DTYPE, OPT_CALIB };
	static const struct option lo[] = {
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "calib", required_argument, NULL, OPT_CALIB },
		{ "fashion-mnist", no_argument, NULL, OPT_FMNIST },
		{ "data-dir", required_argument, NULL, OPT_DIR },
		{ "split", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },
		{ "limit", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *split_arg = "input", *dir = NULL, *dtype = NULL, *calib_path = NULL;
	struct kern_calib *calib = NULL;
	unsigned long batch = 100, limit = 0, threads = 0;
	bool fmnist = false, json = false;
	struct kern_model *m = NULL;
	struct kern_model_info mi;
	struct bench_fmnist ds = { 0 };
	struct kern_stage head = { 0 }, tail = { 0 };
	struct tg_err err = { 0 };
	uint64_t *hits = NULL, *seen = NULL;
	const struct kern_split *s0;
	uint64_t t0;
	int opt, rc, split;

	while ((opt = getopt_long(argc, argv, ":s:b:n:t:h", lo, NULL)) != -1) {
		switch (opt) {
		case OPT_FMNIST: fmnist = true; break;
		case OPT_DTYPE: dtype = optarg; break;
		case OPT_CALIB: calib_path = optarg; break;
		case OPT_DIR: dir = optarg; break;
		case OPT_JSON: json = true; break;
		case 's': split_arg = optarg; break;
		case 'b':
			if (tm_opt_uint("eval", "--batch", 1, 1u << 16, &batch) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'n':
			if (tm_opt_uint("eval", "--limit", 1, BENCH_FMNIST_MAX_ITEMS, &limit) < 0)
				return TM_EXIT_USAGE;
			break;
		case 't':
			if (tm_opt_uint("eval", "--threads", 0, 4096, &threads) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'h': tm_eval_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("eval", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("eval", optind == argc ? "missing MODEL" : "extra arguments");
	if (!fmnist)
		return tm_usage_err("eval", "name the data set: --fashion-mnist");

	kern_set_threads((unsigned)threads);
	rc = tm_load_split("eval", argv[optind], split_arg, &m, &split);
	if (rc != TM_EXIT_OK)
		return rc;
	kern_model_get_info(m, &mi);
	rc = bench_fmnist_load(dir, false, limit, &ds, &err);
	if (rc < 0)
		goto out;
	s0 = kern_model_split(m, 0);
	rc = tm_check_shape(&ds.images, "Fashion-MNIST", s0->ndim, s0->dims, "the model input",
			    &err);
	if (rc < 0)
		goto out;
	hits = calloc(mi.n_outputs, sizeof(*hits));
	seen = calloc(mi.n_outputs, sizeof(*seen));
	if (hits == NULL || seen == NULL) {
		rc = tg_err_set(&err, -ENOMEM, "eval: out of memory");
		goto out;
	}
	if (batch > ds.n)
		batch = ds.n;
	head = (struct kern_stage){ .m = m, .spec = { .kind = KERN_PLAN_HEAD, .split = (unsigned)split } };
	tail = (struct kern_stage){ .m = m, .spec = { .kind = KERN_PLAN_TAIL, .split = (unsigned)split } };
	rc = tm_prec_setup("eval", m, argv[optind], dtype, calib_path, false, &tail.spec.precision, &calib,
			   &err);
	if (rc < 0)
		goto out;
	tail.spec.calib = calib;

	t0 = tg_now_ns();
	for (size_t first = 0; first < ds.n; first += batch) {
		unsigned b = (unsigned)(ds.n - first < batch ? ds.n - first : batch);

		rc = tm_eval_batch(m, &head, &tail, split, &ds, first, b, hits, seen, &err);
		if (rc < 0)
			goto out;
	}
	/* Every exit is computed on one side or the other of any split: a gap is an engine bug. */
	for (unsigned e = 0; e < mi.n_outputs; e++)
		if (seen[e] != ds.n) {
			rc = tg_err_set(&err, -EIO, "exit %u \"%s\" was computed for %" PRIu64
					" of %zu images", e, kern_model_output(m, e)->name, seen[e],
					ds.n);
			goto out;
		}
	tm_eval_print(m, split, ds.n, batch, (double)(tg_now_ns() - t0) / 1e9, hits, seen, json);
out:
	free(hits);
	free(seen);
	kern_stage_free(&head);
	kern_stage_free(&tail);
	kern_calib_free(calib);
	bench_fmnist_free(&ds);
	kern_model_free(m);
	return rc < 0 ? tm_fail(&err) : TM_EXIT_OK;
}

/* ---- bench ---- */

static void
tm_bench_help(FILE *f)
{
	fprintf(f,
		"Usage: %s bench MODEL --split S --batch B [--threads T]\n"
		"                        [--seconds X | --iters N] [--warmup W] [--json]\n"
		"Time the tail of MODEL from split S at batch B: the plan is built once, run W\n"
		"times to warm up, then run repeatedly on fixed pseudo-random input. Prints\n"
		"images/s (B over the median batch latency) and the latency per batch p50/p99.\n"
		"Options:\n"
		"  -s, --split S     split point (name, 'input' or row index)\n"
		"  -b, --batch B     samples per run\n"
		"  -t, --threads T   engine threads (default 0: all cores)\n"
		"      --dtype D     f32 (default) or int8; int8 without a calibration is\n"
		"                    calibrated on synthetic inputs, with a warning\n"
		"      --calib FILE  int8 calibration (default: MODEL's .calib sidecar)\n"
		"      --seconds X   time for X seconds (default 3)\n"
		"      --iters N     time exactly N runs instead\n"
		"      --warmup W    untimed runs first (default 5)\n"
		"      --json        print one JSON object instead\n"
		"  -h, --help        this text\n",
		tm_prog);
}

static int
tm_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n]. */
static uint64_t
tm_pct(const uint64_t *v, size_t n, double p)
{
	size_t r = (size_t)ceil(p / 100.0 * (double)n);

	return v[r == 0 ? 0 : r - 1];
}

/*
 * bench's timed runs of p: iters of them, or for seconds (at most max_runs); each run's
 * latency into *lat (malloc'd, the caller frees it, also on error), *n_runs of them.
 * @return 0, kern_plan_run()'s -errno (err untouched: the caller names the run), or
 *         -ENOMEM with err set
 */
static int
tm_bench_runs(struct kern_plan *p, unsigned long iters, double seconds, size_t max_runs,
	      uint64_t **lat, size_t *n_runs, struct tg_err *err)
{
	size_t cap = iters ? iters : 1024;
	uint64_t t_end = tg_now_ns() + (uint64_t)(seconds * 1e9);
	int rc;

	*lat = malloc(cap * sizeof(**lat));
	if (*lat == NULL)
		return tg_err_set(err, -ENOMEM, "bench: out of memory");
	for (;;) {
		uint64_t a = tg_now_ns(), b;

		if (iters ? *n_runs == iters : (a >= t_end && *n_runs > 0) || *n_runs == max_runs)
			return 0;
		rc = kern_plan_run(p);
		b = tg_now_ns();
		if (rc < 0)
			return rc;
		if (*n_runs == cap) {
			uint64_t *l = realloc(*lat, 2 * cap * sizeof(**lat));

			if (l == NULL)
				return tg_err_set(err, -ENOMEM, "bench: out of memory");
			*lat = l;
			cap *= 2;
		}
		(*lat)[(*n_runs)++] = b - a;
	}
}

/* bench's result from the sorted latencies: images/s at the median (and the mean over the
 * timed runs' wall time total), p50 and p99 per batch, as text or JSON. */
static void
tm_bench_print(const char *sname, int split, unsigned long batch, unsigned long threads,
	       unsigned long warmup, uint64_t t_build, double total, const uint64_t *lat,
	       size_t n_runs, bool json)
{
	double p50 = (double)tm_pct(lat, n_runs, 50) / 1e6, p99 = (double)tm_pct(lat, n_runs, 99) / 1e6;
	double ips = (double)batch / (p50 / 1e3);

	if (json) {
		printf("{\"split\": %d, \"split_name\": ", split);
		tm_json_str(sname);
		printf(", \"batch\": %lu, \"threads\": %lu, \"runs\": %zu, \"plan_build_ms\": %.3f, "
		       "\"images_per_s\": %.1f, \"images_per_s_mean\": %.1f, \"p50_ms\": %.4f, "
		       "\"p99_ms\": %.4f}\n",
		       batch, threads, n_runs, (double)t_build / 1e6, ips,
		       (double)batch * (double)n_runs / total, p50, p99);
	} else {
		printf("tail from split %d \"%s\", batch %lu, threads %lu%s, plan built in %.1f ms\n",
		       split, sname, batch, threads, threads ? "" : " (all cores)",
		       (double)t_build / 1e6);
		printf("%zu runs in %.2f s after %lu warm-up runs\n", n_runs, total, warmup);
		printf("images/s    %.1f (median; mean %.1f)\n", ips,
		       (double)batch * (double)n_runs / total);
		printf("latency/batch  p50 %.3f ms  p99 %.3f ms\n", p50, p99);
	}
}

static int
tm_cmd_bench(int argc, char **argv)
{
	enum { OPT_SECONDS = 256, OPT_ITERS, OPT_WARMUP, OPT_JSON, OPT_DTYPE, OPT_CALIB };
	static const struct option lo[] = {
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "calib", required_argument, NULL, OPT_CALIB },
		{ "split", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "iters", required_argument, NULL, OPT_ITERS },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* A timed run cap keeps memory bounded however long --seconds is. */
	const size_t max_runs = 10u << 20;
	const char *split_arg = NULL, *dtype = NULL, *calib_path = NULL;
	struct kern_calib *calib = NULL;
	unsigned long batch = 0, threads = 0, iters = 0, warmup = 5;
	double seconds = 0;
	bool json = false;
	struct kern_model *m = NULL;
	struct kern_plan *p = NULL;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL };
	struct tg_tensor in;
	struct tg_err err = { 0 };
	uint64_t *lat = NULL, t_build, t0;
	size_t n_runs = 0;
	int opt, rc, split;

	while ((opt = getopt_long(argc, argv, ":s:b:t:h", lo, NULL)) != -1) {
		switch (opt) {
		case 's': split_arg = optarg; break;
		case 'b':
			if (tm_opt_uint("bench", "--batch", 1, 1u << 16, &batch) < 0)
				return TM_EXIT_USAGE;
			break;
		case 't':
			if (tm_opt_uint("bench", "--threads", 0, 4096, &threads) < 0)
				return TM_EXIT_USAGE;
			break;
		case OPT_SECONDS:
			if (tm_parse_seconds(optarg, &seconds) < 0)
				return tm_usage_err("bench", "--seconds: '%s' is not a time in (0, 86400]",
						    optarg);
			break;
		case OPT_ITERS:
			if (tm_opt_uint("bench", "--iters", 1, max_runs, &iters) < 0)
				return TM_EXIT_USAGE;
			break;
		case OPT_WARMUP:
			if (tm_opt_uint("bench", "--warmup", 0, 1u << 20, &warmup) < 0)
				return TM_EXIT_USAGE;
			break;
		case OPT_JSON: json = true; break;
		case OPT_DTYPE: dtype = optarg; break;
		case OPT_CALIB: calib_path = optarg; break;
		case 'h': tm_bench_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("bench", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("bench", optind == argc ? "missing MODEL" : "extra arguments");
	if (split_arg == NULL)
		return tm_usage_err("bench", "--split is required");
	if (batch == 0)
		return tm_usage_err("bench", "--batch is required");
	if (seconds > 0 && iters > 0)
		return tm_usage_err("bench", "give --seconds or --iters, not both");
	if (seconds == 0 && iters == 0)
		seconds = 3;

	kern_set_threads((unsigned)threads);
	rc = tm_load_split("bench", argv[optind], split_arg, &m, &split);
	if (rc != TM_EXIT_OK)
		return rc;
	spec.split = (unsigned)split;
	spec.batch = (unsigned)batch;
	rc = tm_prec_setup("bench", m, argv[optind], dtype, calib_path, true, &spec.precision,
			   &calib, &err);
	if (rc < 0)
		goto out;
	spec.calib = calib;
	t0 = tg_now_ns();
	rc = kern_plan_create(m, &spec, &p, &err);
	t_build = tg_now_ns() - t0;
	if (rc < 0)
		goto out;
	rc = kern_plan_input(p, 0, &in);
	if (rc < 0) {
		tg_err_set(&err, rc, "plan input: %s", strerror(-rc));
		goto out;
	}
	/* Fixed pseudo-random input in [0, 1): timing must not depend on the run. */
	uint32_t x = 2463534242u;
	size_t ne = tg_tensor_numel(&in);

	for (size_t i = 0; i < ne; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		((float *)in.data)[i] = (float)(x >> 8) / 16777216.0f;
	}
	for (unsigned long i = 0; i < warmup; i++) {
		rc = kern_plan_run(p);
		if (rc < 0)
			goto out_run;
	}
	t0 = tg_now_ns();
	rc = tm_bench_runs(p, iters, seconds, max_runs, &lat, &n_runs, &err);
	if (rc < 0 && err.code == 0)
		goto out_run;
	if (rc < 0)
		goto out;
	qsort(lat, n_runs, sizeof(*lat), tm_cmp_u64);
	tm_bench_print(kern_model_split(m, (unsigned)split)->name, split, batch, threads, warmup,
		       t_build, (double)(tg_now_ns() - t0) / 1e9, lat, n_runs, json);
	rc = 0;
	goto out;
out_run:
	tg_err_set(&err, rc, "run at split %d, batch %lu: engine failed (%s)", split, batch,
		   strerror(-rc));
out:
	free(lat);
	kern_plan_free(p);
	kern_calib_free(calib);
	kern_model_free(m);
	return rc < 0 ? tm_fail(&err) : TM_EXIT_OK;
}

/* ---- extract ---- */

static void
tm_extract_help(FILE *f)
{
	fprintf(f,
		"Usage: %s extract MODEL --split S --batch B --output FILE\n"
		"Write the tail of MODEL from split S as an ONNX model of its own, for other\n"
		"runtimes: its input is the split tensor at batch B (dims fixed), its nodes the\n"
		"file's own (BatchNormalization unfolded, as in the file), its outputs the exits\n"
		"in the tail; shape arithmetic is written as constants for batch B.\n"
		"Options:\n"
		"  -s, --split S     split point (name, 'input' or row index)\n"
		"  -b, --batch B     samples (1..%u)\n"
		"  -o, --output F    file to write\n"
		"  -h, --help        this text\n",
		tm_prog, 1u << 20);
}

static int
tm_cmd_extract(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "split", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *split_arg = NULL, *output = NULL;
	unsigned long batch = 0;
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	int opt, rc, split;

	while ((opt = getopt_long(argc, argv, ":s:b:o:h", lo, NULL)) != -1) {
		switch (opt) {
		case 's': split_arg = optarg; break;
		case 'b':
			if (tm_opt_uint("extract", "--batch", 1, 1u << 20, &batch) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'o': output = optarg; break;
		case 'h': tm_extract_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("extract", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("extract", optind == argc ? "missing MODEL" : "extra arguments");
	if (split_arg == NULL)
		return tm_usage_err("extract", "--split is required");
	if (batch == 0)
		return tm_usage_err("extract", "--batch is required");
	if (output == NULL)
		return tm_usage_err("extract", "--output is required");
	rc = tm_load_split("extract", argv[optind], split_arg, &m, &split);
	if (rc != TM_EXIT_OK)
		return rc;
	rc = kern_model_extract(m, (unsigned)split, (unsigned)batch, &buf, &len, &err);
	if (rc == 0)
		rc = tg_file_write(output, buf, len, &err);
	if (rc == 0)
		printf("wrote %s (%zu bytes): tail from split %d \"%s\" at batch %lu\n", output, len,
		       split, kern_model_split(m, (unsigned)split)->name, batch);
	free(buf);
	kern_model_free(m);
	return rc < 0 ? tm_fail(&err) : TM_EXIT_OK;
}

/* ---- export-qdq ---- */

static void
tm_qdq_help(FILE *f)
{
	fprintf(f,
		"Usage: %s export-qdq MODEL --output OUT.onnx [--calib FILE]\n"
		"Write MODEL as a standard QDQ ONNX model of the int8 arithmetic tailgate runs\n"
		"with its calibration, for other runtimes (ONNX Runtime) and quantization tools:\n"
		"QuantizeLinear/DequantizeLinear around each quantized Conv/Gemm input and\n"
		"output, u8 activations with the calibration's scales and zero points, s8\n"
		"per-channel weights, int32 biases. Graph outputs stay f32.\n"
		"Options:\n"
		"  -o, --output F    file to write\n"
		"      --calib FILE  the calibration (default: MODEL's .calib sidecar)\n"
		"  -h, --help        this text\n",
		tm_prog);
}

static int
tm_cmd_export_qdq(int argc, char **argv)
{
	enum { O_CALIB = 256 };
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "calib", required_argument, NULL, O_CALIB },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *output = NULL, *calib_path = NULL;
	struct kern_qdq_info info = { 0 };
	struct kern_calib *calib = NULL;
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	enum kern_precision prec;
	uint8_t *buf = NULL;
	size_t len = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, ":o:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'o': output = optarg; break;
		case O_CALIB: calib_path = optarg; break;
		case 'h': tm_qdq_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("export-qdq", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("export-qdq", optind == argc ? "missing MODEL" : "extra arguments");
	if (output == NULL)
		return tm_usage_err("export-qdq", "--output is required");
	rc = kern_model_load(argv[optind], NULL, &m, &err);
	if (rc == 0)
		rc = tm_prec_setup("export-qdq", m, argv[optind], "int8", calib_path, false, &prec,
				   &calib, &err);
	if (rc == 0)
		rc = kern_model_export_qdq(m, calib, &buf, &len, &info, &err);
	if (rc == 0)
		rc = tg_file_write(output, buf, len, &err);
	if (rc == 0)
		printf("wrote %s (%zu bytes): %u Conv/Gemm in int8, %u activations quantized\n",
		       output, len, info.n_nodes, info.n_tensors);
	free(buf);
	kern_calib_free(calib);
	kern_model_free(m);
	return rc < 0 ? tm_fail(&err) : TM_EXIT_OK;
}

/* ---- main ---- */

/* ---- calibrate ---- */

static void
tm_calibrate_help(FILE *f)
{
	fprintf(f,
		"Usage: %s calibrate MODEL (--fashion-mnist [--limit N] | --input X.npy)\n"
		"                            [--output FILE] [--batch B] [--threads T]\n"
		"Record the range of every tensor of MODEL over representative inputs (an fp32\n"
		"run of the whole model) for int8 tails, and save them as a small text sidecar\n"
		"(default: MODEL with .onnx replaced by .calib, where the gateway and --dtype\n"
		"int8 look). Scales are derived per plan: u8 for tensors never negative, s8\n"
		"otherwise; one calibration serves every split.\n"
		"Options:\n"
		"      --fashion-mnist  the first N training images (not the test set)\n"
		"  -n, --limit N        how many (default 2000)\n"
		"  -i, --input X.npy    model inputs instead (f32, [N, ...] as the model input)\n"
		"  -o, --output FILE    where to write (default: the sidecar beside MODEL)\n"
		"  -b, --batch B        images per engine run (default 100)\n"
		"  -t, --threads T      engine threads (default: all cores)\n"
		"  -h, --help           this text\n",
		tm_prog);
}

static int
tm_cmd_calibrate(int argc, char **argv)
{
	enum { OPT_FMNIST = 256 };
	static const struct option lo[] = {
		{ "fashion-mnist", no_argument, NULL, OPT_FMNIST },
		{ "limit", required_argument, NULL, 'n' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *in_path = NULL, *out_path = NULL;
	unsigned long limit = 2000, batch = 100, threads = 0;
	bool fmnist = false;
	struct kern_model *m = NULL;
	struct kern_calib *calib = NULL;
	struct bench_fmnist ds = { 0 };
	struct tg_tensor x = { 0 }, chunk;
	struct tg_err err = { 0 };
	char side[4096];
	const struct tg_tensor *src;
	size_t n, per;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, ":n:i:o:b:t:h", lo, NULL)) != -1) {
		switch (opt) {
		case OPT_FMNIST: fmnist = true; break;
		case 'i': in_path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'n':
			if (tm_opt_uint("calibrate", "--limit", 1, BENCH_FMNIST_MAX_ITEMS, &limit) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'b':
			if (tm_opt_uint("calibrate", "--batch", 1, 4096, &batch) < 0)
				return TM_EXIT_USAGE;
			break;
		case 't':
			if (tm_opt_uint("calibrate", "--threads", 0, 4096, &threads) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'h': tm_calibrate_help(stdout); return TM_EXIT_OK;
		default: return tm_bad_opt("calibrate", argv, opt);
		}
	}
	if (optind + 1 != argc)
		return tm_usage_err("calibrate", optind == argc ? "missing MODEL" : "extra arguments");
	if (fmnist == (in_path != NULL))
		return tm_usage_err("calibrate", "give one of --fashion-mnist and --input");
	kern_set_threads((unsigned)threads);
	if (tm_load(argv[optind], &m, &err) < 0)
		return tm_fail(&err);
	if (fmnist) {
		rc = bench_fmnist_load(NULL, true, limit, &ds, &err);
		src = &ds.images;
	} else {
		rc = tm_load_f32(in_path, &x, &err);
		src = &x;
	}
	if (rc < 0)
		goto out;
	{
		const struct kern_split *s0 = kern_model_split(m, 0);

		if (s0 == NULL) {
			rc = tg_err_set(&err, -EINVAL, "the model has no single input to calibrate");
			goto out;
		}
		rc = tm_check_shape(src, fmnist ? "Fashion-MNIST" : in_path, s0->ndim, s0->dims,
				    "the model input", &err);
		if (rc < 0)
			goto out;
	}
	rc = kern_calib_create(m, &calib, &err);
	if (rc < 0)
		goto out;
	n = (size_t)src->dims[0];
	per = tg_tensor_numel(src) / n;
	for (size_t first = 0; first < n; first += batch) {
		chunk = *src;
		chunk.dims[0] = (int64_t)(n - first < batch ? n - first : batch);
		chunk.data = (float *)src->data + first * per;
		rc = kern_calib_observe(calib, &chunk, &err);
		if (rc < 0)
			goto out;
	}
	if (out_path == NULL) {
		tm_calib_path(side, sizeof(side), argv[optind]);
		out_path = side;
	}
	rc = kern_calib_save(calib, out_path, &err);
	if (rc == 0)
		fprintf(stderr, "wrote %s: ranges of %u tensors over %zu samples\n", out_path,
			kern_calib_count(calib), n);
out:
	kern_calib_free(calib);
	bench_fmnist_free(&ds);
	tg_tensor_free(&x);
	kern_model_free(m);
	return rc < 0 ? tm_fail(&err) : TM_EXIT_OK;
}

static void
tm_help(FILE *f)
{
	fprintf(f,
		"Usage: %s COMMAND MODEL [options]   (%s COMMAND --help for each)\n"
		"Commands:\n"
		"  info   operators, parameters, FLOPs, split points and exits of MODEL\n"
		"  run    run the tail (or --head) from a split on .npy samples, write .npy\n"
		"  eval   top-1 accuracy of every exit on the Fashion-MNIST test set\n"
		"  bench  images/s and latency per batch of the tail from a split\n"
		"  extract  the tail from a split as an ONNX model of its own\n"
		"  calibrate  tensor ranges for int8 tails, saved beside MODEL\n"
		"  export-qdq  the int8 model as a standard QDQ ONNX file\n"
		"Exit status: 0 done, 1 the engine or a file refused (message on stderr),\n"
		"2 bad usage.\n",
		tm_prog, tm_prog);
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "info", tm_cmd_info },
		{ "run", tm_cmd_run },
		{ "eval", tm_cmd_eval },
		{ "bench", tm_cmd_bench },
		{ "extract", tm_cmd_extract },
		{ "calibrate", tm_cmd_calibrate },
		{ "export-qdq", tm_cmd_export_qdq },
	};

	kern_prefer_passive_wait(argv);
	if (argc < 2)
		return tm_usage_err(NULL, "missing COMMAND");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		tm_help(stdout);
		return TM_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			/* Each command parses its own options; argv[0] becomes the command name. */
			optind = 1;
			opterr = 0;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	return tm_usage_err(NULL, "unknown command '%s'", argv[1]);
}
