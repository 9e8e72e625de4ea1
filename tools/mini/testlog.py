#!/usr/bin/env python3
"""Figures from `go test ./mini -run Acceptance -v` logs (one or more, e.g. the runs with
VERBATIM_MINI_SKIP=48, 248 and 648 that cover held-out sentences 49-932), as the sixth model was
chosen:

    python3 tools/mini/testlog.py LOG [LOG ...]

prints the WER over all clips (the test's normalization), the segments off by more than 0.3 s,
the WER by held-out variant, and "blocks": each log cut into runs of 24 clips (48 sentences, the
test's size), counting those that pass issue 6's bar (WER <= 10% and no segment off). Only the
first pass of each log is read (the one without word timestamps)."""
import re
import sys
from collections import defaultdict

_NON_WORD = re.compile(r"[^a-z' ]+")
_REF = re.compile(r"\s*mini_test.go:\d+: (\S+)\s+REF (.*)")


def normalize(s):
    """mini_test.go's normalize: lowercase, hyphens to spaces, other punctuation dropped."""
    s = _NON_WORD.sub(" ", s.lower().replace("-", " "))
    return [w.strip("'") for w in s.split() if w.strip("'")]


def word_edits(ref, hyp):
    """Word-level Levenshtein distance."""
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


def clips(path):
    """[(voice, errors, words, segments off)] in the log's order."""
    out, off = [], 0
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        if "with word timestamps" in line:
            break
        if "off by" in line:
            off += 1  # the test logs a clip's misses before its REF/HYP lines
        m = _REF.match(line)
        if m and i + 1 < len(lines) and "HYP" in lines[i + 1]:
            ref = normalize(m.group(2).replace(" | ", " "))
            hyp = normalize(lines[i + 1].split("HYP", 1)[1])
            out.append((m.group(1), word_edits(ref, hyp), len(ref), off))
            off = 0
    return out


def main(paths):
    allc, blocks = [], []
    for p in paths:
        c = clips(p)
        allc += c
        blocks += [c[k:k + 24] for k in range(0, len(c) - 23, 24)]
    if not allc:
        sys.exit("no REF/HYP lines in " + ", ".join(paths) + " (run the test with -v)")
    e, n, off = (sum(x[i] for x in allc) for i in (1, 2, 3))
    print(f"WER {100 * e / n:.2f}% ({e}/{n} words, {2 * len(allc)} sentences), {off} segments off by > 0.3 s")
    by = defaultdict(lambda: [0, 0])
    for voice, ce, cn, _ in allc:
        by[voice.split("+")[-1]][0] += ce
        by[voice.split("+")[-1]][1] += cn
    for v, (ve, vn) in sorted(by.items(), key=lambda kv: -kv[1][0] / kv[1][1]):
        print(f"  {v:10s} {100 * ve / vn:6.2f}% ({ve}/{vn})")
    passing = 0
    marks = []
    for b in blocks:
        be, bn, boff = (sum(x[i] for x in b) for i in (1, 2, 3))
        passing += be <= 0.10 * bn and boff == 0
        marks.append(f"{100 * be / bn:.1f}" + "*" * boff)
    print(f"blocks of 48 sentences passing the bar: {passing} of {len(blocks)} (WER, * a segment off): {' '.join(marks)}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
