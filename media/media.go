// Package media probes media files and decodes their audio to the 16 kHz mono float32 that the
// engine consumes, as a stream, so memory stays bounded however long the input is.
//
// WAV files that the audio package can read are decoded natively (no ffmpeg needed) and
// resampled with audio.Resample. Every other container and codec goes through ffprobe and ffmpeg
// run as subprocesses: with an argv (never a shell), -nostdin, only the file and pipe protocols,
// and the input named as file:PATH so that a name starting with "-" or holding ":" is just a
// name. On macOS, audio-only files that AudioToolbox reads (mp3, m4a, flac, aiff, caf, ...) are
// decoded by it, through purego (apple_darwin.go), QuickTime/MP4 containers (mp4, mov, m4v, ...)
// by AVFoundation's AVAssetReader (avasset_darwin.go), and ffmpeg is needed only for the rest.
//
// Stereo that cancels when mixed (one channel phase-inverted) is detected over the first
// seconds of audio, and then one channel is used instead of the mix. The audio stream's start
// offset within the container is reported, not padded with silence: the caller adds
// Stream.StartOffset to its timestamps so cues line up with the video.
package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/verbatimhq/verbatim/audio"
)

// Rate is the sample rate of every decoded stream.
const Rate = 16000

// Sentinel errors; every returned error wraps one of them (or a context error) and names the file.
// All of them are permanent: retrying the same file cannot succeed (see IsPermanent).
var (
	ErrNotFound      = errors.New("no such file")
	ErrEmpty         = errors.New("empty file")
	ErrNoAudio       = errors.New("no audio stream")
	ErrNoTrack       = errors.New("no such audio track")
	ErrCorrupt       = errors.New("truncated or corrupt media")
	ErrUnsupported   = errors.New("unsupported format or codec")
	ErrFFmpegMissing = errors.New("ffmpeg not found (install ffmpeg: apt install ffmpeg / brew install ffmpeg)")
	ErrTooLong       = errors.New("duration over the limit")
	ErrTooLarge      = errors.New("file size over the limit")
)

// Default limits; generous, they only stop absurd inputs and decompression bombs.
const (
	DefaultMaxDuration = 24 * time.Hour
	DefaultMaxSize     = 20 << 30 // bytes
	DefaultStereoProbe = 30 * time.Second
)

// Options configure Open, Probe and DecodeAll. The zero value is ready to use.
type Options struct {
	// AudioTrack picks the audio stream: "" for the default, a 0-based index among the audio
	// streams ("1" is the second, as ffmpeg's 0:a:1), or a language code ("de", "deu", "ger").
	AudioTrack string
	// Language is the transcription language ("" or "auto" when unknown). With no AudioTrack,
	// the first audio stream tagged with this language is preferred over the first stream.
	Language string

	MaxDuration time.Duration // decoded audio beyond this fails with ErrTooLong; 0 = 24 h
	MaxSize     int64         // files larger than this fail with ErrTooLarge; 0 = 20 GiB

	// StereoProbe is how much stereo audio is examined for phase inversion before the first
	// sample is returned; 0 = 30 s, negative = never (always mix).
	StereoProbe time.Duration

	// FFmpeg and FFprobe are the programs to run; "" looks "ffmpeg"/"ffprobe" up in PATH.
	FFmpeg, FFprobe string
	// NoNative sends every file through ffmpeg: WAV files too, and on macOS the files that
	// AudioToolbox would decode.
	NoNative bool
}

func (o *Options) maxDuration() time.Duration {
	if o.MaxDuration > 0 {
		return o.MaxDuration
	}
	return DefaultMaxDuration
}

func (o *Options) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return DefaultMaxSize
}

func (o *Options) stereoProbe() time.Duration {
	if o.StereoProbe == 0 {
		return DefaultStereoProbe
	}
	return max(0, o.StereoProbe)
}

// IsPermanent reports whether err is one of this package's input errors, which retrying the
// same file cannot fix. Context cancellation, a killed decoder and I/O errors are not permanent.
func IsPermanent(err error) bool {
	for _, e := range []error{ErrNotFound, ErrEmpty, ErrNoAudio, ErrNoTrack, ErrCorrupt,
		ErrUnsupported, ErrFFmpegMissing, ErrTooLong, ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Downmix says how a stream's channels become mono.
type Downmix int

const (
	DownmixMono    Downmix = iota // the source is mono
	DownmixMix                    // the channels are averaged
	DownmixLeft                   // phase-inverted stereo: only the left channel is used
	DownmixRight                  // phase-inverted stereo: only the right channel is used
	DownmixPending                // not decided yet (before the first Read)
)

func (d Downmix) String() string {
	switch d {
	case DownmixMono:
		return "mono"
	case DownmixMix:
		return "mix"
	case DownmixLeft:
		return "left"
	case DownmixRight:
		return "right"
	}
	return "pending"
}

// Meta describes the decoded audio of a file.
type Meta struct {
	Path  string
	Info  *Info      // the whole file, as ffprobe (or the WAV header, or macOS) describes it
	Track StreamInfo // the audio stream being decoded
	// StartOffset is where the decoded audio begins on the file's timeline (the audio stream's
	// start relative to the earliest stream): add it to every timestamp of the decoded audio.
	StartOffset time.Duration
	Native      bool // decoded without ffmpeg: by the audio package, or by macOS's frameworks
}

// openPlatform decodes a file with the operating system's own decoders: on macOS
// (avasset_darwin.go sets it) AudioToolbox's ExtAudioFile for audio-only files and the default
// track, else AVFoundation's AVAssetReader for QuickTime/MP4 containers; nil elsewhere. Open
// tries it after the WAV reader and before ffprobe. It chooses the track itself (selectTrack
// over the Info it returns, from opts.AudioTrack and opts.Language) and returns it; Open derives
// the start offset from it (startOffset). Its errors wrap errNotNative for a file it does not
// take, or another sentinel (naming the file) for one it tried; Open then gives the file to
// ffmpeg either way, and reports the latter only when ffmpeg is missing too.
var openPlatform func(path string, opts Options) (source, *Info, StreamInfo, error)

// Stream is the decoded audio of one file: 16 kHz mono float32 in [-1, 1], read in order.
// It is not safe for concurrent use. Close it to stop the decoder.
type Stream struct {
	Meta

	src     source
	ctx     context.Context // owned for the life of the decoder process, as exec.CommandContext's
	probe   int             // stereo frames to examine before deciding the downmix
	downmix Downmix
	rs      *chunkResampler // nil when the source is already at Rate
	limit   int64           // most output samples allowed

	l, r   []float32 // source frames
	mono   []float32 // mono at the source rate
	out    []float32 // ready output
	outPos int
	count  int64 // samples returned so far
	err    error // sticky
	closed bool
}

// Open probes the file at path, chooses its audio track and starts decoding it. Errors wrap
// ErrNotFound, ErrEmpty, ErrTooLarge, ErrTooLong, ErrNoAudio, ErrNoTrack, ErrCorrupt,
// ErrUnsupported or ErrFFmpegMissing and name the file. The stream holds a decoder process
// until Close; ctx bounds its whole life.
func Open(ctx context.Context, path string, opts Options) (*Stream, error) {
	if err := checkFile(path, &opts); err != nil {
		return nil, err
	}
	s := &Stream{ctx: ctx, limit: int64(opts.maxDuration().Seconds() * Rate)}
	s.Path = path
	var platformErr error // why the platform's decoder did not take the file
	if !opts.NoNative {
		src, info, err := openWAV(path)
		switch {
		case err == nil:
			if _, err := selectTrack(info, opts.AudioTrack, opts.Language); err != nil {
				src.close()
				return nil, fmt.Errorf("media %s: %w", path, err)
			}
			s.src, s.Info, s.Native = src, info, true
			s.Track = info.Streams[0]
		case errors.Is(err, errNotNative):
			// Not a WAV the audio package reads; the platform's decoder or ffmpeg may.
		default:
			return nil, fmt.Errorf("media %s: %w", path, err)
		}
		if s.src == nil && openPlatform != nil {
			src, info, tr, err := openPlatform(path, opts)
			if err == nil {
				s.src, s.Info, s.Track, s.Native = src, info, tr, true
				s.StartOffset = startOffset(info, tr)
			} else if !errors.Is(err, errNotNative) {
				platformErr = err
			}
		}
	}
	if s.src == nil {
		info, err := probe(ctx, path, opts, false) // the platform's decoders were tried above
		if err != nil {
			if platformErr != nil && errors.Is(err, ErrFFmpegMissing) {
				// Neither decoder can read it: say why the platform's did not, and that ffmpeg,
				// which might have, is missing.
				return nil, fmt.Errorf("%w; and %w", platformErr, ErrFFmpegMissing)
			}
			return nil, err
		}
		tr, err := selectTrack(info, opts.AudioTrack, opts.Language)
		if err != nil {
			return nil, fmt.Errorf("media %s: %w", path, err)
		}
		if tr.Codec == "" || tr.Codec == "none" || tr.Codec == "unknown" {
			return nil, fmt.Errorf("media %s: %w (audio stream %d has no decoder)", path, ErrUnsupported, tr.Index)
		}
		s.Info, s.Track = info, tr
		s.StartOffset = startOffset(info, tr)
		dur := tr.Duration
		if dur == 0 && info.Duration > 0 {
			dur = max(0, info.Duration-s.StartOffset)
		}
		src, err := startFFmpeg(ctx, path, tr, dur, opts)
		if err != nil {
			return nil, err
		}
		s.src = src
	}
	if d := s.Info.Duration; d > opts.maxDuration() {
		s.src.close()
		return nil, fmt.Errorf("media %s: %w (%v > %v)", path, ErrTooLong, d.Round(time.Second), opts.maxDuration())
	}
	s.downmix = DownmixPending
	if s.src.channels() == 1 {
		s.downmix = DownmixMono
	} else {
		s.probe = int(opts.stereoProbe().Seconds() * float64(s.src.rate()))
		if s.probe == 0 {
			s.downmix = DownmixMix
		}
	}
	if s.src.rate() != Rate {
		s.rs = newChunkResampler(s.src.rate(), Rate)
	}
	return s, nil
}

// checkFile turns the common failures (missing, empty, too large) into their errors before
// any decoder runs.
func checkFile(path string, opts *Options) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("media %s: %w", path, ErrNotFound)
	case err != nil:
		return fmt.Errorf("media %s: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("media %s: %w (a directory)", path, ErrUnsupported)
	case st.Size() == 0 && st.Mode().IsRegular():
		return fmt.Errorf("media %s: %w", path, ErrEmpty)
	case st.Size() > opts.maxSize():
		return fmt.Errorf("media %s: %w (%d bytes > %d)", path, ErrTooLarge, st.Size(), opts.maxSize())
	}
	return nil
}

// startOffset is the audio stream's start relative to the earliest audio or video stream (the
// container's time zero as players show it). Cover images and subtitle streams do not count.
func startOffset(info *Info, tr StreamInfo) time.Duration {
	if !tr.HasStart {
		return 0
	}
	ref, found := time.Duration(0), false
	for _, s := range info.Streams {
		if !s.HasStart || s.AttachedPic || (s.Type != "audio" && s.Type != "video") {
			continue
		}
		if !found || s.StartTime < ref {
			ref, found = s.StartTime, true
		}
	}
	return max(0, tr.StartTime-ref)
}

// Downmix says how the channels are combined; DownmixPending until the first Read returns.
func (s *Stream) Downmix() Downmix { return s.downmix }

// Decoded returns how much audio Read has returned so far.
func (s *Stream) Decoded() time.Duration {
	return time.Duration(s.count) * time.Second / Rate
}

// Read reads up to len(p) samples into p, like io.Reader: it returns n > 0 or an error, and
// (0, io.EOF) at the end. Decoding failures wrap ErrCorrupt, ErrUnsupported or ErrTooLong and
// name the file; a cancelled context gives the context's error.
func (s *Stream) Read(p []float32) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for s.outPos == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.outPos = s.out[:0], 0
		if err := s.fill(); err != nil {
			s.err = err
			s.src.close()
		}
	}
	n := copy(p, s.out[s.outPos:])
	s.outPos += n
	s.count += int64(n)
	if s.count > s.limit {
		s.err = fmt.Errorf("media %s: %w (decoded more than %v)", s.Path, ErrTooLong, time.Duration(s.limit)*time.Second/Rate)
		s.src.close()
		return 0, s.err
	}
	return n, nil
}

// ReadWindow fills win with the next samples. Only the last window of the stream is short:
// it returns n < len(win) with a nil error there, and (0, io.EOF) after it. Errors are Read's.
func (s *Stream) ReadWindow(win []float32) (int, error) {
	n := 0
	for n < len(win) {
		m, err := s.Read(win[n:])
		n += m
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Close stops the decoder and releases its resources. It is idempotent.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.err == nil {
		s.err = fmt.Errorf("media %s: read after close", s.Path)
	}
	return s.src.close()
}

// frameBlock is how many source frames one fill step reads.
const frameBlock = 8192

// fill appends the next decoded output to s.out, or returns io.EOF or an error.
func (s *Stream) fill() error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("media %s: %w", s.Path, err)
	}
	if s.downmix == DownmixPending {
		return s.decide()
	}
	if cap(s.l) < frameBlock {
		s.l, s.r = make([]float32, frameBlock), make([]float32, frameBlock)
	}
	n, err := s.src.read(s.l[:frameBlock], s.r[:frameBlock])
	if n > 0 {
		s.emit(s.l[:n], s.r[:n])
	}
	if errors.Is(err, io.EOF) {
		if s.rs != nil {
			s.out = s.rs.flush(s.out)
		}
		if len(s.out) > 0 {
			return nil
		}
		if s.count == 0 {
			return fmt.Errorf("media %s: %w (no audio samples decoded)", s.Path, ErrEmpty)
		}
		return io.EOF
	}
	if err != nil {
		if s.ctx.Err() != nil {
			return fmt.Errorf("media %s: %w", s.Path, s.ctx.Err())
		}
		return err
	}
	return nil
}

// emit converts frames to mono with the chosen downmix and passes them through the resampler.
func (s *Stream) emit(l, r []float32) {
	var m []float32
	switch s.downmix {
	case DownmixMono, DownmixLeft:
		m = l
	case DownmixRight:
		m = r
	default:
		s.mono = s.mono[:0]
		for i := range l {
			s.mono = append(s.mono, (l[i]+r[i])/2)
		}
		m = s.mono
	}
	if s.rs == nil {
		s.out = append(s.out, m...)
		return
	}
	s.out = s.rs.write(s.out, m)
}

// decide examines up to s.probe stereo frames and chooses the downmix. A source that can
// rewind (a WAV file) is scanned and rewound, so nothing is held; otherwise (a decoder pipe) the
// frames are buffered, at most StereoProbe of 16 kHz stereo, and emitted after the decision.
func (s *Stream) decide() error {
	buf, buf2 := make([]float32, frameBlock), make([]float32, frameBlock)
	s.l, s.r = buf, buf2
	rw, canRewind := s.src.(rewinder)
	var stats phaseStats
	var l, r []float32
	var err error
	for stats.n < s.probe {
		var n int
		n, err = s.src.read(buf[:min(frameBlock, s.probe-stats.n)], buf2)
		stats.add(buf[:n], buf2[:n])
		if !canRewind {
			l, r = append(l, buf[:n]...), append(r, buf2[:n]...)
		}
		if err != nil {
			break
		}
	}
	s.downmix = stats.decide()
	if errors.Is(err, io.EOF) && stats.n == 0 {
		return fmt.Errorf("media %s: %w (no audio samples decoded)", s.Path, ErrEmpty)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if s.ctx.Err() != nil {
			return fmt.Errorf("media %s: %w", s.Path, s.ctx.Err())
		}
		return err
	}
	if canRewind {
		if err := rw.rewind(); err != nil {
			return fmt.Errorf("media %s: %w", s.Path, err)
		}
		return nil
	}
	s.emit(l, r)
	if errors.Is(err, io.EOF) {
		if s.rs != nil {
			s.out = s.rs.flush(s.out)
		}
		s.err = io.EOF // delivered after the buffered samples
	}
	return nil
}

// rewinder is a source that can start over, so the stereo analysis need not buffer.
type rewinder interface {
	rewind() error
}

// source yields the frames of one audio stream: mono, or stereo as two planes.
type source interface {
	// read fills l (and r when stereo) with up to len(l) frames. It returns n > 0 with a nil
	// error, or 0 and io.EOF (at the end, again on every later call) or an error naming the file.
	read(l, r []float32) (int, error)
	channels() int // 1 or 2
	rate() int
	// close releases the decoder; idempotent.
	close() error
}

// Decoded audio of a whole file.
type Decoded struct {
	Meta
	PCM     *audio.PCM // 16 kHz mono
	Downmix Downmix
}

// DecodeAll decodes the whole audio of the file at path into memory, for short files. It fails
// with ErrTooLong when the audio exceeds opts.MaxDuration (0 = 24 h), which callers should set
// to what they are willing to hold (4 bytes per sample, 64 KB per second). Errors are Open's
// and Read's.
func DecodeAll(ctx context.Context, path string, opts Options) (*Decoded, error) {
	s, err := Open(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var samples []float32
	if d := s.Info.Duration; d > 0 { // a hint only: the header may lie, so at most 10 minutes
		samples = make([]float32, 0, int(min(d, 10*time.Minute).Seconds()*Rate)+Rate)
	}
	buf := make([]float32, 1<<15)
	for {
		n, err := s.Read(buf)
		samples = append(samples, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return &Decoded{Meta: s.Meta, PCM: &audio.PCM{Rate: Rate, Samples: samples}, Downmix: s.downmix}, nil
}
