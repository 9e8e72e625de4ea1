package api

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server.
type Config struct {
	// Version is reported by /healthz.
	Version string
	// StateDir holds the token (TokenFile); UploadDir the uploads being received.
	StateDir, UploadDir string
	// MaxUpload is the largest upload in bytes; MaxDuration the longest audio an upload may
	// hold; MaxUploads how many uploads are received at once (more get 429).
	MaxUpload   int64
	MaxDuration time.Duration
	MaxUploads  int
	// AllowOrigins are the browser origins (scheme://host[:port]) allowed to call the API.
	AllowOrigins []string
	Log          zerolog.Logger
	// Paused, if not nil, says why the daemon's queue is paused ("" when it is not), for
	// /healthz.
	Paused func() string
}

// Defaults of Config's limits.
const (
	DefaultMaxUpload   = 4 << 30
	DefaultMaxDuration = 24 * time.Hour
	DefaultMaxUploads  = 4
)

// Server serves the API.
type Server struct {
	c       Config
	svc     Service
	tokens  *tokenSource
	uploads chan struct{} // a slot per upload being received
}

// New returns the server of svc. It reads the API token, making it on the first start, and
// fails when the token's file is not safe (see LoadToken).
func New(c Config, svc Service) (*Server, error) {
	if _, err := LoadToken(c.StateDir); err != nil {
		return nil, err
	}
	if c.MaxUpload <= 0 {
		c.MaxUpload = DefaultMaxUpload
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.MaxUploads <= 0 {
		c.MaxUploads = DefaultMaxUploads
	}
	return &Server{c: c, svc: svc, tokens: &tokenSource{path: filepath.Join(c.StateDir, TokenFile)},
		uploads: make(chan struct{}, c.MaxUploads)}, nil
}

// Handler is the API for a TCP listener at addr (a loopback address and its port): requests
// must name it, or localhost with its port, as their Host.
func (s *Server) Handler(addr net.Addr) http.Handler {
	port := ""
	if a, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
	}
	hosts := []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port}
	return s.chain(func(r *http.Request) *Error {
		if !slices.Contains(hosts, strings.ToLower(r.Host)) {
			return Errorf(http.StatusForbidden, "host_not_allowed",
				"Host %q is not this server's loopback address (a page reaching it by another name is refused)", r.Host)
		}
		return nil
	})
}

// SocketHandler is the API for the Unix socket: no Host to check (only the user can connect).
func (s *Server) SocketHandler() http.Handler { return s.chain(nil) }

// chain is the routes behind the checks every request passes: its Host (hostOK), its Origin,
// its token (all but /healthz).
func (s *Server) chain(hostOK func(*http.Request) *Error) http.Handler {
	mux := s.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.c.Log.Error().Interface("panic", v).Str("path", r.URL.Path).Msg("API handler panicked")
				writeError(w, Errorf(http.StatusInternalServerError, "internal_error", "internal error"))
			}
		}()
		if hostOK != nil {
			if e := hostOK(r); e != nil {
				writeError(w, e)
				return
			}
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			if !s.originAllowed(origin) {
				writeError(w, Errorf(http.StatusForbidden, "origin_not_allowed",
					"requests from web pages are refused: Origin %q is not allowed (allow_origins in the daemon's configuration)", origin))
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions { // a preflight carries no token
				h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if r.URL.Path != "/healthz" {
			if e := s.authorized(r); e != nil {
				if e.Status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="verbatim"`)
				}
				writeError(w, e)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// originAllowed reports whether a browser origin may call the API.
func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.c.AllowOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// authorized checks the request's bearer token.
func (s *Server) authorized(r *http.Request) *Error {
	tok, err := s.tokens.current()
	if err != nil {
		s.c.Log.Error().Err(err).Msg("the API token cannot be used: every request is refused until it is fixed")
		return Errorf(http.StatusServiceUnavailable, "token_unusable", "the server's API token file cannot be used (see its log)")
	}
	h := r.Header.Get("Authorization")
	given, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || given == "" {
		return Errorf(http.StatusUnauthorized, "missing_api_key",
			"this API needs the token that `transcribe token` prints, as the header Authorization: Bearer TOKEN")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(given)), []byte(tok)) != 1 {
		return Errorf(http.StatusUnauthorized, "invalid_api_key", "the token given is not this server's (`transcribe token` prints it)")
	}
	return nil
}

// routes are the API's routes. A path with a method it does not take answers 405, any other
// path 404, both as JSON errors.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := map[string]string{"status": "ok", "version": s.c.Version}
		if s.c.Paused != nil {
			if p := s.c.Paused(); p != "" {
				h["paused"] = p // the queue is paused: "on battery"
			}
		}
		writeJSON(w, http.StatusOK, h)
	})
	mux.HandleFunc("POST /v1/jobs", s.postJob)
	mux.HandleFunc("GET /v1/jobs", s.listJobs)
	mux.HandleFunc("GET /v1/jobs/{id}", s.getJob)
	mux.HandleFunc("DELETE /v1/jobs/{id}", s.deleteJob)
	mux.HandleFunc("GET /v1/jobs/{id}/events", s.jobEvents)
	mux.HandleFunc("GET /v1/jobs/{id}/result", s.jobResult)
	mux.HandleFunc("POST /v1/audio/transcriptions", func(w http.ResponseWriter, r *http.Request) { s.openAI(w, r, "transcribe") })
	mux.HandleFunc("POST /v1/audio/translations", func(w http.ResponseWriter, r *http.Request) { s.openAI(w, r, "translate") })
	mux.HandleFunc("GET /v1/models", s.listModels)
	for _, p := range []string{"/healthz", "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/jobs/{id}/result",
		"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s does not take %s", r.URL.Path, r.Method))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(http.StatusNotFound, "not_found", "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// writeJSON writes v as the response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, Errorf(http.StatusInternalServerError, "internal_error", "encode the response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError writes e as an OpenAI-style error.
func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]any{"error": map[string]any{"message": e.Message, "type": e.Type, "code": e.Code, "param": nilIfEmpty(e.Param)}}
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	w.Write(append(b, '\n'))
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// jobID reads the {id} of a route.
func jobID(r *http.Request) (int64, *Error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, Errorf(http.StatusNotFound, "job_not_found", "no job %q", r.PathValue("id"))
	}
	return id, nil
}

// checkQuery refuses query parameters a route does not take.
func checkQuery(r *http.Request, allowed ...string) *Error {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			e := Errorf(http.StatusBadRequest, "unknown_parameter", "unknown query parameter %q (this route takes: %s)", k, strings.Join(allowed, ", "))
			e.Param = k
			return e
		}
	}
	return nil
}

func fmtSeconds(d time.Duration) string { return fmt.Sprintf("%.0f s", d.Seconds()) }
