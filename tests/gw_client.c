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
 * (unknown model, split or variant; a tensor not the split's; a full tensor wanted) and
 * checks each status and reason.
 * Run without arguments it only says what it is for: a helper, not a test.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "kernels/kernels.h"
#include "proto/proto.h"
#include "util/util.h"

enum {
	MAX_DGRAM = PROTO_DEFAULT_DGRAM,
	MAX_CLIENTS = 16,
	MAX_WINDOW = 32,
	MAX_CHUNKS = 64,
	MAX_SAMPLES = 256,
	N_KINDS = 4,			/* (split 0 | mid) x (f32 | u8) */
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

struct client {
	int fd;
	uint32_t id;
	uint64_t session;
	uint32_t next_id;
	struct req req[MAX_WINDOW];
	unsigned inflight;
};

static struct {
	uint64_t started, ok, mismatch, close, failed, lost, overloaded, nacks, resent, tx, rx_bad;
	uint64_t by_status[PROTO_ST__COUNT], by_kind[N_KINDS], batch_max, batched, sessions;
	uint64_t overloaded_final;	/* --no-retry: OVERLOADED taken as the answer */
} st;

static struct tensor tens[MAX_SAMPLES * N_KINDS];
static unsigned n_tens;
static uint32_t rng = 1;
static FILE *ids_f;
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

/* HELLO for a session; a gateway that does not answer HELLO yet takes session 0. */
static void
hello(struct client *c, const struct sockaddr_in *gw)
{
	uint8_t buf[PROTO_HELLO_MIN_DGRAM], in[2048];
	struct proto_hdr h = { .client_id = c->id };
	struct proto_hello m = { .max_dgram = MAX_DGRAM };
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	struct proto_msg msg;
	int n;

	n = proto_encode_hello(buf, sizeof(buf), &h, &m, sizeof(buf));
	if (n < 0)
		return;
	for (int tries = 0; tries < 3; tries++) {
		sendto(c->fd, buf, (size_t)n, 0, (const struct sockaddr *)gw, sizeof(*gw));
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		ssize_t k = recv(c->fd, in, sizeof(in), 0);

		if (k > 0 && proto_decode(in, (size_t)k, NULL, &msg, NULL) == PROTO_OK &&
		    msg.h.type == PROTO_T_HELLO_REPLY) {
			c->session = msg.h.session_id;
			st.sessions++;
			return;
		}
	}
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

/* Every refusal the gateway makes before the scheduler, once each. */
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
	P("variant not served", (uint16_t)model_id, 1, 0, in, NULL, 0, PROTO_ST_UNKNOWN_SPLIT,
	  PROTO_OK);
	P("input tensor at a later split", (uint16_t)model_id, 0, mid_split, in, NULL, 0,
	  PROTO_ST_BAD_REQUEST, PROTO_E_MODEL_SHAPE);
	P("input in another shape", (uint16_t)model_id, 0, 0, in, wrong_dims, 0,
	  PROTO_ST_BAD_REQUEST, PROTO_E_MODEL_SHAPE);
	P("full tensor wanted", (uint16_t)model_id, 0, 0, in, NULL, PROTO_RF_WANT_TENSOR,
	  PROTO_ST_BAD_REQUEST, PROTO_E_BAD_FIELD);
#undef P
	return n;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in gw = { .sin_family = AF_INET, .sin_port = htons(PROTO_PORT) };
	const char *model = NULL, *input = NULL, *ids = NULL;
	unsigned requests = 2000, clients = 4, window = 4, samples = 32, split = 0, top_k = 3;
	unsigned time_limit = 60, timeout_ms = 3000, model_id = 1, bad = 0, n_probes = 0;
	unsigned probes_ok = 0, client_base = 1000;
	bool no_retry = false;
	static struct client cl[MAX_CLIENTS];	/* 48 MB of datagrams: not the stack */
	struct tg_err err = { 0 };
	uint64_t t_end, sent_total = 0;
	bool all_ok;

	if (argc < 2) {
		fprintf(stderr, "gw_client: a helper of tests/gateway_serve.sh, not a test\n");
		printf("0 passed, 0 failed, 0 skipped\n");
		return 0;
	}
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		unsigned u = (unsigned)strtoul(v, NULL, 10);

		if (strcmp(k, "--gw") == 0) {
			if (inet_pton(AF_INET, v, &gw.sin_addr) != 1)
				return 2;
		} else if (strcmp(k, "--port") == 0) {
			gw.sin_port = htons((uint16_t)u);
		} else if (strcmp(k, "--model") == 0) {
			model = v;
		} else if (strcmp(k, "--input") == 0) {
			input = v;
		} else if (strcmp(k, "--model-id") == 0) {
			model_id = u;
		} else if (strcmp(k, "--split") == 0) {
			split = u;
		} else if (strcmp(k, "--requests") == 0) {
			requests = u;
		} else if (strcmp(k, "--clients") == 0) {
			clients = u;
		} else if (strcmp(k, "--window") == 0) {
			window = u;
		} else if (strcmp(k, "--samples") == 0) {
			samples = u;
		} else if (strcmp(k, "--seed") == 0) {
			rng = u ? u : 1;
		} else if (strcmp(k, "--time-limit") == 0) {
			time_limit = u;
		} else if (strcmp(k, "--timeout-ms") == 0) {
			timeout_ms = u;
		} else if (strcmp(k, "--top-k") == 0) {
			top_k = u;
		} else if (strcmp(k, "--no-retry") == 0) {
			no_retry = u != 0;
		} else if (strcmp(k, "--client-base") == 0) {
			client_base = u;
		} else if (strcmp(k, "--probes") == 0) {
			bad = u;
		} else if (strcmp(k, "--ids") == 0) {
			ids = v;
		} else {
			fprintf(stderr, "gw_client: unknown option %s\n", k);
			return 2;
		}
	}
	if (model == NULL || gw.sin_addr.s_addr == 0 || clients == 0 || clients > MAX_CLIENTS ||
	    window == 0 || window > MAX_WINDOW || samples == 0 || samples > MAX_SAMPLES ||
	    requests == 0 || top_k == 0 || top_k > 16) {
		fprintf(stderr, "gw_client: bad arguments\n");
		return 2;
	}
	mid_split = (uint8_t)split;
	kern_set_threads(1);
	if (build_tensors(model, input, split, samples, &err) < 0) {
		fprintf(stderr, "gw_client: %s\n", err.msg);
		return 1;
	}
	if (ids != NULL && (ids_f = fopen(ids, "w")) == NULL) {
		perror("gw_client: --ids");
		return 1;
	}
	memset(cl, 0, sizeof(cl));
	for (unsigned c = 0; c < clients; c++) {
		struct timeval tv = { 0, 0 };

		cl[c].fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (cl[c].fd < 0) {
			perror("gw_client: socket");
			return 1;
		}
		setsockopt(cl[c].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		cl[c].id = client_base + c;
		hello(&cl[c], &gw);
	}
	if (bad)
		n_probes = probes(&cl[0], &gw, model_id, &probes_ok);

	t_end = now_ns() + (uint64_t)time_limit * 1000000000ull;
	while (now_ns() < t_end) {
		uint64_t now = now_ns();
		struct pollfd pfd[MAX_CLIENTS];
		bool busy = false;

		for (unsigned c = 0; c < clients; c++) {
			struct client *k = &cl[c];

			for (unsigned s = 0; s < window; s++) {
				struct req *r = &k->req[s];

				if (r->active && r->retry_at == 0 &&
				    now - r->t_activity > (uint64_t)timeout_ms * 1000000ull) {
					st.lost++;	/* nothing heard: counted, never retried */
					r->active = false;
					k->inflight--;
				}
				if (!r->active && r->retry_at == 0 && st.started < requests) {
					r->tensor = (unsigned)(st.started % n_tens);
					r->t_start = now;
					r->retry_at = 1;	/* send now */
					r->active = true;
					k->inflight++;
					st.started++;
				}
				if (r->active && r->retry_at != 0 && r->retry_at <= now) {
					struct tensor *t = &tens[r->tensor];
					struct proto_hdr h = { .client_id = k->id,
							       .request_id = ++k->next_id,
							       .session_id = k->session };
					struct proto_request rq;

					memset(&rq, 0, sizeof(rq));
					rq.c.model_id = (uint16_t)model_id;
					rq.c.split_id = t->split;
					rq.c.t = t->t;
					rq.top_k = (uint8_t)top_k;
					rq.deadline_us = (k->next_id & 1) ? 2000000 : 0;
					if (proto_request_chunk(&h, &rq, t->raw, MAX_DGRAM, true, r->out,
								sizeof(r->out), r->dg, MAX_CHUNKS,
								&r->n) != 0) {
						fprintf(stderr, "gw_client: chunking failed\n");
						return 1;
					}
					r->id = k->next_id;
					r->retry_at = 0;
					r->t_activity = now;
					for (unsigned i = 0; i < r->n; i++) {
						if (sendto(k->fd, r->dg[i].data, r->dg[i].len, 0,
							   (struct sockaddr *)&gw, sizeof(gw)) > 0)
							st.tx++;
					}
					sent_total++;
				}
				busy |= r->active;
			}
		}
		if (!busy && st.started >= requests)
			break;
		for (unsigned c = 0; c < clients; c++)
			pfd[c] = (struct pollfd){ .fd = cl[c].fd, .events = POLLIN };
		if (poll(pfd, clients, 5) <= 0)
			continue;
		for (unsigned c = 0; c < clients; c++) {
			struct client *k = &cl[c];
			uint8_t buf[2048];
			ssize_t n;

			while ((n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
				struct proto_msg m;
				struct req *r = NULL;

				now = now_ns();
				if (proto_decode(buf, (size_t)n, NULL, &m, NULL) != PROTO_OK ||
				    m.h.client_id != k->id) {
					st.rx_bad++;
					continue;
				}
				for (unsigned s = 0; s < window; s++)
					if (k->req[s].active && k->req[s].retry_at == 0 &&
					    k->req[s].id == m.h.request_id)
						r = &k->req[s];
				if (r == NULL)
					continue;	/* stale: a NACK crossing the last chunk */
				r->t_activity = now;
				if (m.h.type == PROTO_T_NACK) {
					st.nacks++;
					for (unsigned i = 0; i < m.u.nack.n_ranges; i++)
						for (unsigned j = m.u.nack.ranges[i].first;
						     j < (unsigned)m.u.nack.ranges[i].first +
							 m.u.nack.ranges[i].count && j < r->n; j++) {
							sendto(k->fd, r->dg[j].data, r->dg[j].len, 0,
							       (struct sockaddr *)&gw, sizeof(gw));
							st.resent++;
						}
					continue;
				}
				if (m.h.type == PROTO_T_ERROR || (m.h.type == PROTO_T_RESPONSE &&
				    m.u.resp.status == PROTO_ST_OVERLOADED)) {
					unsigned s = m.h.type == PROTO_T_ERROR ? m.u.error.status
									       : m.u.resp.status;

					if (s == PROTO_ST_OVERLOADED && no_retry) {
						/* the answer of a gateway shedding or draining */
						st.overloaded_final++;
						/* and start nothing new: a device backing off */
						requests = (unsigned)st.started;
						if (ids_f != NULL && m.h.type == PROTO_T_RESPONSE)
							fprintf(ids_f, "%u %u\n", k->id, r->id);
						r->active = false;
						k->inflight--;
						continue;
					}
					if (s == PROTO_ST_OVERLOADED) {	/* back off, new id */
						st.overloaded++;
						r->retry_at = now + 5000000ull;
						continue;
					}
					if (s < PROTO_ST__COUNT)
						st.by_status[s]++;
					st.failed++;
					fprintf(stderr, "gw_client: request %u: ERROR %s\n", r->id,
						proto_status_name(s));
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
				if (ids_f != NULL)
					fprintf(ids_f, "%u %u\n", k->id, r->id);
				if (m.u.resp.status != PROTO_ST_OK ||
				    m.u.resp.result_kind != PROTO_RES_TOPK || m.u.resp.top_k == 0) {
					st.failed++;
					fprintf(stderr, "gw_client: request %u: %s/%s\n", r->id,
						proto_status_name(m.u.resp.status),
						proto_reason_name(m.u.resp.reason));
				} else {
					struct proto_topk e;
					struct tensor *t = &tens[r->tensor];

					proto_topk_get(&m.u.resp, 0, &e);
					st.ok++;
					st.by_kind[(t->split != 0) * 2 + (t->dtype != PROTO_DT_F32)]++;
					if (e.class_id != t->expect) {
						if (t->near_tie) {
							st.close++;
						} else {
							st.mismatch++;
							fprintf(stderr, "gw_client: request %u (split %u "
								"%s): class %u, expected %u\n", r->id,
								t->split, t->dtype == PROTO_DT_F32 ?
								"f32" : "u8", e.class_id, t->expect);
						}
					}
					if (m.u.resp.batch_size > st.batch_max)
						st.batch_max = m.u.resp.batch_size;
					st.batched += m.u.resp.batch_size > 1;
				}
				r->active = false;
				k->inflight--;
			}
		}
	}
	for (unsigned c = 0; c < clients; c++) {
		for (unsigned s = 0; s < window; s++)
			st.lost += cl[c].req[s].active;
		close(cl[c].fd);
	}
	if (ids_f != NULL)
		fclose(ids_f);
	printf("tensors %u\nrequests %u\nstarted %llu\nsent %llu\nok %llu\nmismatch %llu\n"
	       "close %llu\nfailed %llu\nlost %llu\noverloaded_retries %llu\nnacks %llu\n"
	       "resent %llu\ntx_dgrams %llu\nrx_bad %llu\nbatch_max %llu\nbatched %llu\n"
	       "sessions %llu\noverloaded_final %llu\n",
	       n_tens, requests, (unsigned long long)st.started, (unsigned long long)sent_total,
	       (unsigned long long)st.ok, (unsigned long long)st.mismatch,
	       (unsigned long long)st.close, (unsigned long long)st.failed,
	       (unsigned long long)st.lost, (unsigned long long)st.overloaded,
	       (unsigned long long)st.nacks, (unsigned long long)st.resent,
	       (unsigned long long)st.tx, (unsigned long long)st.rx_bad,
	       (unsigned long long)st.batch_max, (unsigned long long)st.batched,
	       (unsigned long long)st.sessions, (unsigned long long)st.overloaded_final);
	printf("probes %u\nprobes_ok %u\n", n_probes, probes_ok);
	printf("ok_split0_f32 %llu\nok_split0_u8 %llu\nok_mid_f32 %llu\nok_mid_u8 %llu\n",
	       (unsigned long long)st.by_kind[0], (unsigned long long)st.by_kind[1],
	       (unsigned long long)st.by_kind[2], (unsigned long long)st.by_kind[3]);
	for (unsigned s = 0; s < PROTO_ST__COUNT; s++)
		if (st.by_status[s])
			printf("status_%s %llu\n", proto_status_name(s),
			       (unsigned long long)st.by_status[s]);
	all_ok = st.ok + st.overloaded_final == requests && st.mismatch == 0 && st.failed == 0 &&
		 st.lost == 0 && probes_ok == n_probes;
	return all_ok ? 0 : 1;
}
