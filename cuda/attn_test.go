package cuda

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
)

// refAttention is a float64 reference for Attention: q [b, tq, h*d], k and v [b, tk, h*d], keys
// [0, kvLen) (causal: row i sees keys up to i + kvLen - tq).
func refAttention(q, k, v []float32, b, tq, tk, h, d, kvLen int, scale float64, causal bool) []float32 {
	out := make([]float32, b*tq*h*d)
	hd := h * d
	s := make([]float64, kvLen)
	for bi := range b {
		for i := range tq {
			n := kvLen
			if causal {
				n = min(kvLen, i+kvLen-tq+1)
			}
			for hh := range h {
				qr := q[(bi*tq+i)*hd+hh*d:]
				m := math.Inf(-1)
				for j := range n {
					kr := k[(bi*tk+j)*hd+hh*d:]
					var dot float64
					for e := range d {
						dot += float64(qr[e]) * float64(kr[e])
					}
					s[j] = dot * scale
					m = math.Max(m, s[j])
				}
				var sum float64
				for j := range n {
					s[j] = math.Exp(s[j] - m)
					sum += s[j]
				}
				for e := range d {
					var o float64
					for j := range n {
						o += s[j] * float64(v[(bi*tk+j)*hd+hh*d+e])
					}
					if n > 0 {
						o /= sum
					}
					out[(bi*tq+i)*hd+hh*d+e] = float32(o)
				}
			}
		}
	}
	return out
}

// TestAttentionDecode checks decoding attention (fewer than 16 query rows, head size 64: the
// split-K kernel k_attn_split_{h,f} + k_attn_combine, and with AttnRows the one-block-per-row
// kernel, and with AttnEach the split-K kernel per row where the group kernels (k_attn_gmma_h,
// or k_attn_group*_h with NoAttnMMA) would take a group of rows over the same keys) against a
// float64 reference, for cross-attention over 1500 f16 keys at batch 1 (many splits) and 3,
// groups of 2 to 8 rows, self-attention over an f32 cache (one split and several, with empty
// splits of causal rows), and the f16 shadow of the output read by the next Linear.
func TestAttentionDecode(t *testing.T) {
	cases := []struct {
		b, tq, h, tk, kvLen int
		half, causal        bool
		qs                  float32
	}{
		{1, 1, 20, 1500, 1500, true, false, 1},
		{3, 1, 20, 1500, 1500, true, false, 4},
		{12, 1, 20, 1500, 1500, true, false, 1},
		{2, 1, 4, 1500, 1117, true, false, 2},
		{5, 1, 20, 448, 37, false, true, 1},
		{12, 1, 20, 448, 103, false, true, 2},
		{2, 4, 20, 448, 4, false, true, 1},
		{1, 4, 4, 448, 289, false, true, 4},
		{1, 3, 4, 300, 300, true, true, 1},
		// Groups of rows over the same keys (beams in cross-attention: the group kernels): one
		// split and several, every group size, rows fewer than the group.
		{32, 5, 20, 1500, 1500, true, false, 1},
		{3, 5, 20, 1500, 1117, true, false, 2},
		{64, 5, 20, 200, 200, true, false, 1},
		{2, 8, 4, 1500, 1500, true, false, 4},
		{4, 3, 20, 1500, 1500, true, false, 1},
		{5, 2, 6, 1500, 700, true, false, 1},
		{3, 7, 20, 448, 448, true, false, 1},
	}
	// The group kernels on the tensor cores (the default, k_attn_gmma_h) round q and the
	// probabilities to f16, as the flash kernel does, and are held to the flash kernel's
	// tolerance; on the CUDA cores (attnmma=off) to the split-K kernel's.
	for _, opts := range []Options{{}, {AttnRows: true}, {AttnEach: true}, {NoAttnMMA: true}} {
		g := open(t, opts)
		for _, c := range cases {
			name := fmt.Sprintf("%s/b=%d,tq=%d,h=%d,kv=%d/%d,half=%v,causal=%v", cmp.Or(opts.String(), "defaults"), c.b, c.tq, c.h, c.kvLen, c.tk, c.half, c.causal)
			group := c.half && !c.causal && c.tq >= 2 && c.tq <= 8
			t.Run(name, func(t *testing.T) {
				const d = 64
				rng := rand.New(rand.NewPCG(uint64(c.b*1000+c.kvLen), 3))
				rnd := func(n int, s float32, r16 bool) []float32 {
					x := make([]float32, n)
					for i := range x {
						x[i] = (rng.Float32()*2 - 1) * s
						if r16 {
							x[i] = tensor.F16ToF32(tensor.F32ToF16(x[i]))
						}
					}
					return x
				}
				hd := c.h * d
				qv := rnd(c.b*c.tq*hd, c.qs, false)
				kv, vv := rnd(c.b*c.tk*hd, 1, c.half), rnd(c.b*c.tk*hd, 1, c.half)
				want := refAttention(qv, kv, vv, c.b, c.tq, c.tk, c.h, d, c.kvLen, 0.125, c.causal)
				q := g.FromF32(qv, c.b, c.tq, hd)
				kt, vt := g.FromF32(kv, c.b, c.tk, hd), g.FromF32(vv, c.b, c.tk, hd)
				if c.half {
					k16, v16 := g.Alloc(tensor.F16, c.b, c.tk, hd), g.Alloc(tensor.F16, c.b, c.tk, hd)
					g.Copy(k16, kt)
					g.Copy(v16, vt)
					kt, vt = k16, v16
				}
				dst := g.Alloc(tensor.F32, c.b, c.tq, hd)
				g.Attention(dst, q, kt, vt, c.h, c.kvLen, 0.125, c.causal)
				// The next Linear reads the output (through its f16 copy at more than 8 rows).
				const n = 32
				wv := rnd(n*hd, 0.05, true)
				w := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, wv), n, hd)
				y := g.Alloc(tensor.F32, c.b, c.tq, n)
				g.Linear(y, dst, w, nil)
				got, gy := g.ToF32(dst), g.ToF32(y)
				abs, rel, labs := 1e-4, 1e-3, 2e-3
				if group && opts == (Options{}) {
					abs, rel, labs = 2e-3, 5e-3, 3e-3
				}
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); !(d <= abs+rel*math.Abs(float64(want[i]))) {
						t.Fatalf("output %d (row %d, col %d): %g, want %g", i, i/hd, i%hd, got[i], want[i])
					}
				}
				for r := 0; r < c.b*c.tq; r++ {
					for j := range n {
						var s float64
						for e := range hd {
							s += float64(want[r*hd+e]) * float64(wv[j*hd+e])
						}
						if d := math.Abs(float64(gy[r*n+j]) - s); !(d <= labs+5e-3*math.Abs(s)) {
							t.Fatalf("Linear after attention, row %d col %d: %g, want %g", r, j, gy[r*n+j], s)
						}
					}
				}
				for _, u := range []*tensor.Tensor{q, kt, vt, dst, w, y} {
					g.Free(u)
				}
			})
		}
	}
}

// TestAttentionWindows checks tensor.WindowAttention (the group kernels with a table of each
// group's window) against the float64 reference on each group's window, for windows out of
// order and repeated, one split and several, and groups of 2, 5 and 8 rows; with the group
// kernels on the tensor cores (the flash kernel's tolerance) and on the CUDA cores (attnmma=off).
func TestAttentionWindows(t *testing.T) {
	for _, opts := range []Options{{}, {NoAttnMMA: true}} {
		t.Run(cmp.Or(opts.String(), "defaults"), func(t *testing.T) { attentionWindows(t, opts) })
	}
}

func attentionWindows(t *testing.T, opts Options) {
	g := open(t, opts)
	abs, rel := 2e-3, 5e-3
	if opts.NoAttnMMA {
		abs, rel = 1e-4, 1e-3
	}
	const d, h, tk = 64, 20, 1500
	hd := h * d
	rng := rand.New(rand.NewPCG(7, 7))
	rnd := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = tensor.F16ToF32(tensor.F32ToF16(rng.Float32()*2 - 1))
		}
		return x
	}
	const nw = 6
	kv, vv := rnd(nw*tk*hd), rnd(nw*tk*hd)
	k16, v16 := g.Alloc(tensor.F16, nw, tk, hd), g.Alloc(tensor.F16, nw, tk, hd)
	kt, vt := g.FromF32(kv, nw, tk, hd), g.FromF32(vv, nw, tk, hd)
	g.Copy(k16, kt)
	g.Copy(v16, vt)
	for _, c := range []struct {
		rows, kvLen int
		windows     []int32
	}{
		{5, 1500, []int32{4, 0, 5}},
		{2, 1500, []int32{1, 1, 3, 0}},
		{8, 700, []int32{5}},
		{5, 200, []int32{2, 5, 0, 4, 1, 3, 2, 2, 0, 1, 5, 4, 3, 3, 1, 0, 2, 4, 5, 1}},
	} {
		t.Run(fmt.Sprintf("rows=%d,kv=%d,windows=%v", c.rows, c.kvLen, c.windows), func(t *testing.T) {
			if !g.AttendsWindows(c.rows, k16) {
				t.Fatalf("AttendsWindows(%d) = false", c.rows)
			}
			b := len(c.windows)
			qv := rnd(b * c.rows * hd)
			raw := make([]byte, 4*b)
			for i, w := range c.windows {
				raw[4*i], raw[4*i+1] = byte(w), byte(w>>8)
			}
			win := g.Upload(tensor.I32, raw, b)
			q := g.FromF32(qv, b, c.rows, hd)
			dst := g.Alloc(tensor.F32, b, c.rows, hd)
			g.AttentionWindows(dst, q, k16, v16, win, h, c.kvLen, 0.125)
			got := g.ToF32(dst)
			for i, w := range c.windows {
				ko, n := int(w)*tk*hd, tk*hd
				want := refAttention(qv[i*c.rows*hd:(i+1)*c.rows*hd], kv[ko:ko+n], vv[ko:ko+n], 1, c.rows, tk, h, d, c.kvLen, 0.125, false)
				for j, x := range want {
					y := got[i*c.rows*hd+j]
					if dd := math.Abs(float64(y - x)); !(dd <= abs+rel*math.Abs(float64(x))) {
						t.Fatalf("group %d (window %d) output %d: %g, want %g", i, w, j, y, x)
					}
				}
			}
			for _, u := range []*tensor.Tensor{win, q, dst} {
				g.Free(u)
			}
		})
	}
}

func TestAttnSplitChunk(t *testing.T) {
	for _, c := range []struct{ rows, kv, want int }{
		{20, 1500, 64}, {60, 1500, 256}, {1280, 1500, 256}, {20, 50, 32}, {1280, 100, 256},
	} {
		if got := attnSplitChunk(c.rows, c.kv, 132); got != c.want {
			t.Errorf("attnSplitChunk(%d, %d, 132) = %d, want %d", c.rows, c.kv, got, c.want)
		}
	}
}

// TestAttentionFlashF16 checks the encoder's flash attention with F16 keys and values
// (k_attn_flash_w: cp.async tiles, ldmatrix, 32 query rows a warp; with FlashConvert the
// f32-loading kernel) against a float64 reference: Whisper's encoder shape (1500 keys, a partial
// last tile and query block), causal rows, and the f16 shadow of the output read by the next
// Linear. Q and P are rounded to f16: tolerance abs 2e-3 + rel 5e-3.
func TestAttentionFlashF16(t *testing.T) {
	cases := []struct {
		b, tq, h, tk, kvLen int
		causal              bool
		qs                  float32
	}{
		{1, 1500, 4, 1500, 1500, false, 1},
		{2, 300, 3, 1500, 1500, false, 3},
		{1, 40, 2, 293, 293, false, 1},
		{2, 200, 2, 200, 200, true, 2},
		{1, 130, 2, 260, 250, true, 1},
	}
	for _, opts := range []Options{{}, {FlashConvert: true}} {
		g := open(t, opts)
		for _, c := range cases {
			name := fmt.Sprintf("opts=%q/b=%d,tq=%d,h=%d,kv=%d/%d,causal=%v", opts.String(), c.b, c.tq, c.h, c.kvLen, c.tk, c.causal)
			t.Run(name, func(t *testing.T) {
				const d = 64
				rng := rand.New(rand.NewPCG(uint64(c.tq*1000+c.kvLen), 5))
				rnd := func(n int, s float32, r16 bool) []float32 {
					x := make([]float32, n)
					for i := range x {
						x[i] = (rng.Float32()*2 - 1) * s
						if r16 {
							x[i] = tensor.F16ToF32(tensor.F32ToF16(x[i]))
						}
					}
					return x
				}
				hd := c.h * d
				qv := rnd(c.b*c.tq*hd, c.qs, false)
				kv, vv := rnd(c.b*c.tk*hd, 1, true), rnd(c.b*c.tk*hd, 1, true)
				want := refAttention(qv, kv, vv, c.b, c.tq, c.tk, c.h, d, c.kvLen, 0.125, c.causal)
				q := g.FromF32(qv, c.b, c.tq, hd)
				kt, vt := g.FromF32(kv, c.b, c.tk, hd), g.FromF32(vv, c.b, c.tk, hd)
				k16, v16 := g.Alloc(tensor.F16, c.b, c.tk, hd), g.Alloc(tensor.F16, c.b, c.tk, hd)
				g.Copy(k16, kt)
				g.Copy(v16, vt)
				dst := g.Alloc(tensor.F32, c.b, c.tq, hd)
				g.Attention(dst, q, k16, v16, c.h, c.kvLen, 0.125, c.causal)
				const n = 16
				wv := rnd(n*hd, 0.05, true)
				w := g.Upload(tensor.F16, tensor.Quantize(tensor.F16, wv), n, hd)
				y := g.Alloc(tensor.F32, c.b, c.tq, n)
				g.Linear(y, dst, w, nil)
				got, gy := g.ToF32(dst), g.ToF32(y)
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); !(d <= 2e-3+5e-3*math.Abs(float64(want[i]))) {
						t.Fatalf("output %d (row %d, col %d): %g, want %g", i, i/hd, i%hd, got[i], want[i])
					}
				}
				for r := 0; r < c.b*c.tq; r += 7 {
					for j := range n {
						var s float64
						for e := range hd {
							s += float64(want[r*hd+e]) * float64(wv[j*hd+e])
						}
						if d := math.Abs(float64(gy[r*n+j]) - s); !(d <= 3e-3+5e-3*math.Abs(s)) {
							t.Fatalf("Linear after attention, row %d col %d: %g, want %g", r, j, gy[r*n+j], s)
						}
					}
				}
				for _, u := range []*tensor.Tensor{q, kt, vt, k16, v16, dst, w, y} {
					g.Free(u)
				}
			})
		}
	}
}
