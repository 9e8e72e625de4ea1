package sidecar

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Cue is one subtitle: a time span and its text (lines separated by "\n").
type Cue struct {
	Start, End time.Duration
	Text       string
}

// ErrMalformed is wrapped by the parsers' errors.
var ErrMalformed = errors.New("malformed subtitles")

// SRT renders cues as SubRip text: 1-based indices, "HH:MM:SS,mmm --> HH:MM:SS,mmm", text lines,
// a blank line after each cue. Cues must be ordered, non-overlapping and non-empty, and their
// text must not contain blank lines, carriage returns or "-->".
func SRT(cues []Cue) ([]byte, error) {
	if err := checkRenderable(cues); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for i, c := range cues {
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", i+1, srtTime(c.Start), srtTime(c.End), strings.TrimSpace(c.Text))
	}
	return b.Bytes(), nil
}

func srtTime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// ParseSRT reads SubRip text strictly: indices must count up from 1, times must be well formed
// with end after start, cues must not overlap, and every cue needs text.
func ParseSRT(r io.Reader) ([]Cue, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var cues []Cue
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return strings.TrimSuffix(sc.Text(), "\r"), true
	}
	for {
		s, ok := next()
		if !ok {
			break
		}
		if s == "" {
			continue
		}
		s = strings.TrimPrefix(s, "\uFEFF")
		idx, err := strconv.Atoi(s)
		if err != nil || idx != len(cues)+1 {
			return nil, fmt.Errorf("%w: line %d: want index %d, got %q", ErrMalformed, line, len(cues)+1, s)
		}
		s, ok = next()
		if !ok {
			return nil, fmt.Errorf("%w: line %d: cue %d has no times", ErrMalformed, line, idx)
		}
		start, end, err := parseSpan(s)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, line, err)
		}
		if end <= start {
			return nil, fmt.Errorf("%w: line %d: cue %d ends before it starts", ErrMalformed, line, idx)
		}
		if n := len(cues); n > 0 && start < cues[n-1].End {
			return nil, fmt.Errorf("%w: line %d: cue %d overlaps cue %d", ErrMalformed, line, idx, n)
		}
		var text []string
		for {
			s, ok = next()
			if !ok || s == "" {
				break
			}
			if strings.Contains(s, "-->") || strings.ContainsRune(s, '\r') {
				return nil, fmt.Errorf("%w: line %d: \"-->\" or a carriage return in cue %d text", ErrMalformed, line, idx)
			}
			text = append(text, s)
		}
		if len(text) == 0 {
			return nil, fmt.Errorf("%w: line %d: cue %d has no text", ErrMalformed, line, idx)
		}
		cues = append(cues, Cue{Start: start, End: end, Text: strings.Join(text, "\n")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return cues, nil
}

func parseSpan(s string) (start, end time.Duration, err error) {
	a, b, ok := strings.Cut(s, " --> ")
	if !ok {
		return 0, 0, fmt.Errorf("want \"start --> end\", got %q", s)
	}
	if start, err = parseSRTTime(a); err != nil {
		return 0, 0, err
	}
	end, err = parseSRTTime(b)
	return start, end, err
}

func parseSRTTime(s string) (time.Duration, error) {
	// HH:MM:SS,mmm exactly.
	if len(s) != 12 || s[2] != ':' || s[5] != ':' || s[8] != ',' {
		return 0, fmt.Errorf("bad time %q", s)
	}
	num := func(p string, max int) (int, error) {
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("bad time %q", s)
			}
		}
		n, _ := strconv.Atoi(p)
		if n > max {
			return 0, fmt.Errorf("bad time %q", s)
		}
		return n, nil
	}
	h, err := num(s[0:2], 99)
	if err != nil {
		return 0, err
	}
	m, err := num(s[3:5], 59)
	if err != nil {
		return 0, err
	}
	sec, err := num(s[6:8], 59)
	if err != nil {
		return 0, err
	}
	ms, err := num(s[9:12], 999)
	if err != nil {
		return 0, err
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second +
		time.Duration(ms)*time.Millisecond, nil
}
