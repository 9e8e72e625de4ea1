package sidecar

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.srt")
	for _, s := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != s {
			t.Fatalf("read %q, %v; want %q", got, err, s)
		}
	}
	assertNoTemp(t, dir)
}

// A crash between writing the temp file and renaming it must leave the old sidecar intact.
func TestWriteFileCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.srt")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("injected crash")
	rename = func(string, string) error { return crash }
	t.Cleanup(func() { rename = os.Rename })
	if err := WriteFile(p, []byte("new"), 0o644); !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the injected crash", err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "old" {
		t.Fatalf("after crash: %q, %v; want the old content", got, err)
	}
	assertNoTemp(t, dir)
}

func TestWriteFileMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope", "a.srt")
	err := WriteFile(p, []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want an error naming %s", err, p)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}
