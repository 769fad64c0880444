/*
 * Shared by the dataplane's .c files only: the per-lcore state, the hot-path helpers between rx.c, tx.c
 * and reasm.c. port.c is the init path (may allocate and log); rx.c, tx.c and reasm.c are the
 * hot path (bursts, no malloc, no log, no lock).
 */
#ifndef TG_DP_INT_H
#define TG_DP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/dataplane.h"

enum {
	DP_BURST = 32,		/* mbufs per rx_burst and per tx_burst */
	DP_PREFETCH = 3,	/* prefetch distance within a burst */
	DP_TX_BUF = 2 * DP_BURST,	/* frames buffered before a forced flush */
	DP_TX_RETRIES = 2,	/* extra tx_burst calls before unsent frames are freed */
	DP_HDR_LEN = RTE_ETHER_HDR_LEN + 20 + 8,	/* Ethernet + IPv4 (no options) + UDP */
};

#define DP_DROP(lc, sym)	((lc)->stats.drop[DP_DROP_##sym]++)

/** Where a datagram came from, i.e. where its answers go (all in network order). */
struct dp_peer {
	struct rte_ether_addr mac;	/* Ethernet source of the datagram: the next hop back */
	rte_be32_t ip;
	rte_be16_t port;
};

/** One RX lcore: its queue pair, TX buffer, idle state and counters. Owner thread only. */
struct dp_lcore {
	struct dp *dp;			/* the dataplane this lcore serves */
	struct rte_mempool *pool;	/* mbufs for RX and for replies */
	uint16_t port_id;
	uint16_t queue_id;		/* RX and TX queue of this lcore */
	struct rte_ether_addr mac;	/* the port's address */
	rte_be32_t ip;			/* the gateway's address */
	rte_be16_t udp_port;		/* the protocol's port */
	bool csum_zero_ok;		/* config udp_csum_zero_ok */
	uint16_t ip_id;			/* IPv4 identification of the next frame we originate */
	uint16_t max_payload;		/* UDP payload bytes that fit the MTU and an mbuf */

	/* TX: frames buffered until DP_BURST, the drain deadline, or an idle poll. */
	uint16_t tx_n;
	uint64_t tx_deadline;		/* TSC by which buffered frames must leave */
	uint64_t tx_drain_tsc;		/* config tx_drain_us in TSC cycles */
	struct rte_mbuf *tx_pkts[DP_TX_BUF];

	/* Idle back-off. */
	uint64_t busy_tsc;		/* TSC of the last poll that found work */
	uint64_t spin_tsc;		/* config idle_spin_us in TSC cycles */
	uint32_t sleep_us;		/* next back-off sleep; 0 while spinning */

	struct dp_stats stats;
} __rte_cache_aligned;

struct dp {
	struct dp_config cfg;		/* copy of the caller's, port name dropped */
	uint16_t port_id;
	uint16_t n_queues;
	struct rte_mempool *pool;
	struct dp_lcore **lc;		/* [n_queues], each on its own cache lines */
	int stop;			/* set by dp_stop(), read by the RX loops */
	bool running;			/* RX loops launched */
	bool port_started;
};

/* rx.c: the RX loop (dp_lcore_main() is what dp_start() launches) */
int dp_lcore_main(void *arg);

/* reasm.c: a datagram that passed the UDP checks; payload lies in an mbuf that stays the
 * caller's. now is the burst's TSC. */
void dp_udp_input(struct dp_lcore *lc, const struct dp_peer *from, const uint8_t *payload,
		  uint16_t len, uint64_t now);

/* tx.c */
void dp_tx_flush(struct dp_lcore *lc);
uint8_t *dp_tx_udp_alloc(struct dp_lcore *lc, struct rte_mbuf **m);
void dp_tx_udp_send(struct dp_lcore *lc, struct rte_mbuf *m, const struct dp_peer *to,
		    uint16_t payload_len);

/** Queue a complete frame for TX; takes m. Flushes when the buffer holds a burst. */
static inline void
dp_tx_enqueue(struct dp_lcore *lc, struct rte_mbuf *m)
{
	if (lc->tx_n == 0)
		lc->tx_deadline = rte_rdtsc() + lc->tx_drain_tsc;
	lc->tx_pkts[lc->tx_n++] = m;
	if (lc->tx_n >= DP_BURST)
		dp_tx_flush(lc);
}

#endif
