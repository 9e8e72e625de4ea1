package whisper

import (
	"errors"
	"math"

	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

// ErrNotMultilingual is returned by language detection for an English-only model.
var ErrNotMultilingual = errors.New("whisper: the model is English-only")

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
