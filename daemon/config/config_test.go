package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFileErrors(t *testing.T) {
	cases := []struct {
		name, toml string
		line       int
		key, msg   string
	}{
		{"unknown key", "addr = \"127.0.0.1:8765\"\nwatchh = [\"/x\"]\n", 2, "watchh", "unknown key"},
		{"unknown key in defaults", "[defaults]\nmodel = \"mini\"\nlanguge = \"de\"\n", 3, "defaults.languge", "unknown key"},
		{"wrong type", "max_attempts = \"three\"\n", 1, "max_attempts", ""},
		{"bad duration", "settle = \"soon\"\n", 1, "settle", "not a duration"},
		{"syntax", "watch = [\"/a\"\n", 1, "", ""},
		{"bad format", "[defaults]\nformats = [\"srt\", \"docx\"]\n", 0, "defaults.formats", "docx"},
		{"bad task", "[defaults]\ntask = \"summarize\"\n", 0, "defaults.task", "transcribe or translate"},
		{"max attempts", "max_attempts = 0\n", 0, "max_attempts", "at least 1"},
		{"bad backend", "backend = \"gpu\"\n", 0, "backend", "auto, cpu, cuda or metal"},
		{"negative threads", "threads = -2\n", 0, "threads", "0 (all cores)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFile("/etc/verbatim.toml", []byte(c.toml))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v (%T), want *Error", err, err)
			}
			if e.File != "/etc/verbatim.toml" || (c.line > 0 && e.Line != c.line) || e.Key != c.key || !strings.Contains(e.Msg, c.msg) {
				t.Errorf("error %+v (%v), want line %d key %q containing %q", e, err, c.line, c.key, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "/etc/verbatim.toml") {
				t.Errorf("message %q does not start with the file", err)
			}
		})
	}
	f, err := ParseFile("ok.toml", []byte(`watch = ["/a", "/b"]
addr = "127.0.0.1:9"
settle = "3s"
rescan = "10m"
max_attempts = 5
[defaults]
model = "mini"
formats = ["srt", "json"]
languages = ["de", "en"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Watch) != 2 || *f.Addr != "127.0.0.1:9" || time.Duration(*f.Settle) != 3*time.Second ||
		time.Duration(*f.Rescan) != 10*time.Minute || *f.MaxAttempts != 5 || *f.Defaults.Model != "mini" ||
		len(f.Defaults.Formats) != 2 || len(f.Defaults.Languages) != 2 {
		t.Errorf("parsed %+v", f)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func str(s string) *string { return &s }

// TestTreeInherits: subfolders inherit their parents' settings unless they set them again;
// ignore patterns add up, each relative to its own folder; an output folder is relative to the
// file that names it; a bad file is reported once with its line and key and its last good
// version stays in force; a deleted one stops counting.
func TestTreeInherits(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, FolderFile), "model = \"mini\"\nlanguages = [\"de\", \"en\"]\nignore = [\"*.draft.wav\", \"tmp/*\"]\n")
	write(t, filepath.Join(root, "talks", FolderFile), "language = \"de\"\noutput = \"subs\"\nignore = [\"old\"]\n")
	write(t, filepath.Join(root, "talks", "private", FolderFile), "enabled = false\n")
	var reported []error
	tree := NewTree(Folder{Model: str("large-v3"), Formats: []string{"srt", "md"}}, func(err error) { reported = append(reported, err) })

	top := tree.Settings(root, filepath.Join(root, "a.wav"))
	if *top.Model != "mini" || len(top.Languages) != 2 || top.Language != nil || len(top.Formats) != 2 || !top.IsEnabled() {
		t.Errorf("top: %+v", top)
	}
	talk := tree.Settings(root, filepath.Join(root, "talks", "b.wav"))
	if *talk.Model != "mini" || *talk.Language != "de" || *talk.Output != filepath.Join(root, "talks", "subs") {
		t.Errorf("talks: %+v", talk)
	}
	if priv := tree.Settings(root, filepath.Join(root, "talks", "private", "deep", "c.wav")); priv.IsEnabled() || *priv.Language != "de" {
		t.Errorf("private: %+v", priv)
	}
	for _, c := range []struct {
		file string
		want bool
	}{
		{"a.wav", false},
		{"a.draft.wav", true},
		{"talks/b.draft.wav", true},
		{"tmp/x.wav", true},
		{"talks/tmp/x.wav", false}, // tmp/* is anchored at the root's folder
		{"talks/old/x.wav", true},  // a folder name covers what is inside
		{"old/x.wav", false},       // talks' pattern does not reach above talks
	} {
		f := filepath.Join(root, filepath.FromSlash(c.file))
		if got := tree.Settings(root, f); got.Ignored(f) != c.want {
			t.Errorf("%s: ignored %v, want %v", c.file, !c.want, c.want)
		}
	}

	// A bad edit: reported once, the last good version stays.
	bad := filepath.Join(root, "talks", FolderFile)
	time.Sleep(10 * time.Millisecond)
	write(t, bad, "language = \"de\"\nlanguge = \"en\"\n")
	for range 2 {
		if got := tree.Settings(root, filepath.Join(root, "talks", "b.wav")); *got.Language != "de" || got.Output == nil {
			t.Errorf("after a bad edit: %+v", got)
		}
	}
	var e *Error
	if len(reported) != 1 || !errors.As(reported[0], &e) || e.File != bad || e.Line != 2 || e.Key != "languge" {
		t.Fatalf("reported %v", reported)
	}
	os.Remove(bad)
	if got := tree.Settings(root, filepath.Join(root, "talks", "b.wav")); got.Language != nil || got.Output != nil {
		t.Errorf("after the file was removed: %+v", got)
	}
}

// FuzzParseFolder: a folder's file from anyone's folder never panics the parser; what it
// accepts passes its checks again.
func FuzzParseFolder(f *testing.F) {
	f.Add([]byte("model = \"mini\"\nlanguages = [\"de\"]\nignore = [\"*.tmp\"]\n"))
	f.Add([]byte("enabled = false\n"))
	f.Add([]byte("formats = [\"srt\", \"md\"]\noutput = \"../out\"\nbeam_size = 3\n"))
	f.Add([]byte("[x]\ny = 1\n"))
	f.Add([]byte("ignore = [\"[\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		folder, err := ParseFolder("f.toml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T", err, err)
			}
			return
		}
		if err := folder.check("f.toml", ""); err != nil {
			t.Fatalf("accepted, then: %v", err)
		}
	})
}

// TestOverCoversEveryField: every setting of a folder's file goes over the inherited ones (a
// field added to Folder and forgotten in Over would be dropped without a word).
func TestOverCoversEveryField(t *testing.T) {
	var g Folder
	v := reflect.ValueOf(&g).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		default:
			t.Fatalf("field %s: kind %s, which this test does not know", v.Type().Field(i).Name, f.Kind())
		}
	}
	got := reflect.ValueOf(Folder{}.Over(&g, "/d"))
	for i := range v.NumField() {
		if got.Field(i).IsNil() {
			t.Errorf("Over drops %s", v.Type().Field(i).Name)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1000": 1000, "512MB": 512e6, "4GB": 4e9, "1.5GiB": 3 << 29, "2 kib": 2048, "0": 0} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1GB", "4 parsecs", "1e400", "99999999999TB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
	f, err := ParseFile("c.toml", []byte("max_upload = \"2GB\"\nallow = [\"/srv/in\"]\n"))
	if err != nil || *f.MaxUpload != 2e9 || f.Allow[0] != "/srv/in" {
		t.Errorf("file: %+v %v", f, err)
	}
	if _, err := ParseFile("c.toml", []byte("max_upload = \"lots\"\n")); err == nil || !strings.Contains(err.Error(), "max_upload") {
		t.Errorf("bad size: %v", err)
	}
}
