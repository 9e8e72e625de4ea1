package tensor

import "fmt"

// RowCopier is an optional interface: a backend that copies many rows' leading positions
// between batched tensors in one op — a decoder's attention caches reordered for beam search or
// compacted as sequences end — where one Copy a row would be thousands of launches a step.
// Callers go through [CopyRows], which falls back to one Copy a row when it is missing.
type RowCopier interface {
	// CopyRows is [CopyRows] after its checks.
	CopyRows(dst, src []*Tensor, dstRows, srcRows []int32, n int)
}

// CopyRows sets dst[p][dstRows[i], :n, :] = src[p][srcRows[i], :n, :] for every pair p and
// every i. Every dst[p] has one shape [B, T, C] and every src[p] one shape [B', T', C], all of
// one dtype, n <= min(T, T'); the rows written must not overlap the rows read. It runs as one op
// on a backend that is a RowCopier, else as one Copy a row.
func CopyRows(b Backend, dst, src []*Tensor, dstRows, srcRows []int32, n int) {
	if err := checkCopyRows(dst, src, dstRows, srcRows, n); err != nil {
		panic(&Error{Msg: "CopyRows", Err: err})
	}
	if len(dst) == 0 || len(dstRows) == 0 || n == 0 {
		return
	}
	if rc, ok := b.(RowCopier); ok {
		rc.CopyRows(dst, src, dstRows, srcRows, n)
		return
	}
	for p := range dst {
		for i := range dstRows {
			b.Copy(rowPrefix(dst[p], int(dstRows[i]), n), rowPrefix(src[p], int(srcRows[i]), n))
		}
	}
}

// rowPrefix is the view [n, C] of positions [0, n) of row i of t [B, T, C].
func rowPrefix(t *Tensor, i, n int) *Tensor {
	tc := t.Dim(1) * t.Dim(2)
	return &Tensor{DType: t.DType, Shape: []int{n, t.Dim(2)}, Buf: t.Buf, Offset: t.Offset + i*tc}
}

func checkCopyRows(dst, src []*Tensor, dstRows, srcRows []int32, n int) error {
	if len(dst) != len(src) {
		return fmt.Errorf("%d destinations for %d sources", len(dst), len(src))
	}
	if len(dstRows) != len(srcRows) {
		return fmt.Errorf("%d destination rows for %d source rows", len(dstRows), len(srcRows))
	}
	if len(dst) == 0 {
		return nil
	}
	d0, s0 := dst[0], src[0]
	if d0.Rank() != 3 || s0.Rank() != 3 || d0.Dim(2) != s0.Dim(2) {
		return fmt.Errorf("dst %v and src %v are not [B, T, C] of one C", d0, s0)
	}
	if n < 0 || n > d0.Dim(1) || n > s0.Dim(1) {
		return fmt.Errorf("%d positions of dst %v and src %v", n, d0, s0)
	}
	for p := range dst {
		if dst[p].DType != d0.DType || src[p].DType != d0.DType || !SameShape(dst[p].Shape, d0.Shape) || !SameShape(src[p].Shape, s0.Shape) {
			return fmt.Errorf("pair %d: dst %v and src %v differ from dst %v and src %v", p, dst[p], src[p], d0, s0)
		}
	}
	for i := range dstRows {
		if d := dstRows[i]; d < 0 || int(d) >= d0.Dim(0) {
			return fmt.Errorf("destination row %d of %v", d, d0)
		}
		if s := srcRows[i]; s < 0 || int(s) >= s0.Dim(0) {
			return fmt.Errorf("source row %d of %v", s, s0)
		}
	}
	return nil
}
