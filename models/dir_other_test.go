//go:build !darwin

package models

import (
	"path/filepath"
	"testing"
)

func TestDirXDG(t *testing.T) {
	home := t.TempDir()
	t.Setenv(EnvDir, "")
	t.Setenv("HOME", home)
	cases := []struct{ xdg, want string }{
		{"", filepath.Join(home, ".local", "share", "verbatim", "models")},
		{"/data/me", "/data/me/verbatim/models"},
		{"relative/ignored", filepath.Join(home, ".local", "share", "verbatim", "models")},
	}
	for _, c := range cases {
		t.Setenv("XDG_DATA_HOME", c.xdg)
		if got, err := Dir(); err != nil || got != c.want {
			t.Errorf("XDG_DATA_HOME=%q: Dir = %s, %v, want %s", c.xdg, got, err, c.want)
		}
	}
}
