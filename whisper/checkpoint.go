package whisper

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Checkpoint is where a transcription stands between two windows: enough to resume it there
// later, in another process (Options.Resume), with the segments so far. Options.Checkpoint
// hands one out after every window. Its binary form (MarshalBinary) is opaque and meant to be
// stored as it is (a job queue keeps it with the job).
type Checkpoint struct {
	s checkpointState
}

// checkpointState is a checkpoint's content. The fields are exported for encoding/gob only.
type checkpointState struct {
	Version int
	// Key identifies what the checkpoint is valid for: the options that decide the windows and
	// their text, and the speech regions (checkpointKey). A resume with another key starts over.
	Key [32]byte

	Next, Windows       int     // virtual sample position of the next window; windows done
	Done                float64 // seconds of the input done (the input's time at Next)
	Started, Detected   bool
	Lang                string
	History             []int
	ResetSince          int
	PrevSpeech, PrevEnd float64
	GuardLast           string
	GuardRun            int
	Language            string
	LanguageProbs       map[string]float64
	Segments            []Segment
	Removed             []Removal
	// The coverage ledger (coverage.go): its gaps and the retry in progress. A checkpoint
	// without them (an older one) resumes with none.
	Gaps        []Gap
	RetryAt     float64
	RetryStage  int
	RetryReason string
	Retries     int
	RetryEnd    float64
	RetryNext   int
	Held        []Segment // the first attempt's segments after the stretch ...
	HeldAll     [][]int   // ... and their tokens for the prompt history
}

const checkpointVersion = 1

// Done is how far into the input the checkpoint is, in seconds of the input.
func (c *Checkpoint) Done() float64 { return c.s.Done }

// Windows is how many windows were decoded before the checkpoint.
func (c *Checkpoint) Windows() int { return c.s.Windows }

// Segments is how many segments the transcript had at the checkpoint.
func (c *Checkpoint) Segments() int { return len(c.s.Segments) }

// SegmentsFrom returns a copy of the transcript's segments from the i-th on, at the checkpoint
// (the ones a window added since an earlier checkpoint with i segments).
func (c *Checkpoint) SegmentsFrom(i int) []Segment {
	if i < 0 || i >= len(c.s.Segments) {
		return nil
	}
	return slices.Clone(c.s.Segments[i:])
}

// MarshalBinary encodes the checkpoint.
func (c *Checkpoint) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&c.s); err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return b.Bytes(), nil
}

// UnmarshalBinary decodes a checkpoint encoded by MarshalBinary.
func (c *Checkpoint) UnmarshalBinary(data []byte) error {
	var s checkpointState
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return fmt.Errorf("decode checkpoint: %w", err)
	}
	if s.Version != checkpointVersion {
		return fmt.Errorf("decode checkpoint: version %d, want %d", s.Version, checkpointVersion)
	}
	c.s = s
	return nil
}

// ErrCheckpoint is returned (wrapped) when Options.Resume was taken for other options, another
// model or other speech regions.
var ErrCheckpoint = errors.New("checkpoint does not match this transcription")

// checkpointKey hashes what decides an input's windows and their text besides the audio: the
// options (their JSON form, which lists every setting that changes an output), the model's
// shape and the speech regions.
func (in *input) checkpointKey() ([32]byte, error) {
	h := sha256.New()
	opts, err := in.opts.MarshalJSON()
	if err != nil {
		return [32]byte{}, err
	}
	h.Write(opts)
	fmt.Fprintf(h, "|%s|%+v|", in.m.Arch, in.m.Config)
	var b [8]byte
	for _, s := range in.opts.SpeechRegions {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(s.Start))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(s.End))
		h.Write(b[:])
	}
	if in.opts.SpeechRegions == nil {
		h.Write([]byte("no regions"))
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k, nil
}

// checkpoint is the input's state now, after a step's windows were added; w is the last of them.
func (in *input) checkpoint(w *window) (*Checkpoint, error) {
	key, err := in.checkpointKey()
	if err != nil {
		return nil, err
	}
	s := checkpointState{
		Version: checkpointVersion, Key: key,
		Next: in.v, Windows: in.windows, Started: in.started, Detected: in.detected, Lang: in.lang,
		History: in.history, ResetSince: in.resetSince, PrevSpeech: in.prevV.speech, PrevEnd: in.prevV.end,
		Language: in.res.Language, LanguageProbs: in.res.LanguageProbs,
		Segments: in.res.Segments, Removed: in.res.Removed, Gaps: in.res.Gaps,
		RetryAt: in.retry.at, RetryStage: in.retry.stage, RetryReason: in.retry.reason, Retries: in.res.Retries,
	}
	if in.v >= w.v1 {
		s.Done = w.tm.seconds(len(w.samples), true)
	} else {
		s.Done = w.tm.seconds(in.v-w.v0, false)
	}
	if in.guard != nil {
		s.GuardLast, s.GuardRun = in.guard.last, in.guard.lastRun
	}
	s.RetryEnd, s.RetryNext = in.retry.end, in.retry.next
	for _, p := range in.retry.held {
		s.Held, s.HeldAll = append(s.Held, p.seg), append(s.HeldAll, p.all)
	}
	// A deep copy through the encoding, so that later windows do not change it.
	c := &Checkpoint{s: s}
	data, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := &Checkpoint{}
	if err := out.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return out, nil
}

// resume restores the input's state from c (Options.Resume) and moves its reader to the next
// window, reading and dropping the audio before it.
func (in *input) resume(c *Checkpoint) error {
	key, err := in.checkpointKey()
	if err != nil {
		return err
	}
	s := c.s
	if s.Key != key {
		return fmt.Errorf("resume: %w", ErrCheckpoint)
	}
	in.v, in.windows, in.started, in.detected = s.Next, s.Windows, s.Started, s.Detected
	in.history, in.resetSince = s.History, s.ResetSince
	in.prevV = prevSpeech{speech: s.PrevSpeech, end: s.PrevEnd}
	in.res.Language, in.res.LanguageProbs = s.Language, s.LanguageProbs
	in.res.Segments, in.res.Removed, in.res.Gaps = s.Segments, s.Removed, s.Gaps
	in.retry = retryState{at: s.RetryAt, stage: s.RetryStage, reason: s.RetryReason, end: s.RetryEnd, next: s.RetryNext}
	if len(s.HeldAll) != len(s.Held) {
		return fmt.Errorf("resume: %w: held segments without their tokens", ErrCheckpoint)
	}
	for i, seg := range s.Held {
		in.retry.held = append(in.retry.held, pending{seg: seg, all: s.HeldAll[i]})
	}
	in.res.Retries = s.Retries
	if s.Lang != "" {
		if err := in.setLanguage(s.Lang); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	if in.guard != nil {
		in.guard.last, in.guard.lastRun = s.GuardLast, s.GuardRun
	}
	if err := in.rd.seek(in.v); err != nil {
		return fmt.Errorf("resume at %.2fs: %w", s.Done, err)
	}
	return nil
}
