package cuda

import (
	"math"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// Greedy picks on the GPU (tensor.RowPicker, kernel k_pick): a batched decoder step reads back
// three numbers a row instead of its logits. Checked against tensor.PickF32 (TestPickGreedy) and
// against host picks over a whole transcription (TestPickTranscribe); the pick=off switch
// (Options.NoPick) turns it off.

const (
	pickMaxRanges = 8 // PICK_MAXR in kernels.cu
	pickStride    = 4 + 2*pickMaxRanges
	pickThreads   = 256 // PICK_T
)

// CanPick reports whether PickGreedy runs on the GPU (unless Options.NoPick, the pick=off switch).
func (be *Backend) CanPick() bool { return be.pick }

// PickGreedy writes the greedy pick of each row of logits [len(rows), V] (F32) into out
// (tensor.RowPicker). A row with more ranges than the kernel takes is picked on the host.
func (be *Backend) PickGreedy(logits *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow, out []tensor.Pick) {
	be.f32Act("PickGreedy", logits)
	n := len(rows)
	if len(out) != n {
		fail("PickGreedy: %d outputs for %d rows", len(out), n)
	}
	if n == 0 {
		return
	}
	if logits.Len()%n != 0 {
		fail("PickGreedy: %v is not %d rows", logits, n)
	}
	V := logits.Len() / n
	words := (V + 31) / 32
	info := make([]int32, n*pickStride)
	for i, r := range rows {
		if len(r.Ranges) > pickMaxRanges || r.Mask >= len(bitmaps) {
			tensor.PickRowsF32(be.ToF32(logits), bitmaps, rows, out)
			return
		}
		in := info[i*pickStride:]
		in[0], in[1], in[3] = int32(r.Mask), r.TSBegin, int32(len(r.Ranges))
		if r.TSRule {
			in[2] = 1
		}
		for k, g := range r.Ranges {
			in[4+2*k], in[5+2*k] = g[0], g[1]
		}
	}
	bm := make([]uint32, max(1, len(bitmaps)*words))
	for k, b := range bitmaps {
		if len(b) != words {
			fail("PickGreedy: bitmap %d has %d words, want %d", k, len(b), words)
		}
		copy(bm[k*words:], b)
	}
	dInfo := be.scratch(4 * len(info))
	dBm := be.scratch(4 * len(bm))
	dOut := be.scratch(4 * 3 * n)
	be.enqueue("pick_in", func() error {
		if err := be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dInfo, unsafe.Pointer(&info[0]), uint64(4*len(info)), be.stream)); err != nil {
			return err
		}
		return be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dBm, unsafe.Pointer(&bm[0]), uint64(4*len(bm)), be.stream))
	})
	be.kernel("k_pick", [3]uint32{uint32(n), 1, 1}, [3]uint32{pickThreads, 1, 1}, 0,
		u64(ptr(logits)), i32(V), u64(dBm), i32(words), u64(dInfo), u64(dOut))
	res := make([]int32, 3*n)
	err := be.finish(func() error {
		return be.l.check("cuMemcpyDtoHAsync", be.l.drv.cuMemcpyDtoHAsync(unsafe.Pointer(&res[0]), dOut, uint64(4*len(res)), be.stream))
	})
	if err != nil {
		panic(&tensor.Error{Msg: "cuda: PickGreedy", Err: err})
	}
	for i := range out {
		out[i] = tensor.Pick{Token: res[3*i], LogProb: float64(math.Float32frombits(uint32(res[3*i+1]))), TS: res[3*i+2]}
	}
}

var _ tensor.RowPicker = (*Backend)(nil)
