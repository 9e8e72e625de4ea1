package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/vad"
	"github.com/verbatimhq/verbatim/whisper"
)

type runCmd struct {
	Files []string `arg:"" name:"file" help:"Audio or video files to transcribe (anything ffmpeg reads; WAV needs no ffmpeg)." type:"path"`

	Model      string `help:"A model NAME from 'transcribe models list' (default: large-v3, else large-v3-turbo), or a PATH to a ggml .bin or a safetensors folder." placeholder:"NAME|PATH"`
	Formats    string `default:"srt,md" help:"Output formats, comma-separated: srt, vtt, txt, md, json (a .json run record is always written)."`
	Force      bool   `help:"Transcribe even when the sidecars are current for this input, model and settings."`
	AudioTrack string `help:"Audio track: a 0-based index among the audio streams, or a language code (default: the first, or the one matching --language)." placeholder:"N|LANG"`
	Out        string `help:"Write outputs into this folder instead of beside each input." type:"path" placeholder:"DIR"`
	Batch      int    `help:"Windows encoded together, and sequences decoded together, taken from several files at once (default: 8 on a GPU, 1 on the CPU). Sizes batches only: --windows chooses the algorithm." placeholder:"N"`

	backendFlags `embed:""`

	Language     string  `default:"auto" help:"Spoken language code, or auto to detect."`
	Task         string  `default:"transcribe" enum:"transcribe,translate" help:"transcribe or translate (to English)."`
	BeamSize     int     `default:"5" help:"Beam size for temperature 0 (1 = greedy)."`
	BestOf       int     `default:"5" help:"Candidates when sampling at temperature > 0."`
	Temperature  float64 `default:"0" help:"Initial sampling temperature."`
	NoFallback   bool    `help:"Do not retry at higher temperatures when decoding fails the quality checks."`
	NoTimestamps bool    `help:"Decode without timestamp tokens (one segment per window)."`
	Prompt       string  `help:"Initial prompt: vocabulary or style for the first window."`
	Hotwords     string  `help:"Words to favour in every window (names, jargon), given to the model as a prompt prefix."`
	Languages    string  `help:"Restrict language detection to these codes, comma-separated (e.g. de,en)."`
	Words        bool    `name:"word-timestamps" default:"true" negatable:"" help:"Time every word (from the model's cross-attention) and re-time segments to their words; --no-word-timestamps saves one decoder pass a window."`
	VAD          *bool   `name:"vad" negatable:"" help:"Transcribe only the speech that voice activity detection finds (--no-vad: everything). Default: on, off with --compat whisper.cpp."`
	Windows      string  `default:"sequential" enum:"sequential,independent" help:"sequential: each window starts where the previous one's text ended and is conditioned on it (the reference's algorithm); independent: windows cut up front and decoded whole, independently, many at a time (faster on a GPU for one long file)."`
	Compat       string  `default:"openai" enum:"openai,whisper.cpp" help:"Whose decoding rules to follow where openai/whisper and whisper.cpp differ; whisper.cpp also takes its defaults (no non-speech suppression, no VAD), for comparing with it."`
}

func (c *runCmd) Run(e *env) error {
	choice, err := c.choice()
	if err != nil {
		return err
	}
	model, err := resolveModel(c.Model)
	if err != nil {
		return err
	}
	c.Model = model
	formats, err := sidecar.ParseFormats(c.Formats)
	if err != nil {
		return fmt.Errorf("--formats: %w", err)
	}
	if c.Out != "" {
		if fi, err := os.Stat(c.Out); err != nil || !fi.IsDir() {
			return fmt.Errorf("--out %s: not a folder", c.Out)
		}
	}
	opts, err := c.options(formats)
	if err != nil {
		return err
	}
	backends, err := openBackends(choice, e.log)
	if err != nil {
		return err
	}
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()
	// One worker per device: its own backend, model, voice activity detector and Runner.
	var runners []*pipeline.Runner
	for i, b := range backends {
		t0 := time.Now()
		m, err := whisper.Load(c.Model, b)
		if err != nil {
			return err
		}
		defer m.Close()
		var v *vad.Model
		if !opts.NoVAD {
			// Silero is small: it runs on the CPU whatever the Whisper backend is.
			vb, err := cpu.New(cpu.Options{Threads: c.Threads})
			if err != nil {
				return err
			}
			defer vb.Close()
			if v, err = vad.Default(vb); err != nil {
				return err
			}
			defer v.Close()
		}
		var r *pipeline.Runner
		if i == 0 {
			if r, err = pipeline.NewRunner(m, c.Model, v, version); err != nil {
				return err
			}
		} else {
			r = runners[0].WithModel(m, v)
		}
		runners = append(runners, r)
		e.log.Debug().Str("model", c.Model).Str("arch", m.Arch).Str("backend", b.Device()).
			Dur("load", time.Since(t0)).Msg("model loaded")
	}
	e.log.Debug().Stringer("windows", opts.Decode.Windows).Stringer("compat", opts.Decode.Compat).
		Bool("vad", !opts.NoVAD).Int("beam", opts.Decode.BeamSize).Msg("decoding")

	return c.transcribe(e, runners, opts)
}

// options are the pipeline's options for the flags: pipeline.DefaultOptions (whisper.cpp's
// defaults instead where they differ with --compat whisper.cpp), changed by each flag.
func (c *runCmd) options(formats []sidecar.Format) (pipeline.Options, error) {
	opts := pipeline.DefaultOptions()
	opts.OutDir, opts.Formats, opts.Force, opts.AudioTrack, opts.BatchSize = c.Out, formats, c.Force, c.AudioTrack, c.Batch
	d := &opts.Decode
	compat, err := whisper.ParseCompat(c.Compat)
	if err != nil {
		return opts, fmt.Errorf("--compat: %w", err)
	}
	if compat == whisper.CompatWhisperCpp {
		d.WhisperCppDefaults()
		opts.NoVAD = true
	}
	if d.Windows, err = whisper.ParseWindowMode(c.Windows); err != nil {
		return opts, fmt.Errorf("--windows: %w", err)
	}
	if c.VAD != nil {
		opts.NoVAD = !*c.VAD
	}
	if c.Language != "auto" {
		d.Language = c.Language
	}
	d.Task = c.Task
	d.BeamSize = c.BeamSize
	d.BestOf = c.BestOf
	d.NoFallback = c.NoFallback
	d.NoTimestamps = c.NoTimestamps
	d.WordTimestamps = c.Words
	d.Prompt = c.Prompt
	d.Hotwords = c.Hotwords
	for _, l := range strings.Split(c.Languages, ",") {
		if l = strings.TrimSpace(l); l != "" {
			d.Languages = append(d.Languages, l)
		}
	}
	if c.Temperature > 0 || c.NoFallback {
		d.Temperatures = []float64{c.Temperature}
		if !c.NoFallback {
			for t := c.Temperature + 0.2; t <= 1.0+1e-9; t += 0.2 {
				d.Temperatures = append(d.Temperatures, t)
			}
		}
	}
	return opts, nil
}

// transcribe runs the files on the runners (one worker each, files from a shared queue, windows
// of several files batched) and prints one line per file in the order given, each as soon as
// the files before it are done. An input listed twice is done once.
func (c *runCmd) transcribe(e *env, runners []*pipeline.Runner, opts pipeline.Options) error {
	var inputs []string
	first := map[string]int{} // input -> its index in inputs
	for _, f := range c.Files {
		if _, ok := first[f]; !ok {
			first[f] = len(inputs)
			inputs = append(inputs, f)
		}
	}
	bars := &bars{tty: e.tty, inputs: inputs, index: first, results: make([]*pipeline.FileResult, len(inputs))}
	opts.FileProgress = bars.update
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
			fmt.Printf("%s: %s of audio in %s (%.1fx real time), language %s, %d segments -> %s\n",
				f, o.Duration.Round(time.Millisecond), o.Elapsed.Round(time.Millisecond), rtf, o.Language,
				o.Segments, strings.Join(o.Outputs, ", "))
		}
	}
	pipeline.Pool(e.ctx, runners, inputs, opts, func(i int, res pipeline.FileResult) {
		bars.finish(i, res)
		report()
	})
	bars.close()
	if e.ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", e.ctx.Err())
	}
	if failed > 0 {
		if len(inputs) == 1 {
			return errSilent
		}
		return fmt.Errorf("%d of %d files failed", failed, len(inputs))
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
