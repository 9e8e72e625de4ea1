package summarize

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/summarize/fakellm"
)

// The summary stage against local servers that speak the real wire formats (Ollama's NDJSON
// stream, the OpenAI-compatible SSE stream), answered by a fake model: no language model
// weights exist here. The fake reads what it was sent the way a model would have to (the lines
// and their times, or the notes on parts) and answers in the form asked for, so what is checked
// is the stage's own work: the chunking, the coverage check, the merge, the parsing, and what
// is recorded.

// topicTranscript is a transcript of three topics, per sentences a topic, each sentence a
// segment 4 s long.
func topicTranscript(per int) *sidecar.Transcript {
	topics := [][]string{
		{"We bake bread with flour and water.", "The bread dough rests for an hour.", "Bake the bread in a hot oven."},
		{"The garden needs water every evening.", "We plant tomatoes in the garden.", "Pull the weeds out of the garden beds."},
		{"The train leaves the station at seven.", "You must buy a ticket before the train.", "A long train journey is good for reading."},
	}
	t := &sidecar.Transcript{Language: "en"}
	at := time.Duration(0)
	for _, topic := range topics {
		for i := range per {
			text := fmt.Sprintf("%s Number %d.", topic[i%len(topic)], i)
			t.Segments = append(t.Segments, sidecar.Segment{ID: len(t.Segments), Start: at, End: at + 3500*time.Millisecond, Text: " " + text})
			at += 4 * time.Second
		}
	}
	t.Duration = at
	return t
}

func TestLLMOneRequest(t *testing.T) {
	f := fakellm.New()
	srv := f.Ollama(t)
	s, err := New(t.Context(), Config{Mode: ModeLLM, LLM: srv.URL, Template: "meeting"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Model() != "llama3.2:3b" {
		t.Errorf("model %q, want llama3.2:3b (the chat model listed, not the embedding one)", s.Model())
	}
	tr := topicTranscript(5)
	if err := s.Summarize(t.Context(), tr); err != nil {
		t.Fatal(err)
	}
	in := tr.SummaryInfo
	if in == nil || in.Method != "llm" || in.Server != "ollama" || in.Model != "llama3.2:3b" || in.Endpoint != srv.URL ||
		in.Template != "meeting" || in.Chunks != 1 || in.ContextLength != 8192 || !strings.Contains(in.Prompt, "a meeting") || in.Note != "" {
		t.Errorf("summary info %+v", in)
	}
	if len(tr.Points) != 3 || len(tr.Chapters) != 3 {
		t.Fatalf("points %+v chapters %+v, want 3 each", tr.Points, tr.Chapters)
	}
	for k, c := range tr.Chapters {
		if want := time.Duration(k*5*4) * time.Second; c.Start != want {
			t.Errorf("chapter %d at %v, want %v", k+1, c.Start, want)
		}
		if !strings.HasPrefix(c.Title, "All about") || c.Summary == "" {
			t.Errorf("chapter %d: %+v", k+1, c)
		}
	}
	if len(tr.Actions) != 2 || !tr.Actions[0].HasStart || tr.Actions[0].Start != 44*time.Second || tr.Actions[1].Start != 56*time.Second {
		t.Errorf("actions %+v, want them at 44s and 56s (where the ticket is mentioned)", tr.Actions)
	}
	if len(f.Requests()) != 1 || fmt.Sprint(f.Requests()[0]["options"]) != "map[num_ctx:8192 num_predict:1024 temperature:0.2]" {
		t.Errorf("requests %v: want one, with num_ctx 8192", f.Requests())
	}
	if err := s.Close(context.Background()); err != nil || len(f.Unloaded()) != 1 {
		t.Errorf("close: %v, unloaded %v: want the model unloaded once", err, f.Unloaded())
	}
}

// TestLLMCoverage: a server that reads only the first 2,000 characters of each prompt (as
// servers silently truncate prompts longer than their context). The stage sees from the answers
// that the parts were not read whole, halves them until they are, and in the end every line of
// the transcript was read by the model. Without the check, most of it would never be.
func TestLLMCoverage(t *testing.T) {
	for _, kind := range []string{"ollama", "openai"} {
		t.Run(kind, func(t *testing.T) {
			f := &fakellm.Model{Keep: 2000}
			var url string
			if kind == "ollama" {
				url = f.Ollama(t).URL
			} else {
				url = f.OpenAI(t, 4096).URL
			}
			s, err := New(t.Context(), Config{Mode: ModeLLM, LLM: url, Context: 4096})
			if err != nil {
				t.Fatal(err)
			}
			tr := topicTranscript(60) // 180 lines, about 9,000 characters
			if err := s.Summarize(t.Context(), tr); err != nil {
				t.Fatal(err)
			}
			for _, sent := range Sentences(tr.Segments) {
				if key := stamp(sent.Start) + " " + sent.Text; !f.Seen(key) {
					t.Errorf("the model never read %q", key)
				}
			}
			in := tr.SummaryInfo
			if in.Chunks < 5 || in.Note != "" {
				t.Errorf("summary info %+v: want 5 parts or more and no note", in)
			}
			if len(tr.Chapters) != 3 || len(tr.Points) != 3 {
				t.Errorf("chapters %+v points %+v, want 3 each after the merge", tr.Chapters, tr.Points)
			}
			t.Logf("%d parts, %d requests", in.Chunks, len(f.Requests()))
		})
	}
}

// TestLLMCoverageGivesUp: a server that never reads past 300 characters. The parts are halved
// as far as allowed, and the note says which were summarized in part only.
func TestLLMCoverageGivesUp(t *testing.T) {
	f := &fakellm.Model{Keep: 300}
	s, err := New(t.Context(), Config{Mode: ModeLLM, LLM: f.Ollama(t).URL, Context: 4096})
	if err != nil {
		t.Fatal(err)
	}
	tr := topicTranscript(60)
	if err := s.Summarize(t.Context(), tr); err != nil {
		t.Fatal(err)
	}
	if note := tr.SummaryInfo.Note; !strings.Contains(note, "may be summarized in part only") {
		t.Errorf("note %q: want the parts not read whole named", note)
	}
}

// TestAutoWithoutServer: mode auto with no server answering gives the extractive summary; mode
// llm is an error; a server on another machine is refused without AllowRemote.
func TestAutoWithoutServer(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	s, err := New(t.Context(), Config{Mode: ModeAuto, LLM: url})
	if err != nil {
		t.Fatal(err)
	}
	tr := topicTranscript(5)
	if err := s.Summarize(t.Context(), tr); err != nil {
		t.Fatal(err)
	}
	if tr.SummaryInfo == nil || tr.SummaryInfo.Method != "extractive" || !strings.Contains(tr.SummaryInfo.Note, url) {
		t.Errorf("summary info %+v: want extractive, with a note naming %s", tr.SummaryInfo, url)
	}
	if _, err := New(t.Context(), Config{Mode: ModeLLM, LLM: url}); err == nil {
		t.Error("mode llm with no server: no error")
	}
	if _, err := New(t.Context(), Config{Mode: ModeAuto, LLM: "http://192.0.2.7:11434"}); err == nil || !strings.Contains(err.Error(), "allow_remote") {
		t.Errorf("remote endpoint without allow_remote: %v", err)
	}
}

func TestParseAnswer(t *testing.T) {
	a := parseAnswer("Sure! Here it is.\n**COVERS:** [0:00:01] to [1:02:03]\n## Summary\n1. First point.\n* Second point.\n" +
		"CHAPTERS:\n- [00:00] Opening words — the host says hello\n- 12:30 Budget: the numbers\n- no time here\n" +
		"ACTION ITEMS:\n- [0:10:00] Alice sends the report by Friday.\n- Bob books the room.\nDecisions:\n- None.\n")
	if !a.hasCovers || a.covers != [2]time.Duration{time.Second, time.Hour + 2*time.Minute + 3*time.Second} {
		t.Errorf("covers %v %v", a.hasCovers, a.covers)
	}
	if fmt.Sprint(a.points) != "[First point. Second point.]" {
		t.Errorf("points %q", a.points)
	}
	if len(a.chapters) != 2 || a.chapters[0].title != "Opening words" || a.chapters[0].summary != "the host says hello" ||
		a.chapters[1].start != 12*time.Minute+30*time.Second || a.chapters[1].title != "Budget" {
		t.Errorf("chapters %+v", a.chapters)
	}
	if len(a.actions) != 2 || !a.actions[0].hasStart || a.actions[0].text != "Alice sends the report by Friday." || a.actions[1].hasStart {
		t.Errorf("actions %+v", a.actions)
	}
	if len(a.decisions) != 0 || a.unsectioned != 1 {
		t.Errorf("decisions %+v unsectioned %d", a.decisions, a.unsectioned)
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add("COVERS: [0:00:00] to [0:01:00]\nSUMMARY:\n- a\nCHAPTERS:\n- [0:00:00] T: s\nACTION ITEMS:\n- [0:00:10] x\nDECISIONS:\n- none\n")
	f.Add("CHAPTERS:\n- [99:99:99] x\n- [1:2] y")
	f.Fuzz(func(t *testing.T, s string) {
		a := parseAnswer(s)
		for _, c := range a.chapters {
			if c.title == "" || c.start < 0 {
				t.Errorf("chapter %+v", c)
			}
		}
		r := (&Summarizer{}).result(a, []Sentence{{Start: 0, End: time.Second, Text: "a"}, {Start: 2 * time.Second, End: 3 * time.Second, Text: "b"}}, 3*time.Second)
		for i, c := range r.Chapters {
			if i == 0 && c.Start != 0 || i > 0 && c.Start <= r.Chapters[i-1].Start {
				t.Errorf("chapters %+v", r.Chapters)
			}
		}
	})
}
