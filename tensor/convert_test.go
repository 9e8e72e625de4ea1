package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16KnownValues(t *testing.T) {
	cases := []struct {
		name string
		f    float32
		h    uint16
	}{
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"zero", 0, 0},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"max", 65504, 0x7bff},
		{"just below overflow", 65519.99, 0x7bff},
		{"overflow tie to inf", 65520, 0x7c00},
		{"inf", float32(math.Inf(1)), 0x7c00},
		{"-inf", float32(math.Inf(-1)), 0xfc00},
		{"smallest subnormal", 0x1p-24, 0x0001},
		{"half smallest subnormal ties to zero", 0x1p-25, 0x0000},
		{"above half smallest subnormal", 0x1.8p-25, 0x0001},
		{"largest subnormal", 0x3ffp-24, 0x03ff},
		{"smallest normal", 0x1p-14, 0x0400},
		{"tie to even down", 1 + 0x1p-11, 0x3c00},
		{"tie to even up", 1 + 3*0x1p-11, 0x3c02},
		{"point one", 0.1, 0x2e66},
		{"subnormal rounds up to normal", 0x1.ffcp-15, 0x0400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := F32ToF16(c.f); got != c.h {
				t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.f, got, c.h)
			}
		})
	}
}

// TestF16RoundTripExhaustive converts every binary16 value to float32 and back.
func TestF16RoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F16ToF32(h)
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("F16ToF32(%#04x) = %g, want NaN", h, f)
			}
			if g := F32ToF16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, g)
			}
			continue
		}
		if g := F32ToF16(f); g != h {
			t.Fatalf("F32ToF16(F16ToF32(%#04x) = %g) = %#04x", h, f, g)
		}
	}
}

// TestF16Nearest checks round-to-nearest-even on random float32s: no neighbour of the result is
// closer, and a tie picks the even mantissa.
func TestF16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) || math.Abs(float64(f)) > 65504 {
			continue
		}
		h := F32ToF16(f)
		got := math.Abs(float64(F16ToF32(h)) - float64(f))
		mag := h & 0x7fff
		for _, nb := range []uint16{mag - 1, mag + 1} {
			if nb > 0x7bff {
				continue
			}
			d := math.Abs(float64(F16ToF32(nb|h&0x8000)) - float64(f))
			if d < got || (d == got && mag&1 == 1) {
				t.Fatalf("F32ToF16(%g) = %#04x (err %g), neighbour %#04x err %g", f, h, got, nb, d)
			}
		}
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{1 + 0x1p-8, 0x3f80},   // tie, to even (down)
		{1 + 3*0x1p-8, 0x3f82}, // tie, to even (up)
		{1 + 0x1.8p-8, 0x3f81}, // above the tie
		{float32(math.Inf(1)), 0x7f80},
		{math.MaxFloat32, 0x7f80}, // rounds to inf
	}
	for _, c := range cases {
		if got := F32ToBF16(c.f); got != c.h {
			t.Errorf("F32ToBF16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if f := BF16ToF32(F32ToBF16(float32(math.NaN()))); !math.IsNaN(float64(f)) {
		t.Errorf("NaN became %g", f)
	}
	for i := range 1 << 16 {
		h := uint16(i)
		if h&0x7f80 == 0x7f80 && h&0x7f != 0 {
			continue
		}
		if g := F32ToBF16(BF16ToF32(h)); g != h {
			t.Fatalf("bf16 %#04x round trip gave %#04x", h, g)
		}
	}
}

func le16(b []byte, v uint16) { binary.LittleEndian.PutUint16(b, v) }

// TestDequantizeKnownBlocks decodes hand-written blocks in ggml's layouts.
func TestDequantizeKnownBlocks(t *testing.T) {
	q40 := make([]byte, 18)
	le16(q40, 0x3c00) // d = 1
	q40[2] = 0x9f     // element 0: 15-8 = 7; element 16: 9-8 = 1
	q40[17] = 0x08    // element 15: 0; element 31: -8

	q50 := make([]byte, 22)
	le16(q50, 0x3800) // d = 0.5
	binary.LittleEndian.PutUint32(q50[2:], 1|1<<16)
	q50[6] = 0x21 // element 0: (1|16)-16 = 1; element 16: (2|16)-16 = 2

	q51 := make([]byte, 24)
	le16(q51, 0x4000)     // d = 2
	le16(q51[2:], 0xbc00) // m = -1
	binary.LittleEndian.PutUint32(q51[4:], 1<<31)
	q51[23] = 0x3f // element 15: 15*2-1 = 29; element 31: (3|16)*2-1 = 37

	q80 := make([]byte, 34)
	le16(q80, 0x3400) // d = 0.25
	q80[2] = 0x80     // -128
	q80[33] = 0x7f    // 127

	cases := []struct {
		name string
		dt   DType
		raw  []byte
		want map[int]float32
	}{
		{"q4_0", Q4_0, q40, map[int]float32{0: 7, 16: 1, 1: -8, 15: 0, 31: -8}},
		{"q5_0", Q5_0, q50, map[int]float32{0: 0.5, 16: 1, 1: -8, 31: -8}},
		{"q5_1", Q5_1, q51, map[int]float32{0: -1, 15: 29, 31: 37, 30: -1}},
		{"q8_0", Q8_0, q80, map[int]float32{0: -32, 31: 31.75, 5: 0}},
		{"f16", F16, []byte{0x00, 0x3c, 0x00, 0xc0}, map[int]float32{0: 1, 1: -2}},
		{"bf16", BF16, []byte{0x80, 0x3f, 0x00, 0xc0}, map[int]float32{0: 1, 1: -2}},
		{"f32", F32, []byte{0, 0, 0x80, 0x3f}, map[int]float32{0: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := make([]float32, len(c.raw)/c.dt.BlockBytes()*c.dt.BlockSize())
			if err := Dequantize(c.dt, c.raw, out); err != nil {
				t.Fatal(err)
			}
			for i, w := range c.want {
				if out[i] != w {
					t.Errorf("element %d = %g, want %g", i, out[i], w)
				}
			}
		})
	}
}

// TestQuantizeKnown checks ggml's reference quantizer arithmetic on x[j] = j - 16.
func TestQuantizeKnown(t *testing.T) {
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j - 16)
	}
	q8 := Quantize(Q8_0, x)
	if d := F16ToF32(binary.LittleEndian.Uint16(q8)); d != F16ToF32(F32ToF16(16.0/127)) {
		t.Errorf("q8_0 scale %g", d)
	}
	// round(x * 127/16): -16 -> -127, 1 -> 8 (7.9375), 15 -> 119 (119.06).
	for j, want := range map[int]int8{0: -127, 17: 8, 31: 119, 16: 0} {
		if got := int8(q8[2+j]); got != want {
			t.Errorf("q8_0[%d] = %d, want %d", j, got, want)
		}
	}
	// q4_0: max-magnitude element is -16, d = -16/-8 = 2, q = min(15, trunc(x/2 + 8.5)).
	q4 := Quantize(Q4_0, x)
	if d := F16ToF32(binary.LittleEndian.Uint16(q4)); d != 2 {
		t.Errorf("q4_0 scale %g, want 2", d)
	}
	if q4[2] != 0|8<<4 || q4[17] != 8|15<<4 {
		t.Errorf("q4_0 nibbles %#02x %#02x", q4[2], q4[17])
	}
	// q5_1: min -16, d = 31/31 = 1, q = x + 16 exactly.
	q51 := Quantize(Q5_1, x)
	out := make([]float32, 32)
	if err := Dequantize(Q5_1, q51, out); err != nil {
		t.Fatal(err)
	}
	for j := range x {
		if out[j] != x[j] {
			t.Fatalf("q5_1 round trip of integers: [%d] = %g, want %g", j, out[j], x[j])
		}
	}
}

// TestQuantizeErrorBound round-trips random data through every dtype and checks each element
// against the bound of its format.
func TestQuantizeErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 32 * 64
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * float32(1+i%7)
		if i%97 == 0 {
			x[i] = 0
		}
	}
	const f16eps = 1.0 / 1024 // relative spacing of binary16, twice its rounding error
	for _, dt := range []DType{F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_0} {
		t.Run(dt.String(), func(t *testing.T) {
			raw := Quantize(dt, x)
			if len(raw) != dt.RowBytes(n) {
				t.Fatalf("%d bytes, want %d", len(raw), dt.RowBytes(n))
			}
			out := make([]float32, n)
			if err := Dequantize(dt, raw, out); err != nil {
				t.Fatal(err)
			}
			for b := 0; b < n/32; b++ {
				blk := x[b*32 : b*32+32]
				var amax, lo, hi float64 = 0, math.Inf(1), math.Inf(-1)
				for _, v := range blk {
					amax = max(amax, math.Abs(float64(v)))
					lo, hi = min(lo, float64(v)), max(hi, float64(v))
				}
				for j, v := range blk {
					var tol float64
					switch dt {
					case F32:
						tol = 0
					case F16:
						tol = math.Abs(float64(v)) * f16eps / 2
					case BF16:
						tol = math.Abs(float64(v)) / 256
					case Q8_0:
						d := amax / 127
						tol = d/2 + 128*d*f16eps
					case Q4_0:
						d := amax / 8
						tol = d + 8*d*f16eps
					case Q5_0:
						d := amax / 16
						tol = d + 16*d*f16eps
					case Q5_1:
						d := (hi - lo) / 31
						tol = d/2 + 31*d*f16eps + math.Abs(lo)*f16eps
					}
					i := b*32 + j
					if e := math.Abs(float64(out[i]) - float64(v)); e > tol {
						t.Fatalf("element %d: %g became %g, error %g > %g", i, v, out[i], e, tol)
					}
				}
			}
		})
	}
}

func TestDequantizeErrors(t *testing.T) {
	cases := []struct {
		name string
		dt   DType
		raw  int
		n    int
	}{
		{"short", Q4_0, 17, 32},
		{"long", F16, 10, 4},
		{"partial block", Q8_0, 34, 31},
		{"i32", I32, 4, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Dequantize(c.dt, make([]byte, c.raw), make([]float32, c.n)); err == nil {
				t.Error("no error")
			}
		})
	}
}

func FuzzDequantize(f *testing.F) {
	f.Add(uint8(Q4_0), make([]byte, 18))
	f.Add(uint8(Q5_1), make([]byte, 48))
	f.Add(uint8(F16), []byte{0, 0x7c, 1, 0x7c})
	f.Fuzz(func(t *testing.T, dt uint8, raw []byte) {
		d := DType(dt % 8)
		bb := d.BlockBytes()
		n := len(raw) / bb * d.BlockSize()
		out := make([]float32, n)
		err := Dequantize(d, raw, out)
		if d == I32 {
			if err == nil {
				t.Fatal("i32 accepted")
			}
			return
		}
		if (len(raw)%bb == 0) != (err == nil) {
			t.Fatalf("%s with %d bytes: err %v", d, len(raw), err)
		}
	})
}

func BenchmarkDequantize(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 384*384)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, dt := range []DType{F16, Q8_0, Q5_0, Q5_1, Q4_0} {
		b.Run("n=147456/"+dt.String(), func(b *testing.B) {
			raw := Quantize(dt, x)
			out := make([]float32, len(x))
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := Dequantize(dt, raw, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
