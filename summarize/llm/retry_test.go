package llm

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryThenAnswer: a server that answers 503 twice (Ollama busy, llama.cpp loading) and
// then streams is retried, with the default backoff, and the answer comes back whole; so is one
// that answers 429 with Retry-After.
func TestRetryThenAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind       string
		status     int
		retryAfter string
	}{
		{"ollama", http.StatusServiceUnavailable, ""},
		{"openai", http.StatusServiceUnavailable, ""},
		{"openai", http.StatusTooManyRequests, "0"},
	} {
		t.Run(tc.kind+http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			var h http.Handler
			fo := &fakeOllama{models: []string{"m"}, pieces: []string{"ok"}}
			fa := &fakeOpenAI{pieces: []string{"ok"}}
			if tc.kind == "ollama" {
				h = fo
			} else {
				h = fa
			}
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= 2 {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					writeJSON(w, tc.status, map[string]string{"error": "server busy, please try again.  maximum pending requests exceeded"})
					return
				}
				h.ServeHTTP(w, r)
			}))
			ans, err := mustNew(t, srv.URL, Options{Kind: tc.kind, Retries: 2}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
			if err != nil || ans.Text != "ok" {
				t.Errorf("%+v, %v", ans, err)
			}
			if n.Load() != 3 {
				t.Errorf("%d requests, want 3", n.Load())
			}
		})
	}
}

// TestRetriesRunOut: a server that answers 503 to every attempt is tried 1+Retries times and
// gives ErrUnavailable with its message; Retries < 0 tries once.
func TestRetriesRunOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ retries, want int }{{1, 2}, {-1, 1}} {
		var n atomic.Int32
		srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Retry-After", "0")
			writeJSON(w, 503, map[string]any{"error": map[string]any{"message": "Loading model", "type": "unavailable_error", "code": 503}})
		}))
		_, err := mustNew(t, srv.URL, Options{Kind: "openai", Retries: tc.retries}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
		wantErr(t, err, ErrUnavailable, "503 Service Unavailable: Loading model")
		if int(n.Load()) != tc.want {
			t.Errorf("Retries %d: %d requests, want %d", tc.retries, n.Load(), tc.want)
		}
	}
}

// TestNoRetryAfterStreamBegan: a server whose connection drops after part of the answer was
// streamed gives an error, and is not asked again (one request), for both kinds.
func TestNoRetryAfterStreamBegan(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"ollama", "openai"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if kind == "ollama" {
					stream(w, "application/x-ndjson", ollamaLines("m", []string{"part"}, "stop", 1, 1)[0])
				} else {
					stream(w, "text/event-stream", sseEvents("m", []string{"part"}, "stop", 0, 0)[:2]...)
				}
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close() // the server dies mid-answer
			}))
			var deltas []string
			_, err := mustNew(t, srv.URL, Options{Kind: kind, Retries: 2}).Chat(t.Context(), Request{Model: "m", Messages: userMsg, OnDelta: func(s string) { deltas = append(deltas, s) }})
			wantErr(t, err, nil, "broke off")
			if n.Load() != 1 || len(deltas) != 1 {
				t.Errorf("%d requests (want 1), deltas %q", n.Load(), deltas)
			}
		})
	}
}

// TestNoRetryOnClientError: a 4xx other than 429 is not retried.
func TestNoRetryOnClientError(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		writeJSON(w, 400, map[string]string{"error": "invalid message format"})
	}))
	_, err := mustNew(t, srv.URL, Options{Kind: "ollama", Retries: 2}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
	wantErr(t, err, nil, "400 Bad Request: invalid message format")
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

// TestConnectionRefused: nothing listening is ErrUnavailable, after the retries, with a message
// that names the server and asks whether it runs.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	endpoint := "http://" + closedAddr(t)
	_, err := mustNew(t, endpoint, Options{Kind: "ollama", Retries: 1}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
	wantErr(t, err, ErrUnavailable, "ollama at "+endpoint, "no answer after 2 attempts (is the server running?)")
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// stall is a handler that holds each request until the client goes or the test ends; after
// sends is written and flushed first (nil: not even the status). arrived gets a value as each
// request comes.
func stall(t *testing.T, after []string, arrived chan<- struct{}) http.HandlerFunc {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close, which waits for handlers
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // else the server does not notice the client leaving
		if after != nil {
			stream(w, "text/event-stream", after...)
		}
		if arrived != nil {
			arrived <- struct{}{}
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}
}

// TestCancel: cancelling the context ends a Chat waiting for a stalled server, before the answer
// starts and during it, with an error that is context.Canceled.
func TestCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, kind string
		after      []string
	}{
		{"ollama before", "ollama", nil},
		{"openai before", "openai", nil},
		{"ollama during", "ollama", ollamaLines("m", []string{"a"}, "stop", 1, 1)[:1]},
		{"openai during", "openai", sseEvents("m", []string{"a"}, "stop", 0, 0)[:2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{}, 1)
			srv := serve(t, stall(t, tc.after, arrived))
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				<-arrived
				cancel()
			}()
			_, err := mustNew(t, srv.URL, Options{Kind: tc.kind}).Chat(ctx, Request{Model: "m", Messages: userMsg})
			wantErr(t, err, context.Canceled, "stopped")
		})
	}
}

// TestTimeout: Options.Timeout bounds a Chat whose server stalls, before the answer starts and
// during it; the error is context.DeadlineExceeded and says what limit passed. A deadline of the
// caller's context ends it the same way.
func TestTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, kind string
		after      []string
	}{
		{"ollama before", "ollama", nil},
		{"openai during", "openai", sseEvents("m", []string{"a"}, "stop", 0, 0)[:2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, stall(t, tc.after, nil))
			_, err := mustNew(t, srv.URL, Options{Kind: tc.kind, Timeout: 200 * time.Millisecond}).Chat(t.Context(), Request{Model: "m", Messages: userMsg})
			wantErr(t, err, context.DeadlineExceeded, "no complete answer within 200ms")
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("a timeout is ErrUnavailable: %v", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			_, err = mustNew(t, srv.URL, Options{Kind: tc.kind}).Models(ctx)
			wantErr(t, err, context.DeadlineExceeded, "stopped")
		})
	}
}
