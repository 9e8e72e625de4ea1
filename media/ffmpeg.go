package media

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Arguments every ffmpeg and ffprobe run gets before its input: no protocols but local files and
// pipes (no network, no playlists fetching URLs).
var hardening = []string{"-protocol_whitelist", "file,pipe"}

// resampleFilter converts to 16 kHz float with the SoX resampler at 28-bit precision (flat
// passband, stopband far below -100 dB), downmixing to the requested layout in the same step.
// Debian's and Homebrew's ffmpeg are built with libsoxr; swrFilter is the fallback for builds
// without it (a long windowed-sinc filter with a cutoff just below Nyquist).
const (
	soxrFilter = "aresample=resampler=soxr:precision=28:osr=16000:osf=flt:ochl=%s"
	swrFilter  = "aresample=filter_size=64:phase_shift=10:cutoff=0.95:osr=16000:osf=flt:ochl=%s"
)

// stderrTail is how much of a tool's stderr we keep to explain a failure.
const stderrTail = 4 << 10

// waitDelay bounds how long Close waits for a killed decoder to let go of its pipes.
const waitDelay = 5 * time.Second

// tool resolves a program name, mapping "not installed" to ErrFFmpegMissing.
func tool(name, def string) (string, error) {
	if name == "" {
		name = def
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w (%s: %w)", ErrFFmpegMissing, name, err)
	}
	return p, nil
}

// soxrAvailable reports whether the ffmpeg at path has the SoX resampler; asked once per path.
var soxrAvailable = func() func(ctx context.Context, path string) bool {
	var mu sync.Mutex
	known := map[string]bool{}
	return func(ctx context.Context, path string) bool {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := known[path]; ok {
			return v
		}
		out, err := exec.CommandContext(ctx, path, "-hide_banner", "-nostdin", "-buildconf").Output()
		if err != nil {
			return false // not cached: a cancelled context says nothing about the build
		}
		v := bytes.Contains(out, []byte("--enable-libsoxr"))
		known[path] = v
		return v
	}
}()

// Probe runs ffprobe on the file at path and parses its report. Errors name the file and wrap
// ErrNotFound, ErrEmpty, ErrTooLarge, ErrFFmpegMissing, ErrCorrupt or ErrUnsupported. On macOS
// without ffprobe, files that AVFoundation or AudioToolbox read are described by them instead
// (unless opts.NoNative).
func Probe(ctx context.Context, path string, opts Options) (*Info, error) {
	return probe(ctx, path, opts, !opts.NoNative)
}

// probePlatform describes a file with the operating system's own media framework (AVFoundation
// and AudioToolbox on macOS, avasset_darwin.go; nil elsewhere). Probe uses it only when ffprobe
// is missing; its errors are not reported (ffprobe's absence is).
var probePlatform func(path string) (*Info, error)

// probe is Probe; native allows probePlatform when ffprobe is missing.
func probe(ctx context.Context, path string, opts Options, native bool) (*Info, error) {
	if err := checkFile(path, &opts); err != nil {
		return nil, err
	}
	bin, err := tool(opts.FFprobe, "ffprobe")
	if err != nil {
		if native && probePlatform != nil {
			if info, perr := probePlatform(path); perr == nil {
				return info, nil
			}
		}
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	args := append([]string{"-v", "error", "-hide_banner"}, hardening...)
	args = append(args, "-print_format", "json", "-show_streams", "-show_format", "file:"+path)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout bytes.Buffer
	stderr := &tail{max: stderrTail}
	cmd.Stdout = &limitWriter{w: &stdout, n: maxProbeBytes + 1}
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("media %s: probe: %w", path, ctx.Err())
		}
		return nil, fmt.Errorf("media %s: %w", path, classify(err, stderr.String()))
	}
	info, err := ParseProbe(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("media %s: %w: %w", path, ErrCorrupt, err)
	}
	if len(info.Streams) == 0 {
		// ffprobe accepts some non-media (plain text reads as "tty") yet finds nothing in it.
		return nil, fmt.Errorf("media %s: %w (no streams in %s)", path, ErrNoAudio, info.Format)
	}
	return info, nil
}

// classify maps a failed ffmpeg/ffprobe run to a sentinel error by its stderr. A process killed
// by a signal we did not send (the OOM killer, say) is not the file's fault: it is returned
// as is, not permanent.
func classify(err error, stderr string) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		return fmt.Errorf("decoder killed (%s): %w%s", ee.ProcessState, err, detail(stderr))
	}
	if !errors.As(err, &ee) {
		return fmt.Errorf("run decoder: %w", err) // could not start it
	}
	low := strings.ToLower(stderr)
	switch {
	case strings.Contains(low, "no such file"):
		return fmt.Errorf("%w%s", ErrNotFound, detail(stderr))
	case strings.Contains(low, "decoder (codec") && strings.Contains(low, "not found"),
		strings.Contains(low, "unsupported codec"),
		strings.Contains(low, "not yet implemented"),
		strings.Contains(low, "protocol not on whitelist"),
		strings.Contains(low, "protocol not found"),
		strings.Contains(low, "unknown decoder"):
		return fmt.Errorf("%w%s", ErrUnsupported, detail(stderr))
	case strings.Contains(low, "output file #0 does not contain any stream"),
		strings.Contains(low, "does not contain any stream"),
		strings.Contains(low, "matches no streams"):
		return fmt.Errorf("%w%s", ErrNoAudio, detail(stderr))
	}
	// Everything else ffmpeg gives up on is about the bytes of the file: "Invalid data found
	// when processing input", "moov atom not found", "End of file", decoding errors.
	return fmt.Errorf("%w%s", ErrCorrupt, detail(stderr))
}

// detail formats the last meaningful line of a tool's stderr for an error message.
func detail(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "Conversion failed") {
			continue
		}
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		return ": ffmpeg: " + strings.ToValidUTF8(l, "?")
	}
	return ""
}

// ffmpegSource reads the f32le output of an ffmpeg process.
type ffmpegSource struct {
	path   string
	cmd    *exec.Cmd
	ctx    context.Context
	out    *bufio.Reader
	stderr *tail
	ch     int
	buf    []byte
	dur    time.Duration // the stream's declared duration, to notice truncation
	frames int64
	done   bool
	err    error // final state once the process was waited for
	mu     sync.Mutex
	closed bool
}

// startFFmpeg starts decoding stream tr of the file at path to 16 kHz float, stereo when the
// stream has several channels (ffmpeg folds surround layouts to stereo with its standard
// matrix), else mono.
func startFFmpeg(ctx context.Context, path string, tr StreamInfo, dur time.Duration, opts Options) (*ffmpegSource, error) {
	bin, err := tool(opts.FFmpeg, "ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	ch, layout := 2, "stereo"
	if tr.Channels == 1 {
		ch, layout = 1, "mono"
	}
	filter := swrFilter
	if soxrAvailable(ctx, bin) {
		filter = soxrFilter
	}
	args := []string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"}
	args = append(args, hardening...)
	args = append(args,
		"-i", "file:"+path,
		"-map", "0:"+strconv.Itoa(tr.Index),
		"-af", fmt.Sprintf(filter, layout),
		"-ac", strconv.Itoa(ch), "-ar", strconv.Itoa(Rate),
		"-c:a", "pcm_f32le", "-f", "f32le", "pipe:1")
	cmd := exec.CommandContext(ctx, bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	st := &tail{max: stderrTail}
	cmd.Stderr = st
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("media %s: start ffmpeg: %w", path, err)
	}
	return &ffmpegSource{
		path: path, cmd: cmd, ctx: ctx, out: bufio.NewReaderSize(stdout, 1<<16), stderr: st, ch: ch,
		dur: dur,
	}, nil
}

func (f *ffmpegSource) channels() int { return f.ch }
func (f *ffmpegSource) rate() int     { return Rate }

// read fills l (and r for stereo) with up to len(l) frames.
func (f *ffmpegSource) read(l, r []float32) (int, error) {
	if f.done {
		return 0, f.err
	}
	fb := 4 * f.ch
	if need := len(l) * fb; cap(f.buf) < need {
		f.buf = make([]byte, need)
	}
	b := f.buf[:len(l)*fb]
	n, err := io.ReadAtLeast(f.out, b, fb)
	frames := n / fb
	if err != nil {
		// ErrUnexpectedEOF: less than a frame left, which ffmpeg never writes; drop it.
		f.finish()
		err = f.err
	}
	le := binary.LittleEndian
	for i := range frames {
		if f.ch == 1 {
			l[i] = sample(le.Uint32(b[4*i:]))
		} else {
			l[i] = sample(le.Uint32(b[8*i:]))
			r[i] = sample(le.Uint32(b[8*i+4:]))
		}
	}
	f.frames += int64(frames)
	if frames > 0 {
		return frames, nil // the error, if any, comes with the next call
	}
	return 0, err
}

// sample decodes one float, clamped to [-1, 1] with NaN as 0 (the audio package's convention).
func sample(bits uint32) float32 {
	v := math.Float32frombits(bits)
	if v != v {
		return 0
	}
	return max(-1, min(1, v))
}

// finish waits for the process and records how the stream ended: io.EOF, or the error.
func (f *ffmpegSource) finish() {
	f.done = true
	werr := f.cmd.Wait()
	switch {
	case f.ctx.Err() != nil:
		f.err = fmt.Errorf("media %s: %w", f.path, f.ctx.Err())
	case werr != nil:
		f.err = fmt.Errorf("media %s: %w", f.path, classify(werr, f.stderr.String()))
	case f.truncated():
		got := time.Duration(f.frames) * time.Second / Rate
		f.err = fmt.Errorf("media %s: %w (decoded %v of %v)%s", f.path, ErrCorrupt,
			got.Round(time.Millisecond), f.dur.Round(time.Millisecond), detail(f.stderr.String()))
	default:
		f.err = io.EOF
	}
}

// truncated reports whether ffmpeg ended early with complaints: it exits 0 on a file cut short
// once it has decoded what is there, so we compare with the duration the container declares.
// Both conditions are needed, because declared durations of some formats are estimates.
func (f *ffmpegSource) truncated() bool {
	if f.dur <= 0 || strings.TrimSpace(f.stderr.String()) == "" {
		return false
	}
	got := time.Duration(f.frames) * time.Second / Rate
	return got < f.dur*9/10-500*time.Millisecond
}

// close kills the decoder if it still runs and waits for it. It is idempotent.
func (f *ffmpegSource) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if !f.done {
		f.done = true
		f.err = fmt.Errorf("media %s: stream closed", f.path)
		f.cmd.Process.Kill()
		f.cmd.Wait()
	}
	return nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// limitWriter passes at most n bytes to w and then fails, so a runaway tool cannot fill memory.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, fmt.Errorf("output over the limit")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}
