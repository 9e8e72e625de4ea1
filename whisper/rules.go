package whisper

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/verbatimhq/verbatim/whisper/tokenizer"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// vocabIDs are the token ids the decoding rules need, taken from the tokenizer (or set by hand in
// tests).
type vocabIDs struct {
	nVocab                                          int
	eot, sot, translate, transcribe, sotLM, sotPrev int
	noSpeech, noTimestamps, tsBegin                 int
	blank                                           []int // the tokens of " "
	langs                                           []int // every language token
	nonSpeech                                       []int // openai's non_speech_tokens
}

func idsOf(tok *tokenizer.Tokenizer) vocabIDs {
	v := vocabIDs{
		nVocab: tok.NVocab, eot: tok.EOT, sot: tok.SOT, translate: tok.Translate,
		transcribe: tok.Transcribe, sotLM: tok.SOTLM, sotPrev: tok.SOTPrev, noSpeech: tok.NoSpeech,
		noTimestamps: tok.NoTimestamps, tsBegin: tok.TimestampBegin,
		blank: tok.Encode(" "), nonSpeech: tok.NonSpeechTokens(),
	}
	if tok.Multilingual {
		for _, code := range tok.Languages() {
			if id, ok := tok.LanguageToken(code); ok {
				v.langs = append(v.langs, id)
			}
		}
	}
	return v
}

// logitFilter masks the logits of the next token of one sequence, in place, given the tokens
// sampled so far in that sequence (the prompt and SOT sequence excluded). The filters of a task
// are applied in order, as the reference's LogitFilter list. masks says the same as data (what
// a device applies where the logits are, tensor.RowPicker); apply is masks applied.
type logitFilter interface {
	apply(logits []float32, sampled []int)
	masks(sampled []int, m *rowMask)
}

// rowMask is what a task's filters forbid in one row at one step: fixed id lists, ranges, and
// the timestamp rule, whose decision depends on the logits and comes last (timestampRules is
// always a task's last filter).
type rowMask struct {
	lists   [][]int
	ranges  [][2]int32
	tsRule  bool
	tsBegin int
}

func (m *rowMask) reset() {
	m.lists, m.ranges, m.tsRule, m.tsBegin = m.lists[:0], m.ranges[:0], false, 0
}

func (m *rowMask) forbid(from, to int) {
	if from < to {
		m.ranges = append(m.ranges, [2]int32{int32(from), int32(to)})
	}
}

// apply masks logits in place: the lists, the ranges, then the timestamp rule.
func (m *rowMask) apply(logits []float32) {
	for _, l := range m.lists {
		for _, id := range l {
			if id >= 0 && id < len(logits) {
				logits[id] = negInf
			}
		}
	}
	for _, g := range m.ranges {
		mask(logits, int(g[0]), int(g[1]))
	}
	if m.tsRule {
		// log P(any timestamp) > max log P(text) compares the same in logit space: the softmax
		// normalizer cancels.
		maxText := float32(math.Inf(-1))
		for _, v := range logits[:m.tsBegin] {
			maxText = max(maxText, v)
		}
		if logSumExp32(logits[m.tsBegin:]) > float64(maxText) {
			mask(logits, 0, m.tsBegin)
		}
	}
}

// applyFilter is the apply of a filter that says what it does through masks.
func applyFilter(f logitFilter, logits []float32, sampled []int) {
	var m rowMask
	f.masks(sampled, &m)
	m.apply(logits)
}

var negInf = float32(math.Inf(-1))

func mask(logits []float32, from, to int) {
	from = max(from, 0)
	to = min(to, len(logits))
	for i := from; i < to; i++ {
		logits[i] = negInf
	}
}

// suppressBlank forbids a blank or an immediate end of text at the first sampled position
// (openai's SuppressBlank).
type suppressBlank struct{ ids []int }

func (f suppressBlank) apply(logits []float32, sampled []int) { applyFilter(f, logits, sampled) }

func (f suppressBlank) masks(sampled []int, m *rowMask) {
	if len(sampled) == 0 {
		m.lists = append(m.lists, f.ids)
	}
}

// suppressTokens forbids a fixed set of tokens everywhere (openai's SuppressTokens).
type suppressTokens struct{ ids []int }

func (f suppressTokens) apply(logits []float32, sampled []int) { applyFilter(f, logits, sampled) }

func (f suppressTokens) masks(_ []int, m *rowMask) { m.lists = append(m.lists, f.ids) }

// suppressRange forbids tokens [from, to) everywhere (whisper.cpp's no-timestamps mode masks every
// timestamp this way).
type suppressRange struct{ from, to int }

func (f suppressRange) apply(logits []float32, sampled []int) { applyFilter(f, logits, sampled) }

func (f suppressRange) masks(_ []int, m *rowMask) { m.forbid(f.from, f.to) }

// timestampRules is openai's ApplyTimestampRules, with whisper.cpp's variant of two rules
// (rules.forceFirstTimestamp, rules.repeatTimestamps):
//   - <|notimestamps|> is never sampled;
//   - timestamps come in pairs, except directly before <|endoftext|>: after a lone timestamp only a
//     timestamp or EOT may follow, after a pair only text or EOT;
//   - timestamps do not decrease; openai also forbids repeating the last timestamp unless it
//     closes a pair (non-zero segment lengths), whisper.cpp only forbids going back and counts
//     a timestamp as seen only after <|0.00|> (repeat);
//   - openai forces the first sampled token to be a timestamp (forceFirst), at most maxInitial
//     steps (of 20 ms) from the window start; whisper.cpp applies the maxInitial limit only;
//   - if the total probability of the timestamps beats every single text token, a timestamp is
//     sampled (the mass rule; off with noMassRule, see timestampMassRule).
type timestampRules struct {
	eot, noTimestamps, begin int
	maxInitial               int // index of the last allowed initial timestamp; < 0: no limit
	forceFirst               bool
	repeat                   bool
	noMassRule               bool
}

func (r *timestampRules) apply(logits []float32, sampled []int) { applyFilter(r, logits, sampled) }

// masks: the ranges below reach past the vocabulary where the rules say "to the end"; they are
// cut to the row when applied.
func (r *timestampRules) masks(sampled []int, m *rowMask) {
	const end = math.MaxInt32
	m.forbid(r.noTimestamps, r.noTimestamps+1)
	n := len(sampled)
	lastTS := n >= 1 && sampled[n-1] >= r.begin
	penultTS := n < 2 || sampled[n-2] >= r.begin
	if lastTS {
		if penultTS {
			m.forbid(r.begin, end) // must be text (or EOT)
		} else {
			m.forbid(0, r.eot) // must be a timestamp (or EOT)
		}
	}
	if r.repeat {
		if i := lastIndexFunc(sampled, func(t int) bool { return t > r.begin }); i >= 0 {
			m.forbid(r.begin, sampled[i])
		}
	} else if i := lastIndexFunc(sampled, func(t int) bool { return t >= r.begin }); i >= 0 {
		bound := sampled[i] + 1
		if lastTS && !penultTS {
			bound = sampled[i]
		}
		m.forbid(r.begin, bound)
	}
	if n == 0 {
		if r.forceFirst {
			m.forbid(0, r.begin)
		}
		if r.maxInitial >= 0 {
			m.forbid(r.begin+r.maxInitial+1, end)
		}
	}
	m.tsRule, m.tsBegin = !r.noMassRule, r.begin
}

// timestampMassRule reports whether decoding applies the reference's mass rule (the last rule of
// timestampRules) for a model of architecture arch and configuration c. Every real Whisper model
// does, as openai/whisper and whisper.cpp do. The project's mini model does not: it is small and
// its text distribution is flat where a word is hard, so the summed mass of 1,501 timestamps
// beats the best text token mid-sentence, the segment is closed there, and the rest is decoded
// again or squeezed into a segment of a few hundredths of a second ("[0.58-3.78] What is the
// [4.94-5.06] What is the correlation between those two variables?"). Measured on held-out
// sentences 49-932 (tools/mini/README.md, "Fifth run"): without the rule WER 8.21% -> 8.08% and
// segments within 0.3 s of the truth 870 -> 874 of 884, every such failure gone and nothing else
// changed.
func timestampMassRule(arch string, c weights.Config) bool {
	return arch != "mini" || !isArch(arch, c)
}

func lastIndexFunc(s []int, f func(int) bool) int {
	for i := len(s) - 1; i >= 0; i-- {
		if f(s[i]) {
			return i
		}
	}
	return -1
}

// parseSuppressTokens reads the reference's --suppress_tokens syntax: comma-separated ids, where
// -1 stands for the non-speech symbol set. "" is no extra tokens.
func parseSuppressTokens(s string, nonSpeech []int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("suppress tokens %q: %w", s, err)
		}
		switch {
		case id == -1:
			out = append(out, nonSpeech...)
		case id < 0:
			return nil, fmt.Errorf("suppress tokens %q: negative id %d", s, id)
		default:
			out = append(out, id)
		}
	}
	return out, nil
}

// suppressList is the full SuppressTokens set for a task: the user's list (with -1 expanded) plus
// the specials the reference always adds: translate, transcribe, SOT, SOT-prev, SOT-LM and
// no-speech; with extra (whisper.cpp's rules), <|notimestamps|> and every language token too.
func suppressList(v vocabIDs, user string, extra bool) ([]int, error) {
	ids, err := parseSuppressTokens(user, v.nonSpeech)
	if err != nil {
		return nil, err
	}
	ids = append(ids, v.translate, v.transcribe, v.sot, v.sotPrev, v.sotLM, v.noSpeech)
	if extra {
		ids = append(ids, v.noTimestamps)
		ids = append(ids, v.langs...)
	}
	for _, id := range ids {
		if id >= v.nVocab {
			return nil, fmt.Errorf("suppress token %d: vocabulary has %d tokens", id, v.nVocab)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
