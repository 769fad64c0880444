/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kudp-recv: the kernel-socket baseline of make bench's ingest comparison
 * (scripts/bench_ingest.sh). A plain UDP socket read with recvmmsg (batches of 32) doing the
 * per-chunk work the dataplane does: proto_decode, a per-message slot (bitmap, duplicate
 * check, chunk consistency), LZ4 straight into place (proto_chunk_unpack), and on completion
 * the echo answer (CRC32C of the tensor, RESPONSE sent back), so tests/dp_sender runs
 * against it unchanged (HELLOs are answered with a session and the echo catalog entry).
 * No NACKs: the benchmark's sender has no impairment; a message whose chunks the kernel
 * dropped is resent whole by the sender after its request timeout (counted by it).
 *
 * Usage: kudp-recv --ip A.B.C.D [--port N] [--time-limit S] [--max-msg BYTES]
 *                  [--slots 2^N] [--rcvbuf BYTES] [--ready FILE]
 * Runs until SIGINT/SIGTERM or --time-limit (default 60 s), then prints "name value" lines:
 * datagrams, chunks placed, messages completed, payload bytes, and its own process CPU time
 * from its first datagram on (getrusage: user + system, i.e. recvmmsg's copies and wakeups included; softirq time spent
 * delivering into the socket is not the process's and is measured by the script).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/util.h"

enum {
	BATCH = 32,
	DGRAM_CAP = 2048,
	MAX_CHUNK_BITS = 1024,		/* chunks per message tracked */
	TOMBS = 4096,			/* recently completed messages (by hash): late chunks */
	PROBE = 8,			/* slot places looked at per chunk */
};

struct slot {
	bool used;
	uint32_t client_id, request_id;
	uint64_t session_id;
	uint16_t count, got;
	uint32_t raw_total;
	uint64_t last_ns;
	uint64_t bits[MAX_CHUNK_BITS / 64];
	uint8_t *buf;
};

static volatile sig_atomic_t stop;
static struct {
	uint64_t dgrams, bytes, chunks, msgs, dups, late, rejects, no_slot, hellos, resp_sent;
	uint64_t send_fail, expired;
} st;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static void
answer_hello(int fd, const struct proto_msg *m, size_t in_len, const struct sockaddr_in *peer,
	     uint32_t max_msg)
{
	static const struct proto_catalog_entry echo = {
		.model_id = PROTO_MODEL_ECHO,
		.dtype_mask = (1u << PROTO_DT__COUNT) - 1,
		.name = "echo",
	};
	struct proto_hello_reply hr = { 0 };
	struct proto_hdr h = { 0 };
	uint8_t out[DGRAM_CAP];
	int n;

	h.client_id = m->h.client_id;
	h.request_id = m->h.request_id;
	h.session_id = 0x6b756470ull << 32 | m->h.client_id;	/* "kudp" */
	hr.session_ttl_ms = 60000;
	hr.max_msg_bytes = max_msg;
	hr.max_dgram = PROTO_DEFAULT_DGRAM;
	hr.max_chunks = MAX_CHUNK_BITS;
	hr.max_inflight = 32;
	hr.nack_gap_ms = 2;
	hr.reasm_timeout_ms = 1000;
	hr.catalog_total = 1;
	hr.catalog_count = proto_hello_reply_room(in_len, PROTO_DEFAULT_DGRAM,
						  m->u.hello.max_dgram) >= 1;
	n = proto_encode_hello_reply(out, sizeof(out), &h, &hr, &echo);
	if (n > 0 && sendto(fd, out, (size_t)n, 0, (const struct sockaddr *)peer,
			    sizeof(*peer)) == n)
		st.hellos++;
}

static void
answer_echo(int fd, const struct slot *s, const struct proto_chunk *q,
	    const struct sockaddr_in *peer)
{
	struct proto_response r;
	struct proto_hdr h = { 0 };
	uint8_t out[DGRAM_CAP];
	int n;

	memset(&r, 0, sizeof(r));
	r.c.model_id = q->model_id;
	r.c.variant_id = q->variant_id;
	r.c.split_id = q->split_id;
	r.c.count = 1;
	r.c.t.dtype = PROTO_DT_RAW;
	r.c.t.scale = 1.0f;
	r.status = PROTO_ST_OK;
	r.result_kind = PROTO_RES_ECHO;
	r.exit_taken = PROTO_NONE;
	r.advice_variant = PROTO_NONE;
	r.advice_split = PROTO_NONE;
	r.echo_crc32c = proto_crc32c(0, s->buf, s->raw_total);
	r.echo_bytes = s->raw_total;
	h.client_id = s->client_id;
	h.request_id = s->request_id;
	h.session_id = s->session_id;
	n = proto_encode_response(out, sizeof(out), &h, &r);
	if (n > 0 && sendto(fd, out, (size_t)n, 0, (const struct sockaddr *)peer,
			    sizeof(*peer)) == n)
		st.resp_sent++;
	else
		st.send_fail++;
}

/* What the receiver holds: message slots (open addressing), tombstones, limits, socket. */
struct kr {
	struct slot *slots;		/* [n_slots], a power of two */
	unsigned n_slots;
	uint64_t *tombs;		/* [TOMBS] keys of finished messages */
	struct proto_limits lim;
	uint32_t max_msg;
	int fd;
};

/* One datagram of len bytes at buf from peer: a HELLO answered, a REQUEST chunk placed in
 * its message's slot, a complete message answered with its echo. */
static void
kr_datagram(struct kr *k, const uint8_t *buf, unsigned len, const struct sockaddr_in *peer,
	    uint64_t now)
{
	struct proto_msg m;
	const struct proto_chunk *c;
	struct slot *s = NULL, *free_s = NULL;
	uint64_t key;
	unsigned h;

	st.dgrams++;
	st.bytes += len;
	if (proto_decode(buf, len, &k->lim, &m, NULL) != PROTO_OK) {
		st.rejects++;
		return;
	}
	if (m.h.type == PROTO_T_HELLO) {
		answer_hello(k->fd, &m, len, peer, k->max_msg);
		return;
	}
	if (m.h.type != PROTO_T_REQUEST) {
		st.rejects++;
		return;
	}
	c = &m.u.req.c;
	key = (uint64_t)m.h.client_id << 32 | m.h.request_id;
	h = (unsigned)((key * 0x9e3779b97f4a7c15ull) >> 40);
	/* Open addressing, PROBE places from the key's hash, all looked at. */
	for (unsigned j = 0; j < PROBE; j++) {
		struct slot *x = &k->slots[(h + j) & (k->n_slots - 1)];

		if (x->used && x->client_id == m.h.client_id &&
		    x->request_id == m.h.request_id) {
			s = x;
			break;
		}
		/* A message silent for 1 s is given up (the sender resends). */
		if (x->used && now - x->last_ns > 1000000000ull) {
			x->used = false;
			st.expired++;
		}
		if (!x->used && free_s == NULL)
			free_s = x;
	}
	if (s == NULL) {
		if (k->tombs[h & (TOMBS - 1)] == key) {
			st.late++;
			return;
		}
		if (free_s == NULL || c->count > MAX_CHUNK_BITS ||
		    c->t.raw_total > k->max_msg) {
			st.no_slot++;
			return;
		}
		s = free_s;
		s->used = true;
		s->client_id = m.h.client_id;
		s->request_id = m.h.request_id;
		s->session_id = m.h.session_id;
		s->count = c->count;
		s->got = 0;
		s->raw_total = c->t.raw_total;
		memset(s->bits, 0, sizeof(s->bits));
	} else if (c->count != s->count || c->t.raw_total != s->raw_total) {
		st.rejects++;	/* disagrees with its message's earlier chunks */
		return;
	}
	s->last_ns = now;
	if ((s->bits[c->index / 64] >> (c->index % 64)) & 1) {
		st.dups++;
		return;
	}
	if (proto_chunk_unpack(c, s->buf, s->raw_total, NULL) != PROTO_OK) {
		st.rejects++;
		return;
	}
	s->bits[c->index / 64] |= UINT64_C(1) << (c->index % 64);
	st.chunks++;
	if (++s->got < s->count)
		return;
	answer_echo(k->fd, s, c, peer);
	st.msgs++;
	s->used = false;
	k->tombs[h & (TOMBS - 1)] = key;
}

int
main(int argc, char **argv)
{
	static uint8_t bufs[BATCH][DGRAM_CAP];
	static struct sockaddr_in peers[BATCH];
	static uint64_t tombs[TOMBS];
	struct mmsghdr mh[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(PROTO_PORT) };
	struct proto_limits lim;
	const char *ready = NULL;
	unsigned time_limit = 60, n_slots = 256;
	uint32_t max_msg = 512 * 1024;
	int rcvbuf = 8 << 20, fd;
	struct slot *slots;
	struct kr k;
	struct rusage ru, ru0 = { 0 };
	struct timeval tmo = { .tv_sec = 0, .tv_usec = 100000 };
	uint64_t t0, deadline, t_first = 0, t_last = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: kudp-recv --ip A.B.C.D [--port N] [--time-limit S] "
			"[--max-msg BYTES] [--slots 2^N] [--rcvbuf BYTES] [--ready FILE]\n");
		return 2;
	}
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		unsigned long u = strtoul(v, NULL, 10);

		if (strcmp(k, "--ip") == 0 && inet_pton(AF_INET, v, &addr.sin_addr) == 1)
			continue;
		else if (strcmp(k, "--port") == 0)
			addr.sin_port = htons((uint16_t)u);
		else if (strcmp(k, "--time-limit") == 0 && u > 0)
			time_limit = (unsigned)u;
		else if (strcmp(k, "--max-msg") == 0 && u > 0 && u <= PROTO_MAX_MSG_BYTES)
			max_msg = (uint32_t)u;
		else if (strcmp(k, "--slots") == 0 && u >= PROBE && u <= 4096 && (u & (u - 1)) == 0)
			n_slots = (unsigned)u;
		else if (strcmp(k, "--rcvbuf") == 0 && u > 0 && u <= (1u << 30))
			rcvbuf = (int)u;
		else if (strcmp(k, "--ready") == 0)
			ready = v;
		else {
			fprintf(stderr, "kudp-recv: bad option %s %s\n", k, v);
			return 2;
		}
	}
	if ((argc - 1) % 2 != 0 || addr.sin_addr.s_addr == 0) {
		fprintf(stderr, "kudp-recv: --ip required\n");
		return 2;
	}
	proto_limits_default(&lim);
	lim.max_msg_bytes = max_msg;
	lim.max_chunks = MAX_CHUNK_BITS;
	slots = calloc(n_slots, sizeof(*slots));
	if (slots == NULL)
		return 1;
	for (unsigned i = 0; i < n_slots; i++) {
		slots[i].buf = malloc(max_msg);
		if (slots[i].buf == NULL)
			return 1;
		memset(slots[i].buf, 0, max_msg);	/* touched up front, as the dataplane does */
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		perror("kudp-recv: socket");
		return 1;
	}
	/* FORCE (root) passes rmem_max; else the plain option, capped by the sysctl. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (ready != NULL) {
		FILE *f = fopen(ready, "w");

		if (f != NULL)
			fclose(f);
	}
	k = (struct kr){ .slots = slots, .n_slots = n_slots, .tombs = tombs, .lim = lim,
			 .max_msg = max_msg, .fd = fd };
	t0 = tg_now_ns();
	deadline = t0 + (uint64_t)time_limit * 1000000000ull;
	while (!stop) {
		uint64_t now;
		int n;

		for (unsigned i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = DGRAM_CAP;
			memset(&mh[i], 0, sizeof(mh[i]));
			mh[i].msg_hdr.msg_iov = &iov[i];
			mh[i].msg_hdr.msg_iovlen = 1;
			mh[i].msg_hdr.msg_name = &peers[i];
			mh[i].msg_hdr.msg_namelen = sizeof(peers[i]);
		}
		/* Blocks for the first datagram (up to the 100 ms receive timeout), then takes
		 * what is queued: a kernel receiver sleeps when idle. */
		n = recvmmsg(fd, mh, BATCH, MSG_WAITFORONE, NULL);
		now = tg_now_ns();
		if (now >= deadline)
			break;
		if (n <= 0)
			continue;
		if (t_first == 0) {
			t_first = now;
			getrusage(RUSAGE_SELF, &ru0);	/* setup (slot memory) is not ingest */
		}
		t_last = now;
		for (int i = 0; i < n; i++)
			kr_datagram(&k, bufs[i], mh[i].msg_len, &peers[i], now);
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("dgrams %llu\npayload_bytes %llu\nchunks_placed %llu\nmsgs_completed %llu\n"
	       "dups %llu\nlate %llu\nrejects %llu\nno_slot %llu\nexpired %llu\n"
	       "hello_replies %llu\nresp_sent %llu\nsend_fail %llu\n",
	       (unsigned long long)st.dgrams, (unsigned long long)st.bytes,
	       (unsigned long long)st.chunks, (unsigned long long)st.msgs,
	       (unsigned long long)st.dups, (unsigned long long)st.late,
	       (unsigned long long)st.rejects, (unsigned long long)st.no_slot,
	       (unsigned long long)st.expired, (unsigned long long)st.hellos,
	       (unsigned long long)st.resp_sent, (unsigned long long)st.send_fail);
	printf("active_s %.3f\ncpu_user_s %.6f\ncpu_sys_s %.6f\ncpu_s %.6f\n",
	       (double)(t_last - t_first) * 1e-9, tv_s(ru.ru_utime) - tv_s(ru0.ru_utime),
	       tv_s(ru.ru_stime) - tv_s(ru0.ru_stime),
	       tv_s(ru.ru_utime) + tv_s(ru.ru_stime) - tv_s(ru0.ru_utime) - tv_s(ru0.ru_stime));
	close(fd);
	for (unsigned i = 0; i < n_slots; i++)
		free(slots[i].buf);
	free(slots);
	return 0;
}
