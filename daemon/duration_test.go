package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/media"
)

// TestDurationWithoutFFprobe: a job's length comes from ffprobe, and without it from the native
// decoder (a WAV here; on macOS also what AudioToolbox reads); a file that needs ffmpeg still says
// ffmpeg is missing.
func TestDurationWithoutFFprobe(t *testing.T) {
	ctx := context.Background()
	const want = 11 * time.Second // jfk.wav: 176,000 samples at 16 kHz
	for _, o := range []media.Options{{}, {FFprobe: "/nonexistent/ffprobe", FFmpeg: "/nonexistent/ffmpeg"}} {
		d, err := duration(ctx, "../testdata/jfk.wav", o)
		if err != nil || d != want {
			t.Errorf("ffprobe %q: %v, %v; want %v", o.FFprobe, d, err, want)
		}
	}
	_, err := duration(ctx, "../media/testdata/nonexistent.mp3", media.Options{FFprobe: "/nonexistent/ffprobe"})
	if err == nil {
		t.Error("a missing file has a duration")
	}
}
