package whisper

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDTW(t *testing.T) {
	cases := []struct {
		name       string
		n, m       int
		x          []float32
		rows, cols []int
	}{
		{"diagonal", 3, 3, []float32{
			0, 1, 1,
			1, 0, 1,
			1, 1, 0,
		}, []int{0, 1, 2}, []int{0, 1, 2}},
		{"one row per block", 2, 5, []float32{
			-1, -1, -1, 5, 5,
			5, 5, 5, -1, -1,
		}, []int{0, 0, 0, 1, 1}, []int{0, 1, 2, 3, 4}},
		{"rows stay on one column", 4, 2, []float32{
			-1, 3,
			-1, 3,
			-1, 3,
			3, -1,
		}, []int{0, 1, 2, 3}, []int{0, 0, 0, 1}},
		{"long middle token", 3, 6, []float32{
			-2, 1, 1, 1, 1, 1,
			1, -2, -2, -2, -2, 1,
			1, 1, 1, 1, 1, -2,
		}, []int{0, 1, 1, 1, 1, 2}, []int{0, 1, 2, 3, 4, 5}},
		// Ties break as in the reference: a diagonal step only when strictly cheaper, then a row
		// step only when strictly cheaper, else a column step. From the end (1,1) the three
		// predecessors all cost 0, so the path comes from (1,0), which came down from (0,0).
		{"ties", 2, 2, []float32{0, 0, 0, 0}, []int{0, 1, 1}, []int{0, 0, 1}},
		// The reference's quirk, kept: when the diagonal and the row step tie, the column step
		// is taken even if dearer. At (1,1) both cost -1 and the column step 4, so (1,1) costs 3
		// and the path ends diagonally from (0,1) at total -2, not -3.
		{"tie takes the column step", 2, 3, []float32{
			-1, 0, 5,
			5, -1, -1,
		}, []int{0, 0, 1}, []int{0, 1, 2}},
		{"single cell", 1, 1, []float32{7}, []int{0}, []int{0}},
		{"single row", 1, 3, []float32{1, 2, 3}, []int{0, 0, 0}, []int{0, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, cols := dtw(c.x, c.n, c.m)
			if diff := cmp.Diff(c.rows, rows); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.cols, cols); diff != "" {
				t.Errorf("cols (-want +got):\n%s", diff)
			}
		})
	}
	if r, c := dtw(nil, 0, 3); r != nil || c != nil {
		t.Errorf("empty matrix: path %v %v", r, c)
	}
}

// TestDTWOptimal checks on random matrices that the path is a valid warping path and that its
// cost is the least over all paths (found by exhaustive search).
func TestDTWOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n, m := 1+rng.IntN(4), 1+rng.IntN(5)
		x := make([]float32, n*m)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		rows, cols := dtw(x, n, m)
		if len(rows) == 0 || rows[0] != 0 || cols[0] != 0 || rows[len(rows)-1] != n-1 || cols[len(cols)-1] != m-1 {
			t.Fatalf("trial %d (%dx%d): path %v %v does not run corner to corner", trial, n, m, rows, cols)
		}
		var got float64
		for k := range rows {
			got += float64(x[rows[k]*m+cols[k]])
			if k > 0 {
				dr, dc := rows[k]-rows[k-1], cols[k]-cols[k-1]
				if dr < 0 || dc < 0 || dr > 1 || dc > 1 || dr+dc == 0 {
					t.Fatalf("trial %d: step %d from (%d,%d) to (%d,%d)", trial, k, rows[k-1], cols[k-1], rows[k], cols[k])
				}
			}
		}
		var best func(i, j int) float64 // least cost of a path from (i, j) to the end
		best = func(i, j int) float64 {
			v := float64(x[i*m+j])
			if i == n-1 && j == m-1 {
				return v
			}
			b := math.Inf(1)
			if i+1 < n {
				b = min(b, best(i+1, j))
			}
			if j+1 < m {
				b = min(b, best(i, j+1))
			}
			if i+1 < n && j+1 < m {
				b = min(b, best(i+1, j+1))
			}
			return v + b
		}
		if want := best(0, 0); math.Abs(got-want) > 1e-5 {
			t.Fatalf("trial %d (%dx%d): path cost %v, least %v", trial, n, m, got, want)
		}
	}
}

func TestMedianFilter(t *testing.T) {
	cases := []struct {
		name        string
		rows, width int
		x, want     []float32
	}{
		// Reflected ends: [9 | 1 9 2 8 3 | 8].
		{"width 3", 1, 3, []float32{1, 9, 2, 8, 3}, []float32{9, 2, 8, 3, 8}},
		// [3 2 1 | 0 1 2 3 4 | 3 2 1]: every window of 7 has median 2.
		{"width 7 reflected twice", 1, 7, []float32{0, 1, 2, 3, 4}, []float32{2, 2, 2, 2, 2}},
		{"spike removed", 1, 7, []float32{0, 0, 0, 0, 50, 0, 0, 0, 0, 0}, []float32{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"step kept", 1, 7, []float32{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, []float32{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}},
		{"rows apart", 2, 3, []float32{5, 1, 5, 1, 7, 1}, []float32{1, 5, 1, 7, 1, 7}},
		// Rows no longer than width/2 are left alone, as in the reference.
		{"short row", 1, 7, []float32{3, 1, 2}, []float32{3, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := append([]float32(nil), c.x...)
			medianFilter(x, c.rows, len(x)/c.rows, c.width)
			if diff := cmp.Diff(c.want, x); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
