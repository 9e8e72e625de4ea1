package main

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

// TestVadCommand runs `transcribe vad` on jfk.wav with the embedded model and with --model, and
// checks the JSON against whisper.cpp's segments (vad/testdata/jfk-silero-v6.2.0.json).
func TestVadCommand(t *testing.T) {
	want := [][2]float64{{0.32, 2.27}, {3.27, 4.41}, {5.38, 7.68}, {8.16, 10.62}}
	for _, args := range [][]string{
		{"vad", "../../testdata/jfk.wav"},
		{"vad", "--model", "../../vad/model/silero-v6.2.0-ggml.bin", "../../testdata/jfk.wav"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, errOut, code := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			var got struct {
				Segments []struct {
					Start *float64 `json:"start"`
					End   *float64 `json:"end"`
				} `json:"segments"`
			}
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stdout is not the segments JSON: %v\n%s", err, out)
			}
			if len(got.Segments) != len(want) {
				t.Fatalf("%d segments, want %d:\n%s", len(got.Segments), len(want), out)
			}
			for i, s := range got.Segments {
				if s.Start == nil || s.End == nil {
					t.Fatalf("segment %d lacks start or end:\n%s", i, out)
				}
				if math.Abs(*s.Start-want[i][0]) > 0.05 || math.Abs(*s.End-want[i][1]) > 0.05 {
					t.Errorf("segment %d: [%.3f, %.3f], want [%.2f, %.2f] within 0.05 s", i, *s.Start, *s.End, want[i][0], want[i][1])
				}
			}
		})
	}
}

func TestVadCommandErrors(t *testing.T) {
	dir := t.TempDir()
	notModel := dir + "/not-a-model.bin"
	if err := os.WriteFile(notModel, []byte("RIFF....WAVEfmt "), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"vad", dir + "/missing.wav"}, "missing.wav"},
		{"not a model", []string{"vad", "--model", notModel, "../../testdata/jfk.wav"}, "not-a-model.bin: bad magic"},
		{"bad threshold", []string{"vad", "--threshold", "1.5", "../../testdata/jfk.wav"}, "threshold 1.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want an error; stdout:\n%s", out)
			}
			if strings.Contains(out, `"segments"`) {
				t.Errorf("segments on stdout despite the error:\n%s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, errOut)
			}
		})
	}
}
