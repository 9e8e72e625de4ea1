package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/whisper"
)

// withVAD gives r the Silero detector on a CPU backend of its own.
func withVAD(t *testing.T, r *Runner) {
	t.Helper()
	r.vad = testkit.VAD(t)
}

// recordings writes WAV files cut from jfk.wav into dir: a short one, the whole of it, and one
// of three windows (jfk.wav three times over, with silences between) whose VAD regions are
// several per window.
func recordings(t *testing.T, dir string) []string {
	t.Helper()
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	s := audio.Resample(pcm, 16000).Samples
	var long []float32
	for range 3 {
		long = append(long, s...)
		long = append(long, make([]float32, 16000*9)...)
	}
	files := []struct {
		name    string
		samples []float32
	}{
		{"short.wav", s[:3*16000]},
		{"jfk.wav", s},
		{"long.wav", long[:63*16000]},
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		testkit.WriteWAV(t, p, f.samples, 16000)
		paths = append(paths, p)
	}
	return paths
}

// docView is what of a JSON sidecar must not depend on how the windows were batched: the text,
// tokens and times (probabilities may differ in their last bits; see whisper's sameResult).
type docView struct {
	Language string
	Duration float64
	Segments []docSegment
	Removed  []sidecar.DocRemoval
}

type docSegment struct {
	Start, End  float64
	Text        string
	Tokens      []int
	Words       []string
	Temperature float64
}

func readDoc(t *testing.T, path string) (*sidecar.Document, docView) {
	t.Helper()
	d := testkit.ReadDocument(t, path)
	v := docView{Language: d.Language, Duration: d.Duration, Removed: d.Removed}
	for _, s := range d.Segments {
		g := docSegment{Start: s.Start, End: s.End, Text: s.Text, Temperature: s.Temperature}
		for _, k := range s.Tokens {
			g.Tokens = append(g.Tokens, k.ID)
		}
		for _, w := range s.Words {
			g.Words = append(g.Words, fmt.Sprintf("%s %.3f %.3f", w.Word, w.Start, w.End))
		}
		v.Segments = append(v.Segments, g)
	}
	return d, v
}

// TestFilesMatchesFile: files of different lengths transcribed together (VAD first, on three
// copies of it at once, windows of several files in a batch) get the sidecars each gets alone
// (one VAD); a second run skips them all.
func TestFilesMatchesFile(t *testing.T) {
	r := newRunner(t)
	withVAD(t, r)
	dir := t.TempDir()
	paths := recordings(t, dir)
	opts := fastOptions()
	opts.Formats = []sidecar.Format{sidecar.FormatSRT, sidecar.FormatJSON}
	opts.BatchSize = 3

	aloneDir := filepath.Join(dir, "alone")
	if err := os.Mkdir(aloneDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		o := opts
		o.OutDir = aloneDir
		if _, err := r.file(t.Context(), p, o); err != nil {
			t.Fatal(err)
		}
	}
	var progressed sync.Map
	opts.FileProgress = func(input string, done, total time.Duration) { progressed.Store(input, true) }
	r.AddVAD(testkit.VAD(t), testkit.VAD(t))
	got := r.files(t.Context(), paths, opts)
	for i, res := range got {
		p := paths[i]
		if res.Err != nil || res.Input != p || res.Outcome == nil || res.Outcome.Skipped || len(res.Outcome.Outputs) != 2 {
			t.Fatalf("%s: %+v", p, res)
		}
		if _, ok := progressed.Load(p); !ok {
			t.Errorf("%s: no progress reported", p)
		}
		base := strings.TrimSuffix(filepath.Base(p), ".wav")
		_, want := readDoc(t, filepath.Join(aloneDir, base+".json"))
		doc, have := readDoc(t, filepath.Join(dir, base+".json"))
		if d := cmp.Diff(want, have); d != "" {
			t.Errorf("%s: together (-alone +together):\n%s", p, d)
		}
		if doc.Provenance.Input.Name != filepath.Base(p) || len(have.Segments) == 0 {
			t.Errorf("%s: sidecar of %q with %d segments (gaps %+v, %d retries)", p, doc.Provenance.Input.Name, len(have.Segments), doc.Gaps, doc.Retries)
		}
	}
	for _, res := range r.files(t.Context(), paths, opts) {
		if res.Err != nil || !res.Outcome.Skipped {
			t.Errorf("second run: %+v, want skipped", res)
		}
	}
}

// TestFilesIsolation: a missing file, a text file named .mp3, a truncated WAV and a file
// cut short after its header fail each with their own error naming them; the good files around
// them get their sidecars.
func TestFilesIsolation(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("%v (make test installs ffmpeg: scripts/deps.sh)", err)
	}
	r := newRunner(t)
	dir := t.TempDir()
	good := recordings(t, dir)[:2]
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jfk, err := os.ReadFile("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	notMedia := write("notes.mp3", []byte(strings.Repeat("not audio at all\n", 200)))
	headerOnly := write("header.wav", jfk[:44])
	mp3 := filepath.Join(dir, "cut.mp3")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", good[1], "-c:a", "libmp3lame", mp3).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	full, err := os.ReadFile(mp3)
	if err != nil {
		t.Fatal(err)
	}
	truncated := write("cut.mp3", full[:len(full)/3])
	missing := filepath.Join(dir, "missing.wav")
	inputs := []string{good[0], notMedia, missing, headerOnly, truncated, good[1]}
	opts := fastOptions()
	opts.BatchSize = 4
	got := r.files(t.Context(), inputs, opts)
	for i, res := range got {
		p := inputs[i]
		switch p {
		case good[0], good[1]:
			if res.Err != nil || res.Outcome == nil || len(res.Outcome.Outputs) != 3 {
				t.Errorf("%s: %+v", p, res)
			}
		case truncated:
			// It fails midway, its windows in batches with the others'.
			if res.Err == nil || !strings.Contains(res.Err.Error(), p) || !errors.Is(res.Err, ErrPermanent) {
				t.Errorf("%s: %+v, want a permanent error naming the file", p, res)
			}
			t.Logf("%s: %v", filepath.Base(p), res.Err)
		default:
			if res.Err == nil || !strings.Contains(res.Err.Error(), p) || !errors.Is(res.Err, ErrPermanent) {
				t.Errorf("%s: err %v, want a permanent error naming the file", p, res.Err)
				continue
			}
			if _, err := os.Stat(OutputBase(p, "") + ".srt"); err == nil {
				t.Errorf("%s: a sidecar was written", p)
			}
			t.Logf("%s: %v", filepath.Base(p), res.Err)
		}
	}
}

// TestPool: two Runners (two models, named apart in the sidecars' provenance) share a queue of
// files, one of them bad: every file is reported once, in order in the results, each good one
// by one Runner; the bad one fails alone, and both Runners do some of the work.
func TestPool(t *testing.T) {
	dir := t.TempDir()
	model := microModel(t)
	var runners []*Runner
	for _, name := range []string{"a.bin", "b.bin"} {
		p := filepath.Join(dir, name)
		copyFile(t, model, p)
		b, err := cpu.New(cpu.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		m, err := whisper.Load(p, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		r, err := NewRunner(m, p, nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
	}
	rec := recordings(t, dir)
	var inputs []string
	for i := range 6 {
		p := filepath.Join(dir, fmt.Sprintf("in%d.wav", i))
		copyFile(t, rec[i%2], p)
		inputs = append(inputs, p)
	}
	bad := filepath.Join(dir, "bad.wav")
	if err := os.WriteFile(bad, []byte("RIFF but not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs = slices.Insert(inputs, 2, bad)
	opts := fastOptions()
	opts.Formats = []sidecar.Format{sidecar.FormatJSON}
	calls := make([]int, len(inputs))
	got := Pool(t.Context(), runners, inputs, opts, func(i int, res FileResult) { calls[i]++ })
	by := map[string]int{}
	for i, res := range got {
		if calls[i] != 1 || res.Input != inputs[i] {
			t.Errorf("%s: reported %d times, result for %s", inputs[i], calls[i], res.Input)
		}
		if inputs[i] == bad {
			if res.Err == nil || !strings.Contains(res.Err.Error(), bad) {
				t.Errorf("bad file: %v", res.Err)
			}
			continue
		}
		if res.Err != nil {
			t.Errorf("%s: %v", inputs[i], res.Err)
			continue
		}
		doc, _ := readDoc(t, OutputBase(inputs[i], "")+".json")
		by[doc.Provenance.Model.Name]++
	}
	if by["a.bin"]+by["b.bin"] != 6 || by["a.bin"] == 0 || by["b.bin"] == 0 {
		t.Errorf("files per runner %v", by)
	}
	t.Logf("files per runner %v", by)

	// Cancelled before it starts: every input fails with the context's error, none is written.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	opts.Force = true
	for _, res := range Pool(ctx, runners, inputs[:2], opts, nil) {
		if !errors.Is(res.Err, context.Canceled) || !strings.Contains(res.Err.Error(), res.Input) {
			t.Errorf("cancelled: %+v", res)
		}
	}
}
