package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/alecthomas/kong"
)

// TestServiceArgs: the command line the service runs (serve and the flags given to service
// install) parses back to the same daemon settings, from any working folder: relative paths
// become absolute, negations and durations survive, flags left at their defaults stay out.
func TestServiceArgs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("m.bin", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	install := []string{"service", "install", "--watch", "in", "--watch=/srv/b c", "--language", "de", "--no-vad",
		"--no-word-timestamps", "--settle", "2500ms", "--temperature", "0.3", "--model", "m.bin", "--formats", "srt,json",
		"--no-start", "--prompt", `Ada "100%" $HOME`}
	var cl cli
	k, err := kong.New(&cl, parserOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := k.Parse(install)
	if err != nil {
		t.Fatal(err)
	}
	args := flagArgs(kc, "no-start")
	want := []string{"--watch=" + filepath.Join(dir, "in"), "--watch=/srv/b c", "--language=de", "--no-vad",
		"--no-word-timestamps", "--settle=2.5s", "--temperature=0.3", "--model=" + filepath.Join(dir, "m.bin"),
		"--formats=srt,json", `--prompt=Ada "100%" $HOME`}
	if !slices.Equal(args, want) {
		t.Fatalf("service arguments\n %q\nwant\n %q", args, want)
	}

	t.Chdir(t.TempDir()) // the service runs elsewhere
	var back cli
	k2, err := kong.New(&back, parserOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Parse(append([]string{"serve"}, args...)); err != nil {
		t.Fatal(err)
	}
	got, sent := back.Serve, cl.Service.Install.serveCmd
	sent.Model = filepath.Join(dir, "m.bin") // the one difference: the model's path made absolute
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("serve parses the service's arguments to\n %+v\nnot\n %+v", got, sent)
	}
}
