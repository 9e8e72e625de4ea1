package cpu

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// Quantized weights. The cpu backend keeps rank-2 weights of the ggml block formats q8_0, q5_0,
// q5_1 and q4_0 as the bytes it was given: each row of K weights is K/32 blocks of 32, every block
// an f16 scale d (q5_1 also an f16 minimum m) followed by the packed values:
//
//	q8_0 (34 bytes): d, 32 int8                          weight = d*q
//	q4_0 (18 bytes): d, 16 bytes of nibbles              weight = d*(nibble-8)
//	q5_0 (22 bytes): d, 32 high bits (u32), 16 bytes     weight = d*((nibble|high<<4)-16)
//	q5_1 (24 bytes): d, m, 32 high bits, 16 bytes        weight = d*(nibble|high<<4) + m
//
// where byte j of the nibbles holds weight j in its low half and weight j+16 in its high half.
// This keeps a model at its file size in memory, and a decoding step reads 3.8x to 7x fewer
// weight bytes than from float32. Linear with few rows (decoding) works on the blocks directly
// (gemvQ); with many rows (the encoder) GEMM dequantizes weight panels while packing them.

// qBlock is the number of weights in one block of every supported quant format.
const qBlock = 32

// isQuant reports whether dt is a quant format the backend keeps as blocks.
func isQuant(dt tensor.DType) bool {
	switch dt {
	case tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0:
		return true
	}
	return false
}

// qIndex is dt's slot in simd.gemvq.
func qIndex(dt tensor.DType) int {
	switch dt {
	case tensor.Q8_0:
		return 0
	case tensor.Q5_0:
		return 1
	case tensor.Q5_1:
		return 2
	case tensor.Q4_0:
		return 3
	}
	panic(tensor.Errorf("cpu: %s is not a quant format", dt))
}

// qgemv is a quantized matrix-vector kernel: out[j] = the dot product of weight row j (nb blocks,
// rows ldw bytes apart starting at w) with an activation row quantized by quantizeRow (xq, xd,
// xs; xl from laneOffsets), for j < n; nb and n are at least 1. Every implementation of one format returns the same
// bits: per block, the 8 exact int32 sums of 4 products (lanes l: weights 4l..4l+3) are scaled
// by float32(d*xd) and added into lane accumulators, even blocks into one set and odd blocks
// into another; the sets are added lane by lane and reduced as ((l0+l4)+(l2+l6)) +
// ((l1+l5)+(l3+l7)). q5_1's minimum adds float32(m*xs) per block to a scalar sum added last.
type qgemv func(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)

// addQ adds a kernel's results vals[:len(row)] into row.
func addQ(row, vals []float32) {
	for j, v := range vals[:len(row)] {
		row[j] += v
	}
}

// qgemvm is qgemv for mr activation rows at once (2 <= mr <= maxQRows, fixed by the kernel),
// each weight block unpacked once for all of them: out[i*ldo+j] is what qgemv returns in out[j]
// for row i, the same bits. The rows are interleaved block by block (interleaveQ): xq [nb][mr][32],
// xd and xs [nb][mr] (q5_1's kernels read 8 values of xs a block: qSlack more after the last),
// xl [nb][mr][8].
type qgemvm func(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo, n int)

// qSlack is how many values past a group's interleaved xs the q5_1 kernels may read.
const qSlack = 8

// maxQRows is the most activation rows a qgemvm takes: beam search's 5.
const maxQRows = 5

// interleaveQ lays out the quantized activation rows [r0, r0+mr) for a qgemvm (see there) into
// oq, od, os and ol, from rows of k values (nb blocks) as quantizeRow and laneOffsets wrote them
// into xq, xd, xs and xl.
func interleaveQ(mr, nb int, xq []int8, xd, xs []float32, xl []int32, r0 int, oq []int8, od, os []float32, ol []int32) {
	k := nb * qBlock
	for b := range nb {
		for i := range mr {
			r := r0 + i
			copy(oq[(b*mr+i)*qBlock:(b*mr+i+1)*qBlock], xq[r*k+b*qBlock:r*k+(b+1)*qBlock])
			od[b*mr+i] = xd[r*nb+b]
			os[b*mr+i] = xs[r*nb+b]
			copy(ol[(b*mr+i)*8:(b*mr+i+1)*8], xl[r*k/4+b*8:r*k/4+(b+1)*8])
		}
	}
}

// quantizeRow quantizes x (a multiple of 32 values) to q8 blocks as ggml's q8_0 does for its
// dot products, but with a float32 scale: d = max|x|/127 per block, q = x/d rounded to nearest
// even (so |q| <= 127); xs = d * sum(q), used by q5_1's minimum term. The rounding error of each
// activation is at most d/2, which bounds the difference to float32 arithmetic on dequantized
// weights (see TestGemvQuantTolerance).
func quantizeRow(x []float32, q []int8, d, s []float32) {
	for b := range len(x) / qBlock {
		xb := x[b*qBlock : (b+1)*qBlock]
		var amax float32
		for _, v := range xb {
			amax = max(amax, abs32(v))
		}
		db := amax / 127
		var id float32
		if db != 0 {
			id = 1 / db
		}
		qb := q[b*qBlock : (b+1)*qBlock]
		sum := 0
		for i, v := range xb {
			r := int(math.RoundToEven(float64(v * id)))
			r = min(127, max(-127, r))
			qb[i] = int8(r)
			sum += r
		}
		d[b] = db
		s[b] = db * float32(sum)
	}
}

// qOffset is what the VNNI kernels add to each weight to make it an unsigned byte.
func qOffset(dt tensor.DType) int32 {
	switch dt {
	case tensor.Q8_0:
		return 128
	case tensor.Q5_0:
		return 16
	case tensor.Q4_0:
		return 8
	}
	return 0
}

// laneOffsets sets xl[8b+l] = -off * (xq[32b+4l] + ... + xq[32b+4l+3]): the VNNI kernels start
// lane l of block b there, so that adding the products of unsigned weights (w+off) leaves the
// exact sum of w*x.
func laneOffsets(xq []int8, xl []int32, off int32) {
	for i := range xl {
		xl[i] = -off * (int32(xq[4*i]) + int32(xq[4*i+1]) + int32(xq[4*i+2]) + int32(xq[4*i+3]))
	}
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// qWeights rebuilds the 32 weights of one block as integers (q8_0, q4_0, q5_0 signed; q5_1
// unsigned, its minimum aside) and returns the block's scale d and minimum m (0 but for q5_1).
func qWeights(dt tensor.DType, blk []byte, out *[qBlock]int32) (d, m float32) {
	d = f16(binary.LittleEndian.Uint16(blk))
	switch dt {
	case tensor.Q8_0:
		for j := range qBlock {
			out[j] = int32(int8(blk[2+j]))
		}
	case tensor.Q4_0:
		qs := blk[2:18]
		for j := range 16 {
			out[j] = int32(qs[j]&0xf) - 8
			out[j+16] = int32(qs[j]>>4) - 8
		}
	case tensor.Q5_0, tensor.Q5_1:
		off, sub := 2, int32(16)
		if dt == tensor.Q5_1 {
			m = f16(binary.LittleEndian.Uint16(blk[2:]))
			off, sub = 4, 0
		}
		qh := binary.LittleEndian.Uint32(blk[off:])
		qs := blk[off+4 : off+20]
		for j := range 16 {
			out[j] = int32(qs[j]&0xf|byte(qh>>j&1)<<4) - sub
			out[j+16] = int32(qs[j]>>4|byte(qh>>(j+16)&1)<<4) - sub
		}
	}
	return d, m
}

// gemvQGeneric is the pure-Go qgemv for format dt, the reference the assembly kernels match.
func gemvQGeneric(dt tensor.DType) qgemv {
	bsz := dt.RowBytes(qBlock)
	return func(nb int, xq *int8, xd, xs *float32, _ *int32, w *byte, ldw int, out *float32, n int) {
		xqs := unsafe.Slice(xq, nb*qBlock)
		xds, xss := unsafe.Slice(xd, nb), unsafe.Slice(xs, nb)
		ws := unsafe.Slice(w, (n-1)*ldw+nb*bsz)
		o := unsafe.Slice(out, n)
		var wq [qBlock]int32
		for j := range n {
			row := ws[j*ldw:]
			var acc [2][8]float32
			var accm float32
			for b := range nb {
				dw, m := qWeights(dt, row[b*bsz:(b+1)*bsz], &wq)
				d := float32(dw * xds[b])
				xb := xqs[b*qBlock : (b+1)*qBlock]
				a := &acc[b&1]
				for l := range 8 {
					s := wq[4*l]*int32(xb[4*l]) + wq[4*l+1]*int32(xb[4*l+1]) +
						wq[4*l+2]*int32(xb[4*l+2]) + wq[4*l+3]*int32(xb[4*l+3])
					a[l] += float32(d * float32(s))
				}
				if dt == tensor.Q5_1 {
					accm += float32(m * xss[b])
				}
			}
			var l [8]float32
			for i := range l {
				l[i] = acc[0][i] + acc[1][i]
			}
			h0, h1, h2, h3 := l[0]+l[4], l[1]+l[5], l[2]+l[6], l[3]+l[7]
			r := (h0 + h2) + (h1 + h3)
			if dt == tensor.Q5_1 {
				r += accm
			}
			o[j] = r
		}
	}
}

var genericQ = [4]qgemv{gemvQGeneric(tensor.Q8_0), gemvQGeneric(tensor.Q5_0), gemvQGeneric(tensor.Q5_1), gemvQGeneric(tensor.Q4_0)}

// qbytes returns the blocks of a quantized tensor (a view of its buffer; Offset and Len must be
// whole blocks).
func (be *Backend) qbytes(t *tensor.Tensor) []byte {
	b := be.buf(t)
	if !isQuant(t.DType) || b.q == nil && t.Len() > 0 {
		panic(tensor.Errorf("cpu: %v: want a quantized tensor", t))
	}
	if t.Offset%qBlock != 0 || t.Len()%qBlock != 0 {
		panic(tensor.Errorf("cpu: view %v at offset %d splits a %s block", t.Shape, t.Offset, t.DType))
	}
	bsz := t.DType.RowBytes(qBlock)
	lo, hi := t.Offset/qBlock*bsz, (t.Offset+t.Len())/qBlock*bsz
	if lo < 0 || hi > len(b.q) {
		panic(tensor.Errorf("cpu: view %v at offset %d outside its buffer", t.Shape, t.Offset))
	}
	return b.q[lo:hi:hi]
}

// dequant writes the values of the quantized blocks raw (format dt) into out, with the active
// kernel where there is one.
func dequant(dt tensor.DType, raw []byte, out []float32) {
	if k := active.dequant[qIndex(dt)]; k != nil && len(out) > 0 {
		nb := len(out) / qBlock
		if len(out) != nb*qBlock || len(raw) != nb*dt.RowBytes(qBlock) {
			panic(tensor.Errorf("cpu: dequantize %s: %d bytes into %d values", dt, len(raw), len(out)))
		}
		k(&out[0], &raw[0], nb)
		return
	}
	if err := tensor.Dequantize(dt, raw, out); err != nil {
		panic(&tensor.Error{Msg: "cpu: dequantize", Err: err})
	}
}

// gemvQ computes c[i, j] (+)= x[i, :] . w[j, :] for the m rows of x (m small: decoding) and the
// n rows of the quantized weight wq (format dt, k columns). Each row of x is quantized to q8
// blocks once; the kernels then run over blocks of weight rows, parallel over the pool, each
// block small enough to stay in L2 while every row of x passes over it.
func (be *Backend) gemvQ(dt tensor.DType, m, n, k int, x []float32, wq []byte, c []float32, ldc int, acc bool) {
	nb := k / qBlock
	kern, multi := active.gemvq[qIndex(dt)], &active.gemvqm[qIndex(dt)]
	// With kernels for several rows at once, the rows go in groups of up to maxQRows (all but a
	// last row left alone), each group's activations interleaved (interleaveQ) after the rows'
	// own in the same buffers: group r0's at row m+r0 (its scales xd at 2m+r0 blocks' rows of
	// qd, its sums xs grouped rows later, then qSlack values).
	grouped := 0
	if m >= 2 && multi[2] != nil {
		grouped = m
		if m%maxQRows == 1 {
			grouped--
		}
	}
	rows := m + grouped
	if cap(be.qx) < rows*k {
		be.qx = make([]int8, rows*k)
	}
	if cap(be.qd) < (2*m+2*grouped)*nb+qSlack {
		be.qd = make([]float32, (2*m+2*grouped)*nb+qSlack)
	}
	if cap(be.ql) < rows*k/4 {
		be.ql = make([]int32, rows*k/4)
	}
	xq, xd, xs, xl := be.qx[:m*k], be.qd[:m*nb], be.qd[m*nb:2*m*nb], be.ql[:m*k/4]
	for i := range m {
		quantizeRow(x[i*k:(i+1)*k], xq[i*k:(i+1)*k], xd[i*nb:(i+1)*nb], xs[i*nb:(i+1)*nb])
	}
	laneOffsets(xq, xl, qOffset(dt))
	if k == 0 {
		for i := range m {
			if !acc {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	for r0 := 0; r0 < grouped; r0 += maxQRows {
		mr := min(maxQRows, grouped-r0)
		interleaveQ(mr, nb, xq, xd, xs, xl, r0, be.qx[(m+r0)*k:(m+r0+mr)*k], be.qd[(2*m+r0)*nb:(2*m+r0+mr)*nb],
			be.qd[(2*m+grouped+r0)*nb:(2*m+grouped+r0+mr)*nb], be.ql[(m+r0)*k/4:(m+r0+mr)*k/4])
	}
	rb := dt.RowBytes(k)
	const blk = 128 // weight rows per call, per L2 block
	be.pool.splitW((n+blk-1)/blk, blk*k*m, func(w, lo, hi int) {
		tmp := be.scratch(w, 0, blk*maxQRows) // per worker: an array here would escape to the heap each call
		for q := lo; q < hi; q++ {
			j0 := q * blk
			j1 := min(n, j0+blk)
			for r0 := 0; r0 < grouped; r0 += maxQRows {
				mr := min(maxQRows, grouped-r0)
				xq, xd, xs, xl := &be.qx[(m+r0)*k], &be.qd[(2*m+r0)*nb], &be.qd[(2*m+grouped+r0)*nb], &be.ql[(m+r0)*k/4]
				if !acc { // straight into c's rows
					multi[mr](nb, xq, xd, xs, xl, &wq[j0*rb], rb, &c[r0*ldc+j0], ldc, j1-j0)
					continue
				}
				multi[mr](nb, xq, xd, xs, xl, &wq[j0*rb], rb, &tmp[0], blk, j1-j0)
				for i := range mr {
					addQ(c[(r0+i)*ldc+j0:(r0+i)*ldc+j1], tmp[i*blk:])
				}
			}
			for i := grouped; i < m; i++ {
				kern(nb, &xq[i*k], &xd[i*nb], &xs[i*nb], &xl[i*k/4], &wq[j0*rb], rb, &tmp[0], j1-j0)
				row := c[i*ldc+j0 : i*ldc+j1]
				if acc {
					addQ(row, tmp)
				} else {
					copy(row, tmp[:j1-j0])
				}
			}
		}
	})
}
