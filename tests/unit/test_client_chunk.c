/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client: a request's datagrams, as the gateway would take them. Each wire dtype is
 * quantized and chunked by tgc_build_request, then every datagram goes through proto's
 * decoder and proto_chunk_unpack (in reverse order), and the tensor is dequantized: f32
 * exact, f16 to its precision, s8/u8 within half a step. Bad arguments are refused.
 */
#include "tests/harness.h"
#include "client/tgc_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NUMEL = 64 * 14 * 14, DG = PROTO_DEFAULT_DGRAM, MAX_DG = 512 };

static float x[NUMEL], y[NUMEL];
static uint8_t q[NUMEL * 4], back[NUMEL * 4], out[MAX_DG * DG];
static struct proto_dgram dg[MAX_DG];
static uint32_t rng = 4242;

static float
rndf(float lo, float hi)
{
	rng = rng * 1664525u + 1013904223u;
	return lo + (hi - lo) * (float)(rng >> 8) / (float)(1u << 24);
}

static void
fill(struct tg_tensor *t)
{
	for (unsigned i = 0; i < NUMEL; i++)	/* post-ReLU: mostly zeros, some mass */
		x[i] = i % 5 < 3 ? 0.0f : rndf(0, 4);
	*t = (struct tg_tensor){ .dtype = TG_DT_F32, .ndim = 4, .dims = { 1, 64, 14, 14 },
				 .data = x };
}

static void
round_trip(enum tg_dtype dt)
{
	struct proto_hdr h = { .client_id = 42, .request_id = 7, .session_id = 0x1234 };
	struct proto_request rq = { .c = { .model_id = 1, .split_id = 6 }, .top_k = 3,
				    .deadline_us = 20000 };
	unsigned dtype = tgc_wire_dtype(dt), n = 0, esz = proto_dtype_size(dtype);
	struct tg_tensor t;
	struct tg_err err = { 0 };
	struct proto_msg m;
	uint64_t placed = 0;
	float worst = 0, tol;
	int rc;

	fill(&t);
	rc = tgc_build_request(&h, &rq, &t, dtype, DG, q, sizeof(q), out, sizeof(out), dg,
			       MAX_DG, &n, &err);
	TH_CHECK_MSG(rc == 0, "%s: %d %s", tg_dtype_name(dt), rc, err.msg);
	if (rc != 0)
		return;
	TH_CHECK(n > 1);
	memset(back, 0xAB, sizeof(back));
	for (unsigned k = n; k-- > 0;) {	/* reversed: chunks place on their own */
		TH_CHECK(dg[k].len <= DG);
		TH_CHECK(proto_decode(dg[k].data, dg[k].len, NULL, &m, NULL) == PROTO_OK);
		TH_CHECK(m.h.type == PROTO_T_REQUEST && m.h.client_id == 42 &&
			 m.h.request_id == 7 && m.h.session_id == 0x1234);
		TH_CHECK(m.u.req.c.model_id == 1 && m.u.req.c.split_id == 6 &&
			 m.u.req.top_k == 3 && m.u.req.deadline_us == 20000);
		TH_CHECK(m.u.req.c.index == k && m.u.req.c.count == n);
		TH_CHECK(m.u.req.c.t.dtype == dtype && m.u.req.c.t.ndim == 4 &&
			 m.u.req.c.t.dims[1] == 64 && m.u.req.c.t.raw_total == NUMEL * esz);
		TH_CHECK(proto_chunk_unpack(&m.u.req.c, back, NUMEL * esz, NULL) == PROTO_OK);
		placed += m.u.req.c.raw_len;
	}
	TH_CHECK(placed == (uint64_t)NUMEL * esz);
	TH_CHECK(proto_dequantize(dtype, back, NUMEL, m.u.req.c.t.scale, m.u.req.c.t.zero_point,
				  y) == 0);
	for (unsigned i = 0; i < NUMEL; i++)
		worst = fmaxf(worst, fabsf(x[i] - y[i]));
	tol = dtype == PROTO_DT_F32 ? 0.0f :
	      dtype == PROTO_DT_F16 ? 4.0f / 1024 :
	      m.u.req.c.t.scale * 0.5f * 1.001f;
	TH_CHECK_MSG(worst <= tol, "%s: worst %g > %g", tg_dtype_name(dt), worst, tol);
	/* LZ4 pays on post-ReLU tensors: fewer wire bytes than raw ones. */
	if (dtype == PROTO_DT_F32) {
		size_t wire = 0;

		for (unsigned k = 0; k < n; k++)
			wire += dg[k].len;
		TH_CHECK_MSG(wire < NUMEL * 4, "wire %zu bytes for %d raw", wire, NUMEL * 4);
	}
}

static void test_f32_round_trip_exact(void) { round_trip(TG_DT_F32); }
static void test_f16_round_trip(void) { round_trip(TG_DT_F16); }
static void test_s8_round_trip_within_half_step(void) { round_trip(TG_DT_S8); }
static void test_u8_round_trip_within_half_step(void) { round_trip(TG_DT_U8); }

static void
test_bad_arguments_refused_with_words(void)
{
	struct proto_hdr h = { .client_id = 1, .request_id = 1, .session_id = 1 };
	struct proto_request rq = { .c = { .model_id = 1 } };
	struct tg_err err = { 0 };
	struct tg_tensor t, t16;
	unsigned n;

	fill(&t);
	t16 = t;
	t16.dtype = TG_DT_F16;
	TH_CHECK(tgc_build_request(&h, &rq, &t16, PROTO_DT_U8, DG, q, sizeof(q), out,
				   sizeof(out), dg, MAX_DG, &n, &err) == -EINVAL);
	TH_CHECK(strstr(err.msg, "f32") != NULL);
	TH_CHECK(tgc_build_request(&h, &rq, &t, PROTO_DT_RAW, DG, q, sizeof(q), out,
				   sizeof(out), dg, MAX_DG, &n, &err) == -EINVAL);
	TH_CHECK(tgc_build_request(&h, &rq, &t, PROTO_DT_U8, DG, q, 100, out, sizeof(out), dg,
				   MAX_DG, &n, &err) == -E2BIG);
	TH_CHECK(tgc_build_request(&h, &rq, &t, PROTO_DT_F32, DG, q, sizeof(q), out,
				   sizeof(out), dg, 2, &n, &err) == -E2BIG);
	TH_CHECK(strstr(err.msg, "chunks") != NULL);
	TH_CHECK(tgc_build_request(&h, &rq, &t, PROTO_DT_F32, DG, q, sizeof(q), out, 3000, dg,
				   MAX_DG, &n, &err) == -ENOSPC);
	t.dims[2] = 0;
	TH_CHECK(tgc_build_request(&h, &rq, &t, PROTO_DT_F32, DG, q, sizeof(q), out,
				   sizeof(out), dg, MAX_DG, &n, &err) == -EINVAL);
}

int
main(void)
{
	TH_RUN(test_f32_round_trip_exact);
	TH_RUN(test_f16_round_trip);
	TH_RUN(test_s8_round_trip_within_half_step);
	TH_RUN(test_u8_round_trip_within_half_step);
	TH_RUN(test_bad_arguments_refused_with_words);
	TH_DONE();
}
