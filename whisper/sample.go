package whisper

import (
	"math"
	"math/rand/v2"

	"github.com/verbatimhq/verbatim/tensor"
)

// logSumExp32 returns log(sum(exp(x))) accumulated in float64; -Inf if every entry is -Inf.
func logSumExp32(x []float32) float64 { return tensor.LogSumExp(x) }

// argmax returns the index of the largest value (the first one on ties), or -1 if every value
// is -Inf or x is empty.
func argmax(x []float32) int { return tensor.Argmax(x) }

// sampleToken draws an index from softmax(logits / temperature) with rng. temperature must be
// > 0. Indexes at -Inf are never drawn. It returns -1 if every logit is -Inf.
func sampleToken(rng *rand.Rand, logits []float32, temperature float64, scratch []float64) int {
	maxv := math.Inf(-1)
	for _, v := range logits {
		if float64(v) > maxv {
			maxv = float64(v)
		}
	}
	if math.IsInf(maxv, -1) {
		return -1
	}
	var sum float64
	for i, v := range logits {
		p := math.Exp((float64(v) - maxv) / temperature)
		scratch[i] = p
		sum += p
	}
	u := rng.Float64() * sum
	last := -1
	for i, p := range scratch[:len(logits)] {
		if p == 0 {
			continue
		}
		last = i
		u -= p
		if u < 0 {
			return i
		}
	}
	return last // rounding: the last drawable index
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
