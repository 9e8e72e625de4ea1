// Package audio holds PCM audio (mono float32) and reads WAV files. It does no I/O policy.
package audio

// PCM is mono audio as float32 samples in [-1, 1] at Rate samples per second.
type PCM struct {
	Rate    int
	Samples []float32
}

// Duration returns the length in seconds.
func (p *PCM) Duration() float64 { return float64(len(p.Samples)) / float64(p.Rate) }
