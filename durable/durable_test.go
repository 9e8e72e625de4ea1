package durable

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.srt")
	for _, s := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != s {
			t.Fatalf("read %q, %v; want %q", got, err, s)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	assertNoTemp(t, dir)
}

// A crash between the synced temp file and the rename leaves the previous file intact.
func TestCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.srt")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("injected crash")
	t.Cleanup(SetRenameForTest(func(string, string) error { return crash }))
	if err := WriteFile(p, []byte("new"), 0o644); !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the injected crash", err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "old" {
		t.Fatalf("after crash: %q, %v; want the old content", got, err)
	}
	assertNoTemp(t, dir)
}

// A failing writer leaves nothing behind and the target untouched.
func TestWriteFillError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.bin")
	bad := errors.New("generator failed")
	err := Write(p, 0o644, func(w io.Writer) error {
		if _, err := w.Write([]byte("partial")); err != nil {
			return err
		}
		return bad
	})
	if !errors.Is(err, bad) || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want %v naming %s", err, bad, p)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target exists after a failed write: %v", err)
	}
	assertNoTemp(t, dir)
}

func TestWriteMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope", "a.srt")
	if err := WriteFile(p, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), p) {
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
