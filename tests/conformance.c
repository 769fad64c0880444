/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ONNX's own backend tests (Debian libonnx-testdata) against the engine: every case under
 * DATA/node and DATA/pytorch-converted is a model.onnx and test_data_set_N/{input,output}_K.pb.
 * The engine decides what it can take: a model it refuses to load, or inputs of a data type
 * plans do not take, is a skip with the engine's reason; everything else is built as a
 * KERN_PLAN_GRAPH plan at the case's input shapes, run, and compared output by output.
 * Node tests often feed what exporters write as initializers (Conv weights, Clip bounds,
 * Reshape shapes, Reduce axes) as extra graph inputs: when the engine refuses such a model,
 * the case is run again with inputs 1.. baked in as initializers from test_data_set_0 (and
 * only that set), and counted apart ("baked").
 * Tolerance: |got - want| <= CF_ATOL + CF_RTOL * |want| per element (NaN only matches NaN).
 * Usage: conformance DATA_DIR [SUBDIR...]   (default subdirs: node pytorch-converted)
 */
#include "kernels/kernels.h"
#include "onnx/onnx.pb-c.h"
#include "proto/proto.h"
#include "tests/harness.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CF_ATOL 1e-4
#define CF_RTOL 1e-3

enum {
	CF_MAX_IO = 16,		/* inputs or outputs per test data set */
	CF_MAX_SETS = 8,	/* test_data_set_N per case */
	CF_MAX_FILE = 64 << 20,	/* the largest .pb in the package is a few MB */
};

/* The operators the engine is meant to support: only for the "attempted" count. */
static const char *const cf_supported[] = {
	"Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSwish", "HardSigmoid",
	"MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Mul", "Concat", "Gemm", "MatMul",
	"Flatten", "Reshape", "Softmax", "Pad", "Constant", "Identity", "Shape", "Gather",
	"Unsqueeze", "Slice", "Cast", "Squeeze",
};

/* Skip reasons and their counts, grouped by the op or data type they name. */
struct cf_reasons {
	char **key;
	unsigned *count;
	unsigned n, cap;
};

static struct cf_reasons cf_skips;
static unsigned cf_cases, cf_cases_supported, cf_ran, cf_ran_supported, cf_pass_supported;
static unsigned cf_skip_supported, cf_baked;

static void
cf_reason_add(struct cf_reasons *r, const char *key)
{
	for (unsigned i = 0; i < r->n; i++)
		if (strcmp(r->key[i], key) == 0) {
			r->count[i]++;
			return;
		}
	if (r->n == r->cap) {
		unsigned cap = r->cap ? 2 * r->cap : 64;
		char **k = realloc(r->key, cap * sizeof(*k));

		if (k == NULL)
			return;
		r->key = k;
		unsigned *c = realloc(r->count, cap * sizeof(*c));

		if (c == NULL)
			return;
		r->count = c;
		r->cap = cap;
	}
	r->key[r->n] = strdup(key);
	if (r->key[r->n] == NULL)
		return;
	r->count[r->n++] = 1;
}

static void
cf_reasons_free(struct cf_reasons *r)
{
	for (unsigned i = 0; i < r->n; i++)
		free(r->key[i]);
	free(r->key);
	free(r->count);
}

/*
 * The group an engine error belongs to: "unsupported op X", "X: unsupported attribute A",
 * "X: attribute A: why"; other messages with their quoted names (nodes, tensors) elided, so
 * cases failing for one reason fall in one group.
 */
static void
cf_reason_key(const char *msg, char *key, size_t len)
{
	const char *p;
	size_t o = 0;
	bool quoted = false;

	if ((p = strstr(msg, "unsupported op ")) != NULL) {
		snprintf(key, len, "%s", p);
		return;
	}
	/* The engine prefixes "model NAME: "; NAME is the case, not the reason. */
	if (strncmp(msg, "model ", 6) == 0 && (p = strstr(msg, ": ")) != NULL)
		msg = p + 2;
	for (p = msg; *p && o + 1 < len; p++) {
		if (*p == '"') {
			quoted = !quoted;
			if (quoted)
				o += (size_t)snprintf(key + o, len - o, "\"*\"");
			continue;
		}
		if (!quoted)
			key[o++] = *p;
	}
	key[o < len ? o : len - 1] = '\0';
	/* "node "*" (Conv): ..." reads better as "Conv: ...". */
	if (strncmp(key, "node \"*\" (", 10) == 0) {
		char tmp[512], *close = strchr(key + 10, ')');

		if (close != NULL && close[1] == ':') {
			snprintf(tmp, sizeof(tmp), "%.*s%s", (int)(close - key - 10), key + 10,
				 close + 1);
			snprintf(key, len, "%s", tmp);
		}
	}
}

static void
cf_skip(const char *reason)
{
	char key[512];

	cf_reason_key(reason, key, sizeof(key));
	cf_reason_add(&cf_skips, key);
	th_skipped++;
}

/*
 * Whether a load error states a limitation (a skip) rather than a fault (a failure): the
 * backend tests are all valid models, so a refusal that does not say what is unsupported,
 * e.g. a shape mismatch, is the engine misreading one.
 */
static bool
cf_is_limitation(const char *msg)
{
	static const char *const words[] = {
		"unsupported", "not supported", "only ", "must be", "opset", "not a tensor",
		"no runtime input",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(msg, words[i]) != NULL)
			return true;
	return false;
}

/* Whether every node of the model is in cf_supported (NULL model: not). */
static bool
cf_ops_supported(const uint8_t *buf, size_t len)
{
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
	bool ok = mp != NULL && mp->graph != NULL;

	for (size_t i = 0; ok && i < mp->graph->n_node; i++) {
		const char *op = mp->graph->node[i]->op_type;
		bool found = false;

		for (size_t k = 0; op && k < sizeof(cf_supported) / sizeof(cf_supported[0]); k++)
			found = found || strcmp(op, cf_supported[k]) == 0;
		ok = found;
	}
	if (mp != NULL)
		onnx__model_proto__free_unpacked(mp, NULL);
	return ok;
}

/* Load DIR/prefix_K.pb for K = 0.. while they exist. @return count or -errno. */
static int
cf_load_pbs(const char *dir, const char *prefix, struct tg_tensor *t, char (*names)[128],
	    struct tg_err *err)
{
	int n;

	for (n = 0; n < CF_MAX_IO; n++) {
		char path[4096];
		uint8_t *buf;
		size_t len;
		int rc;

		snprintf(path, sizeof(path), "%s/%s_%d.pb", dir, prefix, n);
		if (access(path, R_OK) != 0)
			break;
		rc = tg_file_read(path, CF_MAX_FILE, &buf, &len, err);
		if (rc < 0)
			return rc;
		rc = kern_tensor_pb_parse(buf, len, &t[n], names[n], sizeof(names[n]), err);
		free(buf);
		if (rc < 0) {
			tg_err_prefix(err, "%s_%d.pb: ", prefix, n);
			while (n-- > 0)
				tg_tensor_free(&t[n]);
			return rc;
		}
	}
	return n;
}

static double
cf_get(const struct tg_tensor *t, size_t i)
{
	switch (t->dtype) {
	case TG_DT_F32: return ((const float *)t->data)[i];
	case TG_DT_F16: return proto_f16_to_f32(((const uint16_t *)t->data)[i]);
	case TG_DT_F64: return ((const double *)t->data)[i];
	case TG_DT_S8: return ((const int8_t *)t->data)[i];
	case TG_DT_U8: return ((const uint8_t *)t->data)[i];
	case TG_DT_S32: return ((const int32_t *)t->data)[i];
	case TG_DT_S64: return (double)((const int64_t *)t->data)[i];
	}
	return NAN;
}

static void
cf_shape(char *buf, size_t len, const struct tg_tensor *t)
{
	size_t o = (size_t)snprintf(buf, len, "[");

	for (int i = 0; i < t->ndim && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)t->dims[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

/*
 * Compare got with want. @return true when within tolerance; else fills why with the worst
 * element.
 */
static bool
cf_compare(const struct tg_tensor *got, const struct tg_tensor *want, char *why, size_t len)
{
	size_t n = tg_tensor_numel(want), worst = 0, bad = 0;
	double worst_excess = -1, max_abs = 0;
	char gs[128], ws[128];
	bool same_shape = got->ndim == want->ndim;

	for (int i = 0; same_shape && i < want->ndim; i++)
		same_shape = got->dims[i] == want->dims[i];
	/* A scalar and a 1-element tensor hold the same value; other differences do not. */
	if (!same_shape && !(tg_tensor_numel(got) == 1 && n == 1)) {
		cf_shape(gs, sizeof(gs), got);
		cf_shape(ws, sizeof(ws), want);
		snprintf(why, len, "shape %s, expected %s", gs, ws);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		double g = cf_get(got, i), w = cf_get(want, i), d = fabs(g - w);
		double excess = d - (CF_ATOL + CF_RTOL * fabs(w));

		if (isnan(w) || isnan(g)) {
			if (isnan(w) && isnan(g))
				continue;
			excess = INFINITY;
		}
		if (isfinite(d) && d > max_abs)
			max_abs = d;
		if (excess > 0) {
			bad++;
			if (excess > worst_excess) {
				worst_excess = excess;
				worst = i;
			}
		}
	}
	if (bad == 0)
		return true;
	snprintf(why, len, "%zu of %zu elements off, max abs err %.3g; worst at flat index %zu: "
		 "got %.6g, want %.6g", bad, n, max_abs, worst, cf_get(got, worst),
		 cf_get(want, worst));
	return false;
}

enum cf_result { CF_PASS, CF_FAIL, CF_SKIP };

/* One test_data_set: plan at its input shapes, run, compare. why says what went wrong. */
static enum cf_result
cf_run_set(const struct kern_model *m, const char *set_dir, bool baked, char *why,
	   size_t why_len)
{
	struct tg_tensor in[CF_MAX_IO] = { 0 }, out[CF_MAX_IO] = { 0 };
	char in_names[CF_MAX_IO][128], out_names[CF_MAX_IO][128];
	struct kern_model_info mi;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_GRAPH };
	struct kern_plan *p = NULL;
	struct tg_err err = { 0 };
	enum cf_result res = CF_FAIL;
	int n_in, n_out = 0, rc;

	kern_model_get_info(m, &mi);
	n_in = cf_load_pbs(set_dir, "input", in, in_names, &err);
	if (n_in < 0) {
		snprintf(why, why_len, "test data: %s", err.msg);
		return CF_SKIP;
	}
	while (baked && n_in > 1)	/* inputs 1.. are initializers of the model now */
		tg_tensor_free(&in[--n_in]);
	n_out = cf_load_pbs(set_dir, "output", out, out_names, &err);
	if (n_out < 0) {
		snprintf(why, why_len, "test data: %s", err.msg);
		n_out = 0;
		res = CF_SKIP;
		goto out;
	}
	if ((unsigned)n_in != mi.n_inputs) {
		snprintf(why, why_len, "%d input files for %u graph inputs", n_in, mi.n_inputs);
		goto out;
	}
	for (int i = 0; i < n_in; i++)
		if (in[i].dtype != TG_DT_F32) {
			snprintf(why, why_len, "input dtype %s (plans take f32)",
				 tg_dtype_name(in[i].dtype));
			res = CF_SKIP;
			goto out;
		}
	spec.input_shapes = in;
	spec.n_input_shapes = (unsigned)n_in;
	rc = kern_plan_create(m, &spec, &p, &err);
	if (rc < 0) {
		snprintf(why, why_len, "plan: %s", err.msg);
		goto out;
	}
	for (int i = 0; i < n_in; i++) {
		struct tg_tensor v;

		rc = kern_plan_input(p, (unsigned)i, &v);
		if (rc < 0 || v.dtype != TG_DT_F32 || tg_tensor_numel(&v) != tg_tensor_numel(&in[i])) {
			snprintf(why, why_len, "plan input %d: rc %d, %s with %zu elements for %zu", i,
				 rc, tg_dtype_name(v.dtype), rc < 0 ? 0 : tg_tensor_numel(&v),
				 tg_tensor_numel(&in[i]));
			goto out;
		}
		memcpy(v.data, in[i].data, tg_tensor_bytes(&in[i]));
	}
	rc = kern_plan_run(p);
	if (rc < 0) {
		snprintf(why, why_len, "run: %s", strerror(-rc));
		goto out;
	}
	if (kern_plan_n_outputs(p) != (unsigned)n_out) {
		snprintf(why, why_len, "plan has %u outputs, test data %d", kern_plan_n_outputs(p),
			 n_out);
		goto out;
	}
	for (int k = 0; k < n_out; k++) {
		struct tg_tensor v;
		const char *name = NULL;
		char cmp[384];

		rc = kern_plan_output(p, (unsigned)k, &v, &name);
		if (rc < 0) {
			snprintf(why, why_len, "output %d: rc %d", k, rc);
			goto out;
		}
		if (!cf_compare(&v, &out[k], cmp, sizeof(cmp))) {
			snprintf(why, why_len, "output %d \"%s\": %s", k, name ? name : out_names[k],
				 cmp);
			goto out;
		}
	}
	res = CF_PASS;
out:
	kern_plan_free(p);
	for (int i = 0; i < n_in; i++)
		tg_tensor_free(&in[i]);
	for (int k = 0; k < n_out; k++)
		tg_tensor_free(&out[k]);
	return res;
}


/* What one case came to; a worker sends it to the supervisor as one line. */
struct cf_outcome {
	enum cf_result res;
	bool sup;		/* every op in cf_supported */
	bool load_refused;	/* skipped because the engine refused the model */
	bool baked;		/* ran with inputs 1.. as initializers (see the top) */
	char why[1024];
};

/*
 * The model with graph inputs 1.. turned into initializers holding test_data_set_0's values
 * (input_K.pb, named as the input). @return 0 with a malloc'd model in *out, or -1.
 */
static int
cf_bake_inputs(const uint8_t *buf, size_t len, const char *dir, uint8_t **out, size_t *out_len)
{
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
	Onnx__GraphProto *g = mp ? mp->graph : NULL;
	Onnx__TensorProto **inits;
	int rc = -1;

	if (g == NULL || g->n_input < 2 || g->n_input > CF_MAX_IO)
		goto out;
	inits = realloc(g->initializer, (g->n_initializer + g->n_input) * sizeof(*inits));
	if (inits == NULL)
		goto out;
	g->initializer = inits;
	while (g->n_input > 1) {
		Onnx__ValueInfoProto *vi = g->input[g->n_input - 1];
		Onnx__TensorProto *t;
		char path[4200];
		uint8_t *tb;
		size_t tl;

		snprintf(path, sizeof(path), "%s/test_data_set_0/input_%zu.pb", dir, g->n_input - 1);
		if (tg_file_read(path, CF_MAX_FILE, &tb, &tl, NULL) < 0)
			goto out;
		t = onnx__tensor_proto__unpack(NULL, tl, tb);
		free(tb);
		if (t == NULL)
			goto out;
		free(t->name);
		t->name = strdup(vi->name ? vi->name : "");
		g->initializer[g->n_initializer++] = t;
		g->n_input--;
		onnx__value_info_proto__free_unpacked(vi, NULL);
		if (t->name == NULL)
			goto out;
	}
	*out_len = onnx__model_proto__get_packed_size(mp);
	*out = malloc(*out_len ? *out_len : 1);
	if (*out != NULL) {
		onnx__model_proto__pack(mp, *out);
		rc = 0;
	}
out:
	if (mp)
		onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}

static void
cf_case(const char *root, const char *sub, const char *name, struct cf_outcome *o)
{
	char dir[4096], path[4096 + 16];
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	unsigned n_sets = 0;

	memset(o, 0, sizeof(*o));
	snprintf(dir, sizeof(dir), "%s/%s/%s", root, sub, name);
	snprintf(path, sizeof(path), "%s/model.onnx", dir);
	if (tg_file_read(path, CF_MAX_FILE, &buf, &len, &err) < 0) {
		o->res = CF_SKIP;
		snprintf(o->why, sizeof(o->why), "no readable model.onnx");
		return;
	}
	o->sup = cf_ops_supported(buf, len);
	if (kern_model_load_mem(buf, len, name, NULL, &m, &err) < 0 && cf_is_limitation(err.msg)) {
		uint8_t *bb;
		size_t bl;

		if (cf_bake_inputs(buf, len, dir, &bb, &bl) == 0) {
			struct tg_err e2 = { 0 };

			if (kern_model_load_mem(bb, bl, name, NULL, &m, &e2) == 0)
				o->baked = true;
			free(bb);
		}
	}
	if (m == NULL) {
		free(buf);
		o->res = cf_is_limitation(err.msg) ? CF_SKIP : CF_FAIL;
		o->load_refused = true;
		snprintf(o->why, sizeof(o->why), "%s%s", o->res == CF_FAIL ? "load: " : "", err.msg);
		return;
	}
	free(buf);
	o->res = CF_PASS;
	for (unsigned s = 0; s < (o->baked ? 1 : CF_MAX_SETS) && o->res == CF_PASS; s++) {
		char set_dir[4200];

		snprintf(set_dir, sizeof(set_dir), "%s/test_data_set_%u", dir, s);
		if (access(set_dir, R_OK) != 0)
			break;
		o->res = cf_run_set(m, set_dir, o->baked, o->why, sizeof(o->why));
		n_sets++;
	}
	kern_model_free(m);
	if (o->res == CF_PASS && n_sets == 0) {
		snprintf(o->why, sizeof(o->why), "no test_data_set_0");
		o->res = CF_SKIP;
	}
}

/* ---- supervisor: cases run in a worker process, so an engine crash fails one case ---- */

enum { CF_CASE_TIMEOUT_S = 30 };

struct cf_case_ref {
	const char *sub;
	char *name;
};

/*
 * Worker: run cases from start on, announcing each ("S i") before and reporting it
 * ("R i res sup refused why") after. It exits normally so ASan's leak check runs.
 */
static void
cf_worker(const char *root, const struct cf_case_ref *cases, int n, int start, FILE *out)
{
	struct cf_outcome o;

	kern_set_threads(1);	/* cases are tiny; one thread keeps runs short and repeatable */
	for (int i = start; i < n; i++) {
		fprintf(out, "S %d\n", i);
		fflush(out);
		alarm(CF_CASE_TIMEOUT_S);
		cf_case(root, cases[i].sub, cases[i].name, &o);
		alarm(0);
		for (char *p = o.why; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		fprintf(out, "R %d %d %d %d %d %s\n", i, (int)o.res, o.sup, o.load_refused, o.baked,
			o.why);
		fflush(out);
	}
}

/* Tally one outcome in the parent. */
static void
cf_record(const struct cf_case_ref *c, const struct cf_outcome *o)
{
	cf_cases++;
	cf_cases_supported += o->sup;
	switch (o->res) {
	case CF_PASS:
		th_passed++;
		cf_ran++;
		cf_baked += o->baked;
		cf_ran_supported += o->sup;
		cf_pass_supported += o->sup;
		break;
	case CF_FAIL:
		th_failed++;
		cf_ran++;
		cf_baked += o->baked;
		cf_ran_supported += o->sup;
		printf("FAILED %s/%s: %s\n", c->sub, c->name, o->why);
		break;
	case CF_SKIP:
		cf_skip(o->why);
		cf_skip_supported += o->sup;
		/* Worth a look: by the op list, the engine should take these. */
		if (o->sup)
			fprintf(stderr, "skip %s/%s (ops supported%s): %s\n", c->sub, c->name,
				o->load_refused ? ", load refused" : "", o->why);
		break;
	}
}

/* Run cases[0..n) in as many workers as crashes make necessary. */
static void
cf_supervise(const char *root, const struct cf_case_ref *cases, int n)
{
	int start = 0;

	while (start < n) {
		int fds[2], status, started = -1, done = start - 1;
		char line[2048];
		pid_t pid;
		FILE *in;

		fflush(stdout);
		fflush(stderr);
		if (pipe(fds) < 0 || (pid = fork()) < 0) {
			perror("conformance: pipe/fork");
			th_failed++;
			return;
		}
		if (pid == 0) {
			FILE *out = fdopen(fds[1], "w");

			close(fds[0]);
			if (out == NULL)
				_exit(3);
			cf_worker(root, cases, n, start, out);
			fclose(out);
			exit(0);
		}
		close(fds[1]);
		in = fdopen(fds[0], "r");
		while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
			struct cf_outcome o = { 0 };
			int i, res, sup, refused, baked, off = 0;

			line[strcspn(line, "\n")] = '\0';
			if (sscanf(line, "S %d", &i) == 1 && line[0] == 'S') {
				started = i;
			} else if (sscanf(line, "R %d %d %d %d %d %n", &i, &res, &sup, &refused, &baked,
					  &off) == 5 && i >= 0 && i < n) {
				o.res = (enum cf_result)res;
				o.sup = sup;
				o.load_refused = refused;
				o.baked = baked;
				snprintf(o.why, sizeof(o.why), "%s", line + off);
				cf_record(&cases[i], &o);
				done = i;
			}
		}
		if (in != NULL)
			fclose(in);
		else
			close(fds[0]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (started > done) {
			/* The worker died inside a case: that case fails, the next worker goes on. */
			struct cf_outcome o = { .res = CF_FAIL };

			if (WIFSIGNALED(status))
				snprintf(o.why, sizeof(o.why), "%s (signal %d, see the log above)",
					 WTERMSIG(status) == SIGALRM ? "timed out" : "crashed",
					 WTERMSIG(status));
			else
				snprintf(o.why, sizeof(o.why), "worker exited with status %d inside the case",
					 WEXITSTATUS(status));
			cf_record(&cases[started], &o);
			start = started + 1;
			continue;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			/* After its last case: the leak check at exit, most likely. */
			printf("FAILED worker for cases %d..%d: %s %d at exit (leak report above?)\n",
			       start, n - 1, WIFSIGNALED(status) ? "signal" : "status",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			th_failed++;
		}
		start = done + 1 > start ? done + 1 : n;
	}
}

static int
cf_dir_filter(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
	static const char *const dflt[] = { "node", "pytorch-converted" };
	const char *root = argc > 1 ? argv[1] : "/usr/share/libonnx-testdata/data";
	const char *const *subs = argc > 2 ? (const char *const *)argv + 2 : dflt;
	int n_subs = argc > 2 ? argc - 2 : 2, n_cases = 0;
	struct cf_case_ref *cases = NULL;
	uint64_t t0 = tg_now_ns();
	struct stat sb;

	(void)th_cur_failed;	/* counts are kept per case here, not per TH_RUN */
	(void)th_cur_skipped;
	if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "skip: %s absent (Debian libonnx-testdata)\n", root);
		th_skipped++;
		TH_DONE();
	}
	for (int s = 0; s < n_subs; s++) {
		char dir[4096];
		struct dirent **ents = NULL;
		int n;

		snprintf(dir, sizeof(dir), "%s/%s", root, subs[s]);
		n = scandir(dir, &ents, cf_dir_filter, alphasort);
		if (n < 0) {
			fprintf(stderr, "skip: %s: %s\n", dir, strerror(errno));
			th_skipped++;
			continue;
		}
		struct cf_case_ref *c = realloc(cases, (size_t)(n_cases + n) * sizeof(*c));

		if (c == NULL) {
			fprintf(stderr, "conformance: out of memory\n");
			return 1;
		}
		cases = c;
		for (int i = 0; i < n; i++) {
			cases[n_cases].sub = subs[s];
			cases[n_cases].name = strdup(ents[i]->d_name);
			n_cases += cases[n_cases].name != NULL;
			free(ents[i]);
		}
		free(ents);
	}
	cf_supervise(root, cases, n_cases);

	printf("\nconformance: %s (", root);
	for (int i = 0; i < n_subs; i++)
		printf("%s%s", i ? ", " : "", subs[i]);
	printf("), %.1f s\n", (double)(tg_now_ns() - t0) / 1e9);
	printf("tolerance: |got - want| <= %g + %g * |want| per element\n", CF_ATOL, CF_RTOL);
	printf("cases %u: ran %u (passed %d, failed %u; %u of them with inputs baked in as "
	       "initializers), skipped %d\n", cf_cases, cf_ran, th_passed,
	       cf_ran - (unsigned)th_passed, cf_baked, th_skipped);
	printf("attempted %u cases whose ops are all in the supported list: ran %u (passed %u, "
	       "failed %u), skipped %u\n", cf_cases_supported, cf_ran_supported, cf_pass_supported,
	       cf_ran_supported - cf_pass_supported, cf_skip_supported);
	/* Most frequent reasons first. */
	for (unsigned i = 1; i < cf_skips.n; i++)
		for (unsigned j = i; j > 0 && cf_skips.count[j] > cf_skips.count[j - 1]; j--) {
			unsigned c = cf_skips.count[j];
			char *k = cf_skips.key[j];

			cf_skips.count[j] = cf_skips.count[j - 1];
			cf_skips.key[j] = cf_skips.key[j - 1];
			cf_skips.count[j - 1] = c;
			cf_skips.key[j - 1] = k;
		}
	printf("skip reasons (%u distinct):\n", cf_skips.n);
	for (unsigned i = 0; i < cf_skips.n; i++)
		printf("  %5u  %s\n", cf_skips.count[i], cf_skips.key[i]);
	cf_reasons_free(&cf_skips);
	for (int i = 0; i < n_cases; i++)
		free(cases[i].name);
	free(cases);
	TH_DONE();
}
