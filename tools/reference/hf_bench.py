"""Speed baseline: Hugging Face transformers (PyTorch, fp16, SDPA attention) on the GPU machine.

Measures, for each model folder written by `transcribe models synth --format safetensors
--dtype f16` (random weights: speed does not depend on their values), the same figures as
`transcribe bench`: encoder ms per 30 s window at each encoder batch, and decoder ms per step
(one new token for each of the batch's sequences, with a KV cache, logits of the last position
and the argmax read back to the host) at each decoder batch, after a 4-token prefix.

With --e2e it measures instead what `transcribe bench --e2e` does: --windows random windows,
encoded --encode-batch at a time, each batch then decoded together (a 4-token prompt, then
--tokens greedy steps with the KV cache, the argmax read back to the host each step), after one
untimed batch; it reports the real-time factor (30 s of audio per window over the wall time).
With --num-beams N (N > 1) each batch is decoded by transformers' own beam search instead
(GenerationMixin.generate with num_beams=N from the 4-token prompt, min_new_tokens =
max_new_tokens = --tokens, so every beam runs --tokens steps as random weights would make ours:
log-softmax, top-k and the cache reordered on the GPU), the baseline of `bench --e2e --decode
default` (which adds the timestamp rules, word timing, the guard and the coverage check).

Usage (on the GPU machine, from the repository root):
  python3 tools/reference/hf_bench.py --model large-v3=/tmp/v3 --model large-v3-turbo=/tmp/turbo \
      --encode-batch 1,16 --decode-batch 1,16
"""
import argparse, statistics, time

import torch
from transformers import GenerationConfig, GenerationMixin, WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="NAME=FOLDER")
    ap.add_argument("--encode-batch", default="1,16")
    ap.add_argument("--decode-batch", default="1,16")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--e2e", action="store_true")
    ap.add_argument("--windows", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--num-beams", type=int, default=1, help="with --e2e: beam search through generate()")
    a = ap.parse_args()
    if a.e2e:
        return e2e(a)
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    import transformers
    print(f"transformers {transformers.__version__}, fp16, attn_implementation=sdpa")
    print("model\tencode batch\tencoder ms/window\tdecode batch\tdecode ms/step\ttokens/s")
    for spec in a.model:
        name, path = spec.split("=", 1)
        model = WhisperForConditionalGeneration.from_pretrained(path, torch_dtype=torch.float16, attn_implementation="sdpa").to(dev).eval()
        cfg = model.config
        g = torch.Generator(device=dev).manual_seed(1)
        ebs = [int(x) for x in a.encode_batch.split(",")]
        dbs = [int(x) for x in a.decode_batch.split(",")]
        for i in range(max(len(ebs), len(dbs))):
            eb, db = ebs[min(i, len(ebs) - 1)], dbs[min(i, len(dbs) - 1)]
            feats = torch.rand(eb, cfg.num_mel_bins, 3000, generator=g, device=dev, dtype=torch.float16) * 2 - 1
            with torch.inference_mode():
                enc_ms = timed(lambda: model.model.encoder(feats), 2, a.iterations) / eb
                enc = model.model.encoder(feats).last_hidden_state
                enc = enc[torch.arange(db, device=dev) % eb]
                encout = BaseModelOutput(last_hidden_state=enc)

                def decode():
                    ids = torch.randint(0, cfg.vocab_size, (db, 4), generator=g, device=dev)
                    out = model(encoder_outputs=encout, decoder_input_ids=ids, use_cache=True)
                    cache, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
                    nxt.cpu()
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    for _ in range(a.steps):
                        out = model(encoder_outputs=encout, decoder_input_ids=nxt[:, None], past_key_values=cache, use_cache=True)
                        cache, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
                        nxt.cpu()
                    return (time.perf_counter() - t) * 1000 / a.steps

                decode()
                dec_ms = statistics.median([decode() for _ in range(a.iterations)])
            print(f"{name}\t{eb}\t{enc_ms:.1f}\t{db}\t{dec_ms:.2f}\t{db * 1000 / dec_ms:.0f}", flush=True)
        del model
        torch.cuda.empty_cache()


def e2e(a):
    dev = torch.device("cuda")
    import transformers
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; transformers {transformers.__version__}, fp16, sdpa")
    print(f"decoding: {'beam search ' + str(a.num_beams) + ' (generate)' if a.num_beams > 1 else 'greedy (argmax loop)'}")
    print("model\tbatch\twindows\ttokens/window\twall s\treal-time factor\ttokens/s")
    for spec in a.model:
        name, path = spec.split("=", 1)
        model = WhisperForConditionalGeneration.from_pretrained(path, torch_dtype=torch.float16, attn_implementation="sdpa").to(dev).eval()
        cfg = model.config
        g = torch.Generator(device=dev).manual_seed(1)
        for bs in [int(x) for x in a.encode_batch.split(",")]:
            feats = torch.rand(bs, cfg.num_mel_bins, 3000, generator=g, device=dev, dtype=torch.float16) * 2 - 1

            def beams(n):
                with torch.inference_mode():
                    enc = BaseModelOutput(last_hidden_state=model.model.encoder(feats[:n]).last_hidden_state)
                    ids = torch.randint(0, cfg.vocab_size, (n, 4), generator=g, device=dev)
                    gc = GenerationConfig(num_beams=a.num_beams, do_sample=False, max_new_tokens=a.tokens,
                                          min_new_tokens=a.tokens, decoder_start_token_id=cfg.decoder_start_token_id,
                                          eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id, use_cache=True)
                    out = GenerationMixin.generate(model, encoder_outputs=enc, decoder_input_ids=ids, generation_config=gc)
                    out.cpu()

            def group(n):
                if a.num_beams > 1:
                    return beams(n)
                with torch.inference_mode():
                    enc = BaseModelOutput(last_hidden_state=model.model.encoder(feats[:n]).last_hidden_state)
                    ids = torch.randint(0, cfg.vocab_size, (n, 4), generator=g, device=dev)
                    out = model(encoder_outputs=enc, decoder_input_ids=ids, use_cache=True)
                    cache, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
                    nxt.cpu()
                    for _ in range(a.tokens - 1):
                        out = model(encoder_outputs=enc, decoder_input_ids=nxt[:, None], past_key_values=cache, use_cache=True)
                        cache, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
                        nxt.cpu()

            group(min(bs, a.windows))
            torch.cuda.synchronize()
            t = time.perf_counter()
            done = 0
            while done < a.windows:
                group(min(bs, a.windows - done))
                done += bs
            torch.cuda.synchronize()
            wall = time.perf_counter() - t
            print(f"{name}\t{bs}\t{a.windows}\t{a.tokens}\t{wall:.2f}\t{a.windows * 30 / wall:.0f}x\t{a.windows * a.tokens / wall:.0f}", flush=True)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
