/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_sender: devices on ordinary kernel UDP sockets, for tests/dataplane_echo.sh. Each client
 * (its own socket, so its own source port) keeps a window of echo requests open against the
 * gateway; every request is chunked by proto's chunker (raw, f32 or LZ4-compressed tensors of
 * 1 to N datagrams) and sent through a sender-side impairment: a share of chunk transmissions
 * dropped, some swapped with their neighbour, some duplicated (half of the copies held back a
 * few ms, so some land after their message completed). The gateway's NACKs are answered by
 * resending what they list (through the same impairment); a request that heard nothing for
 * --req-timeout-ms is resent whole (all its chunks were lost). Each echo's CRC32C and byte
 * count are checked against the tensor sent.
 *
 * Each client first opens a session with a HELLO (docs/protocol.md 4), as a device must.
 *
 * Usage: dp_sender --gw A.B.C.D [--port N] [--requests N] [--min-chunks N] [--max-chunks N]
 *            [--loss P] [--reorder P] [--dup P] [--clients N] [--window N] [--seed N]
 *            [--time-limit S] [--req-timeout-ms N] [--ping N] [--rate PPS]
 *            [--prebuilt 0|1] [--raw-if IFNAME]
 * --rate PPS makes it an open loop at a fixed datagram rate (all clients together, first
 * sends and resends alike): datagram k leaves at t0 + k / PPS, waited for with
 * clock_nanosleep(TIMER_ABSTIME) and a short spin; the window then only bounds the
 * requests open at once (when the receiver falls behind and it fills, the achieved rate
 * drops below PPS: rate_pps, achieved_pps and behind_s say by how much).
 * --prebuilt 1 builds each window slot's message once and resends it under new request ids
 * (an ingest benchmark's sender must outrun the receivers it measures).
 * --raw-if IFNAME sends the REQUEST chunks (first sends and resends) as whole frames through
 * an AF_PACKET socket on IFNAME with the qdisc bypassed, Ethernet, IPv4 and UDP headers built
 * here (source port: the client's UDP socket, so the answers still arrive there; destination
 * MAC: the gateway's entry in the kernel's ARP table, filled by the HELLO exchange). It skips
 * the UDP/IP output path, which is most of a kernel sender's cost per datagram; it is the
 * same kernel path DPDK's net_af_packet TX takes (packet socket, direct xmit), without EAL.
 * Each client's UDP socket is connected to the gateway (no route lookup per datagram).
 * Prints "name value" lines (counts, rates, latency percentiles); exits 0 when every request
 * completed with a matching CRC, 1 otherwise. All loops are bounded by --time-limit.
 * --ping N first sends N ICMP echo requests (raw socket) and counts the replies.
 *
 * Run without arguments (scripts/run_tests.sh runs every program built from tests/) it only
 * says what it is for: it is a helper, not a test.
 */
#include <errno.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "proto/proto.h"
#include "proto/proto_int.h"	/* proto_st32, proto_ld16: --prebuilt patches ids in place */
#include "util/util.h"

enum {
	MAX_DGRAM = PROTO_DEFAULT_DGRAM,	/* MTU 1500 */
	RAW_CAP = MAX_DGRAM - PROTO_REQUEST_LEN,	/* raw bytes per uncompressed chunk */
	MAX_CLIENTS = 16,
	MAX_WINDOW = 32,
	MAX_CHUNKS_CAP = 256,
	QCAP = 1 << 16,			/* per-client send queue entries */
	DELAYED_CAP = 1024,		/* per-client held-back duplicates */
	BATCH = 32,
};

struct opts {
	struct sockaddr_in gw;
	unsigned requests, min_chunks, max_chunks, clients, window, ping;
	double loss, reorder, dup;
	uint32_t seed;
	unsigned time_limit_s, req_timeout_ms;
	double rate;			/* datagrams per second; 0: closed loop, as fast as it can */
	bool prebuilt;			/* each window slot's message built once, resent under new ids */
	const char *raw_if;		/* chunks as frames on this interface (AF_PACKET) */
};

enum { L2_HDR = 14 + 20 + 8 };		/* Ethernet, IPv4 without options, UDP */

/* --raw-if: the packet socket and what every frame's headers hold. */
static struct {
	int fd;
	int ifindex;
	uint8_t src_mac[6], dst_mac[6];
	uint32_t src_ip, dst_ip;	/* network order */
	uint16_t ip_id;
} raw = { .fd = -1 };

struct req {
	bool active;
	uint32_t id;
	uint32_t raw_len;
	uint32_t crc;
	unsigned n;			/* chunks */
	uint64_t t_start, t_activity;	/* ns */
	uint8_t *raw, *out;
	struct proto_dgram dg[MAX_CHUNKS_CAP];
	uint8_t (*l2)[L2_HDR];		/* --raw-if: each chunk's frame headers */
	uint64_t tried[MAX_CHUNKS_CAP / 64];	/* chunk sent (or lost on the way) at least once */
	uint64_t lost[MAX_CHUNKS_CAP / 64];	/* chunk lost on the way at least once */
};

struct qent {
	uint16_t slot;
	uint16_t chunk;
	uint32_t id;
};

struct ring {
	struct qent *e;			/* QCAP entries */
	unsigned h, n;
};

struct client {
	int fd;
	uint32_t id;
	uint16_t sport;			/* network order: the UDP socket's port */
	uint64_t session;		/* from the HELLO_REPLY */
	struct req req[MAX_WINDOW];
	unsigned inflight;
	struct ring q;			/* first transmissions, in order */
	struct ring rq;			/* resends: go before q, as a device would send them */
	struct {
		struct qent e;
		uint64_t due;		/* ns */
	} delayed[DELAYED_CAP];
	unsigned n_delayed;
};

static struct {
	uint64_t started, completed, crc_bad, failed, tx, tx_fail, dropped, dups, swaps;
	uint64_t resent_nack, nack_unlost, resent_whole, nacks_rx, errors_rx, overloaded;
	uint64_t stale_rx, rx_bad;
	uint64_t stale_resp;		/* RESPONSEs to requests already finished: second answers */
	uint64_t pendings;		/* RESPONSE PENDING: a resend of a request held whole */
	uint64_t chunks_first;		/* chunks of all requests (first transmissions) */
	uint64_t hello_tx;		/* HELLO datagrams sent */
	uint64_t paced;			/* --rate: datagram slots released so far */
	uint64_t behind_ns;		/* --rate: time a slot was due with nothing to send */
} st;

static uint32_t rng;
static uint32_t *lat_us;	/* [requests] */
static size_t n_lat;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static bool
chance(double p)
{
	return p > 0 && (double)(rnd() % 1000000) < p * 1e6;
}

static void
usage(void)
{
	fprintf(stderr, "usage: dp_sender --gw A.B.C.D [--port N] [--requests N] [--min-chunks N] "
		"[--max-chunks N] [--loss P] [--reorder P] [--dup P] [--clients N] [--window N] "
		"[--seed N] [--time-limit S] [--req-timeout-ms N] [--ping N] [--rate PPS] "
		"[--prebuilt 0|1] [--raw-if IFNAME]\n");
}

static int
parse(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->gw.sin_family = AF_INET;
	o->gw.sin_port = htons(PROTO_PORT);
	o->requests = 1000;
	o->min_chunks = 1;
	o->max_chunks = 200;
	o->clients = 4;
	o->window = 4;
	o->seed = 1;
	o->time_limit_s = 60;
	o->req_timeout_ms = 250;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		unsigned long u = strtoul(v, NULL, 10);

		if (strcmp(k, "--gw") == 0) {
			if (inet_pton(AF_INET, v, &o->gw.sin_addr) != 1)
				return -1;
		} else if (strcmp(k, "--port") == 0) {
			o->gw.sin_port = htons((uint16_t)u);
		} else if (strcmp(k, "--requests") == 0) {
			o->requests = (unsigned)u;
		} else if (strcmp(k, "--min-chunks") == 0) {
			o->min_chunks = (unsigned)u;
		} else if (strcmp(k, "--max-chunks") == 0) {
			o->max_chunks = (unsigned)u;
		} else if (strcmp(k, "--clients") == 0) {
			o->clients = (unsigned)u;
		} else if (strcmp(k, "--window") == 0) {
			o->window = (unsigned)u;
		} else if (strcmp(k, "--seed") == 0) {
			o->seed = (uint32_t)u;
		} else if (strcmp(k, "--time-limit") == 0) {
			o->time_limit_s = (unsigned)u;
		} else if (strcmp(k, "--req-timeout-ms") == 0) {
			o->req_timeout_ms = (unsigned)u;
		} else if (strcmp(k, "--ping") == 0) {
			o->ping = (unsigned)u;
		} else if (strcmp(k, "--rate") == 0) {
			o->rate = strtod(v, NULL);
		} else if (strcmp(k, "--loss") == 0) {
			o->loss = strtod(v, NULL);
		} else if (strcmp(k, "--reorder") == 0) {
			o->reorder = strtod(v, NULL);
		} else if (strcmp(k, "--dup") == 0) {
			o->dup = strtod(v, NULL);
		} else if (strcmp(k, "--prebuilt") == 0) {
			o->prebuilt = u != 0;
		} else if (strcmp(k, "--raw-if") == 0) {
			o->raw_if = v;
		} else {
			return -1;
		}
	}
	if ((argc - 1) % 2 != 0 || o->gw.sin_addr.s_addr == 0 || o->min_chunks == 0 ||
	    o->min_chunks > o->max_chunks || o->max_chunks > 256 || o->clients == 0 ||
	    o->clients > MAX_CLIENTS || o->window == 0 || o->window > MAX_WINDOW ||
	    o->requests == 0 || o->time_limit_s == 0 || !(o->rate >= 0 && o->rate <= 1e8))
		return -1;
	rng = o->seed ? o->seed : 1;
	return 0;
}

/* ---- ICMP echo through a raw socket ---- */

static uint16_t
icmp_csum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

/* Send n echo requests, one at a time, each waiting up to 500 ms. @return replies. */
static unsigned
ping(const struct opts *o, unsigned n)
{
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	unsigned got = 0;

	if (fd < 0) {
		perror("dp_sender: raw socket");
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t pkt[64] = { 0 }, in[1500];
		struct icmphdr *h = (struct icmphdr *)pkt;
		/* 2 s: on a busy machine the RX lcore may wait that long for a core. */
		uint64_t until = tg_now_ns() + 2000000000ull;

		h->type = ICMP_ECHO;
		h->un.echo.id = htons(0x7467);
		h->un.echo.sequence = htons((uint16_t)i);
		memset(pkt + sizeof(*h), 0xa5, sizeof(pkt) - sizeof(*h));
		h->checksum = icmp_csum(pkt, sizeof(pkt));
		if (sendto(fd, pkt, sizeof(pkt), 0, (const struct sockaddr *)&o->gw,
			   sizeof(o->gw)) < 0)
			continue;
		while (tg_now_ns() < until) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t r;

			if (poll(&p, 1, 50) <= 0)
				continue;
			r = recv(fd, in, sizeof(in), 0);
			if (r >= (ssize_t)(20 + sizeof(*h))) {
				const struct iphdr *ip = (const struct iphdr *)in;
				const struct icmphdr *e = (const struct icmphdr *)(in + ip->ihl * 4);

				if (ip->saddr == o->gw.sin_addr.s_addr && e->type == ICMP_ECHOREPLY &&
				    e->un.echo.id == h->un.echo.id &&
				    e->un.echo.sequence == h->un.echo.sequence &&
				    icmp_csum(e, (size_t)r - ip->ihl * 4) == 0) {
					got++;
					break;
				}
			}
		}
	}
	close(fd);
	return got;
}

/* ---- the session ---- */

/*
 * HELLO (padded to 1200 bytes) until a HELLO_REPLY comes: at most 4 tries, 200 ms apart
 * (docs/protocol.md 12.1). Takes the session and the gateway's in-flight limit.
 * @return 0, or -1 with the reason printed
 */
static int
open_session(struct client *c, const struct opts *o, unsigned *window, bool *echo_listed)
{
	struct proto_hdr h = { .client_id = c->id, .request_id = rnd() };
	struct proto_hello m = { .max_dgram = MAX_DGRAM };
	uint8_t buf[PROTO_HELLO_MIN_DGRAM], in[2048];
	struct proto_msg r;
	int n = proto_encode_hello(buf, sizeof(buf), &h, &m, sizeof(buf));

	for (int tries = 0; n > 0 && tries < 4; tries++) {
		uint64_t until = tg_now_ns() + 200000000ull;

		if (sendto(c->fd, buf, (size_t)n, 0, (const struct sockaddr *)&o->gw,
			   sizeof(o->gw)) < 0)
			continue;
		st.hello_tx++;
		while (tg_now_ns() < until) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };
			ssize_t k;

			if (poll(&p, 1, 20) <= 0)
				continue;
			k = recv(c->fd, in, sizeof(in), 0);
			if (k <= 0 || proto_decode(in, (size_t)k, NULL, &r, NULL) != PROTO_OK ||
			    r.h.request_id != h.request_id)
				continue;
			if (r.h.type != PROTO_T_HELLO_REPLY) {
				fprintf(stderr, "dp_sender: HELLO answered with type %u\n", r.h.type);
				return -1;
			}
			c->session = r.h.session_id;
			if (*window > r.u.hello_reply.max_inflight)
				*window = r.u.hello_reply.max_inflight;
			for (unsigned i = 0; i < r.u.hello_reply.catalog_count; i++) {
				struct proto_catalog_entry e;

				proto_catalog_get(&r.u.hello_reply, i, &e);
				*echo_listed |= e.model_id == PROTO_MODEL_ECHO;
			}
			return 0;
		}
	}
	fprintf(stderr, "dp_sender: client %u: no HELLO_REPLY\n", c->id);
	return -1;
}

/* ---- --raw-if: frames through a packet socket ---- */

/* One's-complement sum (RFC 1071) of n bytes, unfolded; chain calls with even n but the last. */
static uint64_t
csum_add(const uint8_t *b, size_t n, uint64_t sum)
{
	uint32_t w;
	uint16_t h;

	for (; n >= 4; b += 4, n -= 4) {
		memcpy(&w, b, 4);
		sum += w;
	}
	if (n >= 2) {
		memcpy(&h, b, 2);
		sum += h;
		b += 2;
		n -= 2;
	}
	if (n != 0)	/* the odd byte is the first of a 16-bit word, zero-padded */
		sum += __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? *b : (uint32_t)*b << 8;
	return sum;
}

/* The folded, inverted checksum in memory order (store it with memcpy). */
static uint16_t
csum_done(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
st16be(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Chunk k's Ethernet, IPv4 and UDP headers, checksums included (its payload is final). */
static void
l2_fill(const struct opts *o, const struct client *c, struct req *r, unsigned k)
{
	uint8_t *e = r->l2[k], *ip = e + 14, *u = ip + 20, ph[12];
	uint16_t ulen = (uint16_t)(8 + r->dg[k].len), cs;
	uint64_t sum;

	memcpy(e, raw.dst_mac, 6);
	memcpy(e + 6, raw.src_mac, 6);
	st16be(e + 12, 0x0800);
	ip[0] = 0x45;
	ip[1] = 0;
	st16be(ip + 2, (uint16_t)(20 + ulen));
	st16be(ip + 4, raw.ip_id++);
	st16be(ip + 6, 0x4000);	/* DF: never fragmented, the chunker kept it under the MTU */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memset(ip + 10, 0, 2);
	memcpy(ip + 12, &raw.src_ip, 4);
	memcpy(ip + 16, &raw.dst_ip, 4);
	cs = csum_done(csum_add(ip, 20, 0));
	memcpy(ip + 10, &cs, 2);
	memcpy(u, &c->sport, 2);
	memcpy(u + 2, &o->gw.sin_port, 2);
	st16be(u + 4, ulen);
	memset(u + 6, 0, 2);
	memcpy(ph, &raw.src_ip, 4);
	memcpy(ph + 4, &raw.dst_ip, 4);
	ph[8] = 0;
	ph[9] = IPPROTO_UDP;
	st16be(ph + 10, ulen);
	sum = csum_add(r->dg[k].data, r->dg[k].len, csum_add(u, 8, csum_add(ph, 12, 0)));
	cs = csum_done(sum);
	if (cs == 0)
		cs = 0xffff;	/* 0 means "no checksum" in UDP over IPv4 */
	memcpy(u + 6, &cs, 2);
}

/* The gateway's MAC from the kernel's ARP table (the HELLO exchange filled it). */
static int
arp_lookup(uint32_t ip, const char *ifname, uint8_t mac[6])
{
	char line[256], want[INET_ADDRSTRLEN], a[64], hw[64], dev[64];
	unsigned m[6], flags;
	FILE *f = fopen("/proc/net/arp", "r");
	int rc = -1;

	if (f == NULL || inet_ntop(AF_INET, &ip, want, sizeof(want)) == NULL) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	while (rc != 0 && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%63s %*s %x %63s %*s %63s", a, &flags, hw, dev) != 4 ||
		    strcmp(a, want) != 0 || strcmp(dev, ifname) != 0 || !(flags & 0x2) ||
		    sscanf(hw, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
			   &m[5]) != 6)
			continue;
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)m[i];
		rc = 0;
	}
	fclose(f);
	return rc;
}

/*
 * Open the packet socket on o->raw_if, bypassing the qdisc (veth has none to keep), and take
 * the addresses every frame carries. Called after the sessions are open (the client's UDP
 * sockets are connected, so their source address and port are known). @return 0, or -1
 * with the reason printed
 */
static int
raw_open(const struct opts *o, struct client *cl, unsigned n_cl)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET };
	struct sockaddr_in me;
	socklen_t len;
	struct ifreq ifr;
	int one = 1;

	raw.fd = socket(AF_PACKET, SOCK_RAW, 0);	/* protocol 0: send only, nothing read */
	if (raw.fd < 0 || strlen(o->raw_if) >= IFNAMSIZ) {
		fprintf(stderr, "dp_sender: packet socket on %s: %s\n", o->raw_if,
			raw.fd < 0 ? strerror(errno) : "name too long");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, o->raw_if);
	if (ioctl(raw.fd, SIOCGIFINDEX, &ifr) != 0 ||
	    (raw.ifindex = ifr.ifr_ifindex, ioctl(raw.fd, SIOCGIFHWADDR, &ifr) != 0)) {
		fprintf(stderr, "dp_sender: interface %s: %s\n", o->raw_if, strerror(errno));
		return -1;
	}
	memcpy(raw.src_mac, ifr.ifr_hwaddr.sa_data, 6);
	ll.sll_ifindex = raw.ifindex;
	ll.sll_protocol = 0;
	if (bind(raw.fd, (struct sockaddr *)&ll, sizeof(ll)) != 0) {
		fprintf(stderr, "dp_sender: bind %s: %s\n", o->raw_if, strerror(errno));
		return -1;
	}
	/* Without it each frame would go through the (noqueue) qdisc layer: a cost, no use. */
	(void)setsockopt(raw.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	raw.dst_ip = o->gw.sin_addr.s_addr;
	if (arp_lookup(raw.dst_ip, o->raw_if, raw.dst_mac) != 0) {
		fprintf(stderr, "dp_sender: no ARP entry for the gateway on %s\n", o->raw_if);
		return -1;
	}
	for (unsigned i = 0; i < n_cl; i++) {
		len = sizeof(me);
		if (getsockname(cl[i].fd, (struct sockaddr *)&me, &len) != 0) {
			perror("dp_sender: getsockname");
			return -1;
		}
		cl[i].sport = me.sin_port;
		raw.src_ip = me.sin_addr.s_addr;
	}
	return 0;
}

/* ---- requests ---- */

static void
qpush(struct ring *q, struct qent e)
{
	if (q->n == QCAP)
		return;	/* cannot happen with the window bounds; the request would time out */
	q->e[(q->h + q->n) % QCAP] = e;
	q->n++;
}

/*
 * Queue chunk k of slot s for transmission, through the impairment's reordering (a swap with
 * the entry queued before it) and duplication (a second copy, half of them held back 1-4 ms
 * so that some land after their message completed). Loss is decided when it is sent.
 */
static void
impair(const struct opts *o, struct client *c, struct ring *q, unsigned s, unsigned k,
       uint64_t now)
{
	struct qent e = { (uint16_t)s, (uint16_t)k, c->req[s].id };

	qpush(q, e);
	if (q->n >= 2 && chance(o->reorder)) {
		struct qent *a = &q->e[(q->h + q->n - 1) % QCAP];
		struct qent *b = &q->e[(q->h + q->n - 2) % QCAP];
		struct qent t = *a;

		*a = *b;
		*b = t;
		st.swaps++;
	}
	if (chance(o->dup)) {
		st.dups++;
		if ((rnd() & 1) == 0 || c->n_delayed == DELAYED_CAP) {
			qpush(q, e);
		} else {
			c->delayed[c->n_delayed].e = e;
			c->delayed[c->n_delayed].due = now + 1000000ull * (1 + rnd() % 4);
			c->n_delayed++;
		}
	}
}

/*
 * --prebuilt: the slot's message as chunked the first time, under a new request id (and
 * resealed when it carries a CRC). Generating and compressing a tensor per request costs
 * the sender more than a receiver spends on it, so without this the sender, not the
 * receiver, sets the rate an ingest benchmark reaches.
 */
static void
reuse_request(struct req *r, uint32_t id)
{
	for (unsigned k = 0; k < r->n; k++) {
		uint8_t *d = r->dg[k].data;

		proto_st32(d + PROTO_OFF_REQUEST_ID, id);
		if (proto_ld16(d + PROTO_OFF_FLAGS) & PROTO_F_CRC)
			(void)proto_seal_crc(d, r->dg[k].len);
	}
}

static int
start_request(const struct opts *o, struct client *c, unsigned s, uint32_t id, uint64_t now)
{
	struct req *r = &c->req[s];
	unsigned target = o->min_chunks + rnd() % (o->max_chunks - o->min_chunks + 1);
	unsigned kind = rnd() % 4;
	struct proto_hdr h = { .client_id = c->id, .request_id = id, .session_id = c->session };
	struct proto_request rq;
	bool lz4 = false;
	int rc;

	if (o->prebuilt && r->n != 0) {
		reuse_request(r, id);
		goto started;
	}
	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = PROTO_MODEL_ECHO;
	rq.c.t.scale = 1.0f;
	switch (kind) {
	case 0:
	case 1:	/* incompressible bytes: exactly target chunks */
		r->raw_len = (target - 1) * RAW_CAP + 1 + rnd() % RAW_CAP;
		rq.c.t.dtype = PROTO_DT_RAW;
		for (uint32_t i = 0; i < r->raw_len; i++)
			r->raw[i] = (uint8_t)rnd();
		break;
	case 2:	/* f32 elements, whole ones per chunk */
		r->raw_len = (target - 1) * RAW_CAP + 4 * (1 + rnd() % (RAW_CAP / 4));
		rq.c.t.dtype = PROTO_DT_F32;
		rq.c.t.ndim = 1;
		rq.c.t.dims[0] = r->raw_len / 4;
		for (uint32_t i = 0; i < r->raw_len / 4; i++) {
			float f = (float)(rnd() % 20000) / 1000.0f - 10.0f;

			memcpy(r->raw + 4 * i, &f, 4);
		}
		break;
	default:	/* compressible: LZ4 packs it into fewer chunks */
		r->raw_len = target * RAW_CAP;
		rq.c.t.dtype = PROTO_DT_RAW;
		for (uint32_t i = 0; i < r->raw_len; i++)
			r->raw[i] = (uint8_t)((i / 64) ^ (rnd() % 8 == 0 ? rnd() : 0));
		lz4 = true;
		break;
	}
	rq.c.t.raw_total = r->raw_len;
	rc = proto_request_chunk(&h, &rq, r->raw, MAX_DGRAM, lz4, r->out,
				 (size_t)o->max_chunks * MAX_DGRAM, r->dg, MAX_CHUNKS_CAP, &r->n);
	if (rc != 0) {
		fprintf(stderr, "dp_sender: chunking: %s\n", strerror(-rc));
		return -1;
	}
	r->crc = proto_crc32c(0, r->raw, r->raw_len);
started:
	if (raw.fd >= 0)
		for (unsigned k = 0; k < r->n; k++)
			l2_fill(o, c, r, k);
	r->active = true;
	r->id = id;
	r->t_start = r->t_activity = now;
	memset(r->tried, 0, sizeof(r->tried));
	memset(r->lost, 0, sizeof(r->lost));
	c->inflight++;
	st.started++;
	st.chunks_first += r->n;
	for (unsigned k = 0; k < r->n; k++)
		impair(o, c, &c->q, s, k, now);
	return 0;
}

static void
finish(struct client *c, struct req *r, bool ok, uint64_t now)
{
	r->active = false;
	c->inflight--;
	if (ok) {
		st.completed++;
		if (n_lat < st.started)
			lat_us[n_lat++] = (uint32_t)((now - r->t_start) / 1000);
	} else {
		st.failed++;
	}
}

static struct req *
find(struct client *c, uint32_t id)
{
	for (unsigned s = 0; s < MAX_WINDOW; s++)
		if (c->req[s].active && c->req[s].id == id)
			return &c->req[s];
	return NULL;
}

static void
on_datagram(const struct opts *o, struct client *c, const uint8_t *buf, size_t len,
	    uint64_t now)
{
	struct proto_msg m;
	struct req *r;

	if (proto_decode(buf, len, NULL, &m, NULL) != PROTO_OK || m.h.client_id != c->id) {
		st.rx_bad++;
		return;
	}
	r = find(c, m.h.request_id);
	if (r == NULL) {
		st.stale_rx++;	/* e.g. a NACK crossing the chunk that completed it */
		if (m.h.type == PROTO_T_NACK)
			st.nacks_rx++;
		st.stale_resp += m.h.type == PROTO_T_RESPONSE;
		return;
	}
	r->t_activity = now;
	switch (m.h.type) {
	case PROTO_T_RESPONSE:
		if (m.u.resp.status == PROTO_ST_PENDING) {
			st.pendings++;	/* held by the consumer: not an answer, keep waiting */
			break;
		}
		if (m.u.resp.status == PROTO_ST_OK && m.u.resp.result_kind == PROTO_RES_ECHO &&
		    m.u.resp.echo_crc32c == r->crc && m.u.resp.echo_bytes == r->raw_len) {
			finish(c, r, true, now);
		} else {
			st.crc_bad++;
			finish(c, r, false, now);
		}
		break;
	case PROTO_T_NACK:
		st.nacks_rx++;
		for (unsigned i = 0; i < m.u.nack.n_ranges; i++) {
			const struct proto_range *g = &m.u.nack.ranges[i];

			for (unsigned k = g->first; k < (unsigned)g->first + g->count && k < r->n;
			     k++) {
				/* Only what went out (or was lost on the way): a NACK may list
				 * chunks still queued here. */
				if (!((r->tried[k / 64] >> (k % 64)) & 1))
					continue;
				st.resent_nack++;
				/* Asked for though never lost: it was late, not gone. */
				st.nack_unlost += !((r->lost[k / 64] >> (k % 64)) & 1);
				impair(o, c, &c->rq, (unsigned)(r - c->req), k, now);
			}
		}
		break;
	case PROTO_T_ERROR:
		st.errors_rx++;
		if (m.u.error.status == PROTO_ST_OVERLOADED ||
		    m.u.error.status == PROTO_ST_UNKNOWN_REQUEST) {
			/* Back off 5 ms (OVERLOADED), then the whole-request resend retries it. */
			st.overloaded += m.u.error.status == PROTO_ST_OVERLOADED;
			r->t_activity = now - (uint64_t)o->req_timeout_ms * 1000000ull + 5000000ull;
		} else {
			/* UNKNOWN_SESSION included: sessions outlive this run (TTL 60 s). */
			fprintf(stderr, "dp_sender: request %u: ERROR %s/%s\n", r->id,
				proto_status_name(m.u.error.status),
				proto_reason_name(m.u.error.reason));
			finish(c, r, false, now);
		}
		break;
	default:
		st.rx_bad++;
	}
}

/* Send up to max (<= BATCH) queued datagrams of c. @return datagrams sent. */
static unsigned
transmit(const struct opts *o, struct client *c, uint64_t now, unsigned max)
{
	static struct sockaddr_ll ll;
	struct mmsghdr mh[BATCH];
	struct iovec iov[BATCH][2];
	unsigned n = 0, i;
	int k;

	ll.sll_family = AF_PACKET;
	ll.sll_protocol = htons(0x0800);
	ll.sll_ifindex = raw.ifindex;

	/* Held-back duplicates whose time came go out next. */
	for (i = 0; i < c->n_delayed;) {
		if (c->delayed[i].due <= now) {
			qpush(&c->rq, c->delayed[i].e);
			c->delayed[i] = c->delayed[--c->n_delayed];
		} else {
			i++;
		}
	}
	while ((c->rq.n != 0 || c->q.n != 0) && n < max) {
		struct ring *q = c->rq.n != 0 ? &c->rq : &c->q;
		struct qent e = q->e[q->h];
		struct req *r = &c->req[e.slot];

		q->h = (q->h + 1) % QCAP;
		q->n--;
		if (!r->active || r->id != e.id)
			continue;	/* completed meanwhile: nothing to send */
		r->tried[e.chunk / 64] |= UINT64_C(1) << (e.chunk % 64);
		if (chance(o->loss)) {
			st.dropped++;
			r->lost[e.chunk / 64] |= UINT64_C(1) << (e.chunk % 64);
			continue;
		}
		memset(&mh[n], 0, sizeof(mh[n]));
		iov[n][1].iov_base = r->dg[e.chunk].data;
		iov[n][1].iov_len = r->dg[e.chunk].len;
		if (raw.fd >= 0) {	/* the frame: its headers, then the datagram */
			iov[n][0].iov_base = r->l2[e.chunk];
			iov[n][0].iov_len = L2_HDR;
			mh[n].msg_hdr.msg_iov = iov[n];
			mh[n].msg_hdr.msg_iovlen = 2;
			mh[n].msg_hdr.msg_name = &ll;
			mh[n].msg_hdr.msg_namelen = sizeof(ll);
		} else {	/* the socket is connected to the gateway */
			mh[n].msg_hdr.msg_iov = &iov[n][1];
			mh[n].msg_hdr.msg_iovlen = 1;
		}
		n++;
	}
	if (n == 0)
		return 0;
	k = sendmmsg(raw.fd >= 0 ? raw.fd : c->fd, mh, n, MSG_DONTWAIT);
	if (k < 0)
		k = 0;
	st.tx += (unsigned)k;
	/* The socket buffer is full: what did not go is counted, the NACKs bring it back. */
	st.tx_fail += n - (unsigned)k;
	return (unsigned)k;
}

static unsigned
receive(const struct opts *o, struct client *c, uint64_t now)
{
	static uint8_t bufs[BATCH][2048];
	struct mmsghdr mh[BATCH];
	struct iovec iov[BATCH];
	int n;

	for (unsigned i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		memset(&mh[i], 0, sizeof(mh[i]));
		mh[i].msg_hdr.msg_iov = &iov[i];
		mh[i].msg_hdr.msg_iovlen = 1;
	}
	n = recvmmsg(c->fd, mh, BATCH, MSG_DONTWAIT, NULL);
	for (int i = 0; i < n; i++)
		on_datagram(o, c, bufs[i], mh[i].msg_len, now);
	return n > 0 ? (unsigned)n : 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static struct client cl[MAX_CLIENTS];
	struct pollfd pfd[MAX_CLIENTS];
	struct opts o;
	uint64_t t0, deadline, now;
	uint32_t next_id = 1;
	unsigned pings = 0, first = 0;
	bool echo_listed = false;
	double el;

	if (argc < 2) {
		fprintf(stderr, "dp_sender: a helper of tests/dataplane_echo.sh, not a test\n");
		usage();
		printf("0 passed, 0 failed, 0 skipped\n");
		return 0;
	}
	if (parse(argc, argv, &o) != 0) {
		usage();
		return 2;
	}
	if (o.ping != 0) {
		pings = ping(&o, o.ping);
		printf("ping_sent %u\nping_replies %u\n", o.ping, pings);
	}
	lat_us = calloc(o.requests, sizeof(*lat_us));
	for (unsigned i = 0; i < o.clients; i++) {
		struct sockaddr_in any = { .sin_family = AF_INET };
		int sz = 4 << 20;

		cl[i].id = 1000 + i;
		cl[i].fd = socket(AF_INET, SOCK_DGRAM, 0);
		cl[i].q.e = calloc(QCAP, sizeof(*cl[i].q.e));
		cl[i].rq.e = calloc(QCAP, sizeof(*cl[i].rq.e));
		/* Connected: no route lookup per datagram, and the source address is known. */
		if (cl[i].fd < 0 || cl[i].q.e == NULL || cl[i].rq.e == NULL || lat_us == NULL ||
		    bind(cl[i].fd, (struct sockaddr *)&any, sizeof(any)) != 0 ||
		    connect(cl[i].fd, (const struct sockaddr *)&o.gw, sizeof(o.gw)) != 0) {
			perror("dp_sender: socket");
			return 1;
		}
		setsockopt(cl[i].fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(cl[i].fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		pfd[i].fd = cl[i].fd;
		pfd[i].events = POLLIN;
		for (unsigned s = 0; s < o.window; s++) {
			cl[i].req[s].raw = malloc((size_t)o.max_chunks * RAW_CAP);
			cl[i].req[s].out = malloc((size_t)o.max_chunks * MAX_DGRAM);
			if (o.raw_if != NULL)
				cl[i].req[s].l2 = malloc((size_t)MAX_CHUNKS_CAP * L2_HDR);
			if (cl[i].req[s].raw == NULL || cl[i].req[s].out == NULL ||
			    (o.raw_if != NULL && cl[i].req[s].l2 == NULL))
				return 1;
		}
	}
	for (unsigned i = 0; i < o.clients; i++)
		if (open_session(&cl[i], &o, &o.window, &echo_listed) != 0)
			return 1;
	printf("sessions %u\nhello_tx %llu\necho_listed %d\nwindow %u\n", o.clients,
	       (unsigned long long)st.hello_tx, echo_listed, o.window);
	if (o.raw_if != NULL && raw_open(&o, cl, o.clients) != 0)
		return 1;
	printf("tx_path %s\n", o.raw_if != NULL ? "packet" : "udp");

	t0 = tg_now_ns();
	deadline = t0 + (uint64_t)o.time_limit_s * 1000000000ull;
	while ((st.completed + st.failed < o.requests) && (now = tg_now_ns()) < deadline) {
		unsigned work = 0, due = BATCH, sent = 0;

		if (o.rate > 0) {
			/* Slots due by now less those released; a backlog is capped at a batch
			 * per client, so a stall does not turn into a burst. */
			uint64_t k = (uint64_t)((double)(now - t0) * 1e-9 * o.rate) + 1;

			if (k > st.paced + (uint64_t)BATCH * o.clients)
				st.paced = k - (uint64_t)BATCH * o.clients;
			due = k > st.paced ? (unsigned)(k - st.paced) : 0;
		}
		/* The first client turns: with a few slots due per pass, the same one would take
		 * them all and the others' requests would wait until their timer resent them. */
		first = (first + 1) % o.clients;
		/* One poll for all sockets, then a read only where something waits: a recvmmsg
		 * per socket and pass would be most of a fast sender's syscalls. */
		if (poll(pfd, o.clients, 0) < 0)
			for (unsigned i = 0; i < o.clients; i++)
				pfd[i].revents = POLLIN;
		for (unsigned j = 0; j < o.clients; j++) {
			unsigned ci = (first + j) % o.clients;
			struct client *c = &cl[ci];
			unsigned max = o.rate > 0 ? (due - sent < BATCH ? due - sent : BATCH) : BATCH;

			for (unsigned s = 0; s < o.window && st.started < o.requests; s++)
				if (!c->req[s].active && start_request(&o, c, s, next_id++, now) != 0)
					return 1;
			if (pfd[ci].revents != 0)
				work += receive(&o, c, now);
			if (max > 0) {
				unsigned t = transmit(&o, c, now, max);

				work += t;
				sent += t;
			}
			/* Heard nothing for the timeout: every chunk was lost; resend it whole. */
			for (unsigned s = 0; s < o.window; s++) {
				struct req *r = &c->req[s];

				if (!r->active ||
				    now - r->t_activity < (uint64_t)o.req_timeout_ms * 1000000ull)
					continue;
				r->t_activity = now;
				st.resent_whole++;
				for (unsigned k = 0; k < r->n; k++)
					impair(&o, c, &c->rq, s, k, now);
			}
		}
		if (o.rate > 0) {
			uint64_t next;
			struct timespec ts;

			st.paced += sent;
			if (sent < due) {	/* nothing queued for a due slot: the window is full */
				st.behind_ns += 1000000000ull / (uint64_t)(o.rate > 1 ? o.rate : 1) *
						(due - sent);
				st.paced += due - sent;	/* open loop: that slot is gone */
			}
			/* Sleep to the next slot (absolute, no drift), spinning the last 20 us. */
			next = t0 + (uint64_t)((double)(st.paced + 1) / o.rate * 1e9);
			now = tg_now_ns();
			if (next > now + 20000 && work == 0) {
				uint64_t to = next - 20000 < now + 1000000 ? next - 20000 : now + 1000000;

				ts.tv_sec = (time_t)(to / 1000000000ull);
				ts.tv_nsec = (long)(to % 1000000000ull);
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			}
			continue;
		}
		if (work == 0)
			poll(pfd, o.clients, 1);
	}
	now = tg_now_ns();
	el = (double)(now - t0) * 1e-9;
	qsort(lat_us, n_lat, sizeof(*lat_us), cmp_u32);
	printf("requests %u\nstarted %llu\ncompleted %llu\ncrc_bad %llu\nfailed %llu\n",
	       o.requests, (unsigned long long)st.started, (unsigned long long)st.completed,
	       (unsigned long long)st.crc_bad, (unsigned long long)st.failed);
	printf("lost %llu\n", (unsigned long long)(o.requests - st.completed - st.failed));
	printf("chunks %llu\ntx_dgrams %llu\ntx_fail %llu\nimpair_dropped %llu\n"
	       "impair_dups %llu\nimpair_swaps %llu\n",
	       (unsigned long long)st.chunks_first, (unsigned long long)st.tx,
	       (unsigned long long)st.tx_fail, (unsigned long long)st.dropped,
	       (unsigned long long)st.dups, (unsigned long long)st.swaps);
	printf("resent_nack %llu\nnack_unlost %llu\nresent_whole %llu\nnacks_rx %llu\n"
	       "errors_rx %llu\noverloaded_rx %llu\nstale_rx %llu\nbad_rx %llu\n",
	       (unsigned long long)st.resent_nack, (unsigned long long)st.nack_unlost,
	       (unsigned long long)st.resent_whole,
	       (unsigned long long)st.nacks_rx, (unsigned long long)st.errors_rx,
	       (unsigned long long)st.overloaded, (unsigned long long)st.stale_rx,
	       (unsigned long long)st.rx_bad);
	printf("pendings %llu\nstale_responses %llu\n", (unsigned long long)st.pendings,
	       (unsigned long long)st.stale_resp);
	printf("elapsed_s %.3f\nrequests_per_s %.0f\ndgrams_per_s %.0f\n", el,
	       (double)st.completed / el, (double)st.tx / el);
	if (o.rate > 0)
		printf("rate_pps %.0f\nachieved_pps %.0f\nbehind_s %.3f\n", o.rate,
		       (double)st.tx / el, (double)st.behind_ns * 1e-9);
	if (n_lat != 0)
		printf("latency_us_p50 %u\nlatency_us_p99 %u\nlatency_us_max %u\n",
		       lat_us[n_lat / 2], lat_us[n_lat * 99 / 100], lat_us[n_lat - 1]);
	for (unsigned i = 0; i < o.clients; i++) {
		close(cl[i].fd);
		for (unsigned s = 0; s < o.window; s++) {
			free(cl[i].req[s].raw);
			free(cl[i].req[s].out);
			free(cl[i].req[s].l2);
		}
		free(cl[i].q.e);
		free(cl[i].rq.e);
	}
	free(lat_us);
	if (raw.fd >= 0)
		close(raw.fd);
	/* Pings are the script's to judge (one may be dropped before a starved port). */
	return st.completed == o.requests && st.crc_bad == 0 ? 0 : 1;
}
