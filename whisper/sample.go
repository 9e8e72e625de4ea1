package whisper

import (
	"math"

	"github.com/verbatimhq/verbatim/tensor"
)

// logSumExp32 returns log(sum(exp(x))) accumulated in float64; -Inf if every entry is -Inf.
func logSumExp32(x []float32) float64 { return tensor.LogSumExp(x) }

// argmax returns the index of the largest value (the first one on ties), or -1 if every value
// is -Inf or x is empty.
func argmax(x []float32) int { return tensor.Argmax(x) }

// sampleWeights writes softmax(logits / temperature)'s weights, before their normalization,
// into w (exp((logit - max) / temperature), each in float64) and returns their sum; ok is false
// when every logit is -Inf. With drawIndex, a draw from softmax(logits / temperature) in two
// parts, so that rows can be weighed in parallel and drawn from one generator in order.
func sampleWeights(logits []float32, temperature float64, w []float64) (sum float64, ok bool) {
	maxv := math.Inf(-1)
	for _, v := range logits {
		if float64(v) > maxv {
			maxv = float64(v)
		}
	}
	if math.IsInf(maxv, -1) {
		return 0, false
	}
	w = w[:len(logits)]
	tensor.ExpScaled(w, logits, maxv, temperature) // math.Exp's bits, vectorized where it can be
	for _, p := range w {
		sum += p
	}
	return sum, true
}

// drawIndex is the index whose weight u (in [0, the weights' sum)) falls in, counting from the
// start; on rounding, the last index of non-zero weight.
func drawIndex(w []float64, u float64) int {
	last := -1
	for i, p := range w {
		if p == 0 {
			continue
		}
		last = i
		u -= p
		if u < 0 {
			return i
		}
	}
	return last
}

// tokenEntropy is whisper.cpp's repetition measure: the entropy (nats) of the token-id histogram
// of the last n tokens of ids.
func tokenEntropy(ids []int, n int) float64 {
	if len(ids) > n {
		ids = ids[len(ids)-n:]
	}
	if len(ids) == 0 {
		return 0
	}
	counts := map[int]int{}
	for _, id := range ids {
		counts[id]++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(len(ids))
		h -= p * math.Log(p)
	}
	return h
}
