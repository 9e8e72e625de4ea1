package summarize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/summarize/llm"
)

// Modes of the summary stage (--summary).
const (
	ModeAuto       = "auto"       // a language model when one answers, else extractive
	ModeOff        = "off"        // none: the note has no summary sections
	ModeExtractive = "extractive" // sentences picked from the transcript, no model
	ModeLLM        = "llm"        // a language model, or an error
)

// Modes lists the modes --summary accepts.
var Modes = []string{ModeAuto, ModeOff, ModeExtractive, ModeLLM}

// Config configures the summary stage.
type Config struct {
	Mode     string // one of Modes; "" = auto
	LLM      string // the server's base URL (http://127.0.0.1:11434, unix:///path); "" = look on loopback
	Model    string // "" = one the server lists
	Template string // auto, meeting, lecture, interview, memo; "" = auto
	// AllowRemote lets LLM name a server that is not on this machine: the transcript then leaves
	// it. Off by default; without it such an endpoint is refused.
	AllowRemote bool
	// Context is the model's context in tokens to plan the chunks for; 0 = ask the server, and
	// 8,192 when it cannot tell (Ollama is asked to use this much).
	Context int
	// Timeout bounds one request to the server (the whole answer); 0 = 10 minutes.
	Timeout time.Duration
	// KeepLoaded leaves the model in the server's memory afterwards; by default an Ollama
	// server is asked to unload it (keep_alive 0) when the summarizer closes.
	KeepLoaded bool
}

// Validate checks the names in c.
func (c Config) Validate() error {
	if c.Mode != "" && !slices.Contains(Modes, c.Mode) {
		return fmt.Errorf("unknown summary mode %q (want one of %s)", c.Mode, strings.Join(Modes, ", "))
	}
	if _, err := PickTemplate(c.Template, 0); err != nil {
		return err
	}
	if c.LLM != "" {
		if err := llm.CheckEndpoint(c.LLM, c.AllowRemote); err != nil {
			return err
		}
	}
	return nil
}

// Summarizer summarizes transcripts with one configuration; the language model, when one is
// used, is found once and kept for every transcript.
type Summarizer struct {
	cfg    Config
	client llm.Client // nil: extractive only
	model  string
	ctxLen int
	why    string // why there is no client, for the note
	noted  bool   // say why in every note (a server was asked for)
	used   bool
}

// Unavailable is a summarizer for cfg whose language model could not be had (err, from New):
// its summaries are extractive, and each says why in its note. A daemon uses it rather than
// fail the transcriptions of a folder whose server is down.
func Unavailable(cfg Config, err error) *Summarizer {
	cfg.Mode = ModeAuto
	return &Summarizer{cfg: cfg, why: err.Error(), noted: true}
}

// New prepares the summary stage: with mode auto or llm it finds the server (the configured one
// or, with none configured, the first that answers on loopback) and the model. In auto mode a
// server that does not answer is not an error (the summaries are extractive and say why); in
// llm mode it is.
func New(ctx context.Context, cfg Config) (*Summarizer, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Summarizer{cfg: cfg}
	if cfg.Mode != ModeAuto && cfg.Mode != ModeLLM {
		return s, nil
	}
	err := s.connect(ctx)
	if err != nil {
		if cfg.Mode == ModeLLM || errors.Is(err, llm.ErrRemote) {
			return nil, err
		}
		s.why = err.Error()
	}
	return s, nil
}

func (s *Summarizer) connect(ctx context.Context) error {
	opts := llm.Options{AllowRemote: s.cfg.AllowRemote, Timeout: s.cfg.Timeout}
	var c llm.Client
	var err error
	if s.cfg.LLM == "" {
		var model string
		c, model, err = llm.Discover(ctx, opts)
		if err != nil {
			return fmt.Errorf("no language model server answers on this machine (looked for Ollama, llama.cpp, LM Studio and MLX on their usual ports): %w", err)
		}
		if s.cfg.Model == "" {
			s.model = model
		}
	} else {
		if c, err = llm.New(s.cfg.LLM, opts); err != nil {
			return err
		}
	}
	if s.model == "" {
		models, err := c.Models(ctx)
		if err != nil {
			return err
		}
		if s.model, err = llm.ChooseModel(models, s.cfg.Model); err != nil {
			return fmt.Errorf("%s: %w", c.Endpoint(), err)
		}
	}
	s.ctxLen = s.cfg.Context
	if s.ctxLen == 0 {
		n, err := c.ContextLength(ctx, s.model)
		if err != nil {
			return err
		}
		// A model that can take 128k tokens is still planned for 8k when the server does not
		// say it was loaded with more: Ollama's memory for the context grows with num_ctx.
		s.ctxLen = 8192
		if n > 0 && (c.Kind() != "ollama" || n < s.ctxLen) {
			s.ctxLen = n
		}
	}
	s.client = c
	return nil
}

// Describe says in a line what the summaries will be made with, for the log.
func (s *Summarizer) Describe() string {
	switch {
	case s.cfg.Mode == ModeOff:
		return "summaries off"
	case s.client != nil:
		return fmt.Sprintf("summaries by %s on %s (%s, context %d tokens)", s.model, s.client.Endpoint(), s.client.Kind(), s.ctxLen)
	case s.cfg.Mode == ModeAuto && s.why != "":
		return "summaries extractive: " + s.why
	}
	return "summaries extractive"
}

// Close asks an Ollama server to unload the model, unless the configuration keeps it loaded,
// so that the memory it holds goes back to the transcription.
func (s *Summarizer) Close(ctx context.Context) error {
	if s.client == nil || !s.used || s.cfg.KeepLoaded {
		return nil
	}
	return s.client.Unload(ctx, s.model)
}

// UsesLLM reports whether the summaries come from a language model (a server answered).
func (s *Summarizer) UsesLLM() bool { return s.client != nil }

// Model is the language model's name ("" without one).
func (s *Summarizer) Model() string { return s.model }

// Offline fills t's summary sections without the language model: the extractive summary (or
// nothing, with mode off). It is fast, for writing the sidecars as soon as a transcription ends;
// with a language model, Summarize replaces it afterwards.
func (s *Summarizer) Offline(t *sidecar.Transcript) {
	t.Summary, t.Points, t.Chapters, t.Actions, t.Decisions, t.SummaryInfo = "", nil, nil, nil, nil, nil
	if s.cfg.Mode == ModeOff {
		return
	}
	sents := Sentences(t.Segments)
	if len(sents) == 0 {
		return
	}
	info := &sidecar.SummaryInfo{Method: "extractive", Created: time.Now().UTC()}
	if s.why != "" && (s.noted || s.cfg.LLM != "") { // asked for a server that did not answer: say so
		info.Note = s.why + "; the summary was picked from the transcript instead."
	}
	apply(t, Extractive(sents, Options{}), info)
}

// Current reports whether a transcript's summary (its SummaryInfo, nil for none) is what s
// would make for it now, so that it need not be made again.
func (s *Summarizer) Current(info *sidecar.SummaryInfo, dur time.Duration) bool {
	switch {
	case s.cfg.Mode == ModeOff:
		return info == nil
	case info == nil:
		return false
	case s.client == nil:
		return info.Method == "extractive"
	}
	tmpl, err := PickTemplate(s.cfg.Template, dur)
	return err == nil && info.Method == "llm" && info.Model == s.model && info.Template == tmpl.Name && info.Note == ""
}

// Summarize fills t's summary, chapters, action items, decisions and SummaryInfo (clearing them
// with mode off). With mode llm, a model's failure is returned, and t still gets the extractive
// summary with a note saying what failed; in auto mode the failure is only that note.
func (s *Summarizer) Summarize(ctx context.Context, t *sidecar.Transcript) error {
	t.Summary, t.Points, t.Chapters, t.Actions, t.Decisions, t.SummaryInfo = "", nil, nil, nil, nil, nil
	if s.cfg.Mode == ModeOff {
		return nil
	}
	sents := Sentences(t.Segments)
	if len(sents) == 0 {
		return nil // nothing was said: nothing to summarize, and the note says so
	}
	tmpl, err := PickTemplate(s.cfg.Template, t.Duration)
	if err != nil {
		return err
	}
	if s.client == nil {
		s.Offline(t)
		return nil
	}
	ex := Extractive(sents, Options{})
	info := &sidecar.SummaryInfo{Method: "extractive", Created: time.Now().UTC()}
	s.used = true
	res, llmInfo, err := s.llm(ctx, sents, tmpl, t.Duration)
	if err != nil {
		info.Note = fmt.Sprintf("The language model failed (%v); the summary was picked from the transcript instead.", err)
		apply(t, ex, info)
		if s.cfg.Mode == ModeLLM || ctx.Err() != nil {
			return err
		}
		return nil
	}
	// Parts the model did not give are filled from the extractive result, and the note says so.
	var filled []string
	if len(res.Summary) == 0 {
		res.Summary = ex.Summary
		filled = append(filled, "summary")
	}
	if len(res.Chapters) == 0 {
		res.Chapters = ex.Chapters
		filled = append(filled, "chapters")
	}
	if len(filled) > 0 {
		llmInfo.Note = strings.TrimSpace(llmInfo.Note + " The model gave no usable " + strings.Join(filled, " or ") + "; those were picked from the transcript.")
	}
	apply(t, res, llmInfo)
	return nil
}

// apply writes r into t.
func apply(t *sidecar.Transcript, r Result, info *sidecar.SummaryInfo) {
	var lines []string
	for _, p := range r.Summary {
		lines = append(lines, "- "+sidecar.EscapeMarkdown(p.Text))
		t.Points = append(t.Points, sidecar.Item{Text: p.Text, Start: p.Start, HasStart: p.Start >= 0})
	}
	t.Summary = strings.Join(lines, "\n")
	if len(r.Chapters) < 2 {
		r.Chapters = nil // one chapter is the whole: the note lists chapters when there are two or more
	}
	for _, c := range r.Chapters {
		t.Chapters = append(t.Chapters, sidecar.Chapter{Start: c.Start, Title: c.Title, Summary: c.Summary})
	}
	for _, a := range r.Actions {
		t.Actions = append(t.Actions, sidecar.Item{Text: a.Text, Start: a.Start, HasStart: a.Start >= 0})
	}
	for _, d := range r.Decisions {
		t.Decisions = append(t.Decisions, sidecar.Item{Text: d.Text, Start: d.Start, HasStart: d.Start >= 0})
	}
	t.SummaryInfo = info
}

// estimateTokens over-estimates how many tokens text takes: three bytes of ASCII per token,
// one per other character (CJK text runs close to that).
func estimateTokens(text string) int {
	ascii, other := 0, 0
	for _, r := range text {
		if r < utf8.RuneSelf {
			ascii++
		} else {
			other++
		}
	}
	return int(math.Ceil(float64(ascii)/3)) + other
}
