package whisper

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/tokenizer"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// upstreamAlignmentHeads are openai/whisper's _ALIGNMENT_HEADS (whisper/__init__.py): base85
// (RFC 1924 alphabet, Python's b85encode) of gzip of a bool mask over (decoder layer, head).
var upstreamAlignmentHeads = map[string]string{
	"tiny.en":        "ABzY8J1N>@0{>%R00Bk>$p{7v037`oCl~+#00",
	"tiny":           "ABzY8bu8Lr0{>%RKn9Fp%m@SkK7Kt=7ytkO",
	"base.en":        "ABzY8;40c<0{>%RzzG;p*o+Vo09|#PsxSZm00",
	"base":           "ABzY8KQ!870{>%RzyTQH3`Q^yNP!>##QT-<FaQ7m",
	"small.en":       "ABzY8>?_)10{>%RpeA61k&I|OI3I$65C{;;pbCHh0B{qLQ;+}v00",
	"small":          "ABzY8DmU6=0{>%Rpa?J`kvJ6qF(V^F86#Xh7JUGMK}P<N0000",
	"medium.en":      "ABzY8usPae0{>%R7<zz_OvQ{)4kMa0BMw6u5rT}kRKX;$NfYBv00*Hl@qhsU00",
	"medium":         "ABzY8B0Jh+0{>%R7}kK1fFL7w6%<-Pf*t^=N)Qr&0RR9",
	"large-v1":       "ABzY8r9j$a0{>%R7#4sLmoOs{s)o3~84-RPdcFk!JR<kSfC2yj",
	"large-v2":       "ABzY8zd+h!0{>%R7=D0pU<_bnWW*tkYAhobTNnu$jnkEkXqp)j;w1Tzk)UH3X%SZd&fFZ2fC2yj",
	"large-v3":       "ABzY8gWO1E0{>%R7(9S+Kn!D~%ngiGaR?*L!iJG9p-nab0JQ=-{D1-g00",
	"large-v3-turbo": "ABzY8j^C+e0{>%RARaKHP%t(lGR*)0g!tONPyhe`",
}

// b85decode is Python's base64.b85decode.
func b85decode(t *testing.T, s string) []byte {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
	pad := (5 - len(s)%5) % 5
	s += strings.Repeat("~", pad)
	var out []byte
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for _, c := range []byte(s[i : i+5]) {
			d := strings.IndexByte(alphabet, c)
			if d < 0 {
				t.Fatalf("base85: bad character %q", c)
			}
			v = v*85 + uint64(d)
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out[:len(out)-pad]
}

func TestAlignmentHeadTable(t *testing.T) {
	for _, arch := range weights.Archs() {
		if arch == "micro" || arch == "mini" { // ours: no upstream mask
			continue
		}
		t.Run(arch, func(t *testing.T) {
			enc, ok := upstreamAlignmentHeads[arch]
			if !ok {
				t.Fatalf("no upstream mask for %s", arch)
			}
			zr, err := gzip.NewReader(bytes.NewReader(b85decode(t, enc)))
			if err != nil {
				t.Fatal(err)
			}
			mask, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			c, err := weights.Arch(arch)
			if err != nil {
				t.Fatal(err)
			}
			if len(mask) != c.NTextLayer*c.NTextHead {
				t.Fatalf("mask of %d, want %d layers x %d heads", len(mask), c.NTextLayer, c.NTextHead)
			}
			var want []alignHead
			for i, v := range mask {
				if v != 0 {
					want = append(want, alignHead{i / c.NTextHead, i % c.NTextHead})
				}
			}
			if diff := cmp.Diff(want, alignmentHeads(arch, c), cmp.AllowUnexported(alignHead{})); diff != "" {
				t.Errorf("(-upstream +table):\n%s", diff)
			}
		})
	}
}

func TestAlignmentHeadsDefault(t *testing.T) {
	micro, err := weights.Arch("micro")
	if err != nil {
		t.Fatal(err)
	}
	tiny, err := weights.Arch("tiny")
	if err != nil {
		t.Fatal(err)
	}
	odd := tiny
	odd.NTextLayer = 5
	cases := []struct {
		name string
		arch string
		c    weights.Config
		want []alignHead
	}{
		{"micro: last half", "micro", micro, []alignHead{{1, 0}, {1, 1}}},
		{"custom, 5 layers", "custom", odd, []alignHead{{2, 0}, {2, 1}, {2, 2}, {2, 3}, {2, 4}, {2, 5}, {3, 0}, {3, 1}, {3, 2}, {3, 3}, {3, 4}, {3, 5}, {4, 0}, {4, 1}, {4, 2}, {4, 3}, {4, 4}, {4, 5}}},
		// A name whose configuration does not match never gets that model's table.
		{"mismatched name", "tiny", odd, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := alignmentHeads(c.arch, c.c)
			if c.want == nil {
				c.want = alignmentHeads("custom", c.c)
			}
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(alignHead{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergePunctuations(t *testing.T) {
	type w struct {
		Text string
		Toks []int
	}
	cases := []struct {
		name string
		in   []string
		want []w
	}{
		{"comma and period", []string{" Hello", ",", " world", "."},
			[]w{{" Hello,", []int{0, 1}}, {"", nil}, {" world.", []int{2, 3}}, {"", nil}}},
		{"quotes both sides", []string{" He", " said", " \"", "yes", "\"", "."},
			[]w{{" He", []int{0}}, {" said", []int{1}}, {"", nil}, {" \"yes\".", []int{2, 3, 4, 5}}, {"", nil}, {"", nil}}},
		{"opening bracket prepends", []string{" (", "see", " below", ")"},
			[]w{{"", nil}, {" (see", []int{0, 1}}, {" below)", []int{2, 3}}, {"", nil}}},
		// A word ending with a space takes no appended punctuation; a prepended mark without a
		// leading space stays.
		{"space before", []string{" a ", ".", "(", " b"},
			[]w{{" a ", []int{0}}, {".", []int{1}}, {"(", []int{2}}, {" b", []int{3}}}},
		{"repeated marks", []string{" wait", "?", "!", " no"},
			[]w{{" wait?!", []int{0, 1, 2}}, {"", nil}, {"", nil}, {" no", []int{3}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			words := make([]wordTiming, len(c.in))
			for i, s := range c.in {
				words[i] = wordTiming{text: s, toks: []int{i}, start: float64(i), end: float64(i) + 0.5}
			}
			mergePunctuations(words, prependPunctuations, appendPunctuations)
			var got []w
			for i, x := range words {
				got = append(got, w{x.text, x.toks})
				if x.start != float64(i) || x.end != float64(i)+0.5 {
					t.Errorf("word %d re-timed to %v..%v", i, x.start, x.end)
				}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSentenceEndsAndMedian(t *testing.T) {
	words := []wordTiming{
		{text: " One", start: 0, end: 0.4},
		{text: ".", start: 0.4, end: 2.0},    // a long sentence end: cut to 2 x median after its start
		{text: " Two", start: 2.0, end: 4.0}, // long after a sentence end: starts 2 x median before its end
		{text: " three", start: 4.0, end: 4.2},
		{text: " four", start: 4.2, end: 4.2}, // zero length: not in the median
	}
	med := medianDuration(words)
	if med != 0.7 { // median of 0.2, 0.4, 1.6, 2.0 is 1.0, capped at 0.7
		t.Errorf("median %v, want 0.7", med)
	}
	if got := medianDuration(words[3:]); math.Abs(got-0.2) > 1e-12 {
		t.Errorf("median of one nonzero duration %v, want 0.2", got)
	}
	if got := medianDuration(nil); got != 0 {
		t.Errorf("median of none %v", got)
	}
	clampSentenceEnds(words, 2*med)
	want := [][2]float64{{0, 0.4}, {0.4, 1.8}, {2.6, 4.0}, {4.0, 4.2}, {4.2, 4.2}}
	for i, w := range words {
		if math.Abs(w.start-want[i][0]) > 1e-9 || math.Abs(w.end-want[i][1]) > 1e-9 {
			t.Errorf("word %d %q: %v..%v, want %v..%v", i, w.text, w.start, w.end, want[i][0], want[i][1])
		}
	}
}

func TestPlaceWords(t *testing.T) {
	seg := func(start, end float64, n int) *Segment {
		return &Segment{Start: start, End: end, Tokens: make([]Token, n)}
	}
	t.Run("retime to words", func(t *testing.T) {
		segs := []*Segment{seg(10, 14, 2), seg(14, 20, 1)}
		align := []wordTiming{
			{text: " a", toks: []int{0}, start: 0.5, end: 0.9, p: 0.5},
			{text: " b", toks: []int{1}, start: 0.9, end: 1.2, p: 0.6},
			{text: " c", toks: []int{2}, start: 4.4, end: 4.8, p: 0.7},
		}
		jumps := []float64{0.5, 0.9, 4.4, 4.8}
		placeWords(segs, align, jumps, 10, 9, 9, true)
		got := [][]Word{segs[0].Words, segs[1].Words}
		want := [][]Word{
			{{" a", 10.5, 10.9, 0.5}, {" b", 10.9, 11.2, 0.6}},
			{{" c", 14.4, 14.8, 0.7}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("words (-want +got):\n%s", diff)
		}
		if segs[0].Start != 10.5 || segs[0].End != 11.2 || segs[1].Start != 14.4 || segs[1].End != 14.8 {
			t.Errorf("segments %v..%v, %v..%v", segs[0].Start, segs[0].End, segs[1].Start, segs[1].End)
		}
		if tk := segs[0].Tokens[1]; tk.Start != 10.9 || tk.End != 11.2 {
			t.Errorf("token 1 at %v..%v", tk.Start, tk.End)
		}
	})
	t.Run("keep segment times", func(t *testing.T) {
		segs := []*Segment{seg(10, 11, 2)}
		align := []wordTiming{
			{text: " a", toks: []int{0}, start: 0.2, end: 0.6},
			{text: " b", toks: []int{1}, start: 0.6, end: 1.6}, // past the segment end: clamped
		}
		placeWords(segs, align, []float64{0.2, 0.6, 1.6}, 10, 10, 10, false)
		if segs[0].Start != 10 || segs[0].End != 11 {
			t.Errorf("segment re-timed to %v..%v", segs[0].Start, segs[0].End)
		}
		w := segs[0].Words
		if len(w) != 2 || w[0].Start != 10.2 || w[0].End != 10.6 || w[1].Start != 10.6 || w[1].End != 11 {
			t.Errorf("words %+v", w)
		}
	})
	t.Run("first word after a pause", func(t *testing.T) {
		// Median 0.3 s: a first word 2 s long, 5 s after the last speech, is cut to 2 x median
		// before its end, and the segment starts there.
		segs := []*Segment{seg(0, 10, 3)}
		align := []wordTiming{
			{text: " long", toks: []int{0}, start: 3, end: 5},
			{text: " b", toks: []int{1}, start: 5, end: 5.3},
			{text: " c", toks: []int{2}, start: 5.3, end: 5.6},
		}
		placeWords(segs, align, []float64{3, 5, 5.3, 5.6}, 0, 0, 0, true)
		if w := segs[0].Words[0]; math.Abs(w.Start-4.4) > 1e-9 || w.End != 5 {
			t.Errorf("first word %v..%v, want 4.4..5", w.Start, w.End)
		}
		if math.Abs(segs[0].Start-4.4) > 1e-9 || segs[0].End != 5.6 {
			t.Errorf("segment %v..%v, want 4.4..5.6", segs[0].Start, segs[0].End)
		}
	})
}

// syntheticAttention builds cross-attention probabilities [heads, rows, frames] in which row
// first+r attends to frames [bounds[r], bounds[r+1]) (bounds ends at frames) with a little
// noise; the other rows attend anywhere. With noiseHead, the third of three heads is noise only.
func syntheticAttention(rng *rand.Rand, rows, first int, bounds []int, noiseHead bool) ([]float32, int) {
	const heads = 3
	frames := bounds[len(bounds)-1]
	p := make([]float32, heads*rows*frames)
	for h := range heads {
		for r := range rows {
			row := p[(h*rows+r)*frames : (h*rows+r+1)*frames]
			var sum float32
			for f := range row {
				v := 0.05 + 0.05*rng.Float32()
				if k := r - first; (h < 2 || !noiseHead) && k >= 0 && k < len(bounds)-1 && f >= bounds[k] && f < bounds[k+1] {
					v += 1
				}
				row[f] = v
				sum += v
			}
			for f := range row {
				row[f] /= sum
			}
		}
	}
	return p, heads
}

// TestSyntheticAlignment runs the whole host side of word timing (alignment, words, merging,
// placement) on attention constructed so that the true alignment is known.
func TestSyntheticAlignment(t *testing.T) {
	tok, err := tokenizer.New(51865)
	if err != nil {
		t.Fatal(err)
	}
	sot, err := tok.SOTSequence("en", "transcribe")
	if err != nil {
		t.Fatal(err)
	}
	text := tok.Encode(" Hello, world. This is a test.")
	first := len(sot)
	rows := first + 1 + len(text) + 1
	rng := rand.New(rand.NewPCG(4, 5))
	// Row first+r covers [bounds[r], bounds[r+1]); token i is row first+i. DTW starts at frame 0,
	// so the first row does too.
	bounds := []int{0}
	for range len(text) + 1 {
		bounds = append(bounds, bounds[len(bounds)-1]+5+rng.IntN(10))
	}
	frames := bounds[len(bounds)-1]

	// With a head of pure noise, z-scored to unit variance like the others, the path may take
	// a cell of the next row one frame early where the noise makes it attractive (the reference
	// does the same); every boundary stays within one audio position of the truth.
	noisy, heads := syntheticAttention(rng, rows, first, bounds, true)
	for i, j := range alignJumps(noisy, heads, rows, frames, first) {
		if want := float64(bounds[i]) * positionSeconds; math.Abs(j-want) > positionSeconds+1e-9 {
			t.Errorf("noisy head: row %d starts at %v, want %v ± %v", i, j, want, positionSeconds)
		}
	}

	probs, heads := syntheticAttention(rng, rows, first, bounds, false)
	jumps := alignJumps(probs, heads, rows, frames, first)
	if len(jumps) != len(text)+1 {
		t.Fatalf("%d jump times for %d tokens", len(jumps), len(text))
	}
	for i, j := range jumps {
		if want := float64(bounds[i]) * positionSeconds; math.Abs(j-want) > 1e-9 {
			t.Errorf("row %d starts at %v, want %v", i, j, want)
		}
	}

	tokenP := make([]float64, len(text))
	for i := range tokenP {
		tokenP[i] = 0.5 + 0.01*float64(i)
	}
	words, groups := tok.SplitWords(append(slices.Clone(text), tok.EOT), "en")
	align := alignWords(words, groups, jumps, tokenP)
	clampSentenceEnds(align, 2*medianDuration(align))
	mergePunctuations(align, prependPunctuations, appendPunctuations)

	segText := make([]Token, len(text))
	for i, id := range text {
		segText[i] = Token{ID: id}
	}
	s := &Segment{Start: 0, End: float64(frames) * positionSeconds, Tokens: segText}
	const offset = 30
	s.Start += offset
	s.End += offset
	placeWords([]*Segment{s}, align, jumps, offset, offset, 0, true)

	// Each word keeps the span of its own (non-punctuation) tokens; punctuation joins it.
	type span struct {
		Text       string
		Start, End float64
	}
	var want []span
	at := 0
	for i, g := range groups[:len(groups)-1] {
		if strings.Contains(appendPunctuations, words[i]) {
			want[len(want)-1].Text += words[i]
		} else {
			want = append(want, span{words[i], round2(offset + float64(bounds[at])*positionSeconds), round2(offset + float64(bounds[at+len(g)])*positionSeconds)})
		}
		at += len(g)
	}
	var got []span
	for _, w := range s.Words {
		got = append(got, span{w.Text, w.Start, w.End})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("words (-want +got):\n%s", diff)
	}
	if texts := []string{" Hello,", " world.", " This", " is", " a", " test."}; len(got) != len(texts) {
		t.Errorf("%d words, want %q", len(got), texts)
	}
	if s.Start != want[0].Start || s.End != want[len(want)-1].End {
		t.Errorf("segment %v..%v, want the words' %v..%v", s.Start, s.End, want[0].Start, want[len(want)-1].End)
	}
	if p := s.Words[0].P; math.Abs(p-(tokenP[0]+tokenP[1])/2) > 1e-12 && math.Abs(p-tokenP[0]) > 1e-12 {
		t.Errorf("first word probability %v", p)
	}
	checkTimes(t, []Segment{*s}, true)
}

// checkTimes checks that words and tokens lie inside their segments, in order, without
// overlapping, and (when ordered is set) that segments do not overlap either.
func checkTimes(t *testing.T, segs []Segment, ordered bool) {
	t.Helper()
	prevSeg, prevWord := math.Inf(-1), math.Inf(-1)
	for i, s := range segs {
		if s.End < s.Start || (ordered && s.Start < prevSeg) {
			t.Errorf("segment %d: %v..%v after %v", i, s.Start, s.End, prevSeg)
		}
		prevSeg = s.End
		for j, w := range s.Words {
			if w.Start < s.Start || w.End > s.End || w.End < w.Start || w.Start < prevWord {
				t.Errorf("segment %d (%v..%v) word %d %q: %v..%v after %v", i, s.Start, s.End, j, w.Text, w.Start, w.End, prevWord)
			}
			if !(w.P >= 0 && w.P <= 1) {
				t.Errorf("segment %d word %d: probability %v", i, j, w.P)
			}
			prevWord = w.End
		}
		prevTok := s.Start
		for j, tk := range s.Tokens {
			if tk.Start < prevTok || tk.End < tk.Start || tk.End > s.End {
				t.Errorf("segment %d (%v..%v) token %d: %v..%v after %v", i, s.Start, s.End, j, tk.Start, tk.End, prevTok)
			}
			prevTok = tk.Start
		}
	}
}

// TestForcedPassParity checks the forced pass on the oracle micro model: its logits against
// transformers' for the same 16 tokens, and the cross-attention probabilities it captures (both
// through AttentionProbs and through Transpose/MatMul/Softmax) against a direct computation
// from the layer's queries and the encoder's cross-attention keys.
func TestForcedPassParity(t *testing.T) {
	o := readOracle(t)
	b := newCPU(t)
	m, err := Load(oracleDir, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	enc, err := m.Encode(o.mel, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	c := m.Config
	toks := make([]int, len(o.golden.Forced))
	ids := make([]int32, len(toks))
	for i, v := range o.golden.Forced {
		toks[i], ids[i] = int(v), v
	}
	n := len(toks)
	const frames = 550 // the 11 s of jfk.wav
	heads := []alignHead{{0, 1}, {1, 0}, {1, 1}}

	// The reference: each layer's queries from the decoder itself, softmax(q k^T / sqrt(d)) on
	// the host in float64.
	s, err := m.NewSession(enc, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	s.ids = ids
	qs := make([][]float32, c.NTextLayer)
	m.decodeLayers(s, n, m.decViews(1, n, logitsRows), func(layer int, q *tensor.Tensor) { qs[layer] = b.ToF32(q) })
	s.Close()
	d, hd := c.NTextState, c.NTextState/c.NTextHead
	want := make([]float32, 0, len(heads)*n*frames)
	for _, h := range heads {
		k := b.ToF32(enc.crossK[h.layer])
		for i := range n {
			row := make([]float64, frames)
			mx := math.Inf(-1)
			for f := range frames {
				var dot float64
				for e := range hd {
					dot += float64(qs[h.layer][i*d+h.head*hd+e]) * float64(k[f*d+h.head*hd+e])
				}
				row[f] = dot / math.Sqrt(float64(hd))
				mx = max(mx, row[f])
			}
			var sum float64
			for f := range row {
				row[f] = math.Exp(row[f] - mx)
				sum += row[f]
			}
			for f := range row {
				want = append(want, float32(row[f]/sum))
			}
		}
	}

	for _, mode := range []probsMode{probsFused, probsMatMul, probsAuto} {
		name := map[probsMode]string{probsFused: "AttentionProbs", probsMatMul: "MatMul", probsAuto: "auto"}[mode]
		t.Run(name, func(t *testing.T) {
			var logits []float32
			probs, err := m.forcedPass(enc, 0, toks, frames, heads, mode, func(_ int, row []float32) {
				logits = append(logits, row...)
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			compareRows(t, "forced-pass logits vs transformers", logits, o.forcedLogs, c.NVocab, tol, true)
			if len(probs) != len(want) {
				t.Fatalf("%d probabilities, want %d", len(probs), len(want))
			}
			var maxErr float64
			for i := range want {
				maxErr = max(maxErr, math.Abs(float64(probs[i]-want[i])))
			}
			t.Logf("max-abs error of the probabilities: %.3g", maxErr)
			if maxErr > 1e-5 {
				t.Errorf("probabilities differ from the direct computation by up to %g", maxErr)
			}
		})
	}

	for _, bad := range []struct {
		name   string
		toks   []int
		frames int
		heads  []alignHead
	}{
		{"no tokens", nil, frames, heads},
		{"too many frames", toks, c.NAudioCtx + 1, heads},
		{"head outside", toks, frames, []alignHead{{c.NTextLayer, 0}}},
		{"token outside", []int{c.NVocab}, frames, heads},
		{"context full", make([]int, c.NTextCtx+1), frames, heads},
	} {
		if _, err := m.forcedPass(enc, 0, bad.toks, bad.frames, bad.heads, probsAuto, nil, nil); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
}

// TestWordTimestampsMicro transcribes with word timestamps on the oracle micro model (random
// weights: the alignment is meaningless, but its form is checked) in both compatibility modes.
func TestWordTimestampsMicro(t *testing.T) {
	m, samples := loadMicroForTranscribe(t)
	for _, compat := range []Compat{CompatOpenAI, CompatWhisperCpp} {
		t.Run(map[Compat]string{CompatOpenAI: "openai", CompatWhisperCpp: "whisper.cpp"}[compat], func(t *testing.T) {
			o := DefaultOptions()
			o.Language = "en"
			o.BeamSize, o.BestOf = 1, 1
			o.NoFallback = true
			o.Compat = compat
			if !o.WordTimestamps {
				t.Fatal("word timestamps off by default")
			}
			res, err := transcribe(t.Context(), m, SampleSource(samples), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Segments) == 0 {
				t.Fatalf("no segments; gaps %+v, %d retries", res.Gaps, res.Retries)
			}
			var words, text strings.Builder
			nw := 0
			for _, s := range res.Segments {
				text.WriteString(s.Text)
				for _, w := range s.Words {
					words.WriteString(w.Text)
					nw++
				}
			}
			if nw == 0 {
				t.Fatal("no words")
			}
			if words.String() != text.String() {
				t.Errorf("words do not spell the text:\n%.200q\n%.200q", words.String(), text.String())
			}
			checkTimes(t, res.Segments, compat == CompatOpenAI)
			t.Logf("%d segments, %d words; first: %+v", len(res.Segments), nw, res.Segments[0].Words[0])

			o.WordTimestamps = false
			plain, err := transcribe(t.Context(), m, SampleSource(samples), o)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range plain.Segments {
				if s.Words != nil || (len(s.Tokens) > 0 && (s.Tokens[0].Start != 0 || s.Tokens[0].End != 0)) {
					t.Fatalf("segment %d has word or token times without WordTimestamps", i)
				}
			}
			if compat == CompatWhisperCpp {
				// whisper.cpp mode keeps whisper.cpp's segments: word timing only adds to them.
				if len(plain.Segments) != len(res.Segments) {
					t.Fatalf("%d segments, %d without word timing", len(res.Segments), len(plain.Segments))
				}
				for i := range plain.Segments {
					if p, r := plain.Segments[i], res.Segments[i]; p.Start != r.Start || p.End != r.End || p.Text != r.Text {
						t.Errorf("segment %d changed by word timing: %v..%v %q vs %v..%v %q", i, r.Start, r.End, r.Text, p.Start, p.End, p.Text)
					}
				}
			}
		})
	}
}

// BenchmarkWordTiming measures the word-timing work of one full 30 s window with 100 text
// tokens: the forced decoder pass with the alignment heads' probabilities (through
// AttentionProbs or MatMul), and the host side (normalization, median filter, DTW).
func BenchmarkWordTiming(b *testing.B) {
	for _, arch := range benchArchs {
		m := synthModel(b, arch, tensor.F16, weights.GGML)
		c := m.Config
		enc, err := m.Encode(randomMel(c, 1), 1)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(8, 8))
		toks := []int{50258, 50259, 50359, 50363}
		for range 100 {
			toks = append(toks, rng.IntN(50000))
		}
		toks = append(toks, 50257)
		heads := alignmentHeads(arch, c)
		for _, mode := range []probsMode{probsFused, probsMatMul, probsAuto} {
			name := map[probsMode]string{probsFused: "AttentionProbs", probsMatMul: "MatMul", probsAuto: "auto"}[mode]
			b.Run(fmt.Sprintf("%s/forced/%s", arch, name), func(b *testing.B) {
				for b.Loop() {
					if _, err := m.forcedPass(enc, 0, toks, c.NAudioCtx, heads, mode, nil, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		probs, err := m.forcedPass(enc, 0, toks, c.NAudioCtx, heads, probsAuto, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(arch+"/align", func(b *testing.B) {
			x := make([]float32, len(probs))
			for b.Loop() {
				copy(x, probs)
				alignJumps(x, len(heads), len(toks), c.NAudioCtx, 3)
			}
		})
		enc.Close()
	}
}

// TestForcedLogitsChunked: forcedPass computes its logits forcedRows positions at a time; they
// must be bitwise the logits of one decoder step over all the positions, for every weight type
// (a quantized matrix takes other kernels for up to 8 rows) and for passes shorter than, equal
// to and longer than a chunk (the last chunk overlapping the one before it).
func TestForcedLogitsChunked(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q5_0} {
		format := weights.GGML
		if dt == tensor.F32 {
			format = weights.Safetensors
		}
		m := synthModel(t, "micro", dt, format)
		c := m.Config
		e := encode(t, m, randomMel(c, 1), 1)
		heads := []alignHead{{0, 0}}
		for _, n := range []int{3, 9, forcedRows, forcedRows + 1, 2*forcedRows + 5} {
			toks := make([]int, n)
			ids := make([]int32, n)
			for i := range toks {
				toks[i] = (i*7919 + 50258) % 50257
				ids[i] = int32(toks[i])
			}
			want := slices.Clone(mustStep(t, session(t, m, e, 0), [][]int32{ids}, true))
			var got []float32
			next := 0
			if _, err := m.forcedPass(e, 0, toks, c.NAudioCtx, heads, probsAuto, func(i int, row []float32) {
				if i != next {
					t.Fatalf("%s, %d tokens: row %d passed, want %d", dt, n, i, next)
				}
				next++
				got = append(got, row...)
			}, nil); err != nil {
				t.Fatal(err)
			}
			if next != n || !slices.Equal(got, want) {
				t.Errorf("%s, %d tokens: %d rows; chunked logits differ from one step's", dt, n, next)
			}
		}
	}
}
