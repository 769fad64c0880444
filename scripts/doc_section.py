#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replace one generated section of a document (docs/BENCHMARKS.md) with a new body.

Usage: scripts/doc_section.py DOC TAG TITLE BODY
The section lies between the lines <!-- TAG:begin --> and <!-- TAG:end -->; when DOC has no
such section, one is appended under the heading "## TITLE". The benchmark scripts write
their figures this way (make bench), so a run replaces its own section only.
"""
import sys


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    path, tag, title, body = sys.argv[1:]
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    text = open(path).read()
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
