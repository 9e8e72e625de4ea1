package media

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The AudioToolbox path (apple_darwin.go) against the audio package's WAV reader. Written
// without a Mac: compiled for darwin, never run where it was written.

// needToolbox skips the test when AudioToolbox cannot be loaded.
func needToolbox(t *testing.T) {
	t.Helper()
	if _, err := loadToolbox(); err != nil {
		t.Skipf("AudioToolbox cannot be loaded: %v", err)
	}
}

// testSignal is frames of ch channels, interleaved, as 16-bit values: a different tone in
// each channel, with a little deterministic noise, at about a quarter of full scale.
func testSignal(ch, rate, frames int) []int16 {
	out := make([]int16, 0, ch*frames)
	seed := uint32(1)
	for i := range frames {
		for c := range ch {
			seed = seed*1664525 + 1013904223
			noise := float64(int32(seed)>>20) / (1 << 11) * 0.01
			v := 0.25*math.Sin(2*math.Pi*float64(220*(c+1))*float64(i)/float64(rate)) + noise
			out = append(out, int16(math.Round(v*(1<<15))))
		}
	}
	return out
}

// wavOf is a WAV file of the samples: 16-bit PCM, or 32-bit float when float32 is set, and
// WAVE_FORMAT_EXTENSIBLE (5.1) for six channels.
func wavOf(ch, rate int, s []int16, float32le bool) []byte {
	le := binary.LittleEndian
	var data []byte
	for _, v := range s {
		if float32le {
			data = le.AppendUint32(data, math.Float32bits(float32(v)/(1<<15)))
		} else {
			data = le.AppendUint16(data, uint16(v))
		}
	}
	f := fmtChunk(1, ch, rate, 16)
	switch {
	case float32le:
		f = fmtChunk(3, ch, rate, 32)
	case ch == 6:
		f = fmtChunk(0xfffe, ch, rate, 16, extensible(16, 1)...)
	}
	return wavBytes(f, wavChunk{id: "data", body: data})
}

// aiffOf is an AIFF file of the samples: 16-bit big-endian PCM, which the audio package does
// not read, so Open must take the AudioToolbox path for it.
func aiffOf(ch, rate int, s []int16) []byte {
	be := binary.BigEndian
	chunk := func(b []byte, id string, body []byte) []byte {
		b = be.AppendUint32(append(b, id...), uint32(len(body)))
		b = append(b, body...)
		if len(body)%2 == 1 {
			b = append(b, 0)
		}
		return b
	}
	comm := be.AppendUint16(nil, uint16(ch))
	comm = be.AppendUint32(comm, uint32(len(s)/ch))
	comm = be.AppendUint16(comm, 16)
	// The rate as an 80-bit IEEE 754 extended float: a biased exponent, then a 64-bit
	// mantissa with an explicit leading 1.
	e := bits.Len(uint(rate)) - 1
	comm = be.AppendUint16(comm, uint16(16383+e))
	comm = be.AppendUint64(comm, uint64(rate)<<(63-e))
	ssnd := make([]byte, 8) // offset and block size, both 0
	for _, v := range s {
		ssnd = be.AppendUint16(ssnd, uint16(v))
	}
	body := chunk(chunk([]byte("AIFF"), "COMM", comm), "SSND", ssnd)
	return append(be.AppendUint32([]byte("FORM"), uint32(len(body))), body...)
}

// drain reads a source to its end: the left (or mono) and right planes.
func drain(t *testing.T, src source) (l, r []float32) {
	t.Helper()
	bl, br := make([]float32, 1000), make([]float32, 1000) // not a divisor of the lengths
	for {
		n, err := src.read(bl, br)
		l = append(l, bl[:n]...)
		if src.channels() == 2 {
			r = append(r, br[:n]...)
		}
		if errors.Is(err, io.EOF) {
			return l, r
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func closeEnough(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
			t.Fatalf("%s: sample %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}

// Each WAV decodes through ExtAudioFile to what the audio package reads, plane by plane.
func TestAppleMatchesWAVReader(t *testing.T) {
	needToolbox(t)
	for _, c := range []struct {
		name      string
		ch, rate  int
		float32le bool
		wantCh    int
	}{
		{"mono s16 44100", 1, 44100, false, 1},
		{"stereo s16 48000", 2, 48000, false, 2},
		{"stereo f32 16000", 2, 16000, true, 2},
		{"5.1 s16 48000", 6, 48000, false, 1}, // averaged to mono by both
	} {
		t.Run(c.name, func(t *testing.T) {
			frames := c.rate*3/2 + 17
			path := writeFile(t, "signal.wav", wavOf(c.ch, c.rate, testSignal(c.ch, c.rate, frames), c.float32le))

			ref, refInfo, err := openWAV(path)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.close()
			src, info, err := openApple(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.close()

			if src.channels() != c.wantCh || src.rate() != c.rate {
				t.Fatalf("%d channels at %d Hz, want %d at %d", src.channels(), src.rate(), c.wantCh, c.rate)
			}
			tr := info.Streams[0]
			if tr.Channels != c.ch || tr.SampleRate != c.rate || tr.Codec != refInfo.Streams[0].Codec {
				t.Errorf("stream %+v, want %d channels at %d Hz, codec %q", tr, c.ch, c.rate, refInfo.Streams[0].Codec)
			}
			if d := info.Duration - refInfo.Duration; d < -1e6 || d > 1e6 {
				t.Errorf("duration %v, want %v", info.Duration, refInfo.Duration)
			}
			l, r := drain(t, src)
			wl, wr := drain(t, ref)
			closeEnough(t, "left", l, wl)
			closeEnough(t, "right", r, wr)
			// EOF again, then close twice.
			if n, err := src.read(make([]float32, 10), make([]float32, 10)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("read after the end = %d, %v", n, err)
			}
			if err := src.close(); err != nil {
				t.Error(err)
			}
			if err := src.close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// Open takes the AudioToolbox path for an AIFF without ffmpeg, and the 16 kHz mono it returns
// matches that of the same samples in a WAV (the audio package's path).
func TestAppleOpenAIFF(t *testing.T) {
	needToolbox(t)
	noFFmpeg := Options{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"}
	const rate, frames = 44100, 44100*2 + 5
	s := testSignal(2, rate, frames)
	aiff := writeFile(t, "signal.aiff", aiffOf(2, rate, s))
	wav := writeFile(t, "signal.wav", wavOf(2, rate, s, false))

	got, err := DecodeAll(t.Context(), aiff, noFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeAll(t.Context(), wav, noFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Native || got.Track.Codec != "pcm_s16be" || got.Track.Channels != 2 || got.Track.SampleRate != rate {
		t.Errorf("native %v, track %+v; want native, pcm_s16be, 2 channels at %d Hz", got.Native, got.Track, rate)
	}
	if got.Info.Format != "aiff" {
		t.Logf("format %q (%s)", got.Info.Format, got.Info.FormatLong)
	}
	if got.Downmix != want.Downmix {
		t.Errorf("downmix %v, want %v", got.Downmix, want.Downmix)
	}
	closeEnough(t, "16 kHz mono", got.PCM.Samples, want.PCM.Samples)

	// Another track than the first is ffmpeg's: without it, ffmpeg's error.
	_, err = DecodeAll(t.Context(), aiff, Options{AudioTrack: "1", FFmpeg: noFFmpeg.FFmpeg, FFprobe: noFFmpeg.FFprobe})
	if !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("AudioTrack 1: err = %v, want ErrFFmpegMissing", err)
	}
	// NoNative: ffmpeg's too.
	_, err = DecodeAll(t.Context(), aiff, Options{NoNative: true, FFmpeg: noFFmpeg.FFmpeg, FFprobe: noFFmpeg.FFprobe})
	if !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("NoNative: err = %v, want ErrFFmpegMissing", err)
	}
}

// A file AudioToolbox refuses, with ffmpeg missing, gives an error that names the file, says
// why AudioToolbox refused it and that ffmpeg is missing.
func TestAppleRefusedWithoutFFmpeg(t *testing.T) {
	needToolbox(t)
	path := writeFile(t, "text.mp3", []byte(strings.Repeat("this is not audio at all\n", 40)))
	_, err := DecodeAll(t.Context(), path, Options{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"})
	if !errors.Is(err, ErrFFmpegMissing) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupported)) {
		t.Fatalf("err = %v, want ErrCorrupt or ErrUnsupported, and ErrFFmpegMissing", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "AudioToolbox") {
		t.Errorf("error %q does not name the file and AudioToolbox", err)
	}
	t.Log(err)
}

// Formats that are not ExtAudioFile's are left to ffmpeg without loading anything.
func TestAppleLeavesVideoToFFmpeg(t *testing.T) {
	for _, name := range []string{"video.mp4", "movie.mov", "film.mkv", "noext"} {
		if _, _, err := openApple(filepath.Join(t.TempDir(), name)); !errors.Is(err, errNotNative) {
			t.Errorf("%s: err = %v, want errNotNative", name, err)
		}
	}
}
