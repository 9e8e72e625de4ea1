package mel

// window returns the [nMels, ChunkFrames] features of samples zero-padded (or cut) to 30 s,
// as Hugging Face's WhisperFeatureExtractor computes them.
func window(samples []float32, nMels int) []float32 {
	buf := make([]float32, ChunkSamples)
	copy(buf, samples)
	data, _ := Compute(buf, nMels)
	return data
}
