package models

import (
	"path/filepath"
	"testing"
)

func TestDirOverride(t *testing.T) {
	d := t.TempDir()
	t.Setenv(EnvDir, d)
	got, err := Dir()
	if err != nil || got != d {
		t.Fatalf("Dir = %s, %v, want %s", got, err, d)
	}
	t.Chdir(d)
	t.Setenv(EnvDir, "rel")
	if got, err := Dir(); err != nil || got != filepath.Join(d, "rel") {
		t.Fatalf("relative override: Dir = %s, %v", got, err)
	}
}
