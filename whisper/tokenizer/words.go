package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// punctuation is Python's string.punctuation; a stripped subword that is a substring of it
// (the empty string included) starts a new word, as in the reference.
const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// SplitWords groups tokens into words for word-level timestamps as openai/whisper does: for
// zh, ja, th, lo, my and yue at every point where the text decodes to complete characters;
// otherwise such pieces are joined into words that start at a space, a punctuation piece or a
// special token. Special tokens decode to their "<|...|>" names. The words concatenated are the
// text of ids.
func (t *Tokenizer) SplitWords(ids []int, lang string) (words []string, groups [][]int) {
	subs, subIDs := t.splitOnUnicode(ids)
	switch lang {
	case "zh", "ja", "th", "lo", "my", "yue":
		return subs, subIDs
	}
	for i, sub := range subs {
		special := subIDs[i][0] >= t.EOT
		if special || strings.HasPrefix(sub, " ") || strings.Contains(punctuation, strings.TrimSpace(sub)) || len(words) == 0 {
			words = append(words, sub)
			groups = append(groups, subIDs[i])
			continue
		}
		words[len(words)-1] += sub
		groups[len(groups)-1] = append(groups[len(groups)-1], subIDs[i]...)
	}
	return words, groups
}

// textWithNames returns the bytes of ids, special tokens as their names.
func (t *Tokenizer) textWithNames(ids []int) []byte {
	var b []byte
	for _, id := range ids {
		if id >= 0 && id < t.v.n() {
			b = append(b, t.v.token(id)...)
		} else {
			b = append(b, t.SpecialName(id)...)
		}
	}
	return b
}

// splitOnUnicode cuts ids where the text so far decodes to whole characters (a U+FFFD that
// the full text also has there counts as whole).
func (t *Tokenizer) splitOnUnicode(ids []int) (subs []string, groups [][]int) {
	full, _ := appendUTF8(nil, t.textWithNames(ids), true)
	fullRunes := []rune(string(full))
	offset, start := 0, 0
	for i := range ids {
		cur, _ := appendUTF8(nil, t.textWithNames(ids[start:i+1]), true)
		s := string(cur)
		k := strings.IndexRune(s, utf8.RuneError)
		if k >= 0 {
			at := offset + utf8.RuneCountInString(s[:k])
			if at >= len(fullRunes) || fullRunes[at] != utf8.RuneError {
				continue
			}
		}
		subs = append(subs, s)
		groups = append(groups, ids[start:i+1:i+1])
		offset += utf8.RuneCountInString(s)
		start = i + 1
	}
	return subs, groups
}
