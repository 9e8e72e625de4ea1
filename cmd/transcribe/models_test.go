package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/verbatimhq/verbatim/models"
)

// rangeServer serves one file over loopback HTTP with Range support, records each request's
// Range header, and can drop the connection after cut body bytes on its first request.
type rangeServer struct {
	data []byte
	cut  int

	mu     sync.Mutex
	ranges []string
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	first := len(s.ranges) == 1
	s.mu.Unlock()
	body := s.data
	if rng := r.Header.Get("Range"); rng != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || n >= len(s.data) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		body = s.data[n:]
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(s.data)-1, len(s.data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	if first && s.cut > 0 {
		w.Write(body[:s.cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Write(body)
}

func (s *rangeServer) Ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name())
	}
	return names
}

// TestModelsPullCLI runs `transcribe models pull` through the real binary against a local
// server. The served bytes have a real model's size but not its content (no real weights can be
// fetched here): the transfer is interrupted, resumed with the right Range, and then rejected by
// the checksum, leaving nothing behind. A successful install is covered in package models.
func TestModelsPullCLI(t *testing.T) {
	ent, ok := models.Lookup("tiny-q5_1") // the smallest published model
	if !ok {
		t.Fatal("tiny-q5_1 is not in the catalog")
	}
	junk := bytes.Repeat([]byte("not whisper weights "), int(ent.Size)/20+1)[:ent.Size]
	const cut = 5_000_000
	srv := &rangeServer{data: junk, cut: cut}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	t.Setenv(models.EnvDir, dir)
	t.Setenv("VERBATIM_MODELS_BASE_URL", ts.URL)

	_, errOut, code := run(t, "models", "pull", "tiny-q5_1")
	if code == 0 || !strings.Contains(errOut, "interrupted") || !strings.Contains(errOut, "resume") {
		t.Fatalf("interrupted pull: exit %d, stderr:\n%s", code, errOut)
	}
	part, err := os.ReadFile(models.PartialPath(dir, ent))
	if err != nil || !bytes.Equal(part, junk[:cut]) {
		t.Fatalf("partial file: %d bytes (%v), want the first %d served", len(part), err, cut)
	}
	out, _, code := run(t, "models", "list")
	if code != 0 || !strings.Contains(out, "partial (5.0 MB of 32.2 MB") {
		t.Fatalf("list does not show the partial download (exit %d):\n%s", code, out)
	}

	_, errOut, code = run(t, "models", "pull", "tiny-q5_1")
	if got := srv.Ranges(); len(got) != 2 || got[1] != fmt.Sprintf("bytes=%d-", cut) {
		t.Fatalf("Range headers %q, want the second pull to ask for bytes=%d-", got, cut)
	}
	if code == 0 || !strings.Contains(errOut, "checksum mismatch") || !strings.Contains(errOut, "discarded") {
		t.Fatalf("bad download: exit %d, stderr:\n%s", code, errOut)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Fatalf("left in the models folder: %q", got)
	}

	// A file of the right size is taken as installed without a request; verify finds it bad.
	if err := os.WriteFile(filepath.Join(dir, ent.File()), junk, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "models", "pull", "ggml-tiny-q5_1.bin")
	if code != 0 || !strings.Contains(out, "already installed") || len(srv.Ranges()) != 2 {
		t.Fatalf("pull over an installed file: exit %d, %d requests\n%s%s", code, len(srv.Ranges()), out, errOut)
	}
	out, errOut, code = run(t, "models", "verify", "tiny-q5_1")
	if code == 0 || !strings.Contains(out, "BAD  tiny-q5_1") || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("verify of a wrong file: exit %d\n%s%s", code, out, errOut)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"models", "pull", "huge-v9"}, `unknown model "huge-v9"`},
		{[]string{"models", "pull", "tiny", "--url", "http://example.invalid/ggml-tiny.bin"}, "only https"},
	} {
		_, errOut, code := run(t, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errOut, c.want)
		}
	}
}

// TestModelsListVerifyCLI: list shows an installed model's size, digest and path and the known
// models; verify passes a valid file, fails a truncated one and a missing name, with exit 1.
func TestModelsListVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(models.EnvDir, dir)
	micro := filepath.Join(dir, "ggml-micro.bin")
	if _, e, code := run(t, "models", "synth", "--arch", "micro", "--dtype", "f16", "-o", micro); code != 0 {
		t.Fatal(e)
	}
	data, err := os.ReadFile(micro)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	out, errOut, code := run(t, "models", "list")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"Models folder: " + dir, hex.EncodeToString(sum[:]), micro, "not in the table",
		"large-v3-turbo", "1.6 GB"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if !regexpLine(out, `^large-v3\s+3\.1 GB\s+no$`) {
		t.Errorf("list does not show large-v3 as known and not installed:\n%s", out)
	}

	out, errOut, code = run(t, "models", "verify")
	if code != 0 || !strings.Contains(out, "OK   micro: tensors valid") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, "models", "verify", "micro", "large-v3")
	if code != 1 || !strings.Contains(out, "OK   micro") || !strings.Contains(out, "BAD  large-v3: not installed") ||
		!strings.Contains(errOut, "1 of 2 models failed verification") {
		t.Fatalf("verify with a missing model: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile(micro, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(t, "models", "verify")
	if code != 1 || !strings.Contains(out, "BAD  micro") || !strings.Contains(out, "truncated") {
		t.Fatalf("verify of a truncated model: exit %d\n%s", code, out)
	}
}

// regexpLine reports whether any line of text, without trailing blanks, matches pattern.
func regexpLine(text, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(strings.TrimRight(l, " ")) {
			return true
		}
	}
	return false
}

// TestResolveModel: the --model rules as run.go applies them.
func TestResolveModel(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(models.EnvDir, dir)
	const noModel = "no model installed: run `transcribe models pull large-v3-turbo` (1.6 GB) or pass --model PATH"
	if _, err := resolveModel(""); err == nil || err.Error() != noModel {
		t.Fatalf("no model: %v\nwant %s", err, noModel)
	}
	own := filepath.Join(t.TempDir(), "mine.bin")
	if err := os.WriteFile(own, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveModel(own); err != nil || got != own {
		t.Fatalf("path: %s, %v", got, err)
	}
	if _, err := resolveModel("small.en"); err == nil ||
		!strings.Contains(err.Error(), "model small.en is not installed") || !strings.Contains(err.Error(), "transcribe models pull small.en") {
		t.Fatalf("known but missing: %v", err)
	}
	large := filepath.Join(dir, "ggml-large-v3.bin")
	if err := os.WriteFile(large, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveModel(""); err != nil || got != large {
		t.Fatalf("default: %s, %v, want %s", got, err, large)
	}
	if got, err := resolveModel("large-v3"); err != nil || got != large {
		t.Fatalf("by name: %s, %v", got, err)
	}

	// Without a models folder (no HOME), a path still works and a name says why it cannot.
	t.Setenv(models.EnvDir, "")
	t.Setenv("HOME", "")
	t.Setenv("XDG_DATA_HOME", "")
	if got, err := resolveModel(own); err != nil || got != own {
		t.Fatalf("path without a models folder: %s, %v", got, err)
	}
	if _, err := resolveModel("large-v3"); err == nil || !strings.Contains(err.Error(), models.EnvDir) {
		t.Fatalf("name without a models folder: %v", err)
	}
}

// TestBenchModelName: bench takes a model by name as run does (mini, installed from the binary
// on first use), and a catalog model not installed is an error naming the command to run.
func TestBenchModelName(t *testing.T) {
	t.Setenv(models.EnvDir, t.TempDir())
	out, errOut, code := run(t, "bench", "--backend", "cpu", "--model", "mini", "--steps", "2", "--iterations", "1")
	if code != 0 || !strings.Contains(out, "ggml-mini.bin (mini)") || !strings.Contains(out, "q5_0") {
		t.Fatalf("bench --model mini: exit %d\n%s%s", code, out, errOut)
	}
	// The peak resident memory beside the file's size (28.4 MB).
	if !regexpLine(out, `^memory:  peak resident \d+\.\d MB \(the model file 28\.4 MB\)$`) {
		t.Errorf("bench does not report its peak memory beside the model file's size:\n%s", out)
	}
	_, errOut, code = run(t, "bench", "--backend", "cpu", "--model", "large-v3")
	if code == 0 || !strings.Contains(errOut, "transcribe models pull large-v3") {
		t.Errorf("bench --model large-v3, not installed: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, "bench", "--backend", "cpu", "--model", "mini", "--e2e", "--encode-chunk=-1")
	if code == 0 || !strings.Contains(errOut, "--encode-chunk -1: want 0") {
		t.Errorf("bench --encode-chunk -1: exit %d, stderr %q", code, errOut)
	}
}
