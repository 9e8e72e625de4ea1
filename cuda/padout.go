package cuda

import "github.com/verbatimhq/verbatim/tensor"

// Padded outputs (unless Options.NoPadN). A 16-bit Linear of n outputs, n not a multiple of 8
// (the LM head's 51,866), runs its GEMM on a zero-padded copy of the weight into a block of n8
// columns (paddedWeight; cuBLASLt offers only its sm80 kernels for the unpadded shape). The block is kept
// and dst recorded here instead of copying the n columns into dst at once: the picks
// (pickSource) read the rows where they are, n8 apart, so a decoder step's 33 MB copy (160 rows)
// is never made. Any other use of dst's memory (an op reading it or writing part of it, ReadF32,
// a view) copies the columns into dst first (unpadOut), so the F32 contract holds; a Linear that
// overwrites dst entirely, Discard and Free drop the entry. Entries: dst's device address.
type padOut struct {
	tmp         uint64 // the GEMM's output, rows x n8 f32 (a block of the cache, held)
	rows, n, n8 int
}

// padOutExact returns the entry of a tensor that is exactly a padded output.
func (be *Backend) padOutExact(t *tensor.Tensor) (padOut, bool) {
	if len(be.padOut) == 0 || t.DType != tensor.F32 {
		return padOut{}, false
	}
	b, ok := t.Buf.(*buffer)
	if !ok || b.be != be || b.freed {
		return padOut{}, false
	}
	o, ok := be.padOut[ptr(t)]
	return o, ok && o.rows*o.n == t.Len()
}

// unpadOut copies every padded output that overlaps t into its tensor (k_unpad) and forgets it.
func (be *Backend) unpadOut(t *tensor.Tensor) {
	p := ptr(t)
	e := p + uint64(t.Len()*elemSize(t.DType))
	for a, o := range be.padOut {
		if a < e && p < a+uint64(4*o.rows*o.n) {
			delete(be.padOut, a)
			keep := be.keepShadow
			be.keepShadow = true // the values the memory holds do not change
			be.kernel("k_unpad", be.grid1(o.rows*o.n), block256, 0, u64(a), u64(o.tmp), i32(o.n), i32(o.n8), i64(o.rows*o.n))
			be.keepShadow = keep
			be.release(o.tmp)
		}
	}
}

// dropPadOut forgets the padded outputs that start in [p, e) without copying them (their memory
// is freed or about to be overwritten).
func (be *Backend) dropPadOut(p, e uint64) {
	for a, o := range be.padOut {
		if a >= p && a < e {
			delete(be.padOut, a)
			be.release(o.tmp)
		}
	}
}

// padCopy is a 16-bit weight copied into n8 rows (its n rounded up to 8), the rows past n zero.
type padCopy struct {
	p  uint64
	n8 int
}

// paddedWeight returns w ([n, k], 16-bit) copied into n8 rows, the rest zero: made once, on the
// worker (a decoder step being recorded for a graph is run as plain ops, so the copy is never
// part of a graph), and kept until w is freed. 0 where the copy could not be made.
func (be *Backend) paddedWeight(w *tensor.Tensor, n8 int) uint64 {
	src := ptr(w)
	if c, ok := be.padCopies[src]; ok && c.n8 == n8 {
		return c.p
	}
	n, k, es := w.Dim(0), w.Dim(1), elemSize(w.DType)
	p := be.malloc(n8 * k * es)
	err := be.do(func() error {
		d := be.l.drv
		if err := be.l.check("cuMemcpyDtoDAsync", d.cuMemcpyDtoDAsync(p, src, uint64(n*k*es), be.stream)); err != nil {
			return err
		}
		return be.l.check("cuMemsetD8Async", d.cuMemsetD8Async(p+uint64(n*k*es), 0, uint64((n8-n)*k*es), be.stream))
	})
	if err != nil {
		be.release(p)
		return 0
	}
	be.padCopies[src] = padCopy{p: p, n8: n8}
	return p
}

// dropPadCopies releases the padded copies of the weights stored in [p, e).
func (be *Backend) dropPadCopies(p, e uint64) {
	for a, c := range be.padCopies {
		if a >= p && a < e {
			be.release(c.p)
			delete(be.padCopies, a)
		}
	}
}
