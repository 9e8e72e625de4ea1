//go:build !darwin

package launchd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

// available reports whether this machine has a systemd user manager that can be reached:
// kardianos/service must have chosen systemd, and `systemctl --user` must answer (it does not in
// a container, over a plain `su`, or without a login session).
func available() error {
	if sys := service.ChosenSystem(); sys == nil || sys.String() != "linux-systemd" {
		name := "none"
		if sys != nil {
			name = sys.String()
		}
		return fmt.Errorf("%w: systemd is not this machine's init (kardianos/service found %s)", ErrNoServiceManager, name)
	}
	out, err := exec.Command("systemctl", "--user", "show-environment").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: the systemd user manager does not answer (systemctl --user: %s); log in on a session with one, or run `loginctl enable-linger`",
			ErrNoServiceManager, strings.TrimSpace(string(out)))
	}
	return nil
}

// platformName is the unit's name without .service.
func platformName(s Spec) string { return s.Name }

// platformFile is ~/.config/systemd/user/NAME.service (where kardianos/service puts a user unit,
// whatever XDG_CONFIG_HOME says) and its text.
func platformFile(s Spec) (string, []byte, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", nil, err
	}
	text, err := RenderUnit(s)
	return filepath.Join(home, ".config", "systemd", "user", s.Name+".service"), text, err
}

// Start starts the unit (systemctl --user start).
func (m *Manager) Start() error { return m.svc.Start() }

// Stop stops the unit (systemctl --user stop).
func (m *Manager) Stop() error { return m.svc.Stop() }
