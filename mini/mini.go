// Package mini holds the project's own small Whisper model ("mini"): a Whisper-architecture
// model with large-v3's conventions (128 mel bins, the 51,866-token vocabulary), trained on
// synthetic English speech by tools/mini and embedded in the binary as model/ggml-mini.bin.
// `--model mini` installs it into the models folder on first use, so the normal ggml loader
// maps it like any other model. It is only ever used when asked for by name.
package mini

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unsafe"
)

// Name is the model name that selects the mini model.
const Name = "mini"

// FileName is the model's file name, in this package's model folder and in the models folder.
const FileName = "ggml-mini.bin"

// ErrNotBuilt is returned when the binary was built without the mini model file.
var ErrNotBuilt = errors.New("the mini model is not built yet")

// Embedded returns the embedded model file, or nil when the binary was built without it. The
// bytes are the binary's read-only data, not a copy: they must not be written (a write faults).
func Embedded() []byte {
	if data == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(data), len(data))
}

// embeddedSum is the sha256 of the embedded model: from model/ggml-mini.bin.sha256, so that
// checking an installed copy reads none of the 28 MB in the binary (which would then count in
// the process's resident memory beside the mapping of the installed file that the loader uses);
// computed from the bytes only if that file does not hold a hash.
func embeddedSum() [sha256.Size]byte {
	var s [sha256.Size]byte
	if h, err := hex.DecodeString(strings.TrimSpace(sum)); err == nil && len(h) == len(s) {
		copy(s[:], h)
		return s
	}
	return sha256.Sum256(Embedded())
}

// Install makes sure dir holds the embedded mini model and returns its path. An existing file
// with the same bytes is left alone; a different one (an older build) is replaced atomically.
// Without an embedded model, a mini model already in dir (built by hand) is used as it is;
// otherwise the error wraps ErrNotBuilt and says how to build it.
func Install(dir string) (string, error) {
	path := filepath.Join(dir, FileName)
	data := Embedded()
	if data == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			return path, nil
		}
		return "", fmt.Errorf("%w: this binary has no %s (tools/mini/README.md says how to train and convert it, "+
			"then rebuild); or pass --model PATH", ErrNotBuilt, "mini/model/"+FileName)
	}
	if same(path, int64(len(data)), embeddedSum()) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install the mini model: %w", err)
	}
	f, err := os.CreateTemp(dir, ".verbatim.tmp."+FileName+".*")
	if err != nil {
		return "", fmt.Errorf("install the mini model: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("install the mini model: %w", err)
	}
	return path, nil
}

// same reports whether the file at path has size bytes whose sha256 is sum.
func same(path string, size int64, sum [sha256.Size]byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return bytes.Equal(h.Sum(nil), sum[:])
}
