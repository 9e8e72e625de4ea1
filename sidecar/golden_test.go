package sidecar

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func provenance(name string) Provenance {
	return Provenance{
		Program: "verbatim",
		Version: "0.1.0-test",
		Created: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC),
		Model:   Model{Name: "ggml-large-v3.bin", SHA256: "64d182b440b98d5203c4f9bd541544d84c605196c4f7b845dfa11fb23594d1e2"},
		Settings: map[string]any{
			"beam_size": 5, "language": "auto", "task": "transcribe", "temperature": 0.0, "vad": true,
		},
		Input: Input{Name: name, Size: 1_234_567, ModTime: time.Date(2026, 3, 13, 18, 0, 0, 0, time.UTC),
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
	}
}

// goldenTranscripts are small but realistic: segment times only, word times with silences,
// and Chinese.
func goldenTranscripts() map[string]*Transcript {
	return map[string]*Transcript{
		"speech": {
			Language: "en", LanguageProbs: map[string]float64{"en": 0.97, "de": 0.01}, Duration: sec(21.5),
			Provenance: provenance("JFK inaugural (1961) #1.m4a"),
			Segments: []Segment{
				{ID: 0, Start: 0, End: sec(7.6), Text: " And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
					Tokens: []Token{
						{ID: 400, Text: " And", P: 0.91}, {ID: 370, Text: " so", P: 0.88},
						{ID: 11, Text: ",", P: 0.97}, {ID: 1, Text: "\xe2\x80", P: 0.5}, {ID: 2, Text: "\x94", P: 0.6},
					},
					AvgLogProb: -0.21, NoSpeechProb: 0.01, CompressionRatio: 1.4, Temperature: 0},
				{ID: 1, Start: sec(9.2), End: sec(10), Text: " Thank you.", Tokens: []Token{{ID: 1044, Text: " Thank", P: 0.99}, {ID: 291, Text: " you", P: 0.98}, {ID: 13, Text: ".", P: 0.99}},
					AvgLogProb: -0.05, NoSpeechProb: 0.2, CompressionRatio: 0.8, Temperature: 0.2},
				{ID: 2, Start: sec(13.5), End: sec(21.4), Text: " My fellow citizens of the world: ask not what America will do for you, but what together we can do for the freedom of man."},
			},
		},
		"interview": {
			Language: "en", Duration: sec(16),
			Provenance: provenance("interview.wav"),
			Summary:    "A host greets a guest, who explains **why** the project started.",
			Chapters:   []Chapter{{Start: 0, Title: "Greeting"}, {Start: sec(8.5), Title: "Origins [part 1]", Summary: "Why nobody wanted the cloud."}},
			Actions:    []Item{{Text: "Send the guest the recording.", Start: sec(3.3), HasStart: true}, {Text: "Book a second episode."}},
			Decisions:  []Item{{Text: "Everything stays on the machine.", Start: sec(13.9), HasStart: true}},
			SummaryInfo: &SummaryInfo{Method: "llm", Template: "interview", Created: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
				Server: "ollama", Endpoint: "http://127.0.0.1:11434", Model: "llama3.1:8b", ContextLength: 8192, Chunks: 1,
				Prompt: "Summarize the interview."},
			Segments: []Segment{
				{ID: 0, Start: sec(0.5), End: sec(3.1), Text: " Hi, welcome to the show.", Words: []Word{
					{Text: " Hi,", Start: sec(0.5), End: sec(0.9), P: 0.9}, {Text: " welcome", Start: sec(1.0), End: sec(1.6), P: 0.95},
					{Text: " to", Start: sec(1.6), End: sec(1.8), P: 0.99}, {Text: " the", Start: sec(1.8), End: sec(2.0), P: 0.99},
					{Text: " show.", Start: sec(2.1), End: sec(3.1), P: 0.97},
				}, Tokens: []Token{{ID: 17155, Text: " Hi", P: 0.9, Start: sec(0.5), End: sec(0.8)}}},
				{ID: 1, Start: sec(3.3), End: sec(5.0), Text: " Thanks for having me.", Words: []Word{
					{Text: " Thanks", Start: sec(3.3), End: sec(3.8)}, {Text: " for", Start: sec(3.8), End: sec(4.0)},
					{Text: " having", Start: sec(4.0), End: sec(4.5)}, {Text: " me.", Start: sec(4.5), End: sec(5.0)},
				}},
				{ID: 2, Start: sec(8.5), End: sec(15.8), Text: " So we started because nobody wanted to upload their interviews, and everything else needed the cloud.", Words: []Word{
					{Text: " So", Start: sec(8.5), End: sec(8.7)}, {Text: " we", Start: sec(8.7), End: sec(8.9)},
					{Text: " started", Start: sec(8.9), End: sec(9.4)}, {Text: " because", Start: sec(9.4), End: sec(9.9)},
					{Text: " nobody", Start: sec(9.9), End: sec(10.4)}, {Text: " wanted", Start: sec(10.4), End: sec(10.8)},
					{Text: " to", Start: sec(10.8), End: sec(10.9)}, {Text: " upload", Start: sec(10.9), End: sec(11.4)},
					{Text: " their", Start: sec(11.4), End: sec(11.6)}, {Text: " interviews,", Start: sec(11.6), End: sec(12.5)},
					{Text: " and", Start: sec(13.9), End: sec(14.1)}, {Text: " everything", Start: sec(14.1), End: sec(14.6)},
					{Text: " else", Start: sec(14.6), End: sec(14.8)}, {Text: " needed", Start: sec(14.8), End: sec(15.1)},
					{Text: " the", Start: sec(15.1), End: sec(15.3)}, {Text: " cloud.", Start: sec(15.3), End: sec(15.8)},
				}},
			},
		},
		"zh": {
			Language: "zh", Duration: sec(12),
			Summary:     "- 我们选择在这个十年登上月球。",
			SummaryInfo: &SummaryInfo{Method: "extractive", Created: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Note: "No language model answered on loopback; sentences were picked from the transcript."},
			Provenance:  provenance("会议 记录.mp4"),
			Segments: []Segment{
				{Start: 0, End: sec(6), Text: "我们选择在这个十年登上月球，并做其他的事情，不是因为它们容易，而是因为它们困难。"},
				{Start: sec(6), End: sec(9), Text: "谢谢大家。"},
			},
		},
	}
}

func TestGolden(t *testing.T) {
	for name, tr := range goldenTranscripts() {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), name)
			paths, err := WriteAll(base, tr, Formats, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(paths) != len(Formats) {
				t.Fatalf("wrote %v, want %d files", paths, len(Formats))
			}
			for _, p := range paths {
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", filepath.Base(p)+".golden")
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", golden, diff)
				}
			}
		})
	}
}
