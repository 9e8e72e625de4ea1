package media

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The AVAssetImageGenerator stills (avframe_darwin.go). Written without a Mac: compiled for
// darwin, never run where it was written.

// A movie without video has no still, whether asked directly or through Frame without ffmpeg.
func TestAVFrameNoVideo(t *testing.T) {
	needAVF(t)
	mov, _, _ := twoTrackMovie()
	path := writeTemp(t, "two.mov", mov)
	if _, err := frameAVAsset(t.Context(), path, 0, FrameWidth); !errors.Is(err, ErrUnsupported) {
		t.Errorf("err = %v, want ErrUnsupported (no video track)", err)
	}
	_, err := Frame(t.Context(), path, 0, FrameWidth, noFFmpeg)
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("Frame: err = %v, want ErrUnsupported and ErrFFmpegMissing", err)
	}
	if _, err := frameAVAsset(t.Context(), filepath.Join(t.TempDir(), "film.mkv"), 0, FrameWidth); !errors.Is(err, errNotNative) {
		t.Errorf("mkv: err = %v, want errNotNative", err)
	}
}

// Stills of ffmpeg's test pattern (640x360, scaled down) and of a 32x32 video (scaled up): JPEGs
// FrameWidth wide; past the end an error naming the file; Frame and Frames without ffmpeg use
// them. Needs ffmpeg to make the videos (AVFoundation could write them, at much more code).
func TestAVFrame(t *testing.T) {
	needAVF(t)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skipf("no ffmpeg to make the test videos: %v", err)
	}
	for _, name := range []string{"pattern.mp4", "video.mp4"} {
		video := fixture(t, name)
		for _, at := range []time.Duration{0, 2500 * time.Millisecond} {
			b, err := frameAVAsset(t.Context(), video, at, FrameWidth)
			if err != nil {
				t.Fatalf("%s at %v: %v", name, at, err)
			}
			if len(b) < 100 || b[0] != 0xFF || b[1] != 0xD8 {
				t.Fatalf("%s at %v: not a JPEG (%d bytes)", name, at, len(b))
			}
			if w := jpegWidth(b); w != FrameWidth {
				t.Errorf("%s at %v: %d pixels wide, want %d", name, at, w, FrameWidth)
			}
		}
		_, err := frameAVAsset(t.Context(), video, 100*time.Second, FrameWidth)
		if !errors.Is(err, ErrCorrupt) || !errContains(err, video) {
			t.Errorf("%s past the end: err = %v, want ErrCorrupt naming the file", name, err)
		}
	}
	video := fixture(t, "pattern.mp4")
	b, err := Frame(t.Context(), video, time.Second, FrameWidth, noFFmpeg)
	if err != nil || jpegWidth(b) != FrameWidth {
		t.Fatalf("Frame without ffmpeg: %d pixels wide, %v", jpegWidth(b), err)
	}
	dir := filepath.Join(t.TempDir(), "talk.chapters")
	names, errs := Frames(t.Context(), video, []time.Duration{0, time.Second, 100 * time.Second}, dir, noFFmpeg)
	if names[0] != FrameName(0) || names[1] != FrameName(time.Second) || names[2] != "" || len(errs) != 1 {
		t.Fatalf("Frames without ffmpeg: %q, %v", names, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, names[1])); err != nil {
		t.Error(err)
	}
	// NoNative: ffmpeg's only, missing.
	if _, err := Frame(t.Context(), video, 0, FrameWidth, Options{NoNative: true, FFmpeg: noFFmpeg.FFmpeg}); !errors.Is(err, ErrFFmpegMissing) {
		t.Errorf("NoNative: err = %v, want ErrFFmpegMissing", err)
	}
	// A cancelled context: its error.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := frameAVAsset(ctx, video, 0, FrameWidth); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

func errContains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
