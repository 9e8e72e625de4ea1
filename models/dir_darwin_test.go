package models

import (
	"path/filepath"
	"testing"
)

func TestDirDarwin(t *testing.T) {
	home := t.TempDir()
	t.Setenv(EnvDir, "")
	t.Setenv("HOME", home)
	want := filepath.Join(home, "Library", "Application Support", "Verbatim", "models")
	if got, err := Dir(); err != nil || got != want {
		t.Fatalf("Dir = %s, %v, want %s", got, err, want)
	}
}
