package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/cuda"
	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/tensor"
)

// build is a build of the transcribe command made once per test run.
type build struct {
	once sync.Once
	path string
	err  error
}

var plainBuild, faultBuild build

// binary builds the transcribe command once per test run and returns its path; with
// VERBATIM_TEST_RACE set, with the race detector.
func binary(t *testing.T) string {
	t.Helper()
	var flags []string
	if os.Getenv("VERBATIM_TEST_RACE") != "" { // the daemon's tests report its data races
		flags = append(flags, "-race")
	}
	return plainBuild.get(t, flags...)
}

// get builds the command with the go build flags given, once, and returns its path.
func (b *build) get(t *testing.T, flags ...string) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := testkit.SharedDir("transcribe-test-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "transcribe")
		args := append([]string{"build", "-o", b.path}, flags...)
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build: %v", b.err)
	}
	return b.path
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// jfkCopy copies testdata/jfk.wav into dir and returns the copy's path and its bytes.
func jfkCopy(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	wav := filepath.Join(dir, "jfk.wav")
	if err := os.WriteFile(wav, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return wav, data
}

// TestSynthAndTranscribe is the engine issue's acceptance run: a synthetic tiny model in ggml,
// then jfk.wav through the real binary, giving a well-formed SRT beside a copy of the input.
func TestSynthAndTranscribe(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "t.bin")
	if out, errOut, code := run(t, "models", "synth", "--arch", "tiny", "--dtype", "f32", "--seed", "1",
		"--format", "ggml", "-o", model); code != 0 {
		t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
	}
	wav, data := jfkCopy(t, dir)
	out, errOut, code := run(t, "--model", model, "--beam-size", "1", "--no-fallback", "--language", "en", wav)
	if code != 0 {
		t.Fatalf("transcribe: exit %d\n%s%s", code, out, errOut)
	}
	srt := filepath.Join(dir, "jfk.srt")
	if !strings.Contains(out, srt) {
		t.Errorf("summary line does not name the output %s:\n%s", srt, out)
	}
	f, err := os.Open(srt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cues, err := sidecar.ParseSRT(f)
	if err != nil {
		t.Fatalf("%s is not a well-formed SRT: %v", srt, err)
	}
	if len(cues) == 0 {
		t.Fatalf("%s has no cues", srt)
	}
	if got, _ := os.ReadFile(wav); !bytes.Equal(got, data) {
		t.Error("the input file was modified")
	}
	// --out names a folder that is not there yet: it is made.
	outDir := filepath.Join(dir, "new", "transcripts")
	if out, errOut, code := run(t, "--model", model, "--beam-size", "1", "--no-fallback", "--language", "en", "--out", outDir, wav); code != 0 {
		t.Fatalf("transcribe --out: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(outDir, "jfk.srt")); err != nil {
		t.Errorf("--out into a new folder: %v", err)
	}
}

// TestBadModels: a missing, empty, truncated, header-only or wrong-architecture model file gives
// one line on stderr naming the file and the problem, and a non-zero exit; nothing is written.
func TestBadModels(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "micro.bin")
	if _, e, code := run(t, "models", "synth", "--arch", "micro", "--dtype", "f16", "-o", good); code != 0 {
		t.Fatal(e)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The micro header says d_model 64; claim 384 instead (tiny's width) to get a wrong architecture.
	wrong := append([]byte(nil), data...)
	copy(wrong[12:16], []byte{0x80, 0x01, 0, 0}) // n_audio_state
	copy(wrong[28:32], []byte{0x80, 0x01, 0, 0}) // n_text_state
	cases := []struct{ name, model, want string }{
		{"missing", filepath.Join(dir, "nope.bin"), "no such file"},
		{"empty", write("empty.bin", nil), "empty file"},
		{"truncated", write("trunc.bin", data[:len(data)/2]), "truncated"},
		{"header only", "../../whisper/weights/testdata/ggml-header-tiny.bin", "no tensors"},
		{"not a model", "../../testdata/jfk.wav", "not a ggml or safetensors file"},
		{"wrong architecture", write("wrong.bin", wrong), "shape"},
	}
	wav := filepath.Join(dir, "in.wav")
	src, _ := os.ReadFile("../../testdata/jfk.wav")
	if err := os.WriteFile(wav, src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := run(t, "--model", c.model, wav)
			if code == 0 {
				t.Fatal("exit 0")
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.Contains(lines[0], filepath.Base(c.model)) {
				t.Fatalf("stderr = %q, want one line naming %s and %q", errOut, filepath.Base(c.model), c.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "in.srt")); err == nil {
				t.Fatal("an SRT was written")
			}
		})
	}
}

// TestManyFiles: several files in one run, batched together (--batch 3), among them a text file
// named .mp3, a WAV cut inside its header and a missing file: each bad one gets its own line on
// stderr naming it, the good ones their sidecars and a line each on stdout in the order given,
// and the exit status is non-zero. A second run skips the good ones.
func TestManyFiles(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.bin")
	if out, errOut, code := run(t, "models", "synth", "--arch", "micro", "--dtype", "f32", "--seed", "1", "-o", model); code != 0 {
		t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
	}
	data, err := os.ReadFile("../../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := []string{write("a.wav", data), write("b.wav", data), write("c.wav", data)}
	bad := []string{write("notes.mp3", []byte(strings.Repeat("not audio\n", 100))), write("cut.wav", data[:30]), filepath.Join(dir, "missing.wav")}
	files := []string{good[0], bad[0], good[1], bad[1], bad[2], good[2]}
	args := []string{"--model", model, "--beam-size", "1", "--no-fallback", "--language", "en", "--no-vad", "--batch", "3", "--formats", "srt"}
	out, errOut, code := run(t, append(append(args, "-v"), files...)...)
	if code == 0 {
		t.Fatalf("exit 0 with bad files\n%s%s", out, errOut)
	}
	// -v sums up the files transcribed: jfk.wav is one window, decoded again by each coverage
	// retry (random weights leave its speech uncovered).
	var sum struct {
		Message string
		Files   int
		Windows int `json:"windows_decoded"`
	}
	for l := range strings.Lines(errOut) {
		if json.Unmarshal([]byte(l), &sum) == nil && sum.Message == "transcribed" {
			break
		}
	}
	if sum.Message != "transcribed" || sum.Files != len(good) || sum.Windows < len(good) {
		t.Errorf("-v sums up %+v, want %d files of at least a window each:\n%s", sum, len(good), errOut)
	}
	// and where the time went on the device: the encoder and the decoder took time, in sessions
	// that decoded at least the windows summed up above.
	var tm struct {
		Message        string
		Backend        string
		Seconds        map[string]float64
		Sessions       int
		SessionWindows int `json:"session_windows"`
		Steps          int
	}
	for l := range strings.Lines(errOut) {
		if json.Unmarshal([]byte(l), &tm) == nil && tm.Message == "where the time went" {
			break
		}
	}
	if tm.Message != "where the time went" || !strings.HasPrefix(tm.Backend, "cpu") || tm.Seconds["encode"] <= 0 || tm.Seconds["decode"] <= 0 ||
		tm.Sessions < 1 || tm.SessionWindows < sum.Windows || tm.Steps < tm.Sessions {
		t.Errorf("-v's timing %+v, want the encoder's and decoder's seconds, sessions of the %d windows decoded:\n%s", tm, sum.Windows, errOut)
	}
	// and the peak resident memory, at least the model file's mapped part: more than 10 MB.
	var mem struct {
		Message string
		PeakMB  float64 `json:"peak_resident_mb"`
	}
	for l := range strings.Lines(errOut) {
		if json.Unmarshal([]byte(l), &mem) == nil && mem.Message == "memory" {
			break
		}
	}
	if mem.Message != "memory" || mem.PeakMB < 10 {
		t.Errorf("-v's memory line %+v, want the peak resident memory in MB:\n%s", mem, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(good) {
		t.Fatalf("stdout has %d lines, want one per good file:\n%s", len(lines), out)
	}
	for i, g := range good {
		if !strings.HasPrefix(lines[i], g+": ") {
			t.Errorf("line %d = %q, want the report of %s (input order)", i, lines[i], g)
		}
		if _, err := os.Stat(strings.TrimSuffix(g, ".wav") + ".srt"); err != nil {
			t.Errorf("%s: no SRT: %v", g, err)
		}
	}
	errLines := strings.Split(strings.TrimSpace(errOut), "\n")
	for _, b := range bad {
		n := 0
		for _, l := range errLines {
			if strings.Contains(l, b+":") || strings.HasSuffix(l, b) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("stderr names %s %d times, want once:\n%s", b, n, errOut)
		}
	}
	if !strings.Contains(errOut, "3 of 6 files failed") {
		t.Errorf("stderr does not sum up the failures:\n%s", errOut)
	}
	out, errOut, code = run(t, append(args, good...)...)
	if code != 0 || strings.Count(out, ": skipped, ") != len(good) {
		t.Errorf("second run: exit %d\n%s%s", code, out, errOut)
	}
}

// TestOpenBackends: one backend per CUDA device when there are several (a device that fails is
// left out), one when there is one; the CPU backend when no device opens and the backend is
// auto, an error naming every device when it is cuda. Every device gets the same switches.
// CPU backends stand in for the devices.
func TestOpenBackends(t *testing.T) {
	defer func(d func() (int, error), o func(cuda.Options) (tensor.Backend, error)) {
		cudaDevices, openCUDA = d, o
	}(cudaDevices, openCUDA)
	switches := cuda.Options{NoLt: true, SmallRows: 16}
	cases := []struct {
		name, backend string
		devices       int
		broken        []int
		wantOpened    []int // devices opened
		wantCPU       bool  // the CPU backend instead
		wantErr       bool
	}{
		{"three devices, one broken", "cuda", 3, []int{1}, []int{0, 2}, false, false},
		{"auto with two devices", "auto", 2, nil, []int{0, 1}, false, false},
		{"one device", "cuda", 1, nil, []int{0}, false, false},
		{"auto with one device", "auto", 1, nil, []int{0}, false, false},
		{"cpu ignores devices", "cpu", 4, nil, nil, true, false},
		{"every device broken", "cuda", 2, []int{0, 1}, nil, false, true},
		{"auto falls back to the cpu", "auto", 2, []int{0, 1}, nil, true, false},
		{"auto, one broken device, falls back to the cpu", "auto", 1, []int{0}, nil, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var opened []int
			cudaDevices = func() (int, error) { return c.devices, nil }
			openCUDA = func(o cuda.Options) (tensor.Backend, error) {
				if slices.Contains(c.broken, o.Device) {
					return nil, errors.New("device on fire")
				}
				if want := switches.String(); o.String() != want {
					t.Errorf("device %d opened with %q, want %q", o.Device, o, want)
				}
				opened = append(opened, o.Device)
				return cpu.New(cpu.Options{Threads: 1})
			}
			choice := backendChoice{name: c.backend, threads: 1}
			if c.backend != "cpu" {
				choice.cuda = switches
			}
			bs, err := openBackends(choice, zerolog.Nop())
			for _, b := range bs {
				defer b.Close()
			}
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), "cuda device 0: device on fire") || !strings.Contains(err.Error(), "cuda device 1") {
					t.Fatalf("err = %v, want one naming every device", err)
				}
				return
			}
			want := len(c.wantOpened)
			if c.wantCPU {
				want = 1
			}
			if err != nil || len(bs) != want || !slices.Equal(opened, c.wantOpened) {
				t.Fatalf("%d backends, devices %v opened, err %v; want %d, %v", len(bs), opened, err, want, c.wantOpened)
			}
		})
	}
}

// TestBackendOptionsFlag: --backend-options and $VERBATIM_BACKEND_OPTIONS reach every command
// that opens a backend, as the parser wires them, and are checked for the chosen backend before
// anything opens: cuda's switches for cuda and auto, none for the cpu.
func TestBackendOptionsFlag(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     string
		want    string // the cuda switches chosen, as cuda.Options.String prints them
		wantErr string
	}{
		{name: "none", args: []string{"bench"}, want: ""},
		{name: "bench cuda", args: []string{"bench", "--backend", "cuda", "--backend-options", "lt=off,graphs=off"}, want: "graphs=off,lt=off"},
		{name: "run auto", args: []string{"run", "x.wav", "--backend-options=attn=rows,precise=on"}, want: "attn=rows,precise=on"},
		{name: "default command", args: []string{"x.wav", "--backend", "cuda", "--backend-options", "smallrows=off"}, want: "smallrows=off"},
		{name: "vad", args: []string{"vad", "main.go", "--backend", "cuda", "--backend-options", "pick=off"}, want: "pick=off"},
		{name: "environment", args: []string{"bench", "--backend", "cuda"}, env: "flash=convert", want: "flash=convert"},
		{name: "flag over environment", args: []string{"bench", "--backend-options", "lt=off"}, env: "flash=convert", want: "lt=off"},
		{name: "defaults spelled out", args: []string{"bench", "--backend-options", "lt=on,pick=on"}, want: ""},
		{name: "cpu without options", args: []string{"bench", "--backend", "cpu"}, want: ""},
		{name: "cpu with options", args: []string{"bench", "--backend", "cpu", "--backend-options", "lt=off"},
			wantErr: `--backend-options "lt=off": the cpu backend has no options`},
		{name: "cpu with options from the environment", args: []string{"bench", "--backend", "cpu"}, env: "lt=off",
			wantErr: "the cpu backend has no options"},
		{name: "unknown key", args: []string{"bench", "--backend", "cuda", "--backend-options", "fast=on"},
			wantErr: `--backend-options: unknown cuda option "fast"`},
		{name: "auto checks the spec", args: []string{"x.wav", "--backend-options", "lt=maybe"},
			wantErr: "--backend-options: cuda option lt=maybe: unknown value (want on|off)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("VERBATIM_BACKEND_OPTIONS", c.env)
			var cl cli
			k, err := kong.New(&cl, parserOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			kc, err := k.Parse(c.args)
			if err != nil {
				t.Fatal(err)
			}
			var flags *backendFlags
			switch kc.Command() {
			case "bench":
				flags = &cl.Bench.backendFlags
			case "run <file>":
				flags = &cl.Run.backendFlags
			case "vad <file>":
				flags = &cl.Vad.backendFlags
			default:
				t.Fatalf("command %q", kc.Command())
			}
			choice, err := flags.choice()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := choice.cuda.String(); got != c.want {
				t.Errorf("cuda switches %q, want %q", got, c.want)
			}
		})
	}
}

// TestBackendOptionsHelp: the flag's help lists cuda's keys.
func TestBackendOptionsHelp(t *testing.T) {
	var cl cli
	k, err := kong.New(&cl, parserOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	var walk func(nodes []*kong.Node)
	walk = func(nodes []*kong.Node) {
		for _, node := range nodes {
			for _, f := range node.Flags {
				if f.Name == "backend-options" {
					have = append(have, node.Name)
					if !strings.Contains(f.Help, cuda.OptionKeys()) {
						t.Errorf("%s --backend-options help does not list the keys: %q", node.Name, f.Help)
					}
				}
			}
			walk(node.Children)
		}
	}
	walk(k.Model.Children)
	if want := []string{"run", "serve", "install", "bench", "vad"}; !slices.Equal(have, want) {
		t.Errorf("commands with --backend-options: %q, want %q", have, want)
	}
}

// TestBackendOptionsRejected: through the binary, a spec the backend cannot take stops the run
// with one line naming the flag, before a model is looked for or a device opened.
func TestBackendOptionsRejected(t *testing.T) {
	cases := []struct{ name, backend, spec, want string }{
		{"cpu", "cpu", "lt=off", `transcribe: --backend-options "lt=off": the cpu backend has no options`},
		{"cuda", "cuda", "lt=maybe", "transcribe: --backend-options: cuda option lt=maybe: unknown value (want on|off)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := run(t, "--backend", c.backend, "--backend-options", c.spec, "--model", "nope.bin", "nope.wav")
			if code == 0 || strings.TrimSpace(errOut) != c.want {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, c.want)
			}
		})
	}
}

// TestHiddenFlagsRejected: the benchmarks' hidden flags refuse negative values before anything
// is loaded, naming the flag.
func TestHiddenFlagsRejected(t *testing.T) {
	for _, c := range []struct{ flag, want string }{
		{"--max-window-tokens", "transcribe: --max-window-tokens -1: want 0 (no cap) or more"},
		{"--lanes", "transcribe: --lanes -1: want 0 (the default) or more"},
	} {
		_, errOut, code := run(t, c.flag+"=-1", "--model", "nope.bin", "nope.wav")
		if code == 0 || strings.TrimSpace(errOut) != c.want {
			t.Errorf("%s -1: exit %d, stderr %q; want %q", c.flag, code, errOut, c.want)
		}
	}
}

// TestChapterFramesSetting: --no-chapter-frames and a folder's chapter_frames = false reach the
// pipeline; the default shows the stills.
func TestChapterFramesSetting(t *testing.T) {
	var c cli
	parser, err := kong.New(&c, parserOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool // NoChapterFrames
	}{{[]string{"x.mp4"}, false}, {[]string{"--no-chapter-frames", "x.mp4"}, true}, {[]string{"--chapter-frames", "x.mp4"}, false}} {
		c = cli{}
		k, err := parser.Parse(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := pipelineOptions(c.Run.folder(givenFlags(k)))
		if err != nil {
			t.Fatal(err)
		}
		if opts.NoChapterFrames != tc.want {
			t.Errorf("%v: NoChapterFrames %v, want %v", tc.args, opts.NoChapterFrames, tc.want)
		}
	}
	off := false
	opts, err := pipelineOptions(config.Folder{ChapterFrames: &off})
	if err != nil || !opts.NoChapterFrames {
		t.Errorf("chapter_frames = false: NoChapterFrames %v, %v", opts.NoChapterFrames, err)
	}
}
