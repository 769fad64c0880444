/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_parse_frame() and its checksum alone, without a port: dp_csum_raw() agrees with DPDK's
 * rte_raw_cksum() on random buffers of every length and alignment, and the fuzz corpus's
 * seed frames (fuzz/corpus/l2l4) get the verdicts their names promise.
 */
#include "tests/harness.h"
#include "dataplane/dp_parse.h"
#include "util/util.h"

#include <rte_ip.h>

static uint32_t rng = 99;

static uint8_t
rnd8(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return (uint8_t)rng;
}

static void
test_csum_matches_dpdk(void)
{
	static uint8_t buf[2100];

	for (unsigned len = 0; len < 2048; len += 1 + len / 64)
		for (unsigned off = 0; off < 4; off++) {
			for (unsigned i = 0; i < len; i++)
				buf[off + i] = rnd8();
			TH_CHECK_MSG(dp_csum_raw(buf + off, len, 0) == rte_raw_cksum(buf + off, len),
				     "len %u off %u", len, off);
		}
	memset(buf, 0xff, sizeof(buf));	/* sums that fold to all ones */
	TH_CHECK(dp_csum_raw(buf, 1500, 0) == rte_raw_cksum(buf, 1500));
}

static const struct dp_parse_cfg cfg = {
	.mac = { 0x02, 0, 0, 0, 0, 0x01 },
};

/* The verdict of seed file name (drop d when v is DP_V_DROP). */
static void
expect(const char *name, enum dp_verdict v, enum dp_drop d, bool zero_ok)
{
	struct dp_parse_cfg c = cfg;
	struct tg_err err = { 0 };
	struct dp_parsed p;
	char path[256];
	uint8_t *f;
	size_t len;

	c.ip = rte_cpu_to_be_32(RTE_IPV4(10, 77, 0, 1));
	c.udp_port = rte_cpu_to_be_16(7700);
	c.csum_zero_ok = zero_ok;
	snprintf(path, sizeof(path), "fuzz/corpus/l2l4/seed-%s", name);
	if (tg_file_read(path, 1 << 16, &f, &len, &err) < 0) {
		TH_CHECK_MSG(0, "%s", err.msg);
		return;
	}
	dp_parse_frame(&c, f, len, 0, &p);
	TH_CHECK_MSG(p.v == v && (v != DP_V_DROP || p.drop == d), "%s: verdict %d drop %s", name,
		     (int)p.v, dp_drop_name(p.drop));
	if (p.v == DP_V_UDP)
		TH_CHECK(p.payload_off == 42 + (f[14] & 0xf) * 4 - 20 &&
			 p.payload_off + p.payload_len <= len);
	free(f);
}

static void
test_seed_frames(void)
{
	expect("arp-request", DP_V_ARP, 0, false);
	expect("arp-request-padded", DP_V_ARP, 0, false);
	expect("icmp-echo", DP_V_ICMP, 0, false);
	expect("icmp-echo-reply", DP_V_DROP, DP_DROP_ICMP_TYPE, false);
	expect("udp-hello", DP_V_UDP, 0, false);
	expect("udp-csum-zero", DP_V_DROP, DP_DROP_UDP_CSUM_ZERO, false);
	expect("udp-csum-zero", DP_V_UDP, 0, true);
	expect("udp-other-port", DP_V_DROP, DP_DROP_UDP_PORT, false);
	expect("udp-ip-options", DP_V_UDP, 0, false);
	expect("udp-fragment", DP_V_DROP, DP_DROP_IP_FRAG, false);
	expect("udp-padded", DP_V_UDP, 0, false);
	expect("ipv6", DP_V_DROP, DP_DROP_ETHERTYPE, false);
	expect("trunc-13", DP_V_DROP, DP_DROP_RUNT, false);
	expect("trunc-30", DP_V_DROP, DP_DROP_IP_RUNT, false);
	expect("trunc-41", DP_V_DROP, DP_DROP_IP_LEN, false);
	expect("trunc-udp-payload", DP_V_DROP, DP_DROP_IP_LEN, false);
	expect("arp-trunc-40", DP_V_DROP, DP_DROP_ARP_BAD, false);
	expect("ip-bad-csum", DP_V_DROP, DP_DROP_IP_CSUM, false);
}

int
main(void)
{
	TH_RUN(test_csum_matches_dpdk);
	TH_RUN(test_seed_frames);
	TH_DONE();
}
