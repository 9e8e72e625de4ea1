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
