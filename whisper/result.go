package whisper

import (
	"strings"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

// Result is a transcription.
type Result struct {
	Language      string             // the language used (given or detected)
	LanguageProbs map[string]float64 // language probabilities when it was detected, else nil
	Duration      float64            // seconds of input audio
	Segments      []Segment
	// Removed lists what the guard took out (Options.Guard), in the order it was removed.
	Removed []Removal
	// Gaps lists the stretches of speech no segment covers after the retries (Options.NoCoverage
	// turns the check off), in order.
	Gaps []Gap
	// Retries counts the windows decoded again because a decoding left speech uncovered.
	Retries int
}

// Text is the text of all segments joined.
func (r *Result) Text() string {
	var b strings.Builder
	for _, s := range r.Segments {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Segment is a stretch of transcribed text with its time span and decoding statistics (those of
// the window it came from).
type Segment struct {
	ID               int
	Start, End       float64 // seconds from the start of the input
	Text             string
	Tokens           []Token // text tokens (timestamps and specials are not listed)
	AvgLogProb       float64
	NoSpeechProb     float64
	CompressionRatio float64
	Temperature      float64
	Language         string // the language the segment was decoded as
	Words            []Word // word timing (Options.WordTimestamps), else nil
}

// Token is one text token of a segment.
type Token struct {
	ID   int
	Text string  // the token's bytes (may be part of a UTF-8 sequence)
	P    float64 // probability under the filtered distribution it was decoded from
	// Start and End are the token's time span in seconds when known (word timing), else 0.
	Start, End float64
}

const (
	framesPerSecond = mel.SampleRate / mel.HopLength // 100
	inputStride     = 2                              // mel frames per audio context position
	timePrecision   = float64(inputStride) / framesPerSecond
)

// features is the log-mel spectrogram of the whole input padded with 30 s of silence, as the
// reference computes it before its seek loop.
type features struct {
	data    []float32 // [nMels, frames]
	nMels   int
	frames  int
	content int // frames of real audio
}

func newFeatures(samples []float32, nMels int) *features {
	padded := make([]float32, len(samples)+mel.ChunkSamples)
	copy(padded, samples)
	data, frames := mel.Compute(padded, nMels)
	return &features{data: data, nMels: nMels, frames: frames, content: max(0, frames-mel.ChunkFrames)}
}

// window returns the [nMels, 3000] window starting at frame seek, with the first size frames
// from the features and the rest zero (the reference's pad_or_trim of a short last window).
func (f *features) window(seek, size int) []float32 {
	out := make([]float32, f.nMels*mel.ChunkFrames)
	n := max(0, min(size, mel.ChunkFrames, f.frames-seek))
	for b := range f.nMels {
		copy(out[b*mel.ChunkFrames:b*mel.ChunkFrames+n], f.data[b*f.frames+seek:b*f.frames+seek+n])
	}
	return out
}
