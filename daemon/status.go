package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/daemon/queue"
)

// Status is the state of a daemon's queue, for `transcribe status`.
type Status struct {
	StateDir string `json:"state_dir"`
	// Running says whether a daemon holds the state folder now, and its process id.
	Running bool   `json:"running"`
	PID     string `json:"pid,omitempty"`
	// Paused says why the running daemon's queue is paused ("on battery"; "" when it is not),
	// and PausedSince since when: no job starts until the condition ends.
	Paused      string              `json:"paused,omitempty"`
	PausedSince *time.Time          `json:"paused_since,omitempty"`
	Counts      map[queue.State]int `json:"counts"`
	// Current are the jobs in progress; Failures the last ones that failed for good, newest
	// first; Waiting the transient failures waiting for a retry.
	Current  []queue.Job `json:"current"`
	Failures []queue.Job `json:"failures"`
	Waiting  []queue.Job `json:"waiting"`
}

// ErrNoQueue: no daemon has run with that state folder.
var ErrNoQueue = errors.New("no daemon has run with this state folder")

// ReadStatus reads the status of the daemon with state folder dir, without disturbing it, with
// at most failures of its last failures.
func ReadStatus(ctx context.Context, dir string, failures int) (*Status, error) {
	p := filepath.Join(dir, QueueFile)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoQueue)
	}
	q, err := queue.OpenReadOnly(ctx, p)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	s := &Status{StateDir: dir}
	s.Running, s.PID = held(dir)
	if p, ok := readPause(dir); ok && s.Running {
		s.Paused, s.PausedSince = p.Reason, &p.Since
	}
	if s.Counts, err = q.Counts(ctx); err != nil {
		return nil, err
	}
	if s.Current, err = q.List(ctx, queue.Filter{States: []queue.State{queue.Running}}); err != nil {
		return nil, err
	}
	if s.Failures, err = q.List(ctx, queue.Filter{States: []queue.State{queue.Failed}, Limit: failures}); err != nil {
		return nil, err
	}
	queued, err := q.List(ctx, queue.Filter{States: []queue.State{queue.Queued}})
	if err != nil {
		return nil, err
	}
	for _, j := range queued {
		if j.Error != "" {
			s.Waiting = append(s.Waiting, j)
		}
	}
	return s, nil
}

// held reports whether a daemon holds the state folder's lock, and the process id it wrote.
func held(dir string) (bool, string) {
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil {
		return false, ""
	}
	unlock, err := lockState(dir)
	if err == nil {
		unlock()
		return false, ""
	}
	return true, strings.TrimSpace(string(b))
}

// Write prints the status for people: the counts, each job in progress with its percent and
// estimated time left, the retries waiting and the last failures with their reasons.
func (s *Status) Write(w io.Writer, now time.Time) {
	if s.Running {
		fmt.Fprintf(w, "daemon: running (process %s), state %s\n", s.PID, s.StateDir)
	} else {
		fmt.Fprintf(w, "daemon: not running, state %s\n", s.StateDir)
	}
	if s.Paused != "" {
		since := ""
		if s.PausedSince != nil {
			since = " since " + s.PausedSince.Local().Format("15:04")
		}
		fmt.Fprintf(w, "queue: paused: %s%s (no job starts until it ends)\n", s.Paused, since)
	}
	fmt.Fprintf(w, "jobs: %d queued, %d running, %d done, %d failed, %d cancelled\n",
		s.Counts[queue.Queued], s.Counts[queue.Running], s.Counts[queue.Done], s.Counts[queue.Failed], s.Counts[queue.Cancelled])
	for _, j := range s.Current {
		fmt.Fprintf(w, "now: %s  %s (attempt %d of %d)\n", j.Path, progress(j, now), j.Attempts, j.MaxAttempts)
	}
	for _, j := range s.Waiting {
		fmt.Fprintf(w, "retry: %s at %s (attempt %d of %d failed: %s)\n", j.Path, j.NextAt.Local().Format("15:04:05"),
			j.Attempts, j.MaxAttempts, j.Error)
	}
	for _, j := range s.Failures {
		fmt.Fprintf(w, "failed: %s (%s, after %d attempt(s)): %s\n", j.Path, j.Finished.Local().Format("2006-01-02 15:04"),
			j.Attempts, j.Error)
	}
}

// progress is a running job's percent and estimated time left, from the audio done since its
// attempt started (not what an earlier attempt did, when it resumed from a checkpoint).
func progress(j queue.Job, now time.Time) string {
	if j.Total <= 0 {
		return "starting"
	}
	pct := 100 * j.Done / j.Total
	elapsed := now.Sub(j.Started).Seconds()
	rate := (j.Done - j.AttemptDone) / elapsed // audio seconds an elapsed second, in this attempt
	if rate <= 0 || elapsed <= 0 {
		return fmt.Sprintf("%.0f%%", pct)
	}
	left := time.Duration((j.Total - j.Done) / rate * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("%.0f%%, about %s left", pct, left)
}
