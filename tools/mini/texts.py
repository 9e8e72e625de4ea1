#!/usr/bin/env python3
"""English sentences for the mini model, from Debian packages (no network needed once the .debs are here).

Sources (Debian 12 "bookworm" packages; fetch with tools/mini/fetch_debs.sh, unpacked with dpkg -x):
  wordnet-base 1:3.0-37        example sentences in the glosses of data.{noun,verb,adj,adv}
  fortunes 1:1.99.1-7.3        every English cookie file (not the offensive ones)
  fortunes-min 1:1.99.1-7.3    (mostly the same cookies: deduplicated)
  fortune-anarchism 1.8.0-1    quotations
  dict-devil 1.0-13.1          The Devil's Dictionary (Bierce, public domain)
  dict-gcide 0.48.5+nmu2       definitions and usage sentences of GCIDE (Webster 1913 + WordNet)

Cleaning: ASCII only after mapping typographic quotes and dashes, 3..25 words, no digits, no
acronyms (two capitals in a row), no brackets or symbols, first letter capitalized, final
punctuation ensured, whitespace collapsed; deduplicated on the lowercased words. The split is a
keyed hash of those words, not a shuffle: a sentence is held out when
sha256(SEED + words) mod 10000 < 200 (2%), so adding sources never moves a sentence across the split.

  python3 tools/mini/texts.py --root /tmp/minitext/root --out tools/mini/data

writes OUT/train.txt.gz (gzip, reproducible bytes), OUT/heldout.txt and OUT/sources.json. Each line is
SOURCE<TAB>SENTENCE, sorted by the split hash (so by nothing meaningful).
"""
import argparse, glob, gzip, hashlib, json, os, re, sys
from collections import Counter

SEED = "verbatim-mini-v1"
HELDOUT_PER_10000 = 200
# gcide alone would be 80% of the text (and a 6 MB file): keep a fixed, hash-chosen 55% of it
KEEP_PER_10000 = {"dict-gcide": 5500}

TRANS = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": " - ",
    "\u2026": "...", "\u00a0": " ", "`": "'", "''": '"',
}
BAD = re.compile(r"[0-9\[\]{}()<>/\\@#$%^&*_=+|~]")
ACRONYM = re.compile(r"[A-Z][A-Z]")
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
ALLOWED = re.compile(r"^[A-Za-z ,.;:!?'\-]+$")
# abbreviations ("Pr.", "Fig.", "U.", "etc.") and gcide's grammar labels make poor speech
ABBREV = re.compile(r"(?:^|\s)(?:[B-HJ-Zb-hj-z]|[A-Z][a-z]?|Fig|Pr|Obs|Lit|Specif|Cf|Esp|Colloq|etc|viz|fr|pl|imp|pp|Gr|Lat|Mr|Mrs|Dr|St)\.(?=\s|$|[,:;])")
FRAGMENT_START = re.compile(r"^(?:Fig|Obs|See|Syn|Note|Also|Hence|Same as|Pertaining|Of or pertaining)\b")
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def norm_key(s):
    return " ".join(w.lower() for w in WORD.findall(s))


def clean(s):
    for a, b in TRANS.items():
        s = s.replace(a, b)
    s = s.replace('"', " ")
    s = re.sub(r"\s+", " ", s).strip(" -;:,")
    if not s or BAD.search(s) or not s.isascii():
        return None
    if ACRONYM.search(s) or "--" in s or ".." in s or ". ." in s:
        return None
    if ABBREV.search(s) or FRAGMENT_START.match(s):
        return None
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    s = re.sub(r"([,;:])(?=[A-Za-z])", r"\1 ", s)
    s = re.sub(r"\s*-\s+|\s+-\s*", ", ", s)  # a dash as a pause reads like a comma
    s = re.sub(r",\s*([,.;:!?])", r"\1", s)
    if not ALLOWED.match(s):
        return None
    words = WORD.findall(s)
    if not (3 <= len(words) <= 25):
        return None
    if any(len(w) > 18 for w in words):
        return None
    s = s[0].upper() + s[1:]
    if s[-1] not in ".!?":
        s = s.rstrip(",;:") + "."
    return s


def sentences(text):
    text = re.sub(r"\s+", " ", text)
    for part in SPLIT.split(text):
        yield part


def wordnet(root):
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(root, "usr/share/wordnet/data." + pos)
        for line in open(path, encoding="latin-1"):
            if line.startswith("  ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1]
            for ex in re.findall(r'"([^"]+)"', gloss):
                yield ex


def fortunes(root):
    files = sorted(glob.glob(os.path.join(root, "usr/share/games/fortunes/*")))
    for path in files:
        if path.endswith((".dat", ".u8")) or os.path.isdir(path) or "/off/" in path:
            continue
        raw = open(path, "rb").read().decode("utf-8", "replace")
        for cookie in raw.split("\n%\n"):
            lines = [l for l in cookie.splitlines() if l.strip()]
            # attributions, dialogue and verse layouts: keep prose lines only
            body = " ".join(l.strip() for l in lines if not l.strip().startswith(("--", "-", "Q:", "A:")))
            for s in sentences(body):
                yield s


def dictd(path):
    raw = gzip.open(path, "rb").read().decode("utf-8", "replace")
    return raw


def devil(root):
    raw = dictd(os.path.join(root, "usr/share/dictd/devil.dict.dz"))
    for para in re.split(r"\n\s*\n", raw):
        body = " ".join(l.strip() for l in para.splitlines()[1:])
        for s in sentences(body):
            yield s


def gcide(root):
    raw = dictd(os.path.join(root, "usr/share/dictd/gcide.dict.dz"))
    for para in re.split(r"\n\s*\n", raw):
        lines = para.splitlines()
        if not lines:
            continue
        if not lines[0].startswith(" "):  # the headword line: "Word \Pron\, n. [etym]"
            lines = lines[1:]
        body = " ".join(l.strip() for l in lines)
        body = re.sub(r"\[[^\]]*\]", " ", body)          # sources, etymology
        body = re.sub(r"\{([^}]*)\}", r"\1", body)        # cross-reference braces
        body = re.sub(r"--\s*[A-Z][A-Za-z. ]*\.?", " ", body)  # --Shak. attributions
        body = re.sub(r"^\s*\d+\.\s*", "", body)
        if body.startswith(("Syn:", "Note:")):
            body = body.split(":", 1)[1]
        for clause in re.split(r";\s+as,?\s+|;\s+", body):
            for s in sentences(clause):
                yield s


SOURCES = {
    "wordnet-base": wordnet,
    "fortunes": fortunes,  # fortunes, fortunes-min and fortune-anarchism unpack into one folder
    "dict-devil": devil,
    "dict-gcide": gcide,
}


def held_out(key):
    h = hashlib.sha256((SEED + "\n" + key).encode()).digest()
    return int.from_bytes(h[:4], "big") % 10000 < HELDOUT_PER_10000, h.hex()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="folder the .debs were unpacked into with dpkg -x")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-per-source", type=int, default=0, help="cap per source (0: none)")
    args = ap.parse_args()
    seen = set()
    train, held = [], []
    counts = Counter()
    for name, fn in SOURCES.items():
        n = 0
        for raw in fn(args.root):
            s = clean(raw)
            if s is None:
                continue
            k = norm_key(s)
            if k in seen:
                continue
            seen.add(k)
            ho, h = held_out(k)
            if int(h[8:16], 16) % 10000 >= KEEP_PER_10000.get(name, 10000):
                continue
            (held if ho else train).append((h, name, s))
            counts[name] += 1
            n += 1
            if args.max_per_source and n >= args.max_per_source:
                break
    os.makedirs(args.out, exist_ok=True)
    for fname, rows in (("train.txt.gz", train), ("heldout.txt", held)):
        rows.sort()
        text = "".join(f"{src}\t{s}\n" for _, src, s in rows).encode()
        path = os.path.join(args.out, fname)
        if fname.endswith(".gz"):  # mtime 0 and no name: the same input gives the same bytes
            with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0,
                                                        compresslevel=9) as f:
                f.write(text)
        else:
            open(path, "wb").write(text)
    meta = {"seed": SEED, "heldout_per_10000": HELDOUT_PER_10000, "per_source": dict(counts),
            "train": len(train), "heldout": len(held)}
    json.dump(meta, open(os.path.join(args.out, "sources.json"), "w"), indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
