package launchd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// available: every Mac has launchd.
func available() error { return nil }

// platformName is the name kardianos/service files the agent under: its label.
func platformName(s Spec) string { return s.Label }

// platformFile is ~/Library/LaunchAgents/LABEL.plist and its text.
func platformFile(s Spec) (string, []byte, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", nil, err
	}
	text, err := RenderPlist(s)
	return filepath.Join(home, "Library", "LaunchAgents", s.Label+".plist"), text, err
}

// domain is the user's GUI launchd domain, gui/UID.
func domain() string { return fmt.Sprintf("gui/%d", os.Getuid()) }

// Start loads the agent into the user's GUI domain (launchctl bootstrap), which starts it
// (RunAtLoad). kardianos/service runs the legacy `launchctl load`, which recent macOS refuses.
func (m *Manager) Start() error {
	return launchctl("bootstrap", domain(), m.file)
}

// Stop removes the agent from the domain (launchctl bootout), which stops it with SIGTERM and
// keeps it from being started again until the next Start or login.
func (m *Manager) Stop() error {
	return launchctl("bootout", domain()+"/"+m.spec.Label)
}

func launchctl(args ...string) error {
	out, err := exec.Command("launchctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("launchctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
