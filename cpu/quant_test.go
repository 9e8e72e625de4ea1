package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

var quantTypes = []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q5_1, tensor.Q4_0}

// randomBlocks returns rows*nb blocks of format dt with random packed values (every bit pattern,
// q8_0's -128 included) and random finite scales (and q5_1 minimums).
func randomBlocks(r *rand.Rand, dt tensor.DType, rows, nb int) []byte {
	bsz := dt.RowBytes(qBlock)
	raw := make([]byte, rows*nb*bsz)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	for b := 0; b < rows*nb; b++ {
		blk := raw[b*bsz:]
		d := tensor.F32ToF16(float32(r.NormFloat64() * 0.01))
		blk[0], blk[1] = byte(d), byte(d>>8)
		if dt == tensor.Q5_1 {
			m := tensor.F32ToF16(float32(r.NormFloat64() * 0.05))
			blk[2], blk[3] = byte(m), byte(m>>8)
		}
	}
	return raw
}

func randomRow(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		if i%97 == 5 {
			x[i] *= 30 // an outlier, as in real activations
		}
	}
	return x
}

// TestGemvQuantKernelsAgree checks that every SIMD quantized matrix-vector kernel returns the
// same bits as the pure-Go one, for each format and for odd and even block counts.
func TestGemvQuantKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range availableSIMD() {
		for _, dt := range quantTypes {
			for _, nb := range []int{1, 2, 3, 16, 41} {
				const n = 13
				raw := randomBlocks(r, dt, n, nb)
				x := randomRow(r, nb*qBlock)
				xq, xd, xs := make([]int8, len(x)), make([]float32, nb), make([]float32, nb)
				quantizeRow(x, xq, xd, xs)
				xl := make([]int32, len(x)/4)
				laneOffsets(xq, xl, qOffset(dt))
				rb := dt.RowBytes(nb * qBlock)
				got, want := make([]float32, n), make([]float32, n)
				s.gemvq[qIndex(dt)](nb, &xq[0], &xd[0], &xs[0], &xl[0], &raw[0], rb, &got[0], n)
				genericQ[qIndex(dt)](nb, &xq[0], &xd[0], &xs[0], &xl[0], &raw[0], rb, &want[0], n)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%s %s nb=%d row %d: kernel %g, pure Go %g", s.name, dt, nb, j, got[j], want[j])
					}
				}
			}
		}
	}
}

// TestGemvQuantRowsKernelsAgree checks that every kernel for several activation rows at once
// (qgemvm) returns, for each row, the same bits as the pure-Go one-row kernel.
func TestGemvQuantRowsKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	ran := 0
	for _, s := range availableSIMD() {
		for _, dt := range quantTypes {
			for mr, kern := range s.gemvqm[qIndex(dt)] {
				if kern == nil {
					continue
				}
				ran++
				for _, nb := range []int{1, 2, 3, 16, 41} {
					const n = 13
					k := nb * qBlock
					raw := randomBlocks(r, dt, n, nb)
					x := randomRow(r, mr*k)
					xq, xd, xs := make([]int8, mr*k), make([]float32, mr*nb), make([]float32, mr*nb)
					xl := make([]int32, mr*k/4)
					for i := range mr {
						quantizeRow(x[i*k:(i+1)*k], xq[i*k:(i+1)*k], xd[i*nb:(i+1)*nb], xs[i*nb:(i+1)*nb])
					}
					laneOffsets(xq, xl, qOffset(dt))
					oq, od, os, ol := make([]int8, mr*k), make([]float32, mr*nb), make([]float32, mr*nb+qSlack), make([]int32, mr*k/4)
					interleaveQ(mr, nb, xq, xd, xs, xl, 0, oq, od, os, ol)
					rb := dt.RowBytes(k)
					got, want := make([]float32, n*mr), make([]float32, n)
					kern(nb, &oq[0], &od[0], &os[0], &ol[0], &raw[0], rb, &got[0], n, n)
					for i := range mr {
						genericQ[qIndex(dt)](nb, &xq[i*k], &xd[i*nb], &xs[i*nb], &xl[i*k/4], &raw[0], rb, &want[0], n)
						for j := range want {
							if math.Float32bits(got[i*n+j]) != math.Float32bits(want[j]) {
								t.Fatalf("%s %s %d rows nb=%d: weight row %d, activation row %d: kernel %g, pure Go %g", s.name, dt, mr, nb, j, i, got[i*n+j], want[j])
							}
						}
					}
				}
			}
		}
	}
	if ran == 0 {
		t.Skip("no kernel for several rows on this machine (they need AVX2 or AVX-512 VNNI)")
	}
}

// TestGemvQuantTolerance checks Linear with quantized weights against float32 arithmetic on the
// weights dequantized by tensor.Dequantize. With few rows the activations are rounded to int8
// blocks: each value x moves by at most half its block's step d = max|x|/127, so the documented
// bound is sum_i |w_i| * d_i/2 (times 1.001 for the float rounding of d) plus 1e-5 of
// sum_i |w_i x_i| for float32 accumulation. With many rows (GEMM) only accumulation differs.
func TestGemvQuantTolerance(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		be := newBackend(t, 2)
		r := rand.New(rand.NewPCG(3, 4))
		for _, dt := range quantTypes {
			for _, rows := range []int{1, 3, 8, 9, 40} {
				const n, k = 37, 320
				raw := randomBlocks(r, dt, n, k/qBlock)
				wf := make([]float32, n*k)
				if err := tensor.Dequantize(dt, raw, wf); err != nil {
					t.Fatal(err)
				}
				x := randomRow(r, rows*k)
				bias := randomRow(r, n)
				w := be.Upload(dt, raw, n, k)
				if w.DType != dt {
					t.Fatalf("Upload %s[%d %d] kept as %s", dt, n, k, w.DType)
				}
				xt, bt, dst := be.FromF32(x, rows, k), be.FromF32(bias, n), be.Alloc(tensor.F32, rows, n)
				be.Linear(dst, xt, w, bt)
				got := be.ToF32(dst)
				for i := range rows {
					xi := x[i*k : (i+1)*k]
					for j := range n {
						wj := wf[j*k : (j+1)*k]
						var ref, mag, bound float64
						for b := 0; b < k; b += qBlock {
							var amax float64
							for _, v := range xi[b : b+qBlock] {
								amax = max(amax, math.Abs(float64(v)))
							}
							for p := b; p < b+qBlock; p++ {
								ref += float64(xi[p]) * float64(wj[p])
								mag += math.Abs(float64(xi[p]) * float64(wj[p]))
								bound += math.Abs(float64(wj[p])) * amax / 127 / 2 * 1.001
							}
						}
						ref += float64(bias[j])
						tol := 1e-5*mag + 1e-6
						if rows <= 8 {
							tol += bound
						}
						if d := math.Abs(float64(got[i*n+j]) - ref); !(d <= tol) {
							t.Fatalf("%s rows=%d [%d,%d]: got %g, want %g (diff %g > tolerance %g)", dt, rows, i, j, got[i*n+j], ref, d, tol)
						}
					}
				}
				for _, u := range []*tensor.Tensor{w, xt, bt, dst} {
					be.Free(u)
				}
			}
		}
	})
}

// TestQuantTensors checks the other ways a quantized matrix is read (ToF32, Gather, Copy) and that
// quantized tensors of other ranks become F32.
func TestQuantTensors(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(5, 6))
	for _, dt := range quantTypes {
		const n, k = 7, 64
		raw := randomBlocks(r, dt, n, k/qBlock)
		want := make([]float32, n*k)
		if err := tensor.Dequantize(dt, raw, want); err != nil {
			t.Fatal(err)
		}
		w := be.Upload(dt, raw, n, k)
		if got := be.ToF32(w); !equalBits(got, want) {
			t.Fatalf("%s: ToF32 differs from Dequantize", dt)
		}
		ids := []int32{6, 0, 3, 3}
		g := be.Alloc(tensor.F32, len(ids), k)
		be.Gather(g, w, ids)
		gd := be.ToF32(g)
		for i, id := range ids {
			if !equalBits(gd[i*k:(i+1)*k], want[int(id)*k:(int(id)+1)*k]) {
				t.Fatalf("%s: Gather row %d differs", dt, i)
			}
		}
		c := be.Alloc(tensor.F32, n, k)
		be.Copy(c, w)
		if !equalBits(be.ToF32(c), want) {
			t.Fatalf("%s: Copy differs", dt)
		}
		w3 := be.Upload(dt, raw, n, 1, k)
		if w3.DType != tensor.F32 || !equalBits(be.ToF32(w3), want) {
			t.Fatalf("%s: rank-3 upload: dtype %s", dt, w3.DType)
		}
		for _, u := range []*tensor.Tensor{w, g, c, w3} {
			be.Free(u)
		}
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// BenchmarkGemvQ5_0 is one decoding Linear of a q5_0 weight the size of Whisper base's output
// projection (51865 x 512), for comparison with BenchmarkGemvF16.
func BenchmarkGemvQ5_0(b *testing.B) { benchGemv(b, tensor.Q5_0) }

// BenchmarkGemvQ8_0 is BenchmarkGemvQ5_0 for q8_0.
func BenchmarkGemvQ8_0(b *testing.B) { benchGemv(b, tensor.Q8_0) }

// BenchmarkGemvF16 is BenchmarkGemvQ5_0 with binary16 weights.
func BenchmarkGemvF16(b *testing.B) { benchGemv(b, tensor.F16) }

// BenchmarkGemvQRows is BenchmarkGemvQ5_0 with 5 activation rows (beam search's), for q5_0 and
// q5_1, per kernel set, with the several-row kernels ("rows") and with the one-row kernel per
// row ("each").
func BenchmarkGemvQRows(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.Q5_0, tensor.Q5_1} {
		for _, s := range availableSIMD() {
			for _, multi := range []bool{true, false} {
				if multi && s.gemvqm[qIndex(dt)][5] == nil {
					continue
				}
				name := dt.String() + "/" + s.name + "/each"
				if multi {
					name = dt.String() + "/" + s.name + "/rows"
				}
				b.Run(name, func(b *testing.B) {
					old, oldM := active, s.gemvqm
					active = s
					if !multi {
						s.gemvqm = [4][maxQRows + 1]qgemvm{}
					}
					defer func() { active, s.gemvqm = old, oldM }()
					be := newBackend(b, 0)
					r := rand.New(rand.NewPCG(7, 8))
					const m, n, k = 5, 51865, 512
					w := be.Upload(dt, tensor.Quantize(dt, randomRow(r, n*k)), n, k)
					x, dst := be.FromF32(randomRow(r, m*k), m, k), be.Alloc(tensor.F32, m, n)
					b.SetBytes(int64(dt.RowBytes(n * k)))
					for b.Loop() {
						be.Linear(dst, x, w, nil)
					}
				})
			}
		}
	}
}

func benchGemv(b *testing.B, dt tensor.DType) {
	be := newBackend(b, 0)
	r := rand.New(rand.NewPCG(7, 8))
	const n, k = 51865, 512
	vals := randomRow(r, n*k)
	w := be.Upload(dt, tensor.Quantize(dt, vals), n, k)
	x, dst := be.FromF32(randomRow(r, k), 1, k), be.Alloc(tensor.F32, 1, n)
	b.SetBytes(int64(dt.RowBytes(n * k)))
	for b.Loop() {
		be.Linear(dst, x, w, nil)
	}
}

// BenchmarkLinearEncoder is an encoder-sized Linear (1500 rows, 512 -> 2048) with f32, f16 and
// q5_0 weights: the quantized weights are dequantized while GEMM packs them.
func BenchmarkLinearEncoder(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q5_0, tensor.Q8_0} {
		b.Run(dt.String(), func(b *testing.B) {
			be := newBackend(b, 0)
			r := rand.New(rand.NewPCG(9, 10))
			const m, n, k = 1500, 2048, 512
			w := be.Upload(dt, tensor.Quantize(dt, randomRow(r, n*k)), n, k)
			x, dst := be.FromF32(randomRow(r, m*k), m, k), be.Alloc(tensor.F32, m, n)
			for b.Loop() {
				be.Linear(dst, x, w, nil)
			}
		})
	}
}

// TestDequantKernels checks that the dequantizing kernels of GEMM packing return the same bits
// as tensor.Dequantize.
func TestDequantKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	withSIMD(t, func(t *testing.T) {
		for _, dt := range quantTypes {
			for _, nb := range []int{1, 2, 7} {
				raw := randomBlocks(r, dt, 1, nb)
				want, got := make([]float32, nb*qBlock), make([]float32, nb*qBlock)
				if err := tensor.Dequantize(dt, raw, want); err != nil {
					t.Fatal(err)
				}
				dequant(dt, raw, got)
				if !equalBits(got, want) {
					t.Fatalf("%s nb=%d: dequant differs from tensor.Dequantize", dt, nb)
				}
			}
		}
	})
}

// TestLinearQuantPathsAgree checks that Linear with a quantized weight and few rows (the int8
// path) returns the same bits with every kernel set as with the pure-Go fallback.
func TestLinearQuantPathsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	be := newBackend(t, 2)
	for _, dt := range quantTypes {
		const n, k = 300, 256
		w := be.Upload(dt, randomBlocks(r, dt, n, k/qBlock), n, k)
		bias := be.FromF32(randomRow(r, n), n)
		for _, rows := range []int{1, 2, 5, 6, 7, 8} {
			for _, b := range []*tensor.Tensor{nil, bias} { // with a bias the products are added to it
				x, dst := be.FromF32(randomRow(r, rows*k), rows, k), be.Alloc(tensor.F32, rows, n)
				old := active
				active = &genericSIMD
				be.Linear(dst, x, w, b)
				active = old
				want := be.ToF32(dst)
				withSIMD(t, func(t *testing.T) {
					be.Linear(dst, x, w, b)
					if !equalBits(be.ToF32(dst), want) {
						t.Fatalf("%s rows=%d bias=%v: differs from the pure-Go path", dt, rows, b != nil)
					}
				})
				be.Free(x)
				be.Free(dst)
			}
		}
		be.Free(bias)
		be.Free(w)
	}
}

// TestGemmColumnSlabs checks that a GEMM too wide to pack at once (done in column slabs) returns
// the same bits as one packed whole, for f32, f16 and quantized weights.
func TestGemmColumnSlabs(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(15, 16))
	const m, k = 11, 64
	n := packBLimit/k + 77 // two slabs and a ragged third
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q5_0} {
		w := be.Upload(dt, tensor.Quantize(dt, randomRow(r, n*k)), n, k)
		x := randomRow(r, m*k)
		wm := be.weight(w, 1, k)
		got := make([]float32, m*n)
		be.gemm(m, n, k, mat{data: x, rs: k, cs: 1}, wm, got, n, 1, false)
		want := make([]float32, m*n)
		const step = 4096 // well under packBLimit: no slabs
		for j0 := 0; j0 < n; j0 += step {
			be.gemm(m, min(step, n-j0), k, mat{data: x, rs: k, cs: 1}, wm.columns(j0), want[j0:], n, 1, false)
		}
		if !equalBits(got, want) {
			t.Fatalf("%s: slabs differ", dt)
		}
		be.Free(w)
	}
}

// TestGemmRowSlabs checks that a GEMM whose A is too tall to pack at once (done in row slabs)
// returns the same bits as one packed whole, with f32 and f16 A.
func TestGemmRowSlabs(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(17, 18))
	const n, k = 45, 640
	m := packALimit/k + 37 // two slabs and a ragged third
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		a := be.Upload(dt, tensor.Quantize(dt, randomRow(r, m*k)), m, k)
		am := be.weight(a, k, 1)
		b := randomRow(r, k*n)
		bm := mat{data: b, rs: n, cs: 1}
		got := make([]float32, m*n)
		be.gemm(m, n, k, am, bm, got, n, 1, false)
		// The same product unslabbed: each row computed alone would take the gemv path, so
		// compare with whole row groups that fit under the limit instead.
		want := make([]float32, m*n)
		step := roundUp(m/5, active.mr)
		for i0 := 0; i0 < m; i0 += step {
			be.gemm(min(step, m-i0), n, k, am.rows(i0), bm, want[i0*n:], n, 1, false)
		}
		if !equalBits(got, want) {
			t.Fatalf("%s: slabs differ", dt)
		}
		be.Free(a)
	}
}

// TestConv1DSlabs checks Conv1D made in several im2col slabs against the convolution summed in
// float64 (that slabs change no bits is the GEMM's property, TestGemmColumnSlabs and
// TestGemmRowSlabs; the outputs of whole transcriptions were compared byte for byte).
func TestConv1DSlabs(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(19, 20))
	const cin, cout, kw = 96, 16, 3
	tlen := packBLimit/(cin*kw) + 300 // more columns than one slab holds
	x := randomRow(r, cin*tlen)
	w := be.FromF32(randomRow(r, cout*cin*kw), cout, cin, kw)
	bias := be.FromF32(randomRow(r, cout), cout)
	got := be.Alloc(tensor.F32, 1, cout, tlen)
	be.Conv1D(got, be.FromF32(x, 1, cin, tlen), w, bias, 1, 1)
	g := be.ToF32(got)
	// Reference: the plain sum in float64, to a tolerance, for every output.
	for c := range cout {
		for o := 0; o < tlen; o += 7 {
			sum := float64(be.ToF32(bias)[c])
			wd := be.ToF32(w)
			for i := range cin {
				for j := range kw {
					ti := o + j - 1
					if ti >= 0 && ti < tlen {
						sum += float64(wd[(c*cin+i)*kw+j]) * float64(x[i*tlen+ti])
					}
				}
			}
			if d := math.Abs(sum - float64(g[c*tlen+o])); d > 1e-3*(1+math.Abs(sum)) {
				t.Fatalf("out[%d, %d] = %g, want %g", c, o, g[c*tlen+o], sum)
			}
		}
	}
}

// TestConv1DGrouped: Conv1D over a batch of elements with few output times each (the VAD's frames,
// whose columns go through one GEMM for several elements) gives, bit for bit, each element's
// Conv1D alone, with and without a bias, for a batch that the groups do not divide evenly.
func TestConv1DGrouped(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(23, 24))
	for _, c := range []struct{ batch, cin, cout, kw, tlen, stride, pad int }{
		{62, 1, 258, 256, 640, 128, 0}, // the VAD's STFT
		{62, 129, 128, 3, 4, 1, 1},
		{300, 64, 64, 3, 2, 2, 1},
		{7, 8, 5, 3, 9, 1, 1},
	} {
		x := randomRow(r, c.batch*c.cin*c.tlen)
		w := be.FromF32(randomRow(r, c.cout*c.cin*c.kw), c.cout, c.cin, c.kw)
		tout := (c.tlen+2*c.pad-c.kw)/c.stride + 1
		for _, bias := range []*tensor.Tensor{nil, be.FromF32(randomRow(r, c.cout), c.cout)} {
			got := be.Alloc(tensor.F32, c.batch, c.cout, tout)
			be.Conv1D(got, be.FromF32(x, c.batch, c.cin, c.tlen), w, bias, c.stride, c.pad)
			g := be.ToF32(got)
			for e := range c.batch {
				one := be.Alloc(tensor.F32, 1, c.cout, tout)
				be.Conv1D(one, be.FromF32(x[e*c.cin*c.tlen:(e+1)*c.cin*c.tlen], 1, c.cin, c.tlen), w, bias, c.stride, c.pad)
				want := be.ToF32(one)
				if !slices.Equal(g[e*c.cout*tout:(e+1)*c.cout*tout], want) {
					t.Fatalf("%+v, bias %v: element %d differs from its Conv1D alone", c, bias != nil, e)
				}
			}
		}
	}
}

// TestUploadInPlace checks that UploadInPlace keeps quantized matrices and aligned F16/F32
// values where they lie, copies what it cannot (misaligned, BF16, quantized non-matrices), and
// gives the same values as Upload either way.
func TestUploadInPlace(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(21, 22))
	cases := []struct {
		dt      tensor.DType
		shape   []int
		shift   int // bytes the data starts past an aligned address
		inPlace bool
	}{
		{tensor.Q5_0, []int{4, 64}, 1, true},
		{tensor.Q8_0, []int{4, 64}, 0, true},
		{tensor.Q5_0, []int{2, 2, 64}, 0, false}, // a conv kernel: becomes F32
		{tensor.F16, []int{4, 8}, 0, true},
		{tensor.F16, []int{4, 8}, 1, false},
		{tensor.F32, []int{4, 8}, 0, true},
		{tensor.F32, []int{4, 8}, 2, false},
		{tensor.BF16, []int{4, 8}, 0, false},
	}
	for _, c := range cases {
		raw := tensor.Quantize(c.dt, randomRow(r, tensor.Numel(c.shape)))
		buf := make([]byte, len(raw)+8)
		data := buf[c.shift : c.shift+len(raw)]
		copy(data, raw)
		want := be.ToF32(be.Upload(c.dt, raw, c.shape...))
		u := be.UploadInPlace(c.dt, data, c.shape...)
		if be.InPlace(u) != c.inPlace {
			t.Fatalf("%s%v at +%d: in place %v, want %v", c.dt, c.shape, c.shift, be.InPlace(u), c.inPlace)
		}
		if !equalBits(be.ToF32(u), want) {
			t.Fatalf("%s%v at +%d: values differ from Upload's", c.dt, c.shape, c.shift)
		}
		be.Free(u)
	}
}

// TestF32Activations: with Options.F32Activations, Linear with a quantized weight and few rows
// (decoding) takes the float32 GEMM that more rows take, so each row's result is its row of a
// 16-row Linear, and differs from the default's (activations rounded to 8-bit blocks).
func TestF32Activations(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	be, err := New(Options{Threads: 2, F32Activations: true})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	q8 := newBackend(t, 2)
	for _, dt := range quantTypes {
		const n, k, many = 300, 256, 16
		raw := randomBlocks(r, dt, n, k/qBlock)
		w, wq := be.Upload(dt, raw, n, k), q8.Upload(dt, raw, n, k)
		xs := randomRow(r, many*k)
		x, dst := be.FromF32(xs, many, k), be.Alloc(tensor.F32, many, n)
		be.Linear(dst, x, w, nil)
		all := be.ToF32(dst)
		for _, rows := range []int{1, 5, 8} {
			xr, dr := be.FromF32(xs[:rows*k], rows, k), be.Alloc(tensor.F32, rows, n)
			be.Linear(dr, xr, w, nil)
			if !equalBits(be.ToF32(dr), all[:rows*n]) {
				t.Errorf("%s, %d rows: differ from their rows of a %d-row Linear", dt, rows, many)
			}
			xq, dq := q8.FromF32(xs[:rows*k], rows, k), q8.Alloc(tensor.F32, rows, n)
			q8.Linear(dq, xq, wq, nil)
			if equalBits(q8.ToF32(dq), all[:rows*n]) {
				t.Errorf("%s, %d rows: the default (8-bit activations) gave the float32 bits too", dt, rows)
			}
			be.Free(xr)
			be.Free(dr)
			q8.Free(xq)
			q8.Free(dq)
		}
	}
}
