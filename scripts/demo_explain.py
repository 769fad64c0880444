#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""make demo's "how to read it": one line per figure of the report, with the run's own values.

Usage: scripts/demo_explain.py BENCH.json REPORT.txt METRICS.txt CARD.md IMAGES MIX
Reads the bench's JSON (--json) and table, the gateway's /metrics scrape (HTTP headers
allowed), the model card's fp32 and int8 accuracy of the final exit and the served dtype
(model.conf beside CARD.md); prints plain lines.
"""
import json
import os
import re
import sys


def metrics(path):
    """Sum of every sample of each metric name, the samples by their full name, and the help
    of each dataplane drop reason (the scrape's "# reason NAME: HELP" lines)."""
    sums, samples, why = {}, {}, {}
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return sums, samples, why
    for line in lines:
        m = re.match(r"^# reason ([a-z0-9_]+): (.*)$", line)
        if m:
            why[m.group(1)] = m.group(2)
        m = re.match(r"^(tailgate_[a-z0-9_]+)(\{[^}]*\})? ([-0-9.e+]+)$", line)
        if m:
            sums[m.group(1)] = sums.get(m.group(1), 0.0) + float(m.group(3))
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return sums, samples, why


def card_accuracy(path):
    """The card's final-exit top-1 (fp32, int8) from its accuracy-per-exit table."""
    try:
        for line in open(path, encoding="utf-8"):
            m = re.match(r"^\| *\d+ *\| *final *\| *([0-9.]+)% *\| *([0-9.]+)% *\|", line)
            if m:
                return m.group(1), m.group(2)
    except OSError:
        pass
    return "?", "?"


def conf_value(conf, key, default):
    """A key's value in model.conf (the first line setting it), else default."""
    try:
        for line in open(conf, encoding="utf-8"):
            m = re.match(r"^%s *= *([A-Za-z0-9_.]+)" % key, line)
            if m:
                return m.group(1)
    except OSError:
        pass
    return default


def main():
    doc = json.load(open(sys.argv[1]))
    bench = doc.get("result") or (doc.get("steps") or [{}])[-1]
    report = open(sys.argv[2], encoding="utf-8").read()
    sums, samples, why = metrics(sys.argv[3])
    (card32, card8), images, mix = card_accuracy(sys.argv[4]), sys.argv[5], sys.argv[6]
    conf = os.path.join(os.path.dirname(sys.argv[4]), "model.conf")
    dtype, max_batch = conf_value(conf, "dtype", "f32"), conf_value(conf, "max_batch", "32")
    if dtype == "int8":
        engine = "in int8 with model.calib, as the gateway serves it (model.conf: dtype = int8)"
        card = (f"{card8}% in int8 (what is served) and {card32}% in fp32 are over all 10,000 "
                "test images")
    else:
        engine = f"in {dtype}, as the gateway serves it (model.conf)"
        card = f"{card32}% in fp32 ({card8}% in int8) is over all 10,000 test images"
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
          f"injected: {g('nacks', '?')} NACK(s) asked for chunks the gateway had not seen "
          "within its NACK gap (2 ms by default: on a busy 2-core machine the bench's sender or "
          "the gateway's RX lcore can pause longer, so a chunk that was only late is asked "
          f"for again), and {g('timer_fires', '?')} request timer(s) fired before the answer "
          "(docs/protocol.md 12.2: 2 x RTT + the NACK gap + the expected server time, at least "
          "20 ms; queueing and batching can take longer), each resending the whole request.")
    print(f"the gateway answered {gw_answered} requests in /metrics against the bench's "
          f"{g('answered', '?')} measured answers: it also answers the warm-up's requests and "
          f"those still open after the window; a resend of a request it still holds gets a "
          f"PENDING ({gw_pending} sent, {g('pendings', '?')} reached the bench), one already "
          f"answered its kept answer again ({resent_answers}); neither counts as a request.")
    if g("timeouts"):
        print(f"timeouts {g('timeouts')}: requests whose retry budget (their deadline plus one "
              "timer) ran out before an OK or refusal arrived; counted by the bench, answered "
              "late or never by a gateway that had more work than its cores.")
    print("the rows at 0 (impairment, corrupted, unauthenticated, re-HELLOs, path challenges, "
          "send errors, unfinished) count faults this run does not inject: loss, tampering, "
          "keys, a gateway restart, an address change.")
    lat = g("latency_ms", {})
    print(f"latency p50 {lat.get('p50', '?')} .. max {lat.get('max', '?')} ms: OK answers only, "
          "from each request's scheduled send time (a send that waited for an idle device "
          "counts its wait); plots/latency_cdf.png and latency.hgrm hold the whole curve.")
    print("server side: the queue (last chunk to batch start) and compute (its batch's run) "
          "the gateway reports in each RESPONSE; latency less these is the uplink pacing, the "
          "network, resends and the bench itself.")
    print(f"measured requests answered {g('answered', '?')} of {g('scheduled', '?')}: the "
          "arrivals of the window that got an answer (OK or a refusal) before the drain ended; "
          "the others are the timeouts.")
    print(f"ignored datagrams {g('ignored', '?')}: replies the bench had no use for: a second "
          "answer to a request it had already finished (its resend answered again), or the "
          "further ERRORs one send drew (one per chunk).")
    errs = g("errors", {})
    if errs:
        print(f"ERROR answers ({', '.join(f'{k} {v}' for k, v in errs.items())}): the gateway "
              "had already freed the request (unknown_request: after its reassembly timeout, "
              "reasm_timeout) when a resend's chunks came; counted as answered, not OK.")
    print(f"accuracy {g('accuracy', 0):.2f}%: the gateway's answers against the Fashion-MNIST "
          f"labels, over the {g('ok', '?')} OK answers of this mix "
          f"({'; '.join(mix.split(';')[0:2])}), tails computed {engine}.")
    print(f"offline accuracy {g('offline_accuracy', 0):.2f}%: tailgate's engine alone, {engine}, "
          f"on exactly the same requests (the same quantized bytes); agreement "
          f"{g('agreement', 0):.2f}% says how many answers equal the engine's: 100% means the "
          "gateway changed nothing.")
    print(f"inputs' offline {built.group(1) if built else '?'}%: the same engine over every one "
          f"of the first {images} test images at every split and dtype of the mix, not only "
          "those sent.")
    print(f"the model card's {card}, the final exit's alone with the tensor in fp32: another "
          f"image set than the {images} above, the wire's f16/s8/u8 move a few answers, and "
          "here early exits may answer first (the line on exits, when they do).")
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
    drops = [(k[len('tailgate_dp_drops_total{reason="'):-2], int(v)) for k, v in samples.items()
             if k.startswith('tailgate_dp_drops_total{reason="') and v > 0]
    if drops:
        listed = "; ".join("%s %d: %s" % (r, n, why.get(r, "?")) for r, n in drops)
        if all(r in ("chunk_dup", "chunk_late") for r, _ in drops):
            print(f"dataplane drops ({listed}): the other side of the resends above: a chunk "
                  "resent for a NACK or a timer whose first copy was only late arrives twice, "
                  "or after its message was complete, and that copy is dropped; nothing a "
                  "device needed was lost.")
        else:
            print(f"dataplane drops ({listed}): datagrams the dataplane did not deliver, each "
                  "counted by its reason (tailgate_dp_drops_total).")
    print("the gateway's view below: its answers by status (warm-up and window together) and "
          "by exit, refusals by reason, dataplane drops, and the mean batch size: requests per tail "
          f"run, up to max_batch ({max_batch}), which is how two cores serve hundreds per second.")


if __name__ == "__main__":
    main()
