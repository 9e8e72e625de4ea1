package vad

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Options are the segmentation parameters, with whisper.cpp's defaults in [DefaultOptions]. The
// zero Options means the defaults.
type Options struct {
	// Threshold: a frame with probability >= Threshold is speech. In (0, 1); default 0.5.
	Threshold float32 `json:"threshold"`
	// NegThreshold: inside speech, a frame below it counts towards silence. 0 means
	// Threshold - 0.15 (at least 0.01).
	NegThreshold float32 `json:"neg_threshold"`
	// MinSpeechDuration: shorter segments are dropped. Default 250 ms.
	MinSpeechDuration time.Duration `json:"min_speech_duration_ns"`
	// MinSilenceDuration: silence must last this long to end a segment. Default 100 ms.
	MinSilenceDuration time.Duration `json:"min_silence_duration_ns"`
	// MaxSpeechDuration: longer speech is split, at a silence of at least 98 ms when there was
	// one, else hard. 0 means no limit (the default).
	MaxSpeechDuration time.Duration `json:"max_speech_duration_ns"`
	// SpeechPad is added to both ends of each segment (half the gap when segments are closer
	// than twice this). Default 30 ms.
	SpeechPad time.Duration `json:"speech_pad_ns"`
	// SamplesOverlap is for the caller that splices the speech together for transcription:
	// whisper.cpp keeps this much audio past the end of each segment but the last. Segmentation
	// itself does not use it. Default 100 ms.
	SamplesOverlap time.Duration `json:"samples_overlap_ns"`
}

// DefaultOptions returns whisper.cpp's default VAD parameters (whisper_vad_default_params).
func DefaultOptions() Options {
	return Options{
		Threshold:          0.5,
		MinSpeechDuration:  250 * time.Millisecond,
		MinSilenceDuration: 100 * time.Millisecond,
		SpeechPad:          30 * time.Millisecond,
		SamplesOverlap:     100 * time.Millisecond,
	}
}

// ErrOptions is returned for options out of range.
var ErrOptions = errors.New("invalid vad options")

// Segment is a span of speech in seconds from the start of the audio.
type Segment struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Rules that are constants in the reference.
const (
	// mergeGap: segments closer than this are merged (whisper.cpp).
	mergeGap = 200 * time.Millisecond
	// maxSpeechSilence: a silence this long is a place to split speech longer than
	// MaxSpeechDuration (Silero's get_speech_timestamps).
	maxSpeechSilence = 98 * time.Millisecond
)

func samplesOf(d time.Duration) int { return int(d * SampleRate / time.Second) }

func (o Options) withDefaults() (Options, error) {
	if o == (Options{}) {
		o = DefaultOptions()
	}
	if !(o.Threshold > 0 && o.Threshold < 1) {
		return o, fmt.Errorf("threshold %g, want 0 < threshold < 1: %w", o.Threshold, ErrOptions)
	}
	if o.NegThreshold == 0 {
		o.NegThreshold = max(o.Threshold-0.15, 0.01)
	}
	if !(o.NegThreshold > 0 && o.NegThreshold <= o.Threshold) {
		return o, fmt.Errorf("negative threshold %g, want 0 < it <= threshold %g: %w", o.NegThreshold, o.Threshold, ErrOptions)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"min speech duration", o.MinSpeechDuration}, {"min silence duration", o.MinSilenceDuration},
		{"max speech duration", o.MaxSpeechDuration}, {"speech pad", o.SpeechPad}, {"samples overlap", o.SamplesOverlap},
	} {
		if d.v < 0 || d.v > 100*time.Hour {
			return o, fmt.Errorf("%s %v, want 0..100h: %w", d.name, d.v, ErrOptions)
		}
	}
	return o, nil
}

// SegmentsFromProbs turns per-frame speech probabilities (one per 512 samples at 16 kHz) into
// speech segments with the rules of whisper.cpp's whisper_vad_segments_from_probs: hysteresis
// between Threshold and NegThreshold, a minimum silence to end and a minimum length to keep a
// segment, splitting at MaxSpeechDuration, merging gaps under 200 ms, and padding. The audio is
// taken to be len(probs) whole frames long. It returns ErrOptions for options out of range.
func SegmentsFromProbs(probs []float32, opts Options) ([]Segment, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	const window = 512
	var (
		minSilence        = samplesOf(o.MinSilenceDuration)
		minSpeech         = samplesOf(o.MinSpeechDuration)
		pad               = samplesOf(o.SpeechPad)
		audioLen          = len(probs) * window
		maxSpeech         = math.MaxInt / 2
		minSilenceAtSplit = samplesOf(maxSpeechSilence)
	)
	if o.MaxSpeechDuration > 0 {
		if v := samplesOf(o.MaxSpeechDuration) - window - 2*pad; v > 0 {
			maxSpeech = v
		}
	}

	type span struct{ start, end int }
	var speech []span
	var (
		inSpeech bool
		// Sample positions; 0 means unset, as in the reference (no speech ends at sample 0).
		tempEnd, prevEnd, nextStart int
		start                       int
		open                        bool // a segment is open that the end of the audio closes
	)
	for i, p := range probs {
		cur := i * window
		if p >= o.Threshold && tempEnd != 0 {
			tempEnd = 0
			if nextStart < prevEnd {
				nextStart = cur
			}
		}
		if p >= o.Threshold && !inSpeech {
			inSpeech, start, open = true, cur, true
			continue
		}
		if inSpeech && cur-start > maxSpeech {
			if prevEnd != 0 {
				speech = append(speech, span{start, prevEnd})
				open = true
				if nextStart < prevEnd { // silence since prevEnd, still not speech
					inSpeech, open = false, false
				} else {
					start = nextStart
				}
				prevEnd, nextStart, tempEnd = 0, 0, 0
			} else {
				speech = append(speech, span{start, cur})
				prevEnd, nextStart, tempEnd = 0, 0, 0
				inSpeech, open = false, false
				continue
			}
		}
		if p < o.NegThreshold && inSpeech {
			if tempEnd == 0 {
				tempEnd = cur
			}
			if cur-tempEnd > minSilenceAtSplit {
				prevEnd = tempEnd
			}
			if cur-tempEnd < minSilence {
				continue
			}
			if tempEnd-start > minSpeech {
				speech = append(speech, span{start, tempEnd})
			}
			prevEnd, nextStart, tempEnd = 0, 0, 0
			inSpeech, open = false, false
		}
	}
	if open && audioLen-start > minSpeech {
		speech = append(speech, span{start, audioLen})
	}

	// Merge segments separated by short gaps.
	gap := samplesOf(mergeGap)
	merged := speech[:0]
	for _, s := range speech {
		if n := len(merged); n > 0 && s.start-merged[n-1].end < gap {
			merged[n-1].end = s.end
			continue
		}
		merged = append(merged, s)
	}
	// Drop what is still too short.
	speech = merged[:0]
	for _, s := range merged {
		if s.end-s.start >= minSpeech {
			speech = append(speech, s)
		}
	}

	// Pad: the full pad where the gap allows, else half the gap to each side.
	for i := range speech {
		if i == 0 {
			speech[i].start = max(speech[i].start-pad, 0)
		}
		if i+1 < len(speech) {
			silence := speech[i+1].start - speech[i].end
			if silence < 2*pad {
				speech[i].end += silence / 2
				speech[i+1].start = max(speech[i+1].start-silence/2, 0)
			} else {
				speech[i].end = min(speech[i].end+pad, audioLen)
				speech[i+1].start = max(speech[i+1].start-pad, 0)
			}
		} else {
			speech[i].end = min(speech[i].end+pad, audioLen)
		}
	}
	segs := make([]Segment, len(speech))
	for i, s := range speech {
		segs[i] = Segment{Start: float64(s.start) / SampleRate, End: float64(s.end) / SampleRate}
	}
	return segs, nil
}
