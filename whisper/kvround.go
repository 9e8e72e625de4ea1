package whisper

import "math"

// roundCrossKV, when set (builds with the tag verbatim_kv8: kvround_kv8.go), rewrites an
// encoding's cross-attention keys and values as 8-bit storage would give them back: a
// measurement of what 8-bit K/V on the device would cost in accuracy (a kernel reading int8
// K/V, 8adcb25, measured no faster on an H100 and was reverted: docs/performance.md,
// 2026-12-08). Releases leave it nil.
var roundCrossKV func(m *Model, enc *Encoded)

// roundKV8 rounds v in place, a scale for each run of group values (a head's slice of one
// position: the scale 8-bit storage would keep beside it), to int8 (mode "int8": 127 steps a
// side) or to FP8 E4M3 (mode "e4m3": 3 mantissa bits, largest 448, steps of 2^-9 below 2^-6).
func roundKV8(v []float32, group int, mode string) {
	top := float32(127)
	if mode == "e4m3" {
		top = 448
	}
	for g := 0; g+group <= len(v); g += group {
		run := v[g : g+group]
		var mx float32
		for _, x := range run {
			mx = max(mx, float32(math.Abs(float64(x))))
		}
		if mx == 0 {
			continue
		}
		s := mx / top
		for j, x := range run {
			y := float64(x / s)
			if mode == "e4m3" {
				y = roundE4M3(y)
			} else {
				y = math.Round(y)
			}
			run[j] = float32(y) * s
		}
	}
}

// roundE4M3 rounds y to the nearest FP8 E4M3 value (ties away from zero), saturating at 448.
func roundE4M3(y float64) float64 {
	if y == 0 || math.IsNaN(y) {
		return y
	}
	_, e := math.Frexp(math.Abs(y)) // |y| = f * 2^e, f in [0.5, 1)
	e = max(e-1, -6)                // the exponent of |y|'s leading bit; subnormals below 2^-6
	q := math.Ldexp(1, e-3)         // 3 mantissa bits
	r := math.Round(y/q) * q
	return math.Max(-448, math.Min(448, r))
}
