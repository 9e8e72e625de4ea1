package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/pipeline"
)

func TestBackoff(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

// TestDefinitive: only a file that is gone (or is not a file) fails at once; a file there that
// cannot be decoded, and any other error, is tried again.
func TestDefinitive(t *testing.T) {
	dir := t.TempDir()
	there := filepath.Join(dir, "a.wav")
	if err := os.WriteFile(there, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := fmt.Errorf("%w: %s: invalid data", pipeline.ErrPermanent, there)
	for _, c := range []struct {
		path string
		err  error
		want bool
	}{
		{there, corrupt, false},
		{filepath.Join(dir, "gone.wav"), corrupt, true},
		{dir, corrupt, true},
		{there, errors.New("write a.srt: no space left on device"), false},
		{filepath.Join(dir, "gone.wav"), errors.New("transient"), false},
	} {
		if got := definitive(c.path, c.err); got != c.want {
			t.Errorf("definitive(%s, %v) = %v, want %v", c.path, c.err, got, c.want)
		}
	}
}

// TestStatusWrite: the counts, each job in progress with its percent and time left (from the
// audio done since its attempt started), the retries and the failures with their reasons.
func TestStatusWrite(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s := &Status{
		StateDir: "/s", Running: true, PID: "42",
		Counts: map[queue.State]int{queue.Queued: 2, queue.Running: 3, queue.Done: 7, queue.Failed: 1},
		Current: []queue.Job{
			{Path: "/w/long.wav", Attempts: 1, MaxAttempts: 3, Started: now.Add(-time.Minute), Done: 600, Total: 1800},
			{Path: "/w/new.wav", Attempts: 2, MaxAttempts: 3, Started: now},
			// Resumed at 20 minutes, 5 more done in a minute: 5 minutes of audio a minute.
			{Path: "/w/resumed.wav", Attempts: 2, MaxAttempts: 3, Started: now.Add(-time.Minute), AttemptDone: 1200, Done: 1500, Total: 3000},
		},
		Waiting:  []queue.Job{{Path: "/w/x.wav", Attempts: 1, MaxAttempts: 3, NextAt: now.Add(time.Minute), Error: "disk full"}},
		Failures: []queue.Job{{Path: "/w/bad.m4a", Attempts: 3, Finished: now, Error: "/w/bad.m4a: moov atom not found"}},
	}
	var b bytes.Buffer
	s.Write(&b, now)
	out := b.String()
	for _, want := range []string{
		"daemon: running (process 42), state /s\n",
		"jobs: 2 queued, 3 running, 7 done, 1 failed, 0 cancelled\n",
		"now: /w/long.wav  33%, about 2m0s left (attempt 1 of 3)\n",
		"now: /w/new.wav  starting (attempt 2 of 3)\n",
		"now: /w/resumed.wav  50%, about 5m0s left (attempt 2 of 3)\n",
		"(attempt 1 of 3 failed: disk full)\n",
		"failed: /w/bad.m4a (", "after 3 attempt(s)): /w/bad.m4a: moov atom not found\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
