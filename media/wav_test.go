package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime/metrics"
	"slices"
	"testing"
)

// wavBytes builds a WAV file: the RIFF header, then the chunks in order, each an id and a body
// (with its pad byte when odd). A body of nil with size >= 0 declares size bytes without
// holding them.
func wavBytes(chunks ...wavChunk) []byte {
	var b []byte
	for _, c := range chunks {
		b = append(b, c.id...)
		n := uint32(len(c.body))
		if c.size != 0 {
			n = c.size
		}
		b = binary.LittleEndian.AppendUint32(b, n)
		b = append(b, c.body...)
		if len(c.body)%2 == 1 {
			b = append(b, 0)
		}
	}
	head := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(4+len(b)))
	return append(append(head, "WAVE"...), b...)
}

type wavChunk struct {
	id   string
	body []byte
	size uint32 // declared size when not len(body)
}

// fmtChunk is a fmt chunk body: format tag, channels, rate and bits per sample, with the byte
// rate and block align they imply, and extra bytes after them.
func fmtChunk(tag, channels, rate, bits int, extra ...byte) wavChunk {
	le := binary.LittleEndian
	width := (bits + 7) / 8
	b := le.AppendUint16(nil, uint16(tag))
	b = le.AppendUint16(b, uint16(channels))
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(rate*channels*width))
	b = le.AppendUint16(b, uint16(channels*width))
	b = le.AppendUint16(b, uint16(bits))
	return wavChunk{id: "fmt ", body: append(b, extra...)}
}

// extensible is the tail of a WAVE_FORMAT_EXTENSIBLE fmt chunk for sub-format tag.
func extensible(bits, tag int) []byte {
	le := binary.LittleEndian
	b := le.AppendUint16(nil, 22)
	b = le.AppendUint16(b, uint16(bits))
	b = le.AppendUint32(b, 0x3f) // channel mask: 5.1
	b = le.AppendUint16(b, uint16(tag))
	return append(b, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71)
}

// ramp is n bytes of sample data.
func ramp(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 37)
	}
	return b
}

// wavSeeds are small WAV files of each kind newWAVSource reads or turns away.
func wavSeeds() [][]byte {
	data := func(n int) wavChunk { return wavChunk{id: "data", body: ramp(n)} }
	return [][]byte{
		wavBytes(fmtChunk(1, 1, 16000, 16), data(64)),
		wavBytes(fmtChunk(1, 2, 44100, 16), data(64)),
		wavBytes(fmtChunk(1, 1, 8000, 8), data(33)),
		wavBytes(fmtChunk(1, 2, 48000, 24), data(60)),
		wavBytes(fmtChunk(1, 1, 22050, 32), data(64)),
		wavBytes(fmtChunk(3, 1, 16000, 32), data(64)),
		wavBytes(fmtChunk(3, 2, 16000, 64), data(64)),
		wavBytes(fmtChunk(0xfffe, 6, 48000, 16, extensible(16, 1)...), data(72)),
		wavBytes(fmtChunk(1, 1, 16000, 16, 0, 0), wavChunk{id: "LIST", body: []byte("INFOtext")}, data(32)),
		wavBytes(wavChunk{id: "JUNK", body: ramp(5)}, fmtChunk(1, 1, 16000, 16), data(32)),
		wavBytes(fmtChunk(1, 1, 16000, 16), wavChunk{id: "data", body: ramp(16), size: 0xffffffff}),
		wavBytes(fmtChunk(1, 1, 16000, 16), wavChunk{id: "data", body: ramp(16), size: 64}),
		wavBytes(fmtChunk(1, 1, 16000, 16), wavChunk{id: "data"}),
		wavBytes(fmtChunk(7, 1, 8000, 8), data(16)),
		wavBytes(fmtChunk(1, 1, 16000, 16)),
		[]byte("RIFF\x04\x00\x00\x00WAVE"),
	}
}

// Every seed must reach the part of newWAVSource it was made for.
func TestWAVSeeds(t *testing.T) {
	var opened, notNative, corrupt, empty int
	for i, b := range wavSeeds() {
		_, info, err := newWAVSource("seed.wav", bytes.NewReader(b), int64(len(b)))
		switch {
		case err == nil:
			opened++
			if info.Streams[0].Codec == "" {
				t.Errorf("seed %d: no codec name", i)
			}
		case errors.Is(err, errNotNative):
			notNative++
		case errors.Is(err, ErrCorrupt):
			corrupt++
		case errors.Is(err, ErrEmpty):
			empty++
		default:
			t.Errorf("seed %d: %v", i, err)
		}
	}
	if opened != 11 || notNative != 3 || corrupt != 1 || empty != 1 {
		t.Errorf("%d open, %d not native, %d corrupt, %d empty; want 11, 3, 1, 1", opened, notNative, corrupt, empty)
	}
}

// allocSample reads the bytes the process has allocated so far, without stopping the world
// (runtime.ReadMemStats would, at about 50 µs an input).
var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

func allocated() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// FuzzWAVSource fuzzes the native WAV reader: its header walk (newWAVSource, the same code
// openWAV runs on files) and the blocks it decodes. Properties: no panic; errors wrap
// errNotNative, ErrCorrupt or ErrEmpty; memory bounded by the input, not by sizes or channel
// counts a header declares; a WAV that opens reads to the end without error, every frame it
// declares, with samples in [-1, 1], and reads the same again after a rewind.
func FuzzWAVSource(f *testing.F) {
	for _, b := range wavSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		limit := 4<<20 + 64*uint64(len(data))
		before := allocated()
		s, info, err := newWAVSource("fuzz.wav", bytes.NewReader(data), int64(len(data)))
		if got := allocated() - before; got > limit {
			t.Fatalf("newWAVSource allocated %d bytes for %d bytes of input", got, len(data))
		}
		if err != nil {
			if !errors.Is(err, errNotNative) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("error %v is none of errNotNative, ErrCorrupt, ErrEmpty", err)
			}
			return
		}
		defer s.close()
		tr := info.Streams[0]
		if len(info.Streams) != 1 || tr.Channels != s.ch || tr.SampleRate != s.sr || info.Duration < 0 || info.Size != int64(len(data)) {
			t.Fatalf("info %+v for %d channels at %d Hz", info, s.ch, s.sr)
		}
		frame := int64(s.ch * s.width)
		if s.size <= 0 || s.size%frame != 0 || s.start+s.size > int64(len(data)) {
			t.Fatalf("data of %d bytes at %d, frames of %d, in %d bytes", s.size, s.start, frame, len(data))
		}
		read := func() ([]float32, error) {
			var all []float32
			l, r := make([]float32, 97), make([]float32, 97)
			for {
				n, err := s.read(l, r)
				if err == io.EOF {
					return all, nil
				}
				if err != nil {
					return nil, err
				}
				if n <= 0 || n > len(l) {
					t.Fatalf("read %d frames into %d", n, len(l))
				}
				for _, v := range append(l[:n:n], r[:n]...) {
					if !(v >= -1 && v <= 1) {
						t.Fatalf("sample %v", v)
					}
				}
				all = append(all, l[:n]...)
				if s.channels() == 2 {
					all = append(all, r[:n]...)
				}
			}
		}
		before = allocated()
		first, err := read()
		if err != nil {
			t.Fatalf("a WAV that opens does not read: %v", err)
		}
		if got := allocated() - before; got > limit {
			t.Fatalf("reading allocated %d bytes for %d bytes of input", got, len(data))
		}
		if want := int(s.size/frame) * s.channels(); len(first) != want {
			t.Fatalf("read %d values, want %d", len(first), want)
		}
		if err := s.rewind(); err != nil {
			t.Fatal(err)
		}
		again, err := read()
		if err != nil || !slices.EqualFunc(first, again, func(a, b float32) bool {
			return math.Float32bits(a) == math.Float32bits(b)
		}) {
			t.Fatalf("read differs after rewind (%v)", err)
		}
	})
}
