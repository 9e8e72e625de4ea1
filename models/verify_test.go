package models

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestVerify(t *testing.T) {
	data, e := fakeModel(t, 100_000)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	flipped := filepath.Join(dir, "flipped.bin")
	short := filepath.Join(dir, "short.bin")
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x80
	for p, b := range map[string][]byte{good: data, flipped: bad, short: data[:len(data)-1]} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Verify(t.Context(), good, e); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for _, p := range []string{flipped, short} {
		err := Verify(t.Context(), p, e)
		var ce *ChecksumError
		if !errors.As(err, &ce) || !errors.Is(err, ErrChecksum) || ce.Path != p {
			t.Fatalf("%s: err = %v, want a ChecksumError", p, err)
		}
	}
	if err := Verify(t.Context(), filepath.Join(dir, "missing.bin"), e); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestHashCache: Hash trusts the cache only while size and mtime match; Verify never does.
func TestHashCache(t *testing.T) {
	data, e := fakeModel(t, 50_000)
	p := filepath.Join(t.TempDir(), "ggml-fake.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Hash(t.Context(), p)
	if err != nil || sum != e.SHA256 {
		t.Fatalf("Hash = %s, %v, want %s", sum, err, e.SHA256)
	}
	if _, err := os.Stat(hashCachePath(p)); err != nil {
		t.Fatalf("no cache written: %v", err)
	}

	// Plant a wrong digest for the current size and mtime: Hash believes it, Verify does not.
	fi, _ := os.Stat(p)
	bogus := strings.Repeat("ab", 32)
	saveHash(p, fi, bogus)
	if sum, _ := Hash(t.Context(), p); sum != bogus {
		t.Fatalf("Hash ignored a valid cache entry: %s", sum)
	}
	if err := Verify(t.Context(), p, e); err != nil {
		t.Fatalf("Verify trusted the cache: %v", err)
	}
	// Verify refreshed the cache with the real digest.
	if sum, _ := Hash(t.Context(), p); sum != e.SHA256 {
		t.Fatalf("after Verify, Hash = %s", sum)
	}

	// A changed mtime invalidates the cache.
	saveHash(p, fi, bogus)
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if sum, _ := Hash(t.Context(), p); sum != e.SHA256 {
		t.Fatalf("stale cache used after mtime change: %s", sum)
	}
}

func TestHashFileCancelled(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.bin")
	if err := os.WriteFile(p, make([]byte, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := HashFile(ctx, p); err == nil {
		t.Fatal("hashing went on after cancel")
	}
}

func TestInstalled(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"ggml-tiny.bin":                 3,
		"ggml-my-finetune.bin":          5,
		"ggml-base.bin.partial":         7,
		".ggml-tiny.bin.sha256":         1,
		".verbatim.tmp.ggml-x.bin.1234": 1,
		"notes.txt":                     1,
	}
	for name, n := range files {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "ggml-dir.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Installed(dir)
	if err != nil {
		t.Fatal(err)
	}
	tiny, _ := Lookup("tiny")
	want := []Model{
		{Name: "my-finetune", Path: filepath.Join(dir, "ggml-my-finetune.bin"), Size: 5},
		{Name: "tiny", Path: filepath.Join(dir, "ggml-tiny.bin"), Size: 3, Entry: tiny, Known: true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("Installed (-want +got):\n%s", d)
	}
	if got, err := Installed(filepath.Join(dir, "nope")); err != nil || got != nil {
		t.Fatalf("missing folder: %v, %v", got, err)
	}
}
