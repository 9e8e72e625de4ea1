package models

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/verbatimhq/verbatim/mini"
)

// DefaultNames are the models used when none is named, in order of preference. Only real,
// full-size models are here: a missing default is an error that says what to pull, never a
// silent fallback to a small or random-weight model.
var DefaultNames = []string{"large-v3", "large-v3-turbo"}

// Suggested is the model the "no model installed" message tells the user to pull.
const Suggested = "large-v3-turbo"

// Resolve turns a --model argument into a model file or folder:
//   - an existing path is returned as given;
//   - otherwise a name ("large-v3", "ggml-large-v3.bin" or any installed NAME) is looked up as
//     dir/ggml-NAME.bin; a known model that is not there gives ErrNotInstalled with the command
//     that installs it, anything else ErrUnknown;
//   - "mini" is the project's own small model (package mini): embedded in the binary and
//     installed into dir on first use, or an error that says it is not built yet;
//   - an empty argument picks the first of DefaultNames installed in dir, or gives ErrNoModel
//     with the command that installs one.
func Resolve(name, dir string) (string, error) {
	if name == "" {
		for _, n := range DefaultNames {
			if p := filepath.Join(dir, "ggml-"+n+".bin"); isFile(p) {
				return p, nil
			}
		}
		e, _ := Lookup(Suggested)
		msg := fmt.Sprintf("%v: run `transcribe models pull %s` (%s) or pass --model PATH", ErrNoModel, e.Name, HumanSize(e.Size))
		if have, _ := Installed(dir); len(have) > 0 {
			names := make([]string, len(have))
			for i, m := range have {
				names[i] = m.Name
			}
			msg += fmt.Sprintf(" (installed but not a default: %s; pass --model NAME to use one)", strings.Join(names, ", "))
		}
		return "", &resolveError{msg: msg, err: ErrNoModel}
	}
	if st, err := os.Stat(name); err == nil && !(st.IsDir() && isModelName(name) && !isFile(filepath.Join(name, "model.safetensors"))) {
		// A path wins, except a folder that holds no model and is named like one (the
		// repository's own mini/ folder must not hide the mini model).
		return name, nil
	}
	if strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("model %s: no such file", name)
	}
	base := baseName(name)
	if base == mini.Name { // the project's own model, only when asked for by name
		return mini.Install(dir)
	}
	if p := filepath.Join(dir, "ggml-"+base+".bin"); base != "" && isFile(p) {
		return p, nil
	}
	if e, ok := Lookup(name); ok {
		return "", &resolveError{
			msg: fmt.Sprintf("model %s is not installed in %s: run `transcribe models pull %s` (%s)", e.Name, dir, e.Name, HumanSize(e.Size)),
			err: ErrNotInstalled,
		}
	}
	return "", &resolveError{
		msg: fmt.Sprintf("model %s: no such file, and not a model name (`transcribe models list` shows them)", name),
		err: ErrUnknown,
	}
}

// resolveError carries a full sentence for the user and a sentinel for code.
type resolveError struct {
	msg string
	err error
}

func (e *resolveError) Error() string { return e.msg }
func (e *resolveError) Unwrap() error { return e.err }

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// isModelName reports whether name, as given, is a model name: mini or one of the catalog's.
func isModelName(name string) bool {
	if strings.ContainsAny(name, `/\`) {
		return false
	}
	if baseName(name) == mini.Name {
		return true
	}
	_, ok := Lookup(name)
	return ok
}

// baseName is a model name without the file name's "ggml-" and ".bin".
func baseName(name string) string {
	return strings.TrimSuffix(strings.TrimPrefix(name, "ggml-"), ".bin")
}
