package sidecar

import (
	"bytes"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
)

// MarkdownOptions adjust the Markdown note.
type MarkdownOptions struct {
	// Title heads the note; "" = the input's file name without its extension.
	Title string
	// MediaHref is the path of the media relative to the note, as a slash-separated path (not
	// escaped); "" = the input's file name, for a note beside its input.
	MediaHref string
}

// Markdown renders the note: a title, the source (linked), duration, language, model and date,
// then the summary stage's sections when it made them ("## Summary", "## Chapters" linking each
// chapter to its heading in the transcript, "## Action items", "## Decisions"; a section with
// nothing in it is left out), then "## Transcript" in paragraphs, each led by its start time
// linked to the media at that second ("[00:01:23](talk.m4a#t=83)"), which players and Markdown
// viewers open at that point, with a "### Title" heading where each chapter starts (and under it
// the still of the video there, Chapter.Image, when there is one). Each gap (speech not
// transcribed) is a quoted "Not transcribed" line at its place among the paragraphs, saying when,
// how long and why.
func Markdown(t *Transcript, opts MarkdownOptions) []byte {
	name := t.Provenance.Input.Name
	title := opts.Title
	if title == "" {
		title = strings.TrimSuffix(name, path.Ext(name))
	}
	if title == "" {
		title = "Transcript"
	}
	href := opts.MediaHref
	if href == "" {
		href = name
	}
	link := escapeHref(href)
	stamp := func(d time.Duration) string {
		if link == "" {
			return clock(d)
		}
		return fmt.Sprintf("[%s](%s#t=%d)", clock(d), link, int64(d/time.Second))
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n", escapeMD(title))
	if name != "" {
		if link != "" {
			fmt.Fprintf(&b, "- **Source:** [%s](%s)\n", escapeMD(name), link)
		} else {
			fmt.Fprintf(&b, "- **Source:** %s\n", escapeMD(name))
		}
	}
	if t.Duration > 0 {
		fmt.Fprintf(&b, "- **Duration:** %s\n", clock(t.Duration))
	}
	if t.Language != "" {
		fmt.Fprintf(&b, "- **Language:** %s\n", escapeMD(t.Language))
	}
	if m := t.Provenance.Model.Name; m != "" {
		fmt.Fprintf(&b, "- **Model:** %s\n", escapeMD(m))
	}
	if c := t.Provenance.Created; !c.IsZero() {
		fmt.Fprintf(&b, "- **Date:** %s\n", c.Format("2006-01-02 15:04 MST"))
	}

	if s := strings.TrimSpace(t.Summary); s != "" || len(t.Points) > 0 || t.SummaryInfo != nil {
		b.WriteString("\n## Summary\n\n")
		if len(t.Points) > 0 { // the points, each linked to where it was said
			for _, p := range t.Points {
				fmt.Fprintf(&b, "- %s", escapeMD(p.Text))
				if p.HasStart {
					fmt.Fprintf(&b, " (%s)", stamp(p.Start))
				}
				b.WriteString("\n")
			}
		} else if s != "" {
			b.WriteString(s) // already Markdown
			b.WriteString("\n")
		}
		if line := summaryCredit(t.SummaryInfo); line != "" {
			fmt.Fprintf(&b, "\n_%s_\n", line)
		}
		if note := strings.TrimSpace(summaryNote(t.SummaryInfo)); note != "" {
			fmt.Fprintf(&b, "\n> **Note:** %s\n", escapeMD(note))
		}
	}
	if len(t.Chapters) > 0 {
		b.WriteString("\n## Chapters\n\n")
		for i, c := range t.Chapters {
			fmt.Fprintf(&b, "%d. [%s](#%s) (%s)", i+1, escapeMD(chapterHeading(c)), chapterAnchor(i), stamp(c.Start))
			if cs := strings.TrimSpace(c.Summary); cs != "" {
				fmt.Fprintf(&b, ": %s", escapeMD(cs))
			}
			b.WriteString("\n")
		}
	}
	itemList := func(heading, box string, items []Item) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n## %s\n\n", heading)
		for _, it := range items {
			fmt.Fprintf(&b, "- %s%s", box, escapeMD(it.Text))
			if it.HasStart {
				fmt.Fprintf(&b, " (%s)", stamp(it.Start))
			}
			b.WriteString("\n")
		}
	}
	itemList("Action items", "[ ] ", t.Actions)
	itemList("Decisions", "", t.Decisions)

	b.WriteString("\n## Transcript\n\n")
	ps := paragraphs(t, true)
	if len(ps) == 0 {
		b.WriteString("_No speech was recognized._\n")
	}
	// The paragraphs, and each gap as a visible line at its place: before the first paragraph
	// after it.
	var blocks []string
	gaps := t.Gaps
	gapLines := func(before time.Duration, all bool) {
		for len(gaps) > 0 && (all || gaps[0].Start < before) {
			g := gaps[0]
			gaps = gaps[1:]
			blocks = append(blocks, fmt.Sprintf("> **Not transcribed:** %s to %s (%.1f s): %s.\n",
				stamp(g.Start), clock(g.End), (g.End-g.Start).Seconds(), GapWhy(g)))
		}
	}
	for _, p := range ps {
		gapLines(p.start, false)
		for _, c := range p.chapters {
			ch := t.Chapters[c]
			blocks = append(blocks, fmt.Sprintf("### <a id=\"%s\"></a>%s\n", chapterAnchor(c), escapeMD(chapterHeading(ch))))
			if ch.Image != "" {
				blocks = append(blocks, fmt.Sprintf("![%s](%s)\n", escapeMD("Video at "+clock(ch.Start)), escapeHref(ch.Image)))
			}
		}
		blocks = append(blocks, fmt.Sprintf("%s %s\n", stamp(p.start), escapeMD(p.text)))
	}
	gapLines(0, true)
	if len(ps) == 0 && len(blocks) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(strings.Join(blocks, "\n"))
	return b.Bytes()
}

// EscapeMarkdown makes s literal text in Markdown (whitespace collapsed, markup characters
// escaped), for text from elsewhere, such as a language model's answer.
func EscapeMarkdown(s string) string { return escapeMD(s) }

// chapterHeading is the text of a chapter's heading: its title, or its time when it has none.
func chapterHeading(c Chapter) string {
	if t := strings.Join(strings.Fields(c.Title), " "); t != "" {
		return t
	}
	return "Chapter at " + clock(c.Start)
}

// summaryCredit says in a line how the summary was made.
func summaryCredit(in *SummaryInfo) string {
	if in == nil {
		return ""
	}
	switch in.Method {
	case "llm":
		server := map[string]string{"ollama": "Ollama", "openai": "an OpenAI-compatible server"}[in.Server]
		if server == "" {
			server = "a local server"
		}
		s := fmt.Sprintf("Summary by %s on %s", escapeMD(in.Model), server)
		if in.Template != "" {
			s += ", " + escapeMD(in.Template) + " template"
		}
		return s + "."
	case "extractive":
		return "Summary: sentences picked from the transcript (extractive, no language model)."
	}
	return ""
}

func summaryNote(in *SummaryInfo) string {
	if in == nil {
		return ""
	}
	return in.Note
}

// chapterAnchor is the anchor of chapter i's heading. It is set explicitly (an HTML anchor in
// the heading) rather than left to the viewer: viewers make anchors from heading text in
// different ways (GitHub keeps accented letters, others drop them), and an explicit ASCII one
// resolves the same everywhere.
func chapterAnchor(i int) string {
	return fmt.Sprintf("chapter-%d", i+1)
}

// GapWhy says in words why a gap was left out: what heard speech there, what the model did
// with it, how many times it was tried.
func GapWhy(g Gap) string {
	heard := "speech was detected here"
	if g.Speech == "energy" {
		heard = "the audio is loud here"
	}
	why := "the model returned no text"
	switch g.Reason {
	case "judged_silence":
		why = "the model judged it silence"
	case "skipped":
		why = "the model's text skipped it"
	}
	tries := "once"
	if g.Attempts > 1 {
		tries = fmt.Sprintf("%d times", g.Attempts)
	}
	return fmt.Sprintf("%s, but %s (tried %s)", heard, why, tries)
}

// clock formats d as HH:MM:SS, rounded down to the second.
func clock(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// escapeHref makes a relative link destination of a slash-separated path: each part
// percent-escaped, and "./" in front when the first part has a colon (it would read as a URL
// scheme).
func escapeHref(p string) string {
	if p == "" {
		return ""
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	out := strings.Join(parts, "/")
	if strings.Contains(parts[0], ":") {
		out = "./" + out
	}
	return out
}

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`, `<`, `\<`, `>`, `\>`,
	`#`, `\#`, `|`, `\|`, `~`, `\~`,
)

// escapeMD keeps text literal in Markdown, on one line.
func escapeMD(s string) string {
	return mdEscaper.Replace(strings.Join(strings.Fields(s), " "))
}
