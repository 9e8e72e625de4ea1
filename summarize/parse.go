package summarize

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// An answer of the language model, read leniently: section headings in any case, with or
// without Markdown around them; bullets "-", "*", "•" or numbered; times as [H:MM:SS], [MM:SS]
// or without brackets.
type answer struct {
	covers      [2]time.Duration
	hasCovers   bool
	points      []string
	chapters    []chapterLine
	actions     []itemLine
	decisions   []itemLine
	unsectioned int // lines outside any section (the model did not keep to the form)
}

type chapterLine struct {
	start   time.Duration
	title   string
	summary string
}

type itemLine struct {
	start    time.Duration
	hasStart bool
	text     string
}

var (
	headingRe = regexp.MustCompile(`(?i)^[#*_\s]*(COVERS|SUMMARY|NOTES|CHAPTERS|ACTION ITEMS|DECISIONS)[*_\s]*(?::[*_\s]*(.*)|$)`)
	timeRe    = regexp.MustCompile(`\[?\(?\b((\d{1,2}):)?(\d{1,2}):(\d{2})\b\)?\]?`)
	bulletRe  = regexp.MustCompile(`^\s*([-*•]|\d{1,3}[.)])\s+`)
)

// parseTime reads the first time in s: the time, where it ends in s, and whether there was one.
func parseTime(s string) (time.Duration, int, int, bool) {
	m := timeRe.FindStringSubmatchIndex(s)
	if m == nil {
		return 0, 0, 0, false
	}
	num := func(i int) int {
		if m[2*i] < 0 {
			return 0
		}
		n, _ := strconv.Atoi(s[m[2*i]:m[2*i+1]])
		return n
	}
	h, mi, se := num(2), num(3), num(4)
	if se >= 60 || (m[4] >= 0 && mi >= 60) {
		return 0, 0, 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(se)*time.Second, m[0], m[1], true
}

func isNone(s string) bool {
	s = strings.ToLower(strings.Trim(s, " .*_()"))
	return s == "none" || s == "n/a" || s == "nothing" || s == "no action items" || s == "no decisions" || s == ""
}

// parseAnswer reads a model's answer in the form the prompts ask for.
func parseAnswer(text string) answer {
	var a answer
	section := ""
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "```") {
			continue
		}
		if m := headingRe.FindStringSubmatch(line); m != nil && !bulletRe.MatchString(line) {
			section = strings.ToUpper(m[1])
			rest := strings.TrimSpace(m[2])
			if section == "COVERS" {
				if t1, _, e1, ok := parseTime(rest); ok {
					if t2, _, _, ok := parseTime(rest[e1:]); ok {
						a.covers, a.hasCovers = [2]time.Duration{t1, t2}, true
					}
				}
				continue
			}
			if rest == "" {
				continue
			}
			line = rest
		}
		body := bulletRe.ReplaceAllString(line, "")
		body = strings.TrimSpace(strings.Trim(body, "*_"))
		switch section {
		case "SUMMARY", "NOTES":
			if !isNone(body) {
				a.points = append(a.points, body)
			}
		case "CHAPTERS":
			t, s, e, ok := parseTime(body)
			if !ok || s > 3 {
				continue
			}
			rest := strings.TrimSpace(strings.TrimLeft(body[e:], " -–—:|*_"))
			title, summary := rest, ""
			for _, sep := range []string{": ", " — ", " – ", " - "} {
				if i := strings.Index(rest, sep); i > 0 {
					title, summary = strings.TrimSpace(rest[:i]), strings.TrimSpace(rest[i+len(sep):])
					break
				}
			}
			title = strings.Trim(title, " *_\"'")
			if title != "" {
				a.chapters = append(a.chapters, chapterLine{start: t, title: title, summary: summary})
			}
		case "ACTION ITEMS", "DECISIONS":
			if isNone(body) {
				continue
			}
			it := itemLine{text: body}
			if t, s, e, ok := parseTime(body); ok && s <= 3 {
				it.start, it.hasStart = t, true
				it.text = strings.TrimSpace(strings.TrimLeft(body[e:], " -–—:|"))
			}
			if it.text == "" {
				continue
			}
			if section == "DECISIONS" {
				a.decisions = append(a.decisions, it)
			} else {
				a.actions = append(a.actions, it)
			}
		default:
			a.unsectioned++
		}
	}
	return a
}
