package whisper

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/verbatimhq/verbatim/tensor"
)

// Job is one input of [TranscribeMany] or [TranscribeQueue].
type Job struct {
	// Name names the job in its error (a file's path, say); "" leaves the error as it is.
	Name string
	// Options are the job's own settings, as for [TranscribeStream]: language, task, prompt,
	// speech regions, fallback, progress callback, and BatchSize, which decides as there whether
	// the job's windows are decoded one at a time with the seek loop or whole and independently.
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
}

// ManyResult is the outcome of one job of [TranscribeMany]: Result, or Err.
type ManyResult struct {
	Result *Result
	Err    error
}

// ManyOptions control how [TranscribeMany] and [TranscribeQueue] batch the jobs' windows.
type ManyOptions struct {
	// BatchSize is the most windows encoded together, and decoded together where decoding is
	// greedy at temperature 0, taken from all the jobs in progress. 0 picks 8 on a backend whose
	// Capabilities are Batched other than the CPU, else 1 (as Options.BatchSize does).
	BatchSize int
}

// TranscribeMany transcribes the jobs with m, their windows batched together: a batch takes
// windows from as many jobs in progress as it needs, so many short inputs (one or two windows
// each) fill the batch that one of them alone would leave at one window. Each job keeps its own
// settings, its own fallback and its own result: where decoding is deterministic (greedy or beam
// search at temperature 0) it is what [TranscribeStream] gives for the job alone, up to the
// backend's rounding where a decoder batch mixes several windows (see greedyBatch).
//
// All windows of a batch are encoded together. Greedy first passes at temperature 0 are decoded
// together where their prompts are equally long (the decoder's sequences advance together);
// beam search, sampling and fallback decode each window on its own. A job whose windows are
// decoded one at a time (Options.BatchSize 1, the CPU's default: the seek loop, conditioned on
// the previous window's text) gives each batch one window, so its windows still share batches
// with other jobs'; its prompt history then makes its prompt unlike most others'.
//
// Jobs start in order and only as the batches need them, at most BatchSize at a time; each holds
// a few windows of audio, so memory does not grow with the number or length of the inputs. One
// job's failure (unreadable audio, bad options, a decoding error) ends that job alone. When ctx
// is cancelled every job not yet finished fails with ctx's error; those finished keep their
// results. The results are in the jobs' order. m is used from the calling goroutine only.
func TranscribeMany(ctx context.Context, m *Model, jobs []Job, opts ManyOptions) []ManyResult {
	out := make([]ManyResult, len(jobs))
	started := make([]bool, len(jobs))
	i := 0
	next := func() (Job, bool) {
		if i == len(jobs) {
			return Job{}, false
		}
		k := i
		i++
		started[k] = true
		j := jobs[k]
		done := j.Done
		j.Done = func(res *Result, err error) {
			out[k] = ManyResult{Result: res, Err: err}
			if done != nil {
				done(res, err)
			}
		}
		return j, true
	}
	err := TranscribeQueue(ctx, m, next, opts)
	for k, s := range started {
		if !s {
			out[k].Err = named(jobs[k].Name, fmt.Errorf("transcribe: %w", err))
		}
	}
	return out
}

// TranscribeQueue is [TranscribeMany] over jobs taken from next, called when a batch has room
// for another job until it reports false; every job taken ends with a call to its Done. It
// returns an error for a nil model, else ctx.Err(): when ctx ends the run, next is not called
// again, and the jobs it would have given are not started.
func TranscribeQueue(ctx context.Context, m *Model, next func() (Job, bool), opts ManyOptions) error {
	if m == nil {
		return errNoModel
	}
	size := opts.BatchSize
	if size <= 0 {
		size = (&Options{}).batchSize(m.Backend())
	}
	b := &batcher{ctx: ctx, m: m, size: size}
	b.more = func() bool {
		for ctx.Err() == nil {
			j, ok := next()
			if !ok {
				return false
			}
			if b.start(j) {
				return true
			}
		}
		return false
	}
	b.run()
	return ctx.Err()
}

// named prefixes err with name, if any.
func named(name string, err error) error {
	if name == "" || err == nil {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// observeBatch, if set (by tests), sees every batch's steps before it is encoded.
var observeBatch func(steps []*step)

// batcher runs inputs of the windowed path together: each batch takes windows from the inputs in
// progress, oldest first, encodes them as one, decodes their greedy first passes together, and
// hands each input its results.
type batcher struct {
	ctx  context.Context // the run loop's, owned here for its duration
	m    *Model
	size int // the most windows of a batch (an input's detection windows may exceed it alone)
	// more starts another input (add) and reports whether it did; nil: no more inputs.
	more func() bool
	act  []*active
}

// active is an input in progress.
type active struct {
	lf    *longform
	done  func(*Result, error)
	ended bool
}

// add puts lf in progress; done receives its result.
func (b *batcher) add(lf *longform, done func(*Result, error)) {
	b.act = append(b.act, &active{lf: lf, done: done})
}

// start opens job j and puts it in progress, or ends it with its error (false).
func (b *batcher) start(j Job) bool {
	done := func(res *Result, err error) {
		if j.Done != nil {
			j.Done(res, named(j.Name, err))
		}
	}
	lf, err := b.open(j)
	if err != nil {
		done(nil, err)
		return false
	}
	b.add(lf, done)
	return true
}

func (b *batcher) open(j Job) (lf *longform, err error) {
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
	return newLongform(b.ctx, b.m, src, sourceLen(src), &o)
}

// capacity is how many windows the inputs in progress can give a batch.
func (b *batcher) capacity() int {
	n := 0
	for _, a := range b.act {
		n += a.lf.bs
	}
	return n
}

// run transcribes until every input has ended.
func (b *batcher) run() {
	for {
		for b.more != nil && b.capacity() < b.size {
			if !b.more() {
				b.more = nil
			}
		}
		if len(b.act) == 0 {
			return
		}
		if steps := b.gather(); len(steps) > 0 {
			b.batch(steps)
		}
		b.act = slices.DeleteFunc(b.act, func(a *active) bool { return a.ended })
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

// gather reads the next batch's windows: each input's detection windows, or its next step, while
// the batch has room. An input at its end finishes here.
func (b *batcher) gather() []*step {
	var steps []*step
	n := 0
	for _, a := range b.act {
		room := b.size - n
		if room <= 0 {
			break
		}
		lf := a.lf
		var ws []*lfWindow
		if !lf.detected {
			err := caught(func() (err error) { ws, err = lf.detectWindows(); return err })
			if err != nil {
				a.end(nil, err)
				continue
			}
			if len(ws) > 0 {
				if n > 0 && len(ws) > room {
					continue // next batch: detection takes its windows together
				}
				steps = append(steps, &step{lf: lf, ws: ws, at: n, detect: true})
				n += len(ws)
				continue
			}
			lf.detected = true // no audio: nothing to detect
		}
		if err := caught(func() (err error) { ws, err = lf.next(room); return err }); err != nil {
			a.end(nil, err)
			continue
		}
		if len(ws) == 0 {
			var res *Result
			err := caught(func() (err error) { res, err = lf.finish(); return err })
			a.end(res, err)
			continue
		}
		steps = append(steps, &step{lf: lf, ws: ws, at: n})
		n += len(ws)
	}
	return steps
}

// batch encodes the steps' windows as one batch and runs each step on the output: detection, or
// decoding (greedy first passes together across the steps) and adding the segments. A step's
// error ends its input alone.
func (b *batcher) batch(steps []*step) {
	owner := make(map[*longform]*active, len(b.act))
	for _, a := range b.act {
		owner[a.lf] = a
	}
	fail := func(st *step, err error) {
		st.err = err
		owner[st.lf].end(nil, st.wrap(err))
	}
	var mels []float32
	n := 0
	for _, st := range steps {
		mels = append(mels, st.lf.mels(st.ws)...)
		n += len(st.ws)
	}
	if observeBatch != nil {
		observeBatch(steps)
	}
	enc, err := b.encode(mels, n)
	if err != nil {
		for _, st := range steps {
			if st.detect {
				fail(st, fmt.Errorf("detect language: %w", err))
			} else {
				fail(st, err)
			}
		}
		return
	}
	defer enc.Close()
	var live []*step
	for _, st := range steps {
		if st.detect {
			err = caught(func() error { return st.lf.detectIn(enc, st) })
		} else {
			err = caught(func() error { return st.lf.plan(enc, st) })
		}
		if err != nil {
			fail(st, err)
		} else if !st.detect {
			live = append(live, st)
		}
	}
	b.decodeGreedy(enc, live)
	for _, st := range live {
		if err := caught(func() error { return st.lf.settle(enc, st) }); err != nil {
			fail(st, err)
		}
	}
}

func (b *batcher) encode(mels []float32, n int) (enc *Encoded, err error) {
	defer tensor.Catch(&err)
	return b.m.Encode(mels, n)
}

// caught runs f, turning a panic into its error.
func caught(f func() error) (err error) {
	defer tensor.Catch(&err)
	return f()
}

// decodeGreedy runs the greedy first passes at temperature 0 of the steps' windows, together
// where their initial tokens are equally long (the decoder's sequences advance together). A
// window alone in its group, or in a group whose batch fails, is left to its step's settle,
// which decodes it alone (and names the input in an error).
func (b *batcher) decodeGreedy(enc *Encoded, steps []*step) {
	type row struct {
		st   *step
		i    int
		task *decodeTask
	}
	type key struct{ n, noSpeech int }
	var order []key
	groups := map[key][]row{}
	for _, st := range steps {
		r := st.lf.r
		if !r.opts.greedyFirst() {
			continue
		}
		for i := range st.ws {
			task, err := r.greedyTask(st.ws[i].frames(), st.sots[i], st.prompts[i])
			if err != nil {
				continue // settle reports it
			}
			k := key{len(task.initial), task.noSpeechIndex}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], row{st, i, task})
		}
	}
	for _, k := range order {
		g := groups[k]
		if len(g) < 2 {
			continue
		}
		windows := make([]int, len(g))
		tasks := make([]*decodeTask, len(g))
		for j, x := range g {
			windows[j], tasks[j] = x.st.at+x.i, x.task
		}
		var res []*decodeResult
		err := caught(func() error {
			s, err := b.m.NewSession(enc, windows)
			if err != nil {
				return err
			}
			defer s.Close()
			res, err = greedyBatch(s, tasks)
			return err
		})
		if err != nil {
			continue
		}
		for j, x := range g {
			x.st.drs[x.i] = res[j]
		}
	}
}
