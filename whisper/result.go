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
	// Windows counts the windows decoded, each once however many temperatures it took; the
	// coverage check's retries are among them.
	Windows int
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
