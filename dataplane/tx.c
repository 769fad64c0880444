/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TX hot path: frames buffered per lcore and sent in bursts; datagrams the gateway originates
 * (NACK, ERROR, RESPONSE) get their Ethernet, IPv4 and UDP headers here.
 * Thread: the RX lcore owning lc. No allocation beyond mbufs, no log, no lock.
 */
#include <time.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/dp_int.h"

/*
 * Send what is buffered. rte_eth_tx_burst() takes only the first k frames: the rest get
 * DP_TX_RETRIES more tries (a PMD like af_xdp frees TX slots as it reaps completions inside
 * tx_burst), then are freed and counted; a reply is never worth stalling the RX queue for.
 */
void
dp_tx_flush(struct dp_lcore *lc)
{
	uint16_t n = lc->tx_n, sent = 0, k, i;
	unsigned tries;

	if (n == 0)
		return;
	for (tries = 0; tries <= DP_TX_RETRIES && sent < n; tries++)
		sent += rte_eth_tx_burst(lc->port_id, lc->queue_id, lc->tx_pkts + sent, n - sent);
	lc->stats.tx_pkts += sent;
	for (i = 0; i < sent; i++)
		lc->stats.tx_bytes += lc->tx_pkts[i]->pkt_len;
	k = n - sent;
	if (unlikely(k != 0)) {
		lc->stats.drop[DP_DROP_TX_FULL] += k;
		rte_pktmbuf_free_bulk(lc->tx_pkts + sent, k);
	}
	lc->tx_n = 0;
}

/*
 * Send what is buffered, waiting (bounded, about 100 ms) while the port's TX ring is full:
 * for a stopping lcore, whose last answers have no later pass to leave in.
 */
void
dp_tx_flush_wait(struct dp_lcore *lc)
{
	struct timespec ts = { 0, 100000 };
	uint16_t n = lc->tx_n, sent = 0;

	for (unsigned tries = 0; tries < 1000 && sent < n; tries++) {
		uint16_t k = rte_eth_tx_burst(lc->port_id, lc->queue_id, lc->tx_pkts + sent,
					      n - sent);

		for (uint16_t i = sent; i < sent + k; i++)
			lc->stats.tx_bytes += lc->tx_pkts[i]->pkt_len;
		sent += k;
		if (k == 0)
			nanosleep(&ts, NULL);
	}
	lc->stats.tx_pkts += sent;
	if (unlikely(sent < n)) {
		lc->stats.drop[DP_DROP_TX_FULL] += n - sent;
		rte_pktmbuf_free_bulk(lc->tx_pkts + sent, n - sent);
	}
	lc->tx_n = 0;
}

/*
 * Start a datagram the gateway originates.
 * @param m  set to a new mbuf, the caller's until dp_tx_udp_send() takes it (or it frees it)
 * @return where the UDP payload goes (lc->max_payload bytes), or NULL when the pool is
 *         empty (counted as NO_MBUF)
 */
uint8_t *
dp_tx_udp_alloc(struct dp_lcore *lc, struct rte_mbuf **m)
{
	*m = rte_pktmbuf_alloc(lc->pool);
	if (unlikely(*m == NULL)) {
		DP_DROP(lc, NO_MBUF);
		return NULL;
	}
	return rte_pktmbuf_mtod_offset(*m, uint8_t *, DP_HDR_LEN);
}

/*
 * Put headers in front of the payload_len bytes written at dp_tx_udp_alloc()'s pointer and
 * queue the frame to peer to. Takes m. Checksums in software: veth and af_xdp offer no
 * offload, and a reply is small next to what it answers.
 */
void
dp_tx_udp_send(struct dp_lcore *lc, struct rte_mbuf *m, const struct dp_peer *to,
	       uint16_t payload_len)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint16_t l4_len = sizeof(*udp) + payload_len;

	RTE_ASSERT(payload_len <= lc->max_payload);
	eth->dst_addr = to->mac;
	eth->src_addr = lc->mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16(sizeof(*ip) + l4_len);
	ip->packet_id = rte_cpu_to_be_16(lc->ip_id++);
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->hdr_checksum = 0;
	ip->src_addr = lc->ip;
	ip->dst_addr = to->ip;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = lc->udp_port;
	udp->dst_port = to->port;
	udp->dgram_len = rte_cpu_to_be_16(l4_len);
	dp_auth_seal(lc, (uint8_t *)(udp + 1), payload_len, to);
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	m->data_len = m->pkt_len = DP_HDR_LEN + payload_len;
	dp_tx_enqueue(lc, m);
}
