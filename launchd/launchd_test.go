package launchd

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"howett.net/plist"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// spec is the service `transcribe service install` describes, with values that need escaping
// in both formats: spaces, quotes, &, <, %, $ and a backslash.
func spec() Spec {
	return Spec{
		Name: "verbatim", Label: "com.verbatimhq.verbatim",
		Description: "Verbatim: offline transcription of watched folders",
		Executable:  "/Users/ada/bin/transcribe",
		Args: []string{"serve", "--watch=/Users/ada/Voice Memos", "--watch=/Users/ada/R&D <notes>",
			`--prompt=Ada's "100%" $HOME \ notes`, "--language=de"},
		LogDir: "/Users/ada/Library/Logs/Verbatim",
		Env:    []string{"PATH=/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin", "VERBATIM_MODELS_DIR=/Volumes/Models & more/50%"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./launchd -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestPlistGolden(t *testing.T) {
	got, err := RenderPlist(spec())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "com.verbatimhq.verbatim.plist", got)
}

func TestUnitGolden(t *testing.T) {
	got, err := RenderUnit(spec())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "verbatim.service", got)
}

// TestPlistParses reads the plist back with a property-list parser: it is well formed and says
// what the issue asks of an agent, and the program's arguments arrive exactly as given.
func TestPlistParses(t *testing.T) {
	s := spec()
	text, err := RenderPlist(s)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Label             string
		ProgramArguments  []string
		RunAtLoad         bool
		KeepAlive         map[string]bool
		ThrottleInterval  int
		ProcessType       string
		LowPriorityIO     bool
		StandardOutPath   string
		StandardErrorPath string
		Env               map[string]string `plist:"EnvironmentVariables"`
	}
	format, err := plist.Unmarshal(text, &p)
	if err != nil {
		t.Fatalf("the plist does not parse: %v", err)
	}
	if format != plist.XMLFormat {
		t.Errorf("format %d, want XML", format)
	}
	if want := append([]string{s.Executable}, s.Args...); !reflect.DeepEqual(p.ProgramArguments, want) {
		t.Errorf("ProgramArguments %q, want %q", p.ProgramArguments, want)
	}
	if p.Label != s.Label || !p.RunAtLoad || p.ProcessType != "Background" || !p.LowPriorityIO || p.ThrottleInterval < 10 {
		t.Errorf("agent %+v: want the label, RunAtLoad, Background, LowPriorityIO and a throttle", p)
	}
	if ok, set := p.KeepAlive["SuccessfulExit"]; !set || ok {
		t.Errorf("KeepAlive %v: want restarts only after a failure", p.KeepAlive)
	}
	if want := s.LogDir + "/verbatim.log"; p.StandardOutPath != want || p.StandardErrorPath != want {
		t.Errorf("logs %q %q, want %q", p.StandardOutPath, p.StandardErrorPath, want)
	}
	if want := map[string]string{"PATH": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin", "VERBATIM_MODELS_DIR": "/Volumes/Models & more/50%"}; !reflect.DeepEqual(p.Env, want) {
		t.Errorf("environment %q, want %q", p.Env, want)
	}
}

// TestUnitExecStart splits ExecStart the way systemd's unit parser does (quotes, backslash
// escapes, %% and $$) and finds the arguments as given.
func TestUnitExecStart(t *testing.T) {
	s := spec()
	text, err := RenderUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			line = v
		}
	}
	got := systemdWords(t, line)
	if want := append([]string{s.Executable}, s.Args...); !reflect.DeepEqual(got, want) {
		t.Errorf("ExecStart splits into %q, want %q", got, want)
	}
	for _, want := range []string{"Restart=on-failure", "WantedBy=default.target", "IOSchedulingClass=idle"} {
		if !strings.Contains(string(text), "\n"+want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
}

// systemdWords splits an ExecStart value into words: double-quoted words with \\ \" \n escapes,
// then %% → % and $$ → $ (what systemd does for a word that is not a variable reference).
func systemdWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	for i := 0; i < len(line); {
		if line[i] == ' ' {
			i++
			continue
		}
		if line[i] != '"' {
			t.Fatalf("unquoted word at %d in %q", i, line)
		}
		var w strings.Builder
		i++
		for ; i < len(line) && line[i] != '"'; i++ {
			if line[i] == '\\' && i+1 < len(line) {
				i++
				if line[i] == 'n' {
					w.WriteByte('\n')
					continue
				}
			}
			w.WriteByte(line[i])
		}
		if i == len(line) {
			t.Fatalf("unbalanced quote in %q", line)
		}
		i++
		words = append(words, strings.NewReplacer("%%", "%", "$$", "$").Replace(w.String()))
	}
	return words
}

// TestUnitVerifies has systemd's own parser read the unit (systemd-analyze verify, where systemd
// is installed): no unknown key, no bad value, no quoting it cannot read.
func TestUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	s := spec()
	s.Executable = "/bin/echo" // verify checks that the program exists
	text, err := RenderUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "verbatim.service")
	if err := os.WriteFile(p, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestSpecRefused(t *testing.T) {
	for name, change := range map[string]func(*Spec){
		"relative program": func(s *Spec) { s.Executable = "transcribe" },
		"no label":         func(s *Spec) { s.Label = "" },
		"template action":  func(s *Spec) { s.Args = append(s.Args, "--prompt={{.Name}}") },
		"bad environment":  func(s *Spec) { s.Env = append(s.Env, "NOVALUE") },
	} {
		s := spec()
		change(&s)
		if err := s.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestInstall installs, starts, stops and removes a test service (verbatim-test, running
// sleep) through the real service manager, where this machine has one (a systemd user manager,
// or launchd); it is removed again whatever happens.
func TestInstall(t *testing.T) {
	s := spec()
	s.Name, s.Label = "verbatim-test", "com.verbatimhq.verbatim-test"
	s.Executable, s.Args = "/bin/sleep", []string{"600"}
	s.LogDir = t.TempDir()
	m, err := New(s)
	if err != nil {
		t.Skipf("no user service manager here: %v", err)
	}
	t.Cleanup(func() { _ = m.Uninstall() })
	for range 2 { // the second install replaces the first
		if err := m.Install(); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(); st != Running {
		t.Errorf("after start: %v, %v", st, err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(); st != Stopped {
		t.Errorf("after stop: %v, %v", st, err)
	}
	if err := m.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(); st != NotInstalled {
		t.Errorf("after uninstall: %v", st)
	}
}

func TestNoServiceManager(t *testing.T) {
	_, err := New(spec())
	if err == nil {
		t.Skip("this machine has a user service manager")
	}
	if !errors.Is(err, ErrNoServiceManager) {
		t.Fatalf("New: %v, want an error that wraps ErrNoServiceManager", err)
	}
	t.Logf("as expected where there is none: %v", err)
}
