/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Init path: EAL, the port and its queues, the mbuf pool, per-lcore state, the RX loops'
 * launch and stop. May allocate and fail with words; never runs on an RX lcore's hot path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "dataplane/dp_int.h"

static const char *const dp_drop_names[DP_DROP__COUNT] = {
#define _(sym, help) #sym,
	DP_FOREACH_DROP(_)
#undef _
};

static const char *const dp_drop_helps[DP_DROP__COUNT] = {
#define _(sym, help) help,
	DP_FOREACH_DROP(_)
#undef _
};

const char *
dp_drop_name(enum dp_drop d)
{
	/* Labels are the lower-case symbols, built once: "IP_CSUM" -> "ip_csum". */
	static char lower[DP_DROP__COUNT][24];

	if ((unsigned)d >= DP_DROP__COUNT)
		return "?";
	if (lower[d][0] == '\0') {
		const char *s = dp_drop_names[d];
		size_t i;

		for (i = 0; s[i] != '\0' && i + 1 < sizeof(lower[d]); i++)
			lower[d][i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
		lower[d][i] = '\0';
	}
	return lower[d];
}

const char *
dp_drop_help(enum dp_drop d)
{
	return (unsigned)d < DP_DROP__COUNT ? dp_drop_helps[d] : "?";
}

void
dp_config_default(struct dp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->udp_port = PROTO_PORT;
	cfg->rx_desc = 1024;
	cfg->tx_desc = 1024;
	cfg->limits.max_msg_bytes = 512u << 10;
	cfg->limits.max_chunks = 1024;
	cfg->limits.max_inflight_client = 16;
	cfg->limits.max_inflight_total = 256;
	cfg->limits.max_sessions = 4096;
	cfg->limits.max_sessions_source = 4096;
	cfg->limits.max_open_source = 256;
	cfg->session_ttl_ms = 60000;
	cfg->gap_timeout_us = 2000;
	cfg->msg_timeout_us = 1000000;
	cfg->tx_drain_us = 100;
	cfg->resp_keep_bytes = 4u << 20;
	cfg->idle_spin_us = 50;
	cfg->idle_sleep_min_us = 10;
	cfg->idle_sleep_max_us = 100;
	cfg->idle_deep_after_us = 20000;
	cfg->idle_deep_sleep_us = 2000;
}

/* Free hugepages of every size the kernel offers (/sys/kernel/mm/hugepages/<size>/). */
static unsigned long
dp_hugepages_free(void)
{
	static const char *const sizes[] = { "hugepages-2048kB", "hugepages-1048576kB" };
	unsigned long total = 0, n;
	char path[128];

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		FILE *f;

		snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/%s/free_hugepages", sizes[i]);
		f = fopen(path, "r");
		if (f != NULL && fscanf(f, "%lu", &n) == 1)
			total += n;
		if (f != NULL)
			fclose(f);
	}
	return total;
}

static bool
dp_hugetlbfs_mounted(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/mounts", "r");

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, " hugetlbfs ") != NULL;
	if (f != NULL)
		fclose(f);
	return found;
}

/*
 * What an operator can do when EAL failed at the usual first-run hurdles (EAL's own words
 * are "Permission denied" for both): no hugepages reserved or mounted, or no privileges.
 * Empty when EAL ran without hugepages and as root: then the hint would mislead.
 */
static void
dp_eal_hint(int argc, char **argv, char *out, size_t cap)
{
	bool no_huge = false;
	unsigned long free_pages = dp_hugepages_free();
	bool mounted = dp_hugetlbfs_mounted();

	for (int i = 1; i < argc; i++)
		no_huge |= strcmp(argv[i], "--no-huge") == 0;
	out[0] = '\0';
	if (geteuid() != 0)
		snprintf(out, cap, "; hint: DPDK needs root (or CAP_SYS_ADMIN, CAP_IPC_LOCK and "
			 "CAP_NET_RAW, as the systemd unit gives): run tailgate as root");
	else if (!no_huge && (free_pages == 0 || !mounted))
		snprintf(out, cap, "; hint: %s%s%s: as root, echo 512 > /sys/kernel/mm/hugepages/"
			 "hugepages-2048kB/nr_hugepages%s; or run EAL without hugepages: -- "
			 "--no-huge --no-shconf -m 1024 ...", free_pages == 0 ?
			 "no free hugepages" : "", free_pages == 0 && !mounted ? " and " : "",
			 mounted ? "" : "no hugetlbfs mounted",
			 mounted ? "" : " && mount -t hugetlbfs nodev /dev/hugepages");
}

int
dp_eal_init(int argc, char **argv, struct tg_err *err)
{
	int n = rte_eal_init(argc, argv), e = rte_errno ? rte_errno : EINVAL;
	char hint[320];

	if (n < 0) {
		dp_eal_hint(argc, argv, hint, sizeof(hint));
		return tg_err_set(err, -e, "EAL init: %s%s", rte_strerror(e), hint);
	}
	return n;
}

void
dp_eal_cleanup(void)
{
	char dir[PATH_MAX];

	/* EAL leaves its runtime directory (/var/run/dpdk/<file-prefix>) behind; remove it
	 * when empty (with --no-telemetry: that socket is only unlinked at exit). */
	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	rmdir(dir);
}

static int
dp_config_check(const struct dp_config *cfg, struct tg_err *err)
{
	const struct dp_limits *l = &cfg->limits;

	if (cfg->ipv4 == 0)
		return tg_err_set(err, -EINVAL, "dataplane: no IPv4 address configured");
	if (cfg->udp_port == 0)
		return tg_err_set(err, -EINVAL, "dataplane: UDP port 0");
	if (cfg->auth > DP_AUTH_REQUIRED)
		return tg_err_set(err, -EINVAL, "dataplane: auth mode %u unknown", cfg->auth);
	if (l->max_msg_bytes == 0 || l->max_chunks == 0 || l->max_inflight_client == 0 ||
	    l->max_inflight_total == 0 || l->max_sessions == 0 || cfg->session_ttl_ms == 0 ||
	    l->max_sessions_source == 0 || l->max_open_source == 0)
		return tg_err_set(err, -EINVAL, "dataplane: limits must be positive");
	if (cfg->rx_desc == 0 || cfg->tx_desc == 0)
		return tg_err_set(err, -EINVAL, "dataplane: descriptor counts must be positive");
	if (cfg->idle_sleep_min_us == 0 || cfg->idle_sleep_min_us > cfg->idle_sleep_max_us ||
	    cfg->idle_sleep_max_us > 1000000 || cfg->idle_deep_sleep_us > 1000000)
		return tg_err_set(err, -EINVAL,
				  "dataplane: idle sleeps must satisfy 0 < min <= max <= 1 s");
	if (cfg->tx_drain_us == 0 || cfg->gap_timeout_us == 0 ||
	    cfg->msg_timeout_us < cfg->gap_timeout_us)
		return tg_err_set(err, -EINVAL, "dataplane: timeouts must satisfy 0 < gap <= msg");
	return 0;
}

static int
dp_port_find(const struct dp_config *cfg, uint16_t *port_id, struct tg_err *err)
{
	if (cfg->port != NULL) {
		if (rte_eth_dev_get_port_by_name(cfg->port, port_id) != 0)
			return tg_err_set(err, -ENODEV, "dataplane: no port %s (EAL --vdev?)",
					  cfg->port);
		return 0;
	}
	RTE_ETH_FOREACH_DEV(*port_id)
		return 0;
	return tg_err_set(err, -ENODEV, "dataplane: no port (EAL --vdev or a bound NIC)");
}

#define DP_RSS_HF	(RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP)	/* what RSS hashes on */

/* Queues, RSS and offloads for the port; not started. */
static int
dp_port_configure(struct dp *dp, const struct rte_eth_dev_info *di, uint16_t *rx_desc,
		  uint16_t *tx_desc, struct tg_err *err)
{
	const char *name = di->device != NULL ? rte_dev_name(di->device) : "?";
	struct rte_eth_conf conf;
	uint64_t csum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	int rc;

	memset(&conf, 0, sizeof(conf));
	if (dp->n_queues > 1) {
		/* Hash on addresses and ports: a client stays on one queue, one lcore. */
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = DP_RSS_HF & di->flow_type_rss_offloads;
	}
	conf.rxmode.offloads = di->rx_offload_capa & csum;
	rc = rte_eth_dev_configure(dp->port_id, dp->n_queues, dp->n_queues, &conf);
	if (rc < 0)
		return tg_err_set(err, rc, "port %s: configure %u queues: %s", name, dp->n_queues,
				  rte_strerror(-rc));
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(dp->port_id, rx_desc, tx_desc);
	if (rc < 0)
		return tg_err_set(err, rc, "port %s: descriptors: %s", name, rte_strerror(-rc));
	return 0;
}

static int
dp_queues_setup(struct dp *dp, uint16_t rx_desc, uint16_t tx_desc, struct tg_err *err)
{
	int socket = rte_eth_dev_socket_id(dp->port_id);
	uint16_t q;
	int rc;

	for (q = 0; q < dp->n_queues; q++) {
		rc = rte_eth_rx_queue_setup(dp->port_id, q, rx_desc, socket, NULL, dp->pool);
		if (rc < 0)
			return tg_err_set(err, rc, "port %u: RX queue %u: %s", dp->port_id, q,
					  rte_strerror(-rc));
		rc = rte_eth_tx_queue_setup(dp->port_id, q, tx_desc, socket, NULL);
		if (rc < 0)
			return tg_err_set(err, rc, "port %u: TX queue %u: %s", dp->port_id, q,
					  rte_strerror(-rc));
	}
	return 0;
}

static void
dp_lcores_free(struct dp *dp)
{
	if (dp->lc == NULL)
		return;
	for (unsigned q = 0; q < dp->n_queues; q++) {
		if (dp->lc[q] != NULL) {
			dp_sessions_free(dp->lc[q]);
			dp_reasm_free(dp->lc[q]);
			if (dp->lc[q]->wake.fd >= 0)
				close(dp->lc[q]->wake.fd);
		}
		rte_free(dp->lc[q]);
	}
	free(dp->lc);
	dp->lc = NULL;
	rte_ring_free(dp->done);
	dp->done = NULL;
}

static int
dp_lcores_create(struct dp *dp, struct tg_err *err)
{
	static unsigned dp_seq_done;
	int socket = rte_eth_dev_socket_id(dp->port_id);
	unsigned per_lcore = RTE_MAX(1u, dp->cfg.limits.max_inflight_total / dp->n_queues);
	unsigned sess_per_lcore = RTE_MAX(1u, dp->cfg.limits.max_sessions / dp->n_queues);
	char name[RTE_RING_NAMESIZE];
	struct rte_ether_addr mac;
	uint16_t mtu = RTE_ETHER_MTU;
	uint32_t room, max_payload;
	uint64_t hz = rte_get_tsc_hz();
	int rc;

	rc = rte_eth_macaddr_get(dp->port_id, &mac);
	if (rc < 0)
		return tg_err_set(err, rc, "port %u: MAC address: %s", dp->port_id,
				  rte_strerror(-rc));
	if (rte_eth_dev_get_mtu(dp->port_id, &mtu) != 0)
		mtu = RTE_ETHER_MTU;
	room = rte_pktmbuf_data_room_size(dp->pool) - RTE_PKTMBUF_HEADROOM;
	max_payload = RTE_MIN((uint32_t)mtu - 28u, room - DP_HDR_LEN);
	if (mtu < 576)
		return tg_err_set(err, -EINVAL, "port %u: MTU %u below IPv4's 576", dp->port_id,
				  mtu);

	dp->lc = calloc(dp->n_queues, sizeof(*dp->lc));
	if (dp->lc == NULL)
		return tg_err_set(err, -ENOMEM, "dataplane: out of memory");
	for (uint16_t q = 0; q < dp->n_queues; q++) {
		struct dp_lcore *lc;

		lc = rte_zmalloc_socket("dp_lcore", sizeof(*lc), RTE_CACHE_LINE_SIZE, socket);
		if (lc == NULL) {
			dp_lcores_free(dp);
			return tg_err_set(err, -ENOMEM, "dataplane: lcore %u: out of memory", q);
		}
		dp->lc[q] = lc;
		lc->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (lc->wake.fd < 0) {
			rc = -errno;
			dp_lcores_free(dp);
			return tg_err_set(err, rc, "dataplane: lcore %u: eventfd: %s", q,
					  strerror(-rc));
		}
		lc->dp = dp;
		lc->pool = dp->pool;
		lc->port_id = dp->port_id;
		lc->queue_id = q;
		lc->mac = mac;
		lc->ip = rte_cpu_to_be_32(dp->cfg.ipv4);
		lc->udp_port = rte_cpu_to_be_16(dp->cfg.udp_port);
		lc->csum_zero_ok = dp->cfg.udp_csum_zero_ok;
		memcpy(lc->parse.mac, mac.addr_bytes, sizeof(lc->parse.mac));
		lc->parse.ip = lc->ip;
		lc->parse.udp_port = lc->udp_port;
		lc->parse.csum_zero_ok = lc->csum_zero_ok;
		lc->max_payload = (uint16_t)max_payload;
		lc->tx_drain_tsc = hz * dp->cfg.tx_drain_us / 1000000;
		lc->spin_tsc = hz * dp->cfg.idle_spin_us / 1000000;
		lc->deep_tsc = hz * dp->cfg.idle_deep_after_us / 1000000;
		rc = dp_reasm_init(lc, per_lcore, err);
		if (rc == 0)
			rc = dp_sessions_init(lc, sess_per_lcore, err);
		if (rc < 0) {
			dp_lcores_free(dp);
			return rc;
		}
	}
	/* Holds every slot of every lcore: a consumer that falls behind holds slots, and the
	 * pool limit (OVERLOADED) bites before this ring could fill. */
	snprintf(name, sizeof(name), "dp_done_%u", dp_seq_done++);
	dp->done = rte_ring_create(name, per_lcore * dp->n_queues, socket, RING_F_EXACT_SZ);
	if (dp->done == NULL) {
		dp_lcores_free(dp);
		return tg_err_set(err, -ENOMEM, "dataplane: request ring: %s",
				  rte_strerror(rte_errno));
	}
	return 0;
}

/* The echo diagnostic's catalog entry (docs/protocol.md 13). */
static const struct proto_catalog_entry dp_echo_entry = {
	.model_id = PROTO_MODEL_ECHO,
	.dtype_mask = (1u << PROTO_DT__COUNT) - 1,
	.name = "echo",
};

int
dp_catalog_set(struct dp *dp, const struct proto_catalog_entry *e, unsigned n, uint32_t gen,
	       struct tg_err *err)
{
	struct proto_hello_reply hr = { .max_dgram = PROTO_HELLO_MIN_DGRAM, .max_chunks = 1,
					.max_inflight = 1, .catalog_total = 1, .catalog_count = 1 };
	struct proto_hdr h = { 0 };
	struct dp_catalog *c, *old;
	uint8_t buf[PROTO_HELLO_REPLY_LEN + PROTO_CATALOG_ENTRY_LEN];

	if (n + 1 > UINT16_MAX)
		return tg_err_set(err, -EINVAL, "dataplane: catalog: %u entries, at most %u", n,
				  UINT16_MAX - 1);
	/* The encoder checks what the decoder would: each entry alone in a reply. */
	for (unsigned i = 0; i < n; i++)
		if (proto_encode_hello_reply(buf, sizeof(buf), &h, &hr, &e[i]) < 0)
			return tg_err_set(err, -EINVAL,
					  "dataplane: catalog entry %u (model %u \"%.16s\") invalid",
					  i, e[i].model_id, e[i].name);
	c = calloc(1, sizeof(*c) + (n + 1) * sizeof(c->e[0]));
	if (c == NULL)
		return tg_err_set(err, -ENOMEM, "dataplane: catalog: out of memory");
	if (n != 0)
		memcpy(c->e, e, n * sizeof(c->e[0]));
	c->e[n] = dp_echo_entry;
	c->n = n + 1;
	c->gen = gen;
	/* Publish whole (release: the entries before the pointer), then wait until no RX
	 * lcore can still be reading the old one. */
	old = __atomic_exchange_n(&dp->catalog, c, __ATOMIC_ACQ_REL);
	dp_synchronize(dp);
	free(old);
	return 0;
}

void
dp_synchronize(struct dp *dp)
{
	if (dp->qsbr != NULL)
		rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
}

int
dp_set_deliver(struct dp *dp, dp_deliver_fn fn, void *ctx)
{
	if (dp->running)
		return -EBUSY;
	dp->deliver = fn;
	dp->deliver_ctx = ctx;
	return 0;
}

int
dp_set_busy_hint(struct dp *dp, dp_busy_fn fn, void *ctx)
{
	if (dp->running)
		return -EBUSY;
	dp->busy = fn;
	dp->busy_ctx = ctx;
	return 0;
}

/* The RCU variable the RX lcores report quiescent states on: one reader per queue. */
static int
dp_qsbr_create(struct dp *dp, struct tg_err *err)
{
	size_t sz = rte_rcu_qsbr_get_memsize(dp->n_queues);

	dp->qsbr = rte_zmalloc("dp_qsbr", sz, RTE_CACHE_LINE_SIZE);
	if (dp->qsbr == NULL || rte_rcu_qsbr_init(dp->qsbr, dp->n_queues) != 0) {
		rte_free(dp->qsbr);
		dp->qsbr = NULL;
		return tg_err_set(err, -ENOMEM, "dataplane: RCU state for %u queues", dp->n_queues);
	}
	for (unsigned q = 0; q < dp->n_queues; q++)
		rte_rcu_qsbr_thread_register(dp->qsbr, q);
	return 0;
}

/* af_packet: count what the kernel drops in front of the port (pktdrops.c). Without it
 * the port still serves; the one line says its losses go uncounted. */
static void
dp_pktdrops_attach(struct dp *dp, const struct rte_eth_dev_info *di)
{
	int rc;

	if (di->driver_name == NULL || strcmp(di->driver_name, "net_af_packet") != 0)
		return;
	rc = dp_pktdrops_open(&dp->pktdrops, (int)di->if_index);
	if (rc < 0)
		RTE_LOG(WARNING, USER1, "dataplane: port %u (net_af_packet, ifindex %u): the "
			"packet ring's drops cannot be counted: %s\n", dp->port_id, di->if_index,
			strerror(-rc));
}

int
dp_create(struct dp **out, const struct dp_config *cfg, struct tg_err *err)
{
	static unsigned dp_seq;	/* distinct pool names when a process makes several */
	struct rte_eth_dev_info di;
	uint16_t rx_desc, tx_desc;
	unsigned n_workers, n_mbufs;
	char name[RTE_MEMPOOL_NAMESIZE];
	struct dp *dp;
	int rc;

	rc = dp_config_check(cfg, err);
	if (rc < 0)
		return rc;
	dp = calloc(1, sizeof(*dp));
	if (dp == NULL)
		return tg_err_set(err, -ENOMEM, "dataplane: out of memory");
	dp->cfg = *cfg;
	dp->cfg.port = NULL;
	dp->keys = cfg->keys;	/* each lcore takes it at its first pass (dp_auth_poll) */
	rc = dp_catalog_set(dp, NULL, 0, 0, err);
	if (rc < 0)
		goto out_free_dp;
	rc = dp_port_find(cfg, &dp->port_id, err);
	if (rc < 0)
		goto out_free_dp;
	rc = rte_eth_dev_info_get(dp->port_id, &di);
	if (rc < 0) {
		tg_err_set(err, rc, "port %u: info: %s", dp->port_id, rte_strerror(-rc));
		goto out_free_dp;
	}
	n_workers = rte_lcore_count() - 1;
	dp->n_queues = cfg->n_queues;
	if (dp->n_queues == 0) {
		unsigned offered = RTE_MIN(di.max_rx_queues, di.max_tx_queues);

		dp->n_queues = (uint16_t)RTE_MAX(1u, RTE_MIN(n_workers, offered));
	}
	if (dp->n_queues > di.max_rx_queues || dp->n_queues > di.max_tx_queues) {
		rc = tg_err_set(err, -EINVAL, "port %s: %u queues asked, it offers %u RX %u TX",
				rte_dev_name(di.device), dp->n_queues, di.max_rx_queues,
				di.max_tx_queues);
		goto out_free_dp;
	}
	if (dp->n_queues > 1 && (DP_RSS_HF & di.flow_type_rss_offloads) == 0) {
		rc = tg_err_set(err, -ENOTSUP, "port %s: %u queues but no RSS over IPv4/UDP to "
				"keep a client on one; use 1 queue", rte_dev_name(di.device),
				dp->n_queues);
		goto out_free_dp;
	}
	rx_desc = cfg->rx_desc;
	tx_desc = cfg->tx_desc;
	rc = dp_port_configure(dp, &di, &rx_desc, &tx_desc, err);
	if (rc < 0)
		goto out_close_port;

	/* Every descriptor may hold an mbuf, plus what an lcore holds in hand and in its
	 * mempool cache; requests hold none (chunks are copied out on arrival). */
	n_mbufs = dp->n_queues * (rx_desc + tx_desc + DP_TX_BUF + 2 * DP_BURST) +
		  (dp->n_queues + 1) * 256u + 512u;
	n_mbufs = rte_align32pow2(n_mbufs) - 1;
	snprintf(name, sizeof(name), "dp_mbuf_%u", dp_seq++);
	dp->pool = rte_pktmbuf_pool_create(name, n_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					   rte_eth_dev_socket_id(dp->port_id));
	if (dp->pool == NULL) {
		rc = tg_err_set(err, -rte_errno, "dataplane: pool of %u mbufs: %s (EAL -m?)",
				n_mbufs, rte_strerror(rte_errno));
		goto out_close_port;
	}
	rc = dp_queues_setup(dp, rx_desc, tx_desc, err);
	if (rc < 0)
		goto out_close_port;
	rc = dp_lcores_create(dp, err);
	if (rc < 0)
		goto out_close_port;
	rc = dp_qsbr_create(dp, err);
	if (rc < 0)
		goto out_free_lcores;
	rc = rte_eth_dev_start(dp->port_id);
	if (rc < 0) {
		tg_err_set(err, rc, "port %u: start: %s", dp->port_id, rte_strerror(-rc));
		goto out_free_lcores;
	}
	dp->port_started = true;
	dp_pktdrops_attach(dp, &di);
	*out = dp;
	return 0;

out_free_lcores:
	rte_free(dp->qsbr);
	dp_lcores_free(dp);
out_close_port:
	/* Closing releases the mbufs the queues hold: before their pool goes (NULL: none). */
	rte_eth_dev_close(dp->port_id);
	rte_mempool_free(dp->pool);
out_free_dp:
	free(dp->catalog);
	free(dp);
	return rc;
}

void
dp_destroy(struct dp *dp)
{
	if (dp == NULL)
		return;
	dp_stop(dp);
	if (dp->port_started)
		rte_eth_dev_stop(dp->port_id);
	rte_eth_dev_close(dp->port_id);
	dp_pktdrops_close(dp->pktdrops);
	dp_lcores_free(dp);
	rte_mempool_free(dp->pool);
	rte_free(dp->qsbr);
	free(dp->catalog);
	free(dp);
}

unsigned
dp_n_queues(const struct dp *dp)
{
	return dp->n_queues;
}

int
dp_start(struct dp *dp, struct tg_err *err)
{
	unsigned q = 0, lcore;
	int rc;

	if (dp->running)
		return tg_err_set(err, -EBUSY, "dataplane: already running");
	if (rte_lcore_count() - 1 < dp->n_queues)
		return tg_err_set(err, -ENODEV, "dataplane: %u queues need %u worker lcores, have %u",
				  dp->n_queues, dp->n_queues, rte_lcore_count() - 1);
	__atomic_store_n(&dp->stop, 0, __ATOMIC_RELEASE);
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (q == dp->n_queues)
			break;
		rc = rte_eal_remote_launch(dp_lcore_main, dp->lc[q], lcore);
		if (rc < 0) {
			__atomic_store_n(&dp->stop, 1, __ATOMIC_RELEASE);
			rte_eal_mp_wait_lcore();
			return tg_err_set(err, rc, "dataplane: launch on lcore %u: %s", lcore,
					  rte_strerror(-rc));
		}
		q++;
	}
	dp->running = true;
	return 0;
}

void
dp_stop(struct dp *dp)
{
	if (!dp->running)
		return;
	__atomic_store_n(&dp->stop, 1, __ATOMIC_RELEASE);
	rte_eal_mp_wait_lcore();
	dp->running = false;
}

_Static_assert(sizeof(struct dp_stats) % sizeof(uint64_t) == 0, "dp_stats: u64 counters only");

void
dp_stats_get(const struct dp *dp, struct dp_stats *sum)
{
	struct rte_eth_stats es;

	memset(sum, 0, sizeof(*sum));
	if (rte_eth_stats_get(dp->port_id, &es) == 0)
		sum->port_missed = es.imissed + es.ierrors + es.rx_nombuf;
	sum->port_missed += dp_pktdrops_read(dp->pktdrops);
	for (unsigned q = 0; q < dp->n_queues; q++) {
		const uint64_t *src = (const uint64_t *)&dp->lc[q]->stats;
		uint64_t *dst = (uint64_t *)sum;

		/* Each counter only grows; a relaxed load of each is a value it had. */
		for (size_t i = 0; i < sizeof(*sum) / sizeof(uint64_t); i++)
			dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	}
}

int
dp_lcore_cpu_ns(const struct dp *dp, unsigned q, uint64_t *ns)
{
	const struct dp_lcore *lc;
	struct timespec ts;

	if (q >= dp->n_queues)
		return -ENOENT;
	lc = dp->lc[q];
	if (!__atomic_load_n(&lc->cpu_clock_set, __ATOMIC_ACQUIRE) ||
	    clock_gettime(lc->cpu_clock, &ts) != 0)
		return -ENOENT;
	*ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return 0;
}

void
dp_slots_get(const struct dp *dp, unsigned *in_use, unsigned *total)
{
	*in_use = *total = 0;
	for (unsigned q = 0; q < dp->n_queues; q++) {
		const struct dp_reasm *re = &dp->lc[q]->re;
		unsigned n = re->n_slots, f = __atomic_load_n(&re->n_free, __ATOMIC_RELAXED);

		*total += n;
		*in_use += f <= n ? n - f : 0;
	}
}

void
dp_mac_get(const struct dp *dp, uint8_t mac[6])
{
	memcpy(mac, dp->lc[0]->mac.addr_bytes, RTE_ETHER_ADDR_LEN);
}
