/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the dataplane's L2-L4 checks (dp_parse_frame()), fed any frame as the RX
 * lcore is. Whatever it accepts must lie inside the frame and be what it says: an ARP
 * request for our address, an ICMP echo request or a UDP datagram for our port whose
 * offsets add up; the verdict must not depend on anything but the bytes and the offload
 * hints; and its checksum routine must agree with a plain big-endian reference.
 */
#include "dataplane/dp_parse.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The test addresses of dataplane/dp_testkit.h: 02:00:00:00:00:01, 10.77.0.1, port 7700. */
static const struct dp_parse_cfg fuzz_cfg = {
	.mac = { 0x02, 0, 0, 0, 0, 0x01 },
	.ip = 0x01004d0a,		/* bytes 10 77 0 1 in memory on a little-endian host */
	.udp_port = 0x141e,		/* bytes 0x1e 0x14: 7700 */
};

/* RFC 1071 the slow way: big-endian 16-bit words, odd byte padded, folded. */
static uint16_t
fuzz_csum_ref(const uint8_t *p, size_t len)
{
	uint64_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint64_t)p[i] << 8 | p[i + 1];
	if (len % 2)
		s += (uint64_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void
fuzz_check(const uint8_t *data, size_t size, unsigned hw, bool zero_ok)
{
	struct dp_parse_cfg cfg = fuzz_cfg;
	struct dp_parsed p, q;

	cfg.csum_zero_ok = zero_ok;
	dp_parse_frame(&cfg, data, size, hw, &p);
	dp_parse_frame(&cfg, data, size, hw, &q);
	if (memcmp(&p, &q, sizeof(p)) != 0)	/* deterministic: reads only the frame */
		__builtin_trap();
	switch (p.v) {
	case DP_V_DROP:
		if ((unsigned)p.drop >= DP_DROP__COUNT)
			__builtin_trap();
		return;
	case DP_V_ARP:
		if (size < 42 || data[12] != 0x08 || data[13] != 0x06 ||
		    memcmp(data + 38, &cfg.ip, 4) != 0)
			__builtin_trap();
		return;
	case DP_V_ICMP:
	case DP_V_UDP:
		if (size < 34 || 14u + p.ip_len > size || p.l4_off < 34 ||
		    p.l4_off + p.l4_len != 14u + p.ip_len || memcmp(data + 30, &cfg.ip, 4) != 0)
			__builtin_trap();
		if (p.v == DP_V_ICMP) {
			/* ICMP is checked in software whatever the port offloads. */
			if (p.l4_len < 8 || data[p.l4_off] != 8 ||
			    fuzz_csum_ref(data + p.l4_off, p.l4_len) != 0xffff)
				__builtin_trap();
			return;
		}
		if (p.payload_off != p.l4_off + 8 || p.payload_off + p.payload_len != 14u + p.ip_len ||
		    memcmp(data + p.l4_off + 2, &cfg.udp_port, 2) != 0)
			__builtin_trap();
		return;
	}
	__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint16_t a = dp_csum_raw(data, size, 0), b = fuzz_csum_ref(data, size);

	/* Host-order words sum to the byte swap of the big-endian sum (x86: little endian). */
	if ((uint16_t)(a << 8 | a >> 8) != b && !(a == 0xffff && b == 0xffff))
		__builtin_trap();
	fuzz_check(data, size, 0, false);
	fuzz_check(data, size, 0, true);
	fuzz_check(data, size, DP_HW_IP_GOOD | DP_HW_L4_GOOD, false);
	fuzz_check(data, size, DP_HW_IP_BAD | DP_HW_L4_BAD, false);
	return 0;
}
