package daemon

import (
	"os"
	"path/filepath"
)

// DefaultStateDir is where the daemon keeps its queue and lock on macOS:
// ~/Library/Application Support/Verbatim.
func DefaultStateDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "Application Support", "Verbatim"), nil
}

// DefaultConfigFile is the daemon's configuration file on macOS:
// ~/Library/Application Support/Verbatim/config.toml.
func DefaultConfigFile() (string, error) {
	dir, err := DefaultStateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "config.toml"), nil
}

// DefaultLogDir is where the service's logs go on macOS: ~/Library/Logs/Verbatim.
func DefaultLogDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "Logs", "Verbatim"), nil
}
