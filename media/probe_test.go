package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestParseProbeGolden parses real ffprobe reports (testdata/probe/*.json, captured from files
// made by ffmpeg) and compares the result with testdata/probe/*.golden.
func TestParseProbeGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/probe/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no ffprobe samples in testdata/probe: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			info, err := ParseProbe(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(info, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(strings.TrimSpace(string(want)), string(got)); diff != "" {
				t.Errorf("parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProbe(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    *Info
		wantErr error
	}{
		{
			name: "minimal",
			in:   `{"streams":[],"format":{"format_name":"wav","duration":"1.5","size":"100"}}`,
			want: &Info{Format: "wav", Duration: 1500 * time.Millisecond, Size: 100},
		},
		{
			name: "N/A and negative start",
			in: `{"streams":[{"index":0,"codec_type":"audio","codec_name":"aac","sample_rate":"N/A",
				"channels":2,"start_time":"-0.021333","duration":"N/A"}],
				"format":{"format_name":"mov","duration":"N/A","start_time":"N/A","size":"N/A"}}`,
			want: &Info{Format: "mov", Streams: []StreamInfo{{
				Index: 0, Type: "audio", Codec: "aac", Channels: 2,
				StartTime: -21333 * time.Microsecond, HasStart: true,
			}}},
		},
		{
			name: "tags in any case, dispositions",
			in: `{"streams":[{"index":3,"codec_type":"audio","codec_name":"opus","sample_rate":"48000",
				"channels":1,"tags":{"LANGUAGE":"ger","Title":"Kommentar"},
				"disposition":{"default":1,"attached_pic":0}},
				{"index":4,"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}],
				"format":{"format_name":"matroska,webm","tags":{"TITLE":"Film"}}}`,
			want: &Info{Format: "matroska,webm", Title: "Film", Streams: []StreamInfo{
				{Index: 3, Type: "audio", Codec: "opus", SampleRate: 48000, Channels: 1, Language: "ger", Title: "Kommentar", Default: true},
				{Index: 4, Type: "video", Codec: "mjpeg", AttachedPic: true},
			}},
		},
		{
			name: "absurd numbers are unknown",
			in: `{"streams":[{"index":0,"codec_type":"audio","sample_rate":"-5","channels":100000,
				"duration":"1e300","start_time":"NaN"}],"format":{"duration":"-3","size":"-1"}}`,
			want: &Info{Streams: []StreamInfo{{Type: "audio"}}},
		},
		{name: "no format section", in: `{"streams":[]}`, wantErr: ErrProbeSyntax},
		{name: "not json", in: `Invalid data found when processing input`, wantErr: ErrProbeSyntax},
		{name: "wrong types", in: `{"streams":{"index":"x"},"format":{}}`, wantErr: ErrProbeSyntax},
		{name: "empty", in: ``, wantErr: ErrProbeSyntax},
		{name: "too many streams", in: `{"streams":[` + strings.Repeat(`{"index":1},`, maxProbeStreams) + `{"index":1}],"format":{}}`, wantErr: ErrProbeSyntax},
		{name: "too large", in: `{"format":{"format_name":"` + strings.Repeat("x", maxProbeBytes) + `"}}`, wantErr: ErrProbeSyntax},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseProbe([]byte(c.in))
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ParseProbe mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProbeAgrees checks Probe on generated files against what the tests put in them.
func TestProbeAgrees(t *testing.T) {
	info, err := Probe(t.Context(), fixture(t, "langs.mkv"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	type brief struct {
		Type, Codec, Language string
		Channels              int
	}
	var got []brief
	for _, s := range info.Streams {
		got = append(got, brief{s.Type, s.Codec, s.Language, s.Channels})
	}
	want := []brief{{"video", "mpeg4", "", 0}, {"audio", "vorbis", "eng", 1}, {"audio", "vorbis", "ger", 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("streams (-want +got):\n%s", diff)
	}
	if d := info.Duration.Seconds(); d < 2.95 || d > 3.1 {
		t.Errorf("duration %v", info.Duration)
	}
}

func TestSameLanguage(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"en", "eng", true}, {"EN", "eng", true}, {"en-US", "eng", true}, {"de", "ger", true},
		{"de", "deu", true}, {"ger", "deu", true}, {"zh", "chi", true}, {"pt_BR", "por", true},
		{"jw", "jav", true}, {"en", "de", false}, {"", "", false}, {"und", "und", false},
		{"auto", "eng", false}, {"xx", "xx", true}, {"fr", "fre", true}, {"nl", "dut", true},
	}
	for _, c := range cases {
		if got := SameLanguage(c.a, c.b); got != c.want {
			t.Errorf("SameLanguage(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// probeSeed cuts an ffprobe report to the fields ParseProbe reads (the json tags of probeJSON,
// and two dispositions), without indentation: the real structure in a fraction of the bytes, since
// minimizing a new input takes the fuzzer time quadratic in its size.
func probeSeed(t testing.TB, data []byte) []byte {
	t.Helper()
	fields := func(v any) map[string]bool {
		typ := reflect.TypeOf(v)
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		m := map[string]bool{}
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			m[name] = true
		}
		return m
	}
	var raw probeJSON
	streamFields, formatFields := fields(raw.Streams), fields(raw.Format)
	var doc struct {
		Streams []map[string]json.RawMessage `json:"streams"`
		Format  map[string]json.RawMessage   `json:"format"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range doc.Streams {
		maps.DeleteFunc(s, func(k string, _ json.RawMessage) bool { return !streamFields[k] })
		// Of the dispositions, ParseProbe reads two.
		var disp map[string]int
		if err := json.Unmarshal(s["disposition"], &disp); err == nil && disp != nil {
			maps.DeleteFunc(disp, func(k string, _ int) bool { return k != "default" && k != "attached_pic" })
			s["disposition"], _ = json.Marshal(disp)
		}
	}
	maps.DeleteFunc(doc.Format, func(k string, _ json.RawMessage) bool { return !formatFields[k] })
	var out bytes.Buffer
	if err := json.NewEncoder(&out).Encode(doc); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, out.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The cut report must say what the whole one says.
	want, err := ParseProbe(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseProbe(compact.Bytes()); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("the cut report parses to %+v, %v; the whole one to %+v", got, err, want)
	}
	return compact.Bytes()
}

// FuzzParseProbe: no panic, bounded work, and whatever parses holds only bounded values. The
// seeds are the real reports of testdata/probe cut to the fields the parser reads, and the
// smallest of them whole (the fields it skips).
func FuzzParseProbe(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/probe/*.json")
	var smallest []byte
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(probeSeed(f, data))
		if smallest == nil || len(data) < len(smallest) {
			smallest = data
		}
	}
	f.Add(smallest)
	f.Add([]byte(`{"streams":[{"index":0,"codec_type":"audio","start_time":"-1e9"}],"format":{}}`))
	f.Add([]byte(`{"format":{"duration":"1e18"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseProbe(data)
		if err != nil {
			if !errors.Is(err, ErrProbeSyntax) {
				t.Fatalf("error %v does not wrap ErrProbeSyntax", err)
			}
			return
		}
		if len(info.Streams) > maxProbeStreams {
			t.Fatalf("%d streams", len(info.Streams))
		}
		if info.Duration < 0 || info.Size < 0 {
			t.Fatalf("negative duration or size: %+v", info)
		}
		for _, s := range info.Streams {
			if s.Duration < 0 || s.SampleRate < 0 || s.Channels < 0 || s.Channels > 1024 ||
				len(s.Language) > maxTagBytes || len(s.Title) > maxTagBytes {
				t.Fatalf("out of bounds stream: %+v", s)
			}
		}
		// selectTrack must cope with whatever parsed.
		for _, track := range []string{"", "0", "1", "eng", "-3"} {
			selectTrack(info, track, "en")
		}
	})
}
