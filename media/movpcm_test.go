package media

import (
	"encoding/binary"
	"fmt"
	"math"
	"os/exec"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/durable"
)

// A QuickTime movie writer for tests: audio tracks of float32 linear PCM ('lpcm', sound
// description version 2), each with an optional language and an initial empty edit. It gives
// the AVAssetReader path (avasset_darwin.go) a container input without ffmpeg, decoding to
// exactly the samples written; TestMovPCMWithFFmpeg checks the writer itself against ffmpeg here.

// movTrack is one audio track of a test movie.
type movTrack struct {
	ch, rate int
	samples  []float32     // interleaved
	lang     string        // ISO 639-2/T ("eng"); "" for none
	delay    time.Duration // an empty edit first: the track starts this late on the timeline
}

func (t movTrack) frames() int { return len(t.samples) / t.ch }

// movPCM is a QuickTime movie of the tracks: ftyp, mdat (the tracks' samples, one chunk each),
// moov. Movie time scale 1000, each track's media time scale its sample rate.
func movPCM(tracks ...movTrack) []byte {
	be := binary.BigEndian
	box := func(typ string, parts ...[]byte) []byte {
		n := 8
		for _, p := range parts {
			n += len(p)
		}
		b := be.AppendUint32(make([]byte, 0, n), uint32(n))
		b = append(b, typ...)
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	u16 := func(v uint16) []byte { return be.AppendUint16(nil, v) }
	u32 := func(v uint32) []byte { return be.AppendUint32(nil, v) }
	full := func(flags uint32) []byte { return u32(flags) } // version 0 and flags
	matrix := func() []byte {
		var m []byte
		for _, v := range []uint32{0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000} {
			m = be.AppendUint32(m, v)
		}
		return m
	}
	ms := func(d time.Duration) uint32 { return uint32(d.Milliseconds()) }

	ftyp := box("ftyp", []byte("qt  "), u32(0x200), []byte("qt  "))
	var data []byte
	offsets := make([]int, len(tracks))
	for i, t := range tracks {
		offsets[i] = len(ftyp) + 8 + len(data)
		for _, v := range t.samples {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
		}
	}
	mdat := box("mdat", data)

	var traks [][]byte
	var movieDur uint32
	for i, t := range tracks {
		n := t.frames()
		mediaMs := uint32(math.Round(float64(n) * 1000 / float64(t.rate))) // exact for the tests' tracks
		dur := ms(t.delay) + mediaMs
		movieDur = max(movieDur, dur)
		tkhd := box("tkhd", full(7), u32(0), u32(0), u32(uint32(i+1)), u32(0), u32(dur), make([]byte, 8),
			u16(0), u16(0), u16(0x100), u16(0), matrix(), u32(0), u32(0))
		var edts []byte
		if t.delay > 0 {
			elst := box("elst", full(0), u32(2),
				u32(ms(t.delay)), u32(0xFFFFFFFF), u32(0x10000), // empty edit (media time -1)
				u32(mediaMs), u32(0), u32(0x10000))
			edts = box("edts", elst)
		}
		lang := uint16(0x7FFF) // unspecified, as ffmpeg writes it
		if len(t.lang) == 3 {
			lang = uint16(t.lang[0]-0x60)<<10 | uint16(t.lang[1]-0x60)<<5 | uint16(t.lang[2]-0x60)
		}
		mdhd := box("mdhd", full(0), u32(0), u32(0), u32(uint32(t.rate)), u32(uint32(n)), u16(lang), u16(0))
		hdlr := box("hdlr", full(0), []byte("mhlr"), []byte("soun"), make([]byte, 12), []byte("\x00"))
		smhd := box("smhd", full(0), u16(0), u16(0))
		dinf := box("dinf", box("dref", full(0), u32(1), box("url ", full(1))))
		// SoundDescriptionV2 (QuickTime File Format, "Sound Sample Description (Version 2)").
		var sd []byte
		sd = append(sd, make([]byte, 6)...) // reserved
		sd = append(sd, u16(1)...)          // data reference index
		sd = append(sd, u16(2)...)          // version
		sd = append(sd, u16(0)...)          // revision
		sd = append(sd, u32(0)...)          // vendor
		sd = append(sd, u16(3)...)          // always 3
		sd = append(sd, u16(16)...)         // always 16
		sd = append(sd, u16(0xFFFE)...)     // always -2
		sd = append(sd, u16(0)...)          // always 0
		sd = append(sd, u32(0x10000)...)    // always 65536
		sd = append(sd, u32(72)...)         // sizeOfStructOnly
		sd = be.AppendUint64(sd, math.Float64bits(float64(t.rate)))
		sd = append(sd, u32(uint32(t.ch))...)   // channels
		sd = append(sd, u32(0x7F000000)...)     // always 0x7F000000
		sd = append(sd, u32(32)...)             // bits per channel
		sd = append(sd, u32(kFloatPacked)...)   // LPCM flags: float, packed, little-endian
		sd = append(sd, u32(uint32(4*t.ch))...) // bytes per packet
		sd = append(sd, u32(1)...)              // frames per packet
		stsd := box("stsd", full(0), u32(1), box("lpcm", sd))
		stts := box("stts", full(0), u32(1), u32(uint32(n)), u32(1))
		stsc := box("stsc", full(0), u32(1), u32(1), u32(uint32(n)), u32(1))
		stsz := box("stsz", full(0), u32(uint32(4*t.ch)), u32(uint32(n)))
		stco := box("stco", full(0), u32(1), u32(uint32(offsets[i])))
		minf := box("minf", smhd, dinf, box("stbl", stsd, stts, stsc, stsz, stco))
		traks = append(traks, box("trak", tkhd, edts, box("mdia", mdhd, hdlr, minf)))
	}
	mvhd := box("mvhd", full(0), u32(0), u32(0), u32(1000), u32(movieDur), u32(0x10000), u16(0x100),
		make([]byte, 10), matrix(), make([]byte, 24), u32(uint32(len(tracks)+1)))
	moov := box("moov", append([][]byte{mvhd}, traks...)...)
	out := append(append(ftyp, mdat...), moov...)
	return out
}

// kFloatPacked is kAudioFormatFlagIsFloat | kAudioFormatFlagIsPacked.
const kFloatPacked = 1 | 8

// floatSignal is testSignal's kind of signal as float32: a tone per channel, a little noise.
func floatSignal(ch, rate, frames int, freq float64) []float32 {
	out := make([]float32, 0, ch*frames)
	seed := uint32(7)
	for i := range frames {
		for c := range ch {
			seed = seed*1664525 + 1013904223
			noise := float64(int32(seed)>>20) / (1 << 11) * 0.01
			out = append(out, float32(0.25*math.Sin(2*math.Pi*freq*float64(c+1)*float64(i)/float64(rate))+noise))
		}
	}
	return out
}

// wavFloat is a 32-bit float WAV of interleaved samples (the audio package's native path).
func wavFloat(ch, rate int, s []float32) []byte {
	var data []byte
	for _, v := range s {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	return wavBytes(fmtChunk(3, ch, rate, 32), wavChunk{id: "data", body: data})
}

// twoTrackMovie is the two-track test movie: an English stereo track at 48 kHz from the start
// (1.507 s), and a German mono track at 44.1 kHz (1.25 s), silent for its first 0.25 s and a tone
// after, that starts 0.5 s into the timeline (an empty edit): its tone starts at 0.75 s of the
// file's timeline, which is 1.75 s long.
func twoTrackMovie() ([]byte, movTrack, movTrack) {
	// Whole milliseconds of frames, so that the movie's durations (in ms) are exact.
	a := movTrack{ch: 2, rate: 48000, lang: "eng", samples: floatSignal(2, 48000, 48000*3/2+48*7, 220)}
	b := movTrack{ch: 1, rate: 44100, lang: "deu", delay: 500 * time.Millisecond}
	b.samples = make([]float32, 44100/4)
	b.samples = append(b.samples, floatSignal(1, 44100, 44100, 660)...)
	return movPCM(a, b), a, b
}

// firstSound is the time of the first sample louder than 0.05 in 16 kHz audio.
func firstSound(s []float32) time.Duration {
	for i, v := range s {
		if math.Abs(float64(v)) > 0.05 {
			return time.Duration(i) * time.Second / Rate
		}
	}
	return -1
}

// The writer's movies are what ffmpeg reads too: the first track decodes (through ffmpeg) like
// the same samples in a WAV, and the second track, chosen by index or language, sounds 0.75 s
// into the file's timeline.
func TestMovPCMWithFFmpeg(t *testing.T) {
	needTools(t, "ffmpeg", "ffprobe")
	mov, a, b := twoTrackMovie()
	path := writeTemp(t, "two.mov", mov)
	wav := writeTemp(t, "a.wav", wavFloat(a.ch, a.rate, a.samples))
	opts := Options{NoNative: true}

	info, err := Probe(t.Context(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	as := info.AudioStreams()
	if len(as) != 2 || as[0].Codec != "pcm_f32le" || as[0].Channels != 2 || as[0].SampleRate != 48000 ||
		as[1].Channels != 1 || as[1].SampleRate != 44100 || as[0].Language != "eng" || as[1].Language != "deu" {
		t.Fatalf("ffprobe sees %+v", as)
	}
	// Both tracks' samples, at their own rates, are exactly those written.
	for i, tr := range []movTrack{a, b} {
		raw, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", "file:"+path,
			"-map", fmt.Sprintf("0:a:%d", i), "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1").Output()
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < 4*len(tr.samples) {
			t.Fatalf("track %d: %d bytes from ffmpeg, want %d", i, len(raw), 4*len(tr.samples))
		}
		for j, v := range tr.samples {
			if g := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:])); g != v {
				t.Fatalf("track %d: sample %d is %g, want %g", i, j, g, v)
			}
		}
	}
	got, err := DecodeAll(t.Context(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeAll(t.Context(), wav, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.StartOffset != 0 {
		t.Errorf("first track: start offset %v, want 0", got.StartOffset)
	}
	// ffmpeg resamples with its own resampler here, the native path with ours: close, not equal.
	if d := len(got.PCM.Samples) - len(want.PCM.Samples); d < -16 || d > 16 {
		t.Errorf("first track: %d samples, the WAV %d", len(got.PCM.Samples), len(want.PCM.Samples))
	}
	for _, o := range []Options{{AudioTrack: "1", NoNative: true}, {Language: "de", NoNative: true}, {AudioTrack: "ger", NoNative: true}} {
		d, err := DecodeAll(t.Context(), path, o)
		if err != nil {
			t.Fatal(err)
		}
		if d.Track.Language != "deu" {
			t.Errorf("%+v: track %+v, want the German one", o, d.Track)
		}
		if at := d.StartOffset + firstSound(d.PCM.Samples); at < 740*time.Millisecond || at > 760*time.Millisecond {
			t.Errorf("%+v: first sound at %v (offset %v), want 0.75 s", o, at, d.StartOffset)
		}
	}
}

// writeTemp writes b to a new file named name in a fresh temp dir.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := durable.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
