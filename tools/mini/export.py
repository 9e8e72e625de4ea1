#!/usr/bin/env python3
"""Exports the mini model's weights from a training checkpoint.

Two formats:
  q8 (default)  the transport that comes back through the GPU machine's $OUT (8 files of at most
                16 MB): every 2-D weight matrix whose rows are a multiple of 32 as ggml q8_0
                blocks (NAME.q8 int8 [rows, cols] + NAME.d8 float16 [rows, cols/32], scale = max
                |x| / 127 per block of 32), everything else float32; arrays over 14 MB are split
                by rows into NAME.q8@0, NAME.q8@1, ...; tensors are packed into mini-NN.safetensors
                files of at most 15 MB; config.json is Hugging Face's WhisperConfig plus "mini" (the
                step, minutes and loss). `go run ./tools/mini/convert` turns it into the ggml model.
  hf            model.safetensors (float32) + config.json, as transformers saves them (for
                parity checks against transformers; too big for $OUT).

  python3 tools/mini/export.py --ckpt .minirun/ckpt.pt --out OUT/export [--format hf]
"""
import argparse, json, os, sys

import numpy as np
import torch

FILE_LIMIT = 15 * 1000 * 1000
SPLIT_LIMIT = 14 * 1000 * 1000


def q8_blocks(x):
    """float32 [r, c] -> (int8 [r, c], float16 [r, c/32]) as ggml's q8_0 rounds them."""
    r, c = x.shape
    b = x.reshape(r, c // 32, 32)
    amax = b.abs().amax(dim=-1)
    d = amax / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    q = torch.round(b * inv[..., None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(r, c), d.to(torch.float16)


def arrays(model):
    sd = model.state_dict()
    out = []
    for name, t in sd.items():
        if name == "proj_out.weight":  # tied to the token embedding
            continue
        t = t.detach().float().cpu()
        if t.ndim == 2 and t.shape[1] % 32 == 0 and "embed_positions" not in name:
            q, d = q8_blocks(t)
            out += [(name + ".q8", q), (name + ".d8", d)]
        else:
            out.append((name, t.contiguous()))
    split = []
    for name, t in out:
        nbytes = t.numel() * t.element_size()
        if nbytes > SPLIT_LIMIT:
            parts = -(-nbytes // SPLIT_LIMIT)
            rows = -(-t.shape[0] // parts)
            for k in range(parts):
                split.append((f"{name}@{k}", t[k * rows:(k + 1) * rows].contiguous()))
        else:
            split.append((name, t))
    return split


def write_export(model, cfg, out, meta=None):
    from safetensors.torch import save_file
    tmp = out + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    files, cur, size = [], {}, 0
    for name, t in arrays(model):
        n = t.numel() * t.element_size()
        if cur and size + n > FILE_LIMIT:
            files.append(cur)
            cur, size = {}, 0
        cur[name] = t
        size += n
    if cur:
        files.append(cur)
    for i, tensors in enumerate(files):
        save_file(tensors, os.path.join(tmp, f"mini-{i:02d}.safetensors"), metadata={"format": "verbatim-mini-q8"})
    c = cfg.to_dict()
    c["mini"] = meta or {}
    json.dump(c, open(os.path.join(tmp, "config.json"), "w"), indent=1, default=str)
    if os.path.isdir(out):
        old = out + ".old"
        if os.path.isdir(old):
            for f in os.listdir(old):
                os.remove(os.path.join(old, f))
            os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)


def read_export(folder):
    """The export's tensors back as a float32 state dict (HF names), for a weights-only resume."""
    from safetensors.torch import load_file
    raw = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            raw.update(load_file(os.path.join(folder, f)))
    joined = {}
    for name in sorted(raw, key=lambda n: (n.split("@")[0], int(n.split("@")[1]) if "@" in n else 0)):
        base = name.split("@")[0]
        joined.setdefault(base, []).append(raw[name])
    joined = {k: torch.cat(v, 0) if len(v) > 1 else v[0] for k, v in joined.items()}
    sd = {}
    for name, t in joined.items():
        if name.endswith(".q8"):
            base = name[:-3]
            d = joined[base + ".d8"].float()
            r, c = t.shape
            sd[base] = (t.float().reshape(r, c // 32, 32) * d[..., None]).reshape(r, c)
        elif not name.endswith(".d8"):
            sd[name] = t.float()
    if "model.decoder.embed_tokens.weight" in sd:
        sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=["q8", "hf"], default="q8")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from transformers import WhisperForConditionalGeneration
    import train
    st = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    cfg = train.whisper_config(argparse.Namespace(**st["args"]))
    model = WhisperForConditionalGeneration(cfg)
    model.load_state_dict(st["model"])
    meta = {"step": st["step"], "minutes": round(st["elapsed"] / 60, 2)}
    if args.format == "hf":
        model.save_pretrained(args.out, safe_serialization=True)
    else:
        write_export(model, cfg, args.out, meta)
    print("wrote", args.out, meta)


if __name__ == "__main__":
    main()
