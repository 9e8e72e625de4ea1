package whisper

import (
	"sync"
	"time"
)

// Where the long-form driver's wall time goes: a phaseClock on the model (TimePhases, used by
// bench --e2e --decode default and the CLI's -v) counts each phase of a batch.

// Phase is one part of a long-form run's wall time (Timing.Phases).
type Phase struct {
	Name    string
	Seconds float64
}

// The phases a phaseClock counts. Words and forced are parts of settle: word timing, and its
// forced passes on the device within it. Where a batch's steps settle in parallel (no arena:
// batcher.settle), words and forced add up every step's time, and can exceed settle's.
const (
	phaseGather = iota // reading the inputs' next windows (the batcher's gather)
	phaseMel           // the batch's log-mel
	phaseEncode        // the encoder, the device's queue drained at its end
	phaseDetect        // language detection and each window's plan
	phaseDecode        // decodeTasks, every round (the fallback's too)
	phaseSettle        // segments, the guard, word timing, the coverage check
	phaseWords         // word timing (within settle)
	phaseForced        // word timing's forced passes (within words)
	nPhases
)

var phaseNames = [nPhases]string{"gather", "log-mel", "encode", "detect+plan", "decode", "settle", "words", "forced passes"}

// phaseClock, set on a model by TimePhases (BenchDefault, the CLI's -v), splits the long-form
// driver's wall time by phase. The encoder's phase ends with a Sync so that its device time is its own; the others
// end by reading their results back already. A nil clock counts nothing. The driver's lanes
// (TranscribeQueue) count into one clock, each its own phases, so that with several lanes the
// phases add up to more than the wall time.
type phaseClock struct {
	mu    sync.Mutex
	d     [nPhases]time.Duration
	steps stepTimes // decode's steps: recording their ops, then waiting for and reading the picks
	// decoder sessions (decodeBatch: one a group of tasks decoded together) and their windows
	sessions, windows int
	// windows through the encoder, and windows whose encoder output was kept from an earlier
	// batch instead (batcher.stash)
	encoded, reused int
	lanes           int // the most lanes a run had (TranscribeQueue)
	// forcedPasses in forcedBatches: word timing's forced passes (Timing)
	forcedPasses, forcedBatches int
}

// start is the time a phase starts (zero for a nil clock: no clock read).
func (c *phaseClock) start() time.Time {
	if c == nil {
		return time.Time{}
	}
	return time.Now()
}

// stop counts phase p from t0 to now and returns now, the next phase's start.
func (c *phaseClock) stop(p int, t0 time.Time) time.Time {
	if c == nil {
		return time.Time{}
	}
	now := time.Now()
	c.add(p, now.Sub(t0))
	return now
}

// add counts d in phase p (a negative d takes it out).
func (c *phaseClock) add(p int, d time.Duration) {
	c.mu.Lock()
	c.d[p] += d
	c.mu.Unlock()
}

// ran notes a run of lanes lanes.
func (c *phaseClock) ran(lanes int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.lanes = max(c.lanes, lanes)
	c.mu.Unlock()
}

// encodings counts a batch's windows encoded and reused (a nil clock counts nothing).
func (c *phaseClock) encodings(encoded, reused int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.encoded += encoded
	c.reused += reused
	c.mu.Unlock()
}

// forced counts a batch of passes of word timing's forced passes (1: a pass alone).
func (c *phaseClock) forced(passes int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.forcedBatches++
	c.forcedPasses += passes
	c.mu.Unlock()
}

// session counts a decoder session of windows windows.
func (c *phaseClock) session(windows int) {
	c.mu.Lock()
	c.sessions++
	c.windows += windows
	c.mu.Unlock()
}

// Timing is where a model's long-form runs spent their wall time, phase by phase of the
// driver (Model.TimePhases): reading the inputs' windows (gather), their log-mel, encoding,
// detection and planning, decoding (its steps' recording and waiting for the picks), and
// settling (segments, the guard, word timing and its forced passes), with the decoder's sessions
// (each decodes its windows' tasks together) and steps (each with its sequences: a window at
// beam 5 is 5).
type Timing struct {
	Phases                                    []Phase
	Sessions, SessionWindows, Steps, StepRows int
	// Encoded is the windows that went through the encoder (language detection's included),
	// Reused those whose encoder output detection had kept instead.
	Encoded, Reused int
	// Lanes is the most lanes a run had (ManyOptions.Lanes). Each lane counts its own phases,
	// so with several the phases add up to more than the wall time.
	Lanes int
	// ForcedPasses is word timing's forced passes (a window each), run in ForcedBatches decoder
	// passes (forcedQueue; one each when they run alone).
	ForcedPasses, ForcedBatches int
}

// TimePhases starts timing m's long-form runs (TranscribeQueue) by phase and returns the
// function that stops and tells what was timed. It adds a Sync after each batch's encoding, so
// that the encoder's device time is its own phase. Like the model, it is for one goroutine.
func (m *Model) TimePhases() (stop func() Timing) {
	c := &phaseClock{}
	m.clock = c
	return func() Timing {
		if m.clock == c {
			m.clock = nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return Timing{Phases: c.phases(), Sessions: c.sessions, SessionWindows: c.windows, Steps: c.steps.steps, StepRows: c.steps.rows,
			Encoded: c.encoded, Reused: c.reused, Lanes: c.lanes, ForcedPasses: c.forcedPasses, ForcedBatches: c.forcedBatches}
	}
}

// phases lists the clock's phases in order, then decode's split (record, pick).
func (c *phaseClock) phases() []Phase {
	out := make([]Phase, 0, nPhases+2)
	for p, d := range c.d {
		out = append(out, Phase{phaseNames[p], d.Seconds()})
	}
	return append(out, Phase{"decode: record", c.steps.record.Seconds()}, Phase{"decode: pick", c.steps.read.Seconds()})
}
