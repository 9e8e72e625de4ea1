// Package api is the daemon's HTTP API on loopback: jobs (uploads streamed to disk, or files in
// the allowed folders named by path), their progress as server-sent events, their results in
// every sidecar format, callbacks when they end, and an OpenAI-compatible transcription route.
//
// Every route but GET /healthz needs the bearer token kept in the state folder (Token). A
// request whose Host is not a loopback name with the listener's port is refused (DNS
// rebinding), and so is one with an Origin that is not explicitly allowed (cross-site pages).
// Uploads are limited in size, audio length and number at once; an upload refused leaves
// nothing on disk.
//
// The daemon provides the jobs (Service); this package speaks HTTP.
package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/sidecar"
)

// Service is the daemon as the API sees it.
type Service interface {
	// Submit checks s and queues its job, and returns it; created is false when s's
	// idempotency key was used before for the same request (the job made then). An upload's
	// file (s.Upload) is Submit's from then on: moved under the job's folder, or removed when
	// Submit fails.
	Submit(ctx context.Context, s Submission) (j Job, created bool, err error)
	// Get returns a job; List the API's jobs, newest first.
	Get(ctx context.Context, id int64) (Job, error)
	List(ctx context.Context, f queue.Filter) ([]Job, error)
	// Cancel cancels a queued or running job (a running one stops at its next window).
	Cancel(ctx context.Context, id int64) (Job, error)
	// Delete removes an ended upload job's files (the audio and its outputs).
	Delete(ctx context.Context, id int64) (Job, error)
	// Document returns a done job's transcript: its JSON sidecar.
	Document(ctx context.Context, id int64) (*sidecar.Document, error)
	// Watch returns the job's events: its state now, the segments decoded so far, then each
	// change, segment and progress as it happens, ending with the job's end (done, failed,
	// cancelled), after which the channel is closed; or closed when ctx ends.
	Watch(ctx context.Context, id int64) (<-chan Event, error)
	// Models lists the models a job may name.
	Models(ctx context.Context) ([]string, error)
	// Duration probes the audio length of a file (an upload, before it is accepted).
	Duration(ctx context.Context, path string) (time.Duration, error)
}

// Submission is a job asked for.
type Submission struct {
	// Upload is an uploaded file (in Limits.UploadDir), Name its name as the client gave it;
	// or Path is a file inside an allowed folder.
	Upload, Name string
	Path         string
	// Options are the job's transcription settings over the defaults (Output: a folder inside
	// the allowed ones).
	Options config.Folder
	// Priority orders the queue (higher first); Callback is a URL to POST to when the job ends.
	Priority int
	Callback string
	// IdempotencyKey, with Fingerprint (what the request asked for), makes a retried request
	// return the job of the first.
	IdempotencyKey, Fingerprint string
	// Origin is who asked: "jobs" (POST /v1/jobs) or "openai" (the OpenAI-compatible route).
	Origin string
}

// Job is a job as the API shows it.
type Job struct {
	queue.Job
	// Progress of a running job; Callback's delivery; ResultURL once done.
	Progress  *Progress            `json:"progress,omitempty"`
	Callback  *queue.CallbackState `json:"callback,omitempty"`
	ResultURL string               `json:"result_url,omitempty"`
	// Paused says why a queued job waits when the daemon's queue is paused ("on battery").
	Paused string `json:"paused,omitempty"`
}

// Progress is a running job's progress.
type Progress struct {
	Percent float64  `json:"percent"`
	Done    float64  `json:"done_s"`
	Total   float64  `json:"total_s"`
	ETA     *float64 `json:"eta_s,omitempty"` // seconds left, once it can be estimated
}

// ProgressOf is the progress of a running job at now: the audio done of the total, and the time
// left at the speed of its current attempt.
func ProgressOf(j queue.Job, now time.Time) *Progress {
	if j.State != queue.Running {
		return nil
	}
	p := &Progress{Done: j.Done, Total: j.Total}
	if j.Total > 0 {
		p.Percent = math.Round(1000*j.Done/j.Total) / 10
	}
	if el := now.Sub(j.Started).Seconds(); el > 0 && j.Done > j.AttemptDone && j.Total > 0 {
		eta := math.Round((j.Total - j.Done) / ((j.Done - j.AttemptDone) / el))
		p.ETA = &eta
	}
	return p
}

// Event is one thing that happened to a job (Service.Watch).
type Event struct {
	// Type is "state" (the job as it is: on connect and on a change of state), "progress",
	// "segment", or the end: "done", "failed", "cancelled".
	Type     string
	Job      *Job
	Progress *Progress
	Segment  *Segment
}

// Ended reports whether the event is a job's end.
func (e Event) Ended() bool { return e.Type == "done" || e.Type == "failed" || e.Type == "cancelled" }

// Segment is a decoded segment as the events show it.
type Segment struct {
	ID    int     `json:"id"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Text  string  `json:"text"`
	Words []Word  `json:"words,omitempty"`
}

// Word is a timed word.
type Word struct {
	Word        string  `json:"word"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Probability float64 `json:"probability"`
}

// SegmentOf is s as the events show it.
func SegmentOf(s sidecar.Segment) *Segment {
	sec := func(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
	out := &Segment{ID: s.ID, Start: sec(s.Start), End: sec(s.End), Text: s.Text}
	for _, w := range s.Words {
		out.Words = append(out.Words, Word{Word: w.Text, Start: sec(w.Start), End: sec(w.End), Probability: w.P})
	}
	return out
}

// Error is an error the API answers with: its status and the OpenAI-style body
// {"error": {"message", "type", "code", "param"}}.
type Error struct {
	Status  int
	Type    string // invalid_request_error, authentication_error, permission_error, not_found_error, ...
	Code    string
	Param   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf makes an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	t := "invalid_request_error"
	switch status {
	case http.StatusUnauthorized:
		t = "authentication_error"
	case http.StatusForbidden:
		t = "permission_error"
	case http.StatusNotFound:
		t = "not_found_error"
	case http.StatusConflict:
		t = "conflict_error"
	case http.StatusRequestEntityTooLarge:
		t = "request_too_large"
	case http.StatusTooManyRequests:
		t = "rate_limit_error"
	case http.StatusServiceUnavailable, http.StatusInternalServerError:
		t = "server_error"
	}
	return &Error{Status: status, Type: t, Code: code, Message: fmt.Sprintf(format, args...)}
}

// asError is err as an *Error: itself, or a 500 that says what went wrong.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, queue.ErrNotFound) {
		return Errorf(http.StatusNotFound, "job_not_found", "no such job")
	}
	return Errorf(http.StatusInternalServerError, "internal_error", "%v", err)
}
