// Package tokenizer is Whisper's byte-level BPE (tiktoken ranks, or a ggml file's vocabulary)
// with its special tokens: languages, tasks, timestamps, nospeech, notimestamps, startofprev,
// startoflm.
//
// The special tokens follow the ordinary ones as in openai/whisper: <|endoftext|>,
// <|startoftranscript|>, one token per language, <|translate|>, <|transcribe|>, <|startoflm|>,
// <|startofprev|>, <|nospeech|> (once <|nocaptions|>), <|notimestamps|>, then the 1501
// timestamps <|0.00|> .. <|30.00|>. The English-only vocabulary has the 99 language tokens
// too, but they are never used.
package tokenizer

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Vocabulary sizes of the released Whisper models.
const (
	NVocabEnglish      = 51864 // .en models: gpt2 ranks, 99 (unused) language tokens
	NVocabMultilingual = 51865 // tiny .. large-v2: 99 languages
	NVocabLargeV3      = 51866 // large-v3, large-v3-turbo: 100 languages
)

// Timestamp tokens.
const (
	NumTimestamps = 1501 // <|0.00|> .. <|30.00|>
	TimestampStep = 0.02 // seconds between timestamp tokens
)

// nFixedSpecials counts the special tokens other than languages: endoftext,
// startoftranscript, translate, transcribe, startoflm, startofprev, nospeech, notimestamps and
// the timestamps.
const nFixedSpecials = 8 + NumTimestamps

// Errors.
var (
	ErrVocabSize       = errors.New("unsupported vocabulary size")
	ErrUnknownLanguage = errors.New("unknown language")
	ErrUnknownTask     = errors.New("unknown task")
)

//go:embed assets/multilingual.tiktoken
var multilingualTiktoken []byte

//go:embed assets/gpt2.tiktoken
var gpt2Tiktoken []byte

// The embedded ranks are parsed on first use.
var (
	multilingualVocab = sync.OnceValues(func() (*vocab, error) {
		v, err := parseRanks(bytes.NewReader(multilingualTiktoken))
		if err != nil {
			return nil, fmt.Errorf("parse multilingual.tiktoken: %w", err)
		}
		return v, nil
	})
	gpt2Vocab = sync.OnceValues(func() (*vocab, error) {
		v, err := parseRanks(bytes.NewReader(gpt2Tiktoken))
		if err != nil {
			return nil, fmt.Errorf("parse gpt2.tiktoken: %w", err)
		}
		return v, nil
	})
)

// Tokenizer encodes text to token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	// Special token ids for this vocabulary size.
	EOT, SOT, Translate, Transcribe, SOTLM, SOTPrev, NoSpeech, NoTimestamps, TimestampBegin int
	NVocab                                                                                  int
	Multilingual                                                                            bool

	v         *vocab
	nLang     int // language tokens in the layout (also in the English-only vocabulary)
	nonSpeech func() []int
}

// New returns the tokenizer for a model with nVocab tokens: 51864 (English-only, gpt2 ranks),
// 51865 (99 languages) or 51866 (100 languages, large-v3), from the embedded tiktoken ranks.
func New(nVocab int) (*Tokenizer, error) {
	var v *vocab
	var err error
	switch nVocab {
	case NVocabEnglish:
		v, err = gpt2Vocab()
	case NVocabMultilingual, NVocabLargeV3:
		v, err = multilingualVocab()
	default:
		return nil, fmt.Errorf("tokenizer for %d tokens: %w", nVocab, ErrVocabSize)
	}
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, nVocab)
}

func newTokenizer(v *vocab, nVocab int) (*Tokenizer, error) {
	n := v.n()
	nLang := nVocab - n - nFixedSpecials
	if nLang < 0 || nLang > len(languages) {
		return nil, fmt.Errorf("tokenizer for %d tokens with %d ranks (%d languages): %w", nVocab, n, nLang, ErrVocabSize)
	}
	t := &Tokenizer{
		EOT:          n,
		SOT:          n + 1,
		Translate:    n + 2 + nLang,
		Transcribe:   n + 3 + nLang,
		SOTLM:        n + 4 + nLang,
		SOTPrev:      n + 5 + nLang,
		NoSpeech:     n + 6 + nLang,
		NoTimestamps: n + 7 + nLang,
		NVocab:       nVocab,
		Multilingual: nVocab >= NVocabMultilingual,
		v:            v,
		nLang:        nLang,
	}
	t.TimestampBegin = t.NoTimestamps + 1
	t.nonSpeech = sync.OnceValue(t.computeNonSpeech)
	return t, nil
}

// Encode returns the token ids of text (ordinary text; special token strings are not parsed).
// Bytes that are not valid UTF-8 are encoded as they are.
func (t *Tokenizer) Encode(text string) []int {
	out := make([]int, 0, len(text)/4+1)
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		out = t.v.encodePiece(text[i:j], out)
		i = j
	}
	return out
}

// Decode returns the text of ids, skipping special and timestamp tokens (and ids out of
// range). Byte sequences split across tokens are joined first; what is still not valid UTF-8 is
// replaced with U+FFFD, as Python's errors="replace" does.
func (t *Tokenizer) Decode(ids []int) string {
	out, _ := appendUTF8(nil, t.appendBytes(nil, ids), true)
	return string(out)
}

func (t *Tokenizer) appendBytes(dst []byte, ids []int) []byte {
	for _, id := range ids {
		if id >= 0 && id < t.v.n() {
			dst = append(dst, t.v.token(id)...)
		}
	}
	return dst
}

// TokenBytes returns the raw bytes of a text token, or the "<|...|>" name of a special one;
// nil for an id out of range.
func (t *Tokenizer) TokenBytes(id int) []byte {
	if id >= 0 && id < t.v.n() {
		return bytes.Clone(t.v.token(id))
	}
	if s := t.SpecialName(id); s != "" {
		return []byte(s)
	}
	return nil
}

// SpecialName returns the "<|...|>" name of a special token ("<|en|>", "<|1.08|>"), or "" if
// id is not one.
func (t *Tokenizer) SpecialName(id int) string {
	switch {
	case id < t.EOT || id >= t.NVocab:
		return ""
	case id == t.EOT:
		return "<|endoftext|>"
	case id == t.SOT:
		return "<|startoftranscript|>"
	case id < t.Translate:
		return "<|" + languages[id-t.SOT-1].code + "|>"
	case id == t.Translate:
		return "<|translate|>"
	case id == t.Transcribe:
		return "<|transcribe|>"
	case id == t.SOTLM:
		return "<|startoflm|>"
	case id == t.SOTPrev:
		return "<|startofprev|>"
	case id == t.NoSpeech:
		return "<|nospeech|>"
	case id == t.NoTimestamps:
		return "<|notimestamps|>"
	}
	s, _ := t.Timestamp(id)
	return fmt.Sprintf("<|%.2f|>", s)
}

// IsTimestamp reports whether id is a timestamp token.
func (t *Tokenizer) IsTimestamp(id int) bool {
	return id >= t.TimestampBegin && id < t.TimestampBegin+NumTimestamps
}

// Timestamp returns the time of a timestamp token in seconds, and false if id is not one.
func (t *Tokenizer) Timestamp(id int) (seconds float64, ok bool) {
	if !t.IsTimestamp(id) {
		return 0, false
	}
	return float64(id-t.TimestampBegin) * TimestampStep, true
}

// Vocab returns the bytes of every ordinary (text) token by id, for writing a ggml file's
// vocabulary. The slices are copies.
func (t *Tokenizer) Vocab() [][]byte {
	out := make([][]byte, t.v.n())
	for i := range out {
		out[i] = bytes.Clone(t.v.token(i))
	}
	return out
}

// Languages lists the language codes of this vocabulary in token order ("en", "zh", ...);
// nil for an English-only vocabulary.
func (t *Tokenizer) Languages() []string {
	if !t.Multilingual {
		return nil
	}
	out := make([]string, t.nLang)
	for i := range out {
		out[i] = languages[i].code
	}
	return out
}

// LanguageToken returns the token of a language code (or English name or alias, as
// LanguageCode takes), and false if the vocabulary has none. An English-only vocabulary has none.
func (t *Tokenizer) LanguageToken(code string) (int, bool) {
	if !t.Multilingual {
		return 0, false
	}
	c, ok := LanguageCode(code)
	if !ok {
		return 0, false
	}
	for i := range t.nLang {
		if languages[i].code == c {
			return t.SOT + 1 + i, true
		}
	}
	return 0, false
}

// SOTSequence returns <|startoftranscript|> [<|lang|> <|task|>] for a multilingual vocabulary,
// or <|startoftranscript|> alone for an English-only one. task is "transcribe" or "translate".
// An empty lang or task leaves that token out (lang "" before language detection). For an
// English-only vocabulary lang must be "" or English and task "" or "transcribe".
// Errors wrap ErrUnknownLanguage or ErrUnknownTask.
func (t *Tokenizer) SOTSequence(lang, task string) ([]int, error) {
	if task != "" && task != "transcribe" && task != "translate" {
		return nil, fmt.Errorf("task %q: %w", task, ErrUnknownTask)
	}
	seq := []int{t.SOT}
	if !t.Multilingual {
		if c, _ := LanguageCode(lang); lang != "" && c != "en" {
			return nil, fmt.Errorf("language %q for an English-only model: %w", lang, ErrUnknownLanguage)
		}
		if task == "translate" {
			return nil, fmt.Errorf("task translate for an English-only model: %w", ErrUnknownTask)
		}
		return seq, nil
	}
	if lang != "" {
		id, ok := t.LanguageToken(lang)
		if !ok {
			return nil, fmt.Errorf("language %q: %w", lang, ErrUnknownLanguage)
		}
		seq = append(seq, id)
	}
	switch task {
	case "transcribe":
		seq = append(seq, t.Transcribe)
	case "translate":
		seq = append(seq, t.Translate)
	}
	return seq, nil
}

// NonSpeechTokens returns the reference's suppress list for symbols and speaker tags
// (openai/whisper's non_speech_tokens), sorted.
func (t *Tokenizer) NonSpeechTokens() []int { return slices.Clone(t.nonSpeech()) }

// computeNonSpeech re-expresses openai/whisper's rule: a symbol is suppressed when it is one
// token, alone or after a space; a miscellaneous musical symbol always by its first token;
// and the first tokens of " -" and " '" (hyphens and quotes stay allowed inside words).
func (t *Tokenizer) computeNonSpeech() []int {
	symbols := strings.Split(`" # ( ) * + / : ; < = > @ [ \ ] ^ _ `+"`"+` { | } ~ 「 」 『 』`+
		` << >> <<< >>> -- --- -( -[ (' (" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪`, " ")
	const misc = "♩♪♫♬♭♮♯" // U+2640..U+267F: one lead and second byte, so the first token is safe
	set := map[int]bool{t.Encode(" -")[0]: true, t.Encode(" '")[0]: true}
	add := func(sym string, always bool) {
		for _, s := range [...]string{sym, " " + sym} {
			if ids := t.Encode(s); len(ids) == 1 || always {
				set[ids[0]] = true
			}
		}
	}
	for _, s := range symbols {
		add(s, false)
	}
	for _, r := range misc {
		add(string(r), true)
	}
	out := make([]int, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
