package summarize

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/summarize/llm"
)

// How the transcript is cut for the language model (see Summarizer.llm).
const (
	answerTokens = 1024 // kept free in the context for the answer
	maxSplits    = 3    // a part the model did not read whole is halved at most this often
)

// stamp is how times are written for the model: H:MM:SS.
func stamp(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
}

// part is a run of sentences given to the model in one request.
type part struct {
	sents []Sentence
}

func (p part) first() time.Duration { return p.sents[0].Start }
func (p part) last() time.Duration  { return p.sents[len(p.sents)-1].Start }

func (p part) text() string {
	var b strings.Builder
	for _, s := range p.sents {
		fmt.Fprintf(&b, "[%s] %s\n", stamp(s.Start), s.Text)
	}
	return b.String()
}

func (p part) span() string { return stamp(p.first()) + " to " + stamp(p.last()) }

const form = `Answer in exactly this form, in the transcript's language, and nothing else:
COVERS: [time of the first line you were given] to [time of the last line you were given]
SUMMARY:
- %s
CHAPTERS:
- [time] A short title (3 to 6 words): one sentence on that part
ACTION ITEMS:
- [time] who does what, and by when if it was said
DECISIONS:
- [time] what was decided
Each [time] is the time of the line where it was said, written as in the transcript. Start a new
chapter where the subject changes; the first starts at the first line. Write "- none" under a
heading with nothing to list.`

// instructions is the system prompt for a request: for one part of several ("notes") or for
// the whole (the transcript itself, or the notes on its parts).
func instructions(tmpl Template, kind string) string {
	intro := fmt.Sprintf("You summarize the transcript of %s. It was made by speech recognition, so expect misheard words. "+
		"Each line starts with the time it was said, [H:MM:SS]. Use only what the transcript says.", tmpl.About)
	points := fmt.Sprintf("3 to 8 short points on %s", tmpl.Focus)
	switch kind {
	case "part":
		intro += " You are given one part of a longer recording; take notes on this part only."
		points = fmt.Sprintf("up to 8 short notes on %s in this part", tmpl.Focus)
	case "notes":
		intro = fmt.Sprintf("You are given notes taken on consecutive parts of the transcript of %s, each headed by the times it covers. "+
			"Merge them into one summary of the whole recording. Use only what the notes say.", tmpl.About)
	}
	f := fmt.Sprintf(form, points)
	if !tmpl.Items {
		f = strings.Replace(f, "ACTION ITEMS:\n- [time] who does what, and by when if it was said\nDECISIONS:\n- [time] what was decided\n", "", 1)
	}
	if kind == "notes" {
		f = strings.Replace(f, "COVERS: [time of the first line you were given] to [time of the last line you were given]",
			"COVERS: [the first part's first time] to [the last part's last time]", 1)
		f = strings.Replace(f, "Each [time] is the time of the line where it was said, written as in the transcript.",
			"Each [time] is one of the times in the notes.", 1)
	}
	return intro + "\n\n" + f
}

// llm summarizes sents with the model: in one request when they fit its context, else each part
// on its own ("map") and the notes merged ("reduce", in rounds while the notes do not fit).
// Every request must say which lines it read (COVERS); a part whose answer stops short of its
// last line, or that the server says it cut, is halved and asked again, so that a server that
// silently drops the end of a prompt too long for it is caught.
func (s *Summarizer) llm(ctx context.Context, sents []Sentence, tmpl Template, dur time.Duration) (Result, *sidecar.SummaryInfo, error) {
	info := &sidecar.SummaryInfo{
		Method: "llm", Template: tmpl.Name, Created: time.Now().UTC(),
		Server: s.client.Kind(), Endpoint: s.client.Endpoint(), Model: s.model, ContextLength: s.ctxLen,
	}
	budget := max(s.ctxLen-answerTokens-estimateTokens(instructions(tmpl, "part"))-64, 256)
	parts := split(sents, budget)
	info.Chunks = len(parts)
	var notes []string
	if len(parts) == 1 {
		a, err := s.ask(ctx, tmpl, "whole", parts[0].text(), parts[0], 0, info)
		if err == nil {
			info.Prompt = instructions(tmpl, "whole")
			return s.result(a, sents, dur), info, nil
		}
		if err != errShort {
			return Result{}, nil, err
		}
		// The server did not read it whole (its context is smaller than it said): in halves.
		mid := len(sents) / 2
		parts = []part{{sents: sents[:mid]}, {sents: sents[mid:]}}
		info.Chunks = 2
	}
	for _, p := range parts {
		got, err := s.mapPart(ctx, tmpl, p, 0, info)
		if err != nil {
			return Result{}, nil, err
		}
		notes = append(notes, got...)
	}
	info.Prompt = instructions(tmpl, "part") + "\n\n---\n\n" + instructions(tmpl, "notes")
	// Reduce: merge as many notes as fit, in rounds.
	for round := 0; ; round++ {
		groups := groupNotes(notes, budget)
		if len(groups) == 1 {
			whole := part{sents: []Sentence{sents[0], sents[len(sents)-1]}}
			a, err := s.ask(ctx, tmpl, "notes", groups[0], whole, 0, info)
			if err != nil {
				return Result{}, nil, err
			}
			return s.result(a, sents, dur), info, nil
		}
		if round == 3 {
			return Result{}, nil, fmt.Errorf("the notes on %d parts do not fit the model's context of %d tokens", len(notes), s.ctxLen)
		}
		var merged []string
		for _, g := range groups {
			first, last := noteSpan(g)
			a, err := s.ask(ctx, tmpl, "notes", g, part{sents: []Sentence{{Start: first}, {Start: last}}}, 0, info)
			if err != nil {
				return Result{}, nil, err
			}
			merged = append(merged, renderNotes(a, first, last))
		}
		notes = merged
	}
}

// mapPart takes notes on p, halving it while the model does not read it whole.
func (s *Summarizer) mapPart(ctx context.Context, tmpl Template, p part, depth int, info *sidecar.SummaryInfo) ([]string, error) {
	a, err := s.ask(ctx, tmpl, "part", p.text(), p, depth, info)
	if err == errShort && depth < maxSplits && len(p.sents) > 1 {
		mid := len(p.sents) / 2
		info.Chunks++
		x, err := s.mapPart(ctx, tmpl, part{sents: p.sents[:mid]}, depth+1, info)
		if err != nil {
			return nil, err
		}
		y, err := s.mapPart(ctx, tmpl, part{sents: p.sents[mid:]}, depth+1, info)
		return append(x, y...), err
	}
	if err != nil && err != errShort {
		return nil, err
	}
	return []string{renderNotes(a, p.first(), p.last())}, nil
}

// errShort: the model's answer does not cover its part (read by ask, which notes it when it
// cannot be helped).
var errShort = errors.New("the answer does not cover its part")

// ask sends one request and checks that its answer covers p: the COVERS line reaches p's last
// line (within the last tenth of the part), the server did not cut the answer, and the prompt
// the server counted is not far smaller than the text sent. A failed check is errShort with the
// answer, and a note in info when it stays (depth at the limit).
func (s *Summarizer) ask(ctx context.Context, tmpl Template, kind, text string, p part, depth int, info *sidecar.SummaryInfo) (answer, error) {
	sys := instructions(tmpl, kind)
	req := llm.Request{
		Model: s.model, Temperature: 0.2, MaxTokens: answerTokens,
		Messages: []llm.Message{{Role: "system", Content: sys}, {Role: "user", Content: text}},
	}
	if s.client.Kind() == "ollama" {
		req.NumCtx = s.ctxLen
	}
	ans, err := s.client.Chat(ctx, req)
	var why string
	if errors.Is(err, llm.ErrContextExceeded) { // refused rather than cut: the same remedy
		why, err = "the server refused the prompt as longer than its context", nil
	}
	if err != nil {
		return answer{}, err
	}
	a := parseAnswer(ans.Text)
	tail := p.last() - (p.last()-p.first())/10
	switch {
	case why != "":
	case ans.FinishReason == "length":
		why = "the answer was cut at the server's length limit"
	case ans.PromptTokens > 0 && ans.PromptTokens*4 < estimateTokens(sys+text):
		why = fmt.Sprintf("the server read %d tokens of a prompt of about %d", ans.PromptTokens, estimateTokens(sys+text))
	case !a.hasCovers:
		if kind != "notes" && len(a.points) == 0 {
			why = "the answer is not in the form asked for"
		}
	case a.covers[1] < tail:
		why = fmt.Sprintf("the model read only up to %s", stamp(a.covers[1]))
	}
	if why == "" {
		return a, nil
	}
	if depth >= maxSplits || len(p.sents) < 2 || kind == "notes" {
		info.Note = strings.TrimSpace(fmt.Sprintf("%s The part %s may be summarized in part only: %s.", info.Note, p.span(), why))
		if kind == "part" {
			return a, errShort
		}
		return a, nil
	}
	return a, errShort
}

// split cuts sents into parts of at most budget tokens each, as even as that allows.
func split(sents []Sentence, budget int) []part {
	total := 0
	for _, s := range sents {
		total += estimateTokens(s.Text) + 6
	}
	n := max(1, (total+budget-1)/budget)
	per := (total + n - 1) / n
	var parts []part
	var cur []Sentence
	size := 0
	for _, s := range sents {
		t := estimateTokens(s.Text) + 6
		if len(cur) > 0 && (size+t > per && len(parts) < n-1 || size+t > budget) {
			parts = append(parts, part{sents: cur})
			cur, size = nil, 0
		}
		cur = append(cur, s)
		size += t
	}
	return append(parts, part{sents: cur})
}

// renderNotes writes a part's answer as notes for the merge, headed by the times it covers.
func renderNotes(a answer, first, last time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Part %s to %s\nNOTES:\n", stamp(first), stamp(last))
	for _, p := range a.points {
		fmt.Fprintf(&b, "- %s\n", p)
	}
	b.WriteString("CHAPTERS:\n")
	for _, c := range a.chapters {
		fmt.Fprintf(&b, "- [%s] %s: %s\n", stamp(c.start), c.title, c.summary)
	}
	for _, sec := range []struct {
		name  string
		items []itemLine
	}{{"ACTION ITEMS", a.actions}, {"DECISIONS", a.decisions}} {
		if len(sec.items) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", sec.name)
		for _, it := range sec.items {
			if it.hasStart {
				fmt.Fprintf(&b, "- [%s] %s\n", stamp(it.start), it.text)
			} else {
				fmt.Fprintf(&b, "- %s\n", it.text)
			}
		}
	}
	return b.String()
}

// noteSpan reads the first and last times of a group of notes from their headings.
func noteSpan(group string) (time.Duration, time.Duration) {
	var first, last time.Duration
	seen := false
	for _, line := range strings.Split(group, "\n") {
		if !strings.HasPrefix(line, "Part ") {
			continue
		}
		a, _, e, ok := parseTime(line)
		if !ok {
			continue
		}
		b, _, _, ok := parseTime(line[e:])
		if !ok {
			continue
		}
		if !seen {
			first, seen = a, true
		}
		last = b
	}
	return first, last
}

// groupNotes joins consecutive notes into groups of at most budget tokens.
func groupNotes(notes []string, budget int) []string {
	var groups []string
	var cur strings.Builder
	for _, n := range notes {
		if cur.Len() > 0 && estimateTokens(cur.String()+n) > budget {
			groups = append(groups, cur.String())
			cur.Reset()
		}
		cur.WriteString(n)
		cur.WriteString("\n")
	}
	return append(groups, cur.String())
}

// result turns the model's answer into a Result: chapters within the recording, in order, at
// least a minute or a fiftieth of it apart, each moved to the start of the sentence nearest its
// time, the first at the first sentence; items' times likewise checked.
func (s *Summarizer) result(a answer, sents []Sentence, dur time.Duration) Result {
	var r Result
	for _, p := range a.points {
		r.Summary = append(r.Summary, Item{Text: p, Start: -1})
	}
	if dur <= 0 {
		dur = sents[len(sents)-1].End
	}
	snap := func(t time.Duration) (time.Duration, int) {
		i := sort.Search(len(sents), func(i int) bool { return sents[i].Start >= t })
		if i == len(sents) || i > 0 && t-sents[i-1].Start < sents[i].Start-t {
			i--
		}
		return sents[i].Start, i
	}
	gap := min(time.Minute, dur/50)
	chs := slices.Clone(a.chapters)
	sort.SliceStable(chs, func(i, j int) bool { return chs[i].start < chs[j].start })
	for _, c := range chs {
		if c.start > dur+time.Second {
			continue
		}
		start, first := snap(c.start)
		if len(r.Chapters) == 0 {
			start, first = sents[0].Start, 0
		} else if prev := r.Chapters[len(r.Chapters)-1]; start-prev.Start < gap || strings.EqualFold(prev.Title, c.title) {
			continue // too close to the one before, or its continuation (a part's notes repeat it)
		}
		r.Chapters = append(r.Chapters, Chapter{Start: start, Title: c.title, Summary: c.summary, First: first})
	}
	item := func(it itemLine) Item {
		if !it.hasStart || it.start > dur+time.Second {
			return Item{Text: it.text, Start: -1}
		}
		t, _ := snap(it.start)
		return Item{Text: it.text, Start: t}
	}
	for _, it := range a.actions {
		r.Actions = append(r.Actions, item(it))
	}
	for _, it := range a.decisions {
		r.Decisions = append(r.Decisions, item(it))
	}
	return r
}
