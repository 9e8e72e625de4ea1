package media

// Chapter stills on macOS without ffmpeg: AVFoundation's AVAssetImageGenerator takes the frame
// (copyCGImageAtTime:actualTime:error:, the preferred track transform applied, at most
// FrameWidth wide, exact time: zero tolerances, as ffmpeg's accurate seek) and ImageIO encodes it
// as a JPEG (CGImageDestinationCreateWithData with "public.jpeg"), all through purego. It sits
// behind Frame (the framePlatform hook of frames.go) and is used only when ffmpeg is not found
// (and opts.NoNative is off): ffmpeg, where installed, stays the path that was tested, and its
// answers for every container are the ones the notes were made with. Same contract as ffmpeg's:
// JPEG bytes, width pixels wide (a narrower video is scaled up through a CoreGraphics bitmap, the
// height kept in proportion and even, as ffmpeg's scale=W:-2), errors naming the file and time,
// a time past the end an error.
//
// This file was compiled, never run, where it was written (Linux, no Mac). A first run on a Mac
// must check, in order:
//  1. go test ./media -run AVFrame (needs ffmpeg once, to make pattern.mp4): a JPEG 320 pixels
//     wide at 0 and 2.5 s, an error past the end; the struct arguments (CMTime, 24 bytes, by
//     reference on arm64; CGSize, two doubles in d0/d1; CGRect, four doubles in d0-d3) reach
//     AVFoundation and CoreGraphics as their headers declare.
//  2. A portrait phone video (rotation in the track's preferred transform): the still is upright
//     and 320 wide.
//  3. copyCGImageAtTime:actualTime:error: is deprecated since macOS 15 (replaced by
//     generateCGImageAsynchronouslyForTime:completionHandler:): still present and working on
//     the newest macOS; if it goes, the block-based call through purego/objc's blocks replaces it.
//  4. A chapter still of an hour-long H.264 video at 50 min takes well under a second (hardware
//     decode, a seek to the keyframe before) and a cancelled context stops a slow one.

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"structs"
	"time"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

func init() { framePlatform = frameAVAsset }

// cgSize is CGSize: two CGFloat (double on 64-bit), an HFA passed in two float registers.
type cgSize struct {
	_             structs.HostLayout
	Width, Height float64
}

// cgRect is CGRect: origin and size, four doubles, an HFA passed in four float registers on
// arm64 and in memory on amd64.
type cgRect struct {
	_                   structs.HostLayout
	X, Y, Width, Height float64
}

const (
	kCGImageAlphaNoneSkipLast = 5 // RGBX, 8 bits a component
	kCGInterpolationHigh      = 3
	jpegQuality               = 0.8 // about ffmpeg's -q:v 5
)

// frameAVAsset is Frame through AVFoundation.
func frameAVAsset(ctx context.Context, path string, at time.Duration, width int) ([]byte, error) {
	if avassetFormats[strings.ToLower(filepath.Ext(path))] == "" {
		return nil, errNotNative
	}
	a, err := loadAVF()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotNative, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("media %s: frame at %v: %w", path, at, err)
	}
	if width < 2 || width > 1<<14 {
		return nil, fmt.Errorf("media %s: frame at %v: width %d", path, at, width)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("media %s: frame at %v: %w", path, at, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", path, err)
	}
	at = max(at, 0)
	var jpg []byte
	a.pool(func() { jpg, err = a.still(ctx, abs, path, at, width) })
	if ctx.Err() != nil {
		return nil, fmt.Errorf("media %s: frame at %v: %w", path, at, ctx.Err())
	}
	return jpg, err
}

// still takes the frame and encodes it. Inside a pool.
func (a *avf) still(ctx context.Context, abs, path string, at time.Duration, width int) ([]byte, error) {
	fail := func(sentinel error, why string) error {
		return fmt.Errorf("media %s: frame at %v: %w (AVFoundation: %s)", path, at, sentinel, why)
	}
	asset := a.newAsset(abs) // +1
	if asset == 0 {
		return nil, fail(ErrUnsupported, "AVURLAsset refused it")
	}
	defer release(asset)
	if v := asset.Send(selTracksWithMediaType, a.mediaTypeVideo); v == 0 || v.Send(selCount) == 0 {
		return nil, fail(ErrUnsupported, "no video track")
	}
	if d, ok := objc.Send[cmTime](asset, selDuration).duration(); ok && d > 0 && at > d {
		return nil, fail(ErrCorrupt, fmt.Sprintf("no frame there: the video ends at %v", d.Round(time.Millisecond)))
	}
	gen := objc.ID(objc.GetClass("AVAssetImageGenerator")).Send(selAlloc).Send(selInitWithAsset, asset) // +1
	if gen == 0 {
		return nil, fail(ErrUnsupported, "AVAssetImageGenerator refused it")
	}
	defer release(gen)
	gen.Send(selSetAppliesTransform, true)
	// At most width wide; the height bound is only there to be an upper bound (a video taller than
	// 16:1 comes out narrower, and is scaled below).
	a.msgSetSize(gen, selSetMaximumSize, cgSize{Width: float64(width), Height: float64(16 * width)})
	zero := cmTime{Flags: cmTimeValid, Timescale: 1}
	a.msgSetTime(gen, selSetToleranceBefore, zero)
	a.msgSetTime(gen, selSetToleranceAfter, zero)

	// A cancelled context cancels the generation (cancelAllCGImageGeneration may be sent from
	// any thread); the goroutine is gone before gen is released.
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			a.pool(func() { gen.Send(selCancelImageGeneration) })
		case <-done:
		}
	}()
	var actual cmTime
	var nserr objc.ID
	img := a.msgCopyCG(gen, selCopyCGImage, cmTimeAt(at), &actual, &nserr) // +1 (copy)
	close(done)
	<-stopped
	if img == 0 {
		return nil, fail(ErrCorrupt, a.errorText(nserr))
	}
	defer a.CFRelease(img)

	w, h := int(a.CGImageGetWidth(img)), int(a.CGImageGetHeight(img))
	if w < 1 || h < 1 {
		return nil, fail(ErrCorrupt, fmt.Sprintf("a %dx%d image", w, h))
	}
	if w != width {
		// Narrower than asked (a small video; maximumSize only scales down): draw it to size.
		nh := max(2, 2*int(math.Round(float64(h)*float64(width)/float64(w)/2)))
		scaled := a.scale(img, width, nh)
		if scaled == 0 {
			return nil, fail(ErrUnsupported, fmt.Sprintf("cannot scale %dx%d to %dx%d", w, h, width, nh))
		}
		defer a.CFRelease(scaled)
		img = scaled
	}
	jpg := a.jpeg(img)
	if len(jpg) < 4 || jpg[0] != 0xFF || jpg[1] != 0xD8 {
		return nil, fail(ErrUnsupported, "ImageIO made no JPEG")
	}
	return jpg, nil
}

// scale draws img into a w x h RGB bitmap and returns it as a new image (+1), or 0.
func (a *avf) scale(img uintptr, w, h int) uintptr {
	cs := a.CGColorSpaceCreateDeviceRGB() // +1
	if cs == 0 {
		return 0
	}
	defer a.CFRelease(cs)
	ctx := a.CGBitmapContextCreate(0, uint(w), uint(h), 8, 0, cs, kCGImageAlphaNoneSkipLast) // +1
	if ctx == 0 {
		return 0
	}
	defer a.CFRelease(ctx)
	a.CGContextSetInterpolationQuality(ctx, kCGInterpolationHigh)
	a.CGContextDrawImage(ctx, cgRect{Width: float64(w), Height: float64(h)}, img)
	return a.CGBitmapContextCreateImage(ctx)
}

// jpeg encodes img with ImageIO; nil on failure. Inside a pool.
func (a *avf) jpeg(img uintptr) []byte {
	data := a.CFDataCreateMutable(0, 0) // +1
	if data == 0 {
		return nil
	}
	defer a.CFRelease(data)
	// NSString and CFString are toll-free bridged: an NSString serves as the CFStringRef UTI.
	dest := a.CGImageDestinationCreateWithData(data, uintptr(a.nsString("public.jpeg")), 1, 0) // +1
	if dest == 0 {
		return nil
	}
	defer a.CFRelease(dest)
	props := objc.ID(objc.GetClass("NSMutableDictionary")).Send(selDictionary)
	props.Send(selSetObjectForKey, a.msgNumberF(objc.ID(objc.GetClass("NSNumber")), selNumberWithDouble, jpegQuality), a.jpegQualityKey)
	a.CGImageDestinationAddImage(dest, img, uintptr(props))
	if !a.CGImageDestinationFinalize(dest) {
		return nil
	}
	n := a.CFDataGetLength(data)
	p := a.CFDataGetBytePtr(data)
	if n <= 0 || p == nil {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(p), n)...)
}
