package main

import (
	"os"
	"testing"

	"github.com/verbatimhq/verbatim/internal/testkit"
)

// TestMain keeps the tests from the language model servers of the machine they run on: the
// CLI's summary is extractive unless a test asks for another (--summary), so that a developer's
// running Ollama does not change what the tests see. It removes the built command and the model
// the tests share afterwards (testkit.SharedDir).
func TestMain(m *testing.M) {
	os.Setenv("VERBATIM_SUMMARY", "extractive")
	testkit.Main(m)
}
