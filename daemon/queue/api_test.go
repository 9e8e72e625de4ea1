package queue

import (
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestOtherSettingsNotCancelled: a job for the same file and content with other settings (the
// API's, say) leaves the queued job of the first settings alone; other content cancels it.
func TestOtherSettingsNotCancelled(t *testing.T) {
	ctx := t.Context()
	q := openAt(t, dbPath(t))
	a, _, _ := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	b := job("/w/a.wav", "c1")
	b.Settings, b.Origin = "s2", OriginAPI
	if _, added, err := q.Enqueue(ctx, b); err != nil || !added {
		t.Fatalf("other settings: %v %v", added, err)
	}
	if j, _ := q.Get(ctx, a.ID); j.State != Queued {
		t.Errorf("the first settings' job: %s", j.State)
	}
}

// TestPriority: higher priority first, then the oldest.
func TestPriority(t *testing.T) {
	ctx := t.Context()
	q := openAt(t, dbPath(t))
	low, _, _ := q.Enqueue(ctx, job("/w/low.wav", "c1"))
	hi := job("/w/hi.wav", "c2")
	hi.Priority = 5
	high, _, _ := q.Enqueue(ctx, hi)
	mid, _, _ := q.Enqueue(ctx, job("/w/mid.wav", "c3"))
	for _, want := range []int64{high.ID, low.ID, mid.ID} {
		j, err := q.Lease(ctx, "w", time.Minute)
		if err != nil || j.ID != want {
			t.Fatalf("leased %d (%v), want %d", j.ID, err, want)
		}
	}
	if j, _ := q.Get(ctx, high.ID); j.Priority != 5 || j.Origin != OriginWatch {
		t.Errorf("job %+v", j)
	}
}

// TestIdempotencyKey: a key given again with the same request returns the first job; with
// another, ErrIdempotencyReused; two keys make two jobs.
func TestIdempotencyKey(t *testing.T) {
	ctx := t.Context()
	q := openAt(t, dbPath(t))
	r := job("/state/uploads/1/a.wav", "c1")
	r.IdempotencyKey, r.Fingerprint, r.Origin = "k1", "f1", OriginAPI
	a, added, err := q.Enqueue(ctx, r)
	if err != nil || !added {
		t.Fatal(added, err)
	}
	again := r
	again.Path = "/state/uploads/2/a.wav" // the retried upload landed elsewhere
	b, added, err := q.Enqueue(ctx, again)
	if err != nil || added || b.ID != a.ID {
		t.Fatalf("same key and request: %+v %v %v", b, added, err)
	}
	other := again
	other.Fingerprint = "f2"
	if _, _, err := q.Enqueue(ctx, other); !errors.Is(err, ErrIdempotencyReused) {
		t.Fatalf("same key, other request: %v", err)
	}
	fresh := again
	fresh.IdempotencyKey = "k2"
	if c, added, err := q.Enqueue(ctx, fresh); err != nil || !added || c.ID == a.ID {
		t.Fatalf("another key: %+v %v %v", c, added, err)
	}
}

// TestCancelRunning: a running job cancelled loses its lease (the worker's result is not
// recorded) and its checkpoint; a done job is left as it is.
func TestCancelRunning(t *testing.T) {
	ctx := t.Context()
	q := openAt(t, dbPath(t))
	a, _, _ := q.Enqueue(ctx, job("/w/a.wav", "c1"))
	if _, err := q.Lease(ctx, "w", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := q.Heartbeat(ctx, a.ID, "w", time.Minute, Progress{Done: 5, Total: 10, Checkpoint: []byte("cp")}); err != nil {
		t.Fatal(err)
	}
	j, err := q.Cancel(ctx, a.ID, "cancelled by the API")
	if err != nil || j.State != Cancelled || j.Checkpoint != nil || j.Error != "cancelled by the API" {
		t.Fatalf("cancel: %+v %v", j, err)
	}
	if err := q.Complete(ctx, a.ID, "w"); !errors.Is(err, ErrLost) {
		t.Errorf("the worker's completion after the cancel: %v", err)
	}
	b, _, _ := q.Enqueue(ctx, job("/w/b.wav", "c2"))
	q.Lease(ctx, "w", time.Minute)
	q.Complete(ctx, b.ID, "w")
	if j, err := q.Cancel(ctx, b.ID, "x"); err != nil || j.State != Done {
		t.Errorf("cancel of a done job: %+v %v", j, err)
	}
	if _, err := q.Cancel(ctx, 999, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
}

// TestCallbacks: a callback is due once its job has ended, until delivered; a failed delivery
// waits for its retry time.
func TestCallbacks(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	q := openClock(t, dbPath(t), c)
	r := job("/w/a.wav", "c1")
	r.Callback = "http://127.0.0.1:9/hook"
	a, _, _ := q.Enqueue(ctx, r)
	q.Enqueue(ctx, job("/w/b.wav", "c2")) // no callback
	due := func() []Callback {
		t.Helper()
		cs, err := q.DueCallbacks(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	if cs := due(); len(cs) != 0 {
		t.Fatalf("due before the job ended: %+v", cs)
	}
	q.Lease(ctx, "w", time.Minute)
	q.Complete(ctx, a.ID, "w")
	cs := due()
	if len(cs) != 1 || cs[0].JobID != a.ID || cs[0].URL != r.Callback || cs[0].Attempts != 0 {
		t.Fatalf("due: %+v", cs)
	}
	if err := q.CallbackDone(ctx, a.ID, false, "connection refused", c.now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if cs := due(); len(cs) != 0 {
		t.Fatalf("due before its retry: %+v", cs)
	}
	c.advance(time.Minute)
	if cs := due(); len(cs) != 1 || cs[0].Attempts != 1 {
		t.Fatalf("due at its retry: %+v", cs)
	}
	q.CallbackDone(ctx, a.ID, true, "", time.Time{})
	if cs := due(); len(cs) != 0 {
		t.Fatalf("due after delivery: %+v", cs)
	}
	st, ok, err := q.CallbackOf(ctx, a.ID)
	if err != nil || !ok || !st.Delivered || st.Attempts != 2 {
		t.Errorf("callback state: %+v %v %v", st, ok, err)
	}
	// A callback given up is not due again.
	r2 := job("/w/c.wav", "c3")
	r2.Callback = "http://127.0.0.1:9/hook"
	b, _, _ := q.Enqueue(ctx, r2)
	q.Lease(ctx, "w", time.Minute)
	q.Complete(ctx, b.ID, "w")
	q.CallbackDone(ctx, b.ID, false, "refused", time.Time{})
	if cs := due(); len(cs) != 0 {
		t.Fatalf("due after giving up: %+v", cs)
	}
	if st, _, _ := q.CallbackOf(ctx, b.ID); !st.GaveUp || st.Delivered || st.Error != "refused" {
		t.Errorf("given up: %+v", st)
	}
}

// TestMigrateFromVersion1: a database made by the first schema opens, is upgraded in place,
// and keeps its jobs.
func TestMigrateFromVersion1(t *testing.T) {
	p := dbPath(t)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
		"INSERT INTO meta VALUES ('schema', '1')",
		`CREATE TABLE jobs (id INTEGER PRIMARY KEY, path TEXT NOT NULL, root TEXT NOT NULL DEFAULT '', content TEXT NOT NULL,
			settings TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, mtime INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 3, next_at INTEGER NOT NULL DEFAULT 0,
			error TEXT NOT NULL DEFAULT '', permanent INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '',
			lease_until INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, updated INTEGER NOT NULL,
			started INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, done_s REAL NOT NULL DEFAULT 0,
			total_s REAL NOT NULL DEFAULT 0, attempt_done REAL NOT NULL DEFAULT 0, checkpoint BLOB, spec BLOB,
			UNIQUE (path, content, settings))`,
		"CREATE TABLE results (key TEXT PRIMARY KEY, data BLOB NOT NULL, created INTEGER NOT NULL)",
		"INSERT INTO jobs (path, content, settings, state, created, updated) VALUES ('/w/old.wav', 'c0', 's1', 'queued', 1, 1)",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	q := openAt(t, p)
	j, err := q.Lease(t.Context(), "w", time.Minute)
	if err != nil || j.Path != "/w/old.wav" || j.Origin != OriginWatch || j.Priority != 0 {
		t.Fatalf("the old job after the upgrade: %+v %v", j, err)
	}
	var v string
	q.db.QueryRow("SELECT v FROM meta WHERE k = 'schema'").Scan(&v)
	if v != "2" {
		t.Errorf("schema version %s after opening", v)
	}
	q.Close()
	// Opened again: nothing to do.
	openAt(t, p)
}
