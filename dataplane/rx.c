/*
 * RX hot path: a burst from the queue, each frame classified (ARP and ICMP echo answered in
 * place, IPv4/UDP checked, datagrams for our port handed to reassembly), every drop counted.
 * Thread: the RX lcore owning lc. No allocation beyond reply mbufs, no log, no lock.
 */
#include <sys/prctl.h>
#include <time.h>

#include <rte_arp.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_udp.h>

#include "dataplane/dp_int.h"

/* Sources we never answer: a reply would go to a network, a loopback, or back to us. */
static inline bool
dp_ip_src_bad(const struct dp_lcore *lc, rte_be32_t src)
{
	uint32_t a = rte_be_to_cpu_32(src);

	return a == 0 || a == UINT32_MAX || (a >> 28) == 0xe || (a >> 24) == 127 ||
	       src == lc->ip;
}

/* Ones' complement sum of len bytes is all ones: the checksum inside them is right. */
static inline bool
dp_csum_ok(const void *p, size_t len)
{
	return rte_raw_cksum(p, len) == 0xffff;
}

/* The UDP checksum over pseudo header, header and payload (len bytes at udp) is right. */
static inline bool
dp_udp_csum_ok(const struct rte_ipv4_hdr *ip, const struct rte_udp_hdr *udp, size_t len)
{
	uint32_t s = (uint32_t)rte_raw_cksum(udp, len) + rte_ipv4_phdr_cksum(ip, 0);

	return (uint16_t)((s & 0xffff) + (s >> 16)) == 0xffff;
}

/* Answer an ARP request for our address in place. @return true if m was consumed. */
static bool
dp_rx_arp(struct dp_lcore *lc, struct rte_mbuf *m, struct rte_ether_hdr *eth)
{
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	struct rte_arp_ipv4 *a = &arp->arp_data;

	if (m->data_len < RTE_ETHER_HDR_LEN + sizeof(*arp) ||
	    arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4) {
		DP_DROP(lc, ARP_BAD);
		return false;
	}
	if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) || a->arp_tip != lc->ip ||
	    dp_ip_src_bad(lc, a->arp_sip) || !rte_is_unicast_ether_addr(&a->arp_sha)) {
		DP_DROP(lc, ARP_IGNORED);
		return false;
	}
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	a->arp_tha = a->arp_sha;
	a->arp_tip = a->arp_sip;
	a->arp_sha = lc->mac;
	a->arp_sip = lc->ip;
	eth->dst_addr = a->arp_tha;
	eth->src_addr = lc->mac;
	m->data_len = m->pkt_len = RTE_ETHER_HDR_LEN + sizeof(*arp);
	lc->stats.arp_replies++;
	dp_tx_enqueue(lc, m);
	return true;
}

/* Answer an ICMP echo request in place (same size: no amplification). @return consumed. */
static bool
dp_rx_icmp(struct dp_lcore *lc, struct rte_mbuf *m, struct rte_ether_hdr *eth,
	   struct rte_ipv4_hdr *ip, unsigned ihl, unsigned l4_len)
{
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)((uint8_t *)ip + ihl);

	if (l4_len < sizeof(*icmp) || !dp_csum_ok(icmp, l4_len)) {
		DP_DROP(lc, ICMP_BAD);
		return false;
	}
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0) {
		DP_DROP(lc, ICMP_TYPE);
		return false;
	}
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = ~rte_raw_cksum(icmp, l4_len);
	ip->dst_addr = ip->src_addr;
	ip->src_addr = lc->ip;
	ip->time_to_live = 64;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	eth->dst_addr = eth->src_addr;
	eth->src_addr = lc->mac;
	lc->stats.icmp_replies++;
	dp_tx_enqueue(lc, m);
	return true;
}

/*
 * Check a UDP datagram for us; pass its payload on. m stays the caller's.
 * @return the message this datagram completed, or NULL
 */
static struct dp_slot *
dp_rx_udp(struct dp_lcore *lc, struct rte_mbuf *m, struct rte_ether_hdr *eth,
	  struct rte_ipv4_hdr *ip, unsigned ihl, unsigned l4_len, uint64_t now)
{
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)((uint8_t *)ip + ihl);
	struct dp_peer from;

	if (l4_len < sizeof(*udp)) {
		DP_DROP(lc, UDP_RUNT);
		return NULL;
	}
	if (rte_be_to_cpu_16(udp->dgram_len) != l4_len) {
		DP_DROP(lc, UDP_LEN);
		return NULL;
	}
	if (udp->dst_port != lc->udp_port) {
		DP_DROP(lc, UDP_PORT);
		return NULL;
	}
	if (udp->dgram_cksum == 0) {
		if (!lc->csum_zero_ok) {
			DP_DROP(lc, UDP_CSUM_ZERO);
			return NULL;
		}
	} else if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_GOOD &&
		   ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
		    !dp_udp_csum_ok(ip, udp, l4_len))) {
		DP_DROP(lc, UDP_CSUM);
		return NULL;
	}
	lc->stats.udp_rx++;
	from.mac = eth->src_addr;
	from.ip = ip->src_addr;
	from.port = udp->src_port;
	return dp_udp_input(lc, &from, (const uint8_t *)(udp + 1),
			    (uint16_t)(l4_len - sizeof(*udp)), now);
}

/*
 * Classify one frame. @return true if m was consumed (queued for TX as a reply); false if the
 * caller frees it. *done is set to the message the frame completed, or NULL.
 */
static bool
dp_rx_one(struct dp_lcore *lc, struct rte_mbuf *m, uint64_t now, struct dp_slot **done)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip;
	unsigned ihl, tot, l4_len;
	uint16_t frag;

	lc->stats.rx_bytes += m->pkt_len;
	if (unlikely(m->nb_segs != 1)) {
		DP_DROP(lc, MULTISEG);	/* MTU-sized frames fit one mbuf; nothing chains here */
		return false;
	}
	if (unlikely(m->data_len < RTE_ETHER_HDR_LEN)) {
		DP_DROP(lc, RUNT);
		return false;
	}
	if (!rte_is_same_ether_addr(&eth->dst_addr, &lc->mac) &&
	    !rte_is_broadcast_ether_addr(&eth->dst_addr)) {
		DP_DROP(lc, ETH_DST);
		return false;
	}
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return dp_rx_arp(lc, m, eth);
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
		DP_DROP(lc, ETHERTYPE);
		return false;
	}

	ip = (struct rte_ipv4_hdr *)(eth + 1);
	if (unlikely(m->data_len < RTE_ETHER_HDR_LEN + sizeof(*ip))) {
		DP_DROP(lc, IP_RUNT);
		return false;
	}
	if (unlikely((ip->version_ihl >> 4) != 4)) {
		DP_DROP(lc, IP_VERSION);
		return false;
	}
	ihl = (ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) * RTE_IPV4_IHL_MULTIPLIER;
	if (unlikely(ihl < sizeof(*ip) || RTE_ETHER_HDR_LEN + ihl > m->data_len)) {
		DP_DROP(lc, IP_IHL);
		return false;
	}
	tot = rte_be_to_cpu_16(ip->total_length);
	if (unlikely(tot < ihl || RTE_ETHER_HDR_LEN + tot > m->data_len)) {
		DP_DROP(lc, IP_LEN);
		return false;
	}
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
	    ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
	     !dp_csum_ok(ip, ihl))) {
		DP_DROP(lc, IP_CSUM);
		return false;
	}
	frag = rte_be_to_cpu_16(ip->fragment_offset);
	if (unlikely(frag & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))) {
		DP_DROP(lc, IP_FRAG);
		return false;
	}
	if (ip->dst_addr != lc->ip) {
		DP_DROP(lc, IP_DST);
		return false;
	}
	if (unlikely(dp_ip_src_bad(lc, ip->src_addr))) {
		DP_DROP(lc, IP_SRC);
		return false;
	}
	/* Ethernet padding past the IPv4 datagram is not ours to echo or parse. */
	m->data_len = m->pkt_len = RTE_ETHER_HDR_LEN + tot;
	l4_len = tot - ihl;
	if (ip->next_proto_id == IPPROTO_UDP) {
		*done = dp_rx_udp(lc, m, eth, ip, ihl, l4_len, now);
		return false;
	}
	if (ip->next_proto_id == IPPROTO_ICMP)
		return dp_rx_icmp(lc, m, eth, ip, ihl, l4_len);
	DP_DROP(lc, IP_PROTO);
	return false;
}

/*
 * Receive and classify one burst; free in one call what it did not turn into replies, hand
 * what it completed to the consumer in one ring operation. @return frames received
 */
static unsigned
dp_rx_burst(struct dp_lcore *lc)
{
	struct rte_mbuf *pkts[DP_BURST], *spent[DP_BURST];
	struct dp_slot *done[DP_BURST];
	unsigned n_spent = 0, n_done = 0;
	uint64_t now;
	uint16_t n, i;

	n = rte_eth_rx_burst(lc->port_id, lc->queue_id, pkts, DP_BURST);
	if (n == 0)
		return 0;
	lc->stats.rx_pkts += n;
	now = rte_rdtsc();
	for (i = 0; i < n && i < DP_PREFETCH; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (i = 0; i < n; i++) {
		if (i + DP_PREFETCH < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + DP_PREFETCH], void *));
		done[n_done] = NULL;
		if (!dp_rx_one(lc, pkts[i], now, &done[n_done]))
			spent[n_spent++] = pkts[i];
		n_done += done[n_done] != NULL;
	}
	rte_pktmbuf_free_bulk(spent, n_spent);
	if (n_done != 0)
		dp_reasm_deliver(lc, done, n_done);
	return n;
}

/*
 * One pass of the loop: a burst, the answers workers posted, timers. TX leaves when a
 * burst's worth is buffered, when the RX queue is drained (a short burst: nothing more to
 * batch with) or at the drain deadline.
 */
static unsigned
dp_lcore_poll(struct dp_lcore *lc)
{
	uint64_t t0 = rte_rdtsc(), now;
	unsigned n = dp_rx_burst(lc), k;

	k = dp_resp_drain(lc);
	now = rte_rdtsc();
	/*
	 * Gaps are judged with the RX queue drained: after a sleep the lcore wakes to a backlog
	 * (a 10 us nanosleep here sometimes lasts 2-4 ms), and a NACK sent before the backlog is
	 * read lists chunks already waiting in it. A full burst after full burst still runs the
	 * timers once per gap.
	 */
	if (n < DP_BURST || now >= lc->timers_tsc) {
		dp_reasm_timers(lc, now);
		lc->timers_tsc = now + lc->re.gap_tsc;
	}
	if (lc->tx_n != 0 && (n < DP_BURST || now >= lc->tx_deadline))
		dp_tx_flush(lc);
	/* The cost of a pass that found frames; empty polls are not work (make bench). */
	if (n != 0)
		lc->stats.busy_cycles += rte_rdtsc() - t0;
	return n + k;
}

/*
 * Back off when there was no work: spin (rte_pause) for spin_tsc after the last work, then
 * sleep, doubling from idle_sleep_min_us to idle_sleep_max_us. The first packet after a sleep
 * waits at most one sleep in the queue (the RX ring holds rx_desc frames meanwhile).
 */
static void
dp_lcore_idle(struct dp_lcore *lc, unsigned work)
{
	const struct dp_config *cfg = &lc->dp->cfg;
	struct timespec ts;

	if (work != 0) {
		lc->busy_tsc = rte_rdtsc();
		lc->sleep_us = 0;
		return;
	}
	if (rte_rdtsc() - lc->busy_tsc < lc->spin_tsc) {
		rte_pause();
		return;
	}
	lc->sleep_us = lc->sleep_us == 0 ? cfg->idle_sleep_min_us
					 : RTE_MIN(2 * lc->sleep_us, cfg->idle_sleep_max_us);
	ts.tv_sec = lc->sleep_us / 1000000;
	ts.tv_nsec = (long)(lc->sleep_us % 1000000) * 1000;
	nanosleep(&ts, NULL);
	lc->stats.idle_sleeps++;
}

int
dp_lcore_main(void *arg)
{
	struct dp_lcore *lc = arg;

	/* Default timer slack is 50 us: it would stretch every 10 us back-off sleep to 60. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	lc->busy_tsc = rte_rdtsc();
	while (!__atomic_load_n(&lc->dp->stop, __ATOMIC_ACQUIRE))
		dp_lcore_idle(lc, dp_lcore_poll(lc));
	dp_tx_flush(lc);
	return 0;
}

unsigned
dp_poll(struct dp *dp, unsigned q)
{
	return dp_lcore_poll(dp->lc[q]);
}

void
dp_flush(struct dp *dp, unsigned q)
{
	dp_tx_flush(dp->lc[q]);
}
