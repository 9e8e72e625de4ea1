package media

// macOS decodes the audio of QuickTime/MP4 containers (.mp4, .mov, .m4v, .3gp, ...) itself,
// through AVFoundation's AVAssetReader, called through purego/objc (no cgo), so that users need
// no ffmpeg for their videos. Open tries it (openDarwin, the openPlatform hook of media.go) after
// the WAV reader and ExtAudioFile (apple_darwin.go: audio-only extensions, default track) and
// before ffprobe; whatever it does not take or cannot open goes to ffmpeg, silently.
//
// What it takes: the extensions in avassetFormats (the QuickTime/MP4 family; .m4a and .m4b only
// when a track other than the default is asked for, since ExtAudioFile takes the default). It
// lists every track of the asset as a StreamInfo (Index: the position in [asset tracks], which is
// the container's track order, as ffmpeg numbers streams), chooses the audio track as ffmpeg's
// path does (selectTrack: AudioTrack as an index among the audio tracks or a language, else the
// first track in Options.Language, else the first), and reads it through an
// AVAssetReaderTrackOutput as interleaved native-endian float32 at the track's own rate and
// channel count. Mono and stereo go to Stream as they are; more channels are averaged to mono
// here, as apple_darwin.go and the audio package do (no channel count is asked of AVFoundation:
// its surround-to-stereo conversion may drop the centre channel, where dialogue is).
//
// The start offset: the presentation time of the first decoded buffer is the chosen track's
// StartTime, every other track's is the start of its timeRange; Open's startOffset takes the
// difference from the earliest audio or video track, as for ffprobe's data. (If AVFoundation
// fills an initial empty edit with silence, the first buffer is at the edit's start and the
// silence is in the audio: the timestamps agree either way.)
//
// Asset loading uses the synchronous properties (tracks, duration, timeRange, ...), which block
// until loaded (deprecated since macOS 13 in favour of loadValuesAsynchronouslyForKeys /
// load(.tracks), but available): no run loop, no blocks. Every Objective-C call runs inside an
// autorelease pool on a locked OS thread (avfPool); the asset, reader and output are owned (+1,
// alloc/init) and released by close; each sample buffer (copyNextSampleBuffer, +1) is copied out
// with CMBlockBufferCopyDataBytes and CFReleased at once.
//
// This file was compiled, never run, where it was written (Linux, no Mac). A first run on a Mac
// must check, in order:
//  1. go test ./media -run AVAsset: the frameworks load, every symbol and class binds, and the
//     generated float PCM .mov decodes exactly like the same samples in a WAV (the outputSettings
//     dictionary is accepted: an invalid one raises an Objective-C exception, which aborts the
//     process; the CMTime / CMTimeRange struct returns through objc.Send; the ASBD checks).
//  2. The same test's two-track case: AudioTrack "1" and Language "de" pick the second track,
//     and StartOffset plus the leading silence put its first sound at 0.5 s (empty edit).
//  3. With ffmpeg installed (fixtures): video.mp4 (AAC), video.mov (PCM), pattern.mp4 and
//     offset.mp4 decode natively to within a few ms of ffmpeg's length, offset.mp4's burst at
//     2.5 s + 1.0 s on the file's timeline (TestAVAssetAgainstFFmpeg); trunc.mp4 (moov lost)
//     falls back to ffmpeg.
//  4. go test ./media: tests written for Linux that expect ffmpeg for .mp4/.mov (Native false,
//     codec names, "ffmpeg missing" errors for videos) need darwin-aware expectations.
//  5. A long video (an hour, H.264 + AAC): memory stays flat (pools drained per read, sample
//     buffers released) and decoding is at least as fast as ffmpeg's; a 5.1 track averages.
//  6. Probe without ffprobe (PATH without it): the daemon's Duration and NoteFrames get the
//     AVFoundation description.

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"structs"
	"sync"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

func init() {
	openPlatform = openDarwin
	probePlatform = probeDarwin
}

// openDarwin is macOS's openPlatform: ExtAudioFile for the audio-only files it takes when the
// default track is asked for, else AVAssetReader for the containers it takes.
func openDarwin(path string, opts Options) (source, *Info, StreamInfo, error) {
	track := strings.TrimSpace(opts.AudioTrack)
	if appleExtensions[strings.ToLower(filepath.Ext(path))] && (track == "" || track == "0") {
		src, info, err := openApple(path)
		if err != nil {
			return nil, nil, StreamInfo{}, err
		}
		return src, info, info.Streams[0], nil
	}
	return openAVAsset(path, opts)
}

// probeDarwin is macOS's probePlatform, used when ffprobe is missing.
func probeDarwin(path string) (*Info, error) {
	if appleExtensions[strings.ToLower(filepath.Ext(path))] {
		src, info, err := openApple(path)
		if err != nil {
			return nil, err
		}
		src.close()
		return info, nil
	}
	return probeAVAsset(path)
}

// avassetFormats are the extensions AVAssetReader is given, with ffprobe's format_name for each.
var avassetFormats = map[string]string{
	".mp4": "mov,mp4,m4a,3gp,3g2,mj2", ".m4v": "mov,mp4,m4a,3gp,3g2,mj2",
	".mov": "mov,mp4,m4a,3gp,3g2,mj2", ".qt": "mov,mp4,m4a,3gp,3g2,mj2",
	".3gp": "mov,mp4,m4a,3gp,3g2,mj2", ".3g2": "mov,mp4,m4a,3gp,3g2,mj2",
	".m4a": "mov,mp4,m4a,3gp,3g2,mj2", ".m4b": "mov,mp4,m4a,3gp,3g2,mj2",
}

const (
	foundationPath   = "/System/Library/Frameworks/Foundation.framework/Foundation"
	avFoundationPath = "/System/Library/Frameworks/AVFoundation.framework/AVFoundation"
	avfAudioPath     = "/System/Library/Frameworks/AVFAudio.framework/AVFAudio"
	coreMediaPath    = "/System/Library/Frameworks/CoreMedia.framework/CoreMedia"
	coreGraphicsPath = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
	imageIOPath      = "/System/Library/Frameworks/ImageIO.framework/ImageIO"
	libobjcPath      = "/usr/lib/libobjc.A.dylib"

	// AVAssetReaderStatus.
	avReaderReading   = 1
	avReaderCompleted = 2
	avReaderFailed    = 3

	kAudioFormatFlagIsNonInterleaved = 1 << 5

	// CMTimeFlags.
	cmTimeValid            = 1 << 0
	cmTimePositiveInfinity = 1 << 2
	cmTimeNegativeInfinity = 1 << 3
	cmTimeIndefinite       = 1 << 4
)

// cmTime is CMTime (CMTime.h): int64 value, int32 timescale, uint32 flags, int64 epoch; 24 bytes.
type cmTime struct {
	_         structs.HostLayout
	Value     int64
	Timescale int32
	Flags     uint32
	Epoch     int64
}

// cmTimeRange is CMTimeRange: start and duration; 48 bytes.
type cmTimeRange struct {
	_        structs.HostLayout
	Start    cmTime
	Duration cmTime
}

// cmSampleTimingInfo is CMSampleTimingInfo: duration, presentation and decode time stamps.
type cmSampleTimingInfo struct {
	_                              structs.HostLayout
	Duration, Presentation, Decode cmTime
}

var (
	_ [unsafe.Sizeof(cmTime{}) - 24]byte
	_ [24 - unsafe.Sizeof(cmTime{})]byte
	_ [unsafe.Sizeof(cmTimeRange{}) - 48]byte
	_ [48 - unsafe.Sizeof(cmTimeRange{})]byte
	_ [unsafe.Sizeof(cmSampleTimingInfo{}) - 72]byte
	_ [72 - unsafe.Sizeof(cmSampleTimingInfo{})]byte
)

// numeric reports whether t is a finite, valid time.
func (t cmTime) numeric() bool {
	return t.Flags&cmTimeValid != 0 && t.Flags&(cmTimePositiveInfinity|cmTimeNegativeInfinity|cmTimeIndefinite) == 0 && t.Timescale > 0
}

// duration is t as a Duration; ok is false for an invalid, infinite or absurd time.
func (t cmTime) duration() (d time.Duration, ok bool) {
	if !t.numeric() {
		return 0, false
	}
	s := float64(t.Value) / float64(t.Timescale)
	if math.IsNaN(s) || math.Abs(s) > maxSeconds {
		return 0, false
	}
	return time.Duration(math.Round(s * float64(time.Second))), true
}

// cmTimeAt is d as a CMTime in microseconds.
func cmTimeAt(d time.Duration) cmTime {
	return cmTime{Value: d.Microseconds(), Timescale: 1_000_000, Flags: cmTimeValid}
}

// avf is the Objective-C selectors, C functions and constants used, bound once by loadAVF.
type avf struct {
	// libobjc
	poolPush func() uintptr
	poolPop  func(uintptr)
	// objc_msgSend with exact C signatures (arguments that are structs, or results that are not
	// an object or an integer). None returns a struct, so objc_msgSend serves amd64 too; struct
	// results go through objc.Send[T], which picks objc_msgSend_stret where amd64 needs it.
	msgCString  func(self objc.ID, sel objc.SEL) string
	msgNumberF  func(cls objc.ID, sel objc.SEL, v float64) objc.ID
	msgSetTime  func(self objc.ID, sel objc.SEL, t cmTime)
	msgSetSize  func(self objc.ID, sel objc.SEL, s cgSize)
	msgCopyCG   func(self objc.ID, sel objc.SEL, at cmTime, actual *cmTime, err *objc.ID) uintptr
	msgSendBool func(self objc.ID, sel objc.SEL) bool
	msgBoolArg  func(self objc.ID, sel objc.SEL, arg objc.ID) bool

	// CoreFoundation
	CFRelease           func(cf uintptr)
	CFDataCreateMutable func(alloc uintptr, capacity int) uintptr
	CFDataGetLength     func(d uintptr) int
	CFDataGetBytePtr    func(d uintptr) unsafe.Pointer

	// CoreMedia
	CMSampleBufferGetDataBuffer                       func(sb uintptr) uintptr
	CMSampleBufferGetFormatDescription                func(sb uintptr) uintptr
	CMSampleBufferGetSampleTimingInfo                 func(sb uintptr, index int, out *cmSampleTimingInfo) int32
	CMBlockBufferGetDataLength                        func(bb uintptr) uint
	CMBlockBufferCopyDataBytes                        func(bb uintptr, offset, length uint, dest unsafe.Pointer) int32
	CMFormatDescriptionGetMediaSubType                func(fd uintptr) uint32
	CMAudioFormatDescriptionGetStreamBasicDescription func(fd uintptr) unsafe.Pointer

	// CoreGraphics and ImageIO (the stills, avframe_darwin.go)
	CGImageGetWidth                  func(img uintptr) uint
	CGImageGetHeight                 func(img uintptr) uint
	CGColorSpaceCreateDeviceRGB      func() uintptr
	CGBitmapContextCreate            func(data uintptr, w, h, bitsPerComponent, bytesPerRow uint, cs uintptr, info uint32) uintptr
	CGContextSetInterpolationQuality func(ctx uintptr, q int32)
	CGContextDrawImage               func(ctx uintptr, r cgRect, img uintptr)
	CGBitmapContextCreateImage       func(ctx uintptr) uintptr
	CGImageDestinationCreateWithData func(data, typ uintptr, count uint, options uintptr) uintptr
	CGImageDestinationAddImage       func(dest, img, props uintptr)
	CGImageDestinationFinalize       func(dest uintptr) bool

	// NSString constants, read from the frameworks (their documented values where a symbol is
	// missing).
	mediaTypeAudio, mediaTypeVideo                                       objc.ID
	formatIDKey, isFloatKey, bitDepthKey, isBigEndianKey, nonInterleaved objc.ID
	preciseTimingKey, jpegQualityKey                                     objc.ID
}

// Selectors (sel_registerName; libobjc is loaded by purego/objc's init).
var (
	selAlloc            = objc.RegisterName("alloc")
	selRelease          = objc.RegisterName("release")
	selCount            = objc.RegisterName("count")
	selObjectAtIndex    = objc.RegisterName("objectAtIndex:")
	selUTF8String       = objc.RegisterName("UTF8String")
	selStringWithUTF8   = objc.RegisterName("stringWithUTF8String:")
	selLocalizedDesc    = objc.RegisterName("localizedDescription")
	selFileURLWithPath  = objc.RegisterName("fileURLWithPath:")
	selDictionary       = objc.RegisterName("dictionary")
	selSetObjectForKey  = objc.RegisterName("setObject:forKey:")
	selNumberWithBool   = objc.RegisterName("numberWithBool:")
	selNumberWithInt    = objc.RegisterName("numberWithInt:")
	selNumberWithUInt   = objc.RegisterName("numberWithUnsignedInt:")
	selNumberWithDouble = objc.RegisterName("numberWithDouble:")

	selInitWithURLOptions  = objc.RegisterName("initWithURL:options:")
	selTracks              = objc.RegisterName("tracks")
	selTracksWithMediaType = objc.RegisterName("tracksWithMediaType:")
	selDuration            = objc.RegisterName("duration")
	selMediaType           = objc.RegisterName("mediaType")
	selTimeRange           = objc.RegisterName("timeRange")
	selLanguageCode        = objc.RegisterName("languageCode")
	selIsEnabled           = objc.RegisterName("isEnabled")
	selFormatDescriptions  = objc.RegisterName("formatDescriptions")

	selInitWithAssetError    = objc.RegisterName("initWithAsset:error:")
	selInitWithTrackSettings = objc.RegisterName("initWithTrack:outputSettings:")
	selSetAlwaysCopies       = objc.RegisterName("setAlwaysCopiesSampleData:")
	selCanAddOutput          = objc.RegisterName("canAddOutput:")
	selAddOutput             = objc.RegisterName("addOutput:")
	selStartReading          = objc.RegisterName("startReading")
	selCancelReading         = objc.RegisterName("cancelReading")
	selStatus                = objc.RegisterName("status")
	selError                 = objc.RegisterName("error")
	selCopyNextSampleBuffer  = objc.RegisterName("copyNextSampleBuffer")
	selInitWithAsset         = objc.RegisterName("initWithAsset:")
	selSetAppliesTransform   = objc.RegisterName("setAppliesPreferredTrackTransform:")
	selSetMaximumSize        = objc.RegisterName("setMaximumSize:")
	selSetToleranceBefore    = objc.RegisterName("setRequestedTimeToleranceBefore:")
	selSetToleranceAfter     = objc.RegisterName("setRequestedTimeToleranceAfter:")
	selCopyCGImage           = objc.RegisterName("copyCGImageAtTime:actualTime:error:")
	selCancelImageGeneration = objc.RegisterName("cancelAllCGImageGeneration")
)

// loadAVF opens the frameworks and binds everything, once.
var loadAVF = sync.OnceValues(openAVF)

func openAVF() (*avf, error) {
	libs := map[string]uintptr{}
	for _, p := range []string{libobjcPath, coreFoundationPath, foundationPath, coreMediaPath, avFoundationPath, coreGraphicsPath, imageIOPath} {
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			return nil, fmt.Errorf("AVFoundation: open %s: %w", filepath.Base(p), err)
		}
		libs[p] = h
	}
	// AVAudioSettings.h's keys live in AVFAudio since macOS 11 (AVFoundation re-exports it);
	// loaded so that RTLD_DEFAULT finds them either way.
	_, _ = purego.Dlopen(avfAudioPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	for _, class := range []string{"NSURL", "NSString", "NSNumber", "NSMutableDictionary", "AVURLAsset",
		"AVAssetReader", "AVAssetReaderTrackOutput", "AVAssetImageGenerator"} {
		if objc.GetClass(class) == 0 {
			return nil, fmt.Errorf("AVFoundation: no class %s", class)
		}
	}
	a := &avf{}
	var err error
	bind := func(lib string, fn any, name string) {
		if err != nil {
			return
		}
		if e := bindSymbol(libs[lib], fn, name); e != nil {
			err = fmt.Errorf("AVFoundation: %w", e)
		}
	}
	bind(libobjcPath, &a.poolPush, "objc_autoreleasePoolPush")
	bind(libobjcPath, &a.poolPop, "objc_autoreleasePoolPop")
	for _, fn := range []any{&a.msgCString, &a.msgNumberF, &a.msgSetTime, &a.msgSetSize, &a.msgCopyCG, &a.msgSendBool, &a.msgBoolArg} {
		bind(libobjcPath, fn, "objc_msgSend")
	}
	bind(coreFoundationPath, &a.CFRelease, "CFRelease")
	bind(coreFoundationPath, &a.CFDataCreateMutable, "CFDataCreateMutable")
	bind(coreFoundationPath, &a.CFDataGetLength, "CFDataGetLength")
	bind(coreFoundationPath, &a.CFDataGetBytePtr, "CFDataGetBytePtr")
	bind(coreMediaPath, &a.CMSampleBufferGetDataBuffer, "CMSampleBufferGetDataBuffer")
	bind(coreMediaPath, &a.CMSampleBufferGetFormatDescription, "CMSampleBufferGetFormatDescription")
	bind(coreMediaPath, &a.CMSampleBufferGetSampleTimingInfo, "CMSampleBufferGetSampleTimingInfo")
	bind(coreMediaPath, &a.CMBlockBufferGetDataLength, "CMBlockBufferGetDataLength")
	bind(coreMediaPath, &a.CMBlockBufferCopyDataBytes, "CMBlockBufferCopyDataBytes")
	bind(coreMediaPath, &a.CMFormatDescriptionGetMediaSubType, "CMFormatDescriptionGetMediaSubType")
	bind(coreMediaPath, &a.CMAudioFormatDescriptionGetStreamBasicDescription, "CMAudioFormatDescriptionGetStreamBasicDescription")
	bind(coreGraphicsPath, &a.CGImageGetWidth, "CGImageGetWidth")
	bind(coreGraphicsPath, &a.CGImageGetHeight, "CGImageGetHeight")
	bind(coreGraphicsPath, &a.CGColorSpaceCreateDeviceRGB, "CGColorSpaceCreateDeviceRGB")
	bind(coreGraphicsPath, &a.CGBitmapContextCreate, "CGBitmapContextCreate")
	bind(coreGraphicsPath, &a.CGContextSetInterpolationQuality, "CGContextSetInterpolationQuality")
	bind(coreGraphicsPath, &a.CGContextDrawImage, "CGContextDrawImage")
	bind(coreGraphicsPath, &a.CGBitmapContextCreateImage, "CGBitmapContextCreateImage")
	bind(imageIOPath, &a.CGImageDestinationCreateWithData, "CGImageDestinationCreateWithData")
	bind(imageIOPath, &a.CGImageDestinationAddImage, "CGImageDestinationAddImage")
	bind(imageIOPath, &a.CGImageDestinationFinalize, "CGImageDestinationFinalize")
	if err != nil {
		return nil, err
	}
	// The constants are NSString globals (extern NSString *const); their values are also
	// documented, and used where the symbol is not found. Made once, never released.
	a.pool(func() {
		c := func(name, value string) objc.ID {
			if sym, e := purego.Dlsym(purego.RTLD_DEFAULT, name); e == nil && sym != 0 {
				if v := **(**objc.ID)(unsafe.Pointer(&sym)); v != 0 {
					return v
				}
			}
			s := a.nsString(value)
			s.Send(objc.RegisterName("retain")) // outlives the pool: kept for the process's life
			return s
		}
		a.mediaTypeAudio = c("AVMediaTypeAudio", "soun")
		a.mediaTypeVideo = c("AVMediaTypeVideo", "vide")
		a.formatIDKey = c("AVFormatIDKey", "AVFormatIDKey")
		a.isFloatKey = c("AVLinearPCMIsFloatKey", "AVLinearPCMIsFloatKey")
		a.bitDepthKey = c("AVLinearPCMBitDepthKey", "AVLinearPCMBitDepthKey")
		a.isBigEndianKey = c("AVLinearPCMIsBigEndianKey", "AVLinearPCMIsBigEndianKey")
		a.nonInterleaved = c("AVLinearPCMIsNonInterleaved", "AVLinearPCMIsNonInterleaved")
		a.preciseTimingKey = c("AVURLAssetPreferPreciseDurationAndTimingKey", "AVURLAssetPreferPreciseDurationAndTimingKey")
		a.jpegQualityKey = c("kCGImageDestinationLossyCompressionQuality", "kCGImageDestinationLossyCompressionQuality")
	})
	return a, nil
}

// pool runs f inside an autorelease pool on one OS thread (a pool must be popped on the thread
// that pushed it; LockOSThread nests).
func (a *avf) pool(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := a.poolPush()
	defer a.poolPop(p)
	f()
}

// nsString is an autoreleased NSString of s (inside a pool).
func (a *avf) nsString(s string) objc.ID {
	return objc.ID(objc.GetClass("NSString")).Send(selStringWithUTF8, s)
}

// goString copies an NSString (nil gives "").
func (a *avf) goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	return a.msgCString(s, selUTF8String)
}

// errorText is an NSError's localizedDescription.
func (a *avf) errorText(e objc.ID) string {
	if e == 0 {
		return "no NSError"
	}
	return a.goString(e.Send(selLocalizedDesc))
}

func release(id objc.ID) {
	if id != 0 {
		id.Send(selRelease)
	}
}

// newAsset returns an AVURLAsset of the file at abs, owned (+1), asking for precise durations and
// timing (the movie header's, for the QuickTime/MP4 family: no scan). Inside a pool.
func (a *avf) newAsset(abs string) objc.ID {
	str := a.nsString(abs) // nil for a path that is not UTF-8
	if str == 0 {
		return 0 // (fileURLWithPath: nil would raise an exception)
	}
	url := objc.ID(objc.GetClass("NSURL")).Send(selFileURLWithPath, str)
	if url == 0 {
		return 0
	}
	opts := objc.ID(objc.GetClass("NSMutableDictionary")).Send(selDictionary)
	opts.Send(selSetObjectForKey, objc.ID(objc.GetClass("NSNumber")).Send(selNumberWithBool, true), a.preciseTimingKey)
	return objc.ID(objc.GetClass("AVURLAsset")).Send(selAlloc).Send(selInitWithURLOptions, url, opts)
}

// describe lists the asset's tracks as ffprobe would (see the file comment) and returns them with
// the tracks themselves (+0, owned by the asset), in the same order. Inside a pool.
func (a *avf) describe(asset objc.ID, path string, size int64) (*Info, []objc.ID, error) {
	arr := asset.Send(selTracks)
	n := 0
	if arr != 0 {
		n = int(arr.Send(selCount))
	}
	if n == 0 {
		// No tracks: not a movie AVFoundation reads (or an empty one); ffmpeg may know better.
		return nil, nil, fmt.Errorf("media %s: %w (AVFoundation found no tracks)", path, ErrUnsupported)
	}
	if n > maxProbeStreams {
		return nil, nil, fmt.Errorf("media %s: %w (%d tracks)", path, ErrUnsupported, n)
	}
	info := &Info{
		Format:     avassetFormats[strings.ToLower(filepath.Ext(path))],
		FormatLong: "AVFoundation (native)",
		Size:       size,
	}
	if d, ok := objc.Send[cmTime](asset, selDuration).duration(); ok && d > 0 {
		info.Duration = d
	}
	tracks := make([]objc.ID, 0, n)
	first := true
	for i := range n {
		t := arr.Send(selObjectAtIndex, uint(i))
		tracks = append(tracks, t)
		si := StreamInfo{Index: i, Type: "data", Default: a.msgSendBool(t, selIsEnabled)}
		switch a.goString(t.Send(selMediaType)) {
		case "soun":
			si.Type = "audio"
		case "vide":
			si.Type = "video"
		case "sbtl", "text", "clcp":
			si.Type = "subtitle"
		}
		si.Language = clip(a.goString(t.Send(selLanguageCode)))
		r := objc.Send[cmTimeRange](t, selTimeRange)
		si.StartTime, si.HasStart = r.Start.duration()
		if d, ok := r.Duration.duration(); ok && d > 0 {
			si.Duration = d
		}
		if si.HasStart && (si.Type == "audio" || si.Type == "video") && (first || si.StartTime < info.StartTime) {
			info.StartTime, first = si.StartTime, false
		}
		if fds := t.Send(selFormatDescriptions); fds != 0 && fds.Send(selCount) > 0 {
			fd := uintptr(fds.Send(selObjectAtIndex, uint(0)))
			sub := a.CMFormatDescriptionGetMediaSubType(fd)
			si.Codec, si.CodecLong = videoCodec(sub), "AVFoundation '"+fourCC(sub)+"'"
			if si.Type == "audio" {
				if p := a.CMAudioFormatDescriptionGetStreamBasicDescription(fd); p != nil {
					asbd := *(*audioStreamBasicDescription)(p)
					si.Codec = appleCodec(&asbd)
					if r := math.Round(asbd.SampleRate); r >= 1 && r <= 1<<22 {
						si.SampleRate = int(r)
					}
					if asbd.ChannelsPerFrame >= 1 && asbd.ChannelsPerFrame <= 1024 {
						si.Channels = int(asbd.ChannelsPerFrame)
					}
				}
			}
		}
		info.Streams = append(info.Streams, si)
	}
	return info, tracks, nil
}

// videoCodec names a video format's media subtype as ffprobe's codec_name does where there is a
// counterpart, else by its four characters.
func videoCodec(sub uint32) string {
	code := fourCC(sub)
	switch code {
	case "avc1", "avc3":
		return "h264"
	case "hvc1", "hev1", "dvh1", "dvhe":
		return "hevc"
	case "mp4v":
		return "mpeg4"
	case "av01":
		return "av1"
	case "vp09":
		return "vp9"
	case "jpeg", "mjpa", "mjpb":
		return "mjpeg"
	case "apch", "apcn", "apcs", "apco", "ap4h", "ap4x":
		return "prores"
	case "s263", "h263":
		return "h263"
	}
	if c := strings.TrimSpace(code); c != "" && !strings.ContainsFunc(c, func(r rune) bool { return r < ' ' || r > '~' }) {
		return c
	}
	return fmt.Sprintf("0x%08x", sub)
}

// probeAVAsset describes the file at path through AVFoundation without decoding it.
func probeAVAsset(path string) (*Info, error) {
	if avassetFormats[strings.ToLower(filepath.Ext(path))] == "" {
		return nil, errNotNative
	}
	a, err := loadAVF()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotNative, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	var info *Info
	a.pool(func() {
		asset := a.newAsset(abs)
		if asset == 0 {
			err = fmt.Errorf("media %s: %w (AVURLAsset refused it)", path, ErrUnsupported)
			return
		}
		defer release(asset)
		info, _, err = a.describe(asset, path, st.Size())
	})
	return info, err
}

// openAVAsset opens the chosen audio track of the file at path with AVAssetReader. Its errors
// wrap errNotNative for a file it does not take or when AVFoundation cannot be loaded, else a
// sentinel naming the file (Open then tries ffmpeg either way).
func openAVAsset(path string, opts Options) (source, *Info, StreamInfo, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if avassetFormats[ext] == "" {
		return nil, nil, StreamInfo{}, errNotNative
	}
	a, err := loadAVF()
	if err != nil {
		return nil, nil, StreamInfo{}, fmt.Errorf("%w: %w", errNotNative, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, StreamInfo{}, fmt.Errorf("media %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, StreamInfo{}, fmt.Errorf("media %s: %w", path, err)
	}
	s := &avSource{nativeStream: nativeStream{path: path}, a: a}
	var info *Info
	var tr StreamInfo
	a.pool(func() {
		s.asset = a.newAsset(abs)
		if s.asset == 0 {
			err = fmt.Errorf("media %s: %w (AVURLAsset refused it)", path, ErrUnsupported)
			return
		}
		var tracks []objc.ID
		info, tracks, err = a.describe(s.asset, path, st.Size())
		if err != nil {
			return
		}
		tr, err = selectTrack(info, opts.AudioTrack, opts.Language)
		if err != nil {
			err = fmt.Errorf("media %s: %w (AVFoundation)", path, err)
			return
		}
		err = s.start(tracks[tr.Index])
	})
	if err != nil {
		s.close()
		return nil, nil, StreamInfo{}, err
	}
	// Where the decoded audio begins on the asset's timeline (see the file comment).
	if s.hasPTS {
		tr.StartTime, tr.HasStart = s.firstPTS, true
		info.Streams[tr.Index] = tr
		info.StartTime = min(info.StartTime, tr.StartTime)
	}
	if tr.Duration > 0 && tr.Duration.Seconds() < maxSeconds {
		s.declared = int64(tr.Duration.Seconds() * float64(s.sr))
	}
	return s, info, tr, nil
}

// avSource reads one audio track through an AVAssetReaderTrackOutput. The path, lock, sticky
// error, format, declared length and count of frames handed out are in nativeStream
// (native_darwin.go).
type avSource struct {
	nativeStream
	a      *avf
	asset  objc.ID // AVURLAsset, +1
	reader objc.ID // AVAssetReader, +1; 0 once closed
	output objc.ID // AVAssetReaderTrackOutput, +1

	firstPTS time.Duration // the first buffer's presentation time
	hasPTS   bool
	pend     []float32
	pos      int // next sample in pend
}

// start makes the reader and its output for track and reads the first buffer, which gives the
// format and the start; any failure here lets Open fall back to ffmpeg. Inside a pool.
func (s *avSource) start(track objc.ID) error {
	a := s.a
	var nserr objc.ID
	s.reader = objc.ID(objc.GetClass("AVAssetReader")).Send(selAlloc).Send(selInitWithAssetError, s.asset, unsafe.Pointer(&nserr))
	if s.reader == 0 {
		return fmt.Errorf("media %s: %w (AVAssetReader: %s)", s.path, ErrUnsupported, a.errorText(nserr))
	}
	// Interleaved native-endian (little) float32 at the track's rate and channel count. Every LPCM
	// key is given: a reader refuses (by exception) settings it finds incomplete.
	num := objc.ID(objc.GetClass("NSNumber"))
	settings := objc.ID(objc.GetClass("NSMutableDictionary")).Send(selDictionary)
	settings.Send(selSetObjectForKey, num.Send(selNumberWithUInt, uint32(kAudioFormatLinearPCM)), a.formatIDKey)
	settings.Send(selSetObjectForKey, num.Send(selNumberWithBool, true), a.isFloatKey)
	settings.Send(selSetObjectForKey, num.Send(selNumberWithInt, int32(32)), a.bitDepthKey)
	settings.Send(selSetObjectForKey, num.Send(selNumberWithBool, false), a.isBigEndianKey)
	settings.Send(selSetObjectForKey, num.Send(selNumberWithBool, false), a.nonInterleaved)
	s.output = objc.ID(objc.GetClass("AVAssetReaderTrackOutput")).Send(selAlloc).Send(selInitWithTrackSettings, track, settings)
	if s.output == 0 {
		return fmt.Errorf("media %s: %w (AVAssetReaderTrackOutput refused the track)", s.path, ErrUnsupported)
	}
	// We copy every buffer's bytes out ourselves: no need for AVFoundation to copy them first.
	s.output.Send(selSetAlwaysCopies, false)
	if !a.msgBoolArg(s.reader, selCanAddOutput, s.output) {
		return fmt.Errorf("media %s: %w (AVAssetReader cannot add the track output)", s.path, ErrUnsupported)
	}
	s.reader.Send(selAddOutput, s.output)
	if !a.msgSendBool(s.reader, selStartReading) {
		return fmt.Errorf("media %s: %w (AVAssetReader startReading: %s)", s.path, ErrUnsupported, a.errorText(s.reader.Send(selError)))
	}
	if err := s.next(); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("media %s: %w (AVAssetReader: no audio in the track)", s.path, ErrCorrupt)
		}
		return err
	}
	return nil
}

// next replaces pend with the next sample buffer's frames (io.EOF at the end). The first buffer
// sets the format; later ones must keep it. Inside a pool.
func (s *avSource) next() error {
	a := s.a
	for {
		// copyNextSampleBuffer is only asked of a reader still reading (it may raise otherwise).
		st := int(s.reader.Send(selStatus))
		var sb uintptr
		if st == avReaderReading {
			sb = uintptr(s.output.Send(selCopyNextSampleBuffer)) // +1
			if sb == 0 {
				st = int(s.reader.Send(selStatus))
			}
		}
		if sb == 0 {
			switch st {
			case avReaderReading, avReaderCompleted:
				return io.EOF
			case avReaderFailed:
				return fmt.Errorf("media %s: %w (AVAssetReader: %s)", s.path, ErrCorrupt, a.errorText(s.reader.Send(selError)))
			}
			return fmt.Errorf("media %s: %w (AVAssetReader stopped in status %d)", s.path, ErrCorrupt, st)
		}
		n, err := s.take(sb)
		a.CFRelease(sb)
		if err != nil || n > 0 {
			return err
		}
	}
}

// take copies the frames of sample buffer sb into pend and returns how many there are.
func (s *avSource) take(sb uintptr) (int, error) {
	a := s.a
	var asbd audioStreamBasicDescription
	if fd := a.CMSampleBufferGetFormatDescription(sb); fd != 0 {
		if p := a.CMAudioFormatDescriptionGetStreamBasicDescription(fd); p != nil {
			asbd = *(*audioStreamBasicDescription)(p)
		}
	}
	ch := int(asbd.ChannelsPerFrame)
	rate := math.Round(asbd.SampleRate)
	if asbd.FormatID != kAudioFormatLinearPCM || asbd.FormatFlags&kAudioFormatFlagIsFloat == 0 ||
		asbd.FormatFlags&(kAudioFormatFlagIsBigEndian|kAudioFormatFlagIsNonInterleaved) != 0 ||
		asbd.BitsPerChannel != 32 || ch < 1 || ch > maxAppleChannels || math.IsNaN(rate) || rate < 1 || rate > 1<<22 ||
		(asbd.BytesPerFrame != 0 && int(asbd.BytesPerFrame) != 4*ch) {
		return 0, fmt.Errorf("media %s: %w (AVAssetReader gave %s, %d channels of %d bits at %g Hz, flags %#x)",
			s.path, ErrUnsupported, fourCC(asbd.FormatID), ch, asbd.BitsPerChannel, asbd.SampleRate, asbd.FormatFlags)
	}
	if s.ch == 0 {
		s.ch, s.sr = ch, int(rate)
		var ti cmSampleTimingInfo
		if a.CMSampleBufferGetSampleTimingInfo(sb, 0, &ti) == 0 {
			s.firstPTS, s.hasPTS = ti.Presentation.duration()
		}
	} else if ch != s.ch || int(rate) != s.sr {
		return 0, fmt.Errorf("media %s: %w (the audio format changes mid-stream: %d channels at %d Hz, then %d at %g)",
			s.path, ErrUnsupported, s.ch, s.sr, ch, asbd.SampleRate)
	}
	bb := a.CMSampleBufferGetDataBuffer(sb)
	if bb == 0 {
		return 0, nil
	}
	frames := int(a.CMBlockBufferGetDataLength(bb)) / (4 * ch)
	if frames == 0 {
		return 0, nil
	}
	if cap(s.pend) < frames*ch {
		s.pend = make([]float32, frames*ch)
	}
	s.pend, s.pos = s.pend[:frames*ch], 0
	if st := a.CMBlockBufferCopyDataBytes(bb, 0, uint(4*frames*ch), unsafe.Pointer(&s.pend[0])); st != 0 {
		s.pend = s.pend[:0]
		return 0, fmt.Errorf("media %s: %w (CMBlockBufferCopyDataBytes: %s)", s.path, ErrCorrupt, osStatus(st))
	}
	return frames, nil
}

// read fills l (and r for stereo) with up to len(l) frames.
func (s *avSource) read(l, r []float32) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readable(s.reader != 0); err != nil {
		return 0, err
	}
	if len(l) == 0 {
		return 0, nil
	}
	if s.pos >= len(s.pend) {
		var err error
		s.a.pool(func() { err = s.next() })
		if errors.Is(err, io.EOF) {
			err = s.atEnd(err) // ErrCorrupt for a track cut short (nativeStream.truncated)
		}
		if err != nil {
			s.err = err
			return 0, err
		}
	}
	frames := deinterleave(l, r, s.pend[s.pos:], s.ch)
	s.pos += frames * s.ch
	s.frames += int64(frames)
	return frames, nil
}

// close stops the reader and releases the output, reader and asset; idempotent.
func (s *avSource) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asset == 0 && s.reader == 0 && s.output == 0 {
		return nil
	}
	s.a.pool(func() {
		if s.reader != 0 && int(s.reader.Send(selStatus)) == avReaderReading {
			s.reader.Send(selCancelReading)
		}
		release(s.output)
		release(s.reader)
		release(s.asset)
	})
	s.output, s.reader, s.asset = 0, 0, 0
	s.pend = nil
	s.markClosed()
	return nil
}
