/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The L2-L4 checks of an untrusted frame (Ethernet, ARP, IPv4, ICMP, UDP), as a function
 * over plain bytes: no DPDK, no mbuf, nothing written. rx.c calls it for every frame and
 * acts on the verdict (answers ARP and ICMP echo, hands UDP payloads to reassembly); the
 * libFuzzer target fuzz/fuzz_l2l4.c calls it on arbitrary bytes. Internal to the dataplane
 * (its .c files, its unit tests and that fuzz target).
 */
#ifndef TG_DP_PARSE_H
#define TG_DP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/dataplane.h"

/* What the port's checksum offload said (the mbuf's ol_flags, translated by rx.c). */
enum dp_parse_hw {
	DP_HW_IP_GOOD = 1u << 0,	/* IPv4 header checksum verified by the NIC */
	DP_HW_IP_BAD = 1u << 1,		/* ... found wrong */
	DP_HW_L4_GOOD = 1u << 2,	/* UDP checksum verified by the NIC */
	DP_HW_L4_BAD = 1u << 3,		/* ... found wrong */
};

/** Who we are: every field in network byte order, as on the wire. */
struct dp_parse_cfg {
	uint8_t mac[6];
	uint32_t ip;			/* our IPv4 address, network order */
	uint16_t udp_port;		/* the protocol's port, network order */
	bool csum_zero_ok;		/* accept UDP checksum 0 */
};

enum dp_verdict {
	DP_V_DROP,			/* drop, counted under drop */
	DP_V_ARP,			/* an ARP request for our address from a sane source */
	DP_V_ICMP,			/* an ICMP echo request for us, checksums right */
	DP_V_UDP,			/* a UDP datagram for our port, checksums right */
};

/** A frame's verdict and where its parts lie (offsets from the frame's first byte). */
struct dp_parsed {
	enum dp_verdict v;
	enum dp_drop drop;		/* DP_V_DROP: why */
	uint16_t ip_len;		/* IPv4 total length: the frame minus Ethernet padding is
					 * 14 + ip_len bytes (ICMP, UDP) */
	uint16_t l4_off;		/* ICMP/UDP header (14 + IPv4 header length) */
	uint16_t l4_len;		/* ICMP/UDP header and payload bytes */
	uint16_t payload_off;		/* UDP: the datagram's payload ... */
	uint16_t payload_len;		/* ... and its length */
};

/**
 * Check one frame of len bytes (the dataplane's drop reasons, in its order: the first check
 * that fails names the drop). Reads only f[0..len); every offset it returns lies inside.
 * Thread: any.
 */
void dp_parse_frame(const struct dp_parse_cfg *cfg, const uint8_t *f, size_t len,
		    unsigned hw, struct dp_parsed *out);

/** Ones' complement sum of len bytes at p, folded to 16 bits (host order words). */
uint16_t dp_csum_raw(const void *p, size_t len, uint32_t sum);

#endif
