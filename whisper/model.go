// Package whisper is the Whisper model: weights on a tensor backend, the encoder, the decoder with
// its KV caches, decoding (greedy, beam search, sampling, timestamp rules, language detection) and
// transcription of 16 kHz audio.
package whisper

import (
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// Model is a loaded Whisper model on one backend. It is not safe for concurrent use.
type Model struct {
	Config weights.Config
	Arch   string
	Path   string   // the model file
	Vocab  [][]byte // ggml vocabulary if the file had one
	b      tensor.Backend
}

// Load opens a model file (ggml .bin, or model.safetensors / its folder) and uploads its weights.
func Load(path string, b tensor.Backend) (*Model, error) { panic("TODO(engine)") }

// Close frees the model's tensors. It is idempotent.
func (m *Model) Close() error { panic("TODO(engine)") }

// Backend returns the backend the model runs on.
func (m *Model) Backend() tensor.Backend { return m.b }

// Encoded is the encoder output for a batch of 30 s windows, on the backend:
// Out has shape [nWindows, NAudioCtx, NAudioState]. It also holds the cross-attention K/V of
// every decoder layer, computed once.
type Encoded struct {
	Out *tensor.Tensor
}

// Encode runs the encoder on nWindows log-mel windows: mel is nWindows x [NMels, 3000] row-major.
func (m *Model) Encode(mel []float32, nWindows int) (*Encoded, error) { panic("TODO(engine)") }

// Close frees the encoder output. It is idempotent.
func (e *Encoded) Close() { panic("TODO(engine)") }

// Session decodes a batch of token sequences against encoded windows, with self-attention KV
// caches. All sequences advance together (the same number of tokens per Step).
type Session struct{}

// NewSession starts len(window) empty sequences; sequence i cross-attends to window[i] of enc.
func (m *Model) NewSession(enc *Encoded, window []int) (*Session, error) { panic("TODO(engine)") }

// Step appends tokens[i] to sequence i (all of equal length n >= 1) and returns logits as a
// flat slice: [B, NVocab] for the last new position, or [B, n, NVocab] when all is true.
func (s *Session) Step(tokens [][]int32, all bool) ([]float32, error) { panic("TODO(engine)") }

// Len is the number of tokens in the caches.
func (s *Session) Len() int { panic("TODO(engine)") }

// Reorder makes sequence i continue from the cache of sequence src[i] (beam search).
func (s *Session) Reorder(src []int) error { panic("TODO(engine)") }

// Truncate drops cached positions from n on (n <= Len), so decoding can restart from a prefix.
func (s *Session) Truncate(n int) error { panic("TODO(engine)") }

// Close frees the session's caches. It is idempotent.
func (s *Session) Close() { panic("TODO(engine)") }
