package whisper

import (
	"math"
	"slices"
)

// Moves of a DTW path, recorded per cell as the step that reached it.
const (
	dtwDiag  int8 = iota // from (i-1, j-1)
	dtwDown              // from (i-1, j): one more row at the same column
	dtwRight             // from (i, j-1): one more column at the same row
)

// dtw is dynamic time warping over the n x m row-major cost matrix x: the monotonic path from
// (0, 0) to (n-1, m-1), stepping one row, one column or both at a time, whose cells have the
// least total cost. It returns the path as parallel row and column indices, start to end.
//
// It follows the reference (openai/whisper timing.py dtw_cpu) exactly, so that ties break the
// same way: a diagonal step only when strictly cheaper than both others, then a row step when
// strictly cheaper than both others, else a column step; accumulated costs are kept in float32.
func dtw(x []float32, n, m int) (rows, cols []int) {
	if n <= 0 || m <= 0 || len(x) != n*m {
		return nil, nil
	}
	// The accumulated cost is an (n+1) x (m+1) grid with an infinite border but cost[0][0] = 0;
	// the columns are filled one at a time, so two of them are enough.
	inf := float32(math.Inf(1))
	prev, cur := make([]float32, n+1), make([]float32, n+1)
	for i := range prev {
		prev[i] = inf
	}
	prev[0] = 0
	trace := make([]int8, (n+1)*(m+1))
	for j := 1; j <= m; j++ {
		cur[0] = inf
		for i := 1; i <= n; i++ {
			c0, c1, c2 := prev[i-1], cur[i-1], prev[i]
			// c1 is cost[i-1][j] (this column), c2 is cost[i][j-1] (previous column).
			var c float32
			var t int8
			switch {
			case c0 < c1 && c0 < c2:
				c, t = c0, dtwDiag
			case c1 < c0 && c1 < c2:
				c, t = c1, dtwDown
			default:
				c, t = c2, dtwRight
			}
			cur[i] = float32(float64(x[(i-1)*m+j-1]) + float64(c))
			trace[i*(m+1)+j] = t
		}
		prev, cur = cur, prev
	}
	// Walk back from (n, m); on the border the only way back is along it.
	// With finite costs the path enters (0, 0) of the grid from (1, 1); the border cells are
	// reached only through infinite or NaN costs and are not part of the path.
	for i, j := n, m; i > 0 || j > 0; {
		if i > 0 && j > 0 {
			rows = append(rows, i-1)
			cols = append(cols, j-1)
		}
		t := trace[i*(m+1)+j]
		switch {
		case i == 0:
			t = dtwRight
		case j == 0:
			t = dtwDown
		}
		switch t {
		case dtwDiag:
			i, j = i-1, j-1
		case dtwDown:
			i--
		default:
			j--
		}
	}
	slices.Reverse(rows)
	slices.Reverse(cols)
	return rows, cols
}

// medianFilter replaces each value of the rows x cols row-major x by the median of the width
// values around it in its row (width odd), with the row reflected at its ends (..., x2, x1, x0,
// x1, x2, ...), as the reference's median_filter. Rows no longer than width/2 are left as they
// are. It filters in place, using one row of scratch.
func medianFilter(x []float32, rows, cols, width int) {
	pad := width / 2
	if width <= 1 || cols <= pad {
		return
	}
	padded := make([]float32, cols+2*pad)
	win := make([]float32, width)
	for r := range rows {
		row := x[r*cols : (r+1)*cols]
		copy(padded[pad:], row)
		for k := 1; k <= pad; k++ {
			padded[pad-k] = row[reflect(-k, cols)]
			padded[pad+cols-1+k] = row[reflect(cols-1+k, cols)]
		}
		// win holds the current window sorted: each step removes the value leaving and inserts
		// the one entering, O(width) instead of a sort.
		copy(win, padded[:width])
		slices.Sort(win)
		row[0] = win[pad]
		for c := 1; c < cols; c++ {
			out, in := padded[c-1], padded[c+width-1]
			i := slices.Index(win, out)
			if i < 0 { // NaN: the window cannot be kept sorted
				copy(win, padded[c:c+width])
				slices.Sort(win)
				row[c] = win[pad]
				continue
			}
			copy(win[i:], win[i+1:])
			j := width - 1
			for j > 0 && win[j-1] > in {
				win[j] = win[j-1]
				j--
			}
			win[j] = in
			row[c] = win[pad]
		}
	}
}

// reflect maps an index outside [0, n) back inside by reflection about the end elements
// (numpy and PyTorch "reflect" padding; n > 1).
func reflect(i, n int) int {
	period := 2 * (n - 1)
	if period == 0 {
		return 0
	}
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}
