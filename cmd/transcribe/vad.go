package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/vad"
)

// vadCmd prints the speech segments of a file as JSON (DESIGN.md: `transcribe vad`).
type vadCmd struct {
	File string `arg:"" name:"file" help:"Audio or video file (WAV natively, anything else through ffmpeg)." type:"existingfile"`

	Model string `help:"Silero VAD ggml file (default: the embedded Silero v6.2.0)." type:"existingfile" placeholder:"PATH"`

	backendFlags `embed:""`

	Threshold  float32       `default:"0.5" help:"Speech probability threshold."`
	MinSpeech  time.Duration `default:"250ms" help:"Drop speech shorter than this."`
	MinSilence time.Duration `default:"100ms" help:"Silence needed to end a segment."`
	MaxSpeech  time.Duration `default:"0s" help:"Split speech longer than this (0: no limit)."`
	SpeechPad  time.Duration `default:"30ms" help:"Padding added around each segment."`
	Probs      bool          `help:"Also print the per-frame (32 ms) speech probabilities."`
}

// vadOutput is the JSON on stdout.
type vadOutput struct {
	Segments []vad.Segment `json:"segments"`
	Probs    []float32     `json:"probs,omitempty"`
}

func (c *vadCmd) Run(e *env) error {
	choice, err := c.choice()
	if err != nil {
		return err
	}
	b, err := openBackend(choice, e.log)
	if err != nil {
		return err
	}
	defer b.Close()
	var m *vad.Model
	if c.Model != "" {
		m, err = vad.Open(c.Model, b)
	} else {
		m, err = vad.Default(b)
	}
	if err != nil {
		return err
	}
	defer m.Close()

	opts := vad.DefaultOptions()
	opts.Threshold = c.Threshold
	opts.MinSpeechDuration = c.MinSpeech
	opts.MinSilenceDuration = c.MinSilence
	opts.MaxSpeechDuration = c.MaxSpeech
	opts.SpeechPad = c.SpeechPad

	// Decode and detect in one pass, a second of audio at a time, so memory does not grow
	// with the length of the file (only the probabilities are kept: 4 bytes per 32 ms).
	t0 := time.Now()
	in, err := media.Open(e.ctx, c.File, media.Options{})
	if err != nil {
		return err
	}
	defer in.Close()
	st := m.NewStream()
	defer st.Close()
	buf := make([]float32, vad.SampleRate)
	var probs []float32
	for {
		n, err := in.Read(buf)
		if n > 0 {
			p, perr := st.Push(buf[:n])
			if perr != nil {
				return fmt.Errorf("vad %s: %w", c.File, perr)
			}
			probs = append(probs, p...)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	p, err := st.Flush()
	if err != nil {
		return fmt.Errorf("vad %s: %w", c.File, err)
	}
	probs = append(probs, p...)
	segs, err := vad.SegmentsFromProbs(probs, opts)
	if err != nil {
		return err
	}
	// Times on the file's timeline: the audio stream may start after the container does.
	off := in.StartOffset.Seconds()
	for i := range segs {
		segs[i].Start += off
		segs[i].End += off
	}
	e.log.Debug().Str("path", c.File).Str("backend", b.Device()).Dur("vad", time.Since(t0)).
		Int("segments", len(segs)).Msg("vad done")
	out := vadOutput{Segments: segs}
	if out.Segments == nil {
		out.Segments = []vad.Segment{}
	}
	if c.Probs {
		out.Probs = probs
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
