//go:build !darwin

package models

import (
	"os"
	"path/filepath"
)

// defaultDir follows the XDG base directory specification: $XDG_DATA_HOME when it is an
// absolute path (relative values are to be ignored), else ~/.local/share.
func defaultDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "verbatim", "models"), nil
	}
	h, err := home()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, ".local", "share", "verbatim", "models"), nil
}
