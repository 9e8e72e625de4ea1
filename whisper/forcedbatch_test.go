package whisper

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// forcedCase makes n tokens of the vocabulary's text (a different run for each seed) and the
// log-probabilities of all but the first among the text tokens.
func forcedCase(c weights.Config, n, seed int) ([]int, *tokenLogProbs) {
	toks := make([]int, n)
	for i := range toks {
		toks[i] = (i*7919 + seed*104729) % 50257
	}
	return toks, &tokenLogProbs{from: 1, limit: 50257, ids: toks[1:]}
}

// TestForcedPasses: forcedPasses' batched pass gives each request forcedPass's probabilities
// and log-probabilities alone (within 1e-6 on the CPU), for requests of different lengths,
// frames and windows (one window twice, one out of order), with and without log-probabilities,
// heads through AttentionProbs (all of a layer's) and through MatMul (one of a layer's); a
// request forcedPass refuses gets its own error and leaves the others theirs; one request left
// runs as forcedPass.
func TestForcedPasses(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		format := weights.GGML
		if dt == tensor.F32 {
			format = weights.Safetensors
		}
		t.Run(dt.String(), func(t *testing.T) {
			checkForcedPasses(t, synthModel(t, "micro", dt, format), 1e-6)
		})
	}
}

// checkForcedPasses is TestForcedPasses on m, the batched results within tol of those alone.
func checkForcedPasses(t *testing.T, m *Model, tol float64) {
	c := m.Config
	e := encode(t, m, randomMel(c, 3), 3)
	var heads []alignHead
	for h := range c.NTextHead { // the last layer whole: AttentionProbs
		heads = append(heads, alignHead{c.NTextLayer - 1, h})
	}
	heads = append(heads, alignHead{0, c.NTextHead - 1}) // one head: MatMul
	type spec struct{ w, n, frames, seed int }
	specs := []spec{{2, 12, c.NAudioCtx / 2, 1}, {0, 30, c.NAudioCtx, 2}, {1, 5, 7, 3}, {0, 17, 40, 4}}
	reqs := make([]*forcedReq, len(specs))
	for i, sp := range specs {
		toks, want := forcedCase(c, sp.n, sp.seed)
		if i == 2 {
			want = nil
		}
		reqs[i] = &forcedReq{w: sp.w, tokens: toks, frames: sp.frames, want: want}
	}
	bad := &forcedReq{w: 1, tokens: []int{c.NVocab}, frames: 10}
	m.forcedPasses(e, heads, append([]*forcedReq{bad}, reqs...))
	if bad.err == nil {
		t.Error("a token outside the vocabulary: no error")
	}
	for i, r := range reqs {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		var want *tokenLogProbs
		if r.want != nil {
			want = &tokenLogProbs{from: r.want.from, limit: r.want.limit, ids: r.want.ids}
		}
		probs, err := m.forcedPass(e, r.w, r.tokens, r.frames, heads, probsAuto, nil, want)
		if err != nil {
			t.Fatal(err)
		}
		near(t, fmt.Sprintf("request %d: probabilities", i), r.probs, probs, tol)
		if want != nil {
			for j := range want.lp {
				if d := math.Abs(want.lp[j] - r.want.lp[j]); !(d <= tol) {
					t.Fatalf("request %d: log-probability %d: %g batched, %g alone", i, j, r.want.lp[j], want.lp[j])
				}
			}
		}
	}
	// one request left of two: forcedPass itself
	one := &forcedReq{w: 1, tokens: reqs[0].tokens, frames: 9}
	m.forcedPasses(e, heads, []*forcedReq{bad, one})
	probs, err := m.forcedPass(e, 1, one.tokens, 9, heads, probsAuto, nil, nil)
	if err != nil || one.err != nil || bad.err == nil {
		t.Fatalf("errors %v, %v, %v", err, one.err, bad.err)
	}
	near(t, "one request", one.probs, probs, 0)
}

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol) {
			t.Fatalf("%s: value %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}

// TestForcedQueue: forcedQueue runs the passes of the goroutines settling together as one batch,
// once every goroutine still settling has asked or finished (one that finishes without asking
// releases the others), then the passes of the next round; each request gets forcedPass's
// probabilities.
func TestForcedQueue(t *testing.T) {
	m := synthModel(t, "micro", tensor.F32, weights.Safetensors)
	c := m.Config
	e := encode(t, m, randomMel(c, 2), 2)
	var mu sync.Mutex
	var sizes []int
	observeForced = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	defer func() { observeForced = nil }()
	dev := &sync.Mutex{}
	q := newForcedQueue(m, e, dev)
	heads := q.heads
	const workers = 4
	got := make([][][]float32, workers)
	var started, wg sync.WaitGroup
	started.Add(workers)
	for g := range workers {
		q.start()
		started.Done()
		wg.Go(func() {
			defer q.done()
			started.Wait()
			if g == workers-1 {
				return // settles without word timing
			}
			for round := range 2 {
				toks, _ := forcedCase(c, 6+3*g+round, g+10*round)
				r := &forcedReq{w: g % 2, tokens: toks, frames: 20 + g}
				q.pass(r)
				if r.err != nil {
					t.Error(r.err)
					return
				}
				got[g] = append(got[g], r.probs)
			}
		})
	}
	wg.Wait()
	if fmt.Sprint(sizes) != "[3 3]" {
		t.Errorf("batches of %v passes, want [3 3]", sizes)
	}
	for g := range workers - 1 {
		for round := range 2 {
			toks, _ := forcedCase(c, 6+3*g+round, g+10*round)
			want, err := m.forcedPass(e, g%2, toks, 20+g, heads, probsAuto, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			near(t, fmt.Sprintf("goroutine %d, round %d", g, round), got[g][round], want, 1e-6)
		}
	}
}
