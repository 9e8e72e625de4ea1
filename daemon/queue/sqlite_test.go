package queue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// clock is a settable time for the tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)} }
func job(path, content string) Job {
	return Job{Path: path, Content: content, Settings: "s1", MaxAttempts: 3}
}
func openAt(t testing.TB, p string) *SQLite { return openClock(t, p, nil) }

func openClock(t testing.TB, p string, c *clock) *SQLite {
	t.Helper()
	q, err := Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		q.now = c.now
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "queue.db") }

func TestEnqueueIdempotent(t *testing.T) {
	ctx := t.Context()
	q := openAt(t, dbPath(t))
	a, added, err := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	if err != nil || !added || a.State != Queued || a.ID == 0 {
		t.Fatalf("first enqueue: %+v %v %v", a, added, err)
	}
	b, added, err := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	if err != nil || added || b.ID != a.ID {
		t.Fatalf("second enqueue: %+v %v %v", b, added, err)
	}
	// The file changed before it ran: the queued job is cancelled, a new one queued.
	c, added, err := q.Enqueue(ctx, job("/w/a.wav", "c2"))
	if err != nil || !added || c.ID == a.ID {
		t.Fatalf("changed file: %+v %v %v", c, added, err)
	}
	if old, _ := q.Get(ctx, a.ID); old.State != Cancelled || old.Error == "" {
		t.Errorf("superseded job: %+v", old)
	}
	if j, ok, err := q.Latest(ctx, "/w/a.wav"); err != nil || !ok || j.ID != c.ID {
		t.Errorf("latest: %+v %v %v", j, ok, err)
	}
}

// TestAttemptCountedBeforeWork: a lease is committed with its attempt before Lease returns, so
// a crash right after (the database reopened) finds it counted and running; Recover requeues it.
func TestAttemptCountedBeforeWork(t *testing.T) {
	ctx := t.Context()
	p := dbPath(t)
	q := openAt(t, p)
	a, _, _ := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	b, _, _ := q.Enqueue(ctx, job("/w/b.wav", "c2"))
	got, err := q.Lease(ctx, "w1", time.Minute)
	if err != nil || got.ID != a.ID || got.Attempts != 1 || got.State != Running {
		t.Fatalf("lease: %+v %v (oldest first)", got, err)
	}
	q.Close() // the process dies
	q = openAt(t, p)
	if j, _ := q.Get(ctx, a.ID); j.State != Running || j.Attempts != 1 {
		t.Fatalf("after the crash: %+v", j)
	}
	if n, err := q.Recover(ctx); err != nil || n != 1 {
		t.Fatalf("recover: %d %v", n, err)
	}
	got, _ = q.Lease(ctx, "w2", time.Minute)
	if got.ID != a.ID || got.Attempts != 2 {
		t.Fatalf("lease after recovery: %+v", got)
	}
	if err := q.Complete(ctx, a.ID, "w2"); err != nil {
		t.Fatal(err)
	}
	if got, _ = q.Lease(ctx, "w2", time.Minute); got.ID != b.ID {
		t.Fatalf("next lease: %+v", got)
	}
	if _, err := q.Lease(ctx, "w2", time.Minute); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty queue: %v", err)
	}
	if err := q.Release(ctx, b.ID, "w2"); err != nil {
		t.Fatal(err)
	}
	if j, _ := q.Get(ctx, b.ID); j.State != Queued || j.Attempts != 0 {
		t.Errorf("released: %+v (an attempt stopped by a shutdown does not count)", j)
	}
}

func TestFailRetryAndPermanent(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	q := openClock(t, dbPath(t), c)
	a, _, _ := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	for attempt := 1; attempt <= 3; attempt++ {
		j, err := q.Lease(ctx, "w", time.Minute)
		if err != nil || j.ID != a.ID || j.Attempts != attempt {
			t.Fatalf("attempt %d: %+v %v", attempt, j, err)
		}
		if err := q.Fail(ctx, a.ID, "w", "disk full", false, c.now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		j, _ = q.Get(ctx, a.ID)
		if attempt < 3 {
			if j.State != Queued || j.Error != "disk full" {
				t.Fatalf("after transient failure %d: %+v", attempt, j)
			}
			if _, err := q.Lease(ctx, "w", time.Minute); !errors.Is(err, ErrEmpty) {
				t.Fatalf("leased before the retry time: %v", err)
			}
			c.advance(11 * time.Second)
		} else if j.State != Failed || j.Permanent || j.Error != "disk full" {
			t.Fatalf("out of attempts: %+v", j)
		}
	}
	b, _, _ := q.Enqueue(ctx, job("/w/b.wav", "c2"))
	if _, err := q.Lease(ctx, "w", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, b.ID, "w", "not a media file", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if j, _ := q.Get(ctx, b.ID); j.State != Failed || !j.Permanent || j.Attempts != 1 {
		t.Errorf("permanent failure: %+v", j)
	}
	// A failed job is not queued again for the same content.
	if j, added, _ := q.Enqueue(ctx, job("/w/b.wav", "c2")); added || j.State != Failed {
		t.Errorf("re-enqueue of a failed job: %+v %v", j, added)
	}
	counts, _ := q.Counts(ctx)
	if counts[Failed] != 2 {
		t.Errorf("counts %v", counts)
	}
}

// TestSameKeyWaits: two files with the same content and settings are never transcribed at the
// same time: the second waits for the first, whose result it then reuses.
func TestSameKeyWaits(t *testing.T) {
	ctx := t.Context()
	q := openAt(t, dbPath(t))
	a, _, _ := q.Enqueue(ctx, job("/w/a.wav", "same"))
	b, _, _ := q.Enqueue(ctx, job("/w/copy.wav", "same"))
	if j, _ := q.Lease(ctx, "w", time.Minute); j.ID != a.ID {
		t.Fatalf("first lease %+v", j)
	}
	if _, err := q.Lease(ctx, "w", time.Minute); !errors.Is(err, ErrEmpty) {
		t.Fatalf("the copy was leased while the original ran: %v", err)
	}
	if err := q.StoreResult(ctx, a.Key(), []byte("transcript")); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, a.ID, "w"); err != nil {
		t.Fatal(err)
	}
	j, err := q.Lease(ctx, "w", time.Minute)
	if err != nil || j.ID != b.ID {
		t.Fatalf("the copy: %+v %v", j, err)
	}
	if data, ok, err := q.Result(ctx, j.Key()); err != nil || !ok || string(data) != "transcript" {
		t.Errorf("stored result: %q %v %v", data, ok, err)
	}
	if _, ok, _ := q.Result(ctx, "other/s1"); ok {
		t.Error("a result for a key never stored")
	}
}

// TestLeaseExpiry: a worker that stops heartbeating loses its job to the next lease after the
// ttl; its heartbeat and completion are then refused (ErrLost), and the checkpoint it saved is
// kept for the new attempt (which does not count: the stalled one made progress).
func TestLeaseExpiry(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	q := openClock(t, dbPath(t), c)
	a, _, _ := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	if _, err := q.Lease(ctx, "old", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := q.Heartbeat(ctx, a.ID, "old", time.Minute, Progress{Done: 30, Total: 90, Checkpoint: []byte("cp")}); err != nil {
		t.Fatal(err)
	}
	c.advance(59 * time.Second)
	if _, err := q.Lease(ctx, "new", time.Minute); !errors.Is(err, ErrEmpty) {
		t.Fatalf("leased while the lease holds: %v", err)
	}
	c.advance(2 * time.Second)
	j, err := q.Lease(ctx, "new", time.Minute)
	if err != nil || j.ID != a.ID || j.Attempts != 1 || string(j.Checkpoint) != "cp" || j.Done != 30 || j.AttemptDone != 30 {
		t.Fatalf("stalled job: %+v %v", j, err)
	}
	if err := q.Heartbeat(ctx, a.ID, "old", time.Minute, Progress{}); !errors.Is(err, ErrLost) {
		t.Errorf("old owner's heartbeat: %v", err)
	}
	if err := q.Complete(ctx, a.ID, "old"); !errors.Is(err, ErrLost) {
		t.Errorf("old owner's completion: %v", err)
	}
	if err := q.Complete(ctx, a.ID, "new"); err != nil {
		t.Fatal(err)
	}
	if j, _ := q.Get(ctx, a.ID); j.State != Done || j.Checkpoint != nil {
		t.Errorf("done job: %+v", j)
	}
	if err := q.Requeue(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if j, _ := q.Get(ctx, a.ID); j.State != Queued {
		t.Errorf("requeued: %+v", j)
	}
	if err := q.Complete(ctx, 999, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
}

// TestPoison: a job whose every attempt ends with the process stopping, without progress, fails
// for good after its attempts (a file that crashes the daemon is parked); one whose attempts
// make progress goes on however often the process stops.
func TestPoison(t *testing.T) {
	ctx := t.Context()
	p := dbPath(t)
	q := openAt(t, p)
	poison, _, _ := q.Enqueue(ctx, job("/w/poison.wav", "p"))
	for range 3 {
		if j, err := q.Lease(ctx, "w", time.Minute); err != nil || j.ID != poison.ID {
			t.Fatalf("lease: %+v %v", j, err)
		}
		q.Close() // killed
		q = openAt(t, p)
		q.Recover(ctx)
	}
	if j, _ := q.Get(ctx, poison.ID); j.State != Failed || j.Error != stoppedReason || j.Attempts != 3 {
		t.Fatalf("poison: %+v", j)
	}
	long, _, _ := q.Enqueue(ctx, job("/w/long.wav", "l"))
	for k := range 10 {
		j, err := q.Lease(ctx, "w", time.Minute)
		if err != nil || j.ID != long.ID {
			t.Fatalf("kill %d: %+v %v", k, j, err)
		}
		if err := q.Heartbeat(ctx, j.ID, "w", time.Minute, Progress{Done: float64(10 * (k + 1)), Total: 200, Checkpoint: []byte{byte(k)}}); err != nil {
			t.Fatal(err)
		}
		q.Close()
		q = openAt(t, p)
		q.Recover(ctx)
	}
	if j, _ := q.Get(ctx, long.ID); j.State != Queued || j.Attempts != 0 || j.Done != 100 {
		t.Fatalf("long job after 10 kills with progress: %+v", j)
	}
}

func TestCorruptAndReadOnly(t *testing.T) {
	ctx := t.Context()
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte("this is not a database, just text that goes on for a while.................."), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: %v, want ErrCorrupt", err)
	}
	p := dbPath(t)
	// A reader before the daemon: it neither creates the file nor reads a half-made one.
	if _, err := OpenReadOnly(ctx, p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing queue: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("the read-only open created the queue file")
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil { // sqlite's state before the tables exist
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(ctx, p); !errors.Is(err, ErrNotReady) {
		t.Errorf("read-only open of a queue without tables: %v, want ErrNotReady", err)
	}
	w := openAt(t, p)
	w.Enqueue(ctx, job("/w/a.wav", "c1"))
	r, err := OpenReadOnly(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Enqueue(ctx, job("/w/b.wav", "c2"))
	if c, err := r.Counts(ctx); err != nil || c[Queued] != 2 {
		t.Errorf("reader's counts %v %v", c, err)
	}
	if _, _, err := r.Enqueue(ctx, job("/w/c.wav", "c3")); err == nil {
		t.Error("the read-only handle wrote")
	}
	if err := w.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

// FuzzQueueRecovery drives the queue with operations read from the input: enqueue, lease,
// complete, fail for now or for good, leases expiring, and the daemon's restart after a crash
// (Recover, with the workers' leases gone). After every restart and at the end it checks that
// every job is in exactly one of the states, a running job has an attempt, a failed one is
// permanent or out of attempts, no job had more attempts than its maximum, and the database
// passes its integrity check. The database is in memory (a kill -9 of the real process is the
// stress test's); each input starts from an empty one.
func FuzzQueueRecovery(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 7, 1, 3, 4, 7, 5})
	f.Add([]byte{0, 1, 0, 2, 1, 6, 1, 3, 7, 1, 2, 4, 4, 4})
	f.Add([]byte{0, 0, 0, 1, 1, 1, 5, 5, 7, 6, 2, 2, 2})
	ctx := context.Background()
	q, err := Open(ctx, ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	c := newClock()
	q.now = c.now
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 24 {
			ops = ops[:24] // five paths, three contents: longer runs add little
		}
		if _, err := q.db.ExecContext(ctx, "DELETE FROM callbacks; DELETE FROM idempotency; DELETE FROM jobs; DELETE FROM results"); err != nil {
			t.Fatal(err)
		}
		check := func(step int) {
			jobs, err := q.List(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				switch j.State {
				case Queued, Done, Cancelled:
				case Running:
					if j.Attempts == 0 {
						t.Fatalf("step %d: running job %d without an attempt", step, j.ID)
					}
				case Failed:
					if !j.Permanent && j.Attempts < j.MaxAttempts {
						t.Fatalf("step %d: job %d failed after %d of %d attempts", step, j.ID, j.Attempts, j.MaxAttempts)
					}
				default:
					t.Fatalf("step %d: job %d in state %q", step, j.ID, j.State)
				}
				if j.Attempts > j.MaxAttempts {
					t.Fatalf("step %d: job %d had %d attempts of %d", step, j.ID, j.Attempts, j.MaxAttempts)
				}
			}
		}
		var leased []Job
		for i, op := range ops {
			switch op % 9 {
			case 0:
				q.Enqueue(ctx, job(fmt.Sprintf("/w/%d.wav", i%5), fmt.Sprintf("c%d", i%3)))
			case 1:
				if j, err := q.Lease(ctx, "w", time.Minute); err == nil {
					leased = append(leased, j)
				}
			case 2, 3, 4:
				if len(leased) == 0 {
					continue
				}
				j := leased[0]
				leased = leased[1:]
				switch op % 9 {
				case 2:
					q.Complete(ctx, j.ID, "w")
				case 3:
					q.Fail(ctx, j.ID, "w", "transient", false, c.now())
				case 4:
					q.Fail(ctx, j.ID, "w", "permanent", true, time.Time{})
				}
			case 5:
				c.advance(2 * time.Minute) // leases expire
			case 6:
				if len(leased) > 0 {
					q.Heartbeat(ctx, leased[0].ID, "w", time.Minute, Progress{Done: float64(i), Total: 100})
				}
			case 7: // the daemon restarts after a crash: its leases are gone
				q.Recover(ctx)
				leased = nil
				check(i)
			case 8: // the API cancels a job, running or not
				q.Cancel(ctx, int64(i%7+1), "cancelled")
			}
		}
		check(len(ops))
		if err := q.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
