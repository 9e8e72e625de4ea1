package whisper

import (
	"math"

	"github.com/verbatimhq/verbatim/whisper/weights"
)

// rules describes, as data, everything openai/whisper and whisper.cpp do differently: one value
// per Compat (rulesFor), chosen once per input and read by the decode-task builder, the logit
// filters, the driver's seek and the segmenter. Where a difference is a whole procedure (how a
// window's tokens become segments, when a decoding is retried), the field is a small strategy.
type rules struct {
	compat Compat

	// Decoding one window.

	// forceFirstTimestamp: the first sampled token is a timestamp (openai); whisper.cpp only
	// limits how late the first timestamp may be.
	forceFirstTimestamp bool
	// repeatTimestamps: a timestamp may repeat the one before it (only going back is forbidden),
	// and <|0.00|> does not count as a timestamp seen (whisper.cpp).
	repeatTimestamps bool
	// suppressSpecials: <|notimestamps|> and every language token are never sampled, besides the
	// reference's specials (whisper.cpp).
	suppressSpecials bool
	// maskTimestampsWhenOff: with NoTimestamps every timestamp token is suppressed too
	// (whisper.cpp); openai relies on <|notimestamps|> in the SOT sequence alone.
	maskTimestampsWhenOff bool
	// massRuleByModel: a model that decodes without the timestamp mass rule (timestampMassRule)
	// gets it left out (openai); whisper.cpp applies it to every model.
	massRuleByModel bool
	// keepTimestampsInAudio: Options.KeepTimestampsInAudio is honoured (openai).
	keepTimestampsInAudio bool
	// sampleMargin: a window samples at most nTextCtx/2 - sampleMargin tokens (whisper.cpp: 4).
	sampleMargin int
	// promptMargin: a window's prompt keeps at most nTextCtx/2 - promptMargin tokens of its
	// history (openai: 1, for <|startofprev|>).
	promptMargin int
	// noSpeechAtPromptEnd: the no-speech probability is read at the last position of the prompt
	// and SOT sequence (whisper.cpp), not at <|startoftranscript|>.
	noSpeechAtPromptEnd bool
	// scaleFirst: the logits are divided by the temperature before the filters (whisper.cpp), not
	// when sampling.
	scaleFirst bool
	// tracked: whisper.cpp's bookkeeping per sequence (cppTracker) ends a window when a
	// timestamp reaches the end of the audio and fails it when time goes back or the token
	// budget runs out without a timestamp past 15 s; candidates are ranked and trimmed to the
	// last timestamp as whisper.cpp does (finishCpp), and the seek advances by what the tracker
	// saw.
	tracked bool

	// Transcribing windows.

	// guard: Options.Guard is honoured (openai; whisper.cpp's output is kept as it is, for
	// parity).
	guard bool
	// coverage: Options.Coverage is honoured (openai; whisper.cpp has no such check, and its
	// output is kept as it is, for parity).
	coverage bool
	// retimeToWords: with word timestamps, segments take their words' span and the seek resumes
	// after the last word (openai).
	retimeToWords bool
	// promptBelow: the history and the initial prompt are given only to attempts at a
	// temperature below this (whisper.cpp: 0.5); +Inf: to every attempt.
	promptBelow float64
	// resetAbove: the history is dropped after a window decoded at a temperature above this
	// (openai: 0.5); +Inf: never.
	resetAbove float64
	// historyOfDecoder: the history a later window is conditioned on is what the decoder kept of
	// each window (its tokens up to the last timestamp, and the prompt it was given: whisper.cpp)
	// rather than the tokens of the segments kept (openai).
	historyOfDecoder bool
	// tailFrames: a window whose audio ends within this many mel frames is decoded without
	// history (whisper.cpp: 500, "a very short segment left tends to confuse the decoder"); 0:
	// never.
	tailFrames int
	// minFrames: a window with at most this many mel frames of audio is not decoded: the input
	// ends there (whisper.cpp: 10, 100 ms); < 0: every window is decoded.
	minFrames int
	// melPadSilence: a window's mel frames after its audio are those of silence (whisper.cpp
	// cuts windows from the mel of the padded input) rather than zeros (openai's pad_or_trim).
	melPadSilence bool
	// distilNoTimestamps: a model with 2 decoder layers and a vocabulary other than large-v3's is
	// taken for a first-release distilled model and decoded without timestamps (whisper.cpp
	// forces no_timestamps for those).
	distilNoTimestamps bool
	// retry reports whether a window's decoding fails the thresholds and is retried at the next
	// temperature.
	retry func(o *Options, dr *decodeResult) bool
	// silent reports whether a decoded window is silence: no segments. openai skips the whole
	// window; whisper.cpp still advances by the decoder's seek.
	silent func(o *Options, dr *decodeResult) bool
	// skipSilent: a silent window is skipped whole (openai), not advanced by the decoder's seek.
	skipSilent bool
	// segmenter cuts a decoded window's tokens into segments and says where the next window
	// starts.
	segmenter segmenter
}

var (
	openaiRules = rules{
		compat:                CompatOpenAI,
		forceFirstTimestamp:   true,
		massRuleByModel:       true,
		keepTimestampsInAudio: true,
		promptMargin:          1,
		guard:                 true,
		coverage:              true,
		retimeToWords:         true,
		promptBelow:           math.Inf(1),
		resetAbove:            0.5,
		minFrames:             -1,
		retry:                 openaiRetry,
		silent:                openaiSilent,
		skipSilent:            true,
		segmenter:             openaiSegmenter{},
	}
	cppRules = rules{
		compat:                CompatWhisperCpp,
		repeatTimestamps:      true,
		suppressSpecials:      true,
		maskTimestampsWhenOff: true,
		sampleMargin:          4,
		noSpeechAtPromptEnd:   true,
		scaleFirst:            true,
		tracked:               true,
		promptBelow:           0.5,
		resetAbove:            math.Inf(1),
		historyOfDecoder:      true,
		tailFrames:            500,
		minFrames:             10,
		melPadSilence:         true,
		distilNoTimestamps:    true,
		retry:                 cppRetry,
		silent:                cppSilent,
		segmenter:             cppSegmenter{},
	}
)

// rulesFor returns the rules of c (checked by Options.check).
func rulesFor(c Compat) *rules {
	if c == CompatWhisperCpp {
		return &cppRules
	}
	return &openaiRules
}

// massRule reports whether a model of architecture arch and configuration c decodes with the
// timestamp mass rule under these rules.
func (r *rules) massRule(arch string, c weights.Config) bool {
	return !r.massRuleByModel || timestampMassRule(arch, c)
}

// timestampsOff reports whether these rules decode a model of configuration c without
// timestamps whatever the options say (whisper.cpp's first-release distilled models: 2 decoder
// layers and a vocabulary other than large-v3's 51,866 tokens).
func (r *rules) timestampsOff(c weights.Config) bool {
	return r.distilNoTimestamps && c.NTextLayer == 2 && c.NVocab != 51866
}

// openaiRetry is the reference's decode_with_fallback test: the text compresses too well (a
// loop) or its tokens are improbable, unless the window is silence (no-speech probable and
// tokens improbable).
func openaiRetry(o *Options, dr *decodeResult) bool {
	fallback := dr.compressionRatio > o.CompressionRatioThreshold || dr.avgLogProb < o.LogProbThreshold
	if dr.noSpeechProb > o.NoSpeechThreshold && dr.avgLogProb < o.LogProbThreshold {
		fallback = false // silence
	}
	return fallback
}

// openaiSilent is the reference's no-speech skip: no-speech probable and the tokens not
// confidently decoded.
func openaiSilent(o *Options, dr *decodeResult) bool {
	return dr.noSpeechProb > o.NoSpeechThreshold && !(dr.avgLogProb > o.LogProbThreshold)
}

// cppRetry is whisper.cpp's fallback test: the decoding failed (time went back, or the token
// budget ran out; its token entropy is judged in finishCpp), or its tokens are improbable while
// speech is probable.
func cppRetry(o *Options, dr *decodeResult) bool {
	return dr.failed || (dr.avgLogProb < o.LogProbThreshold && dr.noSpeechProb < o.NoSpeechThreshold)
}

// cppSilent is whisper.cpp's no-speech test; a failed decoding counts as improbable.
func cppSilent(o *Options, dr *decodeResult) bool {
	avg := dr.avgLogProb
	if dr.failed {
		avg = math.Inf(-1)
	}
	return dr.noSpeechProb > o.NoSpeechThreshold && avg < o.LogProbThreshold
}
