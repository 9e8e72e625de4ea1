package pipeline

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/sidecar"
)

// TestChapterFrames: a video's note shows a still under each chapter's heading, written into
// BASE.chapters beside the sidecars and listed in the JSON; a run with other chapters replaces
// the stills and removes the old ones; NoChapterFrames leaves them out and removes the folder;
// an audio file gets none; the JSON records the choice, so a summary redone from it keeps it.
func TestChapterFrames(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg")
	}
	r := newRunner(t)
	dir := t.TempDir()
	video := filepath.Join(dir, "talk.mp4")
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=640x360:r=10:d=12",
		"-i", "../testdata/jfk.wav", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", video).CombinedOutput()
	if err != nil {
		t.Fatalf("making the video: %v\n%s", err, out)
	}
	chapters := []sidecar.Chapter{{Start: 0, Title: "Opening"}, {Start: 6 * time.Second, Title: "Later"}}
	opts := fastOptions()
	opts.Force = true
	opts.Summarize = func(t *sidecar.Transcript) { t.Chapters = slices.Clone(chapters) }
	run := func() (*Outcome, string, *sidecar.Document) {
		t.Helper()
		o, err := r.file(t.Context(), video, opts)
		if err != nil {
			t.Fatal(err)
		}
		md, err := os.ReadFile(filepath.Join(dir, "talk.md"))
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "talk.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := sidecar.ReadDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		return o, string(md), doc
	}
	frames := filepath.Join(dir, "talk.chapters")
	listFrames := func() []string {
		entries, _ := os.ReadDir(frames)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}

	o, md, doc := run()
	if len(o.Warnings) != 0 {
		t.Errorf("warnings: %q", o.Warnings)
	}
	want := []string{media.FrameName(0), media.FrameName(6 * time.Second)}
	if got := listFrames(); !slices.Equal(got, want) {
		t.Fatalf("frames %q, want %q", got, want)
	}
	note := testkit.ParseMarkdown([]byte(md), "talk.mp4", 12)
	for _, p := range note.Problems {
		t.Error(p)
	}
	if !slices.Equal(note.Images, []string{"talk.chapters/" + want[0], "talk.chapters/" + want[1]}) {
		t.Errorf("note's images %q", note.Images)
	}
	for i, c := range doc.Chapters {
		if c.Image != "talk.chapters/"+want[i] {
			t.Errorf("JSON chapter %d image %q", i, c.Image)
		}
	}

	chapters[1].Start = 3 * time.Second // another run, other chapters: the old still goes
	run()
	if got, want := listFrames(), []string{media.FrameName(0), media.FrameName(3 * time.Second)}; !slices.Equal(got, want) {
		t.Errorf("after new chapters: frames %q, want %q", got, want)
	}

	opts.NoChapterFrames = true
	_, md, doc = run()
	if strings.Contains(md, "![") || doc.Chapters[0].Image != "" || !doc.Provenance.NoChapterFrames {
		t.Errorf("frames off: note has an image %v, JSON image %q, recorded %v", strings.Contains(md, "!["), doc.Chapters[0].Image, doc.Provenance.NoChapterFrames)
	}
	if _, err := os.Stat(frames); !os.IsNotExist(err) {
		t.Errorf("frames off: the stills folder is still there (%v)", err)
	}

	opts.NoChapterFrames = false
	audio := filepath.Join(dir, "talk.wav")
	copyFile(t, "../testdata/jfk.wav", audio)
	o, err = r.file(t.Context(), audio, opts)
	if err != nil {
		t.Fatal(err)
	}
	md2, _ := os.ReadFile(filepath.Join(dir, "talk.md"))
	if strings.Contains(string(md2), "![") || len(o.Warnings) != 0 {
		t.Errorf("audio: an image in the note, or warnings %q", o.Warnings)
	}
}
