package api

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/verbatimhq/verbatim/durable"
)

// TokenFile is the API token's file in the state folder.
const TokenFile = "token"

// tokenPrefix starts every token, so that one pasted somewhere is recognisable.
const tokenPrefix = "vbt_"

// LoadToken returns the API token kept in dir, making one the first time: a new file is
// created with mode 0600 from its first byte. An existing file must be a regular file, the
// user's, readable by the user alone; otherwise (a file another user could read, a symbolic
// link) it is refused with a message saying what to do.
func LoadToken(dir string) (string, error) {
	p := filepath.Join(dir, TokenFile)
	tok, err := readToken(p)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	tok, err = newToken()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first
		return readToken(p)
	}
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = durable.SyncDir(dir)
	}
	if werr != nil {
		os.Remove(p)
		return "", fmt.Errorf("API token %s: %w", p, werr)
	}
	return tok, nil
}

// RotateToken replaces the token in dir with a new one (atomically: the old one works until the
// new one is in place) and returns it. A running daemon takes the new token at its next request.
func RotateToken(dir string) (string, error) {
	p := filepath.Join(dir, TokenFile)
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("API token %s: not a regular file (%s): remove it first", p, fi.Mode().Type())
	}
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	if err := durable.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("API token %s: %w", p, err)
	}
	return tok, nil
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// readToken reads the token file at p, refusing one that others could read.
func readToken(p string) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("API token %s: not a regular file (%s): remove it, and a new token is made at the next start", p, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("API token %s: mode %04o lets other users read it: run `chmod 600 %s` (or `transcribe token rotate` for a new token)", p, perm, p)
	}
	if err := ownedByMe(fi); err != nil {
		return "", fmt.Errorf("API token %s: %w", p, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if !strings.HasPrefix(tok, tokenPrefix) || len(tok) < len(tokenPrefix)+32 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("API token %s: not a token this program made: remove it, or run `transcribe token rotate`", p)
	}
	return tok, nil
}

// tokenSource is the token as the server checks it: read again when its file changes (a
// rotation), refused while the file is unsafe.
type tokenSource struct {
	path string

	mu    sync.Mutex
	tok   string
	err   error
	stamp string
	check time.Time
}

// current returns the token, reading its file again when its size, time or mode changed (looked
// at most every 200 ms).
func (s *tokenSource) current() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.check) < 200*time.Millisecond && s.stamp != "" {
		return s.tok, s.err
	}
	s.check = time.Now()
	fi, err := os.Lstat(s.path)
	if err != nil {
		s.stamp, s.tok, s.err = "", "", fmt.Errorf("API token: %w", err)
		return "", s.err
	}
	stamp := fmt.Sprint(fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
	if stamp != s.stamp {
		s.stamp = stamp
		s.tok, s.err = readToken(s.path)
	}
	return s.tok, s.err
}
