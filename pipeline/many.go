package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/whisper"
)

// FileResult is what Files or Pool did with one input: its Outcome, or Err (which names it).
type FileResult struct {
	Input   string
	Outcome *Outcome
	Err     error
}

// Pool transcribes inputs with Runners, each on its own goroutine (one Runner per GPU, each with
// its own model and VAD): for each input, skip it if its sidecars are current (unless
// opts.Force), run the VAD first pass, transcribe, and write the sidecars atomically. A Runner
// takes the next input from a queue they share whenever its batches have room, and encodes and
// decodes the windows of its files in progress together (whisper.TranscribeQueue,
// opts.BatchSize): a backlog of short recordings fills the batches that one of them alone would
// leave nearly empty. A file's sidecars are written as soon as it is done; one file's failure
// does not stop the others; when ctx is cancelled the files not finished fail with its error. done, if not nil,
// is called once per input as it finishes, with the input's index, one call at a time. The
// results are in the inputs' order.
func Pool(ctx context.Context, runners []*Runner, inputs []string, opts Options, done func(i int, res FileResult)) []FileResult {
	out := make([]FileResult, len(inputs))
	finished := make([]bool, len(inputs))
	var mu sync.Mutex
	finish := func(i int, res FileResult) {
		mu.Lock()
		defer mu.Unlock()
		out[i], finished[i] = res, true
		if done != nil {
			done(i, res)
		}
	}
	q := &queue{n: len(inputs)}
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(func() { r.serve(ctx, q, inputs, opts, finish) })
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

// serve transcribes inputs taken from q until it is empty or ctx ends, reporting each one to
// finish.
func (r *Runner) serve(ctx context.Context, q *queue, inputs []string, opts Options, finish func(int, FileResult)) {
	type ready struct {
		j      *job
		report func(*Outcome, error)
	}
	pctx, stop := context.WithCancel(ctx)
	ch := make(chan ready, prefetch)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		for pctx.Err() == nil {
			i, ok := q.take()
			if !ok {
				return
			}
			path := inputs[i]
			report := func(o *Outcome, err error) { finish(i, FileResult{Input: path, Outcome: o, Err: err}) }
			j, err := r.prepare(path, opts)
			if err != nil || j.out.Skipped {
				report(j.outcome(err))
				continue
			}
			if p := opts.FileProgress; p != nil {
				j.progress = func(done, total time.Duration) { p(path, done, total) }
			}
			j.start = time.Now()
			r.firstPass(pctx, j) // an error is the job's, reported when it opens
			select {
			case ch <- ready{j, report}:
			case <-pctx.Done():
				return // taken, not reported: Pool reports it with ctx's error
			}
		}
	})
	next := func() (whisper.Job, bool) {
		select {
		case it, ok := <-ch:
			if !ok {
				return whisper.Job{}, false
			}
			return r.job(it.j, it.report), true
		case <-ctx.Done():
			return whisper.Job{}, false
		}
	}
	// Every job that starts is reported through its Done; those never taken, by Pool.
	_ = whisper.TranscribeQueue(ctx, r.m, next, whisper.ManyOptions{BatchSize: opts.BatchSize})
	stop()
	wg.Wait()
}

// job is the whisper job of j: opened (VAD, media) when the batches reach it, its sidecars
// written when it is done.
func (r *Runner) job(j *job, report func(*Outcome, error)) whisper.Job {
	var st *media.Stream
	return whisper.Job{
		Options: j.opts.Decode,
		Open: func(ctx context.Context, d *whisper.Options) (whisper.AudioSource, error) {
			var err error
			st, err = r.open(ctx, j, d)
			if err != nil {
				return nil, err
			}
			return st, nil
		},
		Done: func(res *whisper.Result, err error) {
			if st == nil { // Open failed: its error is the job's
				report(nil, err)
				return
			}
			defer st.Close()
			if err != nil {
				report(nil, j.failed(err))
				return
			}
			report(r.write(j, st, res))
		},
	}
}
