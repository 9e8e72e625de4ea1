package cpu

import "github.com/verbatimhq/verbatim/tensor"

var _ tensor.WindowAttention = (*Backend)(nil)

// AttendsWindows: Attention takes groups of any size.
func (be *Backend) AttendsWindows(int, *tensor.Tensor) bool { return true }

// AttentionWindows (tensor.WindowAttention) runs Attention once per stretch of groups whose
// windows are consecutive: the same calls, and so the same results, as a caller splitting the
// batch itself.
func (be *Backend) AttentionWindows(dst, q, k, v, windows *tensor.Tensor, heads, kvLen int, scale float32) {
	ws := be.i32(windows)
	if q.Rank() != 3 || k.Rank() != 3 || len(ws) != q.Dim(0) || !tensor.SameShape(dst.Shape, q.Shape) {
		shapeErr("AttentionWindows", "q %v, k %v, dst %v, %d windows", q.Shape, k.Shape, dst.Shape, len(ws))
	}
	for i := 0; i < len(ws); {
		j := i + 1
		for j < len(ws) && ws[j] == ws[j-1]+1 {
			j++
		}
		w := int(ws[i])
		if w < 0 || w+j-i > k.Dim(0) {
			shapeErr("AttentionWindows", "windows %d to %d of k %v", w, w+j-i-1, k.Shape)
		}
		be.Attention(dst.Slice(i, j), q.Slice(i, j), k.Slice(w, w+j-i), v.Slice(w, w+j-i), heads, kvLen, scale, false)
		i = j
	}
}
