package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/verbatimhq/verbatim/sidecar"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the transcribe command once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "transcribe-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "transcribe")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
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

// TestSynthAndTranscribe is the engine issue's acceptance run: a synthetic tiny model in ggml,
// then jfk.wav through the real binary, giving a well-formed SRT beside a copy of the input.
func TestSynthAndTranscribe(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "t.bin")
	if out, errOut, code := run(t, "models", "synth", "--arch", "tiny", "--dtype", "f32", "--seed", "1",
		"--format", "ggml", "-o", model); code != 0 {
		t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
	}
	wav := filepath.Join(dir, "jfk.wav")
	data, err := os.ReadFile("../../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wav, data, 0o644); err != nil {
		t.Fatal(err)
	}
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
		{"header only", "../../../shared/fixtures/ggml-header-tiny.bin", "no tensors"},
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
