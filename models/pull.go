package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/durable"
)

// PartialSuffix ends the name of a download in progress, kept in the models folder so that the
// next Pull resumes it.
const PartialSuffix = ".partial"

// PartialPath is where Pull keeps e's unfinished download in dir.
func PartialPath(dir string, e Entry) string { return filepath.Join(dir, e.File()+PartialSuffix) }

// PullOptions configures Pull. The zero value downloads from DefaultBaseURL.
type PullOptions struct {
	// URL is the file's full address (a mirror); the file is still checked against the entry.
	URL string
	// BaseURL is a folder address that the entry's file name is appended to (DefaultBaseURL
	// when empty); ignored when URL is set.
	BaseURL string
	// Client makes the requests; nil means one with connect, TLS and response-header timeouts
	// but no overall limit (a large model takes long).
	Client *http.Client
	// UserAgent is sent with each request when not empty.
	UserAgent string
	// StallTimeout aborts a transfer when no data has arrived for this long (default one
	// minute); the partial file is kept.
	StallTimeout time.Duration
	// Progress, when set, is called on the calling goroutine with the bytes on disk and the
	// total: once before the transfer (done = bytes kept from an earlier try) and as data arrives.
	Progress func(done, total int64)
}

// PullResult describes what Pull did.
type PullResult struct {
	Path             string // the installed file
	AlreadyInstalled bool   // a file of the right size was there; nothing was fetched
	Resumed          int64  // bytes kept from an earlier, interrupted download
	Fetched          int64  // bytes received in this call
}

// InterruptedError is a transfer that stopped before the end; the partial file is kept and the
// next Pull continues it.
type InterruptedError struct {
	Entry   Entry
	Partial string
	Have    int64 // bytes in the partial file
	Err     error // why: the context's error, a network error, a stall
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("download of %s interrupted at %s of %s (kept %s; run the same command to resume): %v",
		e.Entry.Name, HumanSize(e.Have), HumanSize(e.Entry.Size), e.Partial, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// errStalled is the cancel cause when no data arrives for StallTimeout.
var errStalled = errors.New("transfer stalled")

// Pull downloads e into dir (created if missing) and installs it as dir/e.File().
//
// The bytes go to a partial file (PartialPath) and are hashed as they arrive. A partial file left
// by an earlier call is re-hashed and continued with an HTTP Range request; a server that ignores
// Range (200 instead of 206) restarts it from zero. When all bytes are there and the size and
// SHA-256 match e, the file is synced, renamed into place and the folder synced, so a crash leaves
// either no model or the whole one. A mismatch deletes the partial file and installs nothing
// (*ChecksumError, ErrChecksum). A cancelled ctx, a dropped connection or a stall keep the partial
// file for the next call (*InterruptedError, wrapping ctx.Err() where that was the cause). A file
// of e's size already at the destination is left alone (AlreadyInstalled; Verify checks it).
//
// Two Pulls of the same entry into the same folder at once are not supported.
func Pull(ctx context.Context, dir string, e Entry, opts PullOptions) (res PullResult, err error) {
	src := opts.URL
	if src == "" {
		src = e.URL(opts.BaseURL)
	}
	if err := checkURL(src); err != nil {
		return res, err
	}
	dst := filepath.Join(dir, e.File())
	res.Path = dst
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() && fi.Size() == e.Size {
		res.AlreadyInstalled = true
		return res, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("pull %s: %w", e.Name, err)
	}
	part := PartialPath(dir, e)
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", e.Name, err)
	}
	p := &puller{e: e, src: src, opts: opts, f: f, part: part, h: sha256.New()}
	defer func() {
		if p.f == nil {
			return
		}
		p.f.Close()
		if err != nil && p.have == 0 { // nothing worth keeping for a resume
			os.Remove(part)
		}
	}()
	if err := p.resume(ctx); err != nil {
		return res, err
	}
	res.Resumed = p.have
	if opts.Progress != nil {
		opts.Progress(p.have, e.Size)
	}
	if p.have < e.Size {
		err := p.fetch(ctx, true)
		res.Resumed, res.Fetched = p.resumed, p.fetched
		if err != nil {
			return res, err
		}
	}

	sum := hex.EncodeToString(p.h.Sum(nil))
	if p.have != e.Size || sum != e.SHA256 {
		if err := p.discard(); !errors.Is(err, ErrChecksum) {
			return res, fmt.Errorf("pull %s: remove bad download: %w", e.Name, err)
		}
		cerr := &ChecksumError{Path: src, Entry: e, Size: p.have, SHA256: sum}
		return res, fmt.Errorf("pull %s: the download was discarded: %w", e.Name, cerr)
	}
	f, p.f = p.f, nil
	if err := f.Sync(); err != nil {
		f.Close()
		return res, fmt.Errorf("pull %s: sync: %w", e.Name, err)
	}
	if err := f.Close(); err != nil {
		return res, fmt.Errorf("pull %s: %w", e.Name, err)
	}
	if err := os.Rename(part, dst); err != nil {
		return res, fmt.Errorf("pull %s: install: %w", e.Name, err)
	}
	_ = durable.SyncDir(dir) // the rename has happened; a folder that cannot be synced is not fatal
	if fi, err := os.Stat(dst); err == nil {
		saveHash(dst, fi, sum) // a cache: failing to write it costs a re-hash later, nothing more
	}
	return res, nil
}

// puller is the state of one Pull.
type puller struct {
	e       Entry
	src     string
	opts    PullOptions
	f       *os.File
	part    string
	h       hash.Hash
	have    int64 // bytes in f, all of them hashed into h
	resumed int64 // bytes of have that were there before this call
	fetched int64 // bytes received in this call
}

// resume hashes what an earlier call left in the partial file and positions f after it.
func (p *puller) resume(ctx context.Context) error {
	n, err := p.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("pull %s: %w", p.e.Name, err)
	}
	if n > p.e.Size { // not ours or not this file: start again
		return p.restart()
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("pull %s: %w", p.e.Name, err)
	}
	if _, err := io.CopyN(p.h, readerCtx{ctx, p.f}, n); err != nil {
		return fmt.Errorf("pull %s: read %s: %w", p.e.Name, p.part, err)
	}
	p.have, p.resumed = n, n
	return nil
}

// restart empties the partial file.
func (p *puller) restart() error {
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("pull %s: %w", p.e.Name, err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("pull %s: %w", p.e.Name, err)
	}
	p.h.Reset()
	p.have, p.resumed = 0, 0
	return nil
}

// fetch requests the bytes after p.have and appends them. retry allows one restart from zero
// when the server cannot satisfy the range.
func (p *puller) fetch(parent context.Context, retry bool) error {
	stall := p.opts.StallTimeout
	if stall <= 0 {
		stall = time.Minute
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.src, nil)
	if err != nil {
		return fmt.Errorf("pull %s: %w", p.e.Name, err)
	}
	req.Header.Set("Accept-Encoding", "identity") // the bytes as stored, or the hash means nothing
	if p.opts.UserAgent != "" {
		req.Header.Set("User-Agent", p.opts.UserAgent)
	}
	if p.have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", p.have))
	}
	resp, err := client(p.opts.Client).Do(req)
	if err != nil {
		return p.interrupted(ctx, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fmt.Errorf("pull %s: %s: %w", p.e.Name, p.src, err)
		}
		if start != p.have {
			return fmt.Errorf("pull %s: %s: asked for bytes from %d, got them from %d", p.e.Name, p.src, p.have, start)
		}
		if total >= 0 && total != p.e.Size {
			return fmt.Errorf("pull %s: %s is %d bytes, but %s is %d bytes: %w", p.e.Name, p.src, total, p.e.Name, p.e.Size, p.discard())
		}
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != p.e.Size {
			return fmt.Errorf("pull %s: %s is %d bytes, but %s is %d bytes: %w", p.e.Name, p.src, resp.ContentLength, p.e.Name, p.e.Size, p.discard())
		}
		if p.have > 0 { // the server ignored Range and sends the whole file
			if err := p.restart(); err != nil {
				return err
			}
			if p.opts.Progress != nil {
				p.opts.Progress(0, p.e.Size)
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if !retry || p.have == 0 {
			return fmt.Errorf("pull %s: GET %s: %s", p.e.Name, p.src, resp.Status)
		}
		// The partial file does not fit the server's file: start again.
		resp.Body.Close()
		if err := p.restart(); err != nil {
			return err
		}
		return p.fetch(parent, false)
	default:
		return fmt.Errorf("pull %s: GET %s: %s", p.e.Name, p.src, resp.Status)
	}

	buf := make([]byte, 1<<20)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			watchdog.Reset(stall)
			if p.have+int64(n) > p.e.Size {
				return fmt.Errorf("pull %s: %s sends more than %d bytes: %w", p.e.Name, p.src, p.e.Size, p.discard())
			}
			if _, err := p.f.Write(buf[:n]); err != nil {
				return fmt.Errorf("pull %s: write %s: %w", p.e.Name, p.part, err)
			}
			p.h.Write(buf[:n])
			p.have += int64(n)
			p.fetched += int64(n)
			if p.opts.Progress != nil {
				p.opts.Progress(p.have, p.e.Size)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return p.interrupted(ctx, rerr)
		}
	}
	if p.have < p.e.Size { // the body ended early without an error (no Content-Length)
		return p.interrupted(ctx, io.ErrUnexpectedEOF)
	}
	return nil
}

// discard removes the partial file once the server has shown that its file is not the entry's;
// it returns ErrChecksum, or the error that kept the file from being removed.
func (p *puller) discard() error {
	p.f.Close()
	p.f = nil
	if err := os.Remove(p.part); err != nil {
		return err
	}
	return ErrChecksum
}

// interrupted syncs what arrived and explains why the transfer stopped.
func (p *puller) interrupted(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		err = cause // the caller's cancellation or deadline, or errStalled
	}
	if errors.Is(err, errStalled) {
		err = fmt.Errorf("%w: no data for %s", errStalled, p.stall())
	}
	if p.have == 0 {
		return fmt.Errorf("pull %s: %w", p.e.Name, err)
	}
	if p.f != nil {
		if serr := p.f.Sync(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return &InterruptedError{Entry: p.e, Partial: p.part, Have: p.have, Err: err}
}

func (p *puller) stall() time.Duration {
	if p.opts.StallTimeout > 0 {
		return p.opts.StallTimeout
	}
	return time.Minute
}

// parseContentRange reads "bytes START-END/TOTAL"; total is -1 when the server writes "*".
func parseContentRange(s string) (start, total int64, err error) {
	bad := fmt.Errorf("bad Content-Range %q", s)
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, bad
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, bad
	}
	first, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, bad
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil || start < 0 {
		return 0, 0, bad
	}
	if size == "*" {
		return start, -1, nil
	}
	if total, err = strconv.ParseInt(size, 10, 64); err != nil || total < 0 {
		return 0, 0, bad
	}
	return start, total, nil
}

// checkURL allows HTTPS anywhere and plain HTTP only to this machine (tests, a local mirror).
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("model URL: %w", err)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("model URL %s: only https (or http to this machine) is allowed", s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// client returns c, or the default download client, with redirects held to checkURL.
func client(c *http.Client) *http.Client {
	if c == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		c = &http.Client{Transport: t}
	} else {
		cc := *c
		c = &cc
	}
	if c.CheckRedirect == nil {
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return checkURL(req.URL.String())
		}
	}
	return c
}

// readerCtx stops a long read (hashing gigabytes) when ctx is done.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(b)
}
