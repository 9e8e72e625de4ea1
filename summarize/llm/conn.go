package llm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what is read from a server, so that a broken or hostile one cannot exhaust memory.
const (
	maxJSONBody  = 64 << 20 // a JSON answer (model lists, /api/show, a non-streamed chat answer)
	maxErrorBody = 64 << 10 // the body of an error answer
	maxLine      = 1 << 20  // one NDJSON line or one SSE event of a streamed answer
)

// Retry waits: the first retry waits retryBase, each further one twice as long, up to retryMax;
// a Retry-After from the server is honoured up to retryAfterMax.
const (
	retryBase     = 250 * time.Millisecond
	retryMax      = 4 * time.Second
	retryAfterMax = 30 * time.Second
)

// conn is what both clients share: where the server is, how to reach it, and the request
// machinery (retries, timeouts, error answers).
type conn struct {
	label    string   // "ollama at http://127.0.0.1:11434": every error starts with it
	endpoint string   // as configured, password redacted
	base     *url.URL // request paths are appended to its path
	hc       *http.Client
	apiKey   string
	timeout  time.Duration
	retries  int
}

func (c *conn) Endpoint() string { return c.endpoint }

// call runs f under the call's timeout, and turns a failure caused by the caller's context or by
// the timeout into an error that says so (and wraps context.Canceled or DeadlineExceeded).
func (c *conn) call(ctx context.Context, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := f(cctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return &tagged{msg: fmt.Sprintf("%s: stopped: %v", c.label, ctx.Err()), tag: ctx.Err(), cause: err}
	case cctx.Err() != nil:
		return &tagged{msg: fmt.Sprintf("%s: no complete answer within %v", c.label, c.timeout), tag: context.DeadlineExceeded, cause: err}
	}
	return err
}

// url is the full URL of path on the server.
func (c *conn) url(path string) string {
	u := *c.base
	u.Path += path
	return u.String()
}

// do sends a request, trying again (c.retries times at most) after a connection failure or a
// 5xx or 429 answer, and returns the response once its status is 2xx: from then on the caller
// reads the answer and nothing is retried. body, if not nil, is sent as JSON.
func (c *conn) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("%s: %s %s: encoding the request: %v", c.label, method, path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %v", c.label, method, path, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json, application/x-ndjson, text/event-stream")
		if c.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.apiKey)
		}
		resp, err := c.hc.Do(req)
		wait := time.Duration(-1) // none asked for: back off
		var fail error
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", c.label, method, path, ctx.Err())
			}
			fail = c.transportError(method, path, err, attempt+1)
			if !retryable(err) {
				return nil, fail
			}
		} else {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return resp, nil
			}
			se := readStatusError(resp)
			se.label, se.method, se.path, se.attempts = c.label, method, path, attempt+1
			fail = se
			if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
				return nil, fail
			}
			wait = retryAfter(resp.Header.Get("Retry-After"))
		}
		if attempt >= c.retries {
			return nil, fail
		}
		if wait < 0 {
			wait = min(retryBase<<attempt, retryMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fail
		case <-t.C:
		}
	}
}

// retryable reports whether a failure to get any answer may be passing.
func retryable(err error) bool {
	var cert *tls.CertificateVerificationError
	return !errors.Is(err, ErrRemote) && !errors.As(err, &cert)
}

// retryAfter reads a Retry-After header: the wait it asks for (capped), or -1 if none.
func retryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return -1
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return -1
		}
		return min(time.Duration(min(s, 3600))*time.Second, retryAfterMax)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(time.Until(t), 0), retryAfterMax)
	}
	return -1
}

// transportError describes a request that got no answer at all.
func (c *conn) transportError(method, path string, err error, attempts int) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL; the label names the server
	}
	if errors.Is(err, ErrRemote) {
		return err
	}
	tries := ""
	if attempts > 1 {
		tries = fmt.Sprintf(" after %d attempts", attempts)
	}
	return &tagged{
		msg:   fmt.Sprintf("%s: %s %s: no answer%s (is the server running?): %v", c.label, method, path, tries, err),
		tag:   ErrUnavailable,
		cause: err,
	}
}

// getJSON GETs path and decodes the JSON answer into out.
func (c *conn) getJSON(ctx context.Context, path string, out any) error {
	return c.roundTrip(ctx, http.MethodGet, path, nil, out)
}

// postJSON POSTs in as JSON to path and decodes the JSON answer into out (nil: read and drop it).
func (c *conn) postJSON(ctx context.Context, path string, in, out any) error {
	return c.roundTrip(ctx, http.MethodPost, path, in, out)
}

func (c *conn) roundTrip(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s: %s %s: reading the answer: %v", c.label, method, path, err)
	case len(data) > maxJSONBody:
		return fmt.Errorf("%s: %s %s: the answer is larger than %d MiB", c.label, method, path, maxJSONBody>>20)
	case out == nil:
		return nil
	}
	if err := decodeObject(data, out); err != nil {
		return fmt.Errorf("%s: %s %s: the answer is not the expected JSON (%v): %s", c.label, method, path, err, snippet(data))
	}
	return nil
}

// decodeObject decodes data, which must be a JSON object, into out.
func decodeObject(data []byte, out any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return errors.New("not a JSON object")
	}
	return json.Unmarshal(data, out)
}

// statusError is a non-2xx answer.
type statusError struct {
	label, method, path string
	status              int
	statusLine          string // "404 Not Found"
	msg                 string // what the body says, or ""
	errType, code       string // OpenAI error fields, if any
	attempts            int
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: %s %s: %s", e.label, e.method, e.path, e.statusLine)
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", e.attempts)
	}
	return s
}

// Is classifies the answer for errors.Is.
func (e *statusError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.status == http.StatusServiceUnavailable
	case ErrModelNotFound:
		return e.status == http.StatusNotFound && (e.code == "model_not_found" || strings.Contains(strings.ToLower(e.msg), "model"))
	case ErrContextExceeded:
		return contextExceeded(e.errType, e.code, e.msg)
	}
	return false
}

// contextExceeded recognises a refusal of a prompt too long for the context window: llama.cpp's
// exceed_context_size_error, OpenAI's context_length_exceeded, and the usual wordings.
func contextExceeded(typ, code, msg string) bool {
	if typ == "exceed_context_size_error" || code == "context_length_exceeded" {
		return true
	}
	m := strings.ToLower(msg)
	return (strings.Contains(m, "context length") || strings.Contains(m, "context size") || strings.Contains(m, "context window")) &&
		(strings.Contains(m, "exceed") || strings.Contains(m, "too long") || strings.Contains(m, "overflow"))
}

// readStatusError reads what an error answer says.
func readStatusError(resp *http.Response) *statusError {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &statusError{status: resp.StatusCode, statusLine: resp.Status}
	if e.statusLine == "" {
		e.statusLine = strconv.Itoa(resp.StatusCode)
	}
	e.msg, e.errType, e.code = errorBody(data)
	return e
}

// errorBody reads an error body: Ollama's {"error":"..."}, OpenAI's {"error":{"message","type",
// "code"}}, {"message":...} or {"detail":...}; else an HTML page's title, or the text itself.
func errorBody(data []byte) (msg, typ, code string) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "", "", ""
	}
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if decodeObject(data, &v) == nil {
		if msg, typ, code = errorValue(v.Error); msg != "" {
			return msg, typ, code
		}
		if msg, _, _ = errorValue(v.Message); msg != "" {
			return msg, "", ""
		}
		if msg, _, _ = errorValue(v.Detail); msg != "" {
			return msg, "", ""
		}
	}
	if data[0] == '<' {
		if m := htmlTitle.FindSubmatch(data); m != nil {
			return fmt.Sprintf("an HTML page titled %q", clip(string(bytes.TrimSpace(m[1])), 100)), "", ""
		}
		return "an HTML page", "", ""
	}
	return snippet(data), "", ""
}

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// errorValue reads an "error" member: a string, or an object with message, type and code (code
// may be a string or a number); msg is "" when there is none.
func errorValue(raw json.RawMessage) (msg, typ, code string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return clip(s, 500), "", ""
	}
	var o struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &o) == nil {
		var cs string
		if json.Unmarshal(o.Code, &cs) != nil {
			cs = strings.Trim(string(bytes.TrimSpace(o.Code)), `"`)
		}
		if o.Message == "" {
			o.Message = "an error without a message: " + snippet(raw)
		}
		return clip(o.Message, 500), o.Type, cs
	}
	return snippet(raw), "", ""
}

// snippet quotes the start of data for an error message.
func snippet(data []byte) string {
	return strconv.Quote(clip(string(data), 120))
}

// clip shortens s to at most n bytes, on a character boundary, marking the cut, and makes it
// valid UTF-8.
func clip(s string, n int) string {
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "�")
}

// tagged is an error with its own message that errors.Is also matches against tag (a sentinel or
// a context error) and whose cause, if any, stays reachable with errors.As.
type tagged struct {
	msg   string
	tag   error
	cause error
}

func (e *tagged) Error() string { return e.msg }

func (e *tagged) Unwrap() []error {
	if e.cause == nil {
		return []error{e.tag}
	}
	return []error{e.tag, e.cause}
}
