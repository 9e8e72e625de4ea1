package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeModel is a few megabytes of seeded random bytes and the catalog entry that matches them.
func fakeModel(t *testing.T, n int) ([]byte, Entry) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(data)
	return data, Entry{Name: "fake", Size: int64(n), SHA256: hex.EncodeToString(sum[:])}
}

// modelServer serves one file over real HTTP on loopback, honouring "Range: bytes=N-" unless
// told not to, and records the Range header of every request.
type modelServer struct {
	data    []byte
	noRange bool // answer every request with 200 and the whole file
	// cut, when > 0, drops the connection after this many body bytes, on the first request only.
	cut int64
	// hang, when > 0, sends this many body bytes and then stalls until the client goes away.
	hang int64
	// chunked sends the body without a Content-Length.
	chunked bool
	// rangeStatus, when set, is the status for any request with a Range header (e.g. 416).
	rangeStatus int

	mu     sync.Mutex
	ranges []string
}

func (s *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	first := len(s.ranges) == 1
	s.mu.Unlock()

	body, start := s.data, int64(0)
	rng := r.Header.Get("Range")
	switch {
	case rng != "" && s.rangeStatus != 0:
		w.WriteHeader(s.rangeStatus)
		return
	case rng != "" && !s.noRange:
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"), 10, 64)
		if err != nil || n >= int64(len(s.data)) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, body = n, s.data[n:]
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(s.data)-1, len(s.data)))
		if !s.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusPartialContent)
	default:
		if !s.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusOK)
	}
	_ = start
	switch {
	case s.cut > 0 && first:
		w.Write(body[:s.cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	case s.hang > 0:
		w.Write(body[:s.hang])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		w.Write(body)
	}
}

func (s *modelServer) Ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func serve(t *testing.T, s *modelServer) string {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ds, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name())
	}
	return names
}

func mustEqualFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not identical to the served %d bytes", path, len(got), len(want))
	}
}

func TestPullFull(t *testing.T) {
	data, e := fakeModel(t, 3<<20+17)
	srv := &modelServer{data: data}
	base := serve(t, srv)
	dir := filepath.Join(t.TempDir(), "models") // created by Pull

	var last, calls int64
	res, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: base, Progress: func(done, total int64) {
		if done < last || total != e.Size {
			t.Errorf("progress went %d -> %d of %d", last, done, total)
		}
		last = done
		calls++
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "ggml-fake.bin")
	if res.Path != want || res.AlreadyInstalled || res.Resumed != 0 || res.Fetched != e.Size {
		t.Fatalf("result %+v", res)
	}
	mustEqualFile(t, want, data)
	if last != e.Size || calls < 2 {
		t.Fatalf("progress ended at %d after %d calls", last, calls)
	}
	if got := srv.Ranges(); len(got) != 1 || got[0] != "" {
		t.Fatalf("requests' Range headers = %q, want one request without Range", got)
	}
	if got, want := entries(t, dir), []string{".ggml-fake.bin.sha256", "ggml-fake.bin"}; !equal(got, want) {
		t.Fatalf("models folder holds %q, want %q", got, want)
	}

	// A second pull finds the model and fetches nothing.
	res, err = Pull(t.Context(), dir, e, PullOptions{BaseURL: base})
	if err != nil || !res.AlreadyInstalled || res.Fetched != 0 {
		t.Fatalf("second pull: %+v, %v", res, err)
	}
	if n := len(srv.Ranges()); n != 1 {
		t.Fatalf("second pull made %d more requests", n-1)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// TestPullResume: the server drops the connection after N bytes; the partial file keeps exactly
// those, and the next pull asks for "bytes=N-" and completes a byte-identical file.
func TestPullResume(t *testing.T) {
	data, e := fakeModel(t, 3<<20+5)
	const cut = 1_000_003
	srv := &modelServer{data: data, cut: cut}
	base := serve(t, srv)
	dir := t.TempDir()

	_, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: base})
	var ie *InterruptedError
	if !errors.As(err, &ie) {
		t.Fatalf("first pull: %v, want an InterruptedError", err)
	}
	if ie.Have != cut || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted at %d (%v), want %d", ie.Have, err, cut)
	}
	part := PartialPath(dir, e)
	mustEqualFile(t, part, data[:cut])
	if _, err := os.Stat(filepath.Join(dir, e.File())); !os.IsNotExist(err) {
		t.Fatalf("a model file was installed after an interrupted transfer: %v", err)
	}

	res, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Ranges(); len(got) != 2 || got[1] != fmt.Sprintf("bytes=%d-", cut) {
		t.Fatalf("Range headers = %q, want the second to be bytes=%d-", got, cut)
	}
	if res.Resumed != cut || res.Fetched != e.Size-cut {
		t.Fatalf("result %+v, want %d resumed and %d fetched", res, cut, e.Size-cut)
	}
	mustEqualFile(t, res.Path, data)
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("partial file left after install: %v", err)
	}
}

// TestPullServerIgnoresRange: a server without Range support answers 200 with the whole file;
// the partial file restarts from zero and the result is still byte-identical.
func TestPullServerIgnoresRange(t *testing.T) {
	data, e := fakeModel(t, 2<<20+3)
	srv := &modelServer{data: data, noRange: true}
	base := serve(t, srv)
	dir := t.TempDir()
	if err := os.WriteFile(PartialPath(dir, e), data[:777_777], 0o644); err != nil {
		t.Fatal(err)
	}
	var sawRestart bool
	res, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: base, Progress: func(done, _ int64) {
		if done == 0 {
			sawRestart = true
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Ranges(); len(got) != 1 || got[0] != "bytes=777777-" {
		t.Fatalf("Range headers = %q, want one asking for bytes=777777-", got)
	}
	if res.Resumed != 0 || res.Fetched != e.Size || !sawRestart {
		t.Fatalf("result %+v (restart reported: %v), want a full refetch", res, sawRestart)
	}
	mustEqualFile(t, res.Path, data)
}

// TestPullRangeNotSatisfiable: a 416 for the resume request restarts once from zero.
func TestPullRangeNotSatisfiable(t *testing.T) {
	data, e := fakeModel(t, 1<<20)
	srv := &modelServer{data: data, rangeStatus: http.StatusRequestedRangeNotSatisfiable}
	dir := t.TempDir()
	if err := os.WriteFile(PartialPath(dir, e), data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: serve(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Ranges(); len(got) != 2 || got[0] != "bytes=1000-" || got[1] != "" {
		t.Fatalf("Range headers = %q", got)
	}
	mustEqualFile(t, res.Path, data)
}

// TestPullRejectsBadFiles: whatever is wrong with what the server sends, nothing half-written
// remains: no partial file, no installed model.
func TestPullRejectsBadFiles(t *testing.T) {
	data, e := fakeModel(t, 1<<20+1)
	wrongHash := e
	wrongHash.SHA256 = strings.Repeat("0", 64)
	wrongSize := e
	wrongSize.Size++
	corrupt := append([]byte(nil), data[:5000]...)
	corrupt[10] ^= 1
	cases := []struct {
		name    string
		srv     *modelServer
		entry   Entry
		partial []byte // left by an earlier try
	}{
		{"wrong checksum", &modelServer{data: data}, wrongHash, nil},
		{"wrong size in Content-Length", &modelServer{data: data}, wrongSize, nil},
		{"wrong size in Content-Range", &modelServer{data: data}, wrongSize, data[:100]},
		{"too long, no Content-Length", &modelServer{data: append(append([]byte(nil), data...), 'x'), chunked: true}, e, nil},
		{"resume onto a corrupt partial file", &modelServer{data: data}, e, corrupt},
		{"complete partial file with wrong bytes", &modelServer{data: data}, wrongHash, data},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.partial != nil {
				if err := os.WriteFile(PartialPath(dir, c.entry), c.partial, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Pull(t.Context(), dir, c.entry, PullOptions{BaseURL: serve(t, c.srv)})
			if !errors.Is(err, ErrChecksum) {
				t.Fatalf("err = %v, want ErrChecksum", err)
			}
			if got := entries(t, dir); len(got) != 0 {
				t.Fatalf("left behind: %q", got)
			}
		})
	}
}

// TestPullCancelKeepsPartial: cancelling the context (Ctrl-C) mid-transfer keeps what arrived,
// and the next pull continues from there.
func TestPullCancelKeepsPartial(t *testing.T) {
	data, e := fakeModel(t, 2<<20)
	const sent = 600_001
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Pull(ctx, dir, e, PullOptions{BaseURL: serve(t, &modelServer{data: data, hang: sent}),
		Progress: func(done, _ int64) {
			if done >= sent {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	mustEqualFile(t, PartialPath(dir, e), data[:sent])
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("folder holds %q, want only the partial file", got)
	}

	srv := &modelServer{data: data}
	res, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: serve(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Ranges(); len(got) != 1 || got[0] != fmt.Sprintf("bytes=%d-", sent) {
		t.Fatalf("Range headers = %q", got)
	}
	mustEqualFile(t, res.Path, data)
}

// TestPullStall: a server that stops sending is given up on after StallTimeout; the partial file
// is kept.
func TestPullStall(t *testing.T) {
	data, e := fakeModel(t, 1<<20)
	dir := t.TempDir()
	start := time.Now()
	_, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: serve(t, &modelServer{data: data, hang: 4096}),
		StallTimeout: 200 * time.Millisecond})
	if !errors.Is(err, errStalled) {
		t.Fatalf("err = %v, want a stall", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s to notice the stall", el)
	}
	mustEqualFile(t, PartialPath(dir, e), data[:4096])
}

func TestPullHTTPErrors(t *testing.T) {
	_, e := fakeModel(t, 10)
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	dir := t.TempDir()
	_, err := Pull(t.Context(), dir, e, PullOptions{BaseURL: ts.URL})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want a 404", err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("a failed request left %q", got)
	}

	// Nothing listening: a plain error, no empty partial file to "resume".
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	_, err = Pull(t.Context(), dir, e, PullOptions{BaseURL: gone.URL})
	var ie *InterruptedError
	if err == nil || errors.As(err, &ie) {
		t.Fatalf("connection refused: err = %v", err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("a refused connection left %q", got)
	}

	// Plain HTTP is refused except to this machine, also through a redirect.
	redirect := httptest.NewServer(http.RedirectHandler("http://example.invalid/ggml-fake.bin", http.StatusFound))
	defer redirect.Close()
	_, err = Pull(t.Context(), dir, e, PullOptions{URL: redirect.URL + "/ggml-fake.bin"})
	if err == nil || !strings.Contains(err.Error(), "only https") {
		t.Fatalf("redirect to plain http: err = %v", err)
	}
	_, err = Pull(t.Context(), dir, e, PullOptions{URL: "http://example.invalid/ggml-fake.bin"})
	if err == nil || !strings.Contains(err.Error(), "only https") {
		t.Fatalf("plain http: err = %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	cases := []struct {
		url string
		ok  bool
	}{
		{DefaultBaseURL + "/ggml-tiny.bin", true},
		{"https://mirror.example.org/m/ggml-tiny.bin", true},
		{"http://127.0.0.1:8080/ggml-tiny.bin", true},
		{"http://[::1]:8080/ggml-tiny.bin", true},
		{"http://localhost/ggml-tiny.bin", true},
		{"http://huggingface.co/ggml-tiny.bin", false},
		{"ftp://127.0.0.1/ggml-tiny.bin", false},
		{"https:///nohost", false},
		{"file:///etc/passwd", false},
	}
	for _, c := range cases {
		if err := checkURL(c.url); (err == nil) != c.ok {
			t.Errorf("checkURL(%q) = %v, want ok=%v", c.url, err, c.ok)
		}
	}
}

// contentRangeCases are Content-Range values as a server may send them.
var contentRangeCases = []struct {
	in           string
	start, total int64
	ok           bool
}{
	{"bytes 100-199/200", 100, 200, true},
	{"bytes 0-0/*", 0, -1, true},
	{"bytes 5-9", 0, 0, false},
	{"items 1-2/3", 0, 0, false},
	{"bytes x-9/10", 0, 0, false},
	{"bytes -1-9/10", 0, 0, false},
	{"", 0, 0, false},
}

func TestParseContentRange(t *testing.T) {
	for _, c := range contentRangeCases {
		start, total, err := parseContentRange(c.in)
		if (err == nil) != c.ok || (c.ok && (start != c.start || total != c.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", c.in, start, total, err)
		}
	}
}

// FuzzParseContentRange: the header comes from whatever server the download reaches. Any value
// either fails or gives a start of at least 0 and a total of at least -1 (unknown), from a
// value of the form "bytes START-.../TOTAL".
func FuzzParseContentRange(f *testing.F) {
	for _, c := range contentRangeCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		start, total, err := parseContentRange(in)
		if err != nil {
			if start != 0 || total != 0 {
				t.Fatalf("error %v with %d, %d", err, start, total)
			}
			return
		}
		if start < 0 || total < -1 {
			t.Fatalf("%q: start %d, total %d", in, start, total)
		}
		if !strings.HasPrefix(in, "bytes ") || !strings.Contains(in, "-") || !strings.Contains(in, "/") {
			t.Fatalf("%q parses", in)
		}
	})
}
