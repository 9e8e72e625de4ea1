package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/durable"
)

// HasVideo reports whether info lists a video stream that is a picture in motion (not a cover
// image attached to an audio file).
func HasVideo(info *Info) bool {
	if info == nil {
		return false
	}
	for _, s := range info.Streams {
		if s.Type == "video" && !s.AttachedPic {
			return true
		}
	}
	return false
}

// FrameWidth is the width of the chapter frames (Frames), in pixels; the height keeps the aspect.
const FrameWidth = 320

// Frame returns a JPEG of the video at path at time at (the file's timeline), width pixels wide,
// from ffmpeg (opts.FFmpeg). A time past the end gives the last frame ffmpeg reaches before it, or
// an error. Errors name the file.
func Frame(ctx context.Context, path string, at time.Duration, width int, opts Options) ([]byte, error) {
	bin, err := tool(opts.FFmpeg, "ffmpeg")
	if err != nil {
		if framePlatform != nil && !opts.NoNative {
			b, perr := framePlatform(ctx, path, at, width)
			if perr == nil {
				return b, nil
			}
			if !errors.Is(perr, errNotNative) {
				return nil, fmt.Errorf("%w; and %w", perr, err)
			}
		}
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	if at < 0 {
		at = 0
	}
	args := []string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"}
	args = append(args, hardening...)
	args = append(args,
		"-ss", strconv.FormatFloat(at.Seconds(), 'f', 3, 64),
		"-i", "file:"+path,
		"-map", "0:v:0", "-frames:v", "1",
		"-vf", fmt.Sprintf("scale=%d:-2", width),
		"-c:v", "mjpeg", "-q:v", "5", "-f", "image2pipe", "pipe:1")
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	st := &tail{max: stderrTail}
	cmd.Stdout, cmd.Stderr = &out, st
	cmd.WaitDelay = waitDelay
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("media %s: frame at %v: %w", path, at, ctx.Err())
	}
	b := out.Bytes()
	if err != nil || len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		why := strings.TrimSpace(st.String())
		if why == "" && err == nil {
			why = "no frame there"
		} else if why == "" {
			why = err.Error()
		}
		return nil, fmt.Errorf("media %s: frame at %v: %w (%s)", path, at, ErrCorrupt, why)
	}
	return b, nil
}

// framePlatform makes a still with the operating system's own decoder, under Frame's contract:
// AVFoundation's AVAssetImageGenerator on macOS (avframe_darwin.go sets it), nil elsewhere. Frame
// uses it when ffmpeg is not found (unless opts.NoNative); an error wrapping errNotNative is a
// file it does not take.
var framePlatform func(ctx context.Context, path string, at time.Duration, width int) ([]byte, error)

// FramePrefix starts the name of every file Frames writes.
const FramePrefix = "chapter-"

// FrameName is the file name Frames gives the frame at time at.
func FrameName(at time.Duration) string {
	return fmt.Sprintf("%s%08d.jpg", FramePrefix, at.Milliseconds())
}

// Frames writes a JPEG of the video at path at each time into dir (made if missing), each file
// written whole or not at all (a temp file renamed), and returns their names (FrameName; "" where
// no frame could be had, with the reason in errs). A file there for the same time is replaced (the
// video may have changed); files of earlier runs for other times are left: RemoveFramesExcept
// removes them once the note that used them is replaced.
func Frames(ctx context.Context, path string, at []time.Duration, dir string, opts Options) (names []string, errs []error) {
	names = make([]string, len(at))
	if len(at) == 0 {
		return names, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return names, []error{fmt.Errorf("media %s: frames: %w", path, err)}
	}
	for i, t := range at {
		name := FrameName(t)
		dst := filepath.Join(dir, name)
		jpg, err := Frame(ctx, path, t, FrameWidth, opts)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err := durable.WriteFile(dst, jpg, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("media %s: frame at %v: %w", path, t, err))
			continue
		}
		names[i] = name
	}
	return names, errs
}

// RemoveFramesExcept removes the frame files (FramePrefix) in dir that are not in keep, and dir
// itself when it is left empty.
func RemoveFramesExcept(dir string, keep []string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	var errs []error
	left := 0
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, FramePrefix) || kept[n] {
			left++
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			errs = append(errs, err)
			left++
		}
	}
	if left == 0 {
		_ = os.Remove(dir)
	}
	return errors.Join(errs...)
}

// NoteFrames makes the stills of one note's chapters: Images (a sidecar.Options.ChapterImages)
// writes a frame of the video at Path at each chapter start into Dir and returns their paths
// relative to the note's folder (Dir's base name, a slash, the file name), nothing for an input
// without video; Done, once the note is written, removes the stills of earlier runs it does not
// show. What fails is reported to Warn (each message names the file) and leaves that chapter
// without a still.
type NoteFrames struct {
	Path string
	Dir  string
	Info *Info // the input as probed; nil: probed when needed
	Opts Options
	Warn func(msg string)

	called bool
	keep   []string
}

// Images is NoteFrames' sidecar.Options.ChapterImages.
func (n *NoteFrames) Images(starts []time.Duration) []string {
	n.called = true
	if n.Info == nil {
		info, err := Probe(context.Background(), n.Path, n.Opts)
		if err != nil {
			n.warn(fmt.Sprintf("%s: no chapter stills: %v", n.Path, err))
			return nil
		}
		n.Info = info
	}
	if !HasVideo(n.Info) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	names, errs := Frames(ctx, n.Path, starts, n.Dir, n.Opts)
	for _, err := range errs {
		n.warn("no chapter still: " + err.Error())
	}
	rel := make([]string, len(names))
	for i, name := range names {
		if name != "" {
			rel[i] = filepath.Base(n.Dir) + "/" + name
			n.keep = append(n.keep, name)
		}
	}
	return rel
}

// Done removes the stills in Dir the note just written does not show (all of them when it shows
// none: no chapters, or a video replaced by audio under the same name).
func (n *NoteFrames) Done() {
	if err := RemoveFramesExcept(n.Dir, n.keep); err != nil {
		n.warn(fmt.Sprintf("%s: stale chapter stills left: %v", n.Path, err))
	}
}

func (n *NoteFrames) warn(msg string) {
	if n.Warn != nil {
		n.Warn(msg)
	}
}

// frameTimeout bounds the stills of one note.
const frameTimeout = 2 * time.Minute
