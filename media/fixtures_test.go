package media

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Test media is generated on first use by ffmpeg, sox and espeak-ng into one directory per test
// binary, so each file is made once however many tests read it.
var fixtureDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "media-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tone is the test signal: lavfi's sine source, 440 Hz at amplitude 1/8, 3 s long.
const (
	toneFreq = 440.0
	toneAmp  = 0.125
	toneSec  = 3.0
)

// toneSrc is the lavfi input of the test tone at rate Hz.
func toneSrc(rate int) []string {
	return []string{"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%g:sample_rate=%d:duration=%g", toneFreq, rate, toneSec)}
}

// videoSrc is a tiny black picture, cheap to encode.
func videoSrc(sec float64) []string {
	return []string{"-f", "lavfi", "-i", fmt.Sprintf("color=c=black:s=32x32:r=10:d=%g", sec)}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ffmpegGen makes a generator running ffmpeg with args and the output path last.
func ffmpegGen(args ...string) func(string) error {
	return func(path string) error {
		return runTool("ffmpeg", cat([]string{"-nostdin", "-y", "-v", "error"}, args, []string{"file:" + path})...)
	}
}

func runTool(name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

const invertedFilter = "sine=frequency=440:sample_rate=48000:duration=3,asplit[a][b];[b]volume=-1[c];[a][c]join=inputs=2:channel_layout=stereo"

// burstExpr is silence with a 1 kHz burst from 1.0 to 1.5 s (of the audio stream's own time).
const burstExpr = "aevalsrc=exprs='if(between(t,1,1.5),0.5*sin(2*PI*1000*t),0)':d=4:s=44100"

// generators make each fixture by file name (set in init: some derive from other fixtures).
var generators map[string]func(path string) error

func init() {
	generators = map[string]func(path string) error{
		"u8.wav":     ffmpegGen(cat(toneSrc(22050), []string{"-c:a", "pcm_u8"})...),
		"s16.wav":    ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "pcm_s16le"})...),
		"s24.wav":    ffmpegGen(cat(toneSrc(48000), []string{"-c:a", "pcm_s24le"})...),
		"s32.wav":    ffmpegGen(cat(toneSrc(32000), []string{"-c:a", "pcm_s32le"})...),
		"f32.wav":    ffmpegGen(cat(toneSrc(16000), []string{"-c:a", "pcm_f32le"})...),
		"f64.wav":    ffmpegGen(cat(toneSrc(8000), []string{"-c:a", "pcm_f64le"})...),
		"mulaw.wav":  ffmpegGen(cat(toneSrc(8000), []string{"-c:a", "pcm_mulaw"})...), // not native: ffmpeg decodes it
		"51ext.wav":  ffmpegGen(cat(toneSrc(48000), []string{"-af", "pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0", "-c:a", "pcm_s16le"})...),
		"chunks.wav": chunksWAV,
		"tone.mp3":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "libmp3lame", "-b:a", "128k"})...),
		"tone.m4a":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "aac"})...), // moov at the end
		"fast.m4a":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "aac", "-movflags", "+faststart"})...),
		"alac.m4a":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "alac"})...),
		"tone.flac":  ffmpegGen(cat(toneSrc(96000), []string{"-c:a", "flac"})...),
		"tone.ogg":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "libvorbis"})...),
		"tone.opus":  ffmpegGen(cat(toneSrc(48000), []string{"-c:a", "libopus"})...),
		"audio.webm": ffmpegGen(cat(toneSrc(48000), []string{"-c:a", "libopus"})...),
		"tone.caf":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "pcm_s16be"})...),
		"tone.aiff":  ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "pcm_s16be"})...),
		"tone.wma":   ffmpegGen(cat(toneSrc(44100), []string{"-c:a", "wmav2", "-b:a", "128k"})...),
		"tone.amr":   amrGen,
		"video.mp4":  ffmpegGen(cat(videoSrc(toneSec), toneSrc(44100), []string{"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"})...),
		"video.mov":  ffmpegGen(cat(videoSrc(toneSec), toneSrc(48000), []string{"-c:v", "mpeg4", "-c:a", "pcm_s16le", "-shortest"})...),
		"video.mkv":  ffmpegGen(cat(videoSrc(toneSec), toneSrc(48000), []string{"-c:v", "mpeg4", "-c:a", "flac", "-shortest"})...),
		"video.webm": ffmpegGen(cat(videoSrc(toneSec), toneSrc(48000), []string{"-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libvorbis", "-shortest"})...),
		"video.avi":  ffmpegGen(cat(videoSrc(toneSec), toneSrc(44100), []string{"-c:v", "mpeg4", "-c:a", "libmp3lame", "-shortest"})...),
		"silent.mp4": ffmpegGen(cat(videoSrc(2), []string{"-c:v", "mpeg4"})...),
		"pattern.mp4": ffmpegGen("-f", "lavfi", "-i", "testsrc=s=640x360:r=10:d=4", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4",
			"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"),
		"invert.flac": ffmpegGen("-filter_complex", invertedFilter, "-c:a", "flac"),
		"invert.wav":  ffmpegGen("-filter_complex", invertedFilter, "-c:a", "pcm_s16le"),
		"offset.mp4": ffmpegGen(cat(videoSrc(6), []string{"-itsoffset", "2.5", "-f", "lavfi", "-i", burstExpr,
			"-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"})...),
		"offset.mkv": ffmpegGen(cat(videoSrc(6), []string{"-itsoffset", "2.5", "-f", "lavfi", "-i", burstExpr,
			"-map", "0", "-map", "1", "-c:v", "mpeg4", "-c:a", "libopus"})...),
		"langs.mkv": ffmpegGen(cat(videoSrc(toneSec),
			[]string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3"},
			[]string{"-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=3"},
			[]string{"-map", "0", "-map", "1", "-map", "2", "-c:v", "mpeg4", "-c:a", "libvorbis",
				"-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=ger"})...),
		"speech.wav":      speechGen,
		"speech.mp3":      fromFixture("speech.wav", "-c:a", "libmp3lame"),
		"trunc.mp4":       truncGen("video.mp4", 0.6),
		"trunc.wav":       truncGen("s16.wav", 0.6),
		"truncfast.m4a":   truncGen("long-fast.m4a", 0.5),
		"long-fast.m4a":   ffmpegGen("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=20", "-c:a", "aac", "-movflags", "+faststart"),
		"noduration.flac": noDurationFLAC,
		"bench.mp3":       ffmpegGen("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=120", "-c:a", "libmp3lame"),
		"bench.wav":       ffmpegGen("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=120", "-ac", "2", "-c:a", "pcm_s16le"),
		"oddcodec.wav":    oddCodecWAV,
		"alias.flac":      ffmpegGen(cat(aliasSrc(), []string{"-c:a", "flac"})...),
		"alias.wav":       ffmpegGen(cat(aliasSrc(), []string{"-c:a", "pcm_f32le"})...),
		"empty.mp3":       func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"text.mp3":        func(p string) error { return os.WriteFile(p, []byte("this is not audio at all\n"), 0o644) },
	}
}

// chunksWAV writes a 16-bit stereo WAV (the tone in both channels) with chunks before and
// after the data chunk, as recorders and editors leave them.
func chunksWAV(path string) error {
	tmp := path + ".tmp.wav"
	if err := ffmpegGen(cat(toneSrc(44100), []string{"-ac", "2", "-c:a", "pcm_s16le", "-metadata", "title=chunks"})...)(tmp); err != nil {
		return err
	}
	defer os.Remove(tmp)
	b, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	// Insert a "junk" chunk after the RIFF header and append an odd-sized "note" chunk.
	junk := append([]byte("JUNK\x1c\x00\x00\x00"), make([]byte, 28)...)
	note := []byte("note\x03\x00\x00\x00abc\x00")
	out := append(append(append([]byte(nil), b[:12]...), junk...), b[12:]...)
	out = append(out, note...)
	size := uint32(len(out) - 8)
	out[4], out[5], out[6], out[7] = byte(size), byte(size>>8), byte(size>>16), byte(size>>24)
	return os.WriteFile(path, out, 0o644)
}

// oddCodecWAV is a WAV whose format tag no decoder knows.
func oddCodecWAV(path string) error {
	src, err := makeFixture("s16.wav")
	if err != nil {
		return err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte("fmt "))
	b[i+8], b[i+9] = 0x77, 0x77
	return os.WriteFile(path, b, 0o644)
}

// aliasSrc is 48 kHz audio with tones only above 8 kHz, where 16 kHz output cannot represent
// them: a resampler must remove them, not fold them down (12 kHz would alias to 4 kHz).
func aliasSrc() []string {
	return []string{"-f", "lavfi", "-i",
		"aevalsrc=exprs='0.3*sin(2*PI*9000*t)+0.3*sin(2*PI*12000*t)+0.3*sin(2*PI*20000*t)':s=48000:d=2"}
}

// amrGen uses sox: Debian's ffmpeg has no AMR-NB encoder, while sox links libopencore-amrnb.
func amrGen(path string) error {
	return runTool("sox", "-n", "-r", "8000", "-c", "1", "-t", "amr-nb", path, "synth", fmt.Sprint(toneSec), "sine", fmt.Sprint(toneFreq), "vol", fmt.Sprint(toneAmp))
}

func speechGen(path string) error {
	return runTool("espeak-ng", "-w", path, "The quick brown fox jumps over the lazy dog. Verbatim reads every file.")
}

// fromFixture re-encodes another fixture.
func fromFixture(src string, args ...string) func(string) error {
	return func(path string) error {
		in, err := makeFixture(src)
		if err != nil {
			return err
		}
		return ffmpegGen(cat([]string{"-i", "file:" + in}, args)...)(path)
	}
}

// truncGen keeps the first frac of another fixture's bytes.
func truncGen(src string, frac float64) func(string) error {
	return func(path string) error {
		in, err := makeFixture(src)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		return os.WriteFile(path, b[:int(float64(len(b))*frac)], 0o644)
	}
}

// noDurationFLAC writes FLAC through a pipe, so the muxer cannot go back to store the sample
// count: only counting decoded samples can tell how long it is.
func noDurationFLAC(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("ffmpeg", cat([]string{"-nostdin", "-v", "error"}, toneSrc(16000),
		[]string{"-c:a", "flac", "-f", "flac", "pipe:1"})...)
	cmd.Stdout = f
	return cmd.Run()
}

var (
	fixtureMu   sync.Mutex
	fixtureOnce = map[string]func() (string, error){}
)

// makeFixture generates the named fixture once per test binary and returns its path.
func makeFixture(name string) (string, error) {
	fixtureMu.Lock()
	f, ok := fixtureOnce[name]
	if !ok {
		gen := generators[name]
		if gen == nil {
			fixtureMu.Unlock()
			return "", fmt.Errorf("no generator for %s", name)
		}
		f = sync.OnceValues(func() (string, error) {
			p := filepath.Join(fixtureDir, name)
			return p, gen(p)
		})
		fixtureOnce[name] = f
	}
	fixtureMu.Unlock()
	return f()
}

// needTools fails the test when a program it needs is not installed.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%v (make test installs it: scripts/deps.sh)", err)
		}
	}
}

// fixture returns the path of a generated test file.
func fixture(t testing.TB, name string) string {
	t.Helper()
	needTools(t, "ffmpeg", "ffprobe")
	switch name {
	case "tone.amr":
		needTools(t, "sox")
	case "speech.wav", "speech.mp3":
		needTools(t, "espeak-ng")
	}
	p, err := makeFixture(name)
	if err != nil {
		if name == "tone.amr" {
			t.Fatalf("generate %s: sox cannot write AMR-NB: %v (make test installs sox with its AMR-NB format: scripts/deps.sh)", name, err)
		}
		t.Fatalf("generate %s: %v", name, err)
	}
	return p
}

// copyAs copies a fixture to a new name inside a fresh temp dir.
func copyAs(t *testing.T, src, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// zeroCrossFreq estimates the frequency of a tone from its upward zero crossings.
func zeroCrossFreq(s []float32, rate int) float64 {
	first, last, n := -1, -1, 0
	for i := 1; i < len(s); i++ {
		if s[i-1] < 0 && s[i] >= 0 {
			if first < 0 {
				first = i
			} else {
				n++
			}
			last = i
		}
	}
	if n == 0 {
		return 0
	}
	return float64(n) * float64(rate) / float64(last-first)
}

func rms(s []float32) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(1, len(s))))
}

// toneFit returns the amplitude of the least-squares sinusoid at f in s and the RMS of the
// remainder: a clean tone has a small remainder.
func toneFit(s []float32, rate int, f float64) (amp, residual float64) {
	var ss, cc, sc, ys, yc float64
	for i, y := range s {
		sn, cs := math.Sincos(2 * math.Pi * f * float64(i) / float64(rate))
		ss += sn * sn
		cc += cs * cs
		sc += sn * cs
		ys += float64(y) * sn
		yc += float64(y) * cs
	}
	det := ss*cc - sc*sc
	a, b := (ys*cc-yc*sc)/det, (yc*ss-ys*sc)/det
	var r float64
	for i, y := range s {
		sn, cs := math.Sincos(2 * math.Pi * f * float64(i) / float64(rate))
		d := float64(y) - a*sn - b*cs
		r += d * d
	}
	return math.Hypot(a, b), math.Sqrt(r / float64(len(s)))
}
