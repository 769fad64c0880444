/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test support for the dataplane's own unit tests (tests/unit/test_dataplane_*.c): EAL set up
 * without hugepages, ports built on rings the test feeds and drains, frame builders. Not part
 * of the API; nothing but those tests includes it. Prefix dptk_.
 */
#ifndef TG_DP_TESTKIT_H
#define TG_DP_TESTKIT_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include "dataplane/dataplane.h"

enum { DPTK_MAX_FRAME = 2048 };

#define DPTK_GW_IP	RTE_IPV4(10, 77, 0, 1)
#define DPTK_CL_IP	RTE_IPV4(10, 77, 0, 2)

static const uint8_t dptk_cl_mac[6] = { 0x02, 0, 0, 0, 0, 0x02 };

/** A ring-backed port: frames enqueued on rx reach the dataplane, its TX lands on tx. */
struct dptk_port {
	struct rte_ring *rx, *tx;
	struct rte_mempool *pool;	/* the test's own mbufs for injected frames */
	char name[64];			/* ethdev name, for dp_config.port */
	uint8_t mac[6];			/* the port's address, once dp_create() started it */
};

/**
 * EAL for a unit test: no hugepages, no shared config, no PCI, its own file prefix, lcores
 * 0-1 (a worker for dp_start()). @return 0 or -1.
 */
static inline int
dptk_eal_init(const char *test)
{
	char prefix[64], *argv[16];
	int argc = 0;

	snprintf(prefix, sizeof(prefix), "--file-prefix=tg_%s_%d", test, (int)getpid());
	argv[argc++] = (char *)test;
	argv[argc++] = (char *)"--no-huge";
	argv[argc++] = (char *)"--no-shconf";
	argv[argc++] = (char *)"-m";
	argv[argc++] = (char *)"512";
	argv[argc++] = (char *)"--no-pci";
	argv[argc++] = (char *)"--no-telemetry";	/* its socket outlives dp_eal_cleanup() */
	argv[argc++] = (char *)"-l";
	argv[argc++] = (char *)"0-1";
	argv[argc++] = (char *)"--log-level=lib.*:error";
	argv[argc++] = (char *)"--log-level=pmd.*:error";
	argv[argc++] = prefix;
	argv[argc] = NULL;
	return dp_eal_init(argc, argv, NULL) < 0 ? -1 : 0;
}

/** Make a ring port (a fresh name each call: dp_destroy() closes it). @return 0 or -1. */
static inline int
dptk_port_make(struct dptk_port *p, unsigned tx_ring_size)
{
	static unsigned seq;
	char n[32];
	int id;

	memset(p, 0, sizeof(*p));
	snprintf(n, sizeof(n), "tkrx%u", seq);
	p->rx = rte_ring_create(n, 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(n, sizeof(n), "tktx%u", seq);
	p->tx = rte_ring_create(n, tx_ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(n, sizeof(n), "tkpool%u", seq);
	p->pool = rte_pktmbuf_pool_create(n, 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	snprintf(n, sizeof(n), "tk%u", seq++);
	if (p->rx == NULL || p->tx == NULL || p->pool == NULL)
		return -1;
	id = rte_eth_from_rings(n, &p->rx, 1, &p->tx, 1, SOCKET_ID_ANY);
	if (id < 0 || rte_eth_dev_get_name_by_port((uint16_t)id, p->name) != 0)
		return -1;
	return 0;
}

/** Free what dptk_port_make() made (after dp_destroy() closed the port). */
static inline void
dptk_port_free(struct dptk_port *p)
{
	struct rte_mbuf *m = NULL;

	while (p->tx != NULL && rte_ring_dequeue(p->tx, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	while (p->rx != NULL && rte_ring_dequeue(p->rx, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	rte_ring_free(p->rx);
	rte_ring_free(p->tx);
	rte_mempool_free(p->pool);
	memset(p, 0, sizeof(*p));
}

/** Defaults for a dataplane on p: our test addresses, small limits. */
static inline void
dptk_config(struct dp_config *cfg, const struct dptk_port *p)
{
	dp_config_default(cfg);
	cfg->port = p->name;
	cfg->ipv4 = DPTK_GW_IP;
	cfg->rx_desc = 256;
	cfg->tx_desc = 256;
	cfg->limits.max_msg_bytes = 1 << 16;
	cfg->limits.max_inflight_total = 8;
	cfg->limits.max_inflight_client = 4;
}

/** Queue a frame (copied) for the dataplane's RX. @return 0 or -1. */
static inline int
dptk_inject(struct dptk_port *p, const void *frame, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(p->pool);

	if (m == NULL || rte_pktmbuf_append(m, (uint16_t)len) == NULL) {
		rte_pktmbuf_free(m);
		return -1;
	}
	memcpy(rte_pktmbuf_mtod(m, void *), frame, len);
	if (rte_ring_enqueue(p->rx, m) != 0) {
		rte_pktmbuf_free(m);
		return -1;
	}
	return 0;
}

/** Take the next frame the dataplane sent into buf. @return its length, 0 when none. */
static inline size_t
dptk_take(struct dptk_port *p, void *buf, size_t cap)
{
	struct rte_mbuf *m = NULL;
	size_t len;

	if (rte_ring_dequeue(p->tx, (void **)&m) != 0)
		return 0;
	len = RTE_MIN((size_t)rte_pktmbuf_pkt_len(m), cap);
	memcpy(buf, rte_pktmbuf_mtod(m, void *), len);
	rte_pktmbuf_free(m);
	return len;
}

/** Frames waiting in the port's TX ring. */
static inline unsigned
dptk_tx_count(const struct dptk_port *p)
{
	return rte_ring_count(p->tx);
}

/** Recompute the IPv4 header checksum of the frame f (header at 14). */
static inline void
dptk_fix_ip_csum(uint8_t *f)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);

	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
}

/** Recompute the UDP checksum of the frame f (IPv4 without options). */
static inline void
dptk_fix_udp_csum(uint8_t *f)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

/**
 * Build Ethernet + IPv4 + UDP around payload into f (DPTK_MAX_FRAME bytes), checksums right.
 * @return the frame's length
 */
static inline size_t
dptk_udp_frame(uint8_t *f, const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
	       uint16_t sport, uint16_t dport, const void *payload, size_t len)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	memcpy(eth->dst_addr.addr_bytes, dst_mac, 6);
	memcpy(eth->src_addr.addr_bytes, dptk_cl_mac, 6);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + len));
	ip->packet_id = rte_cpu_to_be_16(1);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(src_ip);
	ip->dst_addr = rte_cpu_to_be_32(dst_ip);
	udp->src_port = rte_cpu_to_be_16(sport);
	udp->dst_port = rte_cpu_to_be_16(dport);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + len));
	memcpy(udp + 1, payload, len);
	dptk_fix_ip_csum(f);
	dptk_fix_udp_csum(f);
	return RTE_ETHER_HDR_LEN + sizeof(*ip) + sizeof(*udp) + len;
}

/** Send a UDP datagram from the client address, source port sport, to the gateway's port. */
static inline int
dptk_send(struct dptk_port *p, uint16_t sport, uint16_t dport, const void *data, size_t len)
{
	uint8_t f[DPTK_MAX_FRAME];

	if (len > DPTK_MAX_FRAME - 42)
		return -1;
	return dptk_inject(p, f, dptk_udp_frame(f, p->mac, DPTK_CL_IP, DPTK_GW_IP, sport, dport,
						data, len));
}

/**
 * Take the next frame the dataplane sent and return its UDP payload (copied into buf).
 * @return the payload's length, or -1 when there is no frame or it is not IPv4/UDP
 */
static inline int
dptk_take_udp(struct dptk_port *p, uint8_t *buf, size_t cap, uint16_t *dport)
{
	uint8_t f[DPTK_MAX_FRAME];
	size_t n = dptk_take(p, f, sizeof(f)), l;
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);

	if (n < 42 || ip->next_proto_id != IPPROTO_UDP)
		return -1;
	l = rte_be_to_cpu_16(udp->dgram_len) - sizeof(*udp);
	if (42 + l > n || l > cap)
		return -1;
	if (dport != NULL)
		*dport = rte_be_to_cpu_16(udp->dst_port);
	memcpy(buf, udp + 1, l);
	return (int)l;
}

/** r is an ERROR with status st and reason why. */
static inline bool
dptk_is_error(const struct proto_msg *r, enum proto_status st, enum proto_reason why)
{
	return r->h.type == PROTO_T_ERROR && r->u.error.status == st && r->u.error.reason == why;
}

/** r is the OK echo RESPONSE to the request h that carried len bytes raw: its ids, the
 *  length and the CRC32C of those bytes. */
static inline bool
dptk_is_echo(const struct proto_msg *r, const struct proto_hdr *h, const uint8_t *raw,
	     uint32_t len)
{
	return r->h.type == PROTO_T_RESPONSE && r->h.request_id == h->request_id &&
	       r->h.client_id == h->client_id && r->h.session_id == h->session_id &&
	       r->u.resp.status == PROTO_ST_OK && r->u.resp.result_kind == PROTO_RES_ECHO &&
	       r->u.resp.echo_bytes == len && r->u.resp.echo_crc32c == proto_crc32c(0, raw, len);
}

/** True if, between before and after, drop counter d moved by n and no other drop moved. */
static inline bool
dptk_only_drop(const struct dp_stats *before, const struct dp_stats *after, enum dp_drop d,
	       uint64_t n)
{
	for (unsigned i = 0; i < DP_DROP__COUNT; i++) {
		uint64_t delta = after->drop[i] - before->drop[i];

		if (delta != (i == (unsigned)d ? n : 0)) {
			fprintf(stderr, "  drop %s moved by %llu\n", dp_drop_name((enum dp_drop)i),
				(unsigned long long)delta);
			return false;
		}
	}
	return true;
}

#endif
