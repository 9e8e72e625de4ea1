package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/summarize/fakellm"
)

// A recording of three topics (issue 18): each read by its own espeak-ng voice, sentence after
// sentence 0.6 s apart, and the topic changes 0.6 s apart too, so that only the words tell the
// chapters apart.
var topics = []struct {
	voice     string
	keywords  []string // a summary naming the topic names one of these
	sentences []string
}{
	{"en-us", []string{"bread", "dough", "flour", "oven", "yeast", "loaf", "bake"}, []string{
		"Today I want to talk about baking bread at home.",
		"Good bread starts with flour, water, salt and a little yeast.",
		"Mix the flour and the water and let the dough rest for an hour.",
		"Then knead the dough until it feels smooth and soft.",
		"The dough should rise slowly in a warm kitchen.",
		"Bake the loaf in a very hot oven for forty minutes.",
		"Fresh bread from your own oven tastes better than any bakery bread.",
	}},
	{"en-gb+m3", []string{"garden", "tomato", "tomatoes", "plant", "plants", "seeds", "soil", "water"}, []string{
		"Now let us turn to the vegetable garden behind the house.",
		"In spring we plant tomatoes, beans and potatoes in the garden.",
		"The seeds need good soil and plenty of sun to grow.",
		"Water the young plants every evening when the weather is dry.",
		"Tomatoes grow best against a warm wall in the garden.",
		"Pull the weeds out before they take over the beds.",
		"In late summer the garden gives more vegetables than we can eat.",
	}},
	{"en-us+f2", []string{"train", "trains", "station", "ticket", "tickets", "railway", "journey"}, []string{
		"Finally, a few words about travelling by train.",
		"The train station in our town is close to the market square.",
		"Buy your ticket before you get on the train.",
		"The morning train to the city is always full of people.",
		"A long train journey is a good time to read a book.",
		"Night trains let you sleep while the railway carries you across the country.",
		"I would take the train over the car for any long journey.",
	}},
}

// topicReading speaks the three topics into a 16 kHz WAV at path and returns the time each
// topic starts, in seconds.
func topicReading(t *testing.T, path string) []float64 {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatalf("%v (make test installs espeak-ng: scripts/deps.sh)", err)
	}
	const rate = 16000
	all := make([]float32, rate/2)
	var starts []float64
	dir := t.TempDir()
	for k, topic := range topics {
		for i, s := range topic.sentences {
			if k > 0 || i > 0 {
				all = append(all, make([]float32, rate*6/10)...)
			}
			wav := filepath.Join(dir, fmt.Sprintf("t%d-%02d.wav", k, i))
			if out, err := exec.Command("espeak-ng", "-v", topic.voice, "-s", "150", "-w", wav, s).CombinedOutput(); err != nil {
				t.Fatalf("espeak-ng: %v: %s", err, out)
			}
			pcm, err := audio.LoadWAV(wav)
			if err != nil {
				t.Fatal(err)
			}
			x := trimSilence(audio.Resample(pcm, rate).Samples)
			if i == 0 {
				starts = append(starts, float64(len(all))/rate)
			}
			all = append(all, x...)
		}
	}
	all = append(all, make([]float32, rate/2)...)
	testkit.WriteWAV(t, path, all, rate)
	return starts
}

// trimSilence drops the leading and trailing samples under 1% of the peak (espeak-ng pads its
// output), so that the pauses between sentences are the ones the test sets.
func trimSilence(x []float32) []float32 {
	var peak float32
	for _, v := range x {
		peak = max(peak, float32(math.Abs(float64(v))))
	}
	a, b := 0, len(x)
	for a < b && float32(math.Abs(float64(x[a]))) < peak/100 {
		a++
	}
	for b > a && float32(math.Abs(float64(x[b-1]))) < peak/100 {
		b--
	}
	return x[a:b]
}

// TestSummaryThreeTopics: the recording of three topics, transcribed by mini through the CLI
// with its defaults and the offline summary, gets one chapter per topic starting within 5 s of
// the true change, a summary with a point on each topic, and a note whose every link resolves.
func TestSummaryThreeTopics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "three topics.wav")
	starts := topicReading(t, in)
	stdout, stderr, code := run(t, "--model", "mini", "--language", "en", "--summary", "extractive", "--formats", "md,json", in)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	doc := testkit.ReadDocument(t, filepath.Join(dir, "three topics.json"))
	md, err := os.ReadFile(filepath.Join(dir, "three topics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range doc.Segments {
		var ws []string
		for i, w := range seg.Words {
			gap := ""
			if i > 0 && w.Start-seg.Words[i-1].End >= 0.3 {
				gap = fmt.Sprintf("<%.2f>", w.Start-seg.Words[i-1].End)
			}
			ws = append(ws, gap+w.Word)
		}
		t.Logf("[%.2f-%.2f] %s", seg.Start, seg.End, strings.Join(ws, ""))
	}
	t.Logf("note:\n%s", md)
	if doc.SummaryInfo == nil || doc.SummaryInfo.Method != "extractive" {
		t.Fatalf("summary_info %+v, want extractive", doc.SummaryInfo)
	}
	if os.Getenv("VERBATIM_KEEP") != "" {
		_ = exec.Command("cp", filepath.Join(dir, "three topics.json"), os.Getenv("VERBATIM_KEEP")).Run()
	}
	if len(doc.Chapters) != len(topics) {
		t.Errorf("%d chapters %+v, want %d", len(doc.Chapters), doc.Chapters, len(topics))
	}
	for k, c := range doc.Chapters {
		if k < len(starts) {
			t.Logf("chapter %d %q at %.2f s, the topic at %.2f s", k+1, c.Title, c.Start, starts[k])
		}
		if k < len(starts) && math.Abs(c.Start-starts[k]) > 5 {
			t.Errorf("chapter %d %q starts at %.1f s, the topic at %.1f s", k+1, c.Title, c.Start, starts[k])
		}
	}
	for k, topic := range topics {
		named := false
		for _, p := range doc.Points {
			for _, w := range strings.Fields(strings.ToLower(p.Text)) {
				for _, kw := range topic.keywords {
					if strings.Trim(w, ".,;:!?") == kw {
						named = true
					}
				}
			}
		}
		if !named {
			t.Errorf("no summary point names topic %d (%v): %+v", k+1, topic.keywords, doc.Points)
		}
	}
	note := testkit.ParseMarkdown(md, "three topics.wav", doc.Duration)
	for _, p := range note.Problems {
		t.Error(p)
	}
}

// TestSummaryLLM runs the summary stage through the CLI against a local Ollama server (real
// HTTP, Ollama's wire format, a fake model: no language model weights exist here): the note and
// the JSON carry the model's summary and say which model and server made it, the model is asked
// to unload afterwards, `transcribe summarize` redoes only the summary, a run on current
// sidecars redoes the summary only when another is asked for, and a server on another machine
// is refused.
func TestSummaryLLM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "memo.wav")
	topicReading(t, in)
	model := fakellm.New()
	srv := model.Ollama(t)
	base := filepath.Join(dir, "memo")
	read := func(ext string) string {
		b, err := os.ReadFile(base + ext)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	stdout, stderr, code := run(t, "--model", "mini", "--language", "en", "--summary", "llm", "--llm", srv.URL, "--formats", "srt,md", in)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	doc := testkit.ReadDocument(t, base+".json")
	if in := doc.SummaryInfo; in == nil || in.Method != "llm" || in.Model != "llama3.2:3b" || in.Server != "ollama" || in.Endpoint != srv.URL || in.Template != "memo" {
		t.Fatalf("summary_info %+v", in)
	}
	md := read(".md")
	if !strings.Contains(md, "_Summary by llama3.2:3b on Ollama, memo template._") || !strings.Contains(md, "- The speaker talks about garden.") {
		t.Errorf("note lacks the model's summary or its credit:\n%s", md)
	}
	if len(doc.Chapters) == 0 || !strings.HasPrefix(doc.Chapters[0].Title, "All about") {
		t.Errorf("chapters %+v, want the model's", doc.Chapters)
	}
	for _, p := range testkit.ParseMarkdown([]byte(md), "memo.wav", doc.Duration).Problems {
		t.Error(p)
	}
	if !strings.Contains(stdout, "summary by llama3.2:3b") {
		t.Errorf("stdout does not report the summary:\n%s", stdout)
	}
	if u := model.Unloaded(); len(u) != 1 || u[0] != "llama3.2:3b" {
		t.Errorf("unloaded %v, want the model once, after the summaries", u)
	}
	srt := read(".srt")
	requests := len(model.Requests())

	// Only the summary again, from the JSON: extractive now; the subtitles are untouched.
	stdout, stderr, code = run(t, "summarize", "--summary", "extractive", base+".json")
	if code != 0 {
		t.Fatalf("summarize: exit %d\n%s%s", code, stdout, stderr)
	}
	if doc := testkit.ReadDocument(t, base+".json"); doc.SummaryInfo == nil || doc.SummaryInfo.Method != "extractive" {
		t.Errorf("after summarize --summary extractive: %+v", doc.SummaryInfo)
	}
	if !strings.Contains(read(".md"), "(extractive, no language model)") || read(".srt") != srt {
		t.Errorf("summarize: the note is not the extractive one, or the subtitles changed")
	}

	// The sidecars are current: a run asking for the extractive summary does nothing; one asking
	// for no summary rewrites the note without its sections.
	stdout, _, _ = run(t, "--model", "mini", "--language", "en", "--summary", "extractive", "--formats", "srt,md", in)
	if !strings.Contains(stdout, "skipped") || strings.Contains(stdout, "summary") {
		t.Errorf("current sidecars, same summary: %s", stdout)
	}
	stdout, _, _ = run(t, "--model", "mini", "--language", "en", "--summary", "off", "--formats", "srt,md", in)
	if md := read(".md"); strings.Contains(md, "## Summary") || strings.Contains(md, "## Chapters") || !strings.Contains(stdout, "no summary") {
		t.Errorf("--summary off on current sidecars: stdout %s\nnote:\n%s", stdout, md)
	}
	if n := len(model.Requests()); n != requests {
		t.Errorf("%d requests to the model after the first run, want none", n-requests)
	}

	// A server on another machine is refused before anything is transcribed.
	other := filepath.Join(dir, "other.wav")
	if err := os.Link(in, other); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, "--model", "mini", "--summary", "auto", "--llm", "http://192.0.2.7:11434", other)
	if code == 0 || !strings.Contains(stderr, "allow_remote") && !strings.Contains(stderr, "llm-allow-remote") {
		t.Errorf("remote --llm: exit %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.json")); err == nil {
		t.Error("remote --llm: the file was transcribed anyway")
	}
}
