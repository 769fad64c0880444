#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where an ingest run's CPU goes, in microseconds per chunk placed.

Reads a `perf record -a -g` file that scripts/bench_ingest.sh wrote with TG_INGEST_PERF
(both CPUs, the middle of one run) and the run's chunks/s, and prints, per process (the
receiver: tg-rx-0 for dp_echo's RX lcore, kudp-recv; the sender dp_sender, in whose system
calls the veth receive softirq runs; ksoftirqd) its samples as CPU us per chunk, the
inclusive cost of the kernel paths that matter (receive softirq, the XDP copies, the socket
calls) and the receiver's top symbols.

Usage: scripts/perf_ingest.py PERF.DATA CHUNKS_PER_S [RECEIVER_COMM]
cpu-clock sampling (no PMU in this VM): a sample taken with interrupts off lands on the next
interrupt enable (pvm_irq_enable), so self time of kernel symbols is smeared there; inclusive
figures of the functions around it (net_rx_action, veth_poll, ...) are right.
"""
import re
import subprocess
import sys

PATHS = [	# (label, symbol): inclusive ("children") cost
    ("receive softirq (net_rx_action)", "net_rx_action"),
    ("  veth NAPI poll (veth_poll)", "veth_poll"),
    ("  XDP: skb copied to a page-pool page (skb_pp_cow_data)", "skb_pp_cow_data"),
    ("  XDP redirect to the socket (__xsk_map_redirect)", "__xsk_map_redirect"),
    ("    copy into the UMEM (__xsk_rcv)", "__xsk_rcv"),
    ("  af_packet ring copy (tpacket_rcv)", "tpacket_rcv"),
    ("  IPv4 receive (ip_list_rcv)", "ip_list_rcv"),
    ("  IPv4 receive (ip_rcv)", "ip_rcv"),
    ("  UDP receive (udp_rcv)", "udp_rcv"),
    ("recvmmsg (__sys_recvmmsg)", "__sys_recvmmsg"),
    ("  copy to user + UDP checksum (skb_copy_and_csum_datagram_msg)",
     "skb_copy_and_csum_datagram_msg"),
    ("sendto (__sys_sendto)", "__sys_sendto"),
    ("sendmmsg (__sys_sendmmsg)", "__sys_sendmmsg"),
    ("  packet socket TX (packet_sendmsg)", "packet_sendmsg"),
    ("poll (do_sys_poll)", "do_sys_poll"),
    ("xsk TX kick / RX wakeup (xsk_sendmsg)", "xsk_sendmsg"),
    ("LZ4_decompress_safe", "LZ4_decompress_safe"),
    ("dp_csum_raw (UDP checksum in software)", "dp_csum_raw"),
    ("proto_crc32c_sse42 (chunk CRC32C)", "proto_crc32c_sse42"),
]


def report(data, sort, children):
    cmd = ["perf", "report", "-i", data, "--sort", sort, "-n", "--stdio", "-g", "none",
           "-t", ";", "--children" if children else "--no-children"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def header(data):
    h = subprocess.run(["perf", "report", "-i", data, "--header-only"], capture_output=True,
                       text=True, check=True).stdout
    freq = int(re.search(r"sample_freq \} = (\d+)", h).group(1))
    dur = float(re.search(r"sample duration :\s+([\d.]+) ms", h).group(1)) / 1e3
    return freq, dur


def main():
    data, rate = sys.argv[1], float(sys.argv[2])
    rx = sys.argv[3] if len(sys.argv) > 3 else None
    freq, dur = header(data)
    per_chunk = 1e6 / freq / (rate * dur)	# us per chunk of one sample
    incl, selfs, comm_tot = {}, {}, {}
    for line in report(data, "comm,sym", True).splitlines():
        f = [x.strip() for x in line.split(";")]
        if line.startswith("#") or len(f) < 5 or not f[0].endswith("%"):
            continue
        ch, n, comm, sym = float(f[0][:-1]), int(f[2]), f[3], f[4].split("] ", 1)[-1]
        selfs[(comm, sym)] = n
        comm_tot[comm] = comm_tot.get(comm, 0) + n
        incl[(comm, sym)] = ch
    total = sum(comm_tot.values())
    print("%s: %d samples at %d Hz over %.2f s, %.0f chunks/s: 1 sample = %.4f us per chunk"
          % (data, total, freq, dur, rate, per_chunk))
    if rx is None:
        rx = "tg-rx-0" if "tg-rx-0" in comm_tot else "kudp-recv"
    comms = [rx, "dp_sender"] + sorted(c for c in comm_tot if c.startswith("ksoftirqd"))
    for c in comms:
        if c not in comm_tot:
            continue
        print("\n%s: %.3f us per chunk (all its samples)" % (c, comm_tot[c] * per_chunk))
        for label, sym in PATHS:
            if (c, sym) in incl:
                us = incl[(c, sym)] / 100 * total * per_chunk
                if us >= 0.005:
                    print("  %-66s %.3f" % (label, us))
    print("\n%s: top symbols (self), us per chunk" % rx)
    top = sorted(((n, s) for (c, s), n in selfs.items() if c == rx), reverse=True)[:12]
    for n, s in top:
        print("  %-66s %.3f" % (s, n * per_chunk))
    dso = {}
    for line in report(data, "comm,dso", False).splitlines():
        f = [x.strip() for x in line.split(";")]
        if line.startswith("#") or len(f) < 4 or f[2] != rx:
            continue
        dso[f[3]] = int(f[1])
    print("\n%s: by object (self), us per chunk" % rx)
    for d, n in sorted(dso.items(), key=lambda x: -x[1])[:8]:
        print("  %-66s %.3f" % (d, n * per_chunk))


if __name__ == "__main__":
    main()
