package whisper

import (
	"fmt"
	"math"
	"strings"

	"github.com/verbatimhq/verbatim/whisper/tokenizer"
)

// maxDetectWindows is how many windows language detection looks at: the first three of the
// input's speech (input.detectWindows; of the input itself without speech regions), so that one
// window that is mostly silence or music does not decide alone. The first window decides alone
// when the model is sure of its language there (detectSure); the others are encoded and decoded
// only when it is not.
const maxDetectWindows = 3

// detectSure is the probability of the most probable allowed language in the first detection
// window from which that window decides alone. faster-whisper likewise stops at the first
// segment whose language is more probable than its threshold (0.5 by default); 0.9 keeps the
// three windows for any doubt. Deciding on one window saves two windows of the encoder an input
// with Sequential windows (in bench --e2e --decode default's 32 inputs, 64 of 384 encoded); an
// unsure first window keeps its encoder output for the input's first window to decode
// (batcher.keep), so doubt costs a batch, not an encoding. A variable: tests set it over 1 to
// take the three windows together, as before.
var detectSure = 0.9

// detectPart is which of the input's n detection windows (detectStarts), [lo, hi), its next
// detection step reads and decodes: with Sequential windows the first alone, then, if that left
// detection unsure, the rest together (on a backend with an arena detectAlone reads the rest
// within the first step). Independent windows take them all at once: they are the input's first
// windows to decode, in the same batch (follow), so none is encoded for detection alone.
func (in *input) detectPart(n int) (lo, hi int) {
	switch {
	case in.opts.Windows == Independent || detectSure > 1:
		return 0, n
	case len(in.detectPer) == 0:
		return 0, min(1, n)
	}
	return min(len(in.detectPer), n), n
}

// sure reports whether p, a detection window's probabilities over the allowed languages, gives
// its most probable language at least detectSure.
func (in *input) sure(p map[string]float64) bool {
	return p[bestLanguage(p, in.allowed)] >= detectSure
}

// detectFrom adds per, the language probabilities of the detection windows just decoded, to those
// before (detectPer) and sets the language detected over them all (setDetected), unless they are
// the first window alone, more windows follow (more) and the first window's most probable
// language is below detectSure: then it keeps them and the input waits for its next detection step.
func (in *input) detectFrom(per []map[string]float64, more bool) error {
	all := append(in.detectPer, per...)
	if more && len(all) == 1 && !in.sure(all[0]) {
		in.detectPer = all
		return nil
	}
	in.detectPer = nil
	return in.setDetected(all)
}

// chooseLanguage settles the language from the options: a given language, English for an
// English-only model, the single allowed language, or detection later (in.detect), per window
// when several languages are allowed.
func (in *input) chooseLanguage() error {
	o := in.opts
	lang := strings.ToLower(strings.TrimSpace(o.Language))
	if lang == "auto" {
		lang = ""
	}
	if in.tok.Multilingual {
		all := languageTokens(in.tok)
		if len(o.Languages) == 0 {
			in.allowed = all
		}
		seen := map[string]bool{}
		for _, l := range o.Languages {
			code, ok := tokenizer.LanguageCode(l)
			id, okTok := in.tok.LanguageToken(code)
			if !ok || !okTok {
				return fmt.Errorf("allowed language %q: %w", l, tokenizer.ErrUnknownLanguage)
			}
			if !seen[code] {
				seen[code] = true
				in.allowed = append(in.allowed, langToken{code, id})
			}
		}
	}
	switch {
	case !in.tok.Multilingual:
		lang = "en"
	case lang != "":
	case len(in.allowed) == 1:
		lang = in.allowed[0].code
	default:
		in.detect = true
		in.perWindow = len(in.allowed) > 1 && len(o.Languages) > 1
		return nil
	}
	if err := in.setLanguage(lang); err != nil {
		return err
	}
	in.res.Language = in.lang
	return nil
}

// setLanguage makes lang the language of the windows decoded from now on.
func (in *input) setLanguage(lang string) error {
	if code, ok := tokenizer.LanguageCode(lang); ok {
		lang = code
	}
	sot, err := in.tok.SOTSequence(lang, in.opts.Task)
	if err != nil {
		return err
	}
	in.lang, in.sot = lang, sot
	return nil
}

// setDetected sets the language most probable on average over per, each detection window's
// probabilities over the allowed languages, as the result's language: the input is detected.
func (in *input) setDetected(per []map[string]float64) error {
	avg := make(map[string]float64, len(in.allowed))
	for _, p := range per {
		for code, v := range p {
			avg[code] += v / float64(len(per))
		}
	}
	if err := in.setLanguage(bestLanguage(avg, in.allowed)); err != nil {
		return err
	}
	in.res.Language, in.res.LanguageProbs = in.lang, avg
	in.detected = true
	return nil
}

// detectWindow sets the language of window w of enc from that window alone (per-window
// detection among the allowed languages).
func (in *input) detectWindow(enc *Encoded, w int) error {
	per, err := in.languageProbsAt(enc, []int{w})
	if err != nil {
		return err
	}
	return in.setLanguage(bestLanguage(per[0], in.allowed))
}

// languageProbsAt returns the language probabilities (over the allowed languages) of windows of
// enc, decoded as one batch.
func (in *input) languageProbsAt(enc *Encoded, windows []int) ([]map[string]float64, error) {
	defer held(in.dev)()
	s, err := in.m.NewSession(enc, windows)
	if err != nil {
		return nil, fmt.Errorf("detect language: %w", err)
	}
	defer s.Close()
	return detectLanguages(s, in.tok.SOT, in.tok.NVocab, in.allowed)
}

// detectLanguages feeds <|startoftranscript|> to every sequence of s and returns each one's
// softmax over langs.
func detectLanguages(s stepper, sot, nVocab int, langs []langToken) ([]map[string]float64, error) {
	if len(langs) == 0 {
		return nil, ErrNotMultilingual
	}
	b := 1
	if bs, ok := s.(interface{ Batch() int }); ok {
		b = bs.Batch()
	}
	rows := make([][]int32, b)
	for i := range rows {
		rows[i] = []int32{int32(sot)}
	}
	logits, err := s.Step(rows, false)
	if err != nil {
		return nil, fmt.Errorf("detect language: %w", err)
	}
	if len(logits) != b*nVocab {
		return nil, fmt.Errorf("detect language: %d logits, want %d", len(logits), b*nVocab)
	}
	out := make([]map[string]float64, b)
	for i := range out {
		_, out[i] = languageProbs(logits[i*nVocab:(i+1)*nVocab], langs)
	}
	return out, nil
}

// bestLanguage is the most probable of langs under probs (the first on ties, in token order).
func bestLanguage(probs map[string]float64, langs []langToken) string {
	best, bp := "", math.Inf(-1)
	for _, l := range langs {
		if p := probs[l.code]; p > bp {
			best, bp = l.code, p
		}
	}
	return best
}
