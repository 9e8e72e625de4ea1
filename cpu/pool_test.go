package cpu

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestPoolPanics: a *tensor.Error raised in any worker reaches the caller of run; another panic
// in the caller's own share goes on with its value (a bug: tensor.Catch lets it through).
func TestPoolPanics(t *testing.T) {
	p := newPool(3)
	defer p.close()
	recovered := func(f func()) (r any) {
		defer func() { r = recover() }()
		f()
		return nil
	}
	te := tensor.Errorf("shape")
	r := recovered(func() { p.run(64, func(int, int) { panic(te) }) })
	if e, ok := r.(error); !ok || !errors.Is(e, te) {
		t.Errorf("tensor error: the caller got %v, want %v", r, te)
	}
	// The panic in the caller's share (a helper's would end the test binary). The helpers wait
	// at their first iteration until the caller has one, or they could take all 64 first.
	started := make(chan struct{})
	var once sync.Once
	r = recovered(func() {
		p.run(64, func(w, _ int) {
			if w == 0 {
				once.Do(func() { close(started) })
				panic("bug")
			}
			<-started
		})
	})
	if r != "bug" {
		t.Errorf("other panic: the caller got %v, want the panic's own value", r)
	}
	r = recovered(func() { p.run(64, func(int, int) {}) })
	if r != nil {
		t.Errorf("the pool is not usable after a panic: %v", r)
	}
}

// TestThreadsSameResults: the thread count changes how work is split (GEMM tile sizes, chunks
// of rows and columns) but not the arithmetic of any output element, so results are
// bit-identical for 1, 2, 3 and 8 threads. The shapes cover the GEMM (tiles, edges, several k
// blocks), the small-row matrix-vector path with f32 and f16 weights, both attention paths and
// Conv1D.
func TestThreadsSameResults(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		vals := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = rng.Float32()*2 - 1
			}
			return v
		}
		const rows, k, n, small = 197, 600, 133, 3
		x, xs, w := vals(rows*k), vals(small*k), vals(n*k)
		const b, tq, tk, heads, d = 2, 40, 50, 3, 24
		q, kk, vv, q1 := vals(b*tq*heads*d), vals(b*tk*heads*d), vals(b*tk*heads*d), vals(b*2*heads*d)
		const cin, cout, steps, ksz = 8, 12, 300, 3
		cx, cw := vals(cin*steps), vals(cout*cin*ksz)
		run := func(threads int) [][]float32 {
			be := newBackend(t, threads)
			var out [][]float32
			for _, wdt := range []tensor.DType{tensor.F32, tensor.F16} {
				wt := be.Upload(wdt, tensor.Quantize(wdt, w), n, k)
				for _, in := range [][]float32{x, xs} {
					xt := be.FromF32(in, len(in)/k, k)
					dst := be.Alloc(tensor.F32, len(in)/k, n)
					be.Linear(dst, xt, wt, nil)
					out = append(out, be.ToF32(dst))
				}
			}
			a, bt := be.FromF32(x, rows, k), be.FromF32(w, n, k)
			mm := be.Alloc(tensor.F32, rows, n)
			be.MatMul(mm, a, bt, false, true, 0.5)
			out = append(out, be.ToF32(mm))
			kt, vt := be.FromF32(kk, b, tk, heads*d), be.FromF32(vv, b, tk, heads*d)
			for _, qv := range [][]float32{q, q1} {
				qt := be.FromF32(qv, b, len(qv)/(b*heads*d), heads*d)
				dst := be.Alloc(tensor.F32, qt.Shape...)
				be.Attention(dst, qt, kt, vt, heads, 45, 0.2, true)
				out = append(out, be.ToF32(dst))
			}
			ct, cwt := be.FromF32(cx, 1, cin, steps), be.FromF32(cw, cout, cin, ksz)
			conv := be.Alloc(tensor.F32, 1, cout, (steps+2-ksz)/2+1)
			be.Conv1D(conv, ct, cwt, nil, 2, 1)
			out = append(out, be.ToF32(conv))
			return out
		}
		want := run(1)
		for _, threads := range []int{2, 3, 8} {
			got := run(threads)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("%d threads: result %d differs from one thread's", threads, i)
				}
			}
		}
	})
}

// TestPoolParkAndWake runs loops back to back (the workers polling) and with pauses longer than
// spinFor between them (the workers and the caller parked and woken), and closes pools whose
// workers poll or sleep: every iteration runs exactly once each time.
func TestPoolParkAndWake(t *testing.T) {
	for _, threads := range []int{2, 3} {
		for _, gap := range []time.Duration{0, 3 * spinFor} {
			p := newPool(threads)
			for range 20 {
				counts := make([]atomic.Int32, 257)
				p.run(len(counts), func(_, i int) {
					if i%64 == 0 {
						time.Sleep(gap) // a helper or the caller finishing last
					}
					counts[i].Add(1)
				})
				for i := range counts {
					if c := counts[i].Load(); c != 1 {
						t.Fatalf("%d threads, gap %v: iteration %d ran %d times", threads, gap, i, c)
					}
				}
				time.Sleep(gap)
			}
			p.close()
		}
	}
}
