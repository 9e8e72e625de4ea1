package weights

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
)

// Safetensors layout: u64 header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {...}}, then the data; offsets are relative to the end of the header.

const (
	maxSafetensorsHeader = 64 << 20
	maxConfigJSON        = 1 << 20
	// hfProjOut is Hugging Face's output projection, tied to the token embedding in Whisper.
	hfProjOut = "proj_out.weight"
)

var stDTypes = map[string]tensor.DType{"F32": tensor.F32, "F16": tensor.F16, "BF16": tensor.BF16}

// stDTypeName is the safetensors name of dt. checkWrite rejects every dtype without one before
// anything is written, so a miss here is a bug (a plain panic, which tensor.Catch lets through).
func stDTypeName(dt tensor.DType) string {
	for k, v := range stDTypes {
		if v == dt {
			return k
		}
	}
	panic(fmt.Sprintf("weights: no safetensors dtype for %s", dt))
}

// HFName returns the Hugging Face transformers name of a canonical (OpenAI) tensor name, e.g.
// "decoder.blocks.3.mlp.0.weight" -> "model.decoder.layers.3.fc1.weight".
func HFName(name string) string {
	switch name {
	case "encoder.positional_embedding":
		return "model.encoder.embed_positions.weight"
	case "decoder.positional_embedding":
		return "model.decoder.embed_positions.weight"
	case "decoder.token_embedding.weight":
		return "model.decoder.embed_tokens.weight"
	}
	for _, r := range [][2]string{{"encoder.ln_post.", "encoder.layer_norm."}, {"decoder.ln.", "decoder.layer_norm."}} {
		if rest, ok := strings.CutPrefix(name, r[0]); ok {
			return "model." + r[1] + rest
		}
	}
	stack, rest, _ := strings.Cut(name, ".")
	if after, ok := strings.CutPrefix(rest, "blocks."); ok {
		layer, part, _ := strings.Cut(after, ".")
		for _, r := range [][2]string{
			{"attn_ln.", "self_attn_layer_norm."}, {"cross_attn_ln.", "encoder_attn_layer_norm."},
			{"mlp_ln.", "final_layer_norm."}, {"mlp.0.", "fc1."}, {"mlp.2.", "fc2."},
			{"attn.", "self_attn."}, {"cross_attn.", "encoder_attn."},
		} {
			if p, ok := strings.CutPrefix(part, r[0]); ok {
				for _, q := range [][2]string{{"query.", "q_proj."}, {"key.", "k_proj."}, {"value.", "v_proj."}, {"out.", "out_proj."}} {
					if s, ok := strings.CutPrefix(p, q[0]); ok {
						p = q[1] + s
						break
					}
				}
				return "model." + stack + ".layers." + layer + "." + r[1] + p
			}
		}
	}
	return "model." + name
}

// hfNames maps every accepted stored name to its canonical name: Hugging Face names with and
// without the "model." prefix, and the canonical names themselves.
func hfNames(layout []Spec) map[string]string {
	m := make(map[string]string, 3*len(layout))
	for _, s := range layout {
		hf := HFName(s.Name)
		m[hf] = s.Name
		m[strings.TrimPrefix(hf, "model.")] = s.Name
		m[s.Name] = s.Name
	}
	return m
}

// hfConfig is the part of Hugging Face's WhisperConfig that fixes the architecture.
type hfConfig struct {
	VocabSize             int `json:"vocab_size"`
	NumMelBins            int `json:"num_mel_bins"`
	DModel                int `json:"d_model"`
	EncoderLayers         int `json:"encoder_layers"`
	EncoderAttentionHeads int `json:"encoder_attention_heads"`
	EncoderFFNDim         int `json:"encoder_ffn_dim"`
	DecoderLayers         int `json:"decoder_layers"`
	DecoderAttentionHeads int `json:"decoder_attention_heads"`
	DecoderFFNDim         int `json:"decoder_ffn_dim"`
	MaxSourcePositions    int `json:"max_source_positions"`
	MaxTargetPositions    int `json:"max_target_positions"`
}

// readConfigFile reads the config.json at name, at most maxConfigJSON bytes of it.
func readConfigFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigJSON+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// parseHFConfig reads the architecture from the bytes of a Hugging Face config.json.
func parseHFConfig(b []byte) (Config, error) {
	if len(b) > maxConfigJSON {
		return Config{}, fmt.Errorf("larger than %d bytes", maxConfigJSON)
	}
	var h hfConfig
	if err := json.Unmarshal(b, &h); err != nil {
		return Config{}, err
	}
	cfg := Config{
		NVocab: h.VocabSize, NAudioCtx: h.MaxSourcePositions, NAudioState: h.DModel,
		NAudioHead: h.EncoderAttentionHeads, NAudioLayer: h.EncoderLayers,
		NTextCtx: h.MaxTargetPositions, NTextState: h.DModel, NTextHead: h.DecoderAttentionHeads,
		NTextLayer: h.DecoderLayers, NMels: h.NumMelBins,
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	for _, ffn := range []int{h.EncoderFFNDim, h.DecoderFFNDim} {
		if ffn != 0 && ffn != 4*h.DModel {
			return Config{}, fmt.Errorf("ffn dim %d, want 4 x d_model = %d", ffn, 4*h.DModel)
		}
	}
	return cfg, nil
}

type stEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// parseSafetensors parses a model.safetensors; config returns the bytes of its config.json.
func parseSafetensors(src *source, config func() ([]byte, error), headerOnly bool) (*File, error) {
	path, size := src.path, src.size
	c := &cursor{src: src}
	n, err := c.next(8)
	if err != nil {
		return nil, err
	}
	hlen := binary.LittleEndian.Uint64(n)
	if hlen > maxSafetensorsHeader {
		return nil, newError(path, ErrInvalid, "safetensors header of %d bytes (limit %d)", hlen, maxSafetensorsHeader)
	}
	if hlen > uint64(size-8) {
		return nil, newError(path, ErrTruncated, "truncated: safetensors header needs %d bytes at offset 8, file has %d", hlen, size)
	}
	base := 8 + int64(hlen)
	dataLen := size - base

	cb, err := config()
	if err != nil {
		return nil, newError(path, ErrInvalid, "config.json: %s", ioMsg(err))
	}
	cfg, err := parseHFConfig(cb)
	if err != nil {
		return nil, newError(path, ErrInvalid, "config.json: %v", err)
	}
	f := &File{Path: path, Format: Safetensors, Config: cfg, Arch: cfg.Name()}
	if headerOnly {
		return f, nil
	}
	header, err := c.next(int(hlen))
	if err != nil {
		return nil, err
	}
	v := newValidator(path, f)
	names := hfNames(v.layout)

	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, newError(path, ErrInvalid, "safetensors header is not a JSON object")
	}
	var projOut *Tensor
	type span struct {
		begin, end int64
		t          *Tensor
	}
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, newError(path, ErrInvalid, "safetensors header: %v", err)
		}
		key, _ := tok.(string)
		if key == "__metadata__" {
			var meta map[string]string
			if err := dec.Decode(&meta); err != nil {
				return nil, newError(path, ErrInvalid, "safetensors header: __metadata__: %v", err)
			}
			continue
		}
		var e stEntry
		if err := dec.Decode(&e); err != nil {
			return nil, tensorError(path, key, ErrInvalid, "safetensors header: %v", err)
		}
		canon, known := names[key]
		if !known && key != hfProjOut {
			return nil, tensorError(path, key, ErrInvalid, "unknown tensor (not part of a %s model)", f.Arch)
		}
		if !known {
			canon = key
		}
		dt, ok := stDTypes[e.DType]
		if !ok {
			return nil, tensorError(path, canon, ErrInvalid, "dtype %q is not supported (want F32, F16 or BF16)", e.DType)
		}
		shape, err := stShape(e.Shape)
		if err != nil {
			return nil, tensorError(path, canon, ErrInvalid, "%v", err)
		}
		t := &Tensor{Name: canon, DType: dt, Shape: shape}
		if known {
			if err := v.check(t); err != nil {
				return nil, err
			}
		} else if projOut != nil {
			return nil, tensorError(path, canon, ErrInvalid, "duplicate")
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] {
			return nil, tensorError(path, canon, ErrInvalid, "data_offsets %v", e.DataOffsets)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		n := int64(dt.RowBytes(1)) * int64(tensor.Numel(shape))
		if end > dataLen {
			return nil, newError(path, ErrTruncated, "truncated: tensor %q needs %d bytes at offset %d, file has %d",
				canon, n, base+begin, size).withTensor(canon)
		}
		if end-begin != n {
			return nil, tensorError(path, canon, ErrInvalid, "data_offsets %v hold %d bytes, want %d for %s%v", e.DataOffsets, end-begin, n, dt, shape)
		}
		spans = append(spans, span{begin, end, t})
		if known {
			v.add(t)
		} else {
			projOut = t
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, newError(path, ErrInvalid, "safetensors header: %v", err)
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.begin, b.begin) })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, tensorError(path, spans[i].t.Name, ErrInvalid, "data overlaps tensor %q", spans[i-1].t.Name)
		}
	}
	if len(f.Tensors) == 0 {
		return nil, newError(path, ErrNoTensors, "no tensors")
	}
	if err := v.finish(); err != nil {
		return nil, err
	}
	if projOut != nil {
		emb := f.Tensors["decoder.token_embedding.weight"]
		if !tensor.SameShape(projOut.Shape, emb.Shape) {
			return nil, tensorError(path, hfProjOut, ErrInvalid, "shape %v, want %v (tied to the token embedding)", projOut.Shape, emb.Shape)
		}
	}
	// The spans do not overlap, so the data read here (where it is not viewed in place) is at
	// most the file's size.
	for _, s := range spans {
		if s.t == projOut {
			continue // checked, not kept: the token embedding serves for it
		}
		if s.t.Data, err = src.bytes(base+s.begin, int(s.end-s.begin)); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// stShape converts and bounds a safetensors shape.
func stShape(s []int64) ([]int, error) {
	if len(s) > maxDims {
		return nil, fmt.Errorf("%d dimensions, want at most %d", len(s), maxDims)
	}
	shape := make([]int, len(s))
	n := int64(1)
	for i, d := range s {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("shape %v", s)
		}
		n *= d
		if n > 1<<40 {
			return nil, fmt.Errorf("shape %v is too large", s)
		}
		shape[i] = int(d)
	}
	return shape, nil
}

// WriteSafetensors writes a Hugging Face model: model.safetensors (F32, F16 or BF16 tensors,
// under transformers' names, sorted, data in that order) and config.json beside it. If path is
// a folder, or has no ".safetensors" suffix, it is a folder (created if needed) that receives
// both files. Each file is written atomically.
func WriteSafetensors(path string, cfg Config, tensors []*Tensor) error {
	file := path
	if st, err := os.Stat(path); (err == nil && st.IsDir()) || !strings.HasSuffix(path, ".safetensors") {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		file = filepath.Join(path, "model.safetensors")
	}
	if err := checkWrite(cfg, tensors, Safetensors); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	err := writeAtomic(file, func(w *writer) error { return encodeSafetensors(w, tensors) })
	if err != nil {
		return err
	}
	cj, err := hfConfigJSON(cfg)
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return writeAtomic(filepath.Join(filepath.Dir(file), "config.json"), func(w *writer) error {
		w.bytes(cj)
		return nil
	})
}

// encodeSafetensors writes a model.safetensors without validating its contents
// (WriteSafetensors does): transformers' names, sorted, the data in that order.
func encodeSafetensors(w *writer, tensors []*Tensor) error {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b *Tensor) int { return strings.Compare(HFName(a.Name), HFName(b.Name)) })

	var h bytes.Buffer
	h.WriteString(`{"__metadata__":{"format":"pt"}`)
	var off int64
	for _, t := range sorted {
		n := int64(nbytes(t.DType, t.Shape))
		shape, _ := json.Marshal(t.Shape)
		fmt.Fprintf(&h, `,%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, HFName(t.Name), stDTypeName(t.DType), shape, off, off+n)
		off += n
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(h.Len()))
	w.bytes(n[:])
	w.bytes(h.Bytes())
	for _, t := range sorted {
		data, err := t.bytes()
		if err != nil {
			return err
		}
		if want := nbytes(t.DType, t.Shape); len(data) != want {
			return fmt.Errorf("tensor %q: %d bytes of data, want %d", t.Name, len(data), want)
		}
		w.bytes(data)
	}
	return nil
}

// hfConfigJSON renders a transformers WhisperConfig for cfg, with the fields and defaults of
// the oracle-micro fixture (special token ids follow the vocabulary).
func hfConfigJSON(cfg Config) ([]byte, error) {
	if cfg.NAudioState != cfg.NTextState {
		return nil, errors.New("config: encoder and decoder widths differ")
	}
	eot := 50257 // multilingual <|endoftext|>
	if cfg.NVocab == vocabEnglish {
		eot = 50256
	}
	m := map[string]any{
		"activation_dropout":      0.0,
		"activation_function":     "gelu",
		"apply_spec_augment":      false,
		"architectures":           []string{"WhisperForConditionalGeneration"},
		"attention_dropout":       0.0,
		"begin_suppress_tokens":   []int{220, eot},
		"bos_token_id":            eot,
		"classifier_proj_size":    256,
		"d_model":                 cfg.NAudioState,
		"decoder_attention_heads": cfg.NTextHead,
		"decoder_ffn_dim":         4 * cfg.NTextState,
		"decoder_layerdrop":       0.0,
		"decoder_layers":          cfg.NTextLayer,
		"decoder_start_token_id":  eot + 1,
		"dropout":                 0.0,
		"encoder_attention_heads": cfg.NAudioHead,
		"encoder_ffn_dim":         4 * cfg.NAudioState,
		"encoder_layerdrop":       0.0,
		"encoder_layers":          cfg.NAudioLayer,
		"eos_token_id":            eot,
		"init_std":                0.02,
		"is_encoder_decoder":      true,
		"mask_feature_length":     10,
		"mask_feature_min_masks":  0,
		"mask_feature_prob":       0.0,
		"mask_time_length":        10,
		"mask_time_min_masks":     2,
		"mask_time_prob":          0.05,
		"max_source_positions":    cfg.NAudioCtx,
		"max_target_positions":    cfg.NTextCtx,
		"median_filter_width":     7,
		"model_type":              "whisper",
		"num_hidden_layers":       cfg.NAudioLayer,
		"num_mel_bins":            cfg.NMels,
		"pad_token_id":            eot,
		"scale_embedding":         false,
		"suppress_tokens":         nil,
		"tie_word_embeddings":     true,
		"use_cache":               true,
		"use_weighted_layer_sum":  false,
		"vocab_size":              cfg.NVocab,
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
