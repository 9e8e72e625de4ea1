package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

type modelsCmd struct {
	Synth synthCmd `cmd:"" help:"Write a random-weight model (for tests and benchmarks; no download needed)."`
}

type synthCmd struct {
	Arch   string `required:"" help:"Architecture: micro, tiny, tiny.en, base, base.en, small, small.en, medium, medium.en, large-v1, large-v2, large-v3, large-v3-turbo."`
	DType  string `name:"dtype" default:"f16" help:"Weight type: f32, f16 (both formats), q8_0, q5_0, q5_1, q4_0 (ggml only)."`
	Seed   uint64 `default:"1" help:"Random seed: the same seed gives the same weights in either format."`
	Format string `default:"ggml" enum:"ggml,safetensors" help:"ggml (whisper.cpp .bin) or safetensors (model.safetensors + config.json)."`
	Output string `short:"o" required:"" type:"path" help:"Output file (ggml), or .safetensors file or folder (safetensors)." placeholder:"PATH"`
}

func (c *synthCmd) Run(e *env) error {
	cfg, err := weights.Arch(c.Arch)
	if err != nil {
		return err
	}
	dt, err := tensor.ParseDType(c.DType)
	if err != nil {
		return err
	}
	format := weights.GGML
	if c.Format == "safetensors" {
		format = weights.Safetensors
	}
	tensors, err := weights.Synth(weights.SynthOptions{Config: cfg, Seed: c.Seed, DType: dt, Format: format, Lazy: true})
	if err != nil {
		return err
	}
	start := time.Now()
	out := c.Output
	switch format {
	case weights.GGML:
		tok, err := tokenizer.New(cfg.NVocab)
		if err != nil {
			return err
		}
		err = weights.WriteGGML(out, cfg, tensors, mel.Filters(cfg.NMels), tok.Vocab())
		if err != nil {
			return err
		}
	case weights.Safetensors:
		if fi, err := os.Stat(out); (err == nil && fi.IsDir()) || !strings.HasSuffix(out, ".safetensors") {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			out = filepath.Join(out, "model.safetensors")
		}
		if err := weights.WriteSafetensors(out, cfg, tensors); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s: %s, %s, seed %d, %d parameters (%s)\n", out, c.Arch, dt, c.Seed,
		cfg.ParamCount(), time.Since(start).Round(time.Millisecond))
	return nil
}
