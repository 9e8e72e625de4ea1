package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvDir names the environment variable that overrides the models folder.
const EnvDir = "VERBATIM_MODELS_DIR"

// Dir is the models folder: $VERBATIM_MODELS_DIR when set, else the platform's per-user data
// folder (~/Library/Application Support/Verbatim/models on macOS, $XDG_DATA_HOME/verbatim/models
// or ~/.local/share/verbatim/models elsewhere). It does not create the folder.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Abs(d)
	}
	d, err := defaultDir()
	if err != nil {
		return "", fmt.Errorf("models folder: %w (set %s)", err, EnvDir)
	}
	return d, nil
}

// home is os.UserHomeDir, refusing an empty answer.
func home() (string, error) {
	h, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	if h == "" {
		return "", errors.New("no home folder")
	}
	return h, nil
}
