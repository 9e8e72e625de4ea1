package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/verbatimhq/verbatim/audio"
)

// errNotNative says a file is not a WAV that the audio package decodes; ffmpeg gets it instead.
var errNotNative = errors.New("not a native WAV")

// maxFmtChunk and maxChunks bound how much header we read before giving the file to ffmpeg.
const (
	maxFmtChunk = 1 << 12
	maxChunks   = 64
)

// wavSource streams the data chunk of a WAV file in blocks of frames. Each block is decoded by
// audio.ReadWAV, given a small WAV made of the file's own fmt chunk and the block's bytes, so
// the audio package remains the one place that knows sample encodings. Stereo blocks are split
// into two mono WAVs (the fmt chunk rewritten for one channel), so that phase-inverted stereo
// can be told apart.
type wavSource struct {
	path     string
	f        io.ReadSeeker // the file, from its start
	closer   io.Closer     // the file, closed by close; nil for bytes in memory
	r        *bufio.Reader
	left     int64 // data bytes not yet read
	start    int64 // offset of the data in the file
	size     int64 // data bytes in all
	ch       int   // channels in the file
	sr       int
	width    int    // bytes per sample
	fmtAll   []byte // the file's fmt chunk body
	fmtMono  []byte // the same for one channel
	raw, one []byte
	hdr      bytes.Buffer
}

// openWAV opens path as a native WAV. It returns errNotNative (wrapped) for anything the audio
// package would not decode, ErrCorrupt for a WAV whose data chunk is cut short, and ErrEmpty
// for one without samples.
func openWAV(path string) (*wavSource, *Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	s, info, err := newWAVSource(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	s.closer = f
	return s, info, nil
}

// newWAVSource reads the header of a native WAV from f, which holds size bytes and is at its
// start, and leaves f at the first sample. path names the file in errors. Its errors are
// openWAV's. It touches no file system, so that it can be fuzzed from memory.
func newWAVSource(path string, f io.ReadSeeker, size int64) (*wavSource, *Info, error) {
	br := bufio.NewReaderSize(f, 1<<16)
	var riff [12]byte
	if _, err := io.ReadFull(br, riff[:]); err != nil || string(riff[:4]) != "RIFF" || string(riff[8:]) != "WAVE" {
		return nil, nil, errNotNative
	}
	pos := int64(12)
	var fmtBody []byte
	var dataLen int64 = -1
	for range maxChunks {
		var ch [8]byte
		if _, err := io.ReadFull(br, ch[:]); err != nil {
			break
		}
		pos += 8
		id, n := string(ch[:4]), int64(binary.LittleEndian.Uint32(ch[4:]))
		if id == "data" {
			dataLen = n
			break
		}
		pad := n & 1
		if id == "fmt " {
			if n < 16 || n > maxFmtChunk {
				return nil, nil, errNotNative
			}
			fmtBody = make([]byte, n)
			if _, err := io.ReadFull(br, fmtBody); err != nil {
				return nil, nil, errNotNative
			}
			br.Discard(int(pad)) // a missing pad byte before EOF is harmless here
			pos += n + pad
			continue
		}
		if m, err := br.Discard(int(n + pad)); err != nil || int64(m) != n+pad {
			return nil, nil, errNotNative
		}
		pos += n + pad
	}
	if fmtBody == nil || dataLen < 0 {
		return nil, nil, errNotNative
	}
	le := binary.LittleEndian
	s := &wavSource{
		path: path, f: f, r: br, fmtAll: fmtBody,
		ch: int(le.Uint16(fmtBody[2:])), sr: int(le.Uint32(fmtBody[4:])),
		width: (int(le.Uint16(fmtBody[14:])) + 7) / 8,
	}
	if s.ch < 1 || s.width < 1 || s.sr < 1 || s.sr > 1<<22 {
		return nil, nil, errNotNative
	}
	// Let the audio package judge the encoding, on a data chunk without samples: it accepts the
	// fmt chunk when all it finds wrong is that there are none. (One silent frame would do as
	// well, but a frame is the header's channel count times its sample width: up to 512 MiB
	// for a 44-byte file.)
	if _, err := s.decode(fmtBody, nil); !errors.Is(err, audio.ErrNoSamples) {
		return nil, nil, fmt.Errorf("%w: %w", errNotNative, err)
	}
	avail := size - pos
	switch {
	case dataLen == 0xFFFFFFFF || dataLen == 0 && avail > 0:
		dataLen = avail // a streamed or unfinished header: the data runs to the end of the file
	case dataLen > avail:
		return nil, nil, fmt.Errorf("%w (data chunk declares %d bytes, file holds %d)", ErrCorrupt, dataLen, avail)
	}
	frame := int64(s.ch * s.width)
	if dataLen < frame {
		return nil, nil, fmt.Errorf("%w (no samples)", ErrEmpty)
	}
	s.left = dataLen / frame * frame
	s.start, s.size = pos, s.left
	if s.ch == 2 {
		s.fmtMono = append([]byte(nil), fmtBody...)
		le.PutUint16(s.fmtMono[2:], 1)
		le.PutUint32(s.fmtMono[8:], uint32(s.sr*s.width))
		le.PutUint16(s.fmtMono[12:], uint16(s.width))
	}
	frames := s.left / frame
	dur := time.Duration(float64(frames) / float64(s.sr) * float64(time.Second))
	tr := StreamInfo{
		Index: 0, Type: "audio", Codec: wavCodec(fmtBody), SampleRate: s.sr, Channels: s.ch,
		Duration: dur, HasStart: true, Default: true,
	}
	info := &Info{Format: "wav", FormatLong: "WAV / WAVE (native)", Duration: dur, Size: size, Streams: []StreamInfo{tr}}
	return s, info, nil
}

// wavCodec names the encoding as ffmpeg would ("pcm_s16le", "pcm_f32le", ...).
func wavCodec(fmtBody []byte) string {
	le := binary.LittleEndian
	tag, bits := le.Uint16(fmtBody), int(le.Uint16(fmtBody[14:]))
	if tag == 0xFFFE && len(fmtBody) >= 26 {
		tag = le.Uint16(fmtBody[24:])
	}
	width := (bits + 7) / 8 * 8
	switch {
	case tag == 3:
		return fmt.Sprintf("pcm_f%dle", width)
	case width == 8:
		return "pcm_u8"
	default:
		return fmt.Sprintf("pcm_s%dle", width)
	}
}

// channels is 2 for stereo files; others come out mono (averaged by the audio package).
func (s *wavSource) channels() int {
	if s.ch == 2 {
		return 2
	}
	return 1
}
func (s *wavSource) rate() int { return s.sr }

// decode runs audio.ReadWAV over a WAV built from a fmt chunk body and raw sample bytes.
func (s *wavSource) decode(fmtBody, data []byte) ([]float32, error) {
	s.hdr.Reset()
	le := binary.LittleEndian
	var u32 [4]byte
	put := func(v int) { le.PutUint32(u32[:], uint32(v)); s.hdr.Write(u32[:]) }
	s.hdr.WriteString("RIFF")
	put(4 + 8 + len(fmtBody) + len(fmtBody)&1 + 8 + len(data))
	s.hdr.WriteString("WAVEfmt ")
	put(len(fmtBody))
	s.hdr.Write(fmtBody)
	if len(fmtBody)&1 == 1 {
		s.hdr.WriteByte(0)
	}
	s.hdr.WriteString("data")
	put(len(data))
	pcm, err := audio.ReadWAV(io.MultiReader(bytes.NewReader(s.hdr.Bytes()), bytes.NewReader(data)))
	if err != nil {
		return nil, err
	}
	return pcm.Samples, nil
}

// read fills l (and r for stereo) with up to len(l) frames. Files with more than two channels
// are averaged to mono by the audio package.
func (s *wavSource) read(l, r []float32) (int, error) {
	frame := s.ch * s.width
	want := min(int64(len(l)*frame), s.left)
	if want == 0 {
		return 0, io.EOF
	}
	if int64(cap(s.raw)) < want {
		s.raw = make([]byte, want)
	}
	b := s.raw[:want]
	n, err := io.ReadFull(s.r, b)
	s.left -= int64(n)
	if err != nil {
		s.left = 0 // the file shrank under us
		if n < frame {
			return 0, fmt.Errorf("media %s: %w: %w", s.path, ErrCorrupt, err)
		}
	}
	b = b[:n/frame*frame]
	frames := len(b) / frame
	if s.ch != 2 {
		m, err := s.decode(s.fmtAll, b)
		if err != nil {
			return 0, fmt.Errorf("media %s: %w: %w", s.path, ErrCorrupt, err)
		}
		return copy(l, m), nil
	}
	if cap(s.one) < frames*s.width {
		s.one = make([]byte, frames*s.width)
	}
	for c, dst := range [][]float32{l, r} {
		one := s.one[:frames*s.width]
		for i := range frames {
			copy(one[i*s.width:(i+1)*s.width], b[i*frame+c*s.width:])
		}
		m, err := s.decode(s.fmtMono, one)
		if err != nil {
			return 0, fmt.Errorf("media %s: %w: %w", s.path, ErrCorrupt, err)
		}
		copy(dst, m)
	}
	return frames, nil
}

// rewind goes back to the first sample.
func (s *wavSource) rewind() error {
	if _, err := s.f.Seek(s.start, io.SeekStart); err != nil {
		return err
	}
	s.r.Reset(s.f)
	s.left = s.size
	return nil
}

func (s *wavSource) close() error {
	if s.closer == nil {
		return nil
	}
	err := s.closer.Close()
	s.closer = nil
	return err
}
