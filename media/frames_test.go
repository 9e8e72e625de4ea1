package media

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestFrames: frames of a real video (ffmpeg's test pattern) at chapter times: JPEGs 320 pixels
// wide, named by time, written whole; a time past the end is an error naming the file and leaves
// no file; RemoveFramesExcept removes only stale frames, and the
// folder once empty. An audio file has no video; a cover image is not video.
func TestFrames(t *testing.T) {
	video := fixture(t, "pattern.mp4")
	info, err := Probe(context.Background(), video, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !HasVideo(info) {
		t.Fatal("the test video has no video stream")
	}
	if a, err := Probe(context.Background(), fixture(t, "tone.m4a"), Options{}); err != nil || HasVideo(a) {
		t.Fatalf("tone.m4a: video %v, %v", HasVideo(a), err)
	}
	dir := filepath.Join(t.TempDir(), "talk.chapters")
	at := []time.Duration{0, 2500 * time.Millisecond, 100 * time.Second}
	names, errs := Frames(context.Background(), video, at, dir, Options{})
	if names[0] != FrameName(0) || names[1] != FrameName(2500*time.Millisecond) || names[2] != "" {
		t.Fatalf("names %q", names)
	}
	if len(errs) != 1 {
		t.Fatalf("errors %v, want one (past the end)", errs)
	}
	for _, n := range names[:2] {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 100 || b[0] != 0xFF || b[1] != 0xD8 {
			t.Fatalf("%s is not a JPEG (%d bytes)", n, len(b))
		}
		if w := jpegWidth(b); w != FrameWidth {
			t.Errorf("%s is %d pixels wide, want %d", n, w, FrameWidth)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the folder, want the 2 frames (no temp file left)", len(entries))
	}
	// Other times: a new frame beside the old ones, the one at 0 replaced.
	names2, errs := Frames(context.Background(), video, []time.Duration{0, time.Second}, dir, Options{})
	if len(errs) != 0 || names2[0] != names[0] {
		t.Fatalf("second run: %q, %v", names2, errs)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if err := RemoveFramesExcept(dir, names2); err != nil {
		t.Fatal(err)
	}
	var left []string
	entries, _ = os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	if want := []string{FrameName(0), FrameName(time.Second), "notes.txt"}; !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	os.Remove(filepath.Join(dir, "notes.txt"))
	if err := RemoveFramesExcept(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("empty frames folder left behind: %v", err)
	}
}

// jpegWidth reads the width from a JPEG's start-of-frame marker (0 if none).
func jpegWidth(b []byte) int {
	for i := 2; i+9 < len(b); {
		if b[i] != 0xFF {
			return 0
		}
		m := b[i+1]
		n := int(b[i+2])<<8 | int(b[i+3])
		if m >= 0xC0 && m <= 0xC3 {
			return int(b[i+7])<<8 | int(b[i+8])
		}
		i += 2 + n
	}
	return 0
}
