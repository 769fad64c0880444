/* SPDX-License-Identifier: Apache-2.0 */
/*
 * codec-table: bytes on the wire against accuracy, per split point of a model and per wire
 * dtype, on Fashion-MNIST test images or DIR/inputs.npy with DIR/labels.npy (--eval DIR, as
 * tailgate-model eval takes them) (the card's bytes-vs-accuracy table, as sc2-benchmark
 * reports it).
 *
 * Each image is one request, sent as the client library sends it (client/build.c):
 * proto_quant_params() and proto_quantize() for f16/s8/u8 (f32 as it is), then
 * proto_request_chunk() with LZ4 on (one LZ4 block per datagram, raw when LZ4 does not shrink
 * it) at the client's default datagram size. Measured: the payload bytes (the tensor after
 * quantisation and LZ4) and the whole datagrams (headers included). Accuracy: every
 * datagram's payload is unpacked (proto_chunk_unpack(), LZ4 decompressed) into a tensor slot
 * as the gateway does, dequantised into the tail plan's input (kern_plan_load_rows()) and the
 * engine runs the tail; top-1 per exit in the tail.
 *
 * Usage: codec-table MODEL [--images N] [--eval DIR] [--splits I,J,..] [--batch B]
 *                          [--dgram D] [--markdown]
 * Exit 0 done, 1 the engine or a file refused, 2 bad usage.
 */
#include "bench/bench.h"
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "util/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CT_DTYPES = 4, CT_MAX_SPLITS = 256, CT_MAX_EXITS = 16 };

static const unsigned ct_dtypes[CT_DTYPES] = { PROTO_DT_F32, PROTO_DT_F16, PROTO_DT_S8,
					       PROTO_DT_U8 };
static const char *const ct_dtype_names[CT_DTYPES] = { "f32", "f16", "s8", "u8" };

/* What one (split, dtype) measured over the images. */
struct ct_row {
	uint64_t payload;		/* tensor bytes after quantisation and LZ4 */
	uint64_t wire;			/* datagram bytes, headers included */
	uint64_t dgrams;
	uint64_t hits[CT_MAX_EXITS];	/* correct top-1 per model output */
	uint64_t seen[CT_MAX_EXITS];
};

/* Buffers for one request: quantised tensor, datagrams, the reassembled slot. */
struct ct_bufs {
	uint8_t *q, *out, *slot;
	struct proto_dgram *dg;
	size_t out_cap;
	unsigned max_dg;
};

static void
ct_bufs_free(struct ct_bufs *b)
{
	free(b->q);
	free(b->out);
	free(b->slot);
	free(b->dg);
}

static int
ct_bufs_init(struct ct_bufs *b, size_t numel, size_t dgram, struct tg_err *err)
{
	size_t raw = numel * 4;

	if (proto_chunk_bound(PROTO_T_REQUEST, PROTO_DT_F32, raw, dgram, &b->max_dg,
			      &b->out_cap) < 0)
		return tg_err_set(err, -EINVAL, "datagram size %zu too small", dgram);
	b->q = malloc(raw);
	b->slot = malloc(raw);
	b->out = malloc(b->out_cap);
	b->dg = calloc(b->max_dg, sizeof(*b->dg));
	if (b->q == NULL || b->slot == NULL || b->out == NULL || b->dg == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * One image's split tensor x[numel] through the client's path and back through the
 * gateway's: quantise, chunk with LZ4, unpack every datagram into the slot, then dequantise
 * it into row `row` of the tail plan's input. Counts payload and wire bytes into r.
 */
static int
ct_send_one(struct ct_bufs *b, const struct kern_split *sp, unsigned dt, const float *x,
	    size_t dgram, struct kern_plan *tail, unsigned row, struct ct_row *r,
	    struct tg_err *err)
{
	size_t numel = sp->numel, bytes = numel * proto_dtype_size(dt);
	struct proto_hdr h = { .client_id = 1, .request_id = 1, .session_id = 1 };
	struct proto_request rq = { 0 };
	struct proto_chunk c = { 0 };
	const void *raw = x;
	unsigned n_dg;
	int rc;

	rq.c.model_id = 1;
	rq.c.t.dtype = (uint8_t)dt;
	rq.c.t.ndim = (uint8_t)sp->ndim;
	for (int d = 0; d < sp->ndim; d++)
		rq.c.t.dims[d] = (uint32_t)sp->dims[d];
	rq.c.t.raw_total = (uint32_t)bytes;
	rq.c.t.scale = 1.0f;
	if (dt != PROTO_DT_F32) {
		rc = proto_quant_params(dt, x, numel, &rq.c.t.scale, &rq.c.t.zero_point);
		if (rc == 0)
			rc = proto_quantize(dt, x, numel, rq.c.t.scale, rq.c.t.zero_point, b->q);
		if (rc < 0)
			return tg_err_set(err, rc, "quantize to dtype %u failed", dt);
		raw = b->q;
	}
	rc = proto_request_chunk(&h, &rq, raw, dgram, true, b->out, b->out_cap, b->dg, b->max_dg,
				 &n_dg);
	if (rc < 0)
		return tg_err_set(err, rc, "chunking %zu bytes failed", bytes);
	for (unsigned i = 0; i < n_dg; i++) {
		struct proto_msg dm = { 0 };
		enum proto_reason why;

		why = proto_decode(b->dg[i].data, b->dg[i].len, NULL, &dm, NULL);
		if (why == PROTO_OK && dm.h.type != PROTO_T_REQUEST)
			why = PROTO_E_BAD_TYPE;
		if (why == PROTO_OK)
			why = proto_chunk_unpack(&dm.u.req.c, b->slot, bytes, NULL);
		if (why != PROTO_OK)
			return tg_err_set(err, -EIO, "datagram %u of %u refused: %s", i, n_dg,
					  proto_reason_name(why));
		c = dm.u.req.c;
		r->payload += c.payload_len;
		r->wire += b->dg[i].len;
	}
	r->dgrams += n_dg;
	return kern_plan_load_rows(tail, 0, row, 1, (enum tg_dtype)dt, b->slot, c.t.scale,
				   c.t.zero_point);
}

/* Top-1 of every tail output against the labels of the batch. */
static int
ct_score(const struct kern_model *m, const struct kern_plan *p, const uint8_t *labels,
	 unsigned b, struct ct_row *r)
{
	struct kern_model_info mi;

	kern_model_get_info(m, &mi);
	for (unsigned o = 0; o < kern_plan_n_outputs(p); o++) {
		struct tg_tensor v;
		const char *name;
		unsigned e;

		if (kern_plan_output(p, o, &v, &name) < 0)
			return -EIO;
		for (e = 0; e < mi.n_outputs && e < CT_MAX_EXITS; e++)
			if (strcmp(kern_model_output(m, e)->name, name) == 0)
				break;
		if (e == mi.n_outputs || e == CT_MAX_EXITS || v.ndim != 2)
			continue;
		for (unsigned i = 0; i < b; i++) {
			const float *row = (const float *)v.data + (size_t)i * (size_t)v.dims[1];
			int64_t best = 0;

			for (int64_t k = 1; k < v.dims[1]; k++)
				if (row[k] > row[best])
					best = k;
			r->hits[e] += best == labels[i];
			r->seen[e]++;
		}
	}
	return 0;
}

/* Every dtype at split s over the images, in batches: head once, the tail per dtype. */
static int
ct_split(const struct kern_model *m, unsigned s, const struct bench_fmnist *ds, unsigned batch,
	 size_t dgram, struct ct_row rows[CT_DTYPES], struct tg_err *err)
{
	const struct kern_split *sp = kern_model_split(m, s);
	struct kern_stage head = { .m = m, .spec = { .kind = KERN_PLAN_HEAD, .split = s } };
	struct kern_stage tail = { .m = m, .spec = { .kind = KERN_PLAN_TAIL, .split = s } };
	struct ct_bufs bufs = { 0 };
	int rc;

	rc = ct_bufs_init(&bufs, sp->numel, dgram, err);
	for (size_t first = 0; rc == 0 && first < ds->n; first += batch) {
		unsigned b = (unsigned)(ds->n - first < batch ? ds->n - first : batch);
		const float *x = (const float *)ds->images.data + first * sp->numel;
		struct kern_plan *hp, *tp;
		struct tg_tensor sv;

		if (s != 0) {
			rc = kern_stage_plan(&head, b, &hp, err);
			if (rc == 0)
				rc = kern_plan_feed(hp, &ds->images, first, b, err);
			if (rc == 0)
				rc = kern_plan_run(hp);
			if (rc == 0)
				rc = kern_plan_output(hp, 0, &sv, NULL);
			if (rc < 0)
				break;
			x = sv.data;
		}
		rc = kern_stage_plan(&tail, b, &tp, err);
		for (unsigned d = 0; rc == 0 && d < CT_DTYPES; d++) {
			for (unsigned i = 0; rc == 0 && i < b; i++)
				rc = ct_send_one(&bufs, sp, ct_dtypes[d], x + (size_t)i * sp->numel,
						 dgram, tp, i, &rows[d], err);
			if (rc == 0)
				rc = kern_plan_run(tp);
			if (rc == 0)
				rc = ct_score(m, tp, ds->labels + first, b, &rows[d]);
		}
	}
	if (rc < 0 && err->msg[0] == '\0')
		tg_err_set(err, rc, "split %u: engine failed", s);
	kern_stage_free(&head);
	kern_stage_free(&tail);
	ct_bufs_free(&bufs);
	return rc;
}

static void
ct_print(const struct kern_model *m, unsigned s, const struct ct_row rows[CT_DTYPES],
	 size_t n, bool md)
{
	const struct kern_split *sp = kern_model_split(m, s);
	struct kern_model_info mi;

	kern_model_get_info(m, &mi);
	for (unsigned d = 0; d < CT_DTYPES; d++) {
		const struct ct_row *r = &rows[d];
		size_t raw = sp->numel * proto_dtype_size(ct_dtypes[d]);

		printf(md ? "| %u | %s | %s | %zu | %.1f | %.1f | %.2f |" :
			    "%u %s %s raw=%zu payload=%.1f wire=%.1f dgrams=%.2f",
		       s, sp->name, ct_dtype_names[d], raw, (double)r->payload / (double)n,
		       (double)r->wire / (double)n, (double)r->dgrams / (double)n);
		for (unsigned e = 0; e < mi.n_outputs && e < CT_MAX_EXITS; e++) {
			const char *name = kern_model_output(m, e)->name;
			double acc = r->seen[e] ? 100.0 * (double)r->hits[e] / (double)r->seen[e] : 0;

			if (r->seen[e] == 0)
				printf(md ? " device |" : " %s=device", name);
			else if (md)
				printf(" %.2f%% |", acc);
			else
				printf(" %s=%.2f%%", name, acc);
		}
		printf("\n");
	}
}

static int
ct_usage(void)
{
	fprintf(stderr, "usage: codec-table MODEL [--images N] [--eval DIR] [--splits I,J,..]"
			" [--batch B] [--dgram D] [--markdown]\n");
	return 2;
}

/* The first n samples of DIR/inputs.npy (f32 [N, ...]) and DIR/labels.npy (int64, 0..255). */
static int
ct_load_dir(const char *dir, size_t n, struct bench_fmnist *ds, struct tg_err *err)
{
	struct tg_tensor l = { 0 };
	char p[4096];
	int rc;

	snprintf(p, sizeof(p), "%s/inputs.npy", dir);
	rc = tg_npy_load(p, (size_t)4 << 30, &ds->images, err);
	if (rc == 0 && (ds->images.dtype != TG_DT_F32 || ds->images.ndim < 2 ||
			ds->images.dims[0] < 1))
		rc = tg_err_set(err, -EINVAL, "%s: want f32 [N, ...] model inputs", p);
	if (rc == 0) {
		snprintf(p, sizeof(p), "%s/labels.npy", dir);
		rc = tg_npy_load(p, (size_t)1 << 30, &l, err);
	}
	if (rc == 0 && (l.dtype != TG_DT_S64 || l.ndim != 1 || l.dims[0] != ds->images.dims[0]))
		rc = tg_err_set(err, -EINVAL, "%s: want int64 labels, one per input", p);
	if (rc == 0) {
		ds->n = (size_t)ds->images.dims[0] < n ? (size_t)ds->images.dims[0] : n;
		ds->labels = malloc(ds->n);
		if (ds->labels == NULL)
			rc = tg_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; rc == 0 && i < ds->n; i++) {
		int64_t v = ((const int64_t *)l.data)[i];

		if (v < 0 || v > 255)
			rc = tg_err_set(err, -EINVAL, "%s: label %zu is %lld", p, i, (long long)v);
		else
			ds->labels[i] = (uint8_t)v;
	}
	tg_tensor_free(&l);
	if (rc == 0)
		ds->images.dims[0] = (int64_t)ds->n;	/* the rows past n are ignored */
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images", required_argument, NULL, 'n' },
		{ "eval", required_argument, NULL, 'e' },
		{ "splits", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },
		{ "dgram", required_argument, NULL, 'd' },
		{ "markdown", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n_images = 10000, batch = 250, dgram = 1472;
	const char *splits = NULL, *eval_dir = NULL;
	struct bench_fmnist ds = { 0 };
	struct kern_model *m = NULL;
	struct kern_model_info mi;
	struct tg_err err = { 0 };
	bool want[CT_MAX_SPLITS];
	bool md = false;
	int opt, rc;

	kern_prefer_passive_wait(argv);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end = NULL;

		switch (opt) {
		case 'n': n_images = strtoul(optarg, &end, 10); break;
		case 'b': batch = strtoul(optarg, &end, 10); break;
		case 'd': dgram = strtoul(optarg, &end, 10); break;
		case 's': splits = optarg; break;
		case 'e': eval_dir = optarg; break;
		case 'm': md = true; break;
		default: return ct_usage();
		}
		if (end != NULL && (*end != '\0' || end == optarg))
			return ct_usage();
	}
	if (optind != argc - 1 || n_images == 0 || n_images > 10000 || batch == 0 ||
	    batch > 4096 || dgram < 1200 || dgram > 65507)
		return ct_usage();
	rc = kern_model_load(argv[optind], NULL, &m, &err);
	if (rc == 0 && eval_dir != NULL)
		rc = ct_load_dir(eval_dir, n_images, &ds, &err);
	else if (rc == 0)
		rc = bench_fmnist_load(NULL, false, n_images, &ds, &err);
	/* Every split's tensors are read at the model input's size per sample. */
	if (rc == 0 && tg_tensor_numel(&ds.images) != ds.n * kern_model_split(m, 0)->numel)
		rc = tg_err_set(&err, -EINVAL, "the samples do not have the model input's %zu "
				"values each", (size_t)kern_model_split(m, 0)->numel);
	if (rc < 0)
		goto out;
	kern_model_get_info(m, &mi);
	if (mi.n_splits > CT_MAX_SPLITS || mi.n_outputs > CT_MAX_EXITS) {
		rc = tg_err_set(&err, -E2BIG, "%s: over %d splits or %d outputs", argv[optind],
				CT_MAX_SPLITS, CT_MAX_EXITS);
		goto out;
	}
	for (unsigned s = 0; s < mi.n_splits; s++)
		want[s] = splits == NULL;
	for (const char *p = splits; p != NULL && *p != '\0';) {
		char *end;
		unsigned long s = strtoul(p, &end, 10);

		if (end == p || s >= mi.n_splits || (*end != ',' && *end != '\0')) {
			rc = tg_err_set(&err, -EINVAL, "--splits: '%s' is not a list of rows < %u",
					splits, mi.n_splits);
			goto out;
		}
		want[s] = true;
		p = *end == ',' ? end + 1 : end;
	}
	if (md) {
		printf("| split | tensor | dtype | raw B | payload B (mean) | wire B (mean) |"
		       " datagrams |");
		for (unsigned e = 0; e < mi.n_outputs; e++)
			printf(" %s |", kern_model_output(m, e)->name);
		printf("\n| ---: | --- | --- | ---: | ---: | ---: | ---: |");
		for (unsigned e = 0; e < mi.n_outputs; e++)
			printf(" ---: |");
		printf("\n");
	}
	for (unsigned s = 0; s < mi.n_splits; s++) {
		struct ct_row rows[CT_DTYPES];

		if (!want[s])
			continue;
		memset(rows, 0, sizeof(rows));
		rc = ct_split(m, s, &ds, (unsigned)batch, dgram, rows, &err);
		if (rc < 0)
			goto out;
		ct_print(m, s, rows, ds.n, md);
		fflush(stdout);
	}
out:
	if (rc < 0)
		fprintf(stderr, "codec-table: %s\n", err.msg);
	bench_fmnist_free(&ds);
	kern_model_free(m);
	return rc < 0 ? 1 : 0;
}
