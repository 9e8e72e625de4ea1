package main

import (
	"fmt"
	"os"
	"strings"
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
	Backend    string `default:"auto" enum:"auto,cpu,cuda,metal" help:"Compute backend: auto, cpu, cuda, metal."`
	Threads    int    `help:"CPU threads (default: all cores)."`

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
	VAD          bool    `name:"vad" default:"true" negatable:"" help:"Transcribe only the speech that voice activity detection finds (--no-vad: everything)."`
}

func (c *runCmd) Run(e *env) error {
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
	b, err := openBackend(c.Backend, c.Threads)
	if err != nil {
		return err
	}
	defer b.Close()
	t0 := time.Now()
	m, err := whisper.Load(c.Model, b)
	if err != nil {
		return err
	}
	defer m.Close()
	var v *vad.Model
	if c.VAD {
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
	runner, err := pipeline.NewRunner(m, c.Model, v, version)
	if err != nil {
		return err
	}
	e.log.Debug().Str("model", c.Model).Str("arch", m.Arch).Str("backend", b.Device()).
		Dur("load", time.Since(t0)).Msg("model loaded")

	opts := pipeline.Options{Decode: whisper.DefaultOptions(), OutDir: c.Out, Formats: formats,
		Force: c.Force, AudioTrack: c.AudioTrack, NoVAD: !c.VAD}
	d := &opts.Decode
	if c.Language != "auto" {
		d.Language = c.Language
	}
	d.Task = c.Task
	d.BeamSize = c.BeamSize
	d.BestOf = c.BestOf
	d.NoFallback = c.NoFallback
	d.NoTimestamps = c.NoTimestamps
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

	failed := 0
	for i, f := range c.Files {
		bar := newProgress(e.tty, f, i+1, len(c.Files))
		opts.Progress = bar.update
		o, err := runner.File(e.ctx, f, opts)
		bar.done()
		if err != nil {
			if e.ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", e.ctx.Err())
			}
			fmt.Fprintf(os.Stderr, "transcribe: %v\n", err)
			failed++
			continue
		}
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
	if failed > 0 {
		if len(c.Files) == 1 {
			return errSilent
		}
		return fmt.Errorf("%d of %d files failed", failed, len(c.Files))
	}
	return nil
}
