/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client: the device measures its own head time per split (tgc_head_report(),
 * tgc_head_time(), tgc_compute_mflops()), and the measured compute rate replaces the declared
 * one once there are enough runs: the session's HELLO is sent again with it, and only when it
 * moved by more than TGC_HEAD_RESEND_PCT. A fake gateway on 127.0.0.1 (a thread) answers
 * every HELLO with a catalog of three splits (the input: no head work; split 4: 1 MFLOP;
 * split 6: 3 MFLOP) and records the compute rate each HELLO declared. tgc_run_head() times
 * itself (tgc_head_last_ns()), on the multi-exit fixture.
 */
#include "tests/harness.h"
#include "client/tgc_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000ull

enum { MAX_HELLOS = 16 };

struct fake {
	int fd;
	uint16_t port;
	atomic_bool stop;
	pthread_t th;
	atomic_uint n_hellos;
	uint32_t mflops[MAX_HELLOS];	/* compute_mflops of each HELLO */
};

static void *
fake_main(void *arg)
{
	static const struct proto_catalog_entry cat[3] = {
		{ .model_id = 1, .split_id = 0, .ndim = 4, .dtype_mask = 0x1e, .n_classes = 10,
		  .dims = { 1, 1, 28, 28 }, .tail_us = 500, .name = "fake" },
		{ .model_id = 1, .split_id = 4, .ndim = 4, .dtype_mask = 0x1e, .n_classes = 10,
		  .dims = { 1, 8, 14, 14 }, .head_kflop = 1000, .tail_us = 400, .name = "fake" },
		{ .model_id = 1, .split_id = 6, .ndim = 4, .dtype_mask = 0x1e, .n_classes = 10,
		  .dims = { 1, 8, 7, 7 }, .head_kflop = 3000, .tail_us = 300, .name = "fake" },
	};
	struct fake *f = arg;
	struct proto_hello_reply hr = { .session_ttl_ms = 60000, .max_msg_bytes = 1 << 20,
					.max_dgram = PROTO_DEFAULT_DGRAM, .max_chunks = 1024,
					.max_inflight = 8, .nack_gap_ms = 5, .reasm_timeout_ms = 200,
					.catalog_total = 3, .catalog_count = 3 };
	uint8_t buf[2048], out[2048];

	while (!atomic_load(&f->stop)) {
		struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
		struct sockaddr_in peer;
		socklen_t sl = sizeof(peer);
		struct proto_msg m;
		unsigned k;
		ssize_t len;
		int n;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		len = recvfrom(f->fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &sl);
		if (len <= 0 || proto_decode(buf, (size_t)len, NULL, &m, NULL) != PROTO_OK ||
		    m.h.type != PROTO_T_HELLO)
			continue;
		k = atomic_load(&f->n_hellos);
		if (k < MAX_HELLOS)
			f->mflops[k] = m.u.hello.compute_mflops;
		atomic_store(&f->n_hellos, k + 1);
		m.h.session_id = 0x5E55;
		m.h.flags = 0;
		memset(m.h.mac, 0, sizeof(m.h.mac));
		n = proto_encode_hello_reply(out, sizeof(out), &m.h, &hr, cat);
		if (n > 0)
			sendto(f->fd, out, (size_t)n, 0, (struct sockaddr *)&peer, sizeof(peer));
	}
	return NULL;
}

static int
fake_start(struct fake *f)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	memset(f, 0, sizeof(*f));
	f->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &al) < 0)
		return -errno;
	f->port = ntohs(a.sin_port);
	return -pthread_create(&f->th, NULL, fake_main, f);
}

static void
fake_stop(struct fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->th, NULL);
	close(f->fd);
}

static struct tgc *
open_session(struct fake *f, uint32_t declared)
{
	struct tgc_config cfg = { .gateway = "127.0.0.1", .port = f->port, .client_id = 77,
				  .profile = { .compute_mflops = declared, .uplink_kbps = 10000 } };
	struct tg_err err = { 0 };
	struct tgc *c = NULL;

	TH_CHECK_MSG(tgc_open(&c, &cfg, &err) == 0, "%s", err.msg);
	return c;
}

/* n reports of ns each at split; the return of each into rc[] (rc may be NULL). */
static void
report(struct tgc *c, uint8_t split, uint64_t ns, unsigned n, int *rc)
{
	struct tg_err err = { 0 };

	for (unsigned i = 0; i < n; i++) {
		int r = tgc_head_report(c, 1, 0, split, ns, &err);

		TH_CHECK_MSG(r >= 0, "report %u at split %u: %s", i, split, err.msg);
		if (rc != NULL)
			rc[i] = r;
	}
}

/*
 * Declared 100 MFLOP/s. Runs at the input teach nothing (no head work); 8 runs at split 4 of
 * 1 ms each (1 MFLOP: 1000 MFLOP/s) send the measured rate, at the 8th and not before; then
 * split 6 at 3.3 ms (909 MFLOP/s: within 25% of 1000) sends nothing; split 4 slowing to 4 ms
 * a run moves the rate past 25% at the 4th such run (36 MFLOP in 50.4 ms: 714 MFLOP/s).
 */
static void
test_measured_rate_replaces_the_declared_one(void)
{
	struct fake f;
	struct tgc *c;
	uint64_t mean = 0;
	uint32_t n = 0;
	int rc[8];

	TH_CHECK(fake_start(&f) == 0);
	c = open_session(&f, 100);
	if (c == NULL)
		goto out;
	TH_CHECK(atomic_load(&f.n_hellos) == 1 && f.mflops[0] == 100);
	TH_CHECK(tgc_compute_mflops(c) == 100);
	TH_CHECK(!tgc_head_time(c, 1, 0, 4, &mean, &n));

	report(c, 0, 1 * MS, 20, NULL);
	TH_CHECK(tgc_head_time(c, 1, 0, 0, &mean, &n) && mean == 1 * MS && n == 20);
	TH_CHECK(atomic_load(&f.n_hellos) == 1 && tgc_compute_mflops(c) == 100);

	report(c, 4, 1 * MS, 8, rc);
	for (unsigned i = 0; i < 7; i++)
		TH_CHECK_MSG(rc[i] == 0, "run %u at split 4: %d (before 8 runs)", i, rc[i]);
	TH_CHECK_MSG(rc[7] == 1, "8th run: %d", rc[7]);
	TH_CHECK_MSG(atomic_load(&f.n_hellos) == 2 && f.mflops[1] == 1000,
		     "%u HELLOs, the last declaring %u MFLOP/s", atomic_load(&f.n_hellos),
		     f.mflops[1]);
	TH_CHECK(tgc_compute_mflops(c) == 1000);

	report(c, 6, 3300 * 1000, 8, rc);
	for (unsigned i = 0; i < 8; i++)
		TH_CHECK_MSG(rc[i] == 0, "run %u at split 6: %d (within 25%%)", i, rc[i]);
	TH_CHECK(atomic_load(&f.n_hellos) == 2);
	TH_CHECK(tgc_head_time(c, 1, 0, 6, &mean, &n) && mean == 3300 * 1000 && n == 8);

	report(c, 4, 4 * MS, 4, rc);
	TH_CHECK_MSG(rc[0] == 0 && rc[1] == 0 && rc[2] == 0 && rc[3] == 1,
		     "4 ms runs: %d %d %d %d", rc[0], rc[1], rc[2], rc[3]);
	TH_CHECK_MSG(atomic_load(&f.n_hellos) == 3 && f.mflops[2] == 714,
		     "%u HELLOs, the last declaring %u MFLOP/s", atomic_load(&f.n_hellos),
		     f.mflops[2]);
	TH_CHECK(tgc_head_time(c, 1, 0, 4, &mean, &n) && n == 12 && mean == 24 * MS / 12);
out:
	tgc_close(c);
	fake_stop(&f);
}

/* Without a declared rate, the first 8 runs with head work send one. Bad reports refused. */
static void
test_undeclared_rate_and_refusals(void)
{
	struct tg_err err = { 0 };
	struct fake f;
	struct tgc *c;
	int rc[8];

	TH_CHECK(fake_start(&f) == 0);
	c = open_session(&f, 0);
	if (c == NULL)
		goto out;
	TH_CHECK(tgc_head_report(c, 1, 0, 4, 0, &err) == -EINVAL);	/* no time */
	TH_CHECK(tgc_head_report(c, 1, 0, 5, MS, &err) == -EINVAL);	/* not served */
	TH_CHECK(tgc_head_report(c, 1, 1, 4, MS, &err) == -EINVAL);	/* no such variant */
	TH_CHECK(tgc_head_report(c, 2, 0, 4, MS, &err) == -EINVAL);	/* no such model */
	TH_CHECK(tgc_head_report(NULL, 1, 0, 4, MS, &err) == -EINVAL);
	report(c, 6, 30 * MS, 8, rc);	/* 3 MFLOP in 30 ms: 100 MFLOP/s */
	TH_CHECK(rc[6] == 0 && rc[7] == 1);
	TH_CHECK_MSG(atomic_load(&f.n_hellos) == 2 && f.mflops[0] == 0 && f.mflops[1] == 100,
		     "%u HELLOs: %u then %u MFLOP/s", atomic_load(&f.n_hellos), f.mflops[0],
		     f.mflops[1]);
out:
	tgc_close(c);
	fake_stop(&f);
}

/* tgc_run_head() times its runs (not the plan's first build), split 0 a copy. */
static void
test_run_head_times_itself(void)
{
	struct tgc_head *h = NULL;
	struct tg_err err = { 0 };
	struct tg_tensor t;
	static float x[784];

	TH_CHECK(tgc_head_last_ns(NULL) == 0);
	TH_CHECK_MSG(tgc_head_open(&h, "tests/fixtures/multiexit/model.onnx", &err) == 0, "%s",
		     err.msg);
	if (h == NULL)
		return;
	TH_CHECK(tgc_head_last_ns(h) == 0);	/* nothing ran yet */
	TH_CHECK(tgc_run_head(h, 2, x, 784, &t, &err) == 0);
	TH_CHECK(tgc_head_last_ns(h) > 0);
	TH_CHECK(tgc_run_head(h, 0, x, 784, &t, &err) == 0);
	TH_CHECK(tgc_head_last_ns(h) == 0);	/* the input: copied, no head ran */
	tgc_head_close(h);
}

int
main(void)
{
	TH_RUN(test_measured_rate_replaces_the_declared_one);
	TH_RUN(test_undeclared_rate_and_refusals);
	TH_RUN(test_run_head_times_itself);
	TH_DONE();
}
