package pipeline

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/vad"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

var (
	modelOnce sync.Once
	modelPath string
	modelErr  error
)

// microModel writes a random-weight micro model once per test binary.
func microModel(t *testing.T) string {
	t.Helper()
	modelOnce.Do(func() {
		dir, err := testkit.SharedDir("pipeline-test-")
		if err != nil {
			modelErr = err
			return
		}
		cfg, _ := weights.Arch("micro")
		modelPath, modelErr = whisper.WriteSynth(filepath.Join(dir, "micro.bin"),
			whisper.SynthOptions{Config: cfg, DType: tensor.F32, Seed: 3, Format: weights.GGML})
	})
	if modelErr != nil {
		t.Fatal(modelErr)
	}
	return modelPath
}

func newRunner(t *testing.T) *Runner {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := microModel(t)
	m, err := whisper.Load(p, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r, err := NewRunner(m, p, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fastOptions decode greedily, English, without fallback, and at most fastTokens tokens a
// window: these tests are about what happens around the decoding (files, batches, sidecars,
// checkpoints), and the random-weight model otherwise samples the model's limit of 224 tokens in
// every window, most of their time under the race detector (TestLongGapsStayEmpty, which checks
// the segments' times, decodes to the limit).
func fastOptions() Options {
	d := whisper.DefaultOptions()
	d.Language, d.BeamSize, d.BestOf, d.NoFallback, d.Temperatures = "en", 1, 1, true, []float64{0}
	d.MaxWindowTokens = fastTokens
	return Options{Decode: d, Formats: []sidecar.Format{sidecar.FormatSRT, sidecar.FormatMD}}
}

const fastTokens = 24

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A second run on an unchanged input with the same settings does nothing; --force redoes it; a
// changed input is redone.
func TestFileCurrentAndForce(t *testing.T) {
	r := newRunner(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "talk one.wav")
	copyFile(t, "../testdata/jfk.wav", in)
	opts := fastOptions()

	o, err := r.file(t.Context(), in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if o.Skipped || len(o.Outputs) != 3 { // srt, md and the json run record
		t.Fatalf("first run: %+v", o)
	}
	f, err := os.Open(filepath.Join(dir, "talk one.srt"))
	if err != nil {
		t.Fatal(err)
	}
	cues, err := sidecar.ParseSRT(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := sidecar.Validate(cues, sidecar.ShapeOptions{}); err != nil {
		t.Fatalf("shaped cues do not validate: %v", err)
	}
	srtInfo, _ := os.Stat(filepath.Join(dir, "talk one.srt"))

	o, err = r.file(t.Context(), in, opts)
	if err != nil || !o.Skipped {
		t.Fatalf("second run: %+v, %v; want skipped", o, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "talk one.srt")); !fi.ModTime().Equal(srtInfo.ModTime()) {
		t.Fatal("a skipped run rewrote the SRT")
	}
	opts.Force = true
	if o, err = r.file(t.Context(), in, opts); err != nil || o.Skipped {
		t.Fatalf("forced run: %+v, %v", o, err)
	}
	opts.Force = false
	opts.Decode.Prompt = "different settings"
	if o, err = r.file(t.Context(), in, opts); err != nil || o.Skipped {
		t.Fatalf("changed settings: %+v, %v; want a new run", o, err)
	}
}

// tuned is a backend with switches (tensor.Tuned), as the cuda backend is.
type tuned struct {
	tensor.Backend
	settings string
}

func (b tuned) Settings() string { return b.settings }

// TestBackendOptionsRecorded: the backend's switches that are not at their default are in the
// run record's settings ("" with default switches), and a run with other switches is not taken
// for current.
func TestBackendOptionsRecorded(t *testing.T) {
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	runner := func(settings string) *Runner {
		m, err := whisper.Load(microModel(t), tuned{b, settings})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		r, err := NewRunner(m, microModel(t), nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "talk.wav")
	copyFile(t, "../testdata/jfk.wav", in)
	opts := fastOptions()
	recorded := func() (string, bool) {
		data, err := os.ReadFile(filepath.Join(dir, "talk.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := sidecar.ReadDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := doc.Provenance.Settings["backend_options"]
		s, _ := v.(string)
		return s, ok
	}
	steps := []struct {
		settings    string
		wantSkipped bool
	}{
		{"", false},
		{"", true},
		{"lt=off", false},
		{"lt=off", true},
		{"graphs=off,lt=off", false},
		{"", false},
	}
	for i, st := range steps {
		o, err := runner(st.settings).file(t.Context(), in, opts)
		if err != nil {
			t.Fatal(err)
		}
		if o.Skipped != st.wantSkipped {
			t.Fatalf("step %d (%q): skipped %v, want %v", i, st.settings, o.Skipped, st.wantSkipped)
		}
		if got, ok := recorded(); got != st.settings || !ok {
			t.Fatalf("step %d: backend_options %q (present %v), want %q", i, got, ok, st.settings)
		}
	}
}

// Bad inputs fail with their specific error, marked permanent, and nothing is written.
func TestFileBadInputs(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("%v (make test installs ffmpeg: scripts/deps.sh)", err)
	}
	r := newRunner(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.m4a")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noAudio := filepath.Join(dir, "silent-film.mp4")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=1",
		"-c:v", "mpeg4", noAudio).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	cases := []struct {
		name, path string
		want       error
	}{
		{"missing", filepath.Join(dir, "nope.wav"), media.ErrNotFound},
		{"empty", empty, media.ErrEmpty},
		{"no audio", noAudio, media.ErrNoAudio},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.file(t.Context(), c.path, fastOptions())
			if !errors.Is(err, c.want) || !errors.Is(err, ErrPermanent) {
				t.Fatalf("err = %v, want %v and ErrPermanent", err, c.want)
			}
			base := OutputBase(c.path, "")
			for _, ext := range []string{".srt", ".md", ".json"} {
				if _, err := os.Stat(base + ext); err == nil {
					t.Fatalf("%s%s was written", base, ext)
				}
			}
		})
	}
}

// file transcribes one input as the CLI does (Pool).
func (r *Runner) file(ctx context.Context, path string, opts Options) (*Outcome, error) {
	res := Pool(ctx, []*Runner{r}, []string{path}, opts, nil)[0]
	return res.Outcome, res.Err
}

// files transcribes inputs as the CLI does (Pool), on r alone.
func (r *Runner) files(ctx context.Context, inputs []string, opts Options) []FileResult {
	return Pool(ctx, []*Runner{r}, inputs, opts, nil)
}

// changed returns a copy of v with its field i set to another value than it has.
func changed(t *testing.T, v reflect.Value, i int) reflect.Value {
	t.Helper()
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	f := c.Field(i)
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		f.SetInt(f.Int() + 1)
	case reflect.Uint64:
		f.SetUint(f.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		f.SetFloat(f.Float() + 0.5)
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Slice:
		f.Set(reflect.Append(f, reflect.New(f.Type().Elem()).Elem()))
	default:
		t.Fatalf("field %s of kind %s: no way to change it here", v.Type().Field(i).Name, f.Kind())
	}
	return c
}

// TestRecordCoversEveryOption: every field of whisper.Options that can change a transcript (all
// but the callback and the speech regions, which the VAD settings stand for) and of vad.Options
// changes the run record, so a run with any other setting is not taken for current. The record
// is derived from the option structs, so a field added later is covered without a list to keep.
func TestRecordCoversEveryOption(t *testing.T) {
	base := DefaultOptions()
	want, err := settings(&base, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, o Options) {
		t.Helper()
		got, err := settings(&o, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if reflect.DeepEqual(got, want) {
			t.Errorf("changing %s leaves the run record as it was", name)
		}
	}
	dv := reflect.ValueOf(base.Decode)
	for i := range dv.NumField() {
		f := dv.Type().Field(i)
		if f.Tag.Get("json") == "-" {
			continue
		}
		o := base
		o.Decode = changed(t, dv, i).Interface().(whisper.Options)
		check("whisper.Options."+f.Name, o)
	}
	vv := reflect.ValueOf(base.VAD)
	for i := range vv.NumField() {
		o := base
		o.VAD = changed(t, vv, i).Interface().(vad.Options)
		check("vad.Options."+vv.Type().Field(i).Name, o)
	}
	o := base
	o.NoVAD = true
	check("NoVAD", o)
	o = base
	o.AudioTrack = "1"
	check("AudioTrack", o)
	o = base
	o.MaxDuration = time.Hour
	check("MaxDuration", o)
	nan := base
	nan.Decode.NoSpeechThreshold = math.NaN() // "off": JSON has no NaN
	if _, err := settings(&nan, nil); err != nil {
		t.Errorf("a NaN threshold: %v", err)
	}
}

// TestModeAndCompatRedo: a run with other windows (Independent) or other rules (whisper.cpp's)
// redoes a file whose sidecars are current for the defaults; the same settings again skip it.
func TestModeAndCompatRedo(t *testing.T) {
	r := newRunner(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "talk.wav")
	copyFile(t, "../testdata/jfk.wav", in)
	steps := []struct {
		name string
		edit func(*Options)
		skip bool
	}{
		{"defaults", func(*Options) {}, false},
		{"defaults again", func(*Options) {}, true},
		{"independent windows", func(o *Options) { o.Decode.Windows = whisper.Independent }, false},
		{"independent windows again", func(o *Options) { o.Decode.Windows = whisper.Independent }, true},
		{"whisper.cpp's rules", func(o *Options) { o.Decode.WhisperCppDefaults() }, false},
		{"whisper.cpp's rules again", func(o *Options) { o.Decode.WhisperCppDefaults() }, true},
		{"back to the defaults", func(*Options) {}, false},
	}
	for _, st := range steps {
		o := fastOptions()
		st.edit(&o)
		out, err := r.file(t.Context(), in, o)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if out.Skipped != st.skip {
			t.Fatalf("%s: skipped %v, want %v (%s)", st.name, out.Skipped, st.skip, out.Reason)
		}
	}
}

// serve1 runs one task through Serve and returns its outcome.
func (r *Runner) serve1(t *testing.T, task Task) (*Outcome, error) {
	t.Helper()
	var out *Outcome
	var err error
	given := false
	task.Done = func(o *Outcome, e error) { out, err = o, e }
	r.Serve(t.Context(), func() (Task, bool) {
		if given {
			return Task{}, false
		}
		given = true
		return task, true
	}, 0)
	return out, err
}

// TestResumeAndReuse: a file transcribed again from a checkpoint of its first transcription
// gets the same sidecars, saying where it resumed; a copy of it under another name gets the
// same transcript from the stored result (through its binary form) without a transcription,
// with its own identity in the provenance.
func TestResumeAndReuse(t *testing.T) {
	r := newRunner(t)
	withVAD(t, r)
	dir := t.TempDir()
	paths := recordings(t, dir)
	long := paths[2] // several windows
	opts := fastOptions()
	opts.Formats = []sidecar.Format{sidecar.FormatJSON}
	var cps []*whisper.Checkpoint
	first, err := r.serve1(t, Task{Path: long, Options: opts, Checkpoint: func(c *whisper.Checkpoint) { cps = append(cps, c) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) < 2 || first.Stored == nil || first.Resumed != 0 {
		t.Fatalf("%d checkpoints, stored %v, resumed %v", len(cps), first.Stored != nil, first.Resumed)
	}
	jsonPath := strings.TrimSuffix(long, ".wav") + ".json"
	_, want := readDoc(t, jsonPath)

	cp := cps[len(cps)/2]
	o := opts
	o.Force = true
	again, err := r.serve1(t, Task{Path: long, Options: o, Resume: cp})
	if err != nil {
		t.Fatal(err)
	}
	if again.Resumed != cp.Done() || again.Resumed == 0 {
		t.Errorf("resumed at %v, want the checkpoint's %v", again.Resumed, cp.Done())
	}
	if _, got := readDoc(t, jsonPath); !reflect.DeepEqual(got, want) {
		t.Errorf("resumed transcript differs:\n%+v\n%+v", got, want)
	}

	data, err := first.Stored.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var s Stored
	if err := s.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	cp2 := filepath.Join(dir, "copy of long.wav")
	copyFile(t, long, cp2)
	reused, err := r.Reuse(cp2, opts, &s)
	if err != nil {
		t.Fatal(err)
	}
	doc, got := readDoc(t, strings.TrimSuffix(cp2, ".wav")+".json")
	if !reflect.DeepEqual(got, want) || doc.Provenance.Input.Name != filepath.Base(cp2) || reused.Elapsed != 0 {
		t.Errorf("reused: input %q, elapsed %v, transcript equal %v", doc.Provenance.Input.Name, reused.Elapsed, reflect.DeepEqual(got, want))
	}
	if o, err := r.Reuse(cp2, opts, &s); err != nil || !o.Skipped {
		t.Errorf("reuse again: %+v, %v; want skipped as current", o, err)
	}
}

// TestTaskSegmentsAndCancel: a task's Segments hear every segment of the sidecars, in order,
// as windows are decoded (a resumed task: the ones from before its checkpoint first); a task
// whose own context ends stops with its error, writes no sidecar, and the next task is done.
func TestTaskSegmentsAndCancel(t *testing.T) {
	r := newRunner(t)
	dir := t.TempDir()
	paths := recordings(t, dir)
	long := paths[2]
	opts := fastOptions()
	opts.Formats = []sidecar.Format{sidecar.FormatJSON}
	var heard []sidecar.Segment
	calls := 0
	var cps []*whisper.Checkpoint
	if _, err := r.serve1(t, Task{Path: long, Options: opts,
		Segments:   func(s []sidecar.Segment) { heard = append(heard, s...); calls++ },
		Checkpoint: func(c *whisper.Checkpoint) { cps = append(cps, c) }}); err != nil {
		t.Fatal(err)
	}
	jsonPath := strings.TrimSuffix(long, ".wav") + ".json"
	doc, _ := readDoc(t, jsonPath)
	want := doc.Transcript().Segments
	if calls < 2 || len(heard) != len(want) {
		t.Fatalf("%d calls gave %d segments; the sidecar has %d", calls, len(heard), len(want))
	}
	for i := range want {
		if heard[i].Text != want[i].Text || heard[i].Start.Round(time.Millisecond) != want[i].Start || heard[i].End.Round(time.Millisecond) != want[i].End {
			t.Errorf("segment %d: heard %+v, the sidecar has %+v", i, heard[i], want[i])
		}
	}
	// Resumed from the middle: every segment still heard, the earlier ones first.
	o := opts
	o.Force = true
	var again []sidecar.Segment
	if _, err := r.serve1(t, Task{Path: long, Options: o, Resume: cps[len(cps)/2],
		Segments: func(s []sidecar.Segment) { again = append(again, s...) }}); err != nil {
		t.Fatal(err)
	}
	if len(again) != len(want) {
		t.Errorf("resumed: heard %d segments, want %d", len(again), len(want))
	}

	// Cancelled after its first window: no sidecar; the task after it is done.
	cancelDir := t.TempDir()
	other := recordings(t, cancelDir)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	results := map[string]error{}
	tasks := []Task{
		{Path: other[2], Options: opts, Ctx: ctx, Checkpoint: func(*whisper.Checkpoint) { cancel() }},
		{Path: other[0], Options: opts},
	}
	r.Serve(t.Context(), func() (Task, bool) {
		if len(tasks) == 0 {
			return Task{}, false
		}
		tk := tasks[0]
		tasks = tasks[1:]
		tk.Done = func(_ *Outcome, err error) { results[tk.Path] = err }
		return tk, true
	}, 0)
	if err := results[other[2]]; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled task: %v", err)
	}
	if _, err := os.Stat(strings.TrimSuffix(other[2], ".wav") + ".json"); !os.IsNotExist(err) {
		t.Errorf("the cancelled task wrote its sidecar: %v", err)
	}
	if err := results[other[0]]; err != nil {
		t.Errorf("the task after it: %v", err)
	}
}
