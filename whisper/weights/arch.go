package weights

import (
	"fmt"
	"strconv"
)

// Audio and text context lengths of every Whisper model.
const (
	audioCtx = 1500
	textCtx  = 448
)

// Vocabulary sizes: English-only (gpt2 ranks), multilingual (99 languages), large-v3 (100).
const (
	vocabEnglish = 51864
	vocabMulti   = 51865
	vocabV3      = 51866
)

func whisperConfig(vocab, d, heads, encLayers, decLayers, mels int) Config {
	return Config{
		NVocab: vocab, NAudioCtx: audioCtx, NAudioState: d, NAudioHead: heads, NAudioLayer: encLayers,
		NTextCtx: textCtx, NTextState: d, NTextHead: heads, NTextLayer: decLayers, NMels: mels,
	}
}

// archs lists the known architectures. Where two names share a config (large-v1 and large-v2),
// the later entry is the one Name reports.
var archs = []struct {
	name string
	cfg  Config
}{
	{"micro", whisperConfig(vocabV3, 64, 2, 2, 2, 128)},
	// mini is the project's own small model (package mini, tools/mini): large-v3's conventions,
	// d_model 384, 4 encoder and 3 decoder layers.
	{"mini", whisperConfig(vocabV3, 384, 6, 4, 3, 128)},
	{"tiny.en", whisperConfig(vocabEnglish, 384, 6, 4, 4, 80)},
	{"tiny", whisperConfig(vocabMulti, 384, 6, 4, 4, 80)},
	{"base.en", whisperConfig(vocabEnglish, 512, 8, 6, 6, 80)},
	{"base", whisperConfig(vocabMulti, 512, 8, 6, 6, 80)},
	{"small.en", whisperConfig(vocabEnglish, 768, 12, 12, 12, 80)},
	{"small", whisperConfig(vocabMulti, 768, 12, 12, 12, 80)},
	{"medium.en", whisperConfig(vocabEnglish, 1024, 16, 24, 24, 80)},
	{"medium", whisperConfig(vocabMulti, 1024, 16, 24, 24, 80)},
	{"large-v1", whisperConfig(vocabMulti, 1280, 20, 32, 32, 80)},
	{"large-v2", whisperConfig(vocabMulti, 1280, 20, 32, 32, 80)},
	{"large-v3", whisperConfig(vocabV3, 1280, 20, 32, 32, 128)},
	{"large-v3-turbo", whisperConfig(vocabV3, 1280, 20, 32, 4, 128)},
}

// Archs returns the names Arch accepts, smallest model first.
func Archs() []string {
	names := make([]string, len(archs))
	for i, a := range archs {
		names[i] = a.name
	}
	return names
}

// Arch returns the configuration of a named architecture: micro (the 64-wide test model), mini
// (the project's own small model), tiny, tiny.en, base, base.en, small, small.en, medium,
// medium.en, large-v1, large-v2, large-v3 or large-v3-turbo.
func Arch(name string) (Config, error) {
	for _, a := range archs {
		if a.name == name {
			return a.cfg, nil
		}
	}
	return Config{}, fmt.Errorf("unknown architecture %q (known: %v)", name, Archs())
}

// Name returns the architecture name of c, or "custom" if it is none of the known ones.
// large-v1 and large-v2 have the same configuration; both are reported as "large-v2".
func (c Config) Name() string {
	name := "custom"
	for _, a := range archs {
		if a.cfg == c {
			name = a.name
		}
	}
	return name
}

// Limits on a configuration, far above any Whisper model, so that a corrupt header cannot ask
// for absurd sizes.
const (
	maxVocab  = 1 << 20
	maxCtx    = 1 << 16
	maxState  = 1 << 14
	maxLayers = 1 << 8
	maxMels   = 1 << 10
)

// Validate reports whether c describes a Whisper model this package can load: positive, bounded
// sizes, one model width for encoder and decoder, and head counts that divide it.
func (c Config) Validate() error {
	fields := []struct {
		name   string
		v, max int
	}{
		{"n_vocab", c.NVocab, maxVocab},
		{"n_audio_ctx", c.NAudioCtx, maxCtx},
		{"n_audio_state", c.NAudioState, maxState},
		{"n_audio_head", c.NAudioHead, maxState},
		{"n_audio_layer", c.NAudioLayer, maxLayers},
		{"n_text_ctx", c.NTextCtx, maxCtx},
		{"n_text_state", c.NTextState, maxState},
		{"n_text_head", c.NTextHead, maxState},
		{"n_text_layer", c.NTextLayer, maxLayers},
		{"n_mels", c.NMels, maxMels},
	}
	for _, f := range fields {
		if f.v <= 0 || f.v > f.max {
			return fmt.Errorf("%s = %d, want 1..%d", f.name, f.v, f.max)
		}
	}
	if c.NAudioState != c.NTextState {
		return fmt.Errorf("n_audio_state %d != n_text_state %d (unsupported)", c.NAudioState, c.NTextState)
	}
	if c.NAudioState%c.NAudioHead != 0 {
		return fmt.Errorf("n_audio_state %d is not a multiple of n_audio_head %d", c.NAudioState, c.NAudioHead)
	}
	if c.NTextState%c.NTextHead != 0 {
		return fmt.Errorf("n_text_state %d is not a multiple of n_text_head %d", c.NTextState, c.NTextHead)
	}
	return nil
}

// Spec is the name and PyTorch shape of one tensor a model must have.
type Spec struct {
	Name  string
	Shape []int
}

// Layout lists every tensor of a model with configuration c, under canonical names, in the
// order of OpenAI's state dict (the order whisper.cpp's converter writes). c must be valid.
func (c Config) Layout() []Spec {
	var s []Spec
	add := func(name string, shape ...int) { s = append(s, Spec{name, shape}) }
	attn := func(p string, d int) {
		add(p+".query.weight", d, d)
		add(p+".query.bias", d)
		add(p+".key.weight", d, d)
		add(p+".value.weight", d, d)
		add(p+".value.bias", d)
		add(p+".out.weight", d, d)
		add(p+".out.bias", d)
	}
	ln := func(p string, d int) {
		add(p+".weight", d)
		add(p+".bias", d)
	}
	block := func(p string, d int, cross bool) {
		attn(p+".attn", d)
		ln(p+".attn_ln", d)
		if cross {
			attn(p+".cross_attn", d)
			ln(p+".cross_attn_ln", d)
		}
		add(p+".mlp.0.weight", 4*d, d)
		add(p+".mlp.0.bias", 4*d)
		add(p+".mlp.2.weight", d, 4*d)
		add(p+".mlp.2.bias", d)
		ln(p+".mlp_ln", d)
	}
	d := c.NAudioState
	add("encoder.positional_embedding", c.NAudioCtx, d)
	add("encoder.conv1.weight", d, c.NMels, 3)
	add("encoder.conv1.bias", d)
	add("encoder.conv2.weight", d, d, 3)
	add("encoder.conv2.bias", d)
	for i := range c.NAudioLayer {
		block("encoder.blocks."+strconv.Itoa(i), d, false)
	}
	ln("encoder.ln_post", d)
	d = c.NTextState
	add("decoder.positional_embedding", c.NTextCtx, d)
	add("decoder.token_embedding.weight", c.NVocab, d)
	for i := range c.NTextLayer {
		block("decoder.blocks."+strconv.Itoa(i), d, true)
	}
	ln("decoder.ln", d)
	return s
}

// ParamCount is the number of parameters of a model with configuration c.
func (c Config) ParamCount() int64 {
	var n int64
	for _, s := range c.Layout() {
		p := int64(1)
		for _, d := range s.Shape {
			p *= int64(d)
		}
		n += p
	}
	return n
}
