package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/audio"
)

// checkTone asserts that d holds the 3 s test tone: duration within 50 ms, frequency within
// 1%, level within 30% of the source's, and (for codecs that keep it) a clean sinusoid.
func checkTone(t *testing.T, d *Decoded, freq, amp float64, lossy bool, ampTol ...float64) {
	t.Helper()
	if d.PCM.Rate != Rate {
		t.Fatalf("rate %d, want %d", d.PCM.Rate, Rate)
	}
	if got := d.PCM.Duration(); math.Abs(got-toneSec) > 0.05 {
		t.Errorf("duration %.3f s, want %.3f ± 0.05", got, toneSec)
	}
	mid := d.PCM.Samples
	if len(mid) > 2*Rate {
		mid = mid[Rate/4 : len(mid)-Rate/4] // away from encoder edges
	}
	if f := zeroCrossFreq(mid, Rate); math.Abs(f-freq) > freq/100 {
		t.Errorf("tone at %.1f Hz, want %.0f", f, freq)
	}
	a, res := toneFit(mid, Rate, freq)
	tol := 0.3
	if len(ampTol) > 0 && ampTol[0] > 0 {
		tol = ampTol[0]
	}
	if math.Abs(a-amp) > tol*amp {
		t.Errorf("tone amplitude %.4f, want %.4f ± %.0f%%", a, amp, 100*tol)
	}
	if limit := map[bool]float64{false: 0.001, true: 0.1}[lossy] * amp; res > limit {
		t.Errorf("residual after the tone %.5f, want < %.5f", res, limit)
	}
}

func TestDecodeFormats(t *testing.T) {
	cases := []struct {
		file   string
		native bool // decoded without ffmpeg
		lossy  bool
		codec  string
	}{
		{"u8.wav", true, true, "pcm_u8"}, // 8-bit quantisation noise is not small
		{"s16.wav", true, false, "pcm_s16le"},
		{"s24.wav", true, false, "pcm_s24le"},
		{"s32.wav", true, false, "pcm_s32le"},
		{"f32.wav", true, false, "pcm_f32le"},
		{"f64.wav", true, false, "pcm_f64le"},
		{"51ext.wav", true, false, "pcm_s16le"},
		{"chunks.wav", true, false, "pcm_s16le"},
		{"mulaw.wav", false, true, "pcm_mulaw"},
		{"tone.mp3", false, true, "mp3"},
		{"tone.m4a", false, true, "aac"},
		{"fast.m4a", false, true, "aac"},
		{"alac.m4a", false, false, "alac"},
		{"tone.flac", false, false, "flac"},
		{"tone.ogg", false, true, "vorbis"},
		{"tone.opus", false, true, "opus"},
		{"audio.webm", false, true, "opus"},
		{"tone.caf", false, false, "pcm_s16be"},
		{"tone.aiff", false, false, "pcm_s16be"},
		{"tone.amr", false, true, "amr_nb"},
		{"tone.wma", false, true, "wmav2"},
		{"video.mp4", false, true, "aac"},
		{"video.mov", false, false, "pcm_s16le"},
		{"video.mkv", false, false, "flac"},
		{"video.webm", false, true, "vorbis"},
		{"video.avi", false, true, "mp3"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			path := fixture(t, c.file)
			d, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case runtime.GOOS == "darwin" && !c.native && d.Native:
				// macOS decodes some of these through AudioToolbox (apple_darwin.go); which ones
				// is Apple's to say, and the samples are checked below all the same.
				t.Logf("decoded natively on macOS")
			case d.Native != c.native:
				t.Errorf("native = %v, want %v", d.Native, c.native)
			}
			if d.Track.Codec != c.codec {
				t.Errorf("codec %q, want %q", d.Track.Codec, c.codec)
			}
			if d.StartOffset != 0 {
				t.Errorf("start offset %v, want 0", d.StartOffset)
			}
			// AMR-NB is a speech codec at 12.2 kbit/s: a pure tone comes out about 3 dB down.
			checkTone(t, d, toneFreq, toneAmp, c.lossy, map[string]float64{"tone.amr": 0.5}[c.file])
		})
	}
}

// TestExtensibleHeader guards the premise of the 51ext.wav case: ffmpeg writes a
// WAVE_FORMAT_EXTENSIBLE fmt chunk for six channels.
func TestExtensibleHeader(t *testing.T) {
	b, err := os.ReadFile(fixture(t, "51ext.wav"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b[:200]), "fmt ")
	if i < 0 || b[i+8] != 0xFE || b[i+9] != 0xFF {
		t.Fatalf("fmt chunk is not WAVE_FORMAT_EXTENSIBLE: % x", b[i:i+12])
	}
}

// Every WAV the audio package reads must decode the same natively and through ffmpeg.
func TestNativeMatchesFFmpeg(t *testing.T) {
	for _, c := range []struct {
		name  string
		maxDB float64
	}{
		{"s16.wav", -60},
		{"s24.wav", -60},
		{"invert.wav", -60},
		// 8-bit quantisation noise fills the band where the two filters' transitions differ.
		{"u8.wav", -45},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := fixture(t, c.name)
			nat, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ff, err := DecodeAll(t.Context(), path, Options{NoNative: true})
			if err != nil {
				t.Fatal(err)
			}
			if !nat.Native || ff.Native {
				t.Fatalf("native flags %v %v", nat.Native, ff.Native)
			}
			if nat.Downmix != ff.Downmix {
				t.Errorf("downmix native %v, ffmpeg %v", nat.Downmix, ff.Downmix)
			}
			a, b := nat.PCM.Samples, ff.PCM.Samples
			if d := len(a) - len(b); d < -2 || d > 2 {
				t.Fatalf("lengths %d (native) and %d (ffmpeg)", len(a), len(b))
			}
			// Two good resamplers agree to well under -60 dB away from the ends.
			n := min(len(a), len(b))
			var diff, sig float64
			for i := Rate / 10; i < n-Rate/10; i++ {
				e := float64(a[i] - b[i])
				diff += e * e
				sig += float64(a[i]) * float64(a[i])
			}
			if db := 10 * math.Log10(diff/sig); db > c.maxDB {
				t.Errorf("native and ffmpeg decodes differ at %.1f dB, want below %.0f", db, c.maxDB)
			}
		})
	}
}

func TestSpeech(t *testing.T) {
	// The reference length is espeak-ng's own WAV, read by the audio package.
	ref, err := audio.LoadWAV(fixture(t, "speech.wav"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"speech.wav", "speech.mp3"} {
		t.Run(name, func(t *testing.T) {
			path := fixture(t, name)
			d, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := d.PCM.Duration(), ref.Duration(); math.Abs(got-want) > 0.05 {
				t.Errorf("decoded %.3f s, the source has %.3f s", got, want)
			}
			if d.PCM.Duration() < 2 {
				t.Errorf("speech of %.2f s is too short", d.PCM.Duration())
			}
			// Speech: loud overall, with quiet gaps between words.
			if r := rms(d.PCM.Samples); r < 0.02 {
				t.Errorf("speech RMS %.4f: near silent", r)
			}
			quiet := 0
			for i := 0; i+Rate/50 <= len(d.PCM.Samples); i += Rate / 50 {
				if rms(d.PCM.Samples[i:i+Rate/50]) < 0.005 {
					quiet++
				}
			}
			if quiet == 0 {
				t.Error("no quiet 20 ms frame: not speech-like")
			}
		})
	}
}

func TestInvertedStereo(t *testing.T) {
	for _, name := range []string{"invert.flac", "invert.wav"} {
		t.Run(name, func(t *testing.T) {
			path := fixture(t, name)
			d, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Downmix != DownmixLeft && d.Downmix != DownmixRight {
				t.Errorf("downmix %v, want one channel", d.Downmix)
			}
			// One channel is the plain tone: full level, clean.
			checkTone(t, d, toneFreq, toneAmp, false)

			// Forcing the mix shows what the detection prevents.
			mixed, err := DecodeAll(t.Context(), path, Options{StereoProbe: -1})
			if err != nil {
				t.Fatal(err)
			}
			if mixed.Downmix != DownmixMix {
				t.Errorf("downmix %v with the probe off, want mix", mixed.Downmix)
			}
			if r := rms(mixed.PCM.Samples); r > 1e-4 {
				t.Errorf("mix of inverted stereo has RMS %.5f, want near silence", r)
			}
		})
	}
}

func TestStartOffset(t *testing.T) {
	for _, name := range []string{"offset.mp4", "offset.mkv"} {
		t.Run(name, func(t *testing.T) {
			path := fixture(t, name)
			d, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.StartOffset.Seconds(); math.Abs(got-2.5) > 0.05 {
				t.Errorf("start offset %.3f s, want 2.5 ± 0.05", got)
			}
			// The burst starts 1 s into the audio stream, so at 3.5 s on the video's timeline.
			onset := -1
			for i, v := range d.PCM.Samples {
				if math.Abs(float64(v)) > 0.1 {
					onset = i
					break
				}
			}
			if onset < 0 {
				t.Fatal("burst not found")
			}
			at := d.StartOffset.Seconds() + float64(onset)/Rate
			if math.Abs(at-3.5) > 0.05 {
				t.Errorf("burst at %.3f s on the timeline, want 3.5 ± 0.05", at)
			}
		})
	}
}

func TestAudioTrack(t *testing.T) {
	path := fixture(t, "langs.mkv")
	cases := []struct {
		track, lang string
		want        float64 // Hz of the chosen track's tone
		wantErr     error
	}{
		{"", "", 440, nil},
		{"0", "", 440, nil},
		{"1", "", 880, nil},
		{"eng", "", 440, nil},
		{"de", "", 880, nil},
		{"deu", "", 880, nil},
		{"ger", "", 880, nil},
		{"", "de", 880, nil},   // the transcription language picks the default
		{"", "auto", 440, nil}, // unknown language: the first track
		{"0", "de", 440, nil},  // an explicit track wins
		{"2", "", 0, ErrNoTrack},
		{"-1", "", 0, ErrNoTrack},
		{"fr", "", 0, ErrNoTrack},
	}
	for _, c := range cases {
		t.Run(c.track+"/"+c.lang, func(t *testing.T) {
			t.Parallel()
			d, err := DecodeAll(t.Context(), path, Options{AudioTrack: c.track, Language: c.lang})
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err %v, want %v naming the file", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f := zeroCrossFreq(d.PCM.Samples[Rate/4:len(d.PCM.Samples)-Rate/4], Rate); math.Abs(f-c.want) > c.want/100 {
				t.Errorf("decoded a %.1f Hz track, want %.0f", f, c.want)
			}
		})
	}
}

// A language asked of a file whose streams carry no language tag cannot be checked: the
// default stream is decoded, so one --audio-track setting serves a batch of mixed files.
func TestAudioTrackUntagged(t *testing.T) {
	for _, name := range []string{"tone.m4a", "s16.wav"} {
		d, err := DecodeAll(t.Context(), fixture(t, name), Options{AudioTrack: "fr"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkTone(t, d, toneFreq, toneAmp, true)
	}
}

func TestAwkwardNames(t *testing.T) {
	for _, c := range []struct{ src, name string }{
		{"tone.mp3", "with spaces and 'quotes'.mp3"},
		{"tone.m4a", "ünïcødé 日本語 🎙.m4a"},
		{"tone.ogg", "-dash-first.ogg"},
		{"tone.flac", "colon:inside.flac"},
		{"s16.wav", "-dash.wav"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := copyAs(t, fixture(t, c.src), c.name)
			if strings.HasPrefix(c.name, "-") {
				// A relative name that looks like an option, as a user in that folder types it.
				t.Chdir(strings.TrimSuffix(path, c.name))
				path = c.name
			}
			d, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkTone(t, d, toneFreq, toneAmp, true)
		})
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name    string
		path    func(t *testing.T) string
		opts    Options
		want    error
		wantMsg string
	}{
		{"missing", func(t *testing.T) string { return t.TempDir() + "/nope.mp3" }, Options{}, ErrNotFound, ""},
		{"zero bytes", func(t *testing.T) string { return fixture(t, "empty.mp3") }, Options{}, ErrEmpty, ""},
		{"no audio", func(t *testing.T) string { return fixture(t, "silent.mp4") }, Options{}, ErrNoAudio, ""},
		{"truncated mp4", func(t *testing.T) string { return fixture(t, "trunc.mp4") }, Options{}, ErrCorrupt, ""},
		{"truncated faststart m4a", func(t *testing.T) string { return fixture(t, "truncfast.m4a") }, Options{}, ErrCorrupt, ""},
		{"not media", func(t *testing.T) string { return fixture(t, "text.mp3") }, Options{}, ErrCorrupt, ""},
		{"directory", func(t *testing.T) string { return t.TempDir() }, Options{}, ErrUnsupported, ""},
		{"ffmpeg missing", func(t *testing.T) string { return fixture(t, "tone.ogg") }, // Ogg Vorbis: ffmpeg's on every OS
			Options{FFprobe: "/nonexistent/ffprobe"}, ErrFFmpegMissing, "apt install ffmpeg / brew install ffmpeg"},
		{"too long by header", func(t *testing.T) string { return fixture(t, "tone.m4a") }, Options{MaxDuration: time.Second}, ErrTooLong, ""},
		{"too long native", func(t *testing.T) string { return fixture(t, "s16.wav") }, Options{MaxDuration: time.Second}, ErrTooLong, ""},
		{"too long by counting", func(t *testing.T) string { return fixture(t, "noduration.flac") }, Options{MaxDuration: time.Second}, ErrTooLong, "decoded more than"},
		{"truncated wav", func(t *testing.T) string { return fixture(t, "trunc.wav") }, Options{}, ErrCorrupt, ""},
		{"wav has no second track", func(t *testing.T) string { return fixture(t, "s16.wav") }, Options{AudioTrack: "1"}, ErrNoTrack, ""},
		{"unknown codec", func(t *testing.T) string { return fixture(t, "oddcodec.wav") }, Options{}, ErrUnsupported, ""},
		{"too large", func(t *testing.T) string { return fixture(t, "tone.mp3") }, Options{MaxSize: 1000}, ErrTooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path(t)
			_, err := DecodeAll(t.Context(), path, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if c.wantMsg != "" && !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q lacks %q", err, c.wantMsg)
			}
			if !IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = false", err)
			}
		})
	}
}

// The premise of the "too long by counting" case: the container does not declare a duration.
func TestNoDurationPremise(t *testing.T) {
	info, err := Probe(t.Context(), fixture(t, "noduration.flac"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Duration != 0 {
		t.Fatalf("ffprobe found a duration of %v; the test needs none", info.Duration)
	}
	d, err := DecodeAll(t.Context(), fixture(t, "noduration.flac"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, d, toneFreq, toneAmp, false)
}

func TestCancel(t *testing.T) {
	path := fixture(t, "tone.flac")
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]float32, 1000)
	if _, err := s.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		_, err = s.Read(buf)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Fatalf("err after cancel = %v (permanent %v), want context.Canceled, not permanent", err, IsPermanent(err))
	}
}

func TestReadWindow(t *testing.T) {
	for _, name := range []string{"s24.wav", "tone.ogg"} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(t.Context(), fixture(t, name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			win := make([]float32, 30000) // not a divisor of the length
			var lens []int
			for {
				n, err := s.ReadWindow(win)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				lens = append(lens, n)
			}
			for i, n := range lens[:len(lens)-1] {
				if n != len(win) {
					t.Errorf("window %d has %d samples, want %d", i, n, len(win))
				}
			}
			total := (len(lens)-1)*len(win) + lens[len(lens)-1]
			if math.Abs(float64(total)/Rate-toneSec) > 0.05 {
				t.Errorf("%d samples in all", total)
			}
			if s.Decoded() != time.Duration(total)*time.Second/Rate {
				t.Errorf("Decoded() = %v", s.Decoded())
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
			if _, err := s.Read(win); err == nil {
				t.Error("read after close succeeded")
			}
		})
	}
}

// TestBoundedMemory decodes 20 minutes through each path while watching the heap: what the
// reader holds must stay a small constant, far below the 77 MB the samples take in all.
func TestBoundedMemory(t *testing.T) {
	needTools(t, "ffmpeg", "ffprobe")
	const minutes = 20
	dir := t.TempDir()
	for _, c := range []struct {
		name, codec string
		rate        int
	}{
		{"long.flac", "flac", 22050}, // ffmpeg, resampled by soxr
		// Native: at 16 kHz, since audio.Resample is slow under -race; TestChunkResamplerMatchesWhole
		// bounds what the block-wise resampler holds.
		{"long.wav", "pcm_s16le", 16000},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dir + "/" + c.name
			err := ffmpegGen("-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d:duration=%d", c.rate, minutes*60), "-c:a", c.codec)(path)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			win := make([]float32, 30*Rate)
			var total int
			var peak uint64
			for {
				n, err := s.ReadWindow(win)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				total += n
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			all := uint64(total) * 4
			grew := peak - min(peak, base)
			t.Logf("%d samples (%d MB as float32); heap in use grew by at most %.1f MB", total, all>>20, float64(grew)/(1<<20))
			if math.Abs(float64(total)/Rate-minutes*60) > 0.05 {
				t.Errorf("decoded %.2f s, want %d min", float64(total)/Rate, minutes)
			}
			if grew > all/5 {
				t.Errorf("heap grew by %d bytes, over a fifth of all samples (%d)", grew, all)
			}
		})
	}
}

// A WAV the audio package reads needs neither ffmpeg nor ffprobe.
func TestNativeWithoutFFmpeg(t *testing.T) {
	path := fixture(t, "s24.wav")
	d, err := DecodeAll(t.Context(), path, Options{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"})
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, d, toneFreq, toneAmp, false)
}

// TestAliasing feeds tones between 9 and 20 kHz at 48 kHz: none of them fits in 16 kHz audio,
// so every path must output (near) silence, at least 60 dB below the input.
func TestAliasing(t *testing.T) {
	defer func(f func(context.Context, string) bool) { soxrAvailable = f }(soxrAvailable)
	cases := []struct {
		name, file string
		soxr       bool
	}{
		{"native", "alias.wav", true},
		{"ffmpeg soxr", "alias.flac", true},
		{"ffmpeg swr fallback", "alias.flac", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := fixture(t, c.file)
			soxrAvailable = func(context.Context, string) bool { return c.soxr }
			d, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.PCM.Duration(); math.Abs(got-2) > 0.05 {
				t.Errorf("duration %.3f s", got)
			}
			in := 0.3 / math.Sqrt2 * math.Sqrt(3) // RMS of the three input tones
			mid := d.PCM.Samples[Rate/10 : len(d.PCM.Samples)-Rate/10]
			if db := 20 * math.Log10(rms(mid)/in); db > -60 {
				t.Errorf("output at %.1f dB relative to the input, want below -60", db)
			} else {
				t.Logf("output at %.1f dB relative to the input", db)
			}
		})
	}
}
