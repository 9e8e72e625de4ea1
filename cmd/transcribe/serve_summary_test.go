package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/summarize/fakellm"
)

// TestServeSummaries: the daemon's summary stage per folder and per job. A folder whose
// .verbatim.toml names a language model server (a local Ollama: real HTTP, its wire format, a
// fake model) gets that model's summaries, with the folder's template, and the server is asked
// to unload the model after the round; an API job asks for no summary and gets none; a folder
// file cannot allow a server on another machine (only the daemon's own configuration can).
func TestServeSummaries(t *testing.T) {
	t.Parallel()
	model := fakellm.New()
	srv := model.Ollama(t)
	d := startAPI(t)
	wav, err := os.ReadFile("../../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	readDoc := func(p string) *sidecar.Document {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		doc, err := sidecar.ReadDocument(data)
		if err != nil {
			return nil
		}
		return doc
	}

	lectures := mkdirs(t, filepath.Join(d.root, "lectures"))
	toml := fmt.Sprintf("summary = \"llm\"\nllm = %q\ntemplate = \"lecture\"\nformats = [\"md\"]\n", srv.URL)
	if err := os.WriteFile(filepath.Join(lectures, ".verbatim.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lectures, "talk.wav"), wav, 0o644); err != nil {
		t.Fatal(err)
	}
	var doc *sidecar.Document
	waitFor(t, 2*time.Minute, func() bool {
		doc = readDoc(filepath.Join(lectures, "talk.json"))
		return doc != nil && doc.SummaryInfo != nil && doc.SummaryInfo.Method == "llm"
	})
	if in := doc.SummaryInfo; in.Model != "llama3.2:3b" || in.Template != "lecture" || in.Endpoint != srv.URL {
		t.Errorf("summary_info %+v", in)
	}
	md := readFile(t, filepath.Join(lectures, "talk.md"))
	if !strings.Contains(md, "Summary by llama3.2:3b on Ollama, lecture template.") {
		t.Errorf("the note does not credit the model:\n%s", md)
	}
	waitFor(t, 30*time.Second, func() bool { return len(model.Unloaded()) > 0 })

	// An API job with its own settings: no summary.
	calls := mkdirs(t, filepath.Join(d.root, "calls"))
	f := filepath.Join(calls, "call.wav")
	if err := os.WriteFile(f, wav, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(calls, "transcripts")
	req, _ := json.Marshal(map[string]any{"path": f, "formats": []string{"md"}, "output": out, "summary": "off"})
	code, b, _ := d.do(t, "POST", "/v1/jobs", bytes.NewReader(req), "Content-Type", "application/json")
	if code != http.StatusAccepted {
		t.Fatalf("job: %d %s", code, b)
	}
	var j queue.Job
	json.Unmarshal(b, &j)
	if end := d.waitEnded(t, j.ID, time.Minute); end.State != queue.Done {
		t.Fatalf("job: %+v", end)
	}
	if doc := readDoc(filepath.Join(out, "call.json")); doc == nil || doc.SummaryInfo != nil || doc.Summary != "" {
		t.Errorf("summary off: %+v", doc)
	}
	if md := readFile(t, filepath.Join(out, "call.md")); strings.Contains(md, "## Summary") {
		t.Errorf("summary off, but the note has one:\n%s", md)
	}
	// A bad summary setting is refused, naming it.
	bad, _ := json.Marshal(map[string]any{"path": f, "summary": "poem"})
	if code, b, _ := d.do(t, "POST", "/v1/jobs", bytes.NewReader(bad), "Content-Type", "application/json"); code != http.StatusBadRequest && code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "summary") {
		t.Errorf("summary = poem: %d %s", code, b)
	}
}
