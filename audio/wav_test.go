package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	gaudio "github.com/go-audio/audio"
	"github.com/go-audio/wav"
	"github.com/google/go-cmp/cmp"
)

// chunk is a RIFF chunk written verbatim by buildWAV (padded to even length unless noPad).
type chunk struct {
	id    string
	body  []byte
	size  *uint32 // declared size override
	noPad bool
}

// wavSpec describes a generated WAV file.
type wavSpec struct {
	tag        uint16 // fmt tag (formatPCM, formatFloat, or another code)
	extensible bool   // write WAVE_FORMAT_EXTENSIBLE with tag as the sub-format
	channels   int
	rate       int
	bits       int
	frames     int
	before     []chunk // chunks between fmt and data
	after      []chunk // chunks after data
	dataFirst  bool    // data chunk before fmt
	dataSize   *uint32 // declared data size override
	cut        int     // bytes cut off the end of the file
}

// value is the deterministic test signal for frame i, channel c, in [-1, 1).
func value(i, c int) float64 {
	return 0.9 * math.Sin(float64(i)*0.37+float64(c)*1.1) * math.Cos(float64(i)*0.011)
}

// encode returns the sample bytes and the exact mono float64 a correct decoder must produce.
func (s wavSpec) encode() ([]byte, []float64) {
	var buf bytes.Buffer
	want := make([]float64, s.frames)
	le := binary.LittleEndian
	for i := range s.frames {
		var sum float64
		for c := range s.channels {
			v := value(i, c)
			var dec float64
			switch {
			case s.tag == formatFloat && s.bits == 32:
				buf.Write(le.AppendUint32(nil, math.Float32bits(float32(v))))
				dec = float64(float32(v))
			case s.tag == formatFloat:
				buf.Write(le.AppendUint64(nil, math.Float64bits(v)))
				dec = v
			case s.bits == 8:
				u := uint8(math.Round(v*127) + 128)
				buf.WriteByte(u)
				dec = (float64(u) - 128) / 128
			case s.bits == 16:
				q := int16(math.Round(v * 32767))
				buf.Write(le.AppendUint16(nil, uint16(q)))
				dec = float64(q) / 32768
			case s.bits == 24:
				q := int32(math.Round(v * 8388607))
				buf.Write([]byte{byte(q), byte(q >> 8), byte(q >> 16)})
				dec = float64(q) / 8388608
			case s.bits == 32:
				q := int32(math.Round(v * 2147483647))
				buf.Write(le.AppendUint32(nil, uint32(q)))
				dec = float64(q) / 2147483648
			}
			sum += dec
		}
		want[i] = sum / float64(s.channels)
	}
	return buf.Bytes(), want
}

func appendChunk(b []byte, c chunk) []byte {
	b = append(b, c.id...)
	size := uint32(len(c.body))
	if c.size != nil {
		size = *c.size
	}
	b = binary.LittleEndian.AppendUint32(b, size)
	b = append(b, c.body...)
	if len(c.body)%2 == 1 && !c.noPad {
		b = append(b, 0)
	}
	return b
}

// build writes the file bytes and returns the expected mono samples.
func (s wavSpec) build() ([]byte, []float64) {
	le := binary.LittleEndian
	width := (s.bits + 7) / 8
	tag := s.tag
	if s.extensible {
		tag = formatExtensible
	}
	f := le.AppendUint16(nil, tag)
	f = le.AppendUint16(f, uint16(s.channels))
	f = le.AppendUint32(f, uint32(s.rate))
	f = le.AppendUint32(f, uint32(s.rate*s.channels*width))
	f = le.AppendUint16(f, uint16(s.channels*width))
	f = le.AppendUint16(f, uint16(s.bits))
	if s.extensible {
		f = le.AppendUint16(f, 22)
		f = le.AppendUint16(f, uint16(s.bits))
		f = le.AppendUint32(f, 0)
		f = le.AppendUint16(f, s.tag)
		f = append(f, guidSuffix[:]...)
	}
	samples, want := s.encode()
	data := chunk{id: "data", body: samples, size: s.dataSize}
	b := []byte("RIFF\x00\x00\x00\x00WAVE")
	if s.dataFirst {
		b = appendChunk(b, data)
	}
	b = appendChunk(b, chunk{id: "fmt ", body: f})
	for _, c := range s.before {
		b = appendChunk(b, c)
	}
	if !s.dataFirst {
		b = appendChunk(b, data)
	}
	for _, c := range s.after {
		b = appendChunk(b, c)
	}
	le.PutUint32(b[4:], uint32(len(b)-8))
	return b[:len(b)-s.cut], want
}

func u32(v uint32) *uint32 { return &v }

var (
	list = chunk{id: "LIST", body: []byte("INFOISFT\x0e\x00\x00\x00Lavf58.76.100\x00")}
	fact = chunk{id: "fact", body: []byte{0x10, 0, 0, 0}}
	odd  = chunk{id: "junk", body: []byte{1, 2, 3}}
)

var validCases = []struct {
	name string
	spec wavSpec
}{
	{"pcm16 mono", wavSpec{tag: formatPCM, channels: 1, rate: 16000, bits: 16, frames: 300}},
	{"pcm16 stereo", wavSpec{tag: formatPCM, channels: 2, rate: 44100, bits: 16, frames: 300}},
	{"pcm8 unsigned", wavSpec{tag: formatPCM, channels: 1, rate: 8000, bits: 8, frames: 301}},
	{"pcm8 stereo", wavSpec{tag: formatPCM, channels: 2, rate: 8000, bits: 8, frames: 77}},
	{"pcm24 stereo", wavSpec{tag: formatPCM, channels: 2, rate: 48000, bits: 24, frames: 200}},
	{"pcm24 mono odd size", wavSpec{tag: formatPCM, channels: 1, rate: 48000, bits: 24, frames: 33, after: []chunk{list}}},
	{"pcm32", wavSpec{tag: formatPCM, channels: 1, rate: 96000, bits: 32, frames: 100}},
	{"float32", wavSpec{tag: formatFloat, channels: 1, rate: 22050, bits: 32, frames: 100, before: []chunk{fact}}},
	{"float64 stereo", wavSpec{tag: formatFloat, channels: 2, rate: 24000, bits: 64, frames: 100, before: []chunk{fact}}},
	{"extensible pcm24 5.1", wavSpec{tag: formatPCM, extensible: true, channels: 6, rate: 48000, bits: 24, frames: 50}},
	{"extensible pcm16", wavSpec{tag: formatPCM, extensible: true, channels: 2, rate: 16000, bits: 16, frames: 50}},
	{"extensible float32", wavSpec{tag: formatFloat, extensible: true, channels: 2, rate: 32000, bits: 32, frames: 50}},
	{"chunks around data", wavSpec{tag: formatPCM, channels: 1, rate: 16000, bits: 16, frames: 64,
		before: []chunk{list, odd, fact}, after: []chunk{odd, list}}},
	{"odd data then chunk", wavSpec{tag: formatPCM, channels: 1, rate: 11025, bits: 8, frames: 99, after: []chunk{odd, list}}},
	{"data before fmt", wavSpec{tag: formatPCM, channels: 1, rate: 16000, bits: 16, frames: 40, dataFirst: true}},
	{"streamed size", wavSpec{tag: formatPCM, channels: 1, rate: 16000, bits: 16, frames: 40, dataSize: u32(0xFFFFFFFF)}},
	{"partial last frame", wavSpec{tag: formatPCM, channels: 2, rate: 16000, bits: 16, frames: 40, after: []chunk{{id: "xtra", body: nil}}, dataSize: u32(40*4 - 2)}},
}

func TestReadWAV(t *testing.T) {
	for _, c := range validCases {
		t.Run(c.name, func(t *testing.T) {
			b, want := c.spec.build()
			if c.name == "partial last frame" {
				want = want[:39] // the declared size ends mid-frame; the rest reads as a chunk
			}
			check := func(t *testing.T, p *PCM, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				if p.Rate != c.spec.rate {
					t.Errorf("rate %d, want %d", p.Rate, c.spec.rate)
				}
				got := make([]float64, len(p.Samples))
				for i, s := range p.Samples {
					got[i] = float64(s)
				}
				if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-7 })); diff != "" {
					t.Errorf("samples (-want +got):\n%s", diff)
				}
			}
			t.Run("reader", func(t *testing.T) {
				p, err := ReadWAV(bytes.NewReader(b))
				check(t, p, err)
			})
			t.Run("file", func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "x.wav")
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				p, err := LoadWAV(path)
				check(t, p, err)
			})
		})
	}
}

func TestReadWAVErrors(t *testing.T) {
	pcm := wavSpec{tag: formatPCM, channels: 1, rate: 16000, bits: 16, frames: 100}
	with := func(f func(*wavSpec)) []byte {
		s := pcm
		f(&s)
		b, _ := s.build()
		return b
	}
	cases := []struct {
		name string
		file []byte
		want error
		msg  string // suffix of the message after "audio NAME: "
	}{
		{"empty", nil, ErrNotWAV, "not a WAV file"},
		{"short", []byte("RIFF"), ErrNotWAV, "not a WAV file"},
		{"not wave", []byte("RIFF\x04\x00\x00\x00AVI LIST"), ErrNotWAV, "not a WAV file"},
		{"mp3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb"), ErrNotWAV, "not a WAV file"},
		{"truncated data", with(func(s *wavSpec) { s.cut = 7 }), ErrTruncated, ""},
		{"huge data size", with(func(s *wavSpec) { s.dataSize = u32(0xFFFFFFF0) }), ErrTruncated, ""},
		{"mpeg layer 3", with(func(s *wavSpec) { s.tag = 0x0055 }), ErrUnsupported, "unsupported WAV encoding (format 0x0055)"},
		{"float16", with(func(s *wavSpec) { s.tag, s.bits = formatFloat, 16 }), ErrUnsupported, "unsupported WAV encoding (format 0x0003, 16 bits)"},
		{"extensible unknown", with(func(s *wavSpec) { s.tag, s.extensible = 0x0006, true }), ErrUnsupported, ""},
		{"zero channels", with(func(s *wavSpec) { s.channels = 0 }), ErrNotWAV, ""},
		{"empty data", with(func(s *wavSpec) { s.frames = 0 }), ErrNoSamples, "no samples"},
		{"header only", with(func(s *wavSpec) { s.dataFirst, s.cut = true, 100*2+8+24 }), ErrNotWAV, "not a WAV file (no fmt chunk)"},
		{"no data after fmt", with(func(s *wavSpec) { s.cut = 100*2 + 8 }), ErrNoSamples, ""},
		{"huge fmt", append([]byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\x7f"), make([]byte, 64)...), ErrNotWAV, ""},
		{"huge chunk before data", append(with(func(s *wavSpec) { s.frames = 0 })[:36], "LIST\xff\xff\xff\x7fxx"...), ErrNotWAV, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.wav")
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadWAV(path)
			if !errors.Is(err, c.want) {
				t.Fatalf("LoadWAV: %v, want %v", err, c.want)
			}
			if prefix := "audio " + path + ": "; !strings.HasPrefix(err.Error(), prefix) || !strings.HasPrefix(err.Error()[len(prefix):], c.msg) {
				t.Errorf("LoadWAV message %q, want %q", err, prefix+c.msg+"...")
			}
			if _, err := ReadWAV(bytes.NewReader(c.file)); !errors.Is(err, c.want) {
				t.Errorf("ReadWAV: %v, want %v", err, c.want)
			}
		})
	}
	if _, err := LoadWAV(filepath.Join(t.TempDir(), "missing.wav")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.wav") {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadWAVBoundedAllocation: sizes declared in headers must not drive allocation.
func TestReadWAVBoundedAllocation(t *testing.T) {
	s := wavSpec{tag: formatPCM, channels: 1, rate: 16000, bits: 16, frames: 1000, dataSize: u32(0xFFFFFFF0)}
	b, _ := s.build()
	path := filepath.Join(t.TempDir(), "big.wav")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		read func() error
	}{
		{"reader", func() error { _, err := ReadWAV(bytes.NewReader(b)); return err }},
		{"file", func() error { _, err := LoadWAV(path); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := c.read()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("err %v, want ErrTruncated", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("allocated %d bytes for a %d-byte file", n, len(b))
			}
		})
	}
}

func TestLoadWAVJFK(t *testing.T) {
	p, err := LoadWAV("testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	if p.Rate != 16000 || len(p.Samples) != 176000 || p.Duration() != 11 {
		t.Fatalf("rate %d, %d samples, %g s; want 16000, 176000, 11 s", p.Rate, len(p.Samples), p.Duration())
	}
	// Independent decode with go-audio/wav (correct for plain 16-bit PCM).
	f, err := os.Open("testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := wav.NewDecoder(f).FullPCMBuffer()
	if err != nil {
		t.Fatal(err)
	}
	if len(buf.Data) != len(p.Samples) {
		t.Fatalf("go-audio/wav: %d samples, we read %d", len(buf.Data), len(p.Samples))
	}
	for i, v := range buf.Data {
		if p.Samples[i] != float32(v)/32768 {
			t.Fatalf("sample %d: %g, go-audio/wav %d/32768", i, p.Samples[i], v)
		}
	}
}

// TestReadWAVGoAudioEncoder reads files written by go-audio/wav's encoder.
func TestReadWAVGoAudioEncoder(t *testing.T) {
	for _, bits := range []int{16, 24, 32} {
		path := filepath.Join(t.TempDir(), "enc.wav")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		enc := wav.NewEncoder(f, 22050, bits, 2, 1)
		data := make([]int, 2*500)
		scale := float64(int64(1)<<(bits-1) - 1)
		for i := range data {
			data[i] = int(math.Round(value(i/2, i%2) * scale))
		}
		if err := enc.Write(&gaudio.IntBuffer{Data: data, Format: &gaudio.Format{NumChannels: 2, SampleRate: 22050}, SourceBitDepth: bits}); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		p, err := LoadWAV(path)
		if err != nil {
			t.Fatalf("%d bits: %v", bits, err)
		}
		if p.Rate != 22050 || len(p.Samples) != 500 {
			t.Fatalf("%d bits: rate %d, %d samples", bits, p.Rate, len(p.Samples))
		}
		full := float64(int64(1) << (bits - 1))
		for i, s := range p.Samples {
			want := (float64(data[2*i]) + float64(data[2*i+1])) / 2 / full
			if math.Abs(float64(s)-want) > 1e-7 {
				t.Fatalf("%d bits, sample %d: %g, want %g", bits, i, s, want)
			}
		}
	}
}

func FuzzReadWAV(f *testing.F) {
	for _, c := range validCases {
		b, _ := c.spec.build()
		f.Add(b)
	}
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			if p != nil {
				t.Fatal("non-nil PCM with an error")
			}
			return
		}
		if p.Rate <= 0 || len(p.Samples) == 0 || len(p.Samples) > len(b) {
			t.Fatalf("rate %d, %d samples from %d bytes", p.Rate, len(p.Samples), len(b))
		}
		for i, s := range p.Samples {
			if !(s >= -1 && s <= 1) {
				t.Fatalf("sample %d is %v", i, s)
			}
		}
	})
}

func TestReadWAVClampsFloat(t *testing.T) {
	le := binary.LittleEndian
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x03\x00\x01\x00\x80\x3e\x00\x00\x00\xfa\x00\x00\x04\x00\x20\x00data\x10\x00\x00\x00")
	for _, v := range []float32{2, float32(math.NaN()), float32(math.Inf(-1)), -0.5} {
		b = le.AppendUint32(b, math.Float32bits(v))
	}
	p, err := ReadWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float32{1, 0, -1, -0.5}, p.Samples); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
}

func BenchmarkLoadWAV(b *testing.B) {
	b.SetBytes(352078)
	for b.Loop() {
		if _, err := LoadWAV("testdata/jfk.wav"); err != nil {
			b.Fatal(err)
		}
	}
}
