package audio_test

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/verbatimhq/verbatim/audio"
)

func ExampleReadWAV() {
	// A 16-bit stereo WAV of two frames, built in memory.
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	binary.Write(&b, le, uint32(36+8))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, le, []uint32{16})
	binary.Write(&b, le, []uint16{1, 2})         // PCM, 2 channels
	binary.Write(&b, le, []uint32{16000, 64000}) // rate, bytes per second
	binary.Write(&b, le, []uint16{4, 16})        // block align, bits
	b.WriteString("data")
	binary.Write(&b, le, []uint32{8})
	binary.Write(&b, le, []int16{16384, 0, -32768, -16384})

	p, err := audio.ReadWAV(&b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Rate, p.Samples)

	_, err = audio.ReadWAV(bytes.NewReader([]byte("ID3 not a wav")))
	fmt.Println(err)
	// Output:
	// 16000 [0.25 -0.75]
	// audio stream: not a WAV file
}

func ExampleResample() {
	p := &audio.PCM{Rate: 48000, Samples: make([]float32, 48000)}
	q := audio.Resample(p, 16000)
	fmt.Println(q.Rate, len(q.Samples), q.Duration())
	// Output: 16000 16000 1
}
