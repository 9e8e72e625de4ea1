package daemon

import (
	"testing"

	"github.com/verbatimhq/verbatim/internal/testkit"
)

// TestMain removes the model the tests share afterwards (testkit.SharedDir).
func TestMain(m *testing.M) { testkit.Main(m) }
