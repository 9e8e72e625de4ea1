// Package mel is Whisper's log-mel frontend: 16 kHz mono samples to log-mel features.
package mel

// Reference framing constants.
const (
	SampleRate   = 16000
	NFFT         = 400
	HopLength    = 160
	ChunkSamples = 30 * SampleRate // one 30 s window
	ChunkFrames  = ChunkSamples / HopLength
)

// Filters returns the Slaney-style mel filterbank [nMels, NFFT/2+1] (nMels 80 or 128), equal to
// openai/whisper's assets/mel_filters.npz.
func Filters(nMels int) []float32 { panic("TODO(mel)") }

// Compute returns log-mel features [nMels, frames] (row-major) with frames = len(samples)/HopLength,
// framed as the reference (centered STFT with reflect padding, Hann window, last frame dropped),
// normalized as the reference: log10(max(x, 1e-10)), clamped at (max over the whole input) - 8,
// then (x + 4) / 4.
func Compute(samples []float32, nMels int) (data []float32, frames int) { panic("TODO(mel)") }

// Window returns the [nMels, ChunkFrames] features of samples zero-padded (or cut) to 30 s,
// as Hugging Face's WhisperFeatureExtractor computes them.
func Window(samples []float32, nMels int) []float32 { panic("TODO(mel)") }
