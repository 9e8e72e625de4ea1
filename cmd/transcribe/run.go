package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/summarize"
	"github.com/verbatimhq/verbatim/vad"
	"github.com/verbatimhq/verbatim/whisper"
)

type runCmd struct {
	Files []string `arg:"" name:"file" help:"Audio or video files to transcribe (anything ffmpeg reads; WAV needs no ffmpeg)." type:"path"`

	Force bool `help:"Transcribe even when the sidecars are current for this input, model and settings."`
	Batch int  `help:"Windows encoded and decoded together (each with its 5 beams at --beam-size 5), taken from several files at once (default: 64 with CUDA, 8 with Metal, 1 on the CPU; on CUDA reduced, with a warning, to what the free GPU memory holds). Sizes batches only: --windows chooses the algorithm." placeholder:"N"`
	// For timing random-weight models, which rarely end a window (docs/performance.md).
	MaxWindowTokens int `hidden:"" help:"At most N tokens sampled a window (benchmarks with random weights; changes transcripts)." placeholder:"N"`
	// For measuring lanes (docs/performance.md: slower than one on an H200, so not a default).
	Lanes int `hidden:"" help:"Batchers sharing each device, so that one's host work runs while the device computes another's batch (default 1)." placeholder:"N"`

	backendFlags  `embed:""`
	transcription `embed:""`
	llmFlags      `embed:""`
}

func (c *runCmd) Run(e *env) error {
	if c.MaxWindowTokens < 0 {
		return fmt.Errorf("--max-window-tokens %d: want 0 (no cap) or more", c.MaxWindowTokens)
	}
	if c.Lanes < 0 {
		return fmt.Errorf("--lanes %d: want 0 (the default) or more", c.Lanes)
	}
	choice, err := c.choice()
	if err != nil {
		return err
	}
	model, err := resolveModel(c.Model)
	if err != nil {
		return err
	}
	c.Model = model
	if _, err := sidecar.ParseFormats(c.Formats); err != nil {
		return fmt.Errorf("--formats: %w", err)
	}
	if c.Out != "" { // a folder not there yet is made when the first outputs are written
		if fi, err := os.Stat(c.Out); err == nil && !fi.IsDir() {
			return fmt.Errorf("--out %s: not a folder", c.Out)
		}
	}
	folder := c.folder(nil)
	opts, err := pipelineOptions(folder)
	if err != nil {
		return err
	}
	opts.Force, opts.BatchSize = c.Force, c.Batch
	opts.Decode.MaxWindowTokens = c.MaxWindowTokens
	// The summary stage is set up first: with --summary llm and no server, nothing is transcribed.
	sum, err := summarize.New(e.ctx, summaryConfig(folder, c.llmFlags))
	if err != nil {
		return summaryError(err)
	}
	if sum.UsesLLM() {
		e.log.Info().Msg(sum.Describe())
	} else {
		e.log.Debug().Msg(sum.Describe())
	}
	opts.Summarize = sum.Offline
	results, err := c.transcribeAll(e, choice, opts)
	// The models are closed now: the language model gets the memory the transcription had.
	if serr := c.summaries(e, sum, opts, results); err == nil {
		err = serr
	}
	return err
}

// transcribeAll loads the model on each device and transcribes the files (see transcribe); the
// models and backends are closed when it returns.
func (c *runCmd) transcribeAll(e *env, choice backendChoice, opts pipeline.Options) ([]*pipeline.FileResult, error) {
	backends, err := openBackends(choice, e.log)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()
	// One worker per device: its own backend, model, voice activity detector and Runner.
	var runners []*pipeline.Runner
	var models []*whisper.Model
	for i, b := range backends {
		t0 := time.Now()
		m, err := whisper.Load(c.Model, b)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		models = append(models, m)
		var v *vad.Model
		var moreVAD []*vad.Model
		if !opts.NoVAD {
			// Silero is small: it runs on the CPU whatever the Whisper backend is, a copy per
			// file whose first pass runs at once.
			vs, closeVADs, err := openVADs(vadCopies(b))
			if err != nil {
				return nil, err
			}
			defer closeVADs()
			v, moreVAD = vs[0], vs[1:]
		}
		var r *pipeline.Runner
		if i == 0 {
			if r, err = pipeline.NewRunner(m, c.Model, v, version); err != nil {
				return nil, err
			}
		} else {
			r = runners[0].WithModel(m, v)
		}
		r.AddVAD(moreVAD...)
		dev := b.Device()
		r.SetNotice(func(msg string) { e.log.Warn().Str("backend", dev).Msg(msg) })
		r.SetLanes(c.Lanes)
		runners = append(runners, r)
		e.log.Debug().Str("model", c.Model).Str("arch", m.Arch).Str("backend", b.Device()).
			Dur("load", time.Since(t0)).Msg("model loaded")
	}
	e.log.Debug().Stringer("windows", opts.Decode.Windows).Stringer("compat", opts.Decode.Compat).
		Bool("vad", !opts.NoVAD).Int("beam", opts.Decode.BeamSize).Msg("decoding")
	if e.log.GetLevel() > zerolog.DebugLevel {
		return c.transcribe(e, runners, opts)
	}
	// -v: where each device's transcription time went, phase by phase.
	stops := make([]func() whisper.Timing, len(models))
	for i, m := range models {
		stops[i] = m.TimePhases()
	}
	results, err := c.transcribe(e, runners, opts)
	for i, stop := range stops {
		logTiming(e, backends[i].Device(), stop())
	}
	if peak, ok := peakRSS(); ok {
		e.log.Debug().Float64("peak_resident_mb", math.Round(float64(peak)/1e5)/10).Msg("memory")
	}
	return results, err
}

// logTiming logs (-v) where a device's transcription time went: seconds by phase of the
// long-form driver, and its decoder's sessions and steps.
func logTiming(e *env, device string, t whisper.Timing) {
	d := zerolog.Dict()
	for _, p := range t.Phases {
		d.Float64(p.Name, math.Round(p.Seconds*1000)/1000)
	}
	e.log.Debug().Str("backend", device).Dict("seconds", d).Int("sessions", t.Sessions).Int("session_windows", t.SessionWindows).
		Int("steps", t.Steps).Int("step_sequences", t.StepRows).Int("windows_encoded", t.Encoded).Int("encodings_reused", t.Reused).
		Int("lanes", t.Lanes).Msg("where the time went")
}

// transcribe runs the files on the runners (one worker each, files from a shared queue, windows
// of several files batched) and prints one line per file in the order given, each as soon as
// the files before it are done. An input listed twice is done once. It returns each input's
// result, in the order of c.Files without repeats (nil for an input not done).
func (c *runCmd) transcribe(e *env, runners []*pipeline.Runner, opts pipeline.Options) ([]*pipeline.FileResult, error) {
	var inputs []string
	first := map[string]int{} // input -> its index in inputs
	for _, f := range c.Files {
		if _, ok := first[f]; !ok {
			first[f] = len(inputs)
			inputs = append(inputs, f)
		}
	}
	bars := &bars{tty: e.tty, inputs: inputs, index: first, results: make([]*pipeline.FileResult, len(inputs))}
	// -v: the time from the program's start to the first window done (start-up: the model
	// loaded, kernels compiled or read from their cache, the first window encoded and decoded).
	var firstOnce sync.Once
	opts.FileProgress = func(input string, done, total time.Duration) {
		if done > 0 {
			firstOnce.Do(func() {
				e.log.Debug().Dur("since_start", time.Since(started)).Str("input", input).Msg("first window done")
			})
		}
		bars.update(input, done, total)
	}
	failed, printed := 0, 0
	// report prints the lines of the files finished in a row from the first not yet printed.
	report := func() {
		for ; printed < len(inputs) && bars.results[printed] != nil; printed++ {
			f, res := inputs[printed], bars.results[printed]
			if res.Err != nil {
				if e.ctx.Err() != nil {
					continue // interrupted: said once below
				}
				msg := res.Err.Error()
				if !strings.Contains(msg, f) {
					msg = f + ": " + msg
				}
				fmt.Fprintf(os.Stderr, "transcribe: %s\n", msg)
				failed++
				continue
			}
			o := res.Outcome
			if o.Skipped {
				fmt.Printf("%s: skipped, %s\n", f, o.Reason)
				continue
			}
			rtf := 0.0
			if o.Elapsed > 0 {
				rtf = o.Duration.Seconds() / o.Elapsed.Seconds()
			}
			for _, g := range o.Gaps {
				fmt.Fprintf(os.Stderr, "transcribe: warning: %s: %.1fs-%.1fs not transcribed: %s\n", f,
					g.Start.Seconds(), g.End.Seconds(), sidecar.GapWhy(g))
			}
			for _, w := range o.Warnings {
				fmt.Fprintf(os.Stderr, "transcribe: warning: %s\n", w)
			}
			gaps := ""
			switch n := len(o.Gaps); {
			case n == 1:
				gaps = fmt.Sprintf(", 1 gap, %.1f s not transcribed", o.NotTranscribed().Seconds())
			case n > 1:
				gaps = fmt.Sprintf(", %d gaps, %.1f s not transcribed", n, o.NotTranscribed().Seconds())
			}
			fmt.Printf("%s: %s of audio in %s (%.1fx real time), language %s, %d segments%s -> %s\n",
				f, o.Duration.Round(time.Millisecond), o.Elapsed.Round(time.Millisecond), rtf, o.Language,
				o.Segments, gaps, strings.Join(o.Outputs, ", "))
		}
	}
	t0 := time.Now()
	pipeline.Pool(e.ctx, runners, inputs, opts, func(i int, res pipeline.FileResult) {
		bars.finish(i, res)
		report()
	})
	bars.close()
	logTotals(e, bars.results, time.Since(t0))
	if e.ctx.Err() != nil {
		return bars.results, fmt.Errorf("interrupted: %w", e.ctx.Err())
	}
	if failed > 0 {
		if len(inputs) == 1 {
			return bars.results, errSilent
		}
		return bars.results, fmt.Errorf("%d of %d files failed", failed, len(inputs))
	}
	return bars.results, nil
}

// logTotals logs (-v) what the run transcribed in wall time wall: the audio, the windows
// decoded (coverage retries among them) and the pace of both, "decoded windows x 30 s / wall"
// being the figure comparable with bench --e2e --decode default's.
func logTotals(e *env, results []*pipeline.FileResult, wall time.Duration) {
	var audio time.Duration
	files, windows := 0, 0
	for _, r := range results {
		if r == nil || r.Err != nil || r.Outcome == nil || r.Outcome.Skipped || r.Outcome.Stored == nil {
			continue
		}
		files++
		audio += r.Outcome.Duration
		windows += r.Outcome.Stored.Result.Windows
	}
	if files == 0 || wall <= 0 {
		return
	}
	e.log.Debug().Int("files", files).Dur("audio", audio).Dur("wall", wall).Int("windows_decoded", windows).
		Float64("real_time", audio.Seconds()/wall.Seconds()).Float64("decoded_windows_real_time", float64(windows)*30/wall.Seconds()).
		Msg("transcribed")
}

// summaries is the summary stage after the transcription: with a language model, the summary
// of every file transcribed now (written first with the extractive one) is made again by the
// model; a file skipped as current gets its summary made again when it is not what the flags
// ask for (another mode, model or template). One line per file it changes.
func (c *runCmd) summaries(e *env, sum *summarize.Summarizer, opts pipeline.Options, results []*pipeline.FileResult) error {
	defer func() {
		if err := sum.Close(context.WithoutCancel(e.ctx)); err != nil {
			e.log.Warn().Err(err).Msg("the language model server did not unload the model")
		}
	}()
	failed := 0
	for _, res := range results {
		if e.ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", e.ctx.Err())
		}
		if res == nil || res.Err != nil || res.Outcome == nil {
			continue
		}
		o := res.Outcome
		if !o.Skipped && !sum.UsesLLM() {
			continue // its sidecars already have the summary
		}
		line, err := resummarize(e.ctx, sum, pipeline.OutputBase(o.Input, opts.OutDir)+".json", !o.Skipped)
		if err != nil {
			fmt.Fprintf(os.Stderr, "transcribe: %v\n", err)
			failed++
			continue
		}
		if line != "" {
			fmt.Println(line)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d summaries failed", failed)
	}
	return nil
}

// bars draws the progress of the first unfinished input: the one whose line is printed next.
// Its methods are safe for concurrent use (the workers report progress from their goroutines).
type bars struct {
	mu      sync.Mutex
	tty     bool
	inputs  []string
	index   map[string]int
	results []*pipeline.FileResult
	shown   int // the input whose bar is drawn, -1: none
	bar     *progress
}

// update is the workers' progress callback.
func (b *bars) update(input string, done, total time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := b.index[input]
	if !ok || !b.tty {
		return
	}
	head := 0
	for head < len(b.results) && b.results[head] != nil {
		head++
	}
	if i != head {
		return
	}
	if b.bar == nil || b.shown != i {
		if b.bar != nil {
			b.bar.done()
		}
		b.bar, b.shown = newProgress(b.tty, input, i+1, len(b.inputs)), i
	}
	b.bar.update(done, total)
}

// finish records input i's result (called one at a time by the pool).
func (b *bars) finish(i int, res pipeline.FileResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.results[i] = &res
	if b.bar != nil && b.shown == i {
		b.bar.done()
		b.bar = nil
	}
}

func (b *bars) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.done()
		b.bar = nil
	}
}
