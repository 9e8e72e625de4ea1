package media

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The AVAssetReader path (avasset_darwin.go) against the audio package's WAV reader, on movies
// written by movPCM (no ffmpeg needed), and against ffmpeg on its fixtures when it is installed.
// Written without a Mac: compiled for darwin, never run where it was written.

// needAVF skips the test when AVFoundation cannot be loaded.
func needAVF(t *testing.T) {
	t.Helper()
	if _, err := loadAVF(); err != nil {
		t.Skipf("AVFoundation cannot be loaded: %v", err)
	}
}

var noFFmpeg = Options{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"}

// The first track of a two-track movie reads, through AVAssetReader, as exactly the samples
// written (float PCM: nothing to approximate), plane by plane and after Open's 16 kHz mono, like
// the same samples in a WAV; the movie is described as ffprobe does.
func TestAVAssetMatchesWAV(t *testing.T) {
	needAVF(t)
	mov, a, _ := twoTrackMovie()
	path := writeTemp(t, "two.mov", mov)
	wav := writeTemp(t, "a.wav", wavFloat(a.ch, a.rate, a.samples))

	src, info, tr, err := openAVAsset(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	ref, _, err := openWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.close()
	if src.channels() != 2 || src.rate() != 48000 {
		t.Fatalf("%d channels at %d Hz, want 2 at 48000", src.channels(), src.rate())
	}
	as := info.AudioStreams()
	if len(as) != 2 || tr.Index != 0 || as[0].Language != "eng" || as[1].Language != "deu" ||
		as[0].Codec != "pcm_f32le" || as[0].SampleRate != 48000 || as[0].Channels != 2 ||
		as[1].SampleRate != 44100 || as[1].Channels != 1 {
		t.Errorf("streams %+v, chosen %+v", info.Streams, tr)
	}
	if d := info.Duration - 1750*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("duration %v, want 1.75 s", info.Duration)
	}
	if as[1].StartTime != 500*time.Millisecond {
		t.Logf("second track's timeRange starts at %v (the empty edit is 0.5 s)", as[1].StartTime)
	}
	l, r := drain(t, src)
	wl, wr := drain(t, ref)
	closeEnough(t, "left", l, wl)
	closeEnough(t, "right", r, wr)
	if err := src.close(); err != nil {
		t.Error(err)
	}
	if err := src.close(); err != nil {
		t.Error(err)
	}

	got, err := DecodeAll(t.Context(), path, noFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeAll(t.Context(), wav, noFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Native || got.StartOffset != 0 || got.Downmix != want.Downmix {
		t.Errorf("native %v, start %v, downmix %v (WAV: %v)", got.Native, got.StartOffset, got.Downmix, want.Downmix)
	}
	closeEnough(t, "16 kHz mono", got.PCM.Samples, want.PCM.Samples)
}

// The second track, by index, by language or by the transcription language, starts where its
// empty edit puts it: its first sound 0.75 s into the timeline. A track that is not there is
// ErrNoTrack (and ffmpeg, missing, could not say otherwise).
func TestAVAssetTracks(t *testing.T) {
	needAVF(t)
	mov, _, b := twoTrackMovie()
	path := writeTemp(t, "two.mov", mov)
	for _, o := range []Options{{AudioTrack: "1"}, {AudioTrack: "ger"}, {Language: "de"}} {
		o.FFmpeg, o.FFprobe = noFFmpeg.FFmpeg, noFFmpeg.FFprobe
		d, err := DecodeAll(t.Context(), path, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if !d.Native || d.Track.Language != "deu" || d.Track.SampleRate != b.rate || d.Downmix != DownmixMono {
			t.Errorf("%+v: native %v, track %+v", o, d.Native, d.Track)
		}
		if at := d.StartOffset + firstSound(d.PCM.Samples); at < 740*time.Millisecond || at > 760*time.Millisecond {
			t.Errorf("%+v: first sound at %v (start offset %v), want 0.75 s", o, at, d.StartOffset)
		}
		t.Logf("%+v: start offset %v", o, d.StartOffset)
	}
	_, err := DecodeAll(t.Context(), path, Options{AudioTrack: "2", FFmpeg: noFFmpeg.FFmpeg, FFprobe: noFFmpeg.FFprobe})
	if !errors.Is(err, ErrNoTrack) || !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("AudioTrack 2: err = %v, want ErrNoTrack and ErrFFmpegMissing", err)
	}
	// NoNative: ffmpeg's, missing.
	_, err = DecodeAll(t.Context(), path, Options{NoNative: true, FFmpeg: noFFmpeg.FFmpeg, FFprobe: noFFmpeg.FFprobe})
	if !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("NoNative: err = %v, want ErrFFmpegMissing", err)
	}
}

// Without ffprobe, Probe describes what AVFoundation reads; with NoNative it does not.
func TestAVAssetProbeWithoutFFprobe(t *testing.T) {
	needAVF(t)
	mov, _, _ := twoTrackMovie()
	path := writeTemp(t, "two.mov", mov)
	info, err := Probe(t.Context(), path, noFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.AudioStreams()) != 2 || HasVideo(info) || info.Format != "mov,mp4,m4a,3gp,3g2,mj2" {
		t.Errorf("info %+v", info)
	}
	if _, err := Probe(t.Context(), path, Options{NoNative: true, FFprobe: noFFmpeg.FFprobe}); !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("NoNative: err = %v, want ErrFFmpegMissing", err)
	}
}

// Files AVAssetReader does not take are left alone without loading anything.
func TestAVAssetLeavesOthers(t *testing.T) {
	for _, name := range []string{"film.mkv", "clip.webm", "tone.ogg", "noext", "sound.aiff"} {
		if _, _, _, err := openAVAsset(filepath.Join(t.TempDir(), name), Options{}); !errors.Is(err, errNotNative) {
			t.Errorf("%s: err = %v, want errNotNative", name, err)
		}
	}
}

// With ffmpeg installed (to make the fixtures and to compare with): real videos decode natively
// to about ffmpeg's length and start offset; a movie whose header is lost falls back to ffmpeg.
func TestAVAssetAgainstFFmpeg(t *testing.T) {
	needAVF(t)
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s to make the fixture videos and compare with: %v", tool, err)
		}
	}
	for _, name := range []string{"video.mp4", "video.mov", "pattern.mp4", "offset.mp4"} {
		t.Run(name, func(t *testing.T) {
			path := fixture(t, name)
			nat, err := DecodeAll(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ff, err := DecodeAll(t.Context(), path, Options{NoNative: true})
			if err != nil {
				t.Fatal(err)
			}
			if !nat.Native || !HasVideo(nat.Info) {
				t.Errorf("native %v, video %v", nat.Native, HasVideo(nat.Info))
			}
			if d := decodedLen(nat) - decodedLen(ff); d < -50*time.Millisecond || d > 50*time.Millisecond {
				t.Errorf("decoded %v, ffmpeg %v", decodedLen(nat), decodedLen(ff))
			}
			if d := nat.StartOffset - ff.StartOffset; d < -30*time.Millisecond || d > 30*time.Millisecond {
				t.Errorf("start offset %v, ffmpeg's %v", nat.StartOffset, ff.StartOffset)
			}
			if name == "offset.mp4" {
				// The burst is at 1.0 s of the audio's own time, which starts 2.5 s in.
				at := nat.StartOffset + firstSound(nat.PCM.Samples)
				if at < 3480*time.Millisecond || at > 3520*time.Millisecond {
					t.Errorf("burst at %v on the timeline (start offset %v), want 3.5 s", at, nat.StartOffset)
				}
			}
			t.Logf("native: %v from %v, codec %s; ffmpeg: %v from %v", decodedLen(nat), nat.StartOffset, nat.Track.Codec, decodedLen(ff), ff.StartOffset)
		})
	}
	st, err := Open(t.Context(), fixture(t, "trunc.mp4"), Options{})
	if err == nil {
		if st.Native {
			t.Error("trunc.mp4 (no movie header) decoded natively")
		}
		st.Close()
	}
}

// decodedLen is how much 16 kHz audio d holds.
func decodedLen(d *Decoded) time.Duration {
	return time.Duration(len(d.PCM.Samples)) * time.Second / Rate
}
