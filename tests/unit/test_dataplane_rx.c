/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dataplane L2-L4 on a ring-backed port: ARP and ICMP echo answered, every IPv4/UDP drop
 * reason counted exactly once (and nothing else moved), TX overflow counted, the RX loop's
 * idle back-off, config refusals.
 */
#include "tests/harness.h"
#include "dataplane/dp_testkit.h"

#include <errno.h>
#include <time.h>

#include <rte_arp.h>
#include <rte_icmp.h>

enum { UDP_PORT = 7700 };

static struct dptk_port port;
static struct dp *dp;
static uint8_t frame[DPTK_MAX_FRAME], reply[DPTK_MAX_FRAME];

static struct rte_ipv4_hdr *
ip_of(uint8_t *f)
{
	return (struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
}

static struct rte_udp_hdr *
udp_of(uint8_t *f)
{
	return (struct rte_udp_hdr *)(f + RTE_ETHER_HDR_LEN + sizeof(struct rte_ipv4_hdr));
}

/* A good datagram for our port, 16 payload bytes. */
static size_t
good_udp(uint8_t *f)
{
	static const uint8_t payload[16] = "0123456789abcdef";

	return dptk_udp_frame(f, port.mac, DPTK_CL_IP, DPTK_GW_IP, 40000, UDP_PORT, payload,
			      sizeof(payload));
}

/* Feed one frame through one poll; return the stats before and after. */
static void
feed(const uint8_t *f, size_t len, struct dp_stats *before, struct dp_stats *after)
{
	dp_stats_get(dp, before);
	TH_CHECK(dptk_inject(&port, f, len) == 0);
	dp_poll(dp, 0);
	dp_flush(dp, 0);
	dp_stats_get(dp, after);
}

/* Feed f and check that exactly reason d moved, by one, and nothing was sent. */
static void
expect_drop(const uint8_t *f, size_t len, enum dp_drop d)
{
	struct dp_stats a, b;

	feed(f, len, &a, &b);
	TH_CHECK_MSG(dptk_only_drop(&a, &b, d, 1), "expected %s", dp_drop_name(d));
	TH_CHECK(b.rx_pkts == a.rx_pkts + 1);
	TH_CHECK(b.udp_rx == a.udp_rx);
	TH_CHECK(dptk_tx_count(&port) == 0);
}

static size_t
arp_request(uint8_t *f, uint32_t tip)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);

	memset(f, 0, 60);
	memset(eth->dst_addr.addr_bytes, 0xff, 6);
	memcpy(eth->src_addr.addr_bytes, dptk_cl_mac, 6);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = 6;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	memcpy(arp->arp_data.arp_sha.addr_bytes, dptk_cl_mac, 6);
	arp->arp_data.arp_sip = rte_cpu_to_be_32(DPTK_CL_IP);
	arp->arp_data.arp_tip = rte_cpu_to_be_32(tip);
	return 60;	/* padded to Ethernet's minimum, as a NIC would */
}

static size_t
icmp_echo(uint8_t *f, size_t data_len)
{
	struct rte_ipv4_hdr *ip = ip_of(f);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);
	size_t l4 = sizeof(*icmp) + data_len;

	good_udp(f);
	ip->next_proto_id = IPPROTO_ICMP;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + l4));
	dptk_fix_ip_csum(f);
	memset(icmp, 0, sizeof(*icmp));
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	icmp->icmp_ident = rte_cpu_to_be_16(0x1234);
	icmp->icmp_seq_nb = rte_cpu_to_be_16(7);
	for (size_t i = 0; i < data_len; i++)
		((uint8_t *)(icmp + 1))[i] = (uint8_t)i;
	icmp->icmp_cksum = ~rte_raw_cksum(icmp, l4);
	return RTE_ETHER_HDR_LEN + sizeof(*ip) + l4;
}

static void
test_arp_request_for_us_answered(void)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)reply;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	struct dp_stats a, b;
	size_t n;

	feed(frame, arp_request(frame, DPTK_GW_IP), &a, &b);
	TH_CHECK(b.arp_replies == a.arp_replies + 1);
	TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_RUNT, 0));
	n = dptk_take(&port, reply, sizeof(reply));
	TH_CHECK(n == RTE_ETHER_HDR_LEN + sizeof(*arp));
	TH_CHECK(memcmp(eth->dst_addr.addr_bytes, dptk_cl_mac, 6) == 0);
	TH_CHECK(memcmp(eth->src_addr.addr_bytes, port.mac, 6) == 0);
	TH_CHECK(arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY));
	TH_CHECK(memcmp(arp->arp_data.arp_sha.addr_bytes, port.mac, 6) == 0);
	TH_CHECK(arp->arp_data.arp_sip == rte_cpu_to_be_32(DPTK_GW_IP));
	TH_CHECK(memcmp(arp->arp_data.arp_tha.addr_bytes, dptk_cl_mac, 6) == 0);
	TH_CHECK(arp->arp_data.arp_tip == rte_cpu_to_be_32(DPTK_CL_IP));
	TH_CHECK(b.tx_pkts == a.tx_pkts + 1);
}

static void
test_arp_for_another_address_ignored(void)
{
	expect_drop(frame, arp_request(frame, DPTK_GW_IP + 1), DP_DROP_ARP_IGNORED);
}

static void
test_arp_reply_ignored(void)
{
	size_t n = arp_request(frame, DPTK_GW_IP);

	((struct rte_arp_hdr *)(frame + RTE_ETHER_HDR_LEN))->arp_opcode =
		rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	expect_drop(frame, n, DP_DROP_ARP_IGNORED);
}

static void
test_arp_malformed_dropped(void)
{
	size_t n = arp_request(frame, DPTK_GW_IP);

	((struct rte_arp_hdr *)(frame + RTE_ETHER_HDR_LEN))->arp_hlen = 8;
	expect_drop(frame, n, DP_DROP_ARP_BAD);
	arp_request(frame, DPTK_GW_IP);
	expect_drop(frame, RTE_ETHER_HDR_LEN + 20, DP_DROP_ARP_BAD);	/* truncated */
}

static void
test_icmp_echo_answered(void)
{
	struct rte_ipv4_hdr *ip = ip_of(reply);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);
	struct dp_stats a, b;
	size_t len = icmp_echo(frame, 56), n;

	feed(frame, len, &a, &b);
	TH_CHECK(b.icmp_replies == a.icmp_replies + 1);
	n = dptk_take(&port, reply, sizeof(reply));
	TH_CHECK(n == len);
	TH_CHECK(icmp->icmp_type == RTE_IP_ICMP_ECHO_REPLY);
	TH_CHECK(rte_raw_cksum(icmp, n - RTE_ETHER_HDR_LEN - sizeof(*ip)) == 0xffff);
	TH_CHECK(rte_raw_cksum(ip, sizeof(*ip)) == 0xffff);
	TH_CHECK(ip->src_addr == rte_cpu_to_be_32(DPTK_GW_IP));
	TH_CHECK(ip->dst_addr == rte_cpu_to_be_32(DPTK_CL_IP));
	TH_CHECK(icmp->icmp_seq_nb == rte_cpu_to_be_16(7));
	TH_CHECK(memcmp(icmp + 1, frame + (n - 56), 56) == 0);
	TH_CHECK(memcmp(reply, dptk_cl_mac, 6) == 0);
}

static void
test_icmp_bad_checksum_dropped(void)
{
	size_t n = icmp_echo(frame, 8);

	frame[n - 1] ^= 1;
	expect_drop(frame, n, DP_DROP_ICMP_BAD);
	n = icmp_echo(frame, 0);
	ip_of(frame)->total_length = rte_cpu_to_be_16(20 + 4);	/* shorter than a header */
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_ICMP_BAD);
}

static void
test_icmp_not_echo_dropped(void)
{
	size_t n = icmp_echo(frame, 8);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip_of(frame) + 1);

	icmp->icmp_type = 13;	/* timestamp */
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = ~rte_raw_cksum(icmp, n - RTE_ETHER_HDR_LEN - 20);
	expect_drop(frame, n, DP_DROP_ICMP_TYPE);
}

static void
test_good_udp_passes(void)
{
	struct dp_stats a, b;

	feed(frame, good_udp(frame), &a, &b);
	TH_CHECK(b.udp_rx == a.udp_rx + 1);
	TH_CHECK(b.rx_pkts == a.rx_pkts + 1);
}

static void
test_udp_with_ethernet_padding_passes(void)
{
	static const uint8_t two[2] = { 1, 2 };
	struct dp_stats a, b;
	size_t n = dptk_udp_frame(frame, port.mac, DPTK_CL_IP, DPTK_GW_IP, 40000, UDP_PORT, two,
				  2);

	memset(frame + n, 0xee, 60 - n);
	feed(frame, 60, &a, &b);
	TH_CHECK(b.udp_rx == a.udp_rx + 1);
}

static void
test_runt_dropped(void)
{
	expect_drop(frame, 10, DP_DROP_RUNT);
}

static void
test_multiseg_dropped(void)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(port.pool), *m2 = rte_pktmbuf_alloc(port.pool);
	struct dp_stats a, b;
	size_t n = good_udp(frame);

	TH_CHECK(m != NULL && m2 != NULL);
	if (m == NULL || m2 == NULL)
		return;
	memcpy(rte_pktmbuf_append(m, 40), frame, 40);
	memcpy(rte_pktmbuf_append(m2, (uint16_t)(n - 40)), frame + 40, n - 40);
	TH_CHECK(rte_pktmbuf_chain(m, m2) == 0);
	dp_stats_get(dp, &a);
	TH_CHECK(rte_ring_enqueue(port.rx, m) == 0);
	dp_poll(dp, 0);
	dp_stats_get(dp, &b);
	TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_MULTISEG, 1));
}

static void
test_other_mac_dropped(void)
{
	size_t n = good_udp(frame);

	frame[5] ^= 0x10;
	expect_drop(frame, n, DP_DROP_ETH_DST);
}

static void
test_ipv6_dropped(void)
{
	size_t n = good_udp(frame);

	((struct rte_ether_hdr *)frame)->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	expect_drop(frame, n, DP_DROP_ETHERTYPE);
}

static void
test_ip_runt_dropped(void)
{
	good_udp(frame);
	expect_drop(frame, RTE_ETHER_HDR_LEN + 19, DP_DROP_IP_RUNT);
}

static void
test_ip_version_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->version_ihl = 0x65;
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_IP_VERSION);
}

static void
test_ip_ihl_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->version_ihl = 0x44;	/* 16 bytes: below the minimum */
	expect_drop(frame, n, DP_DROP_IP_IHL);
	n = good_udp(frame);
	ip_of(frame)->version_ihl = 0x4f;	/* 60 bytes: beyond this frame */
	expect_drop(frame, RTE_ETHER_HDR_LEN + 40, DP_DROP_IP_IHL);
}

static void
test_ip_total_length_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->total_length = rte_cpu_to_be_16((uint16_t)(n - RTE_ETHER_HDR_LEN + 1));
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_IP_LEN);	/* claims a byte more than the frame has */
	n = good_udp(frame);
	ip_of(frame)->total_length = rte_cpu_to_be_16(19);
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_IP_LEN);	/* below its own header */
}

static void
test_ip_checksum_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->hdr_checksum ^= 0x0100;
	expect_drop(frame, n, DP_DROP_IP_CSUM);
}

static void
test_ip_fragments_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG);
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_IP_FRAG);
	n = good_udp(frame);
	ip_of(frame)->fragment_offset = rte_cpu_to_be_16(185);	/* a later fragment */
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_IP_FRAG);
}

static void
test_ip_not_for_us_dropped(void)
{
	size_t n = dptk_udp_frame(frame, port.mac, DPTK_CL_IP, DPTK_GW_IP + 5, 40000, UDP_PORT,
				  "x", 1);

	expect_drop(frame, n, DP_DROP_IP_DST);
}

static void
test_ip_martian_sources_dropped(void)
{
	static const uint32_t bad[] = { 0, UINT32_MAX, RTE_IPV4(224, 0, 0, 1),
					RTE_IPV4(127, 0, 0, 1), DPTK_GW_IP };

	for (unsigned i = 0; i < RTE_DIM(bad); i++) {
		size_t n = dptk_udp_frame(frame, port.mac, bad[i], DPTK_GW_IP, 40000, UDP_PORT,
					  "x", 1);

		expect_drop(frame, n, DP_DROP_IP_SRC);
	}
}

static void
test_ip_other_protocol_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->next_proto_id = IPPROTO_TCP;
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_IP_PROTO);
}

static void
test_udp_runt_dropped(void)
{
	size_t n = good_udp(frame);

	ip_of(frame)->total_length = rte_cpu_to_be_16(20 + 4);
	dptk_fix_ip_csum(frame);
	expect_drop(frame, n, DP_DROP_UDP_RUNT);
}

static void
test_udp_length_mismatch_dropped(void)
{
	size_t n = good_udp(frame);

	udp_of(frame)->dgram_len = rte_cpu_to_be_16(8 + 15);
	dptk_fix_udp_csum(frame);
	expect_drop(frame, n, DP_DROP_UDP_LEN);
}

static void
test_udp_other_port_dropped(void)
{
	size_t n = dptk_udp_frame(frame, port.mac, DPTK_CL_IP, DPTK_GW_IP, 40000, UDP_PORT + 1,
				  "x", 1);

	expect_drop(frame, n, DP_DROP_UDP_PORT);
}

static void
test_udp_checksum_dropped(void)
{
	size_t n = good_udp(frame);

	frame[n - 1] ^= 0x40;
	expect_drop(frame, n, DP_DROP_UDP_CSUM);
}

static void
test_udp_zero_checksum_refused_by_default(void)
{
	size_t n = good_udp(frame);

	udp_of(frame)->dgram_cksum = 0;
	expect_drop(frame, n, DP_DROP_UDP_CSUM_ZERO);
}

/* A dataplane of its own on a fresh ring port (cfg tweaked by the caller). */
static int
own_dp(struct dptk_port *p, struct dp **out, struct dp_config *cfg, unsigned tx_ring)
{
	struct tg_err err = { 0 };

	if (dptk_port_make(p, tx_ring) != 0)
		return -1;
	cfg->port = p->name;
	if (dp_create(out, cfg, &err) != 0) {
		fprintf(stderr, "  dp_create: %s\n", err.msg);
		return -1;
	}
	dp_mac_get(*out, p->mac);
	return 0;
}

static void
test_udp_zero_checksum_accepted_when_allowed(void)
{
	struct dptk_port p2;
	struct dp_config cfg;
	struct dp *d2 = NULL;
	struct dp_stats a, b;
	size_t n;

	dptk_config(&cfg, &port);
	cfg.udp_csum_zero_ok = true;
	TH_CHECK(own_dp(&p2, &d2, &cfg, 1024) == 0);
	if (d2 != NULL) {
		n = dptk_udp_frame(frame, p2.mac, DPTK_CL_IP, DPTK_GW_IP, 40000, UDP_PORT, "x", 1);
		udp_of(frame)->dgram_cksum = 0;
		dp_stats_get(d2, &a);
		TH_CHECK(dptk_inject(&p2, frame, n) == 0);
		dp_poll(d2, 0);
		dp_stats_get(d2, &b);
		TH_CHECK(b.udp_rx == a.udp_rx + 1);
		TH_CHECK(b.drop[DP_DROP_UDP_CSUM_ZERO] == a.drop[DP_DROP_UDP_CSUM_ZERO]);
	}
	dp_destroy(d2);
	dptk_port_free(&p2);
}

/* The port's TX ring holds 3 frames: 8 ARP replies in one burst, 5 freed and counted. */
static void
test_tx_full_frees_and_counts(void)
{
	struct dptk_port p2;
	struct dp_config cfg;
	struct dp *d2 = NULL;
	struct dp_stats a, b;

	dptk_config(&cfg, &port);
	TH_CHECK(own_dp(&p2, &d2, &cfg, 4) == 0);
	if (d2 != NULL) {
		unsigned free_before = rte_mempool_avail_count(p2.pool);

		dp_stats_get(d2, &a);
		for (int i = 0; i < 8; i++)
			TH_CHECK(dptk_inject(&p2, frame, arp_request(frame, DPTK_GW_IP)) == 0);
		dp_poll(d2, 0);
		dp_flush(d2, 0);
		dp_stats_get(d2, &b);
		TH_CHECK(b.arp_replies == a.arp_replies + 8);
		TH_CHECK(b.tx_pkts == a.tx_pkts + 3);
		TH_CHECK(dptk_only_drop(&a, &b, DP_DROP_TX_FULL, 5));
		TH_CHECK(dptk_tx_count(&p2) == 3);
		/* The 5 unsent mbufs went back to their pool (the 3 sent wait in the ring). */
		TH_CHECK(rte_mempool_avail_count(p2.pool) == free_before - 3);
	}
	dp_destroy(d2);
	dptk_port_free(&p2);
}

/* Launched on a worker lcore, the loop answers, then sleeps when idle instead of spinning. */
static void
test_loop_answers_then_backs_off(void)
{
	struct dp_stats a, b;
	struct timespec t0, t1, c0, c1, ms = { 0, 1000000 };
	struct tg_err err = { 0 };
	double wall, cpu;
	size_t n = 0;

	TH_CHECK_MSG(dp_start(dp, &err) == 0, "%s", err.msg);
	TH_CHECK(dp_start(dp, NULL) == -EBUSY);
	dp_stats_get(dp, &a);
	TH_CHECK(dptk_inject(&port, frame, arp_request(frame, DPTK_GW_IP)) == 0);
	for (int i = 0; i < 1000 && n == 0; i++) {	/* at most 1 s */
		nanosleep(&ms, NULL);
		n = dptk_take(&port, reply, sizeof(reply));
	}
	TH_CHECK(n > 0);
	/* Idle for at least 200 ms, and until the lcore has slept 100 times (at most 5 s: on a
	 * loaded machine the lcore may wait for a core): it must sleep most of that time. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	for (int i = 0; i < 5000; i++) {
		nanosleep(&ms, NULL);
		dp_stats_get(dp, &b);
		if (i >= 200 && b.idle_sleeps > a.idle_sleeps + 100)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	dp_stop(dp);
	dp_stats_get(dp, &b);
	wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
	TH_CHECK(b.arp_replies == a.arp_replies + 1);
	TH_CHECK(b.idle_sleeps > a.idle_sleeps + 100);
	/* A spinning lcore would burn ~100% of a core; the back-off keeps it far below. */
	TH_CHECK_MSG(cpu < 0.5 * wall, "idle lcore used %.0f%% of a core", 100 * cpu / wall);
}

static void
test_config_refused(void)
{
	struct dp_config cfg;
	struct tg_err err = { 0 };
	struct dp *d2 = NULL;

	dptk_config(&cfg, &port);
	cfg.ipv4 = 0;
	TH_CHECK(dp_create(&d2, &cfg, &err) == -EINVAL && err.msg[0] != '\0');
	dptk_config(&cfg, &port);
	cfg.port = "net_nothing_here";
	TH_CHECK(dp_create(&d2, &cfg, &err) == -ENODEV);
	dptk_config(&cfg, &port);
	cfg.limits.max_inflight_total = 0;
	TH_CHECK(dp_create(&d2, &cfg, &err) == -EINVAL);
	dptk_config(&cfg, &port);
	cfg.idle_sleep_min_us = 200;	/* above the max */
	TH_CHECK(dp_create(&d2, &cfg, &err) == -EINVAL);
	TH_CHECK(d2 == NULL);
	dp_destroy(NULL);
}

/* More queues than the port has, or several without RSS to spread clients: refused. */
static void
test_queues_without_rss_refused(void)
{
	struct rte_ring *rx[2], *tx[2];
	struct dp_config cfg;
	struct tg_err err = { 0 };
	struct dp *d2 = NULL;
	char name[RTE_ETH_NAME_MAX_LEN];
	int id;

	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "mq_rx%d", i);
		rx[i] = rte_ring_create(name, 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "mq_tx%d", i);
		tx[i] = rte_ring_create(name, 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	}
	id = rte_eth_from_rings("mq", rx, 2, tx, 2, SOCKET_ID_ANY);
	TH_CHECK(id >= 0 && rte_eth_dev_get_name_by_port((uint16_t)id, name) == 0);
	if (id >= 0) {
		dptk_config(&cfg, &port);
		cfg.port = name;
		cfg.n_queues = 3;
		TH_CHECK(dp_create(&d2, &cfg, &err) == -EINVAL);
		cfg.n_queues = 2;	/* net_ring offers no RSS */
		TH_CHECK(dp_create(&d2, &cfg, &err) == -ENOTSUP);
		TH_CHECK_MSG(strstr(err.msg, "RSS") != NULL, "%s", err.msg);
		TH_CHECK(d2 == NULL);
	}
	for (int i = 0; i < 2; i++) {
		rte_ring_free(rx[i]);
		rte_ring_free(tx[i]);
	}
}

static void
test_drop_names_are_labels(void)
{
	TH_CHECK(strcmp(dp_drop_name(DP_DROP_IP_CSUM), "ip_csum") == 0);
	TH_CHECK(strcmp(dp_drop_name(DP_DROP_RUNT), "runt") == 0);
	TH_CHECK(strcmp(dp_drop_name(DP_DROP__COUNT), "?") == 0);
	for (unsigned i = 0; i < DP_DROP__COUNT; i++)
		TH_CHECK(dp_drop_help((enum dp_drop)i)[0] != '\0');
}

int
main(void)
{
	struct dp_config cfg;
	struct tg_err err = { 0 };

	if (dptk_eal_init("dprx") != 0 || dptk_port_make(&port, 1024) != 0) {
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

	TH_RUN(test_arp_request_for_us_answered);
	TH_RUN(test_arp_for_another_address_ignored);
	TH_RUN(test_arp_reply_ignored);
	TH_RUN(test_arp_malformed_dropped);
	TH_RUN(test_icmp_echo_answered);
	TH_RUN(test_icmp_bad_checksum_dropped);
	TH_RUN(test_icmp_not_echo_dropped);
	TH_RUN(test_good_udp_passes);
	TH_RUN(test_udp_with_ethernet_padding_passes);
	TH_RUN(test_runt_dropped);
	TH_RUN(test_multiseg_dropped);
	TH_RUN(test_other_mac_dropped);
	TH_RUN(test_ipv6_dropped);
	TH_RUN(test_ip_runt_dropped);
	TH_RUN(test_ip_version_dropped);
	TH_RUN(test_ip_ihl_dropped);
	TH_RUN(test_ip_total_length_dropped);
	TH_RUN(test_ip_checksum_dropped);
	TH_RUN(test_ip_fragments_dropped);
	TH_RUN(test_ip_not_for_us_dropped);
	TH_RUN(test_ip_martian_sources_dropped);
	TH_RUN(test_ip_other_protocol_dropped);
	TH_RUN(test_udp_runt_dropped);
	TH_RUN(test_udp_length_mismatch_dropped);
	TH_RUN(test_udp_other_port_dropped);
	TH_RUN(test_udp_checksum_dropped);
	TH_RUN(test_udp_zero_checksum_refused_by_default);
	TH_RUN(test_udp_zero_checksum_accepted_when_allowed);
	TH_RUN(test_tx_full_frees_and_counts);
	TH_RUN(test_loop_answers_then_backs_off);
	TH_RUN(test_config_refused);
	TH_RUN(test_queues_without_rss_refused);
	TH_RUN(test_drop_names_are_labels);

	dp_destroy(dp);
	dptk_port_free(&port);
	dp_eal_cleanup();
	TH_DONE();
}
