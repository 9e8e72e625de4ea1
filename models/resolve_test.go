package models

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	root := t.TempDir()
	touch := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := filepath.Join(root, "empty")         // a models folder with nothing in it
	turbo := filepath.Join(root, "turbo")         // large-v3-turbo only
	both := filepath.Join(root, "both")           // large-v3 and large-v3-turbo
	others := filepath.Join(root, "others")       // small models only
	missing := filepath.Join(root, "not-created") // no folder at all
	touch(filepath.Join(turbo, "ggml-large-v3-turbo.bin"))
	touch(filepath.Join(both, "ggml-large-v3-turbo.bin"))
	touch(filepath.Join(both, "ggml-large-v3.bin"))
	touch(filepath.Join(others, "ggml-small.en.bin"))
	touch(filepath.Join(others, "ggml-my-finetune.bin"))
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	file := touch(filepath.Join(root, "elsewhere", "model.bin"))
	folder := filepath.Join(root, "elsewhere") // a safetensors folder, say

	cases := []struct {
		name, arg, dir string
		want           string // path, or the exact error message
		err            error
	}{
		{"existing file path", file, empty, file, nil},
		{"existing folder path", folder, empty, folder, nil},
		{"missing path", filepath.Join(root, "nope.bin"), both, "model " + filepath.Join(root, "nope.bin") + ": no such file", nil},
		{"installed catalog name", "large-v3-turbo", turbo, filepath.Join(turbo, "ggml-large-v3-turbo.bin"), nil},
		{"file-name form", "ggml-small.en.bin", others, filepath.Join(others, "ggml-small.en.bin"), nil},
		{"installed non-catalog name", "my-finetune", others, filepath.Join(others, "ggml-my-finetune.bin"), nil},
		{"known, not installed", "small", turbo,
			"model small is not installed in " + turbo + ": run `transcribe models pull small` (487.6 MB)", ErrNotInstalled},
		{"unknown name", "huge-v9", both,
			"model huge-v9: no such file, and not a model name (`transcribe models list` shows them)", ErrUnknown},
		{"default prefers large-v3", "", both, filepath.Join(both, "ggml-large-v3.bin"), nil},
		{"default falls to large-v3-turbo", "", turbo, filepath.Join(turbo, "ggml-large-v3-turbo.bin"), nil},
		{"no default, empty folder", "", empty,
			"no model installed: run `transcribe models pull large-v3-turbo` (1.6 GB) or pass --model PATH", ErrNoModel},
		{"no default, no folder", "", missing,
			"no model installed: run `transcribe models pull large-v3-turbo` (1.6 GB) or pass --model PATH", ErrNoModel},
		{"no default, small ones installed", "", others,
			"no model installed: run `transcribe models pull large-v3-turbo` (1.6 GB) or pass --model PATH " +
				"(installed but not a default: my-finetune, small.en; pass --model NAME to use one)", ErrNoModel},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Resolve(c.arg, c.dir)
			if err != nil {
				if err.Error() != c.want {
					t.Fatalf("error %q\nwant  %q", err, c.want)
				}
				if c.err != nil && !errors.Is(err, c.err) {
					t.Fatalf("error %v is not %v", err, c.err)
				}
				return
			}
			if got != c.want || c.err != nil {
				t.Fatalf("Resolve = %s, want %s (err %v)", got, c.want, c.err)
			}
		})
	}
}

// TestResolveNameBeatsFolder: a folder in the working directory named like a model and holding
// none (the repository's own mini/ and large-v3/ ...) does not hide the model of that name; a
// folder that holds a model, and a file, still win.
func TestResolveNameBeatsFolder(t *testing.T) {
	cwd, dir := t.TempDir(), t.TempDir()
	t.Chdir(cwd)
	for _, d := range []string{"large-v3", "held"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ggml-large-v3.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Resolve("large-v3", dir); err != nil || got != filepath.Join(dir, "ggml-large-v3.bin") {
		t.Fatalf("Resolve(large-v3) with a ./large-v3 folder = %q, %v; want the installed model", got, err)
	}
	if err := os.WriteFile(filepath.Join("large-v3", "model.safetensors"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Resolve("large-v3", dir); err != nil || got != "large-v3" {
		t.Fatalf("Resolve(large-v3) with a model in ./large-v3 = %q, %v; want the folder", got, err)
	}
	if got, err := Resolve("held", dir); err != nil || got != "held" {
		t.Fatalf("Resolve(held), a folder not named like a model = %q, %v; want the folder", got, err)
	}
}
