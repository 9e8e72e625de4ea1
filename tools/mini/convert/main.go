// Command convert turns the mini model's training export into a ggml model file for the engine:
//
//	go run ./tools/mini/convert [-dtype q5_0] EXPORT_DIR [EXPORT_DIR...] OUT.bin
//	go run ./tools/mini/convert -format hf MODEL [MODEL...] OUT_DIR
//
// Given several inputs of one architecture (export folders or model files, typically checkpoints
// of one training run), it writes the element-wise mean of their weights (checkpoint averaging).
//
// The second form writes any model the engine reads (the shipped ggml-mini.bin included) as a
// float32 Hugging Face folder (model.safetensors + config.json): a weights-only starting point
// for more training (tools/mini/run.sh resume), small enough to carry to the GPU machine as the
// q5_0 file it came from.
//
// EXPORT_DIR is what tools/mini/train.py (or export.py) writes: config.json (Hugging Face's
// WhisperConfig) and mini-NN.safetensors files holding each weight matrix as q8_0 blocks
// (NAME.q8 int8 + NAME.d8 float16 scales, large arrays split by rows into NAME.q8@K parts) and
// the rest in float32. A Hugging Face folder (model.safetensors + config.json, any float dtype)
// works too. Tensors are stored as whisper.cpp does: float32 for 1-D tensors, conv biases and
// positional embeddings, float16 for conv kernels, DTYPE (q5_0, q8_0, q4_0, f16, f32) for the
// other matrices; the mel filters and the vocabulary come from the mel and tokenizer packages.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

func main() {
	dtype := flag.String("dtype", "q5_0", "matrix type: q5_0, q8_0, q4_0, f16 or f32")
	format := flag.String("format", "ggml", "output: ggml (a model file) or hf (a float32 Hugging Face folder)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: convert [-dtype q5_0] EXPORT_DIR [EXPORT_DIR...] OUT.bin\n       convert -format hf MODEL [MODEL...] OUT_DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 {
		flag.Usage()
		os.Exit(2)
	}
	run := run
	switch *format {
	case "ggml":
	case "hf":
		run = func(ins []string, out, _ string) error { return toHF(ins, out) }
	default:
		fmt.Fprintf(os.Stderr, "convert: -format %q: want ggml or hf\n", *format)
		os.Exit(2)
	}
	args := flag.Args()
	if err := run(args[:len(args)-1], args[len(args)-1], *dtype); err != nil {
		fmt.Fprintln(os.Stderr, "convert:", err)
		os.Exit(1)
	}
}

func run(ins []string, out, dtype string) error {
	dt, err := tensor.ParseDType(dtype)
	if err != nil {
		return err
	}
	cfg, values, err := loadMean(ins)
	if err != nil {
		return err
	}
	tensors, err := layout(ins[0], cfg, values, func(s weights.Spec) tensor.DType { return stored(s, dt) })
	if err != nil {
		return err
	}
	tok, err := tokenizer.New(cfg.NVocab)
	if err != nil {
		return err
	}
	if err := weights.WriteGGML(out, cfg, tensors, mel.Filters(cfg.NMels), tok.Vocab()); err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	f, err := weights.Open(out) // validate what was written
	if err != nil {
		return err
	}
	f.Close()
	fmt.Printf("wrote %s: %s, %d bytes (%.2f MB), d_model %d, %d+%d layers, %d parameters\n", out, dt, fi.Size(),
		float64(fi.Size())/1e6, cfg.NAudioState, cfg.NAudioLayer, cfg.NTextLayer, cfg.ParamCount())
	return nil
}

// toHF writes the model at ins (export folders or model files; several are averaged) as float32
// safetensors.
func toHF(ins []string, out string) error {
	cfg, values, err := loadMean(ins)
	if err != nil {
		return err
	}
	tensors, err := layout(ins[0], cfg, values, func(weights.Spec) tensor.DType { return tensor.F32 })
	if err != nil {
		return err
	}
	if err := weights.WriteSafetensors(out, cfg, tensors); err != nil {
		return err
	}
	fmt.Printf("wrote %s: float32 Hugging Face folder, d_model %d, %d+%d layers\n", out, cfg.NAudioState, cfg.NAudioLayer, cfg.NTextLayer)
	return nil
}

// layout returns the model's tensors in cfg's order, each stored in the dtype as picks.
func layout(in string, cfg weights.Config, values map[string][]float32, as func(weights.Spec) tensor.DType) ([]*weights.Tensor, error) {
	var tensors []*weights.Tensor
	for _, s := range cfg.Layout() {
		v, ok := values[s.Name]
		if !ok {
			return nil, fmt.Errorf("%s: no tensor %s (%s)", in, s.Name, weights.HFName(s.Name))
		}
		if len(v) != tensor.Numel(s.Shape) {
			return nil, fmt.Errorf("%s: tensor %s has %d values, want shape %v", in, s.Name, len(v), s.Shape)
		}
		st := as(s)
		tensors = append(tensors, &weights.Tensor{Name: s.Name, Shape: s.Shape, DType: st, Data: tensor.Quantize(st, v)})
	}
	return tensors, nil
}

// stored is the dtype a tensor is written in (whisper.cpp's convention).
func stored(s weights.Spec, dt tensor.DType) tensor.DType {
	switch {
	case len(s.Shape) == 1 || strings.HasSuffix(s.Name, "positional_embedding") || strings.Contains(s.Name, "conv") && strings.HasSuffix(s.Name, ".bias"):
		return tensor.F32
	case len(s.Shape) == 3:
		return tensor.F16
	case dt.Quantized() && (len(s.Shape) != 2 || s.Shape[1]%dt.BlockSize() != 0):
		return tensor.F16
	}
	return dt
}

// loadMean loads every input and returns the mean of their weights; all must share one config.
func loadMean(ins []string) (weights.Config, map[string][]float32, error) {
	cfg, sum, err := load(ins[0])
	if err != nil || len(ins) == 1 {
		return cfg, sum, err
	}
	for _, in := range ins[1:] {
		c, v, err := load(in)
		if err != nil {
			return cfg, nil, err
		}
		if c != cfg {
			return cfg, nil, fmt.Errorf("%s: architecture %+v differs from %s's %+v", in, c, ins[0], cfg)
		}
		for name, s := range sum {
			x, ok := v[name]
			if !ok || len(x) != len(s) {
				return cfg, nil, fmt.Errorf("%s: tensor %s is missing or has another shape than in %s", in, name, ins[0])
			}
			for i := range s {
				s[i] += x[i]
			}
		}
	}
	inv := float32(1) / float32(len(ins))
	for _, s := range sum {
		for i := range s {
			s[i] *= inv
		}
	}
	return cfg, sum, nil
}

// load reads an export folder (or a Hugging Face safetensors folder) into float32 values by
// canonical tensor name.
func load(in string) (weights.Config, map[string][]float32, error) {
	matches, _ := filepath.Glob(filepath.Join(in, "mini-*.safetensors"))
	if len(matches) == 0 {
		f, err := weights.Open(in)
		if err != nil {
			return weights.Config{}, nil, err
		}
		defer f.Close()
		vals := map[string][]float32{}
		for name, t := range f.Tensors {
			v, err := t.Float32()
			if err != nil {
				return weights.Config{}, nil, err
			}
			vals[name] = v
		}
		return f.Config, vals, nil
	}
	cfg, err := readConfig(filepath.Join(in, "config.json"))
	if err != nil {
		return cfg, nil, err
	}
	canon := map[string]string{}
	for _, s := range cfg.Layout() {
		hf := weights.HFName(s.Name)
		canon[hf] = s.Name
		canon[strings.TrimPrefix(hf, "model.")] = s.Name
	}
	raw := map[string][]rawTensor{} // stored name (without @K) -> parts
	for _, m := range matches {
		ts, err := readSafetensors(m)
		if err != nil {
			return cfg, nil, err
		}
		for name, t := range ts {
			base, part := name, 0
			if i := strings.LastIndexByte(name, '@'); i >= 0 {
				base = name[:i]
				if part, err = strconv.Atoi(name[i+1:]); err != nil {
					return cfg, nil, fmt.Errorf("%s: tensor %q: bad part number", m, name)
				}
			}
			t.part = part
			raw[base] = append(raw[base], t)
		}
	}
	joined := map[string][]float32{}
	for base, parts := range raw {
		sort.Slice(parts, func(i, j int) bool { return parts[i].part < parts[j].part })
		var v []float32
		for _, p := range parts {
			v = append(v, p.values...)
		}
		joined[base] = v
	}
	vals := map[string][]float32{}
	for name, v := range joined {
		switch {
		case strings.HasSuffix(name, ".d8"):
			continue
		case strings.HasSuffix(name, ".q8"):
			base := strings.TrimSuffix(name, ".q8")
			d, ok := joined[base+".d8"]
			if !ok || len(d)*32 != len(v) {
				return cfg, nil, fmt.Errorf("%s: %s has no matching scales", in, name)
			}
			for i := range v {
				v[i] *= d[i/32]
			}
			name = base
		}
		if c, ok := canon[name]; ok {
			vals[c] = v
		} else if name != "proj_out.weight" {
			return cfg, nil, fmt.Errorf("%s: unknown tensor %q", in, name)
		}
	}
	return cfg, vals, nil
}

func readConfig(path string) (weights.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return weights.Config{}, err
	}
	var h struct {
		VocabSize             int `json:"vocab_size"`
		NumMelBins            int `json:"num_mel_bins"`
		DModel                int `json:"d_model"`
		EncoderLayers         int `json:"encoder_layers"`
		EncoderAttentionHeads int `json:"encoder_attention_heads"`
		DecoderLayers         int `json:"decoder_layers"`
		DecoderAttentionHeads int `json:"decoder_attention_heads"`
		MaxSourcePositions    int `json:"max_source_positions"`
		MaxTargetPositions    int `json:"max_target_positions"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return weights.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	cfg := weights.Config{
		NVocab: h.VocabSize, NAudioCtx: h.MaxSourcePositions, NAudioState: h.DModel,
		NAudioHead: h.EncoderAttentionHeads, NAudioLayer: h.EncoderLayers,
		NTextCtx: h.MaxTargetPositions, NTextState: h.DModel, NTextHead: h.DecoderAttentionHeads,
		NTextLayer: h.DecoderLayers, NMels: h.NumMelBins,
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

type rawTensor struct {
	values []float32
	part   int
}

// readSafetensors reads every tensor of one safetensors file as float32 (I8, F16, BF16, F32).
func readSafetensors(path string) (map[string]rawTensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%s: bad header length", path)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data := b[8+n:]
	out := map[string]rawTensor{}
	for name, msg := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] > int64(len(data)) || e.Offsets[0] > e.Offsets[1] {
			return nil, fmt.Errorf("%s: tensor %q: bad offsets", path, name)
		}
		raw := data[e.Offsets[0]:e.Offsets[1]]
		count := 1
		for _, d := range e.Shape {
			count *= d
		}
		v := make([]float32, count)
		var size int
		switch e.DType {
		case "I8":
			size = 1
		case "F16", "BF16":
			size = 2
		case "F32":
			size = 4
		default:
			return nil, fmt.Errorf("%s: tensor %q: dtype %s not supported", path, name, e.DType)
		}
		if len(raw) != count*size {
			return nil, fmt.Errorf("%s: tensor %q: %d bytes for %d values of %s", path, name, len(raw), count, e.DType)
		}
		for i := range v {
			switch e.DType {
			case "I8":
				v[i] = float32(int8(raw[i]))
			case "F16":
				v[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
			case "BF16":
				v[i] = tensor.BF16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
			case "F32":
				v[i] = float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		}
		out[name] = rawTensor{values: v}
	}
	return out, nil
}

func float32frombits(u uint32) float32 { return math.Float32frombits(u) }
