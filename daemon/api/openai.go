package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	sse "github.com/tmaxmax/go-sse"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

// openAIModels are OpenAI's transcription model names: any of them means the daemon's default
// model.
var openAIModels = []string{"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize", "gpt-transcribe"}

// openAIIgnored are OpenAI parameters accepted and not acted on (they change nothing a
// Whisper model can do differently, or only add to OpenAI's own models' answers).
var openAIIgnored = []string{"include[]", "include", "chunking_strategy"}

// openAIRequest is an OpenAI transcription request, read.
type openAIRequest struct {
	format      string // json, text, srt, vtt, verbose_json
	words       bool   // timestamp_granularities has word
	segments    bool   // ... has segment, or is empty
	stream      bool
	opts        config.Folder
	granularity []string
}

// openAI answers POST /v1/audio/transcriptions and /v1/audio/translations as OpenAI's API does:
// a multipart upload with model, language, prompt, temperature, response_format,
// timestamp_granularities[] and stream. The request is a job of the daemon's queue at a high
// priority; the answer comes when it is done (or as server-sent events with stream=true). A
// client that goes away cancels its job; the upload and its outputs are removed once answered.
func (s *Server) openAI(w http.ResponseWriter, r *http.Request, task string) {
	if e := checkQuery(r); e != nil {
		writeError(w, e)
		return
	}
	f, e := s.readForm(w, r, "file")
	if e != nil {
		writeError(w, e)
		return
	}
	if f.file == "" {
		e := Errorf(http.StatusBadRequest, "missing_file", "the request has no file: send the audio as the multipart field \"file\"")
		e.Param = "file"
		writeError(w, e)
		return
	}
	req, e := s.openAIFields(r.Context(), f.fields, task)
	if e == nil {
		e = s.checkDuration(r.Context(), f)
	}
	if e != nil {
		f.remove()
		writeError(w, e)
		return
	}
	j, _, err := s.svc.Submit(r.Context(), Submission{Upload: f.file, Name: f.name, Options: req.opts, Priority: 10, Origin: "openai"})
	if err != nil {
		writeError(w, asError(err))
		return
	}
	// The job is the request's: cancelled if the client goes away, its files removed once answered.
	defer func() {
		bg := context.WithoutCancel(r.Context())
		if cur, err := s.svc.Get(bg, j.ID); err == nil && (cur.State == queue.Queued || cur.State == queue.Running) {
			s.svc.Cancel(bg, j.ID)
		}
		s.svc.Delete(bg, j.ID)
	}()
	events, err := s.svc.Watch(r.Context(), j.ID)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	if req.stream {
		s.openAIStream(w, r, j.ID, events)
		return
	}
	end, ok := lastEvent(events)
	if !ok {
		return // the client went away
	}
	if end.Type != "done" {
		writeError(w, jobEndError(end))
		return
	}
	doc, err := s.svc.Document(r.Context(), j.ID)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	s.openAIAnswer(w, doc, req, task)
}

// openAIFields reads an OpenAI request's fields.
func (s *Server) openAIFields(ctx context.Context, fields map[string][]string, task string) (openAIRequest, *Error) {
	req := openAIRequest{format: "json"}
	req.opts.Task = &task
	req.opts.Formats = []string{"json"}
	one := func(k string) (string, *Error) {
		v := fields[k]
		if len(v) != 1 {
			return "", fieldError(k, "given more than once")
		}
		return strings.TrimSpace(v[0]), nil
	}
	for k, vals := range fields {
		v, e := "", (*Error)(nil)
		if k != "timestamp_granularities[]" && k != "timestamp_granularities" && !slices.Contains(openAIIgnored, k) {
			if v, e = one(k); e != nil {
				return req, e
			}
		}
		switch k {
		case "model":
			if v == "" || slices.Contains(openAIModels, v) {
				continue // the default model
			}
			names, err := s.svc.Models(ctx)
			if err != nil {
				return req, asError(err)
			}
			if !slices.Contains(names, v) {
				e := Errorf(http.StatusNotFound, "model_not_found", "the model %q does not exist here (GET /v1/models lists them)", v)
				e.Param = "model"
				return req, e
			}
			req.opts.Model = &v
		case "language":
			if v != "" {
				code, ok := tokenizer.LanguageCode(v)
				if !ok {
					return req, fieldError(k, fmt.Sprintf("%q is not a language Whisper knows", v))
				}
				req.opts.Language = &code
			}
		case "prompt":
			if v != "" {
				req.opts.Prompt = &v
			}
		case "temperature":
			t, err := strconv.ParseFloat(v, 64)
			if err != nil || t < 0 || t > 1 {
				return req, fieldError(k, "want a number from 0 to 1")
			}
			req.opts.Temperature = &t
		case "response_format":
			switch v {
			case "json", "text", "srt", "vtt", "verbose_json":
				req.format = v
			default:
				return req, fieldError(k, fmt.Sprintf("%q: want json, text, srt, vtt or verbose_json", v))
			}
		case "timestamp_granularities[]", "timestamp_granularities":
			for _, g := range vals {
				for _, x := range strings.Split(g, ",") {
					switch x = strings.TrimSpace(x); x {
					case "word", "segment":
						req.granularity = append(req.granularity, x)
					default:
						return req, fieldError(k, fmt.Sprintf("%q: want word or segment", x))
					}
				}
			}
		case "stream":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return req, fieldError(k, "want true or false")
			}
			req.stream = b
		default:
			if !slices.Contains(openAIIgnored, k) {
				e := Errorf(http.StatusBadRequest, "unknown_parameter", "unknown parameter %q", k)
				e.Param = k
				return req, e
			}
		}
	}
	req.words = slices.Contains(req.granularity, "word")
	if req.words {
		on := true
		req.opts.WordTimestamps = &on
	}
	req.segments = len(req.granularity) == 0 || slices.Contains(req.granularity, "segment")
	if len(req.granularity) > 0 && req.format != "verbose_json" {
		return req, fieldError("timestamp_granularities[]", "needs response_format verbose_json")
	}
	return req, nil
}

// lastEvent drains events and returns the job's end, or false when the stream ended without
// one (the request's context ended).
func lastEvent(events <-chan Event) (Event, bool) {
	for ev := range events {
		if ev.Ended() {
			return ev, true
		}
	}
	return Event{}, false
}

// jobEndError is the error of a job that did not end done.
func jobEndError(ev Event) *Error {
	msg := "the transcription " + ev.Type
	if ev.Job != nil && ev.Job.Error != "" {
		msg += ": " + ev.Job.Error
	}
	if ev.Type == "cancelled" {
		return Errorf(http.StatusConflict, "job_cancelled", "%s", msg)
	}
	return Errorf(http.StatusInternalServerError, "transcription_failed", "%s", msg)
}

// transcriptText is the transcript as one string, as OpenAI's "text" is.
func transcriptText(doc *sidecar.Document) string {
	var b strings.Builder
	for _, s := range doc.Segments {
		b.WriteString(s.Text)
	}
	return strings.TrimSpace(b.String())
}

// openAIAnswer writes the transcript in the request's response format.
func (s *Server) openAIAnswer(w http.ResponseWriter, doc *sidecar.Document, req openAIRequest, task string) {
	usage := map[string]any{"type": "duration", "seconds": math.Ceil(doc.Duration)}
	text := transcriptText(doc)
	switch req.format {
	case "json":
		writeJSON(w, http.StatusOK, map[string]any{"text": text, "usage": usage})
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, text)
	case "srt", "vtt":
		body, err := sidecar.Render(doc.Transcript(), sidecar.Format(req.format), sidecar.Options{})
		if err != nil {
			writeError(w, asError(err))
			return
		}
		w.Header().Set("Content-Type", resultTypes[sidecar.Format(req.format)])
		w.Write(body)
	case "verbose_json":
		lang, ok := tokenizer.LanguageName(doc.Language)
		if !ok {
			lang = doc.Language
		}
		type segment struct {
			ID               int     `json:"id"`
			Seek             int     `json:"seek"`
			Start            float64 `json:"start"`
			End              float64 `json:"end"`
			Text             string  `json:"text"`
			Tokens           []int   `json:"tokens"`
			Temperature      float64 `json:"temperature"`
			AvgLogprob       float64 `json:"avg_logprob"`
			CompressionRatio float64 `json:"compression_ratio"`
			NoSpeechProb     float64 `json:"no_speech_prob"`
		}
		type word struct {
			Word  string  `json:"word"`
			Start float64 `json:"start"`
			End   float64 `json:"end"`
		}
		out := map[string]any{"task": task, "language": lang, "duration": doc.Duration, "text": text, "usage": usage}
		if req.segments {
			segs := []segment{}
			for _, ds := range doc.Segments {
				sg := segment{ID: ds.ID, Seek: int(math.Round(ds.Start * 100)), Start: ds.Start, End: ds.End, Text: ds.Text,
					Tokens: []int{}, Temperature: ds.Temperature, AvgLogprob: ds.AvgLogProb,
					CompressionRatio: ds.CompressionRatio, NoSpeechProb: ds.NoSpeechProb}
				for _, tk := range ds.Tokens {
					sg.Tokens = append(sg.Tokens, tk.ID)
				}
				segs = append(segs, sg)
			}
			out["segments"] = segs
		}
		if req.words {
			words := []word{}
			for _, ds := range doc.Segments {
				for _, dw := range ds.Words {
					words = append(words, word{Word: strings.TrimSpace(dw.Word), Start: dw.Start, End: dw.End})
				}
			}
			out["words"] = words
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// openAIStream answers stream=true as OpenAI does: server-sent events of type
// transcript.text.delta, one for each segment as it is decoded, then transcript.text.done with
// the whole text; an error is an event with an "error" object.
func (s *Server) openAIStream(w http.ResponseWriter, r *http.Request, id int64, events <-chan Event) {
	rc := startEvents(w)
	send := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		m := &sse.Message{}
		m.AppendData(string(b))
		if _, err := m.WriteTo(w); err != nil {
			return false
		}
		rc.Flush()
		return true
	}
	var text strings.Builder
	for ev := range events {
		switch {
		case ev.Type == "segment" && ev.Segment != nil:
			delta := ev.Segment.Text
			if text.Len() == 0 {
				delta = strings.TrimLeft(delta, " ")
			}
			text.WriteString(delta)
			if !send(map[string]any{"type": "transcript.text.delta", "delta": delta}) {
				return
			}
		case ev.Type == "done":
			doc, err := s.svc.Document(r.Context(), id)
			if err != nil {
				send(map[string]any{"error": map[string]any{"message": err.Error(), "type": "server_error", "code": "internal_error"}})
				return
			}
			send(map[string]any{"type": "transcript.text.done", "text": transcriptText(doc),
				"usage": map[string]any{"type": "duration", "seconds": math.Ceil(doc.Duration)}})
			return
		case ev.Ended():
			e := jobEndError(ev)
			send(map[string]any{"error": map[string]any{"message": e.Message, "type": e.Type, "code": e.Code}})
			return
		}
	}
}
