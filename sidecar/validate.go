package sidecar

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalid is wrapped by Validate's errors.
var ErrInvalid = errors.New("subtitles break the shaping limits")

// Validate checks cues against the limits of opts (zero fields take their defaults) and
// returns every problem found (up to 20), joined and wrapping ErrInvalid, or nil:
//
//   - times are whole milliseconds, start at or after 0, end after start, and cues are in order
//     without overlapping;
//   - no cue lasts longer than MaxDuration, and none is shorter than MinDuration unless the next
//     cue starts the moment it ends (speech follows at once) or it is the last cue (the media
//     ends);
//   - text has at most MaxLines lines, each non-empty, without surrounding spaces, of at most
//     MaxLineChars runes, and no "-->".
//
// Indices and the time syntax are checked by ParseSRT and ParseVTT; run those first on rendered
// output.
func Validate(cues []Cue, opts ShapeOptions) error {
	o := opts.withDefaults()
	var errs []error
	bad := func(i int, format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf("cue %d: %s", i+1, fmt.Sprintf(format, args...)))
		}
	}
	for i, c := range cues {
		d := c.End - c.Start
		switch {
		case c.Start%time.Millisecond != 0 || c.End%time.Millisecond != 0:
			bad(i, "times %v --> %v are not whole milliseconds", c.Start, c.End)
		case c.Start < 0:
			bad(i, "starts before 0")
		case d <= 0:
			bad(i, "ends at %v, not after its start %v", c.End, c.Start)
		case d > o.MaxDuration:
			bad(i, "lasts %v, longer than %v", d, o.MaxDuration)
		case d < o.MinDuration && i+1 < len(cues) && cues[i+1].Start != c.End:
			bad(i, "lasts %v, shorter than %v, and the next cue does not follow at once", d, o.MinDuration)
		}
		if i > 0 && c.Start < cues[i-1].End {
			bad(i, "starts at %v, before cue %d ends at %v", c.Start, i, cues[i-1].End)
		}
		lines := strings.Split(c.Text, "\n")
		if len(lines) > o.MaxLines {
			bad(i, "has %d lines, more than %d", len(lines), o.MaxLines)
		}
		for k, l := range lines {
			switch n := utf8.RuneCountInString(l); {
			case strings.TrimSpace(l) == "":
				bad(i, "line %d is empty", k+1)
			case strings.TrimSpace(l) != l:
				bad(i, "line %d has surrounding spaces", k+1)
			case n > o.MaxLineChars:
				bad(i, "line %d has %d characters, more than %d: %q", k+1, n, o.MaxLineChars, l)
			case strings.Contains(l, "-->"):
				bad(i, "line %d contains \"-->\"", k+1)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
}
