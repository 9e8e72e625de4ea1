package sidecar

import (
	"time"
)

// Transcript is what the sidecars are made from. It mirrors the engine's result without
// depending on it (the pipeline converts): times are offsets from the start of the input.
type Transcript struct {
	Language      string
	LanguageProbs map[string]float64 // when the language was detected, else nil
	Duration      time.Duration      // of the input audio; 0 if unknown
	Segments      []Segment
	// The summary stage's output (package summarize); all empty when it did not run or was
	// turned off, and then the Markdown note leaves its sections out.
	Summary     string    // Markdown: a paragraph or a bulleted list
	Points      []Item    // the summary's points with their times, when it is a list of them
	Chapters    []Chapter // in time order, the first at the start of the speech
	Actions     []Item    // action items
	Decisions   []Item
	SummaryInfo *SummaryInfo // how the summary was made; nil when there is none
	Removed     []Removal    // what the engine's guard removed (repetition loops, hallucinations)
	Gaps        []Gap        // speech the transcript does not cover (the engine's coverage check)
	Retries     int          // windows decoded again because a decoding left speech uncovered
	Provenance  Provenance
}

// Removal is decoded text that the engine's guard removed from the transcript.
type Removal struct {
	Start, End time.Duration
	Text       string
	Reason     string
}

// Gap is a stretch of speech no segment covers: the engine's attempts at it gave no text.
type Gap struct {
	Start, End time.Duration
	Reason     string // no_text, judged_silence, skipped
	Speech     string // what found speech there: vad, energy
	Attempts   int
}

// Segment is a stretch of transcribed text with its decoding statistics.
type Segment struct {
	ID         int
	Start, End time.Duration
	Text       string
	Language   string // set when the transcript's segments differ in language
	Tokens     []Token
	// Words carry word-level times when the engine computed them. When present, shaping cuts cues
	// at word boundaries with these times; when absent it interpolates within the segment.
	Words            []Word
	AvgLogProb       float64
	NoSpeechProb     float64
	CompressionRatio float64
	Temperature      float64
}

// Token is one text token of a segment. Start and End are both zero when not known.
type Token struct {
	ID         int
	Text       string // the token's bytes; may be part of a UTF-8 sequence
	P          float64
	Start, End time.Duration
}

// Word is one spoken word with its time span. A leading space in Text (as Whisper writes
// words) marks a word boundary; see Shape for how words are joined.
type Word struct {
	Text       string
	Start, End time.Duration
	P          float64
}

// Chapter is a titled point in the transcript.
type Chapter struct {
	Start   time.Duration
	Title   string
	Summary string // a sentence or two on what it covers; "" when none was made
	// Image is a still of the video at Start, relative to the sidecars' folder (slash-separated);
	// "" for none (audio, or no frame could be had).
	Image string
}

// Item is an action item or a decision: its text and, when known, where it was said.
type Item struct {
	Text     string
	Start    time.Duration
	HasStart bool // Start is known
}

// SummaryInfo records how the summary, chapters and items were made, so that a reader of the
// JSON sidecar can tell an extractive summary from a model's and see what was asked of it.
type SummaryInfo struct {
	Method   string    `json:"method"`             // extractive or llm
	Template string    `json:"template,omitempty"` // meeting, lecture, interview, memo
	Created  time.Time `json:"created"`
	// The LLM, when one made it.
	Server        string `json:"server,omitempty"`   // ollama or openai (an OpenAI-compatible server)
	Endpoint      string `json:"endpoint,omitempty"` // its base URL
	Model         string `json:"model,omitempty"`
	ContextLength int    `json:"context_length,omitempty"` // tokens, as used to size the chunks
	Chunks        int    `json:"chunks,omitempty"`         // parts the transcript was summarized in
	Prompt        string `json:"prompt,omitempty"`         // the instructions sent (the transcript itself is not repeated)
	// Note says what could not be done and what was done instead (no LLM answered, a chunk was
	// cut short), so nothing is dropped silently.
	Note string `json:"note,omitempty"`
}

// Provenance records how a transcript was made. It is written into the JSON sidecar as is, and
// its Input and Model/Settings decide whether existing sidecars are current (see Current).
type Provenance struct {
	Program  string         `json:"program"`
	Version  string         `json:"version"`
	Created  time.Time      `json:"created"`
	Model    Model          `json:"model"`
	Backend  Backend        `json:"backend,omitzero"`
	Settings map[string]any `json:"settings"` // decoding options and anything else that changes the outputs
	Input    Input          `json:"input"`
}

// Backend names the compute backend a transcript was made on. It is recorded, not part of the
// fingerprint: the same model and settings on another device give the same transcript up to
// rounding. Switches that change how a backend computes are settings.
type Backend struct {
	Name   string `json:"name"`   // cpu, cuda, metal
	Device string `json:"device"` // the hardware in words
}

// Model names the weights a transcript came from.
type Model struct {
	Name   string `json:"name"`   // file name, without its folder
	SHA256 string `json:"sha256"` // hex
}

// Input is the identity of the transcribed file: re-running on the same identity with the same
// settings is a no-op unless forced.
type Input struct {
	Name    string    `json:"name"` // file name, without its folder
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"` // hex
}

// Same reports whether in and other identify the same file content: equal size, modification
// time (to the nanosecond, as stored) and hash. The name is not compared: a renamed file is the
// same input.
func (in Input) Same(other Input) bool {
	return in.Size == other.Size && in.ModTime.Equal(other.ModTime) && in.SHA256 == other.SHA256 &&
		in.SHA256 != ""
}
