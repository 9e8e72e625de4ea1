package tensor

import (
	"math"
	"slices"
	"testing"
)

// TestPickF32: masks by bitmap and range, the timestamp rule both ways, ties to the first index,
// nothing allowed.
func TestPickF32(t *testing.T) {
	inf := float32(math.Inf(-1))
	bm := [][]uint32{{1<<1 | 1<<6}}
	row := func() []float32 { return []float32{5, 9, 1, 1, 2, 2, 9, 3} } // timestamps from 4
	cases := []struct {
		name string
		r    PickRow
		tok  int32
		ts   int32
	}{
		{"bitmap", PickRow{Mask: 0, TSBegin: 4}, 0, 7},
		{"no mask, first of ties", PickRow{Mask: -1, TSBegin: 4}, 1, 6},
		{"range", PickRow{Mask: -1, Ranges: [][2]int32{{0, 2}, {6, 7}}, TSBegin: 4}, 7, 7},
		{"rule keeps text", PickRow{Mask: 0, TSBegin: 4, TSRule: true}, 0, 7},
		{"rule forbids text", PickRow{Mask: -1, Ranges: [][2]int32{{0, 2}}, TSBegin: 4, TSRule: true}, 6, 6},
		{"nothing allowed", PickRow{Mask: -1, Ranges: [][2]int32{{0, 8}}, TSBegin: 4}, -1, -1},
	}
	for _, c := range cases {
		x := row()
		p := PickF32(x, bm, c.r)
		if p.Token != c.tok || p.TS != c.ts {
			t.Errorf("%s: token %d ts %d, want %d ts %d", c.name, p.Token, p.TS, c.tok, c.ts)
			continue
		}
		if p.Token >= 0 {
			var sum float64
			for _, v := range x {
				if v != inf {
					sum += math.Exp(float64(v))
				}
			}
			if want := float64(x[p.Token]) - math.Log(sum); math.Abs(p.LogProb-want) > 1e-12 {
				t.Errorf("%s: log-probability %g, want %g", c.name, p.LogProb, want)
			}
		}
	}
}

func TestTopK(t *testing.T) {
	inf := float32(math.Inf(-1))
	x := []float32{1, 5, 3, 5, -1, 4}
	if got := TopK(x, 3); !slices.Equal(got, []int{1, 3, 5}) {
		t.Errorf("TopK = %v, want [1 3 5]", got)
	}
	if got := TopK(x, 10); !slices.Equal(got, []int{1, 3, 5, 2, 0, 4}) {
		t.Errorf("TopK over k > len = %v, want all, largest first", got)
	}
	y := []float32{inf, 2, inf, inf, 1}
	if got := TopK(y, 4); !slices.Equal(got, []int{1, 4, 0, 2}) {
		t.Errorf("TopK with -Inf = %v, want [1 4 0 2] (forbidden after allowed, lower index first)", got)
	}
}
