package testkit

import (
	"os"
	"sync"
	"testing"
)

// shared are the folders SharedDir made, removed by Main.
var shared struct {
	sync.Mutex
	dirs []string
}

// SharedDir makes a temporary folder for what a test binary makes once and its tests share (a
// model, a built command), which t.TempDir cannot hold: it goes when the test that made it ends.
// The package's TestMain calls Main, which removes every such folder after the tests.
func SharedDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	shared.Lock()
	shared.dirs = append(shared.dirs, dir)
	shared.Unlock()
	return dir, nil
}

// Main runs the tests, removes the folders SharedDir made and exits with the tests' status: a
// package's TestMain is func TestMain(m *testing.M) { testkit.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	shared.Lock()
	for _, d := range shared.dirs {
		os.RemoveAll(d)
	}
	shared.dirs = nil
	shared.Unlock()
	os.Exit(code)
}
