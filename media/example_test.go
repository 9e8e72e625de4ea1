package media_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/verbatimhq/verbatim/media"
)

// Stream a file in 30 s windows, as the pipeline does, and place each window on the file's
// timeline with StartOffset.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tone.wav")
	writeTone(path, 44100, 65) // 65 s at 44.1 kHz: the native WAV path, no ffmpeg needed

	s, err := media.Open(context.Background(), path, media.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	win := make([]float32, 30*media.Rate)
	for {
		n, err := s.ReadWindow(win)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		start := s.StartOffset.Seconds() + s.Decoded().Seconds() - float64(n)/media.Rate
		fmt.Printf("window at %4.1f s: %d samples\n", start, n)
	}
	fmt.Println("codec:", s.Track.Codec, "downmix:", s.Downmix())
	// Output:
	// window at  0.0 s: 480000 samples
	// window at 30.0 s: 480000 samples
	// window at 60.0 s: 80000 samples
	// codec: pcm_s16le downmix: mono
}

func ExampleDecodeAll() {
	_, err := media.DecodeAll(context.Background(), "/no/such/file.m4a", media.Options{})
	fmt.Println(errors.Is(err, media.ErrNotFound), media.IsPermanent(err))
	fmt.Println(err)
	// Output:
	// true true
	// media /no/such/file.m4a: no such file
}

// writeTone writes a mono 16-bit WAV holding a 440 Hz tone.
func writeTone(path string, rate, seconds int) {
	n := rate * seconds
	b := make([]byte, 44+2*n)
	le := func(off int, v uint32, size int) {
		for i := range size {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	copy(b, "RIFF")
	le(4, uint32(36+2*n), 4)
	copy(b[8:], "WAVEfmt ")
	le(16, 16, 4)
	le(20, 1, 2) // PCM
	le(22, 1, 2) // mono
	le(24, uint32(rate), 4)
	le(28, uint32(2*rate), 4)
	le(32, 2, 2)
	le(34, 16, 2)
	copy(b[36:], "data")
	le(40, uint32(2*n), 4)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		le(44+2*i, uint32(uint16(v)), 2)
	}
	os.WriteFile(path, b, 0o644)
}
