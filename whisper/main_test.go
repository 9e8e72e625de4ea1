package whisper

import (
	"os"
	"testing"
)

// TestMain removes the models writeSynth wrote for the package's tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if synthFiles.dir != "" {
		os.RemoveAll(synthFiles.dir)
	}
	os.Exit(code)
}
