package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/daemon/watch"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
)

// spec is what a job records of how to run it (queue.Job.Spec): the folder settings its key was
// made from, and the model they named.
type spec struct {
	Model  string        `json:"model"`
	Folder config.Folder `json:"folder"`
}

// intake turns the settled files the watcher hands on into jobs: one per file content and
// settings, so that a file seen again (a rescan, a restart) is not queued again, and one whose
// sidecars went missing is queued to have them written again.
type intake struct {
	c    Config
	q    queue.Queue
	wake chan<- struct{}
	log  zerolog.Logger

	bad map[string]string // folder settings that failed, by their error, logged once
}

func (in *intake) run(ctx context.Context, candidates <-chan watch.Candidate) error {
	in.bad = map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-candidates:
			if err := in.take(ctx, c); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				in.log.Error().Err(err).Str("path", c.Path).Msg("cannot queue this file")
			}
		}
	}
}

// take queues the file c if it needs transcribing.
func (in *intake) take(ctx context.Context, c watch.Candidate) error {
	f := in.c.Tree.Settings(c.Root, c.Path)
	if !f.IsEnabled() || f.Ignored(c.Path) {
		return nil
	}
	opts, model, err := in.c.Options(f)
	if err != nil {
		// A folder's settings the transcription cannot take (an unknown model, say): said once.
		msg := err.Error()
		if in.bad[c.Root] != msg {
			in.bad[c.Root] = msg
			in.log.Error().Err(err).Str("path", c.Path).Msg("the folder's settings cannot be used: its files wait until they are fixed")
		}
		return nil
	}
	modelSHA, err := in.c.ModelHash(ctx, model)
	if err != nil {
		return fmt.Errorf("model %s: %w", model, err)
	}
	key, err := pipeline.SettingsKey(opts, modelSHA, in.c.BackendOptions)
	if err != nil {
		return err
	}
	// Known already (the same file, unchanged, with the same settings: every rescan and restart
	// sees it again): nothing to write unless its outputs went missing.
	if j, ok, err := in.q.Latest(ctx, c.Path); err == nil && ok && j.Size == c.Size && j.ModTime.Equal(c.ModTime) && j.Settings == key {
		if j.State == queue.Done && !outputsExist(c.Path, opts) {
			return in.requeue(ctx, j)
		}
		return nil
	}
	content, err := in.contentHash(ctx, c)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // gone since it settled
		}
		return err
	}
	sp, err := json.Marshal(spec{Model: model, Folder: f})
	if err != nil {
		return err
	}
	j, added, err := in.q.Enqueue(ctx, queue.Job{
		Path: c.Path, Root: c.Root, Content: content, Settings: key, Size: c.Size, ModTime: c.ModTime,
		MaxAttempts: in.c.MaxAttempts, Spec: sp,
	})
	if err != nil {
		return err
	}
	switch {
	case added:
		in.log.Info().Str("path", c.Path).Int64("job", j.ID).Msg("queued")
	case j.State == queue.Done && !outputsExist(c.Path, opts):
		return in.requeue(ctx, j)
	default:
		return nil
	}
	in.wakeWorker()
	return nil
}

// requeue queues done job j again: its sidecars went missing (the worker writes them again from
// the stored result, without transcribing).
func (in *intake) requeue(ctx context.Context, j queue.Job) error {
	if err := in.q.Requeue(ctx, j.ID); err != nil {
		return err
	}
	in.log.Info().Str("path", j.Path).Int64("job", j.ID).Msg("its sidecars are missing: queued again")
	in.wakeWorker()
	return nil
}

func (in *intake) wakeWorker() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// contentHash is the hex SHA-256 of the file's bytes: from the file's last job when its size and
// time are the same, else read.
func (in *intake) contentHash(ctx context.Context, c watch.Candidate) (string, error) {
	if j, ok, err := in.q.Latest(ctx, c.Path); err == nil && ok && j.Size == c.Size && j.ModTime.Equal(c.ModTime) {
		return j.Content, nil
	}
	return hashFile(ctx, c.Path)
}

// hashFile is the hex SHA-256 of the file at p.
func hashFile(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// outputsExist reports whether the sidecars a run with opts writes for input are all there.
func outputsExist(input string, opts pipeline.Options) bool {
	base := pipeline.OutputBase(input, opts.OutDir)
	formats := opts.Formats
	if len(formats) == 0 {
		formats = []sidecar.Format{sidecar.FormatSRT, sidecar.FormatMD}
	}
	for _, f := range append(formats, sidecar.FormatJSON) {
		if _, err := os.Stat(base + "." + string(f)); err != nil {
			return false
		}
	}
	return true
}

// backoff is how long a job waits after its n-th failed attempt: 10 s, doubling, at most 10
// minutes.
func backoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}
