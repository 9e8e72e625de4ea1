package summarize

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/sidecar"
)

// Rewrite makes the summary of the transcript in the JSON sidecar at path again, unless force
// is false and its summary is what s makes now (Current), and writes the transcript's sidecars
// again from the JSON alone: the formats it lists, the note linking the media where it did, with
// stills of the video at the new chapters unless the note was made without (what fails there
// goes to warn, which may be nil). It
// returns the transcript and whether it wrote. The sidecars are written even when the language
// model fails: with the extractive summary and a note saying what failed; the failure is
// returned too in mode llm (see Summarize).
func Rewrite(ctx context.Context, s *Summarizer, path string, force bool, warn func(msg string)) (*sidecar.Transcript, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	doc, err := sidecar.ReadDocument(data)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	t := doc.Transcript()
	if !force && s.Current(t.SummaryInfo, t.Duration) {
		return t, false, nil
	}
	sumErr := s.Summarize(ctx, t)
	if sumErr != nil && ctx.Err() != nil {
		return nil, false, fmt.Errorf("%s: %w", path, sumErr)
	}
	base := strings.TrimSuffix(path, ".json")
	opts := sidecar.Options{Markdown: sidecar.MarkdownOptions{MediaHref: doc.Provenance.Media}, NoChapterFrames: doc.Provenance.NoChapterFrames}
	// The stills of the video at the new chapters (when the note shows them and the media is
	// still where the note links it); what fails goes to warn. Done removes the stills the new
	// note does not show.
	var frames *media.NoteFrames
	if m := doc.Provenance.Media; m != "" && slices.Contains(doc.Provenance.Outputs, sidecar.FormatMD) {
		mp := filepath.Join(filepath.Dir(path), filepath.FromSlash(m))
		frames = &media.NoteFrames{Path: mp, Dir: base + ".chapters", Warn: warn}
		if _, err := os.Stat(mp); err == nil && !doc.Provenance.NoChapterFrames {
			opts.ChapterImages = frames.Images
		}
	}
	if _, err := sidecar.WriteAll(base, t, doc.Provenance.Outputs, opts); err != nil {
		return nil, false, err
	}
	if frames != nil {
		frames.Done()
	}
	if sumErr != nil {
		return t, true, fmt.Errorf("%s: summary: %w (the sidecars keep an extractive summary)", path, sumErr)
	}
	return t, true, nil
}

// Describe says in words what the summary stage made for t.
func Describe(t *sidecar.Transcript) string {
	in := t.SummaryInfo
	if in == nil {
		return "no summary"
	}
	how := "extractive summary"
	if in.Method == "llm" {
		how = fmt.Sprintf("summary by %s", in.Model)
		if in.Chunks > 1 {
			how += fmt.Sprintf(" (%d parts)", in.Chunks)
		}
	}
	s := fmt.Sprintf("%s, %d chapters, %d action items, %d decisions", how, len(t.Chapters), len(t.Actions), len(t.Decisions))
	if in.Note != "" {
		s += " (note: " + in.Note + ")"
	}
	return s
}
