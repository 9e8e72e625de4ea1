// Package llm talks to the local LLM server the user already runs, so that Verbatim can write a
// summary, chapters and action items for a transcript without the transcript leaving the machine.
//
// Two APIs cover the servers people run: Ollama's own (/api/chat, streamed as NDJSON) and the
// OpenAI-compatible one (/v1/chat/completions, streamed as server-sent events) that llama.cpp's
// llama-server, LM Studio and mlx_lm.server speak. Answers are always streamed: a long summary
// can show progress, and a server that dies half-way is noticed rather than waited on.
//
// Privacy: unless told otherwise (allow_remote), a client talks only to a server on this machine.
// The endpoint is checked when the client is made, and every connection is checked again when it
// is dialled, so a name that later resolves elsewhere (DNS rebinding) cannot carry a transcript
// away. No proxy from the environment is used.
//
// The package never logs. Every failure is an error that names the server and what went wrong;
// the sentinel errors below classify them for errors.Is.
package llm

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// The kinds of server API a Client speaks, as Client.Kind reports them and Options.Kind takes them.
const (
	// KindOllama is Ollama's native API (/api/chat, /api/tags, /api/show).
	KindOllama = "ollama"
	// KindOpenAI is the OpenAI-compatible API (/v1/chat/completions, /v1/models) of llama.cpp's
	// llama-server, LM Studio, mlx_lm.server and others.
	KindOpenAI = "openai"
)

// Errors the caller can test for with errors.Is. The errors returned carry more: which server,
// which request, what it said.
var (
	// ErrRemote: the endpoint, or the address it resolved to, is not on this machine and
	// Options.AllowRemote is off.
	ErrRemote = errors.New("LLM server is not on this machine")
	// ErrUnavailable: no server answers at the endpoint (connection refused, no socket, the
	// connection dropped before an answer began), or it answered 503 to every attempt.
	ErrUnavailable = errors.New("LLM server unavailable")
	// ErrModelNotFound: the server does not have the model asked for, or (Discover, ChooseModel)
	// it has no model fit for chat.
	ErrModelNotFound = errors.New("model not found")
	// ErrContextExceeded: the server refused the request because the prompt does not fit the
	// model's context window (llama.cpp answers so instead of truncating); the caller can split
	// the transcript and try again.
	ErrContextExceeded = errors.New("prompt exceeds the model's context window")
)

// Message is one turn of a chat: Role is "system", "user" or "assistant".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one chat completion to run.
type Request struct {
	// Model is the model's name as the server lists it (Client.Models). Ollama needs one;
	// a single-model OpenAI-compatible server (llama-server) may ignore it.
	Model    string
	Messages []Message
	// Temperature is sent as given, 0 included (greedy decoding, which suits summaries);
	// a negative value leaves it to the server's default.
	Temperature float64
	// MaxTokens caps the answer's length in tokens (Ollama num_predict, OpenAI max_tokens);
	// 0 leaves it to the server. An answer cut by it ends with FinishReason "length".
	MaxTokens int
	// NumCtx is the context window Ollama should load the model with (options.num_ctx); Ollama's
	// default is small and it silently drops the start of a longer prompt. 0 leaves it to the
	// server. Other servers fix the window when they load the model and ignore this.
	NumCtx int
	// OnDelta, when set, is called with each piece of the answer as it arrives, in order, on the
	// goroutine that called Chat; it should return quickly. Answer.Text is the pieces joined.
	OnDelta func(string)
}

// Answer is a completed chat answer.
type Answer struct {
	// Text is the whole answer.
	Text string
	// FinishReason says why the answer ended: "stop" (the model finished), "length" (MaxTokens or
	// the context window cut it), or another reason the server gave ("content_filter", "load",
	// ...); "" when the server did not say.
	FinishReason string
	// PromptTokens is how many tokens the server counted in the prompt and OutputTokens how many
	// it generated; 0 when not reported. A PromptTokens well under the prompt's size means the
	// server truncated the prompt.
	PromptTokens, OutputTokens int
	// Model is the model that answered, as the server named it ("" if it did not).
	Model string
}

// Client is a connection to one LLM server. It is safe for concurrent use. Every method honours
// its context and Options.Timeout.
type Client interface {
	// Kind is the API the server speaks: KindOllama or KindOpenAI.
	Kind() string
	// Endpoint is the server's base URL as configured (any password redacted), for logs and the
	// transcript's JSON sidecar.
	Endpoint() string
	// Chat runs one chat completion, streaming it, and returns the whole answer. Connection
	// failures and 5xx/429 answers are retried (Options.Retries) until the answer starts; once
	// it has started, a failure is returned, never retried.
	Chat(ctx context.Context, req Request) (Answer, error)
	// Models lists the names of the models the server offers, in the server's order.
	Models(ctx context.Context) ([]string, error)
	// ContextLength is the context window, in tokens, of the model: for Ollama the most the model
	// takes (what Request.NumCtx may be raised to); for llama.cpp the window the server was started
	// with; for LM Studio the loaded window, else the model's maximum. 0 and no error when the
	// server cannot tell (mlx_lm.server and unknown servers): the caller picks a conservative one.
	ContextLength(ctx context.Context, model string) (int, error)
	// Unload asks the server to free the model's memory now rather than after its idle timeout:
	// Ollama unloads it (keep_alive 0); for other servers this does nothing and returns nil.
	Unload(ctx context.Context, model string) error
}

// Options configures New and Discover. The zero value is ready to use.
type Options struct {
	// Kind is the API the server speaks: "ollama" or "openai" (any OpenAI-compatible server;
	// "llamacpp", "lmstudio" and "mlx" are accepted as names for it). Empty: guessed from the
	// endpoint (port 11434 or a path ending in /api: Ollama; port 8080 or 1234 or a path ending in
	// /v1: OpenAI-compatible), else asked of the server. Discover ignores it.
	Kind string
	// AllowRemote lets the client talk to a server that is not on this machine (the
	// configuration's allow_remote = true). Off, only loopback addresses and Unix sockets are used.
	AllowRemote bool
	// Timeout bounds each call, whole answer and retries included; default 10 minutes.
	Timeout time.Duration
	// ConnectTimeout bounds each connection attempt; default 5 seconds.
	ConnectTimeout time.Duration
	// ProbeTimeout bounds each probe: Discover's per-port look, and New's question of which API
	// the server speaks when Kind cannot be guessed; default 500 ms.
	ProbeTimeout time.Duration
	// Retries is how many more times a request is tried after a connection failure or a 5xx or
	// 429 answer, waiting longer each time (or as Retry-After says), as long as no byte of the
	// answer has arrived. 0 means the default, 2; negative means none.
	Retries int
	// HTTPClient, when set, sends the requests instead of the client's own. It is used as is: its
	// transport does the dialling, so the per-connection loopback check and Unix-socket dialling are
	// then its own affair (New still checks the endpoint). Its Timeout should be 0: Options.Timeout
	// bounds calls.
	HTTPClient *http.Client
	// APIKey, when set, is sent as a bearer token (llama-server --api-key, LM Studio with
	// authentication on, a proxy in front of Ollama).
	APIKey string
	// Probes are where Discover looks, in order of preference; default DefaultProbes().
	Probes []Probe
}

// The defaults of Options.
const (
	defaultTimeout        = 10 * time.Minute
	defaultConnectTimeout = 5 * time.Second
	defaultProbeTimeout   = 500 * time.Millisecond
	defaultRetries        = 2
)

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return defaultTimeout
}

func (o Options) connectTimeout() time.Duration {
	if o.ConnectTimeout > 0 {
		return o.ConnectTimeout
	}
	return defaultConnectTimeout
}

func (o Options) probeTimeout() time.Duration {
	if o.ProbeTimeout > 0 {
		return o.ProbeTimeout
	}
	return defaultProbeTimeout
}

func (o Options) retries() int {
	switch {
	case o.Retries < 0:
		return 0
	case o.Retries == 0:
		return defaultRetries
	}
	return o.Retries
}
