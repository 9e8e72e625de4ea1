package whisper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// This file is the one long-form driver, and TranscribeQueue its one entry: every transcription
// goes through it, the pipeline's files and a test's single input alike. Per input (input.go)
// it reads windows from the speech timeline, plans their prompts, and turns decoded windows into
// segments with the input's rules (compat.go); across inputs (the batcher) it encodes the
// windows of a batch together and decodes their tasks together (decodeTasks), first passes and
// temperature fallbacks alike.

// Job is one input of [TranscribeQueue].
type Job struct {
	// Name names the job in its error (a file's path, say); "" leaves the error as it is.
	Name string
	// Options are the job's own settings: language, task, prompt, speech regions, fallback,
	// rules, window mode, progress callback.
	Options Options
	// Source is the job's audio. When it is nil, Open gets it once the job starts, so that only
	// the jobs in progress hold their audio (and, for a decoder process, their resources).
	Source AudioSource
	// Open, used when Source is nil, returns the job's audio and may complete its options (speech
	// regions from a first pass over the input, a progress callback). An error ends this job
	// alone. It is called from the transcribing goroutine, in job order.
	Open func(ctx context.Context, opts *Options) (AudioSource, error)
	// Done, if not nil, is called once when the job ends, with its result or its error, from the
	// transcribing goroutine; after it the job's source is not read again (close it here). It is
	// called for every job that started, including after ctx is cancelled.
	Done func(res *Result, err error)
	// Ctx, if not nil, is the job's own context: when it ends, the job ends with its error before
	// its next windows are decoded (within a batch), and the other jobs go on.
	Ctx context.Context
}

// ManyOptions control how [TranscribeQueue] batches the jobs' windows.
type ManyOptions struct {
	// BatchSize is the most windows encoded together and decoded together (each window's beams,
	// or best-of candidates, with it: a decoder batch of 8 windows at beam 5 is 40 sequences),
	// taken from all the jobs in progress.
	// 0 picks defaultBatch's: 64 on a backend that reports its free memory (CUDA), 8 on other
	// backends whose Capabilities are Batched (Metal), 1 on the CPU. Where the backend reports
	// its free memory (tensor.MemoryReporter) the batch is reduced, if need be, to what it holds
	// with beam search 5 (and a decoder batch to as many sequences). It sizes batches only: the
	// algorithm is the jobs' Options.Windows.
	BatchSize int
	// Notice, if set, is told when the run changes these options, and why (a batch reduced to
	// fit the device's free memory).
	Notice func(msg string)
	// Lanes is how many batchers share the model, each with its own jobs and a share of
	// BatchSize, so that one's host work (reading windows, the beams' bookkeeping between
	// decoder steps, segments, word timing) runs while the device computes another's batch.
	// They take the device in turn (a lane holds it for its encoding, each decoder step and its
	// word timing). 0 or 1: one lane, the default (two measured slower on an H200: a lane's
	// share of the batch takes as many decoder steps as the whole; docs/performance.md). A
	// model with an arena (the CPU) always runs one.
	Lanes int
	// ForcedAlone runs word timing's forced passes one window at a time, as before 2026-12-07,
	// instead of batched: the passes of the steps that settle at once run as one decoder pass
	// (forcedQueue; a model with an arena settles one step at a time, so alone). For
	// measurement (bench --forced-alone); the results agree up to the rounding of the larger
	// products.
	ForcedAlone bool
	// EncodeChunk is how many windows of a batch a GPU encodes at a time (the host reads the
	// next chunk's samples while the device encodes this one); 0: encodeChunk. For measurement
	// (bench --encode-chunk).
	EncodeChunk int
}

// TranscribeQueue transcribes the jobs taken from next, called when a batch has room for another
// job until it reports false; every job taken ends with a call to its Done. An input is read
// as it is transcribed, a few windows at a time, so memory does not grow with its length;
// progress's total is its source's length if the source has a method Len() int (samples),
// else the end of its last speech region, else 0. A batch takes
// windows from as many jobs in progress as it needs, so many short inputs fill the batch that
// one of them alone would leave at one window. Each job keeps its own settings, fallback and
// result: where decoding is deterministic (greedy or beam search at temperature 0) it is what
// the job gives alone, up to the backend's rounding where a batch mixes windows; sampling draws
// from a generator of the job's seed and the window, so it does not depend on the batching
// either.
//
// Jobs start in order and only as the batches need them; each holds a few windows of audio, so
// memory does not grow with the number or length of the inputs. One job's failure (unreadable
// audio, bad options, a decoding error) ends that job alone. TranscribeQueue returns an error for
// a nil model, else ctx.Err(): when ctx ends the run, every job in progress fails with ctx's
// error, next is not called again, and the jobs it would have given are not started. m is used
// by the run's lanes (ManyOptions.Lanes) only, one at a time on the device; next, and each
// job's Open, Done, Progress and Checkpoint, are never called concurrently.
func TranscribeQueue(ctx context.Context, m *Model, next func() (Job, bool), opts ManyOptions) error {
	if m == nil {
		return errNoModel
	}
	size := opts.BatchSize
	if size <= 0 {
		size = defaultBatch(m.Backend())
	}
	chunk := cmp.Or(max(0, opts.EncodeChunk), encodeChunk)
	if fit, free := m.fitBatch(size, batchRows, chunk); fit < size {
		if opts.Notice != nil {
			opts.Notice(fmt.Sprintf("batch of %d windows reduced to %d: %.1f GB of device memory free, %.0f MB a window with beam search %d beside %.0f MB for the encoder",
				size, fit, float64(free)/1e9, float64(m.windowBytes(batchRows))/1e6, batchRows, float64(m.encoderBytes(min(chunk, size)))/1e6))
		}
		size = fit
	}
	lanes := opts.Lanes
	if m.ar != nil {
		lanes = 1 // the arena is the encoder's scratch and the caches in turn: one batch at a time
	}
	lanes = max(1, min(lanes, size))
	m.clock.ran(lanes)
	// Each lane its share of the batch; the jobs taken in turn (next and Open under jobs, in
	// job order); with several lanes, or a model without an arena (whose batches settle their
	// steps in parallel), the device and the jobs' callbacks under a lock each.
	var jobs, dev, calls sync.Mutex
	ended := false // next reported false
	var wg sync.WaitGroup
	for i := range lanes {
		n := size/lanes + min(1, max(0, size%lanes-i))
		b := &batcher{ctx: ctx, m: m, size: n, rows: n * batchRows, lane: i, forcedAlone: opts.ForcedAlone,
			chunk: chunk}
		if lanes > 1 || m.ar == nil {
			b.dev, b.calls = &dev, &calls // lanes, or settle's steps in parallel (batcher.settle)
		}
		b.more = func() bool {
			jobs.Lock()
			defer jobs.Unlock()
			for !ended && ctx.Err() == nil {
				j, ok := next()
				if !ok {
					ended = true
					return false
				}
				if b.start(j) {
					return true
				}
			}
			return false
		}
		if lanes == 1 {
			b.run()
			break
		}
		wg.Go(b.run)
	}
	wg.Wait()
	return ctx.Err()
}

var errNoModel = errors.New("whisper: nil model")

// defaultBatch is 64 on a backend that reports its free memory (the batch is then fitted to it),
// 8 on other backends whose ops batch efficiently, and 1 on the CPU (where a batch costs the
// same per window and holds more memory). On an H100, 64 windows of beam search (320 sequences
// a decoder step) took bench --e2e --decode default from 1,980x to 2,270x for large-v3-turbo
// and from 700x to 870x for large-v3 against 32 (docs/performance.md, 2026-12-07 midday): a
// step of the decoder costs little more for twice the rows. A batch takes windows from as many
// files as are in progress, so fewer files than the batch run as before.
func defaultBatch(b tensor.Backend) int {
	if b == nil || !b.Capabilities().Batched || b.Name() == "cpu" {
		return 1
	}
	if _, ok := b.(tensor.MemoryReporter); ok {
		return 64
	}
	return 8
}

// batchRows is the number of decoder sequences a window's memory is counted for: the default
// beam search's (and best-of's) 5.
const batchRows = 5

// named prefixes err with name, if any.
func named(name string, err error) error {
	if name == "" || err == nil {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// observeBatch, if set (by tests), sees every batch's steps before it is encoded, and the lane
// that runs it (0 without lanes); the function it returns, if any, is called when the batch ends.
var observeBatch func(lane int, steps []*step) (end func())

// observeSettle, if set (by tests), is called as each step's settle starts; the function it
// returns as it ends.
var observeSettle func() (end func())

// faultWindow, if set (by tests, and by builds with the tag verbatim_faults: faults.go), makes
// the decoding of a window end at once, as a model that returns no text would, when it reports
// true for the window's span in the input (seconds) and its coverage retry (0: none,
// retryNoPrompt...).
var faultWindow func(start, end float64, retry int) bool

// batcher runs inputs together: each batch takes windows from the inputs in progress, oldest
// first, encodes them as one, decodes their tasks together, and hands each input its results.
type batcher struct {
	ctx  context.Context // the run loop's, owned here for its duration
	m    *Model
	size int // the most windows of a batch (an input's detection windows may exceed it alone)
	rows int // the most sequences of a decoder batch (a task's may exceed it alone)
	// more starts another input (start) and reports whether it did; nil: no more inputs.
	more    func() bool
	act     []*active
	mels    []float32 // the last chunk's log-mel buffer, reused (GPU backends)
	samples []float32 // the last chunk's samples for log-mel on the device (deviceMels), reused
	// detectOnly: the batch gather made is language detection only (inputs wait for it), so
	// no input decodes its first window from it (follow)
	detectOnly bool
	// dev and calls, with several lanes (TranscribeQueue): the device, which a lane holds for
	// its work there (hold), and the jobs' callbacks, never called concurrently; nil with one.
	dev, calls *sync.Mutex
	lane       int // the lane's index
	// forcedAlone: word timing's forced passes one window at a time (ManyOptions.ForcedAlone)
	forcedAlone bool
	chunk       int // windows encoded at a time (ManyOptions.EncodeChunk)
	// stash holds, for inputs detected in a batch of detection only, or whose first detection
	// window left detection unsure (detectSure), the encoder output of that first detection
	// window, which is the audio of the input's first window to decode: the batch
	// that decodes it copies it instead of encoding the window again (encodeFrom's pre). Without
	// it the 32 inputs of bench --e2e --decode default encoded 30 of their 414 windows twice.
	stash map[*input]stashed
}

// noStash, set by tests, encodes the stashed windows again (the way before the stash).
var noStash bool

// stashed is an encoder output kept for an input's window [v0, v1) (virtual samples).
type stashed struct {
	v0, v1 int
	out    *tensor.Tensor
}

// keep stashes the encoder output of detection step st's first window (in enc) when the input's
// next window is the same audio (it starts where detection's first did, nothing decoded yet).
func (b *batcher) keep(enc *Encoded, st *step) {
	w := st.ws[0]
	if enc.Out == nil || st.in.started || st.in.v != w.v0 {
		return
	}
	c := b.m.Config
	defer held(b.dev)()
	t := b.m.b.Alloc(tensor.F32, 1, c.NAudioCtx, c.NAudioState)
	b.m.b.Copy(t, enc.Out.Slice(st.at, st.at+1))
	if b.stash == nil {
		b.stash = map[*input]stashed{}
	}
	b.drop(st.in)
	b.stash[st.in] = stashed{w.v0, w.v1, t}
}

// drop frees in's stashed encoder output, if any.
func (b *batcher) drop(in *input) {
	if s, ok := b.stash[in]; ok {
		b.m.b.Free(s.out)
		delete(b.stash, in)
	}
}

// held takes the device where lanes share it (mu: their lock) and returns the function that
// gives it back; without lanes (nil) both do nothing. A lane holds the device for an encoding
// (the next chunk's log-mel included, computed while the device encodes the one before), each
// decoder call (Session), a detection's and a forced pass's decoding, and a release of device
// memory; not for the host work between them.
func held(mu *sync.Mutex) (release func()) {
	if mu == nil {
		return func() {}
	}
	mu.Lock()
	return mu.Unlock
}

// serially runs f under the lanes' callback lock (directly without lanes).
func (b *batcher) serially(f func()) {
	if b.calls != nil {
		b.calls.Lock()
		defer b.calls.Unlock()
	}
	f()
}

// active is an input in progress.
type active struct {
	in    *input
	done  func(*Result, error)
	ctx   context.Context // the job's own (Job.Ctx), or nil
	ended bool
}

// start opens job j and puts it in progress, or ends it with its error (false).
func (b *batcher) start(j Job) bool {
	done := func(res *Result, err error) {
		if j.Done != nil {
			b.serially(func() { j.Done(res, named(j.Name, err)) })
		}
	}
	in, err := b.open(j)
	if err != nil {
		done(nil, err)
		return false
	}
	b.act = append(b.act, &active{in: in, done: done, ctx: j.Ctx})
	return true
}

func (b *batcher) open(j Job) (in *input, err error) {
	defer tensor.Catch(&err)
	o := j.Options
	src := j.Source
	if src == nil {
		if j.Open == nil {
			return nil, errors.New("transcribe: job without audio")
		}
		if src, err = j.Open(b.ctx, &o); err != nil {
			return nil, err
		}
		if src == nil {
			return nil, errors.New("transcribe: job without audio")
		}
	}
	if p := o.Progress; p != nil && b.calls != nil {
		o.Progress = func(done, total time.Duration) { b.serially(func() { p(done, total) }) }
	}
	if c := o.Checkpoint; c != nil && b.calls != nil {
		o.Checkpoint = func(cp *Checkpoint) { b.serially(func() { c(cp) }) }
	}
	if in, err = newInput(b.m, src, sourceLen(src), &o); err != nil {
		return nil, err
	}
	in.dev = b.dev
	return in, nil
}

// sourceLen is src's length in samples if it tells it (a method Len() int), else -1.
func sourceLen(src AudioSource) int {
	if l, ok := src.(interface{ Len() int }); ok {
		return l.Len()
	}
	return -1
}

// run transcribes until every input has ended.
func (b *batcher) run() {
	defer b.dropEnded()
	for {
		if len(b.act) == 0 && !b.start1() {
			return
		}
		if err := b.ctx.Err(); err != nil {
			for _, a := range b.act {
				if !a.ended {
					a.end(nil, fmt.Errorf("transcribe: %w", err))
				}
			}
			return
		}
		for _, a := range b.act { // a job cancelled on its own ends alone
			if a.ctx != nil && !a.ended && a.ctx.Err() != nil {
				a.end(nil, fmt.Errorf("transcribe: %w", context.Cause(a.ctx)))
			}
		}
		b.act = slices.DeleteFunc(b.act, func(a *active) bool { return a.ended })
		t := b.m.clock.start()
		steps := b.gather()
		b.m.clock.stop(phaseGather, t)
		if len(steps) > 0 {
			b.batch(steps)
		}
		b.dropEnded()
		b.act = slices.DeleteFunc(b.act, func(a *active) bool { return a.ended })
	}
}

// dropEnded frees the stashed encoder outputs of the inputs that ended (all of them once the run
// has).
func (b *batcher) dropEnded() {
	if len(b.stash) == 0 {
		return
	}
	live := map[*input]bool{}
	for _, a := range b.act {
		if !a.ended {
			live[a.in] = true
		}
	}
	defer held(b.dev)()
	for in := range b.stash {
		if !live[in] {
			b.drop(in)
		}
	}
}

// end ends a with its result or error.
func (a *active) end(res *Result, err error) {
	a.ended = true
	if err != nil {
		res = nil
	}
	a.done(res, err)
}

// step is one input's windows in a batch: where they sit in the batch's encoder output, how each
// is decoded (language, SOT sequence, prompt history) and what came out.
type step struct {
	in     *input
	ws     []*window
	at     int  // the encoder output's window of ws[0]; ws[i] is at+i
	detect bool // the windows are for language detection only
	// detectMore: detection has windows after these, decoded only if these leave it unsure
	detectMore bool

	langs     []string
	sots      [][]int
	histories [][]int // each window's history, given as prompt where the rules allow (input.prompt)
	drs       []*decodeResult
	used      [][]int // the prompt each window's last attempt was given
	tempFrom  int     // the index of the first temperature tried (a coverage retry's fallback)
	err       error
}

// wrap names the step's windows in err.
func (st *step) wrap(err error) error {
	switch {
	case st.detect:
		return fmt.Errorf("transcribe: %w", err) // err says "detect language"
	case len(st.ws) == 1:
		return fmt.Errorf("transcribe: window at %.2fs: %w", st.ws[0].tm.seconds(0, false), err)
	}
	return fmt.Errorf("transcribe: windows at %.2fs: %w", st.ws[0].tm.seconds(0, false), err)
}

// windows lists the step's windows of the encoder output.
func (st *step) windows() []int {
	out := make([]int, len(st.ws))
	for i := range out {
		out[i] = st.at + i
	}
	return out
}

// start1 starts another input, and reports false when there are no more.
func (b *batcher) start1() bool {
	if b.more == nil || !b.more() {
		b.more = nil
		return false
	}
	return true
}

// gather reads the next batch's windows. Language detection goes first: the inputs waiting for
// it, then new inputs, started while the batch has room and fewer than size inputs are in
// progress (a sequential input decodes one window a batch, so size inputs fill a batch). Each
// detection takes its windows together, and waits for the next batch when they do not fit,
// where it goes first; while one waits so, the batch is detection only. Then each detected
// input's next step, oldest input first. So inputs started together decode together rather than
// one after another, and a new input is not held back while those decoding fill the batch. An
// input at its end finishes here.
func (b *batcher) gather() []*step {
	b.readAhead(b.act)
	var steps []*step
	n := 0
	add := func(a *active) bool {
		st := b.take(a, b.size-n, n)
		if st != nil {
			steps = append(steps, st)
			n += len(st.ws)
		}
		return st != nil
	}
	waiting := false // an input's detection waits for the next batch
	for _, a := range b.act {
		if n < b.size && !a.ended && !a.in.detected && !add(a) && !a.ended {
			waiting = true
		}
	}
	// New inputs start one at a time, as the batch's room allows; those that surely fit (at
	// most maxDetectWindows windows each, pending) read together (readAhead) before they are
	// added, so that each is started exactly when it would be if each were added at its start.
	var fresh []*active
	pending := 0
	addFresh := func() {
		b.readAhead(fresh)
		for _, a := range fresh {
			if !waiting && !add(a) && !a.ended {
				waiting = true
			}
		}
		fresh, pending = fresh[:0], 0
	}
	for !waiting {
		if n+pending >= b.size || b.inProgress() >= b.size || !b.start1() {
			if len(fresh) == 0 {
				break
			}
			addFresh()
			continue
		}
		a := b.act[len(b.act)-1]
		fresh = append(fresh, a)
		pending += maxDetectWindows
		if a.in.detected && a.in.opts.Windows == Independent {
			addFresh() // its windows fill the room there is
		}
	}
	// While inputs wait to be detected (many started together), the batch is detection only:
	// its few decoding windows would be a decoder session of their own, as many steps as a full
	// one (the 32 inputs of bench --e2e with three detection windows each: four such sessions
	// of 10 to 28 windows). The detected inputs decode together once no input waits, their first
	// windows from the stash.
	b.detectOnly = waiting
	if waiting {
		return steps
	}
	taken := len(steps)
	for _, a := range b.act {
		if n < b.size && !a.ended && a.in.detected && !slices.ContainsFunc(steps[:taken], func(st *step) bool { return st.in == a.in }) {
			add(a)
		}
	}
	return steps
}

// readAhead reads, each on a goroutine of its own (at most GOMAXPROCS at a time), what gather's
// takes will read first for those of the inputs acts that the batch has room for, in gather's
// order (those waiting for detection, then the detected): copying a window's samples out of the
// reader costs about a millisecond (1.9 MB, into new pages), some 0.5 s of a 6 s run of bench
// --e2e --decode default (32 inputs) while the device waited. The inputs' reads are independent;
// each input's reads stay in their order.
func (b *batcher) readAhead(acts []*active) {
	var ins []*input
	n := 0
	for _, detected := range []bool{false, true} {
		for _, a := range acts {
			in := a.in
			if n >= b.size || a.ended || in.detected != detected || in.ahead != nil || detected && in.opts.Windows != Sequential {
				continue
			}
			ins = append(ins, in)
			if n++; !detected {
				n += maxDetectWindows - 1
			}
		}
	}
	if len(ins) < 2 {
		return // nothing to overlap
	}
	inParallel(len(ins), func(i int) { ins[i].readAhead() })
}

// inParallel runs f(0) to f(n-1) on goroutines, at most GOMAXPROCS at a time, and returns when
// all have.
func inParallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// inProgress is the number of inputs in progress.
func (b *batcher) inProgress() int {
	k := 0
	for _, a := range b.act {
		if !a.ended {
			k++
		}
	}
	return k
}

// take reads input a's next step for a batch with room windows left, its first at encoder window
// at: its detection windows (all together, even over room when the batch is empty), or its next
// windows. It returns nil when a has nothing for this batch, or ended (at its end, or with an
// error).
func (b *batcher) take(a *active, room, at int) *step {
	in := a.in
	if a.ended {
		return nil
	}
	if err := b.ctx.Err(); err != nil {
		a.end(nil, fmt.Errorf("transcribe: %w", err))
		return nil
	}
	if !in.detected {
		part, total, err := in.detectWindows()
		if err != nil {
			a.end(nil, err)
			return nil
		}
		switch {
		case len(part) > 0:
			if at > 0 && len(part) > room {
				return nil // next batch: detection takes its windows together
			}
			return &step{in: in, ws: part, at: at, detect: true, detectMore: len(in.detectPer)+len(part) < total}
		case len(in.detectPer) > 0: // the input ended before the windows after an unsure first
			if err := in.detectFrom(nil, false); err != nil {
				a.end(nil, err)
				return nil
			}
		default:
			in.detected = true // no audio: nothing to detect
		}
	}
	ws, err := in.next(room)
	if err != nil {
		a.end(nil, err)
		return nil
	}
	if len(ws) == 0 {
		a.end(in.finish())
		return nil
	}
	return &step{in: in, ws: ws, at: at}
}

// batch encodes the steps' windows as one batch and runs each step on the output: detection, or
// planning, decoding (every step's windows together, attempt by attempt) and adding the
// segments; one sequential input's detection with an arena takes its windows one at a time
// (detectAlone). A step's error ends its input alone.
func (b *batcher) batch(steps []*step) {
	owner := make(map[*input]*active, len(b.act))
	for _, a := range b.act {
		owner[a.in] = a
	}
	fail := func(st *step, err error) {
		if st.err == nil {
			st.err = err
			owner[st.in].end(nil, st.wrap(err))
		}
	}
	if observeBatch != nil {
		var end func()
		b.serially(func() { end = observeBatch(b.lane, steps) })
		if end != nil {
			defer b.serially(end)
		}
	}
	var enc *Encoded
	var live []*step
	if st := steps[0]; b.m.ar != nil && len(steps) == 1 && st.detect && len(st.in.detectPer) == 0 && (len(st.ws) > 1 || st.detectMore) && st.in.opts.Windows == Sequential {
		enc, live = b.detectAlone(st, owner[st.in], fail)
	} else {
		enc, live = b.encodePlan(steps, owner, fail)
	}
	if enc == nil {
		return
	}
	defer func() {
		defer held(b.dev)()
		enc.Close()
	}()
	clock := b.m.clock
	t := clock.start()
	b.decode(enc, live, fail)
	t = clock.stop(phaseDecode, t)
	defer clock.stop(phaseSettle, t)
	errs := b.settle(enc, live)
	for i, st := range live {
		if st.err != nil {
			continue
		}
		if err := errs[i]; err != nil {
			fail(st, err)
			continue
		}
		if f := st.in.opts.Checkpoint; f != nil {
			c, err := st.in.checkpoint(st.ws[len(st.ws)-1])
			if err != nil {
				fail(st, err)
				continue
			}
			f(c)
		}
	}
}

// settle settles each step (input.settle) that has not failed and returns their errors. Without
// an arena the steps settle in parallel, at most GOMAXPROCS at a time: their host work (segments,
// the guard, word timing's alignment, the coverage check) is each input's own, about 0.3 s of
// CPU in a run of bench --e2e --decode default, the device waiting; word timing's forced passes
// gather in a forcedQueue and run batched (or, with forcedAlone, take the device in turn:
// input.dev), and the progress callbacks take the callbacks' lock (b.calls), which such a
// batcher always has (TranscribeQueue). Each input's steps are one goroutine's, in order. On
// the CPU, whose arena holds one input's scratch at a time, one after another.
func (b *batcher) settle(enc *Encoded, steps []*step) []error {
	errs := make([]error, len(steps))
	one := func(i int) {
		defer tensor.Catch(&errs[i])
		if observeSettle != nil {
			defer observeSettle()()
		}
		errs[i] = steps[i].in.settle(enc, steps[i])
	}
	var todo []int
	for i, st := range steps {
		if st.err == nil {
			todo = append(todo, i)
		}
	}
	if b.m.ar != nil || b.calls == nil || len(todo) < 2 {
		for _, i := range todo {
			one(i)
		}
		return errs
	}
	var q *forcedQueue
	if !b.forcedAlone {
		q = newForcedQueue(b.m, enc, b.dev)
	}
	for _, i := range todo {
		steps[i].in.forced = q
	}
	inParallel(len(todo), func(j int) {
		if q != nil {
			q.start()
			defer q.done()
		}
		one(todo[j])
	})
	for _, i := range todo {
		steps[i].in.forced = nil
	}
	return errs
}

// encodePlan encodes the steps' windows as one batch and runs each step on the output: a
// detection step detects its input's language and is followed, in this batch, by its input's
// first windows (follow); the others are planned. It returns the output and the steps to decode,
// or nil when the encoding failed (every step failed).
func (b *batcher) encodePlan(steps []*step, owner map[*input]*active, fail func(*step, error)) (*Encoded, []*step) {
	var ins []*input
	var ws []*window
	for _, st := range steps {
		for _, w := range st.ws {
			ins, ws = append(ins, st.in), append(ws, w)
		}
	}
	clock := b.m.clock
	t := clock.start()
	release := held(b.dev)
	enc, err := b.encode(ins, ws)
	if err == nil && clock != nil {
		err = b.m.b.Sync() // the encoder's device time counts as encoding's
	}
	if err != nil {
		enc.Close()
	}
	release()
	t = clock.stop(phaseEncode, t)
	if err != nil {
		for _, st := range steps {
			if st.detect {
				fail(st, fmt.Errorf("detect language: %w", err))
			} else {
				fail(st, err)
			}
		}
		return nil, nil
	}
	defer clock.stop(phaseDetect, t)
	var live []*step
	for _, st := range steps {
		if st.detect {
			err = st.in.detectIn(enc, st)
			if err == nil && (b.detectOnly || !st.in.detected) {
				b.keep(enc, st) // for the input's first window: a batch later, or after the rest of detection
			}
			if err == nil {
				var f *step
				if f, err = b.followDetection(st, owner[st.in], enc); f != nil {
					st = f
				}
			}
		} else {
			err = st.in.plan(enc, st)
		}
		if err != nil {
			fail(st, err)
		} else if !st.detect {
			live = append(live, st)
		}
	}
	return enc, live
}

// detectAlone is a batch of one sequential input's language detection on a backend with an
// arena (the CPU, whose memory is the host's): each detection window is encoded and its language
// probabilities taken on its own, and only the first window's encoder output is kept, for the
// decoding that follows (the input's first window) when there is one (then live holds its step,
// planned). Encoding the windows together held every window's output, and then a copy of the
// one kept: mini's peak was that moment, 26 MB of the 75 MB of live heap. The windows after the
// first are read only when the first leaves detection unsure (detectSure). The probabilities are
// detectIn's, averaged the same way; each window's is a decoder session of its own.
func (b *batcher) detectAlone(st *step, a *active, fail func(*step, error)) (enc *Encoded, live []*step) {
	clock := b.m.clock
	in := st.in
	per := make([]map[string]float64, 0, maxDetectWindows)
	for i := 0; i < len(st.ws); i++ {
		t := clock.start()
		e, err := b.encode([]*input{in}, st.ws[i:i+1])
		t = clock.stop(phaseEncode, t)
		if err != nil {
			enc.Close()
			fail(st, fmt.Errorf("detect language: %w", err))
			return nil, nil
		}
		if i == 0 {
			enc = e
		}
		p, err := in.languageProbsAt(e, []int{0})
		if i > 0 {
			// Not to the pool, and without its audio (mini: 1.9 MB a window): either would stay
			// through the first window's decoding.
			e.closed = true
			e.free()
			st.ws[i].samples = nil
		}
		clock.stop(phaseDetect, t)
		if err != nil {
			enc.Close()
			fail(st, err)
			return nil, nil
		}
		per = append(per, p[0])
		if i == 0 && in.sure(p[0]) {
			for _, w := range st.ws[1:] {
				w.samples = nil // not encoded: the first window decides alone (detectSure)
			}
			break
		}
		if i == 0 && st.detectMore { // unsure: the other windows are read now (detectPart)
			starts := in.detectStarts()
			rest, err := in.readDetect(starts[min(1, len(starts)):])
			if err != nil {
				enc.Close()
				fail(st, err)
				return nil, nil
			}
			st.ws, st.detectMore = append(st.ws, rest...), false
		}
	}
	t := clock.start()
	defer clock.stop(phaseDetect, t)
	var f *step
	err := in.detectFrom(per, st.detectMore)
	if err == nil {
		f, err = b.followDetection(st, a, enc)
	}
	switch {
	case err != nil && f != nil:
		fail(f, err)
	case err != nil:
		fail(st, err)
	case f != nil:
		return enc, []*step{f}
	}
	return enc, nil
}

// followDetection is the step an input takes, in the batch of its language detection st, once
// detected (follow), planned against enc; nil when there is none (a batch of detection only, a
// resumed input). A planning error comes with the step.
func (b *batcher) followDetection(st *step, a *active, enc *Encoded) (*step, error) {
	if b.detectOnly {
		return nil, nil
	}
	f := follow(a, st)
	if f == nil {
		return nil, nil
	}
	return f, f.in.plan(enc, f)
}

// encode encodes the windows ws (window i of ins[i]), computing their log-mel a chunk of windows
// at a time as the encoder takes them (Model.encodeFrom): on a GPU the host computes a chunk's
// while the device encodes the one before. With a phase clock the log-mel's time is its own
// phase, taken out of the encoder's.
func (b *batcher) encode(ins []*input, ws []*window) (enc *Encoded, err error) {
	defer tensor.Catch(&err)
	clock := b.m.clock
	var melTime time.Duration
	var pre func(w int) *tensor.Tensor
	reused := 0
	if len(b.stash) > 0 && !noStash {
		outs := make([]*tensor.Tensor, len(ws))
		for i, w := range ws {
			if s, ok := b.stash[ins[i]]; ok && s.v0 == w.v0 && s.v1 == w.v1 {
				outs[i] = s.out
				reused++
			}
		}
		pre = func(w int) *tensor.Tensor { return outs[w] }
		defer func() { // used or not, the windows are encoded now (but for the rest of detection)
			for _, in := range ins {
				if in.detected {
					b.drop(in)
				}
			}
		}()
	}
	enc = b.m.encodeFrom(len(ws), b.chunk, false, func(g []int) *tensor.Tensor {
		t := clock.start()
		gi, gw := make([]*input, len(g)), make([]*window, len(g))
		for j, w := range g {
			gi[j], gw[j] = ins[w], ws[w]
		}
		if x, host := b.deviceMels(gi, gw); x != nil {
			// log-mel's phase is the host's part, the samples' copy; the device's is encoding's
			melTime += host
			return x
		}
		defer func() {
			if clock != nil {
				melTime += time.Since(t)
			}
		}()
		mels := melsOf(gi, gw, b.mels)
		if b.m.ar == nil {
			// Kept for the next chunk: the encoder is done with its input when its upload
			// returns (the GPUs' uploads are staged by then). Not on the CPU, whose peak is
			// decoding's.
			b.mels = mels
		}
		return b.m.melInput(mels, len(g))
	}, pre)
	if clock != nil {
		clock.add(phaseMel, melTime)
		clock.add(phaseEncode, -melTime)
		clock.encodings(len(ws)-reused, reused)
	}
	return enc, nil
}

// deviceMels returns the log-mel windows (window i of ins[i]) made on the device, where the
// backend makes them (tensor.LogMeler, without an arena), and the time the host took to copy
// their samples into one buffer (b.samples, kept for the next chunk; the upload is staged before
// LogMel returns), rather than some 30 ms of a core a window for the log-mel (10.8 of the 17.7
// s of CPU in a turbo run of bench --e2e --decode default). Nil elsewhere: melsOf on the host.
func (b *batcher) deviceMels(ins []*input, ws []*window) (*tensor.Tensor, time.Duration) {
	lm, ok := b.m.b.(tensor.LogMeler)
	if !ok || b.m.ar != nil || len(ws) == 0 {
		return nil, 0
	}
	t := time.Now()
	const stride = mel.ChunkSamples
	if need := len(ws) * stride; cap(b.samples) < need {
		b.samples = make([]float32, need)
	}
	buf := b.samples[:len(ws)*stride]
	lens, sizes := make([]int, len(ws)), make([]int, len(ws))
	for i, w := range ws {
		n := copy(buf[i*stride:(i+1)*stride], w.samples)
		lens[i], sizes[i] = n, ins[i].melFrames(n)
	}
	host := time.Since(t)
	c := b.m.Config
	x := b.m.b.Alloc(tensor.F32, len(ws), c.NMels, mel.ChunkFrames)
	lm.LogMel(x, buf, stride, lens, sizes, mel.ChunkSamples, b.m.melBank())
	return x, host
}

// attempt is one window's decoding task in a round of decode.
type attempt struct {
	st   *step
	i    int
	task *decodeTask
}

// decode decodes every window of the steps: a first round at each window's first temperature,
// then, round by round, the windows whose result fails the rules' thresholds at the next
// temperature. Each round's tasks are decoded together (decodeTasks) where their prompts are
// equally long, at most b.size windows' tasks at a time (each with its beams or candidates).
func (b *batcher) decode(enc *Encoded, steps []*step, fail func(*step, error)) {
	for k := 0; ; k++ {
		var round []attempt
		for _, st := range steps {
			if st.err != nil {
				continue
			}
			in := st.in
			temps := in.opts.temperatures()[st.tempFrom:]
			if k >= len(temps) {
				continue
			}
			for i, w := range st.ws {
				if k > 0 && !in.rules.retry(in.opts, st.drs[i]) {
					continue
				}
				prompt, used := in.prompt(st.histories[i], temps[k])
				task, err := in.task(w, st.sots[i], prompt, temps[k], k+st.tempFrom)
				if err != nil {
					fail(st, err)
					break
				}
				st.used[i] = used
				round = append(round, attempt{st, i, task})
			}
		}
		if len(round) == 0 {
			return
		}
		for _, g := range b.sessions(round) {
			b.run1(enc, g, fail)
		}
	}
}

// sessions groups a round's attempts into decoder batches: tasks whose initial tokens are
// equally long with the no-speech position at the same index and the same length limit, at
// most b.size tasks (windows) and b.rows sequences each (a task's beams or candidates count
// whole: beam search 5 is 5 sequences a window).
func (b *batcher) sessions(round []attempt) [][]attempt {
	type key struct{ n, noSpeech, sampleLen int }
	var order []key
	groups := map[key][][]attempt{}
	tasks, rows := map[key]int{}, map[key]int{}
	for _, a := range round {
		if a.st.err != nil {
			continue
		}
		t := a.task
		k := key{len(t.initial), t.noSpeechIndex, t.sampleLen}
		gs, ok := groups[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || tasks[k]+1 > b.size || b.rows > 0 && rows[k] > 0 && rows[k]+t.nGroup > b.rows {
			gs = append(gs, nil)
			tasks[k], rows[k] = 0, 0
		}
		gs[len(gs)-1] = append(gs[len(gs)-1], a)
		tasks[k]++
		rows[k] += t.nGroup
		groups[k] = gs
	}
	var out [][]attempt
	for _, k := range order {
		out = append(out, groups[k]...)
	}
	return out
}

// run1 decodes one decoder batch and gives each window its result. When the batch fails and
// holds several tasks, each is decoded alone so that the error is its input's alone.
func (b *batcher) run1(enc *Encoded, g []attempt, fail func(*step, error)) {
	var live []attempt
	for _, a := range g {
		if a.st.err == nil {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		return
	}
	res, err := b.decodeBatch(enc, live)
	if err != nil && len(live) > 1 {
		for _, a := range live {
			b.run1(enc, []attempt{a}, fail)
		}
		return
	}
	if err != nil {
		fail(live[0].st, err)
		return
	}
	for j, a := range live {
		a.st.drs[a.i] = res[j]
		if faultWindow != nil {
			w := a.st.ws[a.i]
			if faultWindow(w.tm.seconds(0, false), w.tm.seconds(len(w.samples), true), a.st.in.retry.stage) {
				a.st.drs[a.i] = &decodeResult{temperature: res[j].temperature} // EOT at once
			}
		}
	}
}

func (b *batcher) decodeBatch(enc *Encoded, g []attempt) (res []*decodeResult, err error) {
	defer tensor.Catch(&err)
	var windows []int
	tasks := make([]*decodeTask, len(g))
	for j, a := range g {
		tasks[j] = a.task
		for range a.task.nGroup {
			windows = append(windows, a.st.at+a.i)
		}
	}
	release := held(b.dev)
	s, err := b.m.NewSession(enc, windows)
	release()
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	s.dev = b.dev // each call holds the device, not the bookkeeping between them
	defer s.Close()
	if c := b.m.clock; c != nil {
		s.times = &c.steps
		c.session(len(g))
	}
	return decodeTasks(b.ctx, s, tasks)
}

// follow is the step an input takes in the batch of its language detection (st): its first
// windows are detection's first windows, the same audio and so the same encoder output, so they
// are decoded in this batch rather than encoded again in the next. Sequential: the first window;
// Independent: every detection window. Nil when the input does not start at detection's first
// window (a resumed input).
func follow(a *active, st *step) *step {
	in := a.in
	if a.ended || !in.detected || in.started || in.v != st.ws[0].v0 || in.windowLimit() != windowLen {
		return nil
	}
	ws := st.ws[:1]
	if in.opts.Windows == Independent {
		ws = st.ws
	}
	in.took(ws)
	return &step{in: in, ws: ws, at: st.at}
}

// detectIn detects the language over the step's windows of enc (detectFrom: the first detection
// window, or the rest when that one left detection unsure).
func (in *input) detectIn(enc *Encoded, st *step) error {
	per, err := in.languageProbsAt(enc, st.windows())
	if err != nil {
		return err
	}
	return in.detectFrom(per, st.detectMore)
}

// plan sets the language, SOT sequence and prompt history of each of the step's windows
// (encoded in enc). Sequential: the current language (or the window's own, detected) and the
// input's history. Independent: each window's language, and the initial prompt for the input's
// first window only.
func (in *input) plan(enc *Encoded, st *step) error {
	n := len(st.ws)
	st.langs, st.sots, st.histories = make([]string, n), make([][]int, n), make([][]int, n)
	st.drs, st.used = make([]*decodeResult, n), make([][]int, n)
	if in.opts.Windows == Sequential {
		if in.perWindow {
			if err := in.detectWindow(enc, st.at); err != nil {
				return err
			}
		}
		w := st.ws[0]
		if rt := in.rules.tailFrames; rt > 0 && w.v0 > 0 && w.remain <= rt {
			// A very short rest of audio: a prompt tends to make it hallucinate (whisper.cpp).
			in.resetSince = len(in.history)
		}
		st.langs[0], st.sots[0] = in.lang, in.sot
		st.histories[0] = in.history[in.resetSince:]
		st.tempFrom = in.fallbackFrom()
		return nil
	}
	for i := range st.langs {
		st.langs[i] = in.lang
	}
	if in.perWindow {
		per, err := in.languageProbsAt(enc, st.windows())
		if err != nil {
			return err
		}
		for i, p := range per {
			st.langs[i] = bestLanguage(p, in.allowed)
		}
	}
	for i := range st.ws {
		sot, err := in.tok.SOTSequence(st.langs[i], in.opts.Task)
		if err != nil {
			return err
		}
		if !in.started && i == 0 {
			st.histories[i] = in.history
		}
		st.sots[i] = sot
	}
	return nil
}

// settle adds the segments of the step's decoded windows and moves the input on.
func (in *input) settle(enc *Encoded, st *step) error {
	in.started = true
	in.windows += len(st.ws)
	if in.opts.Windows == Sequential {
		return in.addSequential(enc, st)
	}
	for i, w := range st.ws {
		if st.langs[i] != in.lang {
			if err := in.setLanguage(st.langs[i]); err != nil {
				return err
			}
		}
		dr := st.drs[i]
		silent := in.rules.silent(in.opts, dr)
		var segs []pending
		var mapped [][]pending
		if !silent {
			var err error
			if segs, mapped, _, _, err = in.windowSegs(enc, st.at+i, w, dr, true); err != nil {
				return err
			}
		}
		// Independent windows are cut up front: what they leave out is reported, not retried.
		vd := in.account(w, mapped, w.v1, gapReason(silent, len(segs)), len(st.used[i]) > 0, false)
		in.commit(w, segs, mapped, vd.cut)
		in.progress(w)
	}
	return nil
}

// addSequential adds the segments of a window decoded on its own and moves to the next window
// with the seek: a window whose text ends before the window does is followed by one starting
// there. The history follows the rules. A window that leaves speech uncovered is retried first
// (account): the next window starts at that speech, and the segments after it wait for the
// retry.
func (in *input) addSequential(enc *Encoded, st *step) error {
	w, dr := st.ws[0], st.drs[0]
	o, ru := in.opts, in.rules
	silent := ru.silent(o, dr)
	var advance int
	var repeated bool
	var segs []pending
	var mapped [][]pending
	switch {
	case silent && ru.skipSilent:
	case silent:
		_, advance = ru.segmenter.split(&in.tx, dr, w.frames(), w.remain, false)
	default:
		var err error
		if segs, mapped, advance, repeated, err = in.windowSegs(enc, st.at, w, dr, false); err != nil {
			return err
		}
	}
	next := w.v1
	if !(silent && ru.skipSilent) && advance > 0 && advance < w.frames() {
		next = w.v0 + advance*mel.HopLength
	}
	retrying := in.retry.stage
	vd := in.account(w, mapped, next, gapReason(silent, len(segs)), len(st.used[0]) > 0, true)
	kept, whole := in.commit(w, segs, mapped, vd.cut)
	for _, p := range vd.held {
		in.add(p.seg)
		kept, whole = append(kept, p), false
	}
	retry := in.retry.stage > 0 || retrying > 0
	if silent && ru.skipSilent && !retry {
		in.v = vd.v
		in.progress(w)
		return nil
	}
	if ru.historyOfDecoder {
		in.history = slices.Clone(st.used[0])
		if !silent && whole {
			in.history = append(in.history, dr.promptTokens...)
		}
		in.resetSince = 0
	} else {
		for _, p := range kept {
			in.history = append(in.history, p.all...)
		}
	}
	if !o.ConditionOnPreviousText || dr.temperature > ru.resetAbove || repeated || retry {
		// A retry goes without the previous text, and so does the window after one: the text
		// before a stretch the model left out is what led it astray.
		in.resetSince = len(in.history)
	}
	in.v = vd.v
	in.progress(w)
	return nil
}

// windowSegs cuts a decoded window into segments (the rules' segmenter), runs the guard and word
// timing on them and maps each to the input's time (its parts: a segment over several speech
// regions is split). It returns the segments in the window's time and in the input's, the seek
// advance, and whether the guard found repeated text.
func (in *input) windowSegs(enc *Encoded, e int, w *window, dr *decodeResult, whole bool) ([]pending, [][]pending, int, bool, error) {
	segs, advance := in.rules.segmenter.split(&in.tx, dr, w.frames(), w.remain, whole)
	segs, repeated := in.guardWindow(segs, w.tm)
	segs, advance, err := in.wordTimes(enc, e, dr, segs, w.frames(), advance, in.prevIn(w))
	if err != nil {
		return nil, nil, 0, false, err
	}
	mapped := make([][]pending, len(segs))
	for i, p := range segs {
		mapped[i] = in.toSource([]pending{p}, w.tm)
	}
	return segs, mapped, advance, repeated, nil
}

// commit adds a window's segments (window time, and mapped to the input's) that end by cut
// (seconds of the input; a segment over several speech regions may be kept in part) to the
// result, and keeps the last whole one as the segment before the next window. It returns the
// parts added and whether that was all of them.
func (in *input) commit(w *window, segs []pending, mapped [][]pending, cut float64) ([]pending, bool) {
	var kept []pending
	full := 0
	for i, parts := range mapped {
		n := 0
		for _, p := range parts {
			if p.seg.End <= cut+0.02 {
				in.add(p.seg)
				kept = append(kept, p)
				n++
			}
		}
		if n == len(parts) && full == i {
			full++
		}
	}
	in.keepPrev(w, segs[:full])
	return kept, full == len(segs)
}
