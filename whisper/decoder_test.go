package whisper

import (
	"fmt"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestSetRunsGroups: cross-attention runs are maximal stretches of consecutive windows each read
// by the same number of consecutive sequences (a batch of windows at beam 5 is one run, one
// Attention call a layer), and each run's K/V views are its windows.
func TestSetRunsGroups(t *testing.T) {
	cases := []struct {
		window []int
		want   string // start-end/group@first window, per run
	}{
		{[]int{0, 0, 0, 1, 1, 1, 2, 2, 2}, "0-9/3@0"},
		{[]int{0, 1, 2, 3}, "0-4/1@0"},
		{[]int{4, 4, 5, 5, 5}, "0-2/2@4 2-5/3@5"},
		{[]int{0, 0, 1, 2, 2}, "0-2/2@0 2-3/1@1 3-5/2@2"},
		{[]int{0, 1, 1, 2, 2}, "0-1/1@0 1-5/2@1"},
		{[]int{0, 0, 2, 2, 3, 3}, "0-2/2@0 2-6/2@2"},
		{[]int{3, 3, 1, 1}, "0-2/2@3 2-4/2@1"},
		{[]int{7}, "0-1/1@7"},
	}
	const frames, d = 3, 2
	for _, c := range cases {
		k := &tensor.Tensor{DType: tensor.F32, Shape: []int{8, frames, d}}
		s := &Session{batch: len(c.window), window: c.window, enc: &Encoded{crossK: []*tensor.Tensor{k}, crossV: []*tensor.Tensor{k}}}
		s.setRuns()
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
