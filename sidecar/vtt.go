package sidecar

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// VTT renders cues as WebVTT: a "WEBVTT" header, then per cue "HH:MM:SS.mmm --> HH:MM:SS.mmm",
// its text lines and a blank line. No cue identifiers are written. Cues must be ordered,
// non-overlapping and non-empty, and their text must not contain blank lines, carriage returns
// or "-->".
func VTT(cues []Cue) ([]byte, error) {
	if err := checkRenderable(cues); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("WEBVTT\n\n")
	for _, c := range cues {
		fmt.Fprintf(&b, "%s --> %s\n%s\n\n", vttTime(c.Start), vttTime(c.End), strings.TrimSpace(c.Text))
	}
	return b.Bytes(), nil
}

// checkRenderable holds what both subtitle writers need of cues.
func checkRenderable(cues []Cue) error {
	var prevEnd time.Duration
	for i, c := range cues {
		text := strings.TrimSpace(c.Text)
		switch {
		case text == "":
			return fmt.Errorf("cue %d: empty text", i+1)
		case strings.Contains(text, "-->"):
			return fmt.Errorf("cue %d: text contains \"-->\"", i+1)
		case strings.Contains(text, "\n\n"):
			return fmt.Errorf("cue %d: text contains a blank line", i+1)
		case strings.ContainsRune(text, '\r'):
			return fmt.Errorf("cue %d: text contains a carriage return", i+1)
		case c.Start < 0:
			return fmt.Errorf("cue %d: negative start %v", i+1, c.Start)
		case c.End <= c.Start:
			return fmt.Errorf("cue %d: end %v not after start %v", i+1, c.End, c.Start)
		case c.Start < prevEnd:
			return fmt.Errorf("cue %d: starts at %v, before the previous cue ends at %v", i+1, c.Start, prevEnd)
		}
		prevEnd = c.End
	}
	return nil
}

func vttTime(d time.Duration) string {
	s := srtTime(d)
	return s[:len(s)-4] + "." + s[len(s)-3:]
}

// ParseVTT reads WebVTT strictly: the "WEBVTT" signature line, then cue blocks with an
// optional identifier, a timing line "[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm" (cue settings after
// it are allowed and ignored) and at least one text line. NOTE blocks are skipped anywhere, STYLE
// and REGION blocks before the first cue. Unlike the format, which allows overlapping cues,
// the parser rejects them, as it does cues that end before they start: Verbatim writes neither.
func ParseVTT(r io.Reader) ([]Cue, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return strings.TrimSuffix(sc.Text(), "\r"), true
	}
	s, ok := next()
	s = strings.TrimPrefix(s, "\uFEFF")
	if !ok || (s != "WEBVTT" && !strings.HasPrefix(s, "WEBVTT ") && !strings.HasPrefix(s, "WEBVTT\t")) {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return nil, fmt.Errorf("%w: line 1: want the WEBVTT signature", ErrMalformed)
	}
	for ok && s != "" { // header lines up to the first blank line
		s, ok = next()
	}
	var cues []Cue
	for {
		// Skip blank lines to the next block.
		for ok && s == "" {
			s, ok = next()
		}
		if !ok {
			break
		}
		block := []string{s}
		start := line
		for {
			s, ok = next()
			if !ok || s == "" {
				break
			}
			block = append(block, s)
		}
		kw := block[0]
		if kw == "NOTE" || strings.HasPrefix(kw, "NOTE ") || strings.HasPrefix(kw, "NOTE\t") {
			continue
		}
		if (kw == "STYLE" || kw == "REGION") && len(cues) == 0 {
			continue
		}
		if !strings.Contains(kw, "-->") {
			block = block[1:] // the identifier
			start++
			if len(block) == 0 {
				return nil, fmt.Errorf("%w: line %d: cue %q has no timing line", ErrMalformed, start-1, kw)
			}
		}
		from, to, err := parseVTTSpan(block[0])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, start, err)
		}
		n := len(cues) + 1
		if to <= from {
			return nil, fmt.Errorf("%w: line %d: cue %d ends before it starts", ErrMalformed, start, n)
		}
		if n > 1 && from < cues[n-2].End {
			return nil, fmt.Errorf("%w: line %d: cue %d overlaps cue %d", ErrMalformed, start, n, n-1)
		}
		text := block[1:]
		if len(text) == 0 {
			return nil, fmt.Errorf("%w: line %d: cue %d has no text", ErrMalformed, start, n)
		}
		for k, t := range text {
			if strings.Contains(t, "-->") || strings.ContainsRune(t, '\r') {
				return nil, fmt.Errorf("%w: line %d: \"-->\" or a carriage return in cue text", ErrMalformed, start+1+k)
			}
		}
		cues = append(cues, Cue{Start: from, End: to, Text: strings.Join(text, "\n")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return cues, nil
}

func parseVTTSpan(s string) (start, end time.Duration, err error) {
	f := strings.Fields(s)
	if len(f) < 3 || f[1] != "-->" {
		return 0, 0, fmt.Errorf("want \"start --> end\", got %q", s)
	}
	if start, err = parseVTTTime(f[0]); err != nil {
		return 0, 0, err
	}
	end, err = parseVTTTime(f[2])
	return start, end, err
}

// parseVTTTime reads [H+:]MM:SS.mmm, hours at least two digits when present.
func parseVTTTime(s string) (time.Duration, error) {
	bad := fmt.Errorf("bad time %q", s)
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var h int64
	if len(parts) == 3 {
		p := parts[0]
		if len(p) < 2 || len(p) > 6 || !digits(p) {
			return 0, bad
		}
		h, _ = strconv.ParseInt(p, 10, 64)
		parts = parts[1:]
	}
	mm, rest := parts[0], parts[1]
	if len(mm) != 2 || !digits(mm) || len(rest) != 6 || rest[2] != '.' || !digits(rest[:2]) || !digits(rest[3:]) {
		return 0, bad
	}
	m, _ := strconv.Atoi(mm)
	sec, _ := strconv.Atoi(rest[:2])
	ms, _ := strconv.Atoi(rest[3:])
	if m > 59 || sec > 59 {
		return 0, bad
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second +
		time.Duration(ms)*time.Millisecond, nil
}

func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
