#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""make demo's "how to read it": one line per figure of the report, with the run's own values.

Usage: scripts/demo_explain.py BENCH.json REPORT.txt METRICS.txt CARD.md IMAGES MIX
Reads the bench's JSON (--json) and table, the gateway's /metrics scrape (HTTP headers
allowed) and the model card's fp32 accuracy of the final exit; prints plain lines.
"""
import json
import re
import sys


def metrics(path):
    """Sum of every sample of each metric name, and the samples by their full name."""
    sums, samples = {}, {}
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return sums, samples
    for line in lines:
        m = re.match(r"^(tailgate_[a-z0-9_]+)(\{[^}]*\})? ([-0-9.e+]+)$", line)
        if m:
            sums[m.group(1)] = sums.get(m.group(1), 0.0) + float(m.group(3))
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return sums, samples


def card_accuracy(path):
    try:
        for line in open(path, encoding="utf-8"):
            m = re.match(r"^\| *\d+ *\| *final *\| *([0-9.]+)% *\|", line)
            if m:
                return m.group(1)
    except OSError:
        pass
    return "?"


def main():
    doc = json.load(open(sys.argv[1]))
    bench = doc.get("result") or (doc.get("steps") or [{}])[-1]
    report = open(sys.argv[2], encoding="utf-8").read()
    sums, _ = metrics(sys.argv[3])
    card, images, mix = card_accuracy(sys.argv[4]), sys.argv[5], sys.argv[6]
    g = bench.get
    st = g("statuses", {})
    gw_answered = int(sums.get("tailgate_requests_total", 0))
    gw_pending = int(sums.get("tailgate_dp_pending_sent_total", 0))
    resent_answers = int(sums.get("tailgate_dp_answers_resent_total", 0))
    built = re.search(r"^inputs +\d+ images, ([0-9.]+)% offline", report, re.M)
    deadline = re.search(r"deadline=([^;]*)", mix)
    print(f"offered {g('offered_rps', 0):.1f} req/s: arrivals measured from the end of the 1 s "
          f"warm-up until arrivals stop ({g('window_s', 0):.2f} s); the warm-up's requests are "
          "sent and answered but not measured.")
    print(f"achieved {g('achieved_rps', 0):.1f} req/s: answers that arrived in that same window "
          "(as wrk2 counts), so answers to warm-up requests sent just before it count too: "
          "achieved may be a little above offered.")
    print(f"goodput {g('goodput_rps', 0):.1f} req/s: OK answers within their device's deadline "
          f"({deadline.group(1) if deadline else 'the mix deadline'}).")
    print(f"retransmits {g('retransmits', '?')} of {g('chunks_sent', '?')} chunks with no loss "
          f"injected: a device resends its whole request when its request timer fires before the "
          f"answer (docs/protocol.md 12.2: 2 x RTT + the gateway's NACK gap + the expected server "
          f"time, at least 20 ms), here {g('timer_fires', '?')} times, when queueing and batching "
          f"made an answer slower than the timer; {g('nacks', '?')} NACK(s) asked for chunks the "
          "gateway had not seen after its gap.")
    print(f"the gateway answered {gw_answered} requests in /metrics against the bench's "
          f"{g('answered', '?')} measured answers: it also answers the warm-up's requests and "
          f"those still open after the window; a resend of a request it still holds gets a "
          f"PENDING ({gw_pending} sent, {g('pendings', '?')} reached the bench), one already "
          f"answered its kept answer again ({resent_answers}); neither counts as a request.")
    if g("timeouts"):
        print(f"timeouts {g('timeouts')}: requests whose retry budget (their deadline plus one "
              "timer) ran out before an OK or refusal arrived; counted by the bench, answered "
              "late or never by a gateway that had more work than its cores.")
    print(f"accuracy {g('accuracy', 0):.2f}%: the gateway's answers against the Fashion-MNIST "
          f"labels, over the OK answers of this mix ({'; '.join(mix.split(';')[0:2])}).")
    print(f"offline accuracy {g('offline_accuracy', 0):.2f}%: the engine alone on exactly the "
          f"same requests (the same quantized bytes); agreement {g('agreement', 0):.2f}% says "
          "how many answers equal the engine's: 100% means the gateway changed nothing.")
    print(f"inputs' offline {built.group(1) if built else '?'}%: every one of the first "
          f"{images} test images at every split and dtype of the mix, not only those sent; the "
          f"model card's {card}% is fp32 over all 10,000 test images: a different set of "
          "images, and s8/u8 on the wire move a few answers.")
    exits, ok = g("exits") or {}, g("ok", 0)
    if exits and ok:
        shares = ", ".join(f"{k} {100.0 * v / ok:.1f}%" for k, v in exits.items())
        print(f"answers by exit ({shares} of the OK answers): the first exit whose softmax "
              "confidence reaches its model.conf threshold answers (thresholds from "
              "tailgate-model calibrate-exits, at most 0.5 points lost in fp32 and in int8: "
              "CARD.md); each answer is checked against the offline class of the exit that gave "
              f"it. Computing stops there: {g('flops_per_answer', 0) / 1e6:.1f} M FLOPs per "
              f"answer against {g('flops_final', 0) / 1e6:.1f} M to the final exit.")
    if st.get("overloaded") or st.get("deadline_infeasible"):
        print(f"non-OK answers: {st.get('overloaded', 0)} overloaded, "
              f"{st.get('deadline_infeasible', 0)} deadline_infeasible: the gateway sheds what "
              "it could not finish before its deadline rather than answer late.")


if __name__ == "__main__":
    main()
