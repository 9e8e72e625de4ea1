package media

import (
	"fmt"
	"sync"
	"time"

	"github.com/ebitengine/purego"
)

// nativeStream is what the two macOS decoders share (appleSource, ExtAudioFile, apple_darwin.go;
// avSource, AVAssetReader, avasset_darwin.go): both decode to interleaved float32, hand out
// mono or stereo, end with a sticky error and apply the same truncation rule.
type nativeStream struct {
	path     string
	mu       sync.Mutex // a close from another goroutine waits for a read in progress
	ch, sr   int
	declared int64 // frames the file or track declares (at sr); 0 when unknown
	frames   int64 // frames handed out so far
	err      error // sticky: io.EOF or the error that ended the stream
}

func (s *nativeStream) channels() int {
	if s.ch == 2 {
		return 2
	}
	return 1 // mono, or more channels averaged to mono by deinterleave
}

func (s *nativeStream) rate() int { return s.sr }

// readable is the start of a read, with mu held: the sticky error if the stream has ended, an
// error if it is closed (open false), else nil.
func (s *nativeStream) readable(open bool) error {
	if s.err != nil {
		return s.err
	}
	if !open {
		return s.closedError()
	}
	return nil
}

func (s *nativeStream) closedError() error {
	return fmt.Errorf("media %s: stream closed", s.path)
}

// markClosed makes later reads fail as closed, unless the stream had already ended; mu held.
func (s *nativeStream) markClosed() {
	if s.err == nil {
		s.err = s.closedError()
	}
}

// atEnd is the error that ends a stream whose decoder reported its end with eof (io.EOF): eof,
// or ErrCorrupt where the stream is truncated.
func (s *nativeStream) atEnd(eof error) error {
	if !s.truncated() {
		return eof
	}
	got := time.Duration(s.frames) * time.Second / time.Duration(s.sr)
	decl := time.Duration(s.declared) * time.Second / time.Duration(s.sr)
	return fmt.Errorf("media %s: %w (decoded %v of %v)", s.path, ErrCorrupt,
		got.Round(time.Millisecond), decl.Round(time.Millisecond))
}

// truncated reports whether the stream ended well short of the length it declares: a file cut
// short, which ExtAudioFile and AVAssetReader read to where it ends without an error. The
// margin (90% of the declared length, less half a second) is ffmpeg's (see
// ffmpegSource.truncated), since declared lengths of some formats are estimates.
func (s *nativeStream) truncated() bool {
	if s.declared <= 0 {
		return false
	}
	return s.frames < s.declared*9/10-int64(s.sr/2)
}

// deinterleave fills l (and r for stereo) from the interleaved ch-channel frames in src, as many
// as both hold, clamped with clampSample, and returns how many. Mono and stereo are copied as
// they are; more channels are averaged to mono, as the audio package does for WAV files (the
// decoders' own surround-to-stereo conversion may drop channels, losing a film's centre
// channel, where the dialogue is).
func deinterleave(l, r, src []float32, ch int) int {
	frames := min(len(l), len(src)/ch)
	switch ch {
	case 1:
		for i := range frames {
			l[i] = clampSample(src[i])
		}
	case 2:
		for i := range frames {
			l[i], r[i] = clampSample(src[2*i]), clampSample(src[2*i+1])
		}
	default:
		inv := 1 / float32(ch)
		for i := range frames {
			var sum float32
			for _, v := range src[i*ch : (i+1)*ch] {
				sum += clampSample(v)
			}
			l[i] = sum * inv
		}
	}
	return frames
}

// bindSymbol binds the function pointer fn to symbol name of the library handle lib, looking
// it up first (purego.RegisterLibFunc panics on a missing symbol; this returns an error).
func bindSymbol(lib uintptr, fn any, name string) error {
	sym, err := purego.Dlsym(lib, name)
	if err != nil || sym == 0 {
		return fmt.Errorf("no symbol %s: %v", name, err)
	}
	purego.RegisterFunc(fn, sym)
	return nil
}
