package whisper

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

// randomMap returns a window map of 1-6 pieces of 1-40 samples with gaps of 1-30 samples
// between them in the source.
func randomMap(rng *rand.Rand) timeMap {
	var tm timeMap
	at, src := 0, rng.IntN(20)
	for range 1 + rng.IntN(6) {
		n := 1 + rng.IntN(40)
		tm = append(tm, piece{at: at, src: src, n: n})
		at += n
		src += n + 1 + rng.IntN(30)
	}
	return tm
}

// TestTimeMapExhaustive checks source() at every window sample of many random maps: inside a
// piece both modes give the same, in-piece position; at a boundary the end mode gives the end of
// the piece before and the start mode the start of the piece after; both are non-decreasing,
// never land in a gap, and invert exactly on every source sample of every piece.
func TestTimeMapExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inGap := func(tm timeMap, s int) bool {
		for _, p := range tm {
			if s >= p.src && s <= p.src+p.n {
				return false
			}
		}
		return true
	}
	for c := range 2000 {
		tm := randomMap(rng)
		L := tm.length()
		prevS, prevE := -1, -1
		for x := 0; x <= L; x++ {
			s, e := tm.source(x, false), tm.source(x, true)
			if s < prevS || e < prevE || e > s || inGap(tm, s) || inGap(tm, e) {
				t.Fatalf("map %d %v: x=%d start %d end %d (previous %d %d)", c, tm, x, s, e, prevS, prevE)
			}
			prevS, prevE = s, e
			for k, p := range tm {
				switch {
				case x > p.at && x < p.at+p.n:
					if s != p.src+x-p.at || e != s {
						t.Fatalf("map %v: x=%d inside piece %d: %d %d", tm, x, k, s, e)
					}
				case x == p.at+p.n && k+1 < len(tm):
					if e != p.src+p.n || s != tm[k+1].src {
						t.Fatalf("map %v: boundary x=%d: end %d start %d, want %d %d", tm, x, e, s, p.src+p.n, tm[k+1].src)
					}
				}
			}
		}
		if tm.source(-5, false) != tm[0].src || tm.source(L+7, true) != tm[len(tm)-1].src+tm[len(tm)-1].n {
			t.Fatalf("map %v: out-of-range positions not clamped", tm)
		}
		// Inverse: every source sample of a piece comes from exactly one window sample.
		for _, p := range tm {
			for i := range p.n {
				if got := tm.source(p.at+i, false); got != p.src+i {
					t.Fatalf("map %v: source(%d) = %d, want %d", tm, p.at+i, got, p.src+i)
				}
			}
		}
	}
}

// TestTimeMapSplit maps random segments with random tokens through random maps: no part lies in
// a gap or spans two pieces, parts are in order, the tokens are kept in order, and a segment
// within one piece is shifted exactly.
func TestTimeMapSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sec := func(x int) float64 { return float64(x) / mel.SampleRate }
	for c := range 3000 {
		tm := randomMap(rng)
		L := tm.length()
		x0 := rng.IntN(L + 1)
		x1 := x0 + rng.IntN(L-x0+1)
		var toks []Token
		var words []Word
		timed := rng.IntN(2) == 0
		x := x0
		for range 1 + rng.IntN(8) {
			id := rng.IntN(20)
			tok := Token{ID: id, Text: textOfIDs([]int{id})}
			if timed { // word timing: increasing times inside the segment, one word a token
				a := x + rng.IntN(x1-x+1)
				x = a + rng.IntN(x1-a+1)
				tok.Start, tok.End = sec(a), sec(x)
				words = append(words, Word{Text: tok.Text, Start: tok.Start, End: tok.End})
			}
			toks = append(toks, tok)
		}
		seg := Segment{Start: sec(x0), End: sec(x1), Tokens: toks, Text: textOfIDs(tokenIDs(toks)), Words: words}
		parts := tm.split(pending{seg: seg, all: []int{1, 2}}, textOfIDs)
		var got []int
		var gotWords []string
		prevEnd := -1.0
		for i, p := range parts {
			got = append(got, tokenIDs(p.seg.Tokens)...)
			s, e := int(math.Round(p.seg.Start*mel.SampleRate)), int(math.Round(p.seg.End*mel.SampleRate))
			var in *piece
			for _, q := range tm {
				if s >= q.src && e <= q.src+q.n && s <= e {
					in = &q
				}
			}
			if in == nil || p.seg.Start < prevEnd || p.seg.Text != textOfIDs(tokenIDs(p.seg.Tokens)) {
				t.Fatalf("case %d map %v segment [%d, %d]: part %d %+v not inside one piece or out of order", c, tm, x0, x1, i, p.seg)
			}
			inPiece := func(a, b float64) bool {
				sa, sb := int(math.Round(a*mel.SampleRate)), int(math.Round(b*mel.SampleRate))
				return sa >= in.src && sb <= in.src+in.n && sa <= sb
			}
			tokTimed := false
			for _, tk := range toks {
				tokTimed = tokTimed || tk.End > 0 || tk.Start > 0
			}
			for _, tk := range p.seg.Tokens {
				if tokTimed && !inPiece(tk.Start, tk.End) {
					t.Fatalf("case %d map %v segment [%d %d] tokens %+v: part %d %+v token %+v outside its piece %+v", c, tm, x0, x1, toks, i, p.seg, tk, *in)
				}
			}
			for _, w := range p.seg.Words {
				gotWords = append(gotWords, w.Text)
				if !inPiece(w.Start, w.End) {
					t.Fatalf("case %d map %v: part %d word %+v outside its piece %+v", c, tm, i, w, *in)
				}
			}
			if (i == 0) != (p.all != nil) {
				t.Fatalf("case %d: part %d history %v", c, i, p.all)
			}
			prevEnd = p.seg.End
		}
		if !slices.Equal(got, tokenIDs(toks)) || len(gotWords) != len(words) {
			t.Fatalf("case %d: tokens %v, want %v; %d words of %d", c, got, tokenIDs(toks), len(gotWords), len(words))
		}
		one := -1
		for k, q := range tm {
			if q.at <= x0 && x1 <= q.at+q.n {
				one = k
			}
		}
		if one >= 0 && x1 > x0 {
			q := tm[one]
			want := []float64{sec(q.src + x0 - q.at), sec(q.src + x1 - q.at)}
			if len(parts) != 1 || math.Abs(parts[0].seg.Start-want[0]) > 1e-12 || math.Abs(parts[0].seg.End-want[1]) > 1e-12 {
				t.Fatalf("case %d map %v segment [%d, %d] in piece %d: %+v, want %v", c, tm, x0, x1, one, parts, want)
			}
		}
	}
}

func TestTimeMapSplitText(t *testing.T) {
	// Two pieces of 1 s each, 10 s apart in the source; a segment over both halves.
	S := mel.SampleRate
	tm := timeMap{{at: 0, src: 5 * S, n: S}, {at: S, src: 16 * S, n: S}}
	toks := []Token{{ID: 7, Text: "h"}, {ID: 8, Text: "i"}, {ID: 0, Text: "a"}, {ID: 1, Text: "b"}}
	seg := Segment{Start: 0.5, End: 1.5, Tokens: toks}
	got := tm.split(pending{seg: seg}, textOfIDs)
	type part struct {
		Start, End float64
		Text       string
	}
	var parts []part
	for _, p := range got {
		parts = append(parts, part{p.seg.Start, p.seg.End, p.seg.Text})
	}
	want := []part{{5.5, 6, "hi"}, {16, 16.5, "ab"}}
	if d := cmp.Diff(want, parts); d != "" {
		t.Errorf("split (-want +got):\n%s", d)
	}
}

func TestNewTimeline(t *testing.T) {
	S := mel.SampleRate
	cases := []struct {
		name  string
		spans []Span
		total int
		want  []region
	}{
		{"padded and clipped", []Span{{0.05, 1}, {5, 6}}, 6 * S, []region{{0, S + regionPad, 0}, {5*S - regionPad, 6 * S, S + regionPad}}},
		{"unsorted, overlapping and close regions merge", []Span{{3, 4}, {1, 2}, {2.1, 2.5}, {3.5, 3.8}}, -1,
			[]region{{S - regionPad, 2*S + S/2 + regionPad, 0}, {3*S - regionPad, 4*S + regionPad, 3*S/2 + 2*regionPad}}},
		{"empty and inverted spans are dropped", []Span{{2, 2}, {3, 1}, {math.NaN(), 1}}, -1, nil},
		{"past the end", []Span{{10, 12}}, 5 * S, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := newTimeline(c.spans, true, c.total).regions
			if d := cmp.Diff(c.want, got, cmp.AllowUnexported(region{})); d != "" {
				t.Errorf("regions (-want +got):\n%s", d)
			}
		})
	}
	if tl := newTimeline(nil, false, 100); len(tl.regions) != 1 || tl.vlen() != 100 {
		t.Errorf("no regions: %+v", tl.regions)
	}
	if tl := newTimeline(nil, false, -1); tl.bounded() || tl.windowEnd(7, 30, true) != 37 {
		t.Errorf("unbounded timeline: %+v", tl.regions)
	}
}

// TestWindowPlan checks the greedy windows over random regions: consecutive, covering the
// virtual timeline, at most maxLen each; a window ends at a region boundary unless it is an
// equal part of a region longer than maxLen; adding the next region would overflow it.
func TestWindowPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const maxLen = 8000 // 0.5 s; padded regions are 0.2 s longer than their spans
	merged, split := 0, 0
	for c := range 500 {
		var spans []Span
		pos := 0.0
		for range 1 + rng.IntN(12) {
			pos += 0.5 + rng.Float64()*3
			l := 0.01 + rng.Float64()*0.2
			if rng.IntN(5) == 0 {
				l = 0.4 + rng.Float64()*1.5 // longer than a window
			}
			spans = append(spans, Span{pos, pos + l})
			pos += l
		}
		tl := newTimeline(spans, true, -1)
		bounds := map[int]bool{0: true}
		for _, g := range tl.regions {
			bounds[g.virt+g.len()] = true
		}
		v := 0
		for v < tl.vlen() {
			v1 := tl.windowEnd(v, maxLen, true)
			if v1 <= v || v1-v > maxLen || v1 > tl.vlen() {
				t.Fatalf("case %d: window [%d, %d) of %d", c, v, v1, tl.vlen())
			}
			k := tl.find(v)
			g := tl.regions[k]
			rest := g.virt + g.len() - v
			switch {
			case rest > maxLen:
				parts := (rest + maxLen - 1) / maxLen
				if v1-v != (rest+parts-1)/parts {
					t.Fatalf("case %d: long region rest %d cut at %d", c, rest, v1-v)
				}
				split++
			case !bounds[v1]:
				t.Fatalf("case %d: window [%d, %d) ends inside a region", c, v, v1)
			default:
				if n := tl.find(v1); v1 < tl.vlen() && tl.regions[n].len() <= maxLen && v1-v+tl.regions[n].len() <= maxLen {
					t.Fatalf("case %d: window [%d, %d) could take the next region of %d", c, v, v1, tl.regions[n].len())
				}
			}
			// The pieces tile the window and map into the regions.
			tm := tl.pieces(v, v1)
			if tm.length() != v1-v {
				t.Fatalf("case %d: pieces %v of window length %d", c, tm, v1-v)
			}
			if len(tm) > 1 {
				merged++
			}
			v = v1
		}
	}
	if merged < 100 || split < 100 {
		t.Errorf("only %d windows of several regions and %d split regions: the cases do not cover the plan", merged, split)
	}
}

// patternSource yields sample i = f(i) for i < n, in chunks of random sizes (with empty reads).
type patternSource struct {
	n, pos int
	rng    *rand.Rand
	f      func(int) float32
}

func (s *patternSource) Read(p []float32) (int, error) {
	k := min(len(p), s.rng.IntN(5000), s.n-s.pos)
	for i := range k {
		p[i] = s.f(s.pos + i)
	}
	s.pos += k
	if s.pos == s.n {
		return k, io.EOF
	}
	return k, nil
}

func TestVirtualReader(t *testing.T) {
	S := mel.SampleRate
	f := func(i int) float32 { return float32(i % 1000003) }
	n := 200 * S
	spans := []Span{{1, 3}, {10, 50}, {60, 61}, {100, 150}, {199, 230}}
	all := make([]float32, n)
	for i := range all {
		all[i] = f(i)
	}
	for _, known := range []bool{false, true} {
		tl := newTimeline(spans, true, -1)
		vr := newVirtualReader(&patternSource{n: n, rng: rand.New(rand.NewPCG(7, 8)), f: f}, tl)
		if known { // the length known up front
			tl = newTimeline(spans, true, n)
			vr = newVirtualReader(SampleSource(all), tl)
		}
		maxBuf := 0
		for v := 0; v < tl.vlen(); {
			v1 := tl.windowEnd(v, windowLen, true)
			got, err := vr.read(v, v1)
			if err != nil {
				t.Fatal(err)
			}
			tm := tl.pieces(v, v1)
			if len(got) != tm.length() {
				t.Fatalf("read [%d, %d): %d samples, map %v", v, v1, len(got), tm)
			}
			for x, s := range got {
				if want := f(tm.source(x, false)); s != want {
					t.Fatalf("length known %v: window at %d sample %d = %v, want %v", known, v, x, s, want)
				}
			}
			vr.drop(v1)
			maxBuf = max(maxBuf, cap(vr.buf))
			v = v1
		}
		if _, err := vr.read(0, 10); err == nil {
			t.Error("reading a dropped position: no error")
		}
		total, err := vr.drain()
		if err != nil || total != n {
			t.Errorf("drain: %d, %v; want %d", total, err, n)
		}
		if maxBuf > windowLen+2*readChunk {
			t.Errorf("buffer grew to %d samples", maxBuf)
		}
		if last := tl.regions[len(tl.regions)-1]; last.end != n {
			t.Errorf("last region ends at %d, input at %d", last.end, n)
		}
	}
}

type failingSource struct{}

func (failingSource) Read([]float32) (int, error) { return 0, errors.New("disk on fire") }

func TestVirtualReaderErrors(t *testing.T) {
	vr := newVirtualReader(failingSource{}, newTimeline(nil, false, -1))
	if _, err := vr.read(0, 10); err == nil {
		t.Error("source error not returned")
	}
	stuck := newVirtualReader(&patternSource{n: 10, rng: rand.New(rand.NewPCG(0, 0)), f: func(int) float32 { return 0 }}, newTimeline(nil, false, -1))
	stuck.src = zeroSource{}
	if _, err := stuck.read(0, 10); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("source returning nothing: err %v", err)
	}
}

type zeroSource struct{}

func (zeroSource) Read([]float32) (int, error) { return 0, nil }

// TestPrompt: a window's prompt is the hotwords and as much of the end of the history as fits
// the room (half the text context, less the rules' margin); whisper.cpp's rules give the history
// to attempts below 0.5 only.
func TestPrompt(t *testing.T) {
	in := &input{m: &Model{}, hotwords: []int{100, 101}, rules: &openaiRules}
	in.m.Config.NTextCtx = 12 // room for 5 prompt tokens
	cases := []struct {
		name       string
		rules      *rules
		history    []int
		temp       float64
		want, used []int
	}{
		{"no history", &openaiRules, nil, 0, []int{100, 101}, nil},
		{"short history", &openaiRules, []int{1, 2}, 0, []int{100, 101, 1, 2}, []int{1, 2}},
		{"long history keeps its end", &openaiRules, []int{1, 2, 3, 4, 5, 6}, 1, []int{100, 101, 4, 5, 6}, []int{4, 5, 6}},
		{"whisper.cpp: one more token", &cppRules, []int{1, 2, 3, 4, 5, 6}, 0.4, []int{100, 101, 3, 4, 5, 6}, []int{3, 4, 5, 6}},
		{"whisper.cpp: no history at 0.5", &cppRules, []int{1, 2, 3}, 0.5, []int{100, 101}, nil},
	}
	for _, c := range cases {
		in.rules = c.rules
		got, used := in.prompt(c.history, c.temp)
		if !slices.Equal(got, c.want) || !slices.Equal(used, c.used) {
			t.Errorf("%s: %v (history used %v), want %v (%v)", c.name, got, used, c.want, c.used)
		}
	}
	in.hotwords, in.rules = nil, &openaiRules
	if got, _ := in.prompt([]int{1}, 0); !slices.Equal(got, []int{1}) {
		t.Errorf("no hotwords: %v", got)
	}
}
