//go:build !darwin

package daemon

import (
	"os"
	"path/filepath"
)

// xdg is the XDG base folder named by env, else home/fallback.
func xdg(env, fallback string) (string, error) {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, fallback), nil
}

// DefaultStateDir is where the daemon keeps its queue and lock: $XDG_STATE_HOME/verbatim
// (~/.local/state/verbatim).
func DefaultStateDir() (string, error) {
	d, err := xdg("XDG_STATE_HOME", filepath.Join(".local", "state"))
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "verbatim"), nil
}

// DefaultConfigFile is the daemon's configuration file: $XDG_CONFIG_HOME/verbatim/config.toml
// (~/.config/verbatim/config.toml).
func DefaultConfigFile() (string, error) {
	d, err := xdg("XDG_CONFIG_HOME", ".config")
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "verbatim", "config.toml"), nil
}

// DefaultLogDir is where the service writes its log when it has no journal: the state folder's
// log/ (a systemd user unit logs to the journal).
func DefaultLogDir() (string, error) {
	d, err := DefaultStateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "log"), nil
}
