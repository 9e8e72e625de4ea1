package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Bounds on what ParseProbe accepts; ffprobe's answer for a real file is a few kilobytes.
const (
	maxProbeBytes   = 8 << 20 // the JSON document
	maxProbeStreams = 4096    // streams in one container
	maxTagBytes     = 1 << 10 // one kept tag value (language, title)
)

// ErrProbeSyntax is returned by ParseProbe for bytes that are not an ffprobe JSON document.
var ErrProbeSyntax = errors.New("malformed ffprobe output")

// Info is what ffprobe reports about a media file.
type Info struct {
	Format     string        // ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "wav"
	FormatLong string        // format_long_name
	Duration   time.Duration // of the container; 0 when unknown
	StartTime  time.Duration // of the container (the earliest stream start); may be negative
	Size       int64         // bytes; 0 when unknown
	Title      string        // the title tag, if any
	Streams    []StreamInfo  // in container order
}

// StreamInfo describes one stream of a container.
type StreamInfo struct {
	Index         int           // position in the container (ffmpeg's 0:N)
	Type          string        // "audio", "video", "subtitle", "data" or "attachment"
	Codec         string        // codec_name, e.g. "aac"; "" or "none" when ffmpeg has no decoder
	CodecLong     string        // codec_long_name
	Language      string        // the language tag as stored (often ISO 639-2, "eng"); "" when absent
	Title         string        // the title tag
	SampleRate    int           // audio only
	Channels      int           // audio only
	ChannelLayout string        // audio only, e.g. "stereo"
	StartTime     time.Duration // first timestamp; HasStart says whether it was reported
	HasStart      bool
	Duration      time.Duration // 0 when unknown
	Default       bool          // disposition.default
	AttachedPic   bool          // disposition.attached_pic: a cover image, not a video
}

// AudioStreams returns the audio streams of the file in container order.
func (in *Info) AudioStreams() []StreamInfo {
	var out []StreamInfo
	for _, s := range in.Streams {
		if s.Type == "audio" {
			out = append(out, s)
		}
	}
	return out
}

// probeJSON mirrors the parts of `ffprobe -print_format json -show_streams -show_format` we use.
// Numbers that ffprobe prints as strings stay strings here and are parsed leniently.
type probeJSON struct {
	Streams []struct {
		Index         int               `json:"index"`
		CodecName     string            `json:"codec_name"`
		CodecLongName string            `json:"codec_long_name"`
		CodecType     string            `json:"codec_type"`
		SampleRate    string            `json:"sample_rate"`
		Channels      int               `json:"channels"`
		ChannelLayout string            `json:"channel_layout"`
		StartTime     string            `json:"start_time"`
		Duration      string            `json:"duration"`
		Disposition   map[string]int    `json:"disposition"`
		Tags          map[string]string `json:"tags"`
	} `json:"streams"`
	Format *struct {
		FormatName     string            `json:"format_name"`
		FormatLongName string            `json:"format_long_name"`
		StartTime      string            `json:"start_time"`
		Duration       string            `json:"duration"`
		Size           string            `json:"size"`
		Tags           map[string]string `json:"tags"`
	} `json:"format"`
}

// ParseProbe decodes the JSON that `ffprobe -print_format json -show_streams -show_format`
// writes. It accepts at most 8 MiB and 4096 streams, ignores fields it does not use, and treats
// unparsable or out-of-range numbers as unknown (zero) rather than failing, since ffprobe prints
// "N/A" for values it lacks. It fails, wrapping ErrProbeSyntax, only when data is not a JSON
// object of that shape or has no "format" section. It never panics.
func ParseProbe(data []byte) (*Info, error) {
	if len(data) > maxProbeBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrProbeSyntax, len(data))
	}
	// Count streams cheaply before decoding, so a hostile document cannot make us build a huge slice.
	if n := bytes.Count(data, []byte(`"index"`)); n > maxProbeStreams {
		return nil, fmt.Errorf("%w: %d streams", ErrProbeSyntax, n)
	}
	var raw probeJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProbeSyntax, err)
	}
	if raw.Format == nil {
		return nil, fmt.Errorf("%w: no format section", ErrProbeSyntax)
	}
	if len(raw.Streams) > maxProbeStreams {
		return nil, fmt.Errorf("%w: %d streams", ErrProbeSyntax, len(raw.Streams))
	}
	f := raw.Format
	info := &Info{
		Format:     clip(f.FormatName),
		FormatLong: clip(f.FormatLongName),
		Duration:   seconds(f.Duration),
		Title:      clip(tag(f.Tags, "title")),
	}
	info.StartTime, _ = startTime(f.StartTime)
	if n, err := strconv.ParseInt(strings.TrimSpace(f.Size), 10, 64); err == nil && n > 0 {
		info.Size = n
	}
	for _, s := range raw.Streams {
		si := StreamInfo{
			Index:         s.Index,
			Type:          clip(s.CodecType),
			Codec:         clip(s.CodecName),
			CodecLong:     clip(s.CodecLongName),
			Language:      clip(tag(s.Tags, "language")),
			Title:         clip(tag(s.Tags, "title")),
			ChannelLayout: clip(s.ChannelLayout),
			Duration:      seconds(s.Duration),
			Default:       s.Disposition["default"] != 0,
			AttachedPic:   s.Disposition["attached_pic"] != 0,
		}
		si.StartTime, si.HasStart = startTime(s.StartTime)
		if s.CodecType == "audio" {
			if r, err := strconv.Atoi(strings.TrimSpace(s.SampleRate)); err == nil && r > 0 {
				si.SampleRate = r
			}
			if s.Channels > 0 && s.Channels <= 1024 {
				si.Channels = s.Channels
			}
		}
		info.Streams = append(info.Streams, si)
	}
	return info, nil
}

// tag looks a tag up case-insensitively (Matroska writes LANGUAGE, MP4 writes language).
func tag(tags map[string]string, key string) string {
	if v, ok := tags[key]; ok {
		return v
	}
	for k, v := range tags {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// clip bounds a string taken from the file so a hostile tag cannot bloat logs or sidecars.
func clip(s string) string {
	if len(s) > maxTagBytes {
		return s[:maxTagBytes]
	}
	return s
}

// maxSeconds keeps durations inside time.Duration (about 292 years) with room to add offsets.
const maxSeconds = 1e9

// seconds parses a non-negative duration in seconds; anything else is 0 (unknown).
func seconds(s string) time.Duration {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || v <= 0 || v > maxSeconds {
		return 0
	}
	return time.Duration(math.Round(v * float64(time.Second)))
}

// startTime parses a possibly negative timestamp in seconds; ok is false when it is absent.
func startTime(s string) (time.Duration, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.Abs(v) > maxSeconds {
		return 0, false
	}
	return time.Duration(math.Round(v * float64(time.Second))), true
}
