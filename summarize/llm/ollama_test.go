package llm

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOllamaChat: a streamed answer is assembled in order, OnDelta sees each piece as it came,
// the counts and model of the final line are returned, and the request carries the model,
// messages, stream true and the options asked for.
func TestOllamaChat(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"llama3.2:latest"}, pieces: []string{"The ", "meeting ", "agreed ", "on Friday."}}
	srv := serve(t, f)
	c := mustNew(t, srv.URL, Options{Kind: "ollama"})
	var deltas []string
	ans, err := c.Chat(t.Context(), Request{
		Model: "llama3.2:latest", Messages: userMsg, Temperature: 0.2, MaxTokens: 512, NumCtx: 16384,
		OnDelta: func(s string) { deltas = append(deltas, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Answer{Text: "The meeting agreed on Friday.", FinishReason: "stop", PromptTokens: 26, OutputTokens: 4, Model: "llama3.2:latest"}
	if diff := cmp.Diff(want, ans); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if !slices.Equal(deltas, f.pieces) {
		t.Errorf("deltas %q, want %q", deltas, f.pieces)
	}
	body := f.rec.last(t, "/api/chat").Body
	wantBody := map[string]any{
		"model":    "llama3.2:latest",
		"messages": []any{map[string]any{"role": "system", "content": "Summarise."}, map[string]any{"role": "user", "content": "A transcript."}},
		"stream":   true,
		"options":  map[string]any{"temperature": 0.2, "num_predict": 512.0, "num_ctx": 16384.0},
	}
	if diff := cmp.Diff(wantBody, body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if c.Kind() != KindOllama || c.Endpoint() != srv.URL {
		t.Errorf("Kind %q Endpoint %q", c.Kind(), c.Endpoint())
	}
}

// TestOllamaChatDefaults: a negative temperature and zero limits leave the options to the server.
func TestOllamaChatDefaults(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"m"}, pieces: []string{"x"}}
	c := mustNew(t, serve(t, f).URL, Options{Kind: "ollama"})
	if _, err := c.Chat(t.Context(), Request{Model: "m", Messages: userMsg, Temperature: -1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.rec.last(t, "/api/chat").Body["options"]; ok {
		t.Errorf("options sent: %v", f.rec.last(t, "/api/chat").Body)
	}
	if _, err := c.Chat(t.Context(), Request{Messages: userMsg}); err == nil {
		t.Error("Chat without a model: no error")
	}
}

// TestOllamaChatLength: done_reason "length" is FinishReason "length".
func TestOllamaChatLength(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"m"}, pieces: []string{"cut"}, reason: "length"}
	ans, err := mustNew(t, serve(t, f).URL, Options{Kind: "ollama"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
	if err != nil || ans.FinishReason != "length" || ans.Text != "cut" {
		t.Errorf("%+v, %v: want FinishReason length", ans, err)
	}
}

// TestOllamaChatErrorMidStream: an {"error":...} line after some of the answer is an error that
// names the server and quotes the message; it is not retried.
func TestOllamaChatErrorMidStream(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"m"}, pieces: []string{"a", "b"}, midErr: "model runner has unexpectedly stopped"}
	srv := serve(t, f)
	var deltas []string
	_, err := mustNew(t, srv.URL, Options{Kind: "ollama"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg, OnDelta: func(s string) { deltas = append(deltas, s) }})
	wantErr(t, err, nil, "ollama at "+srv.URL, "model runner has unexpectedly stopped")
	if len(deltas) != 2 || f.rec.count("/api/chat") != 1 {
		t.Errorf("deltas %q, %d requests", deltas, f.rec.count("/api/chat"))
	}
}

// TestOllamaModelNotFound: Ollama's 404 for a model it does not have is ErrModelNotFound, for
// Chat, ContextLength and Unload alike, with a message naming the model; it is not retried.
func TestOllamaModelNotFound(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"llama3.2:latest"}}
	srv := serve(t, f)
	c := mustNew(t, srv.URL, Options{Kind: "ollama"})
	_, err := c.Chat(t.Context(), Request{Model: "nope", Messages: userMsg})
	wantErr(t, err, ErrModelNotFound, `ollama at `+srv.URL+`: model "nope" not found`)
	_, err = c.ContextLength(t.Context(), "nope")
	wantErr(t, err, ErrModelNotFound, `model "nope" not found`)
	wantErr(t, c.Unload(t.Context(), "nope"), ErrModelNotFound, `model "nope" not found`)
	if n := len(f.rec.all()); n != 3 {
		t.Errorf("%d requests, want 3 (no retries)", n)
	}
}

// TestOllamaModels: /api/tags's names, in the server's order.
func TestOllamaModels(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"qwen2.5:7b-instruct", "nomic-embed-text:latest", "llama3.2:latest"}}
	got, err := mustNew(t, serve(t, f).URL, Options{Kind: "ollama"}).Models(t.Context())
	if err != nil || !slices.Equal(got, f.models) {
		t.Errorf("Models = %q, %v; want %q", got, err, f.models)
	}
	empty, err := mustNew(t, serve(t, &fakeOllama{}).URL, Options{Kind: "ollama"}).Models(t.Context())
	if err != nil || len(empty) != 0 {
		t.Errorf("no models: %q, %v", empty, err)
	}
}

// TestOllamaContextLength: /api/show's model_info "<arch>.context_length" (the trained maximum),
// else num_ctx from its parameters text, else 0.
func TestOllamaContextLength(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		show map[string]any
		want int
	}{
		{"model_info", map[string]any{
			"modelfile": "FROM llama3.2", "parameters": "num_ctx                        8192\nstop                           \"<|eot_id|>\"",
			"model_info": map[string]any{"general.architecture": "llama", "general.parameter_count": 3212749888, "llama.context_length": 131072, "llama.embedding_length": 3072},
		}, 131072},
		{"other key", map[string]any{"model_info": map[string]any{"qwen2.context_length": 32768}}, 32768},
		{"parameters", map[string]any{"parameters": "stop \"<|im_end|>\"\nnum_ctx 4096\ntemperature 0.7", "model_info": map[string]any{}}, 4096},
		{"neither", map[string]any{"parameters": "temperature 0.7", "details": map[string]any{"family": "llama"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOllama{models: []string{"m"}, show: tc.show}
			n, err := mustNew(t, serve(t, f).URL, Options{Kind: "ollama"}).ContextLength(t.Context(), "m")
			if err != nil || n != tc.want {
				t.Errorf("ContextLength = %d, %v; want %d", n, err, tc.want)
			}
			if got := f.rec.last(t, "/api/show").Body["model"]; got != "m" {
				t.Errorf("asked about %v", got)
			}
		})
	}
}

// TestOllamaUnload: Unload sends /api/generate with the model and keep_alive 0.
func TestOllamaUnload(t *testing.T) {
	t.Parallel()
	f := &fakeOllama{models: []string{"llama3.2:latest"}}
	if err := mustNew(t, serve(t, f).URL, Options{Kind: "ollama"}).Unload(t.Context(), "llama3.2:latest"); err != nil {
		t.Fatal(err)
	}
	body := f.rec.last(t, "/api/generate").Body
	if body["model"] != "llama3.2:latest" || body["keep_alive"] != 0.0 {
		t.Errorf("unload request %v", body)
	}
}

// TestOllamaBadAnswers: an answer that is not Ollama's stream, or a failure status with any body,
// gives an error naming the server and what was wrong.
func TestOllamaBadAnswers(t *testing.T) {
	t.Parallel()
	long := `{"message":{"content":"` + strings.Repeat("x", 1<<20) + `"}}` + "\n"
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		want   []string
	}{
		{"html page", 200, "text/html", "<!DOCTYPE html><html><title>Router login</title></html>", []string{"not Ollama's stream", "<!DOCTYPE html>"}},
		{"garbage", 200, "application/x-ndjson", "\x00\xff\xfe garbage", []string{"not Ollama's stream"}},
		{"bad second line", 200, "application/x-ndjson", ollamaLines("m", []string{"a"}, "stop", 1, 1)[0] + "{\"message\":\n", []string{"line 2", "not the expected JSON"}},
		{"not an object", 200, "application/x-ndjson", "[1,2]\n", []string{"not Ollama's stream"}},
		{"wrong types", 200, "application/x-ndjson", `{"message":{"content":5},"done":false}` + "\n", []string{"not Ollama's stream"}},
		{"line too long", 200, "application/x-ndjson", long, []string{"longer than 1 MiB"}},
		{"empty", 200, "application/x-ndjson", "", []string{"empty"}},
		{"no done line", 200, "application/x-ndjson", ollamaLines("m", []string{"a", "b"}, "stop", 1, 1)[0], []string{"without its final (done) line"}},
		{"500 html", 500, "text/html", "<html><head><title>500 Internal Server Error</title></head></html>", []string{"500 Internal Server Error", `an HTML page titled "500 Internal Server Error"`}},
		{"400 json", 400, "application/json", `{"error":"invalid options: num_ctx"}`, []string{"400 Bad Request", "invalid options: num_ctx"}},
		{"404 path", 404, "text/plain", "404 page not found", []string{"404 Not Found", "404 page not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, &fakeOllama{handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}})
			_, err := mustNew(t, srv.URL, Options{Kind: "ollama", Retries: -1}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
			wantErr(t, err, nil, append([]string{"ollama at " + srv.URL}, tc.want...)...)
			if errors.Is(err, ErrModelNotFound) {
				t.Errorf("a 404 that does not speak of a model is ErrModelNotFound: %v", err)
			}
		})
	}
}

// TestOllamaNonStreamed: an answer sent whole (one line, done true) reads the same.
func TestOllamaNonStreamed(t *testing.T) {
	t.Parallel()
	srv := serve(t, &fakeOllama{handler: func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"model": "m", "message": map[string]any{"role": "assistant", "content": "whole"}, "done": true, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 1})
	}})
	ans, err := mustNew(t, srv.URL, Options{Kind: "ollama"}).Chat(context.Background(), Request{Model: "m", Messages: userMsg})
	if err != nil || ans.Text != "whole" || ans.PromptTokens != 9 {
		t.Errorf("%+v, %v", ans, err)
	}
}
