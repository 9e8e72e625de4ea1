package tokenizer

// Helpers for the tests: ways to build a tokenizer and to inspect tokens that the program itself
// does not need (it loads the embedded ranks with New).

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"unicode/utf8"
)

// fromRanks returns a tokenizer from a .tiktoken file's ranks ("base64-token rank" lines,
// ranks 0..n-1) for a model with nVocab tokens; the n ranks are followed by the special tokens,
// with nVocab-n-1509 language tokens. Models with nVocab >= 51865 are multilingual.
func fromRanks(r io.Reader, nVocab int) (*Tokenizer, error) {
	v, err := parseRanks(r)
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, nVocab)
}

// fromVocab returns a tokenizer from a ggml file's vocabulary: the bytes of token id i in
// vocab[i]. The ordinary tokens are the first 50257 (50256 for nVocab 51864, the English-only
// layout); entries after them (whisper.cpp files may list "<|endoftext|>") are ignored. Merge
// priority is the token id, as in tiktoken ranks.
//
// Some whisper.cpp files store each token as its bytes decoded with U+FFFD replacement, which
// loses the tokens that are not valid UTF-8 on their own (1476 of the multilingual ones). A
// vocabulary equal to the embedded ranks for nVocab, up to that replacement, gets the embedded
// ranks; any other vocabulary is used as it is and must have a token for every byte.
func fromVocab(vocab [][]byte, nVocab int) (*Tokenizer, error) {
	nOrd := 50257
	if nVocab < NVocabMultilingual {
		nOrd = 50256
	}
	if len(vocab) < nOrd {
		return nil, fmt.Errorf("ggml vocabulary has %d tokens, want at least %d for %d", len(vocab), nOrd, nVocab)
	}
	if t, err := New(nVocab); err == nil && sameTokens(t.Vocab(), vocab[:nOrd]) {
		return t, nil
	}
	byID := make([][]byte, nOrd)
	for i := range byID {
		byID[i] = bytes.Clone(vocab[i])
	}
	v, err := newVocab(byID)
	if err != nil {
		return nil, fmt.Errorf("ggml vocabulary: %w", err)
	}
	return newTokenizer(v, nVocab)
}

// sameTokens reports whether every token of got is the token of want, or its U+FFFD-replaced
// text when want's bytes are not valid UTF-8.
func sameTokens(want, got [][]byte) bool {
	if len(want) != len(got) {
		return false
	}
	for i, w := range want {
		if bytes.Equal(w, got[i]) {
			continue
		}
		if utf8.Valid(w) {
			return false
		}
		if r, _ := appendUTF8(nil, w, true); !bytes.Equal(r, got[i]) {
			return false
		}
	}
	return true
}

// DecodeBytes returns the raw bytes of the text tokens of ids, which need not be valid UTF-8.
func (t *Tokenizer) DecodeBytes(ids []int) []byte { return t.appendBytes(nil, ids) }

// IsSpecial reports whether id is a special (non-text) token, timestamps included.
func (t *Tokenizer) IsSpecial(id int) bool { return id >= t.EOT }

// TimestampToken returns the timestamp token nearest to sec, clamped to <|0.00|>..<|30.00|>.
func (t *Tokenizer) TimestampToken(sec float64) int {
	k := math.Round(sec / TimestampStep)
	if !(k >= 0) { // NaN too
		k = 0
	}
	return t.TimestampBegin + int(min(k, NumTimestamps-1))
}

// LanguageOf returns the code of a language token, or "" if id is none.
func (t *Tokenizer) LanguageOf(id int) string {
	if !t.Multilingual || id <= t.SOT || id >= t.Translate {
		return ""
	}
	return languages[id-t.SOT-1].code
}

// languageName returns the English name of a language code ("de" -> "german"), or "".
func languageName(code string) string {
	n, _ := LanguageName(code)
	return n
}
