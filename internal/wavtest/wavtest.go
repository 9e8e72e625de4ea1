// Package wavtest writes WAV files for tests: 16-bit PCM, mono, through go-audio/wav (the
// program reads WAV with its own readers, so the files come from an independent writer).
package wavtest

import (
	"math"
	"os"
	"testing"

	goaudio "github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// Write writes samples (mono, in [-1, 1]; clipped outside) at rate Hz to path as a 16-bit PCM
// WAV file, failing the test on an error.
func Write(t testing.TB, path string, samples []float32, rate int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := wav.NewEncoder(f, rate, 16, 1, 1)
	buf := &goaudio.IntBuffer{Format: &goaudio.Format{NumChannels: 1, SampleRate: rate}, SourceBitDepth: 16, Data: make([]int, len(samples))}
	for i, v := range samples {
		buf.Data[i] = int(math.Round(float64(max(-1, min(1, v))) * 32767))
	}
	if err := enc.Write(buf); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := enc.Close(); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
