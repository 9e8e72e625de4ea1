package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/verbatimhq/verbatim/daemon"
	"github.com/verbatimhq/verbatim/launchd"
	"github.com/verbatimhq/verbatim/models"
)

// The service's names: the systemd unit verbatim.service, the launchd agent's label.
const (
	serviceName  = "verbatim"
	serviceLabel = "com.verbatimhq.verbatim"
)

type serviceCmd struct {
	Install   serviceInstallCmd `cmd:"" help:"Install the daemon as your user's service (a launchd agent on macOS, a systemd user unit on Linux) running 'transcribe serve' with the flags given here, and start it."`
	Uninstall serviceCtlCmd     `cmd:"" help:"Stop the service and remove it."`
	Start     serviceCtlCmd     `cmd:"" help:"Start the service."`
	Stop      serviceCtlCmd     `cmd:"" help:"Stop the service (it starts again at the next login)."`
	Status    serviceCtlCmd     `cmd:"" help:"Whether the service is installed and running, and the daemon's queue."`
}

type serviceInstallCmd struct {
	serveCmd `embed:""`
	NoStart  bool `name:"no-start" help:"Install without starting it now."`
}

// Run checks the configuration as serve would (folders, settings, the model), writes the
// service's file with this program's absolute path and the flags given, and starts it.
func (c *serviceInstallCmd) Run(e *env, k *kong.Context) error {
	given := givenFlags(k)
	dc, err := c.daemonConfig(e, given)
	if err != nil {
		return err
	}
	for _, root := range dc.Roots {
		if _, _, err := dc.Options(dc.Tree.Settings(root, filepath.Join(root, "file"))); err != nil {
			return fmt.Errorf("%s: %w (the service would fail its jobs: pull the model first, 'transcribe models pull')", root, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if strings.HasPrefix(exe, os.TempDir()) && strings.Contains(exe, "go-build") {
		return fmt.Errorf("%s is a temporary build ('go run'): install a built binary", exe)
	}
	args := append([]string{"serve"}, flagArgs(k, "no-start")...)
	m, err := newService(exe, args)
	if err != nil {
		return err
	}
	if err := m.Install(); err != nil {
		return err
	}
	fmt.Printf("Installed %s\n  runs: %s %s\n", m.File(), exe, strings.Join(args, " "))
	if c.NoStart {
		return nil
	}
	if err := m.Start(); err != nil {
		return err
	}
	fmt.Println("Started. 'transcribe service status' shows it; " + logHint())
	return nil
}

// logHint says where the service's log is.
func logHint() string {
	if runtime.GOOS == "darwin" {
		dir, _ := daemon.DefaultLogDir()
		return "its log: " + filepath.Join(dir, serviceName+".log")
	}
	return "its log: journalctl --user -u " + serviceName + " (to run while you are logged out: loginctl enable-linger)"
}

type serviceCtlCmd struct {
	StateDir string `name:"state-dir" type:"path" placeholder:"DIR" help:"The daemon's state folder, for status (default: ${state_dir})."`
}

func (c *serviceCtlCmd) Run(e *env, k *kong.Context) error {
	m, err := newService("/", nil) // the program does not matter to these commands
	if err != nil {
		return err
	}
	switch action := k.Selected().Name; action {
	case "uninstall":
		if err := m.Uninstall(); err != nil {
			return err
		}
		fmt.Printf("Removed %s\n", m.File())
	case "start":
		return m.Start()
	case "stop":
		return m.Stop()
	case "status":
		st, err := m.Status()
		fmt.Printf("Service: %s (%s)\n", st, m.File())
		if err != nil {
			fmt.Printf("  %v\n", err)
		}
		dir := c.StateDir
		if dir == "" {
			if dir, err = daemon.DefaultStateDir(); err != nil {
				return err
			}
		}
		s, err := daemon.ReadStatus(e.ctx, dir, 5)
		if err != nil {
			fmt.Printf("Daemon: %v\n", err)
			return nil
		}
		s.Write(os.Stdout, time.Now())
	}
	return nil
}

// newService is the service manager for the daemon's service running exe with args.
func newService(exe string, args []string) (*launchd.Manager, error) {
	logDir, err := daemon.DefaultLogDir()
	if err != nil {
		return nil, err
	}
	m, err := launchd.New(launchd.Spec{
		Name: serviceName, Label: serviceLabel,
		Description: "Verbatim: offline transcription of watched folders",
		Executable:  exe, Args: args, LogDir: logDir, Env: serviceEnv(),
	})
	if errors.Is(err, launchd.ErrNoServiceManager) {
		return nil, fmt.Errorf("%w; run 'transcribe serve' in the foreground instead, or under your own supervisor", err)
	}
	return m, err
}

// serviceEnv is the environment the service gets from the command that installs it: PATH (with
// Homebrew's folders on macOS, where ffmpeg lives) and the variables Verbatim reads.
func serviceEnv() []string {
	path := os.Getenv("PATH")
	if runtime.GOOS == "darwin" {
		for _, d := range []string{"/opt/homebrew/bin", "/usr/local/bin"} {
			if !strings.Contains(":"+path+":", ":"+d+":") {
				path = d + ":" + path
			}
		}
	}
	env := []string{"PATH=" + path}
	for _, k := range []string{models.EnvDir, "VERBATIM_BACKEND_OPTIONS", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "CUDA_PATH", "CUDA_HOME"} {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// flagArgs are the flags given on the command line (but those named in skip) as --name=value
// arguments that give the same values: paths already made absolute by the parser, a relative
// --model path made absolute too.
func flagArgs(k *kong.Context, skip ...string) []string {
	var out []string
	for _, p := range k.Path {
		f := p.Flag
		if f == nil || slices.Contains(skip, f.Name) {
			continue
		}
		skip = append(skip, f.Name) // a repeated flag's values are all in its target
		v := f.Target
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				break
			}
			v = v.Elem()
		}
		switch {
		case v.Kind() == reflect.Bool:
			if v.Bool() {
				out = append(out, "--"+f.Name)
			} else {
				out = append(out, "--no-"+f.Name)
			}
		case v.Kind() == reflect.Slice:
			for i := range v.Len() {
				out = append(out, "--"+f.Name+"="+fmt.Sprint(v.Index(i).Interface()))
			}
		case v.Type() == reflect.TypeFor[time.Duration]():
			out = append(out, "--"+f.Name+"="+time.Duration(v.Int()).String())
		case v.Kind() == reflect.Float64:
			out = append(out, "--"+f.Name+"="+strconv.FormatFloat(v.Float(), 'g', -1, 64))
		default:
			s := fmt.Sprint(v.Interface())
			if f.Name == "model" {
				if a, err := filepath.Abs(s); err == nil && fileExists(s) {
					s = a
				}
			}
			out = append(out, "--"+f.Name+"="+s)
		}
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
