package cpu

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/tensor/tensortest"
)

func newBackend(t testing.TB, threads int) *Backend {
	t.Helper()
	b, err := New(Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// withSIMD runs f once per kernel set this machine supports.
func withSIMD(t *testing.T, f func(t *testing.T)) {
	for _, s := range availableSIMD() {
		t.Run(s.name, func(t *testing.T) {
			old := active
			active = s
			defer func() { active = old }()
			f(t)
		})
	}
}

// conformance are the suite's default tolerances, plus the rounding of activations to q8 blocks
// that Linear does for quantized weights while decoding (see gemvQ).
var conformance = tensortest.Options{Q8Activations: true}

func TestConformance(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		tensortest.Run(t, newBackend(t, 3), conformance)
	})
}

func TestConformanceOneThread(t *testing.T) {
	tensortest.Run(t, newBackend(t, 1), conformance)
}

func BenchmarkOps(b *testing.B) {
	tensortest.RunBenchmarks(b, newBackend(b, 0))
}

// TestAttentionPathsAgree runs the blocked and the few-query attention paths on the same
// inputs, including causal queries that see no key (kvLen < Tq), which both leave at zero.
func TestAttentionPathsAgree(t *testing.T) {
	withSIMD(t, func(t *testing.T) {
		be := newBackend(t, 2)
		const b, tq, tk, heads, d = 2, 40, 50, 3, 24
		for _, kv := range []int{50, 17} {
			hd := heads * d
			q, k, v := make([]float32, b*tq*hd), make([]float32, b*tk*hd), make([]float32, b*tk*hd)
			for i := range q {
				q[i] = float32(i%17) * 0.05
			}
			for i := range k {
				k[i], v[i] = float32(i%23)*0.03, float32(i%11)-5
			}
			big, small := make([]float32, len(q)), make([]float32, len(q))
			be.attnBlocked(big, q, kvData{f: k}, kvData{f: v}, b, tq, tk, heads, d, kv, 0.2, true)
			be.attnSmall(small, q, kvData{f: k}, kvData{f: v}, b, tq, tk, heads, d, kv, 0.2, true)
			for i := range big {
				row := (i / hd) % tq
				if visible(row, tq, kv, true) == 0 && (big[i] != 0 || small[i] != 0) {
					t.Fatalf("kv=%d: query %d sees no key but got %g / %g", kv, row, big[i], small[i])
				}
				if diff := big[i] - small[i]; diff > 1e-4 || diff < -1e-4 || big[i] != big[i] {
					t.Fatalf("kv=%d: element %d: blocked %g, small %g", kv, i, big[i], small[i])
				}
			}
		}
	})
}

// TestUpload16 checks which dtype 16-bit weights are kept in: F16 as is, BF16 as F16 when every
// value converts exactly, else F32, with the values unchanged either way.
func TestUpload16(t *testing.T) {
	be := newBackend(t, 2)
	cases := []struct {
		name string
		dt   tensor.DType
		vals []float32
		want tensor.DType
	}{
		{"f16", tensor.F16, []float32{1, -2.5, 0.1, 65504, 6e-8, 0}, tensor.F16},
		{"bf16 exact", tensor.BF16, []float32{1, -2.5, 0.1, 3e4, -0.0078125, 0}, tensor.F16},
		{"bf16 too large", tensor.BF16, []float32{1, 1e6}, tensor.F32},
		{"bf16 too small", tensor.BF16, []float32{1, 1e-9}, tensor.F32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := tensor.Quantize(c.dt, c.vals)
			want := make([]float32, len(c.vals))
			if err := tensor.Dequantize(c.dt, raw, want); err != nil {
				t.Fatal(err)
			}
			u := be.Upload(c.dt, raw, 1, len(c.vals))
			if u.DType != c.want {
				t.Fatalf("Upload %s: dtype %s, want %s", c.dt, u.DType, c.want)
			}
			if diff := cmp.Diff(want, be.ToF32(u)); diff != "" {
				t.Fatalf("values (-want +got):\n%s", diff)
			}
			be.Free(u)
		})
	}
}
