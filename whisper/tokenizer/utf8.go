package tokenizer

import "unicode/utf8"

const replacement = "\uFFFD"

// appendUTF8 appends b to dst with every maximal ill-formed subsequence replaced by U+FFFD,
// as Python's bytes.decode("utf-8", errors="replace") does (Unicode's "maximal subpart"
// practice). Unless final, a truncated but so far well-formed sequence at the end of b is not
// consumed; the returned n is the number of bytes of b consumed.
func appendUTF8(dst, b []byte, final bool) (out []byte, n int) {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, b[i:i+size]...)
			i += size
			continue
		}
		sub, complete := subpart(b[i:])
		if i+sub == len(b) && !complete && !final {
			return dst, i
		}
		dst = append(dst, replacement...)
		i += sub
	}
	return dst, i
}

// subpart returns the length of the maximal ill-formed subpart at the start of b (whose first
// byte does not begin a well-formed sequence), and whether it ended on a mismatching byte
// (complete) rather than at the end of b, where more bytes could still make it well-formed.
func subpart(b []byte) (n int, complete bool) {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1, true
	}
	n = 1
	for k := 0; k < need; k++ {
		if n >= len(b) {
			return n, false
		}
		if b[n] < lo || b[n] > hi {
			return n, true
		}
		n++
		lo, hi = 0x80, 0xBF
	}
	// Unreachable for input that DecodeRune rejected; treat as one bad byte.
	return 1, true
}
