/* SPDX-License-Identifier: Apache-2.0 */
/*
 * L2-L4 checks over plain bytes (dp_parse.h): what rx.c needs to know about a frame before
 * it answers or hands it on, with no DPDK type in sight so that a libFuzzer target can feed
 * it anything. Hot path: no allocation, no log; reads only the frame's bytes.
 */
#include "dataplane/dp_parse.h"

#include <string.h>

enum {
	ETH_LEN = 14,
	ETH_ARP = 0x0806,
	ETH_IPV4 = 0x0800,
	ARP_LEN = 28,		/* Ethernet/IPv4 ARP */
	IP_MIN = 20,
	IP_MF = 0x2000,
	IP_OFF_MASK = 0x1fff,
	PROTO_ICMP = 1,
	PROTO_UDP = 17,
	ICMP_LEN = 8,
	UDP_LEN = 8,
};

static inline uint16_t
ld16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
ld32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Ones' complement sum in host-order 16-bit words; 32-bit loads into a 64-bit accumulator
 * give the same folded sum (2^16 = 1 modulo 2^16 - 1) at a quarter of the additions.
 */
uint16_t
dp_csum_raw(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;
	uint64_t s = sum;

	for (; len >= 8; b += 8, len -= 8) {
		uint32_t w[2];

		memcpy(w, b, sizeof(w));
		s += (uint64_t)w[0] + w[1];
	}
	for (; len >= 2; b += 2, len -= 2) {
		uint16_t w;

		memcpy(&w, b, sizeof(w));
		s += w;
	}
	if (len != 0) {
		uint16_t w = 0;

		memcpy(&w, b, 1);	/* the odd byte is the first of a zero-padded word */
		s += w;
	}
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* Sources we never answer: a reply would go to a network, a loopback, or back to us. */
static inline bool
src_bad(const struct dp_parse_cfg *cfg, const uint8_t *src)
{
	uint32_t a = ld32(src);

	return a == 0 || a == UINT32_MAX || (a >> 28) == 0xe || (a >> 24) == 127 ||
	       memcmp(src, &cfg->ip, 4) == 0;
}

static inline void
drop(struct dp_parsed *out, enum dp_drop d)
{
	out->v = DP_V_DROP;
	out->drop = d;
}

static void
parse_arp(const struct dp_parse_cfg *cfg, const uint8_t *f, size_t len, struct dp_parsed *out)
{
	const uint8_t *a = f + ETH_LEN;

	if (len < ETH_LEN + ARP_LEN || ld16(a) != 1 || ld16(a + 2) != ETH_IPV4 || a[4] != 6 ||
	    a[5] != 4) {
		drop(out, DP_DROP_ARP_BAD);
		return;
	}
	/* opcode request, target ours, sender sane, sender MAC unicast */
	if (ld16(a + 6) != 1 || memcmp(a + 24, &cfg->ip, 4) != 0 || src_bad(cfg, a + 14) ||
	    (a[8] & 1) != 0) {
		drop(out, DP_DROP_ARP_IGNORED);
		return;
	}
	out->v = DP_V_ARP;
}

static void
parse_udp(const struct dp_parse_cfg *cfg, const uint8_t *f, unsigned hw, struct dp_parsed *out)
{
	const uint8_t *ip = f + ETH_LEN, *u = f + out->l4_off;
	uint8_t ph[12];
	uint16_t cs;

	if (out->l4_len < UDP_LEN) {
		drop(out, DP_DROP_UDP_RUNT);
		return;
	}
	if (ld16(u + 4) != out->l4_len) {
		drop(out, DP_DROP_UDP_LEN);
		return;
	}
	if (memcmp(u + 2, &cfg->udp_port, 2) != 0) {
		drop(out, DP_DROP_UDP_PORT);
		return;
	}
	if (ld16(u + 6) == 0) {
		if (!cfg->csum_zero_ok) {
			drop(out, DP_DROP_UDP_CSUM_ZERO);
			return;
		}
	} else if (!(hw & DP_HW_L4_GOOD)) {
		/* pseudo header: source, destination, zero, protocol, UDP length */
		memcpy(ph, ip + 12, 8);
		ph[8] = 0;
		ph[9] = PROTO_UDP;
		ph[10] = (uint8_t)(out->l4_len >> 8);
		ph[11] = (uint8_t)out->l4_len;
		cs = dp_csum_raw(u, out->l4_len, dp_csum_raw(ph, sizeof(ph), 0));
		if ((hw & DP_HW_L4_BAD) || cs != 0xffff) {
			drop(out, DP_DROP_UDP_CSUM);
			return;
		}
	}
	out->v = DP_V_UDP;
	out->payload_off = (uint16_t)(out->l4_off + UDP_LEN);
	out->payload_len = (uint16_t)(out->l4_len - UDP_LEN);
}

static void
parse_icmp(const uint8_t *f, struct dp_parsed *out)
{
	const uint8_t *ic = f + out->l4_off;

	if (out->l4_len < ICMP_LEN || dp_csum_raw(ic, out->l4_len, 0) != 0xffff) {
		drop(out, DP_DROP_ICMP_BAD);
		return;
	}
	if (ic[0] != 8 || ic[1] != 0) {	/* echo request, code 0 */
		drop(out, DP_DROP_ICMP_TYPE);
		return;
	}
	out->v = DP_V_ICMP;
}

void
dp_parse_frame(const struct dp_parse_cfg *cfg, const uint8_t *f, size_t len, unsigned hw,
	       struct dp_parsed *out)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const uint8_t *ip = f + ETH_LEN;
	unsigned ihl, tot;
	uint16_t type;

	memset(out, 0, sizeof(*out));
	if (len < ETH_LEN) {
		drop(out, DP_DROP_RUNT);
		return;
	}
	if (memcmp(f, cfg->mac, 6) != 0 && memcmp(f, bcast, 6) != 0) {
		drop(out, DP_DROP_ETH_DST);
		return;
	}
	type = ld16(f + 12);
	if (type == ETH_ARP) {
		parse_arp(cfg, f, len, out);
		return;
	}
	if (type != ETH_IPV4) {
		drop(out, DP_DROP_ETHERTYPE);
		return;
	}
	if (len < ETH_LEN + IP_MIN) {
		drop(out, DP_DROP_IP_RUNT);
		return;
	}
	if (ip[0] >> 4 != 4) {
		drop(out, DP_DROP_IP_VERSION);
		return;
	}
	ihl = (ip[0] & 0xfu) * 4u;
	if (ihl < IP_MIN || ETH_LEN + ihl > len) {
		drop(out, DP_DROP_IP_IHL);
		return;
	}
	tot = ld16(ip + 2);
	if (tot < ihl || ETH_LEN + tot > len) {
		drop(out, DP_DROP_IP_LEN);
		return;
	}
	if (!(hw & DP_HW_IP_GOOD) && ((hw & DP_HW_IP_BAD) || dp_csum_raw(ip, ihl, 0) != 0xffff)) {
		drop(out, DP_DROP_IP_CSUM);
		return;
	}
	if (ld16(ip + 6) & (IP_MF | IP_OFF_MASK)) {
		drop(out, DP_DROP_IP_FRAG);
		return;
	}
	if (memcmp(ip + 16, &cfg->ip, 4) != 0) {
		drop(out, DP_DROP_IP_DST);
		return;
	}
	if (src_bad(cfg, ip + 12)) {
		drop(out, DP_DROP_IP_SRC);
		return;
	}
	out->ip_len = (uint16_t)tot;
	out->l4_off = (uint16_t)(ETH_LEN + ihl);
	out->l4_len = (uint16_t)(tot - ihl);
	if (ip[9] == PROTO_UDP)
		parse_udp(cfg, f, hw, out);
	else if (ip[9] == PROTO_ICMP)
		parse_icmp(f, out);
	else
		drop(out, DP_DROP_IP_PROTO);
}
