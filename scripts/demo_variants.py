#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""make demo's table of the variants: one row per tailgate-bench run on a variant.

Usage: scripts/demo_variants.py MODEL.conf BENCH.json [BENCH.json ...]
Each BENCH.json is a tailgate-bench --json file of one run; its result's "variant" says which
variant the requests named (0: the base model). Prints per variant: its name (model.conf's
variant line), requests answered OK of those measured, answers that named another variant,
latency p50 and p99 of the OK answers, the accuracy of the gateway's answers against the
labels (with its early exits, as the run asked), the share answered by early exits, and the
card's final-exit accuracy in the precision the gateway serves (model.conf's accuracy lines;
"?" when the line has none). Reads only what it is given: a figure that is missing is "?".
"""
import json
import re
import sys


def variants(conf):
    """{id: (name, card final accuracy fp32, int8)} from model.conf, id 0 the base."""
    out = {0: ["base", "?", "?"]}
    for line in open(conf, encoding="utf-8"):
        m = re.match(r"^accuracy *= *final:([0-9.]+)(?::([0-9.]+))?", line)
        if m:
            out[0][1:] = [m.group(1), m.group(2) or "?"]
        m = re.match(r"^variant *= *(\d+) +(\S+)(.*)$", line)
        if m:
            acc = re.search(r"\baccuracy=\S*?final:([0-9.]+)(?::([0-9.]+))?", m.group(3))
            out[int(m.group(1))] = [m.group(2), acc.group(1) if acc else "?",
                                    (acc.group(2) or "?") if acc else "?"]
    return out


def dtype_of(conf):
    for line in open(conf, encoding="utf-8"):
        m = re.match(r"^dtype *= *(\S+)", line)
        if m:
            return m.group(1)
    return "f32"


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "?"


def pct(v):
    return fmt(v, ".2f") + "%" if isinstance(v, (int, float)) else "?"


def main():
    if len(sys.argv) < 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    conf = sys.argv[1]
    names, int8 = variants(conf), dtype_of(conf) == "int8"
    print(f"{'variant':<16} {'OK/measured':>13} {'other':>5} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'accuracy':>9} {'early exits':>11} {'card final':>11}")
    for path in sys.argv[2:]:
        try:
            r = json.load(open(path))["result"]
        except (OSError, ValueError, KeyError) as e:
            print(f"{path}: no result ({e})")
            continue
        vid = r.get("variant", 0)
        name, c32, c8 = names.get(vid, ["?", "?", "?"])
        lat = r.get("latency_ms") or {}
        exits, ok = r.get("exits") or {}, r.get("ok", 0)
        # The final output: "final" when so named, else the last (the bench lists the
        # outputs in the model's order, the final one last in every model here).
        final = ("final" if "final" in exits else list(exits)[-1]) if exits else None
        early = sum(v for k, v in exits.items() if k != final) if exits else None
        share = f"{100.0 * early / ok:.1f}%" if early is not None and ok else "?"
        card = (c8 if int8 else c32) + ("%" if (c8 if int8 else c32) != "?" else "")
        print(f"{str(vid) + ' ' + name:<16} {str(ok) + '/' + str(r.get('scheduled', '?')):>13} "
              f"{fmt(r.get('other_variant'), 'd'):>5} {fmt(lat.get('p50'), '.2f'):>8} "
              f"{fmt(lat.get('p99'), '.2f'):>8} {pct(r.get('accuracy')):>9} "
              f"{share:>11} {card:>11}")
    print(f"accuracy: the gateway's answers against the labels over this run's images (a few "
          f"hundred: a point or two from the card either way); card final: the final exit "
          f"alone over the 10,000 test images in {'int8' if int8 else 'fp32'} (model.conf); "
          f"other: OK answers naming a variant other than the one asked.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
