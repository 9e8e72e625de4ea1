// Package daemon is Verbatim's long-running service: it watches folders, keeps a durable queue
// of the files to transcribe, and transcribes them one batch at a time with the pipeline,
// writing the sidecars beside each file. It is made of parts that each run until the context
// ends (the HTTP listener, the watcher, the intake that turns settled files into jobs, and the
// worker), supervised together: the first to fail stops the others.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/daemon/watch"
	"github.com/verbatimhq/verbatim/pipeline"
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

	// The listener answers /healthz from the first second, before the queue and the scans.
	var ln net.Listener
	if c.Addr != "" {
		if ln, err = net.Listen("tcp", c.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", c.Addr, err)
		}
		c.Log.Info().Str("addr", ln.Addr().String()).Msg("listening")
	}
	g, gctx := errgroup.WithContext(ctx)
	if ln != nil {
		srv := &http.Server{Handler: handler(c.Version), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}

	q, err := openQueue(gctx, c)
	if err != nil {
		cancelAndWait(g, ln)
		return err
	}
	defer q.Close()
	if n, err := q.Recover(gctx); err != nil {
		cancelAndWait(g, ln)
		return err
	} else if n > 0 {
		c.Log.Info().Int("jobs", n).Msg("jobs that were running when the daemon stopped are queued again")
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
	wk := &worker{c: c, q: q, wake: wake, log: c.Log.With().Str("component", "worker").Logger()}
	g.Go(func() error { return ignoreCancel(w.Run(gctx)) })
	g.Go(func() error { return in.run(gctx, candidates) })
	g.Go(func() error { return wk.run(gctx) })
	c.Log.Info().Strs("watch", c.Roots).Str("state", c.StateDir).Str("version", c.Version).Msg("daemon started")
	err = g.Wait()
	c.Log.Info().Msg("daemon stopped")
	return err
}

// cancelAndWait stops the listener started before a failure.
func cancelAndWait(g *errgroup.Group, ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
	g.Wait()
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

// handler is the HTTP API of this version: /healthz.
func handler(version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"status\":\"ok\",\"version\":%q}\n", version)
	})
	return mux
}
