// Package testkit holds what the tests of several packages share: WAV files written by an
// independent writer (go-audio/wav; the program reads WAV with its own readers), the Silero VAD
// on a CPU backend of its own, JSON sidecars read back, and folders for what a test binary makes
// once (SharedDir), removed after its tests (Main).
package testkit

import (
	"math"
	"os"
	"testing"

	goaudio "github.com/go-audio/audio"
	"github.com/go-audio/wav"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/vad"
)

// WriteWAV writes samples (mono, in [-1, 1]; clipped outside) at rate Hz to path as a 16-bit
// PCM WAV file, failing the test on an error.
func WriteWAV(t testing.TB, path string, samples []float32, rate int) {
	t.Helper()
	WriteWAVBits(t, path, samples, rate, 16)
}

// WriteWAVBits is WriteWAV with bits (16 or 24) bits a sample.
func WriteWAVBits(t testing.TB, path string, samples []float32, rate, bits int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := wav.NewEncoder(f, rate, bits, 1, 1)
	buf := &goaudio.IntBuffer{Format: &goaudio.Format{NumChannels: 1, SampleRate: rate}, SourceBitDepth: bits, Data: make([]int, len(samples))}
	full := float64(int(1)<<(bits-1) - 1)
	for i, v := range samples {
		buf.Data[i] = int(math.Round(float64(max(-1, min(1, v))) * full))
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

// VAD loads the embedded Silero VAD on a CPU backend of its own (as the CLI runs it), closed
// when the test ends.
func VAD(t testing.TB) *vad.Model {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	v, err := vad.Default(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// ReadDocument reads the JSON sidecar at path.
func ReadDocument(t testing.TB, path string) *sidecar.Document {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sidecar.ReadDocument(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}
