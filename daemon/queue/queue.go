// Package queue keeps the daemon's jobs durably: one job per file content and settings, each
// leased by a worker, retried with backoff or failed for good, and the finished transcriptions
// by content and settings, so that a copy of a file is never transcribed twice. The daemon
// talks to it through Queue; SQLite (Open) is the implementation for one machine.
package queue

import (
	"context"
	"errors"
	"time"
)

// State is where a job is.
type State string

// The states of a job. A job is queued until a worker leases it (running); it ends done, failed
// (for good: its reason kept, not retried until the file changes) or cancelled (the file changed
// or went away before it ran).
const (
	Queued    State = "queued"
	Running   State = "running"
	Done      State = "done"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Job is one file's transcription.
type Job struct {
	ID int64 `json:"id"`
	// Path is the file, Root the watched folder it was found in.
	Path string `json:"path"`
	Root string `json:"root"`
	// Content is the hex SHA-256 of the file's bytes; Settings the fingerprint of everything
	// besides them that decides the outputs (model, decoding, formats). Together they are the
	// job's Key.
	Content  string    `json:"content"`
	Settings string    `json:"settings"`
	Size     int64     `json:"size"`
	ModTime  time.Time `json:"mtime"`
	// Spec is what the daemon needs to run the job (the settings its key was made from), as it
	// gave it to Enqueue.
	Spec []byte `json:"-"`

	State State `json:"state"`
	// Attempts is how many times a worker leased the job; a lease counts before the work
	// starts, so a crash during the work counts too. MaxAttempts is when it fails for good.
	Attempts    int `json:"attempts"`
	MaxAttempts int `json:"max_attempts"`
	// NextAt is when a queued job may be leased again (after a transient failure).
	NextAt time.Time `json:"next_at,omitzero"`
	// Error is the last failure's reason; Permanent says retrying cannot fix it.
	Error     string `json:"error,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`

	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Started  time.Time `json:"started,omitzero"`  // the current or last attempt's start
	Finished time.Time `json:"finished,omitzero"` // when it ended (done, failed, cancelled)
	// Done and Total are the audio transcribed and the audio in the file, in seconds, as the
	// worker last reported them (Heartbeat).
	Done  float64 `json:"done_s"`
	Total float64 `json:"total_s"`
	// AttemptDone is Done when the current or last attempt started (resumed from a checkpoint:
	// where it resumed).
	AttemptDone float64 `json:"attempt_done_s"`
	// Priority orders the queued jobs: higher first, then the oldest.
	Priority int `json:"priority"`
	// Origin says who made the job: OriginWatch (a watched folder) or OriginAPI.
	Origin string `json:"origin"`

	// Given to Enqueue only. Callback is a URL to POST to when the job ends (DueCallbacks).
	// IdempotencyKey, if set, makes Enqueue return the job it made for that key before, when
	// Fingerprint (what the request asked for) is the same, and fail with ErrIdempotencyReused
	// when it is not.
	Callback       string `json:"-"`
	IdempotencyKey string `json:"-"`
	Fingerprint    string `json:"-"`
	// Checkpoint is the transcription's last checkpoint (whisper.Checkpoint's binary form), from
	// which a later attempt resumes; nil when there is none.
	Checkpoint []byte `json:"-"`
}

// Origins of jobs.
const (
	OriginWatch = "watch"
	OriginAPI   = "api"
)

// Callback is a job's callback due to be delivered.
type Callback struct {
	JobID    int64
	URL      string
	Attempts int // the deliveries tried before
}

// CallbackState is where a job's callback stands.
type CallbackState struct {
	URL       string `json:"url"`
	Attempts  int    `json:"attempts"`
	Delivered bool   `json:"delivered"`
	GaveUp    bool   `json:"gave_up,omitempty"` // no more attempts will be made
	Error     string `json:"error,omitempty"`   // the last failed delivery's reason
}

// Key is the job's content and settings, the key of its stored result.
func (j *Job) Key() string { return j.Content + "/" + j.Settings }

// Progress is a running job's progress and checkpoint, for Heartbeat.
type Progress struct {
	Done, Total float64
	// Checkpoint, if not nil, replaces the job's checkpoint; an empty one clears it.
	Checkpoint []byte
}

// Filter selects jobs for List: those in any of States (all when empty), newest first, at most
// Limit (0: no limit).
type Filter struct {
	States []State
	Origin string // "" for any
	Limit  int
}

// Errors of the queue's methods.
var (
	// ErrEmpty: no job can be leased now.
	ErrEmpty = errors.New("queue: no job ready")
	// ErrLost: the job is not running under that lease any more (it was recovered after the
	// lease expired, or cancelled); the worker's result is not recorded.
	ErrLost = errors.New("queue: lease lost")
	// ErrNotFound: no job with that id.
	ErrNotFound = errors.New("queue: no such job")
	// ErrIdempotencyReused: an idempotency key given again with another request.
	ErrIdempotencyReused = errors.New("queue: idempotency key already used for another request")
)

// Queue is the daemon's durable job store. Every method is safe for concurrent use and commits
// before it returns: what it reports survives a crash of the process right after.
type Queue interface {
	// Enqueue adds a job for j's path, content and settings, queued, unless one exists for the
	// same three (in any state), which it returns with added false: enqueueing is idempotent.
	// Queued jobs for the same path with other content are cancelled ("the file changed").
	Enqueue(ctx context.Context, j Job) (job Job, added bool, err error)
	// Requeue puts a done job back in the queue (its sidecars went missing: the worker writes
	// them again from the stored result). Other states are left as they are. ErrNotFound.
	Requeue(ctx context.Context, id int64) error
	// Lease takes the queued job of highest Priority, then the oldest, whose NextAt has come, or a running one whose lease
	// expired, for owner until now+ttl: it becomes running and its Attempts grows by one before
	// Lease returns (an expired attempt that made progress, its Done past where it started, does
	// not count; one that did not, out of attempts, fails for good). Jobs whose key is running
	// under another lease wait, so that one content is transcribed once. ErrEmpty when none is
	// ready.
	Lease(ctx context.Context, owner string, ttl time.Duration) (Job, error)
	// Heartbeat extends the lease and records progress. ErrLost.
	Heartbeat(ctx context.Context, id int64, owner string, ttl time.Duration, p Progress) error
	// Complete ends a running job done. ErrLost.
	Complete(ctx context.Context, id int64, owner string) error
	// Fail ends a running job's attempt with reason: failed for good when permanent or out of
	// attempts, else queued again, not before retryAt. ErrLost.
	Fail(ctx context.Context, id int64, owner, reason string, permanent bool, retryAt time.Time) error
	// Release puts a running job back in the queue without counting the attempt (the worker
	// stopped: shutdown), keeping its checkpoint. ErrLost.
	Release(ctx context.Context, id int64, owner string) error
	// Cancel ends a queued or running job cancelled with reason, and returns the job as it is
	// then (other states are left as they are). A running job's lease is lost: its worker's
	// result is not recorded (ErrLost), and its checkpoint is dropped. ErrNotFound.
	Cancel(ctx context.Context, id int64, reason string) (Job, error)
	// Recover puts every running job back in the queue, keeping its checkpoint, and reports how
	// many: for a start after a crash, when no worker is running. The interrupted attempt
	// counts unless it made progress; a job out of attempts that made none fails for good (a
	// file that crashes the process).
	Recover(ctx context.Context) (int, error)
	// Get returns the job with id. ErrNotFound.
	Get(ctx context.Context, id int64) (Job, error)
	// Latest returns the newest job for path, and false when there is none.
	Latest(ctx context.Context, path string) (Job, bool, error)
	// List returns the jobs f selects.
	List(ctx context.Context, f Filter) ([]Job, error)
	// Counts returns how many jobs are in each state.
	Counts(ctx context.Context) (map[State]int, error)
	// StoreResult keeps data as the result of key (Job.Key), replacing any. Result returns it,
	// and false when there is none.
	StoreResult(ctx context.Context, key string, data []byte) error
	Result(ctx context.Context, key string) ([]byte, bool, error)
	// DueCallbacks returns at most limit callbacks whose job has ended (done, failed,
	// cancelled), not delivered yet, whose retry time has come, oldest first. CallbackDone
	// records a delivery attempt: delivered, or failed with reason and to be tried again at
	// retryAt (zero: never again). CallbackOf returns a job's callback, and false when it has
	// none.
	DueCallbacks(ctx context.Context, limit int) ([]Callback, error)
	CallbackDone(ctx context.Context, jobID int64, delivered bool, reason string, retryAt time.Time) error
	CallbackOf(ctx context.Context, jobID int64) (CallbackState, bool, error)
	// Close releases the store. It is idempotent.
	Close() error
}
