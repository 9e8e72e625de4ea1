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
	pickMaxRanges  = 8 // PICK_MAXR in kernels.cu
	pickStride     = 4 + 2*pickMaxRanges
	pickThreads    = 256  // PICK_T
	pickTopThreads = 1024 // PICK_TOP_T
)

// CanPick reports whether PickGreedy runs on the GPU (unless Options.NoPick, the pick=off switch).
func (be *Backend) CanPick() bool { return be.pick }

// PickGreedy writes the greedy pick of each row of logits [len(rows), V] (F32) into out
// (tensor.RowPicker). A row with more ranges than the kernel takes is picked on the host.
func (be *Backend) PickGreedy(logits *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow, out []tensor.Pick) {
	src, ld := be.pickSource(logits, len(rows))
	n, V, in, ok := be.pickInputs("PickGreedy", logits, bitmaps, rows, len(out), 3)
	if ld == 0 {
		src, ld = ptr(logits), V
	}
	if n == 0 {
		return
	}
	if !ok {
		tensor.PickRowsF32(be.ToF32(logits), bitmaps, rows, out)
		return
	}
	words := (V + 31) / 32
	be.kernel("k_pick", [3]uint32{uint32(n), 1, 1}, [3]uint32{pickThreads, 1, 1}, 0,
		u64(src), i32(V), i32(ld), u64(in.bitmaps), i32(words), u64(in.info), u64(in.out))
	res := be.pickRead("PickGreedy", in.out, 3*n)
	for i := range out {
		out[i] = tensor.Pick{Token: res[3*i], LogProb: float64(math.Float32frombits(uint32(res[3*i+1]))), TS: res[3*i+2]}
	}
}

// CanPickTop reports whether PickTop runs on the GPU (as CanPick).
func (be *Backend) CanPickTop() bool { return be.pick }

// pickTopSplits is the number of blocks each row's candidates take: one (k_pick_top) from
// sms/4 rows on, else the split form (k_pick_top_p1/p2/p3) with about two blocks an SM, 2 to 32
// a row. One block a row took 112 us for 5 rows on an H100 (ncu, 2026-12-06), most SMs idle.
func pickTopSplits(rows, sms int) int {
	if rows == 0 || rows >= sms/4 {
		return 1
	}
	return min(32, max(2, 2*sms/rows))
}

// pickTopTS is PICK_TSU in kernels.cu: the timestamps a thread of k_pick_top1 holds.
const pickTopTS = 4

// onePassFits reports whether k_pick_top1 takes every row of V logits: each row's timestamps
// [TSBegin, V) within the PICK_TSU a thread of its block holds.
func onePassFits(rows []tensor.PickRow, V int) bool {
	for _, r := range rows {
		if V-min(max(int(r.TSBegin), 0), V) > pickTopTS*pickTopThreads {
			return false
		}
	}
	return true
}

// pickP1 and pickP2 are P1S and P2S in kernels.cu: a chunk's partials of the split form.
const (
	pickP1 = 3
	pickP2 = 6 + 2*tensor.MaxTopK
)

// pickTopStride is PICK_TOP_STRIDE in kernels.cu: the pick's three ints, then k <= MaxTopK
// (token, log-probability) pairs.
const pickTopStride = 3 + 2*tensor.MaxTopK

// PickTop is PickGreedy that also writes each row's k best tokens into top (tensor.TopPicker,
// kernel k_pick_top, or its split form for few rows): beam search reads back k candidates a row
// instead of its logits.
func (be *Backend) PickTop(logits *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow, k int, out []tensor.Pick, top []tensor.Cand) {
	// The split form's chunk partials follow the output in the inputs' scratch block.
	splits := pickTopSplits(len(rows), be.sms)
	outInts := pickTopStride
	if splits > 1 {
		outInts += splits * (pickP1 + pickP2)
	}
	src, ld := be.pickSource(logits, len(rows))
	n, V, in, ok := be.pickInputs("PickTop", logits, bitmaps, rows, len(out), outInts)
	if ld == 0 {
		src, ld = ptr(logits), V
	}
	if k < 1 || k > tensor.MaxTopK || len(top) != n*k {
		fail("PickTop: %d candidates for %d rows of %d (at most %d)", len(top), n, k, tensor.MaxTopK)
	}
	if n == 0 {
		return
	}
	if !ok {
		tensor.PickTopRowsF32(be.ToF32(logits), bitmaps, rows, k, out, top)
		return
	}
	words := (V + 31) / 32
	if splits > 1 {
		chunk := (V + splits - 1) / splits
		part1 := in.out + uint64(4*pickTopStride*n)
		part2 := part1 + uint64(4*pickP1*splits*n)
		grid := [3]uint32{uint32(splits), uint32(n), 1}
		be.kernel("k_pick_top_p1", grid, [3]uint32{pickThreads, 1, 1}, 0,
			u64(src), i32(V), i32(ld), u64(in.bitmaps), i32(words), u64(in.info), i32(chunk), u64(part1))
		be.kernel("k_pick_top_p2", grid, [3]uint32{pickThreads, 1, 1}, 0,
			u64(src), i32(V), i32(ld), u64(in.bitmaps), i32(words), u64(in.info), i32(chunk), u64(part1), i32(k), u64(part2))
		be.kernel("k_pick_top_p3", [3]uint32{uint32(n), 1, 1}, [3]uint32{32, 1, 1}, 0, u64(part2), i32(splits), i32(k), u64(in.out))
	} else {
		topKern := "k_pick_top"
		if !be.opts.PickTwoPass && onePassFits(rows, V) && 4*words <= 48<<10 {
			topKern = "k_pick_top1"
		}
		shared := uint32(0)
		if topKern == "k_pick_top1" {
			shared = uint32(4 * words) // the row's mask
		}
		be.kernel(topKern, [3]uint32{uint32(n), 1, 1}, [3]uint32{pickTopThreads, 1, 1}, shared,
			u64(src), i32(V), i32(ld), u64(in.bitmaps), i32(words), u64(in.info), i32(k), u64(in.out))
	}
	res := be.pickRead("PickTop", in.out, pickTopStride*n)
	f := func(b int32) float64 { return float64(math.Float32frombits(uint32(b))) }
	for i := range out {
		r := res[i*pickTopStride:]
		out[i] = tensor.Pick{Token: r[0], LogProb: f(r[1]), TS: r[2]}
		for j := range k {
			top[i*k+j] = tensor.Cand{Token: r[3+2*j], LogProb: f(r[4+2*j])}
		}
	}
}

// pickInputs checks a pick's arguments and, unless a row has more ranges than the kernels take
// (ok false: pick on the host), queues the rows' masks for the kernels: the number of rows, their
// length and the device addresses of the masks and of the output, outInts a row. The three are
// parts of one scratch block: two scratch blocks of one size class are the same block.
func (be *Backend) pickInputs(op string, logits *tensor.Tensor, bitmaps [][]uint32, rows []tensor.PickRow, nOut, outInts int) (n, V int, in pickMasks, ok bool) {
	be.f32Act(op, logits)
	be.padHold = false
	n = len(rows)
	if nOut != n {
		fail("%s: %d outputs for %d rows", op, nOut, n)
	}
	if n == 0 {
		return 0, 0, in, false
	}
	if logits.Len()%n != 0 {
		fail("%s: %v is not %d rows", op, logits, n)
	}
	V = logits.Len() / n
	words := (V + 31) / 32
	info := make([]int32, n*pickStride)
	for i, r := range rows {
		if len(r.Ranges) > pickMaxRanges || r.Mask >= len(bitmaps) {
			return n, V, in, false
		}
		row := info[i*pickStride:]
		row[0], row[1], row[3] = int32(r.Mask), r.TSBegin, int32(len(r.Ranges))
		if r.TSRule {
			row[2] = 1
		}
		for k, g := range r.Ranges {
			row[4+2*k], row[5+2*k] = g[0], g[1]
		}
	}
	bm := make([]uint32, max(1, len(bitmaps)*words))
	for k, b := range bitmaps {
		if len(b) != words {
			fail("%s: bitmap %d has %d words, want %d", op, k, len(b), words)
		}
		copy(bm[k*words:], b)
	}
	// The bitmaps first (16-byte aligned, as the block), then the rows, then the output.
	dBm := be.scratch(4 * (len(bm) + len(info) + outInts*n))
	dInfo := dBm + uint64(4*len(bm))
	be.enqueue("pick_in", func() error {
		if err := be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dInfo, unsafe.Pointer(&info[0]), uint64(4*len(info)), be.stream)); err != nil {
			return err
		}
		return be.l.check("cuMemcpyHtoDAsync", be.l.drv.cuMemcpyHtoDAsync(dBm, unsafe.Pointer(&bm[0]), uint64(4*len(bm)), be.stream))
	})
	return n, V, pickMasks{info: dInfo, bitmaps: dBm, out: dInfo + uint64(4*len(info))}, true
}

// pickSource returns where the pick kernels read logits of rows rows when a padded GEMM output
// holds them (the default for the LM head; padout.go): its block and row width, with be.padHold
// set so that pickInputs' checks do not copy them out. 0, 0 otherwise: the logits themselves,
// V apart.
func (be *Backend) pickSource(logits *tensor.Tensor, rows int) (uint64, int) {
	if o, ok := be.padOutExact(logits); ok && rows == o.rows {
		be.padHold = true
		return o.tmp, o.n8
	}
	return 0, 0
}

// pickMasks are the device addresses of a pick's row descriptions (PICK_STRIDE ints a row),
// bitmaps and output.
type pickMasks struct{ info, bitmaps, out uint64 }

// pickRead waits for the queued work and reads n ints of a pick's output back.
func (be *Backend) pickRead(op string, dOut uint64, n int) []int32 {
	res := make([]int32, n)
	err := be.finish(func() error {
		return be.l.check("cuMemcpyDtoHAsync", be.l.drv.cuMemcpyDtoHAsync(unsafe.Pointer(&res[0]), dOut, uint64(4*len(res)), be.stream))
	})
	if err != nil {
		panic(&tensor.Error{Msg: "cuda: " + op, Err: err})
	}
	return res
}

var (
	_ tensor.RowPicker = (*Backend)(nil)
	_ tensor.TopPicker = (*Backend)(nil)
)
