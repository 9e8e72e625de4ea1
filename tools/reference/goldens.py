"""Reference goldens for the Verbatim engine, made with Hugging Face transformers (PyTorch, f32).

Runs on the GPU machine (transformers, torch, tiktoken installed there; no network needed).
For each model folder written by `transcribe models synth --format safetensors` and each input
(a 16 kHz mono 16-bit WAV), it writes to OUT/<model>/<input>.*:
  mel.f32        log-mel features, WhisperFeatureExtractor, [n_mels, 3000]
  encoder.f32    encoder output [1500, d_model]
  logits.f32     decoder logits for the forced tokens, [len(forced), n_vocab] (all positions)
  golden.json    shapes, forced tokens, the greedy sequence with timestamps from model.generate
                 (transformers' own Whisper logits processors) and the suppress lists it used.
The suppress list is computed here independently with tiktoken, following openai/whisper's rules.

Usage (from the repository root on the GPU machine):
  python3 tools/reference/goldens.py --model tiny=/tmp/tiny --audio jfk=testdata/jfk.wav \
      --audio synth=OUT/synth.wav --tiktoken whisper/tokenizer/assets/multilingual.tiktoken --out OUT
"""
import argparse, base64, json, os, struct, sys, wave

import numpy as np
import torch


def load_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getframerate() == 16000 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def write_wav(path, samples):
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(pcm.tobytes())


def synth_audio(seed=7, seconds=12.0):
    """Deterministic non-speech test signal: chirps, tone bursts, noise and silence."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000.0
    x = 0.3 * np.sin(2 * np.pi * (200 * t + 150 * t * t))          # rising chirp
    x *= (np.sin(2 * np.pi * 0.5 * t) > -0.3)                       # gated bursts
    x += 0.05 * rng.standard_normal(n)                              # noise floor
    x[int(4 * 16000):int(5 * 16000)] = 0.0                          # a second of silence
    return (x / max(1e-9, np.abs(x).max()) * 0.8).astype(np.float32)


def encoding(tiktoken_path, n_vocab):
    import tiktoken
    ranks = {}
    for line in open(tiktoken_path, "rb").read().splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    langs = ["en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
             "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
             "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
             "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
             "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
             "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
             "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"]
    n_lang = n_vocab - 51765 - 1  # 51865 -> 99, 51866 -> 100
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{l}|>" for l in langs[:n_lang]] + [
        "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
        "<|notimestamps|>"] + [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    n = len(ranks)
    special = {s: n + i for i, s in enumerate(specials)}
    enc = tiktoken.Encoding(name="whisper", explicit_n_vocab=n + len(specials), pat_str=pat,
                            mergeable_ranks=ranks, special_tokens=special)
    return enc, special, langs[:n_lang]


def non_speech_tokens(enc):
    """openai/whisper's suppress set for symbols (same rules, written independently)."""
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    misc = set("♩♪♫♬♭♮♯")
    result = {enc.encode(" -")[0], enc.encode(" '")[0]}
    for s in symbols + sorted(misc):
        for toks in (enc.encode(s), enc.encode(" " + s)):
            if len(toks) == 1 or s in misc:
                result.add(toks[0])
    return sorted(result)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR (safetensors + config.json)")
    ap.add_argument("--audio", action="append", default=[], help="NAME=WAV; 'synth' is generated if missing")
    ap.add_argument("--tiktoken", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--forced-text", default=" And so my fellow Americans, ask not what your country")
    ap.add_argument("--logit-positions", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    audios = {}
    for spec in args.audio:
        name, path = spec.split("=", 1)
        if name == "synth" and not os.path.exists(path):
            write_wav(path, synth_audio())
        audios[name] = load_wav(path)

    for spec in args.model:
        mname, mdir = spec.split("=", 1)
        cfg = json.load(open(os.path.join(mdir, "config.json")))
        model = WhisperForConditionalGeneration.from_pretrained(mdir, torch_dtype=torch.float32,
                                                                attn_implementation="eager")
        model = model.to(args.device).eval()
        n_vocab, n_mels = cfg["vocab_size"], cfg["num_mel_bins"]
        enc, special, langs = encoding(args.tiktoken, n_vocab)
        sot, notimestamps = special["<|startoftranscript|>"], special["<|notimestamps|>"]
        en, transcribe = special["<|en|>"], special["<|transcribe|>"]
        suppress = sorted(set(non_speech_tokens(enc)) | {special["<|translate|>"], special["<|transcribe|>"],
                          sot, special["<|startofprev|>"], special["<|startoflm|>"], special["<|nospeech|>"]})
        gc = GenerationConfig(
            decoder_start_token_id=sot, eos_token_id=special["<|endoftext|>"],
            pad_token_id=special["<|endoftext|>"], bos_token_id=special["<|endoftext|>"],
            no_timestamps_token_id=notimestamps, is_multilingual=True,
            lang_to_id={f"<|{l}|>": special[f"<|{l}|>"] for l in langs},
            task_to_id={"transcribe": transcribe, "translate": special["<|translate|>"]},
            begin_suppress_tokens=[enc.encode(" ")[0], special["<|endoftext|>"]],
            suppress_tokens=suppress, max_initial_timestamp_index=50, max_length=cfg["max_target_positions"],
            alignment_heads=[[0, 0]])
        fe = WhisperFeatureExtractor(feature_size=n_mels)
        forced = [sot, en, transcribe, notimestamps] + enc.encode(args.forced_text)
        forced = forced[:args.logit_positions]
        odir = os.path.join(args.out, mname)
        os.makedirs(odir, exist_ok=True)
        for aname, samples in audios.items():
            feats = fe(samples, sampling_rate=16000, return_tensors="pt").input_features  # [1, n_mels, 3000]
            x = feats.to(args.device)
            with torch.no_grad():
                eo = model.model.encoder(x).last_hidden_state                       # [1, 1500, d]
                lg = model(input_features=x, decoder_input_ids=torch.tensor([forced], device=args.device)).logits
                gen = model.generate(x, generation_config=gc, language="en", task="transcribe",
                                     return_timestamps=True, max_new_tokens=cfg["max_target_positions"] // 2 - 4)
            seq = gen.sequences[0] if hasattr(gen, "sequences") else gen[0]
            seq = [int(t) for t in seq.tolist()]
            base = os.path.join(odir, aname)
            feats[0].numpy().astype("<f4").tofile(base + ".mel.f32")
            eo[0].float().cpu().numpy().astype("<f4").tofile(base + ".encoder.f32")
            lg[0].float().cpu().numpy().astype("<f4").tofile(base + ".logits.f32")
            json.dump({
                "producer": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, "
                            f"{args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}), f32, eager attention, tf32 off",
                "model": mname, "input": aname, "n_samples": int(len(samples)),
                "mel_shape": list(feats[0].shape), "encoder_shape": list(eo[0].shape),
                "forced_tokens": forced, "logits_shape": list(lg[0].shape),
                "greedy_timestamps": {"language": "en", "task": "transcribe", "tokens": seq,
                                      "text": enc.decode([t for t in seq if t < special["<|endoftext|>"]])},
                "suppress_tokens": suppress, "begin_suppress_tokens": gc.begin_suppress_tokens,
                "encoder_max_abs": float(eo.abs().max()), "logits_max_abs": float(lg.abs().max()),
            }, open(base + ".golden.json", "w"), indent=1)
            print(mname, aname, "tokens", len(seq), seq[:12], "enc max", float(eo.abs().max()))


if __name__ == "__main__":
    main()
