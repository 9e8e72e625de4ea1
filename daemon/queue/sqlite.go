package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite", pure Go
)

// stoppedReason is the failure of a job whose every attempt ended with the process stopping
// (a crash, a kill, a hang) before it made progress: a file that crashes the daemon is parked
// rather than crashing it again and again.
const stoppedReason = "the daemon stopped during each attempt, without progress (a crash, a kill or a hang)"

// ErrCorrupt is returned by Open when the database fails SQLite's integrity check.
var ErrCorrupt = errors.New("queue: database is corrupt")

// SQLite is the Queue in one SQLite file (modernc.org/sqlite, no cgo) in WAL mode with
// synchronous FULL (and F_FULLFSYNC on macOS): a committed change survives a crash of the
// process and a power loss. One process writes (the daemon); others may read (status).
type SQLite struct {
	db  *sql.DB
	now func() time.Time
}

var _ Queue = (*SQLite)(nil)

// schemaVersion is the version of the tables below; Open upgrades an older database (migrate)
// and refuses a newer one.
const schemaVersion = 2

const schema = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
	id           INTEGER PRIMARY KEY,
	path         TEXT NOT NULL,
	root         TEXT NOT NULL DEFAULT '',
	content      TEXT NOT NULL,
	settings     TEXT NOT NULL,
	size         INTEGER NOT NULL DEFAULT 0,
	mtime        INTEGER NOT NULL DEFAULT 0,
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL DEFAULT 3,
	next_at      INTEGER NOT NULL DEFAULT 0,
	error        TEXT NOT NULL DEFAULT '',
	permanent    INTEGER NOT NULL DEFAULT 0,
	owner        TEXT NOT NULL DEFAULT '',
	lease_until  INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	started      INTEGER NOT NULL DEFAULT 0,
	finished     INTEGER NOT NULL DEFAULT 0,
	done_s       REAL NOT NULL DEFAULT 0,
	total_s      REAL NOT NULL DEFAULT 0,
	attempt_done REAL NOT NULL DEFAULT 0,
	checkpoint   BLOB,
	spec         BLOB,
	priority     INTEGER NOT NULL DEFAULT 0,
	origin       TEXT NOT NULL DEFAULT 'watch',
	UNIQUE (path, content, settings)
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, next_at, id);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs (content, settings, state);
CREATE TABLE IF NOT EXISTS results (
	key     TEXT PRIMARY KEY,
	data    BLOB NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
	job_id    INTEGER PRIMARY KEY REFERENCES jobs (id),
	url       TEXT NOT NULL,
	attempts  INTEGER NOT NULL DEFAULT 0,
	next_at   INTEGER NOT NULL DEFAULT 0,
	delivered INTEGER NOT NULL DEFAULT 0,
	error     TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS idempotency (
	key         TEXT PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	job_id      INTEGER NOT NULL REFERENCES jobs (id),
	created     INTEGER NOT NULL
);
`

// migrations bring a database of version i+1 to version i+2.
var migrations = []string{
	// 1 -> 2: job priorities and origins (the API's jobs); callbacks and idempotency keys come
	// with the schema's CREATE TABLE IF NOT EXISTS.
	`ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
	 ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT 'watch';`,
}

// Open opens (creating it if needed) the queue database at path. It checks the file's
// integrity (ErrCorrupt) and refuses a database of a newer schema.
func Open(ctx context.Context, path string) (*SQLite, error) {
	return open(ctx, path, false)
}

// OpenReadOnly opens an existing queue database for reading only (the status command), while
// the daemon may be writing it. It never creates the file: a missing one is an error wrapping
// fs.ErrNotExist, and one whose tables the daemon has not made yet wraps ErrNotReady.
func OpenReadOnly(ctx context.Context, path string) (*SQLite, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return open(ctx, path, true)
}

// ErrNotReady: the database exists but its tables are not made yet (the daemon is starting).
var ErrNotReady = errors.New("the queue is not ready yet: the daemon is making it")

func open(ctx context.Context, path string, readOnly bool) (*SQLite, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "fullfsync(ON)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; statements are short
	s := &SQLite{db: db, now: time.Now}
	if err := s.init(ctx, readOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) init(ctx context.Context, readOnly bool) error {
	var check string
	if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil {
		if strings.Contains(err.Error(), "not a database") || strings.Contains(err.Error(), "malformed") {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return err
	}
	if check != "ok" {
		return fmt.Errorf("%w: %s", ErrCorrupt, check)
	}
	if readOnly {
		// The tables and their version are made in one transaction: no version, no tables yet.
		var v string
		if err := s.db.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'schema'").Scan(&v); err != nil {
			if errors.Is(err, sql.ErrNoRows) || strings.Contains(err.Error(), "no such table") {
				return ErrNotReady
			}
			return err
		}
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n > schemaVersion {
			return fmt.Errorf("schema version %q: newer than this program's %d or not one it knows", v, schemaVersion)
		}
		return nil
	}
	// A new database gets its tables and their version at once, so that a reader (the status
	// command) sees either nothing or all of it.
	var v string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
		err := tx.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'schema'").Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			v = fmt.Sprint(schemaVersion)
			_, err = tx.ExecContext(ctx, "INSERT INTO meta (k, v) VALUES ('schema', ?)", v)
		}
		return err
	})
	if err != nil {
		return err
	}
	return s.migrate(ctx, v)
}

// migrate upgrades a database of version v to schemaVersion, one migration at a time, each in
// a transaction with its version's record.
func (s *SQLite) migrate(ctx context.Context, v string) error {
	var n int
	if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
		return fmt.Errorf("schema version %q: not one this program knows", v)
	}
	if n > schemaVersion {
		return fmt.Errorf("schema version %d, newer than this program's %d: a newer Verbatim made it", n, schemaVersion)
	}
	for ; n < schemaVersion; n++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[n-1]); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", n, n+1, err)
			}
			_, err := tx.ExecContext(ctx, "UPDATE meta SET v = ? WHERE k = 'schema'", fmt.Sprint(n+1))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// IntegrityCheck runs SQLite's full integrity check and returns its first complaint, or nil.
func (s *SQLite) IntegrityCheck(ctx context.Context) error {
	var r string
	if err := s.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&r); err != nil {
		return err
	}
	if r != "ok" {
		return fmt.Errorf("%w: %s", ErrCorrupt, r)
	}
	return nil
}

// Close closes the database.
func (s *SQLite) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

const jobColumns = `id, path, root, content, settings, size, mtime, state, attempts, max_attempts, next_at,
	error, permanent, created, updated, started, finished, done_s, total_s, attempt_done, checkpoint, spec, priority, origin`

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

type scanner interface{ Scan(...any) error }

func scanJob(r scanner) (Job, error) {
	var j Job
	var mtime, next, created, updated, started, finished int64
	var perm int
	var state string
	err := r.Scan(&j.ID, &j.Path, &j.Root, &j.Content, &j.Settings, &j.Size, &mtime, &state, &j.Attempts,
		&j.MaxAttempts, &next, &j.Error, &perm, &created, &updated, &started, &finished, &j.Done, &j.Total, &j.AttemptDone, &j.Checkpoint, &j.Spec, &j.Priority, &j.Origin)
	if err != nil {
		return Job{}, err
	}
	j.State, j.Permanent = State(state), perm != 0
	j.ModTime, j.NextAt, j.Created, j.Updated = fromNS(mtime), fromNS(next), fromNS(created), fromNS(updated)
	j.Started, j.Finished = fromNS(started), fromNS(finished)
	return j, nil
}

// tx runs f in a write transaction.
func (s *SQLite) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue: commit: %w", err)
	}
	return nil
}

func getJob(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id int64) (Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return j, err
}

// Enqueue implements Queue.
func (s *SQLite) Enqueue(ctx context.Context, j Job) (Job, bool, error) {
	now := ns(s.now())
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = 3
	}
	if j.Origin == "" {
		j.Origin = OriginWatch
	}
	var out Job
	added := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if j.IdempotencyKey != "" {
			var fp string
			var id int64
			err := tx.QueryRowContext(ctx, "SELECT fingerprint, job_id FROM idempotency WHERE key = ?", j.IdempotencyKey).Scan(&fp, &id)
			switch {
			case err == nil && fp != j.Fingerprint:
				return ErrIdempotencyReused
			case err == nil:
				out, err = getJob(ctx, tx, id)
				return err
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		row := tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE path = ? AND content = ? AND settings = ?",
			j.Path, j.Content, j.Settings)
		existing, err := scanJob(row)
		switch {
		case err == nil:
			out = existing
		case !errors.Is(err, sql.ErrNoRows):
			return err
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', error = 'the file changed before it was transcribed',
				finished = ?, updated = ? WHERE path = ? AND content != ? AND state = 'queued'`, now, now, j.Path, j.Content); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO jobs (path, root, content, settings, size, mtime, state, max_attempts,
				created, updated, spec, priority, origin) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)`,
				j.Path, j.Root, j.Content, j.Settings, j.Size, ns(j.ModTime), j.MaxAttempts, now, now, j.Spec, j.Priority, j.Origin)
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if j.Callback != "" {
				if _, err := tx.ExecContext(ctx, "INSERT INTO callbacks (job_id, url) VALUES (?, ?)", id, j.Callback); err != nil {
					return err
				}
			}
			added = true
			if out, err = getJob(ctx, tx, id); err != nil {
				return err
			}
		}
		if j.IdempotencyKey != "" {
			_, err := tx.ExecContext(ctx, "INSERT INTO idempotency (key, fingerprint, job_id, created) VALUES (?, ?, ?, ?)",
				j.IdempotencyKey, j.Fingerprint, out.ID, now)
			return err
		}
		return nil
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("enqueue %s: %w", j.Path, err)
	}
	return out, added, nil
}

// Requeue implements Queue.
func (s *SQLite) Requeue(ctx context.Context, id int64) error {
	now := ns(s.now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getJob(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'queued', next_at = 0, finished = 0, updated = ?
			WHERE id = ? AND state = 'done'`, now, id)
		return err
	})
}

// Lease implements Queue.
func (s *SQLite) Lease(ctx context.Context, owner string, ttl time.Duration) (Job, error) {
	t := s.now()
	now := ns(t)
	var out Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// A stalled job (its worker stopped heartbeating) out of attempts, without progress in
		// its last one, fails for good rather than stall the queue again.
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'failed', owner = '', lease_until = 0, error = ?,
			finished = ?1, updated = ?1 WHERE state = 'running' AND lease_until < ?1 AND attempts >= max_attempts
			AND done_s <= attempt_done`, now, stoppedReason); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT j.id FROM jobs j
			WHERE ((j.state = 'queued' AND j.next_at <= ?1) OR (j.state = 'running' AND j.lease_until < ?1))
			  AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state = 'running' AND r.lease_until >= ?1
			                  AND r.content = j.content AND r.settings = j.settings AND r.id != j.id)
			ORDER BY j.priority DESC, j.id LIMIT 1`, now).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrEmpty
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'running', owner = ?, lease_until = ?,
			attempts = CASE WHEN state = 'running' AND done_s > attempt_done THEN attempts ELSE attempts + 1 END,
			attempt_done = done_s, started = ?, updated = ? WHERE id = ?`, owner, ns(t.Add(ttl)), now, now, id); err != nil {
			return err
		}
		out, err = getJob(ctx, tx, id)
		return err
	})
	if errors.Is(err, ErrEmpty) {
		return Job{}, ErrEmpty
	}
	if err != nil {
		return Job{}, fmt.Errorf("lease: %w", err)
	}
	return out, nil
}

// running runs f on job id if it is running under owner's lease, else returns ErrLost.
func (s *SQLite) running(ctx context.Context, what string, id int64, owner string, f func(tx *sql.Tx, j Job) error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state, o string
		err := tx.QueryRowContext(ctx, "SELECT state, owner FROM jobs WHERE id = ?", id).Scan(&state, &o)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if state != string(Running) || o != owner {
			return ErrLost
		}
		j, err := getJob(ctx, tx, id)
		if err != nil {
			return err
		}
		return f(tx, j)
	})
	if err != nil {
		return fmt.Errorf("%s job %d: %w", what, id, err)
	}
	return nil
}

// Heartbeat implements Queue.
func (s *SQLite) Heartbeat(ctx context.Context, id int64, owner string, ttl time.Duration, p Progress) error {
	t := s.now()
	return s.running(ctx, "heartbeat", id, owner, func(tx *sql.Tx, _ Job) error {
		if p.Checkpoint != nil { // an empty one clears it
			_, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ?, updated = ?, done_s = ?, total_s = ?, checkpoint = ?
				WHERE id = ?`, ns(t.Add(ttl)), ns(t), p.Done, p.Total, p.Checkpoint, id)
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ?, updated = ?, done_s = ?, total_s = ? WHERE id = ?`,
			ns(t.Add(ttl)), ns(t), p.Done, p.Total, id)
		return err
	})
}

// Complete implements Queue.
func (s *SQLite) Complete(ctx context.Context, id int64, owner string) error {
	now := ns(s.now())
	return s.running(ctx, "complete", id, owner, func(tx *sql.Tx, _ Job) error {
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'done', owner = '', lease_until = 0, error = '',
			permanent = 0, finished = ?, updated = ?, done_s = total_s, checkpoint = NULL WHERE id = ?`, now, now, id)
		return err
	})
}

// Fail implements Queue.
func (s *SQLite) Fail(ctx context.Context, id int64, owner, reason string, permanent bool, retryAt time.Time) error {
	now := ns(s.now())
	return s.running(ctx, "fail", id, owner, func(tx *sql.Tx, j Job) error {
		if permanent || j.Attempts >= j.MaxAttempts {
			_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'failed', owner = '', lease_until = 0, error = ?,
				permanent = ?, finished = ?, updated = ? WHERE id = ?`, reason, permanent, now, now, id)
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'queued', owner = '', lease_until = 0, error = ?,
			next_at = ?, updated = ? WHERE id = ?`, reason, ns(retryAt), now, id)
		return err
	})
}

// Release implements Queue.
func (s *SQLite) Release(ctx context.Context, id int64, owner string) error {
	now := ns(s.now())
	return s.running(ctx, "release", id, owner, func(tx *sql.Tx, _ Job) error {
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'queued', owner = '', lease_until = 0,
			attempts = max(attempts - 1, 0), updated = ? WHERE id = ?`, now, id)
		return err
	})
}

// Cancel implements Queue.
func (s *SQLite) Cancel(ctx context.Context, id int64, reason string) (Job, error) {
	now := ns(s.now())
	var out Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getJob(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', error = ?, finished = ?, updated = ?,
			owner = '', lease_until = 0, checkpoint = NULL WHERE id = ? AND state IN ('queued', 'running')`, reason, now, now, id); err != nil {
			return err
		}
		var err error
		out, err = getJob(ctx, tx, id)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	return out, nil
}

// DueCallbacks implements Queue.
func (s *SQLite) DueCallbacks(ctx context.Context, limit int) ([]Callback, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.job_id, c.url, c.attempts FROM callbacks c JOIN jobs j ON j.id = c.job_id
		WHERE c.delivered = 0 AND c.next_at <= ? AND j.state IN ('done', 'failed', 'cancelled')
		ORDER BY c.next_at, c.job_id LIMIT ?`, ns(s.now()), limit)
	if err != nil {
		return nil, fmt.Errorf("due callbacks: %w", err)
	}
	defer rows.Close()
	var out []Callback
	for rows.Next() {
		var c Callback
		if err := rows.Scan(&c.JobID, &c.URL, &c.Attempts); err != nil {
			return nil, fmt.Errorf("due callbacks: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Callback delivery states (callbacks.delivered).
const (
	callbackPending   = 0
	callbackDelivered = 1
	callbackGaveUp    = 2
)

// CallbackDone implements Queue.
func (s *SQLite) CallbackDone(ctx context.Context, jobID int64, delivered bool, reason string, retryAt time.Time) error {
	state := callbackPending
	switch {
	case delivered:
		state = callbackDelivered
	case retryAt.IsZero():
		state = callbackGaveUp
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE callbacks SET attempts = attempts + 1, delivered = ?, error = ?, next_at = ?
			WHERE job_id = ?`, state, reason, ns(retryAt), jobID)
		return err
	})
}

// CallbackOf implements Queue.
func (s *SQLite) CallbackOf(ctx context.Context, jobID int64) (CallbackState, bool, error) {
	var c CallbackState
	var delivered int
	err := s.db.QueryRowContext(ctx, "SELECT url, attempts, delivered, error FROM callbacks WHERE job_id = ?", jobID).
		Scan(&c.URL, &c.Attempts, &delivered, &c.Error)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("callback of job %d: %w", jobID, err)
	}
	c.Delivered, c.GaveUp = delivered == callbackDelivered, delivered == callbackGaveUp
	return c, true, nil
}

// Recover implements Queue.
func (s *SQLite) Recover(ctx context.Context) (int, error) {
	now := ns(s.now())
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'failed', owner = '', lease_until = 0, error = ?2,
			finished = ?1, updated = ?1 WHERE state = 'running' AND attempts >= max_attempts AND done_s <= attempt_done`,
			now, stoppedReason); err != nil {
			return err
		}
		// An attempt that got somewhere (a checkpoint past where it started) does not count.
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'queued', owner = '', lease_until = 0, updated = ?,
			attempts = CASE WHEN done_s > attempt_done THEN max(attempts - 1, 0) ELSE attempts END
			WHERE state = 'running'`, now)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("recover: %w", err)
	}
	return int(n), nil
}

// Get implements Queue.
func (s *SQLite) Get(ctx context.Context, id int64) (Job, error) {
	return getJob(ctx, s.db, id)
}

// Latest implements Queue.
func (s *SQLite) Latest(ctx context.Context, path string) (Job, bool, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE path = ? ORDER BY id DESC LIMIT 1", path))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("latest job of %s: %w", path, err)
	}
	return j, true, nil
}

// List implements Queue.
func (s *SQLite) List(ctx context.Context, f Filter) ([]Job, error) {
	q := "SELECT " + jobColumns + " FROM jobs WHERE 1"
	var args []any
	if len(f.States) > 0 {
		q += " AND state IN (" + strings.TrimSuffix(strings.Repeat("?,", len(f.States)), ",") + ")"
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if f.Origin != "" {
		q += " AND origin = ?"
		args = append(args, f.Origin)
	}
	q += " ORDER BY updated DESC, id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Counts implements Queue.
func (s *SQLite) Counts(ctx context.Context) (map[State]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT state, count(*) FROM jobs GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		out[State(st)] = n
	}
	return out, rows.Err()
}

// StoreResult implements Queue.
func (s *SQLite) StoreResult(ctx context.Context, key string, data []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO results (key, data, created) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET data = excluded.data, created = excluded.created`, key, data, ns(s.now()))
		return err
	})
}

// Result implements Queue.
func (s *SQLite) Result(ctx context.Context, key string) ([]byte, bool, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, "SELECT data FROM results WHERE key = ?", key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("result %s: %w", key, err)
	}
	return data, true, nil
}
