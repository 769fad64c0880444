/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions under attack, on a ring-backed port (docs/protocol.md 12.1, 12.4, 12.6): address
 * validation before state (a HELLO naming a session from another address gets a 72-byte path
 * challenge; the session moves only when the token comes back from there; tokens are bound
 * to session, address and port and spent by a move), re-bind amplification bounded by what
 * the victim's address sent, NACKs bounded by what a message brought, retransmitted HELLOs
 * idempotent, a full table evicting unverified sessions only, per-source caps, fair share of
 * message slots under hogging, PENDING for a resend of a request being served, an LZ4 chunk
 * refused alone. Every check reads counters and datagrams, never the clock: a loaded machine
 * changes nothing here but how long it takes.
 */
#include "tests/harness.h"
#include "dataplane/dp_testkit.h"

#include <stdlib.h>
#include <time.h>

enum {
	GW_PORT = PROTO_PORT,
	MAX_DGRAM = 1472,
	MAX_RAW = 1 << 16,
	MAX_CHUNKS = 64,
	OUT_CAP = MAX_RAW + MAX_CHUNKS * PROTO_REQUEST_LEN + 4096,
	TEST_MODEL = 7,
	NONCE = 77,
};

#define VICTIM_IP	RTE_IPV4(10, 77, 0, 99)

/* A request chunked by proto_request_chunk(), sent from ip:sport. */
struct msg {
	struct proto_hdr h;
	struct proto_request rq;
	uint8_t raw[MAX_RAW];
	uint8_t out[OUT_CAP];
	struct proto_dgram dg[MAX_CHUNKS];
	unsigned n;
	uint32_t ip;
	uint16_t sport;
};

static struct dptk_port port;
static struct dp *dp;
static uint8_t rbuf[DPTK_MAX_FRAME];

/* Bytes each address sent to the gateway and got from it (UDP payloads). */
static struct {
	uint32_t ip;
	uint64_t sent, got;
} bytes_at[8];

static void
acct_add(uint32_t ip, uint64_t sent, uint64_t got)
{
	for (unsigned i = 0; i < RTE_DIM(bytes_at); i++)
		if (bytes_at[i].ip == ip || bytes_at[i].ip == 0) {
			bytes_at[i].ip = ip;
			bytes_at[i].sent += sent;
			bytes_at[i].got += got;
			return;
		}
}

static uint64_t
acct_of(uint32_t ip, bool sent)
{
	for (unsigned i = 0; i < RTE_DIM(bytes_at); i++)
		if (bytes_at[i].ip == ip)
			return sent ? bytes_at[i].sent : bytes_at[i].got;
	return 0;
}

static void
send_from(uint32_t ip, uint16_t sport, const void *data, size_t len)
{
	uint8_t f[DPTK_MAX_FRAME];

	TH_CHECK(dptk_inject(&port, f, dptk_udp_frame(f, port.mac, ip, DPTK_GW_IP, sport,
						      GW_PORT, data, len)) == 0);
	acct_add(ip, len, 0);
}

static void
pump(void)
{
	dp_poll(dp, 0);
	dp_flush(dp, 0);
}

/*
 * The next datagram the gateway sent (one poll first), its payload in rbuf, decoded into out;
 * *to its destination. @return its length, or -1 when nothing was sent.
 */
static int
take(struct proto_msg *out, uint32_t *to)
{
	uint8_t f[DPTK_MAX_FRAME];
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	size_t n;
	int l;

	do
		pump();
	while (rte_ring_count(port.rx) > 0);
	n = dptk_take(&port, f, sizeof(f));
	if (n < 42 || ip->next_proto_id != IPPROTO_UDP)
		return -1;
	l = rte_be_to_cpu_16(udp->dgram_len) - (int)sizeof(*udp);
	if (l < 0 || (size_t)l + 42 > n)
		return -1;
	memcpy(rbuf, udp + 1, (size_t)l);
	*to = rte_be_to_cpu_32(ip->dst_addr);
	acct_add(*to, 0, (uint64_t)l);
	if (proto_decode(rbuf, (size_t)l, NULL, out, NULL) != PROTO_OK)
		out->h.type = 0;
	return l;
}

/* Take everything sent; @return how many datagrams, or of those how many were of type
 * (0: all). */
static unsigned
drain_of(uint8_t type)
{
	struct proto_msg m;
	uint32_t to;
	unsigned n = 0;

	while (take(&m, &to) >= 0)
		n += type == 0 || m.h.type == type;
	return n;
}

static unsigned
drain(void)
{
	return drain_of(0);
}

/* Exactly one datagram came back, to ip; decoded into r. */
static bool
one_reply(struct proto_msg *r, uint32_t ip)
{
	uint32_t to = 0;
	int n = take(r, &to);

	return n >= 0 && to == ip && dptk_tx_count(&port) == 0;
}

/* A HELLO from ip:sport for client (session sid, path token tok), 1200 bytes. */
static void
hello_send(uint32_t ip, uint16_t sport, uint32_t client, uint64_t sid, uint32_t nonce,
	   uint32_t tok)
{
	uint8_t buf[PROTO_HELLO_MIN_DGRAM];
	struct proto_hdr h = { .client_id = client, .request_id = nonce, .session_id = sid };
	struct proto_hello m = { .max_dgram = 1472, .path_token = tok };

	TH_CHECK(proto_encode_hello(buf, sizeof(buf), &h, &m, sizeof(buf)) == sizeof(buf));
	send_from(ip, sport, buf, sizeof(buf));
}

/* A new session for client at ip:sport, verified (a second HELLO from there). @return id */
static uint64_t
session_new(uint32_t ip, uint16_t sport, uint32_t client)
{
	struct proto_msg r;
	uint64_t sid;

	hello_send(ip, sport, client, 0, NONCE, 0);
	if (!one_reply(&r, ip) || r.h.type != PROTO_T_HELLO_REPLY)
		return 0;
	sid = r.h.session_id;
	hello_send(ip, sport, client, sid, NONCE + 1, 0);
	if (!one_reply(&r, ip) || r.h.type != PROTO_T_HELLO_REPLY || r.h.session_id != sid)
		return 0;
	return sid;
}

static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Chunk len random bytes for (client, session sid, request id) from ip:sport. */
static void
make_msg(struct msg *m, uint16_t model, uint32_t client, uint64_t sid, uint32_t req_id,
	 size_t len, uint8_t flags, uint32_t ip, uint16_t sport)
{
	uint32_t seed = req_id * 2654435761u + client + 1;

	memset(&m->h, 0, sizeof(m->h));
	memset(&m->rq, 0, sizeof(m->rq));
	m->ip = ip;
	m->sport = sport;
	m->h.client_id = client;
	m->h.request_id = req_id;
	m->h.session_id = sid;
	m->rq.c.model_id = model;
	m->rq.c.t.dtype = PROTO_DT_RAW;
	m->rq.c.t.raw_total = (uint32_t)len;
	m->rq.c.t.scale = 1.0f;
	m->rq.flags = flags;
	for (size_t i = 0; i < len; i++)
		m->raw[i] = (uint8_t)rnd(&seed);
	TH_CHECK(proto_request_chunk(&m->h, &m->rq, m->raw, MAX_DGRAM, false, m->out,
				     sizeof(m->out), m->dg, MAX_CHUNKS, &m->n) == 0);
}

static void
send_chunk(const struct msg *m, unsigned i)
{
	send_from(m->ip, m->sport, m->dg[i].data, m->dg[i].len);
}

static bool
is_echo_of(const struct proto_msg *r, const struct msg *m)
{
	return dptk_is_echo(r, &m->h, m->raw, m->rq.c.t.raw_total);
}

/* A fresh dataplane on a fresh port with cfg changed by f (NULL: the defaults below). */
static bool
dp_fresh(void (*f)(struct dp_config *))
{
	struct dp_config cfg;
	struct tg_err err = { 0 };

	if (dp != NULL) {
		dp_destroy(dp);
		dptk_port_free(&port);
		dp = NULL;
	}
	memset(bytes_at, 0, sizeof(bytes_at));
	if (dptk_port_make(&port, 1024) != 0)
		return false;
	dptk_config(&cfg, &port);
	cfg.gap_timeout_us = 1000000;	/* no NACK unless a test waits for one */
	cfg.msg_timeout_us = 10000000;
	if (f != NULL)
		f(&cfg);
	if (dp_create(&dp, &cfg, &err) != 0) {
		fprintf(stderr, "dp_create: %s\n", err.msg);
		return false;
	}
	dp_mac_get(dp, port.mac);
	return true;
}

/* ---- address validation ---- */

/*
 * NAT rebinding: the device's port changes. Its datagrams from the new port get
 * UNKNOWN_SESSION path_unverified; its HELLO from there a 72-byte challenge (no catalog), the
 * session staying put; a wrong token another challenge; the right token moves the session,
 * after which the new port is served and the old one is a stranger.
 */
static void
test_path_challenge_moves_session(void)
{
	static struct msg m;
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid;
	uint32_t tok;
	int n;

	TH_CHECK(dp_fresh(NULL));
	sid = session_new(DPTK_CL_IP, 40001, 1);
	TH_CHECK(sid != 0);
	make_msg(&m, PROTO_MODEL_ECHO, 1, sid, 100, 3000, 0, DPTK_CL_IP, 40002);
	dp_stats_get(dp, &a);
	send_chunk(&m, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) &&
		 dptk_is_error(&r, PROTO_ST_UNKNOWN_SESSION, PROTO_E_PATH_UNVERIFIED));
	hello_send(DPTK_CL_IP, 40002, 1, sid, 9, 0);
	n = take(&r, &tok);
	TH_CHECK(n == PROTO_HELLO_REPLY_LEN && r.h.type == PROTO_T_HELLO_REPLY);
	TH_CHECK(r.h.session_id == sid && r.h.request_id == 9 && r.u.hello_reply.catalog_count == 0);
	tok = r.u.hello_reply.path_token;
	TH_CHECK(tok != 0);
	send_chunk(&m, 0);	/* still not moved */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) &&
		 dptk_is_error(&r, PROTO_ST_UNKNOWN_SESSION, PROTO_E_PATH_UNVERIFIED));
	hello_send(DPTK_CL_IP, 40002, 1, sid, 10, tok ^ 0x10000);	/* wrong token */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_HELLO_REPLY &&
		 r.u.hello_reply.path_token != 0);
	dp_stats_get(dp, &b);
	TH_CHECK(b.drop[DP_DROP_PATH_UNVERIFIED] - a.drop[DP_DROP_PATH_UNVERIFIED] == 2);
	TH_CHECK(b.drop[DP_DROP_PATH_TOKEN] - a.drop[DP_DROP_PATH_TOKEN] == 1);
	TH_CHECK(b.path_challenges - a.path_challenges == 2 && b.sessions_moved == a.sessions_moved);
	hello_send(DPTK_CL_IP, 40002, 1, sid, 11, tok);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_HELLO_REPLY);
	TH_CHECK(r.h.session_id == sid && r.u.hello_reply.path_token == 0);
	TH_CHECK(r.u.hello_reply.catalog_count == 1);	/* the echo entry: served in full */
	for (unsigned i = 0; i < m.n; i++)
		send_chunk(&m, i);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && is_echo_of(&r, &m));
	m.sport = 40001;	/* the old port is a stranger now */
	send_chunk(&m, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) &&
		 dptk_is_error(&r, PROTO_ST_UNKNOWN_SESSION, PROTO_E_PATH_UNVERIFIED));
	dp_stats_get(dp, &b);
	TH_CHECK(b.sessions_moved - a.sessions_moved == 1);
}

/*
 * A token is bound to its address and port, and spent by the move it made: the same token
 * from another port, or again after the session moved back, moves nothing.
 */
static void
test_path_token_bound_and_single_use(void)
{
	struct dp_stats a, b;
	struct proto_msg r;
	uint32_t to, tok_b, tok_a;
	uint64_t sid;

	TH_CHECK(dp_fresh(NULL));
	sid = session_new(DPTK_CL_IP, 40001, 2);
	TH_CHECK(sid != 0);
	hello_send(DPTK_CL_IP, 40002, 2, sid, 5, 0);
	TH_CHECK(take(&r, &to) > 0 && r.h.type == PROTO_T_HELLO_REPLY);
	tok_b = r.u.hello_reply.path_token;
	dp_stats_get(dp, &a);
	hello_send(DPTK_CL_IP, 40003, 2, sid, 6, tok_b);	/* another port */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.u.hello_reply.path_token != 0);
	hello_send(VICTIM_IP, 40002, 2, sid, 7, tok_b);	/* another address */
	TH_CHECK(one_reply(&r, VICTIM_IP) && r.u.hello_reply.path_token != 0);
	dp_stats_get(dp, &b);
	TH_CHECK(b.sessions_moved == a.sessions_moved);
	TH_CHECK(b.drop[DP_DROP_PATH_TOKEN] - a.drop[DP_DROP_PATH_TOKEN] == 2);
	hello_send(DPTK_CL_IP, 40002, 2, sid, 8, tok_b);	/* moves to :40002 */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.u.hello_reply.path_token == 0);
	hello_send(DPTK_CL_IP, 40001, 2, sid, 9, 0);		/* back to :40001 */
	TH_CHECK(take(&r, &to) > 0 && (tok_a = r.u.hello_reply.path_token) != 0);
	hello_send(DPTK_CL_IP, 40001, 2, sid, 10, tok_a);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.u.hello_reply.path_token == 0);
	dp_stats_get(dp, &a);
	hello_send(DPTK_CL_IP, 40002, 2, sid, 11, tok_b);	/* spent by its move */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.u.hello_reply.path_token != 0 &&
		 r.u.hello_reply.path_token != tok_b);
	dp_stats_get(dp, &b);
	TH_CHECK(b.sessions_moved == a.sessions_moved);
	TH_CHECK(b.drop[DP_DROP_PATH_TOKEN] - a.drop[DP_DROP_PATH_TOKEN] == 1);
}

/*
 * The re-bind amplification of issue 11 (x2,389 before): an attacker opens a session, gets a
 * 60 KB tensor echoed, then sends HELLOs naming its session "from" a victim's address (with
 * guessed tokens) and NACKs of the whole answer, chunks and half-messages "from" there. The
 * victim's address receives no more bytes than were sent from it; the attacker's session
 * never moves.
 */
static void
amp_timers(struct dp_config *c)
{
	c->gap_timeout_us = 2000;	/* the default: answers may be resent 1 ms apart */
}

static void
test_rebind_amplification_bounded(void)
{
	static struct msg m;
	struct proto_nack nk = { .n_ranges = 1 };
	uint8_t buf[512];
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid, sent, got;
	uint32_t seed = 99;
	unsigned tensor_chunks;
	int n;

	TH_CHECK(dp_fresh(amp_timers));
	sid = session_new(DPTK_CL_IP, 40001, 3);
	TH_CHECK(sid != 0);
	make_msg(&m, PROTO_MODEL_ECHO, 3, sid, 500, 60000, PROTO_RF_WANT_TENSOR, DPTK_CL_IP,
		 40001);
	for (unsigned i = 0; i < m.n; i++)
		send_chunk(&m, i);
	/* A NACK may come too: descheduled for a gap in the middle of the chunks' burst, the
	 * lcore's timers run before it has read the rest (dp_lcore_poll()). */
	tensor_chunks = drain_of(PROTO_T_RESPONSE);
	TH_CHECK_MSG(tensor_chunks == 45, "%u", tensor_chunks);
	dp_stats_get(dp, &a);
	for (int round = 0; round < 20; round++) {
		hello_send(VICTIM_IP, 40001, 3, sid, 1000 + (uint32_t)round, rnd(&seed) | 1);
		nk.chunk_count = (uint16_t)tensor_chunks;
		nk.ranges[0].first = 0;
		nk.ranges[0].count = (uint16_t)tensor_chunks;
		n = proto_encode_nack(buf, sizeof(buf), &m.h, &nk);
		TH_CHECK(n > 0);
		send_from(VICTIM_IP, 40001, buf, (size_t)n);
		m.ip = VICTIM_IP;
		send_chunk(&m, (unsigned)round % m.n);	/* late chunks of the answered request */
		m.ip = DPTK_CL_IP;
		drain();
		/* A gap apart, as an attacker would pace them to pass the resend limits (the
		 * figure, not the check, depends on it). */
		nanosleep(&(struct timespec){ 0, 3000000 }, NULL);
	}
	sent = acct_of(VICTIM_IP, true);
	got = acct_of(VICTIM_IP, false);
	printf("  re-bind attack: %llu bytes sent from the victim's address, %llu received "
	       "there (x%.3f)\n", (unsigned long long)sent, (unsigned long long)got,
	       (double)got / (double)sent);
	TH_CHECK_MSG(got <= sent, "amplification x%.3f", (double)got / (double)sent);
	dp_stats_get(dp, &b);
	TH_CHECK(b.sessions_moved == a.sessions_moved);
	TH_CHECK(b.resp_chunks_resent == a.resp_chunks_resent && b.nacks_sent == a.nacks_sent);
	TH_CHECK(b.drop[DP_DROP_PATH_UNVERIFIED] - a.drop[DP_DROP_PATH_UNVERIFIED] == 40);
	/* The owner, at its address, is still served. */
	hello_send(DPTK_CL_IP, 40001, 3, sid, 2000, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_HELLO_REPLY &&
		 r.u.hello_reply.path_token == 0);
}

/*
 * A spoofed half-message (only the last, short chunk of a 45-chunk request): the NACKs it
 * gets and the ERROR of its timeout add up to no more than the bytes it brought.
 */
static void
fast_timers(struct dp_config *c)
{
	c->gap_timeout_us = 100;
	c->msg_timeout_us = 200000;
}

static void
test_nack_storm_bounded_by_bytes_received(void)
{
	static struct msg m;
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid, got = 0;
	uint32_t to;
	unsigned nacks = 0, last;
	bool timeout = false;
	int n;

	TH_CHECK(dp_fresh(fast_timers));
	sid = session_new(DPTK_CL_IP, 40001, 4);
	TH_CHECK(sid != 0);
	make_msg(&m, PROTO_MODEL_ECHO, 4, sid, 600, 44 * 1368 + 20, 0, DPTK_CL_IP, 40001);
	last = m.n - 1;
	TH_CHECK(m.dg[last].len < 200);
	dp_stats_get(dp, &a);
	send_chunk(&m, last);
	while (!timeout) {	/* ends at the message timeout, however long that takes */
		if ((n = take(&r, &to)) < 0) {
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
			continue;
		}
		got += (unsigned)n;
		nacks += r.h.type == PROTO_T_NACK;
		timeout = dptk_is_error(&r, PROTO_ST_UNKNOWN_REQUEST, PROTO_E_REASM_TIMEOUT);
	}
	dp_stats_get(dp, &b);
	printf("  half-message of %u bytes: %u NACKs, %llu bytes answered\n", m.dg[last].len,
	       nacks, (unsigned long long)got);
	TH_CHECK_MSG(got <= m.dg[last].len, "%llu bytes for %u", (unsigned long long)got,
		     m.dg[last].len);
	TH_CHECK(b.nacks_sent - a.nacks_sent == nacks && nacks >= 1);
	TH_CHECK(b.drop[DP_DROP_NACK_BUDGET] - a.drop[DP_DROP_NACK_BUDGET] >= 1);
}

/* ---- the session table ---- */

/* A retransmitted HELLO (same client, nonce and address) gets the same session. */
static void
test_hello_retransmit_idempotent(void)
{
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid;

	TH_CHECK(dp_fresh(NULL));
	dp_stats_get(dp, &a);
	hello_send(DPTK_CL_IP, 40001, 5, 0, 1234, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_HELLO_REPLY);
	sid = r.h.session_id;
	for (int i = 0; i < 3; i++) {
		hello_send(DPTK_CL_IP, 40001, 5, 0, 1234, 0);
		TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.session_id == sid);
	}
	hello_send(DPTK_CL_IP, 40001, 5, 0, 1235, 0);		/* a new nonce: a new session */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.session_id != sid && r.h.session_id != 0);
	hello_send(DPTK_CL_IP, 40002, 5, 0, 1234, 0);		/* another address: too */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.session_id != sid && r.h.session_id != 0);
	dp_stats_get(dp, &b);
	TH_CHECK(b.sessions_opened - a.sessions_opened == 3 && b.hello_dups - a.hello_dups == 3);
}

static void
small_table(struct dp_config *c)
{
	c->limits.max_sessions = 4;
	c->limits.max_sessions_source = 3;
}

/*
 * A full table: a new HELLO takes the place of the oldest unverified session, never of a
 * verified one; with every session verified it is refused (OVERLOADED session_full). One
 * source IP holds at most max_sessions_source sessions.
 */
static void
test_full_table_evicts_unverified_only(void)
{
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t v1, v2, u1;

	TH_CHECK(dp_fresh(small_table));
	v1 = session_new(DPTK_CL_IP, 40001, 11);
	v2 = session_new(VICTIM_IP, 40001, 12);
	TH_CHECK(v1 != 0 && v2 != 0);
	hello_send(VICTIM_IP + 1, 40001, 13, 0, 1, 0);
	TH_CHECK(one_reply(&r, VICTIM_IP + 1) && (u1 = r.h.session_id) != 0);
	hello_send(VICTIM_IP + 2, 40001, 14, 0, 1, 0);
	TH_CHECK(one_reply(&r, VICTIM_IP + 2) && r.h.type == PROTO_T_HELLO_REPLY);
	dp_stats_get(dp, &a);
	for (uint32_t i = 0; i < 50; i++) {	/* a flood from 50 addresses */
		hello_send(VICTIM_IP + 10 + i, 40001, 100 + i, 0, 1, 0);
		TH_CHECK(one_reply(&r, VICTIM_IP + 10 + i) && r.h.type == PROTO_T_HELLO_REPLY);
	}
	dp_stats_get(dp, &b);
	TH_CHECK(b.sessions_evicted - a.sessions_evicted == 50);
	/* The verified ones are still there; the first unverified one is gone. */
	hello_send(DPTK_CL_IP, 40001, 11, v1, 2, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_HELLO_REPLY && r.h.session_id == v1);
	hello_send(VICTIM_IP, 40001, 12, v2, 2, 0);
	TH_CHECK(one_reply(&r, VICTIM_IP) && r.h.type == PROTO_T_HELLO_REPLY && r.h.session_id == v2);
	hello_send(VICTIM_IP + 1, 40001, 13, u1, 2, 0);
	TH_CHECK(one_reply(&r, VICTIM_IP + 1) && dptk_is_error(&r, PROTO_ST_UNKNOWN_SESSION, PROTO_OK));
	/* Verify the two left: a full table of verified sessions refuses. */
	TH_CHECK(session_new(VICTIM_IP + 3, 40001, 15) != 0);
	TH_CHECK(session_new(VICTIM_IP + 4, 40001, 16) != 0);
	dp_stats_get(dp, &a);
	hello_send(VICTIM_IP + 5, 40001, 17, 0, 1, 0);
	TH_CHECK(one_reply(&r, VICTIM_IP + 5) &&
		 dptk_is_error(&r, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL));
	dp_stats_get(dp, &b);
	TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_SESSION_FULL, 1));
}

static void
test_sessions_per_source_capped(void)
{
	struct dp_stats a, b;
	struct proto_msg r;

	TH_CHECK(dp_fresh(small_table));
	for (uint16_t p = 0; p < 3; p++) {
		hello_send(DPTK_CL_IP, (uint16_t)(40001 + p), 20, 0, 1, 0);
		TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_HELLO_REPLY);
	}
	dp_stats_get(dp, &a);
	hello_send(DPTK_CL_IP, 40004, 20, 0, 1, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) &&
		 dptk_is_error(&r, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL));
	dp_stats_get(dp, &b);
	TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_SOURCE_SESSIONS, 1));
	hello_send(VICTIM_IP, 40001, 21, 0, 1, 0);	/* another source is not held back */
	TH_CHECK(one_reply(&r, VICTIM_IP) && r.h.type == PROTO_T_HELLO_REPLY);
}

/* ---- fair share of message slots ---- */

#define HOG_IP(i)	RTE_IPV4(10, 78, 0, 1 + (i))
#define FLOOD_IP(i)	RTE_IPV4(10, 79, (i) >> 8, (i) & 0xff)

static void
big_pool(struct dp_config *c)
{
	c->limits.max_inflight_total = 256;
	c->limits.max_inflight_client = 16;
	c->limits.max_sessions = 128;
	c->limits.max_sessions_source = 64;
}

/*
 * Issue 11's lockout, both halves at once: 80 sessions from 8 addresses each open 16
 * half-messages (1,280 for a pool of 256), and spoofed HELLOs from 2,000 addresses flood a
 * 128-session table, again between every request of a device that behaves. Its 30 requests
 * are all answered OK: its session is verified (never evicted), and when the pool is full
 * its message takes the slot of the most stalled half-message of the source holding the
 * most (that hog gets ERROR UNKNOWN_REQUEST evicted). Every refusal is counted by reason.
 */
static void
test_legit_device_served_under_flood_and_hogging(void)
{
	static struct msg legit, hog;
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid, hogs[80];
	unsigned ok = 0, evicted_seen = 0, flood = 0;
	uint32_t to;

	TH_CHECK(dp_fresh(big_pool));
	sid = session_new(DPTK_CL_IP, 40001, 40);
	TH_CHECK(sid != 0);
	for (unsigned i = 0; i < 80; i++) {
		hogs[i] = session_new(HOG_IP(i % 8), (uint16_t)(41000 + i), 1000 + i);
		TH_CHECK(hogs[i] != 0);
	}
	dp_stats_get(dp, &a);
	for (unsigned k = 0; k < 30; k++) {
		for (unsigned i = 0; i < 80; i++) {	/* every hog tops up its 16 */
			for (unsigned j = 0; j < 16; j++) {
				make_msg(&hog, PROTO_MODEL_ECHO, 1000 + i, hogs[i],
					 k * 16 + j, 3000, 0, HOG_IP(i % 8), (uint16_t)(41000 + i));
				send_chunk(&hog, 0);
			}
			while (take(&r, &to) >= 0)	/* the refusals; the rings are small */
				evicted_seen += dptk_is_error(&r, PROTO_ST_UNKNOWN_REQUEST,
							 PROTO_E_EVICTED);
		}
		for (unsigned i = 0; i < 70; i++, flood++) {
			hello_send(FLOOD_IP(flood % 2000), 40001, 50000 + flood, 0, 1, 0);
			if (i % 16 == 15)
				drain();
		}
		drain();
		make_msg(&legit, PROTO_MODEL_ECHO, 40, sid, 90000 + k, 3000, 0, DPTK_CL_IP, 40001);
		for (unsigned i = 0; i < legit.n; i++)
			send_chunk(&legit, i);
		while (take(&r, &to) >= 0) {
			if (to == DPTK_CL_IP)
				ok += is_echo_of(&r, &legit);
			else
				evicted_seen += dptk_is_error(&r, PROTO_ST_UNKNOWN_REQUEST,
							 PROTO_E_EVICTED);
		}
	}
	dp_stats_get(dp, &b);
	printf("  legit device: %u of 30 answered OK; %llu half-messages evicted, %llu refused "
	       "pool_full, %llu client_inflight; %llu sessions evicted, %llu session_full\n", ok,
	       (unsigned long long)(b.drop[DP_DROP_MSG_EVICTED] - a.drop[DP_DROP_MSG_EVICTED]),
	       (unsigned long long)(b.drop[DP_DROP_POOL_FULL] - a.drop[DP_DROP_POOL_FULL]),
	       (unsigned long long)(b.drop[DP_DROP_CLIENT_INFLIGHT] -
				    a.drop[DP_DROP_CLIENT_INFLIGHT]),
	       (unsigned long long)(b.sessions_evicted - a.sessions_evicted),
	       (unsigned long long)(b.drop[DP_DROP_SESSION_FULL] - a.drop[DP_DROP_SESSION_FULL]));
	TH_CHECK_MSG(ok == 30, "%u of 30", ok);
	TH_CHECK(b.drop[DP_DROP_MSG_EVICTED] - a.drop[DP_DROP_MSG_EVICTED] >= 1);
	TH_CHECK(evicted_seen == b.drop[DP_DROP_MSG_EVICTED] - a.drop[DP_DROP_MSG_EVICTED]);
	TH_CHECK(b.sessions_evicted - a.sessions_evicted >= 2100 - 128 - 81);
	TH_CHECK(b.drop[DP_DROP_SESSION_FULL] == a.drop[DP_DROP_SESSION_FULL]);
	/* Every hog session is still there: verified ones are never evicted. */
	for (unsigned i = 0; i < 80; i += 13) {
		hello_send(HOG_IP(i % 8), (uint16_t)(41000 + i), 1000 + i, hogs[i], 7, 0);
		TH_CHECK(one_reply(&r, HOG_IP(i % 8)) && r.h.type == PROTO_T_HELLO_REPLY &&
			 r.h.session_id == hogs[i]);
	}
}

static void
open_cap(struct dp_config *c)
{
	c->limits.max_open_source = 3;
}

/* One source IP holds at most max_open_source unfinished messages (sessions together). */
static void
test_open_messages_per_source_capped(void)
{
	static struct msg m;
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t s1, s2;

	TH_CHECK(dp_fresh(open_cap));
	s1 = session_new(DPTK_CL_IP, 40001, 50);
	s2 = session_new(DPTK_CL_IP, 40002, 51);
	TH_CHECK(s1 != 0 && s2 != 0);
	for (unsigned i = 0; i < 3; i++) {
		make_msg(&m, PROTO_MODEL_ECHO, 50 + i % 2, i % 2 ? s2 : s1, 100 + i, 3000, 0,
			 DPTK_CL_IP, (uint16_t)(40001 + i % 2));
		send_chunk(&m, 0);
	}
	TH_CHECK(drain() == 0);
	dp_stats_get(dp, &a);
	make_msg(&m, PROTO_MODEL_ECHO, 51, s2, 200, 3000, 0, DPTK_CL_IP, 40002);
	send_chunk(&m, 0);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) &&
		 dptk_is_error(&r, PROTO_ST_OVERLOADED, PROTO_E_SOURCE_INFLIGHT));
	dp_stats_get(dp, &b);
	TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_SOURCE_INFLIGHT, 1));
	/* Another source is not held back. */
	s1 = session_new(VICTIM_IP, 40001, 52);
	TH_CHECK(s1 != 0);
	make_msg(&m, PROTO_MODEL_ECHO, 52, s1, 300, 3000, 0, VICTIM_IP, 40001);
	for (unsigned i = 0; i < m.n; i++)
		send_chunk(&m, i);
	TH_CHECK(one_reply(&r, VICTIM_IP) && is_echo_of(&r, &m));
}

/* ---- held requests and refused chunks ---- */

static void
slow_gap(struct dp_config *c)
{
	c->gap_timeout_us = 60000000;	/* a minute: "within a gap" is certain here */
	c->msg_timeout_us = 120000000;
}

/*
 * A resend of a request the gateway holds whole and has not answered (with the consumer) is
 * answered RESPONSE PENDING (reason pending, result NONE, the ids of the request), at most
 * once per gap; once answered, the chunk gets the answer instead (after a gap).
 */
static void
test_resend_of_held_request_gets_pending(void)
{
	static struct msg m;
	struct dp_stats a, b;
	struct dp_req *req;
	struct proto_msg r;
	uint64_t sid;

	TH_CHECK(dp_fresh(slow_gap));
	sid = session_new(DPTK_CL_IP, 40001, 30);
	TH_CHECK(sid != 0);
	make_msg(&m, TEST_MODEL, 30, sid, 700, 3000, 0, DPTK_CL_IP, 40001);
	for (unsigned i = 0; i < m.n; i++)
		send_chunk(&m, i);
	TH_CHECK(drain() == 0);
	if (dp_req_dequeue_burst(dp, &req, 1) != 1) {
		TH_CHECK(!"the request was delivered");
		return;
	}
	dp_stats_get(dp, &a);
	send_chunk(&m, 1);	/* the device's timer resend */
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_RESPONSE);
	TH_CHECK(r.u.resp.status == PROTO_ST_PENDING && r.u.resp.reason == PROTO_E_PENDING);
	TH_CHECK(r.u.resp.result_kind == PROTO_RES_NONE && r.u.resp.c.model_id == TEST_MODEL);
	TH_CHECK(r.h.request_id == 700 && r.h.session_id == sid && r.h.client_id == 30);
	send_chunk(&m, 0);	/* within the gap: counted, nothing sent */
	send_chunk(&m, 2);
	TH_CHECK(drain() == 0);
	dp_stats_get(dp, &b);
	TH_CHECK(b.pending_sent - a.pending_sent == 1);
	TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_CHUNK_LATE, 3));
	req->resp.status = PROTO_ST_OVERLOADED;
	req->resp.reason = PROTO_E_QUEUE_FULL;
	dp_req_respond(req);
	TH_CHECK(one_reply(&r, DPTK_CL_IP) && r.h.type == PROTO_T_RESPONSE &&
		 r.u.resp.status == PROTO_ST_OVERLOADED);
	send_chunk(&m, 0);	/* answered: no PENDING any more (and the answer a gap later) */
	TH_CHECK(drain() == 0);
	dp_stats_get(dp, &b);
	TH_CHECK(b.pending_sent - a.pending_sent == 1);
}

static void
fast_gap(struct dp_config *c)
{
	c->gap_timeout_us = 100;
}

/*
 * An LZ4 chunk that does not decompress to its size is refused alone (ERROR lz4 naming the
 * chunk): the message stays open, the chunk is NACKed, and its correct resend completes it.
 */
static void
test_lz4_refusal_refuses_only_the_chunk(void)
{
	static const uint8_t junk[8] = { 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };
	static struct msg m;
	static uint8_t bad[2048];
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid;
	uint32_t to;
	bool nacked = false;

	TH_CHECK(dp_fresh(fast_gap));
	sid = session_new(DPTK_CL_IP, 40001, 31);
	TH_CHECK(sid != 0);
	make_msg(&m, PROTO_MODEL_ECHO, 31, sid, 710, 4000, 0, DPTK_CL_IP, 40001);
	TH_CHECK(m.n == 3);
	memcpy(bad, m.dg[1].data, PROTO_REQUEST_LEN);
	bad[PROTO_OFF_FLAGS + 1] |= PROTO_F_LZ4;
	bad[PROTO_OFF_PAYLOAD_LEN] = 0;
	bad[PROTO_OFF_PAYLOAD_LEN + 1] = sizeof(junk);
	memcpy(bad + PROTO_REQUEST_LEN, junk, sizeof(junk));
	dp_stats_get(dp, &a);
	send_chunk(&m, 0);
	send_chunk(&m, 2);
	send_from(DPTK_CL_IP, 40001, bad, PROTO_REQUEST_LEN + sizeof(junk));
	do	/* a NACK of chunk 1 may come first on a slow machine */
		TH_CHECK(take(&r, &to) > 0);
	while (r.h.type == PROTO_T_NACK);
	TH_CHECK(dptk_is_error(&r, PROTO_ST_BAD_REQUEST, PROTO_E_LZ4));
	TH_CHECK(r.u.error.chunk_index == 1 && r.h.request_id == 710);
	while (!nacked) {	/* the gap is 100 us; however long the machine takes */
		if (take(&r, &to) < 0) {
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
			continue;
		}
		TH_CHECK(r.h.type == PROTO_T_NACK);
		nacked = r.h.type == PROTO_T_NACK;
		TH_CHECK(r.u.nack.n_ranges == 1 && r.u.nack.ranges[0].first == 1 &&
			 r.u.nack.ranges[0].count == 1);
	}
	send_chunk(&m, 1);
	for (;;) {	/* NACKs sent meanwhile may come first */
		if (take(&r, &to) < 0) {
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
			continue;
		}
		if (r.h.type != PROTO_T_NACK)
			break;
	}
	TH_CHECK(is_echo_of(&r, &m));
	dp_stats_get(dp, &b);
	TH_CHECK(b.drop[DP_DROP_CHUNK_LZ4] - a.drop[DP_DROP_CHUNK_LZ4] == 1);
	TH_CHECK(b.msgs_opened - a.msgs_opened == 1 && b.chunks_placed - a.chunks_placed == 3);
}

int
main(void)
{
	if (dptk_eal_init("dpsess") != 0) {
		fprintf(stderr, "EAL unavailable\n");
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	TH_RUN(test_path_challenge_moves_session);
	TH_RUN(test_path_token_bound_and_single_use);
	TH_RUN(test_rebind_amplification_bounded);
	TH_RUN(test_nack_storm_bounded_by_bytes_received);
	TH_RUN(test_hello_retransmit_idempotent);
	TH_RUN(test_full_table_evicts_unverified_only);
	TH_RUN(test_sessions_per_source_capped);
	TH_RUN(test_legit_device_served_under_flood_and_hogging);
	TH_RUN(test_open_messages_per_source_capped);
	TH_RUN(test_resend_of_held_request_gets_pending);
	TH_RUN(test_lz4_refusal_refuses_only_the_chunk);
	if (dp != NULL) {
		dp_destroy(dp);
		dptk_port_free(&port);
	}
	dp_eal_cleanup();
	TH_DONE();
}
