/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hot path does not allocate (STYLE.md): this program replaces malloc and friends with
 * counting wrappers around glibc's, sets up a dataplane on a ring port (which allocates, as
 * init may), then counts while every hot-path branch runs: HELLO, chunks in and out of
 * order, duplicates, a NACK after a gap, a late chunk answered again, echo on the lcore,
 * a consumer's TOPK answer through the response ring, TENSOR answers chunked, NACKed and
 * resent, refusals with ERRORs, ARP and ICMP.
 * Zero allocations allowed. Then it fails dp_create()'s allocations one by one. Under
 * AddressSanitizer (which owns malloc) both are counted skips.
 */
#include "tests/harness.h"
#include "dataplane/dp_testkit.h"

#include <errno.h>
#include <stdlib.h>

#include <rte_malloc.h>
#include <time.h>

static volatile int counting;
static volatile unsigned long n_alloc;
static volatile long fail_at;		/* > 0: the fail_at-th allocation from now fails */
static volatile long live;		/* allocations not freed yet */


#if defined(__SANITIZE_ADDRESS__)
#define NOMALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NOMALLOC_ASAN 1
#endif
#endif

#ifndef NOMALLOC_ASAN
/* Count one allocation; @return false when it is the one to fail. */
static bool
alloc_ok(void)
{
	n_alloc += counting;
	return fail_at <= 0 || --fail_at != 0;
}

static void *
track(void *p)
{
	live += p != NULL;
	return p;
}

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

void *
malloc(size_t n)
{
	return alloc_ok() ? track(__libc_malloc(n)) : NULL;
}

void *
calloc(size_t n, size_t size)
{
	return alloc_ok() ? track(__libc_calloc(n, size)) : NULL;
}

void *
realloc(void *p, size_t n)
{
	void *q;

	if (!alloc_ok())
		return NULL;
	q = __libc_realloc(p, n);
	live += (p == NULL && q != NULL) - (p != NULL && n == 0);
	return q;
}

void *
aligned_alloc(size_t align, size_t n)
{
	return alloc_ok() ? track(__libc_memalign(align, n)) : NULL;
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	*out = alloc_ok() ? track(__libc_memalign(align, n)) : NULL;
	return *out != NULL ? 0 : ENOMEM;
}

void
free(void *p)
{
	live -= p != NULL;
	__libc_free(p);
}
#endif

enum { GW_PORT = PROTO_PORT, MAX_DGRAM = 1472, RAW = 12000, MAX_CHUNKS = 16 };

static struct dptk_port port;
static struct dp *dp;
static uint8_t out[RAW + MAX_CHUNKS * PROTO_REQUEST_LEN + 2048], raw[RAW], rbuf[2048];
static struct proto_dgram dg[MAX_CHUNKS];
static uint16_t last_count;	/* chunk count of the last RESPONSE drain() saw */

static void
pump(void)
{
	dp_poll(dp, 0);
	dp_flush(dp, 0);
}

/* Drain what the dataplane sent; count datagrams of type t (0: any frame). */
static unsigned
drain(unsigned t)
{
	struct proto_msg m;
	unsigned n = 0;
	int k;

	while (dptk_tx_count(&port) != 0) {
		k = dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL);
		if (t == 0 || (k > 0 && proto_decode(rbuf, (size_t)k, NULL, &m, NULL) == PROTO_OK &&
			       m.h.type == t))
			n++;
		if (k > 0 && t == PROTO_T_RESPONSE && n > 0)
			last_count = m.u.resp.c.count;
	}
	return n;
}

static void
test_hot_path_allocates_nothing(void)
{
	struct proto_hdr h = { .client_id = 7, .request_id = 1 };
	struct proto_hello hello = { .max_dgram = MAX_DGRAM };
	struct proto_topk top = { 1, 0.5f };
	struct timespec gap = { 0, 3000000 };
	struct dp_req *req;
	struct proto_request rq;
	struct proto_msg r;
	uint8_t frame[DPTK_MAX_FRAME];
	unsigned n, answers = 0, i, k;
	int len;

#ifdef NOMALLOC_ASAN
	TH_SKIP("AddressSanitizer replaces malloc; run without SAN=1");
	return;
#endif
	for (i = 0; i < RAW; i++)
		raw[i] = (uint8_t)(i * 7 + i / 100);
	counting = 1;
	/* HELLO: a session. */
	len = proto_encode_hello(out, sizeof(out), &h, &hello, PROTO_HELLO_MIN_DGRAM);
	TH_CHECK(len > 0 && dptk_send(&port, 40000, GW_PORT, out, (size_t)len) == 0);
	pump();
	len = dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL);
	TH_CHECK(len > 0 && proto_decode(rbuf, (size_t)len, NULL, &r, NULL) == PROTO_OK &&
		 r.h.type == PROTO_T_HELLO_REPLY);
	h.session_id = r.h.session_id;
	/* ARP and ping. */
	n = dptk_udp_frame(frame, port.mac, DPTK_CL_IP, DPTK_GW_IP, 40000, GW_PORT, "x", 1);
	frame[12] = 0x08;
	frame[13] = 0x06;	/* not a valid ARP: a counted drop is hot path too */
	TH_CHECK(dptk_inject(&port, frame, n) == 0);
	pump();
	/* 100 requests: echo and consumer models, chunks reversed every other time, one
	 * duplicate each, every tenth missing a chunk until its NACK. */
	for (k = 0; k < 100; k++) {
		bool echo = k % 3 != 0, hole = k % 10 == 5;

		memset(&rq, 0, sizeof(rq));
		h.request_id = 100 + k;
		rq.c.model_id = echo ? PROTO_MODEL_ECHO : 9;
		rq.c.t.dtype = PROTO_DT_RAW;
		rq.c.t.raw_total = RAW - k;
		rq.c.t.scale = 1.0f;
		TH_CHECK(proto_request_chunk(&h, &rq, raw, MAX_DGRAM, k % 2 == 0, out, sizeof(out),
					     dg, MAX_CHUNKS, &n) == 0);
		for (i = 0; i < n; i++) {
			unsigned j = k % 2 ? i : n - 1 - i;

			if (hole && j == 1)
				continue;
			TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[j].data, dg[j].len) == 0);
			if (i == 0)
				TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[j].data, dg[j].len) == 0);
		}
		pump();
		if (hole) {
			nanosleep(&gap, NULL);
			pump();
			TH_CHECK(drain(PROTO_T_NACK) == 1);
			TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[1].data, dg[1].len) == 0);
			pump();
		}
		if (!echo) {
			TH_CHECK(dp_req_dequeue_burst(dp, &req, 1) == 1);
			TH_CHECK(proto_response_set_topk(&req->resp, req->topk, &top, 1) == 0);
			dp_req_respond(req);
			pump();
		}
		answers += drain(PROTO_T_RESPONSE);
		if (k == 50) {	/* a late chunk, a gap on: the kept answer again */
			nanosleep(&gap, NULL);
			TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[0].data, dg[0].len) == 0);
			pump();
			TH_CHECK(drain(PROTO_T_RESPONSE) == 1);
		}
	}
	/* TENSOR answers: echo with WANT_TENSOR, chunked into the keep ring; then a device
	 * NACK of one chunk and a duplicate of the request, a gap apart. */
	for (k = 0; k < 10; k++) {
		memset(&rq, 0, sizeof(rq));
		h.request_id = 300 + k;
		rq.c.model_id = PROTO_MODEL_ECHO;
		rq.flags = PROTO_RF_WANT_TENSOR;
		rq.c.t.dtype = PROTO_DT_RAW;
		rq.c.t.raw_total = RAW - k;
		rq.c.t.scale = 1.0f;
		TH_CHECK(proto_request_chunk(&h, &rq, raw, MAX_DGRAM, k % 2 == 0, out, sizeof(out),
					     dg, MAX_CHUNKS, &n) == 0);
		for (i = 0; i < n; i++)
			TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[i].data, dg[i].len) == 0);
		pump();
		TH_CHECK(drain(PROTO_T_RESPONSE) > 1);
	}
	nanosleep(&gap, NULL);
	{
		struct proto_nack nk = { .chunk_count = 1, .n_ranges = 1, .ranges = { { 0, 1 } } };
		uint8_t nb[64];

		nk.chunk_count = last_count;	/* request 309's answer */
		len = proto_encode_nack(nb, sizeof(nb), &h, &nk);
		TH_CHECK(len > 0 && dptk_send(&port, 40000, GW_PORT, nb, (size_t)len) == 0);
		pump();
		TH_CHECK(drain(PROTO_T_RESPONSE) == 1);
	}
	nanosleep(&gap, NULL);
	TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[0].data, dg[0].len) == 0);
	pump();
	TH_CHECK(drain(PROTO_T_RESPONSE) > 1);
	/* Refusals: a truncated chunk (ERROR), an unknown session (ERROR). */
	TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[0].data, dg[0].len - 3) == 0);
	out[PROTO_OFF_SESSION_ID] ^= 1;
	TH_CHECK(dptk_send(&port, 40000, GW_PORT, dg[0].data, dg[0].len) == 0);
	pump();
	TH_CHECK(drain(PROTO_T_ERROR) == 2);
	counting = 0;
	TH_CHECK(answers == 100);
	TH_CHECK_MSG(n_alloc == 0, "%lu allocations on the hot path", n_alloc);
}

/*
 * Walk dp_create()'s exit paths (STYLE.md): fail its Nth allocation, N = 1, 2, ... until it
 * succeeds; each failure must return -errno with words, and give back exactly what it took:
 * libc allocations and EAL heap bytes (rte_malloc, rings, hashes, pools).
 */
static size_t
eal_heap_used(void)
{
	struct rte_malloc_socket_stats st;
	size_t used = 0;

	for (int s = 0; s < RTE_MAX_NUMA_NODES; s++)
		if (rte_malloc_get_socket_stats(s, &st) == 0)
			used += st.heap_allocsz_bytes;
	return used;
}

static void
test_init_failures_release_everything(void)
{
	struct dp_config cfg;
	struct tg_err err;
	struct dptk_port p;
	struct dp *d;
	long n, before;
	size_t heap;
	int rc = -1;

#ifdef NOMALLOC_ASAN
	TH_SKIP("AddressSanitizer replaces malloc; run without SAN=1");
	return;
#endif
	for (n = 1; n < 200 && rc != 0; n++) {
		uint16_t id;

		/* The cycle measured: a fresh port, dp_create(), the port closed and freed
		 * (dp_create() closes it on its later exits, dp_destroy() always). */
		heap = eal_heap_used();
		TH_CHECK(dptk_port_make(&p, 1024) == 0);
		dptk_config(&cfg, &p);
		memset(&err, 0, sizeof(err));
		d = NULL;
		before = live;
		fail_at = n;
		rc = dp_create(&d, &cfg, &err);
		fail_at = 0;
		if (rc == 0) {
			dp_destroy(d);
		} else {
			TH_CHECK_MSG(rc == -ENOMEM && err.msg[0] != '\0', "N=%ld: %d %s", n, rc,
				     err.msg);
			TH_CHECK(d == NULL);
		}
		TH_CHECK_MSG(live == before, "N=%ld: %ld allocations kept", n, live - before);
		if (rte_eth_dev_get_port_by_name(p.name, &id) == 0)
			rte_eth_dev_close(id);
		dptk_port_free(&p);
		TH_CHECK_MSG(eal_heap_used() == heap, "N=%ld: %zd EAL heap bytes kept", n,
			     (ssize_t)(eal_heap_used() - heap));
	}
	TH_CHECK_MSG(rc == 0 && n > 3, "dp_create succeeded after %ld failures", n - 2);
}

int
main(void)
{
	struct dp_config cfg;
	struct tg_err err = { 0 };

	if (dptk_eal_init("dpnomalloc") != 0 || dptk_port_make(&port, 1024) != 0) {
		fprintf(stderr, "EAL or ring port unavailable\n");
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	dptk_config(&cfg, &port);
	if (dp_create(&dp, &cfg, &err) != 0) {
		fprintf(stderr, "dp_create: %s\n", err.msg);
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	dp_mac_get(dp, port.mac);
	TH_RUN(test_hot_path_allocates_nothing);
	TH_RUN(test_init_failures_release_everything);
	dp_destroy(dp);
	dptk_port_free(&port);
	dp_eal_cleanup();
	TH_DONE();
}
