package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/daemon"
	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/models"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/vad"
	"github.com/verbatimhq/verbatim/whisper"
)

// daemonFlags are the daemon's own flags, shared by serve and service install.
type daemonFlags struct {
	Watch    []string `name:"watch" type:"path" placeholder:"DIR" help:"A folder to watch, with its subfolders (repeatable; the configuration file's watch list when none is given)."`
	StateDir string   `name:"state-dir" type:"path" placeholder:"DIR" help:"The daemon's queue, lock and logs (default: ${state_dir})."`
	Config   string   `name:"config" type:"path" placeholder:"FILE" help:"The daemon's TOML configuration file (default: ${config_file}, when it exists)."`
	Addr     string   `default:"127.0.0.1:8765" help:"The HTTP listener (GET /healthz), on loopback."`
}

type serveCmd struct {
	daemonFlags `embed:""`

	Settle      time.Duration `default:"5s" help:"How long a file's size and time must stay the same before it is taken."`
	Rescan      time.Duration `default:"10m" help:"Time between full scans of the watched folders (events bring changes forward)."`
	IdleUnload  time.Duration `name:"idle-unload" default:"5m" help:"How long the model stays loaded without work."`
	MaxAttempts int           `name:"max-attempts" default:"3" help:"How many times a job is tried before it fails for good."`
	NoEvents    bool          `name:"no-events" help:"Find changes by rescans alone (network and FUSE file systems send no events)."`
	Batch       int           `help:"Windows encoded together, and sequences decoded together, from the files queued together (default: 8 on a GPU, 1 on the CPU)." placeholder:"N"`

	backendFlags  `embed:""`
	transcription `embed:""`
}

func (c *serveCmd) Run(e *env, k *kong.Context) error {
	given := givenFlags(k)
	dc, err := c.daemonConfig(e, given)
	if err != nil {
		return err
	}
	// The configuration file is read again when it changes or on SIGHUP: the daemon stops as it
	// does on SIGTERM (the job in progress back in the queue with its checkpoint) and starts
	// again with the new configuration, or, when the file cannot be used, with the last good one.
	for {
		ctx, cancel := context.WithCancel(e.ctx)
		changed := make(chan string, 1)
		go watchConfig(ctx, c.configPath(), changed)
		var why string
		go func() {
			select {
			case why = <-changed:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := daemon.Run(ctx, dc)
		cancel()
		if e.ctx.Err() != nil || err != nil {
			return err
		}
		next, cerr := c.daemonConfig(e, given)
		if cerr != nil {
			e.log.Error().Err(cerr).Str("why", why).Msg("the configuration cannot be used: the daemon goes on with its last good configuration")
			continue
		}
		e.log.Info().Str("why", why).Msg("configuration read again")
		dc = next
	}
}

// configPath is the configuration file serve reads: --config, else the platform's.
func (c *daemonFlags) configPath() string {
	if c.Config != "" {
		return c.Config
	}
	p, _ := daemon.DefaultConfigFile()
	return p
}

// watchConfig sends on changed when the file at p changes (its size or time, or it appears or
// goes; looked at every 2 s) or the process gets SIGHUP, until ctx ends.
func watchConfig(ctx context.Context, p string, changed chan<- string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stamp := func() string {
		fi, err := os.Stat(p)
		if err != nil || p == "" {
			return ""
		}
		return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	was := stamp()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			changed <- "SIGHUP"
			return
		case <-tick.C:
			if now := stamp(); now != was {
				changed <- p + " changed"
				return
			}
		}
	}
}

// daemonConfig is the daemon's configuration from the flags (given reports those given on the
// command line) and the configuration file, checked: the folders exist, the settings parse.
func (c *serveCmd) daemonConfig(e *env, given func(string) bool) (daemon.Config, error) {
	cc := *c // the file's values fill in for flags not given, in a copy: c stays as parsed
	c = &cc
	var dc daemon.Config
	file, cfgDir, err := c.loadConfig()
	if err != nil {
		return dc, err
	}
	// The backend: a flag given (or VERBATIM_BACKEND_OPTIONS set), else the file's.
	if !given("backend") && file.Backend != nil {
		c.Backend = *file.Backend
	}
	if !given("threads") && file.Threads != nil {
		c.Threads = *file.Threads
	}
	if c.BackendOptions == "" && file.BackendOptions != nil {
		c.BackendOptions = *file.BackendOptions
	}
	choice, err := c.choice()
	if err != nil {
		return dc, err
	}
	dc = daemon.Config{
		Version: version, Addr: c.Addr, Settle: c.Settle, Rescan: c.Rescan, IdleUnload: c.IdleUnload,
		MaxAttempts: c.MaxAttempts, Batch: c.Batch, NoEvents: c.NoEvents, BackendOptions: choice.cuda.String(),
		Log: e.log,
	}
	if choice.name == "cpu" {
		dc.BackendOptions = ""
	}
	// The daemon's own settings: a flag given on the command line, else the file's, else the
	// flag's default.
	if c.StateDir == "" && file.StateDir != nil {
		c.StateDir = abs(cfgDir, *file.StateDir)
	}
	if dc.StateDir = c.StateDir; dc.StateDir == "" {
		if dc.StateDir, err = daemon.DefaultStateDir(); err != nil {
			return dc, err
		}
	}
	if !given("addr") && file.Addr != nil {
		dc.Addr = *file.Addr
	}
	dur := func(flag string, dst *time.Duration, v *config.Duration) {
		if !given(flag) && v != nil {
			*dst = time.Duration(*v)
		}
	}
	dur("settle", &dc.Settle, file.Settle)
	dur("rescan", &dc.Rescan, file.Rescan)
	dur("idle-unload", &dc.IdleUnload, file.IdleUnload)
	if !given("max-attempts") && file.MaxAttempts != nil {
		dc.MaxAttempts = *file.MaxAttempts
	}
	if !given("batch") && file.Batch != nil {
		dc.Batch = *file.Batch
	}
	roots := c.Watch
	if len(roots) == 0 {
		for _, w := range file.Watch {
			roots = append(roots, abs(cfgDir, w))
		}
	}
	if len(roots) == 0 {
		return dc, errors.New("no folder to watch: give --watch DIR or a watch list in the configuration file")
	}
	for _, r := range roots {
		fi, err := os.Stat(r)
		if err != nil || !fi.IsDir() {
			return dc, fmt.Errorf("--watch %s: not a folder", r)
		}
		dc.Roots = append(dc.Roots, filepath.Clean(r))
	}
	// The transcription defaults of every folder: the built-in ones, the file's, then the flags
	// given on the command line; each folder's .verbatim.toml goes over them.
	defaults := config.Folder{}.Over(&file.Defaults, cfgDir)
	flags := c.folder(given)
	defaults = defaults.Over(&flags, "")
	if _, err := pipelineOptions(defaults); err != nil {
		return dc, err
	}
	dc.Tree = config.NewTree(defaults, func(err error) {
		e.log.Error().Err(err).Msg("a folder's configuration cannot be used: its last good version (or none) stays in force")
	})
	dc.Options = func(f config.Folder) (pipeline.Options, string, error) {
		opts, err := pipelineOptions(f)
		if err != nil {
			return opts, "", err
		}
		model, err := resolveModel(modelOf(f))
		return opts, model, err
	}
	dc.ModelHash = models.Hash
	dc.Load = func(ctx context.Context, model string) (*pipeline.Runner, func(), error) {
		return loadRunner(choice, model, e)
	}
	dc.Ready = func(p string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := media.Open(ctx, p, media.Options{})
		if err != nil {
			return false
		}
		st.Close()
		return true
	}
	return dc, nil
}

// loadConfig reads the daemon's configuration file: --config, else the platform's file if it
// exists, else none (an empty configuration). It returns the file's folder, against which its
// relative paths are taken.
func (c *daemonFlags) loadConfig() (*config.File, string, error) {
	p := c.Config
	if p == "" {
		def, err := daemon.DefaultConfigFile()
		if err != nil {
			return nil, "", err
		}
		if _, err := os.Stat(def); err != nil {
			return &config.File{}, "", nil
		}
		p = def
	}
	f, err := config.LoadFile(p)
	if err != nil {
		return nil, "", err
	}
	return f, filepath.Dir(p), nil
}

// abs is p taken relative to dir when it is relative.
func abs(dir, p string) string {
	if filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// loadRunner opens the backend of choice (its first device), loads the model at path on it and
// the VAD on the CPU, and returns the Runner and the function that closes them all.
func loadRunner(choice backendChoice, path string, e *env) (*pipeline.Runner, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	b, err := openBackend(choice, e.log)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { b.Close() })
	m, err := whisper.Load(path, b)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, func() { m.Close() })
	vb, err := cpu.New(cpu.Options{Threads: choice.threads})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, func() { vb.Close() })
	v, err := vad.Default(vb)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, func() { v.Close() })
	r, err := pipeline.NewRunner(m, path, v, version)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return r, closeAll, nil
}
