/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tgc-example: a device built on libtailgate-client. Loads the shipped model, takes N
 * Fashion-MNIST test images, runs the head of each to a split on this machine, sends the
 * tensor to a gateway quantized to a wire dtype, and prints the predictions against the
 * labels and the accuracy. Several splits and dtypes rotate over the images (mixed traffic).
 *
 * Usage: tgc-example --gateway ADDR[:PORT] [--model FILE] [--model-id N] [--split S[,S..]]
 *            [--dtype D[,D..]] [--n N] [--offset K] [--top-k K] [--uplink-kbps R]
 *            [--drop FRACTION] [--drop-rx FRACTION] [--seed N] [--follow-advice]
 *            [--want-tensor] [--echo-tensor MAX_BYTES] [--quiet] [--fmnist DIR]
 * --want-tensor asks for the exit's whole output (WANT_TENSOR) and predicts its argmax.
 * --echo-tensor sends N random f32 tensors of 4..MAX_BYTES bytes to the echo model with
 * WANT_TENSOR (no model, no images) and checks each answer is the tensor, byte for byte.
 * Prints one line per image (unless --quiet), then "name value" lines; exits 0 when every
 * request was answered OK, 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "client/tgc.h"
#include "kernels/kernels.h"
#include "util/util.h"

enum { EX_MAX_LIST = 16 };

struct ex_opts {
	char gateway[64];
	uint16_t port;
	const char *model, *fmnist, *key_file;
	uint32_t client_id;		/* --client-id; 0: the key file's first, or the pid's */
	unsigned model_id, n, offset, top_k, uplink_kbps;
	unsigned splits[EX_MAX_LIST], n_splits;
	enum tg_dtype dtypes[EX_MAX_LIST];
	unsigned n_dtypes;
	double drop, drop_rx;
	uint64_t seed;
	bool follow, quiet, want_tensor;
	unsigned echo_max;	/* --echo-tensor: largest tensor in bytes; 0 off */
};

static int
ex_usage(const char *msg)
{
	fprintf(stderr, "tgc-example: %s\n"
		"usage: tgc-example --gateway ADDR[:PORT] [--model FILE] [--model-id N]\n"
		"         [--split S[,S..]] [--dtype f32|f16|s8|u8[,..]] [--n N] [--offset K]\n"
		"         [--top-k K] [--uplink-kbps R] [--drop FRACTION] [--drop-rx FRACTION]\n"
		"         [--seed N] [--follow-advice] [--want-tensor] [--echo-tensor MAX_BYTES]\n"
		"         [--quiet] [--fmnist DIR] [--key-file FILE] [--client-id N]\n"
		"--key-file: device keys ('CLIENT_ID HEX64' lines, mode 600); the session MACs\n"
		"every datagram with the key of --client-id (default: the file's lowest id)\n",
		msg);
	return 2;
}

static int
ex_parse(int argc, char **argv, struct ex_opts *o)
{
	*o = (struct ex_opts){ .model = "models/fmnist-resnet/model.onnx", .model_id = 1,
			       .n = 100, .top_k = 3, .splits = { 4 }, .n_splits = 1,
			       .dtypes = { TG_DT_U8 }, .n_dtypes = 1, .seed = 1 };
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(k, "--follow-advice") == 0) {
			o->follow = true;
			continue;
		}
		if (strcmp(k, "--quiet") == 0) {
			o->quiet = true;
			continue;
		}
		if (strcmp(k, "--want-tensor") == 0) {
			o->want_tensor = true;
			continue;
		}
		if (v == NULL)
			return ex_usage("an option without its value");
		i++;
		if (strcmp(k, "--gateway") == 0) {
			const char *colon = strchr(v, ':');
			size_t len = colon ? (size_t)(colon - v) : strlen(v);

			if (len >= sizeof(o->gateway))
				return ex_usage("--gateway: address too long");
			memcpy(o->gateway, v, len);
			o->gateway[len] = '\0';
			o->port = colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 0;
		} else if (strcmp(k, "--model") == 0) {
			o->model = v;
		} else if (strcmp(k, "--fmnist") == 0) {
			o->fmnist = v;
		} else if (strcmp(k, "--key-file") == 0) {
			o->key_file = v;
		} else if (strcmp(k, "--client-id") == 0) {
			o->client_id = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--model-id") == 0) {
			o->model_id = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--n") == 0) {
			o->n = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--offset") == 0) {
			o->offset = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--top-k") == 0) {
			o->top_k = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--uplink-kbps") == 0) {
			o->uplink_kbps = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--drop") == 0) {
			o->drop = strtod(v, NULL);
		} else if (strcmp(k, "--drop-rx") == 0) {
			o->drop_rx = strtod(v, NULL);
		} else if (strcmp(k, "--echo-tensor") == 0) {
			o->echo_max = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(k, "--seed") == 0) {
			o->seed = strtoull(v, NULL, 10);
		} else if (strcmp(k, "--split") == 0 || strcmp(k, "--dtype") == 0) {
			char buf[256], *save = NULL, *tok;
			bool split = k[2] == 's';
			unsigned n = 0;

			snprintf(buf, sizeof(buf), "%s", v);
			for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (n == EX_MAX_LIST)
					return ex_usage("too many values in a list");
				if (split)
					o->splits[n++] = (unsigned)strtoul(tok, NULL, 10);
				else if (tg_dtype_parse(tok, &o->dtypes[n++]) < 0)
					return ex_usage("--dtype: f32, f16, s8 or u8");
			}
			if (n == 0)
				return ex_usage("an empty list");
			if (split)
				o->n_splits = n;
			else
				o->n_dtypes = n;
		} else {
			return ex_usage("unknown option");
		}
	}
	if (o->gateway[0] == '\0')
		return ex_usage("--gateway is required");
	if (o->n == 0 || o->top_k == 0)
		return ex_usage("--n and --top-k must be at least 1");
	return 0;
}

/*
 * Open the session: with --key-file, as --client-id (or the file's lowest id) with its key.
 * The key table is only read here: tgc_open() copies the key.
 */
static int
ex_open(struct tgc **c, struct tgc_config *cfg, const struct ex_opts *o, struct tg_err *err)
{
	struct proto_keys *keys = NULL;
	const struct proto_key *k = NULL;
	int rc;

	cfg->client_id = o->client_id;
	if (o->key_file != NULL) {
		rc = proto_keys_load(&keys, o->key_file, err);
		if (rc < 0)
			return rc;
		k = o->client_id != 0 ? proto_keys_find(keys, o->client_id)
				      : keys->n != 0 ? &keys->k[0] : NULL;
		if (k == NULL) {
			proto_keys_free(keys);
			return tg_err_set(err, -ENOENT, "%s: no key for client id %u", o->key_file,
					  (unsigned)o->client_id);
		}
		cfg->client_id = k->client_id;
		cfg->key = k->key;
	}
	rc = tgc_open(c, cfg, err);
	cfg->key = NULL;
	proto_keys_free(keys);
	return rc;
}

/* The session's counters, as "name value" lines. */
static void
ex_print_stats(const struct tgc *c)
{
	struct tgc_stats st;

	tgc_stats(c, &st);
	printf("chunks_sent %llu\nchunks_dropped %llu\nnacks %llu\nchunks_resent %llu\n"
	       "timeouts %llu\nhellos %llu\nrx_dropped %llu\nresp_chunks %llu\nresp_nacks %llu\n"
	       "rx_unauth %llu\n",
	       (unsigned long long)st.chunks_sent, (unsigned long long)st.chunks_dropped,
	       (unsigned long long)st.nacks, (unsigned long long)st.chunks_resent,
	       (unsigned long long)st.timeouts, (unsigned long long)st.hellos,
	       (unsigned long long)st.rx_dropped, (unsigned long long)st.resp_chunks,
	       (unsigned long long)st.resp_nacks, (unsigned long long)st.rx_unauth);
}

/*
 * --echo-tensor: random f32 tensors of 1..echo_max / 4 elements (xorshift seeded by --seed)
 * to the echo model with WANT_TENSOR; every answer must be the tensor sent, byte for byte.
 * @return 0 when all were, -EIO otherwise
 */
static int
ex_echo_tensors(struct tgc *c, const struct ex_opts *o)
{
	size_t max_n = o->echo_max / 4 ? o->echo_max / 4 : 1;
	float *x = malloc(max_n * sizeof(float)), *y = malloc(max_n * sizeof(float) + 64);
	uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 1, exact = 0, chunks = 0;
	struct tg_err err = { 0 };
	int rc = 0;

	if (x == NULL || y == NULL) {
		free(x);
		free(y);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < o->n; i++) {
		struct tgc_request_opts ro = { .model_id = PROTO_MODEL_ECHO, .wire_dtype = TG_DT_F32,
					       .req_flags = PROTO_RF_WANT_TENSOR, .tensor_out = y,
					       .tensor_cap = (uint32_t)(max_n * sizeof(float)) };
		struct tg_tensor t = { .dtype = TG_DT_F32, .ndim = 2, .dims = { 1, 0 }, .data = x };
		struct tgc_result res;
		size_t n;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		n = 1 + (size_t)(rng % max_n);
		for (size_t k = 0; k < n; k++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			/* Mostly small integers: some chunks compress, some do not. */
			x[k] = (rng & 3) ? (float)(rng >> 60) : (float)(int64_t)(rng >> 11) * 1e-9f;
		}
		t.dims[1] = (int64_t)n;
		memset(y, 0xA5, max_n * sizeof(float));
		if (tgc_request(c, &ro, &t, &res, &err) < 0) {
			fprintf(stderr, "tgc-example: echo %u (%zu bytes): %s\n", i, n * 4, err.msg);
			rc = -EIO;
			continue;
		}
		chunks += res.resp_chunks;
		if (res.status == PROTO_ST_OK && res.tensor.raw_total == n * 4 &&
		    res.tensor.dtype == PROTO_DT_F32 && memcmp(x, y, n * 4) == 0)
			exact++;
		else
			rc = -EIO;
		if (!o->quiet)
			printf("echo %u: %zu bytes, %u answer chunks, %u NACKs, %s\n", i, n * 4,
			       res.resp_chunks, res.resp_nacks,
			       memcmp(x, y, n * 4) == 0 ? "exact" : "DIFFERS");
	}
	printf("requests %u\necho_exact %llu\nanswer_chunks %llu\n", o->n,
	       (unsigned long long)exact, (unsigned long long)chunks);
	ex_print_stats(c);
	free(x);
	free(y);
	return rc;
}

/* Index of the largest of n floats. */
static int
ex_argmax(const float *v, size_t n)
{
	size_t b = 0;

	for (size_t i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return n ? (int)b : -1;
}

int
main(int argc, char **argv)
{
	struct ex_opts o;
	struct tgc_config cfg = { 0 };
	struct tgc *c = NULL;
	struct tgc_head *head = NULL;
	struct bench_fmnist ds = { 0 };
	struct tg_err err = { 0 };
	uint64_t answered = 0, ok = 0, correct = 0, failed = 0, advice_differs = 0, no_tensor = 0;
	uint64_t total_ns = 0, srv_us = 0, bytes = 0;
	uint64_t ok_split[256] = { 0 }, ok_dtype[8] = { 0 };
	size_t img_numel = BENCH_FMNIST_ROWS * BENCH_FMNIST_COLS;
	int rc;

	kern_prefer_passive_wait(argv);
	rc = ex_parse(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (o.echo_max != 0) {
		cfg.gateway = o.gateway;
		cfg.port = o.port;
		cfg.test_drop_chunks = o.drop;
		cfg.test_drop_rx = o.drop_rx;
		cfg.test_seed = o.seed;
		rc = ex_open(&c, &cfg, &o, &err);
		if (rc < 0) {
			fprintf(stderr, "tgc-example: %s\n", err.msg);
			return 1;
		}
		rc = ex_echo_tensors(c, &o);
		tgc_close(c);
		return rc == 0 ? 0 : 1;
	}
	rc = bench_fmnist_load(o.fmnist, false, o.offset + o.n, &ds, &err);
	if (rc < 0) {
		fprintf(stderr, "tgc-example: Fashion-MNIST: %s\n", err.msg);
		return 1;
	}
	if (ds.n <= o.offset) {
		fprintf(stderr, "tgc-example: --offset %u past the %zu images\n", o.offset, ds.n);
		rc = -EINVAL;
		goto out;
	}
	if (o.offset + o.n > ds.n)
		o.n = (unsigned)(ds.n - o.offset);
	rc = tgc_head_open(&head, o.model, &err);
	if (rc < 0) {
		fprintf(stderr, "tgc-example: %s\n", err.msg);
		goto out;
	}
	cfg.gateway = o.gateway;
	cfg.port = o.port;
	cfg.profile.uplink_kbps = o.uplink_kbps;
	cfg.profile.compute_mflops = 2000;
	cfg.profile.rtt_us = 1000;
	cfg.profile.slo_us = 50000;
	cfg.profile.accuracy_floor_bp = 9000;
	cfg.follow_advice = o.follow;
	cfg.test_drop_chunks = o.drop;
	cfg.test_drop_rx = o.drop_rx;
	cfg.test_seed = o.seed;
	rc = ex_open(&c, &cfg, &o, &err);
	if (rc < 0) {
		fprintf(stderr, "tgc-example: %s\n", err.msg);
		goto out;
	}
	printf("session %016llx, %u catalog entries\n", (unsigned long long)tgc_session_id(c),
	       tgc_catalog(c, &(const struct proto_catalog_entry *){ NULL }));

	for (unsigned i = 0; i < o.n; i++) {
		unsigned img = o.offset + i;
		unsigned split = o.splits[i % o.n_splits];
		enum tg_dtype dt = o.dtypes[(i / o.n_splits) % o.n_dtypes];
		float logits[256];
		struct tgc_request_opts ro = { .model_id = (uint16_t)o.model_id,
					       .wire_dtype = dt, .top_k = (uint8_t)o.top_k };
		struct tgc_result res;
		struct tg_tensor t;
		int pred = -1;

		split = tgc_split_for(c, ro.model_id, (uint8_t)split);
		ro.split_id = (uint8_t)split;
		if (o.want_tensor) {
			ro.req_flags = PROTO_RF_WANT_TENSOR;
			ro.tensor_out = logits;
			ro.tensor_cap = sizeof(logits);
		}
		rc = tgc_run_head(head, split, (const float *)ds.images.data + (size_t)img * img_numel,
				  img_numel, &t, &err);
		if (rc == 0)
			rc = tgc_request(c, &ro, &t, &res, &err);
		if (rc < 0) {
			failed++;
			fprintf(stderr, "tgc-example: image %u: %s\n", img, err.msg);
			continue;
		}
		answered++;
		no_tensor += o.want_tensor && res.status == PROTO_ST_OK && res.tensor.raw_total == 0;
		if (res.status == PROTO_ST_OK && (res.top_k > 0 || res.tensor.raw_total > 0)) {
			ok++;
			ok_split[split & 255]++;
			ok_dtype[dt & 7]++;
			pred = res.tensor.raw_total > 0
				       ? ex_argmax(logits, res.tensor.raw_total / sizeof(float))
				       : (int)res.top[0].class_id;
			correct += pred == ds.labels[img];
		}
		advice_differs += res.advice_differs;
		total_ns += res.total_ns;
		srv_us += res.queue_us + res.compute_us;
		bytes += res.wire_bytes;
		if (!o.quiet)
			printf("image %u split %u %s: label %u pred %d%s (%s, %.2f ms, %u chunks, "
			       "%u resent)\n", img, split, tg_dtype_name(dt), ds.labels[img], pred,
			       pred == ds.labels[img] ? "" : " WRONG", proto_status_name(res.status),
			       (double)res.total_ns / 1e6, res.chunks, res.chunks_resent);
	}
	printf("requests %u\nanswered %llu\nok %llu\nfailed %llu\ncorrect %llu\n", o.n,
	       (unsigned long long)answered, (unsigned long long)ok, (unsigned long long)failed,
	       (unsigned long long)correct);
	printf("accuracy %.2f\n", ok ? 100.0 * (double)correct / (double)ok : 0.0);
	for (unsigned s = 0; s < 256; s++)
		if (ok_split[s])
			printf("ok_split%u %llu\n", s, (unsigned long long)ok_split[s]);
	for (unsigned d = 0; d < 8; d++)
		if (ok_dtype[d])
			printf("ok_%s %llu\n", tg_dtype_name((enum tg_dtype)d),
			       (unsigned long long)ok_dtype[d]);
	printf("mean_ms %.3f\nmean_server_ms %.3f\nmean_wire_bytes %.0f\n",
	       answered ? (double)total_ns / 1e6 / (double)answered : 0.0,
	       answered ? (double)srv_us / 1e3 / (double)answered : 0.0,
	       answered ? (double)bytes / (double)answered : 0.0);
	printf("advice_differs %llu\nok_without_tensor %llu\n", (unsigned long long)advice_differs,
	       (unsigned long long)no_tensor);
	ex_print_stats(c);
	rc = ok == o.n ? 0 : -EIO;
out:
	tgc_close(c);
	tgc_head_close(head);
	bench_fmnist_free(&ds);
	return rc == 0 ? 0 : 1;
}
