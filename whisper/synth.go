package whisper

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// SynthOptions describe a random-weight model file (see weights.Synth for the weights).
type SynthOptions struct {
	Config weights.Config
	DType  tensor.DType // F32, F16, BF16, or a ggml quantization (ggml only)
	Seed   uint64       // the same seed gives the same weights in either format
	Format weights.Format
}

// WriteSynth writes a random-weight model to path and returns the file it wrote. A ggml file
// carries the vocabulary and mel filters of its configuration, as whisper.cpp's do. For
// safetensors, a path that is a folder or does not end in ".safetensors" is a folder that gets
// model.safetensors and config.json. Tensors are generated one at a time, so large-v3 needs no
// more than one tensor's memory.
func WriteSynth(path string, o SynthOptions) (string, error) {
	format := o.Format
	if format == 0 {
		format = weights.GGML
	}
	ts, err := weights.Synth(weights.SynthOptions{Config: o.Config, Seed: o.Seed, DType: o.DType, Format: format, Lazy: true})
	if err != nil {
		return "", err
	}
	switch format {
	case weights.GGML:
		tok, err := tokenizer.New(o.Config.NVocab)
		if err != nil {
			return "", fmt.Errorf("synth %s: %w", path, err)
		}
		return path, weights.WriteGGML(path, o.Config, ts, mel.Filters(o.Config.NMels), tok.Vocab())
	case weights.Safetensors:
		if fi, err := os.Stat(path); (err == nil && fi.IsDir()) || !strings.HasSuffix(path, ".safetensors") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return "", fmt.Errorf("synth %s: %w", path, err)
			}
			path = filepath.Join(path, "model.safetensors")
		}
		return path, weights.WriteSafetensors(path, o.Config, ts)
	}
	return "", fmt.Errorf("synth %s: unknown format %v", path, format)
}
