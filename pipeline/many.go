package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/vad"
	"github.com/verbatimhq/verbatim/whisper"
)

// FileResult is what Files or Pool did with one input: its Outcome, or Err (which names it).
type FileResult struct {
	Input   string
	Outcome *Outcome
	Err     error
}

// Task is one input for a Runner: its path and options, and what it reports as it goes.
type Task struct {
	Path    string
	Options Options
	// Resume continues the input's transcription from a checkpoint taken by an earlier run of
	// the same task (whisper.Options.Resume).
	Resume *whisper.Checkpoint
	// Checkpoint, if set, receives the transcription's checkpoints (whisper.Options.Checkpoint).
	Checkpoint func(*whisper.Checkpoint)
	// Progress, if set, is called as the transcription advances, from the transcribing
	// goroutine.
	Progress func(done, total time.Duration)
	// Segments, if set, is called as windows are decoded with the segments they added, on the
	// input's timeline (as the sidecars have them), from the transcribing goroutine. A resumed
	// transcription gives the segments from before its checkpoint first.
	Segments func([]sidecar.Segment)
	// Done is called once when the task ends, with its outcome or its error (which names the
	// input), from the transcribing goroutine or the one preparing the task (skipped or failed
	// before it was opened).
	Done func(*Outcome, error)
	// Ctx, if not nil, is the task's own context: when it ends, the task ends with its error (at
	// its next window, or before it starts), and the others go on.
	Ctx context.Context
}

// Serve transcribes the tasks next gives until it reports false or ctx ends: for each, skip it
// if its sidecars are current (unless Options.Force), run the VAD first pass, transcribe, and
// write the sidecars atomically. The windows of the files in progress are encoded and decoded
// together, at most batch at a time (whisper.TranscribeQueue; 0: the backend's default), so a
// backlog of short recordings fills the batches that one of them alone would leave nearly
// empty. The next files are prepared ahead (identified, sidecars checked, VAD run) on another
// goroutine, which is the one that calls next. Every task taken ends with a call to its Done,
// with ctx's error for those in progress when ctx ends; a file's failure ends it alone.
func (r *Runner) Serve(ctx context.Context, next func() (Task, bool), batch int) {
	type ready struct {
		j *job
		t Task
	}
	pctx, stop := context.WithCancel(ctx)
	// The VAD first passes run on as many goroutines as the runner has copies of its VAD
	// (AddVAD); each prepared task's result comes through its own channel, and those channels
	// in task order, so the files still start in order.
	var free chan *vad.Model
	workers := 1
	if r.vad != nil {
		pool := append([]*vad.Model{r.vad}, r.moreVAD...)
		workers = len(pool)
		free = make(chan *vad.Model, workers)
		for _, v := range pool {
			free <- v
		}
	}
	futs := make(chan chan ready, prefetch+workers-1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(futs)
		for pctx.Err() == nil {
			t, ok := next()
			if !ok {
				return
			}
			if t.Ctx != nil && t.Ctx.Err() != nil {
				t.Done(nil, fmt.Errorf("%s: %w", t.Path, context.Cause(t.Ctx)))
				continue
			}
			j, err := r.prepare(t.Path, t.Options)
			if err != nil || j.out.Skipped {
				t.Done(j.outcome(err))
				continue
			}
			j.progress = t.Progress
			j.start = time.Now()
			f := make(chan ready, 1)
			select {
			case futs <- f:
			case <-pctx.Done():
				t.Done(nil, fmt.Errorf("%s: %w", t.Path, ctx.Err()))
				return
			}
			var v *vad.Model
			if free != nil {
				v = <-free // a pass ends soon after pctx does
			}
			wg.Go(func() {
				r.firstPassWith(pctx, j, v) // an error is the job's, reported when it opens
				if v != nil {
					free <- v
				}
				f <- ready{j, t}
			})
		}
	})
	jobs := func() (whisper.Job, bool) {
		select {
		case f, ok := <-futs:
			if !ok {
				return whisper.Job{}, false
			}
			it := <-f
			return r.job(it.j, it.t), true
		case <-ctx.Done():
			return whisper.Job{}, false
		}
	}
	_ = whisper.TranscribeQueue(ctx, r.m, jobs, whisper.ManyOptions{BatchSize: batch, Notice: r.notice, Lanes: r.lanes})
	stop()
	// The tasks prepared but not started end with ctx's error.
	for f := range futs {
		it := <-f
		it.t.Done(nil, fmt.Errorf("%s: %w", it.t.Path, ctx.Err()))
	}
	wg.Wait()
}

// Pool transcribes inputs as Serve does, with Runners each on its own goroutine (one Runner per
// GPU, each with its own model and VAD) taking the next input from a queue they share whenever
// their batches have room (opts.BatchSize). A file's sidecars are written as soon as it is
// done; one file's failure does not stop the others; when ctx is cancelled the files not
// finished fail with its error. done, if not nil, is called once per input as it finishes, with
// the input's index, one call at a time. The results are in the inputs' order.
func Pool(ctx context.Context, runners []*Runner, inputs []string, opts Options, done func(i int, res FileResult)) []FileResult {
	out := make([]FileResult, len(inputs))
	finished := make([]bool, len(inputs))
	var mu sync.Mutex
	finish := func(i int, res FileResult) {
		mu.Lock()
		defer mu.Unlock()
		if finished[i] {
			return
		}
		out[i], finished[i] = res, true
		if done != nil {
			done(i, res)
		}
	}
	q := &queue{n: len(inputs)}
	next := func() (Task, bool) {
		i, ok := q.take()
		if !ok {
			return Task{}, false
		}
		path := inputs[i]
		t := Task{Path: path, Options: opts, Done: func(o *Outcome, err error) {
			finish(i, FileResult{Input: path, Outcome: o, Err: err})
		}}
		if p := opts.FileProgress; p != nil {
			t.Progress = func(done, total time.Duration) { p(path, done, total) }
		}
		return t, true
	}
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(func() { r.Serve(ctx, next, opts.BatchSize) })
	}
	wg.Wait()
	for i, f := range finished {
		if !f {
			err := ctx.Err()
			if err == nil {
				err = fmt.Errorf("no runner took it")
			}
			finish(i, FileResult{Input: inputs[i], Err: fmt.Errorf("%s: %w", inputs[i], err)})
		}
	}
	return out
}

// queue hands out the indices of the inputs, each once.
type queue struct {
	mu   sync.Mutex
	next int
	n    int
}

// take returns the next input's index, or false when none is left. It is safe for concurrent use.
func (q *queue) take() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.next == q.n {
		return 0, false
	}
	q.next++
	return q.next - 1, true
}

// prefetch is how many inputs a Runner prepares ahead of its batches: identified, sidecars
// checked and the VAD first pass run on another goroutine, so that the device does not wait for
// the CPU work of the next files.
const prefetch = 2

// job is the whisper job of j: opened (VAD, media) when the batches reach it, its sidecars
// written when it is done.
func (r *Runner) job(j *job, t Task) whisper.Job {
	var st *media.Stream
	return whisper.Job{
		Options: j.opts.Decode,
		Open: func(ctx context.Context, d *whisper.Options) (whisper.AudioSource, error) {
			var err error
			st, err = r.open(ctx, j, d)
			if err != nil {
				return nil, err
			}
			d.Resume, d.Checkpoint = t.Resume, t.Checkpoint
			if t.Resume != nil {
				j.out.Resumed = t.Resume.Done()
			}
			if t.Segments != nil {
				d.Checkpoint = segmentsOf(t, st.StartOffset)
			}
			return st, nil
		},
		Ctx: t.Ctx,
		Done: func(res *whisper.Result, err error) {
			if st == nil { // Open failed: its error is the job's
				t.Done(nil, err)
				return
			}
			defer st.Close()
			if err != nil {
				t.Done(nil, j.failed(err))
				return
			}
			t.Done(r.write(j, st, res))
		},
	}
}

// segmentsOf is the checkpoint callback of task t that gives its Segments the segments each
// window added (on the input's timeline: shifted by offset, the audio's start in its
// container), then hands the checkpoint on to t.Checkpoint, if any.
func segmentsOf(t Task, offset time.Duration) func(*whisper.Checkpoint) {
	sent := 0
	return func(c *whisper.Checkpoint) {
		if segs := c.SegmentsFrom(sent); len(segs) > 0 {
			sent += len(segs)
			t.Segments(Transcript(&whisper.Result{Segments: segs}, offset).Segments)
		}
		if t.Checkpoint != nil {
			t.Checkpoint(c)
		}
	}
}
