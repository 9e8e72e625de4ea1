package llm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// target is a parsed endpoint.
type target struct {
	display string   // the endpoint as configured, password redacted: for messages and Endpoint
	base    *url.URL // where request paths are appended; http://localhost for a Unix socket
	host    string   // the host name or address as configured ("" for a Unix socket)
	port    string   // the port as configured ("" if none was given, or a Unix socket)
	socket  string   // the Unix socket's path, or ""
}

// CheckEndpoint is the privacy guard: it returns an error wrapping ErrRemote when endpoint's host
// is not on this machine (a loopback address: 127.0.0.0/8, ::1, or "localhost") and allowRemote
// is off, and an error for an endpoint that is not an http://, https:// or unix:// URL. A Unix
// socket (unix:///path/to/socket) is always on this machine. New applies the same check, and
// checks again every address it connects to.
func CheckEndpoint(endpoint string, allowRemote bool) error {
	_, err := parseEndpoint(endpoint, allowRemote)
	return err
}

// parseEndpoint parses and checks an endpoint (see CheckEndpoint).
func parseEndpoint(endpoint string, allowRemote bool) (target, error) {
	s := strings.TrimSpace(endpoint)
	if s == "" {
		return target{}, errors.New("no LLM endpoint given: set one such as http://127.0.0.1:11434")
	}
	if !strings.Contains(s, "://") && !strings.HasPrefix(strings.ToLower(s), "unix:") {
		return target{}, fmt.Errorf("LLM endpoint %q has no scheme: write it as http://%s", s, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("LLM endpoint %q is not a URL: %v", s, errors.Unwrap(err))
	}
	t := target{display: u.Redacted()}
	switch strings.ToLower(u.Scheme) {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return target{}, fmt.Errorf("LLM endpoint %q: a Unix socket is given by its absolute path, as unix:///path/to/socket", t.display)
		}
		t.socket = u.Path
		// Ollama refuses a Host header that is not a local name; "localhost" passes everywhere.
		t.base = &url.URL{Scheme: "http", Host: "localhost"}
		return t, nil
	case "http", "https":
	default:
		return target{}, fmt.Errorf("LLM endpoint %q: scheme %q is not supported: use http://, https:// or unix://", t.display, u.Scheme)
	}
	t.host, t.port = u.Hostname(), u.Port()
	if t.host == "" {
		return target{}, fmt.Errorf("LLM endpoint %q has no host", t.display)
	}
	if !allowRemote && !isLoopbackName(t.host) {
		why := t.host + " is not a loopback address"
		if a, err := netip.ParseAddr(t.host); err == nil && a.IsUnspecified() {
			why = t.host + " is the address a server listens on, not one to connect to: use 127.0.0.1"
		}
		return target{}, remoteError(t.display, why)
	}
	t.base = &url.URL{Scheme: strings.ToLower(u.Scheme), Host: u.Host, User: u.User, Path: strings.TrimRight(u.Path, "/")}
	return t, nil
}

// remoteError is the guard's refusal: why, and how to allow it.
func remoteError(endpoint, why string) error {
	return &tagged{
		msg: fmt.Sprintf("LLM endpoint %s is not on this machine (%s): Verbatim sends transcripts only to a server on this machine unless allow_remote = true is set in the configuration", endpoint, why),
		tag: ErrRemote,
	}
}

// isLoopbackName reports whether host (a name or an address, as in a URL) is this machine.
func isLoopbackName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// dialGuard is a net.Dialer Control function that refuses a TCP connection to any address that
// is not loopback: the endpoint's name passed the check in New, but what it resolves to now is
// what counts.
func dialGuard(endpoint string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		a, err := netip.ParseAddr(host)
		if err == nil && a.Unmap().IsLoopback() {
			return nil
		}
		return remoteError(endpoint, "it resolved to "+host+", which is not a loopback address")
	}
}

// newHTTPClient is the client's own HTTP client: no proxy, dialling checked by the guard (unless
// allowRemote), or dialling the Unix socket.
func newHTTPClient(t target, opts Options) *http.Client {
	d := &net.Dialer{Timeout: opts.connectTimeout(), KeepAlive: 30 * time.Second}
	if !opts.AllowRemote {
		d.Control = dialGuard(t.display)
	}
	dial := d.DialContext
	if t.socket != "" {
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", t.socket)
		}
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil, // a transcript goes to the endpoint and nowhere else
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// New returns a client for the LLM server at endpoint: an http:// or https:// base URL
// ("http://127.0.0.1:11434"; a trailing /v1 or /api is understood) or a Unix socket
// ("unix:///path/to/socket"). The endpoint must pass CheckEndpoint. When Options.Kind is empty
// and the endpoint does not tell, New asks the server (within Options.ProbeTimeout) which API it
// speaks; otherwise New does no I/O.
func New(endpoint string, opts Options) (Client, error) {
	t, err := parseEndpoint(endpoint, opts.AllowRemote)
	if err != nil {
		return nil, err
	}
	kind, err := normalKind(opts.Kind)
	if err != nil {
		return nil, err
	}
	c := &conn{
		label:    "LLM server at " + t.display,
		endpoint: t.display,
		base:     t.base,
		hc:       opts.HTTPClient,
		apiKey:   opts.APIKey,
		timeout:  opts.timeout(),
		retries:  opts.retries(),
	}
	if c.hc == nil {
		c.hc = newHTTPClient(t, opts)
	}
	if kind == "" {
		kind = guessKind(t)
	}
	if kind == "" {
		if kind, err = probeKind(c, opts.probeTimeout()); err != nil {
			return nil, err
		}
	}
	return newClient(kind, c), nil
}

// newClient makes c a client of kind.
func newClient(kind string, c *conn) Client {
	c.label = serverLabel(kind, c.endpoint)
	path := c.base.Path
	if kind == KindOllama {
		path = strings.TrimSuffix(path, "/api")
	} else {
		path = strings.TrimSuffix(path, "/v1")
	}
	base := *c.base
	base.Path = path
	c.base = &base
	if kind == KindOllama {
		return &ollamaClient{c}
	}
	return &openaiClient{c}
}

// serverLabel names a server in messages: "ollama at http://127.0.0.1:11434".
func serverLabel(kind, endpoint string) string {
	if kind == KindOllama {
		return "ollama at " + endpoint
	}
	return "OpenAI-compatible server at " + endpoint
}

// normalKind maps Options.Kind to KindOllama, KindOpenAI or "" (unknown: guess).
func normalKind(k string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(k)) {
	case "":
		return "", nil
	case KindOllama:
		return KindOllama, nil
	case KindOpenAI, "openai-compatible", "llamacpp", "llama.cpp", "llama-server", "lmstudio", "lm studio", "mlx", "mlx_lm":
		return KindOpenAI, nil
	}
	return "", fmt.Errorf("LLM server kind %q is not known: use %q or %q (llama.cpp, LM Studio, MLX)", k, KindOllama, KindOpenAI)
}

// guessKind tells the API from the endpoint's well-known port or path, or returns "".
func guessKind(t target) string {
	switch {
	case strings.HasSuffix(t.base.Path, "/api"):
		return KindOllama
	case strings.HasSuffix(t.base.Path, "/v1"):
		return KindOpenAI
	case t.socket != "":
		return ""
	}
	switch t.port {
	case "11434":
		return KindOllama
	case "8080", "1234":
		return KindOpenAI
	}
	return ""
}

// probeKind asks the server which API it speaks: Ollama answers /api/version, an
// OpenAI-compatible server /v1/models.
func probeKind(c *conn, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p := *c
	p.retries = 0
	var v struct {
		Version string `json:"version"`
	}
	err := p.getJSON(ctx, "/api/version", &v)
	if err == nil && v.Version != "" {
		return KindOllama, nil
	}
	var m modelList
	if ctx.Err() == nil && !errors.Is(err, ErrRemote) && !errors.Is(err, ErrUnavailable) {
		if err = p.getJSON(ctx, "/v1/models", &m); err == nil && m.Data != nil {
			return KindOpenAI, nil
		}
	}
	if errors.Is(err, ErrRemote) || errors.Is(err, ErrUnavailable) {
		return "", err
	}
	if ctx.Err() != nil {
		return "", &tagged{msg: fmt.Sprintf("%s: no answer within %v to the question of which API it speaks; set its kind (%q or %q)", c.label, timeout, KindOllama, KindOpenAI), tag: ErrUnavailable}
	}
	return "", fmt.Errorf("%s answers neither as Ollama (/api/version) nor as an OpenAI-compatible server (/v1/models); set its kind (%q or %q)", c.label, KindOllama, KindOpenAI)
}
