package llm

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// port is the port of a test server's URL.
func port(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// closedPort is a loopback port where nothing listens.
func closedPort(t *testing.T) int {
	return port(t, "http://"+closedAddr(t))
}

// TestDiscover: with one kind of server at a time on an ephemeral port, Discover skips the ports
// where nothing answers, returns a client of the right kind for the server, and a chat model
// from its list, never the embedding model.
func TestDiscover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind   string
		server http.Handler
		want   string
	}{
		{"ollama", &fakeOllama{models: []string{"nomic-embed-text:latest", "llama3.2:latest"}}, "llama3.2:latest"},
		{"llamacpp", &fakeOpenAI{models: []string{"qwen2.5-7b-instruct-q4_k_m.gguf"}, extra: map[string]any{"/props": map[string]any{"default_generation_settings": map[string]any{"n_ctx": 8192}}}}, "qwen2.5-7b-instruct-q4_k_m.gguf"},
		{"lmstudio", &fakeOpenAI{models: []string{"text-embedding-nomic-embed-text-v1.5", "meta-llama-3.1-8b-instruct", "gemma-2-2b"}}, "meta-llama-3.1-8b-instruct"},
		{"mlx", &fakeOpenAI{models: []string{"mlx-community/Llama-3.2-3B-Instruct-4bit"}}, "mlx-community/Llama-3.2-3B-Instruct-4bit"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, tc.server)
			c, model, err := Discover(t.Context(), Options{Probes: []Probe{{KindOllama, closedPort(t)}, {tc.kind, port(t, srv.URL)}, {"lmstudio", closedPort(t)}}})
			if err != nil {
				t.Fatal(err)
			}
			wantKind := KindOpenAI
			if tc.kind == "ollama" {
				wantKind = KindOllama
			}
			if model != tc.want || c.Kind() != wantKind || c.Endpoint() != srv.URL {
				t.Errorf("Discover = %s %s, %q; want %s %s, %q", c.Kind(), c.Endpoint(), model, wantKind, srv.URL, tc.want)
			}
			if _, err := c.Chat(t.Context(), Request{Model: model, Messages: userMsg}); err != nil {
				t.Errorf("chat with the discovered server: %v", err)
			}
		})
	}
}

// TestDiscoverOrder: when several servers answer, the first in the probes' order wins, even
// when a later one answers first.
func TestDiscoverOrder(t *testing.T) {
	t.Parallel()
	first := serve(t, &fakeOpenAI{models: []string{"a"}})
	second := serve(t, &fakeOllama{models: []string{"b"}})
	for range 3 {
		c, model, err := Discover(t.Context(), Options{Probes: []Probe{{"openai", port(t, first.URL)}, {"ollama", port(t, second.URL)}}})
		if err != nil || model != "a" || c.Endpoint() != first.URL {
			t.Fatalf("Discover = %v, %q, %v", c, model, err)
		}
	}
}

// TestDiscoverNone: nothing answering, or only a server that stalls past ProbeTimeout, is
// ErrUnavailable naming what was tried; servers that answer with no chat model are
// ErrModelNotFound.
func TestDiscoverNone(t *testing.T) {
	t.Parallel()
	p1, p2 := closedPort(t), closedPort(t)
	_, _, err := Discover(t.Context(), Options{Probes: []Probe{{"ollama", p1}, {"llamacpp", p2}}})
	wantErr(t, err, ErrUnavailable, "no local LLM server found", "ollama at http://127.0.0.1:"+strconv.Itoa(p1), "OpenAI-compatible server at http://127.0.0.1:"+strconv.Itoa(p2))

	stalled := serve(t, stall(t, nil, nil))
	_, _, err = Discover(t.Context(), Options{ProbeTimeout: 200 * time.Millisecond, Probes: []Probe{{"ollama", port(t, stalled.URL)}}})
	wantErr(t, err, ErrUnavailable, "no complete answer within 200ms")

	embedOnly := serve(t, &fakeOllama{models: []string{"nomic-embed-text:latest", "mxbai-embed-large:latest"}})
	empty := serve(t, &fakeOpenAI{})
	_, _, err = Discover(t.Context(), Options{Probes: []Probe{{"ollama", port(t, embedOnly.URL)}, {"lmstudio", port(t, empty.URL)}, {"ollama", closedPort(t)}}})
	wantErr(t, err, ErrModelNotFound, "no chat model", "nomic-embed-text:latest", "has no models")

	_, _, err = Discover(t.Context(), Options{Probes: []Probe{{"ollama", 0}}})
	wantErr(t, err, ErrUnavailable, "not a TCP port")
}

// TestChooseModel: a model asked for is found (Ollama's implicit :latest, then any case) or is
// an error listing what there is; with none asked for, the choice skips embedding and reranking
// models, prefers instruction/chat models, puts base/text models last, and is the same for any
// order of the same list.
func TestChooseModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		models []string
		want   string
		got    string // "" = an error
	}{
		{[]string{"llama3.2:latest", "qwen2.5:7b"}, "qwen2.5:7b", "qwen2.5:7b"},
		{[]string{"llama3.2:latest", "qwen2.5:7b"}, "llama3.2", "llama3.2:latest"},
		{[]string{"Meta-Llama-3.1-8B-Instruct"}, "meta-llama-3.1-8b-instruct", "Meta-Llama-3.1-8B-Instruct"},
		{[]string{"llama3.2:latest"}, "mistral", ""},
		{nil, "mistral", ""},
		{[]string{"nomic-embed-text:latest", "llama3.2:latest"}, "", "llama3.2:latest"},
		{[]string{"llama3.2:latest", "nomic-embed-text:latest"}, "", "llama3.2:latest"},
		{[]string{"llama3:text", "mistral:latest", "bge-reranker-v2-m3"}, "", "mistral:latest"},
		{[]string{"zephyr:latest", "gemma-2-9b-it", "qwen2.5-7b-instruct"}, "", "gemma-2-9b-it"},
		{[]string{"qwen2.5-7b-instruct", "gemma-2-9b-it", "zephyr:latest"}, "", "gemma-2-9b-it"},
		{[]string{"Qwen2.5-Coder-7B-Base", "phi3:chat"}, "", "phi3:chat"},
		{[]string{"llama3:text"}, "", "llama3:text"},
		{[]string{"nomic-embed-text:latest", "text-embedding-3-small"}, "", ""},
		{nil, "", ""},
	} {
		got, err := ChooseModel(tc.models, tc.want)
		if got != tc.got || (err == nil) != (tc.got != "") {
			t.Errorf("ChooseModel(%q, %q) = %q, %v; want %q", tc.models, tc.want, got, err, tc.got)
		}
		if err != nil {
			wantErr(t, err, ErrModelNotFound)
		}
	}
	_, err := ChooseModel([]string{"llama3.2:latest", "qwen2.5:7b"}, "mistral")
	wantErr(t, err, ErrModelNotFound, `model "mistral" is not on the server; it has llama3.2:latest, qwen2.5:7b`)
}
