// Package pipeline runs one job end to end: read the input audio, transcribe it with a loaded
// Whisper model, and write the sidecar files.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/whisper"
)

// ErrPermanent marks failures that retrying cannot fix (corrupt or unsupported input).
var ErrPermanent = errors.New("permanent failure")

// Options configure a job.
type Options struct {
	Decode  whisper.Options
	Formats []string // "srt" (more with the media issue)
	OutDir  string   // "" = beside the input
}

// Outcome says what a job produced.
type Outcome struct {
	Input    string
	Outputs  []string
	Duration time.Duration // of the audio
	Elapsed  time.Duration // wall time of transcription
	Language string
	Segments int
}

// File transcribes the WAV file at path with m and writes the requested sidecars.
func File(ctx context.Context, m *whisper.Model, path string, opts Options) (*Outcome, error) {
	pcm, err := audio.LoadWAV(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	if pcm.Rate != 16000 {
		pcm = audio.Resample(pcm, 16000)
	}
	start := time.Now()
	res, err := whisper.Transcribe(ctx, m, pcm.Samples, opts.Decode)
	if err != nil {
		return nil, fmt.Errorf("transcribe %s: %w", path, err)
	}
	out := &Outcome{
		Input:    path,
		Duration: time.Duration(pcm.Duration() * float64(time.Second)),
		Elapsed:  time.Since(start),
		Language: res.Language,
		Segments: len(res.Segments),
	}
	formats := opts.Formats
	if len(formats) == 0 {
		formats = []string{"srt"}
	}
	for _, f := range formats {
		var data []byte
		switch f {
		case "srt":
			data, err = sidecar.SRT(Cues(res))
		default:
			return nil, fmt.Errorf("unknown output format %q", f)
		}
		if err != nil {
			return nil, fmt.Errorf("%s for %s: %w", f, path, err)
		}
		dst := OutputPath(path, opts.OutDir, f)
		if err := sidecar.WriteFile(dst, data, 0o644); err != nil {
			return nil, err
		}
		out.Outputs = append(out.Outputs, dst)
	}
	return out, nil
}

// OutputPath is where the sidecar of format ext for input goes: beside it, or in outDir.
func OutputPath(input, outDir, ext string) string {
	base := strings.TrimSuffix(filepath.Base(input), filepath.Ext(input)) + "." + ext
	if outDir == "" {
		return filepath.Join(filepath.Dir(input), base)
	}
	return filepath.Join(outDir, base)
}

// Cues turns transcript segments into subtitle cues: empty segments are dropped, times are
// clamped so that cues never overlap and never have zero length.
func Cues(res *whisper.Result) []sidecar.Cue {
	var cues []sidecar.Cue
	var prevEnd time.Duration
	for _, s := range res.Segments {
		text := strings.TrimSpace(s.Text)
		if text == "" {
			continue
		}
		start := time.Duration(s.Start * float64(time.Second)).Round(time.Millisecond)
		end := time.Duration(s.End * float64(time.Second)).Round(time.Millisecond)
		if start < prevEnd {
			start = prevEnd
		}
		if end <= start {
			end = start + 10*time.Millisecond
		}
		cues = append(cues, sidecar.Cue{Start: start, End: end, Text: text})
		prevEnd = end
	}
	return cues
}
