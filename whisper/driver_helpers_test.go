package whisper

import (
	"context"
)

// manyResult is the outcome of one job of transcribeMany: Result, or Err.
type manyResult struct {
	Result *Result
	Err    error
}

// transcribeMany runs jobs through the driver (TranscribeQueue, as the pipeline does) and
// returns their outcomes in order; a job never started fails with the queue's error.
func transcribeMany(ctx context.Context, m *Model, jobs []Job, opts ManyOptions) []manyResult {
	out := make([]manyResult, len(jobs))
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
			out[k] = manyResult{res, err}
			if done != nil {
				done(res, err)
			}
		}
		return j, true
	}
	err := TranscribeQueue(ctx, m, next, opts)
	for k, s := range started {
		if !s {
			out[k].Err = named(jobs[k].Name, err)
		}
	}
	return out
}

// transcribe runs one input through the driver, batch windows at most at a time (default: the
// backend's).
func transcribe(ctx context.Context, m *Model, src AudioSource, o Options, batch ...int) (*Result, error) {
	mo := ManyOptions{}
	if len(batch) > 0 {
		mo.BatchSize = batch[0]
	}
	r := transcribeMany(ctx, m, []Job{{Options: o, Source: src}}, mo)[0]
	return r.Result, r.Err
}
