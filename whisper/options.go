package whisper

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Compat selects whose behaviour decoding and transcription follow where openai/whisper and
// whisper.cpp differ. The default is the reference, openai/whisper. The differences are listed
// once, as the two values of one rules description (rules.go, rulesFor), and every path reads
// them.
type Compat int

const (
	// CompatOpenAI follows openai/whisper's decoding.py and transcribe.py.
	CompatOpenAI Compat = iota
	// CompatWhisperCpp follows whisper.cpp's whisper_full (v1.7-1.9), for comparing with it; see
	// rulesFor for every difference. Beam search and sampling use the reference's algorithms in
	// both modes.
	CompatWhisperCpp
)

var compatNames = []string{CompatOpenAI: "openai", CompatWhisperCpp: "whisper.cpp"}

func (c Compat) String() string {
	if c >= 0 && int(c) < len(compatNames) {
		return compatNames[c]
	}
	return fmt.Sprintf("compat(%d)", int(c))
}

// ParseCompat reads a Compat by name: "openai" or "whisper.cpp".
func ParseCompat(s string) (Compat, error) {
	for i, n := range compatNames {
		if strings.EqualFold(s, n) {
			return Compat(i), nil
		}
	}
	return 0, fmt.Errorf("unknown compat mode %q (want openai or whisper.cpp)", s)
}

// MarshalText writes the name, for the run record.
func (c Compat) MarshalText() ([]byte, error) {
	if c < 0 || int(c) >= len(compatNames) {
		return nil, fmt.Errorf("unknown compat mode %d", int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (c *Compat) UnmarshalText(b []byte) error {
	v, err := ParseCompat(string(b))
	if err == nil {
		*c = v
	}
	return err
}

// WindowMode says how a long input is cut into 30 s windows.
type WindowMode int

const (
	// Sequential is the reference's algorithm: each window starts where the text of the window
	// before it ended (the seek) and, with ConditionOnPreviousText, is given that text as its
	// prompt. An input gives one window at a time to the batches; the windows of several inputs
	// still share them.
	Sequential WindowMode = iota
	// Independent cuts the input into windows up front and decodes them whole, independently of
	// one another and many at a time: faster on a GPU for a single long input, with no
	// conditioning on previous text, and the text after a window's last timestamp pair is kept
	// rather than decoded again in the next window.
	Independent
)

var windowNames = []string{Sequential: "sequential", Independent: "independent"}

func (w WindowMode) String() string {
	if w >= 0 && int(w) < len(windowNames) {
		return windowNames[w]
	}
	return fmt.Sprintf("windows(%d)", int(w))
}

// ParseWindowMode reads a WindowMode by name: "sequential" or "independent".
func ParseWindowMode(s string) (WindowMode, error) {
	for i, n := range windowNames {
		if strings.EqualFold(s, n) {
			return WindowMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown window mode %q (want sequential or independent)", s)
}

// MarshalText writes the name, for the run record.
func (w WindowMode) MarshalText() ([]byte, error) {
	if w < 0 || int(w) >= len(windowNames) {
		return nil, fmt.Errorf("unknown window mode %d", int(w))
	}
	return []byte(w.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (w *WindowMode) UnmarshalText(b []byte) error {
	v, err := ParseWindowMode(string(b))
	if err == nil {
		*w = v
	}
	return err
}

// Options control decoding and transcription. Start from [DefaultOptions]: the zero value is not
// a useful configuration. A NaN threshold disables that check.
//
// Every field that can change a transcript is in the JSON form of Options (MarshalJSON), which
// the pipeline records with each run and fingerprints to decide whether existing outputs are
// current; the callback and the speech regions (recorded through the VAD settings that made
// them) are left out.
type Options struct {
	// Language is the spoken language code ("en", "de", ...); "" or "auto" detects it from up to
	// three windows spread over the input (English-only models always use "en").
	Language string `json:"language"`
	// Task is "transcribe" or "translate" (to English).
	Task string `json:"task"`
	// Temperatures is the fallback schedule: decoding retries at the next temperature when a
	// window fails the thresholds. The reference CLI uses 0, 0.2, ..., 1.0.
	Temperatures []float64 `json:"temperatures"`
	// NoFallback decodes at Temperatures[0] only.
	NoFallback bool `json:"no_fallback"`
	// BeamSize > 1 uses beam search at temperature 0; otherwise greedy.
	BeamSize int `json:"beam_size"`
	// BestOf is the number of sampled candidates at temperature > 0.
	BestOf int `json:"best_of"`
	// Patience is the beam search patience factor; 0 means 1 (the reference default).
	Patience float64 `json:"patience"`
	// LengthPenalty is the ranking's alpha: score = sum logprob / ((5+len)/6)^alpha; 0 ranks by
	// sum logprob / len (the reference's default, simple length normalization).
	LengthPenalty float64 `json:"length_penalty"`
	// NoTimestamps decodes text only (<|notimestamps|>), one segment per window.
	NoTimestamps bool `json:"no_timestamps"`
	// WordTimestamps times every word (Segment.Words) and text token (Token.Start, End) from the
	// cross-attention of the model's alignment heads, as the reference's word_timestamps, at the
	// cost of one more decoder pass per window. With the reference's rules segments are re-timed
	// to their words and the seek resumes after the last word, as in the reference. The
	// reference has it off by default; DefaultOptions turns it on because subtitle shaping cuts
	// cues at word boundaries.
	WordTimestamps bool `json:"word_timestamps"`
	// Prompt is an initial prompt (text) for the first window.
	Prompt string `json:"prompt"`
	// ConditionOnPreviousText feeds each window's output as the next window's prompt (Sequential
	// windows only).
	ConditionOnPreviousText bool `json:"condition_on_previous_text"`
	// CompressionRatioThreshold: a window whose text compresses (zlib) better than this is
	// treated as a repetition loop and retried. (whisper.cpp's rules use it as the threshold of
	// their token entropy instead.)
	CompressionRatioThreshold float64 `json:"compression_ratio_threshold"`
	// LogProbThreshold: a window whose average token log probability is below this is retried.
	LogProbThreshold float64 `json:"logprob_threshold"`
	// NoSpeechThreshold: a window with <|nospeech|> probability above this and an average log
	// probability below LogProbThreshold is silence (skipped).
	NoSpeechThreshold float64 `json:"no_speech_threshold"`
	// SuppressBlank forbids a blank or EOT as the first sampled token.
	SuppressBlank bool `json:"suppress_blank"`
	// SuppressTokens is a comma-separated list of token ids never sampled; "-1" stands for the
	// reference's non-speech symbol set. The special tokens are always suppressed.
	SuppressTokens string `json:"suppress_tokens"`
	// MaxInitialTimestamp limits the first timestamp of a window (seconds); 0: no limit.
	MaxInitialTimestamp float64 `json:"max_initial_timestamp"`
	// KeepTimestampsInAudio forbids timestamps after the end of a window's audio (the input's
	// last window, or a VAD window, is shorter than 30 s; the rest is padding). The reference
	// lets a model end a segment in the padding, and its seek then drops the window's remaining
	// speech: mini, on a 10 s clip, ended a segment at 13.06 s after its first word and lost the
	// other 26. Not applied under whisper.cpp's rules.
	KeepTimestampsInAudio bool `json:"keep_timestamps_in_audio"`
	// Seed seeds sampling at temperature > 0; the same seed gives the same result, however the
	// windows are batched.
	Seed uint64 `json:"seed"`
	// Compat selects openai/whisper's (default) or whisper.cpp's rules where they differ.
	Compat Compat `json:"compat"`
	// Windows selects how a long input is cut into windows (Sequential, the default, or
	// Independent). It is the algorithm; how many windows are computed together is the batch
	// size ([ManyOptions]), which does not change it.
	Windows WindowMode `json:"windows"`
	// Languages restricts language detection to these codes ("de", "en", ...). With more than one,
	// and Language auto, each window's language is detected on its own (Segment.Language).
	Languages []string `json:"languages"`
	// Hotwords is text given to every window as the start of its prompt (names, terms), unlike
	// Prompt, which only the first window sees.
	Hotwords string `json:"hotwords"`
	// Guard removes repetition loops, text repeated across windows and known silence
	// hallucinations, listing each removal in Result.Removed. It does not apply under
	// whisper.cpp's rules (parity).
	Guard bool `json:"guard"`
	// Coverage checks after each window that every stretch of speech it went past is covered by
	// a segment: speech by the speech regions, or, without them, by the audio's energy. An
	// uncovered stretch is retried (without the
	// previous text as prompt and re-anchored at that speech, then with a 10 s window, then with
	// the temperature fallback) and what stays uncovered is reported in Result.Gaps. Independent
	// windows are checked, not retried. The references have no such check: it does not apply
	// under whisper.cpp's rules (parity); DefaultOptions turns it on.
	Coverage bool `json:"coverage"`

	// MaxWindowTokens caps the tokens sampled in one window; 0: the model's limit (half its text
	// context, less the rules' margin). For benchmarks with random weights, which rarely end a
	// window on their own (bench --e2e, the CLI's hidden --max-window-tokens); a cap changes
	// transcripts.
	MaxWindowTokens int `json:"max_window_tokens,omitempty"`

	// Progress, if set, is called after each window with the audio done and the total.
	Progress func(done, total time.Duration) `json:"-"`
	// Checkpoint, if set, is called after each window's segments are added (after each step's
	// windows with Independent windows), with the state to resume from; see Resume.
	Checkpoint func(*Checkpoint) `json:"-"`
	// Resume, if set, continues a transcription from a checkpoint handed out by Checkpoint for
	// the same input, model, options and speech regions (else the transcription fails with
	// ErrCheckpoint): the audio before it is read but not decoded again, and the result holds
	// the segments from before it too.
	Resume *Checkpoint `json:"-"`
	// SpeechRegions are the input's speech regions (seconds, from a VAD). When set (non-nil;
	// empty means no speech), only they are transcribed: they are padded, merged greedily into
	// windows of at most 30 s (a longer region is split), and the segments' times are mapped back
	// to the input's timeline; no segment lies in a gap between regions. Without them, the whole
	// input goes through the windows.
	SpeechRegions []Span `json:"-"`
}

// DefaultOptions returns the reference CLI's defaults: language detection, transcribe, beam 5,
// best of 5, temperature fallback 0, 0.2, ..., 1.0, thresholds 2.4 / -1.0 / 0.6, suppress blank
// and the non-speech set, max initial timestamp 1 s, sequential windows conditioned on previous
// text; and, unlike the reference, word timestamps on, timestamps kept within the audio and the
// guard and the coverage check on. The same on every backend.
func DefaultOptions() Options {
	return Options{
		Task:                      "transcribe",
		Temperatures:              []float64{0, 0.2, 0.4, 0.6, 0.8, 1.0},
		BeamSize:                  5,
		BestOf:                    5,
		ConditionOnPreviousText:   true,
		CompressionRatioThreshold: 2.4,
		LogProbThreshold:          -1.0,
		NoSpeechThreshold:         0.6,
		SuppressBlank:             true,
		Coverage:                  true,
		SuppressTokens:            "-1",
		MaxInitialTimestamp:       1.0,
		KeepTimestampsInAudio:     true,
		WordTimestamps:            true,
		Guard:                     true,
	}
}

// WhisperCppDefaults changes o to whisper.cpp's defaults where they differ from the reference's
// (its command line's, for `--compat whisper.cpp`): whisper.cpp's rules, and no suppression of
// the non-speech symbols (whisper.cpp's suppress_nst is off).
func (o *Options) WhisperCppDefaults() {
	o.Compat = CompatWhisperCpp
	o.SuppressTokens = ""
}

// MarshalJSON is the JSON form of the options for the run record: every field that can change a
// transcript, with NaN thresholds (checks turned off) written as the string "off".
func (o Options) MarshalJSON() ([]byte, error) {
	type plain Options
	return json.Marshal(struct {
		plain
		CompressionRatioThreshold threshold `json:"compression_ratio_threshold"`
		LogProbThreshold          threshold `json:"logprob_threshold"`
		NoSpeechThreshold         threshold `json:"no_speech_threshold"`
	}{plain(o), threshold(o.CompressionRatioThreshold), threshold(o.LogProbThreshold), threshold(o.NoSpeechThreshold)})
}

// threshold is a float that JSON writes as "off" when it is NaN (and infinities by name).
type threshold float64

func (t threshold) MarshalJSON() ([]byte, error) {
	switch v := float64(t); {
	case math.IsNaN(v):
		return []byte(`"off"`), nil
	case math.IsInf(v, 0):
		return json.Marshal(fmt.Sprint(v))
	default:
		return json.Marshal(v)
	}
}

// temperatures is the schedule actually used.
func (o *Options) temperatures() []float64 {
	if len(o.Temperatures) == 0 {
		return []float64{0}
	}
	if o.NoFallback {
		return o.Temperatures[:1]
	}
	return o.Temperatures
}

// check validates the settings that have a fixed set of values, filling in the task's default.
func (o *Options) check() error {
	switch o.Task {
	case "":
		o.Task = "transcribe"
	case "transcribe", "translate":
	default:
		return fmt.Errorf("unknown task %q", o.Task)
	}
	if o.Compat < 0 || int(o.Compat) >= len(compatNames) {
		return fmt.Errorf("unknown compat mode %d", o.Compat)
	}
	if o.Windows < 0 || int(o.Windows) >= len(windowNames) {
		return fmt.Errorf("unknown window mode %d", o.Windows)
	}
	if o.Patience < 0 {
		return fmt.Errorf("patience %v is negative", o.Patience)
	}
	if o.MaxWindowTokens < 0 {
		return fmt.Errorf("max window tokens %d is negative", o.MaxWindowTokens)
	}
	return nil
}
