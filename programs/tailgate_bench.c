/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tailgate-bench: a load tester for the tailgate gateway (bench/ does the work). Builds
 * wire-ready requests of real Fashion-MNIST images at every split and dtype the device mix
 * uses, opens one session per simulated device, then runs open-loop Poisson load (--rate),
 * closed-loop load (--concurrency) or a rate sweep to saturation (--sweep), and reports
 * rates, latency percentiles, retransmits, statuses and accuracy against labels and against
 * the engine's own offline answers.
 */
#include "kernels/kernels.h"
#include "bench/bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TB_EXIT_OK = 0, TB_EXIT_FAIL = 1, TB_EXIT_USAGE = 2, TB_MAX_STEPS = 64 };

static char tb_tag[64];	/* the sweep step, on the progress line */

struct tb_opts {
	const char *gateway, *model, *bind, *mix, *mix_file, *json, *csv, *hgrm, *plot, *cache;
	const char *key_file, *calib;
	unsigned model_id, devices, concurrency, images, threads, retries, timer_ms, hello_rate;
	unsigned sweep_steps;
	double rate, duration, warmup, drain, sweep_factor, deadline_ms;
	uint64_t requests, seed;
	struct bench_impair imp;
	bool sweep, quiet, check, no_cache, no_crc;
};

static void
tb_help(FILE *f)
{
	fprintf(f,
"Usage: tailgate-bench --gateway IP[:PORT] [options]\n"
"Load tester for a tailgate gateway: many simulated devices, one process, real inputs.\n"
"\n"
"Target and inputs:\n"
"  -g, --gateway IP[:PORT]  gateway address (port 7700 by default); required\n"
"  -m, --model DIR|ONNX     model to compute the heads and offline answers with\n"
"                           (default models/fmnist-resnet)\n"
"      --model-id N         model id the gateway serves it under (default 1)\n"
"      --images N           Fashion-MNIST test images to use, 1..10000 (default 10000)\n"
"      --bind IP            local address to send from (default: any)\n"
"      --threads N          engine threads while building inputs (default: all cores)\n"
"      --calib FILE         offline answers in int8 with this calibration, for a gateway\n"
"                           serving the model with dtype = int8 (default: f32)\n"
"      --cache DIR          keep built inputs in DIR and reuse them when model, images,\n"
"                           splits and dtypes match (default build/bench-cache when\n"
"                           ./build exists)\n"
"      --no-cache           always build the inputs\n"
"\n"
"Devices:\n"
"  -n, --devices N          simulated devices, each its own client id and session\n"
"                           (default 1000)\n"
"      --mix SPEC           what devices are (default below); keys not given keep the\n"
"                           default\n"
"      --mix-file FILE      the same as key=value lines ('#' comments); --mix applies after\n"
"      --deadline MS        every device's deadline, replacing the mix's\n"
"\n"
"Load:\n"
"  -r, --rate R             open loop: Poisson arrivals at R requests/s (latency from each\n"
"                           request's scheduled time: no coordinated omission)\n"
"  -c, --concurrency C      closed loop: C requests always in flight (when no --rate)\n"
"  -d, --duration S         measured seconds per run or sweep step (default 10)\n"
"  -w, --warmup S           seconds of load before measuring (default 1)\n"
"      --requests N         stop arrivals after N measured requests\n"
"      --drain S            wait at most S seconds for open requests at the end (default 5)\n"
"      --sweep              open loop from --rate (default 50) upwards, x --sweep-factor\n"
"                           (default 1.5) per step, up to --sweep-steps (default 12), until\n"
"                           saturated: achieved < 95%% of offered, or p99 over the mix's\n"
"                           largest deadline\n"
"      --retries N          at most N whole-request resends (default 0: as many as the\n"
"                           request's deadline allows, docs/protocol.md 12.2)\n"
"      --timeout-ms MS      first request timer (default: docs/protocol.md 12.2's)\n"
"      --hello-rate N       HELLOs per second while opening sessions (default 2000)\n"
"      --key-file FILE      device keys, one 'CLIENT_ID HEX64' per line (the gateway's\n"
"                           auth_keys format, mode 600): device i takes line i's client\n"
"                           id (by ascending id) and MACs every datagram with its key;\n"
"                           replies without a valid tag are dropped\n"
"      --no-crc             without keys, send no CRC32C (as devices before it did)\n"
"\n"
"Impairment (of outgoing REQUEST chunks, seeded):\n"
"      --drop F             fraction of chunks not sent\n"
"      --dup F              fraction sent twice\n"
"      --reorder F          fraction held back until after the device's next chunk\n"
"      --corrupt F          fraction with one payload byte changed after sealing (a\n"
"                           middlebox that recomputes the UDP checksum)\n"
"      --seed N             seed of every random choice (default 1)\n"
"\n"
"Output:\n"
"      --json FILE|-        the results as JSON (a sweep: every step, and the last)\n"
"      --csv FILE|-         the same figures as CSV: a header, one line per run (a sweep:\n"
"                           per step)\n"
"      --hgrm FILE          latency percentiles in HdrHistogram's .hgrm format (ms; a\n"
"                           sweep: its last step)\n"
"      --plot DIR           PNG charts with gnuplot: latency CDF; latency vs throughput\n"
"                           for a sweep\n"
"  -q, --quiet              no progress line (also off when stderr is not a terminal)\n"
"      --check              exit 1 unless every request was answered OK and agreed with\n"
"                           the offline answer\n"
"  -h, --help\n"
"\n"
"Mix syntax: key=item,item,...;key=...  keys split, dtype, uplink, deadline.\n"
"  An item is VALUE or LO-HI (uniform; uplink and deadline), with an optional :WEIGHT.\n"
"  split: rows of the model's split table; dtype: f32 f16 s8 u8; uplink: kbps (default),\n"
"  mbps, gbps, 0 = unpaced; deadline: ms (default), us, s, 0 = none.\n"
"  Default: %s\n"
"  Example: split=0:1,4:2,8:1;dtype=u8:3,f32;uplink=1000-20000kbps;deadline=50-200ms\n"
"\n"
"Exit status: 0 run completed, 1 failed (or --check found a problem), 2 bad arguments.\n",
		BENCH_MIX_DEFAULT);
}

static int
tb_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "tailgate-bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(try --help)\n");
	return TB_EXIT_USAGE;
}

static int
tb_uint(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *v)
{
	char *end;

	errno = 0;
	if (*s == '-' || *s == 0)
		return -1;
	*v = strtoull(s, &end, 10);
	return errno || *end || *v < lo || *v > hi ? -1 : 0;
}

static int
tb_double(const char *s, double lo, double hi, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	return errno || end == s || *end || !(*v >= lo && *v <= hi) ? -1 : 0;
}

/* "IP[:PORT]" */
static int
tb_addr(const char *s, uint32_t *ip, uint16_t *port)
{
	char buf[64];
	const char *colon = strchr(s, ':');
	unsigned long long p = PROTO_PORT;
	struct in_addr a;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if (colon != NULL) {
		buf[colon - s] = 0;
		if (tb_uint(colon + 1, 1, 65535, &p) < 0)
			return -1;
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -1;
	*ip = a.s_addr;
	*port = (uint16_t)p;
	return 0;
}

enum {
	O_MODEL_ID = 256, O_IMAGES, O_BIND, O_THREADS, O_MIX, O_MIX_FILE, O_DEADLINE, O_REQUESTS,
	O_DRAIN, O_SWEEP, O_SWEEP_FACTOR, O_SWEEP_STEPS, O_RETRIES, O_TIMEOUT, O_HELLO_RATE,
	O_DROP, O_DUP, O_REORDER, O_SEED, O_JSON, O_CSV, O_HGRM, O_PLOT, O_CHECK, O_CACHE, O_NO_CACHE,
	O_KEY_FILE, O_NO_CRC, O_CORRUPT, O_CALIB,
};

static int
tb_parse(int argc, char **argv, struct tb_opts *o, struct bench_mix *mix)
{
	static const struct option lo[] = {
		{ "gateway", required_argument, NULL, 'g' },
		{ "model", required_argument, NULL, 'm' },
		{ "model-id", required_argument, NULL, O_MODEL_ID },
		{ "images", required_argument, NULL, O_IMAGES },
		{ "bind", required_argument, NULL, O_BIND },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "cache", required_argument, NULL, O_CACHE },
		{ "no-cache", no_argument, NULL, O_NO_CACHE },
		{ "calib", required_argument, NULL, O_CALIB },
		{ "devices", required_argument, NULL, 'n' },
		{ "mix", required_argument, NULL, O_MIX },
		{ "mix-file", required_argument, NULL, O_MIX_FILE },
		{ "deadline", required_argument, NULL, O_DEADLINE },
		{ "rate", required_argument, NULL, 'r' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "requests", required_argument, NULL, O_REQUESTS },
		{ "drain", required_argument, NULL, O_DRAIN },
		{ "sweep", no_argument, NULL, O_SWEEP },
		{ "sweep-factor", required_argument, NULL, O_SWEEP_FACTOR },
		{ "sweep-steps", required_argument, NULL, O_SWEEP_STEPS },
		{ "retries", required_argument, NULL, O_RETRIES },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "hello-rate", required_argument, NULL, O_HELLO_RATE },
		{ "drop", required_argument, NULL, O_DROP },
		{ "dup", required_argument, NULL, O_DUP },
		{ "reorder", required_argument, NULL, O_REORDER },
		{ "corrupt", required_argument, NULL, O_CORRUPT },
		{ "key-file", required_argument, NULL, O_KEY_FILE },
		{ "no-crc", no_argument, NULL, O_NO_CRC },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", required_argument, NULL, O_JSON },
		{ "csv", required_argument, NULL, O_CSV },
		{ "hgrm", required_argument, NULL, O_HGRM },
		{ "plot", required_argument, NULL, O_PLOT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "check", no_argument, NULL, O_CHECK },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long u;
	struct tg_err err = { 0 };
	int opt;

	while ((opt = getopt_long(argc, argv, "g:m:n:r:c:d:w:qh", lo, NULL)) != -1) {
		switch (opt) {
		case 'g': o->gateway = optarg; break;
		case 'm': o->model = optarg; break;
		case O_BIND: o->bind = optarg; break;
		case O_MIX: o->mix = optarg; break;
		case O_MIX_FILE: o->mix_file = optarg; break;
		case O_JSON: o->json = optarg; break;
		case O_CSV: o->csv = optarg; break;
		case O_HGRM: o->hgrm = optarg; break;
		case O_PLOT: o->plot = optarg; break;
		case O_SWEEP: o->sweep = true; break;
		case O_CHECK: o->check = true; break;
		case O_CACHE: o->cache = optarg; break;
		case O_NO_CACHE: o->no_cache = true; break;
		case O_CALIB: o->calib = optarg; break;
		case O_KEY_FILE: o->key_file = optarg; break;
		case O_NO_CRC: o->no_crc = true; break;
		case 'q': o->quiet = true; break;
		case 'h': tb_help(stdout); exit(TB_EXIT_OK);
#define TB_U(c, field, lo_, hi_, what)							\
		case c:									\
			if (tb_uint(optarg, lo_, hi_, &u) < 0)				\
				return tb_usage(what ": '%s' is not a number in "	\
						#lo_ ".." #hi_, optarg);		\
			o->field = (__typeof__(o->field))u;				\
			break;
		TB_U(O_MODEL_ID, model_id, 0, 65534, "--model-id")
		TB_U(O_IMAGES, images, 1, 10000, "--images")
		TB_U(O_THREADS, threads, 0, 1024, "--threads")
		TB_U('n', devices, 1, 1000000, "--devices")
		TB_U('c', concurrency, 1, 1000000, "--concurrency")
		TB_U(O_REQUESTS, requests, 1, 1000000000, "--requests")
		TB_U(O_SWEEP_STEPS, sweep_steps, 1, 64, "--sweep-steps")
		TB_U(O_RETRIES, retries, 0, 20, "--retries")
		TB_U(O_TIMEOUT, timer_ms, 1, 600000, "--timeout-ms")
		TB_U(O_HELLO_RATE, hello_rate, 1, 1000000, "--hello-rate")
		TB_U(O_SEED, seed, 0, 18446744073709551615ull, "--seed")
#undef TB_U
#define TB_D(c, field, lo_, hi_, what)							\
		case c:									\
			if (tb_double(optarg, lo_, hi_, &o->field) < 0)			\
				return tb_usage(what ": '%s' is not a number in "	\
						#lo_ ".." #hi_, optarg);		\
			break;
		TB_D('r', rate, 0.001, 10000000, "--rate")
		TB_D('d', duration, 0, 86400, "--duration")
		TB_D('w', warmup, 0, 3600, "--warmup")
		TB_D(O_DRAIN, drain, 0, 3600, "--drain")
		TB_D(O_SWEEP_FACTOR, sweep_factor, 1.01, 100, "--sweep-factor")
		TB_D(O_DEADLINE, deadline_ms, 0, 3600000, "--deadline")
		TB_D(O_DROP, imp.drop, 0, 0.999, "--drop")
		TB_D(O_DUP, imp.dup, 0, 0.999, "--dup")
		TB_D(O_REORDER, imp.reorder, 0, 0.999, "--reorder")
		TB_D(O_CORRUPT, imp.corrupt, 0, 0.999, "--corrupt")
#undef TB_D
		default:
			return tb_usage("%s", "unknown option or missing argument");
		}
	}
	if (optind < argc)
		return tb_usage("unexpected argument '%s'", argv[optind]);
	if (o->gateway == NULL)
		return tb_usage("%s", "--gateway IP[:PORT] is required");
	if (o->rate > 0 && o->concurrency > 0)
		return tb_usage("%s", "--rate (open loop) and --concurrency (closed loop) exclude "
				"each other");
	if (o->sweep && o->concurrency > 0)
		return tb_usage("%s", "--sweep steps the open-loop --rate, not --concurrency");
	if (!o->sweep && o->rate == 0 && o->concurrency == 0)
		return tb_usage("%s", "give --rate R (open loop), --concurrency C or --sweep");
	if (o->duration == 0 && o->requests == 0)
		return tb_usage("%s", "--duration 0 needs --requests N");
	if (bench_impair_check(&o->imp, &err) < 0)
		return tb_usage("%s", err.msg);
	if (o->mix_file != NULL && bench_mix_load(mix, o->mix_file, &err) < 0)
		return tb_usage("--mix-file: %s", err.msg);
	if (o->mix != NULL && bench_mix_parse(mix, o->mix, &err) < 0)
		return tb_usage("--mix: %s", err.msg);
	if (!isnan(o->deadline_ms)) {
		mix->key[BENCH_MIX_DEADLINE].n = 1;
		mix->key[BENCH_MIX_DEADLINE].item[0] = (struct bench_mix_item){
			.lo = (uint64_t)llround(o->deadline_ms * 1000),
			.hi = (uint64_t)llround(o->deadline_ms * 1000), .weight = 1 };
	}
	return 0;
}

static FILE *
tb_open_out(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");

	if (f == NULL)
		fprintf(stderr, "tailgate-bench: %s: %s\n", path, strerror(errno));
	return f;
}

static void
tb_close_out(FILE *f)
{
	if (f != NULL && f != stdout)
		fclose(f);
}

/*
 * --json: the run's settings, each sweep step, and the last phase with its inputs, written
 * by jansson (the mix string and every label escaped). @return 0, or -1 after a message.
 */
static int
tb_write_json(const char *path, const struct tb_opts *o, const char *mix,
	      const struct bench_results *steps, unsigned n_steps, const struct bench_results *last,
	      const struct bench_inputs *in)
{
	json_t *doc = json_pack("{s:I, s:s, s:I, s:o}", "devices", (json_int_t)o->devices,
				"mix", mix, "seed", (json_int_t)o->seed,
				"result", bench_report_json(last, in));
	json_t *sweep = o->sweep ? json_array() : NULL;
	FILE *f;
	int rc = -1;

	for (unsigned s = 0; sweep != NULL && s < n_steps; s++)
		if (json_array_append_new(sweep, bench_report_json(&steps[s], NULL)) < 0)
			goto out;
	if (doc == NULL || (o->sweep && (sweep == NULL ||
	    json_object_set(doc, "sweep", sweep) < 0 ||
	    json_object_set_new(doc, "saturated_at_rps", json_real(bench_results_offered(last))) < 0)))
		goto out;
	f = tb_open_out(path);
	if (f == NULL)
		goto out;
	rc = json_dumpf(doc, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0 || fputc('\n', f) == EOF
	     || ferror(f) ? -1 : 0;
	tb_close_out(f);
out:
	if (rc < 0)
		fprintf(stderr, "tailgate-bench: %s: the JSON report could not be written\n", path);
	json_decref(sweep);
	json_decref(doc);
	return rc;
}

/* ---- --plot: gnuplot, when it is there ---- */

static bool
tb_have_gnuplot(void)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (path == NULL)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *c = strchr(path, ':');
		size_t n = c ? (size_t)(c - path) : strlen(path);

		if (n > 0 && n + 10 < sizeof(buf)) {
			memcpy(buf, path, n);
			strcpy(buf + n, "/gnuplot");
			if (access(buf, X_OK) == 0)
				return true;
		}
		path += n + (c != NULL);
	}
	return false;
}

static int
tb_plot(const char *dir, const struct bench_results *last, const struct bench_results *steps,
	unsigned n_steps)
{
	char path[4096];
	FILE *f, *gp;
	int rc;

	if (!tb_have_gnuplot()) {
		fprintf(stderr, "tailgate-bench: --plot: gnuplot not found in PATH (install "
			"gnuplot-nox, e.g. make deps)\n");
		return -ENOENT;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "tailgate-bench: --plot: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/latency_cdf.dat", dir);
	f = fopen(path, "w");
	if (f == NULL)
		goto out_err;
	/* x: 1/(1-p), so the tail gets the room (as HdrHistogram's plotter draws it). */
	for (double nines = 0; nines <= 5.0 && last->lat_us.total > 0; nines += 0.05) {
		double p = 100.0 * (1 - pow(10, -nines));

		fprintf(f, "%.6f %.6f %.3f\n", p, 1.0 / (1.0 - p / 100.0),
			(double)bench_hdr_value_at(&last->lat_us, p) / 1000.0);
	}
	fclose(f);
	if (n_steps > 0) {
		snprintf(path, sizeof(path), "%s/sweep.dat", dir);
		f = fopen(path, "w");
		if (f == NULL)
			goto out_err;
		for (unsigned i = 0; i < n_steps; i++)
			fprintf(f, "%.3f %.3f %.3f %.3f %.3f\n", bench_results_offered(&steps[i]),
				bench_results_achieved(&steps[i]),
				(double)bench_hdr_value_at(&steps[i].lat_us, 50) / 1000.0,
				(double)bench_hdr_value_at(&steps[i].lat_us, 99) / 1000.0,
				bench_results_goodput(&steps[i]));
		fclose(f);
	}
	gp = popen("gnuplot", "w");
	if (gp == NULL)
		goto out_err;
	fprintf(gp, "set terminal pngcairo size 900,600 noenhanced\n"
		"set grid\n"
		"set output '%s/latency_cdf.png'\n"
		"set title 'tailgate-bench: latency by percentile (OK answers)'\n"
		"set logscale x\n"
		"set xlabel 'percentile'\n"
		"set ylabel 'latency (ms)'\n"
		"set xtics ('0%%%%' 1, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, '99.99%%%%' 10000, "
		"'99.999%%%%' 100000)\n"
		"plot '%s/latency_cdf.dat' using 2:3 with lines lw 2 title 'latency'\n",
		dir, dir);
	if (n_steps > 0)
		fprintf(gp, "reset\nset terminal pngcairo size 900,600 noenhanced\nset grid\n"
			"set output '%s/latency_vs_throughput.png'\n"
			"set title 'tailgate-bench sweep: latency vs throughput'\n"
			"set xlabel 'achieved (requests/s)'\n"
			"set ylabel 'latency (ms)'\n"
			"set logscale y\n"
			"plot '%s/sweep.dat' using 2:3 with linespoints lw 2 title 'p50', "
			"'' using 2:4 with linespoints lw 2 title 'p99'\n", dir, dir);
	rc = pclose(gp);
	if (rc != 0) {
		fprintf(stderr, "tailgate-bench: --plot: gnuplot failed (status %d)\n", rc);
		return -EIO;
	}
	return 0;

out_err:
	fprintf(stderr, "tailgate-bench: --plot: %s: %s\n", path, strerror(errno));
	return -EIO;
}

/* ---- main ---- */

static bool
tb_saturated(const struct bench_results *r, uint32_t max_deadline_us)
{
	if (bench_results_achieved(r) < 0.95 * bench_results_offered(r))
		return true;
	return max_deadline_us > 0 &&
	       bench_hdr_value_at(&r->lat_all_us, 99) > (int64_t)max_deadline_us;
}

/*
 * --sweep: open-loop steps from --rate (50 when unset) up by --sweep-factor until one
 * saturates or --sweep-steps ran, a table row each. steps holds o->sweep_steps results;
 * *n_steps is set to those initialised (the caller finalises them, also on error).
 * @return 0 (at least one step ran), or -errno (err set when a phase failed)
 */
static int
tb_sweep(struct bench_run *run, const struct tb_opts *o, const struct bench_mix *mix,
	 const char *mixbuf, struct bench_results *steps, unsigned *n_steps, struct tg_err *err)
{
	uint32_t max_dl = bench_mix_max_deadline(mix);
	double rate = o->rate > 0 ? o->rate : 50;
	unsigned s;
	int rc;

	printf("devices %u, mix %s\nsweep: x%.2f per step; saturated = achieved < 95%% of "
	       "offered, or p99 > %.1f ms (the mix's largest deadline)\n", o->devices,
	       mixbuf, o->sweep_factor, max_dl / 1000.0);
	bench_report_sweep_header(stdout);
	for (s = 0; s < o->sweep_steps; s++, rate *= o->sweep_factor) {
		bool sat;

		snprintf(tb_tag, sizeof(tb_tag), "step %u/%u at %.1f req/s", s + 1,
			 o->sweep_steps, rate);
		if (bench_results_init(&steps[s]) < 0)
			return -ENOMEM;
		*n_steps = s + 1;
		rc = bench_run_phase(run, rate, 0, o->warmup, o->duration, o->requests, o->drain,
				     &steps[s], err);
		if (rc < 0)
			return rc;
		sat = tb_saturated(&steps[s], max_dl);
		bench_report_sweep_row(stdout, &steps[s], sat);
		fflush(stdout);
		if (sat)
			break;
	}
	if (*n_steps > 1)
		printf("saturation: %.1f req/s offered; best goodput before it %.1f req/s\n",
		       bench_results_offered(&steps[*n_steps - 1]),
		       bench_results_goodput(&steps[*n_steps - 2]));
	return *n_steps > 0 ? 0 : -EINVAL;
}

/* The files asked for (--json, --csv, --hgrm, --plot) and --check's verdict.
 * @return TB_EXIT_OK, or TB_EXIT_FAIL when a file could not be written or the check failed */
static int
tb_outputs(const struct tb_opts *o, const char *mixbuf, struct bench_results *steps,
	   unsigned n_steps, const struct bench_results *last, const struct bench_inputs *in)
{
	int status = TB_EXIT_OK;

	if (o->json != NULL && tb_write_json(o->json, o, mixbuf, steps, n_steps, last, in) < 0)
		status = TB_EXIT_FAIL;
	if (o->csv != NULL) {
		FILE *f = tb_open_out(o->csv);

		if (f == NULL) {
			status = TB_EXIT_FAIL;
		} else {
			bench_report_csv_header(f);
			for (unsigned s = 0; s < (o->sweep ? n_steps : 1); s++)
				bench_report_csv_row(f, o->sweep ? &steps[s] : last);
			if (ferror(f))
				status = TB_EXIT_FAIL;
			tb_close_out(f);
		}
	}
	if (o->hgrm != NULL) {
		FILE *f = tb_open_out(o->hgrm);

		if (f == NULL || bench_hdr_write_hgrm(&last->lat_us, f, 1000.0, 5) < 0)
			status = TB_EXIT_FAIL;
		tb_close_out(f);
	}
	if (o->plot != NULL && tb_plot(o->plot, last, o->sweep ? steps : NULL,
				       o->sweep ? n_steps : 0) < 0)
		status = TB_EXIT_FAIL;
	if (o->check && !o->sweep &&
	    (last->ok != last->scheduled || last->agree != last->ok || last->ok == 0)) {
		fprintf(stderr, "tailgate-bench: --check: %" PRIu64 " of %" PRIu64 " scheduled "
			"answered OK, %" PRIu64 " agree with offline\n", last->ok, last->scheduled,
			last->agree);
		status = TB_EXIT_FAIL;
	}
	return status;
}

int
main(int argc, char **argv)
{
	struct tb_opts o = { .model = "models/fmnist-resnet", .model_id = 1, .devices = 1000,
			     .images = 10000, .duration = 10, .warmup = 1, .drain = 5,
			     .sweep_factor = 1.5, .sweep_steps = 12, .seed = 1, .deadline_ms = NAN };
	struct bench_inputs_cfg icfg = { 0 };
	struct bench_config cfg = { 0 };
	struct bench_inputs *in = NULL;
	struct bench_run *run = NULL;
	struct proto_keys *keys = NULL;
	struct bench_results *steps = NULL, *last = NULL;
	unsigned n_steps = 0;
	struct tg_err err = { 0 };
	char mixbuf[1024];
	int rc, status = TB_EXIT_FAIL;

	kern_prefer_passive_wait(argv);
	bench_mix_default(&cfg.mix);
	rc = tb_parse(argc, argv, &o, &cfg.mix);
	if (rc != 0)
		return rc;
	if (tb_addr(o.gateway, &cfg.gw_ip, &cfg.gw_port) < 0)
		return tb_usage("--gateway: '%s' is not IPv4[:PORT]", o.gateway);
	if (o.bind != NULL && tb_addr(o.bind, &cfg.bind_ip, &(uint16_t){ 0 }) < 0)
		return tb_usage("--bind: '%s' is not an IPv4 address", o.bind);
	bench_mix_format(&cfg.mix, mixbuf, sizeof(mixbuf));

	icfg.model = o.model;
	icfg.model_id = (uint16_t)o.model_id;
	icfg.n_images = o.images;
	icfg.split_mask = bench_mix_split_mask(&cfg.mix);
	icfg.dtype_mask = bench_mix_dtype_mask(&cfg.mix);
	icfg.threads = o.threads;
	icfg.calib = o.calib;
	if (!o.no_cache)
		icfg.cache_dir = o.cache ? o.cache :
				 access("build", W_OK) == 0 ? "build/bench-cache" : NULL;
	fprintf(stderr, "tailgate-bench: building inputs: %u images, mix %s\n", o.images, mixbuf);
	rc = bench_inputs_build(&in, &icfg, &err);
	if (rc < 0) {
		fprintf(stderr, "tailgate-bench: inputs: %s\n", err.msg);
		goto out;
	}
	fprintf(stderr, "tailgate-bench: inputs %s in %.1f s: %.1f MB of datagrams, offline "
		"accuracy %.2f%% over %" PRIu64 " messages\n",
		in->from_cache ? "loaded from the cache" : "built", in->build_s,
		(double)in->arena_len / 1e6,
		in->offline_total ? 100.0 * (double)in->offline_hits / (double)in->offline_total : 0,
		in->offline_total);

	cfg.model_id = (uint16_t)o.model_id;
	cfg.n_devices = o.devices;
	cfg.impair = o.imp;
	cfg.seed = o.seed;
	cfg.no_crc = o.no_crc;
	if (o.key_file != NULL) {
		rc = proto_keys_load(&keys, o.key_file, &err);
		if (rc < 0) {
			fprintf(stderr, "tailgate-bench: --key-file: %s\n", err.msg);
			goto out;
		}
		cfg.keys = keys;
	}
	cfg.hello_rate = o.hello_rate;
	cfg.retries = o.retries;
	cfg.timer_ms = o.timer_ms;
	cfg.progress = !o.quiet && isatty(STDERR_FILENO);
	cfg.progress_tag = o.sweep ? tb_tag : NULL;	/* rewritten per step, read by the run */
	cfg.in = in;
	rc = bench_run_create(&run, &cfg, &err);
	if (rc < 0) {
		fprintf(stderr, "tailgate-bench: %s\n", err.msg);
		goto out;
	}
	{
		const struct proto_hello_reply *gw = bench_run_gateway(run);

		fprintf(stderr, "tailgate-bench: %u sessions open (gateway: max_inflight %u per "
			"client, %u chunks, nack gap %u ms, reassembly timeout %u ms)\n",
			o.devices, gw->max_inflight, gw->max_chunks, gw->nack_gap_ms,
			gw->reasm_timeout_ms);
	}
	steps = calloc(o.sweep ? o.sweep_steps : 1, sizeof(*steps));
	if (steps == NULL)
		goto out;
	if (!o.sweep) {
		if (bench_results_init(&steps[0]) < 0)
			goto out;
		n_steps = 1;
		rc = bench_run_phase(run, o.rate, o.concurrency, o.warmup, o.duration, o.requests,
				  o.drain, &steps[0], &err);
		if (rc < 0) {
			fprintf(stderr, "tailgate-bench: %s\n", err.msg);
			goto out;
		}
		last = &steps[0];
		printf("devices %u, mix %s\n", o.devices, mixbuf);
		bench_report_table(stdout, last, in);
	} else {
		rc = tb_sweep(run, &o, &cfg.mix, mixbuf, steps, &n_steps, &err);
		if (rc < 0) {
			if (err.code != 0)
				fprintf(stderr, "tailgate-bench: %s\n", err.msg);
			goto out;
		}
		last = &steps[n_steps - 1];
	}
	status = tb_outputs(&o, mixbuf, steps, n_steps, last, in);
out:
	for (unsigned s = 0; s < n_steps; s++)
		bench_results_fini(&steps[s]);
	free(steps);
	bench_run_free(run);
	bench_inputs_free(in);
	proto_keys_free(keys);
	return status;
}
