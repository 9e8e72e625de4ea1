package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/summarize"
	"github.com/verbatimhq/verbatim/summarize/llm"
)

// llmFlags are the summary's settings that only the command line and the daemon's own
// configuration file set, not a folder's: a folder's file must not be able to send its
// transcripts to another machine.
type llmFlags struct {
	LLMAllowRemote bool `name:"llm-allow-remote" group:"Summary" help:"Allow a --llm server on another machine (the transcript is sent there). Off: only this machine's servers."`
	LLMContext     int  `name:"llm-context" group:"Summary" help:"The model's context in tokens, to cut long transcripts for (default: ask the server; 8192 when it cannot tell)." placeholder:"TOKENS"`
}

// summaryConfig is the summary stage's configuration from a folder's settings and the global
// ones.
func summaryConfig(f config.Folder, g llmFlags) summarize.Config {
	c := summarize.Config{AllowRemote: g.LLMAllowRemote, Context: g.LLMContext}
	get := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	c.Mode, c.LLM, c.Model, c.Template = get(f.Summary), get(f.LLM), get(f.LLMModel), get(f.Template)
	return c
}

// summaryError is the error of a summary stage that cannot start, with the flag that allows a
// remote server where that is the reason.
func summaryError(err error) error {
	if errors.Is(err, llm.ErrRemote) {
		return fmt.Errorf("summary: %w (on the command line: --llm-allow-remote)", err)
	}
	return fmt.Errorf("summary: %w", err)
}

// summarizeCmd redoes the summary of transcripts from their JSON sidecars.
type summarizeCmd struct {
	Files []string `arg:"" name:"file" help:"JSON sidecars (name.json, written beside every transcript) or the media files they belong to." type:"path"`

	summaryFlags `embed:""`
	llmFlags     `embed:""`
}

func (c *summarizeCmd) Run(e *env) error {
	cfg := summarize.Config{Mode: c.Summary, LLM: c.LLM, Model: c.LLMModel, Template: c.Template,
		AllowRemote: c.LLMAllowRemote, Context: c.LLMContext}
	s, err := summarize.New(e.ctx, cfg)
	if err != nil {
		return summaryError(err)
	}
	e.log.Info().Msg(s.Describe())
	failed := 0
	for _, f := range c.Files {
		path := f
		if filepath.Ext(f) != ".json" {
			path = strings.TrimSuffix(f, filepath.Ext(f)) + ".json"
		}
		line, err := resummarize(e.ctx, s, path, true)
		if err != nil {
			fmt.Fprintf(os.Stderr, "transcribe: %v\n", err)
			failed++
			if e.ctx.Err() != nil {
				break
			}
			continue
		}
		if line != "" {
			fmt.Println(line)
		}
	}
	if err := s.Close(context.WithoutCancel(e.ctx)); err != nil {
		e.log.Warn().Err(err).Msg("the language model server did not unload the model")
	}
	if e.ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", e.ctx.Err())
	}
	if failed > 0 {
		if len(c.Files) == 1 {
			return errSilent
		}
		return fmt.Errorf("%d of %d files failed", failed, len(c.Files))
	}
	return nil
}

// resummarize redoes the summary of the JSON sidecar at path (summarize.Rewrite) and returns
// the line to print: "" when the summary was current.
func resummarize(ctx context.Context, s *summarize.Summarizer, path string, force bool) (string, error) {
	t0 := time.Now()
	warn := func(msg string) { fmt.Fprintf(os.Stderr, "transcribe: warning: %s\n", msg) }
	t, wrote, err := summarize.Rewrite(ctx, s, path, force, warn)
	if err != nil || !wrote {
		return "", err
	}
	return fmt.Sprintf("%s: %s in %s", path, summarize.Describe(t), time.Since(t0).Round(time.Millisecond)), nil
}
