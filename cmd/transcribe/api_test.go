package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	sse "github.com/tmaxmax/go-sse"

	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/sidecar"
)

// The API's acceptance tests: the real binary serving on loopback, real HTTP, the official
// OpenAI Go client, a real SSE parser (go-sse), real signals.

// apiDaemon is a daemon serving the API and what a client needs to reach it.
type apiDaemon struct {
	*proc
	base, token, state, root string
}

// startAPI starts a daemon watching a new folder, with extra flags, and reads its token.
func startAPI(t *testing.T, extra ...string) *apiDaemon {
	t.Helper()
	base := t.TempDir()
	d := &apiDaemon{state: filepath.Join(base, "state"), root: mkdirs(t, filepath.Join(base, "watched"))}
	d.restart(t, extra...)
	return d
}

// restart starts the daemon (again) on the same folders.
func (d *apiDaemon) restart(t *testing.T, extra ...string) {
	t.Helper()
	d.proc = startDaemon(t, d.state, append(serveArgs(t, d.state, d.root), extra...))
	d.base = "http://" + d.addr
	out, errOut, code := run(t, "token", "--state-dir", d.state)
	if code != 0 {
		t.Fatalf("transcribe token: exit %d\n%s%s", code, out, errOut)
	}
	f := strings.Fields(out)
	d.token = f[len(f)-1]
}

// do sends a request with the token and returns the response's status and body.
func (d *apiDaemon) do(t *testing.T, method, path string, body io.Reader, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, d.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
		if header[i] == "Host" {
			req.Host = header[i+1]
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// multipartBody is a multipart form with the file's bytes in "file" and fields.
func multipartBody(t *testing.T, name string, data []byte, fields ...string) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		w.WriteField(fields[i], fields[i+1])
	}
	fw, err := w.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	w.Close()
	return &b, w.FormDataContentType()
}

// submit uploads data as a job and returns the job.
func (d *apiDaemon) submit(t *testing.T, name string, data []byte, fields ...string) queue.Job {
	t.Helper()
	body, ct := multipartBody(t, name, data, fields...)
	code, b, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %s", code, b)
	}
	var j queue.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// job reads a job.
func (d *apiDaemon) job(t *testing.T, id int64) queue.Job {
	t.Helper()
	code, b, _ := d.do(t, "GET", fmt.Sprintf("/v1/jobs/%d", id), nil)
	if code != http.StatusOK {
		t.Fatalf("GET job %d: %d %s", id, code, b)
	}
	var j queue.Job
	json.Unmarshal(b, &j)
	return j
}

// waitEnded polls a job until it has ended.
func (d *apiDaemon) waitEnded(t *testing.T, id int64, timeout time.Duration) queue.Job {
	t.Helper()
	var j queue.Job
	waitFor(t, timeout, func() bool {
		j = d.job(t, id)
		return j.State == queue.Done || j.State == queue.Failed || j.State == queue.Cancelled
	})
	return j
}

// errorCode reads an API error's code.
func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &e)
	return e.Error.Code
}

// uploadFiles lists what the upload folder holds.
func (d *apiDaemon) uploadFiles(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(d.state, "uploads")
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return files(t, dir)
}

// TestAPIOpenAIClient: the official OpenAI Go client, pointed at the daemon with its token as the
// API key, transcribes and translates in every response format, with word and segment
// timestamps, streams, lists the models, and gets OpenAI-shaped errors.
func TestAPIOpenAIClient(t *testing.T) {
	t.Parallel()
	d := startAPI(t)
	client := openai.NewClient(option.WithBaseURL(d.base+"/v1/"), option.WithAPIKey(d.token), option.WithMaxRetries(0))
	ctx := t.Context()
	wav, err := os.ReadFile("../../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	file := func() io.Reader { return openai.File(bytes.NewReader(wav), "jfk.wav", "audio/wav") }

	res, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{File: file(), Model: openai.AudioModelWhisper1})
	if err != nil {
		t.Fatal(err)
	}
	text := res.AsTranscription().Text
	if text == "" {
		t.Fatalf("json: no text: %s", res.RawJSON())
	}

	verbose, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{File: file(), Model: openai.AudioModelWhisper1,
		ResponseFormat: openai.AudioResponseFormatVerboseJSON, TimestampGranularities: []string{"word", "segment"}})
	if err != nil {
		t.Fatal(err)
	}
	v := verbose.AsTranscriptionVerbose()
	var joined strings.Builder
	for _, s := range v.Segments {
		joined.WriteString(s.Text)
	}
	// Word timing is on for this request (its granularity), so its text may differ from the
	// others': it is its segments'.
	if v.Duration < 10.9 || v.Duration > 11.1 || v.Language == "" || len(v.Segments) == 0 || len(v.Words) == 0 ||
		v.Text != strings.TrimSpace(joined.String()) {
		t.Errorf("verbose_json: duration %v, language %q, %d segments, %d words, text %q (segments %q)",
			v.Duration, v.Language, len(v.Segments), len(v.Words), v.Text, joined.String())
	}
	for i, s := range v.Segments {
		if s.End < s.Start || (i > 0 && s.Start < v.Segments[i-1].Start) || len(s.Tokens) == 0 {
			t.Errorf("segment %d: %+v", i, s)
		}
	}
	for i, w := range v.Words {
		if w.End < w.Start || w.Word == "" || (i > 0 && w.Start < v.Words[i-1].Start) {
			t.Errorf("word %d: %+v", i, w)
		}
	}

	// text, srt and vtt come back as text: the client's documented way is Post into a string.
	for _, format := range []openai.AudioResponseFormat{openai.AudioResponseFormatText, openai.AudioResponseFormatSRT, openai.AudioResponseFormatVTT} {
		var out string
		if err := client.Post(ctx, "audio/transcriptions", openai.AudioTranscriptionNewParams{File: file(), Model: openai.AudioModelWhisper1,
			ResponseFormat: format}, &out); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		switch format {
		case openai.AudioResponseFormatText:
			if strings.TrimSpace(out) != text {
				t.Errorf("text: %q, want %q", out, text)
			}
		case openai.AudioResponseFormatSRT:
			if cues, err := sidecar.ParseSRT(strings.NewReader(out)); err != nil || len(cues) == 0 {
				t.Errorf("srt: %v, %d cues:\n%s", err, len(cues), out)
			}
		case openai.AudioResponseFormatVTT:
			if cues, err := sidecar.ParseVTT(strings.NewReader(out)); err != nil || len(cues) == 0 {
				t.Errorf("vtt: %v, %d cues:\n%s", err, len(cues), out)
			}
		}
	}

	// Streaming: a delta per segment, then the whole text.
	stream := client.Audio.Transcriptions.NewStreaming(ctx, openai.AudioTranscriptionNewParams{File: file(), Model: openai.AudioModelWhisper1})
	var deltas strings.Builder
	done := ""
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "transcript.text.delta":
			deltas.WriteString(ev.Delta)
		case "transcript.text.done":
			done = ev.Text
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if done != text || strings.TrimSpace(deltas.String()) != text {
		t.Errorf("stream: deltas %q, done %q, want %q", deltas.String(), done, text)
	}

	tr, err := client.Audio.Translations.New(ctx, openai.AudioTranslationNewParams{File: file(), Model: openai.AudioModelWhisper1})
	if err != nil || tr.Text == "" {
		t.Errorf("translation: %+v %v", tr, err)
	}

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if !slices.Contains(ids, "whisper-1") {
		t.Errorf("models %v lack whisper-1", ids)
	}

	_, err = client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{File: file(), Model: "no-such-model"})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
	wrong := openai.NewClient(option.WithBaseURL(d.base+"/v1/"), option.WithAPIKey("vbt_wrong"), option.WithMaxRetries(0))
	_, err = wrong.Models.List(ctx)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
		t.Errorf("wrong key: %v", err)
	}
	// The OpenAI route keeps nothing once it has answered.
	waitFor(t, 10*time.Second, func() bool { return len(d.uploadFiles(t)) == 0 })
}

// TestAPISecurity: no token or a wrong one is 401; a foreign Host is 403 (DNS rebinding); a
// cross-site upload is refused with nothing kept; paths out of the allowed folders (.., an
// absolute one elsewhere, a symbolic link leading out) are refused; an upload too large, with a
// bad field, or one too many at once is refused with nothing left on disk; a callback off this
// machine is refused; a rotated token replaces the old one at once; the Unix socket is 0600; a
// token file others can read stops the daemon at start.
func TestAPISecurity(t *testing.T) {
	t.Parallel()
	socket := filepath.Join(t.TempDir(), "api.sock")
	d := startAPI(t, "--max-upload", "600KB", "--max-duration", "20s", "--max-uploads", "1", "--socket", socket)
	wav, _ := os.ReadFile("../../testdata/jfk.wav") // 352 KB, 11 s

	anon := func(method, path string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, d.base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, errorCode(b)
	}
	if code, _ := anon("GET", "/healthz"); code != http.StatusOK {
		t.Errorf("healthz without a token: %d", code)
	}
	if code, c := anon("GET", "/v1/jobs"); code != http.StatusUnauthorized || c != "missing_api_key" {
		t.Errorf("no token: %d %s", code, c)
	}
	if code, c := anon("GET", "/v1/jobs", "Authorization", "Bearer vbt_"+strings.Repeat("x", 43)); code != http.StatusUnauthorized || c != "invalid_api_key" {
		t.Errorf("wrong token: %d %s", code, c)
	}
	if code, b, _ := d.do(t, "GET", "/v1/jobs", nil, "Host", "attacker.example"); code != http.StatusForbidden || errorCode(b) != "host_not_allowed" {
		t.Errorf("Host attacker.example: %d %s", code, b)
	}
	if code, b, _ := d.do(t, "GET", "/v1/jobs", nil, "Host", "attacker.example:"+strings.Split(d.addr, ":")[1]); code != http.StatusForbidden {
		t.Errorf("Host attacker.example with the port: %d %s", code, b)
	}
	body, ct := multipartBody(t, "jfk.wav", wav)
	if code, b, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct, "Origin", "https://attacker.example"); code != http.StatusForbidden || errorCode(b) != "origin_not_allowed" {
		t.Errorf("cross-site upload: %d %s", code, b)
	}
	// A browser form post from another site carries no token either: refused before reading.
	if code, c := anon("POST", "/v1/jobs", "Origin", "null", "Content-Type", "application/x-www-form-urlencoded"); code != http.StatusForbidden || c != "origin_not_allowed" {
		t.Errorf("opaque-origin form post: %d %s", code, c)
	}

	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.wav")
	os.WriteFile(secret, wav, 0o644)
	if err := os.Symlink(secret, filepath.Join(d.root, "link.wav")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, code string }{
		{"../../etc/passwd", "invalid_path"},
		{d.root + "/../../../etc/passwd", "invalid_path"},
		{"/etc/passwd", "path_not_allowed"},
		{filepath.Join(d.root, "link.wav"), "path_not_allowed"},
		{filepath.Join(d.root, "linkdir", "secret.wav"), "path_not_allowed"},
		{filepath.Join(d.root, "missing.wav"), "file_not_found"},
	} {
		b, _ := json.Marshal(map[string]string{"path": c.path})
		code, resp, _ := d.do(t, "POST", "/v1/jobs", bytes.NewReader(b), "Content-Type", "application/json")
		if code/100 != 4 || errorCode(resp) != c.code {
			t.Errorf("path %s: %d %s, want %s", c.path, code, resp, c.code)
		}
	}
	b, _ := json.Marshal(map[string]any{"path": filepath.Join(d.root, "x.wav"), "output": outside})
	os.WriteFile(filepath.Join(d.root, "x.wav"), wav, 0o644)
	if code, resp, _ := d.do(t, "POST", "/v1/jobs", bytes.NewReader(b), "Content-Type", "application/json"); code != http.StatusForbidden || errorCode(resp) != "output_not_allowed" {
		t.Errorf("output outside: %d %s", code, resp)
	}
	for _, cb := range []string{"http://example.com/hook", "http://10.0.0.1/hook", "file:///etc/passwd"} {
		body, ct := multipartBody(t, "jfk.wav", wav, "callback_url", cb)
		if code, resp, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct); code != http.StatusBadRequest {
			t.Errorf("callback %s: %d %s", cb, code, resp)
		}
	}

	// Too large (declared, and streamed without a length), too long, one too many at once.
	big := append(slices.Clone(wav), wav...) // 704 KB > 600 KB
	body, ct = multipartBody(t, "big.wav", big)
	if code, resp, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct); code != http.StatusRequestEntityTooLarge || errorCode(resp) != "file_too_large" {
		t.Errorf("too large: %d %s", code, resp)
	}
	body, ct = multipartBody(t, "big.wav", big)
	if code, resp, _ := d.do(t, "POST", "/v1/jobs", io.MultiReader(body), "Content-Type", ct); code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large, streamed: %d %s", code, resp)
	}
	body, ct = multipartBody(t, "jfk.wav", wav, "colour", "red") // refused once the upload is in
	if code, resp, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct); code != http.StatusBadRequest || errorCode(resp) != "invalid_field" {
		t.Errorf("unknown field: %d %s", code, resp)
	}
	if got := d.uploadFiles(t); len(got) != 0 {
		t.Errorf("refused uploads left %q", got)
	}
	// An upload in progress holds the only slot: the next gets 429.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	slow := make(chan int)
	go func() {
		req, _ := http.NewRequest("POST", d.base+"/v1/jobs", pr)
		req.Header.Set("Authorization", "Bearer "+d.token)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	fw, _ := mw.CreateFormFile("file", "slow.wav")
	fw.Write(wav[:1000])
	time.Sleep(300 * time.Millisecond)
	body, ct = multipartBody(t, "jfk.wav", wav)
	code, resp, hdr := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("a second upload at once with --max-uploads 1: %d %s", code, resp)
	}
	fw.Write(wav[1000:])
	mw.Close()
	pw.Close()
	if code := <-slow; code != http.StatusAccepted {
		t.Errorf("the slow upload: %d", code)
	}
	if got := d.uploadFiles(t); len(got) != 1 {
		t.Errorf("the upload folder holds %q, want the accepted upload alone", got)
	}

	// The Unix socket: the user's alone, and the API with the token.
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi, err)
	}
	sc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest("GET", "http://verbatim/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	if resp, err := sc.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("over the socket: %v %v", resp, err)
	}

	// A rotated token works at once; the old one no longer does.
	old := d.token
	out, _, _ := run(t, "token", "rotate", "--state-dir", d.state)
	d.token = strings.Fields(out)[len(strings.Fields(out))-1]
	time.Sleep(300 * time.Millisecond)
	if code, _, _ := d.do(t, "GET", "/v1/jobs", nil); code != http.StatusOK {
		t.Errorf("new token: %d", code)
	}
	if code, c := anon("GET", "/v1/jobs", "Authorization", "Bearer "+old); code != http.StatusUnauthorized || c != "invalid_api_key" {
		t.Errorf("old token after the rotation: %d %s", code, c)
	}
	if _, err := d.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("the socket stays after the daemon: %v", err)
	}

	// A token file others can read stops the daemon at start with a clear message.
	os.Chmod(filepath.Join(d.state, "token"), 0o644)
	out, errOut, code := run(t, serveArgs(t, d.state, d.root)...)
	if code == 0 || !strings.Contains(errOut, "mode 0644 lets other users read it") || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("token mode 0644: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAPIUploadLimits: an upload too long or not audio is refused after it was received,
// and nothing of it stays on disk.
func TestAPIUploadLimits(t *testing.T) {
	t.Parallel()
	d := startAPI(t, "--max-duration", "5s")
	wav, _ := os.ReadFile("../../testdata/jfk.wav") // 11 s
	body, ct := multipartBody(t, "jfk.wav", wav)
	if code, resp, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct); code != http.StatusRequestEntityTooLarge || errorCode(resp) != "audio_too_long" {
		t.Errorf("too long: %d %s", code, resp)
	}
	body, ct = multipartBody(t, "notes.m4a", []byte(strings.Repeat("not audio\n", 100)))
	if code, resp, _ := d.do(t, "POST", "/v1/jobs", body, "Content-Type", ct); code != http.StatusBadRequest || errorCode(resp) != "invalid_file" {
		t.Errorf("not audio: %d %s", code, resp)
	}
	if got := d.uploadFiles(t); len(got) != 0 {
		t.Errorf("the upload folder holds %q", got)
	}
}

// callbackServer records the callbacks it receives, checking their signature with the token.
type callbackServer struct {
	t     *testing.T
	url   string
	token func() string

	mu    sync.Mutex
	calls map[int64]int // the calls answered 204
	fail  int           // how many calls to answer 503 first
	bad   []string
}

func newCallbackServer(t *testing.T, token func() string) *callbackServer {
	cs := &callbackServer{t: t, token: token, calls: map[int64]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(cs.token()))
		mac.Write(b)
		var p struct {
			Event string
			Job   queue.Job
		}
		json.Unmarshal(b, &p)
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if r.Header.Get("X-Verbatim-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			cs.bad = append(cs.bad, "bad signature")
		}
		if p.Event != "job."+string(p.Job.State) || p.Job.ID == 0 {
			cs.bad = append(cs.bad, string(b))
		}
		if cs.fail > 0 {
			cs.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		cs.calls[p.Job.ID]++
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cs.url = "http://" + ln.Addr().String() + "/hook"
	return cs
}

func (cs *callbackServer) count(id int64) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.calls[id]
}

// TestAPILoad: 50 clients upload short files at once (retrying when told 429); every job is
// done exactly once, none is lost, each callback arrives; the daemon's memory stays bounded.
func TestAPILoad(t *testing.T) {
	t.Parallel()
	d := startAPI(t)
	cb := newCallbackServer(t, func() string { return d.token })
	const n = 50
	ids := make([]int64, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		data := toneBytes(t, 0.5, 220+float64(i)*11)
		wg.Go(func() {
			<-start
			for try := 0; ; try++ {
				body, ct := multipartBody(t, fmt.Sprintf("c%02d.wav", i), data, "callback_url", cb.url)
				req, _ := http.NewRequest("POST", d.base+"/v1/jobs", body)
				req.Header.Set("Authorization", "Bearer "+d.token)
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Idempotency-Key", fmt.Sprintf("client-%d", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests && try < 200 {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("client %d: %d %s", i, resp.StatusCode, b)
					return
				}
				var j queue.Job
				json.Unmarshal(b, &j)
				ids[i] = j.ID
				return
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	peak := int64(0)
	for _, id := range ids {
		waitFor(t, 5*time.Minute, func() bool {
			peak = max(peak, rssOf(t, d.cmd.Process.Pid))
			j := d.job(t, id)
			return j.State == queue.Done || j.State == queue.Failed
		})
	}
	waitFor(t, time.Minute, func() bool {
		for _, id := range ids {
			if cb.count(id) == 0 {
				return false
			}
		}
		return true
	})
	if _, err := d.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	jobs := jobsOf(t, d.state)
	if len(jobs) != n || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != n {
		t.Errorf("%d jobs, %d distinct ids, for %d uploads", len(jobs), len(slices.Compact(slices.Sorted(slices.Values(ids)))), n)
	}
	transcribed := countLogs(allLogs(t, d.state), "transcribing")
	for _, j := range jobs {
		if j.State != queue.Done || j.Attempts != 1 || transcribed[j.Path] != 1 {
			t.Errorf("job %d: %s after %d attempts, transcribed %d times", j.ID, j.State, j.Attempts, transcribed[j.Path])
		}
		if c := cb.count(j.ID); c != 1 {
			t.Errorf("job %d: %d callbacks", j.ID, c)
		}
	}
	if len(cb.bad) > 0 {
		t.Errorf("bad callbacks: %q", cb.bad)
	}
	t.Logf("peak RSS while 50 clients uploaded and their jobs ran: %.1f MiB", float64(peak)/(1<<20))
}

// TestAPIKillAfterAccepted: the daemon is killed with SIGKILL right after it answered 202; once
// started again the job completes and its callback is called (again after a first delivery
// that the receiver refused).
func TestAPIKillAfterAccepted(t *testing.T) {
	t.Parallel()
	d := startAPI(t)
	cb := newCallbackServer(t, func() string { return d.token })
	cb.fail = 1
	j := d.submit(t, "talk.wav", toneBytes(t, 70, 330), "callback_url", cb.url)
	d.kill()
	d.restart(t)
	end := d.waitEnded(t, j.ID, 2*time.Minute)
	if end.State != queue.Done {
		t.Fatalf("after the restart: %+v", end)
	}
	waitFor(t, 30*time.Second, func() bool { return cb.count(j.ID) == 1 })
	if len(cb.bad) > 0 {
		t.Errorf("bad callbacks: %q", cb.bad)
	}
	// The receiver counts the delivery before the daemon records it: wait for the record.
	var view struct {
		Callback queue.CallbackState `json:"callback"`
	}
	waitFor(t, 10*time.Second, func() bool {
		_, b, _ := d.do(t, "GET", fmt.Sprintf("/v1/jobs/%d", j.ID), nil)
		view.Callback = queue.CallbackState{}
		json.Unmarshal(b, &view)
		return view.Callback.Delivered
	})
	if !view.Callback.Delivered || view.Callback.Attempts != 2 {
		t.Errorf("callback %+v: want delivered at the second attempt", view.Callback)
	}
	code, b, _ := d.do(t, "GET", fmt.Sprintf("/v1/jobs/%d/result?format=srt", j.ID), nil)
	if _, err := sidecar.ParseSRT(bytes.NewReader(b)); code != http.StatusOK || err != nil {
		t.Errorf("result: %d %v", code, err)
	}
}

// readEvents reads a job's server-sent events with go-sse until the stream ends.
func (d *apiDaemon) readEvents(t *testing.T, ctx context.Context, id int64) []sse.Event {
	t.Helper()
	evs, err := d.events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// events is readEvents for any goroutine: the events, or what went wrong.
func (d *apiDaemon) events(ctx context.Context, id int64) ([]sse.Event, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/jobs/%d/events", d.base, id), nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		return nil, fmt.Errorf("events: %d %s", resp.StatusCode, ct)
	}
	var out []sse.Event
	for ev, err := range sse.Read(resp.Body, nil) {
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// TestAPIEvents: a client watching a job from its submission sees its state, monotonic
// progress and every segment of the result, in order, before the end; one that comes after the
// end gets the same segments and the end at once; a job cancelled while it runs stops, its
// watcher hears so, and it writes no result.
func TestAPIEvents(t *testing.T) {
	t.Parallel()
	d := startAPI(t)
	j := d.submit(t, "talk.wav", toneBytes(t, 95, 440), "formats", "srt")
	evs := d.readEvents(t, t.Context(), j.ID)
	if len(evs) < 3 || evs[0].Type != "state" || evs[len(evs)-1].Type != "done" {
		t.Fatalf("events %+v", evs)
	}
	lastDone, lastPct := -1.0, -1.0
	var segs []string
	for _, ev := range evs {
		switch ev.Type {
		case "progress":
			var p struct {
				Percent float64 `json:"percent"`
				Done    float64 `json:"done_s"`
			}
			json.Unmarshal([]byte(ev.Data), &p)
			if p.Done < lastDone || p.Percent < lastPct || p.Percent > 100 {
				t.Errorf("progress went from %v s (%v%%) to %v s (%v%%)", lastDone, lastPct, p.Done, p.Percent)
			}
			lastDone, lastPct = p.Done, p.Percent
		case "segment":
			var s struct {
				ID   int    `json:"id"`
				Text string `json:"text"`
			}
			json.Unmarshal([]byte(ev.Data), &s)
			if s.ID != len(segs) {
				t.Errorf("segment %d after %d segments", s.ID, len(segs))
			}
			segs = append(segs, s.Text)
		case "done", "state":
		default:
			t.Errorf("event %q", ev.Type)
		}
	}
	if lastDone < 0 {
		t.Error("no progress event")
	}
	_, b, _ := d.do(t, "GET", fmt.Sprintf("/v1/jobs/%d/result", j.ID), nil)
	doc, err := sidecar.ReadDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range doc.Segments {
		want = append(want, s.Text)
	}
	if !slices.Equal(segs, want) {
		t.Errorf("segments heard %q, result %q", segs, want)
	}
	// After the end: the same segments, then the end.
	again := d.readEvents(t, t.Context(), j.ID)
	var segs2 []string
	for _, ev := range again {
		if ev.Type == "segment" {
			var s struct{ Text string }
			json.Unmarshal([]byte(ev.Data), &s)
			segs2 = append(segs2, s.Text)
		}
	}
	if !slices.Equal(segs2, want) || again[len(again)-1].Type != "done" {
		t.Errorf("late watcher: %d events, segments %q", len(again), segs2)
	}

	// Cancelled while running.
	k := d.submit(t, "long.wav", toneBytes(t, 600, 550))
	got := make(chan []sse.Event)
	go func() {
		evs, err := d.events(context.Background(), k.ID)
		if err != nil {
			t.Error(err)
		}
		got <- evs
	}()
	waitFor(t, time.Minute, func() bool { return d.job(t, k.ID).State == queue.Running })
	time.Sleep(time.Second)
	code, b, _ := d.do(t, "DELETE", fmt.Sprintf("/v1/jobs/%d", k.ID), nil)
	if code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if kevs := <-got; len(kevs) == 0 || kevs[len(kevs)-1].Type != "cancelled" {
		t.Errorf("the cancelled job's events: %+v", kevs)
	}
	if end := d.waitEnded(t, k.ID, 10*time.Second); end.State != queue.Cancelled {
		t.Errorf("cancelled job: %+v", end)
	}
	if code, b, _ := d.do(t, "GET", fmt.Sprintf("/v1/jobs/%d/result", k.ID), nil); code != http.StatusConflict || errorCode(b) != "job_not_done" {
		t.Errorf("result of a cancelled job: %d %s", code, b)
	}
	// The job after it runs: the worker went on.
	n := d.submit(t, "next.wav", toneBytes(t, 2, 660))
	if end := d.waitEnded(t, n.ID, time.Minute); end.State != queue.Done {
		t.Errorf("the job after the cancelled one: %+v", end)
	}
	// DELETE of an ended upload removes its files.
	if code, b, _ := d.do(t, "DELETE", fmt.Sprintf("/v1/jobs/%d", n.ID), nil); code != http.StatusOK {
		t.Errorf("DELETE of a done upload: %d %s", code, b)
	}
	if _, err := os.Stat(filepath.Dir(d.job(t, n.ID).Path)); !os.IsNotExist(err) {
		t.Errorf("the upload's folder after DELETE: %v", err)
	}
	if code, b, _ := d.do(t, "GET", fmt.Sprintf("/v1/jobs/%d/result", n.ID), nil); code != http.StatusGone {
		t.Errorf("result after DELETE: %d %s", code, b)
	}
}

// TestAPIJobsByPath: a job naming a file in a watched folder, with its own settings and an
// output folder inside it; an Idempotency-Key answers a retry with the first job and refuses
// its reuse for another request; the list shows the API's jobs.
func TestAPIJobsByPath(t *testing.T) {
	t.Parallel()
	d := startAPI(t)
	wav, _ := os.ReadFile("../../testdata/jfk.wav")
	// Not in the watched folder's root: the watcher would take it too; the API job has other
	// settings (txt into an output folder), so both run, once each.
	f := filepath.Join(mkdirs(t, filepath.Join(d.root, "calls")), "call.wav")
	os.WriteFile(f, wav, 0o644)
	out := filepath.Join(d.root, "calls", "transcripts")
	req, _ := json.Marshal(map[string]any{"path": f, "formats": []string{"txt"}, "output": out, "priority": 5, "language": "en"})
	code, b, _ := d.do(t, "POST", "/v1/jobs", bytes.NewReader(req), "Content-Type", "application/json", "Idempotency-Key", "k-1")
	if code != http.StatusAccepted {
		t.Fatalf("path job: %d %s", code, b)
	}
	var j queue.Job
	json.Unmarshal(b, &j)
	if j.Priority != 5 || j.Origin != queue.OriginAPI || j.Path != f {
		t.Errorf("job %+v", j)
	}
	code, b, hdr := d.do(t, "POST", "/v1/jobs", bytes.NewReader(req), "Content-Type", "application/json", "Idempotency-Key", "k-1")
	var again queue.Job
	json.Unmarshal(b, &again)
	if code != http.StatusAccepted || again.ID != j.ID || hdr.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d %s %v", code, b, hdr)
	}
	other, _ := json.Marshal(map[string]any{"path": f, "formats": []string{"srt"}})
	if code, b, _ := d.do(t, "POST", "/v1/jobs", bytes.NewReader(other), "Content-Type", "application/json", "Idempotency-Key", "k-1"); code != http.StatusUnprocessableEntity {
		t.Errorf("key reused for another request: %d %s", code, b)
	}
	if end := d.waitEnded(t, j.ID, time.Minute); end.State != queue.Done {
		t.Fatalf("path job: %+v", end)
	}
	if _, err := os.Stat(filepath.Join(out, "call.txt")); err != nil {
		t.Errorf("the output folder: %v", err)
	}
	code, b, _ = d.do(t, "GET", "/v1/jobs?state=done", nil)
	var list struct{ Data []queue.Job }
	json.Unmarshal(b, &list)
	if code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != j.ID {
		t.Errorf("list: %d %s", code, b)
	}
	for _, bad := range []string{"/v1/jobs?state=sleeping", "/v1/jobs?limit=0", "/v1/jobs?color=red", fmt.Sprintf("/v1/jobs/%d/result?format=docx", j.ID)} {
		if code, b, _ := d.do(t, "GET", bad, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, b)
		}
	}
	if code, b, _ := d.do(t, "GET", "/v1/jobs/999", nil); code != http.StatusNotFound || errorCode(b) != "job_not_found" {
		t.Errorf("unknown job: %d %s", code, b)
	}
	if code, b, _ := d.do(t, "PUT", "/v1/jobs/1", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d %s", code, b)
	}
}

// TestAPILargeUpload: a 400 MB upload streams to disk, not into memory: the daemon's peak
// resident memory stays far below the upload's size; refused for its length, it leaves nothing.
func TestAPILargeUpload(t *testing.T) {
	t.Parallel()
	d := startAPI(t, "--max-duration", "1h")
	const size = 400 << 20 // 16-bit mono at 16 kHz: 3.6 hours
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", "long.wav")
		if err == nil {
			_, err = fw.Write(wavHeader(size))
		}
		zeros := make([]byte, 1<<20)
		for n := 0; err == nil && n < size; n += len(zeros) {
			_, err = fw.Write(zeros)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	before := rssOf(t, d.cmd.Process.Pid)
	code, b, _ := d.do(t, "POST", "/v1/jobs", pr, "Content-Type", mw.FormDataContentType())
	if code != http.StatusRequestEntityTooLarge || errorCode(b) != "audio_too_long" {
		t.Errorf("a 3.6-hour upload with --max-duration 1h: %d %s", code, b)
	}
	peak := hwmOf(t, d.cmd.Process.Pid)
	t.Logf("a %d MiB upload: the daemon's resident memory %.0f MiB before, peak %.0f MiB", size>>20, float64(before)/(1<<20), float64(peak)/(1<<20))
	if peak > size/2 {
		t.Errorf("peak memory %d MiB for a %d MiB upload: it is held in memory", peak>>20, size>>20)
	}
	if got := d.uploadFiles(t); len(got) != 0 {
		t.Errorf("the upload folder holds %q", got)
	}
}

// wavHeader is the 44-byte header of a 16 kHz mono 16-bit WAV file with n bytes of samples.
func wavHeader(n int) []byte {
	h := make([]byte, 44)
	copy(h, "RIFF")
	le32 := func(at, v int) { h[at], h[at+1], h[at+2], h[at+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	le32(4, 36+n)
	copy(h[8:], "WAVEfmt ")
	le32(16, 16)
	h[20], h[22] = 1, 1 // PCM, mono
	le32(24, 16000)
	le32(28, 32000)
	h[32], h[34] = 2, 16
	copy(h[36:], "data")
	le32(40, n)
	return h
}

// hwmOf is the peak resident memory of process pid, in bytes (Linux /proc).
func hwmOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
