package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/sidecar"
)

// The coverage tests run the CLI with mini and its defaults (VAD, beam search, word timestamps)
// on a continuous reading, in a binary built with the tag verbatim_faults, whose engine makes
// the model end its text at once for the windows VERBATIM_FAULT_EOT names (whisper/faults.go):
// a fake model that returns nothing for some windows, inside the real one.

// faultBinary builds the CLI with the tag verbatim_faults, once.
func faultBinary(t *testing.T) string {
	t.Helper()
	return faultBuild.get(t, "-tags", "verbatim_faults")
}

// readingSentences are read back to back (0.4 s apart) for the coverage tests: about 50 s of
// continuous speech, two windows and more.
var readingSentences = []string{
	"The quick brown fox jumps over the lazy dog.",
	"She sells sea shells by the sea shore.",
	"We walked along the river until the sun went down.",
	"Please bring the blue folder to the meeting tomorrow.",
	"The train to the city leaves at seven in the morning.",
	"He painted the fence white before the summer rain.",
	"Our neighbours keep three cats and a very old dog.",
	"The library closes early on the first day of the month.",
	"A cold wind blew across the empty parking lot.",
	"They planted tomatoes and beans in the small garden.",
	"The children laughed at the clown in the red hat.",
	"My sister writes long letters to her friends abroad.",
	"The bakery on the corner sells fresh bread every day.",
	"We need more chairs for the guests in the hall.",
}

type span struct{ start, end float64 }

// reading speaks readingSentences with espeak-ng into a 16 kHz WAV at path and returns each
// sentence's span.
func reading(t *testing.T, path string) []span {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatalf("%v (make test installs espeak-ng: scripts/deps.sh)", err)
	}
	const rate = 16000
	var all []float32
	var spans []span
	dir := t.TempDir()
	for i, s := range readingSentences {
		if i > 0 {
			all = append(all, make([]float32, rate*4/10)...)
		}
		wav := filepath.Join(dir, fmt.Sprintf("s%02d.wav", i))
		if out, err := exec.Command("espeak-ng", "-v", "en-us", "-s", "150", "-w", wav, s).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v: %s", err, out)
		}
		pcm, err := audio.LoadWAV(wav)
		if err != nil {
			t.Fatal(err)
		}
		start := float64(len(all)) / rate
		all = append(all, audio.Resample(pcm, rate).Samples...)
		spans = append(spans, span{start, float64(len(all)) / rate})
	}
	all = append(all, make([]float32, rate/2)...)
	testkit.WriteWAV(t, path, all, rate)
	return spans
}

// faultRun transcribes the reading with mini's defaults in the fault build, with
// VERBATIM_FAULT_EOT=spec, and returns the JSON sidecar, the note, stdout and stderr.
func faultRun(t *testing.T, spec string) (*sidecar.Document, string, string, string, []span) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "reading.wav")
	truth := reading(t, in)
	cmd := exec.CommandContext(t.Context(), faultBinary(t), "--model", "mini", "--language", "en",
		"--formats", "json,md", in)
	cmd.Env = append(os.Environ(), "VERBATIM_FAULT_EOT="+spec, "VERBATIM_MODELS_DIR="+t.TempDir())
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("transcribe with VERBATIM_FAULT_EOT=%s: %v\n%s%s", spec, err, o.String(), e.String())
	}
	doc := testkit.ReadDocument(t, filepath.Join(dir, "reading.json"))
	md, err := os.ReadFile(filepath.Join(dir, "reading.md"))
	if err != nil {
		t.Fatal(err)
	}
	return doc, string(md), o.String(), e.String(), truth
}

// checkAccounted checks that every sentence is covered by a segment or by a gap, and that no gap
// overlaps a segment.
func checkAccounted(t *testing.T, doc *sidecar.Document, truth []span) {
	t.Helper()
	overlaps := func(a0, a1, b0, b1 float64) float64 { return max(0, min(a1, b1)-max(a0, b0)) }
	for _, s := range truth {
		var seg, gap float64
		for _, d := range doc.Segments {
			seg += overlaps(s.start, s.end, d.Start, d.End)
		}
		for _, g := range doc.Gaps {
			gap += overlaps(s.start, s.end, g.Start, g.End)
		}
		if left := (s.end - s.start) - seg - gap; left > 2 {
			t.Errorf("sentence at %.1f-%.1f s: %.1f s of it neither transcribed nor reported as a gap", s.start, s.end, left)
		}
	}
	for _, g := range doc.Gaps {
		for _, d := range doc.Segments {
			if o := overlaps(g.Start, g.End, d.Start, d.End); o > 0.05 {
				t.Errorf("gap %.2f-%.2f overlaps segment %.2f-%.2f %q", g.Start, g.End, d.Start, d.End, d.Text)
			}
		}
	}
}

// TestCoverageRetried: every window's first decoding returns nothing; the retry (without the
// previous text, re-anchored at the speech) reads it. Nothing is lost, no gap is reported, and
// the JSON counts the retries.
func TestCoverageRetried(t *testing.T) {
	t.Parallel()
	doc, md, stdout, stderr, truth := faultRun(t, "0-100000:1")
	if len(doc.Gaps) != 0 {
		t.Errorf("gaps %+v, want none: the retries read every window", doc.Gaps)
	}
	if doc.Retries < 2 {
		t.Errorf("retries %d, want one per window (2 or more)", doc.Retries)
	}
	checkAccounted(t, doc, truth)
	if strings.Contains(stderr, "not transcribed") || strings.Contains(stdout, "gap") || strings.Contains(md, "Not transcribed") {
		t.Errorf("a gap was reported:\n%s%s", stdout, stderr)
	}
	t.Logf("%d retries, %d segments: %s", doc.Retries, len(doc.Segments), strings.TrimSpace(stdout))
}

// TestCoverageGap: the windows that start from 20 s to 30 s return nothing on every attempt. The
// speech there is retried (4 attempts) and reported as a gap in the JSON, as a line at its
// place in the note, as a warning on stderr and in the summary line; the text resumes after it,
// and no gap lies where a segment covers the speech.
func TestCoverageGap(t *testing.T) {
	t.Parallel()
	doc, md, stdout, stderr, truth := faultRun(t, "20-30")
	if len(doc.Gaps) == 0 {
		t.Fatalf("no gap in the JSON:\n%s%s", stdout, stderr)
	}
	checkAccounted(t, doc, truth)
	var total float64
	for _, g := range doc.Gaps {
		total += g.End - g.Start
		if g.Start < 19.5 || g.End > truth[len(truth)-1].end+0.5 {
			t.Errorf("gap %+v outside the faulty windows' reach (from 20 s)", g)
		}
		if g.Reason != "no_text" || g.Speech != "vad" {
			t.Errorf("gap %+v: want reason no_text, speech vad", g)
		}
	}
	if a := doc.Gaps[0].Attempts; a < 4 {
		t.Errorf("first gap tried %d times, want 4 (the window, without prompt, shorter, with the fallback)", a)
	}
	last := doc.Gaps[len(doc.Gaps)-1]
	after := 0
	for _, s := range doc.Segments {
		if s.Start >= last.End {
			after++
		}
	}
	if after == 0 {
		t.Errorf("no text after the gap ending at %.1f s: the windows from 30 s on read", last.End)
	}
	// stderr: one warning per gap; stdout: the summary line.
	if n := strings.Count(stderr, "not transcribed"); n != len(doc.Gaps) {
		t.Errorf("%d warnings on stderr for %d gaps:\n%s", n, len(doc.Gaps), stderr)
	}
	m := regexp.MustCompile(`(\d+) gaps?, ([0-9.]+) s not transcribed`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("the summary line does not count the gaps: %s", stdout)
	}
	if n, _ := strconv.Atoi(m[1]); n != len(doc.Gaps) {
		t.Errorf("summary says %s gaps, the JSON has %d", m[1], len(doc.Gaps))
	}
	if s, _ := strconv.ParseFloat(m[2], 64); math.Abs(s-total) > 0.11 {
		t.Errorf("summary says %s s not transcribed, the JSON's gaps last %.2f s", m[2], total)
	}
	// The note: the gap's line between the paragraph before it and the one after.
	lines := strings.Split(md, "\n")
	at := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "> **Not transcribed:**") {
			at = i
			break
		}
	}
	if at < 0 {
		t.Fatalf("no gap line in the note:\n%s", md)
	}
	stampRe := regexp.MustCompile(`^\[(\d\d):(\d\d):(\d\d)\]`)
	startOf := func(l string) (float64, bool) {
		m := stampRe.FindStringSubmatch(l)
		if m == nil {
			return 0, false
		}
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		s, _ := strconv.Atoi(m[3])
		return float64(h*3600 + mi*60 + s), true
	}
	before, beyond := false, false
	for i, l := range lines {
		s, ok := startOf(l)
		switch {
		case !ok:
		case i < at && s <= doc.Gaps[0].Start:
			before = true
		case i < at:
			t.Errorf("paragraph at %v s before the gap line, but the gap starts at %.1f s", s, doc.Gaps[0].Start)
		case s+1 < doc.Gaps[0].End:
			t.Errorf("paragraph at %v s after the gap line, but the gap ends at %.1f s", s, doc.Gaps[0].End)
		default:
			beyond = true
		}
	}
	if !before || !beyond {
		t.Errorf("the gap line is not between the text before and after it:\n%s", md)
	}
	t.Logf("gaps %+v; %s%s", doc.Gaps, stdout, stderr)
}
