package whisper

import (
	"fmt"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
)

// TestSetRunsGroups: cross-attention runs are maximal stretches of consecutive windows each read
// by the same number of consecutive sequences (a batch of windows at beam 5 is one run, one
// Attention call a layer), and each run's K/V views are its windows.
func TestSetRunsGroups(t *testing.T) {
	cases := []struct {
		window []int
		want   string // start-end/group@first window, per run
		wruns  string // start-end/group@windows, per window run
	}{
		{[]int{0, 0, 0, 1, 1, 1, 2, 2, 2}, "0-9/3@0", "0-9/3@[0 1 2]"},
		{[]int{0, 1, 2, 3}, "0-4/1@0", "0-4/1@[0 1 2 3]"},
		{[]int{4, 4, 5, 5, 5}, "0-2/2@4 2-5/3@5", "0-2/2@[4] 2-5/3@[5]"},
		{[]int{0, 0, 1, 2, 2}, "0-2/2@0 2-3/1@1 3-5/2@2", "0-2/2@[0] 2-3/1@[1] 3-5/2@[2]"},
		{[]int{0, 1, 1, 2, 2}, "0-1/1@0 1-5/2@1", "0-1/1@[0] 1-5/2@[1 2]"},
		{[]int{0, 0, 2, 2, 3, 3}, "0-2/2@0 2-6/2@2", "0-6/2@[0 2 3]"},
		{[]int{3, 3, 1, 1}, "0-2/2@3 2-4/2@1", "0-4/2@[3 1]"},
		{[]int{7}, "0-1/1@7", "0-1/1@[7]"},
	}
	b, err := cpu.New(cpu.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const frames, d = 3, 2
	for _, c := range cases {
		k := &tensor.Tensor{DType: tensor.F32, Shape: []int{8, frames, d}}
		s := &Session{m: &Model{b: windowBackend{b}}, batch: len(c.window), window: c.window, enc: &Encoded{crossK: []*tensor.Tensor{k}, crossV: []*tensor.Tensor{k}}}
		s.setRuns()
		wr := ""
		for i, r := range s.wruns {
			if i > 0 {
				wr += " "
			}
			wr += fmt.Sprintf("%d-%d/%d@%v", r.start, r.end, r.group, b.ToF32(r.windows))
		}
		if wr != c.wruns {
			t.Errorf("windows %v: window runs %s, want %s", c.window, wr, c.wruns)
		}
		s.freeWRuns()
		got := ""
		for i, r := range s.runs {
			if i > 0 {
				got += " "
			}
			first := r.k[0].Offset / (frames * d)
			got += fmt.Sprintf("%d-%d/%d@%d", r.start, r.end, r.group, first)
			if nw := (r.end - r.start) / r.group; r.k[0].Shape[0] != nw || r.v[0].Shape[0] != nw {
				t.Errorf("%v: run %d covers %d windows, its K/V views %v and %v", c.window, i, nw, r.k[0].Shape, r.v[0].Shape)
			}
		}
		if got != c.want {
			t.Errorf("windows %v: runs %s, want %s", c.window, got, c.want)
		}
	}
}

// TestReorderInPlace: kvCaches.reorder copies the changed entries' first n positions through
// the spare tensor, a few caches at a time when the spare cannot hold them all, and leaves the
// caches where they were (a CUDA graph of the next step keeps their addresses), the positions
// from n on untouched: a swap, a chain, a cycle, beams that all continue one, mixtures of these
// and a compaction (keepRows: fewer sources than entries).
func TestReorderInPlace(t *testing.T) {
	b := newCPU(t)
	const batch, ctx, d, layers, n = 4, 5, 3, 3, 4
	for _, src := range [][]int32{
		{1, 0, 3, 3}, // a swap, and entry 2 from 3: three x 4 x 3 values, the spare holds one cache's
		{0, 0, 0, 0}, // all from one
		{0, 0, 1, 2}, // a chain
		{3, 0, 1, 2}, // a cycle
		{2, 2, 2, 1}, // entry 3's source changes too
		{0, 1, 2, 3}, // nothing
		{1, 3},       // a compaction
	} {
		kv := &kvCaches{batch: batch, spare: b.Alloc(tensor.F32, batch, ctx, d)}
		before := map[*tensor.Tensor][]float32{}
		fill := func() *tensor.Tensor {
			v := make([]float32, batch*ctx*d)
			for i := range v {
				v[i] = float32(len(before)*1000 + i)
			}
			x := b.FromF32(v, batch, ctx, d)
			before[x] = v
			return x
		}
		for range layers {
			kv.k = append(kv.k, fill())
			kv.v = append(kv.v, fill())
		}
		caches := append(append([]*tensor.Tensor(nil), kv.k...), kv.v...)
		kv.reorder(b, src, n)
		for c, x := range append(append([]*tensor.Tensor(nil), kv.k...), kv.v...) {
			if x != caches[c] {
				t.Fatalf("src %v: cache %d moved", src, c)
			}
			got := b.ToF32(x)
			for i := range batch {
				for p := range ctx {
					from := i
					if p < n && i < len(src) {
						from = int(src[i])
					}
					for j := range d {
						if g, w := got[(i*ctx+p)*d+j], before[x][(from*ctx+p)*d+j]; g != w {
							t.Fatalf("src %v: cache %d entry %d position %d: %g, want %g", src, c, i, p, g, w)
						}
					}
				}
			}
		}
	}
}
