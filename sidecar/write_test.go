package sidecar

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verbatimhq/verbatim/durable"
)

func TestParseFormats(t *testing.T) {
	cases := []struct {
		in   string
		want []Format
		err  bool
	}{
		{in: "srt,md", want: []Format{FormatSRT, FormatMD}},
		{in: " SRT , vtt,srt,json,txt", want: []Format{FormatSRT, FormatVTT, FormatJSON, FormatTXT}},
		{in: "srt,docx", err: true},
		{in: " , ", err: true},
	}
	for _, c := range cases {
		got, err := ParseFormats(c.in)
		if c.err {
			if !errors.Is(err, ErrFormat) {
				t.Errorf("ParseFormats(%q) err = %v, want ErrFormat", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("ParseFormats(%q) (-want +got):\n%s", c.in, diff)
		}
	}
}

func TestWriteAllAlwaysWritesJSON(t *testing.T) {
	tr := goldenTranscripts()["speech"]
	tr.Provenance.Created = time.Time{}
	now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC) }
	t.Cleanup(func() { now = time.Now })
	base := filepath.Join(t.TempDir(), "speech")
	paths, err := WriteAll(base, tr, []Format{FormatSRT, FormatSRT}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{base + ".srt", base + ".json"}, paths); diff != "" {
		t.Fatalf("paths (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ReadDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.Provenance.Created.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("created = %v, want the clock's time", doc.Provenance.Created)
	}
	if diff := cmp.Diff([]Format{FormatSRT, FormatJSON}, doc.Provenance.Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if tr.Provenance.Created != (time.Time{}) {
		t.Error("WriteAll changed the caller's transcript")
	}
}

// A render error (here a NaN statistic, which JSON cannot hold) writes nothing at all.
func TestWriteAllRenderErrorWritesNothing(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "speech")
	tr := goldenTranscripts()["speech"]
	if _, err := WriteAll(base, tr, []Format{FormatSRT, FormatMD}, Options{}); err != nil {
		t.Fatal(err)
	}
	before := readDir(t, dir)
	bad := goldenTranscripts()["speech"]
	bad.Segments[0].Text = " Entirely different words."
	bad.Segments[1].AvgLogProb = math.NaN()
	if _, err := WriteAll(base, bad, []Format{FormatSRT, FormatMD}, Options{}); err == nil {
		t.Fatal("want a render error")
	}
	if diff := cmp.Diff(before, readDir(t, dir)); diff != "" {
		t.Fatalf("files changed (-before +after):\n%s", diff)
	}
	if _, err := WriteAll(base, tr, []Format{"docx"}, Options{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("unknown format: err = %v, want ErrFormat", err)
	}
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func TestCurrent(t *testing.T) {
	formats := []Format{FormatSRT, FormatMD}
	cases := []struct {
		name   string
		change func(base string, p *Provenance, shape *ShapeOptions, formats *[]Format)
		want   string // in the reason; "" = current
	}{
		{"same run", func(string, *Provenance, *ShapeOptions, *[]Format) {}, ""},
		{"renamed input is the same input", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) { p.Input.Name = "other.m4a" }, ""},
		{"fewer formats", func(_ string, _ *Provenance, _ *ShapeOptions, f *[]Format) { *f = []Format{FormatMD} }, ""},
		{"explicit default shaping", func(_ string, _ *Provenance, s *ShapeOptions, _ *[]Format) { s.MaxLineChars = DefaultMaxLineChars }, ""},
		{"size", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) { p.Input.Size++ }, "input changed"},
		{"mtime", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) {
			p.Input.ModTime = p.Input.ModTime.Add(time.Nanosecond)
		}, "input changed"},
		{"hash", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) { p.Input.SHA256 = strings.Repeat("0", 64) }, "input changed"},
		{"no hash", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) { p.Input.SHA256 = "" }, "input changed"},
		{"model", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) { p.Model.SHA256 = "ff" }, "settings changed"},
		{"setting", func(_ string, p *Provenance, _ *ShapeOptions, _ *[]Format) {
			p.Settings = map[string]any{"beam_size": 1, "language": "auto", "task": "transcribe", "temperature": 0.0, "vad": true}
		}, "settings changed"},
		{"shaping", func(_ string, _ *Provenance, s *ShapeOptions, _ *[]Format) { s.MaxLineChars = 37 }, "settings changed"},
		{"format not written", func(_ string, _ *Provenance, _ *ShapeOptions, f *[]Format) { *f = append(*f, FormatVTT) }, "vtt was not written"},
		{"output deleted", func(base string, _ *Provenance, _ *ShapeOptions, _ *[]Format) { os.Remove(base + ".md") }, ".md is missing"},
		{"no JSON", func(base string, _ *Provenance, _ *ShapeOptions, _ *[]Format) { os.Remove(base + ".json") }, "no JSON sidecar"},
		{"corrupt JSON", func(base string, _ *Provenance, _ *ShapeOptions, _ *[]Format) {
			os.WriteFile(base+".json", []byte(`{"schema_version": 1, "provenance": [`), 0o644)
		}, "malformed"},
		{"other schema", func(base string, _ *Provenance, _ *ShapeOptions, _ *[]Format) {
			os.WriteFile(base+".json", []byte(`{"schema_version": 99}`), 0o644)
		}, "unsupported sidecar schema"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := goldenTranscripts()["speech"]
			base := filepath.Join(t.TempDir(), "speech")
			if _, err := WriteAll(base, tr, formats, Options{}); err != nil {
				t.Fatal(err)
			}
			p, shape, fs := tr.Provenance, ShapeOptions{}, slices.Clone(formats)
			c.change(base, &p, &shape, &fs)
			ok, reason := Current(base, fs, &p, shape)
			if c.want == "" {
				if !ok {
					t.Fatalf("not current: %s", reason)
				}
				return
			}
			if ok || !strings.Contains(reason, c.want) {
				t.Fatalf("Current = %v, %q; want false mentioning %q", ok, reason, c.want)
			}
		})
	}
}

func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Minute)
	// A process that has exited: its temp files are leftovers however new they are.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprint(gone.Process.Pid)
	self := fmt.Sprint(os.Getpid())
	for name, mtime := range map[string]time.Time{
		TempPrefix + "a.srt.123":         old,        // stale: removed
		TempPrefix + "a.md.456":          time.Now(), // a write in progress: kept
		TempPrefix + dead + ".b.srt.789": time.Now(), // its writer died: removed
		TempPrefix + self + ".c.srt.1":   time.Now(), // this process's own write: kept
		TempPrefix + "1.d.srt.2":         time.Now(), // pid 1 runs: kept
		"a.srt":                          old,        // an output: kept
		"notes" + TempPrefix:             old,        // prefix not at the start: kept
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, TempPrefix+"dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	wantRemoved := []string{TempPrefix + dead + ".b.srt.789", TempPrefix + "a.srt.123"}
	slices.Sort(wantRemoved)
	if diff := cmp.Diff(wantRemoved, removed); diff != "" {
		t.Fatalf("removed (-want +got):\n%s", diff)
	}
	var left []string
	for name := range readDirNames(t, dir) {
		left = append(left, name)
	}
	slices.Sort(left)
	want := []string{TempPrefix + "1.d.srt.2", TempPrefix + self + ".c.srt.1", TempPrefix + "a.md.456", TempPrefix + "dir", "a.srt", "notes" + TempPrefix}
	slices.Sort(want)
	if diff := cmp.Diff(want, left); diff != "" {
		t.Fatalf("left (-want +got):\n%s", diff)
	}
	if _, err := CleanTemp(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing dir: err = %v, want one naming it", err)
	}
}

func readDirNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range ents {
		m[e.Name()] = true
	}
	return m
}

// crashEnv makes the test binary a child that runs WriteAll and stops before its Nth rename,
// after telling the parent on stdout; the parent then kills it with SIGKILL.
const crashEnv = "VERBATIM_SIDECAR_CRASH_CHILD"

// A real crash: a child process is killed while WriteAll has a temp file written and not yet
// renamed. Every previous sidecar is intact afterwards, the JSON still describes the previous
// run (so the next run is not skipped), and only temp files with the prefix remain, which
// CleanTemp removes once stale.
func TestWriteAllKilledBeforeRename(t *testing.T) {
	if spec := os.Getenv(crashEnv); spec != "" {
		crashChild(spec)
		return
	}
	formats := []Format{FormatSRT, FormatVTT, FormatMD}
	for _, at := range []int{1, 3, 4} { // the first file, a later one, the JSON (last)
		t.Run(fmt.Sprintf("rename %d", at), func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "speech")
			tr := goldenTranscripts()["speech"]
			if _, err := WriteAll(base, tr, formats, Options{}); err != nil {
				t.Fatal(err)
			}
			before := readDir(t, dir)

			cmd := exec.Command(os.Args[0], "-test.run=^TestWriteAllKilledBeforeRename$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%s", crashEnv, at, base))
			stdin, err := cmd.StdinPipe() // never written: the child blocks reading it
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "renaming ") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child said %q, %v; want it to reach the rename", line, err)
			}
			tmp := strings.TrimSpace(strings.TrimPrefix(line, "renaming "))
			if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
				t.Fatal(err)
			}
			go io.Copy(io.Discard, stdout)
			if err := cmd.Wait(); err == nil {
				t.Fatal("child exited cleanly, want it killed")
			}

			after := readDir(t, dir)
			if _, ok := after[filepath.Base(tmp)]; !ok {
				t.Errorf("the temp file %s the child was renaming is gone", tmp)
			}
			for name, data := range after {
				if strings.HasPrefix(name, TempPrefix) {
					delete(after, name)
					continue
				}
				if old, ok := before[name]; !ok {
					t.Errorf("new file %s after the crash", name)
				} else if data != old && !(at > 1 && name == "speech.srt") && !(at > 2 && name == "speech.vtt") &&
					!(at > 3 && name == "speech.md") {
					t.Errorf("%s changed though its rename had not happened", name)
				}
			}
			if at > 1 && after["speech.srt"] == before["speech.srt"] {
				t.Error("speech.srt unchanged though the child renamed it before the crash")
			}
			if len(after) != len(before) {
				t.Errorf("sidecars after the crash: %v, want all of %v", slices.Sorted(mapKeys(after)), slices.Sorted(mapKeys(before)))
			}
			if after["speech.json"] != before["speech.json"] {
				t.Error("the JSON changed before the last rename")
			}
			// The child ran with other settings: its run must not count as current.
			p := tr.Provenance
			p.Settings = map[string]any{"beam_size": 1}
			if ok, _ := Current(base, formats, &p, ShapeOptions{}); ok {
				t.Error("a crashed run counts as current")
			}
			// The stale temp file goes once it is older than StaleTemp.
			now = func() time.Time { return time.Now().Add(StaleTemp + time.Second) }
			defer func() { now = time.Now }()
			removed, err := CleanTemp(dir)
			if err != nil || len(removed) != 1 {
				t.Fatalf("CleanTemp = %v, %v; want the one temp file", removed, err)
			}
			assertNoTemp(t, dir)
		})
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// crashChild runs in the child: WriteAll with other settings, blocking before rename number
// N (spec "N:base") until killed.
func crashChild(spec string) {
	var n int
	var base string
	if _, err := fmt.Sscanf(spec, "%d:", &n); err != nil {
		fmt.Println("bad spec", spec)
		os.Exit(2)
	}
	base = spec[strings.Index(spec, ":")+1:]
	calls := 0
	durable.SetRenameForTest(func(from, to string) error {
		calls++
		if calls == n {
			fmt.Printf("renaming %s\n", from)
			io.ReadAll(os.Stdin) // blocks: the parent never writes or closes it before the kill
			os.Exit(3)
		}
		return os.Rename(from, to)
	})
	tr := goldenTranscripts()["speech"]
	tr.Segments[0].Text = " Words of another run."
	tr.Provenance.Settings = map[string]any{"beam_size": 1}
	_, err := WriteAll(base, tr, []Format{FormatSRT, FormatVTT, FormatMD}, Options{})
	fmt.Println("finished without crashing:", err)
	os.Exit(4)
}

// FuzzReadDocument: what reads writes and reads back the same. The seeds are the golden
// documents cut to one segment with two tokens and two words, without indentation: each field
// still appears, and minimizing a new input, which takes time quadratic in its size, stays short.
func FuzzReadDocument(f *testing.F) {
	for _, tr := range goldenTranscripts() {
		tr.Segments = tr.Segments[:1]
		seg := &tr.Segments[0]
		seg.Tokens = seg.Tokens[:min(2, len(seg.Tokens))]
		seg.Words = seg.Words[:min(2, len(seg.Words))]
		tr.Chapters = tr.Chapters[:min(1, len(tr.Chapters))]
		tr.Removed = tr.Removed[:min(1, len(tr.Removed))]
		b, err := NewDocument(tr, "fp", []Format{FormatSRT, FormatJSON}).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			f.Fatal(err)
		}
		f.Add(compact.Bytes())
	}
	f.Add([]byte(`{"schema_version": 1, "segments": [{"tokens": [{"start": 1e308}]}]}`))
	f.Add([]byte(`{"schema_version": 2}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		doc, err := ReadDocument(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSchema) {
				t.Fatalf("err = %v, want ErrMalformed or ErrSchema", err)
			}
			return
		}
		// What reads must write and read back the same.
		b, err := doc.Marshal()
		if err != nil {
			t.Fatalf("read document does not marshal: %v", err)
		}
		again, err := ReadDocument(b)
		if err != nil {
			t.Fatalf("marshalled document does not read: %v", err)
		}
		// reflect.DeepEqual is the quick check; cmp, which also takes nil for empty, decides.
		if !reflect.DeepEqual(doc, again) {
			if diff := cmp.Diff(doc, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("round trip (-first +second):\n%s", diff)
			}
		}
	})
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

// TestDocumentRoundTrip: the JSON sidecar gives back the transcript it was made from, and the
// other sidecars rendered from it are the ones the run wrote.
func TestDocumentRoundTrip(t *testing.T) {
	for name, tr := range goldenTranscripts() {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "talk")
			formats := []Format{FormatSRT, FormatVTT, FormatTXT, FormatMD}
			if _, err := WriteAll(base, tr, formats, Options{}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}
			doc, err := ReadDocument(data)
			if err != nil {
				t.Fatal(err)
			}
			back := doc.Transcript()
			want := *tr
			want.Provenance.Created = back.Provenance.Created                                                               // WriteAll stamps it
			if d := cmp.Diff(&want, back, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(Provenance{}, "Settings")); d != "" { // settings: JSON numbers come back as float64
				t.Errorf("transcript (-written +read back):\n%s", d)
			}
			for _, f := range formats {
				got, err := Render(back, f, Options{})
				if err != nil {
					t.Fatal(err)
				}
				file, _ := os.ReadFile(base + "." + string(f))
				if string(got) != string(file) {
					t.Errorf("%s rendered from the JSON differs from the file", f)
				}
			}
		})
	}
	if _, err := Render(&Transcript{}, FormatJSON, Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("Render json: %v", err)
	}
}
