package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/sidecar"
)

// jobRequest is a JSON job request: a file by path, and the job's settings.
type jobRequest struct {
	Path        string `json:"path"`
	Priority    int    `json:"priority"`
	CallbackURL string `json:"callback_url"`
	config.Folder
}

// apiFields are the fields of a job request besides the transcription settings.
var apiFields = []string{"path", "priority", "callback_url"}

// postJob queues a job: a multipart upload (the file in "file", settings as fields) or a JSON
// body naming a file by path. It answers 202 with the job once the job is in the queue; a
// request with an Idempotency-Key already used for the same request gets the first job.
func (s *Server) postJob(w http.ResponseWriter, r *http.Request) {
	if e := checkQuery(r); e != nil {
		writeError(w, e)
		return
	}
	sub, e := s.jobSubmission(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	j, created, err := s.svc.Submit(r.Context(), sub)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/jobs/%d", j.ID))
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, j)
}

// jobSubmission reads a job request. A request refused after its upload was received leaves
// nothing on disk.
func (s *Server) jobSubmission(w http.ResponseWriter, r *http.Request) (sub Submission, e *Error) {
	sub = Submission{Origin: "jobs", IdempotencyKey: r.Header.Get("Idempotency-Key")}
	if len(sub.IdempotencyKey) > 255 {
		return sub, Errorf(http.StatusBadRequest, "invalid_idempotency_key", "the Idempotency-Key is longer than 255 characters")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req jobRequest
	var content string // what the job transcribes, for the fingerprint
	switch mt {
	case "multipart/form-data":
		f, ferr := s.readForm(w, r, "file")
		if ferr != nil {
			return sub, ferr
		}
		defer func() { // e is the result: the upload goes when the request is refused
			if e != nil {
				f.remove()
			}
		}()
		if f.file == "" {
			return sub, Errorf(http.StatusBadRequest, "missing_file", "the multipart body has no \"file\" part")
		}
		opts, rest, fe := folderFields(f.fields)
		if fe != nil {
			return sub, fe
		}
		req.Folder = opts
		for k, v := range rest {
			switch k {
			case "priority":
				n, err := strconv.Atoi(strings.TrimSpace(v[0]))
				if err != nil || len(v) != 1 {
					return sub, fieldError(k, "not a whole number")
				}
				req.Priority = n
			case "callback_url":
				req.CallbackURL = v[0]
			default:
				return sub, fieldError(k, "unknown field (a job takes path, priority, callback_url and the transcription settings)")
			}
		}
		if de := s.checkDuration(r.Context(), f); de != nil {
			return sub, de
		}
		sub.Upload, sub.Name, content = f.file, f.name, "sha256:"+f.sha256
	case "application/json", "":
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return sub, Errorf(http.StatusBadRequest, "invalid_json", "the JSON body cannot be read: %v", err)
		}
		if dec.More() {
			return sub, Errorf(http.StatusBadRequest, "invalid_json", "the JSON body has more than one value")
		}
		if req.Path == "" {
			return sub, Errorf(http.StatusBadRequest, "missing_path", "a JSON job request names a file: {\"path\": \"/…/file.m4a\"} (or upload it as multipart/form-data)")
		}
		sub.Path, content = req.Path, "path:"+req.Path
	default:
		return sub, Errorf(http.StatusUnsupportedMediaType, "invalid_content_type", "send multipart/form-data (an upload) or application/json (a path)")
	}
	if req.Enabled != nil || req.Ignore != nil {
		return sub, Errorf(http.StatusBadRequest, "invalid_field", "enabled and ignore are a folder's settings, not a job's")
	}
	if err := req.Folder.Check("request"); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return sub, fieldError(ce.Key, ce.Msg)
		}
		return sub, Errorf(http.StatusBadRequest, "invalid_field", "%v", err)
	}
	sub.Options, sub.Priority, sub.Callback = req.Folder, req.Priority, req.CallbackURL
	if sub.IdempotencyKey != "" {
		sub.Fingerprint = fingerprint(content, req.Priority, req.CallbackURL, req.Folder)
	}
	return sub, nil
}

// checkDuration refuses an upload that is not audio ffmpeg can read, or longer than MaxDuration.
func (s *Server) checkDuration(ctx context.Context, f *form) *Error {
	d, err := s.svc.Duration(ctx, f.file)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), f.file, f.name)
		return Errorf(http.StatusBadRequest, "invalid_file", "the file cannot be read as audio: %s", msg)
	}
	if d > s.c.MaxDuration {
		return Errorf(http.StatusRequestEntityTooLarge, "audio_too_long", "the audio is %s long; uploads are limited to %s (max_duration)",
			fmtSeconds(d), fmtSeconds(s.c.MaxDuration))
	}
	return nil
}

func fieldError(key, msg string) *Error {
	e := Errorf(http.StatusBadRequest, "invalid_field", "field %q: %s", key, msg)
	e.Param = key
	return e
}

// fingerprint is what a request asked for, to compare a retry with (idempotency keys).
func fingerprint(content string, priority int, callback string, opts config.Folder) string {
	b, _ := json.Marshal(struct {
		Content  string
		Priority int
		Callback string
		Options  config.Folder
	}{content, priority, callback, opts})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// listJobs lists the API's jobs, newest first: ?state=queued,running&limit=N.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	if e := checkQuery(r, "state", "limit"); e != nil {
		writeError(w, e)
		return
	}
	f, e := listFilter(r.URL.Query())
	if e != nil {
		writeError(w, e)
		return
	}
	jobs, err := s.svc.List(r.Context(), f)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	if jobs == nil {
		jobs = []Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": jobs})
}

// jobRoute reads the {id} of a job's route and checks its query (the parameters allowed), and
// answers the error if either is wrong.
func jobRoute(w http.ResponseWriter, r *http.Request, allowed ...string) (int64, bool) {
	id, e := jobID(r)
	if e == nil {
		e = checkQuery(r, allowed...)
	}
	if e != nil {
		writeError(w, e)
		return 0, false
	}
	return id, true
}

// startEvents starts a server-sent events answer and returns its controller (to flush).
func startEvents(w http.ResponseWriter) *http.ResponseController {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	return rc
}

// listFilter reads the list's query: state (comma-separated) and limit.
func listFilter(q url.Values) (queue.Filter, *Error) {
	f := queue.Filter{Origin: queue.OriginAPI, Limit: 100}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, fieldError("limit", "want a number from 1 to 1000")
		}
		f.Limit = n
	}
	for _, st := range strings.Split(q.Get("state"), ",") {
		switch queue.State(st) {
		case "":
		case queue.Queued, queue.Running, queue.Done, queue.Failed, queue.Cancelled:
			f.States = append(f.States, queue.State(st))
		default:
			return f, fieldError("state", fmt.Sprintf("%q: want queued, running, done, failed or cancelled", st))
		}
	}
	return f, nil
}

// routedJob reads the job the route names, or answers the error and reports false.
func (s *Server) routedJob(w http.ResponseWriter, r *http.Request) (Job, bool) {
	id, ok := jobRoute(w, r)
	if !ok {
		return Job{}, false
	}
	j, err := s.svc.Get(r.Context(), id)
	if err != nil {
		writeError(w, asError(err))
		return Job{}, false
	}
	return j, true
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	if j, ok := s.routedJob(w, r); ok {
		writeJSON(w, http.StatusOK, j)
	}
}

// deleteJob cancels a queued or running job; an upload job that has ended has its files (the
// audio and its outputs) removed.
func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request) {
	j, ok := s.routedJob(w, r)
	if !ok {
		return
	}
	var err error
	if j.State == queue.Queued || j.State == queue.Running {
		j, err = s.svc.Cancel(r.Context(), j.ID)
	} else {
		j, err = s.svc.Delete(r.Context(), j.ID)
	}
	if err != nil {
		writeError(w, asError(err))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// resultTypes are the content types of the result formats.
var resultTypes = map[sidecar.Format]string{
	sidecar.FormatJSON: "application/json",
	sidecar.FormatSRT:  "application/x-subrip; charset=utf-8",
	sidecar.FormatVTT:  "text/vtt; charset=utf-8",
	sidecar.FormatTXT:  "text/plain; charset=utf-8",
	sidecar.FormatMD:   "text/markdown; charset=utf-8",
}

// jobResult answers a done job's transcript: ?format=json (the JSON sidecar, the default),
// srt, vtt, txt or md (rendered from it, whichever formats the job wrote).
func (s *Server) jobResult(w http.ResponseWriter, r *http.Request) {
	id, ok := jobRoute(w, r, "format")
	if !ok {
		return
	}
	f := sidecar.Format(r.URL.Query().Get("format"))
	if f == "" {
		f = sidecar.FormatJSON
	}
	if _, ok := resultTypes[f]; !ok {
		writeError(w, fieldError("format", fmt.Sprintf("%q: want json, srt, vtt, txt or md", f)))
		return
	}
	doc, err := s.svc.Document(r.Context(), id)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	var body []byte
	if f == sidecar.FormatJSON {
		body, err = doc.Marshal()
	} else {
		body, err = sidecar.Render(doc.Transcript(), f, sidecar.Options{})
	}
	if err != nil {
		writeError(w, asError(err))
		return
	}
	w.Header().Set("Content-Type", resultTypes[f])
	w.Write(body)
}

// jobEvents streams a job's events (server-sent events): "state" first, the segments so far,
// then "progress", "segment" and "state" as they happen, and the end ("done", "failed" or
// "cancelled"), after which the stream ends. A comment every 15 s keeps idle connections open.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := jobRoute(w, r)
	if !ok {
		return
	}
	events, err := s.svc.Watch(r.Context(), id)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	rc := startEvents(w)
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	n := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			m := &sse.Message{}
			m.AppendComment("keep-alive")
			m.WriteTo(w)
			rc.Flush()
		case ev, ok := <-events:
			if !ok {
				return
			}
			n++
			var data any = ev.Job
			switch {
			case ev.Progress != nil:
				data = ev.Progress
			case ev.Segment != nil:
				data = ev.Segment
			}
			b, err := json.Marshal(data)
			if err != nil {
				return
			}
			m := &sse.Message{ID: sse.ID(strconv.Itoa(n)), Type: sse.Type(ev.Type)}
			m.AppendData(string(b))
			if _, err := m.WriteTo(w); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// listModels is GET /v1/models, OpenAI's model list: the models a request may name, and
// whisper-1 for the default.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	names, err := s.svc.Models(r.Context())
	if err != nil {
		writeError(w, asError(err))
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	data := []model{{ID: "whisper-1", Object: "model", OwnedBy: "verbatim"}}
	for _, n := range names {
		data = append(data, model{ID: n, Object: "model", OwnedBy: "verbatim"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
