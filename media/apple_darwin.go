package media

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// macOS decodes common audio files itself, through AudioToolbox's ExtAudioFile (the plain C
// API, called through purego, without cgo), so that users need no ffmpeg for them. Open tries
// it after the native WAV reader and before AVFoundation and ffprobe (see openDarwin in
// avasset_darwin.go and openPlatform in media.go); anything it does not take or cannot open goes
// to ffmpeg as before.
//
// What it takes: files whose extension names an audio-only format that Core Audio's AudioFile
// reads (appleExtensions), and only the default audio track (Options.AudioTrack "" or "0").
// ExtAudioFile reads the first audio track of a file and knows nothing of video, track
// languages or a stream's start offset in a container, so video containers (.mp4, .mov, .m4v,
// .mkv, ...) are left to AVAssetReader (QuickTime/MP4 family, avasset_darwin.go) and ffmpeg.
//
// The decoder hands out interleaved float32 at the file's own sample rate (rounded to whole
// hertz; the resampler in media.go takes any rate) and all of the file's channels: mono and
// stereo go to Stream as they are, and more channels are averaged to mono here, as the audio
// package does for WAV files (ExtAudioFile, left alone, remaps surround to stereo by dropping
// channels, which would lose a film's centre channel, where the dialogue is).
//
// This file was compiled, never run, where it was written (Linux, no Mac). A first run on a Mac
// must check, in order:
//  1. go test ./media -run Apple: the framework loads, every symbol binds, and the WAV, AIFF and
//     six-channel cases match the audio package within 1e-4 (struct layouts, the client format,
//     the AudioBufferList, interleaving).
//  2. go test ./media: the ffmpeg-based tests whose expectations assume Linux (TestDecodeFormats'
//     native column and codec names for mp3/m4a/flac/caf/aiff/amr, TestErrors' "ffmpeg missing"
//     case on tone.mp3, which now decodes natively) need darwin-aware expectations.
//  3. Lossy formats against ffmpeg (mp3, AAC in .m4a with and without faststart, HE-AAC):
//     same length within a few milliseconds (encoder delay and padding, which ExtAudioFile trims
//     from the file's packet table information and ffmpeg from edit lists), and a clear
//     ErrCorrupt for a truncated file (the 90% rule, nativeStream.truncated).
//  4. kExtAudioFileProperty_FileLengthFrames for VBR mp3 without a Xing header and for FLAC
//     without a total in STREAMINFO: an estimate or 0 is fine (Info.Duration is a hint and
//     ErrTooLong is also enforced by counting); a large overestimate would trip the 90% rule.
//  5. A long file (an hour of mp3): memory stays flat and the speed is at least ffmpeg's.

// appleExtensions are the file extensions handed to ExtAudioFile: audio-only formats that
// Core Audio's AudioFile reads (AudioFileTypeID: AIFF, AIFC, WAVE, W64, CAF, MP1/2/3, AAC ADTS,
// M4A/M4B, AMR, FLAC, AC-3, NeXT/Sun).
var appleExtensions = map[string]bool{
	".aif": true, ".aiff": true, ".aifc": true, ".wav": true, ".w64": true, ".caf": true,
	".mp3": true, ".mp2": true, ".mp1": true, ".aac": true, ".adts": true, ".m4a": true,
	".m4b": true, ".amr": true, ".flac": true, ".ac3": true, ".au": true, ".snd": true,
}

// maxAppleChannels bounds the channels we ask ExtAudioFile to deliver interleaved.
const maxAppleChannels = 32

// Four-char codes and constants from Apple's headers (CoreAudioTypes/CoreAudioBaseTypes.h,
// AudioToolbox/ExtendedAudioFile.h and AudioFile.h), written as the big-endian UInt32 of their
// four characters as C compilers read a multi-character constant like 'ffmt'.
const (
	kExtAudioFileProperty_FileDataFormat   = 0x66666d74 // 'ffmt': AudioStreamBasicDescription
	kExtAudioFileProperty_ClientDataFormat = 0x63666d74 // 'cfmt': AudioStreamBasicDescription
	kExtAudioFileProperty_FileLengthFrames = 0x2366726d // '#frm': SInt64
	kExtAudioFileProperty_AudioFile        = 0x6166696c // 'afil': AudioFileID
	kAudioFilePropertyFileFormat           = 0x66666d74 // 'ffmt': AudioFileTypeID (UInt32)

	kAudioFormatLinearPCM           = 0x6c70636d // 'lpcm'
	kAudioFormatFlagIsFloat         = 1 << 0
	kAudioFormatFlagIsBigEndian     = 1 << 1
	kAudioFormatFlagIsSignedInteger = 1 << 2
	kAudioFormatFlagIsPacked        = 1 << 3
	// kAudioFormatFlagsNativeEndian is 0 on the little-endian machines macOS runs on, so
	// "native float packed" is IsFloat|IsPacked.

	// AudioFile errors that mean the file itself is bad (others mean unsupported).
	kAudioFileInvalidFileError         = 0x6474613f // 'dta?'
	kAudioFileInvalidPacketOffsetError = 0x70636b3f // 'pck?'
	kAudioFileEndOfFileError           = -39

	coreFoundationPath = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
	audioToolboxPath   = "/System/Library/Frameworks/AudioToolbox.framework/AudioToolbox"
)

// audioStreamBasicDescription is AudioStreamBasicDescription (CoreAudioBaseTypes.h): a Float64
// and eight UInt32, 40 bytes, no padding.
type audioStreamBasicDescription struct {
	SampleRate       float64
	FormatID         uint32
	FormatFlags      uint32
	BytesPerPacket   uint32
	FramesPerPacket  uint32
	BytesPerFrame    uint32
	ChannelsPerFrame uint32
	BitsPerChannel   uint32
	Reserved         uint32
}

// audioBuffer is AudioBuffer: UInt32 mNumberChannels, UInt32 mDataByteSize, void *mData;
// 16 bytes on 64-bit.
type audioBuffer struct {
	NumberChannels uint32
	DataByteSize   uint32
	Data           unsafe.Pointer
}

// audioBufferList is AudioBufferList with one buffer: UInt32 mNumberBuffers, then (at offset
// 8, the alignment of the pointer in AudioBuffer) AudioBuffer mBuffers[1]; 24 bytes. Go aligns
// Buffers to 8 by itself, as C does.
type audioBufferList struct {
	NumberBuffers uint32
	Buffers       [1]audioBuffer
}

// The layouts above, checked at compile time: an array of negative length does not compile.
var (
	_ [unsafe.Sizeof(audioStreamBasicDescription{}) - 40]byte
	_ [40 - unsafe.Sizeof(audioStreamBasicDescription{})]byte
	_ [unsafe.Sizeof(audioBufferList{}) - 24]byte
	_ [24 - unsafe.Sizeof(audioBufferList{})]byte
	_ [unsafe.Offsetof(audioBufferList{}.Buffers) - 8]byte
	_ [8 - unsafe.Offsetof(audioBufferList{}.Buffers)]byte
)

// toolbox is the C functions used. Every argument that Apple declares as a pointer is passed
// as a Go pointer (purego passes *T and unsafe.Pointer as void*, and keeps them alive for the
// call); no struct is passed by value. Opaque references (CFURLRef, ExtAudioFileRef,
// AudioFileID) are uintptr; OSStatus is int32; CFIndex is long (int on 64-bit); Boolean is
// unsigned char (uint8).
type toolbox struct {
	CFURLCreateFromFileSystemRepresentation func(alloc uintptr, buf *byte, n int, isDirectory uint8) uintptr
	CFRelease                               func(cf uintptr)

	ExtAudioFileOpenURL     func(url uintptr, out *uintptr) int32
	ExtAudioFileGetProperty func(f uintptr, id uint32, size *uint32, data unsafe.Pointer) int32
	ExtAudioFileSetProperty func(f uintptr, id uint32, size uint32, data unsafe.Pointer) int32
	ExtAudioFileRead        func(f uintptr, frames *uint32, data *audioBufferList) int32
	ExtAudioFileDispose     func(f uintptr) int32
	AudioFileGetProperty    func(af uintptr, id uint32, size *uint32, data unsafe.Pointer) int32
}

// loadToolbox opens CoreFoundation and AudioToolbox and binds the functions, once.
var loadToolbox = sync.OnceValues(openToolbox)

func openToolbox() (*toolbox, error) {
	cf, err := purego.Dlopen(coreFoundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("open CoreFoundation: %w", err)
	}
	at, err := purego.Dlopen(audioToolboxPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("open AudioToolbox: %w", err)
	}
	t := &toolbox{}
	for _, f := range []struct {
		lib  uintptr
		fn   any
		name string
	}{
		{cf, &t.CFURLCreateFromFileSystemRepresentation, "CFURLCreateFromFileSystemRepresentation"},
		{cf, &t.CFRelease, "CFRelease"},
		{at, &t.ExtAudioFileOpenURL, "ExtAudioFileOpenURL"},
		{at, &t.ExtAudioFileGetProperty, "ExtAudioFileGetProperty"},
		{at, &t.ExtAudioFileSetProperty, "ExtAudioFileSetProperty"},
		{at, &t.ExtAudioFileRead, "ExtAudioFileRead"},
		{at, &t.ExtAudioFileDispose, "ExtAudioFileDispose"},
		{at, &t.AudioFileGetProperty, "AudioFileGetProperty"},
	} {
		if err := bindSymbol(f.lib, f.fn, f.name); err != nil {
			return nil, fmt.Errorf("AudioToolbox: %w", err)
		}
	}
	return t, nil
}

// openApple opens path with ExtAudioFile. It returns errNotNative (wrapped) for a file it does
// not take (see appleExtensions) or when AudioToolbox cannot be loaded, and ErrUnsupported or
// ErrCorrupt (wrapped, naming the file and the OSStatus) when AudioToolbox refused the file;
// Open then tries ffmpeg either way.
func openApple(path string) (source, *Info, error) {
	if !appleExtensions[strings.ToLower(filepath.Ext(path))] {
		return nil, nil, errNotNative
	}
	t, err := loadToolbox()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errNotNative, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("media %s: %w", path, err)
	}
	abs, err := filepath.Abs(path) // a relative URL would be resolved against the cwd anyway
	if err != nil {
		return nil, nil, fmt.Errorf("media %s: %w", path, err)
	}
	b := []byte(abs)
	url := t.CFURLCreateFromFileSystemRepresentation(0, &b[0], len(b), 0)
	runtime.KeepAlive(b)
	if url == 0 {
		return nil, nil, fmt.Errorf("%w: media %s: CFURLCreateFromFileSystemRepresentation failed", errNotNative, path)
	}
	var ref uintptr
	status := t.ExtAudioFileOpenURL(url, &ref)
	t.CFRelease(url) // the ExtAudioFile keeps what it needs
	if status != 0 || ref == 0 {
		return nil, nil, appleError(path, "open", status)
	}
	s := &appleSource{nativeStream: nativeStream{path: path}, t: t, ref: ref}
	info, err := s.setup(st.Size())
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, info, nil
}

// setup reads the file's format and length, sets the client format, and describes the file.
func (s *appleSource) setup(size int64) (*Info, error) {
	var file audioStreamBasicDescription
	n := uint32(unsafe.Sizeof(file))
	if st := s.t.ExtAudioFileGetProperty(s.ref, kExtAudioFileProperty_FileDataFormat, &n, unsafe.Pointer(&file)); st != 0 {
		return nil, appleError(s.path, "file data format", st)
	}
	ch := int(file.ChannelsPerFrame)
	rate := math.Round(file.SampleRate)
	if ch < 1 || ch > maxAppleChannels || math.IsNaN(rate) || rate < 1 || rate > 1<<22 {
		return nil, fmt.Errorf("media %s: %w (AudioToolbox: %d channels at %g Hz)", s.path, ErrUnsupported, ch, file.SampleRate)
	}
	s.ch, s.sr = ch, int(rate)

	// Interleaved native-endian float32 at the (rounded) file rate, every channel of the file.
	client := audioStreamBasicDescription{
		SampleRate:       rate,
		FormatID:         kAudioFormatLinearPCM,
		FormatFlags:      kAudioFormatFlagIsFloat | kAudioFormatFlagIsPacked,
		BytesPerPacket:   uint32(4 * ch),
		FramesPerPacket:  1,
		BytesPerFrame:    uint32(4 * ch),
		ChannelsPerFrame: uint32(ch),
		BitsPerChannel:   32,
	}
	if st := s.t.ExtAudioFileSetProperty(s.ref, kExtAudioFileProperty_ClientDataFormat, uint32(unsafe.Sizeof(client)), unsafe.Pointer(&client)); st != 0 {
		return nil, appleError(s.path, "client data format", st)
	}

	// The length in file frames: at the file's rate, which is the client's unless the rate was
	// not whole hertz. Unknown (an error, or 0) leaves the duration unknown.
	var frames int64
	n = uint32(unsafe.Sizeof(frames))
	if st := s.t.ExtAudioFileGetProperty(s.ref, kExtAudioFileProperty_FileLengthFrames, &n, unsafe.Pointer(&frames)); st != 0 || frames < 0 {
		frames = 0
	}
	var dur time.Duration
	if frames > 0 && float64(frames)/file.SampleRate < maxSeconds {
		dur = time.Duration(float64(frames) / file.SampleRate * float64(time.Second))
		s.declared = int64(math.Round(float64(frames) * rate / file.SampleRate))
	}

	codec := appleCodec(&file)
	tr := StreamInfo{
		Index: 0, Type: "audio", Codec: codec, CodecLong: "AudioToolbox " + fourCC(file.FormatID),
		SampleRate: s.sr, Channels: ch, Duration: dur, HasStart: true, Default: true,
	}
	format, long := s.fileFormat()
	info := &Info{Format: format, FormatLong: long, Duration: dur, Size: size, Streams: []StreamInfo{tr}}
	return info, nil
}

// fileFormat names the container as ffprobe would, from the AudioFile under the ExtAudioFile;
// only descriptive, so a failure gives a generic name.
func (s *appleSource) fileFormat() (string, string) {
	var af uintptr
	n := uint32(unsafe.Sizeof(af))
	if st := s.t.ExtAudioFileGetProperty(s.ref, kExtAudioFileProperty_AudioFile, &n, unsafe.Pointer(&af)); st != 0 || af == 0 {
		return "audiotoolbox", "AudioToolbox (native)"
	}
	var typ uint32
	n = uint32(unsafe.Sizeof(typ))
	if st := s.t.AudioFileGetProperty(af, kAudioFilePropertyFileFormat, &n, unsafe.Pointer(&typ)); st != 0 {
		return "audiotoolbox", "AudioToolbox (native)"
	}
	code := fourCC(typ)
	names := map[string]string{
		"AIFF": "aiff", "AIFC": "aiff", "WAVE": "wav", "RF64": "wav", "BW64": "wav", "W64f": "w64",
		"caff": "caf", "MPG3": "mp3", "MPG2": "mp3", "MPG1": "mp3", "adts": "aac", "ac-3": "ac3",
		"m4af": "mov,mp4,m4a,3gp,3g2,mj2", "m4bf": "mov,mp4,m4a,3gp,3g2,mj2", "mp4f": "mov,mp4,m4a,3gp,3g2,mj2",
		"amrf": "amr", "flac": "flac", "NeXT": "au",
	}
	name := names[code]
	if name == "" {
		name = strings.TrimSpace(code)
	}
	return name, "AudioToolbox '" + code + "' (native)"
}

// appleSource reads an ExtAudioFile as interleaved float32 and splits or averages the channels.
// The path, lock, sticky error, format, declared length and count of frames read are in
// nativeStream (native_darwin.go).
type appleSource struct {
	nativeStream
	t   *toolbox
	ref uintptr // the ExtAudioFileRef; 0 once closed
	buf []float32
}

// read fills l (and r for stereo) with up to len(l) frames.
func (s *appleSource) read(l, r []float32) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readable(s.ref != 0); err != nil {
		return 0, err
	}
	want := min(len(l), 1<<16)
	if want == 0 {
		return 0, nil
	}
	need := want * s.ch
	if cap(s.buf) < need {
		s.buf = make([]float32, need)
	}
	buf := s.buf[:need]
	// The buffer list holds a pointer to Go memory, which C may only see pinned (the cgo
	// pointer rules, which purego follows). ExtAudioFileRead is synchronous and keeps nothing.
	var pin runtime.Pinner
	pin.Pin(&buf[0])
	abl := audioBufferList{NumberBuffers: 1, Buffers: [1]audioBuffer{{
		NumberChannels: uint32(s.ch), DataByteSize: uint32(4 * need), Data: unsafe.Pointer(&buf[0]),
	}}}
	n := uint32(want)
	st := s.t.ExtAudioFileRead(s.ref, &n, &abl)
	pin.Unpin()
	if st != 0 {
		s.err = fmt.Errorf("media %s: %w (AudioToolbox read: %s)", s.path, ErrCorrupt, osStatus(st))
		return 0, s.err
	}
	frames := min(int(n), want)
	if frames == 0 { // 0 frames is how ExtAudioFileRead says end of file
		s.err = s.atEnd(io.EOF) // ErrCorrupt for a file cut short (nativeStream.truncated)
		return 0, s.err
	}
	s.frames += int64(frames)
	return deinterleave(l, r, buf[:frames*s.ch], s.ch), nil
}

// close disposes of the ExtAudioFile; idempotent.
func (s *appleSource) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ref == 0 {
		return nil
	}
	st := s.t.ExtAudioFileDispose(s.ref)
	s.ref = 0
	s.markClosed()
	if st != 0 {
		return fmt.Errorf("media %s: AudioToolbox dispose: %s", s.path, osStatus(st))
	}
	return nil
}

// clampSample keeps a decoded sample in [-1, 1], NaN as 0, as the other sources do (lossy
// decoders overshoot a little on loud material).
func clampSample(v float32) float32 {
	if v != v {
		return 0
	}
	return max(-1, min(1, v))
}

// appleError wraps an AudioToolbox failure to open or set up a file: ErrCorrupt when
// AudioToolbox says the file is malformed, else ErrUnsupported.
func appleError(path, what string, st int32) error {
	sentinel := ErrUnsupported
	switch st {
	case kAudioFileInvalidFileError, kAudioFileInvalidPacketOffsetError, kAudioFileEndOfFileError:
		sentinel = ErrCorrupt
	}
	return fmt.Errorf("media %s: %w (AudioToolbox %s: %s)", path, sentinel, what, osStatus(st))
}

// osStatus prints an OSStatus as its four characters when it is a four-char code (most
// AudioToolbox errors are: 'typ?', 'fmt?', 'dta?'), with the number.
func osStatus(st int32) string {
	if c := fourCC(uint32(st)); !strings.ContainsFunc(c, func(r rune) bool { return r < ' ' || r > '~' }) {
		return fmt.Sprintf("'%s' (%d)", c, st)
	}
	return fmt.Sprintf("OSStatus %d", st)
}

// fourCC is the four characters of a four-char code.
func fourCC(v uint32) string {
	return string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// appleCodec names the file's encoding as ffprobe's codec_name does where there is a
// counterpart, else by its AudioFormatID's four characters.
func appleCodec(f *audioStreamBasicDescription) string {
	code := fourCC(f.FormatID)
	switch code {
	case "lpcm":
		kind := "s"
		switch {
		case f.FormatFlags&kAudioFormatFlagIsFloat != 0:
			kind = "f"
		case f.FormatFlags&kAudioFormatFlagIsSignedInteger == 0:
			kind = "u"
		}
		if f.BitsPerChannel == 8 {
			return "pcm_" + kind + "8"
		}
		endian := "le"
		if f.FormatFlags&kAudioFormatFlagIsBigEndian != 0 {
			endian = "be"
		}
		return fmt.Sprintf("pcm_%s%d%s", kind, (f.BitsPerChannel+7)/8*8, endian)
	case "aac ", "aach", "aacp":
		return "aac"
	case ".mp3", ".mp2", ".mp1":
		return code[1:]
	case "alac", "flac", "opus":
		return code
	case "ulaw":
		return "pcm_mulaw"
	case "alaw":
		return "pcm_alaw"
	case "samr":
		return "amr_nb"
	case "sawb":
		return "amr_wb"
	case "ac-3":
		return "ac3"
	case "ec-3":
		return "eac3"
	case "ima4":
		return "adpcm_ima_qt"
	}
	if c := strings.TrimSpace(code); c != "" && !strings.ContainsFunc(c, func(r rune) bool { return r < ' ' || r > '~' }) {
		return c
	}
	return fmt.Sprintf("0x%08x", f.FormatID)
}
