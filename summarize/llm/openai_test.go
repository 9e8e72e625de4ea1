package llm

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestOpenAIChat: a streamed answer is assembled in order up to [DONE], OnDelta sees each piece,
// the finish_reason, the usage chunk's counts and the model are returned, and the request is
// what OpenAI-compatible servers take (stream, include_usage, temperature, max_tokens).
func TestOpenAIChat(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{pieces: []string{"Action ", "items: ", "none."}}
	srv := serve(t, f)
	c := mustNew(t, srv.URL, Options{Kind: "llamacpp"})
	var deltas []string
	ans, err := c.Chat(t.Context(), Request{
		Model: "qwen2.5-7b-instruct", Messages: userMsg, Temperature: 0, MaxTokens: 300, NumCtx: 4096,
		OnDelta: func(s string) { deltas = append(deltas, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Answer{Text: "Action items: none.", FinishReason: "stop", PromptTokens: 31, OutputTokens: 3, Model: "qwen2.5-7b-instruct"}
	if diff := cmp.Diff(want, ans); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if !slices.Equal(deltas, f.pieces) {
		t.Errorf("deltas %q, want %q", deltas, f.pieces)
	}
	wantBody := map[string]any{
		"model":          "qwen2.5-7b-instruct",
		"messages":       []any{map[string]any{"role": "system", "content": "Summarise."}, map[string]any{"role": "user", "content": "A transcript."}},
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
		"temperature":    0.0,
		"max_tokens":     300.0,
	}
	if diff := cmp.Diff(wantBody, f.rec.last(t, "/v1/chat/completions").Body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if c.Kind() != KindOpenAI {
		t.Errorf("Kind %q", c.Kind())
	}
}

// TestOpenAIFinishLength: finish_reason "length" is FinishReason "length"; a stream with no usage
// chunk leaves the counts 0.
func TestOpenAIFinishLength(t *testing.T) {
	t.Parallel()
	srv := serve(t, &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) {
		stream(w, "text/event-stream", sseEvents("m", []string{"cut ", "off"}, "length", 0, 0)...)
	}})
	ans, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
	if err != nil || ans.FinishReason != "length" || ans.Text != "cut off" || ans.PromptTokens != 0 {
		t.Errorf("%+v, %v", ans, err)
	}
}

// TestOpenAIOfficialClient: OpenAI's own Go client reads the test server's stream as the same
// text, finish reason and usage as Chat does: the test server speaks the real format.
func TestOpenAIOfficialClient(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{pieces: []string{"Chapter 1: ", "Intro", "ductions\n", "Chapter 2: Budget"}}
	srv := serve(t, f)
	oc := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("none"), option.WithMaxRetries(0))
	st := oc.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:         "m",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("A transcript.")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		if !acc.AddChunk(st.Current()) {
			t.Fatal("accumulator refused a chunk")
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	ans, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
	if err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("official client: %d choices", len(acc.Choices))
	}
	got := Answer{Text: acc.Choices[0].Message.Content, FinishReason: acc.Choices[0].FinishReason,
		PromptTokens: int(acc.Usage.PromptTokens), OutputTokens: int(acc.Usage.CompletionTokens), Model: acc.Model}
	if diff := cmp.Diff(got, ans); diff != "" || ans.Text != strings.Join(f.pieces, "") {
		t.Errorf("official client (-) and Chat (+) differ:\n%s", diff)
	}
}

// TestOpenAIErrorStatus: an error status with OpenAI's error JSON is an error quoting its
// message; llama.cpp's context overflow is ErrContextExceeded, a missing model ErrModelNotFound,
// and a 401 is neither (nor retried).
func TestOpenAIErrorStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   map[string]any
		target error
		want   string
	}{
		{"context", 400, map[string]any{"error": map[string]any{"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 9000, "n_ctx": 4096}},
			ErrContextExceeded, "400 Bad Request: the request exceeds the available context size"},
		{"model", 404, map[string]any{"error": map[string]any{"message": `Model "gpt-9" not found. Please load it first.`, "type": "invalid_request_error", "param": "model", "code": "model_not_found"}},
			ErrModelNotFound, `model "gpt-9" not found: Model "gpt-9" not found`},
		{"auth", 401, map[string]any{"error": map[string]any{"message": "Invalid API Key", "type": "authentication_error", "code": 401}},
			nil, "401 Unauthorized: Invalid API Key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tc.status, tc.body) }}
			srv := serve(t, f)
			_, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "gpt-9", Messages: userMsg})
			wantErr(t, err, tc.target, "OpenAI-compatible server at "+srv.URL, tc.want)
			for _, other := range []error{ErrContextExceeded, ErrModelNotFound, ErrUnavailable} {
				if other != tc.target && errors.Is(err, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
			if n := len(f.rec.all()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

// TestOpenAIErrorEvent: an error event in the stream, after part of the answer, is an error
// quoting it (as an "error" member of a data event, and as an event named "error").
func TestOpenAIErrorEvent(t *testing.T) {
	t.Parallel()
	for name, ev := range map[string]string{
		"data":  `data: {"error":{"message":"the request exceeds the available context size","type":"exceed_context_size_error","code":400}}` + "\n\n",
		"named": "event: error\ndata: {\"error\":{\"message\":\"context length exceeded\",\"type\":\"server_error\"}}\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) {
				events := sseEvents("m", []string{"a", "b"}, "stop", 0, 0)
				stream(w, "text/event-stream", append(events[:3:3], ev)...)
			}}
			srv := serve(t, f)
			var deltas []string
			_, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg, OnDelta: func(s string) { deltas = append(deltas, s) }})
			wantErr(t, err, ErrContextExceeded, "OpenAI-compatible server at "+srv.URL, "the server reported an error", "context")
			if len(deltas) != 2 || len(f.rec.all()) != 1 {
				t.Errorf("deltas %q, %d requests", deltas, len(f.rec.all()))
			}
		})
	}
}

// TestOpenAIModels: /v1/models's ids, in the server's order.
func TestOpenAIModels(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{models: []string{"meta-llama-3.1-8b-instruct", "text-embedding-nomic-embed-text-v1.5"}}
	got, err := mustNew(t, serve(t, f).URL, Options{Kind: "lmstudio"}).Models(t.Context())
	if err != nil || !slices.Equal(got, f.models) {
		t.Errorf("Models = %q, %v", got, err)
	}
	bad := &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{"object": "list"}) }}
	_, err = mustNew(t, serve(t, bad).URL, Options{Kind: "openai"}).Models(t.Context())
	wantErr(t, err, nil, "GET /v1/models", "no model list")
}

// TestOpenAIContextLength: llama.cpp's /props (default_generation_settings.n_ctx, or a top-level
// n_ctx); LM Studio's /api/v0/models (loaded_context_length when loaded, else
// max_context_length); a server with neither (mlx_lm.server) cannot tell: 0 and no error.
func TestOpenAIContextLength(t *testing.T) {
	t.Parallel()
	lmstudio := map[string]any{"object": "list", "data": []any{
		map[string]any{"id": "qwen2-vl-7b-instruct", "object": "model", "type": "vlm", "state": "not-loaded", "max_context_length": 32768},
		map[string]any{"id": "meta-llama-3.1-8b-instruct", "object": "model", "type": "llm", "state": "loaded", "max_context_length": 131072, "loaded_context_length": 8192},
	}}
	for _, tc := range []struct {
		name  string
		extra map[string]any
		model string
		want  int
	}{
		{"llama.cpp", map[string]any{"/props": map[string]any{
			"default_generation_settings": map[string]any{"id": 0, "n_ctx": 65536, "params": map[string]any{"n_predict": -1}},
			"total_slots":                 4, "model_path": "/models/qwen.gguf", "chat_template": "{{ x }}", "build_info": "b5000",
		}}, "any", 65536},
		{"llama.cpp top level", map[string]any{"/props": map[string]any{"n_ctx": 16384}}, "any", 16384},
		{"lmstudio loaded", map[string]any{"/api/v0/models": lmstudio}, "meta-llama-3.1-8b-instruct", 8192},
		{"lmstudio not loaded", map[string]any{"/api/v0/models": lmstudio}, "qwen2-vl-7b-instruct", 32768},
		{"lmstudio unknown model", map[string]any{"/api/v0/models": lmstudio}, "other", 0},
		{"mlx", nil, "mlx-community/Llama-3.2-3B-Instruct-4bit", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := mustNew(t, serve(t, &fakeOpenAI{extra: tc.extra}).URL, Options{Kind: "openai"}).ContextLength(t.Context(), tc.model)
			if err != nil || n != tc.want {
				t.Errorf("ContextLength = %d, %v; want %d", n, err, tc.want)
			}
		})
	}
}

// TestOpenAINonStreamed: a server that ignores stream and answers the whole completion as JSON
// is read as well.
func TestOpenAINonStreamed(t *testing.T) {
	t.Parallel()
	srv := serve(t, &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "granite",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": "Whole."}}},
			"usage":   map[string]any{"prompt_tokens": 24, "completion_tokens": 2, "total_tokens": 26},
		})
	}})
	ans, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "granite", Messages: userMsg})
	want := Answer{Text: "Whole.", FinishReason: "stop", PromptTokens: 24, OutputTokens: 2, Model: "granite"}
	if err != nil || ans != want {
		t.Errorf("%+v, %v; want %+v", ans, err, want)
	}
}

// TestOpenAIBadAnswers: an answer that is not an event stream of chunks gives an error naming the
// server and what was wrong.
func TestOpenAIBadAnswers(t *testing.T) {
	t.Parallel()
	events := sseEvents("m", []string{"a"}, "stop", 0, 0)
	for _, tc := range []struct {
		name  string
		ctype string
		body  string
		want  string
	}{
		{"html", "text/html", "<html><body>It works!</body></html>", `not an event stream: "<html><body>It works!`},
		{"garbage", "text/event-stream", "\x00\x01\xff\n\n", "not an event stream"},
		{"garbage data", "text/event-stream", "data: \x00\x01\xff\n\n", "event 1 of the answer is not a chat completion chunk"},
		{"bad json", "text/event-stream", events[0] + "data: {\"choices\":[\n\n", "event 2 of the answer is not a chat completion chunk"},
		{"event too long", "text/event-stream", "data: " + strings.Repeat("x", 1<<20+10) + "\n\n", "longer than 1 MiB"},
		{"cut short", "text/event-stream", events[0] + events[1], "before it was complete"},
		{"empty", "text/event-stream", "", "not an event stream"},
		{"json not a completion", "application/json", `{"status":"ok"}`, "has no choices"},
		{"json garbage", "application/json", `<html>`, "not a chat completion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) {
				stream(w, tc.ctype, tc.body)
			}})
			_, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
			wantErr(t, err, nil, "OpenAI-compatible server at "+srv.URL, tc.want)
		})
	}
}

// TestOpenAIStreamLeniency: comments (keep-alives), CRLF line ends, events of other names and
// a stream that ends after finish_reason without [DONE] all read right.
func TestOpenAIStreamLeniency(t *testing.T) {
	t.Parallel()
	events := sseEvents("m", []string{"one ", "two"}, "stop", 5, 2)
	body := ": keep-alive\n\n" + strings.ReplaceAll(events[1], "\n", "\r\n") + "event: ping\ndata: {}\n\n" + strings.Join(events[2:len(events)-1], "")
	srv := serve(t, &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) { stream(w, "text/event-stream", body) }})
	ans, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
	if err != nil || ans.Text != "one two" || ans.FinishReason != "stop" || ans.PromptTokens != 5 {
		t.Errorf("%+v, %v", ans, err)
	}
}

// TestAPIKey: an API key is sent as a bearer token; without one no Authorization is sent.
func TestAPIKey(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{models: []string{"m"}}
	srv := serve(t, f)
	if _, err := mustNew(t, srv.URL, Options{Kind: "openai", APIKey: "sk-local"}).Models(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := f.rec.last(t, "/v1/models").Header.Get("Authorization"); got != "Bearer sk-local" {
		t.Errorf("Authorization %q", got)
	}
	if _, err := mustNew(t, srv.URL, Options{Kind: "openai"}).Models(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := f.rec.last(t, "/v1/models").Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization %q without a key", got)
	}
}
