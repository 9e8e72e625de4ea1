#!/usr/bin/env python3
"""Trains the mini model (Whisper architecture, large-v3 conventions) on the GPU machine.

CPU workers (tools/mini/gen.py, one process a core) synthesize clips without pause and feed a
pool in RAM (newest clips replace random old ones); the GPU draws batches from the pool, adds a
little noise and gain, computes log-mel features itself (WhisperFeatureExtractor's filters and
formula, batched in torch) and trains with bf16 autocast, AdamW, warmup then cosine decay over
--total-minutes of training time (counted across resumed runs).

Every --ckpt-every seconds it writes CKPT_DIR/ckpt.pt (weights, optimizer, step, time: a full
resume) and every --export-every seconds CKPT_DIR/export/ (the weights in q8_0 blocks, split into
files under 16 MB, + config.json: what comes back through $OUT and what tools/mini/convert turns
into the ggml model). At the end (--minutes of training in this run) it writes both, then a greedy
word error rate on held-out sentences (never trained on) spoken with held-out voice variants.

  python3 tools/mini/train.py --minutes 8.5 --total-minutes 20 --ckpt-dir .minirun [--resume .minirun/ckpt.pt]
"""
import argparse, json, math, os, queue, sys, threading, time

import numpy as np
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutput

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402
import export as exporter  # noqa: E402
from testlog import normalize, word_edits  # noqa: E402  (the Go test's WER)

N_SAMPLES = 480000


def whisper_config(args):
    from transformers import WhisperConfig
    return WhisperConfig(
        vocab_size=gen.VOCAB, num_mel_bins=128, d_model=args.d_model,
        encoder_layers=args.enc_layers, decoder_layers=args.dec_layers,
        encoder_attention_heads=args.heads, decoder_attention_heads=args.heads,
        encoder_ffn_dim=4 * args.d_model, decoder_ffn_dim=4 * args.d_model,
        max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=gen.SOT, pad_token_id=gen.EOT, bos_token_id=gen.EOT, eos_token_id=gen.EOT,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, scale_embedding=False,
        tie_word_embeddings=True)


class LogMel(torch.nn.Module):
    """WhisperFeatureExtractor (feature_size=128) on a batch, on the GPU."""

    def __init__(self, device):
        super().__init__()
        from transformers import WhisperFeatureExtractor
        fe = WhisperFeatureExtractor(feature_size=128)
        self.filters = torch.tensor(np.asarray(fe.mel_filters), dtype=torch.float32, device=device)  # [201, 128]
        self.window = torch.hann_window(400, periodic=True, device=device)

    def forward(self, audio):  # [B, 480000] float32
        st = torch.stft(audio, 400, 160, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        mag = st.abs() ** 2  # [B, 201, 3001]
        mel = torch.matmul(self.filters.T, mag[..., :-1])  # [B, 128, 3000]
        logm = torch.clamp(mel, min=1e-10).log10()
        mx = logm.amax(dim=(1, 2), keepdim=True)
        logm = torch.maximum(logm, mx - 8.0)
        return (logm + 4.0) / 4.0


class Pool:
    """Clips from the workers: a list that fills to `size`, then newest-replace-random."""

    def __init__(self, q, size, seed):
        self.q, self.size = q, size
        self.items = []
        self.lock = threading.Lock()
        self.rng = np.random.default_rng(seed)
        self.received = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        while True:
            item = self.q.get()
            with self.lock:
                if len(self.items) < self.size:
                    self.items.append(item)
                else:
                    self.items[self.rng.integers(self.size)] = item
                self.received += 1

    def batch(self, b):
        with self.lock:
            idx = self.rng.integers(len(self.items), size=b)
            return [self.items[i] for i in idx]


def to_device(batch, device, rng, noise_p=0.3):
    lens = [len(c[0]) for c in batch]
    flat = torch.from_numpy(np.concatenate([c[0] for c in batch]))
    flat = flat.to(device, non_blocking=True).float() / 32768.0
    audio = torch.zeros(len(batch), N_SAMPLES, device=device)
    o = 0
    for i, n in enumerate(lens):
        audio[i, :n] = flat[o:o + n]
        o += n
    # per-draw augmentation: gain, and extra white noise on some clips
    B = len(batch)
    gain = torch.exp(torch.empty(B, 1, device=device).uniform_(-1.0, 0.7))
    audio = audio * gain
    rms = audio.pow(2).mean(dim=1, keepdim=True).sqrt() * (N_SAMPLES / torch.tensor(lens, device=device).view(-1, 1).clamp(min=1)).sqrt()
    snr = torch.empty(B, 1, device=device).uniform_(10, 40)
    on = (torch.rand(B, 1, device=device) < noise_p).float()
    mask = (torch.arange(N_SAMPLES, device=device).view(1, -1) < torch.tensor(lens, device=device).view(-1, 1)).float()
    audio = audio + on * mask * torch.randn_like(audio) * rms * 10 ** (-snr / 20)
    audio = audio.clamp(-1, 1)
    T = max(len(c[1]) for c in batch) - 1
    dec_in = torch.full((B, T), gen.EOT, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    for i, c in enumerate(batch):
        t = torch.from_numpy(c[1].astype(np.int64))
        dec_in[i, :len(t) - 1] = t[:-1]
        labels[i, :len(t) - 1] = t[1:]
        if c[1][0] == gen.STARTOFPREV:
            # a prompt (the previous window's tokens) is context, not something to predict: no
            # loss up to and including the prediction of SOT
            labels[i, :gen.prompt_len(c[1])] = -100
    # CTC: characters concatenated, encoder frames (2 mel hops, 20 ms each) the clip covers
    chars = [c[2] for c in batch]
    ctc_targets = torch.from_numpy(np.concatenate(chars).astype(np.int64)) if sum(map(len, chars)) else torch.zeros(0, dtype=torch.long)
    ctc_tlens = torch.tensor([len(c) for c in chars], dtype=torch.long)
    ctc_ilens = torch.tensor([min(1500, (n + 319) // 320) for n in lens], dtype=torch.long)
    return (audio, dec_in.to(device, non_blocking=True), labels.to(device, non_blocking=True),
            (ctc_targets.to(device), ctc_ilens.to(device), ctc_tlens.to(device)))


def spec_augment(feats, p, max_f=12, max_t=30):
    """SpecAugment on log-mel [B, 128, 3000]: on a share p of the clips, two frequency bands of up
    to max_f bins and two time spans of up to max_t frames (10 ms each) are set to the clip's mean,
    so the model cannot lean on one formant region or on every frame (held-out voices differ
    mostly there)."""
    if p <= 0:
        return feats
    B, nf, nt = feats.shape
    dev = feats.device
    on = torch.rand(B, 1, 1, device=dev) < p
    af = torch.arange(nf, device=dev).view(1, nf, 1)
    at = torch.arange(nt, device=dev).view(1, 1, nt)
    drop = torch.zeros(B, nf, nt, dtype=torch.bool, device=dev)
    for _ in range(2):
        w = torch.randint(0, max_f + 1, (B, 1, 1), device=dev)
        s = (torch.rand(B, 1, 1, device=dev) * (nf - w)).long()
        drop |= (af >= s) & (af < s + w)
        w = torch.randint(0, max_t + 1, (B, 1, 1), device=dev)
        s = (torch.rand(B, 1, 1, device=dev) * (nt - w)).long()
        drop |= (at >= s) & (at < s + w)
    mean = feats.mean(dim=(1, 2), keepdim=True)
    return torch.where(on & drop, mean, feats)


def lr_at(step, elapsed, args):
    warm = min(1.0, (step + 1) / args.warmup)
    frac = min(1.0, elapsed / (args.total_minutes * 60))
    return args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def wer(refs, hyps):
    errs = n = 0
    for r, h in zip(refs, hyps):
        r = normalize(r)
        errs += word_edits(r, normalize(h))
        n += len(r)
    return errs / max(1, n)


def eval_set(n, variants, seed):
    """Held-out sentences (wordnet + fortunes, the everyday ones) as single-sentence clips."""
    rows = [s for src, s in gen.read_sentences(os.path.join(HERE, "data/heldout.txt"))
            if src in ("wordnet-base", "fortunes") and len(s.split()) <= 20]
    rng = np.random.default_rng(seed)
    tok = gen.Tokenizer()
    out = []
    for i in rng.permutation(len(rows))[:n]:
        c = gen.speech_clip(rng, tok, [rows[i]], variants)
        if c is not None:
            out.append((np.round(c[0] * 32767).astype(np.int16), rows[i]))
    return out


@torch.no_grad()
def greedy(model, mel_fn, clips, device, tok, max_len=120):
    texts = []
    for k in range(0, len(clips), 64):
        part = clips[k:k + 64]
        audio = torch.zeros(len(part), N_SAMPLES, device=device)
        for i, (a, _) in enumerate(part):
            audio[i, :len(a)] = torch.from_numpy(a.astype(np.float32) / 32768.0).to(device)
        feats = mel_fn(audio)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            enc = model.model.encoder(feats).last_hidden_state
            seq = torch.tensor([[gen.SOT, gen.LANG_EN, gen.TRANSCRIBE, gen.NOTIMESTAMPS]] * len(part), device=device)
            done = torch.zeros(len(part), dtype=torch.bool, device=device)
            for _ in range(max_len):
                logits = model(encoder_outputs=(enc,), decoder_input_ids=seq).logits[:, -1].float()
                logits[:, gen.EOT + 1:] = -1e9  # text or end only
                nxt = logits.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, gen.EOT), nxt)
                seq = torch.cat([seq, nxt[:, None]], 1)
                done |= nxt == gen.EOT
                if done.all():
                    break
        for row in seq[:, 4:].tolist():
            ids = [t for t in row if t < gen.EOT]
            texts.append(tok.decode(ids).strip())
    return texts


def save_ckpt(path, model, ctc_head, opt, step, elapsed, args):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "ctc": ctc_head.state_dict(), "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "args": vars(args)}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=8.5, help="training time in this run")
    ap.add_argument("--total-minutes", type=float, default=20, help="length of the LR schedule, over all runs")
    ap.add_argument("--ckpt-dir", default=".minirun")
    ap.add_argument("--resume", help="ckpt.pt (full) or an export folder (weights only, fresh optimizer)")
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--enc-layers", type=int, default=4)
    ap.add_argument("--dec-layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=800)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 4) - 2))
    ap.add_argument("--pool", type=int, default=40000)
    ap.add_argument("--min-pool", type=int, default=1500)
    ap.add_argument("--ckpt-every", type=float, default=60)
    ap.add_argument("--export-every", type=float, default=150)
    ap.add_argument("--eval", type=int, default=200, help="held-out clips for the final WER (0: none)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--random-voices", type=float, default=0.5,
                    help="share of speech clips in random espeak-ng voice variants (64 a worker; gen.random_variants)")
    ap.add_argument("--pause-share", type=float, default=gen.PAUSE_SHARE,
                    help="share of sentence picks from lines with a pause inside (gen.Sampler)")
    ap.add_argument("--pause-stops", action="store_true",
                    help="lines with a sentence end inside count as pause lines too")
    ap.add_argument("--longform", type=float, default=0.0,
                    help="share of clips that are 30 s windows of a continuous reading, half with the previous "
                         "window's tokens as prompt (gen.longform_clip; issue 17)")
    ap.add_argument("--min-gap", type=float, default=gen.MIN_GAP,
                    help="shortest silence between two lines of a clip, seconds (gen.MIN_GAP)")
    ap.add_argument("--specaug", type=float, default=0.0,
                    help="share of clips given SpecAugment masks (2 bands of <= 12 mel bins, 2 spans of <= 30 frames)")
    ap.add_argument("--ctc-weight", type=float, default=0.3,
                    help="weight of the auxiliary character CTC loss on the encoder output (training only)")
    args = ap.parse_args()

    from transformers import WhisperForConditionalGeneration
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = "cuda"
    os.makedirs(args.ckpt_dir, exist_ok=True)
    ckpt_path = os.path.join(args.ckpt_dir, "ckpt.pt")
    export_dir = os.path.join(args.ckpt_dir, "export")

    step, elapsed = 0, 0.0
    state = None
    if args.resume and args.resume.endswith(".pt"):
        state = torch.load(args.resume, map_location="cpu", weights_only=False)
        for k in ("d_model", "heads", "enc_layers", "dec_layers"):
            setattr(args, k, state["args"][k])
        step, elapsed = state["step"], state["elapsed"]
    cfg = whisper_config(args)
    model = WhisperForConditionalGeneration(cfg)
    if state is not None:
        model.load_state_dict(state["model"])
    elif args.resume:
        sd = exporter.read_export(args.resume)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        print("resumed weights from", args.resume, "missing:", missing, "unexpected:", unexpected)
    model.to(device).train()
    # Auxiliary CTC head over characters on the encoder output: it makes the encoder learn what
    # was said early, so cross-attention has something to align to (hybrid CTC/attention
    # training). Not part of the model: export ignores it.
    ctc_head = torch.nn.Linear(args.d_model, len(gen.CTC_ALPHABET) + 1).to(device)
    if state is not None and "ctc" in state:
        ctc_head.load_state_dict(state["ctc"])
    nparams = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if (p.ndim < 2 or "embed" in n) and p.requires_grad]
    decay.append(ctc_head.weight)
    no_decay.append(ctc_head.bias)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    if state is not None:
        try:
            opt.load_state_dict(state["opt"])
        except (ValueError, KeyError) as e:  # a checkpoint from before the CTC head
            print("optimizer state not restored:", e, flush=True)
    del state
    mel_fn = LogMel(device)
    fwd = torch.compile(model) if args.compile else model

    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=4000)
    text = os.path.join(HERE, "data/train.txt.gz")
    procs = [ctx.Process(target=gen.worker, args=(args.seed * 1000 + step + i * 7919, text, q, None, args.random_voices,
                                                         args.pause_share, args.pause_stops, args.min_gap,
                                                         args.longform),
                         daemon=True)
             for i in range(args.workers)]
    for p in procs:
        p.start()
    pool = Pool(q, args.pool, args.seed + step)
    t0 = time.time()
    while len(pool.items) < args.min_pool:
        time.sleep(0.5)
    print(f"params {nparams/1e6:.1f}M, {args.workers} workers, pool {len(pool.items)} after {time.time()-t0:.1f}s; "
          f"resuming at step {step}, {elapsed/60:.2f} min", flush=True)

    rng = np.random.default_rng(args.seed + step)
    step0 = step
    start = time.time()
    last_ck = last_ex = last_log = start
    run_elapsed0 = elapsed
    loss_ema = ctc_ema = None
    while True:
        now = time.time()
        run_time = now - start
        elapsed = run_elapsed0 + run_time
        if run_time >= args.minutes * 60:
            break
        lr = lr_at(step, elapsed, args)
        for g in opt.param_groups:
            g["lr"] = lr
        audio, dec_in, labels, (ctc_t, ctc_il, ctc_tl) = to_device(pool.batch(args.batch), device, rng)
        feats = spec_augment(mel_fn(audio), args.specaug)  # float32, outside autocast, as the Go frontend computes it
        with torch.autocast("cuda", dtype=torch.bfloat16):
            enc = model.model.encoder(input_features=feats).last_hidden_state
            logits = fwd(encoder_outputs=BaseModelOutput(last_hidden_state=enc), decoder_input_ids=dec_in).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        ce = loss
        if args.ctc_weight > 0:
            lp = F.log_softmax(ctc_head(enc.float()), dim=-1).transpose(0, 1)  # [T, B, C]
            ctc = F.ctc_loss(lp, ctc_t, ctc_il, ctc_tl, blank=0, reduction="mean", zero_infinity=True)
            loss = ce + args.ctc_weight * ctc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(ctc_head.parameters()), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            l = ce.item()
            loss_ema = l if loss_ema is None else 0.9 * loss_ema + 0.1 * l
            if args.ctc_weight > 0:
                c = ctc.item()
                ctc_ema = c if ctc_ema is None else 0.9 * ctc_ema + 0.1 * c
        if now - last_log >= 20:
            last_log = now
            print(f"step {step} t {elapsed/60:.2f}m lr {lr:.2e} loss {loss_ema if loss_ema is not None else float('nan'):.4f} "
                  f"ctc {ctc_ema if ctc_ema is not None else float('nan'):.4f} "
                  f"pool {len(pool.items)} clips made {pool.received} ({pool.received/max(1e-9, now-t0):.0f}/s) "
                  f"steps/s {(step - step0) / max(1e-9, run_time):.2f}", flush=True)
        if now - last_ck >= args.ckpt_every:
            last_ck = now
            save_ckpt(ckpt_path, model, ctc_head, opt, step, elapsed, args)
        if now - last_ex >= args.export_every:
            last_ex = now
            exporter.write_export(model, cfg, export_dir, meta={"step": step, "minutes": round(elapsed / 60, 2)})
    save_ckpt(ckpt_path, model, ctc_head, opt, step, elapsed, args)
    exporter.write_export(model, cfg, export_dir, meta={"step": step, "minutes": round(elapsed / 60, 2),
                                                         "loss": loss_ema})
    for p in procs:
        p.terminate()
    print(f"trained: step {step}, {elapsed/60:.2f} min, loss {loss_ema:.4f}; checkpoint {ckpt_path}, export {export_dir}",
          flush=True)

    if args.eval:
        model.eval()
        tok = gen.Tokenizer()
        res = {"step": step, "minutes": round(elapsed / 60, 2), "loss": loss_ema}
        for name, variants in (("heldout_voices", gen.HELDOUT_VARIANTS), ("train_voices", gen.TRAIN_VARIANTS)):
            clips = eval_set(args.eval, variants, seed=99)
            hyps = greedy(model, mel_fn, clips, device, tok)
            refs = [r for _, r in clips]
            res["wer_" + name] = round(wer(refs, hyps), 4)
            for r, h in list(zip(refs, hyps))[:6]:
                print(f"  [{name}] REF {r}\n  [{name}] HYP {h}")
        res["n_eval"] = args.eval
        print("EVAL " + json.dumps(res), flush=True)
        json.dump(res, open(os.path.join(args.ckpt_dir, "eval.json"), "w"))


if __name__ == "__main__":
    main()
