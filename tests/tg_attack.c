/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tg_attack: the attacker's tools for tests/chaos_attacks.sh. Run from the client namespace
 * against a tailgate over veth; every datagram leaves through one raw socket (IP_HDRINCL) with
 * the IPv4 and UDP headers built here, so any source address can be claimed and a payload can
 * be altered after its checksums were computed. Answers are received on ordinary UDP sockets
 * bound to each address:port used (the addresses must be on the client's interface: the
 * caller adds them, so the kernel there answers the gateway's ARP for them and sends no
 * port-unreachable back). Messages are encoded with proto/ (the wire reference).
 *
 * Modes (each bounded by --duration seconds and by its counts; all sends paced at --rate
 * datagrams/s at most):
 *   hello-flood  --sources N --hellos M [--repeat K]: M new-session HELLOs from each of N
 *                addresses (--src-base, consecutive); each sent K times alike (a retransmit:
 *                the same request id) to see whether a retransmit opens another session.
 *   slot-hog     --sessions N --messages M [--sources S]: N sessions (spread over S
 *                addresses) each opening M two-chunk echo messages and sending chunk 0 only;
 *                a message the gateway frees (ERROR, eviction) is replaced by a new one until
 *                the duration ends.
 *   rebind-amp   --victim A.B.C.D [--tensor-bytes N] [--nacks K] [--half H]: a session asks
 *                for a WANT_TENSOR echo of N bytes, a HELLO "from" the victim re-binds it
 *                there, then K NACKs of the whole answer and H half messages "from" the
 *                victim; a socket on the victim's address counts what it receives.
 *   forge-mac    --requests N: echo requests with flag MAC and a random tag.
 *   replay       --requests N [--key HEX64]: echo requests answered, then the very same
 *                datagrams again once the gateway's answer-keeping time has passed twice.
 *   corrupt      --requests N --corrupt P [--no-crc]: echo requests of random multi-chunk
 *                tensors; each chunk carries CRC32C under flag CRC (docs/protocol.md), and a
 *                share P of chunk transmissions has a payload byte flipped after that (the
 *                UDP checksum recomputed, as a middlebox would); NACKs are answered. Each OK
 *                answer's echo CRC is compared with the tensor sent.
 *   vanish       --messages M [--chunks N --send K]: M messages of which K of N chunks are
 *                sent, then silence; it listens for the gateway's NACKs and final ERRORs.
 * --ready FILE is created once the attack is in effect (the flood sent, the slots taken, the
 * partial messages sent, the session open); SIGTERM or SIGINT ends it early, with its report.
 * --key HEX64 signs every datagram (flag MAC, keyed BLAKE2b-128 over the datagram with the
 * mac field zero, docs/protocol.md 12.5) with --client-id's key.
 *
 * Prints "name value" lines: datagrams and bytes sent and received, answers by type, status
 * and reason (every status and reason, zeros too), the mode's own figures, and one line per
 * address used: "addr A.B.C.D sent_bytes N rx_bytes N". amplification_max is the largest
 * rx_bytes / sent_bytes over the addresses that sent anything, victim_amplification the
 * victim's (rebind-amp). Exit 0 when the attack ran (whatever the gateway did), 1 when it
 * could not (no session, a socket error), 2 on bad arguments.
 * Run without arguments it only says what it is for: a helper, not a test.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sodium.h>

#include "proto/proto.h"
#include "util/util.h"

#ifndef PROTO_F_CRC
#define PROTO_F_CRC (1u << 3)		/* docs/protocol.md: CRC32C in mac bytes 0-3 */
#endif

enum {
	TGA_DGRAM = PROTO_DEFAULT_DGRAM,	/* MTU 1500 */
	TGA_MAX_IDS = 1024,		/* addresses x ports in use */
	TGA_MAX_CHUNKS = 400,		/* a 512 KiB raw tensor at 1472 */
	TGA_MAX_MSGS = 64,		/* messages a session of slot-hog or vanish holds */
	TGA_MAX_REQS = 4096,		/* requests of forge-mac, replay, corrupt */
	TGA_PORT_BASE = 41000,
	TGA_ST_PENDING = 11,		/* HELPERS' wire decision: not a final answer */
};

/* One address:port the tool speaks as: a bound socket receives what the gateway sends there. */
struct tga_id {
	struct in_addr addr;
	uint16_t port;
	int fd;
	uint32_t client_id;
	uint64_t session;
	uint32_t next_req;
	uint64_t tx_bytes, tx_dgrams, rx_bytes, rx_dgrams;
	uint16_t nack_gap_ms, reasm_ms;	/* from its HELLO_REPLY */
	uint32_t msg_id[TGA_MAX_MSGS];	/* slot-hog / vanish: messages held, 0 free */
	unsigned nacks[TGA_MAX_MSGS];
	bool final[TGA_MAX_MSGS];
};

static struct {
	struct in_addr gw, src_base, victim;
	uint16_t port;
	const char *mode;
	double duration, rate, corrupt;
	unsigned sources, hellos, repeat, sessions, messages, requests, nacks, half;
	unsigned tensor_bytes, chunks, send_chunks;
	uint32_t client_id;
	bool no_crc, signed_, crc, forge;
	const char *ready;
	uint8_t key[32];
	uint64_t seed;
} o;

static struct tga_id ids[TGA_MAX_IDS];
static unsigned n_ids;
static int raw_fd = -1;
static uint64_t t_end, t_next_send;
static volatile sig_atomic_t tga_stop;	/* SIGTERM / SIGINT: wrap up and report */

static bool
tga_running(void)
{
	return !tga_stop && tg_now_ns() < t_end;
}

/* --ready FILE: created once the attack is in effect (the caller starts its client then). */
static void
tga_ready(void)
{
	FILE *f;

	if (o.ready != NULL && (f = fopen(o.ready, "w")) != NULL)
		fclose(f);
}

static void
tga_on_signal(int sig)
{
	(void)sig;
	tga_stop = 1;
}
static uint64_t rng;

static struct {				/* what came back, all addresses together */
	uint64_t rx_type[PROTO_T__COUNT], rx_bad;
	uint64_t status[PROTO_ST__COUNT], reason[PROTO_REASON__COUNT];
	uint64_t tx_dgrams, tx_bytes, rx_dgrams, rx_bytes;
} st;

static uint64_t
tga_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- sending: IPv4 + UDP built here, any source ---- */

static uint16_t
tga_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t
tga_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

/* The UDP checksum over the pseudo header, the UDP header (checksum zero) and the payload. */
static uint16_t
tga_udp_csum(struct in_addr s, struct in_addr d, const uint8_t *udp, size_t len)
{
	uint8_t ph[12];
	uint16_t c;

	memcpy(ph, &s, 4);
	memcpy(ph + 4, &d, 4);
	ph[8] = 0;
	ph[9] = IPPROTO_UDP;
	ph[10] = (uint8_t)(len >> 8);
	ph[11] = (uint8_t)len;
	c = tga_csum_fold(tga_csum_add(tga_csum_add(0, ph, 12), udp, len));
	return c == 0 ? 0xffff : c;
}

/* Flags, then the MAC or the CRC of the whole datagram computed with the mac field zero. */
static void
tga_seal(uint8_t *d, size_t len, uint16_t add_flags)
{
	uint16_t f = (uint16_t)(d[PROTO_OFF_FLAGS] << 8 | d[PROTO_OFF_FLAGS + 1]) | add_flags;

	if (o.signed_ || o.forge)
		f |= PROTO_F_MAC;
	else if (o.crc)
		f |= PROTO_F_CRC;
	d[PROTO_OFF_FLAGS] = (uint8_t)(f >> 8);
	d[PROTO_OFF_FLAGS + 1] = (uint8_t)f;
	if (!(f & (PROTO_F_MAC | PROTO_F_CRC)))
		return;
	memset(d + PROTO_OFF_MAC, 0, PROTO_MAC_LEN);
	if (f & PROTO_F_CRC) {
		uint32_t c = proto_crc32c(0, d, len);

		d[PROTO_OFF_MAC] = (uint8_t)(c >> 24);
		d[PROTO_OFF_MAC + 1] = (uint8_t)(c >> 16);
		d[PROTO_OFF_MAC + 2] = (uint8_t)(c >> 8);
		d[PROTO_OFF_MAC + 3] = (uint8_t)c;
	} else if (o.signed_) {
		crypto_generichash(d + PROTO_OFF_MAC, PROTO_MAC_LEN, d, len, o.key, sizeof(o.key));
	} else {			/* forge-mac: a tag no key made */
		for (unsigned i = 0; i < PROTO_MAC_LEN; i++)
			d[PROTO_OFF_MAC + i] = (uint8_t)tga_rand();
	}
}

/* Wait for the pacing slot of the next datagram (never past t_end). @return false at t_end */
static bool
tga_pace(void)
{
	uint64_t now = tg_now_ns();

	if (!tga_running())
		return false;
	if (t_next_send > now) {
		struct timespec ts = { 0, (long)(t_next_send - now) };

		nanosleep(&ts, NULL);
	}
	t_next_send = (t_next_send > now ? t_next_send : now) + (uint64_t)(1e9 / o.rate);
	return true;
}

/*
 * Send payload (a tailgate datagram) from id to the gateway. flip: after the checksums of
 * tailgate were sealed, flip one byte at or after offset flip (0: none), then the UDP
 * checksum is computed over what goes out. @return bytes sent, 0 at the end of time, -1
 */
static int
tga_send(struct tga_id *id, const uint8_t *payload, size_t len, size_t flip)
{
	uint8_t pkt[20 + 8 + TGA_DGRAM];
	struct iphdr *ip = (struct iphdr *)pkt;
	struct udphdr *u = (struct udphdr *)(pkt + 20);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = o.gw };
	uint16_t c;

	if (len > TGA_DGRAM || !tga_pace())
		return 0;
	memset(pkt, 0, 28);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons((uint16_t)(28 + len));	/* the kernel fills id and checksum */
	ip->saddr = id->addr.s_addr;
	ip->daddr = o.gw.s_addr;
	u->source = htons(id->port);
	u->dest = htons(o.port);
	u->len = htons((uint16_t)(8 + len));
	memcpy(pkt + 28, payload, len);
	if (flip > 0 && flip < len)
		pkt[28 + flip + tga_rand() % (len - flip)] ^= (uint8_t)(1 + tga_rand() % 255);
	c = tga_udp_csum(id->addr, o.gw, pkt + 20, 8 + len);
	u->check = htons(c);
	if (sendto(raw_fd, pkt, 28 + len, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		perror("tg_attack: sendto");
		return -1;
	}
	id->tx_bytes += len;
	id->tx_dgrams++;
	st.tx_bytes += len;
	st.tx_dgrams++;
	return (int)len;
}

/* ---- receiving ---- */

static int
tga_id_add(struct in_addr a, uint16_t port, uint32_t client_id)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = a, .sin_port = htons(port) };
	struct tga_id *id;
	int one = 1;

	if (n_ids == TGA_MAX_IDS)
		return -1;
	id = &ids[n_ids];
	memset(id, 0, sizeof(*id));
	id->addr = a;
	id->port = port;
	id->client_id = client_id;
	id->next_req = 1;
	id->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (id->fd < 0)
		return -1;
	setsockopt(id->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	{	/* a whole tensor answer arrives at once: room for it (capped by rmem_max) */
		int sz = 4 << 20;

		setsockopt(id->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	if (bind(id->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "tg_attack: bind %s:%u: %s (is the address on the interface?)\n",
			inet_ntoa(a), port, strerror(errno));
		close(id->fd);
		return -1;
	}
	return (int)n_ids++;
}

typedef void (*tga_on_msg)(struct tga_id *id, const struct proto_msg *m, const uint8_t *buf,
			   size_t len);

static void
tga_count(const struct proto_msg *m)
{
	unsigned s = PROTO_ST__COUNT, r = PROTO_REASON__COUNT;

	st.rx_type[m->h.type]++;
	if (m->h.type == PROTO_T_RESPONSE) {
		s = m->u.resp.status;
		r = m->u.resp.reason;
	} else if (m->h.type == PROTO_T_ERROR) {
		s = m->u.error.status;
		r = m->u.error.reason;
	}
	if (s < PROTO_ST__COUNT)
		st.status[s]++;
	if (r < PROTO_REASON__COUNT)
		st.reason[r]++;
}

/* Everything waiting on every socket, each decoded message to cb (NULL: count only). */
static void
tga_drain(tga_on_msg cb)
{
	uint8_t buf[65536];

	for (unsigned i = 0; i < n_ids; i++) {
		ssize_t n;

		while ((n = recv(ids[i].fd, buf, sizeof(buf), 0)) > 0) {
			struct proto_msg m;

			ids[i].rx_bytes += (uint64_t)n;
			ids[i].rx_dgrams++;
			st.rx_bytes += (uint64_t)n;
			st.rx_dgrams++;
			memset(&m, 0, sizeof(m));
			if (proto_decode(buf, (size_t)n, NULL, &m, NULL) != PROTO_OK) {
				st.rx_bad++;
				continue;
			}
			tga_count(&m);
			if (cb != NULL)
				cb(&ids[i], &m, buf, (size_t)n);
		}
	}
}

/* Receive for up to ms milliseconds (never past t_end), or until *done turns true. */
static void
tga_listen(unsigned ms, tga_on_msg cb, const bool *done)
{
	static struct pollfd pfd[TGA_MAX_IDS];
	uint64_t until = tg_now_ns() + (uint64_t)ms * 1000000ull;

	if (until > t_end)
		until = t_end;
	for (unsigned i = 0; i < n_ids; i++)
		pfd[i] = (struct pollfd){ .fd = ids[i].fd, .events = POLLIN };
	for (;;) {
		uint64_t now = tg_now_ns();

		tga_drain(cb);
		if ((done != NULL && *done) || now >= until || tga_stop)
			return;
		poll(pfd, n_ids, (int)((until - now) / 1000000ull) + 1);
	}
}

/* ---- sessions ---- */

static int
tga_hello_bytes(uint8_t *buf, struct tga_id *id, uint32_t req, uint64_t session)
{
	struct proto_hdr h = { .client_id = id->client_id, .request_id = req,
			       .session_id = session };
	struct proto_hello m = { .max_dgram = TGA_DGRAM };
	int n = proto_encode_hello(buf, TGA_DGRAM, &h, &m, PROTO_HELLO_MIN_DGRAM);

	if (n > 0)
		tga_seal(buf, (size_t)n, 0);
	return n;
}

static struct tga_id *hello_wait;
static bool hello_done;

static void
tga_on_hello_reply(struct tga_id *id, const struct proto_msg *m, const uint8_t *buf, size_t len)
{
	(void)buf;
	(void)len;
	if (id != hello_wait || m->h.type != PROTO_T_HELLO_REPLY)
		return;
	id->session = m->h.session_id;
	id->nack_gap_ms = m->u.hello_reply.nack_gap_ms;
	id->reasm_ms = m->u.hello_reply.reasm_timeout_ms;
	hello_done = true;
}

/*
 * A session for id: HELLO resent after 200 ms, doubling, 6 tries (6.2 s: on a busy machine
 * the gateway's RX lcore may wait that long for a core). @return 0 or -1
 */
static int
tga_open(struct tga_id *id)
{
	uint8_t buf[TGA_DGRAM];
	uint32_t req = id->next_req++;

	hello_wait = id;
	hello_done = false;
	for (unsigned t = 0; t < 6 && !hello_done; t++) {
		int n = tga_hello_bytes(buf, id, req, 0);

		if (n <= 0 || tga_send(id, buf, (size_t)n, 0) <= 0)
			break;
		tga_listen(200u << t, tga_on_hello_reply, &hello_done);
	}
	hello_wait = NULL;
	return hello_done ? 0 : -1;
}

/* Chunks of an echo request of raw bytes (RAW dtype, no LZ4) into out/dg. */
static int
tga_echo_chunks(struct tga_id *id, uint32_t req, const uint8_t *raw, uint32_t bytes,
		uint8_t flags, uint8_t *out, size_t cap, struct proto_dgram *dg, unsigned *n)
{
	struct proto_hdr h = { .client_id = id->client_id, .request_id = req,
			       .session_id = id->session };
	struct proto_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = PROTO_MODEL_ECHO;
	rq.c.t.dtype = PROTO_DT_RAW;
	rq.c.t.raw_total = bytes;
	rq.c.t.scale = 1.0f;
	rq.flags = flags;
	rq.deadline_us = 10000000;
	if (proto_request_chunk(&h, &rq, raw, TGA_DGRAM, false, out, cap, dg, TGA_MAX_CHUNKS, n))
		return -1;
	for (unsigned i = 0; i < *n; i++)
		tga_seal(dg[i].data, dg[i].len, 0);
	return 0;
}

/* ---- hello-flood ---- */

static uint64_t *flood_sess;		/* [source * hellos + k]: sessions seen for HELLO k */
static uint64_t flood_replies, flood_same, flood_other;

static void
tga_on_flood(struct tga_id *id, const struct proto_msg *m, const uint8_t *buf, size_t len)
{
	unsigned k;

	(void)buf;
	(void)len;
	if (m->h.type != PROTO_T_HELLO_REPLY || m->h.request_id == 0 ||
	    m->h.request_id > o.hellos)
		return;
	flood_replies++;
	k = (unsigned)(id - ids) * o.hellos + m->h.request_id - 1;
	if (flood_sess[k] == 0)
		flood_sess[k] = m->h.session_id;
	else if (flood_sess[k] == m->h.session_id)
		flood_same++;		/* a retransmit answered with the same session */
	else
		flood_other++;		/* a retransmit that opened another one */
}

static int
tga_hello_flood(void)
{
	uint8_t buf[TGA_DGRAM];
	uint64_t sent = 0;

	flood_sess = calloc((size_t)o.sources * o.hellos, sizeof(*flood_sess));
	if (flood_sess == NULL)
		return -1;
	for (unsigned s = 0; s < o.sources; s++) {
		struct in_addr a = { htonl(ntohl(o.src_base.s_addr) + s) };

		if (tga_id_add(a, TGA_PORT_BASE, 0x7a000000u + s) < 0)
			return -1;
	}
	/*
	 * Round robin over the sources, so the flood is many sources at once; a HELLO's
	 * retransmits follow it at once, so no other HELLO can have evicted its session in
	 * between (the oldest unverified session goes first) and another session on a
	 * retransmit is the gateway forgetting the nonce, nothing else.
	 */
	for (unsigned k = 1; k <= o.hellos; k++)
		for (unsigned s = 0; s < o.sources; s++)
			for (unsigned r = 0; r < o.repeat; r++) {
				int n = tga_hello_bytes(buf, &ids[s], k, 0);

				if (n <= 0 || tga_send(&ids[s], buf, (size_t)n, 0) <= 0)
					goto out;
				sent++;
				if ((sent & 63) == 0)
					tga_drain(tga_on_flood);
			}
out:
	tga_ready();
	tga_listen(500, tga_on_flood, NULL);
	{
		uint64_t distinct = 0;

		for (size_t i = 0; i < (size_t)o.sources * o.hellos; i++)
			distinct += flood_sess[i] != 0;
		printf("hellos_sent %llu\nhello_replies %llu\nsessions_distinct %llu\n"
		       "retransmit_same_session %llu\nretransmit_new_session %llu\n",
		       (unsigned long long)sent, (unsigned long long)flood_replies,
		       (unsigned long long)distinct, (unsigned long long)flood_same,
		       (unsigned long long)flood_other);
	}
	free(flood_sess);
	return 0;
}

/* ---- slot-hog and vanish: sessions holding unfinished messages ---- */

static uint8_t hog_raw[2 * 1344];
static uint64_t hog_opened, hog_freed, hog_refused, hog_nacks, hog_nacks_early;

static int
tga_hog_open_msg(struct tga_id *id, unsigned slot, unsigned bytes, unsigned send_chunks)
{
	static uint8_t out[TGA_MAX_CHUNKS * TGA_DGRAM];
	static struct proto_dgram dg[TGA_MAX_CHUNKS];
	static uint8_t raw[TGA_MAX_CHUNKS * 1344];
	uint32_t req = id->next_req++;
	unsigned n;

	if (bytes > sizeof(raw))
		bytes = sizeof(raw);
	memcpy(raw, hog_raw, bytes < sizeof(hog_raw) ? bytes : sizeof(hog_raw));
	if (tga_echo_chunks(id, req, raw, bytes, 0, out, sizeof(out), dg, &n) < 0)
		return -1;
	for (unsigned i = 0; i < send_chunks && i + 1 < n; i++)
		if (tga_send(id, dg[i].data, dg[i].len, 0) <= 0)
			return -1;
	id->msg_id[slot] = req;
	id->nacks[slot] = 0;
	id->final[slot] = false;
	hog_opened++;
	return 0;
}

static int
tga_slot_of(struct tga_id *id, uint32_t req)
{
	for (unsigned s = 0; s < o.messages; s++)
		if (id->msg_id[s] == req)
			return (int)s;
	return -1;
}

/* A held message the gateway let go of (refused, timed out, evicted) leaves its slot free. */
static void
tga_on_hog(struct tga_id *id, const struct proto_msg *m, const uint8_t *buf, size_t len)
{
	int s = tga_slot_of(id, m->h.request_id);

	(void)buf;
	(void)len;
	if (s < 0 || m->h.request_id == 0)
		return;
	if (m->h.type == PROTO_T_NACK) {
		hog_nacks++;
		/*
		 * A NACK listing a chunk that was sent left the gateway before that chunk
		 * arrived (this process descheduled between its sends): the chunk is progress
		 * and restarts the gateway's count (docs/protocol.md: 48 NACKs in a row). Only
		 * the NACKs after the last sent chunk are the silence's.
		 */
		if (m->u.nack.n_ranges > 0 && m->u.nack.ranges[0].first < o.send_chunks) {
			hog_nacks_early++;
			return;
		}
		id->nacks[s]++;
		return;
	}
	if (m->h.type == PROTO_T_RESPONSE && m->u.resp.status == PROTO_ST_OVERLOADED)
		hog_refused++;
	if (m->h.type == PROTO_T_RESPONSE || m->h.type == PROTO_T_ERROR) {
		if (m->h.type == PROTO_T_RESPONSE && m->u.resp.status == TGA_ST_PENDING)
			return;		/* not a final answer */
		hog_freed++;
		id->final[s] = true;
		if (strcmp(o.mode, "slot-hog") == 0)
			id->msg_id[s] = 0;
	}
}

static int
tga_sessions_open(unsigned n, unsigned sources)
{
	for (unsigned i = 0; i < n; i++) {
		struct in_addr a = { htonl(ntohl(o.src_base.s_addr) + i % sources) };
		int k = tga_id_add(a, (uint16_t)(TGA_PORT_BASE + 100 + i), 0x7b000000u + i);

		if (k < 0 || tga_open(&ids[k]) < 0) {
			fprintf(stderr, "tg_attack: session %u: no HELLO_REPLY\n", i);
			return -1;
		}
	}
	return 0;
}

static int
tga_slot_hog(void)
{
	unsigned rounds = 0;

	for (size_t i = 0; i < sizeof(hog_raw); i++)
		hog_raw[i] = (uint8_t)tga_rand();
	if (tga_sessions_open(o.sessions, o.sources) < 0)
		return -1;
	/* Fill every slot, then refill what the gateway frees, until the duration ends. */
	while (tga_running()) {
		for (unsigned i = 0; i < n_ids; i++)
			for (unsigned s = 0; s < o.messages; s++)
				if (ids[i].msg_id[s] == 0 &&
				    tga_hog_open_msg(&ids[i], s, sizeof(hog_raw), 1) < 0)
					goto out;
		if (rounds++ == 0)
			tga_ready();
		tga_listen(20, tga_on_hog, NULL);
	}
out:
	{
		uint64_t held = 0;

		for (unsigned i = 0; i < n_ids; i++)
			for (unsigned s = 0; s < o.messages; s++)
				held += ids[i].msg_id[s] != 0;
		printf("sessions %u\nmsgs_opened %llu\nmsgs_freed %llu\nmsgs_refused %llu\n"
		       "msgs_held_at_end %llu\nnacks_rx %llu\n", n_ids,
		       (unsigned long long)hog_opened, (unsigned long long)hog_freed,
		       (unsigned long long)hog_refused, (unsigned long long)held,
		       (unsigned long long)hog_nacks);
	}
	return 0;
}

static int
tga_vanish(void)
{
	bool all_final = false;
	unsigned nack_max = 0, finals = 0;
	uint64_t t_send, t_final = 0;

	for (size_t i = 0; i < sizeof(hog_raw); i++)
		hog_raw[i] = (uint8_t)tga_rand();
	if (tga_sessions_open(1, 1) < 0)
		return -1;
	for (unsigned s = 0; s < o.messages; s++)
		if (tga_hog_open_msg(&ids[0], s, o.chunks * 1344u, o.send_chunks) < 0)
			return -1;
	t_send = tg_now_ns();
	/* Silence: listen until every message had its final answer, or the duration ends. */
	tga_ready();
	while (!all_final && tga_running()) {
		tga_listen(100, tga_on_hog, NULL);
		all_final = true;
		for (unsigned s = 0; s < o.messages; s++)
			all_final &= ids[0].final[s];
		t_final = tg_now_ns();
	}
	/* Then as long again: nothing more may come for these messages. */
	tga_listen((unsigned)((tg_now_ns() - t_send) / 1000000ull / 2), tga_on_hog, NULL);
	for (unsigned s = 0; s < o.messages; s++) {
		if (!ids[0].final[s])
			fprintf(stderr, "tg_attack: message %u (request %u): no final answer, %u NACKs\n",
				s, ids[0].msg_id[s], ids[0].nacks[s]);
		finals += ids[0].final[s];
		if (ids[0].nacks[s] > nack_max)
			nack_max = ids[0].nacks[s];
	}
	printf("msgs_opened %llu\nmsgs_final %u\nnacks_rx %llu\nnacks_before_last_chunk %llu\n"
	       "nacks_max_per_msg %u\nseconds_to_final %.3f\n", (unsigned long long)hog_opened,
	       finals, (unsigned long long)hog_nacks, (unsigned long long)hog_nacks_early, nack_max,
	       all_final ? (double)(t_final - t_send) / 1e9 : -1.0);
	return 0;
}

/* ---- rebind-amp ---- */

static struct {
	uint32_t req;			/* the WANT_TENSOR echo request */
	uint16_t answer_chunks;		/* its answer's chunk count, from the first chunk */
	uint64_t answer_rx;		/* answer chunks the attacker got */
	uint32_t path_token;		/* HELLO_REPLY byte 68 to the victim: a challenge */
	uint64_t victim_replies;	/* HELLO_REPLYs at the victim */
	bool answered;
} rb;

static void
tga_on_rebind(struct tga_id *id, const struct proto_msg *m, const uint8_t *buf, size_t len)
{
	if (m->h.type == PROTO_T_HELLO_REPLY && id == &ids[1]) {
		rb.victim_replies++;
		if (len >= PROTO_HELLO_REPLY_LEN)
			rb.path_token = (uint32_t)buf[68] << 24 | (uint32_t)buf[69] << 16 |
					(uint32_t)buf[70] << 8 | buf[71];
		return;
	}
	if (id != &ids[0] || m->h.type != PROTO_T_RESPONSE || m->h.request_id != rb.req)
		return;
	rb.answer_chunks = m->u.resp.c.count;
	rb.answer_rx++;
	rb.answered = rb.answer_rx >= rb.answer_chunks;
}

static int
tga_rebind_amp(void)
{
	static uint8_t out[TGA_MAX_CHUNKS * TGA_DGRAM];
	static struct proto_dgram dg[TGA_MAX_CHUNKS];
	static uint8_t raw[TGA_MAX_CHUNKS * 1344];
	struct tga_id *a, *v;
	uint8_t buf[TGA_DGRAM];
	unsigned n;
	int k;

	if (o.tensor_bytes > sizeof(raw))
		o.tensor_bytes = sizeof(raw);
	for (size_t i = 0; i < o.tensor_bytes; i++)
		raw[i] = (uint8_t)tga_rand();
	if (tga_id_add(o.src_base, TGA_PORT_BASE + 1, 0x7c000001u) < 0 ||
	    (k = tga_id_add(o.victim, TGA_PORT_BASE + 2, 0x7c000001u)) < 0)
		return -1;
	a = &ids[0];
	v = &ids[k];
	if (tga_open(a) < 0) {
		fprintf(stderr, "tg_attack: no session\n");
		return -1;
	}
	tga_ready();
	/* 1. The attacker's own request: a large tensor echoed back whole. */
	rb.req = a->next_req++;
	if (tga_echo_chunks(a, rb.req, raw, o.tensor_bytes, PROTO_RF_WANT_TENSOR, out,
			    sizeof(out), dg, &n) < 0)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (tga_send(a, dg[i].data, dg[i].len, 0) <= 0)
			return -1;
	tga_listen(3000, tga_on_rebind, &rb.answered);
	/* 2. "From" the victim: a HELLO with the attacker's session id (a re-bind). */
	v->session = a->session;
	n = (unsigned)tga_hello_bytes(buf, v, v->next_req++, a->session);
	if (tga_send(v, buf, n, 0) <= 0)
		return -1;
	tga_listen(200, tga_on_rebind, NULL);
	/* 3. NACKs of the whole answer "from" the victim, each after the resend gap. */
	for (unsigned i = 0; i < o.nacks && rb.answer_chunks > 0; i++) {
		struct proto_hdr h = { .client_id = v->client_id, .request_id = rb.req,
				       .session_id = a->session };
		struct proto_nack nk = { .chunk_count = rb.answer_chunks, .n_ranges = 1 };
		int len;

		nk.ranges[0] = (struct proto_range){ 0, rb.answer_chunks };
		len = proto_encode_nack(buf, sizeof(buf), &h, &nk);
		if (len <= 0)
			return -1;
		tga_seal(buf, (size_t)len, 0);
		if (tga_send(v, buf, (size_t)len, 0) <= 0)
			break;
		tga_listen(a->nack_gap_ms / 2u + 2u, tga_on_rebind, NULL);
	}
	/* 4. Half messages "from" the victim: the gateway's NACKs for them go there. */
	for (unsigned i = 0; i < o.half; i++) {
		uint32_t req = a->next_req++;

		if (tga_echo_chunks(v, req, raw, o.tensor_bytes, 0, out, sizeof(out), dg, &n) < 0 ||
		    tga_send(v, dg[0].data, dg[0].len, 0) <= 0)
			break;
	}
	/* What reaches the victim after that: until the gateway gave the messages up. */
	tga_listen(o.half ? 2u * a->reasm_ms + 500u : 500u, tga_on_rebind, NULL);
	printf("answer_chunks %u\nanswer_rx %llu\nvictim_hello_replies %llu\n"
	       "victim_path_token %s\nvictim_tx_bytes %llu\nvictim_rx_bytes %llu\n"
	       "victim_amplification %.3f\n", rb.answer_chunks,
	       (unsigned long long)rb.answer_rx, (unsigned long long)rb.victim_replies,
	       rb.path_token ? "set" : "none", (unsigned long long)v->tx_bytes,
	       (unsigned long long)v->rx_bytes,
	       v->tx_bytes ? (double)v->rx_bytes / (double)v->tx_bytes : 0.0);
	return rb.answer_chunks > 0 ? 0 : -1;
}

/* ---- forge-mac, replay, corrupt: one echo request at a time ---- */

static struct {
	uint32_t req;
	uint32_t crc;			/* CRC32C of the tensor sent */
	bool done;
	unsigned n;
	struct proto_dgram *dg;
} cur;

static uint64_t ec_ok, ec_wrong, ec_answered, ec_lost, ec_corrupted, ec_resent, ec_nacks;
static uint64_t ec_replay_ok, ec_replay_answers;
static bool ec_replaying;

static int
tga_ec_send(struct tga_id *id, unsigned i)
{
	bool flip = o.corrupt > 0 && (double)(tga_rand() % 1000000) / 1e6 < o.corrupt;

	ec_corrupted += flip;
	return tga_send(id, cur.dg[i].data, cur.dg[i].len, flip ? PROTO_REQUEST_LEN : 0);
}

static void
tga_on_echo(struct tga_id *id, const struct proto_msg *m, const uint8_t *buf, size_t len)
{
	(void)buf;
	(void)len;
	if (ec_replaying) {
		if (m->h.type == PROTO_T_RESPONSE || m->h.type == PROTO_T_ERROR) {
			ec_replay_answers++;
			ec_replay_ok += m->h.type == PROTO_T_RESPONSE &&
					m->u.resp.status == PROTO_ST_OK;
		}
		return;
	}
	if (m->h.request_id != cur.req || cur.done)
		return;
	if (m->h.type == PROTO_T_NACK) {
		ec_nacks++;
		for (unsigned r = 0; r < m->u.nack.n_ranges; r++)
			for (unsigned i = m->u.nack.ranges[r].first;
			     i < (unsigned)m->u.nack.ranges[r].first + m->u.nack.ranges[r].count &&
			     i < cur.n; i++) {
				ec_resent++;
				tga_ec_send(id, i);
			}
		return;
	}
	if (m->h.type == PROTO_T_RESPONSE && m->u.resp.status == TGA_ST_PENDING)
		return;
	if (m->h.type != PROTO_T_RESPONSE && m->h.type != PROTO_T_ERROR)
		return;
	cur.done = true;
	ec_answered++;
	if (m->h.type == PROTO_T_RESPONSE && m->u.resp.status == PROTO_ST_OK) {
		ec_ok++;
		ec_wrong += m->u.resp.result_kind != PROTO_RES_ECHO ||
			    m->u.resp.echo_crc32c != cur.crc;
	}
}

static int
tga_echo_client(void)
{
	static uint8_t out[TGA_MAX_CHUNKS * TGA_DGRAM];
	static struct proto_dgram dg[TGA_MAX_CHUNKS];
	static uint8_t raw[TGA_MAX_CHUNKS * 1344];
	static uint8_t *saved;		/* replay: every request datagram as first sent */
	static size_t saved_len;
	bool replay = strcmp(o.mode, "replay") == 0;
	struct tga_id *id;
	int k;

	if (o.tensor_bytes > sizeof(raw))
		o.tensor_bytes = sizeof(raw);
	if ((k = tga_id_add(o.src_base, TGA_PORT_BASE + 3, o.client_id)) < 0)
		return -1;
	id = &ids[k];
	if (tga_open(id) < 0) {
		if (!o.forge) {
			fprintf(stderr, "tg_attack: no session\n");
			return -1;
		}
		id->session = tga_rand() | 1;	/* forged all along: no session to be had */
		id->reasm_ms = 1000;
	}
	if (replay && (saved = malloc((size_t)o.requests * TGA_DGRAM * 4)) == NULL)
		return -1;
	tga_ready();
	for (unsigned r = 0; r < o.requests && tga_running(); r++) {
		for (unsigned i = 0; i < o.tensor_bytes; i++)
			raw[i] = (uint8_t)tga_rand();
		cur = (__typeof__(cur)){ .req = id->next_req++, .dg = dg,
				     .crc = proto_crc32c(0, raw, o.tensor_bytes) };
		if (tga_echo_chunks(id, cur.req, raw, o.tensor_bytes, 0, out, sizeof(out), dg,
				    &cur.n) < 0)
			return -1;
		/* Whole resends, bounded; a forger expects no answer: one try, 300 ms. */
		for (unsigned t = 0; t < (o.forge ? 1u : 4u) && !cur.done; t++) {
			ec_resent += t > 0 ? cur.n : 0;
			for (unsigned i = 0; i < cur.n; i++)
				tga_ec_send(id, i);
			tga_listen(o.forge ? 300u : 1000u << t, tga_on_echo, &cur.done);
		}
		ec_lost += !cur.done;
		for (unsigned i = 0; replay && i < cur.n && saved_len + TGA_DGRAM * 2 <
		     (size_t)o.requests * TGA_DGRAM * 4; i++) {
			memcpy(saved + saved_len, &dg[i].len, sizeof(dg[i].len));
			memcpy(saved + saved_len + sizeof(dg[i].len), dg[i].data, dg[i].len);
			saved_len += sizeof(dg[i].len) + dg[i].len;
		}
	}
	if (replay) {
		/* Past the time the gateway keeps answers (twice), the very same datagrams. */
		tga_listen(2u * id->reasm_ms + 200u, NULL, NULL);
		ec_replaying = true;
		for (size_t p = 0; p < saved_len;) {
			uint32_t len;

			memcpy(&len, saved + p, sizeof(len));
			if (tga_send(id, saved + p + sizeof(len), len, 0) <= 0)
				break;
			p += sizeof(len) + len;
		}
		tga_listen(1000, tga_on_echo, NULL);
		free(saved);
	}
	printf("requests %u\nanswered %llu\nok %llu\nwrong %llu\nlost %llu\n"
	       "chunks_corrupted %llu\nchunks_resent %llu\nnacks_rx %llu\n"
	       "replay_answers %llu\nreplay_ok %llu\n", o.requests,
	       (unsigned long long)ec_answered, (unsigned long long)ec_ok,
	       (unsigned long long)ec_wrong, (unsigned long long)ec_lost,
	       (unsigned long long)ec_corrupted, (unsigned long long)ec_resent,
	       (unsigned long long)ec_nacks, (unsigned long long)ec_replay_answers,
	       (unsigned long long)ec_replay_ok);
	return 0;
}

/* ---- main ---- */

static int
tga_usage(const char *msg)
{
	fprintf(stderr, "tg_attack: %s\n"
		"usage: tg_attack MODE --gw A.B.C.D --src A.B.C.D [--port N] [--duration S]\n"
		"         [--rate PPS] [--seed N] [--key HEX64] [--client-id N] [--ready FILE]\n"
		"  hello-flood --sources N --hellos M [--repeat K]\n"
		"  slot-hog --sessions N --messages M [--sources S]\n"
		"  rebind-amp --victim A.B.C.D [--tensor-bytes N] [--nacks K] [--half H]\n"
		"  forge-mac | replay | corrupt --requests N [--tensor-bytes N]\n"
		"            [--corrupt P] [--no-crc]\n"
		"  vanish --messages M [--chunks N --send K]\n", msg);
	return 2;
}

static int
tga_hex_key(const char *v)
{
	if (strlen(v) != 64)
		return -1;
	for (unsigned i = 0; i < 32; i++) {
		unsigned b;

		if (sscanf(v + 2 * i, "%2x", &b) != 1)
			return -1;
		o.key[i] = (uint8_t)b;
	}
	return 0;
}

static int
tga_parse(int argc, char **argv)
{
	o = (__typeof__(o)){ .port = PROTO_PORT, .duration = 10, .rate = 2000, .sources = 16,
			 .hellos = 16, .repeat = 1, .sessions = 8, .messages = 16, .requests = 50,
			 .nacks = 20, .tensor_bytes = 4000, .chunks = 20, .send_chunks = 2,
			 .client_id = 0x7d000001u, .seed = 1 };
	o.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(k, "--no-crc") == 0) {
			o.no_crc = true;
			continue;
		}
		if (v == NULL)
			return tga_usage("an option without its value");
		i++;
		if (strcmp(k, "--gw") == 0 || strcmp(k, "--src") == 0 || strcmp(k, "--victim") == 0) {
			struct in_addr *a = k[2] == 'g' ? &o.gw : k[2] == 's' ? &o.src_base : &o.victim;

			if (inet_pton(AF_INET, v, a) != 1)
				return tga_usage("not an IPv4 address");
		} else if (strcmp(k, "--key") == 0) {
			if (tga_hex_key(v) < 0)
				return tga_usage("--key: 64 hex digits");
			o.signed_ = true;
		} else if (strcmp(k, "--ready") == 0) {
			o.ready = v;
		} else if (strcmp(k, "--duration") == 0) {
			o.duration = strtod(v, NULL);
		} else if (strcmp(k, "--rate") == 0) {
			o.rate = strtod(v, NULL);
		} else if (strcmp(k, "--corrupt") == 0) {
			o.corrupt = strtod(v, NULL);
		} else {
			static const char *names[] = { "--port", "--sources", "--hellos", "--repeat",
				"--sessions", "--messages", "--requests", "--nacks", "--half",
				"--tensor-bytes", "--chunks", "--send", "--client-id", "--seed" };
			unsigned *dst[] = { NULL, &o.sources, &o.hellos, &o.repeat, &o.sessions,
				&o.messages, &o.requests, &o.nacks, &o.half, &o.tensor_bytes,
				&o.chunks, &o.send_chunks, &o.client_id, NULL };
			unsigned j, n = sizeof(names) / sizeof(names[0]);
			unsigned long x = strtoul(v, NULL, 0);

			for (j = 0; j < n && strcmp(k, names[j]) != 0; j++)
				;
			if (j == n)
				return tga_usage("unknown option");
			if (j == 0)
				o.port = (uint16_t)x;
			else if (j == n - 1)
				o.seed = x;
			else
				*dst[j] = (unsigned)x;
		}
	}
	if (o.gw.s_addr == 0 || o.src_base.s_addr == 0)
		return tga_usage("--gw and --src are required");
	if (!(o.duration > 0 && o.duration <= 600) || !(o.rate >= 1 && o.rate <= 1e6))
		return tga_usage("--duration in (0, 600] s, --rate in [1, 1e6]");
	if (o.sources == 0 || o.sources > 256 || o.hellos == 0 || o.hellos > 100000 ||
	    o.repeat == 0 || o.repeat > 8 || o.sessions == 0 || o.sessions > 512 ||
	    o.messages == 0 || o.messages > TGA_MAX_MSGS || o.requests > TGA_MAX_REQS ||
	    o.tensor_bytes == 0 || o.chunks < 2 || o.chunks > TGA_MAX_CHUNKS ||
	    o.send_chunks >= o.chunks || !(o.corrupt >= 0 && o.corrupt <= 1))
		return tga_usage("a count outside its bounds");
	o.forge = strcmp(o.mode, "forge-mac") == 0;
	o.crc = strcmp(o.mode, "corrupt") == 0 && !o.no_crc;
	if (strcmp(o.mode, "rebind-amp") == 0 && o.victim.s_addr == 0)
		return tga_usage("rebind-amp needs --victim");
	return 0;
}

static void
tga_report(void)
{
	double amp_max = 0;

	printf("mode %s\ntx_dgrams %llu\ntx_bytes %llu\nrx_dgrams %llu\nrx_bytes %llu\n"
	       "rx_undecoded %llu\n", o.mode, (unsigned long long)st.tx_dgrams,
	       (unsigned long long)st.tx_bytes, (unsigned long long)st.rx_dgrams,
	       (unsigned long long)st.rx_bytes, (unsigned long long)st.rx_bad);
	for (unsigned t = 1; t < PROTO_T__COUNT; t++)
		printf("rx_type_%u %llu\n", t, (unsigned long long)st.rx_type[t]);
	for (unsigned s = 0; s < PROTO_ST__COUNT; s++)
		printf("status_%s %llu\n", proto_status_name(s), (unsigned long long)st.status[s]);
	for (unsigned r = 0; r < PROTO_REASON__COUNT; r++)
		printf("reason_%s %llu\n", proto_reason_name(r), (unsigned long long)st.reason[r]);
	for (unsigned i = 0; i < n_ids; i++) {
		const struct tga_id *id = &ids[i];

		if (i > 0 && id->addr.s_addr == ids[i - 1].addr.s_addr)
			continue;	/* one line per address: sum its ports */
		uint64_t tx = 0, rx = 0;

		for (unsigned j = i; j < n_ids && ids[j].addr.s_addr == id->addr.s_addr; j++) {
			tx += ids[j].tx_bytes;
			rx += ids[j].rx_bytes;
		}
		printf("addr %s sent_bytes %llu rx_bytes %llu\n", inet_ntoa(id->addr),
		       (unsigned long long)tx, (unsigned long long)rx);
		if (tx > 0 && (double)rx / (double)tx > amp_max)
			amp_max = (double)rx / (double)tx;
	}
	printf("amplification_max %.3f\n", amp_max);
}

int
main(int argc, char **argv)
{
	int rc;

	if (argc < 2) {
		fprintf(stderr, "tg_attack: the attacker's tools of tests/chaos_attacks.sh; a "
			"helper, not a test (see the top of tests/tg_attack.c)\n");
		return 2;
	}
	if ((rc = tga_parse(argc, argv)) != 0)
		return rc;
	if (sodium_init() < 0)
		return 1;
	rng = o.seed * 0x9E3779B97F4A7C15ull | 1;
	raw_fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);	/* IP_HDRINCL implied */
	if (raw_fd < 0) {
		perror("tg_attack: raw socket (needs CAP_NET_RAW)");
		return 1;
	}
	signal(SIGTERM, tga_on_signal);
	signal(SIGINT, tga_on_signal);
	t_end = tg_now_ns() + (uint64_t)(o.duration * 1e9);
	if (strcmp(o.mode, "hello-flood") == 0)
		rc = tga_hello_flood();
	else if (strcmp(o.mode, "slot-hog") == 0)
		rc = tga_slot_hog();
	else if (strcmp(o.mode, "rebind-amp") == 0)
		rc = tga_rebind_amp();
	else if (strcmp(o.mode, "vanish") == 0)
		rc = tga_vanish();
	else if (strcmp(o.mode, "forge-mac") == 0 || strcmp(o.mode, "replay") == 0 ||
		 strcmp(o.mode, "corrupt") == 0)
		rc = tga_echo_client();
	else
		return tga_usage("unknown mode");
	tga_report();
	for (unsigned i = 0; i < n_ids; i++)
		close(ids[i].fd);
	close(raw_fd);
	return rc < 0 ? 1 : 0;
}
