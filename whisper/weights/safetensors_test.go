package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/tensor"
)

func TestOpenOracleSafetensors(t *testing.T) {
	dir := fixture(t, "oracle-micro")
	for _, path := range []string{dir, filepath.Join(dir, "model.safetensors")} {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Arch != "micro" || f.Format != Safetensors || f.Config != mustArch(t, "micro") {
			t.Errorf("%s: arch %q format %v config %+v", path, f.Arch, f.Format, f.Config)
		}
		if len(f.Tensors) != 89 || len(f.Names) != 89 || f.MelFilters != nil || f.Vocab != nil {
			t.Errorf("%d tensors, %d names", len(f.Tensors), len(f.Names))
		}
		// Header order is transformers' (sorted by name); the first is the decoder positions.
		if f.Names[0] != "decoder.positional_embedding" {
			t.Errorf("first tensor %s", f.Names[0])
		}
		conv := f.Tensors["encoder.conv1.weight"]
		if conv.DType != tensor.F32 || !cmp.Equal(conv.Shape, []int{64, 128, 3}) {
			t.Errorf("conv1 %s%v", conv.DType, conv.Shape)
		}
		pos, _ := f.Tensors["encoder.positional_embedding"].Float32()
		// Row 1 of whisper's sinusoids: sin(1) in column 0, cos(1) in column 32.
		if d := abs(pos[64] - 0.84147096); d > 1e-6 || abs(pos[64+32]-0.5403023) > 1e-6 {
			t.Errorf("encoder positions row 1: %v %v", pos[64], pos[64+32])
		}
		f.Close()
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			ts := synth(t, SynthOptions{Config: smallCfg, Seed: 11, DType: dt})
			dir := filepath.Join(t.TempDir(), "model")
			if err := WriteSafetensors(dir, smallCfg, ts); err != nil {
				t.Fatal(err)
			}
			f, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Config != smallCfg {
				t.Errorf("config %+v", f.Config)
			}
			for _, w := range ts {
				g := f.Tensors[w.Name]
				if g == nil || g.DType != dt || !cmp.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
					t.Errorf("tensor %s differs", w.Name)
				}
			}
			// No temp files are left behind.
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if diff := cmp.Diff([]string{"config.json", "model.safetensors"}, names); diff != "" {
				t.Errorf("folder (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHFConfigLikeOracle: the config.json written for micro has the oracle's fields and values
// (bar the ones that name the writer).
func TestHFConfigLikeOracle(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixture(t, "oracle-micro"), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	delete(want, "transformers_version")
	cj, err := hfConfigJSON(mustArch(t, "micro"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cj, &got); err != nil {
		t.Fatal(err)
	}
	delete(got, "architectures")
	delete(got, "num_hidden_layers")
	// The oracle kept transformers' English-only default here; a multilingual model suppresses
	// its own <|endoftext|>.
	delete(want, "begin_suppress_tokens")
	delete(got, "begin_suppress_tokens")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config.json (-oracle +ours):\n%s", diff)
	}
}

// stFile builds a safetensors file from a JSON header and a data size.
func stFile(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestSafetensorsErrors(t *testing.T) {
	ts := synth(t, SynthOptions{Config: smallCfg, Seed: 1})
	dir := t.TempDir()
	if err := WriteSafetensors(dir, smallCfg, ts); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	hlen := int(binary.LittleEndian.Uint64(good))
	header := string(good[8 : 8+hlen])
	dataLen := len(good) - 8 - hlen
	// rewrite replaces one substring of the header, keeping the data.
	rewrite := func(old, new string) []byte {
		if !strings.Contains(header, old) {
			t.Fatalf("header has no %q", old)
		}
		return stFile(strings.Replace(header, old, new, 1), dataLen)
	}
	// The last tensor in the sorted header.
	last := `"model.encoder.layers.0.self_attn_layer_norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[` + itoa(dataLen-128) + "," + itoa(dataLen) + "]}"

	cases := []struct {
		name     string
		data     []byte
		config   string // "" keeps the written config.json; "-" removes it
		sentinel error
		msg      string
	}{
		{name: "truncated header", data: good[:100], sentinel: ErrTruncated, msg: "truncated: safetensors header needs " + itoa(hlen)},
		{name: "huge header", data: func() []byte { b := stFile("{}", 0); b[5] = 1; return b }(), sentinel: ErrInvalid, msg: "safetensors header of 1099511627778 bytes (limit"},
		{name: "truncated data", data: good[:len(good)-1], sentinel: ErrTruncated,
			msg: `truncated: tensor "encoder.blocks.0.attn_ln.weight" needs 128 bytes at offset ` + itoa(len(good)-128) + ", file has " + itoa(len(good)-1)},
		{name: "no config", data: good, config: "-", sentinel: ErrInvalid, msg: "config.json: no such file"},
		{name: "config not json", data: good, config: "{", sentinel: ErrInvalid, msg: "config.json"},
		{name: "config ffn", data: good, config: strings.Replace(string(cfgJSON), `"encoder_ffn_dim": 128`, `"encoder_ffn_dim": 100`, 1), sentinel: ErrInvalid, msg: "ffn dim 100, want 4 x d_model = 128"},
		{name: "config says more layers", data: good, config: strings.Replace(string(cfgJSON), `"decoder_layers": 2`, `"decoder_layers": 3`, 1), sentinel: ErrInvalid, msg: `tensor "decoder.blocks.2.attn.query.weight": missing`},
		{name: "unknown tensor", data: rewrite(`"model.decoder.layer_norm.bias"`, `"model.decoder.layer_norm.beta"`), sentinel: ErrInvalid, msg: `tensor "model.decoder.layer_norm.beta": unknown tensor`},
		{name: "unsupported dtype", data: rewrite(`"dtype":"F32"`, `"dtype":"I64"`), sentinel: ErrInvalid, msg: `dtype "I64" is not supported`},
		{name: "wrong shape", data: rewrite(`"shape":[8,32]`, `"shape":[32,8]`), sentinel: ErrInvalid, msg: `tensor "decoder.positional_embedding": shape [32 8], want [8 32]`},
		{name: "negative dimension", data: rewrite(`"shape":[8,32]`, `"shape":[-8,32]`), sentinel: ErrInvalid, msg: `shape [-8 32]`},
		{name: "offsets of wrong size", data: rewrite(`"data_offsets":[0,1024]`, `"data_offsets":[0,1020]`), sentinel: ErrInvalid, msg: "hold 1020 bytes, want 1024"},
		{name: "overlapping data", data: rewrite(last, strings.Replace(last, "["+itoa(dataLen-128), "[0", 1)), sentinel: ErrInvalid, msg: "data_offsets"},
		{name: "not json", data: stFile("{nope", 0), sentinel: ErrInvalid, msg: "safetensors header"},
		{name: "header not an object", data: append(stFile("[1]", 0), 0), sentinel: ErrNotModel, msg: "not a ggml or safetensors file"},
		{name: "no tensors", data: stFile(`{"__metadata__":{"format":"pt"}}`, 0), sentinel: ErrNoTensors, msg: "no tensors"},
		{name: "proj_out tied", data: stFile(strings.TrimSuffix(strings.TrimRight(header, " "), "}")+`,"proj_out.weight":{"dtype":"F32","shape":[100,32],"data_offsets":[`+itoa(dataLen)+","+itoa(dataLen+12800)+"]}}", dataLen+12800), sentinel: nil},
		{name: "proj_out of other shape", data: stFile(strings.TrimSuffix(strings.TrimRight(header, " "), "}")+`,"proj_out.weight":{"dtype":"F32","shape":[100,16],"data_offsets":[`+itoa(dataLen)+","+itoa(dataLen+6400)+"]}}", dataLen+6400), sentinel: ErrInvalid, msg: `tensor "proj_out.weight": shape [100 16], want [100 32] (tied to the token embedding)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			path := filepath.Join(d, "model.safetensors")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			switch c.config {
			case "":
				os.WriteFile(filepath.Join(d, "config.json"), cfgJSON, 0o644)
			case "-":
			default:
				os.WriteFile(filepath.Join(d, "config.json"), []byte(c.config), 0o644)
			}
			f, err := Open(path)
			if c.sentinel == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				f.Close()
				return
			}
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, c.sentinel) {
				t.Errorf("error %q is not %v", err, c.sentinel)
			}
			if !strings.HasPrefix(err.Error(), "model "+path+": ") || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want %q on one line", err, c.msg)
			}
		})
	}

	t.Run("folder without model", func(t *testing.T) {
		d := t.TempDir()
		_, err := Open(d)
		if !errors.Is(err, ErrNotModel) || !strings.Contains(err.Error(), "folder without model.safetensors") {
			t.Errorf("Open = %v", err)
		}
	})
}

func TestHFName(t *testing.T) {
	cases := map[string]string{
		"encoder.conv1.weight":                   "model.encoder.conv1.weight",
		"encoder.positional_embedding":           "model.encoder.embed_positions.weight",
		"encoder.blocks.3.attn.query.weight":     "model.encoder.layers.3.self_attn.q_proj.weight",
		"encoder.blocks.0.attn_ln.bias":          "model.encoder.layers.0.self_attn_layer_norm.bias",
		"encoder.blocks.1.mlp.0.weight":          "model.encoder.layers.1.fc1.weight",
		"encoder.blocks.1.mlp.2.bias":            "model.encoder.layers.1.fc2.bias",
		"encoder.blocks.1.mlp_ln.weight":         "model.encoder.layers.1.final_layer_norm.weight",
		"encoder.ln_post.weight":                 "model.encoder.layer_norm.weight",
		"decoder.token_embedding.weight":         "model.decoder.embed_tokens.weight",
		"decoder.positional_embedding":           "model.decoder.embed_positions.weight",
		"decoder.blocks.12.cross_attn.out.bias":  "model.decoder.layers.12.encoder_attn.out_proj.bias",
		"decoder.blocks.12.cross_attn_ln.weight": "model.decoder.layers.12.encoder_attn_layer_norm.weight",
		"decoder.blocks.2.attn.value.weight":     "model.decoder.layers.2.self_attn.v_proj.weight",
		"decoder.blocks.2.cross_attn.key.weight": "model.decoder.layers.2.encoder_attn.k_proj.weight",
		"decoder.ln.bias":                        "model.decoder.layer_norm.bias",
	}
	for canon, hf := range cases {
		if got := HFName(canon); got != hf {
			t.Errorf("HFName(%q) = %q, want %q", canon, got, hf)
		}
	}
	// Every oracle name maps back to a canonical name (checked by Open); and all HF names of a
	// layout are distinct.
	seen := map[string]bool{}
	for _, s := range mustArch(t, "large-v3").Layout() {
		h := HFName(s.Name)
		if seen[h] {
			t.Errorf("HF name %s twice", h)
		}
		seen[h] = true
	}
}
