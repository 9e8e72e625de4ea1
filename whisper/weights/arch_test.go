package weights

import (
	"strings"
	"testing"
)

func TestArch(t *testing.T) {
	cases := []struct {
		name           string
		d, heads       int
		enc, dec, mels int
		vocab          int
		params         int64 // published parameter counts, to 0.5 %
		nameBack       string
	}{
		{"micro", 64, 2, 2, 2, 128, 51866, 0, ""},
		{"tiny", 384, 6, 4, 4, 80, 51865, 37_760_000, ""},
		{"tiny.en", 384, 6, 4, 4, 80, 51864, 37_760_000, ""},
		{"base", 512, 8, 6, 6, 80, 51865, 72_590_000, ""},
		{"base.en", 512, 8, 6, 6, 80, 51864, 72_590_000, ""},
		{"small", 768, 12, 12, 12, 80, 51865, 241_730_000, ""},
		{"small.en", 768, 12, 12, 12, 80, 51864, 241_730_000, ""},
		{"medium", 1024, 16, 24, 24, 80, 51865, 763_860_000, ""},
		{"medium.en", 1024, 16, 24, 24, 80, 51864, 763_860_000, ""},
		{"large-v1", 1280, 20, 32, 32, 80, 51865, 1_543_300_000, "large-v2"},
		{"large-v2", 1280, 20, 32, 32, 80, 51865, 1_543_300_000, ""},
		{"large-v3", 1280, 20, 32, 32, 128, 51866, 1_543_500_000, ""},
		{"large-v3-turbo", 1280, 20, 32, 4, 128, 51866, 808_900_000, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Arch(c.name)
			if err != nil {
				t.Fatal(err)
			}
			want := Config{NVocab: c.vocab, NAudioCtx: 1500, NAudioState: c.d, NAudioHead: c.heads, NAudioLayer: c.enc,
				NTextCtx: 448, NTextState: c.d, NTextHead: c.heads, NTextLayer: c.dec, NMels: c.mels}
			if cfg != want {
				t.Errorf("Arch = %+v, want %+v", cfg, want)
			}
			if err := cfg.Validate(); err != nil {
				t.Error(err)
			}
			back := c.nameBack
			if back == "" {
				back = c.name
			}
			if got := cfg.Name(); got != back {
				t.Errorf("Name = %q, want %q", got, back)
			}
			if n := cfg.ParamCount(); c.params != 0 && (float64(n) < 0.995*float64(c.params) || float64(n) > 1.005*float64(c.params)) {
				t.Errorf("%d parameters, want about %d", n, c.params)
			}
			if n := len(cfg.Layout()); n != 5+15*c.enc+2+2+24*c.dec+2 {
				t.Errorf("%d tensors", n)
			}
		})
	}
	if _, err := Arch("huge"); err == nil {
		t.Error("Arch(huge) succeeded")
	}
	custom := mustArch(t, "tiny")
	custom.NTextLayer = 3
	if custom.Name() != "custom" {
		t.Errorf("Name = %q, want custom", custom.Name())
	}
}

func TestConfigValidate(t *testing.T) {
	good := mustArch(t, "tiny")
	cases := []struct {
		name string
		edit func(*Config)
		msg  string
	}{
		{"zero vocab", func(c *Config) { c.NVocab = 0 }, "n_vocab = 0"},
		{"negative layers", func(c *Config) { c.NTextLayer = -1 }, "n_text_layer = -1"},
		{"huge ctx", func(c *Config) { c.NAudioCtx = 1 << 20 }, "n_audio_ctx = 1048576"},
		{"widths differ", func(c *Config) { c.NTextState = 512 }, "n_audio_state 384 != n_text_state 512"},
		{"heads", func(c *Config) { c.NTextHead = 7 }, "not a multiple of n_text_head 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil || err.Error() == "" || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("Validate = %v, want %q", err, c.msg)
			}
		})
	}
}
