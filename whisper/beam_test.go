package whisper

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/mel"
)

// beamLogits: greedy prefers 10 then ends (total about -2.9); the path 11, 12 starts slightly
// worse but continues with near certainty, so beam search with length normalization picks it.
func beamLogits(prefixLen int) func([]int) []float32 {
	return func(seq []int) []float32 {
		l := make([]float32, tVocab)
		for i := tTS; i < tVocab; i++ {
			l[i] = -20
		}
		if len(seq) < prefixLen {
			return l
		}
		s := seq[prefixLen:]
		switch {
		case len(s) == 0:
			l[10], l[11] = 2, 1.8
		case slices.Equal(s, []int{10}):
			l[tEOT] = 3
		case slices.Equal(s, []int{11}):
			l[12] = 12
		case slices.Equal(s, []int{11, 12}):
			l[tEOT] = 12
		default:
			l[tEOT] = 1
		}
		return l
	}
}

func TestBeamSearchBeatsGreedy(t *testing.T) {
	o := greedyOpts()
	o.NoTimestamps = true
	greedy, err := testTask(t, o, taskSpec{}).run(&fakeStepper{logits: beamLogits(4)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(greedy.tokens, []int{10}) {
		t.Fatalf("greedy tokens %v, want [10]", greedy.tokens)
	}

	o.BeamSize = 2
	task := testTask(t, o, taskSpec{})
	if task.beamSize != 2 || task.nGroup != 2 {
		t.Fatalf("beam %d group %d", task.beamSize, task.nGroup)
	}
	f := &fakeStepper{logits: beamLogits(4)}
	beam, err := task.run(f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(beam.tokens, []int{11, 12}) {
		t.Fatalf("beam tokens %v, want [11 12]", beam.tokens)
	}
	if beam.avgLogProb <= greedy.avgLogProb {
		t.Errorf("beam avg logprob %v not above greedy %v", beam.avgLogProb, greedy.avgLogProb)
	}
	var sum float64
	for _, v := range beam.logprobs {
		sum += v
	}
	if sum < beam.sumLogProb-1e-9 || sum-beam.sumLogProb > 1e-3 {
		// the sum also holds the final EOT's (tiny) log probability
		t.Errorf("per-token logprobs sum to %v, sequence sum %v", sum, beam.sumLogProb)
	}
	// The caches must have followed the beams: the fake's sequence 0 ends with 11, 12.
	if got := f.seqs[0][4:]; !slices.Equal(got, []int{11, 12}) && !slices.Equal(got[:2], []int{11, 12}) {
		t.Errorf("fake cache of beam 0 is %v after reordering", got)
	}
	if len(f.reorder) == 0 {
		t.Error("Reorder never called")
	}
}

func TestBeamSearchPatienceAndLimit(t *testing.T) {
	// Nothing ever ends: the search runs to the length limit and the live beams are returned.
	o := greedyOpts()
	o.NoTimestamps = true
	o.BeamSize = 3
	o.SuppressBlank = false
	task := testTask(t, o, taskSpec{})
	logits := func(seq []int) []float32 {
		l := make([]float32, tVocab)
		l[tEOT] = -30
		l[1+len(seq)%5] = 4
		return l
	}
	f := &fakeStepper{logits: logits}
	r, err := task.run(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.tokens) != task.sampleLen {
		t.Errorf("%d tokens, want the sample length %d", len(r.tokens), task.sampleLen)
	}
	// Patience 2 with beam 2: four finished sequences are collected before stopping.
	o.BeamSize, o.Patience = 2, 2
	task = testTask(t, o, taskSpec{})
	finishing := func(seq []int) []float32 {
		l := make([]float32, tVocab)
		l[tEOT] = 2
		l[1+len(seq)%3] = 2.2
		return l
	}
	// The search driven by hand (decodeTasks keeps its candidates to itself).
	f = &fakeStepper{logits: finishing}
	step0, err := f.Step(repeatRows(task.initial, task.nGroup), false)
	if err != nil {
		t.Fatal(err)
	}
	b := newBeams(task)
	for i, lg := 0, step0; ; i++ {
		toks, src, done, err := b.next(i, lg)
		if err != nil {
			t.Fatal(err)
		}
		if done || i+1 == task.sampleLen {
			break
		}
		if err := f.Reorder(src); err != nil {
			t.Fatal(err)
		}
		rows := make([][]int32, len(toks))
		for j, tok := range toks {
			rows[j] = []int32{tok}
		}
		if lg, err = f.Step(rows, false); err != nil {
			t.Fatal(err)
		}
	}
	cands := b.candidates()
	if len(cands) != 4 {
		t.Errorf("%d finished candidates, want round(beam*patience) = 4", len(cands))
	}
	for _, c := range cands {
		if c.tokens[len(c.tokens)-1] != tEOT {
			t.Errorf("candidate %v does not end in EOT", c.tokens)
		}
	}
}

// logitsOnly hides a Session's picking (StepPick, StepTop): the decoding loop reads every row's
// logits and filters them on the host, the path every search took before picks.
type logitsOnly struct{ s *Session }

func (l logitsOnly) Step(tokens [][]int32, all bool) ([]float32, error) { return l.s.Step(tokens, all) }
func (l logitsOnly) Reorder(src []int) error                            { return l.s.Reorder(src) }
func (l logitsOnly) keepRows(rows []int) error                          { return l.s.keepRows(rows) }

// TestBeamTopMatchesLogits: beam search (5 and 2 beams, with and without timestamps, greedy
// tasks beside them in the batch) through Session.StepTop, each row's best tokens ranked by
// tensor.PickTopRowsF32 from the filters' masks as data, gives exactly the tokens,
// log-probabilities and timestamps of the filters applied to the logits on the host.
func TestBeamTopMatchesLogits(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	audio := synthAudio(90, []Span{{0, 11}, {30, 40}, {60, 90}}, speech)
	type task struct {
		beam  int
		start float64
	}
	for _, noTS := range []bool{false, true} { // one batch each: their prompts differ in length
		cases := []task{{5, 0}, {2, 30}, {1, 60}, {5, 30}}
		var ws []*window
		for _, c := range cases {
			v0 := int(c.start * mel.SampleRate)
			ws = append(ws, &window{v0: v0, samples: audio[v0 : v0+30*mel.SampleRate]})
		}
		build := func() ([]*decodeTask, []int, *input) {
			var tasks []*decodeTask
			var windows []int
			var in *input
			for i, c := range cases {
				o := DefaultOptions()
				o.Language, o.BeamSize, o.NoTimestamps = "en", c.beam, noTS
				o.MaxWindowTokens = 40 // enough steps to compare, few enough for a race-detector run
				in = testInput(t, m, o)
				task, err := in.task(ws[i], in.sot, nil, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				tasks = append(tasks, task)
				for range task.nGroup {
					windows = append(windows, i)
				}
			}
			return tasks, windows, in
		}
		_, windows, in := build()
		enc, err := m.Encode(in.mels(ws), len(ws))
		if err != nil {
			t.Fatal(err)
		}
		run := func(hide bool) []*decodeResult {
			tasks, _, _ := build()
			s, err := m.NewSession(enc, windows)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var st stepper = s
			if hide {
				st = logitsOnly{s}
			}
			res, err := decodeTasks(context.Background(), st, tasks)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		top, host := run(false), run(true)
		enc.Close()
		for i, c := range cases {
			a, b := top[i], host[i]
			if len(a.tokens) < 3 {
				t.Errorf("no timestamps %v, %+v: only %d tokens decoded; the test needs longer sequences", noTS, c, len(a.tokens))
			}
			if !slices.Equal(a.tokens, b.tokens) || !slices.Equal(a.logprobs, b.logprobs) || !slices.Equal(a.tids, b.tids) || a.sumLogProb != b.sumLogProb {
				t.Errorf("no timestamps %v, %+v: picks on the session\n%v %v %v %v\nfilters on the host\n%v %v %v %v", noTS, c,
					a.tokens, a.logprobs, a.tids, a.sumLogProb, b.tokens, b.logprobs, b.tids, b.sumLogProb)
			}
		}
	}
}

// BenchmarkBeamAdvance is the host's part of a beam search 5 step, 100 steps a window: ranking
// the proposals, cloning the continued beams (their token lists grow each step).
func BenchmarkBeamAdvance(b *testing.B) {
	o := DefaultOptions()
	task, err := newDecodeTask(testIDs(), 448, 1500, &o, &openaiRules, taskSpec{sot: []int{tSOT, tEN, tTransc}}, newRNG(1), textOfIDs)
	if err != nil {
		b.Fatal(err)
	}
	B := task.beamSize
	rng := rand.New(rand.NewPCG(1, 2))
	const steps = 100
	tops := make([][][]tensor.Cand, steps)
	for i := range tops {
		tops[i] = make([][]tensor.Cand, B)
		for j := range tops[i] {
			for k := range B + 1 {
				tops[i][j] = append(tops[i][j], tensor.Cand{Token: int32(1 + (j*7+k*3+i)%5), LogProb: -rng.Float64() * float64(k+1)})
			}
		}
	}
	tids := make([]int, B)
	b.ReportAllocs()
	for b.Loop() {
		bs := newBeams(task)
		for i := range steps {
			if _, _, _, err := bs.advance(i, tops[i], tids); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// advanceByCopy is beams.advance as it was before its beams were extended in place: every
// continuation a copy of its beam, the proposals pointers sorted by sort.SliceStable.
func advanceByCopy(b *beams, tops [][]tensor.Cand, tids []int) (toks []int32, src []int, done bool) {
	B := b.t.beamSize
	same := make([]int, len(b.live))
	for j, c := range b.live {
		same[j] = j
		for k := range j {
			if same[k] == k && slices.Equal(b.live[k].tokens, c.tokens) {
				same[j] = k
				break
			}
		}
	}
	var props []*proposal
	for j, c := range b.live {
		for _, cd := range tops[j] {
			tok, lp := int(cd.Token), cd.LogProb
			dup := slices.IndexFunc(props, func(p *proposal) bool { return p.same == same[j] && p.tok == tok })
			if dup >= 0 {
				props[dup].from, props[dup].score = j, c.sum+lp
				continue
			}
			props = append(props, &proposal{same: same[j], from: j, tok: tok, lp: lp, tid: tids[j], score: c.sum + lp})
		}
	}
	sort.SliceStable(props, func(x, y int) bool { return props[x].score > props[y].score })
	var next []*candidate
	for _, p := range props {
		from := b.live[p.from]
		c := &candidate{
			tokens: slices.Clone(from.tokens), lps: slices.Clone(from.lps), tids: slices.Clone(from.tids),
			sum: from.sum, done: from.done,
		}
		c.push(p.tok, p.lp, p.tid)
		c.sum = p.score
		if p.tok == b.t.ids.eot {
			if len(b.finished) < b.maxCand {
				c.done = true
				b.finished = append(b.finished, c)
			}
			continue
		}
		next = append(next, c)
		src = append(src, p.from)
		if len(next) == B {
			break
		}
	}
	b.live = next
	for _, c := range next {
		toks = append(toks, int32(c.tokens[len(c.tokens)-1]))
	}
	return toks, src, len(b.finished) >= b.maxCand
}

// TestBeamAdvanceInPlace: beam search extending each beam's first continuation in place gives,
// step by step, the beams, finished sequences, tokens and sources of copying every one, with
// beams continued several times, equal proposals from equal beams, ties and EOT.
func TestBeamAdvanceInPlace(t *testing.T) {
	for _, beam := range []int{2, 5} {
		o := DefaultOptions()
		o.BeamSize, o.Patience = beam, 2
		task, err := newDecodeTask(testIDs(), 448, 1500, &o, &openaiRules, taskSpec{sot: []int{tSOT, tEN, tTransc}}, newRNG(1), textOfIDs)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(beam), 3))
		got, want := newBeams(task), newBeams(task)
		steps := 0
		for i := range 60 {
			steps = i + 1
			tops := make([][]tensor.Cand, beam)
			for j := range tops {
				for range beam + 1 {
					tok := 1 + rng.IntN(8) // few tokens: the same sequences often
					if rng.IntN(30) == 0 {
						tok = tEOT
					}
					lp := -float64(rng.IntN(6)) / 2 // ties
					tops[j] = append(tops[j], tensor.Cand{Token: int32(tok), LogProb: lp})
				}
			}
			tids := make([]int, beam)
			gt, gs, gd, err := got.advance(i, tops, tids)
			if err != nil {
				t.Logf("beam %d step %d: %v", beam, i, err) // too few proposals other than EOT: both stop
				break
			}
			wt, ws, wd := advanceByCopy(want, tops, tids)
			view := func(cs []*candidate) string {
				var b strings.Builder
				for _, c := range cs {
					fmt.Fprintf(&b, "%v %v %v %.2f %v; ", c.tokens, c.lps, c.tids, c.sum, c.done)
				}
				return b.String()
			}
			if !slices.Equal(gt, wt) || !slices.Equal(gs, ws) || gd != wd || view(got.live) != view(want.live) || view(got.finished) != view(want.finished) {
				t.Fatalf("beam %d step %d:\nin place %v %v %v\n  live %s\n  finished %s\ncopies %v %v %v\n  live %s\n  finished %s",
					beam, i, gt, gs, gd, view(got.live), view(got.finished), wt, ws, wd, view(want.live), view(want.finished))
			}
			if gd {
				break
			}
		}
		t.Logf("beam %d: %d steps, %d finished", beam, steps, len(got.finished))
		if steps < 10 {
			t.Errorf("beam %d: %d steps, want 10 or more", beam, steps)
		}
	}
}
