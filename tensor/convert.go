package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// F16ToF32 converts an IEEE 754 binary16 value to float32 exactly (subnormals, infinities and
// NaNs included).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf or NaN; keep the payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: normalise the mantissa.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// F32ToF16 converts a float32 to IEEE 754 binary16 with round-to-nearest-even. Values too large
// become infinity, values too small become (signed) zero or subnormals, and NaNs stay NaN (quiet).
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		return sign | uint16(roundShift(m, shift))
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to 0x7c00 = infinity, which is right
	}
	return sign | uint16(h)
}

// roundShift returns m >> shift rounded to nearest, ties to even.
func roundShift(m uint32, shift uint) uint32 {
	h := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && h&1 == 1) {
		h++
	}
	return h
}

// BF16ToF32 converts a bfloat16 value to float32 exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts a float32 to bfloat16 with round-to-nearest-even; NaNs stay NaN (quiet).
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// Dequantize converts raw little-endian bytes of dtype dt (f32, f16, bf16 or a ggml block
// format) into out. len(raw) must be exactly dt.RowBytes(len(out)); otherwise, or for an
// unsupported dtype, it returns an error and leaves out unspecified.
func Dequantize(dt DType, raw []byte, out []float32) error {
	switch dt {
	case F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_0:
	default:
		return fmt.Errorf("dequantize %s: %w", dt, ErrNotImplemented)
	}
	n := len(out)
	if n%dt.BlockSize() != 0 {
		return fmt.Errorf("dequantize %s: %d elements is not a multiple of the block size %d", dt, n, dt.BlockSize())
	}
	if want := dt.RowBytes(n); len(raw) != want {
		return fmt.Errorf("dequantize %s: %d bytes for %d elements, want %d", dt, len(raw), n, want)
	}
	switch dt {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BF16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case Q8_0:
		for b := 0; b < n/32; b++ {
			blk := raw[b*34 : b*34+34]
			d := F16ToF32(binary.LittleEndian.Uint16(blk))
			o := out[b*32 : b*32+32]
			for j := range o {
				o[j] = float32(int8(blk[2+j])) * d
			}
		}
	case Q4_0:
		for b := 0; b < n/32; b++ {
			blk := raw[b*18 : b*18+18]
			d := F16ToF32(binary.LittleEndian.Uint16(blk))
			qs := blk[2:18]
			o := out[b*32 : b*32+32]
			for j := 0; j < 16; j++ {
				o[j] = float32(int(qs[j]&0xf)-8) * d
				o[j+16] = float32(int(qs[j]>>4)-8) * d
			}
		}
	case Q5_0:
		for b := 0; b < n/32; b++ {
			blk := raw[b*22 : b*22+22]
			d := F16ToF32(binary.LittleEndian.Uint16(blk))
			qh := binary.LittleEndian.Uint32(blk[2:])
			qs := blk[6:22]
			o := out[b*32 : b*32+32]
			for j := 0; j < 16; j++ {
				h0 := int(qh>>uint(j)&1) << 4
				h1 := int(qh>>uint(j+16)&1) << 4
				o[j] = float32(int(qs[j]&0xf)|h0-16) * d
				o[j+16] = float32(int(qs[j]>>4)|h1-16) * d
			}
		}
	case Q5_1:
		for b := 0; b < n/32; b++ {
			blk := raw[b*24 : b*24+24]
			d := F16ToF32(binary.LittleEndian.Uint16(blk))
			m := F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
			qh := binary.LittleEndian.Uint32(blk[4:])
			qs := blk[8:24]
			o := out[b*32 : b*32+32]
			for j := 0; j < 16; j++ {
				h0 := int(qh>>uint(j)&1) << 4
				h1 := int(qh>>uint(j+16)&1) << 4
				o[j] = float32(int(qs[j]&0xf)|h0)*d + m
				o[j+16] = float32(int(qs[j]>>4)|h1)*d + m
			}
		}
	}
	return nil
}

// Quantize encodes in as dtype dt in ggml's layout, using ggml's reference quantizers (scale
// from the absolute maximum of each block; min/max for q5_1). It also encodes f32, f16 and bf16.
// len(in) must be a multiple of dt.BlockSize(); misuse panics with an [*Error].
func Quantize(dt DType, in []float32) []byte {
	switch dt {
	case F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_0:
	default:
		panic(&Error{Msg: "quantize " + dt.String(), Err: ErrNotImplemented})
	}
	n := len(in)
	out := make([]byte, dt.RowBytes(n))
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i, v := range in {
			le.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range in {
			le.PutUint16(out[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range in {
			le.PutUint16(out[2*i:], F32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b < n/32; b++ {
			x := in[b*32 : b*32+32]
			blk := out[b*34 : b*34+34]
			var amax float32
			for _, v := range x {
				amax = max(amax, abs32(v))
			}
			d := amax / 127
			id := inv(d)
			le.PutUint16(blk, F32ToF16(d))
			for j, v := range x {
				blk[2+j] = byte(int8(math.Round(float64(v * id))))
			}
		}
	case Q4_0:
		for b := 0; b < n/32; b++ {
			x := in[b*32 : b*32+32]
			blk := out[b*18 : b*18+18]
			d := signedAbsMax(x) / -8
			id := inv(d)
			le.PutUint16(blk, F32ToF16(d))
			for j := 0; j < 16; j++ {
				q0 := min(15, truncQ(x[j]*id+8.5))
				q1 := min(15, truncQ(x[j+16]*id+8.5))
				blk[2+j] = byte(q0) | byte(q1)<<4
			}
		}
	case Q5_0:
		for b := 0; b < n/32; b++ {
			x := in[b*32 : b*32+32]
			blk := out[b*22 : b*22+22]
			d := signedAbsMax(x) / -16
			id := inv(d)
			le.PutUint16(blk, F32ToF16(d))
			var qh uint32
			for j := 0; j < 16; j++ {
				q0 := min(31, truncQ(x[j]*id+16.5))
				q1 := min(31, truncQ(x[j+16]*id+16.5))
				blk[6+j] = byte(q0&0xf) | byte(q1&0xf)<<4
				qh |= uint32(q0>>4&1) << uint(j)
				qh |= uint32(q1>>4&1) << uint(j+16)
			}
			le.PutUint32(blk[2:], qh)
		}
	case Q5_1:
		for b := 0; b < n/32; b++ {
			x := in[b*32 : b*32+32]
			blk := out[b*24 : b*24+24]
			lo, hi := x[0], x[0]
			for _, v := range x {
				lo, hi = min(lo, v), max(hi, v)
			}
			d := (hi - lo) / 31
			id := inv(d)
			le.PutUint16(blk, F32ToF16(d))
			le.PutUint16(blk[2:], F32ToF16(lo))
			var qh uint32
			for j := 0; j < 16; j++ {
				q0 := min(31, truncQ((x[j]-lo)*id+0.5))
				q1 := min(31, truncQ((x[j+16]-lo)*id+0.5))
				blk[8+j] = byte(q0&0xf) | byte(q1&0xf)<<4
				qh |= uint32(q0>>4&1) << uint(j)
				qh |= uint32(q1>>4&1) << uint(j+16)
			}
			le.PutUint32(blk[4:], qh)
		}
	}
	return out
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

func inv(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// signedAbsMax returns the element of x with the largest magnitude (the first one on ties), as
// ggml's q4_0/q5_0 quantizers use it.
func signedAbsMax(x []float32) float32 {
	var amax, m float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, m = a, v
		}
	}
	return m
}

// truncQ converts like C's (int8_t)(float) for the in-range values the quantizers produce:
// truncation toward zero, clamped at 0 below (NaN inputs give 0).
func truncQ(v float32) int {
	if !(v > 0) {
		return 0
	}
	if v > 127 {
		return 127
	}
	return int(v)
}
