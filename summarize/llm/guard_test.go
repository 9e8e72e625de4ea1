package llm

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckEndpoint: loopback addresses, localhost and Unix sockets pass; any other host is
// refused with ErrRemote and a message saying how to allow it, unless allowRemote; schemes
// other than http, https and unix, and malformed endpoints, are refused either way (not as
// ErrRemote).
func TestCheckEndpoint(t *testing.T) {
	t.Parallel()
	const ok, remote, bad = "ok", "remote", "bad"
	for _, tc := range []struct {
		endpoint string
		want     string // without allowRemote; with it, remote becomes ok
		msg      string
	}{
		{"http://127.0.0.1:11434", ok, ""},
		{"http://127.8.9.10:8080/v1", ok, ""},
		{"http://[::1]:8080", ok, ""},
		{"http://[::ffff:127.0.0.1]:8080", ok, ""},
		{"http://localhost:1234", ok, ""},
		{"HTTP://LOCALHOST.:1234/", ok, ""},
		{"https://localhost/v1", ok, ""},
		{"unix:///run/ollama/ollama.sock", ok, ""},
		{"http://10.0.0.5:11434", remote, "10.0.0.5 is not a loopback address"},
		{"http://example.com", remote, "example.com is not a loopback address"},
		{"https://api.openai.com/v1", remote, "allow_remote = true"},
		{"http://0.0.0.0:11434", remote, "use 127.0.0.1"},
		{"http://[::]:11434", remote, "use 127.0.0.1"},
		{"http://127.0.0.1.nip.io:8080", remote, "not a loopback address"},
		{"http://localhost.example.com", remote, "not a loopback address"},
		{"http://127.0.0.1:11434@example.com/", remote, "example.com"},
		{"http://192.168.1.20:1234", remote, "not on this machine"},
		{"unix://relative/ollama.sock", bad, "absolute path"},
		{"ftp://127.0.0.1/", bad, `scheme "ftp" is not supported`},
		{"file:///tmp/x", bad, "not supported"},
		{"127.0.0.1:11434", bad, "no scheme: write it as http://127.0.0.1:11434"},
		{"localhost:11434", bad, "no scheme"},
		{"", bad, "no LLM endpoint"},
		{"http://", bad, "has no host"},
		{"http://127.0.0.1:11434/%zz", bad, "not a URL"},
	} {
		for _, allow := range []bool{false, true} {
			err := CheckEndpoint(tc.endpoint, allow)
			want := tc.want
			if allow && want == remote {
				want = ok
			}
			switch {
			case want == ok && err != nil:
				t.Errorf("CheckEndpoint(%q, %v) = %v, want nil", tc.endpoint, allow, err)
			case want != ok && err == nil:
				t.Errorf("CheckEndpoint(%q, %v) = nil, want an error", tc.endpoint, allow)
			case want == remote && !errors.Is(err, ErrRemote), want == bad && errors.Is(err, ErrRemote):
				t.Errorf("CheckEndpoint(%q, %v) = %v: ErrRemote is %v, want %v", tc.endpoint, allow, err, errors.Is(err, ErrRemote), want == remote)
			case err != nil && !strings.Contains(err.Error(), tc.msg):
				t.Errorf("CheckEndpoint(%q, %v) = %v, want it to contain %q", tc.endpoint, allow, err, tc.msg)
			}
			if _, nerr := New(tc.endpoint, Options{Kind: "ollama", AllowRemote: allow}); (nerr == nil) != (err == nil) {
				t.Errorf("New(%q) = %v, CheckEndpoint %v", tc.endpoint, nerr, err)
			}
		}
	}
}

// TestDialGuard: every connection's address is checked when it is dialled, whatever name it came
// from: loopback passes, anything else is ErrRemote before a packet is sent; Unix sockets pass.
func TestDialGuard(t *testing.T) {
	t.Parallel()
	g := dialGuard("http://localhost:11434")
	for addr, want := range map[string]bool{"127.0.0.1:11434": true, "127.1.2.3:80": true, "[::1]:8080": true, "[::ffff:127.0.0.1]:1": true,
		"10.0.0.5:11434": false, "[2001:db8::1]:80": false, "0.0.0.0:80": false, "192.0.2.1:80": false} {
		err := g("tcp", addr, nil)
		if (err == nil) != want || (err != nil && !errors.Is(err, ErrRemote)) {
			t.Errorf("guard(%s) = %v, want pass %v", addr, err, want)
		}
	}
	if err := g("unix", "/run/ollama.sock", nil); err != nil {
		t.Errorf("guard(unix) = %v", err)
	}
	// The client's own transport applies it: a request that reaches a non-loopback address (as a
	// rebound name would) is refused, naming the configured endpoint.
	tg, err := parseEndpoint("http://localhost:11434", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newHTTPClient(tg, Options{}).Get("http://192.0.2.1:11434/api/tags")
	wantErr(t, err, ErrRemote, "http://localhost:11434", "resolved to 192.0.2.1", "allow_remote = true")
	// And "localhost" itself reaches a loopback server.
	f := &fakeOllama{models: []string{"m"}}
	srv := serve(t, f)
	local := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if _, err := mustNew(t, local, Options{Kind: "ollama"}).Models(t.Context()); err != nil {
		t.Errorf("via localhost: %v", err)
	}
}

// TestUnixSocket: a server on a Unix socket answers a chat through a unix:// endpoint; the
// client asks which API it speaks when not told, and sends Host "localhost" (which Ollama
// requires).
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "llm") // short: socket paths are limited to about 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, kind := range []string{"ollama", "openai"} {
		path := filepath.Join(dir, kind+".sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Skipf("no Unix sockets here: %v", err)
		}
		var h http.Handler
		var rec *recorder
		if kind == "ollama" {
			f := &fakeOllama{models: []string{"llama3.2:latest"}, pieces: []string{"over ", "a socket"}}
			h, rec = f, &f.rec
		} else {
			f := &fakeOpenAI{models: []string{"local"}, pieces: []string{"over ", "a socket"}}
			h, rec = f, &f.rec
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)

		c := mustNew(t, "unix://"+path, Options{})
		if c.Kind() != kind || c.Endpoint() != "unix://"+path {
			t.Errorf("Kind %q, Endpoint %q", c.Kind(), c.Endpoint())
		}
		models, err := c.Models(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ans, err := c.Chat(t.Context(), Request{Model: models[0], Messages: userMsg})
		if err != nil || ans.Text != "over a socket" {
			t.Errorf("%s: %+v, %v", kind, ans, err)
		}
		for _, q := range rec.all() {
			if q.Host != "localhost" {
				t.Errorf("Host %q, want localhost", q.Host)
			}
		}
	}
	_, err = mustNew(t, "unix://"+filepath.Join(dir, "none.sock"), Options{Kind: "ollama", Retries: -1}).Models(t.Context())
	wantErr(t, err, ErrUnavailable, "unix://"+filepath.Join(dir, "none.sock"))
}

// TestNewKind: the kind is taken from Options, else guessed from the port or path without I/O,
// else asked of the server; a server that answers as neither, or an unknown kind, is an error.
func TestNewKind(t *testing.T) {
	t.Parallel()
	for endpoint, want := range map[string]string{
		"http://127.0.0.1:11434": KindOllama, "http://localhost:8080": KindOpenAI, "http://[::1]:1234": KindOpenAI,
		"http://127.0.0.1:9/v1": KindOpenAI, "http://127.0.0.1:9/api/": KindOllama,
	} {
		if c := mustNew(t, endpoint, Options{}); c.Kind() != want {
			t.Errorf("New(%q).Kind() = %q, want %q", endpoint, c.Kind(), want)
		}
	}
	if c := mustNew(t, "http://127.0.0.1:11434", Options{Kind: "LM Studio"}); c.Kind() != KindOpenAI {
		t.Errorf("kind LM Studio: %q", c.Kind())
	}
	if _, err := New("http://127.0.0.1:11434", Options{Kind: "vllm-ish"}); err == nil || !strings.Contains(err.Error(), `"ollama" or "openai"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if c := mustNew(t, serve(t, &fakeOllama{}).URL, Options{}); c.Kind() != KindOllama {
		t.Errorf("probed Ollama: %q", c.Kind())
	}
	if c := mustNew(t, serve(t, &fakeOpenAI{}).URL, Options{}); c.Kind() != KindOpenAI {
		t.Errorf("probed OpenAI: %q", c.Kind())
	}
	_, err := New(serve(t, http.NotFoundHandler()).URL, Options{})
	wantErr(t, err, nil, "answers neither as Ollama", "set its kind")
	_, err = New("http://"+closedAddr(t), Options{})
	wantErr(t, err, ErrUnavailable)
}

// TestEndpointPath: an endpoint's path is kept as a prefix (a server behind a reverse proxy), and
// a trailing /v1 (OpenAI) or /api (Ollama), as such base URLs are often written, is not doubled.
func TestEndpointPath(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{handler: func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"data": []any{}, "models": []any{}})
	}}
	srv := serve(t, f)
	for _, tc := range []struct{ suffix, kind string }{{"/v1", "openai"}, {"/v1/", "openai"}, {"/api", "ollama"}, {"/llm/", "openai"}} {
		if _, err := mustNew(t, srv.URL+tc.suffix, Options{Kind: tc.kind}).Models(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for _, q := range f.rec.all() {
		paths = append(paths, q.Path)
	}
	want := []string{"/v1/models", "/v1/models", "/api/tags", "/llm/v1/models"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths %q, want %q", paths, want)
	}
}

// TestEndpointRedacted: a password in the endpoint is not repeated in Endpoint or in errors.
func TestEndpointRedacted(t *testing.T) {
	t.Parallel()
	c := mustNew(t, "http://user:secret@"+closedAddr(t), Options{Kind: "ollama", Retries: -1})
	_, err := c.Models(t.Context())
	if strings.Contains(c.Endpoint(), "secret") || err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Endpoint %q, error %v", c.Endpoint(), err)
	}
}
