package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestGemvF16RowsKernels: the kernels that take several activation rows at once (gemvhr) give
// every output the same bits as the one-row kernel (gemvh) of the same set, with and without
// accumulation, for depths with and without an odd last chunk and row counts not a multiple
// of 4.
func TestGemvF16RowsKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	withSIMD(t, func(t *testing.T) {
		s := active
		for m, f := range s.gemvhr {
			if f == nil {
				continue
			}
			for _, k := range []int{16, 32, 48, 80, 512} {
				for _, n := range []int{2, 4, 6, 10, 64} {
					for _, acc := range []bool{false, true} {
						name := fmt.Sprintf("m=%d/k=%d/n=%d/acc=%v", m, k, n, acc)
						ldx, ldw, ldo := k+16, k+32, n+3
						x := randomRow(r, m*ldx)
						n4 := roundUp(n, 4)
						w := make([]uint16, n4*ldw)
						for i := range w {
							w[i] = tensor.F32ToF16(float32(r.NormFloat64()))
						}
						start := randomRow(r, m*ldo)
						got := append([]float32(nil), start...)
						f(k, &x[0], ldx, &w[0], ldw, &got[0], ldo, n, acc)
						for i := range m {
							want := make([]float32, n4)
							copy(want, start[i*ldo:i*ldo+n])
							s.gemvh(k, &x[i*ldx], &w[0], ldw, &want[0], n4, acc)
							if !equalBits(got[i*ldo:i*ldo+n], want[:n]) {
								t.Fatalf("%s: row %d: got %v, want %v", name, i, got[i*ldo:i*ldo+n], want[:n])
							}
							if i < m-1 && !equalBits(got[i*ldo+n:(i+1)*ldo], start[i*ldo+n:(i+1)*ldo]) {
								t.Fatalf("%s: row %d: wrote past n", name, i)
							}
						}
					}
				}
			}
		}
	})
}

// TestLinearF16RowsAlone: Linear with F16 weights gives each of up to 8 rows of x (decoding's
// batch, the beams of beam search) the same bits as Linear of that row alone, whatever the
// kernels that take several rows at once do.
func TestLinearF16RowsAlone(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	withSIMD(t, func(t *testing.T) {
		be := newBackend(t, 2)
		for _, k := range []int{64, 80, 512} {
			const n = 300
			w := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, randomRow(r, n*k)), n, k)
			bias := be.FromF32(randomRow(r, n), n)
			for m := 1; m <= 8; m++ {
				xv := randomRow(r, m*k)
				x, dst := be.FromF32(xv, m, k), be.Alloc(tensor.F32, m, n)
				be.Linear(dst, x, w, bias)
				got := be.ToF32(dst)
				for i := range m {
					xi, di := be.FromF32(xv[i*k:(i+1)*k], 1, k), be.Alloc(tensor.F32, 1, n)
					be.Linear(di, xi, w, bias)
					if want := be.ToF32(di); !equalBits(got[i*n:(i+1)*n], want) {
						t.Fatalf("k=%d, %d rows: row %d differs from the row alone", k, m, i)
					}
				}
			}
		}
	})
}

// TestWsumF16RowsKernels: the weighted sums of several probability rows at once (wsumhr) give
// every output the same bits as the one-row kernel (wsumh).
func TestWsumF16RowsKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	withSIMD(t, func(t *testing.T) {
		s := active
		for m, f := range s.wsumhr {
			if f == nil {
				continue
			}
			for _, d := range []int{16, 48, 64, 80, 144} {
				for _, n := range []int{1, 3, 50} {
					ldo, ldp, ldv := d+5, n+2, d+16
					p := randomRow(r, m*ldp)
					v := make([]uint16, n*ldv)
					for i := range v {
						v[i] = tensor.F32ToF16(float32(r.NormFloat64()))
					}
					got := randomRow(r, m*ldo)
					before := append([]float32(nil), got...)
					f(&got[0], ldo, d, &p[0], ldp, n, &v[0], ldv)
					for i := range m {
						want := make([]float32, d)
						s.wsumh(&want[0], d, &p[i*ldp], n, &v[0], ldv)
						if !equalBits(got[i*ldo:i*ldo+d], want) {
							t.Fatalf("m=%d d=%d n=%d: row %d differs", m, d, n, i)
						}
						if !equalBits(got[i*ldo+d:i*ldo+ldo], before[i*ldo+d:i*ldo+ldo]) {
							t.Fatalf("m=%d d=%d n=%d: row %d: wrote past d", m, d, n, i)
						}
					}
				}
			}
		}
	})
}

// TestAttentionF16QueriesAlone: Attention on F16 keys and values without a mask gives each of a
// few queries (beam search's beams against their window) the same bits as the query alone.
func TestAttentionF16QueriesAlone(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	withSIMD(t, func(t *testing.T) {
		be := newBackend(t, 2)
		const b, tk, heads = 2, 60, 3
		for _, d := range []int{16, 64, 80} {
			hd := heads * d
			k := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, randomRow(r, b*tk*hd)), b, tk, hd)
			v := be.Upload(tensor.F16, tensor.Quantize(tensor.F16, randomRow(r, b*tk*hd)), b, tk, hd)
			for _, kvLen := range []int{1, 7, 60} {
				for tq := 1; tq <= 8; tq++ {
					qv := randomRow(r, b*tq*hd)
					q, dst := be.FromF32(qv, b, tq, hd), be.Alloc(tensor.F32, b, tq, hd)
					be.Attention(dst, q, k, v, heads, kvLen, 0.125, false)
					got := be.ToF32(dst)
					for bi := range b {
						for i := range tq {
							row := qv[(bi*tq+i)*hd : (bi*tq+i+1)*hd]
							one := make([]float32, b*hd) // the query alone, in batch row bi
							copy(one[bi*hd:], row)
							q1, d1 := be.FromF32(one, b, 1, hd), be.Alloc(tensor.F32, b, 1, hd)
							be.Attention(d1, q1, k, v, heads, kvLen, 0.125, false)
							want := be.ToF32(d1)[bi*hd : (bi+1)*hd]
							if !equalBits(got[(bi*tq+i)*hd:(bi*tq+i+1)*hd], want) {
								t.Fatalf("d=%d kvLen=%d tq=%d: batch %d query %d differs from the query alone", d, kvLen, tq, bi, i)
							}
						}
					}
				}
			}
		}
	})
}

// TestDotF16RowsKernels: the attention scores of several queries at once (dothr) are the same
// bits as dot4h's, query by query.
func TestDotF16RowsKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	withSIMD(t, func(t *testing.T) {
		s := active
		for m, f := range s.dothr {
			if f == nil {
				continue
			}
			for _, k := range []int{16, 48, 64, 96} {
				for _, n := range []int{4, 8, 60} {
					ldx, ldw, ldo := k+16, k+32, n+3
					x := randomRow(r, m*ldx)
					w := make([]uint16, n*ldw)
					for i := range w {
						w[i] = tensor.F32ToF16(float32(r.NormFloat64()))
					}
					got := make([]float32, m*ldo)
					f(k, &x[0], ldx, &w[0], ldw, &got[0], ldo, n, false)
					for i := range m {
						want := make([]float32, n)
						for j := 0; j < n; j += 4 {
							s.dot4h(k, &x[i*ldx], &w[j*ldw], ldw, &want[j])
						}
						if !equalBits(got[i*ldo:i*ldo+n], want) {
							t.Fatalf("m=%d k=%d n=%d: row %d: got %v, want %v", m, k, n, i, got[i*ldo:i*ldo+n], want)
						}
					}
				}
			}
		}
	})
}
