package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/daemon/api"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/durable"
	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
)

// UploadFolder is the folder of the state folder that holds the API's uploads, one folder per
// job: the audio and its outputs.
const UploadFolder = "uploads"

// service is the daemon's jobs as the API sees them (api.Service).
type service struct {
	c       Config
	q       *queue.SQLite
	broker  *broker
	wk      *worker
	wake    chan<- struct{}
	uploads string
	log     zerolog.Logger
}

var _ api.Service = (*service)(nil)

// view is j as the API shows it.
func (s *service) view(ctx context.Context, j queue.Job) api.Job {
	v := api.Job{Job: j, Progress: api.ProgressOf(j, time.Now())}
	if cb, ok, err := s.q.CallbackOf(ctx, j.ID); err == nil && ok {
		v.Callback = &cb
	}
	if j.State == queue.Done {
		v.ResultURL = fmt.Sprintf("/v1/jobs/%d/result", j.ID)
	}
	if j.State == queue.Queued && s.wk != nil {
		v.Paused = s.wk.gate.paused()
	}
	return v
}

// Submit implements api.Service.
func (s *service) Submit(ctx context.Context, sub api.Submission) (api.Job, bool, error) {
	upload := sub.Upload
	defer func() {
		if upload != "" {
			os.Remove(upload)
		}
	}()
	if sub.Callback != "" {
		if err := s.checkCallback(sub.Callback); err != nil {
			return api.Job{}, false, err
		}
	}
	// The settings: the folder's (the defaults, for an upload), then the request's.
	var path, root string
	var err error
	settings := s.c.Tree.Defaults()
	if sub.Path != "" {
		if path, root, err = s.allowedFile(sub.Path); err != nil {
			return api.Job{}, false, err
		}
		settings = s.c.Tree.Settings(root, path)
	}
	if sub.Options.Output != nil && *sub.Options.Output != "" {
		out, err := s.allowedFolder(*sub.Options.Output)
		if err != nil {
			return api.Job{}, false, err
		}
		sub.Options.Output = &out
	}
	settings = settings.Over(&sub.Options, "")
	opts, model, err := s.c.Options(settings)
	if err != nil {
		return api.Job{}, false, api.Errorf(http.StatusBadRequest, "invalid_settings", "%v", err)
	}
	modelSHA, err := s.c.ModelHash(ctx, model)
	if err != nil {
		return api.Job{}, false, fmt.Errorf("model %s: %w", model, err)
	}
	key, err := pipeline.SettingsKey(opts, modelSHA, s.c.BackendOptions)
	if err != nil {
		return api.Job{}, false, err
	}
	var dir string // an upload's folder, removed unless its job is queued
	kept := false
	if upload != "" { // the upload gets a folder of its own, for it and its outputs
		dir = filepath.Join(s.uploads, fmt.Sprintf("%s-%s", time.Now().UTC().Format("20060102T150405"), randomHex()))
		defer func() {
			if !kept {
				os.RemoveAll(dir)
			}
		}()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return api.Job{}, false, err
		}
		path = filepath.Join(dir, sub.Name)
		if err := os.Rename(upload, path); err != nil {
			return api.Job{}, false, err
		}
		upload = ""
		if err := durable.SyncDir(dir); err != nil {
			return api.Job{}, false, err
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return api.Job{}, false, err
	}
	content, err := hashFile(ctx, path)
	if err != nil {
		return api.Job{}, false, err
	}
	spec, err := json.Marshal(spec{Model: model, Folder: settings})
	if err != nil {
		return api.Job{}, false, err
	}
	j, added, err := s.q.Enqueue(ctx, queue.Job{
		Path: path, Root: root, Content: content, Settings: key, Size: fi.Size(), ModTime: fi.ModTime(),
		MaxAttempts: s.c.MaxAttempts, Spec: spec, Priority: sub.Priority, Origin: queue.OriginAPI,
		Callback: sub.Callback, IdempotencyKey: sub.IdempotencyKey, Fingerprint: sub.Fingerprint,
	})
	if errors.Is(err, queue.ErrIdempotencyReused) {
		return api.Job{}, false, api.Errorf(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"the Idempotency-Key was used before for another request")
	}
	if err != nil {
		return api.Job{}, false, err
	}
	kept = j.Path == path // not a retry answered with an earlier upload's job
	if !added && j.State == queue.Done && sub.Path != "" && !outputsExist(j.Path, opts) {
		if err := s.q.Requeue(ctx, j.ID); err != nil {
			return api.Job{}, false, err
		}
		added = true
	}
	if added {
		s.log.Info().Str("path", j.Path).Int64("job", j.ID).Str("by", sub.Origin).Msg("queued by the API")
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	if j, err = s.q.Get(ctx, j.ID); err != nil {
		return api.Job{}, false, err
	}
	return s.view(ctx, j), added || sub.IdempotencyKey == "", nil
}

// allowedFile resolves p (absolute, without ..) to the real file it names, and returns it and
// the watched or allowed folder holding it; a path outside them (a symbolic link leading out
// included) is refused.
func (s *service) allowedFile(p string) (string, string, error) {
	if !filepath.IsAbs(p) || slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..") {
		return "", "", api.Errorf(http.StatusBadRequest, "invalid_path", "the path must be absolute, without ..: %q", p)
	}
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", api.Errorf(http.StatusNotFound, "file_not_found", "no file %s", p)
	}
	if err != nil {
		return "", "", api.Errorf(http.StatusForbidden, "path_not_allowed", "%s cannot be resolved: %v", p, err)
	}
	root := s.rootOf(real)
	if root == "" {
		return "", "", api.Errorf(http.StatusForbidden, "path_not_allowed",
			"%s is not inside a watched or allowed folder (allow in the daemon's configuration)", p)
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return "", "", api.Errorf(http.StatusBadRequest, "not_a_file", "%s is not a regular file", p)
	}
	return real, root, nil
}

// allowedFolder resolves an output folder (absolute; made if missing) inside the watched or
// allowed folders.
func (s *service) allowedFolder(p string) (string, error) {
	if !filepath.IsAbs(p) || slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..") {
		return "", api.Errorf(http.StatusBadRequest, "invalid_output", "the output folder must be an absolute path without ..: %q", p)
	}
	// The nearest folder that exists, resolved, with the rest of the path after it.
	existing, rest := filepath.Clean(p), ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil || s.rootOf(real) == "" {
		return "", api.Errorf(http.StatusForbidden, "output_not_allowed", "the output folder %s is not inside a watched or allowed folder", p)
	}
	return filepath.Join(real, rest), nil
}

// rootOf is the allowed folder (a watched one, or one of Allow) that holds the real path p, or "".
func (s *service) rootOf(p string) string {
	for _, r := range append(slices.Clone(s.c.Roots), s.c.Allow...) {
		rr, err := filepath.EvalSymlinks(r)
		if err != nil {
			continue
		}
		if p == rr || strings.HasPrefix(p, rr+string(filepath.Separator)) {
			return r
		}
	}
	return ""
}

// checkCallback refuses a callback URL that is not http(s) to loopback or an allowed host.
func (s *service) checkCallback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return api.Errorf(http.StatusBadRequest, "invalid_callback_url", "callback_url must be an http(s) URL: %q", raw)
	}
	if !loopbackHost(u.Hostname()) && !slices.Contains(s.c.CallbackHosts, strings.ToLower(u.Hostname())) {
		return api.Errorf(http.StatusBadRequest, "callback_not_allowed",
			"callback_url must be on this machine (loopback), not %q, unless callback_hosts allows it", u.Hostname())
	}
	return nil
}

// Get implements api.Service.
func (s *service) Get(ctx context.Context, id int64) (api.Job, error) {
	j, err := s.q.Get(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	return s.view(ctx, j), nil
}

// List implements api.Service.
func (s *service) List(ctx context.Context, f queue.Filter) ([]api.Job, error) {
	jobs, err := s.q.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, len(jobs))
	for i, j := range jobs {
		out[i] = s.view(ctx, j)
	}
	return out, nil
}

// Cancel implements api.Service.
func (s *service) Cancel(ctx context.Context, id int64) (api.Job, error) {
	j, err := s.q.Cancel(ctx, id, "cancelled through the API")
	if err != nil {
		return api.Job{}, err
	}
	if j.State != queue.Cancelled {
		return api.Job{}, api.Errorf(http.StatusConflict, "job_ended", "job %d has already ended: %s", id, j.State)
	}
	s.wk.cancelTask(id)
	v := s.view(ctx, j)
	s.broker.publish(id, api.Event{Type: "cancelled", Job: &v})
	s.log.Info().Str("path", j.Path).Int64("job", id).Msg("cancelled through the API")
	return v, nil
}

// Delete implements api.Service: an ended upload's folder (its audio and outputs) goes.
func (s *service) Delete(ctx context.Context, id int64) (api.Job, error) {
	j, err := s.q.Get(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	if j.State == queue.Queued || j.State == queue.Running {
		return api.Job{}, api.Errorf(http.StatusConflict, "job_not_ended", "job %d is %s: cancel it first", id, j.State)
	}
	dir, ok := s.uploadDir(j.Path)
	if !ok {
		return api.Job{}, api.Errorf(http.StatusConflict, "not_an_upload",
			"job %d transcribed a file of yours (%s); only an upload's files are removed", id, j.Path)
	}
	if err := os.RemoveAll(dir); err != nil {
		return api.Job{}, err
	}
	s.log.Info().Int64("job", id).Str("folder", dir).Msg("upload removed through the API")
	return s.view(ctx, j), nil
}

// uploadDir is the upload folder of the job file p, if it is an upload.
func (s *service) uploadDir(p string) (string, bool) {
	dir := filepath.Dir(p)
	if filepath.Dir(dir) != s.uploads {
		return "", false
	}
	return dir, true
}

// Document implements api.Service: the done job's JSON sidecar.
func (s *service) Document(ctx context.Context, id int64) (*sidecar.Document, error) {
	j, err := s.q.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != queue.Done {
		msg := fmt.Sprintf("job %d is %s", id, j.State)
		if j.Error != "" {
			msg += ": " + j.Error
		}
		return nil, api.Errorf(http.StatusConflict, "job_not_done", "%s", msg)
	}
	var sp spec
	if err := json.Unmarshal(j.Spec, &sp); err != nil {
		return nil, err
	}
	opts, _, err := s.c.Options(sp.Folder)
	if err != nil {
		return nil, err
	}
	p := pipeline.OutputBase(j.Path, opts.OutDir) + ".json"
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, api.Errorf(http.StatusGone, "result_gone", "job %d's transcript is no longer there (%s was removed)", id, p)
	}
	if err != nil {
		return nil, err
	}
	return sidecar.ReadDocument(data)
}

// Watch implements api.Service.
func (s *service) Watch(ctx context.Context, id int64) (<-chan api.Event, error) {
	sub, segs := s.broker.subscribe(id)
	j, err := s.Get(ctx, id)
	if err != nil {
		s.broker.unsubscribe(id, sub)
		return nil, err
	}
	out := make(chan api.Event)
	go func() {
		defer close(out)
		defer s.broker.unsubscribe(id, sub)
		send := func(ev api.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send(api.Event{Type: "state", Job: &j}) {
			return
		}
		switch j.State {
		case queue.Done, queue.Failed, queue.Cancelled:
			if j.State == queue.Done {
				if doc, err := s.Document(ctx, id); err == nil {
					for _, seg := range doc.Transcript().Segments {
						if !send(api.Event{Type: "segment", Segment: api.SegmentOf(seg)}) {
							return
						}
					}
				}
			}
			send(api.Event{Type: string(j.State), Job: &j})
			return
		case queue.Running:
			for i := range segs {
				if !send(api.Event{Type: "segment", Segment: &segs[i]}) {
					return
				}
			}
		}
		sent := len(segs)
		if j.State != queue.Running {
			sent = 0
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.notify:
			}
			for _, ev := range sub.take() {
				switch {
				case ev.Type == "segment":
					sent++
				case ev.Type == "done":
					// Every segment before the end: those a watcher did not hear (a job done
					// from the stored transcript of a copy decodes none) come from the result.
					if doc, err := s.Document(ctx, id); err == nil {
						for _, seg := range doc.Transcript().Segments[min(sent, len(doc.Segments)):] {
							if !send(api.Event{Type: "segment", Segment: api.SegmentOf(seg)}) {
								return
							}
						}
					}
				}
				if !send(ev) || ev.Ended() {
					return
				}
			}
		}
	}()
	return out, nil
}

// Models implements api.Service.
func (s *service) Models(context.Context) ([]string, error) {
	if s.c.Models == nil {
		return nil, nil
	}
	return s.c.Models()
}

// Duration implements api.Service.
func (s *service) Duration(ctx context.Context, path string) (time.Duration, error) {
	return duration(ctx, path, media.Options{})
}

// duration is the length of the media at path: from ffprobe, or, without it, from the decoder
// that opens the file natively (a WAV anywhere; on macOS what AudioToolbox reads), so a Mac
// without ffmpeg can say a job's length too.
func duration(ctx context.Context, path string, o media.Options) (time.Duration, error) {
	info, err := media.Probe(ctx, path, o)
	if errors.Is(err, media.ErrFFmpegMissing) {
		if st, oerr := media.Open(ctx, path, o); oerr == nil {
			info, err = st.Info, nil
			st.Close()
		}
	}
	if err != nil {
		return 0, err
	}
	if !slices.ContainsFunc(info.Streams, func(st media.StreamInfo) bool { return st.Type == "audio" }) {
		return 0, errors.New("it has no audio stream")
	}
	return info.Duration, nil
}

// cleanUploads removes what a crash left in the upload folder: uploads being received, and job
// folders whose job never made it into the queue.
func (s *service) cleanUploads(ctx context.Context) {
	ents, err := os.ReadDir(s.uploads)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(s.uploads, e.Name())
		if !e.IsDir() {
			if strings.HasPrefix(e.Name(), ".partial-") {
				os.Remove(p)
			}
			continue
		}
		files, _ := os.ReadDir(p)
		queued := false
		for _, f := range files {
			if _, ok, err := s.q.Latest(ctx, filepath.Join(p, f.Name())); err != nil || ok {
				queued = true // or unknown: kept
			}
		}
		if !queued {
			os.RemoveAll(p)
			s.log.Info().Str("folder", p).Msg("removed an upload that never became a job (a crash)")
		}
	}
}
