package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Sentinel errors of the WAV reader; returned errors wrap one of them and name the file.
var (
	ErrNotWAV      = errors.New("not a WAV file")
	ErrTruncated   = errors.New("truncated data chunk")
	ErrUnsupported = errors.New("unsupported WAV encoding")
	ErrNoSamples   = errors.New("no samples")
)

// WAV format tags (the fmt chunk's wFormatTag and the extensible sub-format).
const (
	formatPCM        = 0x0001
	formatFloat      = 0x0003
	formatExtensible = 0xFFFE
)

// maxFmtSize bounds the fmt chunk we are willing to read into memory.
const maxFmtSize = 1 << 12

// streamedSize is the data size that streaming writers (ffmpeg to a pipe) leave in the header.
const streamedSize = 0xFFFFFFFF

// guidSuffix is the tail of KSDATAFORMAT_SUBTYPE_PCM/IEEE_FLOAT; the first two bytes hold the tag.
var guidSuffix = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// wavFormat is the decoded fmt chunk.
type wavFormat struct {
	tag      uint16 // formatPCM or formatFloat after resolving WAVE_FORMAT_EXTENSIBLE
	channels int
	rate     int
	bits     int
}

// LoadWAV reads the WAV file at path and returns its audio as mono PCM at the file's rate.
// See ReadWAV for what is supported; errors name path.
func LoadWAV(path string) (*PCM, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio %s: %w", path, err)
	}
	defer f.Close()
	var size int64 = -1
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return decodeWAV(bufio.NewReaderSize(f, 1<<16), path, size)
}

// ReadWAV decodes a RIFF/WAVE stream: integer PCM (8-bit unsigned, 16, 24 and 32-bit signed),
// IEEE float (32 and 64-bit), plain or WAVE_FORMAT_EXTENSIBLE, with any other chunks before or
// after the data. Channels are averaged to mono; float samples are clamped to [-1, 1] (NaN
// becomes 0). A data size of 0xFFFFFFFF (a streamed file) means "until the end of the stream".
// Memory use is bounded by the bytes actually read, never by sizes declared in the header. Errors wrap ErrNotWAV,
// ErrTruncated, ErrUnsupported or ErrNoSamples, naming r's file when r has a Name method.
func ReadWAV(r io.Reader) (*PCM, error) {
	name := "stream"
	if n, ok := r.(interface{ Name() string }); ok {
		name = n.Name()
	}
	return decodeWAV(r, name, -1)
}

// decodeWAV parses the stream; size is the total stream length if known, else -1.
func decodeWAV(r io.Reader, name string, size int64) (*PCM, error) {
	fail := func(err error) (*PCM, error) { return nil, fmt.Errorf("audio %s: %w", name, err) }

	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fail(ErrNotWAV)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return fail(ErrNotWAV)
	}
	pos := int64(12)

	var (
		format *wavFormat
		data   []byte
		seen   bool // a data chunk was read
	)
	for !(format != nil && seen) {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if format == nil {
					return fail(fmt.Errorf("%w (no fmt chunk)", ErrNotWAV))
				}
				return fail(fmt.Errorf("%w (no data chunk)", ErrNoSamples))
			}
			return fail(err)
		}
		pos += 8
		id := string(ch[:4])
		n := int64(binary.LittleEndian.Uint32(ch[4:]))
		switch id {
		case "fmt ":
			if n < 16 || n > maxFmtSize {
				return fail(fmt.Errorf("%w (fmt chunk of %d bytes)", ErrNotWAV, n))
			}
			buf := make([]byte, n+n&1)
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				return fail(fmt.Errorf("%w (truncated fmt chunk)", ErrNotWAV))
			}
			if n&1 == 1 {
				io.ReadFull(r, buf[n:]) // padding byte; a missing one at EOF is harmless
			}
			pos += int64(len(buf))
			f, err := parseFmt(buf[:n])
			if err != nil {
				return fail(err)
			}
			format = f
		case "data":
			if seen {
				return fail(fmt.Errorf("%w (two data chunks)", ErrNotWAV))
			}
			var err error
			data, err = readData(r, n, size-pos)
			if err != nil {
				return fail(err)
			}
			seen = true
			if n != streamedSize && n&1 == 1 {
				io.ReadFull(r, make([]byte, 1))
			}
			pos += int64(len(data)) + n&1
		default:
			skip := n + n&1
			m, err := io.CopyN(io.Discard, r, skip)
			pos += m
			if err != nil && m < n {
				return fail(fmt.Errorf("%w (truncated %q chunk)", ErrNotWAV, id))
			}
		}
	}
	samples, err := toMono(data, format)
	if err != nil {
		return fail(err)
	}
	if len(samples) == 0 {
		return fail(ErrNoSamples)
	}
	return &PCM{Rate: format.rate, Samples: samples}, nil
}

// parseFmt decodes and validates a fmt chunk body.
func parseFmt(b []byte) (*wavFormat, error) {
	le := binary.LittleEndian
	f := &wavFormat{
		tag:      le.Uint16(b[0:]),
		channels: int(le.Uint16(b[2:])),
		rate:     int(le.Uint32(b[4:])),
		bits:     int(le.Uint16(b[14:])),
	}
	if f.tag == formatExtensible {
		if len(b) < 40 || le.Uint16(b[16:]) < 22 {
			return nil, fmt.Errorf("%w (extensible fmt chunk of %d bytes)", ErrNotWAV, len(b))
		}
		if [14]byte(b[26:40]) != guidSuffix {
			return nil, fmt.Errorf("%w (extensible sub-format %x)", ErrUnsupported, b[24:40])
		}
		f.tag = le.Uint16(b[24:])
	}
	if f.channels == 0 || f.rate == 0 {
		return nil, fmt.Errorf("%w (%d channels at %d Hz)", ErrNotWAV, f.channels, f.rate)
	}
	if f.rate > math.MaxInt32 {
		return nil, fmt.Errorf("%w (sample rate %d)", ErrNotWAV, f.rate)
	}
	switch {
	case f.tag == formatPCM && f.bits >= 1 && f.bits <= 32,
		f.tag == formatFloat && (f.bits == 32 || f.bits == 64):
		return f, nil
	case f.tag == formatPCM || f.tag == formatFloat:
		return nil, fmt.Errorf("%w (format 0x%04x, %d bits)", ErrUnsupported, f.tag, f.bits)
	default:
		return nil, fmt.Errorf("%w (format 0x%04x)", ErrUnsupported, f.tag)
	}
}

// readData reads a data chunk of declared size n. avail is the number of bytes the stream still
// holds if known (else negative); it only sizes the buffer, which otherwise grows with the bytes
// actually read.
func readData(r io.Reader, n, avail int64) ([]byte, error) {
	if n == streamedSize {
		return io.ReadAll(r)
	}
	if avail >= 0 && n > avail {
		return nil, fmt.Errorf("%w (%d bytes declared, %d in file)", ErrTruncated, n, avail)
	}
	if avail >= 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) < n {
		return nil, fmt.Errorf("%w (%d bytes declared, %d read)", ErrTruncated, n, len(buf))
	}
	return buf, nil
}

// toMono converts interleaved sample frames to mono float32, averaging channels. A trailing
// partial frame is dropped.
func toMono(data []byte, f *wavFormat) ([]float32, error) {
	width := (f.bits + 7) / 8
	frame := width * f.channels
	frames := len(data) / frame
	out := make([]float32, frames)
	var sample func(b []byte) float64
	switch {
	case f.tag == formatFloat && width == 4:
		sample = func(b []byte) float64 {
			return clampFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
		}
	case f.tag == formatFloat:
		sample = func(b []byte) float64 { return clampFloat(math.Float64frombits(binary.LittleEndian.Uint64(b))) }
	case width == 1:
		sample = func(b []byte) float64 { return (float64(b[0]) - 128) / 128 }
	case width == 2:
		sample = func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) / (1 << 15) }
	case width == 3:
		sample = func(b []byte) float64 {
			return float64(int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24)) / (1 << 31)
		}
	case width == 4:
		sample = func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) / (1 << 31) }
	default:
		return nil, fmt.Errorf("%w (%d-byte samples)", ErrUnsupported, width)
	}
	if f.channels == 1 && f.tag == formatPCM && width == 2 { // the common case, without indirection
		for i := range out {
			out[i] = float32(int16(binary.LittleEndian.Uint16(data[2*i:]))) / (1 << 15)
		}
		return out, nil
	}
	inv := 1 / float64(f.channels)
	for i := range out {
		b := data[i*frame : (i+1)*frame]
		var s float64
		for c := range f.channels {
			s += sample(b[c*width:])
		}
		out[i] = float32(s * inv)
	}
	return out, nil
}

// clampFloat maps a float sample into PCM's [-1, 1]; NaN becomes 0.
func clampFloat(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return max(-1, min(1, v))
}
