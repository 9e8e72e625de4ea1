package launchd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

// State is what Status finds.
type State int

const (
	// NotInstalled: no plist or unit file.
	NotInstalled State = iota
	// Stopped: installed, not running.
	Stopped
	// Running: installed and running.
	Running
)

func (s State) String() string {
	switch s {
	case Stopped:
		return "stopped"
	case Running:
		return "running"
	}
	return "not installed"
}

// Manager installs, starts, stops and removes one service.
type Manager struct {
	spec Spec
	svc  service.Service
	// file is the plist or unit file's path; text what Install writes there.
	file string
	text []byte
}

// program satisfies service.Interface, which kardianos/service needs only for Run: the service
// runs `transcribe serve`, not code in this process.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// New returns the Manager of s on this machine's user service manager, or ErrNoServiceManager
// (wrapped with the reason) when it has none.
func New(s Spec) (*Manager, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := available(); err != nil {
		return nil, err
	}
	m := &Manager{spec: s}
	var err error
	if m.file, m.text, err = platformFile(s); err != nil {
		return nil, err
	}
	cfg := &service.Config{
		Name:        platformName(s),
		DisplayName: s.Label,
		Description: s.Description,
		Executable:  s.Executable,
		Arguments:   s.Args,
		Option: service.KeyValue{
			"UserService": true,
			// The file is ours, already rendered: kardianos/service's template engine gets it as
			// literal text (check refuses "{{" in a Spec, so nothing in it is an action).
			"LaunchdConfig": string(m.text),
			"SystemdScript": string(m.text),
		},
	}
	if m.svc, err = service.New(program{}, cfg); err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	return m, nil
}

// File is the plist's or the unit's path.
func (m *Manager) File() string { return m.file }

// Install writes the plist or unit and registers it (systemd: enabled, so it starts at login).
// An existing install is replaced: stopped, removed and written again, so an upgrade or a change
// of flags is one install. It does not start the service.
func (m *Manager) Install() error {
	if _, err := os.Stat(m.file); err == nil {
		_ = m.Stop()
		if err := m.svc.Uninstall(); err != nil {
			return fmt.Errorf("replace %s: %w", m.file, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(m.file), 0o755); err != nil {
		return err
	}
	if m.spec.LogDir != "" {
		if err := os.MkdirAll(m.spec.LogDir, 0o755); err != nil {
			return err
		}
	}
	if err := m.svc.Install(); err != nil {
		return fmt.Errorf("install %s: %w", m.file, err)
	}
	got, err := os.ReadFile(m.file)
	if err != nil {
		return err
	}
	if string(got) != string(m.text) {
		return fmt.Errorf("install %s: the file written differs from the one rendered", m.file)
	}
	return nil
}

// Uninstall stops the service and removes its file.
func (m *Manager) Uninstall() error {
	if _, err := os.Stat(m.file); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", m.file, service.ErrNotInstalled)
	}
	_ = m.Stop()
	if err := m.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall %s: %w", m.file, err)
	}
	return nil
}

// Status reports whether the service is installed and running.
func (m *Manager) Status() (State, error) {
	if _, err := os.Stat(m.file); errors.Is(err, os.ErrNotExist) {
		return NotInstalled, nil
	}
	st, err := m.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return NotInstalled, nil
	case err != nil:
		return Stopped, err
	case st == service.StatusRunning:
		return Running, nil
	}
	return Stopped, nil
}

// check refuses a Spec that cannot be installed.
func (s Spec) check() error {
	if s.Name == "" || s.Label == "" {
		return errors.New("service: a name and a label are required")
	}
	if !filepath.IsAbs(s.Executable) {
		return fmt.Errorf("service: the program's path must be absolute, not %q", s.Executable)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("service: environment entry %q is not KEY=VALUE", kv)
		}
	}
	for _, v := range append(append([]string{s.Name, s.Label, s.Description, s.Executable, s.LogDir}, s.Args...), s.Env...) {
		if strings.Contains(v, "{{") {
			return fmt.Errorf("service: %q: a value with \"{{\" cannot be installed (kardianos/service would take it for a template action)", v)
		}
	}
	return nil
}
