#!/usr/bin/env python3
"""Golden token ids from tiktoken for the Go tokenizer (whisper/tokenizer).

Runs where `tiktoken` (0.14) is installed, without network: the encodings are built from the
local .tiktoken files with Whisper's pattern and special-token layout (as openai/whisper's
get_encoding lays them out), not fetched. From the repository root:

    python3 tools/reference/tokenizer_goldens.py --texts whisper/tokenizer/testdata/texts.txt \\
        --assets whisper/tokenizer/assets --out DIR

writes DIR/tokens_multilingual.jsonl and DIR/tokens_gpt2.jsonl (one JSON list of ids per text
line), DIR/specials.json (special-token ids and the non-speech lists per vocabulary size) and
DIR/decoded_multilingual.jsonl (tiktoken's decode of each line's ids, a round-trip check).
Copy them into whisper/tokenizer/testdata/.
"""
import argparse
import base64
import json
import os

import tiktoken

PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

LANGS = ("en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu "
         "ta no th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn "
         "bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn "
         "mt sa lb my bo tl mg as tt haw ln ha ba jw su yue").split()


def load_ranks(path):
    """Parses a .tiktoken file as tiktoken's load_tiktoken_bpe does, from a local path."""
    with open(path, "rb") as f:
        contents = f.read()
    return {
        base64.b64decode(tok): int(rank)
        for tok, rank in (line.split() for line in contents.splitlines() if line)
    }


def encoding(assets, name, num_languages):
    ranks = load_ranks(os.path.join(assets, name + ".tiktoken"))
    specials = (["<|endoftext|>", "<|startoftranscript|>"]
                + [f"<|{c}|>" for c in LANGS[:num_languages]]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                   "<|nospeech|>", "<|notimestamps|>"]
                + [f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    n = len(ranks)
    special_ids = {s: n + i for i, s in enumerate(specials)}
    enc = tiktoken.Encoding(
        name=f"{name}-{num_languages}",
        explicit_n_vocab=n + len(specials),
        pat_str=PATTERN,
        mergeable_ranks=ranks,
        special_tokens=special_ids,
    )
    return enc, special_ids


def non_speech(enc):
    """openai/whisper's non_speech_tokens rule, restated."""
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    misc = set("♩♪♫♬♭♮♯")
    out = {enc.encode(" -")[0], enc.encode(" '")[0]}
    for s in symbols + sorted(misc):
        for ids in (enc.encode(s), enc.encode(" " + s)):
            if len(ids) == 1 or s in misc:
                out.add(ids[0])
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", required=True)
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.texts, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    os.makedirs(a.out, exist_ok=True)

    info = {"tiktoken": getattr(tiktoken, "__version__", "?")}
    for n_vocab, name, nl in ((51864, "gpt2", 99), (51865, "multilingual", 99),
                              (51866, "multilingual", 100)):
        enc, ids = encoding(a.assets, name, nl)
        assert enc.n_vocab == n_vocab, (enc.n_vocab, n_vocab)
        info[str(n_vocab)] = {
            "eot": ids["<|endoftext|>"], "sot": ids["<|startoftranscript|>"],
            "translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"],
            "sot_lm": ids["<|startoflm|>"], "sot_prev": ids["<|startofprev|>"],
            "no_speech": ids["<|nospeech|>"], "no_timestamps": ids["<|notimestamps|>"],
            "timestamp_begin": ids["<|0.00|>"], "last": ids["<|30.00|>"],
            "non_speech": non_speech(enc),
        }
        if n_vocab == 51866:
            continue  # same ranks as 51865
        with open(os.path.join(a.out, f"tokens_{name}.jsonl"), "w") as w:
            dec = None
            if name == "multilingual":
                dec = open(os.path.join(a.out, "decoded_multilingual.jsonl"), "w", encoding="utf-8")
            for t in texts:
                toks = enc.encode_ordinary(t)
                w.write(json.dumps(toks) + "\n")
                if dec is not None:
                    dec.write(json.dumps(enc.decode(toks), ensure_ascii=False) + "\n")
            if dec is not None:
                dec.close()
    with open(os.path.join(a.out, "specials.json"), "w") as w:
        json.dump(info, w, indent=1)
        w.write("\n")


if __name__ == "__main__":
    main()
