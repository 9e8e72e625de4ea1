package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The test servers below speak the servers' wire formats byte for byte: Ollama's NDJSON lines,
// and OpenAI's chat.completion.chunk events, each written and flushed on its own as a server
// generating tokens does.

// request is a request a test server received.
type request struct {
	Method, Path, Host string
	Header             http.Header
	Body               map[string]any
}

// recorder keeps the requests a test server received.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

// record reads r's body and keeps the request.
func (rec *recorder) record(r *http.Request) request {
	data, _ := io.ReadAll(r.Body)
	q := request{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header.Clone()}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &q.Body); err != nil {
			q.Body = map[string]any{"unparsed": string(data)}
		}
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, q)
	rec.mu.Unlock()
	return q
}

// all returns the requests received so far.
func (rec *recorder) all() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

// last returns the last request to path.
func (rec *recorder) last(t *testing.T, path string) request {
	t.Helper()
	reqs := rec.all()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Path == path {
			return reqs[i]
		}
	}
	t.Fatalf("no request to %s among %d", path, len(reqs))
	return request{}
}

// count is how many requests went to path.
func (rec *recorder) count(path string) int {
	n := 0
	for _, q := range rec.all() {
		if q.Path == path {
			n++
		}
	}
	return n
}

// stream writes the parts one by one, flushing after each.
func stream(w http.ResponseWriter, contentType string, parts ...string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for _, p := range parts {
		io.WriteString(w, p)
		rc.Flush()
	}
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// mustJSON is v in JSON.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

const created = "2025-06-01T10:00:00.000000Z"

// ollamaLines is Ollama's streamed /api/chat answer: a line per piece, then the final line with
// the given done_reason and counts.
func ollamaLines(model string, pieces []string, doneReason string, promptEval, eval int) []string {
	var out []string
	for _, p := range pieces {
		out = append(out, mustJSON(map[string]any{
			"model": model, "created_at": created,
			"message": map[string]any{"role": "assistant", "content": p}, "done": false,
		})+"\n")
	}
	out = append(out, mustJSON(map[string]any{
		"model": model, "created_at": created,
		"message": map[string]any{"role": "assistant", "content": ""},
		"done":    true, "done_reason": doneReason,
		"total_duration": 5191566416, "load_duration": 2154458, "prompt_eval_count": promptEval,
		"prompt_eval_duration": 383809000, "eval_count": eval, "eval_duration": 4799921000,
	})+"\n")
	return out
}

// sseEvents is an OpenAI-compatible streamed chat completion: a role chunk, a chunk per piece,
// a chunk with finish_reason, a usage chunk (when promptTokens > 0) and [DONE].
func sseEvents(model string, pieces []string, finish string, promptTokens, completionTokens int) []string {
	chunk := func(delta map[string]any, finish any, usage any) string {
		c := map[string]any{
			"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1748772000, "model": model,
			"system_fingerprint": "b5000-abc",
			"choices":            []any{},
		}
		if delta != nil {
			c["choices"] = []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}
		}
		if usage != nil {
			c["usage"] = usage
		}
		return "data: " + mustJSON(c) + "\n\n"
	}
	out := []string{chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil)}
	for _, p := range pieces {
		out = append(out, chunk(map[string]any{"content": p}, nil, nil))
	}
	out = append(out, chunk(map[string]any{}, finish, nil))
	if promptTokens > 0 {
		out = append(out, chunk(nil, nil, map[string]any{
			"prompt_tokens": promptTokens, "completion_tokens": completionTokens, "total_tokens": promptTokens + completionTokens,
		}))
	}
	return append(out, "data: [DONE]\n\n")
}

// fakeOllama is an Ollama server: /api/chat streams pieces, /api/tags lists models, /api/show
// answers show, /api/generate unloads, /api/version answers; an unknown model gets Ollama's 404.
type fakeOllama struct {
	rec     recorder
	models  []string
	pieces  []string
	reason  string         // done_reason; default "stop"
	show    map[string]any // /api/show's answer
	midErr  string         // if set, sent as {"error":...} after the pieces instead of the final line
	handler http.HandlerFunc
}

func (f *fakeOllama) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := f.rec.record(r)
	if f.handler != nil {
		f.handler(w, r)
		return
	}
	model, _ := q.Body["model"].(string)
	known := func() bool {
		for _, m := range f.models {
			if m == model {
				return true
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("model %q not found, try pulling it first", model)})
		return false
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /api/version":
		writeJSON(w, 200, map[string]string{"version": "0.9.0"})
	case "GET /api/tags":
		list := []any{}
		for _, m := range f.models {
			list = append(list, map[string]any{
				"name": m, "model": m, "modified_at": created, "size": 2019393189, "digest": "a80c4f17acd5",
				"details": map[string]any{"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
			})
		}
		writeJSON(w, 200, map[string]any{"models": list})
	case "POST /api/show":
		if known() {
			writeJSON(w, 200, f.show)
		}
	case "POST /api/generate":
		if known() {
			writeJSON(w, 200, map[string]any{"model": model, "created_at": created, "response": "", "done": true, "done_reason": "unload"})
		}
	case "POST /api/chat":
		if !known() {
			return
		}
		reason := f.reason
		if reason == "" {
			reason = "stop"
		}
		lines := ollamaLines(model, f.pieces, reason, 26, len(f.pieces))
		if f.midErr != "" {
			lines = append(lines[:len(f.pieces)], mustJSON(map[string]string{"error": f.midErr})+"\n")
		}
		stream(w, "application/x-ndjson", lines...)
	default:
		http.NotFound(w, r)
	}
}

// fakeOpenAI is an OpenAI-compatible server: /v1/chat/completions streams pieces, /v1/models
// lists models, and extra answers other paths (/props, /api/v0/models).
type fakeOpenAI struct {
	rec     recorder
	models  []string
	pieces  []string
	finish  string // default "stop"
	extra   map[string]any
	handler http.HandlerFunc
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := f.rec.record(r)
	if f.handler != nil {
		f.handler(w, r)
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/models":
		list := []any{}
		for _, m := range f.models {
			list = append(list, map[string]any{"id": m, "object": "model", "created": 1748772000, "owned_by": "llamacpp"})
		}
		writeJSON(w, 200, map[string]any{"object": "list", "data": list})
	case "POST /v1/chat/completions":
		model, _ := q.Body["model"].(string)
		finish := f.finish
		if finish == "" {
			finish = "stop"
		}
		stream(w, "text/event-stream", sseEvents(model, f.pieces, finish, 31, len(f.pieces))...)
	default:
		if v, ok := f.extra[r.URL.Path]; ok && r.Method == "GET" {
			writeJSON(w, 200, v)
			return
		}
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": 404, "message": "File Not Found", "type": "not_found_error"}})
	}
}

// serve starts h on a loopback port for the test's duration.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// mustNew makes a client, failing the test on error.
func mustNew(t *testing.T, endpoint string, opts Options) Client {
	t.Helper()
	c, err := New(endpoint, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", endpoint, err)
	}
	return c
}

// wantErr fails the test unless err is not nil, matches target (if any) and its message
// contains every part.
func wantErr(t *testing.T, err error, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q (%T) does not match %v", err, err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

var userMsg = []Message{{Role: "system", Content: "Summarise."}, {Role: "user", Content: "A transcript."}}
