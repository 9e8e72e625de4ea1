package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/verbatimhq/verbatim/daemon"
	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/mini"
	"github.com/verbatimhq/verbatim/models"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/power"
	"github.com/verbatimhq/verbatim/summarize"
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
	Batch       int           `help:"Windows encoded and decoded together (each with its beams), from the files queued together (default: 64 with CUDA, 8 with Metal, 1 on the CPU; on CUDA reduced, with a warning in the log, to what the free GPU memory holds)." placeholder:"N"`
	// NoPowerPause runs the queue whatever the power state (the [power] table sets each case).
	NoPowerPause bool `name:"no-power-pause" help:"Run jobs on battery, in Low Power Mode and under thermal pressure too (by default the queue pauses then; the configuration file's [power] table sets each)."`

	apiFlags      `embed:""`
	backendFlags  `embed:""`
	transcription `embed:""`
	llmFlags      `embed:""`
	// UnloadForSummary frees the Whisper model's memory for the language model.
	UnloadForSummary bool `name:"unload-for-summary" group:"Summary" help:"Unload the Whisper model before a language model makes the summaries of a round of jobs (for machines where both do not fit in memory at once)."`
}

// apiFlags configure the HTTP API.
type apiFlags struct {
	Allow         []string      `name:"allow" type:"path" placeholder:"DIR" help:"A folder besides the watched ones whose files API jobs may name by path, and write outputs into (repeatable)."`
	Socket        string        `name:"socket" type:"path" placeholder:"PATH" help:"Serve the API on this Unix socket too (mode 0600)."`
	MaxUpload     string        `name:"max-upload" default:"4GB" placeholder:"SIZE" help:"The largest upload the API takes (e.g. 512MB, 4GB)."`
	MaxDuration   time.Duration `name:"max-duration" default:"24h" help:"The longest audio an upload may hold."`
	MaxUploads    int           `name:"max-uploads" default:"4" help:"Uploads received at once; more are answered 429."`
	AllowOrigins  []string      `name:"allow-origin" placeholder:"ORIGIN" help:"A browser origin (scheme://host:port) allowed to call the API (repeatable; none by default)."`
	CallbackHosts []string      `name:"callback-host" placeholder:"HOST" help:"A host besides loopback that callback URLs may name (repeatable)."`
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
	// Power manners: the queue pauses by the [power] table (unless --no-power-pause), and the
	// system stays awake while jobs run where the platform can do that.
	policy, poll, preventSleep := daemon.PowerSettings(file.Power)
	if !c.NoPowerPause {
		dc.Power, dc.PowerPolicy, dc.PowerPoll = power.System(), policy, poll
	}
	if inh, ok := power.SystemInhibitor(); ok && preventSleep {
		dc.Awake = inh
	}
	if err := c.apiConfig(&dc, file, cfgDir, given); err != nil {
		return dc, err
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
	// The summary stage: each folder's settings, with the global ones only the command line and
	// this file set.
	llmc := c.llmFlags
	if !given("llm-allow-remote") && file.AllowRemote != nil {
		llmc.LLMAllowRemote = *file.AllowRemote
	}
	if !given("llm-context") && file.LLMContext != nil {
		llmc.LLMContext = *file.LLMContext
	}
	dc.UnloadForSummary = c.UnloadForSummary
	if !given("unload-for-summary") && file.UnloadForSummary != nil {
		dc.UnloadForSummary = *file.UnloadForSummary
	}
	if err := summaryConfig(defaults, llmc).Validate(); err != nil {
		return dc, summaryError(err)
	}
	dc.Summary = func(f config.Folder) summarize.Config { return summaryConfig(f, llmc) }
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
	vs, closeVADs, err := openVADs(vadCopies(b))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, closeVADs)
	r, err := pipeline.NewRunner(m, path, vs[0], version)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	r.AddVAD(vs[1:]...)
	return r, closeAll, nil
}

// apiConfig fills the API's part of dc from the flags given, else the file's settings, else the
// flags' defaults.
func (c *apiFlags) apiConfig(dc *daemon.Config, file *config.File, cfgDir string, given func(string) bool) error {
	size := c.MaxUpload
	if !given("max-upload") && file.MaxUpload != nil {
		dc.MaxUpload = int64(*file.MaxUpload)
	} else {
		n, err := config.ParseSize(size)
		if err != nil {
			return fmt.Errorf("--max-upload: %w", err)
		}
		dc.MaxUpload = n
	}
	dc.MaxDuration = c.MaxDuration
	if !given("max-duration") && file.MaxDuration != nil {
		dc.MaxDuration = time.Duration(*file.MaxDuration)
	}
	dc.MaxUploads = c.MaxUploads
	if !given("max-uploads") && file.MaxUploads != nil {
		dc.MaxUploads = *file.MaxUploads
	}
	dc.Socket = c.Socket
	if !given("socket") && file.Socket != nil {
		dc.Socket = abs(cfgDir, *file.Socket)
	}
	dc.Allow = c.Allow
	if len(dc.Allow) == 0 {
		for _, a := range file.Allow {
			dc.Allow = append(dc.Allow, abs(cfgDir, a))
		}
	}
	for _, a := range dc.Allow {
		if fi, err := os.Stat(a); err != nil || !fi.IsDir() {
			return fmt.Errorf("--allow %s: not a folder", a)
		}
	}
	dc.AllowOrigins = c.AllowOrigins
	if len(dc.AllowOrigins) == 0 {
		dc.AllowOrigins = file.AllowOrigins
	}
	dc.CallbackHosts = c.CallbackHosts
	if len(dc.CallbackHosts) == 0 {
		dc.CallbackHosts = file.CallbackHosts
	}
	for i, h := range dc.CallbackHosts {
		dc.CallbackHosts[i] = strings.ToLower(h)
	}
	dc.Models = modelNames
	return nil
}

// modelNames are the names --model takes without a path: mini (when built in) and the models
// in the models folder.
func modelNames() ([]string, error) {
	var names []string
	if mini.Embedded() != nil {
		names = append(names, mini.Name)
	}
	dir, err := models.Dir()
	if err != nil {
		return names, nil
	}
	have, err := models.Installed(dir)
	if err != nil {
		return nil, err
	}
	for _, m := range have {
		if !slices.Contains(names, m.Name) {
			names = append(names, m.Name)
		}
	}
	return names, nil
}
