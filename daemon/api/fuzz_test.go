package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
)

// The request parsers, fuzzed: multipart bodies, form fields, JSON bodies, query strings. None
// may panic, and a refused upload leaves nothing on disk.

// FuzzMultipart: any body with a multipart content type is read or refused, and nothing of a
// refused one stays in the upload folder.
func FuzzMultipart(f *testing.F) {
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF....\r\n--b\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nde\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../x\"\r\n\r\n\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + strings.Repeat("x", 300) + "\r\n--b--\r\n"))
	f.Add([]byte("--b\r\n\r\n--b--"))
	f.Add([]byte(""))
	dir := f.TempDir()
	s := &Server{c: Config{UploadDir: dir, MaxUpload: 256}, uploads: make(chan struct{}, 1)}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/jobs", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		form, e := s.readForm(httptest.NewRecorder(), r, "file")
		if e == nil {
			if form.file != "" && form.size > 256 {
				t.Fatalf("accepted %d bytes over the limit", form.size)
			}
			form.remove()
		} else if e.Status < 400 || e.Status > 499 || e.Message == "" {
			t.Fatalf("error %+v", e)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("left %d files", len(left))
		}
	})
}

// FuzzFolderFields: form fields (as a query string) map to settings or a field error.
func FuzzFolderFields(f *testing.F) {
	for _, q := range []string{"language=de&formats=srt,txt", "beam_size=5&vad=false&temperature=0.4", "beam_size=x", "priority=3",
		"formats=srt&formats=vtt", "enabled=true", "prompt=%00%ff", "word_timestamps=maybe"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		opts, rest, e := folderFields(vals)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Param == "" {
				t.Fatalf("error %+v", e)
			}
			return
		}
		for k := range rest {
			if _, ok := vals[k]; !ok {
				t.Fatalf("rest has %q, which was not given", k)
			}
		}
		opts.Check("request")
	})
}

// FuzzJobJSON: a JSON job request is read strictly or refused.
func FuzzJobJSON(f *testing.F) {
	for _, b := range []string{`{"path":"/w/a.wav"}`, `{"path":"/w/a.wav","language":"de","formats":["srt"],"priority":2}`,
		`{"path":"/w/a.wav","colour":"red"}`, `{"path":1}`, `[]`, `{"path":"/w/a.wav"}{}`, `{"beam_size":-1,"path":"x"}`} {
		f.Add([]byte(b))
	}
	s := &Server{c: Config{UploadDir: f.TempDir(), MaxUpload: 1024}, uploads: make(chan struct{}, 1)}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/jobs", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		sub, e := s.jobSubmission(httptest.NewRecorder(), r)
		if e != nil {
			if e.Status/100 != 4 {
				t.Fatalf("error %+v", e)
			}
			return
		}
		if sub.Path == "" || sub.Upload != "" {
			t.Fatalf("accepted %+v", sub)
		}
		var back map[string]any
		if err := json.Unmarshal(body, &back); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
	})
}

// FuzzQuery: the list's and the result's query strings are read or refused.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{"state=queued,done&limit=5", "state=", "limit=0", "limit=99999999999999999999", "state=x", "format=srt"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		fl, e := listFilter(vals)
		if e == nil && (fl.Limit < 1 || fl.Limit > 1000) {
			t.Fatalf("limit %d", fl.Limit)
		}
		r := httptest.NewRequest("GET", "/v1/jobs?"+vals.Encode(), nil)
		checkQuery(r, "state", "limit")
	})
}

// models is a Service for openAIFields, which asks for the model names alone.
type models struct{ Service }

func (models) Models(context.Context) ([]string, error) { return []string{"mini", "large-v3"}, nil }

// FuzzOpenAIFields: an OpenAI request's fields are read or refused.
func FuzzOpenAIFields(f *testing.F) {
	for _, q := range []string{"model=whisper-1&response_format=verbose_json&timestamp_granularities[]=word", "model=mini&language=German",
		"temperature=2", "stream=yes", "response_format=diarized_json", "model=gpt-9", "timestamp_granularities[]=word", "include[]=logprobs"} {
		f.Add(q)
	}
	s := &Server{svc: models{}}
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		req, e := s.openAIFields(context.Background(), vals, "transcribe")
		if e != nil {
			if e.Status/100 != 4 {
				t.Fatalf("error %+v", e)
			}
			return
		}
		switch req.format {
		case "json", "text", "srt", "vtt", "verbose_json":
		default:
			t.Fatalf("format %q", req.format)
		}
		if req.opts.Temperature != nil && (*req.opts.Temperature < 0 || *req.opts.Temperature > 1) {
			t.Fatalf("temperature %v", *req.opts.Temperature)
		}
	})
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"talk.m4a": "talk.m4a", "../../etc/passwd": "passwd", `C:\Users\a\rec.wav`: "rec.wav", ".hidden.wav": "hidden.wav",
		"": "upload", "..": "upload", "a\x00b\nc.wav": "abc.wav", "~$lock.wav": "lock.wav", strings.Repeat("é", 200) + ".wav": strings.Repeat("é", 98) + ".wav",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}
