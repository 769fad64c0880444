/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gw_client: devices on kernel UDP sockets against a running tailgate, for
 * tests/gateway_serve.sh. It builds a set of samples (the fixture's input.npy rows and
 * seeded random inputs), runs the model's head on each to the middle split (kern_plan
 * HEAD), and sends requests at split 0 (the input) and at the middle split, as f32 or
 * u8-quantized tensors, LZ4-chunked by proto_request_chunk. For every tensor it computes
 * offline what the gateway should answer: kern_plan TAIL from that split on the tensor the
 * gateway will see (dequantized for u8), final exit's top class. Each client (own socket,
 * own source port) keeps a window of requests open; NACKs are answered by resending what
 * they list; OVERLOADED is retried after a short back-off with a new request id.
 *
 * Usage: gw_client --gw A.B.C.D --model FILE --model-id N --split ROW [--port N]
 *            [--requests N] [--clients N] [--window N] [--samples N] [--seed N]
 *            [--time-limit S] [--timeout-ms N] [--ids FILE] [--probes 1] [--no-retry 1]
 *            [--client-base N]
 * Prints "name value" lines; exits 0 when every request was answered OK with the expected
 * class (a near-tie, top-2 logits within 1e-3, counts as "close", not as a mismatch).
 * --ids FILE writes "client request" per answered request (the access log check).
 * --no-retry 1 takes OVERLOADED as a request's answer (a draining gateway's) and starts
 * no new request after the first one (the check is then: everything started answered);
 * --client-base N numbers the clients from N (1000), so their lines stand out in the log.
 * --probes 1 first sends one request per refusal the gateway makes before its scheduler
 * (unknown model, split or variant; a tensor not the split's; a full tensor wanted, OK) and
 * checks each status and reason.
 * --variant N names variant N of the model in every REQUEST (--model is then that variant's
 * ONNX file, e.g. one 'tailgate-model drop' wrote, and --splits rows of its own table).
 * --flags N sets the REQUEST flags (2: no early exit); --profile C,U,R,S,F[,E,T,G] fills the
 * HELLO's device profile (MFLOP/s, kbit/s, RTT us, SLO us, accuracy floor 1/100 %[, uJ per
 * MFLOP, pJ per bit, goal]) and the summary
 * counts the answers' advice (advice_split_N, advice_none, advice_variant_N, and the advice
 * flags: advice_none_fits, advice_no_early_exit).
 *
 * --fmnist DIR (or "default") [--images N] [--splits 0,4,6,8] [--dtypes f32,f16,s8,u8]
 * [--block N]: the Fashion-MNIST test images instead, image i at split splits[i % n] in
 * dtype dtypes[(i / n) % m], block by block: heads batched on the engine, each row quantized,
 * the expected class from a batched reference tail fed from the quantized bytes by
 * kern_plan_load_rows (the gateway's own dequantizing copy); every image sent once.
 * --calib FILE (with --fmnist): the reference tails run in int8 with that calibration, as a
 * gateway serving the model with "dtype = int8" does (the heads stay f32, as on a device).
 * --rate R or --closed W, with --duration S --deadline-us D [--warmup S] [--drain-ms N]
 * (needs --fmnist; the first block's tensors in turn): an open loop paced at R requests/s
 * whatever the answers (ids tracked per client, thousands in flight), or a closed loop of W
 * in flight; then it waits for the answers. Prints goodput_rps (OK within D as the client
 * sees it, after the warm-up), ok_rps, statuses, latencies; SIGUSR1 stops the sending early
 * (in the closed loop too: nothing new is started, what is in flight is waited for).
 * Exit 0 when nothing was lost and no OK answer differed from the offline class.
 * --prebuilt 1 (with --rate or --closed): each tensor's REQUEST chunked once and resent under
 * new ids, sent with sendmmsg and read with recvmmsg, so the generator costs the cores it
 * shares with a gateway little (scripts/bench_path.sh); both loops print loop_cpu_s and
 * cpu_us_per_answer, the loop's own CPU (the model load and reference tails before it not
 * counted).
 * answers_again counts further answers to a request already answered (the gateway resends
 * an answer for a late duplicate chunk, or refuses each chunk of a refused request),
 * answers_differ those of them with another status: a request answered twice differently.
 * Every status_NAME line is printed, zeros too.
 * Degrade instead of shed (docs/protocol.md 7.4): an OK answer naming another variant than
 * the request's is counted "degraded" and judged by the labels only (the offline class is the
 * requested variant's); ran_variant_V counts OK answers by the variant that ran (V = the
 * requested one always printed), accuracy_variant_V their accuracy against the labels,
 * refused_other_variant the non-OK answers that named another variant (there should be none).
 * The open loop also prints good_accuracy (OK within the deadline after the warm-up, against
 * the labels) and goodput_correct_rps (those that were right, per second).
 * Run without arguments it only says what it is for: a helper, not a test.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench/bench.h"
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "proto/proto_int.h"	/* proto_st32/64, proto_ld16: --prebuilt writes ids in place */
#include "util/util.h"

enum {
	MAX_DGRAM = PROTO_DEFAULT_DGRAM,
	MAX_CLIENTS = 16,
	MAX_WINDOW = 32,
	MAX_CHUNKS = 96,		/* an f32 tensor of 100 KB (fmnist-resnet's split 4) */
	MAX_SAMPLES = 256,
	N_KINDS = 4,			/* (split 0 | mid) x (f32 | u8) */
	MAX_TENS = MAX_SAMPLES * N_KINDS,	/* also the largest --fmnist block */
	FM_BATCH = 64,			/* rows per batched head / reference tail run */
	OL_CAP = 16384,			/* open loop: requests tracked per client (power of 2) */
};

struct tensor {				/* one request payload and its expected answer */
	uint8_t split;
	uint8_t dtype;
	float scale;
	int32_t zp;
	uint32_t bytes;
	struct proto_tensor t;
	void *raw;
	uint32_t expect;		/* offline top class of the final exit */
	bool near_tie;
	int label;			/* --fmnist: the image's class; -1 none */
};

struct req {
	bool active;
	uint32_t id;
	unsigned tensor;
	unsigned n;
	uint64_t t_start, t_activity, retry_at;
	uint8_t out[MAX_CHUNKS * MAX_DGRAM];
	struct proto_dgram dg[MAX_CHUNKS];
};

enum { DONE_RING = 256 };		/* answered request ids a client remembers */

struct client {
	int fd;
	uint32_t id;
	uint64_t session;
	uint32_t next_id;
	struct req req[MAX_WINDOW];
	unsigned inflight;
	uint32_t done_id[DONE_RING];	/* closed loop: recent answered ids and their status, */
	uint8_t done_st[DONE_RING];	/* to recognise a second answer to one of them */
};

static struct {
	uint64_t started, ok, mismatch, close, failed, lost, overloaded, nacks, resent, tx, rx_bad;
	uint64_t by_status[PROTO_ST__COUNT], by_kind[N_KINDS], batch_max, batched, sessions;
	uint64_t overloaded_final;	/* --no-retry: OVERLOADED taken as the answer */
	uint64_t pendings;		/* RESPONSE PENDING: the gateway held a resent request */
	uint64_t by_sd[4][PROTO_DT__COUNT];	/* --fmnist: OK answers by split index, dtype */
	uint64_t correct[PROTO_DT__COUNT], labelled[PROTO_DT__COUNT];	/* vs the labels */
	uint64_t early_exits;		/* OK answers from an exit other than the final one */
	uint64_t again, differ;		/* closed loop: second answers; with another status */
	/* Degrade instead of shed (docs/protocol.md 7.4): OK answers naming another variant
	 * than the request's (checked against the labels, not the offline class: that is the
	 * requested variant's), by the variant that ran; refusals that named another. */
	uint64_t degraded, ran_variant[256], correct_v[256], labelled_v[256];
	uint64_t refused_other_variant;
} st;

static struct tensor tens[MAX_TENS];
static unsigned n_tens;
static uint32_t rng = 1;
static FILE *ids_f;
static struct proto_hello prof = { .max_dgram = MAX_DGRAM };	/* --profile: the HELLO's */
static uint64_t advice_by_split[257];	/* answers by advised split; [256]: none */
static uint64_t advice_by_variant[257];	/* answers by advised variant; [256]: none */
static uint64_t advice_none_fits;	/* answers with advice flag NONE_FITS */
static uint64_t advice_no_exit;		/* ... with advice flag NO_EARLY_EXIT */
static uint8_t mid_split;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static uint64_t
now_ns(void)
{
	return tg_now_ns();
}

/* This process's CPU time (user + system, every thread), ns; 0 if the clock is missing. */
static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Top class of the final exit, and whether the top two are a near tie. */
static uint32_t
argmax(const float *x, size_t n, bool *tie)
{
	size_t b = 0, s = n > 1 ? 1 : 0;

	for (size_t i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	for (size_t i = 0; i < n; i++)
		if (i != b && (s == b || x[i] > x[s]))
			s = i;
	*tie = n > 1 && fabsf(x[b] - x[s]) < 1e-3f;
	return (uint32_t)b;
}

/* The final exit: the output the most FLOPs reach (as the scheduler picks it). */
static const char *
final_name(const struct kern_model *m)
{
	struct kern_model_info info;
	unsigned f = 0;

	kern_model_get_info(m, &info);
	for (unsigned o = 1; o < info.n_outputs; o++)
		if (kern_model_output(m, o)->flops >= kern_model_output(m, f)->flops)
			f = o;
	return kern_model_output(m, f)->name;
}

static int
add_tensor(const struct kern_model *m, struct kern_plan *tail, unsigned split, const float *x,
	   size_t numel, unsigned dtype)
{
	const struct kern_split *sp = kern_model_split(m, split);
	struct tensor *t = &tens[n_tens];
	struct tg_tensor in, out;
	const char *fn = final_name(m), *name;
	float *deq;
	int rc;

	memset(t, 0, sizeof(*t));
	t->label = -1;
	t->split = (uint8_t)split;
	t->dtype = (uint8_t)dtype;
	t->bytes = (uint32_t)(numel * proto_dtype_size(dtype));
	t->raw = malloc(t->bytes);
	deq = malloc(numel * sizeof(float));
	if (t->raw == NULL || deq == NULL)
		return -ENOMEM;
	if (dtype == PROTO_DT_F32) {
		t->scale = 1.0f;
		memcpy(t->raw, x, t->bytes);
		memcpy(deq, x, t->bytes);
	} else {
		rc = proto_quant_params(dtype, x, numel, &t->scale, &t->zp);
		if (rc == 0)
			rc = proto_quantize(dtype, x, numel, t->scale, t->zp, t->raw);
		if (rc == 0)
			rc = proto_dequantize(dtype, t->raw, numel, t->scale, t->zp, deq);
		if (rc < 0)
			return rc;
	}
	t->t.dtype = (uint8_t)dtype;
	t->t.ndim = (uint8_t)sp->ndim;
	for (int d = 0; d < sp->ndim; d++)
		t->t.dims[d] = (uint32_t)sp->dims[d];
	t->t.raw_total = t->bytes;
	t->t.scale = t->scale;
	t->t.zero_point = t->zp;
	/* What the gateway computes: the tail on the tensor as it dequantizes it. */
	kern_plan_input(tail, 0, &in);
	memcpy(in.data, deq, numel * sizeof(float));
	free(deq);
	if (kern_plan_run(tail) != 0)
		return -EIO;
	for (unsigned k = 0; k < kern_plan_n_outputs(tail); k++) {
		kern_plan_output(tail, k, &out, &name);
		if (name != NULL && strcmp(name, fn) == 0)
			t->expect = argmax(out.data, tg_tensor_numel(&out), &t->near_tie);
	}
	n_tens++;
	return 0;
}

/* Samples, their head outputs at split mid, and the four tensors of each. */
static int
build_tensors(const char *model_path, const char *input_npy, unsigned mid, unsigned n_samples,
	      struct tg_err *err)
{
	struct kern_model *m = NULL;
	struct kern_plan *head = NULL, *tail0 = NULL, *tailm = NULL;
	struct kern_plan_spec hs = { .kind = KERN_PLAN_HEAD, .split = mid, .batch = 1 };
	struct kern_plan_spec t0 = { .kind = KERN_PLAN_TAIL, .split = 0, .batch = 1 };
	struct kern_plan_spec tm = { .kind = KERN_PLAN_TAIL, .split = mid, .batch = 1 };
	struct tg_tensor inp = { 0 }, hin, hout;
	const struct kern_split *s0, *sm;
	size_t n_in_rows = 0;
	int rc;

	rc = kern_model_load(model_path, NULL, &m, err);
	if (rc < 0)
		return rc;
	s0 = kern_model_split(m, 0);
	sm = kern_model_split(m, mid);
	if (sm == NULL || mid == 0) {
		rc = tg_err_set(err, -EINVAL, "split %u: not a middle split of the model", mid);
		goto out;
	}
	if ((rc = kern_plan_create(m, &hs, &head, err)) < 0 ||
	    (rc = kern_plan_create(m, &t0, &tail0, err)) < 0 ||
	    (rc = kern_plan_create(m, &tm, &tailm, err)) < 0)
		goto out;
	if (input_npy != NULL && tg_npy_load(input_npy, 1u << 26, &inp, err) == 0 &&
	    inp.dtype == TG_DT_F32 && tg_tensor_numel(&inp) % s0->numel == 0)
		n_in_rows = tg_tensor_numel(&inp) / s0->numel;
	for (unsigned i = 0; i < n_samples; i++) {
		float *x;

		kern_plan_input(head, 0, &hin);
		x = hin.data;
		if (i < n_in_rows)
			memcpy(x, (float *)inp.data + i * s0->numel, s0->numel * sizeof(float));
		else	/* images in [0, 1], as the model's input contract */
			for (size_t k = 0; k < s0->numel; k++)
				x[k] = (float)(rnd() % 1001) / 1000.0f;
		if ((rc = add_tensor(m, tail0, 0, x, s0->numel, PROTO_DT_F32)) < 0 ||
		    (rc = add_tensor(m, tail0, 0, x, s0->numel, PROTO_DT_U8)) < 0)
			goto out;
		if (kern_plan_run(head) != 0) {
			rc = tg_err_set(err, -EIO, "head plan failed");
			goto out;
		}
		kern_plan_output(head, 0, &hout, NULL);
		if ((rc = add_tensor(m, tailm, mid, hout.data, sm->numel, PROTO_DT_F32)) < 0 ||
		    (rc = add_tensor(m, tailm, mid, hout.data, sm->numel, PROTO_DT_U8)) < 0)
			goto out;
	}
	rc = 0;
out:
	tg_tensor_free(&inp);
	kern_plan_free(head);
	kern_plan_free(tail0);
	kern_plan_free(tailm);
	kern_model_free(m);
	return rc;
}

/*
 * HELLO for a session. A busy machine may leave the gateway's RX lcore unscheduled for a
 * while: resent after 200 ms, doubling, 6 tries (6.2 s in all), and a late reply to an
 * earlier try is as good (a retransmitted HELLO carries the same request id).
 * @return 0, or -1 when no HELLO_REPLY came (the caller fails: never session 0)
 */
static int
hello(struct client *c, const struct sockaddr_in *gw)
{
	uint8_t buf[PROTO_HELLO_MIN_DGRAM], in[2048];
	struct proto_hdr h = { .client_id = c->id };
	struct proto_hello m = prof;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	struct proto_msg msg;
	int n;

	n = proto_encode_hello(buf, sizeof(buf), &h, &m, sizeof(buf));
	if (n < 0)
		return -1;
	for (int tries = 0; tries < 6; tries++) {
		uint64_t until = now_ns() + (200ull << tries) * 1000000ull, now;

		sendto(c->fd, buf, (size_t)n, 0, (const struct sockaddr *)gw, sizeof(*gw));
		while ((now = now_ns()) < until &&
		       poll(&pfd, 1, (int)((until - now) / 1000000ull) + 1) > 0) {
			ssize_t k = recv(c->fd, in, sizeof(in), 0);

			if (k > 0 && proto_decode(in, (size_t)k, NULL, &msg, NULL) == PROTO_OK &&
			    msg.h.type == PROTO_T_HELLO_REPLY && msg.h.client_id == c->id) {
				c->session = msg.h.session_id;
				st.sessions++;
				return 0;
			}
		}
	}
	fprintf(stderr, "gw_client: client %u: no HELLO_REPLY in 6 tries (6.2 s)\n", c->id);
	return -1;
}

/*
 * One request the gateway must refuse, sent alone and waited for: its RESPONSE must carry
 * want (and reason, when not PROTO_OK). @return true when it did.
 */
static bool
probe(struct client *k, const struct sockaddr_in *gw, const char *what, uint16_t model_id,
      uint8_t variant, uint8_t split, const struct tensor *t, const uint32_t *dims,
      uint8_t flags, unsigned want, unsigned want_reason)
{
	static uint8_t out[MAX_CHUNKS * MAX_DGRAM];
	struct proto_dgram dg[MAX_CHUNKS];
	struct proto_hdr h = { .client_id = k->id, .request_id = ++k->next_id,
			       .session_id = k->session };
	struct proto_request rq;
	struct pollfd pfd = { .fd = k->fd, .events = POLLIN };
	uint64_t t_end = now_ns() + 2000000000ull;
	unsigned n;

	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = model_id;
	rq.c.variant_id = variant;
	rq.c.split_id = split;
	rq.c.t = t->t;
	if (dims != NULL)
		memcpy(rq.c.t.dims, dims, sizeof(rq.c.t.dims));
	rq.flags = flags;
	if (proto_request_chunk(&h, &rq, t->raw, MAX_DGRAM, true, out, sizeof(out), dg, MAX_CHUNKS,
				&n) != 0) {
		fprintf(stderr, "gw_client: probe %s: chunking failed\n", what);
		return false;
	}
	for (unsigned i = 0; i < n; i++)
		sendto(k->fd, dg[i].data, dg[i].len, 0, (const struct sockaddr *)gw, sizeof(*gw));
	while (now_ns() < t_end) {
		uint8_t buf[2048];
		struct proto_msg m;
		ssize_t len;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		len = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (len <= 0 || proto_decode(buf, (size_t)len, NULL, &m, NULL) != PROTO_OK ||
		    m.h.request_id != h.request_id || m.h.type != PROTO_T_RESPONSE)
			continue;
		if (ids_f != NULL)
			fprintf(ids_f, "%u %u\n", k->id, h.request_id);
		if (m.u.resp.status == want &&
		    (want_reason == PROTO_OK || m.u.resp.reason == want_reason))
			return true;
		fprintf(stderr, "gw_client: probe %s: got %s/%s, want %s/%s\n", what,
			proto_status_name(m.u.resp.status), proto_reason_name(m.u.resp.reason),
			proto_status_name(want), proto_reason_name(want_reason));
		return false;
	}
	fprintf(stderr, "gw_client: probe %s: no answer\n", what);
	return false;
}

/* Every refusal the gateway makes before the scheduler, once each; and a WANT_TENSOR
 * request, which is served (a TENSOR answer: the probe reads its first chunk). */
static unsigned
probes(struct client *k, const struct sockaddr_in *gw, unsigned model_id, unsigned *n_ok)
{
	const struct tensor *in = NULL;
	static const uint32_t wrong_dims[PROTO_MAX_DIMS] = { 1, 28, 28, 1 };
	unsigned n = 0;

	for (unsigned i = 0; i < n_tens && in == NULL; i++)
		if (tens[i].split == 0 && tens[i].dtype == PROTO_DT_F32)
			in = &tens[i];
	*n_ok = 0;
	if (in == NULL)
		return 0;
#define P(...) (n++, *n_ok += probe(k, gw, __VA_ARGS__))
	P("unknown model", (uint16_t)(model_id + 100), 0, 0, in, NULL, 0, PROTO_ST_UNKNOWN_MODEL,
	  PROTO_OK);
	P("split not served", (uint16_t)model_id, 0, 2, in, NULL, 0, PROTO_ST_UNKNOWN_SPLIT, PROTO_OK);
	P("variant not served", (uint16_t)model_id, 200, 0, in, NULL, 0, PROTO_ST_UNKNOWN_SPLIT,
	  PROTO_E_UNKNOWN_VARIANT);
	P("input tensor at a later split", (uint16_t)model_id, 0, mid_split, in, NULL, 0,
	  PROTO_ST_BAD_REQUEST, PROTO_E_MODEL_SHAPE);
	P("input in another shape", (uint16_t)model_id, 0, 0, in, wrong_dims, 0,
	  PROTO_ST_BAD_REQUEST, PROTO_E_MODEL_SHAPE);
	P("full tensor wanted (answered)", (uint16_t)model_id, 0, 0, in, NULL,
	  PROTO_RF_WANT_TENSOR, PROTO_ST_OK, PROTO_OK);
#undef P
	return n;
}

/* ---- --fmnist: the Fashion-MNIST test images at every served split, in every dtype ---- */

static struct {
	struct kern_model *m;
	struct bench_fmnist ds;
	unsigned n_splits, n_dtypes;
	uint8_t splits[4], dtypes[4];
	struct kern_plan *head[4], *tail[4];	/* FM_BATCH rows each */
	unsigned tail_final[4];			/* the final exit's output index in tail[] */
	uint64_t heads, tails;			/* batched engine runs, for the summary */
	struct kern_calib *calib;		/* --calib: int8 reference tails; else NULL */
	uint64_t off_correct, off_n;		/* offline classes vs the labels */
} fm;

static const char *
dtype_name(unsigned dt)
{
	static const char *const n[] = { "raw", "f32", "f16", "s8", "u8" };

	return dt < PROTO_DT__COUNT ? n[dt] : "?";
}

static int
parse_list(const char *v, uint8_t *out, unsigned max, bool dtypes)
{
	unsigned n = 0;
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", v);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		int x = -1;

		if (n == max)
			return -1;
		if (!dtypes)
			x = (int)strtol(t, NULL, 10);
		else
			for (unsigned d = PROTO_DT_F32; d < PROTO_DT__COUNT; d++)
				if (strcmp(t, dtype_name(d)) == 0)
					x = (int)d;
		if (x < 0 || x > 255)
			return -1;
		out[n++] = (uint8_t)x;
	}
	return (int)n;
}

/* Model, images (the first limit), and a batched head and reference tail per split. */
static int
fm_open(const char *model_path, const char *dir, const char *calib, size_t limit,
	struct tg_err *err)
{
	const char *fn, *name;
	int rc;

	rc = kern_model_load(model_path, NULL, &fm.m, err);
	if (rc < 0)
		return rc;
	if (calib != NULL && (rc = kern_calib_load(fm.m, calib, &fm.calib, err)) < 0)
		return rc;
	rc = bench_fmnist_load(dir, false, limit, &fm.ds, err);
	if (rc < 0)
		return rc;
	fn = final_name(fm.m);
	for (unsigned k = 0; k < fm.n_splits; k++) {
		struct kern_plan_spec hs = { .kind = KERN_PLAN_HEAD, .split = fm.splits[k],
					     .batch = FM_BATCH };
		struct kern_plan_spec ts = { .kind = KERN_PLAN_TAIL, .split = fm.splits[k],
					     .batch = FM_BATCH, .calib = fm.calib,
					     .precision = fm.calib != NULL ? KERN_PREC_INT8 :
									    KERN_PREC_F32 };
		struct tg_tensor v;

		if (kern_model_split(fm.m, fm.splits[k]) == NULL)
			return tg_err_set(err, -EINVAL, "split %u: not in the model", fm.splits[k]);
		if (fm.splits[k] != 0 && (rc = kern_plan_create(fm.m, &hs, &fm.head[k], err)) < 0)
			return rc;
		if ((rc = kern_plan_create(fm.m, &ts, &fm.tail[k], err)) < 0)
			return rc;
		for (unsigned o = 0; o < kern_plan_n_outputs(fm.tail[k]); o++) {
			kern_plan_output(fm.tail[k], o, &v, &name);
			if (name != NULL && strcmp(name, fn) == 0)
				fm.tail_final[k] = o;
		}
	}
	return 0;
}

static void
fm_close(void)
{
	for (unsigned k = 0; k < 4; k++) {
		kern_plan_free(fm.head[k]);
		kern_plan_free(fm.tail[k]);
	}
	bench_fmnist_free(&fm.ds);
	kern_calib_free(fm.calib);
	kern_model_free(fm.m);
}

/* Image i's kind: splits cycle fastest, then dtypes, so each pair gets its share. */
static void
fm_kind(size_t i, unsigned *si, unsigned *di)
{
	*si = (unsigned)(i % fm.n_splits);
	*di = (unsigned)((i / fm.n_splits) % fm.n_dtypes);
}

/*
 * k images (idx) sent at split si: their head in one batch, each row quantized to its
 * dtype, and the expected answer: the reference tail on the rows loaded from the quantized
 * bytes by kern_plan_load_rows, the gateway's own dequantizing copy.
 */
static int
fm_group(unsigned si, const size_t *idx, unsigned k, struct tg_err *err)
{
	const struct kern_split *sp = kern_model_split(fm.m, fm.splits[si]);
	const size_t in_numel = BENCH_FMNIST_ROWS * BENCH_FMNIST_COLS;
	const float *rows[FM_BATCH];
	struct tg_tensor hin, hout, tin, out;
	size_t classes;

	if (fm.head[si] != NULL) {
		kern_plan_input(fm.head[si], 0, &hin);
		memset(hin.data, 0, tg_tensor_bytes(&hin));
		for (unsigned j = 0; j < k; j++)
			memcpy((float *)hin.data + j * in_numel,
			       (const float *)fm.ds.images.data + idx[j] * in_numel,
			       in_numel * sizeof(float));
		if (kern_plan_run(fm.head[si]) != 0)
			return tg_err_set(err, -EIO, "head plan failed");
		fm.heads++;
		kern_plan_output(fm.head[si], 0, &hout, NULL);
		for (unsigned j = 0; j < k; j++)
			rows[j] = (const float *)hout.data + j * sp->numel;
	} else {
		for (unsigned j = 0; j < k; j++)
			rows[j] = (const float *)fm.ds.images.data + idx[j] * in_numel;
	}
	kern_plan_input(fm.tail[si], 0, &tin);
	memset(tin.data, 0, tg_tensor_bytes(&tin));
	for (unsigned j = 0; j < k; j++) {
		struct tensor *t = &tens[n_tens + j];
		unsigned a, di;
		int rc;

		fm_kind(idx[j], &a, &di);
		memset(t, 0, sizeof(*t));
		t->split = (uint8_t)sp->index;
		t->dtype = fm.dtypes[di];
		t->label = fm.ds.labels[idx[j]];
		t->bytes = (uint32_t)(sp->numel * proto_dtype_size(t->dtype));
		t->raw = malloc(t->bytes);
		if (t->raw == NULL)
			return tg_err_set(err, -ENOMEM, "out of memory");
		rc = proto_quant_params(t->dtype, rows[j], sp->numel, &t->scale, &t->zp);
		if (rc == 0)
			rc = proto_quantize(t->dtype, rows[j], sp->numel, t->scale, t->zp, t->raw);
		if (rc == 0)	/* proto and tg dtypes agree for the four served types */
			rc = kern_plan_load_rows(fm.tail[si], 0, j, 1, (enum tg_dtype)t->dtype,
						 t->raw, t->scale, t->zp);
		if (rc < 0)
			return tg_err_set(err, rc, "quantizing image %zu to %s failed", idx[j],
					  dtype_name(t->dtype));
		t->t.dtype = t->dtype;
		t->t.ndim = (uint8_t)sp->ndim;
		for (int d = 0; d < sp->ndim; d++)
			t->t.dims[d] = (uint32_t)sp->dims[d];
		t->t.raw_total = t->bytes;
		t->t.scale = t->scale;
		t->t.zero_point = t->zp;
	}
	if (kern_plan_run(fm.tail[si]) != 0)
		return tg_err_set(err, -EIO, "reference tail plan failed");
	fm.tails++;
	kern_plan_output(fm.tail[si], fm.tail_final[si], &out, NULL);
	classes = tg_tensor_numel(&out) / (size_t)out.dims[0];
	for (unsigned j = 0; j < k; j++) {
		struct tensor *t = &tens[n_tens + j];

		t->expect = argmax((const float *)out.data + j * classes, classes, &t->near_tie);
		fm.off_n++;
		fm.off_correct += t->expect == (uint32_t)t->label;
	}
	n_tens += k;
	return 0;
}

/* The tensors of images [first, first + n): tens[] is replaced. */
static int
fm_block(size_t first, size_t n, struct tg_err *err)
{
	for (unsigned i = 0; i < n_tens; i++)
		free(tens[i].raw);
	n_tens = 0;
	for (unsigned si = 0; si < fm.n_splits; si++) {
		size_t idx[FM_BATCH];
		unsigned k = 0, a, d;
		int rc;

		for (size_t i = first; i < first + n; i++) {
			fm_kind(i, &a, &d);
			if (a != si)
				continue;
			idx[k++] = i;
			if (k == FM_BATCH) {
				if ((rc = fm_group(si, idx, k, err)) < 0)
					return rc;
				k = 0;
			}
		}
		if (k > 0 && (rc = fm_group(si, idx, k, err)) < 0)
			return rc;
	}
	return 0;
}

/* ---- the closed loop: each client keeps a window of requests open ---- */

static struct {
	struct sockaddr_in gw;
	unsigned clients, window, timeout_ms, model_id, top_k, flags, deadline_us;
	unsigned variant;		/* --variant: the REQUESTs' variant id (0) */
	bool no_retry;
	uint64_t requests;		/* requests to start in all (--no-retry lowers it) */
	uint64_t tens_base;		/* st.started when tens[] was built */
	uint64_t sent_total;
	int final_out;			/* the model's final exit (output index) */
} o;

/* t as a REQUEST's datagrams under h, with the options' model, variant, top-k and flags.
 * @return 0 or -1 */
static int
chunk_tensor(struct proto_hdr *h, const struct tensor *t, uint32_t deadline_us, uint8_t *out,
	     size_t cap, struct proto_dgram *dg, unsigned *n)
{
	struct proto_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = (uint16_t)o.model_id;
	rq.c.variant_id = (uint8_t)o.variant;
	rq.c.split_id = t->split;
	rq.c.t = t->t;
	rq.top_k = (uint8_t)o.top_k;
	rq.flags = (uint8_t)o.flags;
	rq.deadline_us = deadline_us;
	return proto_request_chunk(h, &rq, t->raw, MAX_DGRAM, true, out, cap, dg, MAX_CHUNKS, n);
}

static struct client cl[MAX_CLIENTS];	/* 72 MB of datagrams: not the stack */
/* SIGUSR1: start nothing new (both loops); what is in flight is still waited for. */
static volatile sig_atomic_t ol_stop;

/* @return 1 when the answer's class is the label, 0 when not, -1 without a label. */
static int
answer_ok(const struct proto_msg *m, const struct tensor *t, uint32_t id)
{
	struct proto_topk e;
	uint8_t v = m->u.resp.c.variant_id;
	int right = -1;

	proto_topk_get(&m->u.resp, 0, &e);
	st.ok++;
	st.ran_variant[v]++;
	if (t->label >= 0) {
		right = e.class_id == (uint32_t)t->label;
		st.labelled_v[v]++;
		st.correct_v[v] += (unsigned)right;
	}
	if (v != o.variant) {	/* degraded: another variant's answer, the labels judge it */
		st.degraded++;
		return right;
	}
	st.by_kind[(t->split != 0) * 2 + (t->dtype != PROTO_DT_F32)]++;
	if (t->label >= 0) {
		for (unsigned k = 0; k < fm.n_splits; k++)
			if (fm.splits[k] == t->split && t->dtype < PROTO_DT__COUNT)
				st.by_sd[k][t->dtype]++;
		st.labelled[t->dtype]++;
		st.correct[t->dtype] += e.class_id == (uint32_t)t->label;
	}
	if (m->u.resp.exit_taken != (uint8_t)o.final_out)
		st.early_exits++;
	advice_by_split[m->u.resp.advice_split == PROTO_NONE ? 256 : m->u.resp.advice_split]++;
	advice_by_variant[m->u.resp.advice_variant == PROTO_NONE ? 256 :
			  m->u.resp.advice_variant]++;
	advice_none_fits += (m->u.resp.advice_flags & PROTO_AF_NONE_FITS) != 0;
	advice_no_exit += (m->u.resp.advice_flags & PROTO_AF_NO_EARLY_EXIT) != 0;
	if (e.class_id != t->expect) {
		if (t->near_tie || m->u.resp.exit_taken != (uint8_t)o.final_out) {
			st.close++;	/* a near tie, or an early exit's (its own answer) */
		} else {
			st.mismatch++;
			fprintf(stderr, "gw_client: request %u (split %u %s): class %u, expected %u\n",
				id, t->split, dtype_name(t->dtype), e.class_id, t->expect);
		}
	}
	if (m->u.resp.batch_size > st.batch_max)
		st.batch_max = m->u.resp.batch_size;
	st.batched += m->u.resp.batch_size > 1;
	return right;
}

/* Send what is due: new requests (tensors of tens[] in turn) and retries. */
static int
send_due(uint64_t now, bool *busy)
{
	for (unsigned c = 0; c < o.clients; c++) {
		struct client *k = &cl[c];

		for (unsigned s = 0; s < o.window; s++) {
			struct req *r = &k->req[s];

			if (r->active && r->retry_at == 0 &&
			    now - r->t_activity > (uint64_t)o.timeout_ms * 1000000ull) {
				st.lost++;	/* nothing heard: counted, never retried */
				r->active = false;
				k->inflight--;
			}
			if (!r->active && r->retry_at == 0 && st.started < o.requests && !ol_stop) {
				r->tensor = (unsigned)((st.started - o.tens_base) % n_tens);
				r->t_start = now;
				r->retry_at = 1;	/* send now */
				r->active = true;
				k->inflight++;
				st.started++;
			}
			if (r->active && r->retry_at != 0 && r->retry_at <= now) {
				struct tensor *t = &tens[r->tensor];
				struct proto_hdr h = { .client_id = k->id, .request_id = ++k->next_id,
						       .session_id = k->session };
				uint32_t deadline = o.deadline_us ? o.deadline_us
						  : (k->next_id & 1) ? 2000000 : 0;

				if (chunk_tensor(&h, t, deadline, r->out, sizeof(r->out), r->dg,
						 &r->n) != 0) {
					fprintf(stderr, "gw_client: chunking failed\n");
					return -1;
				}
				r->id = k->next_id;
				r->retry_at = 0;
				r->t_activity = now;
				for (unsigned i = 0; i < r->n; i++) {
					if (sendto(k->fd, r->dg[i].data, r->dg[i].len, 0,
						   (struct sockaddr *)&o.gw, sizeof(o.gw)) > 0)
						st.tx++;
				}
				o.sent_total++;
			}
			*busy |= r->active;
		}
	}
	return 0;
}

/* A request's answer came: remember its id and status (a second answer is then recognised). */
static void
tg_done(struct client *k, const struct req *r, const struct proto_msg *m)
{
	unsigned d = r->id % DONE_RING;

	k->done_id[d] = r->id;
	k->done_st[d] = (uint8_t)(m->h.type == PROTO_T_ERROR ? m->u.error.status
							    : m->u.resp.status);
}

static void
recv_client(struct client *k)
{
	uint8_t buf[2048];
	ssize_t n;

	while ((n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		struct proto_msg m;
		struct req *r = NULL;
		uint64_t now = now_ns();

		if (proto_decode(buf, (size_t)n, NULL, &m, NULL) != PROTO_OK || m.h.client_id != k->id) {
			st.rx_bad++;
			continue;
		}
		for (unsigned s = 0; s < o.window; s++)
			if (k->req[s].active && k->req[s].retry_at == 0 && k->req[s].id == m.h.request_id)
				r = &k->req[s];
		if (r == NULL) {	/* stale: a NACK crossing the last chunk, or a second answer */
			unsigned d = m.h.request_id % DONE_RING;

			if (k->done_id[d] == m.h.request_id && m.h.request_id != 0 &&
			    (m.h.type == PROTO_T_ERROR || (m.h.type == PROTO_T_RESPONSE &&
							   m.u.resp.status != PROTO_ST_PENDING))) {
				unsigned s2 = m.h.type == PROTO_T_ERROR ? m.u.error.status
									: m.u.resp.status;

				st.again++;
				st.differ += s2 != k->done_st[d];
			}
			continue;
		}
		r->t_activity = now;
		if (m.h.type == PROTO_T_RESPONSE && m.u.resp.status == PROTO_ST_PENDING) {
			st.pendings++;	/* held by the gateway: not an answer, keep waiting */
			continue;
		}
		if (m.h.type == PROTO_T_NACK) {
			st.nacks++;
			for (unsigned i = 0; i < m.u.nack.n_ranges; i++)
				for (unsigned j = m.u.nack.ranges[i].first;
				     j < (unsigned)m.u.nack.ranges[i].first + m.u.nack.ranges[i].count &&
				     j < r->n; j++) {
					sendto(k->fd, r->dg[j].data, r->dg[j].len, 0,
					       (struct sockaddr *)&o.gw, sizeof(o.gw));
					st.resent++;
				}
			continue;
		}
		if (m.h.type == PROTO_T_ERROR ||
		    (m.h.type == PROTO_T_RESPONSE && m.u.resp.status == PROTO_ST_OVERLOADED)) {
			unsigned s = m.h.type == PROTO_T_ERROR ? m.u.error.status : m.u.resp.status;

			if (s == PROTO_ST_OVERLOADED && o.no_retry) {
				/* the answer of a gateway shedding or draining */
				st.overloaded_final++;
				/* and start nothing new: a device backing off */
				o.requests = st.started;
				if (ids_f != NULL && m.h.type == PROTO_T_RESPONSE)
					fprintf(ids_f, "%u %u\n", k->id, r->id);
				tg_done(k, r, &m);
				r->active = false;
				k->inflight--;
				continue;
			}
			if (s == PROTO_ST_OVERLOADED) {	/* back off, new id */
				tg_done(k, r, &m);	/* this id's answer: no other may follow */
				st.overloaded++;
				r->retry_at = now + 5000000ull;
				continue;
			}
			if (s < PROTO_ST__COUNT)
				st.by_status[s]++;
			st.failed++;
			fprintf(stderr, "gw_client: request %u: ERROR %s\n", r->id, proto_status_name(s));
			tg_done(k, r, &m);
			r->active = false;
			k->inflight--;
			continue;
		}
		if (m.h.type != PROTO_T_RESPONSE) {
			st.rx_bad++;
			continue;
		}
		if (m.u.resp.status < PROTO_ST__COUNT)
			st.by_status[m.u.resp.status]++;
		if (m.u.resp.status != PROTO_ST_OK && m.u.resp.c.variant_id != o.variant)
			st.refused_other_variant++;
		if (ids_f != NULL)
			fprintf(ids_f, "%u %u\n", k->id, r->id);
		if (m.u.resp.status != PROTO_ST_OK || m.u.resp.result_kind != PROTO_RES_TOPK ||
		    m.u.resp.top_k == 0) {
			st.failed++;
			fprintf(stderr, "gw_client: request %u: %s/%s\n", r->id,
				proto_status_name(m.u.resp.status), proto_reason_name(m.u.resp.reason));
		} else {
			answer_ok(&m, &tens[r->tensor], r->id);
		}
		tg_done(k, r, &m);
		r->active = false;
		k->inflight--;
	}
}

/* Until every request started (up to o.requests) is answered, or t_end. */
static int
run_window(uint64_t t_end)
{
	while (now_ns() < t_end) {
		struct pollfd pfd[MAX_CLIENTS];
		bool busy = false;

		if (send_due(now_ns(), &busy) < 0)
			return -1;
		if (!busy && (st.started >= o.requests || ol_stop))
			break;
		for (unsigned c = 0; c < o.clients; c++)
			pfd[c] = (struct pollfd){ .fd = cl[c].fd, .events = POLLIN };
		if (poll(pfd, o.clients, 5) <= 0)
			continue;
		for (unsigned c = 0; c < o.clients; c++)
			recv_client(&cl[c]);
	}
	return 0;
}

/*
 * ---- the open loop: --rate R requests/s for --duration S, whatever the answers ----
 * Single-client-window bookkeeping does not fit: each request is tracked in its client's ring
 * by id, so thousands stay in flight. A request is "good" when answered OK within its
 * deadline as the client sees it (send to answer). --closed W instead keeps W in flight (a
 * closed loop at saturation) and reports the rate of OK answers: the capacity.
 */
struct ol_req {
	uint32_t id;			/* 0: free */
	uint32_t tensor;
	uint64_t t_send;
	bool done;			/* answered: id kept to recognise a second answer */
	uint8_t status;			/* the first answer's status */
};

static struct ol_req *ol[MAX_CLIENTS];
static struct {
	uint64_t sent, answered, ok, good, late, lost, reused, inflight, nack_resent;
	uint64_t again, differ;		/* second answers to a request: all, with another status */
	uint64_t good_after_warmup, ok_after_warmup;
	uint64_t good_labelled, good_correct;	/* good after the warm-up, vs the labels */
	uint64_t lat_us[1 << 16];	/* OK latencies, a sample of at most 65536 */
	unsigned n_lat;
} ols;

static void
ol_on_usr1(int sig)
{
	(void)sig;
	ol_stop = 1;
}

/*
 * --prebuilt 1: the load generator's own CPU kept small, for the saturation measurement on a
 * machine whose cores it shares with the gateway (scripts/bench_path.sh). Each tensor's
 * REQUEST is chunked once (no LZ4 per request); a send copies its datagrams into the
 * client's batch, writes the client id, request id and session in place (and reseals a CRC
 * when the datagram carries one), and the batch leaves in one sendmmsg; answers are read 64
 * at a time with recvmmsg. Nothing is allocated per request.
 */
enum { PB_BATCH = 64 };

struct pb_tensor {			/* one tensor's request, chunked under ids 0 */
	uint8_t *bytes;
	struct proto_dgram *dg;
	unsigned n;
};

struct pb_io {				/* a client's send batch and receive buffers */
	struct mmsghdr tx[PB_BATCH], rx[PB_BATCH];
	struct iovec txv[PB_BATCH], rxv[PB_BATCH];
	uint8_t txb[PB_BATCH][MAX_DGRAM];
	uint8_t rxb[PB_BATCH][2048];
	unsigned n_tx;
};

static struct {
	bool on;
	struct pb_tensor t[MAX_TENS];
	struct pb_io *io[MAX_CLIENTS];
	uint64_t sendmmsg_calls, recvmmsg_calls;
} pb;

static void
pb_send_flush(struct client *k, unsigned c)
{
	struct pb_io *io = pb.io[c];
	unsigned done = 0;

	while (done < io->n_tx) {
		int r = sendmmsg(k->fd, io->tx + done, io->n_tx - done, 0);

		pb.sendmmsg_calls++;
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;	/* what did not leave is lost on the way: NACKs and timeouts tell */
		}
		st.tx += (unsigned)r;
		done += (unsigned)r;
	}
	io->n_tx = 0;
}

/* Datagram d (a prebuilt chunk) into client c's batch under (k's id, id, k's session). */
static void
pb_queue(struct client *k, unsigned c, uint32_t id, const struct proto_dgram *d)
{
	struct pb_io *io = pb.io[c];
	uint8_t *b;

	if (io->n_tx == PB_BATCH)
		pb_send_flush(k, c);
	b = io->txb[io->n_tx];
	memcpy(b, d->data, d->len);
	proto_st32(b + PROTO_OFF_CLIENT_ID, k->id);
	proto_st32(b + PROTO_OFF_REQUEST_ID, id);
	proto_st64(b + PROTO_OFF_SESSION_ID, k->session);
	if (proto_ld16(b + PROTO_OFF_FLAGS) & PROTO_F_CRC)
		(void)proto_seal_crc(b, d->len);
	io->txv[io->n_tx].iov_len = d->len;
	io->n_tx++;
}

/* Every tensor of tens[] chunked once, and each client's batches. @return 0 or -1 */
static int
pb_build(void)
{
	static uint8_t out[MAX_CHUNKS * MAX_DGRAM];
	struct proto_dgram dg[MAX_CHUNKS];

	for (unsigned ti = 0; ti < n_tens; ti++) {
		const struct tensor *t = &tens[ti];
		struct pb_tensor *p = &pb.t[ti];
		struct proto_hdr h = { 0 };
		size_t off = 0;

		if (chunk_tensor(&h, t, o.deadline_us, out, sizeof(out), dg, &p->n) != 0)
			return -1;
		p->dg = malloc(p->n * sizeof(*p->dg));
		p->bytes = malloc((size_t)p->n * MAX_DGRAM);
		if (p->dg == NULL || p->bytes == NULL)
			return -1;
		for (unsigned i = 0; i < p->n; i++) {
			memcpy(p->bytes + off, dg[i].data, dg[i].len);
			p->dg[i] = (struct proto_dgram){ .data = p->bytes + off, .len = dg[i].len };
			off += dg[i].len;
		}
	}
	for (unsigned c = 0; c < o.clients; c++) {
		struct pb_io *io = calloc(1, sizeof(*io));

		if (io == NULL)
			return -1;
		for (unsigned i = 0; i < PB_BATCH; i++) {
			io->txv[i].iov_base = io->txb[i];
			io->tx[i].msg_hdr = (struct msghdr){ .msg_name = &o.gw,
							     .msg_namelen = sizeof(o.gw),
							     .msg_iov = &io->txv[i],
							     .msg_iovlen = 1 };
			io->rxv[i] = (struct iovec){ .iov_base = io->rxb[i],
						     .iov_len = sizeof(io->rxb[i]) };
			io->rx[i].msg_hdr = (struct msghdr){ .msg_iov = &io->rxv[i],
							     .msg_iovlen = 1 };
		}
		pb.io[c] = io;
	}
	return 0;
}

static void
pb_free(void)
{
	for (unsigned ti = 0; ti < MAX_TENS; ti++) {
		free(pb.t[ti].bytes);
		free(pb.t[ti].dg);
	}
	for (unsigned c = 0; c < MAX_CLIENTS; c++)
		free(pb.io[c]);
	memset(&pb.t, 0, sizeof(pb.t));
	memset(&pb.io, 0, sizeof(pb.io));
}

static int
ol_send(struct client *k, struct ol_req *q, uint32_t id, unsigned ti, bool only_chunks,
	const struct proto_nack *nk)
{
	static uint8_t out[MAX_CHUNKS * MAX_DGRAM];
	struct proto_dgram dg[MAX_CHUNKS];
	const struct tensor *t = &tens[ti];
	struct proto_hdr h = { .client_id = k->id, .request_id = id, .session_id = k->session };
	unsigned n;

	if (pb.on) {
		n = pb.t[ti].n;
		memcpy(dg, pb.t[ti].dg, n * sizeof(dg[0]));
	} else if (chunk_tensor(&h, t, o.deadline_us, out, sizeof(out), dg, &n) != 0) {
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		bool want = !only_chunks;

		for (unsigned r = 0; only_chunks && r < nk->n_ranges; r++)
			want |= i >= nk->ranges[r].first &&
				i < (unsigned)nk->ranges[r].first + nk->ranges[r].count;
		if (want && pb.on)
			pb_queue(k, (unsigned)(k - cl), id, &dg[i]);
		else if (want && sendto(k->fd, dg[i].data, dg[i].len, 0, (struct sockaddr *)&o.gw,
					sizeof(o.gw)) > 0)
			st.tx++;
		ols.nack_resent += want && only_chunks;
	}
	(void)q;
	return 0;
}

/* One datagram from the gateway to client k (answer, NACK, PENDING), received at now. */
static void
ol_answer(struct client *k, struct ol_req *ring, const uint8_t *buf, size_t n, uint64_t now,
	  uint64_t warm_end)
{
	struct proto_msg m;
	struct ol_req *q;
	uint64_t lat;
	unsigned s;

	if (proto_decode(buf, n, NULL, &m, NULL) != PROTO_OK || m.h.client_id != k->id) {
		st.rx_bad++;
		return;
	}
	q = &ring[m.h.request_id & (OL_CAP - 1)];
	if (q->id != m.h.request_id || m.h.request_id == 0)
		return;	/* stale beyond the ring: not ours to judge */
	if (q->done) {
		/* The gateway may answer a late duplicate chunk with the same answer again
		 * (docs/protocol.md 12.2); another status would be a second, different one. */
		if (m.h.type == PROTO_T_ERROR || (m.h.type == PROTO_T_RESPONSE &&
						  m.u.resp.status != PROTO_ST_PENDING)) {
			unsigned s2 = m.h.type == PROTO_T_ERROR ? m.u.error.status
								: m.u.resp.status;

			ols.again++;
			ols.differ += s2 != q->status;
		}
		return;
	}
	if (m.h.type == PROTO_T_NACK) {
		st.nacks++;
		ol_send(k, q, q->id, q->tensor, true, &m.u.nack);
		return;
	}
	if (m.h.type != PROTO_T_RESPONSE && m.h.type != PROTO_T_ERROR) {
		st.rx_bad++;
		return;
	}
	if (m.h.type == PROTO_T_RESPONSE && m.u.resp.status == PROTO_ST_PENDING) {
		st.pendings++;	/* held by the gateway: not an answer, keep waiting */
		return;
	}
	s = m.h.type == PROTO_T_ERROR ? m.u.error.status : m.u.resp.status;
	if (s < PROTO_ST__COUNT)
		st.by_status[s]++;
	if (ids_f != NULL && m.h.type == PROTO_T_RESPONSE)
		fprintf(ids_f, "%u %u\n", k->id, q->id);
	lat = (now - q->t_send) / 1000;
	ols.answered++;
	ols.inflight--;
	if (m.h.type == PROTO_T_RESPONSE && s != PROTO_ST_OK &&
	    m.u.resp.c.variant_id != o.variant)
		st.refused_other_variant++;	/* only an answer that ran says so */
	if (s == PROTO_ST_OK && m.h.type == PROTO_T_RESPONSE) {
		int right = answer_ok(&m, &tens[q->tensor], q->id);

		ols.ok++;
		if (q->t_send >= warm_end)
			ols.ok_after_warmup++;
		if (lat <= o.deadline_us) {
			ols.good++;
			ols.good_after_warmup += q->t_send >= warm_end;
			if (q->t_send >= warm_end && right >= 0) {
				ols.good_labelled++;
				ols.good_correct += (unsigned)right;
			}
		} else {
			ols.late++;
		}
		if (ols.n_lat < sizeof(ols.lat_us) / sizeof(ols.lat_us[0]))
			ols.lat_us[ols.n_lat++] = lat;
	}
	q->done = true;
	q->status = (uint8_t)s;
}

/* Everything waiting on client c's socket; with --prebuilt, 64 datagrams per recvmmsg and
 * the NACKs' resends in one sendmmsg. */
static void
ol_recv(unsigned c, struct ol_req *ring, uint64_t warm_end)
{
	struct client *k = &cl[c];
	uint8_t buf[2048];
	ssize_t n;
	int r;

	if (!pb.on) {
		while ((n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			ol_answer(k, ring, buf, (size_t)n, now_ns(), warm_end);
		return;
	}
	do {
		uint64_t now;

		r = recvmmsg(k->fd, pb.io[c]->rx, PB_BATCH, MSG_DONTWAIT, NULL);
		pb.recvmmsg_calls++;
		now = now_ns();
		for (int i = 0; i < r; i++)
			ol_answer(k, ring, pb.io[c]->rxb[i], pb.io[c]->rx[i].msg_len, now, warm_end);
	} while (r == PB_BATCH);
	if (pb.io[c]->n_tx)
		pb_send_flush(k, c);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Degraded answers and who ran (the requested variant's line always, zero or not). */
static void
print_degraded(void)
{
	printf("degraded %llu\nrefused_other_variant %llu\n", (unsigned long long)st.degraded,
	       (unsigned long long)st.refused_other_variant);
	for (unsigned v = 0; v < 256; v++) {
		if (st.ran_variant[v] == 0 && v != o.variant)
			continue;
		printf("ran_variant_%u %llu\n", v, (unsigned long long)st.ran_variant[v]);
		if (st.labelled_v[v])
			printf("accuracy_variant_%u %.4f\n", v,
			       (double)st.correct_v[v] / (double)st.labelled_v[v]);
	}
}

/* rate > 0: open loop; else closed with window inflight. Then wait drain_ms for answers. */
static int
run_open(double rate, unsigned closed, double duration, double warmup, unsigned drain_ms)
{
	uint64_t t0 = now_ns(), t_stop = t0 + (uint64_t)(duration * 1e9), next = t0, seq = 0;
	uint64_t warm_end = t0 + (uint64_t)(warmup * 1e9), t_last_send = t0, t_drain;
	double gap = rate > 0 ? 1e9 / rate : 0;
	struct pollfd pfd[MAX_CLIENTS];
	uint64_t cpu0 = cpu_ns(), cpu1;

	if (pb.on && pb_build() < 0) {
		fprintf(stderr, "gw_client: --prebuilt: chunking failed or out of memory\n");
		return -1;
	}
	for (unsigned c = 0; c < o.clients; c++) {
		ol[c] = calloc(OL_CAP, sizeof(*ol[c]));
		if (ol[c] == NULL)
			return -1;
		pfd[c] = (struct pollfd){ .fd = cl[c].fd, .events = POLLIN };
	}
	for (;;) {
		uint64_t now = now_ns();
		bool sending = now < t_stop && !ol_stop;

		/* Paced: everything due by now leaves (poll's millisecond makes small bursts). */
		while (sending && (rate > 0 ? next <= now : ols.inflight < closed)) {
			struct client *k = &cl[seq % o.clients];
			struct ol_req *ring = ol[seq % o.clients];
			uint32_t id = ++k->next_id;
			struct ol_req *q = &ring[id & (OL_CAP - 1)];

			if (id == 0)
				id = ++k->next_id;
			if (q->id != 0 && !q->done) {	/* its slot's previous request never answered */
				ols.reused++;
				ols.inflight--;
			}
			q->done = false;
			q->id = id;
			q->tensor = (uint32_t)(seq % n_tens);
			q->t_send = now;
			if (ol_send(k, q, id, q->tensor, false, NULL) < 0) {
				fprintf(stderr, "gw_client: chunking failed\n");
				return -1;
			}
			ols.sent++;
			ols.inflight++;
			seq++;
			next += (uint64_t)gap;
			t_last_send = now;
		}
		for (unsigned c = 0; pb.on && c < o.clients; c++)
			if (pb.io[c]->n_tx)
				pb_send_flush(&cl[c], c);
		if (!sending) {
			t_drain = (now < t_stop ? now : t_stop) + (uint64_t)drain_ms * 1000000ull;
			if (ols.inflight == 0 || now > t_drain)
				break;
		}
		if (poll(pfd, o.clients, 1) > 0)
			for (unsigned c = 0; c < o.clients; c++)
				ol_recv(c, ol[c], warm_end);
	}
	cpu1 = cpu_ns();
	ols.lost = ols.inflight + ols.reused;
	{
		double span = (double)(t_last_send - t0) / 1e9, meas = span - warmup;
		uint64_t p50 = 0, p99 = 0;

		qsort(ols.lat_us, ols.n_lat, sizeof(ols.lat_us[0]), cmp_u64);
		if (ols.n_lat) {
			p50 = ols.lat_us[ols.n_lat / 2];
			p99 = ols.lat_us[(size_t)((ols.n_lat - 1) * 0.99)];
		}
		printf("mode %s\nsend_seconds %.3f\nsent %llu\nanswered %llu\nok %llu\n"
		       "good %llu\nok_late %llu\nlost %llu\noffered_rps %.1f\ngoodput_rps %.1f\n"
		       "ok_rps %.1f\nlat_p50_us %llu\nlat_p99_us %llu\nmismatch %llu\nclose %llu\n"
		       "nacks %llu\nresent %llu\nearly_exits %llu\nanswers_again %llu\n"
		       "answers_differ %llu\n",
		       rate > 0 ? "open" : "closed", span, (unsigned long long)ols.sent,
		       (unsigned long long)ols.answered, (unsigned long long)ols.ok,
		       (unsigned long long)ols.good, (unsigned long long)ols.late,
		       (unsigned long long)ols.lost, span > 0 ? (double)ols.sent / span : 0,
		       meas > 0 ? (double)ols.good_after_warmup / meas : 0,
		       meas > 0 ? (double)ols.ok_after_warmup / meas : 0, (unsigned long long)p50,
		       (unsigned long long)p99, (unsigned long long)st.mismatch,
		       (unsigned long long)st.close, (unsigned long long)st.nacks,
		       (unsigned long long)ols.nack_resent, (unsigned long long)st.early_exits,
		       (unsigned long long)ols.again, (unsigned long long)ols.differ);
		/* Every status, zeros too: a test reading one must find it. */
		for (unsigned s = 0; s < PROTO_ST__COUNT; s++)
			printf("status_%s %llu\n", proto_status_name(s),
			       (unsigned long long)st.by_status[s]);
		printf("good_labelled %llu\ngood_correct %llu\ngood_accuracy %.4f\n"
		       "goodput_correct_rps %.1f\n", (unsigned long long)ols.good_labelled,
		       (unsigned long long)ols.good_correct,
		       ols.good_labelled ? (double)ols.good_correct / (double)ols.good_labelled : 0,
		       meas > 0 ? (double)ols.good_correct / meas : 0);
		print_degraded();
		/* The loop's own CPU (user + system, from the first send to the last answer
		 * waited for): what the load generator took from cores it shares with the
		 * gateway; the model load and reference tails before it are not counted. */
		printf("prebuilt %d\nloop_cpu_s %.3f\ncpu_us_per_answer %.1f\n"
		       "sendmmsg_calls %llu\nrecvmmsg_calls %llu\n", pb.on,
		       (double)(cpu1 - cpu0) / 1e9,
		       ols.answered ? (double)(cpu1 - cpu0) / 1e3 / (double)ols.answered : 0,
		       (unsigned long long)pb.sendmmsg_calls, (unsigned long long)pb.recvmmsg_calls);
	}
	pb_free();
	for (unsigned c = 0; c < o.clients; c++)
		free(ol[c]);
	return ols.lost == 0 && st.mismatch == 0 ? 0 : 1;
}

static void
print_summary(unsigned n_probes, unsigned probes_ok)
{
	printf("tensors %u\nrequests %llu\nstarted %llu\nsent %llu\nok %llu\nmismatch %llu\n"
	       "close %llu\nfailed %llu\nlost %llu\noverloaded_retries %llu\nnacks %llu\n"
	       "resent %llu\ntx_dgrams %llu\nrx_bad %llu\nbatch_max %llu\nbatched %llu\n"
	       "sessions %llu\noverloaded_final %llu\nearly_exits %llu\n",
	       n_tens, (unsigned long long)o.requests, (unsigned long long)st.started,
	       (unsigned long long)o.sent_total, (unsigned long long)st.ok,
	       (unsigned long long)st.mismatch, (unsigned long long)st.close,
	       (unsigned long long)st.failed, (unsigned long long)st.lost,
	       (unsigned long long)st.overloaded, (unsigned long long)st.nacks,
	       (unsigned long long)st.resent, (unsigned long long)st.tx,
	       (unsigned long long)st.rx_bad, (unsigned long long)st.batch_max,
	       (unsigned long long)st.batched, (unsigned long long)st.sessions,
	       (unsigned long long)st.overloaded_final, (unsigned long long)st.early_exits);
	printf("probes %u\nprobes_ok %u\npendings %llu\n", n_probes, probes_ok,
	       (unsigned long long)st.pendings);
	printf("answers_again %llu\nanswers_differ %llu\n", (unsigned long long)st.again,
	       (unsigned long long)st.differ);
	printf("ok_split0_f32 %llu\nok_split0_u8 %llu\nok_mid_f32 %llu\nok_mid_u8 %llu\n",
	       (unsigned long long)st.by_kind[0], (unsigned long long)st.by_kind[1],
	       (unsigned long long)st.by_kind[2], (unsigned long long)st.by_kind[3]);
	for (unsigned k = 0; k < fm.n_splits; k++)
		for (unsigned d = 0; d < fm.n_dtypes; d++)
			printf("ok_s%u_%s %llu\n", fm.splits[k], dtype_name(fm.dtypes[d]),
			       (unsigned long long)st.by_sd[k][fm.dtypes[d]]);
	for (unsigned d = 0; d < fm.n_dtypes; d++) {
		unsigned dt = fm.dtypes[d];

		if (st.labelled[dt])
			printf("accuracy_%s %.4f\n", dtype_name(dt),
			       (double)st.correct[dt] / (double)st.labelled[dt]);
	}
	if (fm.m != NULL)
		printf("engine_head_batches %llu\nengine_tail_batches %llu\n",
		       (unsigned long long)fm.heads, (unsigned long long)fm.tails);
	if (fm.off_n > 0) {	/* every answer vs the labels, and the offline classes' */
		uint64_t c = 0, n = 0;

		for (unsigned d = 0; d < PROTO_DT__COUNT; d++)
			c += st.correct[d], n += st.labelled[d];
		printf("accuracy_all %.4f\noffline_accuracy %.4f\n", n ? (double)c / (double)n : 0,
		       (double)fm.off_correct / (double)fm.off_n);
	}
	for (unsigned s = 0; s < PROTO_ST__COUNT; s++)
		printf("status_%s %llu\n", proto_status_name(s), (unsigned long long)st.by_status[s]);
	for (unsigned a = 0; a < 256; a++)
		if (advice_by_split[a])
			printf("advice_split_%u %llu\n", a, (unsigned long long)advice_by_split[a]);
	printf("advice_none %llu\n", (unsigned long long)advice_by_split[256]);
	print_degraded();
	for (unsigned a = 0; a < 256; a++)
		if (advice_by_variant[a])
			printf("advice_variant_%u %llu\n", a,
			       (unsigned long long)advice_by_variant[a]);
	printf("advice_none_fits %llu\n", (unsigned long long)advice_none_fits);
	printf("advice_no_early_exit %llu\n", (unsigned long long)advice_no_exit);
}

int
main(int argc, char **argv)
{
	const char *model = NULL, *input = NULL, *ids = NULL, *fmnist = NULL, *calib = NULL;
	unsigned samples = 32, split = 0, time_limit = 60, bad = 0, n_probes = 0, probes_ok = 0;
	unsigned client_base = 1000, images = 10000, block = 512, closed = 0, drain_ms = 3000;
	double rate = 0, duration = 0, warmup = 0;
	struct tg_err err = { 0 };
	uint64_t t_end;
	bool all_ok;

	if (argc < 2) {
		fprintf(stderr, "gw_client: a helper of tests/gateway_*.sh, not a test\n");
		printf("0 passed, 0 failed, 0 skipped\n");
		return 0;
	}
	/* First: a script may signal "stop sending" while the model still loads. */
	signal(SIGUSR1, ol_on_usr1);
	o.gw = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(PROTO_PORT) };
	o.requests = 2000;
	o.clients = 4;
	o.window = 4;
	/* A request that heard nothing this long is lost: far above any deadline the tests
	 * give (10 s at most), as a busy machine or a model reload may hold answers back for
	 * seconds; only a datagram the machine really lost should end up here. */
	o.timeout_ms = 30000;
	o.model_id = 1;
	o.top_k = 3;
	fm.n_splits = 4;
	memcpy(fm.splits, (uint8_t[]){ 0, 4, 6, 8 }, 4);
	fm.n_dtypes = 4;
	memcpy(fm.dtypes, (uint8_t[]){ PROTO_DT_F32, PROTO_DT_F16, PROTO_DT_S8, PROTO_DT_U8 }, 4);
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		unsigned u = (unsigned)strtoul(v, NULL, 10);
		int n;

		if (strcmp(k, "--gw") == 0) {
			if (inet_pton(AF_INET, v, &o.gw.sin_addr) != 1)
				return 2;
		} else if (strcmp(k, "--port") == 0) {
			o.gw.sin_port = htons((uint16_t)u);
		} else if (strcmp(k, "--model") == 0) {
			model = v;
		} else if (strcmp(k, "--input") == 0) {
			input = v;
		} else if (strcmp(k, "--model-id") == 0) {
			o.model_id = u;
		} else if (strcmp(k, "--variant") == 0) {
			if (u > 254)
				return 2;
			o.variant = u;
		} else if (strcmp(k, "--split") == 0) {
			split = u;
		} else if (strcmp(k, "--requests") == 0) {
			o.requests = u;
		} else if (strcmp(k, "--clients") == 0) {
			o.clients = u;
		} else if (strcmp(k, "--window") == 0) {
			o.window = u;
		} else if (strcmp(k, "--samples") == 0) {
			samples = u;
		} else if (strcmp(k, "--seed") == 0) {
			rng = u ? u : 1;
		} else if (strcmp(k, "--time-limit") == 0) {
			time_limit = u;
		} else if (strcmp(k, "--timeout-ms") == 0) {
			o.timeout_ms = u;
		} else if (strcmp(k, "--top-k") == 0) {
			o.top_k = u;
		} else if (strcmp(k, "--no-retry") == 0) {
			o.no_retry = u != 0;
		} else if (strcmp(k, "--client-base") == 0) {
			client_base = u;
		} else if (strcmp(k, "--probes") == 0) {
			bad = u;
		} else if (strcmp(k, "--ids") == 0) {
			ids = v;
		} else if (strcmp(k, "--fmnist") == 0) {
			fmnist = v;
		} else if (strcmp(k, "--calib") == 0) {
			calib = v;
		} else if (strcmp(k, "--images") == 0) {
			images = u;
		} else if (strcmp(k, "--block") == 0) {
			block = u;
		} else if (strcmp(k, "--splits") == 0) {
			if ((n = parse_list(v, fm.splits, 4, false)) <= 0)
				return 2;
			fm.n_splits = (unsigned)n;
		} else if (strcmp(k, "--dtypes") == 0) {
			if ((n = parse_list(v, fm.dtypes, 4, true)) <= 0)
				return 2;
			fm.n_dtypes = (unsigned)n;
		} else if (strcmp(k, "--profile") == 0) {
			/* MFLOP/s, kbit/s, RTT us, SLO us, accuracy floor (1/100 %)[, uJ per
			 * MFLOP, pJ per bit, goal]: the energy profile (docs/protocol.md 4.1) */
			int f = sscanf(v, "%u,%u,%u,%u,%hu,%u,%u,%hhu", &prof.compute_mflops,
				       &prof.uplink_kbps, &prof.rtt_us, &prof.slo_us,
				       &prof.accuracy_floor_bp, &prof.head_uj_per_mflop,
				       &prof.tx_pj_per_bit, &prof.goal);

			if (f != 5 && f != 8)
				return 2;
		} else if (strcmp(k, "--flags") == 0) {
			o.flags = u;
		} else if (strcmp(k, "--deadline-us") == 0) {
			o.deadline_us = u;
		} else if (strcmp(k, "--rate") == 0) {
			rate = strtod(v, NULL);
		} else if (strcmp(k, "--closed") == 0) {
			closed = u;
		} else if (strcmp(k, "--duration") == 0) {
			duration = strtod(v, NULL);
		} else if (strcmp(k, "--warmup") == 0) {
			warmup = strtod(v, NULL);
		} else if (strcmp(k, "--drain-ms") == 0) {
			drain_ms = u;
		} else if (strcmp(k, "--prebuilt") == 0) {
			pb.on = u != 0;
		} else {
			fprintf(stderr, "gw_client: unknown option %s\n", k);
			return 2;
		}
	}
	if (model == NULL || o.gw.sin_addr.s_addr == 0 || o.clients == 0 ||
	    o.clients > MAX_CLIENTS || o.window == 0 || o.window > MAX_WINDOW || samples == 0 ||
	    samples > MAX_SAMPLES || o.requests == 0 || o.top_k == 0 || o.top_k > 16 ||
	    block == 0 || block > MAX_TENS || images == 0 || (calib != NULL && fmnist == NULL) ||
	    ((rate > 0 || closed > 0) && (duration <= 0 || fmnist == NULL || o.deadline_us == 0)) ||
	    (pb.on && rate <= 0 && closed == 0)) {
		fprintf(stderr, "gw_client: bad arguments\n");
		return 2;
	}
	mid_split = (uint8_t)split;
	kern_set_threads(1);
	{
		struct kern_model *m = NULL;
		struct kern_model_info info;

		if (kern_model_load(model, NULL, &m, &err) < 0) {
			fprintf(stderr, "gw_client: %s\n", err.msg);
			return 1;
		}
		kern_model_get_info(m, &info);
		for (unsigned x = 0; x < info.n_outputs; x++)
			if (strcmp(kern_model_output(m, x)->name, final_name(m)) == 0)
				o.final_out = (int)x;
		kern_model_free(m);
	}
	if (fmnist != NULL) {
		if (fm_open(model, strcmp(fmnist, "default") == 0 ? NULL : fmnist, calib, images,
			    &err) < 0) {
			fprintf(stderr, "gw_client: %s\n", err.msg);
			return 1;
		}
		if (images > fm.ds.n)
			images = (unsigned)fm.ds.n;
		o.requests = images;
	} else if (build_tensors(model, input, split, samples, &err) < 0) {
		fprintf(stderr, "gw_client: %s\n", err.msg);
		return 1;
	}
	if (ids != NULL && (ids_f = fopen(ids, "w")) == NULL) {
		perror("gw_client: --ids");
		return 1;
	}
	memset(cl, 0, sizeof(cl));
	for (unsigned c = 0; c < o.clients; c++) {
		cl[c].fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (cl[c].fd < 0) {
			perror("gw_client: socket");
			return 1;
		}
		{
			/* The open loop's answers arrive in bursts, thousands at once after a
			 * stall (a reload, a busy machine): 4 MB held only ~4,000 of them (each
			 * costs a kernel buffer of ~1 KB), and the rest were dropped by this
			 * socket, not lost by the gateway. 64 MB, past rmem_max when root. */
			int sz = 64 << 20;

			if (setsockopt(cl[c].fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
				setsockopt(cl[c].fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		}
		cl[c].id = client_base + c;
		if (hello(&cl[c], &o.gw) < 0)
			return 1;
	}
	if (rate > 0 || closed > 0) {
		int rc;

		if (fm_block(0, block < images ? block : images, &err) < 0) {
			fprintf(stderr, "gw_client: %s\n", err.msg);
			return 1;
		}
		rc = run_open(rate, closed, duration, warmup, drain_ms);
		if (ids_f != NULL)
			fclose(ids_f);
		for (unsigned c = 0; c < o.clients; c++)
			close(cl[c].fd);
		for (unsigned i = 0; i < n_tens; i++)
			free(tens[i].raw);
		fm_close();
		return rc;
	}
	if (bad)
		n_probes = probes(&cl[0], &o.gw, o.model_id, &probes_ok);

	t_end = now_ns() + (uint64_t)time_limit * 1000000000ull;
	if (fmnist != NULL) {
		/* Block by block: build (heads and reference tails batched), then send it all. */
		for (size_t first = 0; first < images && now_ns() < t_end; first += block) {
			size_t n = images - first < block ? images - first : block;

			o.tens_base = st.started;
			o.requests = st.started + n;
			if (fm_block(first, n, &err) < 0) {
				fprintf(stderr, "gw_client: %s\n", err.msg);
				return 1;
			}
			if (run_window(t_end) < 0)
				return 1;
		}
		o.requests = images;
	} else if (run_window(t_end) < 0) {
		return 1;
	}
	for (unsigned c = 0; c < o.clients; c++) {
		for (unsigned s = 0; s < o.window; s++)
			st.lost += cl[c].req[s].active;
		close(cl[c].fd);
	}
	if (ids_f != NULL)
		fclose(ids_f);
	print_summary(n_probes, probes_ok);
	all_ok = st.ok + st.overloaded_final == o.requests && st.mismatch == 0 && st.failed == 0 &&
		 st.lost == 0 && probes_ok == n_probes;
	for (unsigned i = 0; i < n_tens; i++)
		free(tens[i].raw);
	fm_close();
	return all_ok ? 0 : 1;
}
