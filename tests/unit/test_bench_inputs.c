/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's inputs (bench/inputs.c) on the shipped model and 64 Fashion-MNIST images:
 * every (split, dtype) message decodes back to the tensor it stands for, the offline answers
 * are the model's (accuracy near the card's), and the cache gives back exactly what was
 * built, while a damaged cache is rebuilt, not trusted.
 */
#include "bench/bench.h"
#include "tests/harness.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL "models/fmnist-resnet"

static char cache_dir[] = "/tmp/tg_lgin_XXXXXX";

static struct bench_inputs_cfg
cfg_for(const char *cache)
{
	return (struct bench_inputs_cfg){ .model = MODEL, .model_id = 1, .n_images = 64,
				       .split_mask = (1u << 0) | (1u << 4) | (1u << 8),
				       .dtype_mask = (1u << PROTO_DT_F32) | (1u << PROTO_DT_U8) |
						     (1u << PROTO_DT_F16) | (1u << PROTO_DT_S8),
				       .threads = 1, .cache_dir = cache };
}

static bool
have_inputs(void)
{
	return access(MODEL "/model.onnx", R_OK) == 0 &&
	       access(BENCH_FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) == 0;
}

static bool
same_inputs(const struct bench_inputs *a, const struct bench_inputs *b)
{
	if (a->n_items != b->n_items || a->n_dg != b->n_dg || a->arena_len != b->arena_len ||
	    a->max_chunks != b->max_chunks || a->offline_hits != b->offline_hits ||
	    memcmp(a->labels, b->labels, a->n_items) != 0 ||
	    memcmp(a->dg, b->dg, a->n_dg * sizeof(*a->dg)) != 0 ||
	    memcmp(a->arena, b->arena, a->arena_len) != 0)
		return false;
	for (unsigned s = 0; s < 64; s++)
		for (unsigned d = 0; d < PROTO_DT__COUNT; d++)
			if ((a->msg[s][d] == NULL) != (b->msg[s][d] == NULL) ||
			    (a->msg[s][d] && memcmp(a->msg[s][d], b->msg[s][d],
						    a->n_items * sizeof(struct bench_msg)) != 0))
				return false;
	return true;
}

/* Every datagram decodes as a REQUEST of its (split, dtype); chunks tile the tensor. */
static void
test_inputs_messages_decode_and_score(void)
{
	struct bench_inputs_cfg cfg = cfg_for(NULL);
	struct bench_inputs *in = NULL;
	struct tg_err err = { 0 };
	uint64_t hits_f32 = 0;

	if (!have_inputs()) {
		TH_SKIP("model or Fashion-MNIST missing");
		return;
	}
	TH_CHECK_MSG(bench_inputs_build(&in, &cfg, &err) == 0, "%s", err.msg);
	if (in == NULL)
		return;
	TH_CHECK(in->n_items == 64 && !in->from_cache);
	TH_CHECK(in->msg[6][PROTO_DT_F32] == NULL && in->msg[4][PROTO_DT_U8] != NULL);
	for (unsigned s = 0; s < 64; s++)
		for (unsigned d = PROTO_DT_F32; d < PROTO_DT__COUNT; d++) {
			if (in->msg[s][d] == NULL)
				continue;
			for (unsigned i = 0; i < in->n_items; i++) {
				const struct bench_msg *m = &in->msg[s][d][i];
				uint32_t covered = 0, total = 0;

				for (unsigned c = 0; c < m->n_dg; c++) {
					const struct bench_dgram_ref *r = &in->dg[m->first_dg + c];
					struct proto_msg pm;

					TH_CHECK(proto_decode(in->arena + r->off, r->len, NULL, &pm,
							      NULL) == PROTO_OK);
					TH_CHECK(pm.h.type == PROTO_T_REQUEST &&
						 pm.u.req.c.split_id == s && pm.u.req.c.t.dtype == d &&
						 pm.u.req.c.index == c && pm.u.req.c.count == m->n_dg);
					TH_CHECK(pm.u.req.c.raw_offset == covered);
					covered += pm.u.req.c.raw_len;
					total = pm.u.req.c.t.raw_total;
				}
				TH_CHECK(covered == total && total > 0);
				TH_CHECK(m->offline < 10);
				if (d == PROTO_DT_F32 && s == 0)
					hits_f32 += m->offline == in->labels[i];
			}
		}
	/* 64 images of a 92.4% model: anything under 80% is an engine or loading bug. */
	TH_CHECK_MSG(hits_f32 >= 51, "split 0 f32: %llu of 64 right", (unsigned long long)hits_f32);
	bench_inputs_free(in);
}

static void
test_inputs_cache_roundtrip_and_damage(void)
{
	struct bench_inputs_cfg cfg;
	struct bench_inputs *a = NULL, *b = NULL, *c = NULL;
	struct tg_err err = { 0 };
	char cmd[256];

	if (!have_inputs()) {
		TH_SKIP("model or Fashion-MNIST missing");
		return;
	}
	TH_CHECK(mkdtemp(cache_dir) != NULL);
	cfg = cfg_for(cache_dir);
	TH_CHECK_MSG(bench_inputs_build(&a, &cfg, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(bench_inputs_build(&b, &cfg, &err) == 0, "%s", err.msg);
	if (a == NULL || b == NULL)
		goto out;
	TH_CHECK(!a->from_cache && b->from_cache);
	TH_CHECK(same_inputs(a, b));
	/* Cut the file short: refused, rebuilt, the same again. */
	snprintf(cmd, sizeof(cmd), "for f in %s/inputs-*.bin; do truncate -s -100 $f; done",
		 cache_dir);
	TH_CHECK(system(cmd) == 0);
	TH_CHECK_MSG(bench_inputs_build(&c, &cfg, &err) == 0, "%s", err.msg);
	TH_CHECK(c != NULL);
	if (c != NULL) {
		TH_CHECK(!c->from_cache);
		TH_CHECK(same_inputs(a, c));
	}
out:
	bench_inputs_free(a);
	bench_inputs_free(b);
	bench_inputs_free(c);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache_dir);
	(void)system(cmd);
}

static void
test_inputs_refuse_bad_config(void)
{
	struct bench_inputs_cfg cfg = cfg_for(NULL);
	struct bench_inputs *in = NULL;
	struct tg_err err = { 0 };

	if (!have_inputs()) {
		TH_SKIP("model or Fashion-MNIST missing");
		return;
	}
	cfg.split_mask = 1ull << 60;
	TH_CHECK(bench_inputs_build(&in, &cfg, &err) == -EINVAL && strstr(err.msg, "split 60"));
	cfg = cfg_for(NULL);
	cfg.model = "/nonexistent/model.onnx";
	TH_CHECK(bench_inputs_build(&in, &cfg, &err) < 0 && in == NULL);
	cfg = cfg_for(NULL);
	cfg.dtype_mask = 1;	/* RAW */
	TH_CHECK(bench_inputs_build(&in, &cfg, &err) == -EINVAL);
}

int
main(void)
{
	TH_RUN(test_inputs_messages_decode_and_score);
	TH_RUN(test_inputs_cache_roundtrip_and_damage);
	TH_RUN(test_inputs_refuse_bad_config);
	TH_DONE();
}
