package cuda

import "github.com/verbatimhq/verbatim/tensor"

// Packed tensors. LinearGELU on the cuBLASLt path writes its result as f16 into the first half of
// dst's own (F32) buffer and records dst here instead of widening it: the next Linear that reads
// dst (fc2 after fc1) takes the f16 values as its GEMM input directly, which saves the f32
// write, its read and the separate f16 copy. Any other use of the memory (an op reading or
// partly writing it, ToF32, a view) widens the values back to f32 first (unpack), so the F32
// contract holds; a Linear that overwrites dst entirely just forgets the entry, and so does Free.
// Entries: device address -> element count.

// packedExact reports whether t is exactly a packed tensor.
func (be *Backend) packedExact(t *tensor.Tensor) bool {
	if len(be.packed) == 0 || t.DType != tensor.F32 {
		return false
	}
	b, ok := t.Buf.(*buffer)
	if !ok || b.be != be || b.freed {
		return false
	}
	n, ok := be.packed[ptr(t)]
	return ok && n == t.Len()
}

// Discard forgets the packed tensors that start within t's memory (tensor.Discarder): their
// values are not needed, so nothing widens them when the memory is written next.
func (be *Backend) Discard(t *tensor.Tensor) {
	be.checkOpen()
	p := ptr(t)
	be.forgetPacked(p, p+uint64(t.Len()*elemSize(t.DType)))
	be.dropPadOut(p, p+uint64(t.Len()*elemSize(t.DType)))
}

// forgetPacked drops the entries that start in [p, e) without widening them (their memory is
// freed or about to be overwritten).
func (be *Backend) forgetPacked(p, e uint64) {
	for a := range be.packed {
		if a >= p && a < e {
			delete(be.packed, a)
		}
	}
}

// unpack widens every packed tensor that overlaps t back to f32, in place through a scratch copy
// of its f16 values (the f32 values overwrite the f16 ones while they are read).
func (be *Backend) unpack(t *tensor.Tensor) {
	p := ptr(t)
	e := p + uint64(t.Len()*elemSize(t.DType))
	for a, n := range be.packed {
		if a < e && p < a+uint64(4*n) {
			delete(be.packed, a)
			be.widenPacked(a, n)
		}
	}
}

func (be *Backend) widenPacked(a uint64, n int) {
	be.widened++
	tmp := be.scratch(2 * n)
	nb := uint64(2 * n)
	keep := be.keepShadow
	be.keepShadow = true // the shadow's source is not this memory, or it would not be packed
	be.enqueueSig("unpack", func() error {
		return be.l.check("cuMemcpyDtoDAsync", be.l.drv.cuMemcpyDtoDAsync(tmp, a, nb, be.stream))
	}, tmp, a, nb)
	be.kernel("k_cvt", be.grid1(n), block256, 0, u64(a), 0, u64(tmp), 1, i64(n))
	be.keepShadow = keep
}
