// Package fakellm is a stand-in for a language model server in tests: real HTTP over loopback
// speaking the real wire formats (Ollama's NDJSON stream, the OpenAI-compatible SSE stream),
// answered by a fake model. No language model weights exist where the tests run, so what the
// tests check is the summary stage's own work: its chunking, coverage check, merge, parsing and
// records.
package fakellm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Model answers the prompts of the summary stage as a language model would have to: from the
// transcript lines ("[H:MM:SS] text") or the notes on parts it was sent, in the form asked for.
// For every topic word (Topics) it meets first it writes a point and a chapter at that line; for
// every line with "must buy", an action item. Keep, when > 0, is how many characters of each
// user message it reads (a server that silently drops the end of a prompt too long for it).
type Model struct {
	Keep   int
	Topics []string // default bread, garden, train

	mu       sync.Mutex
	seen     map[string]bool
	requests []map[string]any
	unloaded []string
}

// New returns a Model that reads whole prompts.
func New() *Model { return &Model{seen: map[string]bool{}} }

// Seen reports whether the model read the transcript line "H:MM:SS text".
func (f *Model) Seen(line string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[line]
}

// Requests are the chat requests' models and options (Ollama), in order.
func (f *Model) Requests() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// Unloaded lists the models an Ollama client asked to unload (keep_alive 0).
func (f *Model) Unloaded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.unloaded)
}

var lineRe = regexp.MustCompile(`^\[(\d+:\d\d:\d\d)\] (.*)$`)

func (f *Model) answer(system, user string) (text string, promptTokens int) {
	if f.Keep > 0 && len(user) > f.Keep {
		user = user[:f.Keep]
	}
	var b strings.Builder
	if strings.Contains(system, "notes taken on consecutive parts") {
		// The merge: the first and last times of the parts, their notes and chapters.
		var first, last string
		var notes, chapters []string
		section := ""
		for _, l := range strings.Split(user, "\n") {
			switch {
			case strings.HasPrefix(l, "Part "):
				f := strings.Fields(l) // Part A to B
				if first == "" {
					first = f[1]
				}
				last = f[3]
			case l == "NOTES:" || l == "CHAPTERS:" || l == "ACTION ITEMS:" || l == "DECISIONS:":
				section = l
			case strings.HasPrefix(l, "- ") && section == "NOTES:" && !slices.Contains(notes, l):
				notes = append(notes, l) // a model merges what the parts repeat
			case strings.HasPrefix(l, "- ") && section == "CHAPTERS:" && !slices.ContainsFunc(chapters, func(c string) bool { return c[strings.Index(c, "]"):] == l[strings.Index(l, "]"):] }):
				chapters = append(chapters, l)
			}
		}
		fmt.Fprintf(&b, "COVERS: [%s] to [%s]\nSUMMARY:\n%s\nCHAPTERS:\n%s\nACTION ITEMS:\n- none\nDECISIONS:\n- none\n",
			first, last, strings.Join(notes, "\n"), strings.Join(chapters, "\n"))
		return b.String(), (len(system) + len(user)) / 4
	}
	var times, texts []string
	for _, l := range strings.Split(user, "\n") {
		if m := lineRe.FindStringSubmatch(l); m != nil {
			times, texts = append(times, m[1]), append(texts, m[2])
			f.mu.Lock()
			if f.seen == nil {
				f.seen = map[string]bool{}
			}
			f.seen[m[1]+" "+m[2]] = true
			f.mu.Unlock()
		}
	}
	if len(times) == 0 {
		return "I could not find a transcript.", 10
	}
	// One point and one chapter for every topic word it meets first: the words of the
	// transcripts below.
	fmt.Fprintf(&b, "COVERS: [%s] to [%s]\n**SUMMARY:**\n", times[0], times[len(times)-1])
	var chapters []string
	done := map[string]bool{}
	for i, t := range texts {
		topics := f.Topics
		if topics == nil {
			topics = []string{"bread", "garden", "train"}
		}
		for _, w := range topics {
			if strings.Contains(strings.ToLower(t), w) && !done[w] {
				done[w] = true
				fmt.Fprintf(&b, "* The speaker talks about %s.\n", w)
				chapters = append(chapters, fmt.Sprintf("- [%s] All about %s: what is said on %s.", times[i], w, w))
			}
		}
	}
	fmt.Fprintf(&b, "CHAPTERS:\n%s\nACTION ITEMS:\n", strings.Join(chapters, "\n"))
	for i, t := range texts {
		if strings.Contains(t, "must buy") {
			fmt.Fprintf(&b, "- [%s] Buy the ticket before the trip.\n", times[i])
		}
	}
	b.WriteString("DECISIONS:\n- none\n")
	return b.String(), (len(system) + len(user)) / 4
}

// Ollama serves the model as an Ollama server, closed when the test ends.
func (f *Model) Ollama(t testing.TB) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"version":"0.12.6"}`)
	})
	mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"models":[{"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest"},{"name":"llama3.2:3b","model":"llama3.2:3b"}]}`)
	})
	mux.HandleFunc("POST /api/show", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"model_info":{"llama.context_length":131072},"parameters":""}`)
	})
	mux.HandleFunc("POST /api/generate", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		if ka, ok := req["keep_alive"]; ok && fmt.Sprint(ka) == "0" {
			f.mu.Lock()
			f.unloaded = append(f.unloaded, fmt.Sprint(req["model"]))
			f.mu.Unlock()
		}
		fmt.Fprint(w, `{"model":"llama3.2:3b","response":"","done":true,"done_reason":"unload"}`)
	})
	mux.HandleFunc("POST /api/chat", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct{ Role, Content string }
			Options  map[string]any `json:"options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad request"}`, 400)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, map[string]any{"model": req.Model, "options": req.Options})
		f.mu.Unlock()
		text, pt := f.answer(req.Messages[0].Content, req.Messages[1].Content)
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, piece := range chunks(text) {
			_ = enc.Encode(map[string]any{"model": req.Model, "created_at": time.Now().Format(time.RFC3339),
				"message": map[string]string{"role": "assistant", "content": piece}, "done": false})
			w.(http.Flusher).Flush()
		}
		_ = enc.Encode(map[string]any{"model": req.Model, "done": true, "done_reason": "stop",
			"prompt_eval_count": pt, "eval_count": len(text) / 4})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// OpenAI serves the model as an OpenAI-compatible server (llama.cpp's, whose /props says its
// context is nCtx tokens), closed when the test ends.
func (f *Model) OpenAI(t testing.TB, nCtx int) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"qwen2.5-7b-instruct","object":"model"}]}`)
	})
	mux.HandleFunc("GET /props", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"default_generation_settings":{"n_ctx":%d}}`, nCtx)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct{ Role, Content string }
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":{"message":"bad request"}}`, 400)
			return
		}
		text, pt := f.answer(req.Messages[0].Content, req.Messages[1].Content)
		w.Header().Set("Content-Type", "text/event-stream")
		bw := bufio.NewWriter(w)
		event := func(v any) {
			data, _ := json.Marshal(v)
			fmt.Fprintf(bw, "data: %s\n\n", data)
			bw.Flush()
			w.(http.Flusher).Flush()
		}
		for _, piece := range chunks(text) {
			event(map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": piece}, "finish_reason": nil}}})
		}
		event(map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]string{}, "finish_reason": "stop"}}})
		event(map[string]any{"id": "c1", "object": "chat.completion.chunk", "model": req.Model, "choices": []any{},
			"usage": map[string]int{"prompt_tokens": pt, "completion_tokens": len(text) / 4}})
		fmt.Fprint(bw, "data: [DONE]\n\n")
		bw.Flush()
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// chunks cuts text into pieces of a few characters, as a model streams tokens.
func chunks(text string) []string {
	var out []string
	for len(text) > 0 {
		n := min(7, len(text))
		out = append(out, text[:n])
		text = text[n:]
	}
	return out
}
