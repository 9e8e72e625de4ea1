// Package tokenizer is Whisper's byte-level BPE (tiktoken ranks, or a ggml file's vocabulary)
// with its special tokens: languages, tasks, timestamps, nospeech, notimestamps, startofprev,
// startoflm.
package tokenizer

// Tokenizer encodes text to token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	// Special token ids for this vocabulary size.
	EOT, SOT, Translate, Transcribe, SOTLM, SOTPrev, NoSpeech, NoTimestamps, TimestampBegin int
	NVocab                                                                                  int
	Multilingual                                                                            bool
}

// New returns the tokenizer for a model with nVocab tokens: 51864 (English-only, gpt2 ranks),
// 51865 (99 languages) or 51866 (100 languages, large-v3), from the embedded tiktoken ranks.
func New(nVocab int) (*Tokenizer, error) { panic("TODO(tokenizer)") }

// Encode returns the token ids of text (ordinary text; special token strings are not parsed).
func (t *Tokenizer) Encode(text string) []int { panic("TODO(tokenizer)") }

// Decode returns the text of ids, skipping special and timestamp tokens.
func (t *Tokenizer) Decode(ids []int) string { panic("TODO(tokenizer)") }

// TokenBytes returns the raw bytes of a text token, or the "<|...|>" name of a special one.
func (t *Tokenizer) TokenBytes(id int) []byte { panic("TODO(tokenizer)") }

// IsSpecial reports whether id is a special (non-text) token, timestamps included.
func (t *Tokenizer) IsSpecial(id int) bool { return id >= t.EOT }

// Languages lists the language codes of this vocabulary in token order ("en", "zh", ...).
func (t *Tokenizer) Languages() []string { panic("TODO(tokenizer)") }

// LanguageToken returns the token of a language code, and false if the vocabulary has none.
func (t *Tokenizer) LanguageToken(code string) (int, bool) { panic("TODO(tokenizer)") }

// LanguageOf returns the code of a language token, or "" if id is none.
func (t *Tokenizer) LanguageOf(id int) string { panic("TODO(tokenizer)") }

// SOTSequence returns <|startoftranscript|> [<|lang|> <|task|>] for a multilingual vocabulary,
// or <|startoftranscript|> alone for an English-only one. task is "transcribe" or "translate".
func (t *Tokenizer) SOTSequence(lang, task string) ([]int, error) { panic("TODO(tokenizer)") }

// NonSpeechTokens returns the reference's suppress list for symbols and speaker tags
// (openai/whisper's non_speech_tokens), sorted.
func (t *Tokenizer) NonSpeechTokens() []int { panic("TODO(tokenizer)") }
