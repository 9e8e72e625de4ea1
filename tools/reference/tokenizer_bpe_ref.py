#!/usr/bin/env python3
"""A second opinion on Whisper's BPE, independent of the Go tokenizer and of tiktoken.

Pre-tokenization uses Python's backtracking `re` with Whisper's pattern, the \\p{L}, \\p{N} and
\\s classes spelled out as explicit character ranges from `unicodedata` (general categories L*, N*
and the Unicode White_Space list), so the lookahead `(?!\\S)` is done by a real regex engine.
Merging is the plain quadratic loop: join the leftmost lowest-ranked adjacent pair until none is
ranked. Standard library only; output has the same format as tokenizer_goldens.py (tiktoken):

    python3 tools/reference/tokenizer_bpe_ref.py --texts whisper/tokenizer/testdata/texts.txt \\
        --assets whisper/tokenizer/assets --out whisper/tokenizer/testdata/interim-pybpe
"""
import argparse
import base64
import json
import os
import re
import sys
import unicodedata

WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
               (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
               (0x3000, 0x3000)]


def ranges(pred):
    out, start = [], None
    for cp in range(sys.maxunicode + 2):
        ok = cp <= sys.maxunicode and pred(cp)
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


def charclass(rs):
    def esc(cp):
        return "\\U%08x" % cp
    return "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in rs)


def pattern():
    L = charclass(ranges(lambda cp: unicodedata.category(chr(cp)).startswith("L")))
    N = charclass(ranges(lambda cp: unicodedata.category(chr(cp)).startswith("N")))
    S = charclass(WHITE_SPACE)
    pat = (r"'s|'t|'re|'ve|'m|'ll|'d"
           rf"| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+")
    return re.compile(pat)


def load_ranks(path):
    ranks = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def bpe(piece, ranks):
    if piece in ranks:
        return [ranks[piece]]
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return [ranks[p] for p in parts]


def encode(text, pat, ranks):
    ids = []
    for m in pat.finditer(text):
        ids += bpe(m.group().encode("utf-8"), ranks)
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", required=True)
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.texts, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    pat = pattern()
    os.makedirs(a.out, exist_ok=True)
    for name in ("multilingual", "gpt2"):
        ranks = load_ranks(os.path.join(a.assets, name + ".tiktoken"))
        with open(os.path.join(a.out, f"tokens_{name}.jsonl"), "w") as w:
            for t in texts:
                w.write(json.dumps(encode(t, pat, ranks)) + "\n")


if __name__ == "__main__":
    main()
