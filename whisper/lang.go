package whisper

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

// ErrNotMultilingual is returned by DetectLanguage for an English-only model.
var ErrNotMultilingual = errors.New("whisper: the model is English-only")

// DetectLanguage returns the most probable spoken language of the first 30 s of samples (16 kHz
// mono) and the probability of every language of the model's vocabulary, as the reference's
// detect_language: the decoder's logits after <|startoftranscript|>, restricted to the language
// tokens, through a softmax.
func DetectLanguage(ctx context.Context, m *Model, samples []float32) (lang string, probs map[string]float64, err error) {
	defer tensor.Catch(&err)
	if m == nil {
		return "", nil, errNoModel
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	tok, err := tokenizer.New(m.Config.NVocab)
	if err != nil {
		return "", nil, fmt.Errorf("detect language: %w", err)
	}
	if !tok.Multilingual {
		return "", nil, ErrNotMultilingual
	}
	feats := newFeatures(samples, m.Config.NMels)
	enc, err := m.Encode(feats.window(0, mel.ChunkFrames), 1)
	if err != nil {
		return "", nil, fmt.Errorf("detect language: %w", err)
	}
	defer enc.Close()
	return detectLanguageIn(m, enc, tok)
}

// detectLanguageIn runs language detection on window 0 of enc.
func detectLanguageIn(m *Model, enc *Encoded, tok *tokenizer.Tokenizer) (string, map[string]float64, error) {
	s, err := m.NewSession(enc, []int{0})
	if err != nil {
		return "", nil, fmt.Errorf("detect language: %w", err)
	}
	defer s.Close()
	return detectLanguage(s, tok.SOT, tok.NVocab, languageTokens(tok))
}

// langToken is a language code and its token.
type langToken struct {
	code string
	id   int
}

func languageTokens(tok *tokenizer.Tokenizer) []langToken {
	var out []langToken
	for _, code := range tok.Languages() {
		if id, ok := tok.LanguageToken(code); ok {
			out = append(out, langToken{code, id})
		}
	}
	return out
}

// detectLanguage feeds <|startoftranscript|> to the single sequence of s and returns the best
// language and the softmax over the language tokens.
func detectLanguage(s stepper, sot, nVocab int, langs []langToken) (string, map[string]float64, error) {
	if len(langs) == 0 {
		return "", nil, ErrNotMultilingual
	}
	logits, err := s.Step([][]int32{{int32(sot)}}, false)
	if err != nil {
		return "", nil, fmt.Errorf("detect language: %w", err)
	}
	if len(logits) < nVocab {
		return "", nil, fmt.Errorf("detect language: %d logits, want %d", len(logits), nVocab)
	}
	lang, probs := languageProbs(logits[:nVocab], langs)
	return lang, probs, nil
}

// languageProbs returns the best language of langs by the logits of one position and the
// softmax over their tokens.
func languageProbs(logits []float32, langs []langToken) (string, map[string]float64) {
	maxv := math.Inf(-1)
	best := 0
	for i, l := range langs {
		if v := float64(logits[l.id]); v > maxv {
			maxv, best = v, i
		}
	}
	var sum float64
	for _, l := range langs {
		sum += math.Exp(float64(logits[l.id]) - maxv)
	}
	probs := make(map[string]float64, len(langs))
	for _, l := range langs {
		probs[l.code] = math.Exp(float64(logits[l.id])-maxv) / sum
	}
	return langs[best].code, probs
}
