package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/whisper/weights"
)

// writeSynth writes a random-weight model of cfg as a float32 Hugging Face folder.
func writeSynth(t *testing.T, cfg weights.Config, seed uint64) string {
	t.Helper()
	ts, err := weights.Synth(weights.SynthOptions{Config: cfg, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hf")
	if err := weights.WriteSafetensors(dir, cfg, ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadMean(t *testing.T) {
	cfg, err := weights.Arch("micro")
	if err != nil {
		t.Fatal(err)
	}
	a, b := writeSynth(t, cfg, 1), writeSynth(t, cfg, 2)
	_, va, err := load(a)
	if err != nil {
		t.Fatal(err)
	}
	_, vb, err := load(b)
	if err != nil {
		t.Fatal(err)
	}
	got, mean, err := loadMean([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got != cfg {
		t.Fatalf("config %+v, want %+v", got, cfg)
	}
	if len(mean) != len(va) {
		t.Fatalf("%d tensors, want %d", len(mean), len(va))
	}
	differ := 0
	for name, m := range mean {
		for i := range m {
			if want := (va[name][i] + vb[name][i]) / 2; m[i] != want {
				t.Fatalf("%s[%d] = %v, want %v", name, i, m[i], want)
			}
			if va[name][i] != vb[name][i] {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Fatal("the two seeds gave the same weights: the test checks nothing")
	}

	other := cfg
	other.NTextLayer++
	if _, _, err := loadMean([]string{a, writeSynth(t, other, 1)}); err == nil || !strings.Contains(err.Error(), "architecture") {
		t.Fatalf("models of two architectures averaged: err = %v", err)
	}
}
