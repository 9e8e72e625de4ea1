// Package daemon is Verbatim's long-running service: it watches folders, keeps a durable queue
// of the files to transcribe, and transcribes them one batch at a time with the pipeline,
// writing the sidecars beside each file, and serves the localhost API (package api) whose jobs
// are the same queue's. It is made of parts that each run until the context ends (the HTTP
// listeners, the watcher, the intake that turns settled files into jobs, the worker, the
// callbacks), supervised together: the first to fail stops the others.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/verbatimhq/verbatim/daemon/api"
	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/daemon/watch"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/power"
	"github.com/verbatimhq/verbatim/summarize"
)

// Config is what the daemon runs with. The command line fills it from its flags and the
// configuration files.
type Config struct {
	// Version is the program's version, reported by /healthz and recorded in every sidecar.
	Version string
	// StateDir holds the queue database, the lock and the logs.
	StateDir string
	// Addr is the HTTP listener's address ("" for none).
	Addr string
	// Roots are the watched folders.
	Roots []string
	// Settle, Rescan: see watch.Options. IdleUnload is how long the model stays loaded without
	// work. MaxAttempts is how many times a job is tried before it fails for good. Batch sizes
	// the transcription batches (pipeline.Options.BatchSize).
	Settle, Rescan, IdleUnload time.Duration
	MaxAttempts, Batch         int
	// NoEvents turns file system events off (rescans only).
	NoEvents bool
	// Tree gives each file's folder settings (the defaults, then the folders' .verbatim.toml).
	Tree *config.Tree
	// Options turns a folder's settings into the pipeline's options and the model's path.
	Options func(f config.Folder) (opts pipeline.Options, model string, err error)
	// ModelHash returns the hex SHA-256 of a model's file (models.Hash, cached), for job keys.
	ModelHash func(ctx context.Context, model string) (string, error)
	// BackendOptions are the backend's switches ("" for its defaults), for job keys.
	BackendOptions string
	// Load loads the model at path (with the VAD) and returns a Runner for it and the function
	// that unloads it.
	Load func(ctx context.Context, model string) (r *pipeline.Runner, unload func(), err error)
	// Ready, if not nil, reports whether a settled file's container can be read (watch.Options).
	Ready func(path string) bool
	// Log is the daemon's logger.
	Log zerolog.Logger

	// The HTTP API (package api). Allow are folders besides Roots whose files a job may name
	// by path; Socket a Unix socket to serve the API on too ("" for none); MaxUpload,
	// MaxDuration and MaxUploads the upload limits (0: api's defaults); AllowOrigins the
	// browser origins allowed; CallbackHosts the hosts besides loopback a callback may call.
	Allow         []string
	Socket        string
	MaxUpload     int64
	MaxDuration   time.Duration
	MaxUploads    int
	AllowOrigins  []string
	CallbackHosts []string
	// Models lists the model names a job may ask for (GET /v1/models).
	Models func() ([]string, error)

	// Summary gives the summary stage's configuration for a folder's settings (nil: no summary
	// stage). The extractive summary is written with the transcript; a language model's, when
	// one answers, replaces it after the round of jobs, with the Whisper model unloaded first
	// when UnloadForSummary is set (both may not fit in memory together).
	Summary          func(f config.Folder) summarize.Config
	UnloadForSummary bool

	// Power is read every PowerPoll (0: DefaultPowerPoll), and the queue pauses by PowerPolicy
	// (nil: it never pauses for power). Awake keeps the system from sleeping while jobs run
	// (nil: nothing does).
	Power       power.Reader
	PowerPolicy PowerPolicy
	PowerPoll   time.Duration
	Awake       power.Inhibitor
}

// Paths in the state folder.
const (
	QueueFile = "queue.db"
	lockFile  = "daemon.lock"
)

// Run runs the daemon until ctx ends (SIGTERM, SIGINT: it stops taking work, checkpoints the
// file in progress and returns within seconds) or a part fails. It returns nil after ctx ends.
func Run(ctx context.Context, c Config) error {
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return fmt.Errorf("state folder %s: %w", c.StateDir, err)
	}
	unlock, err := lockState(c.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	// The API's token: made on the first start; an unsafe token file stops the daemon here.
	if _, err := api.LoadToken(c.StateDir); err != nil {
		return err
	}

	// The listeners answer /healthz from the first second, before the queue and the scans; the
	// rest of the API once the queue is open.
	var listeners []*listener
	closeAll := func() {
		for _, l := range listeners {
			l.ln.Close()
		}
	}
	if c.Addr != "" {
		ln, err := listenLoopback(c.Addr)
		if err != nil {
			return err
		}
		listeners = append(listeners, &listener{ln: ln})
		c.Log.Info().Str("addr", ln.Addr().String()).Msg("listening")
	}
	if c.Socket != "" {
		ln, err := listenSocket(c.Socket)
		if err != nil {
			closeAll()
			return err
		}
		defer os.Remove(c.Socket)
		listeners = append(listeners, &listener{ln: ln, socket: true})
		c.Log.Info().Str("socket", c.Socket).Msg("listening")
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range listeners {
		srv := &http.Server{Handler: l.starting(c.Version), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
			return nil
		})
	}

	// failStart ends a start that failed; a stop asked for meanwhile (SIGTERM during the start)
	// is no failure.
	failStart := func(err error) error {
		closeAll()
		g.Wait()
		if ctx.Err() != nil {
			c.Log.Info().Msg("daemon stopped while starting")
			return nil
		}
		return err
	}
	q, err := openQueue(gctx, c)
	if err != nil {
		return failStart(err)
	}
	defer q.Close()
	if n, err := q.Recover(gctx); err != nil {
		return failStart(err)
	} else if n > 0 {
		c.Log.Info().Int("jobs", n).Msg("jobs that were running when the daemon stopped are queued again")
	}

	// The power state, read before the worker takes its first job: a daemon started on battery
	// starts none.
	os.Remove(filepath.Join(c.StateDir, pausedFile)) // a killed daemon's
	var gate *powerGate
	if c.Power != nil && !c.PowerPolicy.Off() {
		gate = newPowerGate(c)
		gate.check()
	}

	candidates := make(chan watch.Candidate, 256)
	wake := make(chan struct{}, 1)
	w := watch.New(watch.Options{
		Roots: c.Roots, Settle: c.Settle, Rescan: c.Rescan, Ready: c.Ready, NoEvents: c.NoEvents,
		Log: c.Log.With().Str("component", "watch").Logger(),
		Skip: func(root, p string) bool {
			s := c.Tree.Settings(root, p)
			return !s.IsEnabled() || s.Ignored(p)
		},
		OnScan: func(s watch.ScanStats) {
			c.Log.Info().Int("files", s.Files).Int("media", s.Media).Int("folders", s.Folders).Dur("took", s.Took).Msg("scanned")
		},
	}, candidates)
	in := &intake{c: c, q: q, wake: wake, log: c.Log.With().Str("component", "intake").Logger()}
	b := newBroker()
	cbWake := make(chan struct{}, 1)
	wk := &worker{c: c, q: q, wake: wake, log: c.Log.With().Str("component", "worker").Logger(), broker: b, cbWake: cbWake, gate: gate}
	svc := &service{c: c, q: q, broker: b, wk: wk, wake: wake, uploads: filepath.Join(c.StateDir, UploadFolder),
		log: c.Log.With().Str("component", "api").Logger()}
	wk.svc = svc
	svc.cleanUploads(gctx)
	srv, err := api.New(api.Config{
		Version: c.Version, StateDir: c.StateDir, UploadDir: svc.uploads, MaxUpload: c.MaxUpload,
		MaxDuration: c.MaxDuration, MaxUploads: c.MaxUploads, AllowOrigins: c.AllowOrigins, Log: svc.log,
		Paused: gate.paused,
	}, svc)
	if err != nil {
		return failStart(err)
	}
	for _, l := range listeners {
		h := srv.SocketHandler()
		if !l.socket {
			h = srv.Handler(l.ln.Addr())
		}
		l.api.Store(&h)
	}
	token := func() (string, error) { return api.LoadToken(c.StateDir) }
	g.Go(func() error { return ignoreCancel(w.Run(gctx)) })
	g.Go(func() error { return in.run(gctx, candidates) })
	g.Go(func() error { return wk.run(gctx) })
	if gate != nil {
		g.Go(func() error { gate.run(gctx); return nil })
	}
	g.Go(func() error { return svc.callbacks(gctx, cbWake, token) })
	c.Log.Info().Strs("watch", c.Roots).Str("state", c.StateDir).Str("version", c.Version).Msg("daemon started")
	err = g.Wait()
	c.Log.Info().Msg("daemon stopped")
	return err
}

func ignoreCancel(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// openQueue opens the queue database; a corrupt one is moved aside (the files are the truth:
// the scans queue again what has no current sidecars) and a new one started.
func openQueue(ctx context.Context, c Config) (*queue.SQLite, error) {
	p := filepath.Join(c.StateDir, QueueFile)
	q, err := queue.Open(ctx, p)
	if errors.Is(err, queue.ErrCorrupt) {
		aside := fmt.Sprintf("%s.corrupt-%s", p, time.Now().UTC().Format("20060102T150405Z"))
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(p+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("move the corrupt queue aside: %w", err)
			}
		}
		c.Log.Error().Err(err).Str("moved_to", aside).Msg("the queue database was corrupt: starting a new one; the scans queue again what has no current sidecars")
		q, err = queue.Open(ctx, p)
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// listener is one of the API's listeners: TCP on loopback, or the Unix socket.
type listener struct {
	ln     net.Listener
	socket bool
	api    atomic.Pointer[http.Handler] // the API, once it is ready
}

// starting is the listener's handler: the API once it is ready, before that /healthz alone,
// other routes answering 503.
func (l *listener) starting(version string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := l.api.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/healthz" {
			fmt.Fprintf(w, "{\"status\":\"ok\",\"version\":%q}\n", version)
			return
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"error":{"message":"the daemon is starting","type":"server_error","code":"starting"}}`)
	})
}

// listenLoopback listens on addr, which must be a loopback address: the API is for this
// machine only.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--addr %s: not a loopback address (the API is for this machine only; use 127.0.0.1:PORT)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
