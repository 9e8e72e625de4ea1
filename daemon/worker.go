package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/daemon/api"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/summarize"
	"github.com/verbatimhq/verbatim/whisper"
)

const (
	// leaseTTL is how long a lease holds without a heartbeat: longer than any window takes.
	leaseTTL = 10 * time.Minute
	// heartbeatEvery is how often the jobs in progress report their progress.
	heartbeatEvery = 2 * time.Second
	// pollEvery is how often an idle worker looks for work it was not woken for (retries).
	pollEvery = 5 * time.Second
)

// worker transcribes the queue's jobs: one round at a time, each round a pipeline Serve on the
// model of its jobs, taking jobs from the queue as the batches have room (files queued together
// share the batches, as the CLI's do). The model is loaded for the first job and unloaded after
// IdleUnload without work.
type worker struct {
	c     Config
	q     queue.Queue
	wake  <-chan struct{}
	log   zerolog.Logger
	owner string

	model    string // the loaded model's path; "" when none is loaded
	runner   *pipeline.Runner
	unload   func()
	lastUsed time.Time
	held     *queue.Job // leased for the next round (another model)

	mu       sync.Mutex
	inflight map[int64]*flight

	broker *broker         // the jobs' events, for the API's watchers
	svc    *service        // the API's view of jobs
	cbWake chan<- struct{} // a job ended: its callback may be due
	gate   *powerGate      // pauses the queue for power and heat (nil: never)

	awakeErr bool // the sleep assertion failed once (said once in the log)

	sums   map[summarize.Config]*summarizer // the summary stage, per configuration
	toLLM  []llmSummary                     // transcripts of this round whose summary a language model makes
	sumsMu sync.Mutex
}

// summarizer is a summary stage and when it was made: one without a language model is made
// again after summarizerTTL, so that a server started later is found.
type summarizer struct {
	s    *summarize.Summarizer
	made time.Time
}

const summarizerTTL = 5 * time.Minute

// llmSummary is a transcript whose language model summary is due: its JSON sidecar.
type llmSummary struct {
	json string
	s    *summarize.Summarizer
	job  int64
}

// flight is a job in progress: its progress for the heartbeats, and how to cancel it alone.
type flight struct {
	done, total float64
	cancel      context.CancelFunc
}

// cancelTask stops job id if it is in progress here (it was cancelled in the queue already).
func (w *worker) cancelTask(id int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fl := w.inflight[id]; fl != nil && fl.cancel != nil {
		fl.cancel()
	}
}

// ended tells the job's watchers where job id stands after a change the worker made: its end
// (done, failed, cancelled), or its state (queued again for a retry, released), and wakes the
// callbacks when it ended.
func (w *worker) ended(ctx context.Context, id int64) {
	if w.broker == nil {
		return
	}
	j, err := w.q.Get(context.WithoutCancel(ctx), id)
	if err != nil {
		return
	}
	v := w.svc.view(context.WithoutCancel(ctx), j)
	switch j.State {
	case queue.Done, queue.Failed, queue.Cancelled:
		w.broker.publish(id, api.Event{Type: string(j.State), Job: &v})
		select {
		case w.cbWake <- struct{}{}:
		default:
		}
	default:
		w.broker.publish(id, api.Event{Type: "state", Job: &v})
	}
}

func (w *worker) run(ctx context.Context) error {
	host, _ := os.Hostname()
	w.owner = fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	w.inflight = map[int64]*flight{}
	defer w.unloadModel()
	var hb sync.WaitGroup
	hbctx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	hb.Go(func() { w.heartbeats(hbctx) })
	defer func() { stopHB(); hb.Wait() }()
	for ctx.Err() == nil {
		if w.gate.paused() != "" {
			// No job starts while the queue is paused: one held for the next round goes back.
			w.releaseHeld(ctx)
			w.idle(ctx)
			continue
		}
		j, err := w.next(ctx)
		switch {
		case errors.Is(err, queue.ErrEmpty):
			w.idle(ctx)
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			w.log.Error().Err(err).Msg("cannot take a job from the queue")
			sleep(ctx, pollEvery)
			continue
		}
		w.round(ctx, j)
	}
	return nil
}

// next is the job held over from the last round, or a new lease.
func (w *worker) next(ctx context.Context) (queue.Job, error) {
	if j := w.held; j != nil {
		w.held = nil
		return *j, nil
	}
	return w.q.Lease(ctx, w.owner, leaseTTL)
}

// idle waits for work (a wake-up from the intake, or the poll), unloading the model after
// IdleUnload without any.
func (w *worker) idle(ctx context.Context) {
	if w.runner != nil && time.Since(w.lastUsed) >= w.c.IdleUnload {
		w.unloadModel()
	}
	wait := pollEvery
	if w.runner != nil {
		wait = min(wait, max(time.Until(w.lastUsed.Add(w.c.IdleUnload)), 10*time.Millisecond))
	}
	var resumed <-chan struct{} // nil (never) without a gate
	if w.gate != nil {
		resumed = w.gate.resumed
	}
	select {
	case <-ctx.Done():
	case <-w.wake:
	case <-resumed:
	case <-time.After(wait):
	}
}

// releaseHeld puts the job held for the next round back in the queue, without counting the
// attempt.
func (w *worker) releaseHeld(ctx context.Context) {
	j := w.held
	if j == nil {
		return
	}
	w.held = nil
	if err := w.q.Release(context.WithoutCancel(ctx), j.ID, w.owner); err != nil {
		w.log.Warn().Err(err).Str("path", j.Path).Msg("cannot put the job back in the queue")
		return
	}
	w.ended(ctx, j.ID)
}

// keepAwake keeps the system from sleeping until release is called (Config.Awake).
func (w *worker) keepAwake() (release func()) {
	if w.c.Awake == nil {
		return func() {}
	}
	release, err := w.c.Awake.Acquire("Verbatim is transcribing")
	if err != nil {
		if !w.awakeErr {
			w.log.Warn().Err(err).Msg("cannot keep the system awake while transcribing: it may sleep during a job")
		}
		w.awakeErr = true
		return func() {}
	}
	return release
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// plan is a leased job made ready to run: its options and model.
type plan struct {
	job   queue.Job
	opts  pipeline.Options
	model string
	sum   *summarize.Summarizer // nil: no summary stage
}

// prepare reads a job's spec. A spec that cannot be used fails the job for good.
func (w *worker) prepare(ctx context.Context, j queue.Job) (*plan, bool) {
	var sp spec
	err := json.Unmarshal(j.Spec, &sp)
	var opts pipeline.Options
	if err == nil {
		opts, _, err = w.c.Options(sp.Folder)
	}
	if err != nil {
		w.fail(ctx, j, fmt.Errorf("the job's settings cannot be used: %w", err), true)
		w.ended(ctx, j.ID)
		return nil, false
	}
	p := &plan{job: j, opts: opts, model: sp.Model}
	if w.c.Summary != nil {
		p.sum = w.summarizer(ctx, w.c.Summary(sp.Folder))
		p.opts.Summarize = p.sum.Offline
	}
	return p, true
}

// summarizer is the summary stage for cfg, made (and the language model server looked for) the
// first time it is needed. One whose server cannot be had writes extractive summaries that say
// why, and the log says it once.
func (w *worker) summarizer(ctx context.Context, cfg summarize.Config) *summarize.Summarizer {
	w.sumsMu.Lock()
	defer w.sumsMu.Unlock()
	if e := w.sums[cfg]; e != nil && (e.s.UsesLLM() || time.Since(e.made) < summarizerTTL) {
		return e.s
	}
	s, err := summarize.New(ctx, cfg)
	if err != nil {
		w.log.Warn().Err(err).Msg("the summaries' language model cannot be used: the summaries are extractive")
		s = summarize.Unavailable(cfg, err)
	} else if s.UsesLLM() {
		w.log.Info().Msg(s.Describe())
	}
	if w.sums == nil {
		w.sums = map[summarize.Config]*summarizer{}
	}
	w.sums[cfg] = &summarizer{s: s, made: time.Now()}
	return s
}

// summaryDue records that p's transcript, written with its extractive summary, gets its language
// model summary after the round.
func (w *worker) summaryDue(p *plan, out *pipeline.Outcome) {
	if p.sum == nil || !p.sum.UsesLLM() || out == nil || out.Skipped {
		return
	}
	w.sumsMu.Lock()
	w.toLLM = append(w.toLLM, llmSummary{json: pipeline.OutputBase(p.job.Path, p.opts.OutDir) + ".json", s: p.sum, job: p.job.ID})
	w.sumsMu.Unlock()
}

// summaries makes the language model summaries due after a round, one transcript at a time,
// with the Whisper model unloaded first when so configured, and asks each server to unload
// its model afterwards. A failure leaves the extractive summary (its note says what failed) and
// a warning in the log; the jobs stay done.
func (w *worker) summaries(ctx context.Context) {
	w.sumsMu.Lock()
	due := w.toLLM
	w.toLLM = nil
	w.sumsMu.Unlock()
	if len(due) == 0 {
		return
	}
	if w.c.UnloadForSummary {
		w.unloadModel()
	}
	used := map[*summarize.Summarizer]bool{}
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		used[d.s] = true
		t0 := time.Now()
		warn := func(msg string) { w.log.Warn().Str("json", d.json).Int64("job", d.job).Msg(msg) }
		t, _, err := summarize.Rewrite(ctx, d.s, d.json, true, warn)
		if err != nil {
			w.log.Warn().Err(err).Str("json", d.json).Int64("job", d.job).Msg("summary")
			continue
		}
		w.log.Info().Str("json", d.json).Int64("job", d.job).Dur("took", time.Since(t0)).Msg(summarize.Describe(t))
	}
	for s := range used {
		if err := s.Close(context.WithoutCancel(ctx)); err != nil {
			w.log.Warn().Err(err).Msg("the language model server did not unload the model")
		}
	}
}

// round runs one pipeline Serve for the model of job first, with first and then the jobs the
// queue gives while the batches have room and the model is the same.
func (w *worker) round(ctx context.Context, first queue.Job) {
	p, ok := w.prepare(ctx, first)
	if !ok {
		return
	}
	if err := w.loadModel(ctx, p.model); err != nil {
		w.fail(ctx, first, fmt.Errorf("load model %s: %w", p.model, err), false)
		w.ended(ctx, first.ID)
		return
	}
	pending := p
	tasks := func() (pipeline.Task, bool) {
		for ctx.Err() == nil {
			p := pending
			pending = nil
			if p == nil {
				if w.gate.paused() != "" {
					return pipeline.Task{}, false // paused: the jobs in progress finish, no other starts
				}
				j, err := w.q.Lease(ctx, w.owner, leaseTTL)
				if err != nil {
					return pipeline.Task{}, false // none ready: the round ends with the jobs in progress
				}
				if p, ok = w.prepare(ctx, j); !ok {
					continue
				}
			}
			if p.model != w.model {
				w.held = &p.job // the next round loads its model
				return pipeline.Task{}, false
			}
			if w.reuse(ctx, p) {
				continue
			}
			return w.task(ctx, p), true
		}
		return pipeline.Task{}, false
	}
	// The system stays awake while the round's jobs run (and their summaries are made), and
	// may sleep again after.
	release := w.keepAwake()
	defer release()
	w.runner.Serve(ctx, tasks, w.c.Batch)
	w.lastUsed = time.Now()
	w.summaries(ctx)
}

// reuse writes the sidecars of p's file from the stored result of its content and settings, if
// there is one, and ends the job; it reports whether it did.
func (w *worker) reuse(ctx context.Context, p *plan) bool {
	j := p.job
	data, ok, err := w.q.Result(ctx, j.Key())
	if err != nil || !ok {
		return false
	}
	var s pipeline.Stored
	if err := s.UnmarshalBinary(data); err != nil {
		w.log.Warn().Err(err).Str("path", j.Path).Msg("the stored result cannot be read: transcribing again")
		return false
	}
	out, err := w.runner.Reuse(j.Path, p.opts, &s)
	if err != nil {
		w.fail(ctx, j, err, definitive(j.Path, err))
		w.ended(ctx, j.ID)
		return true
	}
	// The sidecars are written: the record is too, even while stopping.
	if err := w.q.Complete(context.WithoutCancel(ctx), j.ID, w.owner); err != nil {
		w.log.Error().Err(err).Str("path", j.Path).Msg("cannot record the job as done")
		return true
	}
	w.log.Info().Str("path", j.Path).Int64("job", j.ID).Strs("outputs", out.Outputs).Bool("skipped", out.Skipped).
		Msg("done from the stored transcript of the same content and settings, without transcribing")
	w.summaryDue(p, out)
	w.ended(ctx, j.ID)
	return true
}

// task is the pipeline task of plan p: resumed from its checkpoint, reporting its progress and
// checkpoints to the queue, and ending the job when it is done.
func (w *worker) task(ctx context.Context, p *plan) pipeline.Task {
	j := p.job
	t := pipeline.Task{Path: j.Path, Options: p.opts}
	if len(j.Checkpoint) > 0 {
		var c whisper.Checkpoint
		if err := c.UnmarshalBinary(j.Checkpoint); err != nil {
			w.log.Warn().Err(err).Str("path", j.Path).Msg("the checkpoint cannot be read: starting over")
		} else {
			t.Resume = &c
			w.log.Info().Str("path", j.Path).Int64("job", j.ID).Str("at", clock(c.Done())).Float64("at_s", c.Done()).
				Int("windows", c.Windows()).Int("segments", c.Segments()).Msg("resuming from the checkpoint")
		}
	}
	tctx, cancel := context.WithCancel(context.Background()) // the job's own: the API may cancel it alone
	t.Ctx = tctx
	w.mu.Lock()
	fl := &flight{cancel: cancel, done: j.Done, total: j.Total}
	w.inflight[j.ID] = fl
	w.mu.Unlock()
	w.log.Info().Str("path", j.Path).Int64("job", j.ID).Int("attempt", j.Attempts).Msg("transcribing")
	if w.broker != nil {
		w.broker.started(j.ID, w.svc.view(ctx, j))
	}
	t.Progress = func(done, total time.Duration) {
		w.mu.Lock()
		fl.done, fl.total = done.Seconds(), total.Seconds()
		w.mu.Unlock()
		if w.broker != nil {
			now := j
			now.Done, now.Total = done.Seconds(), total.Seconds()
			w.broker.publish(j.ID, api.Event{Type: "progress", Progress: api.ProgressOf(now, time.Now())})
		}
	}
	t.Segments = func(segs []sidecar.Segment) {
		if w.broker == nil {
			return
		}
		for _, s := range segs {
			w.broker.publish(j.ID, api.Event{Type: "segment", Segment: api.SegmentOf(s)})
		}
	}
	var lastSaved time.Time
	t.Checkpoint = func(c *whisper.Checkpoint) {
		// Saved at once (at most once a second): a kill loses at most the windows since.
		if time.Since(lastSaved) < time.Second {
			return
		}
		data, err := c.MarshalBinary()
		if err != nil {
			return
		}
		lastSaved = time.Now()
		w.mu.Lock()
		pr := queue.Progress{Done: fl.done, Total: fl.total, Checkpoint: data}
		w.mu.Unlock()
		if err := w.q.Heartbeat(context.WithoutCancel(ctx), j.ID, w.owner, leaseTTL, pr); err != nil {
			w.log.Warn().Err(err).Str("path", j.Path).Msg("cannot save the checkpoint")
		}
	}
	t.Done = func(out *pipeline.Outcome, err error) {
		w.mu.Lock()
		delete(w.inflight, j.ID)
		w.mu.Unlock()
		cancelled := tctx.Err() != nil
		cancel()
		if cancelled && err != nil && ctx.Err() == nil {
			// Cancelled through the API: the queue says so already, and the watchers know.
			w.log.Info().Str("path", j.Path).Int64("job", j.ID).Msg("stopped: cancelled")
			return
		}
		w.finish(ctx, j, out, err)
		w.ended(ctx, j.ID)
		if err == nil {
			w.summaryDue(p, out)
		}
	}
	return t
}

// finish records a job's end.
func (w *worker) finish(ctx context.Context, j queue.Job, out *pipeline.Outcome, err error) {
	bg := context.WithoutCancel(ctx) // the record is written even while stopping
	switch {
	case err == nil:
		if out.Stored != nil {
			if data, merr := out.Stored.MarshalBinary(); merr == nil {
				if serr := w.q.StoreResult(bg, j.Key(), data); serr != nil {
					w.log.Warn().Err(serr).Str("path", j.Path).Msg("cannot store the result for copies")
				}
			}
		}
		if cerr := w.q.Complete(bg, j.ID, w.owner); cerr != nil {
			w.log.Error().Err(cerr).Str("path", j.Path).Msg("cannot record the job as done")
			return
		}
		ev := w.log.Info().Str("path", j.Path).Int64("job", j.ID).Strs("outputs", out.Outputs)
		if out.Skipped {
			ev.Str("reason", out.Reason).Msg("done: the sidecars were current")
			return
		}
		if out.Resumed > 0 {
			ev = ev.Str("resumed_at", clock(out.Resumed))
		}
		if len(out.Gaps) > 0 {
			// Speech left out is said where the user looks: the note, the JSON, and here.
			w.log.Warn().Str("path", j.Path).Int64("job", j.ID).Int("gaps", len(out.Gaps)).
				Dur("not_transcribed", out.NotTranscribed()).Str("first_at", clock(out.Gaps[0].Start.Seconds())).
				Msg("speech left out of the transcript after retries: see gaps in the JSON sidecar")
		}
		for _, msg := range out.Warnings { // a chapter still that could not be had, say
			w.log.Warn().Str("path", j.Path).Int64("job", j.ID).Msg(msg)
		}
		ev.Dur("elapsed", out.Elapsed).Dur("audio", out.Duration).Int("segments", out.Segments).
			Int("gaps", len(out.Gaps)).Msg("done")
	case ctx.Err() != nil: // stopping: whatever the error says, the job did not fail
		if rerr := w.q.Release(bg, j.ID, w.owner); rerr != nil {
			w.log.Warn().Err(rerr).Str("path", j.Path).Msg("cannot put the job back in the queue")
			return
		}
		w.log.Info().Str("path", j.Path).Int64("job", j.ID).Msg("stopped: back in the queue, to resume from its checkpoint")
	case errors.Is(err, whisper.ErrCheckpoint):
		// The checkpoint was taken with other settings: start over, without counting it.
		w.q.Heartbeat(bg, j.ID, w.owner, leaseTTL, queue.Progress{Checkpoint: []byte{}})
		w.q.Release(bg, j.ID, w.owner)
		w.log.Warn().Str("path", j.Path).Msg("the checkpoint does not match the settings: starting over")
	default:
		w.fail(bg, j, err, definitive(j.Path, err))
	}
}

// definitive reports whether trying the job again cannot help: the input is at fault
// (pipeline.ErrPermanent) and the file is gone or no longer a file. A file that is there but
// cannot be decoded is tried MaxAttempts times with backoff, like any failure: it may still be
// being written in place (a recorder that fixes its header at the end, a writer that paused for
// longer than the settle time). After its last attempt it stays failed, with its reason, until
// the file changes (new content is a new job).
func definitive(path string, err error) bool {
	if !errors.Is(err, pipeline.ErrPermanent) {
		return false
	}
	fi, serr := os.Stat(path)
	return serr != nil || !fi.Mode().IsRegular()
}

// fail ends a job's attempt with err: for good when permanent or out of attempts, else to be
// retried after a backoff.
func (w *worker) fail(ctx context.Context, j queue.Job, err error, permanent bool) {
	retry := time.Now().Add(backoff(j.Attempts))
	if ferr := w.q.Fail(context.WithoutCancel(ctx), j.ID, w.owner, err.Error(), permanent, retry); ferr != nil {
		w.log.Error().Err(ferr).Str("path", j.Path).Msg("cannot record the failure")
		return
	}
	ev := w.log.Error().Err(err).Str("path", j.Path).Int64("job", j.ID).Int("attempt", j.Attempts)
	switch {
	case permanent:
		ev.Msg("failed: not retried until the file changes")
	case j.Attempts >= j.MaxAttempts:
		ev.Msg("failed after its last attempt")
	default:
		ev.Time("retry_at", retry).Msg("failed: will retry")
	}
}

// heartbeats reports the progress of the jobs in progress until ctx ends.
func (w *worker) heartbeats(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		beats := map[int64]queue.Progress{}
		for id, fl := range w.inflight {
			beats[id] = queue.Progress{Done: fl.done, Total: fl.total}
		}
		w.mu.Unlock()
		for id, p := range beats {
			if err := w.q.Heartbeat(ctx, id, w.owner, leaseTTL, p); err != nil && ctx.Err() == nil {
				w.log.Debug().Err(err).Int64("job", id).Msg("heartbeat")
			}
		}
	}
}

// loadModel makes model the loaded one.
func (w *worker) loadModel(ctx context.Context, model string) error {
	if w.model == model && w.runner != nil {
		return nil
	}
	w.unloadModel()
	start := time.Now()
	r, unload, err := w.c.Load(ctx, model)
	if err != nil {
		return err
	}
	r.SetNotice(func(msg string) { w.log.Warn().Str("model", model).Msg(msg) })
	w.model, w.runner, w.unload, w.lastUsed = model, r, unload, time.Now()
	w.log.Info().Str("model", model).Dur("took", time.Since(start)).Msg("model loaded")
	return nil
}

func (w *worker) unloadModel() {
	if w.runner == nil {
		return
	}
	w.unload()
	model := w.model
	w.model, w.runner, w.unload = "", nil, nil
	// An idle daemon should hold little memory: the model's pages go back to the system now,
	// not when the runtime's scavenger gets to them.
	debug.FreeOSMemory()
	w.log.Info().Str("model", model).Msg("model unloaded")
}

// clock writes seconds as h:mm:ss.
func clock(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}
