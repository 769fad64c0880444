/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RX hot path: a burst from the queue, each frame classified (ARP and ICMP echo answered in
 * place, IPv4/UDP checked, datagrams for our port handed to reassembly), every drop counted.
 * Thread: the RX lcore owning lc. No allocation beyond reply mbufs, no log, no lock.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <rte_arp.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_udp.h>

#include "dataplane/dp_int.h"

/* Answer an ARP request for our address in place (dp_parse_frame() checked it). */
static void
dp_rx_arp(struct dp_lcore *lc, struct rte_mbuf *m, struct rte_ether_hdr *eth)
{
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	struct rte_arp_ipv4 *a = &arp->arp_data;

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
}

/* Answer an ICMP echo request in place (same size: no amplification; checked already). */
static void
dp_rx_icmp(struct dp_lcore *lc, struct rte_mbuf *m, struct rte_ether_hdr *eth,
	   const struct dp_parsed *p)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_icmp_hdr *icmp = rte_pktmbuf_mtod_offset(m, struct rte_icmp_hdr *, p->l4_off);

	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = ~rte_raw_cksum(icmp, p->l4_len);
	ip->dst_addr = ip->src_addr;
	ip->src_addr = lc->ip;
	ip->time_to_live = 64;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	eth->dst_addr = eth->src_addr;
	eth->src_addr = lc->mac;
	lc->stats.icmp_replies++;
	dp_tx_enqueue(lc, m);
}

/* The port's checksum verdicts, for dp_parse_frame(). */
static inline unsigned
dp_rx_hw(const struct rte_mbuf *m)
{
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	return (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD ? DP_HW_IP_GOOD : 0) |
	       (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD ? DP_HW_IP_BAD : 0) |
	       (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD ? DP_HW_L4_GOOD : 0) |
	       (l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD ? DP_HW_L4_BAD : 0);
}

/*
 * Classify one frame (dp_parse_frame(): every L2-L4 check over the bytes), then act on it.
 * @return true if m was consumed (queued for TX as a reply); false if the caller frees it.
 * *done is set to the message the frame completed, or NULL.
 */
static bool
dp_rx_one(struct dp_lcore *lc, struct rte_mbuf *m, uint64_t now, struct dp_slot **done)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
	const struct rte_udp_hdr *udp;
	struct dp_parsed p;
	struct dp_peer from;

	lc->stats.rx_bytes += m->pkt_len;
	if (unlikely(m->nb_segs != 1)) {
		DP_DROP(lc, MULTISEG);	/* MTU-sized frames fit one mbuf; nothing chains here */
		return false;
	}
	dp_parse_frame(&lc->parse, (const uint8_t *)eth, m->data_len, dp_rx_hw(m), &p);
	switch (p.v) {
	case DP_V_DROP:
		lc->stats.drop[p.drop]++;
		return false;
	case DP_V_ARP:
		dp_rx_arp(lc, m, eth);
		return true;
	case DP_V_ICMP:
		/* Ethernet padding past the IPv4 datagram is not ours to echo. */
		m->data_len = m->pkt_len = RTE_ETHER_HDR_LEN + p.ip_len;
		dp_rx_icmp(lc, m, eth, &p);
		return true;
	case DP_V_UDP:
		break;
	}
	udp = rte_pktmbuf_mtod_offset(m, const struct rte_udp_hdr *, p.l4_off);
	lc->stats.udp_rx++;
	from.mac = eth->src_addr;
	from.ip = ip->src_addr;
	from.port = udp->src_port;
	/* Flags' low byte (big endian): a device that seals gets sealed answers. */
	from.crc = p.payload_len > PROTO_OFF_FLAGS + 1 &&
		   (rte_pktmbuf_mtod_offset(m, const uint8_t *, p.payload_off)[PROTO_OFF_FLAGS + 1] &
		    (PROTO_F_CRC | PROTO_F_MAC)) != 0;
	*done = dp_udp_input(lc, &from, rte_pktmbuf_mtod_offset(m, const uint8_t *, p.payload_off),
			     p.payload_len, now);
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
	unsigned n, k;

	dp_auth_poll(lc);	/* a reload's keys apply from a burst boundary */
	n = dp_rx_burst(lc);

	k = dp_resp_drain(lc);
	now = rte_rdtsc();
	/*
	 * Gaps are judged with the RX queue drained: after a sleep the lcore wakes to a backlog
	 * (a 10 us nanosleep here sometimes lasts 2-4 ms), and a NACK sent before the backlog is
	 * read lists chunks already waiting in it. A full burst after full burst still runs the
	 * timers once per gap. (Judging a full burst's timers at t0 instead, to spare a message
	 * descheduled mid-burst a spurious NACK, broke session expiry: state stamped during the
	 * burst is newer than t0, and the unsigned age wrapped, expiring live sessions.)
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
 * Deep idle: nothing for idle_deep_after_us and no message open, so no gap or timeout is
 * due; only a new first chunk can arrive, and it may wait one deep sleep. Messages handed
 * to the consumer may still be held: their answers wake the lcore (dp_lcore_sleep()). The
 * PMDs used here (af_xdp, af_packet on veth) offer no RX interrupts to sleep on instead
 * (DPDK 22.11's af_xdp has none).
 */
static bool
dp_lcore_deep_idle(const struct dp_lcore *lc, uint64_t idle_tsc)
{
	return lc->dp->cfg.idle_deep_sleep_us != 0 && idle_tsc >= lc->deep_tsc &&
	       TAILQ_EMPTY(&lc->re.open);
}

/*
 * While the consumer computes and no message is open (no gap to NACK), new requests could
 * not start before it is done anyway: sleep until then (at most a deep sleep) instead of
 * waking every idle_sleep_max_us, each wake preempting one of the engine's threads on
 * these cores. 0: no hint, back off as usual. Called online (the hook reads RCU state).
 */
static uint32_t
dp_lcore_busy_us(const struct dp_lcore *lc)
{
	const struct dp *dp = lc->dp;
	uint64_t us;

	if (dp->busy == NULL || dp->cfg.idle_deep_sleep_us == 0 || !TAILQ_EMPTY(&lc->re.open))
		return 0;
	us = dp->busy(dp->busy_ctx) / 1000;
	return us < dp->cfg.idle_deep_sleep_us ? (uint32_t)us : dp->cfg.idle_deep_sleep_us;
}

/*
 * Sleep up to us microseconds, or until an answer is posted to this lcore (dp_wake_answer()).
 * The flag is raised before the ring is looked at: an answer enqueued after that look sees
 * the flag and writes the eventfd, one enqueued before it is in the ring and no sleep
 * happens. Returns DP_SLEPT, DP_WOKEN (an answer ended the sleep) or DP_NO_SLEEP (one was
 * already waiting).
 */
enum { DP_NO_SLEEP, DP_SLEPT, DP_WOKEN };

static int
dp_lcore_sleep(struct dp_lcore *lc, uint32_t us)
{
	struct pollfd pfd = { .fd = lc->wake.fd, .events = POLLIN };
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };
	uint64_t count;
	bool woken;

	__atomic_store_n(&lc->wake.asleep, 1, __ATOMIC_SEQ_CST);
	if (rte_ring_count(lc->re.resp) != 0) {
		/* An answerer that took the flag meanwhile wrote the eventfd: the next
		 * sleep reads that count and returns at once, harmless. */
		__atomic_store_n(&lc->wake.asleep, 0, __ATOMIC_SEQ_CST);
		return DP_NO_SLEEP;
	}
	woken = ppoll(&pfd, 1, &ts, NULL) == 1;
	__atomic_store_n(&lc->wake.asleep, 0, __ATOMIC_SEQ_CST);
	if (woken && read(lc->wake.fd, &count, sizeof(count)) < 0)
		woken = false;	/* EAGAIN: another pass read it */
	return woken ? DP_WOKEN : DP_SLEPT;
}

/*
 * Back off when there was no work: spin (rte_pause) for spin_tsc after the last work, then
 * sleep, doubling from idle_sleep_min_us to idle_sleep_max_us, then deep sleeps once
 * dp_lcore_deep_idle(); as long as the consumer's busy hint says (dp_lcore_busy_us()) when
 * that is longer. The first packet after a sleep waits at most one sleep in the queue
 * (the RX ring holds rx_desc frames meanwhile); an answer to send ends any sleep.
 */
static void
dp_lcore_idle(struct dp_lcore *lc, unsigned work)
{
	const struct dp_config *cfg = &lc->dp->cfg;
	uint64_t idle_tsc;
	uint32_t busy_us;
	int slept;

	if (work != 0) {
		lc->busy_tsc = rte_rdtsc();
		lc->sleep_us = 0;
		return;
	}
	idle_tsc = rte_rdtsc() - lc->busy_tsc;
	if (idle_tsc < lc->spin_tsc) {
		rte_pause();
		return;
	}
	if (dp_lcore_deep_idle(lc, idle_tsc))
		lc->sleep_us = cfg->idle_deep_sleep_us;
	else if ((busy_us = dp_lcore_busy_us(lc)) > RTE_MAX(lc->sleep_us, cfg->idle_sleep_max_us)) {
		lc->sleep_us = busy_us;
		lc->stats.busy_sleeps++;
	} else
		lc->sleep_us = lc->sleep_us == 0 ? cfg->idle_sleep_min_us
						 : RTE_MIN(2 * lc->sleep_us, cfg->idle_sleep_max_us);
	/* Asleep, the lcore holds no RCU-protected pointer: offline, dp_synchronize() need
	 * not wait for the sleep (a 10 us sleep sometimes lasts milliseconds). */
	rte_rcu_qsbr_thread_offline(lc->dp->qsbr, lc->queue_id);
	slept = dp_lcore_sleep(lc, lc->sleep_us);
	rte_rcu_qsbr_thread_online(lc->dp->qsbr, lc->queue_id);
	lc->stats.idle_sleeps += slept != DP_NO_SLEEP;
	lc->stats.idle_wakes += slept == DP_WOKEN;
}

/*
 * Stopping: send every answer posted so far and flush TX, retrying (bounded) while the port
 * is busy, so that a stop never leaves an answered request unsent. Consumers answer what they
 * hold before dp_stop() (dataplane.h).
 */
static void
dp_lcore_drain(struct dp_lcore *lc)
{
	struct timespec ts = { 0, 100000 };

	lc->stopping = true;
	for (unsigned tries = 0; tries < 1000; tries++) {
		unsigned k = dp_resp_drain(lc);

		if (lc->tx_n != 0)
			dp_tx_flush_wait(lc);
		if (k == 0 && rte_ring_count(lc->re.resp) == 0)
			break;
		if (k == 0)
			nanosleep(&ts, NULL);
	}
}

/* EAL names it after its lcore (rte-worker-N); top -H, perf and /proc show this instead. */
static void
dp_lcore_name(const struct dp_lcore *lc)
{
	char name[16];

	snprintf(name, sizeof(name), "tg-rx-%u", lc->queue_id % 1000u);
	pthread_setname_np(pthread_self(), name);
}

int
dp_lcore_main(void *arg)
{
	struct dp_lcore *lc = arg;

	/* Default timer slack is 50 us: it would stretch every 10 us back-off sleep to 60. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	dp_lcore_name(lc);
	lc->busy_tsc = rte_rdtsc();
	lc->stopping = false;
	if (!lc->cpu_clock_set && pthread_getcpuclockid(pthread_self(), &lc->cpu_clock) == 0)
		__atomic_store_n(&lc->cpu_clock_set, true, __ATOMIC_RELEASE);	/* after the id */
	rte_rcu_qsbr_thread_online(lc->dp->qsbr, lc->queue_id);
	while (!__atomic_load_n(&lc->dp->stop, __ATOMIC_ACQUIRE)) {
		dp_lcore_idle(lc, dp_lcore_poll(lc));
		/* Between passes nothing read from the catalog or the deliver hook is held. */
		rte_rcu_qsbr_quiescent(lc->dp->qsbr, lc->queue_id);
	}
	rte_rcu_qsbr_thread_offline(lc->dp->qsbr, lc->queue_id);
	dp_lcore_drain(lc);
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
