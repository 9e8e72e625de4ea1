package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Pre-tokenization splits text into pieces as tiktoken does with Whisper's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// written out by hand because Go's regexp has no lookahead. A byte that is not valid UTF-8
// counts as a symbol (neither letter, number nor space), like U+FFFD.

// class is a rune's class in the pattern.
type class uint8

const (
	classOther class = iota // [^\s\p{L}\p{N}]
	classLetter
	classNumber
	classSpace
)

func classify(r rune) class {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r): // Unicode White_Space outside Latin-1 too
		return classSpace
	}
	return classOther
}

var asciiClass = func() (t [utf8.RuneSelf]class) {
	for r := range rune(utf8.RuneSelf) {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			t[r] = classLetter
		case r >= '0' && r <= '9':
			t[r] = classNumber
		case r == ' ', r >= '\t' && r <= '\r':
			t[r] = classSpace
		default:
			t[r] = classOther
		}
	}
	return t
}()

// runeAt decodes the rune at s[i:] and its class; an invalid byte is one symbol.
func runeAt(s string, i int) (class, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classify(r), n
}

// runEnd returns the end of the run of class c starting at i.
func runEnd(s string, i int, c class) int {
	for i < len(s) {
		k, n := runeAt(s, i)
		if k != c {
			break
		}
		i += n
	}
	return i
}

// nextPiece returns the end of the piece that starts at s[i:] (i < len(s)).
func nextPiece(s string, i int) int {
	// 's 't 're 've 'm 'll 'd (lower case only, as in the pattern).
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v', 'l':
			if i+2 < len(s) {
				switch s[i+1 : i+3] {
				case "re", "ve", "ll":
					return i + 3
				}
			}
		}
	}
	c, _ := runeAt(s, i)
	start := i
	if s[i] == ' ' && i+1 < len(s) {
		// " ?" before a letter, number or symbol run.
		if c2, _ := runeAt(s, i+1); c2 != classSpace {
			return runEnd(s, i+1, c2)
		}
	}
	if c != classSpace {
		return runEnd(s, i, c)
	}
	// \s+(?!\S) then \s+: a whitespace run, less its last character when that run is
	// followed by a non-space and is longer than one character.
	j := runEnd(s, i, classSpace)
	if j == len(s) {
		return j
	}
	_, last := utf8.DecodeLastRuneInString(s[start:j])
	if j-last > start {
		return j - last
	}
	return j
}
