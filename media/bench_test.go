package media

import (
	"errors"
	"io"
	"testing"
)

// BenchmarkDecode measures decoding to 16 kHz mono through each path; rtf is seconds of audio
// decoded per second of wall time (×real time). The 3 s clips show the fixed cost of a file
// (ffprobe and ffmpeg start-up on the ffmpeg path), the 120 s ones the throughput.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct{ name, file string }{
		{"native/wav-s16-44.1k", "s16.wav"},
		{"native/wav-s24-48k", "s24.wav"},
		{"ffmpeg/flac-96k", "tone.flac"},
		{"ffmpeg/mp3-44.1k", "tone.mp3"},
		{"ffmpeg/aac-m4a-44.1k", "tone.m4a"},
		{"ffmpeg/opus-48k", "tone.opus"},
		{"ffmpeg/inverted-flac-48k-stereo", "invert.flac"},
		{"native/wav-s16-44.1k-stereo-120s", "bench.wav"},
		{"ffmpeg/mp3-44.1k-120s", "bench.mp3"},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := fixture(b, c.file)
			buf := make([]float32, 1<<15)
			var samples int64
			for b.Loop() {
				s, err := Open(b.Context(), path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				for {
					n, err := s.Read(buf)
					samples += int64(n)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				s.Close()
			}
			sec := float64(samples) / Rate
			b.SetBytes(int64(float64(samples) * 4 / float64(b.N)))
			b.ReportMetric(sec/b.Elapsed().Seconds(), "rtf")
		})
	}
}
