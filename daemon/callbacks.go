package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/daemon/api"
	"github.com/verbatimhq/verbatim/daemon/queue"
)

const (
	// callbackTries is how many times a callback is tried before it is given up.
	callbackTries = 10
	// callbackTimeout bounds one delivery.
	callbackTimeout = 10 * time.Second
)

// callbackPayload is what a callback POSTs: the job as GET /v1/jobs/{id} shows it, and an
// event name.
type callbackPayload struct {
	Event string  `json:"event"` // job.done, job.failed, job.cancelled
	Job   api.Job `json:"job"`
}

// callbacks delivers the callbacks of ended jobs until ctx ends: at start (those a restart
// left), whenever a job ends (wake), and at their retry times. A delivery is a POST of
// callbackPayload as JSON with the header X-Verbatim-Signature: sha256=HMAC-SHA256 of the body
// keyed with the API token, so that the receiver can tell it came from this daemon. A 2xx
// answer is delivered; anything else is tried again with backoff, callbackTries times. A job's
// callback may be delivered more than once (a crash between the POST and its record): the
// payload's job id tells repeats apart.
func (s *service) callbacks(ctx context.Context, wake <-chan struct{}, token func() (string, error)) error {
	client := &http.Client{
		Timeout: callbackTimeout,
		Transport: &http.Transport{
			DialContext: s.callbackDialer(),
			Proxy:       nil, // never through a proxy: the URL is on this machine
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for {
		due, err := s.q.DueCallbacks(ctx, 16)
		if err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("cannot read the callbacks due")
		}
		for _, cb := range due {
			s.deliver(ctx, client, cb, token)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(time.Second):
		}
	}
}

// deliver makes one attempt at a callback and records it.
func (s *service) deliver(ctx context.Context, client *http.Client, cb queue.Callback, token func() (string, error)) {
	j, err := s.q.Get(ctx, cb.JobID)
	if err != nil {
		return
	}
	v := s.view(ctx, j)
	body, err := json.Marshal(callbackPayload{Event: "job." + string(j.State), Job: v})
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.URL, bytes.NewReader(body))
	if err != nil {
		s.q.CallbackDone(ctx, cb.JobID, false, err.Error(), time.Time{})
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "verbatim/"+s.c.Version)
	if tok, err := token(); err == nil {
		mac := hmac.New(sha256.New, []byte(tok))
		mac.Write(body)
		req.Header.Set("X-Verbatim-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := client.Do(req)
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case resp.StatusCode/100 != 2:
		reason = "answered " + resp.Status
	}
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return // stopping: the attempt did not happen as far as the record goes
	}
	bg := context.WithoutCancel(ctx)
	ev := s.log.Info().Int64("job", cb.JobID).Str("url", cb.URL).Int("attempt", cb.Attempts+1)
	switch {
	case reason == "":
		s.q.CallbackDone(bg, cb.JobID, true, "", time.Time{})
		ev.Msg("callback delivered")
	case cb.Attempts+1 >= callbackTries:
		s.q.CallbackDone(bg, cb.JobID, false, reason, time.Time{})
		s.log.Error().Int64("job", cb.JobID).Str("url", cb.URL).Str("reason", reason).Msg("callback given up")
	default:
		retry := time.Now().Add(callbackBackoff(cb.Attempts + 1))
		s.q.CallbackDone(bg, cb.JobID, false, reason, retry)
		s.log.Warn().Int64("job", cb.JobID).Str("url", cb.URL).Str("reason", reason).Time("retry_at", retry).Msg("callback failed: will retry")
	}
}

// callbackBackoff is the wait after the n-th failed delivery: 2 s, doubling, at most 10 minutes.
func callbackBackoff(n int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// callbackDialer dials only loopback addresses, unless the host is one of CallbackHosts: a name
// that resolves elsewhere (DNS rebinding) is refused at the moment of the connection.
func (s *service) callbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: callbackTimeout}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if slices.Contains(s.c.CallbackHosts, strings.ToLower(host)) {
			return d.DialContext(ctx, network, addr)
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			if !ip.IP.IsLoopback() {
				return nil, fmt.Errorf("callback host %s resolves to %s, not a loopback address", host, ip.IP)
			}
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("callback host %s does not resolve", host)
		}
		return d.DialContext(ctx, network, net.JoinHostPort(ips[0].IP.String(), port))
	}
}

// loopbackHost reports whether host is a loopback IP or localhost.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// randomHex is 8 random bytes in hex.
func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
